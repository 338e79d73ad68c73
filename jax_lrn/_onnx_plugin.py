"""The jax2onnx plugin for :func:`jax_lrn.lrn` (imported by :func:`jax_lrn.onnx_export.register`).

This is the only module that imports jax2onnx (and onnx_ir, which jax2onnx depends on); nothing
imports it unless asked to. While ``jax2onnx.to_onnx`` traces, the plugin replaces the
``custom_vjp`` core of :func:`jax_lrn.lrn` with another ``custom_vjp``: its forward is the
primitive ``jax_lrn_lrn`` (the same operands, the window configuration as a parameter), its
backward is the core's own. The plugin lowers the primitive to ONNX itself: one ONNX ``LRN`` node
where the window is ONNX's and the mode asks for it, else a decomposition: the core's own forward
pass with the window summed by ``lax.reduce_window`` (which jax2onnx lowers to a ``Conv``),
whatever platform choice ``lrn`` would make under ``jit``. The backward's window sums are
``reduce_window`` too.
"""
# jax2onnx and onnx_ir are optional (the ``onnx`` extra); type checking skips them when absent.
# pyright: reportMissingImports=false

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import onnx_ir as ir
from jax import core as jax_core
from jax.extend.core import Literal, Primitive
from jax.interpreters import batching
from jax2onnx.plugins._ir_shapes import (
  _dim_label_from_value_or_aval,
  _ensure_value_metadata,
  _stamp_type_and_shape,
)
from jax2onnx.plugins._patching import MonkeyPatchSpec
from jax2onnx.plugins.jax.lax._control_flow_utils import lower_jaxpr_eqns
from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin, register_primitive

from jax_lrn import _lrn
from jax_lrn._window import WindowConfig
from jax_lrn.onnx_export import _native_layout

LRN_PRIM = Primitive("jax_lrn_lrn")
LRN_PRIM.multiple_results = False


def _decomposed_config(cfg: WindowConfig) -> WindowConfig:
  # reduce_window: one ONNX Conv per window axis, for any (also symbolic) sizes of the others.
  return dataclasses.replace(cfg, implementation="reduce_window")


def _bind(cfg: WindowConfig, x, alpha, beta, k):
  return LRN_PRIM.bind(x, alpha, beta, k, cfg=cfg)


# Stands in for jax_lrn._lrn._lrn_core while jax2onnx traces: the primitive forward, and lrn's
# own closed-form backward (its window sums as reduce_window), so that gradients export too.
_export_core = jax.custom_vjp(_bind, nondiff_argnums=(0,))


def _export_core_fwd(cfg: WindowConfig, x, alpha, beta, k):
  # As _lrn._lrn_core_fwd (symbolic zeros: which cotangents are wanted, in the residuals).
  wanted = tuple(() if arg.perturbed else None for arg in (x, alpha, beta, k))
  x, alpha, beta, k = (arg.value for arg in (x, alpha, beta, k))
  return _bind(cfg, x, alpha, beta, k), (x, alpha, beta, k, wanted)


def _export_core_bwd(cfg: WindowConfig, res, g):
  return _lrn._lrn_core_bwd(_decomposed_config(cfg), res, g)


_export_core.defvjp(_export_core_fwd, _export_core_bwd, symbolic_zeros=True)


@LRN_PRIM.def_impl
def _impl(x, alpha, beta, k, *, cfg: WindowConfig):
  return _lrn._forward(cfg, x, alpha, beta, k)


def _batch_rule(args, dims, *, cfg: WindowConfig):
  x, alpha, beta, k = args
  x_dim, *param_dims = dims
  if x_dim is None or any(d is not None for d in param_dims):  # None: not mapped
    raise NotImplementedError(
      "jax_lrn's ONNX export does not support vmap over alpha, beta or k; only over x."
    )
  if x_dim != 0:
    x = jnp.moveaxis(x, x_dim, 0)
  shifted = dataclasses.replace(cfg, axes=tuple(a + 1 for a in cfg.axes))
  return LRN_PRIM.bind(x, alpha, beta, k, cfg=shifted), 0


batching.primitive_batchers[LRN_PRIM] = _batch_rule


def _static_scalar(ctx, var) -> float | None:
  """The value of a scalar operand known at export time (a literal or a constant), else None."""
  if isinstance(var, Literal):
    return float(np.asarray(var.val))
  value = ctx.get_value_for_var(var)
  const = getattr(value, "const_value", None)
  if const is None:
    return None
  return float(np.asarray(const.numpy()))


