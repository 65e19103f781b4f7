r"""Data-free topology search: enumerate candidates within a parameter budget and rank them.

Command, runtime and result: :mod:`nf_jax.configs.topo_search` (the default ``--config``; the
pattern of every CLI is :mod:`nf_jax.cli`)::

  python -m nf_jax.topo_search --workdir=runs/topo_search --config.budget=100000

Candidates cover every family in ``nf_jax.topology.FAMILIES`` with their genes: radix (every
radix the width admits), parallel width, Clos switch and middle-switch counts, random fan-in
and seed, skip on/off, and depth in ``[depth_min, depth_max]``. Those within ``budget``
trainable weights are scored by :func:`nf_jax.proxy.score_topologies` and ranked by
``score`` (best first; ties go to fewer parameters). Writes to ``--workdir``:
``candidates.csv`` (ranked, every score), ``best.json`` (the chosen topology) and
``score_vs_params.png`` (score against parameters, coloured by family), all atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from nf_jax import cli, io_utils, proxy
from nf_jax import topology as T

# Columns that rebuild a topology with T.make (empty cell: the family has no such parameter).
SPEC_COLUMNS = ("name", "n", "n_in", "depth", "radix", "width", "fan_in", "skip", "seed")


def enumerate_candidates(
  n: int,
  depth_min: int,
  depth_max: int,
  *,
  n_in: int | None = None,
  families: Sequence[str] = T.FAMILIES,
  parallel_widths: Sequence[int] = T.SearchGrid.parallel_widths,
  fan_ins: Sequence[int] = T.SearchGrid.fan_ins,
  random_seeds: int = T.SearchGrid.random_seeds,
  skips: Sequence[bool] = (False, True),
  max_params: int | None = None,
) -> list[T.Topology]:
  """All valid candidate topologies of output width ``n`` with depth in the range.

  Returns distinct topologies (equal specs once); invalid combinations are skipped (they are
  the family's own refusals, e.g. ``n`` not a power of the radix). Specs with more than
  ``max_params`` weights (:func:`spec_num_params`) are skipped before their tables are built.
  """
  specs = candidate_specs(
    n,
    depth_min,
    depth_max,
    n_in=n_in,
    families=families,
    parallel_widths=parallel_widths,
    fan_ins=fan_ins,
    random_seeds=random_seeds,
    skips=skips,
  )
  if max_params is not None:
    specs = [(name, p) for name, p in specs if _within(name, n, n_in or n, p, max_params)]
  out: dict[T.Topology, None] = {}
  for name, params in specs:
    try:
      out.setdefault(T.make(name, n, n_in=n_in, **params), None)
    except ValueError as err:  # the family refuses this combination: not a candidate
      logging.debug("skipping %s %s: %s", name, params, err)
  return list(out)


def _within(name: str, n: int, n_in: int, params: dict[str, Any], max_params: int) -> bool:
  """True when the spec is valid and holds at most ``max_params`` weights."""
  try:
    return spec_num_params(name, n, n_in, params) <= max_params
  except ValueError:  # the family refuses this combination: not a candidate
    return False


def spec_num_params(name: str, n: int, n_in: int, params: dict[str, Any]) -> int:
  """Trainable weights of a spec without building its tables (``T.num_params_of``)."""
  return T.num_params_of(name, n, n_in=n_in, **params)


def candidate_specs(
  n: int,
  depth_min: int,
  depth_max: int,
  *,
  n_in: int | None = None,
  families: Sequence[str] = T.FAMILIES,
  parallel_widths: Sequence[int] = T.SearchGrid.parallel_widths,
  fan_ins: Sequence[int] = T.SearchGrid.fan_ins,
  random_seeds: int = T.SearchGrid.random_seeds,
  skips: Sequence[bool] = (False, True),
) -> list[tuple[str, dict[str, Any]]]:
  """The ``(family, params)`` grid of :func:`enumerate_candidates`, unbuilt (may be invalid)."""
  if not 1 <= depth_min <= depth_max:
    raise ValueError(f"depth range [{depth_min}, {depth_max}] must satisfy 1 <= min <= max")
  if not isinstance(n, int) or n < 2:
    smallest = _smallest_candidate(2, depth_min, depth_max, None)
    hint = (
      f"; the smallest feasible layer is n=2, budget >= {smallest.num_params}" if smallest else ""
    )
    raise ValueError(f"n={n!r} must be an integer >= 2 (the layer width){hint}")
  unknown = sorted(set(families) - set(T.families()))
  if unknown:
    raise ValueError(f"families={unknown} are not topology families; choose from {T.families()}")
  unsearched = sorted(f for f in families if T.family(f).search_grid is None)
  if unsearched:
    raise ValueError(f"families={unsearched} have no search grid (Family.search_grid)")
  grid = T.SearchGrid(tuple(parallel_widths), tuple(fan_ins), random_seeds)
  width_in = n if n_in is None else n_in
  ordered = [T.family(f) for f in T.families() if f in families]  # registry order
  depths = range(depth_min, depth_max + 1)
  specs: list[tuple[str, dict[str, Any]]] = []
  for skip in skips:
    for depth in depths:
      for fam in ordered:
        if not fam.fixed_depth:
          specs += [(fam.name, p) for p in fam.search_grid(n, width_in, depth, skip, grid)]
    for fam in ordered:  # fixed-depth families: once per skip, when their depth is in range
      if not fam.fixed_depth:
        continue
      depth = fam.default_depth(n, width_in, 0)
      if depth_min <= depth <= depth_max:
        specs += [(fam.name, p) for p in fam.search_grid(n, width_in, depth, skip, grid)]
  return specs


def rank_order(scores: np.ndarray, num_params: np.ndarray, higher_is_better: bool) -> np.ndarray:
  """Indices best first: by score, ties (to 1e-9) broken by fewer parameters."""
  signed = -np.asarray(scores, np.float64) if higher_is_better else np.asarray(scores, np.float64)
  return np.lexsort((np.asarray(num_params), np.round(signed, 9)))


def spec_row(t: T.Topology) -> dict[str, Any]:
  """The ``SPEC_COLUMNS`` of ``t`` (empty string where the family has no such parameter)."""
  p = t.params()
  return {c: (t.name if c == "name" else p.get(c, "")) for c in SPEC_COLUMNS}


def search(
  n: int,
  budget: int,
  depth_min: int,
  depth_max: int,
  *,
  n_in: int | None = None,
  score: str = proxy.PRIMARY_SCORE,
  config: proxy.FitConfig | None = None,
  progress: Callable[[int], None] | None = None,
  on_total: Callable[[int], None] | None = None,
  **enum_kwargs: Any,
) -> list[dict[str, Any]]:
  """Enumerates, filters by ``budget`` and ranks candidates; returns CSV rows, best first.

  ``progress(count)`` is called as candidates are scored, ``on_total(total)`` once with the
  number of candidates within budget (e.g. to size a progress bar).

  Raises:
    ValueError: when no candidate fits ``budget`` (stating the smallest feasible budget) or
      no candidate exists at all for this width and depth range.
  """
  if score not in proxy.SCORE_NAMES:
    raise ValueError(f"score={score!r} is not one of {proxy.SCORE_NAMES}")
  config = config or proxy.FitConfig()
  feasible = enumerate_candidates(
    n, depth_min, depth_max, n_in=n_in, max_params=budget, **enum_kwargs
  )
  if not feasible:
    smallest = _smallest_candidate(n, depth_min, depth_max, n_in, **enum_kwargs)
    if smallest is None:
      raise ValueError(
        f"no topology exists for n={n} with depth in [{depth_min}, {depth_max}]; widen the "
        "depth range (the 'random' family accepts any width at any depth)"
      )
    raise ValueError(
      f"budget={budget} is below the smallest feasible budget {smallest.num_params} for "
      f"n={n}, n_in={n_in or n}, depth in [{depth_min}, {depth_max}] (reached by {smallest}); "
      f"use budget >= {smallest.num_params} (--config.budget)"
    )
  if on_total is not None:
    on_total(len(feasible))
  scores = proxy.score_topologies(feasible, config, progress=progress)
  params = np.asarray([t.num_params for t in feasible])
  order = rank_order(scores[score], params, proxy.HIGHER_IS_BETTER[score])
  rows = []
  for rank, i in enumerate(order):
    t = feasible[i]
    row = spec_row(t)
    row.update(num_params=t.num_params, density=round(t.density, 6), rank=rank + 1)
    row.update({k: float(v[i]) for k, v in scores.items()})
    rows.append(row)
  return rows


def _smallest_candidate(
  n: int, depth_min: int, depth_max: int, n_in: int | None, **enum_kwargs: Any
) -> T.Topology | None:
  """The valid candidate with the fewest weights (specs tried smallest first), or None."""
  specs = candidate_specs(n, depth_min, depth_max, n_in=n_in, **enum_kwargs)
  sized = []
  for order, (name, params) in enumerate(specs):
    try:
      sized.append((spec_num_params(name, n, n_in or n, params), order, name, params))
    except ValueError:  # refused by its family: never a candidate
      continue
  specs = [(name, params) for _, _, name, params in sorted(sized, key=lambda s: s[:2])]
  for name, params in specs:
    try:
      return T.make(name, n, n_in=n_in, **params)
    except ValueError:
      continue
  return None


def plot_scores(rows: Sequence[dict[str, Any]], score: str, budget: int, path: str) -> None:
  """Scatter of ``score`` against parameter count, one colour per family, best starred."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for family in T.FAMILIES:
    sel = [r for r in rows if r["name"] == family]
    if sel:
      ax.scatter(
        [r["num_params"] for r in sel], [r[score] for r in sel], s=14, alpha=0.7, label=family
      )
  best = rows[0]
  ax.scatter([best["num_params"]], [best[score]], marker="*", s=250, c="k", label="chosen")
  ax.axvline(budget, color="grey", linestyle="--", linewidth=1, label="budget")
  ax.set_xscale("log")
  ax.set_xlabel("trainable parameters")
  ax.set_ylabel(score)
  ax.set_title(f"data-free {score}, n={best['n']}, {len(rows)} candidates")
  ax.legend(fontsize=7, loc="best")
  fig.tight_layout()
  io_utils.atomic_savefig(fig, path, dpi=120)
  plt.close(fig)


def write_results(rows: Sequence[dict[str, Any]], workdir: str, score: str, budget: int) -> None:
  """``candidates.csv``, ``best.json`` and ``score_vs_params.png`` in ``workdir``, atomically."""
  io_utils.atomic_write_csv(os.path.join(workdir, "candidates.csv"), rows)
  best = dict(rows[0], ranked_by=score, budget=budget, candidates=len(rows))
  io_utils.atomic_write_text(os.path.join(workdir, "best.json"), json.dumps(best, indent=2) + "\n")
  plot_scores(rows, score, budget, os.path.join(workdir, "score_vs_params.png"))


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses settings :func:`run` cannot use, naming the field and the fix (before any work).

  ``overrides``: the fields set on the command line. A candidate-grid field
  (:class:`nf_jax.topology.SearchGrid`: ``parallel_widths``, ``fan_ins``, ``random_seeds``) set
  there or away from its default is refused when none of ``families`` reads it
  (``Family.search_options``); each value of ``parallel_widths`` and ``fan_ins`` must be an
  integer >= 1 that gives at least one valid topology of a family reading it (else it would be
  dropped without a word, as ``fan_ins=0`` was).
  """
  families = cli.names(config.families)
  cli.check_choices("families", families, T.families())
  if config.score not in proxy.SCORE_NAMES:
    raise ValueError(f"--config.score={config.score!r} is not one of {proxy.SCORE_NAMES}")
  if config.budget < 1:
    raise ValueError(f"--config.budget={config.budget} must be >= 1 (trainable weights)")
  if config.fit_n != 0 and config.fit_n < 2:
    raise ValueError(f"--config.fit_n={config.fit_n} must be >= 2, or 0 for full width")
  for field in ("fit_steps", "fit_targets", "random_seeds"):
    if config[field] < 1:
      raise ValueError(f"--config.{field}={config[field]} must be >= 1")
  if not 1 <= config.depth_min <= config.depth_max:
    raise ValueError(
      f"--config.depth_min={config.depth_min}, --config.depth_max={config.depth_max} must "
      "satisfy 1 <= depth_min <= depth_max"
    )
  _check_grid(config, families, overrides)


def _check_grid(
  config: ml_collections.ConfigDict, families: Sequence[str], overrides: frozenset[str]
) -> None:
  """The candidate-grid part of :func:`validate`."""
  default = T.SearchGrid()
  readers = {
    field: [f for f in families if field in T.family(f).search_options]
    for field in ("parallel_widths", "fan_ins", "random_seeds")
  }
  for field, fams in readers.items():
    if not fams and (field in overrides or config[field] != getattr(default, field)):
      read_by = [f for f in T.families() if field in T.family(f).search_options]
      raise ValueError(
        f"--config.{field}={config[field]!r} is read only with {read_by} in --config.families "
        f"(given {list(families)}): it would be ignored; drop it or add such a family"
      )
  for field in ("parallel_widths", "fan_ins"):
    bad = [v for v in config[field] if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
      raise ValueError(f"--config.{field}: {bad[0]!r} is not an integer >= 1")
  n, n_in = config.n, config.n_in or config.n
  for field in ("parallel_widths", "fan_ins"):
    for value in config[field] if readers[field] else ():
      grid = dict(parallel_widths=config.parallel_widths, fan_ins=config.fan_ins)
      grid[field] = (value,)
      specs = candidate_specs(
        n,
        config.depth_min,
        config.depth_max,
        n_in=config.n_in,
        families=readers[field],
        random_seeds=config.random_seeds,
        **grid,
      )
      if not any(_valid(name, n, n_in, params) for name, params in specs):
        raise ValueError(
          f"--config.{field}: {value} gives no valid {' or '.join(readers[field])} topology for "
          f"n={n}, n_in={n_in}, depth in [{config.depth_min}, {config.depth_max}]; drop it "
          "(a value must make at least one such topology)"
        )


def _valid(name: str, n: int, n_in: int, params: dict[str, Any]) -> bool:
  """Whether the family accepts the spec (its own refusals, e.g. a fan-in above the width)."""
  try:
    spec_num_params(name, n, n_in, params)
  except ValueError:
    return False
  return True


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Searches as ``config`` says (:mod:`nf_jax.configs.topo_search`), writes ``workdir`` and
  prints the chosen topology; returns the ranked rows."""
  from tqdm import tqdm

  fit = proxy.FitConfig(
    fit_n=config.fit_n or None, targets=config.fit_targets, steps=config.fit_steps, seed=config.seed
  )
  bar = tqdm(desc="scoring candidates", unit="topo")
  rows = search(
    config.n,
    config.budget,
    config.depth_min,
    config.depth_max,
    n_in=config.n_in,
    score=config.score,
    config=fit,
    progress=bar.update,
    on_total=lambda total: (setattr(bar, "total", total), bar.refresh()),
    families=cli.names(config.families),
    parallel_widths=tuple(config.parallel_widths),
    fan_ins=tuple(config.fan_ins),
    random_seeds=config.random_seeds,
  )
  bar.close()
  write_results(rows, workdir, config.score, config.budget)
  best = rows[0]
  print(f"{len(rows)} candidates within budget {config.budget}; best by {config.score}:")
  print({k: best[k] for k in (*SPEC_COLUMNS, "num_params", config.score)})
  print(f"wrote {workdir}/candidates.csv, best.json, score_vs_params.png")
  return rows


def main() -> None:
  """The command line (``python -m nf_jax.topo_search``, ``nf-jax-topo-search``)."""
  cli.run(
    run,
    cli.config_file("topo_search"),
    validate=validate,
    workdir="runs/topo_search",
    compilation_cache=True,
  )


if __name__ == "__main__":
  main()
