"""What XLA:TPU's compiler estimates jax_lrn's programs move, compiled without a TPU.

The programs of ``benchmarks/tpu_aot.py`` (its helpers, shared) are compiled ahead of time for
one TPU v5e chip (``jax.experimental.topologies``; needs libtpu, the ``tpu`` extra) and their
``bytes accessed`` compared with the elementwise pass ``x * 2`` over the same array compiled the
same way. The bounds are what the TPU lowering reaches (docs/performance.md); before it, across
channels moved 5.5x forward, 12x dx only and 16x y and dx in float32 (18.5x and 24x in
bfloat16), more than plain autodiff, and with the banded matrix product for the backward's
window 1.0x, 2.5x and 5.5x. Every context must also move no more bytes than plain
autodiff (one reduce_window and ``** -beta``).
"""

import functools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tpu_aot  # noqa: E402

LIBTPU_MISSING = "libtpu is not installed (pip install -e '.[tpu]'): no TPU compiler to ask"


@functools.cache
def lrn_rows(generation, shape_name, layout, mode, dtype, impls):
  """``tpu_aot.lrn_rows``, compiled once per argument tuple in this process (the Pallas
  kernels on v5e are compared with the targets and with the XLA path from the same rows)."""
  return tpu_aot.lrn_rows(generation, shape_name, layout, mode, dtype, impls)


@pytest.fixture(scope="module")
def libtpu_checked():
  """Skips without libtpu; fails instead where CI is set (CI installs the tpu extra)."""
  if not tpu_aot.libtpu_available():
    if os.environ.get("CI"):
      pytest.fail(LIBTPU_MISSING)
    pytest.skip(LIBTPU_MISSING)


SHAPE = "AlexNet conv1"  # (64, 55, 55, 96), the benchmark's first shape
# Bytes over the elementwise pass's, at most. Targets: forward 1.5x, dx only 4.5x, y and dx 5x;
# within channel dx only 6.5x and y and dx 7.5x (as much as plain autodiff, whose programs
# XLA:TPU fuses the same way there): open. Across channels the backward is one fusion, which
# with jax.vjp writes y too.
BOUNDS = {
  "across 5": {"forward": 1.0, "dx only": 1.5, "y and dx": 2.0},
  "within 3x3": {"forward": 1.5, "dx only": 6.5, "y and dx": 7.5},
}


# Small constants are read too (across channels: a 96-element vector per shift of the
# cotangent window, 0.00001x each).
SLACK = 0.001


class _Rows:
  """``rows[mode, dtype, impl, context]``: jax_lrn and plain autodiff, NHWC, on v5e, compiled
  for a (mode, dtype) when a test first asks for it. A pytest-xdist worker then compiles only
  the windows and dtypes of the tests it runs, not all four (about 11 s each on two cores)."""

  def __getitem__(self, key):
    mode, dtype, impl, context = key
    got = lrn_rows("v5e", SHAPE, "NHWC", mode, dtype, ("jax_lrn", "plain"))
    return next(r for r in got if (r["impl"], r["context"]) == (impl, context))


@pytest.fixture(scope="module")
def rows(libtpu_checked):
  """jax_lrn and plain autodiff, every context, both windows and dtypes, NHWC, on v5e."""
  return _Rows()


# The contexts vary fastest: consecutive tests read the same rows (pytest-xdist sends a worker
# consecutive tests).
@pytest.mark.parametrize("context", tpu_aot.CONTEXTS)
@pytest.mark.parametrize("dtype", tpu_aot.DTYPES)
@pytest.mark.parametrize("mode", list(BOUNDS))
def test_bytes_within_bounds_and_never_above_plain_autodiff(rows, mode, dtype, context):
  ours = rows[mode, dtype, "jax_lrn", context]
  plain = rows[mode, dtype, "plain", context]
  assert ours["bytes_ratio"] <= BOUNDS[mode][context] + SLACK, ours["fusions"]
  assert ours["bytes"] <= plain["bytes"], (ours["fusions"], plain["fusions"])


