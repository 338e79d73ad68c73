r"""Torch7's spatial contrast normalizations (torch/nn), reproduced exactly (see jax_lrn.compat).

``nn.SpatialSubtractiveNormalization``, ``nn.SpatialDivisiveNormalization`` and
``nn.SpatialContrastiveNormalization`` (torch/nn ``SpatialSubtractiveNormalization.lua``,
``SpatialDivisiveNormalization.lua``, ``SpatialContrastiveNormalization.lua``, read at
torch/nn 7dc33c1, b4ebdf2 and 4f8836c). With ``K`` the kernel normalised to sum 1 (for a 1-D
kernel ``k``, ``K = k k^T / (sum k)^2``) and ``P`` planes, Torch7 convolves all planes into one
map with ``K / P`` (a 2-D kernel is divided by ``sum * P``; a 1-D one by ``sum * sqrt(P)`` in
each of its two passes of the divisive module, which gives the same total mass 1, and the
subtractive module's scale cancels in its own division), zero-padded, and replicates that map
to every plane:

* ``coef = conv(ones)``: the kernel's mass inside the image (1 away from the borders);
* subtractive: ``mean = conv(x) / coef``, ``y = x - mean``;
* divisive: ``s = sqrt(conv(x^2)) / coef`` (the root of the weighted sum, divided by ``coef``
  and not by ``sqrt(coef)``: at the borders ``s`` is ``1 / sqrt(coef)`` times the weighted root
  mean square), ``s' = s if s > threshold else thresval`` (``nn.Threshold``), ``y = x / s'``;
* contrastive: divisive of subtractive, with the same kernel and threshold.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._contrast import safe_sqrt, sample_reference, shifted, weighted_sum_along
from jax_lrn._lrn import _check_dtype, _compute_dtype

__all__ = ["torch7_subtractive", "torch7_divisive", "torch7_contrastive"]

FRAMEWORK = "Torch7"

# ---------------------------------------------------------------------------------------------
# Validation (static arguments).
# ---------------------------------------------------------------------------------------------


def _kernel(kernel) -> np.ndarray:
  """The kernel as a float64 NumPy array normalised to sum 1 (a 1-D kernel stays 1-D)."""
  if kernel is None:
    kernel = np.ones((9, 9))  # Torch7's default: torch.Tensor(9,9):fill(1)
  try:
    k = np.asarray(kernel, dtype=np.float64)
  except (TypeError, ValueError, jax.errors.TracerArrayConversionError) as error:
    raise TypeError(
      f"{FRAMEWORK}: kernel must be a concrete 1-D or 2-D array of numbers (a NumPy array, a "
      f"list or a concrete JAX array, not a traced value), got {kernel!r}."
    ) from error
  if k.ndim not in (1, 2):
    raise ValueError(
      f"{FRAMEWORK}: kernel must be 1-D (separable) or 2-D, got shape {k.shape}; Torch7 says "
      "'averaging kernel must be 2D or 1D'."
    )
  if any(n % 2 == 0 for n in k.shape):
    raise ValueError(
      f"{FRAMEWORK}: kernel must have odd sizes, got shape {k.shape}; Torch7 says 'averaging "
      "kernel must have ODD dimensions'."
    )
  if not np.all(np.isfinite(k)):
    raise ValueError(f"{FRAMEWORK}: kernel must be finite, got {k.tolist()}.")
  total = k.sum()
  if total == 0:
    raise ValueError(
      f"{FRAMEWORK}: kernel must not sum to 0 (Torch7 divides it by its sum), got {k.tolist()}."
    )
  return k / total


def _threshold(value, name: str) -> float:
  if (
    isinstance(value, (bool, np.bool_, jax.Array))
    or not isinstance(value, (numbers.Real, np.number))
    or isinstance(value, np.complexfloating)
  ):
    raise TypeError(f"{FRAMEWORK}: {name} must be a Python or NumPy real number, got {value!r}.")
  number = float(value)
  if np.isnan(number):
    raise ValueError(f"{FRAMEWORK}: {name} must not be nan.")
  return number


def _input(x):
  if not isinstance(x, jax.Array):
    x = jnp.asarray(x)
  _check_dtype(x.dtype, f"{FRAMEWORK}: x must be a floating array of dtype")
  if x.ndim not in (3, 4):
    raise ValueError(
      f"{FRAMEWORK}: x must have shape (planes, H, W) or (batch, planes, H, W), got an input of "
      f"shape {x.shape} (rank {x.ndim})."
    )
  return x


# ---------------------------------------------------------------------------------------------
# The maths.
# ---------------------------------------------------------------------------------------------


def _conv(v, kernel: np.ndarray):
  """Torch7's estimator without the plane average: the zero-padded cross-correlation of each
  ``(H, W)`` map of ``v`` with the normalised kernel (1-D: along W, then along H)."""
  h_axis, w_axis = v.ndim - 2, v.ndim - 1
  if kernel.ndim == 1:
    weights = tuple(float(w) for w in kernel)
    lo = len(weights) // 2
    return weighted_sum_along(weighted_sum_along(v, w_axis, weights, lo), h_axis, weights, lo)
  out = None
  lo_h, lo_w = kernel.shape[0] // 2, kernel.shape[1] // 2
  for a, row in enumerate(kernel):
    # The row's weighted sum along W, moved into place along H (rows entirely outside the
    # image add nothing and are skipped).
    if abs(a - lo_h) >= max(v.shape[h_axis], 1):
      continue
    term = shifted(
      weighted_sum_along(v, w_axis, tuple(float(w) for w in row), lo_w), h_axis, a - lo_h
    )
    out = term if out is None else out + term
  return jnp.zeros_like(v) if out is None else out


def _coef(shape, kernel: np.ndarray, dtype):
  """``conv(ones)`` over the ``(H, W)`` of ``shape``, computed in float64 NumPy."""
  h, w = shape[-2], shape[-1]
  k2 = np.outer(kernel, kernel) if kernel.ndim == 1 else kernel
  lo_h, lo_w = k2.shape[0] // 2, k2.shape[1] // 2
  coef = np.zeros((h, w))
  for a in range(k2.shape[0]):
    for b in range(k2.shape[1]):
      dh, dw = a - lo_h, b - lo_w
      rows = np.clip(np.arange(h) + dh, -1, h)
      cols = np.clip(np.arange(w) + dw, -1, w)
      inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
      coef += k2[a, b] * inside
  return jnp.asarray(coef, dtype)


def _plane_mean(v):
  """The plane average Torch7's ``P -> 1`` convolution performs, kept as an axis of length 1."""
  return jnp.mean(v, axis=v.ndim - 3, keepdims=True)


