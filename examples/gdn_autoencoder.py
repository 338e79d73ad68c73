"""What does GDN buy in a learned image transform? A small convolutional autoencoder built like
the analysis and synthesis transforms of Ballé, Laparra and Simoncelli's "End-to-end optimized
image compression" (ICLR 2017; ``bls2017`` in tensorflow_compression) — GDN after the first two
convolutions of the encoder, IGDN after the first two transposed convolutions of the decoder —
trained to reconstruct scikit-learn's bundled 8x8 handwritten digits (upsampled; no download
needed) with optax's Adam, against the same network with ReLU, with BatchNorm + ReLU and with
no nonlinearity at all, over several seeds.

Writes ``results.md`` (a Markdown table: test reconstruction error, mean ± std over seeds, with
PSNR, parameter count and wall time per training step), ``results.json`` (every curve),
``mse.png`` (test error per epoch) and ``reconstructions.png`` (test digits and their
reconstructions by each variant) into ``--out`` (default ``runs/gdn_autoencoder/``).

Run:  python examples/gdn_autoencoder.py                   # default: ~2 minutes on 2 CPU cores
      python examples/gdn_autoencoder.py --seeds 5 --epochs 100
      python examples/gdn_autoencoder.py --variants gdn relu --latent 4
      python examples/gdn_autoencoder.py --smoke             # seconds; checks the pipeline

Data: the 1797 digits, pixel intensities 0 to 1, bilinearly upsampled from 8x8 to 16x16; the
same fixed 80/20 split as ``lrn_experiment.py`` (1438 train, 359 test images). The loss is the
mean squared error over pixels; PSNR is ``10 log10(1 / MSE)`` (peak 1) of the test set's MSE.

Model (NHWC, ``--filters`` N=16, ``--latent`` M=8), bls2017's layout at the scale of a 16x16
image (bls2017 has 9x9 / stride 4 first and last layers, for photographs):

  analysis:  conv 5x5/2 (N) -> f -> conv 5x5/2 (N) -> f -> conv 5x5/2 (M, no bias)  16x16 -> 2x2xM
  synthesis: convT 5x5/2 (N) -> g -> convT 5x5/2 (N) -> g -> convT 5x5/2 (1)         2x2xM -> 16x16

with ``f``/``g`` the variant's nonlinearity: GDN/IGDN (the classic form, ``alpha=2``,
``epsilon=0.5``, as bls2017), the simplified GDN/IGDN (``alpha=1``, ``epsilon=1``, CompressAI's
``GDN1``), ReLU/ReLU, BatchNorm + ReLU, or nothing (a linear autoencoder: at best the 32
principal components). There is no entropy model and no quantization: the latent's size
(2 x 2 x M = 32 numbers for 256 pixels) is the only bottleneck, so this measures what the
nonlinearity does for reconstruction at a fixed latent size, not rate-distortion performance.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jax_lrn.nnx import GDN

VARIANTS = ("gdn", "gdn_simplified", "relu", "batchnorm", "linear")
LABELS = {
  "gdn": "GDN / IGDN",
  "gdn_simplified": "simplified GDN / IGDN (alpha 1, epsilon 1)",
  "relu": "ReLU",
  "batchnorm": "BatchNorm + ReLU",
  "linear": "none (linear)",
}
#: The defaults of the flags that --smoke changes (to the second value) unless they are given.
SMOKE_DEFAULTS = {"epochs": (30, 1), "seeds": (3, 1)}


class Nonlinearity(nnx.Module):
  """A variant's nonlinearity after a (transposed) convolution of ``channels`` outputs; the
  synthesis transform's (``inverse=True``) is IGDN where the analysis transform's is GDN."""

  def __init__(self, variant: str, channels: int, *, inverse: bool, rngs: nnx.Rngs):
    self.variant = variant
    if variant == "gdn":
      self.layer = GDN(channels, inverse=inverse)
    elif variant == "gdn_simplified":
      self.layer = GDN(channels, inverse=inverse, alpha=1.0, epsilon=1.0)
    elif variant == "batchnorm":
      self.layer = nnx.BatchNorm(channels, momentum=0.9, rngs=rngs)
    elif variant in ("relu", "linear"):
      self.layer = None
    else:
      raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.variant == "batchnorm":
      return jax.nn.relu(self.layer(x, use_running_average=not train))
    if self.variant == "relu":
      return jax.nn.relu(x)
    if self.layer is None:
      return x
    return self.layer(x)


class Autoencoder(nnx.Module):
  """bls2017's analysis and synthesis transforms (three stride-2 layers each), without the
  entropy model, with a pluggable nonlinearity."""

  def __init__(self, variant: str, *, filters: int = 16, latent: int = 8, rngs: nnx.Rngs):
    conv = partial(nnx.Conv, kernel_size=(5, 5), strides=2, padding="SAME", rngs=rngs)
    convt = partial(nnx.ConvTranspose, kernel_size=(5, 5), strides=2, padding="SAME", rngs=rngs)
    self.analysis0 = conv(1, filters)
    self.analysis_act0 = Nonlinearity(variant, filters, inverse=False, rngs=rngs)
    self.analysis1 = conv(filters, filters)
    self.analysis_act1 = Nonlinearity(variant, filters, inverse=False, rngs=rngs)
    self.analysis2 = conv(filters, latent, use_bias=False)
    self.synthesis0 = convt(latent, filters)
    self.synthesis_act0 = Nonlinearity(variant, filters, inverse=True, rngs=rngs)
    self.synthesis1 = convt(filters, filters)
    self.synthesis_act1 = Nonlinearity(variant, filters, inverse=True, rngs=rngs)
    self.synthesis2 = convt(filters, 1)

  def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = self.analysis_act0(self.analysis0(x), train)
    x = self.analysis_act1(self.analysis1(x), train)
    return self.analysis2(x)

  def decode(self, y: jax.Array, train: bool = False) -> jax.Array:
    y = self.synthesis_act0(self.synthesis0(y), train)
    y = self.synthesis_act1(self.synthesis1(y), train)
    return self.synthesis2(y)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.decode(self.encode(x, train), train)


def load_digits(image_size: int = 16, test_fraction: float = 0.2) -> tuple[np.ndarray, ...]:
  """scikit-learn's 1797 8x8 digits as pixel intensities 0 to 1, bilinearly upsampled to
  ``image_size``, split by the fixed permutation of ``lrn_experiment.py``. NHWC float32."""
  from sklearn.datasets import load_digits as sklearn_digits

  images = sklearn_digits().images.astype(np.float32)[..., None] / 16.0
  images = np.asarray(
    jax.image.resize(images, (len(images), image_size, image_size, 1), "bilinear")
  )
  order = np.random.default_rng(0).permutation(len(images))
  n_test = int(round(test_fraction * len(images)))
  return images[order[n_test:]], images[order[:n_test]]


def make_steps(graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
  """Jitted ``train_step(params, rest, opt_state, x) -> (params, rest, opt_state, loss)`` and
  ``evaluate(params, rest, x) -> (mse, reconstruction)`` for models split as
  ``nnx.split(m, nnx.Param, ...)``; one compiled step serves every seed."""

  def loss_fn(params, rest, x):
    model = nnx.merge(graphdef, params, rest, copy=True)
    loss = jnp.mean((model(x, train=True) - x) ** 2)
    _, _, rest = nnx.split(model, nnx.Param, ...)  # BatchNorm's updated running statistics
    return loss, rest

  @jax.jit
  def train_step(params, rest, opt_state, x):
    (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), rest, opt_state, loss

  @jax.jit
  def evaluate(params, rest, x):
    reconstruction = nnx.merge(graphdef, params, rest)(x, train=False)
    return jnp.mean((reconstruction - x) ** 2), reconstruction

  return train_step, evaluate


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def train_variant(variant: str, data, args, bar) -> list[dict]:
  """Trains ``variant`` once per seed; returns one record per seed (test and train MSE per
  epoch, the final test reconstructions of the first images, time per step)."""
  x_train, x_test = data
  tx = optax.adam(args.lr)
  steps = None
  runs = []
  n_batches = len(x_train) // args.batch_size
  for seed in range(args.seeds):
    model = Autoencoder(variant, filters=args.filters, latent=args.latent, rngs=nnx.Rngs(seed))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)
    if steps is None:  # compile once per variant, before anything is timed
      train_step, evaluate = make_steps(graphdef, tx)
      start = time.perf_counter()
      train_step = train_step.lower(params, rest, opt_state, x_train[: args.batch_size]).compile()
      compile_seconds = time.perf_counter() - start
      steps = train_step, evaluate
    train_step, evaluate = steps
    rng = np.random.default_rng(1000 + seed)
    test_mse, train_mse, epoch_times = [], [], []
    bar.set_description(f"{variant:<14} seed {seed}")
    for _epoch in range(args.epochs):
      order = rng.permutation(len(x_train))
      start = time.perf_counter()
      losses = []
      for b in range(n_batches):
        idx = order[b * args.batch_size : (b + 1) * args.batch_size]
        params, rest, opt_state, loss = train_step(params, rest, opt_state, x_train[idx])
        losses.append(loss)
      train_mse.append(float(np.mean(jax.device_get(losses))))  # waits for the last step
      epoch_times.append(time.perf_counter() - start)
      test_mse.append(float(evaluate(params, rest, x_test)[0]))
      bar.update(1)
      bar.set_postfix(train_mse=f"{train_mse[-1]:.4f}", test_mse=f"{test_mse[-1]:.4f}")
    timed = epoch_times[1:] or epoch_times  # the first epoch may include warm-up
    reconstruction = np.asarray(evaluate(params, rest, x_test)[1][: args.show])
    runs.append(
      dict(
        variant=variant,
        seed=seed,
        parameters=count(params),
        test_mse=test_mse,
        train_mse=train_mse,
        seconds_per_step=float(np.median(timed)) / n_batches,
        compile_seconds=compile_seconds,
        reconstruction=reconstruction[..., 0].round(4).tolist(),
      )
    )
  return runs


def summarize(records: list[dict], args) -> str:
  """The Markdown table: final test MSE (mean ± std and min – max over seeds), PSNR, final
  training MSE (the mean over the last epoch's batches), parameters and time per step."""
  lines = [
    f"Digits 16x16 (pixels 0 to 1), {args.filters} filters, latent 2x2x{args.latent}, "
    f"{args.epochs} epochs, {args.seeds} seeds, Adam lr {args.lr}, batch {args.batch_size}.",
    "",
    "| nonlinearity | test MSE × 1000 (mean ± std) | min – max | test PSNR (dB) "
    "| train MSE × 1000 | parameters | ms / step |",
    "|---|---|---|---|---|---|---|",
  ]
  for variant in args.variants:
    runs = [r for r in records if r["variant"] == variant]
    final = np.array([r["test_mse"][-1] for r in runs]) * 1e3
    psnr = 10 * np.log10(1e3 / final)
    train = np.mean([r["train_mse"][-1] for r in runs]) * 1e3
    ms = 1e3 * np.mean([r["seconds_per_step"] for r in runs])
    lines.append(
      f"| {LABELS[variant]} | {final.mean():.3f} ± {final.std():.3f} | "
      f"{final.min():.3f} – {final.max():.3f} | {psnr.mean():.2f} ± {psnr.std():.2f} | "
      f"{train:.3f} | {runs[0]['parameters']:,} | {ms:.2f} |"
    )
  return "\n".join(lines) + "\n"


def plot(records: list[dict], data, args, out: Path) -> None:
  """``mse.png``: test MSE per epoch (mean over seeds, +-1 std band, log scale);
  ``reconstructions.png``: the first test digits and each variant's reconstructions (seed 0)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  epochs = np.arange(1, args.epochs + 1)
  for variant in args.variants:
    curves = np.array([r["test_mse"] for r in records if r["variant"] == variant])
    mean, std = curves.mean(axis=0), curves.std(axis=0)
    ax.plot(epochs, mean, marker="o", markersize=2, label=LABELS[variant])
    ax.fill_between(epochs, np.maximum(mean - std, 1e-6), mean + std, alpha=0.2)
  ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("test MSE")
  ax.set_title(f"Autoencoder on digits, latent 2x2x{args.latent}, mean ± std over {args.seeds}")
  ax.grid(alpha=0.3, which="both")
  ax.legend(loc="upper right", fontsize="small")
  fig.tight_layout()
  fig.savefig(out / "mse.png", dpi=120)
  plt.close(fig)

  rows = [("original", data[1][: args.show, ..., 0])]
  for variant in args.variants:
    run = next(r for r in records if r["variant"] == variant)
    rows.append((LABELS[variant].split(" (")[0], np.array(run["reconstruction"])))
  fig, axes = plt.subplots(
    len(rows), args.show, figsize=(0.9 * args.show + 1.6, 0.95 * len(rows)), squeeze=False
  )
  for i, (label, images) in enumerate(rows):
    for j in range(args.show):
      axes[i, j].imshow(np.clip(images[j], 0, 1), cmap="gray_r", vmin=0, vmax=1)
      axes[i, j].set_xticks([])
      axes[i, j].set_yticks([])
    axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
  fig.suptitle("test digits and reconstructions (seed 0)", fontsize="medium")
  fig.tight_layout()
  fig.savefig(out / "reconstructions.png", dpi=100)
  plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--epochs", type=int, help="epochs per run (default 30; 1 with --smoke)")
  parser.add_argument("--seeds", type=int, help="seeds per variant (default 3; 1 with --smoke)")
  parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--filters", type=int, default=16, help="channels N of the hidden layers")
  parser.add_argument("--latent", type=int, default=8, help="channels M of the 2x2 latent")
  parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
  parser.add_argument("--show", type=int, default=10, help="test digits in reconstructions.png")
  parser.add_argument("--out", type=Path, default=Path("runs/gdn_autoencoder"))
  parser.add_argument(
    "--smoke",
    action="store_true",
    help="256 training images, and 1 epoch and 1 seed unless --epochs/--seeds are given: seconds",
  )
  return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None):
  """Parsed and checked flags; bad values end in ``parser.error`` (usage, exit status 2)."""
  args = parser.parse_args(argv)
  for name, (default, smoke) in SMOKE_DEFAULTS.items():
    if getattr(args, name) is None:
      setattr(args, name, smoke if args.smoke else default)
  for name in ("epochs", "seeds", "batch_size", "filters", "latent", "show"):
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
  if not args.lr > 0:
    parser.error(f"--lr must be > 0, got {args.lr}")
  args.variants = list(dict.fromkeys(args.variants))
  return args


def main(argv: list[str] | None = None) -> None:
  parser = build_parser()
  args = parse_args(parser, argv)
  data = load_digits()
  if args.smoke:
    data = (data[0][:256], data[1][:128])
  if len(data[0]) < args.batch_size:
    parser.error(
      f"--batch-size must be at most the {len(data[0])} train images, got {args.batch_size}"
    )
  if args.show > len(data[1]):
    parser.error(f"--show must be at most the {len(data[1])} test images, got {args.show}")
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s)); "
    f"{len(data[0])} train / {len(data[1])} test images of {data[0].shape[1:]}"
  )
  start = time.perf_counter()
  records = []
  with tqdm(total=len(args.variants) * args.seeds * args.epochs, unit="epoch") as bar:
    for variant in args.variants:
      records += train_variant(variant, data, args, bar)
  wall = time.perf_counter() - start

  args.out.mkdir(parents=True, exist_ok=True)
  table = summarize(records, args)
  (args.out / "results.md").write_text(table)
  config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
  (args.out / "results.json").write_text(json.dumps(dict(config=config, runs=records)))
  plot(records, data, args, args.out)
  print()
  print(table)
  print(f"total wall time {wall:.1f} s on {os.cpu_count()} CPU core(s)")
  print(f"wrote {', '.join(str(args.out / n) for n in RESULT_FILES)}")


RESULT_FILES = ("results.md", "results.json", "mse.png", "reconstructions.png")

if __name__ == "__main__":
  main()
