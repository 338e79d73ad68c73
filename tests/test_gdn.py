"""jax_lrn.gdn against the float64 loop reference: forward, gradients to every argument, the
fast paths against the general ones, ranks, axes, dtypes, transformations and errors; ports of
tensorflow_compression's gdn_test.py cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jax_lrn import gdn

import gdn_reference
from cases import RTOL, assert_vmap_equals_loop, random_input

# (shape, channel_axis)
CASES = [
  ((5,), 0),  # rank 1: one channel vector
  ((3, 6), -1),
  ((6, 3), 0),
  ((2, 4, 5), 1),
  ((2, 3, 3, 6), -1),  # NHWC
  ((2, 5, 3, 2), 1),  # NCHW
  ((2, 3, 4, 2), 2),  # channel in the middle
  ((1, 2, 2, 2, 4), -1),  # rank 5
  ((1, 4, 2, 2, 2, 1), 1),  # rank 6, channels first
]
CASE_IDS = [f"{s}-axis{a}" for s, a in CASES]

# (alpha, epsilon): the four fast combinations and general values.
EXPONENTS = [(2.0, 0.5), (1.0, 1.0), (2.0, 1.0), (1.0, 0.5), (1.5, 0.75), (3.0, 0.3), (1.2, 2.0)]


def weights(rng, channels, dtype=np.float64):
  """beta in [0.5, 1.5), gamma in [0, 0.3) with some exact zeros (a sparse pool)."""
  beta = rng.uniform(0.5, 1.5, size=channels)
  gamma = rng.uniform(0.0, 0.3, size=(channels, channels))
  gamma[rng.uniform(size=gamma.shape) < 0.2] = 0.0
  return jnp.asarray(beta, dtype), jnp.asarray(gamma, dtype)


@pytest.mark.parametrize("shape, axis", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("rectify", [False, True])
def test_forward_float64(rng, shape, axis, alpha, epsilon, inverse, rectify):
  x, x64 = random_input(rng, shape, jnp.float64)
  beta, gamma = weights(rng, shape[axis])
  kw = dict(alpha=alpha, epsilon=epsilon, inverse=inverse, rectify=rectify, channel_axis=axis)
  y = gdn(x, beta, gamma, **kw)
  assert y.shape == x.shape and y.dtype == jnp.float64
  np.testing.assert_allclose(y, gdn_reference.gdn(x64, beta, gamma, **kw), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("alpha, epsilon", [(2.0, 0.5), (1.0, 1.0), (1.5, 0.75)])
@pytest.mark.parametrize("inverse", [False, True])
def test_forward_dtypes(rng, dtype, alpha, epsilon, inverse):
  x, x64 = random_input(rng, (2, 3, 3, 16), dtype)
  beta, gamma = weights(rng, 16, np.float32)
  kw = dict(alpha=alpha, epsilon=epsilon, inverse=inverse)
  y = gdn(x, beta, gamma, **kw)
  assert y.dtype == dtype
  # 16 non-negative terms in float32, then (16-bit) one rounding to the output type.
  rtol = max(RTOL[dtype], 1e-5)
  np.testing.assert_allclose(
    np.asarray(y, np.float64), gdn_reference.gdn(x64, beta, gamma, **kw), rtol=rtol, atol=0
  )


def test_16bit_inputs_compute_in_float32(rng):
  """A bfloat16 input gives the float32 result rounded once: its pool is not bfloat16."""
  x, _ = random_input(rng, (4, 32), jnp.bfloat16, scale=30.0)
  beta, gamma = weights(rng, 32, np.float32)
  want = gdn(x.astype(jnp.float32), beta, gamma).astype(jnp.bfloat16)
  np.testing.assert_array_equal(gdn(x, beta, gamma), want)


def test_float16_pool_above_float16_range(rng):
  """|x| ~ 300: the pool (sum of 0.3 * x**2 over 8 channels, ~2e5) exceeds float16's max 65504,
  the output does not; the float32 pool keeps it finite."""
  x = jnp.full((2, 8), 300.0, jnp.float16)
  beta, gamma = jnp.ones(8, jnp.float32), jnp.full((8, 8), 0.3, jnp.float32)
  y = gdn(x, beta, gamma)
  want = 300.0 / math.sqrt(1.0 + 8 * 0.3 * 300.0**2)
  np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=2.0**-10)


@pytest.mark.parametrize("shape, axis", CASES[1:6], ids=CASE_IDS[1:6])
@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("rectify", [False, True])
def test_vjp_all_arguments(rng, shape, axis, alpha, epsilon, inverse, rectify):
  """Cotangents of x, beta, gamma and traced alpha, epsilon against the hand-derived ones."""
  x, x64 = random_input(rng, shape, jnp.float64)
  beta, gamma = weights(rng, shape[axis])
  g = rng.normal(size=shape)
  kw = dict(inverse=inverse, rectify=rectify, channel_axis=axis)

  def f(x, beta, gamma, alpha, epsilon):
    return gdn(x, beta, gamma, alpha=alpha, epsilon=epsilon, **kw)

  a, e = jnp.float64(alpha), jnp.float64(epsilon)
  y, vjp = jax.vjp(f, x, beta, gamma, a, e)
  want_y, want = gdn_reference.gdn_and_vjp(x64, beta, gamma, g, alpha=alpha, epsilon=epsilon, **kw)
  np.testing.assert_allclose(y, want_y, rtol=1e-12)
  got = dict(zip(("x", "beta", "gamma", "alpha", "epsilon"), vjp(jnp.asarray(g))))
  for name in got:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse", [False, True])
def test_static_exponents_match_traced(rng, alpha, epsilon, inverse):
  """The fast paths (static alpha, epsilon) give the values and gradients of the general one."""
  x, _ = random_input(rng, (3, 2, 7), jnp.float64)
  beta, gamma = weights(rng, 7)

  def loss(x, beta, gamma, a, e):
    return jnp.sum(jnp.sin(gdn(x, beta, gamma, alpha=a, epsilon=e, inverse=inverse)))

  static = jax.value_and_grad(lambda *v: loss(*v, alpha, epsilon), argnums=(0, 1, 2))
  traced = jax.value_and_grad(loss, argnums=(0, 1, 2))
  (v1, g1), (v2, g2) = static(x, beta, gamma), traced(x, beta, gamma, alpha, epsilon)
  np.testing.assert_allclose(v1, v2, rtol=1e-12)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("alpha, epsilon", [(2.0, 0.5), (1.0, 1.0), (1.5, 0.75)])
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("axis", [-1, 1])
def test_check_grads_order2(rng, alpha, epsilon, inverse, axis):
  """Numerical gradients to second order in every argument (reverse mode: gdn is a
  custom_vjp; forward-over-reverse is tested below)."""
  x, _ = random_input(rng, (2, 4, 3), jnp.float64)
  x = x + jnp.sign(x) * 0.2  # away from 0, where |x| has a kink
  beta, gamma = weights(rng, x.shape[axis])
  gamma = gamma + 0.05  # away from the bound 0

  def f(x, beta, gamma, a, e):
    return gdn(x, beta, gamma, alpha=a, epsilon=e, inverse=inverse, channel_axis=axis)

  check_grads(f, (x, beta, gamma, alpha, epsilon), order=2, modes=("rev",), eps=1e-4)


def test_rectify_gradient_is_zero_below_zero(rng):
  x, _ = random_input(rng, (4, 6), jnp.float64)
  beta, gamma = weights(rng, 6)
  dx = jax.grad(lambda x: jnp.sum(gdn(x, beta, gamma, rectify=True)))(x)
  assert np.all(np.asarray(dx)[np.asarray(x) < 0] == 0)


def test_jit_equals_eager_and_compiles_once(rng):
  x, _ = random_input(rng, (2, 3, 3, 8), jnp.float32)
  beta, gamma = weights(rng, 8, np.float32)
  traces = []

  def f(x, beta, gamma):
    traces.append(None)
    return gdn(x, beta, gamma, alpha=1.0, epsilon=1.0)

  jitted = jax.jit(f)
  np.testing.assert_allclose(jitted(x, beta, gamma), f(x, beta, gamma), rtol=1e-6)
  jitted(x + 1.0, beta * 2.0, gamma)
  assert len(traces) == 2  # one eager call, one trace


@pytest.mark.parametrize("inverse", [False, True])
def test_vmap_equals_loop(rng, inverse):
  """vmap over x, and over per-example beta and gamma (a batch of layers)."""
  x, _ = random_input(rng, (3, 4, 5), jnp.float64)
  betas = jnp.stack([weights(rng, 5)[0] for _ in range(3)])
  gammas = jnp.stack([weights(rng, 5)[1] for _ in range(3)])
  assert_vmap_equals_loop(lambda x, b, g: gdn(x, b, g, inverse=inverse), (x, betas, gammas))


def test_grad_of_grad_matches_reference_hessian_vector(rng):
  """d/dx of <g, dL/dx> by autodiff twice against a difference of the reference's VJPs."""
  x, x64 = random_input(rng, (2, 5), jnp.float64)
  beta, gamma = weights(rng, 5)
  g = rng.normal(size=x.shape)
  v = rng.normal(size=x.shape)

  def first(x):
    return jax.vjp(lambda x: gdn(x, beta, gamma), x)[1](jnp.asarray(g))[0]

  hv = jax.jvp(first, (x,), (jnp.asarray(v),))[1]
  h = 1e-5
  plus = gdn_reference.gdn_and_vjp(x64 + h * v, beta, gamma, g)[1]["x"]
  minus = gdn_reference.gdn_and_vjp(x64 - h * v, beta, gamma, g)[1]["x"]
  np.testing.assert_allclose(hv, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-9)
  hv_rev = jax.grad(lambda x: jnp.vdot(first(x), jnp.asarray(v)))(x)
  np.testing.assert_allclose(hv_rev, hv, rtol=1e-10)  # the Hessian-vector product is symmetric


