"""python -m nf_jax.hw (grid sweep CLI) and the benchmark's smoke mode."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import hw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_sweep_writes_csv_and_plots(tmp_path):
  cmd = [
    sys.executable,
    "-m",
    "nf_jax.hw",
    f"--workdir={tmp_path}",
    "--config.workload=gemm",
    "--config.gemm=32,24,40",
    "--config.rows=4,8",
    "--config.cols=4",
    "--config.dataflow=os,ws",
    "--config.precision=int8",
    "--config.dram_bw_gbs=inf",
  ]
  subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=300)
  for name in ("sweep.csv", "meta.json", "throughput_vs_area.png", "energy_vs_latency.png"):
    assert os.path.getsize(tmp_path / name) > 0, name
  with open(tmp_path / "sweep.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 4
  # Compute-bound cycles of each row are SCALE-Sim's (closed form) + 1.
  for r in rows:
    ref = hw.simulate_gemm(32, 24, 40, int(r["rows"]), int(r["cols"]), r["dataflow"])
    assert float(r["cycles"]) == int(ref["total_cycles"]) + 1


def test_pareto_mask():
  from nf_jax.hw.sweep import pareto_mask

  cost = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2.5]])
  np.testing.assert_array_equal(pareto_mask(cost), [True, True, False, True, False])


def test_benchmark_smoke_jax_half():
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "benchmarks", "hw_bench.py"),
      f"--config={ROOT}/benchmarks/configs/hw_bench.py:smoke",
      "--config.scalesim=False",
    ],
    check=True,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "configs/min" in proc.stdout


def test_mapper_tail_benchmark_smoke():
  # The script asserts internally that neither the mapper nor brute force beats the I/O bound.
  proc = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", "mapper_tail.py"), "--smoke"],
    check=True,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert "mapper / brute force on the tail" in proc.stdout


def _load_benchmark(name: str, folder: str = "benchmarks"):
  """The script ``<folder>/<name>.py`` as a module (benchmarks are not a package)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, folder, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_front_change_paired_test_is_the_exact_signed_rank_distribution():
  """The per-seed paired test against brute force: every sign flip of the ranked differences."""
  import itertools

  fc = _load_benchmark("front_change")
  scalesim = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  mapped = [0.3, -0.1, 0.5, 0.2, 0.6, 0.4]  # distinct |differences|: ranks 1..6
  out = fc.paired_level_test(scalesim, mapped)
  diff = np.asarray(mapped)
  ranks = np.argsort(np.argsort(np.abs(diff))) + 1.0
  observed = ranks[diff > 0].sum()
  total = ranks.sum()
  stats = [
    sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=6)
  ]
  tail = min(observed, total - observed)
  brute = np.mean([min(s, total - s) <= tail for s in stats])
  assert out["p"] == pytest.approx(brute)
  assert (out["up"], out["down"]) == (5, 1)
  assert out["mean"] == pytest.approx(np.mean(diff))
  assert np.isnan(fc.paired_level_test([1.0, 2.0], [1.0, 2.0])["p"])


def test_front_change_gene_statistics_on_a_hand_built_front():
  from nf_jax.pareto import problem as PP

  fc = _load_benchmark("front_change")
  front = np.zeros((4, PP.N_GENES), np.int64)
  col = PP.GENE_NAMES.index("dram_bw_gbs")
  choices = dict(PP.GENES)["dram_bw_gbs"]
  front[:, col] = [0, 0, 1, len(choices) - 1]
  shares = fc.gene_shares(front, "dram_bw_gbs")
  assert shares[0] == 0.5 and shares[1] == 0.25 and shares[-1] == 0.25 and shares.sum() == 1.0
  expected = np.mean(np.log2([choices[0], choices[0], choices[1], choices[-1]]))
  assert fc.mean_log2_level(front, "dram_bw_gbs") == pytest.approx(expected)


def test_front_change_smoke_writes_shares_and_plot(tmp_path, capsys):
  fc = _load_benchmark("front_change")
  config = _load_benchmark("front_change", "benchmarks/configs").get_config("smoke")
  config.generations = 1
  fc.validate(config)
  out = fc.main(config, str(tmp_path))
  with open(tmp_path / "gene_shares.csv") as f:
    rows = list(csv.DictReader(f))
  assert {r["mapping"] for r in rows} == set(fc.MAPPINGS)
  for mapping in fc.MAPPINGS:  # each seed's shares of each gene sum to 1
    for gene in fc.HW_GENES:
      for seed in range(config.seeds):
        total = sum(
          float(r["share"])
          for r in rows
          if (r["mapping"], r["gene"], r["seed"]) == (mapping, gene, str(seed))
        )
        assert total == pytest.approx(1.0, abs=1e-5)
  assert (tmp_path / "front_change.png").stat().st_size > 10_000
  assert set(out["tests"]) == set(fc.NUMERIC_GENES)
  assert "Wilcoxon p" in capsys.readouterr().out
  before = (tmp_path / "gene_shares.csv").read_bytes()
  with pytest.raises(SystemExit, match="already holds"):  # a rerun never overwrites results
    fc.main(config, str(tmp_path))
  assert (tmp_path / "gene_shares.csv").read_bytes() == before
  config.seeds = 1
  with pytest.raises(ValueError, match="needs >= 2 seeds"):
    fc.validate(config)
