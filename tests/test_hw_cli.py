"""python -m nf_jax.hw (grid sweep CLI) and the benchmark's smoke mode."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np

from nf_jax import hw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_sweep_writes_csv_and_plots(tmp_path):
  cmd = [
    sys.executable,
    "-m",
    "nf_jax.hw",
    f"--workdir={tmp_path}",
    "--config.workload=gemm",
    "--config.gemm=32,24,40",
    "--config.rows=4,8",
    "--config.cols=4",
    "--config.dataflow=os,ws",
    "--config.precision=int8",
    "--config.dram_bw_gbs=inf",
  ]
  subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=300)
  for name in ("sweep.csv", "meta.json", "throughput_vs_area.png", "energy_vs_latency.png"):
    assert os.path.getsize(tmp_path / name) > 0, name
  with open(tmp_path / "sweep.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4
  # Compute-bound cycles of each row are SCALE-Sim's (closed form) + 1.
  for r in rows:
    ref = hw.simulate_gemm(32, 24, 40, int(r["rows"]), int(r["cols"]), r["dataflow"])
    assert float(r["cycles"]) == int(ref["total_cycles"]) + 1


def test_pareto_mask():
  from nf_jax.hw.sweep import pareto_mask

  cost = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2.5]])
  np.testing.assert_array_equal(pareto_mask(cost), [True, True, False, True, False])


def test_benchmark_smoke_jax_half():
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "benchmarks", "hw_bench.py"),
      f"--config={ROOT}/benchmarks/configs/hw_bench.py:smoke",
      "--config.scalesim=False",
    ],
    check=True,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "configs/min" in proc.stdout


def test_mapper_tail_benchmark_smoke():
  # The script asserts internally that neither the mapper nor brute force beats the I/O bound.
  proc = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", "mapper_tail.py"), "--smoke"],
    check=True,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "mapper / brute force on the tail" in proc.stdout
