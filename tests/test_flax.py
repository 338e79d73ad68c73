"""The Flax layers: equal to lrn, Linen equal to NNX, parameters, gradients, training,
serialisation, transformations and construction-time errors."""

import re
import warnings

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

from jax_lrn import linen as lrn_linen
from jax_lrn import lrn
from jax_lrn import nnx as lrn_nnx
from jax_lrn._layer import inverse_softplus

KEY = jax.random.key(0)

# (layer/lrn keyword arguments, input shape)
CONFIGS = [
  (dict(), (2, 5, 5, 7)),
  (dict(size=3, alpha=2.0, beta=0.5, k=1.5, channel_axis=1), (2, 6, 4, 4)),
  (dict(size=4, alpha=1.0, even_placement="after"), (2, 3, 3, 6)),
  (dict(size=3, alpha=1.0, mode="within_channel"), (2, 6, 5, 3)),
  (dict(size=2, alpha=0.5, beta=1.3, mode="within_channel", spatial_axes=[0, 1]), (6, 5, 3)),
]
IDS = ["default", "nchw", "even_after", "within", "within_unbatched"]


def _input(shape, dtype=jnp.float32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(0.0, 2.0, size=shape), dtype)


def _linen_apply(kwargs, x, **extra):
  module = lrn_linen.LocalResponseNorm(**kwargs, **extra)
  variables = module.init(KEY, x)
  return module.apply(variables, x), variables


@pytest.mark.parametrize("kwargs, shape", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_modules_equal_lrn_and_each_other(kwargs, shape, dtype):
  x = _input(shape, dtype)
  expected = lrn(x, **kwargs)
  y_nnx = lrn_nnx.LocalResponseNorm(**kwargs)(x)
  y_linen, _ = _linen_apply(kwargs, x)
  assert y_nnx.dtype == y_linen.dtype == dtype
  np.testing.assert_array_equal(np.asarray(y_nnx), np.asarray(expected))
  np.testing.assert_array_equal(np.asarray(y_linen), np.asarray(expected))


@pytest.mark.parametrize("kwargs, shape", CONFIGS, ids=IDS)
def test_learnable_starts_at_the_given_values(kwargs, shape):
  x = _input(shape, jnp.float64)
  fixed = lrn(x, **kwargs)
  layer = lrn_nnx.LocalResponseNorm(**kwargs, learnable=True, param_dtype=jnp.float64)
  y_linen, variables = _linen_apply(kwargs, x, learnable=True, param_dtype=jnp.float64)
  given = {name: kwargs.get(name, default) for name, default in (("alpha", 1e-4), ("beta", 0.75))}
  given["k"] = kwargs.get("k", 1.0)
  for values in (layer.values(), lrn_linen.LocalResponseNorm.values(variables["params"])):
    for name, value in values.items():
      np.testing.assert_allclose(float(value), given[name], rtol=1e-14)
  # Traced beta takes exp(beta log s) rather than the sqrt products: equal up to rounding.
  np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(fixed), rtol=1e-13)
  np.testing.assert_array_equal(np.asarray(y_linen), np.asarray(layer(x)))


def test_learnable_float32_initial_values():
  layer = lrn_nnx.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0, learnable=True)
  assert layer.raw_alpha[...].dtype == jnp.float32
  for name, value in layer.values().items():
    np.testing.assert_allclose(float(value), {"alpha": 1e-4, "beta": 0.75, "k": 2.0}[name], 1e-6)


def _count(tree):
  return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


def test_parameter_counts():
  x = _input((2, 4, 4, 6))
  assert lrn_linen.LocalResponseNorm().init(KEY, x) == {}
  assert len(jax.tree_util.tree_leaves(nnx.state(lrn_nnx.LocalResponseNorm()))) == 0
  params = lrn_linen.LocalResponseNorm(learnable=True).init(KEY, x)["params"]
  assert sorted(params) == ["raw_alpha", "raw_beta", "raw_k"]
  assert _count(params) == 3
  state = nnx.state(lrn_nnx.LocalResponseNorm(learnable=True), nnx.Param)
  assert sorted(state.keys()) == ["raw_alpha", "raw_beta", "raw_k"]
  assert _count(state) == 3


