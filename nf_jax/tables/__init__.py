"""Committed data tables of nf_jax (package data, read with importlib.resources)."""
