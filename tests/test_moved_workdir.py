"""A workdir moved with ``mv`` between interruption and resume still resumes (issue 17).

Pareto workdirs are checked in ``tests/test_faults.py``
(``test_resume_after_interruption_equals_uninterrupted_even_after_a_move``); this file checks a
training sweep (``experiments/main.py``'s ``nf_jax.sweep.run``) stopped inside a group, with an
Orbax epoch checkpoint on disk.
"""

from __future__ import annotations

import importlib
import importlib.resources
import logging
import os
import shutil
import sys

import pytest

from nf_jax import results as R
from nf_jax import sweep
from nf_jax import train as tr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
TIMINGS = ("seconds", "epoch_seconds", "examples_per_second")  # wall clock: differ run to run
needs_data = pytest.mark.skipif(
  not os.path.isdir("/usr/share/datasets/fashion-mnist"),
  reason="apt-get install dataset-fashion-mnist",
)


class Interrupted(Exception):
  """Stands in for a kill: raised right after a chosen epoch checkpoint is committed."""


def _config():
  """Two groups (dense, a butterfly) of one model, 2 epochs of 2 steps, a checkpoint each."""
  if EXPERIMENTS not in sys.path:
    sys.path.insert(0, EXPERIMENTS)  # as `python experiments/main.py` has it
  config = importlib.import_module("configs.default").base_config()
  config.update(
    dict(max_train_examples=128, max_test_examples=64, pool=7, validation_size=32, n=32)
  )
  config.models = [dict(name="butterfly", radix=2, depth=5, skip=True)]
  config.train.update(
    dict(num_epochs=2, steps_per_epoch=2, batch_size=32, eval_batch_size=64, log_every=1)
  )
  return config


def _rows(workdir):
  strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]  # noqa: E731
  return (
    strip(R.read_results(os.path.join(workdir, "results.csv"))),
    strip(R.read_curves(os.path.join(workdir, "curves.jsonl"))),
  )


@needs_data
def test_sweep_workdir_moved_mid_group_resumes_to_identical_rows(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(sweep, "plot", lambda *a, **k: None)  # plots: seconds, tested elsewhere
  config = _config()
  reference = tmp_path / "reference"
  sweep.run(config, str(reference), progress=False)

  # Stop in the second group (butterfly), after its first epoch checkpoint (step 2).
  real = tr._checkpoint_manager

  def interrupting(workdir, tconfig):
    manager = real(workdir, tconfig)
    wait = manager.wait_until_finished

    def wait_then_stop():
      wait()
      if os.path.basename(workdir).startswith("butterfly") and manager.latest_step() == 2:
        raise Interrupted

    manager.wait_until_finished = wait_then_stop
    return manager

  first = tmp_path / "first"
  monkeypatch.setattr(tr, "_checkpoint_manager", interrupting)
  with pytest.raises(Interrupted):
    sweep.run(config, str(first), progress=False)
  monkeypatch.setattr(tr, "_checkpoint_manager", real)
  assert len(R.read_results(str(first / "results.csv"))) == 1
  # Nothing the resume reads names the old place. Orbax's commit_success.txt does, as a note
  # for people: Orbax checks only that the file exists.
  for path in first.rglob("*"):
    if path.is_file() and path.name != "commit_success.txt":
      assert str(first).encode() not in path.read_bytes(), path

  moved = tmp_path / "elsewhere" / "moved"
  moved.parent.mkdir()
  shutil.move(str(first), str(moved))
  monkeypatch.chdir(moved.parent)
  # A finished group's checkpoints whose deletion a kill interrupted (seen in
  # benchmarks/fault_campaign.py): removed once every model is done.
  (moved / "groups" / "dense-000000000000" / "checkpoints" / "4").mkdir(parents=True)
  with caplog.at_level(logging.INFO):
    sweep.run(config, "moved", progress=False)
  resumed = [r.getMessage() for r in caplog.records if "resumed 1 models" in r.getMessage()]
  assert len(resumed) == 1, resumed
  assert resumed[0].startswith("resumed 1 models from step 2 in moved/groups/butterfly-"), resumed
  assert os.listdir(moved / "groups") == []
  got, want = _rows(moved), _rows(reference)
  assert len(got[0]) == 2 and len(got[1]) == 2 * 2
  assert got == want


def test_table_mode_checkpoint_names_the_table_by_content(tmp_path, monkeypatch):
  """A --accuracy=table search records its benchmark table by name and sha256: the workdir and
  the table can both move and the run resumes; an edited table is refused, naming the field."""
  import hashlib
  import json

  import numpy as np

  from nf_jax import space_table
  from nf_jax.pareto import config as pareto_config
  from nf_jax.pareto import problem as PP
  from nf_jax.pareto import report
  from nf_jax.pareto import search as PS

  def fake_accuracy(specs):  # the table is hashed, not read: only the checkpoint is under test
    keys = [PP.topology_key(*s) for s in specs]
    return np.asarray([int(hashlib.sha256(k.encode()).hexdigest()[:6], 16) / 2**24 for k in keys])

  monkeypatch.setattr(report, "_plots", lambda result, workdir: None)
  committed = importlib.resources.files("nf_jax.tables").joinpath(space_table.PACKAGE_TABLE)
  tables = [tmp_path / d / "table.csv" for d in ("a", "b", "c")]
  for path in tables:
    path.parent.mkdir()
    path.write_bytes(committed.read_bytes())
  tables[2].write_text(tables[2].read_text().replace("0.8", "0.7", 1))
  tiny = dict(population=12, generations=3, n_partitions=1, inner_partitions=1, accuracy="table")
  config = lambda table: pareto_config.SearchConfig(**tiny, table=str(table))  # noqa: E731

  def run(table, workdir=None, **kwargs):
    return PS.run(config(table), workdir, progress=False, accuracy=(fake_accuracy, None), **kwargs)

  save = PS._save

  def save_then_stop(state, path):
    save(state, path)
    if state.generation == 1:
      raise Interrupted

  monkeypatch.setattr(PS, "_save", save_then_stop)
  with pytest.raises(Interrupted):
    run(tables[0], str(tmp_path / "first"))
  monkeypatch.setattr(PS, "_save", save)
  text = (tmp_path / "first" / PS.CHECKPOINT).read_text()
  record = json.loads(text)["checkpoint"]["config"]["table"]
  assert record == {
    "name": "table.csv",
    "sha256": hashlib.sha256(committed.read_bytes()).hexdigest(),
  }
  assert str(tmp_path) not in text
  shutil.move(str(tmp_path / "first"), str(tmp_path / "moved"))
  with pytest.raises(PS.CheckpointError, match=r"other settings \(table: checkpoint \{"):
    run(tables[2], str(tmp_path / "moved"), resume=True)
  resumed = run(tables[1], str(tmp_path / "moved"), resume=True)
  reference = run(tables[0])
  for field in ("genomes", "F", "front", "hv"):
    np.testing.assert_array_equal(getattr(resumed, field), getattr(reference, field))
