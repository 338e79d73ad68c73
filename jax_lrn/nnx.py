"""Local response normalization as a ``flax.nnx`` module, a thin shell over ``jax_lrn.lrn``."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

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


def _signature_of_init(cls):
  """Gives ``cls`` its ``__init__``'s signature (without ``self``) as ``__signature__``: NNX
  modules are built through their metaclass's ``__call__(*args, **kwargs)``, which is otherwise
  what ``inspect.signature`` and the API reference show for the class."""
  parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
  cls.__signature__ = inspect.Signature(parameters)
  return cls


class _Learned:
  """``layer.<name>`` of a learnable layer: ``softplus`` of its raw parameter, read now."""

  def __set_name__(self, owner, name: str) -> None:
    self.raw_name = f"raw_{name}"

  def __get__(self, layer, owner=None):
    if layer is None:
      return self
    return constrain(getattr(layer, self.raw_name)[...])


@_signature_of_init
class LocalResponseNorm(nnx.Module):
  r"""Local response normalization layer (Flax NNX).

  .. math::

    y_i = x_i \, \Bigl(k + \frac{\alpha}{n} \sum_{j \in W(i)} x_j^2\Bigr)^{-\beta}

  The arguments are those of :func:`jax_lrn.lrn`, with the same names and defaults, and the
  output is exactly ``lrn(x, ...)``: ``alpha`` is divided by the window's element count ``n``
  (Caffe, PyTorch, ONNX); for the AlexNet paper's ``alpha=1e-4`` (not divided) pass
  ``alpha=5e-4`` with ``size=5``.

  By default the layer has no parameters (``nnx.state(layer)`` is empty) and needs no ``rngs``
  (it accepts and ignores one, as model-building code passes ``rngs`` to every layer);
  ``layer.alpha``, ``layer.beta``, ``layer.k`` are the given Python floats.
  With ``learnable=True`` it holds three ``nnx.Param`` scalars ``raw_alpha``, ``raw_beta``,
  ``raw_k``; with a sequence of names (``learnable=("beta",)``) only those, the others stay
  fixed. The values used are ``softplus(raw)`` (always ``> 0``), and the raw parameters are
  initialised to ``softplus^{-1}`` of the given values, so a fresh layer computes exactly what
  the fixed one does. Gradients reach them through the ``custom_vjp`` of :func:`jax_lrn.lrn`.
  ``layer.alpha``, ``layer.beta``, ``layer.k`` (and :meth:`values`) of a learned one are read
  from its raw parameter each time, so after training they are the trained values (scalar
  arrays); the layer keeps no copy of the initial values, and its repr shows the values in use.
  With a 16-bit ``param_dtype`` the raw parameters, and the values computed from them, are
  rounded to it, which moves the initial values by up to ``(|raw| + 1) * 2**-8`` (bfloat16) or
  ``* 2**-11`` (float16) relative: with bfloat16, ``alpha=1e-4`` starts at ``1.025e-4``. The
  default float32 keeps them to float32 rounding.

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
    param_dtype: dtype of the raw parameters when learnable: float16, bfloat16, float32 or
      float64.
    dtype: the dtype of the computation and the output, as in Flax's normalization layers:
      ``x`` is cast to it first (16-bit dtypes then compute in float32 inside :func:`lrn`);
      ``None`` (default) keeps ``x``'s dtype.
    rngs: accepted and ignored (the layer draws no random numbers).

  Raises:
    TypeError, ValueError: at construction for a bad size, mode, placement, value or type; at
      the first call for axes out of range for the input (the messages of :func:`jax_lrn.lrn`).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jax_lrn.nnx import LocalResponseNorm
    >>> norm = LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)  # AlexNet paper values
    >>> norm(jnp.ones((2, 8, 8, 16))).shape
    (2, 8, 8, 16)
    >>> len(nnx.state(norm))
    0
    >>> learned = LocalResponseNorm(size=3, alpha=1.0, k=1.0, learnable=True)
    >>> sorted(nnx.state(learned, nnx.Param).keys())
    ['raw_alpha', 'raw_beta', 'raw_k']
    >>> {name: round(float(v), 4) for name, v in learned.values().items()}
    {'alpha': 1.0, 'beta': 0.75, 'k': 1.0}
    >>> learned.raw_k[...] = jnp.float32(2.0)  # as an optimizer step would
    >>> round(float(learned.k), 4)  # softplus(2)
    2.1269
    >>> learned
    LocalResponseNorm(size=3, alpha=1.0, beta=0.75, k=2.12693, learnable=('alpha', 'beta', 'k'))
    >>> only_beta = LocalResponseNorm(size=3, learnable=("beta",), rngs=nnx.Rngs(0))
    >>> sorted(nnx.state(only_beta, nnx.Param).keys()), only_beta.alpha
    (['raw_beta'], 0.0001)
  """

  # A learnable layer's alpha, beta, k: read from its raw parameters (a fixed layer's plain
  # attributes of the same names take precedence over these non-data descriptors).
  alpha = _Learned()
  beta = _Learned()
  k = _Learned()

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
    rngs: nnx.Rngs | None = None,
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
    self.mode: Mode = mode
    self.channel_axis = int(channel_axis)
    self.even_placement: EvenPlacement = even_placement
    self.implementation: Implementation | None = implementation
    self.dtype = dtype
    self.param_dtype = param_dtype
    #: The names of the learned hyperparameters (``()`` for a fixed layer).
    self.learnable = learned
    given = {"alpha": alpha, "beta": beta, "k": k}
    for name in LEARNABLE:
      if name in learned:
        setattr(self, f"raw_{name}", nnx.Param(initial_raw(given[name], param_dtype)))
      else:
        setattr(self, name, float(given[name]))

  def values(self) -> dict[str, float | jax.Array]:
    """The ``alpha``, ``beta``, ``k`` the layer uses now (arrays for the learned ones)."""
    return {name: getattr(self, name) for name in LEARNABLE}

  def __repr__(self) -> str:
    return layer_repr(self)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
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


@_signature_of_init
class LocalContrastNorm(nnx.Module):
  r"""Local contrast normalization layer (Flax NNX), Jarrett et al. 2009.

  .. math::

    v = x - \frac{w * x}{m}, \qquad \sigma = \Bigl(\frac{w * v^2}{m}\Bigr)^{1/2}, \qquad
    y = \frac{v}{\max(\sigma, \operatorname{mean}_p \sigma, \epsilon)}

  The arguments are those of :func:`jax_lrn.local_contrast_norm` (``w``: a Gaussian over the
  spatial axes, uniform over channels; ``m``: its mass inside the array), and the output is
  exactly ``local_contrast_norm(x, ...)``. The layer has no parameters (``nnx.state(layer)`` is
  empty) and needs no ``rngs`` (it accepts and ignores one): the window and the floor are
  hyperparameters (a trainable ``sigma`` would make the window's weights traced values), and
  the contrast a later layer
  needs is what that layer's own weights provide (a following convolution scales and shifts
  each channel as a learnable affine would).

  Args:
    size: window length along each spatial axis; a positive int.
    sigma: the Gaussian's standard deviation, or ``None`` for ``sqrt(size) / 2``.
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    spatial_axes: ``None`` = every axis but 0 and ``channel_axis`` (inputs of rank >= 4).
    eps: floor of the divisor.
    dtype: the dtype of the computation and the output: ``x`` is cast to it first; ``None``
      (default) keeps ``x``'s dtype.
    rngs: accepted and ignored (the layer draws no random numbers).

  Raises:
    TypeError, ValueError: at construction for a bad size, sigma, eps or axis type; at the
      first call for axes out of range for the input (the messages of
      :func:`jax_lrn.local_contrast_norm`).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jax_lrn.nnx import LocalContrastNorm
    >>> norm = LocalContrastNorm(size=5)
    >>> norm(jnp.ones((2, 8, 8, 3))).shape
    (2, 8, 8, 3)
    >>> len(nnx.state(norm))
    0
  """

  def __init__(
    self,
    size: int = 9,
    *,
    sigma: float | None = None,
    channel_axis: int = -1,
    spatial_axes: Sequence[int] | None = None,
    eps: float = DEFAULT_EPS,
    dtype: jnp.dtype | None = None,
    rngs: nnx.Rngs | None = None,
  ):
    del rngs
    self.spatial_axes = check_layer_arguments(size, sigma, channel_axis, spatial_axes, eps, dtype)
    self.dtype = dtype
    self.size = int(size)
    self.sigma = None if sigma is None else float(sigma)
    self.channel_axis = int(channel_axis)
    self.eps = float(eps)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
    return layer_call(self, x)


class _GDNLayer(nnx.Module):
  """What :class:`GDN` and :class:`SpatialGDN` share: the settings, the stored parameters and
  the call."""

  num_features: int
  inverse: bool
  rectify: bool
  alpha: float
  epsilon: float
  beta_min: float
  gamma_init: float
  channel_axis: int

  def _setup(self, num_features, window_shape, *, param_dtype, **settings) -> None:
    settings, raw_beta, raw_gamma = new_layer(
      num_features, window_shape, param_dtype=param_dtype, **settings
    )
    for name, value in settings.items():
      setattr(self, name, value)
    self.raw_beta = nnx.Param(raw_beta)
    self.raw_gamma = nnx.Param(raw_gamma)

  def values(self) -> dict[str, jax.Array]:
    """The effective ``beta`` and ``gamma`` the layer uses now."""
    return effective_parameters(self.raw_beta[...], self.raw_gamma[...], self.beta_min)

  @property
  def beta(self) -> jax.Array:
    """The effective ``beta``, shape ``(C,)``."""
    return self.values()["beta"]

  @property
  def gamma(self) -> jax.Array:
    """The effective ``gamma``, shape ``(C, C)`` (``(*window_shape, C, C)`` for
    :class:`SpatialGDN`), ``gamma[..., j, i]`` = input j -> output i."""
    return self.values()["gamma"]

  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes ``x``; returns an array of its shape and dtype."""
    return apply_layer(x, self, self.raw_beta[...], self.raw_gamma[...])


