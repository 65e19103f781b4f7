#!/usr/bin/env bash
# GPU check for the sparse-cascade kernels (issue 16), for a lent H100/H200, in under 6 minutes:
#   1. correctness, compiled: every family's auto path (what impl="auto" picks on this GPU), then
#      xla_blocked and pallas (bf16 only) where they accept the topology, against the dense
#      float32 reference: forward, dx, dW, fp32 and bf16 (family_bench.py --config.part=check);
#   2. the timing table at N=4096, B=8192, bf16 then fp32, forward and forward+backward:
#      radix-2 butterfly of depth 12 (also xla_blocked merged into 64x64 blocks), butterfly
#      radix 16, butterfly radix 32 (N=1024: 4096 is not a power of 32), Clos 32x32,
#      block-diagonal 64, against dense x @ W in the same process, with the % of the HBM
#      roofline (family_bench.py --config.part=bench; pallas rows in bf16 only);
#   3. one Fashion-MNIST-sized epoch (60000 examples = 469 steps of 128) of 8 radix-2 butterfly
#      cascades (784 -> 1024, depth 10, skips) trained as one vmapped program, against the same 8
#      trained one after another: a JAX-only loop (family_bench.py --config.part=sweep), then, when
#      flax, optax, orbax and tqdm are installed, nf_jax.train's own step (sweep_bench.py);
#   4. only with NF_GPU_CHECK_PYTEST=1 (about a minute more): the pallas and blocked tests of
#      tests/test_kernels*.py, compiled (NF_KERNELS_INTERPRET=0).
# Step budgets (timeouts): 100 + 150 + 45 + 50 s, under 6 minutes with start-up; each step keeps
# what it printed before a timeout. Needs Python 3.12+ with jax[cuda] (0.11.x), numpy, absl-py,
# ml_collections (the benchmarks' configs); installs nothing. nf_jax.kernels lives in the top-level folder kernels/ (pyproject
# package-dir), so the script builds a throw-away import tree of symlinks instead of
# pip-installing the repository.
# Writes its logs to $OUT (or ./gpu_check_out). The same Python runs on CPU in smoke mode:
#   python benchmarks/family_bench.py --config=benchmarks/configs/family_bench.py:smoke
#   python benchmarks/sweep_bench.py --config=benchmarks/configs/sweep_bench.py:smoke
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
START=$SECONDS

"$PY" - <<'PY' || exit 1
import importlib.util, sys
missing = [
  m for m in ("jax", "numpy", "absl", "ml_collections") if importlib.util.find_spec(m) is None
]
if missing:
  sys.exit(f"gpu_check: missing modules {missing}; this script installs nothing")
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
if jax.default_backend() != "gpu":
  sys.exit("gpu_check: no GPU backend; run tests/test_kernels*.py on CPU instead")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
git -C "$ROOT" log -1 --format='commit %h %s' 2>/dev/null || true

# Peaks for the roofline: NVIDIA H100 SXM5 datasheet: 3.35 TB/s HBM3, 989 TFLOP/s BF16 dense
# tensor; H200 SXM: 4.8 TB/s HBM3e, same compute.
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
GBPS=3350
case "$GPU_NAME" in *H200*) GBPS=4800 ;; esac

echo "== 1. correctness: auto, xla_blocked, pallas vs the dense reference (fwd, dx, dW; fp32, bf16)"
# -P: the repository root must not shadow the import tree above (its nf_jax has no kernels/).
timeout 100 "$PY" -P benchmarks/family_bench.py --config.part=check 2>&1 | grep -v "^[IW][0-9]" \
  | tee "$LOG/correctness.txt"
echo "# step 1 done at $((SECONDS - START)) s"

echo "== 2. timing table: N=4096, B=8192, $GPU_NAME, HBM peak $GBPS GB/s (datasheet)"
timeout 150 "$PY" -P benchmarks/family_bench.py --config.part=bench --config.n=4096 \
  --config.batch=8192 --config.dtype=bfloat16,float32 --config.mode=fwd,fwd_bwd \
  --config.peak_gbps="$GBPS" --config.peak_gflops=989000 --config.deadline_s=125 2>&1 | grep -v "^[IW][0-9]" | tee "$LOG/bench.txt"
echo "# step 2 done at $((SECONDS - START)) s"

echo "== 3. one epoch (469 steps x 128) of 8 cascades: vmapped vs one after another"
timeout 45 "$PY" -P benchmarks/family_bench.py --config.part=sweep 2>&1 | grep -v "^[IW][0-9]" \
  | tee "$LOG/sweep.txt"
if "$PY" -c "import flax, optax, orbax.checkpoint, tqdm" 2>/dev/null; then
  # The same through nf_jax.train's own jitted, sharded train step.
  timeout 50 "$PY" -P benchmarks/sweep_bench.py --config.models=8 --config.steps=469 \
    --config.batch_size=128 --config.name=butterfly --config.n=1024 --config.radix=2 \
    --config.depth=10 --config.skip=True 2>&1 | grep -v "^[IW][0-9]" \
    | tee -a "$LOG/sweep.txt"
else
  echo "# sweep_bench.py skipped: flax, optax, orbax-checkpoint or tqdm missing" | tee -a "$LOG/sweep.txt"
fi
echo "# step 3 done at $((SECONDS - START)) s"

if [ "${NF_GPU_CHECK_PYTEST:-0}" = "1" ] && "$PY" -c "import pytest" 2>/dev/null; then
  echo "== 4. pytest tests/test_kernels*.py -k 'pallas or blocked', compiled"
  NF_KERNELS_INTERPRET=0 timeout 90 "$PY" -P -m pytest -q -x tests/test_kernels.py \
    tests/test_kernels_blocked.py -k "pallas or blocked" -p no:cacheprovider 2>&1 | tail -5 \
    || echo "pytest subset failed or timed out (see above)"
fi
echo "# gpu_check: $((SECONDS - START)) s in all"
