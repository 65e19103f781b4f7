"""Clock-by-clock memory model (nf_jax.hw.cycles) vs the event scan and SCALE-Sim."""

from __future__ import annotations

import jax
import numpy as np

from nf_jax import hw
from nf_jax.hw.cycles import simulate_gemm_memory_cycles
from nf_jax.hw.fabric import gemm_layer


def _random_cases(seed: int, n: int):
  rng = np.random.default_rng(seed)
  m, nn, k = (rng.integers(1, 48, n) for _ in range(3))
  cfg = hw.make_config(
    rows=rng.integers(1, 12, n),
    cols=rng.integers(1, 12, n),
    dataflow=rng.integers(0, 3, n),
    precision=rng.integers(0, 4, n),
    ifmap_sram_kb=rng.choice([0.25, 1.0, 64.0], n),
    filter_sram_kb=rng.choice([0.25, 1.0, 64.0], n),
    ofmap_sram_kb=rng.choice([0.25, 1.0, 64.0], n),
    dram_bw_gbs=rng.choice([1.0, 4.0, 16.0, np.inf], n),
    clock_ghz=1.0,
  )
  return cfg, m, nn, k


def test_clock_model_matches_event_scan():
  cfg, m, n, k = _random_cases(0, 96)
  f32 = [np.asarray(x, np.float32) for x in (m, n, k)]
  ev = jax.jit(jax.vmap(gemm_layer))(hw.HwConfig(*(np.asarray(x) for x in cfg)), *f32)
  ev = {key: np.asarray(v) for key, v in ev.items()}
  horizon = int(1.3 * np.max(ev["cycles"])) + 1000  # the clock model reports if it ran short
  clock = simulate_gemm_memory_cycles(cfg, m, n, k, num_cycles=horizon)
  assert clock["finished"].all()
  # Same DRAM traffic, word for word.
  np.testing.assert_allclose(ev["dram_read"], clock["dram_read"], rtol=1e-5)
  np.testing.assert_allclose(ev["dram_write"], clock["dram_write"], rtol=1e-5)
  # Unlimited bandwidth: both are SCALE-Sim's schedule exactly.
  calc = np.isinf(cfg.dram_bw_gbs)
  ref = hw.simulate_gemm(m, n, k, cfg.rows, cfg.cols, cfg.dataflow)["total_cycles"]
  np.testing.assert_array_equal(clock["total_cycles"][calc], ref[calc])
  np.testing.assert_array_equal(ev["cycles"][calc], ref[calc])
  # Bandwidth-limited: within 10 % (observed <= 7 % on 200 random cases).
  rel = (ev["cycles"] - clock["total_cycles"]) / (clock["total_cycles"] + 1)
  assert np.max(np.abs(rel)) < 0.10, rel
  assert np.any(clock["stall_cycles"][~calc] > 0)


def test_clock_model_hand_computed():
  # 8x8x8 os on 8x8, int8, 1 word/cycle, everything fits. Clock model: 64 ifmap + 64 filter words
  # arrive in cycles 0..127 and the first demand line issues in cycle 127, as the last word lands;
  # the fold's L = 8 + 8 + 8 - 2 = 22 lines take cycles 127..148; the 64 outputs leave one per
  # cycle from cycle 148 (its spare bandwidth) to 211.
  cfg = hw.make_config(
    rows=8, cols=8, dataflow="os", precision="int8", dram_bw_gbs=1.0, clock_ghz=1.0
  )
  cfg = hw.HwConfig(*(np.atleast_1d(x) for x in cfg))
  out = simulate_gemm_memory_cycles(cfg, 8, 8, 8, num_cycles=400)
  assert int(out["total_cycles"][0]) == 127 + 21 + 63
  assert int(out["stall_cycles"][0]) == 127  # prologue cycles without a demand line
  # The event scan does not overlap the prologue and epilogue with the fold: 128 + 22 + 64.
  ev = hw.simulate(cfg, hw.gemm_workload(8, 8, 8), mapping="scalesim")
  assert int(ev["cycles"][0]) == 128 + 22 + 64
