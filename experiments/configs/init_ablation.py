"""Init ablation at depth 32: the depth-aware init against per-sublayer He, Glorot and the
dense layer's LeCun init, on the cascades where they differ.

Why mostly cascades with skips: for a square stage without skips the depth-aware variance is
``1 / fan_in``, which is per-sublayer LeCun, and equals per-sublayer Glorot whenever every
input feeds ``fan_in`` outputs (butterfly, block-diagonal, random fixed fan-in; not Clos,
whose stages change width); ``tests/test_layers.py`` checks this. Without skips the inits then
differ only in distribution (the depth-aware one draws orthogonal blocks, the others Gaussian
ones) and in He's ``2 / fan_in`` (the variance doubles per stage) and ``lecun_dense``'s
``1 / n_in`` (it vanishes); one skip-free butterfly measures that. With identity skips the
variances differ too: the depth-aware init shrinks each stage so that the cascade's gain, skip
included, stays bounded.

Models: butterfly (radix 2), parallel butterfly (radix 2, width 2) and block-diagonal (block
2), each with skip at 32 sublayers per cascade, and butterfly without skip, under the four
inits ``depth_aware``, ``he``, ``glorot`` and ``lecun_dense``, 2 seeds: 32 models, on the space
benchmark's recipe (validation split, learning rate 3e-3, 4 epochs), so selection and the
reported numbers follow the same protocol.

Command::

  python experiments/main.py --workdir=runs/init_ablation \
      --config=experiments/configs/init_ablation.py

Expected runtime on 2 CPU cores: about 30 minutes (16 groups of 2 depth-32 models).
Expected result (measured 2026-12-02, experiments/README.md): the depth-aware init beats He
by about 10 points and Glorot by about 7 (test, paired over cascade and seed); lecun_dense
equals it with skips and stays at chance without.
"""

from __future__ import annotations

from configs import default, space_benchmark

DEPTH_DEEP = 32
INITS = ("depth_aware", "he", "glorot", "lecun_dense")
CASCADES = (
  dict(name="butterfly", radix=2, depth=DEPTH_DEEP, skip=True),
  dict(name="parallel_butterfly", radix=2, width=2, depth=DEPTH_DEEP, skip=True, seed=0),
  dict(name="block_diagonal", radix=2, depth=DEPTH_DEEP, skip=True),
  dict(name="butterfly", radix=2, depth=DEPTH_DEEP, skip=False),
)


def get_config(arg: str | None = None):
  config = default.base_config()
  config.seeds = (0, 1)
  config.models = [dict(c, weight_init=init) for c in CASCADES for init in INITS]
  config.include_dense = False
  config.train.num_epochs = space_benchmark.NUM_EPOCHS
  config.train.learning_rate = space_benchmark.LEARNING_RATE
  return default.runlocal(config, keep=2) if arg == "runlocal" else config
