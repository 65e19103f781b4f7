"""The batched simulator: ``simulate(configs, workload)`` runs ``jit(vmap)`` over configs.

Dense layers (GEMMs) run on the ``rows x cols`` systolic array with the config's dataflow.
By default (``mapping="latency"`` or ``"energy"``) every GEMM and the cascade stages run the
mapping chosen by :mod:`nf_jax.hw.mapper` (loop order and SRAM tiles; see there).
``mapping="scalesim"`` runs the model below instead, with no tiling search.

Their compute schedule is SCALE-Sim's (see :mod:`nf_jax.hw.gemm`); memory is an event-level
``lax.scan`` over the fold categories of the schedule (first / middle / last column fold x first /
middle / last row fold, in SCALE-Sim's loop order), carrying explicit state: the cycle counter and
the stall cycles charged to each operand. Each fold prefetches the next fold's operand tiles into
the half of the SRAM that is not in use (double buffering, SCALE-Sim's 50 % active fraction) and
writes the previous fold's outputs while it computes, so a fold stalls by
``max(0, words / bw - L)`` cycles; the first fold's operands load before compute starts and the
last fold's outputs drain after it. An operand whose whole matrix fits in half its SRAM is fetched
from DRAM once; otherwise it is re-fetched on every reuse pass (a too-small SRAM is simulated by
streaming, never rejected). With unlimited bandwidth (``dram_bw_gbs = inf``, SCALE-Sim CALC mode)
the scan gives exactly SCALE-Sim's ``total_cycles``; the tests check that. The clock-by-clock
reference with SRAM-fill and write-queue state is :mod:`nf_jax.hw.cycles`: the two move the same
DRAM words, and their cycles agree within a few percent (tested; the event scan spreads a
category's prefetch over its own windows instead of the preceding fold's).

Where the stall model differs from SCALE-Sim's USER mode: SCALE-Sim 3.0.0 replays every demand line
through read buffers with a request queue and bank ports, fetches by address sets, and takes its
read bandwidth from the layout section (``IfmapSRAMBankBandwidth``) rather than ``Bandwidth``; we
charge bytes against one shared DRAM channel per fold. Our USER-mode cycles land within a small
factor of its numbers (the tests bound the ratio; the benchmark prints it), not exactly.

Cascade stages (sparse layers) run on the same PEs viewed as ``cols`` PE columns of ``rows`` PEs,
joined by radix-``k`` butterfly networks. The mapping:

* Stage ``s`` of a cascade runs on column ``q = s mod cols`` (round robin when depth > cols).
* Output lane ``j`` of stage ``s`` is computed by PE ``p = j mod rows`` of that column, in round
  ``j // rows``: during the ``fan_in + r`` cycles of the round, at cycle ``i`` the PE multiplies
  ``W_s[j, i]`` by ``h[table[j, i]]`` (then adds the ``r`` skip lanes), one MAC per cycle.
* The value ``h[v]`` was produced by PE ``v mod rows`` of the previous column and reaches PE ``p``
  through ``ceil(log_k rows)`` switch levels of the butterfly (one pipeline register per level);
  radix-``k`` butterfly stage tables are exactly the permutations such a network routes without
  conflicts. Each source PE sends one value per cycle; when the tables make several PEs need
  different values from the same source PE in one cycle, the cycle is serialised (counted from
  the tables by :func:`nf_jax.hw.workload.stage_cycles_pow2`). Conflicts inside the switches of
  non-butterfly families are not modelled.
* Weights ``W_s`` live in column ``q``'s bank of the filter SRAM (PE ``p`` reads the rows
  ``j = p mod rows``). If all weights of the workload do not fit in the filter SRAM they are
  streamed from DRAM once per batch, overlapped with compute (latency = max of the two); the
  cycles by which that DRAM traffic (weights plus activation I/O) exceeds compute are reported as
  ``stall_cascade_dram``.
* Samples stream through the columns back to back, so a batch of ``B`` takes
  ``fill + (B - 1) * interval`` cycles, where ``interval`` is the busiest column's cycles per
  sample and ``fill`` the sum of all stage times plus the network latency.

All counts are float32 inside jit (exact for integers below 2**24; cycles of huge workloads are
rounded relatively by < 1e-7).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nf_jax.hw import energy as E
from nf_jax.hw.config import PRECISION_BYTES, HwConfig, validate
from nf_jax.hw.gemm import gemm_closed_form, operand_dims
from nf_jax.hw.mapper import map_cascade, map_gemm_one
from nf_jax.hw.workload import MAX_LOG2_PES, Workload

F32 = jnp.float32
# "latency": the mapper's best loop order and tiling (energy breaks ties); "energy": the reverse;
# "scalesim": SCALE-Sim's fold order with the event scan of gemm_layer (no tiling search).
MAPPINGS = ("latency", "energy", "scalesim")


def _cdiv(a: Any, b: Any) -> Any:
  return jnp.ceil(a / b)


def gemm_layer(cfg: HwConfig, m: Any, n: Any, k: Any) -> dict:
  """One GEMM on one config (scalars; vmap for batches): cycles, stalls, SRAM/DRAM words.

  Returns:
    dict of float32 scalars: ``cycles`` (SCALE-Sim convention: last cycle index), ``compute_cycles``
    (the stall-free schedule), ``stall_ifmap``/``stall_filter``/``stall_ofmap``, ``ifmap_sram``,
    ``filter_sram``, ``ofmap_sram`` (SRAM accesses), ``dram_read``, ``dram_write`` (words),
    ``macs``.
  """
  r, c, df = cfg.rows.astype(F32), cfg.cols.astype(F32), cfg.dataflow
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  cf = gemm_closed_form(jnp, m, n, k, r, c, df)
  sr, sc, t = operand_dims(jnp, m, n, k, df)
  fr, fc, lines = cf["row_folds"], cf["col_folds"], cf["fold_cycles"]
  wbytes = jnp.asarray(PRECISION_BYTES, F32)[cfg.precision]
  bw = cfg.dram_bw_gbs / cfg.clock_ghz / wbytes  # words per cycle (GB/s / GHz = bytes/cycle)
  half = 0.5 * 1024.0 / wbytes  # words per KiB, times SCALE-Sim's 50 % active buffer fraction
  cap_if, cap_fl, cap_of = (
    half * cfg.ifmap_sram_kb,
    half * cfg.filter_sram_kb,
    half * cfg.ofmap_sram_kb,
  )
  # Reuse: the streamed-along-rows operand (os/ws: ifmap, is: filter) is needed once per column
  # fold; it comes from DRAM only in the first column fold if the whole matrix fits in (half) its
  # SRAM. os's filter column tile (t x C) serves all row folds of its column if it fits. ws/is
  # accumulate t x Sc partial sums across row folds: on chip if they fit (written once, after the
  # last row fold), else spilled after every row fold and read back by the next.
  stream_fits = t * sr <= jnp.where(df == 2, cap_fl, cap_if)
  os_tile_fits = t * c <= cap_fl
  psum_fits = t * sc <= cap_of
  is_os = df == 0
  last_r = sr - (fr - 1) * r
  last_c = sc - (fc - 1) * c
  # Fold categories in SCALE-Sim's order (column folds outer, row folds inner): column fold first
  # / middle / last x row fold first / middle / last, each with its multiplicity; within one
  # category every fold moves the same words, so the stall per fold is exact for it.
  one = jnp.ones((), F32)
  col_n = jnp.stack([one, jnp.maximum(fc - 2.0, 0.0), (fc >= 2).astype(F32)])
  col_used = jnp.stack([jnp.minimum(c, sc), c, last_c])
  col_later = jnp.asarray([False, True, True])  # column fold index > 0
  row_n = jnp.stack([one, jnp.maximum(fr - 2.0, 0.0), (fr >= 2).astype(F32)])
  row_used = jnp.stack([jnp.minimum(r, sr), r, last_r])
  row_first = jnp.asarray([True, False, False])
  row_final = jnp.stack([fr == 1, jnp.asarray(False), jnp.asarray(True)])
  count = (col_n[:, None] * row_n[None, :]).ravel()
  uc = jnp.repeat(col_used, 3)
  later = jnp.repeat(col_later, 3)
  ur, first_row, final_row = (jnp.tile(x, 3) for x in (row_used, row_first, row_final))
  stream = jnp.where(stream_fits & later, 0.0, t * ur)
  other = jnp.where(is_os, jnp.where(first_row | ~os_tile_fits, t * uc, 0.0), ur * uc)
  wro = jnp.where(~is_os & ~psum_fits & ~first_row, t * uc, 0.0)  # partial sums read back
  wo = jnp.where(is_os, ur * uc, jnp.where(psum_fits & ~final_row, 0.0, t * uc))
  wi = jnp.where(df == 2, other, stream)
  wf = jnp.where(df == 2, stream, other)
  # The first fold (category 0) loads in the prologue; the last fold's outputs drain in the
  # epilogue. Each fold's window prefetches the next fold's operands and writes the previous
  # fold's outputs, so the last fold's window reads nothing and the first's writes nothing.
  is_first = jnp.arange(9) == 0
  last_cat = 3 * jnp.where(fc >= 2, 2, 0) + jnp.where(fr >= 2, 2, 0)
  is_last = jnp.arange(9) == last_cat
  first_i, first_f = wi[0], wf[0]
  epi_words = wo[last_cat]
  rd_total = jnp.sum(count * (wi + wf + wro))
  wr_total = jnp.sum(count * wo)
  # Windows carry their own category's words, rescaled so they move exactly the words that the
  # prologue and epilogue do not (the totals equal the clock-by-clock model's).
  win_rd = jnp.where(is_last, 0.0, 1.0)
  win_wr = jnp.where(is_first, 0.0, 1.0)
  rho = jnp.maximum(rd_total - first_i - first_f, 0.0) / jnp.maximum(
    jnp.sum(count * win_rd * (wi + wf + wro)), 1e-30
  )
  sigma = jnp.maximum(wr_total - epi_words, 0.0) / jnp.maximum(jnp.sum(count * win_wr * wo), 1e-30)
  xi, xf, xro, xo = (rho * win_rd * wi, rho * win_rd * wf, rho * win_rd * wro, sigma * win_wr * wo)

  def event(carry: tuple, ev: tuple) -> tuple:
    cycle, st_i, st_f, st_o = carry
    cnt, ei, ef, ero, eo = ev
    words = ei + ef + ero + eo
    stall = jnp.maximum(words / bw - lines, 0.0)
    share = stall / jnp.maximum(words, 1e-30)
    return (
      cycle + cnt * (lines + stall),
      st_i + cnt * share * ei,
      st_f + cnt * share * ef,
      st_o + cnt * share * (eo + ero),
    ), None

  zero = jnp.zeros((), F32)
  (cycle, st_i, st_f, st_o), _ = jax.lax.scan(event, (zero,) * 4, (count, xi, xf, xro, xo))
  rd, wr = rd_total, wr_total
  pro = (first_i + first_f) / bw
  epi = epi_words / bw
  compute = cf["folds"] * lines - 1.0
  cycles = cycle - 1.0 + pro + epi
  return dict(
    cycles=cycles,
    compute_cycles=compute,
    stall_ifmap=st_i + pro * first_i / jnp.maximum(first_i + first_f, 1.0),
    stall_filter=st_f + pro * first_f / jnp.maximum(first_i + first_f, 1.0),
    stall_ofmap=st_o + epi,
    ifmap_sram=cf["ifmap_sram_reads"],
    filter_sram=cf["filter_sram_reads"],
    ofmap_sram=cf["ofmap_words"],
    dram_read=rd,
    dram_write=wr,
    macs=m * n * k,
  )


def mapped_gemm_layer(
  cfg: HwConfig, m: Any, n: Any, k: Any, objective: str = "latency", m_is_one: bool = False
) -> dict:
  """One GEMM under the mapper's best mapping (scalars; vmap for batches).

  Same keys and conventions as :func:`gemm_layer` (``cycles`` and ``compute_cycles`` are last
  cycle indices); the memory stall is split over operands in proportion to their DRAM words.
  """
  mp = map_gemm_one(cfg, m, n, k, objective, m_is_one)
  rd_a, rd_b, rd_c, wr = mp["dram_read_a"], mp["dram_read_b"], mp["dram_read_c"], mp["dram_write"]
  stall = mp["cycles"] - mp["compute_cycles"]
  share = stall / jnp.maximum(rd_a + rd_b + rd_c + wr, 1e-30)
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  return dict(
    cycles=mp["cycles"] - 1.0,
    compute_cycles=mp["compute_cycles"] - 1.0,
    stall_ifmap=share * rd_a,
    stall_filter=share * rd_b,
    stall_ofmap=share * (rd_c + wr),
    ifmap_sram=mp["ifmap_sram"],
    filter_sram=mp["filter_sram"],
    ofmap_sram=mp["ofmap_sram"],
    dram_read=rd_a + rd_b + rd_c,
    dram_write=wr,
    macs=m * n * k,
  )


def cascade_layers(
  cfg: HwConfig, wl: Workload, batch: Any, shape: tuple[int, int], mapping: str = "latency"
) -> dict:
  """All cascade stages of a workload on one config: cycles, words, MACs (float32 scalars).

  ``shape`` is the static ``(num_cascades, max_depth)`` of the workload; ``mapping`` one of
  :data:`MAPPINGS` (``"scalesim"``: weights stream once per batch, per-sample spills; otherwise
  :func:`nf_jax.hw.mapper.map_cascade` picks the batch tile).
  """
  n_casc, max_depth = shape
  p, q = cfg.rows.astype(F32), cfg.cols.astype(F32)
  n_out, fan, skip = (jnp.asarray(x, F32) for x in (wl.stage_n_out, wl.stage_fan_in, wl.stage_skip))
  n_in = jnp.asarray(wl.stage_n_in, F32)
  idx, casc = jnp.asarray(wl.stage_index), jnp.asarray(wl.stage_cascade)
  per_out = fan + skip  # cycles per output: fan-in MACs, then the skip adds
  # Port conflicts from the tables, tabulated for P = 2**e; for other P we scale the conflict-free
  # time ceil(n_out / P) * per_out by the conflict ratio at the largest power of two <= P.
  e = jnp.clip(jnp.floor(jnp.log2(p) + 1e-6), 0, MAX_LOG2_PES).astype(jnp.int32)
  sched = jnp.asarray(wl.stage_cycles_pow2, F32)[:, e]
  ratio = sched / (_cdiv(n_out, 2.0 ** e.astype(F32)) * per_out)
  stage_cyc = _cdiv(n_out, p) * per_out * ratio  # cycles per sample on its column
  levels = jnp.maximum(
    jnp.ceil(jnp.log(jnp.maximum(p, 1.0)) / jnp.log(cfg.radix.astype(F32)) - 1e-6), 1.0
  )
  hop = levels + 1.0  # switch levels + the column's output register
  col = jnp.mod(idx, cfg.cols)
  seg = casc * max_depth + col
  col_load = jax.ops.segment_sum(stage_cyc, seg, num_segments=n_casc * max_depth)
  interval = jnp.max(col_load.reshape(n_casc, max_depth), axis=1)
  fill = jax.ops.segment_sum(stage_cyc + hop, casc, num_segments=n_casc)
  compute = jnp.sum(fill + (batch - 1.0) * interval)
  macs = batch * jnp.sum(n_out * fan)
  adds = batch * jnp.sum(n_out * skip)
  weights = jnp.sum(n_out * fan)
  wbytes = jnp.asarray(PRECISION_BYTES, F32)[cfg.precision]
  bw = cfg.dram_bw_gbs / cfg.clock_ghz / wbytes
  fits = weights <= cfg.filter_sram_kb * 1024.0 / wbytes
  # Activations enter once and leave once per sample; stage widths beyond the ifmap SRAM (two
  # buffers per column) spill to DRAM and back.
  first = idx == 0
  io_words = batch * jnp.sum(jnp.where(first, n_in, 0.0))
  last_out = jax.ops.segment_max(idx, casc, num_segments=n_casc)
  is_last = idx == last_out[casc]
  out_words = batch * jnp.sum(jnp.where(is_last, n_out, 0.0))
  if mapping == "scalesim":
    spill = 2.0 * n_out * wbytes > cfg.ifmap_sram_kb * 1024.0 / jnp.maximum(q, 1.0)
    spill_words = batch * jnp.sum(jnp.where(spill & ~is_last, 2.0 * n_out, 0.0))
    stream = jnp.where(fits, 0.0, weights)
    dram_read = io_words + stream + 0.5 * spill_words
    dram_write = out_words + 0.5 * spill_words
    mem = (dram_read + dram_write) / bw
    cycles = jnp.maximum(compute, mem)
  else:
    mapped = map_cascade(
      cfg,
      batch,
      compute,
      weights,
      io_words,
      out_words,
      jnp.where(is_last, 0.0, 2.0 * batch * n_out),
      2.0 * n_out,
      objective=mapping,
    )
    cycles, dram_read, dram_write = mapped["cycles"], mapped["dram_read"], mapped["dram_write"]
  return dict(
    cycles=cycles,
    compute_cycles=compute,
    stall_cascade_dram=cycles - compute,
    macs=macs,
    adds=adds,
    filter_sram=macs,  # every MAC reads its weight from the column's bank
    ifmap_sram=macs + adds,  # and its operand from the column's input FIFO
    ofmap_sram=batch * jnp.sum(n_out),
    hops=(macs + adds) * levels,
    dram_read=dram_read,
    dram_write=dram_write,
  )


def _one_config(
  cfg: HwConfig,
  wl: Workload,
  batch: Any,
  shape: tuple[int, int],
  mapping: str,
  b1: bool = False,
  calibration: str = "horowitz",
) -> dict:
  """Everything for one config at one batch size (float32 scalars); ``b1``: the batch is 1."""
  zero = jnp.zeros((), F32)
  res = {
    k: zero
    for k in (
      "cycles",
      "compute_cycles",
      "stall_ifmap",
      "stall_filter",
      "stall_ofmap",
      "stall_cascade_dram",
      "ifmap_sram",
      "filter_sram",
      "ofmap_sram",
      "dram_read",
      "dram_write",
      "macs",
      "adds",
      "hops",
    )
  }
  if np.shape(wl.gemm_nk)[0]:
    nk = jnp.asarray(wl.gemm_nk, F32)
    if mapping == "scalesim":
      g = jax.vmap(lambda nn, kk: gemm_layer(cfg, batch, nn, kk))(nk[:, 0], nk[:, 1])
    else:
      g = jax.vmap(lambda nn, kk: mapped_gemm_layer(cfg, batch, nn, kk, mapping, b1))(
        nk[:, 0], nk[:, 1]
      )
    for key, v in g.items():
      # SCALE-Sim's last-index convention is per layer; a workload's cycles are cycles + 1 each.
      res[key] = res[key] + jnp.sum(v + (1.0 if key in ("cycles", "compute_cycles") else 0.0))
  if np.shape(wl.stage_n_out)[0]:
    cs = cascade_layers(cfg, wl, batch, shape, mapping)
    for key, v in cs.items():
      res[key] = res[key] + v
  pes = cfg.rows.astype(F32) * cfg.cols.astype(F32)
  prec, node = cfg.precision, cfg.tech_nm
  e_pj = (
    res["macs"] * E.mac_pj(prec, node) * E.CALIBRATIONS[calibration]["mac_energy"]
    + res["adds"] * E.add_pj(prec, node)
    + res["ifmap_sram"] * E.sram_word_pj(cfg.ifmap_sram_kb, prec, node)
    + res["filter_sram"] * E.sram_word_pj(cfg.filter_sram_kb, prec, node)
    + res["ofmap_sram"] * E.sram_word_pj(cfg.ofmap_sram_kb, prec, node)
    + (res["dram_read"] + res["dram_write"]) * E.dram_word_pj(prec)
    + res["hops"] * E.hop_pj(cfg.radix, prec, node)
  )
  res["dynamic_energy_j"] = e_pj * 1e-12
  res["ideal_cycles"] = res["macs"] / pes
  return res


def _area_mm2(cfg: HwConfig, calibration: str = "horowitz") -> dict:
  k = E.CALIBRATIONS[calibration]
  pes = cfg.rows.astype(F32) * cfg.cols.astype(F32)
  pe = pes * E.pe_um2(cfg.precision, cfg.tech_nm) * 1e-6 * k["pe_area"]
  sram = k["sram_area"] * sum(
    E.sram_mm2(s, cfg.tech_nm) for s in (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb)
  )
  net = E.interconnect_um2(cfg.rows, cfg.cols, cfg.radix, cfg.precision, cfg.tech_nm) * 1e-6
  return dict(
    area_pe_mm2=pe, area_sram_mm2=sram, area_interconnect_mm2=net, area_mm2=pe + sram + net
  )


def area_mm2(cfg: HwConfig, calibration: str = "horowitz") -> np.ndarray:
  """Die area (mm^2) of every config of a batch, ``float[P]``: PEs, SRAMs and interconnect.

  Area does not depend on the workload, so a search can bound it without simulating.
  """
  if calibration not in E.CALIBRATIONS:
    raise ValueError(f"calibration={calibration!r} is unknown; use one of {tuple(E.CALIBRATIONS)}")
  return np.asarray(_area_mm2(cfg, calibration)["area_mm2"])


def evaluate_config(
  cfg: HwConfig,
  wl: Workload,
  shape: tuple[int, int],
  mapping: str = "latency",
  calibration: str = "horowitz",
) -> dict:
  """Every output of :func:`simulate` for ONE config and ONE workload (scalars; vmap it).

  ``shape`` is the workload's static ``(num_cascades, max_depth)``; ``mapping`` one of
  :data:`MAPPINGS`; ``calibration`` a key of :data:`nf_jax.hw.energy.CALIBRATIONS`. Used by
  :func:`simulate` and :func:`evaluate_pairs`.
  """
  batch = jnp.asarray(wl.batch, F32)
  full = _one_config(cfg, wl, batch, shape, mapping, calibration=calibration)
  one = _one_config(cfg, wl, jnp.ones((), F32), shape, mapping, b1=True, calibration=calibration)
  area = _area_mm2(cfg, calibration)
  hz = cfg.clock_ghz * 1e9
  latency = full["cycles"] / hz
  leak_w = E.LEAKAGE_W_PER_MM2 * area["area_mm2"] * E.energy_scale(cfg.tech_nm)
  energy = full["dynamic_energy_j"] + leak_w * latency
  pes = cfg.rows.astype(F32) * cfg.cols.astype(F32)
  out = dict(
    latency_s=latency,
    latency_b1_s=one["cycles"] / hz,
    throughput=batch / latency,
    power_w=full["dynamic_energy_j"] / latency + leak_w,
    leakage_w=leak_w,
    energy_per_sample_j=energy / batch,
    cycles=full["cycles"],
    cycles_b1=one["cycles"],
    utilization=full["macs"] / (full["cycles"] * pes),
    stall_compute=full["ideal_cycles"],
    stall_pipeline=full["compute_cycles"] - full["ideal_cycles"],
    stall_memory=full["cycles"] - full["compute_cycles"],
    stall_ifmap=full["stall_ifmap"],
    stall_filter=full["stall_filter"],
    stall_ofmap=full["stall_ofmap"],
    stall_cascade_dram=full["stall_cascade_dram"],
    dram_words=full["dram_read"] + full["dram_write"],
    macs=full["macs"],
  )
  out.update(area)
  return out


_evaluate = evaluate_config  # the name nf_jax.pareto_problem used before evaluate_pairs existed


# Configs per vectorised chunk: the mapper's [orders x tiles^3] cost grids stay in cache-sized
# chunks (one vmap over 100k configs would materialise tens of GB).
CHUNK = 1024


def _chunked(fn: Any, xs: Any, n: int) -> dict:
  """``vmap(fn)(xs)`` in chunks of :data:`CHUNK` (``lax.map``); ``n`` is the leading size."""
  if n <= CHUNK:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=CHUNK)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _simulate_batched(
  cfg: HwConfig, wl: Workload, shape: tuple[int, int], mapping: str, calibration: str
) -> dict:
  n = int(np.shape(cfg.rows)[0])
  return _chunked(lambda c: evaluate_config(c, wl, shape, mapping, calibration), cfg, n)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def evaluate_pairs(
  cfg: HwConfig,
  wl: Workload,
  shape: tuple[int, int],
  mapping: str = "latency",
  calibration: str = "horowitz",
) -> dict:
  """Config ``i`` on workload ``i`` for every ``i``: ``jit(vmap)`` of :func:`evaluate_config`.

  Args:
    cfg: batched config, fields ``[P]`` (validated by the caller, e.g. with ``make_config``).
    wl: a :class:`Workload` whose every field has a leading ``[P]`` axis (workloads padded to one
      stage count, see ``nf_jax.pareto.problem.padded_workload``).
    shape: static ``(num_cascades, max_depth)`` covering every workload.
    mapping: one of :data:`MAPPINGS`.
    calibration: a key of :data:`nf_jax.hw.energy.CALIBRATIONS`.

  Returns:
    dict of float32 arrays ``[P]`` with the keys of :func:`simulate`.
  """
  n = int(np.shape(cfg.rows)[0])
  return _chunked(
    lambda cw: evaluate_config(cw[0], cw[1], shape, mapping, calibration), (cfg, wl), n
  )


def _bucket(n: int) -> int:
  """Padded batch size, so populations of similar size share one compile: powers of two from 8
  up to :data:`CHUNK`, then multiples of an eighth of the power of two below (<= 12.5 % padding,
  at most 8 sizes per octave)."""
  if n <= CHUNK:
    return max(8, 1 << (n - 1).bit_length())
  step = max(CHUNK, 1 << ((n - 1).bit_length() - 4))
  return -(-n // step) * step


def simulate(
  configs: HwConfig, workload: Workload, mapping: str = "latency", calibration: str = "horowitz"
) -> dict[str, np.ndarray]:
  """Simulates a workload on every config of a batch in one ``jit(vmap)`` call.

  Args:
    configs: a batched :class:`HwConfig` (fields ``[n]``; scalars are treated as ``n = 1``).
    workload: a :class:`Workload` (dense GEMMs and cascade stages, run in order).
    mapping: ``"latency"`` (default: every GEMM and cascade runs the mapper's fastest loop order
      and tiling, :mod:`nf_jax.hw.mapper`, energy breaking ties), ``"energy"`` (least energy,
      latency breaking ties) or ``"scalesim"`` (SCALE-Sim's fold order, no tiling search: the
      exact CALC-mode model and the USER-mode event scan documented above).
    calibration: ``"horowitz"`` (default: the bare per-operation figures of
      :mod:`nf_jax.hw.energy`) or ``"silicon"`` (PE area, SRAM area and MAC energy scaled by the
      overhead factors fitted on published chips, :mod:`nf_jax.hw.calibration`).

  Returns:
    dict of float32 arrays ``[n]``: ``latency_s`` (batch B) and ``latency_b1_s``, ``throughput``
    (samples/s), ``power_w``, ``area_mm2`` (+ PE/SRAM/interconnect parts), ``energy_per_sample_j``,
    ``utilization`` (useful MACs / (cycles x PEs)), ``cycles``, the stall breakdown
    ``stall_compute`` (ideal MAC cycles) + ``stall_pipeline`` (fill, drain, unmapped PEs) +
    ``stall_memory`` (= ``stall_ifmap + stall_filter + stall_ofmap + stall_cascade_dram``) =
    ``cycles`` exactly, ``dram_words`` and ``macs``. ``cycles`` counts elapsed clocks: SCALE-Sim's
    ``total_cycles`` (a last-cycle index) + 1 per layer.
  """
  if mapping not in MAPPINGS:
    raise ValueError(f"mapping={mapping!r} is unknown; use one of {MAPPINGS}")
  if calibration not in E.CALIBRATIONS:
    raise ValueError(f"calibration={calibration!r} is unknown; use one of {tuple(E.CALIBRATIONS)}")
  validate(configs)
  fields = [np.atleast_1d(np.asarray(f)) for f in configs]
  n = fields[0].shape[0]
  pad = _bucket(n) - n  # repeat the last config; its results are dropped
  cfg = HwConfig(*(jnp.asarray(np.concatenate([f, np.repeat(f[-1:], pad)])) for f in fields))
  wl = Workload(*(jnp.asarray(f) for f in workload))
  shape = (workload.num_cascades, workload.max_depth)
  out = _simulate_batched(cfg, wl, shape, mapping, calibration)
  return {k: np.asarray(v)[:n] for k, v in out.items()}
