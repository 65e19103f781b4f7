"""experiments/validate_proxy.py on synthetic study CSVs whose correlations are known by hand."""

import csv
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import proxy
from nf_jax import topology as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "validate_proxy.py")
_spec = importlib.util.spec_from_file_location("validate_proxy", SCRIPT)
V = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(V)

TINY = proxy.FitConfig(fit_n=None, targets=1, steps=20)
COLUMNS = (
  "name,n,n_in,depth,radix,width,fan_in,skip,topology_seed,train_seed,weight_init,num_params,"
  "density,test_accuracy,train_accuracy,final_loss,epochs,seconds"
).split(",")


def topologies() -> list[T.Topology]:
  ts = [T.make("butterfly", 16, radix=2, depth=d) for d in range(1, 5)]
  ts += [T.make("butterfly", 16, radix=4, depth=1)]
  ts += [T.make("random", 16, fan_in=2, depth=d, seed=0) for d in range(1, 5)]
  ts += [T.make("random", 16, fan_in=3, depth=d, seed=1, skip=True) for d in range(1, 4)]
  ts += [T.make("clos", 16, radix=4, width=2), T.make("block_diagonal", 16, radix=2, depth=3)]
  return ts


def write_study(path, ts, accuracy):
  """Two runs per topology at accuracy +- 0.002, so each mean is exactly ``accuracy``."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    for t, acc in zip(ts, accuracy):
      p = t.params()
      for seed, delta in ((0, 0.002), (1, -0.002)):
        row = {c: "" for c in COLUMNS}
        row.update(name=t.name, n=t.n_out, n_in=t.n_in, depth=t.depth, skip=p["skip"])
        row.update({k: p[k] for k in ("radix", "width", "fan_in") if k in p})
        row.update(topology_seed=p.get("seed", ""), train_seed=seed, weight_init="depth_aware")
        row.update(num_params=t.num_params, density=t.density, test_accuracy=acc + delta)
        writer.writerow(row)


@pytest.fixture(scope="module")
def study():
  ts = topologies()
  score = proxy.score_topologies(ts, TINY)[proxy.PRIMARY_SCORE]
  assert np.diff(np.sort(score)).min() > 1e-6, "precondition: distinct scores"
  rank = np.argsort(np.argsort(score))  # 0 = worst score
  return ts, rank


def test_monotone_accuracy_gives_perfect_correlation_and_top_pick(study, tmp_path):
  ts, rank = study
  write_study(tmp_path / "results.csv", ts, 0.80 + 0.01 * rank)
  out = V.validate([str(tmp_path)], ["synthetic"], str(tmp_path / "out"), config=TINY)
  corr = {c["score"]: c for c in out["synthetic"]["correlations"]}[proxy.PRIMARY_SCORE]
  assert corr["spearman_rho"] == pytest.approx(1.0)
  assert corr["kendall_tau"] == pytest.approx(1.0)
  assert corr["spearman_p"] < 1e-6 and corr["kendall_p"] < 1e-6
  pick = out["synthetic"]["top_pick"]
  assert pick["gap_points"] == pytest.approx(0.0, abs=1e-9) and pick["within_goal"]
  # path_cv is oriented (lower is better) before correlating: its sign must follow -cv.
  cv = {c["score"]: c for c in out["synthetic"]["correlations"]}["path_cv"]["spearman_rho"]
  cvs = np.asarray([T.path_stats(t).cv for t in ts])
  expected = np.corrcoef(np.argsort(np.argsort(-cvs)), rank)[0, 1]
  if np.unique(cvs).size == cvs.size:
    assert cv == pytest.approx(expected)
  for name in ("validation.csv", "validation.md", "topologies.csv", "scatter.png"):
    assert os.path.getsize(tmp_path / "out" / name) > 0


def test_one_swapped_pair_gives_hand_computed_correlations(study, tmp_path):
  ts, rank = study
  n = len(ts)
  swapped = rank.copy()
  top, second = int(np.argmax(rank)), int(np.argsort(rank)[-2])
  swapped[top], swapped[second] = rank[second], rank[top]
  write_study(tmp_path / "results.csv", ts, 0.80 + 0.01 * swapped)
  out = V.validate([str(tmp_path / "results.csv")], ["swap"], str(tmp_path / "out"), config=TINY)
  corr = {c["score"]: c for c in out["swap"]["correlations"]}[proxy.PRIMARY_SCORE]
  # One discordant pair of 91: tau = 1 - 2/91; sum d^2 = 2: rho = 1 - 6*2/(n(n^2-1)).
  assert corr["kendall_tau"] == pytest.approx(1 - 2 / (n * (n - 1) / 2))
  assert corr["spearman_rho"] == pytest.approx(1 - 12 / (n * (n * n - 1)))
  # The top score now trained 1 point worse than the runner-up (when both are in budget).
  pick = out["swap"]["top_pick"]
  budget = max(t.num_params for t in ts)
  assert pick["budget"] == budget
  assert pick["gap_points"] == pytest.approx(1.0) and not pick["within_goal"]


def test_contract_violations_are_refused(study, tmp_path):
  ts, rank = study
  write_study(tmp_path / "results.csv", ts[:5], 0.8 + 0.01 * rank[:5])
  with pytest.raises(ValueError, match="5 distinct topologies < min_topologies=12"):
    V.validate([str(tmp_path)], ["few"], str(tmp_path / "out"), config=TINY)
  bad = tmp_path / "bad.csv"
  bad.write_text("name,n\nbutterfly,16\n")
  with pytest.raises(ValueError, match="missing columns"):
    V.load_results(str(bad))
  row = {c: "" for c in COLUMNS}
  row.update(name="butterfly", n="16", n_in="16", depth="4", radix="2", skip="False")
  row.update(num_params="999")
  with pytest.raises(ValueError, match="num_params=999"):
    V.build_topology(row)


def test_cli_reports_missing_results(tmp_path):
  cmd = [sys.executable, SCRIPT, f"--results={tmp_path / 'nope.csv'}", f"--workdir={tmp_path}"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert out.returncode != 0 and "does not exist" in out.stderr


def test_sparse_only_correlation_leaves_out_the_dense_baseline():
  ts = [T.make("dense", 4)] + [T.make("random", 4, fan_in=2, depth=1, seed=s) for s in range(4)]
  entries = [dict(topology=t) for t in ts]
  scores = {"fit_score": np.array([1.0, 0.1, 0.2, 0.3, 0.4])}
  accuracy = np.array([0.9, 0.4, 0.3, 0.2, 0.1])
  (row,) = V._with_sparse_only(scores, accuracy, entries)
  # All five: rank differences (0, -3, -1, 1, 3), sum d^2 = 20: rho = 1 - 6*20/(5*24) = 0.
  assert row["spearman_rho"] == pytest.approx(0.0, abs=1e-12)
  # Sparse only: scores rise while accuracy falls: rho = -1.
  assert row["spearman_rho_sparse"] == pytest.approx(-1.0)


def test_ablation_and_diverged_rows_are_left_out(tmp_path):
  t = T.make("butterfly", 16, radix=2, depth=2)
  write_study(tmp_path / "results.csv", [t], [0.85])
  rows = V.load_results(str(tmp_path / "results.csv"))
  he = dict(rows[0], weight_init="he", test_accuracy="0.1")
  diverged = dict(rows[0], train_seed="2", test_accuracy="nan")
  [entry] = V.mean_accuracy(rows + [he, diverged])
  assert entry["runs"] == 2 and entry["accuracy"] == pytest.approx(0.85)
