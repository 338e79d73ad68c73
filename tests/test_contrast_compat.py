"""Torch7's spatial contrast normalizations and cuda-convnet2's rnorm/cmrnorm/cnorm against
float64 transcriptions of their sources (tests/contrast_reference.py), the oracles stated by those
sources, locality, constant inputs, dtypes, gradients and errors."""

import contrast_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jax_lrn import compat, lrn

from cases import DTYPES, RTOL, random_input

# ---------------------------------------------------------------------------------------------
# Torch7
# ---------------------------------------------------------------------------------------------

KERNELS = {
  "ones3": np.ones(3),
  "ones3x3": np.ones((3, 3)),
  "gaussian1D(7)": np.exp(-(((np.arange(1, 8) - 4.0) / (0.25 * 7)) ** 2) / 2),  # image.gaussian1D
  "rect5x3": np.arange(1.0, 16.0).reshape(5, 3),
  "single": np.ones(1),
  "wide9": np.linspace(0.2, 1.0, 9),
}

TORCH7 = {
  "subtractive": (compat.torch7_subtractive, lambda x, k, *a: ref.torch7_ssn(x, k)[0]),
  "divisive": (compat.torch7_divisive, ref.torch7_sdn),
  "contrastive": (compat.torch7_contrastive, ref.torch7_scn),
}


def _torch7(kind, x, kernel, *threshold):
  ours, theirs = TORCH7[kind]
  args = threshold if kind != "subtractive" else ()
  return ours(x, kernel, *args), theirs(np.asarray(x, np.float64), kernel, *args)


@pytest.mark.parametrize("kind", list(TORCH7))
@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("shape", [(3, 7, 6), (2, 4, 5, 8), (1, 1, 4, 4)])
def test_torch7_matches_the_lua_modules(rng, kind, kernel, shape):
  x, _ = random_input(rng, shape, jnp.float64, scale=2.0)
  got, want = _torch7(kind, x + 0.5, KERNELS[kernel], 0.3, 0.7)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("kind", ["divisive", "contrastive"])
@pytest.mark.parametrize("threshold, thresval", [(1e-4, None), (1.0, None), (1.0, 0.5), (5.0, 2.0)])
def test_torch7_threshold_semantics(rng, kind, threshold, thresval):
  x, _ = random_input(rng, (2, 3, 6, 6), jnp.float64)
  got, want = _torch7(kind, x, np.ones(3), threshold, thresval)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11, atol=1e-11)


def test_torch7_default_kernel_is_ones_9x9(rng):
  x, _ = random_input(rng, (2, 12, 11), jnp.float64)
  np.testing.assert_array_equal(
    compat.torch7_contrastive(x), compat.torch7_contrastive(x, np.ones((9, 9)), 1e-4, 1e-4)
  )


def test_torch7_divisive_border_oracle():
  """From the Lua source: one plane, 3x3 ones kernel, constant 2.0 on 5x5."""
  y = np.asarray(compat.torch7_divisive(jnp.full((1, 5, 5), 2.0, jnp.float64), np.ones((3, 3))))[0]
  want = np.full((5, 5), 1.0)
  want[0, :] = want[-1, :] = want[:, 0] = want[:, -1] = np.sqrt(6 / 9)
  want[0, 0] = want[0, -1] = want[-1, 0] = want[-1, -1] = np.sqrt(4 / 9)
  np.testing.assert_allclose(y, want, rtol=1e-14)
  # The 1-D form of the same kernel gives the same values (its 1/sqrt(planes) passes).
  np.testing.assert_allclose(
    np.asarray(compat.torch7_divisive(jnp.full((1, 5, 5), 2.0, jnp.float64), np.ones(3)))[0],
    want,
    rtol=1e-14,
  )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [2.0, -3.0, 1000.0, 0.0])
