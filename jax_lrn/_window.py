"""Static window configuration and the window sums LRN is built on.

Everything here is static (hashable, resolved at trace time) except the arrays passed to the
window sums. A window spans one axis (``across_channels``) or several (``within_channel``) and is
summed separably, one axis at a time, by one of five implementations:

* ``"shifted"``: ``size`` shifted copies of the array (each a ``lax.pad`` with negative
  padding) added together. XLA fuses them with the elementwise work before and after, so on
  XLA:CPU squares, window sum, power and product are one loop over memory.
* ``"reduce_window"``: one ``lax.reduce_window`` per axis, a single operation whose program does
  not grow with the window. XLA:CPU never fuses it with its producer or consumer (an extra pass
  over memory); XLA:GPU fuses it with both.
* ``"shifted_squares"``: the window of squares squares shifted copies of ``x`` itself (in its
  own dtype, widened after the shift) along the last window axis, so that no array of squares
  exists; the backward's other window sums are ``reduce_window``s (:func:`window_sum_of_squares`).
* ``"matmul"``: as ``"shifted_squares"``, but the backward's window sum of the stored cotangent
  term is a product with a banded 0/1 matrix along each window axis (a matrix unit's work, at
  ``Precision.HIGHEST``).
* ``"recompute"``: as ``"matmul"``, but across one axis (windows of up to
  ``RECOMPUTE_MAX_SIZE``) the backward's window sum of the cotangent term ``t = g y / s`` adds
  ``t`` recomputed at each shift from shifted copies of ``x`` and of the cotangent
  (:func:`recomputes`): no array but ``dx`` is written.

``implementation=None`` chooses per platform with ``lax.platform_dependent``, once per pass
(forward, backward), so a program exported for several platforms carries each one's choice:

* CPU: ``"shifted"`` (measured by ``benchmarks/bench_lrn.py``: the fused loops read each input
  and write each output once, while every ``reduce_window`` adds a pass of its own over memory;
  plain autodiff of one ``reduce_window`` was 4.5x slower in the dx-only context). Within
  channel, where the inner axis' ``reduce_window`` stores partial sums between passes, float32
  and float64 arrays of several ``CPU_BLOCK_ELEMENTS`` whose last axis is not in the window
  (NHWC) are computed in blocks of rows of axis 0 (:func:`in_blocks`), so that those passes
  stay in the caches.
* GPU (CUDA): ``"reduce_window"`` across channels, ``"shifted_squares"`` within channel,
  measured by ``benchmarks/device_check.py`` on an H200 (two runs, 36 shapes x layouts x
  dtypes): within channel the squares of shifts took 0.72x ``reduce_window``'s time for y and
  dx (0.58-0.90x, faster in every row), 0.92x forward and 1.01x dx only (geometric means);
  across channels they were even overall (forward 0.88x, dx only 0.99x, y and dx 0.96x) but up
  to 1.32x slower on float32 NHWC gradients, so ``reduce_window`` stays there. XLA:GPU fuses
  ``reduce_window`` with its elementwise producers and consumers. ROCm: ``"reduce_window"``
  (not measured).
* TPU: ``"recompute"`` across channels, ``"shifted_squares"`` within channel, chosen by
  XLA:TPU's own cost analysis of programs compiled ahead of time for v4, v5e, v5p and v6e
  (``benchmarks/tpu_aot.py``; no TPU has run them). Squaring before shifting made XLA:TPU store
  ``x*x`` and read it back at every shift (forward 5.5x the elementwise pass's bytes, against
  1.0x for the squares of shifts); the recomputed cotangent window makes the backward one loop
  fusion that reads ``x`` and the cotangent once and writes ``dx`` (dx only 1.5x, against 2.5x
  for the banded product, whose matrix-unit fusion reads both twice, and 6x with a
  ``reduce_window``), and with ``jax.vjp`` XLA:TPU computes the forward's ``y`` in that same
  fusion (2.0x, against 5.5x).

Windows longer than ``SHIFTED_MAX_SIZE`` along an axis always use ``reduce_window`` (the shifted
form's program grows with the size). Windows longer than their axis are clipped to it (elements
past the edge are zeros either way), so the work never grows with ``size`` beyond the array.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType

EVEN_PLACEMENTS = ("before", "after")
IMPLEMENTATIONS = ("shifted", "reduce_window", "shifted_squares", "matmul", "recompute")
# The implementations whose window of squares squares shifted copies of x (no x*x array).
SQUARES_OF_SHIFTS = ("shifted_squares", "matmul", "recompute")

# "recompute" recomputes the backward's cotangent terms at every shift of the window from
# shifted copies of x and the cotangent: its work grows with the square of the window's length,
# so longer windows (and windows over several axes) take "matmul"'s backward. By XLA:TPU's
# optimal_seconds (conv1, bfloat16, v6e, dx only) size 5 takes 1.71x the elementwise pass, 7
# 2.4x and 9 3.08x, against 2.5x for the banded product's (the bytes stay 1.5x against 2.5x).
RECOMPUTE_MAX_SIZE = 7

# Windows longer than this along an axis are summed with reduce_window whatever the platform.
SHIFTED_MAX_SIZE = 16

# On CPU, float32 and float64 within-channel windows that leave the last axis out (NHWC) over
# arrays of at least two blocks of this many elements are computed in blocks of whole rows of
# axis 0, so that each block's passes read and write the caches rather than memory (see
# in_blocks and _block_rows). 2**21 float32 elements are 8 MiB: a block's x, its
# partial sums and its output fit in a 32 MiB last-level cache.
CPU_BLOCK_ELEMENTS = 1 << 21


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
    count: the divisor ``n`` of ``alpha / n``: ``size ** len(axes)`` as a float (``inf``
      beyond float's range).
    static_beta: ``beta`` as a Python float when it is a compile-time constant (enables the exact
      ``sqrt`` fast paths), ``None`` when ``beta`` is traced.
    implementation: ``"shifted"``, ``"reduce_window"``, or ``None`` for the platform's choice.
  """

  axes: tuple[int, ...]
  size: int
  lo: int
  hi: int
  count: float
  static_beta: float | None
  implementation: str | None = None


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