def _subtract(u, kernel, coef):
  # The local mean is unchanged by subtracting one element of the sample first (coef
  # renormalises the weights to sum 1); see jax_lrn.local_contrast_norm.
  u = u - sample_reference(u, tuple(range(u.ndim - 3, u.ndim)))
  return u - _conv(_plane_mean(u), kernel) / coef


def _divide(u, kernel, coef, threshold: float, thresval: float):
  s = safe_sqrt(_conv(_plane_mean(u * u), kernel)) / coef
  return u / jnp.where(s > threshold, s, thresval)


def _run(x, kernel, *, subtract: bool, divide: bool, threshold=None, thresval=None):
  x = _input(x)
  k = _kernel(kernel)
  if divide:
    threshold = _threshold(threshold, "threshold")
    thresval = threshold if thresval is None else _threshold(thresval, "thresval")
  u = x.astype(_compute_dtype(x.dtype))
  coef = _coef(u.shape, k, u.dtype)
  if subtract:
    u = _subtract(u, k, coef)
  if divide:
    u = _divide(u, k, coef, threshold, thresval)  # type: ignore[arg-type]
  return u.astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Public functions.
# ---------------------------------------------------------------------------------------------


def torch7_subtractive(x: jax.typing.ArrayLike, kernel=None) -> jax.Array:
  r"""Torch7's ``nn.SpatialSubtractiveNormalization(planes, kernel)``.

  .. math::

    y_{c,p} = x_{c,p} - \frac{\sum_{c'} \sum_q K_{q-p} x_{c',q} / P}{m_p}, \qquad
    m_p = \sum_{q \in \text{image}} K_{q-p}

  ``K`` is the kernel normalised to sum 1 (a 1-D kernel ``k`` is applied separably,
  ``K = k k^T / (sum k)^2``), ``P`` the number of planes, zero padding, cross-correlation: one
  mean shared by every plane, renormalised at the borders by the kernel mass ``m_p`` inside the
  image (so a constant image gives 0 everywhere). Torch7 divides the caller's kernel tensor in
  place; this function leaves it alone. Differentiable by autodiff (Torch7's backward is the
  exact chain rule too).

  Args:
    x: ``(planes, H, W)`` or ``(batch, planes, H, W)`` floating array.
    kernel: 1-D or 2-D kernel with odd sizes, concrete (NumPy array, list or concrete JAX
      array); ``None`` is Torch7's default ``ones(9, 9)``.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    TypeError: ``x`` is not floating; ``kernel`` is traced or not numeric.
    ValueError: ``x`` is not 3-D or 4-D; ``kernel`` is not 1-D/2-D, has an even size, is not
      finite or sums to 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> x = jnp.stack([jnp.full((3, 3), 1.0), jnp.full((3, 3), 3.0)])  # two planes
    >>> compat.torch7_subtractive(x, jnp.ones(3))[:, 1, 1]  # minus the shared mean, 2
    Array([-1.,  1.], dtype=float32)
  """
  return _run(x, kernel, subtract=True, divide=False)