def test_torch7_constant_inputs(dtype, value):
  x = jnp.full((2, 3, 5, 6), value, dtype)
  np.testing.assert_array_equal(np.asarray(compat.torch7_subtractive(x, np.ones(3)), float), 0.0)
  np.testing.assert_array_equal(np.asarray(compat.torch7_contrastive(x, np.ones(3)), float), 0.0)
  divided = np.asarray(compat.torch7_divisive(x, np.ones((3, 3))), np.float64)
  want = ref.torch7_sdn(np.asarray(x, np.float64), np.ones((3, 3)))
  np.testing.assert_allclose(divided, want, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("kind", list(TORCH7))
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch7_every_dtype(rng, kind, dtype):
  x, _ = random_input(rng, (2, 3, 6, 5), dtype)
  got, want = _torch7(kind, x, KERNELS["gaussian1D(7)"], 0.1)
  assert got.dtype == x.dtype
  tol = RTOL[dtype] if dtype != jnp.float32 else 1e-5
  np.testing.assert_allclose(
    np.asarray(got, np.float64), want, rtol=tol, atol=tol * np.abs(want).max()
  )


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's nan
@pytest.mark.parametrize("kind", list(TORCH7))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("index", [(2, 3), (0, 0)])
def test_torch7_is_local(rng, kind, bad, index):
  """A non-finite input reaches the outputs within the kernel's reach (twice for contrastive),
  in every plane and only in its own sample."""
  x, _ = random_input(rng, (2, 3, 9, 10), jnp.float64)
  y = np.asarray(_torch7(kind, x.at[(1, 1, *index)].set(bad), np.ones((3, 5)), 0.1)[0])
  reach_h, reach_w = (2, 4) if kind == "contrastive" else (1, 2)
  rows, cols = np.arange(9)[:, None], np.arange(10)[None, :]
  reached = (np.abs(rows - index[0]) <= reach_h) & (np.abs(cols - index[1]) <= reach_w)
  assert np.all(np.isfinite(y[0]))
  assert np.all(np.isfinite(y[1][:, ~reached]))
  assert not np.all(np.isfinite(y[1][:, reached]))


@pytest.mark.parametrize("kind", list(TORCH7))
@pytest.mark.parametrize("kernel", ["ones3", "rect5x3"])
def test_torch7_gradients(rng, kind, kernel):
  x, x64 = random_input(rng, (2, 2, 5, 4), jnp.float64)
  k = KERNELS[kernel]
  threshold = (0.2,) if kind != "subtractive" else ()
  check_grads(lambda v: TORCH7[kind][0](v, k, *threshold), (x,), order=2, modes=["rev"])
  # Against central differences of the Lua transcription (Torch7's backward is exact).
  w = rng.normal(size=x64.shape)
  grad = np.asarray(
    jax.grad(lambda v: jnp.sum(jnp.asarray(w) * TORCH7[kind][0](v, k, *threshold)))(x)
  )
  for _ in range(2):
    d = rng.normal(size=x64.shape)
    h = 1e-6
    plus = np.sum(w * TORCH7[kind][1](x64 + h * d, k, *threshold))
    minus = np.sum(w * TORCH7[kind][1](x64 - h * d, k, *threshold))
    np.testing.assert_allclose(np.sum(grad * d), (plus - minus) / (2 * h), rtol=1e-6)


def test_torch7_leaves_the_kernel_alone():
  kernel = np.ones((3, 3))
  compat.torch7_contrastive(jnp.ones((1, 4, 4)), kernel)
  np.testing.assert_array_equal(kernel, 1.0)


def test_torch7_jit_and_vmap(rng):
  x, _ = random_input(rng, (3, 2, 6, 6), jnp.float32)
  f = lambda v: compat.torch7_contrastive(v, KERNELS["gaussian1D(7)"], 1.0)  # noqa: E731
  np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-6, atol=1e-6)


TORCH7_BAD = [
  (dict(kernel=np.ones(4)), ValueError, r"Torch7: kernel must have odd sizes, got shape \(4,\)"),
  (dict(kernel=np.ones((3, 2))), ValueError, r"kernel must have odd sizes, got shape \(3, 2\)"),
  (dict(kernel=np.ones((3, 3, 3))), ValueError, r"kernel must be 1-D .* got shape \(3, 3, 3\)"),
  (dict(kernel=np.array([1.0, -2.0, 1.0])), ValueError, r"kernel must not sum to 0"),
  (dict(kernel=np.array([1.0, np.nan, 1.0])), ValueError, r"kernel must be finite"),
  (dict(kernel="ones"), TypeError, r"kernel must be a concrete 1-D or 2-D array"),
  (dict(threshold="1"), TypeError, r"Torch7: threshold must be a Python or NumPy real number"),
  (dict(thresval=np.nan), ValueError, r"Torch7: thresval must not be nan"),
]


