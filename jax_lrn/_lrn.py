"""The public :func:`lrn` (validation, dtype policy, docs) and its private ``custom_vjp`` core."""

from __future__ import annotations

import decimal
import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax

from jax_lrn._power import divide_by_power, log_where_regular
from jax_lrn._window import (
  EVEN_PLACEMENTS,
  IMPLEMENTATIONS,
  SQUARES_OF_SHIFTS,
  WindowConfig,
  inner_window_sum,
  last_window_sum,
  outside_ones,
  per_platform,
  recomputed_shifts,
  recomputes,
  shifted_by,
  squares_of_shifts,
  window_extent,
  window_sum,
  window_sum_of_squares,
)

MODES = ("across_channels", "within_channel")
Mode = Literal["across_channels", "within_channel"]
EvenPlacement = Literal["before", "after"]
Implementation = Literal[
  "shifted", "reduce_window", "shifted_squares", "matmul", "recompute", "pallas"
]
# Opt-in, outside IMPLEMENTATIONS (the XLA lowerings): the Pallas TPU kernels (jax_lrn._pallas).
PALLAS = "pallas"
#: What ``implementation=`` accepts besides None: the XLA lowerings and the Pallas kernels.
ACCEPTED_IMPLEMENTATIONS = (*IMPLEMENTATIONS, PALLAS)

# ---------------------------------------------------------------------------------------------
# The differentiable core. x arrives in its own dtype (16-bit inputs stay 16-bit in memory, also
# as a residual) and is widened to float32 (float64 for float64) inside; y and dx are cast back.
# ---------------------------------------------------------------------------------------------


def _compute_dtype(dtype) -> np.dtype:
  """float64 computes in float64, every other floating dtype in float32."""
  return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _denominator(partial_sq, alpha, k, cfg: WindowConfig):
  """``(s, S)`` with ``S = sum_W u^2`` and ``s = k + alpha/n * S``.

  ``partial_sq`` is ``u^2`` summed over every window axis but the last
  (:func:`inner_window_sum`; ``u^2`` itself across channels).
  """
  window_sq = last_window_sum(partial_sq, cfg)
  return k + (alpha / cfg.count) * window_sq, window_sq


def _widen(x):
  """x in the compute dtype (float32, or float64 for float64 input)."""
  return x.astype(_compute_dtype(x.dtype))


def _forward(cfg: WindowConfig, x, alpha, beta, k):
  return per_platform(_forward_with, cfg, x, alpha, beta, k)


def _forward_with(cfg: WindowConfig, x, alpha, beta, k):
  """The forward pass for a concrete ``cfg.implementation``."""
  u = _widen(x)
  window_sq = window_sum_of_squares(x, cfg, u.dtype)
  s = k + (alpha / cfg.count) * window_sq
  return divide_by_power(u, s, beta, cfg.static_beta).astype(x.dtype)


_lrn_core = jax.custom_vjp(_forward, nondiff_argnums=(0,))


def _lrn_core_fwd(cfg: WindowConfig, x, alpha, beta, k):
  # symbolic_zeros=True: every argument arrives as CustomVJPPrimal(value, perturbed). Which
  # cotangents are wanted is recorded in the residuals' (static) tree structure: () or None.
  wanted = tuple(() if arg.perturbed else None for arg in (x, alpha, beta, k))
  x, alpha, beta, k = (arg.value for arg in (x, alpha, beta, k))
  # The only array residual is x itself, in its own dtype (the layer before LRN usually keeps
  # it anyway); the backward recomputes the window sums and the power from it.
  return _forward(cfg, x, alpha, beta, k), (x, alpha, beta, k, wanted)


def _lrn_core_bwd(cfg: WindowConfig, res, g):
  x, alpha, beta, k, wanted = res
  want_x, want_alpha, want_beta, want_k = (flag is not None for flag in wanted)
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    return (None, None, None, None)
  if cfg.static_beta == 0:  # y = x whatever s is (also s = 0, where t would be 0 / 0)
    zero = jnp.zeros((), jnp.result_type(alpha))
    return (
      g.astype(x.dtype) if want_x else None,
      zero if want_alpha else None,
      None,
      zero if want_k else None,
    )
  return per_platform(_backward_with, cfg, x, alpha, beta, k, g, wanted)


