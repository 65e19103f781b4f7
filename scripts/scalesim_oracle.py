"""Runs real SCALE-Sim 3.0.0 over a committed case list and writes its numbers as JSON.

SCALE-Sim 3.0.0 (PyPI ``scalesim``) crashes under numpy >= 2.4 (upstream issue #160), so run this
script from a separate virtual environment::

  python3 -m venv /tmp/ssvenv && /tmp/ssvenv/bin/pip install scalesim==3.0.0 'numpy<2.4'
  /tmp/ssvenv/bin/python scripts/scalesim_oracle.py --out tests/data/scalesim_oracle.json

It only needs the standard library and ``scalesim``, so it never imports ``nf_jax``. Each case is a
GEMM ``(M, N, K)`` on a ``rows x cols`` array with dataflow ``os``/``ws``/``is``, written in
SCALE-Sim's GEMM topology format (``Layer, M, N, K,``); SCALE-Sim maps it onto a convolution with
ifmap ``M x K`` (1 channel), filter ``1 x K`` and ``N`` filters, so the operand matrices are
ifmap ``[M, K]``, filter ``[K, N]`` and ofmap ``[M, N]``. ``mode`` is ``CALC`` (compute-bound,
stall-free reads) or ``USER`` (a user DRAM bandwidth in words/cycle).

``--case M,N,K,rows,cols,df[,mode,bw,sram_kb]`` runs one case and prints its JSON (tests and
benchmarks use this to run SCALE-Sim live through a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

# The committed case list: square and non-square arrays, sizes that divide and sizes that do not,
# degenerate 1-wide dimensions, and operands larger than the array in every direction.
SHAPES = [
  (1, 1, 1),
  (1, 8, 8),
  (8, 1, 8),
  (8, 8, 1),
  (4, 4, 4),
  (7, 5, 3),
  (16, 16, 16),
  (17, 9, 33),
  (32, 20, 12),
  (5, 40, 23),
  (64, 10, 64),
  (31, 64, 7),
  (100, 3, 50),
]
ARRAYS = [(1, 1), (4, 4), (8, 8), (4, 8), (8, 3), (16, 5), (2, 32)]
DATAFLOWS = ["os", "ws", "is"]
# A few co-design-sized GEMMs (each takes SCALE-Sim seconds), all three dataflows.
LARGE = [
  (256, 256, 256, 32, 32, "os"),
  (256, 256, 256, 32, 32, "ws"),
  (256, 256, 256, 32, 32, "is"),
  (200, 130, 90, 24, 40, "os"),
  (200, 130, 90, 24, 40, "ws"),
  (200, 130, 90, 24, 40, "is"),
]
# Bandwidth-limited (USER-mode) cases: (M, N, K, rows, cols, dataflow, bw words/cycle, SRAM kB).
USER_CASES = [
  (32, 32, 32, 8, 8, "os", 1, 1),
  (32, 32, 32, 8, 8, "ws", 1, 1),
  (32, 32, 32, 8, 8, "is", 1, 1),
  (64, 48, 40, 8, 4, "os", 2, 1),
  (64, 48, 40, 8, 4, "ws", 2, 1),
  (64, 48, 40, 8, 4, "is", 2, 1),
  (32, 32, 32, 8, 8, "ws", 10, 64),
  (20, 30, 40, 4, 4, "os", 4, 2),
]

CONFIG = """[general]
run_name = nfjax

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {sram_kb}
FilterSramSzkB: {sram_kb}
OfmapSramSzkB: {sram_kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : {bw}
Dataflow : {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def run_case(
  m: int,
  n: int,
  k: int,
  rows: int,
  cols: int,
  df: str,
  mode: str = "CALC",
  bw: int = 10,
  sram_kb: int = 64,
) -> dict:
  """Runs SCALE-Sim once on GEMM (m, n, k) and returns its report numbers."""
  from scalesim.scale_sim import scalesim  # noqa: PLC0415 (only importable inside the venv)

  with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "cfg.cfg")
    topo = os.path.join(tmp, "gemm.csv")
    # SCALE-Sim always parses a layout file; with custom layouts off it is never read further.
    layout = os.path.join(tmp, "layout.csv")
    with open(layout, "w") as f:
      f.write("Layer,\ng0,\n")
    with open(cfg, "w") as f:
      f.write(CONFIG.format(rows=rows, cols=cols, df=df, mode=mode, bw=bw, sram_kb=sram_kb))
    with open(topo, "w") as f:
      f.write(f"Layer, M, N, K,\ng0, {m}, {n}, {k},\n")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
      sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=cfg,
        topology=topo,
        layout=layout,
        input_type_gemm=True,
      )
      sim.run_scale(top_path=tmp)
    seconds = time.perf_counter() - t0
    layer = sim.runner.single_layer_sim_object_list[0]
    overall, total, stalls, util, mapping, compute_util = layer.get_compute_report_items()
    detail = layer.get_detail_report_items()
  return {
    "M": m,
    "N": n,
    "K": k,
    "rows": rows,
    "cols": cols,
    "dataflow": df,
    "mode": mode,
    "bandwidth": bw,
    "sram_kb": sram_kb,
    "total_cycles": int(total),
    "stall_cycles": int(stalls),
    "overall_cycles": int(overall),
    "overall_util": float(util),
    "mapping_efficiency": float(mapping),
    "compute_util": float(compute_util),
    "ifmap_sram_reads": int(detail[2]),
    "filter_sram_reads": int(detail[5]),
    "ofmap_sram_writes": int(detail[8]),
    "ifmap_dram_reads": int(detail[11]),
    "filter_dram_reads": int(detail[14]),
    "ofmap_dram_writes": int(detail[17]),
    "scalesim_seconds": seconds,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="tests/data/scalesim_oracle.json")
  parser.add_argument("--case", default=None, help="M,N,K,rows,cols,df[,mode,bw,sram_kb]")
  args = parser.parse_args()
  if args.case:
    p = args.case.split(",")
    extra = [p[6]] if len(p) > 6 else []
    extra += [int(x) for x in p[7:9]]
    print(json.dumps(run_case(*map(int, p[:5]), p[5], *extra)))
    return
  import numpy  # noqa: PLC0415
  import scalesim  # noqa: PLC0415,F401

  cases = [(*s, *a, d) for s in SHAPES for a in ARRAYS for d in DATAFLOWS] + LARGE
  results, failures = [], []
  for i, c in enumerate(cases):
    try:
      results.append(run_case(*c))
    except ZeroDivisionError as e:  # SCALE-Sim divides by total_cycles, which can be 0.
      failures.append({"case": list(c), "error": f"{type(e).__name__}: {e}"})
    print(f"\r[{i + 1}/{len(cases)}] CALC", end="", file=sys.stderr, flush=True)
  print(file=sys.stderr)
  for i, (m, n, k, r, c, d, bw, kb) in enumerate(USER_CASES):
    results.append(run_case(m, n, k, r, c, d, "USER", bw, kb))
    print(f"\r[{i + 1}/{len(USER_CASES)}] USER", end="", file=sys.stderr, flush=True)
  print(file=sys.stderr)
  for r in results:
    r.pop("scalesim_seconds")
  payload = {
    "generator": "scripts/scalesim_oracle.py",
    "scalesim_version": "3.0.0",
    "numpy_version": numpy.__version__,
    "cases": results,
    "scalesim_failures": failures,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  tmp = args.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1)
  os.replace(tmp, args.out)
  print(f"wrote {len(results)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
  main()
