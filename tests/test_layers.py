"""SparseCascade against the dense product of its masked matrices, and its init."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nf_jax import kernels
from nf_jax import topology as T
from nf_jax.layers import NnxSparseCascade, SparseCascade, orthonormal_columns


def numpy_dense_product(params, t: T.Topology) -> np.ndarray:
  """Independent oracle in numpy: prod_s (mask_s * W_s + skip_s), built entry by entry."""
  total = np.eye(t.n_in)
  for s, (table, skip, n_in) in enumerate(zip(t.stages, t.skips, t.stage_n_in)):
    w = np.asarray(params[f"stage_{s}"], np.float64)
    m = np.zeros((n_in, table.shape[0]))
    np.add.at(m, (table, np.arange(table.shape[0])[:, None]), w)
    if skip is not None:
      np.add.at(m, (skip, np.arange(table.shape[0])[:, None]), 1.0 / skip.shape[1])
    total = total @ m
  return total


CASES = [
  ("butterfly", 64, None, dict(radix=2)),
  ("butterfly", 64, 40, dict(radix=4, skip=True)),
  ("parallel_butterfly", 32, None, dict(width=3, skip=True)),
  ("clos", 36, None, dict(skip=True)),
  ("random", 48, 30, dict(fan_in=3, depth=3, skip=True)),
  ("block_diagonal", 64, None, dict(radix=8)),
  ("dense", 16, 9, dict(depth=2)),
]


@pytest.mark.parametrize("name,n,n_in,params", CASES)
def test_output_equals_x_times_dense_product_plus_bias(name, n, n_in, params):
  t = T.make(name, n, n_in=n_in, **params)
  layer = SparseCascade(t, bias_init=nn.initializers.normal(1.0))
  x = jax.random.normal(jax.random.PRNGKey(0), (5, t.n_in))
  variables = layer.init(jax.random.PRNGKey(1), x)
  params_ = variables["params"]
  assert set(params_) == {f"stage_{s}" for s in range(t.depth)} | {"bias"}
  for s, table in enumerate(t.stages):
    assert params_[f"stage_{s}"].shape == table.shape
  dense = numpy_dense_product(params_, t)
  expected = np.asarray(x, np.float64) @ dense + np.asarray(params_["bias"])
  np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.apply(variables, method="to_dense"), dense, rtol=1e-4, atol=1e-5)


def test_drop_in_for_dense_with_leading_dims_and_dtypes():
  t = T.make("butterfly", 16)
  model = nn.Sequential([SparseCascade(t, dtype=jnp.bfloat16, param_dtype=jnp.float32), nn.relu])
  x = jnp.ones((2, 3, 16))
  variables = model.init(jax.random.PRNGKey(0), x)
  y = model.apply(variables, x)
  assert y.shape == (2, 3, 16) and y.dtype == jnp.bfloat16
  assert variables["params"]["layers_0"]["stage_0"].dtype == jnp.float32
  assert SparseCascade(t).features == 16
  no_bias = SparseCascade(t, use_bias=False).init(jax.random.PRNGKey(0), x)["params"]
  assert "bias" not in no_bias


def test_shape_mismatch_names_both_shapes():
  layer = SparseCascade(T.make("butterfly", 16))
  with pytest.raises(ValueError, match=r"x.shape=\(2, 8\) does not match the topology's n_in=16"):
    layer.init(jax.random.PRNGKey(0), jnp.ones((2, 8)))


def test_activation_between_sublayers_only():
  t = T.make("butterfly", 8)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  layer = SparseCascade(t, activation=nn.relu, use_bias=False)
  variables = layer.init(jax.random.PRNGKey(1), x)
  p = variables["params"]
  h = np.asarray(x, np.float64)
  for s in range(t.depth):
    m = np.zeros((8, 8))
    np.add.at(m, (t.stages[s], np.arange(8)[:, None]), np.asarray(p[f"stage_{s}"]))
    h = h @ m
    if s < t.depth - 1:
      h = np.maximum(h, 0)
  np.testing.assert_allclose(layer.apply(variables, x), h, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="undefined with an activation"):
    layer.apply(variables, method="to_dense")


def stage_variances(t: T.Topology, weight_init: str, x: jax.Array) -> np.ndarray:
  """Variance after each stage relative to the input's, propagated in numpy (float64)."""
  params = SparseCascade(t, weight_init=weight_init, use_bias=False).init(
    jax.random.PRNGKey(0), x[:1]
  )["params"]
  h = np.asarray(x, np.float64)
  out = []
  for s, (table, skip) in enumerate(zip(t.stages, t.skips)):
    w = np.asarray(params[f"stage_{s}"], np.float64)
    nxt = np.einsum("bjr,jr->bj", h[:, table], w)
    if skip is not None:
      nxt += h[:, skip].mean(axis=2)
    h = nxt
    out.append(h.var())
  return np.array(out) / np.asarray(x).var()


