"""gdn's CPU forward in blocks of positions (jax_lrn._gdn.CPU_BLOCK_ELEMENTS made small so
that small arrays are split): the values against the float64 reference and against the whole
array at once, with the cotangents (whose programs are never in blocks) unchanged,
transformations through the blocks, where the blocks are used and where they are not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jax_lrn._gdn
from jax_lrn import gdn

import gdn_reference
from cases import RTOL, random_input

# (shape, channel_axis, positions per block with CPU_BLOCK_ELEMENTS = 8 * C)
BLOCKED = [
  ((4, 3, 2, 8), -1, 8),  # NHWC, 24 positions: 3 blocks of 8
  ((7, 5, 6), 2, 7),  # 35 positions: 5 blocks of 7, across the rows of axis 0
  ((40, 3), -1, 8),  # rank 2
  ((2, 2, 2, 2, 4), 4, 8),  # rank 5, 16 positions: 2 blocks of 8
]
BLOCKED_IDS = [f"{s}-axis{a}" for s, a, _ in BLOCKED]
EXPONENTS = [(2.0, 0.5), (1.0, 1.0), (1.5, 0.75)]


def _small_blocks(monkeypatch, channels):
  monkeypatch.setattr(jax_lrn._gdn, "CPU_BLOCK_ELEMENTS", 8 * channels)


def _weights(rng, channels, dtype):
  beta = rng.uniform(0.5, 1.5, size=channels)
  gamma = rng.uniform(0.0, 0.3, size=(channels, channels))
  return jnp.asarray(beta, dtype), jnp.asarray(gamma, dtype)


def _while_loops(f, *args) -> int:
  """The while loops of ``f``'s optimized CPU program."""
  return jax.jit(f).lower(*args).compile().as_text().count(" while(")


@pytest.mark.parametrize("shape, axis, rows", BLOCKED, ids=BLOCKED_IDS)
def test_block_rows(shape, axis, rows, monkeypatch):
  _small_blocks(monkeypatch, shape[axis])
  cfg = jax_lrn._gdn._Config(2.0, 0.5, False, False, len(shape) - 1)
  assert jax_lrn._gdn._cpu_block_rows(cfg, jnp.zeros(shape, jnp.float32)) == rows


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=str)
@pytest.mark.parametrize("shape, axis, rows", BLOCKED, ids=BLOCKED_IDS)
@pytest.mark.parametrize("alpha, epsilon", EXPONENTS)
@pytest.mark.parametrize("inverse, rectify", [(False, False), (True, True)])
def test_blocks_match_the_reference(
  rng, monkeypatch, dtype, shape, axis, rows, alpha, epsilon, inverse, rectify
):
  """y from the forward in blocks (a while loop in the CPU program) and the cotangents of x,
  beta, gamma and traced alpha, epsilon (no loop: the forward under jax.vjp and the backward
  take the whole array) against the float64 reference."""
  _small_blocks(monkeypatch, shape[axis])
  x, x64 = random_input(rng, shape, dtype)
  beta, gamma = _weights(rng, shape[axis], dtype)
  g = rng.normal(size=shape)
  kw = dict(inverse=inverse, rectify=rectify, channel_axis=axis)

  def f(x, beta, gamma, alpha, epsilon):
    return gdn(x, beta, gamma, alpha=alpha, epsilon=epsilon, **kw)

  a, e = jnp.asarray(alpha, dtype), jnp.asarray(epsilon, dtype)
  t = jnp.asarray(g, dtype)
  assert _while_loops(lambda x: f(x, beta, gamma, a, e), x) == 1
  assert _while_loops(lambda x: jax.vjp(f, x, beta, gamma, a, e)[1](t), x) == 0
  y = jax.jit(f)(x, beta, gamma, a, e)
  y_vjp, vjp = jax.vjp(f, x, beta, gamma, a, e)
  got = dict(zip(("x", "beta", "gamma", "alpha", "epsilon"), vjp(t)))
  got["y under jax.vjp"] = y_vjp
  want_y, want = gdn_reference.gdn_and_vjp(
    x64, *(np.asarray(v, np.float64) for v in (beta, gamma)), g, alpha=alpha, epsilon=epsilon, **kw
  )
  want["y under jax.vjp"] = want_y
  assert y.dtype == dtype
  if dtype == jnp.float64:
    np.testing.assert_allclose(y, want_y, rtol=1e-12)
    for name in got:
      np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
  else:
    np.testing.assert_allclose(np.asarray(y, np.float64), want_y, rtol=RTOL[dtype])
    for name in got:
      err = np.max(np.abs(np.asarray(got[name], np.float64) - want[name]))
      assert err <= RTOL[dtype] * np.max(np.abs(want[name])), name


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=str)
@pytest.mark.parametrize("shape, axis, rows", BLOCKED, ids=BLOCKED_IDS)
def test_blocks_equal_the_whole_array(rng, monkeypatch, dtype, shape, axis, rows):
  """The blocked forward computes each position as the whole array does: y agrees to
  rounding, and so do y and every cotangent under jax.vjp."""
  x, _ = random_input(rng, shape, dtype)
  beta, gamma = _weights(rng, shape[axis], dtype)
  g = jnp.asarray(rng.normal(size=shape), dtype)

  def everything(x, beta, gamma):
    f = lambda *a: gdn(*a, channel_axis=axis)  # noqa: E731
    y, vjp = jax.vjp(f, x, beta, gamma)
    return (f(x, beta, gamma), y, *vjp(g))

  whole = jax.jit(everything)(x, beta, gamma)
  _small_blocks(monkeypatch, shape[axis])
  blocked = jax.jit(everything)(x, beta, gamma)
  rtol = 1e-14 if dtype == jnp.float64 else 1e-6
  for a, b in zip(blocked, whole):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b)) <= rtol * np.max(np.abs(b))


