"""LRN as Pallas TPU kernels (``lrn(..., implementation="pallas")``), opt-in.

Two kernels, each one pass over memory: the forward reads ``x`` and writes ``y``; the backward
reads ``x`` and the cotangent ``g`` and writes ``dx`` (the ``custom_vjp`` keeps only ``x``),
with the closed form of :func:`jax_lrn.lrn`::

    s_i = k + alpha/n sum_{j in W(i)} x_j^2,    y_i = x_i s_i^-beta,
    dx_j = g_j s_j^-beta - 2 beta alpha/n x_j sum_{i: j in W(i)} t_i,   t_i = g_i y_i / s_i.

Layout. XLA:TPU stores a rank-4 activation, NHWC or NCHW alike, as (H, W, N, C) with the batch on
sublanes and the channels on lanes (layout ``{3,0,2,1}`` / ``{1,0,3,2}`` with (8, 128) tiles)
where ``W`` is not a multiple of 8 (conv1's 55); where it is (GoogLeNet's 56) as (N, H, W, C),
``W`` on sublanes, and the views below follow (across channels the rows in that order; within
channel ``(P, H, 1, W, C)``, the window summed along ``W`` by sublane offsets). That rule is
read from XLA:TPU's choices for the benchmark's shapes (jax 0.10.2, libtpu 0.0.42.1); where it
chooses otherwise, the transposes around the kernels become copies (right, but extra passes).
The kernels work on that view (``jnp.transpose`` to it and back are bitcasts there, no copies;
merging axes into the rows across channels is one too where the batch is a multiple of the
tile's rows). Any rank works; for other ranks and layouts the transposes are whatever XLA makes
of them:

* across channels, a 2-D view ``(rows, C)`` (every other axis merged into the rows), blocks of
  whole rows of channels; the channel window is a product with a banded 0/1 ``C x C`` matrix
  built in the kernel (the matrix unit is otherwise idle), ``Precision.HIGHEST``;
* within channel, a view ``(P, H, W, S, C)``: the window's axes ``H`` (and ``W``; a one-axis
  window has ``W = 1``) leading, the batch ``S`` on sublanes and the channels on lanes, ``P``
  every other axis. Blocks hold all of ``W`` and ``bh`` rows of ``H``; the rows the window needs
  above and below a block (its halo: ``max(lo, hi)`` rows of ``x`` forward; ``lo + hi`` rows of
  ``x`` and ``max(lo, hi)`` of ``g`` backward) come from the same array through two more block
  specs per input, single-buffered, masked to zero outside the array (a clamped or ragged
  block's contents are never used). Shifts along ``H`` and ``W`` are
  offsets along major dimensions (no lane or sublane movement). Where a block of the whole
  ``H`` fits in VMEM there is one block per column and no halo. Blocks are sized to a VMEM
  budget that fits v4 (16 MiB of VMEM); 16-bit blocks hold 16 rows of the batch (a whole tile)
  or 8 where that moves fewer bytes (the float32 scratch of 16 rows leaves room for fewer rows
  of ``H``).

Bytes: XLA's ``cost_analysis`` counts nothing for a Mosaic kernel, so each ``pallas_call``
states the bytes its DMAs move by construction (:func:`dma_bytes`: every block each grid step
copies, halo re-reads included, padded to XLA's (8, 128) tiles) as its
``CostEstimate``; XLA adds them to the bytes of whatever surrounds the kernel. The operands are
constrained to HBM: otherwise XLA:TPU stages ``x``, read by both kernels of ``jax.vjp``, in
VMEM first (a copy it counts as one more read and write).

On TPU the kernels are compiled by Mosaic; on every other platform they run in Pallas' interpret
mode (``lax.platform_dependent``), which is how they are tested. No TPU hardware has run them:
what is known is that Mosaic compiles them for v4, v5e, v5p and v6e ahead of time and that they
match the float64 reference in interpret mode.

Limits (a ``TypeError``/``ValueError`` naming the argument): ``alpha``, ``beta`` and ``k`` must be
Python or NumPy numbers (static); ``x`` float32 or bfloat16 (Mosaic has no float64, and float16
is not supported here); at most two spatial axes within channel. Derivatives are reverse mode
(``custom_vjp``): the first is the backward kernel; the second (grad-of-grad) differentiates the
XLA backward (``implementation=None``), whose values are the kernel's to rounding; forward mode
over a gradient (``jax.hessian``, ``jax.jacfwd(jax.grad(f))``) raises JAX's ``custom_vjp``
error, where ``implementation=None`` supports it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from jax_lrn._power import divide_by_power
from jax_lrn._window import WindowConfig

#: The input dtypes the kernels accept (they compute in float32).
DTYPES = (np.dtype(np.float32), np.dtype(jnp.bfloat16))

# VMEM the pipelined blocks and scratch buffers of one kernel may take. v4 has 16 MiB of VMEM
# (v5p 64 MiB, v5e and v6e 128 MiB); what is left of the limit below is Mosaic's own.
VMEM_BUDGET = 11 * 2**20
# The scoped VMEM limit the kernels compile with (the default is 16 MiB on v4, v5e and v5p).
VMEM_LIMIT = 15 * 2**20
LANES = 128
# How the kernels run off TPU: pallas_call's ``interpret`` (tests pass the TPU interpreter's
# parameters, which fill out-of-bounds reads and fresh memory with nan).
INTERPRET: Any = True
# Rows per block across channels, at most (before the VMEM budget).
MAX_ROWS = 4096


def _sublanes(dtype) -> int:
  """Rows of one vector register: 8 for 32-bit, 16 for 16-bit dtypes (two to a sublane)."""
  return 8 * 4 // np.dtype(dtype).itemsize


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


@dataclasses.dataclass(frozen=True)
class Params:
  """The static hyperparameters of one kernel."""

  alpha_n: float  # alpha / n
  beta: float
  k: float
  lo: int  # the window's reach before / after the centre
  hi: int


# ---------------------------------------------------------------------------------------------
# Views: x <-> the layout the kernels work on.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class View:
  """How ``x`` becomes the kernels' view: ``transpose(perm)`` then ``reshape(shape)``."""

  perm: tuple[int, ...]
  shape: tuple[int, ...]
  window_on_sublanes: bool = False  # within channel: the window's last axis is S, not W

  def to(self, x):
    return jnp.reshape(jnp.transpose(x, self.perm), self.shape)

  def back(self, v, shape):
    moved = tuple(shape[a] for a in self.perm)
    return jnp.transpose(jnp.reshape(v, moved), tuple(int(a) for a in np.argsort(self.perm)))


