"""Topology report: path statistics and a path-count heat map per topology.

Usage:
  python -m nf_jax.topology --name=butterfly,parallel_butterfly,clos,random --n=1024 \
      --workdir=runs/topology

Prints one row of metrics per topology and writes ``metrics.json`` and ``<name>.png`` (the
path-count heat map, block-averaged to at most 256 x 256) to ``--workdir``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from absl import app, flags

from nf_jax import io_utils, topology

_NAME = flags.DEFINE_list(
  "name",
  ["butterfly", "parallel_butterfly", "clos", "random"],
  f"Comma-separated topology families from {topology.FAMILIES}.",
)
_N = flags.DEFINE_integer("n", 1024, "Output width n.")
_N_IN = flags.DEFINE_integer("n_in", None, "Input width (default: n).")
_RADIX = flags.DEFINE_integer("radix", None, "Radix / switch size / block size.")
_DEPTH = flags.DEFINE_integer("depth", None, "Number of stages (family default if unset).")
_WIDTH = flags.DEFINE_integer("width", None, "Parallel branches / Clos middle switches.")
_FAN_IN = flags.DEFINE_integer("fan_in", 4, "Fan-in of the 'random' family.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of the random and parallel families.")
_SKIP = flags.DEFINE_boolean("skip", False, "Add identity skip connections.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/topology", "Where metrics and plots go.")

# Which flags each family accepts; flags left unset fall back to the family default.
_FAMILY_FLAGS = {
  "butterfly": ("radix", "depth", "skip"),
  "parallel_butterfly": ("radix", "width", "depth", "seed", "skip"),
  "clos": ("radix", "width", "skip"),
  "random": ("fan_in", "depth", "seed", "skip"),
  "block_diagonal": ("radix", "depth", "skip"),
  "dense": ("depth", "skip"),
}


def family_params(name: str, values: dict[str, Any]) -> dict[str, Any]:
  """The subset of ``values`` (None = unset) that family ``name`` accepts."""
  if name not in _FAMILY_FLAGS:
    raise ValueError(f"--name={name!r} is not a topology family; choose from {topology.FAMILIES}")
  return {k: values[k] for k in _FAMILY_FLAGS[name] if values.get(k) is not None}


def save_heatmap(stats: topology.PathStats, title: str, path: str) -> None:
  """Writes the block-averaged path-count heat map as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  image = ax.imshow(stats.heatmap, aspect="auto", cmap="viridis", interpolation="nearest")
  ax.set_xlabel("output (block-averaged)")
  ax.set_ylabel("input (block-averaged)")
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, label="paths per (input, output) pair")
  fig.tight_layout()
  io_utils.atomic_savefig(fig, path)
  plt.close(fig)


def report(
  names: Sequence[str], n: int, n_in: int | None, values: dict[str, Any], workdir: str
) -> list[dict[str, Any]]:
  """Builds each topology, prints its metrics and writes metrics.json plus heat maps."""
  os.makedirs(workdir, exist_ok=True)
  rows = []
  header = (
    f"{'topology':<22}{'depth':>6}{'fan_in':>10}{'params':>11}{'density':>9}"
    f"{'connect':>9}{'paths mean':>12}{'min':>7}{'max':>9}{'cv':>8}{'entropy':>9}{'s':>7}"
  )
  print(header)
  print("-" * len(header))
  for name in names:
    params = family_params(name, values)
    t = topology.make(name, n, n_in=n_in, **params)
    start = time.perf_counter()
    stats = topology.path_stats(t)
    seconds = time.perf_counter() - start
    fan_in = "/".join(str(f) for f in sorted(set(t.fan_in)))
    print(
      f"{name:<22}{t.depth:>6}{fan_in:>10}{t.num_params:>11,}{t.density:>9.4f}"
      f"{stats.connectivity:>9.4f}{stats.mean:>12.4g}{stats.min:>7.3g}{stats.max:>9.4g}"
      f"{stats.cv:>8.3f}{stats.entropy:>9.4f}{seconds:>7.2f}"
    )
    save_heatmap(stats, repr(t), os.path.join(workdir, f"{name}.png"))
    rows.append({"name": name, "spec": t.params(), **stats.as_dict(), "seconds": seconds})
  io_utils.atomic_write_text(os.path.join(workdir, "metrics.json"), json.dumps(rows, indent=2))
  print(f"\nwrote {len(rows)} heat maps and metrics.json to {os.path.abspath(workdir)}")
  return rows


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  values = {
    "radix": _RADIX.value,
    "depth": _DEPTH.value,
    "width": _WIDTH.value,
    "fan_in": _FAN_IN.value,
    "seed": _SEED.value,
    "skip": _SKIP.value,
  }
  report(_NAME.value, _N.value, _N_IN.value, values, _WORKDIR.value)


def run() -> None:
  app.run(main)
