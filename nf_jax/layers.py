"""Flax layers: :class:`SparseCascade`, a drop-in replacement for ``flax.linen.Dense``, and its
NNX twin :class:`NnxSparseCascade` (a replacement for ``flax.nnx.Linear``).

Both share the parameter names (``stage_{s}``, ``bias``), the init (:func:`stage_initializers`)
and the forward pass (:func:`apply_cascade`), so one's parameters run unchanged in the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nf_jax import kernels
from nf_jax.init_scale import INITS as INITS
from nf_jax.init_scale import SKIP_CASCADE_GAIN as SKIP_CASCADE_GAIN
from nf_jax.init_scale import stage_init_variances as stage_init_variances
from nf_jax.kernels.tables import validate_tables
from nf_jax.kernels.xla_gather import stage_gather
from nf_jax.topology import Topology

ZEROS = nn.initializers.zeros_init()  # the default bias init of both layers


class SparseCascade(nn.Module):
  """A priori sparse cascade ``y = x @ M_0 @ ... @ M_{D-1} + b`` that replaces ``nn.Dense``.

  Params: ``stage_{s}`` of shape ``topology.stages[s].shape == [n_out_s, fan_in_s]`` (weights
  only, no indices: the topology holds them statically) and ``bias: [n_out]``.

  Depth-aware init (``weight_init="depth_aware"``, the default). With zero-mean independent weights
  and inputs of variance ``v``, cross terms between different paths vanish in expectation
  (two distinct paths differ in at least one weight, which then appears once in the product),
  so ``Var(y_j) = v * sum over paths i -> j of prod_s c_s^2``, with ``c_s^2 = sigma_s^2`` for a
  weighted edge and ``1 / r_s^2`` for a skip edge of a stage with ``r_s`` skip edges per
  output. On a regular stage (every output has fan-in ``f_s``) the per-stage gain is

      g_s = f_s * sigma_s^2 + 1 / r_s        (the second term only with skip edges).

  * Without skips, ``sigma_s^2 = 1 / f_s`` gives ``g_s = 1``: the variance is preserved for
    every depth D. (Per-sublayer He, ``2 / f_s``, gives ``2^D``; the dense-layer default,
    ``1 / n_in``, gives ``(f / n)^D``; both leave any fixed band quickly.)
  * With skips, ``g_s >= 1 / r_s`` whatever ``sigma``; with identity skips (``r_s = 1``) the
    variance can only grow, so we aim the whole cascade at a fixed gain ``G = sqrt(2)``
    (the geometric centre of ``[1, 2]``) independent of depth:
    ``sigma_s^2 = (G^(1 / D_skip) - 1 / r_s) / f_s``. Per-sublayer He or Glorot instead give
    ``g_s >= 2``, i.e. ``2^D``.

  The variance alone is not enough at depth: a product of D independent Gaussian factors keeps
  ``E[gain] = 1`` but its typical gain drifts like ``exp(D * lambda)`` with a negative Lyapunov
  exponent ``lambda`` (Saxe et al., ICLR 2014; Pennington et al., NeurIPS 2017); for a radix-2
  butterfly the signal falls to ~3% of its variance after 64 Gaussian stages. Stages whose rows
  come in groups that gather the *same* inputs (butterfly, block-diagonal, Clos, dense) are
  therefore drawn as scaled random (semi-)orthogonal blocks, which realise ``g_s`` exactly
  rather than in expectation. Rows with unshared inputs (``random``) keep Gaussian weights.

  Nonlinearity between sublayers (``activation``) is off by default: the cascade is a
  *factorisation of one linear layer* (NeuroFabric's premise), so its product must be able to
  represent a dense matrix; a ReLU after each of ``log_k n`` sparse stages zeroes about half of
  the few paths each output has and breaks that equivalence (and the dense reference).

  Attributes:
    topology: the static tables (hashable; jitted callers specialise once per topology).
    use_bias: add a bias ``[n_out]``.
    dtype: computation dtype (default: inferred from inputs and params); floating.
    param_dtype: dtype of the stage weights and bias; floating (others are refused).
    weight_init: one of ``INITS``.
    bias_init: initializer for the bias.
    activation: optional nonlinearity applied between sublayers (not after the last).
    impl: kernel implementation for :func:`nf_jax.kernels.cascade_matmul`.
    interpret: run Pallas kernels in interpreter mode (CPU tests).
  """

  topology: Topology
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  weight_init: str = "depth_aware"
  bias_init: Callable[..., jax.Array] = ZEROS
  activation: Callable[[jax.Array], jax.Array] | None = None
  impl: str = "auto"
  interpret: bool = False

  def __post_init__(self) -> None:
    check_float_dtypes(self.dtype, self.param_dtype)
    super().__post_init__()

  @property
  def features(self) -> int:
    """Output width, as ``nn.Dense.features``."""
    return self.topology.n_out

  @nn.compact
  def __call__(self, x: jax.Array, tables: kernels.CascadeTables | None = None) -> jax.Array:
    """``x: [..., n_in] -> [..., n_out]``.

    ``tables``: the index tables as data (:class:`nf_jax.kernels.CascadeTables` of
    ``topology``'s structure), e.g. per-model tables under ``vmap``; None reads the
    topology's own. Params and init depend only on the structure, never on these tables.
    """
    inits = stage_initializers(self.topology, self.weight_init)
    weights = [
      self.param(f"stage_{s}", init, table.shape, self.param_dtype)
      for s, (init, table) in enumerate(zip(inits, self.topology.stages))
    ]
    bias = (
      self.param("bias", self.bias_init, (self.topology.n_out,), self.param_dtype)
      if self.use_bias
      else None
    )
    return apply_cascade(
      x,
      weights,
      bias,
      self.topology,
      self.dtype,
      self.activation,
      self.impl,
      self.interpret,
      tables=tables,
    )

  def to_dense(self) -> jax.Array:
    """The linear part as a dense ``[n_in, n_out]`` matrix (requires bound params).

    Only defined without ``activation``. Use as
    ``SparseCascade(t).apply(variables, method="to_dense")``.
    """
    if self.activation is not None:
      raise ValueError("to_dense() is undefined with an activation between sublayers")
    weights = [self.get_variable("params", f"stage_{s}") for s in range(self.topology.depth)]
    return kernels.cascade_dense_matrix(weights, self.topology)


class NnxSparseCascade(nnx.Module):
  """The NNX twin of :class:`SparseCascade` (same parameters, init scheme and forward pass).

  Params: ``stage_{s}: nnx.Param[n_out_s, fan_in_s]`` and, with ``use_bias``,
  ``bias: nnx.Param[n_out]``, named as the Linen layer's, so its ``params`` load with
  :meth:`load_linen_params`. Arguments are those of :class:`SparseCascade`, plus ``rngs`` (the
  ``params`` stream draws the weights).

  Example:
    >>> t = T.make("butterfly", 16, radix=2)
    >>> layer = NnxSparseCascade(t, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((3, 16))).shape
    (3, 16)
  """

  def __init__(
    self,
    topology: Topology,
    *,
    use_bias: bool = True,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
    weight_init: str = "depth_aware",
    bias_init: Callable[..., jax.Array] = ZEROS,
    activation: Callable[[jax.Array], jax.Array] | None = None,
    impl: str = "auto",
    interpret: bool = False,
    rngs: nnx.Rngs,
  ) -> None:
    check_float_dtypes(dtype, param_dtype)
    self.topology = topology
    self.dtype, self.activation, self.impl, self.interpret = dtype, activation, impl, interpret
    inits = stage_initializers(topology, weight_init)
    for s, (init, table) in enumerate(zip(inits, topology.stages)):
      setattr(self, f"stage_{s}", nnx.Param(init(rngs.params(), table.shape, param_dtype)))
    self.bias = (
      nnx.Param(bias_init(rngs.params(), (topology.n_out,), param_dtype)) if use_bias else None
    )

  @property
  def features(self) -> int:
    """Output width, as ``SparseCascade.features``."""
    return self.topology.n_out

  def _weights(self) -> list[jax.Array]:
    return [getattr(self, f"stage_{s}")[...] for s in range(self.topology.depth)]

  def __call__(self, x: jax.Array) -> jax.Array:
    """``x: [..., n_in] -> [..., n_out]``."""
    bias = None if self.bias is None else self.bias[...]
    return apply_cascade(
      x,
      self._weights(),
      bias,
      self.topology,
      self.dtype,
      self.activation,
      self.impl,
      self.interpret,
    )

  def to_dense(self) -> jax.Array:
    """The linear part as a dense ``[n_in, n_out]`` matrix (only without ``activation``)."""
    if self.activation is not None:
      raise ValueError("to_dense() is undefined with an activation between sublayers")
    return kernels.cascade_dense_matrix(self._weights(), self.topology)

  def load_linen_params(self, params: dict[str, jax.Array]) -> None:
    """Sets the weights from a :class:`SparseCascade`'s ``variables["params"]`` (same names
    and shapes; raises ``ValueError`` naming a missing, extra or misshapen entry)."""
    names = {f"stage_{s}" for s in range(self.topology.depth)}
    names |= {"bias"} if self.bias is not None else set()
    if set(params) != names:
      raise ValueError(
        f"params have {sorted(params)}; this layer needs exactly {sorted(names)} (use_bias must "
        "match the Linen layer's)"
      )
    for name in sorted(names):
      param = getattr(self, name)
      if tuple(params[name].shape) != tuple(param.shape):
        raise ValueError(f"params[{name!r}].shape={tuple(params[name].shape)}; need {param.shape}")
      param[...] = jnp.asarray(params[name], param.dtype)


def check_float_dtypes(dtype: Any, param_dtype: Any) -> None:
  """Refuses a non-floating ``param_dtype`` or ``dtype`` (``dtype=None``: inferred).

  Integer weights would be initialised by truncating draws of variance ~1/fan_in: all 0.
  """
  for field, value in (("param_dtype", param_dtype), ("dtype", dtype)):
    if value is None and field == "dtype":
      continue
    try:
      floating = jnp.issubdtype(jnp.dtype(value), jnp.floating)
    except TypeError:
      floating = False
    if not floating:
      raise ValueError(
        f"SparseCascade {field}={value!r} is not a floating dtype; use jnp.float32 or "
        "jnp.bfloat16 (to quantise, convert trained float weights afterwards)"
      )


def stage_initializers(topology: Topology, weight_init: str) -> list[Callable[..., jax.Array]]:
  """One initializer ``(key, shape, dtype) -> [n_out_s, fan_in_s]`` per stage (the scheme of
  :class:`SparseCascade`'s docstring; ``weight_init`` one of ``INITS``)."""
  variances = stage_init_variances(topology, weight_init)
  if weight_init == "depth_aware":
    return [_isometric_block_init(table, var) for table, var in zip(topology.stages, variances)]
  return [nn.initializers.normal(stddev=float(np.sqrt(var))) for var in variances]


def apply_cascade(
  x: jax.Array,
  weights: list[jax.Array],
  bias: jax.Array | None,
  topology: Topology,
  dtype: Any = None,
  activation: Callable[[jax.Array], jax.Array] | None = None,
  impl: str = "auto",
  interpret: bool = False,
  *,
  tables: kernels.CascadeTables | None = None,
) -> jax.Array:
  """The forward pass of both layers: ``x: [..., n_in] -> [..., n_out]``, computed in ``dtype``
  (None: promoted from the inputs), with ``activation`` between sublayers if given.
  ``tables``: the index tables as data (None: ``topology``'s own; see ``SparseCascade``)."""
  if x.shape[-1] != topology.n_in:
    raise ValueError(f"x.shape={tuple(x.shape)} does not match the topology's n_in={topology.n_in}")
  x, bias, *weights = nn.dtypes.promote_dtype(x, bias, *weights, dtype=dtype)
  if activation is None:
    y = kernels.cascade_matmul(x, weights, topology, impl, tables=tables, interpret=interpret)
  else:
    lead = x.shape[:-1]
    h = x.reshape(-1, topology.n_in)
    if tables is not None:
      validate_tables(tables, topology)
    data = kernels.CascadeTables.of(topology) if tables is None else tables
    per_stage = zip(weights, data.stages, data.skips, data.scatters, data.skip_scatters)
    for s, (w, table, skip, scatter, skip_scatter) in enumerate(per_stage):
      h = stage_gather(h, w, table, skip, scatter, skip_scatter)
      if s < topology.depth - 1:
        h = activation(h)
    y = h.reshape(*lead, topology.n_out)
  if bias is not None:
    y = y + bias
  return y


def _row_groups(table: np.ndarray) -> np.ndarray | None:
  """``int[groups, rows_per_group]`` of rows with identical input lists, or None if irregular."""
  _, group_of, counts = np.unique(table, axis=0, return_inverse=True, return_counts=True)
  if counts.min() < 2 or counts.min() != counts.max():
    return None
  return np.argsort(group_of.reshape(-1), kind="stable").reshape(counts.size, counts[0])


@jax.jit  # eager callers (tests, notebooks) would otherwise recompile the loop per draw
def orthonormal_columns(a: jax.Array) -> jax.Array:
  """``Q`` of the thin QR factorisation ``a = Q R`` with ``diag(R) > 0``; ``a: float[B, m, k]``,
  ``m >= k``. For Gaussian ``a`` this ``Q`` is Haar-distributed (Mezzadri 2007, sec. 5).

  Classical Gram-Schmidt with one re-orthogonalisation pass ("twice is enough", Giraud et al.
  2005), in plain XLA ops rather than ``jnp.linalg.qr``: on CPU that LAPACK call splits its batch
  over XLA's intra-op thread pool and blocks a pool thread until the pieces finish, so two QRs
  running side by side (one per stage of a jitted cascade init) can hold both threads of a
  2-core machine and wait on each other forever. That deadlock hung our CI.
  """
  highest = jax.lax.Precision.HIGHEST

  def add_column(i, q):
    v = jax.lax.dynamic_index_in_dim(a, i, axis=2, keepdims=False)  # [B, m]
    for _ in range(2):
      coefficients = jnp.einsum("bmk,bm->bk", q, v, precision=highest)
      v = v - jnp.einsum("bmk,bk->bm", q, coefficients, precision=highest)
    v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
    return jax.lax.dynamic_update_index_in_dim(q, v, i, axis=2)

  # Columns not yet filled are zero, so projecting on all of q projects on the filled ones.
  return jax.lax.fori_loop(0, a.shape[2], add_column, jnp.zeros_like(a))


def _isometric_block_init(table: np.ndarray, variance: float) -> Callable[..., jax.Array]:
  """Initializer drawing each group of rows that share inputs as a scaled orthogonal block.

  A group of r rows over the same c inputs gets a random ``[r, c]`` block with orthonormal
  rows (r <= c) or columns (r > c), scaled so that each output's variance gain is
  ``c * variance`` as in the Gaussian case. Irregular tables fall back to that Gaussian (this
  is the scheme's definition for unshared rows, not an error path).
  """
  groups = _row_groups(table)
  n_out, fan_in = table.shape
  gaussian = nn.initializers.normal(stddev=float(np.sqrt(variance)))
  if groups is None:
    return gaussian
  num_groups, rows = groups.shape
  branch_gain = fan_in * variance
  scale = float(np.sqrt(branch_gain * max(1.0, rows / fan_in)))

  def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    tall, wide = max(rows, fan_in), min(rows, fan_in)
    q = orthonormal_columns(jax.random.normal(key, (num_groups, tall, wide), jnp.float32))
    blocks = q if rows > fan_in else jnp.swapaxes(q, -1, -2)  # [groups, rows, fan_in]
    weight = (
      jnp.zeros(shape, jnp.float32).at[groups.reshape(-1)].set(blocks.reshape(-1, fan_in) * scale)
    )
    return weight.astype(dtype)

  return init