def test_forward_across_channels_is_one_loop(rows):
  """The window of squares squares shifted copies of x inside the loop that writes y: one
  fusion, four shifted reads (size 5), no array of squares stored, no reduce_window."""
  for dtype in tpu_aot.DTYPES:
    fusions = rows["across 5", dtype, "jax_lrn", "forward"]["fusions"]
    assert fusions.count("fusion") == 1 and "reduce-window" not in fusions, fusions


def test_backward_across_channels_is_one_loop(rows):
  """The backward recomputes its cotangent terms at every shift: dx only is one loop fusion
  (reads x and the cotangent, writes dx), no matrix product, no reduce_window; the forward's y
  of jax.vjp is computed in that fusion too."""
  for dtype in tpu_aot.DTYPES:
    for context in ("dx only", "y and dx"):
      fusions = rows["across 5", dtype, "jax_lrn", context]["fusions"]
      assert fusions.startswith("loop fusion") and fusions.count("fusion") == 1, fusions
      assert "convolution" not in fusions and "reduce-window" not in fusions, fusions


@pytest.mark.parametrize("generation", ["v4", "v5p", "v6e"])
def test_other_generations_across_channels(libtpu_checked, generation):
  """The same bounds on the other TPU generations, float32 and bfloat16, across channels (plain
  autodiff is compared on v5e above and not compiled again, to keep the test short)."""
  for dtype in tpu_aot.DTYPES:
    for row in tpu_aot.lrn_rows(generation, SHAPE, "NHWC", "across 5", dtype, ("jax_lrn",)):
      assert row["bytes_ratio"] <= BOUNDS["across 5"][row["context"]] + SLACK, (
        generation,
        dtype,
        row["context"],
        row["fusions"],
      )


# The Pallas kernels (implementation="pallas"): their bytes are the DMA bytes by construction
# (CostEstimate) plus XLA's estimate for whatever surrounds them, which must be nothing: the
# views the kernels work on are bitcasts of XLA:TPU's layouts for NHWC and NCHW.
PALLAS_MODES = ("across 5", "within 3x3", "within 5x5")


@pytest.mark.parametrize("generation", list(tpu_aot.GENERATIONS))
def test_pallas_kernels_compile_and_meet_the_targets(libtpu_checked, generation):
  """Mosaic compiles both kernels for every generation, mode and dtype; every context meets
  the targets (forward 1.5x, dx only 4.5x, y and dx 5x) and the program is the kernels alone."""
  layouts = ("NHWC", "NCHW") if generation == "v5e" else ("NHWC",)
  for layout in layouts:
    for mode in PALLAS_MODES:
      for dtype in tpu_aot.DTYPES:
        for row in lrn_rows(generation, SHAPE, layout, mode, dtype, ("pallas",)):
          where = (generation, layout, mode, dtype, row["context"], row["fusions"])
          assert row["bytes_ratio"] <= tpu_aot.TARGETS[row["context"]], where
          assert set(row["fusions"].split(", ")) == {"custom-call"}, where


@pytest.mark.parametrize("mode", list(BOUNDS))
@pytest.mark.parametrize("dtype", tpu_aot.DTYPES)
def test_pallas_kernels_against_the_xla_path(rows, mode, dtype):
  """On v5e, in every context: no more bytes than plain autodiff, nor than jax_lrn's XLA path,
  except across channels with jax.vjp, where the XLA path's one fusion writes y and dx (2.0x)
  and the kernels are two passes (2.5x)."""
  got = lrn_rows("v5e", SHAPE, "NHWC", mode, dtype, ("pallas",))
  for row in got:
    assert row["bytes"] <= rows[mode, dtype, "plain", row["context"]]["bytes"], row
    xla = rows[mode, dtype, "jax_lrn", row["context"]]["bytes"]
    if (mode, row["context"]) == ("across 5", "y and dx"):
      assert xla < row["bytes"], row
    else:
      assert row["bytes"] <= xla, row
