"""The public :func:`lrn` (validation, dtype policy, docs) and its private ``custom_vjp`` core."""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._power import negative_power
from jax_lrn._window import (
  EVEN_PLACEMENTS,
  WindowConfig,
  window_extent,
  window_sum,
  window_sum_transpose,
)

MODES = ("across_channels", "within_channel")
Mode = Literal["across_channels", "within_channel"]
EvenPlacement = Literal["before", "after"]

# ---------------------------------------------------------------------------------------------
# The differentiable core. x arrives in its own dtype (16-bit inputs stay 16-bit in memory, also
# as a residual) and is widened to float32 (float64 for float64) inside; y and dx are cast back.
# ---------------------------------------------------------------------------------------------


def _compute_dtype(dtype) -> np.dtype:
  """float64 computes in float64, every other floating dtype in float32."""
  return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _denominator_base(x, alpha, k, cfg: WindowConfig):
  """``(s, S)`` with ``S = sum_W x^2`` and ``s = k + alpha/n * S``."""
  window_sq = window_sum(x * x, cfg)
  return k + (alpha / cfg.count) * window_sq, window_sq


def _widen(x, k, shift):
  """``(u, k_u, inv_c)``: x in the compute dtype, divided by ``c = 2**shift`` when rescaling.

  With ``x = c u``, ``lrn(x; k) = c**(1 - 2 beta) lrn(u; k / c**2)``: the squares of ``u`` cannot
  overflow float32 when ``shift`` was chosen from ``max |x|`` (see :func:`_range_shift`).
  ``shift is None`` (every dtype but bfloat16) means no rescaling at all.
  """
  u = x.astype(_compute_dtype(x.dtype))
  if shift is None:
    return u, k, None
  inv_c = jnp.exp2(-shift)
  return u * inv_c, k * jnp.exp2(-2.0 * shift), inv_c


def _output_scale(shift, beta):
  """``c**(1 - 2 beta)`` for ``c = 2**shift``: what turns ``lrn(u)`` back into ``lrn(x)``."""
  return jnp.exp2(shift * (1.0 - 2.0 * beta))


def _normalized(cfg: WindowConfig, x, alpha, beta, k, shift):
  """``(y_u, s)``: ``u s**-beta`` and ``s`` for the widened (and rescaled) input ``u``."""
  u, k_u, _ = _widen(x, k, shift)
  s, _ = _denominator_base(u, alpha, k_u, cfg)
  return u * negative_power(s, beta, cfg.static_beta), s


def _output(y_u, beta, shift, dtype):
  """``lrn(x)`` from ``y_u``: scaled back in float32 (so rounded once) and cast to ``dtype``."""
  return (y_u if shift is None else y_u * _output_scale(shift, beta)).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lrn_core(cfg: WindowConfig, x, alpha, beta, k, shift):
  y_u, _ = _normalized(cfg, x, alpha, beta, k, shift)
  return _output(y_u, beta, shift, x.dtype)


def _lrn_core_fwd(cfg: WindowConfig, x, alpha, beta, k, shift):
  # symbolic_zeros=True: every argument arrives as CustomVJPPrimal(value, perturbed). Which
  # cotangents are wanted is recorded in the residuals' (static) tree structure: () or None.
  # shift (a constant: it comes from stop_gradient) is never differentiated.
  wanted = tuple(() if arg.perturbed else None for arg in (x, alpha, beta, k))
  x, alpha, beta, k = (arg.value for arg in (x, alpha, beta, k))
  shift = None if shift is None else shift.value
  y_u, s = _normalized(cfg, x, alpha, beta, k, shift)
  # w = y / s = u s^(-beta-1): the factor every cross term of the backward shares. Divided from
  # y, not powered from u: s**-(beta+1) alone underflows float32 when s is large (|x| ~ 1e18),
  # while y / s stays representable as long as the true value is.
  w = y_u / s
  # Residuals: the input (in its own dtype), w (compute dtype) and scalars. The backward
  # recomputes the window sum and s^-beta from x.
  return _output(y_u, beta, shift, x.dtype), (x, w, alpha, beta, k, shift, wanted)


