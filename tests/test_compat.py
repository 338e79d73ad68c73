"""jax_lrn.compat against the real frameworks: stored fixtures, argument errors, and a live check.

The fixtures under ``tests/fixtures/`` were produced by ``tools/make_fixtures.py`` running
PyTorch, TensorFlow, onnxruntime / onnx.reference and a transcription of Caffe's CPU layer; see
``tests/fixtures/manifest.json``.

Tolerance (float32 on both sides, ``eps = 2**-24 ~ 6e-8``):

* outputs, per element: ``|y - y_ref| <= 1e-5 |y_ref|``. ``y = x s**-beta`` where ``s`` is a sum of
  non-negative terms, so every implementation gets ``y`` to within a few roundings per window
  element plus a few for the square, the power and the product (all relative); ``1e-5`` is ~170
  roundings, enough for the longest windows here (49 terms) on both sides.
* gradients: ``|dx - dx_ref| <= 1e-5 (|dx_ref| + T)`` with
  ``T = max|g| * max(s**-beta) * (1 + 2 |beta|)``. ``dx_j = g_j s_j**-beta - 2 beta alpha/n x_j
  sum_i g_i y_i / s_i``; the two terms can cancel, so a relative bound per element is not
  available, but every summand is at most ``T`` in magnitude (``2 |x_i x_j| alpha/n <= s_i``
  for ``i, j`` in one window), and each is computed to a few roundings.

The same tolerance serves the optional live test (``pytest -m live_parity``), which needs
torch / tensorflow / onnxruntime and draws random shapes and parameters.
"""

from __future__ import annotations

import functools
import inspect
import json
import pathlib
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_lrn import compat, lrn
from jax_lrn.nnx import LocalResponseNorm

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
RTOL = 1e-5

COMPAT = {
  "caffe": compat.caffe,
  "tensorflow": compat.tensorflow,
  "torch": compat.torch,
  "onnx": compat.onnx,
}
CONVERT = {
  "caffe": compat.from_caffe,
  "tensorflow": compat.from_tensorflow,
  "torch": compat.from_torch,
  "onnx": compat.from_onnx,
}


def _ignores_k(framework: str, params: dict) -> bool:
  """Caffe WITHIN_CHANNEL with k != 1: compat warns that Caffe ignores k."""
  return framework == "caffe" and params["norm_region"] == "WITHIN_CHANNEL" and params["k"] != 1.0


def _call(framework: str, params: dict, fn):
  if _ignores_k(framework, params):
    with pytest.warns(UserWarning, match=r"k=.* is ignored with norm_region='WITHIN_CHANNEL'"):
      return fn()
  return fn()


def _gradient_scale(x, y, g, beta: float) -> float:
  """``T = max|g| * max(s**-beta) * (1 + 2|beta|)``, with ``s**-beta = y / x``."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  nonzero = x != 0
  p = np.max(np.abs(y[nonzero] / x[nonzero]))
  return float(np.max(np.abs(g)) * p * (1.0 + 2.0 * abs(beta)))


def assert_matches(framework, params, x, y_ref, g=None, dx_ref=None):
  """Forward (and VJP with ``g``) of the compat function against a framework's float32 result."""
  fn = functools.partial(COMPAT[framework], **params)
  y, vjp = _call(framework, params, lambda: jax.vjp(fn, jnp.asarray(x)))
  assert y.dtype == jnp.float32 and y.shape == np.shape(x)
  np.testing.assert_allclose(np.asarray(y), y_ref, rtol=RTOL, atol=0)
  if g is not None:
    (dx,) = vjp(jnp.asarray(g))
    beta = params.get("beta", inspect.signature(COMPAT[framework]).parameters["beta"].default)
    atol = RTOL * _gradient_scale(x, y_ref, g, beta)
    np.testing.assert_allclose(np.asarray(dx), dx_ref, rtol=RTOL, atol=atol)


