"""lrn() against the float64 NumPy loop reference, over modes, ranks, axes, sizes and dtypes."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import lrn

import reference
from cases import ACROSS_CASES, DTYPES, RTOL, WITHIN_CASES, random_input

SIZES = range(1, 8)
PLACEMENTS = ["before", "after"]


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape, channel_axis", ACROSS_CASES)
def test_across_channels_float64(rng, shape, channel_axis, size, placement):
  x, x64 = random_input(rng, shape, jnp.float64, scale=3.0)
  params = dict(alpha=0.7, beta=0.75, k=1.5)
  y = lrn(x, size, **params, channel_axis=channel_axis, even_placement=placement)
  ref = reference.lrn(x64, size, **params, channel_axis=channel_axis, placement=placement)
  assert y.dtype == jnp.float64 and y.shape == x.shape
  np.testing.assert_allclose(np.asarray(y), ref, rtol=RTOL[jnp.float64], atol=0)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape, channel_axis, spatial_axes", WITHIN_CASES)
def test_within_channel_float64(rng, shape, channel_axis, spatial_axes, size, placement):
  x, x64 = random_input(rng, shape, jnp.float64, scale=3.0)
  params = dict(alpha=2.0, beta=0.6, k=0.5)
  kw = dict(mode="within_channel", channel_axis=channel_axis, spatial_axes=spatial_axes)
  y = lrn(x, size, **params, **kw, even_placement=placement)
  ref = reference.lrn(x64, size, **params, **kw, placement=placement)
  np.testing.assert_allclose(np.asarray(y), ref, rtol=RTOL[jnp.float64], atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize(
  "mode, shape, channel_axis",
  [
    ("across_channels", (2, 4, 4, 16), -1),
    ("across_channels", (2, 16, 4, 4), 1),
    ("within_channel", (2, 6, 6, 3), -1),
    ("within_channel", (2, 3, 6, 6), 1),
  ],
)
def test_dtypes(rng, dtype, size, mode, shape, channel_axis):
  x, x64 = random_input(rng, shape, dtype, scale=2.0)
  params = dict(alpha=1.0, beta=0.75, k=1.0)
  y = lrn(x, size, **params, mode=mode, channel_axis=channel_axis)
  ref = reference.lrn(x64, size, **params, mode=mode, channel_axis=channel_axis)
  assert y.dtype == x.dtype
  np.testing.assert_allclose(np.asarray(y, np.float64), ref, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 0.6, 3.3, -0.5])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=lambda d: jnp.dtype(d).name)
def test_exponents(rng, beta, dtype):
  """The sqrt-product fast paths and the exp-log path all match the formula."""
  x, x64 = random_input(rng, (3, 4, 4, 8), dtype, scale=5.0)
  y = lrn(x, 5, alpha=1.0, beta=beta, k=2.0)
  ref = reference.lrn(x64, 5, alpha=1.0, beta=beta, k=2.0)
  # exp(beta*log s) loses up to |beta*log s| ulps; at these magnitudes log s < 5.
  rtol = RTOL[dtype] * (1 + abs(beta) * 5)
  np.testing.assert_allclose(np.asarray(y, np.float64), ref, rtol=rtol, atol=0)


def test_traced_params_match_static(rng):
  """alpha, beta, k as JAX scalars give the same result as Python floats."""
  x, x64 = random_input(rng, (2, 5, 5, 6), jnp.float64)
  as_floats = lrn(x, 3, 0.3, 0.75, 2.0)
  as_arrays = lrn(x, 3, jnp.float64(0.3), jnp.float64(0.75), jnp.float64(2.0))
  np.testing.assert_allclose(np.asarray(as_arrays), np.asarray(as_floats), rtol=1e-13)
  ref = reference.lrn(x64, 3, 0.3, 0.75, 2.0)
  np.testing.assert_allclose(np.asarray(as_arrays), ref, rtol=1e-12)


def test_defaults_are_pytorch_caffe_convention(rng):
  """Defaults: size 5, alpha 1e-4 divided by 5, beta 0.75, k 1, last axis."""
  x, x64 = random_input(rng, (2, 3, 3, 10), jnp.float64, scale=30.0)
  ref = reference.lrn(x64, 5, 1e-4, 0.75, 1.0, channel_axis=-1)
  np.testing.assert_allclose(np.asarray(lrn(x)), ref, rtol=1e-12)


def test_even_placements_differ(rng):
  """For even sizes the two placements are really different windows (mirror images)."""
  x, _ = random_input(rng, (1, 8), jnp.float64)
  before = lrn(x, 4, alpha=1.0, even_placement="before")
  after = lrn(x, 4, alpha=1.0, even_placement="after")
  assert np.max(np.abs(np.asarray(before - after))) > 1e-3
  # Mirroring the channel axis turns one placement into the other.
  mirrored = lrn(x[:, ::-1], 4, alpha=1.0, even_placement="after")[:, ::-1]
  np.testing.assert_allclose(np.asarray(mirrored), np.asarray(before), rtol=1e-14)


def test_accepts_numpy_and_lists():
  y = lrn(np.ones((2, 3), np.float32), 3)
  assert y.dtype == jnp.float32
  assert lrn([[1.0, 2.0]], 1).shape == (1, 2)


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_numpy_float64_with_x64_off_is_float32_without_warnings(mode):
  """NumPy's default dtype is float64; with x64 off (JAX's default) it becomes float32 silently,
  as in jax.nn functions, and gives exactly what the float32 input gives."""
  x = np.random.default_rng(0).normal(size=(2, 4, 4, 8))
  with jax.enable_x64(False), warnings.catch_warnings():
    warnings.simplefilter("error")
    y = lrn(x, 3, alpha=np.float64(2.0), beta=0.6, k=np.float64(1.5), mode=mode)
    grad = jax.grad(lambda x: jnp.sum(lrn(x, 3, alpha=2.0, mode=mode)))(x)
    expected = lrn(x.astype(np.float32), 3, alpha=2.0, beta=0.6, k=1.5, mode=mode)
  assert y.dtype == grad.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(y), np.asarray(expected))
