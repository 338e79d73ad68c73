"""Records what the real frameworks return for degenerate LRN inputs, for tests/test_robustness.py.

    .venv-ref/bin/python tools/make_degenerate_fixture.py

writes ``tests/fixtures/degenerate/k0_and_zeros.npz``.

Cases (NCHW float32, 7 channels, size 3, alpha 1, beta 0.75; ``g`` all ones):

* ``k0``: ``k = 0`` (TensorFlow ``bias = 0``) on an input whose channels 0-3 are zero and whose
  channel 5 is 2: the windows of channels 0-3 hold only zeros, so ``s = 0`` there.
* ``zeros``: an all-zero input with ``k = 1``.

PyTorch and TensorFlow give outputs and gradients; onnxruntime (inference only) gives outputs,
or, should a version refuse ``bias = 0``, its error is recorded under ``notes``. Same
environment as ``tools/make_fixtures.py`` (it reuses its framework calls); never imports JAX.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import make_fixtures  # noqa: E402

OUT = make_fixtures.ROOT / "tests" / "fixtures" / "degenerate" / "k0_and_zeros.npz"


def inputs():
  k0 = np.zeros((1, 7, 2, 2), np.float32)
  k0[:, 5] = 2.0
  return {"k0": (k0, 0.0), "zeros": (np.zeros((1, 7, 2, 2), np.float32), 1.0)}


def main() -> None:
  arrays, notes = {}, {}
  for case, (x, k) in inputs().items():
    g = np.ones_like(x)
    arrays[f"{case}_x"] = x
    y, dx = make_fixtures.torch_lrn(x, g, dict(size=3, alpha=1.0, beta=0.75, k=k))
    arrays[f"{case}_torch_y"], arrays[f"{case}_torch_dx"] = y, dx
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y, dx = make_fixtures.tensorflow_lrn(
      nhwc, np.ones_like(nhwc), dict(depth_radius=1, bias=k, alpha=1.0 / 3, beta=0.75)
    )
    arrays[f"{case}_tensorflow_y"] = y.transpose(0, 3, 1, 2)
    arrays[f"{case}_tensorflow_dx"] = dx.transpose(0, 3, 1, 2)
    try:
      y, _ = make_fixtures.onnxruntime_lrn(x, None, dict(size=3, alpha=1.0, beta=0.75, bias=k))
      arrays[f"{case}_onnxruntime_y"] = y
      notes[case] = "onnxruntime: computed"
    except Exception as err:  # noqa: BLE001 - record whatever onnxruntime says
      notes[case] = f"onnxruntime refused: {type(err).__name__}: {str(err).splitlines()[0]}"
  arrays["notes"] = np.array(json.dumps(notes, sort_keys=True))
  make_fixtures.write_npz(OUT, arrays)
  print(f"wrote {OUT.name}: {sorted(arrays)}")
  print(json.dumps(notes, indent=1))


if __name__ == "__main__":
  main()
