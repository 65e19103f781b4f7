"""A loop-order and tiling mapper for dense GEMMs and cascade stages, searched inside ``jit(vmap)``.

The dataflow (os / ws / is) is a hardware gene: it fixes which GEMM dimensions unroll over the
array rows and columns and which one streams in time (table in :mod:`nf_jax.hw.gemm`). The mapper
chooses, for each layer and each config, how the GEMM ``ofmap[M, N] = ifmap[M, K] @ filter[K, N]``
is cut into SRAM tiles and in which order the tiles are visited, the way Timeloop's mapper and
ZigZag's loop-order search do for their architectures.

Mapping space of a GEMM (enumerated as arrays, minimum taken with one ``argmin``; no Python loop
per config):

* **Tile sizes** ``(tm, tn, tk)``: a grid and capacity-filling triples. The grid: per dimension
  ``D``, the tile that splits ``D`` into ``p`` pieces, ``p`` in :data:`PIECES` (1, 2, 4, 8, 32,
  256), rounded up to a multiple of the array side that dimension unrolls over (so tiling never
  adds folds) and capped at ``D``: 6**3 = 216 triples. The capacity-filling triples
  (:func:`_capacity_tiles`, 30): one dimension's tile from the grid and the other two sized so
  that reused operand tiles fill half their SRAM exactly, which the grid's powers of two rarely
  hit when SRAMs are small. In all 3 x 246 = 738 mappings per GEMM (3 x 61 at batch 1); the
  chosen mapping is evaluated again alone (the search pass only scores). The candidate set
  depends on the config and the GEMM, never on the objective, so the latency objective's pick
  is never slower than the energy objective's.
* **Loop order** of the tile loops: ``(m, n, k)``, ``(m, k, n)`` or ``(n, k, m)`` (outer to inner).
  With two of three dimensions per operand these three are all the distinct DRAM-traffic
  patterns: an order's traffic depends only on which loops with more than one trip sit outside
  an operand's innermost relevant loop, and every such pattern appears in one of the three.

Cost of one mapping (all float32, elementwise):

* **Compute**: every tile runs SCALE-Sim's fold schedule for the config's dataflow (the array does
  not change), ``sum over tiles of folds(tile) x L(tile)``. This factorises per dimension into
  ``FR x FC x (T + n_T x overhead)``, where ``FR``/``FC`` sum the folds of the row/column tiles,
  ``T`` is the streamed dimension, ``n_T`` its number of tiles and ``overhead`` the skew and
  preload lines of one fold (``R + C - 2`` for os, ``2R + C - 2`` for ws/is). Untiled, it is
  SCALE-Sim's ``total_cycles + 1`` exactly.
* **DRAM words**: an operand tile is fetched again whenever a loop it does not index, with more
  than one trip, sits outside its innermost indexing loop (with more than one trip): ``ifmap``
  ``[M, K]`` moves ``M K x f_A`` words, the filter ``K N x f_B``; the ofmap ``[M, N]`` is
  written ``f_C`` times and its partial sums read back ``f_C - 1`` times. An operand whose whole
  matrix fits its SRAM is held there (``f = 1``). Otherwise a tile that is reused must fit in
  half its SRAM (double buffering, SCALE-Sim's 50 % active fraction): reused within the tile (a
  streamed operand over the folds along the other array side; ws/is partial sums over the row
  folds, one column fold at a time) or across consecutive steps (the innermost loop with more
  than one trip does not index it). Tiles without reuse stream through a small window. An
  operand whose reused tile does not fit is streamed from DRAM on every array read (its SRAM
  read count), never rejected.
* **Latency**: double buffering overlaps each tile's loads and stores with compute, so the run
  takes ``(first A and B tiles + last C tile) / bw + max(compute, other words / bw)`` cycles:
  the first tiles load before compute starts and the last output tile drains after it; in
  between, DRAM demand is averaged over the run (a write queue and the spare SRAM half smooth
  it). One burst is not averaged away: the first iteration of the outermost loop (with more than
  one trip) must load ALL of an operand it keeps for later iterations (plus its share of the
  rest) before the remaining iterations' compute, so the latency is at least
  ``(those words + last C tile) / bw + compute after that iteration + one step's compute``. The
  model takes the larger of the two. It is never below ``max(compute, compulsory words / bw)``
  (:func:`lower_bound_cycles_one`), nor below the capacity-aware
  :func:`io_lower_bound_cycles_one` (which the split, double-buffered SRAMs cannot always reach).
* **Energy** (tie-break, or the objective with ``objective="energy"``): DRAM words and the SRAM
  accesses of the tiled schedule at the per-access figures of :mod:`nf_jax.hw.energy`.

Tests check the closed forms against an explicit loop-nest replay (DRAM words and compute equal;
latency never below, at most a few percent above), the search against brute force, and the
physics bounds; ``benchmarks/README_hw.md`` has the measured ratio to the bound and throughput.

Cascade stages (:func:`map_cascade`): samples stream through the PE columns; the mapper chooses
the batch tile ``b`` (samples per pass). Weights that fit in the filter SRAM load once; otherwise
they stream once per pass (``ceil(B / b)`` passes), and a stage's ``b`` activations must fit in
its column's ifmap bank (two buffers) or spill to DRAM and back. ``b = 1`` with fitting weights
and ``b = B`` without are the two ends of the search.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nf_jax.hw import energy as E
from nf_jax.hw.config import PRECISION_BYTES, HwConfig

F32 = jnp.float32
LEVELS = 6  # len(PIECES)
# Candidate tile counts per dimension: fine steps near the whole operand (halving a tile is what
# makes it fit half an SRAM), coarse ones for small tiles. Chosen on the co-design sample of
# benchmarks/hw_bench.py (p90 ratio to the bound 1.45 vs 1.55 for powers of 4; README_hw).
PIECES = (1.0, 2.0, 4.0, 8.0, 32.0, 256.0)
ORDERS = ("mnk", "mkn", "nkm")  # tile loops, outer to inner
# POS[o, d]: position of dimension d (m=0, n=1, k=2) in loop order o.
_POS = np.array([[o.index(d) for d in "mnk"] for o in ORDERS], np.float32)
OBJECTIVES = ("latency", "energy")
# An energy difference may break a latency tie only within this relative latency band.
_TIE = 1e-5


def _capacities(cfg: HwConfig) -> tuple[Any, Any, Any]:
  wbytes = jnp.asarray(PRECISION_BYTES, F32)[cfg.precision]
  words = 1024.0 / wbytes
  caps = tuple(words * s for s in (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb))
  bw = cfg.dram_bw_gbs / cfg.clock_ghz / wbytes  # words per cycle (GB/s / GHz = bytes/cycle)
  return caps, bw, wbytes


def _units(cfg: HwConfig) -> tuple[Any, Any, Any]:
  """Array side each of m, n, k unrolls over (1 for the streamed one) under the dataflow."""
  r, c, df = cfg.rows.astype(F32), cfg.cols.astype(F32), cfg.dataflow
  one = jnp.ones((), F32)
  um = jnp.where(df == 0, r, jnp.where(df == 2, c, one))
  un = jnp.where(df == 2, one, c)
  uk = jnp.where(df == 0, one, r)
  return um, un, uk


def _scalars(cfg: HwConfig) -> dict:
  """Per-config constants of the cost model (computed once, outside the mapping grid)."""
  (cap_a, cap_b, cap_c), bw, _ = _capacities(cfg)
  prec, node = cfg.precision, cfg.tech_nm
  return dict(
    r=cfg.rows.astype(F32),
    c=cfg.cols.astype(F32),
    df=cfg.dataflow,
    cap_a=cap_a,
    cap_b=cap_b,
    cap_c=cap_c,
    inv_bw=1.0 / bw,
    e_dram=E.dram_word_pj(prec),
    e_a=E.sram_word_pj(cfg.ifmap_sram_kb, prec, node),
    e_b=E.sram_word_pj(cfg.filter_sram_kb, prec, node),
    e_c=E.sram_word_pj(cfg.ofmap_sram_kb, prec, node),
  )


def _sized(d: Any, size: Any) -> dict:
  """Tile fields of dimension ``d`` cut into tiles of ``size`` (any shape, broadcast): ``size``,
  ``trips``, and the ``full`` tiles and remainder ``rem`` that :func:`_fold_sum` reads."""
  size = jnp.asarray(size, F32)
  full = jnp.floor(d / size)
  return dict(size=size, trips=jnp.ceil(d / size), full=full, rem=d - full * size)


def _dim_tiles(d: Any, unit: Any, levels: int = LEVELS) -> dict:
  """The grid's tile candidates of one dimension ``d``: :func:`_sized` fields, each ``[levels]``."""
  pieces = jnp.asarray(PIECES[:levels], F32)
  return _sized(d, jnp.minimum(d, jnp.ceil(jnp.ceil(d / pieces) / unit) * unit))


