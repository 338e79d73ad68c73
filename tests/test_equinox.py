"""The Equinox layer: equal to lrn and to the NNX layer, the same signature as the Flax layers,
learnable gradients through eqx.filter_grad, eqx.filter_jit / eqx.filter_vmap, training, and
construction-time errors (the Flax layers' cases)."""

import inspect
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

eqx = pytest.importorskip("equinox")

from jax_lrn import lrn  # noqa: E402
from jax_lrn import nnx as lrn_nnx  # noqa: E402
from jax_lrn.equinox import LocalResponseNorm  # noqa: E402

from cases import random_input  # noqa: E402
from test_flax import CALL_ERRORS, CONFIGS, ERRORS, IDS  # noqa: E402

RAWS = ("raw_alpha", "raw_beta", "raw_k")


def _input(rng, shape, dtype=jnp.float32):
  return random_input(rng, shape, dtype, scale=2.0)[0]


def _with_raws(layer, values):
  """``layer`` with its raw parameters replaced by ``values`` (name -> float)."""
  return eqx.tree_at(
    lambda m: [getattr(m, name) for name in RAWS],
    layer,
    [jnp.asarray(values[name], getattr(layer, name).dtype) for name in RAWS],
  )


def test_nothing_else_imports_equinox():
  code = (
    "import sys, jax_lrn, jax_lrn.compat, jax_lrn.nnx, jax_lrn.linen; "
    "print(sorted(m for m in sys.modules if m.split('.')[0] == 'equinox'))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_same_signature_as_the_nnx_layer():
  ours = inspect.signature(LocalResponseNorm.__init__).parameters
  theirs = inspect.signature(lrn_nnx.LocalResponseNorm.__init__).parameters
  assert [(p.name, p.kind, p.default) for p in ours.values()] == [
    (p.name, p.kind, p.default) for p in theirs.values()
  ]


@pytest.mark.parametrize("kwargs, shape", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_equals_lrn_and_the_nnx_layer(rng, kwargs, shape, dtype):
  x = _input(rng, shape, dtype)
  y = LocalResponseNorm(**kwargs)(x)
  assert y.dtype == dtype
  np.testing.assert_array_equal(np.asarray(y), np.asarray(lrn(x, **kwargs)))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(lrn_nnx.LocalResponseNorm(**kwargs)(x)))


@pytest.mark.parametrize("kwargs, shape", CONFIGS, ids=IDS)
def test_learnable_starts_at_the_given_values(rng, kwargs, shape):
  x = _input(rng, shape, jnp.float64)
  layer = LocalResponseNorm(**kwargs, learnable=True, param_dtype=jnp.float64)
  defaults = {"alpha": 1e-4, "beta": 0.75, "k": 1.0}
  for name, value in layer.values().items():
    np.testing.assert_allclose(float(value), kwargs.get(name, defaults[name]), rtol=1e-14)
  # Traced beta takes exp(beta log s) rather than the sqrt products: equal up to rounding.
  np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(lrn(x, **kwargs)), rtol=1e-13)
  nnx_layer = lrn_nnx.LocalResponseNorm(**kwargs, learnable=True, param_dtype=jnp.float64)
  np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(nnx_layer(x)))


def test_parameters():
  fixed = LocalResponseNorm(size=3, alpha=1.0)
  assert jax.tree_util.tree_leaves(fixed) == []
  assert fixed.raw_alpha is None and fixed.raw_beta is None and fixed.raw_k is None
  learned = LocalResponseNorm(size=3, alpha=1.0, learnable=True)
  params = jax.tree_util.tree_leaves(eqx.filter(learned, eqx.is_inexact_array))
  assert [(p.shape, p.dtype) for p in params] == [((), jnp.float32)] * 3
  # The hyperparameters are static: two layers that differ only in them have different
  # tree structures (so filter_jit compiles each once), equal ones the same.
  assert jax.tree_util.tree_structure(fixed) == jax.tree_util.tree_structure(
    LocalResponseNorm(size=3, alpha=1.0)
  )
  assert jax.tree_util.tree_structure(fixed) != jax.tree_util.tree_structure(
    LocalResponseNorm(size=3, alpha=2.0)
  )


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_filter_grad_follows_the_chain_rule(rng, mode):
  """d loss / d raw = (d loss / d value) * softplus'(raw), with d loss / d value from lrn."""
  x = _input(rng, (2, 6, 6, 5), jnp.float64)
  kwargs = dict(size=3, alpha=1.5, beta=0.6, k=0.8, mode=mode)
  layer = LocalResponseNorm(**kwargs, learnable=True, param_dtype=jnp.float64)
  grads = eqx.filter_grad(lambda m: jnp.sum(jnp.sin(m(x))))(layer)
  by_value = jax.grad(
    lambda a, b, k: jnp.sum(jnp.sin(lrn(x, 3, a, b, k, mode=mode))), argnums=(0, 1, 2)
  )(jnp.float64(1.5), jnp.float64(0.6), jnp.float64(0.8))
  for name, d_value in zip(RAWS, by_value):
    d_raw = getattr(grads, name)
    assert np.isfinite(d_raw) and d_raw != 0.0
    expected = d_value * jax.nn.sigmoid(getattr(layer, name))
    np.testing.assert_allclose(float(d_raw), float(expected), rtol=1e-10)


def test_equals_the_nnx_layer_with_trained_parameters(rng):
  """Same raw parameters (not the initial ones) in both libraries: identical outputs, grads."""
  x = _input(rng, (2, 5, 5, 8))
  raws = {"raw_alpha": 0.3, "raw_beta": -0.2, "raw_k": 1.1}
  layer = _with_raws(LocalResponseNorm(size=3, alpha=1.0, learnable=True), raws)
  nnx_layer = lrn_nnx.LocalResponseNorm(size=3, alpha=1.0, learnable=True)
  for name, value in raws.items():
    getattr(nnx_layer, name)[...] = jnp.float32(value)
  np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(nnx_layer(x)))

  from flax import nnx

  g_eqx = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(layer)
  g_nnx = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(nnx_layer)
  for name in RAWS:
    np.testing.assert_array_equal(np.asarray(getattr(g_eqx, name)), np.asarray(g_nnx[name][...]))


