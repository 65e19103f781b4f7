"""``python -m nf_jax.topo_search``: data-free topology search within a parameter budget.

Command::

  python -m nf_jax.topo_search --workdir=runs/topo_search --config.n=1024 \\
      --config.budget=100000 --config.depth_min=2 --config.depth_max=12

Runtime on 2 CPU cores: about 700 candidates for n=1024, a minute or two (the proxy's cost:
benchmarks/README.md, "Proxy throughput"); ``:smoke`` (n=16, 10 fit steps) takes seconds.
Result: ``candidates.csv`` (every candidate within budget, ranked by ``score``, best first; ties
go to fewer parameters), ``best.json`` (the first row) and ``score_vs_params.png`` in
``--workdir``; the command prints the count and the chosen topology.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from nf_jax import proxy
from nf_jax import topology as T


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The search's settings; ``arg="smoke"`` shrinks it to a seconds-long run."""
  fit = proxy.FitConfig()
  config = ml_collections.ConfigDict()
  config.n = 1024  # layer width (output lanes)
  config.n_in = config_dict.placeholder(int)  # input width (None: n)
  config.budget = 100_000  # largest number of trainable weights
  config.depth_min = 1  # stages
  config.depth_max = 12
  config.families = tuple(T.FAMILIES)  # enumerated families
  grid = T.SearchGrid()  # the candidate grid's defaults
  config.parallel_widths = grid.parallel_widths  # parallel_butterfly widths
  config.fan_ins = grid.fan_ins  # random-family fan-ins
  config.random_seeds = grid.random_seeds  # seeds per random-family spec
  config.score = proxy.PRIMARY_SCORE  # ranking score, one of proxy.SCORE_NAMES
  config.fit_n = fit.fit_n  # proxy width of the fit (0: each topology's own width)
  config.fit_steps = fit.steps  # Adam steps per fit
  config.fit_targets = fit.targets  # random targets per fit
  config.seed = 0  # seed of targets and initial weights
  if arg == "smoke":
    config.n, config.budget, config.depth_min, config.depth_max = 16, 100, 2, 2
    config.families = ("butterfly", "block_diagonal")
    config.fit_n, config.fit_steps = 0, 10
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
