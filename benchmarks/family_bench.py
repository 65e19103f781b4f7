"""Sparse-cascade paths per topology family on one device: correctness, then a timing table.

What ``benchmarks/gpu_check.sh`` runs on a lent GPU (issue 16); the ``:smoke`` config runs the
same code at tiny sizes on CPU (``tests/test_benchmarks_smoke.py``). Command, runtime and result:
``benchmarks/configs/family_bench.py`` (the default ``--config``; overrides
``--config.<field>=``, the pattern of :mod:`nf_jax.cli`)::

  python benchmarks/family_bench.py --config.part=check

``check``: for every family (with and without skips) the auto path (what ``impl="auto"`` picks
on this device, named per row), ``xla_blocked`` and ``pallas`` where they accept the topology,
forward, dx and dW against the dense float32 reference, fp32 and bf16. Exits non-zero on any
failure.

``bench``: at N=4096, B=8192 (``n``, ``batch``): radix-2 butterfly of depth 12, butterfly
radix 16, butterfly radix 32 (at N=1024, the study's width: 4096 is not a power of 32), Clos
32x32 and block-diagonal 64; forward and forward+backward (grad w.r.t. x and weights), bf16 and
fp32; against a dense ``x @ W`` of the same width timed in the same process. A ``*`` marks the
path ``auto`` takes. ``%hbm`` = (compulsory bytes / ``peak_gbps``) / measured time: x, y and
weights forward; backward adds the cotangent, dx, x again and dW. Rows stop being started after
``deadline_s`` (what ran is printed).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nf_jax import cli, kernels
from nf_jax import topology as T


@dataclasses.dataclass(frozen=True)
class Case:
  label: str
  name: str
  n: int
  params: dict
  # Extra explicit xla_blocked tilings to time (label suffix -> BlockSizes overrides).
  variants: tuple[tuple[str, dict], ...] = ()


def _is_power(n: int, radix: int) -> bool:
  while n % radix == 0 and n > 1:
    n //= radix
  return n == 1


def bench_cases(n: int) -> list[Case]:
  """The issue's families at width n (radix 32 at n / 4 when n is not a power of 32)."""
  # Merging 6 radix-2 stages into one 64x64 block halves the memory passes of 16x16 merging.
  m64 = (("m64", dict(max_merge=64)),)
  if n < 1024:  # the :smoke config: the family with a tiling variant, small
    return [Case("butterfly r2", "butterfly", n, dict(radix=2), m64)]
  n32 = n if _is_power(n, 32) else n // 4
  return [
    Case("clos 32x32", "clos", n, dict(radix=32, width=32)),
    Case("butterfly r32", "butterfly", n32, dict(radix=32)),
    Case("butterfly r2", "butterfly", n, dict(radix=2), m64),
    Case("butterfly r16", "butterfly", n, dict(radix=16)),
    Case("block-diag 64", "block_diagonal", n, dict(radix=64)),
  ]


CHECK_CASES = [
  ("butterfly", 256, dict(radix=2)),
  ("butterfly", 256, dict(radix=16, skip=True)),
  ("butterfly", 256, dict(radix=4, n_in=200, skip=True)),
  ("parallel_butterfly", 256, dict(radix=2, width=2, skip=True)),
  ("clos", 256, dict(radix=16, width=16)),
  ("clos", 256, dict(radix=16, width=8, skip=True)),
  ("random", 256, dict(fan_in=8, depth=2, skip=True)),
  ("block_diagonal", 256, dict(radix=16)),
  ("block_diagonal", 256, dict(radix=8, skip=True)),
  ("dense", 128, dict(skip=True)),
]

# The :smoke config checks a rectangular butterfly with skips (auto and xla_blocked).
SMOKE_CHECK = (2,)


def _make(name: str, n: int, params: dict) -> T.Topology:
  return T.make(name, n, **params)


def _weights(t: T.Topology, dtype, seed: int = 0) -> list[jax.Array]:
  rng = np.random.default_rng(seed)
  return [
    jnp.asarray(rng.standard_normal(s.shape) / math.sqrt(s.shape[1]), dtype) for s in t.stages
  ]


