"""Tests for nf_jax.train: forward vs dense products, vmapped sweeps, resume, non-finite stop."""

from __future__ import annotations

import os
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from nf_jax import kernels, sweep
from nf_jax import train as tr
from nf_jax.data import Dataset
from nf_jax.layers import SparseCascade


def synthetic(n_train=256, n_test=128, d=24, k=4, seed=0) -> Dataset:
  """A toy task: k Gaussian blobs (unit noise) around centres at distance ~3 sqrt(2)."""
  rng = np.random.default_rng(seed)
  centres = 3.0 * rng.normal(size=(k, d)) / np.sqrt(d) * np.sqrt(2)
  y = rng.integers(0, k, n_train + n_test).astype(np.int32)
  x = (centres[y] + rng.normal(size=(n_train + n_test, d))).astype(np.float32)
  return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], k, (d, 1, 1), "synthetic")


CONFIG = tr.TrainConfig(learning_rate=3e-2, batch_size=32, num_epochs=2, log_every=4)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize(
  "name,params",
  [("butterfly", {"radix": 2, "depth": 5, "skip": True}), ("random", {"fan_in": 3, "depth": 2})],
)
def test_forward_matches_dense_product(name, params):
  spec = tr.ModelSpec.create(name, 32, num_layers=2, **params)
  p = tr.init_params(spec, d_in=24, num_classes=4)
  x = jax.random.normal(jax.random.key(1), (5, 24))
  topos = spec.topologies(24)
  # Independent reference: each cascade as its dense [n_in, n] matrix (product of masked stages).
  h = x
  for layer, t in enumerate(topos):
    lp = p[f"layer_{layer}"]
    dense = kernels.cascade_dense_matrix([lp[f"stage_{s}"] for s in range(t.depth)], t)
    h = jax.nn.relu(h @ dense + lp["bias"])
    # The params are SparseCascade's own: its apply agrees on this layer too.
  expected = h @ p["head"]["kernel"] + p["head"]["bias"]
  model = spec.model(24, 4)
  np.testing.assert_allclose(model.apply({"params": p}, x), expected, rtol=1e-4, atol=1e-5)
  layer0 = SparseCascade(topos[0]).apply({"params": p["layer_0"]}, x)
  np.testing.assert_allclose(
    layer0,
    x
    @ kernels.cascade_dense_matrix(
      [p["layer_0"][f"stage_{s}"] for s in range(topos[0].depth)], topos[0]
    )
    + p["layer_0"]["bias"],
    rtol=1e-4,
    atol=1e-5,
  )


@pytest.mark.parametrize(
  "spec",
  [
    tr.ModelSpec.create("butterfly", 32, radix=2, depth=5, skip=True),
    tr.ModelSpec.create("dense", 32, num_layers=3),
  ],
)
def test_classifier_params_match_init_params(spec):
  """The Flax module declares exactly the params init_params makes (names, shapes, dtypes), so
  checkpoints of either load into the other; init_params draws each layer from its own key."""
  p = tr.init_params(spec, d_in=24, num_classes=4)
  declared = jax.eval_shape(spec.model(24, 4).init, jax.random.key(0), np.zeros((1, 24)))
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)  # noqa: E731
  assert shapes(dict(declared["params"])) == shapes(p)
  keys = jax.random.split(jax.random.key(spec.train_seed), spec.num_layers + 1)
  layer1 = tr.hidden_layer(spec.model(24, 4), 1).init(keys[1], np.zeros((1, 32), np.float32))
  assert_trees_close(p["layer_1"], layer1["params"], rtol=0, atol=0)


def test_classifier_with_per_model_tables_matches_each_model():
  """Models of one structure but different wiring, vmapped with their tables as an argument."""
  specs = [tr.ModelSpec.create("random", 32, fan_in=3, depth=2, seed=s) for s in range(3)]
  params = [tr.init_params(s, d_in=24, num_classes=4) for s in specs]
  tables = tr.stack_tables([s.topologies(24) for s in specs])
  stacked = jax.tree.map(lambda *a: np.stack(a), *params)
  x = jax.random.normal(jax.random.key(2), (5, 24))
  model = specs[0].model(24, 4)
  got = jax.vmap(lambda p, t: model.apply({"params": p}, x, t))(stacked, tables)
  for m, (spec, p) in enumerate(zip(specs, params)):
    alone = spec.model(24, 4).apply({"params": p}, x)
    np.testing.assert_allclose(got[m], alone, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="tables were given for the nn.Dense baseline"):
    dense = tr.ModelSpec.create("dense", 32)
    dense.model(24, 4).apply({"params": tr.init_params(dense, 24, 4)}, x, tables)


def test_first_layer_is_rectangular_cascade():
  spec = tr.ModelSpec.create("parallel_butterfly", 1024, radix=2, width=2, skip=True)
  first, hidden = spec.topologies(784)
  assert (first.n_in, first.n_out) == (784, 1024) and (hidden.n_in, hidden.n_out) == (1024, 1024)
  assert hidden == spec.hidden_topology()


