"""Static window configuration and the window sums LRN is built on.

Everything here is static (hashable, resolved at trace time) except the arrays passed to
:func:`window_sum` and :func:`window_sum_transpose`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax import lax
from jax.sharding import AxisType

from jax_lrn._power import has_fast_path

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


def _explicit_mesh_axes(v, axis: int) -> tuple[str, ...]:
  """The mesh axes of an ``Explicit`` mesh that shard ``axis`` of ``v`` (usually none)."""
  sharding = jax.typeof(v).sharding
  spec, mesh = getattr(sharding, "spec", ()), getattr(sharding, "mesh", None)
  if mesh is None:
    return ()
  entry = spec[axis] if axis < len(spec) else None
  names = (entry,) if isinstance(entry, str) else tuple(entry or ())
  return tuple(
    name for name in names if mesh.axis_types[mesh.axis_names.index(name)] == AxisType.Explicit
  )


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


def _shifted_sum_along(v, axis: int, pad: tuple[int, int], pad_once: bool):
  """``sum_{d=-pad[0]}^{pad[1]} v[i + d]`` as a sum of shifted copies of ``v``.

  Along the minor (last) axis with ``pad_once`` the array is zero-padded once and the copies
  are static slices of it (plain offset loads, which vectorise); elsewhere each copy is its own
  ``lax.pad`` with negative padding, which fuses without materialising anything.
  """
  extent = v.shape[axis]
  if pad_once and axis == v.ndim - 1:
    config = [(0, 0, 0)] * v.ndim
    config[axis] = (pad[0], pad[1], 0)
    padded = lax.pad(v, np.zeros((), v.dtype), config)
    out = None
    for start in range(pad[0] + pad[1] + 1):
      part = lax.slice_in_dim(padded, start, start + extent, axis=axis)
      out = part if out is None else out + part
    return out
  out = v
  for offset in range(-pad[0], pad[1] + 1):
    if offset != 0 and abs(offset) < extent:  # shifts past the edge contribute only zeros
      out = out + _shifted(v, axis, offset)
  return out


def _window_sum(v, cfg: WindowConfig, pad: tuple[int, int], pad_once: bool):
  fuse = cfg.size <= SHIFTED_MAX_SIZE and has_fast_path(cfg.static_beta)
  last = len(cfg.axes) - 1
  for i, axis in enumerate(cfg.axes):
    if i == last and fuse:
      sum_along = functools.partial(_shifted_sum_along, axis=axis, pad=pad, pad_once=pad_once)
    else:
      sum_along = functools.partial(_sum_along, axis=axis, size=cfg.size, pad=pad)
    explicit = _explicit_mesh_axes(v, axis)
    if explicit:
      # On an Explicit mesh, JAX's sharding-in-types rules reject padding a sharded axis (the
      # shifted sums pad, and so does the transpose of reduce_window in grad-of-grad). Inside
      # auto_axes the SPMD partitioner handles it with halo exchanges (collective-permutes),
      # and the result keeps v's sharding.
      sharding = jax.typeof(v).sharding
      sum_along = jax.sharding.auto_axes(sum_along, axes=explicit, out_sharding=sharding)
    v = sum_along(v)
  return v


def window_sum(v, cfg: WindowConfig):
  """``sum_{j in W(i)} v_j``: the zero-padded window sum, separably one axis at a time.

  When the power has an exact ``rsqrt``/``sqrt`` form (``cfg.static_beta``, see
  :func:`jax_lrn._power.has_fast_path`) and ``size <= SHIFTED_MAX_SIZE``, the last window axis
  (the only one for ``across_channels``) is summed as ``size`` shifted copies of ``v``: XLA fuses
  those adds with the elementwise work around them, so squares, window sum, power and product
  become one pass over memory. Every other axis, and every axis for other exponents, is one
  ``lax.reduce_window``, which XLA:CPU never fuses with its producer or consumer (one pass of its
  own). Measured on XLA:CPU: a fully fused 2-D window (25-fold recomputation) and a fused
  ``exp``/``log`` power both run slower than that extra pass.
  """
  return _window_sum(v, cfg, (cfg.lo, cfg.hi), True)


def window_sum_transpose(v, cfg: WindowConfig, *, pad_once: bool = False):
  """``sum_{i : j in W(i)} v_i``: the adjoint of :func:`window_sum` (the mirrored window).

  Equal to :func:`window_sum` for odd sizes; for even sizes the padding is swapped. Along the
  minor axis it pads once only with ``pad_once`` (the backward sets it for 16-bit inputs): there
  the widening of each shifted read costs more than storing the padded array once; for float32
  it is the other way round (measured on XLA:CPU).
  """
  return _window_sum(v, cfg, (cfg.hi, cfg.lo), pad_once)
