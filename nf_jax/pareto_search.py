"""Six-objective NSGA-III co-design of topology and accelerator (the library behind the CLI).

``python -m nf_jax.pareto`` (:mod:`nf_jax.pareto`) is the command-line front end.

The search space is the joint genome of :mod:`nf_jax.pareto_problem` (topology family, depth,
radix or fan-in, parallel width, skip, hidden width; PE array rows/cols, dataflow, precision,
SRAM, clock, DRAM bandwidth, interconnect radix). Six objectives, named as in the outputs:
``accuracy`` (maximised), ``params``, ``throughput`` (maximised), ``latency``, ``power``,
``area``. Accuracy is predicted from data-free scores through :mod:`nf_jax.calibration`
(default) or measured by training (``--accuracy=train``, cached per topology).

One generation is one batched evaluation: the distinct new topologies are scored together and
the simulator runs once, ``jit(vmap)`` over the (config, workload) pairs, sharded over devices.
The loop is pymoo ask/tell; after each generation the evaluation caches and the log are
checkpointed atomically (the algorithm is rebuilt by a cached replay, see :class:`SearchState`),
so ``--resume`` continues a killed run without re-evaluating finished generations and ends with
the same front.

Command (embedded default: 28 designs x 40 generations, about 70 s on 2 CPU cores)::

  python -m nf_jax.pareto --workdir=runs/pareto-demo

Outputs in ``--workdir``: ``pareto.csv`` (genes + 6 objectives of the non-dominated feasible
designs), ``evaluations.csv`` (every evaluation, with its generation), ``hypervolume.csv``
(normalised hypervolume of the archive front per generation), ``pairs.png``, ``parallel.png``,
``summary.json`` and ``checkpoint.json`` (plain JSON data, validated against the config on
``--resume``; see :func:`_load`). A workdir holding another run is refused unless ``--resume``
or ``--overwrite`` is given.

Multi-host: call ``jax.distributed.initialize()`` before :func:`run` on every host (the CLI's
flags of :mod:`nf_jax.distributed`); ``jax.devices()`` then spans all hosts and the population
axis is sharded over all of them (results are gathered back with
``multihost_utils.process_allgather``). Every host runs the same deterministic ask/tell loop
(same seed), so they agree on each population; only process 0 writes files, so every host must
see the same workdir (a shared filesystem). Tested with 2 local processes
(``tests/test_multihost.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import moocore
import numpy as np
from absl import logging
from pymoo.core.problem import Problem
from tqdm.auto import tqdm

from nf_jax import calibration as C
from nf_jax import hw, io_utils
from nf_jax import pareto_problem as PP
from nf_jax import proxy as P

ALGORITHMS = ("nsga3", "nsga2", "random")
ACCURACY_MODES = ("table", "proxy", "train")
CHECKPOINT = "checkpoint.json"
# Genes redrawn per offspring on average by the random-reset mutation (see make_algorithm).
MUTATION_GENES = 1.0


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Everything that determines a search's result (checkpoints refuse a different one).

  Attributes:
    seed: seeds pymoo (sampling, variation, selection); same seed -> same front.
    population: designs per generation (NSGA-III needs >= the number of reference directions).
    generations: generations (the budget is ``population * generations`` evaluations).
    algorithm: ``nsga3`` (default), ``nsga2`` or ``random`` (uniform sampling, the baseline).
    n_partitions: Das-Dennis partitions of the outer layer of reference directions (on the
      6-objective simplex's boundary-heavy grid: 2 -> 21 directions, 3 -> 56).
    inner_partitions: Das-Dennis partitions of an inner layer shrunk halfway to the simplex's
      centre (Deb & Jain 2014's two-layer directions; 1 -> 6 more, 0 -> none). See
      :func:`reference_directions`.
    accuracy: ``table`` (measured: the trained benchmark of the space,
      :mod:`nf_jax.space_table`), ``proxy`` (calibrated data-free score, for spaces beyond
      the table) or ``train`` (a short training run per topology).
    table: the benchmark table (``""``: the committed one, ``nf_jax/tables``).
    calibration: results CSV the proxy calibration is fitted on (``accuracy="proxy"``).
    features: calibration features (``nf_jax.calibration.FEATURES``).
    fit_steps: Adam steps of the fit-based proxy score.
    train_steps: training steps per candidate with ``accuracy="train"`` (batch 128, 1 epoch).
    max_area, max_power, min_accuracy: optional constraints (None: off), mm^2, W, fraction.
    batch: inference batch for throughput (latency is batch-1: one sample).
  """

  seed: int = 0
  population: int = 28
  generations: int = 40
  algorithm: str = "nsga3"
  n_partitions: int = 2
  inner_partitions: int = 1
  accuracy: str = "table"
  table: str = ""
  calibration: str = C.DEFAULT_CSV
  features: tuple[str, ...] = C.DEFAULT_FEATURES
  fit_steps: int = P.FitConfig.steps
  train_steps: int = 100
  max_area: float | None = None
  max_power: float | None = None
  min_accuracy: float | None = None
  batch: int = 64

  def __post_init__(self) -> None:
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f"algorithm={self.algorithm!r} is not one of {ALGORITHMS}")
    if self.accuracy not in ACCURACY_MODES:
      raise ValueError(f"accuracy={self.accuracy!r} is not one of {ACCURACY_MODES}")
    for field in ("population", "generations", "n_partitions", "fit_steps", "train_steps", "batch"):
      if getattr(self, field) < 1:
        raise ValueError(f"{field}={getattr(self, field)} must be >= 1")
    if self.population < 2:
      raise ValueError(f"population={self.population} must be >= 2")
    if self.inner_partitions < 0:
      raise ValueError(f"inner_partitions={self.inner_partitions} must be >= 0 (0: one layer)")
    n_dirs = num_ref_dirs(self.n_partitions, self.inner_partitions)
    if self.algorithm == "nsga3" and self.population < n_dirs:
      raise ValueError(
        f"population={self.population} is below the {n_dirs} reference directions of "
        f"n_partitions={self.n_partitions}, inner_partitions={self.inner_partitions}; raise "
        "--population or lower --n_partitions / --inner_partitions"
      )
    for field in ("max_area", "max_power"):
      v = getattr(self, field)
      if v is not None and not v > 0:
        raise ValueError(f"{field}={v} must be > 0 (or unset)")
    if self.min_accuracy is not None and not 0.0 < self.min_accuracy < 1.0:
      raise ValueError(f"min_accuracy={self.min_accuracy} must be in (0, 1)")
    if self.accuracy == "train" and (
      self.calibration != C.DEFAULT_CSV or tuple(self.features) != C.DEFAULT_FEATURES
    ):
      raise ValueError(
        "--calibration/--features only apply to --accuracy=proxy or table; drop them with "
        "--accuracy=train"
      )
    if self.accuracy == "table" and self.calibration != C.DEFAULT_CSV:
      raise ValueError(
        "--calibration only applies to --accuracy=proxy (the table mode calibrates its "
        "predictions for untrained topologies on the table itself); drop it or pass "
        "--accuracy=proxy"
      )
    if self.table and self.accuracy != "table":
      raise ValueError("--table only applies to --accuracy=table; drop it")
    bad = [f for f in self.features if f not in C.FEATURES]
    if bad:
      raise ValueError(f"features {bad} unknown; choose from {C.FEATURES}")

  @property
  def constraints(self) -> tuple[str, ...]:
    return tuple(
      n for n in ("max_area", "max_power", "min_accuracy") if getattr(self, n) is not None
    )


