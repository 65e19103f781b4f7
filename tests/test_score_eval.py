"""The score-judging metrics (nf_jax.score_eval) against brute force on hand-made tables, and the
zero-cost scores (nf_jax.zero_cost) against independent dense computations."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nf_jax.kernels import reference

from nf_jax import score_eval
from nf_jax import topology as T
from nf_jax import zero_cost as Z
from nf_jax.layers import stage_init_variances

# A hand-made table: 3 iso-parameter groups (100-104, 200-209, 400) and one loner.
PARAMS = np.array([100, 102, 104, 200, 205, 209, 400, 1000], np.float64)
ACC = np.array([0.70, 0.72, 0.71, 0.80, 0.78, 0.82, 0.85, 0.90])
SCORE = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 7.0, 8.0])


def test_iso_groups_by_hand():
  groups = [sorted(g.tolist()) for g in score_eval.iso_groups(PARAMS)]
  assert groups == [[0, 1, 2], [3, 4, 5], [6], [7]]
  # 105 is within 5% of 100 but 106 is not: the chain starts a new group there.
  assert [len(g) for g in score_eval.iso_groups(np.array([100.0, 105.0, 106.0]))] == [2, 1]


def _brute_spearman(x, y):
  """Pearson correlation of ranks, ranks computed by counting (no ties in these tables)."""
  rx = np.array([np.sum(x < v) for v in x], float)
  ry = np.array([np.sum(y < v) for v in y], float)
  return float(np.corrcoef(rx, ry)[0, 1])


def _brute_kendall(x, y):
  pairs = list(itertools.combinations(range(len(x)), 2))
  s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs)
  return s / len(pairs)


def test_overall_and_within_group_metrics_match_brute_force():
  assert score_eval.spearman(SCORE, ACC) == pytest.approx(_brute_spearman(SCORE, ACC))
  assert score_eval.kendall(SCORE, ACC) == pytest.approx(_brute_kendall(SCORE, ACC))
  groups = score_eval.iso_groups(PARAMS)
  mean, count = score_eval.iso_spearman(SCORE, ACC, groups)
  # Groups of >= 3: both rank perfectly (score 1,3,2 vs acc .70,.72,.71; 5,4,6 vs .80,.78,.82).
  assert count == 2 and mean == pytest.approx(1.0)
  # Regret by hand: the score's pick is the best in every group (0); a random pick loses the
  # mean gap: group 1: 0.72 - 0.71 = 0.01; group 2: 0.82 - 0.80 = 0.02.
  regret, chance, n = score_eval.iso_regret(SCORE, ACC, groups)
  assert n == 2 and regret == pytest.approx(0.0) and chance == pytest.approx(0.015)
  # A reversed score picks the worst: regrets 0.02 and 0.04.
  regret, _, _ = score_eval.iso_regret(-SCORE, ACC, groups)
  assert regret == pytest.approx(0.03)


def test_budget_regret_by_hand_and_ties_get_no_credit():
  score = np.array([0.0, 0.0, 1.0])
  acc = np.array([0.5, 0.9, 0.6])
  params = np.array([10.0, 10.0, 20.0])
  budgets, ours, chance = score_eval.budget_regret(score, acc, params)
  np.testing.assert_array_equal(budgets, [10, 20])
  # Budget 10: a tie between 0.5 and 0.9 is resolved to the worse (regret 0.4); budget 20:
  # the score picks 0.6 while 0.9 was available (regret 0.3).
  np.testing.assert_allclose(ours, [0.4, 0.3])
  np.testing.assert_allclose(chance, [0.9 - 0.7, 0.9 - 2.0 / 3.0])


def test_partial_spearman_removes_what_params_explain():
  rng = np.random.default_rng(0)
  params = rng.uniform(1, 100, 200)
  noise = rng.normal(size=200)
  acc = np.log(params) + 0.1 * rng.normal(size=200)
  # A score that only knows the parameter count has nothing left once params are removed
  # (its residual ranks are all zero: undefined, reported as NaN, never as a correlation)...
  assert np.isnan(score_eval.partial_spearman(np.log(params), acc, params))
  assert np.isnan(score_eval.partial_spearman(params**2, acc, params))
  # ...while one that sees the accuracy's own residual does.
  assert score_eval.partial_spearman(acc - np.log(params), acc, params) > 0.5
  # Brute force: Pearson correlation of the residuals of ranks regressed on the params' ranks.
  from scipy import stats

  r = [stats.rankdata(v) for v in (noise, acc, params)]
  res = [v - np.polyval(np.polyfit(r[2], v, 1), r[2]) for v in r[:2]]
  assert score_eval.partial_spearman(noise, acc, params) == pytest.approx(np.corrcoef(*res)[0, 1])


def test_bootstrap_interval_contains_the_estimate_and_evaluate_reports_all():
  rng = np.random.default_rng(1)
  params = np.repeat([100.0, 200.0, 300.0, 400.0, 500.0], 6) * rng.uniform(1, 1.04, 30)
  acc = rng.uniform(0.7, 0.9, 30)
  score = acc + rng.normal(scale=0.02, size=30)
  out = score_eval.evaluate(score, acc, params, samples=200)
  for name in ("spearman", "kendall", "partial_spearman", "iso_spearman", "iso_regret"):
    assert out[f"{name}_lo"] <= out[name] <= out[f"{name}_hi"], name
  assert out["iso_groups"] == 5 and out["iso_spearman"] > 0.5
  assert out["iso_regret"] < out["iso_random_regret"]


@pytest.mark.parametrize(
  "t",
  [
    T.make("butterfly", 16, radix=2, depth=3, skip=True),
    T.make("random", 12, n_in=20, fan_in=3, depth=2, skip=False, seed=1),
    T.make("clos", 16, radix=4, width=2, skip=False),
  ],
  ids=str,
)
def test_synflow_matches_autodiff_on_the_dense_reference(t):
  stds = np.sqrt(stage_init_variances(t, "depth_aware"))
  weights = [jnp.full(table.shape, s, jnp.float32) for table, s in zip(t.stages, stds)]

  def flow(ws):  # R = 1^T M 1 for an all-ones input, M the dense product
    return jnp.sum(reference.cascade_dense_matrix(ws, t))

  grads = jax.grad(flow)(weights)
  expected = sum(float(jnp.sum(w * g)) for w, g in zip(weights, grads))
  assert Z.log_synflow(t) == pytest.approx(np.log10(expected), rel=1e-5)


def test_spectral_gap_and_naswot_by_independent_computation():
  t = T.make("butterfly", 16, radix=2, depth=4, skip=False)
  s = np.linalg.svd(T.path_counts(t).astype(float), compute_uv=False)
  assert Z.spectral_gap(t) == pytest.approx(1 - s[1] / s[0])
  # A full-depth butterfly connects every pair by exactly one path: P is all ones, rank 1.
  assert Z.spectral_gap(t) == pytest.approx(1.0)
  shallow = T.make("block_diagonal", 16, radix=4, depth=1, skip=False)
  assert Z.spectral_gap(shallow) == pytest.approx(0.0, abs=1e-9)  # 4 equal disjoint blocks
  # NASWOT, brute force: codes from the dense reference, K by counting agreements (128 units,
  # so K over the 64 inputs is full rank; with fewer units than inputs it is singular, -inf).
  t = T.make("butterfly", 128, radix=2, depth=7, skip=True)
  rng = np.random.default_rng(Z.NASWOT_SEED)
  x = rng.standard_normal((Z.NASWOT_BATCH, t.n_in))
  stds = np.sqrt(stage_init_variances(t, "depth_aware"))
  ws = [rng.standard_normal(table.shape) * sd for table, sd in zip(t.stages, stds)]
  m = np.asarray(reference.cascade_dense_matrix([jnp.asarray(w) for w in ws], t), np.float64)
  codes = (x @ m > 0).astype(int)
  k = np.array([[np.sum(a == b) for b in codes] for a in codes], float)
  sign, logdet = np.linalg.slogdet(k)
  assert sign > 0 and Z.naswot(t) == pytest.approx(logdet, rel=1e-6)