@pytest.mark.parametrize("kwargs, exc, match", TORCH7_BAD)
def test_torch7_errors(kwargs, exc, match):
  with pytest.raises(exc, match=match):
    compat.torch7_contrastive(jnp.ones((1, 5, 5)), **kwargs)


def test_torch7_errors_on_rank_dtype_and_traced_kernel():
  with pytest.raises(ValueError, match=r"Torch7: x must have shape \(planes, H, W\) .*\(rank 2\)"):
    compat.torch7_subtractive(jnp.ones((5, 5)), np.ones(3))
  with pytest.raises(TypeError, match=r"Torch7: x must be a floating array .*int32"):
    compat.torch7_subtractive(jnp.ones((1, 5, 5), jnp.int32), np.ones(3))
  with pytest.raises(TypeError, match=r"kernel must be a concrete .*not a traced value"):
    jax.jit(compat.torch7_subtractive)(jnp.ones((1, 5, 5)), jnp.ones(3))


# ---------------------------------------------------------------------------------------------
# cuda-convnet2
# ---------------------------------------------------------------------------------------------

CONFIGS = [
  # (layer, size, scale, pow, minDiv, blocked)
  ("cmrnorm", 5, 1e-4, 0.75, 2.0, False),  # layers-imagenet-1gpu.cfg: AlexNet's layer
  ("cmrnorm", 9, 1e-3, 0.75, 1.0, False),  # CIFAR-10 11%
  ("rnorm", 5, 1.25e-5, 0.75, 1.0, False),  # cuda-convnet 1 layers-example.cfg (no minDiv)
  ("cnorm", 7, 1e-3, 0.5, 1.0, False),  # the same file's cnorm
  ("cmrnorm", 4, 2.0, 0.75, 1.0, False),  # even sizes lean to lower indices
  ("cmrnorm", 4, 2.0, 0.75, 1.0, True),
  ("cmrnorm", 5, 2.0, 1.0, 0.5, True),  # 16 maps: a truncated last block
  ("rnorm", 4, 3.0, 0.5, 1.0, False),
  ("cnorm", 4, 3.0, 0.75, 1.0, False),
  ("cnorm", 1, 3.0, 0.75, 1.0, False),
  ("cnorm", 8, 30.0, 1.5, 0.2, False),
]


@pytest.mark.parametrize("layer, size, scale, pow_, min_div, blocked", CONFIGS)
def test_cuda_convnet_matches_the_kernels(rng, layer, size, scale, pow_, min_div, blocked):
  x, x64 = random_input(rng, (2, 16, 8, 8), jnp.float64, scale=3.0)
  got = compat.cuda_convnet(x, layer, size, scale, pow_, min_div, blocked)
  want = ref.cuda_convnet(x64, layer, size, scale, pow_, min_div, blocked)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)


def test_cuda_convnet_maps_onto_lrn(rng):
  x, _ = random_input(rng, (2, 16, 6, 6), jnp.float32)
  np.testing.assert_array_equal(
    compat.cuda_convnet(x, "cmrnorm", 5, 1e-4, 0.75, 2.0),
    lrn(x, 5, 1e-4, 0.75, 2.0, channel_axis=1),
  )
  np.testing.assert_array_equal(
    compat.cuda_convnet(x, "rnorm", 3, 1e-2, 0.75),
    lrn(x, 3, 1e-2, 0.75, 1.0, mode="within_channel", channel_axis=1),
  )


