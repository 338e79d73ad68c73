"""Generates the reference fixtures under ``tests/fixtures/`` by running the real frameworks.

Each fixture is one ``.npz`` file holding ``x`` (the float32 input), ``y`` (the framework's
output) and, where the framework has a gradient, ``g`` (a random cotangent) and
``dx = d(sum(y * g)) / dx``. ``manifest.json`` lists every file with its framework, framework
version, parameters (the framework's own names), shape, input scale, seed and whether it is a
transcription. The ``jax_lrn.compat`` tests compare against these files.

Sources of truth:

* PyTorch: ``torch.nn.functional.local_response_norm``, gradient by autograd; ranks 3 to 5, odd and
  even sizes.
* TensorFlow: ``tf.nn.local_response_normalization`` (4-D NHWC), gradient by ``tf.GradientTape``.
* ONNX: a one-node ``LRN`` model (opset 13) run by onnxruntime's CPU provider (4-D, odd sizes:
  that is all it accepts; the manifest records what it rejects). Even sizes come from the ONNX
  package's reference evaluator (``onnx.reference``), with batch == channels because its LRN loops
  over the batch axis instead of the channels (onnx/onnx#7805), which is harmless only then.
  Inference only: no gradients.
* Caffe cannot be installed: ``tools/caffe_lrn.py`` transcribes its CPU layer into NumPy float32
  (source lines cited there). Those fixtures are marked ``"transcription": true``.

Run it in a virtual environment with the reference frameworks (it never imports JAX):

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu  # optional
    .venv-ref/bin/pip install -e '.[fixtures]'      # torch, tensorflow-cpu, onnx, onnxruntime
    .venv-ref/bin/python tools/make_fixtures.py     # rewrites tests/fixtures/

``--frameworks caffe`` needs only NumPy. The output is deterministic: fixed seeds, single-threaded
frameworks, and ``.npz`` archives written with fixed timestamps, so an unchanged framework
version regenerates byte-identical files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
import zipfile
import zlib

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import caffe_lrn  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FRAMEWORKS = ("caffe", "tensorflow", "torch", "onnx")

# Parameter sets (alpha, beta, k) in the "alpha divided by the window" convention, with the input
# scale that makes the normalization term matter (alpha/n * sum x^2 of order 1 or more). The
# AlexNet paper's k=2, alpha=1e-4 (undivided, n=5) is alpha=5e-4 divided.
DIVIDED_PARAMS = {
  "defaults_1e-4": (1e-4, 0.75, 1.0, 30.0),
  "alexnet_paper": (5e-4, 0.75, 2.0, 30.0),
  "strong": (1.0, 0.75, 1.0, 1.0),
  "beta1_k0.5": (2.0, 1.0, 0.5, 1.0),
  "beta0.6_k1.5": (0.5, 0.6, 1.5, 2.0),
  "beta0.5": (3.0, 0.5, 1.0, 1.0),
}
# Extreme input magnitudes: (name, scale, alpha, beta, k).
EXTREMES = [
  ("large_1e3", 1e3, 1e-4, 0.75, 1.0),
  ("large_1e3_alpha1", 1e3, 1.0, 0.75, 2.0),
  ("small_1e-3", 1e-3, 1.0, 0.75, 1.0),
  ("small_1e-3_k1e-3", 1e-3, 1e3, 0.75, 1e-3),
]


def seed_for(name: str) -> int:
  return zlib.crc32(name.encode())


def draw(name: str, shape, scale: float, with_grad: bool):
  rng = np.random.default_rng(seed_for(name))
  x = (rng.standard_normal(shape) * scale).astype(np.float32)
  g = rng.standard_normal(shape).astype(np.float32) if with_grad else None
  return x, g


def write_npz(path: pathlib.Path, arrays: dict) -> None:
  """Like ``np.savez_compressed``, with fixed timestamps so the bytes are reproducible."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for key in sorted(arrays):
      buf = io.BytesIO()
      np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
      info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      info.external_attr = 0o644 << 16
      zf.writestr(info, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# Case lists: (name, shape, params in the framework's own names, input scale).
# ---------------------------------------------------------------------------------------------


def torch_cases():
  shapes = {
    3: ((2, 6, 5), [1, 2, 3, 4, 5, 8]),
    4: ((2, 5, 3, 4), [1, 2, 3, 4, 5, 6, 7]),
    5: ((1, 7, 2, 3, 2), [2, 3, 4, 5, 9]),
  }
  names = list(DIVIDED_PARAMS)
  cases = []
  i = 0
  for rank, (shape, sizes) in shapes.items():
    for size in sizes:
      pname = names[i % len(names)]
      alpha, beta, k, scale = DIVIDED_PARAMS[pname]
      cases.append(
        (
          f"torch_r{rank}_n{size}_{pname}",
          shape,
          dict(size=size, alpha=alpha, beta=beta, k=k),
          scale,
        )
      )
      i += 1
  for j, (ename, scale, alpha, beta, k) in enumerate(EXTREMES):
    for size in (3, 4):
      shape = (2, 6, 3, 3) if j % 2 == 0 else (2, 6, 5)
      cases.append(
        (f"torch_{ename}_n{size}", shape, dict(size=size, alpha=alpha, beta=beta, k=k), scale)
      )
  cases.append(("torch_defaults_c16_n5", (2, 16, 3, 3), dict(size=5), 50.0))
  cases.append(("torch_c1_n3", (3, 1, 4, 4), dict(size=3, alpha=1.0, beta=0.75, k=1.0), 1.0))
  cases.append(("torch_c2_n6", (2, 2, 3, 3), dict(size=6, alpha=1.0, beta=0.75, k=1.0), 1.0))
  return cases


def tensorflow_cases():
  cases = [
    ("tf_defaults_c16", (2, 3, 2, 16), dict(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5), 1.0),
    ("tf_defaults_c4", (2, 2, 3, 4), dict(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5), 1.0),
    (
      "tf_alexnet_paper",
      (2, 3, 3, 12),
      dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75),
      30.0,
    ),
    ("tf_from_caffe", (2, 3, 3, 12), dict(depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75), 30.0),
    ("tf_r0", (2, 2, 2, 5), dict(depth_radius=0, bias=1.0, alpha=1.0, beta=0.75), 1.0),
    ("tf_r1_beta1", (2, 2, 3, 6), dict(depth_radius=1, bias=0.5, alpha=0.7, beta=1.0), 1.0),
    ("tf_r3_beta0.6", (1, 3, 3, 9), dict(depth_radius=3, bias=1.5, alpha=0.2, beta=0.6), 2.0),
    ("tf_r7_c3", (2, 2, 2, 3), dict(depth_radius=7, bias=1.0, alpha=0.3, beta=0.75), 1.0),
    ("tf_r4_beta1.5", (1, 2, 2, 10), dict(depth_radius=4, bias=2.0, alpha=0.1, beta=1.5), 1.0),
    # depth > 384 with beta in {0.5, 1}: TF's CPU kernel switches to its single-threaded
    # sliding-window path (kSingleThreadedLRNDepthCutoff).
    (
      "tf_depth400_beta0.5",
      (1, 1, 2, 400),
      dict(depth_radius=2, bias=1.0, alpha=0.5, beta=0.5),
      1.0,
    ),
    ("tf_depth400_beta1", (1, 1, 2, 400), dict(depth_radius=3, bias=1.0, alpha=0.2, beta=1.0), 1.0),
  ]
  for ename, scale, alpha, beta, k in EXTREMES:
    # alpha here is TensorFlow's undivided alpha; divide to keep the same strength at r=2.
    params = dict(depth_radius=2, bias=k, alpha=alpha / 5, beta=beta)
    cases.append((f"tf_{ename}", (2, 2, 3, 8), params, scale))
  cases.append(
    (
      "tf_large_1e3_defaults",
      (1, 2, 2, 12),
      dict(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5),
      1e3,
    )
  )
  return cases


