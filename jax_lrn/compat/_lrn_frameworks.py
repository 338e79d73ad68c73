"""LRN conventions of Caffe, TensorFlow, PyTorch, ONNX, cuDNN and MXNet (see jax_lrn.compat)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import jax
import numpy as np

from jax_lrn._lrn import _check_axis, _check_param, lrn

CAFFE_NORM_REGIONS = ("ACROSS_CHANNELS", "WITHIN_CHANNEL")

# ---------------------------------------------------------------------------------------------
# Validation helpers (static arguments, trace time).
# ---------------------------------------------------------------------------------------------


def _int_arg(value, name: str, framework: str, *, minimum: int) -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
    raise TypeError(
      f"{framework}: {name} must be an int >= {minimum}, got {value!r} of type "
      f"{type(value).__name__}."
    )
  if value < minimum:
    raise ValueError(f"{framework}: {name} must be an int >= {minimum}, got {value}.")
  return int(value)


def _odd_size(value, name: str, framework: str) -> int:
  value = _int_arg(value, name, framework, minimum=1)
  if value % 2 != 1:
    raise ValueError(
      f"{framework}: {name} must be odd, got {value}; {framework} rejects even window sizes. "
      "Even sizes exist in PyTorch (compat.torch) and ONNX (compat.onnx), which place the "
      "window differently."
    )
  return value


def _params(framework: str, alpha, beta, k, names=("alpha", "beta", "k")) -> tuple:
  """``(alpha, beta, k)`` unchanged, checked as :func:`jax_lrn.lrn` checks them but before any
  conversion, so that errors give the framework's ``names`` and the values the user passed."""
  return tuple(
    _check_param(value, f"{framework}: {name}", nonnegative=name != names[1])[0]
    for value, name in zip((alpha, beta, k), names)
  )


def _channel_axis(value, framework: str) -> int:
  return _check_axis(value, f"{framework}: channel_axis")


def _number_at_least(value, name: str, framework: str, minimum: float) -> None:
  """Checks a Python/NumPy number against a framework's lower bound; arrays pass through."""
  if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, jax.Array)):
    if not float(value) >= minimum:
      raise ValueError(f"{framework}: {name} must be >= {minimum}, got {value}.")


def _check_rank(x, framework: str, allowed: str, ok) -> None:
  ndim = np.ndim(x)
  if not ok(ndim):
    raise ValueError(
      f"{framework}: x must have rank {allowed}, got an input of shape {np.shape(x)} (rank {ndim})."
    )


def _is_one_or_traced(value) -> bool:
  """Whether ``value`` is 1, or a tracer (whose value cannot be known while tracing)."""
  try:
    return float(value) == 1.0
  except jax.errors.ConcretizationTypeError:
    return True


def _caffe_kwargs(
  local_size, alpha, beta, k, norm_region, channel_axis, stacklevel: int
) -> dict[str, Any]:
  local_size = _odd_size(local_size, "local_size", "Caffe")
  alpha, beta, k = _params("Caffe", alpha, beta, k)
  channel_axis = _channel_axis(channel_axis, "Caffe")
  if not isinstance(norm_region, str) or norm_region.upper() not in CAFFE_NORM_REGIONS:
    raise ValueError(
      f"Caffe: norm_region must be one of {CAFFE_NORM_REGIONS}, got {norm_region!r}."
    )
  if norm_region.upper() == "ACROSS_CHANNELS":
    return dict(size=local_size, alpha=alpha, beta=beta, k=k, channel_axis=channel_axis)
  if not _is_one_or_traced(k):
    warnings.warn(
      f"Caffe: k={k!r} is ignored with norm_region='WITHIN_CHANNEL': Caffe's native engine "
      "hard-codes 1 + alpha/n^2 * sum (Caffe built with cuDNN uses k there instead). Using k=1.",
      UserWarning,
      stacklevel=stacklevel,
    )
  return dict(
    size=local_size,
    alpha=alpha,
    beta=beta,
    k=1.0,
    mode="within_channel",
    channel_axis=channel_axis,
  )


