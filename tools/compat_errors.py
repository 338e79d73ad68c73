"""Prints, per framework, how closely ``jax_lrn.compat`` matches the stored fixtures.

Run (in an environment with jax_lrn installed):  python tools/compat_errors.py

For each framework: the number of fixtures, and the largest absolute and relative errors of the
outputs and of the gradients ``d(sum(y * g))/dx`` over all of its fixtures. Relative errors are
per element (``|a - b| / |b|``); for gradients, whose two terms can cancel, the norm-wise error
``max|a - b| / max|b|`` per fixture is printed too.
"""

from __future__ import annotations

import collections
import functools
import json
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jax_lrn import compat

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
COMPAT = {
  "caffe": compat.caffe,
  "tensorflow": compat.tensorflow,
  "torch": compat.torch,
  "onnx": compat.onnx,
}


def errors(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  diff = np.abs(a - b)
  nonzero = b != 0
  rel = float(np.max(diff[nonzero] / np.abs(b[nonzero]))) if nonzero.any() else 0.0
  return float(diff.max()), rel, float(diff.max() / np.abs(b).max())


def main() -> None:
  manifest = json.loads((FIXTURES / "manifest.json").read_text())
  stats = collections.defaultdict(lambda: collections.defaultdict(float))
  for entry in manifest["fixtures"]:
    framework = entry["framework"]
    data = np.load(FIXTURES / entry["file"])
    fn = functools.partial(COMPAT[framework], **entry["params"])
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Caffe WITHIN_CHANNEL with k != 1 warns by design
      y, vjp = jax.vjp(fn, jnp.asarray(data["x"]))
    row = stats[framework]
    row["fixtures"] += 1
    y_abs, y_rel, _ = errors(y, data["y"])
    row["y abs"], row["y rel"] = max(row["y abs"], y_abs), max(row["y rel"], y_rel)
    if entry["gradient"]:
      row["gradients"] += 1
      dx_abs, dx_rel, dx_norm = errors(vjp(jnp.asarray(data["g"]))[0], data["dx"])
      row["dx abs"] = max(row["dx abs"], dx_abs)
      row["dx rel"] = max(row["dx rel"], dx_rel)
      row["dx normwise"] = max(row["dx normwise"], dx_norm)
  cols = ["fixtures", "gradients", "y abs", "y rel", "dx abs", "dx rel", "dx normwise"]
  print("| framework | " + " | ".join(cols) + " |")
  print("|---" * (len(cols) + 1) + "|")
  for framework, row in sorted(stats.items()):
    cells = [f"{int(row[c])}" if c in ("fixtures", "gradients") else f"{row[c]:.2e}" for c in cols]
    if not row["gradients"]:
      cells[-3:] = ["n/a"] * 3
    print(f"| {framework} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
