"""Cycle-by-cycle memory model of one GEMM: ``lax.scan`` over clocks with explicit state.

This is the fine-grained reference for the fold-class event scan in
:func:`nf_jax.hw.fabric.gemm_layer`; tests check that the two agree (exactly when bandwidth is
unlimited, within a small tolerance otherwise) and move the same DRAM words.

State carried from clock to clock (all float32 scalars, one case; ``vmap`` for batches):

* ``fold``, ``line``: the PE pipeline position, i.e. the fold being computed (``-1`` while the
  first fold's operands load) and how many of its ``L`` skewed demand lines have been issued;
* ``fill``: words of the *next* fold's operands already prefetched into the idle half of the
  double-buffered SRAMs (the SRAM fill level);
* ``out_q``: output (and spilled partial-sum) words queued for DRAM (the write FIFO);
* running DRAM read/write words, stall cycles and the last busy cycle.

Each clock the DRAM channel moves ``bw`` words: queued writes first, then reads for the next fold.
A fold whose ``L`` lines are done waits (stalls) until the next fold's operands are in SRAM. Unlike
the event scan, each fold's words are exact for that fold (a reused tile costs nothing on its
second use, instead of an averaged share).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nf_jax.hw.config import PRECISION_BYTES, HwConfig
from nf_jax.hw.gemm import gemm_closed_form, operand_dims

F32 = jnp.float32


def _fold_plan(cfg: HwConfig, m: Any, n: Any, k: Any) -> tuple:
  r, c, df = cfg.rows.astype(F32), cfg.cols.astype(F32), cfg.dataflow
  m, n, k = (jnp.asarray(x, F32) for x in (m, n, k))
  cf = gemm_closed_form(jnp, m, n, k, r, c, df)
  sr, sc, t = operand_dims(jnp, m, n, k, df)
  wbytes = jnp.asarray(PRECISION_BYTES, F32)[cfg.precision]
  half = 0.5 * 1024.0 / wbytes
  cap_if, cap_fl, cap_of = (
    half * cfg.ifmap_sram_kb,
    half * cfg.filter_sram_kb,
    half * cfg.ofmap_sram_kb,
  )
  fr, fc = cf["row_folds"], cf["col_folds"]
  is_os = df == 0
  stream_fits = t * sr <= jnp.where(df == 2, cap_fl, cap_if)
  os_tile_fits = t * c <= cap_fl
  psum_fits = t * sc <= cap_of

  def reads(f: jax.Array) -> jax.Array:
    """DRAM words fold ``f`` needs in SRAM before it starts (0 past the last fold)."""
    ri, ci = jnp.mod(f, fr), jnp.floor(f / fr)
    ur = jnp.minimum(r, sr - ri * r)
    uc = jnp.minimum(c, sc - ci * c)
    stream = jnp.where(stream_fits & (ci > 0), 0.0, t * ur)
    other = jnp.where(is_os, jnp.where((ri == 0) | ~os_tile_fits, t * uc, 0.0), ur * uc)
    psum_back = jnp.where(~is_os & ~psum_fits & (ri > 0), t * uc, 0.0)
    return jnp.where(f < fr * fc, stream + other + psum_back, 0.0)

  def writes(f: jax.Array) -> jax.Array:
    """DRAM words fold ``f`` emits when it finishes."""
    ri, ci = jnp.mod(f, fr), jnp.floor(f / fr)
    ur = jnp.minimum(r, sr - ri * r)
    uc = jnp.minimum(c, sc - ci * c)
    final = ri == fr - 1
    return jnp.where(is_os, ur * uc, jnp.where(psum_fits & ~final, 0.0, t * uc))

  bw = cfg.dram_bw_gbs / cfg.clock_ghz / wbytes
  return cf["folds"], cf["fold_cycles"], bw, reads, writes


def _step(plan: tuple, carry: tuple, cycle: jax.Array) -> tuple[tuple, None]:
  folds, lines, bw, reads, writes = plan
  fold, line, fill, out_q, rd, wr, stall, last = carry
  busy = (fold < folds) | (out_q > 0)
  budget = bw
  # 1. DRAM: drain queued writes, then prefetch the next fold's operands.
  w = jnp.minimum(out_q, budget)
  out_q, budget, wr = out_q - w, budget - w, wr + w
  need = reads(fold + 1)
  got = jnp.clip(need - fill, 0.0, budget)
  fill, budget, rd = fill + got, budget - got, rd + got
  # 2. The first fold starts as soon as its operands are in.
  start = (fold < 0) & (fill >= need)
  fold, fill = jnp.where(start, 0.0, fold), jnp.where(start, 0.0, fill)
  # 3. The PE pipeline issues one demand line, or stalls with all L lines of its fold issued.
  computing = (fold >= 0) & (fold < folds)
  stalled = computing & (line >= lines)
  line = jnp.where(computing & ~stalled, line + 1, line)
  stall = stall + jnp.where(stalled | (fold < 0), 1.0, 0.0)
  # 4. A finished fold hands over when the next one's operands are ready; its outputs queue.
  need = reads(fold + 1)
  done = computing & (line >= lines) & (fill >= need)
  out_q = out_q + jnp.where(done, writes(fold), 0.0)
  w = jnp.where(done, jnp.minimum(out_q, budget), 0.0)  # same-cycle write with leftover budget
  out_q, wr = out_q - w, wr + w
  fold = jnp.where(done, fold + 1, fold)
  line = jnp.where(done, 0.0, line)
  fill = jnp.where(done, 0.0, fill)
  last = jnp.where(busy, cycle.astype(F32), last)
  return (fold, line, fill, out_q, rd, wr, stall, last), None


@functools.partial(jax.jit, static_argnums=2)
def _run(cfg: HwConfig, mnk: jax.Array, num_cycles: int) -> tuple:
  def one(cfg_i: HwConfig, mnk_i: jax.Array) -> tuple:
    plan = _fold_plan(cfg_i, mnk_i[0], mnk_i[1], mnk_i[2])
    z = jnp.zeros((), F32)
    init = (z - 1.0, z, z, z, z, z, z, z - 1.0)
    carry, _ = jax.lax.scan(
      lambda cr, cy: _step(plan, cr, cy), init, jnp.arange(num_cycles, dtype=jnp.int32)
    )
    return carry

  return jax.vmap(one)(cfg, mnk)


def simulate_gemm_memory_cycles(
  cfg: HwConfig, m: Any, n: Any, k: Any, num_cycles: int
) -> dict[str, np.ndarray]:
  """Runs the clock-by-clock model for a batch of configs and GEMMs (``[B]`` each).

  Args:
    cfg: batched :class:`HwConfig`.
    m, n, k: GEMM sizes, broadcast to the config batch.
    num_cycles: static scan length; must exceed every case's run time (``finished`` says so).

  Returns:
    dict of numpy arrays ``[B]``: ``total_cycles`` (SCALE-Sim convention: last busy cycle index),
    ``stall_cycles``, ``dram_read``, ``dram_write``, ``finished`` (bool).
  """
  nb = int(np.size(cfg.rows))
  mnk = np.stack([np.broadcast_to(np.asarray(v, np.float32), (nb,)) for v in (m, n, k)], 1)
  cfg = HwConfig(*(jnp.atleast_1d(jnp.asarray(f)) for f in cfg))
  fold, _, _, out_q, rd, wr, stall, last = _run(cfg, jnp.asarray(mnk), num_cycles)
  folds = gemm_closed_form(
    np,
    mnk[:, 0],
    mnk[:, 1],
    mnk[:, 2],
    np.asarray(cfg.rows),
    np.asarray(cfg.cols),
    np.asarray(cfg.dataflow),
  )["folds"]
  return dict(
    total_cycles=np.asarray(last),
    stall_cycles=np.asarray(stall),
    dram_read=np.asarray(rd),
    dram_write=np.asarray(wr),
    finished=(np.asarray(fold) >= folds)
    & (np.asarray(out_q) <= 0)
    & (np.asarray(last) < num_cycles - 1),
  )
