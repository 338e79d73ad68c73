"""Generates the GDN reference fixtures under ``tests/fixtures/gdn/`` by running the real layers.

Each fixture is one ``.npz`` file: ``x`` (float32 input), ``g`` (a random cotangent), ``y`` (the
layer's output) and ``dx = d(sum(y * g)) / dx``; where the layer was given fixed parameters,
``beta`` and ``gamma`` (in the framework's own orientation) with ``dbeta``/``dgamma``, the
gradients to those effective values; where the layer trains its own, ``raw_beta``/``raw_gamma``
(the stored, reparameterised variables) with ``draw_beta``/``draw_gamma``, the gradients to them,
and ``dbeta``/``dgamma`` to the effective values the layer computed from them. ``manifest.json``
lists every file with its framework, version, layer arguments (the framework's own names), shape,
seed and the arrays it holds.

Sources of truth:

* tensorflow_compression 2.14.1 (TensorFlow 2.14, CPU): ``tfc.GDN``, gradients by
  ``tf.GradientTape``; both data formats, ranks 2 to 6, IGDN, rectified, the simplified default,
  the classic exponents and a fractional ``alpha``, fixed parameters and the layer's own
  (fresh and moved, some below the lower bound).
* CompressAI 1.2.8 (PyTorch 2.13 CPU): ``compressai.layers.GDN`` and ``GDN1``. Importing the
  ``compressai`` package pulls optional dependencies, so its ``layers/gdn.py`` and the ``ops``
  modules it needs are loaded from the installed files directly (``load_compressai_gdn``); the
  effective ``beta``/``gamma`` are taken from the layer's own reparameterisation modules by a
  forward hook, so their gradients are the layer's.

Run once per framework, each in its own virtual environment (it never imports JAX):

    python3.11 -m venv venv-tfc
    venv-tfc/bin/pip install tensorflow-cpu==2.14.1 tensorflow-compression==2.14.1
    venv-tfc/bin/python tools/make_gdn_fixtures.py tfc

    python3.11 -m venv venv-compressai
    venv-compressai/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    venv-compressai/bin/pip install --no-deps compressai==1.2.8
    venv-compressai/bin/python tools/make_gdn_fixtures.py compressai

Each run replaces its framework's files and manifest entries. The output is deterministic
(fixed seeds, single-threaded frameworks, fixed zip timestamps).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import types

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from make_fixtures import seed_for, write_npz  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gdn"


def draw(name: str, shape, scale: float = 1.0):
  rng = np.random.default_rng(seed_for(name))
  x = (rng.standard_normal(shape) * scale).astype(np.float32)
  g = rng.standard_normal(shape).astype(np.float32)
  return x, g, rng


def random_weights(rng, channels: int):
  """Effective beta in [0.5, 1.5), gamma in [0, 0.3) with zeros (TFC orientation [in, out])."""
  beta = rng.uniform(0.5, 1.5, size=channels).astype(np.float32)
  gamma = rng.uniform(0.0, 0.3, size=(channels, channels)).astype(np.float32)
  gamma[rng.uniform(size=gamma.shape) < 0.25] = 0.0
  return beta, gamma


def moved_raw(rng, raw: np.ndarray) -> np.ndarray:
  """Stored values as after training: moved, and a quarter below the lower bound (where the
  effective value is clamped and the bound's gradient rule matters)."""
  moved = raw + rng.uniform(-0.05, 0.4, size=raw.shape).astype(np.float32)
  below = rng.uniform(size=raw.shape) < 0.25
  return np.where(below, np.float32(-0.01), moved).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# tensorflow_compression
# ---------------------------------------------------------------------------------------------

# name, shape, layer arguments, "fixed" (beta/gamma given) or "fresh"/"moved" (the layer's own)
TFC_CASES = [
  ("tfc_default_fresh_nhwc", (2, 5, 4, 8), {}, "fresh"),
  (
    "tfc_classic_fresh_nhwc",
    (2, 5, 4, 8),
    dict(alpha_parameter=2.0, epsilon_parameter=0.5),
    "fresh",
  ),
  ("tfc_default_moved_nhwc", (2, 4, 3, 6), {}, "moved"),
  (
    "tfc_classic_moved_nchw",
    (2, 6, 4, 3),
    dict(alpha_parameter=2.0, epsilon_parameter=0.5, data_format="channels_first"),
    "moved",
  ),
  ("tfc_classic_rank2", (5, 7), dict(alpha_parameter=2.0, epsilon_parameter=0.5), "fixed"),
  ("tfc_simplified_rank3", (3, 4, 6), {}, "fixed"),
  ("tfc_classic_nhwc", (2, 4, 3, 8), dict(alpha_parameter=2.0, epsilon_parameter=0.5), "fixed"),
  (
    "tfc_classic_nchw",
    (2, 8, 3, 4),
    dict(alpha_parameter=2.0, epsilon_parameter=0.5, data_format="channels_first"),
    "fixed",
  ),
  (
    "tfc_igdn_classic_rank5",
    (1, 3, 2, 4, 5),
    dict(inverse=True, alpha_parameter=2.0, epsilon_parameter=0.5),
    "fixed",
  ),
  (
    "tfc_igdn_simplified_nchw",
    (2, 6, 3, 3),
    dict(inverse=True, data_format="channels_first"),
    "fixed",
  ),
  ("tfc_rectify_simplified_rank6", (1, 2, 2, 3, 2, 5), dict(rectify=True), "fixed"),
  (
    "tfc_rectify_nchw_rank5",
    (1, 5, 2, 3, 2),
    dict(rectify=True, data_format="channels_first"),
    "fixed",
  ),
  (
    "tfc_alpha1.5_eps0.75_rectify",
    (3, 4, 6),
    dict(alpha_parameter=1.5, epsilon_parameter=0.75, rectify=True),
    "fixed",
  ),
  (
    "tfc_alpha1.5_eps0.75_signed",
    (3, 4, 6),
    dict(alpha_parameter=1.5, epsilon_parameter=0.75),
    "fixed",
  ),
  ("tfc_alpha2_eps1_nhwc", (2, 3, 3, 5), dict(alpha_parameter=2.0, epsilon_parameter=1.0), "fixed"),
  (
    "tfc_alpha1_eps0.5_nhwc",
    (2, 3, 3, 5),
    dict(alpha_parameter=1.0, epsilon_parameter=0.5),
    "fixed",
  ),
  (
    "tfc_alpha3_eps0.3_rectify",
    (4, 6),
    dict(alpha_parameter=3.0, epsilon_parameter=0.3, rectify=True),
    "fixed",
  ),
]


def tfc_fixtures():
  from importlib.metadata import version

  import tensorflow as tf
  import tensorflow_compression as tfc

  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  versions = (
    f"tensorflow-compression {version('tensorflow-compression')}, tensorflow {tf.__version__}"
  )
  entries = []
  for name, shape, kwargs, kind in TFC_CASES:
    x, g, rng = draw(name, shape)
    if name.endswith("_signed"):
      # Half the positions all positive: TFC's signed x ** alpha is nan only at the others.
      positive = rng.uniform(size=shape[:-1] + (1,)) < 0.5
      x = np.where(positive, np.abs(x), x).astype(np.float32)
    arrays = {"x": x, "g": g}
    channel_axis = 1 if kwargs.get("data_format") == "channels_first" else -1
    channels = shape[channel_axis]
    xt = tf.constant(x)
    if kind == "fixed":
      beta, gamma = random_weights(rng, channels)
      bt, gt = tf.constant(beta), tf.constant(gamma)

      def run(xt, bt, gt, kwargs=kwargs, g=g):
        layer = tfc.GDN(beta_parameter=bt, gamma_parameter=gt, **kwargs)
        with tf.GradientTape() as tape:
          tape.watch([xt, bt, gt])
          y = layer(xt)
          loss = tf.reduce_sum(y * g)
        return (y, *tape.gradient(loss, [xt, bt, gt]))

      try:
        y, dx, dbeta, dgamma = run(xt, bt, gt)
        mode = "eager"
      except AttributeError:
        # TF 2.14's eager Conv3D gradient reads a data_format attribute that eager ops lack
        # (the 1x1x1 convolution TFC uses for rank-5 channels_last): the same ops in a graph.
        y, dx, dbeta, dgamma = tf.function(run)(xt, bt, gt)
        mode = "tf.function (the eager gradient raises AttributeError in TF 2.14)"
      arrays.update(beta=beta, gamma=gamma, dbeta=dbeta.numpy(), dgamma=dgamma.numpy())
    else:
      mode = "eager"
      layer = tfc.GDN(**kwargs)
      layer.build(x.shape)
      if kind == "moved":
        for parameter in (layer.beta_parameter, layer.gamma_parameter):
          parameter.variable.assign(moved_raw(rng, parameter.variable.numpy()))
      with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        beta_value, gamma_value = layer.beta, layer.gamma  # the layer's own reparameterisation
        y = layer(xt)
        loss = tf.reduce_sum(y * g)
      variables = [layer.beta_parameter.variable, layer.gamma_parameter.variable]
      dx, draw_beta, draw_gamma = tape.gradient(loss, [xt, *variables])
      arrays.update(
        raw_beta=variables[0].numpy(),
        raw_gamma=variables[1].numpy(),
        draw_beta=draw_beta.numpy(),
        draw_gamma=draw_gamma.numpy(),
        beta=beta_value.numpy(),
        gamma=gamma_value.numpy(),
      )
    arrays.update(y=y.numpy(), dx=dx.numpy())
    write_npz(OUT / f"{name}.npz", arrays)
    entries.append(
      dict(
        file=f"{name}.npz",
        framework="tfc",
        version=versions,
        function="tensorflow_compression.GDN",
        params=kwargs,
        parameters=kind,
        mode=mode,
        shape=list(shape),
        seed=seed_for(name),
        arrays=sorted(arrays),
      )
    )
  return entries


# ---------------------------------------------------------------------------------------------
# CompressAI
# ---------------------------------------------------------------------------------------------


def load_compressai_gdn():
  """``compressai.layers.gdn`` loaded from the installed files, without running the package's
  ``__init__`` (which imports optional dependencies): empty package modules stand in for
  ``compressai``, ``compressai.ops`` and ``compressai.layers``, and the three files the layer
  needs (``ops/bound_ops.py``, ``ops/parametrizers.py``, ``layers/gdn.py``) are executed."""
  spec = importlib.util.find_spec("compressai")
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("compressai is not installed (pip install --no-deps compressai==1.2.8)")
  root = pathlib.Path(list(spec.submodule_search_locations)[0])
  for package in ("compressai", "compressai.ops", "compressai.layers"):
    module = types.ModuleType(package)
    module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
    sys.modules[package] = module
  for name in ("compressai.ops.bound_ops", "compressai.ops.parametrizers", "compressai.layers.gdn"):
    path = root.joinpath(*name.split(".")[1:]).with_suffix(".py")
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
  return sys.modules["compressai.layers.gdn"], root


# name, shape (NCHW), layer class, constructor arguments, "fresh" or "moved"
COMPRESSAI_CASES = [
  ("compressai_gdn_fresh", (2, 8, 5, 4), "GDN", {}, "fresh"),
  ("compressai_igdn_fresh", (2, 8, 5, 4), "GDN", dict(inverse=True), "fresh"),
  ("compressai_gdn1_fresh", (2, 8, 5, 4), "GDN1", {}, "fresh"),
  ("compressai_igdn1_fresh", (2, 8, 5, 4), "GDN1", dict(inverse=True), "fresh"),
  ("compressai_gdn_moved", (2, 6, 4, 3), "GDN", {}, "moved"),
  ("compressai_igdn_moved", (2, 6, 4, 3), "GDN", dict(inverse=True), "moved"),
  ("compressai_gdn1_moved", (2, 6, 4, 3), "GDN1", {}, "moved"),
  (
    "compressai_gdn_moved_beta_min0.1_gamma_init0.3",
    (1, 5, 3, 3),
    "GDN",
    dict(beta_min=0.1, gamma_init=0.3),
    "moved",
  ),
  ("compressai_gdn_large_c32", (1, 32, 4, 4), "GDN", {}, "moved"),
]


def compressai_fixtures():
  from importlib.metadata import version

  import torch

  torch.set_num_threads(1)
  gdn_module, root = load_compressai_gdn()
  versions = f"compressai {version('compressai')}, torch {torch.__version__}"
  entries = []
  for name, shape, cls, kwargs, kind in COMPRESSAI_CASES:
    x, g, rng = draw(name, shape)
    layer = getattr(gdn_module, cls)(shape[1], **kwargs)
    if kind == "moved":
      with torch.no_grad():
        for param in (layer.beta, layer.gamma):
          param.copy_(torch.from_numpy(moved_raw(rng, param.numpy())))
    effective = {}

    def keep(key, effective=effective):
      def hook(module, inputs, output):
        output.retain_grad()
        effective[key] = output

      return hook

    layer.beta_reparam.register_forward_hook(keep("beta"))
    layer.gamma_reparam.register_forward_hook(keep("gamma"))
    xt = torch.from_numpy(x).requires_grad_(True)
    y = layer(xt)
    (y * torch.from_numpy(g)).sum().backward()
    state = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
    arrays = {
      "x": x,
      "g": g,
      "y": y.detach().numpy(),
      "dx": xt.grad.numpy(),
      "raw_beta": state["beta"],
      "raw_gamma": state["gamma"],
      "draw_beta": layer.beta.grad.numpy(),
      "draw_gamma": layer.gamma.grad.numpy(),
      "beta": effective["beta"].detach().numpy(),
      "gamma": effective["gamma"].detach().numpy(),
      "dbeta": effective["beta"].grad.numpy(),
      "dgamma": effective["gamma"].grad.numpy(),
    }
    for key, value in state.items():
      if key not in ("beta", "gamma"):
        arrays[f"state.{key}"] = value
    write_npz(OUT / f"{name}.npz", arrays)
    entries.append(
      dict(
        file=f"{name}.npz",
        framework="compressai",
        version=versions,
        function=f"compressai.layers.{cls}",
        params=kwargs,
        parameters=kind,
        shape=list(shape),
        seed=seed_for(name),
        arrays=sorted(arrays),
      )
    )
  return entries


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("framework", choices=("tfc", "compressai"))
  args = parser.parse_args()
  OUT.mkdir(parents=True, exist_ok=True)
  manifest_path = OUT / "manifest.json"
  manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"fixtures": []}
  for stale in OUT.glob(f"{args.framework}_*.npz"):
    stale.unlink()
  entries = tfc_fixtures() if args.framework == "tfc" else compressai_fixtures()
  kept = [e for e in manifest["fixtures"] if e["framework"] != args.framework]
  manifest = {
    "generator": "tools/make_gdn_fixtures.py",
    "arrays": (
      "x: input; g: cotangent; y: output; dx = d(sum(y * g))/dx; beta, gamma: effective values "
      "(framework orientation) with dbeta, dgamma; raw_beta, raw_gamma: the layer's stored "
      "variables with draw_beta, draw_gamma; state.*: CompressAI buffers"
    ),
    "fixtures": sorted(kept + entries, key=lambda e: e["file"]),
  }
  manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
  print(f"wrote {len(entries)} {args.framework} fixtures to {OUT}")


if __name__ == "__main__":
  main()