def num_ref_dirs(n_partitions: int, inner_partitions: int = 0, n_obj: int = 6) -> int:
  """Number of two-layer reference directions: C(n_obj + p - 1, p) per Das-Dennis layer."""
  from math import comb

  inner = comb(n_obj + inner_partitions - 1, inner_partitions) if inner_partitions else 0
  return comb(n_obj + n_partitions - 1, n_partitions) + inner


# The inner layer's distance from the simplex's centre, as a fraction of the outer layer's.
# Two layers (a boundary and an inside layer of Das-Dennis points) are how Deb & Jain (2014,
# "An evolutionary many-objective optimization algorithm using reference-point-based
# nondominated sorting approach, Part I", IEEE TEVC 18(4)) place few directions at many
# objectives; 1/2 is the shrink of pymoo's multi-layer example. Exploratory runs (pop 28 x 40,
# 5 seeds, NSGA-III / random hypervolume): 0.3 -> 1.21, 0.5 -> 1.22, 0.7 -> 1.23, all within
# the ratio's standard error (~0.015).
INNER_LAYER_SCALE = 0.5


def reference_directions(n_partitions: int, inner_partitions: int, n_obj: int = 6) -> np.ndarray:
  """NSGA-III's reference directions ``float[num_ref_dirs(...), n_obj]``, rows summing to 1.

  Why two layers: a one-layer Das-Dennis grid with few partitions has no interior point at 6
  objectives (``p = 2`` gives the 6 corners and 15 edge midpoints), so every niche pulls
  toward designs that are good in at most two objectives, while the hypervolume is earned
  near the ideal point by designs good in many. The inner layer adds niches there. Measured
  side by side (``benchmarks/pareto_bench.py --compare=one_layer``, pop 28 x 40): NSGA-III /
  random hypervolume 1.192 with the 21 one-layer directions and 1.218 with these 27 (5 seeds,
  random parent tournament); 1.246 and 1.263 with :func:`ideal_tournament` (8 seeds).
  """
  from pymoo.util.ref_dirs import get_reference_directions

  layers = [get_reference_directions("das-dennis", n_obj, n_partitions=n_partitions)]
  if inner_partitions:
    inner = get_reference_directions("das-dennis", n_obj, n_partitions=inner_partitions)
    layers.append(INNER_LAYER_SCALE * inner + (1.0 - INNER_LAYER_SCALE) / n_obj)
  return np.concatenate(layers)


# ---------------------------------------------------------------------------------------------
# Accuracy models


AccuracyDetails = Callable[[Sequence[PP.Spec]], list[dict[str, Any]]]
# What the output rows say of each design's accuracy (empty where it does not apply):
# accuracy_kind ("measured" or "predicted"); for measured, the spread over seeds of the
# validation accuracy (``accuracy`` is its mean), the test accuracy (mean, std) and the seed
# counts; for predicted, the 90% interval and why it lies outside the calibrated region.
DETAIL_COLUMNS = (
  "accuracy_kind",
  "accuracy_std",
  "test_accuracy",
  "test_std",
  "seeds",
  "diverged_seeds",
  "accuracy_lo",
  "accuracy_hi",
  "outside_calibration",
)


def _predicted_details(
  cal: C.Calibration, region: C.CalibratedRegion, specs: Sequence[PP.Spec], pred: np.ndarray
) -> list[dict[str, Any]]:
  lo, hi = cal.interval(pred)
  return [
    dict(
      accuracy_kind="predicted",
      accuracy_lo=float(a),
      accuracy_hi=float(b),
      outside_calibration=region.outside(s),
    )
    for s, a, b in zip(specs, lo, hi)
  ]


def table_accuracy_fn(
  config: SearchConfig,
) -> tuple[PP.AccuracyFn, C.Calibration | None, AccuracyDetails]:
  """Measured accuracy: each topology's mean *validation* accuracy over its seeds in the
  trained benchmark of the space (:mod:`nf_jax.space_table`); returns the function, the
  calibration (None when the table covers the space) and the per-spec details.

  A topology whose every seed diverged scores 0. While the benchmark is still being trained
  (a partial table), the topologies it lacks are *predicted* by the data-free proxy
  calibrated on the table's measured validation means; every such accuracy is labelled
  ``predicted`` with its 90% interval and the reason it lies outside the calibrated region,
  and a WARNING counts them. A table trained on another space is refused.
  """
  from nf_jax import space_table

  table = space_table.load(config.table or None)
  space = PP.topology_space()
  keys = {PP.topology_key(*s): s for s in space}
  missing = [s for k, s in keys.items() if k not in table.entries]
  predicted: dict[str, tuple[float, dict[str, Any]]] = {}
  cal = None
  if missing:
    measured = [
      s for k, s in keys.items() if k in table.entries and np.isfinite(table.entries[k].val_mean)
    ]
    acc = np.asarray([table.entries[PP.topology_key(*s)].val_mean for s in measured])
    names = tuple(config.features)
    x = C.features(measured + missing, names, P.FitConfig(steps=config.fit_steps))
    source = f"{table.source} (validation means of {len(measured)} topologies)"
    cal = C.fit_features(x[: len(measured)], acc, names, source=source)
    pred = cal.predict_features(x[len(measured) :])
    details = _predicted_details(cal, C.CalibratedRegion.of(measured), missing, pred)
    predicted = {PP.topology_key(*s): (float(a), d) for s, a, d in zip(missing, pred, details)}
    logging.warning(
      "the benchmark table %s covers %d of %d topologies; the other %d are PREDICTED (labelled "
      "in every output) until the benchmark is complete",
      table.source,
      len(space) - len(missing),
      len(space),
      len(missing),
    )

  def fn(specs):
    out = []
    for s in specs:
      k = PP.topology_key(*s)
      if k in predicted:
        out.append(predicted[k][0])
      else:
        v = table.lookup([s])[0].val_mean
        out.append(v if np.isfinite(v) else 0.0)
    return np.asarray(out, np.float64)

  def describe(specs):
    rows = []
    for s in specs:
      k = PP.topology_key(*s)
      if k in predicted:
        rows.append(dict(predicted[k][1]))
        continue
      e = table.lookup([s])[0]
      rows.append(
        dict(
          accuracy_kind="measured",
          accuracy_std=e.val_std,
          test_accuracy=e.test_mean,
          test_std=e.test_std,
          seeds=e.seeds,
          diverged_seeds=e.diverged,
        )
      )
    return rows

  return fn, cal, describe


