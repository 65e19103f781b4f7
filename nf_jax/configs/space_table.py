"""``python -m nf_jax.space_table``: a space benchmark run's ``results.csv`` -> the search's table.

Command::

  python -m nf_jax.space_table --config.results=runs/space_benchmark \\
      --config.out=nf_jax/tables/space_benchmark.csv [--config.allow_partial=True]

``--config.results`` is the workdir of ``experiments/configs/space_benchmark.py``'s run, and
``--config.out=nf_jax/tables/space_benchmark.csv`` replaces the packaged table. The ``:smoke``
variant (run from the repository root) builds the table of the committed run,
``experiments/results/space_benchmark``, into ``runs/space_table_smoke/``.

Runtime on 2 CPU cores: a few seconds (6 s wall, 3 s CPU for the committed 498 rows, most of it
importing JAX).
Result: one CSV row per topology of the genome's space (``nf_jax.space_table.TABLE_COLUMNS``:
validation and test mean and std over seeds, seeds, diverged seeds, parameters, time, recipe
and the space's content hash) and a printed ``wrote K of 248 topologies``. Without
``allow_partial`` a topology with no rows is an error; with it, such topologies are left out.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Where to read and write; ``arg="smoke"`` is the committed run, into ``runs/``."""
  config = ml_collections.ConfigDict()
  config.results = config_dict.placeholder(str)  # the benchmark run's workdir (results.csv)
  config.out = config_dict.placeholder(str)  # the table CSV to write
  config.allow_partial = False  # write the topologies trained so far
  if arg == "smoke":
    config.results = "experiments/results/space_benchmark"
    config.out = "runs/space_table_smoke/space_benchmark.csv"
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
