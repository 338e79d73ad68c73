"""jax_lrn in one minute: lrn() under jit, vmap and grad, in both modes.

Run:  python examples/quickstart.py
"""

import jax
import jax.numpy as jnp

import jax_lrn


def main() -> None:
  key = jax.random.key(0)
  # AlexNet conv1 activations after ReLU, NHWC.
  x = jax.nn.relu(jax.random.normal(key, (8, 55, 55, 96), jnp.float32) * 10.0)

  # Caffe/PyTorch convention: alpha is divided by size. The AlexNet paper's alpha=1e-4 (not
  # divided) is alpha=5e-4 here; its k is 2.
  alexnet_lrn = jax.jit(lambda x: jax_lrn.lrn(x, size=5, alpha=5e-4, beta=0.75, k=2.0))
  y = alexnet_lrn(x)
  print(
    f"across_channels: {x.shape} -> {y.shape}, mean |x| {jnp.abs(x).mean():.3f}, "
    f"mean |y| {jnp.abs(y).mean():.3f}"
  )

  # Within-channel (Caffe WITHIN_CHANNEL-style) 3x3 spatial window over H and W.
  y_spatial = jax.jit(lambda x: jax_lrn.lrn(x, 3, alpha=1.0, mode="within_channel"))(x)
  print(f"within_channel:  {y_spatial.shape}, mean |y| {jnp.abs(y_spatial).mean():.3f}")

  # vmap over examples: unbatched (H, W, C) inputs need their spatial axes named.
  per_example = jax.vmap(lambda xi: jax_lrn.lrn(xi, 3, mode="within_channel", spatial_axes=(0, 1)))(
    x[:2]
  )
  print(f"vmap:            {per_example.shape}")

  # Gradients through the closed-form custom_vjp, also with respect to the hyperparameters.
  def loss(x, alpha, beta, k):
    return jnp.mean(jax_lrn.lrn(x, 5, alpha, beta, k) ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(x, 5e-4, 0.75, 2.0)
  dx, dalpha, dbeta, dk = grads
  print(
    f"grad:            |dx| max {jnp.abs(dx).max():.2e}, d/dalpha {dalpha:.3e}, "
    f"d/dbeta {dbeta:.3e}, d/dk {dk:.3e}"
  )

  # Second order works too (the backward is itself differentiable).
  hess_diag = jax.grad(lambda a: jax.grad(loss, argnums=1)(x[:1], a, 0.75, 2.0))(5e-4)
  print(f"d2/dalpha2:      {hess_diag:.3e}")


if __name__ == "__main__":
  main()
