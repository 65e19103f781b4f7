"""``python -m nf_jax.hw``: sweep a grid of accelerator configs for one workload.

Command::

  python -m nf_jax.hw --workdir=runs/hw --config.workload=mlp --config.topology=butterfly \\
      --config.n=1024 --config.batch=64

Runtime on 2 CPU cores: a few seconds for the default grid (250 configs: rows and cols
8..128, three dataflows, two precisions), most of it compiling.
Result: ``sweep.csv`` (one row per config: latency, throughput, power, area, energy per sample,
utilisation, stalls), ``meta.json``, ``throughput_vs_area.png`` and ``energy_vs_latency.png``
(each with its Pareto front) in ``--workdir``.

An empty grid axis (``()``) sweeps that axis's default values (:func:`nf_jax.hw.sweep.default_grid`
and :func:`nf_jax.hw.make_config`).
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The sweep's workload and grid; ``arg="smoke"`` is a 4-config GEMM sweep."""
  config = ml_collections.ConfigDict()
  config.workload = "gemm"  # gemm: one GEMM; mlp: dense-cascade-dense (n_in -> n -> n_out)
  config.gemm = (256, 256, 256)  # GEMM sizes M, N, K (workload=gemm)
  config.topology = "butterfly"  # cascade family, default parameters (workload=mlp)
  config.n = 1024  # cascade width (workload=mlp)
  config.n_in = 784  # input width (workload=mlp)
  config.n_out = 10  # output width (workload=mlp)
  config.batch = 64  # batch B for latency and throughput (workload=mlp)
  # Grid axes, each swept (empty: the default values).
  config.rows = ()  # array rows
  config.cols = ()  # array columns
  config.dataflow = ()  # os, ws, is
  config.precision = ()  # int8, fp16
  config.dram_bw_gbs = ()  # DRAM GB/s (inf: compute-bound)
  config.sram_kb = ()  # SRAM KiB of the ifmap and the filter buffer each
  config.clock_ghz = ()
  config.tech_nm = ()  # technology node
  # latency/energy: the mapper's best loop order and tiling per layer; scalesim: SCALE-Sim's
  # fold order (nf_jax.hw.simulate).
  config.mapping = "latency"
  # Energy/area figures: bare Horowitz, or scaled by factors fitted on published chips.
  config.calibration = "horowitz"
  if arg == "smoke":
    config.gemm = (32, 24, 40)
    config.rows, config.cols = (4, 8), (4,)
    config.dataflow, config.precision, config.dram_bw_gbs = ("os", "ws"), ("int8",), ("inf",)
  elif arg is not None:
    raise ValueError(f"unknown config variant {arg!r}; use :smoke or nothing")
  return config