def _lrn_core_bwd(cfg: WindowConfig, res, g):
  x, w, alpha, beta, k, shift, wanted = res
  want_x, want_alpha, want_beta, want_k = (flag is not None for flag in wanted)
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    return (None, None, None, None, None)
  u, k_u, inv_c = _widen(x, k, shift)
  g = g.astype(w.dtype)
  s, window_sq = _denominator_base(u, alpha, k_u, cfg)
  p = negative_power(s, beta, cfg.static_beta)
  # t_i = g_i y_i / s_i: the shared factor of every cross term.
  t = g * w
  # With rescaling, y = c**(1-2beta) Y(u) (Y: the LRN of u with k / c**2); every cotangent is
  # that of Y times c**(1-2beta), and dx and dk carry the chain-rule factors 1/c and 1/c**2.
  scale = None if shift is None else _output_scale(shift, beta)
  dx = dalpha = dbeta = dk = None
  if want_x:
    # dx_j = g_j s_j^-beta - 2 (alpha/n) beta x_j sum_{i: j in W(i)} t_i  (mirrored window).
    cross = window_sum_transpose(t, cfg, pad_once=x.dtype.itemsize < 4)
    dx = g * p - (2.0 * beta * alpha / cfg.count) * u * cross
    if shift is not None:
      dx = dx * scale * inv_c
    dx = dx.astype(x.dtype)
  if want_alpha:
    dalpha = -(beta / cfg.count) * jnp.sum(t * window_sq)
    dalpha = dalpha if shift is None else dalpha * scale
  if want_k:
    dk = -beta * jnp.sum(t)
    dk = dk if shift is None else dk * scale * inv_c * inv_c
  if want_beta:
    if shift is None:
      dbeta = -jnp.sum(g * u * p * jnp.log(s))
    else:  # log of the true s = c**2 s_u, and the output scale c**(1 - 2 beta)
      log_true_s = jnp.log(s) + float(2.0 * np.log(2.0)) * shift
      dbeta = -jnp.sum(g * u * p * log_true_s) * _output_scale(shift, beta)
  return dx, dalpha, dbeta, dk, None


_lrn_core.defvjp(_lrn_core_fwd, _lrn_core_bwd, symbolic_zeros=True)

# ---------------------------------------------------------------------------------------------
# Validation and canonicalisation (trace time, static arguments only).
# ---------------------------------------------------------------------------------------------


def _canonical_axis(axis, ndim: int, name: str) -> int:
  try:
    axis = operator.index(axis)
  except TypeError:
    raise TypeError(f"{name} must be an int, got {axis!r}.") from None
  if isinstance(axis, bool) or not -ndim <= axis < ndim:
    raise ValueError(
      f"{name}={axis} is out of range for an input of rank {ndim}; "
      f"allowed: -{ndim} <= {name} < {ndim}."
    )
  return axis % ndim


def _check_size(size) -> int:
  if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
    raise TypeError(f"size must be a positive int, got {size!r} of type {type(size).__name__}.")
  if size < 1:
    raise ValueError(f"size must be a positive int, got {size}.")
  return int(size)


def _spatial_axes(spatial_axes, ndim: int, channel_axis: int) -> tuple[int, ...]:
  if spatial_axes is None:
    axes = tuple(a for a in range(1, ndim) if a != channel_axis)
    if not axes:
      raise ValueError(
        f"mode='within_channel' needs at least one spatial axis, but an input of rank {ndim} "
        f"with channel_axis={channel_axis} has none besides the batch axis 0; pass spatial_axes "
        "explicitly (for example for unbatched or vmapped inputs)."
      )
    return axes
  if isinstance(spatial_axes, (int, np.integer)):
    spatial_axes = (spatial_axes,)
  if not isinstance(spatial_axes, Sequence):
    raise TypeError(f"spatial_axes must be a sequence of ints or None, got {spatial_axes!r}.")
  if len(spatial_axes) == 0:
    raise ValueError(
      "spatial_axes=() is empty; mode='within_channel' needs at least one spatial axis."
    )
  axes = tuple(_canonical_axis(a, ndim, "spatial_axes") for a in spatial_axes)
  if len(set(axes)) != len(axes):
    raise ValueError(
      f"spatial_axes={tuple(spatial_axes)} names an axis twice (as {axes} for rank {ndim}); "
      "each axis may appear once."
    )
  if channel_axis in axes:
    raise ValueError(
      f"spatial_axes={tuple(spatial_axes)} contains the channel axis ({channel_axis}); the "
      "within_channel window runs inside each channel, so the channel axis cannot be spatial."
    )
  return tuple(sorted(axes))


def _check_param(value, name: str, *, nonnegative: bool):
  """Returns ``(value, static_value)``: static_value is a float for Python/NumPy numbers."""
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be a real number or a scalar array, got {value!r}.")
  if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, jax.Array):
    static = float(value)
    if not math.isfinite(static):
      raise ValueError(f"{name} must be finite, got {static}.")
    if nonnegative and static < 0:
      raise ValueError(f"{name} must be >= 0, got {static}.")
    return value, static
  shape = jnp.shape(value)
  if shape != ():
    raise ValueError(f"{name} must be a scalar, got an array of shape {shape}.")
  dtype = jnp.result_type(value)
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise TypeError(f"{name} must be a real number or a real scalar array, got dtype {dtype}.")
  return value, None