# ---------------------------------------------------------------------------------------------
# Stored fixtures.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", MANIFEST["fixtures"], ids=lambda e: e["file"][: -len(".npz")])
def test_fixture(entry):
  data = np.load(FIXTURES / entry["file"])
  assert data["x"].shape == tuple(entry["shape"]) and data["x"].dtype == np.float32
  if entry["gradient"]:
    assert_matches(entry["framework"], entry["params"], data["x"], data["y"], data["g"], data["dx"])
  else:
    assert_matches(entry["framework"], entry["params"], data["x"], data["y"])


@pytest.mark.parametrize("entry", MANIFEST["fixtures"], ids=lambda e: e["file"][: -len(".npz")])
def test_conversion_reproduces_the_compat_function(entry):
  """``lrn(x, **from_<framework>(...))`` is exactly the compat function (same computation)."""
  framework, params = entry["framework"], entry["params"]
  x = jnp.asarray(np.load(FIXTURES / entry["file"])["x"])
  kwargs = _call(framework, params, lambda: CONVERT[framework](**params))
  expected = _call(framework, params, lambda: COMPAT[framework](x, **params))
  np.testing.assert_array_equal(np.asarray(lrn(x, **kwargs)), np.asarray(expected))


def test_manifest_lists_every_fixture_file():
  listed = {e["file"] for e in MANIFEST["fixtures"]}
  assert listed == {p.name for p in FIXTURES.glob("*.npz")}
  counts = {f: sum(e["framework"] == f for e in MANIFEST["fixtures"]) for f in COMPAT}
  assert all(n >= 15 for n in counts.values()), counts
  for entry in MANIFEST["fixtures"]:
    assert entry["version"] and entry["transcription"] == (entry["framework"] == "caffe")
    assert entry["gradient"] == (entry["framework"] != "onnx")  # onnxruntime: inference only


def test_fixtures_cover_the_conventions():
  """Even sizes (torch, onnx), sizes beyond the channel count, ranks 3-5, both Caffe regions."""

  def channels(e):
    return e["shape"][-1] if e["framework"] == "tensorflow" else e["shape"][1]

  def window(e):
    p = e["params"]
    return p.get("size", p.get("local_size", 2 * p.get("depth_radius", 0) + 1))

  fixtures = MANIFEST["fixtures"]
  for framework in ("torch", "onnx"):
    assert any(e["framework"] == framework and window(e) % 2 == 0 for e in fixtures)
  for framework in COMPAT:
    assert any(e["framework"] == framework and window(e) > channels(e) for e in fixtures)
  assert {len(e["shape"]) for e in fixtures if e["framework"] == "torch"} == {3, 4, 5}
  regions = {e["params"]["norm_region"] for e in fixtures if e["framework"] == "caffe"}
  assert regions == {"ACROSS_CHANNELS", "WITHIN_CHANNEL"}
  assert {e["input_scale"] for e in fixtures} >= {1e-3, 1e3}


# ---------------------------------------------------------------------------------------------
# Conversions and conventions.
# ---------------------------------------------------------------------------------------------


def test_conversions_spell_out_each_convention():
  assert compat.from_tensorflow() == dict(size=11, alpha=11.0, beta=0.5, k=1.0, channel_axis=-1)
  assert compat.from_tensorflow(2, 2.0, 1e-4, 0.75)["alpha"] == pytest.approx(5e-4, rel=1e-15)
  assert compat.from_caffe() == dict(size=5, alpha=1.0, beta=0.75, k=1.0, channel_axis=1)
  assert compat.from_caffe(3, 2.0, 0.5, 1.0, "within_channel") == dict(
    size=3, alpha=2.0, beta=0.5, k=1.0, mode="within_channel", channel_axis=1
  )
  assert compat.from_torch(4)["even_placement"] == "before"
  assert compat.from_onnx(4)["even_placement"] == "after"
  # cuDNN places even windows like ONNX and defaults to k=2; MXNet is odd-only, k=2 by default.
  assert compat.from_cudnn(6, 1e-3, 0.5, 3.0) == compat.from_onnx(6, 1e-3, 0.5, 3.0)
  assert compat.from_cudnn()["k"] == 2.0 and compat.from_mxnet(5)["k"] == 2.0
  assert compat.from_mxnet(5, 1e-3, 0.5, 3.0) == dict(
    size=5, alpha=1e-3, beta=0.5, k=3.0, channel_axis=1
  )


