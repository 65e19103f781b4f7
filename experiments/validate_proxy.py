r"""Validates the data-free scores against trained accuracy from the topology study.

Reads one or more study results CSVs (``<study workdir>/results.csv``, one row per trained
model; contract: columns ``name,n,n_in,depth,radix,width,fan_in,skip,topology_seed,
train_seed,weight_init,num_params,density,test_accuracy,...``, where ``name`` plus the
non-empty topology cells rebuild the topology with ``nf_jax.topology.make``). For each task
(CSV) it averages ``test_accuracy`` over the runs of each distinct topology, scores every
topology with :func:`nf_jax.proxy.score_topologies`, and reports for each score the Spearman
and Kendall rank correlations (with p-values, ``scipy.stats``) between the score, oriented so
that larger means better (``proxy.HIGHER_IS_BETTER``), and mean accuracy. It also checks the
search's criterion: the topology ranked first by ``--score`` (as ``nf_jax.topo_search`` ranks)
among those within ``--budget`` must be within 0.5 accuracy points of the best trained one.

Command (2-core CPU; a minute per ~50 topologies at the default fit width)::

  python experiments/validate_proxy.py --results=runs/study/results.csv \
    --labels=fashion_mnist --workdir=runs/validate_proxy

Expected result (issue 5's goals): Spearman rho >= 0.8 for the best score over >= 12
topologies, and the top pick within 0.5 points. Writes ``validation.csv``, ``validation.md``,
``topologies.csv`` and ``scatter.png`` to ``--workdir`` (atomically).
"""

from __future__ import annotations

import collections
import csv
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app, flags, logging
from scipy import stats

from nf_jax import io_utils, proxy
from nf_jax import results as R
from nf_jax import topo_search as S
from nf_jax import topology as T
from nf_jax.calibration import accuracy_column

# The study's results contract is defined once, in nf_jax.results; these columns must be present.
REQUIRED = tuple(
  c
  for c in R.RESULT_COLUMNS
  if c
  not in (
    "train_seed",
    "weight_init",
    "density",
    "train_accuracy",
    "final_loss",
    "epochs",
    "seconds",
    "val_accuracy",  # absent from results trained before the validation split
    "recipe",
  )
)
TOPOLOGY_COLUMNS = T.ROW_COLUMNS
GAP_POINTS = 0.5  # issue 5: the top pick within 0.5 accuracy points of the best
GOAL_RHO = 0.8  # issue 5: Spearman rho of the best score


def load_results(path: str) -> list[dict[str, str]]:
  """Rows of a study results CSV; ValueError naming any missing column."""
  if os.path.isdir(path):
    path = os.path.join(path, "results.csv")
  if not os.path.exists(path):
    raise ValueError(f"results={path!r} does not exist; pass the study's results.csv or workdir")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f"{path}: missing columns {missing}; the study contract needs {REQUIRED}")
    return list(reader)


def build_topology(row: dict[str, str], strict: bool = True) -> T.Topology:
  """The topology of a results row (``nf_jax.topology.TopologySpec.from_row``).

  A ``num_params`` cell that disagrees with the rebuilt tables raises (``strict``) or is
  logged as a warning and ignored (the tables are what the scores read).
  """
  t = T.TopologySpec.from_row(row).make()
  expected = int(float(row["num_params"])) if row["num_params"].strip() else t.num_params
  if t.num_params != expected:
    message = (
      f"row {dict((k, row[k]) for k in TOPOLOGY_COLUMNS)} rebuilds {t} with {t.num_params} "
      f"weights but num_params={expected}: the CSV does not follow the topology contract"
    )
    if strict:
      raise ValueError(message)
    logging.warning("%s; using the rebuilt count", message)
  return t


