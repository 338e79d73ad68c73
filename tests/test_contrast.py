"""Local contrast normalization and its steps: values against a float64 loop reference written
from the formula, the invariances users rely on, per-sample independence, locality, non-finite
and constant inputs, dtypes, transformations, gradients and errors."""

import functools

import contrast_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jax_lrn import _contrast, local_contrast_norm, local_divisive_norm, local_subtractive_norm

from cases import DTYPES, RTOL, random_input

FUNCTIONS = {
  "both": local_contrast_norm,
  "subtractive": local_subtractive_norm,
  "divisive": local_divisive_norm,
}

# (shape, channel_axis, spatial_axes); spatial_axes None = the default (rank >= 4).
CASES = [
  ((2, 6, 7, 3), -1, None),  # NHWC
  ((2, 3, 5, 6), 1, None),  # NCHW
  ((2, 9, 2), -1, (1,)),  # a batch of 1-D signals
  ((6, 5, 2), -1, (0, 1)),  # one unbatched HWC image
  ((2, 4, 3, 3, 1), -1, None),  # 3 spatial axes, one channel
  ((3, 2, 4, 5), 2, (0, 3)),  # spatial axes around a batch axis
]


def _call(steps, x, size, **kwargs):
  return FUNCTIONS[steps](x, size, **kwargs)


def _reference(steps, x64, size, channel_axis, spatial_axes, **kwargs):
  if spatial_axes is None:
    spatial_axes = tuple(a for a in range(1, x64.ndim) if a != channel_axis % x64.ndim)
  return ref.lcn(
    x64, size, channel_axis=channel_axis, spatial_axes=spatial_axes, steps=steps, **kwargs
  )


@pytest.mark.parametrize("steps", list(FUNCTIONS))
@pytest.mark.parametrize("shape, channel_axis, spatial_axes", CASES)
@pytest.mark.parametrize("size, sigma", [(3, None), (5, 1.0), (4, None), (9, 2.5), (1, None)])
def test_matches_the_formula_float64(rng, steps, shape, channel_axis, spatial_axes, size, sigma):
  x, x64 = random_input(rng, shape, jnp.float64, scale=2.0)
  x, x64 = x + 3.0, x64 + 3.0
  got = _call(steps, x, size, sigma=sigma, channel_axis=channel_axis, spatial_axes=spatial_axes)
  want = _reference(steps, x64, size, channel_axis, spatial_axes, sigma=sigma)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("steps", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype(rng, steps, dtype):
  x, x64 = random_input(rng, (2, 6, 5, 3), dtype)
  got = _call(steps, x, 3)
  assert got.dtype == x.dtype
  want = _reference(steps, x64, 3, -1, None)
  # Computed in float32 (float64 for float64) from the rounded input, rounded once at the end;
  # the divisions by a local deviation make the error relative to the sample's scale.
  tol = RTOL[dtype] if dtype != jnp.float32 else 1e-5
  np.testing.assert_allclose(
    np.asarray(got, np.float64), want, rtol=tol, atol=tol * np.abs(want).max()
  )


def test_eps_and_sigma_reach_the_result(rng):
  x, x64 = random_input(rng, (1, 6, 6, 2), jnp.float64, scale=1e-3)
  for eps in (0.0, 1e-4, 1.0):
    got = local_contrast_norm(x, 3, eps=eps, sigma=0.7)
    want = ref.lcn(x64, 3, sigma=0.7, eps=eps)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11, atol=1e-14)
  assert not np.allclose(local_contrast_norm(x, 3, eps=1.0), local_contrast_norm(x, 3, eps=0.0))


def test_default_sigma_is_sqrt_size_over_two(rng):
  x, _ = random_input(rng, (1, 9, 9, 2), jnp.float64)
  np.testing.assert_array_equal(local_contrast_norm(x, 9), local_contrast_norm(x, 9, sigma=1.5))


# ---------------------------------------------------------------------------------------------
# Invariances, independence of samples, locality.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, channel_axis, spatial_axes", CASES)
def test_invariant_to_per_sample_affine_maps(rng, shape, channel_axis, spatial_axes):
  x, _ = random_input(rng, shape, jnp.float64)
  y = local_contrast_norm(x, 3, channel_axis=channel_axis, spatial_axes=spatial_axes)
  ndim = len(shape)
  spatial = spatial_axes or tuple(a for a in range(1, ndim) if a != channel_axis % ndim)
  reduced = tuple(1 if a in spatial or a == channel_axis % ndim else n for a, n in enumerate(shape))
  a = jnp.asarray(rng.uniform(0.05, 20.0, reduced))
  b = jnp.asarray(rng.normal(0.0, 100.0, reduced))
  moved = local_contrast_norm(a * x + b, 3, channel_axis=channel_axis, spatial_axes=spatial_axes)
  np.testing.assert_allclose(np.asarray(moved), np.asarray(y), rtol=1e-9, atol=1e-9)
  # The steps: subtractive is invariant to the shift, divisive to the scale.
  kw = dict(channel_axis=channel_axis, spatial_axes=spatial_axes)
  np.testing.assert_allclose(
    local_subtractive_norm(x + b, 3, **kw), local_subtractive_norm(x, 3, **kw), atol=1e-9
  )
  np.testing.assert_allclose(
    local_divisive_norm(a * x, 3, **kw), local_divisive_norm(x, 3, **kw), rtol=1e-9, atol=1e-12
  )


