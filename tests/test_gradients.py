"""Gradients of lrn(): numerical checks, the loop reference, and autodiff of a plain formulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from jax_lrn import lrn

import reference
from cases import random_input

CONFIGS = [
  # (shape, size, lrn keyword arguments)
  ((2, 7), 5, dict(channel_axis=-1)),
  ((2, 6, 3), 4, dict(channel_axis=1)),  # even size, default placement
  ((2, 6, 3), 4, dict(channel_axis=1, even_placement="after")),
  ((2, 3, 3, 5), 2, dict(channel_axis=-1)),
  ((5, 2, 3), 7, dict(channel_axis=0)),  # window larger than the channel count
  ((2, 5, 4, 2), 3, dict(mode="within_channel")),
  ((2, 2, 5, 4), 4, dict(mode="within_channel", channel_axis=1)),
  ((2, 2, 5, 4), 4, dict(mode="within_channel", channel_axis=1, even_placement="after")),
  ((1, 3, 3, 3, 2), 2, dict(mode="within_channel")),  # 3 spatial axes
  ((4, 5), 3, dict(mode="within_channel", channel_axis=0, spatial_axes=(1,))),
]
IDS = [f"{s}-n{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for s, n, kw in CONFIGS]
PARAMS = dict(alpha=1.3, beta=0.75, k=1.2)


def plain_lrn(
  x,
  size,
  alpha,
  beta,
  k,
  *,
  mode="across_channels",
  channel_axis=-1,
  spatial_axes=None,
  even_placement="before",
):
  """A plain formulation (one reduce_window over all window axes, lax.pow), for autodiff."""
  ndim = x.ndim
  if mode == "across_channels":
    axes = (channel_axis % ndim,)
  elif spatial_axes is None:
    axes = tuple(a for a in range(1, ndim) if a != channel_axis % ndim)
  else:
    axes = tuple(a % ndim for a in spatial_axes)
  lo = size // 2 if even_placement == "before" else (size - 1) // 2
  window = [size if a in axes else 1 for a in range(ndim)]
  padding = [(lo, size - 1 - lo) if a in axes else (0, 0) for a in range(ndim)]
  sq_sum = lax.reduce_window(x * x, 0.0, lax.add, window, (1,) * ndim, padding)
  return x * (k + alpha / size ** len(axes) * sq_sum) ** (-beta)


@pytest.mark.parametrize("shape, size, kw", CONFIGS, ids=IDS)
def test_check_grads_order2(rng, shape, size, kw):
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  check_grads(lambda x: lrn(x, size, **PARAMS, **kw), (x,), order=2, modes=["rev"])


@pytest.mark.parametrize("shape, size, kw", CONFIGS, ids=IDS)
def test_check_grads_params(rng, shape, size, kw):
  """Gradients with respect to alpha, beta and k (a learnable LRN), to second order."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)

  def f(alpha, beta, k):
    return lrn(x, size, alpha, beta, k, **kw)

  args = tuple(jnp.float64(PARAMS[p]) for p in ("alpha", "beta", "k"))
  check_grads(f, args, order=2, modes=["rev"], eps=1e-4)


@pytest.mark.parametrize("shape, size, kw", CONFIGS, ids=IDS)
def test_vjp_matches_reference(rng, shape, size, kw):
  x, x64 = random_input(rng, shape, jnp.float64, scale=2.0)
  g = rng.normal(size=shape)
  params = tuple(jnp.float64(PARAMS[p]) for p in ("alpha", "beta", "k"))
  _, vjp = jax.vjp(lambda x, a, b, k: lrn(x, size, a, b, k, **kw), x, *params)
  dx, da, db, dk = vjp(jnp.asarray(g))
  ref_kw = {("placement" if key == "even_placement" else key): v for key, v in kw.items()}
  _, rdx, rda, rdb, rdk = reference.lrn_and_grads(x64, g, size, **PARAMS, **ref_kw)
  np.testing.assert_allclose(np.asarray(dx), rdx, rtol=1e-11, atol=1e-13)
  np.testing.assert_allclose([da, db, dk], [rda, rdb, rdk], rtol=1e-11)


@pytest.mark.parametrize("shape, size, kw", CONFIGS, ids=IDS)
def test_custom_vjp_matches_autodiff_of_plain(rng, shape, size, kw):
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  g = jnp.asarray(rng.normal(size=shape))
  params = tuple(jnp.float64(PARAMS[p]) for p in ("alpha", "beta", "k"))
  ours = jax.vjp(lambda *a: lrn(a[0], size, *a[1:], **kw), x, *params)[1](g)
  plain = jax.vjp(lambda *a: plain_lrn(a[0], size, *a[1:], **kw), x, *params)[1](g)
  for a, b in zip(ours, plain):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("shape, size, kw", CONFIGS[:3] + CONFIGS[5:7], ids=IDS[:3] + IDS[5:7])
