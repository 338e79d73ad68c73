"""Hypothesis: random shapes (size-0 and size-1 axes too), axes, modes, window sizes larger than
the axis, parameters and dtypes, against the float64 loop reference, forward and gradient.

Example counts are bounded (``max_examples``) so the suite stays fast; CI runs them
derandomized (see conftest.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jax_lrn import lrn

import reference
from cases import RTOL, window_region

DTYPES = [jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16]


@st.composite
def lrn_cases(draw, min_dim=1, dtypes=(jnp.float64,)):
  ndim = draw(st.integers(1, 4))
  shape = tuple(draw(st.lists(st.integers(min_dim, 5), min_size=ndim, max_size=ndim)))
  modes = ["across_channels", "within_channel"] if ndim >= 2 else ["across_channels"]
  mode = draw(st.sampled_from(modes))
  channel_axis = draw(st.integers(-ndim, ndim - 1))
  kw = dict(
    mode=mode,
    channel_axis=channel_axis,
    even_placement=draw(st.sampled_from(["before", "after"])),
  )
  if mode == "within_channel":
    others = [a for a in range(ndim) if a != channel_axis % ndim]
    axes = draw(
      st.lists(st.sampled_from(others), min_size=1, max_size=min(3, len(others)), unique=True)
    )
    kw["spatial_axes"] = tuple(axes)
  size = draw(st.integers(1, 7))
  # 0, or normal in float32 (lrn refuses a nonzero alpha below the compute dtype's normal range).
  alpha = draw(st.one_of(st.just(0.0), st.floats(1e-30, 4.0)))
  beta = draw(st.one_of(st.sampled_from([0.5, 0.75, 1.0]), st.floats(0.0, 2.0)))
  k = draw(st.floats(0.1, 3.0))
  dtype = draw(st.sampled_from(dtypes))
  seed = draw(st.integers(0, 2**31 - 1))
  return shape, size, alpha, beta, k, kw, dtype, seed


def _reference(x, g, size, alpha, beta, k, kw):
  ref_kw = {("placement" if key == "even_placement" else key): v for key, v in kw.items()}
  return reference.lrn_and_grads(x, g, size, alpha, beta, k, **ref_kw)


@settings(max_examples=60, deadline=None)
@given(lrn_cases())
def test_float64_forward_and_vjp(case):
  shape, size, alpha, beta, k, kw, dtype, seed = case
  rng = np.random.default_rng(seed)
  x = rng.normal(0.0, 2.0, size=shape)
  g = rng.normal(size=shape)
  y, vjp = jax.vjp(lambda x: lrn(x, size, alpha, beta, k, **kw), jnp.asarray(x, dtype))
  (dx,) = vjp(jnp.asarray(g, dtype))
  ry, rdx, *_ = _reference(x, g, size, alpha, beta, k, kw)
  np.testing.assert_allclose(np.asarray(y), ry, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(dx), rdx, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(lrn_cases(min_dim=0, dtypes=DTYPES))
def test_all_dtypes_and_empty_axes(case):
  """Outputs per element within the dtype's tolerance; gradients against their largest entry."""
  shape, size, alpha, beta, k, kw, dtype, seed = case
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(0.0, 2.0, size=shape), dtype)
  g = jnp.asarray(rng.normal(size=shape), dtype)
  y, vjp = jax.vjp(lambda x: lrn(x, size, alpha, beta, k, **kw), x)
  (dx,) = vjp(g)
  assert y.shape == dx.shape == shape and y.dtype == dx.dtype == dtype
  ry, rdx, *_ = _reference(
    np.asarray(x, np.float64), np.asarray(g, np.float64), size, alpha, beta, k, kw
  )
  # exp(beta log s) (non-quarter beta) adds |beta log s| < 2 * 4 ulps of float32.
  rtol = max(RTOL[dtype], 1e-12 if dtype == jnp.float64 else 1e-5 * 8)
  np.testing.assert_allclose(np.asarray(y, np.float64), ry, rtol=rtol, atol=0)
  if rdx.size:
    scale = max(np.max(np.abs(rdx)), 1e-30)
    assert np.max(np.abs(np.asarray(dx, np.float64) - rdx)) <= rtol * 2 * scale


REPLACEMENTS = ["huge", "-huge", "tiny", "zero", "nan", "inf", "-inf"]


def _replacement(kind: str, dtype):
  info = jnp.finfo(dtype)
  return {
    "huge": float(info.max),
    "-huge": -float(info.max),
    "tiny": float(info.tiny),
    "zero": 0.0,
    "nan": np.nan,
    "inf": np.inf,
    "-inf": -np.inf,
  }[kind]


@settings(max_examples=40, deadline=None)
@given(lrn_cases(dtypes=DTYPES), st.data())
def test_outputs_depend_only_on_their_window(case, data):
  """Locality, for every dtype and both modes: changing inputs outside the window of output i
  to huge, tiny, zero, NaN or Inf values leaves y_i bit for bit unchanged, and changing inputs
  outside the region dx_i depends on (the windows of the outputs whose windows hold i: up to
  size - 1 positions away on each window axis) leaves dx_i unchanged for a fixed cotangent."""
  shape, size, alpha, beta, k, kw, dtype, seed = case
  rng = np.random.default_rng(seed)
  index = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
  kind = data.draw(st.sampled_from(REPLACEMENTS))
  mode = kw["mode"]
  ndim = len(shape)
  axes = {kw["channel_axis"] % ndim} if mode == "across_channels" else set(kw["spatial_axes"])
  lo = size // 2 if kw["even_placement"] == "before" else (size - 1) // 2
  window = window_region(shape, index, axes, lo, size - 1 - lo)
  gradient_region = window_region(shape, index, axes, size - 1, size - 1)
  x = jnp.asarray(rng.normal(0.0, 2.0, size=shape), dtype)
  g = jnp.asarray(rng.normal(size=shape), dtype)
  changed = rng.random(shape) < data.draw(st.sampled_from([0.3, 1.0]))
  assume(np.any(changed & ~window))
  bad = jnp.asarray(_replacement(kind, dtype), dtype)
  f = jax.jit(lambda x: jax.vjp(lambda x: lrn(x, size, alpha, beta, k, **kw), x)[1](g)[0])
  y_of = jax.jit(lambda x: lrn(x, size, alpha, beta, k, **kw))
  y, y_changed = y_of(x), y_of(jnp.where(changed & ~window, bad, x))
  assert np.asarray(y, np.float64)[index] == np.asarray(y_changed, np.float64)[index] or (
    np.isnan(np.asarray(y, np.float64)[index])
    and np.isnan(np.asarray(y_changed, np.float64)[index])
  )
  dx, dx_changed = f(x), f(jnp.where(changed & ~gradient_region, bad, x))
  np.testing.assert_array_equal(
    np.asarray(dx, np.float64)[index], np.asarray(dx_changed, np.float64)[index]
  )
