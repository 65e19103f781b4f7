r"""Data-free scoring throughput: candidate topologies scored per minute (goal >= 1000 on 2 cores).

Scores the population ``python -m nf_jax.topo_search`` would score (all candidates of width
``n`` within ``budget``, depths ``[depth_min, depth_max]``), twice in one process:

* cold: first pass, including one XLA compilation per (padded lanes, depth) group;
* warm: second pass over the same population (what a co-design search pays per generation
  after its first).

Prints candidates/minute for each pass, the ratio to the 1000/min goal, and the time split
(structural path statistics vs. fit) with the slowest shape groups.

Command, runtime and result: ``benchmarks/configs/proxy_bench.py`` (the default ``--config``;
overrides ``--config.<field>=``, the pattern of :mod:`nf_jax.cli`)::

  python benchmarks/proxy_bench.py --config=benchmarks/configs/proxy_bench.py:smoke   # CI
"""

from __future__ import annotations

import collections
import os
import time

import ml_collections

from nf_jax import cli, proxy
from nf_jax import topo_search as S

GOAL_PER_MINUTE = 1000  # issue 5's goal


def run(n: int, budget: int, depth_min: int, depth_max: int, config: proxy.FitConfig) -> dict:
  """Times two scoring passes; returns the numbers it prints."""
  candidates = S.enumerate_candidates(n, depth_min, depth_max, max_params=budget)
  if not candidates:
    raise ValueError(f"no candidate of n={n} fits budget={budget}; raise --config.budget")
  groups = collections.Counter(
    (proxy._lanes(p), p.depth) for p in (proxy.proxy_topology(t, config.fit_n) for t in candidates)
  )
  out = {"candidates": len(candidates), "groups": len(groups)}
  for label in ("cold", "warm"):
    start = time.perf_counter()
    proxy.score_topologies(candidates, config, fit=False)
    structural = time.perf_counter() - start
    proxy.score_topologies(candidates, config, structural=False)
    total = time.perf_counter() - start
    out[label] = dict(
      seconds=total,
      structural_s=structural,
      fit_s=total - structural,
      per_minute=60.0 * len(candidates) / total,
    )
  print(
    f"{out['candidates']} candidates (n={n}, budget={budget}, depths {depth_min}-{depth_max}), "
    f"{out['groups']} shape groups (lanes, depth): {dict(sorted(groups.items()))}"
  )
  print(f"fit: fit_n={config.fit_n}, steps={config.steps}, targets={config.targets}")
  for label in ("cold", "warm"):
    r = out[label]
    print(
      f"{label}: {r['seconds']:.1f} s (structural {r['structural_s']:.1f} s, fit "
      f"{r['fit_s']:.1f} s) -> {r['per_minute']:.0f} candidates/min = "
      f"{r['per_minute'] / GOAL_PER_MINUTE:.2f}x the {GOAL_PER_MINUTE}/min goal"
    )
  return out


def main(config: ml_collections.ConfigDict) -> dict:
  """Runs the benchmark as ``config`` (``benchmarks/configs/proxy_bench.py``) says."""
  fit = proxy.FitConfig(fit_n=config.fit_n or None, steps=config.steps, targets=config.targets)
  return run(config.n, config.budget, config.depth_min, config.depth_max, fit)


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(main, os.path.join(here, "configs", "proxy_bench.py"))
