"""Local response normalization as an ``equinox.Module``, a thin shell over ``jax_lrn.lrn``.

This is the only module of jax_lrn that imports Equinox (``pip install 'jax-lrn[equinox]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp

from jax_lrn._contrast import DEFAULT_EPS, check_layer_arguments, layer_call
from jax_lrn._gdn import apply_layer, effective_parameters, new_layer
from jax_lrn._layer import (
  LEARNABLE,
  Learnable,
  check_hyperparameters,
  constrain,
  initial_raw,
  layer_repr,
  normalize,
)
from jax_lrn._lrn import EvenPlacement, Implementation, Mode


class LocalResponseNorm(eqx.Module):
  r"""Local response normalization layer (Equinox).

  .. math::

    y_i = x_i \, \Bigl(k + \frac{\alpha}{n} \sum_{j \in W(i)} x_j^2\Bigr)^{-\beta}

  The arguments are those of :func:`jax_lrn.lrn` and of the Flax layers
  (:class:`jax_lrn.nnx.LocalResponseNorm`, :class:`jax_lrn.linen.LocalResponseNorm`), with the
  same names and defaults, and the output is exactly ``lrn(x, ...)``: ``alpha`` is divided by
  the window's element count ``n`` (Caffe, PyTorch, ONNX); for the AlexNet paper's
  ``alpha=1e-4`` (not divided) pass ``alpha=5e-4`` with ``size=5``.

  The hyperparameters are static fields, so by default the layer has no array leaves
  (``eqx.filter(layer, eqx.is_array)`` holds nothing to train). With ``learnable=True`` it holds
  three scalar arrays ``raw_alpha``, ``raw_beta``, ``raw_k`` (with a sequence of names,
  ``learnable=("beta",)``, only those; ``None`` for the others), which ``eqx.filter_grad`` and
  optax reach like any other parameter; the values used are ``softplus(raw)`` (always
  ``> 0``), and the raw parameters are initialised to ``softplus^{-1}`` of the given values, so
  a fresh layer computes exactly what the fixed one does. Gradients reach them through the
  ``custom_vjp`` of :func:`jax_lrn.lrn`. ``layer.alpha``, ``layer.beta``, ``layer.k`` are the
  values in use, as in the NNX layer: the given Python floats for fixed ones, ``softplus`` of
  the raw parameter (a scalar array, the trained value after training) for learned ones.

  The layer works under ``eqx.filter_jit`` and ``eqx.filter_vmap`` (pass ``spatial_axes`` for
  unbatched within-channel inputs, as with ``jax.vmap``).

  Args:
    size: window length (per spatial axis in ``within_channel`` mode); a positive int.
    alpha: scale of the summed squares (divided by ``n``); ``>= 0`` (``> 0`` if learnable).
    beta: exponent (``> 0`` if learnable).
    k: additive constant; ``>= 0`` (``> 0`` if learnable).
    mode: ``"across_channels"`` or ``"within_channel"``.
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    spatial_axes: ``within_channel`` only; ``None`` = every axis but 0 and ``channel_axis``,
      for inputs of rank ``>= 4`` with ``channel_axis != 0`` (others must name their axes).
    even_placement: ``"before"`` (PyTorch) or ``"after"`` (ONNX, cuDNN) for even sizes.
    implementation: ``None`` (the platform's choice), ``"shifted"`` or ``"reduce_window"``, as
      for :func:`jax_lrn.lrn`.
    learnable: ``True`` to train ``alpha``, ``beta`` and ``k``; a name or a sequence of names
      (e.g. ``("beta",)``) to train only those; ``False`` (default) for none.
    param_dtype: dtype of the raw parameters when learnable.
    dtype: the dtype of the computation and the output: ``x`` is cast to it first; ``None``
      (default) keeps ``x``'s dtype.
    rngs: accepted and ignored, as by the NNX layer (the signatures are the same).

  Raises:
    TypeError, ValueError: at construction for a bad size, mode, placement, value or type; at
      the first call for axes out of range for the input (the messages of :func:`jax_lrn.lrn`).

  Examples:
    >>> import equinox as eqx
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.equinox import LocalResponseNorm
    >>> norm = LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)  # AlexNet paper values
    >>> norm(jnp.ones((2, 8, 8, 16))).shape
    (2, 8, 8, 16)
    >>> jax.tree_util.tree_leaves(norm)  # no parameters
    []
    >>> learned = LocalResponseNorm(size=3, alpha=1.0, k=1.0, learnable=True)
    >>> {name: round(float(v), 4) for name, v in learned.values().items()}
    {'alpha': 1.0, 'beta': 0.75, 'k': 1.0}
    >>> grads = eqx.filter_grad(lambda m, x: m(x).sum())(learned, jnp.ones((2, 8, 8, 16)))
    >>> [name for name in ("raw_alpha", "raw_beta", "raw_k") if getattr(grads, name) is not None]
    ['raw_alpha', 'raw_beta', 'raw_k']
    >>> LocalResponseNorm(size=3, learnable=("beta",), beta=0.5)
    LocalResponseNorm(size=3, alpha=0.0001, beta=0.5, k=1.0, learnable=('beta',))
  """

  size: int = eqx.field(static=True)
  mode: Mode = eqx.field(static=True)
  channel_axis: int = eqx.field(static=True)
  spatial_axes: tuple[int, ...] | None = eqx.field(static=True)
  even_placement: EvenPlacement = eqx.field(static=True)
  implementation: Implementation | None = eqx.field(static=True)
  dtype: Any = eqx.field(static=True)
  param_dtype: Any = eqx.field(static=True)
  learnable: tuple[str, ...] = eqx.field(static=True)
  fixed: tuple[float | None, float | None, float | None] = eqx.field(static=True)
  raw_alpha: jax.Array | None
  raw_beta: jax.Array | None
  raw_k: jax.Array | None

  def __init__(
    self,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
    *,
    mode: Mode = "across_channels",
    channel_axis: int = -1,
    spatial_axes: Sequence[int] | None = None,
    even_placement: EvenPlacement = "before",
    implementation: Implementation | None = None,
    learnable: Learnable = False,
    param_dtype: jnp.dtype = jnp.float32,
    dtype: jnp.dtype | None = None,
    rngs: Any = None,
  ):
    del rngs
    self.spatial_axes, learned = check_hyperparameters(
      size,
      alpha,
      beta,
      k,
      mode=mode,
      channel_axis=channel_axis,
      spatial_axes=spatial_axes,
      even_placement=even_placement,
      implementation=implementation,
      learnable=learnable,
      param_dtype=param_dtype,
      dtype=dtype,
    )
    self.size = int(size)
    self.mode = mode
    self.channel_axis = int(channel_axis)
    self.even_placement = even_placement
    self.implementation = implementation
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.learnable = learned
    # A learned hyperparameter keeps no copy of its initial value (it would go stale in
    # training): it is read from its raw parameter. `fixed` holds the others (None if learned).
    given = (alpha, beta, k)
    fixed = [None if n in learned else float(v) for n, v in zip(LEARNABLE, given)]
    self.fixed = (fixed[0], fixed[1], fixed[2])
    self.raw_alpha, self.raw_beta, self.raw_k = (
      initial_raw(v, param_dtype) if n in learned else None for n, v in zip(LEARNABLE, given)
    )

  def _value(self, index: int) -> float | jax.Array:
    raw = (self.raw_alpha, self.raw_beta, self.raw_k)[index]
    return constrain(raw) if raw is not None else cast(float, self.fixed[index])

  @property
  def alpha(self) -> float | jax.Array:
    """``alpha`` in use: the given float, or ``softplus(raw_alpha)`` if learned."""
    return self._value(0)

  @property
  def beta(self) -> float | jax.Array:
    """``beta`` in use: the given float, or ``softplus(raw_beta)`` if learned."""
    return self._value(1)

  @property
  def k(self) -> float | jax.Array:
    """``k`` in use: the given float, or ``softplus(raw_k)`` if learned."""
    return self._value(2)

  def values(self) -> dict[str, float | jax.Array]:
    """The ``alpha``, ``beta``, ``k`` the layer uses now (arrays for the learned ones)."""
    return {name: self._value(i) for i, name in enumerate(LEARNABLE)}

  def __repr__(self) -> str:
    return layer_repr(self)

  def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype.

    ``key`` is unused: it is accepted, like Equinox's own layers do, so that the layer can sit
    in ``eqx.nn.Sequential``, which passes a key to every layer.
    """
    del key
    return normalize(
      x,
      self.size,
      self.values(),
      mode=self.mode,
      channel_axis=self.channel_axis,
      spatial_axes=self.spatial_axes,
      even_placement=self.even_placement,
      implementation=self.implementation,
      dtype=self.dtype,
    )


