"""``xla_gather``: one gather-multiply-reduce per stage. Handles any topology; the baseline."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def stage_gather(h: jax.Array, weight: jax.Array, table: np.ndarray, skip: np.ndarray | None):
  """One stage: ``[batch, n_in_s] -> [batch, n_out_s]``, ``y_j = sum_r w_jr h[table_jr]``."""
  gathered = jnp.take(h, jnp.asarray(table), axis=1)  # [batch, n_out, fan_in]
  out = jnp.einsum("bjr,jr->bj", gathered, weight.astype(h.dtype))
  if skip is not None:
    out = out + jnp.take(h, jnp.asarray(skip), axis=1).mean(axis=2)
  return out


def cascade_matmul_gather(x: jax.Array, weights: Sequence[jax.Array], topology) -> jax.Array:
  """All stages in order with :func:`stage_gather`; ``x: [batch, n_in] -> [batch, n_out]``."""
  h = x
  for weight, table, skip in zip(weights, topology.stages, topology.skips):
    h = stage_gather(h, weight, table, skip)
  return h
