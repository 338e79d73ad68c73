r"""cuda-convnet2's normalization layers ``rnorm``, ``cmrnorm``, ``cnorm`` (see jax_lrn.compat).

Read from akrizhevsky/cuda-convnet2 (3238bf0): ``layer.py`` (``NormLayerParser``: the user's
``scale`` becomes ``scale / size`` for ``cmrnorm`` and ``scale / size**2`` for ``rnorm`` and
``cnorm``; ``minDiv`` defaults to 1), ``cudaconvnet/src/layer.cu`` (``ContrastNormLayer``:
``meanDiffs = images - convLocalPool(images, AvgPooler<false>)``) and ``cudaconv3/src/conv_util.cu``
(the kernels ``kFCNorm``, ``kCNorm_fewfilter``, ``kCNorm_manyfilter``, ``kCNorm2``, ``kLocalPool``).
Windows are ``[p - size//2, p - size//2 + size - 1]`` clipped to the array, and the scale is not
reduced where a window is clipped (the same as zero padding).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._lrn import _check_dtype, _check_param, _compute_dtype, lrn
from jax_lrn._power import divide_by_power
from jax_lrn._window import WindowConfig, window_extent, window_sum

__all__ = ["cuda_convnet"]

FRAMEWORK = "cuda-convnet"
LAYERS = ("rnorm", "cmrnorm", "cnorm")


def _clipped_count(extent: int, lo: int, hi: int) -> np.ndarray:
  """How many of ``[i - lo, i + hi]`` lie in ``[0, extent)``, for each ``i``."""
  i = np.arange(extent)
  return (np.minimum(i + hi, extent - 1) - np.maximum(i - lo, 0) + 1).astype(np.float64)


def _cnorm(x, size: int, scale, pow_, min_div, static_pow):
  """cnorm: ``d = min_div + scale/N^2 sum_{q in W(p)} (x_q - m_q)^2``, ``y = x d^-pow``, with
  ``m_q`` the mean of ``x`` over ``W(q)`` clipped to the image (in-bounds count)."""
  u = x.astype(_compute_dtype(x.dtype))
  lo, hi = window_extent(size, "before")
  cfg = WindowConfig(
    axes=(2, 3), size=size, lo=lo, hi=hi, count=float(size) ** 2, static_beta=static_pow
  )
  count = np.outer(
    _clipped_count(u.shape[2], lo, hi), _clipped_count(u.shape[3], lo, hi)
  )  # AvgPooler<false>: the sum over the clipped window divided by its in-bounds count
  # The mean of u - r is the mean of u minus r: with r one element of the map, a constant map
  # gives differences of exactly 0 (the rounding of a large mean would otherwise show).
  r = jax.lax.stop_gradient(u[:, :, :1, :1])
  r = jnp.where(jnp.isfinite(r), r, 0.0)
  mean_diff = (u - r) - window_sum(u - r, cfg) / jnp.asarray(count, u.dtype)
  d = min_div + (scale / cfg.count) * window_sum(mean_diff * mean_diff, cfg)
  return divide_by_power(u, d, pow_, static_pow).astype(x.dtype)


def _blocked_cmrnorm(x, size: int, scale, pow_, min_div, static_pow):
  """cmrnorm with ``blocked``: each map is normalised by its block of ``size`` consecutive maps
  (``[(f // size) * size, ... + size)``, the last block truncated)."""
  u = x.astype(_compute_dtype(x.dtype))
  n, channels = u.shape[0], u.shape[1]
  blocks = -(-channels // size)
  squares = jnp.pad(u * u, [(0, 0), (0, blocks * size - channels)] + [(0, 0)] * (u.ndim - 2))
  block_sums = squares.reshape(n, blocks, size, *u.shape[2:]).sum(axis=2, keepdims=True)
  block_sums = jnp.broadcast_to(block_sums, (n, blocks, size, *u.shape[2:]))
  window_sq = block_sums.reshape(n, blocks * size, *u.shape[2:])[:, :channels]
  d = min_div + (scale / size) * window_sq
  return divide_by_power(u, d, pow_, static_pow).astype(x.dtype)


def _int(value, name: str) -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
    raise TypeError(f"{FRAMEWORK}: {name} must be an int, got {value!r}.")
  return int(value)


def cuda_convnet(
  x: jax.typing.ArrayLike,
  layer: str,
  size: int,
  scale: float | jax.Array,
  pow: float | jax.Array,  # noqa: A002 (cuda-convnet's own parameter name)
  min_div: float | jax.Array = 1.0,
  blocked: bool = False,
) -> jax.Array:
  r"""cuda-convnet2's ``rnorm``, ``cmrnorm`` and ``cnorm`` layers on an NCHW array.

  .. math::

    y_p = x_p \, d_p^{-\text{pow}}, \qquad
    d_p = \text{minDiv} + a \sum_{q \in W(p)} z_q^2

  * ``rnorm``: ``W`` is the ``size x size`` box of the same map, ``a = scale / size^2``,
    ``z = x``: :func:`jax_lrn.lrn` with ``mode="within_channel"``.
  * ``cmrnorm``: ``W`` is ``size`` consecutive maps, ``a = scale / size``, ``z = x``:
    :func:`jax_lrn.lrn` across channels. The ImageNet configuration (``size=5``,
    ``scale=1e-4``, ``pow=0.75``, ``minDiv=2``) is AlexNet's layer, as in Caffe. With
    ``blocked=True`` the maps are split into consecutive blocks of ``size`` (the last one
    truncated) and each map's window is its block.
  * ``cnorm``: ``W`` the box of ``rnorm``, ``a = scale / size^2``, and ``z_q = x_q - m_q`` with
    ``m_q`` the mean of ``x`` over ``W(q)`` (each neighbour's own window, clipped to the image
    and divided by its in-bounds pixel count, centre included). **The numerator is the raw
    ``x``**, not ``x - m``: a constant image ``c`` gives ``c * minDiv^-pow``.

  Windows are ``[p - size//2, p - size//2 + size - 1]`` (even sizes lean to lower indices),
  clipped to the array, and ``a`` is not reduced where they are clipped. The gradient is exact,
  by the closed form of :func:`jax_lrn.lrn` (rnorm, cmrnorm) or by autodiff (blocked cmrnorm,
  cnorm). cuda-convnet's own cnorm backward (``convContrastNormUndo``) is not: it reuses the
  rnorm backward with ``x - m`` in place of the input and drops the path through the local
  means, so its gradients differ from these (and from finite differences).

  cuda-convnet's kernels also require square images, ``channels % 16 == 0`` for cmrnorm and a
  channel count ``<= 3`` or divisible by 4 for rnorm/cnorm; those are layout constraints of its
  CUDA code, not part of the maths, and are not enforced here. cuda-convnet 1 has no
  ``minDiv`` (it is 1 there): pass ``min_div=1``.

  Args:
    x: ``(N, C, H, W)`` floating array.
    layer: ``"rnorm"``, ``"cmrnorm"`` or ``"cnorm"``.
    size: the window: side of the spatial box (rnorm, cnorm, ``1 <= size <= min(H, W)``) or
      number of maps (cmrnorm, ``2 <= size <= C``).
    scale: the layer parameter ``scale`` as written in a layer-params file (divided here).
    pow: the exponent.
    min_div: ``minDiv``, added to the denominator.
    blocked: cmrnorm only: non-overlapping blocks of maps.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    TypeError: ``x`` is not floating; ``size`` not an int; ``blocked`` not a bool; a
      parameter not a real number or scalar array.
    ValueError: ``x`` not 4-D; unknown ``layer``; ``size`` out of the range above;
      ``blocked`` with a layer other than cmrnorm; a negative ``scale`` or ``min_div``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> x = jnp.ones((1, 16, 2, 2), jnp.float32)
    >>> y = compat.cuda_convnet(x, "cmrnorm", 16, 15.0, 1.0, blocked=True)
    >>> float(y[0, 0, 0, 0])  # 1 / (1 + 15/16 * 16), pylearn2's test
    0.0625
    >>> c = jnp.full((1, 4, 5, 5), 2.0, jnp.float32)  # a constant image: 2 * 4 ** -0.5
    >>> float(compat.cuda_convnet(c, "cnorm", 3, 1.0, 0.5, min_div=4.0)[0, 0, 0, 0])
    1.0
  """
  if not isinstance(x, jax.Array):
    x = jnp.asarray(x)
  _check_dtype(x.dtype, f"{FRAMEWORK}: x must be a floating array of dtype")
  if x.ndim != 4:
    raise ValueError(
      f"{FRAMEWORK}: x must have rank 4 (N, C, H, W), got an input of shape {x.shape} "
      f"(rank {x.ndim})."
    )
  if not isinstance(layer, str) or layer.lower() not in LAYERS:
    raise ValueError(f"{FRAMEWORK}: layer must be one of {LAYERS}, got {layer!r}.")
  layer = layer.lower()
  size = _int(size, "size")
  if not isinstance(blocked, (bool, np.bool_)):
    raise TypeError(f"{FRAMEWORK}: blocked must be a bool, got {blocked!r}.")
  scale, _ = _check_param(scale, f"{FRAMEWORK}: scale", nonnegative=True)
  pow_, static_pow = _check_param(pow, f"{FRAMEWORK}: pow", nonnegative=False)
  min_div, _ = _check_param(min_div, f"{FRAMEWORK}: min_div", nonnegative=True)
  channels, side = x.shape[1], min(x.shape[2], x.shape[3])
  if layer == "cmrnorm":
    if not 2 <= size <= channels:
      raise ValueError(
        f"{FRAMEWORK}: cmrnorm needs 2 <= size <= channels ({channels}), got size={size}."
      )
  else:
    if blocked:
      raise ValueError(f"{FRAMEWORK}: blocked applies to cmrnorm only, got layer={layer!r}.")
    if not 1 <= size <= side:
      raise ValueError(
        f"{FRAMEWORK}: {layer} needs 1 <= size <= the image side ({side}), got size={size}."
      )
  if layer == "rnorm":
    return lrn(x, size, scale, pow_, min_div, mode="within_channel", channel_axis=1)
  if layer == "cmrnorm" and not blocked:
    return lrn(x, size, scale, pow_, min_div, channel_axis=1)
  dtype = _compute_dtype(x.dtype)
  scale, pow_, min_div = (jnp.asarray(p, dtype) for p in (scale, pow_, min_div))
  if layer == "cmrnorm":
    return _blocked_cmrnorm(x, size, scale, pow_, min_div, static_pow)
  return _cnorm(x, size, scale, pow_, min_div, static_pow)
