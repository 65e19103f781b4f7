"""The topology report (the README's main job until the co-design search exists)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import topology as T
from nf_jax import topology_report


def test_report_metrics_match_brute_force_counts(tmp_path):
  values = {"fan_in": 4, "skip": False}
  rows = topology_report.report(
    ["butterfly", "parallel_butterfly", "clos", "random"], 64, None, values, str(tmp_path)
  )
  written = json.loads((tmp_path / "metrics.json").read_text())
  assert [r["name"] for r in written] == ["butterfly", "parallel_butterfly", "clos", "random"]
  for row in rows:
    params = {k: v for k, v in row["spec"].items() if k not in ("n", "n_in")}
    counts = T.path_counts(T.make(row["name"], 64, **params))
    assert row["connectivity"] == pytest.approx((counts > 0).mean())
    assert row["mean"] == pytest.approx(counts.mean())
    assert row["cv"] == pytest.approx(counts.std() / counts.mean())
    assert (tmp_path / f"{row['name']}.png").stat().st_size > 1000
  by_name = {r["name"]: r for r in rows}
  assert by_name["butterfly"]["min"] == by_name["butterfly"]["max"] == 1
  assert by_name["parallel_butterfly"]["min"] == 2  # default width=2: 2 paths per pair
  assert by_name["clos"]["min"] == 8  # 8 middle switches for n=64
  assert (tmp_path / "heatmaps.png").exists()


def test_family_params_only_passes_what_a_family_takes():
  values = {"radix": 4, "width": 3, "fan_in": 8, "depth": None, "seed": 1, "skip": True}
  assert topology_report.family_params("butterfly", values) == {"radix": 4, "skip": True}
  assert topology_report.family_params("random", values) == {"fan_in": 8, "seed": 1, "skip": True}
  with pytest.raises(ValueError, match="'bfly' is not a topology family"):
    topology_report.family_params("bfly", values)


def test_cli_runs(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "nf_jax.topology_report",
      "--config.families=butterfly,random",
      "--config.n=256",
      f"--workdir={tmp_path}",
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr
  assert "butterfly" in result.stdout and "random" in result.stdout
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert np.isclose(metrics[0]["connectivity"], 1.0)
  assert os.path.exists(tmp_path / "random.png")


def test_old_cli_path_names_the_new_one():
  result = subprocess.run(
    [sys.executable, "-m", "nf_jax.topology", "--name=butterfly"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode != 0
  assert "python -m nf_jax.topology_report" in result.stderr