def _clipped(pad: tuple[int, int], extent) -> tuple:
  """The window's reach ``(before, after)`` clipped to an axis of ``extent`` elements.

  Elements more than ``extent - 1`` away lie outside the array (zeros), so a longer reach sums
  the same values. A symbolic extent (``jax.export``) gives a symbolic reach
  ``min(pad, extent - 1)`` (a ``reduce_window`` with a window size known only when the program
  runs), so that the work is bounded by the axis there too; windows short enough for the shifted
  form keep their static reach.
  """
  if isinstance(extent, int):
    reach = max(extent - 1, 0)
    return min(pad[0], reach), min(pad[1], reach)
  if _fits_shifted(pad):
    return pad
  reach = jax.core.max_dim(extent - 1, 0)
  return jax.core.min_dim(pad[0], reach), jax.core.min_dim(pad[1], reach)


def _fits_shifted(pad: tuple) -> bool:
  """Whether a window of reach ``pad`` is short enough for the shifted form (a symbolic reach
  is not: it can be as long as its axis)."""
  return all(isinstance(p, int) for p in pad) and pad[0] + pad[1] + 1 <= SHIFTED_MAX_SIZE


def reduce_window_sum_along(v, axis: int, pad: tuple[int, int]):
  """``sum_{d=-pad[0]}^{pad[1]} v[i + d]`` along ``axis`` (zero-padded): one ``reduce_window``."""
  window = [1] * v.ndim
  window[axis] = pad[0] + pad[1] + 1
  padding = [(0, 0)] * v.ndim
  padding[axis] = pad
  # The monoid form (literal zero init, lax.add) is what gives reduce_window its transpose rule,
  # which grad-of-grad through the custom backward relies on.
  return lax.reduce_window(v, np.zeros((), v.dtype), lax.add, window, (1,) * v.ndim, padding)


def _reduce_window_over(v, axes: tuple[int, ...], pad: tuple[int, int]):
  """The window sum over every axis of ``axes`` at once: one ``reduce_window``."""
  window = [1] * v.ndim
  padding = [(0, 0)] * v.ndim
  for axis in axes:
    padding[axis] = _clipped(pad, v.shape[axis])
    window[axis] = padding[axis][0] + padding[axis][1] + 1
  return lax.reduce_window(v, np.zeros((), v.dtype), lax.add, window, (1,) * v.ndim, padding)


