"""Determinism and compilation: bitwise-repeatable results, one compilation per shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import lrn

from cases import random_input


class TraceCounter:
  """Wraps a function and counts how often jax traces it (once per compilation under jit)."""

  def __init__(self, fn):
    self.fn, self.count = fn, 0

  def __call__(self, *args):
    self.count += 1
    return self.fn(*args)


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_bitwise_deterministic(rng, mode, dtype):
  x, _ = random_input(rng, (4, 9, 9, 32), dtype)
  g, _ = random_input(rng, (4, 9, 9, 32), dtype)
  f = jax.jit(lambda x, g: jax.vjp(lambda x: lrn(x, 5, 1.0, mode=mode), x)[1](g)[0])
  y = jax.jit(lambda x: lrn(x, 5, 1.0, mode=mode))
  first_y, first_dx = np.asarray(y(x)), np.asarray(f(x, g))
  for _ in range(3):
    np.testing.assert_array_equal(np.asarray(y(x)), first_y)
    np.testing.assert_array_equal(np.asarray(f(x, g)), first_dx)
  # Eager calls are repeatable too.
  np.testing.assert_array_equal(
    np.asarray(lrn(x, 5, 1.0, mode=mode)), np.asarray(lrn(x, 5, 1.0, mode=mode))
  )


def test_same_shapes_compile_once(rng):
  counter = TraceCounter(lambda x: lrn(x, 5, 1e-3, 0.75, 2.0))
  f = jax.jit(counter)
  for _ in range(4):
    x, _ = random_input(rng, (2, 6, 6, 16), jnp.float32)
    f(x).block_until_ready()
  assert counter.count == 1 and f._cache_size() == 1
  f(random_input(rng, (3, 6, 6, 16), jnp.float32)[0])  # a new shape compiles again
  assert counter.count == 2 and f._cache_size() == 2


def test_gradient_compiles_once(rng):
  counter = TraceCounter(lambda x: jnp.sum(lrn(x, 4, 1.0, mode="within_channel") ** 2))
  f = jax.jit(jax.grad(counter))
  for _ in range(3):
    f(random_input(rng, (2, 6, 6, 3), jnp.float32)[0]).block_until_ready()
  assert counter.count == 1


def test_traced_hyperparameters_do_not_recompile(rng):
  """Changing traced alpha/beta/k values reuses the compiled forward and gradient."""
  fwd_counter = TraceCounter(lambda x, a, b, k: lrn(x, 5, a, b, k))
  grad_counter = TraceCounter(lambda x, a, b, k: jnp.sum(lrn(x, 5, a, b, k) ** 2))
  f = jax.jit(fwd_counter)
  grad = jax.jit(jax.grad(grad_counter, argnums=(1, 2, 3)))
  x, _ = random_input(rng, (2, 6, 6, 16), jnp.float32)
  for a, b, k in [(1e-4, 0.75, 1.0), (1.0, 0.5, 2.0), (0.3, 1.3, 0.1)]:
    params = (jnp.float32(a), jnp.float32(b), jnp.float32(k))
    f(x, *params).block_until_ready()
    grad(x, *params)
  assert fwd_counter.count == 1 and f._cache_size() == 1
  assert grad_counter.count == 1 and grad._cache_size() == 1


def test_python_float_beta_is_static(rng):
  """A Python-number beta selects the exponent's code path at trace time: a new value retraces
  (pass a JAX scalar to sweep beta without recompiling)."""
  counter = TraceCounter(lambda x, beta: lrn(x, 5, 1.0, beta))
  f = jax.jit(counter, static_argnums=1)
  x, _ = random_input(rng, (2, 8), jnp.float32)
  f(x, 0.75)
  f(x, 0.75)
  f(x, 0.5)
  assert counter.count == 2
