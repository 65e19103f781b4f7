"""Smoke run of benchmarks/proxy_bench.py so the benchmark never rots."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_proxy_bench_smoke():
  script = os.path.join(ROOT, "benchmarks", "proxy_bench.py")
  out = subprocess.run(
    [sys.executable, script, f"--config={ROOT}/benchmarks/configs/proxy_bench.py:smoke"],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=ROOT,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  rates = re.findall(r"^(cold|warm): .* -> (\d+) candidates/min", out.stdout, re.M)
  assert [label for label, _ in rates] == ["cold", "warm"], out.stdout
  assert all(int(rate) > 0 for _, rate in rates)
  # n=8, budget 48, depths 1-2: a hand count of the population the bench scores.
  # butterfly radix 2 (16 per stage: depths 1, 2) and radix 8 (64: none); parallel
  # butterfly width 2 radix 2 (32 per stage: depth 1); random fan-in 2 (16: depths 1, 2),
  # fan-in 4 (32: depth 1); block-diagonal radix 2 (16: 1, 2), radix 4 (32: 1); each x skip;
  # no Clos (3 stages), no dense (64).
  count = int(re.search(r"^(\d+) candidates", out.stdout, re.M).group(1))
  assert count == (2 + 1 + 2 + 1 + 2 + 1) * 2
