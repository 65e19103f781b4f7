"""Sparse-cascade topologies as static numpy index tables.

A *topology* is fixed before training, so it is built once, in numpy, as integer tables that
every other part of the project reads (kernels, layers, data-free scoring, the hardware model).

Conventions (used throughout the project):

* Activations are row vectors: a stage maps ``h: [batch, n_in_s]`` to ``[batch, n_out_s]``.
* ``stages[s]`` is the *gather* table ``int32[n_out_s, fan_in_s]``: output lane ``j`` of stage
  ``s`` computes ``sum_r W_s[j, r] * h[:, stages[s][j, r]]``. ``W_s`` has the table's shape.
* ``skips[s]`` is ``None`` or an ``int32[n_out_s, r_s]`` table of fixed, unweighted skip edges:
  lane ``j`` additionally receives ``mean_t h[:, skips[s][j, t]]`` (coefficient ``1/r_s``).
* ``scatters[s]`` is the transpose of ``stages[s]``: ``int32[n_in_s, max_fan_out_s]`` of flat
  indices ``j * fan_in_s + r`` into ``W_s``, padded with the sentinel ``n_out_s * fan_in_s``.
  The backward pass ``dx = g @ M_s^T`` reads it (``kernels.xla_gather``). ``skip_scatters[s]``
  is the same transpose of ``skips[s]`` (flat indices ``j * r_s + t``, sentinel ``n_out_s * r_s``).

Skip connections (``skip=True``) attach to *every* stage: output lane ``j`` of stage ``s`` also
receives its "home" lane ``j mod n_in_s`` of the stage input, i.e. an identity residual
``h_{s+1} = M_s h_s + h_s`` on square stages. ``parallel_butterfly`` differs only in its
branch-aware home lanes (see :func:`_parallel_butterfly`).

Rectangular layers (``n_in != n``) read the stage-0 "virtual lane" ``v`` from input
``v mod n_in`` (inputs wrap around), so every input is used and every output keeps its fan-in.
Families whose first stage would drop inputs (``n_in > n``) refuse with a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

FAMILIES = ("butterfly", "parallel_butterfly", "clos", "random", "block_diagonal", "dense")

# Upper bound on the number of table entries make() will build (int32, so 1 GiB of tables).
MAX_TABLE_ENTRIES = 1 << 28


@dataclasses.dataclass(frozen=True, eq=False)
class Topology:
  """A cascade of sparse stages, as static index tables.

  Attributes:
    name: family name, one of ``FAMILIES``.
    spec: the normalised construction parameters (all defaults filled in), as sorted pairs.
    n_in: input width of the cascade.
    n_out: output width of the cascade.
    stages: per stage, the gather table ``int32[n_out_s, fan_in_s]`` (read-only).
    skips: per stage, ``None`` or the skip table ``int32[n_out_s, r_s]`` (read-only).
    stage_n_in: per stage, the width ``n_in_s`` of the stage's input.
  """

  name: str
  spec: tuple[tuple[str, Any], ...]
  n_in: int
  n_out: int
  stages: tuple[np.ndarray, ...]
  skips: tuple[np.ndarray | None, ...]
  stage_n_in: tuple[int, ...]

  # Equality and hashing use the spec: building the same spec twice gives equal tables, and a
  # jitted function that takes a Topology as a static argument specialises once per spec.
  def __eq__(self, other: object) -> bool:
    if not isinstance(other, Topology):
      return NotImplemented
    return (self.name, self.spec) == (other.name, other.spec)

  def __hash__(self) -> int:
    return hash((self.name, self.spec))

  def __repr__(self) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in self.spec)
    return f"Topology({self.name}, {params}; depth={self.depth}, params={self.num_params})"

  @property
  def depth(self) -> int:
    """Number of sparse stages (sublayers)."""
    return len(self.stages)

  @property
  def fan_in(self) -> tuple[int, ...]:
    """Weighted fan-in of each stage (skip edges not counted)."""
    return tuple(int(t.shape[1]) for t in self.stages)

  @property
  def stage_n_out(self) -> tuple[int, ...]:
    """Output width of each stage."""
    return tuple(int(t.shape[0]) for t in self.stages)

  @property
  def num_params(self) -> int:
    """Number of trainable weights (table entries), biases excluded."""
    return int(sum(t.size for t in self.stages))

  @property
  def has_skip(self) -> bool:
    return any(s is not None for s in self.skips)

  @property
  def density(self) -> float:
    """``num_params`` as a fraction of a dense ``n_in x n_out`` layer."""
    return self.num_params / (self.n_in * self.n_out)

  @functools.cached_property
  def scatters(self) -> tuple[np.ndarray, ...]:
    """Per stage, the transposed table ``int32[n_in_s, max_fan_out_s]`` (see module doc)."""
    return tuple(_transpose_table(table, n_in) for table, n_in in zip(self.stages, self.stage_n_in))

  @functools.cached_property
  def skip_scatters(self) -> tuple[np.ndarray | None, ...]:
    """Per stage, ``None`` or the transposed skip table ``int32[n_in_s, max_skip_fan_out_s]``."""
    return tuple(
      None if skip is None else _transpose_table(skip, n_in)
      for skip, n_in in zip(self.skips, self.stage_n_in)
    )

  @functools.cached_property
  def fingerprint(self) -> str:
    """SHA-256 of all tables: identical for any two topologies with identical wiring."""
    digest = hashlib.sha256()
    for table, skip in zip(self.stages, self.skips):
      digest.update(np.ascontiguousarray(table).tobytes())
      digest.update(b"|" + str(table.shape).encode())
      if skip is not None:
        digest.update(b"s" + np.ascontiguousarray(skip).tobytes())
    return digest.hexdigest()

  def params(self) -> dict[str, Any]:
    """The spec as a dict (for logging and CSV rows)."""
    return dict(self.spec)


def _transpose_table(table: np.ndarray, n_in: int) -> np.ndarray:
  """Gather table ``[n_out, f]`` -> padded scatter table ``[n_in, max_fan_out]``."""
  n_out, fan_in = table.shape
  flat_src = table.reshape(-1)
  order = np.argsort(flat_src, kind="stable")
  counts = np.bincount(flat_src, minlength=n_in)
  width = max(int(counts.max(initial=0)), 1)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.arange(flat_src.size) - np.repeat(starts, counts)
  out = np.full((n_in, width), n_out * fan_in, dtype=np.int32)
  out[flat_src[order], rank] = order.astype(np.int32)
  out.setflags(write=False)
  return out


# ---------------------------------------------------------------------------------------------
# Parameter validation


def _check_int(name: str, value: Any, *, minimum: int, hint: str = "") -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name}={value!r} must be an integer >= {minimum}{hint}")
  if value < minimum:
    raise ValueError(f"{name}={value!r} must be >= {minimum}{hint}")
  return int(value)


def _exact_log(n: int, radix: int) -> int | None:
  m, p = 0, 1
  while p < n:
    p *= radix
    m += 1
  return m if p == n else None


def _power_hint(n: int, radix: int) -> str:
  low = radix ** max(int(math.floor(math.log(n, radix) + 1e-9)), 1)
  high = low * radix
  if low > n:
    low, high = low // radix, low
  return f"n must be a power of radix={radix}; nearest valid n: {max(low, radix)} or {high}"


# ---------------------------------------------------------------------------------------------
# Builders. Each returns (stages, skips, stage_n_in) for output width n and input width n_in.

Tables = tuple[list[np.ndarray], list[np.ndarray | None], list[int]]


def _digit_partners(width: int, radix: int, digit: int) -> np.ndarray:
  """``int[width, radix]``: the lanes that differ from lane v only in base-``radix`` digit."""
  lanes = np.arange(width)
  stride = radix**digit
  base = lanes - ((lanes // stride) % radix) * stride
  return base[:, None] + np.arange(radix)[None, :] * stride


def _home_skips(stage_n_out: list[int], stage_n_in: list[int]) -> list[np.ndarray]:
  """Identity skip edges: output lane j of each stage also receives input lane j mod n_in_s."""
  return [(np.arange(n_out) % n_in)[:, None] for n_out, n_in in zip(stage_n_out, stage_n_in)]


def _refuse_wider_input(family: str, n: int, n_in: int) -> None:
  if n_in > n:
    raise ValueError(
      f"n_in={n_in} > n={n}: the first {family} stage would drop inputs; use n_in <= n, "
      "or the 'random' or 'dense' family for a narrowing layer"
    )


def _butterfly(n: int, n_in: int, *, radix: int, depth: int, skip: bool) -> Tables:
  """Radix-k butterfly: stage s mixes the lanes that differ in base-k digit ``s mod log_k(n)``.

  With ``depth == log_k(n)`` there is exactly one path between every input and output.
  """
  m = _exact_log(n, radix)
  assert m is not None
  stages = []
  for s in range(depth):
    table = _digit_partners(n, radix, s % m)
    stages.append(table % n_in if s == 0 else table)
  stage_n_in = [n_in] + [n] * (depth - 1)
  skips = _home_skips([n] * depth, stage_n_in) if skip else [None] * depth
  return stages, skips, stage_n_in


def _parallel_butterfly(
  n: int, n_in: int, *, radix: int, width: int, depth: int, skip: bool, seed: int
) -> Tables:
  """``width`` radix-k butterflies side by side, each behind its own input permutation.

  Construction (p = width, N = n, lanes of the hidden stages = p * N, branch b owns lanes
  ``[b*N, (b+1)*N)``):

  * Branch b first permutes the (wrapped) input: ``u_b[v] = x[pi_b(v) mod n_in]``, where
    ``pi_0`` is the identity and ``pi_1..pi_{p-1}`` are distinct permutations of ``range(N)``
    drawn from ``numpy.random.default_rng(seed)``. The permutation is folded into the stage-0
    gather table, so it costs nothing at run time.
  * Each branch is a radix-k butterfly (stage s mixes digit ``s mod log_k N``).
  * The branches are summed by the last stage: output j gathers the k butterfly partners of
    lane j in every branch, so the last stage has fan-in ``k * p`` and the others fan-in k.
  * Skip edges (``skip=True``): hidden lane (b, v) receives its branch-home lane
    ``u_b[v]`` on stage 0 and lane (b, v) on hidden stages; output j of the last stage
    receives the mean of lanes (b, j) over the p branches (coefficient ``1/p``).

  At ``depth == log_k(N)`` and without skips every input reaches every output along exactly
  p paths, one per branch. ``width=1`` is the plain butterfly.
  """
  m = _exact_log(n, radix)
  assert m is not None
  rng = np.random.default_rng(seed)
  perms = [np.arange(n)]
  while len(perms) < width:
    candidate = rng.permutation(n)
    if not any(np.array_equal(candidate, p) for p in perms):
      perms.append(candidate)
  perms_arr = np.stack(perms)  # [p, N]
  branch_offset = (np.arange(width) * n)[:, None, None]  # [p, 1, 1]

  stages, skips, stage_n_in = [], [], []
  for s in range(depth):
    partners = _digit_partners(n, radix, s % m)  # [N, k]
    first, last = s == 0, s == depth - 1
    if first:
      src = perms_arr[:, partners] % n_in  # [p, N, k]: read the permuted, wrapped input
      home = perms_arr % n_in  # [p, N]
    else:
      src = partners[None] + branch_offset
      home = np.arange(width * n).reshape(width, n)
    if last:  # sum the branches: [N, p * k]
      table = src.transpose(1, 0, 2).reshape(n, width * radix)
      skip_table = home.T  # [N, p]
    else:
      table = src.reshape(width * n, radix)
      skip_table = home.reshape(width * n, 1)
    stages.append(table)
    skips.append(skip_table if skip else None)
    stage_n_in.append(n_in if first else width * n)
  return stages, skips, stage_n_in


def _clos(n: int, n_in: int, *, radix: int, width: int, skip: bool) -> Tables:
  """Three-stage Clos network C(m, c, r) as in ClosNets: r = n / c ingress switches of c inputs.

  * Stage 0 (ingress): lane (i, k), i < r, k < m, gathers the c inputs of block i.
  * Stage 1 (middle): lane (k, j) of middle switch k gathers lane (i, k) of every ingress i.
  * Stage 2 (egress): output (j, t), t < c, gathers lane (k, j) of every middle switch k.

  ``radix`` is the switch size c, ``width`` the number m of middle switches. Every input
  reaches every output along exactly m paths; m >= c is rearrangeably non-blocking.
  """
  c, m = radix, width
  r = n // c
  i, k = np.divmod(np.arange(r * m), m)
  ingress = (i[:, None] * c + np.arange(c)[None, :]) % n_in  # [r*m, c]
  k2, j2 = np.divmod(np.arange(m * r), r)
  middle = np.arange(r)[None, :] * m + k2[:, None]  # [m*r, r]
  j3 = np.arange(n) // c
  egress = np.arange(m)[None, :] * r + j3[:, None]  # [n, m]
  stages = [ingress, middle, egress]
  stage_n_in = [n_in, r * m, m * r]
  skips = _home_skips([r * m, m * r, n], stage_n_in) if skip else [None] * 3
  return stages, skips, stage_n_in


def _random(n: int, n_in: int, *, fan_in: int, depth: int, skip: bool, seed: int) -> Tables:
  """Each output of each stage gathers ``fan_in`` distinct inputs, uniformly, seeded."""
  rng = np.random.default_rng(seed)
  stages, stage_n_in = [], []
  for s in range(depth):
    width_in = n_in if s == 0 else n
    if fan_in * fan_in <= width_in:
      # Few collisions expected (birthday bound): redraw rows with a repeat until none has.
      table = rng.integers(0, width_in, size=(n, fan_in))
      while True:
        ordered = np.sort(table, axis=1)
        bad = np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0]
        if bad.size == 0:
          break
        table[bad] = rng.integers(0, width_in, size=(bad.size, fan_in))
    else:
      # Dense-ish rows: the fan_in smallest of width_in random keys, in row blocks.
      rows = max(1, (1 << 22) // width_in)
      ordered = np.concatenate(
        [
          np.sort(
            np.argpartition(rng.random((min(rows, n - r), width_in)), fan_in - 1, axis=1)[
              :, :fan_in
            ],
            axis=1,
          )
          for r in range(0, n, rows)
        ]
      )
    stages.append(ordered)
    stage_n_in.append(width_in)
  skips = _home_skips([n] * depth, stage_n_in) if skip else [None] * depth
  return stages, skips, stage_n_in


def _block_diagonal(n: int, n_in: int, *, radix: int, depth: int, skip: bool) -> Tables:
  """Monarch-style: each stage is block-diagonal (blocks of ``radix``) after a stride permutation.

  Stage 0 applies the blocks to the (wrapped) input directly. Every later stage first applies
  the stride permutation P (view the lanes as ``[n / radix, radix]`` and transpose), then the
  blocks; P is folded into the gather table. Two stages with ``radix**2 == n`` are a Monarch
  matrix ``B P B``; ``n == radix**m`` with m stages connects every pair exactly once.
  """
  lanes = np.arange(n)
  block_cols = (lanes // radix * radix)[:, None] + np.arange(radix)[None, :]  # [n, radix]
  groups = n // radix
  stride_perm = (lanes % groups) * radix + lanes // groups  # u[q] = h[stride_perm[q]]
  stages = [block_cols % n_in] + [stride_perm[block_cols] for _ in range(depth - 1)]
  stage_n_in = [n_in] + [n] * (depth - 1)
  skips = _home_skips([n] * depth, stage_n_in) if skip else [None] * depth
  return stages, skips, stage_n_in


def _dense(n: int, n_in: int, *, depth: int, skip: bool) -> Tables:
  """Dense stages (fan-in = stage input width): the reference the sparse families approximate."""
  stage_n_in = [n_in] + [n] * (depth - 1)
  stages = [np.broadcast_to(np.arange(w), (n, w)) for w in stage_n_in]
  skips = _home_skips([n] * depth, stage_n_in) if skip else [None] * depth
  return stages, skips, stage_n_in


# ---------------------------------------------------------------------------------------------
# Spec normalisation: fills defaults and validates each family's parameters.


def _normalise(name: str, n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  allowed = {
    "butterfly": {"radix", "depth", "skip"},
    "parallel_butterfly": {"radix", "width", "depth", "skip", "seed"},
    "clos": {"radix", "width", "depth", "skip"},
    "random": {"fan_in", "depth", "skip", "seed"},
    "block_diagonal": {"radix", "depth", "skip"},
    "dense": {"depth", "skip"},
  }[name]
  unknown = sorted(set(params) - allowed)
  if unknown:
    raise ValueError(
      f"{name!r} does not take {', '.join(f'{k}=' for k in unknown)}; "
      f"it accepts: {', '.join(sorted(allowed))}"
    )
  spec: dict[str, Any] = {}
  skip = params.get("skip", False)
  if not isinstance(skip, (bool, np.bool_)):
    raise ValueError(f"skip={skip!r} must be True or False")
  spec["skip"] = bool(skip)

  if name in ("butterfly", "parallel_butterfly"):
    radix = _check_int("radix", params.get("radix", 2), minimum=2)
    m = _exact_log(n, radix)
    if m is None or m == 0:
      raise ValueError(f"n={n} is not a power of radix={radix}: {_power_hint(n, radix)}")
    _refuse_wider_input(name, n, n_in)
    spec["radix"] = radix
    spec["depth"] = _check_int("depth", params.get("depth", m), minimum=1)
    if name == "parallel_butterfly":
      width = _check_int("width", params.get("width", 2), minimum=1)
      if width > math.factorial(min(n, 20)):
        raise ValueError(f"width={width} exceeds the {n}! distinct input permutations of n={n}")
      spec["width"] = width
      spec["seed"] = _check_int("seed", params.get("seed", 0), minimum=0)
  elif name == "clos":
    default_c = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    radix = _check_int("radix", params.get("radix", default_c), minimum=1)
    if n % radix:
      divisors = [d for d in range(2, min(n, 4096) + 1) if n % d == 0][:8]
      raise ValueError(f"radix={radix} must divide n={n} (switch size); try one of {divisors}")
    _refuse_wider_input(name, n, n_in)
    spec["radix"] = radix
    spec["width"] = _check_int("width", params.get("width", radix), minimum=1)
    depth = params.get("depth", 3)
    if depth != 3:
      raise ValueError(f"depth={depth!r} is not supported by 'clos', which has exactly 3 stages")
    spec["depth"] = 3
  elif name == "random":
    if "fan_in" not in params:
      raise ValueError("'random' needs fan_in=, the number of inputs each output gathers (>= 1)")
    fan_in = _check_int("fan_in", params["fan_in"], minimum=1)
    if fan_in > min(n, n_in):
      raise ValueError(
        f"fan_in={fan_in} exceeds the stage input width {min(n, n_in)} (n_in={n_in}, n={n}); "
        f"use fan_in <= {min(n, n_in)}"
      )
    spec["fan_in"] = fan_in
    default_depth = (
      max(1, math.ceil(math.log(max(n, n_in)) / math.log(fan_in))) if fan_in > 1 else 1
    )
    spec["depth"] = _check_int("depth", params.get("depth", default_depth), minimum=1)
    spec["seed"] = _check_int("seed", params.get("seed", 0), minimum=0)
  elif name == "block_diagonal":
    default_b = math.isqrt(n) if math.isqrt(n) ** 2 == n else 2
    radix = _check_int("radix", params.get("radix", default_b), minimum=2)
    if n % radix:
      raise ValueError(f"radix={radix} must divide n={n} (the block size); n % radix = {n % radix}")
    _refuse_wider_input(name, n, n_in)
    spec["radix"] = radix
    default_depth = max(1, math.ceil(math.log(n) / math.log(radix) - 1e-9))
    spec["depth"] = _check_int("depth", params.get("depth", default_depth), minimum=1)
  else:  # dense
    spec["depth"] = _check_int("depth", params.get("depth", 1), minimum=1)
  return spec


def _spec_entries(name: str, n: int, n_in: int, spec: dict[str, Any]) -> int:
  """Exact number of weights (table entries) of a normalised spec, from the builders' shapes."""
  depth = spec["depth"]
  if name in ("butterfly", "block_diagonal"):
    return n * spec["radix"] * depth
  if name == "parallel_butterfly":  # hidden [width*n, k] stages, last [n, k*width]
    return n * spec["radix"] * spec["width"] * depth
  if name == "clos":  # ingress [r*m, c], middle [m*r, r], egress [n, m] with r = n / c
    r, m = n // spec["radix"], spec["width"]
    return r * m * spec["radix"] + m * r * r + n * m
  if name == "random":
    return n * spec["fan_in"] * depth
  return n * (n_in + n * (depth - 1))  # dense


