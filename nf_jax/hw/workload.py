"""Workloads: the layers of a model, as static arrays the simulator reads.

* A dense layer ``n_in -> n_out`` at batch ``B`` is the GEMM ``M = B, N = n_out, K = n_in``
  (SCALE-Sim convention, see :mod:`nf_jax.hw.gemm`): ifmap = activations ``[B, n_in]``, filter =
  weights ``[n_in, n_out]``, ofmap = outputs ``[B, n_out]``.
* A sparse cascade (a :class:`nf_jax.topology.Topology`) contributes one row per stage, read
  straight from its tables: ``n_out_s`` and ``fan_in_s`` from ``t.stages[s].shape``, the skip
  width ``r_s`` from ``t.skips[s]``, and ``n_in_s`` from ``t.stage_n_in``. How stages map onto the
  butterfly-connected PE columns is documented in :mod:`nf_jax.hw.fabric`. The tables' contents
  give each stage's port-conflict schedule (:func:`stage_cycles_pow2`): on a column of ``P`` PEs,
  a PE can send one value per cycle, so a cycle in which several PEs need different values held
  by the same source PE is serialised.

Layers run one after another; the arrays are padded to static shapes so one compiled simulator
serves every workload of the same shape.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from nf_jax.topology import Topology

# Conflict schedules are tabulated for columns of P = 2**e PEs, e = 0..MAX_LOG2_PES.
MAX_LOG2_PES = 14


class Workload(NamedTuple):
  """A model's layers as arrays (a pytree; every field is an int32 numpy array).

  Attributes:
    batch: ``[]`` the batch ``B`` that latency/throughput refer to (latency is also reported at 1).
    gemm_nk: ``[G, 2]`` per dense layer ``(N, K)`` = ``(n_out, n_in)``; ``M`` is the batch.
    stage_n_in: ``[S]`` per cascade stage, the width of its input.
    stage_n_out: ``[S]`` per cascade stage, its number of outputs.
    stage_fan_in: ``[S]`` per cascade stage, its fan-in (table width).
    stage_skip: ``[S]`` per cascade stage, skip-table width ``r_s`` (0 without skips).
    stage_index: ``[S]`` position of the stage within its cascade (0 = first).
    stage_cascade: ``[S]`` which cascade the stage belongs to (0..num_cascades - 1).
    stage_cycles_pow2: ``[S, MAX_LOG2_PES + 1]`` float32, cycles per sample of the stage on a
      column of ``2**e`` PEs including source-port conflicts (:func:`stage_cycles_pow2`).
  """

  batch: Any
  gemm_nk: Any
  stage_n_in: Any
  stage_n_out: Any
  stage_fan_in: Any
  stage_skip: Any
  stage_index: Any
  stage_cascade: Any
  stage_cycles_pow2: Any

  @property
  def num_cascades(self) -> int:
    return int(np.max(self.stage_cascade)) + 1 if np.size(self.stage_cascade) else 0

  @property
  def max_depth(self) -> int:
    return int(np.max(self.stage_index)) + 1 if np.size(self.stage_index) else 0

  @property
  def macs_per_sample(self) -> int:
    """Multiply-accumulates of one sample (dense + cascade)."""
    dense = int(np.sum(np.prod(np.asarray(self.gemm_nk, np.int64), axis=-1)))
    return dense + int(np.sum(np.asarray(self.stage_n_out, np.int64) * self.stage_fan_in))


def make_workload(layers: Sequence[Any], batch: int = 1) -> Workload:
  """Builds a workload from layers, in order.

  Args:
    layers: each a ``Topology`` (a sparse cascade) or a ``("dense", n_in, n_out)`` tuple.
    batch: the batch ``B`` (the GEMM ``M`` of dense layers).

  Raises:
    ValueError: a non-positive batch or width, or a layer of unknown kind.
  """
  if int(batch) != batch or batch <= 0:
    raise ValueError(f"batch={batch!r} must be a positive integer")
  if batch >= 2**31:
    raise ValueError(f"batch={batch!r} does not fit int32; use a batch below 2**31")
  if not layers:
    raise ValueError("layers=[] is empty; pass Topology objects and/or ('dense', n_in, n_out)")
  gemms: list[tuple[int, int]] = []
  stages: list[tuple[int, ...]] = []
  sched: list[np.ndarray] = []
  n_casc = 0
  for i, layer in enumerate(layers):
    if isinstance(layer, Topology):
      for s, table in enumerate(layer.stages):
        skip = layer.skips[s]
        r = 0 if skip is None else int(skip.shape[1])
        stages.append((layer.stage_n_in[s], table.shape[0], table.shape[1], r, s, n_casc))
      sched.append(stage_cycles_pow2(layer))
      n_casc += 1
    elif isinstance(layer, tuple) and len(layer) == 3 and layer[0] == "dense":
      _, n_in, n_out = layer
      for name, v in (("n_in", n_in), ("n_out", n_out)):
        if int(v) != v or v <= 0:
          raise ValueError(f"layers[{i}] dense {name}={v!r} must be a positive integer")
        if v >= 2**31:
          raise ValueError(f"layers[{i}] dense {name}={v!r} does not fit int32; use < 2**31")
      gemms.append((int(n_out), int(n_in)))
    else:
      raise ValueError(f"layers[{i}]={layer!r} is not a Topology or a ('dense', n_in, n_out) tuple")
  st = np.asarray(stages, np.int32).reshape(-1, 6)
  return Workload(
    batch=np.int32(batch),
    gemm_nk=np.asarray(gemms, np.int32).reshape(-1, 2),
    stage_n_in=st[:, 0],
    stage_n_out=st[:, 1],
    stage_fan_in=st[:, 2],
    stage_skip=st[:, 3],
    stage_index=st[:, 4],
    stage_cascade=st[:, 5],
    stage_cycles_pow2=np.concatenate(sched, 0).astype(np.float32)
    if sched
    else np.zeros((0, MAX_LOG2_PES + 1), np.float32),
  )


@functools.lru_cache(maxsize=64)
def stage_cycles_pow2(t: Topology) -> np.ndarray:
  """``float64[depth, MAX_LOG2_PES + 1]``: cycles per sample of each stage on ``2**e`` PEs.

  Mapping (see :mod:`nf_jax.hw.fabric`): output lane ``j`` runs on PE ``j mod P`` in round
  ``j // P`` and reads one operand per cycle, ``h[table[j, i]]`` (then its skip lanes), from PE
  ``v mod P`` of the previous column (stage 0: input lane ``v mod n_in``). In each (round, cycle)
  slot a source PE multicasts one value per cycle, so the slot takes as many cycles as the most
  distinct values any one source PE must send. Without conflicts a stage takes
  ``ceil(n_out / P) * (fan_in + r)`` cycles.
  """
  out = np.zeros((t.depth, MAX_LOG2_PES + 1))
  for s, table in enumerate(t.stages):
    skip = t.skips[s]
    n_in = t.stage_n_in[s]
    reads = table if skip is None else np.concatenate([table, skip], axis=1)
    reads = np.asarray(reads, np.int64) % n_in
    n_out, width = reads.shape
    lane = np.arange(n_out, dtype=np.int64)[:, None]
    cyc = np.arange(width, dtype=np.int64)[None, :]
    for e in range(MAX_LOG2_PES + 1):
      p = 1 << e
      slot = (lane // p) * width + cyc  # (round, cycle within the round)
      pairs = np.unique((slot * n_in + reads).ravel())  # distinct values needed per slot
      slot_id, value = pairs // n_in, pairs % n_in
      keys, counts = np.unique(slot_id * p + value % p, return_counts=True)
      worst = np.zeros(int(slot.max()) + 1, np.int64)
      np.maximum.at(worst, keys // p, counts)
      out[s, e] = worst.sum()
  return out


def gemm_workload(m: int, n: int, k: int) -> Workload:
  """One GEMM ``[m, k] @ [k, n]`` as a workload (a dense ``k -> n`` layer at batch ``m``)."""
  return make_workload([("dense", k, n)], batch=m)
