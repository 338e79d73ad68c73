"""Export to ONNX with jax2onnx: an ONNX ``LRN`` node where ONNX's convention fits.

``jax2onnx.to_onnx`` cannot trace :func:`jax_lrn.lrn` by itself (the per-platform choice of the
window sum lowers to JAX's ``platform_index``, which has no ONNX form). :func:`register` adds a
jax2onnx plugin for it; every ``lrn`` call, also inside the Flax and Equinox layers, then exports.
jax2onnx is an optional dependency (``pip install 'jax-lrn[onnx]'``), imported by
:func:`register` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jax_lrn._window import WindowConfig

__all__ = ["register"]

_registered = False

# The dtypes of ONNX LRN (opset 13: float16, float, double, bfloat16) and those onnxruntime's
# CPU kernel runs (float; float16 through a cast it inserts).
_SPEC_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32", "float64"))
_ORT_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32"))

# Whether the default mode exports a window on another axis (NHWC's channels) as
# Transpose-LRN-Transpose rather than decomposed; see docs/onnx.md for the measurement.
_TRANSPOSE_BY_DEFAULT = True


def register() -> None:
  """Registers jax_lrn's jax2onnx plugin, so that ``jax2onnx.to_onnx`` exports :func:`jax_lrn.lrn`.

  Call once before ``to_onnx`` (again is a no-op). While jax2onnx traces, each ``lrn`` call
  becomes one primitive that the plugin lowers, following jax2onnx's ``normalization_mode``:

  * ``"auto"`` (jax2onnx's default): one ONNX ``LRN`` node (opset 13) where the call is ONNX's
    LRN and onnxruntime's CPU kernel runs it: a window along one axis (``across_channels``, or
    ``within_channel`` with one spatial axis) of a rank-4 float32 or float16 input, an odd
    ``size``, ``alpha > 0`` and ``beta > 0``, and ``alpha``, ``beta``, ``k`` known when exporting
    (numbers, or constants of the model). A window on axis 1 is the node alone; on another axis
    (channels-last) the node sits between two ``Transpose`` nodes. ``alpha`` keeps its value:
    ONNX also divides it by ``size``. Every other call is decomposed.
  * ``"prefer_native"``: the ``LRN`` node wherever ONNX's specification admits it: any rank
    ``>= 3``, even sizes with ONNX's placement (``even_placement="after"``), any ``alpha``,
    ``beta``, ``k``, and float64. onnxruntime's CPU kernel refuses some of these graphs (rank
    other than 4, even sizes, ``alpha = 0``, ``beta <= 0``, float64); other runtimes may not.
  * ``"force_decomposed"``: always the decomposition.

  The decomposition is ``lrn``'s own forward pass: squares, the window sum as one ``Conv`` per
  window axis, then ``Add``/``Mul`` and the power (``Sqrt`` products for ``beta`` in quarters,
  else ``Pow``-free ``Exp``/``Log``), in float32 for 16-bit inputs. It exports every mode, axis,
  size and dtype, with symbolic batch and spatial sizes.

  Raises:
    ModuleNotFoundError: jax2onnx is not installed (``pip install 'jax-lrn[onnx]'``).

  Examples:
    >>> import jax_lrn
    >>> from jax_lrn import onnx_export
    >>> onnx_export.register()  # doctest: +SKIP
    >>> from jax2onnx import to_onnx  # doctest: +SKIP
    >>> model = to_onnx(lambda x: jax_lrn.lrn(x, 5, channel_axis=1), [("B", 16, 8, 8)])
    ... # doctest: +SKIP
    >>> [node.op_type for node in model.graph.node]  # doctest: +SKIP
    ['LRN']
  """
  global _registered
  if _registered:
    return
  try:
    import jax2onnx  # noqa: F401
  except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
      "jax_lrn.onnx_export.register() needs jax2onnx; install it with "
      "pip install 'jax-lrn[onnx]'."
    ) from error
  from jax_lrn import _onnx_plugin  # noqa: F401  (registers the plugin on import)

  _registered = True


def native_layout(
  cfg: WindowConfig,
  ndim: int,
  dtype: np.dtype,
  params: Sequence[float | None],
  *,
  normalization_mode: str,
) -> tuple[int, ...] | None:
  """The axis order that puts the window on ONNX's channel axis 1 where one ``LRN`` node exports
  this call under ``normalization_mode`` (see :func:`register`), else None (decomposed).

  ``params`` are ``(alpha, beta, k)``, None where not known when exporting.
  """
  if normalization_mode == "force_decomposed" or len(cfg.axes) != 1 or ndim < 3:
    return None
  if any(p is None for p in params) or dtype not in _SPEC_DTYPES:
    return None
  # ONNX's window: [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)].
  if (cfg.lo, cfg.hi) != ((cfg.size - 1) // 2, cfg.size // 2):
    return None
  (axis,) = cfg.axes
  others = [a for a in range(ndim) if a != axis]
  perm = (others[0], axis, *others[1:])
  if normalization_mode == "prefer_native":
    return perm
  alpha, beta, _ = params
  runs_in_ort = ndim == 4 and cfg.size % 2 == 1 and dtype in _ORT_DTYPES
  if not runs_in_ort or not (alpha is not None and alpha > 0 and beta is not None and beta > 0):
    return None
  if axis != 1 and not _TRANSPOSE_BY_DEFAULT:
    return None
  return perm