def num_params_of(name: str, n: int, *, n_in: int | None = None, **params: Any) -> int:
  """``make(name, n, n_in=n_in, **params).num_params`` without building the tables.

  Validates like :func:`make` (same ``ValueError``s), so it can screen candidates cheaply.
  """
  if name not in _BUILDERS:
    raise ValueError(f"name={name!r} is not a topology family; choose one of {FAMILIES}")
  n = _check_int("n", n, minimum=1)
  n_in = n if n_in is None else _check_int("n_in", n_in, minimum=1)
  return _spec_entries(name, n, n_in, _normalise(name, n, n_in, params))


_BUILDERS: dict[str, Callable[..., Tables]] = {
  "butterfly": _butterfly,
  "parallel_butterfly": _parallel_butterfly,
  "clos": _clos,
  "random": _random,
  "block_diagonal": _block_diagonal,
  "dense": _dense,
}


def make(name: str, n: int, *, n_in: int | None = None, **params: Any) -> Topology:
  """Builds (or fetches from the cache) the topology ``name`` with output width ``n``.

  Args:
    name: one of ``FAMILIES``.
    n: output width of the cascade (and the width of its hidden stages).
    n_in: input width (default ``n``); e.g. ``make("butterfly", 1024, n_in=784)``.
    **params: family parameters: ``radix=`` (butterfly radix, Clos switch size, block size),
      ``depth=`` (number of stages), ``width=`` (parallel branches, Clos middle switches),
      ``fan_in=`` (random), ``seed=``, ``skip=``.

  Returns:
    A cached, hashable :class:`Topology`; equal specs return the same object.

  Raises:
    ValueError: naming the bad parameter, its value and what would work.

  Example:
    >>> t = make("parallel_butterfly", n=1024, radix=2, width=4, skip=True)
    >>> t.depth, t.num_params
    (10, 81920)
  """
  if name not in _BUILDERS:
    raise ValueError(f"name={name!r} is not a topology family; choose one of {FAMILIES}")
  n = _check_int("n", n, minimum=1)
  n_in = n if n_in is None else _check_int("n_in", n_in, minimum=1)
  spec = _normalise(name, n, n_in, params)
  entries = _spec_entries(name, n, n_in, spec)
  if entries > MAX_TABLE_ENTRIES:
    raise ValueError(
      f"{name} with n={n}, n_in={n_in}, {spec} would need {entries:,} table entries "
      f"(limit {MAX_TABLE_ENTRIES:,}); reduce n, depth, fan_in or width"
    )
  return _build_cached(name, n, n_in, tuple(sorted(spec.items())))


