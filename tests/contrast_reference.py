"""Float64 NumPy oracles for the contrast normalizations, written from the formulas and the
original sources (Torch7's Lua modules, cuda-convnet2's CUDA kernels), never from jax_lrn.

Each is a plain loop or a module-by-module transcription, slow and literal on purpose.
"""

import itertools
import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# Jarrett et al. 2009 local contrast normalization, from the formula.
# ---------------------------------------------------------------------------------------------


def _gaussian(size, sigma):
  lo = size // 2
  d = np.arange(size) - lo
  return np.exp(-(d**2) / (2.0 * sigma**2)), lo


def lcn(x, size, sigma=None, channel_axis=-1, spatial_axes=(1, 2), eps=1e-4, steps="both"):
  """``steps``: "both", "subtractive" or "divisive"."""
  x = np.asarray(x, np.float64)
  sigma = math.sqrt(size) / 2 if sigma is None else sigma
  g, lo = _gaussian(size, sigma)
  channel_axis %= x.ndim
  spatial = [a % x.ndim for a in spatial_axes]
  sample_axes = [a for a in range(x.ndim) if a != channel_axis and a not in spatial]
  order = sample_axes + spatial + [channel_axis]
  moved = np.transpose(x, order)
  sample_shape = moved.shape[: len(sample_axes)]
  space = moved.shape[len(sample_axes) : -1]
  moved = moved.reshape((-1, *space, moved.shape[-1]))
  out = np.empty_like(moved)

  def weighted_mean(field, p):
    """sum_q w(q - p) field[q] / sum_q w(q - p), q in the window and in the image."""
    total = mass = 0.0
    for q in itertools.product(*[range(pa - lo, pa - lo + size) for pa in p]):
      if all(0 <= qa < n for qa, n in zip(q, space)):
        w = np.prod([g[qa - pa + lo] for qa, pa in zip(q, p)])
        total += w * field[q]
        mass += w
    return total / mass

  for s in range(moved.shape[0]):
    sample = moved[s]
    v = sample.copy()
    if steps in ("both", "subtractive"):
      channel_mean = sample.mean(axis=-1)
      for p in np.ndindex(*space):
        v[p] = sample[p] - weighted_mean(channel_mean, p)
    if steps in ("both", "divisive"):
      sq = (v * v).mean(axis=-1)
      local = np.empty(space)
      for p in np.ndindex(*space):
        local[p] = math.sqrt(weighted_mean(sq, p))
      c = local.mean()
      v = v / np.maximum(np.maximum(local, c), eps)[..., None]
    out[s] = v
  out = out.reshape((*sample_shape, *space, x.shape[channel_axis]))
  return np.transpose(out, np.argsort(order))


# ---------------------------------------------------------------------------------------------
# Torch7 nn.Spatial{Subtractive,Divisive,Contrastive}Normalization, module by module.
# ---------------------------------------------------------------------------------------------


def _zero_padding(x, pad_w, pad_h):
  """nn.SpatialZeroPadding(padW, padW, padH, padH) on (planes, H, W)."""
  return np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)))


def _conv_valid(plane, weight):
  """One plane cross-correlated with weight (kH, kW), 'valid' (SpatialConvolution's loop)."""
  kh, kw = weight.shape
  h, w = plane.shape[0] - kh + 1, plane.shape[1] - kw + 1
  out = np.zeros((h, w))
  for i in range(h):
    for j in range(w):
      out[i, j] = np.sum(plane[i : i + kh, j : j + kw] * weight)
  return out


def _estimator(x, kernel, square=False, sqrt=False):
  """meanestimator / stdestimator of torch/nn at 7dc33c1 / b4ebdf2 for one (planes, H, W)."""
  planes = x.shape[0]
  if square:
    x = x * x  # nn.Square
  kdim = kernel.ndim
  pad_h = kernel.shape[0] // 2
  pad_w = kernel.shape[1] // 2 if kdim == 2 else pad_h
  x = _zero_padding(x, pad_w, pad_h)
  if kdim == 2:
    # nn.SpatialConvolution(planes, 1, kW, kH), weight[1][i] = kernel, bias 0
    out = sum(_conv_valid(x[i], kernel) for i in range(planes))
  else:
    # nn.SpatialConvolutionMap(oneToOne, kW=k, kH=1): each plane along W with the kernel
    horizontal = np.stack([_conv_valid(x[i], kernel[None, :]) for i in range(planes)])
    # nn.SpatialConvolution(planes, 1, 1, k): along H, summed over planes
    out = sum(_conv_valid(horizontal[i], kernel[:, None]) for i in range(planes))
  out = np.broadcast_to(out, (planes, *out.shape)).copy()  # nn.Replicate(planes, 1, 3)
  if sqrt:
    out = np.sqrt(out)  # nn.Sqrt
  return out