def test_float32_invariance_with_a_large_offset(rng):
  x, _ = random_input(rng, (2, 8, 8, 3), jnp.float32)
  y = local_contrast_norm(x, 5)
  moved = local_contrast_norm(0.5 * x + 1000.0, 5)
  np.testing.assert_allclose(np.asarray(moved), np.asarray(y), atol=2e-3)


@pytest.mark.parametrize("steps", list(FUNCTIONS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_samples_never_influence_each_other(rng, steps, bad):
  x, _ = random_input(rng, (3, 5, 6, 2), jnp.float64)
  y = _call(steps, x, 3)
  changed = x.at[1].multiply(7.0).at[1, 2, 3, 0].set(bad)
  z = _call(steps, changed, 3)
  np.testing.assert_array_equal(np.asarray(z[0]), np.asarray(y[0]))
  np.testing.assert_array_equal(np.asarray(z[2]), np.asarray(y[2]))
  assert np.all(np.isfinite(np.asarray(z[0]))) and np.all(np.isfinite(np.asarray(z[2])))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("size", [3, 4])
@pytest.mark.parametrize("index", [(0, 3, 4), (0, 0, 0), (0, 6, 7)])
def test_subtractive_step_is_local(rng, bad, size, index):
  """A non-finite input reaches exactly the outputs whose window contains it (all channels),
  also when it is the sample's first element."""
  x, _ = random_input(rng, (1, 7, 8, 3), jnp.float64)
  y = np.asarray(local_subtractive_norm(x.at[(*index, 1)].set(bad), size))
  lo, hi = size // 2, (size - 1) // 2
  rows, cols = np.arange(7)[:, None], np.arange(8)[None, :]
  # Output p sees q in [p - lo, p + hi], so q reaches p in [q - hi, q + lo].
  reached = (
    (rows >= index[1] - hi)
    & (rows <= index[1] + lo)
    & (cols >= index[2] - hi)
    & (cols <= index[2] + lo)
  )
  finite = np.isfinite(y[0])
  assert np.all(finite[~reached]), "a non-finite input leaked outside its window"
  assert not np.any(finite[reached])
  clean = np.asarray(local_subtractive_norm(x, size))
  np.testing.assert_allclose(y[0][~reached], clean[0][~reached], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Constant and degenerate inputs.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 2.0, -7.5, 1000.0, 0.1, 3e4])
def test_constant_inputs_give_zero_not_nan(dtype, value):
  x = jnp.full((2, 6, 5, 3), value, dtype)
  np.testing.assert_array_equal(np.asarray(local_contrast_norm(x, 5), np.float64), 0.0)
  np.testing.assert_array_equal(np.asarray(local_subtractive_norm(x, 4), np.float64), 0.0)
  divided = np.asarray(local_divisive_norm(x, 3), np.float64)
  # x / max(|x|, eps): sign(x) where |x| > eps (to rounding), 0 for 0.
  np.testing.assert_allclose(divided, np.sign(value), rtol=RTOL[dtype], atol=0)


def test_constant_gradients_are_finite():
  x = jnp.full((1, 5, 5, 2), 3.0, jnp.float64)
  for f in FUNCTIONS.values():
    g = jax.grad(lambda v, f=f: jnp.sum(jnp.sin(f(v, 3))))(x)
    assert np.all(np.isfinite(np.asarray(g)))


def test_constant_channels_keep_their_differences():
  """Channels holding different constants: minus the channel average (as in Torch7)."""
  x = jnp.broadcast_to(jnp.asarray([1.0, 2.0, 6.0]), (1, 4, 4, 3))
  np.testing.assert_allclose(
    np.asarray(local_subtractive_norm(x, 3))[0, 2, 2], [-2.0, -1.0, 3.0], atol=1e-12
  )


# ---------------------------------------------------------------------------------------------
# Transformations and gradients.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", list(FUNCTIONS))
def test_jit_equals_eager_and_vmap_equals_the_batch(rng, steps):
  x, _ = random_input(rng, (3, 6, 5, 2), jnp.float32)
  f = functools.partial(FUNCTIONS[steps], size=3)
  eager = f(x)
  np.testing.assert_allclose(jax.jit(f)(x), eager, rtol=1e-6, atol=1e-6)
  per_image = jax.vmap(lambda v: FUNCTIONS[steps](v, 3, spatial_axes=(0, 1)))(x)
  np.testing.assert_allclose(per_image, eager, rtol=1e-6, atol=1e-6)


def test_vmap_of_grad_equals_a_loop_of_grad(rng):
  x, _ = random_input(rng, (3, 5, 5, 2), jnp.float64)

  def loss(v):
    return jnp.sum(jnp.cos(local_contrast_norm(v, 3, spatial_axes=(0, 1))))

  batched = jax.vmap(jax.grad(loss))(x)
  looped = jnp.stack([jax.grad(loss)(v) for v in x])
  np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", list(FUNCTIONS))
@pytest.mark.parametrize("size", [3, 4])
def test_check_grads_order2(rng, steps, size):
  x, _ = random_input(rng, (2, 4, 5, 2), jnp.float64)
  check_grads(lambda v: _call(steps, v, size, sigma=1.2), (x + 1.0,), order=2, modes=["rev"])


@pytest.mark.parametrize("steps", list(FUNCTIONS))
def test_gradient_matches_finite_differences_of_the_reference(rng, steps):
  """Directional derivatives of the float64 loop reference (central differences) against
  jax.grad: independent of jax_lrn's code and of JAX's autodiff."""
  x, x64 = random_input(rng, (2, 4, 5, 2), jnp.float64)
  w = rng.normal(size=x64.shape)
  grad = np.asarray(jax.grad(lambda v: jnp.sum(jnp.asarray(w) * _call(steps, v, 3)))(x))
  for _ in range(3):
    direction = rng.normal(size=x64.shape)
    h = 1e-6
    plus = np.sum(w * _reference(steps, x64 + h * direction, 3, -1, None))
    minus = np.sum(w * _reference(steps, x64 - h * direction, 3, -1, None))
    np.testing.assert_allclose(np.sum(grad * direction), (plus - minus) / (2 * h), rtol=1e-6)


def test_one_compilation_for_repeated_calls(rng):
  f = jax.jit(functools.partial(local_contrast_norm, size=5))
  for _ in range(3):
    f(random_input(rng, (2, 8, 8, 3), jnp.float32)[0])
  assert f._cache_size() == 1


# ---------------------------------------------------------------------------------------------
# Errors name the argument and the value.
# ---------------------------------------------------------------------------------------------

X4 = jnp.ones((2, 5, 5, 3), jnp.float32)

BAD = [
  (dict(size=0), X4, ValueError, r"size must be a positive int, got 0"),
  (dict(size=2.0), X4, TypeError, r"size must be a positive int, got 2\.0"),
  (dict(sigma=0.0), X4, ValueError, r"sigma must be a finite number > 0, got 0\.0"),
  (dict(sigma=-1), X4, ValueError, r"sigma must be a finite number > 0, got -1"),
  (dict(sigma=float("inf")), X4, ValueError, r"sigma must be a finite number > 0, got inf"),
  (dict(sigma="1"), X4, TypeError, r"sigma must be a Python or NumPy real number, got '1'"),
  (dict(sigma=jnp.float32(1)), X4, TypeError, r"sigma must be a Python or NumPy real number"),
  (dict(eps=-1e-3), X4, ValueError, r"eps must be a finite number >= 0, got -0\.001"),
  (dict(eps=True), X4, TypeError, r"eps must be a Python or NumPy real number, got True"),
  (dict(channel_axis=4), X4, ValueError, r"channel_axis=4 is out of range .* rank 4"),
  (dict(channel_axis=1.0), X4, TypeError, r"channel_axis must be an int, got 1\.0"),
  (dict(spatial_axes=(1, 1)), X4, ValueError, r"spatial_axes=\(1, 1\) names an axis twice"),
  (dict(spatial_axes=(1, 3)), X4, ValueError, r"spatial_axes=\(1, 3\) contains channel_axis"),
  (dict(spatial_axes=()), X4, ValueError, r"spatial_axes=\(\) is empty"),
  (dict(spatial_axes=(5,)), X4, ValueError, r"spatial_axes=5 is out of range"),
  (dict(spatial_axes="12"), X4, TypeError, r"spatial_axes must be an int, a sequence"),
  (dict(), jnp.ones((4, 5, 3)), ValueError, r"spatial_axes=None applies to inputs of rank >= 4"),
  (dict(spatial_axes=(0,)), jnp.ones((5,)), ValueError, r"needs an input of rank >= 2"),
  (dict(), jnp.ones((2, 5, 5, 3), jnp.int32), TypeError, r"x must be a floating array.*int32"),
]


@pytest.mark.parametrize(
  "steps, kwargs, x, exc, match",
  [
    (steps, *bad)
    for steps in FUNCTIONS
    for bad in BAD
    if steps != "subtractive" or "eps" not in bad[0]
  ],
)
def test_errors(steps, kwargs, x, exc, match):
  with pytest.raises(exc, match=match):
    _call(steps, x, **{"size": 3, **kwargs})
  if "size" not in kwargs:
    with pytest.raises(exc, match=match):  # also while tracing
      jax.jit(lambda v: _call(steps, v, 3, **kwargs))(x)


def test_errors_name_the_function():
  with pytest.raises(ValueError, match=r"^local_divisive_norm: spatial_axes=\(\) is empty"):
    local_divisive_norm(X4, 3, spatial_axes=())


# ---------------------------------------------------------------------------------------------
# The closed-form backward (custom_vjp) against autodiff of the plain formulation.
# ---------------------------------------------------------------------------------------------


def _config(steps, shape, size, channel_axis, spatial_axes):
  return _contrast.contrast_config(
    len(shape),
    size,
    sigma=None,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    eps=1e-4,
    subtract=steps != "divisive",
    divide=steps != "subtractive",
    what="test",
  )


@pytest.mark.parametrize("steps", list(FUNCTIONS))
@pytest.mark.parametrize("shape, channel_axis, spatial_axes", CASES)
@pytest.mark.parametrize("size", [3, 4, 7])
def test_closed_form_backward_equals_autodiff(rng, steps, shape, channel_axis, spatial_axes, size):
  if spatial_axes is None:
    spatial_axes = tuple(a for a in range(1, len(shape)) if a != channel_axis % len(shape))
  cfg = _config(steps, shape, size, channel_axis, spatial_axes)
  x, _ = random_input(rng, shape, jnp.float64)
  g, _ = random_input(rng, shape, jnp.float64)
  y, vjp = jax.vjp(functools.partial(_contrast.contrast_core, cfg), x)
  y_ad, vjp_ad = jax.vjp(functools.partial(_contrast.contrast_autodiff, cfg), x)
  np.testing.assert_allclose(y, y_ad, rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(vjp(g)[0], vjp_ad(g)[0], rtol=1e-11, atol=1e-12)

  def second(core):
    return jax.grad(lambda v: jnp.sum(jnp.sin(jax.vjp(functools.partial(core, cfg), v)[1](g)[0])))

  np.testing.assert_allclose(
    second(_contrast.contrast_core)(x),
    second(_contrast.contrast_autodiff)(x),
    rtol=1e-10,
    atol=1e-11,
  )


@pytest.mark.parametrize(
  "name, x",
  [
    ("constant: the floor eps wins", jnp.full((2, 5, 5, 2), 3.0, jnp.float64)),
    ("zero", jnp.zeros((2, 5, 5, 2), jnp.float64)),
    # A checkerboard: the same local deviation everywhere inside, so sigma ties with its mean c
    # at some positions (JAX's max splits the gradient evenly there).
    ("ties", jnp.asarray(np.indices((2, 6, 6, 2)).sum(axis=0) % 2, jnp.float64)),
    ("tiny, below eps", 1e-7 * jnp.arange(50.0, dtype=jnp.float64).reshape(1, 5, 5, 2)),
  ],
)
def test_closed_form_backward_at_ties_and_floors(name, x):
  cfg = _config("both", x.shape, 3, -1, (1, 2))
  g = jnp.asarray(np.random.default_rng(1).normal(size=x.shape))
  got = jax.vjp(functools.partial(_contrast.contrast_core, cfg), x)[1](g)[0]
  want = jax.vjp(functools.partial(_contrast.contrast_autodiff, cfg), x)[1](g)[0]
  assert np.all(np.isfinite(np.asarray(got))), name
  np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


def test_the_backward_keeps_x_and_reduced_statistics_only(rng):
  """One full-size residual (x, in its own dtype); the rest is C times smaller."""
  x, _ = random_input(rng, (2, 6, 6, 16), jnp.bfloat16)
  _, vjp = jax.vjp(lambda v: local_contrast_norm(v, 3), x)
  leaves = [leaf for leaf in jax.tree_util.tree_leaves(vjp) if hasattr(leaf, "shape")]
  full = [leaf for leaf in leaves if leaf.size == x.size]
  assert len(full) == 1 and full[0].dtype == x.dtype
  rest = sum(leaf.size for leaf in leaves if leaf.size != x.size)
  assert rest <= 5 * x.size // 16
