"""Numerical robustness against the float64 reference: extreme, zero, tiny and non-finite inputs."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import lrn

import reference
from cases import RTOL, window_region

MODES = ["across_channels", "within_channel"]


def _tiny(dtype):
  return float(jnp.finfo(dtype).tiny)


def _vjp(x, g, size, alpha, beta, k, **kw):
  y, vjp = jax.vjp(lambda x: lrn(x, size, alpha, beta, k, **kw), x)
  return y, vjp(g)[0]


def assert_matches_where_representable(actual, ref, dtype, rtol):
  """Relative error <= rtol where the true value is a normal number of ``dtype``; values the
  dtype cannot represent (below its smallest normal) must come out at most that small."""
  actual = np.asarray(actual, np.float64)
  assert np.all(np.isfinite(actual))
  normal = np.abs(ref) >= _tiny(dtype)
  np.testing.assert_allclose(actual[normal], ref[normal], rtol=rtol, atol=0)
  assert np.all(np.abs(actual[~normal]) <= _tiny(dtype))


def _extreme_input(rng, shape, dtype, magnitude):
  """Magnitudes spread over six decades up to ``magnitude``, random signs."""
  x = rng.choice([-1.0, 1.0], size=shape) * magnitude * 10.0 ** rng.uniform(-6, 0, size=shape)
  x = jnp.asarray(x, dtype)
  return x, np.asarray(x, np.float64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("beta", [0.5, 0.75, 0.6])
@pytest.mark.parametrize(
  "dtype, magnitude",
  [(jnp.float32, 1e18), (jnp.float16, 65504.0), (jnp.bfloat16, 1e18)],
  ids=["float32-1e18", "float16-65504", "bfloat16-1e18"],
)
def test_extreme_magnitudes(rng, dtype, magnitude, beta, mode):
  """Squares near or beyond float32's limit stay finite and accurate (outputs and gradients)."""
  x, x64 = _extreme_input(rng, (2, 5, 5, 8), dtype, magnitude)
  g = jnp.asarray(rng.normal(size=x.shape), dtype)
  y, dx = _vjp(x, g, 5, 1e-4, beta, 1.0, mode=mode)
  ry, rdx, *_ = reference.lrn_and_grads(
    x64, np.asarray(g, np.float64), 5, 1e-4, beta, 1.0, mode=mode
  )
  # exp(beta log s) loses |beta log s| ulps (log s <= ~180 here) on the general path.
  rtol = RTOL[dtype] if beta != 0.6 or dtype != jnp.float32 else 2e-5
  assert_matches_where_representable(y, ry, dtype, rtol)
  assert np.all(np.isfinite(np.asarray(dx, np.float64)))
  # dx is a difference of two terms: its error is measured against its largest entry (as in
  # test_gradients), plus the dtype's smallest normal, below which nothing is representable.
  err = np.max(np.abs(np.asarray(dx, np.float64) - rdx))
  assert err <= max(RTOL[dtype], 1e-5) * np.max(np.abs(rdx)) + _tiny(dtype)


@pytest.mark.parametrize(
  "dtype", [jnp.float32, jnp.float16, jnp.bfloat16, jnp.float64], ids=lambda d: jnp.dtype(d).name
)
@pytest.mark.parametrize("mode", MODES)
def test_all_zero_input(dtype, mode):
  """Zeros in, zeros out, and finite (here: s**-beta = k**-beta) gradients, for k > 0."""
  x = jnp.zeros((2, 4, 4, 6), dtype)
  y, dx = _vjp(x, jnp.ones_like(x), 3, 1.0, 0.75, 2.0, mode=mode)
  assert y.dtype == dtype and not np.any(np.asarray(y, np.float64))
  np.testing.assert_allclose(np.asarray(dx, np.float64), 2.0**-0.75, rtol=RTOL[dtype])


@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_k_zero_with_all_zero_window_is_nan(beta):
  """k = 0 and an all-zero window: s = 0, y = 0 * 0**-beta = 0 * inf = nan, as in PyTorch,
  TensorFlow and the formula itself; windows with any non-zero element are unaffected."""
  x = jnp.array([[0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]], jnp.float32)
  y = np.asarray(lrn(x, 3, 1.0, beta, 0.0))
  ref = reference.lrn(np.asarray(x, np.float64), 3, 1.0, beta, 0.0)
  assert np.all(np.isnan(y[0, :4])) and np.all(np.isnan(ref[0, :4]))
  np.testing.assert_allclose(y[0, 4:], ref[0, 4:], rtol=1e-6)