def _capacity_tiles(sc: dict, m: Any, n: Any, k: Any, cand: dict) -> tuple[Any, Any, Any]:
  """Capacity-filling tile triples ``(tm, tn, tk)``, each ``[X]``: one dimension's tile from the
  grid, the other two sized so that reused operand tiles fill half their SRAM exactly (the
  double-buffered limit of :func:`_costs`), which the grid's powers of two rarely hit.

  Per grid tile of ``k``: ``A`` and ``B`` fill (``tm = cap_a / 2 / tk``, ``tn = cap_b / 2 / tk``),
  ``A`` and ``C`` fill (``tn = cap_c / 2 / tm``) and ``B`` and ``C`` fill; per grid tile of ``m``:
  ``A`` and ``C`` fill; per grid tile of ``n``: ``B`` and ``C`` fill. Sizes are whole words,
  at least 1 and at most the dimension, not rounded to the array side.
  """
  half_a, half_b, half_c = 0.5 * sc["cap_a"], 0.5 * sc["cap_b"], 0.5 * sc["cap_c"]

  def fill(half: Any, other: Any, d: Any) -> Any:
    return jnp.clip(jnp.floor(half / other), 1.0, d)

  gm, gn, gk = cand["m"]["size"], cand["n"]["size"], cand["k"]["size"]
  tm_a, tn_b = fill(half_a, gk, m), fill(half_b, gk, n)
  rows = (
    (tm_a, tn_b, gk),
    (tm_a, fill(half_c, tm_a, n), gk),
    (fill(half_c, tn_b, m), tn_b, gk),
    (gm, fill(half_c, gm, n), fill(half_a, gm, k)),
    (fill(half_c, gn, m), gn, fill(half_b, gn, k)),
  )
  return tuple(
    jnp.concatenate([jnp.broadcast_to(r[d], r[0].shape) for r in rows]) for d in range(3)
  )