def test_cuda_convnet_oracles():
  ones = jnp.ones((1, 16, 2, 2), jnp.float64)
  # pylearn2 test_cross_map_norm_simple: add_scale 15/16 given as scale 15 (divided by 16).
  np.testing.assert_allclose(
    compat.cuda_convnet(ones, "cmrnorm", 16, 15.0, 1.0, blocked=True), 1 / 16
  )
  # Non-blocked N=5: map 0 sums 3 maps, maps 2..13 five, map 15 three.
  y = np.asarray(compat.cuda_convnet(ones, "cmrnorm", 5, 5.0, 1.0))[0, :, 0, 0]
  np.testing.assert_allclose(y[[0, 2, 13, 15]], 1 / (1 + np.array([3, 5, 5, 3])))
  # N=4: windows [f-2, f+1]: map 0 has 2 terms, map 15 has 3.
  y = np.asarray(compat.cuda_convnet(ones, "cmrnorm", 4, 4.0, 1.0))[0, :, 0, 0]
  np.testing.assert_allclose(y[[0, 1, 2, 15]], 1 / (1 + np.array([2, 3, 4, 3])))
  # Blocked N=4 on 16 maps: every map has 4 terms.
  y = np.asarray(compat.cuda_convnet(ones, "cmrnorm", 4, 4.0, 1.0, blocked=True))
  np.testing.assert_allclose(y, 1 / 5)
  # rnorm corner with N=3: 4 in-bounds terms, still times scale / 9.
  y = np.asarray(compat.cuda_convnet(jnp.ones((1, 1, 4, 4)), "rnorm", 3, 9.0, 1.0))[0, 0]
  np.testing.assert_allclose([y[0, 0], y[0, 1], y[1, 1]], 1 / (1 + np.array([4, 6, 9])))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [3.0, -2.0, 0.0, 1e4])
def test_cuda_convnet_cnorm_constant_image(dtype, value):
  """cnorm's numerator is the raw input: a constant c gives c * minDiv^-pow."""
  y = compat.cuda_convnet(jnp.full((1, 4, 6, 6), value, dtype), "cnorm", 5, 1.0, 0.75, 2.0)
  np.testing.assert_allclose(np.asarray(y, np.float64), value * 2.0**-0.75, rtol=RTOL[dtype])


def test_cuda_convnet_cnorm_ramp_has_mean_differences_at_the_borders():
  """A ramp is its own local mean where the window is whole, but not where it is clipped."""
  ramp = jnp.broadcast_to(1.0 + jnp.arange(7.0, dtype=jnp.float64), (1, 1, 7, 7))
  y = np.asarray(compat.cuda_convnet(ramp, "cnorm", 3, 9.0, 1.0))[0, 0]
  want = ref.cuda_convnet(np.asarray(ramp), "cnorm", 3, 9.0, 1.0)[0, 0]
  np.testing.assert_allclose(y, want, rtol=1e-13)
  x = np.asarray(ramp)[0, 0]
  np.testing.assert_allclose(y[2:5, 2:5], x[2:5, 2:5], rtol=1e-13)  # d = minDiv = 1
  assert np.all(y[:, 0] < x[:, 0]) and np.all(y[:, -1] < x[:, -1])


@pytest.mark.parametrize(
  "layer, size, blocked",
  [("cnorm", 3, False), ("cnorm", 4, False), ("cmrnorm", 5, True), ("rnorm", 3, False)],
)
def test_cuda_convnet_gradients_are_exact(rng, layer, size, blocked):
  """The exact gradient, through the local means too (cuda-convnet's cnorm backward drops
  them): check_grads, and central differences of the kernel transcription."""
  x, x64 = random_input(rng, (1, 8, 5, 5), jnp.float64)
  f = lambda v: compat.cuda_convnet(v, layer, size, 2.0, 0.75, 1.0, blocked)  # noqa: E731
  check_grads(f, (x,), order=2, modes=["rev"])
  w = rng.normal(size=x64.shape)
  grad = np.asarray(jax.grad(lambda v: jnp.sum(jnp.asarray(w) * f(v)))(x))
  d = rng.normal(size=x64.shape)
  h = 1e-6
  plus = np.sum(w * ref.cuda_convnet(x64 + h * d, layer, size, 2.0, 0.75, 1.0, blocked))
  minus = np.sum(w * ref.cuda_convnet(x64 - h * d, layer, size, 2.0, 0.75, 1.0, blocked))
  np.testing.assert_allclose(np.sum(grad * d), (plus - minus) / (2 * h), rtol=1e-6)


def test_cuda_convnet_traced_parameters_have_gradients(rng):
  x, _ = random_input(rng, (1, 4, 5, 5), jnp.float64)

  def f(params):
    return jnp.sum(compat.cuda_convnet(x, "cnorm", 3, params[0], params[1], params[2]))

  check_grads(f, (jnp.asarray([2.0, 0.75, 1.5]),), order=1, modes=["rev"])


