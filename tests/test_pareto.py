"""Tests of the co-design search (nf_jax.pareto and its modules, nf_jax.calibration).

Searches calibrate on ``log_params`` only and the calibration test on structural scores, so no
fit-based proxy compiles (CI time); the fit path is exercised by nf_jax.proxy's own tests.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from nf_jax import calibration as C
from nf_jax import hw
from nf_jax import pareto as PA
from nf_jax import topology as T
from nf_jax.pareto import accuracy as A
from nf_jax.pareto import operators
from nf_jax.pareto import problem as PP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ("connectivity", "log_params")
TINY = dict(
  population=12, generations=3, n_partitions=1, inner_partitions=1, features=("log_params",)
)


def _genome(**genes) -> np.ndarray:
  x = np.zeros(PP.N_GENES, np.int64)
  for name, value in genes.items():
    x[PP.GENE_NAMES.index(name)] = dict(PP.GENES)[name].index(value)
  return x


def test_decode_repairs_to_valid_topologies():
  # Hand-worked repairs: a butterfly cannot narrow 784 -> 256, so n becomes 1024; radix 8 is not
  # a valid butterfly radix at 1024 (1024 = 2^10 = 4^5 = 32^2), the nearest on a log scale is 4;
  # depth level 1/2 of log_4 1024 = 5 rounds to 2 (banker's rounding of 2.5).
  fam, n, params = PP.decode_topology(
    _genome(family="butterfly", hidden_width=256, radix=8, depth_level=0.5)
  )
  assert (fam, n, params) == ("butterfly", 1024, {"skip": False, "radix": 4, "depth": 2})
  # random keeps a narrow width; fan-in 16, full depth ceil(log 784 / log 16) = 3.
  fam, n, params = PP.decode_topology(
    _genome(family="random", hidden_width=256, radix=16, depth_level=1.0)
  )
  assert (fam, n, params) == ("random", 256, {"skip": False, "fan_in": 16, "depth": 3})
  # Every genome in (and beyond) the bounds decodes to buildable topologies.
  rng = np.random.default_rng(0)
  for x in rng.integers(-2, PP.UPPER + 3, size=(300, PP.N_GENES)):
    spec = PP.decode_topology(x)
    first, hidden = PP.model_topologies(*spec)
    assert first.n_in == PP.D_IN and hidden.n_out == spec[1] and hidden.depth <= 10


def test_reset_mutation_redraws_genes_uniformly_within_bounds():
  problem = PA.CoDesignProblem(PA.SearchConfig(**TINY), evaluator=None)
  x = np.tile(PP.UPPER.astype(float), (4000, 1))  # every gene at its upper bound
  out = operators.RandomResetMutation(0.25)._do(problem, x, random_state=np.random.default_rng(0))
  assert np.all((out >= 0) & (out <= PP.UPPER)) and np.all(out == np.round(out))
  # A redrawn gene lands on its old value with probability 1 / (choices): correct for that.
  changed = (out != x).mean(axis=0)
  expected = 0.25 * (1 - 1 / (PP.UPPER + 1))
  np.testing.assert_allclose(changed, expected, atol=0.03)
  # Redraws are uniform over the choices: the family gene's values appear equally often.
  family = out[:, 0][out[:, 0] != x[0, 0]]
  counts = np.bincount(family.astype(int), minlength=PP.UPPER[0] + 1)[: PP.UPPER[0]]
  assert counts.min() > 0.6 * counts.mean()


def test_simulate_pairs_matches_public_simulate():
  """One vmapped call over (config, workload) pairs == nf_jax.hw.simulate per candidate."""
  xs = np.stack(
    [
      _genome(family="dense", hidden_width=256, rows=16, cols=8, dataflow="ws"),
      _genome(family="dense", hidden_width=512, precision="fp32", sram_kb=32, dram_bw_gbs=8),
      _genome(family="butterfly", radix=32, depth_level=1.0, skip=True, rows=64, hw_radix=4),
    ]
  )
  specs = [PP.decode_topology(x) for x in xs]
  wls = [hw.make_workload([*PP.model_topologies(*s), ("dense", s[1], 10)], 64) for s in specs]
  cfg = PP.decode_hw(xs)
  keys = ("latency_s", "throughput", "power_w", "area_mm2", "energy_per_sample_j", "cycles")
  got = {}
  for mapping in ("latency", "scalesim"):  # SearchConfig.hw_mapping reaches the simulator
    got[mapping] = PP.simulate_pairs(cfg, wls, mapping=mapping)
    for i in range(len(xs)):
      ref = hw.simulate(hw.take(cfg, i), wls[i], mapping=mapping)
      for key in keys:
        np.testing.assert_allclose(got[mapping][key][i], ref[key][0], rtol=1e-6, err_msg=key)
  # The small-SRAM fp32 design spills under SCALE-Sim's fold order: the two models differ there.
  assert not np.allclose(got["latency"]["power_w"], got["scalesim"]["power_w"])
  with pytest.raises(ValueError, match="hw_mapping='tiled'"):
    PA.SearchConfig(hw_mapping="tiled")


def test_calibration_recovers_linear_truth_and_loads_contract():
  specs = [("butterfly", 256, {"radix": 2, "depth": d, "skip": False}) for d in (1, 2, 4, 8)] + [
    ("random", 256, {"fan_in": k, "depth": 2, "skip": False}) for k in (2, 4, 8)
  ]
  x = C.features(specs, FEATURES)
  acc = 0.5 + 0.1 * x[:, 0] + 0.05 * x[:, 1]  # exactly linear: LOO error ~ 0 without shrinkage
  cal = C.fit(specs, acc, FEATURES, lam=1e-9)
  assert cal.loo_mae < 1e-6 < cal.baseline_mae
  # The committed CSV follows the study contract: T.make rebuilds each row's topology.
  specs, acc = C.load_results(C.DEFAULT_CSV)
  assert len(specs) >= 12 and np.all((acc > 0.1) & (acc <= 1.0))
  import csv

  with open(C.DEFAULT_CSV) as f:
    rows = [r for r in csv.DictReader(f)]
  kept = [
    r
    for r in rows
    if np.isfinite(float(r["test_accuracy"]))
    and (r["name"] == "dense" or (r.get("weight_init") or "depth_aware") == "depth_aware")
  ]
  assert len(kept) == len(specs)
  for (name, n, params), row in zip(specs, kept):
    assert T.make(name, n, **params).num_params == int(row["num_params"])


def test_calibration_drops_init_ablation_rows(tmp_path):
  import csv

  with open(C.DEFAULT_CSV) as f:
    rows = list(csv.DictReader(f))
  cascade = next(r for r in rows if r["name"] == "butterfly")
  extra = dict(cascade, weight_init="he", test_accuracy="0.1")
  path = tmp_path / "results.csv"
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows + [extra])
  specs, acc = C.load_results(str(path))
  reference_specs, reference_acc = C.load_results(C.DEFAULT_CSV)
  assert specs == reference_specs and np.array_equal(acc, reference_acc)


def test_reference_directions_two_layers():
  # Outer layer, p = 2 on 6 objectives: the 6 corners and the 15 edge midpoints; inner layer,
  # p = 1 shrunk halfway to the centre: corner i -> 0.5 e_i + 0.5 / 6 in every coordinate.
  ref = PA.reference_directions(2, 1)
  assert ref.shape == (27, 6) == (PA.num_ref_dirs(2, 1), 6)
  np.testing.assert_allclose(ref.sum(1), 1.0, atol=1e-12)
  outer = {tuple(r) for r in np.rint(ref[:21] * 2).astype(int)}
  assert outer == {tuple(r) for r in np.eye(6, dtype=int) * 2} | {
    tuple(np.eye(6, dtype=int)[i] + np.eye(6, dtype=int)[j]) for i in range(6) for j in range(i)
  }
  expected_inner = 0.5 * np.eye(6) + 0.5 / 6
  inner = ref[21:][np.argsort(-ref[21:], axis=0)[0]]  # row i: the one largest in objective i
  np.testing.assert_allclose(inner, expected_inner, atol=1e-12)
  np.testing.assert_array_equal(PA.reference_directions(2, 0), ref[:21])
  assert PA.num_ref_dirs(3) == 56


def test_ideal_tournament_prefers_feasible_then_nearer_the_ideal():
  from pymoo.core.population import Population

  # Two objectives scaled over the population: f0 in [0, 4], f1 in [10, 30].
  f = np.array([[0.0, 30.0], [4.0, 10.0], [1.0, 15.0], [2.0, 20.0]])
  cv = np.array([[0.0], [0.0], [0.0], [0.5]])
  pop = Population.new(F=f, CV=cv)
  # Scaled sums: 0 + 1 = 1, 1 + 0 = 1, 0.25 + 0.25 = 0.5, 0.5 + 0.5 = 1 (but infeasible).
  pairs = np.array([[0, 2], [2, 1], [0, 1], [1, 0], [3, 0], [2, 3]])
  winners = PA.ideal_tournament(pop, pairs)
  assert winners.shape == (6, 1)
  np.testing.assert_array_equal(winners[:, 0], [2, 2, 0, 1, 0, 2])
  with pytest.raises(ValueError, match="mating='best'"):
    PA.make_algorithm(PA.SearchConfig(**TINY), mating="best")


def test_invalid_flag_combinations_raise():
  with pytest.raises(ValueError, match="population=8 is below the 62 reference"):
    PA.SearchConfig(population=8, n_partitions=3)
  with pytest.raises(ValueError, match="inner_partitions=-1 must be >= 0"):
    PA.SearchConfig(inner_partitions=-1)
  with pytest.raises(
    ValueError, match="--config.features=.* is read only with --config.accuracy=proxy or table"
  ):
    PA.SearchConfig(accuracy="train", features=FEATURES)
  with pytest.raises(ValueError, match="min_accuracy=1.5"):
    PA.SearchConfig(min_accuracy=1.5)
  with pytest.raises(ValueError, match="--resume needs"):
    PA.run(PA.SearchConfig(**TINY), workdir="/nonexistent-dir", resume=True, progress=False)
  with pytest.raises(ValueError, match="algorithm= was given, but config.algorithm='random'"):
    PA.run(
      PA.SearchConfig(**{**TINY, "algorithm": "random"}),
      progress=False,
      algorithm=PA.make_algorithm(PA.SearchConfig(**TINY)),
    )


def test_cli_config_states_the_dataclass_defaults_and_parses_overrides():
  from nf_jax.pareto import config as pareto_config

  assert pareto_config.search_config(pareto_config.get_config()) == PA.SearchConfig()
  cfg = pareto_config.get_config()
  cfg.max_area = 50.0  # a placeholder(float): unset is None, set is a float
  cfg.features = ("log_params,fit_score",)  # what --config.features=log_params,fit_score gives
  got = pareto_config.search_config(cfg)
  assert got.max_area == 50.0 and got.features == ("log_params", "fit_score")
  cfg.population = 1
  with pytest.raises(ValueError, match="population=1 must be >= 2"):
    pareto_config.search_config(cfg)


def test_cli_and_benchmark_define_no_flags_on_import():
  import subprocess
  import sys

  code = (
    "import importlib.util, os\n"
    "from absl import flags\n"
    "import nf_jax.pareto.__main__ as cli\n"
    "spec = importlib.util.spec_from_file_location('bench', os.path.join("
    f"{ROOT!r}, 'benchmarks', 'pareto_bench.py'))\n"
    "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
    "before = set(flags.FLAGS)\n"
    "cli.define_flags()\n"
    "print(sorted(before & {'config', 'workdir', 'seeds', 'coordinator_address'}),"
    " sorted({'config', 'workdir', 'resume', 'coordinator_address'} - set(flags.FLAGS)))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split("\n")[-2] == "[] []", out.stdout


def test_cli_reads_a_config_file_and_refuses_an_unknown_field(tmp_path):
  import subprocess
  import sys

  variant = tmp_path / "variant.py"
  variant.write_text(
    "from nf_jax.pareto import config\n\n\ndef get_config():\n"
    "  c = config.get_config()\n  c.population = 5\n  return c\n"
  )
  workdir = tmp_path / "run"
  for args, message in (
    ([f"--config={variant}"], "population=5 is below the 27 reference directions"),
    (["--config.populaton=5"], "no field of SearchConfig: 'populaton' Did you mean \"population\""),
  ):
    out = subprocess.run(
      [sys.executable, "-m", "nf_jax.pareto", f"--workdir={workdir}", *args],
      capture_output=True,
      text=True,
      timeout=300,
      cwd=ROOT,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not workdir.exists()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """An uninterrupted tiny run (its outputs are checked and it is the resume reference)."""
  workdir = str(tmp_path_factory.mktemp("pareto-ref"))
  return PA.run(PA.SearchConfig(**TINY), workdir=workdir, progress=False), workdir


def test_same_seed_same_front_and_outputs(reference_run):
  res, workdir = reference_run
  again = PA.run(PA.SearchConfig(**TINY), progress=False)
  np.testing.assert_array_equal(res.genomes[res.front], again.genomes[again.front])
  np.testing.assert_array_equal(res.F[res.front], again.F[again.front])
  other = PA.run(PA.SearchConfig(**{**TINY, "seed": 1}), progress=False)
  assert not np.array_equal(res.genomes, other.genomes)
  # The front really is non-dominated among all feasible evaluations, and pareto.csv lists it.
  f = res.F[res.feasible]
  for i in res.front:
    assert not np.any(np.all(f <= res.F[i], axis=1) & np.any(f < res.F[i], axis=1))
  import csv

  with open(os.path.join(workdir, "pareto.csv")) as fh:
    rows = list(csv.DictReader(fh))
  assert len(rows) == len(res.front)
  for col in PP.OBJECTIVES:
    assert col in rows[0]
  acc = np.asarray([float(r["accuracy"]) for r in rows])
  np.testing.assert_allclose(1 - acc, res.F[res.front, 0], atol=1e-5)
  for name in ("evaluations.csv", "hypervolume.csv", "pairs.png", "parallel.png", "summary.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert np.all(np.diff(res.hv) >= -1e-12)  # the archive front only grows


def test_run_uses_the_algorithm_passed(reference_run):
  res, _ = reference_run
  algorithm = PA.make_algorithm(PA.SearchConfig(**TINY), mating="random")
  got = PA.run(PA.SearchConfig(**TINY), progress=False, algorithm=algorithm)
  assert algorithm.problem is not None and algorithm.n_gen - 1 == TINY["generations"]
  # Same seed, same initial sample; pymoo's random parent tournament then breeds other designs.
  first = TINY["population"]
  np.testing.assert_array_equal(got.genomes[:first], res.genomes[:first])
  assert not np.array_equal(got.genomes, res.genomes)


def test_constraints_make_designs_infeasible(reference_run):
  res, _ = reference_run
  area = np.asarray([res.evaluator.cache[PP.genome_hash(x)]["area"] for x in res.genomes])
  limit = float(np.median(area))
  cons = PA.run(PA.SearchConfig(**{**TINY, "generations": 2, "max_area": limit}), progress=False)
  area_c = np.asarray([cons.evaluator.cache[PP.genome_hash(x)]["area"] for x in cons.genomes])
  np.testing.assert_array_equal(cons.feasible, area_c <= limit)
  assert np.all(area_c[cons.front] <= limit)


def test_benchmark_smoke():
  import importlib.util

  spec = importlib.util.spec_from_file_location(
    "pareto_bench", os.path.join(ROOT, "benchmarks", "pareto_bench.py")
  )
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  config = bench.get_config()  # through the CLI's config, as the command line runs it
  config.update({**TINY, "generations": 1, "seeds": 1, "compare": ("one_layer,sbx",)})
  hv = bench.main(config)
  assert set(hv) == set(PA.ALGORITHMS) | {"nsga3_one_layer", "nsga3_sbx", "nsga2_sbx"}
  sbx = bench._sbx_algorithm(PA.SearchConfig(**TINY))  # only the operators differ
  assert type(sbx.mating.crossover).__name__ == "SBX"
  assert type(sbx.mating.mutation).__name__ == "PM"
  assert sbx.mating.selection.func_comp is PA.ideal_tournament
  for values in hv.values():
    assert len(values) == 1 and 0.0 < values[0] <= 1.1**6
  config.update({"accuracy": "train", "features": PA.SearchConfig.features})
  with pytest.raises(ValueError, match="accuracy='train' trains every new topology"):
    bench.main(config)


def test_train_accuracy_path_matches_trainer_and_caches():
  """--accuracy=train: a runlocal-size training per distinct topology, cached by genome."""
  from nf_jax import train as tr
  from nf_jax.data import Dataset, split_validation

  rng = np.random.default_rng(0)
  proj = rng.normal(size=(784, 10))
  x = rng.normal(size=(640, 784)).astype(np.float32)
  y = np.argmax(x @ proj, axis=1).astype(np.int32)
  ds = Dataset(x[:512], y[:512], x[512:], y[512:], 10, (28, 28, 1), "synthetic")
  with pytest.raises(ValueError, match="no validation split"):
    A.train_accuracy_fn(PA.SearchConfig(accuracy="train"), ds)([("dense", 256, {})])
  ds = split_validation(ds, 128)  # selection reads validation accuracy
  cfg = PA.SearchConfig(accuracy="train", train_steps=3, **{**TINY, "features": C.DEFAULT_FEATURES})
  calls = []
  fn = A.train_accuracy_fn(cfg, ds)

  def counting(specs):
    calls.append(list(specs))
    return fn(specs)

  ev = PP.Evaluator(counting)
  xs = np.stack(
    [
      _genome(family="random", hidden_width=256, radix=4, depth_level=0.25, rows=8),
      _genome(family="random", hidden_width=256, radix=4, depth_level=0.25, rows=32),
    ]
  )
  got = ev.evaluate(xs)
  assert len(calls) == 1 and calls[0] == [("random", 256, {"skip": False, "fan_in": 4, "depth": 1})]
  ref = tr.train(
    tr.ModelSpec.create("random", 256, fan_in=4, depth=1, skip=False),
    ds,
    tr.TrainConfig(num_epochs=1, steps_per_epoch=3, log_every=10),
    progress=False,
  )
  np.testing.assert_allclose(got["accuracy"], [ref.val_accuracy] * 2)
  assert got["area"][0] < got["area"][1]  # 8 rows of PEs vs 32
  ev.evaluate(xs[::-1])
  assert len(calls) == 1  # cached: no second training
