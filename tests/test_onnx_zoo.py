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

pytest.importorskip("onnx")

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
def test_light_model(name, random_weights):
  args = ["--model", name] + ([] if random_weights is None else ["--random-weights", "0"])
  proc = subprocess.run(
    [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert "2 LRN layers" in lines[0]
  assert sum("LocalResponseNorm(size=5" in line for line in lines) == 2
  if random_weights is None:
    assert any(line.startswith("stored output:") for line in lines)
  if _has_onnxruntime():
    assert any(line.startswith("onnxruntime logits:") for line in lines)
  last = re.fullmatch(r"largest difference: (\S+)", lines[-1])
  assert last is not None, lines[-1]
  assert float(last.group(1)) <= 1e-3


@pytest.mark.skipif(not _has_onnxruntime(), reason="compares with onnxruntime")
def test_comparison_fails_without_lrn(monkeypatch, capsys):
  """With the LRN layers replaced by the identity, AlexNet's logits differ from onnxruntime's by
  more than the tolerance (the stored weights make LRN's denominators large): exit status 1."""
  zoo = _load_example()
  monkeypatch.setattr(zoo.LocalResponseNorm, "__call__", lambda self, x: x)
  assert zoo.main(["--model", "bvlc_alexnet"]) == 1
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert float(last.split()[-1]) > zoo.TOLERANCE


@pytest.mark.skipif(not _has_onnxruntime(), reason="compares with onnxruntime")
def test_comparison_fails_with_the_nchw_flatten_order(monkeypatch):
  """Without the permutation of fc6's rows (ONNX flattens C, H, W; the NNX model H, W, C) the
  random-weight AlexNet fails the comparison."""
  zoo = _load_example()
  linear = zoo._linear
  monkeypatch.setattr(zoo, "_linear", lambda graph, node, flattened_from: linear(graph, node, None))
  assert zoo.main(["--model", "bvlc_alexnet", "--random-weights", "0"]) == 1


def test_model_is_trainable():
  """The Inception v1 model: every parameter gets a finite gradient, LRN included upstream, and
  one SGD step lowers the loss on an image."""
  import onnx
  from flax import nnx

  zoo = _load_example()
  graph = zoo.read_graph(onnx.load(zoo.light_model_path("inception_v1")))
  zoo.randomize(graph, 0)
  model = zoo.build_model(graph)
  model.eval()
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 224, 224, 3)), jnp.float32)
  labels = jnp.asarray([3])

  def loss_fn(m):
    probs = m(x)
    return -jnp.mean(jnp.log(probs[jnp.arange(1), labels]))

  # (flax's avg_pool divides by a window count of the default float dtype, float64 with the
  # tests' x64: standard promotion here, as outside the tests.)
  with jax.numpy_dtype_promotion("standard"):
    loss, grads = nnx.jit(nnx.value_and_grad(loss_fn))(model)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) > 0 for g in leaves) == len(leaves)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.01 * g, params, grads))
    assert float(nnx.jit(loss_fn)(model)) < float(loss)
