"""Every invalid argument raises at trace time (also under jit) with a message naming it."""

import decimal
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import lrn

X4 = jnp.ones((2, 3, 4, 5), jnp.float32)

BAD = [
  # (kwargs, input, exception, message regex)
  (dict(size=0), X4, ValueError, r"size must be a positive int, got 0"),
  (dict(size=-3), X4, ValueError, r"size must be a positive int, got -3"),
  (dict(size=2.5), X4, TypeError, r"size must be a positive int, got 2\.5 of type float"),
  (dict(size=True), X4, TypeError, r"size must be a positive int, got True"),
  (dict(size="5"), X4, TypeError, r"size must be a positive int, got '5'"),
  (dict(mode="spatial"), X4, ValueError, r"mode must be one of .*'spatial'"),
  (dict(mode=None), X4, ValueError, r"mode must be one of .*None"),
  (dict(even_placement="middle"), X4, ValueError, r"even_placement must be one of .*'middle'"),
  (dict(channel_axis=4), X4, ValueError, r"channel_axis=4 is out of range .* rank 4"),
  (dict(channel_axis=-5), X4, ValueError, r"channel_axis=-5 is out of range"),
  (dict(channel_axis=1.0), X4, TypeError, r"channel_axis must be an int, got 1\.0"),
  (
    dict(mode="within_channel", spatial_axes=(1, 1)),
    X4,
    ValueError,
    r"spatial_axes=\(1, 1\) names an axis twice",
  ),
  (
    dict(mode="within_channel", spatial_axes=(1, -3)),
    X4,
    ValueError,
    r"spatial_axes=\(1, -3\) names an axis twice",
  ),
  (
    dict(mode="within_channel", spatial_axes=(1, 7)),
    X4,
    ValueError,
    r"spatial_axes=7 is out of range for an input of rank 4",
  ),
  (
    dict(mode="within_channel", spatial_axes=(1, 3)),
    X4,
    ValueError,
    r"spatial_axes=\(1, 3\) contains the channel axis \(3\)",
  ),
  (dict(mode="within_channel", spatial_axes=()), X4, ValueError, r"spatial_axes=\(\) is empty"),
  (dict(mode="within_channel", spatial_axes="hw"), X4, TypeError, r"spatial_axes must be"),
  (
    dict(spatial_axes=(1, 2)),
    X4,
    ValueError,
    r"spatial_axes=\(1, 2\) was given with mode='across_channels'",
  ),
  (dict(), jnp.float32(1.0), ValueError, r"rank >= 1 .* got a scalar"),
  (
    dict(mode="within_channel"),
    jnp.ones((2, 3)),
    ValueError,
    r"needs at least one spatial axis.*rank 2.*pass spatial_axes",
  ),
  (
    dict(mode="within_channel", spatial_axes=(0,)),
    jnp.ones((3,)),
    ValueError,
    r"within_channel' needs an input of rank >= 2",
  ),
  (dict(alpha=-1.0), X4, ValueError, r"alpha must be >= 0, got -1\.0"),
  (dict(k=-0.5), X4, ValueError, r"k must be >= 0, got -0\.5"),
  (dict(beta=float("nan")), X4, ValueError, r"beta must be finite, got nan"),
  (dict(alpha=float("inf")), X4, ValueError, r"alpha must be finite, got inf"),
  (dict(k=True), X4, TypeError, r"k must be a real number or a scalar array, got True"),
  (
    dict(alpha=jnp.ones(3)),
    X4,
    ValueError,
    r"alpha must be a scalar, got an array of shape \(3,\)",
  ),
  (dict(beta=jnp.array(1 + 2j)), X4, TypeError, r"beta must be a real number .* complex"),
  (dict(), jnp.ones((2, 3), jnp.int32), TypeError, r"x must be a floating array .* int32"),
  (dict(), jnp.ones((2, 3), jnp.bool_), TypeError, r"x must be a floating array .* bool"),
  (dict(), jnp.ones((2, 3), jnp.complex64), TypeError, r"x must be a floating array .*complex64"),
  # Parameters of the wrong type name the argument and the value.
  (dict(alpha="0.1"), X4, TypeError, r"alpha must be a real number .* got '0\.1' of type str"),
  (dict(k=None), X4, TypeError, r"k must be a real number .* got None of type NoneType"),
  (
    dict(alpha=decimal.Decimal("0.5")),
    X4,
    TypeError,
    r"alpha must be a real number .* got Decimal\('0\.5'\) of type Decimal",
  ),
  (dict(beta=1j), X4, TypeError, r"beta must be a real number .* got 1j of type complex"),
  (dict(beta=[0.75]), X4, TypeError, r"beta must be a real number .* got \[0\.75\] of type list"),
  (dict(k=np.complex64(1)), X4, TypeError, r"k must be a real number .* of type complex64"),
  (dict(alpha=10**400), X4, ValueError, r"alpha must be finite, got 1\.000e\+400\.(\n|$)"),
  (
    dict(size=-(10**400)),
    X4,
    ValueError,
    r"size must be a positive int, got -1\.000e\+400\.(\n|$)",
  ),
  # Numbers that float32 (the compute dtype for float32 input) would turn into inf or 0.
  (
    dict(alpha=1e39),
    X4,
    ValueError,
    r"alpha=1e\+39 is outside the range of float32, the dtype lrn computes in for float32 input: "
    r"it would round to inf\. Pass alpha = 0 or 1\.175e-38 <= alpha <= 3\.403e\+38, or float64",
  ),
  (
    dict(k=1e-50),
    X4,
    ValueError,
    r"k=1e-50 is outside the range of float32.*round to 0 .*Pass k = 0 or 1\.175e-38 <= k",
  ),
  (
    dict(beta=-1e39),
    X4.astype(jnp.bfloat16),
    ValueError,
    r"beta=-1e\+39 is outside the range of float32, the dtype lrn computes in for bfloat16 input.*"
    r"Pass \|beta\| <= 3\.403e\+38",
  ),
  (dict(k=1e-310), X4.astype(jnp.float64), ValueError, r"k=1e-310 is outside the range of float64"),
  (dict(beta=1e39), X4, ValueError, r"beta=1e\+39 is outside the range of float32.*round to inf"),
  # spatial_axes=None: every axis but the batch axis 0 and channel_axis, where 0 is the batch.
  (
    dict(mode="within_channel", channel_axis=0),
    jnp.ones((2, 3, 4, 5)),
    ValueError,
    r"cannot tell the batch axis apart for an input of rank 4 with channel_axis=0.*"
    r"pass spatial_axes explicitly, e\.g\. spatial_axes=\(1, 2, 3\)",
  ),
  (
    dict(mode="within_channel", channel_axis=0),
    jnp.ones((4, 5)),
    ValueError,
    r"cannot tell the batch axis apart for an input of rank 2 with channel_axis=0",
  ),
  (dict(implementation="fast"), X4, ValueError, r"implementation must be None .* got 'fast'"),
  # Bools are not axes, for lrn as for the Flax layers.
  (dict(channel_axis=True), X4, TypeError, r"channel_axis must be an int, got True"),
  (dict(channel_axis=np.True_), X4, TypeError, r"channel_axis must be an int, got np\.True_"),
  (
    dict(mode="within_channel", spatial_axes=(True, 2)),
    X4,
    TypeError,
    r"spatial_axes must be an int, a sequence of ints or None, got \(True, 2\)",
  ),
  (
    dict(mode="within_channel", spatial_axes="12"),
    X4,
    TypeError,
    r"spatial_axes must be an int, a sequence of ints or None, got '12'",
  ),
  (
    dict(mode="within_channel", spatial_axes=np.array([[1, 2]])),
    X4,
    TypeError,
    r"spatial_axes must be .* got array\(\[\[1, 2\]\]\)",
  ),
  # A rank-3 within_channel input is a batch of 1-D signals or one image: it must say which.
  (
    dict(mode="within_channel"),
    jnp.ones((2, 4, 3)),
    ValueError,
    r"spatial_axes=None is ambiguous for an input of rank 3 \(channel_axis=2\): a batch of "
    r"1-D signals \(spatial_axes=\(1,\)\) or one unbatched image.*\(spatial_axes=\(0, 1\)\)",
  ),
  # float8 and float4 are floating, but not supported: the message lists what is.
  *[
    (
      dict(),
      jnp.ones((2, 8), dtype),
      TypeError,
      rf"x must be a floating array of dtype float16, bfloat16, float32 or float64, got {name}",
    )
    for name, dtype in [
      ("float8_e4m3fn", jnp.float8_e4m3fn),
      ("float8_e5m2", jnp.float8_e5m2),
      ("float4_e2m1fn", jnp.float4_e2m1fn),
    ]
  ],
]


