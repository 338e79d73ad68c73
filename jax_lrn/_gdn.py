"""Generalized divisive normalization: the public :func:`gdn` and the non-negative
reparameterisation its layers train through (:func:`lower_bound`, :func:`reparameterize`,
:func:`nonnegative`)."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from jax_lrn._lrn import _canonical_axis, _check_dtype, _check_param, _compute_dtype
from jax_lrn._power import divide_by_power
from jax_lrn._window import cpu_blockable, map_blocks

#: Offset of the reparameterisation (TFC ``GDNParameter``, CompressAI
#: ``NonNegativeParametrizer``): the pedestal is its square, ``2**-36``.
REPARAM_OFFSET = 2.0**-18
PEDESTAL = REPARAM_OFFSET**2

# ---------------------------------------------------------------------------------------------
# The computation: a custom_vjp whose backward keeps only the inputs and recomputes the pool.
# GDN is one C x C matrix product between elementwise steps; the backward differentiates the
# elementwise steps with jax.vjp and transposes the product by hand, so that gamma's cotangent
# is dot_general(|x|^alpha, t) over the positions with |x|^alpha first. Autodiff's transpose
# of the product puts the cotangent first (dot_general(t, |x|^alpha), then a transpose), which
# XLA:CPU lowers to a transposing copy of t and a general matrix product in place of its
# library GEMM (1.2x to 1.75x slower for the whole VJP at bls2017 sizes; docs/gdn.md).
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Config:
  """The static arguments of the core (hashable: a static argument of custom_vjp and
  jax.checkpoint)."""

  static_alpha: float | None
  static_epsilon: float | None
  inverse: bool
  rectify: bool
  axis: int


def _pool_input(u, alpha, static_alpha: float | None, rectified: bool):
  """``|u| ** alpha`` (``u`` itself for ``alpha = 1`` when ``u >= 0`` already)."""
  if static_alpha == 1.0:
    return u if rectified else jnp.abs(u)
  if static_alpha == 2.0:
    return u * u
  return jnp.power(jnp.abs(u), alpha if static_alpha is None else static_alpha)


def _channel_sum(f, gamma, axis: int):
  """``sum_j f_j gamma[j, i]`` along ``axis`` (the output keeps ``f``'s layout).

  A contraction of the channel axis alone, with every other axis kept as it is: flattening
  the positions into one axis would merge a sharded spatial axis with the batch axis, which
  Explicit meshes refuse and Auto ones pay for with an all-gather
  (``tests/sharded/test_sharded_gdn.py``)."""
  if axis == f.ndim - 1:
    return f @ gamma
  pooled = lax.dot_general(f, gamma, (((axis,), (0,)), ((), ())))
  return jnp.moveaxis(pooled, -1, axis)


def _spec_of(value, order=None):
  """``value``'s partition spec (its axes permuted to ``order``) for the ``out_sharding`` of
  a product, or None outside a mesh."""
  if jax.sharding.get_abstract_mesh().empty:
    return None
  spec = tuple(jax.typeof(value).sharding.spec) + (None,) * value.ndim
  return P(*(spec[d] for d in (order or range(value.ndim))))


def _channel_sum_transpose(f, t, gamma, axis: int):
  """The cotangents of :func:`_channel_sum` for the output cotangent ``t``: ``(df, dgamma)``.

  ``dgamma[j, i] = sum over positions of f_j t_i`` contracts every axis but the channel one,
  with ``f`` first: XLA:CPU then transposes ``f`` (recomputed from ``x`` in the same pass) and
  runs its library GEMM. Autodiff's order, ``t`` first and the result transposed, becomes a
  transposing copy of ``t`` and a slower general product (docs/gdn.md). As in autodiff, each
  result takes the sharding of the argument it is the cotangent of: on an Explicit mesh that
  shards positions, ``dgamma``'s sum over them is one all-reduce."""
  positions = tuple(d for d in range(f.ndim) if d != axis)
  dims = ((positions, positions), ((), ()))
  dgamma = lax.dot_general(f, t, dims, out_sharding=_spec_of(gamma))
  order = (*positions, axis)  # f's axes in the order of t @ gamma.T's result
  df = lax.dot_general(t, gamma, (((axis,), (1,)), ((), ())), out_sharding=_spec_of(f, order))
  return (df if axis == f.ndim - 1 else jnp.moveaxis(df, -1, axis)), dgamma


def _multiply_by_power(v, s, epsilon, static_epsilon: float | None):
  """``v * s ** epsilon`` for ``s >= 0`` (``s ** 0 == 1``), with products of ``sqrt`` for
  ``epsilon`` in {0, 0.5, 1}."""
  if static_epsilon == 0.0:
    return v
  if static_epsilon == 1.0:
    return v * s
  if static_epsilon == 0.5:
    return v * jnp.sqrt(s)
  if static_epsilon is not None:
    return v * jnp.exp(static_epsilon * jnp.log(s))
  return v * jnp.where(epsilon == 0, 1.0, jnp.exp(epsilon * jnp.log(s))).astype(s.dtype)


def _pool_input_of_x(cfg: _Config, x, alpha):
  """``(u, |u| ** alpha)`` with ``u`` = ``x`` in the compute dtype (rectified if asked)."""
  u = x.astype(_compute_dtype(x.dtype))
  if cfg.rectify:
    u = jnp.maximum(u, 0.0)
  return u, _pool_input(u, alpha, cfg.static_alpha, cfg.rectify)


def _output(cfg: _Config, u, pool, epsilon):
  """``u / pool ** epsilon`` (``u * pool ** epsilon`` for the inverse)."""
  if cfg.inverse:
    return _multiply_by_power(u, pool, epsilon, cfg.static_epsilon)
  return divide_by_power(u, pool, epsilon, cfg.static_epsilon)


def _plus_beta(cfg: _Config, pooled, beta):
  """``pooled + beta``, ``beta`` along the channel axis."""
  shape = [1] * pooled.ndim
  shape[cfg.axis] = -1
  return pooled + beta.reshape(shape)


def _pool(cfg: _Config, f, beta, gamma):
  return _plus_beta(cfg, _channel_sum(f, gamma, cfg.axis), beta)


# On CPU, float32 and float64 arrays with the channel axis last (NHWC, or rank 2) of at least
# two blocks of about this many elements are computed in blocks of positions (the leading axes
# merged into one), so that a block's |x|^alpha, pool and output stay in the caches between the
# elementwise passes and the matrix product instead of going to memory (_cpu_block_rows).
# Measured (docs/gdn.md): blocks of 2048 to 8192 positions of bls2017-sized activations were
# faster than the whole array in most same-round runs, 1024 or fewer were not; 2**20 gives
# 8192 / 4096 / 2048 positions at C = 128 / 192 / 320.
CPU_BLOCK_ELEMENTS = 1 << 20


def _cpu_block_rows(cfg: _Config, x) -> int | None:
  """How many positions each CPU block holds: the most that divide the number of positions
  and fit in ``CPU_BLOCK_ELEMENTS`` (at least a quarter of it), or ``None`` where ``x`` is not
  split: the channel axis not last, a dtype other than float32 or float64, a symbolic shape,
  inside a mesh (positions may be sharded: the per-device program is the partitioner's), or
  fewer than two blocks."""
  if cfg.axis != x.ndim - 1 or not cpu_blockable(x):
    return None
  if not jax.sharding.get_abstract_mesh().empty:
    return None
  positions, target = math.prod(x.shape[:-1]), max(CPU_BLOCK_ELEMENTS // x.shape[-1], 1)
  rows = next(b for b in range(min(target, positions), 0, -1) if positions % b == 0)
  if 4 * rows < target or positions // rows < 2:
    return None
  return rows


def _whole_forward(cfg: _Config, x, beta, gamma, alpha, epsilon):
  u, f = _pool_input_of_x(cfg, x, alpha)
  return _output(cfg, u, _pool(cfg, f, beta, gamma), epsilon).astype(x.dtype)


def _forward(cfg: _Config, x, beta, gamma, alpha, epsilon):
  """:func:`_whole_forward`; on CPU, where :func:`_cpu_block_rows` says so, in blocks of
  positions (``lax.platform_dependent``: the other platforms' programs take the whole array at
  once): :func:`map_blocks` over ``x`` with its positions merged into one axis."""
  rows = _cpu_block_rows(cfg, x)
  if rows is None:
    return _whole_forward(cfg, x, beta, gamma, alpha, epsilon)
  in_block = functools.partial(_whole_forward, dataclasses.replace(cfg, axis=1))

  def on_cpu(x, *shared):
    return map_blocks(in_block, rows, [x.reshape(-1, x.shape[-1])], *shared).reshape(x.shape)

  return lax.platform_dependent(
    x, beta, gamma, alpha, epsilon, cpu=on_cpu, default=functools.partial(_whole_forward, cfg)
  )


_gdn_core = functools.partial(jax.custom_vjp, nondiff_argnums=(0,))(_forward)


def _gdn_core_fwd(cfg: _Config, x, beta, gamma, alpha, epsilon):
  """Keeps the inputs alone (``x`` in its own dtype): the backward recomputes the pool. The
  whole array at once, never in blocks: in a program that also runs the backward, XLA then
  computes the pool once for both (in blocks, the backward's pool was a fourth product and the
  VJP took 1.2x-1.3x longer on CPU; docs/gdn.md)."""
  return _whole_forward(cfg, x, beta, gamma, alpha, epsilon), (x, beta, gamma, alpha, epsilon)


def _gdn_core_bwd(cfg: _Config, residuals, g):
  """The elementwise steps by ``jax.vjp`` (the same code as the forward, fast paths
  included), the matrix product transposed by :func:`_channel_sum_transpose`. Never in
  blocks: on CPU, blocks of the backward took the time of the whole array (docs/gdn.md)."""
  x, beta, gamma, alpha, epsilon = residuals
  (u, f), input_vjp = jax.vjp(lambda x, alpha: _pool_input_of_x(cfg, x, alpha), x, alpha)
  pool = _pool(cfg, f, beta, gamma)
  _, output_vjp = jax.vjp(lambda u, pool, epsilon: _output(cfg, u, pool, epsilon), u, pool, epsilon)
  du, dpool, depsilon = output_vjp(g.astype(u.dtype))
  df, dgamma = _channel_sum_transpose(f, dpool, gamma, cfg.axis)
  dbeta = jnp.sum(dpool, axis=tuple(d for d in range(dpool.ndim) if d != cfg.axis))
  dx, dalpha = input_vjp((du, df))
  return dx, dbeta, dgamma, dalpha, depsilon


_gdn_core.defvjp(_gdn_core_fwd, _gdn_core_bwd)


# ---------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------


def _check_bool(value, name: str) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be a bool, got {value!r}.")
  return bool(value)


def _as_float_array(value, name: str):
  """``value`` as a float16/bfloat16/float32/float64 array (NumPy or JAX, as given)."""
  if not isinstance(value, (jax.Array, np.ndarray)) and hasattr(value, "__jax_array__"):
    value = jnp.asarray(value)  # e.g. a flax.nnx.Param
  if not isinstance(value, (jax.Array, np.ndarray)):
    try:
      value = np.asarray(value)
    except (TypeError, ValueError) as error:
      raise TypeError(f"{name} must be an array, got {value!r}.") from error
  if not jnp.issubdtype(value.dtype, jnp.floating):
    raise TypeError(
      f"{name} must be a floating array (float16, bfloat16, float32 or float64), got dtype "
      f"{value.dtype}."
    )
  _check_dtype(value.dtype, f"{name} must be a floating array of dtype")
  return value


def _check_weight(value, name: str, shape: tuple[int, ...], channel_axis: int, what=None):
  """``beta`` or ``gamma`` as an array of ``shape`` (described as ``what``, by default
  ``(C,)`` or ``(C, C)``); concrete values must be ``>= 0``."""
  value = _as_float_array(value, name)
  if value.shape != shape:
    what = what or ("(C,)" if len(shape) == 1 else "(C, C)")
    raise ValueError(
      f"{name} must have shape {what} = {shape} for the C = {shape[-1]} channels of x along "
      f"channel_axis={channel_axis}, got shape {value.shape}."
    )
  try:
    concrete = np.asarray(value, dtype=np.float64)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    concrete = None  # traced (a learned weight): checked by whoever keeps it non-negative
  if concrete is not None and not np.all(concrete >= 0):  # also refuses nan
    bad = concrete[~(concrete >= 0)]
    raise ValueError(
      f"{name} must be >= 0 everywhere (a negative pool gives nan), got {bad.size} "
      f"entries that are not, e.g. {bad.flat[0]}."
    )
  return value


def check_exponent(value, name: str) -> tuple[Any, float | None]:
  """``alpha`` or ``epsilon``: a real scalar (static values: finite; ``alpha > 0``,
  ``epsilon >= 0``). Returns ``(value, static_value or None)``."""
  value, static = _check_param(value, name, nonnegative=True)
  if name == "alpha" and static == 0.0:
    raise ValueError("alpha must be > 0, got 0.0 (|x| ** 0 would make the pool constant).")
  return value, static


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def gdn(
  x: jax.typing.ArrayLike,
  beta: jax.typing.ArrayLike,
  gamma: jax.typing.ArrayLike,
  *,
  alpha: float | jax.Array = 2.0,
  epsilon: float | jax.Array = 0.5,
  inverse: bool = False,
  rectify: bool = False,
  channel_axis: int = -1,
) -> jax.Array:
  r"""Generalized divisive normalization (GDN), its inverse (IGDN) and the simplified GDN.

  .. math::

    y_i = \frac{x_i}{\bigl(\beta_i + \sum_j \gamma_{ji} \, |x_j|^{\alpha}\bigr)^{\epsilon}}

  ``i`` and ``j`` run over the channels along ``channel_axis`` (every other position is
  normalized separately: no spatial pooling). ``gamma[j, i]`` is the weight of input channel
  ``j`` in output channel ``i``, the orientation of tensorflow_compression
  (``P = beta + f(x) @ gamma``); a CompressAI state dict stores its transpose
  (:func:`jax_lrn.compat.from_compressai_gdn` converts). The defaults ``alpha=2, epsilon=0.5``
  are the classic GDN (Ballé et al. 2016; CompressAI ``GDN``); ``alpha=1, epsilon=1`` is the
  simplified GDN (Johnston et al. 2019; CompressAI ``GDN1``, and ``tfc.GDN``'s default).
  ``inverse=True`` multiplies by the pool's power instead of dividing (IGDN, one fixed-point
  step towards inverting GDN); ``rectify=True`` replaces ``x`` by ``max(x, 0)`` first, in the
  numerator too.

  The pool uses ``|x_j| ** alpha`` for every ``alpha``. tensorflow_compression uses ``|x|``
  for ``alpha = 1`` and ``x ** 2`` for ``alpha = 2`` (the same values), but ``x ** alpha``
  without the absolute value otherwise, which is nan for negative inputs with a fractional
  or trainable ``alpha`` (unless ``rectify``); jax_lrn follows the paper's ``|x|`` there, so a
  learnable ``alpha`` stays defined for signed activations. :func:`jax_lrn.compat.tfc_gdn`
  reproduces TFC's own behaviour.

  Numerics: 16-bit inputs compute in float32 (the pool and its power) and the result is cast
  back; ``beta`` and ``gamma`` are cast to the compute dtype (float32, or float64 for float64
  ``x``). ``alpha`` in {1, 2} and ``epsilon`` in {0.5, 1} given as Python numbers use no
  ``pow`` (``|x|``, ``x * x``; a division or ``sqrt``); other values, and traced ones, use
  ``pow`` and ``exp(epsilon * log(P))``. The channel sum is one matrix product at JAX's default
  matmul precision (full float32 on CPU; on GPU and TPU use
  ``jax.default_matmul_precision("highest")`` for float32-exact sums). A pool of 0 (``beta_i =
  0`` and the weighted channels all zero) gives ``0 / 0 = nan``, as in both references.

  ``beta``, ``gamma``, ``alpha`` and ``epsilon`` may be traced arrays, with gradients (a
  learnable GDN: see :class:`jax_lrn.nnx.GDN` for the non-negative reparameterisation the
  references train through). ``jit``, ``vmap``, ``grad`` to any order and forward-over-reverse
  (``jax.hessian``, Hessian-vector products) apply; forward mode on ``gdn`` itself
  (``jax.jvp``, ``jax.jacfwd``) does not, as for :func:`jax_lrn.lrn`. The backward is a
  ``custom_vjp`` that keeps only the inputs (``x`` in its own dtype, ``beta``, ``gamma``)
  instead of four more arrays the size of ``x``, recomputes the pool, and transposes the
  channel product in the operand order XLA:CPU runs as one library GEMM (docs/gdn.md: 1.2x to
  1.75x faster than autodiff for the full VJP at bls2017 sizes in the measured runs).

  Args:
    x: floating array of rank ``>= 1``, e.g. ``(N, H, W, C)`` with ``channel_axis=-1`` or
      ``(N, C, H, W)`` with ``channel_axis=1``; float16, bfloat16, float32 or float64.
    beta: floating array of shape ``(C,)``, ``>= 0``: the pool's constant per output channel.
    gamma: floating array of shape ``(C, C)``, ``>= 0``: ``gamma[j, i]`` weights input channel
      ``j`` in output channel ``i``.
    alpha: exponent of ``|x_j|``: a real number ``> 0`` or a real scalar array.
    epsilon: exponent of the pool: a real number ``>= 0`` or a real scalar array.
    inverse: compute IGDN, ``y_i = x_i (beta_i + sum_j gamma[j, i] |x_j|^alpha)^epsilon``.
    rectify: apply ``max(x, 0)`` to ``x`` first.
    channel_axis: the channel axis, an int (negative values count from the end).

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError: ``x``, ``beta`` or ``gamma`` is not a float16/bfloat16/float32/float64 array;
      ``alpha``/``epsilon`` is not a real number or real scalar array; ``inverse``/``rectify``
      is not a bool; ``channel_axis`` is not an int.
    ValueError: ``x`` is a scalar; ``channel_axis`` is out of range; ``beta``/``gamma`` has the
      wrong shape for the channel count; concrete ``beta``/``gamma`` has a negative (or nan)
      entry; ``alpha <= 0``, ``epsilon < 0`` or a non-finite exponent given as a number.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import gdn
    >>> x = jnp.array([[3.0, -4.0]], jnp.float32)
    >>> beta, gamma = jnp.ones(2, jnp.float32), jnp.array([[0.1, 0.0], [0.0, 0.1]], jnp.float32)
    >>> gdn(x, beta, gamma)  # x / sqrt(1 + 0.1 x**2)
    Array([[ 2.1764288, -2.4806948]], dtype=float32)
    >>> gdn(x, beta, gamma, alpha=1.0, epsilon=1.0)  # simplified: x / (1 + 0.1 |x|)
    Array([[ 2.3076923, -2.857143 ]], dtype=float32)
    >>> gdn(x, beta, gamma, inverse=True)  # IGDN: x * sqrt(1 + 0.1 x**2)
    Array([[ 4.135215, -6.449806]], dtype=float32)
    >>> # gamma[0, 1]: channel 0 divides channel 1
    >>> gamma = jnp.array([[0.0, 1.0], [0.0, 0.0]], jnp.float32)
    >>> gdn(x, beta, gamma, alpha=1.0, epsilon=1.0)  # [3 / 1, -4 / (1 + |3|)]
    Array([[ 3., -1.]], dtype=float32)
  """
  return _gdn_core(
    *_arguments(x, beta, gamma, alpha, epsilon, inverse, rectify, channel_axis, spatial=False)
  )


def _arguments(x, beta, gamma, alpha, epsilon, inverse, rectify, channel_axis, *, spatial: bool):
  """The arguments of :func:`gdn` (``spatial=False``) or :func:`spatial_gdn` checked, in the
  order of the cores: ``(config, x, beta, gamma, alpha, epsilon)``, the last four as arrays of
  the compute dtype. ``spatial``: ``x`` has a batch axis 0 and spatial axes, and ``gamma`` a
  window, shape ``(*window, C, C)``."""
  if not isinstance(x, jax.Array):
    x = jnp.asarray(x)
  dtype = _check_dtype(x.dtype, "x must be a floating array of dtype")
  function, min_rank = ("spatial_gdn", 3) if spatial else ("gdn", 1)
  if x.ndim < min_rank:
    what = "batch, spatial and channel axes" if spatial else "an axis of channels"
    raise ValueError(
      f"{function} needs an input of rank >= {min_rank} ({what}), got shape {x.shape}."
    )
  axis = _canonical_axis(channel_axis, x.ndim, "channel_axis")
  if spatial and axis == 0:
    raise ValueError(
      f"channel_axis={channel_axis} names axis 0, which spatial_gdn takes as the batch axis."
    )
  inverse = _check_bool(inverse, "inverse")
  rectify = _check_bool(rectify, "rectify")
  alpha, static_alpha = check_exponent(alpha, "alpha")
  epsilon, static_epsilon = check_exponent(epsilon, "epsilon")
  channels = x.shape[axis]
  beta = _check_weight(beta, "beta", (channels,), channel_axis)
  if spatial:
    gamma = _as_float_array(gamma, "gamma")
    if gamma.ndim != x.ndim:
      raise ValueError(
        f"gamma must have shape (*window, C, C) with one window dimension per spatial axis of "
        f"x ({x.ndim - 2} for x of shape {x.shape}), got shape {gamma.shape}."
      )
    gamma_shape, what = (*gamma.shape[:-2], channels, channels), "(*window, C, C)"
  else:
    gamma_shape, what = (channels, channels), None
  gamma = _check_weight(gamma, "gamma", gamma_shape, channel_axis, what)
  compute = _compute_dtype(dtype)
  beta, gamma, alpha, epsilon = (
    jnp.asarray(p).astype(compute) for p in (beta, gamma, alpha, epsilon)
  )
  cfg = _Config(static_alpha, static_epsilon, inverse, rectify, axis)
  return cfg, x, beta, gamma, alpha, epsilon


# ---------------------------------------------------------------------------------------------
# Spatial GDN: the pool is a convolution over a window of positions.
# ---------------------------------------------------------------------------------------------


def _spatial_forward(cfg: _Config, x, beta, gamma, alpha, epsilon):
  u, f = _pool_input_of_x(cfg, x, alpha)
  spatial = tuple(d for d in range(1, x.ndim) if d != cfg.axis)
  window = tuple(range(gamma.ndim - 2))
  numbers = lax.ConvDimensionNumbers(
    lhs_spec=(0, cfg.axis, *spatial),
    rhs_spec=(gamma.ndim - 1, gamma.ndim - 2, *window),
    out_spec=(0, cfg.axis, *spatial),
  )
  pooled = lax.conv_general_dilated(f, gamma, (1,) * len(window), "SAME", dimension_numbers=numbers)
  return _output(cfg, u, _plus_beta(cfg, pooled, beta), epsilon).astype(x.dtype)


_spatial_gdn_core = jax.checkpoint(_spatial_forward, static_argnums=(0,))


def spatial_gdn(
  x: jax.typing.ArrayLike,
  beta: jax.typing.ArrayLike,
  gamma: jax.typing.ArrayLike,
  *,
  alpha: float | jax.Array = 2.0,
  epsilon: float | jax.Array = 0.5,
  inverse: bool = False,
  rectify: bool = False,
  channel_axis: int = -1,
) -> jax.Array:
  r"""GDN whose pool also runs over a spatial neighbourhood (Ballé et al. 2016; the
  divisive normalizations of neuroscience models such as Burg et al. 2021).

  .. math::

    y_i(p) = \frac{x_i(p)}{\bigl(\beta_i + \sum_{o} \sum_j \gamma_{o, j, i} \,
    |x_j(p + o - c)|^{\alpha}\bigr)^{\epsilon}}

  ``p`` runs over the spatial positions, ``o`` over the window, the leading dimensions of
  ``gamma`` (``gamma[*o, j, i]`` weighs input channel ``j`` at window index ``o`` in output
  channel ``i``: the ``HWIO`` kernel layout of :func:`jax.lax.conv_general_dilated`), and
  ``c = (window - 1) // 2`` per spatial axis: for an odd window size the window is centred
  on ``p``; for an even one it reaches one position further after ``p`` than before it
  (XLA's ``"SAME"`` padding). Positions outside ``x`` count as 0 (zero padding), and the
  output has ``x``'s shape. The sum is a cross-correlation, as in every convolution layer
  (the window is not flipped).

  Everything else is :func:`gdn`'s: ``alpha``, ``epsilon``, ``inverse``, ``rectify``, the
  ``|x|`` in the pool, traced (learnable) parameters with gradients, 16-bit inputs computed
  in float32, the fast paths for ``alpha`` in {1, 2} and ``epsilon`` in {0.5, 1}. A window of
  ones (``gamma`` of shape ``(1, 1, C, C)`` for images) is :func:`gdn` itself, which then
  runs (its results are identical). Otherwise the pool is one
  :func:`jax.lax.conv_general_dilated` at JAX's default precision (full float32 on CPU; on GPU
  and TPU use ``jax.default_matmul_precision("highest")`` for float32-exact sums).
  Differentiation is JAX's autodiff under ``jax.checkpoint`` (the backward keeps the inputs
  and recomputes the pool): every transformation applies, forward mode included, except for
  a window of ones, which differentiates as :func:`gdn` does (no forward mode).

  :class:`jax_lrn.nnx.SpatialGDN` (and its Linen and Equinox twins) learns ``beta`` and
  ``gamma`` through the non-negative reparameterisation of the GDN layers.

  Args:
    x: floating array ``(N, *spatial, C)`` (``channel_axis=-1``) or ``(N, C, *spatial)``
      (``channel_axis=1``): a batch axis first, a channel axis, and one spatial axis or more
      (as many as ``gamma`` has window dimensions).
    beta: floating array of shape ``(C,)``, ``>= 0``.
    gamma: floating array of shape ``(*window, C, C)``, ``>= 0``, with ``len(window) =
      x.ndim - 2``.
    alpha: exponent of ``|x_j|``: a real number ``> 0`` or a real scalar array.
    epsilon: exponent of the pool: a real number ``>= 0`` or a real scalar array.
    inverse: multiply by the pool's power instead (spatial IGDN).
    rectify: apply ``max(x, 0)`` to ``x`` first.
    channel_axis: the channel axis, an int other than the batch axis 0.

  Returns:
    Array of the same shape and dtype as ``x``.

  Raises:
    TypeError: as :func:`gdn`.
    ValueError: as :func:`gdn`; also ``x`` of rank < 3, ``channel_axis`` naming the batch
      axis 0, and ``gamma`` whose rank is not ``x.ndim`` or whose last two dimensions are not
      ``(C, C)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import spatial_gdn
    >>> x = jnp.array([[[1.0], [2.0], [3.0]]], jnp.float32)  # (N, W, C) = (1, 3, 1)
    >>> beta, gamma = jnp.ones(1, jnp.float32), jnp.ones((3, 1, 1), jnp.float32)
    >>> spatial_gdn(x, beta, gamma, alpha=1.0, epsilon=1.0)  # x / (1 + |x| summed over 3)
    Array([[[0.25     ],
            [0.2857143],
            [0.5      ]]], dtype=float32)
  """
  cfg, x, beta, gamma, alpha, epsilon = _arguments(
    x, beta, gamma, alpha, epsilon, inverse, rectify, channel_axis, spatial=True
  )
  if all(n == 1 for n in gamma.shape[:-2]):
    channels = gamma.shape[-1]
    return _gdn_core(cfg, x, beta, gamma.reshape(channels, channels), alpha, epsilon)
  return _spatial_gdn_core(cfg, x, beta, gamma, alpha, epsilon)


# ---------------------------------------------------------------------------------------------
# The non-negative reparameterisation of TFC's GDNParameter and CompressAI's
# NonNegativeParametrizer (shared by the three layer families).
# ---------------------------------------------------------------------------------------------


@jax.custom_vjp
def lower_bound(x: jax.Array, bound: jax.Array) -> jax.Array:
  """``max(x, bound)`` whose gradient to ``x`` passes where ``x >= bound`` or where it is
  negative (a descent step then moves ``x`` up, towards the feasible side); none to ``bound``.
  TFC ``math_ops.lower_bound(gradient="identity_if_towards")``, CompressAI ``LowerBound``."""
  return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
  return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(res, g):
  x, bound = res
  passes = (x >= bound) | (g < 0)
  return g * passes.astype(g.dtype), jnp.zeros_like(bound)


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)


def reparameterize(value, dtype) -> jax.Array:
  """The stored parameter for an effective ``value``: ``sqrt(max(value + p, p))`` in ``dtype``,
  ``p = 2**-36`` (TFC ``GDNParameter.__init__``, CompressAI ``NonNegativeParametrizer.init``;
  the lower bound does not enter, as in both)."""
  value = jnp.asarray(value, dtype)
  pedestal = jnp.asarray(PEDESTAL, dtype)
  return jnp.sqrt(jnp.maximum(value + pedestal, pedestal))


def nonnegative(raw: jax.Array, minimum: float) -> jax.Array:
  """The effective value of a stored parameter: ``lower_bound(raw, sqrt(minimum + p))**2 - p``
  in ``raw``'s dtype (TFC ``GDNParameter.__call__``, CompressAI
  ``NonNegativeParametrizer.forward``); ``>= minimum`` up to rounding."""
  raw = jnp.asarray(raw)
  bound = jnp.asarray((float(minimum) + PEDESTAL) ** 0.5, raw.dtype)
  bounded = lower_bound(raw, bound)
  return bounded * bounded - jnp.asarray(PEDESTAL, raw.dtype)


def check_window_shape(window_shape) -> tuple[int, ...]:
  """A spatial GDN layer's ``window_shape`` as a tuple of positive ints, one per spatial axis."""
  sizes = None if isinstance(window_shape, (str, bytes)) else window_shape
  if not isinstance(sizes, Sequence) or not all(
    isinstance(n, numbers.Integral) and not isinstance(n, (bool, np.bool_)) for n in sizes
  ):
    raise TypeError(
      f"window_shape must be a sequence of positive ints, one per spatial axis of the input "
      f"(e.g. (3, 3) for images; gamma's shape is fixed at construction, so a single int is not "
      f"taken), got {window_shape!r}."
    )
  if not sizes or any(n < 1 for n in sizes):
    raise ValueError(
      f"window_shape must hold one positive size per spatial axis of the input, at least one "
      f"(e.g. (3, 3) for images), got {window_shape!r}."
    )
  return tuple(int(n) for n in sizes)


def check_layer_arguments(
  num_features,
  window_shape=None,
  *,
  inverse,
  rectify,
  alpha,
  epsilon,
  beta_min,
  gamma_init,
  channel_axis,
  param_dtype,
) -> dict[str, Any]:
  """Validates a GDN layer's construction arguments, with the argument names in the messages.
  ``num_features`` may be None (Linen infers it); ``window_shape`` is None for :func:`gdn`'s
  layers. Returns the settings as a layer keeps them: Python scalars, ``window_shape`` (if given)
  as a tuple, ``param_dtype`` left out."""
  if num_features is not None:
    if isinstance(num_features, (bool, np.bool_)) or not isinstance(num_features, numbers.Integral):
      raise TypeError(f"num_features must be a positive int, got {num_features!r}.")
    if num_features < 1:
      raise ValueError(f"num_features must be a positive int, got {num_features}.")
  _check_bool(inverse, "inverse")
  _check_bool(rectify, "rectify")
  for name, value in (("alpha", alpha), ("epsilon", epsilon)):
    if isinstance(value, jax.Array) or not isinstance(value, (numbers.Real, np.number)):
      raise TypeError(f"{name} must be a Python or NumPy real number for a layer, got {value!r}.")
    check_exponent(value, name)
  for name, value in (("beta_min", beta_min), ("gamma_init", gamma_init)):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
      raise TypeError(f"{name} must be a real number, got {value!r}.")
    if not math.isfinite(float(value)) or float(value) < 0:
      raise ValueError(f"{name} must be finite and >= 0, got {value}.")
  if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, numbers.Integral):
    raise TypeError(f"channel_axis must be an int, got {channel_axis!r}.")
  _check_dtype(param_dtype, "param_dtype must be")
  settings: dict[str, Any] = {} if num_features is None else {"num_features": int(num_features)}
  if window_shape is not None:
    settings["window_shape"] = check_window_shape(window_shape)
  return settings | {
    "inverse": bool(inverse),
    "rectify": bool(rectify),
    "alpha": float(alpha),
    "epsilon": float(epsilon),
    "beta_min": float(beta_min),
    "gamma_init": float(gamma_init),
    "channel_axis": int(channel_axis),
  }