def shifted_by(v, axis: int, offset: int):
  """``u[i] = v[i + offset]`` along ``axis``, zero where ``i + offset`` falls outside; ``v``
  itself for offset 0."""
  if offset == 0:
    return v
  config = [(0, 0, 0)] * v.ndim
  config[axis] = (-offset, offset, 0)  # negative padding crops: a shift by one lax.pad
  return lax.pad(v, np.zeros((), v.dtype), config)


def shifted_sum_along(v, axis: int, pad: tuple[int, int]):
  """``sum_{d=-pad[0]}^{pad[1]} v[i + d]`` along ``axis`` as a sum of shifted copies of ``v``."""
  out = v
  for offset in range(-pad[0], pad[1] + 1):
    if offset != 0:
      out = out + shifted_by(v, axis, offset)
  return out


def squares_of_shifts(x, axis: int, offsets, dtype):
  """``sum_{d in offsets} x[i + d] ** 2`` along ``axis``, each shifted copy of ``x`` (in its own
  dtype) widened to ``dtype`` and squared: no array of squares exists for XLA to store."""
  out = None
  for offset in offsets:
    u = shifted_by(x, axis, offset).astype(dtype)
    out = u * u if out is None else out + u * u
  return out


def shifted_squares_along(x, axis: int, pad: tuple[int, int], dtype):
  """``sum_{d=-pad[0]}^{pad[1]} x[i + d] ** 2`` along ``axis`` (:func:`squares_of_shifts`)."""
  return squares_of_shifts(x, axis, range(-pad[0], pad[1] + 1), dtype)


def matmul_sum_along(v, axis: int, pad: tuple[int, int]):
  """``sum_{d=-pad[0]}^{pad[1]} v[i + d]`` along ``axis`` as ``v`` times a banded 0/1 matrix
  (a matrix unit's work, exact in float32: ``Precision.HIGHEST``). Symbolic extents fall back
  to ``reduce_window`` (the matrix needs the extent)."""
  extent = v.shape[axis]
  if not isinstance(extent, int):
    return reduce_window_sum_along(v, axis, pad)
  index = np.arange(extent)
  offset = index[:, None] - index[None, :]  # band[j, i] = 1 where j - i lies in the window
  band = ((offset >= -pad[0]) & (offset <= pad[1])).astype(v.dtype)
  dims = (((axis,), (0,)), ((), ()))
  out = lax.dot_general(
    v, band, dims, precision=lax.Precision.HIGHEST, preferred_element_type=v.dtype
  )
  return jnp.moveaxis(out, -1, axis)


def recomputes(cfg: WindowConfig, x) -> bool:
  """Whether the backward of ``"recompute"`` recomputes its cotangent terms at each shift (see
  :func:`jax_lrn._lrn._backward_recomputed`): a window over one axis of static extent, at most
  ``RECOMPUTE_MAX_SIZE`` long once clipped to the axis, that is not sharded explicitly."""
  if cfg.implementation != "recompute" or len(cfg.axes) != 1:
    return False
  axis = cfg.axes[0]
  if not isinstance(x.shape[axis], int) or _explicit_mesh_axes(x, axis):
    return False
  lo, hi = _clipped((cfg.lo, cfg.hi), x.shape[axis])
  return lo + hi + 1 <= RECOMPUTE_MAX_SIZE


def recomputed_shifts(cfg: WindowConfig, extent: int) -> list[tuple[int, tuple[int, ...]]]:
  """For the backward of ``"recompute"`` along an axis of ``extent`` elements: each shift ``d``
  of the mirrored window, with the shifts ``d + e`` of ``x`` that s's window at ``i + d`` sums
  (those within ``extent``: longer ones are all zeros)."""
  lo, hi = _clipped((cfg.lo, cfg.hi), extent)
  t_lo, t_hi = _clipped(_reach(cfg, transpose=True), extent)
  return [
    (d, tuple(e for e in range(d - lo, d + hi + 1) if abs(e) < extent))
    for d in range(-t_lo, t_hi + 1)
  ]


def outside_ones(shape, axis: int, offset: int, dtype):
  """An array that broadcasts to ``shape``: 1 where ``i + offset`` along ``axis`` lies outside
  the axis, 0 elsewhere (a constant of the axis' length)."""
  index = np.arange(shape[axis]) + offset
  ones = ((index < 0) | (index >= shape[axis])).astype(dtype)
  return ones.reshape([shape[axis] if a == axis else 1 for a in range(len(shape))])


