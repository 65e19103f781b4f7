"""What a search reports: its front metrics (moocore), printed picks and written outputs.

Non-dominated filtering and the hypervolume are moocore's exact algorithms. Outputs in the
workdir (:data:`OUTPUTS`): ``pareto.csv`` (genes + 6 objectives of the non-dominated feasible
designs), ``evaluations.csv`` (every evaluation, with its generation), ``hypervolume.csv``
(normalised hypervolume of the archive front per generation), ``summary.json``, ``pairs.png``
and ``parallel.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import moocore
import numpy as np

from nf_jax import calibration as C
from nf_jax import io_utils
from nf_jax.pareto import problem as PP
from nf_jax.pareto.accuracy import DETAIL_COLUMNS, AccuracyDetails
from nf_jax.pareto.config import SearchConfig

OUTPUTS = (
  "pareto.csv",
  "evaluations.csv",
  "hypervolume.csv",
  "summary.json",
  "pairs.png",
  "parallel.png",
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
    io_utils.atomic_write_csv(path, rows, columns if name == "pareto.csv" else None, ".6g")
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


def console_summary(result: SearchResult, seconds: float) -> str:
  """What the CLI prints at the end: the calibration (if any), the counts and the picks."""
  lines = []
  if result.calibration is not None:
    cal = result.calibration
    lines.append(
      f"accuracy calibration: {cal.num_rows} rows of {cal.source}, features {cal.names}: "
      f"leave-one-out MAE {cal.loo_mae:.4f} (predicting the mean: {cal.baseline_mae:.4f})"
    )
  lines.append(
    f"{len(result.genomes)} evaluations, {len(result.evaluator.cache)} unique designs, "
    f"front {len(result.front)}, hypervolume {result.hv[-1]:.4f}, {seconds:.0f} s"
  )
  lines.append(summary_table(result))
  return "\n".join(lines)
