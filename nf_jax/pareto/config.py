"""The search's settings: :class:`SearchConfig` (the library's) and :func:`get_config` (the CLI's).

``get_config()`` is the default config file of ``python -m nf_jax.pareto`` (flax-examples style:
``--config`` names a file with a ``get_config()``, ``--config.<field>=`` overrides one field).
Its fields are :class:`SearchConfig`'s, with the same defaults (stated once, in the dataclass).

Command (embedded default: 28 designs x 40 generations, NSGA-III, measured accuracy from the
committed benchmark table)::

  python -m nf_jax.pareto --workdir=runs/pareto-demo
  python -m nf_jax.pareto --workdir=runs/small --config.generations=4 --config.max_area=50

Runtime: about 1.5 minutes on 2 CPU cores, offline (README.md, "Quick start").
Result: 1120 evaluations, of which 600-750 designs form the six-objective front (the count moves
with the committed benchmark table); NSGA-III reaches about 1.3x random search's hypervolume at
this budget (benchmarks/README.md, "pareto_bench.py").
"""

from __future__ import annotations

import dataclasses

import ml_collections

from nf_jax import calibration as C
from nf_jax import proxy
from nf_jax.hw import fabric
from nf_jax.pareto import operators

# Algorithms run by pymoo (operators.make_algorithm); "random" samples uniformly (the baseline).
PYMOO_ALGORITHMS = ("nsga3", "nsga2")
ALGORITHMS = (*PYMOO_ALGORITHMS, "random")
ACCURACY_MODES = ("table", "proxy", "train")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Everything that determines a search's result (checkpoints refuse a different one).

  Attributes:
    seed: seeds pymoo (sampling, variation, selection); same seed -> same front.
    population: designs per generation (NSGA-III needs >= the number of reference directions).
    generations: generations (the budget is ``population * generations`` evaluations).
    algorithm: ``nsga3`` (default), ``nsga2`` or ``random`` (uniform sampling, the baseline).
    n_partitions: Das-Dennis partitions of the outer layer of reference directions (on the
      6-objective simplex's boundary-heavy grid: 2 -> 21 directions, 3 -> 56).
    inner_partitions: Das-Dennis partitions of an inner layer shrunk halfway to the simplex's
      centre (Deb & Jain 2014's two-layer directions; 1 -> 6 more, 0 -> none). See
      :func:`nf_jax.pareto.operators.reference_directions`.
    accuracy: ``table`` (measured: the trained benchmark of the space,
      :mod:`nf_jax.space_table`), ``proxy`` (calibrated data-free score, for spaces beyond
      the table) or ``train`` (a short training run per topology).
    table: the benchmark table (``""``: the committed one, ``nf_jax/tables``).
    calibration: results CSV the proxy calibration is fitted on (``accuracy="proxy"``).
    features: calibration features (``nf_jax.calibration.FEATURES``).
    fit_steps: Adam steps of the fit-based proxy score.
    train_steps: training steps per candidate with ``accuracy="train"`` (batch 128, 1 epoch).
    max_area, max_power, min_accuracy: optional constraints (None: off), mm^2, W, fraction.
    batch: inference batch for throughput (latency is batch-1: one sample).
    hw_mapping: the simulator's memory model for the hardware objectives
      (``nf_jax.hw.fabric.MAPPINGS``): ``latency`` (the mapper's latency-optimal tiling and loop
      order), ``energy``, or ``scalesim`` (SCALE-Sim's fold order, for comparison).
  """

  seed: int = 0
  population: int = 28
  generations: int = 40
  algorithm: str = "nsga3"
  n_partitions: int = 2
  inner_partitions: int = 1
  accuracy: str = "table"
  table: str = ""
  calibration: str = C.DEFAULT_CSV
  features: tuple[str, ...] = C.DEFAULT_FEATURES
  fit_steps: int = proxy.FitConfig.steps
  train_steps: int = 100
  max_area: float | None = None
  max_power: float | None = None
  min_accuracy: float | None = None
  batch: int = 64
  hw_mapping: str = "latency"

  def __post_init__(self) -> None:
    if self.hw_mapping not in fabric.MAPPINGS:
      raise ValueError(f"hw_mapping={self.hw_mapping!r}; choose from {fabric.MAPPINGS}")
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f"algorithm={self.algorithm!r} is not one of {ALGORITHMS}")
    if self.accuracy not in ACCURACY_MODES:
      raise ValueError(f"accuracy={self.accuracy!r} is not one of {ACCURACY_MODES}")
    for field in ("population", "generations", "n_partitions", "fit_steps", "train_steps", "batch"):
      if getattr(self, field) < 1:
        raise ValueError(f"{field}={getattr(self, field)} must be >= 1")
    if self.population < 2:
      raise ValueError(f"population={self.population} must be >= 2")
    if self.inner_partitions < 0:
      raise ValueError(f"inner_partitions={self.inner_partitions} must be >= 0 (0: one layer)")
    n_dirs = operators.num_ref_dirs(self.n_partitions, self.inner_partitions)
    if self.algorithm == "nsga3" and self.population < n_dirs:
      raise ValueError(
        f"population={self.population} is below the {n_dirs} reference directions of "
        f"n_partitions={self.n_partitions}, inner_partitions={self.inner_partitions}; raise "
        "--config.population or lower --config.n_partitions / --config.inner_partitions"
      )
    for field in ("max_area", "max_power"):
      v = getattr(self, field)
      if v is not None and not v > 0:
        raise ValueError(f"{field}={v} must be > 0 (or unset)")
    if self.min_accuracy is not None and not 0.0 < self.min_accuracy < 1.0:
      raise ValueError(f"min_accuracy={self.min_accuracy} must be in (0, 1)")
    unread = {
      field: why
      for field, why in unread_fields(self).items()
      if field in ACCURACY_FIELDS and not is_default(self, field)
    }
    if unread:
      raise ValueError(refusal(self, unread))
    bad = [f for f in self.features if f not in C.FEATURES]
    if bad:
      raise ValueError(f"features {bad} unknown; choose from {C.FEATURES}")

  @property
  def constraints(self) -> tuple[str, ...]:
    return tuple(
      n for n in ("max_area", "max_power", "min_accuracy") if getattr(self, n) is not None
    )


# Fields read only by some accuracy modes: a SearchConfig refuses one set away from its default
# where its mode never reads it. The algorithm's fields (n_partitions, inner_partitions) are
# refused only by the CLI: a library caller may run one config under each algorithm (as
# benchmarks/pareto_bench.py does).
ACCURACY_FIELDS = ("table", "calibration", "features", "fit_steps", "train_steps")
ALGORITHM_FIELDS = ("n_partitions", "inner_partitions")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SearchConfig)}


def is_default(config: SearchConfig, field: str) -> bool:
  """Whether ``config.<field>`` holds the dataclass default (``features`` as a tuple)."""
  value = getattr(config, field)
  return (tuple(value) if field == "features" else value) == _DEFAULTS[field]


def unread_fields(config: SearchConfig) -> dict[str, str]:
  """The fields of ``ACCURACY_FIELDS + ALGORITHM_FIELDS`` that ``config``'s accuracy mode and
  algorithm never read, each with when it is read (whatever its value)."""
  out = {}
  if config.accuracy != "table":
    out["table"] = "is read only with --config.accuracy=table"
  if config.accuracy != "proxy":  # table mode calibrates on the table itself
    out["calibration"] = "is read only with --config.accuracy=proxy"
  if config.accuracy == "train":
    out["features"] = "is read only with --config.accuracy=proxy or table"
  if config.accuracy == "train" or not set(config.features) & set(proxy.FIT_SCORES):
    out["fit_steps"] = (
      "is read only with --config.accuracy=proxy or table and a fit-based feature "
      f"{proxy.FIT_SCORES} in --config.features"
    )
  if config.accuracy != "train":
    out["train_steps"] = "is read only with --config.accuracy=train"
  if config.algorithm != "nsga3":
    for field in ALGORITHM_FIELDS:
      out[field] = "is read only with --config.algorithm=nsga3 (its reference directions)"
  return out


def refusal(config: SearchConfig, unread: dict[str, str]) -> str:
  """The message refusing the ``unread`` fields of ``config`` (field -> when it is read)."""
  listed = "; ".join(
    f"--config.{field}={getattr(config, field)!r} {why}" for field, why in unread.items()
  )
  return (
    f"{listed} (accuracy={config.accuracy!r}, algorithm={config.algorithm!r}): it would be "
    "ignored; drop it, or choose the mode that reads it"
  )


def get_config() -> ml_collections.ConfigDict:
  """The CLI's config: every :class:`SearchConfig` field with its default.

  Optional fields (the constraints) are typed placeholders, so ``--config.max_area=50`` parses
  as a float and an unset one stays None.
  """
  config = ml_collections.ConfigDict()
  for field in dataclasses.fields(SearchConfig):
    value = field.default
    if value is None:  # max_area, max_power, min_accuracy: float | None
      value = ml_collections.config_dict.placeholder(float)
    setattr(config, field.name, value)
  return config


def search_config(config: ml_collections.ConfigDict) -> SearchConfig:
  """The validated :class:`SearchConfig` of a CLI config (``ValueError`` names the field)."""
  names = {f.name for f in dataclasses.fields(SearchConfig)}
  values = config.to_dict()
  unknown = sorted(set(values) - names)
  if unknown:
    raise ValueError(f"config fields {unknown} are not SearchConfig fields {sorted(names)}")
  values["features"] = split_names(values.get("features", SearchConfig.features))
  return SearchConfig(**values)


def split_names(items: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
  """Names from a tuple, a comma-separated string, or a tuple of them: ``--config.features=a,b``
  reaches the config as ``("a,b",)`` (ml_collections reads a tuple from a Python literal)."""
  items = (items,) if isinstance(items, str) else tuple(items)
  return tuple(name.strip() for item in items for name in item.split(",") if name.strip())