def _sublane_axis(ndim: int, channel: int, window: tuple[int, ...]) -> int | None:
  """The batch axis for the sublanes: axis 0, or the first axis that is neither the channel
  axis nor windowed (None: there is none, a unit axis takes its place)."""
  free = [a for a in range(ndim) if a != channel and a not in window]
  return free[0] if free else None


def view_for(shape: tuple[int, ...], cfg: WindowConfig, channel: int) -> View:
  """The kernels' view of an array of ``shape`` (see the module docstring)."""
  ndim = len(shape)
  across = cfg.axes == (channel,)
  window = tuple(() if across else cfg.axes)
  sub = _sublane_axis(ndim, channel, window)
  rest = [a for a in range(ndim) if a not in (channel, sub) and a not in window]
  perm = (*rest, *window, *(() if sub is None else (sub,)), channel)
  # XLA:TPU keeps the row-major order of the other axes, the last of them on sublanes, where
  # that axis fills whole tiles (GoogLeNet's 56 x 56, NHWC or NCHW: (N, H, W, C), W on
  # sublanes); otherwise the batch goes to the sublanes (conv1's 55 x 55: (H, W, N, C)).
  others = [a for a in range(ndim) if a != channel]
  row_major = bool(others) and shape[others[-1]] % 8 == 0
  if across:
    if row_major:
      perm = (*others, channel)
    return View(perm, (math.prod(shape[a] for a in perm[:-1]), shape[channel]))
  if row_major and len(window) == 2 and window[1] == others[-1]:
    # The window's last axis on sublanes: (P, H, 1, W, C), summed along W by sublane offsets.
    rest = [a for a in others if a not in window]
    perm = (*rest, *window, channel)
    lead = math.prod(shape[a] for a in rest)
    return View(perm, (lead, shape[window[0]], 1, shape[window[1]], shape[channel]), True)
  lead = math.prod(shape[a] for a in rest)
  h = shape[window[0]]
  w = shape[window[1]] if len(window) == 2 else 1
  s = 1 if sub is None else shape[sub]
  return View(perm, (lead, h, w, s, shape[channel]))


