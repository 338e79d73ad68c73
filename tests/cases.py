"""Shared test cases: shapes, axes and tolerances used across the test modules."""

import jax
import jax.numpy as jnp
import numpy as np

# Relative tolerance of each dtype against the float64 reference, for outputs. Every term of
# s = k + alpha/n * sum x^2 is non-negative, so the relative error of y is bounded by a few
# roundings per window element: float32 up to 125 terms (5x5x5) ~ 125 * 2**-24 = 7.5e-6;
# 16-bit outputs are float32 results rounded once to the output type: half an ulp, at most
# 2**-8 relative for bfloat16 (8 significant bits) and 2**-11 for float16 (11 bits).
RTOL = {
  jnp.float64: 1e-12,
  jnp.float32: 1e-5,
  jnp.bfloat16: 2.0**-8,
  jnp.float16: 2.0**-10,
}

DTYPES = list(RTOL)

# (shape, channel_axis, spatial_axes) for within_channel; spatial_axes None = the default.
ACROSS_CASES = [
  ((3, 6), -1),
  ((6, 3), 0),
  ((2, 4, 7), 1),
  ((2, 5, 3, 3), 1),  # NCHW
  ((2, 3, 3, 6), -1),  # NHWC
  ((2, 3, 6, 2), 2),  # channel in the middle
  ((1, 2, 2, 2, 7), -1),  # rank 5
  ((7, 1, 2, 2, 2), 0),  # channel first, rank 5
  ((2, 3), -1),  # fewer channels than most window sizes
]

WITHIN_CASES = [
  ((2, 7, 3), -1, (1,)),  # 1 spatial axis (rank 3 must name it)
  ((2, 6, 5, 2), -1, None),  # NHWC, 2 spatial axes
  ((2, 2, 6, 5), 1, None),  # NCHW
  ((2, 4, 2, 5), 2, None),  # channel in the middle
  ((1, 3, 4, 3, 2), -1, None),  # 3 spatial axes
  ((5, 6), 0, (1,)),  # unbatched 1-D signal per channel
  ((6, 5, 2), -1, (0, 1)),  # unbatched HWC
  ((2, 3, 4), 0, (1, 2)),  # CHW with channel first
]


def random_input(rng, shape, dtype, scale=1.0):
  """Normal data, rounded to dtype (the reference then sees exactly what the function sees)."""
  x = jnp.asarray(rng.normal(0.0, scale, size=shape), dtype=dtype)
  return x, np.asarray(x, dtype=np.float64)


def window_region(shape, index, axes, before, after):
  """Boolean mask of the positions j with ``j[a] - index[a]`` in ``[-before, after]`` along each
  of ``axes`` and ``j[a] == index[a]`` along every other axis."""
  idx = np.indices(shape)
  inside = np.ones(shape, bool)
  for a in range(len(shape)):
    d = idx[a] - index[a]
    inside &= (-before <= d) & (d <= after) if a in axes else d == 0
  return inside


def equations(jaxpr):
  """Every equation of a jaxpr, nested ones (custom_vjp, cond branches, pjit) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from equations(inner)


def require(module: str) -> None:
  """Skips the calling test (or module) where ``module``, from an optional extra that
  ``pip install -e '.[test]'`` brings, is not installed; fails instead where ``CI`` is set."""
  import importlib.util
  import os

  import pytest

  if importlib.util.find_spec(module) is None:
    message = f"{module} is not installed (it comes with pip install -e '.[test]')"
    if os.environ.get("CI"):
      pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def assert_vmap_equals_loop(f, args, rtol_y=1e-14, rtol_grad=1e-12):
  """``jax.vmap(f)`` over the leading axis of every argument, and its gradients with respect
  to the first and third argument (``x`` and ``gamma`` of a GDN), against a Python loop."""
  n = args[0].shape[0]
  got = jax.vmap(f)(*args)
  for i in range(n):
    np.testing.assert_allclose(got[i], f(*(a[i] for a in args)), rtol=rtol_y)
  grad = jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=(0, 2))
  grads = jax.vmap(grad)(*args)
  for i in range(n):
    for a, b in zip(grads, grad(*(a[i] for a in args))):
      np.testing.assert_allclose(a[i], b, rtol=rtol_grad)
