"""Tile sizes shared by the ``xla_blocked`` and ``pallas`` implementations."""

from __future__ import annotations

import dataclasses

# A batch tile no batch reaches: ``xla_blocked`` then runs every stage over the whole batch.
UNTILED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Static tiling parameters (hashable: usable as a jit static argument).

  Attributes:
    batch_tile: rows of ``x`` processed per memory pass (all stages of a tile run while it is in
      cache / on chip). A positive int; ``pallas`` needs a power of 2 (Triton block dimensions).
    max_merge: largest block edge that consecutive square radix-k stages are merged into (1 turns
      merging off). A product of radix-2 stages of block edge 8 costs 8 MACs per output instead
      of 6 but needs one memory pass instead of three.
    digit_layout: run runs of square stages as ``[groups, t, K]`` batched matmuls with one
      transpose per stage (``xla_blocked.digit_segment``) instead of a generic einsum.
    num_warps: warps per ``pallas`` program on GPU (Triton), a power of 2.
    backward_programs: most programs in the ``pallas`` backward grid. Each walks several batch
      tiles and writes one partial dW (``programs x num_params`` floats to HBM); fewer programs
      write less but accumulate dW longer in registers.
  """

  batch_tile: int = 32
  max_merge: int = 16
  digit_layout: bool = True
  num_warps: int = 4
  backward_programs: int = 256

  def __post_init__(self):
    if not isinstance(self.batch_tile, int) or self.batch_tile < 1:
      raise ValueError(f"{self.batch_tile=} should be a positive int")
    if self.num_warps not in (1, 2, 4, 8, 16, 32):
      raise ValueError(f"{self.num_warps=} should be a power of 2 from 1 to 32")
    if not isinstance(self.backward_programs, int) or self.backward_programs < 1:
      raise ValueError(f"{self.backward_programs=} should be a positive int")
    if not isinstance(self.max_merge, int) or self.max_merge < 1:
      raise ValueError(f"{self.max_merge=} should be an int >= 1 (1 disables merging)")

  @classmethod
  def get_default(cls, backend: str = "cpu", impl: str | None = None) -> BlockSizes:
    """Defaults per backend (``cpu``, ``gpu``/``cuda``/``rocm``, ``tpu``) and implementation.

    CPU: 32 rows (128 KiB at N=1024 ... 512 KiB at N=4096, fp32) stay in L2 (the best tile of
    a sweep at N=4096, radix 2: benchmarks/README.md). GPU/TPU, ``xla_blocked``: the whole
    batch at once (``UNTILED``), so each stage is one batched matmul over every row; a
    ``lax.map`` over small tiles runs them one after another, which was slow on an H100
    (benchmarks/README.md). GPU/TPU, ``pallas``: the Triton kernel holds a ``[batch_tile, N]``
    tile and its ``batch_tile x N x fan-in`` stage products in registers, so few rows and little
    merging: the best of the sweep in ``benchmarks/gpu_check.sh`` (benchmarks/README.md).
    """
    if backend == "cpu":
      return cls(batch_tile=32, max_merge=16)
    if impl == "xla_blocked":
      return cls(batch_tile=UNTILED, max_merge=16)
    return cls(batch_tile=2, max_merge=2, num_warps=4, backward_programs=1024)