def _backward_with(cfg: WindowConfig, x, alpha, beta, k, g, wanted):
  """The backward pass for a concrete ``cfg.implementation``."""
  if cfg.implementation in SQUARES_OF_SHIFTS:
    return _backward_squares_of_shifts(cfg, x, alpha, beta, k, g, wanted)
  want_x, want_alpha, want_beta, want_k = (flag is not None for flag in wanted)
  # Two passes over memory (plus one per extra window axis), each one fused loop that sums its
  # window from shifted reads (on CPU; see jax_lrn._window):
  #   1. t = g y / s, stored once (read x, g; write t);
  #   2. dx = g s^-beta - 2 beta alpha/n x W'(t), with s recomputed from x (read x, g, t).
  # XLA stores t by itself (it does not copy a division into each of the `size` shifted reads
  # of W'(t)), but left alone it shares s between the passes, and with the forward pass's y when
  # both are in one program, by storing every shifted copy of x^2: several arrays' worth of
  # extra memory traffic. Optimization barriers on x (they block common-subexpression
  # elimination on XLA:CPU, not fusion) give each pass a value XLA cannot identify with the
  # others. They carry only x and what depends on x alone, never the cotangent: a barrier
  # mixing the two has no transpose, which jax.linear_transpose of this backward needs.
  x = lax.optimization_barrier(x)
  u = _widen(x)
  g = g.astype(u.dtype)
  partial_sq = inner_window_sum(u * u, cfg)
  s, window_sq = _denominator(partial_sq, alpha, k, cfg)
  y = divide_by_power(u, s, beta, cfg.static_beta)
  # t_i = g_i y_i / s_i: the shared factor of every cross term. Divided from y, not powered
  # from u: s**-(beta+1) alone underflows float32 when s is large (|x| ~ 1e18), while y / s
  # stays representable as long as the true value is. The division stays the last operation:
  # XLA keeps a division's result stored rather than recomputing it at each shifted read of the
  # window sum below, which a select after it would undo. (Where s_i = 0 with k = 0, t_i is
  # 0 / 0; for beta > 0 so is y_i, and the cotangents are nan there as in every framework. A
  # static beta = 0 returns above; for a traced beta, y_i = 0 there when beta = 0, and s_i is
  # replaced by 1 so that t_i = 0: every term scaled by beta then vanishes, and its derivatives
  # in beta, which a select on beta == 0 would lose, stay right.)
  t = _cross_factor(g, y, s, cfg)
  dx = None
  if want_x:
    # dx_j = g_j s_j^-beta - 2 (alpha/n) beta x_j sum_{i: j in W(i)} t_i  (mirrored window).
    if len(cfg.axes) == 1:
      x = lax.optimization_barrier(x)
      u = _widen(x)
      partial_sq = u * u
    else:  # the stored partial sums of squares are read again, not recomputed
      x, partial_sq = lax.optimization_barrier((x, partial_sq))
      u = _widen(x)
    s = _denominator(partial_sq, alpha, k, cfg)[0]
    cross = window_sum(t, cfg, transpose=True)
    cross_term = (2.0 * beta * alpha / cfg.count) * u * cross
    dx = divide_by_power(g, s, beta, cfg.static_beta) - cross_term
    dx = dx.astype(x.dtype)
  return dx, *_parameter_cotangents(cfg, wanted, beta, g, y, s, t, window_sq)


def _parameter_cotangents(cfg: WindowConfig, wanted, beta, g, y, s, t, window_sq):
  """``(dalpha, dbeta, dk)``, each ``None`` where not wanted."""
  _, want_alpha, want_beta, want_k = (flag is not None for flag in wanted)
  dalpha = dbeta = dk = None
  if want_alpha:
    dalpha = -(beta / cfg.count) * jnp.sum(t * window_sq)
  if want_k:
    dk = -beta * jnp.sum(t)
  if want_beta:
    # d y_i / d beta = -y_i log s_i. Where s_i is 0 or inf, y_i is 0 (x_i = 0, or x_i / inf)
    # or nan, and the log is taken as 0 (a finite value with finite derivatives).
    dbeta = -jnp.sum(g * y * log_where_regular(s))
  return dalpha, dbeta, dk


def _backward_squares_of_shifts(cfg: WindowConfig, x, alpha, beta, k, g, wanted):
  """The backward of ``"shifted_squares"``, ``"matmul"`` and ``"recompute"`` (where
  :func:`_backward_recomputed` does not apply: ``"matmul"``'s), the same formula
  written as two passes: (1) t = g y / s, with s's window squaring shifted copies of x; (2) dx =
  g s^-beta - 2 beta alpha/n x W'(t), s recomputed the same way and W'(t) a banded matrix
  product or a reduce_window. XLA:TPU fuses the computation of t into the matrix product's
  input and the rest of dx into its output (dx only: one fusion, reading x and g once, writing
  dx). No partial sums of squares are stored: on XLA:TPU
  recomputing them from shifted reads of x costs no memory traffic, while storing them (the
  structure of the other implementations' backward) moved more bytes than plain autodiff.
  Across channels an optimization barrier on x before the first pass keeps XLA:TPU from sharing
  s between the passes and with the forward's y (which stores it: y and dx 6x the elementwise
  pass's bytes instead of 5.5x); within channel the barriers cost bytes (dx 9x instead of 6.5x),
  so there are none."""
  if recomputes(cfg, x):
    return _backward_recomputed(cfg, x, alpha, beta, k, g, wanted)
  want_x = wanted[0] is not None
  if len(cfg.axes) == 1:
    x = lax.optimization_barrier(x)
  u = _widen(x)
  g, y, s, t, window_sq = _squares_of_shifts_terms(cfg, x, u, alpha, beta, k, g)
  dx = None
  if want_x:
    s = k + (alpha / cfg.count) * window_sum_of_squares(x, cfg, u.dtype)
    cross_term = (2.0 * beta * alpha / cfg.count) * u * window_sum(t, cfg, transpose=True)
    dx = divide_by_power(g, s, beta, cfg.static_beta) - cross_term
    dx = dx.astype(x.dtype)
  return dx, *_parameter_cotangents(cfg, wanted, beta, g, y, s, t, window_sq)


