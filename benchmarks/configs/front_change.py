"""``benchmarks/front_change.py``: how the co-design front's hardware genes change with the mapper.

Command::

  python benchmarks/front_change.py --workdir=runs/front_change   # the full run (a new workdir)
  python benchmarks/front_change.py --config=benchmarks/configs/front_change.py:smoke  # CI

Runtime on 2 CPU cores: about 5 minutes for 10 seeds x 2 memory models at the main job's budget
(28 x 40); ``:smoke`` about a minute.
Result: per hardware gene, the share of front designs per choice under ``mapping="scalesim"``
and the mapped default (mean and spread over seeds), the paired per-seed difference of each
numeric gene's mean log2 level with a Wilcoxon signed-rank p-value, the objectives of the same
designs under both models, and ``gene_shares.csv`` + ``front_change.png`` in the workdir
(measured numbers: benchmarks/README_hw.md).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Seeds and the search budget of each run (every other search setting is the main job's)."""
  config = ml_collections.ConfigDict()
  config.seeds = 10  # searches per memory model, seeds 0 .. seeds - 1 (paired by seed)
  config.population = 28  # the main job's default
  config.generations = 40  # the main job's default
  config.batch = 64  # inference batch of the throughput objective (the main job's default)
  if arg == "smoke":
    config.seeds, config.generations = 2, 2
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
