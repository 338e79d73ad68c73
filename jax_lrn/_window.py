"""Static window configuration and the window sums LRN is built on.

Everything here is static (hashable, resolved at trace time) except the arrays passed to
:func:`window_sum` and :func:`window_sum_transpose`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jax import lax

EVEN_PLACEMENTS = ("before", "after")


def window_extent(size: int, even_placement: str) -> tuple[int, int]:
  """Returns ``(lo, hi)``: how many elements the window covers before and after the centre.

  ``lo + hi + 1 == size``. Odd sizes are centred. For even sizes ``"before"`` puts the larger
  half before the centre (PyTorch, cuda-convnet) and ``"after"`` puts it after (ONNX, cuDNN,
  MatConvNet).
  """
  if even_placement == "before":
    return size // 2, (size - 1) // 2
  return (size - 1) // 2, size // 2


@dataclasses.dataclass(frozen=True)
class WindowConfig:
  """Canonical, hashable description of one LRN window.

  Attributes:
    axes: non-negative axes the window spans (one for ``across_channels``, one per spatial axis
      for ``within_channel``), in increasing order.
    size: window length along each of ``axes``.
    lo: elements before the centre along each axis; the window is ``[i - lo, i + hi]``.
    hi: elements after the centre.
    count: the divisor ``n`` of ``alpha / n``: ``size ** len(axes)``.
    static_beta: ``beta`` as a Python float when it is a compile-time constant (enables the exact
      ``rsqrt``/``sqrt`` fast paths), ``None`` when ``beta`` is traced.
  """

  axes: tuple[int, ...]
  size: int
  lo: int
  hi: int
  count: int
  static_beta: float | None


# Windows up to this size are summed as shifted adds (see :func:`window_sum`); larger ones with
# one ``lax.reduce_window`` per axis, whose cost does not grow the program with the size.
SHIFTED_MAX_SIZE = 16


def _sum_along(v, axis: int, size: int, pad: tuple[int, int]):
  window = [1] * v.ndim
  window[axis] = size
  padding = [(0, 0)] * v.ndim
  padding[axis] = pad
  # The monoid form (literal zero init, lax.add) is what gives reduce_window its transpose rule,
  # which grad-of-grad through the custom backward relies on.
  return lax.reduce_window(v, np.zeros((), v.dtype), lax.add, window, (1,) * v.ndim, padding)


def _shifted(v, axis: int, offset: int):
  """``u[i] = v[i + offset]`` along ``axis``, zero where ``i + offset`` falls outside."""
  config = [(0, 0, 0)] * v.ndim
  config[axis] = (-offset, offset, 0)  # negative padding crops: a shift by one lax.pad
  return lax.pad(v, np.zeros((), v.dtype), config)


def _shifted_sum_along(v, axis: int, pad: tuple[int, int]):
  """``sum_{d=-pad[0]}^{pad[1]} v[i + d]`` as a sum of shifted copies of ``v``."""
  extent = v.shape[axis]
  out = v
  for offset in range(-pad[0], pad[1] + 1):
    if offset != 0 and abs(offset) < extent:  # shifts past the edge contribute only zeros
      out = out + _shifted(v, axis, offset)
  return out


def _window_sum(v, cfg: WindowConfig, pad: tuple[int, int]):
  last = len(cfg.axes) - 1
  for i, axis in enumerate(cfg.axes):
    if i == last and cfg.size <= SHIFTED_MAX_SIZE:
      v = _shifted_sum_along(v, axis, pad)
    else:
      v = _sum_along(v, axis, cfg.size, pad)
  return v


def window_sum(v, cfg: WindowConfig):
  """``sum_{j in W(i)} v_j``: the zero-padded window sum, separably one axis at a time.

  The last window axis (the only one for ``across_channels``) is summed as ``size`` shifted
  copies of ``v`` (``lax.pad`` with negative padding crops one side and zero-fills the other)
  when ``size <= SHIFTED_MAX_SIZE``: XLA fuses those adds with the elementwise work around them,
  so squares, window sum, power and product become one pass over memory. Every other axis is
  one ``lax.reduce_window``: XLA:CPU never fuses a reduce_window with its producer or consumer
  (one pass of its own), which for a second spatial axis is cheaper than the 25-fold
  recomputation a fully fused 2-D window would cost.
  """
  return _window_sum(v, cfg, (cfg.lo, cfg.hi))


def window_sum_transpose(v, cfg: WindowConfig):
  """``sum_{i : j in W(i)} v_i``: the adjoint of :func:`window_sum` (the mirrored window).

  Equal to :func:`window_sum` for odd sizes; for even sizes the padding is swapped.
  """
  return _window_sum(v, cfg, (cfg.hi, cfg.lo))