@pytest.mark.parametrize("case, k", [("k0", 0.0), ("zeros", 1.0)])
def test_degenerate_inputs_match_the_frameworks(case, k):
  """Outputs and gradients, nan pattern included, equal what PyTorch, TensorFlow and
  onnxruntime returned (tests/fixtures/degenerate/, from tools/make_degenerate_fixture.py)."""
  fixture = np.load(pathlib.Path(__file__).parent / "fixtures" / "degenerate" / "k0_and_zeros.npz")
  x = jnp.asarray(fixture[f"{case}_x"])
  y, dx = _vjp(x, jnp.ones_like(x), 3, 1.0, 0.75, k, channel_axis=1)
  for framework in ("torch", "tensorflow", "onnxruntime"):
    np.testing.assert_allclose(np.asarray(y), fixture[f"{case}_{framework}_y"], rtol=1e-6)
    if f"{case}_{framework}_dx" in fixture:
      np.testing.assert_allclose(np.asarray(dx), fixture[f"{case}_{framework}_dx"], rtol=1e-6)
  if case == "k0":
    assert np.all(np.isnan(np.asarray(y)[:, :4])) and np.all(np.isfinite(np.asarray(y)[:, 4:]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(
  "mode, shape, size, pos",
  [
    ("across_channels", (2, 3, 3, 16), 5, (1, 1, 2, 7)),
    ("across_channels", (2, 3, 3, 16), 4, (1, 1, 2, 7)),
    ("within_channel", (2, 12, 12, 2), 3, (1, 5, 6, 1)),
  ],
)
def test_non_finite_stays_local(rng, bad, dtype, mode, shape, size, pos):
  """A NaN or Inf changes only the outputs whose window contains it (and, in the gradient, only
  elements within two windows of it); everything else is bitwise what it was."""
  x = jnp.asarray(rng.normal(size=shape), dtype)
  x_bad = x.at[pos].set(bad)
  g = jnp.asarray(rng.normal(size=shape), dtype)
  f = jax.jit(lambda x: _vjp(x, g, size, 1.0, 0.75, 1.0, mode=mode))
  (y, dx), (y_bad, dx_bad) = f(x), f(x_bad)
  axes = (3,) if mode == "across_channels" else (1, 2)
  lo = size // 2  # default placement: the window of i is [i - lo, i + size - 1 - lo]

  def within(reach_lo, reach_hi):  # positions i whose window (grown by reach) contains pos
    return window_region(shape, pos, axes, reach_hi, reach_lo)

  touched = within(lo, size - 1 - lo)
  changed = np.asarray(y_bad, np.float64) != np.asarray(y, np.float64)
  assert not np.any(changed & ~touched)
  assert np.all(~np.isfinite(np.asarray(y_bad, np.float64)[pos]))
  touched2 = within(size - 1, size - 1)
  assert not np.any((np.asarray(dx_bad, np.float64) != np.asarray(dx, np.float64)) & ~touched2)


@pytest.mark.parametrize("mode", MODES)
def test_inf_zeroes_its_neighbours(mode):
  """An infinite input makes s infinite in its window: finite neighbours go to 0, the infinite
  element itself to inf * 0 = nan, exactly as the formula (and the reference) says."""
  x = jnp.ones((1, 5, 5, 7), jnp.float32).at[0, 2, 2, 3].set(jnp.inf)
  y = np.asarray(lrn(x, 3, 1.0, 0.75, 1.0, mode=mode))
  ref = reference.lrn(np.asarray(x, np.float64), 3, 1.0, 0.75, 1.0, mode=mode)
  np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
  np.testing.assert_allclose(y[~np.isnan(y)], ref[~np.isnan(ref)], rtol=1e-6)


@pytest.mark.parametrize(
  "dtype", [jnp.float32, jnp.float16, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name
)
@pytest.mark.parametrize("mode", MODES)
def test_tiny_inputs_whose_squares_underflow(rng, dtype, mode):
  """Inputs whose squares are subnormal or underflow to zero: y = x * k**-beta as in float64."""
  smallest = {jnp.float32: 1e-30, jnp.float16: 1e-4, jnp.bfloat16: 1e-30}[dtype]
  x, x64 = _extreme_input(rng, (2, 4, 4, 8), dtype, smallest * 1e3)
  g = jnp.asarray(rng.normal(size=x.shape), dtype)
  y, dx = _vjp(x, g, 5, 1.0, 0.75, 2.0, mode=mode)
  ry, rdx, *_ = reference.lrn_and_grads(
    x64, np.asarray(g, np.float64), 5, 1.0, 0.75, 2.0, mode=mode
  )
  assert_matches_where_representable(y, ry, dtype, RTOL[dtype])
  assert_matches_where_representable(dx, rdx, dtype, RTOL[dtype])


def test_subnormal_inputs_follow_the_platform():
  """Subnormal inputs: the float64 reference keeps them; XLA:CPU flushes subnormal operands to
  zero (as it does for any arithmetic), so the output is 0 or the reference value, never more."""
  x = jnp.array([[1e-40, -2e-40, 1e-39, 3e-38]], jnp.float32)
  y = np.asarray(lrn(x, 3, 1.0, 0.75, 1.0), np.float64)
  ref = reference.lrn(np.asarray(x, np.float64), 3, 1.0, 0.75, 1.0)
  assert np.all((y == 0.0) | np.isclose(y, ref, rtol=1e-6))
  np.testing.assert_allclose(y[0, 3], ref[0, 3], rtol=1e-6)  # a normal number is kept


@pytest.mark.parametrize("mode", MODES)
def test_bfloat16_computes_as_float32(rng, mode):
  """bfloat16 input is computed in float32 and rounded once: the output is the float32 result of
  the same (exactly widened) input, cast to bfloat16, bit for bit, at every magnitude, also
  past float32's range for squares (|x| > ~1.8e19), where both give 0."""
  x, _ = _extreme_input(rng, (2, 4, 4, 8), jnp.bfloat16, 3e38)
  y = lrn(x, 5, 1e-4, 0.75, 1.0, mode=mode)
  y32 = lrn(x.astype(jnp.float32), 5, 1e-4, 0.75, 1.0, mode=mode).astype(jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(y, np.float64), np.asarray(y32, np.float64))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("magnitude", [1.0, 1e18], ids=["ordinary", "1e18"])
def test_bfloat16_hyperparameter_gradients(rng, magnitude, mode):
  """Traced (learnable) alpha, beta, k with bfloat16 data, also near the top of float32's range
  for squares: the output is rounded once, and d/dalpha, d/dbeta, d/dk match float64 (sums of
  float32 terms: 1e-4 relative, where the true value is a normal float32)."""
  x, x64 = _extreme_input(rng, (2, 4, 4, 8), jnp.bfloat16, magnitude)
  g = jnp.asarray(rng.normal(size=x.shape), jnp.bfloat16)
  params = (jnp.float32(1e-4), jnp.float32(0.6), jnp.float32(1.5))
  y, vjp = jax.vjp(lambda x, a, b, k: lrn(x, 5, a, b, k, mode=mode), x, *params)
  _, da, db, dk = vjp(g)
  ry, _, rda, rdb, rdk = reference.lrn_and_grads(
    x64, np.asarray(g, np.float64), 5, 1e-4, 0.6, 1.5, mode=mode
  )
  assert_matches_where_representable(y, ry, jnp.bfloat16, RTOL[jnp.bfloat16])
  assert_matches_where_representable(
    np.array([da, db, dk]), np.array([rda, rdb, rdk]), jnp.float32, 1e-4
  )


@pytest.mark.parametrize("kind", ["huge", "-huge", "tiny", "zero", "nan", "inf"])
@pytest.mark.parametrize(
  "dtype", [jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16], ids=lambda d: jnp.dtype(d).name
)
@pytest.mark.parametrize("mode", MODES)
def test_values_outside_a_window_never_reach_it(rng, mode, dtype, kind):
  """Every element outside the window of output i set to the dtype's largest, smallest normal,
  zero, NaN or Inf: y_i is unchanged bit for bit, and so is dx_i (outside the region it depends
  on: size - 1 positions on each window axis). bfloat16 once rescaled the whole tensor by its
  largest value, so one huge element anywhere changed (to nan or inf) every output."""
  shape, size, index = (2, 6, 6, 8), 3, (1, 3, 2, 4)
  info = jnp.finfo(dtype)
  bad = {"huge": info.max, "-huge": -info.max, "tiny": info.tiny, "zero": 0, "nan": np.nan}
  bad = jnp.asarray(bad.get(kind, np.inf), dtype)
  axes = (3,) if mode == "across_channels" else (1, 2)

  def region(reach):
    return window_region(shape, index, axes, reach, reach)

  x = jnp.asarray(rng.normal(0.0, 2.0, size=shape), dtype)
  g = jnp.asarray(rng.normal(size=shape), dtype)
  f = jax.jit(lambda x: _vjp(x, g, size, 1e-2, 0.75, 1.0, mode=mode))
  y, dx = f(x)
  y_changed, _ = f(jnp.where(region(size // 2), x, bad))
  _, dx_changed = f(jnp.where(region(size - 1), x, bad))
  assert np.asarray(y, np.float64)[index] == np.asarray(y_changed, np.float64)[index]
  assert np.asarray(dx, np.float64)[index] == np.asarray(dx_changed, np.float64)[index]
  assert np.isfinite(np.asarray(y, np.float64)[index])


@pytest.mark.parametrize("mode", MODES)
def test_traced_and_static_beta_zero_agree(mode):
  """beta = 0 means s**0 = 1 for every s, also s = 0 (k = 0 with an all-zero window): a traced
  beta gives what the static one gives, outputs and gradients."""
  x = jnp.zeros((1, 4, 4, 6), jnp.float32).at[0, 0, 0, 0].set(2.0)
  static = lrn(x, 3, 1.0, 0.0, 0.0, mode=mode)
  traced = jax.jit(lambda b: lrn(x, 3, 1.0, b, 0.0, mode=mode))(jnp.float32(0.0))
  np.testing.assert_array_equal(np.asarray(traced), np.asarray(static))
  np.testing.assert_array_equal(np.asarray(static), np.asarray(x))
  grads = jax.grad(lambda b, x: jnp.sum(lrn(x, 3, 1.0, b, 0.0, mode=mode)), argnums=(0, 1))
  d_beta, dx = grads(jnp.float32(0.0), x)
  d_static = jax.grad(lambda x: jnp.sum(lrn(x, 3, 1.0, 0.0, 0.0, mode=mode)))(x)
  # y_i = x_i s_i**-beta: d/dbeta = -sum x_i s_i**-beta log s_i, where only x = 2 contributes.
  assert np.isfinite(float(d_beta))
  window = 4.0 / 9.0 if mode == "within_channel" else 4.0 / 3.0
  np.testing.assert_allclose(float(d_beta), -2.0 * np.log(window), rtol=1e-6)
  # y = x: dx is the cotangent (ones) everywhere, also in the all-zero windows where s = 0.
  np.testing.assert_array_equal(np.asarray(dx), np.ones(x.shape, np.float32))
  np.testing.assert_array_equal(np.asarray(d_static), np.ones(x.shape, np.float32))
  for beta in (jnp.float32(0.0), 0.0):  # alpha and k do not matter when beta = 0
    da, dk = jax.grad(lambda a, k, b=beta: jnp.sum(lrn(x, 3, a, b, k, mode=mode)), (0, 1))(
      jnp.float32(1.0), jnp.float32(0.0)
    )
    assert float(da) == 0.0 and float(dk) == 0.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("beta, magnitude", [(2.0, 1e12), (1.5, 1e15), (1.25, 1e17), (1.75, 1e14)])
def test_exponents_above_one_past_float32s_power_range(rng, mode, beta, magnitude):
  """beta > 1 with s**beta beyond float32's range (s up to ~1e34): y = x / s**beta is a normal
  float32 and comes out right, because s**beta is never formed (it used to give 0). The
  gradient is not checked at these magnitudes: its shared factor g y / s falls below float32's
  normal range there (see docs/numerics.md)."""
  x, x64 = _extreme_input(rng, (2, 4, 4, 8), jnp.float32, magnitude)
  y = lrn(x, 5, 1.0, beta, 1.0, mode=mode)
  ry = reference.lrn(x64, 5, 1.0, beta, 1.0, mode=mode)
  assert np.max(np.abs(ry)) > 1e-33  # true outputs well inside the normal range
  assert_matches_where_representable(y, ry, jnp.float32, 1e-5)