def test_second_order_matches_plain(rng, shape, size, kw):
  """grad-of-grad through the custom backward equals that of the plain formulation."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  v = jnp.asarray(rng.normal(size=shape))

  def gradgrad(fn):
    inner = jax.grad(lambda x: jnp.sum(fn(x, size, **PARAMS, **kw) * v))
    return jax.grad(lambda x: jnp.sum(inner(x) ** 2))(x)

  np.testing.assert_allclose(
    np.asarray(gradgrad(lrn)), np.asarray(gradgrad(plain_lrn)), rtol=1e-10, atol=1e-12
  )


def test_hessian(rng):
  x, _ = random_input(rng, (1, 6), jnp.float64, scale=2.0)
  f = lambda x: jnp.sum(jnp.sin(lrn(x, 4, **PARAMS)))  # noqa: E731
  h = jax.hessian(f)(x)
  h_plain = jax.hessian(lambda x: jnp.sum(jnp.sin(plain_lrn(x, 4, **PARAMS))))(x)
  assert h.shape == (1, 6, 1, 6)
  np.testing.assert_allclose(np.asarray(h), np.asarray(h_plain), rtol=1e-10, atol=1e-12)
  flat = np.asarray(h).reshape(6, 6)
  np.testing.assert_allclose(flat, flat.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
  "dtype", [jnp.float32, jnp.bfloat16, jnp.float16], ids=lambda d: jnp.dtype(d).name
)
@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_low_precision_gradients(rng, dtype, mode):
  """Gradients in float32 and 16-bit (computed in float32 inside) track the float64 reference.

  dx is a difference of two terms, so the error is measured against the largest entry:
  float32 1e-5, 16-bit the output rounding 2**-8 (bfloat16) / 2**-10 (float16).
  """
  x, x64 = random_input(rng, (2, 5, 5, 8), dtype, scale=2.0)
  g, g64 = random_input(rng, (2, 5, 5, 8), dtype)
  dx = jax.vjp(lambda x: lrn(x, 5, **PARAMS, mode=mode), x)[1](g)[0]
  assert dx.dtype == dtype
  _, rdx, *_ = reference.lrn_and_grads(x64, g64, 5, **PARAMS, mode=mode)
  tol = {jnp.float32: 1e-5, jnp.bfloat16: 2.0**-8, jnp.float16: 2.0**-10}[dtype]
  err = np.max(np.abs(np.asarray(dx, np.float64) - rdx)) / np.max(np.abs(rdx))
  assert err < tol


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_residual_is_the_input_alone(rng, dtype):
  """The backward keeps x itself, in its own dtype (plus three scalars), nothing else."""
  x, _ = random_input(rng, (2, 4, 4, 8), dtype)
  for kw in (dict(), dict(mode="within_channel")):
    _, vjp = jax.vjp(lambda x, kw=kw: lrn(x, 5, **kw), x)
    leaves = jax.tree_util.tree_leaves(vjp)
    big = [leaf for leaf in leaves if np.size(leaf) > 1]
    assert len(big) == 1 and big[0].dtype == dtype
    np.testing.assert_array_equal(np.asarray(big[0], np.float64), np.asarray(x, np.float64))
    assert all(np.size(leaf) == 1 for leaf in leaves if np.size(leaf) != x.size)


def test_only_requested_cotangents_are_computed(rng):
  """With static parameters the backward builds no log (the beta cotangent is skipped)."""
  x, _ = random_input(rng, (2, 8), jnp.float32)
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda x: lrn(x, 3, beta=0.75).sum()))(x))
  assert "log" not in jaxpr
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda b: lrn(x, 3, beta=b).sum()))(jnp.float32(0.75)))
  assert "log" in jaxpr


# ---------------------------------------------------------------------------------------------
# Forward mode: what works on a custom_vjp function (as documented in lrn's docstring), and
# what raises.
# ---------------------------------------------------------------------------------------------

FORWARD_MODE_ERROR = r"can't apply forward-mode autodiff \(jvp\) to a custom_vjp function"


def _forward_mode_case(rng, mode):
  x, _ = random_input(rng, (2, 4, 3, 3), jnp.float64)
  v, _ = random_input(rng, (2, 4, 3, 3), jnp.float64)
  kw = dict(mode=mode, **PARAMS)
  return x, v, (lambda x: lrn(x, 4, **kw)), (lambda x: plain_lrn(x, 4, **kw))


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_forward_mode_on_lrn_itself_raises(rng, mode):
  """jvp, jacfwd and the linear function of linearize need a JVP rule, which a custom_vjp has
  not. If this starts to pass, JAX gained forward mode for custom_vjp: update the docs."""
  x, v, f, _ = _forward_mode_case(rng, mode)
  with pytest.raises(TypeError, match=FORWARD_MODE_ERROR):
    jax.jvp(f, (x,), (v,))
  with pytest.raises(TypeError, match=FORWARD_MODE_ERROR):
    jax.jacfwd(f)(x)
  with pytest.raises(TypeError, match=FORWARD_MODE_ERROR):
    _, f_lin = jax.linearize(f, x)
    f_lin(v)
  with pytest.raises(TypeError, match=FORWARD_MODE_ERROR):
    jax.jvp(lambda a: lrn(x, 4, a, 0.75, 1.2, mode=mode), (1.3,), (1.0,))


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_jacrev_equals_autodiff_of_plain(rng, mode):
  x, _, f, f_plain = _forward_mode_case(rng, mode)
  np.testing.assert_allclose(
    np.asarray(jax.jacrev(f)(x)), np.asarray(jax.jacfwd(f_plain)(x)), rtol=1e-11, atol=1e-13
  )


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_jvp_by_transposing_the_vjp(rng, mode):
  """The documented replacement for jax.jvp: the VJP is linear, and its transpose is the JVP."""
  x, v, f, f_plain = _forward_mode_case(rng, mode)
  y, vjp = jax.vjp(f, x)
  (jvp,) = jax.linear_transpose(lambda g: vjp(g)[0], y)(v)
  _, expected = jax.jvp(f_plain, (x,), (v,))
  np.testing.assert_allclose(np.asarray(jvp), np.asarray(expected), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_forward_mode_over_reverse_mode(rng, mode):
  """Hessian-vector products (jvp of grad), linearize of grad and jacfwd of grad equal those of
  the plain formulation."""
  x, v, f, f_plain = _forward_mode_case(rng, mode)
  loss = lambda x: jnp.sum(jnp.sin(f(x)))  # noqa: E731
  loss_plain = lambda x: jnp.sum(jnp.sin(f_plain(x)))  # noqa: E731
  _, hvp_plain = jax.jvp(jax.grad(loss_plain), (x,), (v,))
  _, hvp = jax.jvp(jax.grad(loss), (x,), (v,))
  _, grad_lin = jax.linearize(jax.grad(loss), x)
  tol = dict(rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(np.asarray(hvp), np.asarray(hvp_plain), **tol)
  np.testing.assert_allclose(np.asarray(grad_lin(v)), np.asarray(hvp_plain), **tol)
  np.testing.assert_allclose(
    np.asarray(jax.jacfwd(jax.grad(loss))(x)), np.asarray(jax.hessian(loss_plain)(x)), **tol
  )


# ---------------------------------------------------------------------------------------------
# beta = 0: y = x for every alpha and k, but the derivatives in beta are not zero. Every order
# must come out right at beta = 0 exactly (static and traced), not only near it.
# ---------------------------------------------------------------------------------------------

BETA_ZERO_CONFIGS = [CONFIGS[i] for i in (0, 1, 5, 7, 9)]
BETA_ZERO_IDS = [IDS[i] for i in (0, 1, 5, 7, 9)]


def _full_hessian(fn, x, params, w, size, kw):
  """The Hessian of sum(w * fn(x, size, alpha, beta, k)) in (x, alpha, beta, k), as one
  symmetric matrix."""

  def loss(flat):
    x_ = flat[:-3].reshape(x.shape)
    return jnp.sum(w * fn(x_, size, flat[-3], flat[-2], flat[-1], **kw))

  return np.asarray(jax.hessian(loss)(jnp.concatenate([x.ravel(), jnp.stack(params)])))


@pytest.mark.parametrize("shape, size, kw", BETA_ZERO_CONFIGS, ids=BETA_ZERO_IDS)
def test_second_derivatives_at_traced_beta_zero(rng, shape, size, kw):
  """At a traced beta = 0 the Hessian in (x, alpha, beta, k) equals that of plain autodiff of
  the formula, is symmetric, and d2/dbeta2, d2/dbeta dalpha, d2/dbeta dx are not zero."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  w = jnp.asarray(rng.normal(size=shape))
  params = (jnp.float64(1.3), jnp.float64(0.0), jnp.float64(1.2))
  h = _full_hessian(lrn, x, params, w, size, kw)
  h_plain = _full_hessian(plain_lrn, x, params, w, size, kw)
  np.testing.assert_allclose(h, h_plain, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)
  # The beta row: d/dbeta of d/dx, d/dalpha, d/dbeta, d/dk; none of them vanishes at beta = 0.
  assert np.all(h_plain[-2, -3:-1] != 0) and np.any(h_plain[-2, :-3] != 0)


