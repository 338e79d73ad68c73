"""Window sums: every implementation, the per-platform choice, windows longer than their axis."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jax_lrn._window
from jax_lrn import compat, lrn
from jax_lrn._lrn import window_config
from jax_lrn._window import cuda_implementation, tpu_implementation, window_sum

import reference
from cases import RTOL, equations, random_input

IMPLEMENTATIONS = [None, "shifted", "reduce_window", "shifted_squares", "matmul", "recompute"]
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


@pytest.mark.parametrize("implementation", ["shifted_squares", "matmul", "recompute"])
@pytest.mark.parametrize("shape, size, kw", [CASES[1], CASES[2]])
def test_tpu_implementations_second_order(rng, implementation, shape, size, kw):
  """grad-of-grad through the TPU implementations' backward (its banded matrix products and
  squares of shifts transposed) equals grad-of-grad through the shifted implementation's."""
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  v = jnp.asarray(rng.normal(size=shape))
  np.testing.assert_allclose(
    np.asarray(_grad_of_grad(x, v, size, kw, implementation)),
    np.asarray(_grad_of_grad(x, v, size, kw, "shifted")),
    rtol=1e-10,
    atol=1e-12,
  )


def _grad_of_grad(x, v, size, kw, implementation):
  """The gradient of ``sum(grad(sum(lrn(x) * v)) ** 2)``: differentiates the backward."""
  f = lambda x: lrn(x, size, 0.7, 0.6, 1.5, implementation=implementation, **kw)  # noqa: E731
  inner = jax.grad(lambda x: jnp.sum(f(x) * v))
  return jax.grad(lambda x: jnp.sum(inner(x) ** 2))(x)


@pytest.mark.parametrize("implementation", ["shifted_squares", "matmul", "recompute"])
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


@pytest.mark.parametrize("platform", ["cpu", "cuda", "tpu"])
def test_window_sums_without_an_implementation_use_the_platform_choice(platform):
  """A window sum asked for with ``implementation=None`` (cuda-convnet's cnorm sums its local
  means and squares that way) lowers, for each platform, to that platform's choice for lrn:
  shifted copies on CPU (pads, the inner axis a reduce_window), one reduce_window over both
  spatial axes on CUDA and TPU (squares of shifts within channel). Before, such sums took an
  older rule of their own: per-axis reduce_windows off the CPU."""
  spec = jax.ShapeDtypeStruct((2, 4, 6, 6), jnp.float32)
  cnorm = jax.jit(lambda x: compat.cuda_convnet(x, "cnorm", 3, 1.0, 0.5))
  text = export.export(cnorm, platforms=(platform,))(spec).mlir_module()
  windows = re.findall(r"window_dimensions = array<i64: ([\d, ]*)>", text)
  if platform == "cpu":
    assert "stablehlo.pad" in text
    assert windows == ["1, 1, 3, 1"] * 2
  else:
    assert "stablehlo.pad" not in text
    assert windows == ["1, 1, 3, 3"] * 2


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("axes", [(1,), (1, 2)])
def test_window_sum_dispatch_matches_lrn_choice(rng, axes, transpose):
  """window_sum with implementation=None gives, for every platform, the program of the
  implementation lrn picks there, and on CPU the float64 sum of the reference."""
  # An even size: the transposed window differs from the window.
  cfg = window_config(
    4, 4, mode="within_channel", channel_axis=3, spatial_axes=axes, even_placement="before"
  )
  choices = dict(cpu="shifted", cuda=cuda_implementation(cfg), tpu=tpu_implementation(cfg))
  spec = jax.ShapeDtypeStruct((2, 7, 6, 3), jnp.float32)

  def lowered(implementation, platform):
    c = dataclasses.replace(cfg, implementation=implementation)
    f = jax.jit(lambda v: window_sum(v, c, transpose=transpose))
    text = export.export(f, platforms=(platform,))(spec).mlir_module()
    ops = re.findall(r"(stablehlo\.(?:pad|reduce_window|dot_general))", text)
    return sorted(ops), re.findall(r"window_dimensions = array<i64: [\d, ]*>", text)

  for platform, implementation in choices.items():
    assert lowered(None, platform) == lowered(implementation, platform)
  v, v64 = random_input(rng, (2, 7, 6, 3), jnp.float64)
  lo, hi = (cfg.hi, cfg.lo) if transpose else (cfg.lo, cfg.hi)
  want = v64
  for axis in axes:  # sum_{d=-lo}^{hi} v[i + d], zero outside, along each axis in turn
    padded = np.pad(want, [(lo, hi) if a == axis else (0, 0) for a in range(want.ndim)])
    n = want.shape[axis]
    want = sum(np.take(padded, range(d, d + n), axis=axis) for d in range(lo + hi + 1))
  np.testing.assert_allclose(np.asarray(window_sum(v, cfg, transpose=transpose)), want, rtol=1e-14)