def test_torch_and_onnx_differ_for_even_sizes_only(rng):
  x = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
  params = dict(alpha=1.0, beta=0.75)
  for size in (1, 3, 5):
    assert np.array_equal(compat.torch(x, size, **params), compat.onnx(x, size, **params))
  for size in (2, 4):
    assert np.max(np.abs(compat.torch(x, size, **params) - compat.onnx(x, size, **params))) > 1e-2


def test_caffe_within_channel_warns_and_ignores_k(rng):
  x = jnp.asarray(rng.normal(size=(1, 2, 4, 4)), jnp.float32)
  with pytest.warns(UserWarning, match=r"k=2\.0 is ignored"):
    y = compat.caffe(x, 3, 1.0, 0.75, k=2.0, norm_region="WITHIN_CHANNEL")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    expected = compat.caffe(x, 3, 1.0, 0.75, k=1.0, norm_region="WITHIN_CHANNEL")
  np.testing.assert_array_equal(np.asarray(y), np.asarray(expected))


def test_compat_under_jit_and_grad(rng):
  x = jnp.asarray(rng.normal(size=(2, 3, 3, 5)), jnp.float32)
  f = jax.jit(lambda x: compat.tensorflow(x, 1, 1.0, 0.5, 0.75))
  np.testing.assert_allclose(f(x), compat.tensorflow(x, 1, 1.0, 0.5, 0.75), rtol=1e-6)
  grad = jax.grad(lambda x: compat.caffe(x, 3, norm_region="WITHIN_CHANNEL").sum())(x)
  assert grad.shape == x.shape and grad.dtype == jnp.float32


# ---------------------------------------------------------------------------------------------
# Errors: what each framework rejects, rejected here with a message naming the argument.
# ---------------------------------------------------------------------------------------------

X3 = jnp.ones((1, 4, 3), jnp.float32)
X4 = jnp.ones((1, 4, 3, 3), jnp.float32)
X5 = jnp.ones((1, 4, 2, 2, 2), jnp.float32)

BAD = [
  (compat.caffe, (X3,), {}, ValueError, r"Caffe: x must have rank 4 .*rank 3"),
  (compat.caffe, (X5,), {}, ValueError, r"Caffe: x must have rank 4 .*rank 5"),
  (compat.caffe, (X4, 4), {}, ValueError, r"Caffe: local_size must be odd, got 4"),
  (compat.caffe, (X4, 0), {}, ValueError, r"Caffe: local_size must be an int >= 1, got 0"),
  (compat.caffe, (X4, 3.0), {}, TypeError, r"Caffe: local_size must be an int >= 1, got 3\.0"),
  (compat.caffe, (X4,), dict(norm_region="SPATIAL"), ValueError, r"norm_region must be one of"),
  (compat.tensorflow, (X3,), {}, ValueError, r"TensorFlow: x must have rank 4 .*rank 3"),
  (compat.tensorflow, (X4, -1), {}, ValueError, r"depth_radius must be an int >= 0, got -1"),
  (compat.tensorflow, (X4, 1.5), {}, TypeError, r"depth_radius must be an int >= 0, got 1\.5"),
  (compat.torch, (jnp.ones((2, 4)), 3), {}, ValueError, r"PyTorch: x must have rank >= 3"),
  (compat.torch, (X4, 0), {}, ValueError, r"PyTorch: size must be an int >= 1, got 0"),
  (compat.torch, (X4, True), {}, TypeError, r"PyTorch: size must be an int >= 1, got True"),
  (compat.onnx, (jnp.ones((4,)), 3), {}, ValueError, r"ONNX: x must have rank >= 3 .*rank 1"),
  (compat.onnx, (X4, -2), {}, ValueError, r"ONNX: size must be an int >= 1, got -2"),
  (compat.torch, (X4, 3), dict(alpha=-1.0), ValueError, r"alpha must be >= 0, got -1\.0"),
  (compat.from_cudnn, (17,), {}, ValueError, r"lrnN must be <= 16 \(CUDNN_LRN_MAX_N\), got 17"),
  (compat.from_cudnn, (5, 1e-4, 0.001), {}, ValueError, r"lrnBeta must be >= 0\.01, got 0\.001"),
  (compat.from_cudnn, (5, 1e-4, 0.75, 0.0), {}, ValueError, r"lrnK must be >= 1e-05, got 0\.0"),
  (compat.from_mxnet, (4,), {}, ValueError, r"MXNet: nsize must be odd, got 4"),
]


