"""Energy and area overhead factors fitted on published accelerators (``chips.csv``).

The per-operation figures of :mod:`nf_jax.hw.energy` cost a PE as a bare multiplier, adder and
registers [H14] and an SRAM as cells at 50 % array efficiency [M07]. Silicon adds wiring, control,
clock trees, pipeline registers, SRAM periphery and everything else on the die. Three factors
absorb that, fitted on the ``fit`` rows of :data:`CHIPS_CSV` and checked on the ``holdout`` rows:

* ``pe_area``: multiplies the PE array area (PE wiring, control, clocking and other logic);
* ``sram_area``: multiplies the SRAM area (periphery, banking, redundancy);
* ``mac_energy``: multiplies the energy of one MAC (clock tree, operand registers and local
  movement, control, and whatever else the published power includes).

The published figures cover the whole die (the table's scope columns say what each includes), so
the factors are "everything else per modelled unit", not the cost of the units alone. Area is
fitted by least squares on log(area) over a dense grid of the two factors (deterministic);
``mac_energy`` is the geometric mean of published / modelled energy per MAC over the fit rows.
``python -m nf_jax.hw.calibration`` refits from the table and prints the per-chip errors before
and after; :data:`nf_jax.hw.energy.CALIBRATED` holds the result (a test checks they agree).
"""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from nf_jax.hw import energy as E
from nf_jax.hw.config import PRECISIONS

CHIPS_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chips.csv")
_NUMERIC = ("node_nm", "pes", "clock_ghz", "sram_kb", "area_mm2", "power_w", "mac_per_s")


def load_chips(path: str = CHIPS_CSV) -> list[dict[str, Any]]:
  """Rows of the chip table with numeric fields parsed; ValueError naming the file and row."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  out = []
  for i, row in enumerate(rows, start=2):  # line 1 is the header
    chip = dict(row)
    for key in _NUMERIC:
      try:
        chip[key] = float(row[key])
      except (TypeError, ValueError):
        msg = f"{path}:{i} ({row.get('name')}): {key}={row.get(key)!r} is not a number"
        raise ValueError(msg) from None
      if not chip[key] > 0:
        raise ValueError(f"{path}:{i} ({row['name']}): {key}={chip[key]} must be positive")
    if row["precision"] not in PRECISIONS:
      raise ValueError(f"{path}:{i}: precision={row['precision']!r} is not one of {PRECISIONS}")
    if row["split"] not in ("fit", "holdout"):
      raise ValueError(f"{path}:{i}: split={row['split']!r} must be 'fit' or 'holdout'")
    chip["precision_code"] = PRECISIONS.index(row["precision"])
    out.append(chip)
  return out


def modelled(chip: dict[str, Any], factors: dict[str, float] | None = None) -> dict[str, float]:
  """The model's PE-array and SRAM area (mm^2) and energy per MAC (pJ) of a chip row."""
  f = dict(pe_area=1.0, sram_area=1.0, mac_energy=1.0) if factors is None else factors
  prec, node = chip["precision_code"], chip["node_nm"]
  pe = f["pe_area"] * chip["pes"] * float(E.pe_um2(prec, node)) * 1e-6
  sram = f["sram_area"] * float(E.sram_mm2(chip["sram_kb"], node))
  return dict(
    area_pe_mm2=pe,
    area_sram_mm2=sram,
    area_mm2=pe + sram,
    pj_per_mac=f["mac_energy"] * float(E.mac_pj(prec, node)),
  )


def published_pj_per_mac(chip: dict[str, Any]) -> float:
  return chip["power_w"] / chip["mac_per_s"] * 1e12


def fit(chips: list[dict[str, Any]]) -> dict[str, float]:
  """Fits the three factors on the ``fit`` rows (see module docstring)."""
  rows = [c for c in chips if c["split"] == "fit"]
  if len(rows) < 2:
    raise ValueError(f"need at least 2 'fit' chips to fit two area factors; got {len(rows)}")
  base = [modelled(c) for c in rows]
  pe = np.array([b["area_pe_mm2"] for b in base])
  sram = np.array([b["area_sram_mm2"] for b in base])
  target = np.log([c["area_mm2"] for c in rows])
  ks = np.logspace(-1.0, 2.0, 1201)  # factors 0.1 .. 100, 0.25 % steps
  pred = np.log(ks[:, None, None] * pe + ks[None, :, None] * sram)
  err = np.sum((pred - target) ** 2, axis=-1)
  i, j = np.unravel_index(np.argmin(err), err.shape)
  ratio = [published_pj_per_mac(c) / b["pj_per_mac"] for c, b in zip(rows, base)]
  return dict(
    pe_area=float(ks[i]), sram_area=float(ks[j]), mac_energy=float(np.exp(np.mean(np.log(ratio))))
  )


def report(chips: list[dict[str, Any]], factors: dict[str, float]) -> list[dict[str, Any]]:
  """Per chip: published vs modelled area and energy per MAC, before and after calibration."""
  out = []
  for c in chips:
    before, after = modelled(c), modelled(c, factors)
    pub_e = published_pj_per_mac(c)
    out.append(
      dict(
        name=c["name"],
        split=c["split"],
        area_mm2=c["area_mm2"],
        area_before=before["area_mm2"],
        area_after=after["area_mm2"],
        area_err_before=before["area_mm2"] / c["area_mm2"] - 1.0,
        area_err_after=after["area_mm2"] / c["area_mm2"] - 1.0,
        pj_per_mac=pub_e,
        pj_before=before["pj_per_mac"],
        pj_after=after["pj_per_mac"],
        energy_err_before=before["pj_per_mac"] / pub_e - 1.0,
        energy_err_after=after["pj_per_mac"] / pub_e - 1.0,
      )
    )
  return out


def main() -> None:
  chips = load_chips()
  factors = fit(chips)
  print("fitted factors:", {k: round(v, 4) for k, v in factors.items()})
  print("committed (nf_jax.hw.energy.CALIBRATED):", E.CALIBRATED)
  print(
    f"{'chip':<11} {'split':<8} {'area mm2':>9} {'model':>8} {'err':>7} {'calib':>8} {'err':>7}"
    f" {'pJ/MAC':>8} {'model':>7} {'err':>7} {'calib':>7} {'err':>7}"
  )
  for r in report(chips, factors):
    print(
      f"{r['name']:<11} {r['split']:<8} {r['area_mm2']:>9.2f} {r['area_before']:>8.2f} "
      f"{100 * r['area_err_before']:>6.0f}% {r['area_after']:>8.2f} "
      f"{100 * r['area_err_after']:>6.0f}%"
      f" {r['pj_per_mac']:>8.3f} {r['pj_before']:>7.3f} {100 * r['energy_err_before']:>6.0f}%"
      f" {r['pj_after']:>7.3f} {100 * r['energy_err_after']:>6.0f}%"
    )


if __name__ == "__main__":
  main()
