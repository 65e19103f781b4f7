"""Per-operation energy and area tables (45 nm, cited) and their technology-node scaling.

Every figure carries its source. All functions are jnp-elementwise so they run under jit(vmap).

Sources:
* [H14] M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
  slides "Energy table for 45nm" and "Area table for 45nm" (0.9 V): int8 add 0.03 pJ / 36 um^2,
  int32 add 0.1 pJ / 137 um^2, fp16 add 0.4 pJ / 1360 um^2, fp32 add 0.9 pJ / 4184 um^2,
  int8 mult 0.2 pJ / 282 um^2, int32 mult 3.1 pJ / 3495 um^2, fp16 mult 1.1 pJ / 1640 um^2,
  fp32 mult 3.7 pJ / 7700 um^2; 64-bit SRAM read 10 / 20 / 100 pJ at 8 KB / 32 KB / 1 MB;
  DRAM 1.3-2.6 nJ per 64 bits.
* [N45] NanGate 45 nm Open Cell Library (FreePDK45): DFF_X1 area 4.522 um^2 (pipeline, FIFO and
  interconnect register bits).
* [M07] K. Mistry et al., "A 45nm logic technology with high-k + metal gate transistors ...",
  IEDM 2007: 6T SRAM cell 0.346 um^2. Accelergy/CACTI-style SRAM macros add decoders, sense amps
  and wiring; we take array efficiency 50 % (CACTI 6.5 reports 40-70 % for 8 KB-1 MB macros at
  45 nm), i.e. 0.692 um^2 per bit.
* [SB17] A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS device
  performance from 180 nm to 7 nm", Integration 58 (2017). Their fitted curves show area scaling
  close to (L/45)^2 and energy per operation close to linear in L below 45 nm (supply voltage
  nearly flat); we use those first-order laws, not their full polynomial fits.

Assumption (no published per-mm^2 figure fits a generic array): leakage power density of
``LEAKAGE_W_PER_MM2`` at 45 nm, scaled with energy; change it if you have a library number.
bf16 has no entry in [H14]; we charge it the fp16 figures (same 16-bit datapath width class).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

# Index by precision code (int8, fp16, bf16, fp32), see nf_jax.hw.config.PRECISIONS.
MULT_PJ = (0.2, 1.1, 1.1, 3.7)  # [H14]
ADD_PJ = (0.03, 0.4, 0.4, 0.9)  # [H14]; int8 products accumulate in int32 in practice, see below
ACC_ADD_PJ = (0.1, 0.4, 0.4, 0.9)  # int8 MACs accumulate in a 32-bit adder: int32 add [H14]
MULT_UM2 = (282.0, 1640.0, 1640.0, 7700.0)  # [H14]
ACC_ADD_UM2 = (137.0, 1360.0, 1360.0, 4184.0)  # [H14] (int32 adder for int8)
BITS = (8, 16, 16, 32)
DFF_UM2 = 4.522  # [N45] one register bit
SRAM_KB_POINTS = (8.0, 32.0, 1024.0)  # [H14]
SRAM_READ64_PJ = (10.0, 20.0, 100.0)  # [H14] per 64-bit access
DRAM_64_PJ = 0.5 * (1300.0 + 2600.0)  # [H14] midpoint of 1.3-2.6 nJ per 64 bits
SRAM_BIT_UM2 = 0.346 / 0.5  # [M07] cell / 50 % array efficiency (CACTI range)
LEAKAGE_W_PER_MM2 = 0.01  # assumption, see module docstring
REF_NODE_NM = 45.0


def _lookup(table: tuple, code: Any) -> Any:
  return jnp.asarray(table, jnp.float32)[code]


def energy_scale(tech_nm: Any) -> Any:
  """Energy-per-operation factor relative to 45 nm (first-order [SB17])."""
  return jnp.asarray(tech_nm, jnp.float32) / REF_NODE_NM


def area_scale(tech_nm: Any) -> Any:
  """Area factor relative to 45 nm (first-order [SB17])."""
  return (jnp.asarray(tech_nm, jnp.float32) / REF_NODE_NM) ** 2


def mac_pj(precision: Any, tech_nm: Any) -> Any:
  """Energy of one multiply-accumulate in pJ: multiplier + accumulating adder [H14]."""
  return (_lookup(MULT_PJ, precision) + _lookup(ACC_ADD_PJ, precision)) * energy_scale(tech_nm)


def add_pj(precision: Any, tech_nm: Any) -> Any:
  """Energy of one add at the datapath width in pJ [H14]."""
  return _lookup(ADD_PJ, precision) * energy_scale(tech_nm)


def sram_word_pj(size_kb: Any, precision: Any, tech_nm: Any) -> Any:
  """Energy of one word access to an SRAM of ``size_kb`` KiB, in pJ.

  Log-log interpolation of [H14]'s 64-bit read energies over capacity (extrapolated outside
  8 KB-1 MB along the end segments), scaled to the word width.
  """
  logk = jnp.log(jnp.maximum(jnp.asarray(size_kb, jnp.float32), 1e-3))
  xs = jnp.log(jnp.asarray(SRAM_KB_POINTS))
  ys = jnp.log(jnp.asarray(SRAM_READ64_PJ))
  lo = jnp.where(logk < xs[1], 0, 1)
  slope = (ys[lo + 1] - ys[lo]) / (xs[lo + 1] - xs[lo])
  e64 = jnp.exp(ys[lo] + slope * (logk - xs[lo]))
  return e64 * _lookup(BITS, precision) / 64.0 * energy_scale(tech_nm)


def dram_word_pj(precision: Any) -> Any:
  """Energy of one DRAM word transfer in pJ [H14]; off-chip energy does not scale with the node."""
  return DRAM_64_PJ * _lookup(BITS, precision) / 64.0


def pe_um2(precision: Any, tech_nm: Any) -> Any:
  """Area of one PE in um^2: multiplier + accumulator [H14] + operand/partial-sum registers."""
  regs = (2 * _lookup(BITS, precision) + 32.0) * DFF_UM2  # two operand regs + 32-bit partial sum
  return (_lookup(MULT_UM2, precision) + _lookup(ACC_ADD_UM2, precision) + regs) * area_scale(
    tech_nm
  )


def sram_mm2(size_kb: Any, tech_nm: Any) -> Any:
  """Area of an SRAM of ``size_kb`` KiB in mm^2 ([M07] cell, CACTI-range array efficiency)."""
  bits = jnp.asarray(size_kb, jnp.float32) * 1024.0 * 8.0
  return bits * SRAM_BIT_UM2 * 1e-6 * area_scale(tech_nm)


def interconnect_um2(rows: Any, cols: Any, radix: Any, precision: Any, tech_nm: Any) -> Any:
  """Area of the column-to-column butterfly network in um^2.

  Between each pair of adjacent PE columns a radix-``k`` butterfly over ``rows`` lanes has
  ``ceil(log_k rows)`` switch levels of ``rows`` output ports, each a ``k``:1 word mux (about
  ``k - 1`` 2:1 muxes, which we count as one register bit each [N45]) plus a pipeline register.
  """
  rows = jnp.asarray(rows, jnp.float32)
  k = jnp.asarray(radix, jnp.float32)
  levels = jnp.maximum(jnp.ceil(jnp.log(jnp.maximum(rows, 1.0)) / jnp.log(k) - 1e-6), 1.0)
  bits = _lookup(BITS, precision)
  per_port = bits * k * DFF_UM2  # (k - 1) mux bits + 1 register bit per data bit
  return jnp.maximum(cols - 1.0, 0.0) * levels * rows * per_port * area_scale(tech_nm)


def hop_pj(radix: Any, precision: Any, tech_nm: Any) -> Any:
  """Energy of moving one word through one switch level: one add-equivalent [H14] (assumption)."""
  return add_pj(precision, tech_nm) * jnp.asarray(radix, jnp.float32) / 2.0


# Overhead factors fitted on published silicon by nf_jax.hw.calibration (python -m
# nf_jax.hw.calibration reproduces them from nf_jax/hw/chips.csv; a test checks they agree).
# They fail the held-out check (Eyeriss, Simba: -55 % area; see benchmarks/README_hw.md), so the
# simulator's default stays the bare [H14] figures; simulate(..., calibration="silicon") uses them.
CALIBRATED = dict(
  pe_area=1.2302687708123818, sram_area=2.4266100950824154, mac_energy=2.2015736579872978
)
UNCALIBRATED = dict(pe_area=1.0, sram_area=1.0, mac_energy=1.0)
CALIBRATIONS = dict(horowitz=UNCALIBRATED, silicon=CALIBRATED)
