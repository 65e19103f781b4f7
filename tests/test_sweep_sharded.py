"""A sweep sharded over 4 forced CPU devices equals the same sweep on one device.

Runs in a subprocess: ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` only takes effect
before JAX initialises its backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
  """
  import jax
  import numpy as np
  from nf_jax import train as tr
  from nf_jax.data import Dataset

  assert jax.device_count() == 4, jax.devices()
  rng = np.random.default_rng(0)
  centres = 4.0 * rng.normal(size=(4, 24)) / np.sqrt(24)
  y = rng.integers(0, 4, 384).astype(np.int32)
  x = (centres[y] + rng.normal(size=(384, 24))).astype(np.float32)
  ds = Dataset(x[:256], y[:256], x[256:], y[256:], 4, (24, 1, 1), "synthetic")
  config = tr.TrainConfig(learning_rate=3e-2, batch_size=32, num_epochs=2)
  # 3 models of different tables (random seeds, the gather kernel over traced tables) and 3 of
  # shared butterfly tables (the C++ custom call on CPU), each padded to 4, one per device.
  sweeps = [
    [tr.ModelSpec.create("random", 32, fan_in=3, depth=2, seed=s, train_seed=s) for s in range(3)],
    [tr.ModelSpec.create("butterfly", 32, radix=2, skip=True, train_seed=s) for s in range(3)],
  ]

  seen = []
  fetch = tr._fetch
  def spy(tree):
    leaf = jax.tree.leaves(tree)[0]
    if getattr(leaf, "ndim", 0) and leaf.shape[0] == 4:
      seen.append(len(leaf.sharding.device_set))
    return fetch(tree)
  tr._fetch = spy

  for specs in sweeps:
    seen.clear()
    sharded = tr.train_sweep(specs, ds, config, mesh=tr.make_mesh(), progress=False)
    assert seen and max(seen) == 4, seen  # the model axis really lived on 4 devices
    seen.clear()
    single = tr.train_sweep(specs, ds, config, mesh=tr.make_mesh(jax.devices()[:1]),
                            progress=False)
    assert seen == [], seen  # on one device there is no padding to 4
    for a, b in zip(sharded, single):
      jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
                   a.params, b.params)
      assert abs(a.test_accuracy - b.test_accuracy) <= 1 / 128
  print("SHARDED_OK")
  """
)


def test_sharded_sweep_equals_unsharded():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
  ).strip()
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
    [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "SHARDED_OK" in proc.stdout
