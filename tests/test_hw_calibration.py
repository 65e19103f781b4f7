"""nf_jax.hw.calibration: the committed factors come from the committed chip table."""

from __future__ import annotations

import numpy as np
import pytest

from nf_jax import hw
from nf_jax.hw import calibration as hw_calibration
from nf_jax.hw import energy as E


def test_committed_factors_are_reproduced_from_the_chip_table():
  chips = hw_calibration.load_chips()
  assert len(chips) >= 5 and sum(c["split"] == "holdout" for c in chips) >= 2
  got = hw_calibration.fit(chips)
  for key, value in E.CALIBRATED.items():
    np.testing.assert_allclose(got[key], value, rtol=1e-9, err_msg=key)


def test_fit_reduces_the_error_on_the_fit_chips():
  chips = hw_calibration.load_chips()
  rows = [r for r in hw_calibration.report(chips, E.CALIBRATED) if r["split"] == "fit"]
  for before, after in (
    ("area_err_before", "area_err_after"),
    ("energy_err_before", "energy_err_after"),
  ):
    sse = [sum(np.log1p(r[k]) ** 2 for r in rows) for k in (before, after)]
    assert sse[1] < sse[0], (before, sse)


def test_bad_chip_table_names_the_file_and_row(tmp_path):
  text = open(hw_calibration.CHIPS_CSV).read().splitlines()
  header, first = text[0], text[1]
  bad = tmp_path / "chips.csv"
  bad.write_text(header + "\n" + first.replace(",fit,28,", ",fit,-28,") + "\n")
  with pytest.raises(ValueError, match=r"chips.csv:2 \(tpu_v1\): node_nm=-28.0 must be positive"):
    hw_calibration.load_chips(str(bad))


def test_silicon_calibration_scales_area_and_mac_energy():
  cfg = hw.make_config(rows=16, cols=32, precision="int8", tech_nm=28.0)
  wl = hw.gemm_workload(64, 64, 64)
  raw = hw.simulate(cfg, wl)
  cal = hw.simulate(cfg, wl, calibration="silicon")
  k = E.CALIBRATED
  np.testing.assert_allclose(cal["area_pe_mm2"], raw["area_pe_mm2"] * k["pe_area"], rtol=1e-5)
  np.testing.assert_allclose(cal["area_sram_mm2"], raw["area_sram_mm2"] * k["sram_area"], rtol=1e-5)
  assert np.all(cal["energy_per_sample_j"] > raw["energy_per_sample_j"])
  with pytest.raises(ValueError, match=r"calibration='tsmc' is unknown"):
    hw.simulate(cfg, wl, calibration="tsmc")
