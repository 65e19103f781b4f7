"""Side-by-side of ``nf_jax.hw``'s mapper with ZigZag on dense GEMMs (weight-stationary, int8).

Runs ``scripts/zigzag_oracle.py`` in ZigZag's own venv (``--zigzag_python``, default
``/work/zz-venv/bin/python``; see that script for the install line) on LAYERS x CONFIGS, with the
per-access energies of :mod:`nf_jax.hw.energy` so both tools price the same events, and prints,
per case, latency (cycles), DRAM traffic (bits) and energy (pJ) from both and their ratios.

  python scripts/zigzag_compare.py                   # 21 layers x 3 configs, a few minutes
  python scripts/zigzag_compare.py --quick           # 2 cases (what the test runs)
  python scripts/zigzag_compare.py --out side_by_side.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from nf_jax import hw
from nf_jax.hw import energy as E

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "scripts", "zigzag_oracle.py")
ZZ_PYTHON = os.environ.get("NF_JAX_ZIGZAG_PYTHON", "/work/zz-venv/bin/python")

# (M, N, K): compute-bound (large batch), memory-bound (batch <= 8) and small-batch layers.
LAYERS = (
  [
    ("compute", m, n, k)
    for m, n, k in [
      (256, 1024, 1024),
      (512, 512, 512),
      (1024, 256, 512),
      (256, 2048, 512),
      (512, 1024, 256),
      (1024, 1024, 1024),
      (256, 512, 2048),
    ]
  ]
  + [
    ("memory", m, n, k)
    for m, n, k in [
      (1, 2048, 2048),
      (4, 2048, 2048),
      (8, 1024, 4096),
      (2, 4096, 1024),
      (1, 1024, 1024),
      (8, 2048, 2048),
      (4, 4096, 4096),
    ]
  ]
  + [
    ("small_batch", m, n, k)
    for m, n, k in [
      (16, 1024, 1024),
      (32, 512, 2048),
      (64, 1024, 512),
      (16, 2048, 2048),
      (32, 1024, 1024),
      (64, 512, 512),
      (16, 512, 4096),
    ]
  ]
)
# (rows, cols, ifmap KiB, filter KiB, ofmap KiB, DRAM GB/s) at 1 GHz, int8, ws, 45 nm.
CONFIGS = [
  (16, 16, 64, 64, 32, 8.0),
  (32, 32, 256, 256, 128, 32.0),
  (64, 64, 1024, 1024, 512, 128.0),
]


def case(layer: tuple, config: tuple) -> dict:
  _, m, n, k = layer
  r, c, a, b, o, bw = config
  return dict(
    M=m,
    N=n,
    K=k,
    rows=r,
    cols=c,
    ifmap_kb=a,
    filter_kb=b,
    ofmap_kb=o,
    dram_bits=int(bw * 8),
    mac_pj=float(E.mac_pj(0, 45.0)),
    if_pj=float(E.sram_word_pj(a, 0, 45.0)),
    fl_pj=float(E.sram_word_pj(b, 0, 45.0)),
    of_pj=float(E.sram_word_pj(o, 0, 45.0)),
    dram64_pj=float(E.DRAM_64_PJ),
  )


def ours(cases: list[dict]) -> list[dict]:
  cfg = hw.make_config(
    rows=[c["rows"] for c in cases],
    cols=[c["cols"] for c in cases],
    dataflow="ws",
    precision="int8",
    ifmap_sram_kb=[c["ifmap_kb"] for c in cases],
    filter_sram_kb=[c["filter_kb"] for c in cases],
    ofmap_sram_kb=[c["ofmap_kb"] for c in cases],
    dram_bw_gbs=[c["dram_bits"] / 8.0 for c in cases],
    clock_ghz=1.0,
    tech_nm=45.0,
  )
  m, n, k = (np.array([c[x] for c in cases]) for x in "MNK")
  out = hw.map_gemm(cfg, m, n, k)
  words = out["dram_read_a"] + out["dram_read_b"] + out["dram_read_c"] + out["dram_write"]
  macs = m.astype(np.float64) * n * k
  energy = out["energy_pj"] + macs * float(E.mac_pj(0, 45.0))
  return [
    dict(
      latency_cycles=float(out["cycles"][i]),
      dram_bits=float(8 * words[i]),
      energy_pj=float(energy[i]),
      order=hw.mapper.ORDERS[out["order"][i]],
      tiles=(float(out["tile_m"][i]), float(out["tile_n"][i]), float(out["tile_k"][i])),
    )
    for i in range(len(cases))
  ]


def run_zigzag(cases: list[dict], python: str) -> list[dict]:
  with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(cases, f)
  try:
    proc = subprocess.run(
      [python, ORACLE, "--cases_json", f.name],
      capture_output=True,
      text=True,
      check=True,
      timeout=3600,
    )
  finally:
    os.unlink(f.name)
  return [json.loads(line) for line in proc.stdout.strip().splitlines()]


def compare(layers: list, configs: list, python: str = ZZ_PYTHON) -> list[dict]:
  kinds = [lay[0] for lay in layers for _ in configs]
  cases = [case(lay, cfg) for lay in layers for cfg in configs]
  zz, us = run_zigzag(cases, python), ours(cases)
  rows = []
  for kind, c, z, u in zip(kinds, cases, zz, us):
    rows.append(
      dict(
        kind=kind,
        case=c,
        zigzag=z,
        ours=u,
        latency_ratio=u["latency_cycles"] / z["latency_cycles"],
        dram_ratio=u["dram_bits"] / z["dram_bits"],
        energy_ratio=u["energy_pj"] / z["energy_pj"],
      )
    )
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--zigzag_python", default=ZZ_PYTHON)
  p.add_argument("--quick", action="store_true")
  p.add_argument("--out")
  a = p.parse_args()
  if not os.path.exists(a.zigzag_python):
    sys.exit(f"no ZigZag venv at {a.zigzag_python}; see scripts/zigzag_oracle.py")
  layers, configs = (LAYERS[:1] + LAYERS[7:8], CONFIGS[1:2]) if a.quick else (LAYERS, CONFIGS)
  rows = compare(layers, configs, a.zigzag_python)
  print(
    f"{'kind':<12}{'M,N,K':<16}{'array':<7}{'lat ours/zz':>12}{'dram ours/zz':>13}"
    f"{'energy ours/zz':>15}  ours order, tiles"
  )
  for r in rows:
    c = r["case"]
    print(
      f"{r['kind']:<12}{c['M']},{c['N']},{c['K']:<8}{c['rows']}x{c['cols']:<4}"
      f"{r['latency_ratio']:>12.3f}{r['dram_ratio']:>13.3f}{r['energy_ratio']:>15.3f}  "
      f"{r['ours']['order']} {r['ours']['tiles']}"
    )
  for kind in ("compute", "memory", "small_batch"):
    sel = [r for r in rows if r["kind"] == kind]
    if sel:
      lat = np.array([r["latency_ratio"] for r in sel])
      dram = np.array([r["dram_ratio"] for r in sel])
      en = np.array([r["energy_ratio"] for r in sel])
      print(
        f"{kind}: latency ratio median {np.median(lat):.3f} [{lat.min():.3f}, {lat.max():.3f}]"
        f"; DRAM median {np.median(dram):.3f} [{dram.min():.3f}, {dram.max():.3f}]"
        f"; energy median {np.median(en):.3f} [{en.min():.3f}, {en.max():.3f}]"
      )
  if a.out:
    with open(a.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
