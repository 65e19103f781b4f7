"""``pallas``: one fused kernel runs every stage of a batch tile; fused backward for dx and dW.

Choice of API: ``pl.pallas_call`` + ``pl.BlockSpec`` + ``grid`` with
``compiler_params=pltriton.CompilerParams`` (the Triton lowering) on GPU, interpreted on CPU
(tests). Checked against JAX 0.10.2 (here) and compiled and run on an H100 with JAX 0.11.2
(``benchmarks/gpu_check.sh``; numbers in benchmarks/README.md). Triton is named explicitly
because a bare ``pallas_call`` on GPU now lowers through Mosaic GPU, which stages whole blocks in
shared memory (a 1024-wide cascade's weights overflowed it). JAX 0.11.2 marks the Pallas Triton
backend deprecated; the port to Mosaic GPU (``plgpu.kernel``) is the known next step.

The stage bodies use only reshape, transpose, broadcasting multiply and reduce_sum, because
the Triton lowering has no ``slice`` rule and Triton caps a tensor at 2^20 elements; CI
cross-lowers both kernels for CUDA on a CPU host to keep it that way.

Layout: grid = batch tiles. Each program loads a ``[batch_tile, n_in]`` tile of the (stage-0
re-indexed) input, reads each stage's weights whole (in :func:`kernel_weight_layout`), applies
the stages as broadcast FMAs over the block views of :mod:`nf_jax.kernels.structure`, and writes
one ``[batch_tile, n_out]`` tile: one HBM pass for the whole cascade. The backward grid has at
most ``BlockSizes.backward_programs`` programs; each walks several tiles (``fori_loop``),
recomputes the stage inputs on chip, walks the stages backwards producing dx, and accumulates
its partial dW in registers (partials summed over programs in XLA: programs may run in
parallel, so they never accumulate into one block).

Known limits (H100, N=4096): about 11% of the HBM roofline forward and 1% forward+backward.
Every program re-reads all weights from L2 for a 2-row tile, and larger tiles or merged
radix-8/16 blocks spill registers. Fan-in above ``MAX_UNROLLED_FAN_IN``, re-indexed inputs
after stage 0 (block-diagonal stride permutations) and non-power-of-2 block dimensions are
refused with a reason; ``xla_blocked``/``xla_gather`` run those.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton
from nf_jax.kernels.structure import StagePlan

# The kernels unroll one FMA per block column; wider blocks belong to a matmul unit (xla_blocked).
MAX_UNROLLED_FAN_IN = 64


def _is_power_of_2(size: int) -> bool:
  return size > 0 and size & (size - 1) == 0


def pallas_refusal(plans: Sequence[StagePlan], batch_tile: int) -> str | None:
  """Why the fused kernel cannot run ``plans`` (the merged program), or None when it can.

  Triton (the GPU lowering) holds every block in registers and needs every array dimension to be
  a power of 2; the same rule applies in interpret mode so that CPU tests cover what GPUs run.
  """
  if not _is_power_of_2(batch_tile):
    return f"batch_tile={batch_tile} is not a power of 2 (Triton block dimensions must be)"
  for s, sp in enumerate(plans):
    if sp.p * sp.ki > MAX_UNROLLED_FAN_IN:
      return f"stage {s} has fan-in {sp.p * sp.ki} > {MAX_UNROLLED_FAN_IN} (register blocks)"
    if s > 0 and sp.src_kind != "identity":
      return f"stage {s} reads a re-indexed input ({sp.src_kind}); only stage 0 may (in XLA)"
    if sp.skip_mode == "h":
      return f"stage {s} has a skip on the un-gathered stage input"
    if sp.skip_mode == "u" and sp.skip_r * sp.n_out != sp.u_width:
      return f"stage {s} skips from {sp.skip_r * sp.n_out} of its {sp.u_width} input lanes"
    if s > 0 and plans[s - 1].n_out != sp.u_width:
      return f"stage {s} reads {sp.u_width} lanes but stage {s - 1} writes {plans[s - 1].n_out}"
    dims = {"A": sp.A, "ko": sp.ko, "fan-in": sp.p * sp.ki, "C": sp.C, "p": sp.p, "ki": sp.ki}
    odd = {k: v for k, v in dims.items() if not _is_power_of_2(v)}
    if odd:
      return f"stage {s} has block dimensions {odd} that are not powers of 2 (Triton)"
  return None


def kernel_weight_layout(w: jax.Array, sp: StagePlan) -> jax.Array:
  """``[n_out, p * ki] -> [A, ko, p * ki, C]``: the block view the kernels broadcast against."""
  return w.reshape(sp.A, sp.ko, sp.C, sp.p * sp.ki).transpose(0, 1, 3, 2)


def weight_from_kernel_layout(w4: jax.Array, sp: StagePlan) -> jax.Array:
  """Inverse of :func:`kernel_weight_layout`."""
  return w4.transpose(0, 1, 3, 2).reshape(sp.n_out, sp.p * sp.ki)


# The stage bodies use only reshape, transpose, broadcasting multiply and reduce_sum: the ops the
# Pallas Triton lowering implements (it has no slice, and concatenate takes two operands).
def _fan_view(u: jax.Array, sp: StagePlan) -> jax.Array:
  """``[t, u_width] -> [t, A, 1, p * ki, C]`` (lane ``(b, a, r, c)`` to ``(a, b * ki + r, c)``)."""
  t = u.shape[0]
  if sp.p > 1:
    u = u.reshape(t, sp.p, sp.A, sp.ki, sp.C).transpose(0, 2, 1, 3, 4)
  return u.reshape(t, sp.A, 1, sp.p * sp.ki, sp.C)


def _stage_forward(u: jax.Array, w4: jax.Array, sp: StagePlan) -> jax.Array:
  """``u: [t, u_width]``, ``w4: [A, ko, fan, C]`` -> ``[t, n_out]`` in float32."""
  t = u.shape[0]
  out = jnp.sum(w4[None] * _fan_view(u, sp), axis=3).reshape(t, sp.n_out)
  if sp.skip_mode == "u":
    out = out + jnp.sum(u.reshape(t, sp.skip_r, sp.n_out), axis=1) * (1.0 / sp.skip_r)
  return out


def _stage_backward(u: jax.Array, w4: jax.Array, g: jax.Array, sp: StagePlan):
  """Cotangents of one stage: ``(du [t, u_width], dw4 [A, ko, fan, C])`` in float32."""
  t = u.shape[0]
  g5 = g.reshape(t, sp.A, sp.ko, 1, sp.C)
  dw4 = jnp.sum(g5 * _fan_view(u, sp), axis=0)
  du = jnp.sum(w4[None] * g5, axis=2)  # [t, A, fan, C]
  if sp.p > 1:
    du = du.reshape(t, sp.A, sp.p, sp.ki, sp.C).transpose(0, 2, 1, 3, 4)
  du = du.reshape(t, sp.u_width)
  if sp.skip_mode == "u":
    spread = jnp.broadcast_to(g[:, None, :], (t, sp.skip_r, sp.n_out))
    du = du + spread.reshape(t, sp.u_width) * (1.0 / sp.skip_r)
  return du, dw4


def _forward_kernel(plans, u0_ref, *refs):
  *w_refs, o_ref = refs
  h = u0_ref[...].astype(jnp.float32)
  for sp, w_ref in zip(plans, w_refs):
    h = _stage_forward(h, w_ref[...].astype(jnp.float32), sp)
  o_ref[...] = h.astype(o_ref.dtype)


def _backward_kernel(plans, bt, u0_ref, g_ref, *refs):
  """One program walks ``rows / bt`` batch tiles, accumulating its partial dW in registers."""
  depth = len(plans)
  w_refs, du_ref, dw_refs = refs[:depth], refs[depth], refs[depth + 1 :]
  ws = [w_ref[...].astype(jnp.float32) for w_ref in w_refs]

  def tile(i, dw_acc):
    rows = pl.ds(pl.multiple_of(i * bt, bt), bt)
    inputs = [u0_ref[rows, :].astype(jnp.float32)]
    for sp, w in zip(plans[:-1], ws[:-1]):  # recompute the stage inputs on chip
      inputs.append(_stage_forward(inputs[-1], w, sp))
    g = g_ref[rows, :].astype(jnp.float32)
    dw_acc = list(dw_acc)
    for s in range(depth - 1, -1, -1):
      g, dw = _stage_backward(inputs[s], ws[s], g, plans[s])
      dw_acc[s] = dw_acc[s] + dw
    du_ref[rows, :] = g.astype(du_ref.dtype)
    return tuple(dw_acc)

  zeros = tuple(jnp.zeros(w.shape, jnp.float32) for w in ws)
  dws = jax.lax.fori_loop(0, u0_ref.shape[0] // bt, tile, zeros)
  for dw_ref, dw in zip(dw_refs, dws):
    dw_ref[...] = dw[None].astype(dw_ref.dtype)


def _weight_spec(w: jax.Array) -> pl.BlockSpec:
  return pl.BlockSpec(tuple(w.shape), lambda i: (0,) * w.ndim)


def _triton_params(num_warps: int) -> pltriton.CompilerParams:
  # Explicit, because JAX >= 0.10 lowers a bare pallas_call on GPU through Mosaic GPU, which
  # stages every block through shared memory (the weights of a 4096-wide cascade overflow it).
  return pltriton.CompilerParams(num_warps=num_warps, num_stages=1)


def fused_forward(
  u0: jax.Array,
  w4s: Sequence[jax.Array],
  plans: tuple[StagePlan, ...],
  bt: int,
  num_warps: int,
  interpret: bool,
) -> jax.Array:
  """``u0: [B, u_width_0]`` (B a multiple of ``bt``) -> ``[B, n_out]`` in one fused kernel.

  ``w4s[s]`` is stage ``s``'s weight in :func:`kernel_weight_layout`.
  """
  batch, width = u0.shape
  n_out = plans[-1].n_out
  return pl.pallas_call(
    functools.partial(_forward_kernel, plans),
    out_shape=jax.ShapeDtypeStruct((batch, n_out), u0.dtype),
    grid=(batch // bt,),
    in_specs=[pl.BlockSpec((bt, width), lambda i: (i, 0))] + [_weight_spec(w) for w in w4s],
    out_specs=pl.BlockSpec((bt, n_out), lambda i: (i, 0)),
    interpret=interpret,
    compiler_params=_triton_params(num_warps),
    name="cascade_forward",
  )(u0, *w4s)


def tiles_per_backward_program(tiles: int, max_programs: int) -> int:
  """Batch tiles one backward program walks so that at most ``max_programs`` programs run.

  Fewer programs write fewer partial dW blocks to HBM (``programs x num_params`` floats).
  The caller pads the batch to a whole number of programs (``cascade_matmul_pallas``).
  """
  return -(-tiles // max_programs)


def fused_backward(
  u0: jax.Array,
  w4s: Sequence[jax.Array],
  g: jax.Array,
  plans: tuple[StagePlan, ...],
  bt: int,
  num_warps: int,
  max_programs: int,
  interpret: bool,
) -> tuple[jax.Array, list[jax.Array]]:
  """Fused dx and dW: ``(du0 [B, u_width_0], [dW4_s])`` for output cotangent ``g: [B, n_out]``.

  ``dW4_s`` is in :func:`kernel_weight_layout`, float32.
  """
  batch, width = u0.shape
  n_out = plans[-1].n_out
  rows = tiles_per_backward_program(batch // bt, max_programs) * bt
  if batch % rows:
    raise ValueError(f"batch={batch} is not a whole number of backward programs of {rows} rows")
  programs = batch // rows
  out_shape = [jax.ShapeDtypeStruct((batch, width), u0.dtype)] + [
    jax.ShapeDtypeStruct((programs, *w.shape), jnp.float32) for w in w4s
  ]
  out_specs = [pl.BlockSpec((rows, width), lambda i: (i, 0))] + [
    pl.BlockSpec((1, *w.shape), lambda i, nd=w.ndim: (i,) + (0,) * nd) for w in w4s
  ]
  du0, *partials = pl.pallas_call(
    functools.partial(_backward_kernel, plans, bt),
    out_shape=out_shape,
    grid=(programs,),
    in_specs=[
      pl.BlockSpec((rows, width), lambda i: (i, 0)),
      pl.BlockSpec((rows, n_out), lambda i: (i, 0)),
    ]
    + [_weight_spec(w) for w in w4s],
    out_specs=out_specs,
    interpret=interpret,
    compiler_params=_triton_params(num_warps),
    name="cascade_backward",
  )(u0, g, *w4s)
  return du0, [p.sum(axis=0) for p in partials]