def proxy_accuracy_fn(config: SearchConfig) -> tuple[PP.AccuracyFn, C.Calibration]:
  """Accuracy from the calibrated data-free score; returns the function and the calibration.

  With a fit-based feature, the calibration rows and the genome's whole topology space (248
  specs, :func:`nf_jax.pareto_problem.topology_space`) are scored in ONE batched pass up front:
  each fit shape group then compiles once, instead of once per generation and batch size, and
  every later evaluation is a table lookup. Structural features are cheap and scored on demand.
  """
  fit_config = P.FitConfig(steps=config.fit_steps)
  specs, acc = C.load_results(config.calibration)
  names = tuple(config.features)
  table: dict[str, float] = {}
  if any(n in P.FIT_SCORES for n in names):
    space = PP.topology_space()
    x = C.features(list(specs) + space, names, fit_config)
    cal = C.fit_features(x[: len(specs)], acc, names, source=config.calibration)
    pred = cal.predict_features(x[len(specs) :])
    table = {PP.topology_key(*s): float(a) for s, a in zip(space, pred)}
  else:
    cal = C.fit(specs, acc, names, fit_config, source=config.calibration)
  logging.info(
    "calibration %s: %d rows, LOO MAE %.4f (mean predictor %.4f)",
    cal.source,
    cal.num_rows,
    cal.loo_mae,
    cal.baseline_mae,
  )

  def fn(specs):
    keys = [PP.topology_key(*s) for s in specs]
    if all(k in table for k in keys):
      return np.asarray([table[k] for k in keys])
    return cal.predict_features(C.features(specs, cal.names, fit_config))

  return fn, cal


def proxy_details(config: SearchConfig, cal: C.Calibration, fn: PP.AccuracyFn) -> AccuracyDetails:
  """Per spec: ``predicted``, the 90% interval and why it lies outside the calibrated region."""
  region = C.CalibratedRegion.of(C.load_results(config.calibration)[0])
  return lambda specs: _predicted_details(cal, region, specs, fn(list(specs)))


def train_accuracy_fn(config: SearchConfig, dataset: Any = None) -> PP.AccuracyFn:
  """Accuracy by training each distinct topology (a vmapped sweep per shape group).

  ``dataset`` defaults to Fashion-MNIST (:func:`nf_jax.data.load`); results are cached by the
  evaluator per topology, so a topology trains once per run (and once across resumes).
  """
  from nf_jax import data as D
  from nf_jax import train as TR

  state: dict[str, Any] = {"ds": dataset}

  def fn(specs):
    if state["ds"] is None:
      state["ds"] = D.split_validation(D.load("fashion_mnist"), 10000)
    ds = state["ds"]
    if ds.x_val is None:
      raise ValueError(
        "the dataset has no validation split, which --accuracy=train selects on; pass "
        "nf_jax.data.split_validation(dataset, size)"
      )
    model_specs = [TR.ModelSpec.create(name, n, **params) for name, n, params in specs]
    tc = TR.TrainConfig(num_epochs=1, steps_per_epoch=config.train_steps, log_every=10)
    acc = {}
    for group in TR.group_compatible(model_specs, ds.x_train.shape[1]):
      for r in TR.train_sweep(group, ds, tc, progress=False):
        acc[r.spec] = r.val_accuracy if np.isfinite(r.val_accuracy) else 0.0
    return np.asarray([acc[s] for s in model_specs])

  return fn


# ---------------------------------------------------------------------------------------------
# pymoo problem and algorithms


class CoDesignProblem(Problem):
  """The vectorised pymoo ``Problem``: one ``_evaluate`` call per population.

  ``F``: ``float[P, 6]`` minimised objectives (:func:`nf_jax.pareto_problem.to_minimisation`);
  ``G``: ``float[P, len(config.constraints)]``, ``<= 0`` where feasible.
  """

  def __init__(self, config: SearchConfig, evaluator: PP.Evaluator):
    super().__init__(
      n_var=PP.N_GENES,
      n_obj=6,
      n_ieq_constr=len(config.constraints),
      xl=np.zeros(PP.N_GENES),
      xu=PP.UPPER.astype(float),
      vtype=int,
    )
    self.config = config
    self.evaluator = evaluator

  def _evaluate(self, x, out, *args, **kwargs):
    config = self.config
    objs = self.evaluator.evaluate(x)
    out["F"] = PP.to_minimisation(objs)
    g = []
    if config.max_area is not None:
      g.append(objs["area"] - config.max_area)
    if config.max_power is not None:
      g.append(objs["power"] - config.max_power)
    if config.min_accuracy is not None:
      g.append(config.min_accuracy - objs["accuracy"])
    if g:
      out["G"] = np.stack(g, axis=1)


def make_problem(config: SearchConfig, evaluator: PP.Evaluator) -> CoDesignProblem:
  """The search's vectorised pymoo problem."""
  return CoDesignProblem(config, evaluator)


def _reset_mutation(rate_per_gene: float):
  """pymoo ``Mutation``: each gene, with probability ``rate_per_gene``, is redrawn uniformly.

  Built lazily so that importing this module does not import pymoo.
  """
  from pymoo.core.mutation import Mutation

  class RandomResetMutation(Mutation):
    def _do(self, problem, X, random_state=None, **kwargs):
      out = np.array(X, copy=True)
      redraw = random_state.random(out.shape) < rate_per_gene
      low = np.broadcast_to(problem.xl, out.shape)
      span = np.broadcast_to(problem.xu - problem.xl + 1, out.shape)
      fresh = np.floor(low + random_state.random(out.shape) * span)
      out[redraw] = fresh[redraw]
      return out

  return RandomResetMutation()


