"""How onnxruntime runs jax_lrn's ONNX exports: the ``LRN`` node against the decomposition.

For each shape and layout, ``lrn`` is exported with jax2onnx (``jax_lrn.onnx_export``) twice:
``normalization_mode="prefer_native"`` (NCHW: one ``LRN`` node; NHWC: the node between two
``Transpose`` nodes) and ``"force_decomposed"`` (squares, a ``Conv`` window sum, the power).
Each graph's output is first checked against a float64 NumPy reference; then both run in one
onnxruntime session each (one intra-op thread unless ``--threads``), interleaved with an
elementwise ``x * 2`` graph over the same array, timed right before every call (the
denominator of the ratios).

Needs the ``onnx`` extra (jax2onnx, onnx, onnxruntime). Writes results.md and results.json to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import random_arrays, reference, relative_error, stats, time_interleaved  # noqa: E402

# name -> NCHW shape: AlexNet's two LRN layers (conv1 and conv2 outputs) at batch 8.
SHAPES = {"conv1": (8, 96, 55, 55), "conv2": (8, 256, 27, 27)}
QUICK_SHAPES = {"small": (2, 16, 8, 8)}
LAYOUTS = ("NCHW", "NHWC")
SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0


def _session(model, threads: int):
  import onnxruntime as ort

  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  return ort.InferenceSession(
    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
  )


def _elementwise_model(shape):
  from onnx import TensorProto, helper, numpy_helper

  two = numpy_helper.from_array(np.asarray(2.0, np.float32), "two")
  graph = helper.make_graph(
    [helper.make_node("Mul", ["x", "two"], ["y"])],
    "x_times_2",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    [two],
  )
  return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _runner(session, x):
  name = session.get_inputs()[0].name
  return lambda: session.run(None, {name: x})[0]


def run(shapes: dict, repeats: int, warmup: int, threads: int, beta: float = BETA) -> list[dict]:
  import jax
  from jax2onnx import to_onnx

  import jax_lrn
  from jax_lrn import onnx_export

  onnx_export.register()
  rows = []
  for shape_name, nchw in shapes.items():
    x_nchw, _ = random_arrays(nchw)
    for layout in LAYOUTS:
      axis = 1 if layout == "NCHW" else -1
      x = x_nchw if layout == "NCHW" else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
      want = reference(x, None, (x.ndim - 1 if axis == -1 else 1,), SIZE, ALPHA, beta, K)[0]

      def fn(v, axis=axis):
        return jax_lrn.lrn(v, SIZE, ALPHA, beta, K, channel_axis=axis)

      spec = jax.ShapeDtypeStruct(x.shape, np.float32)
      runners = {"x * 2": _runner(_session(_elementwise_model(x.shape), threads), x)}
      graphs = {}
      for variant, mode in (("LRN node", "prefer_native"), ("decomposed", "force_decomposed")):
        model = to_onnx(fn, [spec], normalization_mode=mode)
        graphs[variant] = [node.op_type for node in model.graph.node]
        runners[variant] = _runner(_session(model, threads), x)
      errors = {v: relative_error(runners[v](), want) for v in graphs}
      times = time_interleaved(runners, repeats, warmup, baseline="x * 2")
      elem = float(np.min(times["x * 2"]))
      for variant, ops in graphs.items():
        t = stats(times[variant])
        rows.append(
          dict(
            shape=shape_name,
            dims=list(x.shape),
            layout=layout,
            variant=variant,
            graph="-".join(dict.fromkeys(ops)) if variant == "decomposed" else "-".join(ops),
            error=errors[variant],
            elem_min_s=elem,
            ratio=t["min_s"] / elem,
            **t,
          )
        )
  return rows


def render(rows: list[dict], threads: int, beta: float = BETA) -> str:
  lines = [
    f"LRN size {SIZE}, alpha {ALPHA}, beta {beta}, k {K}; onnxruntime CPU, {threads} intra-op "
    "thread(s); ms = minimum over the rounds; ratio = "
    "that / the minimum of x * 2 over the same array.",
    "",
    "| shape | layout | variant | graph | ms (min) | ms (median) | x * 2 ms | ratio | rel. error |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
      f"| {r['shape']} {tuple(r['dims'])} | {r['layout']} | {r['variant']} | {r['graph']} | "
      f"{r['min_s'] * 1e3:.3f} | {r['median_s'] * 1e3:.3f} | {r['elem_min_s'] * 1e3:.3f} | "
      f"{r['ratio']:.2f} | {r['error']:.1e} |"
    )
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
  parser.add_argument("--out", default="runs/bench_onnx", help="output folder")
  parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 15)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
  parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
  parser.add_argument("--beta", type=float, default=BETA, help=f"exponent (default {BETA})")
  args = parser.parse_args()
  shapes = QUICK_SHAPES if args.quick else SHAPES
  repeats = args.repeats or (2 if args.quick else 15)
  rows = run(shapes, repeats, args.warmup, args.threads, args.beta)
  for r in rows:
    if r["error"] > 1e-5:
      sys.exit(f"{r['shape']} {r['layout']} {r['variant']}: relative error {r['error']:.2e}")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  table = render(rows, args.threads, args.beta)
  (out / "results.md").write_text(table)
  payload = dict(threads=args.threads, beta=args.beta, rows=rows)
  (out / "results.json").write_text(json.dumps(payload, indent=1))
  print(table, end="")


if __name__ == "__main__":
  main()