def tpu_implementation(cfg: WindowConfig) -> str:
  """The TPU's choice (see the module docstring): ``"recompute"`` for one window axis (across
  channels), ``"shifted_squares"`` for several (within channel)."""
  return "recompute" if len(cfg.axes) == 1 else "shifted_squares"


def cuda_implementation(cfg: WindowConfig) -> str:
  """The CUDA GPUs' choice (see the module docstring): ``"reduce_window"`` for one window axis
  (across channels), ``"shifted_squares"`` for several (within channel)."""
  return "reduce_window" if len(cfg.axes) == 1 else "shifted_squares"


def cpu_blockable(x) -> bool:
  """Whether ``x`` may be computed in CPU blocks at all (:func:`map_blocks`): float32 or
  float64 (16-bit blocks measured slower: see :func:`_block_rows`), every extent static, and
  no axis sharded explicitly."""
  if x.dtype not in (np.float32, np.float64) or not all(isinstance(d, int) for d in x.shape):
    return False
  return not any(_explicit_mesh_axes(x, axis) for axis in range(x.ndim))


def _block_rows(x, cfg: WindowConfig) -> int | None:
  """How many rows of axis 0 each block of :func:`in_blocks` holds (the most that divide the
  axis and fit in ``CPU_BLOCK_ELEMENTS``), or ``None`` where ``x`` is not split: other than a
  float32 or float64 window over several axes none of which is the last (NHWC within channel),
  axis 0 a window axis or symbolic, an explicitly sharded array, fewer than two rows per block
  or fewer than two blocks.

  Measured with ``benchmarks/bench_lrn.py``-style rounds on AlexNet conv1 (within 5x5, the old
  and the blocked program in the same rounds, a quiet moment of a shared 2-core machine): NHWC
  float32 in blocks of 4 rows took 0.90x, 0.69x and 0.98x the time of the whole array at once
  (forward, dx only, y and dx); NCHW float32 1.25x, 0.95x and 1.37x; bfloat16 NHWC 1.69x,
  1.20x and 1.70x, so 16-bit arrays are not split (those blocks were sliced as ``uint16``
  bits: sliced as bfloat16, XLA:CPU widened the whole array to float32 before the loop, slower
  still). With glibc's default allocation, which page-faults every large output in anew,
  blocks were faster in all of those (NCHW float32 0.47x-0.67x), but the tunable that reuses
  memory is the measured default. Across channels blocks took 4-5x longer: inside the loop
  XLA:CPU fuses the block's slice of ``x`` with the shifted copies of the channel sum, which no
  longer vectorise; blocks of one row added a copy of the whole array.

  Smaller blocks were measured and not adopted (``docs/performance.md``): with 2**20 elements
  conv1's dx only took 0.78-0.95x the time of blocks of 4 rows, but conv2 (128, 27, 27, 256) in
  blocks of 4 rows took longer than in blocks of 8 (dx only 1.16x), and GoogLeNet's
  (32, 56, 56, 192), whose two rows exceed 2**20 elements, was no longer blocked (1.26-1.62x
  the time)."""
  if len(cfg.axes) < 2 or 0 in cfg.axes or x.ndim - 1 in cfg.axes or not cpu_blockable(x):
    return None
  rows, row = x.shape[0], math.prod(x.shape[1:])
  fitting = [b for b in range(2, rows + 1) if rows % b == 0 and b * row <= CPU_BLOCK_ELEMENTS]
  if not fitting or rows // max(fitting) < 2:
    return None
  return max(fitting)


