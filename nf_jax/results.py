"""The results contract of a training study: ``results.csv`` and ``curves.jsonl``.

``results.csv`` holds one row per trained model, columns :data:`RESULT_COLUMNS`. ``name`` and
the topology columns describe the *hidden* ``n x n`` cascade, so
``T.make(name, n, **{k: v for the non-empty ones of n_in, depth, radix, width, fan_in, skip},
seed=topology_seed)`` rebuilds it (``T.TopologySpec.from_row`` does; ``name=dense`` with empty
cascade columns is the nn.Dense baseline). The model's first hidden layer is the same family
with ``n_in=d_in`` (784). ``num_params`` and ``density`` are those of that hidden ``n x n``
cascade (``Topology.num_params``, ``Topology.density``); accuracies are fractions in [0, 1]
(NaN for a diverged model); ``val_accuracy`` is measured on the validation split carved from
the training set (:func:`nf_jax.data.split_validation`; empty when the config holds none out),
the split every selection uses; ``test_accuracy`` is reported beside it and never chosen on.
``seconds`` is the group's wall time divided by its number of models; ``recipe`` is
``nf_jax.sweep.recipe_hash`` of every setting that changes results (data, split, optimiser,
epochs). ``curves.jsonl`` holds the per-epoch learning curves, one JSON object per model and
epoch, each with the ``key`` (:func:`model_key`) of its row.

Both files are only ever written whole (:mod:`nf_jax.io_utils`), so a reader refuses one that is
cut short or has rows of the wrong width, naming the file and the fix. This module holds no
training code: the calibration, the benchmark table and the reports read results through it
without importing ``nf_jax.sweep`` (which writes them) or its training stack.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from typing import Any

from nf_jax import io_utils

RESULT_COLUMNS = (
  "name",
  "n",
  "n_in",
  "depth",
  "radix",
  "width",
  "fan_in",
  "skip",
  "topology_seed",
  "train_seed",
  "weight_init",
  "num_params",
  "density",
  "val_accuracy",
  "test_accuracy",
  "train_accuracy",
  "final_loss",
  "epochs",
  "seconds",
  "recipe",
)
# Results written before the validation split existed (experiments/results/topology_study):
# readable, with empty val_accuracy and recipe.
LEGACY_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in ("val_accuracy", "recipe"))
# The columns that identify a model (a rerun skips rows that match on all of them).
KEY_COLUMNS = RESULT_COLUMNS[:11] + ("epochs", "recipe")
DENSE_INIT = "he"  # the baseline's nn.Dense kernels use he_normal (see nf_jax.train.init_params)

_DAMAGED = "the file is damaged (it is only ever written whole); restore it or use a new --workdir"


def model_key(row: dict[str, Any], epochs: Any) -> tuple[str, ...]:
  """What identifies one trained model: configuration, seeds and epochs (``KEY_COLUMNS``)."""
  row = dict(row, epochs=epochs)
  return tuple(str(row[c]) for c in KEY_COLUMNS)


def is_init_ablation(row: dict[str, Any]) -> bool:
  """A cascade trained with another init than the default ``depth_aware`` (the study's ablation).

  Rows like these describe the init, not the topology: topology-level analyses (score
  validation, accuracy calibration) leave them out. The dense baseline is never one.
  """
  init = str(row.get("weight_init") or "depth_aware")
  return row["name"] != "dense" and init != "depth_aware"


def _check_complete(path: str) -> None:
  """Refuses a file cut short: written atomically, it always ends with a newline."""
  with open(path, "rb") as f:
    size = f.seek(0, os.SEEK_END)
    last = f.read(1) if size and f.seek(-1, os.SEEK_END) >= 0 else b"\n"
  if last != b"\n":
    raise ValueError(f"{path} is truncated (no final newline): {_DAMAGED}")


def read_results(path: str) -> list[dict[str, str]]:
  """Rows of an existing ``results.csv`` (empty list if absent); checks the header.

  Raises:
    ValueError: other columns than :data:`RESULT_COLUMNS` (or the legacy ones), a file cut
      short or a row with more or fewer fields than the header.
  """
  if not os.path.exists(path):
    return []
  _check_complete(path)
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    columns = tuple(reader.fieldnames or ())
    if columns not in (RESULT_COLUMNS, LEGACY_COLUMNS):
      raise ValueError(
        f"{path} has columns {reader.fieldnames}, expected {list(RESULT_COLUMNS)}; move it away "
        "or use another --workdir"
      )
    rows = list(reader)
  for line, row in enumerate(rows, start=2):
    if None in row or None in row.values():  # more or fewer fields than the header
      raise ValueError(f"{path} line {line} does not have the {len(columns)} columns: {_DAMAGED}")
  for row in rows:  # legacy rows: no validation split, no recipe record
    row.setdefault("val_accuracy", "")
    row.setdefault("recipe", "")
  return rows


def write_results(path: str, rows: Sequence[dict[str, Any]]) -> None:
  """All rows to ``path`` atomically (a reader sees the old file or the complete new one)."""
  io_utils.atomic_write_csv(
    path, [{c: row[c] for c in RESULT_COLUMNS} for row in rows], RESULT_COLUMNS
  )


def write_curves(path: str, curves: Sequence[dict[str, Any]]) -> None:
  """Learning curves (one JSON object per model and epoch) to ``path`` atomically."""
  io_utils.atomic_write_text(path, "".join(json.dumps(c, default=str) + "\n" for c in curves))


def read_curves(path: str) -> list[dict[str, Any]]:
  """The records of ``curves.jsonl`` (empty list if absent).

  Raises:
    ValueError: a file cut short or a line that is not JSON (its number named).
  """
  if not os.path.exists(path):
    return []
  _check_complete(path)
  records = []
  with open(path) as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {number} is not JSON ({e}): {_DAMAGED}") from e
  return records
