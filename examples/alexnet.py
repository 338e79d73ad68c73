"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) in Flax, once in NNX and once in Linen,
with the paper's local response normalization after the ReLU of conv1 and conv2.

The paper's LRN is ``b = a / (k + alpha * sum a^2) ** beta`` with ``n=5, k=2, alpha=1e-4,
beta=0.75``, where ``alpha`` is *not* divided by ``n``. ``jax_lrn`` follows Caffe, PyTorch and
ONNX and divides ``alpha`` by the window size, so the paper's layer is
``LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)``. (The BVLC Caffe reference model
used ``alpha=1e-4`` in the divided form and ``k=1``, a 5x weaker normalization than the paper.)

Layout: 227x227x3 inputs (NHWC); conv1 96x11x11/4 -> ReLU -> LRN -> maxpool 3/2; conv2
256x5x5 (2 groups) -> ReLU -> LRN -> maxpool 3/2; conv3 384x3x3; conv4 384x3x3 (2 groups);
conv5 256x3x3 (2 groups) -> maxpool 3/2; fc6 4096, fc7 4096 (dropout 0.5), fc8 1000. The two
groups are the paper's two GPU towers in one model, as in Caffe's ``bvlc_alexnet``: 60,965,224
parameters. ``--groups 1`` gives the ungrouped single-tower variant (62,378,344).

Dropout: both models take the dropout key as an argument (``dropout_key``) and split it into one
key per dropout layer, so that NNX and Linen draw the same masks and, with the same weights,
compute the same training losses (the script checks this, step by step). Left to themselves
they would not: ``nnx.Dropout`` draws its key from an ``nnx.Rngs`` stream (a counter folded
into the key) and ``linen.Dropout`` from ``make_rng('dropout')`` (the module path folded into
the key), so the same seed gives different masks and different losses, though the logits of
both (without dropout) are the same.

Run:  python examples/alexnet.py                 # parameter counts, forward passes, NNX == Linen
      python examples/alexnet.py --steps 5       # plus 5 SGD steps on random data with optax
      python examples/alexnet.py --smoke         # batch 1, one step: what the tests run
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import nnx

from jax_lrn import linen as lrn_linen
from jax_lrn import nnx as lrn_nnx

#: The paper's n=5, k=2, alpha=1e-4 (not divided by n), beta=0.75, in jax_lrn's convention.
PAPER_LRN = dict(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)
#: (kernel, output channels, stride, padding, grouped) per convolution.
CONVS = (
  (11, 96, 4, "VALID", False),
  (5, 256, 1, 2, True),
  (3, 384, 1, 1, False),
  (3, 384, 1, 1, True),
  (3, 256, 1, 1, True),
)
FCS = (4096, 4096)
IMAGE_SIZE = 227
#: Published parameter counts of the 227x227, 1000-class AlexNet: the two-tower (grouped) model
#: of the paper / Caffe bvlc_alexnet, and the ungrouped single tower.
KNOWN_PARAMETER_COUNTS = {2: 60_965_224, 1: 62_378_344}


def _max_pool(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))  # overlapping pooling, VALID


def _dropout_keys(key: jax.Array | None) -> list[jax.Array | None]:
  """One key per dropout layer (after fc6 and fc7); ``None`` when dropout is off."""
  return [None] * len(FCS) if key is None else list(jax.random.split(key, len(FCS)))


