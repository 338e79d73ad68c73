"""Window sums: every implementation, the per-platform choice, windows longer than their axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from jax_lrn import lrn

import reference
from cases import RTOL, equations, random_input

IMPLEMENTATIONS = [None, "shifted", "reduce_window", "shifted_squares", "matmul"]
CASES = [  # (shape, size, kwargs)
  ((2, 5, 5, 12), 5, dict()),
  ((2, 12, 5, 5), 4, dict(channel_axis=1, even_placement="after")),
  ((2, 6, 7, 3), 3, dict(mode="within_channel")),
  ((2, 3, 6, 7), 4, dict(mode="within_channel", channel_axis=1)),
  ((2, 5, 4, 3, 2), 3, dict(mode="within_channel", spatial_axes=(1, 2, 3))),
]


def _reference_kwargs(kw):
  return {("placement" if key == "even_placement" else key): v for key, v in kw.items()}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape, size, kw", CASES)
def test_each_implementation_matches_the_reference(rng, implementation, shape, size, kw):
  """Every way of summing a window (and the platform's choice), forward and every cotangent,
  against the float64 loop reference. On CPU this also exercises the GPU's and the TPU's
  branches (reduce_window; shifted_squares and matmul), which the dispatch never picks here."""
  x, x64 = random_input(rng, shape, jnp.float64, scale=2.0)
  g, g64 = random_input(rng, shape, jnp.float64)
  params = (jnp.float64(0.7), jnp.float64(0.6), jnp.float64(1.5))
  f = lambda x, a, b, k: lrn(x, size, a, b, k, implementation=implementation, **kw)  # noqa: E731
  y, vjp = jax.vjp(f, x, *params)
  cotangents = vjp(g)
  ry, *rgrads = reference.lrn_and_grads(x64, g64, size, 0.7, 0.6, 1.5, **_reference_kwargs(kw))
  np.testing.assert_allclose(np.asarray(y), ry, rtol=1e-12)
  for got, want in zip(cotangents, rgrads):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("implementation", ["shifted_squares", "matmul"])
@pytest.mark.parametrize("shape, size, kw", [CASES[1], CASES[2]])
def test_tpu_implementations_second_order(rng, implementation, shape, size, kw):
  """grad-of-grad through the TPU implementations' backward (its banded matrix products and
  squares of shifts transposed) equals grad-of-grad through the shifted implementation's."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  v = jnp.asarray(rng.normal(size=shape))

  def gradgrad(impl):
    f = lambda x: lrn(x, size, 0.7, 0.6, 1.5, implementation=impl, **kw)  # noqa: E731
    inner = jax.grad(lambda x: jnp.sum(f(x) * v))
    return jax.grad(lambda x: jnp.sum(inner(x) ** 2))(x)

  np.testing.assert_allclose(
    np.asarray(gradgrad(implementation)), np.asarray(gradgrad("shifted")), rtol=1e-10, atol=1e-12
  )


@pytest.mark.parametrize("implementation", ["shifted_squares", "matmul"])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape, size, kw", [CASES[0], CASES[2]])
def test_tpu_implementations_in_16_bit(rng, implementation, dtype, shape, size, kw):
  """16-bit inputs shifted as 16-bit and widened after the shift: y within half an ulp of the
  float64 reference, dx within the output rounding of its largest entry, both in x's dtype."""
  x, x64 = random_input(rng, shape, dtype, scale=2.0)
  g, g64 = random_input(rng, shape, dtype)
  f = lambda x: lrn(x, size, 0.7, 0.6, 1.5, implementation=implementation, **kw)  # noqa: E731
  y, vjp = jax.vjp(f, x)
  (dx,) = vjp(g)
  assert y.dtype == dx.dtype == dtype
  ry, rdx, *_ = reference.lrn_and_grads(x64, g64, size, 0.7, 0.6, 1.5, **_reference_kwargs(kw))
  np.testing.assert_allclose(np.asarray(y, np.float64), ry, rtol=RTOL[dtype])
  err = np.max(np.abs(np.asarray(dx, np.float64) - rdx)) / np.max(np.abs(rdx))
  assert err < RTOL[dtype]


@pytest.mark.parametrize("shape, size, kw", CASES)
def test_implementations_agree_in_float32(rng, shape, size, kw):
  x, _ = random_input(rng, shape, jnp.float32, scale=2.0)
  ys = [lrn(x, size, 1.0, implementation=impl, **kw) for impl in IMPLEMENTATIONS]
  for y in ys[1:]:
    np.testing.assert_allclose(np.asarray(y), np.asarray(ys[0]), rtol=2e-6)