@functools.lru_cache(maxsize=256)
def _build_cached(name: str, n: int, n_in: int, spec: tuple[tuple[str, Any], ...]) -> Topology:
  kwargs = dict(spec)
  if name in ("clos",):
    kwargs.pop("depth")
  stages, skips, stage_n_in = _BUILDERS[name](n, n_in, **kwargs)
  frozen_stages = tuple(_freeze(t) for t in stages)
  frozen_skips = tuple(None if s is None else _freeze(s) for s in skips)
  full_spec = tuple(sorted((("n", n), ("n_in", n_in)) + spec))
  return Topology(
    name=name,
    spec=full_spec,
    n_in=n_in,
    n_out=n,
    stages=frozen_stages,
    skips=frozen_skips,
    stage_n_in=tuple(int(w) for w in stage_n_in),
  )


def _freeze(table: np.ndarray) -> np.ndarray:
  out = np.ascontiguousarray(table, dtype=np.int32)
  out.setflags(write=False)
  return out


# ---------------------------------------------------------------------------------------------
# Path statistics by sparse propagation.


def _max_count_bound(t: Topology) -> float:
  """Upper bound on any path count: product over stages of the largest row (weights + skips)."""
  bound = 1.0
  for table, skip in zip(t.stages, t.skips):
    bound *= table.shape[1] + (0 if skip is None else skip.shape[1])
  return bound


