"""examples/onnx_zoo.py on the three LRN networks whose light versions ship inside the onnx package
(AlexNet, Inception v1, ZFNet-512): the NNX model reproduces the stored output and onnxruntime's
logits, with the stored and with random weights; the comparison fails when the LRN layers or the
flatten order are wrong; the model trains. Skipped without onnx (the ``onnx`` extra)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cases import require

require("onnx")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "onnx_zoo.py"


def _load_example():
  spec = importlib.util.spec_from_file_location("onnx_zoo", EXAMPLE)
  assert spec is not None and spec.loader is not None
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # (its dataclass looks its module up)
  spec.loader.exec_module(module)
  return module


def _has_onnxruntime() -> bool:
  return importlib.util.find_spec("onnxruntime") is not None


@pytest.mark.parametrize(
  "name, random_weights",
  [
    ("bvlc_alexnet", None),
    ("inception_v1", None),
    ("zfnet512", None),
    # Equal weights hide a wrong flatten order and give equal class scores: random ones too.
    ("bvlc_alexnet", 0),
    ("inception_v1", 0),
  ],
)
def test_light_model(name, random_weights, capsys):
  args = ["--model", name] + ([] if random_weights is None else ["--random-weights", "0"])
  zoo = _load_example()
  with jax.enable_x64(False):  # as the script runs (flax's avg_pool counts in the default dtype)
    status = zoo.main(args)
  lines = capsys.readouterr().out.strip().splitlines()
  assert status == 0, lines
  assert "2 LRN layers" in lines[0]
  assert sum("LocalResponseNorm(size=5" in line for line in lines) == 2
  if random_weights is None:
    assert any(line.startswith("stored output:") for line in lines)
  if _has_onnxruntime():
    assert any(line.startswith("onnxruntime logits:") for line in lines)
  last = re.fullmatch(r"largest difference: (\S+)", lines[-1])
  assert last is not None, lines[-1]
  assert float(last.group(1)) <= 1e-3


def test_command_line():
  """The script as a user runs it: the last line and the exit status."""
  proc = subprocess.run(
    [sys.executable, str(EXAMPLE), "--model", "inception_v1"],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  assert re.fullmatch(r"largest difference: \S+", proc.stdout.strip().splitlines()[-1])


def test_comparison_fails_without_lrn(monkeypatch, capsys):
  """With the LRN layers replaced by the identity, AlexNet's logits differ from onnxruntime's by
  more than the tolerance (the stored weights make LRN's denominators large): exit status 1."""
  require("onnxruntime")
  zoo = _load_example()
  monkeypatch.setattr(zoo.LocalResponseNorm, "__call__", lambda self, x: x)
  assert zoo.main(["--model", "bvlc_alexnet"]) == 1
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert float(last.split()[-1]) > zoo.TOLERANCE


def test_comparison_fails_with_the_nchw_flatten_order(monkeypatch):
  """Without the permutation of fc6's rows (ONNX flattens C, H, W; the NNX model H, W, C) the
  random-weight AlexNet fails the comparison."""
  require("onnxruntime")
  zoo = _load_example()
  linear = zoo._linear
  monkeypatch.setattr(zoo, "_linear", lambda graph, node, flattened_from: linear(graph, node, None))
  assert zoo.main(["--model", "bvlc_alexnet", "--random-weights", "0"]) == 1


def _small_network(path: Path) -> None:
  """A small ONNX graph with the zoo networks' operators: Conv, Relu, LRN (alpha large enough to
  matter), MaxPool, an Inception-like block (three branches, Concat), flatten, Gemm, Softmax."""
  import onnx
  from onnx import TensorProto, helper, numpy_helper

  rng = np.random.default_rng(0)
  inits = []

  def weight(name, *shape):
    inits.append(numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name))
    return name

  node = helper.make_node
  nodes = [
    node("Conv", ["x", weight("w1", 8, 3, 3, 3), weight("b1", 8)], ["c1"], pads=[1, 1, 1, 1]),
    node("Relu", ["c1"], ["r1"]),
    node("LRN", ["r1"], ["n1"], size=3, alpha=0.5, beta=0.75, bias=2.0),
    node("MaxPool", ["n1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
    node("Conv", ["p1", weight("wa", 4, 8, 1, 1)], ["a"]),
    node("Conv", ["p1", weight("wb", 4, 8, 3, 3), weight("bb", 4)], ["b"], pads=[1, 1, 1, 1]),
    node("MaxPool", ["p1"], ["cp"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    node("Conv", ["cp", weight("wc", 4, 8, 1, 1)], ["c"]),
    node("Concat", ["a", "b", "c"], ["cat"], axis=1),
    node("AveragePool", ["cat"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
    node("Reshape", ["ap", "flat"], ["f"]),
    node("Gemm", ["f", weight("wf", 10, 12 * 4 * 4), weight("bf", 10)], ["g"], transB=1),
    node("Softmax", ["g"], ["y"]),
  ]
  inits.append(numpy_helper.from_array(np.asarray([1, -1], np.int64), "flat"))
  graph = helper.make_graph(
    nodes,
    "small",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    inits,
  )
  onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_onnx_file(tmp_path, capsys):
  """--onnx PATH with no stored output: the small network against onnxruntime."""
  require("onnxruntime")
  path = tmp_path / "small.onnx"
  _small_network(path)
  zoo = _load_example()
  with jax.enable_x64(False):  # as the script runs (flax's avg_pool: see below)
    assert zoo.main(["--onnx", str(path)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert "1 LRN layers" in lines[0]
  assert any(line.startswith("onnxruntime logits:") for line in lines)


def test_model_is_trainable(tmp_path):
  """The NNX model of the small network: every parameter gets a finite, non-zero gradient, and
  one SGD step lowers the loss."""
  import onnx
  from flax import nnx

  path = tmp_path / "small.onnx"
  _small_network(path)
  zoo = _load_example()
  model = zoo.build_model(zoo.read_graph(onnx.load(path)))
  x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype(np.float32)
  labels = np.asarray([3, 7, 1, 0], np.int32)

  def loss_fn(m):
    probs = m(x)
    return -jnp.mean(jnp.log(probs[jnp.arange(4), labels]))

  # (flax's avg_pool divides by a window count of the default float dtype, float64 with the
  # tests' x64: x64 off here, as outside the tests.)
  with jax.enable_x64(False):
    loss, grads = nnx.jit(nnx.value_and_grad(loss_fn))(model)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == 8  # 5 kernels, 3 biases
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.05 * g, params, grads))
    assert float(nnx.jit(loss_fn)(model)) < float(loss)
