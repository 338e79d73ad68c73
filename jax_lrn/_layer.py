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
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._lrn import _check_param, _check_size, window_config

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
) -> tuple[int, ...] | None:
  """Validates a layer's hyperparameters before any input is seen; returns ``spatial_axes``
  as a tuple (or ``None``).

  Everything that does not depend on the input's rank is checked here with the messages of
  :func:`jax_lrn.lrn`; axis ranges are checked by ``lrn`` at the first call.
  """
  _check_size(size)
  for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
    if isinstance(value, jax.Array) or not isinstance(value, (numbers.Real, np.number)):
      raise TypeError(
        f"{name} must be a Python or NumPy real number for a layer (it is a hyperparameter "
        f"or the initial value of a learnable parameter), got {value!r}."
      )
    _check_param(value, name, nonnegative=name != "beta")
  if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, (numbers.Integral)):
    raise TypeError(f"channel_axis must be an int, got {channel_axis!r}.")
  if spatial_axes is not None:
    if isinstance(spatial_axes, (numbers.Integral)):
      spatial_axes = (int(spatial_axes),)
    if not isinstance(spatial_axes, Sequence) or isinstance(spatial_axes, str):
      raise TypeError(f"spatial_axes must be a sequence of ints or None, got {spatial_axes!r}.")
    spatial_axes = tuple(spatial_axes)
  # A two-axis stand-in input validates size, mode, even_placement and (across channels)
  # spatial_axes in lrn's own words; axis ranges wait for the real input's rank.
  window_config(
    2,
    size,
    mode=mode,
    channel_axis=0,
    spatial_axes=spatial_axes if str(mode).lower() == "across_channels" else None,
    even_placement=even_placement,
  )
  if not isinstance(learnable, (bool, np.bool_)):
    raise TypeError(f"learnable must be a bool, got {learnable!r}.")
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
