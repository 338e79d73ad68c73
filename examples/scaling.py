"""Data-parallel training of a CNN with LRN over every device JAX sees, with ``jax.sharding``.

A 1-D mesh over all devices names the batch axis ``"data"``: each device holds a slice of the
batch (``NamedSharding(mesh, P("data"))``) and a full copy of the parameters and optimizer state
(``NamedSharding(mesh, P())``). ``jax.jit`` compiles one SPMD program; XLA inserts the gradient
all-reduce. The script prints the devices, the shardings of inputs and outputs, checks that the
sharded step computes the same loss as a single-device step, and reports images/s.

The same file runs unchanged on CPU, on one or several GPUs, and on a TPU host:

  python examples/scaling.py                                                  # whatever JAX sees
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/scaling.py   # 8 CPU devices
  python examples/scaling.py --smoke                                          # a few seconds

Simulated CPU devices share the machine's cores, so they show the sharding, not a speed-up.
The model is the small AlexNet-style CNN of ``lrn_experiment.py`` with LRN across channels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lrn_experiment import SmallCNN, make_steps  # noqa: E402


def describe(name: str, array: jax.Array) -> None:
  shard_shapes = sorted({tuple(s.data.shape) for s in array.addressable_shards})
  print(
    f"  {name:<14} {str(array.shape):<18} {array.sharding.spec!s:<22} shard shapes {shard_shapes}"
  )


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description="Data-parallel CNN+LRN training step.")
  # flag: (default, --smoke default); --smoke changes only the flags that are not given.
  defaults = {
    "per_device_batch": (32, 4),
    "image_size": (32, 16),
    "width": (32, 8),
    "steps": (20, 2),
  }
  for name, (default, smoke) in defaults.items():
    flag = "--" + name.replace("_", "-")
    parser.add_argument(flag, type=int, help=f"default {default} ({smoke} with --smoke)")
  parser.add_argument("--smoke", action="store_true", help="small batch and 2 timed steps")
  args = parser.parse_args(argv)
  for name, (default, smoke) in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, smoke if args.smoke else default)
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

  devices = jax.devices()
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(devices)} device(s):")
  for d in devices:
    print(f"  {d}")
  mesh = Mesh(np.array(devices), ("data",))
  batch_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  print(f"mesh: {dict(mesh.shape)}")

  global_batch = args.per_device_batch * len(devices)
  model = SmallCNN("lrn_across", image_size=args.image_size, width=args.width, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.sgd(0.01, momentum=0.9)
  train_step, _ = make_steps(graphdef, tx)
  opt_state = tx.init(params)

  key_x, key_y = jax.random.split(jax.random.key(0))
  images = jax.random.normal(key_x, (global_batch, args.image_size, args.image_size, 1))
  labels = jax.random.randint(key_y, (global_batch,), 0, 10)

  # Reference: one step with everything on the first device.
  _, _, _, loss_single = train_step(params, rest, opt_state, images, labels)

  # Place the batch split over the mesh and the state replicated on every device.
  params, rest, opt_state = jax.device_put((params, rest, opt_state), replicated)
  images, labels = jax.device_put((images, labels), batch_sharding)
  step = jax.jit(train_step, out_shardings=replicated, donate_argnums=(0, 1, 2))

  print("inputs:")
  describe("images", images)
  describe("labels", labels)
  describe("conv1 kernel", params["conv1"]["kernel"][...])
  params, rest, opt_state, loss = step(params, rest, opt_state, images, labels)  # compiles
  print("outputs:")
  describe("loss", loss)
  describe("conv1 kernel", params["conv1"]["kernel"][...])
  print(f"loss sharded {float(loss):.6f} vs single device {float(loss_single):.6f}")
  if not np.isclose(float(loss), float(loss_single), rtol=1e-5):
    raise SystemExit("the sharded step disagrees with the single-device step")

  start = time.perf_counter()
  for _ in range(args.steps):
    params, rest, opt_state, loss = step(params, rest, opt_state, images, labels)
  jax.block_until_ready(loss)
  seconds = time.perf_counter() - start
  print(
    f"{args.steps} steps of global batch {global_batch} ({args.per_device_batch} per device, "
    f"{args.image_size}x{args.image_size}): {seconds / args.steps * 1e3:.1f} ms/step, "
    f"{args.steps * global_batch / seconds:,.0f} images/s, final loss {float(loss):.4f}"
  )
  if not jnp.isfinite(loss):
    raise SystemExit("non-finite loss")


if __name__ == "__main__":
  main()
