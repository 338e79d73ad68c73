"""ONNX export through jax2onnx (``jax_lrn.onnx_export``): which graph each call becomes under each
``normalization_mode``, the exported values in onnxruntime against JAX and the float64 reference,
the ONNX ``LRN`` node read by ONNX's own specification, the layers inside models, and that the
package works without jax2onnx. Skipped where jax2onnx or onnxruntime is not installed (the
``onnx`` extra), except the import test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_lrn
from jax_lrn import onnx_export

import reference
from cases import require

ALPHA, BETA, K = 0.5, 0.75, 2.0
DECOMPOSED = "decomposed"
NCHW_LRN = ("LRN",)
TRANSPOSED_LRN = ("Transpose", "LRN", "Transpose")


@dataclass(frozen=True)
class Case:
  """One lrn call: its keyword arguments, the traced (symbolic) and the run shape, the graph that
  ``normalization_mode="prefer_native"`` promises, and whether onnxruntime's CPU kernel runs that
  graph's LRN node (rank 4, odd size, alpha > 0, beta > 0)."""

  id: str
  kwargs: dict = field(default_factory=dict)
  traced: tuple = ()
  shape: tuple = ()
  native: tuple | str = DECOMPOSED
  ort_runs_native: bool = True

  def call(self, x):
    kw = dict(alpha=ALPHA, beta=BETA, k=K) | self.kwargs
    return jax_lrn.lrn(x, **kw)


_SMALL = (("B", 8, 4, 4), (2, 8, 4, 4))  # traced and run shapes
CASES = [
  Case("nchw", dict(size=5, channel_axis=1), ("B", 16, "H", "W"), (3, 16, 5, 7), NCHW_LRN),
  Case("nhwc", dict(size=5, channel_axis=-1), ("B", "H", "W", 16), (3, 5, 7, 16), TRANSPOSED_LRN),
  Case("nchw_size1", dict(size=1, channel_axis=1), ("B", 8, 4, 4), (2, 8, 4, 4), NCHW_LRN),
  Case("size_beyond_axis", dict(size=21, channel_axis=1), ("B", 6, 4, 4), (2, 6, 4, 4), NCHW_LRN),
  Case("k0", dict(size=3, k=0.0, channel_axis=1), ("B", 8, 4, 4), (2, 8, 4, 4), NCHW_LRN),
  Case(
    "even_after",
    dict(size=4, channel_axis=1, even_placement="after"),
    ("B", 9, 4, 4),
    (2, 9, 4, 4),
    NCHW_LRN,
    ort_runs_native=False,
  ),
  Case("even_before", dict(size=4, channel_axis=1), ("B", 9, 4, 4), (2, 9, 4, 4)),
  Case("rank3", dict(size=3, channel_axis=1), ("B", 8, 10), (2, 8, 10), NCHW_LRN, False),
  Case("rank5", dict(size=5, channel_axis=1), ("B", 8, 3, 4, 5), (2, 8, 3, 4, 5), NCHW_LRN, False),
  Case("rank2", dict(size=3, channel_axis=-1), ("B", 16), (3, 16)),
  Case("within_2d", dict(size=3, mode="within_channel"), ("B", 6, 7, 4), (2, 6, 7, 4)),
  # One spatial axis is a window along one axis, as ONNX's LRN is; axis 1 needs no Transpose.
  Case(
    "within_axis1",
    dict(size=3, mode="within_channel", spatial_axes=(1,)),
    ("B", 6, 7, 4),
    (2, 6, 7, 4),
    NCHW_LRN,
  ),
  Case(
    "within_axis2",
    dict(size=3, mode="within_channel", spatial_axes=(2,)),
    ("B", 6, 7, 4),
    (2, 6, 7, 4),
    TRANSPOSED_LRN,
  ),
  Case("alpha0", dict(size=5, alpha=0.0, channel_axis=1), *_SMALL, NCHW_LRN, False),
  Case("beta_neg", dict(size=5, beta=-0.5, channel_axis=1), *_SMALL, NCHW_LRN, False),
  Case("beta_exp_log", dict(size=5, beta=0.6, channel_axis=1), *_SMALL, NCHW_LRN),
]
MODES = ("auto", "prefer_native", "force_decomposed")


