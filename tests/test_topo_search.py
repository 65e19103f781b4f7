"""Topology search: enumeration, budget filter, ranking, bad input and the CLI end to end."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import proxy
from nf_jax import topo_search as S
from nf_jax import topology as T

TINY = proxy.FitConfig(fit_n=None, targets=1, steps=20)


def test_enumeration_covers_families_and_depth_range():
  cands = S.enumerate_candidates(16, 2, 4)
  assert {t.name for t in cands} == set(T.FAMILIES)
  for t in cands:
    assert 2 <= t.depth <= 4, t
  assert len(set(cands)) == len(cands)
  # Hand count: butterfly radices 2, 4, 16 (16 = 2^4 = 4^2 = 16^1) x depths 2..4 x skip.
  assert sum(t.name == "butterfly" for t in cands) == 3 * 3 * 2


@pytest.mark.parametrize("n_in", [None, 12])
def test_spec_param_count_matches_built_tables(n_in):
  for name, params in S.candidate_specs(16, 1, 4, n_in=n_in):
    try:
      t = T.make(name, 16, n_in=n_in, **params)
    except ValueError:
      continue
    assert S.spec_num_params(name, 16, n_in or 16, params) == t.num_params, t


def test_search_ranks_within_budget_and_rows_rebuild():
  budget = 200
  rows = S.search(16, budget, 1, 3, config=TINY, families=("butterfly", "random"), fan_ins=(2,))
  scores = [r[proxy.PRIMARY_SCORE] for r in rows]
  assert scores == sorted(scores, reverse=True)
  assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
  assert all(r["num_params"] <= budget for r in rows)
  # Hand count over depths 1..3: butterfly radix 2 has 32 weights per stage and radix 4 has
  # 64 (all fit), radix 16 has 256 (none); random fan-in 2 has 32 per stage; each x skip.
  by_name = {name: sum(r["name"] == name for r in rows) for name in ("butterfly", "random")}
  assert by_name == {"butterfly": (3 + 3) * 2, "random": 3 * 2}
  for r in rows:
    params = {k: r[k] for k in ("depth", "radix", "width", "fan_in", "skip", "seed") if r[k] != ""}
    t = T.make(r["name"], r["n"], n_in=r["n_in"], **params)
    assert t.num_params == r["num_params"]


def test_rank_order_breaks_ties_by_fewer_params():
  order = S.rank_order(np.array([0.5, 0.9, 0.9, 0.1]), np.array([1, 30, 20, 5]), True)
  assert order.tolist() == [2, 1, 0, 3]
  order = S.rank_order(np.array([0.5, 0.9, 0.1]), np.array([1, 1, 1]), False)
  assert order.tolist() == [2, 0, 1]


def test_impossible_budget_states_smallest_feasible_budget():
  # Smallest at depth >= 2 on 16 lanes: two stages of fan-in 2, 2 * 16 * 2 = 64 weights.
  with pytest.raises(ValueError, match="smallest feasible budget 64 .*budget >= 64"):
    S.search(16, 10, 2, 4, config=TINY)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    # Smallest feasible layer: 2 lanes x fan-in 2 at depth 1 = 4 weights.
    (dict(n=1, depth_min=1, depth_max=2), "n=1 must be .* budget >= 4"),
    (dict(n=16, depth_min=3, depth_max=2), "depth range"),
    (dict(n=16, depth_min=1, depth_max=2, families=("mesh",)), "mesh"),
  ],
)
def test_bad_width_or_range_is_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    S.enumerate_candidates(**kwargs)


def test_cli_writes_ranked_csv_best_and_plot(tmp_path):
  workdir = tmp_path / "search"
  cmd = [
    sys.executable,
    "-m",
    "nf_jax.topo_search",
    f"--workdir={workdir}",
    "--config.n=16",
    "--config.budget=100",
    "--config.depth_min=2",
    "--config.depth_max=2",
    "--config.families=butterfly,block_diagonal",
    "--config.fit_n=0",
    "--config.fit_steps=10",
    "--config.fit_targets=1",
  ]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(workdir / "candidates.csv") as f:
    rows = list(csv.DictReader(f))
  best = json.loads((workdir / "best.json").read_text())
  assert rows and int(rows[0]["rank"]) == 1
  assert best["name"] == rows[0]["name"] and best["num_params"] == int(rows[0]["num_params"])
  assert all(int(r["num_params"]) <= 100 for r in rows)
  png = workdir / "score_vs_params.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not [p for p in os.listdir(workdir) if p.startswith(".tmp-")]
