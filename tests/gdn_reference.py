"""Independent float64 NumPy reference for GDN, written from the formula with explicit loops.

    r = max(x, 0) if rectify else x
    P_i = beta_i + sum_j gamma[j, i] |r_j|**alpha
    y_i = r_i * P_i**s          s = -epsilon (GDN) or +epsilon (IGDN)

``i`` and ``j`` index the channels along ``channel_axis``; every other position is separate.
The vector-Jacobian products come from differentiating that formula by hand:

    dy_i/dr_j      = [i == j] P_i**s + s r_i P_i**(s-1) gamma[j, i] alpha |r_j|**(alpha-1) sign(r_j)
    dy_i/dbeta_i   = s r_i P_i**(s-1)
    dy_i/dgamma_ji = s r_i P_i**(s-1) |r_j|**alpha
    dy_i/dalpha    = s r_i P_i**(s-1) sum_j gamma[j, i] |r_j|**alpha log|r_j|   (0 for r_j = 0)
    dy_i/depsilon  = +-y_i log P_i
    dr_j/dx_j      = [x_j > 0] if rectify else 1

Nothing here imports jax_lrn.
"""

from __future__ import annotations

import numpy as np


def _positions(shape, axis):
  """Every index of ``shape`` with ``slice(None)`` at ``axis``: one channel vector each."""
  rest = [n for a, n in enumerate(shape) if a != axis]
  for index in np.ndindex(*rest):
    full = list(index)
    full.insert(axis, slice(None))
    yield tuple(full)


def _abs_pow(v, alpha):
  return np.array([abs(t) ** alpha for t in v])


def gdn(x, beta, gamma, **kwargs):
  """``y`` in float64; ``kwargs`` as for :func:`gdn_and_vjp`."""
  return gdn_and_vjp(x, beta, gamma, None, **kwargs)[0]


def gdn_and_vjp(
  x,
  beta,
  gamma,
  g,
  *,
  alpha=2.0,
  epsilon=0.5,
  inverse=False,
  rectify=False,
  channel_axis=-1,
):
  """``(y, grads)`` in float64, ``grads`` a dict of the cotangents of x, beta, gamma, alpha and
  epsilon for the output cotangent ``g`` (None: no gradients)."""
  x = np.asarray(x, np.float64)
  beta = np.asarray(beta, np.float64)
  gamma = np.asarray(gamma, np.float64)
  axis = channel_axis % x.ndim
  channels = x.shape[axis]
  s = epsilon if inverse else -epsilon
  y = np.zeros_like(x)
  grads = {
    "x": np.zeros_like(x),
    "beta": np.zeros_like(beta),
    "gamma": np.zeros_like(gamma),
    "alpha": 0.0,
    "epsilon": 0.0,
  }
  for pos in _positions(x.shape, axis):
    xv = x[pos]
    r = np.maximum(xv, 0.0) if rectify else xv
    f = _abs_pow(r, alpha)
    pool = np.array(
      [beta[i] + sum(gamma[j, i] * f[j] for j in range(channels)) for i in range(channels)]
    )
    yv = np.array([r[i] * pool[i] ** s for i in range(channels)])
    y[pos] = yv
    if g is None:
      continue
    gv = np.asarray(g, np.float64)[pos]
    dr = np.zeros(channels)
    for i in range(channels):
      common = gv[i] * s * r[i] * pool[i] ** (s - 1)  # g_i dy_i/dP_i
      dr[i] += gv[i] * pool[i] ** s
      grads["beta"][i] += common
      for j in range(channels):
        if r[j] != 0:
          dr[j] += common * gamma[j, i] * alpha * abs(r[j]) ** (alpha - 1) * np.sign(r[j])
          grads["alpha"] += common * gamma[j, i] * f[j] * np.log(abs(r[j]))
        grads["gamma"][j, i] += common * f[j]
      if yv[i] != 0:
        grads["epsilon"] += gv[i] * yv[i] * np.log(pool[i]) * (1.0 if inverse else -1.0)
    grads["x"][pos] = dr * (xv > 0) if rectify else dr
  return y, grads


