"""Sparse-cascade matmul benchmark: every implementation against dense and BCOO, with a roofline.

Command, runtime and result: ``benchmarks/configs/cascade_bench.py`` (the default ``--config``;
overrides ``--config.<field>=``, the pattern of :mod:`nf_jax.cli`)::

  python benchmarks/cascade_bench.py --config.n=4096 --config.batch=1024 --config.radix=2

Times are medians of ``repeats`` runs after ``warmup`` runs, each ended by
``jax.block_until_ready``; every baseline is measured in the same process.

Roofline: for each row the script counts the FLOPs (2 per multiply-add: ``2 * B * nnz`` forward,
3x that forward+backward) and the compulsory bytes (x, y, weights; backward adds the cotangent,
dx and dW) and divides by the peaks. The peaks are measured at start-up on this machine (GFLOP/s
of a dense 2048^3 matmul, GB/s of a 64 MiB streaming read ``sum(x)``), unless ``peak_gflops``
and ``peak_gbps`` give datasheet values (gpu_check.sh does).
``%roof`` = roofline time / measured time.

Allocator noise on CPU (``steady_allocator``): XLA:CPU allocates each call's output with
glibc malloc. A 16 MiB output (B=1024, N=4096, fp32) is above glibc's mmap threshold, or is
returned to the kernel by heap trimming when freed, so many calls map fresh pages and take a
page fault per 4 KiB on first write. That cost is the same for every implementation, but it
is as large as the cpu_ffi forward itself, so its medians vary between processes
(benchmarks/README.md has the numbers). ``steady_allocator`` calls ``mallopt``
(``M_MMAP_THRESHOLD`` 32 MiB, glibc's maximum on 64-bit; ``M_TRIM_THRESHOLD`` 1 GiB) before
timing, so freed buffers are reused. Training scripts can set the same through the
environment: ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import sparse

from nf_jax import cli, kernels
from nf_jax import topology as T
from nf_jax.io_utils import atomic_write_csv


def tiling(config: ml_collections.ConfigDict, impl: str) -> kernels.BlockSizes:
  """The backend's default tiling for ``impl`` with the non-zero tiling fields applied."""
  default = kernels.BlockSizes.get_default(jax.default_backend(), impl=impl)
  overrides = {
    name: config[name]
    for name in ("batch_tile", "max_merge", "num_warps", "backward_programs")
    if config[name]
  }
  return dataclasses.replace(default, **overrides)


