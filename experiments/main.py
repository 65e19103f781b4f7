"""Launcher for the training experiments (flax-examples style).

Usage::

  python experiments/main.py --workdir=runs/study --config=experiments/configs/topology_study.py
  python experiments/main.py --workdir=/tmp/smoke \
      --config=experiments/configs/topology_study.py:runlocal   # one-step smoke run

Multi-host (one process per host, same command everywhere; the sweep's model axis is then
sharded over the devices of all hosts; every host must see the same --workdir, on a shared
filesystem, and only process 0 writes it). The convention of every CLI (nf_jax/distributed.py)::

  --coordinator_address=host0:1234 --num_processes=2 --process_id=<0 or 1>
  --distributed        # instead, on a cluster JAX detects (SLURM, Open MPI, Cloud TPU)

All the logic lives in :mod:`nf_jax.sweep` and :mod:`nf_jax.train`.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from nf_jax import distributed, sweep, watchdog
from nf_jax import train as tr

FLAGS = flags.FLAGS
distributed.define_flags()
flags.DEFINE_string("workdir", None, "Folder for results.csv, results.json, plots, checkpoints.")
config_flags.DEFINE_config_file(
  "config", None, "Config file (append :runlocal for a one-step smoke run).", lock_config=True
)
flags.DEFINE_bool("progress", True, "Show tqdm progress bars.")
flags.DEFINE_bool(
  "watchdog",
  True,
  "Re-execute this command (resuming from checkpoints) when training stops making progress: "
  "XLA:CPU thread-pool deadlocks (see nf_jax/watchdog.py). In a multi-host group a stalled "
  "process exits instead (status 3); rerun the group to resume.",
)
flags.mark_flags_as_required(["workdir", "config"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    distributed.initialize_from_flags()  # before any JAX work (and the watchdog)
  except ValueError as err:  # a partial or out-of-range set of multi-host flags
    raise app.UsageError(str(err)) from err
  if FLAGS.watchdog:
    watchdog.start(first_beat_within_s=tr.WATCHDOG_SETUP_S)
  report = sweep.run(FLAGS.config, FLAGS.workdir, progress=FLAGS.progress)
  logging.info("goals: %s", report["goals"])
  print(
    f"wrote {report['num_models']} rows to {FLAGS.workdir}/results.csv; goals: {report['goals']}"
  )


if __name__ == "__main__":
  app.run(main)
