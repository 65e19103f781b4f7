"""Benchmark: how the co-design front changes when the hardware model maps each GEMM (issue 14).

Runs the co-design search (``nf_jax.pareto.run``, the main job's settings) at seeds
``0 .. seeds - 1`` under both memory models of the hardware objectives: ``mapping="scalesim"``
(SCALE-Sim's fold order, partial sums spilled per K fold) and the mapped default
(``mapping="latency"``), switched by ``SearchConfig.hw_mapping``. Runs are paired by seed.

For each hardware gene it reports the share of front designs per choice (mean and standard
deviation over seeds) and, for the numeric genes, the per-seed mean log2 level of the front under
each model: the paired difference (mapped - scalesim), how many seeds agree in sign, and a
Wilcoxon signed-rank p-value over seeds (a seed is the unit: designs of one front are not
independent). To say why the fronts differ, it re-simulates the designs of every front under
both models (memory-stall share, DRAM words, batch-1 latency, power).

Settings: ``benchmarks/configs/front_change.py`` (``--config.<field>=``). Outputs in
``--workdir``: ``gene_shares.csv`` (one row per seed, model, gene and choice) and
``front_change.png`` (shares per gene, bars = mean over seeds, whiskers = standard deviation).
"""

from __future__ import annotations

import collections
import os
import time

import ml_collections
import numpy as np
from scipy import stats as st

from nf_jax import cli, io_utils
from nf_jax import pareto as PA
from nf_jax.pareto import problem as PP

HW_GENES = ("sram_kb", "dram_bw_gbs", "rows", "cols", "dataflow", "precision", "clock_ghz")
NUMERIC_GENES = ("sram_kb", "dram_bw_gbs", "rows", "cols", "clock_ghz")
MAPPINGS = ("scalesim", "latency")
OUTPUTS = ("gene_shares.csv", "front_change.png")  # what a run writes into --workdir


def front_genomes(
  seed: int, population: int, generations: int, mapping: str, batch: int
) -> np.ndarray:
  """Genomes ``int[F, N_GENES]`` of the front of one search (the main job's other settings)."""
  config = PA.SearchConfig(
    seed=seed, population=population, generations=generations, hw_mapping=mapping, batch=batch
  )
  result = PA.run(config, progress=False)
  return result.genomes[result.front]


def gene_shares(front: np.ndarray, gene: str) -> np.ndarray:
  """Share ``[choices]`` of ``front``'s designs per choice of ``gene`` (sums to 1)."""
  choices = dict(PP.GENES)[gene]
  count = collections.Counter(int(v) for v in front[:, PP.GENE_NAMES.index(gene)])
  return np.asarray([count[j] for j in range(len(choices))], float) / len(front)


def mean_log2_level(front: np.ndarray, gene: str) -> float:
  """Mean of log2(gene value) over ``front``'s designs (a numeric gene)."""
  choices = np.asarray(dict(PP.GENES)[gene], float)
  return float(np.mean(np.log2(choices[front[:, PP.GENE_NAMES.index(gene)]])))


def paired_level_test(scalesim: list[float], mapped: list[float]) -> dict[str, float]:
  """Mapped - scalesim per seed: mean difference, seeds with a positive/negative difference and
  the two-sided Wilcoxon signed-rank p-value (NaN when every difference is 0)."""
  diff = np.asarray(mapped) - np.asarray(scalesim)
  p = float("nan") if np.all(diff == 0) else float(st.wilcoxon(diff).pvalue)
  return dict(mean=float(diff.mean()), up=int(np.sum(diff > 0)), down=int(np.sum(diff < 0)), p=p)


def simulate(genomes: np.ndarray, mapping: str, batch: int) -> dict[str, np.ndarray]:
  wls = [PP.model_workload(PP.decode_topology(x), batch) for x in genomes]
  return PP.simulate_pairs(PP.decode_hw(genomes), wls, mapping=mapping)