def _rel_err(got, want) -> float:
  got = np.asarray(jnp.asarray(got, jnp.float32), np.float64)
  want = np.asarray(want, np.float64)
  return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def run_check(smoke: bool) -> int:
  """Prints one line per (topology, dtype, path); returns the number of failures.

  Every topology's auto path first, then the explicit ``xla_blocked`` and ``pallas`` runs, so a
  timeout cuts the optional paths, not the auto ones.
  """
  cases = [CHECK_CASES[i] for i in SMOKE_CHECK] if smoke else CHECK_CASES
  dtypes = ("bfloat16",) if smoke else ("float32", "bfloat16")
  batch = 20 if smoke else 100  # not a multiple of any tile
  topologies = [_make(name, *(_smoke_size(name, p) if smoke else (n, p))) for name, n, p in cases]
  paths = ("auto", "xla_blocked") if jax.default_backend() == "cpu" else PATHS
  failed, oracles = 0, {}
  with jax.default_matmul_precision("highest"):  # no TF32 in the fp32 comparisons
    for path in paths:
      for t in topologies:
        # pallas in fp32 passed every case of gpu_check run 3 (results/gpu_check_h100.txt).
        for dtype in dtypes[-1:] if path == "pallas" else dtypes:
          if (t, dtype) not in oracles:
            oracles[t, dtype] = _oracle(t, dtype, batch)
          failed += _check_path(t, dtype, path, *oracles[t, dtype])
  print(f"check: {failed} failed", flush=True)
  return failed


# auto on this device, then the explicit paths where auto did not pick them (pallas compiled only
# on accelerators: interpreted, tests/test_kernels.py covers it).
PATHS = ("auto", "xla_blocked", "pallas")


