"""Hardware configurations as pytrees of arrays, so that thousands of them vmap at once.

A :class:`HwConfig` is a ``NamedTuple`` (hence a JAX pytree) whose every field is an array with the
same leading shape ``[n_configs]`` (or scalars for one config). Categorical fields are int codes:
``dataflow`` indexes :data:`DATAFLOWS` and ``precision`` indexes :data:`PRECISIONS`.

Build configs with :func:`make_config` (validates, broadcasts scalars and lists to one batch) or
:func:`grid` (cartesian product). Slicing one config out of a batch: :func:`take`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

DATAFLOWS = ("os", "ws", "is")
PRECISIONS = ("int8", "fp16", "bf16", "fp32")
# Bytes per word for each precision, in PRECISIONS order.
PRECISION_BYTES = (1, 2, 2, 4)
PRECISION_BITS = (8, 16, 16, 32)


class HwConfig(NamedTuple):
  """A batch of accelerator configurations; every field has shape ``[n]`` (or ``[]``).

  Attributes:
    rows: systolic array rows; for cascade workloads, PEs per stage column. int32.
    cols: systolic array columns; for cascade workloads, the number of PE columns. int32.
    dataflow: index into ``DATAFLOWS`` (0 = os, 1 = ws, 2 = is). int32.
    precision: index into ``PRECISIONS`` (0 = int8, 1 = fp16, 2 = bf16, 3 = fp32). int32.
    ifmap_sram_kb: input (ifmap) SRAM capacity in KiB. float32.
    filter_sram_kb: weight (filter) SRAM capacity in KiB. float32.
    ofmap_sram_kb: output (ofmap) SRAM capacity in KiB. float32.
    dram_bw_gbs: off-chip DRAM bandwidth in GB/s (inf = compute-bound, SCALE-Sim CALC). float32.
    clock_ghz: clock frequency in GHz. float32.
    radix: radix of the butterfly interconnect between PE columns. int32.
    tech_nm: technology node in nm (energies and areas are scaled from 45 nm). float32.
  """

  rows: Any
  cols: Any
  dataflow: Any
  precision: Any
  ifmap_sram_kb: Any
  filter_sram_kb: Any
  ofmap_sram_kb: Any
  dram_bw_gbs: Any
  clock_ghz: Any
  radix: Any
  tech_nm: Any


_INT_FIELDS = ("rows", "cols", "dataflow", "precision", "radix")
# Largest accepted value of each numeric field: beyond these the float32/int32 arithmetic of the
# simulator overflows or loses all precision, and no real accelerator comes close.
LIMITS = dict(
  rows=65536,
  cols=65536,
  ifmap_sram_kb=2.0**30,  # 1 TiB
  filter_sram_kb=2.0**30,
  ofmap_sram_kb=2.0**30,
  dram_bw_gbs=1e9,  # or inf
  clock_ghz=1000.0,
  radix=65536,
  tech_nm=1000.0,
)
_EXAMPLE = dict(
  rows=32,
  cols=32,
  ifmap_sram_kb=256,
  filter_sram_kb=256,
  ofmap_sram_kb=128,
  dram_bw_gbs=16,
  clock_ghz=1,
  radix=2,
  tech_nm=45,
)


def _code(field: str, value: Any, names: Sequence[str]) -> np.ndarray:
  """Maps names (or int codes) to int codes, raising a ValueError naming the bad value."""
  vals = np.atleast_1d(np.asarray(value, dtype=object))
  out = np.empty(vals.shape, np.int32)
  for i, v in enumerate(vals.ravel()):
    if isinstance(v, str):
      if v.lower() not in names:
        raise ValueError(f"{field}={v!r} is unknown; use one of {names}")
      out.ravel()[i] = names.index(v.lower())
    elif isinstance(v, int | np.integer) and 0 <= int(v) < len(names):
      out.ravel()[i] = int(v)
    else:
      raise ValueError(f"{field}={v!r} is unknown; use one of {names} (or their index)")
  return out if np.ndim(value) else out[0]


def _check_numeric(name: str, value: Any) -> np.ndarray:
  """Float64 array of a numeric field, or a ValueError naming the field, the value and a fix."""
  try:
    arr = np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{name}={value!r} must be a number (e.g. {name}={_EXAMPLE[name]})") from None
  flat = arr.ravel()
  bad = np.isnan(flat) | (np.isinf(flat) & (name != "dram_bw_gbs"))
  if bad.any():
    raise ValueError(f"{name}={flat[bad][0].item()!r} must be finite (only dram_bw_gbs may be inf)")
  if np.any(flat <= 0):
    v = flat[flat <= 0][0].item()
    v = int(v) if float(v).is_integer() else v
    raise ValueError(f"{name}={v!r} must be positive (e.g. {name}={_EXAMPLE[name]})")
  over = np.isfinite(flat) & (flat > LIMITS[name])
  if over.any():
    raise ValueError(
      f"{name}={flat[over][0].item():g} exceeds the supported maximum {LIMITS[name]:g} "
      "(the simulator's int32/float32 counts would overflow); use a realistic value, "
      f"e.g. {name}={_EXAMPLE[name]}"
    )
  if name in _INT_FIELDS and np.any(flat != np.round(flat)):
    v = flat[flat != np.round(flat)][0].item()
    raise ValueError(f"{name}={v!r} must be an integer (e.g. {name}={round(v)})")
  if name == "radix" and np.any(flat < 2):
    raise ValueError(f"radix={value!r} must be >= 2 (a butterfly switch has at least 2 ports)")
  return arr


def make_config(
  rows: Any = 32,
  cols: Any = 32,
  dataflow: Any = "os",
  precision: Any = "int8",
  ifmap_sram_kb: Any = 256.0,
  filter_sram_kb: Any = 256.0,
  ofmap_sram_kb: Any = 128.0,
  dram_bw_gbs: Any = float("inf"),
  clock_ghz: Any = 1.0,
  radix: Any = 2,
  tech_nm: Any = 45.0,
) -> HwConfig:
  """Builds a validated :class:`HwConfig`; scalars and equal-length lists broadcast together.

  Defaults follow SCALE-Sim's sample configs (32x32 os array, 256/256/128 KiB SRAM) with an
  unlimited DRAM bandwidth (compute-bound mode).

  Raises:
    ValueError: a size, bandwidth, clock or node that is not positive, not finite (only
      ``dram_bw_gbs`` may be inf), above :data:`LIMITS`, or not an integer where one is needed; a
      radix below 2; an unknown dataflow/precision. The message names the field and the value.
  """
  fields = dict(
    rows=rows,
    cols=cols,
    ifmap_sram_kb=ifmap_sram_kb,
    filter_sram_kb=filter_sram_kb,
    ofmap_sram_kb=ofmap_sram_kb,
    dram_bw_gbs=dram_bw_gbs,
    clock_ghz=clock_ghz,
    radix=radix,
    tech_nm=tech_nm,
  )
  arrays: dict[str, np.ndarray] = {name: _check_numeric(name, v) for name, v in fields.items()}
  arrays["dataflow"] = _code("dataflow", dataflow, DATAFLOWS)
  arrays["precision"] = _code("precision", precision, PRECISIONS)
  shape = np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
  if len(shape) > 1:
    raise ValueError(f"config fields must be scalars or 1-D; got broadcast shape {shape}")
  out = {}
  for name in HwConfig._fields:
    dtype = np.int32 if name in _INT_FIELDS else np.float32
    out[name] = np.broadcast_to(arrays[name], shape).astype(dtype)
  return HwConfig(**out)


def validate(cfg: HwConfig) -> None:
  """Checks a (possibly hand-built) :class:`HwConfig` the way :func:`make_config` does.

  Raises:
    ValueError: a field out of range (the message names it, the config index and a fix), a
      categorical code outside its table, or fields of different lengths.
  """
  if not isinstance(cfg, HwConfig):
    raise ValueError(f"configs must be an HwConfig (build one with make_config); got {type(cfg)}")
  sizes = {name: np.size(v) for name, v in cfg._asdict().items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"HwConfig fields must all have the same length; got {sizes}")
  for name, v in cfg._asdict().items():
    arr = np.asarray(v)
    if isinstance(v, jax_array_types()):  # traced values cannot be checked here
      return
    if name in ("dataflow", "precision"):
      names = DATAFLOWS if name == "dataflow" else PRECISIONS
      if arr.dtype.kind not in "iu":
        raise ValueError(
          f"HwConfig.{name} has dtype {arr.dtype}; it must hold int codes into {names} "
          "(build configs with make_config, which accepts names)"
        )
      bad = (arr < 0) | (arr >= len(names))
      if np.any(bad):
        raise ValueError(f"HwConfig.{name}={arr[bad].ravel()[0]} is not an index into {names}")
      continue
    try:
      _check_numeric(name, arr)
    except ValueError as e:
      raise ValueError(f"HwConfig.{e} (build configs with make_config)") from None


def jax_array_types() -> tuple[type, ...]:
  """Types that are JAX tracers (skipped by :func:`validate`, which needs concrete values)."""
  import jax  # noqa: PLC0415 (config stays importable without initialising JAX)

  return (jax.core.Tracer,)


def grid(**axes: Sequence[Any]) -> HwConfig:
  """The cartesian product of per-field value lists, as one batched config.

  Example: ``grid(rows=[8, 16], cols=[8, 16], dataflow=["os", "ws"])`` has 8 configs; fields not
  named keep :func:`make_config` defaults.
  """
  names = list(axes)
  combos = list(itertools.product(*(list(axes[n]) for n in names)))
  cols = {n: [c[i] for c in combos] for i, n in enumerate(names)}
  return make_config(**cols)


def num_configs(cfg: HwConfig) -> int:
  """Number of configs in a batch (1 for an unbatched config)."""
  return int(np.size(cfg.rows))


def take(cfg: HwConfig, i: int) -> HwConfig:
  """Config ``i`` of a batch, with scalar fields."""
  return HwConfig(*(np.asarray(f)[i] for f in cfg))


def describe(cfg: HwConfig, i: int = 0) -> dict[str, Any]:
  """A JSON-friendly dict of config ``i`` with names instead of codes."""
  one = take(cfg, i) if np.ndim(cfg.rows) else cfg
  d = {k: np.asarray(v).item() for k, v in one._asdict().items()}
  d["dataflow"] = DATAFLOWS[d["dataflow"]]
  d["precision"] = PRECISIONS[d["precision"]]
  return d
