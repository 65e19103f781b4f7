"""``CascadeTables``: a cascade's index tables as a pytree of arrays, the data half of the API.

:func:`nf_jax.kernels.cascade_matmul` takes the two halves of a cascade separately:

* the *static structure*, a :class:`nf_jax.topology.Topology`: widths, stage shapes (fan-ins),
  skip presence, and the block plans that ``kernels.structure`` derives from its numpy tables;
* the *table data*, a :class:`CascadeTables` (optional; by default the topology's own tables as
  numpy constants). Passed explicitly it may be traced, e.g. vmapped per-model tables of a sweep
  whose models share one structure but differ in wiring (``nf_jax.train``). Only the kernels
  that read tables as data run it: ``xla_gather`` and ``cpu_ffi``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nf_jax.topology import Topology

Table = np.ndarray | jax.Array


class CascadeTables(NamedTuple):
  """Per-stage index tables (a pytree; ``None`` entries are stages without skip edges).

  Fields (``[...]`` is any leading model axis of stacked tables):
    stages: per stage, the gather table ``int32[..., n_out_s, fan_in_s]``.
    skips: per stage, ``None`` or the skip table ``int32[..., n_out_s, r_s]``.
    scatters: per stage, the transposed table ``int32[..., n_in_s, w_s]`` (entries
      ``j * fan_in_s + r``; padded with the sentinel ``n_out_s * fan_in_s``, any ``w_s``).
    skip_scatters: per stage, ``None`` or the transposed skip table ``int32[..., n_in_s, w'_s]``
      (padded with ``n_out_s * r_s``).
  """

  stages: tuple[Table, ...]
  skips: tuple[Table | None, ...]
  scatters: tuple[Table, ...]
  skip_scatters: tuple[Table | None, ...]

  @classmethod
  def of(cls, topology: Topology) -> CascadeTables:
    """The topology's own tables (read-only numpy arrays, constants under ``jit``)."""
    return cls(
      tuple(topology.stages),
      tuple(topology.skips),
      tuple(topology.scatters),
      tuple(topology.skip_scatters),
    )

  @classmethod
  def stack(cls, topologies: Sequence[Topology]) -> CascadeTables:
    """Tables of ``topologies`` (one structure) stacked along a leading model axis.

    Each leaf is ``int32[M, ...]``. The transposed tables' widths (the maximum fan-out)
    differ between random draws, so they are padded to the widest with their sentinel.

    Raises:
      ValueError: no topologies, or two that differ in structure (``structure_key``).
    """
    if not topologies:
      raise ValueError("topologies is empty: pass at least one Topology to stack")
    ref = topologies[0]
    for t in topologies[1:]:
      if structure_key(t) != structure_key(ref):
        raise ValueError(
          f"cannot stack the tables of {t!r} with {ref!r}: their structures differ "
          f"({structure_key(t)} vs {structure_key(ref)}); only equal shapes share one program"
        )

    def stacked(arrays: Sequence[Table | None], sentinel: int | None) -> np.ndarray | None:
      if arrays[0] is None:
        return None
      width = max(a.shape[1] for a in arrays)
      return np.stack(
        [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=sentinel) for a in arrays]
      )

    skip_sizes = [0 if skip is None else skip.size for skip in ref.skips]
    return cls(
      tuple(stacked([t.stages[s] for t in topologies], 0) for s in range(ref.depth)),
      tuple(stacked([t.skips[s] for t in topologies], 0) for s in range(ref.depth)),
      tuple(
        stacked([t.scatters[s] for t in topologies], ref.stages[s].size) for s in range(ref.depth)
      ),
      tuple(
        stacked([t.skip_scatters[s] for t in topologies], skip_sizes[s]) for s in range(ref.depth)
      ),
    )


def structure_key(topology: Topology) -> tuple:
  """What tables must agree on to run under one static structure: widths, stage shapes, skip
  shapes (hashable)."""
  return (
    topology.n_in,
    tuple(topology.stage_n_in),
    tuple(tuple(t.shape) for t in topology.stages),
    tuple(None if k is None else tuple(k.shape) for k in topology.skips),
  )


def validate_tables(tables: CascadeTables, topology: Topology) -> None:
  """Raises ValueError (naming the field, stage and both shapes) when ``tables`` do not fit
  ``topology``'s structure: under ``vmap`` the shapes seen are one model's."""
  if not isinstance(tables, CascadeTables):
    raise TypeError(
      f"tables must be a nf_jax.kernels.CascadeTables, got {type(tables).__name__}; "
      "build one with CascadeTables.of(topology) or CascadeTables.stack(topologies)"
    )
  for field in CascadeTables._fields:
    if len(getattr(tables, field)) != topology.depth:
      raise ValueError(
        f"tables.{field} has {len(getattr(tables, field))} entries for a topology of "
        f"depth={topology.depth}: one per stage"
      )
  for s in range(topology.depth):
    table, skip = topology.stages[s], topology.skips[s]
    n_in = topology.stage_n_in[s]
    expected = {
      "stages": tuple(table.shape),
      "skips": None if skip is None else tuple(skip.shape),
      "scatters": (n_in, None),
      "skip_scatters": None if skip is None else (n_in, None),
    }
    for field, want in expected.items():
      got = getattr(tables, field)[s]
      if (got is None) != (want is None):
        raise ValueError(
          f"tables.{field}[{s}] is {'None' if got is None else 'an array'} but the topology's "
          f"stage {s} {'has' if want is not None else 'has no'} skip edges"
        )
      if got is None:
        continue
      shape = tuple(got.shape)
      if len(shape) != 2 or any(w is not None and g != w for g, w in zip(shape, want)):
        raise ValueError(
          f"tables.{field}[{s}].shape={shape} does not match the topology's "
          f"{tuple('*' if w is None else w for w in want)} (stage {s} of {topology!r})"
        )
      if not jnp.issubdtype(got.dtype, jnp.integer):
        raise ValueError(f"tables.{field}[{s}].dtype={got.dtype} must be an integer type")