def _fold_sum(t: dict, side: Any) -> Any:
  """Sum over a dimension's tiles of ``ceil(tile / side)`` (folds along that array side)."""
  return t["full"] * jnp.ceil(t["size"] / side) + jnp.ceil(t["rem"] / side)


def _candidates(cfg: HwConfig, m: Any, n: Any, k: Any, m_levels: int = LEVELS) -> dict:
  um, un, uk = _units(cfg)
  return dict(m=_dim_tiles(m, um, m_levels), n=_dim_tiles(n, un), k=_dim_tiles(k, uk))


def _costs(
  sc: dict,
  m: Any,
  n: Any,
  k: Any,
  tm: dict,
  tn: dict,
  tk: dict,
  pos: Any,
  barrier: bool = False,
) -> dict:
  """Cost of mappings; ``tm``/``tn``/``tk`` hold per-dimension candidate values and ``pos [.., 3]``
  the loop positions, all broadcastable against each other (a grid or one chosen mapping).
  ``barrier`` materialises the order-independent terms once per tile triple (a grid search would
  otherwise recompute them for every loop order inside one fused loop). ``sc``: :func:`_scalars`.
  """
  r, c, df = sc["r"], sc["c"], sc["df"]
  cap_a, cap_b, cap_c, inv_bw = sc["cap_a"], sc["cap_b"], sc["cap_c"], sc["inv_bw"]
  is_os = df == 0
  # Per-dimension roles under the dataflow (Sr rows, Sc columns, T streamed).
  fr = jnp.where(is_os, _fold_sum(tm, r), _fold_sum(tk, r))
  fc = jnp.where(df == 2, _fold_sum(tm, c), _fold_sum(tn, c))
  d_t = jnp.where(is_os, k, jnp.where(df == 1, m, n))
  n_t = jnp.where(is_os, tk["trips"], jnp.where(df == 1, tm["trips"], tn["trips"]))
  d_sr = jnp.where(is_os, m, k)
  d_sc = jnp.where(df == 2, m, n)
  overhead = jnp.where(is_os, r + c - 2.0, 2.0 * r + c - 2.0)
  if "fold_overhead" in sc:  # 0 overlaps each fold's preload and skew (benchmarks/mapper_tail.py)
    overhead = overhead * sc["fold_overhead"]
  compute = fr * fc * (d_t + n_t * overhead)  # elapsed cycles
  # SRAM accesses summed over tiles (the closed form of nf_jax.hw.gemm, tile by tile).
  streamed = d_t * d_sr * fc
  stationary = d_sr * d_sc * n_t
  sram_a = jnp.where(df == 2, stationary, streamed)
  sram_b = jnp.where(is_os, d_t * d_sc * fr, jnp.where(df == 1, stationary, streamed))
  sram_c = jnp.where(is_os, d_sr * d_sc * n_t, d_t * d_sc * fr)
  # Re-fetch factors from the loop order (see module docstring). ``pos`` is a static tuple (the
  # grid search: conditions fold at trace time) or a traced [3] array (one chosen mapping).
  t = (tm["trips"], tn["trips"], tk["trips"])
  t_m, t_n, t_k = t
  static = isinstance(pos, tuple)

  def outside(e: int, rel: tuple[int, int]) -> Any:
    """Loop ``e`` (with > 1 trip) sits outside the innermost relevant loop with > 1 trip."""
    if static:
      cond = jnp.zeros((), bool)
      for d in rel:
        if pos[d] > pos[e]:
          cond = cond | (t[d] > 1)
      return cond & (t[e] > 1)
    inner = jnp.maximum(*(jnp.where(t[d] > 1, pos[..., d], -1.0) for d in rel))
    return (t[e] > 1) & (pos[..., e] < inner)

  # An operand held whole in its SRAM (loaded once, tile by tile, never evicted) is not re-fetched.
  res_a, res_b, res_c = m * k <= cap_a, k * n <= cap_b, m * n <= cap_c
  f_a = jnp.where(res_a | ~outside(1, (0, 2)), 1.0, t_n)
  f_b = jnp.where(res_b | ~outside(0, (2, 1)), 1.0, t_m)
  f_c = jnp.where(res_c | ~outside(2, (0, 1)), 1.0, t_k)
  sa, sn, sk = tm["size"], tn["size"], tk["size"]
  # Which tiles must sit in SRAM: those reused within a tile's folds (a streamed operand over the
  # folds along the other array side; ws/is partial sums over row folds, one column fold at a
  # time) or across consecutive steps (the innermost loop with > 1 trip does not index them).
  # Others stream through a double-buffered window: their DRAM words are the same.
  if static:
    i = [None, None, None]
    later = jnp.zeros((), bool)  # a loop further in has > 1 trip
    for d in sorted(range(3), key=lambda d: -pos[d]):
      i[d] = ~later & (t[d] > 1)
      later = later | (t[d] > 1)
    i_m, i_n, i_k = i
  else:
    keys = [jnp.where(t[d] > 1, pos[..., d], -1.0) for d in range(3)]
    last = jnp.maximum(jnp.maximum(keys[0], keys[1]), keys[2])
    i_m, i_n, i_k = ((key == last) & (last >= 0) for key in keys)
  fr_t = jnp.ceil(jnp.where(is_os, sa, sk) / r)
  size_sc = jnp.where(df == 2, sa, sn)
  fc_t = jnp.ceil(size_sc / c)
  t_tile = jnp.where(is_os, sk, jnp.where(df == 1, sa, sn))
  need_a = jnp.where(df == 2, False, fc_t > 1) | i_n
  need_b = jnp.where(is_os, fr_t > 1, jnp.where(df == 1, False, fc_t > 1)) | i_m
  psum_words = jnp.where(~is_os & (fr_t > 1), t_tile * jnp.minimum(c, size_sc), 0.0)
  need_c = jnp.where(i_k, sa * sn, psum_words)
  fit_a = res_a | ~need_a | (sa * sk <= 0.5 * cap_a)
  fit_b = res_b | ~need_b | (sk * sn <= 0.5 * cap_b)
  fit_c = res_c | (need_c <= 0.5 * cap_c)
  size_c = m * n
  if barrier:
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in (sa, sn, sk)))
    fit_a, fit_b, fit_c, sram_a, sram_b, sram_c, compute = jax.lax.optimization_barrier(
      tuple(
        jnp.broadcast_to(x, shape) for x in (fit_a, fit_b, fit_c, sram_a, sram_b, sram_c, compute)
      )
    )
  rd_a = jnp.where(fit_a, m * k * f_a, sram_a)
  rd_b = jnp.where(fit_b, k * n * f_b, sram_b)
  wr_c = jnp.where(fit_c, size_c * f_c, jnp.maximum(sram_c, size_c))
  rd_c = wr_c - size_c
  total = rd_a + rd_b + rd_c + wr_c
  # The first A and B tiles load before compute starts; the last C tile drains after it (every
  # other C tile is final before the last step, so its write overlaps compute).
  pro = sa * sk + sk * sn
  epi = sa * sn
  steady = jnp.maximum(total - pro - epi, 0.0)
  averaged = (pro + epi) * inv_bw + jnp.maximum(compute, steady * inv_bw)
  # First iteration of the outermost loop with more than one trip: it loads its share of every
  # operand that loop indexes (or re-fetches), and ALL of an operand it neither indexes nor
  # re-fetches (held for later iterations). The rest of the compute cannot start earlier.
  if static:
    loops = sorted(range(3), key=lambda d: pos[d])
    before = jnp.ones((), bool)  # every loop so far has one trip
    o = [None, None, None]
    for d in loops:
      o[d] = before & (t[d] > 1)
      before = before & (t[d] <= 1)
    o_m, o_n, o_k = o
  else:
    key_m, key_n, key_k = (jnp.where(t[d] > 1, pos[..., d], 99.0) for d in range(3))
    first = jnp.minimum(jnp.minimum(key_m, key_n), key_k)
    o_m, o_n, o_k = ((key == first) & (first < 99.0) for key in (key_m, key_n, key_k))
  t0 = jnp.where(o_m, t_m, jnp.where(o_n, t_n, jnp.where(o_k, t_k, 1.0)))
  inv_t0 = 1.0 / t0
  # The first iteration covers one full tile of the outer dimension (the remainder tile is last).
  frac0 = jnp.where(o_m, sa / m, jnp.where(o_n, sn / n, jnp.where(o_k, sk / k, 1.0)))

  def share(words: Any, indexed: Any, f: Any) -> Any:
    return jnp.where(indexed, words * frac0, jnp.where(f > 1, words * inv_t0, words))

  w1 = share(rd_a, o_m | o_k, f_a) + share(rd_b, o_k | o_n, f_b) + share(rd_c, o_m | o_n, f_c)
  steps = t_m * t_n * t_k
  first_pass = (w1 + epi) * inv_bw + compute * (1.0 - frac0) + compute / steps
  cycles = jnp.maximum(averaged, first_pass)
  energy_pj = total * sc["e_dram"] + sram_a * sc["e_a"] + sram_b * sc["e_b"] + sram_c * sc["e_c"]
  return dict(
    cycles=cycles,
    compute=compute,
    energy_pj=energy_pj,
    rd_a=rd_a,
    rd_b=rd_b,
    rd_c=rd_c,
    wr_c=wr_c,
    sram_a=sram_a,
    sram_b=sram_b,
    sram_c=sram_c,
    pro=pro,
    epi=epi,
  )