def window_centre(window_shape: Sequence[int]) -> tuple[int, ...]:
  """The index of ``gamma`` whose tap reads the position itself in :func:`spatial_gdn`:
  ``(k - 1) // 2`` per window size ``k`` (the middle for odd ``k``; for even ``k`` the last
  index before the middle, the window reaching one position further after than before)."""
  return tuple((k - 1) // 2 for k in window_shape)


def new_layer(
  num_features, window_shape=None, *, param_dtype, **settings
) -> tuple[dict[str, Any], jax.Array, jax.Array]:
  """What a new NNX or Equinox GDN layer keeps: its settings as :func:`check_layer_arguments`
  returns them (the other keyword arguments are its), and its stored ``raw_beta`` and
  ``raw_gamma`` (:func:`initial_beta`, :func:`initial_gamma`)."""
  settings = check_layer_arguments(num_features, window_shape, param_dtype=param_dtype, **settings)
  count, window = settings["num_features"], settings.get("window_shape", ())
  raw_beta = initial_beta(count, param_dtype)
  return settings, raw_beta, initial_gamma(count, settings["gamma_init"], param_dtype, window)


def initial_beta(num_features: int, dtype) -> jax.Array:
  """The stored beta of a fresh layer, reparameterised as both references do: effective
  beta = 1, shape ``(C,)``."""
  return reparameterize(jnp.ones((num_features,), dtype), dtype)


def initial_gamma(
  num_features: int, gamma_init: float, dtype, window_shape: Sequence[int] = ()
) -> jax.Array:
  """The stored gamma of a fresh layer, reparameterised as both references do: effective
  gamma = ``gamma_init * I`` (shape ``(C, C)``), or for a window, shape
  ``(*window_shape, C, C)``, ``gamma_init * I`` at :func:`window_centre` and 0 elsewhere, so
  that a fresh spatial layer computes what a fresh :func:`gdn` layer does."""
  identity = gamma_init * jnp.eye(num_features, dtype=dtype)
  gamma = jnp.zeros((*window_shape, num_features, num_features), dtype)
  gamma = gamma.at[window_centre(window_shape)].set(identity)
  return reparameterize(gamma, dtype)


def effective_parameters(raw_beta, raw_gamma, beta_min: float) -> dict[str, jax.Array]:
  """``{"beta": ..., "gamma": ...}`` as :func:`gdn` (or :func:`spatial_gdn`) takes them, from a
  layer's stored parameters."""
  return {"beta": nonnegative(raw_beta, beta_min), "gamma": nonnegative(raw_gamma, 0.0)}


def apply_layer(x, layer, raw_beta, raw_gamma) -> jax.Array:
  """What every GDN layer's ``__call__`` returns: :func:`gdn` (:func:`spatial_gdn` for a layer
  with a ``window_shape``) with the settings of ``layer`` (its ``alpha``, ``epsilon``,
  ``inverse``, ``rectify``, ``channel_axis``, ``beta_min``) and the effective values of its
  stored parameters. A spatial layer takes a batch axis 0 and one spatial axis per window
  dimension, or an unbatched input without the batch axis (Equinox's convention), which it
  normalizes as a batch of one."""
  values = effective_parameters(raw_beta, raw_gamma, layer.beta_min)
  settings = dict(
    alpha=layer.alpha,
    epsilon=layer.epsilon,
    inverse=layer.inverse,
    rectify=layer.rectify,
    channel_axis=layer.channel_axis,
  )
  window = getattr(layer, "window_shape", None)
  if window is None:
    return gdn(x, values["beta"], values["gamma"], **settings)
  x = jnp.asarray(x)
  if x.ndim not in (len(window) + 1, len(window) + 2):
    raise ValueError(
      f"{type(layer).__name__} with window_shape={window} takes inputs with {len(window)} "
      f"spatial axes and a channel axis, batched (rank {len(window) + 2}) or not (rank "
      f"{len(window) + 1}), got shape {x.shape}."
    )
  if x.ndim == len(window) + 2:
    return spatial_gdn(x, values["beta"], values["gamma"], **settings)
  # Unbatched: a batch axis of one in front, the channel axis counted in the batched input.
  settings["channel_axis"] = _canonical_axis(layer.channel_axis, x.ndim, "channel_axis") + 1
  return spatial_gdn(x[None], values["beta"], values["gamma"], **settings)[0]
