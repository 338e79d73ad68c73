"""An ONNX model-zoo network with LRN layers, rebuilt as a Flax NNX model (NHWC, trainable).

The ONNX model zoo keeps the classic networks that use local response normalization: AlexNet
(``bvlc_alexnet``), GoogLeNet (``inception_v1``), ZFNet-512, CaffeNet, R-CNN. This script reads
one, builds the equivalent NNX model from ordinary modules (``nnx.Conv``, ``nnx.Linear``,
``jax_lrn.nnx.LocalResponseNorm`` through ``jax_lrn.compat.from_onnx``, pooling, and a module
for the Inception blocks' parallel branches), loads the ONNX initializers into its parameters,
runs it, and compares the output with the one stored beside the model and, when onnxruntime is
installed, with onnxruntime running the ONNX file itself.

The NNX model is channels-last (Flax's layout): the input is transposed once, every kernel is
moved from ONNX's ``OIHW`` to ``HWIO``, ``Gemm`` weights become ``Linear`` kernels, and the
first ``Linear`` after the flatten gets its input rows permuted from ``C, H, W`` order to
``H, W, C`` order, so that no transpose is left in the model. The model is a tree of NNX modules
(``print(model)``), not an interpreter of the graph: its parameters train with ``nnx.Optimizer``
like any other, and ``nnx.Dropout`` layers are on in ``model.train()`` mode.

The ``onnx`` package ships "light" versions of three of these networks for its backend tests
(``onnx/backend/test/data/light/``): the full graphs with every weight set to 0.02 (built by
``ConstantOfShape`` nodes), an output file, and an input that the backend tests compute as
``arange(n) / n``. Their outputs are the same for every class (equal weights give equal
logits), so the script also compares the logits before the softmax with onnxruntime's (when
installed), and ``--random-weights SEED`` replaces every weight with random values, in the NNX
model and in the graph onnxruntime runs alike.

Run:  python examples/onnx_zoo.py --model bvlc_alexnet      # or inception_v1, zfnet512
      python examples/onnx_zoo.py --model inception_v1 --random-weights 0
      python examples/onnx_zoo.py --onnx model.onnx          # a full model-zoo file: its
          # test_data_set_0/input_0.pb and output_0.pb beside it are used when present
          # (else --input PB / --output PB, or arange(n) / n and onnxruntime only)

The last line printed is the largest difference found; the exit status is 1 when it exceeds
float32 tolerance (1e-3 relative to the largest magnitude compared, as ONNX's backend tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from flax import nnx
from onnx import numpy_helper

from jax_lrn.compat import from_onnx
from jax_lrn.nnx import LocalResponseNorm

LIGHT_MODELS = ("bvlc_alexnet", "inception_v1", "zfnet512")
# Relative to the largest magnitude compared: the rtol of ONNX's own backend tests for these
# models (onnx/backend/test/case/model/__init__.py, rtol=1e-3 for bvlc_alexnet, inception_v1,
# zfnet512), for float32 sums over up to 9216 terms per output.
TOLERANCE = 1e-3


# ---------------------------------------------------------------------------------------------
# Reading the graph.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Graph:
  """The parts of an ONNX graph the conversion reads."""

  model: onnx.ModelProto
  params: dict[str, np.ndarray]  # initializers and ConstantOfShape weights
  producer: dict[str, onnx.NodeProto]
  consumers: dict[str, list[onnx.NodeProto]]
  shapes: dict[str, tuple[int, ...]]  # inferred shapes of the activations (NCHW)
  input_name: str
  input_shape: tuple[int, ...]


def _attrs(node: onnx.NodeProto) -> dict:
  return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_graph(model: onnx.ModelProto) -> Graph:
  params = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
  constant_nodes = set()
  for node in model.graph.node:  # nodes of parameters alone, folded into parameters
    if not all(name in params for name in node.input):
      continue
    if node.op_type == "ConstantOfShape":  # the light models' weights
      value = numpy_helper.to_array(_attrs(node)["value"]).reshape(())
      params[node.output[0]] = np.full(params[node.input[0]], value, value.dtype)
    elif node.op_type == "Reshape":  # inception_v1's classifier weight
      params[node.output[0]] = params[node.input[0]].reshape(params[node.input[1]])
    else:
      continue
    constant_nodes.add(node.output[0])
  inferred = onnx.shape_inference.infer_shapes(model)
  shapes = {}
  for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
    dims = info.type.tensor_type.shape.dim
    shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)
  producer, consumers = {}, {}
  for node in model.graph.node:
    if node.output[0] in constant_nodes:
      continue
    for name in node.output:
      producer[name] = node
    for name in node.input:
      consumers.setdefault(name, []).append(node)
  (graph_input,) = [i for i in model.graph.input if i.name not in params]
  return Graph(
    model,
    params,
    producer,
    consumers,
    shapes,
    graph_input.name,
    shapes[graph_input.name],
  )


# ---------------------------------------------------------------------------------------------
# The NNX modules.
# ---------------------------------------------------------------------------------------------


class Branches(nnx.Module):
  """Parallel branches over one input, concatenated along the channels (an Inception block)."""

  def __init__(self, branches: list[nnx.Sequential]):
    self.branches = nnx.List(branches)

  def __call__(self, x):
    return jnp.concatenate([branch(x) for branch in self.branches], axis=-1)


def _conv(graph: Graph, node: onnx.NodeProto) -> nnx.Conv:
  a = _attrs(node)
  weight = graph.params[node.input[1]]  # (O, I / group, kH, kW)
  groups = int(a.get("group", 1))
  out_ch, in_per_group, *kernel = weight.shape
  pads = a.get("pads", [0] * 2 * len(kernel))
  padding = [(pads[i], pads[i + len(kernel)]) for i in range(len(kernel))]
  bias = graph.params[node.input[2]] if len(node.input) > 2 else None
  return nnx.Conv(
    in_per_group * groups,
    out_ch,
    tuple(kernel),
    strides=tuple(a.get("strides", [1] * len(kernel))),
    padding=padding,
    kernel_dilation=tuple(a.get("dilations", [1] * len(kernel))),
    feature_group_count=groups,
    use_bias=bias is not None,
    kernel_init=_given(weight.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
    bias_init=_given(bias),
    rngs=nnx.Rngs(0),
  )


def _given(value: np.ndarray | None):
  """An initializer that returns ``value`` (the ONNX initializer) as the parameter."""

  def init(key, shape, dtype=jnp.float32):
    del key
    if value is None or tuple(shape) != value.shape:
      found = None if value is None else value.shape
      raise ValueError(f"the layer wants a parameter of shape {tuple(shape)}; the graph: {found}")
    return jnp.asarray(value, dtype)

  return init


def _linear(graph: Graph, node: onnx.NodeProto, flattened_from: tuple[int, ...] | None):
  a = _attrs(node)
  if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
    raise NotImplementedError(f"Gemm with attributes {a} (only y = x W^T + b or x W + b)")
  weight = graph.params[node.input[1]]
  kernel = weight.T if a.get("transB", 0) else weight  # (in, out)
  if flattened_from is not None and len(flattened_from) == 3:
    # The ONNX graph flattens NCHW activations (C, H, W order); the NNX model flattens NHWC
    # ones (H, W, C order): permute the kernel's rows once, here.
    c, h, w = flattened_from
    kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
  bias = graph.params[node.input[2]] if len(node.input) > 2 else None
  return nnx.Linear(
    kernel.shape[0],
    kernel.shape[1],
    use_bias=bias is not None,
    kernel_init=_given(kernel),
    bias_init=_given(bias),
    rngs=nnx.Rngs(0),
  )


def _pool(node: onnx.NodeProto) -> Callable:
  a = _attrs(node)
  kernel = tuple(a["kernel_shape"])
  pads = a.get("pads", [0] * 2 * len(kernel))
  padding = tuple((pads[i], pads[i + len(kernel)]) for i in range(len(kernel)))
  strides = tuple(a.get("strides", [1] * len(kernel)))
  if a.get("ceil_mode", 0) or a.get("dilations", [1] * len(kernel)) != [1] * len(kernel):
    raise NotImplementedError(f"{node.op_type} with attributes {a}")
  if node.op_type == "MaxPool":
    return functools.partial(nnx.max_pool, window_shape=kernel, strides=strides, padding=padding)
  # AveragePool: ONNX's count_include_pad defaults to 0 (padding left out of the mean).
  include = bool(a.get("count_include_pad", 0))
  return functools.partial(
    nnx.avg_pool, window_shape=kernel, strides=strides, padding=padding, count_include_pad=include
  )


def _flatten(x):
  return x.reshape(x.shape[0], -1)


def _softmax(x):
  return jax.nn.softmax(x, axis=-1)


def _layer(graph: Graph, node: onnx.NodeProto, flattened_from) -> object:
  """The NNX layer (a module or a function of NHWC arrays) for one node."""
  op = node.op_type
  if op == "Conv":
    return _conv(graph, node)
  if op == "Gemm":
    return _linear(graph, node, flattened_from)
  if op == "Relu":
    return nnx.relu
  if op == "LRN":
    a = _attrs(node)
    lrn_args = from_onnx(a["size"], a.get("alpha", 1e-4), a.get("beta", 0.75), a.get("bias", 1.0))
    return LocalResponseNorm(**(lrn_args | {"channel_axis": -1}))
  if op in ("MaxPool", "AveragePool"):
    return _pool(node)
  if op == "Dropout":
    return nnx.Dropout(float(_attrs(node).get("ratio", 0.5)), rngs=nnx.Rngs(dropout=0))
  if op in ("Reshape", "Flatten"):
    return _flatten  # the zoo's classifiers flatten (N, C, H, W) to (N, C * H * W)
  if op == "Softmax":
    return _softmax
  raise NotImplementedError(f"no NNX layer for ONNX {op} (node {node.name or node.output[0]})")


def _follow(graph: Graph, start: str, stop: set[str]) -> tuple[list, str]:
  """Layers from tensor ``start`` along its consumers until a tensor in ``stop`` (a Concat's
  input) or the graph output; fan-outs become :class:`Branches`. Returns (layers, last tensor)."""
  layers: list = []
  tensor = start
  while tensor not in stop:
    users = graph.consumers.get(tensor, [])
    if not users:
      break
    if len(users) > 1:  # parallel branches that meet at one Concat
      concats = {id(n): n for n in _reachable_concats(graph, users)}
      (concat,) = concats.values()
      branches = []
      for inp in concat.input:
        head = _branch_head(graph, tensor, inp)
        rest, _ = _follow(graph, head.output[0], set(concat.input))
        branches.append(nnx.Sequential(_layer(graph, head, None), *rest))
      layers.append(Branches(branches))
      tensor = concat.output[0]
      continue
    (node,) = users
    flattened_from = None
    if node.op_type == "Gemm":
      previous = graph.producer.get(node.input[0])
      if previous is not None and previous.op_type in ("Reshape", "Flatten"):
        flattened_from = graph.shapes[previous.input[0]][1:]
    layers.append(_layer(graph, node, flattened_from))
    tensor = node.output[0]
  return layers, tensor


def _reachable_concats(graph: Graph, users: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
  """The first Concat on each branch starting at ``users``."""
  found = []
  for node in users:
    while node.op_type != "Concat":
      (node,) = graph.consumers[node.output[0]]
    found.append(node)
  return found


def _branch_head(graph: Graph, fork: str, concat_input: str) -> onnx.NodeProto:
  """The consumer of tensor ``fork`` whose branch ends in ``concat_input``."""
  tensor = concat_input
  while True:
    node = graph.producer[tensor]
    if fork in node.input:
      return node
    tensor = node.input[0]


def build_model(graph: Graph) -> nnx.Sequential:
  """The NNX model: NHWC images in, the ONNX graph's output out."""
  layers, last = _follow(graph, graph.input_name, set())
  (output,) = graph.model.graph.output
  if last != output.name:
    raise ValueError(f"the conversion ended at {last!r}, not at the graph output {output.name!r}")
  return nnx.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Running and comparing.