# Public names of the cost fields of :func:`_costs` (the rest are internal).
_PUBLIC = dict(
  cycles="cycles",
  compute_cycles="compute",
  dram_read_a="rd_a",
  dram_read_b="rd_b",
  dram_read_c="rd_c",
  dram_write="wr_c",
  ifmap_sram="sram_a",
  filter_sram="sram_b",
  ofmap_sram="sram_c",
  energy_pj="energy_pj",
)


def _public(costs: dict) -> dict:
  """The cost fields of one mapping under their public names (:data:`_PUBLIC`)."""
  return {name: costs[key] for name, key in _PUBLIC.items()}


def map_gemm_one(
  cfg: HwConfig, m: Any, n: Any, k: Any, objective: str = "latency", m_is_one: bool = False
) -> dict:
  """The best mapping of GEMM ``(m, n, k)`` on one config (scalars; ``vmap`` for batches).

  ``m_is_one`` (static) promises ``m == 1`` (a batch-1 dense layer), which shrinks the search.

  Returns:
    dict of float32 scalars: ``cycles`` (elapsed), ``compute_cycles`` (elapsed, stall-free),
    ``dram_read_a``/``dram_read_b``/``dram_read_c`` (ifmap, filter, partial sums) and
    ``dram_write`` (words), ``ifmap_sram``/``filter_sram``/``ofmap_sram`` (accesses),
    ``energy_pj`` (DRAM + SRAM of the mapping), and the choice: ``order`` (index into
    :data:`ORDERS`), ``tile_m``, ``tile_n``, ``tile_k``.
  """
  if objective not in OBJECTIVES:
    raise ValueError(f"objective={objective!r} is unknown; use one of {OBJECTIVES}")
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  sc = jax.lax.optimization_barrier(_scalars(cfg))
  lm = 1 if m_is_one else LEVELS
  cand = jax.lax.optimization_barrier(_candidates(cfg, m, n, k, lm))
  grid = (
    {key: v[:, None, None] for key, v in cand["m"].items()},
    {key: v[None, :, None] for key, v in cand["n"].items()},
    {key: v[None, None, :] for key, v in cand["k"].items()},
  )
  extra = _capacity_tiles(sc, m, n, k, cand)
  extra_dims = (_sized(m, extra[0]), _sized(n, extra[1]), _sized(k, extra[2]))
  costs = []
  for o in range(len(ORDERS)):
    pos = tuple(int(p) for p in _POS[o])
    on_grid = _costs(sc, m, n, k, *grid, pos, barrier=True)
    capacity = _costs(sc, m, n, k, *extra_dims, pos, barrier=True)
    costs.append(
      {f: jnp.concatenate([on_grid[f].ravel(), capacity[f]]) for f in ("cycles", "energy_pj")}
    )
  lat = jnp.stack([c["cycles"] for c in costs])  # [orders, grid + capacity candidates]
  en = jnp.stack([c["energy_pj"] for c in costs])
  if objective == "latency":
    key = lat * (1.0 + _TIE * en / (en + jnp.min(en) + 1e-30))
  else:
    key = en * (1.0 + _TIE * lat / (lat + jnp.min(lat) + 1e-30))
  per_order = lat.shape[1]
  on_grid_count = lm * LEVELS**2
  best = jnp.argmin(key.ravel())
  o, j = jnp.divmod(best, per_order)
  jm, rest = jnp.divmod(jnp.minimum(j, on_grid_count - 1), LEVELS**2)
  jn, jk = jnp.divmod(rest, LEVELS)
  jx = jnp.maximum(j - on_grid_count, 0)
  from_grid = j < on_grid_count
  tiles = (
    jnp.where(from_grid, cand["m"]["size"][jm], extra[0][jx]),
    jnp.where(from_grid, cand["n"]["size"][jn], extra[1][jx]),
    jnp.where(from_grid, cand["k"]["size"][jk], extra[2][jx]),
  )
  one = _costs(
    sc,
    m,
    n,
    k,
    _sized(m, tiles[0]),
    _sized(n, tiles[1]),
    _sized(k, tiles[2]),
    jnp.asarray(_POS)[o],
  )
  return dict(
    **_public(one),
    prologue_words=one["pro"],
    epilogue_words=one["epi"],
    order=o.astype(F32),
    tile_m=tiles[0],
    tile_n=tiles[1],
    tile_k=tiles[2],
  )


