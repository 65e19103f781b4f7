"""``python -m nf_jax.topology_report``: path statistics and a path-count heat map per topology.

Command::

  python -m nf_jax.topology_report --workdir=runs/topology \\
      --config.families=butterfly,parallel_butterfly,clos,random --config.n=1024

Runtime on 2 CPU cores: seconds at n=1024 (the path counts are streamed; n=16384 takes a few
seconds per butterfly).
Result: one printed row per topology (depth, fan-in, parameters, density, connectivity, paths
per pair: mean, min, max, cv, entropy) and, in ``--workdir``, ``metrics.json``, ``<family>.png``
(the path-count heat map, block-averaged to at most 256 x 256) and ``heatmaps.png`` (all side by
side). The radix-2 butterfly has exactly one path per (input, output) pair.

Each family takes the parameters it accepts (``nf_jax.topology.family(name).params``) from the
fields below; a field left ``None`` takes the family's default. Setting one that none of
``families`` accepts is refused.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The report's topologies; ``arg="smoke"`` is two families at n=256."""
  config = ml_collections.ConfigDict()
  config.families = ("butterfly", "parallel_butterfly", "clos", "random")
  config.n = 1024  # output width
  config.n_in = config_dict.placeholder(int)  # input width (None: n)
  config.radix = config_dict.placeholder(int)  # radix / switch size / block size
  config.depth = config_dict.placeholder(int)  # stages (None: the family default)
  config.width = config_dict.placeholder(int)  # parallel branches / Clos middle switches
  config.fan_in = 4  # fan-in of the random family
  config.seed = config_dict.placeholder(int)  # wiring seed of the seeded families
  config.skip = False  # identity skip connections
  if arg == "smoke":
    config.families, config.n = ("butterfly", "random"), 256
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
