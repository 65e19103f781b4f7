"""Tile sizes shared by the ``xla_blocked`` and ``pallas`` implementations."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Static tiling parameters (hashable: usable as a jit static argument).

  Attributes:
    batch_tile: rows of ``x`` processed per memory pass (all stages of a tile run while it is in
      cache / on chip). Must be a positive multiple of 8 (sublane granularity on TPU, and a
      power-of-2-friendly Triton block on GPU).
    max_merge: largest block edge that consecutive square radix-k stages are merged into (1 turns
      merging off). A product of radix-2 stages of block edge 8 costs 8 MACs per output instead
      of 6 but needs one memory pass instead of three.
    digit_layout: run runs of square stages as ``[groups, t, K]`` batched matmuls with one
      transpose per stage (``xla_blocked.digit_segment``) instead of a generic einsum.
  """

  batch_tile: int = 32
  max_merge: int = 16
  digit_layout: bool = True

  def __post_init__(self):
    if not isinstance(self.batch_tile, int) or self.batch_tile < 8 or self.batch_tile % 8:
      raise ValueError(f"{self.batch_tile=} should be a positive multiple of 8")
    if not isinstance(self.max_merge, int) or self.max_merge < 1:
      raise ValueError(f"{self.max_merge=} should be an int >= 1 (1 disables merging)")

  @classmethod
  def get_default(cls, backend: str = "cpu") -> BlockSizes:
    """Defaults per backend: small tiles that stay in L2 on CPU, bigger ones on accelerators."""
    if backend == "cpu":
      return cls(batch_tile=32, max_merge=16)
    return cls(batch_tile=64, max_merge=16)
