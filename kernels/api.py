"""``cascade_matmul``: validated entry point with an explicit, logged implementation choice."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from nf_jax.kernels import (
  cpu_ffi,
  custom_vjp,
  pallas_cascade,
  structure,
  xla_blocked,
  xla_gather,
)
from nf_jax.kernels.block_sizes import BlockSizes

from nf_jax.topology import Topology

# All implementations; see choose_impl for the order "auto" tries them in on each backend.
IMPLEMENTATIONS = ("pallas", "cpu_ffi", "xla_blocked", "xla_gather")

# Bytes of one fused-kernel batch tile (all lanes of the widest stage, float32) that should stay
# on chip: an H100 SM has a 256 KiB register file (64K 32-bit registers; NVIDIA H100 Tensor Core
# GPU Architecture whitepaper, 2022) and 228 KiB of shared memory; allow half the register file.
# A guess not yet checked on a GPU: wider tiles spill.
PALLAS_TILE_BYTES = 128 * 1024

# On CPU, batches this small (Flax init runs one row) go to xla_gather: its per-stage ops reuse
# compiled kernels across topologies, while xla_blocked compiles a new program per topology.
SMALL_BATCH = 4


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


def _refusal(impl: str, topology: Topology, block_sizes: BlockSizes) -> str | None:
  """Why ``impl`` cannot run ``topology`` (None when it can)."""
  if impl == "xla_gather":
    return None
  if impl == "cpu_ffi":
    return cpu_ffi.refusal()
  plan = structure.plan_topology(topology)
  if plan.stages is None:
    return plan.reason
  if impl == "pallas":
    merged = xla_blocked.program_plans(plan.stages, block_sizes.max_merge)
    return pallas_cascade.pallas_refusal(merged, block_sizes.batch_tile)
  return None


def choose_impl(
  x: jax.Array, topology: Topology, impl: str = "auto", block_sizes: BlockSizes | None = None
) -> tuple[str, str]:
  """Returns ``(implementation, reason)`` for this call without running it.

  ``"auto"`` picks ``pallas`` on GPU/TPU when the fused kernel handles the topology and a batch
  tile fits on chip, else ``xla_blocked`` when every stage is block structured, else
  ``xla_gather``. On CPU it picks ``cpu_ffi`` (any topology) when its C++ kernel builds, else
  ``xla_blocked`` or ``xla_gather`` with the build failure in the logged reason. Batches of at
  most ``SMALL_BATCH`` rows go to ``xla_gather`` on CPU. An explicit ``impl`` that cannot handle
  the topology raises ValueError saying why.
  """
  backend = jax.default_backend()
  block_sizes = block_sizes or BlockSizes.get_default(backend)
  if impl != "auto":
    if impl not in IMPLEMENTATIONS:
      raise ValueError(f"impl={impl!r} is not one of {('auto',) + IMPLEMENTATIONS}")
    reason = _refusal(impl, topology, block_sizes)
    if reason is not None:
      raise ValueError(
        f"impl={impl!r} cannot handle {topology!r}: {reason}; use impl='auto' or 'xla_gather'"
      )
    return impl, "requested explicitly"
  blocked = _refusal("xla_blocked", topology, block_sizes)
  if backend in ("gpu", "tpu", "cuda", "rocm"):
    pallas = _refusal("pallas", topology, block_sizes)
    width = max(max(topology.stage_n_out), max(topology.stage_n_in))
    tile_bytes = block_sizes.batch_tile * width * 4
    if pallas is None and tile_bytes > PALLAS_TILE_BYTES:
      pallas = f"a batch tile of {tile_bytes} B exceeds the on-chip budget {PALLAS_TILE_BYTES} B"
    if pallas is None:
      return "pallas", f"{backend}: fused kernel handles every stage"
    if blocked is None:
      return "xla_blocked", f"{backend}: pallas refused ({pallas}); stages are block structured"
    return "xla_gather", f"{backend}: pallas refused ({pallas}); xla_blocked refused ({blocked})"
  rows = math.prod(x.shape[:-1])
  if rows <= SMALL_BATCH:
    return "xla_gather", (
      f"{backend}: batch of {rows} rows <= {SMALL_BATCH}: a per-stage gather compiles fastest and "
      "is as fast at this size (e.g. Flax init)"
    )
  native = _refusal("cpu_ffi", topology, block_sizes)
  if native is None:
    return "cpu_ffi", f"{backend}: the C++ kernel runs every stage of a batch tile in cache"
  if blocked is None:
    return "xla_blocked", (
      f"{backend}: cpu_ffi refused ({native}); {structure.plan_topology(topology).reason}"
    )
  return "xla_gather", f"{backend}: cpu_ffi refused ({native}); xla_blocked refused ({blocked})"


def cascade_matmul(
  x: jax.Array,
  weights: Sequence[jax.Array],
  topology: Topology,
  impl: str = "auto",
  *,
  interpret: bool = False,
  block_sizes: BlockSizes | None = None,
) -> jax.Array:
  """Applies the sparse cascade: ``x @ M_0 @ ... @ M_{D-1}``.

  Args:
    x: ``[..., n_in]`` activations.
    weights: per stage, ``[n_out_s, fan_in_s]`` (the shape of ``topology.stages[s]``).
    topology: the cascade's static tables.
    impl: ``"auto"`` or one of ``IMPLEMENTATIONS`` (see :func:`choose_impl`).
    interpret: run Pallas kernels in interpreter mode (CPU tests). With ``impl="auto"`` on CPU,
      ``interpret=True`` selects the (interpreted) fused kernel when it supports the topology.
    block_sizes: tiling; ``BlockSizes.get_default(backend)`` when None.

  Returns:
    ``[..., n_out]`` in ``x.dtype``.
  """
  validate_args(x, weights, topology)
  backend = jax.default_backend()
  block_sizes = block_sizes or BlockSizes.get_default(backend)
  if impl == "auto" and interpret and _refusal("pallas", topology, block_sizes) is None:
    chosen, reason = "pallas", "interpret=True asks for the fused kernel in interpreter mode"
  else:
    chosen, reason = choose_impl(x, topology, impl, block_sizes)
  preferred = "cpu_ffi" if backend == "cpu" else "pallas"
  if impl == "auto" and chosen != preferred and not (interpret and chosen == "pallas"):
    logging.info("cascade_matmul falls back to %s: %s", chosen, reason)
  else:
    logging.log_first_n(logging.DEBUG, "cascade_matmul: %s (%s)", 8, chosen, reason)
  lead = x.shape[:-1]
  flat = x.reshape(-1, topology.n_in)
  if chosen == "xla_gather":
    out = xla_gather.cascade_matmul_gather(flat, weights, topology)
  elif chosen == "cpu_ffi":
    out = cpu_ffi.cascade_matmul_cpu(flat, weights, topology)
  else:
    stages = structure.plan_topology(topology).stages
    if chosen == "xla_blocked":
      out = xla_blocked.cascade_matmul_blocked(flat, weights, stages, block_sizes)
    else:
      out = custom_vjp.cascade_matmul_pallas(flat, weights, stages, block_sizes, interpret)
  return out.reshape(*lead, topology.n_out).astype(x.dtype)
