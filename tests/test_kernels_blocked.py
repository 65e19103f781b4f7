"""``xla_blocked`` in bfloat16 against the dense reference, and its one-matmul-per-stage form.

The accelerator tiling (``BlockSizes.get_default("gpu", impl="xla_blocked")``: the whole batch
at once) is what GPUs and TPUs run; the CPU tiling (32-row tiles, a tile-local backward) is
checked alongside. Speed on a GPU is measured by ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nf_jax.kernels import structure

from nf_jax import kernels
from nf_jax import topology as T

# Block-structured families (Monarch-style: every stage a batched block matmul after a reshape or
# transpose of the lanes).
CASES = {
  "butterfly_r8_skip": dict(name="butterfly", n=64, radix=8, skip=True),
  "butterfly_r16": dict(name="butterfly", n=256, radix=16),
  "clos_16x16": dict(name="clos", n=256, radix=16, width=16),
  "block_diagonal_r8_skip": dict(name="block_diagonal", n=64, radix=8, skip=True),
  # Seven radix-2 stages merged into a 16x16 and an 8x8 block stage.
  "butterfly_r2_merged": dict(name="butterfly", n=128, radix=2),
}
TILINGS = {
  "accelerator": kernels.BlockSizes.get_default("gpu", impl="xla_blocked"),
  "cpu": kernels.BlockSizes.get_default("cpu"),
}
BATCH = 40  # above the CPU tile (two tiles, one padded); no block edge equals it
# Max |error| / max |reference| in bfloat16: 8 mantissa bits (4e-3 per rounding), one rounding
# per (merged) stage and per cast of x and the weights. Measured here: 4.8e-3 (butterfly radix
# 16) to 9.5e-3 (seven radix-2 stages merged into two blocks).
BF16_TOLERANCE = 2e-2


def make(key: str) -> T.Topology:
  spec = dict(CASES[key])
  return T.make(spec.pop("name"), spec.pop("n"), **spec)


def rel_err(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.fixture(autouse=True)
def full_precision_fp32_matmuls():
  with jax.default_matmul_precision("highest"):
    yield


# The CPU tiling once more (tests/test_kernels.py runs it in bf16 on merged radix-2/4 stages).
BF16_CASES = [(key, "accelerator") for key in CASES] + [("block_diagonal_r8_skip", "cpu")]


@pytest.mark.parametrize("key,tiling", BF16_CASES)
def test_blocked_bfloat16_forward_and_grads_match_dense_reference(key, tiling):
  t = make(key)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((BATCH, t.n_in)), jnp.bfloat16)
  ws = [
    jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(s.shape[1]), jnp.bfloat16) for s in t.stages
  ]
  cot = jnp.asarray(rng.standard_normal((BATCH, t.n_out)), jnp.float32)
  sizes = TILINGS[tiling]

  def loss(fn):
    return lambda x, ws: jnp.sum(fn(x, ws).astype(jnp.float32) * cot)

  blocked = lambda x, ws: kernels.cascade_matmul(x, ws, t, "xla_blocked", block_sizes=sizes)
  y = jax.jit(blocked)(x, ws)
  dx, dws = jax.jit(jax.grad(loss(blocked), argnums=(0, 1)))(x, ws)
  assert y.dtype == dx.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in dws)

  # Oracle: the dense float32 reference on the same (bf16-rounded) inputs.
  f32 = lambda a: a.astype(jnp.float32)
  x32, ws32 = f32(x), [f32(w) for w in ws]
  y_ref = kernels.cascade_matmul_reference(x32, ws32, t)
  dx_ref, dws_ref = jax.grad(
    loss(lambda x, ws: kernels.cascade_matmul_reference(x, ws, t)), (0, 1)
  )(x32, ws32)
  errors = [rel_err(f32(y), y_ref), rel_err(f32(dx), dx_ref)]
  errors += [rel_err(f32(g), want) for g, want in zip(dws, dws_ref)]
  assert max(errors) < BF16_TOLERANCE, errors


def _sub_jaxprs(params):
  """Jaxprs nested in an equation's params (pjit, custom_vjp, map/scan bodies)."""
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      inner = getattr(item, "jaxpr", item)
      if hasattr(inner, "eqns"):
        yield inner


def _activation_ops(jaxpr, rows: int) -> dict[str, int]:
  """Counts dot_general and gather equations whose output has a ``rows``-long axis (the batch),
  recursing into sub-jaxprs; weight-only work (merging blocks, layouts) has no such axis."""
  counts = {"dot_general": 0, "gather": 0}
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in counts and any(rows in v.aval.shape for v in eqn.outvars):
      counts[eqn.primitive.name] += 1
    for sub in _sub_jaxprs(eqn.params):
      for name, count in _activation_ops(sub, rows).items():
        counts[name] += count
  return counts


@pytest.mark.parametrize("key", list(CASES))
def test_blocked_runs_one_batched_matmul_per_stage_and_no_gather(key):
  """Monarch form: each (merged) stage is one dot_general over the whole batch, after a reshape
  or transpose of the lanes, never a gather."""
  t = make(key)
  sizes = TILINGS["accelerator"]
  program = structure.program_plans(structure.plan_topology(t).stages, sizes.max_merge)
  x = jnp.zeros((BATCH, t.n_in), jnp.bfloat16)
  ws = [jnp.zeros(s.shape, jnp.bfloat16) for s in t.stages]
  jaxpr = jax.make_jaxpr(
    lambda x, ws: kernels.cascade_matmul(x, ws, t, "xla_blocked", block_sizes=sizes)
  )(x, ws).jaxpr
  counts = _activation_ops(jaxpr, BATCH)
  assert counts == {"dot_general": len(program), "gather": 0}
  if key == "butterfly_r2_merged":
    assert [(sp.ko, sp.ki) for sp in program] == [(16, 16), (8, 8)]
