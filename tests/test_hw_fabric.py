"""nf_jax.hw.simulate: configs, workloads, stalls, cascade mapping, energy and area."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from nf_jax import hw
from nf_jax import topology as T
from nf_jax.hw import fabric

ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "scalesim_oracle.json")


def _oracle(mode: str) -> list[dict]:
  with open(ORACLE) as f:
    return [c for c in json.load(f)["cases"] if c["mode"] == mode]


def test_calc_mode_cycles_equal_scalesim_for_every_oracle_case():
  cases = _oracle("CALC")
  shapes = sorted({(c["M"], c["N"], c["K"]) for c in cases})
  for m, n, k in shapes:
    sub = [c for c in cases if (c["M"], c["N"], c["K"]) == (m, n, k)]
    cfg = hw.make_config(
      rows=[c["rows"] for c in sub],
      cols=[c["cols"] for c in sub],
      dataflow=[c["dataflow"] for c in sub],
    )
    out = hw.simulate(cfg, hw.gemm_workload(m, n, k))
    want = np.array([c["total_cycles"] for c in sub]) + 1  # elapsed = last index + 1
    np.testing.assert_array_equal(out["cycles"], want)
    assert np.all(out["stall_memory"] == 0)


def test_user_mode_is_within_documented_factor_of_scalesim():
  # Not exact by design (see nf_jax.hw.fabric docstring): one shared DRAM channel vs SCALE-Sim's
  # per-operand bandwidth and request queues. We bound the ratio and the presence of stalls.
  for c in _oracle("USER"):
    cfg = hw.make_config(
      rows=c["rows"],
      cols=c["cols"],
      dataflow=c["dataflow"],
      precision="int8",
      ifmap_sram_kb=c["sram_kb"],
      filter_sram_kb=c["sram_kb"],
      ofmap_sram_kb=c["sram_kb"],
      dram_bw_gbs=float(c["bandwidth"]),
      clock_ghz=1.0,
    )
    out = hw.simulate(cfg, hw.gemm_workload(c["M"], c["N"], c["K"]), mapping="scalesim")
    ratio = out["cycles"][0] / (c["total_cycles"] + 1)
    assert 0.4 < ratio < 2.5, (c, ratio)
    if c["stall_cycles"] > 1000:
      assert out["stall_memory"][0] > 0.5 * (
        out["cycles"][0] - out["stall_pipeline"][0] - out["stall_compute"][0]
      )


def test_stall_breakdown_adds_up_and_bandwidth_is_monotone():
  bws = [0.5, 2.0, 8.0, 64.0, float("inf")]
  cfg = hw.make_config(
    rows=8,
    cols=16,
    dataflow="ws",
    dram_bw_gbs=bws,
    filter_sram_kb=4.0,
    ifmap_sram_kb=4.0,
    ofmap_sram_kb=2.0,
  )
  out = hw.simulate(cfg, hw.gemm_workload(64, 96, 80))
  parts = out["stall_compute"] + out["stall_pipeline"] + out["stall_memory"]
  np.testing.assert_allclose(parts, out["cycles"], rtol=1e-5)
  mem = out["stall_ifmap"] + out["stall_filter"] + out["stall_ofmap"] + out["stall_cascade_dram"]
  np.testing.assert_allclose(mem, out["stall_memory"], rtol=1e-4, atol=1e-2)
  assert np.all(np.diff(out["cycles"]) <= 0)
  assert out["stall_memory"][0] > 0 and out["stall_memory"][-1] == 0


def test_bigger_sram_means_less_dram_traffic():
  cfg = hw.make_config(
    rows=8,
    cols=8,
    dataflow="os",
    ifmap_sram_kb=[1.0, 1024.0],
    filter_sram_kb=[1.0, 1024.0],
    dram_bw_gbs=4.0,
  )
  out = hw.simulate(cfg, hw.gemm_workload(128, 128, 128))
  assert out["dram_words"][1] < out["dram_words"][0]
  # With everything on chip each operand crosses the DRAM interface exactly once.
  assert out["dram_words"][1] == 3 * 128 * 128


def test_cascade_mapping_hand_computed():
  t = T.make("butterfly", 16, radix=2)  # 4 stages of 16 outputs, fan-in 2
  assert t.depth == 4
  batch = 5
  cfg = hw.make_config(rows=4, cols=[4, 2], radix=2)
  out = hw.simulate(cfg, hw.make_workload([t], batch=batch))
  stage = math.ceil(16 / 4) * 2  # rounds x fan-in
  hop = math.ceil(math.log2(4)) + 1  # switch levels + output register
  fill = 4 * (stage + hop)
  np.testing.assert_array_equal(
    out["cycles"], [fill + (batch - 1) * stage, fill + (batch - 1) * 2 * stage]
  )
  np.testing.assert_array_equal(out["cycles_b1"], [fill, fill])
  assert np.all(out["macs"] == batch * t.num_params)


def test_weights_that_do_not_fit_are_streamed_not_rejected():
  t = T.make("butterfly", 1024, radix=2)
  wl = hw.make_workload([("dense", 784, 1024), t, ("dense", 1024, 10)], batch=32)
  cfg = hw.make_config(rows=16, cols=8, filter_sram_kb=[0.5, 4096.0], dram_bw_gbs=2.0)
  out = hw.simulate(cfg, wl)
  assert np.all(np.isfinite(out["latency_s"])) and np.all(out["latency_s"] > 0)
  # The weights-do-not-fit config streams them: more DRAM words and more DRAM stall cycles.
  assert out["stall_cascade_dram"][0] > out["stall_cascade_dram"][1]
  assert out["dram_words"][0] > out["dram_words"][1]


def test_energy_and_area_hand_computed_from_horowitz():
  # One int8 MAC on a 1x1 array with 8 KB SRAMs at 45 nm: 0.2 pJ mult + 0.1 pJ int32 add; SRAM
  # words cost 10 pJ / 64 bit * 8 bit; unlimited DRAM bandwidth but operands still cross DRAM.
  cfg = hw.make_config(
    rows=1,
    cols=1,
    precision="int8",
    ifmap_sram_kb=8.0,
    filter_sram_kb=8.0,
    ofmap_sram_kb=8.0,
    clock_ghz=1.0,
  )
  out = hw.simulate(cfg, hw.gemm_workload(1, 1, 1))
  leak = out["leakage_w"][0] * out["latency_s"][0]
  pj = 0.3 + 3 * 10.0 / 8 + 3 * 1950.0 / 8
  np.testing.assert_allclose(out["energy_per_sample_j"][0] - leak, pj * 1e-12, rtol=1e-5)
  pe_um2 = 282.0 + 137.0 + (2 * 8 + 32) * 4.522
  sram_mm2 = 3 * 8 * 1024 * 8 * 0.346 / 0.5 * 1e-6
  np.testing.assert_allclose(out["area_mm2"][0], pe_um2 * 1e-6 + sram_mm2, rtol=1e-5)
  # A smaller node shrinks area quadratically and energy linearly (first-order Stillmaker & Baas).
  small = hw.simulate(cfg._replace(tech_nm=np.float32(22.5)), hw.gemm_workload(1, 1, 1))
  np.testing.assert_allclose(small["area_mm2"][0], out["area_mm2"][0] / 4, rtol=1e-5)


def test_fp32_costs_more_than_int8():
  cfg = hw.make_config(rows=16, cols=16, precision=["int8", "fp16", "bf16", "fp32"])
  out = hw.simulate(cfg, hw.gemm_workload(64, 64, 64))
  e = out["energy_per_sample_j"]
  assert e[0] < e[1] < e[3]
  assert e[1] == pytest.approx(e[2])
  assert out["area_mm2"][0] < out["area_mm2"][3]


def test_outputs_are_consistent():
  cfg = hw.grid(rows=[4, 32], cols=[8, 32], dataflow=["os", "ws", "is"], clock_ghz=[0.5, 2.0])
  wl = hw.make_workload([("dense", 256, 128), T.make("random", 128, fan_in=4, depth=3)], batch=8)
  out = hw.simulate(cfg, wl)
  np.testing.assert_allclose(out["throughput"], 8 / out["latency_s"], rtol=1e-5)
  np.testing.assert_allclose(out["latency_s"], out["cycles"] / (cfg.clock_ghz * 1e9), rtol=1e-6)
  assert np.all(out["latency_b1_s"] < out["latency_s"])
  assert np.all((out["utilization"] > 0) & (out["utilization"] <= 1))
  assert np.all(out["power_w"] > out["leakage_w"])


def test_second_call_does_not_recompile():
  wl = hw.gemm_workload(32, 48, 16)
  hw.simulate(hw.make_config(rows=[4, 8], cols=4), wl)
  size = fabric._simulate_batched._cache_size()
  hw.simulate(hw.make_config(rows=[16, 2], cols=7, dataflow="is"), hw.gemm_workload(9, 9, 9))
  assert fabric._simulate_batched._cache_size() == size


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(rows=0), "rows=0"),
    (dict(cols=[4, -1]), "cols=-1"),
    (dict(ifmap_sram_kb=0.0), "ifmap_sram_kb"),
    (dict(dram_bw_gbs=-1.0), "dram_bw_gbs"),
    (dict(precision="fp8"), "precision='fp8'"),
    (dict(dataflow="rs"), "dataflow='rs'"),
    (dict(dataflow=7), "dataflow=7"),
    (dict(radix=1), "radix"),
    (dict(rows=2.5), "rows"),
  ],
)
def test_bad_config_names_field_and_value(kwargs, match):
  with pytest.raises(ValueError, match=match):
    hw.make_config(**kwargs)


def test_bad_workload():
  with pytest.raises(ValueError, match="batch"):
    hw.make_workload([("dense", 4, 4)], batch=0)
  with pytest.raises(ValueError, match="n_out"):
    hw.make_workload([("dense", 4, 0)])
  with pytest.raises(ValueError, match="layers\\[0\\]"):
    hw.make_workload(["conv"])
  with pytest.raises(ValueError, match="empty"):
    hw.make_workload([])


def test_port_conflicts_from_tables_hand_computed():
  from nf_jax.hw.workload import stage_cycles_pow2

  # Lanes 0..3 read values 0, 2, 1, 3 (fan-in 1). On P = 2 PEs, round 0 (lanes 0, 1) needs
  # values 0 and 2, both held by PE 0: 2 cycles; round 1 needs 1 and 3, both on PE 1: 2 cycles.
  table = np.array([[0], [2], [1], [3]], np.int32)
  t = T.Topology(
    name="random",
    spec=(("hand", 1),),
    n_in=4,
    n_out=4,
    stages=(table,),
    skips=(None,),
    stage_n_in=(4,),
  )
  np.testing.assert_array_equal(stage_cycles_pow2(t)[0, :3], [4, 4, 1])


def test_butterfly_is_conflict_free_and_random_is_not():
  from nf_jax.hw.workload import stage_cycles_pow2

  for t, free in (
    (T.make("butterfly", 256, radix=4), True),
    (T.make("random", 256, fan_in=4, depth=4, seed=1), False),
  ):
    ideal = np.array(
      [[math.ceil(s.shape[0] / 2**e) * s.shape[1] for e in range(15)] for s in t.stages]
    )
    sched = stage_cycles_pow2(t)
    assert np.all(sched >= ideal)
    assert np.array_equal(sched, ideal) == free
  cfg = hw.make_config(rows=16, cols=4)
  fast = hw.simulate(cfg, hw.make_workload([T.make("butterfly", 256, radix=4)], batch=4))
  slow = hw.simulate(cfg, hw.make_workload([T.make("random", 256, fan_in=4, depth=4)], batch=4))
  assert slow["cycles"][0] > fast["cycles"][0]
