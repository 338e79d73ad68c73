"""GDN in the conventions of tensorflow_compression and CompressAI, as thin mappings onto
:func:`jax_lrn.gdn`, and converters of their trained layers' stored parameters.

Sources: tensorflow/compression ``tensorflow_compression/python/layers/gdn.py`` (``GDN.call``),
``layers/parameters.py`` (``GDNParameter``), ``ops/math_ops.py`` (``lower_bound``), release
2.14; InterDigitalInc/CompressAI ``compressai/layers/gdn.py`` (``GDN``, ``GDN1``),
``compressai/ops/parametrizers.py`` (``NonNegativeParametrizer``), ``ops/bound_ops.py``
(``LowerBound``), release 1.2.8.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn._gdn import PEDESTAL, gdn

DATA_FORMATS = ("channels_first", "channels_last")


def _exponent(value, name: str) -> float:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
    raise TypeError(
      f"{name} must be a Python or NumPy real number (a fixed value; tfc.GDN's fast paths "
      f"depend on it), got {value!r}."
    )
  if not math.isfinite(float(value)):
    raise ValueError(f"{name} must be finite, got {value}.")
  return float(value)


def tfc_gdn(
  x: jax.typing.ArrayLike,
  *,
  inverse: bool = False,
  rectify: bool = False,
  data_format: str = "channels_last",
  alpha_parameter: float = 1.0,
  beta_parameter: jax.typing.ArrayLike,
  gamma_parameter: jax.typing.ArrayLike,
  epsilon_parameter: float = 1.0,
) -> jax.Array:
  r"""``tfc.GDN`` (tensorflow_compression 2.14) with fixed parameter values.

  .. math:: y_i = x_i \,/\, \bigl(\beta_i + \sum_j \gamma_{ji} f(x_j)\bigr)^{\epsilon}

  with ``f(x) = |x|`` for ``alpha_parameter == 1``, ``x**2`` for ``2``, and TFC's signed
  ``x ** alpha`` otherwise; ``inverse`` multiplies instead, ``rectify`` applies ``relu``
  first. The defaults ``alpha_parameter=1, epsilon_parameter=1`` are the simplified GDN
  (TFC's default since 2021); pass ``2`` and ``0.5`` for the classic one. ``gamma_parameter``
  is ``[C_in, C_out]``, the orientation of :func:`jax_lrn.gdn`. Any rank ``>= 2``.

  For an ``alpha_parameter`` other than 1 or 2 TFC pools ``x ** alpha`` without an absolute
  value: a negative input with a fractional ``alpha`` gives nan, and the nan reaches every
  channel at that position through the channel sum. This function reproduces that (positions
  with a negative input are nan); an odd integer ``alpha >= 3`` without ``rectify`` (a signed
  pool) is refused rather than reproduced. :func:`jax_lrn.gdn` uses ``|x| ** alpha`` instead.

  Args:
    x: floating array of rank ``>= 2``.
    inverse: IGDN.
    rectify: ``relu`` first.
    data_format: ``"channels_last"`` (channel axis -1) or ``"channels_first"`` (axis 1).
    alpha_parameter: a real number.
    beta_parameter: ``(C,)`` array, ``>= 0`` (the effective value, not TFC's reparameterised
      variable: :func:`from_tfc_gdn` converts those).
    gamma_parameter: ``(C, C)`` array, ``>= 0``, ``[C_in, C_out]``.
    epsilon_parameter: a real number.

  Returns:
    What ``tfc.GDN`` returns, to float32 rounding, in ``x``'s shape and dtype.

  Raises:
    TypeError, ValueError: as :func:`jax_lrn.gdn`, in TFC's argument names; an unknown
      ``data_format``; ``x`` of rank < 2; an odd integer ``alpha_parameter >= 3`` without
      ``rectify``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> x = jnp.array([[1.0, -2.0]], jnp.float32)
    >>> beta, gamma = jnp.ones(2, x.dtype), 0.1 * jnp.eye(2, dtype=x.dtype)
    >>> compat.tfc_gdn(x, beta_parameter=beta, gamma_parameter=gamma)
    Array([[ 0.9090909, -1.6666666]], dtype=float32)
  """
  if not isinstance(data_format, str) or data_format not in DATA_FORMATS:
    raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}.")
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"tfc.GDN needs an input of rank >= 2, got x of shape {x.shape}.")
  alpha = _exponent(alpha_parameter, "alpha_parameter")
  epsilon = _exponent(epsilon_parameter, "epsilon_parameter")
  channel_axis = 1 if data_format == "channels_first" else -1
  signed = not rectify and alpha not in (1.0, 2.0)
  if signed and alpha == int(alpha) and int(alpha) % 2 == 1:
    raise ValueError(
      f"alpha_parameter={alpha_parameter} with rectify=False: tfc.GDN pools the signed "
      f"x ** {alpha_parameter}, which jax_lrn.gdn (|x| ** alpha) does not compute."
    )
  try:
    y = gdn(
      x,
      beta_parameter,
      gamma_parameter,
      alpha=alpha,
      epsilon=epsilon,
      inverse=inverse,
      rectify=rectify,
      channel_axis=channel_axis,
    )
  except (TypeError, ValueError) as error:
    message = str(error)
    for ours, theirs in (
      ("beta", "beta_parameter"),
      ("gamma", "gamma_parameter"),
      ("alpha", "alpha_parameter"),
      ("epsilon", "epsilon_parameter"),
    ):
      if message.startswith(f"{ours} "):
        message = theirs + message[len(ours) :]
    raise type(error)(message) from error
  if signed and alpha != int(alpha):
    # TFC's nan, also in the gradients: y * (1 + nan) at every position with a negative input
    # (its cotangent is nan there too, and reaches x, beta and gamma as in TFC); y * 1 elsewhere.
    negative = jnp.any(x < 0, axis=channel_axis, keepdims=True)
    poison = jnp.where(negative, jnp.asarray(jnp.nan, y.dtype), jnp.zeros((), y.dtype))
    y = y * (1 + poison)
  return y


def _check_nchw(x) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 4:
    raise ValueError(
      f"CompressAI's GDN takes a 4-D NCHW input (x.size() is unpacked into N, C, H, W), got x "
      f"of shape {x.shape}; jax_lrn.gdn takes any rank."
    )
  return x


def _swap(gamma):
  """CompressAI's ``gamma[out, in]`` in jax_lrn's ``[in, out]`` orientation."""
  return jnp.swapaxes(jnp.asarray(gamma), 0, 1) if jnp.ndim(gamma) == 2 else jnp.asarray(gamma)


def compressai_gdn(
  x: jax.typing.ArrayLike,
  beta: jax.typing.ArrayLike,
  gamma: jax.typing.ArrayLike,
  *,
  inverse: bool = False,
) -> jax.Array:
  r"""CompressAI 1.2.8 ``GDN`` forward: ``y = x / sqrt(beta + conv1x1(x**2, gamma))``.

  .. math:: y_i = x_i \,/\, \sqrt{\beta_i + \textstyle\sum_j \gamma[i, j] \, x_j^2}

  ``gamma`` is CompressAI's ``[out, in]`` (the 1x1 convolution's weight; its docstring's
  ``gamma[j, i]`` describes the transpose), effective values as the layer computes them from
  its parameters (:func:`from_compressai_gdn` converts a state dict). ``inverse=True``
  multiplies (IGDN). NCHW only, as in CompressAI.

  Args:
    x: floating array ``(N, C, H, W)``.
    beta: ``(C,)`` array, ``>= 0``.
    gamma: ``(C, C)`` array, ``>= 0``, ``[out, in]``.
    inverse: IGDN.

  Returns:
    What CompressAI's layer returns, to float32 rounding.

  Raises:
    ValueError: ``x`` is not 4-D; and the errors of :func:`jax_lrn.gdn`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> x = jnp.full((1, 2, 1, 1), 2.0, jnp.float32)
    >>> compat.compressai_gdn(x, jnp.ones(2, x.dtype), 0.1 * jnp.eye(2, dtype=x.dtype))[0, :, 0, 0]
    Array([1.6903085, 1.6903085], dtype=float32)
  """
  x = _check_nchw(x)
  return gdn(x, beta, _swap(gamma), alpha=2.0, epsilon=0.5, inverse=inverse, channel_axis=1)


def compressai_gdn1(
  x: jax.typing.ArrayLike,
  beta: jax.typing.ArrayLike,
  gamma: jax.typing.ArrayLike,
  *,
  inverse: bool = False,
) -> jax.Array:
  r"""CompressAI 1.2.8 ``GDN1`` (simplified GDN) forward: ``y = x / (beta + conv1x1(|x|,
  gamma))``.

  .. math:: y_i = x_i \,/\, \bigl(\beta_i + \textstyle\sum_j \gamma[i, j] \, |x_j|\bigr)

  Arguments and orientation as :func:`compressai_gdn`.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn import compat
    >>> x = jnp.full((1, 2, 1, 1), -2.0, jnp.float32)
    >>> beta, gamma = jnp.ones(2, x.dtype), 0.1 * jnp.eye(2, dtype=x.dtype)
    >>> compat.compressai_gdn1(x, beta, gamma)[0, :, 0, 0]  # -2 / 1.2
    Array([-1.6666666, -1.6666666], dtype=float32)
  """
  x = _check_nchw(x)
  return gdn(x, beta, _swap(gamma), alpha=1.0, epsilon=1.0, inverse=inverse, channel_axis=1)


# ---------------------------------------------------------------------------------------------
# Converters of stored (reparameterised) parameters.
# ---------------------------------------------------------------------------------------------


def _to_numpy(value, name: str) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor, without importing torch
    value = value.detach().cpu().numpy()
  elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a tf.Variable
    value = value.numpy()
  array = np.asarray(value)
  if not np.issubdtype(array.dtype, np.floating):
    raise TypeError(f"{name} must be a floating array, got dtype {array.dtype}.")
  return array


def _effective(raw: np.ndarray, bound, pedestal) -> np.ndarray:
  """``max(raw, bound)**2 - pedestal`` in ``raw``'s dtype, the references' read-out."""
  bound = np.asarray(bound, raw.dtype).reshape(())
  pedestal = np.asarray(pedestal, raw.dtype).reshape(())
  bounded = np.maximum(raw, bound)
  return bounded * bounded - pedestal


def _default_bound(minimum: float, dtype) -> np.ndarray:
  return np.asarray((minimum + PEDESTAL) ** 0.5, dtype)


def from_compressai_gdn(
  state_dict: Mapping[str, Any],
  *,
  simplified: bool = False,
  inverse: bool = False,
  channel_axis: int = 1,
) -> dict[str, Any]:
  """Keyword arguments of :func:`jax_lrn.gdn` for a CompressAI ``GDN`` or ``GDN1`` layer.

  ``state_dict`` is the layer's own state dict (for a layer inside a model, the entries under
  its prefix with the prefix removed): ``"beta"`` and ``"gamma"`` are the stored,
  reparameterised tensors (``gamma`` ``[out, in]``), and the buffers
  ``"beta_reparam.lower_bound.bound"``, ``"beta_reparam.pedestal"``,
  ``"gamma_reparam.lower_bound.bound"`` and ``"gamma_reparam.pedestal"`` (used when present;
  otherwise CompressAI's defaults: ``beta_min=1e-6``, pedestal ``2**-36``). The effective
  values are computed as the layer computes them (``max(raw, bound)**2 - pedestal``, in the
  stored dtype) and ``gamma`` is transposed to jax_lrn's ``[in, out]``, so
  ``gdn(x, **from_compressai_gdn(sd))`` gives what the CompressAI layer gives. CompressAI does
  not store whether a layer is ``GDN1`` or inverse: say so with ``simplified`` and
  ``inverse``. Torch tensors and NumPy arrays are accepted (torch is not imported).

  Args:
    state_dict: the layer's state dict.
    simplified: a ``GDN1`` (``alpha=1, epsilon=1``); else ``GDN`` (``alpha=2, epsilon=0.5``).
    inverse: the layer was built with ``inverse=True``.
    channel_axis: the channel axis of the JAX input (CompressAI's NCHW: 1; NHWC: -1).

  Returns:
    ``{"beta", "gamma", "alpha", "epsilon", "inverse", "channel_axis"}``; ``beta`` and
    ``gamma`` are NumPy arrays of the stored dtype.

  Raises:
    KeyError: ``"beta"`` or ``"gamma"`` is missing. ValueError: their shapes do not fit.

  Examples:
    >>> import numpy as np
    >>> from jax_lrn import compat
    >>> raw = {"beta": np.ones(2, np.float32), "gamma": np.sqrt(np.float32(0.1)) * np.eye(2)}
    >>> kw = compat.from_compressai_gdn(raw)
    >>> kw["alpha"], kw["epsilon"], kw["channel_axis"], kw["gamma"].round(6).tolist()
    (2.0, 0.5, 1, [[0.1, 0.0], [0.0, 0.1]])
  """
  for key in ("beta", "gamma"):
    if key not in state_dict:
      raise KeyError(
        f"state_dict has no {key!r} entry (keys: {sorted(state_dict)}); pass the GDN layer's "
        "own state dict, with any model prefix removed."
      )
  raw_beta = _to_numpy(state_dict["beta"], "state_dict['beta']")
  raw_gamma = _to_numpy(state_dict["gamma"], "state_dict['gamma']")
  channels = raw_beta.shape[0] if raw_beta.ndim == 1 else -1
  if raw_beta.ndim != 1 or raw_gamma.shape != (channels, channels):
    raise ValueError(
      f"state_dict['beta'] must have shape (C,) and state_dict['gamma'] (C, C), got "
      f"{raw_beta.shape} and {raw_gamma.shape}."
    )

  def buffer(name: str, default):
    return _to_numpy(state_dict[name], name) if name in state_dict else default

  beta = _effective(
    raw_beta,
    buffer("beta_reparam.lower_bound.bound", _default_bound(1e-6, raw_beta.dtype)),
    buffer("beta_reparam.pedestal", PEDESTAL),
  )
  gamma = _effective(
    raw_gamma,
    buffer("gamma_reparam.lower_bound.bound", _default_bound(0.0, raw_gamma.dtype)),
    buffer("gamma_reparam.pedestal", PEDESTAL),
  )
  return {
    "beta": beta,
    "gamma": np.ascontiguousarray(gamma.T),
    "alpha": 1.0 if simplified else 2.0,
    "epsilon": 1.0 if simplified else 0.5,
    "inverse": bool(inverse),
    "channel_axis": channel_axis,
  }


# TFC GDNParameter minimums (layers/gdn.py, GDN.build).
_TFC_MINIMUMS = {"alpha": 1.0, "beta": 1e-6, "gamma": 0.0, "epsilon": 1e-6}


def from_tfc_gdn(
  variables: Mapping[str, Any],
  *,
  inverse: bool = False,
  rectify: bool = False,
  data_format: str = "channels_last",
  alpha_parameter: float = 1.0,
  epsilon_parameter: float = 1.0,
  channel_axis: int | None = None,
) -> dict[str, Any]:
  """Keyword arguments of :func:`jax_lrn.gdn` for a trained ``tfc.GDN`` layer.

  ``variables`` maps the layer's variable names to values, e.g.
  ``{v.name: v.numpy() for v in layer.variables}``: names ending in ``reparam_beta`` and
  ``reparam_gamma`` (a scope prefix and a ``:0`` suffix are ignored), and ``reparam_alpha``,
  ``reparam_epsilon`` when the layer trained its exponents (``alpha_parameter=None``); those
  replace ``alpha_parameter`` and ``epsilon_parameter``. Each is read out as TFC's
  ``GDNParameter`` does (``lower_bound(v, sqrt(minimum + 2**-36))**2 - 2**-36`` in the
  variable's dtype; minimums 1e-6 for beta and epsilon, 0 for gamma, 1 for alpha). ``gamma`` is
  TFC's ``[in, out]``, jax_lrn's orientation. The other arguments are the layer's constructor
  arguments. TFC computes ``x ** alpha`` without ``|.|`` for an ``alpha`` other than 1 or 2
  (nan for negative inputs unless ``rectify``); :func:`jax_lrn.gdn` agrees with it wherever
  TFC's output is defined.

  Returns:
    ``{"beta", "gamma", "alpha", "epsilon", "inverse", "rectify", "channel_axis"}``;
    ``channel_axis`` is ``data_format``'s unless given.

  Raises:
    KeyError: no variable named ``...reparam_beta`` or ``...reparam_gamma``. ValueError: an
      unknown ``data_format``.

  Examples:
    >>> import numpy as np
    >>> from jax_lrn import compat
    >>> raw = {"gdn/reparam_beta:0": np.ones(2, np.float32),
    ...        "gdn/reparam_gamma:0": np.sqrt(np.float32(0.1)) * np.eye(2, dtype=np.float32)}
    >>> kw = compat.from_tfc_gdn(raw, alpha_parameter=2, epsilon_parameter=0.5)
    >>> kw["alpha"], kw["epsilon"], kw["channel_axis"], kw["gamma"].astype(float).round(6).tolist()
    (2.0, 0.5, -1, [[0.1, 0.0], [0.0, 0.1]])
  """
  if not isinstance(data_format, str) or data_format not in DATA_FORMATS:
    raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}.")
  found: dict[str, np.ndarray] = {}
  for key, value in variables.items():
    short = str(key).split("/")[-1].split(":")[0]
    for name in _TFC_MINIMUMS:
      if short.endswith(f"reparam_{name}"):
        found[name] = _to_numpy(value, str(key))
  for name in ("beta", "gamma"):
    if name not in found:
      raise KeyError(
        f"variables has no name ending in 'reparam_{name}' (names: {sorted(map(str, variables))})."
      )
  values = {
    name: _effective(raw, _default_bound(_TFC_MINIMUMS[name], raw.dtype), PEDESTAL)
    for name, raw in found.items()
  }
  alpha = (
    float(values["alpha"]) if "alpha" in values else _exponent(alpha_parameter, "alpha_parameter")
  )
  epsilon = (
    float(values["epsilon"])
    if "epsilon" in values
    else _exponent(epsilon_parameter, "epsilon_parameter")
  )
  if channel_axis is None:
    channel_axis = 1 if data_format == "channels_first" else -1
  return {
    "beta": values["beta"],
    "gamma": values["gamma"],
    "alpha": alpha,
    "epsilon": epsilon,
    "inverse": bool(inverse),
    "rectify": bool(rectify),
    "channel_axis": channel_axis,
  }
