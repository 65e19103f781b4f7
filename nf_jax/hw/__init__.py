"""Hardware co-design: a cycle-level systolic-fabric simulator in vectorised JAX."""

from nf_jax.hw.config import DATAFLOWS as DATAFLOWS
from nf_jax.hw.config import PRECISIONS as PRECISIONS
from nf_jax.hw.config import HwConfig as HwConfig
from nf_jax.hw.config import grid as grid
from nf_jax.hw.config import make_config as make_config
from nf_jax.hw.gemm import simulate_gemm as simulate_gemm
from nf_jax.hw.gemm import simulate_gemm_cycles as simulate_gemm_cycles
