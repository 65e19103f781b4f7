"""``benchmarks/hw_bench.py``: nf_jax.hw config evaluations per minute vs SCALE-Sim 3.0.0.

Command::

  python benchmarks/hw_bench.py                                   # the full run
  python benchmarks/hw_bench.py --config.scalesim=False           # the JAX half only
  python benchmarks/hw_bench.py --config=benchmarks/configs/hw_bench.py:smoke   # CI

Runtime on 2 CPU cores: about a minute with the SCALE-Sim venv (``scalesim_python``; SCALE-Sim's
own runs dominate); ``:smoke`` takes seconds.
Result: the mapper's latency over its lower bound (distribution), configs/min of both mappings,
SCALE-Sim's seconds per config and the speed ratio, and exact agreement of the cycle and SRAM
counts (goals and measured numbers: benchmarks/README_hw.md).
"""

from __future__ import annotations

import os

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The workload, population sizes and SCALE-Sim cases."""
  config = ml_collections.ConfigDict()
  config.gemm = (256, 256, 256)  # M, N, K
  config.population = 100_000  # random configs per simulate call
  config.repeats = 3  # timed calls; the best is reported
  config.mappings = ("scalesim", "latency")  # the mappings timed
  config.mapper_cases = 3000  # random (dense layer, config) pairs of the mapper's distribution
  config.mapper_huge_sram = True  # the mapper's pairs also draw very large SRAMs
  config.scalesim = True  # run the SCALE-Sim half (needs a runnable scalesim)
  config.scalesim_configs = ("32x32:os", "16x8:ws", "64x64:is")  # rows x cols : dataflow
  # scalesim 3.0.0 breaks under numpy >= 2.4: a venv with numpy < 2.4 (scripts/scalesim_oracle.py).
  config.scalesim_python = os.environ.get("NF_JAX_SCALESIM_PYTHON", "/tmp/ssvenv/bin/python")
  if arg == "smoke":
    config.gemm, config.population, config.repeats = (16, 16, 16), 256, 1
    config.mappings, config.mapper_cases, config.mapper_huge_sram = ("latency",), 64, False
    config.scalesim_configs = ("4x4:os", "4x8:ws")
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