def test_optax_steps_reduce_a_loss(rng):
  x = _input(rng, (4, 6, 6, 8))
  target = lrn(x, 5, alpha=3.0, beta=0.9, k=2.0)
  layer = LocalResponseNorm(size=5, alpha=1.0, beta=0.6, k=1.0, learnable=True)
  tx = optax.sgd(0.1, momentum=0.9)
  opt_state = tx.init(eqx.filter(layer, eqx.is_inexact_array))

  def loss_fn(m):
    return jnp.mean((m(x) - target) ** 2)

  @eqx.filter_jit
  def step(m, s):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(m)
    updates, s = tx.update(grads, s, eqx.filter(m, eqx.is_inexact_array))
    return eqx.apply_updates(m, updates), s, loss

  first = float(loss_fn(layer))
  for _ in range(30):
    layer, opt_state, loss = step(layer, opt_state)
    assert np.isfinite(float(loss))
  assert float(loss_fn(layer)) < 0.1 * first


@pytest.mark.parametrize("learnable", [False, True])
def test_filter_jit_equals_eager_and_compiles_once(rng, learnable):
  x = _input(rng, (2, 5, 5, 8))
  traces = []

  @eqx.filter_jit
  def apply(m, x):
    traces.append(None)
    return m(x)

  layer = LocalResponseNorm(size=3, alpha=1.0, learnable=learnable)
  np.testing.assert_allclose(np.asarray(apply(layer, x)), np.asarray(layer(x)), rtol=1e-6)
  # New input values, and (when learnable) new parameter values: no retrace.
  apply(layer, x + 1.0)
  if learnable:
    changed = _with_raws(layer, {"raw_alpha": 0.5, "raw_beta": 0.1, "raw_k": 2.0})
    np.testing.assert_allclose(np.asarray(apply(changed, x)), np.asarray(changed(x)), rtol=1e-6)
  assert len(traces) == 1


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
@pytest.mark.parametrize("learnable", [False, True])
def test_filter_vmap_equals_a_loop(rng, mode, learnable):
  """filter_vmap over examples of unbatched (H, W, C) inputs; the layer is broadcast."""
  x = _input(rng, (3, 5, 6, 4))
  spatial = (0, 1) if mode == "within_channel" else None
  layer = LocalResponseNorm(size=3, alpha=1.0, mode=mode, spatial_axes=spatial, learnable=learnable)
  loop = np.stack([np.asarray(layer(xi)) for xi in x])
  np.testing.assert_allclose(np.asarray(eqx.filter_vmap(layer)(x)), loop, rtol=1e-6)
  batched = eqx.filter_vmap(lambda m, xi: m(xi), in_axes=(None, 0))(layer, x)
  np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-6)


def test_filter_vmap_over_an_ensemble_of_learnable_layers(rng):
  """Stacked raw parameters (one layer per member) mapped together with the inputs."""
  x = _input(rng, (3, 5, 6, 4))
  members = [
    _with_raws(
      LocalResponseNorm(size=3, learnable=True), {"raw_alpha": a, "raw_beta": b, "raw_k": k}
    )
    for a, b, k in [(0.1, 0.2, 0.3), (1.0, -0.5, 0.7), (-1.0, 0.9, 2.0)]
  ]
  params = [eqx.filter(m, eqx.is_array) for m in members]
  static = eqx.filter(members[0], eqx.is_array, inverse=True)
  stacked = jax.tree_util.tree_map(lambda *p: jnp.stack(p), *params)

  @eqx.filter_vmap
  def apply(p, xi):
    return eqx.combine(p, static)(xi)

  loop = np.stack([np.asarray(m(xi)) for m, xi in zip(members, x)])
  np.testing.assert_allclose(np.asarray(apply(stacked, x)), loop, rtol=1e-6)


def test_in_an_equinox_sequential_model(rng):
  """Unbatched CHW, as Equinox's layers are: channel_axis=0 and a vmap over the batch."""
  x = _input(rng, (2, 3, 12, 12))
  conv = eqx.nn.Conv2d(3, 8, 3, key=jax.random.key(0), dtype=jnp.float32)
  norm = LocalResponseNorm(size=5, alpha=5e-4, k=2.0, channel_axis=0, learnable=True)
  model = eqx.nn.Sequential([conv, eqx.nn.Lambda(jax.nn.relu), norm])
  expected = jax.vmap(lambda xi: norm(jax.nn.relu(conv(xi))))(x)
  np.testing.assert_array_equal(np.asarray(jax.vmap(model)(x)), np.asarray(expected))
  params = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
  assert sum(p.size for p in params) == 3 * 3 * 3 * 8 + 8 + 3


@pytest.mark.parametrize("kwargs, exc, match", ERRORS)
def test_errors_at_construction(kwargs, exc, match):
  with pytest.raises(exc, match=match):
    LocalResponseNorm(**kwargs)


@pytest.mark.parametrize("kwargs, exc, match", CALL_ERRORS)
def test_axis_errors_at_the_first_call(kwargs, exc, match):
  x = jnp.ones((2, 3, 4, 5), jnp.float32)
  layer = LocalResponseNorm(**kwargs)
  with pytest.raises(exc, match=match):
    layer(x)
  with pytest.raises(exc, match=match):
    eqx.filter_jit(lambda m, x: m(x))(layer, x)
