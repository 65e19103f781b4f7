"""The sweep benchmark runs (smoke mode) and reports both throughputs and their ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sweep_bench_smoke():
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "benchmarks", "sweep_bench.py"),
      f"--config={ROOT}/benchmarks/configs/sweep_bench.py:smoke",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    cwd=ROOT,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  vmapped = float(re.search(r"vmapped\s*:\s*([\d.]+)", proc.stdout).group(1))
  sequential = float(re.search(r"sequential\s*:\s*([\d.]+)", proc.stdout).group(1))
  ratio = float(re.search(r"ratio vmapped / sequential: ([\d.]+)x", proc.stdout).group(1))
  assert vmapped > 0 and sequential > 0
  assert abs(ratio - vmapped / sequential) <= 0.01 * ratio + 0.01
