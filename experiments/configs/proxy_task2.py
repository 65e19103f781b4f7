"""The second task for the data-free score validation (issue 5): a different width and input.

Fashion-MNIST average-pooled 2x2 (14x14 = 196 inputs), hidden width ``n = 256`` (the main study
uses 28x28 inputs and ``n = 1024``), 2 hidden cascade layers, 19 distinct topologies from every
family (densities 3.1% to 25% of a dense 256 x 256 layer, depths 2 to 16, a few with skip),
the dense baseline, 2 seeds, 3 epochs. ``experiments/validate_proxy.py`` correlates the scores
of the 256-wide hidden topologies with these accuracies.

Command::

  python experiments/main.py --workdir=runs/proxy_task2 \\
      --config=experiments/configs/proxy_task2.py

Expected runtime on 2 CPU cores: about 15 minutes (20 configurations x 2 seeds at 1/16 of the
study's per-layer cost; most of it compiles).
Expected result: dense about 87-88% (lower resolution than the main study); cascades a few
points below, ordered mostly by density.
"""

from __future__ import annotations

from configs import default


def get_config(arg: str | None = None):
  config = default.base_config()
  config.pool = 2
  config.n = 256
  config.seeds = (0, 1)
  config.models = [
    dict(name="butterfly", radix=2, depth=8),
    dict(name="butterfly", radix=2, depth=8, skip=True),
    dict(name="butterfly", radix=4, depth=4),
    dict(name="butterfly", radix=16, depth=2),
    dict(name="butterfly", radix=2, depth=16, skip=True),
    dict(name="parallel_butterfly", radix=2, width=2, depth=8, seed=0),
    dict(name="parallel_butterfly", radix=2, width=2, depth=8, skip=True, seed=0),
    dict(name="parallel_butterfly", radix=2, width=4, depth=8, skip=True, seed=0),
    dict(name="parallel_butterfly", radix=16, width=2, depth=2, seed=0),
    dict(name="random", fan_in=4, depth=2, seed="train_seed"),
    dict(name="random", fan_in=16, depth=2, seed="train_seed"),
    dict(name="random", fan_in=2, depth=8, seed="train_seed"),
    dict(name="block_diagonal", radix=16, depth=2),
    dict(name="block_diagonal", radix=4, depth=4),
    dict(name="block_diagonal", radix=2, depth=8),
    dict(name="block_diagonal", radix=2, depth=8, skip=True),
    dict(name="clos", radix=16, width=4),
    dict(name="clos", radix=16, width=8),
    dict(name="clos", radix=16, width=16),
  ]
  config.train.num_epochs = 3
  config.train.learning_rate = 1e-3
  return default.runlocal(config, keep=3) if arg == "runlocal" else config
