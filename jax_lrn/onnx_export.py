"""Export to ONNX with jax2onnx: :func:`jax_lrn.lrn` as its decomposition, or as an ONNX ``LRN``
node where ONNX's convention fits and ``normalization_mode="prefer_native"`` asks for it.

``jax2onnx.to_onnx`` cannot trace :func:`jax_lrn.lrn` by itself (the per-platform choice of the
window sum lowers to JAX's ``platform_index``, which has no ONNX form). :func:`register` adds a
jax2onnx plugin for it; every ``lrn`` call, also inside the Flax and Equinox layers, then exports.
jax2onnx is an optional dependency (``pip install 'jax-lrn[onnx]'``), imported by
:func:`register` only.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jax_lrn._window import WindowConfig

__all__ = ["register"]

_registered = False

# The dtypes of ONNX LRN: float16, float, double; bfloat16 from opset 13.
_SPEC_DTYPES = tuple(np.dtype(d) for d in ("float16", "float32", "float64"))
_BFLOAT16 = np.dtype(jnp.bfloat16)


def register() -> None:
  """Registers jax_lrn's jax2onnx plugin, so that ``jax2onnx.to_onnx`` exports :func:`jax_lrn.lrn`.

  Call once before ``to_onnx`` (again is a no-op). While jax2onnx traces, each ``lrn`` call
  becomes one primitive that the plugin lowers, following jax2onnx's ``normalization_mode``:

  * ``"prefer_native"``: one ONNX ``LRN`` node wherever the call is ONNX's LRN: a window along
    one axis (``across_channels``, or ``within_channel`` with one spatial axis) of an input of
    rank ``>= 3``, an odd ``size`` or ONNX's placement of an even one
    (``even_placement="after"``), and ``alpha``, ``beta``, ``k`` known when exporting (numbers,
    or constants of the model). ``alpha`` keeps its value: ONNX also divides it by ``size``. A
    window on axis 1 is the node alone; on another axis (channels-last) the node sits between
    two ``Transpose`` nodes. Every other call is decomposed. onnxruntime's CPU kernel runs only
    part of what the specification admits: rank 4, odd ``size``, ``alpha > 0``, ``beta > 0``,
    float32 or float16; it refuses the other graphs when the session is created.
  * ``"auto"`` (jax2onnx's default) and ``"force_decomposed"``: the decomposition. As for
    jax2onnx's own normalizations, ``"auto"`` is the most accurate graph in onnxruntime, and here
    also the faster one: onnxruntime's CPU ``LRN`` kernel took 6.7 times as long as the
    decomposition on AlexNet's conv1 output (``benchmarks/bench_onnx.py``, see the ONNX page of
    the documentation).

  The decomposition is ``lrn``'s own forward pass: the squares, the window sum as one ``Conv``
  per window axis, then ``Mul``/``Add`` and the power (products of ``Sqrt`` for exponents that
  are multiples of 1/4 up to 2, ``Log``/``Exp`` otherwise), in float32 for 16-bit inputs. It
  exports every mode, axis, size and dtype, with symbolic batch and spatial sizes, and traced
  ``alpha``, ``beta``, ``k`` (a learnable layer's).

  Raises:
    ModuleNotFoundError: jax2onnx is not installed (``pip install 'jax-lrn[onnx]'``).

  Examples:
    >>> import jax_lrn
    >>> from jax_lrn import onnx_export
    >>> onnx_export.register()  # doctest: +SKIP
    >>> from jax2onnx import to_onnx  # doctest: +SKIP
    >>> fn = lambda x: jax_lrn.lrn(x, 5, channel_axis=1)
    >>> model = to_onnx(fn, [("B", 16, 8, 8)], normalization_mode="prefer_native")
    ... # doctest: +SKIP
    >>> [node.op_type for node in model.graph.node]  # doctest: +SKIP
    ['LRN']
  """
  global _registered
  if _registered:
    return
  try:
    importlib.import_module("jax2onnx")
  except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
      "jax_lrn.onnx_export.register() needs jax2onnx; install it with pip install 'jax-lrn[onnx]'."
    ) from error
  from jax_lrn import _onnx_plugin  # noqa: F401  (registers the plugin on import)

  _registered = True


def _native_layout(
  cfg: WindowConfig,
  ndim: int,
  dtype: np.dtype,
  params: Sequence[float | None],
  *,
  normalization_mode: str,
  opset: int,
) -> tuple[int, ...] | None:
  """The axis order that puts the window on ONNX's channel axis 1 where one ``LRN`` node exports
  this call under ``normalization_mode`` (see :func:`register`), else None (decomposed).

  ``params`` are ``(alpha, beta, k)``, None where not known when exporting.
  """
  if normalization_mode != "prefer_native" or len(cfg.axes) != 1 or ndim < 3:
    return None
  if any(p is None for p in params):
    return None
  if dtype not in _SPEC_DTYPES and not (dtype == _BFLOAT16 and opset >= 13):
    return None
  # ONNX's attributes are float32: a float64 call keeps its exact values only if they are.
  if dtype == np.float64 and any(float(np.float32(p)) != p for p in params):
    return None
  # ONNX's window: [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)].
  if (cfg.lo, cfg.hi) != ((cfg.size - 1) // 2, cfg.size // 2):
    return None
  (axis,) = cfg.axes
  others = [a for a in range(ndim) if a != axis]
  return (others[0], axis, *others[1:])
