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
    """Defaults per backend.

    CPU: 32 rows (128 KiB at N=1024 ... 512 KiB at N=4096, fp32) stay in L2; the best of
    16/32/64/128/256/1024 measured by the session that wrote this (N=4096, radix 2). GPU/TPU: the
    fused kernel keeps a whole ``[batch_tile, N]`` tile on chip, so 8 rows (unverified on a GPU).
    """
    if backend == "cpu":
      return cls(batch_tile=32, max_merge=16)
    return cls(batch_tile=8, max_merge=16)
