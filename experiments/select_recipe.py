"""Chooses the benchmark's learning rate on validation accuracy, before the benchmark runs.

Trains the recipe config (``experiments/configs/recipe_sweep.py``: the dense baseline and three
cascade families, one seed) at each learning rate of ``--learning_rates`` into
``<workdir>/lr=<value>`` (each resumable), then picks the rate with the highest mean
*validation* accuracy over the models (test accuracy is printed beside it, never chosen on).
Writes ``recipe.json`` (the choice and every rate's numbers) and ``recipe.md`` to ``--out``.

Usage::

  python experiments/select_recipe.py --workdir=runs/recipe --out=experiments/results/recipe
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # as main.py: `configs` imports

from configs import recipe_sweep  # noqa: E402

from nf_jax import io_utils, sweep  # noqa: E402
from nf_jax import results as R  # noqa: E402

FLAGS = flags.FLAGS


def label(row: dict) -> str:
  params = ", ".join(
    f"{k}={row[k]}" for k in ("depth", "radix", "width", "fan_in") if row[k] not in ("", None)
  )
  return f"{row['name']}({params}{', skip' if str(row['skip']) == 'True' else ''})"


def select(per_rate: dict[float, list[dict]]) -> tuple[float, list[dict]]:
  """The rate with the highest mean validation accuracy (ties: the smaller rate), and one
  summary line per rate: ``learning_rate``, ``val_mean``, ``test_mean``, per-model values."""
  table = []
  for lr, rows in sorted(per_rate.items()):
    val = [float(r["val_accuracy"]) for r in rows]
    test = [float(r["test_accuracy"]) for r in rows]
    val_ok = [v if math.isfinite(v) else 0.0 for v in val]  # a diverged model scores 0
    table.append(
      dict(
        learning_rate=lr,
        val_mean=sum(val_ok) / len(val_ok),
        test_mean=sum(t for t in test if math.isfinite(t)) / max(1, sum(map(math.isfinite, test))),
        models={label(r): dict(val=v, test=t) for r, v, t in zip(rows, val, test)},
      )
    )
  best = max(table, key=lambda t: (t["val_mean"], -t["learning_rate"]))
  return best["learning_rate"], table


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rates = [float(v) for v in FLAGS.learning_rates]
  if not rates or any(not r > 0 for r in rates):
    raise app.UsageError(f"--learning_rates={FLAGS.learning_rates} must be positive numbers")
  per_rate = {}
  for lr in rates:
    config = recipe_sweep.get_config("runlocal" if FLAGS.runlocal else None)
    config.train.learning_rate = lr
    workdir = os.path.join(FLAGS.workdir, f"lr={lr:g}")
    sweep.run(config, workdir, progress=FLAGS.progress)
    per_rate[lr] = R.read_results(os.path.join(workdir, "results.csv"))
  chosen, table = select(per_rate)
  models = list(table[0]["models"])
  lines = [
    "# Learning-rate choice for the space benchmark (validation accuracy)",
    "",
    "Chosen on the mean validation accuracy over the models (10k images held out of the",
    "training set); test accuracy is shown beside it and was not used.",
    "",
    "| learning rate | mean val | mean test | " + " | ".join(models) + " |",
    "|---|---|---|" + "---|" * len(models),
  ]
  for t in table:
    cells = [
      f"{100 * t['models'][m]['val']:.2f} / {100 * t['models'][m]['test']:.2f}" for m in models
    ]
    mark = " **(chosen)**" if t["learning_rate"] == chosen else ""
    lines.append(
      f"| {t['learning_rate']:g}{mark} | {100 * t['val_mean']:.2f} | {100 * t['test_mean']:.2f} | "
      + " | ".join(cells)
      + " |"
    )
  lines += ["", "Per model: validation / test accuracy (%), one seed."]
  os.makedirs(FLAGS.out, exist_ok=True)
  io_utils.atomic_write_text(os.path.join(FLAGS.out, "recipe.md"), "\n".join(lines) + "\n")
  io_utils.atomic_write_text(
    os.path.join(FLAGS.out, "recipe.json"),
    json.dumps({"chosen_learning_rate": chosen, "rates": table}, indent=2),
  )
  print("\n".join(lines))


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Folder for the per-rate training runs.")
  flags.DEFINE_string("out", None, "Folder for recipe.json and recipe.md.")
  flags.DEFINE_list("learning_rates", ["3e-4", "1e-3", "3e-3"], "Peak Adam learning rates.")
  flags.DEFINE_bool("runlocal", False, "One-step smoke run of every rate.")
  flags.DEFINE_bool("progress", True, "Show tqdm progress bars.")
  flags.mark_flags_as_required(["workdir", "out"])
  app.run(main)