def timed(fn, *args, warmup: int, repeats: int) -> float:
  """Median seconds of ``repeats`` calls ``fn(*args)`` after ``warmup`` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure_peaks(config: ml_collections.ConfigDict, dtype) -> tuple[float, float]:
  """(GFLOP/s, GB/s) measured here unless given by the config."""
  gflops, gbps = config.peak_gflops, config.peak_gbps
  reps = dict(warmup=config.warmup, repeats=config.repeats)
  if not gflops:
    a = jnp.ones((2048, 2048), dtype)
    gflops = 2 * 2048**3 / timed(jax.jit(lambda a: a @ a), a, **reps) / 1e9
  if not gbps:
    # A streaming read (sum) of 64 MiB: a copy would also time page faults of a fresh output.
    x = jnp.ones((16 * 1024 * 1024,), jnp.float32)
    gbps = x.nbytes / timed(jax.jit(jnp.sum), x, **reps) / 1e9
  return gflops, gbps


def make_callable(
  impl: str, t: T.Topology, mode: str, dtype, interpret: bool, block_sizes: kernels.BlockSizes
):
  """Returns (jitted fn, args builder, flops, bytes) for one row."""
  itemsize = jnp.dtype(dtype).itemsize
  n_in, n_out, nnz = t.n_in, t.n_out, t.num_params
  rng = np.random.default_rng(0)

  if impl == "dense":
    w = jnp.asarray(rng.standard_normal((n_in, n_out)) / math.sqrt(n_in), dtype)
    params, fwd, nnz = w, (lambda x, w: x @ w), n_in * n_out
  elif impl == "bcoo":
    # A random sparse [n_out, n_in] matrix with the cascade's nnz (y^T = M^T x^T).
    flat = rng.choice(n_in * n_out, size=min(nnz, n_in * n_out), replace=False)
    idx = jnp.asarray(np.stack(np.divmod(flat, n_in), axis=1), jnp.int32)
    data = jnp.asarray(rng.standard_normal(flat.size) / math.sqrt(nnz / n_out), dtype)
    params = data
    fwd = lambda x, data: sparse.BCOO((data, idx), shape=(n_out, n_in)) @ x.T
  else:
    params = [
      jnp.asarray(rng.standard_normal(tab.shape) / math.sqrt(tab.shape[1]), dtype)
      for tab in t.stages
    ]
    fwd = lambda x, ws: kernels.cascade_matmul(
      x, ws, t, impl, interpret=interpret, block_sizes=block_sizes
    )

  if mode == "fwd":
    fn = jax.jit(fwd)
  else:
    fn = jax.jit(jax.grad(lambda x, p: jnp.sum(fwd(x, p).astype(jnp.float32) ** 2), (0, 1)))

  def flops_bytes(batch: int) -> tuple[float, float]:
    act = batch * (n_in + n_out) * itemsize
    weights = nnz * (itemsize + (4 if impl == "bcoo" else 0) * 2)  # bcoo also reads indices
    if mode == "fwd":
      return 2.0 * batch * nnz, act + weights
    # Backward reads x, g and writes dx (+ the forward's x and y), reads W and writes dW.
    return 6.0 * batch * nnz, act + batch * (n_in + n_out) * itemsize + 2 * weights

  return fn, params, flops_bytes


# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def steady_allocator() -> None:
  """Keeps freed heap memory mapped (glibc only): see the module docstring.

  Raises:
    RuntimeError: the C library is not glibc (no ``mallopt``) or refused a value.
  """
  libc_name = ctypes.util.find_library("c")
  libc = ctypes.CDLL(libc_name) if libc_name else None
  if libc is None or not hasattr(libc, "mallopt"):
    raise RuntimeError(
      f"steady_allocator needs glibc's mallopt; the C library here ({libc_name}) has none: "
      "set --config.steady_allocator=False"
    )
  for param, value in ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30)):
    if libc.mallopt(param, value) != 1:
      raise RuntimeError(f"mallopt({param}, {value}) was refused by {libc_name}")


def run_grid(config: ml_collections.ConfigDict) -> list[dict]:
  """Times every (N, radix, B, mode, impl) of ``config``; prints and returns the rows."""
  if config.steady_allocator:
    steady_allocator()
  dtype = jnp.dtype(config.dtype)
  reps = dict(warmup=config.warmup, repeats=config.repeats)
  peak_gflops, peak_gbps = measure_peaks(config, dtype)
  print(
    f"# backend={jax.default_backend()} device={jax.devices()[0].device_kind} dtype={dtype.name}"
    f" peaks: {peak_gflops:.1f} GFLOP/s, {peak_gbps:.1f} GB/s "
    f"({'config' if config.peak_gflops and config.peak_gbps else 'measured here'}) "
    f"pallas {tiling(config, 'pallas')}"
    f" steady_allocator={config.steady_allocator}",
    flush=True,
  )
  header = (
    f"{'N':>6} {'B':>5} {'radix':>5} {'depth':>5} {'mode':>7} {'impl':>11} {'ms':>9} "
    f"{'x_dense':>8} {'x_bcoo':>8} {'GB/s':>8} {'GFLOP/s':>8} {'%roof':>6}"
  )
  print(header, flush=True)
  rows = []
  for n in map(int, config.n):
    for radix in map(int, config.radix):
      depth = round(math.log(n, radix))
      if radix**depth != n:
        print(f"# skip N={n} radix={radix}: N is not a power of the radix", flush=True)
        continue
      t = T.make("butterfly", n, radix=radix, depth=depth)
      for batch in map(int, config.batch):
        x = jnp.asarray(np.random.default_rng(1).standard_normal((batch, n)), dtype)
        for mode in cli.names(config.mode):
          results = {}
          for impl in cli.names(config.impls):
            sizes = tiling(config, impl)
            if impl in ("pallas", "xla_blocked", "cpu_ffi"):
              try:
                kernels.choose_impl(x, t, impl, sizes)
              except ValueError as err:
                print(f"# skip {impl}: {err}", flush=True)
                continue
            if impl == "pallas" and jax.default_backend() == "cpu" and not config.interpret:
              print("# skip pallas: CPU without interpret", flush=True)
              continue
            fn, params, flops_bytes = make_callable(impl, t, mode, dtype, config.interpret, sizes)
            flops, nbytes = flops_bytes(batch)
            dense_gflop = 2e-9 * batch * n * n * (1 if mode == "fwd" else 3)
            if impl in ("dense", "bcoo") and dense_gflop > config.max_dense_gflop:
              print(f"# skip {impl}: {dense_gflop:.0f} GFLOP > max_dense_gflop", flush=True)
              continue
            try:
              seconds = timed(fn, x, params, **reps)
            except Exception as err:  # a compile failure is a result: report it, go on
              first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
              print(f"# FAIL {impl} {mode}: {type(err).__name__}: {first_line}", flush=True)
              continue
            roof = max(flops / (peak_gflops * 1e9), nbytes / (peak_gbps * 1e9))
            results[impl] = dict(
              N=n,
              B=batch,
              radix=radix,
              depth=depth,
              mode=mode,
              impl=impl,
              ms=seconds * 1e3,
              gbps=nbytes / seconds / 1e9,
              gflops=flops / seconds / 1e9,
              roof=100 * roof / seconds,
            )
          for row in results.values():
            for base in ("dense", "bcoo"):
              row[f"x_{base}"] = (
                results[base]["ms"] / row["ms"] if base in results else float("nan")
              )
            print(
              f"{row['N']:>6} {row['B']:>5} {row['radix']:>5} {row['depth']:>5} "
              f"{row['mode']:>7} {row['impl']:>11} {row['ms']:>9.2f} {row['x_dense']:>8.1f} "
              f"{row['x_bcoo']:>8.1f} {row['gbps']:>8.1f} {row['gflops']:>8.1f} "
              f"{row['roof']:>6.1f}",
              flush=True,
            )
            rows.append(row)
  return rows


BASELINES = ("dense", "bcoo")  # the rows the speed-up columns divide by
MODES = ("fwd", "fwd_bwd")
DTYPES = ("float32", "bfloat16")


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses an unknown implementation, mode or dtype before anything is timed."""
  del overrides
  cli.check_choices(
    "impls", cli.names(config.impls), ("auto", *kernels.IMPLEMENTATIONS, *BASELINES)
  )
  cli.check_choices("mode", cli.names(config.mode), MODES)
  cli.check_choices("dtype", [config.dtype], DTYPES)


def main(config: ml_collections.ConfigDict) -> list[dict]:
  """Runs the benchmark as ``config`` (``benchmarks/configs/cascade_bench.py``) says."""
  rows = run_grid(config)
  if config.out and rows:
    atomic_write_csv(config.out, rows)
  if not rows:
    sys.exit("no benchmark row ran; check --config.impls and the sizes")
  return rows


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(main, os.path.join(here, "configs", "cascade_bench.py"), validate=validate)