def ideal_tournament(pop, pairs: np.ndarray, random_state=None, **kwargs) -> np.ndarray:
  """NSGA-III's parent choice: of each pair, the design nearer the ideal point.

  pymoo's NSGA-III picks the winner of each binary tournament at random when both parents are
  feasible. With six objectives nearly every survivor is non-dominated, so survival is all
  niching and nothing in the loop pulls toward the ideal point, where the hypervolume is
  earned. Here the winner is the parent with less constraint violation, else the smaller sum
  of objectives scaled to [0, 1] over the current population (ties: the first). Survival is
  NSGA-III's unchanged. Measured side by side (``benchmarks/pareto_bench.py --seeds=8
  --compare=random_mating``, pop 28 x 40): NSGA-III / random hypervolume 1.263 with this
  tournament, 1.214 with the random one.

  Args:
    pop: pymoo ``Population`` of the survivors (``F``: ``float[P, 6]``, ``CV``: ``float[P, 1]``).
    pairs: ``int[T, 2]`` indices into ``pop``, one row per tournament.
    random_state: unused (the choice is deterministic).

  Returns:
    ``int[T, 1]``: the winner of each tournament.
  """
  del random_state, kwargs
  f = np.asarray(pop.get("F"), np.float64)
  violation = np.asarray(pop.get("CV"), np.float64).reshape(len(f), -1).max(1)
  lo, hi = f.min(0), f.max(0)
  closeness = ((f - lo) / np.where(hi > lo, hi - lo, 1.0)).sum(1)
  a, b = pairs[:, 0], pairs[:, 1]
  b_wins = np.where(
    violation[a] != violation[b], violation[b] < violation[a], closeness[b] < closeness[a]
  )
  return np.where(b_wins, b, a)[:, None].astype(int)


def make_algorithm(config: SearchConfig, mating: str = "ideal"):
  """NSGA-III / NSGA-II over the categorical genes: uniform crossover and random-reset mutation.

  Every gene is an index into a choice list, most of them unordered (family, dataflow, skip),
  so operators that treat indices as reals (SBX and polynomial mutation, which pymoo
  recommends for integers) move in a metric the genome does not have. Measured gain: mixed.
  NSGA-III's hypervolume over random search, these operators against SBX + polynomial
  mutation (pop 28, 21 directions): 1.259 vs 1.195 and 1.209 vs 1.167 on earlier calibrations
  (ad-hoc harness), but 1.184 vs 1.195 on the final one (3 seeds, 40 generations, std ~0.01;
  ``benchmarks/pareto_bench.py --compare=sbx``), where NSGA-II gains (1.174 vs 1.164).

  Args:
    config: the search settings.
    mating: NSGA-III's parent tournament: ``"ideal"`` (:func:`ideal_tournament`) or
      ``"random"`` (pymoo's default; benchmarks compare against it). NSGA-II keeps its own
      rank-and-crowding tournament.
  """
  from pymoo.algorithms.moo.nsga2 import NSGA2
  from pymoo.algorithms.moo.nsga3 import NSGA3
  from pymoo.operators.crossover.ux import UniformCrossover
  from pymoo.operators.sampling.rnd import IntegerRandomSampling
  from pymoo.operators.selection.tournament import TournamentSelection

  if mating not in ("ideal", "random"):
    raise ValueError(f"mating={mating!r} is not 'ideal' or 'random'")
  ops = dict(
    sampling=IntegerRandomSampling(),
    crossover=UniformCrossover(),
    mutation=_reset_mutation(MUTATION_GENES / PP.N_GENES),
    eliminate_duplicates=True,
  )
  if config.algorithm == "nsga3":
    ref = reference_directions(config.n_partitions, config.inner_partitions)
    if mating == "ideal":
      ops["selection"] = TournamentSelection(func_comp=ideal_tournament)
    return NSGA3(ref_dirs=ref, pop_size=config.population, **ops)
  return NSGA2(pop_size=config.population, **ops)


# ---------------------------------------------------------------------------------------------
# Fronts and hypervolume


def nondominated(f: np.ndarray) -> np.ndarray:
  """Boolean mask of the non-dominated rows of ``f: [k, m]`` (minimisation); duplicates kept.

  moocore's Kung-Luccio-Preparata sweep, ``O(k log^(m-2) k)`` (the naive pairwise check was
  ``O(m k^2)`` time and memory).
  """
  f = np.asarray(f, np.float64)
  if f.ndim != 2:
    raise ValueError(f"nondominated expects a [k, m] array of objectives, got shape {f.shape}")
  if np.isnan(f).any():
    rows = np.flatnonzero(np.isnan(f).any(axis=1))[:5].tolist()
    raise ValueError(
      f"nondominated: objectives hold NaN (rows {rows}...); dominance is undefined for them, "
      "so drop or repair those designs first"
    )
  if not len(f):
    return np.zeros(0, bool)
  return np.asarray(moocore.is_nondominated(f, keep_weakly=True), bool)


