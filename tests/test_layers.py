"""What the three layers (NNX, Linen, Equinox) share: lrn's arguments with lrn's defaults,
Flax's conventions (rngs, dtype), per-parameter learnability, a repr of the values in use, and
the same values and outputs in all three."""

import dataclasses
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_lrn import equinox as lrn_eqx
from jax_lrn import linen as lrn_linen
from jax_lrn import lrn
from jax_lrn import nnx as lrn_nnx

KEY = jax.random.key(0)
RAWS = ("raw_alpha", "raw_beta", "raw_k")

# Arguments the layers take beyond lrn's (all but x): their own, and each library's.
LAYER_ONLY = {"learnable", "param_dtype", "dtype"}
LIBRARY_ONLY = {
  "nnx": {"self", "rngs"},
  "equinox": {"self", "rngs"},
  "linen": {"parent", "name"},
}


def _input(shape, dtype=jnp.float32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(0.0, 2.0, size=shape), dtype)


def _signature(library):
  if library == "linen":
    fields = dataclasses.fields(lrn_linen.LocalResponseNorm)
    return {f.name: f.default for f in fields if f.init}
  layer = {"nnx": lrn_nnx, "equinox": lrn_eqx}[library].LocalResponseNorm
  return {name: p.default for name, p in inspect.signature(layer.__init__).parameters.items()}


@pytest.mark.parametrize("library", ["nnx", "linen", "equinox"])
def test_every_lrn_argument_with_its_default(library):
  """The layers take every argument of lrn (but x), with lrn's default, and nothing else but
  their own (learnable, param_dtype, dtype) and their library's: when lrn gains an argument,
  this fails until the layers take it too."""
  ours = _signature(library)
  theirs = {name: p.default for name, p in inspect.signature(lrn).parameters.items() if name != "x"}
  assert {name: ours.get(name, "missing") for name in theirs} == theirs
  assert set(ours) - set(theirs) == LAYER_ONLY | LIBRARY_ONLY[library]
  doc = {"nnx": lrn_nnx, "linen": lrn_linen, "equinox": lrn_eqx}[library].LocalResponseNorm.__doc__
  for name in set(ours) - {"self", "parent", "name"}:
    assert f"    {name}: " in doc, f"{name} is not documented"


@pytest.mark.parametrize("name", ["LocalResponseNorm", "LocalContrastNorm", "GDN", "SpatialGDN"])
def test_nnx_and_equinox_signatures_are_the_same(name):
  ours = inspect.signature(getattr(lrn_eqx, name).__init__).parameters
  theirs = inspect.signature(getattr(lrn_nnx, name).__init__).parameters
  assert [(p.name, p.kind, p.default) for p in ours.values()] == [
    (p.name, p.kind, p.default) for p in theirs.values()
  ]


# The first parameters of each NNX layer, as its docstring's Args list them.
NNX_LEADING = {
  "LocalResponseNorm": ("size", "alpha", "beta", "k", "mode"),
  "LocalContrastNorm": ("size", "sigma", "channel_axis"),
  "GDN": ("num_features", "inverse", "rectify"),
  "SpatialGDN": ("num_features", "window_shape", "inverse"),
}


@pytest.mark.parametrize("name", list(NNX_LEADING))
def test_nnx_layer_signature_is_its_init(name):
  """inspect.signature of an NNX layer class (what the API reference shows) is its __init__'s
  without self, not the metaclass's (*args, **kwargs)."""
  layer = getattr(lrn_nnx, name)
  shown = list(inspect.signature(layer).parameters.values())
  assert shown == list(inspect.signature(layer.__init__).parameters.values())[1:]
  names = [p.name for p in shown]
  assert tuple(names[: len(NNX_LEADING[name])]) == NNX_LEADING[name]
  assert names[-1] == "rngs"
  kinds = {p.kind for p in shown}
  assert not kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def _outputs(kwargs, x, raws=None):
  """The three layers' outputs for the same arguments (and raw parameters, name -> float)."""
  nnx_layer = lrn_nnx.LocalResponseNorm(**kwargs)
  eqx_layer = lrn_eqx.LocalResponseNorm(**kwargs)
  module = lrn_linen.LocalResponseNorm(**kwargs)
  variables = module.init(KEY, x)
  for name, value in (raws or {}).items():
    getattr(nnx_layer, name)[...] = jnp.asarray(value, getattr(nnx_layer, name)[...].dtype)
    eqx_layer = eqx.tree_at(
      lambda m, name=name: getattr(m, name), eqx_layer, getattr(nnx_layer, name)[...]
    )
    variables["params"][name] = getattr(nnx_layer, name)[...]
  return nnx_layer(x), module.apply(variables, x), eqx_layer(x)


