"""jax_lrn.spatial_gdn against the float64 NumPy reference written from its formula
(tests/gdn_reference.py), its reduction to gdn for a window of ones, gradients,
transformations and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jax_lrn import gdn, spatial_gdn

import gdn_reference
from cases import assert_vmap_equals_loop, random_input

# (x shape with channels last, window): 1-D, 2-D and 3-D windows, odd and even sizes, windows
# larger than the input.
CASES = [
  ((2, 7, 3), (3,)),
  ((2, 5, 6, 3), (3, 3)),
  ((1, 4, 5, 4), (1, 3)),
  ((2, 5, 4, 2), (5, 3)),
  ((2, 4, 4, 3), (2, 2)),
  ((1, 5, 3, 2), (4, 1)),
  ((1, 3, 4, 3, 2), (3, 3, 3)),
  ((1, 3, 2, 2), (7, 5)),
]
CASE_IDS = [f"{len(w)}d-window{'x'.join(map(str, w))}" for _, w in CASES]
EXPONENTS = [(2.0, 0.5), (1.0, 1.0), (2.0, 1.0), (1.0, 0.5), (1.5, 0.75)]


def weights(rng, window, channels, dtype=np.float64):
  """beta in [0.5, 1.5), gamma in [0, 0.3) with some exact zeros."""
  beta = rng.uniform(0.5, 1.5, size=channels)
  gamma = rng.uniform(0.0, 0.3, size=(*window, channels, channels))
  gamma[rng.uniform(size=gamma.shape) < 0.2] = 0.0
  return jnp.asarray(beta, dtype), jnp.asarray(gamma, dtype)


@pytest.mark.parametrize("shape, window", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse", [False, True])
def test_matches_reference(rng, shape, window, alpha, epsilon, inverse):
  x, x64 = random_input(rng, shape, jnp.float64)
  beta, gamma = weights(rng, window, shape[-1])
  got = spatial_gdn(x, beta, gamma, alpha=alpha, epsilon=epsilon, inverse=inverse)
  want = gdn_reference.spatial_gdn(x64, beta, gamma, alpha=alpha, epsilon=epsilon, inverse=inverse)
  assert got.shape == x.shape and got.dtype == x.dtype
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rectify", [False, True])
@pytest.mark.parametrize("channel_axis", [-1, 1, 2])
def test_channel_axis_and_rectify(rng, rectify, channel_axis):
  """Channels at any axis but the batch axis; the window runs over the others in order."""
  x, x64 = random_input(rng, (2, 5, 4, 3), jnp.float64)
  window = [n for a, n in enumerate((3, 3, 2)) if a != (channel_axis % 4) - 1]
  channels = x.shape[channel_axis]
  beta, gamma = weights(rng, window, channels)
  got = spatial_gdn(x, beta, gamma, rectify=rectify, channel_axis=channel_axis)
  want = np.moveaxis(
    gdn_reference.spatial_gdn(np.moveaxis(x64, channel_axis, -1), beta, gamma, rectify=rectify),
    -1,
    channel_axis,
  )
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("channel_axis", [-1, 1])
def test_window_of_ones_is_gdn_exactly(rng, alpha, epsilon, inverse, channel_axis):
  x, _ = random_input(rng, (2, 4, 5, 6), jnp.float32)
  beta, gamma = weights(rng, (1, 1), x.shape[channel_axis], np.float32)
  kwargs = dict(alpha=alpha, epsilon=epsilon, inverse=inverse, channel_axis=channel_axis)

  def loss(f, gamma):
    return lambda x, b, g: jnp.sum(jnp.sin(f(x, b, gamma(g), **kwargs)))

  np.testing.assert_array_equal(
    spatial_gdn(x, beta, gamma, **kwargs), gdn(x, beta, gamma[0, 0], **kwargs)
  )
  grads = jax.grad(loss(spatial_gdn, lambda g: g), argnums=(0, 1, 2))(x, beta, gamma)
  want = jax.grad(loss(gdn, lambda g: g[0, 0]), argnums=(0, 1, 2))(x, beta, gamma)
  for a, b in zip(grads, want):
    np.testing.assert_array_equal(a, b)


def test_zero_padding_at_the_border(rng):
  """A constant input is divided less at the border, where the window sees fewer positions."""
  x = jnp.ones((1, 5, 1))
  y = spatial_gdn(x, jnp.ones(1), jnp.ones((3, 1, 1)), alpha=1.0, epsilon=1.0)
  np.testing.assert_allclose(y[0, :, 0], [1 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 3], rtol=1e-15)


def test_even_window_reaches_further_after_the_position():
  """Window (2,): index 0 is the position itself, index 1 the next one."""
  x = jnp.array([[[1.0], [2.0], [4.0]]])
  gamma = jnp.array([[[0.0]], [[1.0]]])  # only the next position divides
  y = spatial_gdn(x, jnp.ones(1), gamma, alpha=1.0, epsilon=1.0)
  np.testing.assert_allclose(y[0, :, 0], [1 / 3, 2 / 5, 4 / 1], rtol=1e-15)


@pytest.mark.parametrize(
  "shape, window, channel_axis",
  [((2, 4, 5, 3), (3, 2), -1), ((1, 3, 5, 4), (2, 3), 1), ((2, 6, 2), (4,), -1)],
)
@pytest.mark.parametrize(
  "alpha, epsilon, inverse, rectify", [(2.0, 0.5, False, False), (1.5, 0.75, True, True)]
)
def test_vjp_matches_reference(rng, shape, window, channel_axis, alpha, epsilon, inverse, rectify):
  """The cotangents of x, beta and gamma against the reference's, differentiated by hand."""
  x, x64 = random_input(rng, shape, jnp.float64)
  beta, gamma = weights(rng, window, shape[channel_axis])
  g = rng.normal(size=shape)
  kwargs = dict(
    alpha=alpha, epsilon=epsilon, inverse=inverse, rectify=rectify, channel_axis=channel_axis
  )
  y, vjp = jax.vjp(lambda x, b, w: spatial_gdn(x, b, w, **kwargs), x, beta, gamma)
  want_y, want = gdn_reference.spatial_gdn_and_vjp(x64, beta, gamma, g, **kwargs)
  np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-14)
  for got, name in zip(vjp(jnp.asarray(g)), ("x", "beta", "gamma")):
    np.testing.assert_allclose(got, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("alpha, epsilon", [(2.0, 0.5), (1.0, 1.0), (1.5, 0.75)])
@pytest.mark.parametrize("inverse", [False, True])
def test_check_grads_order2(rng, alpha, epsilon, inverse):
  """Numerical gradients, reverse and forward mode, to second order, in every argument."""
  x, _ = random_input(rng, (1, 4, 3, 2), jnp.float64)
  x = x + jnp.sign(x) * 0.2  # away from 0, where |x| has a kink
  beta, gamma = weights(rng, (3, 2), 2)
  gamma = gamma + 0.05  # away from the bound 0

  def f(x, beta, gamma, a, e):
    return spatial_gdn(x, beta, gamma, alpha=a, epsilon=e, inverse=inverse)

  check_grads(f, (x, beta, gamma, alpha, epsilon), order=2, modes=("rev", "fwd"), eps=1e-4)


def test_jit_vmap_and_traced_weights(rng):
  """jit equals eager; vmap over x and over per-example beta and gamma equals a loop."""
  x, _ = random_input(rng, (3, 2, 5, 4, 3), jnp.float64)
  betas, gammas = zip(*(weights(rng, (3, 3), 3) for _ in range(3)))
  betas, gammas = jnp.stack(betas), jnp.stack(gammas)
  f = jax.jit(lambda x, b, g: spatial_gdn(x, b, g, epsilon=0.75))
  np.testing.assert_allclose(
    f(x[0], betas[0], gammas[0]), spatial_gdn(x[0], betas[0], gammas[0], epsilon=0.75), rtol=1e-14
  )
  assert_vmap_equals_loop(f, (x, betas, gammas))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_16_bit_computes_in_float32(rng, dtype):
  x, _ = random_input(rng, (2, 5, 5, 4), dtype)
  beta, gamma = weights(rng, (3, 3), 4, np.float32)
  got = spatial_gdn(x, beta, gamma)
  want = spatial_gdn(x.astype(jnp.float32), beta, gamma).astype(dtype)
  assert got.dtype == dtype
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


def test_traced_exponents_match_static(rng):
  x, _ = random_input(rng, (1, 4, 4, 3), jnp.float64)
  beta, gamma = weights(rng, (3, 3), 3)
  traced = jax.jit(lambda a, e: spatial_gdn(x, beta, gamma, alpha=a, epsilon=e))(1.5, 0.75)
  np.testing.assert_allclose(
    traced, spatial_gdn(x, beta, gamma, alpha=1.5, epsilon=0.75), rtol=1e-13
  )


@pytest.mark.parametrize(
  "x_shape, beta_shape, gamma_shape, kwargs, error, match",
  [
    ((2, 4, 4, 3), (3,), (3, 3), {}, ValueError, "gamma must have shape \\(\\*window, C, C\\)"),
    (
      (2, 4, 4, 3),
      (3,),
      (3, 3, 3, 2),
      {},
      ValueError,
      "gamma must have shape \\(\\*window, C, C\\)",
    ),
    ((2, 4, 4, 3), (2,), (3, 3, 3, 3), {}, ValueError, "beta must have shape \\(C,\\)"),
    ((4, 3), (3,), (3, 3), {}, ValueError, "rank >= 3"),
    ((2, 4, 4, 3), (2,), (3, 3, 2, 2), {"channel_axis": 0}, ValueError, "batch axis"),
    ((2, 4, 4, 3), (3,), (3, 3, 3, 3), {"alpha": 0.0}, ValueError, "alpha must be > 0"),
    ((2, 4, 4, 3), (3,), (3, 3, 3, 3), {"inverse": 1}, TypeError, "inverse must be a bool"),
  ],
)
def test_errors_name_the_argument(x_shape, beta_shape, gamma_shape, kwargs, error, match):
  with pytest.raises(error, match=match):
    spatial_gdn(jnp.ones(x_shape), jnp.ones(beta_shape), jnp.ones(gamma_shape), **kwargs)


def test_negative_gamma_and_integer_x_are_refused():
  with pytest.raises(ValueError, match="gamma must be >= 0"):
    spatial_gdn(jnp.ones((1, 4, 4, 2)), jnp.ones(2), -jnp.ones((3, 3, 2, 2)))
  with pytest.raises(TypeError, match="x must be a floating array"):
    spatial_gdn(jnp.ones((1, 4, 4, 2), jnp.int32), jnp.ones(2), jnp.ones((3, 3, 2, 2)))
  with pytest.raises(TypeError, match="gamma must be a floating array"):
    spatial_gdn(jnp.ones((1, 4, 4, 2)), jnp.ones(2), jnp.ones((3, 3, 2, 2), jnp.int32))
