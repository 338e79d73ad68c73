"""When does a normalization of the LRN family help? The same small AlexNet-style CNN trained with
no normalization, LRN across channels, LRN within channel, local contrast normalization, GDN,
BatchNorm and GroupNorm, over several seeds, on scikit-learn's bundled 8x8 handwritten digits
(upsampled; no download needed), and on the same digits with a contrast and a brightness that
vary from image to image, the setting contrast normalization is meant for.

Writes ``results.md`` (Markdown tables: final test accuracy, mean ± std over seeds, for each
training set and test set; then the spread, an early epoch, the training loss and the wall time
per training step), ``results.json`` (every curve) and ``accuracy.png`` (test accuracy per epoch
per variant, one panel per training set and test set) into ``--out`` (default
``runs/lrn_experiment/``).

Run:  python examples/lrn_experiment.py                      # default: ~2 minutes on 2 CPU cores
      python examples/lrn_experiment.py --full               # + lrn_learnable, 5 seeds, 30 epochs
      python examples/lrn_experiment.py --activation tanh     # bounded activations
      python examples/lrn_experiment.py --epochs 30 --seeds 5 --lr 0.05
      python examples/lrn_experiment.py --variants none lrn_across lrn_learnable --train-on original
      python examples/lrn_experiment.py --smoke                # seconds; checks the pipeline

Data: the 1797 digits, bilinearly upsampled from 8x8 to 16x16 (``--image-size``) and
standardized; a fixed 80/20 split (1438 train, 359 test images).

Varied contrast and brightness: each image's pixel intensities ``p`` (0 to 1) become
``a * p + b``, with a contrast factor ``a`` drawn log-uniformly from [0.2, 5] and a brightness
shift ``b`` uniformly from [-1, 1], per image, and are then standardized with the original
training set's mean and std, as the originals are. The varied test set is drawn once, the same
for every variant and seed; training on varied images (``--train-on varied``) draws new factors
for every image of every batch. Every run is tested on both test sets.

Model (NHWC, ``--width`` w=16): conv 5x5 (w) -> act -> norm -> maxpool 3/2 -> conv 3x3 (2w) ->
act -> norm -> maxpool 3/2 -> dense 128 -> act -> dense 10: the AlexNet pattern of normalizing
after the activation of the first two convolutions. Trained with SGD, momentum 0.9, batch 64.
The variants put in the two norm slots: nothing; LRN across channels or within channel; local
contrast normalization (``jax_lrn.nnx.LocalContrastNorm``, a 5x5 Gaussian window, sigma
``sqrt(5) / 2``, over space and all channels, no parameters); GDN (``jax_lrn.nnx.GDN``, the
classic form, ``alpha=2, epsilon=0.5``, beta and gamma learned); BatchNorm; GroupNorm; or LRN
across channels with trainable ``k``, ``alpha``, ``beta`` (``lrn_learnable``). Two variants
leave the slots empty and normalize the input image instead: local contrast normalization of
the image (``jax_lrn.local_contrast_norm``, the same window; ``lcn_input``) and, as its global
counterpart, standardization of each image by its own mean and std (``standardize_input``).
Both are invariant to a per-image contrast and brightness (up to rounding and their small floors
of the divisor).

LRN uses Caffe's defaults ``alpha=1``, ``beta=0.75``, ``k=1`` (``alpha`` divided by the window's
element count ``n``): across channels ``size=5``, within channel a 3x3 box. The AlexNet paper's
``k=2, alpha=1e-4`` (``5e-4`` in the divided form) was tuned for activations on the scale of raw
0-255 pixels; on these standardized inputs its window term ``alpha/n * sum x^2`` is ~1e-4 and LRN
would just multiply every activation by the constant ``2**-0.75``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jax_lrn import local_contrast_norm
from jax_lrn.nnx import GDN, LocalContrastNorm, LocalResponseNorm

VARIANTS = (
  "none",
  "lrn_across",
  "lrn_within",
  "lcn",
  "gdn",
  "batchnorm",
  "groupnorm",
  "lcn_input",
  "standardize_input",
  "lrn_learnable",
)
DEFAULT_VARIANTS = VARIANTS[:9]
#: The variants that normalize the input image and leave the two norm slots empty.
INPUT_VARIANTS = ("lcn_input", "standardize_input")
#: The window of local contrast normalization (Gaussian, sigma = sqrt(size) / 2).
LCN_SIZE = 5
LABELS = {
  "none": "no normalization",
  "lrn_across": "LRN across channels (size 5)",
  "lrn_within": "LRN within channel (3x3)",
  "lcn": f"local contrast norm. ({LCN_SIZE}x{LCN_SIZE})",
  "gdn": "GDN",
  "batchnorm": "BatchNorm",
  "groupnorm": "GroupNorm (8 groups)",
  "lrn_learnable": "LRN across channels, learnable k/alpha/beta",
  "lcn_input": f"input: local contrast norm. ({LCN_SIZE}x{LCN_SIZE})",
  "standardize_input": "input: per-image standardization",
}
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}
#: GroupNorm's number of groups: it must divide the channel counts (--width and twice that).
GROUPS = 8
#: The training sets: the digits as they are, or with a contrast and brightness varied per image.
TRAININGS = ("original", "varied")
#: The range of the per-image contrast factor (drawn log-uniformly) and brightness shift
#: (uniformly), in units of the pixel intensities 0 to 1.
CONTRAST = (0.2, 5.0)
BRIGHTNESS = (-1.0, 1.0)
#: The defaults of the flags that --smoke and --full change, where they are not given.
PRESETS = {
  "default": dict(epochs=10, seeds=3, variants=list(DEFAULT_VARIANTS)),
  "smoke": dict(epochs=1, seeds=1, variants=list(DEFAULT_VARIANTS)),
  "full": dict(epochs=30, seeds=5, variants=list(VARIANTS)),
}


class Norm(nnx.Module):
  """The normalization of one variant, called as ``norm(x, train)`` (only BatchNorm uses train)."""

  def __init__(self, variant: str, channels: int, rngs: nnx.Rngs):
    self.variant = variant
    if variant == "none" or variant in INPUT_VARIANTS:
      self.layer = None
    elif variant == "lrn_across":
      self.layer = LocalResponseNorm(size=5, alpha=1.0, beta=0.75, k=1.0)
    elif variant == "lrn_within":
      self.layer = LocalResponseNorm(size=3, alpha=1.0, beta=0.75, k=1.0, mode="within_channel")
    elif variant == "lrn_learnable":
      self.layer = LocalResponseNorm(size=5, alpha=1.0, beta=0.75, k=1.0, learnable=True)
    elif variant == "lcn":
      self.layer = LocalContrastNorm(size=LCN_SIZE)
    elif variant == "gdn":
      self.layer = GDN(channels)
    elif variant == "batchnorm":
      self.layer = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
    elif variant == "groupnorm":
      self.layer = nnx.GroupNorm(channels, num_groups=GROUPS, rngs=rngs)
    else:
      raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.layer is None:
      return x
    if self.variant == "batchnorm":
      return self.layer(x, use_running_average=not train)
    return self.layer(x)


def normalize_input(variant: str, x: jax.Array) -> jax.Array:
  """The input stage of a variant: the image as it is, or normalized per image."""
  if variant == "lcn_input":
    return local_contrast_norm(x, LCN_SIZE)
  if variant == "standardize_input":
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / jnp.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + 1e-6)
  return x


class SmallCNN(nnx.Module):
  """A two-conv AlexNet-style classifier with a pluggable normalization after conv1 and conv2
  (or of the input image, for the input variants)."""

  def __init__(
    self,
    variant: str,
    *,
    num_classes: int = 10,
    image_size: int = 24,
    in_channels: int = 1,
    width: int = 16,
    activation: str = "relu",
    rngs: nnx.Rngs,
  ):
    self.variant = variant
    self.act = ACTIVATIONS[activation]
    self.conv1 = nnx.Conv(in_channels, width, (5, 5), rngs=rngs)
    self.conv2 = nnx.Conv(width, 2 * width, (3, 3), rngs=rngs)
    self.norm1 = Norm(variant, width, rngs)
    self.norm2 = Norm(variant, 2 * width, rngs)
    side = -(-image_size // 4)  # two SAME stride-2 poolings
    flat = side * side * 2 * width
    self.fc1 = nnx.Linear(flat, 128, rngs=rngs)
    self.fc2 = nnx.Linear(128, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    pool = lambda v: nnx.max_pool(v, (3, 3), strides=(2, 2), padding="SAME")  # noqa: E731
    x = normalize_input(self.variant, x)
    x = pool(self.norm1(self.act(self.conv1(x)), train))
    x = pool(self.norm2(self.act(self.conv2(x)), train))
    x = self.act(self.fc1(x.reshape(x.shape[0], -1)))
    return self.fc2(x)


class Digits(NamedTuple):
  """The split, standardized images (NHWC float32), their labels, the varied test images, and
  the mean and std of the original training pixels (0 to 1) that standardized them."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  x_test_varied: np.ndarray
  mean: float
  std: float