@pytest.fixture(scope="module")
def to_onnx():
  require("jax2onnx")
  require("onnxruntime")
  onnx_export.register()
  onnx_export.register()  # a second call is a no-op
  from jax2onnx import to_onnx

  return to_onnx


def _ops(model) -> tuple[str, ...]:
  return tuple(node.op_type for node in model.graph.node)


def _expected(case: Case, mode: str):
  return case.native if mode == "prefer_native" else DECOMPOSED


def _assert_graph(model, expected):
  ops = _ops(model)
  if expected == DECOMPOSED:
    assert "LRN" not in ops and "Conv" in ops, ops
  else:
    assert ops == expected, ops


def _run_ort(model, *inputs):
  import onnxruntime as ort

  session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
  feeds = {i.name: np.asarray(v) for i, v in zip(session.get_inputs(), inputs)}
  return session.run(None, feeds)[0]


def _reference(case: Case, x):
  kw = dict(alpha=ALPHA, beta=BETA, k=K, channel_axis=-1) | case.kwargs
  placement = kw.pop("even_placement", "before")
  return reference.lrn(np.asarray(x, np.float64), placement=placement, **kw)


# force_decomposed where prefer_native would give the node (elsewhere all modes decompose).
MODE_CASES = [
  (case, mode)
  for case in CASES
  for mode in MODES
  if mode != "force_decomposed" or case.native != DECOMPOSED
]


@pytest.mark.parametrize("case, mode", MODE_CASES, ids=lambda v: getattr(v, "id", v))
def test_graph_and_values(to_onnx, rng, case, mode):
  """The promised graph, symbolic dimensions kept, and (where onnxruntime runs the graph) values
  equal to JAX's and to the float64 reference, at a batch size other than the traced one."""
  model = to_onnx(case.call, [case.traced], normalization_mode=mode)
  expected = _expected(case, mode)
  _assert_graph(model, expected)
  (graph_input,) = model.graph.input
  dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
  assert dims == list(case.traced)
  if expected != DECOMPOSED:
    (node,) = [n for n in model.graph.node if n.op_type == "LRN"]
    attrs = {a.name: a for a in node.attribute}
    kw = dict(alpha=ALPHA, beta=BETA, k=K) | case.kwargs
    assert attrs["size"].i == kw["size"]
    # ONNX divides alpha by size too: the attribute is lrn's alpha (float32 attributes).
    for name, key in (("alpha", "alpha"), ("beta", "beta"), ("bias", "k")):
      assert attrs[name].f == np.float32(kw[key]), name
    if expected == TRANSPOSED_LRN:
      axis = case.kwargs.get("spatial_axes", (len(case.shape) - 1,))[0]
      perm = list(model.graph.node[0].attribute[0].ints)
      assert perm[1] == axis and sorted(perm) == list(range(len(case.shape)))
      assert list(model.graph.node[2].attribute[0].ints) == list(np.argsort(perm))
  if expected != DECOMPOSED and not case.ort_runs_native:
    return  # test_native_node_follows_the_onnx_spec checks these
  x = rng.normal(0.0, 2.0, size=case.shape).astype(np.float32)
  got = _run_ort(model, x)
  # The decomposition is lrn's own arithmetic (JAX: within 2.5e-7 of the float64 reference).
  # onnxruntime's LRN kernel is its own, less exact where k = 0 (6.2e-6 relative, measured).
  rtol = 2e-6 if expected == DECOMPOSED else 1e-5
  np.testing.assert_allclose(got, np.asarray(case.call(jnp.asarray(x))), rtol=rtol, atol=1e-7)
  np.testing.assert_allclose(got, _reference(case, x), rtol=rtol, atol=1e-7)