def torch7_divisive(
  x: jax.typing.ArrayLike, kernel=None, threshold: float = 1e-4, thresval: float | None = None
) -> jax.Array:
  r"""Torch7's ``nn.SpatialDivisiveNormalization(planes, kernel, threshold, thresval)``.

  .. math::

    s_p = \frac{\bigl(\sum_{c'} \sum_q K_{q-p} x_{c',q}^2 / P\bigr)^{1/2}}{m_p}, \qquad
    y_{c,p} = \frac{x_{c,p}}{s_p \text{ if } s_p > \text{threshold else thresval}}

  ``K``, ``P`` and the border mass ``m_p`` as in :func:`torch7_subtractive`. **Border quirk,
  reproduced:** Torch7 divides the root by ``m_p``, not by ``sqrt(m_p)``, so at the borders
  ``s`` is larger than the weighted root mean square by ``1 / sqrt(m_p)``: with a 3 x 3 ones
  kernel and a constant image the output is 1 inside, ``sqrt(6/9)`` on the edges and
  ``sqrt(4/9)`` at the corners. ``thresval=None`` is ``threshold``, as in Torch7. The
  gradient passes through ``s`` only where ``s > threshold`` (``nn.Threshold``).

  Args:
    x: ``(planes, H, W)`` or ``(batch, planes, H, W)`` floating array.
    kernel: 1-D or 2-D kernel with odd sizes (see :func:`torch7_subtractive`).
    threshold: ``s`` at or below it is replaced by ``thresval``.
    thresval: the replacement (``None``: ``threshold``).

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    TypeError, ValueError: as :func:`torch7_subtractive`; ``threshold`` or ``thresval`` not a
      real number, or nan.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> y = compat.torch7_divisive(jnp.full((1, 5, 5), 2.0), jnp.ones((3, 3)))
    >>> [round(float(v), 4) for v in (y[0, 2, 2], y[0, 0, 2], y[0, 0, 0])]
    [1.0, 0.8165, 0.6667]
  """
  return _run(x, kernel, subtract=False, divide=True, threshold=threshold, thresval=thresval)


def torch7_contrastive(
  x: jax.typing.ArrayLike, kernel=None, threshold: float = 1e-4, thresval: float | None = None
) -> jax.Array:
  r"""Torch7's ``nn.SpatialContrastiveNormalization(planes, kernel, threshold, thresval)``.

  .. math:: y = \operatorname{divisive}(\operatorname{subtractive}(x))

  :func:`torch7_subtractive` followed by :func:`torch7_divisive` with the same kernel,
  threshold and thresval, as Torch7's ``nn.Sequential`` of the two modules (the usual setting is
  ``kernel = image.gaussian1D(7)`` and ``threshold = 1``). Unlike
  :func:`jax_lrn.local_contrast_norm` there is no per-sample mean of ``s``: the floor is the
  fixed threshold.

  Args:
    x: ``(planes, H, W)`` or ``(batch, planes, H, W)`` floating array.
    kernel: 1-D or 2-D kernel with odd sizes (see :func:`torch7_subtractive`).
    threshold: ``s`` at or below it is replaced by ``thresval``.
    thresval: the replacement (``None``: ``threshold``).

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    TypeError, ValueError: as :func:`torch7_divisive`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> float(jnp.abs(compat.torch7_contrastive(jnp.full((2, 6, 6), 5.0), jnp.ones(3))).max())
    0.0
  """
  return _run(x, kernel, subtract=True, divide=True, threshold=threshold, thresval=thresval)