def onnx_cases():
  """(name, shape, params, scale, runner): onnxruntime for odd sizes, onnx.reference for even."""
  names = list(DIVIDED_PARAMS)
  cases = []
  for i, size in enumerate([1, 3, 5, 7, 9, 11, 5]):
    pname = names[i % len(names)]
    alpha, beta, bias, scale = DIVIDED_PARAMS[pname]
    shape = (2, 6, 3, 4) if size < 9 else (2, 4, 3, 3)
    params = dict(size=size, alpha=alpha, beta=beta, bias=bias)
    cases.append((f"onnx_ort_n{size}_{pname}", shape, params, scale, "onnxruntime"))
  defaults = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)
  cases.append(("onnx_ort_defaults_c16", (1, 16, 3, 3), defaults, 50.0, "onnxruntime"))
  cases.append(
    ("onnx_ort_n3_c1", (3, 1, 3, 3), dict(defaults, size=3, alpha=1.0), 1.0, "onnxruntime")
  )
  for ename, scale, alpha, beta, bias in EXTREMES:
    params = dict(size=3, alpha=alpha, beta=beta, bias=bias)
    cases.append((f"onnx_ort_{ename}_n3", (2, 6, 3, 3), params, scale, "onnxruntime"))
  for i, size in enumerate([2, 4, 6, 8]):
    pname = names[(i + 2) % len(names)]
    alpha, beta, bias, scale = DIVIDED_PARAMS[pname]
    # batch == channels: onnx.reference's LRN loops over the batch axis (onnx/onnx#7805).
    shape = (6, 6, 2, 3) if size != 8 else (5, 5, 2, 2)
    params = dict(size=size, alpha=alpha, beta=beta, bias=bias)
    cases.append((f"onnx_ref_n{size}_{pname}", shape, params, scale, "onnx.reference"))
  cases.append(
    (
      "onnx_ref_large_1e3_n4",
      (5, 5, 2, 2),
      dict(size=4, alpha=1.0, beta=0.75, bias=2.0),
      1e3,
      "onnx.reference",
    )
  )
  return cases


