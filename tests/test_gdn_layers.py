"""The GDN and spatial GDN layers (NNX, Linen, Equinox): initialisation, the non-negative
reparameterisation and its lower bound, gradients to the stored parameters, agreement between
the three frameworks and with the functions, training, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jax_lrn.equinox
import jax_lrn.linen
import jax_lrn.nnx
from jax_lrn import gdn, spatial_gdn
from jax_lrn._gdn import lower_bound, nonnegative, reparameterize

import gdn_reference
from cases import random_input

PEDESTAL = 2.0**-36
SETTINGS = [
  dict(),
  dict(inverse=True),
  dict(alpha=1.0, epsilon=1.0),
  dict(alpha=1.0, epsilon=1.0, inverse=True, rectify=True),
  dict(alpha=1.5, epsilon=0.75, gamma_init=0.3, beta_min=0.01),
]
FRAMEWORKS = ("nnx", "linen", "equinox")
MODULES = {"nnx": jax_lrn.nnx, "linen": jax_lrn.linen, "equinox": jax_lrn.equinox}
# A layer kind is the window of a SpatialGDN, or None for GDN.
KINDS = [None, (3, 2)]


def kind_id(window):
  return "GDN" if window is None else f"SpatialGDN{'x'.join(map(str, window))}"


def make_layer(framework, num_features, window=None, **kw):
  """GDN (``window`` None) or SpatialGDN in one framework; Linen infers ``num_features``."""
  module = MODULES[framework]
  if framework == "linen":
    return module.GDN(**kw) if window is None else module.SpatialGDN(window_shape=window, **kw)
  if window is None:
    return module.GDN(num_features, **kw)
  return module.SpatialGDN(num_features, window, **kw)


def functional(framework, layer, x):
  """``(params, apply)``: the layer's stored parameters as a dict of arrays and ``apply(params,
  x)``, the layer's output with those parameters, through each framework's own API."""
  if framework == "linen":
    params = dict(layer.init(jax.random.key(0), x)["params"])
    return params, lambda p, x: layer.apply({"params": p}, x)
  params = {"raw_beta": jnp.asarray(layer.raw_beta), "raw_gamma": jnp.asarray(layer.raw_gamma)}
  if framework == "equinox":
    leaves = lambda m: (m.raw_beta, m.raw_gamma)  # noqa: E731
    return params, lambda p, x: eqx.tree_at(leaves, layer, (p["raw_beta"], p["raw_gamma"]))(x)
  graphdef, state = nnx.split(layer)

  def apply(p, x):
    module = nnx.merge(graphdef, state, copy=True)  # the layer itself is left as it is
    module.raw_beta[...], module.raw_gamma[...] = p["raw_beta"], p["raw_gamma"]
    return module(x)

  return params, apply


def three_layers(channels, channel_axis=-1, window=None, **kw):
  """The same layer in NNX, Linen and Equinox."""
  return tuple(
    make_layer(framework, channels, window, channel_axis=channel_axis, **kw)
    for framework in FRAMEWORKS
  )


def function_settings(kw):
  """The layer's keyword arguments that :func:`gdn` takes too."""
  return {k: v for k, v in kw.items() if k not in ("gamma_init", "beta_min")}


