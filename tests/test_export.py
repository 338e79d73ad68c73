"""jax.export: serialize, deserialize and call a jitted lrn() and a Flax model that uses it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import export

from jax_lrn import lrn
from jax_lrn.linen import LocalResponseNorm as LinenLRN
from jax_lrn.nnx import LocalResponseNorm as NnxLRN

from cases import equations, random_input


def _round_trip(fn, *specs):
  exported = export.export(jax.jit(fn))(*specs)
  restored = export.deserialize(exported.serialize())
  return restored


@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_export_round_trip(rng, mode):
  x, _ = random_input(rng, (2, 7, 7, 12), jnp.float32)
  fn = lambda x: lrn(x, 5, 1e-2, 0.75, 2.0, mode=mode)  # noqa: E731
  restored = _round_trip(fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
  np.testing.assert_array_equal(np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)))


def test_export_gradient_round_trip(rng):
  """The custom_vjp backward exports too (as part of an exported gradient function)."""
  x, _ = random_input(rng, (2, 5, 5, 8), jnp.float32)
  fn = jax.grad(lambda x: jnp.sum(lrn(x, 3, 1.0) ** 2))
  restored = _round_trip(fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
  np.testing.assert_array_equal(np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)))


def test_export_symbolic_batch(rng):
  (batch,) = export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((batch, 6, 6, 16), jnp.float32)
  fn = lambda x: lrn(x, 5, 1e-2)  # noqa: E731
  restored = _round_trip(fn, spec)
  assert "b" in str(restored.in_avals[0].shape)
  for n in (1, 3, 8):
    x, _ = random_input(rng, (n, 6, 6, 16), jnp.float32)
    np.testing.assert_array_equal(np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)))


@pytest.mark.parametrize(
  "spec, kw, shapes",
  [
    ("b, c, 8, 8", dict(channel_axis=1), [(2, 3, 8, 8), (1, 17, 8, 8)]),  # NCHW, any C
    ("b, h, w, 8", dict(), [(2, 3, 4, 8), (1, 9, 2, 8)]),  # NHWC, any image size
    ("b, h, w, c", dict(), [(2, 3, 4, 5), (1, 1, 7, 9)]),
    ("b, h, w, 8", dict(mode="within_channel"), [(2, 3, 4, 8), (1, 9, 2, 8)]),
    ("b, 8, h, w", dict(mode="within_channel", channel_axis=1), [(2, 8, 3, 4), (1, 8, 9, 1)]),
    ("b, h, w, c", dict(mode="within_channel"), [(2, 3, 4, 5), (1, 11, 2, 1)]),
  ],
)
def test_export_symbolic_sizes_on_every_axis(rng, spec, kw, shapes):
  """Symbolic channels, height and width (a CNN exported for any image size), forward and
  gradient, called at two concrete sizes each (also sizes smaller than the window)."""
  f = lambda x: lrn(x, 5, 1e-2, **kw)  # noqa: E731
  grad = jax.grad(lambda x: jnp.sum(f(x) ** 2))
  for fn in (f, grad):
    restored = _round_trip(fn, jax.ShapeDtypeStruct(export.symbolic_shape(spec), jnp.float32))
    for shape in shapes:
      x, _ = random_input(rng, shape, jnp.float32)
      np.testing.assert_array_equal(np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)))


def _ints(value):
  """The Python ints in a primitive parameter (nested tuples of ints and symbolic sizes)."""
  if isinstance(value, (tuple, list)):
    return [i for v in value for i in _ints(v)]
  return [value] if isinstance(value, int) else []


@pytest.mark.parametrize(
  "spec, kw, shape",
  [
    ("2, 3, 3, c", dict(), (2, 3, 3, 8)),
    ("2, h, w, 8", dict(mode="within_channel"), (2, 3, 4, 8)),
  ],
)
def test_export_symbolic_window_axis_with_huge_size(rng, spec, kw, shape):
  """A window axis of symbolic length: the window is clipped to it symbolically, so the program
  does not grow with size (no window, padding or shift of the size itself: exporting size 1e9
  and calling it used to loop over the 1e9-wide window, for minutes), for the forward, the
  gradient and grad-of-grad, and it gives what the concrete-shape program gives."""
  x, _ = random_input(rng, shape, jnp.float32)
  sizes = (10**6, 10**7, 10**8, 10**9)
  programs = []
  for size in sizes:
    f = lambda v, size=size: lrn(v, size, 1e3, **kw)  # noqa: E731
    grad = jax.grad(lambda v, f=f: jnp.sum(jnp.sin(f(v))))
    gradgrad = jax.grad(lambda v, grad=grad: jnp.sum(grad(v) ** 2))
    spec_struct = jax.ShapeDtypeStruct(export.symbolic_shape(spec), jnp.float32)
    counts = []
    for fn in (f, grad, gradgrad):
      eqns = list(equations(jax.make_jaxpr(fn)(spec_struct).jaxpr))
      for eqn in eqns:
        if eqn.primitive.name in ("reduce_window_sum", "pad"):
          params = (eqn.params.get("window_dimensions"), eqn.params.get("padding"))
          params += (eqn.params.get("padding_config"),)
          assert max(_ints(params), default=0) < 100, eqn
      counts.append(len(eqns))
    programs.append(counts)
    if size in (sizes[0], sizes[-1]):
      for fn in (f, grad, gradgrad):
        restored = _round_trip(fn, spec_struct)
        np.testing.assert_allclose(
          np.asarray(restored.call(x)), np.asarray(jax.jit(fn)(x)), rtol=1e-6, atol=1e-6
        )
  assert all(counts == programs[0] for counts in programs)


class SmallNet(nn.Module):
  """Conv -> ReLU -> LRN -> pool -> dense: the AlexNet pattern in miniature (Linen)."""

  learnable: bool = False

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = LinenLRN(5, 5e-4, 0.75, 2.0, learnable=self.learnable)(x)
    x = nn.max_pool(x, (2, 2), (2, 2))
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


def _specs(tree):
  return jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), tree)


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize("symbolic", [False, True])
def test_export_linen_model(rng, symbolic, learnable):
  model = SmallNet(learnable=learnable)
  x, _ = random_input(rng, (4, 8, 8, 3), jnp.float32)
  params = model.init(jax.random.key(0), x)
  shape = (export.symbolic_shape("b")[0], 8, 8, 3) if symbolic else x.shape
  restored = _round_trip(model.apply, _specs(params), jax.ShapeDtypeStruct(shape, jnp.float32))
  expected = jax.jit(model.apply)(params, x)
  np.testing.assert_array_equal(np.asarray(restored.call(params, x)), np.asarray(expected))
  if symbolic:
    x2, _ = random_input(rng, (2, 8, 8, 3), jnp.float32)
    np.testing.assert_array_equal(
      np.asarray(restored.call(params, x2)), np.asarray(jax.jit(model.apply)(params, x2))
    )


class SmallNnxNet(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
    self.norm = NnxLRN(3, 1.0, 0.75, 1.0, mode="within_channel", learnable=True)

  def __call__(self, x):
    return self.norm(nnx.relu(self.conv(x)))


def test_export_nnx_model(rng):
  """An NNX model is exported as a pure function of its state (nnx.split / nnx.merge)."""
  model = SmallNnxNet(nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  weights = nnx.to_pure_dict(state)  # plain arrays: what a serialized artifact can carry

  def apply(weights, x):
    _, fresh = nnx.split(model)
    nnx.replace_by_pure_dict(fresh, weights)
    return nnx.merge(graphdef, fresh)(x)

  batch = export.symbolic_shape("b")[0]
  restored = _round_trip(
    apply, _specs(weights), jax.ShapeDtypeStruct((batch, 6, 6, 3), jnp.float32)
  )
  for n in (1, 5):
    x, _ = random_input(rng, (n, 6, 6, 3), jnp.float32)
    expected = jax.jit(apply)(weights, x)
    np.testing.assert_array_equal(np.asarray(restored.call(weights, x)), np.asarray(expected))
    np.testing.assert_allclose(np.asarray(expected), np.asarray(model(x)), rtol=1e-6)