class LocalContrastNorm(eqx.Module):
  r"""Local contrast normalization layer (Equinox), Jarrett et al. 2009.

  .. math::

    v = x - \frac{w * x}{m}, \qquad \sigma = \Bigl(\frac{w * v^2}{m}\Bigr)^{1/2}, \qquad
    y = \frac{v}{\max(\sigma, \operatorname{mean}_p \sigma, \epsilon)}

  The arguments are those of :func:`jax_lrn.local_contrast_norm` and of the Flax layers, and the
  output is exactly ``local_contrast_norm(x, ...)``. The module has no array leaves; see
  :class:`jax_lrn.nnx.LocalContrastNorm` for why nothing is learnable.

  Args:
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation, or ``None`` for ``sqrt(size) / 2``.
    channel_axis: the channel axis (default ``-1``; Equinox's own convolutions are
      channel-first, ``channel_axis=0`` on an unbatched ``(C, H, W)`` input).
    spatial_axes: ``None`` = every axis but 0 and ``channel_axis`` (inputs of rank >= 4);
      unbatched inputs (the Equinox habit, with ``jax.vmap`` over the batch) name them, e.g.
      ``spatial_axes=(1, 2)`` for ``(C, H, W)``.
    eps: floor of the divisor.
    dtype: the dtype of the computation and the output: ``x`` is cast to it first; ``None``
      (default) keeps ``x``'s dtype.
    rngs: accepted and ignored, as by the NNX layer.

  Raises:
    TypeError, ValueError: at construction for a bad size, sigma, eps or axis type; at the
      first call for axes out of range for the input.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.equinox import LocalContrastNorm
    >>> norm = LocalContrastNorm(size=5, channel_axis=0, spatial_axes=(1, 2))
    >>> jax.vmap(norm)(jnp.ones((2, 3, 8, 8))).shape
    (2, 3, 8, 8)
  """

  size: int = eqx.field(static=True)
  sigma: float | None = eqx.field(static=True)
  channel_axis: int = eqx.field(static=True)
  spatial_axes: tuple[int, ...] | None = eqx.field(static=True)
  eps: float = eqx.field(static=True)
  dtype: Any = eqx.field(static=True)

  def __init__(
    self,
    size: int = 9,
    *,
    sigma: float | None = None,
    channel_axis: int = -1,
    spatial_axes: Sequence[int] | None = None,
    eps: float = DEFAULT_EPS,
    dtype: jnp.dtype | None = None,
    rngs: Any = None,
  ):
    del rngs
    self.spatial_axes = check_layer_arguments(size, sigma, channel_axis, spatial_axes, eps, dtype)
    self.dtype = dtype
    self.size = int(size)
    self.sigma = None if sigma is None else float(sigma)
    self.channel_axis = int(channel_axis)
    self.eps = float(eps)

  def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype (``key`` is unused, accepted
    for ``eqx.nn.Sequential``)."""
    del key
    return layer_call(self, x)


class _GDNLayer(eqx.Module):
  """What :class:`GDN` and :class:`SpatialGDN` share: the settings (static fields), the stored
  parameters (array leaves) and the call."""

  num_features: int = eqx.field(static=True)
  inverse: bool = eqx.field(static=True)
  rectify: bool = eqx.field(static=True)
  alpha: float = eqx.field(static=True)
  epsilon: float = eqx.field(static=True)
  beta_min: float = eqx.field(static=True)
  gamma_init: float = eqx.field(static=True)
  channel_axis: int = eqx.field(static=True)
  raw_beta: jax.Array
  raw_gamma: jax.Array

  def _setup(self, num_features, window_shape, *, param_dtype, **settings) -> None:
    settings, self.raw_beta, self.raw_gamma = new_layer(
      num_features, window_shape, param_dtype=param_dtype, **settings
    )
    for name, value in settings.items():
      setattr(self, name, value)

  def values(self) -> dict[str, jax.Array]:
    """The effective ``beta`` and ``gamma`` the layer uses now."""
    return effective_parameters(self.raw_beta, self.raw_gamma, self.beta_min)

  def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype. ``key`` is unused (accepted
    for ``eqx.nn.Sequential``)."""
    del key
    return apply_layer(x, self, self.raw_beta, self.raw_gamma)