def _backward_recomputed(cfg: WindowConfig, x, alpha, beta, k, g, wanted):
  """The backward of ``"recompute"`` across one axis (:func:`jax_lrn._window.recomputes`): dx
  = g s^-beta - 2 beta alpha/n x W'(t), with W'(t) the sum over the mirrored window's shifts
  ``d`` of t at ``j + d`` recomputed from copies of x and g shifted by ``d`` (in their own dtype,
  widened after the shift) and of x by ``d + e`` for s's window. No array of t exists: each term
  is its own expression of shifted inputs, so XLA:TPU computes dx in one loop fusion that reads
  x and g once and writes dx (a banded product reads both twice: once for each side of the
  matrix unit; shifted copies of one t make XLA store t). There is no optimization barrier:
  with ``jax.vjp``, XLA:TPU computes the forward's y (the same expression as the term at
  ``d = 0``; for 16-bit x, rounded, which that term adds times 0) in that fusion too. Where
  ``j + d`` lies outside the axis, 1 is added to s: there x and g are 0, so the term is 0 also
  where s would be 0 (k = 0)."""
  u = _widen(x)
  dx = None
  if wanted[0] is not None:
    axis = cfg.axes[0]
    cross = None
    for d, shifts in recomputed_shifts(cfg, x.shape[axis]):
      s = k + (alpha / cfg.count) * squares_of_shifts(x, axis, shifts, u.dtype)
      if d:
        s = s + outside_ones(x.shape, axis, d, u.dtype)
      y = divide_by_power(shifted_by(x, axis, d).astype(u.dtype), s, beta, cfg.static_beta)
      if d == 0 and x.dtype != u.dtype:
        # + 0: the y that the forward returns (rounded to x's dtype; at most 1 in magnitude, so
        # finite where the rounding overflows) joins the term without changing it, and XLA:TPU
        # then writes the forward's y from this fusion (bfloat16 y and dx: 2.0x, not 4.5x).
        y = y + 0.0 * jnp.minimum(jnp.abs(y.astype(x.dtype)), 1).astype(u.dtype)
      t = _cross_factor(shifted_by(g, axis, d).astype(u.dtype), y, s, cfg)
      cross = t if cross is None else cross + t
    s = k + (alpha / cfg.count) * window_sum_of_squares(x, cfg, u.dtype)
    cross_term = (2.0 * beta * alpha / cfg.count) * u * cross
    dx = divide_by_power(g.astype(u.dtype), s, beta, cfg.static_beta) - cross_term
    dx = dx.astype(x.dtype)
  if all(flag is None for flag in wanted[1:]):
    return dx, None, None, None
  terms = _squares_of_shifts_terms(cfg, x, u, alpha, beta, k, g)
  return dx, *_parameter_cotangents(cfg, wanted, beta, *terms)


def _squares_of_shifts_terms(cfg: WindowConfig, x, u, alpha, beta, k, g):
  """``(g, y, s, t, window_sq)`` as :func:`_parameter_cotangents` takes them, in the dtype of
  ``u = _widen(x)``: the window of squares of shifted copies of x, s, y and ``t = g y / s`` (a
  division: see :func:`_backward_with`)."""
  g = g.astype(u.dtype)
  window_sq = window_sum_of_squares(x, cfg, u.dtype)
  s = k + (alpha / cfg.count) * window_sq
  y = divide_by_power(u, s, beta, cfg.static_beta)
  return g, y, s, _cross_factor(g, y, s, cfg), window_sq


def _cross_factor(g, y, s, cfg: WindowConfig):
  """``t = g y / s``, the shared factor of every cross term of the backward. For a traced beta,
  ``s = 0`` is replaced by 1 (there ``y = 0`` when beta = 0), so that ``t = 0`` and every term
  scaled by beta vanishes with derivatives in beta that stay right (a select on ``beta == 0``
  would lose them); a static beta = 0 never gets here."""
  return g * y / (s if cfg.static_beta is not None else jnp.where(s == 0, 1.0, s))


_lrn_core.defvjp(_lrn_core_fwd, _lrn_core_bwd, symbolic_zeros=True)

# ---------------------------------------------------------------------------------------------
# Validation and canonicalisation (trace time, static arguments only).
# ---------------------------------------------------------------------------------------------


