"""``benchmarks/cascade_bench.py``: every cascade implementation against dense and BCOO.

Command (the issue's CPU goal setting)::

  python benchmarks/cascade_bench.py --config.n=4096 --config.batch=1024 --config.radix=2
  python benchmarks/cascade_bench.py --config.n=1024,4096,16384 --config.batch=256,1024,8192 \\
      --config.radix=2,4,16                                       # the full grid (long on CPU)

Runtime on 2 CPU cores: about a minute for the default (N=4096, B=1024, radix 2, forward and
forward+backward); the full grid takes long (dense is skipped above ``max_dense_gflop``).
Result: one row per (N, B, radix, mode, impl): median ms, the speed-up over dense and over
BCOO, GB/s, GFLOP/s and the share of the roofline (measured numbers: benchmarks/README.md).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The grid, the timing and the tiling."""
  config = ml_collections.ConfigDict()
  config.n = (4096,)  # layer widths N (n_in = n_out = N)
  config.batch = (1024,)  # batch sizes B
  config.radix = (2,)  # butterfly radices; depth = log_radix(N)
  config.mode = ("fwd", "fwd_bwd")  # fwd and/or fwd_bwd (grad with respect to x and weights)
  # What to time (rows); cpu_ffi and pallas rows are skipped, with the reason, where they refuse.
  config.impls = ("cpu_ffi", "xla_blocked", "pallas", "xla_gather", "dense", "bcoo")
  config.dtype = "float32"  # activation and weight dtype: float32 or bfloat16
  config.warmup = 2  # untimed runs (the first also compiles)
  config.repeats = 5  # timed runs; the median is reported
  config.max_dense_gflop = 500.0  # skip dense/BCOO rows above this many GFLOP per run
  config.peak_gflops = 0.0  # peak GFLOP/s for the roofline (0: measure)
  config.peak_gbps = 0.0  # peak memory GB/s for the roofline (0: measure)
  config.interpret = False  # run Pallas interpreted (CPU smoke runs only: slow)
  config.out = ""  # optional CSV path for the table
  # Before timing, raise glibc's mmap and trim thresholds (mallopt) so that large freed buffers
  # are reused instead of mapped and faulted in again on each call (the script's docstring).
  config.steady_allocator = False
  # kernels.BlockSizes fields (0: the backend's default).
  config.batch_tile = 0
  config.max_merge = 0
  config.num_warps = 0  # pallas on GPU
  config.backward_programs = 0
  if arg == "smoke":
    config.n, config.batch, config.radix, config.warmup, config.repeats = (16,), (8,), (2, 4), 1, 1
    config.interpret, config.peak_gflops, config.peak_gbps = True, 10.0, 10.0
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