def _onnx_spec_lrn(x, size, alpha, beta, bias):
  """ONNX's LRN, from the operator's specification (onnx/defs/nn/defs.cc, opsets 1 and 13):
  ``square_sum[n, c, ...] = sum(X[n, i, ...]^2)`` for ``i`` in
  ``[max(0, c - floor((size - 1) / 2)), min(C - 1, c + ceil((size - 1) / 2))]``,
  ``Y = X / (bias + alpha / size * square_sum)^beta``."""
  x = np.asarray(x, np.float64)
  channels = x.shape[1]
  square_sum = np.zeros_like(x)
  for c in range(channels):
    lo = max(0, c - int(np.floor((size - 1) / 2)))
    hi = min(channels - 1, c + int(np.ceil((size - 1) / 2)))
    square_sum[:, c] = np.sum(x[:, lo : hi + 1] ** 2, axis=1)
  return x / (bias + alpha / size * square_sum) ** beta


def _evaluate_native(model, x):
  """The graph's Transpose and LRN nodes evaluated by ONNX's specification."""
  v = np.asarray(x, np.float64)
  for node in model.graph.node:
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Transpose":
      v = np.transpose(v, list(attrs["perm"].ints))
    else:
      assert node.op_type == "LRN"
      v = _onnx_spec_lrn(v, attrs["size"].i, attrs["alpha"].f, attrs["beta"].f, attrs["bias"].f)
  return v


@pytest.mark.parametrize("case", [c for c in CASES if c.native != DECOMPOSED], ids=lambda c: c.id)
def test_native_node_follows_the_onnx_spec(to_onnx, rng, case):
  """Every native graph (also those onnxruntime's CPU kernel refuses: even sizes, other ranks,
  alpha = 0, beta <= 0) computes lrn's values when read by ONNX's specification: the window's
  placement, alpha's convention and the Transposes are right."""
  model = to_onnx(case.call, [case.traced], normalization_mode="prefer_native")
  x = rng.normal(0.0, 2.0, size=case.shape).astype(np.float32)
  want = np.asarray(case.call(jnp.asarray(x)), np.float64)
  np.testing.assert_allclose(_evaluate_native(model, x), want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["auto", "prefer_native"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_dtypes(to_onnx, rng, dtype, mode):
  """16-bit inputs: the LRN node in their dtype (prefer_native) or the decomposition, which
  computes in float32 and rounds once, as lrn does. float64 (jax2onnx's
  enable_double_precision): the node (its float32 attributes hold ALPHA, BETA, K exactly) or the
  decomposition in float64. onnxruntime's CPU has no float64 Conv or LRN kernel and its Python
  API takes no bfloat16 arrays: those graphs run in ONNX's reference evaluator, and the nodes in
  the specification's formula."""
  case = CASES[0]
  dt = jnp.dtype(dtype)
  spec = jax.ShapeDtypeStruct(case.shape, dt)
  model = to_onnx(
    case.call, [spec], normalization_mode=mode, enable_double_precision=dtype == "float64"
  )
  _assert_graph(model, _expected(case, mode))
  x = jnp.asarray(rng.normal(0.0, 2.0, size=case.shape), dt)
  want = np.asarray(case.call(x), np.float64)
  # float16: JAX rounds the float32 result once, onnxruntime's kernel may differ by one ulp.
  # float64: the same operations in another order.
  rtol = 1e-14 if dtype == "float64" else float(jnp.finfo(dt).eps)
  if mode == "prefer_native" and dtype != "float16":
    got = _evaluate_native(model, np.asarray(x, np.float64))
  elif dtype == "float16":
    got = _run_ort(model, np.asarray(x))
  else:
    from onnx.reference import ReferenceEvaluator

    got = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: np.asarray(x)})[0]
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=0)


def test_float64_native_needs_float32_exact_parameters(to_onnx):
  """ONNX's LRN attributes are float32: a float64 call whose alpha is not a float32 value
  (1e-4) exports decomposed, so that the graph computes with the call's own alpha."""
  spec = jax.ShapeDtypeStruct((2, 8, 4, 4), jnp.float64)
  model = to_onnx(
    lambda x: jax_lrn.lrn(x, 5, 1e-4, BETA, K, channel_axis=1),
    [spec],
    normalization_mode="prefer_native",
    enable_double_precision=True,
  )
  _assert_graph(model, DECOMPOSED)