#: The dtypes :func:`lrn` accepts for ``x`` (and the Flax layers for ``param_dtype``).
SUPPORTED_DTYPES = tuple(np.dtype(d) for d in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))


def _as_array(x) -> jax.Array:
  """``x`` as a JAX array (NumPy float64 becomes float32 here, silently, when x64 is off, as in
  jax.nn functions), or a TypeError naming ``x`` for what is not an array of numbers."""
  if isinstance(x, jax.Array):
    return x
  if isinstance(x, np.ndarray) and x.dtype == object:
    problem = "a NumPy array of dtype object"
  elif x is None or isinstance(x, (str, bytes)):
    problem = f"{_shown(x)} of type {type(x).__name__}"
  else:
    try:
      return jnp.asarray(x)
    except (TypeError, ValueError):
      problem = f"{_shown(x)} of type {type(x).__name__}"
  raise TypeError(
    f"x must be a floating array of dtype float16, bfloat16, float32 or float64 (or something "
    f"jnp.asarray turns into one), got {problem}."
  )


def _check_dtype(dtype, message: str) -> np.dtype:
  """``dtype`` as a NumPy dtype if it is one of :data:`SUPPORTED_DTYPES`, else a TypeError that
  starts with ``message`` and lists them (float8, float4, integers, bool, complex are refused)."""
  try:
    canonical = None if dtype is None else jnp.dtype(dtype)
  except TypeError:
    canonical = None
  if canonical is None or canonical not in SUPPORTED_DTYPES:  # (np.dtype == None is float64)
    shown = repr(dtype) if canonical is None else canonical
    raise TypeError(f"{message} float16, bfloat16, float32 or float64, got {shown}.")
  return canonical


def _shown(value) -> str:
  """``repr(value)``, shortened: a Python int of more than 20 digits in scientific notation,
  anything else longer than 80 characters cut in the middle."""
  if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
    return format(decimal.Decimal(value), ".3e")
  text = repr(value)
  return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]}"


def _refuse_traced(value, name: str) -> None:
  """A TypeError if ``value`` is traced: ``name`` sets the program's shapes, so it must be known
  at trace time."""
  if isinstance(value, jax.core.Tracer):
    kind = "a sequence of Python ints" if name == "spatial_axes" else "a Python int"
    raise TypeError(
      f"{name} must be static ({kind}), got a traced value "
      f"{value.aval}: it sets the shape of the window, which must be known when the program is "
      f"traced. Under jax.jit, mark it static, e.g. jax.jit(f, static_argnames='{name}') "
      f"(or pass it through functools.partial){' as a tuple' if name == 'spatial_axes' else ''}."
    )


def _as_axis(value) -> int | None:
  """``value`` as a Python int if it is an integer (a Python or NumPy int, not a bool)."""
  if isinstance(value, (bool, np.bool_)):
    return None
  try:
    return operator.index(value)
  except TypeError:
    return None


def _check_axis(axis, name: str) -> int:
  """An axis as a Python int (range unchecked: that needs the input's rank)."""
  _refuse_traced(axis, name)
  index = _as_axis(axis)
  if index is None:
    raise TypeError(f"{name} must be an int, got {_shown(axis)}.")
  return index


def _check_spatial_axes(spatial_axes) -> tuple[int, ...] | None:
  """``spatial_axes`` (None, an int, a sequence, or a 0-D or 1-D NumPy or JAX array of ints) as
  a tuple of Python ints, or None (ranges unchecked: that needs the input's rank)."""
  if spatial_axes is None:
    return None
  _refuse_traced(spatial_axes, "spatial_axes")
  if isinstance(spatial_axes, jax.Array):
    spatial_axes = np.asarray(spatial_axes)
  axes = spatial_axes.tolist() if isinstance(spatial_axes, np.ndarray) else spatial_axes
  if not isinstance(axes, Sequence):
    axes = [axes]
  for a in [] if isinstance(axes, str) else axes:
    _refuse_traced(a, "spatial_axes")
  indices = [] if isinstance(axes, str) else [_as_axis(a) for a in axes]
  checked = tuple(index for index in indices if index is not None)
  if isinstance(axes, str) or len(checked) != len(indices):
    raise TypeError(
      f"spatial_axes must be an int, a sequence of ints or None, got {_shown(spatial_axes)}."
    )
  return checked


def _canonical_axis(axis, ndim: int, name: str) -> int:
  axis = _check_axis(axis, name)
  if not -ndim <= axis < ndim:
    raise ValueError(
      f"{name}={axis} is out of range for an input of rank {ndim}; "
      f"allowed: -{ndim} <= {name} < {ndim}."
    )
  return axis % ndim


def _check_size(size) -> int:
  _refuse_traced(size, "size")
  if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
    raise TypeError(
      f"size must be a positive int, got {_shown(size)} of type {type(size).__name__}."
    )
  if size < 1:
    raise ValueError(f"size must be a positive int, got {_shown(size)}.")
  return int(size)