def mapping_cost(
  cfg: HwConfig, m: Any, n: Any, k: Any, order: Any, tile_m: Any, tile_n: Any, tile_k: Any
) -> dict:
  """Cost of one given mapping (not searched): the same model as :func:`map_gemm_one`.

  ``order`` indexes :data:`ORDERS`; tiles are any sizes in ``1..dim`` (scalars; ``vmap`` for
  batches). Returns the dict of :func:`map_gemm_one` without the choice fields.
  """
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  one = _costs(
    _scalars(cfg),
    m,
    n,
    k,
    _sized(m, tile_m),
    _sized(n, tile_n),
    _sized(k, tile_k),
    jnp.asarray(_POS)[order],
  )
  return _public(one)


def untiled_compute_cycles_one(cfg: HwConfig, m: Any, n: Any, k: Any) -> Any:
  """SCALE-Sim's untiled fold schedule of the dataflow, ``total_cycles + 1`` (float32 scalar)."""
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  r, c, df = cfg.rows.astype(F32), cfg.cols.astype(F32), cfg.dataflow
  d_sr = jnp.where(df == 0, m, k)
  d_sc = jnp.where(df == 2, m, n)
  d_t = jnp.where(df == 0, k, jnp.where(df == 1, m, n))
  lines = jnp.where(df == 0, d_t + r + c - 2.0, d_t + 2.0 * r + c - 2.0)
  return jnp.ceil(d_sr / r) * jnp.ceil(d_sc / c) * lines