@pytest.mark.parametrize("fn, args, kwargs, exc, match", BAD)
def test_errors(fn, args, kwargs, exc, match):
  with pytest.raises(exc, match=match):
    fn(*args, **kwargs)


# Every numeric parameter of every converter and drop-in function is checked as lrn checks it,
# before any conversion: errors give the framework's name and the value the user passed.
NOT_PARAMETERS = {"x", "local_size", "depth_radius", "size", "lrnN", "nsize", "norm_region"}
FRAMEWORKS = {  # function: (the framework's name in messages, leading positional arguments)
  compat.from_caffe: ("Caffe", ()),
  compat.from_tensorflow: ("TensorFlow", ()),
  compat.from_torch: ("PyTorch", (3,)),
  compat.from_onnx: ("ONNX", (3,)),
  compat.from_cudnn: ("cuDNN", ()),
  compat.from_mxnet: ("MXNet", (3,)),
  compat.caffe: ("Caffe", (X4,)),
  compat.tensorflow: ("TensorFlow", (X4,)),
  compat.torch: ("PyTorch", (X4, 3)),
  compat.onnx: ("ONNX", (X4, 3)),
}
PARAMETER_CASES = [
  (fn, framework, args, name)
  for fn, (framework, args) in FRAMEWORKS.items()
  for name in inspect.signature(fn).parameters
  if name not in NOT_PARAMETERS and name != "channel_axis"
]
PARAMETER_IDS = [f"{fn.__name__}-{name}" for fn, _, _, name in PARAMETER_CASES]


@pytest.mark.parametrize("fn, framework, args, name", PARAMETER_CASES, ids=PARAMETER_IDS)
def test_parameters_are_checked_in_the_frameworks_names(fn, framework, args, name):
  with pytest.raises(TypeError, match=rf"^{framework}: {name} must be a real number .* got 'x'"):
    fn(*args, **{name: "x"})
  with pytest.raises(TypeError, match=rf"^{framework}: {name} must be a real number .* None"):
    fn(*args, **{name: None})
  if name in ("beta", "lrnBeta"):  # any finite exponent (cuDNN: >= 0.01)
    with pytest.raises(ValueError, match=rf"^{framework}: {name} must be finite, got nan"):
      fn(*args, **{name: float("nan")})
  else:  # a scale or an additive constant: >= 0, as in lrn
    with pytest.raises(ValueError, match=rf"^{framework}: {name} must be >= 0, got -2\.5\.$"):
      fn(*args, **{name: -2.5})


def test_tensorflow_errors_show_the_values_passed():
  """TensorFlow's alpha is multiplied by the window size, and its bias is lrn's k: the errors
  are about what the user wrote."""
  with pytest.raises(ValueError, match=r"^TensorFlow: alpha must be >= 0, got -1\.0\.$"):
    compat.tensorflow(X4, alpha=-1.0)
  with pytest.raises(ValueError, match=r"^TensorFlow: bias must be >= 0, got -1\.0\.$"):
    compat.tensorflow(X4, bias=-1.0)
  with pytest.raises(TypeError, match=r"^TensorFlow: alpha must be a real number .* got 'x'"):
    compat.from_tensorflow(alpha="x")