def test_cpu_picks_the_shifted_sum(rng):
  """The platform's choice on CPU is the shifted implementation, bit for bit."""
  x, _ = random_input(rng, (2, 5, 5, 12), jnp.float32)
  auto = jax.jit(lambda x: lrn(x, 5, 1.0))(x)
  shifted = jax.jit(lambda x: lrn(x, 5, 1.0, implementation="shifted"))(x)
  np.testing.assert_array_equal(np.asarray(auto), np.asarray(shifted))


@pytest.mark.parametrize("kw", [dict(), dict(mode="within_channel")])
def test_export_for_cpu_gpu_and_tpu(rng, kw):
  """One exported artifact for three platforms carries each platform's window sum (through
  lax.platform_dependent); run here on CPU it gives the CPU result, forward and gradient."""
  x, _ = random_input(rng, (2, 6, 6, 8), jnp.float32)
  f = lambda x: lrn(x, 5, 1.0, **kw)  # noqa: E731
  grad = jax.grad(lambda x: jnp.sum(f(x) ** 2))
  for fn in (f, grad):
    spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
    exported = export.export(jax.jit(fn), platforms=("cpu", "cuda", "tpu"))(spec)
    assert exported.platforms == ("cpu", "cuda", "tpu")
    restored = export.deserialize(exported.serialize())
    np.testing.assert_array_equal(np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)))


@pytest.mark.parametrize("kw", [dict(), dict(mode="within_channel")])
def test_each_platform_gets_its_window_sum(kw):
  """The platform dispatch: a program lowered for CPU sums the last window axis with shifted
  copies (pads; within channel the inner axis is always a reduce_window), for CUDA every window
  axis with reduce_window across channels (no pads) and squares of shifted copies of x within
  channel (pads, the inner axis a reduce_window), for TPU squares shifted copies of x (pads;
  within channel the inner axis is a reduce_window), and one lowered for all three carries
  both."""
  spec = jax.ShapeDtypeStruct((2, 6, 6, 8), jnp.float32)
  f = jax.jit(lambda x: lrn(x, 5, 1.0, **kw))

  def ops(platforms):
    text = export.export(f, platforms=platforms)(spec).mlir_module()
    return "stablehlo.pad" in text, "reduce_window" in text

  assert ops(("cpu",)) == (True, kw != {})
  assert ops(("cuda",)) == (kw != {}, True)
  assert ops(("tpu",)) == (True, kw != {})
  assert ops(("cpu", "cuda", "tpu")) == (True, True)


def test_unknown_implementation_is_rejected():
  with pytest.raises(ValueError, match=r"implementation must be None .* got 'cudnn'"):
    lrn(jnp.ones((2, 8)), 3, implementation="cudnn")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
  "shape, kw, window_axes",
  [((2, 8), dict(), 1), ((2, 4, 5, 3), dict(mode="within_channel"), 2)],
)
def test_windows_longer_than_their_axis(rng, implementation, shape, kw, window_axes):
  """A window longer than its axis sums the whole axis (zero padding): the program for any size,
  however large, is the program for a window of twice the axis (it used to grow with the size:
  10**9 ran for minutes); the divisor stays the nominal n = size**(window axes), and alpha / n
  is 0 where n is beyond float's range."""
  x, x64 = random_input(rng, shape, jnp.float64)
  g, g64 = random_input(rng, shape, jnp.float64)
  longest = 2 * max(shape) - 1
  for size in (9, 10**9, 2**31, 10**30, 10**400):  # n = size**d may exceed float's range
    f = lambda x, size=size: lrn(x, size, 1e8, implementation=implementation, **kw)  # noqa: E731
    jaxpr = jax.make_jaxpr(lambda x, g, f=f: jax.vjp(f, x)[1](g))(x, g)
    for eqn in equations(jaxpr.jaxpr):
      if eqn.primitive.name == "reduce_window_sum":
        assert max(eqn.params["window_dimensions"]) <= longest
    # None carries the branches of two platforms that pad (CPU's and TPU's), each bounded.
    branches = 2 if implementation is None else 1
    pads = sum(eqn.primitive.name == "pad" for eqn in equations(jaxpr.jaxpr))
    assert pads <= 6 * longest * branches
    y, vjp = jax.vjp(f, x)
    (dx,) = vjp(g)
    same = min(size, 99)  # covers every axis here: the same window
    alpha = 1e8 * (same / size) ** window_axes
    ry, rdx, *_ = reference.lrn_and_grads(x64, g64, same, alpha, **kw)
    np.testing.assert_allclose(np.asarray(y), ry, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(dx), rdx, rtol=1e-10, atol=1e-14)
