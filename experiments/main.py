"""Launcher for the training experiments (flax-examples style).

Usage::

  python experiments/main.py --workdir=runs/study --config=experiments/configs/topology_study.py
  python experiments/main.py --workdir=/tmp/smoke \
      --config=experiments/configs/topology_study.py:runlocal   # one-step smoke run

Multi-host (one process per host, same command everywhere; the sweep's model axis is then
sharded over the devices of all hosts)::

  --coordinator_address=host0:1234 --num_processes=2 --process_id=<0 or 1>

All the logic lives in :mod:`nf_jax.sweep` and :mod:`nf_jax.train`.
"""

from __future__ import annotations

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from nf_jax import sweep, train, watchdog

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for results.csv, results.json, plots, checkpoints.")
config_flags.DEFINE_config_file(
  "config", None, "Config file (append :runlocal for a one-step smoke run).", lock_config=True
)
flags.DEFINE_string(
  "coordinator_address", None, "host:port of process 0; enables jax.distributed.initialize."
)
flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) in a multi-host run.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
flags.DEFINE_bool("progress", True, "Show tqdm progress bars.")
flags.DEFINE_bool(
  "watchdog",
  True,
  "Re-execute this command (resuming from checkpoints) when training stops making progress: "
  "XLA:CPU thread-pool deadlocks (see nf_jax/watchdog.py).",
)
flags.mark_flags_as_required(["workdir", "config"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.coordinator_address:
    jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address,
      num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id,
    )
  logging.info(
    "devices: %s (process %d of %d)", jax.devices(), jax.process_index(), jax.process_count()
  )
  if FLAGS.watchdog:
    watchdog.start(first_beat_within_s=train.WATCHDOG_SETUP_S)
  report = sweep.run(FLAGS.config, FLAGS.workdir, progress=FLAGS.progress)
  logging.info("goals: %s", report["goals"])
  print(
    f"wrote {report['num_models']} rows to {FLAGS.workdir}/results.csv; goals: {report['goals']}"
  )


if __name__ == "__main__":
  app.run(main)