FAMILIES_FOR_INIT = [
  ("butterfly", dict(radix=2)),
  ("butterfly", dict(radix=2, skip=True)),
  ("parallel_butterfly", dict(radix=2, width=4, skip=True)),
  ("random", dict(fan_in=4)),
  ("block_diagonal", dict(radix=8, skip=True)),
]


@pytest.mark.parametrize("name,params", FAMILIES_FOR_INIT)
def test_depth_aware_init_keeps_variance_in_band_for_depths_1_to_64(name, params):
  """Every stage of every depth 1..64 stays within a factor 2 of the input variance, while
  per-sublayer He (all families) and Glorot (deep Gaussian products, or skip cascades) leave
  the band, as derived in SparseCascade's docstring."""
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 512))
  he_left, glorot_left = [], []
  # Stage s of a depth-D cascade depends on D through the init, so every depth is built.
  for depth in range(1, 65):
    t = T.make(name, 512, depth=depth, **params)
    ratios = stage_variances(t, "depth_aware", x)
    assert ratios.min() >= 0.5 and ratios.max() <= 2.0, (depth, ratios.min(), ratios.max())
    if depth in (8, 64):
      he = stage_variances(t, "he", x)
      glorot = stage_variances(t, "glorot", x)
      he_left.append(he.max() > 2 or he.min() < 0.5)
      glorot_left.append(glorot.max() > 2 or glorot.min() < 0.5)
  assert all(he_left)
  if name != "random":  # Glorot equals 1/fan_in on regular random stages (no skip): it holds.
    assert glorot_left[-1]


@pytest.mark.parametrize("shape", [(5, 32, 32), (3, 64, 8), (7, 2, 2)])
def test_orthonormal_columns_equals_sign_fixed_lapack_qr(shape):
  a = np.asarray(jax.random.normal(jax.random.key(3), shape))
  q_ref, r_ref = np.linalg.qr(a.astype(np.float64))  # LAPACK, float64, on the host
  q_ref = q_ref * np.sign(np.diagonal(r_ref, axis1=-2, axis2=-1))[:, None, :]
  np.testing.assert_allclose(np.asarray(orthonormal_columns(jnp.asarray(a))), q_ref, atol=2e-6)


def test_cascade_init_compiles_without_lapack_qr():
  """Two jnp.linalg.qr calls running side by side deadlocked XLA:CPU's 2-thread pool in CI;
  the isometric block init must stay free of that custom call."""
  t = T.make("block_diagonal", 64, radix=8, depth=3, skip=True)
  hlo = jax.jit(SparseCascade(t).init).lower(jax.random.key(0), np.zeros((1, 64))).as_text()
  assert "custom_call" not in hlo


@pytest.mark.parametrize(
  "name,params",
  [
    ("butterfly", dict(radix=2, depth=5)),
    ("block_diagonal", dict(radix=4, depth=3)),
    ("random", dict(fan_in=3, depth=4, seed=2)),
  ],
)
def test_depth_aware_without_skips_is_per_sublayer_lecun_and_glorot(name, params):
  """Why the init ablation studies cascades with skips (experiments/configs/init_ablation.py):
  without them every square stage gets 1 / fan_in under depth_aware, LeCun and Glorot alike
  (each input feeds fan_in outputs), counted here from the tables. Clos stages change width,
  so there Glorot differs."""
  from nf_jax.init_scale import stage_init_variances

  t = T.make(name, 64, skip=False, **params)
  ours = stage_init_variances(t, "depth_aware")
  glorot = stage_init_variances(t, "glorot")
  for table, n_in, v, g in zip(t.stages, t.stage_n_in, ours, glorot):
    fan_in = table.shape[1]
    fan_out = np.bincount(table.reshape(-1), minlength=n_in).mean()
    assert v == pytest.approx(1.0 / fan_in)
    assert g == pytest.approx(2.0 / (fan_in + fan_out)) == pytest.approx(v)
  skipped = T.make(name, 64, skip=True, **params)
  assert stage_init_variances(skipped, "depth_aware") != stage_init_variances(skipped, "glorot")


