"""Topology report: path statistics and a path-count heat map per topology.

Command, runtime and result: :mod:`nf_jax.configs.topology_report` (the default ``--config``;
the pattern of every CLI is :mod:`nf_jax.cli`)::

  python -m nf_jax.topology_report --workdir=runs/topology --config.families=butterfly,random

Prints one row of metrics per topology and writes ``metrics.json`` and ``<name>.png`` (the
path-count heat map, block-averaged to at most 256 x 256) to ``--workdir``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import ml_collections

from nf_jax import cli, io_utils
from nf_jax import topology as T

# The config fields that are family parameters (nf_jax.configs.topology_report).
PARAM_FIELDS = ("radix", "depth", "width", "fan_in", "seed", "skip")


def family_params(name: str, values: dict[str, Any]) -> dict[str, Any]:
  """The subset of ``values`` (None = unset) that family ``name`` accepts (its registry
  record's ``params``)."""
  if name not in T.families():
    raise ValueError(
      f"--config.families: {name!r} is not a topology family; choose from {T.families()}"
    )
  accepted = T.family(name).params
  return {k: v for k, v in values.items() if k in accepted and v is not None}


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses settings :func:`run` cannot use, naming the field and the fix (before any work).

  ``overrides``: the fields set on the command line; a family parameter that none of the
  chosen families accepts is refused (it would be ignored).
  """
  names = cli.names(config.families)
  cli.check_choices("families", names, T.families())
  accepted = set().union(*(T.family(name).params for name in names))
  ignored = sorted((overrides & set(PARAM_FIELDS)) - accepted)
  if ignored:
    raise ValueError(
      f"--config.{ignored[0]} is a parameter of none of the families {list(names)}; drop it or "
      "add a family that takes it"
    )


def _short_title(t: T.Topology) -> str:
  params = {k: v for k, v in t.params().items() if k not in ("n", "n_in")}
  shape = f"{t.n_in}->{t.n_out}"
  return f"{t.name} {shape}\n" + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _draw_heatmap(ax: Any, t: T.Topology, stats: T.PathStats) -> Any:
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


def save_heatmaps(results: Sequence[tuple[T.Topology, T.PathStats]], workdir: str) -> None:
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
  built: list[tuple[T.Topology, T.PathStats]] = []
  header = (
    f"{'topology':<22}{'depth':>6}{'fan_in':>10}{'params':>11}{'density':>9}"
    f"{'connect':>9}{'paths mean':>12}{'min':>7}{'max':>9}{'cv':>8}{'entropy':>9}{'s':>7}"
  )
  print(header)
  print("-" * len(header))
  for name in names:
    params = family_params(name, values)
    t = T.make(name, n, n_in=n_in, **params)
    start = time.perf_counter()
    stats = T.path_stats(t)
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


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """The report as ``config`` says (:mod:`nf_jax.configs.topology_report`), into ``workdir``."""
  values = {k: config[k] for k in PARAM_FIELDS}
  return report(cli.names(config.families), config.n, config.n_in, values, workdir)


def main() -> None:
  """The command line (``python -m nf_jax.topology_report``, ``nf-jax-topology-report``)."""
  cli.run(run, cli.config_file("topology_report"), validate=validate, workdir="runs/topology")


if __name__ == "__main__":
  main()
