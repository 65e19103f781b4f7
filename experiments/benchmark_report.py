"""Report of the trained space benchmark: the paper's claims re-tested with validation selection.

Reads the benchmark workdir (``results.csv``, one row per seed) and writes ``report.md``,
``families_by_budget.csv`` and ``accuracy_vs_params.png`` to ``--out``:

* Coverage, recipe, wall time, and the trivial baselines side by side: the ``nn.Dense`` MLP,
  chance (10%), and the parameter count's own ranking power.
* **Claim: parallel butterfly + skip is the best family at any sparsity and depth.** The space
  is cut into budget bands (MLP weights, a factor 2 wide). In each band, each family's best
  topology is *selected on validation* (mean over seeds); the band's winner is the family
  whose pick has the highest validation mean, and the picks' *test* accuracies are reported
  beside. Paired over bands, the test accuracy of the parallel-butterfly+skip pick is compared
  with the best other family's pick (Wilcoxon signed-rank; per band the pair shares the budget).
* **Skip connections**: every topology with a skip twin, test accuracy paired by topology
  and seed (Wilcoxon signed-rank), by family.

Command::

  python experiments/benchmark_report.py --results=runs/space_benchmark \
      --out=experiments/results/space_benchmark

Expected runtime: seconds. Expected result: the tables below; whatever they say about the
paper's claims is reported as measured.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags
from scipy import stats

from nf_jax import io_utils, space_table
from nf_jax import results as R
from nf_jax.pareto import problem as PP

CLAIMED = ("parallel_butterfly", True)  # (family, skip) the paper reports best


def _float(v: Any) -> float:
  try:
    return float(v)
  except (TypeError, ValueError):
    return math.nan


def per_topology(results_dir: str) -> list[dict[str, Any]]:
  """Per space spec with rows: family, skip, params, per-seed val/test (dicts by seed)."""
  rows = R.read_results(os.path.join(results_dir, "results.csv"))
  by_identity: dict[tuple, list[dict[str, str]]] = {}
  for r in rows:
    by_identity.setdefault(space_table.row_identity(r), []).append(r)
  out = []
  for spec in PP.topology_space():
    members = by_identity.get(space_table.spec_identity(spec), [])
    if not members:
      continue
    out.append(
      dict(
        key=PP.topology_key(*spec),
        family=spec[0],
        n=spec[1],
        skip=bool(spec[2]["skip"]),
        params=PP.model_params(*spec),
        val={int(m["train_seed"]): _float(m["val_accuracy"]) for m in members},
        test={int(m["train_seed"]): _float(m["test_accuracy"]) for m in members},
      )
    )
  return out


def _mean(d: dict[int, float]) -> float:
  v = np.asarray(list(d.values()))
  v = v[np.isfinite(v)]
  return float(v.mean()) if v.size else math.nan


def bands(topos: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
  """Budget bands ``[lo, 2 lo)`` from the smallest model up, covering every topology."""
  lo = min(t["params"] for t in topos)
  hi = max(t["params"] for t in topos)
  out = []
  while lo <= hi:
    out.append((lo, 2 * lo))
    lo *= 2
  return out


def family_table(topos: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per band and (family, skip): the topology with the best validation mean, and its test."""
  rows = []
  for lo, hi in bands(topos):
    inside = [t for t in topos if lo <= t["params"] < hi and math.isfinite(_mean(t["val"]))]
    kinds = sorted({(t["family"], t["skip"]) for t in inside})
    for family, skip in kinds:
      cands = [t for t in inside if (t["family"], t["skip"]) == (family, skip)]
      pick = max(cands, key=lambda t: _mean(t["val"]))
      rows.append(
        dict(
          band=f"[{lo}, {hi})",
          family=family,
          skip=skip,
          candidates=len(cands),
          pick=pick["key"],
          val=_mean(pick["val"]),
          test=_mean(pick["test"]),
          test_by_seed=dict(pick["test"]),
        )
      )
  return rows


