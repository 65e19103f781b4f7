r"""Data-free scoring throughput: candidate topologies scored per minute (goal >= 1000 on 2 cores).

Scores the population ``python -m nf_jax.topo_search`` would score (all candidates of width
``--n`` within ``--budget``, depths ``[--depth_min, --depth_max]``), twice in one process:

* cold: first pass, including one XLA compilation per (padded lanes, depth) group;
* warm: second pass over the same population (what a co-design search pays per generation
  after its first).

Prints candidates/minute for each pass, the ratio to the 1000/min goal, and the time split
(structural path statistics vs. fit) with the slowest shape groups.

  python benchmarks/proxy_bench.py                  # n=1024, budget 100k (a few minutes)
  python benchmarks/proxy_bench.py --smoke          # seconds: what CI runs
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence

from absl import app, flags

from nf_jax import proxy
from nf_jax import topo_search as S

GOAL_PER_MINUTE = 1000  # issue 5's goal

FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 1024, "Layer width of the candidates.")
flags.DEFINE_integer("budget", 100_000, "Parameter budget of the candidates.")
flags.DEFINE_integer("depth_min", 2, "Smallest depth.")
flags.DEFINE_integer("depth_max", 12, "Largest depth.")
flags.DEFINE_integer("fit_n", proxy.FitConfig.fit_n, "Proxy width of the fit.")
flags.DEFINE_integer("steps", proxy.FitConfig.steps, "Adam steps per fit.")
flags.DEFINE_integer("targets", proxy.FitConfig.targets, "Random targets per fit.")
flags.DEFINE_bool("smoke", False, "Tiny sizes (n=16, few steps): a CI check that it runs.")


def run(n: int, budget: int, depth_min: int, depth_max: int, config: proxy.FitConfig) -> dict:
  """Times two scoring passes; returns the numbers it prints."""
  candidates = S.enumerate_candidates(n, depth_min, depth_max, max_params=budget)
  if not candidates:
    raise ValueError(f"no candidate of n={n} fits budget={budget}; raise --budget")
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


def main(argv: Sequence[str]) -> None:
  del argv
  if FLAGS.smoke:
    run(8, 48, 1, 2, proxy.FitConfig(fit_n=None, steps=5, targets=1))
    return
  config = proxy.FitConfig(fit_n=FLAGS.fit_n or None, steps=FLAGS.steps, targets=FLAGS.targets)
  run(FLAGS.n, FLAGS.budget, FLAGS.depth_min, FLAGS.depth_max, config)


if __name__ == "__main__":
  app.run(main)