def test_traced_parameters_export_decomposed(to_onnx, rng):
  """alpha, beta and k given as graph inputs are not known when exporting: decomposed."""

  def fn(x, alpha, beta, k):
    return jax_lrn.lrn(x, 5, alpha, beta, k, channel_axis=1)

  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  model = to_onnx(fn, [("B", 8, 4, 4), scalar, scalar, scalar], normalization_mode="prefer_native")
  _assert_graph(model, DECOMPOSED)
  x = rng.normal(0.0, 2.0, size=(2, 8, 4, 4)).astype(np.float32)
  params = [np.float32(v) for v in (ALPHA, BETA, K)]
  got = _run_ort(model, x, *params)
  np.testing.assert_allclose(got, np.asarray(fn(jnp.asarray(x), *params)), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["auto", "prefer_native"])
def test_gradients_export(to_onnx, rng, mode):
  """jax.grad of a loss through lrn exports (lrn's closed-form backward as a decomposition) and
  matches JAX's gradients in onnxruntime: for x with static parameters (under prefer_native the
  forward inside is the LRN node), and for x, alpha, beta, k given as inputs (even size)."""

  def loss(x, alpha=ALPHA, beta=BETA, k=K, size=5, placement="before"):
    y = jax_lrn.lrn(x, size, alpha, beta, k, channel_axis=1, even_placement=placement)
    return jnp.sum(jnp.sin(y))

  x = rng.normal(0.0, 2.0, size=(2, 9, 4, 4)).astype(np.float32)
  grad_x = jax.grad(loss)
  model = to_onnx(grad_x, [("B", 9, 4, 4)], normalization_mode=mode)
  assert ("LRN" in _ops(model)) == (mode == "prefer_native")
  np.testing.assert_allclose(_run_ort(model, x), grad_x(jnp.asarray(x)), rtol=1e-5, atol=1e-6)

  def grad_all(x, alpha, beta, k):
    return jax.grad(loss, argnums=(0, 1, 2, 3))(x, alpha, beta, k, 4, "after")

  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  model = to_onnx(grad_all, [("B", 9, 4, 4), scalar, scalar, scalar], normalization_mode=mode)
  assert "LRN" not in _ops(model)
  import onnxruntime as ort

  session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
  params = [np.float32(v) for v in (ALPHA, BETA, K)]
  feeds = {i.name: np.asarray(v) for i, v in zip(session.get_inputs(), [x, *params])}
  for got, want in zip(session.run(None, feeds), grad_all(jnp.asarray(x), *params)):
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)


def test_vmap_exports_through_the_batching_rule(to_onnx, rng):
  """lrn on one CHW image, vmapped over the batch: the window moves to axis 1, one LRN node."""
  fn = jax.vmap(lambda x: jax_lrn.lrn(x, 5, ALPHA, BETA, K, channel_axis=0))
  model = to_onnx(fn, [("B", 16, 5, 5)], normalization_mode="prefer_native")
  assert _ops(model) == NCHW_LRN
  x = rng.normal(0.0, 2.0, size=(3, 16, 5, 5)).astype(np.float32)
  np.testing.assert_allclose(_run_ort(model, x), np.asarray(fn(jnp.asarray(x))), rtol=2e-6)


# ---------------------------------------------------------------------------------------------
# The layers inside models.
# ---------------------------------------------------------------------------------------------


def _nnx_model(learnable: bool):
  from flax import nnx

  from jax_lrn.nnx import LocalResponseNorm

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.conv = nnx.Conv(3, 16, (3, 3), rngs=rngs)
      self.norm = LocalResponseNorm(5, ALPHA, BETA, K, learnable=learnable)

    def __call__(self, x):
      return self.norm(nnx.relu(self.conv(x)))

  return Net(nnx.Rngs(0))


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize("mode", ["auto", "prefer_native"])
def test_nnx_model(to_onnx, rng, learnable, mode):
  """An NNX model (NHWC): the layer's LRN is Transpose-LRN-Transpose under prefer_native, and
  decomposed when learnable (its alpha, beta, k are computed from parameters in the graph)."""
  model = _nnx_model(learnable)
  onnx_model = to_onnx(model, [("B", 9, 9, 3)], normalization_mode=mode)
  ops = _ops(onnx_model)
  native = mode == "prefer_native" and not learnable
  # (jax2onnx's Conv runs in NCHW between Transposes; its optimizer cancels the pair that
  # would surround the LRN node, which then follows the Relu directly.)
  assert ("LRN" in ops) == native, ops
  x = rng.normal(0.0, 1.0, size=(2, 9, 9, 3)).astype(np.float32)
  np.testing.assert_allclose(
    _run_ort(onnx_model, x), np.asarray(model(jnp.asarray(x))), rtol=1e-5, atol=1e-6
  )


