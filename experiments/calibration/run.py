"""Trains a SMALL calibration set: data-free score -> Fashion-MNIST accuracy.

This is a stop-gap until the full topology study exists: 16 distinct hidden topologies at
``n = 1024`` (the narrowest power of two that every family accepts after the 784-wide input),
two hidden cascade layers, ONE short epoch capped at ``--steps_per_epoch`` steps of batch 128,
one training seed. Accuracies are therefore far below converged values; they rank topologies
under a fixed small budget, nothing more. ``nf_jax.pareto --calibration=<results.csv>`` takes
any results CSV in the study contract, so the full study's CSV replaces this one.

Command (546 s on the shared, heavily loaded 2-core CPU, 2026-11-26):
  nice -n 10 python experiments/calibration/run.py --workdir=experiments/calibration
Writes ``results.csv`` (study contract columns; ``n_in`` is the 784-pixel input, ``num_params``
and ``density`` describe the hidden n x n topology) to ``--workdir``.
Measured (committed CSV): dense 0.848 test accuracy; sparse cascades 0.745 (butterfly depth 1,
random fan-in 2) to 0.824 (clos 32x32). Caveat: butterfly radix 32 depth 2 and block_diagonal
radix 32 depth 2 (same first stage, different second stage; trained in one vmapped sweep) report
the same test accuracy 0.8173 but different train accuracy and loss: possibly a coincidence,
possibly the sweep's eval step not using per-model tables (reported to nf_jax.train's owner).
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging

from nf_jax import data as D
from nf_jax import io_utils
from nf_jax import topology as T
from nf_jax import train as TR

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "experiments/calibration", "Output directory.")
flags.DEFINE_integer("n", 1024, "Hidden width.")
flags.DEFINE_integer("steps_per_epoch", 150, "Training steps (batch 128) per epoch.")
flags.DEFINE_integer("epochs", 1, "Epochs.")
flags.DEFINE_integer("limit", 0, "Train only the first N specs (0: all); smoke runs.")

COLUMNS = (
  "name,n,n_in,depth,radix,width,fan_in,skip,topology_seed,train_seed,weight_init,num_params,"
  "density,test_accuracy,train_accuracy,final_loss,epochs,seconds"
).split(",")

# (family, T.make parameters): distinct families, depths and sparsities, n = 1024.
SPECS = (
  ("dense", {}),
  ("butterfly", dict(radix=2, depth=10)),
  ("butterfly", dict(radix=2, depth=10, skip=True)),
  ("butterfly", dict(radix=2, depth=3)),
  ("butterfly", dict(radix=2, depth=1)),
  ("butterfly", dict(radix=4, depth=5)),
  ("butterfly", dict(radix=32, depth=2)),
  ("parallel_butterfly", dict(radix=2, width=4, depth=10)),
  ("parallel_butterfly", dict(radix=4, width=2, depth=5)),
  ("clos", dict(radix=32, width=32)),
  ("random", dict(fan_in=4, depth=5)),
  ("random", dict(fan_in=16, depth=2)),
  ("random", dict(fan_in=2, depth=3)),
  ("random", dict(fan_in=32, depth=1)),
  ("block_diagonal", dict(radix=32, depth=2)),
  ("block_diagonal", dict(radix=4, depth=2)),
)


def result_row(r: TR.ModelResult, d_in: int) -> dict:
  """One study-contract row; ``num_params``/``density`` describe the hidden n x n topology."""
  spec = r.spec
  params = dict(spec.topology)
  t = spec.hidden_topology()
  tp = t.params() if hasattr(t, "params") else {}
  get = lambda k: params.get(k, tp.get(k, ""))  # noqa: E731
  return dict(
    name=spec.name,
    n=spec.n,
    n_in=d_in,
    depth=t.depth,
    radix=get("radix") if spec.name not in ("random", "dense") else "",
    width=get("width") if spec.name in ("parallel_butterfly", "clos") else "",
    fan_in=get("fan_in") if spec.name == "random" else "",
    skip=bool(params.get("skip", False)),
    topology_seed=params.get("seed", 0),
    train_seed=spec.train_seed,
    weight_init=spec.weight_init,
    num_params=t.num_params,
    density=f"{t.density:.6g}",
    test_accuracy=f"{r.test_accuracy:.6f}",
    train_accuracy=f"{r.train_accuracy:.6f}",
    final_loss=f"{r.final_loss:.6f}",
    epochs=r.epochs,
    seconds=f"{r.seconds:.2f}",
  )


def main(argv):
  del argv
  ds = D.load("fashion_mnist")
  d_in = ds.x_train.shape[1]
  specs = [TR.ModelSpec.create(name, FLAGS.n, **p) for name, p in SPECS]
  if FLAGS.limit:
    specs = specs[: FLAGS.limit]
  for s in specs:  # fail early on a bad spec
    T.make(s.name, s.n, **dict(s.topology))
  config = TR.TrainConfig(num_epochs=FLAGS.epochs, steps_per_epoch=FLAGS.steps_per_epoch)
  rows = []
  start = time.time()
  for group in TR.group_compatible(specs, d_in):
    for r in TR.train_sweep(group, ds, config, progress=True):
      rows.append(result_row(r, d_in))
      logging.info("%s: test %.4f", r.spec.label(), r.test_accuracy)
  order = {s: i for i, s in enumerate(specs)}
  rows.sort(key=lambda row: row["name"])
  del order
  text = ",".join(COLUMNS) + "\n"
  text += "".join(",".join(str(row[c]) for c in COLUMNS) + "\n" for row in rows)
  os.makedirs(FLAGS.workdir, exist_ok=True)
  io_utils.atomic_write_text(os.path.join(FLAGS.workdir, "results.csv"), text)
  print(f"wrote {len(rows)} rows to {FLAGS.workdir}/results.csv in {time.time() - start:.0f} s")


if __name__ == "__main__":
  app.run(main)
