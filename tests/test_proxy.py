"""Data-free scores against independent references (closed forms, numpy least squares)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nf_jax.kernels.reference import stage_dense_matrix

from nf_jax import proxy
from nf_jax import topology as T

EXACT = proxy.FitConfig(fit_n=None, targets=2, steps=300, learning_rate=0.05)


def numpy_masks(t: T.Topology) -> list[np.ndarray]:
  """Binary ``[n_in_s, n_out_s]`` edge masks built entry by entry (independent of proxy)."""
  out = []
  for table, n_in in zip(t.stages, t.stage_n_in):
    m = np.zeros((n_in, table.shape[0]))
    for j in range(table.shape[0]):
      for r in range(table.shape[1]):
        m[table[j, r], j] = 1.0
    out.append(m)
  return out


def als_residual(t: T.Topology, a: np.ndarray, sweeps: int = 120, starts: int = 3) -> float:
  """Best normalised residual of ``a ~ prod_s mask_s * X_s`` by alternating least squares.

  Each sweep solves, stage by stage, the exact linear least-squares problem in that stage's
  masked entries with the others fixed (numpy lstsq), from several random starts.
  """
  masks = numpy_masks(t)
  rng = np.random.default_rng(0)
  best = math.inf
  for _ in range(starts):
    factors = [m * rng.standard_normal(m.shape) for m in masks]
    for _ in range(sweeps):
      for s, m in enumerate(masks):
        left = np.eye(a.shape[0])
        for f in factors[:s]:
          left = left @ f
        right = np.eye(a.shape[1])
        for f in factors[s + 1 :][::-1]:
          right = f @ right
        idx = np.argwhere(m)
        design = np.stack([np.outer(left[:, i], right[j]).ravel() for i, j in idx], axis=1)
        x, *_ = np.linalg.lstsq(design, a.ravel(), rcond=None)
        factors[s] = np.zeros_like(m)
        factors[s][idx[:, 0], idx[:, 1]] = x
    w = np.eye(a.shape[0])
    for f in factors:
      w = w @ f
    best = min(best, float(np.linalg.norm(a - w) / np.linalg.norm(a)))
  return best


@pytest.mark.parametrize("depth", [1, 2])
def test_dense_topology_fits_any_target(depth):
  t = T.make("dense", 8, depth=depth)
  res = proxy.fit_scores([t], EXACT)["fit_residual"][0]
  assert res < 0.01


@pytest.mark.parametrize(
  "t",
  [
    T.make("butterfly", 4, radix=2, depth=1),
    T.make("butterfly", 4, radix=2, depth=1, skip=True),
    T.make("block_diagonal", 6, radix=3, depth=1),
  ],
  ids=str,
)
def test_single_stage_best_fit_is_the_off_mask_energy(t):
  # One masked stage: the best fit copies A on the mask, so the residual is the off-mask
  # norm (an identity skip sits on the mask's diagonal and is absorbed by the free weight).
  mask = numpy_masks(t)[0]
  targets = proxy.random_targets(t.n_in, t.n_out, EXACT.targets, EXACT.seed)
  expected = np.mean([np.linalg.norm(a * (1 - mask)) / np.linalg.norm(a) for a in targets])
  got = proxy.fit_scores([t], EXACT)["fit_residual"][0]
  np.testing.assert_allclose(got, expected, atol=2e-3)


def test_fixed_skip_paths_are_not_charged_to_the_fit():
  # A random table rarely contains lane j's home lane, so its identity skip cannot be cancelled
  # by the free weights. The fit targets A + (the skip paths' own product), so at depth 1 the
  # best fit is still the off-mask energy of A, and deeper the residual stays below the
  # zero-weight value 1 (fitting A alone left residuals of 1.1-1.4 and ranked them last).
  t = T.make("random", 16, fan_in=3, depth=1, seed=0, skip=True)
  assert not all(j in row for j, row in enumerate(t.stages[0]))  # some home lane is absent
  mask = numpy_masks(t)[0]
  targets = proxy.random_targets(t.n_in, t.n_out, EXACT.targets, EXACT.seed)
  expected = np.mean([np.linalg.norm(a * (1 - mask)) / np.linalg.norm(a) for a in targets])
  np.testing.assert_allclose(proxy.fit_scores([t], EXACT)["fit_residual"][0], expected, atol=2e-3)
  deep = T.make("random", 16, fan_in=2, depth=3, seed=1, skip=True)
  assert proxy.fit_scores([deep], proxy.FitConfig(fit_n=None))["fit_residual"][0] < 1.0


def test_butterfly_n4_single_stage_hand_value():
  # Stage 0 of a radix-2 butterfly on 4 lanes pairs lanes (0,1) and (2,3): mask density 1/2.
  t = T.make("butterfly", 4, radix=2, depth=1)
  np.testing.assert_array_equal(
    numpy_masks(t)[0], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
  )


@pytest.mark.parametrize(
  "t",
  [T.make("butterfly", 4, radix=2), T.make("random", 6, fan_in=2, depth=2, seed=3)],
  ids=str,
)
def test_gradient_descent_matches_least_squares(t):
  targets = proxy.random_targets(t.n_in, t.n_out, EXACT.targets, EXACT.seed)
  expected = np.mean([als_residual(t, a.astype(np.float64)) for a in targets])
  got = proxy.fit_scores([t], EXACT)["fit_residual"][0]
  assert abs(got - expected) < 0.01, (got, expected)


def test_connectivity_deficient_topology_scores_worse():
  cfg = proxy.FitConfig(fit_n=None, targets=1, steps=100)
  partial = T.make("butterfly", 16, radix=2, depth=2)  # each output sees 4 of 16 inputs
  full = T.make("butterfly", 16, radix=2, depth=4)
  one_input = T.make("random", 16, fan_in=1, depth=4, seed=0)  # rank-deficient chains
  s = proxy.score_topologies([partial, full, one_input], cfg)
  assert s["connectivity"][0] == pytest.approx(4 / 16)
  assert s["connectivity"][1] == pytest.approx(1.0)
  assert s["fit_residual"][1] < s["fit_residual"][0] < s["fit_residual"][2]
  assert s["fit_score"][1] > s["fit_score"][0]
  # Residual of a single-path-per-output chain: each output copies one input, so at best it
  # matches one entry per column: residual >= sqrt(1 - max column energy share) > 0.9 here.
  assert s["fit_residual"][2] > 0.9


def test_batched_scores_equal_one_at_a_time():
  cfg = proxy.FitConfig(fit_n=None, targets=1, steps=30)
  ts = [T.make("random", 16, fan_in=2, depth=2, seed=s, skip=bool(s % 2)) for s in range(3)]
  ts.append(T.make("butterfly", 16, radix=4))
  batch = proxy.score_topologies(ts, cfg)
  for i, t in enumerate(ts):
    single = proxy.score_topologies([t], cfg)
    for name in proxy.SCORE_NAMES:
      np.testing.assert_allclose(batch[name][i], single[name][0], rtol=2e-4, atol=2e-5)


def test_effective_rank_against_numpy():
  w = np.diag([4.0, 2.0, 1.0, 1.0, 0.0, 0.0]).astype(np.float32)
  p = np.array([4, 2, 1, 1]) / 8
  expected = math.exp(-(p * np.log(p)).sum()) / 6
  np.testing.assert_allclose(float(proxy._effective_rank(w, np.float32(6))), expected, rtol=1e-5)


@pytest.mark.parametrize(
  "t",
  [
    T.make("parallel_butterfly", 8, radix=2, width=3, skip=True),
    T.make("parallel_butterfly", 8, n_in=6, radix=2, width=2, depth=2),
    T.make("clos", 12, radix=3, width=2, skip=True),
    T.make("random", 8, n_in=5, fan_in=2, depth=3, skip=True),
  ],
  ids=str,
)
def test_stage_masks_rebuild_the_dense_product(t):
  # With every weight 1, sum over branches of prod_s (mask + fixed) must equal the product
  # of the foundation's dense stage matrices (edges 1, skips 1 / r_s); a repeated edge (inputs
  # wrapping when n_in < n) is one free weight, so the reference edge matrix is binarised.
  lanes = proxy._lanes(t)
  mask, fixed = proxy.stage_masks(t, lanes)
  assert mask.shape == (proxy.branches(t), t.depth, lanes, lanes)
  expected = np.eye(t.n_in)
  for table, skip, n_in in zip(t.stages, t.skips, t.stage_n_in):
    edges = np.asarray(stage_dense_matrix(jnp.ones(table.shape), table, None, n_in)) > 0
    skips = np.asarray(stage_dense_matrix(jnp.zeros(table.shape), table, skip, n_in))
    expected = expected @ (edges + skips)
  got = np.zeros((lanes, lanes))
  for b in range(mask.shape[0]):
    prod = np.eye(lanes)
    for s in range(t.depth):
      prod = prod @ (mask[b, s] + fixed[b, s])
    got += prod
  np.testing.assert_allclose(got[: t.n_in, : t.n_out], expected, rtol=1e-5)
  assert not got[t.n_in :].any() and not got[:, t.n_out :].any()


def test_parallel_branches_fit_like_the_single_chain():
  # The same topology fitted as one wide chain (P = 1) and as summed branches must agree:
  # both parametrise the same set of matrices. The wide chain is forced via a batch of one
  # built by hand.
  t = T.make("parallel_butterfly", 4, radix=2, width=2)
  cfg = proxy.FitConfig(fit_n=None, targets=1, steps=300)
  target = proxy.random_targets(t.n_in, t.n_out, 1, cfg.seed)
  mask, fixed = np.zeros((1, 1, t.depth, 8, 8), np.float32), np.zeros((1, 1, t.depth, 8, 8))
  for s, (table, skip, n_in) in enumerate(zip(t.stages, t.skips, t.stage_n_in)):
    m, _ = proxy._dense_stage(table, skip, n_in)
    mask[0, 0, s, : m.shape[0], : m.shape[1]] = m
  targets = np.zeros((1, 1, 8, 8), np.float32)
  targets[0, 0, :4, :4] = target[0]
  wide, _ = proxy._fit_batch(
    mask,
    fixed.astype(np.float32),
    proxy._init_stds(t)[None],
    targets,
    np.float32([4]),
    jax.random.PRNGKey(0),
    steps=cfg.steps,
    learning_rate=cfg.learning_rate,
  )
  branched = proxy.fit_scores([t], cfg)["fit_residual"][0]
  assert abs(float(wide[0]) - branched) < 0.02, (float(wide[0]), branched)


@pytest.mark.parametrize(
  "name,params,expected",
  [
    # radix 2 cannot shrink: depth halves with the mixing depth (log2 1024 = 10 -> log2 32 = 5).
    ("butterfly", dict(radix=2, depth=10), ("butterfly", 32, dict(radix=2, depth=5))),
    # 32 ** (log 4 / log 1024) = 2: same mixing depth 5, same depth.
    ("butterfly", dict(radix=4, depth=5), ("butterfly", 32, dict(radix=2, depth=5))),
    # 32 ** (1 / 2) = 5.66 -> 6; the power of 6 nearest 32 is 36; depth kept.
    ("butterfly", dict(radix=32, depth=2), ("butterfly", 36, dict(radix=6, depth=2))),
    ("random", dict(fan_in=4, depth=6, seed=3), ("random", 32, dict(fan_in=2, depth=6, seed=3))),
    # block size 6, width 6 * round(32 / 6) = 30, depth 2 * (log_6 30) / 2 = 1.9 -> 2.
    ("block_diagonal", dict(radix=32, depth=2), ("block_diagonal", 30, dict(radix=6, depth=2))),
    # switch size 32 ** (log 32 / log 1024) = 5.66 -> divisor 4 (near-tie with 8 goes to the
    # smaller), middle switches keep m / c = 1.
    ("clos", dict(radix=32, width=32), ("clos", 32, dict(radix=4, width=4))),
    # 32 ** 0.3 = 2.83 -> 2 (tie with 4), m = round(4 * 2 / 8) = 1; never switch size 1.
    ("clos", dict(radix=8, width=4), ("clos", 32, dict(radix=2, width=1))),
    ("dense", dict(depth=2), ("dense", 32, dict(depth=2))),
  ],
)
def test_proxy_topology_rules(name, params, expected):
  small = proxy.proxy_topology(T.make(name, 1024, **params), 32)
  want_name, want_n, want_params = expected
  assert small == T.make(want_name, want_n, **want_params)


def test_proxy_topology_keeps_small_and_rectangular():
  t = T.make("butterfly", 16, radix=2)
  assert proxy.proxy_topology(t, 32) is t
  rect = proxy.proxy_topology(T.make("random", 1024, n_in=784, fan_in=4, depth=4), 32)
  assert (rect.n_in, rect.n_out) == (round(784 * 32 / 1024), 32)


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match="topologies\\[1\\]"):
    proxy.score_topologies([T.make("dense", 4), "dense"])
  with pytest.raises(ValueError, match="fit_n=1"):
    proxy.FitConfig(fit_n=1)
  with pytest.raises(ValueError, match="steps=0"):
    proxy.FitConfig(steps=0)
