"""How well a data-free score ranks trained topologies, judged against parameter count.

Zero-cost-proxy surveys found parameter count a hard baseline (Krishnakumar et al., "NAS-Bench-
Suite-Zero", NeurIPS 2022 Datasets and Benchmarks): a score is useful to the co-design only if
it ranks topologies of *equal* parameter count better than chance. Every metric here takes a
score ``float[k]`` (larger = predicted better), the measured accuracy ``float[k]`` and the
parameter count ``int[k]`` of ``k`` topologies:

* :func:`spearman`, :func:`kendall`: rank correlation over all topologies.
* :func:`partial_spearman`: rank correlation of score and accuracy after removing what
  log(params) explains of each (Spearman partial correlation: Pearson correlation of the
  residuals of the ranks regressed on the rank of the parameter count).
* :func:`iso_groups`: topologies whose parameter counts are equal within 5% (greedy chains
  from the smallest count: a group spans at most a factor 1.05).
* :func:`iso_spearman`: mean Spearman within iso-parameter groups of >= 3 topologies.
* :func:`iso_regret`: mean top-pick regret within iso-parameter groups (best accuracy in the
  group minus the accuracy of the score's pick), beside a random pick's (best minus mean).
* :func:`budget_regret`: the top-pick regret at every parameter budget (each topology's count
  is one budget; candidates are those within it), averaged over the budgets.
* :func:`bootstrap`: a percentile confidence interval of any metric, resampling topologies or
  iso-parameter groups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

ISO_TOLERANCE = 0.05


def spearman(score: np.ndarray, acc: np.ndarray) -> float:
  """Spearman's rho of ``score`` and ``acc`` (NaN when either is constant)."""
  if np.ptp(score) == 0 or np.ptp(acc) == 0:
    return float("nan")
  return float(stats.spearmanr(score, acc).statistic)


def kendall(score: np.ndarray, acc: np.ndarray) -> float:
  """Kendall's tau-b of ``score`` and ``acc`` (NaN when either is constant)."""
  if np.ptp(score) == 0 or np.ptp(acc) == 0:
    return float("nan")
  return float(stats.kendalltau(score, acc).statistic)


