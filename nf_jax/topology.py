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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

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
  if radix < 2:
    return None
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
# The family registry: every rule about a family (its parameters and their defaults, its weight
# count, its builder, which radices are valid at a width, how the proxy rescales it) lives in
# its Family record. Other modules read families only through `family(name)`.


def _exact_radices(n: int) -> tuple[int, ...]:
  """Every radix k >= 2 with n an exact power of k (n itself included), ascending."""
  out = set()
  for m in range(1, max(n, 2).bit_length() + 1):
    root = round(n ** (1.0 / m))
    for k in (root - 1, root, root + 1):  # float roots may be off by one
      if k >= 2 and k**m == n:
        out.add(k)
  return tuple(sorted(out))


def _divisors(n: int, minimum: int = 1) -> tuple[int, ...]:
  """Divisors d >= minimum of n, ascending."""
  small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
  return tuple(d for d in sorted(set(small + [n // d for d in small])) if d >= minimum)


def log_depth(n: int, n_in: int, fan_in: int) -> int:
  """Stages until a fan-in-``fan_in`` cascade can reach every input: ceil(log_f max(n, n_in))."""
  return max(1, math.ceil(math.log(max(n, n_in)) / math.log(fan_in))) if fan_in > 1 else 1


def _check_radix(name: str, n: int, radix: int) -> None:
  if radix not in family(name).valid_radices(n):
    raise ValueError(f"n={n} is not a power of radix={radix}: {_power_hint(n, radix)}")


def _normalise_butterfly(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  radix = _check_int("radix", params.get("radix", 2), minimum=2)
  _check_radix("butterfly", n, radix)
  _refuse_wider_input("butterfly", n, n_in)
  depth = params.get("depth", family("butterfly").default_depth(n, n_in, radix))
  return {"radix": radix, "depth": _check_int("depth", depth, minimum=1)}


def _normalise_parallel_butterfly(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  radix = _check_int("radix", params.get("radix", 2), minimum=2)
  _check_radix("parallel_butterfly", n, radix)
  _refuse_wider_input("parallel_butterfly", n, n_in)
  depth = params.get("depth", family("parallel_butterfly").default_depth(n, n_in, radix))
  spec = {"radix": radix, "depth": _check_int("depth", depth, minimum=1)}
  width = _check_int("width", params.get("width", 2), minimum=1)
  if width > math.factorial(min(n, 20)):
    raise ValueError(f"width={width} exceeds the {n}! distinct input permutations of n={n}")
  spec["width"] = width
  spec["seed"] = _check_int("seed", params.get("seed", 0), minimum=0)
  return spec


def _normalise_clos(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  default_c = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
  radix = _check_int("radix", params.get("radix", default_c), minimum=1)
  if n % radix:
    divisors = [d for d in range(2, min(n, 4096) + 1) if n % d == 0][:8]
    raise ValueError(f"radix={radix} must divide n={n} (switch size); try one of {divisors}")
  _refuse_wider_input("clos", n, n_in)
  spec = {"radix": radix, "width": _check_int("width", params.get("width", radix), minimum=1)}
  depth = params.get("depth", 3)
  if depth != 3:
    raise ValueError(f"depth={depth!r} is not supported by 'clos', which has exactly 3 stages")
  spec["depth"] = 3
  return spec


def _normalise_random(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  if "fan_in" not in params:
    raise ValueError("'random' needs fan_in=, the number of inputs each output gathers (>= 1)")
  fan_in = _check_int("fan_in", params["fan_in"], minimum=1)
  if fan_in > min(n, n_in):
    raise ValueError(
      f"fan_in={fan_in} exceeds the stage input width {min(n, n_in)} (n_in={n_in}, n={n}); "
      f"use fan_in <= {min(n, n_in)}"
    )
  depth = params.get("depth", log_depth(n, n_in, fan_in))
  return {
    "fan_in": fan_in,
    "depth": _check_int("depth", depth, minimum=1),
    "seed": _check_int("seed", params.get("seed", 0), minimum=0),
  }


def _normalise_block_diagonal(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  default_b = math.isqrt(n) if math.isqrt(n) ** 2 == n else 2
  radix = _check_int("radix", params.get("radix", default_b), minimum=2)
  if n % radix:
    raise ValueError(f"radix={radix} must divide n={n} (the block size); n % radix = {n % radix}")
  _refuse_wider_input("block_diagonal", n, n_in)
  depth = params.get("depth", family("block_diagonal").default_depth(n, n_in, radix))
  return {"radix": radix, "depth": _check_int("depth", depth, minimum=1)}


def _normalise_dense(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  return {"depth": _check_int("depth", params.get("depth", 1), minimum=1)}


# Proxy rescaling: rebuild a topology at about fit_n lanes keeping its shape (depth in units of
# the full-mixing depth log_radix n); see nf_jax.proxy.proxy_topology for the rule.


def _nearest_power(radix: int, target: int, limit: int) -> int:
  """The power of ``radix`` (>= radix, <= limit) nearest ``target`` on a log scale."""
  powers = [radix**k for k in range(1, 64) if radix**k <= limit]
  return min(powers, key=lambda p: (abs(math.log(p / target)), p))


def shrink_radix(k: int, n: int, fit_n: int) -> int:
  """Radix k' >= 2 whose full-mixing depth at ``fit_n`` lanes matches k's at n lanes.

  ``log_k' fit_n = log_k n``, i.e. ``k' = fit_n ** (log k / log n)``, rounded; 2 when that
  falls below 2 (the depth then shrinks instead, see ``nf_jax.proxy.proxy_topology``).
  """
  return max(2, round(fit_n ** (math.log(k) / math.log(n))))


def _small_n_in(t: Topology, n_small: int) -> int | None:
  """``n_in`` keeping its ratio to ``n`` at ``n_small`` lanes (None for a square layer)."""
  return None if t.n_in == t.n_out else max(1, min(n_small, round(t.n_in * n_small / t.n_out)))


def rescale_radix(t: Topology, fit_n: int) -> Topology:
  """``Family.rescale`` of the radix families (radix or fan-in k, ``radix_param``): k becomes
  :func:`shrink_radix`, the width a power of it (``power_width``) or a multiple of it near
  ``fit_n``, the depth scales by the ratio of full-mixing depths; other parameters are kept."""
  p = t.params()
  n = t.n_out
  fam = family(t.name)
  k = p[fam.radix_param]
  if k == 1:  # fan-in 1: a single path per output at any width
    k_small, n_small = 1, fit_n
    depth = p["depth"]
  else:
    k_small = shrink_radix(k, n, fit_n)
    if fam.power_width:
      n_small = _nearest_power(k_small, fit_n, 1 << 62)
    else:
      n_small = k_small * max(1, round(fit_n / k_small))
    if n_small >= n:
      return t
    ratio = (math.log(n_small) / math.log(k_small)) / (math.log(n) / math.log(k))
    depth = max(1, round(p["depth"] * ratio))
  n_in_small = _small_n_in(t, n_small)
  if fam.radix_param == "fan_in":
    k_small = min(k_small, n_small, n_in_small or n_small)
  kw = {k_: v for k_, v in p.items() if k_ not in ("n", "n_in", "radix", "fan_in", "depth")}
  kw.update({fam.radix_param: k_small, "depth": depth})
  return make(t.name, n_small, n_in=n_in_small, **kw)


def _rescale_clos(t: Topology, fit_n: int) -> Topology:
  """Switch size c -> the divisor of ``fit_n`` nearest ``fit_n ** (log c / log n)``; m / c kept."""
  p = t.params()
  n_small = fit_n
  want = n_small ** (math.log(p["radix"]) / math.log(t.n_out)) if p["radix"] > 1 else 1.0
  low = 2 if p["radix"] > 1 else 1  # switch size 1 would make the middle stage dense
  divisors = [d for d in range(low, n_small + 1) if n_small % d == 0]
  radix = min(divisors, key=lambda d: (round(abs(math.log(d / want)), 6), d))
  width = max(1, round(p["width"] * radix / p["radix"]))  # keeps m / c
  return make(
    t.name, n_small, n_in=_small_n_in(t, n_small), radix=radix, width=width, skip=p["skip"]
  )


def _rescale_dense(t: Topology, fit_n: int) -> Topology:
  p = t.params()
  return make(t.name, fit_n, n_in=_small_n_in(t, fit_n), depth=p["depth"], skip=p["skip"])


@dataclasses.dataclass(frozen=True)
class SearchGrid:
  """The candidate-search options a family's ``search_grid`` reads (``nf_jax.topo_search``)."""

  parallel_widths: tuple[int, ...] = (2, 4, 8)
  fan_ins: tuple[int, ...] = (2, 4, 8, 16, 32)
  random_seeds: int = 1


@dataclasses.dataclass(frozen=True)
class Family:
  """Everything the project knows about one wiring rule (one record per family).

  Attributes:
    name: the family name (``make(name, ...)``).
    params: the ``make()`` parameters it accepts (``skip`` always among them).
    normalise: ``(n, n_in, params) -> spec``: validates and fills defaults (``skip`` excluded);
      raises ``ValueError`` naming the bad value.
    num_params: ``(n, n_in, spec) -> int``: exact weights of a normalised spec, unbuilt.
    build: ``(n, n_in, spec) -> (stages, skips, stage_n_in)`` tables of a normalised spec.
    narrows: whether ``n_in > n`` (a narrowing first layer) is allowed.
    seeded: whether the wiring is drawn from ``seed=`` (results rows carry ``topology_seed``).
    radix_param: the parameter :attr:`valid_radices` constrains (``radix``, ``fan_in``) or None.
    valid_radices: ``n -> ascending values of radix_param`` valid at output width ``n``.
    default_depth: ``(n, n_in, radix) -> int``: depth when ``depth=`` is not given (the
      full-mixing depth for the radix families).
    rescale: ``(t, fit_n) -> Topology``: ``t`` rebuilt at about ``fit_n < t.n_out`` lanes with
      its shape kept (``nf_jax.proxy.proxy_topology``); may return ``t`` when it cannot shrink.
    power_width: the width must be a power of the radix (the proxy rescales it to one).
    branches: ``t -> int``: independent parallel branches whose matrices sum to ``t``'s
      (``nf_jax.proxy.branches``); 1 unless the family is a sum of cascades.
    fixed_depth: the depth is not a free parameter (clos has exactly 3 stages).
    block_structured: the tables have block structure the blocked kernels exploit (False:
      models always run on the gather kernel, so ``nf_jax.train.group_specs`` may mix them).
    search_grid: ``(n, n_in, depth, skip, grid) -> [params]``: the candidates
      ``nf_jax.topo_search`` tries at one depth (fixed-depth families: at their depth), or None
      when the search does not enumerate the family. May include invalid combinations.
    search_options: the :class:`SearchGrid` fields ``search_grid`` reads (``nf_jax.topo_search``
      refuses one that is set while none of the searched families reads it).
    genome_width: ``(radix, parallel) -> width=`` for the co-design genome's parallel gene
      (``nf_jax.pareto.problem.decode_topology``), or None when the family has no width.
  """

  name: str
  params: frozenset[str]
  normalise: Callable[[int, int, dict[str, Any]], dict[str, Any]]
  num_params: Callable[[int, int, dict[str, Any]], int]
  build: Callable[[int, int, dict[str, Any]], Tables]
  narrows: bool
  seeded: bool
  radix_param: str | None
  valid_radices: Callable[[int], Sequence[int]]
  default_depth: Callable[[int, int, int], int]
  rescale: Callable[[Topology, int], Topology]
  power_width: bool = False
  branches: Callable[[Topology], int] = lambda t: 1
  fixed_depth: bool = False
  genome_width: Callable[[int, int], int] | None = None
  block_structured: bool = True
  search_grid: Callable[[int, int, int, bool, SearchGrid], list[dict[str, Any]]] | None = None
  search_options: frozenset[str] = frozenset()


_REGISTRY: dict[str, Family] = {}


def register(fam: Family) -> Family:
  """Adds ``fam`` to the registry (a name may be registered once); returns it."""
  if fam.name in _REGISTRY:
    raise ValueError(f"family {fam.name!r} is already registered")
  if "skip" not in fam.params:
    raise ValueError(f"family {fam.name!r} must accept skip= (every family takes it)")
  _REGISTRY[fam.name] = fam
  return fam


def family(name: str) -> Family:
  """The registered :class:`Family` called ``name``; ValueError listing the families if none."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(
      f"name={name!r} is not a topology family; choose one of {tuple(_REGISTRY)}"
    ) from None


def families() -> tuple[str, ...]:
  """Names of every registered family, in registration order."""
  return tuple(_REGISTRY)


def _without_depth(builder: Callable[..., Tables]) -> Callable[[int, int, dict[str, Any]], Tables]:
  def build(n: int, n_in: int, spec: dict[str, Any]) -> Tables:
    return builder(n, n_in, **{k: v for k, v in spec.items() if k != "depth"})

  return build


def _with_spec(builder: Callable[..., Tables]) -> Callable[[int, int, dict[str, Any]], Tables]:
  def build(n: int, n_in: int, spec: dict[str, Any]) -> Tables:
    return builder(n, n_in, **spec)

  return build


def _clos_grid(n: int, n_in: int, depth: int, skip: bool, g: SearchGrid) -> list[dict[str, Any]]:
  """Switch sizes within a factor 4 of sqrt(n) (the balanced Clos), m in {c/2, c, 2c}."""
  root = math.sqrt(n)
  return [
    dict(radix=c, width=m, skip=skip)
    for c in _divisors(n, minimum=2)
    if c < n and root / 4 <= c <= root * 4
    for m in sorted({max(1, c // 2), c, 2 * c})
  ]


def _clos_entries(n: int, n_in: int, s: dict[str, Any]) -> int:
  r, m = n // s["radix"], s["width"]  # ingress [r*m, c], middle [m*r, r], egress [n, m]
  return r * m * s["radix"] + m * r * r + n * m


register(
  Family(
    name="butterfly",
    params=frozenset({"radix", "depth", "skip"}),
    normalise=_normalise_butterfly,
    num_params=lambda n, n_in, s: n * s["radix"] * s["depth"],
    build=_with_spec(_butterfly),
    narrows=False,
    seeded=False,
    radix_param="radix",
    valid_radices=_exact_radices,
    default_depth=lambda n, n_in, radix: _exact_log(n, radix) or 1,
    rescale=rescale_radix,
    power_width=True,
    search_grid=lambda n, n_in, depth, skip, g: [
      dict(radix=k, depth=depth, skip=skip) for k in _exact_radices(n)
    ],
  )
)
register(
  Family(
    name="parallel_butterfly",
    params=frozenset({"radix", "width", "depth", "skip", "seed"}),
    normalise=_normalise_parallel_butterfly,
    # hidden [width*n, k] stages, last [n, k*width]
    num_params=lambda n, n_in, s: n * s["radix"] * s["width"] * s["depth"],
    build=_with_spec(_parallel_butterfly),
    narrows=False,
    seeded=True,
    radix_param="radix",
    valid_radices=_exact_radices,
    default_depth=lambda n, n_in, radix: _exact_log(n, radix) or 1,
    rescale=rescale_radix,
    power_width=True,
    # Hidden stages are block-diagonal over the branches: the matrix is a sum of width cascades.
    branches=lambda t: t.params()["width"] if t.depth >= 2 else 1,
    genome_width=lambda radix, parallel: parallel,  # parallel branches
    search_grid=lambda n, n_in, depth, skip, g: [
      dict(radix=k, width=w, depth=depth, skip=skip)
      for k in _exact_radices(n)
      for w in g.parallel_widths
    ],
    search_options=frozenset({"parallel_widths"}),
  )
)
register(
  Family(
    name="clos",
    params=frozenset({"radix", "width", "depth", "skip"}),
    normalise=_normalise_clos,
    num_params=_clos_entries,
    build=_without_depth(_clos),
    narrows=False,
    seeded=False,
    radix_param="radix",
    valid_radices=_divisors,
    default_depth=lambda n, n_in, radix: 3,
    rescale=_rescale_clos,
    fixed_depth=True,
    # m = c * parallel / 2 middle switches: parallel 2 is m = c, rearrangeably non-blocking.
    genome_width=lambda radix, parallel: max(1, radix * parallel // 2),
    search_grid=_clos_grid,
  )
)
register(
  Family(
    name="random",
    params=frozenset({"fan_in", "depth", "skip", "seed"}),
    normalise=_normalise_random,
    num_params=lambda n, n_in, s: n * s["fan_in"] * s["depth"],
    build=_with_spec(_random),
    narrows=True,
    seeded=True,
    radix_param="fan_in",
    valid_radices=lambda n: range(1, n + 1),
    default_depth=log_depth,
    rescale=rescale_radix,
    block_structured=False,
    search_grid=lambda n, n_in, depth, skip, g: [
      dict(fan_in=f, depth=depth, skip=skip, seed=s)
      for f in g.fan_ins
      if f <= min(n, n_in)
      for s in range(g.random_seeds)
    ],
    search_options=frozenset({"fan_ins", "random_seeds"}),
  )
)
register(
  Family(
    name="block_diagonal",
    params=frozenset({"radix", "depth", "skip"}),
    normalise=_normalise_block_diagonal,
    num_params=lambda n, n_in, s: n * s["radix"] * s["depth"],
    build=_with_spec(_block_diagonal),
    narrows=False,
    seeded=False,
    radix_param="radix",
    valid_radices=lambda n: _divisors(n, minimum=2),
    default_depth=lambda n, n_in, radix: max(1, math.ceil(math.log(n) / math.log(radix) - 1e-9)),
    rescale=rescale_radix,
    search_grid=lambda n, n_in, depth, skip, g: [
      dict(radix=b, depth=depth, skip=skip) for b in _divisors(n, minimum=2) if b < n
    ],
  )
)
register(
  Family(
    name="dense",
    params=frozenset({"depth", "skip"}),
    normalise=_normalise_dense,
    num_params=lambda n, n_in, s: n * (n_in + n * (s["depth"] - 1)),
    build=_with_spec(_dense),
    narrows=True,
    seeded=False,
    radix_param=None,
    valid_radices=lambda n: (),
    default_depth=lambda n, n_in, radix: 1,
    rescale=_rescale_dense,
    search_grid=lambda n, n_in, depth, skip, g: (
      [dict(depth=depth)] if depth <= 2 and not skip else []
    ),
  )
)

# The built-in families, in their historical order (public API; the pareto genome indexes it).
# Plug-ins (nf_jax/families/) are registered after it: families() lists them too.
FAMILIES = families()


def _normalise(name: str, n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  """Validates ``params`` for family ``name`` and fills its defaults (the normalised spec)."""
  fam = family(name)
  unknown = sorted(set(params) - fam.params)
  if unknown:
    raise ValueError(
      f"{name!r} does not take {', '.join(f'{k}=' for k in unknown)}; "
      f"it accepts: {', '.join(sorted(fam.params))}"
    )
  skip = params.get("skip", False)
  if not isinstance(skip, (bool, np.bool_)):
    raise ValueError(f"skip={skip!r} must be True or False")
  return {"skip": bool(skip), **fam.normalise(n, n_in, params)}


def _spec_entries(name: str, n: int, n_in: int, spec: dict[str, Any]) -> int:
  """Exact number of weights (table entries) of a normalised spec, from the builders' shapes."""
  return family(name).num_params(n, n_in, spec)


def num_params_of(name: str, n: int, *, n_in: int | None = None, **params: Any) -> int:
  """``make(name, n, n_in=n_in, **params).num_params`` without building the tables.

  Validates like :func:`make` (same ``ValueError``s), so it can screen candidates cheaply.
  """
  family(name)
  n = _check_int("n", n, minimum=1)
  n_in = n if n_in is None else _check_int("n_in", n_in, minimum=1)
  return _spec_entries(name, n, n_in, _normalise(name, n, n_in, params))


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
  family(name)
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
  stages, skips, stage_n_in = family(name).build(n, n_in, dict(spec))
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


# The spec columns of a results row (nf_jax.results.RESULT_COLUMNS): an empty cell means the
# family has no such parameter; topology_seed is the seed of the seeded families.
ROW_COLUMNS = ("name", "n", "n_in", "depth", "radix", "width", "fan_in", "skip", "topology_seed")
_INT_COLUMNS = ("depth", "radix", "width", "fan_in")


def _parse_bool(value: Any, column: str) -> bool:
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  low = str(value).strip().lower()
  if low in ("true", "1", "yes"):
    return True
  if low in ("false", "0", "no", ""):
    return False
  raise ValueError(f"{column}={value!r} is not a boolean (True/False/1/0)")


def _parse_int(value: Any, column: str) -> int:
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{column}={value!r} is not an integer") from None
  if not number.is_integer():
    raise ValueError(f"{column}={value!r} is not an integer")
  return int(number)


@dataclasses.dataclass(frozen=True)
class TopologySpec:
  """One topology as a value: family ``name``, output width ``n``, input width ``n_in``, and the
  ``make()`` parameters as given (sorted pairs; defaults are not filled in, so ``key`` is the
  same string for the same request). Frozen and hashable; validated on construction.

  ``TopologySpec("random", 1024, params={"fan_in": 4}).make()`` is
  ``make("random", 1024, fan_in=4)``.
  """

  name: str
  n: int
  n_in: int | None = None
  params: tuple[tuple[str, Any], ...] | dict[str, Any] = ()

  def __post_init__(self):
    fam = family(self.name)
    n = _check_int("n", self.n, minimum=1)
    n_in = n if self.n_in is None else _check_int("n_in", self.n_in, minimum=1)
    params = tuple(sorted(dict(self.params).items()))
    object.__setattr__(self, "n", n)
    object.__setattr__(self, "n_in", n_in)
    object.__setattr__(self, "params", params)
    _normalise(fam.name, n, n_in, dict(params))  # raises on a bad spec, before any build

  @classmethod
  def of(cls, name: str, n: int, *, n_in: int | None = None, **params: Any) -> TopologySpec:
    """``TopologySpec.of("butterfly", 1024, radix=2)``: the spec of ``make(...)``'s arguments."""
    return cls(name, n, n_in, params)

  @classmethod
  def from_topology(cls, t: Topology) -> TopologySpec:
    """The (normalised) spec that built ``t``: ``from_topology(t).make() == t``."""
    params = {k: v for k, v in t.spec if k not in ("n", "n_in")}
    return cls(t.name, t.n_out, t.n_in, params)

  @property
  def family(self) -> Family:
    return family(self.name)

  def kwargs(self) -> dict[str, Any]:
    """The ``make()`` keyword parameters (as given, defaults not filled in)."""
    return dict(self.params)

  def normalised(self) -> TopologySpec:
    """The same topology with every default filled in (equal tables, canonical params)."""
    return TopologySpec(
      self.name, self.n, self.n_in, _normalise(self.name, self.n, self.n_in, self.kwargs())
    )

  def make(self) -> Topology:
    """The :class:`Topology` (cached by :func:`make`)."""
    return make(self.name, self.n, n_in=self.n_in, **self.kwargs())

  @property
  def num_params(self) -> int:
    """Trainable weights, from the family's formula (no tables built)."""
    return num_params_of(self.name, self.n, n_in=self.n_in, **self.kwargs())

  @property
  def key(self) -> str:
    """Canonical string ``family:n:k=v,...`` (params sorted; ``n_in=`` listed when != n)."""
    items = dict(self.params)
    if self.n_in != self.n:
      items["n_in"] = self.n_in
    return f"{self.name}:{self.n}:" + ",".join(f"{k}={items[k]}" for k in sorted(items))

  def to_row(self) -> dict[str, Any]:
    """The :data:`ROW_COLUMNS` of a results row (normalised values; ``""`` where the family has
    no such parameter), as ``nf_jax.sweep.result_row`` writes them."""
    spec = _normalise(self.name, self.n, self.n_in, self.kwargs())
    row: dict[str, Any] = {"name": self.name, "n": self.n, "n_in": self.n_in}
    row.update({c: spec.get(c, "") for c in _INT_COLUMNS})
    row["skip"] = spec["skip"]
    row["topology_seed"] = spec.get("seed", "")
    return row

  @classmethod
  def from_row(cls, row: dict[str, Any]) -> TopologySpec:
    """The spec of a results row (strings as read by ``csv.DictReader``, or :meth:`to_row`).

    Empty cells are absent parameters; an empty ``n_in`` means ``n``; ``topology_seed`` is read
    for seeded families only (``Family.seeded``) and ignored for the others.

    Raises:
      ValueError: a missing column or a cell that is not a number/boolean (column named).
    """
    missing = [c for c in ("name", "n") if c not in row]
    if missing:
      raise ValueError(f"row lacks the columns {missing}; a topology row has {ROW_COLUMNS}")
    name = str(row["name"]).strip()
    fam = family(name)
    params: dict[str, Any] = {}
    for column in _INT_COLUMNS:
      cell = row.get(column, "")
      if str(cell).strip() != "":
        params[column] = _parse_int(cell, column)
    if str(row.get("skip", "")).strip() != "":
      params["skip"] = _parse_bool(row["skip"], "skip")
    seed = row.get("topology_seed", "")
    if fam.seeded and str(seed).strip() != "":
      params["seed"] = _parse_int(seed, "topology_seed")
    n_in = row.get("n_in", "")
    return cls(
      name,
      _parse_int(row["n"], "n"),
      None if str(n_in).strip() == "" else _parse_int(n_in, "n_in"),
      params,
    )


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


def _load_plugins() -> None:
  """Imports every module of :mod:`nf_jax.families`: each registers its Family."""
  import importlib
  import pkgutil

  from nf_jax import families as plugins

  for info in sorted(pkgutil.iter_modules(plugins.__path__), key=lambda i: i.name):
    importlib.import_module(f"{plugins.__name__}.{info.name}")


_load_plugins()


if __name__ == "__main__":
  # The report CLI lives above this module (nf_jax.topology_report imports it); importing it
  # from here would make the two modules import each other.
  raise SystemExit(
    "the topology report moved: run `python -m nf_jax.topology_report "
    "--config.families=... --config.n=...` (its settings: nf_jax/configs/topology_report.py)"
  )
