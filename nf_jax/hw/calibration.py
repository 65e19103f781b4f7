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

A second, report-only model (:func:`fit_fixed`) adds what a whole-die figure includes beyond the
modelled units: a fixed chip area ``area_fixed_mm2`` (pads, PHYs, control, clock generation;
mm^2 at 45 nm, scaled by :func:`nf_jax.hw.energy.area_scale`) and a fixed chip power
``power_fixed_w`` (clock tree, I/O, control; W at 45 nm, scaled by
:func:`nf_jax.hw.energy.energy_scale`, charged per MAC at the chip's MAC rate). It nests the
three-factor model (both fixed terms may be 0), so it never fits the ``fit`` rows worse.
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


def _fit_rows(chips: list[dict[str, Any]], terms: int) -> tuple[list, list, np.ndarray, np.ndarray]:
  """The ``fit`` rows (at least ``terms`` of them), their uncalibrated model, PE and SRAM area."""
  rows = [c for c in chips if c["split"] == "fit"]
  if len(rows) < terms:
    raise ValueError(
      f"need at least {terms} 'fit' chips to fit {terms} area terms; got {len(rows)}"
    )
  base = [modelled(c) for c in rows]
  pe = np.array([b["area_pe_mm2"] for b in base])
  sram = np.array([b["area_sram_mm2"] for b in base])
  return rows, base, pe, sram


def fit(chips: list[dict[str, Any]]) -> dict[str, float]:
  """Fits the three factors on the ``fit`` rows (see module docstring)."""
  rows, base, pe, sram = _fit_rows(chips, 2)
  target = np.log([c["area_mm2"] for c in rows])
  ks = np.logspace(-1.0, 2.0, 1201)  # factors 0.1 .. 100, 0.25 % steps
  pred = np.log(ks[:, None, None] * pe + ks[None, :, None] * sram)
  err = np.sum((pred - target) ** 2, axis=-1)
  i, j = np.unravel_index(np.argmin(err), err.shape)
  ratio = [published_pj_per_mac(c) / b["pj_per_mac"] for c, b in zip(rows, base)]
  return dict(
    pe_area=float(ks[i]), sram_area=float(ks[j]), mac_energy=float(np.exp(np.mean(np.log(ratio))))
  )


def _fixed_terms(chip: dict[str, Any]) -> tuple[float, float]:
  """mm^2 of 1 mm^2 (45 nm) of fixed area, and pJ per MAC of 1 W (45 nm) of fixed power."""
  node = chip["node_nm"]
  return float(E.area_scale(node)), float(E.energy_scale(node)) / chip["mac_per_s"] * 1e12


def modelled_fixed(chip: dict[str, Any], factors: dict[str, float]) -> dict[str, float]:
  """:func:`modelled` plus the fixed chip area and power of :func:`fit_fixed`'s factors."""
  out = modelled(chip, factors)
  area1, pj1 = _fixed_terms(chip)
  out["area_mm2"] += factors["area_fixed_mm2"] * area1
  out["pj_per_mac"] += factors["power_fixed_w"] * pj1
  return out


def fit_fixed(chips: list[dict[str, Any]]) -> dict[str, float]:
  """Fits the three factors plus a fixed chip area and power on the ``fit`` rows (module
  docstring): least squares on log(area) and log(energy per MAC) over dense grids."""
  rows, base, pe, sram = _fit_rows(chips, 3)
  mac = np.array([b["pj_per_mac"] for b in base])
  area1, pj1 = np.array([_fixed_terms(c) for c in rows]).T
  ks = np.logspace(-1.0, 2.0, 301)  # factors 0.1 .. 100, 2.3 % steps
  fixed = np.concatenate([[0.0], np.logspace(-3.0, 3.0, 301)])  # 0, then 1e-3 .. 1e3
  target = np.log([c["area_mm2"] for c in rows])
  best = (np.inf, 0, 0, 0)
  for f, a0 in enumerate(fixed):
    pred = np.log(ks[:, None, None] * pe + ks[None, :, None] * sram + a0 * area1)
    err = np.sum((pred - target) ** 2, axis=-1)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    best = min(best, (float(err[i, j]), i, j, f))
  _, i, j, f = best
  target = np.log([published_pj_per_mac(c) for c in rows])
  pred = np.log(ks[:, None, None] * mac + fixed[None, :, None] * pj1)
  u, v = np.unravel_index(np.argmin(np.sum((pred - target) ** 2, axis=-1)), pred.shape[:2])
  return dict(
    pe_area=float(ks[i]),
    sram_area=float(ks[j]),
    area_fixed_mm2=float(fixed[f]),
    mac_energy=float(ks[u]),
    power_fixed_w=float(fixed[v]),
  )


def report(
  chips: list[dict[str, Any]], factors: dict[str, float], model: Any = modelled
) -> list[dict[str, Any]]:
  """Per chip: published vs modelled area and energy per MAC, before and after calibration."""
  out = []
  for c in chips:
    before, after = modelled(c), model(c, factors)
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


def leave_one_out(chips: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Each chip predicted by the three factors fitted on all the others (splits ignored): the
  out-of-sample error of the calibration on every chip, not only the two ``holdout`` rows.

  Returns :func:`report`'s row per chip, with the left-out chip's own fitted ``factors``.
  """
  if len(chips) < 3:
    raise ValueError(f"leave-one-out needs >= 3 chips (2 to fit the area terms); got {len(chips)}")
  out = []
  for i, chip in enumerate(chips):
    others = [dict(c, split="fit") for j, c in enumerate(chips) if j != i]
    factors = fit(others)
    out.append(dict(report([chip], factors)[0], factors=factors))
  return out


def _print_table(rows: list[dict[str, Any]]) -> None:
  print(
    f"{'chip':<11} {'split':<8} {'area mm2':>9} {'model':>8} {'err':>7} {'calib':>8} {'err':>7}"
    f" {'pJ/MAC':>8} {'model':>7} {'err':>7} {'calib':>7} {'err':>7}"
  )
  for r in rows:
    print(
      f"{r['name']:<11} {r['split']:<8} {r['area_mm2']:>9.2f} {r['area_before']:>8.2f} "
      f"{100 * r['area_err_before']:>6.0f}% {r['area_after']:>8.2f} "
      f"{100 * r['area_err_after']:>6.0f}%"
      f" {r['pj_per_mac']:>8.3f} {r['pj_before']:>7.3f} {100 * r['energy_err_before']:>6.0f}%"
      f" {r['pj_after']:>7.3f} {100 * r['energy_err_after']:>6.0f}%"
    )


def main() -> None:
  chips = load_chips()
  factors = fit(chips)
  print("fitted factors:", {k: round(v, 4) for k, v in factors.items()})
  print("committed (nf_jax.hw.energy.CALIBRATED):", E.CALIBRATED)
  _print_table(report(chips, factors))
  fixed = fit_fixed(chips)
  print(
    "with a fixed chip area and power (report only):", {k: round(v, 4) for k, v in fixed.items()}
  )
  _print_table(report(chips, fixed, modelled_fixed))
  loo = leave_one_out(chips)
  print("leave one chip out (each row: the three factors fitted on the other four chips):")
  _print_table(loo)
  for key in ("area_err_after", "energy_err_after"):
    err = np.abs([r[key] for r in loo])
    print(
      f"  |{key}| over the {len(loo)} left-out chips: median {100 * np.median(err):.0f}%, "
      f"max {100 * err.max():.0f}%; within 30%: {int(np.sum(err <= 0.3))} of {len(loo)}"
    )


if __name__ == "__main__":
  main()
