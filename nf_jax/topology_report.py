"""Topology report: path statistics and a path-count heat map per topology.

Usage:
  python -m nf_jax.topology_report --name=butterfly,parallel_butterfly,clos,random --n=1024 \
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


def define_flags() -> None:
  """Defines the CLI flags. Called only when run as a program, so that importing this module
  (tests, other CLIs) never collides with another module's flags of the same name."""
  flags.DEFINE_list(
    "name",
    ["butterfly", "parallel_butterfly", "clos", "random"],
    f"Comma-separated topology families from {topology.FAMILIES}.",
  )
  flags.DEFINE_integer("n", 1024, "Output width n.")
  flags.DEFINE_integer("n_in", None, "Input width (default: n).")
  flags.DEFINE_integer("radix", None, "Radix / switch size / block size.")
  flags.DEFINE_integer("depth", None, "Number of stages (family default if unset).")
  flags.DEFINE_integer("width", None, "Parallel branches / Clos middle switches.")
  flags.DEFINE_integer("fan_in", 4, "Fan-in of the 'random' family.")
  flags.DEFINE_integer("seed", None, "Seed of the random and parallel families.")
  flags.DEFINE_boolean("skip", False, "Add identity skip connections.")
  flags.DEFINE_string("workdir", "runs/topology", "Where metrics and plots go.")


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


def _short_title(t: topology.Topology) -> str:
  params = {k: v for k, v in t.params().items() if k not in ("n", "n_in")}
  shape = f"{t.n_in}->{t.n_out}"
  return f"{t.name} {shape}\n" + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _draw_heatmap(ax: Any, t: topology.Topology, stats: topology.PathStats) -> Any:
  image = ax.imshow(
    stats.heatmap,
    aspect="auto",
    cmap="viridis",
    interpolation="nearest",
    extent=(0, t.n_out, t.n_in, 0),
  )
  ax.set_xlabel("output index")
  ax.set_ylabel("input index")
  ax.set_title(_short_title(t), fontsize=8)
  return image


def save_heatmaps(
  results: Sequence[tuple[topology.Topology, topology.PathStats]], workdir: str
) -> None:
  """One PNG per topology (``<name>.png``) plus ``heatmaps.png`` with all of them side by side.

  Path counts are block-averaged to at most 256 x 256 cells; colour = paths per pair.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  for t, stats in results:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    fig.colorbar(_draw_heatmap(ax, t, stats), ax=ax, label="paths per (input, output) pair")
    fig.tight_layout()
    io_utils.atomic_savefig(fig, os.path.join(workdir, f"{t.name}.png"), dpi=110)
    plt.close(fig)
  fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.0), squeeze=False)
  for ax, (t, stats) in zip(axes[0], results):
    fig.colorbar(_draw_heatmap(ax, t, stats), ax=ax, fraction=0.046)
  fig.suptitle("Path counts per (input, output) pair", fontsize=10)
  fig.tight_layout()
  io_utils.atomic_savefig(fig, os.path.join(workdir, "heatmaps.png"), dpi=110)
  plt.close(fig)


def report(
  names: Sequence[str], n: int, n_in: int | None, values: dict[str, Any], workdir: str
) -> list[dict[str, Any]]:
  """Builds each topology, prints its metrics and writes metrics.json plus heat maps."""
  os.makedirs(workdir, exist_ok=True)
  rows = []
  built: list[tuple[topology.Topology, topology.PathStats]] = []
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
    built.append((t, stats))
    rows.append({"name": name, "spec": t.params(), **stats.as_dict(), "seconds": seconds})
  save_heatmaps(built, workdir)
  io_utils.atomic_write_text(os.path.join(workdir, "metrics.json"), json.dumps(rows, indent=2))
  print(
    f"\nwrote {len(rows)} heat maps, heatmaps.png and metrics.json to {os.path.abspath(workdir)}"
  )
  return rows


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  values = {k: f[k].value for k in ("radix", "depth", "width", "fan_in", "seed", "skip")}
  report(f.name, f.n, f.n_in, values, f.workdir)


def run() -> None:
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
