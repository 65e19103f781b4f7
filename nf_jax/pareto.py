"""``python -m nf_jax.pareto``: six-objective NSGA-III co-design of topology and accelerator.

The search itself lives in :mod:`nf_jax.pareto_search` (re-exported here); this module is the
absl command line. See :mod:`nf_jax.pareto_search` for the genome, outputs and multi-host use.

Command (embedded default, offline, 2 CPU cores)::

  python -m nf_jax.pareto --workdir=runs/pareto-demo

Flags: ``--seed --population --generations --workdir --algorithm --n_partitions
--inner_partitions --accuracy --calibration --features --fit_steps --train_steps --max_area
--max_power --min_accuracy --batch --resume --overwrite --compilation_cache``, and the multi-host
flags of every CLI (:mod:`nf_jax.distributed`: ``--coordinator_address --num_processes
--process_id`` or ``--distributed``; every process must see the same ``--workdir`` on a shared
filesystem, and only process 0 writes it).
Bad settings, a workdir holding another run, a corrupt checkpoint and an infeasible constraint
exit non-zero with a message that names the fix. Compiled XLA programs are kept in JAX's
persistent cache (:mod:`nf_jax.compile_cache`) unless ``--nocompilation_cache``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from nf_jax import calibration as C
from nf_jax import distributed
from nf_jax.compile_cache import enable_compilation_cache
from nf_jax.pareto_search import ACCURACY_MODES as ACCURACY_MODES
from nf_jax.pareto_search import ALGORITHMS as ALGORITHMS
from nf_jax.pareto_search import CHECKPOINT as CHECKPOINT
from nf_jax.pareto_search import CheckpointError as CheckpointError
from nf_jax.pareto_search import CoDesignProblem as CoDesignProblem
from nf_jax.pareto_search import InfeasibleError as InfeasibleError
from nf_jax.pareto_search import SearchConfig as SearchConfig
from nf_jax.pareto_search import SearchResult as SearchResult
from nf_jax.pareto_search import SearchState as SearchState
from nf_jax.pareto_search import hypervolume as hypervolume
from nf_jax.pareto_search import ideal_tournament as ideal_tournament
from nf_jax.pareto_search import make_algorithm as make_algorithm
from nf_jax.pareto_search import make_problem as make_problem
from nf_jax.pareto_search import memoise as memoise
from nf_jax.pareto_search import nondominated as nondominated
from nf_jax.pareto_search import num_ref_dirs as num_ref_dirs
from nf_jax.pareto_search import picks as picks
from nf_jax.pareto_search import proxy_accuracy_fn as proxy_accuracy_fn
from nf_jax.pareto_search import reference_directions as reference_directions
from nf_jax.pareto_search import run as run
from nf_jax.pareto_search import summary_table as summary_table
from nf_jax.pareto_search import train_accuracy_fn as train_accuracy_fn
from nf_jax.pareto_search import write_outputs as write_outputs

# ---------------------------------------------------------------------------------------------
# CLI

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output folder (default ./runs/pareto-<UTC timestamp>).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("population", 28, "Designs per generation.")
flags.DEFINE_integer("generations", 40, "Generations.")
flags.DEFINE_enum("algorithm", "nsga3", ALGORITHMS, "Search algorithm.")
flags.DEFINE_integer("n_partitions", 2, "Das-Dennis partitions of the outer reference layer.")
flags.DEFINE_integer(
  "inner_partitions", 1, "Das-Dennis partitions of the inner reference layer (0: none)."
)
flags.DEFINE_enum(
  "accuracy",
  SearchConfig.accuracy,
  ACCURACY_MODES,
  "Accuracy source: table (measured, the trained benchmark of the space), proxy (predicted "
  "from data-free scores, with intervals) or train (a short training run per topology).",
)
flags.DEFINE_string(
  "table", SearchConfig.table, "Benchmark table CSV for --accuracy=table (default: committed)."
)
flags.DEFINE_string("calibration", C.DEFAULT_CSV, "Results CSV for the accuracy calibration.")
flags.DEFINE_list("features", list(C.DEFAULT_FEATURES), "Calibration features.")
flags.DEFINE_integer(
  "fit_steps", SearchConfig.fit_steps, "Adam steps of the fit-based proxy score."
)
flags.DEFINE_integer("train_steps", 100, "Training steps per candidate (--accuracy=train).")
flags.DEFINE_float("max_area", None, "Constraint: area <= this (mm^2).")
flags.DEFINE_float("max_power", None, "Constraint: power <= this (W).")
flags.DEFINE_float("min_accuracy", None, "Constraint: accuracy >= this (fraction).")
flags.DEFINE_integer("batch", 64, "Inference batch for throughput (latency is for batch 1).")
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


def config_from_flags() -> SearchConfig:
  return SearchConfig(
    seed=FLAGS.seed,
    population=FLAGS.population,
    generations=FLAGS.generations,
    algorithm=FLAGS.algorithm,
    n_partitions=FLAGS.n_partitions,
    inner_partitions=FLAGS.inner_partitions,
    accuracy=FLAGS.accuracy,
    table=FLAGS.table,
    calibration=FLAGS.calibration,
    features=tuple(FLAGS.features),
    fit_steps=FLAGS.fit_steps,
    train_steps=FLAGS.train_steps,
    max_area=FLAGS.max_area,
    max_power=FLAGS.max_power,
    min_accuracy=FLAGS.min_accuracy,
    batch=FLAGS.batch,
  )


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    distributed.initialize_from_flags()  # before any JAX work (and the watchdog)
  except ValueError as err:  # a partial or out-of-range set of multi-host flags
    sys.exit(f"error: {err}")
  if FLAGS.compilation_cache:
    try:
      enable_compilation_cache()
    except ValueError as err:
      sys.exit(f"error: {err}")
  if FLAGS.resume and not FLAGS.workdir:
    raise ValueError("--resume needs --workdir (the folder of the interrupted run)")
  try:
    config = config_from_flags()
  except ValueError as err:
    sys.exit(f"error: {err}")
  workdir = FLAGS.workdir or os.path.join(
    "runs", "pareto-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
  )
  t0 = time.time()
  try:
    result = run(
      config,
      workdir,
      resume=FLAGS.resume,
      overwrite=FLAGS.overwrite,
      generation_delay_s=FLAGS.generation_delay_s,
    )
  except ValueError as err:  # bad settings, workdir or checkpoint; no design feasible
    sys.exit(f"error: {err}")
  if result.calibration is not None:
    cal = result.calibration
    print(
      f"accuracy calibration: {cal.num_rows} rows of {cal.source}, features {cal.names}: "
      f"leave-one-out MAE {cal.loo_mae:.4f} (predicting the mean: {cal.baseline_mae:.4f})"
    )
  print(
    f"{len(result.genomes)} evaluations, {len(result.evaluator.cache)} unique designs, "
    f"front {len(result.front)}, hypervolume {result.hv[-1]:.4f}, {time.time() - t0:.0f} s"
  )
  print(summary_table(result))
  print(f"outputs in {workdir}")
  sys.stdout.flush()


if __name__ == "__main__":
  app.run(main)
