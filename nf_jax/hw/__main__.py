"""``python -m nf_jax.hw``: sweep a grid of accelerator configs for one workload.

Writes ``sweep.csv``, ``meta.json``, ``throughput_vs_area.png`` and ``energy_vs_latency.png`` to
``--workdir``. Example (a few seconds on 2 CPU cores, 250 configs)::

  python -m nf_jax.hw --workdir=runs/hw --workload=mlp --topology=butterfly --n=1024 --batch=64
"""

from __future__ import annotations

import time

from absl import app, flags, logging

from nf_jax.hw import sweep

FLAGS = flags.DEFINE_string("workdir", "runs/hw", "Where results go.")
_WL = flags.DEFINE_enum(
  "workload",
  "gemm",
  ["gemm", "mlp"],
  "gemm: one GEMM; mlp: dense-cascade-dense (n_in -> n -> n_out).",
)
_GEMM = flags.DEFINE_list("gemm", ["256", "256", "256"], "GEMM sizes M,N,K (workload=gemm).")
_TOPO = flags.DEFINE_string("topology", "butterfly", "Cascade family (workload=mlp).")
_N = flags.DEFINE_integer("n", 1024, "Cascade width (workload=mlp).")
_NIN = flags.DEFINE_integer("n_in", 784, "Input width (workload=mlp).")
_NOUT = flags.DEFINE_integer("n_out", 10, "Output width (workload=mlp).")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch B for latency/throughput (workload=mlp).")
_ROWS = flags.DEFINE_list("rows", [], "Array rows to sweep (default 8..128).")
_COLS = flags.DEFINE_list("cols", [], "Array cols to sweep (default 8..128).")
_DF = flags.DEFINE_list("dataflow", [], "Dataflows to sweep (default os,ws,is).")
_PREC = flags.DEFINE_list("precision", [], "Precisions to sweep (default int8,fp16).")
_BW = flags.DEFINE_list("dram_bw_gbs", [], "DRAM GB/s to sweep (default 16; inf = compute-bound).")
_SRAM = flags.DEFINE_list("sram_kb", [], "SRAM KiB (all three buffers) to sweep (default 256/128).")
_CLOCK = flags.DEFINE_list("clock_ghz", [], "Clocks to sweep (default 1.0).")
_NODE = flags.DEFINE_list("tech_nm", [], "Technology nodes to sweep (default 45).")
_MAPPING = flags.DEFINE_enum(
  "mapping",
  "latency",
  ["latency", "energy", "scalesim"],
  "latency/energy: the mapper's best loop order and tiling per layer; scalesim: SCALE-Sim's "
  "fold order (nf_jax.hw.simulate).",
)
_CALIB = flags.DEFINE_enum(
  "calibration",
  "horowitz",
  ["horowitz", "silicon"],
  "Energy/area figures: bare Horowitz, or scaled by factors fitted on published chips.",
)


def main(argv: list[str]) -> None:
  del argv
  wl = sweep.build_workload(
    _WL.value,
    _BATCH.value,
    [int(x) for x in _GEMM.value],
    _TOPO.value,
    _N.value,
    _NIN.value,
    _NOUT.value,
  )
  sram = [float(x) for x in _SRAM.value]
  cfg = sweep.default_grid(
    rows=[int(x) for x in _ROWS.value],
    cols=[int(x) for x in _COLS.value],
    dataflow=_DF.value,
    precision=_PREC.value,
    dram_bw_gbs=[float(x) for x in _BW.value],
    ifmap_sram_kb=sram,
    filter_sram_kb=sram,
    clock_ghz=[float(x) for x in _CLOCK.value],
    tech_nm=[float(x) for x in _NODE.value],
  )
  desc = (
    f"gemm {_GEMM.value}"
    if _WL.value == "gemm"
    else f"mlp {_NIN.value}->{_TOPO.value}({_N.value})->{_NOUT.value}, batch {_BATCH.value}"
  )
  t0 = time.perf_counter()
  rows = sweep.run_sweep(cfg, wl, mapping=_MAPPING.value, calibration=_CALIB.value)
  seconds = time.perf_counter() - t0
  logging.info("simulated %d configs in %.2f s (incl. compile)", len(rows), seconds)
  meta = dict(
    workload_desc=desc,
    num_configs=len(rows),
    seconds=seconds,
    macs_per_sample=wl.macs_per_sample,
    mapping=_MAPPING.value,
    calibration=_CALIB.value,
  )
  for path in sweep.write_results(rows, FLAGS.value, meta):
    print(path)


if __name__ == "__main__":
  app.run(main)