def hypervolume(f: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
  """Exact hypervolume of ``f: [k, m]`` (minimisation) after scaling ``[lo, hi] -> [0, 1]``.

  The reference point is 1.1 on every scaled axis; points not strictly better than it on every
  axis add nothing and are dropped. Computed by moocore's exact algorithm (WFG-style for
  ``m >= 4``).
  """
  f = np.asarray(f, np.float64)
  if f.size == 0:
    return 0.0
  if f.ndim != 2:
    raise ValueError(f"hypervolume expects a [k, m] array of objectives, got shape {f.shape}")
  lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
  z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
  z = z[np.all(z < 1.1, axis=1)]
  if not len(z):
    return 0.0
  return float(moocore.hypervolume(z, ref=np.full(f.shape[1], 1.1)))


# ---------------------------------------------------------------------------------------------
# Run loop with checkpoints


@dataclasses.dataclass
class SearchState:
  """What a checkpoint holds: the evaluator's caches and the evaluation log.

  The pymoo algorithm is not saved (it holds local closures, and restoring an object graph from
  a file would run code from the file). A resumed run rebuilds it from the config and *replays*
  the finished generations: every design of those generations is answered from the evaluation
  cache (no accuracy or simulator call), and because the search is deterministic given the seed
  and the objective values, the replay reaches exactly the state the interrupted run had; the
  replayed log is checked against the checkpoint's. So the checkpoint is plain data: the config,
  the generation counter, the log and the caches (:func:`_save`).
  """

  config: SearchConfig
  evaluator: PP.Evaluator
  generation: int = 0
  log: list[tuple[int, list[int], list[float], list[float]]] = dataclasses.field(
    default_factory=list
  )  # (generation, genome, minimised F, G)


class CheckpointError(ValueError):
  """A checkpoint that cannot be used (corrupt, another format, or another run's settings)."""


CHECKPOINT_FORMAT = "nf_jax.pareto checkpoint"
CHECKPOINT_VERSION = 1
# Written by versions before the JSON checkpoint; never read (unpickling can run code).
LEGACY_CHECKPOINT = "checkpoint.pkl"
OUTPUTS = (
  "pareto.csv",
  "evaluations.csv",
  "hypervolume.csv",
  "summary.json",
  "pairs.png",
  "parallel.png",
)
_CACHE_FIELDS = PP.OBJECTIVES + ("energy",)


def _file_sha256(path: str) -> str | None:
  if not os.path.isfile(path):
    return None
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _config_record(config: SearchConfig) -> dict[str, Any]:
  """``config`` as JSON data; the calibration CSV by content (name + sha256), not by path.

  A path would tie the checkpoint to one checkout; the hash lets a moved workdir or repository
  resume while still refusing a different calibration.
  """
  record = dataclasses.asdict(config)
  record["features"] = list(config.features)
  record["calibration"] = dict(
    name=os.path.basename(config.calibration), sha256=_file_sha256(config.calibration)
  )
  return record


def _canonical(payload: Any) -> str:
  return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _save(state: SearchState, path: str) -> None:
  """Writes ``state`` as JSON (atomically), with a sha256 of its content.

  Floats go through ``repr`` and read back bit-exact, so the replay check is exact.
  """
  ev = state.evaluator
  payload = dict(
    format=CHECKPOINT_FORMAT,
    version=CHECKPOINT_VERSION,
    config=_config_record(state.config),
    generation=state.generation,
    log=[list(r) for r in state.log],
    evaluator=dict(
      batch=ev.batch,
      tech_nm=ev.tech_nm,
      calls=ev.calls,
      cache=ev.cache,
      accuracy_cache=ev.accuracy_cache,
    ),
  )
  text = _canonical(payload)
  digest = hashlib.sha256(text.encode()).hexdigest()
  io_utils.atomic_write_text(path, f'{{"sha256":"{digest}","checkpoint":{text}}}\n')


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _load(path: str, config: SearchConfig, acc_fn: PP.AccuracyFn | None = None) -> SearchState:
  """Reads and validates a checkpoint written by :func:`_save` for ``config``.

  Only JSON is parsed: nothing in the file is executed. The content hash, the format, the
  config (every field; the calibration CSV by content hash) and the shape of every record are
  checked before use.

  Raises:
    CheckpointError: unreadable, corrupt or truncated file, another format, or other settings;
      the message names the file, the differing fields and the fix.
  """
  fix = (
    "start again in a new --workdir, or with --overwrite (which discards this run's checkpoint "
    "and outputs)"
  )
  try:
    with open(path, encoding="utf-8") as f:
      outer = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
    raise CheckpointError(
      f"checkpoint {path} is unreadable, truncated or corrupt ({type(err).__name__}: {err}); " + fix
    ) from None
  if not (isinstance(outer, dict) and set(outer) == {"sha256", "checkpoint"}):
    raise CheckpointError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} file; {fix}")
  payload = outer["checkpoint"]
  if not isinstance(payload, dict) or (
    hashlib.sha256(_canonical(payload).encode()).hexdigest() != outer["sha256"]
  ):
    raise CheckpointError(
      f"checkpoint {path} is corrupt (its content does not match its sha256); {fix}"
    )
  if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_VERSION:
    raise CheckpointError(
      f"checkpoint {path} has format {payload.get('format')!r} version "
      f"{payload.get('version')!r}; this code reads {CHECKPOINT_FORMAT!r} version "
      f"{CHECKPOINT_VERSION}; {fix}"
    )
  saved, want = payload.get("config"), _config_record(config)
  if not isinstance(saved, dict):
    raise CheckpointError(f"checkpoint {path} has no config; {fix}")
  diff = {k: (saved.get(k), v) for k, v in want.items() if saved.get(k) != v}
  diff.update({k: (v, None) for k, v in saved.items() if k not in want})
  if diff:
    listed = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
    raise CheckpointError(
      f"--resume: checkpoint {path} was made with other settings ({listed}). Resume with the "
      f"checkpoint's settings, or {fix}"
    )

  def bad(what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is malformed ({what}); {fix}")

  generation, log, ev = payload.get("generation"), payload.get("log"), payload.get("evaluator")
  if not _is_int(generation) or not 0 <= generation <= config.generations:
    raise bad(f"generation={generation!r} is not in [0, {config.generations}]")
  if not isinstance(log, list) or not isinstance(ev, dict):
    raise bad("no log or evaluator record")
  n_g = len(config.constraints)
  rows: list[tuple[int, list[int], list[float], list[float]]] = []
  last = 0
  for i, r in enumerate(log):
    ok = (
      isinstance(r, list)
      and len(r) == 4
      and _is_int(r[0])
      and last <= r[0] < generation
      and all(isinstance(v, list) for v in r[1:])
      and len(r[1]) == PP.N_GENES
      and all(_is_int(v) and 0 <= v <= u for v, u in zip(r[1], PP.UPPER))
      and len(r[2]) == 6
      and len(r[3]) == n_g
      and all(_is_num(v) for v in r[2] + r[3])
    )
    if not ok:
      raise bad(f"log row {i}: {str(r)[:200]}")
    last = r[0]
    rows.append((r[0], r[1], [float(v) for v in r[2]], [float(v) for v in r[3]]))
  cache, acc_cache = ev.get("cache"), ev.get("accuracy_cache")
  if (
    not isinstance(cache, dict)
    or not isinstance(acc_cache, dict)
    or not _is_int(ev.get("calls"))
    or ev.get("batch") != config.batch
    or not _is_num(ev.get("tech_nm"))
  ):
    raise bad("evaluator record")
  for key, obj in cache.items():
    if not (
      isinstance(obj, dict)
      and set(obj) == set(_CACHE_FIELDS)
      and all(_is_num(v) for v in obj.values())
    ):
      raise bad(f"cache entry {key!r}")
  if not all(_is_num(v) for v in acc_cache.values()):
    raise bad("accuracy cache")
  missing = [r[1] for r in rows if PP.genome_hash(r[1]) not in cache]
  if missing:
    raise bad(f"{len(missing)} logged designs are not in its cache, e.g. {missing[0]}")
  evaluator = PP.Evaluator(acc_fn, batch=config.batch, tech_nm=float(ev["tech_nm"]))
  evaluator.pad_to = config.population
  evaluator.calls = ev["calls"]
  evaluator.cache = {k: {f: float(v) for f, v in o.items()} for k, o in cache.items()}
  evaluator.accuracy_cache = {k: float(v) for k, v in acc_cache.items()}
  return SearchState(config, evaluator, generation, rows)


def _check_start(config: SearchConfig, workdir: str | None, resume: bool, overwrite: bool) -> None:
  """Cheap checks before any expensive work: seed, workdir, another run's state, constraints.

  Raises:
    ValueError: the message names the value and the fix.
  """
  if config.seed < 0:
    raise ValueError(f"seed={config.seed} must be >= 0 (pymoo and numpy seeds are unsigned)")
  if resume and overwrite:
    raise ValueError("--resume continues the run in --workdir, --overwrite discards it: pick one")
  if config.max_area is not None:
    smallest = _smallest_area()
    if config.max_area < smallest:
      raise ValueError(
        f"max_area={config.max_area:g} mm^2 is below the smallest accelerator of the search "
        f"space ({smallest:.4g} mm^2: every design would be infeasible); raise --max_area to at "
        f"least {smallest:.4g} or drop it"
      )
  if workdir is None:
    if resume:
      raise ValueError(f"--resume needs --workdir (the folder holding {CHECKPOINT})")
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} is a file, not a folder; pass a folder path")
  ckpt, legacy = os.path.join(workdir, CHECKPOINT), os.path.join(workdir, LEGACY_CHECKPOINT)
  if resume:
    if not os.path.exists(ckpt):
      old = (
        f"; {legacy} is an old pickle checkpoint, which is not read (loading a pickle can run "
        "code): start again with --overwrite or a new --workdir"
        if os.path.exists(legacy)
        else ""
      )
      raise ValueError(f"--resume needs {ckpt}; it does not exist{old}")
  elif os.path.isdir(workdir):
    held = [
      n
      for n in (CHECKPOINT, LEGACY_CHECKPOINT) + OUTPUTS
      if os.path.exists(os.path.join(workdir, n))
    ]
    if held and not overwrite:
      raise ValueError(
        f"--workdir={workdir} holds another run ({', '.join(held)}); continue it with --resume, "
        "pass a new --workdir, or replace it with --overwrite"
      )
  if jax.process_index() != 0:  # only process 0 writes (multi-host: one shared workdir)
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=workdir, prefix=".write-test-")
    os.close(fd)
    os.unlink(probe)
  except OSError as err:
    raise ValueError(
      f"--workdir={workdir} is not writable ({err.strerror or err}); pass a writable folder"
    ) from None