def test_sweep_equals_models_trained_alone():
  """Three topologies with different tables (random seeds) x seeds in one vmapped program."""
  ds = synthetic()
  specs = [
    tr.ModelSpec.create("random", 32, fan_in=3, depth=2, seed=s, train_seed=10 + s)
    for s in range(3)
  ]
  assert len(tr.group_compatible(specs, 24)) == 1
  together = tr.train_sweep(specs, ds, CONFIG, progress=False)
  for spec, res in zip(specs, together):
    alone = tr.train(spec, ds, CONFIG, progress=False)
    assert_trees_close(res.params, alone.params)
    assert res.test_accuracy == pytest.approx(alone.test_accuracy, abs=1 / 128 + 1e-9)
  # The models learn the toy task (chance = 1/4) and are not copies of one another.
  assert min(r.test_accuracy for r in together) > 0.5
  assert not np.allclose(together[0].params["head"]["kernel"], together[1].params["head"]["kernel"])


def test_incompatible_specs_are_refused():
  ds = synthetic()
  specs = [tr.ModelSpec.create("butterfly", 32, skip=False), tr.ModelSpec.create("dense", 32)]
  assert len(tr.group_compatible(specs, 24)) == 2
  with pytest.raises(ValueError, match="shape signatures"):
    tr.train_sweep(specs, ds, CONFIG, progress=False)


def test_bad_config_values():
  with pytest.raises(ValueError, match="on_nonfinite='ignore'"):
    tr.TrainConfig(on_nonfinite="ignore")
  with pytest.raises(ValueError, match="batch_size=0"):
    tr.TrainConfig(batch_size=0)
  with pytest.raises(ValueError, match="weight_init='xavier'"):
    tr.ModelSpec.create("butterfly", 32, weight_init="xavier")
  with pytest.raises(ValueError, match=r"impl='fast' is not one of \('auto', 'pallas'"):
    tr.TrainConfig(impl="fast")


def test_impl_comes_from_the_config_and_traced_tables_refuse_planning_kernels():
  """``config.train.impl`` reaches the trainer through the sweep's config; a group whose tables
  differ per model refuses a kernel that plans on static tables, before any init or compile."""
  config = ml_collections.ConfigDict(
    {"train": {"learning_rate": 1e-3, "batch_size": 32, "num_epochs": 1, "impl": "xla_blocked"}}
  )
  tconfig = sweep.train_config(config)
  assert tconfig.impl == "xla_blocked"
  specs = [tr.ModelSpec.create("random", 32, fan_in=3, depth=2, seed=s) for s in range(2)]
  with pytest.raises(ValueError, match="impl='xla_blocked' cannot read per-model"):
    tr.train_sweep(specs, synthetic(), tconfig, progress=False)
  config.train.impl = "fast"
  with pytest.raises(ValueError, match="impl='fast'"):
    sweep.train_config(config)


def test_resume_continues_identically(tmp_path):
  ds = synthetic()
  spec = tr.ModelSpec.create("block_diagonal", 32, radix=4, depth=3, skip=True, train_seed=3)
  config = tr.TrainConfig(
    learning_rate=3e-3, batch_size=32, num_epochs=2, checkpoint_every=5, max_to_keep=10
  )
  straight = tr.train(spec, ds, config, progress=False)
  workdir = str(tmp_path / "run")
  tr.train(spec, ds, config, workdir=workdir, progress=False)
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  steps = sorted(manager.all_steps())
  assert steps == [5, 10, 15, 16]  # 8 steps per epoch; 5 and 10 are mid-epoch
  manager.close()
  for step in steps[1:]:  # "interrupted" after step 5: mid-epoch 1
    shutil.rmtree(os.path.join(workdir, "checkpoints", str(step)))
  resumed = tr.train(spec, ds, config, workdir=workdir, progress=False)
  assert_trees_close(resumed.params, straight.params, rtol=1e-6, atol=1e-7)
  assert resumed.test_accuracy == straight.test_accuracy
  assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  ds = synthetic()
  spec = tr.ModelSpec.create("butterfly", 32, radix=2, skip=True)
  workdir = str(tmp_path / "run")
  good = tr.train(spec, ds, tr.TrainConfig(batch_size=32, num_epochs=1), workdir, progress=False)
  # Resume with an absurd learning rate: Adam steps of ~1e30 overflow the logits.
  bad_config = tr.TrainConfig(learning_rate=1e30, batch_size=32, num_epochs=2, log_every=2)
  with pytest.raises(
    tr.NonFiniteLossError, match=r"non-finite loss.*last good checkpoint \(step 8\)"
  ):
    tr.train(spec, ds, bad_config, workdir, progress=False)
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  assert manager.latest_step() == 8
  restored = manager.restore(8, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  kept = jax.tree.map(lambda a: np.asarray(a)[0], dict(restored["state"])["params"])
  assert_trees_close(kept, good.params, rtol=0, atol=0)


def test_nonfinite_mark_policy_reports_nan():
  ds = synthetic()
  specs = [tr.ModelSpec.create("butterfly", 32, radix=2, train_seed=s) for s in range(2)]
  config = tr.TrainConfig(learning_rate=1e30, batch_size=32, num_epochs=1, on_nonfinite="mark")
  results = tr.train_sweep(specs, ds, config, progress=False)
  for r in results:
    assert r.diverged and np.isnan(r.test_accuracy) and np.isnan(r.final_loss)
    # Frozen at the last finite update: the params hold no NaN.
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(r.params))


def test_dense_baseline_learns():
  ds = synthetic()
  res = tr.train(tr.ModelSpec.create("dense", 32), ds, CONFIG, progress=False)
  assert res.test_accuracy > 0.6 and not res.diverged
  assert res.num_params == 24 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4
  assert res.history[-1]["examples_per_second"] > 0
