"""Dense reference for a sparse cascade: the oracle every implementation is tested against.

The cascade computes ``y = x @ M_0 @ M_1 @ ... @ M_{D-1}`` where ``M_s: [n_in_s, n_out_s]`` is
stage s's masked weight matrix plus its fixed skip edges (see :mod:`nf_jax.topology`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from nf_jax.topology import Topology


def stage_dense_matrix(weight: jax.Array, table, skip, n_in: int, dtype=None) -> jax.Array:
  """Stage s as a dense matrix ``[n_in_s, n_out_s]`` (scatter-add, so repeated edges add up).

  Args:
    weight: ``[n_out_s, fan_in_s]`` stage weights.
    table: ``int32[n_out_s, fan_in_s]`` gather table.
    skip: ``None`` or ``int32[n_out_s, r_s]`` skip table (edges of weight ``1 / r_s``).
    n_in: stage input width.
  """
  n_out, fan_in = table.shape
  dtype = dtype or weight.dtype
  cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], table.shape)
  dense = jnp.zeros((n_in, n_out), dtype).at[table, cols].add(weight.astype(dtype))
  if skip is not None:
    skip_cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], skip.shape)
    dense = dense.at[skip, skip_cols].add(jnp.asarray(1.0 / skip.shape[1], dtype))
  return dense


def cascade_dense_matrix(weights: Sequence[jax.Array], topology: Topology) -> jax.Array:
  """The whole cascade as one dense ``[n_in, n_out]`` matrix (product of stage matrices)."""
  product = None
  for weight, table, skip, n_in in zip(
    weights, topology.stages, topology.skips, topology.stage_n_in
  ):
    m = stage_dense_matrix(weight, table, skip, n_in)
    product = m if product is None else jnp.matmul(product, m, precision="highest")
  return product


def cascade_matmul_reference(
  x: jax.Array, weights: Sequence[jax.Array], topology: Topology
) -> jax.Array:
  """``x @ M_0 @ ... @ M_{D-1}`` with dense stage matrices, in float32 at highest precision."""
  h = x.astype(jnp.float32)
  for weight, table, skip, n_in in zip(
    weights, topology.stages, topology.skips, topology.stage_n_in
  ):
    m = stage_dense_matrix(weight.astype(jnp.float32), table, skip, n_in)
    h = jnp.matmul(h, m, precision="highest")
  return h.astype(x.dtype)