@pytest.mark.parametrize("kwargs, x, exc, match", BAD)
def test_bad_arguments_eager(kwargs, x, exc, match):
  with pytest.raises(exc, match=match):
    lrn(x, **kwargs)


@pytest.mark.parametrize("kwargs, x, exc, match", BAD)
def test_bad_arguments_under_jit(kwargs, x, exc, match):
  """Raised while tracing: the error names the argument even inside jit."""
  with pytest.raises(exc, match=match):
    jax.jit(functools.partial(lrn, **kwargs))(x)


@pytest.mark.parametrize("kwargs, x, exc, match", BAD)
def test_bad_arguments_under_vmap(kwargs, x, exc, match):
  """Under vmap each example has x's shape, so the same messages come out."""
  with pytest.raises(exc, match=match):
    jax.vmap(functools.partial(lrn, **kwargs))(jnp.stack([x, x]))


def test_vmap_removes_the_batch_axis_from_the_default_spatial_axes():
  """Inside vmap an (H, W, C) example has no batch axis: the default spatial_axes (every axis
  but 0 and the channel axis) would then be wrong, so a rank-2 example is refused."""
  with pytest.raises(ValueError, match=r"needs at least one spatial axis"):
    jax.vmap(functools.partial(lrn, mode="within_channel"))(jnp.ones((2, 4, 3)))