def plot(shares: dict[str, dict[str, np.ndarray]], batch: int, path: str) -> None:
  """Bars of the share per choice of every hardware gene, one colour per model.
  ``shares[mapping][gene]``: ``[seeds, choices]``."""
  import matplotlib  # noqa: PLC0415 (a plotting backend only for the run that plots)

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, grid = plt.subplots(2, 4, figsize=(12, 6))
  axes = grid.ravel()
  for ax, gene in zip(axes, HW_GENES, strict=False):
    choices = dict(PP.GENES)[gene]
    x = np.arange(len(choices))
    for j, mapping in enumerate(MAPPINGS):
      s = shares[mapping][gene]
      label = f"mapping={mapping!r}" + (" (default)" if mapping == "latency" else "")
      ax.bar(x + (j - 0.5) * 0.4, 100 * s.mean(0), 0.4, yerr=100 * s.std(0), label=label)
    ax.set_xticks(x, [str(c) for c in choices], rotation=45, fontsize=7)
    ax.set_title(gene, fontsize=9)
    ax.set_ylabel("% of front designs")
  axes[-1].axis("off")
  axes[-1].legend(*axes[0].get_legend_handles_labels(), loc="center")
  n = next(iter(shares[MAPPINGS[0]].values())).shape[0]
  fig.suptitle(
    f"hardware genes of the co-design front per memory model, batch {batch} "
    f"({n} seeds; bars: mean, whiskers: std over seeds)"
  )
  fig.tight_layout()
  io_utils.atomic_savefig(fig, path, dpi=110)
  plt.close(fig)


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses settings the run cannot use, before any search."""
  del overrides
  if config.seeds < 2:
    raise ValueError(f"--config.seeds={config.seeds}: a paired comparison needs >= 2 seeds")
  PA.SearchConfig(  # the search's own checks
    population=config.population, generations=config.generations, batch=config.batch
  )


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the comparison; returns ``{"shares", "levels", "tests"}`` (also printed and saved).

  Refuses (``SystemExit``, before any search) a ``workdir`` that already holds an earlier run's
  outputs, so a rerun never overwrites committed results: pick a new ``--workdir`` and compare.
  """
  batch = config.batch
  earlier = [f for f in OUTPUTS if os.path.exists(os.path.join(workdir, f))]
  if earlier:
    raise SystemExit(
      f"error: --workdir={workdir} already holds {earlier} from an earlier run; pick a new "
      "--workdir (and diff the two), or delete those files to replace them"
    )
  os.makedirs(workdir, exist_ok=True)
  fronts: dict[str, list[np.ndarray]] = {m: [] for m in MAPPINGS}
  for seed in range(config.seeds):
    for mapping in MAPPINGS:
      t0 = time.perf_counter()
      front = front_genomes(seed, config.population, config.generations, mapping, batch)
      fronts[mapping].append(front)
      print(
        f"seed {seed} mapping={mapping!r}: {len(front)} front designs "
        f"({config.population} x {config.generations}), {time.perf_counter() - t0:.0f} s",
        flush=True,
      )
  shares = {
    m: {g: np.stack([gene_shares(f, g) for f in fronts[m]]) for g in HW_GENES} for m in MAPPINGS
  }
  levels = {
    m: {g: [mean_log2_level(f, g) for f in fronts[m]] for g in NUMERIC_GENES} for m in MAPPINGS
  }
  tests = {g: paired_level_test(levels["scalesim"][g], levels["latency"][g]) for g in NUMERIC_GENES}
  sizes = {m: [len(f) for f in fronts[m]] for m in MAPPINGS}
  print(
    f"front sizes (mean over {config.seeds} seeds): "
    + ", ".join(f"{m} {np.mean(sizes[m]):.0f}" for m in MAPPINGS)
  )
  print("share of front designs per choice, mean +- std over seeds (scalesim | mapped):")
  for gene in HW_GENES:
    choices = dict(PP.GENES)[gene]
    cells = []
    for j, c in enumerate(choices):
      a, b = (100 * shares[m][gene][:, j] for m in MAPPINGS)
      cells.append(f"{c}: {a.mean():.0f}+-{a.std():.0f} | {b.mean():.0f}+-{b.std():.0f}")
    print(f"  {gene:<12} " + ";  ".join(cells))
  print("mean log2 level of the front's numeric genes, paired by seed (mapped - scalesim):")
  for gene in NUMERIC_GENES:
    t = tests[gene]
    print(
      f"  {gene:<12} scalesim {np.mean(levels['scalesim'][gene]):6.3f}  mapped "
      f"{np.mean(levels['latency'][gene]):6.3f}  diff {t['mean']:+.3f} (x{2 ** t['mean']:.2f}); "
      f"up in {t['up']}, down in {t['down']} of {config.seeds} seeds; Wilcoxon p = {t['p']:.3g}"
    )
  rows = [
    dict(seed=s, mapping=m, gene=g, choice=str(c), share=shares[m][g][s, j])
    for m in MAPPINGS
    for g in HW_GENES
    for s in range(config.seeds)
    for j, c in enumerate(dict(PP.GENES)[g])
  ]
  io_utils.atomic_write_csv(os.path.join(workdir, "gene_shares.csv"), rows, float_format=".6f")
  plot(shares, batch, os.path.join(workdir, "front_change.png"))
  designs = np.unique(np.concatenate([f for m in MAPPINGS for f in fronts[m]]), axis=0)
  sims = {m: simulate(designs, m, batch) for m in MAPPINGS}
  print(
    f"the {len(designs)} designs on any front under both models, mapped / scalesim "
    "(p10 median p90):"
  )
  for key in ("throughput", "latency_b1_s", "power_w", "dram_words", "area_mm2"):
    q = np.quantile(sims["latency"][key] / sims["scalesim"][key], [0.1, 0.5, 0.9])
    print(f"  {key:<13} {q[0]:.3f} {q[1]:.3f} {q[2]:.3f}")
  for m in MAPPINGS:
    stall = sims[m]["stall_memory"] / sims[m]["cycles"]
    print(
      f"  memory stalls under {m:<8}: median {100 * np.median(stall):.1f} % of batch-{batch} cycles"
    )
  print(f"wrote {workdir}/gene_shares.csv and {workdir}/front_change.png")
  return dict(shares=shares, levels=levels, tests=tests)


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(
    main,
    os.path.join(here, "configs", "front_change.py"),
    validate=validate,
    workdir="runs/front_change",
    workdir_help="Folder for gene_shares.csv and front_change.png.",
  )
