"""Runs ZigZag (``zigzag-dse`` 3.9.1) on dense GEMMs for the side-by-side with ``nf_jax.hw``.

ZigZag needs its own virtual environment (it pins its own dependencies, and imports ``six``
without declaring it)::

  python3 -m venv /work/zz-venv && /work/zz-venv/bin/pip install zigzag-dse==3.9.1 six
  /work/zz-venv/bin/python scripts/zigzag_oracle.py --case 256,1024,1024,32,32,256,256,128,256

It only needs the standard library and ``zigzag``, so it never imports ``nf_jax``. Each case is a
GEMM ``ofmap[M, N] = ifmap[M, K] @ filter[K, N]`` (ZigZag layer ``O[b][k] += I[b][c] * W[c][k]``
with ``B = M``, ``K = N``, ``C = K``) on a weight-stationary ``rows x cols`` int8 array modelled
after ZigZag's ``tpu_like`` example: one weight and one output register per PE, then three SRAMs
(ifmap, filter, ofmap; KiB given per case) shared by the whole array, then DRAM with a bandwidth
in bits per cycle. Energies per access are passed in (the caller uses ``nf_jax.hw.energy``'s, so
both tools price the same events). Outputs and partial sums are 8-bit, like nf_jax.hw's words.

``--case M,N,K,rows,cols,ifmap_kb,filter_kb,ofmap_kb,dram_bits[,mac_pj,if_pj,fl_pj,of_pj,
dram64_pj]`` (or ``--cases_json`` with a list of such dicts) prints one JSON line per case:
``latency_cycles`` (ZigZag's ``latency_total2``), ``ideal_cycles``, ``energy_pj``,
``mac_energy_pj``, ``dram_bits`` (every access to the DRAM level) and the seconds ZigZag took.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import tempfile
import time


def _memory(
  name: str,
  bits: int,
  operands: list[str],
  served: list[str],
  width: int,
  max_width: int,
  r_pj: float,
  w_pj: float,
) -> str:
  allocs_r = "".join(
    f"\n          - {o}, tl" + (f"\n          - {o}, th" if o == "O" else "") for o in operands
  )
  allocs_w = "".join(
    f"\n          - {o}, fh" + (f"\n          - {o}, fl" if o == "O" else "") for o in operands
  )
  return f"""
  {name}:
    size: {bits}
    r_cost: {r_pj}
    w_cost: {w_pj}
    area: 0
    latency: 1
    operands: [{", ".join(operands)}]
    ports:
      - name: r_port_1
        type: read
        bandwidth_min: {width}
        bandwidth_max: {max_width}
        allocation: {allocs_r}
      - name: w_port_1
        type: write
        bandwidth_min: {width}
        bandwidth_max: {max_width}
        allocation: {allocs_w}
    served_dimensions: [{", ".join(served)}]
"""


def hardware_yaml(c: dict) -> str:
  """ZigZag accelerator description of one case (see module docstring)."""
  # SRAM ports: 8-bit minimum access (one word, priced at the per-word cost) up to 4096 words a
  # cycle (nf_jax.hw never limits SRAM bandwidth). DRAM: one fixed port width equal to the case's
  # bits per cycle (ZigZag then counts DRAM accesses in that unit), priced per 64 bits.
  big = 8 * 4096
  dram_w = int(c["dram_bits"])
  mems = [
    _memory("reg_w", 16, ["I2"], [], 8, 8, 0.0, 0.0),  # double-buffered weight (TPU-like)
    _memory("reg_o", 16, ["O"], [], 8, 8, 0.0, 0.0),
    _memory(
      "sram_if", int(c["ifmap_kb"] * 8192), ["I1"], ["D1", "D2"], 8, big, c["if_pj"], c["if_pj"]
    ),
    _memory(
      "sram_fl", int(c["filter_kb"] * 8192), ["I2"], ["D1", "D2"], 8, big, c["fl_pj"], c["fl_pj"]
    ),
    _memory(
      "sram_of", int(c["ofmap_kb"] * 8192), ["O"], ["D1", "D2"], 8, big, c["of_pj"], c["of_pj"]
    ),
  ]
  dram_pj = c["dram64_pj"] * dram_w / 64
  dram = f"""
  dram:
    size: 10000000000000
    r_cost: {dram_pj}
    w_cost: {dram_pj}
    area: 0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - name: rw_port_1
        type: read_write
        bandwidth_min: {dram_w}
        bandwidth_max: {dram_w}
        allocation:
          - I1, fh
          - I1, tl
          - I2, fh
          - I2, tl
          - O, fh
          - O, tl
          - O, fl
          - O, th
    served_dimensions: [D1, D2]
