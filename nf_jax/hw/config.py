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
    ValueError: a size, bandwidth, clock or node that is not positive, a radix below 2, or an
      unknown dataflow/precision; the message names the field and the value.
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
  arrays: dict[str, np.ndarray] = {}
  for name, value in fields.items():
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr) | (name == "dram_bw_gbs")) or np.any(np.isnan(arr)):
      raise ValueError(f"{name}={value!r} must be finite (only dram_bw_gbs may be inf)")
    if np.any(arr <= 0):
      bad = arr[arr <= 0].ravel()[0].item()
      bad = int(bad) if float(bad).is_integer() else bad
      raise ValueError(f"{name}={bad!r} must be positive (e.g. {name}=32)")
    if name in _INT_FIELDS and np.any(arr != np.round(arr)):
      raise ValueError(f"{name}={value!r} must be an integer")
    arrays[name] = arr
  if np.any(arrays["radix"] < 2):
    raise ValueError(f"radix={radix!r} must be >= 2 (a butterfly switch has at least 2 ports)")
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
