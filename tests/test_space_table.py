"""The trained benchmark table (nf_jax.space_table) and the co-design's measured accuracy mode."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import cli, space_table, sweep
from nf_jax import pareto as PA
from nf_jax import results as R
from nf_jax import train as tr
from nf_jax.pareto import accuracy as A
from nf_jax.pareto import problem as PP
from nf_jax.pareto import report

SMALL_SPACE = [
  ("butterfly", 1024, {"skip": False, "radix": 32, "depth": 2}),
  ("random", 256, {"skip": True, "fan_in": 8, "depth": 2}),
  ("clos", 1024, {"skip": False, "radix": 32, "width": 16}),
]
TINY = dict(
  population=12, generations=2, n_partitions=1, inner_partitions=1, features=("log_params",)
)


def _write_run(workdir, specs, accuracies, space=None):
  """A benchmark workdir as sweep.run leaves it: per-seed rows and results.json."""
  rows = []
  for spec, per_seed in zip(specs, accuracies):
    for seed, (val, test) in enumerate(per_seed):
      model = tr.ModelSpec.create(spec[0], spec[1], train_seed=seed, **spec[2])
      result = tr.ModelResult(model, val, test, 0.9, 0.3, 4, 10.0, 0, math.isnan(val), [])
      rows.append(sweep.result_row(model, result, 10.0 + seed, "recipe1"))
  os.makedirs(workdir, exist_ok=True)
  R.write_results(os.path.join(workdir, "results.csv"), rows)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"config": {"space_hash": space_table.space_hash(space or specs)}}, f)


def test_build_aggregates_per_topology_and_round_trips(tmp_path):
  accs = [[(0.80, 0.79), (0.82, 0.80)], [(0.70, 0.69), (math.nan, math.nan)], [(0.85, 0.84)] * 2]
  _write_run(str(tmp_path / "run"), SMALL_SPACE, accs)
  rows = space_table.build(str(tmp_path / "run"), SMALL_SPACE)
  assert [r["key"] for r in rows] == [PP.topology_key(*s) for s in SMALL_SPACE]
  first = rows[0]
  assert first["val_mean"] == pytest.approx(0.81) and first["test_mean"] == pytest.approx(0.795)
  assert first["val_std"] == pytest.approx(np.std([0.80, 0.82], ddof=1))
  assert first["seeds"] == 2 and first["diverged"] == 0
  assert first["model_params"] == PP.model_params(*SMALL_SPACE[0])
  # A diverged seed is counted and left out of the mean.
  assert rows[1]["diverged"] == 1 and rows[1]["val_mean"] == pytest.approx(0.70)
  path = str(tmp_path / "table.csv")
  space_table.write(path, rows)
  table = space_table.load(path, SMALL_SPACE)
  entries = table.lookup(SMALL_SPACE[::-1])
  assert [e.key for e in entries] == [PP.topology_key(*s) for s in SMALL_SPACE[::-1]]
  assert entries[-1].val_mean == pytest.approx(0.81)


def test_stale_partial_or_malformed_tables_are_refused(tmp_path):
  accs = [[(0.8, 0.8), (0.8, 0.8)]] * 3
  _write_run(str(tmp_path / "run"), SMALL_SPACE, accs)
  path = str(tmp_path / "table.csv")
  space_table.write(path, space_table.build(str(tmp_path / "run"), SMALL_SPACE))
  # The genome's space changed since the table was trained: refused, naming the fix.
  with pytest.raises(ValueError, match="trained on space .* Retrain it"):
    space_table.load(path, SMALL_SPACE[:2])
  # A run trained on another space is refused when the table is built.
  _write_run(str(tmp_path / "other"), SMALL_SPACE[:2], accs[:2], space=SMALL_SPACE[:2])
  with pytest.raises(ValueError, match="was trained on space"):
    space_table.build(str(tmp_path / "other"), SMALL_SPACE)
  # A run that misses topologies is partial: an error unless allowed.
  _write_run(str(tmp_path / "part"), SMALL_SPACE[:2], accs[:2], space=SMALL_SPACE)
  with pytest.raises(ValueError, match="1 of 3 topologies have no rows"):
    space_table.build(str(tmp_path / "part"), SMALL_SPACE)
  assert len(space_table.build(str(tmp_path / "part"), SMALL_SPACE, allow_partial=True)) == 2
  # A spec outside the table is never guessed.
  table = space_table.load(path, SMALL_SPACE)
  with pytest.raises(KeyError, match="not in the benchmark table"):
    table.lookup([("dense", 256, {"skip": False, "depth": 1})])
  # Percent instead of fractions.
  with open(path) as f:
    text = f.read()
  rows = list(csv.DictReader(text.splitlines()))
  rows[0]["val_mean"] = "80.0"
  space_table.write(path, rows)
  with pytest.raises(ValueError, match="val_mean=80.0 is not a fraction"):
    space_table.load(path, SMALL_SPACE)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_builds_the_packaged_table_from_the_committed_run(tmp_path):
  """``python -m nf_jax.space_table`` (nf_jax/cli.py's pattern): its ``:smoke`` variant reads the
  committed run, which is what the packaged table was built from; bad settings are refused
  before any work, and the old flags are gone."""
  base = [sys.executable, "-m", "nf_jax.space_table"]
  run = lambda *args: subprocess.run(
    [*base, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
  )
  out_path = tmp_path / "table.csv"
  out = run(f"--config={cli.config_file('space_table')}:smoke", f"--config.out={out_path}")
  assert out.returncode == 0, out.stderr[-3000:]
  packaged = os.path.join(ROOT, "nf_jax", "tables", space_table.PACKAGE_TABLE)
  with open(packaged, "rb") as f:
    assert out_path.read_bytes() == f.read()
  rows = len(space_table.load(str(out_path)).entries)
  assert f"wrote {rows} of {len(PP.topology_space())} topologies" in out.stdout
  out = run(f"--config.out={out_path}")
  assert out.returncode == 1 and "--config.results is not set" in out.stderr
  out = run(f"--config.results={tmp_path}", f"--config.out={out_path}")
  assert out.returncode == 1 and f"--config.results={tmp_path} has no results.csv" in out.stderr
  committed = os.path.join("experiments", "results", "space_benchmark")
  out = run(f"--config.results={committed}")
  assert out.returncode == 1 and "--config.out is not set" in out.stderr
  out = run(f"--results={committed}", f"--out={out_path}")
  assert out.returncode != 0 and "Unknown command line flag 'results'" in out.stderr


def _space_table(path, rng, drop_family=None):
  """A table over the whole genome space with random accuracies (optionally missing one
  family), written in the committed format."""
  rows = []
  for spec in PP.topology_space():
    if spec[0] == drop_family:
      continue
    val = float(rng.uniform(0.5, 0.9))
    rows.append(
      dict(
        key=PP.topology_key(*spec),
        family=spec[0],
        n=spec[1],
        params_json=json.dumps(spec[2], sort_keys=True),
        hidden_params=0,
        model_params=PP.model_params(*spec),
        seeds=2,
        diverged=0,
        val_mean=val,
        val_std=0.01,
        test_mean=val - 0.005,
        test_std=0.02,
        seconds_mean=1.0,
        recipe="r",
        space_hash=space_table.space_hash(),
      )
    )
  space_table.write(path, rows)
  return {r["key"]: r for r in rows}


def _csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_pareto_reads_measured_accuracy_from_the_table(tmp_path):
  path = str(tmp_path / "table.csv")
  table = _space_table(path, np.random.default_rng(0))
  workdir = str(tmp_path / "run")
  config = PA.SearchConfig(accuracy="table", table=path, **{**TINY, "generations": 1})
  res = PA.run(config, workdir, progress=False)
  assert res.calibration is None  # a complete table: nothing predicted
  rows = _csv(os.path.join(workdir, "evaluations.csv"))
  assert len(rows) == len(res.genomes)
  for row in rows:
    genome = np.asarray(row["genome"].split(), np.int64)
    entry = table[PP.topology_key(*PP.decode_topology(genome))]
    assert row["accuracy_kind"] == "measured"
    assert float(row["accuracy"]) == pytest.approx(entry["val_mean"], abs=1e-6)
    assert float(row["test_accuracy"]) == pytest.approx(entry["test_mean"], abs=1e-6)
    assert float(row["accuracy_std"]) == pytest.approx(0.01) and row["seeds"] == "2"
  with open(os.path.join(workdir, "summary.json")) as f:
    picks = json.load(f)["picks"]
  for pick in picks.values():
    entry = table[PP.topology_key(*PP.decode_topology(np.asarray(pick["genome"].split(), int)))]
    assert pick["accuracy"] == pytest.approx(entry["val_mean"])
    assert pick["test_accuracy"] == pytest.approx(entry["test_mean"])
  text = report.summary_table(res)
  assert f"{len(res.front)} of {len(res.front)} designs measured" in text


def test_partial_table_predicts_the_rest_with_intervals_and_flags(tmp_path):
  path = str(tmp_path / "table.csv")
  table = _space_table(path, np.random.default_rng(1), drop_family="clos")
  config = PA.SearchConfig(accuracy="table", table=path, **TINY)
  fn, cal, describe = A.table_accuracy_fn(config)
  assert cal is not None and cal.num_rows == len(table)
  space = PP.topology_space()
  clos = [s for s in space if s[0] == "clos"]
  measured = [s for s in space if s[0] != "clos"][:20]
  # Measured topologies read the table exactly; the others are predicted, never measured.
  np.testing.assert_allclose(
    fn(measured), [table[PP.topology_key(*s)]["val_mean"] for s in measured]
  )
  assert all(d["accuracy_kind"] == "measured" for d in describe(measured))
  acc = fn(clos)
  for a, d in zip(acc, describe(clos)):  # never trained: an interval and the flag
    assert d["accuracy_kind"] == "predicted" and "test_accuracy" not in d
    assert d["accuracy_lo"] <= a <= d["accuracy_hi"] and d["accuracy_hi"] > d["accuracy_lo"]
    assert "family clos never trained" in d["outside_calibration"]


def test_calibrated_region_flags_by_hand():
  from nf_jax import calibration as C

  region = C.CalibratedRegion.of(SMALL_SPACE[:1])  # one butterfly, 1024 wide
  inside = SMALL_SPACE[0]
  assert region.outside(inside) == ""
  bigger = ("butterfly", 1024, {"skip": False, "radix": 32, "depth": 1})
  assert "params outside" in region.outside(bigger)  # fewer weights than any trained
  assert "width 256 never trained" in region.outside(SMALL_SPACE[1])
  assert "family random never trained" in region.outside(SMALL_SPACE[1])


def test_space_benchmark_config_covers_the_whole_space():
  import importlib
  import sys

  experiments = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")
  if experiments not in sys.path:
    sys.path.insert(0, experiments)
  config = importlib.import_module("configs.space_benchmark").get_config()
  specs = sweep.model_specs(config)
  assert len(config.seeds) >= 2 and config.space_hash == space_table.space_hash()
  assert config.validation_size == 10000
  covered = {space_table.row_identity(sweep.result_row(s)) for s in specs}
  for spec in PP.topology_space():
    assert space_table.spec_identity(spec) in covered, spec
  assert any(s.is_dense for s in specs)  # the nn.Dense baseline rides along


def test_benchmark_report_selects_on_validation_and_pairs_by_band():
  import importlib.util

  path = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "experiments", "benchmark_report.py"
  )
  spec = importlib.util.spec_from_file_location("benchmark_report", path)
  report = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(report)

  def topo(key, family, skip, params, val, test):
    return dict(key=key, family=family, skip=skip, params=params, val={0: val}, test={0: test})

  topos = [
    # Band [100, 200): the claimed kind wins on validation but loses on test by 0.02.
    topo("a", "parallel_butterfly", True, 100, 0.90, 0.80),
    topo("b", "clos", False, 150, 0.85, 0.82),
    topo("c", "clos", False, 120, 0.70, 0.95),  # best test, but never selected (validation)
    # Band [200, 400): another family wins; the claimed kind is 0.05 behind on test.
    topo("d", "parallel_butterfly", True, 300, 0.80, 0.75),
    topo("e", "random", True, 350, 0.88, 0.80),
  ]
  assert report.bands(topos) == [(100, 200), (200, 400)]
  table = report.family_table(topos)
  picks = {(r["band"], r["family"]): r["pick"] for r in table}
  assert picks[("[100, 200)", "clos")] == "b"  # selected on validation, not test
  claim = report.claim_test(table)
  assert claim["bands_with_claimed"] == 2 and claim["claimed_wins"] == 1
  assert claim["mean_test_difference"] == pytest.approx((-0.02 - 0.05) / 2)
  assert claim["seed_pairs"] == 2  # paired by seed: (band, seed) differences -0.02 and -0.05
  assert [list(w[3].values()) for w in claim["winners"]] == [
    [pytest.approx(-0.02)],
    [pytest.approx(-0.05)],
  ]


def test_judge_compares_calibration_sets_by_leave_one_out_error():
  import importlib.util

  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments", "judge_scores.py")
  spec = importlib.util.spec_from_file_location("judge_scores", path)
  judge = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(judge)

  rng = np.random.default_rng(0)
  k = 40
  hidden = 10 ** rng.uniform(3, 6, k)
  val = 0.80 + 0.02 * np.log10(hidden)  # accuracy is a function of the count alone
  scores = {name: rng.normal(size=k) for name in ("fit_score", *judge.C.STRUCTURAL_FEATURES)}
  rows = {r["features"]: r for r in judge.compare_calibrations(scores, hidden, val)}
  assert set(rows) == {"+".join(s) for s in judge.CALIBRATION_SETS}
  # An exact linear law: the log-params ridge's only LOO error is its shrinkage (lam=1),
  # far below the mean-only baseline, and below the sets that add noise features.
  only = rows["log_params"]
  assert only["loo_mae"] < 0.1 * only["baseline_mae"]
  assert only["loo_mae"] < rows["fit_score+log_params"]["loo_mae"]
  # The baseline is the brute-force leave-one-out mean predictor.
  brute = np.mean([abs(np.delete(val, i).mean() - val[i]) for i in range(k)])
  assert only["baseline_mae"] == pytest.approx(brute)
  assert "Smallest LOO error: **log_params**" in judge.calibration_report(list(rows.values()))


def _experiments_module(name: str):
  import importlib
  import sys

  experiments = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")
  if experiments not in sys.path:
    sys.path.insert(0, experiments)
  return importlib.import_module(name)


def test_benchmark_parts_partition_the_benchmark():
  full = _experiments_module("configs.space_benchmark").get_config()
  part = _experiments_module("configs.space_benchmark_part")
  parts = [part.get_config(f"{k}/3") for k in range(3)]
  assert sorted(repr(e) for p in parts for e in p.models) == sorted(repr(e) for e in full.models)
  assert [bool(p.include_dense) for p in parts] == [True, False, False]
  assert all(sweep.recipe(p) == sweep.recipe(full) for p in parts)  # each resumes the benchmark
  for bad in (None, "2/2", "x/2", "1"):
    with pytest.raises(ValueError, match="k/m|0 <= k < m"):
      part.get_config(bad)


def test_merge_workdirs_unions_rows_and_curves_and_refuses_another_recipe(tmp_path):
  merge = _experiments_module("merge_workdirs")
  committed = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "experiments", "results", "space_benchmark"
  )
  rows = R.read_results(os.path.join(committed, "results.csv"))
  curves = R.read_curves(os.path.join(committed, "curves.jsonl"))
  with open(os.path.join(committed, "recipe.json")) as f:
    recipe = f.read()
  key = lambda r: R.model_key(r, r["epochs"])  # noqa: E731
  halves = {"a": rows[: len(rows) // 2 + 5], "b": rows[len(rows) // 2 :]}  # 5 rows in both
  for name, part in halves.items():
    d = tmp_path / name
    d.mkdir()
    R.write_results(str(d / "results.csv"), part)
    keys = {key(r) for r in part}
    R.write_curves(str(d / "curves.jsonl"), [c for c in curves if tuple(c["key"]) in keys])
    (d / "recipe.json").write_text(recipe)
  into = str(tmp_path / "merged")
  added = merge.merge(into, [str(tmp_path / "a"), str(tmp_path / "b")])
  assert sum(added.values()) == len(rows)  # the 5 shared rows are kept once
  merged = R.read_results(os.path.join(into, "results.csv"))
  assert sorted(map(key, merged)) == sorted(map(key, rows))
  merged_curves = R.read_curves(os.path.join(into, "curves.jsonl"))
  assert len(merged_curves) == len(curves)
  (tmp_path / "b" / "recipe.json").write_text(recipe.replace("0.003", "0.01"))
  with pytest.raises(ValueError, match="another recipe"):
    merge.merge(str(tmp_path / "merged2"), [str(tmp_path / "a"), str(tmp_path / "b")])
  assert not os.path.exists(tmp_path / "merged2" / "results.csv")
