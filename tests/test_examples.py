"""Every example runs end to end in its smoke mode (in a subprocess, as a user runs it) and
writes or prints what it promises; AlexNet has the published parameter counts."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, env: dict | None = None) -> str:
  result = subprocess.run(
    [sys.executable, str(EXAMPLES / script), *args],
    capture_output=True,
    text=True,
    env={**os.environ, **(env or {})},
    timeout=600,
  )
  assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
  return result.stdout


def _alexnet_parameters(groups: int) -> int:
  """Weights + biases of the 227x227, 1000-class AlexNet, layer by layer."""
  conv1 = 11 * 11 * 3 * 96 + 96
  conv2 = 5 * 5 * (96 // groups) * 256 + 256
  conv3 = 3 * 3 * 256 * 384 + 384
  conv4 = 3 * 3 * (384 // groups) * 384 + 384
  conv5 = 3 * 3 * (384 // groups) * 256 + 256
  fc6 = (6 * 6 * 256) * 4096 + 4096  # conv5 output after the third pooling: 6x6x256
  fc7 = 4096 * 4096 + 4096
  fc8 = 4096 * 1000 + 1000
  return conv1 + conv2 + conv3 + conv4 + conv5 + fc6 + fc7 + fc8


def test_alexnet_parameter_formula_matches_published_counts():
  # Caffe's bvlc_alexnet (two towers as groups) and the ungrouped single tower.
  assert _alexnet_parameters(2) == 60_965_224
  assert _alexnet_parameters(1) == 62_378_344


def test_alexnet_smoke():
  """--smoke with an explicit --steps keeps the steps; NNX and Linen, given the same weights
  and dropout keys, train with the same losses."""
  out = _run("alexnet.py", "--smoke", "--steps", "2")
  n = f"{_alexnet_parameters(2):,}"
  assert f"parameters: NNX {n}, Linen {n}" in out
  diff = float(re.search(r"NNX vs Linen with the same weights: max \|diff\| (\S+)", out)[1])
  assert diff <= 1e-5
  losses = {}
  for api in ("NNX", "Linen"):
    assert re.search(rf"{api} forward: +\(1, 227, 227, 3\) -> \(1, 1000\)", out)
    losses[api] = [float(v) for v in re.findall(rf"{api} step \d/2: loss (\S+)", out)]
    assert len(losses[api]) == 2 and all(0.0 < loss < 100.0 for loss in losses[api])
  np.testing.assert_allclose(losses["NNX"], losses["Linen"], rtol=1e-5)
  assert "NNX vs Linen losses (same weights and dropout masks)" in out


def test_alexnet_ungrouped_parameter_count():
  """The ``--groups 1`` models, counted from abstract shapes in process (nothing allocated)."""
  sys.path.insert(0, str(EXAMPLES))
  try:
    import alexnet
  finally:
    sys.path.remove(str(EXAMPLES))
  from flax import nnx

  nnx_model = nnx.eval_shape(lambda: alexnet.AlexNetNNX(groups=1, rngs=nnx.Rngs(0)))
  x = jax.ShapeDtypeStruct((1, 227, 227, 3), jax.numpy.float32)
  linen_vars = jax.eval_shape(alexnet.AlexNetLinen(groups=1).init, jax.random.key(0), x)
  expected = _alexnet_parameters(1)
  assert alexnet.count(nnx.state(nnx_model, nnx.Param)) == expected
  assert alexnet.count(linen_vars) == expected
  assert alexnet.expected_parameter_count(1) == expected


LRN_EXPERIMENT_VARIANTS = {
  "none": "no normalization",
  "lrn_across": "LRN across channels (size 5)",
  "lrn_within": "LRN within channel (3x3)",
  "lcn": "local contrast norm. (5x5)",
  "gdn": "GDN",
  "batchnorm": "BatchNorm",
  "groupnorm": "GroupNorm (8 groups)",
  "lcn_input": "input: local contrast norm. (5x5)",
  "standardize_input": "input: per-image standardization",
  "lrn_learnable": "LRN across channels, learnable k/alpha/beta",
}


def test_lrn_experiment_smoke(tmp_path):
  """Every variant, trained on the original and on the varied images, tested on both."""
  variants = list(LRN_EXPERIMENT_VARIANTS)
  out = _run("lrn_experiment.py", "--smoke", "--out", str(tmp_path), "--variants", *variants)
  results = json.loads((tmp_path / "results.json").read_text())
  # Settings are stored as JSON numbers, strings, bools and lists, not as strings.
  assert results["config"] == dict(
    epochs=1,
    seeds=1,
    lr=0.02,
    activation="relu",
    batch_size=64,
    image_size=16,
    width=16,
    variants=variants,
    train_on=["original", "varied"],
    out=str(tmp_path),
    smoke=True,
    full=False,
  )
  runs = results["runs"]
  assert [(run["variant"], run["training"]) for run in runs] == [
    (variant, training) for variant in variants for training in ("original", "varied")
  ]
  # The step is compiled before the timed epochs: a smoke epoch (4 steps of 64 images) takes
  # a fraction of the compilation, which it used to include.
  for run in runs:
    assert 0.0 < 4 * run["seconds_per_step"] < run["compile_seconds"]
    assert sorted(run["test_accuracy"]) == ["original", "varied"]
    assert all(len(curve) == 1 for curve in run["test_accuracy"].values())
  table = (tmp_path / "results.md").read_text()
  assert table in out.replace("\r", "")
  # The first table: one row per variant, a mean ± std per training set -> test set.
  header = (
    "| variant | original → original | original → varied | varied → varied | varied → original |"
  )
  first = table.split(header)[1].split("\n\n")[0].strip().splitlines()[1:]
  assert [row.split(" | ")[0] for row in first] == [
    f"| {label}" for label in LRN_EXPERIMENT_VARIANTS.values()
  ]
  for row, variant in zip(first, variants):
    cells = re.findall(r"\| ([\d.]+) ± ([\d.]+)(?= \|)", row)
    assert len(cells) == 4
    expected = [
      100 * run["test_accuracy"][test][-1]
      for training, test in [("original",) * 2, ("original", "varied"), ("varied",) * 2]
      + [("varied", "original")]
      for run in runs
      if (run["variant"], run["training"]) == (variant, training)
    ]
    np.testing.assert_allclose([float(mean) for mean, _ in cells], expected, atol=0.006)
    assert all(float(std) == 0.0 for _, std in cells)  # one seed
  # The second table: one row per variant and training set.
  second = [
    line for line in table.splitlines() if re.match(r"\| .* \| (original|varied) \| ", line)
  ]
  assert len(second) == 2 * len(variants)
  # The input normalizations are invariant to a per-image contrast and brightness: the
  # original and the varied test images give the same accuracy (up to an image or two where
  # rounding moves a logit across another).
  n_test = 128
  for run in runs:
    if run["variant"] in ("lcn_input", "standardize_input"):
      original, varied = (run["test_accuracy"][t][-1] for t in ("original", "varied"))
      assert abs(original - varied) <= 2 / n_test
  png = (tmp_path / "accuracy.png").read_bytes()
  assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
  learned = [run["learned"] for run in runs if run["variant"] == "lrn_learnable"]
  assert len(learned) == 2
  for values in learned:
    assert sorted(values) == ["norm1", "norm2"]
    assert all(v > 0 for layer in values.values() for v in layer.values())
  assert "learned LRN (trained on original, seed 0): norm1 alpha=" in out
  assert "learned LRN (trained on varied, seed 0): norm1 alpha=" in out


def test_lrn_experiment_vary_contrast():
  """The varied images: per image, pixels p -> a * p + b with a in [0.2, 5] and b in [-1, 1],
  standardized like the originals; recovered here from the standardized arrays."""
  sys.path.insert(0, str(EXAMPLES))
  try:
    import lrn_experiment
  finally:
    sys.path.remove(str(EXAMPLES))
  rng = np.random.default_rng(0)
  mean, std = 0.3, 0.4
  pixels = rng.uniform(0.0, 1.0, (500, 6, 6, 1)).astype(np.float32)
  x = (pixels - mean) / std
  varied = lrn_experiment.vary_contrast(x, np.random.default_rng(1), mean, std)
  assert varied.shape == x.shape and varied.dtype == np.float32
  varied_pixels = varied * std + mean
  flat_p, flat_v = pixels.reshape(500, -1), varied_pixels.reshape(500, -1)
  a = (flat_v[:, 1] - flat_v[:, 0]) / (flat_p[:, 1] - flat_p[:, 0])
  b = flat_v[:, 0] - a * flat_p[:, 0]
  np.testing.assert_allclose(flat_v, a[:, None] * flat_p + b[:, None], rtol=1e-4, atol=1e-4)
  assert 0.2 <= a.min() < 0.3 and 4.0 < a.max() <= 5.0 and (a < 1).mean() > 0.4
  assert -1.0 <= b.min() < -0.9 and 0.9 < b.max() <= 1.0


def test_lrn_experiment_smoke_keeps_explicit_epochs_and_seeds(tmp_path):
  _run(
    "lrn_experiment.py",
    "--smoke",
    "--epochs",
    "2",
    "--seeds",
    "2",
    "--variants",
    "none",
    "--out",
    str(tmp_path),
  )
  results = json.loads((tmp_path / "results.json").read_text())
  assert (results["config"]["epochs"], results["config"]["seeds"]) == (2, 2)
  assert [run["training"] for run in results["runs"]] == ["original"] * 2 + ["varied"] * 2
  assert [len(run["test_accuracy"]["varied"]) for run in results["runs"]] == [2] * 4


def _autoencoder_parameters(filters: int, latent: int) -> int:
  """Weights + biases of gdn_autoencoder.py's six 5x5 (transposed) convolutions."""
  n, m = filters, latent
  analysis = (25 * 1 * n + n) + (25 * n * n + n) + 25 * n * m  # the last one has no bias
  synthesis = (25 * m * n + n) + (25 * n * n + n) + (25 * n * 1 + 1)
  return analysis + synthesis


