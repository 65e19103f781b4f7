"""Study runner: a config's model grid -> vmapped sweep groups -> ``results.csv``, JSON, plots.

``run(config, workdir)`` expands ``config.models`` x ``config.seeds`` (plus the dense baseline)
into :class:`nf_jax.train.ModelSpec`s, trains each group of equal shape signature as one
vmapped, sharded program (:func:`nf_jax.train.train_sweep`), and after every group rewrites
``<workdir>/results.csv`` atomically with the finished rows. A rerun skips every model whose
row is already there, so an interrupted study loses at most the group in flight (and not even
that with ``keep_checkpoints``: the group resumes from its Orbax checkpoint).

Its files follow the results contract of :mod:`nf_jax.results`: :func:`result_row` builds a
``results.csv`` row (``val_accuracy`` on the ``config.validation_size`` examples held out, the
``recipe`` column :func:`recipe_hash`), and ``curves.jsonl`` is kept when the checkpoints are
deleted.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from nf_jax import data, io_utils, watchdog
from nf_jax import results as R
from nf_jax import train as tr

TRAIN_SEED = "train_seed"  # a topology-parameter value meaning "use this model's train seed"


def train_config(config: Any) -> tr.TrainConfig:
  """``config.train`` (ml_collections) -> :class:`nf_jax.train.TrainConfig`."""
  c = config.train
  steps = c.get("steps_per_epoch", -1)
  every = c.get("checkpoint_every", -1)
  return tr.TrainConfig(
    learning_rate=float(c.learning_rate),
    batch_size=int(c.batch_size),
    num_epochs=int(c.num_epochs),
    steps_per_epoch=None if steps is None or steps < 0 else int(steps),
    weight_decay=float(c.get("weight_decay", 0.0)),
    warmup_steps=int(c.get("warmup_steps", 0)),
    eval_batch_size=int(c.get("eval_batch_size", 2000)),
    checkpoint_every=None if every is None or every < 0 else int(every),
    on_nonfinite=str(c.get("on_nonfinite", "stop")),
    log_every=int(c.get("log_every", 50)),
    impl=str(c.get("impl", "auto")),
  )


# Config fields that change a trained model's numbers (the kernel choice, logging and
# checkpointing do not: every kernel is tested against the same dense reference).
RECIPE_FIELDS = (
  "dataset",
  "max_train_examples",
  "max_test_examples",
  "pool",
  "validation_size",
  "validation_seed",
  "num_layers",
)
RECIPE_TRAIN_FIELDS = (
  "learning_rate",
  "dense_learning_rate",
  "batch_size",
  "num_epochs",
  "steps_per_epoch",
  "weight_decay",
  "warmup_steps",
)


def recipe(config: Any) -> dict[str, Any]:
  """Every setting of ``config`` that changes results, as a flat JSON-able dict."""
  tc = train_config(config)
  out = {f: config.get(f, None) for f in RECIPE_FIELDS}
  train = {f: getattr(tc, f, None) for f in RECIPE_TRAIN_FIELDS}
  train["dense_learning_rate"] = config.train.get("dense_learning_rate", 0.0)
  out.update({f"train.{f}": v for f, v in train.items()})
  return out


def group_train_config(config: Any, tconfig: tr.TrainConfig, group: Sequence[tr.ModelSpec]):
  """``tconfig``, with ``config.train.dense_learning_rate`` (when > 0) for the nn.Dense
  baseline: a baseline tuned on validation on its own, so cascades are not compared with an
  under-tuned dense model."""
  rate = float(config.train.get("dense_learning_rate", 0.0) or 0.0)
  if rate > 0 and group[0].is_dense:
    return dataclasses.replace(tconfig, learning_rate=rate)
  return tconfig


def recipe_hash(config: Any) -> str:
  """12-hex-digit SHA-256 of :func:`recipe` (the ``recipe`` column of results.csv)."""
  text = json.dumps(recipe(config), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def model_specs(config: Any) -> list[tr.ModelSpec]:
  """The grid: every entry of ``config.models`` x ``config.seeds``, dense baseline first.

  An entry is a dict ``name=<family>``, ``weight_init=`` (optional) and ``T.make`` parameters;
  a parameter set to ``"train_seed"`` takes each model's train seed.
  """
  specs = []
  layers = int(config.num_layers)
  for seed in config.seeds:
    if config.get("include_dense", True):
      specs.append(
        tr.ModelSpec.create("dense", int(config.n), num_layers=layers, train_seed=int(seed))
      )
  for entry in config.models:
    entry = dict(entry)
    name = entry.pop("name")
    n = int(entry.pop("n", config.n))  # an entry may set its own hidden width
    init = entry.pop("weight_init", "depth_aware")
    for seed in config.seeds:
      # seed="train_seed": the topology seed follows the train seed (wiring varies too).
      params = {k: int(seed) if v == TRAIN_SEED else v for k, v in entry.items()}
      specs.append(
        tr.ModelSpec.create(
          name, n, num_layers=layers, weight_init=init, train_seed=int(seed), **params
        )
      )
  return specs


def result_row(
  spec: tr.ModelSpec,
  result: tr.ModelResult | None = None,
  seconds: float = math.nan,
  recipe_id: str = "",
) -> dict[str, Any]:
  """The results-contract row of ``spec`` (metrics empty when ``result`` is None)."""
  t = tr.T.make("dense", spec.n) if spec.is_dense else spec.hidden_topology()
  p = t.params()
  row = {
    "name": spec.name,
    "n": spec.n,
    "n_in": p["n_in"],
    "depth": p["depth"],
    "radix": p.get("radix", ""),
    "width": p.get("width", ""),
    "fan_in": p.get("fan_in", ""),
    "skip": p["skip"],
    "topology_seed": p.get("seed", ""),
    "train_seed": spec.train_seed,
    "weight_init": R.DENSE_INIT if spec.is_dense else spec.weight_init,
    "num_params": t.num_params,
    "density": t.density,
    "recipe": recipe_id,
  }
  if result is not None:
    row.update(
      val_accuracy=result.val_accuracy,
      test_accuracy=result.test_accuracy,
      train_accuracy=result.train_accuracy,
      final_loss=result.final_loss,
      epochs=result.epochs,
      seconds=seconds,
    )
  return row


@functools.lru_cache(maxsize=4)
def load_dataset(
  name: str,
  data_dir: str | None,
  max_train: int,
  max_test: int,
  pool: int = 1,
  validation_size: int = 0,
  validation_seed: int = 0,
) -> data.Dataset:
  """:func:`nf_jax.data.load`, average-pooled by ``pool`` (:func:`nf_jax.data.pool`), with
  ``validation_size`` training examples held out (:func:`nf_jax.data.split_validation`; 0:
  none), then cut to the first ``max_*`` examples (0: all; ``max_train`` cuts both the
  remaining training and the validation examples)."""
  ds = data.pool(data.load(name, data_dir), pool)
  if validation_size:
    ds = data.split_validation(ds, validation_size, validation_seed)
  if max_train:
    ds = ds._replace(x_train=ds.x_train[:max_train], y_train=ds.y_train[:max_train])
    if ds.x_val is not None:
      ds = ds._replace(x_val=ds.x_val[:max_train], y_val=ds.y_val[:max_train])
  if max_test:
    ds = ds._replace(x_test=ds.x_test[:max_test], y_test=ds.y_test[:max_test])
  return ds


def check_recipe(config: Any, workdir: str, rows: Sequence[dict[str, str]]) -> None:
  """Refuses to add to ``workdir`` rows trained under another recipe, naming what differs.

  ``<workdir>/recipe.json`` records the recipe the first run wrote; a later run whose config
  changes any :data:`RECIPE_FIELDS` setting would otherwise mix numbers from two recipes.
  """
  path = os.path.join(workdir, "recipe.json")
  ours = recipe(config)
  if os.path.exists(path):
    with open(path) as f:
      try:
        theirs = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(
          f"{path} is not valid JSON ({e}); delete it only if {workdir} holds no results"
        ) from e
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if diff:
      changes = ", ".join(f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}" for k in diff)
      raise ValueError(
        f"{workdir} holds results of another recipe ({changes}). Use a new --workdir for the "
        "new settings, or rerun with the recipe recorded in recipe.json to resume"
      )
  elif any(r.get("recipe") for r in rows):
    raise ValueError(f"{workdir}/results.csv has rows but {path} is missing; use a new --workdir")
  elif jax.process_index() == 0:
    io_utils.atomic_write_text(path, json.dumps(ours, indent=2, sort_keys=True, default=str))


def _chunks(items: list, size: int) -> list[list]:
  return [items[i : i + size] for i in range(0, len(items), size)]


def run(config: Any, workdir: str, progress: bool = True) -> dict[str, Any]:
  """Runs (or resumes) the study of ``config``; returns the summary also written as JSON.

  Writes ``results.csv`` (the contract above), ``summary.csv`` (mean and std over seeds per
  configuration), ``results.json`` (config, summary, goal checks, timing) and the plots
  ``accuracy_vs_params.png`` and ``accuracy_vs_depth.png`` to ``workdir``.

  Raises:
    ValueError: before any training: a workdir that is a file or not writable, damaged
      results, another recipe's results, a bad model entry or data set.
  """
  is_writer = jax.process_index() == 0  # multi-host: the others read the shared workdir
  if is_writer:
    io_utils.check_workdir(workdir)
  tconfig = train_config(config)
  results_path = os.path.join(workdir, "results.csv")
  rows = R.read_results(results_path)
  check_recipe(config, workdir, rows)
  recipe_id = recipe_hash(config)
  specs = model_specs(config)  # validates every entry before the data is read
  dataset = load_dataset(
    config.dataset,
    config.get("data_dir") or None,
    int(config.get("max_train_examples", 0)),
    int(config.get("max_test_examples", 0)),
    int(config.get("pool", 1)),
    int(config.get("validation_size", 0)),
    int(config.get("validation_seed", 0)),
  )
  done = {R.model_key(r, r["epochs"]) for r in rows}
  curves_path = os.path.join(workdir, "curves.jsonl")
  curves = [c for c in R.read_curves(curves_path) if tuple(c["key"]) in done]
  todo = [
    s
    for s in specs
    if R.model_key(result_row(s, recipe_id=recipe_id), tconfig.num_epochs) not in done
  ]
  if len(todo) < len(specs):
    logging.info(
      "resuming: %d of %d models already in %s", len(specs) - len(todo), len(specs), results_path
    )
  d_in = dataset.x_train.shape[1]
  groups = [
    chunk
    for group in tr.group_compatible(todo, d_in, mix_tables=bool(config.get("mix_tables", False)))
    for chunk in _chunks(group, int(config.get("max_models_per_group", 12)))
  ]
  bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="models", disable=not progress)
  t_study = time.perf_counter()
  for group in groups:
    group_dir = None
    if config.get("keep_checkpoints", True):
      tag = "-".join(sorted({s.name for s in group}))
      # A stable name (Python's str hash is salted per process): resume finds the same folder.
      digest = hashlib.sha1(repr(group).encode()).hexdigest()[:12]
      group_dir = os.path.join(workdir, "groups", f"{tag}-{digest}")
    t0 = time.perf_counter()
    group_config = group_train_config(config, tconfig, group)
    results = tr.train_sweep(group, dataset, group_config, workdir=group_dir, progress=progress)
    per_model = (time.perf_counter() - t0) / len(group)
    for spec, res in zip(group, results):
      row = result_row(spec, res, per_model, recipe_id)
      rows.append(row)
      key = list(R.model_key(row, row["epochs"]))
      curves += [dict(h, key=key, model=spec.label()) for h in res.history]
      if res.diverged:
        logging.warning("%s diverged (non-finite loss); recorded with NaN accuracy", spec.label())
    if is_writer:
      R.write_curves(curves_path, curves)  # before the rows: a row never lacks its curve
      R.write_results(results_path, rows)
      if group_dir is not None and not config.get("keep_finished_checkpoints", False):
        shutil.rmtree(group_dir, ignore_errors=True)  # its rows are safe in results.csv
    bar.update(len(group))
    watchdog.beat(tr.WATCHDOG_SETUP_S, "between groups")
  bar.close()
  groups_dir = os.path.join(workdir, "groups")
  if is_writer and not config.get("keep_finished_checkpoints", False) and os.path.isdir(groups_dir):
    # Every model is done now: a folder left here is a finished group's, whose deletion a kill
    # interrupted (its rows are in results.csv).
    for name in os.listdir(groups_dir):
      logging.info("removing %s: checkpoints of a finished group", os.path.join(groups_dir, name))
      shutil.rmtree(os.path.join(groups_dir, name), ignore_errors=True)
  summary = summarise(rows)
  report = {
    "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
    "dataset_source": dataset.source,
    "num_models": len(rows),
    "seconds_this_run": time.perf_counter() - t_study,
    "seconds_total": float(sum(_float(r["seconds"]) for r in rows)),
    "devices": [str(d) for d in jax.devices()],
    "recipe": recipe(config),
    "recipe_hash": recipe_id,
    "summary": summary,
    "goals": check_goals(summary),
  }
  if is_writer:
    write_summary_csv(os.path.join(workdir, "summary.csv"), summary)
    io_utils.atomic_write_text(
      os.path.join(workdir, "results.json"), json.dumps(report, indent=2, default=str)
    )
    plot(summary, workdir)
  return report


def _float(value: Any) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


CONFIG_COLUMNS = ("name", "n", "depth", "radix", "width", "fan_in", "skip", "weight_init")


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Per configuration (``CONFIG_COLUMNS``, topology seed and train seed pooled): mean, std
  (ddof=1; 0 for one seed) and count of test accuracy, and the hidden cascade's size."""
  groups: dict[tuple, list[dict[str, Any]]] = {}
  for row in rows:
    groups.setdefault(tuple(str(row[c]) for c in CONFIG_COLUMNS), []).append(row)
  out = []
  for key, members in groups.items():
    acc = np.array([_float(m["test_accuracy"]) for m in members])
    val = np.array([_float(m.get("val_accuracy")) for m in members])
    finite = acc[np.isfinite(acc)]
    val_finite = val[np.isfinite(val)]
    out.append(
      dict(
        zip(CONFIG_COLUMNS, key),
        num_params=int(_float(members[0]["num_params"])),
        density=_float(members[0]["density"]),
        val_accuracy_mean=float(val_finite.mean()) if val_finite.size else math.nan,
        val_accuracy_std=float(val_finite.std(ddof=1)) if val_finite.size > 1 else 0.0,
        test_accuracy_mean=float(finite.mean()) if finite.size else math.nan,
        test_accuracy_std=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        seeds=len(members),
        diverged=int(acc.size - finite.size),
      )
    )
  return out


