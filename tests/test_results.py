"""The results contract (``nf_jax.results``) against the committed study files.

Reading a committed ``results.csv`` or ``curves.jsonl`` and writing it back must give the same
bytes: the writers are the ones that made those files, so any change of column order, number
formatting or line ends shows up here. Legacy results (before the validation split) read with
empty ``val_accuracy`` and ``recipe``.
"""

from __future__ import annotations

import os

import pytest

from nf_jax import results as R

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "experiments", "results")


@pytest.mark.parametrize(
  "name, read, write",
  [
    ("results.csv", R.read_results, R.write_results),
    ("curves.jsonl", R.read_curves, R.write_curves),
  ],
)
@pytest.mark.parametrize("study", ["space_benchmark", os.path.join("recipe", "lr=0.003")])
def test_committed_files_read_and_write_back_byte_identical(tmp_path, study, name, read, write):
  source = os.path.join(COMMITTED, study, name)
  records = read(source)
  assert records
  out = str(tmp_path / name)
  write(out, records)
  with open(source, "rb") as a, open(out, "rb") as b:
    assert a.read() == b.read()


def test_legacy_results_read_with_empty_validation_and_recipe():
  path = os.path.join(COMMITTED, "topology_study", "results.csv")
  with open(path) as f:
    header = f.readline().strip().split(",")
  assert tuple(header) == R.LEGACY_COLUMNS
  rows = R.read_results(path)
  assert rows and all(r["val_accuracy"] == "" and r["recipe"] == "" for r in rows)
  assert set(rows[0]) == set(R.RESULT_COLUMNS)


def test_model_key_and_init_ablation():
  row = dict.fromkeys(R.RESULT_COLUMNS, "")
  row.update(name="butterfly", n=64, weight_init="depth_aware", epochs=4, recipe="abc")
  assert R.model_key(row, 4) == tuple(str(row[c]) for c in R.KEY_COLUMNS)
  assert R.model_key(row, 4) != R.model_key(row, 5)  # more epochs: another model
  assert not R.is_init_ablation(row)
  assert R.is_init_ablation(dict(row, weight_init="lecun"))
  assert not R.is_init_ablation(dict(row, name="dense", weight_init=R.DENSE_INIT))
