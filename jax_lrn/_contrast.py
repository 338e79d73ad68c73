r"""Local contrast normalization (Jarrett et al. 2009): the public functions and their core.

The window is a Gaussian over the spatial axes and uniform over every channel, normalised to total
mass 1. Because it is uniform over channels and separable over space, a sum over the window is a
mean over channels followed by one weighted 1-D window sum per spatial axis, on an array with a
single channel: the channel count does not multiply the window work.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jax_lrn._lrn import (
  _canonical_axis,
  _check_axis,
  _check_dtype,
  _check_size,
  _check_spatial_axes,
  _compute_dtype,
)
from jax_lrn._window import window_extent

#: ``eps`` of :func:`local_contrast_norm` and :func:`local_divisive_norm` by default.
DEFAULT_EPS = 1e-4

# ---------------------------------------------------------------------------------------------
# Weighted window sums (static weights, zero padding).
# ---------------------------------------------------------------------------------------------


def _shifted(v, axis: int, offset: int):
  """``u[i] = v[i + offset]`` along ``axis``, zero where ``i + offset`` falls outside."""
  config = [(0, 0, 0)] * v.ndim
  config[axis] = (-offset, offset, 0)  # negative padding crops: a shift by one lax.pad
  return lax.pad(v, np.zeros((), v.dtype), config)


def weighted_sum_along(v, axis: int, weights: Sequence[float], lo: int):
  """``sum_d weights[d + lo] * v[i + d]`` along ``axis``, for ``d`` in ``[-lo, len - 1 - lo]``,
  zero-padded: shifted copies of ``v``, which XLA fuses with the elementwise work around them.

  Offsets that reach past the axis only add zeros and are skipped.
  """
  extent = v.shape[axis]
  out = None
  for index, weight in enumerate(weights):
    offset = index - lo
    if isinstance(extent, int) and abs(offset) >= max(extent, 1):
      continue
    term = weight * (v if offset == 0 else _shifted(v, axis, offset))
    out = term if out is None else out + term
  return jnp.zeros_like(v) if out is None else out


# ---------------------------------------------------------------------------------------------
# Static configuration.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContrastConfig:
  """Canonical, hashable description of one local contrast normalization.

  Attributes:
    channel_axis: non-negative channel axis (the window is uniform over it).
    spatial_axes: non-negative spatial axes, increasing.
    weights: the 1-D Gaussian window (sums to 1), the same along each spatial axis.
    lo: elements of the window before its centre.
    subtract: subtract the local mean.
    divide: divide by ``max(local std, its per-sample mean, eps)``.
    eps: the floor of the divisor.
  """

  channel_axis: int
  spatial_axes: tuple[int, ...]
  weights: tuple[float, ...]
  lo: int
  subtract: bool
  divide: bool
  eps: float


def gaussian_weights(size: int, sigma: float) -> tuple[tuple[float, ...], int]:
  """``(weights, lo)``: ``exp(-d^2 / (2 sigma^2))`` for ``d`` in ``[-lo, size - 1 - lo]``,
  normalised to sum 1 (in float64); even sizes put the larger half before the centre."""
  lo, hi = window_extent(size, "before")
  d = np.arange(-lo, hi + 1, dtype=np.float64)
  g = np.exp(-(d * d) / (2.0 * sigma * sigma))
  return tuple(float(w) for w in g / g.sum()), lo


def smooth(v, cfg: ContrastConfig):
  """The separable Gaussian window sum of ``v`` over the spatial axes (zero-padded)."""
  for axis in cfg.spatial_axes:
    v = weighted_sum_along(v, axis, cfg.weights, cfg.lo)
  return v


def kernel_mass(cfg: ContrastConfig, shape, dtype):
  """The window's mass inside the array at each position (1 away from the borders), shaped to
  broadcast against the input: the product over spatial axes of the 1-D masses."""
  coef = jnp.ones((1,) * len(shape), dtype)
  for axis in cfg.spatial_axes:
    ones_shape = [1] * len(shape)
    ones_shape[axis] = shape[axis]
    coef = coef * weighted_sum_along(jnp.ones(ones_shape, dtype), axis, cfg.weights, cfg.lo)
  return coef


def _safe_sqrt(v):
  """``sqrt(v)`` for ``v >= 0`` with a finite gradient (0) where ``v == 0``."""
  positive = v > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1.0)), 0.0)


def _reference(u, cfg: ContrastConfig):
  """One element of each sample (the first position and channel), finite, without gradient."""
  first = tuple(
    slice(0, 1) if a == cfg.channel_axis or a in cfg.spatial_axes else slice(None)
    for a in range(u.ndim)
  )
  r = lax.stop_gradient(u[first])
  return jnp.where(jnp.isfinite(r), r, 0.0)


def contrast_core(cfg: ContrastConfig, x):
  """The normalization in the compute dtype; returns ``x``'s dtype."""
  u = x.astype(_compute_dtype(x.dtype))
  coef = kernel_mass(cfg, u.shape, u.dtype)
  if cfg.subtract:
    # The local mean of u - r equals the local mean of u minus r for any r that is constant
    # over the window, since the renormalised weights sum to 1. With r one element of the
    # sample the means are taken of differences within the sample, not of its offset: a
    # constant sample gives exactly 0 (rather than rounding noise that the divisive step
    # would blow up), and a large offset does not cost precision. r carries no gradient (the
    # output does not depend on it); a non-finite r is replaced by 0, so that a nan or inf
    # stays local.
    u = u - _reference(u, cfg)
    mean = smooth(jnp.mean(u, axis=cfg.channel_axis, keepdims=True), cfg) / coef
    u = u - mean
  if cfg.divide:
    variance = smooth(jnp.mean(u * u, axis=cfg.channel_axis, keepdims=True), cfg) / coef
    local = _safe_sqrt(variance)
    per_sample = jnp.mean(local, axis=cfg.spatial_axes, keepdims=True)
    u = u / jnp.maximum(jnp.maximum(local, per_sample), cfg.eps)
  return u.astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Validation (trace time, static arguments only).