def _oracle(t: T.Topology, dtype: str, batch: int):
  """Inputs, cotangent and the dense float32 reference's ``[y, dx, dWs]``."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((batch, t.n_in)), dtype)
  ws = _weights(t, dtype)
  cot = jnp.asarray(rng.standard_normal((batch, t.n_out)), jnp.float32)
  ref = lambda x, ws: kernels.cascade_matmul_reference(x, ws, t)
  x32, ws32 = x.astype(jnp.float32), [w.astype(jnp.float32) for w in ws]
  want = [ref(x32, ws32), *jax.grad(_loss(ref, cot), (0, 1))(x32, ws32)]
  return x, ws, cot, want


def _loss(fn, cot):
  return lambda x, ws: jnp.sum(fn(x, ws).astype(jnp.float32) * cot)


def _check_path(t: T.Topology, dtype: str, path: str, x, ws, cot, want) -> int:
  """One path against the reference: 1 on failure (printed), 0 when it passes or refuses."""
  auto, _ = kernels.choose_impl(x, t)
  if path != "auto" and (path == auto or not _accepts(x, t, path)):
    return 0
  label = f"auto={auto}" if path == "auto" else path
  fwd = lambda x, ws: kernels.cascade_matmul(x, ws, t, path)
  try:
    y = jax.jit(fwd)(x, ws)
    dx, dws = jax.jit(jax.grad(_loss(fwd, cot), (0, 1)))(x, ws)
  except Exception as err:  # a compile failure is a result: report it, go on
    print(f"FAIL {t} {dtype} {label}: {type(err).__name__}: {str(err)[:300]}", flush=True)
    return 1
  errs = [_rel_err(y, want[0]), _rel_err(dx, want[1])]
  errs += [_rel_err(g, w) for g, w in zip(dws, want[2])]
  ok = max(errs) < {"float32": 1e-4, "bfloat16": 3e-2}[dtype]
  spec = ",".join(f"{k}={v}" for k, v in sorted(t.spec) if k != "seed")
  print(
    f"{'ok  ' if ok else 'FAIL'} {t.name:<18} {spec:<44} {dtype:<8} {label:<19} max rel err "
    f"{max(errs):.1e} (y {errs[0]:.1e}, dx {errs[1]:.1e}, dW {max(errs[2:]):.1e})",
    flush=True,
  )
  return 0 if ok else 1


def _smoke_size(name: str, params: dict) -> tuple[int, dict]:
  """A 16..64-lane member of the same family for CPU smoke runs."""
  params = dict(params)
  if "radix" in params and name != "clos":
    params["radix"] = min(params["radix"], 4)
  if name == "clos":
    params.update(radix=4, width=min(params.get("width", 4), 4))
  if "n_in" in params:
    params["n_in"] = 12
  if name == "random":
    params["fan_in"] = 3
  return (16 if name in ("butterfly", "parallel_butterfly") else 32), params


def _accepts(x, t, impl, sizes=None) -> bool:
  try:
    kernels.choose_impl(x, t, impl, sizes)
  except ValueError:
    return False
  return True


def _timed_ms(fn, *args, calls: int) -> float:
  """Best of 3 averages over up to ``calls`` back-to-back calls (about 0.1 s per average)."""
  jax.block_until_ready(fn(*args))  # compile
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  once = time.perf_counter() - start
  calls = max(1, min(calls, int(0.1 / max(once, 1e-6))))
  best = math.inf
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / calls)
  return best * 1e3


def _bytes(n_in, n_out, nnz, batch, itemsize, mode) -> float:
  act = batch * (n_in + n_out) * itemsize
  weights = nnz * itemsize
  return act + weights if mode == "fwd" else 2 * act + 2 * weights


def _callable(impl: str, t: T.Topology, n: int, dtype, mode: str, sizes):
  if impl == "dense":
    w = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)) / math.sqrt(n), dtype)
    params, fwd = w, (lambda x, w: x @ w)
  else:
    params = _weights(t, dtype)
    fwd = lambda x, ws: kernels.cascade_matmul(x, ws, t, impl, block_sizes=sizes)
  if mode == "fwd":
    return jax.jit(fwd), params
  loss = lambda x, p: jnp.sum(fwd(x, p).astype(jnp.float32) ** 2)
  return jax.jit(jax.grad(loss, (0, 1))), params


def run_bench(config: ml_collections.ConfigDict) -> int:
  """Prints the timing table; returns the number of rows that failed to compile or run."""
  n, batch, calls, deadline_s = config.n, config.batch, config.calls, config.deadline_s
  dtypes = cli.names(config.dtype)
  start = time.time()
  peak_gbps = config.peak_gbps or _streaming_gbps()
  device = jax.devices()[0]
  print(
    f"# backend={jax.default_backend()} device={device.device_kind} jax={jax.__version__} "
    f"N={n} B={batch} peak {peak_gbps:.0f} GB/s"
    + (f", {config.peak_gflops:.0f} GFLOP/s (peak_gflops)" if config.peak_gflops else ""),
    flush=True,
  )
  print(
    f"{'family':<14} {'N':>5} {'depth':>5} {'dtype':>8} {'mode':>7} {'impl':<16} {'ms':>8} "
    f"{'x_dense':>7} {'%hbm':>6} {'TFLOP/s':>7}",
    flush=True,
  )
  failures, dense_ms = 0, {}
  for dtype_name in dtypes:
    dtype = jnp.dtype(dtype_name)
    for mode in cli.names(config.mode):
      for case in bench_cases(n):
        t = _make(case.name, case.n, case.params)
        x = jnp.asarray(np.random.default_rng(1).standard_normal((batch, t.n_in)), dtype)
        auto, _ = kernels.choose_impl(x, t)
        rows = [("dense", "dense", None)] if (case.n, dtype_name, mode) not in dense_ms else []
        for impl in dict.fromkeys([auto, "xla_blocked", "xla_gather", "pallas"]):
          if impl == "pallas" and (jax.default_backend() == "cpu" or dtype_name != dtypes[0]):
            continue  # interpreted timings mean nothing; fp32 was measured (gpu_check_h100.txt)
          if _accepts(x, t, impl):
            rows.append((impl + ("*" if impl == auto else ""), impl, None))
        for suffix, overrides in case.variants:
          sizes = dataclasses.replace(
            kernels.BlockSizes.get_default(jax.default_backend(), impl="xla_blocked"), **overrides
          )
          if _accepts(x, t, "xla_blocked", sizes):
            rows.append((f"xla_blocked/{suffix}", "xla_blocked", sizes))
        for label, impl, sizes in rows:
          if time.time() - start > deadline_s:
            print(f"# deadline: stopped before {case.label} {dtype_name} {mode} {label}")
            return failures
          dense = impl == "dense"
          nnz = case.n * case.n if dense else t.num_params
          flops = 2.0 * batch * nnz * (1 if mode == "fwd" else 3)
          nbytes = _bytes(t.n_in, t.n_out, nnz, batch, dtype.itemsize, mode)
          try:
            fn, params = _callable(impl, t, case.n, dtype, mode, sizes)
            ms = _timed_ms(fn, x, params, calls=calls)
          except Exception as err:  # a compile failure is a result: report it, go on
            failures += 1
            first = (str(err).strip().splitlines() or [""])[0][:200]
            print(f"# FAIL {case.label} {dtype_name} {mode} {label}: {type(err).__name__}: {first}")
            continue
          if dense:
            dense_ms[(case.n, dtype_name, mode)] = ms
          base = dense_ms.get((case.n, dtype_name, mode), math.nan)
          print(
            f"{'dense' if dense else case.label:<14} {case.n:>5} {1 if dense else t.depth:>5} "
            f"{dtype_name:>8} {mode:>7} {label:<16} {ms:>8.3f} {base / ms:>7.2f} "
            f"{100 * nbytes / (peak_gbps * 1e9) / (ms * 1e-3):>6.1f} {flops / ms * 1e-9:>7.1f}",
            flush=True,
          )
  return failures


def run_sweep(models: int, steps: int, batch: int, n: int, depth: int, d_in: int) -> float:
  """Trains ``models`` cascades (784 -> n butterfly + ReLU -> 10, SGD, softmax cross-entropy)
  as one vmapped program and one after another; prints both times, returns sequential/vmapped.

  Needs only JAX (``sweep_bench.py`` times ``nf_jax.train`` itself, which needs flax and optax).
  Compilation is excluded (one warm-up step per program); the data are Fashion-MNIST-shaped
  random numbers, which take as long as real ones.
  """
  t = T.make("butterfly", n, n_in=d_in, radix=2, depth=depth, skip=True)
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.standard_normal((2048, d_in)), jnp.float32)
  ys = jnp.asarray(rng.integers(0, 10, 2048), jnp.int32)
  idx = jnp.asarray(rng.integers(0, 2048, (steps + 1, models, batch)), jnp.int32)

  def init(seed):
    keys = jax.random.split(jax.random.key(seed), depth + 1)
    stages = [jax.random.normal(k, s.shape) / math.sqrt(s.shape[1]) for k, s in zip(keys, t.stages)]
    head = jax.random.normal(keys[-1], (n, 10)) / math.sqrt(n)
    return dict(stages=stages, bias=jnp.zeros(n), head=head, head_bias=jnp.zeros(10))

  def loss(params, rows):
    h = jax.nn.relu(kernels.cascade_matmul(xs[rows], params["stages"], t) + params["bias"])
    logits = h @ params["head"] + params["head_bias"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ys[rows][:, None], 1))

  def step(params, rows):
    value, grads = jax.value_and_grad(loss)(params, rows)
    return jax.tree.map(lambda p, g: p - 0.05 * g, params, grads), value

  stacked = jax.vmap(init)(jnp.arange(models))
  one = [jax.tree.map(lambda a, m=m: a[m], stacked) for m in range(models)]

  def train(fn, params, column):
    params, value = fn(params, column(0))  # compile and warm up
    jax.block_until_ready(value)
    start = time.perf_counter()
    for i in range(1, steps + 1):
      params, value = fn(params, column(i))
    jax.block_until_ready(value)
    return time.perf_counter() - start

  vmapped = train(jax.jit(jax.vmap(step)), stacked, lambda i: idx[i])
  single = jax.jit(step)
  sequential = sum(train(single, one[m], lambda i, m=m: idx[i, m]) for m in range(models))
  print(
    f"sweep: {t}, M={models}, {steps} steps of {batch} on {jax.devices()[0].device_kind}\n"
    f"vmapped    : {vmapped:9.4f} s  {models * steps * batch / vmapped:12.0f} examples/s\n"
    f"sequential : {sequential:9.4f} s  {models * steps * batch / sequential:12.0f} examples/s\n"
    f"sequential / vmapped time: {sequential / vmapped:.2f}x (issue 16 goal: >= 4x)",
    flush=True,
  )
  return sequential / vmapped


def _streaming_gbps() -> float:
  x = jnp.ones((16 * 1024 * 1024,), jnp.float32)
  return x.nbytes / (_timed_ms(jax.jit(jnp.sum), x, calls=5) * 1e-3) / 1e9


PARTS = ("check", "bench", "sweep")
MODES = ("fwd", "fwd_bwd")
DTYPES = ("bfloat16", "float32")


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses an unknown part, dtype or mode, and sizes a chosen part does not read."""
  parts = cli.names(config.part)
  cli.check_choices("part", parts, PARTS)
  cli.check_choices("dtype", cli.names(config.dtype), DTYPES)
  cli.check_choices("mode", cli.names(config.mode), MODES)
  unread = {f for f in overrides if f.startswith("sweep_")} if "sweep" not in parts else set()
  if "bench" not in parts:
    bench = {"n", "batch", "dtype", "mode", "peak_gbps", "peak_gflops", "calls", "deadline_s"}
    unread |= overrides & bench
  if unread:
    raise ValueError(
      f"--config.{sorted(unread)[0]} is read by no part of --config.part={list(parts)}; drop it "
      "or add the part that reads it"
    )


def main(config: ml_collections.ConfigDict) -> None:
  """Runs the parts ``config`` (``benchmarks/configs/family_bench.py``) names; exits non-zero on
  a failure."""
  parts = cli.names(config.part)
  failures = 0
  if "check" in parts:
    failures += run_check(config.check_tiny)
  if "bench" in parts:
    failures += run_bench(config)
  if "sweep" in parts:
    run_sweep(
      config.sweep_models,
      config.sweep_steps,
      config.sweep_batch,
      config.sweep_n,
      config.sweep_depth,
      d_in=config.sweep_d_in,
    )
  if failures:
    sys.exit(f"family_bench: {failures} failure(s), see FAIL lines above")


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(main, os.path.join(here, "configs", "family_bench.py"), validate=validate)