def _spatial_axes(spatial_axes, ndim: int, channel_axis: int) -> tuple[int, ...]:
  spatial_axes = _check_spatial_axes(spatial_axes)
  if spatial_axes is None:
    return _default_spatial_axes(ndim, channel_axis)
  if len(spatial_axes) == 0:
    raise ValueError(
      "spatial_axes=() is empty; mode='within_channel' needs at least one spatial axis."
    )
  axes = tuple(_canonical_axis(a, ndim, "spatial_axes") for a in spatial_axes)
  if len(set(axes)) != len(axes):
    raise ValueError(
      f"spatial_axes={spatial_axes} names an axis twice (as {axes} for rank {ndim}); "
      "each axis may appear once."
    )
  if channel_axis in axes:
    raise ValueError(
      f"spatial_axes={spatial_axes} contains the channel axis ({channel_axis}); the "
      "within_channel window runs inside each channel, so the channel axis cannot be spatial."
    )
  return tuple(sorted(axes))


def _default_spatial_axes(ndim: int, channel_axis: int) -> tuple[int, ...]:
  """The within-channel window's axes for ``spatial_axes=None``: every axis but the batch axis 0
  and ``channel_axis``. One rule at every rank: it applies where the batch axis can be told
  apart, that is for rank >= 4 with ``channel_axis != 0``; anything else asks for
  ``spatial_axes``."""
  axes = tuple(a for a in range(1, ndim) if a != channel_axis)
  rule = (
    "spatial_axes=None means every axis but the batch axis 0 and channel_axis, for inputs of "
    "rank >= 4 whose channel_axis is not 0; pass spatial_axes explicitly"
  )
  if channel_axis == 0:
    raise ValueError(
      f"mode='within_channel' with spatial_axes=None cannot tell the batch axis apart for an "
      f"input of rank {ndim} with channel_axis=0: axis 0 holds the channels, so the batch axis, "
      f"if there is one, could be any of the others. {rule}, e.g. "
      f"spatial_axes={tuple(range(1, ndim))} for an unbatched input."
    )
  if ndim == 3:
    unbatched = tuple(a for a in range(ndim) if a != channel_axis)
    raise ValueError(
      f"mode='within_channel' with spatial_axes=None is ambiguous for an input of rank 3 "
      f"(channel_axis={channel_axis}): a batch of 1-D signals (spatial_axes={axes}) or one "
      f"unbatched image, e.g. inside vmap (spatial_axes={unbatched}). {rule}."
    )
  if ndim < 3:
    raise ValueError(
      f"mode='within_channel' with spatial_axes=None needs at least one spatial axis, but an "
      f"input of rank {ndim} with channel_axis={channel_axis} has none besides the batch axis "
      f"0 (an unbatched or vmapped input has no batch axis). {rule}."
    )
  return axes


def _is_real_dtype(dtype) -> bool:
  """A floating or integer dtype (not bool, not complex)."""
  return jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)


def _is_real_scalar_type(value) -> bool:
  """A Python or NumPy real number (not a bool, not an array)."""
  if isinstance(value, (bool, np.bool_)):
    return False
  if isinstance(value, np.generic):
    return _is_real_dtype(value.dtype)
  return isinstance(value, numbers.Real)


def _check_param(value, name: str, *, nonnegative: bool) -> tuple[Any, float | None]:
  """Returns ``(value, static_value)``: static_value is a float for Python/NumPy numbers and
  None for arrays. ``name`` is how errors call the argument."""
  if not isinstance(value, (jax.Array, np.ndarray)) and hasattr(value, "__jax_array__"):
    value = jnp.asarray(value)  # e.g. a flax.nnx.Param
  if isinstance(value, (jax.Array, np.ndarray)):
    if value.shape != ():
      raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}.")
    if not _is_real_dtype(value.dtype):
      raise TypeError(
        f"{name} must be a real number or a scalar array, got {value!r} of dtype {value.dtype}."
      )
    return value, None
  if not _is_real_scalar_type(value):
    raise TypeError(
      f"{name} must be a real number or a scalar array, got {_shown(value)} of type "
      f"{type(value).__name__}."
    )
  try:
    static = float(value)
  except OverflowError:  # a Python int beyond float's range
    static = math.inf if value > 0 else -math.inf
  if not math.isfinite(static):
    raise ValueError(f"{name} must be finite, got {_shown(value)}.")
  if nonnegative and static < 0:
    raise ValueError(f"{name} must be >= 0, got {_shown(value)}.")
  return value, static


