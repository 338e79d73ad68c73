"""gdn() on 8 devices: sharded along batch, spatial and channel axes, Auto and Explicit meshes.

Run by ``tests/test_sharding.py`` in a process with 8 simulated CPU devices (skipped with fewer).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_lrn import gdn

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices")

AXIS_TYPES = [AxisType.Auto, AxisType.Explicit]
# (partition spec of an NHWC array, whether the channel sum crosses devices)
SHARDINGS = [
  (P("d"), False),  # batch
  (P(None, "d"), False),  # a spatial axis
  (P("d", None, None, None), False),
  (P(None, None, None, "d"), True),  # channels: a distributed matrix product
]
IDS = [str(spec) for spec, _ in SHARDINGS]


def _data():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(8, 16, 16, 32)), jnp.float32)
  beta = jnp.asarray(rng.uniform(0.5, 1.5, size=32), jnp.float32)
  gamma = jnp.asarray(rng.uniform(0.0, 0.1, size=(32, 32)), jnp.float32)
  return x, beta, gamma


@functools.cache
def _shared_functions():
  """One set of :func:`_functions` for the tests that do not patch jax_lrn: they share jax.jit's
  compiled executables per input sharding and mesh instead of compiling them again."""
  return _functions()


def _functions():
  fwd = jax.jit(lambda x, b, g: gdn(x, b, g))
  dx = jax.jit(jax.grad(lambda x, b, g: jnp.sum(jnp.sin(gdn(x, b, g)))))
  everything = jax.jit(jax.grad(lambda x, b, g: jnp.sum(jnp.sin(gdn(x, b, g))), argnums=(0, 1, 2)))
  return fwd, dx, everything


def _collectives(hlo: str) -> dict[str, int]:
  names = ["collective-permute", "all-gather", "all-reduce", "all-to-all", "reduce-scatter"]
  return {name: hlo.count(f" {name}(") + hlo.count(f" {name}-start(") for name in names}


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, across", SHARDINGS, ids=IDS)
def test_sharded_equals_unsharded(axis_type, spec, across):
  x, beta, gamma = _data()
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  for f in _shared_functions():
    want = f(x, beta, gamma)
    with jax.set_mesh(mesh):
      got = f(xs, beta, gamma)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      a, b = np.asarray(a), np.asarray(b)
      # Sums split over devices (the channel sum, or the cotangents of beta and gamma over
      # positions) round differently from the one-device order.
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.max(np.abs(b)))
  with jax.set_mesh(mesh):
    y = _shared_functions()[0](xs, beta, gamma)
  assert y.sharding.is_equivalent_to(xs.sharding, x.ndim)


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, across", SHARDINGS, ids=IDS)
def test_only_the_channel_axis_needs_communication_for_y_and_dx(axis_type, spec, across):
  """Positions are independent: batch or spatial sharding runs the forward pass and dx with no
  collective at all; the cotangents of beta and gamma are sums over positions (all-reduce)."""
  x, beta, gamma = _data()
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  fwd, dx, everything = _shared_functions()
  with jax.set_mesh(mesh):
    counts = [_collectives(f.lower(xs, beta, gamma).compile().as_text()) for f in (fwd, dx)]
    all_grads = _collectives(everything.lower(xs, beta, gamma).compile().as_text())
  for count in counts:
    if across:
      assert sum(count.values()) > 0, count
    else:
      assert sum(count.values()) == 0, count
  assert all_grads["all-reduce"] + all_grads["reduce-scatter"] > 0, all_grads


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
@pytest.mark.parametrize("spec, across", SHARDINGS, ids=IDS)
def test_cpu_blocks_stay_out_of_a_mesh(monkeypatch, axis_type, spec, across):
  """With blocks small enough to split the array, the CPU forward outside a mesh is a loop over
  blocks; inside one (positions may be sharded) it is the whole array at once, with the same
  values and still no collective for batch or spatial sharding."""
  import jax_lrn._gdn

  monkeypatch.setattr(jax_lrn._gdn, "CPU_BLOCK_ELEMENTS", 32 * 256)  # blocks of 256 positions
  x, beta, gamma = _data()
  fwd = _functions()[0]  # traced afresh: the block size is read when the program is traced
  assert " while(" in fwd.lower(x, beta, gamma).compile().as_text()
  want = fwd(x, beta, gamma)
  mesh = jax.make_mesh((8,), ("d",), axis_types=(axis_type,))
  xs = jax.device_put(x, NamedSharding(mesh, spec))
  with jax.set_mesh(mesh):
    hlo = fwd.lower(xs, beta, gamma).compile().as_text()
    got = fwd(xs, beta, gamma)
  assert " while(" not in hlo
  assert (sum(_collectives(hlo).values()) > 0) == across
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