def test_gdn_autoencoder_smoke(tmp_path):
  out = _run("gdn_autoencoder.py", "--smoke", "--out", str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["config"]["filters"] == 16 and results["config"]["latent"] == 8
  runs = results["runs"]
  variants = ["gdn", "gdn_simplified", "relu", "batchnorm", "linear"]
  assert [run["variant"] for run in runs] == variants
  convs = _autoencoder_parameters(16, 8)
  # GDN and IGDN add beta (C) and gamma (C x C) to each of the four hidden layers; BatchNorm
  # its scale and bias; ReLU and the linear network nothing.
  extra = {"gdn": 4 * (16 + 16**2), "gdn_simplified": 4 * (16 + 16**2), "batchnorm": 4 * 32}
  for run in runs:
    assert run["parameters"] == convs + extra.get(run["variant"], 0)
    assert len(run["test_mse"]) == len(run["train_mse"]) == 1
    assert 0.0 < run["test_mse"][0] < 1.0
    assert np.array(run["reconstruction"]).shape == (10, 16, 16)
    assert 0.0 < 4 * run["seconds_per_step"] < run["compile_seconds"]
  table = (tmp_path / "results.md").read_text()
  assert table in out.replace("\r", "")
  rows = [line for line in table.splitlines() if re.match(r"\| [^|]+ \| [\d.]+ ± ", line)]
  assert [row.split(" | ")[0] for row in rows] == [
    "| GDN / IGDN",
    "| simplified GDN / IGDN (alpha 1, epsilon 1)",
    "| ReLU",
    "| BatchNorm + ReLU",
    "| none (linear)",
  ]
  for row, run in zip(rows, runs):
    mse = float(re.search(r"\| ([\d.]+) ± 0\.000 \|", row)[1])
    assert abs(mse - 1e3 * run["test_mse"][-1]) <= 0.0005
    assert f"| {run['parameters']:,} |" in row
  for name in ("mse.png", "reconstructions.png"):
    png = (tmp_path / name).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


@pytest.mark.parametrize(
  "script, argv, message",
  [
    ("lrn_experiment.py", ["--lr", "0"], r"--lr must be > 0, got 0\.0"),
    (
      "lrn_experiment.py",
      ["--activation", "sigmoid"],
      r"argument --activation: invalid choice: .sigmoid.",
    ),
    ("lrn_experiment.py", ["--epochs", "0"], r"--epochs must be >= 1, got 0"),
    (
      "lrn_experiment.py",
      ["--smoke", "--full"],
      r"argument --full: not allowed with argument --smoke",
    ),
    (
      "lrn_experiment.py",
      ["--train-on", "inverted"],
      r"argument --train-on: invalid choice: .inverted.",
    ),
    (
      "lrn_experiment.py",
      ["--width", "4", "--variants", "groupnorm"],
      r"--width must be a multiple of 8 with the groupnorm variant .* got 4",
    ),
    (
      "lrn_experiment.py",
      ["--smoke", "--batch-size", "300"],
      r"--batch-size must be at most the 256 train images, got 300",
    ),
    ("alexnet.py", ["--batch-size", "0"], r"--batch-size must be >= 1, got 0"),
    ("gdn_autoencoder.py", ["--latent", "0"], r"--latent must be >= 1, got 0"),
    ("gdn_autoencoder.py", ["--lr", "0"], r"--lr must be > 0, got 0\.0"),
    (
      "gdn_autoencoder.py",
      ["--smoke", "--show", "200"],
      r"--show must be at most the 128 test images, got 200",
    ),
    (
      "gdn_autoencoder.py",
      ["--variants", "sigmoid"],
      r"argument --variants: invalid choice: .sigmoid.",
    ),
    ("alexnet.py", ["--steps", "-1"], r"--steps must be >= 0, got -1"),
    ("alexnet.py", ["--lr", "-0.1"], r"--lr must be > 0, got -0\.1"),
    ("scaling.py", ["--width", "0"], r"--width must be >= 1, got 0"),
  ],
)
def test_examples_reject_bad_flags_with_a_usage_error(script, argv, message):
  """Bad flags end in argparse's usage error (exit status 2), never in a traceback."""
  result = subprocess.run(
    [sys.executable, str(EXAMPLES / script), *argv], capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 2
  assert re.search(rf"error: {message}", result.stderr), result.stderr
  assert "Traceback" not in result.stderr


def test_scaling_on_8_simulated_devices():
  # The flag only affects the subprocess; this process keeps its own devices.
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  out = _run("scaling.py", "--smoke", env={"XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"})
  assert "8 device(s)" in out
  assert "mesh: {'data': 8}" in out
  assert re.search(
    r"images +\(32, 16, 16, 1\) +P\('data',\) +shard shapes \[\(4, 16, 16, 1\)\]", out
  )
  assert re.search(r"loss +\(\) +P\(\) ", out)
  sharded, single = re.search(r"loss sharded (\S+) vs single device (\S+)", out).groups()
  assert abs(float(sharded) - float(single)) <= 1e-5 * abs(float(single))
  assert re.search(r"[\d,]+ images/s", out)


def test_quickstart():
  assert "d2/dalpha2" in _run("quickstart.py")