def lower_bound_cycles_one(cfg: HwConfig, m: Any, n: Any, k: Any) -> Any:
  """``max(dataflow compute cycles, compulsory DRAM words / bw)`` (elapsed, float32 scalar).

  Compute is :func:`untiled_compute_cycles_one`; compulsory words move each operand once:
  ``M K + K N + M N``.
  """
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  _, bw, _ = _capacities(cfg)
  return jnp.maximum(untiled_compute_cycles_one(cfg, m, n, k), (m * k + k * n + m * n) / bw)


def onchip_words(cfg: HwConfig) -> Any:
  """Every word the chip can hold (float32): the three SRAMs plus three registers per PE (a
  stationary operand, a moving operand and a partial sum), an upper bound on any dataflow's PE."""
  (cap_a, cap_b, cap_c), _, _ = _capacities(cfg)
  return cap_a + cap_b + cap_c + 3.0 * cfg.rows.astype(F32) * cfg.cols.astype(F32)


def io_lower_bound_words_one(cfg: HwConfig, m: Any, n: Any, k: Any) -> Any:
  """DRAM words ANY schedule of the GEMM must move with the chip's on-chip capacity ``S``.

  ``max(M K + K N + M N, sqrt(2) M N K / sqrt(S) - 4 S)`` (float32 scalar). The second term is
  the Hong-Kung segment argument (Hong and Kung, STOC 1981; constants as in Irony, Toledo and
  Tiskin, JPDC 2004): cut the run into segments of ``4 S`` transfers. A segment can touch at
  most ``S`` words held at its start, ``S`` held at its end and its ``4 S`` transfers, so its
  multiply-adds use at most ``a + b + c <= 6 S`` entries of A, B and partial sums of C, and by the
  Loomis-Whitney inequality do at most ``sqrt(a b c) <= (2 S)**1.5`` of the ``M N K`` products.
  No recomputation; the tight bound (Smith et al., 2019) is ``2 M N K / sqrt(S)``, so this one
  is at most ``sqrt(2)`` loose for large GEMMs.
  """
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  s = onchip_words(cfg)
  return jnp.maximum(m * k + k * n + m * n, jnp.sqrt(2.0) * m * n * k / jnp.sqrt(s) - 4.0 * s)