def caffe_cases():
  cases = []
  across = [
    (1, "caffe_defaults", (1.0, 0.75, 1.0), 1.0),
    (3, "caffe_defaults", (1.0, 0.75, 1.0), 1.0),
    (5, "caffe_defaults", (1.0, 0.75, 1.0), 1.0),
    (5, "alexnet_caffenet", (1e-4, 0.75, 1.0), 30.0),
    (5, "alexnet_paper", (5e-4, 0.75, 2.0), 30.0),
    (7, "beta0.6_k1.5", (0.5, 0.6, 1.5), 2.0),
    (9, "beta1_k0.5", (2.0, 1.0, 0.5), 1.0),
    (3, "beta0.5", (3.0, 0.5, 1.0), 1.0),
  ]
  for size, pname, (alpha, beta, k), scale in across:
    shape = (2, 7, 3, 4) if size != 9 else (2, 4, 3, 3)  # size 9 > 4 channels
    params = dict(local_size=size, alpha=alpha, beta=beta, k=k, norm_region="ACROSS_CHANNELS")
    cases.append((f"caffe_across_n{size}_{pname}", shape, params, scale))
  for ename, scale, alpha, beta, k in EXTREMES:
    params = dict(local_size=5, alpha=alpha, beta=beta, k=k, norm_region="ACROSS_CHANNELS")
    cases.append((f"caffe_across_{ename}_n5", (2, 8, 2, 3), params, scale))
  within = [
    (1, "caffe_defaults", (1.0, 0.75), 1.0),
    (3, "cifar10_full", (5e-5, 0.75), 100.0),
    (3, "caffe_defaults", (1.0, 0.75), 1.0),
    (5, "beta0.6", (2.0, 0.6), 1.0),
    (7, "beta1", (4.0, 1.0), 1.0),  # 7 > both spatial extents
    (5, "large_1e3", (1e-4, 0.75), 1e3),
    (3, "small_1e-3", (1e3, 0.75), 1e-3),
  ]
  for size, pname, (alpha, beta), scale in within:
    shape = (2, 3, 6, 5) if size < 7 else (1, 2, 4, 3)
    params = dict(local_size=size, alpha=alpha, beta=beta, k=1.0, norm_region="WITHIN_CHANNEL")
    cases.append((f"caffe_within_n{size}_{pname}", shape, params, scale))
  # k != 1 is ignored by Caffe's WITHIN_CHANNEL (the recorded k is what the user wrote).
  params = dict(local_size=3, alpha=1.0, beta=0.75, k=2.0, norm_region="WITHIN_CHANNEL")
  cases.append(("caffe_within_n3_k2_ignored", (2, 2, 5, 5), params, 1.0))
  return cases


