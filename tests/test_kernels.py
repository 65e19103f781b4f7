"""Every cascade_matmul implementation against dense references: forward, dx, dW, vmap, bf16."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nf_jax.kernels import dispatch, structure

from nf_jax import kernels
from nf_jax import topology as T

# Max |error| / max |reference|, per dtype (bf16 keeps 8 mantissa bits, ~4e-3 per rounding, and
# the errors of a few stages and a reduction add up).
TOLERANCE = {jnp.float32: 2e-5, jnp.bfloat16: 4e-2}

TOPOLOGIES = {
  "butterfly_r2": dict(name="butterfly", n=32, radix=2),
  "butterfly_r4_skip": dict(name="butterfly", n=64, radix=4, skip=True),
  "butterfly_r16": dict(name="butterfly", n=256, radix=16),
  "parallel_skip": dict(name="parallel_butterfly", n=16, radix=2, width=2, skip=True),
  "rectangular_skip": dict(name="butterfly", n=32, n_in=20, radix=2, skip=True),
  "random": dict(name="random", n=32, n_in=24, fan_in=4, depth=2),
  "clos": dict(name="clos", n=16, radix=4, width=4),
  # n = 32 is not a power of 4, so the stride permutation is not a butterfly digit pattern.
  "block_diagonal_skip": dict(name="block_diagonal", n=32, radix=4, skip=True),
}

# cpu_ffi runs any topology on the CPU backend (CI installs the C++ compiler it builds with).
CPU_FFI = ("cpu_ffi",) if kernels.cpu_ffi.refusal() is None else ()

# Which explicit implementations must accept each topology (the others must refuse it).
SUPPORTED = {
  "butterfly_r2": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "butterfly_r4_skip": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "butterfly_r16": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "parallel_skip": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "rectangular_skip": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "random": ("xla_gather",) + CPU_FFI,
  "clos": ("pallas", "xla_blocked", "xla_gather") + CPU_FFI,
  "block_diagonal_skip": ("xla_blocked", "xla_gather") + CPU_FFI,
}


@pytest.fixture(autouse=True)
def full_precision_fp32_matmuls():
  """GPUs run fp32 matmuls in TF32 under JAX's default precision (xla_blocked's block matmuls
  on an H100 missed the fp32 tolerance by that); users pick the precision with
  ``jax.default_matmul_precision``, and these tests pick full fp32."""
  with jax.default_matmul_precision("highest"):
    yield


def make(key: str) -> T.Topology:
  spec = dict(TOPOLOGIES[key])
  return T.make(spec.pop("name"), spec.pop("n"), **spec)


def numpy_dense(weights, t: T.Topology) -> np.ndarray:
  """Independent oracle: dense stage matrices built with np.add.at, multiplied in float64."""
  total = np.eye(t.n_in)
  for w, table, skip, n_in in zip(weights, t.stages, t.skips, t.stage_n_in):
    m = np.zeros((n_in, table.shape[0]))
    rows = np.broadcast_to(np.arange(table.shape[0])[:, None], table.shape)
    np.add.at(m, (table, rows), np.asarray(w, np.float64))
    if skip is not None:
      rows = np.broadcast_to(np.arange(skip.shape[0])[:, None], skip.shape)
      np.add.at(m, (skip, rows), 1.0 / skip.shape[1])
    total = total @ m
  return total


def random_args(t: T.Topology, batch: int, dtype, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((batch, t.n_in)), dtype)
  ws = [
    jnp.asarray(rng.standard_normal(tab.shape) / np.sqrt(tab.shape[1]), dtype) for tab in t.stages
  ]
  return x, ws


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# CPU CI interprets the Pallas kernels; benchmarks/gpu_check.sh sets NF_KERNELS_INTERPRET=0 to
# compile them on a GPU.
INTERPRET = os.environ.get("NF_KERNELS_INTERPRET", "1") != "0"


def run(x, ws, t, impl):
  return kernels.cascade_matmul(x, ws, t, impl, interpret=INTERPRET and impl == "pallas")


CASES = [(k, impl) for k in TOPOLOGIES for impl in SUPPORTED[k]]
# To fit the CI budget, bf16 runs on three topologies (skips, a branch-summing stage, wrapped
# inputs) and the foundation's xla_gather baseline is differentiated on two.
BF16_KEYS = ("butterfly_r4_skip", "parallel_skip", "rectangular_skip")
FORWARD_CASES = [(k, i, jnp.float32) for k, i in CASES] + [
  (k, i, jnp.bfloat16) for k, i in CASES if k in BF16_KEYS
]
GRAD_CASES = [
  (k, i, jnp.float32) for k, i in CASES if i != "xla_gather" or k in ("random", "parallel_skip")
] + [(k, i, jnp.bfloat16) for k, i in CASES if k in BF16_KEYS[:2] and i != "xla_gather"]
# The gather's custom VJP in bf16, on a skip topology (both transposed tables are read).
GRAD_CASES.append(("parallel_skip", "xla_gather", jnp.bfloat16))


@pytest.mark.parametrize("key", list(TOPOLOGIES))
def test_dense_reference_matches_numpy(key):
  t = make(key)
  _, ws = random_args(t, 1, jnp.float32)
  assert rel_err(kernels.cascade_dense_matrix(ws, t), numpy_dense(ws, t)) < 1e-5


@pytest.mark.parametrize("key,impl,dtype", FORWARD_CASES)
def test_forward_matches_dense(key, impl, dtype):
  t = make(key)
  x, ws = random_args(t, 13, dtype)  # 13: not a multiple of any batch tile
  y = jax.jit(lambda x, ws: run(x, ws, t, impl))(x, ws)
  assert y.shape == (13, t.n_out) and y.dtype == dtype
  x64 = np.asarray(x.astype(jnp.float32), np.float64)
  expected = x64 @ numpy_dense([w.astype(jnp.float32) for w in ws], t)
  assert rel_err(y.astype(jnp.float32), expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("key,impl,dtype", GRAD_CASES)
def test_gradients_match_reference(key, impl, dtype):
  t = make(key)
  x, ws = random_args(t, 13, dtype, seed=1)
  cot = jnp.asarray(np.random.default_rng(2).standard_normal((13, t.n_out)), jnp.float32)

  def loss(fn):
    return lambda x, ws: jnp.sum(fn(x, ws).astype(jnp.float32) * cot)

  got = jax.jit(jax.grad(loss(lambda x, ws: run(x, ws, t, impl)), argnums=(0, 1)))(x, ws)
  # Oracle: dx = g M^T and dW by autodiff of the dense float32 reference.
  f32 = lambda a: a.astype(jnp.float32)
  want = jax.grad(loss(lambda x, ws: kernels.cascade_matmul_reference(x, ws, t)), argnums=(0, 1))(
    f32(x), [f32(w) for w in ws]
  )
  dense = numpy_dense([f32(w) for w in ws], t)
  assert rel_err(f32(got[0]), np.asarray(cot, np.float64) @ dense.T) < TOLERANCE[dtype]
  assert got[0].dtype == dtype and all(g.dtype == dtype for g in got[1])
  for s, (g, w) in enumerate(zip(got[1], want[1])):
    assert rel_err(f32(g), w) < TOLERANCE[dtype], f"dW[{s}]"


@pytest.mark.parametrize(
  "impl,block_sizes",
  [
    ("xla_blocked", kernels.BlockSizes(8, 1)),
    ("xla_blocked", kernels.BlockSizes(16, 4, digit_layout=False)),
    ("pallas", kernels.BlockSizes(8, 1)),
    ("pallas", kernels.BlockSizes(16, 8)),
  ],
)
def test_block_sizes_and_merging(impl, block_sizes):
  t = T.make("butterfly", 64, radix=2, depth=8, skip=True)  # depth > log2(n): digits repeat
  x, ws = random_args(t, 20, jnp.float32)
  y = kernels.cascade_matmul(x, ws, t, impl, interpret=INTERPRET, block_sizes=block_sizes)
  assert rel_err(y, np.asarray(x, np.float64) @ numpy_dense(ws, t)) < TOLERANCE[jnp.float32]


def test_pallas_backward_programs_walk_several_tiles():
  """100 rows in 8-row tiles over at most 3 backward programs: 13 tiles -> 5 per program, the
  batch padded to 15 tiles; each program accumulates dW over its tiles in a loop."""
  t = T.make("butterfly", 64, radix=2, depth=8, skip=True)
  x, ws = random_args(t, 100, jnp.float32, seed=3)
  cot = jnp.asarray(np.random.default_rng(4).standard_normal((100, t.n_out)), jnp.float32)
  sizes = kernels.BlockSizes(batch_tile=8, max_merge=4, backward_programs=3)
  fwd = lambda x, ws: kernels.cascade_matmul(
    x, ws, t, "pallas", interpret=INTERPRET, block_sizes=sizes
  )
  dx, dws = jax.jit(jax.grad(lambda x, ws: jnp.sum(fwd(x, ws) * cot), (0, 1)))(x, ws)
  dense = numpy_dense(ws, t)
  assert rel_err(dx, np.asarray(cot, np.float64) @ dense.T) < TOLERANCE[jnp.float32]
  want = jax.grad(lambda ws: jnp.sum(kernels.cascade_matmul_reference(x, ws, t) * cot), argnums=0)(
    ws
  )
  for s, (g, w) in enumerate(zip(dws, want)):
    assert rel_err(g, w) < TOLERANCE[jnp.float32], f"dW[{s}]"


@pytest.mark.parametrize("impl", ["pallas", "xla_blocked", "xla_gather", *CPU_FFI])
def test_vmap_matches_batched_call(impl):
  t = make("butterfly_r4_skip")
  x, ws = random_args(t, 12, jnp.float32)
  x3 = x.reshape(3, 4, t.n_in)
  got = jax.vmap(lambda xi: run(xi, ws, t, impl))(x3)
  want = np.asarray(x, np.float64) @ numpy_dense(ws, t)
  assert rel_err(got.reshape(12, t.n_out), want) < TOLERANCE[jnp.float32]
  # Leading batch dims are flattened by cascade_matmul itself.
  assert rel_err(run(x3, ws, t, impl).reshape(12, -1), want) < TOLERANCE[jnp.float32]


@pytest.mark.parametrize("impl", ["xla_gather", *CPU_FFI])
def test_gradients_with_traced_per_model_tables(impl):
  """Vmapped models whose tables differ (a sweep of random draws): the kernels that read tables
  as data (the gather with padded transposed tables, and the C++ kernel)."""
  tops = [T.make("random", 32, n_in=24, fan_in=3, depth=2, skip=True, seed=s) for s in range(3)]
  widths = {sc.shape[1] for t in tops for sc in t.scatters}
  assert len(widths) > 1, "the draws should need padding to a common max fan-out"
  tables = kernels.CascadeTables.stack(tops)
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((5, 24)), jnp.float32)
  ws = [jnp.asarray(rng.standard_normal((3,) + tab.shape), jnp.float32) for tab in tops[0].stages]
  cot = jnp.asarray(rng.standard_normal((5, 32)), jnp.float32)

  def loss(ws, x, tables):
    y = kernels.cascade_matmul(x, ws, tops[0], impl, tables=tables)
    return jnp.sum(y * cot)

  dws, dxs = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(0, None, 0)))(ws, x, tables)
  for m, t in enumerate(tops):
    w_m = [w[m] for w in ws]
    dense = numpy_dense(w_m, t)
    assert rel_err(dxs[m], np.asarray(cot, np.float64) @ dense.T) < TOLERANCE[jnp.float32]
    want = jax.grad(lambda w, t=t: jnp.sum(kernels.cascade_matmul_reference(x, w, t) * cot))(w_m)
    for s in range(t.depth):
      assert rel_err(dws[s][m], want[s]) < TOLERANCE[jnp.float32], f"model {m} dW[{s}]"


@pytest.mark.parametrize("impl", ["pallas", "xla_blocked", "xla_gather", *CPU_FFI])
def test_second_call_does_not_retrace(impl):
  t = make("butterfly_r2")

  traces = []

  @jax.jit
  def f(x, ws):
    traces.append(1)  # Python side effect: runs once per trace, never per call
    return run(x, ws, t, impl)

  for seed in range(3):
    x, ws = random_args(t, 8, jnp.float32, seed)
    jax.block_until_ready(f(x, ws))
  assert len(traces) == 1


@pytest.mark.parametrize("key", list(TOPOLOGIES))
def test_unsupported_impl_raises_with_reason(key):
  t = make(key)
  x, ws = random_args(t, 2, jnp.float32)
  for impl in set(kernels.IMPLEMENTATIONS) - set(SUPPORTED[key]):
    with pytest.raises(ValueError, match=f"impl='{impl}' cannot handle"):
      kernels.cascade_matmul(x, ws, t, impl, interpret=INTERPRET)


def test_auto_choice_and_fallback_log(caplog, monkeypatch):
  butterfly, rand = make("butterfly_r2"), make("random")
  x = jnp.zeros((16, butterfly.n_in))
  host = dispatch.host_platform()
  if host != "cpu":  # the accelerator's table entry (gpu_check.sh runs this file on a GPU)
    assert kernels.choose_impl(x, butterfly)[0] == dispatch.AUTO_ORDER[host].order[0]
    return
  assert kernels.choose_impl(x, butterfly)[0] == ("cpu_ffi" if CPU_FFI else "xla_blocked")
  impl, reason = kernels.choose_impl(x[:1], butterfly)
  assert impl == "xla_gather" and "batch of 1 rows" in reason
  impl, reason = kernels.choose_impl(jnp.zeros((16, rand.n_in)), rand)
  assert impl == ("cpu_ffi" if CPU_FFI else "xla_gather")
  # Without the C++ kernel, auto says why and takes the XLA paths.
  monkeypatch.setattr(kernels.cpu_ffi, "refusal", lambda: "no C++ compiler 'g++' on PATH")
  impl, reason = kernels.choose_impl(x, butterfly)
  assert impl == "xla_blocked" and "cpu_ffi refused (no C++ compiler" in reason
  impl, reason = kernels.choose_impl(jnp.zeros((16, rand.n_in)), rand)
  assert impl == "xla_gather" and "rows do not form groups" in reason
  caplog.set_level(logging.INFO, logger="absl")
  _, ws = random_args(rand, 1, jnp.float32)
  kernels.cascade_matmul(jnp.zeros((16, rand.n_in)), ws, rand)
  assert any("falls back to xla_gather" in r.getMessage() for r in caplog.records)


def test_structure_detection_from_tables():
  t = T.make("butterfly", 64, radix=4)
  plans = structure.plan_topology(t).stages
  assert [(sp.A, sp.ko, sp.C, sp.src_kind) for sp in plans] == [
    (16, 4, 1, "identity"),
    (4, 4, 4, "identity"),
    (1, 4, 16, "identity"),
  ]
  # Swapping two rows of different groups breaks the shared-input-list pattern.
  table = np.array(t.stages[1])
  table[[0, 1]] = table[[1, 0]]  # rows 0 and 1 are in different stride-4 groups
  assert isinstance(structure.detect_stage(table, None, 64), str)
  bad = np.array(t.stages[1])
  bad[0, 0] = (bad[0, 0] + 1) % 64
  assert isinstance(structure.detect_stage(bad, None, 64), str)


def test_bad_input_names_both_shapes():
  t = make("butterfly_r2")
  x, ws = random_args(t, 4, jnp.float32)
  with pytest.raises(ValueError, match=r"x.shape=\(4, 31\).*n_in=32"):
    kernels.cascade_matmul(x[:, :31], ws, t)
  with pytest.raises(
    ValueError, match=r"weights\[1\].shape=\(32, 3\).*stages\[1\].shape=\(32, 2\)"
  ):
    kernels.cascade_matmul(x, [ws[0], jnp.zeros((32, 3))] + ws[2:], t)
  with pytest.raises(ValueError, match="x.dtype=int32"):
    kernels.cascade_matmul(x.astype(jnp.int32), ws, t)
  with pytest.raises(ValueError, match="impl='fast'"):
    kernels.cascade_matmul(x, ws, t, "fast")


@pytest.mark.parametrize("impl", ["auto", "xla_gather", *CPU_FFI])
def test_tables_argument_replaces_the_topologys_tables(impl):
  """``tables=`` is the data, the topology only the structure: one random draw's structure with
  another draw's tables computes the other draw's product."""
  a, b = (T.make("random", 32, n_in=24, fan_in=3, depth=2, skip=True, seed=s) for s in (0, 1))
  assert a.fingerprint != b.fingerprint
  x, ws = random_args(a, 6, jnp.float32)
  got = kernels.cascade_matmul(x, ws, a, impl, tables=kernels.CascadeTables.of(b))
  want = np.asarray(x, np.float64) @ numpy_dense(ws, b)
  assert rel_err(got, want) < TOLERANCE[jnp.float32]


def test_tables_argument_refusals_and_shape_errors():
  t = make("butterfly_r2")
  x, ws = random_args(t, 4, jnp.float32)
  tables = kernels.CascadeTables.of(t)
  # Planning kernels read the topology's numpy tables, so they refuse tables given as data.
  for impl in ("xla_blocked", "pallas"):
    with pytest.raises(ValueError, match=f"impl='{impl}' cannot handle.*passed as data"):
      kernels.cascade_matmul(x, ws, t, impl, tables=tables)
  assert kernels.choose_impl(x, t, data_tables=True)[0] in kernels.DATA_TABLE_IMPLS
  short = tables._replace(stages=tables.stages[:-1])
  with pytest.raises(ValueError, match=r"tables.stages has 4 entries for a topology of depth=5"):
    kernels.cascade_matmul(x, ws, t, tables=short)
  wide = tables._replace(stages=(np.zeros((32, 3), np.int32),) + tables.stages[1:])
  with pytest.raises(ValueError, match=r"tables.stages\[0\].shape=\(32, 3\).*\(32, 2\)"):
    kernels.cascade_matmul(x, ws, t, tables=wide)
  floats = tables._replace(scatters=(tables.scatters[0].astype(np.float32),) + tables.scatters[1:])
  with pytest.raises(ValueError, match=r"tables.scatters\[0\].dtype=float32"):
    kernels.cascade_matmul(x, ws, t, tables=floats)
  skip = T.make("butterfly", 32, radix=2, skip=True)
  with pytest.raises(ValueError, match=r"tables.skips\[0\] is None.*has skip edges"):
    kernels.cascade_matmul(x, ws, skip, tables=tables)
  with pytest.raises(TypeError, match="tables must be a nf_jax.kernels.CascadeTables"):
    kernels.cascade_matmul(x, ws, t, tables=tuple(tables))
  with pytest.raises(ValueError, match="their structures differ"):
    kernels.CascadeTables.stack([t, skip])


def test_block_sizes_validation():
  with pytest.raises(ValueError, match="batch_tile=0"):
    kernels.BlockSizes(batch_tile=0)
  with pytest.raises(ValueError, match="num_warps=3"):
    kernels.BlockSizes(num_warps=3)
  with pytest.raises(ValueError, match="max_merge=0"):
    kernels.BlockSizes(max_merge=0)
  assert kernels.BlockSizes.get_default("cpu") == kernels.BlockSizes()


@pytest.mark.parametrize(
  "name,n,kwargs",
  [
    ("butterfly", 4096, dict(radix=2)),
    ("parallel_butterfly", 256, dict(radix=2, width=2, skip=True)),
    ("butterfly", 256, dict(n_in=200, radix=4, skip=True)),
    ("clos", 256, dict(radix=16, width=16)),
  ],
)
def test_pallas_lowers_to_triton_on_a_cpu_host(name, n, kwargs):
  """Cross-lowers forward and backward for CUDA (no GPU needed): the Pallas Triton lowering has
  no rule for some jnp ops (slice, 3+-operand concatenate) and caps a tensor at 2^20 elements;
  this catches both in CI. Triton's own compiler (registers, PTX) still needs a GPU."""
  from jax import export

  t = T.make(name, n, **kwargs)
  x = jnp.zeros((64, t.n_in), jnp.float32)
  ws = [jnp.zeros(s.shape, jnp.float32) for s in t.stages]
  gpu_sizes = kernels.BlockSizes.get_default("gpu")
  fwd = lambda x, ws: kernels.cascade_matmul(x, ws, t, "pallas", block_sizes=gpu_sizes)
  grad = jax.grad(lambda x, ws: jnp.sum(fwd(x, ws)), (0, 1))
  triton_call = export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")
  for fn in (fwd, grad):
    exported = export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=[triton_call])(x, ws)
    assert "xla.gpu.triton" in exported.mlir_module()


@pytest.mark.skipif(not CPU_FFI, reason="cpu_ffi runs on the CPU backend with a C++ compiler")
def test_cpu_ffi_rejects_a_table_entry_outside_its_stage():
  """Traced tables are data: a bad index must be an error, never an out-of-bounds read."""
  t = T.make("random", 32, n_in=24, fan_in=3, depth=2, seed=0)
  x, ws = random_args(t, 4, jnp.float32)
  bad = np.array(t.stages[1])
  bad[5, 1] = 32  # stage 1 reads a 32-lane input: valid entries are 0..31
  tables = kernels.CascadeTables(
    (t.stages[0], jnp.asarray(bad)), t.skips, t.scatters, t.skip_scatters
  )
  with pytest.raises(Exception, match=r"stage 1 has a table entry outside \[0, 32\)"):
    jax.block_until_ready(kernels.cascade_matmul(x, ws, t, "cpu_ffi", tables=tables))
