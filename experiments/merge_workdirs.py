"""Merges the results of several training workdirs of one recipe into one workdir.

For a benchmark trained by parts side by side (``configs/space_benchmark_part.py``) or over
sittings on several machines. Rows are matched by :func:`nf_jax.results.model_key` (model,
seeds, epochs, recipe); the target's rows come first and are never replaced, a model trained in
two workdirs is kept once (the first seen) and counted, and each kept row keeps its learning
curve. Workdirs of another recipe (``recipe.json``) are refused before anything is written.

Command::

  python experiments/merge_workdirs.py --into=runs/space_benchmark \
      --workdirs=runs/space_benchmark_0,runs/space_benchmark_1

Expected runtime: seconds. It prints how many rows each workdir added.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from absl import app, flags

from nf_jax import io_utils
from nf_jax import results as R


def _recipe(workdir: str) -> dict[str, Any] | None:
  path = os.path.join(workdir, "recipe.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def merge(into: str, workdirs: Sequence[str]) -> dict[str, int]:
  """Adds the rows and curves of ``workdirs`` to ``into``; returns rows added per workdir.

  Raises ValueError (before writing) if a workdir is missing, has no results, or was trained
  under another recipe than ``into`` (or than the first workdir, if ``into`` has none).
  """
  missing = [w for w in workdirs if not os.path.exists(os.path.join(w, "results.csv"))]
  if missing:
    raise ValueError(f"no results.csv in {missing}; pass training workdirs")
  recipes = {w: _recipe(w) for w in [into, *workdirs]}
  reference = next((r for r in recipes.values() if r is not None), None)
  if reference is None:
    raise ValueError("none of the workdirs has a recipe.json; they predate recipe tracking")
  other = [w for w, r in recipes.items() if r is not None and r != reference]
  if other:
    raise ValueError(
      f"{other} were trained under another recipe than {reference}; merge only one recipe"
    )
  rows = R.read_results(os.path.join(into, "results.csv"))
  curves = R.read_curves(os.path.join(into, "curves.jsonl"))
  seen = {R.model_key(r, r["epochs"]) for r in rows}
  added: dict[str, int] = {}
  for w in workdirs:
    theirs = R.read_results(os.path.join(w, "results.csv"))
    new = [r for r in theirs if R.model_key(r, r["epochs"]) not in seen]
    keys = {R.model_key(r, r["epochs"]) for r in new}
    rows += new
    curves += [c for c in R.read_curves(os.path.join(w, "curves.jsonl")) if tuple(c["key"]) in keys]
    seen |= keys
    added[w] = len(new)
  os.makedirs(into, exist_ok=True)
  if recipes[into] is None:
    io_utils.atomic_write_text(
      os.path.join(into, "recipe.json"), json.dumps(reference, indent=2, sort_keys=True)
    )
  R.write_curves(os.path.join(into, "curves.jsonl"), curves)  # before rows, as sweep does
  R.write_results(os.path.join(into, "results.csv"), rows)
  return added


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  added = merge(FLAGS.into, FLAGS.workdirs)
  for w, n in added.items():
    print(f"{w}: {n} rows added")
  total = len(R.read_results(os.path.join(FLAGS.into, "results.csv")))
  print(f"{FLAGS.into}: {total} rows")


if __name__ == "__main__":
  flags.DEFINE_string("into", None, "Workdir to merge into (created if absent).")
  flags.DEFINE_list("workdirs", None, "Workdirs whose rows are added.")
  flags.mark_flags_as_required(["into", "workdirs"])
  FLAGS = flags.FLAGS
  app.run(main)