BLOCKED_CASES = [  # (shape, size, kwargs): within channel, neither axis 0 nor the last windowed
  ((6, 5, 4, 3), 3, dict(mode="within_channel")),
  ((4, 5, 6, 3), 4, dict(mode="within_channel", even_placement="after")),
  ((6, 3, 4, 2, 2), 3, dict(mode="within_channel", spatial_axes=(1, 2, 3))),
]


def _has_loop(f, *args) -> bool:
  return "stablehlo.while" in jax.jit(f).lower(*args).as_text()


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=str)
@pytest.mark.parametrize("shape, size, kw", BLOCKED_CASES)
def test_blocks_on_cpu_match_the_reference(rng, monkeypatch, dtype, shape, size, kw):
  """On CPU, arrays of several blocks are computed block by block along axis 0 (a fori_loop):
  y and every cotangent (x and the parameters, sums over all blocks) against the float64
  reference."""
  row = int(np.prod(shape[1:]))
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 2 * row)  # blocks of 2 rows
  x, x64 = random_input(rng, shape, dtype, scale=2.0)
  g, g64 = random_input(rng, shape, dtype)
  params = tuple(jnp.asarray(p, _compute(dtype)) for p in (0.7, 0.6, 1.5))
  f = lambda x, a, b, k: lrn(x, size, a, b, k, **kw)  # noqa: E731
  assert _has_loop(lambda x, g: jax.vjp(f, x, *params)[1](g), x, g)
  y, vjp = jax.vjp(f, x, *params)
  dx, *dparams = vjp(g)
  assert y.dtype == dx.dtype == dtype
  ry, rdx, *rparams = reference.lrn_and_grads(
    x64, g64, size, 0.7, 0.6, 1.5, **_reference_kwargs(kw)
  )
  if dtype == jnp.float64:
    np.testing.assert_allclose(np.asarray(y), ry, rtol=1e-12)
    for got, want in zip([dx, *dparams], [rdx, *rparams]):
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-13)
  else:
    np.testing.assert_allclose(np.asarray(y, np.float64), ry, rtol=RTOL[dtype])
    for got, want in zip([dx, *dparams], [rdx, *rparams]):
      err = np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want))
      assert err < RTOL[dtype]


def _compute(dtype):
  return jnp.float64 if dtype == jnp.float64 else jnp.float32


@pytest.mark.parametrize(
  "shape, rows",
  [
    ((64, 55, 55, 96), 4),  # AlexNet conv1: 16 blocks of 4 images (4.4 MiB in float32)
    ((32, 27, 27, 256), 8),  # 4 blocks of 8 (2**21 elements hold 11 rows; 11 does not divide 32)
    ((32, 56, 56, 192), 2),  # GoogLeNet-sized: 16 blocks of 2
    ((4, 55, 55, 96), None),  # 1.2M elements: one block would hold it all, not split
  ],
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=str)
def test_block_size_on_cpu(shape, rows, dtype):
  """At the default CPU_BLOCK_ELEMENTS, the CPU program of every context loops over blocks of
  the most rows of axis 0 that divide it and fit in 2**21 elements, and leaves an array that
  one such block would hold whole."""
  spec = jax.ShapeDtypeStruct(shape, dtype)
  f = lambda x: lrn(x, 5, mode="within_channel")  # noqa: E731
  dx_only = jax.grad(lambda x, g: jnp.sum(f(x) * g))
  y_and_dx = lambda x, g: jax.vjp(f, x)[1](g)  # noqa: E731
  element = "f32" if dtype == jnp.float32 else "f64"
  for fn, args in ((f, (spec,)), (dx_only, (spec, spec)), (y_and_dx, (spec, spec))):
    text = jax.jit(fn).lower(*args).as_text()
    assert ("stablehlo.while" in text) == (rows is not None)
    if rows is not None:
      block = "x".join(str(d) for d in (rows, *shape[1:]))
      assert f"tensor<{block}x{element}>" in text