def _check_representable(name: str, value, static: float | None, dtype: np.dtype) -> None:
  """A ValueError if the number ``value`` (``static``: its float, None for an array) changes
  meaning when rounded to the compute dtype of input ``dtype``: beyond its largest finite
  value (it would become inf), or, for ``alpha`` and ``k``, nonzero below its smallest normal
  number (it would become 0 or a subnormal that the hardware may flush to 0; k = 0 turns an
  all-zero window's output into nan, alpha = 0 drops the sum of squares)."""
  if static is None or static == 0:
    return
  compute = _compute_dtype(dtype)
  largest, tiny = float(np.finfo(compute).max), float(np.finfo(compute).tiny)
  magnitude = abs(static)
  too_small = name != "beta" and magnitude < tiny
  if magnitude <= largest and not too_small:
    return
  bounds = (
    f"|{name}| <= {largest:.4g}"
    if name == "beta"
    else f"{name} = 0 or {tiny:.4g} <= {name} <= {largest:.4g}"
  )
  rounded = "0 (or a subnormal number, which may be flushed to 0)" if too_small else "inf"
  raise ValueError(
    f"{name}={_shown(value)} is outside the range of {compute.name}, the dtype lrn computes in "
    f"for {dtype.name} input: it would round to {rounded}. Pass "
    f"{bounds}"
    + ("" if compute == np.float64 else ", or float64 input (with jax_enable_x64)")
    + "."
  )


def _window_count(size: int, axes: int) -> float:
  """``n = size ** axes`` as a float; ``inf`` beyond float's range (then ``alpha / n == 0``, the
  float value of the true ``alpha / n``)."""
  try:
    return float(size) ** axes
  except OverflowError:
    return math.inf