@pytest.mark.parametrize("shape, size, kw", BETA_ZERO_CONFIGS, ids=BETA_ZERO_IDS)
def test_second_derivatives_at_static_beta_zero(rng, shape, size, kw):
  """A static beta = 0 makes y = x: every second derivative in x, alpha and k is 0, as plain
  autodiff of the formula says."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  w = jnp.asarray(rng.normal(size=shape))

  def hessian(fn):
    def loss(flat):
      x_ = flat[:-2].reshape(x.shape)
      return jnp.sum(w * fn(x_, size, flat[-2], 0.0, flat[-1], **kw))

    flat = jnp.concatenate([x.ravel(), jnp.asarray([1.3, 1.2])])
    return np.asarray(jax.hessian(loss)(flat))

  h = hessian(lrn)
  np.testing.assert_allclose(h, hessian(plain_lrn), rtol=0, atol=1e-12)
  np.testing.assert_array_equal(h, np.zeros_like(h))


@pytest.mark.parametrize("shape, size, kw", BETA_ZERO_CONFIGS[:3], ids=BETA_ZERO_IDS[:3])
def test_check_grads_at_traced_beta_zero(rng, shape, size, kw):
  """Finite differences, to second order, in x and in (alpha, beta, k) at beta = 0 (the
  differences step across 0: beta < 0 is valid)."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  params = (jnp.float64(1.3), jnp.float64(0.0), jnp.float64(1.2))
  check_grads(lambda a, b, k: lrn(x, size, a, b, k, **kw), params, order=2, modes=["rev"], eps=1e-4)
  check_grads(lambda x: lrn(x, size, 1.3, params[1], 1.2, **kw), (x,), order=2, modes=["rev"])