def vary_contrast(x: np.ndarray, rng: np.random.Generator, mean: float, std: float) -> np.ndarray:
  """Standardized images ``x`` with the contrast and brightness of each changed at random: the
  pixel intensities ``p = x * std + mean`` become ``a * p + b``, with ``a`` log-uniform in
  ``CONTRAST`` and ``b`` uniform in ``BRIGHTNESS`` (one of each per image), standardized again
  with the same ``mean`` and ``std``."""
  shape = (len(x),) + (1,) * (x.ndim - 1)
  a = np.exp(rng.uniform(np.log(CONTRAST[0]), np.log(CONTRAST[1]), shape))
  b = rng.uniform(*BRIGHTNESS, shape)
  return ((a * (x * std + mean) + b - mean) / std).astype(x.dtype)


def load_digits(image_size: int, test_fraction: float = 0.2) -> Digits:
  """scikit-learn's 1797 8x8 digits, bilinearly upsampled to ``image_size``, standardized
  with the training set's mean and std, split by a fixed permutation; the varied test images
  drawn with a fixed seed. NHWC float32."""
  from sklearn.datasets import load_digits as sklearn_digits

  digits = sklearn_digits()
  images = digits.images.astype(np.float32)[..., None] / 16.0
  images = np.asarray(
    jax.image.resize(images, (len(images), image_size, image_size, 1), "bilinear")
  )
  order = np.random.default_rng(0).permutation(len(images))
  n_test = int(round(test_fraction * len(images)))
  test, train = order[:n_test], order[n_test:]
  mean, std = float(images[train].mean()), float(images[train].std())
  images = (images - mean) / std
  labels = digits.target.astype(np.int32)
  varied = vary_contrast(images[test], np.random.default_rng(1), mean, std)
  return Digits(images[train], labels[train], images[test], labels[test], varied, mean, std)