CONVERTERS = [fn for fn in FRAMEWORKS if fn.__name__.startswith("from_")]


@pytest.mark.parametrize("fn", CONVERTERS, ids=lambda fn: fn.__name__)
def test_converters_reject_bad_channel_axes(fn):
  framework, args = FRAMEWORKS[fn]
  for bad in (True, 1.0, "1"):
    with pytest.raises(TypeError, match=rf"^{framework}: channel_axis must be an int, got "):
      fn(*args, channel_axis=bad)


@pytest.mark.parametrize(
  "fn, kwargs",
  [(fn, {}) for fn in CONVERTERS] + [(compat.from_caffe, dict(norm_region="WITHIN_CHANNEL"))],
  ids=[fn.__name__ for fn in CONVERTERS] + ["from_caffe-WITHIN_CHANNEL"],
)
def test_converters_port_to_the_other_layout(rng, fn, kwargs):
  """channel_axis defaults to the framework's layout (NHWC for TensorFlow, NCHW otherwise) and
  can be changed: the same layer on NHWC Flax activations is the transposed NCHW result."""
  _, args = FRAMEWORKS[fn]
  nchw = jnp.asarray(rng.normal(size=(2, 6, 5, 4)), jnp.float32)
  nhwc = jnp.transpose(nchw, (0, 2, 3, 1))
  default = fn(*args, **kwargs)
  native_axis = -1 if fn is compat.from_tensorflow else 1
  assert default["channel_axis"] == native_axis
  from_nchw = lrn(nchw, **fn(*args, **kwargs, channel_axis=1))
  from_nhwc = lrn(nhwc, **fn(*args, **kwargs, channel_axis=-1))
  # The same sums, fused differently for the two layouts: equal to float32 rounding.
  np.testing.assert_allclose(
    np.asarray(jnp.transpose(from_nchw, (0, 2, 3, 1))), np.asarray(from_nhwc), rtol=RTOL, atol=0
  )
  layer = LocalResponseNorm(**fn(*args, **kwargs, channel_axis=-1))
  np.testing.assert_array_equal(np.asarray(layer(nhwc)), np.asarray(from_nhwc))
  assert layer.channel_axis == -1


@pytest.mark.parametrize("k", [1, 1.0, np.float64(1.0), np.float32(1.0), jnp.float32(1.0)])
def test_caffe_within_channel_does_not_warn_for_k_equal_to_one(rng, k):
  x = jnp.asarray(rng.normal(size=(1, 2, 4, 4)), jnp.float32)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    compat.caffe(x, 3, k=k, norm_region="WITHIN_CHANNEL")
    compat.from_caffe(3, k=k, norm_region="WITHIN_CHANNEL")


def test_caffe_within_channel_traced_k_is_ignored_without_warnings(rng):
  """A traced k cannot be compared with 1 while tracing: no warning at each trace, and k is
  ignored (the result is Caffe's k=1 result, for any value)."""
  x = jnp.asarray(rng.normal(size=(1, 2, 4, 4)), jnp.float32)
  f = jax.jit(lambda x, k: compat.caffe(x, 3, k=k, norm_region="WITHIN_CHANNEL"))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    expected = f(x, 1.0)
    for k in (2.0, jnp.float32(3.0), jnp.float16(1.0)):  # the last one traces anew
      np.testing.assert_array_equal(np.asarray(f(x, k)), np.asarray(expected))
  # The same values as the eager k=1 call, to float32 rounding (the compiled program fuses
  # k + alpha/n * sum into one multiply-add, eager execution rounds twice).
  eager = compat.caffe(x, 3, norm_region="WITHIN_CHANNEL")
  np.testing.assert_allclose(np.asarray(expected), np.asarray(eager), rtol=1e-6)
  with pytest.warns(UserWarning, match=r"k=Array\(2\., dtype=float32\) is ignored"):
    compat.caffe(x, 3, k=jnp.float32(2.0), norm_region="WITHIN_CHANNEL")