@functools.cache
def _smallest_area() -> float:
  """Smallest area (mm^2) of any accelerator in the genome: area depends on hardware genes only.

  The hardware genes that change area (rows, cols, precision, SRAM, interconnect radix) are
  enumerated exhaustively (a few thousand configs, one vectorised call).
  """
  names = ("rows", "cols", "precision", "sram_kb", "hw_radix")
  axes = [range(len(dict(PP.GENES)[n])) for n in names]
  combos = np.asarray(list(itertools.product(*axes)), np.int64)
  xs = np.zeros((len(combos), PP.N_GENES), np.int64)
  xs[:, [PP.GENE_NAMES.index(n) for n in names]] = combos
  return float(np.min(hw.area_mm2(PP.decode_hw(xs))))


def _clear_outputs(workdir: str) -> None:
  """Removes another run's checkpoint and outputs (``--overwrite``) so none outlives it."""
  for name in (CHECKPOINT, LEGACY_CHECKPOINT) + OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isfile(path):
      os.unlink(path)


class InfeasibleError(ValueError):
  """No evaluated design met the constraints; the message gives the best value seen of each."""


def _infeasibility(result: SearchResult) -> str:
  """Why no design was feasible: per constraint, the best value any evaluated design reached."""
  config = result.config
  objs = {
    o: np.asarray([result.evaluator.cache[PP.genome_hash(x)][o] for x in result.genomes])
    for o in ("area", "power", "accuracy")
  }
  parts = []
  for name, obj, best, unit in (
    ("max_area", "area", np.min, " mm^2"),
    ("max_power", "power", np.min, " W"),
    ("min_accuracy", "accuracy", np.max, ""),
  ):
    limit = getattr(config, name)
    if limit is not None and len(objs[obj]):
      parts.append(
        f"--{name}={limit:g}: the best {obj} of {len(objs[obj])} evaluations is "
        f"{best(objs[obj]):.4g}{unit}"
      )
  return (
    f"no evaluated design meets the constraints ({'; '.join(parts)}). Relax the constraint(s) "
    "named, or search longer (--generations); evaluations.csv lists every design"
  )


@dataclasses.dataclass
class SearchResult:
  """Everything a finished search produced (also written to the workdir)."""

  config: SearchConfig
  genomes: np.ndarray  # int[k, N_GENES] all evaluations, in order
  generation: np.ndarray  # int[k]
  F: np.ndarray  # float[k, 6] minimised objectives
  feasible: np.ndarray  # bool[k]
  front: np.ndarray  # int indices into the evaluations: feasible non-dominated designs
  hv: list[float]  # normalised hypervolume of the archive front after each generation
  evaluator: PP.Evaluator
  calls_this_process: int
  calibration: C.Calibration | None
  # Per spec: how its accuracy was obtained (measured with spread and test accuracy, or
  # predicted with an interval and the calibrated-region flag); None: not described.
  accuracy_details: AccuracyDetails | None = None


def memoise(fn: PP.AccuracyFn) -> PP.AccuracyFn:
  """``fn`` with a per-topology memo (shared by every run that uses the returned function)."""
  memo: dict[str, float] = {}

  def wrapped(specs):
    todo = [s for s in specs if PP.topology_key(*s) not in memo]
    if todo:
      memo.update({PP.topology_key(*s): float(a) for s, a in zip(todo, fn(todo))})
    return np.asarray([memo[PP.topology_key(*s)] for s in specs])

  return wrapped


def _measured_short(specs: Sequence[PP.Spec]) -> list[dict[str, Any]]:
  return [dict(accuracy_kind="measured (short training, 1 seed)") for _ in specs]


def _accuracy_fn(config: SearchConfig, dataset: Any = None):
  """``(accuracy_fn, calibration or None, details)`` of ``config.accuracy``."""
  if config.accuracy == "train":
    return train_accuracy_fn(config, dataset), None, _measured_short
  if config.accuracy == "table":
    return table_accuracy_fn(config)
  fn, cal = proxy_accuracy_fn(config)
  return fn, cal, proxy_details(config, cal, fn)