def fresh_gamma(window, channels, gamma_init):
  """What a fresh layer's gamma should be: ``gamma_init * I`` at index ``(k - 1) // 2`` of each
  window size ``k`` (the tap that reads the position itself), 0 elsewhere."""
  gamma = np.zeros((*(window or ()), channels, channels))
  gamma[tuple((k - 1) // 2 for k in window or ())] = gamma_init * np.eye(channels)
  return gamma


# (x shape, channel_axis, window): GDN at any rank; SpatialGDN with 2-D odd and even, and 1-D
# even windows.
CASES = [
  ((2, 3, 3, 8), -1, None),
  ((2, 8, 3, 3), 1, None),
  ((8,), 0, None),
  ((2, 3, 3, 8), -1, (3, 3)),
  ((2, 8, 3, 4), 1, (2, 3)),
  ((2, 5, 4), -1, (4,)),
]


@pytest.mark.parametrize("kw", SETTINGS)
@pytest.mark.parametrize(
  "shape, axis, window", CASES, ids=[f"{kind_id(w)}-{s}-{a}" for s, a, w in CASES]
)
def test_three_frameworks_agree_and_match_the_function(rng, kw, shape, axis, window):
  x, x64 = random_input(rng, shape, jnp.float32)
  channels = shape[axis]
  layers = three_layers(channels, axis, window, **kw)
  outputs = []
  for framework, layer in zip(FRAMEWORKS, layers):
    params, apply = functional(framework, layer, x)
    outputs.append(apply(params, x))
    # jit == eager, to the rounding of XLA's fusions (as for the LRN layers).
    np.testing.assert_allclose(jax.jit(apply)(params, x), outputs[-1], rtol=1e-6)
    np.testing.assert_array_equal(params["raw_gamma"], layers[0].raw_gamma[...])
  y = layers[0](x)
  for other in outputs:
    np.testing.assert_array_equal(other, y)
  values, settings = layers[0].values(), function_settings(kw)
  function = gdn if window is None else spatial_gdn
  np.testing.assert_array_equal(
    y, function(x, values["beta"], values["gamma"], channel_axis=axis, **settings)
  )
  # A fresh layer: beta = 1, gamma as fresh_gamma (to float32 rounding of the reparameterisation);
  # a fresh SpatialGDN computes what a fresh GDN does, to the bit.
  gamma_init = kw.get("gamma_init", 0.1)
  np.testing.assert_allclose(values["beta"], 1.0, rtol=2**-23)
  np.testing.assert_allclose(
    values["gamma"], fresh_gamma(window, channels, gamma_init), rtol=2**-22, atol=0
  )
  if window is not None:
    np.testing.assert_array_equal(y, jax_lrn.nnx.GDN(channels, channel_axis=axis, **kw)(x))
  want = gdn_reference.gdn(
    x64, np.ones(channels), gamma_init * np.eye(channels), channel_axis=axis, **settings
  )
  np.testing.assert_allclose(y, want, rtol=2e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_spatial_layer_takes_unbatched_inputs_as_a_batch_of_one(rng, framework):
  """An input without the batch axis, e.g. (C, H, W) with channel_axis=0 under vmap
  (Equinox's convention), is normalized as a batch of one."""
  x, _ = random_input(rng, (3, 4, 5, 6), jnp.float64)
  layer = make_layer(framework, 4, (3, 3), channel_axis=0, param_dtype=jnp.float64)
  params, apply = functional(framework, layer, x[0])
  params["raw_gamma"] = params["raw_gamma"] + jnp.asarray(rng.uniform(0.0, 0.2, (3, 3, 4, 4)))
  got = jax.vmap(lambda x: apply(params, x))(x)
  beta, gamma = nonnegative(params["raw_beta"], 1e-6), nonnegative(params["raw_gamma"], 0.0)
  np.testing.assert_array_equal(got, spatial_gdn(x, beta, gamma, channel_axis=1))


@pytest.mark.parametrize("window", KINDS, ids=kind_id)
def test_stored_parameters_are_the_references_reparameterisation(window):
  layer = make_layer("nnx", 4, window, gamma_init=0.1)
  f32 = np.float32
  p = f32(PEDESTAL)
  np.testing.assert_array_equal(layer.raw_beta[...], np.sqrt(np.maximum(f32(1) + p, p)))
  gamma = fresh_gamma(window, 4, f32(0.1)).astype(f32)
  np.testing.assert_array_equal(layer.raw_gamma[...], np.sqrt(np.maximum(gamma + p, p)))
  # Off the diagonal (and off the window's centre) the stored value is the offset 2**-18 and
  # the effective value exactly 0.
  assert np.all((layer.raw_gamma[...] == 2.0**-18) == (gamma == 0))
  assert np.all((layer.gamma == 0.0) == (gamma == 0))


@pytest.mark.parametrize("minimum", [0.0, 1e-6, 0.5])
def test_reparameterisation_reproduces_values_above_the_minimum(rng, minimum):
  """TFC parameters_test.py: GDNParameter(u, minimum)() == max(u, minimum)."""
  u = rng.uniform(-1.0, 2.0, size=(50,))
  got = nonnegative(reparameterize(u, jnp.float64), minimum)
  np.testing.assert_allclose(got, np.maximum(u, minimum), rtol=0, atol=1e-6)
  assert np.all(np.asarray(got) >= minimum * (1 - 1e-12))


def test_lower_bound_gradient_passes_towards_the_bound():
  """Gradient to x: g where x >= bound or g < 0, else 0 (TFC lower_bound, CompressAI
  LowerBound); none to the bound."""
  x = jnp.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0])
  g = jnp.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
  bound = jnp.float64(1.0)
  y, vjp = jax.vjp(lower_bound, x, bound)
  np.testing.assert_array_equal(y, [1.0, 1.0, 2.0, 1.0, 1.0, 2.0])
  dx, dbound = vjp(g)
  np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, -1.0, -1.0, -1.0])
  assert dbound == 0.0


