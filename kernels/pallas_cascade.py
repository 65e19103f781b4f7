"""``pallas``: one fused kernel runs every stage of a batch tile; fused backward for dx and dW.

Choice of API (unverified on a GPU in the session that wrote it): the generic
``pl.pallas_call`` + ``pl.BlockSpec(block_shape, index_map)`` + ``grid`` API, which lowers through
Triton on GPU and Mosaic on TPU, and runs under ``interpret=True`` on CPU (the tests). Mosaic GPU
(Hopper-specific) would need its own BlockSpec transforms and warpgroup code; the generic API
keeps one kernel for every backend. Names checked against the JAX 0.10.2 installed here and the
current docs (https://docs.jax.dev/en/latest/jax.experimental.pallas.html).

Layout: grid = batch tiles. Each program loads a ``[batch_tile, n_in]`` tile of the (stage-0
re-indexed) input, keeps every stage's weights resident (their BlockSpec maps every program to
block (0, 0)), applies all stages as unrolled FMAs over the block views of
:mod:`nf_jax.kernels.structure`, and writes one ``[batch_tile, n_out]`` tile: one memory pass for
the whole cascade. The backward kernel recomputes the tile's stage inputs on chip, then walks the
stages backwards producing dx for the tile and one partial dW per stage and tile (summed over
tiles in XLA: grid programs may run in parallel, so they never accumulate into one block).

Known limits: the partial dW output is ``tiles x num_params`` floats (with 8-row tiles at
N=4096 and 16-wide merged blocks that is 4x the activations), so the backward pass is not yet
at the HBM roofline; a program that loops over several tiles would cut it. Fan-in above
``MAX_UNROLLED_FAN_IN`` and re-indexed inputs after stage 0 (block-diagonal stride permutations)
are refused with a reason; ``xla_blocked`` runs those.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from nf_jax.kernels.structure import StagePlan

# The kernels unroll one FMA per block column; wider blocks belong to a matmul unit (xla_blocked).
MAX_UNROLLED_FAN_IN = 64


def pallas_refusal(plans: Sequence[StagePlan]) -> str | None:
  """Why the fused kernel cannot run ``plans`` (the merged program), or None when it can."""
  for s, sp in enumerate(plans):
    if sp.p * sp.ki > MAX_UNROLLED_FAN_IN:
      return f"stage {s} has fan-in {sp.p * sp.ki} > {MAX_UNROLLED_FAN_IN} (unrolled FMAs)"
    if s > 0 and sp.src_kind != "identity":
      return f"stage {s} reads a re-indexed input ({sp.src_kind}); only stage 0 may (in XLA)"
    if sp.skip_mode == "h":
      return f"stage {s} has a skip on the un-gathered stage input"
    if s > 0 and plans[s - 1].n_out != sp.u_width:
      return f"stage {s} reads {sp.u_width} lanes but stage {s - 1} writes {plans[s - 1].n_out}"
  return None


def _stage_forward(u: jax.Array, w: jax.Array, sp: StagePlan) -> jax.Array:
  """``[t, u_width] -> [t, n_out]`` in float32 with unrolled broadcast FMAs."""
  t = u.shape[0]
  u5 = u.reshape(t, sp.p, sp.A, sp.ki, sp.C)
  w5 = w.reshape(sp.A, sp.ko, sp.C, sp.p, sp.ki)
  out = None
  for b in range(sp.p):
    for r in range(sp.ki):
      term = w5[None, :, :, :, b, r] * u5[:, b, :, r : r + 1, :]  # [t, A, ko, C]
      out = term if out is None else out + term
  out = out.reshape(t, sp.n_out)
  if sp.skip_mode == "u":
    lanes = u[:, : sp.skip_r * sp.n_out].reshape(t, sp.skip_r, sp.n_out)
    out = out + jnp.sum(lanes, axis=1) * (1.0 / sp.skip_r)
  return out


def _stage_backward(u: jax.Array, w: jax.Array, g: jax.Array, sp: StagePlan):
  """Cotangents of one stage: ``(du [t, u_width], dw [n_out, p * ki])`` in float32."""
  t = u.shape[0]
  u5 = u.reshape(t, sp.p, sp.A, sp.ki, sp.C)
  w5 = w.reshape(sp.A, sp.ko, sp.C, sp.p, sp.ki)
  g4 = g.reshape(t, sp.A, sp.ko, sp.C)
  du_rows, dw_cols = [], []
  for b in range(sp.p):
    du_r = []
    for r in range(sp.ki):
      u_br = u5[:, b, :, r : r + 1, :]  # [t, A, 1, C]
      dw_cols.append(jnp.sum(g4 * u_br, axis=0))  # [A, ko, C]
      du_r.append(jnp.sum(w5[None, :, :, :, b, r] * g4, axis=2))  # [t, A, C]
    du_rows.append(jnp.stack(du_r, axis=2))  # [t, A, ki, C]
  du = jnp.stack(du_rows, axis=1).reshape(t, sp.u_width)
  dw = jnp.stack(dw_cols, axis=-1).reshape(sp.n_out, sp.p * sp.ki)
  if sp.skip_mode == "u":
    width = sp.skip_r * sp.n_out
    spread = jnp.concatenate([g] * sp.skip_r, axis=1) * (1.0 / sp.skip_r)
    if width < sp.u_width:
      spread = jnp.concatenate([spread, jnp.zeros((t, sp.u_width - width), g.dtype)], axis=1)
    du = du + spread
  return du, dw


def _forward_kernel(plans, u0_ref, *refs):
  *w_refs, o_ref = refs
  h = u0_ref[...].astype(jnp.float32)
  for sp, w_ref in zip(plans, w_refs):
    h = _stage_forward(h, w_ref[...].astype(jnp.float32), sp)
  o_ref[...] = h.astype(o_ref.dtype)


def _backward_kernel(plans, u0_ref, g_ref, *refs):
  depth = len(plans)
  w_refs, du_ref, dw_refs = refs[:depth], refs[depth], refs[depth + 1 :]
  ws = [w_ref[...].astype(jnp.float32) for w_ref in w_refs]
  inputs = [u0_ref[...].astype(jnp.float32)]
  for sp, w in zip(plans[:-1], ws[:-1]):  # recompute the stage inputs on chip
    inputs.append(_stage_forward(inputs[-1], w, sp))
  g = g_ref[...].astype(jnp.float32)
  for s in range(depth - 1, -1, -1):
    g, dw = _stage_backward(inputs[s], ws[s], g, plans[s])
    dw_refs[s][...] = dw[None].astype(dw_refs[s].dtype)
  du_ref[...] = g.astype(du_ref.dtype)


def _weight_spec(w: jax.Array) -> pl.BlockSpec:
  return pl.BlockSpec(tuple(w.shape), lambda i: (0, 0))


def fused_forward(
  u0: jax.Array, ws: Sequence[jax.Array], plans: tuple[StagePlan, ...], bt: int, interpret: bool
) -> jax.Array:
  """``u0: [B, u_width_0]`` (B a multiple of ``bt``) -> ``[B, n_out]`` in one fused kernel."""
  batch, width = u0.shape
  n_out = plans[-1].n_out
  return pl.pallas_call(
    functools.partial(_forward_kernel, plans),
    out_shape=jax.ShapeDtypeStruct((batch, n_out), u0.dtype),
    grid=(batch // bt,),
    in_specs=[pl.BlockSpec((bt, width), lambda i: (i, 0))] + [_weight_spec(w) for w in ws],
    out_specs=pl.BlockSpec((bt, n_out), lambda i: (i, 0)),
    interpret=interpret,
    name="cascade_forward",
  )(u0, *ws)


def fused_backward(
  u0: jax.Array,
  ws: Sequence[jax.Array],
  g: jax.Array,
  plans: tuple[StagePlan, ...],
  bt: int,
  interpret: bool,
) -> tuple[jax.Array, list[jax.Array]]:
  """Fused dx and dW: ``(du0 [B, u_width_0], [dW_s])`` for output cotangent ``g: [B, n_out]``."""
  batch, width = u0.shape
  tiles = batch // bt
  n_out = plans[-1].n_out
  out_shape = [jax.ShapeDtypeStruct((batch, width), u0.dtype)] + [
    jax.ShapeDtypeStruct((tiles, *w.shape), jnp.float32) for w in ws
  ]
  out_specs = [pl.BlockSpec((bt, width), lambda i: (i, 0))] + [
    pl.BlockSpec((1, *w.shape), lambda i: (i, 0, 0)) for w in ws
  ]
  du0, *partials = pl.pallas_call(
    functools.partial(_backward_kernel, plans),
    out_shape=out_shape,
    grid=(tiles,),
    in_specs=[
      pl.BlockSpec((bt, width), lambda i: (i, 0)),
      pl.BlockSpec((bt, n_out), lambda i: (i, 0)),
    ]
    + [_weight_spec(w) for w in ws],
    out_specs=out_specs,
    interpret=interpret,
    name="cascade_backward",
  )(u0, g, *ws)
  return du0, [p.sum(axis=0).astype(w.dtype) for p, w in zip(partials, ws)]
