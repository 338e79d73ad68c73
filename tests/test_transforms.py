"""lrn() under jit, vmap (also of grad) and with traced hyperparameters."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import lrn

from cases import random_input

KWARGS = [
  dict(size=5),
  dict(size=4, even_placement="after"),
  dict(size=3, mode="within_channel", spatial_axes=(0, 1)),  # per example: (H, W, C)
  dict(size=2, mode="within_channel", spatial_axes=(0, 1)),
]


@pytest.mark.parametrize("kw", KWARGS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_jit_equals_eager(rng, kw, dtype):
  x, _ = random_input(rng, (5, 5, 6), dtype)
  eager = lrn(x, alpha=1.0, **kw)
  jitted = jax.jit(functools.partial(lrn, alpha=1.0, **kw))(x)
  np.testing.assert_allclose(
    np.asarray(jitted, np.float32),
    np.asarray(eager, np.float32),
    rtol=1e-6 if dtype == jnp.float32 else 2.0**-8,
  )


@pytest.mark.parametrize("kw", KWARGS)
def test_vmap_equals_loop(rng, kw):
  x, _ = random_input(rng, (3, 5, 5, 6), jnp.float64)
  f = functools.partial(lrn, alpha=1.0, **kw)
  batched = jax.vmap(f)(x)
  looped = jnp.stack([f(xi) for xi in x])
  np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-14)


@pytest.mark.parametrize("kw", KWARGS)
def test_vmap_of_grad_equals_loop(rng, kw):
  x, _ = random_input(rng, (3, 5, 5, 6), jnp.float64)
  grad = jax.grad(lambda x: jnp.sum(jnp.cos(lrn(x, alpha=1.0, **kw))))
  batched = jax.jit(jax.vmap(grad))(x)
  looped = jnp.stack([grad(xi) for xi in x])
  np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-12, atol=1e-14)


def test_vmap_over_hyperparameters(rng):
  """A batch of (alpha, beta, k) values, e.g. a sweep, vmapped together with their gradients."""
  x, _ = random_input(rng, (2, 4, 4, 6), jnp.float64)
  alphas = jnp.array([0.1, 1.0, 2.0])
  betas = jnp.array([0.5, 0.75, 1.1])
  ks = jnp.array([1.0, 2.0, 0.5])
  loss = lambda a, b, k: jnp.sum(lrn(x, 3, a, b, k) ** 2)  # noqa: E731
  vals = jax.vmap(loss)(alphas, betas, ks)
  grads = jax.vmap(jax.grad(loss, argnums=(0, 1, 2)))(alphas, betas, ks)
  for i in range(3):
    np.testing.assert_allclose(vals[i], loss(alphas[i], betas[i], ks[i]), rtol=1e-13)
    one = jax.grad(loss, argnums=(0, 1, 2))(alphas[i], betas[i], ks[i])
    np.testing.assert_allclose([g[i] for g in grads], one, rtol=1e-12)


def test_jit_with_traced_hyperparameters(rng):
  x, _ = random_input(rng, (2, 4, 4, 6), jnp.float32)
  f = jax.jit(lambda x, a, b, k: lrn(x, 5, a, b, k))
  out = f(x, jnp.float32(1e-2), jnp.float32(0.75), jnp.float32(2.0))
  np.testing.assert_allclose(np.asarray(out), np.asarray(lrn(x, 5, 1e-2, 0.75, 2.0)), rtol=1e-6)


def test_learnable_lrn_trains(rng):
  """Gradient descent on (alpha, beta, k) through the custom_vjp fits a target LRN output.

  (alpha, beta, k) trade off against each other, so the loss is checked, not the values.
  """
  x, _ = random_input(rng, (4, 3, 3, 8), jnp.float64, scale=3.0)
  target = lrn(x, 5, 2.0, 0.9, 1.5)
  loss = jax.jit(lambda p: jnp.mean((lrn(x, 5, *p) - target) ** 2))
  params = (jnp.float64(1.0), jnp.float64(0.75), jnp.float64(1.0))
  first = loss(params)
  step = jax.jit(lambda p: tuple(v - 0.5 * g for v, g in zip(p, jax.grad(loss)(p))))
  for _ in range(200):
    params = step(params)
  assert loss(params) < 1e-2 * first
