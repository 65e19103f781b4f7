"""Accuracy from data-free scores: a ridge regression fitted on trained results.

``accuracy ~ w . z(features) + b``, where the features of a hidden topology are data-free
scores from :mod:`nf_jax.proxy` (default ``fit_score``) plus ``log_params``
(log10 of the topology's weights), each standardised over the calibration rows. Ridge keeps a
fit on a dozen rows stable; the error reported is the leave-one-out mean absolute error (each
row predicted by a model fitted without it), next to the same error of predicting the mean.

Calibration data: any results CSV in the study contract (``name, n, depth, radix, width,
fan_in, skip, topology_seed, ..., test_accuracy``); each row's hidden topology is rebuilt with
``T.make(name, n, **non-empty params, seed=topology_seed)``. The committed default is the
topology study's ``experiments/results/topology_study/results.csv`` (Fashion-MNIST, n = 1024,
4 epochs, 3 seeds; ``experiments/README.md``); predictions for other widths extrapolate from it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging

from nf_jax import proxy
from nf_jax import results as R
from nf_jax import topology as T

DEFAULT_CSV = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  "experiments",
  "results",
  "topology_study",
  "results.csv",
)
DEFAULT_FEATURES = ("fit_score", "log_params")
STRUCTURAL_FEATURES = ("connectivity", "path_entropy", "log_paths", "log_params")
FEATURES = proxy.SCORE_NAMES + ("log_params",)
PARAM_KEYS = ("depth", "radix", "width", "fan_in")

Spec = tuple[str, int, dict[str, Any]]


def accuracy_column(rows: Sequence[dict[str, str]]) -> str:
  """``val_accuracy`` when every row has one (selection uses validation), else the legacy
  ``test_accuracy`` of results trained before the validation split existed."""
  if rows and all(str(r.get("val_accuracy", "")).strip() != "" for r in rows):
    return "val_accuracy"
  return "test_accuracy"


def load_results(path: str) -> tuple[list[Spec], np.ndarray]:
  """Hidden-topology specs and accuracies (:func:`accuracy_column`) of a results CSV.

  Rows with NaN accuracy and cascades trained with another init than ``depth_aware`` (the
  study's ablation) are dropped.

  Raises:
    ValueError: a missing file or column, an accuracy that is not a fraction in ``[0, 1]``
      (e.g. percent; the line is named), or fewer than 3 usable rows.
  """
  if not os.path.exists(path):
    raise ValueError(f"calibration={path!r} does not exist; pass a study results.csv")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  need = {"name", "n", "skip", "test_accuracy"} | set(PARAM_KEYS)
  missing = need - set(rows[0] if rows else {})
  if missing:
    raise ValueError(f"calibration={path!r} lacks columns {sorted(missing)}")
  specs, acc = [], []
  column = accuracy_column(rows)
  if column == "test_accuracy":
    logging.warning(
      "calibration=%s has no validation accuracies; calibrating on test accuracy (legacy results)",
      path,
    )
  for line, r in enumerate(rows, start=2):  # line 1 is the header
    try:
      a = float(r[column])
    except (TypeError, ValueError):
      raise ValueError(
        f"calibration={path!r} line {line}: {column}={r[column]!r} is not a number"
      ) from None
    if math.isfinite(a) and not 0.0 <= a <= 1.0:
      hint = f" (percent? write {a / 100:g})" if 1.0 < a <= 100.0 else ""
      raise ValueError(
        f"calibration={path!r} line {line}: {column}={a:g} is outside [0, 1]{hint}; "
        "accuracies are fractions"
      )
    if not math.isfinite(a) or R.is_init_ablation(r):
      continue
    try:
      spec = T.TopologySpec.from_row(r)
    except ValueError as err:
      raise ValueError(f"calibration={path!r} line {line}: {err}") from None
    specs.append((spec.name, spec.n, spec.kwargs()))  # the hidden n x n cascade
    acc.append(a)
  if len(specs) < 3:
    raise ValueError(f"calibration={path!r} has {len(specs)} usable rows; need >= 3")
  return specs, np.asarray(acc, np.float64)


def features(
  specs: Sequence[Spec], names: Sequence[str], fit_config: proxy.FitConfig | None = None
) -> np.ndarray:
  """``float64[len(specs), len(names)]`` features of hidden topologies (one batched scoring)."""
  fit_config = proxy.FitConfig() if fit_config is None else fit_config
  bad = [n for n in names if n not in FEATURES]
  if bad:
    raise ValueError(f"features {bad} unknown; choose from {FEATURES}")
  ts = [T.make(name, n, **params) for name, n, params in specs]
  need_fit = any(n in proxy.FIT_SCORES for n in names)
  need_struct = any(n in proxy.STRUCTURAL_SCORES for n in names)
  scores = (
    proxy.score_topologies(ts, fit_config, structural=need_struct, fit=need_fit)
    if (need_fit or need_struct)
    else {}
  )
  scores["log_params"] = np.log10([t.num_params for t in ts])
  return np.stack([np.asarray(scores[n], np.float64) for n in names], axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Ridge on standardised ``x``: returns (weights, feature mean, feature std); bias = mean y."""
  mu, sd = x.mean(0), x.std(0)
  sd = np.where(sd > 1e-12, sd, 1.0)
  z = (x - mu) / sd
  w = np.linalg.solve(z.T @ z + lam * np.eye(x.shape[1]), z.T @ (y - y.mean()))
  return w, mu, sd


@dataclasses.dataclass
class Calibration:
  """A fitted score -> accuracy map and its held-out error.

  Attributes:
    names: feature names.
    weights, mean, std, bias: the ridge model on standardised features.
    loo_mae: leave-one-out MAE of accuracy (fraction, not %).
    baseline_mae: leave-one-out MAE of predicting the training mean.
    num_rows: calibration rows used.
    source: the CSV path.
  """

  names: tuple[str, ...]
  weights: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  bias: float
  loo_mae: float
  baseline_mae: float
  num_rows: int
  source: str
  lo: float
  hi: float
  # 90th percentile of the leave-one-out absolute errors: the half-width of the 90% prediction
  # interval reported beside every prediction (an empirical, not a Gaussian, interval).
  loo_abs_q90: float = math.nan

  def interval(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 90% prediction interval ``(lo, hi)`` of ``predicted`` accuracies, clipped to [0, 1]."""
    p = np.asarray(predicted, np.float64)
    return np.clip(p - self.loo_abs_q90, 0.0, 1.0), np.clip(p + self.loo_abs_q90, 0.0, 1.0)

  def predict_features(self, x: np.ndarray) -> np.ndarray:
    """Accuracy ``float[k]`` from features ``[k, len(names)]``, clipped to the seen range +-0.05."""
    y = ((x - self.mean) / self.std) @ self.weights + self.bias
    return np.clip(y, max(0.0, self.lo - 0.05), min(1.0, self.hi + 0.05))


def fit(
  specs: Sequence[Spec],
  accuracy: np.ndarray,
  names: Sequence[str] = DEFAULT_FEATURES,
  fit_config: proxy.FitConfig | None = None,
  lam: float = 1.0,
  source: str = "",
) -> Calibration:
  """Fits the ridge map on all rows and measures its leave-one-out MAE."""
  return fit_features(features(specs, names, fit_config), accuracy, names, lam, source)


def fit_features(
  x: np.ndarray, accuracy: np.ndarray, names: Sequence[str], lam: float = 1.0, source: str = ""
) -> Calibration:
  """:func:`fit` from precomputed features ``x: [rows, len(names)]``."""
  y = np.asarray(accuracy, np.float64)
  errs, base = [], []
  for i in range(len(y)):
    keep = np.arange(len(y)) != i
    w, mu, sd = _ridge(x[keep], y[keep], lam)
    errs.append(abs(((x[i] - mu) / sd) @ w + y[keep].mean() - y[i]))
    base.append(abs(y[keep].mean() - y[i]))
  w, mu, sd = _ridge(x, y, lam)
  return Calibration(
    names=tuple(names),
    weights=w,
    mean=mu,
    std=sd,
    bias=float(y.mean()),
    loo_mae=float(np.mean(errs)),
    baseline_mae=float(np.mean(base)),
    num_rows=len(y),
    source=source,
    lo=float(y.min()),
    hi=float(y.max()),
    loo_abs_q90=float(np.quantile(errs, 0.9)),
  )


@dataclasses.dataclass(frozen=True)
class CalibratedRegion:
  """Where a calibration saw data: hidden-layer parameter range, families and widths."""

  min_params: int
  max_params: int
  families: frozenset[str]
  widths: frozenset[int]

  @classmethod
  def of(cls, specs: Sequence[Spec]) -> CalibratedRegion:
    counts = [T.make(name, n, **params).num_params for name, n, params in specs]
    return cls(
      min(counts),
      max(counts),
      frozenset(name for name, _, _ in specs),
      frozenset(int(n) for _, n, _ in specs),
    )

  def outside(self, spec: Spec) -> str:
    """Why ``spec`` lies outside the region (empty string if inside)."""
    name, n, params = spec
    reasons = []
    if name not in self.families:
      reasons.append(f"family {name} never trained")
    if int(n) not in self.widths:
      reasons.append(f"width {n} never trained")
    count = T.make(name, n, **params).num_params
    if not self.min_params <= count <= self.max_params:
      reasons.append(f"{count} params outside [{self.min_params}, {self.max_params}]")
    return "; ".join(reasons)


def from_csv(
  path: str = DEFAULT_CSV,
  names: Sequence[str] = DEFAULT_FEATURES,
  fit_config: proxy.FitConfig | None = None,
) -> Calibration:
  """:func:`fit` on the rows of a study results CSV."""
  specs, acc = load_results(path)
  return fit(specs, acc, names, fit_config, source=path)
