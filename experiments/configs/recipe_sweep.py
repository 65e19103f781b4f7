"""The recipe sweep: the models on which the benchmark's learning rate is chosen.

The dense baseline and three cascade families of the co-design space at width 1024 (radix-2
butterfly depth 10 with skip, Clos 32x32, random fan-in 8 depth 2), one seed, 4 epochs (the
benchmark's budget). ``experiments/select_recipe.py`` trains it at several learning rates and
picks the one with the best mean *validation* accuracy.

Command (one learning rate; select_recipe.py runs them all)::

  python experiments/main.py --workdir=runs/recipe --config=experiments/configs/recipe_sweep.py

Expected runtime on 2 CPU cores: about 3 minutes per learning rate.
Expected result: dense about 89% validation accuracy at the chosen rate; the cascades 1-5
points below.
"""

from __future__ import annotations

from configs import default


def get_config(arg: str | None = None):
  config = default.base_config()
  config.seeds = (0,)
  config.models = [
    dict(name="butterfly", radix=2, depth=10, skip=True),
    dict(name="clos", radix=32, width=32, skip=False),
    dict(name="random", fan_in=8, depth=2, skip=False),
  ]
  config.train.num_epochs = 4
  return default.runlocal(config, keep=2) if arg == "runlocal" else config