def run(
  config: SearchConfig,
  workdir: str | None = None,
  resume: bool = False,
  progress: bool = True,
  dataset: Any = None,
  generation_delay_s: float = 0.0,
  accuracy: tuple[PP.AccuracyFn, C.Calibration | None] | None = None,
  overwrite: bool = False,
) -> SearchResult:
  """Runs (or resumes) a search; writes outputs to ``workdir`` if given.

  Args:
    config: the search settings.
    workdir: output folder (``checkpoint.json`` is written there after each generation).
    resume: continue from ``workdir/checkpoint.json`` (which must hold the same config).
    progress: tqdm progress bar.
    dataset: training data for ``accuracy="train"`` (default Fashion-MNIST).
    generation_delay_s: sleep after each checkpoint (demos and interruption tests only).
    accuracy: ``(accuracy_fn, calibration)`` to use instead of building one from ``config``
      (benchmarks share one memoised model across runs).
    overwrite: replace another run's checkpoint and outputs in ``workdir`` (without it, a
      workdir holding them is refused unless ``resume``).

  Raises:
    ValueError: before any expensive work: a negative seed, a ``max_area`` below every
      accelerator, a workdir that is a file, not writable or holds another run (without
      ``resume``/``overwrite``), ``resume`` without a checkpoint.
    CheckpointError: a corrupt checkpoint or one of another config (fields named).
    InfeasibleError: at the end, when no evaluated design met the constraints (outputs are
      written first; the message gives the best value seen per constraint).
  """
  _check_start(config, workdir, resume, overwrite)
  ckpt = os.path.join(workdir, CHECKPOINT) if workdir else None
  # Read and validate the checkpoint before building the accuracy model (the costly part).
  done = _load(ckpt, config) if resume and ckpt else None
  acc_fn, cal, details = (
    _accuracy_fn(config, dataset) if accuracy is None else (*accuracy, None)[:3]
  )
  if done is not None:
    evaluator = done.evaluator
    evaluator.accuracy_fn = acc_fn
    logging.info("resuming %s after generation %d", ckpt, done.generation)
  else:
    if overwrite and workdir and jax.process_index() == 0:
      _clear_outputs(workdir)
    evaluator = PP.Evaluator(acc_fn, batch=config.batch)
    evaluator.pad_to = config.population
  state = SearchState(config, evaluator)
  problem = make_problem(config, evaluator)
  algorithm, rng = None, np.random.default_rng(config.seed)
  if config.algorithm != "random":
    algorithm = make_algorithm(config)
    algorithm.setup(problem, termination=("n_gen", config.generations), seed=config.seed)
  calls_before = evaluator.calls
  bar = tqdm(total=config.generations, desc="pareto", disable=not progress)
  while state.generation < config.generations:
    replay = done is not None and state.generation < done.generation
    if algorithm is None:
      xs = rng.integers(0, PP.UPPER + 1, size=(config.population, PP.N_GENES))
      out: dict[str, Any] = {}
      problem._evaluate(xs, out)
      f, g = out["F"], out.get("G", np.zeros((len(xs), 0)))
    else:
      pop = algorithm.ask()
      algorithm.evaluator.eval(problem, pop)
      algorithm.tell(infills=pop)
      xs, f = pop.get("X"), pop.get("F")
      g = pop.get("G") if config.constraints else np.zeros((len(xs), 0))
    for x, fi, gi in zip(xs, f, g):
      state.log.append(
        (
          state.generation,
          [int(v) for v in np.rint(x)],
          [float(v) for v in fi],
          [float(v) for v in gi],
        )
      )
    state.generation += 1
    if replay:
      # Compared as JSON text: a NaN objective equals itself there (not in a list compare).
      if state.generation == done.generation and _canonical(state.log) != _canonical(done.log):
        raise CheckpointError(
          f"--resume: replaying the {done.generation} generations of {ckpt} gave other designs "
          "than its log (a checkpoint of another code version, or edited); start again in a new "
          "--workdir, or with --overwrite"
        )
    elif ckpt is not None and jax.process_index() == 0:
      _save(state, ckpt)
    bar.update(1)
    bar.set_postfix(evals=len(state.log), cache=len(evaluator.cache))
    if generation_delay_s and not replay:
      time.sleep(generation_delay_s)
  bar.close()
  result = _result(state, evaluator.calls - calls_before, cal)
  result.accuracy_details = details
  if workdir and jax.process_index() == 0:
    write_outputs(result, workdir)
  if config.constraints and not result.feasible.any():
    raise InfeasibleError(_infeasibility(result))
  return result


def _result(state: SearchState, calls: int, cal: C.Calibration | None) -> SearchResult:
  genomes = np.asarray([r[1] for r in state.log], np.int64).reshape(-1, PP.N_GENES)
  gens = np.asarray([r[0] for r in state.log], np.int64)
  f = np.asarray([r[2] for r in state.log], np.float64).reshape(-1, 6)
  g = [r[3] for r in state.log]
  feasible = np.asarray([all(v <= 0 for v in gi) for gi in g], bool)
  idx = np.flatnonzero(feasible)
  # Unique designs only (an elitist algorithm re-reports survivors; the log keeps offspring).
  _, first = np.unique(genomes[idx], axis=0, return_index=True) if len(idx) else ([], [])
  idx = idx[np.sort(np.asarray(first, np.int64))]
  front = idx[nondominated(f[idx])] if len(idx) else idx
  lo, hi = (f.min(0), f.max(0)) if len(f) else (np.zeros(6), np.ones(6))
  hv = []
  for gen in range(state.generation):
    sel = idx[gens[idx] <= gen]
    hv.append(hypervolume(f[sel][nondominated(f[sel])], lo, hi) if len(sel) else 0.0)
  return SearchResult(
    state.config, genomes, gens, f, feasible, front, hv, state.evaluator, calls, cal
  )


# ---------------------------------------------------------------------------------------------
# Outputs


def design_rows(result: SearchResult, indices: Sequence[int]) -> list[dict[str, Any]]:
  """Decoded genes + natural objectives of the given evaluations."""
  rows = []
  for i in indices:
    x = result.genomes[i]
    obj = result.evaluator.cache[PP.genome_hash(x)]
    row = dict(generation=int(result.generation[i]), genome=" ".join(map(str, x)))
    row.update(PP.describe(x))
    row.update({o: obj[o] for o in PP.OBJECTIVES})
    if result.accuracy_details is not None:
      row.update(dict.fromkeys(DETAIL_COLUMNS, ""))
      row.update(result.accuracy_details([PP.decode_topology(x)])[0])
    row["feasible"] = bool(result.feasible[i])
    rows.append(row)
  return rows


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
  """CSV of ``rows``; with no rows, just the header ``columns`` (if given)."""
  buf = io.StringIO()
  columns = list(rows[0]) if rows else columns
  if columns:
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
      w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
  return buf.getvalue()


def picks(result: SearchResult) -> dict[str, int]:
  """Named designs on the front: most accurate, smallest, fastest, lowest power, knee.

  The knee is the front point nearest the ideal point after scaling each objective to [0, 1]
  over the front (the compromise NSGA-III's normalisation would favour).
  """
  fr = result.front
  if not len(fr):
    return {}
  f = result.F[fr]
  z = (f - f.min(0)) / np.where(np.ptp(f, 0) > 0, np.ptp(f, 0), 1.0)
  cols = {name: j for j, name in enumerate(PP.OBJECTIVES)}
  return {
    "most accurate": int(fr[np.argmin(f[:, cols["accuracy"]])]),
    "smallest": int(fr[np.argmin(f[:, cols["params"]])]),
    "fastest": int(fr[np.argmin(f[:, cols["throughput"]])]),
    "lowest power": int(fr[np.argmin(f[:, cols["power"]])]),
    "knee": int(fr[np.argmin(np.linalg.norm(z, axis=1))]),
  }


