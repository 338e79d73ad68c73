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


def shifted(v, axis: int, offset: int):
  """``u[i] = v[i + offset]`` along ``axis``, zero where ``i + offset`` falls outside
  (``v`` itself for offset 0)."""
  if offset == 0:
    return v
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
    term = weight * shifted(v, axis, offset)
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
    per_sample: include the per-sample mean of the local deviation in the divisor (always, in
      the public functions; the benchmarks switch it off to measure what it costs).
  """

  channel_axis: int
  spatial_axes: tuple[int, ...]
  weights: tuple[float, ...]
  lo: int
  subtract: bool
  divide: bool
  eps: float
  per_sample: bool = True


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


def safe_sqrt(v):
  """``sqrt(v)`` for ``v >= 0`` with a finite gradient (0) where ``v == 0``."""
  positive = v > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1.0)), 0.0)


def sample_reference(u, axes: Sequence[int]):
  """One element of each sample (index 0 along each of ``axes``, kept as length-1 axes), finite
  (0 where it is not), without gradient."""
  first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(u.ndim))
  r = lax.stop_gradient(u[first])
  return jnp.where(jnp.isfinite(r), r, 0.0)


def contrast_autodiff(cfg: ContrastConfig, x):
  """The normalization written plainly, for JAX's autodiff: what :func:`contrast_core`
  computes (the tests compare the two, and the benchmarks time its gradient against the
  closed form)."""
  u = x.astype(_compute_dtype(x.dtype))
  coef = kernel_mass(cfg, u.shape, u.dtype)
  if cfg.subtract:
    u = u - sample_reference(u, (cfg.channel_axis, *cfg.spatial_axes))
    mean = smooth(jnp.mean(u, axis=cfg.channel_axis, keepdims=True), cfg) / coef
    u = u - mean
  if cfg.divide:
    variance = smooth(jnp.mean(u * u, axis=cfg.channel_axis, keepdims=True), cfg) / coef
    local = safe_sqrt(variance)
    per_sample = jnp.mean(local, axis=cfg.spatial_axes, keepdims=True)
    u = u / jnp.maximum(jnp.maximum(local, per_sample), cfg.eps)
  return u.astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# The custom_vjp core. Every full-size array is read in a few fused passes; everything else
# lives on "reduced" arrays, of length 1 along the channel axis (C times smaller):
#   r      one element of the sample (no gradient), so that the means are of u - r;
#   a      mean_c(u - r);  M = smooth(a) / coef, the local mean of u - r; v = (u - r) - M;
#   sigma  sqrt(smooth(mean_c(v^2)) / coef);  c = mean of sigma over the spatial axes;
#   D      max(sigma, c, eps);  y = v / D.
# The backward keeps x and the reduced statistics (no recomputation of the window sums) and
# works on full-size arrays only for v, sum_c(g v), sum_c(g) and dx. XLA:CPU stores the
# elementwise producer of each channel reduction (u - r, v, g v) rather than fusing it.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Stats:
  """The reduced statistics of one call (arrays, or None for a step that is not taken)."""

  coef: jax.Array
  r: jax.Array | None
  a: jax.Array | None
  mean: jax.Array | None
  sigma: jax.Array | None
  c: jax.Array | None


jax.tree_util.register_dataclass(
  _Stats, data_fields=["coef", "r", "a", "mean", "sigma", "c"], meta_fields=[]
)


def _widen(x):
  return x.astype(_compute_dtype(x.dtype))


def _centred(x, st: _Stats):
  """``v``: ``x`` (widened) minus its local mean, or ``x`` itself without the subtractive step.

  No optimization barrier (unlike :func:`jax_lrn.lrn`'s backward): XLA:CPU does not fuse an
  elementwise producer into its channel reductions either way, and barriers that made each pass
  recompute v from x measured slower (dx only, NHWC: 76 ms against 46 ms at 64x56x56x64).
  """
  u = _widen(x)
  if st.r is None or st.mean is None:
    return u
  return (u - st.r) - st.mean


def _divisor(cfg: ContrastConfig, st: _Stats):
  assert st.sigma is not None and st.c is not None
  return jnp.maximum(jnp.maximum(st.sigma, st.c), cfg.eps)


def _statistics(cfg: ContrastConfig, x) -> _Stats:
  u = _widen(x)
  coef = kernel_mass(cfg, u.shape, u.dtype)
  r = a = mean = sigma = c = None
  if cfg.subtract:
    r = sample_reference(u, (cfg.channel_axis, *cfg.spatial_axes))
    a = jnp.mean(u - r, axis=cfg.channel_axis, keepdims=True)
    mean = smooth(a, cfg) / coef
  if cfg.divide:
    v = _centred(x, _Stats(coef, r, a, mean, None, None))
    variance = smooth(jnp.mean(v * v, axis=cfg.channel_axis, keepdims=True), cfg) / coef
    sigma = safe_sqrt(variance)
    if cfg.per_sample:
      c = jnp.mean(sigma, axis=cfg.spatial_axes, keepdims=True)
    else:
      c = jnp.zeros((1,) * sigma.ndim, sigma.dtype)
  return _Stats(coef, r, a, mean, sigma, c)


def _output(cfg: ContrastConfig, x, st: _Stats):
  v = _centred(x, st)
  return (v / _divisor(cfg, st) if cfg.divide else v).astype(x.dtype)


def _forward(cfg: ContrastConfig, x):
  return _output(cfg, x, _statistics(cfg, x))


contrast_core = jax.custom_vjp(_forward, nondiff_argnums=(0,))


def _core_fwd(cfg: ContrastConfig, x):
  st = _statistics(cfg, x)
  return _output(cfg, x, st), (x, st)


def _smooth_transpose(v, cfg: ContrastConfig):
  """The adjoint of :func:`smooth`: the mirrored weights (the same for odd sizes)."""
  hi = len(cfg.weights) - 1 - cfg.lo
  for axis in cfg.spatial_axes:
    v = weighted_sum_along(v, axis, cfg.weights[::-1], hi)
  return v


def _max_share(a, b):
  """d max(a, b) / da as JAX defines it: 1 where a > b, 1/2 where a == b, else 0."""
  return jnp.where(a > b, 1.0, jnp.where(a == b, 0.5, 0.0)).astype(a.dtype)


def _core_bwd(cfg: ContrastConfig, res, g):
  x, st = res
  ch = cfg.channel_axis
  v = _centred(x, st)
  g = g.astype(v.dtype)
  channels = v.shape[ch]
  if cfg.divide:
    assert st.sigma is not None and st.c is not None
    first = jnp.maximum(st.sigma, st.c)
    divisor = jnp.maximum(first, cfg.eps)
    # One pass over x and g for both channel sums.
    g_v, g_sum = (jnp.sum(t, axis=ch, keepdims=True) for t in (g * v, g))
    d_first = -g_v / (divisor * divisor) * _max_share(first, cfg.eps)
    d_sigma = d_first * _max_share(st.sigma, st.c)
    if cfg.per_sample:  # c is the mean of sigma over the sample's positions
      d_c = jnp.sum(d_first * _max_share(st.c, st.sigma), axis=cfg.spatial_axes, keepdims=True)
      d_sigma = d_sigma + d_c / math.prod(v.shape[a] for a in cfg.spatial_axes)
    # sigma = safe_sqrt(variance): d/dvariance = 1 / (2 sigma) where sigma > 0, else 0.
    positive = st.sigma > 0
    d_var = jnp.where(positive, d_sigma / (2.0 * jnp.where(positive, st.sigma, 1.0)), 0.0)
    d_sq = _smooth_transpose(d_var / st.coef, cfg)  # d/d mean_c(v^2)
    dv = g / divisor + (2.0 / channels) * v * d_sq
    if cfg.subtract:
      assert st.a is not None and st.mean is not None
      # sum_c dv without another pass: sum_c v = C (a - mean).
      dv_sum = g_sum / divisor + 2.0 * d_sq * (st.a - st.mean)
  else:
    dv = g
    dv_sum = jnp.sum(g, axis=ch, keepdims=True)
  if cfg.subtract:
    # v = (u - r) - smooth(mean_c(u - r)) / coef, with r constant (it carries no gradient).
    dv = dv - _smooth_transpose(dv_sum / st.coef, cfg) / channels  # type: ignore[possibly-undefined]
  return (dv.astype(x.dtype),)


contrast_core.defvjp(_core_fwd, _core_bwd)


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