def _per_sample(fn, x):
  x = np.asarray(x, np.float64)
  if x.ndim == 4:
    return np.stack([fn(sample) for sample in x])
  return fn(x)


def torch7_ssn(x, kernel):
  """SpatialSubtractiveNormalization:__init + updateOutput. Returns (output, kernel after the
  in-place division, which SpatialContrastiveNormalization then hands to the divisive module)."""
  kernel = np.array(kernel, np.float64)
  planes = np.shape(x)[-3]
  kernel = kernel / (kernel.sum() * planes)  # self.kernel:div(self.kernel:sum() * nInputPlane)

  def one(sample):
    coef = _estimator(np.ones_like(sample), kernel)
    localsums = _estimator(sample, kernel)
    adjustedsums = localsums / coef  # nn.CDivTable
    return sample - adjustedsums  # nn.CSubTable

  return _per_sample(one, x), kernel


def torch7_sdn(x, kernel, threshold=1e-4, thresval=None):
  """SpatialDivisiveNormalization:__init + updateOutput."""
  kernel = np.array(kernel, np.float64)
  thresval = threshold if thresval is None else thresval  # thresval or threshold or 1e-4
  planes = np.shape(x)[-3]
  if kernel.ndim == 2:
    kernel = kernel / (kernel.sum() * planes)
  else:
    kernel = kernel / (kernel.sum() * math.sqrt(planes))

  def one(sample):
    localstds = _estimator(sample, kernel, square=True, sqrt=True)
    coef = _estimator(np.ones_like(sample), kernel)
    adjustedstds = localstds / coef
    thresholded = np.where(adjustedstds > threshold, adjustedstds, thresval)  # nn.Threshold
    return sample / thresholded

  return _per_sample(one, x)


def torch7_scn(x, kernel, threshold=1e-4, thresval=None):
  """SpatialContrastiveNormalization: Sequential{SSN(kernel), SDN(kernel, ...)}, sharing (and
  mutating) the kernel tensor as the Lua code does."""
  centred, kernel = torch7_ssn(x, kernel)
  return torch7_sdn(centred, kernel, threshold, thresval)


# ---------------------------------------------------------------------------------------------
# cuda-convnet2 kernels (conv_util.cu), as loops; x is NCHW.
# ---------------------------------------------------------------------------------------------


def _spatial_window(p, size, extent):
  start = p - size // 2  # startX = px - sizeX/2 (C int division of a non-negative size)
  return range(max(0, start), min(extent, start + size))


def _local_avg(x, size):
  """convLocalPool(images, size, start=-size/2, stride 1, AvgPooler<false>): sum / regionSize
  over the clipped window."""
  n, c, h, w = x.shape
  out = np.empty_like(x)
  for i in range(h):
    for j in range(w):
      rows, cols = _spatial_window(i, size, h), _spatial_window(j, size, w)
      region = x[:, :, rows.start : rows.stop, cols.start : cols.stop]
      out[:, :, i, j] = region.sum(axis=(2, 3)) / (len(rows) * len(cols))
  return out


def _spatial_norm(images, mean_diffs, size, add_scale, pow_, min_div):
  """kCNorm*: d = minDiv + addScale * sum_window meanDiffs^2; target = images * d^-pow."""
  n, c, h, w = images.shape
  out = np.empty_like(images)
  for i in range(h):
    for j in range(w):
      rows, cols = _spatial_window(i, size, h), _spatial_window(j, size, w)
      region = mean_diffs[:, :, rows.start : rows.stop, cols.start : cols.stop]
      d = min_div + add_scale * (region**2).sum(axis=(2, 3))
      out[:, :, i, j] = images[:, :, i, j] * d ** (-pow_)
  return out


def cuda_convnet(x, layer, size, scale, pow_, min_div=1.0, blocked=False):
  x = np.asarray(x, np.float64)
  # NormLayerParser: scale /= size if cmrnorm else size**2
  add_scale = scale / size if layer == "cmrnorm" else scale / size**2
  if layer == "rnorm":
    return _spatial_norm(x, x, size, add_scale, pow_, min_div)
  if layer == "cnorm":
    mean_diffs = x - _local_avg(x, size)  # meanDiffs.add(images, -1, 1)
    return _spatial_norm(x, mean_diffs, size, add_scale, pow_, min_div)
  # kFCNorm
  n, channels, h, w = x.shape
  out = np.empty_like(x)
  for f in range(channels):
    start = (f // size) * size if blocked else f - size // 2
    loop_start = start if blocked else max(0, start)
    loop_end = min(channels, start + size)
    d = min_div + add_scale * (x[:, loop_start:loop_end] ** 2).sum(axis=1)
    out[:, f] = x[:, f] * d ** (-pow_)
  return out