def io_lower_bound_cycles_one(cfg: HwConfig, m: Any, n: Any, k: Any) -> Any:
  """``max(dataflow compute cycles, I/O lower bound words / bw)`` (elapsed, float32 scalar): the
  bound of :func:`lower_bound_cycles_one` with the capacity-aware words of
  :func:`io_lower_bound_words_one` in place of the compulsory ones."""
  _, bw, _ = _capacities(cfg)
  compute = untiled_compute_cycles_one(cfg, m, n, k)
  return jnp.maximum(compute, io_lower_bound_words_one(cfg, m, n, k) / bw)


@functools.partial(jax.jit, static_argnums=4)
def _map_batch(cfg: HwConfig, m: Any, n: Any, k: Any, objective: str) -> dict:
  out = jax.vmap(lambda c, a, b, d: map_gemm_one(c, a, b, d, objective))(cfg, m, n, k)
  out["lower_bound_cycles"] = jax.vmap(lower_bound_cycles_one)(cfg, m, n, k)
  out["io_lower_bound_cycles"] = jax.vmap(io_lower_bound_cycles_one)(cfg, m, n, k)
  return out


def map_gemm(
  configs: HwConfig, m: Any, n: Any, k: Any, objective: str = "latency"
) -> dict[str, np.ndarray]:
  """Best mapping of GEMM ``(m, n, k)`` (broadcast to the config batch ``[B]``) on every config.

  Returns:
    dict of numpy arrays ``[B]``: the fields of :func:`map_gemm_one` (``order`` as an int index
    into :data:`ORDERS`), ``lower_bound_cycles`` (:func:`lower_bound_cycles_one`) and
    ``io_lower_bound_cycles`` (:func:`io_lower_bound_cycles_one`).
  """
  from nf_jax.hw.config import validate  # noqa: PLC0415 (config imports nothing from here)

  validate(configs)
  fields = [np.atleast_1d(np.asarray(f)) for f in configs]
  nb = fields[0].shape[0]
  mnk = []
  for name, v in (("m", m), ("n", n), ("k", k)):
    arr = np.broadcast_to(np.asarray(v, np.float64), (nb,))
    if np.any(arr <= 0) or np.any(arr != np.round(arr)) or np.any(arr >= 2.0**31):
      raise ValueError(f"{name}={v!r} must be positive integers below 2**31")
    mnk.append(jnp.asarray(arr, F32))
  cfg = HwConfig(*(jnp.asarray(f) for f in fields))
  out = _map_batch(cfg, *mnk, objective)
  res = {key: np.asarray(v) for key, v in out.items()}
  res["order"] = res["order"].astype(np.int64)
  return res


