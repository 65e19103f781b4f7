"""The trained benchmark of the co-design's topology space, as a table the search reads.

NAS-Bench-201 style: every distinct hidden topology the pareto genome decodes to
(:func:`nf_jax.pareto.problem.topology_space`) was trained with the same recipe and several
seeds (``experiments/configs/space_benchmark.py``). This module turns that run's per-seed
``results.csv`` into one row per topology and serves it to the search:

* :func:`space_hash` is a content hash of the space (the canonical keys of its specs and the
  model shape). A table records the hash it was trained on; :func:`load` refuses a table whose
  hash differs from today's space, naming the fix.
* :func:`build` aggregates per topology: ``val_mean``/``val_std`` (validation accuracy, the
  number every selection uses), ``test_mean``/``test_std`` (reported beside it), the seed
  count, diverged seeds, parameters and training time.
* :class:`SpaceTable` answers accuracy queries by spec; a spec outside the table is an error,
  never a guess.

The committed table is package data (``nf_jax/tables/space_benchmark.csv``), so a wheel
install of ``nf_jax`` runs the default co-design. Build it with (``nf_jax/configs/space_table.py``
states the command, its runtime and its result)::

  python -m nf_jax.space_table --config.results=runs/space_benchmark \
      --config.out=nf_jax/tables/space_benchmark.csv
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.resources
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from nf_jax import cli, io_utils
from nf_jax import results as R
from nf_jax import topology as T
from nf_jax import train as tr
from nf_jax.pareto import problem as PP

Spec = tuple[str, int, dict[str, Any]]

TABLE_COLUMNS = (
  "key",
  "family",
  "n",
  "params_json",
  "hidden_params",
  "model_params",
  "seeds",
  "diverged",
  "val_mean",
  "val_std",
  "test_mean",
  "test_std",
  "seconds_mean",
  "recipe",
  "space_hash",
)
PACKAGE_TABLE = "space_benchmark.csv"  # in the nf_jax.tables package


def space_hash(specs: Sequence[Spec] | None = None) -> str:
  """16-hex-digit SHA-256 of the space: its specs' canonical keys (sorted), the input width,
  the classes and the hidden-layer count of the model that was trained."""
  specs = PP.topology_space() if specs is None else specs
  keys = sorted(PP.topology_key(*s) for s in specs)
  text = json.dumps({"keys": keys, "d_in": PP.D_IN, "classes": PP.NUM_CLASSES, "layers": 2})
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_identity(row: dict[str, Any]) -> tuple[str, str]:
  """What names a results row's trained model, seed aside: its topology (the normalised
  ``TopologySpec.from_row(row).key``) and its init (``weight_init``)."""
  return T.TopologySpec.from_row(row).normalised().key, str(row["weight_init"])


def spec_identity(spec: Spec) -> tuple[str, str]:
  """:func:`row_identity` of the results rows of ``spec`` trained with the default init."""
  family, n, params = spec
  init = tr.ModelSpec.create(family, n, **params).weight_init
  return T.TopologySpec(family, n, None, params).normalised().key, init


def _float(value: Any) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


def build(
  results_dir: str, specs: Sequence[Spec] | None = None, allow_partial: bool = False
) -> list[dict[str, Any]]:
  """One table row per spec of the space from a benchmark run's ``results.csv``.

  Args:
    results_dir: the benchmark's workdir (``results.csv`` and ``results.json``).
    specs: the space (default :func:`nf_jax.pareto.problem.topology_space`).
    allow_partial: keep going when some specs have no rows (their rows are left out);
      otherwise a missing spec is an error.

  Raises:
    ValueError: the run was trained on another space (``results.json``'s ``space_hash``),
      mixes recipes, or misses specs (without ``allow_partial``).
  """
  specs = PP.topology_space() if specs is None else list(specs)
  want = space_hash(specs)
  meta_path = os.path.join(results_dir, "results.json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      got = json.load(f).get("config", {}).get("space_hash")
    if got != want:
      raise ValueError(
        f"{meta_path} was trained on space {got}, today's space is {want}; retrain with "
        "experiments/configs/space_benchmark.py into a new --workdir"
      )
  rows = R.read_results(os.path.join(results_dir, "results.csv"))
  recipes = {r["recipe"] for r in rows}
  if len(recipes) > 1:
    raise ValueError(f"{results_dir}/results.csv mixes recipes {sorted(recipes)}")
  by_identity: dict[tuple[str, ...], list[dict[str, str]]] = {}
  for r in rows:
    by_identity.setdefault(row_identity(r), []).append(r)
  out, missing = [], []
  for spec in specs:
    members = by_identity.get(spec_identity(spec), [])
    if not members:
      missing.append(PP.topology_key(*spec))
      continue
    val = np.array([_float(m["val_accuracy"]) for m in members])
    test = np.array([_float(m["test_accuracy"]) for m in members])
    ok = np.isfinite(val) & np.isfinite(test)
    out.append(
      dict(
        key=PP.topology_key(*spec),
        family=spec[0],
        n=spec[1],
        params_json=json.dumps(spec[2], sort_keys=True),
        hidden_params=int(_float(members[0]["num_params"])),
        model_params=PP.model_params(*spec),
        seeds=len(members),
        diverged=int((~ok).sum()),
        val_mean=float(val[ok].mean()) if ok.any() else math.nan,
        val_std=float(val[ok].std(ddof=1)) if ok.sum() > 1 else 0.0,
        test_mean=float(test[ok].mean()) if ok.any() else math.nan,
        test_std=float(test[ok].std(ddof=1)) if ok.sum() > 1 else 0.0,
        seconds_mean=float(np.mean([_float(m["seconds"]) for m in members])),
        recipe=members[0]["recipe"],
        space_hash=want,
      )
    )
  if missing and not allow_partial:
    raise ValueError(
      f"{len(missing)} of {len(specs)} topologies have no rows in {results_dir}/results.csv "
      f"(first: {missing[:3]}); finish the benchmark run (rerun its command with the same "
      "--workdir) or pass allow_partial (--config.allow_partial=True)"
    )
  return out


def write(path: str, rows: Sequence[dict[str, Any]]) -> None:
  """The table to ``path`` (CSV, ``TABLE_COLUMNS``), atomically."""
  io_utils.atomic_write_csv(path, rows, TABLE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Entry:
  """Measured accuracy of one topology (fractions in [0, 1]; NaN if every seed diverged)."""

  key: str
  val_mean: float
  val_std: float
  test_mean: float
  test_std: float
  seeds: int
  diverged: int
  model_params: int


@dataclasses.dataclass(frozen=True)
class SpaceTable:
  """Measured accuracies of the space, by :func:`nf_jax.pareto.problem.topology_key`."""

  source: str
  space_hash: str
  recipe: str
  entries: dict[str, Entry]

  def lookup(self, specs: Sequence[Spec]) -> list[Entry]:
    """The entries of ``specs``; a spec missing from the table is an error (no guess)."""
    keys = [PP.topology_key(*s) for s in specs]
    missing = [k for k in keys if k not in self.entries]
    if missing:
      raise KeyError(
        f"{len(missing)} topologies are not in the benchmark table {self.source} (first: "
        f"{missing[:3]}); it covers {len(self.entries)} topologies. Use "
        "--config.accuracy=proxy for spaces beyond the table"
      )
    return [self.entries[k] for k in keys]


def load(path: str | None = None, specs: Sequence[Spec] | None = None) -> SpaceTable:
  """Reads a table (default: the committed package table) and checks it against the space.

  Raises:
    ValueError: the file is missing or malformed, holds accuracies outside [0, 1], or was
      trained on another space than today's (``space_hash``) — the message names the fix.
  """
  if path is None:
    resource = importlib.resources.files("nf_jax.tables").joinpath(PACKAGE_TABLE)
    source, text = f"nf_jax/tables/{PACKAGE_TABLE}", resource.read_text()
  else:
    if not os.path.exists(path):
      raise ValueError(f"benchmark table {path!r} does not exist")
    with open(path) as f:
      source, text = path, f.read()
  reader = csv.DictReader(io.StringIO(text))
  if tuple(reader.fieldnames or ()) != TABLE_COLUMNS:
    raise ValueError(f"{source} has columns {reader.fieldnames}, expected {list(TABLE_COLUMNS)}")
  rows = list(reader)
  if not rows:
    raise ValueError(f"{source} holds no rows")
  want = space_hash(specs)
  hashes = {r["space_hash"] for r in rows}
  if hashes != {want}:
    raise ValueError(
      f"{source} was trained on space {sorted(hashes)}, but the genome now decodes to space "
      f"{want}. Retrain it (experiments/configs/space_benchmark.py, then python -m "
      "nf_jax.space_table), or use --config.accuracy=proxy"
    )
  entries = {}
  for line, r in enumerate(rows, start=2):
    values = {c: _float(r[c]) for c in ("val_mean", "val_std", "test_mean", "test_std")}
    for c in ("val_mean", "test_mean"):
      if math.isfinite(values[c]) and not 0.0 <= values[c] <= 1.0:
        raise ValueError(f"{source} line {line}: {c}={r[c]} is not a fraction in [0, 1] (percent?)")
    entries[r["key"]] = Entry(
      key=r["key"],
      seeds=int(r["seeds"]),
      diverged=int(r["diverged"]),
      model_params=int(r["model_params"]),
      **values,
    )
  return SpaceTable(source, want, rows[0]["recipe"], entries)


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses settings :func:`run` cannot use, naming the field and the fix (before any work)."""
  del overrides  # every field is read
  if not config.results:
    raise ValueError(
      "--config.results is not set; pass the space benchmark's workdir, e.g. "
      "--config.results=runs/space_benchmark"
    )
  if not config.out:
    raise ValueError(
      "--config.out is not set; pass the table CSV to write, e.g. "
      "--config.out=nf_jax/tables/space_benchmark.csv (the packaged table)"
    )
  found = os.path.join(config.results, "results.csv")
  if not os.path.isfile(found):
    raise ValueError(
      f"--config.results={config.results} has no results.csv; pass the workdir of the run of "
      "experiments/configs/space_benchmark.py"
    )


def run(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """:func:`build` from ``config.results`` and :func:`write` to ``config.out``
  (:mod:`nf_jax.configs.space_table`); returns the table rows."""
  rows = build(config.results, allow_partial=config.allow_partial)
  write(config.out, rows)
  print(f"wrote {len(rows)} of {len(PP.topology_space())} topologies to {config.out}")
  return rows


def main() -> None:
  """The command line (``python -m nf_jax.space_table``, ``nf-jax-space-table``)."""
  cli.run(run, cli.config_file("space_table"), validate=validate)


if __name__ == "__main__":
  main()
