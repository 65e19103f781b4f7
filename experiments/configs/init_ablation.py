"""Init ablation alone: depth-aware vs per-sublayer He init at depth 32 (a subset of the
topology study, same settings, so its rows can be merged with the study's).

Butterfly (radix 2) with and without skip, parallel butterfly (width 2) with skip and
block-diagonal (block 2) without skip, each at 32 sublayers per cascade, both inits, 3 seeds:
24 models.

Command::

  python experiments/main.py --workdir=runs/init_ablation \
      --config=experiments/configs/init_ablation.py

Expected runtime on 2 CPU cores: about a quarter of the topology study's deep groups; see
experiments/README.md for the measured per-epoch costs.
Expected result: the depth-aware init trains at depth 32 (within a few points of the depth-10
cascades of the study); He without skips diverges (NaN rows) or stays near chance, since its
signal variance grows like 2^32 through the cascade.
"""

from __future__ import annotations

from configs import default, topology_study


def get_config(arg: str | None = None):
  config = topology_study.get_config()
  he = topology_study.init_ablation()
  config.models = he + [dict(entry, weight_init="depth_aware") for entry in he]
  config.include_dense = False
  return default.runlocal(config, keep=2) if arg == "runlocal" else config