# ---------------------------------------------------------------------------------------------
# The NNX twin.


@pytest.mark.parametrize("name,n,n_in,params", CASES)
def test_nnx_twin_on_linen_params_matches_linen_and_dense_reference_with_grad(
  name, n, n_in, params
):
  t = T.make(name, n, n_in=n_in, **params)
  x = jax.random.normal(jax.random.PRNGKey(0), (5, t.n_in))
  target = jax.random.normal(jax.random.PRNGKey(2), (5, t.n_out))
  linen = SparseCascade(t, bias_init=nn.initializers.normal(1.0))
  linen_params = linen.init(jax.random.PRNGKey(1), x)["params"]
  twin = NnxSparseCascade(t, rngs=nnx.Rngs(3))
  twin.load_linen_params(linen_params)
  dense = numpy_dense_product(linen_params, t)
  expected = np.asarray(x, np.float64) @ dense + np.asarray(linen_params["bias"])
  np.testing.assert_allclose(twin(x), linen.apply({"params": linen_params}, x), rtol=1e-6)
  np.testing.assert_allclose(twin(x), expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(twin.to_dense(), dense, rtol=1e-4, atol=1e-5)

  # Gradients of one loss: the twin (nnx.grad), the Linen layer, and the dense reference
  # (kernels.cascade_matmul_reference: dense stage matrices, no sparse kernel).
  def reference_loss(p):
    weights = [p[f"stage_{s}"] for s in range(t.depth)]
    y = kernels.cascade_matmul_reference(x, weights, t) + p["bias"]
    return jnp.sum((y - target) ** 2)

  twin_grads = nnx.grad(lambda m: jnp.sum((m(x) - target) ** 2))(twin)
  linen_grads = jax.grad(lambda p: jnp.sum((linen.apply({"params": p}, x) - target) ** 2))(
    linen_params
  )
  reference_grads = jax.grad(reference_loss)(linen_params)
  for key in linen_params:
    got = np.asarray(twin_grads[key][...])
    np.testing.assert_allclose(got, linen_grads[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(got, reference_grads[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_nnx_twin_init_is_the_depth_aware_scheme():
  """Radix-2 butterfly without skips: depth-aware init draws every 2x2 block orthogonal with
  gain 1, so the whole cascade is an orthogonal matrix; the bias starts at zero."""
  t = T.make("butterfly", 64, radix=2)
  twin = NnxSparseCascade(t, rngs=nnx.Rngs(0))
  m = np.asarray(twin.to_dense(), np.float64)
  np.testing.assert_allclose(m @ m.T, np.eye(64), atol=1e-5)
  assert not np.any(np.asarray(twin.bias[...]))
  assert twin.features == 64
  assert [getattr(twin, f"stage_{s}").shape for s in range(t.depth)] == [(64, 2)] * t.depth


def test_nnx_twin_refuses_bad_params_dtypes_and_shapes():
  t = T.make("butterfly", 16)
  with pytest.raises(ValueError, match="param_dtype=.*int32.* is not a floating dtype"):
    NnxSparseCascade(t, param_dtype=jnp.int32, rngs=nnx.Rngs(0))
  twin = NnxSparseCascade(t, use_bias=False, rngs=nnx.Rngs(0))
  assert twin.bias is None
  params = SparseCascade(t).init(jax.random.PRNGKey(0), jnp.ones((1, 16)))["params"]
  with pytest.raises(ValueError, match="use_bias must match"):
    twin.load_linen_params(params)
  with pytest.raises(ValueError, match=r"x.shape=\(2, 8\) does not match"):
    twin(jnp.ones((2, 8)))
