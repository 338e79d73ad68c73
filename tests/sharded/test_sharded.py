"""lrn() on 8 devices: sharded along batch, spatial and channel axes, Auto and Explicit meshes.

These tests need 8 devices. On CPU they run in their own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (``tests/test_sharding.py`` starts it);
in a process with fewer devices they are skipped.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_lrn import lrn

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices")

AXIS_TYPES = [AxisType.Auto, AxisType.Explicit]
SHARDINGS = [
  # (partition spec of an NHWC array, lrn kwargs, which collectives the window needs)
  (P("d"), dict(), "none"),  # batch: embarrassingly parallel
  (P(None, "d"), dict(), "none"),  # spatial axis, channel window: no exchange
  (P(None, None, None, "d"), dict(), "halo"),  # channel axis, channel window
  (P(None, None, None, "d"), dict(size=4), "halo"),  # even window
  (P(None, "d"), dict(mode="within_channel"), "halo"),  # spatial axis, spatial window
  (P(None, None, None, "d"), dict(mode="within_channel"), "none"),
]
IDS = [f"{spec}-{kw}" for spec, kw, _ in SHARDINGS]
# Results are bitwise equal to the unsharded ones where every device runs the unsharded loop on
# its shard. Sharding the minor (channel) axis leaves 4 of 32 channels per device, and XLA:CPU
# vectorises the loop over that axis differently: the within-channel gradient then rounds a
# few elements at the spatial window's edges differently (about 1% of dx, up to 3e-6 relative).
# The same program run unsharded on a 4-channel slice differs from the 32-channel run in the
# same way, so it is the loop shape, not the sharding: those cases get the tolerance below.
MINOR_AXIS_SHARDED = P(None, None, None, "d")


def _data(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  return jnp.asarray(rng.normal(size=(8, 16, 16, 32)), dtype)


def _functions(kw):
  """The jitted forward and gradient for lrn's arguments ``kw``: one pair per ``kw``, so that
  the tests that run, compile or inspect the same program (per input sharding and mesh) share
  jax.jit's compiled executable instead of compiling it again."""
  return _jitted(tuple(sorted(kw.items())))


@functools.cache
def _jitted(items):
  kw = dict(dict(size=5, alpha=1.0), **dict(items))
  fwd = jax.jit(lambda x: lrn(x, **kw))
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(lrn(x, **kw)))))
  return fwd, grad


def _collectives(hlo: str) -> dict[str, int]:
  names = ["collective-permute", "all-gather", "all-reduce", "all-to-all", "reduce-scatter"]
  return {name: hlo.count(f" {name}(") + hlo.count(f" {name}-start(") for name in names}


def assert_same_result(y, y_ref, dx, dx_ref, bitwise: bool):
  """Bitwise where the window axis is not sharded. Where it is, XLA compiles the halo'd shards
  into differently fused loops, and a few elements differ in the last bits: then y within 4
  float32 ulps per element (5e-7 relative), dx within 1e-6 of its largest entry."""
  y, y_ref, dx, dx_ref = (np.asarray(a) for a in (y, y_ref, dx, dx_ref))
  if bitwise:
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
  else:
    np.testing.assert_allclose(y, y_ref, rtol=5e-7, atol=0)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-6 * np.max(np.abs(dx_ref)))


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, kw, exchange", SHARDINGS, ids=IDS)
def test_sharded_equals_unsharded(axis_type, spec, kw, exchange):
  x = _data()
  fwd, grad = _functions(kw)
  y_ref, dx_ref = fwd(x), grad(x)
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  with jax.set_mesh(mesh):
    y, dx = fwd(xs), grad(xs)
  bitwise = exchange == "none" and spec != MINOR_AXIS_SHARDED
  assert_same_result(y, y_ref, dx, dx_ref, bitwise=bitwise)
  assert y.sharding.is_equivalent_to(xs.sharding, x.ndim)
  assert dx.sharding.is_equivalent_to(xs.sharding, x.ndim)


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, kw, exchange", SHARDINGS, ids=IDS)
def test_window_exchanges_halos_not_whole_arrays(axis_type, spec, kw, exchange):
  """A sharded window axis is served by collective-permutes of the halo, never an all-gather."""
  x = _data()
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  for f in _functions(kw):
    with jax.set_mesh(mesh):
      counts = _collectives(f.lower(xs).compile().as_text())
    assert counts["all-gather"] == 0 and counts["all-to-all"] == 0, counts
    if exchange == "halo":
      assert counts["collective-permute"] > 0, counts
    else:
      assert counts["collective-permute"] == 0, counts


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
def test_two_dimensional_mesh(axis_type):
  """Batch over one mesh axis, channels over the other (data + model parallel)."""
  x = _data()
  fwd, grad = _functions(dict(size=3))
  mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type,) * 2)
  xs = jax.device_put(x, NamedSharding(mesh, P("data", None, None, "model")))
  with jax.set_mesh(mesh):
    y, dx = fwd(xs), grad(xs)
  assert_same_result(y, fwd(x), dx, grad(x), bitwise=False)  # channels are sharded
  assert y.sharding.is_equivalent_to(xs.sharding, x.ndim)


