"""Dense MLP baseline: 784 -> 1024 -> 1024 -> 10 (ReLU, nn.Dense with He init), 3 seeds
trained together in one vmapped program.

Command::

  python experiments/main.py --workdir=runs/dense --config=experiments/configs/dense_baseline.py

Expected runtime on 2 CPU cores: about 2 minutes per epoch for the 3 seeds, measured under a
shared load (load average ~9), so about 15 minutes for 8 epochs; less on an idle machine.
Expected result: >= 89% test accuracy (mean over seeds), the issue's dense goal.
"""

from __future__ import annotations

from configs import default


def get_config(arg: str | None = None):
  config = default.base_config()
  config.seeds = (0, 1, 2)
  config.models = []
  config.train.num_epochs = 8
  return default.runlocal(config) if arg == "runlocal" else config