def partial_spearman(score: np.ndarray, acc: np.ndarray, params: np.ndarray) -> float:
  """Spearman partial correlation of ``score`` and ``acc`` given ``params``."""
  ranks = [stats.rankdata(v) for v in (score, acc, params)]
  z = np.stack([np.ones(len(score)), ranks[2]], axis=1)

  def residual(r: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(z, r, rcond=None)
    return r - z @ coef

  a, b = residual(ranks[0]), residual(ranks[1])
  if np.std(a) < 1e-12 or np.std(b) < 1e-12:
    return float("nan")
  return float(np.corrcoef(a, b)[0, 1])


def iso_groups(params: np.ndarray, tolerance: float = ISO_TOLERANCE) -> list[np.ndarray]:
  """Indices of topologies whose parameter counts lie within a factor ``1 + tolerance`` of
  their group's smallest, grouped greedily from the smallest count up (ties kept together)."""
  order = np.argsort(params, kind="stable")
  groups, current, start = [], [], None
  for i in order:
    if start is None or params[i] > start * (1 + tolerance):
      if current:
        groups.append(np.asarray(current))
      current, start = [], params[i]
    current.append(i)
  if current:
    groups.append(np.asarray(current))
  return groups


def _group_spearman(score, acc, group) -> float:
  return spearman(score[group], acc[group]) if len(group) >= 3 else float("nan")


def iso_spearman(
  score: np.ndarray, acc: np.ndarray, groups: Sequence[np.ndarray]
) -> tuple[float, int]:
  """Mean Spearman within the groups of >= 3 topologies where it is defined; and their count."""
  values = [_group_spearman(score, acc, g) for g in groups]
  values = [v for v in values if np.isfinite(v)]
  return (float(np.mean(values)) if values else float("nan")), len(values)


def pick_regret(score: np.ndarray, acc: np.ndarray, members: np.ndarray) -> tuple[float, float]:
  """``(regret of the score's top pick, expected regret of a uniformly random pick)`` among
  ``members``; ties in the score are broken toward the lower accuracy (no credit for luck)."""
  sub_score, sub_acc = score[members], acc[members]
  best = sub_acc.max()
  top = sub_score == sub_score.max()
  return float(best - sub_acc[top].min()), float(best - sub_acc.mean())


def iso_regret(
  score: np.ndarray, acc: np.ndarray, groups: Sequence[np.ndarray]
) -> tuple[float, float, int]:
  """Mean top-pick regret and mean random-pick regret over groups of >= 2 topologies."""
  pairs = [pick_regret(score, acc, g) for g in groups if len(g) >= 2]
  if not pairs:
    return float("nan"), float("nan"), 0
  ours, chance = np.asarray(pairs).T
  return float(ours.mean()), float(chance.mean()), len(pairs)


def budget_regret(
  score: np.ndarray, acc: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per budget (each distinct parameter count, ascending): ``(budgets, top-pick regret,
  random-pick regret)`` among the topologies within the budget."""
  budgets = np.unique(params)
  ours, chance = [], []
  for b in budgets:
    o, c = pick_regret(score, acc, np.flatnonzero(params <= b))
    ours.append(o)
    chance.append(c)
  return budgets, np.asarray(ours), np.asarray(chance)


def bootstrap(
  metric: Callable[[np.ndarray], float],
  units: int,
  samples: int = 1000,
  seed: int = 0,
  level: float = 0.95,
) -> tuple[float, float]:
  """Percentile interval of ``metric(indices)`` over ``samples`` resamplings (with
  replacement) of ``units`` units (topologies or groups); NaN results are dropped."""
  rng = np.random.default_rng(seed)
  values = [metric(rng.integers(0, units, units)) for _ in range(samples)]
  values = np.asarray([v for v in values if np.isfinite(v)])
  if not len(values):
    return float("nan"), float("nan")
  tail = (1 - level) / 2
  return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def evaluate(
  score: np.ndarray,
  acc: np.ndarray,
  params: np.ndarray,
  samples: int = 1000,
  seed: int = 0,
) -> dict[str, float]:
  """Every metric of the module docstring with its 95% bootstrap interval (``<name>_lo``,
  ``<name>_hi``); topologies are resampled for the overall metrics, iso-parameter groups for
  the within-group ones."""
  score, acc, params = (np.asarray(v, np.float64) for v in (score, acc, params))
  groups = iso_groups(params)
  out: dict[str, float] = {}

  def add(name: str, value: float, metric: Callable[[np.ndarray], float], units: int) -> None:
    out[name] = value
    out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap(metric, units, samples, seed)

  add("spearman", spearman(score, acc), lambda i: spearman(score[i], acc[i]), len(acc))
  add("kendall", kendall(score, acc), lambda i: kendall(score[i], acc[i]), len(acc))
  add(
    "partial_spearman",
    partial_spearman(score, acc, params),
    lambda i: partial_spearman(score[i], acc[i], params[i]),
    len(acc),
  )
  iso = iso_spearman(score, acc, groups)
  out["iso_groups"] = iso[1]
  add(
    "iso_spearman",
    iso[0],
    lambda i: iso_spearman(score, acc, [groups[j] for j in i])[0],
    len(groups),
  )
  regret, chance, count = iso_regret(score, acc, groups)
  out["iso_regret_groups"] = count
  add(
    "iso_regret", regret, lambda i: iso_regret(score, acc, [groups[j] for j in i])[0], len(groups)
  )
  add(
    "iso_random_regret",
    chance,
    lambda i: iso_regret(score, acc, [groups[j] for j in i])[1],
    len(groups),
  )
  _, ours, rand = budget_regret(score, acc, params)
  add(
    "budget_regret",
    float(ours.mean()),
    lambda i: float(budget_regret(score[i], acc[i], params[i])[1].mean()),
    len(acc),
  )
  out["budget_random_regret"] = float(rand.mean())
  return out