def test_zero_pool_is_nan_as_in_the_references():
  y = gdn(jnp.zeros((1, 3)), jnp.zeros(3), jnp.ones((3, 3)))
  assert np.all(np.isnan(np.asarray(y)))


def test_epsilon_zero_is_identity(rng):
  x, _ = random_input(rng, (3, 4), jnp.float64)
  beta, gamma = weights(rng, 4)
  for inverse in (False, True):
    np.testing.assert_array_equal(gdn(x, beta, gamma, epsilon=0.0, inverse=inverse), x)
    traced = jax.jit(lambda e: gdn(x, beta, gamma, epsilon=e, inverse=inverse))(0.0)  # noqa: B023
    np.testing.assert_array_equal(traced, x)


def test_gamma_orientation():
  """gamma[j, i] is input channel j's weight in output channel i."""
  x = jnp.array([[2.0, 3.0, 5.0]])
  gamma = jnp.zeros((3, 3)).at[0, 2].set(1.0)  # channel 0 divides channel 2 only
  y = gdn(x, jnp.ones(3), gamma, alpha=1.0, epsilon=1.0)
  np.testing.assert_allclose(y, [[2.0, 3.0, 5.0 / 3.0]], rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# Ports of tensorflow_compression/python/layers/gdn_test.py (2.14): the closed forms its
# assertions use, for the parameters of a freshly built layer (beta = 1, gamma = 0.1 I).
# ---------------------------------------------------------------------------------------------


def _fresh(channels, dtype=jnp.float32):
  return jnp.ones(channels, dtype), 0.1 * jnp.eye(channels, dtype=dtype)


@pytest.mark.parametrize("rank", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("channel_axis", [-1, 1])
def test_tfc_port_simplified_closed_form(rng, rank, channel_axis):
  shape = (2, 3, 4, 2, 3, 2)[:rank]
  x = jnp.asarray(rng.uniform(-0.5, 0.5, size=shape), jnp.float32)
  y = gdn(x, *_fresh(shape[channel_axis]), alpha=1.0, epsilon=1.0, channel_axis=channel_axis)
  np.testing.assert_allclose(y, x / (1 + 0.1 * abs(x)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 4, 6])
def test_tfc_port_igdn_closed_form(rng, rank):
  shape = (2, 3, 4, 2, 3, 2)[:rank]
  x = jnp.asarray(rng.uniform(-0.5, 0.5, size=shape), jnp.float32)
  y = gdn(x, *_fresh(shape[-1]), alpha=1.0, epsilon=1.0, inverse=True)
  np.testing.assert_allclose(y, x * (1 + 0.1 * abs(x)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 4, 6])
def test_tfc_port_rectified_closed_form(rng, rank):
  shape = (2, 3, 4, 2, 3, 2)[:rank]
  x = jnp.asarray(rng.uniform(-0.5, 0.5, size=shape), jnp.float32)
  y = gdn(x, *_fresh(shape[-1]), alpha=1.0, epsilon=1.0, rectify=True)
  r = jnp.maximum(x, 0.0)
  np.testing.assert_allclose(y, r / (1 + 0.1 * r), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 4, 6])
def test_tfc_port_quadratic_closed_form(rng, rank):
  shape = (2, 3, 4, 2, 3, 2)[:rank]
  x = jnp.asarray(rng.uniform(-0.5, 0.5, size=shape), jnp.float32)
  y = gdn(x, *_fresh(shape[-1]), alpha=2.0, epsilon=0.5)
  np.testing.assert_allclose(y, x / jnp.sqrt(1 + 0.1 * x**2), rtol=0, atol=1e-6)


def test_tfc_port_beta_zero_gamma_one(rng):
  x = jnp.asarray(rng.uniform(-0.5, 0.5, size=(1, 2, 3)), jnp.float32)
  y = gdn(x, jnp.zeros(3), jnp.ones((3, 3)), alpha=1.0, epsilon=1.0)
  np.testing.assert_allclose(y, x / jnp.sum(abs(x), axis=-1, keepdims=True), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Errors name the argument and the value.
# ---------------------------------------------------------------------------------------------

X = jnp.ones((2, 3), jnp.float32)
B, G = jnp.ones(3), 0.1 * jnp.eye(3)


@pytest.mark.parametrize(
  "call, error, match",
  [
    (lambda: gdn(X.astype(jnp.int32), B, G), TypeError, "x must be a floating array.*int32"),
    (lambda: gdn(jnp.float32(1.0), B, G), ValueError, "rank >= 1"),
    (lambda: gdn(X, B, G, channel_axis=2), ValueError, "channel_axis=2 is out of range"),
    (lambda: gdn(X, B, G, channel_axis=1.0), TypeError, "channel_axis must be an int"),
    (lambda: gdn(X, jnp.ones(4), G), ValueError, r"beta must have shape \(C,\) = \(3,\).*\(4,\)"),
    (lambda: gdn(X, B, jnp.ones((3, 4))), ValueError, r"gamma must have shape \(C, C\).*\(3, 4\)"),
    (lambda: gdn(X, B, G, channel_axis=0), ValueError, r"C = 2 channels.*channel_axis=0"),
    (lambda: gdn(X, -B, G), ValueError, "beta must be >= 0 everywhere.*-1.0"),
    (lambda: gdn(X, B, G.at[0, 1].set(-0.5)), ValueError, "gamma must be >= 0.*-0.5"),
    (lambda: gdn(X, B, G.at[0, 1].set(np.nan)), ValueError, "gamma must be >= 0.*nan"),
    (lambda: gdn(X, B.astype(jnp.int32), G), TypeError, "beta must be a floating array.*int32"),
    (lambda: gdn(X, B, "gamma"), TypeError, "gamma must be a floating array"),
    (lambda: gdn(X, B, G, alpha=0.0), ValueError, "alpha must be > 0"),
    (lambda: gdn(X, B, G, alpha=-1.0), ValueError, "alpha must be >= 0, got -1.0"),
    (lambda: gdn(X, B, G, epsilon=-0.5), ValueError, "epsilon must be >= 0, got -0.5"),
    (lambda: gdn(X, B, G, epsilon=math.inf), ValueError, "epsilon must be finite"),
    (lambda: gdn(X, B, G, alpha="2"), TypeError, "alpha must be a real number"),
    (lambda: gdn(X, B, G, epsilon=jnp.ones(2)), ValueError, "epsilon must be a scalar"),
    (lambda: gdn(X, B, G, inverse=1), TypeError, "inverse must be a bool, got 1"),
    (lambda: gdn(X, B, G, rectify="yes"), TypeError, "rectify must be a bool, got 'yes'"),
  ],
)
def test_errors(call, error, match):
  with pytest.raises(error, match=match):
    call()


def test_traced_weights_are_not_value_checked():
  """Under jit the values are unknown; a learned beta is kept non-negative by the layer."""
  y = jax.jit(lambda b: gdn(X, b, G))(B)
  assert y.shape == X.shape


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("kw", [dict(), dict(alpha=1.0, epsilon=1.0, inverse=True, rectify=True)])
def test_backward_keeps_only_the_inputs(dtype, kw):
  """The arrays jax.vjp keeps: x in its own dtype, beta and gamma (in the compute dtype) and
  the two exponents; no array the size of x besides x (autodiff alone would keep four)."""
  x = jnp.ones((4, 8, 8, 16), dtype)
  beta, gamma = jnp.ones(16, jnp.float32), jnp.eye(16, dtype=jnp.float32)
  vjp = jax.eval_shape(
    lambda x, b, g: jax.vjp(lambda *a: gdn(*a, **kw), x, b, g)[1], x, beta, gamma
  )
  sizes = sorted(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(vjp))
  assert sum(sizes) <= x.size * x.dtype.itemsize + (16 + 16 * 16 + 2) * 4, sizes
  assert sizes[-1] == x.size * x.dtype.itemsize