@_signature_of_init
class GDN(_GDNLayer):
  r"""Generalized divisive normalization layer (Flax NNX): GDN, IGDN or the simplified GDN.

  .. math::

    y_i = \frac{x_i}{\bigl(\beta_i + \sum_j \gamma_{ji} \, |x_j|^{\alpha}\bigr)^{\epsilon}}

  The output is :func:`jax_lrn.gdn` with the layer's ``inverse``, ``rectify``, ``alpha``,
  ``epsilon``, ``channel_axis`` and its current ``beta`` and ``gamma``. The defaults are the
  classic GDN (CompressAI ``GDN``); ``alpha=1.0, epsilon=1.0`` is CompressAI's ``GDN1`` and
  ``tfc.GDN()``'s default.

  ``beta`` (shape ``(C,)``) and ``gamma`` (``(C, C)``, ``gamma[j, i]`` weighting input channel
  ``j`` in output channel ``i``) are learned as in tensorflow_compression and CompressAI: the
  ``nnx.Param``\ s ``raw_beta`` and ``raw_gamma`` hold ``sqrt(max(v + p, p))`` of the initial
  values ``v`` (beta = 1, gamma = ``gamma_init * I``; pedestal ``p = 2**-36``), and the values
  used are ``lower_bound(raw, sqrt(minimum + p))**2 - p`` with ``minimum = beta_min`` for beta
  and 0 for gamma. The lower bound's gradient passes where ``raw`` is at or above the bound, or
  where the gradient is negative, so that a descent step moves the parameter up again
  (:func:`jax_lrn.compat.from_compressai_gdn` describes porting trained weights). A fresh layer
  gives what a freshly built CompressAI or TFC layer gives (float32 ``param_dtype``).
  ``layer.beta``, ``layer.gamma`` (and :meth:`values`) read the current values.

  Args:
    num_features: the channel count ``C`` (NNX creates parameters at construction).
    inverse: IGDN (multiply by the pool's power instead of dividing).
    rectify: apply ``max(x, 0)`` first.
    alpha: exponent of ``|x_j|`` (a real number ``> 0``; fixed).
    epsilon: exponent of the pool (a real number ``>= 0``; fixed).
    beta_min: lower bound of ``beta`` (``>= 0``).
    gamma_init: initial diagonal of ``gamma`` (``>= 0``).
    channel_axis: the channel axis (default ``-1``, NHWC; ``1`` for NCHW).
    param_dtype: dtype of ``raw_beta`` and ``raw_gamma``: float16, bfloat16, float32 or float64.
    rngs: unused (the initialisation is deterministic); accepted for the usual NNX signature.

  Raises:
    TypeError, ValueError: at construction for a bad argument; at the first call for an input
      whose channel count along ``channel_axis`` is not ``num_features`` (the messages of
      :func:`jax_lrn.gdn`).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jax_lrn.nnx import GDN
    >>> layer = GDN(3)
    >>> sorted(nnx.state(layer, nnx.Param).keys())
    ['raw_beta', 'raw_gamma']
    >>> layer(jnp.full((2, 4, 4, 3), 2.0, jnp.float32))[0, 0, 0]  # 2 / sqrt(1 + 0.1 * 2**2)
    Array([1.6903085, 1.6903085, 1.6903085], dtype=float32)
    >>> igdn = GDN(3, inverse=True, alpha=1.0, epsilon=1.0)
    >>> igdn(jnp.full((3,), -2.0, jnp.float32))  # -2 * (1 + 0.2)
    Array([-2.4, -2.4, -2.4], dtype=float32)
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
    rngs: nnx.Rngs | None = None,
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


@_signature_of_init
class SpatialGDN(_GDNLayer):
  r"""Spatial generalized divisive normalization layer (Flax NNX): :class:`GDN` whose pool
  also runs over a window of positions.

  .. math::

    y_i(p) = \frac{x_i(p)}{\bigl(\beta_i + \sum_{o} \sum_j \gamma_{o, j, i} \,
    |x_j(p + o - c)|^{\alpha}\bigr)^{\epsilon}}

  The output is :func:`jax_lrn.spatial_gdn` with the layer's settings and its current ``beta``
  (``(C,)``) and ``gamma`` (``(*window_shape, C, C)``, the ``HWIO`` layout), learned through the
  reparameterisation and lower bound of :class:`GDN`. The arguments are :class:`GDN`'s and
  ``window_shape``, one size per spatial axis. A fresh layer has beta = 1 and gamma =
  ``gamma_init * I`` at the window index ``c = (k - 1) // 2`` per size ``k`` and 0 elsewhere:
  ``c`` is the index whose tap reads the position itself (the middle for odd ``k``; for even
  ``k`` the window reaches one position further after than before), so a fresh layer computes
  what a fresh :class:`GDN` does. Positions outside the input count as 0.

  Inputs are ``(N, *spatial, C)`` (``channel_axis=-1``) or ``(N, C, *spatial)``
  (``channel_axis=1``) with ``len(window_shape)`` spatial axes; an input without the batch axis
  (one axis fewer) is normalized as a batch of one, its ``channel_axis`` counted without the
  batch axis.

  Args:
    num_features: the channel count ``C``.
    window_shape: the window's size per spatial axis, e.g. ``(3, 3)``: a sequence of positive
      ints (not a single int: ``gamma``'s shape is fixed at construction).

  Raises:
    TypeError, ValueError: at construction for a bad argument; at the first call for an input
      whose rank does not fit ``window_shape`` or whose channel count is not ``num_features``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jax_lrn.nnx import GDN, SpatialGDN
    >>> layer = SpatialGDN(3, (3, 3))
    >>> layer.raw_gamma.shape
    (3, 3, 3, 3)
    >>> x = jnp.full((2, 4, 4, 3), 2.0, jnp.float32)
    >>> bool(jnp.array_equal(layer(x), GDN(3)(x)))  # fresh: the centre tap alone
    True
  """

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
    rngs: nnx.Rngs | None = None,
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
