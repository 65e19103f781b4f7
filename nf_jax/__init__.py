"""NeuroFabric-JAX: a priori sparse cascades, their kernels, scoring and hardware co-design."""

__version__ = "0.1.0"