# ---------------------------------------------------------------------------------------------


def _positive_number(value, name: str, *, allow_zero: bool) -> float:
  """A finite Python/NumPy real number ``> 0`` (``>= 0`` with ``allow_zero``) as a float."""
  if (
    isinstance(value, (bool, np.bool_, jax.Array))
    or not isinstance(value, (numbers.Real, np.number))
    or isinstance(value, np.complexfloating)
  ):
    raise TypeError(f"{name} must be a Python or NumPy real number, got {value!r}.")
  number = float(value)
  bound = ">= 0" if allow_zero else "> 0"
  if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
    raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
  return number


def _contrast_spatial_axes(spatial_axes, ndim: int, channel_axis: int, what: str):
  spatial_axes = _check_spatial_axes(spatial_axes)
  if spatial_axes is None:
    axes = tuple(a for a in range(1, ndim) if a != channel_axis)
    if ndim < 4:
      raise ValueError(
        f"{what}: spatial_axes=None applies to inputs of rank >= 4 (batch, spatial axes and "
        f"channel_axis); an input of rank {ndim} (channel_axis={channel_axis}) must name its "
        "spatial axes, e.g. spatial_axes=(0, 1) for one unbatched HWC image (also inside vmap) "
        "or spatial_axes=(1,) for a batch of 1-D signals."
      )
    return axes
  if len(spatial_axes) == 0:
    raise ValueError(f"{what}: spatial_axes=() is empty; name at least one spatial axis.")
  axes = tuple(_canonical_axis(a, ndim, "spatial_axes") for a in spatial_axes)
  if len(set(axes)) != len(axes):
    raise ValueError(
      f"{what}: spatial_axes={spatial_axes} names an axis twice (as {axes} for rank {ndim})."
    )
  if channel_axis in axes:
    raise ValueError(
      f"{what}: spatial_axes={spatial_axes} contains channel_axis ({channel_axis}); the window "
      "is uniform over channels and Gaussian over the spatial axes, which must differ from it."
    )
  return tuple(sorted(axes))


def contrast_config(
  ndim: int,
  size,
  *,
  sigma,
  channel_axis,
  spatial_axes,
  eps,
  subtract: bool,
  divide: bool,
  what: str,
) -> ContrastConfig:
  """Validates the static arguments and returns the canonical configuration."""
  size = _check_size(size)
  sigma = (
    math.sqrt(size) / 2.0 if sigma is None else _positive_number(sigma, "sigma", allow_zero=False)
  )
  eps = _positive_number(eps, "eps", allow_zero=True)
  if ndim < 2:
    raise ValueError(
      f"{what} needs an input of rank >= 2 (a channel axis and at least one spatial axis), got "
      f"rank {ndim}."
    )
  channel_axis = _canonical_axis(channel_axis, ndim, "channel_axis")
  axes = _contrast_spatial_axes(spatial_axes, ndim, channel_axis, what)
  weights, lo = gaussian_weights(size, sigma)
  return ContrastConfig(
    channel_axis=channel_axis,
    spatial_axes=axes,
    weights=weights,
    lo=lo,
    subtract=subtract,
    divide=divide,
    eps=eps,
  )