def window_config(
  ndim: int,
  size: int,
  *,
  mode: str,
  channel_axis: int,
  spatial_axes,
  even_placement: str,
  static_beta: float | None = None,
) -> WindowConfig:
  """Validates the static arguments of :func:`lrn` and returns the canonical window."""
  size = _check_size(size)
  if not isinstance(mode, str) or mode.lower() not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
  mode = mode.lower()
  if even_placement not in EVEN_PLACEMENTS:
    raise ValueError(f"even_placement must be one of {EVEN_PLACEMENTS}, got {even_placement!r}.")
  if ndim < 1:
    raise ValueError(
      "lrn needs an input of rank >= 1 (an axis of channels), got a scalar (rank 0)."
    )
  channel_axis = _canonical_axis(channel_axis, ndim, "channel_axis")
  if mode == "across_channels":
    if spatial_axes is not None:
      raise ValueError(
        f"spatial_axes={spatial_axes!r} was given with mode='across_channels', which only "
        "windows over channel_axis; spatial_axes applies to mode='within_channel'."
      )
    axes = (channel_axis,)
  else:
    if ndim < 2:
      raise ValueError(
        f"mode='within_channel' needs an input of rank >= 2 (a channel axis and at least one "
        f"spatial axis), got rank {ndim}."
      )
    axes = _spatial_axes(spatial_axes, ndim, channel_axis)
  lo, hi = window_extent(size, even_placement)
  return WindowConfig(
    axes=axes, size=size, lo=lo, hi=hi, count=size ** len(axes), static_beta=static_beta
  )


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def lrn(
  x: jax.typing.ArrayLike,
  size: int = 5,
  alpha: float | jax.Array = 1e-4,
  beta: float | jax.Array = 0.75,
  k: float | jax.Array = 1.0,
  *,
  mode: Mode = "across_channels",
  channel_axis: int = -1,
  spatial_axes: Sequence[int] | None = None,
  even_placement: EvenPlacement = "before",
) -> jax.Array:
  r"""Local response normalization.

  .. math::

    y_i = x_i \, \Bigl(k + \frac{\alpha}{n} \sum_{j \in W(i)} x_j^2\Bigr)^{-\beta}

  ``W(i)`` is a window around element ``i``, zero-padded at the array edges, and ``n`` is its
  nominal number of elements (the divisor stays ``n`` at the edges, as in Caffe and PyTorch):

  * ``mode="across_channels"`` (AlexNet, Caffe ``ACROSS_CHANNELS``, PyTorch, ONNX, cuDNN): ``W``
    spans ``size`` neighbouring channels along ``channel_axis`` at the same position;
    ``n = size``.
  * ``mode="within_channel"`` (Caffe ``WITHIN_CHANNEL``, cuda-convnet ``rnorm``): ``W`` is a
    ``size x size (x ...)`` box over ``spatial_axes`` inside one channel;
    ``n = size ** len(spatial_axes)``.

  Conventions: ``alpha`` is divided by ``n`` (Caffe, PyTorch, ONNX, cuDNN, MXNet). TensorFlow and
  the AlexNet paper do not divide: pass ``alpha = alpha_tf * size`` and
  ``size = 2 * depth_radius + 1`` to reproduce ``tf.nn.local_response_normalization``. Odd sizes
  are centred. For even sizes ``even_placement="before"`` (default, PyTorch and cuda-convnet)
  puts ``size // 2`` elements before the centre and ``size // 2 - 1`` after;
  ``even_placement="after"`` (ONNX, cuDNN, MatConvNet) puts the larger half after.
  The ``jax_lrn.compat`` functions spell out each framework's convention.

  Numerics: 16-bit inputs are squared, summed and raised to ``-beta`` in float32, and the result
  is cast back to the input dtype. Exponents that are multiples of 1/4 up to 2 (0.5, 0.75, 1,
  ...) given as Python numbers use exact ``rsqrt``/``sqrt`` products; other exponents, and
  traced ``beta``, use ``exp(-beta * log(s))``. With ``k = 0`` an all-zero window gives
  ``0 * inf = nan``, as in every framework.

  Differentiation goes through a ``jax.custom_vjp`` closed form,
  ``dx_j = g_j s_j^{-beta} - 2 beta alpha/n x_j sum_{i: j in W(i)} g_i y_i / s_i``, which is
  itself differentiable (grad-of-grad, ``jax.hessian``). ``alpha``, ``beta`` and ``k`` may be
  traced JAX scalars with gradients (a learnable LRN).

  Args:
    x: floating array, e.g. ``(N, H, W, C)`` with ``channel_axis=-1`` or ``(N, C, H, W)`` with
      ``channel_axis=1``. float16, bfloat16, float32 and float64 are supported.
    size: window length ``n`` (per spatial axis in ``within_channel`` mode); a positive int.
      Sizes larger than the axis are allowed (the window is zero-padded).
    alpha: scale of the sum of squares (divided by ``n``); a number ``>= 0`` or a scalar array.
    beta: exponent; a finite number or a scalar array.
    k: additive constant; a number ``>= 0`` or a scalar array.
    mode: ``"across_channels"`` or ``"within_channel"``.
    channel_axis: the channel axis (negative values count from the end).
    spatial_axes: ``within_channel`` only: the axes of the spatial window. ``None`` means every
      axis except axis 0 (the batch) and ``channel_axis``; pass it explicitly for unbatched or
      ``vmap``-ped inputs.
    even_placement: where the larger half of an even-size window goes: ``"before"`` (PyTorch)
      or ``"after"`` (ONNX, cuDNN). No effect for odd sizes.

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError: ``x`` is not a floating array; ``size`` is not an int; a parameter is not a
      real scalar.
    ValueError: ``size < 1``, unknown ``mode`` or ``even_placement``, an axis out of range,
      bad ``spatial_axes``, too few dimensions for the mode, a negative or non-finite
      ``alpha``/``k`` given as a number.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import lrn
    >>> x = jnp.arange(1.0, 5.0, dtype=jnp.float32).reshape(1, 4)
    >>> lrn(x, size=3, alpha=3.0, beta=1.0, k=1.0)  # y_1 = 2 / (1 + (1 + 4 + 9))
    Array([[0.16666667, 0.13333334, 0.10000001, 0.15384616]], dtype=float32)
    >>> lrn(jnp.ones((2, 8, 8, 3), jnp.float32), size=3, mode="within_channel").shape
    (2, 8, 8, 3)
  """
  if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
    x = jnp.asarray(x)
  dtype = jnp.dtype(x.dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(
      f"x must be a floating array (float16, bfloat16, float32 or float64), got dtype {dtype}."
    )
  alpha, _ = _check_param(alpha, "alpha", nonnegative=True)
  beta, static_beta = _check_param(beta, "beta", nonnegative=False)
  k, _ = _check_param(k, "k", nonnegative=True)
  cfg = window_config(
    jnp.ndim(x),
    size,
    mode=mode,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    even_placement=even_placement,
    static_beta=static_beta,
  )
  # float16/bfloat16 compute in float32; float32 and float64 in themselves.
  alpha, beta, k = (jnp.asarray(p, dtype=_compute_dtype(dtype)) for p in (alpha, beta, k))
  shift = _range_shift(x, cfg) if dtype == jnp.bfloat16 else None
  return _lrn_core(cfg, x, alpha, beta, k, shift)


def _range_shift(x, cfg: WindowConfig):
  """For bfloat16 input: ``shift`` with ``c = 2**shift`` the smallest power of two that brings the
  largest finite ``|x|`` down to where ``n`` squares sum without overflowing float32.

  bfloat16 has float32's exponent range, so ``x**2`` and its window sums can overflow the float32
  computation above ``|x|`` ~ 1.8e19. The core computes on ``u = x / c`` (exactly, a power of
  two) and scales the result by ``c**(1 - 2 beta)`` before the single rounding to bfloat16
  (:func:`_widen`). For ordinary data ``shift == 0``. The shift is a constant for
  differentiation. Elements more than ~2**186 below the largest one flush to zero when scaled
  (XLA flushes subnormals), and ``k / c**2`` does too for ``|x|`` above ~2**123.
  """
  # Largest exponent T with n * (2**T)**2 < 2**127 (float32's largest power of two).
  max_exponent = (126 - max(cfg.count - 1, 0).bit_length()) // 2
  exponent = _largest_finite_exponent(jax.lax.stop_gradient(x))
  return jnp.maximum(exponent - max_exponent, 0).astype(jnp.float32)


def _largest_finite_exponent(x):
  """``e`` with ``max |x| < 2**e`` over the finite elements of ``x`` (0 for none).

  ``max(max(x), -min(x))`` reads ``x`` once with XLA's fast reductions; only when that is not
  finite (an inf or nan is present) is the slower masked maximum computed.
  """
  extreme = jnp.maximum(jnp.max(x, initial=-jnp.inf), -jnp.min(x, initial=jnp.inf))

  def masked_max():
    return jnp.max(jnp.where(jnp.isfinite(x), jnp.abs(x), 0), initial=0).astype(extreme.dtype)

  largest = jax.lax.cond(jnp.isfinite(extreme), lambda: extreme, masked_max)
  return jnp.frexp(largest.astype(jnp.float32))[1]
