"""``xla_gather``: one gather-multiply-reduce per stage. Handles any topology; the baseline.

Both passes are gathers. XLA's autodiff of a gather is a scatter-add, which XLA:CPU runs
serially (the per-stage backward was ~16x the forward at N=4096, B=1024); the custom VJP
instead reads the transposed tables (``CascadeTables.scatters`` / ``.skip_scatters``), so
``dx`` is a gather of the cotangent and ``dW`` a gather of the stage input. The tables are data
(a :class:`nf_jax.kernels.tables.CascadeTables`): static numpy arrays or traced per-model
arrays (vmapped sweeps, ``nf_jax.train``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from nf_jax.kernels.tables import CascadeTables, Table


def _forward(h, weight, table, skip):
  out = jnp.einsum("bjr,jr->bj", jnp.take(h, table, axis=1), weight.astype(h.dtype))
  if skip is not None:
    out = out + jnp.take(h, skip, axis=1).mean(axis=2)
  return out


def _transposed_gather(g_padded: jax.Array, scatter: jax.Array, fan_in: int) -> jax.Array:
  """``g_padded[:, scatter // fan_in]``: ``[batch, n_out + 1] -> [batch, n_in, max_fan_out]``.

  Flat table entries ``j * fan_in + r`` map to output lane ``j``; the padding sentinel
  ``n_out * fan_in`` maps to lane ``n_out``, the zero column appended to ``g``.
  """
  return jnp.take(g_padded, scatter // fan_in, axis=1)


@jax.custom_vjp
def _stage(h, weight, table, skip, scatter, skip_scatter):
  return _forward(h, weight, table, skip)


def _stage_fwd(h, weight, table, skip, scatter, skip_scatter):
  return _forward(h, weight, table, skip), (h, weight, table, skip, scatter, skip_scatter)


def _stage_bwd(residuals, g):
  h, weight, table, skip, scatter, skip_scatter = residuals
  n_out, fan_in = table.shape
  # The gathered input is recomputed, not saved: a residual would hold [batch, n_out, fan_in]
  # per stage (fan_in times the activations) through the whole backward pass.
  d_weight = jnp.einsum(
    "bj,bjr->jr", g, jnp.take(h, table, axis=1), preferred_element_type=jnp.float32
  ).astype(weight.dtype)
  g_padded = jnp.concatenate([g, jnp.zeros((g.shape[0], 1), g.dtype)], axis=1)
  # The sentinel's coefficient is never used (its g column is zero); clip keeps it in bounds.
  coefficients = jnp.take(weight.reshape(-1).astype(g.dtype), scatter, mode="clip")
  dh = jnp.einsum("bim,im->bi", _transposed_gather(g_padded, scatter, fan_in), coefficients)
  if skip is not None:
    r = skip.shape[1]
    dh = dh + _transposed_gather(g_padded, skip_scatter, r).sum(axis=2) * (1.0 / r)
  return dh.astype(h.dtype), d_weight, None, None, None, None


_stage.defvjp(_stage_fwd, _stage_bwd)


def stage_gather(
  h: jax.Array,
  weight: jax.Array,
  table: Table,
  skip: Table | None,
  scatter: Table,
  skip_scatter: Table | None,
) -> jax.Array:
  """One stage: ``[batch, n_in_s] -> [batch, n_out_s]``, ``y_j = sum_r w_jr h[table_jr]``.

  Args:
    h: ``[batch, n_in_s]`` stage input.
    weight: ``[n_out_s, fan_in_s]``.
    table, skip: the stage's gather and skip tables (``CascadeTables.stages[s]``,
      ``.skips[s]``).
    scatter, skip_scatter: their transposes (``CascadeTables.scatters[s]``,
      ``.skip_scatters[s]``), read by the backward pass. Padding to a wider ``max_fan_out``
      with the sentinel is fine.
  """
  if (skip is None) != (skip_scatter is None):
    raise ValueError("skip and skip_scatter must both be given or both be None")
  as_array = lambda t: None if t is None else jnp.asarray(t, jnp.int32)  # noqa: E731
  return _stage(h, weight, *map(as_array, (table, skip, scatter, skip_scatter)))


def cascade_matmul_gather(
  x: jax.Array, weights: Sequence[jax.Array], tables: CascadeTables
) -> jax.Array:
  """All stages in order with :func:`stage_gather`; ``x: [batch, n_in] -> [batch, n_out]``."""
  h = x
  per_stage = zip(weights, tables.stages, tables.skips, tables.scatters, tables.skip_scatters)
  for weight, table, skip, scatter, skip_scatter in per_stage:
    h = stage_gather(h, weight, table, skip, scatter, skip_scatter)
  return h
