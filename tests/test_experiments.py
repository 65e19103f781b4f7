"""Smoke runs of every launcher config (``:runlocal``) and the results contract of the study."""

from __future__ import annotations

import csv
import glob
import importlib
import json
import math
import os
import subprocess
import sys

import pytest

from nf_jax import results as R
from nf_jax import sweep
from nf_jax import topology as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
CONFIGS = sorted(
  os.path.splitext(os.path.basename(p))[0]
  for p in glob.glob(os.path.join(EXPERIMENTS, "configs", "*.py"))
  if not p.endswith("__init__.py")
)
HAS_DATA = os.path.isdir("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not HAS_DATA, reason="apt-get install dataset-fashion-mnist")


def load_config(name: str, arg: str | None = "runlocal"):
  if EXPERIMENTS not in sys.path:
    sys.path.insert(0, EXPERIMENTS)  # as `python experiments/main.py` has it
  return importlib.import_module(f"configs.{name}").get_config(arg)


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_every_config_documents_command_runtime_and_result():
  assert {"default", "dense_baseline", "topology_study", "init_ablation"} <= set(CONFIGS)
  for name in CONFIGS:
    load_config(name)
    doc = importlib.import_module(f"configs.{name}").__doc__
    assert f"--config=experiments/configs/{name}.py" in doc, name
    assert "Expected runtime on 2 CPU cores" in doc and "Expected result" in doc, name


def test_topology_study_grid_meets_the_issue():
  config = load_config("topology_study", None)
  specs = sweep.model_specs(config)
  cascades = [s for s in specs if not s.is_dense]
  assert config.dataset == "fashion_mnist" and config.n >= 1024 and len(config.seeds) >= 3
  assert any(s.is_dense for s in specs)
  for family in set(T.FAMILIES) - {"dense"}:
    for skip in (False, True):
      assert any(s.name == family and dict(s.topology)["skip"] == skip for s in cascades)
  topos = [s.hidden_topology() for s in cascades]
  assert len({round(t.density, 3) for t in topos}) >= 3
  assert len({t.depth for t in topos}) >= 3 and max(t.depth for t in topos) >= 32
  deep_inits = {s.weight_init for s in cascades if s.hidden_topology().depth >= 32}
  assert deep_inits == {"depth_aware", "he"}
  # Hand-checked densities of the table in the config's docstring: K / 1024.
  bf = T.make("butterfly", 1024, radix=4, depth=10)
  assert bf.density == pytest.approx(40 / 1024)
  clos = T.make("clos", 1024, radix=32, width=32)
  assert clos.density == pytest.approx(96 / 1024)


@needs_data
# dense_baseline runs through the launcher in test_launcher_main_runlocal, init_ablation in
# test_resume_skips_finished_models.
@pytest.mark.parametrize(
  "name", [c for c in CONFIGS if c not in ("dense_baseline", "init_ablation")]
)
def test_runlocal_smoke(name, tmp_path):
  config = load_config(name)
  workdir = str(tmp_path / name)
  report = sweep.run(config, workdir, progress=False)
  rows = read_csv(os.path.join(workdir, "results.csv"))
  assert len(rows) == len(sweep.model_specs(config)) == report["num_models"]
  with open(os.path.join(workdir, "results.csv")) as f:
    assert f.readline().strip() == ",".join(R.RESULT_COLUMNS)
  for row in rows:
    assert 0.0 <= float(row["test_accuracy"]) <= 1.0 or math.isnan(float(row["test_accuracy"]))
    assert int(row["epochs"]) == 1 and float(row["seconds"]) > 0
    # The contract: name + non-empty topology columns rebuild the hidden n x n cascade.
    params = {k: row[k] for k in ("n_in", "depth", "radix", "width", "fan_in") if row[k] != ""}
    params = {k: int(v) for k, v in params.items()}
    if row["topology_seed"] != "":
      params["seed"] = int(row["topology_seed"])
    t = T.make(row["name"], int(row["n"]), skip=row["skip"] == "True", **params)
    assert t.num_params == int(row["num_params"])
    assert t.density == pytest.approx(float(row["density"]))
  for filename in (
    "results.json",
    "summary.csv",
    "accuracy_vs_params.png",
    "accuracy_vs_depth.png",
  ):
    assert os.path.getsize(os.path.join(workdir, filename)) > 0
  with open(os.path.join(workdir, "results.json")) as f:
    assert set(json.load(f)["goals"]) >= {"dense_at_least_89", "best_sparse_within_1_point"}


@needs_data
def test_resume_skips_finished_models(tmp_path, monkeypatch):
  config = load_config("init_ablation")  # 2 models in 2 groups
  workdir = str(tmp_path / "run")
  sweep.run(config, workdir, progress=False)
  path = os.path.join(workdir, "results.csv")
  rows = read_csv(path)
  assert len(rows) == 2
  # An interrupted study: the last model's row never made it to disk.
  R.write_results(path, rows[:-1])
  trained = []
  original = sweep.tr.train_sweep

  def spy(specs, *args, **kwargs):
    trained.extend(specs)
    return original(specs, *args, **kwargs)

  monkeypatch.setattr(sweep.tr, "train_sweep", spy)
  sweep.run(config, workdir, progress=False)
  assert [s.label() for s in trained] == [sweep.model_specs(config)[-1].label()]
  again = read_csv(path)
  assert again[:-1] == rows[:-1]  # finished rows are kept verbatim
  assert [r["weight_init"] for r in again] == [r["weight_init"] for r in rows]


def test_results_file_with_other_columns_is_refused(tmp_path):
  path = tmp_path / "results.csv"
  path.write_text("name,accuracy\nbutterfly,0.5\n")
  with pytest.raises(ValueError, match="expected"):
    R.read_results(str(path))


@needs_data
def test_launcher_main_runlocal(tmp_path):
  """The absl launcher end to end, as a user runs it."""
  workdir = str(tmp_path / "dense")
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(EXPERIMENTS, "main.py"),
      f"--workdir={workdir}",
      f"--config={os.path.join(EXPERIMENTS, 'configs', 'dense_baseline.py')}:runlocal",
      "--noprogress",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    cwd=ROOT,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  rows = read_csv(os.path.join(workdir, "results.csv"))
  assert [r["name"] for r in rows] == ["dense"] and rows[0]["weight_init"] == "he"


def test_rerun_with_another_recipe_is_refused_naming_the_fields(tmp_path):
  """A workdir's rows belong to one recipe: a rerun that changes the learning rate or the data
  size would otherwise label old numbers with new settings."""
  config = load_config("init_ablation")
  workdir = str(tmp_path)
  sweep.check_recipe(config, workdir, [])  # first run: records recipe.json
  sweep.check_recipe(config, workdir, [{"recipe": sweep.recipe_hash(config)}])  # same: fine
  changed = load_config("init_ablation")
  changed.train.learning_rate = 0.1
  changed.max_train_examples = 100
  with pytest.raises(ValueError, match="max_train_examples: 512 -> 100.*train.learning_rate"):
    sweep.check_recipe(changed, workdir, [])
  assert sweep.recipe_hash(changed) != sweep.recipe_hash(config)
  # The hash covers every result-changing setting, and nothing that leaves numbers unchanged.
  quiet = load_config("init_ablation")
  quiet.train.log_every = 7
  quiet.train.impl = "xla_gather"
  assert sweep.recipe_hash(quiet) == sweep.recipe_hash(config)
  # Rows without their recipe record are never adopted.
  other = str(tmp_path / "other")
  os.makedirs(other)
  with pytest.raises(ValueError, match="recipe.json is missing"):
    sweep.check_recipe(config, other, [{"recipe": "abc"}])
