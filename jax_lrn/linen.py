"""Local response normalization as a ``flax.linen`` module, a thin shell over ``jax_lrn.lrn``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jax_lrn._contrast import DEFAULT_EPS, check_layer_arguments, layer_call
from jax_lrn._gdn import apply_layer, effective_parameters, initial_beta, initial_gamma
from jax_lrn._gdn import check_layer_arguments as check_gdn_arguments
from jax_lrn._layer import (
  Learnable,
  check_hyperparameters,
  constrain,
  initial_raw,
  learned_names,
  normalize,
)
from jax_lrn._lrn import EvenPlacement, Implementation, Mode, _canonical_axis


class LocalResponseNorm(nn.Module):
  r"""Local response normalization layer (Flax Linen).

  .. math::

    y_i = x_i \, \Bigl(k + \frac{\alpha}{n} \sum_{j \in W(i)} x_j^2\Bigr)^{-\beta}

  The fields are the arguments of :func:`jax_lrn.lrn`, with the same names and defaults, and
  the output is exactly ``lrn(x, ...)`` (and equal to :class:`jax_lrn.nnx.LocalResponseNorm`'s):
  ``alpha`` is divided by the window's element count ``n`` (Caffe, PyTorch, ONNX); for the
  AlexNet paper's ``alpha=1e-4`` (not divided) pass ``alpha=5e-4`` with ``size=5``.

  By default ``init`` returns no parameters. With ``learnable=True`` the module has three
  scalar params ``raw_alpha``, ``raw_beta``, ``raw_k``; with a sequence of names
  (``learnable=("beta",)``) only those, the others stay the fixed fields. The values used are
  ``softplus(raw)`` (always ``> 0``), and the raw params are initialised to ``softplus^{-1}`` of
  the given values, so a fresh module computes exactly what the fixed one does. Gradients reach
  them through the ``custom_vjp`` of :func:`jax_lrn.lrn`. :meth:`values` reads the current
  values of the learned ones from params (the fields hold the initial values).
  A 16-bit ``param_dtype`` rounds the raw params and so moves the initial values, as described
  for :class:`jax_lrn.nnx.LocalResponseNorm` (bfloat16: ``alpha=1e-4`` starts at ``1.025e-4``).

  Attributes:
    size: window length (per spatial axis in ``within_channel`` mode); a positive int.
    alpha: scale of the summed squares (divided by ``n``); ``>= 0`` (``> 0`` if learnable).
    beta: exponent (``> 0`` if learnable).
    k: additive constant; ``>= 0`` (``> 0`` if learnable).
    mode: ``"across_channels"`` or ``"within_channel"``.
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    spatial_axes: ``within_channel`` only; ``None`` = every axis but 0 and ``channel_axis``,
      for inputs of rank ``>= 4`` with ``channel_axis != 0`` (others must name their axes).
    even_placement: ``"before"`` (PyTorch) or ``"after"`` (ONNX, cuDNN) for even sizes.
    learnable: ``True`` to train ``alpha``, ``beta`` and ``k``; a name or a sequence of names
      (e.g. ``("beta",)``) to train only those; ``False`` (default) for none.
    param_dtype: dtype of the raw params when learnable: float16, bfloat16, float32 or float64.
    implementation: ``None`` (the platform's choice), ``"shifted"`` or ``"reduce_window"``, as
      for :func:`jax_lrn.lrn`.
    dtype: the dtype of the computation and the output, as in Flax's normalization layers:
      ``x`` is cast to it first; ``None`` (default) keeps ``x``'s dtype.

  Raises:
    TypeError, ValueError: at construction (so also from ``init``) for a bad size, mode,
      placement, value or type; at ``init`` for axes out of range for the input (the messages
      of :func:`jax_lrn.lrn`).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.linen import LocalResponseNorm
    >>> x = jnp.ones((2, 8, 8, 16))
    >>> norm = LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)  # AlexNet paper values
    >>> variables = norm.init(jax.random.key(0), x)
    >>> variables
    {}
    >>> norm.apply(variables, x).shape
    (2, 8, 8, 16)
    >>> learned = LocalResponseNorm(size=3, alpha=1.0, learnable=True)
    >>> params = learned.init(jax.random.key(0), x)["params"]
    >>> sorted(params)
    ['raw_alpha', 'raw_beta', 'raw_k']
    >>> {name: round(float(v), 4) for name, v in LocalResponseNorm.values(params).items()}
    {'alpha': 1.0, 'beta': 0.75, 'k': 1.0}
    >>> only_beta = LocalResponseNorm(size=3, learnable=("beta",))
    >>> list(only_beta.init(jax.random.key(0), x)["params"])
    ['raw_beta']
  """

  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 1.0
  mode: Mode = "across_channels"
  channel_axis: int = -1
  spatial_axes: Sequence[int] | None = None
  even_placement: EvenPlacement = "before"
  learnable: Learnable = False
  param_dtype: Any = jnp.float32
  implementation: Implementation | None = None
  dtype: Any = None

  def __post_init__(self) -> None:
    spatial_axes, _ = check_hyperparameters(
      self.size,
      self.alpha,
      self.beta,
      self.k,
      mode=self.mode,
      channel_axis=self.channel_axis,
      spatial_axes=self.spatial_axes,
      even_placement=self.even_placement,
      implementation=self.implementation,
      learnable=self.learnable,
      param_dtype=self.param_dtype,
      dtype=self.dtype,
    )
    # Tuples keep the module hashable when spatial_axes or learnable is given as a list.
    object.__setattr__(self, "spatial_axes", spatial_axes)
    if not isinstance(self.learnable, (bool, str)):
      object.__setattr__(self, "learnable", tuple(self.learnable))
    super().__post_init__()

  @staticmethod
  def values(params: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The learned ones of ``alpha``, ``beta``, ``k`` (all three for ``learnable=True``), from
    the module's ``params`` collection."""
    return {name[4:]: constrain(raw) for name, raw in params.items() if name.startswith("raw_")}

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
    params = {
      f"raw_{name}": self.param(
        f"raw_{name}", lambda _key, v: initial_raw(v, self.param_dtype), getattr(self, name)
      )
      for name in learned_names(self.learnable)
    }
    hyper = {"alpha": self.alpha, "beta": self.beta, "k": self.k, **self.values(params)}
    return normalize(
      x,
      self.size,
      hyper,
      mode=self.mode,
      channel_axis=self.channel_axis,
      spatial_axes=self.spatial_axes,
      even_placement=self.even_placement,
      implementation=self.implementation,
      dtype=self.dtype,
    )


class LocalContrastNorm(nn.Module):
  r"""Local contrast normalization layer (Flax Linen), Jarrett et al. 2009.

  .. math::

    v = x - \frac{w * x}{m}, \qquad \sigma = \Bigl(\frac{w * v^2}{m}\Bigr)^{1/2}, \qquad
    y = \frac{v}{\max(\sigma, \operatorname{mean}_p \sigma, \epsilon)}

  The fields are the arguments of :func:`jax_lrn.local_contrast_norm`, and the output is
  exactly ``local_contrast_norm(x, ...)`` (and equal to :class:`jax_lrn.nnx.LocalContrastNorm`'s).
  ``init`` returns no parameters; see :class:`jax_lrn.nnx.LocalContrastNorm` for why.

  Attributes:
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation, or ``None`` for ``sqrt(size) / 2``.
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    spatial_axes: ``None`` = every axis but 0 and ``channel_axis`` (inputs of rank >= 4).
    eps: floor of the divisor.
    dtype: the dtype of the computation and the output: ``x`` is cast to it first; ``None``
      (default) keeps ``x``'s dtype.

  Raises:
    TypeError, ValueError: at construction for a bad size, sigma, eps or axis type; at
      ``init`` for axes out of range for the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.linen import LocalContrastNorm
    >>> x = jnp.ones((2, 8, 8, 3))
    >>> norm = LocalContrastNorm(size=5)
    >>> norm.init(jax.random.key(0), x)
    {}
    >>> norm.apply({}, x).shape
    (2, 8, 8, 3)
  """

  size: int = 9
  sigma: float | None = None
  channel_axis: int = -1
  spatial_axes: Sequence[int] | None = None
  eps: float = DEFAULT_EPS
  dtype: Any = None

  def __post_init__(self) -> None:
    spatial_axes = check_layer_arguments(
      self.size, self.sigma, self.channel_axis, self.spatial_axes, self.eps, self.dtype
    )
    # A tuple keeps the module hashable when spatial_axes is given as a list.
    object.__setattr__(self, "spatial_axes", spatial_axes)
    super().__post_init__()

  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
    return layer_call(self, x)


class _GDNLayer(nn.Module):
  """What :class:`GDN` and :class:`SpatialGDN` share: the fields, their check, the params and
  the call."""

  inverse: bool = False
  rectify: bool = False
  alpha: float = 2.0
  epsilon: float = 0.5
  beta_min: float = 1e-6
  gamma_init: float = 0.1
  channel_axis: int = -1
  param_dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    settings = check_gdn_arguments(
      None,
      getattr(self, "window_shape", None),
      inverse=self.inverse,
      rectify=self.rectify,
      alpha=self.alpha,
      epsilon=self.epsilon,
      beta_min=self.beta_min,
      gamma_init=self.gamma_init,
      channel_axis=self.channel_axis,
      param_dtype=self.param_dtype,
    )
    if "window_shape" in settings:
      # A tuple keeps the module hashable when window_shape is given as a list.
      object.__setattr__(self, "window_shape", settings["window_shape"])
    super().__post_init__()

  def values(self, params: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The effective ``beta`` and ``gamma``, from the module's ``params`` collection."""
    return effective_parameters(params["raw_beta"], params["raw_gamma"], self.beta_min)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
    x = jnp.asarray(x)
    channels = x.shape[_canonical_axis(self.channel_axis, x.ndim, "channel_axis")] if x.ndim else 0
    window = getattr(self, "window_shape", ())
    # Each initializer runs once, at init only.
    raw_beta = self.param("raw_beta", lambda _key: initial_beta(channels, self.param_dtype))
    raw_gamma = self.param(
      "raw_gamma", lambda _key: initial_gamma(channels, self.gamma_init, self.param_dtype, window)
    )
    return apply_layer(x, self, raw_beta, raw_gamma)


class GDN(_GDNLayer):
  r"""Generalized divisive normalization layer (Flax Linen): GDN, IGDN or the simplified GDN.

  .. math::

    y_i = \frac{x_i}{\bigl(\beta_i + \sum_j \gamma_{ji} \, |x_j|^{\alpha}\bigr)^{\epsilon}}

  The fields are those of :class:`jax_lrn.nnx.GDN` without ``num_features``, which ``init``
  reads from the input's ``channel_axis``; the output is :func:`jax_lrn.gdn` with the module's
  settings and equals the NNX layer's. The params ``raw_beta`` (``(C,)``) and ``raw_gamma``
  (``(C, C)``) are the references' reparameterised values, initialised to beta = 1 and gamma =
  ``gamma_init * I`` and read through the lower bound described for :class:`jax_lrn.nnx.GDN`;
  :meth:`values` gives the effective ``beta`` and ``gamma``.

  Attributes:
    inverse: IGDN (multiply by the pool's power instead of dividing).
    rectify: apply ``max(x, 0)`` first.
    alpha: exponent of ``|x_j|`` (a real number ``> 0``; fixed).
    epsilon: exponent of the pool (a real number ``>= 0``; fixed).
    beta_min: lower bound of ``beta`` (``>= 0``).
    gamma_init: initial diagonal of ``gamma`` (``>= 0``).
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    param_dtype: dtype of the params: float16, bfloat16, float32 or float64.

  Raises:
    TypeError, ValueError: at construction (so also from ``init``) for a bad field; at ``init``
      for a ``channel_axis`` out of range; at ``apply`` for an input whose channel count differs
      from the params' (the messages of :func:`jax_lrn.gdn`).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.linen import GDN
    >>> x = jnp.full((2, 4, 4, 3), 2.0, jnp.float32)
    >>> params = GDN().init(jax.random.key(0), x)["params"]
    >>> {name: p.shape for name, p in params.items()}
    {'raw_beta': (3,), 'raw_gamma': (3, 3)}
    >>> GDN().apply({"params": params}, x)[0, 0, 0]  # 2 / sqrt(1 + 0.1 * 2**2)
    Array([1.6903085, 1.6903085, 1.6903085], dtype=float32)
  """


class SpatialGDN(_GDNLayer, kw_only=True):
  r"""Spatial generalized divisive normalization layer (Flax Linen): :class:`GDN` whose pool
  also runs over a window of positions.

  .. math::

    y_i(p) = \frac{x_i(p)}{\bigl(\beta_i + \sum_{o} \sum_j \gamma_{o, j, i} \,
    |x_j(p + o - c)|^{\alpha}\bigr)^{\epsilon}}

  The fields are those of :class:`GDN` and ``window_shape``, which is keyword-only and required
  (``SpatialGDN(window_shape=(3, 3))``); the output is :func:`jax_lrn.spatial_gdn` with the
  module's settings and equals the NNX layer's (:class:`jax_lrn.nnx.SpatialGDN`, which describes
  the initialisation: gamma = ``gamma_init * I`` at the window index ``(k - 1) // 2`` per size
  ``k``, the tap that reads the position itself, and 0 elsewhere, so that a fresh layer computes
  what a fresh :class:`GDN` does). ``init`` reads ``C`` from the input's ``channel_axis``; the
  params are ``raw_beta`` (``(C,)``) and ``raw_gamma`` (``(*window_shape, C, C)``).

  Attributes:
    window_shape: the window's size per spatial axis, e.g. ``(3, 3)``: a sequence of positive
      ints.

  Raises:
    TypeError, ValueError: at construction for a bad field; at ``init`` or ``apply`` for an input
      whose rank does not fit ``window_shape``, or whose channel count differs from the params'.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.linen import SpatialGDN
    >>> x = jnp.full((2, 4, 4, 3), 2.0, jnp.float32)
    >>> params = SpatialGDN(window_shape=(3, 3)).init(jax.random.key(0), x)["params"]
    >>> {name: p.shape for name, p in params.items()}
    {'raw_beta': (3,), 'raw_gamma': (3, 3, 3, 3)}
  """

  window_shape: Sequence[int]
