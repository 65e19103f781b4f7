"""``benchmarks/proxy_bench.py``: data-free scoring throughput (goal >= 1000 candidates/min).

Command::

  python benchmarks/proxy_bench.py                                          # n=1024, 100k
  python benchmarks/proxy_bench.py --config=benchmarks/configs/proxy_bench.py:smoke   # CI

Runtime on 2 CPU cores: a few minutes (two passes over the 310 candidates of n=1024 within
100k weights, depths 2-12); ``:smoke`` (n=8, 5 fit steps) takes seconds.
Result: candidates/min of a cold and a warm pass and their ratio to the goal; the measured
numbers are in benchmarks/README.md, "Proxy throughput".
"""

from __future__ import annotations

import ml_collections

from nf_jax import proxy


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The scored population (as ``python -m nf_jax.topo_search`` enumerates it) and the fit."""
  fit = proxy.FitConfig()
  config = ml_collections.ConfigDict()
  config.n = 1024  # layer width of the candidates
  config.budget = 100_000  # parameter budget of the candidates
  config.depth_min = 2
  config.depth_max = 12
  config.fit_n = fit.fit_n  # proxy width of the fit (0: each topology's own width)
  config.steps = fit.steps  # Adam steps per fit
  config.targets = fit.targets  # random targets per fit
  if arg == "smoke":
    config.n, config.budget, config.depth_min, config.depth_max = 8, 48, 1, 2
    config.fit_n, config.steps, config.targets = 0, 5, 1
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
