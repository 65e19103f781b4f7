"""Search quality: hypervolume of NSGA-III vs NSGA-II vs random search at equal budgets.

Every algorithm gets ``population * generations`` evaluations per seed over the same genome and
objectives (:mod:`nf_jax.pareto`). The hypervolume of each run's feasible non-dominated archive
is measured after scaling every minimised objective to [0, 1] with bounds shared by all runs
(the min/max over every design any run evaluated), reference point 1.1 per objective.
The accuracy model is the search's (``--config.accuracy``: by default the measured benchmark
table, as in ``python -m nf_jax.pareto``; ``proxy`` for the calibrated data-free score), built
once and memoised across runs, so all runs see identical objective values. The hardware
objectives use the search's memory model (``--config.hw_mapping``: the mapper by default,
``scalesim`` for the SCALE-Sim fold order). Variants of NSGA-III are passed to
``nf_jax.pareto.run`` as ``algorithm=``.
Goal (issue 7): NSGA-III >= 1.25x random and >= NSGA-II.

Command (about 1.5 minutes on 2 cores with the measured table; log:
benchmarks/results/pareto_bench.txt)::

  python benchmarks/pareto_bench.py --config.seeds=8
  python benchmarks/pareto_bench.py --config.seeds=8 --config.compare=random_mating,one_layer

Settings: :func:`get_config` (the search's fields of ``nf_jax.pareto.config.get_config()``
plus ``seeds`` and ``compare``), each overridable with ``--config.<field>=``. Results and their
history: ``benchmarks/README.md``, "Co-design search quality".
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import ml_collections
import numpy as np
from pymoo.core.algorithm import Algorithm

from nf_jax import pareto as PA
from nf_jax.pareto import accuracy as A
from nf_jax.pareto import config as pareto_config

COMPARISONS = ("random_mating", "one_layer", "sbx")
Builder = Callable[[PA.SearchConfig], Algorithm]  # builds the pymoo algorithm of one row


def get_config() -> ml_collections.ConfigDict:
  """The search's settings (``nf_jax.pareto.config.get_config()``) plus the benchmark's own.

  ``seeds``: seeds per algorithm. ``compare``: extra rows in the same run, any of
  :data:`COMPARISONS`: ``random_mating`` (NSGA-III with pymoo's random parent tournament
  instead of ``nf_jax.pareto.ideal_tournament``), ``one_layer`` (NSGA-III with the one-layer
  Das-Dennis directions, ``inner_partitions=0``) and ``sbx`` (NSGA-III and NSGA-II with SBX +
  polynomial mutation on the gene indices). The search's fields apply to every row, except
  ``algorithm`` and ``seed``, which the rows set (the accuracy model, ``table`` or ``proxy``,
  is built once and memoised across runs).
  """
  config = pareto_config.get_config()
  config.seeds = 3
  config.compare = ()
  return config


def _sbx_algorithm(config: PA.SearchConfig) -> Algorithm:
  """``make_algorithm`` with the operators used before uniform crossover + random reset swapped
  in (everything else as built there: reference directions, parent tournament, sampling)."""
  from pymoo.operators.crossover.sbx import SBX
  from pymoo.operators.mutation.pm import PM
  from pymoo.operators.repair.rounding import RoundingRepair

  algorithm = PA.make_algorithm(config)
  algorithm.mating.crossover = SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair())
  algorithm.mating.mutation = PM(eta=20, vtype=float, repair=RoundingRepair())
  return algorithm


def benchmark(
  search: PA.SearchConfig, seeds: int, compare: Sequence[str] = ()
) -> dict[str, list[float]]:
  """Normalised hypervolume per row (one value per seed); also prints a table.

  Every row runs ``search`` with its own ``algorithm`` and ``seed`` (``0 .. seeds - 1``); the
  accuracy model is ``search.accuracy``'s (``table`` or ``proxy``), built once and memoised.

  Rows ``nsga3``, ``nsga2`` and ``random``, plus per ``compare`` entry:
  ``nsga3_random_mating`` (``make_algorithm(..., mating="random")``), ``nsga3_one_layer``
  (``inner_partitions=0``) and/or ``nsga3_sbx`` and ``nsga2_sbx`` (:func:`_sbx_algorithm`), all
  on the same seeds, accuracy model and normalisation.

  Raises:
    ValueError: an unknown ``compare`` entry, or ``accuracy="train"`` (a training run per
      topology and seed is not a search-quality benchmark's budget).
  """
  unknown = sorted(set(compare) - set(COMPARISONS))
  if unknown:
    raise ValueError(f"compare entries {unknown} unknown; choose from {COMPARISONS}")
  if search.accuracy == "train":
    raise ValueError(
      "accuracy='train' trains every new topology; this benchmark compares search algorithms "
      "on a fixed accuracy model: use --config.accuracy=table (default) or proxy"
    )
  population, generations = search.population, search.generations
  fn, cal, _ = A.accuracy_model(search)
  shared = (A.memoise(fn), cal)
  # (row label, config overrides, builder of the pymoo algorithm; None: the search's own)
  runs: list[tuple[str, dict, Builder | None]] = [
    (a, {"algorithm": a}, None) for a in PA.ALGORITHMS
  ]
  if "random_mating" in compare:
    random_mating = functools.partial(PA.make_algorithm, mating="random")
    runs.append(("nsga3_random_mating", {"algorithm": "nsga3"}, random_mating))
  if "one_layer" in compare:
    runs.append(("nsga3_one_layer", {"algorithm": "nsga3", "inner_partitions": 0}, None))
  if "sbx" in compare:
    runs += [(f"{a}_sbx", {"algorithm": a}, _sbx_algorithm) for a in ("nsga3", "nsga2")]
  labels = [label for label, _, _ in runs]
  fronts: dict[str, list[np.ndarray]] = {label: [] for label in labels}
  seconds: dict[str, float] = dict.fromkeys(labels, 0.0)
  everything = []
  for seed in range(seeds):
    for label, overrides, builder in runs:
      cfg = dataclasses.replace(search, **overrides, seed=seed)
      t0 = time.perf_counter()
      algorithm = None if builder is None else builder(cfg)
      res = PA.run(cfg, progress=False, accuracy=shared, algorithm=algorithm)
      seconds[label] += time.perf_counter() - t0
      fronts[label].append(res.F[res.front])
      everything.append(res.F[res.feasible])
  allf = np.concatenate(everything)
  lo, hi = allf.min(0), allf.max(0)
  hv = {a: [PA.hypervolume(f, lo, hi) for f in fronts[a]] for a in labels}
  budget = population * generations
  print(
    f"budget {budget} evaluations per run, {seeds} seeds, pop {population}, gens {generations}, "
    f"accuracy {search.accuracy}, hw_mapping {search.hw_mapping}"
  )
  print(f"{'algorithm':<20}{'HV mean':>10}{'HV std':>10}{'front':>8}{'s/run':>8}{'/random':>9}")
  for a in labels:
    sizes = np.mean([len(f) for f in fronts[a]])
    ratio = np.mean(hv[a]) / max(np.mean(hv["random"]), 1e-12)
    print(
      f"{a:<20}{np.mean(hv[a]):>10.4f}{np.std(hv[a]):>10.4f}{sizes:>8.1f}"
      f"{seconds[a] / seeds:>8.1f}{ratio:>9.3f}"
    )
  r_rand = np.mean(hv["nsga3"]) / max(np.mean(hv["random"]), 1e-12)
  r_nsga2 = np.mean(hv["nsga3"]) / max(np.mean(hv["nsga2"]), 1e-12)
  print(
    f"NSGA-III / random  = {r_rand:.3f}  (goal >= 1.25: {'met' if r_rand >= 1.25 else 'NOT met'})"
  )
  print(
    f"NSGA-III / NSGA-II = {r_nsga2:.3f}  (goal >= 1.00: {'met' if r_nsga2 >= 1 else 'NOT met'})"
  )
  return hv


def main(config: ml_collections.ConfigDict) -> dict[str, list[float]]:
  """Runs :func:`benchmark` with the settings of a :func:`get_config` config."""
  values = config.to_dict()
  seeds, compare = values.pop("seeds"), pareto_config.split_names(values.pop("compare"))
  return benchmark(pareto_config.search_config(ml_collections.ConfigDict(values)), seeds, compare)


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_dict("config", get_config(), lock_config=True)

  def _main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    main(flags.FLAGS.config)

  app.run(_main)