class AlexNetNNX(nnx.Module):
  """AlexNet in Flax NNX; ``groups`` splits conv2, conv4 and conv5 into the paper's towers."""

  def __init__(self, num_classes: int = 1000, groups: int = 2, dropout: float = 0.5, *, rngs):
    in_channels = 3
    self.convs = nnx.List()
    for kernel, out, stride, padding, grouped in CONVS:
      conv = nnx.Conv(
        in_channels,
        out,
        (kernel, kernel),
        strides=stride,
        padding=padding,
        feature_group_count=groups if grouped else 1,
        rngs=rngs,
      )
      self.convs.append(conv)
      in_channels = out
    self.lrn1 = lrn_nnx.LocalResponseNorm(**PAPER_LRN)
    self.lrn2 = lrn_nnx.LocalResponseNorm(**PAPER_LRN)
    features = 6 * 6 * in_channels
    self.fcs = nnx.List()
    for width in (*FCS, num_classes):
      self.fcs.append(nnx.Linear(features, width, rngs=rngs))
      features = width
    self.dropout = nnx.Dropout(dropout)

  def __call__(
    self, x: jax.Array, train: bool = False, dropout_key: jax.Array | None = None
  ) -> jax.Array:
    """Logits for NHWC ``x``; ``train=True`` turns dropout on and needs ``dropout_key``."""
    c1, c2, c3, c4, c5 = self.convs
    x = _max_pool(self.lrn1(nnx.relu(c1(x))))
    x = _max_pool(self.lrn2(nnx.relu(c2(x))))
    x = _max_pool(nnx.relu(c5(nnx.relu(c4(nnx.relu(c3(x)))))))
    x = x.reshape(x.shape[0], -1)
    *hidden, last = self.fcs
    for fc, key in zip(hidden, _dropout_keys(dropout_key)):
      x = self.dropout(nnx.relu(fc(x)), deterministic=not train, rngs=key)
    return last(x)