# ---------------------------------------------------------------------------------------------
# Conversions: a framework's parameters -> lrn keyword arguments.
# ---------------------------------------------------------------------------------------------


def from_caffe(
  local_size: int = 5,
  alpha: float = 1.0,
  beta: float = 0.75,
  k: float = 1.0,
  norm_region: str = "ACROSS_CHANNELS",
  *,
  channel_axis: int = 1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce a Caffe ``LRN`` layer (``LRNParameter``).

  Caffe (BVLC/caffe ``src/caffe/layers/lrn_layer.cpp``, defaults from ``LRNParameter`` in
  ``src/caffe/proto/caffe.proto``), NCHW input:

  * ``ACROSS_CHANNELS``: ``y = x (k + alpha/n sum_{n channels} x^2)^-beta``, centred window of
    ``n = local_size`` channels (``CrossChannelForward_cpu``: ``alpha_over_size = alpha_ / size_``,
    ``pre_pad_ = (size_ - 1) / 2``).
  * ``WITHIN_CHANNEL``: ``y = x (1 + alpha/n^2 sum_{n x n box} x^2)^-beta``. The native engine
    builds it from sub-layers: square, average pooling with ``kernel_size = n``,
    ``pad = (n - 1) / 2`` (divisor always ``n^2``: padding counts), then a power layer with
    ``power = -beta, scale = alpha, shift = 1``, times ``x``. **k is ignored** (the shift is
    hard-coded to 1); a ``k != 1`` warns (a traced ``k``, whose value is unknown while
    tracing, is ignored without a warning). Caffe built with cuDNN routes this mode to cuDNN's
    divisive normalization, which does use ``k``: results then depend on the build.

  ``local_size`` must be odd: Caffe's ``LayerSetUp`` checks ``size_ % 2 == 1`` ("LRN only supports
  odd values for local_size").

  Args:
    local_size: window size ``n`` (channels, or the side of the spatial box); odd.
    alpha: scale, divided by ``n`` (across) or ``n^2`` (within). Caffe's default is 1.
    beta: exponent.
    k: additive constant (across channels only).
    norm_region: ``"ACROSS_CHANNELS"`` or ``"WITHIN_CHANNEL"`` (case-insensitive).
    channel_axis: the channel axis of the arrays the ported layer will see: Caffe's NCHW ``1``
      by default, ``-1`` for NHWC (Flax's layout).

  Returns:
    ``dict(size, alpha, beta, k, channel_axis)``, plus ``mode="within_channel"`` (with
    ``k=1.0``) for ``WITHIN_CHANNEL``; ``spatial_axes`` is left at its default, which is
    ``(2, 3)`` for NCHW and ``(1, 2)`` for NHWC input.

  Raises:
    TypeError, ValueError: ``local_size`` is not a positive odd int; unknown
      ``norm_region``; a parameter or ``channel_axis`` that :func:`jax_lrn.lrn` would reject
      (in Caffe's names).

  Examples:
    >>> from_caffe(5, alpha=1e-4, beta=0.75)
    {'size': 5, 'alpha': 0.0001, 'beta': 0.75, 'k': 1.0, 'channel_axis': 1}
  """
  return _caffe_kwargs(local_size, alpha, beta, k, norm_region, channel_axis, stacklevel=3)


def from_tensorflow(
  depth_radius: int = 5,
  bias: float = 1.0,
  alpha: float = 1.0,
  beta: float = 0.5,
  *,
  channel_axis: int = -1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce ``tf.nn.local_response_normalization``.

  TensorFlow (op ``LRN``: tensorflow/core/ops/nn_ops.cc, kernel tensorflow/core/kernels/lrn_op.cc)
  computes, over the last axis of a 4-D NHWC input,

  .. math:: y_d = x_d \bigl(\mathrm{bias} + \alpha \sum_{d' = d - r}^{d + r} x_{d'}^2\bigr)^{-\beta}

  with ``r = depth_radius``: the window has ``2 r + 1`` channels (the default ``r = 5`` means 11)
  and **alpha is not divided** by it. Hence ``size = 2 r + 1`` and ``alpha = alpha_tf * size``.

  Args:
    depth_radius: half-width ``r`` of the window; an int ``>= 0``.
    bias: additive constant (``k``).
    alpha: scale of the (undivided) sum of squares.
    beta: exponent.
    channel_axis: the channel axis of the arrays the ported layer will see: TensorFlow's NHWC
      ``-1`` by default.

  Returns:
    ``dict(size=2*r+1, alpha=alpha*(2*r+1), beta, k=bias, channel_axis)``.

  Raises:
    TypeError, ValueError: ``depth_radius`` is not an int ``>= 0`` (TensorFlow's kernel
      rejects negative radii); a parameter or ``channel_axis`` that :func:`jax_lrn.lrn` would
      reject (in TensorFlow's names).

  Examples:
    >>> from_tensorflow()  # TF defaults
    {'size': 11, 'alpha': 11.0, 'beta': 0.5, 'k': 1.0, 'channel_axis': -1}
  """
  depth_radius = _int_arg(depth_radius, "depth_radius", "TensorFlow", minimum=0)
  alpha, beta, bias = _params("TensorFlow", alpha, beta, bias, names=("alpha", "beta", "bias"))
  channel_axis = _channel_axis(channel_axis, "TensorFlow")
  size = 2 * depth_radius + 1
  return dict(size=size, alpha=alpha * size, beta=beta, k=bias, channel_axis=channel_axis)


def from_torch(
  size: int,
  alpha: float = 1e-4,
  beta: float = 0.75,
  k: float = 1.0,
  *,
  channel_axis: int = 1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce ``torch.nn.functional.local_response_norm``.

  PyTorch (``torch/nn/functional.py``, also ``nn.LocalResponseNorm``) squares the input, pads the
  channel axis (dim 1) with ``size // 2`` zeros before and ``(size - 1) // 2`` after, and
  average-pools with kernel ``size`` (padding counts), so
  ``y = x / (k + alpha/size sum_{W} x^2)^beta``. For even ``size`` the window holds ``size // 2``
  channels before the centre and ``size // 2 - 1`` after (``even_placement="before"``).

  Args:
    size: number of channels in the window; a positive int (odd or even).
    alpha: scale, divided by ``size``.
    beta: exponent.
    k: additive constant.
    channel_axis: the channel axis of the arrays the ported layer will see: PyTorch's dim ``1``
      by default, ``-1`` for channels-last (Flax's layout).

  Returns:
    ``dict(size, alpha, beta, k, channel_axis, even_placement="before")``.

  Examples:
    >>> from_torch(4)  # doctest: +NORMALIZE_WHITESPACE
    {'size': 4, 'alpha': 0.0001, 'beta': 0.75, 'k': 1.0,
     'channel_axis': 1, 'even_placement': 'before'}
  """
  size = _int_arg(size, "size", "PyTorch", minimum=1)
  alpha, beta, k = _params("PyTorch", alpha, beta, k)
  channel_axis = _channel_axis(channel_axis, "PyTorch")
  return dict(
    size=size, alpha=alpha, beta=beta, k=k, channel_axis=channel_axis, even_placement="before"
  )


def from_onnx(
  size: int,
  alpha: float = 1e-4,
  beta: float = 0.75,
  bias: float = 1.0,
  *,
  channel_axis: int = 1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce the ONNX ``LRN`` operator (opsets 1 and 13).

  ONNX (onnx/onnx ``onnx/defs/nn/defs.cc``): input ``(N, C, D1, ..., Dk)``,
  ``square_sum[c] = sum x[i]^2`` for ``i`` in
  ``[max(0, c - floor((size - 1) / 2)), min(C - 1, c + ceil((size - 1) / 2))]`` and
  ``y = x / (bias + alpha / size * square_sum)^beta``. For even ``size`` the larger half of the
  window is after the centre (``even_placement="after"``, the opposite of PyTorch).

  onnxruntime's CPU kernel is narrower than the spec: 4-D input only, odd ``size`` only,
  ``alpha > 0`` and ``beta > 0`` (``ORT_ENFORCE`` in onnxruntime/core/providers/cpu/nn/lrn.h).

  Args:
    size: number of channels in the window; a positive int (odd or even).
    alpha: scale, divided by ``size``.
    beta: exponent.
    bias: additive constant (``k``).
    channel_axis: the channel axis of the arrays the ported layer will see: ONNX's dim ``1`` by
      default, ``-1`` for channels-last (Flax's layout).

  Returns:
    ``dict(size, alpha, beta, k=bias, channel_axis, even_placement="after")``.

  Examples:
    >>> from_onnx(4, bias=2.0)  # doctest: +NORMALIZE_WHITESPACE
    {'size': 4, 'alpha': 0.0001, 'beta': 0.75, 'k': 2.0,
     'channel_axis': 1, 'even_placement': 'after'}
  """
  size = _int_arg(size, "size", "ONNX", minimum=1)
  alpha, beta, bias = _params("ONNX", alpha, beta, bias, names=("alpha", "beta", "bias"))
  channel_axis = _channel_axis(channel_axis, "ONNX")
  return dict(
    size=size, alpha=alpha, beta=beta, k=bias, channel_axis=channel_axis, even_placement="after"
  )


def from_cudnn(
  lrnN: int = 5,
  lrnAlpha: float = 1e-4,
  lrnBeta: float = 0.75,
  lrnK: float = 2.0,
  *,
  channel_axis: int = 1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce cuDNN's ``cudnnLRNCrossChannelForward``.

  cuDNN (``cudnnSetLRNDescriptor(desc, lrnN, lrnAlpha, lrnBeta, lrnK)``, mode
  ``CUDNN_LRN_CROSS_CHANNEL_DIM1``) normalizes over dimension 1 of the tensor descriptor:
  ``y = x / (lrnK + lrnAlpha/lrnN sum_{W} x^2)^lrnBeta`` (alpha divided by the window width).
  The window is ``[c - floor((N - 1) / 2), c + N - 1 - floor((N - 1) / 2)]``: for even ``N`` the
  larger half is after the centre (cudnn.h: "for n=10, the window is [k-4...k...k+5]"). The
  defaults are those of ``cudnnCreateLRNDescriptor`` (note ``lrnK = 2``), and the parameter
  bounds are cuDNN's: ``1 <= lrnN <= 16`` (``CUDNN_LRN_MIN_N``, ``CUDNN_LRN_MAX_N``),
  ``lrnK >= 1e-5``, ``lrnBeta >= 0.01``.

  Args:
    lrnN: window width.
    lrnAlpha: scale, divided by ``lrnN``.
    lrnBeta: exponent.
    lrnK: additive constant.
    channel_axis: the channel axis of the arrays the ported layer will see: cuDNN's dimension
      ``1`` (NCHW) by default, ``-1`` for NHWC (Flax's layout):
      ``jax_lrn.nnx.LocalResponseNorm(**from_cudnn(channel_axis=-1))``.

  Returns:
    ``dict(size=lrnN, alpha=lrnAlpha, beta=lrnBeta, k=lrnK, channel_axis,
    even_placement="after")``.

  Examples:
    >>> from_cudnn()  # doctest: +NORMALIZE_WHITESPACE
    {'size': 5, 'alpha': 0.0001, 'beta': 0.75, 'k': 2.0,
     'channel_axis': 1, 'even_placement': 'after'}
  """
  size = _int_arg(lrnN, "lrnN", "cuDNN", minimum=1)
  if size > 16:
    raise ValueError(f"cuDNN: lrnN must be <= 16 (CUDNN_LRN_MAX_N), got {size}.")
  alpha, beta, k = _params("cuDNN", lrnAlpha, lrnBeta, lrnK, names=("lrnAlpha", "lrnBeta", "lrnK"))
  _number_at_least(k, "lrnK", "cuDNN", 1e-5)
  _number_at_least(beta, "lrnBeta", "cuDNN", 0.01)
  channel_axis = _channel_axis(channel_axis, "cuDNN")
  return dict(
    size=size, alpha=alpha, beta=beta, k=k, channel_axis=channel_axis, even_placement="after"
  )


def from_mxnet(
  nsize: int,
  alpha: float = 1e-4,
  beta: float = 0.75,
  knorm: float = 2.0,
  *,
  channel_axis: int = 1,
) -> dict[str, Any]:
  r"""``lrn`` keyword arguments that reproduce MXNet's ``LRN`` operator.

  MXNet (apache/mxnet ``src/operator/nn/lrn-inl.h``, NCHW): ``tmp = chpool_sum(x^2, nsize) *
  (alpha / nsize) + knorm; y = x * tmp^-beta``, a centred window of ``nsize`` channels. ``nsize``
  must be odd (``CHECK_EQ(nsize % 2, 1)``); MXNet also requires ``nsize <= C``, which ``lrn``
  does not (larger windows are zero-padded). Note the default ``knorm = 2``.

  Args:
    nsize: window size; odd.
    alpha: scale, divided by ``nsize``.
    beta: exponent.
    knorm: additive constant.
    channel_axis: the channel axis of the arrays the ported layer will see: MXNet's NCHW ``1``
      by default, ``-1`` for NHWC (Flax's layout).

  Returns:
    ``dict(size=nsize, alpha, beta, k=knorm, channel_axis)``.

  Examples:
    >>> from_mxnet(5)
    {'size': 5, 'alpha': 0.0001, 'beta': 0.75, 'k': 2.0, 'channel_axis': 1}
  """
  nsize = _odd_size(nsize, "nsize", "MXNet")
  alpha, beta, knorm = _params("MXNet", alpha, beta, knorm, names=("alpha", "beta", "knorm"))
  channel_axis = _channel_axis(channel_axis, "MXNet")
  return dict(size=nsize, alpha=alpha, beta=beta, k=knorm, channel_axis=channel_axis)


# ---------------------------------------------------------------------------------------------
# Drop-in functions: the framework's call, on JAX arrays.
# ---------------------------------------------------------------------------------------------


def caffe(
  x: jax.typing.ArrayLike,
  local_size: int = 5,
  alpha: float = 1.0,
  beta: float = 0.75,
  k: float = 1.0,
  norm_region: str = "ACROSS_CHANNELS",
) -> jax.Array:
  r"""Caffe's ``LRN`` layer on an NCHW array, both norm regions, as Caffe's CPU engine computes it.

  * ``ACROSS_CHANNELS``: ``y = x (k + alpha/n sum_{n channels} x^2)^-beta``.
  * ``WITHIN_CHANNEL``: ``y = x (1 + alpha/n^2 sum_{n x n box over H, W} x^2)^-beta``;
    ``k`` is ignored, as in Caffe's native engine (a concrete ``k != 1`` warns).

  See :func:`from_caffe` for the sources. Differentiable like :func:`jax_lrn.lrn`.

  Args:
    x: ``(N, C, H, W)`` floating array; Caffe requires exactly 4 axes.
    local_size: window size ``n``; odd, as Caffe requires.
    alpha: scale (Caffe's default is 1).
    beta: exponent.
    k: additive constant (across channels only).
    norm_region: ``"ACROSS_CHANNELS"`` or ``"WITHIN_CHANNEL"``.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    ValueError: ``x`` is not 4-D, ``local_size`` is even or not positive, unknown
      ``norm_region``.

  Examples:
    >>> import jax.numpy as jnp
    >>> caffe(jnp.ones((1, 3, 2, 2), jnp.float32), local_size=3, alpha=3.0, beta=1.0)[0, :, 0, 0]
    Array([0.33333334, 0.25      , 0.33333334], dtype=float32)
  """
  _check_rank(x, "Caffe", "4 (N, C, H, W)", lambda n: n == 4)
  return lrn(x, **_caffe_kwargs(local_size, alpha, beta, k, norm_region, 1, stacklevel=3))


def tensorflow(
  x: jax.typing.ArrayLike,
  depth_radius: int = 5,
  bias: float = 1.0,
  alpha: float = 1.0,
  beta: float = 0.5,
) -> jax.Array:
  r"""``tf.nn.local_response_normalization`` on an NHWC array.

  ``y = x / (bias + alpha sum_{d-r..d+r} x^2)^beta`` over the last axis, ``r = depth_radius``;
  alpha is **not** divided by the window size ``2 r + 1``. See :func:`from_tensorflow`.

  Args:
    x: ``(N, H, W, C)`` floating array; TensorFlow requires exactly 4 axes.
    depth_radius: half-width of the window (TF default 5: 11 channels); an int ``>= 0``.
    bias: additive constant.
    alpha: scale of the undivided sum.
    beta: exponent.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    ValueError: ``x`` is not 4-D, ``depth_radius < 0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tensorflow(jnp.ones((1, 1, 1, 3), jnp.float32), depth_radius=1, alpha=1.0, beta=1.0)
    Array([[[[0.33333334, 0.25      , 0.33333334]]]], dtype=float32)
  """
  _check_rank(x, "TensorFlow", "4 (N, H, W, C)", lambda n: n == 4)
  return lrn(x, **from_tensorflow(depth_radius, bias, alpha, beta))


def torch(
  x: jax.typing.ArrayLike,
  size: int,
  alpha: float = 1e-4,
  beta: float = 0.75,
  k: float = 1.0,
) -> jax.Array:
  r"""``torch.nn.functional.local_response_norm`` (and ``nn.LocalResponseNorm``).

  ``y = x / (k + alpha/size sum_{W} x^2)^beta`` across dim 1; for even ``size`` the window has
  ``size // 2`` channels before the centre and ``size // 2 - 1`` after. See :func:`from_torch`.

  Args:
    x: ``(N, C, *)`` floating array of rank ``>= 3``, as PyTorch requires.
    size: window size; a positive int (odd or even).
    alpha: scale, divided by ``size``.
    beta: exponent.
    k: additive constant.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    ValueError: rank below 3, ``size < 1``.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(1.0, 5.0, dtype=jnp.float32).reshape(1, 4, 1)
    >>> torch(x, 2, alpha=2.0, beta=1.0)[0, :, 0]  # windows {c-1, c}: y_1 = 2 / (1 + 1 + 4)
    Array([0.5       , 0.33333334, 0.21428572, 0.15384616], dtype=float32)
  """
  _check_rank(x, "PyTorch", ">= 3 (N, C, *)", lambda n: n >= 3)
  return lrn(x, **from_torch(size, alpha, beta, k))


def onnx(
  x: jax.typing.ArrayLike,
  size: int,
  alpha: float = 1e-4,
  beta: float = 0.75,
  bias: float = 1.0,
) -> jax.Array:
  r"""The ONNX ``LRN`` operator.

  ``y = x / (bias + alpha/size sum_{W} x^2)^beta`` across dim 1; for even ``size`` the window has
  ``(size - 1) // 2`` channels before the centre and ``size // 2`` after (the opposite of
  PyTorch). See :func:`from_onnx`.

  Args:
    x: ``(N, C, D1, ..., Dk)`` floating array of rank ``>= 3`` (onnxruntime's CPU kernel takes
      4-D only).
    size: window size; a positive int (odd or even).
    alpha: scale, divided by ``size``.
    beta: exponent.
    bias: additive constant.

  Returns:
    Array of the shape and dtype of ``x``.

  Raises:
    ValueError: rank below 3, ``size < 1``.

  Examples:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(1.0, 5.0, dtype=jnp.float32).reshape(1, 4, 1)
    >>> onnx(x, 2, alpha=2.0, beta=1.0)[0, :, 0]  # windows {c, c+1}: y_1 = 2 / (1 + 4 + 9)
    Array([0.16666667, 0.14285715, 0.11538462, 0.23529412], dtype=float32)
  """
  _check_rank(x, "ONNX", ">= 3 (N, C, D1, ...)", lambda n: n >= 3)
  return lrn(x, **from_onnx(size, alpha, beta, bias))
