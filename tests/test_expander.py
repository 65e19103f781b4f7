"""The ``expander`` plug-in family (nf_jax/families/expander.py), through the registry only."""

import csv
import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nf_jax import kernels, proxy
from nf_jax import topology as T
from nf_jax import train as tr


def _counts(table: np.ndarray, n_in: int) -> np.ndarray:
  return np.bincount(table.reshape(-1), minlength=n_in)


@pytest.mark.parametrize("n,n_in,fan_in", [(64, 64, 4), (100, 100, 7), (96, 40, 3), (30, 30, 30)])
def test_every_row_is_distinct_and_every_input_is_used_evenly(n, n_in, fan_in):
  t = T.make("expander", n, n_in=n_in, fan_in=fan_in, depth=3, seed=3)
  assert t.fan_in == (fan_in,) * 3 and t.stage_n_in == (n_in, n, n)
  for table, width in zip(t.stages, t.stage_n_in):
    assert all(len(set(row)) == fan_in for row in table.tolist())  # distinct inputs per output
    counts = _counts(table, width)
    assert counts.sum() == n * fan_in and counts.max() - counts.min() <= 1
    if width == n:
      assert np.all(counts == fan_in)  # square stage: fan_in-regular both ways
  assert t.num_params == T.num_params_of("expander", n, n_in=n_in, fan_in=fan_in, depth=3)


def test_seeded_deterministic_and_unlike_random():
  a = T.make("expander", 256, fan_in=4, depth=2, seed=1)
  b = T.make("expander", 256, fan_in=4, depth=2, seed=2)
  spec = {k: v for k, v in a.spec if k not in ("n", "n_in")}
  again, _, _ = T.family("expander").build(256, 256, spec)  # uncached: same seed, same tables
  assert all(np.array_equal(x, y) for x, y in zip(again, a.stages))
  assert a.fingerprint != b.fingerprint
  # Uniform draws (random) leave some inputs unused; the expander never does.
  r = T.make("random", 256, fan_in=4, depth=2, seed=1)
  assert _counts(r.stages[1], 256).min() == 0 and _counts(a.stages[1], 256).min() == 4


def test_paths_are_balanced_every_input_and_output_carries_fan_in_to_the_depth():
  t = T.make("expander", 256, fan_in=4)
  assert t.depth == 4  # default: ceil(log_4 256), as for random (T.log_depth)
  paths = T.path_counts(t)  # [n_in, n_out], brute force propagation
  assert np.all(paths.sum(axis=1) == 4**4) and np.all(paths.sum(axis=0) == 4**4)
  r = T.path_counts(T.make("random", 256, fan_in=4))  # uniform draws: unequal input budgets
  assert r.sum(axis=1).std() > 0


def test_refusals_name_the_value():
  with pytest.raises(ValueError, match="n_in=784 > n=256"):
    T.make("expander", 256, n_in=784, fan_in=4)
  with pytest.raises(ValueError, match="fan_in=9 exceeds the stage input width n_in=8"):
    T.make("expander", 16, n_in=8, fan_in=9)
  with pytest.raises(ValueError, match="does not take radix="):
    T.make("expander", 16, radix=2)


def test_forward_matches_an_edge_by_edge_numpy_reference():
  t = T.make("expander", 48, n_in=32, fan_in=3, depth=2, seed=4, skip=True)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 32)).astype(np.float32)
  ws = [rng.normal(size=s.shape).astype(np.float32) for s in t.stages]
  h = x.astype(np.float64)
  for table, skip, w in zip(t.stages, t.skips, ws):
    out = np.zeros((5, table.shape[0]))
    for j in range(table.shape[0]):
      for r in range(table.shape[1]):
        out[:, j] += w[j, r] * h[:, table[j, r]]
      out[:, j] += h[:, skip[j]].mean(axis=1)
    h = out
  with jax.default_matmul_precision("highest"):
    got = kernels.cascade_matmul(jnp.asarray(x), [jnp.asarray(w) for w in ws], t)
  np.testing.assert_allclose(np.asarray(got), h, rtol=1e-4, atol=1e-4)


def test_spec_row_round_trip_proxy_and_training_spec():
  spec = T.TopologySpec.of("expander", 128, fan_in=4, depth=3, seed=9, skip=True)
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=T.ROW_COLUMNS)
  writer.writeheader()
  writer.writerow(spec.to_row())
  row = next(csv.DictReader(io.StringIO(buf.getvalue())))
  assert row["topology_seed"] == "9"  # seeded: the seed travels in the row
  back = T.TopologySpec.from_row(row).make()
  assert back.fingerprint == spec.make().fingerprint
  small = proxy.proxy_topology(spec.make(), 32)
  # The radix families' rule (T.rescale_radix): fan-in 4 at 128 lanes -> 3 at a multiple of 3
  # near 32 lanes; depth scaled by the full-mixing depths log_3 33 / log_4 128.
  k = T.shrink_radix(4, 128, 32)
  depth = round(3 * (math.log(33) / math.log(3)) / (math.log(128) / math.log(4)))
  assert (k, small.name, small.n_out, small.depth) == (3, "expander", 33, depth)
  assert small.params()["seed"] == 9 and small.params()["skip"] and small.fan_in == (3,) * depth
  assert tr.ModelSpec.create("expander", 128, fan_in=4, seed=0).hidden_topology().name == "expander"


def test_registered_as_a_plugin_not_in_the_genome():
  assert "expander" in T.families() and "expander" not in T.FAMILIES
