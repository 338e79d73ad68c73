"""Static window configuration and the ``lax.reduce_window`` sums LRN is built on.

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


def _sum_along(v, axis: int, size: int, pad: tuple[int, int]):
  window = [1] * v.ndim
  window[axis] = size
  padding = [(0, 0)] * v.ndim
  padding[axis] = pad
  # The monoid form (literal zero init, lax.add) is what gives reduce_window its transpose rule,
  # which grad-of-grad through the custom backward relies on.
  return lax.reduce_window(v, np.zeros((), v.dtype), lax.add, window, (1,) * v.ndim, padding)


def window_sum(v, cfg: WindowConfig):
  """``sum_{j in W(i)} v_j``: the zero-padded window sum, separably one axis at a time."""
  for axis in cfg.axes:
    v = _sum_along(v, axis, cfg.size, (cfg.lo, cfg.hi))
  return v


def window_sum_transpose(v, cfg: WindowConfig):
  """``sum_{i : j in W(i)} v_i``: the adjoint of :func:`window_sum` (the mirrored window).

  Equal to :func:`window_sum` for odd sizes; for even sizes the padding is swapped.
  """
  for axis in cfg.axes:
    v = _sum_along(v, axis, cfg.size, (cfg.hi, cfg.lo))
  return v
