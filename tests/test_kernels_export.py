"""``impl="auto"`` per lowering platform: cross-lowered for CUDA and TPU on a CPU host.

A lowering break on an accelerator (a CPU custom call reaching a GPU program, Triton compiler
parameters reaching the TPU lowering) shows up here without an accelerator. Whether the chosen
path is *fast* there is measured by ``benchmarks/gpu_check.sh``, not here.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export
from nf_jax.kernels import dispatch

from nf_jax import kernels
from nf_jax import topology as T

ROOT = Path(__file__).resolve().parents[1]
CPU_FFI = kernels.cpu_ffi.refusal() is None

# One small member of every family (n = 64), each with and without skips.
FAMILIES = {
  "butterfly": dict(radix=2),
  "parallel_butterfly": dict(radix=2, width=2),
  "clos": dict(radix=8, width=8),
  "random": dict(fan_in=4, depth=2),
  "block_diagonal": dict(radix=8),
  "dense": dict(),
}
CASES = [(name, skip) for name in FAMILIES for skip in (False, True)]
ACCELERATORS = ("cuda", "tpu")
# The fused GPU kernel is a Triton custom call: allowed if the cuda table ever picks it.
TRITON = export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")


def make(name: str, skip: bool, n: int = 64) -> T.Topology:
  return T.make(name, n, skip=skip, **FAMILIES[name])


def args(t: T.Topology, batch: int = 32, dtype=jnp.float32):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, t.n_in)), dtype)
  ws = [jnp.asarray(rng.standard_normal(s.shape), dtype) for s in t.stages]
  return x, ws


def auto_fns(t: T.Topology):
  """Forward and gradient (w.r.t. x and every stage's weights) of the auto path."""
  fwd = lambda x, ws: kernels.cascade_matmul(x, ws, t)
  grad = jax.grad(lambda x, ws: jnp.sum(fwd(x, ws).astype(jnp.float32) ** 2), argnums=(0, 1))
  return fwd, grad


def exported_text(fn, platforms, *operands) -> str:
  return export.export(jax.jit(fn), platforms=platforms, disabled_checks=[TRITON])(
    *operands
  ).mlir_module()


@pytest.mark.parametrize("name,skip", CASES)
def test_auto_path_lowers_for_cuda_and_tpu(name, skip):
  t = make(name, skip)
  x, ws = args(t)
  fwd, grad = auto_fns(t)
  for platform in ACCELERATORS:
    chosen, reason = kernels.choose_impl(x, t, platform=platform)
    assert chosen in dispatch.LOWERS[platform], reason
    for fn in (fwd, grad):
      text = exported_text(fn, [platform], x, ws)
      assert "nf_cascade_" not in text, f"the CPU kernel reached the {platform} program"
      if platform == "tpu":
        assert "triton" not in text


@pytest.mark.parametrize("name", ["butterfly", "clos"])
def test_auto_path_lowers_in_bfloat16(name):
  t = make(name, True)
  x, ws = args(t, dtype=jnp.bfloat16)
  for fn in auto_fns(t):
    for platform in ACCELERATORS:
      exported_text(fn, [platform], x, ws)


def test_auto_resolves_per_lowering_platform_not_host():
  """Each lowering keeps only its platform's branch: on this CPU host a TPU program holds the
  block matmuls without a gather, a CUDA program the gather, a CPU program the C++ kernel."""
  t = T.make("butterfly", 64, radix=4)
  x, ws = args(t)
  fwd, grad = auto_fns(t)
  choices = {p: kernels.choose_impl(x, t, platform=p)[0] for p in ("cpu", "cuda", "tpu")}
  gathers = {p: "stablehlo.gather" in exported_text(fwd, [p], x, ws) for p in ACCELERATORS}
  for platform in ACCELERATORS:
    # xla_blocked runs a butterfly with reshapes and batched matmuls; the gather path gathers.
    assert gathers[platform] == (choices[platform] == "xla_gather"), choices
  assert len({choices["cuda"], choices["tpu"]}) == 2, "the tables no longer differ: pick a case"
  if jax.default_backend() == "cpu":
    host_text = jax.jit(fwd).lower(x, ws).as_text()
    assert ("nf_cascade_forward" in host_text) == (choices["cpu"] == "cpu_ffi")
  # Lowered for both at once, the program keeps a conditional on the platform.
  both = exported_text(grad, list(ACCELERATORS), x, ws)
  assert "stablehlo.case" in both


def test_auto_table_only_lists_paths_that_lower_and_cites_its_source():
  assert set(dispatch.AUTO_ORDER) == set(dispatch.PLATFORMS) == set(dispatch.LOWERS)
  for platform, entry in dispatch.AUTO_ORDER.items():
    assert entry.order and set(entry.order) <= set(dispatch.LOWERS[platform]), platform
    assert set(entry.order) <= set(kernels.IMPLEMENTATIONS)
    cited = re.findall(r"benchmarks/results/\S+\.txt", entry.measured)
    assert cited or entry.measured.startswith("unmeasured"), platform
    for path in cited:
      assert (ROOT / path).is_file(), f"{platform} cites missing {path}"
  # Pallas-Triton cannot lower on TPU; auto must never pick it there.
  assert "pallas" not in dispatch.LOWERS["tpu"]


def test_lowers_table_matches_what_exports():
  """Every path LOWERS lists exports for that platform; the two it leaves out of TPU do not
  (Pallas's Triton parameters fail the TPU lowering; the C++ kernel is a CPU-only FFI call)."""
  t = make("butterfly", True)
  x, ws = args(t)
  for platform in ("cuda", "rocm", "tpu"):
    for impl in kernels.IMPLEMENTATIONS:
      if impl == "cpu_ffi" and not CPU_FFI:
        continue
      sizes = kernels.BlockSizes.get_default(platform, impl=impl)
      fwd = lambda x, ws, impl=impl, sizes=sizes: kernels.cascade_matmul(
        x, ws, t, impl, block_sizes=sizes
      )
      if impl in dispatch.LOWERS[platform]:
        exported_text(fwd, [platform], x, ws)
      elif platform == "tpu" or impl == "cpu_ffi":
        with pytest.raises((AssertionError, ValueError, NotImplementedError)):
          exported_text(fwd, [platform], x, ws)


def test_every_platform_choice_is_a_valid_name_and_bad_names_are_refused():
  t = make("butterfly", False)
  x, ws = args(t)
  for platform in dispatch.PLATFORMS:
    chosen, reason = kernels.choose_impl(x, t, platform=platform)
    assert chosen in kernels.IMPLEMENTATIONS and reason.startswith(platform)
  assert (
    kernels.choose_impl(x, t, platform="gpu")[0] == kernels.choose_impl(x, t, platform="cuda")[0]
  )
  impl, reason = kernels.choose_impl(x, t, platform="metal")
  assert impl == "xla_gather" and "no entry" in reason
  for good in ("auto", *kernels.IMPLEMENTATIONS):
    assert kernels.validate_impl(good) == good
  for bad in ("fast", "Pallas", "", None):
    with pytest.raises(ValueError, match=r"is not one of \('auto', 'pallas'"):
      kernels.validate_impl(bad)
    with pytest.raises(ValueError, match=r"is not one of \('auto', 'pallas'"):
      kernels.cascade_matmul(x, ws, t, bad)


def test_auto_with_traced_per_model_tables_vmaps_and_differentiates():
  """A sweep's per-model tables are data: auto must take a path that reads them so (never the
  numpy block planner), on every platform branch, under vmap and grad."""
  tops = [T.make("random", 32, n_in=24, fan_in=3, depth=2, skip=True, seed=s) for s in range(2)]
  tables = kernels.CascadeTables.stack(tops)
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((6, 24)), jnp.float32)
  ws = [jnp.asarray(rng.standard_normal((2,) + tab.shape), jnp.float32) for tab in tops[0].stages]

  def loss(ws, tables):
    return jnp.sum(kernels.cascade_matmul(x, ws, tops[0], tables=tables) ** 2)

  grad = jax.vmap(jax.grad(loss), in_axes=(0, 0))
  got = jax.jit(grad)(ws, tables)
  for m, t in enumerate(tops):
    want = jax.grad(lambda w, t=t: jnp.sum(kernels.cascade_matmul_reference(x, w, t) ** 2))(
      [w[m] for w in ws]
    )
    for s in range(t.depth):
      np.testing.assert_allclose(got[s][m], want[s], rtol=2e-4, atol=2e-4)
  for platform in ACCELERATORS:
    exported_text(grad, [platform], ws, tables)
