"""Measures lrn()'s error against the float64 loop reference, per dtype, and prints Markdown.

    python tools/accuracy_table.py

For each dtype and mode: the largest relative error of the output (over elements whose true value
is a normal number of that dtype) and of the gradient ``dx`` (its largest error divided by its
largest entry), for ordinary inputs (normal, scale 3) and for extreme ones (magnitudes spread over
six decades up to the dtype's stress point). Parameters: size 5, alpha 1e-4, beta 0.75, k 1
(AlexNet-like) and beta 0.6 (the general exp/log path).
"""

from __future__ import annotations

import pathlib
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from jax_lrn import lrn  # noqa: E402

import reference  # noqa: E402

EXTREME = {
  "float64": 1e150,
  "float32": 1e18,
  "bfloat16": 1e18,  # computed in float32: float32's range
  "float16": 65504.0,
}


def errors(dtype, magnitude, beta, mode, seed=0):
  rng = np.random.default_rng(seed)
  shape = (2, 6, 6, 16)
  if magnitude is None:
    x = rng.normal(0.0, 3.0, size=shape)
  else:
    x = rng.choice([-1.0, 1.0], size=shape) * magnitude * 10.0 ** rng.uniform(-6, 0, size=shape)
  x = jnp.asarray(x, dtype)
  g = jnp.asarray(rng.normal(size=shape), dtype)
  y, vjp = jax.vjp(lambda x: lrn(x, 5, 1e-4, beta, 1.0, mode=mode), x)
  dx = np.asarray(vjp(g)[0], np.float64)
  y = np.asarray(y, np.float64)
  ry, rdx, *_ = reference.lrn_and_grads(
    np.asarray(x, np.float64), np.asarray(g, np.float64), 5, 1e-4, beta, 1.0, mode=mode
  )
  normal = np.abs(ry) >= float(jnp.finfo(dtype).tiny)
  y_err = np.max(np.abs(y[normal] - ry[normal]) / np.abs(ry[normal]))
  dx_err = np.max(np.abs(dx - rdx)) / np.max(np.abs(rdx))
  finite = bool(np.all(np.isfinite(y)) and np.all(np.isfinite(dx)))
  return y_err, dx_err, float(np.max(np.abs(rdx))), finite


def main() -> None:
  rows = [
    "| dtype | inputs | mode | beta | max rel. error of y | max error of dx / max abs dx "
    "| max abs dx | finite |",
    "|---|---|---|---:|---:|---:|---:|---|",
  ]
  for name, extreme in EXTREME.items():
    dtype = jnp.dtype(name)
    for label, magnitude in (("normal, scale 3", None), (f"up to {extreme:.4g}", extreme)):
      for mode in ("across_channels", "within_channel"):
        for beta in (0.75, 0.6):
          y_err, dx_err, dx_max, finite = errors(dtype, magnitude, beta, mode)
          rows.append(
            f"| {name} | {label} | {mode} | {beta} | {y_err:.1e} | {dx_err:.1e} | {dx_max:.1e} "
            f"| {'yes' if finite else 'NO'} |"
          )
  print("\n".join(rows))


if __name__ == "__main__":
  main()