def test_errors_under_jit():
  with pytest.raises(ValueError, match=r"TensorFlow: x must have rank 4"):
    jax.jit(lambda x: compat.tensorflow(x))(X3)


# ---------------------------------------------------------------------------------------------
# Live parity: random draws, compared with the frameworks themselves (pytest -m live_parity).
# ---------------------------------------------------------------------------------------------

LIVE_DRAWS = 12


def _draw_params(rng):
  """``(alpha, beta, k, scale)``: alpha divided by the window; inputs scaled so that
  ``alpha/n * sum x^2`` is of order 0.1 to 10."""
  alpha = float(10 ** rng.uniform(-4, 0.5))
  beta = float(rng.choice([0.5, 0.75, 1.0, rng.uniform(0.2, 1.6)]))
  k = float(rng.uniform(0.2, 3.0))
  return alpha, beta, k, float(np.sqrt(10 ** rng.uniform(-1, 1) / alpha))


def _draw_torch(rng):
  rank = int(rng.integers(3, 6))
  shape = (int(rng.integers(1, 3)), int(rng.integers(1, 13)), *rng.integers(1, 4, rank - 2))
  alpha, beta, k, scale = _draw_params(rng)
  return dict(size=int(rng.integers(1, 14)), alpha=alpha, beta=beta, k=k), shape, scale


def _draw_tensorflow(rng):
  shape = (int(rng.integers(1, 3)), *rng.integers(1, 4, 2), int(rng.integers(1, 20)))
  radius = int(rng.integers(0, 8))
  alpha, beta, bias, scale = _draw_params(rng)
  return (
    dict(depth_radius=radius, bias=bias, alpha=alpha / (2 * radius + 1), beta=beta),
    shape,
    scale,
  )


def _draw_onnxruntime(rng):
  shape = (int(rng.integers(1, 3)), int(rng.integers(1, 13)), *rng.integers(1, 4, 2))
  size = int(rng.choice([1, 3, 5, 7, 9, 11, 13]))  # onnxruntime: odd sizes, 4-D only
  alpha, beta, bias, scale = _draw_params(rng)
  return dict(size=size, alpha=alpha, beta=beta, bias=bias), shape, scale


def _draw_caffe(rng):
  shape = (int(rng.integers(1, 3)), int(rng.integers(1, 9)), *rng.integers(1, 7, 2))
  region = str(rng.choice(["ACROSS_CHANNELS", "WITHIN_CHANNEL"]))
  alpha, beta, k, scale = _draw_params(rng)
  k = k if region == "ACROSS_CHANNELS" else 1.0
  size = int(rng.choice([1, 3, 5, 7, 9]))
  return dict(local_size=size, alpha=alpha, beta=beta, k=k, norm_region=region), shape, scale


# framework -> (modules that must import, draw, the call in tools/make_fixtures.py)
LIVE = {
  "torch": (("torch",), _draw_torch, "torch_lrn"),
  "tensorflow": (("tensorflow",), _draw_tensorflow, "tensorflow_lrn"),
  "onnx": (("onnx", "onnxruntime"), _draw_onnxruntime, "onnxruntime_lrn"),
  "caffe": ((), _draw_caffe, "caffe_transcription"),
}


@pytest.mark.live_parity
@pytest.mark.parametrize("draw", range(LIVE_DRAWS))
@pytest.mark.parametrize("framework", list(LIVE))
def test_live_parity(framework, draw):
  modules, draw_case, call = LIVE[framework]
  for module in modules:
    pytest.importorskip(module)
  sys.path.insert(0, str(ROOT / "tools"))
  try:
    import make_fixtures
  finally:
    sys.path.remove(str(ROOT / "tools"))
  rng = np.random.default_rng([list(LIVE).index(framework), draw])
  params, shape, scale = draw_case(rng)
  x = (rng.standard_normal(shape) * scale).astype(np.float32)
  g = rng.standard_normal(shape).astype(np.float32)
  y, dx = getattr(make_fixtures, call)(x, g, params)
  assert_matches(framework, params, x, y, None if dx is None else g, dx)
