"""Side-by-side with ZigZag (zigzag-dse 3.9.1), run live when its venv exists."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compare_module():
  spec = importlib.util.spec_from_file_location(
    "zigzag_compare", os.path.join(ROOT, "scripts", "zigzag_compare.py")
  )
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_zigzag_side_by_side_on_a_compute_and_a_memory_bound_layer():
  zz = _compare_module()
  if not os.path.exists(zz.ZZ_PYTHON):
    pytest.skip(
      f"no ZigZag venv at {zz.ZZ_PYTHON} (make one: python3 -m venv /work/zz-venv && "
      "/work/zz-venv/bin/pip install zigzag-dse==3.9.1 six, or set NF_JAX_ZIGZAG_PYTHON)"
    )
  layers = [("compute", 512, 512, 512), ("memory", 1, 1024, 1024)]
  try:
    rows = zz.compare(layers, zz.CONFIGS[1:2])
  except subprocess.CalledProcessError as e:
    pytest.skip(f"ZigZag did not run: {e.stderr.strip().splitlines()[-1:]}")
  compute, memory = rows
  # Compute-bound: both tools reach the array's throughput; ours adds SCALE-Sim's per-fold
  # preload and skew lines, ZigZag overlaps them (goal: within 25 %).
  assert 0.95 < compute["latency_ratio"] < 1.25, compute
  # Memory-bound GEMV: both move exactly the compulsory DRAM words and price them the same.
  assert abs(memory["dram_ratio"] - 1.0) < 0.01, memory
  assert abs(memory["energy_ratio"] - 1.0) < 0.1, memory
  # Ours is slower here by SCALE-Sim's per-fold overhead (2R + C - 2 lines per one-row fold).
  assert 1.0 < memory["latency_ratio"] < 4.0, memory
