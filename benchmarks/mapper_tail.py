"""Benchmark: the mapper's worst cases against brute force and against two lower bounds.

On the seeded co-design sample of ``benchmarks/hw_bench.py`` (``codesign_population(n, seed=1)``,
the pairs behind the ratio distribution in ``benchmarks/README_hw.md``), it

1. reports the default mapper's latency over two bounds for every pair: the compulsory bound
   ``max(compute, (M K + K N + M N) / bw)`` (``lower_bound_cycles``) and the capacity-aware I/O
   bound ``max(compute, Hong-Kung words / bw)`` (``io_lower_bound_cycles``, see
   ``nf_jax.hw.mapper.io_lower_bound_words_one``);
2. for every pair above ``--tail`` times the compulsory bound, searches a richer mapping space
   by brute force with the mapper's own cost model: all six loop orders, and per dimension every
   distinct tile size (every trip count, both unrounded and rounded up to the array side, so
   tiles narrower than the array that shrink the partial-sum footprint are included). It reports
   whether a mapping near the bound exists in the architecture model at all.

  python benchmarks/mapper_tail.py              # 3000 pairs, ~2-4 min on 2 shared cores
  python benchmarks/mapper_tail.py --smoke      # seconds
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
from hw_bench import codesign_population

from nf_jax import hw
from nf_jax.hw import mapper

# Loop positions of all six orders (m=0, n=1, k=2; outer to inner).
PERMS = np.array(
  [[p.index(d) for d in range(3)] for p in itertools.permutations(range(3))], np.float32
)
CHUNK = 1 << 20


def tile_sizes(d: int, unit: float) -> np.ndarray:
  """Every distinct tile size of a dimension ``d``: ``ceil(d / p)`` for every trip count ``p``,
  and the same rounded up to a multiple of ``unit`` (the array side it unrolls over)."""
  raw = np.unique(np.ceil(d / np.arange(1, d + 1)))
  rounded = np.minimum(d, np.ceil(raw / unit) * unit)
  return np.unique(np.concatenate([raw, rounded])).astype(np.float32)


@jax.jit
def _cycles(
  cfg: hw.HwConfig, mnk: jax.Array, tiles: jax.Array, pos: jax.Array, fold_overhead: jax.Array
) -> jax.Array:
  m, n, k = mnk[0], mnk[1], mnk[2]
  sc = dict(mapper._scalars(cfg), fold_overhead=fold_overhead)
  dims = (
    mapper._sized(m, tiles[:, 0]),
    mapper._sized(n, tiles[:, 1]),
    mapper._sized(k, tiles[:, 2]),
  )
  return mapper._costs(sc, m, n, k, *dims, pos)["cycles"]


def brute_force(
  cfg: hw.HwConfig, m: int, n: int, k: int, rounded: bool = False, fold_overhead: float = 1.0
) -> tuple[float, str, tuple, int]:
  """Fastest mapping of the richer space on ONE config (fields as 0-d arrays).

  ``rounded`` keeps only tiles that are multiples of the array side (the mapper's rule);
  ``fold_overhead`` 0 overlaps each fold's preload and skew (a what-if; 1 is the model).
  Returns ``(cycles, order, (tile_m, tile_n, tile_k), mappings searched)``."""
  units = [float(u) for u in mapper._units(cfg)]
  sizes = []
  for d, u in zip((m, n, k), units):
    s = tile_sizes(d, u)
    sizes.append(np.unique(np.minimum(d, np.ceil(s / u) * u)) if rounded else s)
  grid = np.stack(np.meshgrid(*sizes, indexing="ij"), -1).reshape(-1, 3)
  mnk = jnp.asarray([m, n, k], jnp.float32)
  best, arg = np.inf, None
  for p in PERMS:
    for s in range(0, len(grid), CHUNK):
      part = grid[s : s + CHUNK]
      if len(part) < CHUNK:  # one compiled shape: pad with the first row
        part = np.concatenate([part, np.repeat(part[:1], CHUNK - len(part), 0)])
      cyc = _cycles(cfg, mnk, jnp.asarray(part), jnp.asarray(p), jnp.float32(fold_overhead))
      cyc = np.asarray(cyc)
      j = int(np.argmin(cyc))
      if cyc[j] < best:
        order = "".join("mnk"[d] for d in np.argsort(p))
        best, arg = float(cyc[j]), (order, tuple(int(x) for x in part[j]))
  return best, arg[0], arg[1], len(grid) * len(PERMS)


def quantiles(x: np.ndarray) -> str:
  q = np.quantile(x, [0.0, 0.5, 0.9, 0.99, 1.0])
  return (
    f"min {q[0]:.3f} median {q[1]:.3f} p90 {q[2]:.3f} p99 {q[3]:.2f} max {q[4]:.2f}; "
    f"{100 * np.mean(x > 2.5):.1f} % above 2.5"
  )


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--cases", type=int, default=3000)
  p.add_argument("--tail", type=float, default=2.5, help="brute-force pairs above this ratio")
  p.add_argument("--show", type=int, default=15, help="pairs printed one per line")
  p.add_argument("--smoke", action="store_true")
  a = p.parse_args()
  if a.smoke:
    a.cases, a.show = 64, 3
  cfg, (m, n, k) = codesign_population(a.cases, seed=1)
  out = hw.map_gemm(cfg, m, n, k)
  r_lb = out["cycles"] / out["lower_bound_cycles"]
  r_io = out["cycles"] / out["io_lower_bound_cycles"]
  print(f"{a.cases} pairs, mapper / compulsory bound: {quantiles(r_lb)}")
  print(f"{a.cases} pairs, mapper / I/O (Hong-Kung) bound: {quantiles(r_io)}")
  assert np.all(r_io >= 1 - 1e-5), "the mapper beat the I/O lower bound: a model error"
  # How far the architecture-independent bound alone is from the compulsory one: pairs where
  # no chip with this much on-chip memory could be within the goal's ratio.
  io_over_lb = out["io_lower_bound_cycles"] / out["lower_bound_cycles"]
  print(
    f"{a.cases} pairs, I/O bound / compulsory bound: max {io_over_lb.max():.2f}; above 2.5x: "
    f"{int(np.sum(io_over_lb > 2.5))}, above 1.5x: {int(np.sum(io_over_lb > 1.5))}"
  )
  tail = np.argsort(-r_lb)
  tail = tail[: max(a.show, int(np.sum(r_lb > a.tail)))] if not a.smoke else tail[: a.show]
  print(
    f"brute force over 6 orders x every distinct tile size on the {len(tail)} worst pairs "
    "(ratio to the compulsory bound | to the I/O bound):"
  )
  print(
    "   i     M     N     K  RxC   df prec  SRAM kB a/b/c   bw   mapper     brute force   "
    "(order, tiles)   mappings   s"
  )
  rows = []
  for rank, i in enumerate(tail):
    one = jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), cfg)
    t0 = time.perf_counter()
    mi, ni, ki = int(m[i]), int(n[i]), int(k[i])
    best, order, tiles, count = brute_force(one, mi, ni, ki)
    rounded = brute_force(one, mi, ni, ki, rounded=True)[0]
    overlapped = brute_force(one, mi, ni, ki, fold_overhead=0.0)[0]
    lb, io = float(out["lower_bound_cycles"][i]), float(out["io_lower_bound_cycles"][i])
    assert best >= io * (1 - 1e-5), (i, best, io)
    rows.append(
      (
        r_lb[i],
        best / lb,
        r_io[i],
        best / io,
        rounded / lb,
        overlapped / overlapped_bound(one, mi, ni, ki),
      )
    )
    if rank < a.show:
      print(
        f"{i:4d} {mi:5d} {ni:5d} {ki:5d} {int(cfg.rows[i])}x{int(cfg.cols[i])}"
        f" {('os', 'ws', 'is')[int(cfg.dataflow[i])]} {int(cfg.precision[i])} "
        f"{cfg.ifmap_sram_kb[i]:g}/{cfg.filter_sram_kb[i]:g}/{cfg.ofmap_sram_kb[i]:g} "
        f"{cfg.dram_bw_gbs[i]:g}  {r_lb[i]:5.2f}|{r_io[i]:4.2f}  {best / lb:5.2f}|{best / io:4.2f}"
        f"  {order} {tiles}  {count}  {time.perf_counter() - t0:.1f}",
        flush=True,
      )
  x = np.asarray(rows)
  names = (
    "mapper / compulsory",
    "brute / compulsory",
    "mapper / I/O bound",
    "brute / I/O bound",
    "brute, array-multiple tiles only / compulsory",
    "brute, folds overlapped / its compulsory bound",
  )
  for col, name in enumerate(names):
    q = np.quantile(x[:, col], [0.5, 0.9, 1.0])
    print(
      f"  tail {name}: median {q[0]:.2f} p90 {q[1]:.2f} max {q[2]:.2f}; "
      f"{int(np.sum(x[:, col] <= 2.5))}/{len(x)} within 2.5x"
    )
  gain = x[:, 0] / x[:, 1]
  print(f"  mapper / brute force on the tail: median {np.median(gain):.2f} max {gain.max():.2f}")


def overlapped_bound(cfg: hw.HwConfig, m: int, n: int, k: int) -> float:
  """``max(folds x streamed length, compulsory words / bw)`` of ONE config: the compulsory bound
  when every fold's preload and skew overlap the previous fold."""
  r, c, df = float(cfg.rows), float(cfg.cols), int(cfg.dataflow)
  d_sr, d_sc, d_t = ((m, n, k), (k, n, m), (k, m, n))[df]
  _, bw, _ = mapper._capacities(cfg)
  return max(np.ceil(d_sr / r) * np.ceil(d_sc / c) * d_t, (m * k + k * n + m * n) / float(bw))


if __name__ == "__main__":
  main()