def mean_accuracy(rows: Sequence[dict[str, str]], strict: bool = True) -> list[dict[str, Any]]:
  """One entry per distinct topology: topology, mean/std accuracy (validation when every row
  has it, else the legacy test accuracy) and number of runs.

  Init-ablation rows (``nf_jax.results.is_init_ablation``) and diverged runs (NaN accuracy) are
  left out, the latter with a warning.
  """
  groups: dict[T.Topology, list[float]] = collections.OrderedDict()
  column = accuracy_column(rows)  # validation when the results have it
  for row in rows:
    if R.is_init_ablation(row):
      continue
    accuracy = float(row[column])
    if not math.isfinite(accuracy):
      logging.warning("left out a diverged run (NaN accuracy): %s", row)
      continue
    groups.setdefault(build_topology(row, strict), []).append(accuracy)
  return [
    dict(topology=t, accuracy=float(np.mean(a)), accuracy_std=float(np.std(a)), runs=len(a))
    for t, a in groups.items()
  ]


def correlations(scores: dict[str, np.ndarray], accuracy: np.ndarray) -> list[dict[str, Any]]:
  """Spearman and Kendall (tau-b) of each oriented score with accuracy, with p-values."""
  out = []
  for name, values in scores.items():
    oriented = values if proxy.HIGHER_IS_BETTER[name] else -values
    if np.ptp(oriented) == 0 or np.ptp(accuracy) == 0:
      logging.warning("%s or accuracy is constant: rank correlation undefined", name)
      rho = rho_p = tau = tau_p = math.nan
    else:
      rho, rho_p = stats.spearmanr(oriented, accuracy)
      tau, tau_p = stats.kendalltau(oriented, accuracy)
    out.append(
      dict(
        score=name,
        spearman_rho=float(rho),
        spearman_p=float(rho_p),
        kendall_tau=float(tau),
        kendall_p=float(tau_p),
      )
    )
  return out


