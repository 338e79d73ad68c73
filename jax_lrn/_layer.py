"""What the Flax layers share, without importing Flax: construction-time validation and the
parameterisation of a learnable LRN.

Learnable parameterisation: each of ``k``, ``alpha``, ``beta`` is stored as an unconstrained raw
parameter ``r`` and used as ``softplus(r) = log(1 + exp(r))``, which is always ``> 0`` (a valid
``k`` and ``alpha``, and a ``beta`` that normalises rather than amplifies). The raw parameter is
initialised with the inverse ``r = v + log(-expm1(-v))``, so the initial values equal the given
ones.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._lrn import (
  EvenPlacement,
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
  learnable: bool,
  param_dtype,
) -> tuple[int, ...] | None:
  """Validates a layer's hyperparameters before any input is seen; returns ``spatial_axes``
  as a tuple of ints (or ``None``).

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
  )
  if not isinstance(learnable, (bool, np.bool_)):
    raise TypeError(f"learnable must be a bool, got {learnable!r}.")
  _check_dtype(param_dtype, "param_dtype must be")
  if learnable:
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
      if float(value) <= 0:
        raise ValueError(
          f"{name} must be > 0 when learnable=True (it is trained as softplus of a raw "
          f"parameter, which is always positive), got {float(value)}."
        )
  return spatial_axes


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
) -> jax.Array:
  """What every layer's ``__call__`` returns: :func:`jax_lrn.lrn` with the layer's settings and
  its current ``alpha``, ``beta``, ``k`` (``values``)."""
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
  )