def write_summary_csv(path: str, summary: Sequence[dict[str, Any]]) -> None:
  """The summary rows (columns of the first; an empty file for none) to ``path``, atomically."""
  io_utils.atomic_write_csv(path, summary)


# The topology study's goals (check_goals; results in experiments/README.md): dense >= 89% test
# accuracy; the best cascade at <= 10% of the dense hidden params within 1 point of dense.
GOAL_DENSE_ACCURACY = 0.89
GOAL_MAX_DENSITY = 0.10
GOAL_GAP = 0.01


def check_goals(summary: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """The goal checks on the summary (None where the study lacks the needed rows)."""
  dense = [s for s in summary if s["name"] == "dense" and s["weight_init"] == R.DENSE_INIT]
  sparse = [
    s
    for s in summary
    if s["name"] != "dense"
    and s["density"] <= GOAL_MAX_DENSITY
    and math.isfinite(s["test_accuracy_mean"])
  ]
  dense_acc = dense[0]["test_accuracy_mean"] if dense else None
  best = max(sparse, key=lambda s: s["test_accuracy_mean"]) if sparse else None
  return {
    "dense_accuracy": dense_acc,
    "dense_at_least_89": None if dense_acc is None else bool(dense_acc >= GOAL_DENSE_ACCURACY),
    "best_sparse": best,
    "best_sparse_within_1_point": (
      None
      if best is None or dense_acc is None
      else bool(best["test_accuracy_mean"] >= dense_acc - GOAL_GAP)
    ),
  }


def plot(summary: Sequence[dict[str, Any]], workdir: str) -> None:
  """``accuracy_vs_params.png`` and ``accuracy_vs_depth.png`` (depth-aware init; mean +- std)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  dense = [s for s in summary if s["name"] == "dense" and s["weight_init"] == R.DENSE_INIT]
  cascades = [s for s in summary if s["name"] != "dense" and s["weight_init"] == "depth_aware"]
  series: dict[tuple[str, str], list[dict[str, Any]]] = {}
  for s in cascades:
    series.setdefault((s["name"], s["skip"]), []).append(s)
  for x_key, x_label, filename in (
    ("num_params", "hidden n x n cascade parameters (log)", "accuracy_vs_params.png"),
    ("depth", "sublayers per cascade (depth)", "accuracy_vs_depth.png"),
  ):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (name, skip), members in sorted(series.items()):
      members = sorted(members, key=lambda s: _float(s[x_key]))
      xs = [_float(s[x_key]) for s in members]
      ys = [100 * s["test_accuracy_mean"] for s in members]
      es = [100 * s["test_accuracy_std"] for s in members]
      style = "-" if str(skip) == "True" else "--"
      ax.errorbar(
        xs,
        ys,
        yerr=es,
        fmt="o" + style,
        capsize=3,
        ms=4,
        label=f"{name}{' + skip' if str(skip) == 'True' else ''}",
      )
    if dense:
      ax.axhline(100 * dense[0]["test_accuracy_mean"], color="k", lw=1, label="dense MLP")
    if x_key == "num_params":
      ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy (%), mean +- std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    io_utils.atomic_savefig(fig, os.path.join(workdir, filename), dpi=120)
    plt.close(fig)
