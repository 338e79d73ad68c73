"""What the layers (NNX, Linen, Equinox) share, without importing Flax or Equinox:
construction-time validation, the parameterisation of a learnable LRN, and the repr.

Learnable parameterisation: each learned one of ``k``, ``alpha``, ``beta`` (``learnable=True``
for all three, or a sequence of their names) is stored as an unconstrained raw
parameter ``r`` and used as ``softplus(r) = log(1 + exp(r))``, which is always ``> 0`` (a valid
``k`` and ``alpha``, and a ``beta`` that normalises rather than amplifies). The raw parameter is
initialised with the inverse ``r = v + log(-expm1(-v))``, so the initial values equal the given
ones.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from jax_lrn._lrn import (
  EvenPlacement,
  Implementation,
  Mode,
  _check_axis,
  _check_dtype,
  _check_param,
  _check_size,
  _check_spatial_axes,
  lrn,
  window_config,
)

#: Names of the learnable hyperparameters, in the order of the raw parameters.
LEARNABLE = ("alpha", "beta", "k")

#: The arguments of :func:`jax_lrn.lrn` after ``x`` and their defaults: every layer takes each of
#: them, with the same name and default (tests/test_layers.py compares the signatures).
LRN_DEFAULTS = {
  name: p.default for name, p in inspect.signature(lrn).parameters.items() if name != "x"
}

#: What a ``learnable`` argument may be: all (``True``), none (``False``), or some, by name.
Learnable = bool | str | Sequence[str]


def learned_names(learnable) -> tuple[str, ...]:
  """The names of the learned hyperparameters, in :data:`LEARNABLE` order: all for ``True``,
  none for ``False``, else the names given (one name or a sequence of them)."""
  if isinstance(learnable, (bool, np.bool_)):
    return LEARNABLE if learnable else ()
  names = (learnable,) if isinstance(learnable, str) else learnable
  if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
    raise TypeError(
      f"learnable must be a bool or a sequence of the names {LEARNABLE}, got {learnable!r}."
    )
  unknown = [n for n in names if n not in LEARNABLE]
  if unknown:
    raise ValueError(
      f"learnable names {unknown} are not learnable hyperparameters; choose from {LEARNABLE} "
      f"(or pass True for all of them), got learnable={learnable!r}."
    )
  return tuple(n for n in LEARNABLE if n in names)


def check_hyperparameters(
  size: int,
  alpha: float,
  beta: float,
  k: float,
  *,
  mode: str,
  channel_axis: int,
  spatial_axes: Sequence[int] | None,
  even_placement: str,
  implementation: str | None = None,
  learnable: Learnable,
  param_dtype,
  dtype=None,
) -> tuple[tuple[int, ...] | None, tuple[str, ...]]:
  """Validates a layer's hyperparameters before any input is seen; returns ``spatial_axes``
  as a tuple of ints (or ``None``) and the names of the learned hyperparameters.

  Everything that does not depend on the input's rank is checked here with the messages (and
  the helpers) of :func:`jax_lrn.lrn`; axis ranges are checked by ``lrn`` at the first call.
  """
  _check_size(size)
  for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
    if isinstance(value, jax.Array) or not isinstance(value, (numbers.Real, np.number)):
      raise TypeError(
        f"{name} must be a Python or NumPy real number for a layer (it is a hyperparameter "
        f"or the initial value of a learnable parameter), got {value!r}."
      )
    _check_param(value, name, nonnegative=name != "beta")
  _check_axis(channel_axis, "channel_axis")
  spatial_axes = _check_spatial_axes(spatial_axes)
  # A two-axis stand-in input validates size, mode, even_placement and (across channels)
  # spatial_axes in lrn's own words; axis ranges wait for the real input's rank.
  window_config(
    2,
    size,
    mode=mode,
    channel_axis=0,
    spatial_axes=spatial_axes if str(mode).lower() == "across_channels" else (1,),
    even_placement=even_placement,
    implementation=implementation,
  )
  learned = learned_names(learnable)
  _check_dtype(param_dtype, "param_dtype must be")
  if dtype is not None:
    _check_dtype(dtype, "dtype must be None (the input's dtype) or")
  for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
    if name in learned and float(value) <= 0:
      raise ValueError(
        f"{name} must be > 0 when learned (learnable={learnable!r}: it is trained as softplus "
        f"of a raw parameter, which is always positive), got {float(value)}."
      )
  return spatial_axes, learned


def inverse_softplus(value: float) -> float:
  """``r`` with ``softplus(r) == value`` for ``value > 0``: ``value + log(-expm1(-value))``."""
  return value + math.log(-math.expm1(-value))


def constrain(raw: jax.Array) -> jax.Array:
  """The value of a learnable hyperparameter from its raw parameter: ``softplus(raw)``."""
  return jax.nn.softplus(raw)


def initial_raw(value: float, dtype: jnp.dtype) -> jax.Array:
  """The raw parameter (a scalar of ``dtype``) whose ``softplus`` is ``value``."""
  return jnp.asarray(inverse_softplus(float(value)), dtype=dtype)


def normalize(
  x: jax.Array,
  size: int,
  values: Mapping[str, float | jax.Array],
  *,
  mode: Mode,
  channel_axis: int,
  spatial_axes: Sequence[int] | None,
  even_placement: EvenPlacement,
  implementation: Implementation | None = None,
  dtype=None,
) -> jax.Array:
  """What every layer's ``__call__`` returns: :func:`jax_lrn.lrn` with the layer's settings and
  its current ``alpha``, ``beta``, ``k`` (``values``), on ``x`` cast to ``dtype`` if given."""
  if dtype is not None:
    x = jnp.asarray(x, dtype)
  return lrn(
    x,
    size,
    values["alpha"],
    values["beta"],
    values["k"],
    mode=mode,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    even_placement=even_placement,
    implementation=implementation,
  )


def _value_repr(value) -> str:
  """A hyperparameter as the repr shows it: a float as given, an array by its value (6
  significant digits), a traced one by its type."""
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, jax.core.Tracer):
    return str(value.aval)
  shown = f"{float(value):.6g}"
  return shown if any(c in shown for c in ".ein") else f"{shown}.0"  # 1.0 as for floats


def layer_repr(layer) -> str:
  """``Name(size=..., alpha=..., beta=..., k=..., ...)`` for an NNX or Equinox layer: the values
  in use now (the trained ones for learned hyperparameters), then ``learnable`` and the
  settings that differ from their defaults."""
  values = layer.values()
  parts = [f"size={layer.size}"] + [f"{n}={_value_repr(values[n])}" for n in LEARNABLE]
  learned = learned_names(layer.learnable)
  if learned:
    parts.append(f"learnable={learned!r}")
  for key in ("mode", "channel_axis", "spatial_axes", "even_placement", "implementation"):
    value = getattr(layer, key)
    if value != LRN_DEFAULTS[key]:
      parts.append(f"{key}={value!r}")
  if layer.dtype is not None:
    parts.append(f"dtype={jnp.dtype(layer.dtype).name}")
  if learned and jnp.dtype(layer.param_dtype) != jnp.float32:
    parts.append(f"param_dtype={jnp.dtype(layer.param_dtype).name}")
  return f"{type(layer).__name__}({', '.join(parts)})"