# ---------------------------------------------------------------------------------------------


def light_model_path(name: str) -> Path:
  return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


def backend_test_input(shape: tuple[int, ...]) -> np.ndarray:
  """The input ONNX's backend tests feed the light models: ``arange(n).reshape(shape) / n``."""
  n = int(np.prod(shape))
  return (np.arange(n).reshape(shape) / n).astype(np.float32)


def _read_pb(path: Path) -> np.ndarray:
  tensor = onnx.TensorProto()
  tensor.ParseFromString(path.read_bytes())
  return numpy_helper.to_array(tensor)


def randomize(graph: Graph, seed: int) -> onnx.ModelProto:
  """Random weights (He-scaled normals, small biases) in ``graph.params`` and in a copy of the
  ONNX model (as initializers, replacing the ConstantOfShape nodes)."""
  rng = np.random.default_rng(seed)
  model = onnx.ModelProto()
  model.CopyFrom(graph.model)
  weights = {}
  for node in model.graph.node:
    if node.op_type in ("Conv", "Gemm"):
      w, *b = node.input[1:]
      shape = graph.params[w].shape
      fan_in = int(np.prod(shape[1:])) if node.op_type == "Conv" else shape[1]
      weights[w] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
      for name in b:
        weights[name] = rng.normal(0.0, 0.01, graph.params[name].shape).astype(np.float32)
  graph.params.update(weights)
  kept = [n for n in model.graph.node if n.output[0] not in weights]  # weights' producers go
  del model.graph.node[:]
  model.graph.node.extend(kept)
  inits = [t for t in model.graph.initializer if t.name not in weights]
  del model.graph.initializer[:]
  model.graph.initializer.extend(inits)
  model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
  return model


