"""Hypothesis: random shapes, axes, modes, sizes and parameters against the loop reference."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jax_lrn import lrn

import reference


@st.composite
def lrn_cases(draw):
  ndim = draw(st.integers(1, 4))
  shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
  mode = (
    draw(st.sampled_from(["across_channels", "within_channel"]))
    if ndim >= 2
    else ("across_channels")
  )
  channel_axis = draw(st.integers(-ndim, ndim - 1))
  kw = dict(
    mode=mode, channel_axis=channel_axis, even_placement=draw(st.sampled_from(["before", "after"]))
  )
  if mode == "within_channel":
    others = [a for a in range(ndim) if a != channel_axis % ndim]
    axes = draw(
      st.lists(st.sampled_from(others), min_size=1, max_size=min(3, len(others)), unique=True)
    )
    kw["spatial_axes"] = tuple(axes)
  size = draw(st.integers(1, 7))
  alpha = draw(st.floats(0.0, 4.0))
  beta = draw(st.one_of(st.sampled_from([0.5, 0.75, 1.0]), st.floats(0.0, 2.0)))
  k = draw(st.floats(0.1, 3.0))
  seed = draw(st.integers(0, 2**31 - 1))
  return shape, size, alpha, beta, k, kw, seed


@settings(max_examples=60, deadline=None)
@given(lrn_cases())
def test_forward_and_vjp_match_reference(case):
  shape, size, alpha, beta, k, kw, seed = case
  rng = np.random.default_rng(seed)
  x = rng.normal(0.0, 2.0, size=shape)
  g = rng.normal(size=shape)
  y, vjp = jax.vjp(lambda x: lrn(x, size, alpha, beta, k, **kw), jnp.asarray(x))
  (dx,) = vjp(jnp.asarray(g))
  ref_kw = {("placement" if key == "even_placement" else key): v for key, v in kw.items()}
  ry, rdx, *_ = reference.lrn_and_grads(x, g, size, alpha, beta, k, **ref_kw)
  np.testing.assert_allclose(np.asarray(y), ry, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(dx), rdx, rtol=1e-10, atol=1e-12)