@pytest.mark.parametrize("kw", SETTINGS[:4])
@pytest.mark.parametrize("window", KINDS, ids=kind_id)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_raw_parameter_gradients(rng, framework, window, kw):
  """d loss / d raw = 2 raw * d loss / d value (where the bound passes it), with d loss / d value
  from the float64 references written from the formulas (tests/gdn_reference.py)."""
  x, x64 = random_input(rng, (2, 3, 4, 5), jnp.float64)
  g = rng.normal(size=x.shape)
  layer = make_layer(framework, 5, window, param_dtype=jnp.float64, **kw)
  params, apply = functional(framework, layer, x)
  # Move gamma off its initial value, one entry below the bound with a gradient away.
  raw_gamma = params["raw_gamma"] + jnp.asarray(rng.uniform(0.0, 0.2, params["raw_gamma"].shape))
  params = {"raw_beta": params["raw_beta"], "raw_gamma": raw_gamma}
  grads = jax.grad(lambda p: jnp.vdot(apply(p, x), jnp.asarray(g)))(params)
  beta, gamma = nonnegative(params["raw_beta"], 1e-6), nonnegative(raw_gamma, 0.0)
  settings = function_settings(kw)
  if window is None:
    _, want = gdn_reference.gdn_and_vjp(x64, beta, gamma, g, **settings)
  else:
    _, want = gdn_reference.spatial_gdn_and_vjp(x64, beta, gamma, g, **settings)
  np.testing.assert_allclose(grads["raw_beta"], 2 * params["raw_beta"] * want["beta"], rtol=1e-9)
  np.testing.assert_allclose(grads["raw_gamma"], 2 * raw_gamma * want["gamma"], rtol=1e-9)


def test_gradient_to_a_raw_value_below_its_bound():
  """A raw gamma below the bound (value 0) still gets a gradient that moves it up: descent
  with a negative gradient increases it; a positive one (pushing further down) is blocked."""
  x = jnp.ones((1, 2))
  layer = jax_lrn.nnx.GDN(2, alpha=1.0, epsilon=1.0, inverse=True)
  layer.raw_gamma[...] = jnp.array([[0.3, 0.0], [0.0, 0.3]], jnp.float32)  # 0 < bound 2**-18
  # Inverse GDN grows with gamma: d sum(y) / d gamma > 0, so descent on -sum(y) wants it up.
  grads = nnx.grad(lambda m: -jnp.sum(m(x)))(layer)
  assert grads.raw_gamma[...][0, 1] < 0  # passed although below the bound
  grads = nnx.grad(lambda m: jnp.sum(m(x)))(layer)
  assert grads.raw_gamma[...][0, 1] == 0  # blocked: it would push further below


