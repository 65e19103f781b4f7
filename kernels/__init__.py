"""Sparse-cascade matmul kernels, imported as ``nf_jax.kernels`` (source folder ``kernels/``)."""

from nf_jax.kernels import cpu_ffi as cpu_ffi
from nf_jax.kernels.api import DATA_TABLE_IMPLS as DATA_TABLE_IMPLS
from nf_jax.kernels.api import IMPLEMENTATIONS as IMPLEMENTATIONS
from nf_jax.kernels.api import cascade_matmul as cascade_matmul
from nf_jax.kernels.api import choose_impl as choose_impl
from nf_jax.kernels.api import validate_impl as validate_impl
from nf_jax.kernels.block_sizes import BlockSizes as BlockSizes
from nf_jax.kernels.reference import cascade_dense_matrix as cascade_dense_matrix
from nf_jax.kernels.reference import cascade_matmul_reference as cascade_matmul_reference
from nf_jax.kernels.tables import CascadeTables as CascadeTables
