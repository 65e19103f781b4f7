"""Grid sweeps of accelerator configs for one workload: CSV and plots (`python -m nf_jax.hw`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from nf_jax import topology as T
from nf_jax.hw.config import DATAFLOWS, PRECISIONS, HwConfig, grid, num_configs
from nf_jax.hw.fabric import simulate
from nf_jax.hw.workload import Workload, gemm_workload, make_workload
from nf_jax.io_utils import atomic_savefig, atomic_write_csv, atomic_write_text

COLUMNS = (
  "latency_s",
  "latency_b1_s",
  "throughput",
  "power_w",
  "area_mm2",
  "energy_per_sample_j",
  "utilization",
  "cycles",
  "stall_compute",
  "stall_pipeline",
  "stall_memory",
  "dram_words",
)


def build_workload(
  kind: str, batch: int, gemm: Sequence[int], topology: str, n: int, n_in: int, n_out: int
) -> Workload:
  """``gemm``: one GEMM ``M,N,K`` (batch = M); ``mlp``: dense n_in->n, a cascade, dense n->n_out."""
  if kind == "gemm":
    if len(gemm) != 3:
      raise ValueError(f"gemm={list(gemm)!r} must be three sizes M,N,K")
    return gemm_workload(*(int(x) for x in gemm))
  if kind == "mlp":
    t = T.make(topology, n)
    return make_workload([("dense", n_in, n), t, ("dense", n, n_out)], batch=batch)
  raise ValueError(f"workload={kind!r} is unknown; use 'gemm' or 'mlp'")


def run_sweep(
  cfg: HwConfig, wl: Workload, mapping: str = "latency", calibration: str = "horowitz"
) -> list[dict[str, Any]]:
  """Simulates every config (one batched call); one row per config, names instead of codes."""
  out = simulate(cfg, wl, mapping=mapping, calibration=calibration)
  rows = []
  for i in range(num_configs(cfg)):
    row: dict[str, Any] = {k: np.asarray(v)[i].item() for k, v in cfg._asdict().items()}
    row["dataflow"] = DATAFLOWS[row["dataflow"]]
    row["precision"] = PRECISIONS[row["precision"]]
    row.update({k: float(out[k][i]) for k in COLUMNS})
    rows.append(row)
  return rows


def pareto_mask(cost: np.ndarray) -> np.ndarray:
  """Rows of ``cost [n, d]`` (lower is better) that no other row dominates."""
  keep = np.ones(len(cost), bool)
  for i in range(len(cost)):
    dominated = np.all(cost <= cost[i], axis=1) & np.any(cost < cost[i], axis=1)
    keep[i] = not dominated.any()
  return keep


def write_results(rows: list[dict[str, Any]], workdir: str, meta: dict[str, Any]) -> list[str]:
  """Writes ``sweep.csv``, ``meta.json``, ``throughput_vs_area.png``, ``energy_vs_latency.png``."""
  import matplotlib  # noqa: PLC0415 (plotting is optional for library users)

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  paths = [os.path.join(workdir, "sweep.csv"), os.path.join(workdir, "meta.json")]
  atomic_write_csv(paths[0], rows)
  atomic_write_text(paths[1], json.dumps(meta, indent=1))
  df = np.array([DATAFLOWS.index(r["dataflow"]) for r in rows])
  area = np.array([r["area_mm2"] for r in rows])
  thr = np.array([r["throughput"] for r in rows])
  lat = np.array([r["latency_s"] for r in rows])
  en = np.array([r["energy_per_sample_j"] for r in rows])
  plots = [
    (
      "throughput_vs_area.png",
      area,
      thr,
      "area (mm$^2$)",
      "throughput (samples/s)",
      np.stack([area, -thr], 1),
    ),
    (
      "energy_vs_latency.png",
      lat,
      en,
      "latency at batch B (s)",
      "energy per sample (J)",
      np.stack([lat, en], 1),
    ),
  ]
  for name, x, y, xl, yl, cost in plots:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for code, label in enumerate(DATAFLOWS):
      sel = df == code
      ax.scatter(x[sel], y[sel], s=12, alpha=0.6, label=label)
    front = pareto_mask(cost)
    order = np.argsort(x[front])
    ax.plot(x[front][order], y[front][order], "k-", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(meta.get("workload_desc", ""), fontsize=9)
    ax.legend(title="dataflow", fontsize=8)
    fig.tight_layout()
    path = os.path.join(workdir, name)
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    paths.append(path)
  return paths


def default_grid(**overrides: Sequence[Any]) -> HwConfig:
  """The CLI's default grid (a few hundred configs) with per-axis overrides."""
  axes: dict[str, Sequence[Any]] = dict(
    rows=[8, 16, 32, 64, 128],
    cols=[8, 16, 32, 64, 128],
    dataflow=list(DATAFLOWS),
    precision=["int8", "fp16"],
    dram_bw_gbs=[16.0],
  )
  axes.update({k: v for k, v in overrides.items() if v})
  return grid(**axes)
