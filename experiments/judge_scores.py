"""Judges the data-free scores on the trained benchmark of the space, beside parameter count.

Every score's settings are frozen in code (``nf_jax.proxy.FitConfig`` defaults and the module
constants of ``nf_jax.zero_cost``) and were fixed before the benchmark's accuracies existed:
the benchmark is data the scores never saw. The accuracy judged is each topology's mean
*validation* accuracy over its seeds (the number selection uses); the test-accuracy version of
the headline metrics is reported beside it.

Scores (larger = predicted better): the proxy's ``fit_score`` and structural scores, the
zero-cost scores ``spectral_gap``, ``log_synflow`` and ``naswot``, one combination
(``fit_score+log_params``: the mean of the two ranks), and the trivial baselines ``log_params``
(the whole MLP's weights), ``depth`` and ``random`` (a seeded uniform draw). For each, the
metrics of :mod:`nf_jax.score_eval` with 95% bootstrap intervals: Spearman and Kendall
overall, the partial Spearman given log(params), the mean Spearman and the top-pick regret
within iso-parameter groups (counts within 5%) beside a random pick's, and the mean top-pick
regret over every budget level.

Command (after the benchmark; 2-core CPU, about 10 minutes, most of it scoring)::

  python experiments/judge_scores.py --results=runs/space_benchmark \
      --out=experiments/results/score_judgement

Expected result: a table per score and the goal checks (within-group Spearman >= 0.5 with its
interval above 0; top-pick regret <= half a random pick's; partial correlation >= 0.3 with its
interval above 0). Writes ``judgement.md``, ``judgement.json``, ``scores.csv`` and
``regret_by_budget.png`` to ``--out``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from nf_jax import calibration as C
from nf_jax import io_utils, proxy, score_eval, space_table
from nf_jax import topology as T
from nf_jax import zero_cost as Z
from nf_jax.pareto import problem as PP

BASELINES = ("log_params", "depth", "random")
PROXY_SCORES = ("fit_score", "eff_rank", "connectivity", "path_entropy", "log_paths")
COMBINED = "fit_score+log_params"
GOALS = dict(iso_spearman=0.5, regret_ratio=0.5, partial_spearman=0.3)
# Feature sets the proxy mode's calibration (``nf_jax.calibration``) may use beyond the table;
# the co-design takes the one with the smallest leave-one-out error on the benchmark.
CALIBRATION_SETS = (
  ("log_params",),
  ("fit_score", "log_params"),
  C.STRUCTURAL_FEATURES,
)


def score_space(specs: Sequence[PP.Spec]) -> dict[str, np.ndarray]:
  """Every score of every spec's hidden ``n x n`` cascade, ``{name: float64[len(specs)]}``."""
  ts = [T.make(f, n, **p) for f, n, p in specs]
  logging.info("proxy scores of %d topologies", len(ts))
  proxy_out = proxy.score_topologies(ts, proxy.FitConfig())
  out = {name: np.asarray(proxy_out[name], np.float64) for name in PROXY_SCORES}
  logging.info("zero-cost scores")
  zc = [Z.zero_cost_scores(t) for t in ts]
  for name in Z.ZERO_COST_SCORES:
    out[name] = np.asarray([z[name] for z in zc], np.float64)
  out["log_params"] = np.log10([PP.model_params(*s) for s in specs])
  out["depth"] = np.asarray([t.depth for t in ts], np.float64)
  out["random"] = np.random.default_rng(0).uniform(size=len(ts))
  return out


def _rank(v: np.ndarray) -> np.ndarray:
  from scipy import stats

  return stats.rankdata(v)


def judge(
  scores: dict[str, np.ndarray],
  val: np.ndarray,
  test: np.ndarray,
  params: np.ndarray,
  samples: int,
) -> dict[str, dict[str, float]]:
  """Metrics of every score against validation accuracy, plus test-accuracy headlines."""
  scores = dict(scores)
  scores[COMBINED] = (_rank(scores["fit_score"]) + _rank(scores["log_params"])) / 2
  out = {}
  for name, score in scores.items():
    finite = np.where(np.isfinite(score), score, np.nanmin(score[np.isfinite(score)]) - 1)
    res = score_eval.evaluate(finite, val, params, samples=samples)
    res["spearman_test"] = score_eval.spearman(finite, test)
    groups = score_eval.iso_groups(params)
    res["iso_spearman_test"] = score_eval.iso_spearman(finite, test, groups)[0]
    out[name] = res
  return out