def test_blocks_under_vmap_and_grad_of_grad(rng, monkeypatch):
  """vmap through the blocked forward (batched by JAX) and second derivatives with small
  blocks equal those of the whole array at once."""
  shape = (4, 3, 2, 8)
  x, _ = random_input(rng, shape, jnp.float64)
  beta, gamma = _weights(rng, 8, jnp.float64)
  v = jnp.asarray(rng.normal(size=shape))

  def loss(x, beta, gamma):
    return jnp.sum(jnp.sin(gdn(x, beta, gamma)) * v)

  def gradgrad(x, beta, gamma):
    grads = jax.grad(loss, argnums=(0, 1, 2))
    return jax.grad(lambda *a: sum(jnp.sum(t * t) for t in grads(*a)), argnums=(0, 1, 2))(
      x, beta, gamma
    )

  def batched(x, beta, gamma):
    def y_and_dx(x, t):
      y, vjp = jax.vjp(lambda x: gdn(x, beta, gamma), x)
      return gdn(x, beta, gamma), y, vjp(t)[0]

    return jax.vmap(y_and_dx)(jnp.stack([x, 2.0 * x]), jnp.stack([v, -v]))

  want = [fn(x, beta, gamma) for fn in (gradgrad, batched, jax.jit(gradgrad))]
  _small_blocks(monkeypatch, 8)
  assert _while_loops(jax.vmap(lambda x: gdn(x, beta, gamma)), jnp.stack([x, x])) == 1
  got = [fn(x, beta, gamma) for fn in (gradgrad, batched, jax.jit(gradgrad))]
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_what_is_not_blocked(monkeypatch):
  """Whole arrays with the channel axis not last (NCHW), in 16 bits, with too few positions
  for two blocks or no divisor of the positions near the block size (37 positions), under
  jax.vjp (its forward and backward), and off the CPU."""
  _small_blocks(monkeypatch, 8)
  x = jnp.ones((4, 3, 2, 8), jnp.float32)
  beta, gamma = jnp.ones(8, jnp.float32), jnp.eye(8, dtype=jnp.float32)
  f = lambda x, **kw: gdn(x, beta, gamma, **kw)  # noqa: E731
  assert _while_loops(f, x) == 1
  assert _while_loops(jax.grad(lambda x: jnp.sum(f(x))), x) == 0  # dx: the forward is unused
  assert _while_loops(lambda x: jax.vjp(f, x)[0], x) == 0
  y_and_dx = lambda x: jax.vjp(f, x)[1](x)  # noqa: E731
  assert _while_loops(lambda x: (f(x), y_and_dx(x)), x) == 1  # only the plain call's loop
  assert _while_loops(lambda x: f(jnp.moveaxis(x, -1, 1), channel_axis=1), x) == 0
  assert _while_loops(lambda x: f(x[:1, :1]), x) == 0  # 2 positions: one block
  assert _while_loops(lambda x: f(jnp.ones((37, 8), jnp.float32)), x) == 0
  for dtype in (jnp.bfloat16, jnp.float16):
    assert _while_loops(lambda x, dtype=dtype: f(x.astype(dtype)), x) == 0
  spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
  exported = jax.jit(f)
  assert "stablehlo.while" in export.export(exported, platforms=("cpu",))(spec).mlir_module()
  for platform in ("cuda", "tpu"):
    assert (
      "stablehlo.while" not in export.export(exported, platforms=(platform,))(spec).mlir_module()
    )
  both = export.export(exported, platforms=("cpu", "tpu"))(spec).mlir_module()
  assert "stablehlo.while" in both and "stablehlo.case" in both


def test_symbolic_shapes_are_not_blocked(monkeypatch):
  _small_blocks(monkeypatch, 8)
  (batch,) = export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((batch, 3, 2, 8), jnp.float32)
  beta, gamma = jnp.ones(8, jnp.float32), jnp.eye(8, dtype=jnp.float32)
  module = export.export(jax.jit(lambda x: gdn(x, beta, gamma)))(spec).mlir_module()
  assert "stablehlo.while" not in module