def test_linen_equals_nnx_with_trained_parameters():
  """Same raw parameters (not the initial ones) in both APIs: identical outputs and grads."""
  x = _input((2, 5, 5, 8))
  raws = {"raw_alpha": 0.3, "raw_beta": -0.2, "raw_k": 1.1}
  layer = lrn_nnx.LocalResponseNorm(size=3, alpha=1.0, learnable=True)
  for name, value in raws.items():
    getattr(layer, name)[...] = jnp.float32(value)
  linen = lrn_linen.LocalResponseNorm(size=3, alpha=1.0, learnable=True)
  params = {name: jnp.float32(value) for name, value in raws.items()}
  np.testing.assert_array_equal(
    np.asarray(layer(x)), np.asarray(linen.apply({"params": params}, x))
  )
  g_linen = jax.grad(lambda p: jnp.sum(linen.apply({"params": p}, x) ** 2))(params)
  g_nnx = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(layer)
  for name in raws:
    np.testing.assert_array_equal(np.asarray(g_linen[name]), np.asarray(g_nnx[name][...]))


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_learnable_gradients_follow_the_chain_rule(mode):
  """d loss / d raw = (d loss / d value) * softplus'(raw), with d loss / d value from lrn."""
  x = _input((2, 6, 6, 5), jnp.float64)
  kwargs = dict(size=3, alpha=1.5, beta=0.6, k=0.8, mode=mode)
  layer = lrn_nnx.LocalResponseNorm(**kwargs, learnable=True, param_dtype=jnp.float64)
  grads = nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(layer)
  by_value = jax.grad(
    lambda a, b, k: jnp.sum(jnp.sin(lrn(x, 3, a, b, k, mode=mode))), argnums=(0, 1, 2)
  )(jnp.float64(1.5), jnp.float64(0.6), jnp.float64(0.8))
  for name, d_value in zip(("alpha", "beta", "k"), by_value):
    raw = getattr(layer, f"raw_{name}")[...]
    d_raw = grads[f"raw_{name}"][...]
    assert np.isfinite(d_raw) and d_raw != 0.0
    np.testing.assert_allclose(float(d_raw), float(d_value * jax.nn.sigmoid(raw)), rtol=1e-10)


def test_optax_steps_reduce_a_loss_nnx():
  x = _input((4, 6, 6, 8))
  target = lrn(x, 5, alpha=3.0, beta=0.9, k=2.0)
  layer = lrn_nnx.LocalResponseNorm(size=5, alpha=1.0, beta=0.6, k=1.0, learnable=True)
  optimizer = nnx.Optimizer(layer, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)

  def loss_fn(m):
    return jnp.mean((m(x) - target) ** 2)

  @nnx.jit
  def step(m, opt):
    loss, grads = nnx.value_and_grad(loss_fn)(m)
    opt.update(m, grads)
    return loss

  losses = [float(step(layer, optimizer)) for _ in range(30)]
  assert all(np.isfinite(losses))
  assert float(loss_fn(layer)) < 0.1 * losses[0]


def test_optax_steps_reduce_a_loss_linen():
  x = _input((4, 6, 6, 8))
  target = lrn(x, 3, alpha=3.0, beta=0.9, k=2.0, mode="within_channel")
  module = lrn_linen.LocalResponseNorm(size=3, mode="within_channel", alpha=1.0, learnable=True)
  params = module.init(KEY, x)["params"]
  tx = optax.sgd(0.1, momentum=0.9)
  opt_state = tx.init(params)

  def loss_fn(p):
    return jnp.mean((module.apply({"params": p}, x) - target) ** 2)

  @jax.jit
  def step(p, s):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  first = float(loss_fn(params))
  for _ in range(30):
    params, opt_state, loss = step(params, opt_state)
    assert np.isfinite(float(loss))
  assert float(loss_fn(params)) < 0.1 * first


def test_linen_serialization_round_trip():
  x = _input((2, 4, 4, 6))
  module = lrn_linen.LocalResponseNorm(size=3, alpha=2.0, learnable=True)
  variables = module.init(KEY, x)
  trained = jax.tree_util.tree_map(lambda p: p + 0.25, variables)
  restored = flax.serialization.from_bytes(variables, flax.serialization.to_bytes(trained))
  for name in ("raw_alpha", "raw_beta", "raw_k"):
    assert restored["params"][name] == trained["params"][name]
    assert restored["params"][name] != variables["params"][name]
  np.testing.assert_array_equal(
    np.asarray(module.apply(restored, x)), np.asarray(module.apply(trained, x))
  )
  # The parameter-free module serialises to an empty dict and back.
  empty = lrn_linen.LocalResponseNorm().init(KEY, x)
  assert flax.serialization.msgpack_restore(flax.serialization.to_bytes(empty)) == {}