def compare_calibrations(
  scores: dict[str, np.ndarray], hidden_params: np.ndarray, val: np.ndarray
) -> list[dict[str, float | str]]:
  """Leave-one-out error of the proxy-mode calibration for each of :data:`CALIBRATION_SETS`.

  ``scores`` as from :func:`score_space`; ``hidden_params`` the hidden cascade's weight count
  (the calibration's ``log_params`` feature); ``val`` mean validation accuracy (fraction).
  Returns one row per set: ``features``, ``loo_mae`` and ``loo_abs_q90`` (fraction), and the
  mean-only baseline's ``baseline_mae``.
  """
  columns = dict(scores, log_params=np.log10(hidden_params))
  out: list[dict[str, float | str]] = []
  for names in CALIBRATION_SETS:
    x = np.stack([columns[n] for n in names], axis=1)
    cal = C.fit_features(x, val, names)
    out.append(
      dict(
        features="+".join(names),
        loo_mae=cal.loo_mae,
        loo_abs_q90=cal.loo_abs_q90,
        baseline_mae=cal.baseline_mae,
      )
    )
  return out


def calibration_report(rows: list[dict[str, float | str]]) -> str:
  best = min(rows, key=lambda r: float(r["loo_mae"]))
  lines = [
    "## Calibration features for the proxy mode (beyond the table)",
    "",
    "Ridge map from features to mean validation accuracy, leave-one-out over the trained "
    "topologies (points). The mean-only baseline predicts the training mean.",
    "",
    "| features | LOO MAE | LOO 90% abs error | mean-only MAE |",
    "|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
      f"| {r['features']} | {100 * float(r['loo_mae']):.3f} | "
      f"{100 * float(r['loo_abs_q90']):.3f} | {100 * float(r['baseline_mae']):.3f} |"
    )
  lines += [
    "",
    f"Smallest LOO error: **{best['features']}** (`nf_jax.calibration.DEFAULT_FEATURES` is "
    f"`{'+'.join(C.DEFAULT_FEATURES)}`).",
  ]
  return "\n".join(lines) + "\n"


def _fmt(r: dict[str, float], name: str, scale: float = 1.0) -> str:
  return f"{scale * r[name]:.3f} [{scale * r[name + '_lo']:.3f}, {scale * r[name + '_hi']:.3f}]"


