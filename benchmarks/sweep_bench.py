"""Throughput of M models trained as one vmapped program vs the same M one after another.

Both sides run the same jitted train step of :mod:`nf_jax.train` (compile excluded, one warm-up
step each), on the same data, in one run; the script prints examples/s of each and the ratio.

  python benchmarks/sweep_bench.py                       # 8 radix-2 butterflies, n=1024
  python benchmarks/sweep_bench.py --name=dense --steps=20
  python benchmarks/sweep_bench.py --smoke               # seconds; what CI runs
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags
from jax.sharding import NamedSharding, PartitionSpec

from nf_jax import train as tr
from nf_jax.data import Dataset

FLAGS = flags.FLAGS
flags.DEFINE_integer("models", 8, "Models M per side.")
flags.DEFINE_string("name", "butterfly", "Topology family (or dense).")
flags.DEFINE_integer("n", 1024, "Hidden width.")
flags.DEFINE_integer("radix", 2, "Butterfly radix (butterfly families).")
flags.DEFINE_integer("depth", 10, "Sublayers per cascade.")
flags.DEFINE_bool("skip", True, "Skip connections.")
flags.DEFINE_integer("batch_size", 128, "Examples per step per model.")
flags.DEFINE_integer("steps", 10, "Timed steps per model.")
flags.DEFINE_bool("smoke", False, "Tiny sizes (2 models, n=32, d_in=32, 2 steps) for CI.")


def synthetic(d_in: int, n: int = 2048, classes: int = 10) -> Dataset:
  """Random inputs and labels of Fashion-MNIST's shape: throughput does not depend on values."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, d_in)).astype(np.float32)
  y = rng.integers(0, classes, n).astype(np.int32)
  return Dataset(x, y, x[:256], y[:256], classes, (d_in, 1, 1), "synthetic")


def make_specs(m: int) -> list[tr.ModelSpec]:
  if FLAGS.name == "dense":
    return [tr.ModelSpec.create("dense", FLAGS.n, train_seed=s) for s in range(m)]
  params = dict(depth=FLAGS.depth, skip=FLAGS.skip)
  if FLAGS.name in ("butterfly", "parallel_butterfly", "block_diagonal"):
    params["radix"] = FLAGS.radix
  return [tr.ModelSpec.create(FLAGS.name, FLAGS.n, train_seed=s, **params) for s in range(m)]


def examples_per_second(specs: list[tr.ModelSpec], ds: Dataset, steps: int) -> float:
  """Examples/s of ``steps`` train steps of ``specs`` as one vmapped program (no compile)."""
  config = tr.TrainConfig(batch_size=FLAGS.batch_size, num_epochs=1)
  d_in = ds.x_train.shape[1]
  mesh = tr.make_mesh(jax.devices()[:1]) if len(specs) == 1 else tr.make_mesh()
  models, rep = NamedSharding(mesh, PartitionSpec("models")), NamedSharding(mesh, PartitionSpec())
  model = specs[0].model(d_in, ds.num_classes, config.impl)
  train_step, _ = tr._compiled_fns(model, False, config, steps + 1)
  opt = tr.make_optimizer(config, steps + 1)
  params = [tr.init_params(s, d_in, ds.num_classes) for s in specs]
  stack = lambda trees: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)
  state = (
    tr._put(stack(params), models),
    tr._put(stack([opt.init(p) for p in params]), models),
    tr._put(np.zeros(len(specs), bool), models),
  )
  x, y = tr._put(ds.x_train, rep), tr._put(ds.y_train, rep)
  rng = np.random.default_rng(1)
  batches = [
    tr._put(
      rng.integers(0, len(ds.x_train), (len(specs), FLAGS.batch_size), dtype=np.int32), models
    )
    for _ in range(steps + 1)
  ]
  out = train_step(*state, None, batches[0], x, y)  # warm-up: compile
  jax.block_until_ready(out)
  state = out[:3]
  t0 = time.perf_counter()
  for idx in batches[1:]:
    out = train_step(*state, None, idx, x, y)
    state = out[:3]
  jax.block_until_ready(out)
  return len(specs) * steps * FLAGS.batch_size / (time.perf_counter() - t0)


def main(argv: list[str]) -> None:
  del argv
  if FLAGS.smoke:
    FLAGS.models, FLAGS.n, FLAGS.steps, FLAGS.batch_size, FLAGS.depth = 2, 32, 2, 16, 2
  d_in = 32 if FLAGS.smoke else 784
  ds = synthetic(d_in)
  specs = make_specs(FLAGS.models)
  vmapped = examples_per_second(specs, ds, FLAGS.steps)
  # One after another: each model's own M=1 program (compiled once, shared by all M).
  seq_times = [
    FLAGS.steps * FLAGS.batch_size / examples_per_second([s], ds, FLAGS.steps) for s in specs
  ]
  sequential = len(specs) * FLAGS.steps * FLAGS.batch_size / sum(seq_times)
  print(
    f"{specs[0].label().split(' seed')[0]}, M={len(specs)}, batch {FLAGS.batch_size}, "
    f"{FLAGS.steps} steps, {jax.device_count()} device(s) [{jax.devices()[0].platform}]"
  )
  print(f"vmapped    : {vmapped:10.0f} examples/s")
  print(f"sequential : {sequential:10.0f} examples/s")
  print(f"ratio vmapped / sequential: {vmapped / sequential:.2f}x")


if __name__ == "__main__":
  app.run(main)