def check_layer_arguments(size, sigma, channel_axis, spatial_axes, eps) -> tuple[int, ...] | None:
  """Validates a contrast normalization layer's arguments before any input is seen; returns
  ``spatial_axes`` as a tuple of ints (or ``None``). Axis ranges wait for the input's rank."""
  _check_size(size)
  if sigma is not None:
    _positive_number(sigma, "sigma", allow_zero=False)
  _positive_number(eps, "eps", allow_zero=True)
  _check_axis(channel_axis, "channel_axis")
  return _check_spatial_axes(spatial_axes)


def _normalize(x, size, sigma, channel_axis, spatial_axes, eps, *, subtract, divide, what):
  if not isinstance(x, jax.Array):
    x = jnp.asarray(x)
  _check_dtype(x.dtype, "x must be a floating array of dtype")
  cfg = contrast_config(
    jnp.ndim(x),
    size,
    sigma=sigma,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    eps=eps,
    subtract=subtract,
    divide=divide,
    what=what,
  )
  return contrast_core(cfg, x)


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def local_contrast_norm(
  x: jax.typing.ArrayLike,
  size: int = 9,
  *,
  sigma: float | None = None,
  channel_axis: int = -1,
  spatial_axes: Sequence[int] | None = None,
  eps: float = DEFAULT_EPS,
) -> jax.Array:
  r"""Local contrast normalization (Jarrett, Kavukcuoglu, Ranzato, LeCun, ICCV 2009).

  .. math::

    v_{c,p} = x_{c,p} - \frac{1}{m_p} \sum_{c'} \sum_{q} w_{q-p} \, x_{c',q}, \qquad
    \sigma_p = \Bigl(\frac{1}{m_p} \sum_{c'} \sum_{q} w_{q-p} \, v_{c',q}^2\Bigr)^{1/2},

    y_{c,p} = \frac{v_{c,p}}{\max(\sigma_p, \bar\sigma, \epsilon)}, \qquad
    \bar\sigma = \operatorname{mean}_p \sigma_p \ \text{(per sample)}

  ``w`` is a Gaussian window of ``size`` elements (standard deviation ``sigma``) along each
  spatial axis and uniform over all ``C`` channels, normalised to total mass 1
  (``w_q = prod_a g(q_a) / C`` with ``sum g = 1``): the local mean and the local standard
  deviation are shared by all channels at a position. ``v`` is ``x`` minus its local mean
  (the subtractive step, :func:`local_subtractive_norm`), and ``y`` divides ``v`` by its local
  standard deviation, or by that deviation's mean over the sample's positions where that is
  larger (the divisive step, :func:`local_divisive_norm`): ``y = divisive(subtractive(x))``.

  Borders: the window is zero-padded and both weighted means are divided by ``m_p``, the
  window's mass inside the array (1 away from the borders), as Torch7's
  ``SpatialSubtractiveNormalization`` does for the mean: the mean of a constant image is that
  constant up to its corners. (Torch7 divides the standard deviation by ``m_p`` rather than by
  ``sqrt(m_p)``; here both are true weighted means. ``jax_lrn.compat.torch7_contrastive``
  reproduces Torch7.)

  Per sample: ``sigma_bar`` averages over the spatial axes only, so each index of the other
  axes (the batch) is normalised by itself, and
  ``local_contrast_norm(a * x + b) == local_contrast_norm(x)`` for any per-sample ``a > 0``
  and ``b`` (while ``a * max(sigma_p, sigma_bar)`` stays above ``eps``). ``eps`` floors the
  divisor: a constant input gives ``0`` rather than ``0 / 0``. It is the one global (per-sample)
  reduction; everything else depends only on the window. The local means are taken of the
  differences from one element of the sample (which leaves them unchanged mathematically), so
  a constant sample gives exactly 0 and a large offset ``b`` costs no precision.

  ``sigma=None`` is ``sqrt(size) / 2`` (1.5 for the paper's 9 x 9 window): EBLearn's
  ``create_gaussian_kernel(n)``, Jarrett and LeCun's library. Even sizes put ``size // 2``
  elements before the centre, ``size // 2 - 1`` after. 16-bit inputs compute in float32 and
  the result is cast back. Gradients come from JAX's autodiff (to any order).

  Args:
    x: floating array (float16, bfloat16, float32 or float64), e.g. ``(N, H, W, C)`` with
      ``channel_axis=-1`` or ``(N, C, H, W)`` with ``channel_axis=1``.
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation in elements; a positive number, or ``None`` for
      ``sqrt(size) / 2``.
    channel_axis: the channel axis (the window is uniform over it); for a single-channel image
      add an axis of length 1.
    spatial_axes: the axes of the Gaussian window (an int or a sequence of ints). ``None``
      means every axis except 0 (the batch) and ``channel_axis``, for inputs of rank ``>= 4``;
      rank-2 and rank-3 inputs (unbatched or ``vmap``-ped images, batches of 1-D signals) must
      name them. The remaining axes index samples.
    eps: floor of the divisor; a number ``>= 0``.

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError: ``x`` is not float16, bfloat16, float32 or float64; ``size`` or an axis is not an
      int; ``sigma`` or ``eps`` is not a real number.
    ValueError: ``size < 1``, ``sigma <= 0``, ``eps < 0`` or either not finite, an axis out of
      range or repeated, ``spatial_axes`` containing ``channel_axis``, ``spatial_axes=None``
      below rank 4, an input of rank < 2.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import local_contrast_norm
    >>> x = jnp.arange(32.0, dtype=jnp.float32).reshape(2, 4, 4, 1)
    >>> y = local_contrast_norm(x, size=3)
    >>> y.shape
    (2, 4, 4, 1)
    >>> bool(jnp.allclose(local_contrast_norm(3.0 * x + 7.0, size=3), y, atol=1e-5))
    True
  """
  return _normalize(
    x,
    size,
    sigma,
    channel_axis,
    spatial_axes,
    eps,
    subtract=True,
    divide=True,
    what="local_contrast_norm",
  )


