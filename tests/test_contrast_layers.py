"""The LocalContrastNorm layers (NNX, Linen, Equinox): exactly local_contrast_norm, no
parameters, arguments checked at construction."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from jax_lrn import equinox as jeqx
from jax_lrn import linen as jlinen
from jax_lrn import local_contrast_norm
from jax_lrn import nnx as jnnx

from cases import random_input

SETTINGS = [
  dict(),
  dict(size=5, sigma=2.0, eps=1e-2),
  dict(size=4, channel_axis=1),
  dict(size=3, channel_axis=0, spatial_axes=(1, 2)),
]


def _input(rng, kwargs):
  shape = (3, 8, 7) if kwargs.get("spatial_axes") == (1, 2) else (2, 3, 8, 7)
  return random_input(rng, shape, jnp.float32)[0]


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_layers_equal_the_function_and_each_other(rng, kwargs):
  x = _input(rng, kwargs)
  want = local_contrast_norm(x, **kwargs)
  module = jlinen.LocalContrastNorm(**kwargs)
  variables = module.init(jax.random.key(0), x)
  assert variables == {}
  np.testing.assert_array_equal(module.apply(variables, x), want)
  layer = jnnx.LocalContrastNorm(**kwargs)
  assert len(nnx.state(layer)) == 0
  np.testing.assert_array_equal(layer(x), want)
  eqx_layer = jeqx.LocalContrastNorm(**kwargs)
  assert jax.tree_util.tree_leaves(eqx_layer) == []
  np.testing.assert_array_equal(eqx_layer(x), want)


def test_layers_under_jit_and_in_sequences(rng):
  x = random_input(rng, (2, 8, 8, 3), jnp.float32)[0]
  want = local_contrast_norm(x, 5)
  seq = eqx.nn.Sequential([jeqx.LocalContrastNorm(5), eqx.nn.Lambda(jnp.tanh)])
  np.testing.assert_allclose(
    eqx.filter_jit(seq)(x, key=jax.random.key(0)), jnp.tanh(want), rtol=1e-5, atol=1e-6
  )
  layer = jnnx.LocalContrastNorm(5)
  np.testing.assert_allclose(nnx.jit(lambda m, v: m(v))(layer, x), want, rtol=1e-6, atol=1e-6)
  model = linen.Sequential([jlinen.LocalContrastNorm(5), linen.tanh])
  np.testing.assert_allclose(jax.jit(model.apply)({}, x), jnp.tanh(want), rtol=1e-6, atol=1e-6)


def test_equinox_vmapped_over_unbatched_images(rng):
  x = random_input(rng, (3, 2, 6, 6), jnp.float32)[0]  # (N, C, H, W)
  layer = jeqx.LocalContrastNorm(3, channel_axis=0, spatial_axes=(1, 2))
  np.testing.assert_allclose(
    jax.vmap(layer)(x), local_contrast_norm(x, 3, channel_axis=1), rtol=1e-6, atol=1e-6
  )


BAD = [
  (dict(size=0), ValueError, r"size must be a positive int, got 0"),
  (dict(sigma=-1.0), ValueError, r"sigma must be a finite number > 0, got -1\.0"),
  (dict(eps=-1.0), ValueError, r"eps must be a finite number >= 0, got -1\.0"),
  (dict(eps=jnp.float32(0.1)), TypeError, r"eps must be a Python or NumPy real number"),
  (dict(channel_axis="c"), TypeError, r"channel_axis must be an int, got 'c'"),
  (dict(spatial_axes="hw"), TypeError, r"spatial_axes must be an int, a sequence"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
@pytest.mark.parametrize(
  "cls", [jnnx.LocalContrastNorm, jlinen.LocalContrastNorm, jeqx.LocalContrastNorm]
)
def test_errors_at_construction(cls, kwargs, exc, match):
  with pytest.raises(exc, match=match):
    cls(**kwargs)


def test_axis_ranges_are_checked_at_the_first_call():
  x = jnp.ones((2, 5, 5, 3))
  with pytest.raises(ValueError, match=r"channel_axis=5 is out of range"):
    jnnx.LocalContrastNorm(3, channel_axis=5)(x)
  with pytest.raises(ValueError, match=r"channel_axis=5 is out of range"):
    jlinen.LocalContrastNorm(3, channel_axis=5).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"channel_axis=5 is out of range"):
    jeqx.LocalContrastNorm(3, channel_axis=5)(x)
