"""The JAX programs the LRN benchmarks compile and time, shared by ``bench_lrn.py`` (CPU),
``device_check.py`` (GPU or TPU, from a checkout) and ``tpu_aot.py`` (TPU, compiled without one):
jax_lrn in a given layout and window, plain autodiff, the other JAX libraries' LRNs, each
context as users call it, and the AlexNet conv1 block of the training step.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import window_extent  # noqa: E402

import jax_lrn  # noqa: E402

CONTEXTS = ("forward", "dx only", "y and dx")
# Other JAX libraries' LRNs (benchmarks/peers/, as published): across channels, odd sizes.
PEERS = ("jaxonnxruntime", "jaxonmodels")


def layout_axes(layout: str, mode: str) -> tuple[int, tuple[int, ...]]:
  """``(channel axis, window axes)`` of a rank-4 input in ``layout`` (``"NHWC"``, ``"NCHW"``)
  for ``mode`` (``"across_channels"``, ``"within_channel"``)."""
  channel, spatial = (3, (1, 2)) if layout == "NHWC" else (1, (2, 3))
  return channel, ((channel,) if mode == "across_channels" else spatial)


def plain_lrn(x, axes, size, alpha, beta, k, lo=None, hi=None):
  """What one writes without jax_lrn, differentiated by autodiff: one ``lax.reduce_window``
  over all window axes (padding ``(lo, hi)``, centred by default), then ``** -beta``; 16-bit
  inputs computed in float32."""
  lo = size // 2 if lo is None else lo
  hi = size // 2 if hi is None else hi
  u = x if x.dtype == jnp.float64 else x.astype(jnp.float32)
  window = [size if a in axes else 1 for a in range(x.ndim)]
  padding = [(lo, hi) if a in axes else (0, 0) for a in range(x.ndim)]
  zero = np.zeros((), u.dtype)
  sq = lax.reduce_window(u * u, zero, lax.add, window, (1,) * x.ndim, padding)
  return (u * (k + alpha / size ** len(axes) * sq) ** -beta).astype(x.dtype)


def lrn_function(
  impl: str | None,
  layout: str,
  mode: str,
  size: int,
  alpha: float,
  beta: float,
  k: float,
  placement: str = "before",
) -> Callable:
  """``x -> y``: ``jax_lrn.lrn(implementation=impl)`` (``None``: the platform's choice),
  ``"plain"`` (autodiff) or one of ``PEERS`` (across channels only)."""
  channel, axes = layout_axes(layout, mode)
  if impl == "plain":
    lo, hi = window_extent(size, placement)
    return functools.partial(
      plain_lrn, axes=axes, size=size, alpha=alpha, beta=beta, k=k, lo=lo, hi=hi
    )
  if impl in PEERS:
    return peer_lrn(impl, layout, size, alpha, beta, k)
  return functools.partial(
    jax_lrn.lrn,
    size=size,
    alpha=alpha,
    beta=beta,
    k=k,
    mode=mode,
    channel_axis=channel,
    spatial_axes=None if mode == "across_channels" else axes,
    even_placement=placement,
    implementation=impl,
  )


def peer_lrn(name: str, layout: str, size: int, alpha: float, beta: float, k: float) -> Callable:
  """``x -> y`` by another library's LRN across channels, in jax_lrn's convention (alpha
  divided by ``size``): jaxonnxruntime's ONNX ``LRN`` op (NCHW), or jaxonmodels' Equinox
  layer (one ``(C, H, W)`` image; ``vmap`` over the batch as its tests do; its alpha is not
  divided by ``size``). NHWC inputs are transposed to NCHW and back, as a user of either would."""
  if name == "jaxonnxruntime":
    from peers.jaxonnxruntime_lrn import onnx_lrn

    def nchw(x):
      return onnx_lrn(x, alpha=alpha, beta=beta, bias=k, size=size)
  elif name == "jaxonmodels":
    import equinox as eqx
    from peers.jaxonmodels_lrn import LocalResponseNormalization

    layer = eqx.filter_vmap(LocalResponseNormalization(k=k, n=size, alpha=alpha / size, beta=beta))

    def nchw(x):
      return layer(x)
  else:
    raise ValueError(f"unknown peer {name!r}; one of {PEERS}")
  if layout == "NCHW":
    return nchw
  return lambda x: jnp.transpose(nchw(jnp.transpose(x, (0, 3, 1, 2))), (0, 2, 3, 1))


def in_context(f: Callable, context: str) -> Callable:
  """``f`` as users call it in ``context`` (one of ``CONTEXTS``); every returned function
  takes ``(x, g)``: the forward ignores ``g``, dx only is ``jax.grad`` of ``sum(f(x) * g)``
  (summed in float32), y and dx is ``jax.vjp``."""
  if context == "forward":
    return lambda x, g: f(x)
  if context == "dx only":
    return jax.grad(lambda x, g: jnp.sum((f(x) * g).astype(jnp.float32)))

  def y_and_dx(x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  return y_and_dx


def batch_norm(h):
  """BatchNorm in training mode (batch statistics per channel, no affine parameters)."""
  mean = jnp.mean(h, axis=(0, 1, 2))
  var = jnp.var(h, axis=(0, 1, 2))
  return (h - mean) * lax.rsqrt(var + 1e-5)


def block_loss(kernel, x, readout, norm):
  """AlexNet's first block (conv 11x11/4, ReLU, ``norm``, max-pool 3/2), NHWC, read out by
  ``sum(h * readout)`` in float32."""
  dn = ("NHWC", "HWIO", "NHWC")
  h = lax.conv_general_dilated(x, kernel, (4, 4), "VALID", dimension_numbers=dn)
  h = norm(jax.nn.relu(h))
  h = lax.reduce_window(h, np.array(-np.inf, h.dtype), lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
  return jnp.sum((h * readout).astype(jnp.float32))
