"""``cascade_matmul``: validated entry point with an explicit, logged implementation choice.

The static structure (a ``Topology``: shapes, fan-ins, skip presence, block plans) and the
table data (an optional :class:`nf_jax.kernels.tables.CascadeTables` pytree, possibly traced)
are separate arguments; see :mod:`nf_jax.kernels.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from absl import logging
from nf_jax.kernels import (
  cpu_ffi,
  custom_vjp,
  dispatch,
  pallas_cascade,
  structure,
  xla_blocked,
  xla_gather,
)
from nf_jax.kernels.block_sizes import BlockSizes
from nf_jax.kernels.tables import CascadeTables, validate_tables

from nf_jax.topology import Topology

# All implementations; dispatch.AUTO_ORDER says which "auto" tries on each platform, in order.
IMPLEMENTATIONS = ("pallas", "cpu_ffi", "xla_blocked", "xla_gather")


def validate_impl(impl: str) -> str:
  """Returns ``impl`` if it is ``"auto"`` or one of ``IMPLEMENTATIONS``, else raises ValueError.

  Cheap (no topology needed): configs can check their ``impl`` field before any work.
  """
  if not isinstance(impl, str) or impl not in ("auto",) + IMPLEMENTATIONS:
    raise ValueError(
      f"impl={impl!r} is not one of {('auto',) + IMPLEMENTATIONS}; 'auto' picks per platform"
    )
  return impl


# Bytes of one fused-kernel batch tile (all lanes of the widest stage, float32) that should stay
# on chip: an H100 SM has a 256 KiB register file (64K 32-bit registers; NVIDIA H100 Tensor Core
# GPU Architecture whitepaper, 2022) and 228 KiB of shared memory; allow half the register file.
# A guess not yet checked on a GPU: wider tiles spill.
PALLAS_TILE_BYTES = 128 * 1024

# On CPU, batches this small (Flax init runs one row) go to xla_gather: its per-stage ops reuse
# compiled kernels across topologies, while xla_blocked compiles a new program per topology.
SMALL_BATCH = 4


# The implementations that read the tables as data (traced or not); the others plan on them.
DATA_TABLE_IMPLS = ("cpu_ffi", "xla_gather")


def validate_args(
  x: jax.Array,
  weights: Sequence[jax.Array],
  topology: Topology,
  tables: CascadeTables | None = None,
) -> None:
  """Raises ValueError naming both shapes when x, weights, topology and tables disagree."""
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
  if tables is not None:
    validate_tables(tables, topology)


def _refusal(
  impl: str, topology: Topology, block_sizes: BlockSizes, data_tables: bool = False
) -> str | None:
  """Why ``impl`` cannot run ``topology`` (None when it can); ``data_tables``: the tables come
  as an argument (``tables=``), so only the implementations that read them as data can."""
  if impl == "xla_gather":
    return None
  if impl == "cpu_ffi":
    return cpu_ffi.refusal()
  if data_tables:
    return (
      "its tables are passed as data (tables=, e.g. per-model tables): only "
      f"{' and '.join(DATA_TABLE_IMPLS)} read them so"
    )
  plan = structure.plan_topology(topology)
  if plan.stages is None:
    return plan.reason
  if impl == "pallas":
    merged = structure.program_plans(plan.stages, block_sizes.max_merge)
    return pallas_cascade.pallas_refusal(merged, block_sizes.batch_tile)
  return None


def _sizes(block_sizes: BlockSizes | None, platform: str, impl: str) -> BlockSizes:
  """The caller's tiling, else the platform's default for ``impl``."""
  return block_sizes or BlockSizes.get_default(platform, impl=impl)


def _auto_refusal(
  impl: str, topology: Topology, block_sizes: BlockSizes, data_tables: bool
) -> str | None:
  """:func:`_refusal`, plus the on-chip budget ``auto`` keeps for the fused kernel."""
  reason = _refusal(impl, topology, block_sizes, data_tables)
  if reason is None and impl == "pallas":
    width = max(max(topology.stage_n_out), max(topology.stage_n_in))
    tile_bytes = block_sizes.batch_tile * width * 4
    if tile_bytes > PALLAS_TILE_BYTES:
      reason = f"a batch tile of {tile_bytes} B exceeds the on-chip budget {PALLAS_TILE_BYTES} B"
  return reason


# Why auto takes a path (xla_blocked says which blocks it found instead).
_ACCEPTED = {
  "cpu_ffi": "the C++ kernel runs every stage of a batch tile in cache",
  "pallas": "fused kernel handles every stage",
  "xla_gather": "a per-stage gather handles any topology",
}


def choose_impl(
  x: jax.Array,
  topology: Topology,
  impl: str = "auto",
  block_sizes: BlockSizes | None = None,
  platform: str | None = None,
  *,
  data_tables: bool = False,
) -> tuple[str, str]:
  """Returns ``(implementation, reason)`` for this call on ``platform`` without running it.

  ``"auto"`` tries the paths of ``dispatch.AUTO_ORDER[platform]`` in order (each entry says
  where it was measured) and takes the first that accepts the topology: on CPU ``cpu_ffi``
  (any topology, when its C++ kernel builds), else ``xla_blocked`` when every stage is block
  structured, else ``xla_gather``; batches of at most ``SMALL_BATCH`` rows go to ``xla_gather``
  on CPU. A platform without an entry gets ``xla_gather``. An explicit ``impl`` that cannot
  handle the topology raises ValueError saying why.

  Args:
    platform: a lowering platform (``cpu``, ``cuda``, ``rocm``, ``tpu``; ``gpu`` means
      ``cuda``); the host's default backend when None.
    data_tables: the call passes ``tables=`` (only ``DATA_TABLE_IMPLS`` read tables as data).
  """
  platform = platform or dispatch.host_platform()
  platform = "cuda" if platform == "gpu" else platform
  if validate_impl(impl) != "auto":
    reason = _refusal(impl, topology, _sizes(block_sizes, platform, impl), data_tables)
    if reason is not None:
      raise ValueError(
        f"impl={impl!r} cannot handle {topology!r}: {reason}; use impl='auto' or 'xla_gather'"
      )
    return impl, "requested explicitly"
  entry = dispatch.AUTO_ORDER.get(platform)
  if entry is None:
    return "xla_gather", f"{platform}: no entry in dispatch.AUTO_ORDER; the gather lowers anywhere"
  if platform == "cpu":
    rows = math.prod(x.shape[:-1])
    if rows <= SMALL_BATCH:
      return "xla_gather", (
        f"cpu: batch of {rows} rows <= {SMALL_BATCH}: a per-stage gather compiles fastest and "
        "is as fast at this size (e.g. Flax init)"
      )
  refused = []
  for candidate in entry.order:
    sizes = _sizes(block_sizes, platform, candidate)
    reason = _auto_refusal(candidate, topology, sizes, data_tables)
    if reason is None:
      why = (
        structure.plan_topology(topology).reason
        if candidate == "xla_blocked"
        else _ACCEPTED[candidate]
      )
      steps = [f"{c} refused ({r})" for c, r in refused] + [why]
      return candidate, f"{platform}: " + "; ".join(steps)
    refused.append((candidate, reason))
  summary = "; ".join(f"{c} refused ({r})" for c, r in refused)
  return "xla_gather", f"{platform}: {summary}"


def _run(
  chosen: str,
  flat: jax.Array,
  weights: Sequence[jax.Array],
  topology: Topology,
  tables: CascadeTables | None,
  block_sizes: BlockSizes,
  interpret: bool,
) -> jax.Array:
  """One implementation on ``flat: [batch, n_in]`` -> ``[batch, n_out]`` in ``flat.dtype``;
  ``tables`` (None: the topology's own) is read only by ``DATA_TABLE_IMPLS``."""
  if chosen in DATA_TABLE_IMPLS:
    data = CascadeTables.of(topology) if tables is None else tables
    if chosen == "xla_gather":
      out = xla_gather.cascade_matmul_gather(flat, weights, data)
    else:
      out = cpu_ffi.cascade_matmul_cpu(flat, weights, data, topology.stage_n_in)
  else:
    stages = structure.plan_topology(topology).stages
    if chosen == "xla_blocked":
      out = xla_blocked.cascade_matmul_blocked(flat, weights, stages, block_sizes)
    else:
      out = custom_vjp.cascade_matmul_pallas(flat, weights, stages, block_sizes, interpret)
  return out.astype(flat.dtype)


def _log_choice(platform: str, chosen: str, reason: str, host: bool) -> None:
  entry = dispatch.AUTO_ORDER.get(platform)
  if host and (entry is None or chosen != entry.order[0]):
    logging.info("cascade_matmul falls back to %s: %s", chosen, reason)
  else:
    logging.log_first_n(
      logging.DEBUG, "cascade_matmul on %s: %s (%s)", 16, platform, chosen, reason
    )


def cascade_matmul(
  x: jax.Array,
  weights: Sequence[jax.Array],
  topology: Topology,
  impl: str = "auto",
  *,
  tables: CascadeTables | None = None,
  interpret: bool = False,
  block_sizes: BlockSizes | None = None,
) -> jax.Array:
  """Applies the sparse cascade: ``x @ M_0 @ ... @ M_{D-1}``.

  ``impl="auto"`` is resolved per lowering platform (``jax.lax.platform_dependent`` over
  ``dispatch.PLATFORMS``, every other platform taking ``xla_gather``): a program exported for
  ``cuda`` or ``tpu`` on a CPU host runs that platform's choice, never the host's.

  Args:
    x: ``[..., n_in]`` activations.
    weights: per stage, ``[n_out_s, fan_in_s]`` (the shape of ``topology.stages[s]``).
    topology: the cascade's static structure, and (without ``tables``) its tables.
    impl: ``"auto"`` or one of ``IMPLEMENTATIONS`` (see :func:`choose_impl`).
    tables: the index tables as data (:class:`CascadeTables`, of ``topology``'s structure),
      e.g. traced per-model tables under ``vmap``; ``topology``'s own tables are then not
      read. Only ``DATA_TABLE_IMPLS`` run it (``auto`` picks among them).
    interpret: run Pallas kernels in interpreter mode (CPU tests). With ``impl="auto"``,
      ``interpret=True`` selects the (interpreted) fused kernel when it supports the topology.
    block_sizes: tiling; ``BlockSizes.get_default(platform, impl)`` when None.

  Returns:
    ``[..., n_out]`` in ``x.dtype``.
  """
  validate_args(x, weights, topology, tables)
  validate_impl(impl)
  data_tables = tables is not None
  host = dispatch.host_platform()
  lead = x.shape[:-1]
  flat = x.reshape(-1, topology.n_in)
  pallas_sizes = _sizes(block_sizes, host, "pallas")
  if (
    impl == "auto" and interpret and _refusal("pallas", topology, pallas_sizes, data_tables) is None
  ):
    logging.log_first_n(logging.DEBUG, "cascade_matmul: interpreted pallas", 8)
    out = _run("pallas", flat, weights, topology, tables, pallas_sizes, interpret)
  elif impl != "auto":
    chosen, _ = choose_impl(x, topology, impl, block_sizes, host, data_tables=data_tables)
    sizes = _sizes(block_sizes, host, chosen)
    out = _run(chosen, flat, weights, topology, tables, sizes, interpret)
  else:
    # One branch per distinct (path, tiling); platforms that take the gather share the default.
    branches: dict[tuple[str, BlockSizes], list[str]] = {}
    for platform in dispatch.PLATFORMS:
      chosen, reason = choose_impl(
        x, topology, "auto", block_sizes, platform, data_tables=data_tables
      )
      _log_choice(platform, chosen, reason, platform == host)
      branches.setdefault((chosen, _sizes(block_sizes, platform, chosen)), []).append(platform)

    def runner(chosen: str, sizes: BlockSizes):
      return lambda flat, weights, tables: _run(
        chosen, flat, weights, topology, tables, sizes, interpret
      )

    if len(branches) == 1:
      ((chosen, sizes),) = branches
      out = runner(chosen, sizes)(flat, weights, tables)
    else:
      per_platform = {}
      for (chosen, sizes), platforms in branches.items():
        if chosen != "xla_gather":
          fn = runner(chosen, sizes)  # one callable per branch: platform_dependent joins them
          per_platform.update({p: fn for p in platforms})
      gather = runner("xla_gather", _sizes(block_sizes, host, "xla_gather"))
      # The tables are an operand, not a closure: traced per-model tables reach every branch.
      out = jax.lax.platform_dependent(flat, list(weights), tables, default=gather, **per_platform)
  return out.reshape(*lead, topology.n_out).astype(x.dtype)
