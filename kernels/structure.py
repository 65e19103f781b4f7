"""Detects block structure in a topology's gather tables (numpy, cached per topology).

A stage is *block structured* when its ``n_out`` output lanes, viewed as ``[A, ko, C]``, and a
re-indexed input ``u = h[src]`` of ``p * A * ki * C`` lanes, viewed as ``[p, A, ki, C]``, satisfy

  ``out[a, i, c] = sum_{b, r} W[(a, i, c), b * ki + r] * u[b, a, r, c]``,

i.e. the table equals ``src[P]`` with ``P[(a, i, c), (b, r)] = ((b * A + a) * ki + r) * C + c``.
Butterfly stages (digit partners of stride C) have ``p = 1, ko = ki = radix`` and ``src`` the
identity; block-diagonal (Monarch) and Clos stages have a ``src`` that is a transpose of a
reshape; the last parallel-butterfly stage sums ``p`` branches. The structure is verified from
the tables, never trusted from the family name: rows ``(a, :, c)`` must share one input list.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from nf_jax.topology import Topology


@dataclasses.dataclass(frozen=True, eq=False)
class StagePlan:
  """One block-structured stage.

  Attributes:
    n_in: stage input width.
    n_out: stage output width (``A * ko * C``).
    p, A, ko, ki, C: the block decomposition (see module docstring).
    src_kind: ``"identity"`` (``u = h``), ``"transpose"`` (``u = h.reshape(g1, g2).T``),
      or ``"gather"`` (``u = h[:, src]``).
    src: ``int32[p * A * ki * C]`` input lane of each ``u`` lane.
    transpose: ``(g1, g2)`` when ``src_kind == "transpose"``.
    skip_mode: ``None``, ``"u"`` (lane j adds ``mean_t u[t * n_out + j]``) or ``"h"`` (adds
      ``mean_t h[(t * n_out + j) mod n_in]``).
    skip_r: number of skip edges per lane (the mean's denominator).
  """

  n_in: int
  n_out: int
  p: int
  A: int
  ko: int
  ki: int
  C: int
  src_kind: str
  src: np.ndarray
  transpose: tuple[int, int] | None
  skip_mode: str | None
  skip_r: int

  @property
  def u_width(self) -> int:
    return self.p * self.A * self.ki * self.C

  @property
  def square_identity(self) -> bool:
    """A plain radix-k digit stage: mergeable with its neighbours."""
    return (
      self.src_kind == "identity"
      and self.p == 1
      and self.ko == self.ki
      and self.n_in == self.n_out
      and (self.skip_mode is None or self.skip_r == 1)
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
  """``stages`` when every stage is block structured, else ``reason`` says which one is not."""

  stages: tuple[StagePlan, ...] | None
  reason: str


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def _positions(p: int, A: int, ko: int, ki: int, C: int) -> np.ndarray:
  """``P[(a, i, c), (b, r)]`` as ``int64[A * ko * C, p * ki]``."""
  a = np.arange(A)[:, None, None, None, None]
  c = np.arange(C)[None, None, :, None, None]
  b = np.arange(p)[None, None, None, :, None]
  r = np.arange(ki)[None, None, None, None, :]
  pos = ((b * A + a) * ki + r) * C + c
  return np.broadcast_to(pos, (A, ko, C, p, ki)).reshape(A * ko * C, p * ki)


def _classify_src(src: np.ndarray, n_in: int) -> tuple[str, tuple[int, int] | None]:
  length = src.size
  if length == n_in and np.array_equal(src, np.arange(length)):
    return "identity", None
  if length == n_in:
    for g1 in _divisors(length)[1:-1]:
      g2 = length // g1
      if np.array_equal(src, np.arange(length).reshape(g1, g2).T.ravel()):
        return "transpose", (g1, g2)
  return "gather", None


def detect_stage(table: np.ndarray, skip: np.ndarray | None, n_in: int) -> StagePlan | str:
  """Returns the stage's :class:`StagePlan`, or a string saying why it is not block structured."""
  n_out, f = table.shape
  same = np.nonzero((table == table[0]).all(axis=1))[0]
  if same.size == 1:
    return "its rows do not form groups sharing one input list (row 0 is unique)"
  C = int(same[1])
  # Wrapped (rectangular) inputs can make rows of other groups repeat row 0's list: the group is
  # the longest stride-C prefix; every candidate is verified against the whole table below.
  prefix = int(np.argmin(np.append(same == np.arange(same.size) * C, False)))
  best = None
  for ko in range(prefix, 1, -1):
    if n_out % (ko * C):
      continue
    A = n_out // (ko * C)
    for p in _divisors(f):
      ki = f // p
      pos = _positions(p, A, ko, ki, C)
      src = np.full(p * A * ki * C, -1, np.int64)
      src[pos] = table
      if (src < 0).any() or not np.array_equal(src[pos], table):
        continue
      kind, tr = _classify_src(src, n_in)
      rank = {"identity": 0, "transpose": 1, "gather": 2}[kind]
      if best is None or rank < best[0]:
        best = (rank, p, ki, src, kind, tr, ko, A)
      if rank == 0:
        break
    if best is not None:
      break
  if best is None:
    return f"no block decomposition with stride C={C} reproduces the table"
  _, p, ki, src, kind, tr, ko, A = best
  skip_mode, skip_r = None, 0
  if skip is not None:
    skip_r = int(skip.shape[1])
    lanes = np.arange(skip_r)[None, :] * n_out + np.arange(n_out)[:, None]
    if skip_r * n_out <= src.size and np.array_equal(skip, src[lanes]):
      skip_mode = "u"
    elif np.array_equal(skip, lanes % n_in):
      skip_mode = "h"
    else:
      return "its skip table is neither a home-lane of the gathered input nor of the stage input"
  return StagePlan(
    n_in=n_in,
    n_out=n_out,
    p=p,
    A=A,
    ko=ko,
    ki=ki,
    C=C,
    src_kind=kind,
    src=src.astype(np.int32),
    transpose=tr,
    skip_mode=skip_mode,
    skip_r=skip_r,
  )


@functools.lru_cache(maxsize=256)
def plan_topology(topology: Topology) -> Plan:
  """Block structure of every stage of ``topology`` (cached; the topology is hashable)."""
  stages = []
  for s, (table, skip, n_in) in enumerate(
    zip(topology.stages, topology.skips, topology.stage_n_in)
  ):
    if table.shape[1] > 4096:
      return Plan(None, f"stage {s} has fan-in {table.shape[1]} > 4096")
    result = detect_stage(np.asarray(table), None if skip is None else np.asarray(skip), n_in)
    if isinstance(result, str):
      return Plan(None, f"stage {s} of {topology.name}: {result}")
    stages.append(result)
  kinds = sorted({f"{st.ko}x{st.p * st.ki}" for st in stages})
  return Plan(tuple(stages), f"every stage is block structured (blocks {', '.join(kinds)})")


# ---------------------------------------------------------------------------------------------
# Merge planner: which runs of square stages become one block stage (used by xla_blocked, the
# Pallas glue and the dispatcher, so it lives here rather than in one kernel).


def _mergeable(run: list[StagePlan], nxt: StagePlan, max_merge: int) -> bool:
  """Can ``nxt`` join ``run`` so that the product is one block of edge <= max_merge?"""
  lo = min(s.C for s in run + [nxt])
  hi = max(s.C * s.ko for s in run + [nxt])
  n = nxt.n_out
  if hi // lo > max_merge or n % hi or any(s.C % lo or hi % (s.C * s.ko) for s in run + [nxt]):
    return False
  # The digit ranges [C, C * ko) must cover [lo, hi) without a gap.
  covered = sorted((s.C, s.C * s.ko) for s in run + [nxt])
  reach = lo
  for start, end in covered:
    if start > reach:
      return False
    reach = max(reach, end)
  return reach == hi


def merge_groups(stages: Sequence[StagePlan], max_merge: int) -> list[list[int]]:
  """Greedy runs of consecutive stage indices whose product is one block (see ``_mergeable``)."""
  groups: list[list[int]] = []
  for s, sp in enumerate(stages):
    if (
      groups
      and sp.square_identity
      and all(stages[i].square_identity for i in groups[-1])
      and stages[groups[-1][0]].n_out == sp.n_out
      and _mergeable([stages[i] for i in groups[-1]], sp, max_merge)
    ):
      groups[-1].append(s)
    else:
      groups.append([s])
  return groups


def merged_plan(stages: Sequence[StagePlan]) -> StagePlan:
  """The single block stage equal to a mergeable run of square stages."""
  lo = min(s.C for s in stages)
  k = max(s.C * s.ko for s in stages) // lo
  n = stages[0].n_out
  return dataclasses.replace(
    stages[0], A=n // (k * lo), ko=k, ki=k, C=lo, p=1, skip_mode=None, skip_r=0, src=np.arange(n)
  )


def program_plans(stages: Sequence[StagePlan], max_merge: int) -> list[StagePlan]:
  """The plans ``xla_blocked.build_program`` runs (merged), without weights."""
  out = []
  for group in merge_groups(stages, max_merge):
    first = stages[group[0]]
    single = len(group) == 1 and not (first.square_identity and first.skip_mode)
    out.append(first if single else merged_plan([stages[i] for i in group]))
  return out
