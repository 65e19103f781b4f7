"""Benchmark: how the co-design front changes when the hardware model maps each GEMM (issue 14).

Runs the co-design search (``nf_jax.pareto.run``) twice at the same seed and budget: once
with the hardware objectives from ``mapping="scalesim"`` (SCALE-Sim's fold order, partial sums
spilled per K fold) and once from the mapped default (``mapping="latency"``). For each front it
prints the distribution of the hardware genes (SRAM size, DRAM bandwidth, array shape,
dataflow, precision, clock) and, to say why they differ, re-simulates both fronts under both
models: the memory-stall share of the batch latency and DRAM words per sample.

The search's switch is ``SearchConfig.hw_mapping`` (``--config.hw_mapping=`` on the CLI).

  nice -n 19 python benchmarks/front_change.py                          # pop 28 x 20, ~5-8 min
  python benchmarks/front_change.py --generations=2                     # smoke, ~2 min
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from nf_jax import pareto as PA
from nf_jax.pareto import problem as PP

HW_GENES = ("sram_kb", "dram_bw_gbs", "rows", "cols", "dataflow", "precision", "clock_ghz")


def front_genomes(seed: int, population: int, generations: int, mapping: str) -> np.ndarray:
  config = PA.SearchConfig(
    seed=seed, population=population, generations=generations, hw_mapping=mapping
  )
  result = PA.run(config, progress=False)
  return result.genomes[result.front]


def gene_table(fronts: dict[str, np.ndarray]) -> str:
  lines = []
  for gene in HW_GENES:
    choices = dict(PP.GENES)[gene]
    col = PP.GENE_NAMES.index(gene)
    lines.append(f"{gene}:")
    for name, g in fronts.items():
      count = collections.Counter(int(v) for v in g[:, col])
      share = "  ".join(
        f"{choices[j]}:{100 * count[j] / len(g):3.0f}%" for j in range(len(choices))
      )
      lines.append(f"  {name:<9} {share}")
  return "\n".join(lines)


def simulate(genomes: np.ndarray, mapping: str, batch: int) -> dict[str, np.ndarray]:
  wls = [PP.model_workload(PP.decode_topology(x), batch) for x in genomes]
  return PP.simulate_pairs(PP.decode_hw(genomes), wls, mapping=mapping)


def stats(genomes: np.ndarray, mapping: str, batch: int) -> dict[str, float]:
  """Medians over a front's designs, simulated under ``mapping``."""
  sim = simulate(genomes, mapping, batch)
  cfg = PP.decode_hw(genomes)
  pes = np.asarray(cfg.rows, float) * np.asarray(cfg.cols)
  return dict(
    memory_stall=float(np.median(sim["stall_memory"] / sim["cycles"])),
    dram_words_per_sample=float(np.median(sim["dram_words"] / batch)),
    throughput=float(np.median(sim["throughput"])),
    area_mm2=float(np.median(sim["area_mm2"])),
    power_w=float(np.median(sim["power_w"])),
    pes=float(np.median(pes)),
  )


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--population", type=int, default=28)
  p.add_argument("--generations", type=int, default=20)
  a = p.parse_args()
  batch = PA.SearchConfig().batch
  fronts = {}
  for mapping in ("scalesim", "latency"):
    t0 = time.perf_counter()
    fronts[mapping] = front_genomes(a.seed, a.population, a.generations, mapping)
    print(
      f"mapping={mapping!r}: {len(fronts[mapping])} front designs after "
      f"{a.population} x {a.generations} evaluations (seed {a.seed}), "
      f"{time.perf_counter() - t0:.0f} s",
      flush=True,
    )
  print("hardware genes on each front (share of front designs per choice):")
  print(gene_table(fronts))
  print("each front re-simulated under both models (medians over its designs):")
  for front in fronts:
    for mapping in fronts:
      s = stats(fronts[front], mapping, batch)
      print(
        f"  {front:<8} front under {mapping:<8}: memory stall {100 * s['memory_stall']:4.1f} % of "
        f"cycles, DRAM {s['dram_words_per_sample']:9.0f} words/sample, throughput "
        f"{s['throughput']:10.0f}/s, area {s['area_mm2']:6.2f} mm2, power {s['power_w']:.3f} W, "
        f"{s['pes']:.0f} PEs"
      )
  both = np.unique(np.concatenate(list(fronts.values())), axis=0)
  sims = {mapping: simulate(both, mapping, batch) for mapping in fronts}
  print(
    f"objectives of the {len(both)} designs on either front, mapped / scalesim (p10 median p90):"
  )
  for key in ("throughput", "latency_b1_s", "power_w", "dram_words", "area_mm2"):
    q = np.quantile(sims["latency"][key] / sims["scalesim"][key], [0.1, 0.5, 0.9])
    print(f"  {key:<13} {q[0]:.3f} {q[1]:.3f} {q[2]:.3f}")


if __name__ == "__main__":
  main()