def report(results: dict[str, dict[str, float]], coverage: str) -> str:
  lines = [
    "# Data-free scores judged on the trained benchmark",
    "",
    coverage,
    "",
    "Accuracy: mean validation accuracy over seeds. Intervals: 95% bootstrap (topologies for "
    "overall metrics, iso-parameter groups for within-group ones). Regrets in accuracy points.",
    "",
    "| score | Spearman | Kendall | partial given log(params) | iso-group Spearman | "
    "iso-group regret (random) | budget regret (random) | Spearman on test |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, r in sorted(results.items(), key=lambda kv: -np.nan_to_num(kv[1]["iso_spearman"])):
    lines.append(
      f"| {name} | {_fmt(r, 'spearman')} | {_fmt(r, 'kendall')} | "
      f"{_fmt(r, 'partial_spearman')} | {_fmt(r, 'iso_spearman')} | "
      f"{_fmt(r, 'iso_regret', 100)} ({100 * r['iso_random_regret']:.3f}) | "
      f"{_fmt(r, 'budget_regret', 100)} ({100 * r['budget_random_regret']:.3f}) | "
      f"{r['spearman_test']:.3f} |"
    )
  any_r = next(iter(results.values()))
  lines += [
    "",
    f"Iso-parameter groups (counts within 5%): {any_r['iso_groups']} with >= 3 topologies "
    f"(Spearman), {any_r['iso_regret_groups']} with >= 2 (regret).",
    "",
    "## Goals (frozen scores, never tuned on this benchmark)",
    "",
    "| score | iso Spearman >= 0.5, interval > 0 | regret <= half random | partial >= 0.3, "
    "interval > 0 |",
    "|---|---|---|---|",
  ]
  for name, r in results.items():
    if name in BASELINES:
      continue
    g1 = r["iso_spearman"] >= GOALS["iso_spearman"] and r["iso_spearman_lo"] > 0
    g2 = r["iso_regret"] <= GOALS["regret_ratio"] * r["iso_random_regret"]
    g3 = r["partial_spearman"] >= GOALS["partial_spearman"] and r["partial_spearman_lo"] > 0
    lines.append(
      f"| {name} | {'met' if g1 else 'not met'} | {'met' if g2 else 'not met'} | "
      f"{'met' if g3 else 'not met'} |"
    )
  return "\n".join(lines) + "\n"


def plot_regret(scores, val, params, out_path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(8, 4.5))
  for name in ("log_params", "fit_score", "spectral_gap", "naswot", "random"):
    budgets, ours, chance = score_eval.budget_regret(scores[name], val, params)
    ax.step(budgets, 100 * ours, where="post", label=name)
  ax.step(budgets, 100 * chance, where="post", color="k", ls=":", label="random pick (expected)")
  ax.set_xscale("log")
  ax.set_xlabel("parameter budget (MLP weights)")
  ax.set_ylabel("top-pick regret (validation points)")
  ax.set_title("Regret of each score's pick at every budget")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  io_utils.atomic_savefig(fig, out_path, dpi=110)
  plt.close(fig)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  space = PP.topology_space()
  rows = space_table.build(FLAGS.results, space, allow_partial=True)
  rows = [r for r in rows if np.isfinite(r["val_mean"])]
  if len(rows) < 10:
    sys.exit(f"error: only {len(rows)} trained topologies in {FLAGS.results}; need >= 10")
  by_key = {PP.topology_key(*s): s for s in space}
  specs = [by_key[r["key"]] for r in rows]
  val = np.asarray([r["val_mean"] for r in rows])
  test = np.asarray([r["test_mean"] for r in rows])
  params = np.asarray([r["model_params"] for r in rows], np.float64)
  scores = score_space(specs)
  results = judge(scores, val, test, params, FLAGS.samples)
  coverage = (
    f"Benchmark: {len(rows)} of {len(space)} topologies of the space trained "
    f"(space {space_table.space_hash()}, {FLAGS.results})."
  )
  os.makedirs(FLAGS.out, exist_ok=True)
  hidden_params = np.asarray([T.make(f, n, **p).num_params for f, n, p in specs], np.float64)
  calibrations = compare_calibrations(scores, hidden_params, val)
  text = report(results, coverage) + "\n" + calibration_report(calibrations)
  io_utils.atomic_write_text(os.path.join(FLAGS.out, "judgement.md"), text)
  io_utils.atomic_write_text(
    os.path.join(FLAGS.out, "judgement.json"),
    json.dumps(dict(scores=results, calibration=calibrations), indent=1, default=float),
  )
  names = sorted(scores)
  table = [
    {k: r[k] for k in ("key", "val_mean", "test_mean", "model_params")}
    | {n: f"{scores[n][i]:.6g}" for n in names}
    for i, r in enumerate(rows)
  ]
  columns = ["key", "val_mean", "test_mean", "model_params", *names]
  io_utils.atomic_write_csv(os.path.join(FLAGS.out, "scores.csv"), table, columns)
  plot_regret(scores, val, params, os.path.join(FLAGS.out, "regret_by_budget.png"))
  print(text)


if __name__ == "__main__":
  flags.DEFINE_string("results", None, "Workdir of the space benchmark (results.csv).")
  flags.DEFINE_string("out", None, "Folder for the judgement.")
  flags.DEFINE_integer("samples", 1000, "Bootstrap resamples.")
  flags.mark_flags_as_required(["results", "out"])
  FLAGS = flags.FLAGS
  app.run(main)
