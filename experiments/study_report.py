r"""Turns a topology-study workdir into the committed results and the claim tables.

Reads ``<study>/results.csv`` (the ``nf_jax.results.RESULT_COLUMNS`` contract; several workdirs
are merged, for a study split over processes, and a model in two of them is refused), and writes to
``--out``: a copy of ``results.csv``, ``summary.csv`` (mean, std over seeds per configuration),
the two plots of :func:`nf_jax.sweep.plot`, and ``report.md`` with

* every configuration's test accuracy (mean +- std over seeds, in points), parameters, density;
* the paper's claim, "parallel butterfly + skip wins whatever the sparsity or depth", tested in
  each density band and each depth band: the band's best configuration, the best parallel
  butterfly + skip, the gap, and whether the gap is within one standard error of the difference
  (a tie) or not;
* the init ablation: depth-aware against per-sublayer He at the same depth-32 topology;
* the issue's goals (dense >= 89%; best cascade at <= 10% density within 1 point of dense);
* with ``--reference=<results.csv>`` (another run of the same study), a reproduction table: each
  configuration's mean here against the reference, and how many differ by more than two
  standard errors of the difference.

Command (seconds; no training)::

  python experiments/study_report.py --study=runs/topology_study \
      --out=experiments/results/topology_study
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags

from nf_jax import io_utils, sweep
from nf_jax import results as R

# Bands as (low, high, label), both ends inclusive; a density is a fraction of the dense layer.
DENSITY_BANDS = (
  (0.0, 0.025, "<= 2.5%"),
  (0.025, 0.05, "2.5-5%"),
  (0.05, 0.13, "5-12.5%"),
  (0.13, 0.99, "12.5-99%"),
)
DEPTH_BANDS = ((1, 3, "shallow (1-3)"), (4, 16, "medium (4-16)"), (17, 10_000, "deep (>= 17)"))


def _label(s: dict[str, Any]) -> str:
  parts = [s["name"]]
  for key, short in (("radix", "r"), ("width", "w"), ("fan_in", "f"), ("depth", "d")):
    if str(s.get(key, "")) not in ("", "nan", "None"):
      parts.append(f"{short}{s[key]}")
  if str(s["skip"]) == "True":
    parts.append("+skip")
  if s["weight_init"] != "depth_aware" and s["name"] != "dense":
    parts.append(f"[{s['weight_init']}]")
  return " ".join(parts)


def _pts(s: dict[str, Any]) -> str:
  return f"{100 * s['test_accuracy_mean']:.2f} +- {100 * s['test_accuracy_std']:.2f}"


def _is_pb_skip(s: dict[str, Any]) -> bool:
  return s["name"] == "parallel_butterfly" and str(s["skip"]) == "True"


def _stderr(s: dict[str, Any]) -> float:
  return s["test_accuracy_std"] / math.sqrt(max(s["seeds"] - s["diverged"], 1))


def claim_rows(summary: Sequence[dict[str, Any]], key: str, bands) -> list[dict[str, Any]]:
  """Per band of ``key``: the best configuration against the best parallel butterfly + skip."""
  rows = []
  for low, high, label in bands:
    members = [
      s
      for s in summary
      if s["name"] != "dense"
      and s["weight_init"] == "depth_aware"
      and math.isfinite(s["test_accuracy_mean"])
      and low <= float(s[key]) <= high
    ]
    if not members:
      continue
    best = max(members, key=lambda s: s["test_accuracy_mean"])
    pb = [s for s in members if _is_pb_skip(s)]
    row = dict(band=label, best=best, pb=None, gap=None, verdict="no parallel butterfly + skip")
    if pb:
      top = max(pb, key=lambda s: s["test_accuracy_mean"])
      gap = best["test_accuracy_mean"] - top["test_accuracy_mean"]
      noise = math.hypot(_stderr(best), _stderr(top))
      if top is best:
        verdict = "wins"
      elif gap <= noise:
        verdict = f"ties (gap {100 * gap:.2f} <= 1 s.e. {100 * noise:.2f})"
      else:
        verdict = f"loses by {100 * gap:.2f} points (1 s.e. {100 * noise:.2f})"
      row.update(pb=top, gap=gap, verdict=verdict)
    rows.append(row)
  return rows


def ablation_rows(summary: Sequence[dict[str, Any]]) -> list[tuple[dict, dict]]:
  """Pairs (depth-aware, He) of the same topology."""
  same = lambda a, b: all(
    str(a[k]) == str(b[k]) for k in ("name", "depth", "radix", "width", "fan_in", "skip")
  )
  pairs = []
  for he in (s for s in summary if s["weight_init"] == "he" and s["name"] != "dense"):
    for ours in summary:
      if ours["weight_init"] == "depth_aware" and same(ours, he):
        pairs.append((ours, he))
  return pairs


def reproduction_lines(
  summary: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]], reference_name: str
) -> list[str]:
  """Markdown comparing each configuration's mean accuracy with another run's (points)."""
  key = lambda s: tuple(str(s[c]) for c in sweep.CONFIG_COLUMNS)  # noqa: E731
  theirs = {key(s): s for s in reference}
  pairs = [(s, theirs[key(s)]) for s in summary if key(s) in theirs]
  pairs = [
    (a, b)
    for a, b in pairs
    if math.isfinite(a["test_accuracy_mean"]) and math.isfinite(b["test_accuracy_mean"])
  ]
  if not pairs:
    return ["", f"## Reproduction of {reference_name}", "", "No configuration in common."]
  diffs = np.array([a["test_accuracy_mean"] - b["test_accuracy_mean"] for a, b in pairs]) * 100
  se = np.array([math.hypot(_stderr(a), _stderr(b)) for a, b in pairs]) * 100
  outside = int(np.sum(np.abs(diffs) > 2 * se))
  lines = [
    "",
    f"## Reproduction of {reference_name}",
    "",
    f"{len(pairs)} configurations with finite accuracy in both runs. Difference (this run minus "
    f"the reference), points: mean {diffs.mean():+.2f}, mean absolute {np.abs(diffs).mean():.2f}"
    f", largest {diffs[np.argmax(np.abs(diffs))]:+.2f}; {outside} of {len(pairs)} differ by more "
    "than two standard errors of the difference (about 5% would by chance).",
    "",
    "| configuration | this run | reference | difference | 2 s.e. |",
    "|---|---|---|---|---|",
  ]
  for (a, b), d, e in sorted(zip(pairs, diffs, se), key=lambda p: -abs(p[1])):
    lines.append(f"| {_label(a)} | {_pts(a)} | {_pts(b)} | {d:+.2f} | {2 * e:.2f} |")
  return lines


def report_markdown(
  rows: Sequence[dict[str, Any]],
  summary: Sequence[dict[str, Any]],
  reference: tuple[str, Sequence[dict[str, Any]]] | None = None,
) -> str:
  goals = sweep.check_goals(summary)
  seconds = float(np.nansum([float(r["seconds"] or "nan") for r in rows]))
  lines = [
    "# Topology study: results",
    "",
    f"{len(rows)} trained models, {len(summary)} configurations; training time summed over the "
    f"vmapped groups: {seconds / 60:.1f} min (excludes start-up and any watchdog restarts).",
    "Accuracies are test accuracy in points, mean +- std over seeds.",
    "",
    "## Goals",
    "",
  ]
  dense = goals["dense_accuracy"]
  best = goals["best_sparse"]
  lines.append(
    f"* dense MLP: {100 * dense:.2f}% -> >= 89%: **{goals['dense_at_least_89']}**"
    if dense is not None
    else "* dense MLP: not in the results"
  )
  if best is not None and dense is not None:
    lines.append(
      f"* best cascade at <= 10% density: {_label(best)} ({100 * best['density']:.2f}% "
      f"density), {_pts(best)} -> within 1 point of dense: "
      f"**{goals['best_sparse_within_1_point']}** (gap "
      f"{100 * (dense - best['test_accuracy_mean']):.2f})"
    )
  for title, key, bands in (
    ("density", "density", DENSITY_BANDS),
    ("depth", "depth", DEPTH_BANDS),
  ):
    lines += [
      "",
      f"## Claim by {title}: does parallel butterfly + skip win?",
      "",
      f"| {title} band | best configuration | best | best parallel butterfly + skip | it | "
      "verdict |",
      "|---|---|---|---|---|---|",
    ]
    for row in claim_rows(summary, key, bands):
      pb = row["pb"]
      lines.append(
        f"| {row['band']} | {_label(row['best'])} | {_pts(row['best'])} | "
        f"{_label(pb) if pb else '-'} | {_pts(pb) if pb else '-'} | {row['verdict']} |"
      )
  lines += [
    "",
    "## Init ablation (depth 32): depth-aware against per-sublayer He",
    "",
    "| topology | depth-aware | He | difference (points) |",
    "|---|---|---|---|",
  ]
  for ours, he in ablation_rows(summary):
    diff = (
      f"{100 * (ours['test_accuracy_mean'] - he['test_accuracy_mean']):+.2f}"
      if math.isfinite(he["test_accuracy_mean"])
      else "He diverged"
    )
    he_text = _pts(he) if math.isfinite(he["test_accuracy_mean"]) else "diverged (NaN)"
    lines.append(f"| {_label(ours)} | {_pts(ours)} | {he_text} | {diff} |")
  lines += [
    "",
    "## Every configuration",
    "",
    "| configuration | params | density | test accuracy | seeds | diverged |",
    "|---|---|---|---|---|---|",
  ]
  order = sorted(summary, key=lambda s: -np.nan_to_num(s["test_accuracy_mean"], nan=-1))
  for s in order:
    lines.append(
      f"| {_label(s)} | {s['num_params']:,} | {100 * s['density']:.2f}% | {_pts(s)} | "
      f"{s['seeds']} | {s['diverged']} |"
    )
  if reference is not None:
    lines += reproduction_lines(summary, reference[1], reference[0])
  return "\n".join(lines) + "\n"


def merged_rows(studies: Sequence[str]) -> list[dict[str, str]]:
  """The rows of every study workdir (a study split over processes or hosts), in order.

  Raises:
    FileNotFoundError: a workdir without rows.
    ValueError: the same model (configuration, seeds, epochs) in two workdirs.
  """
  rows, seen = [], {}
  for study in studies:
    results = os.path.join(study, "results.csv")
    part = R.read_results(results)
    if not part:
      raise FileNotFoundError(f"{results} has no rows: run the study first (see its config)")
    for row in part:
      key = R.model_key(row, row["epochs"])
      if key in seen:
        raise ValueError(f"model {key} is in both {seen[key]} and {study}; drop one of them")
      seen[key] = study
      rows.append(row)
  return rows


def write_report(
  studies: str | Sequence[str], out: str, reference: str | None = None
) -> dict[str, Any]:
  """Writes the committed artefacts of the study workdir(s) into ``out``; returns the goals.

  ``reference``: a ``results.csv`` of another run of the study, compared in ``report.md``.
  """
  rows = merged_rows([studies] if isinstance(studies, str) else studies)
  summary = sweep.summarise(rows)
  ref = None
  if reference:
    ref_rows = R.read_results(reference)
    if not ref_rows:
      raise FileNotFoundError(f"--reference={reference} has no rows")
    ref = (reference, sweep.summarise(ref_rows))
  os.makedirs(out, exist_ok=True)
  R.write_results(os.path.join(out, "results.csv"), rows)
  sweep.write_summary_csv(os.path.join(out, "summary.csv"), summary)
  sweep.plot(summary, out)
  io_utils.atomic_write_text(os.path.join(out, "report.md"), report_markdown(rows, summary, ref))
  return sweep.check_goals(summary)


FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
  del argv
  goals = write_report(FLAGS.study, FLAGS.out, FLAGS.reference or None)
  print(f"wrote {FLAGS.out}/report.md; goals: {goals}")


if __name__ == "__main__":
  flags.DEFINE_list(
    "study", ["runs/topology_study"], "Study workdir(s) holding results.csv (merged in order)."
  )
  flags.DEFINE_string("out", "experiments/results/topology_study", "Output folder.")
  flags.DEFINE_string(
    "reference", "", "Optional results.csv of another run of the study, compared in report.md."
  )
  app.run(main)