def summary_table(result: SearchResult) -> str:
  """A fixed-width table of the picked designs."""
  lines = [
    f"{'pick':<14}{'family':<19}{'n':>5}{'depth':>6}{'array':>9}{'df':>4}{'prec':>6}"
    f"{'accuracy (val; test)':>30}{'params':>10}{'thr/s':>10}{'lat_s':>10}{'power_W':>9}"
    f"{'area_mm2':>9}"
  ]
  for name, i in picks(result).items():
    r = design_rows(result, [i])[0]
    array = f"{r['rows']}x{r['cols']}"
    lines.append(
      f"{name:<14}{r['family']:<19}{r['n']:>5}{r['depth']:>6}{array:>9}"
      f"{r['dataflow']:>4}{r['precision']:>6}{accuracy_text(r):>30}{r['params']:>10.3g}"
      f"{r['throughput']:>10.3g}{r['latency']:>10.3g}{r['power']:>9.3g}{r['area']:>9.3g}"
    )
  kinds = [r.get("accuracy_kind", "") for r in design_rows(result, result.front)]
  measured = sum(k == "measured" for k in kinds)
  lines.append(
    f"accuracy on the front: {measured} of {len(kinds)} designs measured (validation mean "
    "+- std over seeds; test mean beside it)"
    + (
      f", {len(kinds) - measured} predicted (~, 90% interval; * outside the calibrated region)"
      if measured < len(kinds)
      else ""
    )
  )
  return "\n".join(lines)


def accuracy_text(row: dict[str, Any]) -> str:
  """One design's accuracy as printed: measured ``0.891+-0.002; 0.887`` or predicted
  ``~0.88 [0.86, 0.90]`` (``*`` when outside the calibrated region)."""
  kind = row.get("accuracy_kind", "")
  if kind == "measured":
    return f"{row['accuracy']:.3f}+-{row['accuracy_std']:.3f}; {row['test_accuracy']:.3f}"
  if kind == "predicted":
    flag = "*" if row["outside_calibration"] else ""
    return f"~{row['accuracy']:.3f} [{row['accuracy_lo']:.3f}, {row['accuracy_hi']:.3f}]{flag}"
  return f"{row['accuracy']:.3f}" + (f" ({kind})" if kind else "")


def _plots(result: SearchResult, workdir: str) -> None:
  import matplotlib
  import matplotlib.ticker

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  uniq = np.unique(result.genomes, axis=0, return_index=True)[1]
  allv = np.asarray(
    [
      [result.evaluator.cache[PP.genome_hash(result.genomes[i])][o] for o in PP.OBJECTIVES]
      for i in uniq
    ]
  )
  front = np.asarray(
    [
      [result.evaluator.cache[PP.genome_hash(result.genomes[i])][o] for o in PP.OBJECTIVES]
      for i in result.front
    ]
  ).reshape(-1, 6)
  log_axes = {"params", "throughput", "latency", "power", "area"}
  pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)]
  fig, axes = plt.subplots(3, 5, figsize=(20, 11))
  for ax, (a, b) in zip(axes.ravel(), pairs):
    ax.scatter(allv[:, a], allv[:, b], s=5, c="0.75", label="evaluated")
    ax.scatter(front[:, a], front[:, b], s=12, c="tab:red", label="Pareto front (6-D)")
    ax.set_xlabel(PP.OBJECTIVES[a] + (" (max)" if PP.OBJECTIVES[a] in PP.MAXIMISED else ""))
    ax.set_ylabel(PP.OBJECTIVES[b] + (" (max)" if PP.OBJECTIVES[b] in PP.MAXIMISED else ""))
    if PP.OBJECTIVES[a] in log_axes:
      ax.set_xscale("log")
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if PP.OBJECTIVES[b] in log_axes:
      ax.set_yscale("log")
      ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  axes.ravel()[0].legend(fontsize=8)
  fig.suptitle(f"{len(allv)} designs evaluated; {len(front)} on the 6-objective front (red)")
  fig.tight_layout()
  io_utils.atomic_savefig(fig, os.path.join(workdir, "pairs.png"), dpi=80)
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(11, 5))
  f = result.F[result.front]
  z = (f - result.F.min(0)) / np.where(np.ptp(result.F, 0) > 0, np.ptp(result.F, 0), 1.0)
  knee = picks(result).get("knee")
  for row, i in zip(z, result.front):
    ax.plot(
      range(6), row, c="tab:red" if i == knee else "tab:blue", alpha=1.0 if i == knee else 0.3
    )
  names = ["1 - accuracy", "log params", "-log throughput", "log latency", "log power", "log area"]
  ax.set_xticks(range(6), names)
  ax.set_ylabel("scaled minimised objective\n(0 = best evaluated, 1 = worst)")
  ax.set_title(f"Parallel coordinates of the {len(f)} front designs (red: knee)")
  fig.tight_layout()
  io_utils.atomic_savefig(fig, os.path.join(workdir, "parallel.png"), dpi=80)
  plt.close(fig)


def write_outputs(result: SearchResult, workdir: str, plots: bool = True) -> list[str]:
  """Writes pareto.csv, evaluations.csv, hypervolume.csv, summary.json and the plots."""
  os.makedirs(workdir, exist_ok=True)
  paths = []
  evaluations = design_rows(result, range(len(result.genomes)))
  # An empty front (no feasible design) still gets pareto.csv's header, never a 0-byte file.
  columns = list(evaluations[0]) if evaluations else None
  for name, rows in (
    ("pareto.csv", design_rows(result, result.front)),
    ("evaluations.csv", evaluations),
    (
      "hypervolume.csv",
      [dict(generation=g, hypervolume=h) for g, h in enumerate(result.hv)],
    ),
  ):
    path = os.path.join(workdir, name)
    io_utils.atomic_write_text(path, _csv_text(rows, columns if name == "pareto.csv" else None))
    paths.append(path)
  summary = dict(
    config={k: v for k, v in dataclasses.asdict(result.config).items()},
    evaluations=len(result.genomes),
    unique_designs=len(result.evaluator.cache),
    feasible_designs=int(result.feasible.sum()),
    front_size=len(result.front),
    final_hypervolume=result.hv[-1] if result.hv else 0.0,
    batched_evaluations_this_process=result.calls_this_process,
    devices=jax.device_count(),
    picks={k: design_rows(result, [i])[0] for k, i in picks(result).items()},
  )
  if result.calibration is not None:
    cal = result.calibration
    summary["calibration"] = dict(
      source=cal.source,
      rows=cal.num_rows,
      features=list(cal.names),
      loo_mae=cal.loo_mae,
      mean_predictor_loo_mae=cal.baseline_mae,
    )
  path = os.path.join(workdir, "summary.json")
  io_utils.atomic_write_text(path, json.dumps(summary, indent=1, default=str))
  paths.append(path)
  if plots and len(result.front):
    _plots(result, workdir)
    paths += [os.path.join(workdir, "pairs.png"), os.path.join(workdir, "parallel.png")]
  return paths
