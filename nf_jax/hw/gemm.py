"""Dense GEMMs on a systolic array: SCALE-Sim 3.0.0 compute-bound (CALC) counts, two ways.

GEMM convention (the same as SCALE-Sim's GEMM topology files, ``Layer, M, N, K``): the product is
``ofmap[M, N] = ifmap[M, K] @ filter[K, N]``. SCALE-Sim turns it into a convolution with an
``M x K`` one-channel ifmap, a ``1 x K`` filter and ``N`` filters, so ``M`` is the number of output
pixels (the batch for a dense layer), ``K`` the window (reduction) size and ``N`` the number of
filters (output features). Each dataflow folds a ``Sr x Sc`` operand onto the ``R x C`` array and
streams ``T`` words through it:

====  =================  ==================  =======  =================================
df    Sr (array rows)    Sc (array columns)  T        stationary in the PEs
====  =================  ==================  =======  =================================
os    M (ofmap pixels)   N (filters)         K        outputs
ws    K (window)         N (filters)         M        weights (filter)
is    K (window)         M (ofmap pixels)    N        inputs (ifmap)
====  =================  ==================  =======  =================================

With ``fr = ceil(Sr / R)`` row folds and ``fc = ceil(Sc / C)`` column folds (``fc`` outer),
SCALE-Sim schedules every fold as a skewed demand window of ``L`` lines, ``L = T + R + C - 2`` for
os and ``L = 2R + T + C - 2`` for ws/is (``R`` lines to preload the stationary operand, ``R - 1``
and ``C - 1`` lines of skew), and reports ``total_cycles = fr * fc * L - 1`` (the 0-based index of
the last ofmap line) when reads never stall. SRAM counts are the valid entries of its demand
matrices; os additionally counts ``R + C`` ofmap writes per fold (SCALE-Sim 3.0.0 adds the shape
of the flipped fold to ``ofmap_writes``; we reproduce it, and :func:`simulate_gemm` reports the
true count as ``ofmap_words``).

Two implementations, tested against each other and against committed SCALE-Sim numbers:

* :func:`gemm_closed_form` / :func:`simulate_gemm`: the closed form above (numpy int64, exact).
* :func:`simulate_gemm_cycles`: a ``lax.scan`` over every cycle that, at each cycle, counts the
  operand words the skewed PE pipeline reads and the outputs it writes, ``jit(vmap)`` over cases.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nf_jax.hw.config import DATAFLOWS


def dataflow_code(dataflow: Any) -> Any:
  """Int code(s) of a dataflow name (or pass codes through); ValueError on unknown names."""
  if isinstance(dataflow, str):
    if dataflow.lower() not in DATAFLOWS:
      raise ValueError(f"dataflow={dataflow!r} is unknown; use one of {DATAFLOWS}")
    return DATAFLOWS.index(dataflow.lower())
  arr = np.asarray(dataflow)
  if arr.dtype.kind in "OUS":
    return np.vectorize(dataflow_code, otypes=[np.int32])(arr)
  if arr.dtype.kind not in "iu":
    raise ValueError(
      f"dataflow={dataflow!r} must be a name in {DATAFLOWS} or an integer code 0..2 "
      "(a float code would be truncated)"
    )
  if np.any((arr < 0) | (arr >= len(DATAFLOWS))):
    raise ValueError(f"dataflow={dataflow!r} is unknown; use one of {DATAFLOWS} or 0..2")
  return arr


def operand_dims(xp: Any, m: Any, n: Any, k: Any, df: Any) -> tuple[Any, Any, Any]:
  """``(Sr, Sc, T)`` of the table in the module docstring for dataflow code(s) ``df``."""
  sr = xp.where(df == 0, m, k)
  sc = xp.where(df == 2, m, n)
  t = xp.where(df == 0, k, xp.where(df == 1, m, n))
  return sr, sc, t


def gemm_closed_form(xp: Any, m: Any, n: Any, k: Any, rows: Any, cols: Any, df: Any) -> dict:
  """SCALE-Sim CALC-mode counts for GEMM ``(m, n, k)`` on ``rows x cols``, with array module ``xp``.

  Works elementwise on broadcastable arrays; with ``xp=numpy`` and int64 inputs it is exact, with
  ``xp=jax.numpy`` it runs inside ``jit``/``vmap`` (use float inputs for counts beyond 2**31).

  Returns:
    dict of arrays: ``total_cycles``, ``ifmap_sram_reads``, ``filter_sram_reads``,
    ``ofmap_sram_writes`` (with SCALE-Sim's os quirk), ``ofmap_words``, ``folds``,
    ``fold_cycles`` (``L``), ``mapping_efficiency``, ``compute_util``, ``overall_util`` and
    ``utilization`` (= ``compute_util``); utilisations are in percent, like SCALE-Sim's reports.
  """
  sr, sc, t = operand_dims(xp, m, n, k, df)
  fr = -(-sr // rows)
  fc = -(-sc // cols)
  folds = fr * fc
  is_os = df == 0
  fold_lines = xp.where(is_os, t + rows + cols - 2, 2 * rows + t + cols - 2)
  # SCALE-Sim's per-fold utilisation window: demand lines + (array width - 1) for os; for ws/is it
  # takes the filter (resp. ifmap) window of R + (R + C + T - 2) lines plus C - 1.
  util_lines = xp.where(is_os, fold_lines, 2 * rows + 2 * cols + t - 3)
  total = folds * fold_lines - 1
  streamed = t * sr * fc  # the operand that flows along the rows, read once per column fold
  stationary = sr * sc  # os: never read twice; ws/is: each stationary word is preloaded once
  ifmap = xp.where(df == 2, stationary, streamed)
  filt = xp.where(df == 0, t * sc * fr, xp.where(df == 1, stationary, t * sr * fc))
  ofmap_words = xp.where(is_os, sr * sc, t * sc * fr)
  ofmap = ofmap_words + xp.where(is_os, folds * (rows + cols), 0)
  pes = rows * cols
  macs = m * n * k
  mapping = 100.0 * (sr * sc) / (pes * folds)
  compute_util = 100.0 * (sr * sc * t) / (pes * folds * util_lines)
  overall = 100.0 * macs / xp.maximum(total * pes, 1)
  return dict(
    total_cycles=total,
    ifmap_sram_reads=ifmap,
    filter_sram_reads=filt,
    ofmap_sram_writes=ofmap,
    ofmap_words=ofmap_words,
    folds=folds,
    row_folds=fr,
    col_folds=fc,
    fold_cycles=fold_lines,
    macs=macs,
    mapping_efficiency=mapping,
    compute_util=compute_util,
    overall_util=overall,
    utilization=compute_util,
  )


def _check_positive(**values: Any) -> None:
  for name, v in values.items():
    arr = np.asarray(v)
    if arr.dtype.kind not in "iu" or np.any(arr <= 0):
      raise ValueError(f"{name}={v!r} must be a positive integer (e.g. {name}=16)")


def simulate_gemm(m: Any, n: Any, k: Any, rows: Any, cols: Any, dataflow: Any = "os") -> dict:
  """SCALE-Sim 3.0.0 CALC-mode numbers for ``ofmap[m, n] = ifmap[m, k] @ filter[k, n]``.

  Args:
    m, n, k: GEMM sizes (ints or broadcastable int arrays); ``m`` is the batch of a dense layer.
    rows, cols: systolic array height and width.
    dataflow: ``"os"``, ``"ws"``, ``"is"`` or int codes (arrays allowed).

  Returns:
    dict of numpy arrays (int64 counts, float64 percentages), see :func:`gemm_closed_form`.

  Example:
    >>> simulate_gemm(16, 16, 16, 4, 4, "os")["total_cycles"]
    array(351)
  """
  _check_positive(m=m, n=n, k=k, rows=rows, cols=cols)
  df = dataflow_code(dataflow)
  args = [np.asarray(v, np.int64) for v in (m, n, k, rows, cols, df)]
  # The same counts in float64 first: refuse sizes whose int64 counts would wrap around.
  approx = gemm_closed_form(np, *(a.astype(np.float64) for a in args))
  big = max(
    float(np.max(approx[key]))
    for key in ("total_cycles", "ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes")
  )
  if not big < 2.0**62:
    raise ValueError(
      f"simulate_gemm(m={m!r}, n={n!r}, k={k!r}, rows={rows!r}, cols={cols!r}) has counts near "
      f"{big:.3g}, beyond int64; use smaller GEMM sizes or a larger array"
    )
  return gemm_closed_form(np, *args)


def _window_count(tau: jax.Array, lo: jax.Array, used: jax.Array, t: jax.Array) -> jax.Array:
  """#{x < used : lo + x <= tau < lo + x + t}: valid words on a skewed line (one per lane x)."""
  hi = jnp.minimum(tau - lo, used - 1)
  low = jnp.maximum(tau - lo - t + 1, 0)
  return jnp.maximum(hi - low + 1, 0)


def _cycle_step(case: tuple, carry: tuple, cycle: jax.Array) -> tuple[tuple, None]:
  """One clock of the skewed array: which operand words enter, which outputs leave."""
  m, n, k, r, c, df = case
  sr, sc, t = operand_dims(jnp, m, n, k, df)
  fr = -(-sr // r)
  folds = fr * (-(-sc // c))
  is_os = df == 0
  lines = jnp.where(is_os, t + r + c - 2, 2 * r + t + c - 2)
  live = cycle < folds * lines
  fold = cycle // lines
  tau = cycle % lines  # cycle within the fold
  row_fold, col_fold = fold % fr, fold // fr
  used_r = jnp.minimum(r, sr - row_fold * r)  # array rows this fold maps
  used_c = jnp.minimum(c, sc - col_fold * c)  # array columns this fold maps
  # Preloading the stationary operand: the fold's R x C tile, flipped, one array row per cycle
  # (the padded rows go first), no skew.
  preload = jnp.where((tau >= r - used_r) & (tau < r), used_c, 0)
  # Streams enter skewed: lane x starts at cycle lo + x and carries t words.
  row_stream = _window_count(tau, jnp.where(is_os, 0, r), used_r, t)
  col_stream = _window_count(tau, 0, used_c, t)
  ifmap = jnp.where(df == 2, preload, row_stream)
  filt = jnp.where(df == 0, col_stream, jnp.where(df == 1, preload, row_stream))
  # os drains its R x C tile after the t-cycle accumulation, skewed over columns, bottom row
  # first; ws/is emit t outputs per column after the 2R - 1 preload and fill lines.
  u = tau - (t - 1)
  os_out = jnp.maximum(jnp.minimum(u, used_c - 1) - jnp.maximum(u - used_r + 1, 0) + 1, 0)
  os_out = jnp.where(u >= 0, os_out, 0)
  ofmap = jnp.where(is_os, os_out, _window_count(tau, 2 * r - 1, used_c, t))
  # SCALE-Sim 3.0.0 also adds R + C os ofmap "writes" per fold (see module docstring).
  quirk = jnp.where(is_os & (tau == lines - 1), r + c, 0)
  busy = live.astype(jnp.int32)
  i, f, o, w, last = carry
  carry = (
    i + busy * ifmap,
    f + busy * filt,
    o + busy * (ofmap + quirk),
    w + busy * ofmap,
    jnp.where(live, cycle, last),
  )
  return carry, None


def simulate_gemm_cycles(
  m: Any, n: Any, k: Any, rows: Any, cols: Any, dataflow: Any, num_cycles: int | None = None
) -> dict:
  """Cycle-by-cycle ``lax.scan`` model of the same schedule, ``jit(vmap)`` over cases.

  Every argument broadcasts to one case batch ``[B]``. The scan runs ``num_cycles`` clocks (by
  default the largest schedule length of the batch, from the closed form) and carries the running
  SRAM counts and the index of the last live cycle, which is SCALE-Sim's ``total_cycles``.

  Returns:
    dict of int32 numpy arrays ``[B]``: ``total_cycles``, ``ifmap_sram_reads``,
    ``filter_sram_reads``, ``ofmap_sram_writes`` and ``ofmap_words``.
  """
  _check_positive(m=m, n=n, k=k, rows=rows, cols=cols)
  df = dataflow_code(dataflow)
  case = np.broadcast_arrays(*(np.asarray(v, np.int64) for v in (m, n, k, rows, cols, df)))
  if num_cycles is None:
    ref = gemm_closed_form(np, *case)
    num_cycles = int(np.max(ref["total_cycles"])) + 1
  case = tuple(jnp.asarray(np.ravel(v), jnp.int32) for v in case)
  out = _scan_cases(case, num_cycles)
  names = ("ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes", "ofmap_words")
  res = {name: np.asarray(v) for name, v in zip(names, out[:4])}
  res["total_cycles"] = np.asarray(out[4])
  return res


@functools.partial(jax.jit, static_argnums=1)
def _scan_cases(case: tuple, num_cycles: int) -> tuple:
  def one(*c: jax.Array) -> tuple:
    zero = jnp.zeros((), jnp.int32)
    init = (zero, zero, zero, zero, zero - 1)
    carry, _ = jax.lax.scan(
      lambda cr, cy: _cycle_step(c, cr, cy), init, jnp.arange(num_cycles, dtype=jnp.int32)
    )
    return carry

  return jax.vmap(one)(*case)
