#!/usr/bin/env bash
# GPU check for the sparse-cascade kernels (issue 3), for a lent H100/H200, in < 5 minutes:
#   1. compiled (not interpreted) Pallas/Triton against the dense reference: forward, dx, dW;
#   2. a small sweep of the kernel's tiling (batch_tile, max_merge, num_warps) at N=4096,
#      B=8192, fp32, forward and forward+backward;
#   3. the benchmark table at N=4096, B=8192, radix 2, fp32 and bf16, with the best tiling
#      (xla_blocked is left out: its CPU-shaped batched matmuls ran at 68 ms forward on an H100);
#   4. the pallas subset of tests/test_kernels.py, compiled (NF_KERNELS_INTERPRET=0).
# Needs Python 3.12+ with jax[cuda] (0.11.x), numpy, absl-py (pytest for step 4); installs
# nothing. nf_jax.kernels lives in the top-level folder kernels/ (pyproject package-dir), so the
# script builds a throw-away import tree of symlinks instead of pip-installing the repository.
# Writes its logs to $OUT (or ./gpu_check_out).
#
#   bash benchmarks/gpu_check.sh            # from anywhere
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
LOG="${OUT:-$ROOT/gpu_check_out}"
mkdir -p "$LOG"
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
mkdir -p "$SITE/nf_jax"
for entry in "$ROOT"/nf_jax/*; do ln -s "$entry" "$SITE/nf_jax/$(basename "$entry")"; done
ln -s "$ROOT/kernels" "$SITE/nf_jax/kernels"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$ROOT"

"$PY" - <<'PY' || exit 1
import importlib.util, sys
missing = [m for m in ("jax", "numpy", "absl") if importlib.util.find_spec(m) is None]
if missing:
  sys.exit(f"gpu_check: missing modules {missing}; this script installs nothing")
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
if jax.default_backend() != "gpu":
  sys.exit("gpu_check: no GPU backend; run tests/test_kernels.py on CPU instead")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== 1. compiled Pallas vs dense reference (forward, dx, dW), default GPU tiling"
# -P: the repository root must not shadow the import tree above (its nf_jax has no kernels/).
timeout 120 "$PY" -P - <<'PY' 2>&1 | tee "$LOG/correctness.txt"
import jax, jax.numpy as jnp, numpy as np
from nf_jax import kernels, topology as T

jax.config.update("jax_default_matmul_precision", "highest")  # no TF32 in the reference
cases = [
  ("butterfly", dict(n=1024, radix=2)),
  ("butterfly", dict(n=256, radix=4, skip=True)),
  ("parallel_butterfly", dict(n=256, radix=2, width=2, skip=True)),
  ("butterfly", dict(n=256, n_in=200, radix=2, skip=True)),
  ("clos", dict(n=256, radix=16, width=16)),
]
tol = {jnp.float32: 1e-4, jnp.bfloat16: 3e-2}
failed = 0
for name, kw in cases:
  kw = dict(kw); n = kw.pop("n")
  t = T.make(name, n, **kw)
  rng = np.random.default_rng(0)
  for dtype in (jnp.float32, jnp.bfloat16):
    x = jnp.asarray(rng.standard_normal((100, t.n_in)), dtype)  # 100: exercises batch padding
    ws = [jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(s.shape[1]), dtype) for s in t.stages]
    cot = jnp.asarray(rng.standard_normal((100, t.n_out)), jnp.float32)
    loss = lambda f: (lambda x, ws: jnp.sum(f(x, ws).astype(jnp.float32) * cot))
    f_p = lambda x, ws: kernels.cascade_matmul(x, ws, t, "pallas")
    f_r = lambda x, ws: kernels.cascade_matmul_reference(
      x.astype(jnp.float32), [w.astype(jnp.float32) for w in ws], t)
    try:
      y, y_ref = jax.jit(f_p)(x, ws), f_r(x, ws)
      g = jax.jit(jax.grad(loss(f_p), (0, 1)))(x, ws)
    except Exception as err:
      failed += 1
      print(f"FAIL {name} {kw} {jnp.dtype(dtype).name}: {type(err).__name__}: {str(err)[:400]}")
      continue
    g_ref = jax.grad(loss(f_r), (0, 1))(x, ws)
    err = lambda a, b: float(jnp.abs(a.astype(jnp.float32) - b).max() / jnp.abs(b).max())
    errs = [err(y, y_ref), err(g[0], g_ref[0])] + [err(a, b) for a, b in zip(g[1], g_ref[1])]
    ok = max(errs) < tol[dtype]
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} {kw} {jnp.dtype(dtype).name}: "
          f"max rel err {max(errs):.2e} (y {errs[0]:.1e}, dx {errs[1]:.1e}, dW {max(errs[2:]):.1e})")
print(f"correctness: {failed} failed")
PY

# Peaks for the roofline: NVIDIA H100 SXM5 datasheet: 3.35 TB/s HBM3, 67 TFLOP/s FP32,
# 989 TFLOP/s BF16 dense tensor; H200 SXM: 4.8 TB/s, same compute.
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
GBPS=3350
case "$GPU_NAME" in *H200*) GBPS=4800 ;; esac
echo "== 2. tiling sweep: pallas, N=4096, B=8192, radix 2, fp32 (median of 5, ms)"
timeout 170 "$PY" -P - "$LOG/best_tiling.txt" "$GBPS" <<'PY' 2>&1 | tee "$LOG/sweep.txt"
import sys, time, jax, jax.numpy as jnp, numpy as np
from nf_jax import kernels, topology as T

t = T.make("butterfly", 4096, radix=2)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.standard_normal((8192, 4096)), jnp.float32)
ws = [jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(2), jnp.float32) for s in t.stages]

def median_ms(fn):
  jax.block_until_ready(fn(x, ws))
  times = []
  for _ in range(5):
    start = time.perf_counter(); jax.block_until_ready(fn(x, ws)); times.append(time.perf_counter() - start)
  return 1e3 * sorted(times)[2]

def build(sizes, mode):
  fwd = lambda x, ws: kernels.cascade_matmul(x, ws, t, "pallas", block_sizes=sizes)
  if mode == "fwd":
    return jax.jit(fwd)
  return jax.jit(jax.grad(lambda x, ws: jnp.sum(fwd(x, ws) ** 2), (0, 1)))

# Roofline bytes: x in, y out (fwd); fwd+bwd adds x and g in, dx out: 5 x 128 MiB at fp32.
act = 8192 * 4096 * 4
hbm = float(sys.argv[2]) * 1e9  # bytes/s, the datasheet peak picked above
floor = {"fwd": 2 * act / hbm * 1e3, "fwd_bwd": 5 * act / hbm * 1e3}
grid = [(1, 4, 4), (2, 4, 4), (4, 4, 4), (2, 2, 4), (2, 4, 8), (4, 4, 8), (8, 4, 8), (2, 8, 4), (1, 16, 4)]
results = {}
deadline = time.time() + 120
for bt, merge, warps in grid:
  if time.time() > deadline:
    print("# sweep: out of time"); break
  sizes = kernels.BlockSizes(batch_tile=bt, max_merge=merge, num_warps=warps)
  try:
    ms = median_ms(build(sizes, "fwd"))
  except Exception as err:
    print(f"bt={bt} merge={merge} warps={warps}: FAIL {type(err).__name__}: {str(err)[:200]}")
    continue
  results[(bt, merge, warps)] = ms
  print(f"bt={bt:>2} merge={merge:>2} warps={warps}: fwd {ms:8.3f} ms  ({100 * floor['fwd'] / ms:5.1f}% of HBM roofline)")
if not results:
  sys.exit("sweep: no tiling compiled")
bt, merge, warps = min(results, key=results.get)
backward = {}
for programs in (64, 256, 1024):
  if time.time() > deadline + 40:
    break
  sizes = kernels.BlockSizes(batch_tile=bt, max_merge=merge, num_warps=warps, backward_programs=programs)
  try:
    backward[programs] = ms = median_ms(build(sizes, "fwd_bwd"))
    print(f"bt={bt:>2} merge={merge:>2} warps={warps} backward_programs={programs:>4}: fwd+bwd {ms:8.3f} ms  ({100 * floor['fwd_bwd'] / ms:5.1f}% of HBM roofline)")
  except Exception as err:
    print(f"backward_programs={programs}: fwd+bwd FAIL {type(err).__name__}: {str(err)[:200]}")
programs = min(backward, key=backward.get) if backward else 256
open(sys.argv[1], "w").write(f"--batch_tile={bt} --max_merge={merge} --num_warps={warps} --backward_programs={programs}\n")
PY
TILING="$(cat "$LOG/best_tiling.txt" 2>/dev/null || true)"

echo "== 3. benchmark (N=4096, B=8192, radix 2; $GPU_NAME; peaks from the datasheet; $TILING)"
for spec in "float32 67000" "bfloat16 989000"; do
  set -- $spec
  # shellcheck disable=SC2086  # TILING holds several flags
  timeout 100 "$PY" benchmarks/cascade_bench.py --n=4096 --batch=8192 --radix=2 \
    --mode=fwd,fwd_bwd --dtype="$1" --peak_gflops="$2" --peak_gbps="$GBPS" $TILING \
    --impls=pallas,xla_gather,dense,bcoo --max_dense_gflop=2000 --warmup=2 --repeats=5 2>&1 \
    | tee -a "$LOG/bench.txt" || echo "benchmark ($1) failed or timed out"
done

if "$PY" -c "import pytest" 2>/dev/null; then
  echo "== 4. pytest tests/test_kernels.py -k pallas, compiled (NF_KERNELS_INTERPRET=0)"
  NF_KERNELS_INTERPRET=0 timeout 60 "$PY" -P -m pytest -q -x tests/test_kernels.py -k "pallas" \
    -p no:cacheprovider 2>&1 | tail -5 || echo "pytest subset failed or timed out (see above)"
fi