def map_cascade(
  cfg: HwConfig,
  batch: Any,
  compute: Any,
  weights: Any,
  in_words: Any,
  out_words: Any,
  stage_spill_words: Any,
  stage_act_words: Any,
  objective: str = "latency",
) -> dict:
  """Best batch tile of a workload's cascade stages on one config (scalars; vmap for batches).

  Args:
    cfg: one config.
    batch: samples ``B``.
    compute: elapsed compute cycles of all stages at batch ``B`` (samples stream back to back).
    weights: weight words of all stages.
    in_words, out_words: activation words entering and leaving the cascades (``B`` samples).
    stage_spill_words: ``[S]`` DRAM words a stage's outputs cost if they spill (``2 B n_out``,
      write + read; 0 for a cascade's last stage, whose outputs leave anyway).
    stage_act_words: ``[S]`` on-chip words per sample a stage's outputs need (``2 n_out``, two
      buffers), held in its column's bank of the ifmap SRAM.

  Returns:
    dict of float32 scalars: ``cycles``, ``dram_read``, ``dram_write`` (words), ``batch_tile``.
  """
  (cap_a, cap_b, _), bw, _ = _capacities(cfg)
  q = jnp.maximum(cfg.cols.astype(F32), 1.0)
  tiles = jnp.minimum(2.0 ** jnp.arange(15, dtype=F32), batch)
  tiles = jnp.concatenate([tiles, jnp.reshape(batch, (1,))])
  passes = jnp.ceil(batch / tiles)
  # Weights that fit load once; otherwise every pass streams them again.
  stream = jnp.where(weights <= cap_b, weights, weights * passes)
  spill = tiles[:, None] * stage_act_words[None, :] > cap_a / q
  spill_words = jnp.sum(jnp.where(spill, stage_spill_words[None, :], 0.0), axis=1)
  dram_read = in_words + stream + 0.5 * spill_words
  dram_write = out_words + 0.5 * spill_words
  cycles = jnp.maximum(compute, (dram_read + dram_write) / bw)
  words = dram_read + dram_write  # the only mapping-dependent energy
  if objective == "latency":
    key = cycles * (1.0 + _TIE * words / (words + jnp.min(words) + 1e-30))
  else:
    key = words * (1.0 + _TIE * cycles / (cycles + jnp.min(cycles) + 1e-30))
  best = jnp.argmin(key)
  return dict(
    cycles=cycles[best],
    dram_read=dram_read[best],
    dram_write=dram_write[best],
    batch_tile=tiles[best],
  )
