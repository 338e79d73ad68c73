"""Independent float64 NumPy reference for LRN, written from the formula with explicit loops.

    s_i = k + alpha / n * sum_{j in W(i)} x_j**2,     y_i = x_i * s_i**(-beta)

``W(i)`` covers, along each windowed axis, the positions ``i - lo .. i + hi`` that lie inside
the array (zero padding), ``lo + hi + 1 == size``; odd sizes have ``lo == hi``; for even sizes
``placement="before"`` means ``lo = size // 2`` (PyTorch) and ``"after"`` means
``lo = size // 2 - 1`` (ONNX). ``n = size ** (number of windowed axes)``.

The gradients come from differentiating that formula by hand, element by element:

    dy_i/dx_j = [i == j] s_i**-beta - 2 beta alpha/n x_i x_j s_i**(-beta-1)   for j in W(i)
    dy_i/dk = -beta x_i s_i**(-beta-1)
    dy_i/dalpha = -beta x_i s_i**(-beta-1) * (sum_{j in W(i)} x_j**2) / n
    dy_i/dbeta = -y_i log(s_i)

Nothing here imports jax_lrn.
"""

from __future__ import annotations

import itertools

import numpy as np


def window_axes(ndim, mode, channel_axis, spatial_axes):
  """The axes the window spans, with the defaults documented for ``jax_lrn.lrn``."""
  channel_axis %= ndim
  if mode == "across_channels":
    return (channel_axis,)
  if spatial_axes is None:
    return tuple(a for a in range(1, ndim) if a != channel_axis)
  return tuple(sorted(a % ndim for a in spatial_axes))


def _offsets(size, placement):
  lo = size // 2 if placement == "before" else (size - 1) // 2
  return range(-lo, size - lo)


def _neighbours(index, shape, axes, size, placement):
  """All in-bounds indices j of the window W(index)."""
  per_axis = [_offsets(size, placement) for _ in axes]
  for deltas in itertools.product(*per_axis):
    j = list(index)
    for axis, d in zip(axes, deltas):
      j[axis] += d
    if all(0 <= j[a] < shape[a] for a in axes):
      yield tuple(j)


def _setup(x, size, mode, channel_axis, spatial_axes):
  x = np.asarray(x, dtype=np.float64)
  axes = window_axes(x.ndim, mode, channel_axis, spatial_axes)
  return x, axes, size ** len(axes)


def lrn_and_grads(
  x,
  g=None,
  size=5,
  alpha=1e-4,
  beta=0.75,
  k=1.0,
  *,
  mode="across_channels",
  channel_axis=-1,
  spatial_axes=None,
  placement="before",
):
  """Returns ``(y, dx, dalpha, dbeta, dk)``: the forward and the vector-Jacobian product with g.

  With ``g=None`` only ``y`` is meaningful (the gradients are returned as ``None``).
  """
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    return _lrn_and_grads(x, g, size, alpha, beta, k, mode, channel_axis, spatial_axes, placement)


def _lrn_and_grads(x, g, size, alpha, beta, k, mode, channel_axis, spatial_axes, placement):
  # Non-finite values (k = 0 with an all-zero window, inf inputs) are legitimate outputs here.
  x, axes, n = _setup(x, size, mode, channel_axis, spatial_axes)
  y = np.zeros_like(x)
  s = np.zeros_like(x)
  sq = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    sq[i] = sum(x[j] ** 2 for j in _neighbours(i, x.shape, axes, size, placement))
    s[i] = k + alpha / n * sq[i]
    y[i] = x[i] * s[i] ** (-beta)
  if g is None:
    return y, None, None, None, None
  g = np.asarray(g, dtype=np.float64)
  dx = np.zeros_like(x)
  dalpha = dbeta = dk = 0.0
  for i in np.ndindex(x.shape):
    common = -beta * x[i] * s[i] ** (-beta - 1.0)
    dx[i] += g[i] * s[i] ** (-beta)
    for j in _neighbours(i, x.shape, axes, size, placement):
      dx[j] += g[i] * common * 2.0 * alpha / n * x[j]
    dk += g[i] * common
    dalpha += g[i] * common * sq[i] / n
    dbeta += g[i] * (-y[i] * np.log(s[i]))
  return y, dx, dalpha, dbeta, dk


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
  """The forward only."""
  return lrn_and_grads(x, None, size, alpha, beta, k, **kwargs)[0]
