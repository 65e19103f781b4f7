"""nf_jax.hw refuses bad input at the boundary, naming the field and a fix (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from nf_jax import hw


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(rows=3e9), r"rows=3e\+09 exceeds the supported maximum 65536"),
    (dict(cols=2**20), r"cols=1.04858e\+06 exceeds the supported maximum"),
    (dict(ifmap_sram_kb=1e300), r"ifmap_sram_kb=1e\+300 exceeds the supported maximum"),
    (dict(clock_ghz=float("nan")), r"clock_ghz=nan must be finite"),
    (dict(rows=0), r"rows=0 must be positive \(e.g. rows=32\)"),
    (dict(rows=2.5), r"rows=2.5 must be an integer"),
    (dict(dataflow=1.5), r"dataflow=1.5 is unknown"),
    (dict(precision="int4"), r"precision='int4' is unknown"),
    (dict(radix=1), r"radix=1 must be >= 2"),
    (dict(tech_nm="x"), r"tech_nm='x' must be a number"),
  ],
)
def test_make_config_refuses_with_field_and_fix(kwargs, match):
  with pytest.raises(ValueError, match=match):
    hw.make_config(**kwargs)


def test_hand_built_config_is_validated_before_simulating():
  good = hw.make_config(rows=[8, 16])
  wl = hw.gemm_workload(16, 16, 16)
  bad = good._replace(rows=np.array([8, 0], np.int32))
  with pytest.raises(ValueError, match=r"HwConfig.rows=0 must be positive"):
    hw.simulate(bad, wl)
  with pytest.raises(ValueError, match=r"HwConfig.dataflow has dtype float"):
    hw.simulate(good._replace(dataflow=np.array([1.5, 0.0])), wl)
  with pytest.raises(ValueError, match=r"HwConfig.precision=7 is not an index"):
    hw.simulate(good._replace(precision=np.array([0, 7], np.int32)), wl)
  with pytest.raises(ValueError, match=r"same length"):
    hw.simulate(good._replace(cols=np.array([8], np.int32)), wl)
  with pytest.raises(ValueError, match=r"HwConfig.ofmap_sram_kb=inf must be finite"):
    hw.simulate(good._replace(ofmap_sram_kb=np.array([1.0, np.inf], np.float32)), wl)
  assert np.all(np.isfinite(hw.simulate(good, wl)["latency_s"]))


def test_simulate_gemm_refuses_overflow_and_float_dataflow():
  with pytest.raises(ValueError, match=r"beyond int64; use smaller GEMM sizes"):
    hw.simulate_gemm(2**40, 2**40, 2**40, 1, 1, "os")
  with pytest.raises(ValueError, match=r"dataflow=1.5 must be a name .* or an integer code"):
    hw.simulate_gemm(8, 8, 8, 4, 4, 1.5)
  big = hw.simulate_gemm(2**20, 2**20, 2**10, 128, 128, "ws")
  assert big["total_cycles"] > 0


def test_make_workload_refuses_widths_beyond_int32():
  with pytest.raises(ValueError, match=r"dense n_in=4294967296 does not fit int32"):
    hw.make_workload([("dense", 2**32, 8)], batch=4)
  with pytest.raises(ValueError, match=r"batch=4294967296 does not fit int32"):
    hw.make_workload([("dense", 8, 8)], batch=2**32)