def make_steps(graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
  """Jitted ``train_step(params, rest, opt_state, x, y) -> (params, rest, opt_state, loss)``
  and ``accuracy(params, rest, x, y)`` for models split as ``nnx.split(m, nnx.Param, ...)``.

  Functional NNX: the same compiled step serves every seed (same graph, same shapes).
  """

  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    logits = model(x, train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    _, _, rest = nnx.split(model, nnx.Param, ...)  # BatchNorm's updated running statistics
    return loss, rest

  @jax.jit
  def train_step(params, rest, opt_state, x, y):
    (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), rest, opt_state, loss

  @jax.jit
  def accuracy(params, rest, x, y):
    logits = nnx.merge(graphdef, params, rest)(x, train=False)
    return jnp.mean(jnp.argmax(logits, axis=-1) == y)

  return train_step, accuracy


def train_variant(variant: str, data: Digits, args, bar) -> list[dict]:
  """Trains ``variant`` once per training set (``args.train_on``) and seed; returns one record
  per run, with the test accuracy on the original and on the varied test images per epoch.

  The training step is compiled ahead of time, once per variant (``compile_seconds``), so no
  timed epoch includes compilation; every training set and seed uses the same compiled step.
  """
  tx = optax.sgd(args.lr, momentum=0.9)
  steps = None
  runs = []
  n_batches = len(data.x_train) // args.batch_size
  batch = (data.x_train[: args.batch_size], data.y_train[: args.batch_size])
  tests = {"original": data.x_test, "varied": data.x_test_varied}
  for training in args.train_on:
    for seed in range(args.seeds):
      model = SmallCNN(
        variant,
        image_size=data.x_train.shape[1],
        width=args.width,
        activation=args.activation,
        rngs=nnx.Rngs(seed),
      )
      graphdef, params, rest = nnx.split(model, nnx.Param, ...)
      opt_state = tx.init(params)
      if steps is None:  # compile once per variant, before anything is timed
        train_step, accuracy = make_steps(graphdef, tx)
        start = time.perf_counter()
        train_step = train_step.lower(params, rest, opt_state, *batch).compile()
        compile_seconds = time.perf_counter() - start
        steps = train_step, accuracy
      train_step, accuracy = steps
      rng = np.random.default_rng(1000 + seed)  # the batch order: the same for both trainings
      vary_rng = np.random.default_rng(2000 + seed)
      curves = {name: [] for name in tests}
      losses, epoch_times = [], []
      bar.set_description(f"{variant:<10} {training:<8} seed {seed}")
      for _epoch in range(args.epochs):
        order = rng.permutation(len(data.x_train))
        start = time.perf_counter()
        for b in range(n_batches):
          idx = order[b * args.batch_size : (b + 1) * args.batch_size]
          x = data.x_train[idx]
          if training == "varied":
            x = vary_contrast(x, vary_rng, data.mean, data.std)
          params, rest, opt_state, loss = train_step(params, rest, opt_state, x, data.y_train[idx])
        loss = float(loss)  # waits for the last step
        epoch_times.append(time.perf_counter() - start)
        losses.append(loss)
        for name, x_test in tests.items():
          curves[name].append(float(accuracy(params, rest, x_test, data.y_test)))
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", test_acc=f"{curves[training][-1]:.3f}")
      # Compilation happened above; the first epoch of a run may still include warm-up (memory
      # allocation, caches): time the others when there are others.
      timed = epoch_times[1:] or epoch_times
      runs.append(
        dict(
          variant=variant,
          training=training,
          seed=seed,
          test_accuracy=curves,
          train_loss=losses,
          seconds_per_step=float(np.median(timed)) / n_batches,
          compile_seconds=compile_seconds,
        )
      )
      if variant == "lrn_learnable":  # the trained k, alpha, beta of both LRN layers
        trained = nnx.merge(graphdef, params, rest)
        runs[-1]["learned"] = {
          name: {key: float(v) for key, v in norm.layer.values().items()}
          for name, norm in (("norm1", trained.norm1), ("norm2", trained.norm2))
        }
  return runs


def final_accuracies(records: list[dict], variant: str, training: str, test: str) -> np.ndarray:
  """The final test accuracy (%) of each seed of ``variant`` trained on ``training``."""
  runs = [r for r in records if r["variant"] == variant and r["training"] == training]
  return np.array([r["test_accuracy"][test][-1] for r in runs]) * 100


def summarize(records: list[dict], args) -> str:
  """The Markdown tables: the final test accuracy (mean ± std over seeds) for each training set
  and test set; then per variant and training set the spread of the final accuracies, the
  accuracy after an early epoch (how fast each variant learns), the final training loss and the
  wall time per step."""
  early = max(1, args.epochs // 5)
  pairs = [(training, test) for training in args.train_on for test in (training, *TRAININGS)]
  pairs = list(dict.fromkeys(pairs))  # the matching test set first, each pair once
  lines = [
    f"Digits {args.image_size}x{args.image_size}, activation {args.activation}, "
    f"{args.epochs} epochs, {args.seeds} seeds, SGD momentum 0.9, lr {args.lr}, "
    f"batch {args.batch_size}. Varied: per image, contrast x {CONTRAST[0]:g} to {CONTRAST[1]:g} "
    f"(log-uniform), brightness {BRIGHTNESS[0]:+g} to {BRIGHTNESS[1]:+g} (pixels 0 to 1).",
    "",
    f"Final test accuracy (%), mean ± std over {args.seeds} seeds, trained on → tested on:",
    "",
    "| variant | " + " | ".join(f"{training} → {test}" for training, test in pairs) + " |",
    "|---|" + "---|" * len(pairs),
  ]
  for variant in args.variants:
    cells = []
    for training, test in pairs:
      final = final_accuracies(records, variant, training, test)
      cells.append(f"{final.mean():.2f} ± {final.std():.2f}")
    lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "| variant | trained on | final test accuracy, original: min – max "
    "| final test accuracy, varied: min – max "
    f"| test accuracy after epoch {early} (same kind as training) | final train loss "
    "| ms / step |",
    "|---|---|---|---|---|---|---|",
  ]
  for variant in args.variants:
    for training in args.train_on:
      runs = [r for r in records if r["variant"] == variant and r["training"] == training]
      spreads = []
      for test in TRAININGS:
        final = final_accuracies(records, variant, training, test)
        spreads.append(f"{final.min():.2f} – {final.max():.2f} %")
      first = np.array([r["test_accuracy"][training][early - 1] for r in runs]) * 100
      loss = np.mean([r["train_loss"][-1] for r in runs])
      ms = 1e3 * np.mean([r["seconds_per_step"] for r in runs])
      lines.append(
        f"| {LABELS[variant]} | {training} | {spreads[0]} | {spreads[1]} | "
        f"{first.mean():.2f} ± {first.std():.2f} % | {loss:.4f} | {ms:.2f} |"
      )
  return "\n".join(lines) + "\n"


def json_value(value):
  """A setting as JSON: numbers, strings, bools and lists as themselves, paths as strings."""
  return str(value) if isinstance(value, Path) else value


def plot(records: list[dict], args, path: Path) -> None:
  """Test accuracy per epoch, mean over seeds with a +-1 std band, one line per variant; one
  panel per training set (rows) and test set (columns)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = len(args.train_on)
  fig, axes = plt.subplots(rows, 2, figsize=(12, 4.2 * rows), squeeze=False, sharey=True)
  epochs = np.arange(1, args.epochs + 1)
  for row, training in enumerate(args.train_on):
    for col, test in enumerate(TRAININGS):
      ax = axes[row, col]
      for variant in args.variants:
        runs = [r for r in records if r["variant"] == variant and r["training"] == training]
        curves = np.array([r["test_accuracy"][test] for r in runs]) * 100
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(epochs, mean, marker="o", markersize=3, label=LABELS[variant])
        ax.fill_between(epochs, np.maximum(mean - std, 0), np.minimum(mean + std, 100), alpha=0.2)
      ax.set_title(f"trained on {training}, tested on {test}")
      ax.set_xlabel("epoch")
      ax.grid(alpha=0.3)
    axes[row, 0].set_ylabel("test accuracy (%)")
  axes[0, 0].legend(loc="lower right", fontsize="small")
  fig.suptitle(
    f"Digits {args.image_size}x{args.image_size}, {args.activation}, lr {args.lr}, "
    f"mean ± std over {args.seeds} seed(s)"
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--epochs", type=int, help="epochs per run (default 10; --smoke 1; --full 30)"
  )
  parser.add_argument(
    "--seeds", type=int, help="seeds per variant and training set (default 3; --smoke 1; --full 5)"
  )
  parser.add_argument("--lr", type=float, default=0.02, help="SGD learning rate (default 0.02)")
  parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--image-size", type=int, default=16, help="upsampled side (default 16)")
  parser.add_argument("--width", type=int, default=16, help="conv1 channels; conv2 has twice")
  parser.add_argument(
    "--variants",
    nargs="+",
    choices=VARIANTS,
    help=f"default: {' '.join(DEFAULT_VARIANTS)}; --full: all",
  )
  parser.add_argument(
    "--train-on",
    nargs="+",
    choices=TRAININGS,
    default=list(TRAININGS),
    help="train on the original images, on images of varied contrast and brightness, or both "
    "(default); every run is tested on both",
  )
  parser.add_argument("--out", type=Path, default=Path("runs/lrn_experiment"))
  preset = parser.add_mutually_exclusive_group()
  preset.add_argument(
    "--smoke",
    action="store_true",
    help="256 training images, and 1 epoch and 1 seed unless --epochs/--seeds are given: seconds",
  )
  preset.add_argument(
    "--full",
    action="store_true",
    help="every variant, 30 epochs, 5 seeds, unless --variants/--epochs/--seeds are given",
  )
  return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None):
  """Parsed and checked flags; bad values end in ``parser.error`` (usage, exit status 2)."""
  args = parser.parse_args(argv)
  preset = PRESETS["smoke" if args.smoke else "full" if args.full else "default"]
  for name, value in preset.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  for name in ("epochs", "seeds", "batch_size", "image_size", "width"):
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
  if not args.lr > 0:
    parser.error(f"--lr must be > 0, got {args.lr}")
  if "groupnorm" in args.variants and args.width % GROUPS:
    parser.error(
      f"--width must be a multiple of {GROUPS} with the groupnorm variant (GroupNorm with "
      f"{GROUPS} groups over --width and 2 * --width channels), got {args.width}"
    )
  args.variants = list(dict.fromkeys(args.variants))
  args.train_on = list(dict.fromkeys(args.train_on))
  return args


def main(argv: list[str] | None = None) -> None:
  parser = build_parser()
  args = parse_args(parser, argv)
  data = load_digits(args.image_size)
  if args.smoke:
    data = data._replace(
      x_train=data.x_train[:256],
      y_train=data.y_train[:256],
      x_test=data.x_test[:128],
      y_test=data.y_test[:128],
      x_test_varied=data.x_test_varied[:128],
    )
  if len(data.x_train) < args.batch_size:
    parser.error(
      f"--batch-size must be at most the {len(data.x_train)} train images, got {args.batch_size}"
    )
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s)); "
    f"{len(data.x_train)} train / {len(data.x_test)} test images of {data.x_train.shape[1:]}"
  )
  start = time.perf_counter()
  records = []
  total = len(args.variants) * len(args.train_on) * args.seeds * args.epochs
  with tqdm(total=total, unit="epoch", dynamic_ncols=True) as bar:
    for variant in args.variants:
      records += train_variant(variant, data, args, bar)
  wall = time.perf_counter() - start

  args.out.mkdir(parents=True, exist_ok=True)
  table = summarize(records, args)
  (args.out / "results.md").write_text(table)
  (args.out / "results.json").write_text(
    json.dumps(
      dict(config={k: json_value(v) for k, v in vars(args).items()}, runs=records), indent=1
    )
  )
  plot(records, args, args.out / "accuracy.png")
  print()
  print(table)
  for record in records:
    if "learned" in record:
      values = ", ".join(
        f"{layer} " + " ".join(f"{k}={v:.3g}" for k, v in learned.items())
        for layer, learned in record["learned"].items()
      )
      print(f"learned LRN (trained on {record['training']}, seed {record['seed']}): {values}")
  print(f"total wall time {wall:.1f} s on {os.cpu_count()} CPU core(s)")
  print(
    f"wrote {args.out / 'results.md'}, {args.out / 'results.json'}, {args.out / 'accuracy.png'}"
  )


if __name__ == "__main__":
  main()