def test_numpy_integer_size_and_axes_are_accepted():
  y = lrn(X4, np.int64(3), channel_axis=np.int32(1))
  np.testing.assert_allclose(np.asarray(y), np.asarray(lrn(X4, 3, channel_axis=1)))


def test_mode_is_case_insensitive():
  """Caffe spells the modes in capitals (ACROSS_CHANNELS, WITHIN_CHANNEL)."""
  a = lrn(X4, 3, mode="WITHIN_CHANNEL")
  b = lrn(X4, 3, mode="within_channel")
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_vmap_over_unbatched_images_needs_spatial_axes():
  """vmap over (H, W, C) examples: the default would window over W only (as if H were a batch
  axis); it is refused, and naming the axes gives the per-image result."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 6, 4)), jnp.float32)
  with pytest.raises(ValueError, match=r"ambiguous for an input of rank 3.*pass spatial_axes"):
    jax.vmap(functools.partial(lrn, size=3, mode="within_channel"))(x)
  per_image = jax.vmap(functools.partial(lrn, size=3, mode="within_channel", spatial_axes=(0, 1)))(
    x
  )
  np.testing.assert_array_equal(np.asarray(per_image), np.asarray(lrn(x, 3, mode="within_channel")))


def test_even_placement_is_case_insensitive():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 6)), jnp.float32)
  for placement in ("before", "after"):
    expected = np.asarray(lrn(x, 4, alpha=1.0, even_placement=placement))
    for spelling in (placement.upper(), placement.capitalize()):
      np.testing.assert_array_equal(
        np.asarray(lrn(x, 4, alpha=1.0, even_placement=spelling)), expected
      )


def test_numpy_array_spatial_axes_are_accepted():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 6)), jnp.float32)
  expected = np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=(1, 2)))
  for axes in (np.array([1, 2]), np.array([2, 1], np.int32), [np.int64(1), np.int64(2)]):
    np.testing.assert_array_equal(
      np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=axes)), expected
    )
  np.testing.assert_array_equal(
    np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=np.array(2))),
    np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=2)),
  )


@pytest.mark.parametrize(
  "x, shown",
  [
    (None, r"None of type NoneType"),
    ("abc", r"'abc' of type str"),
    (np.array([1.0, 2.0], dtype=object), r"a NumPy array of dtype object"),
    ({"a": 1}, r"\{'a': 1\} of type dict"),
  ],
)
def test_what_is_not_an_array_is_named_x(x, shown):
  with pytest.raises(TypeError, match=r"^x must be a floating array of dtype .* got " + shown):
    lrn(x)


@pytest.mark.parametrize("name", ["size", "channel_axis", "spatial_axes"])
def test_traced_static_arguments_suggest_static_argnames(name):
  """Window sizes and axes set shapes: traced, they are refused with the way to make them static."""
  value = {"size": 3, "channel_axis": 1, "spatial_axes": jnp.asarray([1, 2])}[name]
  kw = dict(mode="within_channel") if name == "spatial_axes" else {}
  f = jax.jit(lambda x, v: lrn(x, **kw, **{name: v}))
  match = rf"{name} must be static .* got a traced value .*static_argnames='{name}'"
  with pytest.raises(TypeError, match=match):
    f(X4, value)


def test_implementation_is_case_insensitive():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 6)), jnp.float32)
  for implementation in ("shifted", "reduce_window"):
    expected = np.asarray(lrn(x, 3, implementation=implementation))
    for spelling in (implementation.upper(), implementation.capitalize()):
      np.testing.assert_array_equal(
        np.asarray(lrn(x, 3, implementation=spelling)),
        expected,  # type: ignore[arg-type]
      )


def test_jax_array_spatial_axes_are_accepted():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 6)), jnp.float32)
  expected = np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=(1, 2)))
  for axes in (jnp.asarray([1, 2]), jnp.asarray([2, 1], jnp.int32)):
    np.testing.assert_array_equal(
      np.asarray(lrn(x, 3, mode="within_channel", spatial_axes=axes)),  # type: ignore[arg-type]
      expected,
    )


@pytest.mark.parametrize(
  "x, kw, expected",
  [
    # Outside float32's range the parameters are refused; in float64 they are fine, and give the
    # true values (k = 1e-50 keeps the all-zero windows at 0 instead of 0 / 0).
    ([[0.0, 0.0, 0.0, 1.0]], dict(size=1, k=1e-50), [[0.0, 0.0, 0.0, 1000.0]]),
    (
      [[0.0, 0.0, 0.0, 1.0]],
      dict(size=1, alpha=1e39, k=0.0),
      [[np.nan, np.nan, np.nan, 1e39**-0.75]],
    ),
  ],
)
def test_parameters_beyond_float32_compute_in_float64(x, kw, expected):
  with pytest.raises(ValueError, match=r"outside the range of float32"):
    lrn(jnp.asarray(x, jnp.float32), **kw)
  y = lrn(jnp.asarray(x, jnp.float64), **kw)
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-12)
