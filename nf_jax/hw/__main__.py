"""``python -m nf_jax.hw``: sweep a grid of accelerator configs for one workload.

Command, runtime and result: :mod:`nf_jax.configs.hw` (the default ``--config``; the pattern of
every CLI is :mod:`nf_jax.cli`)::

  python -m nf_jax.hw --workdir=runs/hw --config.workload=mlp --config.n=1024
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections
from absl import logging

from nf_jax import cli
from nf_jax import topology as T
from nf_jax.hw import sweep as hw_sweep
from nf_jax.hw.config import DATAFLOWS, PRECISIONS
from nf_jax.hw.energy import CALIBRATIONS
from nf_jax.hw.fabric import MAPPINGS

WORKLOADS = ("gemm", "mlp")
# The fields only one workload reads; setting one for the other workload is refused.
WORKLOAD_FIELDS = {"gemm": ("gemm",), "mlp": ("topology", "n", "n_in", "n_out", "batch")}


def validate(config: ml_collections.ConfigDict, overrides: frozenset[str] = frozenset()) -> None:
  """Refuses settings :func:`run` cannot use, naming the field and the fix (before any work).

  ``overrides``: the fields set on the command line; one the chosen workload does not read is
  refused (it would be ignored).
  """
  if config.workload not in WORKLOADS:
    raise ValueError(f"--config.workload={config.workload!r} is not one of {WORKLOADS}")
  unread = sorted(
    f for w, fields in WORKLOAD_FIELDS.items() if w != config.workload for f in fields
  )
  ignored = sorted(overrides & set(unread))
  if ignored:
    raise ValueError(
      f"--config.{ignored[0]} does not apply to --config.workload={config.workload} (it reads "
      f"{list(WORKLOAD_FIELDS[config.workload])}); drop it or change the workload"
    )
  if config.workload == "gemm" and (len(config.gemm) != 3 or any(int(x) < 1 for x in config.gemm)):
    raise ValueError(f"--config.gemm={tuple(config.gemm)} must be three sizes M,N,K >= 1")
  if config.workload == "mlp":
    cli.check_choices("topology", [config.topology], T.families())
  cli.check_choices("mapping", [config.mapping], MAPPINGS)
  cli.check_choices("calibration", [config.calibration], tuple(CALIBRATIONS))
  if config.dataflow:
    cli.check_choices("dataflow", cli.names(config.dataflow), DATAFLOWS)
  if config.precision:
    cli.check_choices("precision", cli.names(config.precision), PRECISIONS)


def _floats(values: Any) -> list[float]:
  """A numeric grid axis (``inf`` reaches the config as the string ``"inf"``)."""
  return [float(x) for x in cli.names(str(v) for v in values)]


def run(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
  """Simulates the grid on the workload as ``config`` says (:mod:`nf_jax.configs.hw`), writes
  ``workdir`` and prints the paths it wrote."""
  gemm = [int(x) for x in config.gemm]
  wl = hw_sweep.build_workload(
    config.workload, config.batch, gemm, config.topology, config.n, config.n_in, config.n_out
  )
  sram = _floats(config.sram_kb)
  cfg = hw_sweep.default_grid(
    rows=[int(x) for x in config.rows],
    cols=[int(x) for x in config.cols],
    dataflow=list(cli.names(config.dataflow)),
    precision=list(cli.names(config.precision)),
    dram_bw_gbs=_floats(config.dram_bw_gbs),
    ifmap_sram_kb=sram,
    filter_sram_kb=sram,
    clock_ghz=_floats(config.clock_ghz),
    tech_nm=_floats(config.tech_nm),
  )
  desc = (
    f"gemm {gemm}"
    if config.workload == "gemm"
    else f"mlp {config.n_in}->{config.topology}({config.n})->{config.n_out}, batch {config.batch}"
  )
  t0 = time.perf_counter()
  rows = hw_sweep.run_sweep(cfg, wl, mapping=config.mapping, calibration=config.calibration)
  seconds = time.perf_counter() - t0
  logging.info("simulated %d configs in %.2f s (incl. compile)", len(rows), seconds)
  meta = dict(
    workload_desc=desc,
    num_configs=len(rows),
    seconds=seconds,
    macs_per_sample=wl.macs_per_sample,
    mapping=config.mapping,
    calibration=config.calibration,
  )
  paths = hw_sweep.write_results(rows, workdir, meta)
  for path in paths:
    print(path)
  return paths


def main() -> None:
  """The command line (``python -m nf_jax.hw``, ``nf-jax-hw``)."""
  cli.run(run, cli.config_file("hw"), validate=validate, workdir="runs/hw")


if __name__ == "__main__":
  main()