def test_issue_example_mixed_derivative_at_beta_zero():
  """d2/dalpha dbeta of sum(lrn) at beta = 0: -0.760695 by plain autodiff and finite
  differences (it used to come out 0)."""
  x = jnp.asarray([[0.5, -1.0, 2.0]], jnp.float64)
  f = lambda a, b: jnp.sum(lrn(x, 3, a, b, 1.0))  # noqa: E731
  f_plain = lambda a, b: jnp.sum(plain_lrn(x, 3, a, b, 1.0))  # noqa: E731
  got = float(jax.grad(jax.grad(f, 0), 1)(1.0, 0.0))
  np.testing.assert_allclose(got, float(jax.grad(jax.grad(f_plain, 0), 1)(1.0, 0.0)), rtol=1e-12)
  eps = 1e-5
  numeric = (float(jax.grad(f, 0)(1.0, eps)) - float(jax.grad(f, 0)(1.0, -eps))) / (2 * eps)
  np.testing.assert_allclose(got, numeric, rtol=1e-7)
  np.testing.assert_allclose(got, -0.760695, rtol=1e-6)


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_second_derivatives_at_traced_beta_zero_with_zero_windows(mode):
  """k = 0 and all-zero windows (s = 0) at a traced beta = 0: y = x, so the second derivatives
  in x and alpha are 0 there as for a static beta = 0 (no nan leaks from s = 0)."""
  x = jnp.zeros((1, 4, 4, 6), jnp.float64).at[0, 0, 0, 0].set(2.0)

  def loss(x, a, b):
    return jnp.sum(jnp.sin(lrn(x, 3, a, b, 0.0, mode=mode)))

  for beta in (jnp.float64(0.0), 0.0):
    hxx = jax.hessian(loss)(x, 1.0, beta)
    hx = jax.grad(lambda x, b=beta: jnp.sum(jax.grad(loss, 1)(x, 1.0, b)))(x)
    # y = x: d2/dx2 sum(sin(x)) = -sin(x) on the diagonal.
    np.testing.assert_allclose(
      np.asarray(hxx).reshape(x.size, x.size), np.diag(-np.sin(np.asarray(x).ravel())), atol=0
    )
    np.testing.assert_array_equal(np.asarray(hx), np.zeros(x.shape))
