"""Static window configuration and the ``lax.reduce_window`` sums LRN is built on.

Everything here is static (hashable, resolved at trace time) except the arrays passed to
:func:`window_sum` and :func:`window_sum_transpose`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax import lax
from jax.sharding import AxisType

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


def _explicit_mesh_axes(v, axis: int) -> tuple[str, ...]:
  """The mesh axes of an ``Explicit`` mesh that shard ``axis`` of ``v`` (usually none)."""
  sharding = jax.typeof(v).sharding
  spec, mesh = getattr(sharding, "spec", ()), getattr(sharding, "mesh", None)
  entry = spec[axis] if mesh is not None and axis < len(spec) else None
  names = (entry,) if isinstance(entry, str) else tuple(entry or ())
  return tuple(
    name for name in names if mesh.axis_types[mesh.axis_names.index(name)] == AxisType.Explicit
  )


def _sum_along(v, axis: int, size: int, pad: tuple[int, int]):
  window = [1] * v.ndim
  window[axis] = size
  padding = [(0, 0)] * v.ndim
  padding[axis] = pad

  def windowed_sum(v):
    # The monoid form (literal zero init, lax.add) is what gives reduce_window its transpose
    # rule, which grad-of-grad through the custom backward relies on.
    return lax.reduce_window(v, np.zeros((), v.dtype), lax.add, window, (1,) * v.ndim, padding)

  explicit = _explicit_mesh_axes(v, axis)
  if explicit:
    # On an Explicit mesh, JAX's sharding-in-types rules reject the padding that the transpose
    # of a windowed sum over a sharded axis introduces (grad-of-grad). Inside auto_axes the
    # SPMD partitioner handles it, with halo exchanges (collective-permutes), and the result
    # keeps v's sharding.
    return jax.sharding.auto_axes(windowed_sum, axes=explicit, out_sharding=jax.typeof(v).sharding)(
      v
    )
  return windowed_sum(v)


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