def test_nnx_state_update_round_trip():
  x = _input((2, 4, 4, 6))
  layer = lrn_nnx.LocalResponseNorm(size=3, alpha=2.0, learnable=True)
  saved = jax.tree_util.tree_map(lambda v: v, nnx.state(layer))
  before = layer(x)
  layer.raw_beta[...] = jnp.float32(3.0)
  assert not np.array_equal(np.asarray(layer(x)), np.asarray(before))
  nnx.update(layer, saved)
  np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(before))
  # split / merge gives an equal module.
  graphdef, state = nnx.split(layer)
  np.testing.assert_array_equal(np.asarray(nnx.merge(graphdef, state)(x)), np.asarray(before))


@pytest.mark.parametrize("learnable", [False, True])
def test_jit(learnable):
  x = _input((2, 5, 5, 8))
  layer = lrn_nnx.LocalResponseNorm(size=3, alpha=1.0, learnable=learnable)
  np.testing.assert_allclose(
    np.asarray(nnx.jit(lambda m, x: m(x))(layer, x)), np.asarray(layer(x)), rtol=1e-6
  )
  graphdef, state = nnx.split(layer)
  jitted = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
  np.testing.assert_allclose(np.asarray(jitted(state, x)), np.asarray(layer(x)), rtol=1e-6)
  module = lrn_linen.LocalResponseNorm(size=3, alpha=1.0, learnable=learnable)
  variables = module.init(KEY, x)
  np.testing.assert_allclose(
    np.asarray(jax.jit(module.apply)(variables, x)), np.asarray(module.apply(variables, x)), 1e-6
  )


def test_sequential():
  x = _input((2, 8, 8, 3))
  rngs = nnx.Rngs(0)
  conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
  norm = lrn_nnx.LocalResponseNorm(size=5, alpha=5e-4, k=2.0, learnable=True)
  model = nnx.Sequential(conv, nnx.relu, norm)
  np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(norm(nnx.relu(conv(x)))))
  assert _count(nnx.state(model, nnx.Param)) == 3 * 3 * 3 * 8 + 8 + 3

  linen_model = nn.Sequential(
    [nn.Conv(8, (3, 3)), nn.relu, lrn_linen.LocalResponseNorm(5, 5e-4, k=2.0, learnable=True)]
  )
  params = linen_model.init(KEY, x)["params"]
  assert _count(params) == 3 * 3 * 3 * 8 + 8 + 3
  conv_params = {"params": params["layers_0"]}
  expected = lrn(nn.relu(nn.Conv(8, (3, 3)).apply(conv_params, x)), 5, 5e-4, 0.75, 2.0)
  np.testing.assert_allclose(
    np.asarray(linen_model.apply({"params": params}, x)), np.asarray(expected), rtol=1e-6
  )


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_vmap(mode):
  """vmap over examples of unbatched (H, W, C) inputs equals a loop, for both APIs."""
  x = _input((3, 5, 6, 4))
  spatial = (0, 1) if mode == "within_channel" else None
  layer = lrn_nnx.LocalResponseNorm(size=3, alpha=1.0, mode=mode, spatial_axes=spatial)
  module = lrn_linen.LocalResponseNorm(size=3, alpha=1.0, mode=mode, spatial_axes=spatial)
  variables = module.init(KEY, x[0])
  loop = np.stack([np.asarray(layer(xi)) for xi in x])
  np.testing.assert_allclose(np.asarray(jax.vmap(layer)(x)), loop, rtol=1e-6)
  np.testing.assert_allclose(
    np.asarray(jax.vmap(module.apply, in_axes=(None, 0))(variables, x)), loop, rtol=1e-6
  )
  in_axes = (None, 0)
  np.testing.assert_allclose(
    np.asarray(nnx.vmap(lambda m, xi: m(xi), in_axes=in_axes)(layer, x)), loop, rtol=1e-6
  )


