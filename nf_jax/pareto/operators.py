"""The search's pymoo operators: reference directions, variation, parent choice, algorithms.

Every gene is an index into a choice list, most of them unordered (family, dataflow, skip), so
variation treats them as categories: uniform crossover and random-reset mutation
(:class:`RandomResetMutation`), not SBX and polynomial mutation, which move indices in a metric
the genome does not have. NSGA-III gets two layers of reference directions
(:func:`reference_directions`) and a parent tournament toward the ideal point
(:func:`ideal_tournament`). What each choice measured: ``benchmarks/README.md``, "Co-design
search quality".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from pymoo.core.algorithm import Algorithm
from pymoo.core.mutation import Mutation

from nf_jax.pareto import problem as PP

if TYPE_CHECKING:
  from nf_jax.pareto.config import SearchConfig

# Genes redrawn per offspring on average by the random-reset mutation.
MUTATION_GENES = 1.0
# The inner layer's distance from the simplex's centre, as a fraction of the outer layer's.
# Two layers (a boundary and an inside layer of Das-Dennis points) are how Deb & Jain (2014,
# "An evolutionary many-objective optimization algorithm using reference-point-based
# nondominated sorting approach, Part I", IEEE TEVC 18(4)) place few directions at many
# objectives; 1/2 is the shrink of pymoo's multi-layer example.
INNER_LAYER_SCALE = 0.5
MATINGS = ("ideal", "random")


def num_ref_dirs(n_partitions: int, inner_partitions: int = 0, n_obj: int = 6) -> int:
  """Number of two-layer reference directions: C(n_obj + p - 1, p) per Das-Dennis layer."""
  inner = math.comb(n_obj + inner_partitions - 1, inner_partitions) if inner_partitions else 0
  return math.comb(n_obj + n_partitions - 1, n_partitions) + inner


def reference_directions(n_partitions: int, inner_partitions: int, n_obj: int = 6) -> np.ndarray:
  """NSGA-III's reference directions ``float[num_ref_dirs(...), n_obj]``, rows summing to 1.

  Why two layers: a one-layer Das-Dennis grid with few partitions has no interior point at 6
  objectives (``p = 2`` gives the 6 corners and 15 edge midpoints), so every niche pulls
  toward designs that are good in at most two objectives, while the hypervolume is earned
  near the ideal point by designs good in many. The inner layer, shrunk by
  :data:`INNER_LAYER_SCALE` toward the centre, adds niches there.
  """
  from pymoo.util.ref_dirs import get_reference_directions

  layers = [get_reference_directions("das-dennis", n_obj, n_partitions=n_partitions)]
  if inner_partitions:
    inner = get_reference_directions("das-dennis", n_obj, n_partitions=inner_partitions)
    layers.append(INNER_LAYER_SCALE * inner + (1.0 - INNER_LAYER_SCALE) / n_obj)
  return np.concatenate(layers)


class RandomResetMutation(Mutation):
  """Each gene, with probability ``rate_per_gene``, is redrawn uniformly from its bounds."""

  def __init__(self, rate_per_gene: float, **kwargs):
    super().__init__(**kwargs)
    self.rate_per_gene = rate_per_gene

  def _do(self, problem, X, random_state=None, **kwargs):
    out = np.array(X, copy=True)
    redraw = random_state.random(out.shape) < self.rate_per_gene
    low = np.broadcast_to(problem.xl, out.shape)
    span = np.broadcast_to(problem.xu - problem.xl + 1, out.shape)
    fresh = np.floor(low + random_state.random(out.shape) * span)
    out[redraw] = fresh[redraw]
    return out


def ideal_tournament(pop, pairs: np.ndarray, random_state=None, **kwargs) -> np.ndarray:
  """NSGA-III's parent choice: of each pair, the design nearer the ideal point.

  pymoo's NSGA-III picks the winner of each binary tournament at random when both parents are
  feasible. With six objectives nearly every survivor is non-dominated, so survival is all
  niching and nothing in the loop pulls toward the ideal point, where the hypervolume is
  earned. Here the winner is the parent with less constraint violation, else the smaller sum
  of objectives scaled to [0, 1] over the current population (ties: the first). Survival is
  NSGA-III's unchanged.

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


def make_algorithm(config: SearchConfig, mating: str = "ideal") -> Algorithm:
  """NSGA-III / NSGA-II over the categorical genes: uniform crossover and random-reset mutation.

  Args:
    config: the search settings (``algorithm`` is ``nsga3`` or ``nsga2``; random search has no
      pymoo algorithm, :func:`nf_jax.pareto.search.run` samples it itself).
    mating: NSGA-III's parent tournament: ``"ideal"`` (:func:`ideal_tournament`) or
      ``"random"`` (pymoo's default; benchmarks compare against it). NSGA-II keeps its own
      rank-and-crowding tournament.

  Returns:
    The pymoo algorithm, not yet set up (``run`` calls ``setup`` with the problem and seed).
  """
  from pymoo.algorithms.moo.nsga2 import NSGA2
  from pymoo.algorithms.moo.nsga3 import NSGA3
  from pymoo.operators.crossover.ux import UniformCrossover
  from pymoo.operators.sampling.rnd import IntegerRandomSampling
  from pymoo.operators.selection.tournament import TournamentSelection

  if mating not in MATINGS:
    raise ValueError(f"mating={mating!r} is not one of {MATINGS}")
  ops = dict(
    sampling=IntegerRandomSampling(),
    crossover=UniformCrossover(),
    mutation=RandomResetMutation(MUTATION_GENES / PP.N_GENES),
    eliminate_duplicates=True,
  )
  if config.algorithm == "nsga3":
    ref = reference_directions(config.n_partitions, config.inner_partitions)
    if mating == "ideal":
      ops["selection"] = TournamentSelection(func_comp=ideal_tournament)
    return NSGA3(ref_dirs=ref, pop_size=config.population, **ops)
  if config.algorithm == "nsga2":
    return NSGA2(pop_size=config.population, **ops)
  raise ValueError(
    f"algorithm={config.algorithm!r} has no pymoo algorithm; make_algorithm builds 'nsga3' or "
    "'nsga2' (random search samples without one)"
  )
