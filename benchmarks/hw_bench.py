"""Benchmark: nf_jax.hw config evaluations per minute vs SCALE-Sim 3.0.0, measured in one run.

For the 256x256x256 GEMM workload it measures, side by side:

1. ``nf_jax.hw.simulate`` throughput: configs evaluated per minute in one ``jit(vmap)`` call over
   a random population (rows, cols, dataflow, precision, SRAM, bandwidth), compile excluded and
   reported separately (goal >= 100,000 per minute on 2 CPU cores);
2. SCALE-Sim's seconds per config on the same GEMM (real ``scalesim`` 3.0.0, run in-process if it
   imports, else through ``scripts/scalesim_oracle.py`` in the venv named by ``scalesim_python``;
   its in-process simulation time is used, not Python start-up), and the per-config speed ratio
   (goal >= 1000x);
3. exact agreement: for each SCALE-Sim config, ``total_cycles`` and the three SRAM counts from
   ``simulate_gemm`` and from ``simulate`` (cycles) against SCALE-Sim.

4. the mapper (``mapping="latency"``, the default): mapped latency over the lower bound
   ``max(dataflow compute cycles, compulsory DRAM words / bw)`` on random dense layers and configs
   drawn from the co-design search space (``nf_jax.pareto.problem.GENES``), as a distribution
   (goal: median <= 1.1, p90 <= 1.5, max <= 2.5, never below 1), and configs/min of both
   mappings (goal >= 1M/min with the mapper).

Command, runtime and result: ``benchmarks/configs/hw_bench.py`` (the default ``--config``;
overrides ``--config.<field>=``, the pattern of :mod:`nf_jax.cli`)::

  python benchmarks/hw_bench.py --config=benchmarks/configs/hw_bench.py:smoke   # CI
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import ml_collections
import numpy as np

from nf_jax import cli, hw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "scalesim_oracle.py")
COUNTS = ("total_cycles", "ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes")


def random_population(n: int, seed: int = 0) -> hw.HwConfig:
  """``n`` random configs spanning the co-design search space."""
  rng = np.random.default_rng(seed)
  return hw.make_config(
    rows=rng.integers(1, 257, n),
    cols=rng.integers(1, 257, n),
    dataflow=rng.integers(0, 3, n),
    precision=rng.integers(0, 4, n),
    ifmap_sram_kb=rng.choice([8.0, 64.0, 512.0], n),
    filter_sram_kb=rng.choice([8.0, 64.0, 512.0], n),
    ofmap_sram_kb=rng.choice([8.0, 64.0], n),
    dram_bw_gbs=rng.choice([4.0, 16.0, 64.0, np.inf], n),
    clock_ghz=rng.uniform(0.5, 2.0, n),
    tech_nm=rng.choice([45.0, 22.0, 7.0], n),
  )


def codesign_population(n: int, seed: int = 0) -> tuple[hw.HwConfig, np.ndarray]:
  """``n`` configs from the co-design genes and ``n`` random dense layers ``[3, n]`` (M, N, K):
  batch M log-uniform in 1..4096, N and K log-uniform in 16..4096."""
  rng = np.random.default_rng(seed)
  sram = rng.choice([32.0, 64.0, 128.0, 256.0, 512.0, 1024.0], n)
  cfg = hw.make_config(
    rows=rng.choice([8, 16, 32, 64, 128], n),
    cols=rng.choice([8, 16, 32, 64, 128], n),
    dataflow=rng.integers(0, 3, n),
    precision=rng.integers(0, 4, n),
    ifmap_sram_kb=sram,
    filter_sram_kb=sram,
    ofmap_sram_kb=sram / 2,
    dram_bw_gbs=rng.choice([8.0, 16.0, 32.0, 64.0, 128.0, 256.0], n),
    clock_ghz=rng.choice([0.5, 0.8, 1.0, 1.5, 2.0], n),
  )
  mnk = np.round(2.0 ** np.stack([rng.uniform(0, 12, n), *rng.uniform(4, 12, (2, n))]))
  return cfg, mnk


def bench_mapper(n: int, huge_sram: bool = True) -> dict:
  """Mapped latency / lower bound on ``n`` random (layer, config) pairs of the co-design space,
  and on the same pairs with 1 GiB SRAMs (what remains when capacity never binds)."""
  cfg, (m, nn, k) = codesign_population(n, seed=1)
  res = {}
  huge = cfg._replace(**{f: np.full(n, 2.0**20, np.float32) for f in SRAM_FIELDS})
  sets = (("codesign", cfg), ("huge_sram", huge)) if huge_sram else (("codesign", cfg),)
  for name, c in sets:
    out = hw.map_gemm(c, m, nn, k)
    ratio = out["cycles"] / out["lower_bound_cycles"]
    q = np.quantile(ratio, [0.0, 0.5, 0.9, 0.99, 1.0])
    res[name] = dict(min=q[0], median=q[1], p90=q[2], p99=q[3], max=q[4], over=np.mean(ratio > 2.5))
  return res


SRAM_FIELDS = ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")


def bench_jax(
  m: int, n: int, k: int, population: int, repeats: int, mapping: str = "latency"
) -> dict:
  wl = hw.gemm_workload(m, n, k)
  cfg = random_population(population)
  t0 = time.perf_counter()
  hw.simulate(cfg, wl, mapping=mapping)
  compile_s = time.perf_counter() - t0
  best = np.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = hw.simulate(cfg, wl, mapping=mapping)
    best = min(best, time.perf_counter() - t0)
  assert np.all(np.isfinite(out["latency_s"]))
  # One config per call (what a non-batched caller pays: dispatch + padding to 8), warm.
  one = hw.make_config(rows=32, cols=32)
  hw.simulate(one, wl, mapping=mapping)
  t0 = time.perf_counter()
  for _ in range(20):
    hw.simulate(one, wl, mapping=mapping)
  single = (time.perf_counter() - t0) / 20
  return dict(
    single_call_s=single,
    population=population,
    compile_s=compile_s,
    seconds=best,
    per_config_s=best / population,
    per_minute=60.0 * population / best,
  )


def scalesim_runner(python: str) -> list[str] | None:
  try:
    from scalesim.scale_sim import scalesim  # noqa: F401,PLC0415

    return [sys.executable]
  except Exception as e:  # scalesim 3.0.0 breaks under numpy >= 2.4 (upstream issue #160)
    print(f"scalesim not importable here ({type(e).__name__}); trying {python}")
  return [python] if os.path.exists(python) else None


def run_scalesim(runner: list[str], case: tuple) -> dict:
  proc = subprocess.run(
    [*runner, SCRIPT, "--case", ",".join(map(str, case))],
    capture_output=True,
    text=True,
    check=True,
    timeout=3600,
  )
  return json.loads(proc.stdout.strip().splitlines()[-1])


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses a malformed workload, mapping or SCALE-Sim case before any work."""
  del overrides
  if len(config.gemm) != 3 or any(int(x) < 1 for x in config.gemm):
    raise ValueError(f"--config.gemm={tuple(config.gemm)} must be three sizes M,N,K >= 1")
  cli.check_choices("mappings", cli.names(config.mappings), hw.MAPPINGS)
  for spec in cli.names(config.scalesim_configs):
    dims, _, df = spec.partition(":")
    if df not in hw.DATAFLOWS or len(dims.split("x")) != 2 or not dims.replace("x", "").isdigit():
      raise ValueError(
        f"--config.scalesim_configs: {spec!r} must be <rows>x<cols>:<dataflow>, e.g. 32x32:os "
        f"(dataflows {hw.DATAFLOWS})"
      )