# ---------------------------------------------------------------------------------------------
# Runners.
# ---------------------------------------------------------------------------------------------
# One call of each framework: ``(y, dx)`` for float32 ``x`` and cotangent ``g`` (``dx`` is None
# without a gradient). Also used by the live parity test (tests/test_compat.py).


def torch_lrn(x, g, params):
  """``torch.nn.functional.local_response_norm`` and its autograd VJP."""
  import torch
  import torch.nn.functional as F

  torch.set_num_threads(1)
  xt = torch.from_numpy(np.array(x, np.float32)).requires_grad_(True)
  y = F.local_response_norm(xt, **params)
  (dx,) = torch.autograd.grad((y * torch.from_numpy(np.array(g, np.float32))).sum(), xt)
  return y.detach().numpy(), dx.numpy()


def tensorflow_lrn(x, g, params):
  """``tf.nn.local_response_normalization`` and its ``tf.GradientTape`` VJP."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf

  xt = tf.constant(np.asarray(x, np.float32))
  with tf.GradientTape() as tape:
    tape.watch(xt)
    y = tf.nn.local_response_normalization(xt, **params)
    loss = tf.reduce_sum(y * tf.constant(np.asarray(g, np.float32)))
  return y.numpy(), tape.gradient(loss, xt).numpy()


def _onnx_model(shape, params):
  import onnx
  from onnx import TensorProto, helper

  node = helper.make_node("LRN", ["X"], ["Y"], **params)
  graph = helper.make_graph(
    [node],
    "lrn",
    [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
    [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
  onnx.checker.check_model(model)
  return model


def onnxruntime_lrn(x, g, params, log_severity_level=3):
  """A one-node ONNX ``LRN`` model on onnxruntime's CPU provider (no gradient)."""
  import onnxruntime as ort

  options = ort.SessionOptions()
  options.intra_op_num_threads = 1
  options.log_severity_level = log_severity_level
  model = _onnx_model(np.shape(x), params)
  sess = ort.InferenceSession(
    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
  )
  (y,) = sess.run(None, {"X": np.asarray(x, np.float32)})
  return y, None


def onnx_reference_lrn(x, g, params):
  """The same model on ``onnx.reference.ReferenceEvaluator``; correct only when N == C."""
  from onnx.reference import ReferenceEvaluator

  assert np.shape(x)[0] == np.shape(x)[1], "onnx.reference's LRN needs batch == channels"
  (y,) = ReferenceEvaluator(_onnx_model(np.shape(x), params)).run(None, {"X": x})
  return y, None


def caffe_transcription(x, g, params):
  """Caffe's CPU LRN layer as transcribed in ``tools/caffe_lrn.py``."""
  size, alpha, beta = params["local_size"], params["alpha"], params["beta"]
  if params["norm_region"] == "ACROSS_CHANNELS":
    return caffe_lrn.cross_channel(x, g, size, alpha, beta, params["k"])
  return caffe_lrn.within_channel(x, g, size, alpha, beta)


def _onnxruntime_limits():
  """What onnxruntime's CPU LRN refuses, as the error messages it gives (first line)."""
  limits = {}
  probes = {
    "rank 3": ((1, 4, 3), 3),
    "rank 5": ((1, 4, 2, 2, 2), 3),
    "even size": ((1, 4, 2, 2), 2),
  }
  for what, (shape, size) in probes.items():
    params = dict(size=size, alpha=1e-4, beta=0.75, bias=1.0)
    try:
      # The refusal is caught and recorded, not logged.
      onnxruntime_lrn(np.ones(shape, np.float32), None, params, log_severity_level=4)
      limits[what] = "accepted"
    except Exception as err:  # noqa: BLE001 -- recording the refusal is the point
      message = str(err).splitlines()[0]
      limits[what] = "rejected: " + message[message.find("onnxruntime::") :][:160]
  return limits


def _versions(framework):
  if framework == "torch":
    import torch

    return {"": torch.__version__}
  if framework == "tensorflow":
    import tensorflow as tf

    return {"": tf.__version__}
  if framework == "onnx":
    import onnx
    import onnxruntime as ort

    return {
      "onnxruntime": f"onnxruntime {ort.__version__} (CPU), onnx {onnx.__version__}",
      "onnx.reference": f"onnx {onnx.__version__} (onnx.reference.ReferenceEvaluator)",
    }
  return {"": "BVLC/caffe master (transcription)"}