@pytest.mark.parametrize("implementation", ["shifted", "reduce_window", "REDUCE_WINDOW", None])
@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_implementation(implementation, mode):
  x = _input((2, 5, 5, 6))
  kwargs = dict(size=3, alpha=1.0, mode=mode, implementation=implementation)
  expected = np.asarray(lrn(x, **kwargs))
  for y in _outputs(kwargs, x):
    np.testing.assert_array_equal(np.asarray(y), expected)


def test_implementation_is_checked_at_construction():
  match = r"implementation must be None .* got 'fast'"
  for layer in (lrn_nnx.LocalResponseNorm, lrn_linen.LocalResponseNorm, lrn_eqx.LocalResponseNorm):
    with pytest.raises(ValueError, match=match):
      layer(3, implementation="fast")  # type: ignore[arg-type]


def test_nnx_accepts_and_ignores_rngs():
  """Model-building code passes rngs to every NNX layer; this one draws nothing from it."""
  x = _input((2, 4, 4, 6))
  layer = lrn_nnx.LocalResponseNorm(3, rngs=nnx.Rngs(0))
  assert len(nnx.state(layer)) == 0
  np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(lrn(x, 3)))
  learned = lrn_nnx.LocalResponseNorm(3, learnable=True, rngs=nnx.Rngs(params=1))
  assert sorted(nnx.state(learned, nnx.Param).keys()) == list(RAWS)
  assert len(nnx.state(learned, nnx.RngState)) == 0


@pytest.mark.parametrize(
  "x_dtype, dtype",
  [
    (jnp.float32, jnp.bfloat16),
    (jnp.bfloat16, jnp.float32),
    (jnp.float32, jnp.float64),
    (jnp.float16, jnp.float16),
  ],
)
@pytest.mark.parametrize("learnable", [False, True])
def test_dtype_is_the_computation_and_output_dtype(x_dtype, dtype, learnable):
  x = _input((2, 4, 4, 6), x_dtype)
  kwargs = dict(size=3, alpha=1.0, learnable=learnable, param_dtype=jnp.float64)
  expected = lrn_nnx.LocalResponseNorm(**kwargs)(x.astype(dtype))
  assert expected.dtype == dtype
  for y in _outputs(dict(kwargs, dtype=dtype), x):
    assert y.dtype == dtype
    np.testing.assert_array_equal(np.asarray(y, np.float64), np.asarray(expected, np.float64))


def test_dtype_is_checked_at_construction():
  match = r"dtype must be None \(the input's dtype\) or float16, bfloat16, float32 or float64"
  for layer in (lrn_nnx.LocalResponseNorm, lrn_linen.LocalResponseNorm, lrn_eqx.LocalResponseNorm):
    with pytest.raises(TypeError, match=match):
      layer(3, dtype=jnp.int32)


@pytest.mark.parametrize(
  "learnable, learned",
  [
    (True, ("alpha", "beta", "k")),
    (False, ()),
    (("beta",), ("beta",)),
    ("beta", ("beta",)),
    (["k", "alpha"], ("alpha", "k")),
    ((), ()),
  ],
)
def test_per_parameter_learnability(learnable, learned):
  """Only the named hyperparameters get raw parameters (and gradients) in all three layers; the
  others stay the given floats; learnable=True still means all three."""
  x = _input((2, 4, 4, 6), jnp.float64)
  kwargs = dict(size=3, alpha=1.5, beta=0.6, k=0.8, learnable=learnable, param_dtype=jnp.float64)
  nnx_layer = lrn_nnx.LocalResponseNorm(**kwargs)
  eqx_layer = lrn_eqx.LocalResponseNorm(**kwargs)
  module = lrn_linen.LocalResponseNorm(**kwargs)
  params = module.init(KEY, x).get("params", {})
  raws = tuple(f"raw_{name}" for name in learned)
  assert tuple(sorted(nnx.state(nnx_layer, nnx.Param).keys())) == tuple(sorted(raws))
  assert tuple(sorted(params)) == tuple(sorted(raws))
  assert tuple(name for name in RAWS if getattr(eqx_layer, name) is not None) == raws
  assert nnx_layer.learnable == eqx_layer.learnable == learned
  for name, given in (("alpha", 1.5), ("beta", 0.6), ("k", 0.8)):
    for layer in (nnx_layer, eqx_layer):
      value = getattr(layer, name)
      if name in learned:
        assert isinstance(value, jax.Array)
        np.testing.assert_allclose(float(value), given, rtol=1e-14)
      else:
        assert value == given and isinstance(value, float)
  # Gradients: the learned ones only, and equal across the libraries.
  g_nnx = nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(nnx_layer)
  g_eqx = eqx.filter_grad(lambda m: jnp.sum(jnp.sin(m(x))))(eqx_layer)
  g_linen = jax.grad(lambda p: jnp.sum(jnp.sin(module.apply({"params": p}, x))))(params)
  assert sorted(g_linen) == sorted(raws)
  for name in raws:
    d = float(g_linen[name])
    assert d != 0.0
    np.testing.assert_allclose(float(g_nnx[name][...]), d, rtol=1e-12)
    np.testing.assert_allclose(float(getattr(g_eqx, name)), d, rtol=1e-12)
  expected = np.asarray(lrn(x, 3, 1.5, 0.6, 0.8))
  for y in _outputs(kwargs, x):
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-13)


