"""``python -m nf_jax.pareto``: six-objective NSGA-III co-design of topology and accelerator.

Command (embedded default, offline, 2 CPU cores; what it runs and reaches:
:mod:`nf_jax.pareto.config`)::

  python -m nf_jax.pareto --workdir=runs/pareto-demo
  python -m nf_jax.pareto --workdir=runs/small --config.generations=4 --config.max_area=50

The search's settings come from ``--config`` (a file with a ``get_config()``; default
``nf_jax/pareto/config.py``), each field overridable with ``--config.<field>=`` (the fields of
:class:`nf_jax.pareto.config.SearchConfig`). Run control: ``--workdir --resume --overwrite
--compilation_cache --generation_delay_s`` and the multi-host flags of every CLI
(:mod:`nf_jax.distributed`: ``--coordinator_address --num_processes --process_id`` or
``--distributed``; every process must see the same ``--workdir`` on a shared filesystem, and
only process 0 writes it). Bad settings, a setting the chosen mode never reads
(``--config.table`` without ``--config.accuracy=table``, ``--config.n_partitions`` without
``--config.algorithm=nsga3``, ...: :func:`validate`), a workdir holding another run, a corrupt
checkpoint and an infeasible constraint exit non-zero with a message that names the fix.
Compiled XLA programs are kept in JAX's persistent cache (:mod:`nf_jax.compile_cache`) unless
``--nocompilation_cache``. Flags are defined by :func:`define_flags` when the command starts,
never on import.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from nf_jax.cli import overridden
from nf_jax.pareto import config as pareto_config
from nf_jax.pareto import report
from nf_jax.pareto import search as PS

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags (once; a second call does nothing)."""
  if "config" in FLAGS:
    return
  from ml_collections import config_flags

  from nf_jax import distributed

  distributed.define_flags()

  flags.DEFINE_string("workdir", None, "Output folder (default ./runs/pareto-<UTC timestamp>).")
  config_flags.DEFINE_config_file(
    "config",
    pareto_config.__file__,
    "Search settings: a file with get_config() (default nf_jax/pareto/config.py); override a "
    "field with --config.<field>=<value>.",
    lock_config=True,
  )
  flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its checkpoint.")
  flags.DEFINE_bool(
    "overwrite", False, "Replace the checkpoint and outputs of another run in --workdir."
  )
  flags.DEFINE_bool(
    "compilation_cache",
    True,
    "Keep compiled XLA programs in $NF_JAX_CACHE/jax_cache (default ~/.cache/nf_jax/jax_cache).",
  )
  flags.DEFINE_float("generation_delay_s", 0.0, "Sleep per generation (interruption demos).")


def validate(config: pareto_config.SearchConfig, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses a field the search's accuracy mode or algorithm never reads (before any work).

  ``overrides``: the fields set on the command line (:func:`nf_jax.cli.overridden`). A field
  of :func:`nf_jax.pareto.config.unread_fields` is refused when it was set there or differs from
  its default (from a ``--config`` file). :class:`~nf_jax.pareto.config.SearchConfig` itself
  refuses the accuracy fields away from their defaults; the CLI adds the algorithm's fields.
  """
  unread = {
    field: why
    for field, why in pareto_config.unread_fields(config).items()
    if field in overrides or not pareto_config.is_default(config, field)
  }
  if unread:
    raise ValueError(pareto_config.refusal(config, unread))


def main(argv: Sequence[str]) -> None:
  from nf_jax import distributed
  from nf_jax.compile_cache import enable_compilation_cache

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    distributed.initialize_from_flags()  # before any JAX work
    if FLAGS.compilation_cache:
      enable_compilation_cache()
    if FLAGS.resume and not FLAGS.workdir:
      raise ValueError("--resume needs --workdir (the folder of the interrupted run)")
    if FLAGS.overwrite and not FLAGS.workdir:
      raise ValueError("--overwrite needs --workdir (the default workdir is a new folder); drop it")
    config = pareto_config.search_config(FLAGS.config)
    validate(config, overridden(sys.argv))
    workdir = FLAGS.workdir or os.path.join(
      "runs", "pareto-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    )
    t0 = time.time()
    result = PS.run(
      config,
      workdir,
      resume=FLAGS.resume,
      overwrite=FLAGS.overwrite,
      generation_delay_s=FLAGS.generation_delay_s,
    )
  except ValueError as err:  # bad settings, workdir or checkpoint; no design feasible
    sys.exit(f"error: {err}")
  print(report.console_summary(result, time.time() - t0))
  print(f"outputs in {workdir}")
  sys.stdout.flush()


def cli() -> None:
  """The console entry point (``nf-jax-pareto``, ``python -m nf_jax.pareto``)."""
  try:
    define_flags()
  except (AttributeError, KeyError) as err:  # ml_collections reads the overrides of sys.argv here
    reason: object = err
    while isinstance(reason, BaseException) and reason.args:  # KeyError inside AttributeError
      reason = reason.args[0]
    reason = str(reason).replace("\n", " ")
    sys.exit(f"error: a --config.<field>= override names no field of SearchConfig: {reason}")
  app.run(main)


if __name__ == "__main__":
  cli()