ERRORS = [
  # (kwargs, exception, message regex), raised before any input is seen
  (dict(size=0), ValueError, r"size must be a positive int, got 0"),
  (dict(size=2.5), TypeError, r"size must be a positive int, got 2\.5"),
  (dict(alpha=-1.0), ValueError, r"alpha must be >= 0, got -1\.0"),
  (dict(k=-0.5), ValueError, r"k must be >= 0, got -0\.5"),
  (dict(beta=float("nan")), ValueError, r"beta must be finite, got nan"),
  (dict(beta="0.75"), TypeError, r"beta must be a Python or NumPy real number .* got '0\.75'"),
  (dict(alpha=jnp.float32(1.0)), TypeError, r"alpha must be a Python or NumPy real number"),
  (dict(mode="spatial"), ValueError, r"mode must be one of .*'spatial'"),
  (dict(even_placement="middle"), ValueError, r"even_placement must be one of .*'middle'"),
  (dict(channel_axis=1.0), TypeError, r"channel_axis must be an int, got 1\.0"),
  (dict(spatial_axes=(1, 2)), ValueError, r"spatial_axes=\(1, 2\) was given with mode='across"),
  (dict(mode="within_channel", spatial_axes="hw"), TypeError, r"spatial_axes must be"),
  (dict(learnable="yes"), ValueError, r"learnable names \['yes'\] are not learnable"),
  (dict(learnable=1), TypeError, r"learnable must be a bool or a sequence of the names"),
  (
    dict(k=0.0, learnable=True),
    ValueError,
    r"k must be > 0 when learned \(learnable=True.*got 0\.0",
  ),
  (dict(beta=-0.5, learnable=True), ValueError, r"beta must be > 0 when learned"),
  (dict(beta=-0.5, learnable=["beta"]), ValueError, r"beta must be > 0 when learned"),
  (dict(channel_axis=True), TypeError, r"channel_axis must be an int, got True"),
  (
    dict(mode="within_channel", spatial_axes=(True, 2)),
    TypeError,
    r"spatial_axes must be an int, a sequence of ints or None, got \(True, 2\)",
  ),
  (
    dict(learnable=True, param_dtype=jnp.int32),
    TypeError,
    r"param_dtype must be float16, bfloat16, float32 or float64, got int32",
  ),
  (dict(param_dtype=jnp.float8_e4m3fn), TypeError, r"param_dtype must be .* got float8_e4m3fn"),
  (dict(param_dtype=jnp.complex64), TypeError, r"param_dtype must be .* got complex64"),
  (dict(param_dtype="no such dtype"), TypeError, r"param_dtype must be .* got 'no such dtype'"),
  (dict(param_dtype=None), TypeError, r"param_dtype must be .* got None"),
]

# Errors that need the input's rank: raised at the first call (NNX) or at init (Linen).
CALL_ERRORS = [
  (dict(channel_axis=4), ValueError, r"channel_axis=4 is out of range .* rank 4"),
  (
    dict(mode="within_channel", spatial_axes=(1, 3)),
    ValueError,
    r"spatial_axes=\(1, 3\) contains the channel axis \(3\)",
  ),
  (dict(mode="within_channel", spatial_axes=(1, 9)), ValueError, r"spatial_axes=9 is out of"),
]


@pytest.mark.parametrize("kwargs, exc, match", ERRORS)
def test_errors_at_construction(kwargs, exc, match):
  with pytest.raises(exc, match=match):
    lrn_nnx.LocalResponseNorm(**kwargs)
  with pytest.raises(exc, match=match):
    lrn_linen.LocalResponseNorm(**kwargs)


@pytest.mark.parametrize("kwargs, exc, match", ERRORS + CALL_ERRORS)
def test_errors_surface_from_linen_init_and_nnx_call(kwargs, exc, match):
  x = jnp.ones((2, 3, 4, 5), jnp.float32)
  with pytest.raises(exc, match=match):
    lrn_linen.LocalResponseNorm(**kwargs).init(KEY, x)
  with pytest.raises(exc, match=match):
    lrn_nnx.LocalResponseNorm(**kwargs)(x)
  with pytest.raises(exc, match=match):
    jax.jit(lambda x: lrn_nnx.LocalResponseNorm(**kwargs)(x))(x)


# Axis arguments lrn refuses; the layers refuse them at construction with lrn's own message.
BAD_AXES = [
  dict(channel_axis=True),
  dict(channel_axis=np.True_),
  dict(channel_axis=1.0),
  dict(channel_axis="1"),
  dict(mode="within_channel", spatial_axes=(True, 2)),
  dict(mode="within_channel", spatial_axes="12"),
  dict(mode="within_channel", spatial_axes=(1.0, 2)),
  dict(mode="within_channel", spatial_axes=np.array([1.0, 2.0])),
]


@pytest.mark.parametrize("kwargs", BAD_AXES, ids=repr)
def test_layers_and_lrn_refuse_the_same_axes(kwargs):
  x = jnp.ones((2, 3, 4, 5), jnp.float32)
  with pytest.raises(TypeError) as from_lrn:
    lrn(x, 3, **kwargs)
  message = re.escape(str(from_lrn.value))
  with pytest.raises(TypeError, match=message):
    lrn_nnx.LocalResponseNorm(3, **kwargs)
  with pytest.raises(TypeError, match=message):
    lrn_linen.LocalResponseNorm(3, **kwargs)