def _with_sparse_only(
  scores: dict[str, np.ndarray], accuracy: np.ndarray, entries: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
  """:func:`correlations` over all topologies, plus Spearman over the sparse ones only.

  The dense baseline tops both the scores and accuracy; the sparse-only rho shows whether
  the score also orders the sparse topologies among themselves.
  """
  rows = correlations(scores, accuracy)
  sparse = np.asarray([e["topology"].name != "dense" for e in entries])
  if sparse.all() or sparse.sum() < 3:
    for r in rows:
      r.update(spearman_rho_sparse=r["spearman_rho"], spearman_p_sparse=r["spearman_p"])
    return rows
  subset = correlations({k: v[sparse] for k, v in scores.items()}, accuracy[sparse])
  for r, sub in zip(rows, subset):
    r.update(spearman_rho_sparse=sub["spearman_rho"], spearman_p_sparse=sub["spearman_p"])
  return rows


def top_pick(
  entries: Sequence[dict[str, Any]], scores: np.ndarray, score: str, budget: int
) -> dict[str, Any]:
  """The search's pick among trained topologies within ``budget`` vs. the best trained one.

  Accuracy points: accuracies in [0, 1] are scaled by 100 first.
  """
  within = [i for i, e in enumerate(entries) if e["topology"].num_params <= budget]
  if not within:
    smallest = min(e["topology"].num_params for e in entries)
    raise ValueError(f"budget={budget} admits no trained topology; use >= {smallest}")
  acc = np.asarray([entries[i]["accuracy"] for i in within])
  scale = 100.0 if max(e["accuracy"] for e in entries) <= 1.0 else 1.0
  params = np.asarray([entries[i]["topology"].num_params for i in within])
  order = S.rank_order(scores[within], params, proxy.HIGHER_IS_BETTER[score])
  pick, best = within[order[0]], within[int(np.argmax(acc))]
  gap = (entries[best]["accuracy"] - entries[pick]["accuracy"]) * scale
  return dict(
    budget=budget,
    candidates=len(within),
    pick=repr(entries[pick]["topology"]),
    pick_accuracy=entries[pick]["accuracy"],
    best=repr(entries[best]["topology"]),
    best_accuracy=entries[best]["accuracy"],
    gap_points=float(gap),
    within_goal=bool(gap <= GAP_POINTS),
  )


def _plot(tasks: dict[str, dict[str, Any]], path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = list(proxy.SCORE_NAMES)
  fig, axes = plt.subplots(
    len(tasks), len(names), figsize=(2.6 * len(names), 2.6 * len(tasks)), squeeze=False
  )
  for row, (label, task) in enumerate(tasks.items()):
    fam = [e["topology"].name for e in task["entries"]]
    acc = np.asarray([e["accuracy"] for e in task["entries"]])
    corr = {c["score"]: c for c in task["correlations"]}
    for col, name in enumerate(names):
      ax = axes[row, col]
      for family in T.FAMILIES:
        sel = [i for i, f in enumerate(fam) if f == family]
        if sel:
          ax.scatter(task["scores"][name][sel], acc[sel], s=12, label=family)
      ax.set_title(f"{name}\nrho={corr[name]['spearman_rho']:.2f}", fontsize=8)
      ax.tick_params(labelsize=6)
      if col == 0:
        ax.set_ylabel(f"{label}\nmean test accuracy", fontsize=8)
  axes[0, 0].legend(fontsize=5)
  fig.tight_layout()
  io_utils.atomic_savefig(fig, path, dpi=110)
  plt.close(fig)


def validate(
  results: Sequence[str],
  labels: Sequence[str],
  workdir: str,
  *,
  config: proxy.FitConfig | None = None,
  score: str = proxy.PRIMARY_SCORE,
  budget: int | None = None,
  min_topologies: int = 12,
  strict: bool = False,
) -> dict[str, dict[str, Any]]:
  """Runs the validation and writes its files; returns ``{label: task summary}``.

  Raises:
    ValueError: a task has fewer than ``min_topologies`` distinct topologies, the labels do
      not match the results, or a CSV breaks the contract (a wrong ``num_params`` only with
      ``strict``; otherwise it is logged).
  """
  config = config or proxy.FitConfig()
  if len(labels) != len(results):
    raise ValueError(f"labels={list(labels)} must name each of the {len(results)} results")
  if score not in proxy.SCORE_NAMES:
    raise ValueError(f"score={score!r} is not one of {proxy.SCORE_NAMES}")
  tasks: dict[str, dict[str, Any]] = {}
  cache: dict[T.Topology, dict[str, float]] = {}
  for path, label in zip(results, labels):
    entries = mean_accuracy(load_results(path), strict)
    if len(entries) < min_topologies:
      raise ValueError(
        f"{path}: {len(entries)} distinct topologies < min_topologies={min_topologies}; "
        "the rank correlation needs a larger study"
      )
    todo = [e["topology"] for e in entries if e["topology"] not in cache]
    if todo:
      fresh = proxy.score_topologies(todo, config)
      for i, t in enumerate(todo):
        cache[t] = {k: float(v[i]) for k, v in fresh.items()}
    scores = {k: np.asarray([cache[e["topology"]][k] for e in entries]) for k in proxy.SCORE_NAMES}
    accuracy = np.asarray([e["accuracy"] for e in entries])
    sparse = [e["topology"].num_params for e in entries if e["topology"].name != "dense"]
    task_budget = budget if budget is not None else max(sparse or [np.inf])
    tasks[label] = dict(
      entries=entries,
      scores=scores,
      correlations=_with_sparse_only(scores, accuracy, entries),
      top_pick=top_pick(entries, scores[score], score, int(task_budget)),
    )
  _write(tasks, workdir, score)
  return tasks


def _write(tasks: dict[str, dict[str, Any]], workdir: str, score: str) -> None:
  corr_rows, topo_rows = [], []
  md = ["# Data-free scores vs. trained accuracy", ""]
  for label, task in tasks.items():
    n_topo = len(task["entries"])
    for c in task["correlations"]:
      corr_rows.append(dict(task=label, n_topologies=n_topo, **c))
    for i, e in enumerate(task["entries"]):
      t = e["topology"]
      row = dict(task=label, **S.spec_row(t), num_params=t.num_params)
      row.update(accuracy=e["accuracy"], accuracy_std=e["accuracy_std"], runs=e["runs"])
      row.update({k: float(v[i]) for k, v in task["scores"].items()})
      topo_rows.append(row)
    best = max(
      task["correlations"],
      key=lambda c: -math.inf if math.isnan(c["spearman_rho"]) else c["spearman_rho"],
    )
    pick = task["top_pick"]
    md += [
      f"## {label}: {n_topo} topologies",
      "",
      "| score | Spearman rho | p | Kendall tau | p | rho, sparse only | p |",
      "|---|---|---|---|---|---|---|",
    ]
    md += [
      f"| {c['score']} | {c['spearman_rho']:.3f} | {c['spearman_p']:.2g} | "
      f"{c['kendall_tau']:.3f} | {c['kendall_p']:.2g} | {c['spearman_rho_sparse']:.3f} | "
      f"{c['spearman_p_sparse']:.2g} |"
      for c in task["correlations"]
    ]
    md += [
      "",
      f"Best score: {best['score']} (rho = {best['spearman_rho']:.3f}; goal >= {GOAL_RHO}: "
      f"{'met' if best['spearman_rho'] >= GOAL_RHO else 'NOT met'}).",
      f"Top pick by {score} within budget {pick['budget']} ({pick['candidates']} trained "
      f"topologies): {pick['pick']} at {pick['pick_accuracy']:.4f}; best trained: "
      f"{pick['best']} at {pick['best_accuracy']:.4f}; gap {pick['gap_points']:.2f} points "
      f"(goal <= {GAP_POINTS}: {'met' if pick['within_goal'] else 'NOT met'}).",
      "",
    ]
  io_utils.atomic_write_csv(os.path.join(workdir, "validation.csv"), corr_rows)
  io_utils.atomic_write_csv(os.path.join(workdir, "topologies.csv"), topo_rows)
  io_utils.atomic_write_text(os.path.join(workdir, "validation.md"), "\n".join(md))
  _plot(tasks, os.path.join(workdir, "scatter.png"))


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI's flags (defined only when run as a program, so importing never clashes)."""
  flags.DEFINE_list("results", None, "Study results CSVs (or study workdirs), one per task.")
  flags.DEFINE_list("labels", None, "Task label of each results CSV (default: file stems).")
  flags.DEFINE_string("workdir", "runs/validate_proxy", "Output folder.")
  flags.DEFINE_enum("score", proxy.PRIMARY_SCORE, list(proxy.SCORE_NAMES), "Search ranking score.")
  flags.DEFINE_integer("budget", None, "Top-pick budget (default: largest sparse topology).")
  flags.DEFINE_integer("min_topologies", 12, "Fewest distinct topologies per task.")
  flags.DEFINE_integer("fit_n", proxy.FitConfig.fit_n, "Proxy width of the fit (0: own width).")
  flags.DEFINE_integer("fit_steps", proxy.FitConfig.steps, "Adam steps per fit.")
  flags.DEFINE_integer("fit_targets", proxy.FitConfig.targets, "Random targets per fit.")


def main(argv: Sequence[str]) -> None:
  del argv
  if not FLAGS.results:
    raise app.UsageError("--results is required (the study's results.csv)")
  labels = FLAGS.labels or [
    os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in FLAGS.results
  ]
  config = proxy.FitConfig(
    fit_n=FLAGS.fit_n or None, steps=FLAGS.fit_steps, targets=FLAGS.fit_targets
  )
  validate(
    FLAGS.results,
    labels,
    FLAGS.workdir,
    config=config,
    score=FLAGS.score,
    budget=FLAGS.budget,
    min_topologies=FLAGS.min_topologies,
  )
  print(open(os.path.join(FLAGS.workdir, "validation.md")).read())


if __name__ == "__main__":
  define_flags()
  app.run(main)
