"""Front metrics of the co-design search (nf_jax.pareto.report.nondominated / hypervolume).

Both wrap moocore; the references here are brute force: an O(k^2) pairwise dominance check, and
the hypervolume as the summed volume of the cells of the grid spanned by the points' own
coordinates (exact for any point set) or, for many 6-D points, a count of dominated unit cells
of an integer lattice.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nf_jax.pareto import report


def _dominated_brute(f: np.ndarray) -> np.ndarray:
  return np.array([any(np.all(g <= h) and np.any(g < h) for g in f) for h in f])


def _hv_cells(z: np.ndarray, ref: float) -> float:
  """Exact HV of ``z`` (minimisation) w.r.t. ``ref``: sum of the dominated grid cells."""
  m = z.shape[1]
  axes = [np.unique(np.concatenate([z[:, d], [ref]])) for d in range(m)]
  axes = [a[a <= ref] for a in axes]
  total = 0.0
  for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
    lower = np.array([axes[d][i] for d, i in enumerate(cell)])
    if np.any(np.all(z <= lower, axis=1)):
      total += float(np.prod([axes[d][i + 1] - axes[d][i] for d, i in enumerate(cell)]))
  return total


@pytest.mark.parametrize("m", [2, 3, 6])
def test_nondominated_matches_pairwise_check(m):
  rng = np.random.default_rng(m)
  # Small integer range: many ties and exact duplicates, which must all be kept.
  f = rng.integers(0, 4, size=(60, m)).astype(float)
  np.testing.assert_array_equal(report.nondominated(f), ~_dominated_brute(f))
  g = rng.normal(size=(300, m))
  np.testing.assert_array_equal(report.nondominated(g), ~_dominated_brute(g))


def test_nondominated_edge_cases_and_bad_input():
  assert report.nondominated(np.zeros((0, 6))).shape == (0,)
  np.testing.assert_array_equal(report.nondominated(np.ones((3, 6))), [True] * 3)
  with pytest.raises(ValueError, match="shape"):
    report.nondominated(np.ones(6))
  with pytest.raises(ValueError, match="NaN"):
    report.nondominated(np.array([[0.0, np.nan], [1.0, 1.0]]))


def test_hypervolume_two_points_by_hand():
  # Box [0, 1.1]^2 minus the non-dominated part: 1.1*0.6 + 0.6*1.1 - 0.6*0.6 = 0.96.
  f = np.array([[0.0, 0.5], [0.5, 0.0], [0.6, 0.6]])
  assert report.hypervolume(f, np.zeros(2), np.ones(2)) == pytest.approx(0.96, rel=1e-12)


@pytest.mark.parametrize("m,k", [(2, 30), (3, 15), (4, 8), (6, 5)])
def test_hypervolume_matches_grid_cells(m, k):
  rng = np.random.default_rng(10 * m + k)
  f = rng.uniform(-3.0, 5.0, size=(k, m))
  lo, hi = np.full(m, -3.0), np.full(m, 5.0)
  z = (f - lo) / (hi - lo)
  assert report.hypervolume(f, lo, hi) == pytest.approx(_hv_cells(z, 1.1), rel=1e-10)


def test_hypervolume_many_6d_points_matches_lattice_count():
  # 80 points (beyond moocore's inclusion-exclusion size, so its recursive 6-D algorithm runs)
  # on the lattice {0, 1, 2}^6; the reference point sits at lattice value 3, so the HV is the
  # number of dominated unit cells times the cell volume.
  rng = np.random.default_rng(0)
  f = rng.integers(0, 3, size=(80, 6)).astype(float)
  cells = np.array(list(itertools.product(range(3), repeat=6)), float)
  count = int(np.sum(np.any(np.all(f[None, :, :] <= cells[:, None, :], axis=2), axis=1)))
  side = 1.1 / 3
  hi = np.full(6, 3 / 1.1)  # scales lattice value 3 to the reference 1.1
  assert report.hypervolume(f, np.zeros(6), hi) == pytest.approx(count * side**6, rel=1e-10)


def test_hypervolume_ignores_points_outside_the_reference_box():
  f = np.array([[0.2, 0.2], [1.2, 0.0], [0.0, np.inf]])
  assert report.hypervolume(f, np.zeros(2), np.ones(2)) == pytest.approx(0.81, rel=1e-12)
  assert report.hypervolume(np.zeros((0, 2)), np.zeros(2), np.ones(2)) == 0.0
