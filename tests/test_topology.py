"""Topology tables and path statistics against hand-computed counts and brute force."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nf_jax import topology as T


def brute_force_paths(t: T.Topology) -> np.ndarray:
  """Independent oracle: product of 0/1 (edge-count) stage matrices, built edge by edge."""
  total = np.eye(t.n_in, dtype=np.int64)
  for table, skip, n_in in zip(t.stages, t.skips, t.stage_n_in):
    m = np.zeros((n_in, table.shape[0]), dtype=np.int64)
    for j, row in enumerate(table):
      for i in row:
        m[i, j] += 1
      if skip is not None:
        for i in skip[j]:
          m[i, j] += 1
    total = total @ m
  return total


@pytest.mark.parametrize("radix,n", [(2, 64), (2, 1024), (4, 256), (16, 256), (3, 81)])
def test_butterfly_has_exactly_one_path_per_pair(radix, n):
  t = T.make("butterfly", n, radix=radix)
  assert t.depth == round(math.log(n, radix))
  assert t.fan_in == (radix,) * t.depth
  assert t.num_params == n * radix * t.depth
  counts = T.path_counts(t)
  assert counts.shape == (n, n) and counts.dtype == np.int64
  np.testing.assert_array_equal(counts, 1)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("radix,n", [(2, 64), (4, 64)])
def test_parallel_butterfly_has_width_paths_per_pair(width, radix, n):
  t = T.make("parallel_butterfly", n, radix=radix, width=width)
  np.testing.assert_array_equal(T.path_counts(t), width)
  assert t.num_params == width * n * radix * t.depth


def test_parallel_branches_use_distinct_permutations():
  t = T.make("parallel_butterfly", 64, width=4, depth=2)
  first = t.stages[0].reshape(4, 64, 2)
  for a in range(4):
    for b in range(a + 1, 4):
      assert not np.array_equal(first[a], first[b])


def test_clos_has_middle_switch_count_paths():
  t = T.make("clos", 64, radix=8, width=5)
  assert t.depth == 3
  assert t.fan_in == (8, 8, 5)
  np.testing.assert_array_equal(T.path_counts(t), 5)


def test_block_diagonal_two_stages_is_monarch_fully_connected_once():
  t = T.make("block_diagonal", 64, radix=8)
  assert t.depth == 2
  np.testing.assert_array_equal(T.path_counts(t), 1)
  # Stage 0 is block-diagonal: row j reads its own block only.
  blocks = t.stages[0] // 8
  np.testing.assert_array_equal(blocks, np.repeat(np.arange(64) // 8, 8).reshape(64, 8))


def test_dense_is_complete_bipartite():
  t = T.make("dense", 12, n_in=7)
  assert t.stages[0].shape == (12, 7)
  np.testing.assert_array_equal(T.path_counts(t), 1)


def test_random_is_deterministic_per_seed_with_fixed_fan_in():
  a = T.make("random", 256, fan_in=4, depth=5, seed=3)
  b = T.make("random", 256, fan_in=4, depth=5, seed=3)
  # Bypass the cache: a rebuild from scratch gives the same tables.
  c = T._build_cached.__wrapped__(
    "random", 256, 256, tuple(sorted(a.params().items() - {("n", 256), ("n_in", 256)}))
  )
  d = T.make("random", 256, fan_in=4, depth=5, seed=4)
  assert a == b and hash(a) == hash(b)
  for x, y in zip(a.stages, c.stages):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(a.stages, d.stages))
  for table in a.stages:
    assert table.shape == (256, 4)
    assert all(len(set(row)) == 4 for row in table.tolist())


def test_tables_are_static_and_hashable():
  t = T.make("butterfly", 16)
  assert T.make("butterfly", 16) is t
  assert t.stages[0].dtype == np.int32
  with pytest.raises(ValueError):
    t.stages[0][0, 0] = 5
  assert len({t, T.make("butterfly", 16, radix=2, depth=4)}) == 1
  assert t != T.make("butterfly", 16, skip=True)


def test_scatter_is_the_transpose_of_gather():
  t = T.make("random", 50, fan_in=3, depth=2, n_in=30)
  for table, scatter, n_in in zip(t.stages, t.scatters, t.stage_n_in):
    sentinel = table.size
    assert scatter.shape[0] == n_in
    for i in range(n_in):
      flat = [int(v) for v in scatter[i] if v != sentinel]
      assert sorted(flat) == sorted(np.flatnonzero(table.reshape(-1) == i).tolist())


@pytest.mark.parametrize(
  "name,params",
  [
    ("butterfly", dict(radix=2, skip=True)),
    ("butterfly", dict(radix=4, depth=5)),
    ("parallel_butterfly", dict(width=3, skip=True)),
    ("parallel_butterfly", dict(width=2, depth=1, skip=True)),
    ("clos", dict(radix=4, width=3, skip=True)),
    ("random", dict(fan_in=3, depth=4, skip=True)),
    ("block_diagonal", dict(radix=4, depth=3, skip=True)),
    ("dense", dict(depth=2, skip=True)),
  ],
)
def test_path_counts_match_brute_force(name, params):
  t = T.make(name, 64, n_in=48 if name in ("random", "dense", "butterfly") else None, **params)
  expected = brute_force_paths(t)
  np.testing.assert_array_equal(T.path_counts(t), expected)
  stats = T.path_stats(t, heatmap_size=16)
  assert stats.connectivity == pytest.approx((expected > 0).mean())
  assert stats.mean == pytest.approx(expected.mean())
  assert stats.min == expected.min() and stats.max == expected.max()
  assert stats.cv == pytest.approx(expected.std() / expected.mean())
  p = expected / expected.sum(0)
  with np.errstate(divide="ignore", invalid="ignore"):
    ent = -(np.where(p > 0, p * np.log(p), 0)).sum(0) / np.log(t.n_in)
  assert stats.entropy == pytest.approx(ent.mean())
  assert stats.heatmap.shape == (16, 16)
  assert stats.heatmap.mean() == pytest.approx(expected.mean())


def test_skip_adds_identity_paths_to_butterfly():
  # One stage of radix-2 butterfly plus identity skip: the diagonal gets 2 paths.
  t = T.make("butterfly", 4, depth=1, skip=True)
  expected = np.array([[2, 1, 0, 0], [1, 2, 0, 0], [0, 0, 2, 1], [0, 0, 1, 2]])
  np.testing.assert_array_equal(T.path_counts(t), expected)


def test_rectangular_butterfly_wraps_inputs():
  t = T.make("butterfly", 1024, n_in=784)
  counts = T.path_counts(t)
  assert counts.shape == (784, 1024)
  # Inputs 0..239 are read by two virtual lanes (v and v + 784), the others by one.
  np.testing.assert_array_equal(counts[:240], 2)
  np.testing.assert_array_equal(counts[240:], 1)


def test_path_stats_scales_to_16k():
  stats = T.path_stats(T.make("butterfly", 16384))
  assert stats.connectivity == 1.0 and stats.min == stats.max == 1.0


# ---------------------------------------------------------------------------------------------
# Invalid parameters raise ValueError naming the parameter, its value and what would work.


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 5000), radix=st.integers(2, 9))
def test_non_power_sizes_are_refused_with_nearest_valid(n, radix):
  if T._exact_log(n, radix) is not None:
    return
  with pytest.raises(ValueError, match=rf"n={n} is not a power of radix={radix}.*nearest valid"):
    T.make("butterfly", n, radix=radix)


@settings(max_examples=60, deadline=None)
@given(
  name=st.sampled_from(T.FAMILIES),
  bad=st.sampled_from(["radix", "depth", "width", "fan_in", "seed"]),
  value=st.one_of(st.integers(-5, 0), st.just(1.5), st.just("2"), st.just(True)),
)
def test_bad_parameter_values_are_named(name, bad, value):
  assume(not (bad == "seed" and value == 0))  # seed=0 is valid (seeds are >= 0)
  params = {"fan_in": 2} if name == "random" else {}
  params[bad] = value
  with pytest.raises(ValueError, match=rf"{bad}="):
    T.make(name, 64, **params)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), n_in=st.integers(2, 300), fan_in=st.integers(1, 400))
def test_random_fan_in_larger_than_input_is_refused(n, n_in, fan_in):
  if fan_in <= min(n, n_in):
    t = T.make("random", n, n_in=n_in, fan_in=fan_in, depth=2)
    assert t.fan_in == (fan_in, fan_in)
  else:
    with pytest.raises(
      ValueError, match=rf"fan_in={fan_in} exceeds .* use fan_in <= {min(n, n_in)}"
    ):
      T.make("random", n, n_in=n_in, fan_in=fan_in)


def test_other_bad_inputs():
  with pytest.raises(ValueError, match=r"name='bfly' is not a topology family"):
    T.make("bfly", 64)
  with pytest.raises(ValueError, match=r"n_in=128 > n=64"):
    T.make("butterfly", 64, n_in=128)
  with pytest.raises(ValueError, match=r"radix=5 must divide n=64"):
    T.make("clos", 64, radix=5)
  with pytest.raises(ValueError, match=r"depth=4 is not supported by 'clos'"):
    T.make("clos", 64, depth=4)
  with pytest.raises(ValueError, match=r"'dense' does not take radix="):
    T.make("dense", 64, radix=2)
  with pytest.raises(ValueError, match=r"'random' needs fan_in="):
    T.make("random", 64)
  with pytest.raises(ValueError, match=r"skip='yes' must be True or False"):
    T.make("butterfly", 64, skip="yes")


def test_docstring_examples_run():
  import doctest

  result = doctest.testmod(T, verbose=False)
  assert result.attempted >= 1 and result.failed == 0


@pytest.mark.parametrize(
  "name,params",
  [
    ("butterfly", dict(radix=4, depth=5)),
    ("parallel_butterfly", dict(width=3, depth=4)),
    ("clos", dict(radix=8, width=5)),
    ("random", dict(fan_in=3, depth=2)),
    ("block_diagonal", dict(radix=4)),
    ("dense", dict(depth=2)),
  ],
)
def test_num_params_of_matches_built_tables(name, params):
  n_in = 40 if name in ("random", "dense", "butterfly") else None
  assert (
    T.num_params_of(name, 64, n_in=n_in, **params)
    == T.make(name, 64, n_in=n_in, **params).num_params
  )