def map_blocks(fn: Callable, rows: int, arrays, *shared):
  """``fn(*blocks, *shared)`` for each block of ``rows`` rows of axis 0 of every array of
  ``arrays`` (a ``fori_loop``; the arrays have equal extents along axis 0, a multiple of
  ``rows``). Every output of a block's shape (``rows`` rows of the first array) is written into
  an array of the first array's shape; every other output (a sum over the array: the
  parameters' cotangents) is the sum of the blocks' values.

  The arrays the loop writes into start as zeros computed from the loop's own last input
  (``0 * v[0]``; every row is overwritten), not as a shared constant: XLA:CPU merges equal
  constants, and two loops of one program (y and dx: the forward's and the backward's)
  updating one buffer in place then each get a copy of it, one thread copying a whole output.
  Against ``lax.map`` (whose buffers are such constants), in the same rounds with either one
  timed first (AlexNet conv1 float32 NHWC, LRN within 3x3 and 5x5, a loaded shared machine):
  y and dx took 0.71-1.01x the time with memory reused and 0.68-0.79x with glibc's default
  allocation; dx only 0.90-1.07x; forward 0.89-1.09x, and 1.14-1.42x with the default
  allocation where it ran right after the other program's y and dx (0.97x where it ran
  first)."""
  first = arrays[0]

  def block(index):
    blocks = (lax.dynamic_slice_in_dim(a, index * rows, rows) for a in arrays)
    return fn(*blocks, *shared)

  leaves, tree = jax.tree.flatten(jax.eval_shape(block, 0))
  blockwise = [leaf.shape == (rows, *first.shape[1:]) for leaf in leaves]
  zero = arrays[-1].reshape(-1)[0] * 0

  def start(leaf, whole: bool):
    if whole:
      return lax.broadcast(zero.astype(leaf.dtype), (first.shape[0], *leaf.shape[1:]))
    return jnp.zeros(leaf.shape, leaf.dtype)

  def body(index, outs):
    new = jax.tree.leaves(block(index))
    return [
      lax.dynamic_update_slice_in_dim(out, part, index * rows, 0) if whole else out + part
      for out, part, whole in zip(outs, new, blockwise)
    ]

  init = [start(leaf, whole) for leaf, whole in zip(leaves, blockwise)]
  return jax.tree.unflatten(tree, lax.fori_loop(0, first.shape[0] // rows, body, init))


def in_blocks(fn: Callable, cfg: WindowConfig, x, *args):
  """``fn(cfg, x, *args)`` computed block by block along axis 0 (:func:`map_blocks`), so that
  what one block's passes store between them stays in the CPU's caches instead of going to
  memory.

  Every argument of ``x``'s shape (``x``, the cotangent) is sliced into blocks; every output of
  a block's shape is put back together into an array of ``x``'s shape, and every scalar output
  (a sum over the array: the parameters' cotangents) is the sum of the blocks' values. Where
  :func:`_block_rows` says no, it is ``fn(cfg, x, *args)`` itself."""
  rows = _block_rows(x, cfg)
  if rows is None:
    return fn(cfg, x, *args)
  split = [i for i, a in enumerate(args) if getattr(a, "shape", None) == x.shape]

  def block(x_block, *others):
    block_args = list(args)
    for i, part in zip(split, others):
      block_args[i] = part
    return fn(cfg, x_block, *block_args)

  return map_blocks(block, rows, [x, *(args[i] for i in split)])


def per_platform(fn: Callable, cfg: WindowConfig, *args):
  """``fn(cfg, *args)``; where ``cfg.implementation`` is ``None``, one call per platform with
  that platform's implementation, chosen by ``lax.platform_dependent`` (a program lowered for
  one platform contains only its own). On CPU the call goes through :func:`in_blocks` (its
  first argument is the array)."""
  if cfg.implementation is not None:
    return fn(cfg, *args)

  def using(implementation: str) -> Callable:
    return functools.partial(fn, dataclasses.replace(cfg, implementation=implementation))

  shifted = dataclasses.replace(cfg, implementation="shifted")
  return lax.platform_dependent(
    *args,
    cpu=lambda *args: in_blocks(fn, shifted, *args),
    cuda=using(cuda_implementation(cfg)),
    tpu=using(tpu_implementation(cfg)),
    default=using("reduce_window"),
  )


def _sum_along(v, axis: int, pad: tuple[int, int], implementation: str | None):
  pad = _clipped(pad, v.shape[axis])
  if implementation == "matmul":
    chosen = matmul_sum_along
  elif implementation == "reduce_window" or not _fits_shifted(pad):
    chosen = reduce_window_sum_along
  elif implementation == "shifted":
    chosen = shifted_sum_along
  else:
    raise ValueError(f"a window sum needs a concrete implementation, got {implementation!r}")
  return _on_mesh(functools.partial(chosen, axis=axis, pad=pad), v, axis)


def _on_mesh(sum_along: Callable, v, axis: int):
  """``sum_along(v)``, inside ``auto_axes`` where ``axis`` of ``v`` is sharded explicitly."""
  explicit = _explicit_mesh_axes(v, axis)
  if explicit:
    # On an Explicit mesh, JAX's sharding-in-types rules reject padding a sharded axis (both
    # implementations pad, and so does the transpose of reduce_window in grad-of-grad). Inside
    # auto_axes the SPMD partitioner handles it with halo exchanges (collective-permutes), and
    # the result keeps v's sharding.
    sharding = jax.typeof(v).sharding
    sum_along = jax.sharding.auto_axes(sum_along, axes=explicit, out_sharding=sharding)
  return sum_along(v)


def _reach(cfg: WindowConfig, transpose: bool) -> tuple[int, int]:
  # The adjoint of a window sum sums over the mirrored window: (hi, lo) instead of (lo, hi).
  return (cfg.hi, cfg.lo) if transpose else (cfg.lo, cfg.hi)


def inner_window_sum(v, cfg: WindowConfig, *, transpose: bool = False):
  """The window sum over every window axis but the last (``v`` itself for a one-axis window).

  Always ``lax.reduce_window``: XLA:CPU stores its result, so the last axis' shifted copies read
  the partial sum instead of recomputing it ``size`` times each (XLA fuses shifted sums into
  shifted sums, and an optimization barrier does not stop fusion).
  """
  for axis in cfg.axes[:-1]:
    v = _sum_along(v, axis, _reach(cfg, transpose), "reduce_window")
  return v


def last_window_sum(v, cfg: WindowConfig, *, transpose: bool = False):
  """The window sum along the last window axis (of the output of :func:`inner_window_sum`).

  With the shifted implementation it fuses with the elementwise work around it.
  """
  return _sum_along(v, cfg.axes[-1], _reach(cfg, transpose), cfg.implementation)


def window_sum(v, cfg: WindowConfig, *, transpose: bool = False):
  """``sum_{j in W(i)} v_j``, zero-padded; with ``transpose``, ``sum_{i : j in W(i)} v_i``.

  The transpose (the adjoint, over the mirrored window) equals the plain sum for odd sizes; for
  even sizes the window's two halves swap. ``cfg.implementation=None`` sums with each
  platform's implementation (:func:`per_platform`), as :func:`jax_lrn.lrn` does.
  """
  if cfg.implementation is None:
    return per_platform(lambda cfg, v: window_sum(v, cfg, transpose=transpose), cfg, v)
  if cfg.implementation in SQUARES_OF_SHIFTS:
    # The backward's cotangent window: a banded matrix product per axis ("matmul", and
    # "recompute" for any window sum of a given array), or one reduce_window per axis
    # ("shifted_squares"), never shifted copies (see window_sum_of_squares).
    reach = _reach(cfg, transpose)
    if cfg.implementation == "shifted_squares" and not any(
      _explicit_mesh_axes(v, axis) for axis in cfg.axes
    ):
      return _reduce_window_over(v, cfg.axes, reach)
    each = "reduce_window" if cfg.implementation == "shifted_squares" else "matmul"
    for axis in cfg.axes:
      v = _sum_along(v, axis, reach, each)
    return v
  inner = inner_window_sum(v, cfg, transpose=transpose)
  return last_window_sum(inner, cfg, transpose=transpose)


def window_sum_of_squares(x, cfg: WindowConfig, dtype):
  """``sum_{j in W(i)} x_j^2`` in ``dtype`` from ``x`` in its own dtype, for a concrete
  ``cfg.implementation`` (not ``None``).

  ``"shifted_squares"``, ``"matmul"`` and ``"recompute"`` square shifted copies of ``x`` along
  the last window axis (each widened after the shift, so 16-bit inputs are shifted as 16-bit)
  and sum the other axes with ``reduce_window``: XLA:TPU then fuses the whole window into the
  loop that reads ``x``, where squaring first made it store ``x*x`` and read it back at every
  shift. The other implementations square ``x`` first (:func:`inner_window_sum`,
  :func:`last_window_sum`).
  """
  if cfg.implementation not in SQUARES_OF_SHIFTS:
    u = x.astype(dtype)
    return last_window_sum(inner_window_sum(u * u, cfg), cfg)
  axis = cfg.axes[-1]
  pad = _clipped((cfg.lo, cfg.hi), x.shape[axis])
  if not _fits_shifted(pad):
    u = x.astype(dtype)
    out = _sum_along(u * u, axis, pad, "reduce_window")
  else:
    squares = functools.partial(shifted_squares_along, axis=axis, pad=pad, dtype=dtype)
    out = _on_mesh(squares, x, axis)
  for inner in cfg.axes[:-1]:
    out = _sum_along(out, inner, (cfg.lo, cfg.hi), "reduce_window")
  return out
