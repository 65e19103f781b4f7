"""``benchmarks/family_bench.py``: cascade paths per topology family: correctness, then timing.

Command (what ``benchmarks/gpu_check.sh`` runs on a lent GPU)::

  python benchmarks/family_bench.py --config.part=check    # every path vs the dense reference
  python benchmarks/family_bench.py --config.part=bench --config.peak_gbps=3350 \\
      --config.peak_gflops=989000
  python benchmarks/family_bench.py --config=benchmarks/configs/family_bench.py:smoke   # CI

Runtime: on an H100/H200, within the budgets gpu_check.sh gives the parts (100 s, 150 s and
45 s); the bench part starts no row after ``deadline_s``. ``:smoke`` (N=64, B=32, one call, any
backend) takes seconds on 2 CPU cores.
Result: ``check: 0 failed`` (each path's forward, dx and dW against the dense float32 reference,
fp32 and bf16); a timing table against a dense ``x @ W`` of the same width with the path
``auto`` takes starred; the vmapped-vs-sequential training ratio (measured numbers:
benchmarks/README.md and benchmarks/results/).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The parts to run and their sizes."""
  config = ml_collections.ConfigDict()
  config.part = ("check", "bench", "sweep")  # any of check, bench, sweep
  config.check_tiny = False  # check: two small cases at tiny widths instead of every family
  config.n = 4096  # layer width N of the timed families
  config.batch = 8192  # batch B of the timed rows
  config.dtype = ("bfloat16", "float32")  # timed dtypes, in order (pallas: the first only)
  config.mode = ("fwd", "fwd_bwd")  # timed modes
  config.peak_gbps = 0.0  # HBM peak GB/s for %hbm (0: measure a streaming read)
  config.peak_gflops = 0.0  # datasheet peak GFLOP/s, printed for reference
  config.calls = 10  # back-to-back calls per timing; the best of 3 is reported
  config.deadline_s = 200.0  # start no new bench row after this many seconds
  config.sweep_models = 8  # sweep: models M, vmapped against one after another
  config.sweep_steps = 469  # sweep: SGD steps per model (469 x 128 = one epoch)
  config.sweep_batch = 128  # sweep: examples per step per model
  config.sweep_n = 1024  # sweep: hidden width of the radix-2 butterfly (skips)
  config.sweep_depth = 10  # sweep: sublayers of the cascade
  config.sweep_d_in = 784  # sweep: input width (Fashion-MNIST's)
  if arg == "smoke":
    config.check_tiny, config.n, config.batch, config.calls = True, 64, 32, 1
    config.dtype, config.mode = ("float32",), ("fwd_bwd",)
    config.sweep_models, config.sweep_steps, config.sweep_batch = 2, 2, 8
    config.sweep_n, config.sweep_depth, config.sweep_d_in = 32, 2, 24
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
