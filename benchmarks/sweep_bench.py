"""Throughput of M models trained as one vmapped program vs the same M one after another.

Both sides run the same jitted train step of :mod:`nf_jax.train` (compile excluded, one warm-up
step each), on the same data, in one run; the script prints examples/s of each and the ratio.

Command, runtime and result: ``benchmarks/configs/sweep_bench.py`` (the default ``--config``;
overrides ``--config.<field>=``, the pattern of :mod:`nf_jax.cli`)::

  python benchmarks/sweep_bench.py --config.name=dense --config.steps=20
  python benchmarks/sweep_bench.py --config=benchmarks/configs/sweep_bench.py:smoke   # CI
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from nf_jax import cli
from nf_jax import topology as T
from nf_jax import train as tr
from nf_jax.data import Dataset


def synthetic(d_in: int, n: int = 2048, classes: int = 10) -> Dataset:
  """Random inputs and labels of Fashion-MNIST's shape: throughput does not depend on values."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, d_in)).astype(np.float32)
  y = rng.integers(0, classes, n).astype(np.int32)
  return Dataset(x, y, x[:256], y[:256], classes, (d_in, 1, 1), "synthetic")


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses a family the registry lacks, or a cascade setting of the dense baseline."""
  cli.check_choices("name", [config.name], (*T.families(), "dense"))
  takes = T.family(config.name).params if config.name in T.families() else frozenset()
  ignored = sorted(overrides & ({"radix", "depth", "skip"} - takes))
  if ignored:
    raise ValueError(f"--config.{ignored[0]} does not apply to --config.name={config.name}")


def make_specs(config: ml_collections.ConfigDict) -> list[tr.ModelSpec]:
  """``config.models`` copies of the configured model, train seeds 0, 1, ..."""
  seeds = range(config.models)
  if config.name == "dense":  # the nn.Dense baseline
    return [tr.ModelSpec.create("dense", config.n, train_seed=s) for s in seeds]
  params = dict(depth=config.depth, skip=config.skip)
  if "radix" in T.family(config.name).params:
    params["radix"] = config.radix
  return [tr.ModelSpec.create(config.name, config.n, train_seed=s, **params) for s in seeds]


def examples_per_second(
  specs: list[tr.ModelSpec], ds: Dataset, steps: int, batch_size: int
) -> float:
  """Examples/s of ``steps`` train steps of ``specs`` as one vmapped program (no compile)."""
  config = tr.TrainConfig(batch_size=batch_size, num_epochs=1)
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
    tr._put(rng.integers(0, len(ds.x_train), (len(specs), batch_size), dtype=np.int32), models)
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
  return len(specs) * steps * batch_size / (time.perf_counter() - t0)


def main(config: ml_collections.ConfigDict) -> float:
  """Runs the benchmark as ``config`` (``benchmarks/configs/sweep_bench.py``) says; returns the
  ratio vmapped / sequential."""
  steps, batch = config.steps, config.batch_size
  ds = synthetic(config.d_in)
  specs = make_specs(config)
  vmapped = examples_per_second(specs, ds, steps, batch)
  # One after another: each model's own M=1 program (compiled once, shared by all M).
  seq_times = [steps * batch / examples_per_second([s], ds, steps, batch) for s in specs]
  sequential = len(specs) * steps * batch / sum(seq_times)
  print(
    f"{specs[0].label().split(' seed')[0]}, M={len(specs)}, batch {batch}, "
    f"{steps} steps, {jax.device_count()} device(s) [{jax.devices()[0].platform}]"
  )
  print(f"vmapped    : {vmapped:10.0f} examples/s")
  print(f"sequential : {sequential:10.0f} examples/s")
  print(f"ratio vmapped / sequential: {vmapped / sequential:.2f}x")
  return vmapped / sequential


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  cli.run(main, os.path.join(here, "configs", "sweep_bench.py"), validate=validate)