def window_config(
  ndim: int,
  size: int,
  *,
  mode: str,
  channel_axis: int,
  spatial_axes,
  even_placement: str,
  static_beta: float | None = None,
  implementation: str | None = None,
) -> WindowConfig:
  """Validates the static arguments of :func:`lrn` and returns the canonical window."""
  size = _check_size(size)
  if not isinstance(mode, str) or mode.lower() not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
  mode = mode.lower()
  if not isinstance(even_placement, str) or even_placement.lower() not in EVEN_PLACEMENTS:
    raise ValueError(f"even_placement must be one of {EVEN_PLACEMENTS}, got {even_placement!r}.")
  even_placement = even_placement.lower()
  if ndim < 1:
    raise ValueError(
      "lrn needs an input of rank >= 1 (an axis of channels), got a scalar (rank 0)."
    )
  channel_axis = _canonical_axis(channel_axis, ndim, "channel_axis")
  if mode == "across_channels":
    if spatial_axes is not None:
      raise ValueError(
        f"spatial_axes={spatial_axes!r} was given with mode='across_channels', which only "
        "windows over channel_axis; spatial_axes applies to mode='within_channel'."
      )
    axes = (channel_axis,)
  else:
    if ndim < 2:
      raise ValueError(
        f"mode='within_channel' needs an input of rank >= 2 (a channel axis and at least one "
        f"spatial axis), got rank {ndim}."
      )
    axes = _spatial_axes(spatial_axes, ndim, channel_axis)
  if implementation is not None and (
    not isinstance(implementation, str) or implementation.lower() not in ACCEPTED_IMPLEMENTATIONS
  ):
    raise ValueError(
      f"implementation must be None (the platform's choice) or one of "
      f"{ACCEPTED_IMPLEMENTATIONS}, got {_shown(implementation)}."
    )
  implementation = None if implementation is None else implementation.lower()
  lo, hi = window_extent(size, even_placement)
  return WindowConfig(
    axes=axes,
    size=size,
    lo=lo,
    hi=hi,
    count=_window_count(size, len(axes)),
    static_beta=static_beta,
    implementation=implementation,
  )


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def lrn(
  x: jax.typing.ArrayLike,
  size: int = 5,
  alpha: float | jax.Array = 1e-4,
  beta: float | jax.Array = 0.75,
  k: float | jax.Array = 1.0,
  *,
  mode: Mode = "across_channels",
  channel_axis: int = -1,
  spatial_axes: Sequence[int] | None = None,
  even_placement: EvenPlacement = "before",
  implementation: Implementation | None = None,
) -> jax.Array:
  r"""Local response normalization.

  .. math::

    y_i = x_i \, \Bigl(k + \frac{\alpha}{n} \sum_{j \in W(i)} x_j^2\Bigr)^{-\beta}

  ``W(i)`` is a window around element ``i``, zero-padded at the array edges, and ``n`` is its
  nominal number of elements (the divisor stays ``n`` at the edges, as in Caffe and PyTorch):

  * ``mode="across_channels"`` (AlexNet, Caffe ``ACROSS_CHANNELS``, PyTorch, ONNX, cuDNN): ``W``
    spans ``size`` neighbouring channels along ``channel_axis`` at the same position;
    ``n = size``.
  * ``mode="within_channel"`` (Caffe ``WITHIN_CHANNEL``, cuda-convnet ``rnorm``): ``W`` is a
    ``size x size (x ...)`` box over ``spatial_axes`` inside one channel;
    ``n = size ** len(spatial_axes)``.

  Conventions: ``alpha`` is divided by ``n`` (Caffe, PyTorch, ONNX, cuDNN, MXNet). TensorFlow and
  the AlexNet paper do not divide: pass ``alpha = alpha_tf * size`` and
  ``size = 2 * depth_radius + 1`` to reproduce ``tf.nn.local_response_normalization``. Odd sizes
  are centred. For even sizes ``even_placement="before"`` (default, PyTorch and cuda-convnet)
  puts ``size // 2`` elements before the centre and ``size // 2 - 1`` after;
  ``even_placement="after"`` (ONNX, cuDNN, MatConvNet) puts the larger half after.
  The ``jax_lrn.compat`` functions spell out each framework's convention.

  Numerics: 16-bit inputs are squared, summed and raised to ``beta`` in float32, and the result
  is cast back to the input dtype (bfloat16 thus has float32's range: squares overflow above
  ``|x|`` ~ 1.8e19, as for float32 input). Exponents that are multiples of 1/4 up to 2 (0.5,
  0.75, 1, ...) given as Python numbers use products of ``sqrt``; other exponents, and traced
  ``beta``, use ``exp(beta * log(s))``; ``beta = 0`` gives ``s ** 0 = 1`` on both paths. With
  ``k = 0`` an all-zero window gives ``0 / 0 = nan``, as in every framework. Every output
  depends only on the inputs in its window.

  Differentiation goes through a ``jax.custom_vjp`` closed form,
  ``dx_j = g_j s_j^{-beta} - 2 beta alpha/n x_j sum_{i: j in W(i)} g_i y_i / s_i``, which is
  itself differentiable. ``alpha``, ``beta`` and ``k`` may be traced JAX scalars with gradients
  (a learnable LRN). Reverse mode works to any order: ``jax.grad``, ``jax.vjp``, ``jax.jacrev``,
  grad-of-grad. Forward mode works on top of a reverse pass (``f`` a scalar loss that calls
  ``lrn``): ``jax.hessian``,
  ``jax.jacfwd(jax.grad(f))``, Hessian-vector products ``jax.jvp(jax.grad(f), (x,), (v,))`` and
  ``jax.linearize(jax.grad(f), x)``. Forward mode applied to ``lrn`` itself (``jax.jvp``,
  ``jax.jacfwd``, and the linear function that ``jax.linearize`` returns) raises JAX's
  ``TypeError: can't apply forward-mode autodiff (jvp) to a custom_vjp function``. Instead use
  ``jax.jacrev`` for Jacobians, and for a Jacobian-vector product transpose the (linear) VJP:
  ``y, vjp = jax.vjp(f, x)`` then ``jax.linear_transpose(lambda g: vjp(g)[0], y)(v)[0]``.

  Args:
    x: floating array, e.g. ``(N, H, W, C)`` with ``channel_axis=-1`` or ``(N, C, H, W)`` with
      ``channel_axis=1``. float16, bfloat16, float32 and float64 are supported (float8 and
      float4 types are not). NumPy inputs are converted with ``jnp.asarray``: float64 becomes
      float32 when x64 is off, as for any JAX function.
    size: window length ``n`` (per spatial axis in ``within_channel`` mode); a positive int.
      Sizes larger than the axis are allowed (the window is zero-padded).
    alpha: scale of the sum of squares (divided by ``n``); a real number ``>= 0`` (Python or
      NumPy) or a real scalar array.
    beta: exponent; a finite real number or a real scalar array.
    k: additive constant; a real number ``>= 0`` or a real scalar array.

      Numbers are checked: ``alpha``, ``k`` must be 0 or within the normal range of the dtype
      ``lrn`` computes in (float32, or float64 for float64 input: 1.2e-38 to 3.4e38 in
      float32), ``|beta|`` at most its largest value; beyond it they would round to 0 or inf.
      Traced values cannot be checked: a negative ``alpha`` or ``k`` then gives ``nan``
      silently (``jax.experimental.checkify`` can check them at run time; see the numerics
      page of the docs).
    mode: ``"across_channels"`` or ``"within_channel"`` (case-insensitive).
    channel_axis: the channel axis, an int (negative values count from the end). ``size``,
      ``channel_axis`` and ``spatial_axes`` set shapes, so they must be static: under
      ``jax.jit`` pass them through ``static_argnames`` or ``functools.partial``.
    spatial_axes: ``within_channel`` only: the axes of the spatial window (an int, a sequence,
      or a 1-D NumPy or concrete JAX array of ints; static, like ``size``). ``None`` means every
      axis except axis 0 (the batch) and ``channel_axis``, where the batch axis can be told
      apart: for inputs of rank ``>= 4`` whose ``channel_axis`` is not 0. Every other input must
      name its spatial axes: a rank-3 input (a batch of 1-D signals and one unbatched image
      look alike), a rank-2 one, one with the channels on axis 0, and unbatched or
      ``vmap``-ped inputs.
    even_placement: where the larger half of an even-size window goes: ``"before"`` (PyTorch)
      or ``"after"`` (ONNX, cuDNN), case-insensitive. No effect for odd sizes.
    implementation: how the window sums are computed: ``None`` (default) picks per platform
      (``"shifted"`` on CPU, where float32 and float64 windows within channel that leave the
      last axis out, over large arrays, run in blocks of rows of axis 0 that stay in the
      caches; ``"reduce_window"`` across channels and ``"shifted_squares"``
      within channel on CUDA GPUs; ``"recompute"`` across channels and ``"shifted_squares"``
      within channel on TPU; ``"reduce_window"`` elsewhere; also inside a program exported for
      several platforms); ``"shifted"`` adds shifted copies of ``x**2`` along the last window axis,
      which XLA fuses with the elementwise work; ``"reduce_window"`` uses
      ``lax.reduce_window``; ``"shifted_squares"`` adds the squares of shifted copies of ``x``
      (no ``x**2`` array), with ``reduce_window`` for the backward's other window sums;
      ``"matmul"`` is ``"shifted_squares"`` with the backward's cotangent window a banded
      matrix product (``Precision.HIGHEST``); ``"recompute"`` is ``"matmul"`` except across
      one axis (windows of up to 7 once clipped to the axis), where the backward adds the
      cotangent terms recomputed at each shift of the window from shifted copies of ``x`` and
      the cotangent (one loop over memory on TPU). All give the same values to rounding. The other
      axes of a within-channel window, and windows longer than 16 along an axis, use
      ``reduce_window`` (``"matmul"``: matrix products along every axis in the backward).
      ``"pallas"`` (opt-in, never chosen by ``None``): Pallas TPU kernels, one pass each for
      the forward (reads ``x``, writes ``y``) and the backward (reads ``x`` and the cotangent,
      writes ``dx``), compiled by Mosaic on TPU and run in Pallas' interpret mode (slowly)
      elsewhere; by their DMA bytes they move 1.0x-1.3x an elementwise pass forward,
      1.5x-3.0x for dx and 2.5x-4.3x for y and dx on TPU v4-v6e (the benchmark's shapes),
      but no TPU has run them.
      It needs ``alpha``, ``beta`` and ``k`` as numbers, float32 or bfloat16 ``x``, and at
      most two spatial axes; its second derivatives are the XLA path's, reverse mode only
      (see ``jax_lrn._pallas`` and the Performance page). Case-insensitive.

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError: ``x`` is not (convertible to) a float16, bfloat16, float32 or float64 array
      (with ``implementation="pallas"``: float32 or bfloat16), or ``alpha``, ``beta`` or ``k``
      is an array or traced with ``implementation="pallas"``;
      ``size`` or an axis is not an int (bools are refused) or is traced; a parameter is not a
      real number or a real scalar array.
    ValueError: ``size < 1``, unknown ``mode``, ``even_placement`` or ``implementation``
      (``implementation="pallas"`` with more than two ``spatial_axes``), an
      axis out of range, bad ``spatial_axes`` (also ``None`` where the batch axis cannot be
      told apart), too few dimensions for the mode, a non-finite ``alpha``/``beta``/``k``, a
      negative ``alpha``/``k``, or one beyond the compute dtype's range, given as a number.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import lrn
    >>> x = jnp.arange(1.0, 5.0, dtype=jnp.float32).reshape(1, 4)
    >>> lrn(x, size=3, alpha=3.0, beta=1.0, k=1.0)  # y_1 = 2 / (1 + (1 + 4 + 9))
    Array([[0.16666667, 0.13333334, 0.1       , 0.15384616]], dtype=float32)
    >>> lrn(jnp.ones((2, 8, 8, 3), jnp.float32), size=3, mode="within_channel").shape
    (2, 8, 8, 3)
  """
  x = _as_array(x)
  dtype = _check_dtype(x.dtype, "x must be a floating array of dtype")
  alpha, static_alpha = _check_param(alpha, "alpha", nonnegative=True)
  beta, static_beta = _check_param(beta, "beta", nonnegative=False)
  k, static_k = _check_param(k, "k", nonnegative=True)
  for name, value, static in (
    ("alpha", alpha, static_alpha),
    ("beta", beta, static_beta),
    ("k", k, static_k),
  ):
    _check_representable(name, value, static, dtype)
  cfg = window_config(
    jnp.ndim(x),
    size,
    mode=mode,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    even_placement=even_placement,
    static_beta=static_beta,
    implementation=implementation,
  )
  if cfg.implementation == PALLAS:
    from jax_lrn._pallas import lrn_pallas  # noqa: PLC0415 - imports Pallas only when used

    channel = channel_axis % jnp.ndim(x)
    return lrn_pallas(x, cfg, channel, static_alpha, static_beta, static_k)
  # float16/bfloat16 compute in float32; float32 and float64 in themselves.
  alpha, beta, k = (jnp.asarray(p, dtype=_compute_dtype(dtype)) for p in (alpha, beta, k))
  return _lrn_core(cfg, x, alpha, beta, k)
