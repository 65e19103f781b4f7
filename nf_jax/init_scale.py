"""Per-stage init variances of a sparse cascade (a leaf module: plain formulas on a Topology).

Shared by :mod:`nf_jax.layers` (which initialises ``SparseCascade`` with them) and
:mod:`nf_jax.proxy` (which scales its twin the same way), so the proxy need not import the
layers and, through them, every kernel.
"""

from __future__ import annotations

import math

from nf_jax.topology import Topology

INITS = ("depth_aware", "he", "glorot", "lecun_dense")

# Target end-to-end gain of a cascade whose stages all carry skip edges (see SparseCascade).
SKIP_CASCADE_GAIN = math.sqrt(2.0)


def stage_init_variances(topology: Topology, init: str = "depth_aware") -> tuple[float, ...]:
  """Per-stage weight variance ``sigma_s^2`` for the named init scheme.

  ``depth_aware`` is derived in :class:`nf_jax.layers.SparseCascade`. The others are the
  per-sublayer schemes a user gets by treating each stage as an independent layer: ``he``
  (``2 / f_s``), ``glorot`` (``2 / (f_s + fan_out_s)``, fan-out = mean number of edges leaving
  an input) and ``lecun_dense`` (``1 / n_in_s``, the fan-in of the dense layer the stage
  replaces; what ``nn.Dense``'s default init would give).
  """
  if init not in INITS:
    raise ValueError(f"init={init!r} is not one of {INITS}")
  variances = []
  skip_depth = sum(s is not None for s in topology.skips)
  for table, skip, n_in in zip(topology.stages, topology.skips, topology.stage_n_in):
    n_out, fan_in = table.shape
    if init == "he":
      variances.append(2.0 / fan_in)
    elif init == "glorot":
      variances.append(2.0 / (fan_in + table.size / n_in))
    elif init == "lecun_dense":
      variances.append(1.0 / n_in)
    elif skip is None:
      variances.append(1.0 / fan_in)
    else:
      per_stage_gain = SKIP_CASCADE_GAIN ** (1.0 / skip_depth)
      skip_gain = 1.0 / skip.shape[1]
      variances.append(max(per_stage_gain - skip_gain, 0.0) / fan_in)
  return tuple(variances)
