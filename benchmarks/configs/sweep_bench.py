"""``benchmarks/sweep_bench.py``: M models trained as one vmapped program vs one after another.

Command::

  python benchmarks/sweep_bench.py                            # 8 radix-2 butterflies, n=1024
  python benchmarks/sweep_bench.py --config.name=dense --config.steps=20
  python benchmarks/sweep_bench.py --config=benchmarks/configs/sweep_bench.py:smoke   # CI

Runtime on 2 CPU cores: not timed end to end (two compilations, the M-model program and the
one-model program, dominate at these sizes); ``:smoke`` (2 models, n=32, inputs 32 wide,
2 steps) takes seconds.
Result: examples/s of each side and their ratio (the measured numbers: benchmarks/README.md).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The models and steps timed on each side."""
  config = ml_collections.ConfigDict()
  config.models = 8  # models M per side
  config.name = "butterfly"  # topology family, or dense (the nn.Dense baseline)
  config.n = 1024  # hidden width
  config.radix = 2  # radix, for the families that take one
  config.depth = 10  # sublayers per cascade
  config.skip = True  # skip connections
  config.batch_size = 128  # examples per step per model
  config.steps = 10  # timed steps per model
  config.d_in = 784  # input width of the synthetic data (Fashion-MNIST's)
  if arg == "smoke":
    config.models, config.n, config.steps, config.batch_size, config.depth = 2, 32, 2, 16, 2
    config.d_in = 32
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