def test_layers_accept_numpy_axes():
  x = _input((2, 5, 6, 4))
  expected = lrn(x, 3, mode="within_channel", spatial_axes=(1, 2), channel_axis=3)
  kwargs = dict(mode="within_channel", spatial_axes=np.array([1, 2]), channel_axis=np.int64(3))
  np.testing.assert_array_equal(
    np.asarray(lrn_nnx.LocalResponseNorm(3, **kwargs)(x)), np.asarray(expected)
  )
  y_linen, _ = _linen_apply(dict(size=3, **kwargs), x)
  np.testing.assert_array_equal(np.asarray(y_linen), np.asarray(expected))


@pytest.mark.parametrize("dtype, unit", [(jnp.bfloat16, 2.0**-8), (jnp.float16, 2.0**-11)])
def test_16bit_param_dtype_moves_initial_values_within_the_documented_bound(dtype, unit):
  """The docstring's bound: rounding the raw parameter r (half an ulp, ``unit * |r|``) moves
  softplus(r) by at most ``sigmoid(r) |dr| <= softplus(r) |dr|``, and rounding the value adds
  ``unit`` relative: ``(|r| + 1) * unit`` relative in all."""
  given = dict(alpha=1e-4, beta=0.75, k=2.0)
  layer = lrn_nnx.LocalResponseNorm(**given, learnable=True, param_dtype=dtype)
  params = lrn_linen.LocalResponseNorm(**given, learnable=True, param_dtype=dtype).init(
    KEY, jnp.ones((1, 4))
  )["params"]
  linen_values = lrn_linen.LocalResponseNorm.values(params)
  for name, value in layer.values().items():
    assert value.dtype == dtype and linen_values[name] == value
    bound = (abs(inverse_softplus(given[name])) + 1) * unit * given[name]
    assert abs(float(value) - given[name]) <= bound


def test_numpy_float64_with_x64_off_through_the_layers():
  """No "float64 truncated" warnings from the layers either (fixed and learnable)."""
  x = np.random.default_rng(0).normal(size=(2, 4, 4, 8))
  with jax.enable_x64(False), warnings.catch_warnings():
    warnings.simplefilter("error")
    for learnable in (False, True):
      layer = lrn_nnx.LocalResponseNorm(3, alpha=2.0, learnable=learnable)
      module = lrn_linen.LocalResponseNorm(3, alpha=2.0, learnable=learnable)
      expected = layer(x.astype(np.float32))
      y_nnx = layer(x)
      y_linen = module.apply(module.init(KEY, x), x)
      assert y_nnx.dtype == y_linen.dtype == jnp.float32
      np.testing.assert_array_equal(np.asarray(y_nnx), np.asarray(expected))
      np.testing.assert_array_equal(np.asarray(y_linen), np.asarray(expected))


def test_nnx_reports_the_trained_values():
  """After optimizer steps, layer.alpha/beta/k are the trained values (those values() and the
  forward pass use); no stale initial values remain in the layer or its repr."""
  x = _input((2, 5, 5, 8))
  target = lrn(x, 3, alpha=3.0, beta=0.9, k=2.0)
  initial = dict(alpha=1.0, beta=0.6, k=1.5)
  layer = lrn_nnx.LocalResponseNorm(size=3, **initial, learnable=True)
  optimizer = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)

  @nnx.jit
  def step(m, opt):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - target) ** 2))(m)
    opt.update(m, grads)

  for _ in range(3):
    step(layer, optimizer)
  values = layer.values()
  for name in ("alpha", "beta", "k"):
    current = getattr(layer, name)
    raw = getattr(layer, f"raw_{name}")[...]
    assert current == values[name] == jax.nn.softplus(raw)
    assert abs(float(current) - initial[name]) > 1e-4
    # The repr shows the trained value (6 significant digits), not the initial one.
    assert not re.search(rf"\b{name}={initial[name]}[,)]", repr(layer))
    assert f"{name}={float(current):.6g}," in repr(layer)
  np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(lrn(x, 3, **values)))
  # A fixed layer keeps plain Python floats, and no state.
  fixed = lrn_nnx.LocalResponseNorm(size=3, **initial)
  assert (fixed.alpha, fixed.beta, fixed.k) == (1.0, 0.6, 1.5)
  assert fixed.values() == initial and len(nnx.state(fixed)) == 0