"""
  return f"""name: nf_jax_case
memories:{"".join(mems)}{dram}
operational_array:
  unit_energy: {c["mac_pj"]}
  unit_area: 1
  dimensions: [D1, D2]
  sizes: [{c["cols"]}, {c["rows"]}]
  systolic_dimensions: [D1, D2]
"""


def mapping_yaml(c: dict) -> str:
  return f"""- name: default
  spatial_mapping:
    D1:
      - K, {c["cols"]}
    D2:
      - C, {c["rows"]}
  memory_operand_links:
    O: O
    W: I2
    I: I1
"""


def run_case(c: dict) -> dict:
  from zigzag.api import get_hardware_performance_zigzag  # noqa: PLC0415

  layer = {
    "id": 0,
    "name": "gemm",
    "operator_type": "Gemm",
    "equation": "O[b][k]+=I[b][c]*W[c][k]",
    "loop_dims": ["B", "K", "C"],
    "loop_sizes": [int(c["M"]), int(c["N"]), int(c["K"])],
    "operand_precision": {"I": 8, "W": 8, "O": 8, "O_final": 8},
    "operand_source": {"I": 0},
  }
  with tempfile.TemporaryDirectory() as tmp:
    hw_path, map_path = os.path.join(tmp, "hw.yaml"), os.path.join(tmp, "map.yaml")
    with open(hw_path, "w") as f:
      f.write(hardware_yaml(c))
    with open(map_path, "w") as f:
      f.write(mapping_yaml(c))
    logging.disable(logging.CRITICAL)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
      energy, latency, cmes = get_hardware_performance_zigzag(
        [layer],
        hw_path,
        map_path,
        opt="latency",
        dump_folder=os.path.join(tmp, "out"),
        loma_show_progress_bar=False,
      )
    seconds = time.perf_counter() - t0
  cme = cmes[0][0]
  dram_w = int(c["dram_bits"])
  dram_bits = 0.0
  for levels in cme.memory_word_access.values():
    top = levels[-1]
    dram_bits += dram_w * sum(top.data.values())  # all four directions
  return dict(
    case=c,
    latency_cycles=float(latency),
    ideal_cycles=float(cme.ideal_cycle),
    energy_pj=float(energy),
    mac_energy_pj=float(cme.mac_energy),
    dram_bits=float(dram_bits),
    zigzag_seconds=seconds,
  )


FIELDS = (
  "M",
  "N",
  "K",
  "rows",
  "cols",
  "ifmap_kb",
  "filter_kb",
  "ofmap_kb",
  "dram_bits",
  "mac_pj",
  "if_pj",
  "fl_pj",
  "of_pj",
  "dram64_pj",
)
DEFAULT_PJ = (0.3, 1.25, 1.25, 1.25, 1950.0)  # nf_jax.hw.energy at 45 nm, int8, 64 KiB SRAM


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--case", action="append", default=[], help=",".join(FIELDS))
  p.add_argument("--cases_json", help="a JSON list of case dicts (keys as --case)")
  a = p.parse_args()
  cases = []
  for spec in a.case:
    vals = [float(x) for x in spec.split(",")]
    if len(vals) == 9:
      vals += list(DEFAULT_PJ)
    if len(vals) != len(FIELDS):
      raise SystemExit(f"--case={spec!r} needs {len(FIELDS)} (or 9) values: {','.join(FIELDS)}")
    cases.append(dict(zip(FIELDS, vals)))
  if a.cases_json:
    with open(a.cases_json) as f:
      cases += json.load(f)
  for c in cases:
    for key in ("M", "N", "K", "rows", "cols"):
      c[key] = int(c[key])
    print(json.dumps(run_case(c)), flush=True)


if __name__ == "__main__":
  main()
