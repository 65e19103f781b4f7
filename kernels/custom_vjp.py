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
def fused_cascade(u0, ws, plans, bt, interpret):
  """``u0: [B, u_width_0] -> [B, n_out]`` (B a multiple of ``bt``) with a fused backward."""
  return pallas_cascade.fused_forward(u0, ws, plans, bt, interpret)


def _fwd(u0, ws, plans, bt, interpret):
  return pallas_cascade.fused_forward(u0, ws, plans, bt, interpret), (u0, ws)


def _bwd(plans, bt, interpret, residuals, g):
  u0, ws = residuals
  du0, dws = pallas_cascade.fused_backward(u0, ws, g.astype(u0.dtype), plans, bt, interpret)
  return du0, tuple(dws)


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
  reason = pallas_cascade.pallas_refusal(plans)
  if reason is not None:
    raise ValueError(f"impl='pallas' cannot run this topology: {reason}")
  u0 = xla_blocked.gather_input(x, plans[0])
  plans = (dataclasses.replace(plans[0], src_kind="identity", n_in=plans[0].u_width),) + plans[1:]
  batch = x.shape[0]
  bt = block_sizes.batch_tile
  padded = -(-batch // bt) * bt
  if padded != batch:
    u0 = jnp.pad(u0, ((0, padded - batch), (0, 0)))
  out = fused_cascade(u0, tuple(ws), plans, bt, interpret)
  return out[:batch]