# ---------------------------------------------------------------------------------------------
# Block plans and their DMA bytes.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AcrossPlan:
  rows: int  # R
  channels: int  # C
  block_rows: int  # br

  @property
  def grid(self) -> tuple[int, ...]:
    return (-(-self.rows // self.block_rows),)


def _tile_bytes(sub: int, lanes: int, dtype) -> int:
  """Bytes of a (sub, lanes) slab as XLA:TPU stores it in HBM: (8, 128) tiles, for 16-bit
  dtypes too (``T(8,128)(2,1)``)."""
  return _round_up(sub, 8) * _round_up(lanes, LANES) * np.dtype(dtype).itemsize


def across_plan(shape: tuple[int, int], dtype, arrays: int) -> AcrossPlan:
  """Blocks of whole rows of channels: as many rows as ``arrays`` double-buffered blocks and the
  kernel's float32 temporaries (5 forward, 10 backward: what Mosaic spilled for GoogLeNet's
  192 channels in bfloat16 on v4 with fewer counted) fit in the budget, preferring a divisor
  of the rows."""
  rows, channels = shape
  sub = _sublanes(dtype)
  lanes = _round_up(channels, LANES)
  temporaries = 5 if arrays == 2 else 10
  per_row = arrays * 2 * lanes * np.dtype(dtype).itemsize + temporaries * lanes * 4
  cap = max(sub, min(MAX_ROWS, int(VMEM_BUDGET // per_row)) // sub * sub)
  if rows <= cap:
    return AcrossPlan(rows, channels, rows)
  divisors = [b for b in range(cap, sub - 1, -sub) if rows % b == 0]
  block = divisors[0] if divisors and divisors[0] * 4 >= cap else cap
  return AcrossPlan(rows, channels, block)


@dataclasses.dataclass(frozen=True)
class WithinPlan:
  shape: tuple[int, int, int, int, int]  # (P, H, W, S, C)
  bh: int  # rows of H per block
  halos: tuple[int, ...]  # rows of each halo block, per input (all 0: no halo blocks)
  bs: int  # batch (sublane) block
  bc: int  # channel (lane) block
  wlo: int  # the window's reach along W (before, after)
  whi: int

  @property
  def grid(self) -> tuple[int, ...]:
    p, h, _, s, c = self.shape
    return (p, -(-s // self.bs), -(-c // self.bc), -(-h // self.bh))

  @property
  def window_on_sublanes(self) -> bool:
    """Whether the window's last axis is the sublane axis ``S`` (the view has ``W = 1``)."""
    return self.shape[2] == 1 and (self.wlo, self.whi) != (0, 0)


def within_plan(shape, dtype, halos: tuple[int, ...], wreach: tuple[int, int]) -> WithinPlan:
  """``bh`` rows of ``H`` per block, a multiple of every input's halo, at most what fits the VMEM
  budget (each input and the output double-buffered, the halo blocks single-buffered, one
  float32 scratch row per input and row of the block with the widest halo); all of ``H`` (no
  halo blocks) where that fits. 16-bit blocks hold 16 rows of the batch (a whole tile) or 8
  (half the float32 scratch, so more rows of ``H``), whichever moves fewer bytes."""
  plans = [
    _within_plan_for(shape, dtype, halos, wreach, sub)
    for sub in sorted({_sublanes(dtype), 8}, reverse=True)
  ]
  fits = [plan for plan, vmem in plans if vmem <= VMEM_BUDGET] or [plans[-1][0]]
  return min(fits, key=lambda plan: dma_bytes(plan, dtype, len(halos), 1))


def _within_plan_for(shape, dtype, halos, wreach, sub: int) -> tuple[WithinPlan, int]:
  """The plan with blocks of ``sub`` rows of the batch, and the VMEM it takes."""
  p, h, w, s, c = shape
  inputs = len(halos)
  hb = max(halos)
  window_on_sublanes = w == 1 and tuple(wreach) != (0, 0)
  bs = s if s <= sub or window_on_sublanes else sub  # a window along S needs all of it
  bc = c if c <= LANES else LANES
  row = w * _tile_bytes(bs, bc, dtype)  # one row of H of one block, as stored
  row32 = w * _tile_bytes(bs, bc, np.float32)

  def vmem(bh: int, halo_blocks: bool) -> int:
    pipelined = 2 * (inputs + 1) * bh * row + (2 * sum(halos) * row if halo_blocks else 0)
    return pipelined + inputs * (bh + 2 * hb) * row32

  if vmem(h, False) <= VMEM_BUDGET or hb == 0:
    bh = h
    while bh > 1 and vmem(bh, False) > VMEM_BUDGET:
      bh = -(-bh // 2)
    return WithinPlan(tuple(shape), bh, (0,) * inputs, bs, bc, *wreach), vmem(bh, False)
  unit = math.lcm(*[n for n in halos if n])
  fits = [bh for bh in range(unit, h, unit) if vmem(bh, True) <= VMEM_BUDGET] or [unit]
  # Of the block heights that fit, the one that moves the fewest bytes (a ragged last block
  # counts whole), the tallest of equals.
  plans = [WithinPlan(tuple(shape), bh, tuple(halos), bs, bc, *wreach) for bh in fits]
  plan = min(reversed(plans), key=lambda plan: dma_bytes(plan, dtype, inputs, 1))
  return plan, vmem(plan.bh, True)


def _without_x64(kernel):
  """``kernel`` traced with 32-bit integers whatever ``jax_enable_x64`` says (Mosaic's loop
  indices and offsets are int32; with x64 Python ints would be int64)."""

  @functools.wraps(kernel)
  def traced(*refs):
    with jax.enable_x64(False):
      kernel(*refs)

  return traced


def _int32(*indices):
  """Block indices as int32 (Mosaic's index type; Python ints are int64 with x64 enabled)."""
  return tuple(jnp.asarray(i, jnp.int32) for i in indices)


def within_index_maps(plan: WithinPlan, halo: int):
  """The index maps of the main block and of the halo blocks (``halo`` rows) above and below
  it."""
  m = plan.bh // halo if halo else 0
  last = -(-plan.shape[1] // halo) - 1 if halo else 0

  def main(p, s, c, i):
    return _int32(p, i, 0, s, c)

  def top(p, s, c, i):
    return _int32(p, jnp.maximum(i * m - 1, 0), 0, s, c)

  def bottom(p, s, c, i):
    return _int32(p, jnp.minimum((i + 1) * m, last), 0, s, c)

  return main, top, bottom


def dma_bytes(plan, dtype, inputs: int, outputs: int) -> int:
  """The bytes a kernel's DMAs move by construction: per grid step, every block whose index
  changed since the previous step (Pallas skips the copy of an unchanged one), as stored in
  tiles; ``inputs`` arrays read (each with its halo blocks), ``outputs`` written. A ragged last
  block is counted whole."""
  if isinstance(plan, AcrossPlan):
    steps = plan.grid[0]
    return (inputs + outputs) * steps * _tile_bytes(plan.block_rows, plan.channels, dtype)
  p, h, w, s, c = plan.shape
  columns = p * -(-s // plan.bs) * -(-c // plan.bc)
  blocks = plan.grid[3]
  row = w * _tile_bytes(plan.bs, plan.bc, dtype)
  total = (inputs + outputs) * columns * blocks * plan.bh * row
  for halo in plan.halos:
    if not halo:
      continue
    m = plan.bh // halo
    last = -(-h // halo) - 1
    # Block indices along H: above max(i m - 1, 0), below min((i + 1) m, last). A copy happens
    # at i = 0 and wherever the index differs from the step before: for m = 1 the two clamped
    # steps i = 0, 1 above share block 0; below, the steps past the end share `last`.
    above = blocks - (1 if m == 1 and blocks > 1 else 0)
    below = 1 + sum(1 for i in range(1, blocks) if min((i + 1) * m, last) != min(i * m, last))
    total += columns * (above + below) * halo * row
  return total


# ---------------------------------------------------------------------------------------------
# Kernels.
# ---------------------------------------------------------------------------------------------


def _band(channels: int, lo: int, hi: int, transpose: bool):
  """``band[j, i] = 1`` where channel ``j`` lies in the window of channel ``i`` (``transpose``:
  the mirrored window), float32, built from iotas."""
  rows = lax.broadcasted_iota(jnp.int32, (channels, channels), 0)
  cols = lax.broadcasted_iota(jnp.int32, (channels, channels), 1)
  offset = (cols - rows) if transpose else (rows - cols)
  return ((offset >= -lo) & (offset <= hi)).astype(jnp.float32)


def _channel_window(v, params: Params, transpose: bool = False):
  band = _band(v.shape[-1], params.lo, params.hi, transpose)
  return jnp.dot(v, band, precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32)


def _across_forward_kernel(params: Params, x_ref, y_ref):
  x = x_ref[...].astype(jnp.float32)
  s = params.k + params.alpha_n * _channel_window(x * x, params)
  y_ref[...] = divide_by_power(x, s, params.beta, params.beta).astype(y_ref.dtype)


def _across_backward_kernel(params: Params, x_ref, g_ref, dx_ref):
  x = x_ref[...].astype(jnp.float32)
  g = g_ref[...].astype(jnp.float32)
  s = params.k + params.alpha_n * _channel_window(x * x, params)
  y = divide_by_power(x, s, params.beta, params.beta)
  t = g * y / s
  cross = _channel_window(t, params, transpose=True)
  dx = (
    divide_by_power(g, s, params.beta, params.beta) - 2.0 * params.beta * params.alpha_n * x * cross
  )
  dx_ref[...] = dx.astype(dx_ref.dtype)


def _w_window(plan: WithinPlan, row, lo: int, hi: int):
  """``sum_{d=-lo}^{hi} row[w + d]`` along ``W`` of a ``(W, S, C)`` row, zero-padded: along its
  leading axis, or along the sublanes where the window's last axis is there (``W = 1``)."""
  axis = 1 if plan.window_on_sublanes else 0
  width = row.shape[axis]
  lo, hi = min(lo, width - 1), min(hi, width - 1)
  if lo == hi == 0:
    return row

  def zeros(n):
    shape = list(row.shape)
    shape[axis] = n
    return jnp.zeros(shape, row.dtype)

  padded = jnp.concatenate([zeros(lo), row, zeros(hi)], axis)
  out = None
  for d in range(-lo, hi + 1):
    part = lax.slice_in_dim(padded, lo + d, lo + d + width, axis=axis)
    out = part if out is None else out + part
  return out


def _window_rows(ref, e, lo: int, hi: int):
  """``sum_{d=-lo}^{hi} ref[e + d]``."""
  out = ref[e - lo]
  for d in range(-lo + 1, hi + 1):
    out = out + ref[e + d]
  return out


class _Rows:
  """The rows of one input around one block. Row ``e`` of the scratch buffers is global row
  ``i bh - margin + e``: the block's rows are ``margin <= e < margin + bh``; the input's halo
  blocks (``halo`` rows, if any) give the rows just above and below. Rows outside the array
  read as zeros (whatever a clamped or ragged block holds)."""

  def __init__(self, plan: WithinPlan, margin: int, refs, halo: int):
    self.plan, self.margin, self.halo = plan, margin, halo
    self.main = refs[0]
    self.top, self.bottom = (refs[1], refs[2]) if len(refs) == 3 else (None, None)
    self.base = pl.program_id(3) * plan.bh - margin

  def segments(self) -> list:
    """``(ref, first row, rows)`` of each source block."""
    m, bh, halo = self.margin, self.plan.bh, self.halo
    out = [(self.main, m, bh)]
    if self.top is not None and self.bottom is not None:
      out = [(self.top, m - halo, halo), *out, (self.bottom, m + bh, halo)]
    return out

  def _masked(self, row, e):
    inside = (self.base + e >= 0) & (self.base + e < self.plan.shape[1])
    return jnp.where(inside, row.astype(jnp.float32), 0.0)

  def each(self, start: int, stop: int, body):
    """``body(e, row)`` for rows ``start <= e < stop`` the blocks hold (``row`` float32), one
    loop per source block."""
    for ref, first, count in self.segments():
      lo, hi = max(start, first), min(stop, first + count)
      if lo < hi:

        def step(e, carry, ref=ref, first=first):
          body(e, self._masked(ref[e - first], e))
          return carry

        lax.fori_loop(np.int32(lo), np.int32(hi), step, 0)

  def read(self, e):
    """Row ``e`` at a traced ``e`` (within the blocks' rows)."""
    parts = self.segments()
    row = None
    for ref, first, count in reversed(parts):
      value = ref[jnp.clip(e - first, 0, count - 1)]
      row = value if row is None else jnp.where(e < first + count, value, row)
    return self._masked(row, e)


def _split(plan: WithinPlan, refs, inputs: int):
  """The kernel's refs as ``(per input: its block refs), output, scratch``."""
  refs = list(refs)
  per_input = []
  for halo in plan.halos[:inputs]:
    count = 3 if halo else 1
    per_input.append((refs[:count], halo))
    refs = refs[count:]
  return per_input, refs[0], refs[1:]


def _zero_uncovered(rows: _Rows, ref):
  """Zeros the rows of scratch ``ref`` that no block of ``rows`` covers (they lie outside the
  array: above and below a block of all of ``H``, or beyond a halo clipped to ``H``)."""
  segments = rows.segments()
  first, stop = segments[0][1], segments[-1][1] + segments[-1][2]
  uncovered = [*range(first), *range(stop, ref.shape[0])]
  if uncovered:
    zero = jnp.zeros(ref.shape[1:], jnp.float32)
    for e in uncovered:
      ref[e] = zero


def _within_forward_kernel(plan: WithinPlan, params: Params, *refs):
  ((x_refs, x_halo),), y_ref, (sq_ref,) = _split(plan, refs, 1)
  lo, hi, bh = params.lo, params.hi, plan.bh
  margin = max(lo, hi)
  xs = _Rows(plan, margin, x_refs, x_halo)
  _zero_uncovered(xs, sq_ref)

  def squares(e, x):
    sq_ref[e] = _w_window(plan, x * x, plan.wlo, plan.whi)

  xs.each(margin - lo, margin + bh + hi, squares)

  def output(e, x):
    s = params.k + params.alpha_n * _window_rows(sq_ref, e, lo, hi)
    y_ref[e - margin] = divide_by_power(x, s, params.beta, params.beta).astype(y_ref.dtype)

  xs.each(margin, margin + bh, output)


def _within_backward_kernel(plan: WithinPlan, params: Params, *refs):
  ((x_refs, x_halo), (g_refs, g_halo)), dx_ref, (sq_ref, t_ref) = _split(plan, refs, 2)
  lo, hi, bh = params.lo, params.hi, plan.bh
  margin = lo + hi
  xs = _Rows(plan, margin, x_refs, x_halo)
  gs = _Rows(plan, margin, g_refs, g_halo)
  coefficient = 2.0 * params.beta * params.alpha_n
  _zero_uncovered(xs, sq_ref)
  _zero_uncovered(gs, t_ref)

  def squares(e, x):
    sq_ref[e] = _w_window(plan, x * x, plan.wlo, plan.whi)

  xs.each(0, 2 * margin + bh, squares)

  def denominator(e):
    return params.k + params.alpha_n * _window_rows(sq_ref, e, lo, hi)

  # t = g y / s on the rows whose mirrored window reaches the block, summed over its mirrored
  # window along W and stored.
  def cross_factor(e, g):
    x = xs.read(e)
    s = denominator(e)
    t = g * divide_by_power(x, s, params.beta, params.beta) / s
    t_ref[e] = _w_window(plan, t, plan.whi, plan.wlo)

  gs.each(margin - hi, margin + bh + lo, cross_factor)

  def output(e, g):
    x = xs.read(e)
    s = denominator(e)
    cross = _window_rows(t_ref, e, hi, lo)
    dx = divide_by_power(g, s, params.beta, params.beta) - coefficient * x * cross
    dx_ref[e - margin] = dx.astype(dx_ref.dtype)

  gs.each(margin, margin + bh, output)


# ---------------------------------------------------------------------------------------------
# pallas_calls.
# ---------------------------------------------------------------------------------------------


def _in_hbm(arrays, interpret):
  """The kernels' operands, kept in HBM: left alone, XLA:TPU copies an array two kernels read
  (x, forward and backward) into VMEM first, an extra pass over it."""
  return arrays if interpret is not False else [_keep_in_hbm(a) for a in arrays]


@jax.custom_batching.custom_vmap
def _keep_in_hbm(a):
  return pltpu.with_memory_space_constraint(a, pltpu.HBM)


@_keep_in_hbm.def_vmap
def _keep_in_hbm_vmap(axis_size, in_batched, a):
  # The constraint has no batching rule; the batched array is one array, constrained the same.
  del axis_size
  return _keep_in_hbm(a), in_batched[0]


def _across_call(params: Params, backward: bool, interpret, *arrays):
  v = arrays[0]
  plan = across_plan(v.shape, v.dtype, 3 if backward else 2)
  spec = across_spec(plan)
  kernel = _across_backward_kernel if backward else _across_forward_kernel
  flops = 2 * plan.rows * plan.channels * plan.channels * (2 if backward else 1)
  return pl.pallas_call(
    _without_x64(functools.partial(kernel, params)),
    out_shape=jax.ShapeDtypeStruct(v.shape, v.dtype),
    grid=plan.grid,
    in_specs=[spec] * len(arrays),
    out_specs=spec,
    compiler_params=pltpu.CompilerParams(
      dimension_semantics=("parallel",), vmem_limit_bytes=VMEM_LIMIT
    ),
    cost_estimate=pl.CostEstimate(
      flops=flops,
      transcendentals=2 * plan.rows * plan.channels,
      bytes_accessed=dma_bytes(plan, v.dtype, len(arrays), 1),
    ),
    interpret=interpret,
    name="lrn_across_backward" if backward else "lrn_across_forward",
  )(*_in_hbm(arrays, interpret))


def within_halos(params: Params, backward: bool, extent: int) -> tuple[int, ...]:
  """The rows each input needs above and below a block (forward: x; backward: x, g), at most
  ``extent`` (the rows of ``H``)."""
  lo, hi = params.lo, params.hi
  halos = (lo + hi, max(lo, hi)) if backward else (max(lo, hi),)
  return tuple(min(h, extent) for h in halos)


def within_specs(plan: WithinPlan):
  """``(in_specs, sources)``: the block specs of the kernel's inputs (each array's main block,
  then its halo blocks above and below, single-buffered) and which array each one reads."""
  block = (None, plan.bh, plan.shape[2], plan.bs, plan.bc)
  specs, sources = [], []
  for index, halo in enumerate(plan.halos):
    main, top, bottom = within_index_maps(plan, halo)
    specs.append(pl.BlockSpec(block, main))
    sources.append(index)
    if halo:
      halo_block = (None, halo, plan.shape[2], plan.bs, plan.bc)
      single = pl.Buffered(1)
      specs += [pl.BlockSpec(halo_block, top, single), pl.BlockSpec(halo_block, bottom, single)]
      sources += [index, index]
  return specs, sources


def within_out_spec(plan: WithinPlan):
  block = (None, plan.bh, plan.shape[2], plan.bs, plan.bc)
  return pl.BlockSpec(block, within_index_maps(plan, 0)[0])


def across_spec(plan: AcrossPlan):
  return pl.BlockSpec((plan.block_rows, plan.channels), lambda i: _int32(i, 0))


def _within_call(params: Params, wreach, backward: bool, interpret, *arrays):
  v = arrays[0]
  plan = within_plan(v.shape, v.dtype, within_halos(params, backward, v.shape[1]), wreach)
  in_specs, sources = within_specs(plan)
  operands = [arrays[i] for i in sources]
  margin = (params.lo + params.hi) if backward else max(params.lo, params.hi)
  row = (plan.shape[2], plan.bs, plan.bc)
  scratch = [pltpu.VMEM((plan.bh + 2 * margin, *row), jnp.float32)] * len(arrays)
  kernel = _within_backward_kernel if backward else _within_forward_kernel
  size = math.prod(v.shape)
  return pl.pallas_call(
    _without_x64(functools.partial(kernel, plan, params)),
    out_shape=jax.ShapeDtypeStruct(v.shape, v.dtype),
    grid=plan.grid,
    in_specs=in_specs,
    out_specs=within_out_spec(plan),
    scratch_shapes=scratch,
    compiler_params=pltpu.CompilerParams(
      dimension_semantics=("parallel",) * 4, vmem_limit_bytes=VMEM_LIMIT
    ),
    cost_estimate=pl.CostEstimate(
      flops=size * (params.lo + params.hi + 8) * (3 if backward else 1),
      transcendentals=2 * size,
      bytes_accessed=dma_bytes(plan, v.dtype, len(arrays), 1),
    ),
    interpret=interpret,
    name="lrn_within_backward" if backward else "lrn_within_forward",
  )(*_in_hbm(operands, interpret))


# ---------------------------------------------------------------------------------------------
# lrn(..., implementation="pallas").
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
  """Everything static about one call: the window, the channel axis, the hyperparameters."""

  cfg: WindowConfig
  channel: int
  alpha: float
  beta: float
  k: float

  @property
  def across(self) -> bool:
    return self.cfg.axes == (self.channel,)

  @property
  def params(self) -> Params:
    return Params(self.alpha / self.cfg.count, self.beta, self.k, self.cfg.lo, self.cfg.hi)


def _run(spec: Spec, backward: bool, x, *rest):
  """One kernel on the view of ``x`` (and of the cotangent in ``rest``): compiled by Mosaic on
  TPU, interpreted everywhere else."""
  view = view_for(x.shape, spec.cfg, spec.channel)
  arrays = [view.to(a) for a in (x, *rest)]
  if spec.across:
    call = functools.partial(_across_call, spec.params, backward)
  else:
    # The reach along the view's W (or S, where the window's last axis is there); none for a
    # one-axis window or a W of one element (the within_plan and kernels tell the two cases
    # apart by it).
    two_axes = len(spec.cfg.axes) == 2 and (view.window_on_sublanes or view.shape[2] > 1)
    reach = (spec.cfg.lo, spec.cfg.hi) if two_axes else (0, 0)
    call = functools.partial(_within_call, spec.params, reach, backward)
  out = lax.platform_dependent(
    *arrays,
    tpu=functools.partial(call, False),
    default=functools.partial(call, INTERPRET),
  )
  return view.back(out, x.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lrn(spec: Spec, x):
  return _run(spec, False, x)


def _lrn_fwd(spec: Spec, x):
  # _lrn itself, not its kernel: differentiated again (grad-of-grad differentiates this
  # forward pass too), it brings its own derivatives; the kernel has none.
  return _lrn(spec, x), x


def _lrn_bwd(spec: Spec, x, g):
  if spec.beta == 0:  # y = x
    return (g.astype(x.dtype),)
  return (_backward(spec, x, g.astype(x.dtype)),)


_lrn.defvjp(_lrn_fwd, _lrn_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _backward(spec: Spec, x, g):
  return _run(spec, True, x, g)


def _backward_fwd(spec: Spec, x, g):
  return _backward(spec, x, g), (x, g)  # see _lrn_fwd


def _backward_bwd(spec: Spec, res, ct):
  # The backward kernel's own derivatives are those of the XLA backward (the same function).
  return jax.vjp(functools.partial(_xla_backward, spec), *res)[1](ct)


_backward.defvjp(_backward_fwd, _backward_bwd)


def _xla_backward(spec: Spec, x, g):
  """``dx`` by the XLA path (``implementation=None``)."""
  from jax_lrn import _lrn as core  # noqa: PLC0415 - _lrn imports this module

  cfg = dataclasses.replace(spec.cfg, implementation=None)
  dtype = core._compute_dtype(x.dtype)  # noqa: SLF001
  alpha, beta, k = (jnp.asarray(p, dtype) for p in (spec.alpha, spec.beta, spec.k))
  _, vjp = jax.vjp(lambda x: core._lrn_core(cfg, x, alpha, beta, k), x)  # noqa: SLF001
  return vjp(g)[0]


def lrn_pallas(x, cfg: WindowConfig, channel: int, alpha, beta, k):
  """``lrn(x, ...)`` by the Pallas kernels; ``alpha``, ``beta``, ``k`` as checked by ``lrn``
  (a float, or None where traced or an array). Raises for what the kernels do not take."""
  for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
    if value is None:
      raise TypeError(
        f"implementation='pallas' needs {name} as a Python or NumPy number (the kernels are "
        f"compiled for its value), got an array or a traced value; use implementation=None "
        f"for a traced or learnable {name}."
      )
  if np.dtype(x.dtype) not in DTYPES:
    raise TypeError(
      f"implementation='pallas' takes x of dtype float32 or bfloat16, got {x.dtype}; use "
      "implementation=None for float16 and float64."
    )
  if len(cfg.axes) > 2:
    raise ValueError(
      f"implementation='pallas' windows over at most two spatial axes, got spatial_axes="
      f"{cfg.axes}; use implementation=None."
    )
  return _lrn(Spec(cfg, channel, float(alpha), float(beta), float(k)), x)