def onnxruntime_outputs(model: onnx.ModelProto, x: np.ndarray, extra: list[str]):
  """onnxruntime's outputs for the graph output and the tensors ``extra``, or None."""
  try:
    import onnxruntime as ort
  except ModuleNotFoundError:
    return None
  probe = onnx.ModelProto()
  probe.CopyFrom(model)
  for name in extra:
    probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
  session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
  (input_name,) = [i.name for i in session.get_inputs()]
  return session.run(None, {input_name: x})


def largest_difference(got, want) -> float:
  """``max |got - want| / max |want|``."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), np.finfo(np.float32).tiny))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  which = parser.add_mutually_exclusive_group(required=True)
  which.add_argument("--model", choices=LIGHT_MODELS, help="a light model shipped with onnx")
  which.add_argument("--onnx", type=Path, help="an ONNX file (e.g. a full model-zoo model)")
  parser.add_argument("--input", type=Path, help="input tensor (.pb) for --onnx")
  parser.add_argument("--output", type=Path, help="expected output tensor (.pb) for --onnx")
  parser.add_argument("--random-weights", type=int, metavar="SEED", help="random weights")
  args = parser.parse_args(argv)

  path = light_model_path(args.model) if args.model else args.onnx
  graph = read_graph(onnx.load(path))
  onnx_model = graph.model
  data_dir = path.parent / "test_data_set_0"
  input_pb = args.input or (data_dir / "input_0.pb" if data_dir.is_dir() else None)
  output_pb = args.output
  if args.model:
    output_pb = path.with_name(f"light_{args.model}_output_0.pb")
  elif output_pb is None and data_dir.is_dir():
    output_pb = data_dir / "output_0.pb"
  x = _read_pb(input_pb) if input_pb else backend_test_input(graph.input_shape)
  if args.random_weights is not None:
    onnx_model = randomize(graph, args.random_weights)
    output_pb = None  # the stored output is for the stored weights

  model = build_model(graph)
  model.eval()  # Dropout off
  params = nnx.state(model, nnx.Param)
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  lrn_layers = [m for _, m in nnx.iter_graph(model) if isinstance(m, LocalResponseNorm)]
  print(f"{path.name}: {count:,} parameters, {len(lrn_layers)} LRN layers")
  for layer in lrn_layers:
    print(
      f"  LocalResponseNorm(size={layer.size}, alpha={layer.alpha}, beta={layer.beta}, "
      f"k={layer.k}, channel_axis={layer.channel_axis}, even_placement={layer.even_placement!r})"
    )

  x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))  # the input's one transpose
  y = np.asarray(nnx.jit(lambda m, v: m(v))(model, x_nhwc))
  differences = {}
  if output_pb is not None and output_pb.exists():
    differences["stored output"] = largest_difference(y, _read_pb(output_pb))
  (output,) = onnx_model.graph.output
  softmax = graph.producer[output.name]
  extra = [softmax.input[0]] if softmax.op_type == "Softmax" else []
  ort_out = onnxruntime_outputs(onnx_model, x, extra)
  if ort_out is not None:
    differences["onnxruntime output"] = largest_difference(y, ort_out[0])
    if extra:
      pre_softmax = nnx.Sequential(*model.layers[:-1])
      z = np.asarray(nnx.jit(lambda m, v: m(v))(pre_softmax, x_nhwc))
      differences["onnxruntime logits"] = largest_difference(z, ort_out[1])
  if not differences:
    print("nothing to compare with: no stored output and no onnxruntime", file=sys.stderr)
    return 1
  for what, d in differences.items():
    print(f"{what}: largest difference {d:.2e} (relative to its largest magnitude)")
  worst = max(differences.values())
  print(f"largest difference: {worst:.2e}")
  return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
  sys.exit(main())