def _check_model(to_onnx, fn, traced, x):
  """Exported in both modes: the LRN node exactly under prefer_native; onnxruntime == JAX."""
  for mode in ("auto", "prefer_native"):
    onnx_model = to_onnx(fn, [traced], normalization_mode=mode)
    assert ("LRN" in _ops(onnx_model)) == (mode == "prefer_native")
    np.testing.assert_allclose(
      _run_ort(onnx_model, x), np.asarray(fn(jnp.asarray(x))), rtol=1e-5, atol=1e-6
    )


def test_linen_model(to_onnx, rng):
  import flax.linen as nn

  from jax_lrn.linen import LocalResponseNorm

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(16, (3, 3))(x))
      return LocalResponseNorm(5, ALPHA, BETA, K)(x)

  net = Net()
  x = rng.normal(0.0, 1.0, size=(2, 9, 9, 3)).astype(np.float32)
  variables = net.init(jax.random.key(0), jnp.asarray(x))

  def fn(x):
    return net.apply(variables, x)

  _check_model(to_onnx, fn, ("B", 9, 9, 3), x)


def test_equinox_model(to_onnx, rng):
  require("equinox")
  import equinox as eqx

  from jax_lrn.equinox import LocalResponseNorm

  conv = eqx.nn.Conv2d(3, 16, 3, key=jax.random.key(0), dtype=jnp.float32)
  norm = LocalResponseNorm(5, ALPHA, BETA, K, channel_axis=0)

  def fn(x):  # one CHW image, batched with vmap as Equinox models are
    return jax.vmap(lambda image: norm(jax.nn.relu(conv(image))))(x)

  x = rng.normal(0.0, 1.0, size=(2, 3, 9, 9)).astype(np.float32)
  _check_model(to_onnx, fn, ("B", 3, 9, 9), x)


def test_export_leaves_lrn_unchanged(to_onnx, rng):
  """The primitive stands in for lrn's core only while jax2onnx traces: jit and grad afterwards
  are lrn's own (the custom_vjp core is back)."""
  from jax_lrn import _lrn

  core = _lrn._lrn_core
  to_onnx(CASES[0].call, [CASES[0].traced])
  assert _lrn._lrn_core is core
  jaxpr = str(jax.make_jaxpr(CASES[0].call)(jnp.ones((1, 8, 2, 2), jnp.float32)))
  assert "custom_vjp_call" in jaxpr and "jax_lrn_lrn" not in jaxpr


# ---------------------------------------------------------------------------------------------
# Without jax2onnx.
# ---------------------------------------------------------------------------------------------


def test_package_works_without_jax2onnx():
  """jax2onnx, onnx, onnx_ir and onnxruntime made unimportable: jax_lrn, its layers and
  onnx_export import, lrn runs, and register() says what to install."""
  script = textwrap.dedent(
    """
    import sys

    class Block:
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax2onnx", "onnx", "onnx_ir", "onnxruntime"):
          raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

    sys.meta_path.insert(0, Block())
    import jax.numpy as jnp
    import jax_lrn, jax_lrn.nnx, jax_lrn.linen
    from jax_lrn import onnx_export
    print(float(jax_lrn.lrn(jnp.ones((1, 4)), 3)[0, 0]))
    try:
      onnx_export.register()
    except ModuleNotFoundError as error:
      print("error:", error)
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax2onnx", "onnx_ir")))
    """
  )
  proc = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert float(lines[0]) == pytest.approx((1.0 + 1e-4 / 3 * 2) ** -0.75)
  assert lines[1].startswith("error: jax_lrn.onnx_export.register() needs jax2onnx")
  assert "pip install 'jax-lrn[onnx]'" in lines[1]
  assert lines[2] == "[]"