def claim_test(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Per band with the claimed kind present: its pick's test accuracy against the best other
  kind's pick (both selected on validation). Two paired tests: Wilcoxon signed-rank over bands
  (the seed-mean differences) and over (band, seed) pairs (each seed's two models share the
  seed's initialisation stream and data order)."""
  by_band: dict[str, list[dict[str, Any]]] = {}
  for r in table:
    by_band.setdefault(r["band"], []).append(r)
  diffs, seed_diffs, wins, lines = [], [], 0, []
  for band, rows in by_band.items():
    claimed = [r for r in rows if (r["family"], r["skip"]) == CLAIMED]
    others = [r for r in rows if (r["family"], r["skip"]) != CLAIMED]
    winner = max(rows, key=lambda r: r["val"])
    per_seed: dict[int, float] = {}
    if claimed and others:
      best_other = max(others, key=lambda r: r["val"])
      diffs.append(claimed[0]["test"] - best_other["test"])
      wins += int(winner is claimed[0])
      a, b = claimed[0].get("test_by_seed", {}), best_other.get("test_by_seed", {})
      per_seed = {s: a[s] - b[s] for s in sorted(set(a) & set(b))}
      seed_diffs += [d for d in per_seed.values() if math.isfinite(d)]
    lines.append((band, winner, claimed[0] if claimed else None, per_seed))

  def wilcoxon(d: list[float]) -> float:
    if len(d) < 2 or not np.any(np.asarray(d) != 0):
      return math.nan
    return float(stats.wilcoxon(d).pvalue)

  return dict(
    bands_with_claimed=len(diffs),
    claimed_wins=wins,
    mean_test_difference=float(np.mean(diffs)) if diffs else math.nan,
    wilcoxon_p=wilcoxon(diffs),
    seed_pairs=len(seed_diffs),
    wilcoxon_seed_p=wilcoxon(seed_diffs),
    winners=lines,
  )


def skip_test(topos: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per family: test accuracy with skip minus without, paired by topology and seed."""
  twins: dict[str, dict[bool, dict[str, Any]]] = {}
  for t in topos:
    base = t["key"].replace("skip=True", "skip=").replace("skip=False", "skip=")
    twins.setdefault(base, {})[t["skip"]] = t
  per_family: dict[str, list[float]] = {}
  for pair in twins.values():
    if True in pair and False in pair:
      for seed in set(pair[True]["test"]) & set(pair[False]["test"]):
        d = pair[True]["test"][seed] - pair[False]["test"][seed]
        if math.isfinite(d):
          per_family.setdefault(pair[True]["family"], []).append(d)
  out = []
  for family, d in sorted(per_family.items()):
    d = np.asarray(d)
    p = stats.wilcoxon(d).pvalue if len(d) >= 2 and np.any(d != 0) else math.nan
    out.append(dict(family=family, pairs=len(d), mean=float(d.mean()), wilcoxon_p=float(p)))
  return out


def plot(topos: Sequence[dict[str, Any]], dense: float, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(8, 5))
  # One colour per family, one marker per skip (the default cycle repeats after 10 series).
  colours = plt.get_cmap("tab10").colors
  for i, family in enumerate(sorted({t["family"] for t in topos})):
    for skip, marker in ((False, "o"), (True, "^")):
      pts = [t for t in topos if t["family"] == family and t["skip"] == skip]
      if pts:
        ax.scatter(
          [t["params"] for t in pts],
          [100 * _mean(t["val"]) for t in pts],
          s=14,
          marker=marker,
          color=colours[i % len(colours)],
          label=f"{family}{' + skip' if skip else ''}",
        )
  if math.isfinite(dense):
    ax.axhline(100 * dense, color="k", lw=1, label="nn.Dense MLP (validation)")
  ax.set_xscale("log")
  ax.set_xlabel("MLP weights (log)")
  ax.set_ylabel("validation accuracy (%), mean over seeds")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  io_utils.atomic_savefig(fig, path, dpi=110)
  plt.close(fig)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  topos = per_topology(FLAGS.results)
  if not topos:
    raise app.UsageError(f"no topology of the space has rows in {FLAGS.results}")
  rows = R.read_results(os.path.join(FLAGS.results, "results.csv"))
  dense_rows = [r for r in rows if r["name"] == "dense" and r["weight_init"] == R.DENSE_INIT]
  dense_val = np.mean([_float(r["val_accuracy"]) for r in dense_rows]) if dense_rows else math.nan
  dense_test = [_float(r["test_accuracy"]) for r in dense_rows]
  table = family_table(topos)
  claim = claim_test(table)
  skips = skip_test(topos)
  seconds = sum(_float(r["seconds"]) for r in rows)
  total = len(PP.topology_space())
  lines = [
    "# The trained benchmark of the co-design space",
    "",
    f"Coverage: **{len(topos)} of {total} topologies** ({len(rows)} trained models incl. the "
    f"nn.Dense baseline; space {space_table.space_hash()}). Summed training time "
    f"{seconds / 3600:.2f} h (per-model share of each vmapped group's wall time).",
    "",
    "Baselines: nn.Dense MLP 784-1024-1024-10 "
    + (
      f"validation {100 * dense_val:.2f}%, test "
      + ", ".join(f"{100 * v:.2f}" for v in dense_test)
      + "% (per seed)"
      if dense_rows
      else "not trained yet"
    )
    + "; chance 10%.",
    "",
    "## Claim: parallel butterfly + skip is the best family at any budget",
    "",
    "Per budget band (MLP weights), each family's topology with the best validation mean; the "
    "winner by validation, its test accuracy beside it; the parallel butterfly + skip pick "
    "and, per seed, its test accuracy minus the best other family's pick.",
    "",
    "| band | winner (validation) | val % | test % | parallel butterfly + skip: val % | "
    "test % | test difference per seed (points) |",
    "|---|---|---|---|---|---|---|",
  ]
  for band, w, c, per_seed in claim["winners"]:
    ours = f"{100 * c['val']:.2f} | {100 * c['test']:.2f}" if c else "not in band | -"
    seeds = ", ".join(f"{100 * d:+.2f}" for d in per_seed.values()) or "-"
    lines.append(
      f"| {band} | {w['family']}{' + skip' if w['skip'] else ''} | {100 * w['val']:.2f} | "
      f"{100 * w['test']:.2f} | {ours} | {seeds} |"
    )
  lines += [
    "",
    f"Parallel butterfly + skip wins {claim['claimed_wins']} of the "
    f"{claim['bands_with_claimed']} bands where it and another family were trained; its "
    "pick's test accuracy minus the "
    f"best other family's pick: mean {100 * claim['mean_test_difference']:+.2f} points "
    f"(Wilcoxon signed-rank over bands, p = {claim['wilcoxon_p']:.3g}; over the "
    f"{claim['seed_pairs']} (band, seed) pairs, p = {claim['wilcoxon_seed_p']:.3g}).",
    "",
    "## Skip connections (test accuracy, paired by topology and seed)",
    "",
    "| family | pairs | mean difference (points) | Wilcoxon p |",
    "|---|---|---|---|",
  ]
  for s in skips:
    lines.append(
      f"| {s['family']} | {s['pairs']} | {100 * s['mean']:+.2f} | {s['wilcoxon_p']:.3g} |"
    )
  os.makedirs(FLAGS.out, exist_ok=True)
  text = "\n".join(lines) + "\n"
  io_utils.atomic_write_text(os.path.join(FLAGS.out, "report.md"), text)
  io_utils.atomic_write_csv(
    os.path.join(FLAGS.out, "families_by_budget.csv"),
    [{k: v for k, v in r.items() if k != "test_by_seed"} for r in table],
  )
  io_utils.atomic_write_text(
    os.path.join(FLAGS.out, "claims.json"),
    json.dumps(dict(claim=claim, skip=skips), indent=1, default=str),
  )
  plot(topos, dense_val, os.path.join(FLAGS.out, "accuracy_vs_params.png"))
  print(text)


if __name__ == "__main__":
  flags.DEFINE_string("results", None, "Workdir of the space benchmark (results.csv).")
  flags.DEFINE_string("out", None, "Output folder.")
  flags.mark_flags_as_required(["results", "out"])
  FLAGS = flags.FLAGS
  app.run(main)
