"""``cascade_matmul``: validated entry point with an explicit, logged implementation choice."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from nf_jax.kernels import xla_gather

from nf_jax.topology import Topology

# Implementations in order of preference; "auto" picks the first that supports the call.
IMPLEMENTATIONS = ("xla_gather",)


def validate_args(x: jax.Array, weights: Sequence[jax.Array], topology: Topology) -> None:
  """Raises ValueError naming both shapes when x, weights and topology disagree."""
  if not isinstance(topology, Topology):
    raise TypeError(f"topology must be a nf_jax.topology.Topology, got {type(topology).__name__}")
  if x.ndim < 1 or x.shape[-1] != topology.n_in:
    raise ValueError(
      f"x.shape={tuple(x.shape)} does not match the topology's n_in={topology.n_in}: "
      f"the last axis of x must be {topology.n_in}"
    )
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x.dtype={x.dtype} must be a floating type (float32, bfloat16, ...)")
  if len(weights) != topology.depth:
    raise ValueError(
      f"got {len(weights)} weight arrays for a topology of depth={topology.depth}; "
      "weights[s] must have the shape of topology.stages[s]"
    )
  for s, (w, table) in enumerate(zip(weights, topology.stages)):
    if tuple(w.shape) != tuple(table.shape):
      raise ValueError(
        f"weights[{s}].shape={tuple(w.shape)} does not match "
        f"topology.stages[{s}].shape={tuple(table.shape)}"
      )
    if not jnp.issubdtype(w.dtype, jnp.floating):
      raise ValueError(f"weights[{s}].dtype={w.dtype} must be a floating type")


def choose_impl(x: jax.Array, topology: Topology, impl: str = "auto") -> tuple[str, str]:
  """Returns ``(implementation, reason)`` for this call without running it."""
  if impl != "auto":
    if impl not in IMPLEMENTATIONS:
      raise ValueError(f"impl={impl!r} is not one of {('auto',) + IMPLEMENTATIONS}")
    return impl, "requested explicitly"
  return "xla_gather", "the only implementation that handles every topology"


def cascade_matmul(
  x: jax.Array,
  weights: Sequence[jax.Array],
  topology: Topology,
  impl: str = "auto",
  *,
  interpret: bool = False,
) -> jax.Array:
  """Applies the sparse cascade: ``x @ M_0 @ ... @ M_{D-1}``.

  Args:
    x: ``[..., n_in]`` activations.
    weights: per stage, ``[n_out_s, fan_in_s]`` (the shape of ``topology.stages[s]``).
    topology: the cascade's static tables.
    impl: ``"auto"`` or one of ``IMPLEMENTATIONS``.
    interpret: run Pallas kernels in interpreter mode (CPU tests).

  Returns:
    ``[..., n_out]`` in ``x.dtype``.
  """
  del interpret  # Used by the Pallas implementation.
  validate_args(x, weights, topology)
  chosen, reason = choose_impl(x, topology, impl)
  logging.log_first_n(logging.DEBUG, "cascade_matmul: %s (%s)", 8, chosen, reason)
  lead = x.shape[:-1]
  flat = x.reshape(-1, topology.n_in)
  out = xla_gather.cascade_matmul_gather(flat, weights, topology)
  return out.reshape(*lead, topology.n_out)