class GDN(_GDNLayer):
  r"""Generalized divisive normalization layer (Equinox): GDN, IGDN or the simplified GDN.

  .. math::

    y_i = \frac{x_i}{\bigl(\beta_i + \sum_j \gamma_{ji} \, |x_j|^{\alpha}\bigr)^{\epsilon}}

  The arguments are those of :class:`jax_lrn.nnx.GDN` (the signatures are the same), and the
  output is :func:`jax_lrn.gdn` with the layer's settings, equal to the Flax layers'. The array
  leaves ``raw_beta`` (``(C,)``) and ``raw_gamma`` (``(C, C)``) are the references' reparameterised
  values, initialised to beta = 1 and gamma = ``gamma_init * I`` and read through the lower
  bound described for :class:`jax_lrn.nnx.GDN`; ``eqx.filter_grad`` and optax reach them like
  any other parameter. The other settings are static fields. :meth:`values` gives the effective
  ``beta`` and ``gamma``.

  Args:
    num_features: the channel count ``C``.
    inverse: IGDN (multiply by the pool's power instead of dividing).
    rectify: apply ``max(x, 0)`` first.
    alpha: exponent of ``|x_j|`` (a real number ``> 0``; fixed).
    epsilon: exponent of the pool (a real number ``>= 0``; fixed).
    beta_min: lower bound of ``beta`` (``>= 0``).
    gamma_init: initial diagonal of ``gamma`` (``>= 0``).
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW; ``0`` for Equinox's
      unbatched ``(C, H, W)`` convention).
    param_dtype: dtype of ``raw_beta`` and ``raw_gamma``.
    rngs: accepted and ignored, as by the NNX layer (the initial parameters are not random).

  Raises:
    TypeError, ValueError: at construction for a bad argument; at the first call for an input
      whose channel count is not ``num_features`` (the messages of :func:`jax_lrn.gdn`).

  Examples:
    >>> import equinox as eqx
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.equinox import GDN
    >>> layer = GDN(3, channel_axis=0)
    >>> layer(jnp.full((3, 4, 4), 2.0, jnp.float32))[:, 0, 0]  # 2 / sqrt(1 + 0.1 * 2**2)
    Array([1.6903085, 1.6903085, 1.6903085], dtype=float32)
    >>> grads = eqx.filter_grad(lambda m, x: m(x).sum())(layer, jnp.ones((3, 4, 4)))
    >>> grads.raw_gamma.shape
    (3, 3)
  """

  def __init__(
    self,
    num_features: int,
    *,
    inverse: bool = False,
    rectify: bool = False,
    alpha: float = 2.0,
    epsilon: float = 0.5,
    beta_min: float = 1e-6,
    gamma_init: float = 0.1,
    channel_axis: int = -1,
    param_dtype: jnp.dtype = jnp.float32,
    rngs: Any = None,
  ):
    del rngs
    self._setup(
      num_features,
      None,
      inverse=inverse,
      rectify=rectify,
      alpha=alpha,
      epsilon=epsilon,
      beta_min=beta_min,
      gamma_init=gamma_init,
      channel_axis=channel_axis,
      param_dtype=param_dtype,
    )


