"""Default config: a quick look at the cascade families against the dense MLP.

Fashion-MNIST, 2 hidden layers of width 1024, one seed; the radix-2 butterfly (depth 10 =
log2 1024), the parallel butterfly (width 4) and a random fixed-fan-in cascade, each with skip
connections, and the dense baseline.

Command::

  python experiments/main.py --workdir=runs/default --config=experiments/configs/default.py

Expected runtime on 2 CPU cores: not timed end to end; from the per-epoch costs measured under
a shared load (experiments/README.md) about 40 minutes for 4 models x 5 epochs, dominated by
the random cascade on the gather kernel; less on an idle machine.
Expected result: dense about 89% test accuracy; the cascades (2-8% of the dense hidden-layer
parameters) a few points below.

Variants import this file and override fields; every config accepts ``:runlocal``, a one-step
smoke run on a slice of the data (``--config=experiments/configs/default.py:runlocal``).
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Every field the launcher reads, with the defaults the variants start from."""
  config = ml_collections.ConfigDict()
  config.dataset = "fashion_mnist"
  config.data_dir = ""  # "" = Debian's /usr/share/datasets/fashion-mnist, then TFDS
  config.max_train_examples = 0  # 0 = all
  config.max_test_examples = 0
  config.pool = 1  # average-pool images by this factor (2: 28x28 -> 14x14, 196 inputs)
  # Held out of the training set for every selection (nf_jax.data.split_validation): a seeded,
  # fixed 10k of the 60k Fashion-MNIST training images; the model trains on the other 50k.
  config.validation_size = 10000
  config.validation_seed = 0
  config.n = 1024  # hidden width
  config.num_layers = 2  # hidden layers; the first maps 784 -> n (a rectangular cascade)
  config.seeds = (0,)
  config.include_dense = True
  # Each entry: name=<family>, the T.make parameters, optional n= (hidden width, default
  # config.n) and weight_init=.
  config.models = []
  config.max_models_per_group = 12  # models per vmapped program
  # True: models of equal shapes but different wiring share one vmapped program (their tables
  # become per-model data, read by cpu_ffi or xla_gather); fewer compiles, same numbers.
  config.mix_tables = False
  config.keep_checkpoints = True  # per-group Orbax checkpoints: a killed group resumes
  config.keep_finished_checkpoints = False

  config.train = ml_collections.ConfigDict()
  config.train.learning_rate = 1e-3
  config.train.dense_learning_rate = 0.0  # > 0: the nn.Dense baseline's own rate
  config.train.batch_size = 128
  config.train.num_epochs = 5
  config.train.steps_per_epoch = -1  # -1 = the whole training set
  config.train.weight_decay = 0.0
  config.train.warmup_steps = 0
  config.train.eval_batch_size = 2000
  config.train.checkpoint_every = -1  # -1 = at each epoch end
  config.train.on_nonfinite = "mark"  # a diverged model gets NaN rows; the others go on
  config.train.log_every = 50
  config.train.impl = "auto"  # cascade kernel (nf_jax.kernels.cascade_matmul); "auto" picks
  return config


RUNLOCAL_MAX_DEPTH = 4


def runlocal(config: ml_collections.ConfigDict, keep: int = 3) -> ml_collections.ConfigDict:
  """Shrinks ``config`` into a one-step smoke run: 512/256 examples, one seed, one step,
  ``keep`` model entries spread over the list (first, middle, last), and depths capped at
  ``RUNLOCAL_MAX_DEPTH`` (a depth-32 cascade takes a minute to compile on 2 cores; every code
  path, e.g. He init or skips, is still exercised)."""
  config.max_train_examples = 512
  config.max_test_examples = 256
  config.seeds = tuple(config.seeds)[:1]
  models = list(config.models)
  if len(models) > keep:
    picks = sorted({round(i * (len(models) - 1) / (keep - 1)) for i in range(keep)})
    models = [models[i] for i in picks]
  config.models = [
    dict(m, depth=min(m["depth"], RUNLOCAL_MAX_DEPTH)) if "depth" in m else m for m in models
  ]
  config.keep_checkpoints = False  # Orbax resume has its own tests (tests/test_train.py)
  config.train.num_epochs = 1
  config.train.steps_per_epoch = 1
  config.train.batch_size = 32
  config.train.eval_batch_size = 256
  config.train.log_every = 1
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = base_config()
  config.models = [
    dict(name="butterfly", radix=2, depth=10, skip=True),
    dict(name="parallel_butterfly", radix=2, width=4, depth=10, skip=True),
    dict(name="random", fan_in=8, depth=2, seed=0, skip=True),
  ]
  return runlocal(config, keep=2) if arg == "runlocal" else config
