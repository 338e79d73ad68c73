"""One framework's LRN, timed in its own process: ``python bench_frameworks.py FRAMEWORK OUT``.

Reads a JSON spec from stdin (written by ``bench_lrn.py``) and writes one JSON object to OUT:
``{"framework", "version", "results": [...]}``. Every case is across channels (the only mode
these frameworks implement). Each result carries the framework's min/median/max seconds, the
minimum and median of a JAX elementwise ``x * 2`` pass over the same array timed right before
every call (the denominator of the ratios), the framework's own ``x * 2``, the error against
a float64 NumPy reference (on the first batch element) or a note why the case did not run.

Frameworks and layouts:
  torch       ``torch.nn.functional.local_response_norm``, NCHW and channels_last ("NHWC")
  tensorflow  ``tf.nn.local_response_normalization`` (NHWC only; alpha is not divided by size)
  onnxruntime the ONNX ``LRN`` operator (NCHW, float32, forward only: no training graph)
"""

from __future__ import annotations

import json
import sys

import numpy as np
from bench_common import random_arrays, reference, relative_error, stats, time_interleaved

PASSES = ("forward", "forward+backward")


def _check_and_time(make, case, layout, spec, x, g, ref_axes):
  """``make(pass_name) -> (run, result)``: run() times one call, result() returns (y, dx)."""
  out = []
  ref = None
  for pass_name in case["passes"]:
    entry = dict(case=case["id"], layout=layout, dtype=case["dtype"], pass_name=pass_name)
    try:
      run, elem, result = make(pass_name)
      y, dx = result()
    except Exception as err:  # unsupported dtype or op: report it, keep going
      out.append(dict(entry, note=f"unsupported: {type(err).__name__}: {str(err)[:120]}"))
      continue
    if ref is None:
      ref = reference(x[:1], g[:1], ref_axes, case["size"], case["alpha"], case["beta"], case["k"])
    error = relative_error(y[:1], ref[0])
    if dx is not None:
      error = max(error, relative_error(dx[:1], ref[1]))
    fns = dict(jax_elem=_jax_elementwise(x, case["dtype"]), own_elem=elem, impl=run)
    times = time_interleaved(fns, spec["repeats"], spec["warmup"], baseline="jax_elem")
    out.append(
      dict(
        entry,
        **stats(times["impl"]),
        elem_min_s=float(np.min(times["jax_elem"])),
        elem_median_s=float(np.median(times["jax_elem"])),
        own_elem_min_s=float(np.min(times["own_elem"])),
        error=float(error),
      )
    )
  return out


def _jax_elementwise(x_np, dtype):
  """The JAX ``x * 2`` pass over the same array: the common denominator of every ratio."""
  import jax
  import jax.numpy as jnp

  x = jnp.asarray(x_np, dtype)
  compiled = jax.jit(lambda x: x * 2).lower(x).compile()
  return lambda: compiled(x).block_until_ready()


def _torch(spec):
  import torch
  import torch.nn.functional as F

  dtypes = dict(float32=torch.float32, bfloat16=torch.bfloat16, float16=torch.float16)
  results = []
  for case in spec["cases"]:
    x_np, g_np = case_arrays(case)  # NCHW, already rounded to the case dtype
    for layout in ("NCHW", "NHWC"):
      fmt = torch.contiguous_format if layout == "NCHW" else torch.channels_last
      dt = dtypes[case["dtype"]]
      x = torch.from_numpy(x_np).to(dt).contiguous(memory_format=fmt)
      g = torch.from_numpy(g_np).to(dt).contiguous(memory_format=fmt)
      args = (case["size"], case["alpha"], case["beta"], case["k"])

      def make(pass_name, x=x, g=g, args=args):
        def elem():
          with torch.no_grad():
            return x * 2

        if pass_name == "forward":

          def run():
            with torch.no_grad():
              return F.local_response_norm(x, *args)

          def result():
            return run().float().numpy(), None

          return run, elem, result
        xg = x.detach().clone().requires_grad_(True)

        def run():
          xg.grad = None
          y = F.local_response_norm(xg, *args)
          y.backward(g)
          return y, xg.grad

        def result():
          y, dx = run()
          return y.detach().float().numpy(), dx.float().numpy()

        return run, elem, result

      results += _check_and_time(make, case, layout, spec, x_np, g_np, (1,))
  return torch.__version__, results


