#!/usr/bin/env bash
# GPU check for the sparse-cascade kernels (issue 3), for a lent H100/H200: compiled (not
# interpreted) Pallas correctness against the dense reference, then the benchmark table at
# N=4096, B=8192, radix 2, fp32 and bf16. Budget: < 5 minutes on one H100.
#
# Needs Python 3.12+ with jax[cuda] (0.11.x), numpy and absl-py preinstalled; installs nothing.
# nf_jax.kernels lives in the top-level folder kernels/ (pyproject package-dir), so this script
# builds a throw-away import tree of symlinks instead of pip-installing the repository.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
mkdir -p "$SITE/nf_jax"
for entry in "$ROOT"/nf_jax/*; do ln -s "$entry" "$SITE/nf_jax/$(basename "$entry")"; done
ln -s "$ROOT/kernels" "$SITE/nf_jax/kernels"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"

"$PY" - <<'PY'
import importlib, sys
missing = [m for m in ("jax", "numpy", "absl") if importlib.util.find_spec(m) is None]
if missing:
  sys.exit(f"gpu_check: missing modules {missing}; this script installs nothing")
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
if jax.default_backend() != "gpu":
  sys.exit("gpu_check: no GPU backend; run tests/test_kernels.py on CPU instead")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== 1. compiled Pallas vs dense reference (forward, dx, dW)"
timeout 150 "$PY" - <<'PY'
import jax, jax.numpy as jnp, numpy as np
from nf_jax import kernels, topology as T

cases = [
  ("butterfly", dict(n=1024, radix=2)),
  ("butterfly", dict(n=256, radix=4, skip=True)),
  ("parallel_butterfly", dict(n=256, radix=2, width=2, skip=True)),
  ("butterfly", dict(n=256, n_in=200, radix=2, skip=True)),
  ("clos", dict(n=256, radix=16, width=16)),
]
tol = {jnp.float32: 2e-3, jnp.bfloat16: 5e-2}  # fp32 dots on GPU may use TF32 in XLA's reference
failed = 0
for name, kw in cases:
  kw = dict(kw); n = kw.pop("n")
  t = T.make(name, n, **kw)
  rng = np.random.default_rng(0)
  for dtype in (jnp.float32, jnp.bfloat16):
    x = jnp.asarray(rng.standard_normal((96, t.n_in)), dtype)
    ws = [jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(s.shape[1]), dtype) for s in t.stages]
    cot = jnp.asarray(rng.standard_normal((96, t.n_out)), jnp.float32)
    loss = lambda f: (lambda x, ws: jnp.sum(f(x, ws).astype(jnp.float32) * cot))
    f_p = lambda x, ws: kernels.cascade_matmul(x, ws, t, "pallas", interpret=False)
    f_r = lambda x, ws: kernels.cascade_matmul_reference(x.astype(jnp.float32), [w.astype(jnp.float32) for w in ws], t)
    y, y_ref = jax.jit(f_p)(x, ws), f_r(x, ws)
    g = jax.jit(jax.grad(loss(f_p), (0, 1)))(x, ws)
    g_ref = jax.grad(loss(f_r), (0, 1))(x, ws)
    err = lambda a, b: float(jnp.abs(a.astype(jnp.float32) - b).max() / jnp.abs(b).max())
    errs = [err(y, y_ref), err(g[0], g_ref[0])] + [err(a, b) for a, b in zip(g[1], g_ref[1])]
    ok = max(errs) < tol[dtype]
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} {kw} {jnp.dtype(dtype).name}: max rel err {max(errs):.2e}")
raise SystemExit(1 if failed else 0)
PY

if "$PY" -c "import pytest" 2>/dev/null; then
  echo "== 1b. pytest tests/test_kernels.py with compiled Pallas (NF_KERNELS_INTERPRET=0)"
  NF_KERNELS_INTERPRET=0 timeout 120 "$PY" -m pytest -q -x tests/test_kernels.py -k "pallas" \
    -p no:cacheprovider || echo "pytest subset failed (see above)"
fi

# Peaks for the roofline: NVIDIA H100 SXM5 datasheet: 3.35 TB/s HBM3, 67 TFLOP/s FP32,
# 989 TFLOP/s BF16 dense tensor; H200 SXM: 4.8 TB/s, same compute.
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
GBPS=3350
case "$GPU_NAME" in *H200*) GBPS=4800 ;; esac
echo "== 2. benchmark (N=4096, B=8192, radix 2; $GPU_NAME; peaks from the datasheet)"
for spec in "float32 67000" "bfloat16 989000"; do
  set -- $spec
  timeout 120 "$PY" benchmarks/cascade_bench.py --n=4096 --batch=8192 --radix=2 \
    --mode=fwd,fwd_bwd --dtype="$1" --peak_gflops="$2" --peak_gbps="$GBPS" \
    --impls=pallas,xla_blocked,xla_gather,dense,bcoo --warmup=2 --repeats=5 \
    || echo "benchmark ($1) failed or timed out"
done
