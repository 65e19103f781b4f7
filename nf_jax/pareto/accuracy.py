"""The accuracy models of the search: measured (table), predicted (proxy) or trained (train).

Each model maps distinct hidden-topology specs (:data:`nf_jax.pareto.problem.Spec`) to
accuracies in [0, 1] (:data:`nf_jax.pareto.problem.AccuracyFn`), and describes each one for the
outputs (:data:`DETAIL_COLUMNS`): measured accuracies carry their spread over seeds and their
test accuracy; predicted ones their 90% interval (:meth:`nf_jax.calibration.Calibration.interval`)
and why they lie outside the calibrated region (:class:`nf_jax.calibration.CalibratedRegion`).

* ``table`` (default): the trained benchmark of the genome's space (:mod:`nf_jax.space_table`);
  topologies a partial table lacks are predicted by the proxy calibrated on the table.
* ``proxy``: the data-free score calibrated on a results CSV (:mod:`nf_jax.calibration`).
* ``train``: a short training run per topology (:mod:`nf_jax.train`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from absl import logging

from nf_jax import calibration as C
from nf_jax import proxy
from nf_jax.pareto import problem as PP
from nf_jax.pareto.config import SearchConfig

AccuracyDetails = Callable[[Sequence[PP.Spec]], list[dict[str, Any]]]
# What the output rows say of each design's accuracy (empty where it does not apply):
# accuracy_kind ("measured" or "predicted"); for measured, the spread over seeds of the
# validation accuracy (``accuracy`` is its mean), the test accuracy (mean, std) and the seed
# counts; for predicted, the 90% interval and why it lies outside the calibrated region.
DETAIL_COLUMNS = (
  "accuracy_kind",
  "accuracy_std",
  "test_accuracy",
  "test_std",
  "seeds",
  "diverged_seeds",
  "accuracy_lo",
  "accuracy_hi",
  "outside_calibration",
)


def _predicted_details(
  cal: C.Calibration, region: C.CalibratedRegion, specs: Sequence[PP.Spec], pred: np.ndarray
) -> list[dict[str, Any]]:
  lo, hi = cal.interval(pred)
  return [
    dict(
      accuracy_kind="predicted",
      accuracy_lo=float(a),
      accuracy_hi=float(b),
      outside_calibration=region.outside(s),
    )
    for s, a, b in zip(specs, lo, hi)
  ]


def table_accuracy_fn(
  config: SearchConfig,
) -> tuple[PP.AccuracyFn, C.Calibration | None, AccuracyDetails]:
  """Measured accuracy: each topology's mean *validation* accuracy over its seeds in the
  trained benchmark of the space (:mod:`nf_jax.space_table`); returns the function, the
  calibration (None when the table covers the space) and the per-spec details.

  A topology whose every seed diverged scores 0. While the benchmark is still being trained
  (a partial table), the topologies it lacks are *predicted* by the data-free proxy
  calibrated on the table's measured validation means; every such accuracy is labelled
  ``predicted`` with its 90% interval and the reason it lies outside the calibrated region,
  and a WARNING counts them. A table trained on another space is refused.
  """
  from nf_jax import space_table

  table = space_table.load(config.table or None)
  space = PP.topology_space()
  keys = {PP.topology_key(*s): s for s in space}
  missing = [s for k, s in keys.items() if k not in table.entries]
  predicted: dict[str, tuple[float, dict[str, Any]]] = {}
  cal = None
  if missing:
    measured = [
      s for k, s in keys.items() if k in table.entries and np.isfinite(table.entries[k].val_mean)
    ]
    acc = np.asarray([table.entries[PP.topology_key(*s)].val_mean for s in measured])
    names = tuple(config.features)
    x = C.features(measured + missing, names, proxy.FitConfig(steps=config.fit_steps))
    source = f"{table.source} (validation means of {len(measured)} topologies)"
    cal = C.fit_features(x[: len(measured)], acc, names, source=source)
    pred = cal.predict_features(x[len(measured) :])
    details = _predicted_details(cal, C.CalibratedRegion.of(measured), missing, pred)
    predicted = {PP.topology_key(*s): (float(a), d) for s, a, d in zip(missing, pred, details)}
    logging.warning(
      "the benchmark table %s covers %d of %d topologies; the other %d are PREDICTED (labelled "
      "in every output) until the benchmark is complete",
      table.source,
      len(space) - len(missing),
      len(space),
      len(missing),
    )

  def fn(specs):
    out = []
    for s in specs:
      k = PP.topology_key(*s)
      if k in predicted:
        out.append(predicted[k][0])
      else:
        v = table.lookup([s])[0].val_mean
        out.append(v if np.isfinite(v) else 0.0)
    return np.asarray(out, np.float64)

  def describe(specs):
    rows = []
    for s in specs:
      k = PP.topology_key(*s)
      if k in predicted:
        rows.append(dict(predicted[k][1]))
        continue
      e = table.lookup([s])[0]
      rows.append(
        dict(
          accuracy_kind="measured",
          accuracy_std=e.val_std,
          test_accuracy=e.test_mean,
          test_std=e.test_std,
          seeds=e.seeds,
          diverged_seeds=e.diverged,
        )
      )
    return rows

  return fn, cal, describe


def proxy_accuracy_fn(config: SearchConfig) -> tuple[PP.AccuracyFn, C.Calibration]:
  """Accuracy from the calibrated data-free score; returns the function and the calibration.

  With a fit-based feature, the calibration rows and the genome's whole topology space (248
  specs, :func:`nf_jax.pareto.problem.topology_space`) are scored in ONE batched pass up front:
  each fit shape group then compiles once, instead of once per generation and batch size, and
  every later evaluation is a table lookup. Structural features are cheap and scored on demand.
  """
  fit_config = proxy.FitConfig(steps=config.fit_steps)
  specs, acc = C.load_results(config.calibration)
  names = tuple(config.features)
  table: dict[str, float] = {}
  if any(n in proxy.FIT_SCORES for n in names):
    space = PP.topology_space()
    x = C.features(list(specs) + space, names, fit_config)
    cal = C.fit_features(x[: len(specs)], acc, names, source=config.calibration)
    pred = cal.predict_features(x[len(specs) :])
    table = {PP.topology_key(*s): float(a) for s, a in zip(space, pred)}
  else:
    cal = C.fit(specs, acc, names, fit_config, source=config.calibration)
  logging.info(
    "calibration %s: %d rows, LOO MAE %.4f (mean predictor %.4f)",
    cal.source,
    cal.num_rows,
    cal.loo_mae,
    cal.baseline_mae,
  )

  def fn(specs):
    keys = [PP.topology_key(*s) for s in specs]
    if all(k in table for k in keys):
      return np.asarray([table[k] for k in keys])
    return cal.predict_features(C.features(specs, cal.names, fit_config))

  return fn, cal


def proxy_details(config: SearchConfig, cal: C.Calibration, fn: PP.AccuracyFn) -> AccuracyDetails:
  """Per spec: ``predicted``, the 90% interval and why it lies outside the calibrated region."""
  region = C.CalibratedRegion.of(C.load_results(config.calibration)[0])
  return lambda specs: _predicted_details(cal, region, specs, fn(list(specs)))


def train_accuracy_fn(config: SearchConfig, dataset: Any = None) -> PP.AccuracyFn:
  """Accuracy by training each distinct topology (a vmapped sweep per shape group).

  ``dataset`` defaults to Fashion-MNIST (:func:`nf_jax.data.load`); results are cached by the
  evaluator per topology, so a topology trains once per run (and once across resumes).
  """
  from nf_jax import data
  from nf_jax import train as tr

  state: dict[str, Any] = {"ds": dataset}

  def fn(specs):
    if state["ds"] is None:
      state["ds"] = data.split_validation(data.load("fashion_mnist"), 10000)
    ds = state["ds"]
    if ds.x_val is None:
      raise ValueError(
        "the dataset has no validation split, which --accuracy=train selects on; pass "
        "nf_jax.data.split_validation(dataset, size)"
      )
    model_specs = [tr.ModelSpec.create(name, n, **params) for name, n, params in specs]
    tc = tr.TrainConfig(num_epochs=1, steps_per_epoch=config.train_steps, log_every=10)
    acc = {}
    for group in tr.group_compatible(model_specs, ds.x_train.shape[1]):
      for r in tr.train_sweep(group, ds, tc, progress=False):
        acc[r.spec] = r.val_accuracy if np.isfinite(r.val_accuracy) else 0.0
    return np.asarray([acc[s] for s in model_specs])

  return fn


def memoise(fn: PP.AccuracyFn) -> PP.AccuracyFn:
  """``fn`` with a per-topology memo (shared by every run that uses the returned function)."""
  memo: dict[str, float] = {}

  def wrapped(specs):
    todo = [s for s in specs if PP.topology_key(*s) not in memo]
    if todo:
      memo.update({PP.topology_key(*s): float(a) for s, a in zip(todo, fn(todo))})
    return np.asarray([memo[PP.topology_key(*s)] for s in specs])

  return wrapped


def _measured_short(specs: Sequence[PP.Spec]) -> list[dict[str, Any]]:
  return [dict(accuracy_kind="measured (short training, 1 seed)") for _ in specs]


def accuracy_model(
  config: SearchConfig, dataset: Any = None
) -> tuple[PP.AccuracyFn, C.Calibration | None, AccuracyDetails]:
  """``(accuracy_fn, calibration or None, details)`` of ``config.accuracy``.

  ``dataset``: training data for ``accuracy="train"`` (default Fashion-MNIST).
  """
  if config.accuracy == "train":
    return train_accuracy_fn(config, dataset), None, _measured_short
  if config.accuracy == "table":
    return table_accuracy_fn(config)
  fn, cal = proxy_accuracy_fn(config)
  return fn, cal, proxy_details(config, cal, fn)