def _tensorflow(spec):
  import tensorflow as tf

  results = []
  for case in spec["cases"]:
    x_np, g_np = case_arrays(case)
    x_nhwc = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1))
    g_nhwc = np.ascontiguousarray(g_np.transpose(0, 2, 3, 1))
    dt = dict(float32=tf.float32, bfloat16=tf.bfloat16, float16=tf.float16)[case["dtype"]]
    x = tf.constant(x_nhwc, dtype=dt)
    g = tf.constant(g_nhwc, dtype=dt)
    size = case["size"]
    kwargs = dict(
      depth_radius=size // 2, bias=case["k"], alpha=case["alpha"] / size, beta=case["beta"]
    )

    def make(pass_name, x=x, g=g, kwargs=kwargs):
      elem_fn = tf.function(lambda x: x * 2)

      def elem():
        return elem_fn(x)

      if pass_name == "forward":
        fwd = tf.function(lambda x: tf.nn.local_response_normalization(x, **kwargs))

        def run():  # eager CPU execution is synchronous: no host copy in the timed call
          return fwd(x)

        def result():
          return np.asarray(tf.cast(fwd(x), tf.float32)), None

        return run, elem, result

      @tf.function
      def fwd_bwd(x, g):
        with tf.GradientTape() as tape:
          tape.watch(x)
          y = tf.nn.local_response_normalization(x, **kwargs)
        return y, tape.gradient(y, x, output_gradients=g)

      def run():
        return fwd_bwd(x, g)

      def result():
        y, dx = fwd_bwd(x, g)
        return np.asarray(tf.cast(y, tf.float32)), np.asarray(tf.cast(dx, tf.float32))

      return run, elem, result

    results += _check_and_time(make, case, "NHWC", spec, x_nhwc, g_nhwc, (3,))
  return tf.__version__, results


def _onnxruntime(spec):
  import onnx
  import onnxruntime as ort
  from onnx import TensorProto, helper

  results = []
  for case in spec["cases"]:
    x_np, g_np = case_arrays(case)
    passes = [p for p in case["passes"] if p == "forward"]
    if case["dtype"] != "float32" or not passes:
      continue
    shape = list(x_np.shape)
    node = helper.make_node(
      "LRN",
      ["x"],
      ["y"],
      size=case["size"],
      alpha=case["alpha"],
      beta=case["beta"],
      bias=case["k"],
    )
    elem_node = helper.make_node("Add", ["x", "x"], ["y"])
    sessions = {}
    for name, n in (("lrn", node), ("elem", elem_node)):
      graph = helper.make_graph(
        [n],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
      )
      model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
      onnx.checker.check_model(model)
      sessions[name] = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
      )

    def make(pass_name, sessions=sessions, x_np=x_np):
      def run():
        return sessions["lrn"].run(None, {"x": x_np})[0]

      def elem():
        return sessions["elem"].run(None, {"x": x_np})[0]

      return run, elem, lambda: (run(), None)

    results += _check_and_time(make, dict(case, passes=passes), "NCHW", spec, x_np, g_np, (1,))
  return ort.__version__, results


def case_arrays(case):
  """The case's ``(x, g)`` in NCHW float32, rounded through the case dtype when it is 16-bit."""
  x, g = random_arrays(case["shape_nchw"], seed=case["seed"])
  if case["dtype"] == "bfloat16":
    x, g = (_round_bfloat16(a) for a in (x, g))
  elif case["dtype"] == "float16":
    x, g = (a.astype(np.float16).astype(np.float32) for a in (x, g))
  return x, g


def _round_bfloat16(a):
  """float32 -> bfloat16 -> float32 with round-to-nearest-even, in NumPy."""
  bits = a.astype(np.float32).view(np.uint32)
  bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
  return bits.astype(np.uint32).view(np.float32)


RUNNERS = dict(torch=_torch, tensorflow=_tensorflow, onnxruntime=_onnxruntime)


def main():
  framework, out_path = sys.argv[1:3]
  spec = json.load(sys.stdin)
  version, results = RUNNERS[framework](spec)
  with open(out_path, "w") as f:
    json.dump(dict(framework=framework, version=version, results=results), f)


if __name__ == "__main__":
  main()