@functools.cache
def _gradgrad(mode):
  """The jitted gradient of a loss of lrn's gradient, one per mode (the unsharded reference is
  compiled once for both axis types)."""

  def gradgrad(x):
    inner = jax.grad(lambda x: jnp.sum(lrn(x, 5, 1.0, mode=mode) ** 2))
    return jax.grad(lambda x: jnp.sum(inner(x) ** 2))(x)

  return jax.jit(gradgrad)


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("mode", ["across_channels", "within_channel"])
def test_grad_of_grad_with_sharded_window_axis(axis_type, mode):
  x = _data()
  spec = P(None, None, None, "d") if mode == "across_channels" else P(None, "d")
  f = _gradgrad(mode)
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  with jax.set_mesh(mesh):
    out = f(xs)
  ref = f(x)
  np.testing.assert_allclose(
    np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-6 * np.max(np.abs(np.asarray(ref)))
  )


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=lambda d: jnp.dtype(d).name)
def test_sharded_16_bit(dtype):
  x = _data(dtype)
  fwd, grad = _functions(dict())
  mesh = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Explicit,))
  xs = jax.device_put(x, NamedSharding(mesh, P(None, None, None, "d")))
  with jax.set_mesh(mesh):
    y = fwd(xs)
  np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(fwd(x), np.float32))


def test_inside_shard_map():
  """lrn() per batch shard inside jax.shard_map (each device sees (1, H, W, C))."""
  x = _data()
  mesh = jax.make_mesh((8,), ("d",), axis_types=(AxisType.Explicit,))
  f = jax.jit(jax.shard_map(lambda x: lrn(x, 5, 1.0), mesh=mesh, in_specs=P("d"), out_specs=P("d")))
  xs = jax.device_put(x, NamedSharding(mesh, P("d")))
  y = f(xs)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(jax.jit(lambda x: lrn(x, 5, 1.0))(x)))
  g = jax.jit(jax.grad(lambda x: jnp.sum(f(x) ** 2)))(xs)
  g_ref = jax.jit(jax.grad(lambda x: jnp.sum(lrn(x, 5, 1.0) ** 2)))(x)
  np.testing.assert_array_equal(np.asarray(g), np.asarray(g_ref))


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, kw, exchange", SHARDINGS, ids=IDS)
def test_sharded_backward_computes_once(axis_type, spec, kw, exchange):
  """Each device's program evaluates every transcendental op once per element, as unsharded
  (see tests/test_cost.py): halo exchanges do not bring back per-shift recomputation."""
  import hlo_cost

  x = _data()
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  _, grad = _functions(kw)
  with jax.set_mesh(mesh):
    cost = hlo_cost.cost(grad.lower(xs).compile().as_text())
  assert cost.transcendentals > 0
  assert cost.executed_transcendentals == cost.transcendentals