@pytest.mark.parametrize("window", KINDS, ids=kind_id)
@pytest.mark.parametrize("param_dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_param_dtype(rng, param_dtype, window):
  x, _ = random_input(rng, (2, 3, 3, 4), jnp.float32)
  layer = make_layer("nnx", 4, window, param_dtype=param_dtype)
  assert layer.raw_beta[...].dtype == param_dtype and layer.raw_gamma[...].dtype == param_dtype
  assert layer.raw_gamma.shape == (*(window or ()), 4, 4) and layer.raw_beta.shape == (4,)
  assert layer(x).dtype == jnp.float32
  params = make_layer("linen", 4, window, param_dtype=param_dtype).init(jax.random.key(0), x)
  assert params["params"]["raw_gamma"].dtype == param_dtype
  assert params["params"]["raw_gamma"].shape == layer.raw_gamma.shape


@pytest.mark.parametrize("window", KINDS, ids=kind_id)
def test_linen_runs_each_initializer_once_at_init(monkeypatch, rng, window):
  """Linen's init builds raw_beta and raw_gamma with one call each, apply checks their shapes
  with one more (Flax evaluates each initializer under jax.eval_shape there), and the params
  are those of a fresh NNX layer."""
  calls = {"initial_beta": 0, "initial_gamma": 0}

  def counted(name):
    original = getattr(jax_lrn.linen, name)

    def initializer(*args, **kwargs):
      calls[name] += 1
      return original(*args, **kwargs)

    return initializer

  for name in calls:
    monkeypatch.setattr(jax_lrn.linen, name, counted(name))
  x, _ = random_input(rng, (2, 3, 3, 4), jnp.float32)
  module = make_layer("linen", 4, window)
  params = module.init(jax.random.key(0), x)["params"]
  assert calls == {"initial_beta": 1, "initial_gamma": 1}
  module.apply({"params": params}, x)
  assert calls == {"initial_beta": 2, "initial_gamma": 2}
  fresh = make_layer("nnx", 4, window)
  np.testing.assert_array_equal(params["raw_beta"], fresh.raw_beta[...])
  np.testing.assert_array_equal(params["raw_gamma"], fresh.raw_gamma[...])


@pytest.mark.parametrize("window", KINDS, ids=kind_id)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layers_train_under_jit(rng, framework, window):
  """Jitted optax steps through each layer lower a loss that the layer's parameters control,
  and keep the effective parameters in range."""
  x, _ = random_input(rng, (8, 4, 4, 4), jnp.float32)
  target = 0.5 * x
  layer = make_layer(framework, 4, window)
  params, apply = functional(framework, layer, x)
  optimizer = optax.sgd(0.1, momentum=0.9)  # adam mixes int32 and float under strict promotion

  def loss(p):
    return jnp.mean((apply(p, x) - target) ** 2)

  @jax.jit
  def step(p, state):
    value, grads = jax.value_and_grad(loss)(p)
    updates, state = optimizer.update(grads, state, p)
    return optax.apply_updates(p, updates), state, value

  state = optimizer.init(params)
  losses = []
  for _ in range(10):
    params, state, value = step(params, state)
    losses.append(float(value))
  assert losses[-1] < losses[0]
  assert float(loss(params)) < losses[0]
  assert bool(jnp.all(nonnegative(params["raw_gamma"], 0.0) >= 0))
  assert bool(jnp.all(nonnegative(params["raw_beta"], 1e-6) >= 1e-6 * (1 - 2**-20)))


CONSTRUCTION_ERRORS = [
  (dict(num_features=0), ValueError, "num_features must be a positive int, got 0"),
  (dict(num_features=2.0), TypeError, "num_features must be a positive int, got 2.0"),
  (dict(alpha=0.0), ValueError, "alpha must be > 0"),
  (dict(epsilon=-1.0), ValueError, "epsilon must be >= 0"),
  (dict(alpha=jnp.float32(2.0)), TypeError, "alpha must be a Python or NumPy real number"),
  (dict(beta_min=-1e-6), ValueError, "beta_min must be finite and >= 0"),
  (dict(gamma_init=float("nan")), ValueError, "gamma_init must be finite and >= 0"),
  (dict(inverse="no"), TypeError, "inverse must be a bool"),
  (dict(channel_axis=1.0), TypeError, "channel_axis must be an int"),
  (dict(param_dtype=jnp.int32), TypeError, "param_dtype must be float16"),
]
WINDOW_ERRORS = [
  (dict(window_shape=3), TypeError, r"window_shape must be a sequence of positive ints.*got 3"),
  (dict(window_shape=(3, 2.0)), TypeError, r"window_shape must be a sequence of positive ints"),
  (dict(window_shape="33"), TypeError, r"window_shape must be a sequence of positive ints"),
  (dict(window_shape=()), ValueError, r"window_shape must hold one positive size per spatial"),
  (dict(window_shape=(3, 0)), ValueError, r"window_shape must hold .*got \(3, 0\)"),
]


@pytest.mark.parametrize(
  "framework, window, kw, error, match",
  [
    (framework, window, *case)
    for framework in FRAMEWORKS
    for window in KINDS
    for case in CONSTRUCTION_ERRORS + (WINDOW_ERRORS if window else [])
    if not (framework == "linen" and "num_features" in case[0])
  ],
)
def test_construction_errors(framework, window, kw, error, match):
  kw = dict(kw)
  num_features = kw.pop("num_features", 3)
  window = kw.pop("window_shape", window)
  with pytest.raises(error, match=match):
    make_layer(framework, num_features, window, **kw)


def test_linen_spatial_layer_needs_its_window_shape():
  with pytest.raises(TypeError, match="window_shape"):
    jax_lrn.linen.SpatialGDN()  # type: ignore[call-arg]


@pytest.mark.parametrize("window", KINDS, ids=kind_id)
def test_wrong_channel_count_at_call(window):
  with pytest.raises(ValueError, match=r"beta must have shape \(C,\) = \(5,\).*got shape \(3,\)"):
    make_layer("nnx", 3, window)(jnp.ones((2, 4, 4, 5)))
  with pytest.raises(ValueError, match="channel_axis=4 is out of range"):
    make_layer("linen", 3, window, channel_axis=4).init(jax.random.key(0), jnp.ones((2, 4, 4, 5)))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("shape", [(2, 4), (1, 2, 4, 4, 3)])
def test_spatial_layer_refuses_inputs_of_the_wrong_rank(framework, shape):
  layer = make_layer(framework, 3, (3, 3))
  match = r"SpatialGDN with window_shape=\(3, 3\) takes inputs with 2 spatial axes"
  with pytest.raises(ValueError, match=match):
    if framework == "linen":
      layer.init(jax.random.key(0), jnp.ones(shape))
    else:
      layer(jnp.ones(shape))
