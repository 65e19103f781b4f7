"""The ``pallas`` implementation's ``custom_vjp``: fused forward and fused backward kernels.

XLA never differentiates the forward kernel: the backward pass is :func:`fused_backward`. The
stage-0 re-indexing (a gather or transpose) and the merging of radix-k stages into bigger blocks
happen in XLA outside the custom VJP, so their (cheap) gradients use ordinary autodiff.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from nf_jax.kernels import pallas_cascade, xla_blocked
from nf_jax.kernels.block_sizes import BlockSizes
from nf_jax.kernels.structure import StagePlan


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def fused_cascade(u0, w4s, plans, block_sizes, interpret):
  """``u0: [B, u_width_0] -> [B, n_out]`` with the fused backward kernel as its VJP.

  ``B`` is a multiple of ``block_sizes.batch_tile``; ``w4s``: float32 weights in
  ``pallas_cascade.kernel_weight_layout``.
  """
  return _forward(u0, w4s, plans, block_sizes, interpret)


def _forward(u0, w4s, plans, block_sizes, interpret):
  return pallas_cascade.fused_forward(
    u0, w4s, plans, block_sizes.batch_tile, block_sizes.num_warps, interpret
  )


def _fwd(u0, w4s, plans, block_sizes, interpret):
  return _forward(u0, w4s, plans, block_sizes, interpret), (u0, w4s)


def _bwd(plans, block_sizes, interpret, residuals, g):
  u0, w4s = residuals
  du0, dw4s = pallas_cascade.fused_backward(
    u0,
    w4s,
    g.astype(u0.dtype),
    plans,
    block_sizes.batch_tile,
    block_sizes.num_warps,
    block_sizes.backward_programs,
    interpret,
  )
  return du0, tuple(dw4s)


fused_cascade.defvjp(_fwd, _bwd)


def program_for_pallas(
  stages: Sequence[StagePlan], weights: Sequence[jax.Array], block_sizes: BlockSizes
) -> tuple[tuple[StagePlan, ...], list[jax.Array]]:
  """The merged program the kernel runs (weights in float32)."""
  plans, ws = xla_blocked.build_program(stages, weights, block_sizes.max_merge, jnp.float32)
  return tuple(plans), ws


def cascade_matmul_pallas(
  x: jax.Array,
  weights: Sequence[jax.Array],
  stages: Sequence[StagePlan],
  block_sizes: BlockSizes,
  interpret: bool = False,
) -> jax.Array:
  """``x: [batch, n_in] -> [batch, n_out]`` through the fused kernels (batch padded to tiles)."""
  plans, ws = program_for_pallas(stages, weights, block_sizes)
  bt = block_sizes.batch_tile
  reason = pallas_cascade.pallas_refusal(plans, bt)
  if reason is not None:
    raise ValueError(f"impl='pallas' cannot run this topology: {reason}")
  u0 = xla_blocked.gather_input(x, plans[0])
  plans = (dataclasses.replace(plans[0], src_kind="identity", n_in=plans[0].u_width),) + plans[1:]
  batch = x.shape[0]
  # Whole tiles, and a whole number of tiles per backward program (a prime tile count would
  # otherwise leave one program walking the entire batch).
  tiles = -(-batch // bt)
  per_program = pallas_cascade.tiles_per_backward_program(tiles, block_sizes.backward_programs)
  padded = -(-tiles // per_program) * per_program * bt
  if padded != batch:
    u0 = jnp.pad(u0, ((0, padded - batch), (0, 0)))
  w4s = tuple(pallas_cascade.kernel_weight_layout(w, sp) for w, sp in zip(ws, plans))
  out = fused_cascade(u0, w4s, plans, block_sizes, interpret)
  return out[:batch]
