"""Caffe's CPU LRN layer, transcribed into NumPy float32 (Caffe is not pip-installable).

Followed line by line, from BVLC/caffe (files as read at commits lrn_layer.cpp baafcd1,
pooling_layer.cpp 25a4973, power_layer.cpp 310574f, eltwise_layer.cpp f19b401, split_layer.cpp
ea85572; ``stable_prod_grad`` defaults to true in ``EltwiseParameter``, caffe.proto):

* ``src/caffe/layers/lrn_layer.cpp``
  - ``LayerSetUp``: ``CHECK_EQ(size_ % 2, 1)``, ``pre_pad_ = (size_ - 1) / 2``; for
    ``WITHIN_CHANNEL`` the sub-layer chain split -> power(power=2) -> pooling(AVE,
    kernel_size=size_, pad=pre_pad_) -> power(power=-beta_, scale=alpha_, shift=1) -> eltwise PROD.
  - ``Reshape``: ``CHECK_EQ(4, bottom[0]->num_axes())``.
  - ``CrossChannelForward_cpu``: scale starts at ``k_``; a zero-padded buffer of
    ``channels_ + size_ - 1`` squared channels; running sum with
    ``alpha_over_size = alpha_ / size_`` (first channel: ``size_`` axpys; then copy previous,
    add head, subtract tail); output ``powx(scale, -beta_) * bottom``.
  - ``CrossChannelBackward_cpu``: ``bottom_diff = powx(scale, -beta_) * top_diff``;
    ``padded_ratio[inverse_pre_pad + c] = top_diff * top_data / scale`` with
    ``inverse_pre_pad = size_ - (size_ + 1) / 2``; running ``accum_ratio``;
    ``bottom_diff -= cache_ratio_value * bottom_data * accum_ratio`` with
    ``cache_ratio_value = 2 * alpha_ * beta_ / size_``.
  - ``WithinChannelForward`` / ``WithinChannelBackward``: the sub-layers' ``Forward`` in order and
    their ``Backward`` in reverse order.
* ``src/caffe/layers/pooling_layer.cpp``: ``Reshape`` (pooled size ``floor((H + 2 pad - kernel) /
  stride) + 1``); ``Forward_cpu`` / ``Backward_cpu``, case ``AVE``: ``pool_size`` is computed from
  the window clipped to ``height_ + pad_h_`` *before* clipping to the image, so padding counts
  (with ``pad = (size - 1) / 2`` and stride 1 it is always ``size * size``).
* ``src/caffe/layers/power_layer.cpp``: ``y = (shift + scale * x) ** power``, computed as copy,
  ``scal``, ``add_scalar``, ``powx``; ``Backward_cpu``: the ``power == 2`` branch
  (``2 * scale * (shift + scale * x)``) and the general branch
  ``diff_scale * y / (shift + scale * x)`` with ``diff_scale = power * scale``.
* ``src/caffe/layers/eltwise_layer.cpp``: ``PROD`` backward with ``stable_prod_grad`` (the proto
  default): the gradient of one input is the product of the others times ``top_diff``.
* ``src/caffe/layers/split_layer.cpp``: backward adds the two top diffs.

The WITHIN_CHANNEL gradient is therefore the chain of the sub-layers' own backward passes, as
Caffe runs it, not a hand-derived formula. BLAS ``axpy`` is taken as ``y + (a * x)`` (no fused
multiply-add). Nothing here imports JAX.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def _check(x, local_size):
  if x.ndim != 4:
    raise ValueError("Input must have 4 axes, corresponding to (num, channels, height, width)")
  if local_size % 2 != 1:
    raise ValueError("LRN only supports odd values for local_size")
  return np.asarray(x, F32)


def cross_channel(x, g, local_size, alpha, beta, k):
  """``CrossChannelForward_cpu`` and ``CrossChannelBackward_cpu``: ``(top, bottom_diff)``."""
  x = _check(x, local_size)
  num, channels = x.shape[:2]
  size, pre_pad = local_size, (local_size - 1) // 2
  alpha, beta, k = F32(alpha), F32(beta), F32(k)
  # Forward.
  scale = np.full(x.shape, k, F32)
  padded_square = np.zeros((channels + size - 1, *x.shape[2:]), F32)
  alpha_over_size = F32(alpha / F32(size))
  for n in range(num):
    padded_square[pre_pad : pre_pad + channels] = x[n] * x[n]
    for c in range(size):
      scale[n, 0] = scale[n, 0] + alpha_over_size * padded_square[c]
    for c in range(1, channels):
      scale[n, c] = scale[n, c - 1]
      scale[n, c] = scale[n, c] + alpha_over_size * padded_square[c + size - 1]
      scale[n, c] = scale[n, c] + (-alpha_over_size) * padded_square[c - 1]
  top = np.power(scale, -beta) * x
  # Backward.
  g = np.asarray(g, F32)
  cache_ratio_value = F32(2.0 * float(alpha) * float(beta) / size)
  bottom_diff = g * np.power(scale, -beta)
  padded_ratio = np.zeros((channels + size - 1, *x.shape[2:]), F32)
  inverse_pre_pad = size - (size + 1) // 2
  for n in range(num):
    padded_ratio[inverse_pre_pad : inverse_pre_pad + channels] = g[n] * top[n]
    padded_ratio[inverse_pre_pad : inverse_pre_pad + channels] /= scale[n]
    accum_ratio = np.zeros(x.shape[2:], F32)
    for c in range(size - 1):
      accum_ratio = accum_ratio + padded_ratio[c]
    for c in range(channels):
      accum_ratio = accum_ratio + padded_ratio[c + size - 1]
      accum_ratio_times_bottom = x[n, c] * accum_ratio
      bottom_diff[n, c] = bottom_diff[n, c] + (-cache_ratio_value) * accum_ratio_times_bottom
      accum_ratio = accum_ratio + F32(-1.0) * padded_ratio[c]
  return top, bottom_diff


def _ave_pool_geometry(height, width, size, pad):
  """PoolingLayer::Reshape for kernel ``size``, stride 1, ``pad`` and FLOOR rounding."""
  pooled_h = (height + 2 * pad - size) // 1 + 1
  pooled_w = (width + 2 * pad - size) // 1 + 1
  if (pooled_h - 1) >= height + pad:
    pooled_h -= 1
  if (pooled_w - 1) >= width + pad:
    pooled_w -= 1
  return pooled_h, pooled_w


def _pool_size(ph, pw, height, width, size, pad):
  hstart, wstart = ph - pad, pw - pad
  hend = min(hstart + size, height + pad)
  wend = min(wstart + size, width + pad)
  return (hend - hstart) * (wend - wstart)


def _ave_pool_forward(bottom, size, pad):
  num, channels, height, width = bottom.shape
  pooled_h, pooled_w = _ave_pool_geometry(height, width, size, pad)
  top = np.zeros((num, channels, pooled_h, pooled_w), F32)
  for ph in range(pooled_h):
    for pw in range(pooled_w):
      hstart, wstart = ph - pad, pw - pad
      pool_size = _pool_size(ph, pw, height, width, size, pad)
      acc = np.zeros((num, channels), F32)
      for h in range(max(hstart, 0), min(hstart + size, height + pad, height)):
        for w in range(max(wstart, 0), min(wstart + size, width + pad, width)):
          acc = acc + bottom[:, :, h, w]
      top[:, :, ph, pw] = acc / F32(pool_size)
  return top


def _ave_pool_backward(top_diff, bottom_shape, size, pad):
  num, channels, height, width = bottom_shape
  pooled_h, pooled_w = top_diff.shape[2:]
  bottom_diff = np.zeros(bottom_shape, F32)
  for ph in range(pooled_h):
    for pw in range(pooled_w):
      hstart, wstart = ph - pad, pw - pad
      pool_size = _pool_size(ph, pw, height, width, size, pad)
      share = top_diff[:, :, ph, pw] / F32(pool_size)
      for h in range(max(hstart, 0), min(hstart + size, height + pad, height)):
        for w in range(max(wstart, 0), min(wstart + size, width + pad, width)):
          bottom_diff[:, :, h, w] = bottom_diff[:, :, h, w] + share
  return bottom_diff


def _power_forward(bottom, power, scale, shift):
  top = bottom.copy()
  if scale != 1:
    top = top * scale
  if shift != 0:
    top = top + shift
  if power != 1:
    top = np.power(top, power)
  return top


def _power_backward(top_diff, top, bottom, power, scale, shift):
  # diff_scale_ != 0 and power_ != 1 in every use here (alpha > 0, beta != 0 and -1, power 2).
  diff_scale = F32(power * scale)
  if power == 2:
    bottom_diff = (diff_scale * scale) * bottom
    if shift != 0:
      bottom_diff = bottom_diff + diff_scale * shift
  else:
    bottom_diff = bottom.copy()
    if scale != 1:
      bottom_diff = bottom_diff * scale
    if shift != 0:
      bottom_diff = bottom_diff + shift
    bottom_diff = top / bottom_diff
    if diff_scale != 1:
      bottom_diff = bottom_diff * diff_scale
  return top_diff * bottom_diff


def within_channel(x, g, local_size, alpha, beta):
  """``WithinChannelForward`` and ``WithinChannelBackward``; returns ``(top, bottom_diff)``.

  There is no ``k``: the power layer's shift is hard-coded to 1.
  """
  x = _check(x, local_size)
  pre_pad = (local_size - 1) // 2
  alpha, beta, one, two = F32(alpha), F32(beta), F32(1), F32(2)
  if alpha == 0 or beta == 0 or beta == -1:
    raise ValueError("the transcription covers alpha != 0 and beta not in {0, -1} only")
  # Forward: split, square, pool, power, product.
  product_input = square_input = x
  square_output = _power_forward(square_input, two, one, F32(0))
  pool_output = _ave_pool_forward(square_output, local_size, pre_pad)
  assert pool_output.shape == x.shape
  power_output = _power_forward(pool_output, -beta, alpha, one)
  top = product_input * power_output
  # Backward, in reverse order.
  g = np.asarray(g, F32)
  product_input_diff = power_output * g  # stable_prod_grad: the other input times top_diff
  power_output_diff = product_input * g
  pool_output_diff = _power_backward(
    power_output_diff, power_output, pool_output, -beta, alpha, one
  )
  square_output_diff = _ave_pool_backward(pool_output_diff, x.shape, local_size, pre_pad)
  square_input_diff = _power_backward(square_output_diff, square_output, square_input, two, one, 0)
  bottom_diff = product_input_diff + square_input_diff  # SplitLayer::Backward_cpu
  return top, bottom_diff
