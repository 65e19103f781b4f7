"""Smoke-runs the kernel benchmarks at tiny sizes so they never rot (no timing asserted)."""

import os
import re
import subprocess
import sys

from nf_jax import kernels

CPU_FFI = ("cpu_ffi",) if kernels.cpu_ffi.refusal() is None else ()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cascade_bench_prints_a_row_per_implementation(tmp_path):
  out = tmp_path / "bench.csv"
  cmd = [
    sys.executable,
    os.path.join(ROOT, "benchmarks", "cascade_bench.py"),
    f"--config={ROOT}/benchmarks/configs/cascade_bench.py:smoke",  # N=16, B=8, radix 2 and 4
    "--config.mode=fwd,fwd_bwd",
    "--config.steady_allocator=True",  # glibc's mallopt (Debian, CI): the call must be accepted
    f"--config.out={out}",
  ]
  result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "steady_allocator=True" in result.stdout
  lines = out.read_text().strip().splitlines()
  header, rows = (
    lines[0].split(","),
    [dict(zip(lines[0].split(","), r.split(","))) for r in lines[1:]],
  )
  assert {"ms", "x_dense", "x_bcoo", "gbps", "gflops", "roof"} <= set(header)
  impls = {(r["radix"], r["mode"], r["impl"]) for r in rows}
  for radix in ("2", "4"):
    for mode in ("fwd", "fwd_bwd"):
      for impl in ("xla_blocked", "pallas", "xla_gather", "dense", "bcoo", *CPU_FFI):
        assert (radix, mode, impl) in impls
  # The dense row's speedup over itself is exactly 1 (the ratio column is wired to the baseline).
  assert all(float(r["x_dense"]) == 1.0 for r in rows if r["impl"] == "dense")
  assert all(float(r["ms"]) > 0 for r in rows)


def test_family_bench_smoke_checks_times_and_sweeps():
  """What benchmarks/gpu_check.sh runs on a GPU, at N=64 on this backend."""
  cmd = [
    sys.executable,
    os.path.join(ROOT, "benchmarks", "family_bench.py"),
    f"--config={ROOT}/benchmarks/configs/family_bench.py:smoke",
    "--config.peak_gbps=10",
  ]
  result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr
  out = result.stdout
  assert "check: 0 failed" in out and re.search(r"^ok .* auto=\w+ ", out, re.M)
  rows = [line.split() for line in out.splitlines() if re.match(r"(dense|butterfly r2) ", line)]
  for mode in ("fwd_bwd",):
    dense = [r for r in rows if r[0] == "dense" and r[4] == mode]
    assert len(dense) == 1 and dense[0][7] == "1.00"  # the baseline's ratio to itself
    sparse = {r[6] for r in rows if r[0] == "butterfly" and r[5] == mode}
    assert {"xla_blocked", "xla_gather", "xla_blocked/m64"} <= sparse
    assert any(label.endswith("*") for label in sparse), "the row auto picks is marked"
  # Examples/s (more digits than the seconds at this size) give the printed time ratio back.
  vmapped, sequential = (
    float(re.search(rf"{side}\s*:.* s\s+(\d+) examples/s", out).group(1))
    for side in ("vmapped", "sequential")
  )
  ratio = float(re.search(r"sequential / vmapped time: ([\d.]+)x", out).group(1))
  assert abs(ratio - vmapped / sequential) <= 0.01 * ratio + 0.01