def _propagate(t: Topology, first: int, count: int, dtype: np.dtype) -> np.ndarray:
  """Path counts from inputs ``[first, first+count)`` to every output: ``[n_out, count]``.

  Works lane-major (``[lanes, inputs]``) so each stage is a row gather plus adds: memory
  ``O(lanes * count)``, time ``O(edges * count)``; no ``n x n`` products.
  """
  counts = np.zeros((t.n_in, count), dtype=dtype)
  counts[first + np.arange(count), np.arange(count)] = 1
  for table, skip in zip(t.stages, t.skips):
    nxt = counts[table[:, 0]]
    for r in range(1, table.shape[1]):
      nxt += counts[table[:, r]]
    if skip is not None:
      for r in range(skip.shape[1]):
        nxt += counts[skip[:, r]]
    counts = nxt
  return counts


def _count_dtype(t: Topology) -> np.dtype:
  """Smallest unsigned type that holds every count: propagation is memory bound."""
  bound = _max_count_bound(t)
  for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
    if bound <= np.iinfo(dtype).max:
      return np.dtype(dtype)
  return np.dtype(np.float64)


def _input_chunks(
  t: Topology, dtype: np.dtype, budget_bytes: int = 4 << 20
) -> Iterator[tuple[int, int]]:
  """Input ranges small enough that one ``[lanes, chunk]`` buffer stays in cache."""
  lanes = max([t.n_in, *t.stage_n_out, *t.stage_n_in])
  chunk = max(16, min(t.n_in, budget_bytes // (lanes * dtype.itemsize)))
  for first in range(0, t.n_in, chunk):
    yield first, min(chunk, t.n_in - first)


def path_counts(t: Topology) -> np.ndarray:
  """Number of distinct paths (weighted and skip edges) from each input to each output.

  Args:
    t: the topology.

  Returns:
    ``int64[n_in, n_out]``. For a radix-k butterfly of depth ``log_k n`` every entry is 1.

  Raises:
    OverflowError: when counts may exceed int64 (use :func:`path_stats`, which uses floats).
  """
  dtype = _count_dtype(t)
  if dtype == np.float64:
    raise OverflowError(
      f"path counts of {t} may reach {_max_count_bound(t):.3g} > int64; use path_stats()"
    )
  out = np.empty((t.n_in, t.n_out), dtype=np.int64)
  for first, count in _input_chunks(t, dtype):
    out[first : first + count] = _propagate(t, first, count, dtype).T
  return out


@dataclasses.dataclass(frozen=True)
class PathStats:
  """Path-count statistics of a topology (over all input/output pairs).

  Attributes:
    connectivity: fraction of (input, output) pairs joined by at least one path.
    mean, min, max: path count per pair.
    cv: coefficient of variation (std / mean) of the path counts; 0 for perfectly uniform.
    entropy: mean over outputs of the normalised entropy (in [0, 1]) of the distribution of
      that output's paths over inputs; 1 means every input contributes equally many paths.
    fan_in: weighted fan-in per stage.
    num_params: trainable weights.
    depth: number of stages.
    heatmap: path counts block-averaged to at most ``heatmap_size`` per side, ``float64[a, b]``.
  """

  connectivity: float
  mean: float
  min: float
  max: float
  cv: float
  entropy: float
  fan_in: tuple[int, ...]
  num_params: int
  depth: int
  heatmap: np.ndarray = dataclasses.field(repr=False)

  def as_dict(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out.pop("heatmap")
    out["fan_in"] = list(self.fan_in)
    return out


def _block_reduce(values: np.ndarray, size: int, axis: int) -> np.ndarray:
  """Averages ``values`` along ``axis`` into ``size`` nearly equal bins."""
  edges = np.linspace(0, values.shape[axis], size + 1).astype(int)
  sums = np.add.reduceat(values, edges[:-1], axis=axis)
  widths = np.diff(edges).reshape([-1 if a == axis else 1 for a in range(values.ndim)])
  return sums / widths


def path_stats(t: Topology, heatmap_size: int = 256) -> PathStats:
  """Streams :func:`path_counts` over input chunks and summarises it without storing it."""
  dtype = _count_dtype(t)
  rows = min(heatmap_size, t.n_in)
  cols = min(heatmap_size, t.n_out)
  row_edges = np.linspace(0, t.n_in, rows + 1).astype(int)
  heat = np.zeros((rows, cols))
  total = total_sq = 0.0
  nonzero = 0
  low, high = math.inf, -math.inf
  plogp = np.zeros(t.n_out)
  # c*log(c) by table lookup when counts are small integers (the common case), else directly.
  xlogx_table = None
  if dtype.itemsize <= 2:
    values = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
    xlogx_table = values * np.log(np.maximum(values, 1))
  for first, count in _input_chunks(t, dtype):
    lane_major = _propagate(t, first, count, dtype)  # [n_out, count]
    total += lane_major.sum(dtype=np.float64)
    total_sq += np.square(lane_major, dtype=np.float64).sum()
    nonzero += int(np.count_nonzero(lane_major))
    low, high = min(low, float(lane_major.min())), max(high, float(lane_major.max()))
    if xlogx_table is not None:
      plogp += xlogx_table[lane_major].sum(1)
    else:
      as_float = lane_major.astype(np.float64)
      plogp += (as_float * np.log(np.maximum(as_float, 1))).sum(1)
    col_means = _block_reduce(lane_major.T.astype(np.float64), cols, axis=1)  # [count, cols]
    row_of = np.searchsorted(row_edges, first + np.arange(count), side="right") - 1
    np.add.at(heat, row_of, col_means)
  heat /= np.diff(row_edges)[:, None]
  pairs = t.n_in * t.n_out
  mean = total / pairs
  var = max(total_sq / pairs - mean**2, 0.0)
  col_total = _column_totals(t)
  with np.errstate(divide="ignore", invalid="ignore"):
    entropy = np.where(col_total > 0, np.log(col_total) - plogp / col_total, 0.0)
  norm = math.log(t.n_in) if t.n_in > 1 else 1.0
  return PathStats(
    connectivity=nonzero / pairs,
    mean=float(mean),
    min=float(low),
    max=float(high),
    cv=float(math.sqrt(var) / mean) if mean > 0 else math.inf,
    entropy=float(np.mean(entropy) / norm) if t.n_in > 1 else 1.0,
    fan_in=t.fan_in,
    num_params=t.num_params,
    depth=t.depth,
    heatmap=heat,
  )


def _column_totals(t: Topology) -> np.ndarray:
  """Total paths into each output, ``float64[n_out]`` (propagates a ones vector)."""
  counts = np.ones(t.n_in)
  for table, skip in zip(t.stages, t.skips):
    nxt = counts[table].sum(1)
    if skip is not None:
      nxt += counts[skip].sum(1)
    counts = nxt
  return counts


if __name__ == "__main__":
  # The report CLI lives above this module (nf_jax.topology_report imports it); importing it
  # from here would make the two modules import each other.
  raise SystemExit(
    "the topology report moved: run `python -m nf_jax.topology_report --name=... --n=...` "
    "(same flags)"
  )
