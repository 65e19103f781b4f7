"""Hardware co-design: a cycle-level systolic-fabric simulator in vectorised JAX.

* :func:`simulate_gemm` / :func:`simulate_gemm_cycles`: SCALE-Sim 3.0.0 CALC-mode cycles,
  utilisation and SRAM counts for one GEMM (closed form; per-cycle ``lax.scan``), exact.
* :func:`make_config` / :func:`grid`: :class:`HwConfig` batches (pytrees of arrays).
* :func:`make_workload` / :func:`gemm_workload`: dense layers and sparse cascades as a
  :class:`Workload`.
* :func:`simulate`: latency, throughput, power, area, energy and stalls of every config in one
  ``jit(vmap)`` call; ``mapping=`` picks the mapper's best loop order and tiling per layer
  (default, :mod:`nf_jax.hw.mapper`) or SCALE-Sim's fold order (``"scalesim"``).
  :func:`evaluate_pairs` runs config ``i`` on workload ``i``. ``calibration="silicon"`` scales
  area and MAC energy by overhead factors fitted on published chips (:mod:`nf_jax.hw.calibration`).
* :func:`map_gemm`: the chosen mapping of one GEMM on every config, with two lower bounds
  (compulsory DRAM words, and a Hong-Kung I/O bound for the chip's on-chip capacity).
* ``python -m nf_jax.hw`` sweeps a grid and plots the trade-offs.
"""

from nf_jax.hw.config import DATAFLOWS as DATAFLOWS
from nf_jax.hw.config import PRECISIONS as PRECISIONS
from nf_jax.hw.config import HwConfig as HwConfig
from nf_jax.hw.config import describe as describe
from nf_jax.hw.config import grid as grid
from nf_jax.hw.config import make_config as make_config
from nf_jax.hw.config import take as take
from nf_jax.hw.config import validate as validate
from nf_jax.hw.cycles import simulate_gemm_memory_cycles as simulate_gemm_memory_cycles
from nf_jax.hw.fabric import MAPPINGS as MAPPINGS
from nf_jax.hw.fabric import area_mm2 as area_mm2
from nf_jax.hw.fabric import evaluate_pairs as evaluate_pairs
from nf_jax.hw.fabric import gemm_layer as gemm_layer
from nf_jax.hw.fabric import simulate as simulate
from nf_jax.hw.gemm import simulate_gemm as simulate_gemm
from nf_jax.hw.gemm import simulate_gemm_cycles as simulate_gemm_cycles
from nf_jax.hw.mapper import map_gemm as map_gemm
from nf_jax.hw.workload import Workload as Workload
from nf_jax.hw.workload import gemm_workload as gemm_workload
from nf_jax.hw.workload import make_workload as make_workload