class SpatialGDN(_GDNLayer):
  r"""Spatial generalized divisive normalization layer (Equinox): :class:`GDN` whose pool also
  runs over a window of positions.

  .. math::

    y_i(p) = \frac{x_i(p)}{\bigl(\beta_i + \sum_{o} \sum_j \gamma_{o, j, i} \,
    |x_j(p + o - c)|^{\alpha}\bigr)^{\epsilon}}

  The arguments are those of :class:`jax_lrn.nnx.SpatialGDN` (the signatures are the same), and the
  output is :func:`jax_lrn.spatial_gdn` with the layer's settings, equal to the Flax layers'. The
  array leaves ``raw_beta`` (``(C,)``) and ``raw_gamma`` (``(*window_shape, C, C)``) are
  reparameterised as for :class:`GDN`; a fresh layer has gamma = ``gamma_init * I`` at the window
  index ``(k - 1) // 2`` per size ``k`` (the tap that reads the position itself) and 0 elsewhere, so
  it computes what a fresh :class:`GDN` does. An input without the batch axis, e.g. ``(C, H, W)``
  with ``channel_axis=0`` (Equinox's convention, under ``jax.vmap``), is normalized as a batch of
  one.

  Args:
    num_features: the channel count ``C``.
    window_shape: the window's size per spatial axis, e.g. ``(3, 3)``.
    rngs: accepted and ignored, as by the NNX layer (the initial parameters are not random).

  Raises:
    TypeError, ValueError: at construction for a bad argument; at the first call for an input
      whose rank does not fit ``window_shape`` or whose channel count is not ``num_features``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jax_lrn.equinox import SpatialGDN
    >>> layer = SpatialGDN(3, (3, 3), channel_axis=0)
    >>> layer(jnp.full((3, 4, 4), 2.0, jnp.float32))[:, 0, 0]  # 2 / sqrt(1 + 0.1 * 2**2)
    Array([1.6903085, 1.6903085, 1.6903085], dtype=float32)
    >>> jax.vmap(layer)(jnp.ones((5, 3, 4, 4), jnp.float32)).shape
    (5, 3, 4, 4)
  """

  window_shape: tuple[int, ...] = eqx.field(static=True)

  def __init__(
    self,
    num_features: int,
    window_shape: Sequence[int],
    *,
    inverse: bool = False,
    rectify: bool = False,
    alpha: float = 2.0,
    epsilon: float = 0.5,
    beta_min: float = 1e-6,
    gamma_init: float = 0.1,
    channel_axis: int = -1,
    param_dtype: jnp.dtype = jnp.float32,
    rngs: Any = None,
  ):
    del rngs
    self._setup(
      num_features,
      window_shape,
      inverse=inverse,
      rectify=rectify,
      alpha=alpha,
      epsilon=epsilon,
      beta_min=beta_min,
      gamma_init=gamma_init,
      channel_axis=channel_axis,
      param_dtype=param_dtype,
    )