def local_subtractive_norm(
  x: jax.typing.ArrayLike,
  size: int = 9,
  *,
  sigma: float | None = None,
  channel_axis: int = -1,
  spatial_axes: Sequence[int] | None = None,
) -> jax.Array:
  r"""The subtractive step of :func:`local_contrast_norm`: ``x`` minus its local mean.

  .. math::

    v_{c,p} = x_{c,p} - \frac{1}{m_p} \sum_{c'} \sum_{q} w_{q-p} \, x_{c',q}

  The window ``w`` (Gaussian over the spatial axes, uniform over channels, mass 1), its mass
  ``m_p`` inside the array, and every argument are those of :func:`local_contrast_norm`. Every
  output depends only on the inputs in its window (no per-sample reduction).

  Args:
    x: floating array (float16, bfloat16, float32 or float64).
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation, or ``None`` for ``sqrt(size) / 2``.
    channel_axis: the channel axis.
    spatial_axes: the window's spatial axes (``None``: every axis but 0 and ``channel_axis``,
      rank ``>= 4``).

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError, ValueError: as :func:`local_contrast_norm`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import local_subtractive_norm
    >>> v = local_subtractive_norm(jnp.full((1, 5, 5, 3), 2.0, jnp.float32), size=3)
    >>> float(jnp.abs(v).max())
    0.0
  """
  return _normalize(
    x,
    size,
    sigma,
    channel_axis,
    spatial_axes,
    0.0,
    subtract=True,
    divide=False,
    what="local_subtractive_norm",
  )


def local_divisive_norm(
  x: jax.typing.ArrayLike,
  size: int = 9,
  *,
  sigma: float | None = None,
  channel_axis: int = -1,
  spatial_axes: Sequence[int] | None = None,
  eps: float = DEFAULT_EPS,
) -> jax.Array:
  r"""The divisive step of :func:`local_contrast_norm`, applied to ``x`` itself.

  .. math::

    \sigma_p = \Bigl(\frac{1}{m_p} \sum_{c'} \sum_{q} w_{q-p} \, x_{c',q}^2\Bigr)^{1/2},
    \qquad
    y_{c,p} = \frac{x_{c,p}}{\max(\sigma_p, \bar\sigma, \epsilon)}, \qquad
    \bar\sigma = \operatorname{mean}_p \sigma_p \ \text{(per sample)}

  ``sigma_p`` is the local root mean square (not centred): on an input that is already
  centred, such as the output of :func:`local_subtractive_norm`, it is the local standard
  deviation, and ``local_divisive_norm(local_subtractive_norm(x)) == local_contrast_norm(x)``.
  The window, its border mass ``m_p``, the per-sample mean and every argument are those of
  :func:`local_contrast_norm`; ``local_divisive_norm(a * x) == local_divisive_norm(x)`` for a
  per-sample ``a > 0``.

  Args:
    x: floating array (float16, bfloat16, float32 or float64).
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation, or ``None`` for ``sqrt(size) / 2``.
    channel_axis: the channel axis.
    spatial_axes: the window's spatial axes (``None``: every axis but 0 and ``channel_axis``,
      rank ``>= 4``).
    eps: floor of the divisor; a number ``>= 0``.

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError, ValueError: as :func:`local_contrast_norm`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import local_divisive_norm
    >>> y = local_divisive_norm(jnp.full((1, 5, 5, 2), 4.0, jnp.float32), size=3)
    >>> float(y[0, 2, 2, 0])  # 4 / sqrt(mean of 4^2)
    1.0
  """
  return _normalize(
    x,
    size,
    sigma,
    channel_axis,
    spatial_axes,
    eps,
    subtract=False,
    divide=True,
    what="local_divisive_norm",
  )