def test_a_fixed_hyperparameter_may_be_zero_when_others_are_learned():
  """Only learned values must be > 0 (softplus); a fixed k = 0 stays allowed."""
  layer = lrn_nnx.LocalResponseNorm(3, alpha=1.0, k=0.0, learnable=("alpha", "beta"))
  assert layer.k == 0.0
  with pytest.raises(ValueError, match=r"k must be > 0 when learned \(learnable=\('k',\)"):
    lrn_nnx.LocalResponseNorm(3, alpha=1.0, k=0.0, learnable=("k",))


@pytest.mark.parametrize(
  "learnable, exc, match",
  [
    (("gamma",), ValueError, r"learnable names \['gamma'\] are not learnable hyperparameters"),
    ("size", ValueError, r"learnable names \['size'\] are not"),
    (1, TypeError, r"learnable must be a bool or a sequence of the names"),
    ((0.5,), TypeError, r"learnable must be a bool or a sequence of the names"),
  ],
)
def test_bad_learnable(learnable, exc, match):
  for layer in (lrn_nnx.LocalResponseNorm, lrn_linen.LocalResponseNorm, lrn_eqx.LocalResponseNorm):
    with pytest.raises(exc, match=match):
      layer(3, learnable=learnable)


def test_trained_values_agree_across_the_three_layers():
  """The same raw parameters (not the initial ones): the same .alpha/.beta/.k in NNX and
  Equinox (live values, not None), the same Linen values(params), the same outputs."""
  x = _input((2, 5, 5, 8))
  raws = {"raw_alpha": 0.3, "raw_beta": -0.2}
  kwargs = dict(size=3, alpha=1.0, k=2.0, learnable=("alpha", "beta"))
  y_nnx, y_linen, y_eqx = _outputs(kwargs, x, raws)
  np.testing.assert_array_equal(np.asarray(y_nnx), np.asarray(y_linen))
  np.testing.assert_array_equal(np.asarray(y_nnx), np.asarray(y_eqx))
  nnx_layer = lrn_nnx.LocalResponseNorm(**kwargs)
  eqx_layer = lrn_eqx.LocalResponseNorm(**kwargs)
  for name, value in raws.items():
    getattr(nnx_layer, name)[...] = jnp.float32(value)
    eqx_layer = eqx.tree_at(lambda m, name=name: getattr(m, name), eqx_layer, jnp.float32(value))
  linen_values = lrn_linen.LocalResponseNorm.values({n: jnp.float32(v) for n, v in raws.items()})
  for name in ("alpha", "beta"):
    expected = jax.nn.softplus(jnp.float32(raws[f"raw_{name}"]))
    assert getattr(nnx_layer, name) == getattr(eqx_layer, name) == expected
    assert linen_values[name] == expected
  assert nnx_layer.k == eqx_layer.k == 2.0
  assert nnx_layer.values() == eqx_layer.values()
  assert repr(nnx_layer) == repr(eqx_layer)


def test_repr_shows_the_values_in_use():
  """The repr reads like the constructor call, with the current (trained) values rather than
  the raw softplus-inverse parameters, and the settings that differ from the defaults."""
  for layer_type in (lrn_nnx.LocalResponseNorm, lrn_eqx.LocalResponseNorm):
    assert repr(layer_type(5)) == "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=1.0)"
    layer = layer_type(
      3,
      alpha=2.0,
      mode="within_channel",
      spatial_axes=[1, 2],
      implementation="reduce_window",
      learnable=("k",),
      dtype=jnp.bfloat16,
      param_dtype=jnp.float64,
    )
    assert repr(layer) == (
      "LocalResponseNorm(size=3, alpha=2.0, beta=0.75, k=1.0, learnable=('k',), "
      "mode='within_channel', spatial_axes=(1, 2), implementation='reduce_window', "
      "dtype=bfloat16, param_dtype=float64)"
    )
  layer = lrn_nnx.LocalResponseNorm(3, learnable=True)
  layer.raw_beta[...] = jnp.float32(0.5)
  assert "beta=0.974077," in repr(layer)  # softplus(0.5)
  assert "raw" not in repr(layer)
  # Under a transformation the values are traced: the repr shows their type.
  shown = []
  nnx.jit(lambda m: shown.append(repr(m)))(layer)
  assert "alpha=float32[]" in shown[0]
