"""The GDN layers (NNX, Linen, Equinox): initialisation, the non-negative reparameterisation and
its lower bound, gradients to the stored parameters, agreement between the three, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax_lrn.equinox
import jax_lrn.linen
import jax_lrn.nnx
from jax_lrn import gdn
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


def three_layers(channels, channel_axis=-1, **kw):
  """The same layer in NNX, Linen (with its params for an input) and Equinox."""
  return (
    jax_lrn.nnx.GDN(channels, channel_axis=channel_axis, **kw),
    jax_lrn.linen.GDN(channel_axis=channel_axis, **kw),
    jax_lrn.equinox.GDN(channels, channel_axis=channel_axis, **kw),
  )


@pytest.mark.parametrize("kw", SETTINGS)
@pytest.mark.parametrize("shape, axis", [((2, 3, 3, 8), -1), ((2, 8, 3, 3), 1), ((8,), 0)])
def test_three_frameworks_agree_and_match_gdn(rng, kw, shape, axis):
  x, x64 = random_input(rng, shape, jnp.float32)
  layer_nnx, layer_linen, layer_eqx = three_layers(shape[axis], axis, **kw)
  variables = layer_linen.init(jax.random.key(0), x)
  y = layer_nnx(x)
  np.testing.assert_array_equal(layer_linen.apply(variables, x), y)
  np.testing.assert_array_equal(layer_eqx(x), y)
  np.testing.assert_array_equal(variables["params"]["raw_gamma"], layer_nnx.raw_gamma[...])
  settings = {k: v for k, v in kw.items() if k not in ("gamma_init", "beta_min")}
  values = layer_nnx.values()
  np.testing.assert_array_equal(
    y, gdn(x, values["beta"], values["gamma"], channel_axis=axis, **settings)
  )
  # A fresh layer: beta = 1, gamma = gamma_init * I (to float32 rounding of the reparameterisation).
  gamma_init = kw.get("gamma_init", 0.1)
  np.testing.assert_allclose(values["beta"], 1.0, rtol=2**-23)
  np.testing.assert_allclose(values["gamma"], gamma_init * np.eye(shape[axis]), rtol=2**-22, atol=0)
  want = gdn_reference.gdn(
    x64, np.ones(shape[axis]), gamma_init * np.eye(shape[axis]), channel_axis=axis, **settings
  )
  np.testing.assert_allclose(y, want, rtol=2e-6)


def test_stored_parameters_are_the_references_reparameterisation():
  layer = jax_lrn.nnx.GDN(4, gamma_init=0.1)
  f32 = np.float32
  p = f32(PEDESTAL)
  np.testing.assert_array_equal(layer.raw_beta[...], np.sqrt(np.maximum(f32(1) + p, p)))
  gamma = np.float32(0.1) * np.eye(4, dtype=f32)
  np.testing.assert_array_equal(layer.raw_gamma[...], np.sqrt(np.maximum(gamma + p, p)))
  # Off the diagonal the stored value is the offset 2**-18 and the effective value exactly 0.
  assert layer.raw_gamma[0, 1] == 2.0**-18 and layer.gamma[0, 1] == 0.0


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


@pytest.mark.parametrize("kw", SETTINGS[:3])
def test_raw_parameter_gradients(rng, kw):
  """d loss / d raw = 2 raw * d loss / d value (where the bound passes it), with d loss / d value
  from the float64 reference."""
  x, x64 = random_input(rng, (2, 3, 5), jnp.float64)
  g = rng.normal(size=x.shape)
  layer = jax_lrn.equinox.GDN(5, param_dtype=jnp.float64, **kw)
  # Move gamma off its initial diagonal, and one entry below the bound with a gradient away.
  raw_gamma = layer.raw_gamma + jnp.asarray(rng.uniform(0.0, 0.2, size=(5, 5)))
  layer = eqx.tree_at(lambda m: m.raw_gamma, layer, raw_gamma)
  grads = eqx.filter_grad(lambda m: jnp.vdot(m(x), jnp.asarray(g)))(layer)
  values = layer.values()
  settings = {k: v for k, v in kw.items() if k not in ("gamma_init", "beta_min")}
  _, want = gdn_reference.gdn_and_vjp(x64, values["beta"], values["gamma"], g, **settings)
  np.testing.assert_allclose(grads.raw_beta, 2 * layer.raw_beta * want["beta"], rtol=1e-9)
  np.testing.assert_allclose(grads.raw_gamma, 2 * raw_gamma * want["gamma"], rtol=1e-9)


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


@pytest.mark.parametrize("param_dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_param_dtype(rng, param_dtype):
  x, _ = random_input(rng, (2, 4), jnp.float32)
  layer = jax_lrn.nnx.GDN(4, param_dtype=param_dtype)
  assert layer.raw_beta[...].dtype == param_dtype and layer.raw_gamma[...].dtype == param_dtype
  assert layer(x).dtype == jnp.float32
  params = jax_lrn.linen.GDN(param_dtype=param_dtype).init(jax.random.key(0), x)["params"]
  assert params["raw_gamma"].dtype == param_dtype


def test_layers_train_under_jit(rng):
  """One jitted SGD step through each layer lowers a loss that GDN's parameters control."""
  x, _ = random_input(rng, (8, 4), jnp.float32)
  target = 0.5 * x

  def loss(m):
    return jnp.mean((m(x) - target) ** 2)

  model = jax_lrn.equinox.GDN(4)
  step = eqx.filter_jit(
    lambda m: jax.tree.map(lambda p, g: p - 0.5 * g, m, eqx.filter_grad(loss)(m))
  )
  before = loss(model)
  for _ in range(5):
    model = step(model)
  assert loss(model) < before


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
LAYERS = {
  "nnx": lambda num_features, **kw: jax_lrn.nnx.GDN(num_features, **kw),
  "equinox": lambda num_features, **kw: jax_lrn.equinox.GDN(num_features, **kw),
  "linen": lambda num_features, **kw: jax_lrn.linen.GDN(**kw),  # infers num_features
}


@pytest.mark.parametrize(
  "framework, kw, error, match",
  [
    (framework, *case)
    for framework in LAYERS
    for case in CONSTRUCTION_ERRORS
    if not (framework == "linen" and "num_features" in case[0])
  ],
)
def test_construction_errors(framework, kw, error, match):
  kw = dict(kw)
  num_features = kw.pop("num_features", 3)
  with pytest.raises(error, match=match):
    LAYERS[framework](num_features, **kw)


def test_wrong_channel_count_at_call():
  with pytest.raises(ValueError, match=r"beta must have shape \(C,\) = \(5,\).*got shape \(3,\)"):
    jax_lrn.nnx.GDN(3)(jnp.ones((2, 5)))
  with pytest.raises(ValueError, match="channel_axis=3 is out of range"):
    jax_lrn.linen.GDN(channel_axis=3).init(jax.random.key(0), jnp.ones((2, 5)))