def spatial_gdn(x, beta, gamma, **kwargs):
  """Spatial GDN in float64, from its formula with a loop over the window:

      P_i(p) = beta_i + sum_o sum_j gamma[o, j, i] |r_j(p + o - c)|**alpha,   c = (k - 1) // 2

  for ``x`` of shape ``(N, *spatial, C)`` (or with the channels at ``channel_axis``) and
  ``gamma`` of shape ``(*k, C, C)``; positions outside ``x`` count as 0. ``kwargs`` as for
  :func:`gdn_and_vjp`."""
  return spatial_gdn_and_vjp(x, beta, gamma, None, **kwargs)[0]


def spatial_gdn_and_vjp(
  x, beta, gamma, g, *, alpha=2.0, epsilon=0.5, inverse=False, rectify=False, channel_axis=-1
):
  """``(y, grads)`` of :func:`spatial_gdn` in float64, ``grads`` a dict of the cotangents of x,
  beta and gamma for the output cotangent ``g`` (None: no gradients), by hand from the formula
  (``q = p + o - c``, ``s`` as in :func:`gdn_and_vjp`):

      dy_i(p)/dbeta_i         = s r_i(p) P_i(p)**(s-1)
      dy_i(p)/dgamma[o, j, i] = s r_i(p) P_i(p)**(s-1) |r_j(q)|**alpha
      dy_i(p)/dr_j(q)         = [i == j, q == p] P_i(p)**s
                                + s r_i(p) P_i(p)**(s-1) gamma[o, j, i] alpha |r_j(q)|**(alpha-1)
                                  sign(r_j(q))
  """
  x = np.moveaxis(np.asarray(x, np.float64), channel_axis, -1)
  beta, gamma = np.asarray(beta, np.float64), np.asarray(gamma, np.float64)
  s = epsilon if inverse else -epsilon
  r = np.maximum(x, 0.0) if rectify else x
  f = np.abs(r) ** alpha
  window = gamma.shape[:-2]
  spatial = x.shape[1:-1]
  channels = x.shape[-1]

  def taps():
    """(o, p, q) for every window index o and position p whose source q lies inside x."""
    for offset in np.ndindex(*window):
      shift = [o - (k - 1) // 2 for o, k in zip(offset, window)]
      for position in np.ndindex(*spatial):
        source = tuple(p + d for p, d in zip(position, shift))
        if all(0 <= q < n for q, n in zip(source, spatial)):
          yield offset, position, source

  pool = np.broadcast_to(beta, x.shape).copy()
  for offset, position, source in taps():
    for i in range(channels):
      for j in range(channels):
        pool[(slice(None), *position, i)] += gamma[(*offset, j, i)] * f[(slice(None), *source, j)]
  y = r * pool**s
  if g is None:
    return np.moveaxis(y, -1, channel_axis), None
  g = np.moveaxis(np.asarray(g, np.float64), channel_axis, -1)
  common = g * s * r * pool ** (s - 1)  # g_i(p) dy_i(p)/dP_i(p)
  df = np.where(r != 0, alpha * np.abs(r) ** (alpha - 1) * np.sign(r), 0.0)  # d|r|**alpha / dr
  dr = g * pool**s
  dgamma = np.zeros_like(gamma)
  for offset, position, source in taps():
    for i in range(channels):
      for j in range(channels):
        c = common[(slice(None), *position, i)]
        dgamma[(*offset, j, i)] += np.sum(c * f[(slice(None), *source, j)])
        dr[(slice(None), *source, j)] += c * gamma[(*offset, j, i)] * df[(slice(None), *source, j)]
  dx = dr * (x > 0) if rectify else dr
  grads = {
    "x": np.moveaxis(dx, -1, channel_axis),
    "beta": common.sum(axis=tuple(range(x.ndim - 1))),
    "gamma": dgamma,
  }
  return np.moveaxis(y, -1, channel_axis), grads
