"""experiments/study_report.py: the claim verdicts and the ablation pairs on hand-made results."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from nf_jax import results as R
from nf_jax import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _report_module():
  path = os.path.join(ROOT, "experiments")
  if path not in sys.path:
    sys.path.insert(0, path)
  return importlib.import_module("study_report")


def _rows(name, accs, depth, density, skip=False, init="depth_aware", **topo):
  base = dict.fromkeys(R.RESULT_COLUMNS, "")
  out = []
  for seed, acc in enumerate(accs):
    row = dict(base, name=name, n=1024, n_in=1024, depth=depth, skip=skip, train_seed=seed)
    row.update(weight_init=init, num_params=int(density * 1024 * 1024), density=density)
    row.update(test_accuracy=acc, train_accuracy=acc, final_loss=0.3, epochs=4, seconds=10)
    row.update({k: v for k, v in topo.items()})
    out.append(row)
  return out


def test_claim_verdicts_and_ablation(tmp_path):
  report = _report_module()
  rows = (
    _rows("dense", [0.895, 0.893, 0.894], 1, 1.0, init="he")
    # density 2.5-5%: parallel butterfly + skip clearly best -> "wins"
    + _rows("parallel_butterfly", [0.880, 0.881, 0.882], 10, 0.039, True, radix=2, width=2)
    + _rows("butterfly", [0.870, 0.871, 0.872], 10, 0.039, True, radix=4)
    # density 5-12.5%: random 0.3 points above, with std 1.0 -> a tie; at depth 32 the butterfly
    # beats it by 2 points with tiny spread -> "loses"
    + _rows("random", [0.885, 0.875, 0.895], 2, 0.0625, fan_in=32)
    + _rows("parallel_butterfly", [0.882, 0.882, 0.882], 2, 0.125, True, radix=32, width=2)
    + _rows("butterfly", [0.880, 0.881, 0.879], 32, 0.0625, True, radix=2)
    + _rows("parallel_butterfly", [0.860, 0.861, 0.859], 32, 0.125, True, radix=2, width=2)
    + _rows("butterfly", ["nan", "nan", "nan"], 32, 0.0625, True, init="he", radix=2)
  )
  summary = sweep.summarise(rows)
  by_density = {
    r["band"]: r["verdict"] for r in report.claim_rows(summary, "density", report.DENSITY_BANDS)
  }
  assert by_density["2.5-5%"] == "wins"
  assert by_density["5-12.5%"].startswith("ties")
  by_depth = {
    r["band"]: r["verdict"] for r in report.claim_rows(summary, "depth", report.DEPTH_BANDS)
  }
  assert by_depth["deep (>= 17)"].startswith("loses by 2.00 points")
  pairs = report.ablation_rows(summary)
  assert len(pairs) == 1 and pairs[0][0]["weight_init"] == "depth_aware"
  study = tmp_path / "study"
  study.mkdir()
  R.write_results(str(study / "results.csv"), rows)
  goals = report.write_report(str(study), str(tmp_path / "out"))
  text = (tmp_path / "out" / "report.md").read_text()
  assert "He diverged" in text and "| 2.5-5% | parallel_butterfly r2 w2 d10 +skip" in text
  assert goals["dense_at_least_89"] is True
  for name in ("results.csv", "summary.csv", "accuracy_vs_params.png", "accuracy_vs_depth.png"):
    assert (tmp_path / "out" / name).exists(), name


def test_split_study_is_merged_and_a_model_in_two_parts_is_refused(tmp_path):
  report = _report_module()
  first, second = tmp_path / "a", tmp_path / "b"
  first.mkdir()
  second.mkdir()
  dense = _rows("dense", [0.895, 0.893, 0.894], 1, 1.0, init="he")
  cascade = _rows("butterfly", [0.870, 0.871, 0.872], 10, 0.039, True, radix=4)
  R.write_results(str(first / "results.csv"), dense)
  R.write_results(str(second / "results.csv"), cascade)
  report.write_report([str(first), str(second)], str(tmp_path / "out"))
  merged = R.read_results(str(tmp_path / "out" / "results.csv"))
  assert len(merged) == 6 and {r["name"] for r in merged} == {"dense", "butterfly"}
  R.write_results(str(second / "results.csv"), cascade + dense[:1])
  with pytest.raises(ValueError, match="is in both"):
    report.write_report([str(first), str(second)], str(tmp_path / "out2"))


def test_reproduction_table_against_a_reference_run(tmp_path):
  """Hand-computed: std 0.10 points over 3 seeds gives 2 s.e. of a difference 0.16; dense
  differs by +0.10 (inside), the butterfly by -1.00 (outside)."""
  report = _report_module()
  reference = _rows("dense", [0.894, 0.893, 0.895], 1, 1.0, init="he") + _rows(
    "butterfly", [0.870, 0.871, 0.872], 10, 0.039, True, radix=4
  )
  rerun = _rows("dense", [0.895, 0.894, 0.896], 1, 1.0, init="he") + _rows(
    "butterfly", [0.860, 0.861, 0.862], 10, 0.039, True, radix=4
  )
  study = tmp_path / "study"
  study.mkdir()
  R.write_results(str(study / "results.csv"), rerun)
  R.write_results(str(tmp_path / "reference.csv"), reference)
  report.write_report(str(study), str(tmp_path / "out"), str(tmp_path / "reference.csv"))
  text = (tmp_path / "out" / "report.md").read_text()
  assert "mean -0.45, mean absolute 0.55, largest -1.00; 1 of 2 differ" in text
  assert "| butterfly r4 d10 +skip | 86.10 +- 0.10 | 87.10 +- 0.10 | -1.00 | 0.16 |" in text