def main(config: ml_collections.ConfigDict) -> None:
  """Runs the benchmark as ``config`` (``benchmarks/configs/hw_bench.py``) says."""
  m, n, k = (int(x) for x in config.gemm)
  print(f"workload: GEMM M={m} N={n} K={k}; CPU cores visible: {os.cpu_count()}")
  mp = bench_mapper(config.mapper_cases, huge_sram=config.mapper_huge_sram)
  for name, d in mp.items():
    print(
      f"mapper ({name}): latency / max(compute, compulsory DRAM / bw) on "
      f"{config.mapper_cases} random (dense layer, config) pairs: min {d['min']:.3f} "
      f"median {d['median']:.3f} p90 {d['p90']:.3f} p99 {d['p99']:.3f} max {d['max']:.2f}; "
      f"{100 * d['over']:.1f} % above 2.5 (goal: median <= 1.1, p90 <= 1.5, max <= 2.5, min >= 1)"
    )
  for mapping in cli.names(config.mappings):
    jx = bench_jax(m, n, k, config.population, repeats=config.repeats, mapping=mapping)
    print(
      f"nf_jax.hw.simulate(mapping={mapping!r}): {jx['population']} configs in "
      f"{jx['seconds']:.4f} s (compile {jx['compile_s']:.2f} s) -> {jx['per_minute']:,.0f} "
      "configs/min (goal >= 1,000,000 with the mapper)"
    )
  runner = scalesim_runner(config.scalesim_python) if config.scalesim else None
  if runner is None:
    print("SCALE-Sim half skipped: no runnable scalesim (see scripts/scalesim_oracle.py)")
    return
  agree = total = 0
  ss_times = []
  for spec in cli.names(config.scalesim_configs):
    dims, df = spec.split(":")
    r, c = (int(x) for x in dims.split("x"))
    ss = run_scalesim(runner, (m, n, k, r, c, df))
    ss_times.append(ss["scalesim_seconds"])
    ours = hw.simulate_gemm(m, n, k, r, c, df)
    batched = hw.simulate(hw.make_config(rows=r, cols=c, dataflow=df), hw.gemm_workload(m, n, k))
    ok = all(int(ours[key]) == ss[key] for key in COUNTS)
    ok &= int(batched["cycles"][0]) == ss["total_cycles"] + 1
    agree += ok
    total += 1
    print(
      f"  {r}x{c} {df}: SCALE-Sim {ss['scalesim_seconds']:.2f} s, total_cycles "
      f"{ss['total_cycles']} vs ours {int(ours['total_cycles'])}; counts exact: {ok}"
    )
  per = float(np.mean(ss_times))
  print(
    f"SCALE-Sim: {per:.3f} s/config; nf_jax.hw: {jx['per_config_s'] * 1e6:.3f} us/config "
    f"-> {per / jx['per_config_s']:,.0f}x faster per config (goal >= 1000x)"
  )
  print(
    f"  unbatched (one config per call): {jx['single_call_s'] * 1e3:.2f} ms/config -> "
    f"{per / jx['single_call_s']:,.0f}x faster"
  )
  print(f"exact agreement (cycles + 3 SRAM counts, closed form and batched): {agree}/{total}")


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(main, os.path.join(here, "configs", "hw_bench.py"), validate=validate)