class AlexNetLinen(nn.Module):
  """The same AlexNet in Flax Linen (same parameter layout as :class:`AlexNetNNX`)."""

  num_classes: int = 1000
  groups: int = 2
  dropout: float = 0.5

  @nn.compact
  def __call__(
    self, x: jax.Array, train: bool = False, dropout_key: jax.Array | None = None
  ) -> jax.Array:
    """Logits for NHWC ``x``; ``train=True`` turns dropout on and needs ``dropout_key``."""
    convs = [
      nn.Conv(
        out,
        (kernel, kernel),
        strides=stride,
        padding=padding,
        feature_group_count=self.groups if grouped else 1,
        name=f"convs_{i}",
      )
      for i, (kernel, out, stride, padding, grouped) in enumerate(CONVS)
    ]
    x = _max_pool(lrn_linen.LocalResponseNorm(**PAPER_LRN)(nn.relu(convs[0](x))))
    x = _max_pool(lrn_linen.LocalResponseNorm(**PAPER_LRN)(nn.relu(convs[1](x))))
    x = _max_pool(nn.relu(convs[4](nn.relu(convs[3](nn.relu(convs[2](x)))))))
    x = x.reshape(x.shape[0], -1)
    for i, (width, key) in enumerate(zip(FCS, _dropout_keys(dropout_key))):
      x = nn.relu(nn.Dense(width, name=f"fcs_{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x, rng=key)
    return nn.Dense(self.num_classes, name=f"fcs_{len(FCS)}")(x)


def expected_parameter_count(groups: int, num_classes: int = 1000) -> int:
  """Weights + biases per layer, from the layer shapes: the count the models must have."""
  count, in_channels = 0, 3
  for kernel, out, _, _, grouped in CONVS:
    g = groups if grouped else 1
    count += kernel * kernel * (in_channels // g) * out + out
    in_channels = out
  features = 6 * 6 * in_channels
  for width in (*FCS, num_classes):
    count += features * width + width
    features = width
  return count


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def linen_params_from_nnx(model: AlexNetNNX) -> dict:
  """The NNX model's weights in the Linen model's ``params`` layout (same names and shapes)."""
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  return {f"{group}_{i}": layer for group in ("convs", "fcs") for i, layer in params[group].items()}


def train(forward, params, batch, labels, steps: int, lr: float, name: str) -> list[float]:
  """``steps`` optax SGD steps (momentum 0.9, weight decay 5e-4, as in the paper) on a fixed
  random batch; ``forward(params, x, key)`` returns logits in training mode (dropout on).
  Returns the loss of every step."""
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(lr, momentum=0.9))

  @jax.jit
  def step(params, opt_state, key):
    def loss_fn(p):
      logits = forward(p, batch, key)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for i in range(steps):
    start = time.perf_counter()
    params, opt_state, loss = step(params, opt_state, jax.random.key(i))
    losses.append(float(loss))
    print(
      f"  {name} step {i + 1}/{steps}: loss {losses[-1]:.6f} ({time.perf_counter() - start:.2f} s)"
    )
    if not np.isfinite(losses[-1]):
      raise SystemExit(f"{name}: non-finite loss at step {i + 1}")
  return losses


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description="AlexNet with LRN in Flax NNX and Linen.")
  parser.add_argument("--batch-size", type=int, help="default 2 (1 with --smoke)")
  parser.add_argument(
    "--steps", type=int, help="SGD steps on random data (default 0; 1 with --smoke)"
  )
  parser.add_argument("--lr", type=float, default=0.01, help="the paper's initial rate 0.01")
  parser.add_argument("--groups", type=int, choices=(1, 2), default=2)
  parser.add_argument(
    "--smoke", action="store_true", help="batch 1 and one training step, unless given"
  )
  args = parser.parse_args(argv)
  for name, default, smoke in (("batch_size", 2, 1), ("steps", 0, 1)):
    if getattr(args, name) is None:
      setattr(args, name, smoke if args.smoke else default)
  if args.batch_size < 1:
    parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
  if args.steps < 0:
    parser.error(f"--steps must be >= 0, got {args.steps}")
  if not args.lr > 0:
    parser.error(f"--lr must be > 0, got {args.lr}")

  expected = expected_parameter_count(args.groups)
  known = KNOWN_PARAMETER_COUNTS[args.groups]
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; groups={args.groups}")
  print(f"LRN: {PAPER_LRN} (paper alpha 1e-4 not divided by n=5 -> 5e-4 divided)")

  # Parameter counts from abstract shapes: nothing is allocated.
  abstract_nnx = nnx.eval_shape(lambda: AlexNetNNX(groups=args.groups, rngs=nnx.Rngs(0)))
  n_nnx = count(nnx.state(abstract_nnx, nnx.Param))
  linen_model = AlexNetLinen(groups=args.groups)
  x_spec = jax.ShapeDtypeStruct((1, IMAGE_SIZE, IMAGE_SIZE, 3), jnp.float32)
  n_linen = count(jax.eval_shape(linen_model.init, jax.random.key(0), x_spec))
  print(
    f"parameters: NNX {n_nnx:,}, Linen {n_linen:,}, per-layer formula {expected:,}, "
    f"published {known:,}"
  )
  if not n_nnx == n_linen == expected == known:
    raise SystemExit("parameter count mismatch")

  key_init, key_x, key_y = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(key_x, (args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3), jnp.float32)
  model = AlexNetNNX(groups=args.groups, rngs=nnx.Rngs(key_init))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def forward_nnx(params, x, key=None):
    model = nnx.merge(graphdef, params, rest, copy=True)
    return model(x, train=key is not None, dropout_key=key)

  def forward_linen(params, x, key=None):
    return linen_model.apply({"params": params}, x, train=key is not None, dropout_key=key)

  linen_params = linen_params_from_nnx(model)
  start = time.perf_counter()
  y_nnx = jax.block_until_ready(jax.jit(forward_nnx)(params, x))
  print(f"NNX forward:   {x.shape} -> {y_nnx.shape} ({time.perf_counter() - start:.2f} s)")
  start = time.perf_counter()
  y_linen = jax.block_until_ready(jax.jit(forward_linen)(linen_params, x))
  print(f"Linen forward: {x.shape} -> {y_linen.shape} ({time.perf_counter() - start:.2f} s)")
  diff = float(jnp.max(jnp.abs(y_nnx - y_linen)))
  scale = float(jnp.max(jnp.abs(y_nnx)))
  print(f"NNX vs Linen with the same weights: max |diff| {diff:.2e} (max |logit| {scale:.2e})")
  if not diff <= 1e-5 * max(scale, 1.0):
    raise SystemExit("NNX and Linen AlexNet disagree")

  if args.steps:
    labels = jax.random.randint(key_y, (args.batch_size,), 0, 1000)
    print(f"training {args.steps} step(s) on a fixed random batch of {args.batch_size}:")
    losses_nnx = train(forward_nnx, params, x, labels, args.steps, args.lr, "NNX")
    losses_linen = train(forward_linen, linen_params, x, labels, args.steps, args.lr, "Linen")
    diff = max(abs(a - b) for a, b in zip(losses_nnx, losses_linen))
    print(f"NNX vs Linen losses (same weights and dropout masks): max |diff| {diff:.2e}")
    if not diff <= 1e-5 * max(max(losses_nnx), 1.0):
      raise SystemExit("NNX and Linen AlexNet training losses disagree")


if __name__ == "__main__":
  main()