FUNCTIONS = {
  "torch": "torch.nn.functional.local_response_norm",
  "tensorflow": "tf.nn.local_response_normalization",
  "caffe": "LRNLayer (CPU), transcribed in tools/caffe_lrn.py",
}
CALLS = {
  "torch": torch_lrn,
  "tensorflow": tensorflow_lrn,
  "caffe": caffe_transcription,
  "onnxruntime": onnxruntime_lrn,
  "onnx.reference": onnx_reference_lrn,
}
CASES = {
  "torch": lambda: [(*case, "torch") for case in torch_cases()],
  "tensorflow": lambda: [(*case, "tensorflow") for case in tensorflow_cases()],
  "caffe": lambda: [(*case, "caffe") for case in caffe_cases()],
  "onnx": onnx_cases,
}


def run(framework, entries, outdir):
  """Runs every case of one framework, writing its ``.npz`` files and manifest entries."""
  versions = _versions(framework)
  for name, shape, params, scale, runner in CASES[framework]():
    with_grad = framework != "onnx"
    x, g = draw(name, shape, scale, with_grad)
    y, dx = CALLS[runner](x, g, params)
    arrays = dict(x=x, y=y) if dx is None else dict(x=x, y=y, g=g, dx=dx)
    for key, value in arrays.items():
      assert value.dtype == np.float32 and value.shape == tuple(shape), (name, key)
      assert np.all(np.isfinite(value)), (name, key)
    write_npz(outdir / f"{name}.npz", arrays)
    entries.append(
      dict(
        file=f"{name}.npz",
        framework=framework,
        function=FUNCTIONS.get(framework, f"LRN opset 13 via {runner}"),
        version=versions.get(runner, versions.get("")),
        params=params,
        shape=list(shape),
        dtype="float32",
        input_scale=scale,
        seed=seed_for(name),
        gradient=dx is not None,
        transcription=framework == "caffe",
      )
    )
  return {"onnxruntime_cpu_limits": _onnxruntime_limits()} if framework == "onnx" else None


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "tests" / "fixtures")
  parser.add_argument(
    "--frameworks",
    default=",".join(FRAMEWORKS),
    help=f"comma-separated subset of {','.join(FRAMEWORKS)}; others keep their manifest entries",
  )
  args = parser.parse_args(argv)
  chosen = [f.strip() for f in args.frameworks.split(",") if f.strip()]
  unknown = sorted(set(chosen) - set(FRAMEWORKS))
  if unknown:
    parser.error(f"unknown frameworks {unknown}; choose from {FRAMEWORKS}")
  args.out.mkdir(parents=True, exist_ok=True)
  manifest_path = args.out / "manifest.json"
  manifest = {"fixtures": [], "notes": {}}
  if manifest_path.exists():
    manifest = json.loads(manifest_path.read_text())
  # Regenerated frameworks replace their old entries and files.
  kept = [e for e in manifest["fixtures"] if e["framework"] not in chosen]
  for entry in manifest["fixtures"]:
    if entry["framework"] in chosen:
      (args.out / entry["file"]).unlink(missing_ok=True)
  entries: list[dict] = []
  notes = dict(manifest.get("notes", {}))
  for framework in chosen:
    extra = run(framework, entries, args.out)
    if extra:
      notes.update(extra)
  manifest = {
    "generator": "tools/make_fixtures.py",
    "regenerate": ".venv-ref/bin/python tools/make_fixtures.py [--frameworks caffe,torch,...]",
    "arrays": "x: input; y: output; g: cotangent and dx = d(sum(y * g))/dx where gradient is true",
    "fixtures": sorted(kept + entries, key=lambda e: (e["framework"], e["file"])),
    "notes": notes,
  }
  manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
  counts = {f: sum(e["framework"] == f for e in manifest["fixtures"]) for f in FRAMEWORKS}
  print(f"wrote {len(entries)} fixtures to {args.out}; now {counts}")


if __name__ == "__main__":
  main()