def _stamp(ctx, value: ir.Value, dtype, dims) -> ir.Value:
  value.type = ir.TensorType(dtype)
  _stamp_type_and_shape(value, tuple(dims))
  _ensure_value_metadata(ctx, value)
  return value


@register_primitive(
  jaxpr_primitive=LRN_PRIM.name,
  jax_doc="https://onnx.ai/onnx/operators/onnx__LRN.html",
  onnx=[
    {"component": "LRN", "doc": "https://onnx.ai/onnx/operators/onnx__LRN.html"},
    {"component": "Transpose", "doc": "https://onnx.ai/onnx/operators/onnx__Transpose.html"},
    {"component": "Conv", "doc": "https://onnx.ai/onnx/operators/onnx__Conv.html"},
  ],
  since="jax_lrn 0.1.0",
  context="primitives.jax_lrn",
  component="lrn",
  testcases=[],
)
class LRNPlugin(PrimitiveLeafPlugin):
  """Lowers ``jax_lrn.lrn`` to ONNX ``LRN`` where it fits, else to its decomposition."""

  _PRIM: ClassVar[Primitive] = LRN_PRIM
  _ABSTRACT_EVAL_BOUND: ClassVar[bool] = False

  @staticmethod
  def abstract_eval(x, alpha, beta, k, *, cfg: WindowConfig):
    del alpha, beta, k, cfg
    return jax_core.ShapedArray(x.shape, x.dtype)

  @classmethod
  def binding_specs(cls):
    return [MonkeyPatchSpec(_lrn, "_lrn_core", lambda _orig: _export_core)]

  def lower(self, ctx, eqn) -> None:
    x_var, alpha_var, beta_var, k_var = eqn.invars
    (y_var,) = eqn.outvars
    cfg: WindowConfig = eqn.params["cfg"]
    x_aval = x_var.aval
    params = tuple(_static_scalar(ctx, v) for v in (alpha_var, beta_var, k_var))
    perm = _native_layout(
      cfg,
      x_aval.ndim,
      np.dtype(x_aval.dtype),
      params,
      normalization_mode=ctx.normalization_mode,
      opset=int(ctx.opset),
    )
    if perm is None:
      self._lower_decomposed(ctx, eqn, cfg)
      return
    alpha, beta, k = (float(p) for p in params if p is not None)
    x_val = ctx.get_value_for_var(x_var, name_hint=ctx.fresh_name("lrn_x"))
    dtype = x_val.dtype
    shape = tuple(x_aval.shape)
    dims = [_dim_label_from_value_or_aval(x_val, shape, i) or shape[i] for i in range(len(shape))]
    transposed = perm != tuple(range(len(shape)))
    builder = ctx.builder
    inp = x_val
    if transposed:  # the window axis to ONNX's channel axis 1, and back after
      inp = builder.Transpose(x_val, perm=list(perm), _outputs=[ctx.fresh_name("lrn_to_nchw")])
      inp = _stamp(ctx, inp, dtype, [dims[p] for p in perm])
    out = builder.LRN(
      inp, size=int(cfg.size), alpha=alpha, beta=beta, bias=k, _outputs=[ctx.fresh_name("LRN")]
    )
    out = _stamp(ctx, out, dtype, [dims[p] for p in perm])
    if transposed:
      inverse = [int(i) for i in np.argsort(perm)]
      out = builder.Transpose(out, perm=inverse, _outputs=[ctx.fresh_name("lrn_from_nchw")])
      out = _stamp(ctx, out, dtype, dims)
    ctx.bind_value_for_var(y_var, out)

  @staticmethod
  def _lower_decomposed(ctx, eqn, cfg: WindowConfig) -> None:
    avals = [v.aval for v in eqn.invars]
    closed = jax.make_jaxpr(functools.partial(_lrn._forward, _decomposed_config(cfg)))(
      *(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals)
    )
    inner = closed.jaxpr
    for const_var, const in zip(inner.constvars, closed.consts):
      ctx.bind_const_for_var(const_var, np.asarray(const))
    for outer, inner_var in zip(eqn.invars, inner.invars):
      ctx.bind_value_for_var(inner_var, ctx.get_value_for_var(outer))
    lower_jaxpr_eqns(ctx, inner, source="jax_lrn_lrn")
    ctx.bind_value_for_var(eqn.outvars[0], ctx.get_value_for_var(inner.outvars[0]))