@pytest.mark.parametrize("layer, blocked", [("cnorm", False), ("cmrnorm", True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_convnet_every_dtype(rng, layer, blocked, dtype):
  x, x64 = random_input(rng, (2, 8, 6, 6), dtype)
  got = compat.cuda_convnet(x, layer, 3, 2.0, 0.75, 1.0, blocked)
  assert got.dtype == x.dtype
  want = ref.cuda_convnet(x64, layer, 3, 2.0, 0.75, 1.0, blocked)
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=RTOL[dtype], atol=1e-7)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_cuda_convnet_cnorm_is_local(rng, bad):
  """Output p reads the mean differences of W(p), each of which reads W(q): reach 2 * (N//2)
  with N = 3, in the same map only."""
  x, _ = random_input(rng, (1, 3, 9, 9), jnp.float64)
  changed = x.at[0, 1, 4, 4].set(bad)
  y = np.asarray(compat.cuda_convnet(changed, "cnorm", 3, 2.0, 0.75))
  rows, cols = np.arange(9)[:, None], np.arange(9)[None, :]
  reached = (np.abs(rows - 4) <= 2) & (np.abs(cols - 4) <= 2)
  assert np.all(np.isfinite(y[0, [0, 2]]))
  assert np.all(np.isfinite(y[0, 1][~reached]))
  # Inside the reach: what the kernels give (nan, or x * inf^-pow = 0 beside an inf).
  with np.errstate(invalid="ignore"):
    want = ref.cuda_convnet(np.asarray(changed), "cnorm", 3, 2.0, 0.75)
  np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-14, equal_nan=True)
  assert not np.all(np.isfinite(y[0, 1][reached]))


CUDA_CONVNET_BAD = [
  (("lrn", 3, 1.0, 0.75), {}, ValueError, r"cuda-convnet: layer must be one of .*'lrn'"),
  (
    ("cmrnorm", 1, 1.0, 0.75),
    {},
    ValueError,
    r"cmrnorm needs 2 <= size <= channels \(8\), got size=1",
  ),
  (
    ("cmrnorm", 9, 1.0, 0.75),
    {},
    ValueError,
    r"cmrnorm needs 2 <= size <= channels \(8\), got size=9",
  ),
  (
    ("cnorm", 7, 1.0, 0.75),
    {},
    ValueError,
    r"cnorm needs 1 <= size <= the image side \(6\), got size=7",
  ),
  (("rnorm", 0, 1.0, 0.75), {}, ValueError, r"rnorm needs 1 <= size"),
  (("rnorm", 3, 1.0, 0.75), dict(blocked=True), ValueError, r"blocked applies to cmrnorm only"),
  (("rnorm", 3.0, 1.0, 0.75), {}, TypeError, r"cuda-convnet: size must be an int, got 3\.0"),
  (("cmrnorm", 3, 1.0, 0.75), dict(blocked=1), TypeError, r"blocked must be a bool, got 1"),
  (("cnorm", 3, -1.0, 0.75), {}, ValueError, r"cuda-convnet: scale must be >= 0, got -1\.0"),
  (("cnorm", 3, 1.0, 0.75), dict(min_div=-2), ValueError, r"cuda-convnet: min_div must be >= 0"),
  (("cnorm", 3, 1.0, "a"), {}, TypeError, r"cuda-convnet: pow must be a real number"),
]


@pytest.mark.parametrize("args, kwargs, exc, match", CUDA_CONVNET_BAD)
def test_cuda_convnet_errors(args, kwargs, exc, match):
  with pytest.raises(exc, match=match):
    compat.cuda_convnet(jnp.ones((1, 8, 6, 7)), *args, **kwargs)


def test_cuda_convnet_errors_on_rank_and_dtype():
  with pytest.raises(ValueError, match=r"cuda-convnet: x must have rank 4 \(N, C, H, W\)"):
    compat.cuda_convnet(jnp.ones((8, 6, 6)), "cnorm", 3, 1.0, 0.75)
  with pytest.raises(TypeError, match=r"cuda-convnet: x must be a floating array .*int32"):
    compat.cuda_convnet(jnp.ones((1, 8, 6, 6), jnp.int32), "cnorm", 3, 1.0, 0.75)