@pytest.mark.parametrize("shape, size, kw", BLOCKED_CASES)
def test_blocked_y_and_dx_copies_no_output_on_cpu(monkeypatch, shape, size, kw):
  """y and dx is two blocked loops (the forward's and the backward's); each writes into a
  buffer of its own, so the compiled CPU program copies no array of x's shape (a buffer shared
  by both loops would be copied into each)."""
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 2 * int(np.prod(shape[1:])))
  spec = jax.ShapeDtypeStruct(shape, jnp.float32)

  def y_and_dx(x, g):
    y, vjp = jax.vjp(lambda x: lrn(x, size, **kw), x)
    return y, vjp(g)[0]

  text = jax.jit(y_and_dx).lower(spec, spec).compile().as_text()
  assert len(re.findall(r" while\(", text)) == 2
  copied = [
    np.prod([int(d) for d in dims.split(",")])
    for dims in re.findall(r"= f32\[([\d,]+)\]\S* copy\(", text)
  ]
  assert np.prod(shape) not in copied


@pytest.mark.parametrize("shape, size, kw", BLOCKED_CASES[:2])
def test_blocks_on_cpu_second_order_and_vmap(rng, monkeypatch, shape, size, kw):
  """grad-of-grad and vmap through the blocked program equal those of the whole array at once
  (implementation="shifted", never blocked)."""
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 2 * int(np.prod(shape[1:])))
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  v = jnp.asarray(rng.normal(size=shape))

  def gradgrad(impl):
    return _grad_of_grad(x, v, size, kw, impl)

  def batched(impl):
    f = lambda x: lrn(x, size, 0.7, 0.6, 1.5, implementation=impl, **kw)  # noqa: E731
    return jax.vmap(jax.grad(lambda x, v: jnp.sum(f(x) * v)))(x[None], v[None])[0]

  for fn in (gradgrad, batched):
    np.testing.assert_allclose(
      np.asarray(fn(None)), np.asarray(fn("shifted")), rtol=1e-10, atol=1e-12
    )


def test_what_is_not_blocked(monkeypatch):
  """No blocks across channels, with the last axis in the window (NCHW) or in 16 bits (all
  measured slower), where axis 0 is a window axis, where a block would hold fewer than two rows
  or the array fewer than two blocks, or off the CPU."""
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 2 * 5 * 4 * 3)
  x = jnp.ones((6, 5, 4, 3), jnp.float32)
  within = dict(mode="within_channel")
  assert _has_loop(lambda x: lrn(x, 3, **within), x)
  assert not _has_loop(lambda x: lrn(x, 3), x)
  assert not _has_loop(lambda x: lrn(x, 3, mode="within_channel", spatial_axes=(0, 1)), x)
  assert not _has_loop(lambda x: lrn(x[:3], 3, **within), x)  # 3 rows: no 2 blocks of 2
  assert not _has_loop(lambda x: lrn(x, 3, implementation="shifted", **within), x)
  assert not _has_loop(lambda x: lrn(x, 3, mode="within_channel", channel_axis=1), x)
  for dtype in (jnp.bfloat16, jnp.float16):
    assert not _has_loop(lambda x, dtype=dtype: lrn(x.astype(dtype), 3, **within), x)
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 5 * 4 * 3)  # one row per block
  assert not _has_loop(lambda x: lrn(x, 3, **within), x)
  monkeypatch.setattr(jax_lrn._window, "CPU_BLOCK_ELEMENTS", 2 * 5 * 4 * 3)
  spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
  f = jax.jit(lambda x: lrn(x, 3, **within))
  for platform in ("cuda", "tpu"):
    assert "stablehlo.while" not in export.export(f, platforms=(platform,))(spec).mlir_module()
