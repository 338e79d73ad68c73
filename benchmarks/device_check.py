"""One-call check of jax_lrn on an accelerator: correctness on the device, then timings.

Runs from a checkout on a machine where jax is installed but jax_lrn is not (Flax may be
absent; PyTorch is used when it is importable with CUDA):

    PYTHONPATH=. python benchmarks/device_check.py --json device.json          # GPU or TPU
    PYTHONPATH=. python benchmarks/device_check.py --platform cpu --quick --json quick.json

In order, it

1. prints the device, the versions, and the memory floor: the device's copy bandwidth measured
   on one large array (``x * 2`` and a device-to-device copy), and for every timed shape and
   dtype the fewest bytes each pass must move (forward: read x, write y; dx only: read x and g,
   write dx; y and dx: read x and g, write y and dx) and the time that takes at that bandwidth;
2. checks correctness on the device: every fixture in ``tests/fixtures`` through
   ``jax_lrn.compat`` with the tolerances of ``tests/test_compat.py``; ``lrn`` and its VJP
   against a float64 NumPy reference computed on the host (float32, bfloat16, float16; both
   modes; NHWC and NCHW; every implementation); which implementation
   ``implementation=None`` runs on this platform, per window mode; and that no LRN program
   contains a matrix product or a convolution (so XLA's default matmul precision, TF32 or
   bfloat16 passes, cannot change its float32 results) except ``implementation="matmul"``'s
   own (and ``"recompute"``'s within channel, where it is ``"matmul"``), at
   ``Precision.HIGHEST``, with results bitwise equal under every precision setting;
3. times, per (shape, layout, window, dtype), in interleaved rounds after warm-up: ``lrn`` with
   every ``implementation`` (``"shifted"``, ``"reduce_window"``, ``"shifted_squares"``,
   ``"matmul"``, ``"recompute"``) and plain autodiff (one
   ``lax.reduce_window`` and ``** -beta``, in float32 for bfloat16) in three passes (forward;
   dx only, ``jax.grad`` of ``sum(lrn(x) * g)``; y and dx, ``jax.vjp``), PyTorch's
   ``local_response_norm`` (across channels; NCHW or channels_last to match the layout) when
   available, and the elementwise pass ``x * 2`` over the same array in the same rounds. Every
   timed program's output is first compared with the float64 reference on its first batch
   elements (LRN never mixes batch elements); a jax_lrn row that is off is marked FAILED and
   not timed. Then the AlexNet-style training step (conv 11x11/4, ReLU, LRN, max-pool 3/2;
   ``jax.grad`` with respect to the kernel) with and without LRN;
4. prints the training-step table and, last, one table: per (configuration, pass) the median ms
   of each implementation, its ratio to the elementwise pass, the fraction of the bandwidth
   floor it reaches (floor time / measured time) and which implementation was fastest (the
   line above it names the ones ``implementation=None`` runs here, per window mode); and
   writes everything
   (medians, minima, every sample, each check's error) to ``--json``.

``--quick`` numbers are smoke values (tiny shapes, few rounds), labelled so wherever printed.

A time budget (``--budget-s``, counted from the start) skips the timing groups that have not
started when it runs out; they are reported as skipped. The exit status is 1 if any
correctness check of jax_lrn failed (the baselines' errors are reported, not enforced).
Nothing here is CUDA-specific except the PyTorch rows, so it runs unchanged on a TPU VM.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import inspect
import json
import math
import os
import platform as host_platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--json", type=Path, help="write the full results here")
  parser.add_argument("--markdown", type=Path, help="also write the final tables here")
  parser.add_argument(
    "--platform", help="JAX platform (sets JAX_PLATFORMS before jax is imported), e.g. cpu"
  )
  parser.add_argument(
    "--quick", action="store_true", help="small shapes, few rounds, a subset (CPU smoke run)"
  )
  parser.add_argument(
    "--budget-s",
    type=float,
    default=170.0,  # with the in-flight group and the training step: under 5 minutes
    help="seconds from the start after which timing groups not yet started are skipped",
  )
  parser.add_argument("--rounds", type=int, help="timed rounds (default 15, quick 3)")
  parser.add_argument("--warmup", type=int, help="warm-up rounds (default 2, quick 1)")
  parser.add_argument(
    "--torch",
    choices=("auto", "off", "cpu"),
    default="auto",
    help="PyTorch rows: auto = on CUDA when JAX runs on a GPU and torch has CUDA; "
    "cpu = on the CPU (only to exercise that code path)",
  )
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.rounds is not None and args.rounds < 1:
    parser.error(f"--rounds must be >= 1, got {args.rounds}")
  if args.warmup is not None and args.warmup < 0:
    parser.error(f"--warmup must be >= 0, got {args.warmup}")
  return args


# JAX reads JAX_PLATFORMS when it is imported, so --platform is applied before the imports below.
if __name__ == "__main__":
  ARGS = parse_args()
  if ARGS.platform:
    os.environ["JAX_PLATFORMS"] = ARGS.platform

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402  (beside this script)
  interleaved,
  markdown_table,
  reference,
  stats,
  window_extent,
)

try:
  from bench_jax import block_loss, in_context, layout_axes, lrn_function  # noqa: E402

  import jax_lrn  # noqa: E402
  from jax_lrn import compat, lrn  # noqa: E402
  from jax_lrn._window import IMPLEMENTATIONS as _IMPLEMENTATIONS  # noqa: E402
except ImportError as error:  # pragma: no cover - a usage error, reported plainly
  raise SystemExit(
    f"cannot import jax_lrn ({error}); run from the repository root with PYTHONPATH=."
  ) from error

# ---------------------------------------------------------------------------------------------
# What is checked and timed.
# ---------------------------------------------------------------------------------------------


SHAPES = {  # name: NHWC shape at batch 128 (NCHW is the transpose)
  "conv1": (128, 55, 55, 96),  # AlexNet conv1 output
  "conv2": (128, 27, 27, 256),  # AlexNet conv2 output
  "googlenet": (128, 56, 56, 192),  # GoogLeNet conv2 output, before its LRN
}
QUICK_SHAPES = {"conv2": (2, 27, 27, 256)}
WINDOWS = {  # name: (mode, size)
  "across 5": ("across_channels", 5),
  "within 3x3": ("within_channel", 3),
  "within 5x5": ("within_channel", 5),
}
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "bfloat16")
# The --quick subset: (window, dtype, layout) for its one shape.
QUICK_GROUPS = [
  ("across 5", "float32", "NHWC"),
  ("across 5", "float32", "NCHW"),
  ("across 5", "bfloat16", "NHWC"),
  ("within 3x3", "float32", "NHWC"),
]
# Every lowering lrn(implementation=...) offers, so that one run compares them all.
IMPLEMENTATIONS = tuple(_IMPLEMENTATIONS)
PASSES = ("fwd", "dx", "y+dx")
PASS_CONTEXT = {"dx": "dx only", "y+dx": "y and dx"}  # bench_jax.in_context's names
# AlexNet's LRN (alpha divided by the window count, as jax_lrn.lrn and Caffe do).
ALPHA, BETA, K = 5e-4, 0.75, 2.0
INPUT_SCALE = 30.0  # |N(0, 30)|, like post-ReLU activations: alpha/n * sum x^2 is about 0.5
# Printed with every number of a --quick run: tiny shapes and 3 rounds exercise the code paths;
# on them x*2 can beat the "floor" and LRN can time faster than no normalization.
SMOKE_NOTE = (
  "SMOKE VALUES (--quick: tiny shapes, few rounds): they exercise the code, they are not "
  "measurements; do not compare or publish them."
)
CHECK_BATCH = 2  # batch elements of each timed output compared with the float64 reference
TRAIN_BATCH, QUICK_TRAIN_BATCH = 128, 2
TARGET_SAMPLE_S = 2e-3  # calls per timing sample: enough back-to-back calls to fill this
MAX_CALLS_PER_SAMPLE = 32

# Tolerances against the float64 reference (as in tests/cases.py and tests/test_gradients.py):
# outputs per element, relative (16-bit outputs: the float32 result rounded once; float16 also
# one step of its subnormal spacing, 2**-24, where y is that small); dx relative to its largest
# entry (it is a difference of two terms).
RTOL = {"float32": 1e-5, "bfloat16": 2.0**-8, "float16": 2.0**-10}
ATOL = {"float32": 0.0, "bfloat16": 0.0, "float16": 2.0**-24}
FIXTURE_RTOL = 1e-5  # tests/test_compat.py
COMPAT = {
  "caffe": compat.caffe,
  "tensorflow": compat.tensorflow,
  "torch": compat.torch,
  "onnx": compat.onnx,
}
# Correctness cases: (label, mode, size, even_placement, alpha, beta, k, dtypes).
REFERENCE_CASES = [
  ("across 5", "across_channels", 5, "before", 1.3, 0.75, 1.2, ("float32", "bfloat16", "float16")),
  ("within 3x3", "within_channel", 3, "before", 1.3, 0.75, 1.2, ("float32", "bfloat16", "float16")),
  ("across 4 after, beta 0.6", "across_channels", 4, "after", 1.3, 0.6, 1.2, ("float32",)),
  ("within 4x4 before, beta 0.6", "within_channel", 4, "before", 1.3, 0.6, 1.2, ("float32",)),
]
REFERENCE_SHAPE, QUICK_REFERENCE_SHAPE = (8, 27, 27, 96), (2, 7, 9, 24)


def log(message: str = "") -> None:
  print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# The float64 reference (host, vectorised NumPy, from the formula: bench_common.reference).
# ---------------------------------------------------------------------------------------------


def worst_ratio(got, want, rtol: float, atol: float) -> float:
  """Largest ``|got - want| / (atol + rtol |want|)``, elementwise: at most 1 passes (NaN
  equals NaN, as in ``np.testing.assert_allclose``)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  both_nan = np.isnan(got) & np.isnan(want)
  diff = np.where(both_nan, 0.0, np.abs(got - want))
  if np.any(np.isnan(diff)):
    return math.inf
  bound = atol + rtol * np.abs(want)
  with np.errstate(divide="ignore", invalid="ignore"):
    ratio = np.where(diff == 0, 0.0, diff / bound)
  return float(np.max(ratio)) if ratio.size else 0.0


def output_error(got, want, dtype: str) -> float:
  """An output against the reference, per element, at the tolerance of ``dtype``."""
  return worst_ratio(got, want, RTOL[dtype], ATOL[dtype])


def gradient_error(got, want, dtype: str) -> float:
  """``max |got - want| / max |want|`` over the tolerance of ``dtype``: at most 1 passes."""
  got = np.asarray(got, np.float64)
  scale = np.max(np.abs(want))
  err = np.max(np.abs(got - want))
  if not np.isfinite(err):
    return math.inf
  return float(err / scale / RTOL[dtype]) if scale > 0 else (0.0 if err == 0 else math.inf)


# ---------------------------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------------------------


class Budget:
  """Seconds left of ``--budget-s``, counted from when the run started."""

  def __init__(self, seconds: float, start: float | None = None):
    self.seconds = seconds
    self.start = time.monotonic() if start is None else start

  def elapsed(self) -> float:
    return time.monotonic() - self.start

  def spent(self) -> bool:
    return self.elapsed() >= self.seconds


@dataclasses.dataclass
class Timed:
  """One timed function: ``call(i)`` runs it on input set ``i`` without waiting for the device;
  ``sync(outputs)`` waits until the outputs of all calls so far are ready."""

  row: dict
  call: Callable[[int], Any]
  sync: Callable[[list], None]
  samples: list[float] = dataclasses.field(default_factory=list)
  calls_per_sample: int = 1


def jax_sync(outputs: list) -> None:
  jax.block_until_ready(outputs)


def sample_seconds(item: Timed, first_set: int) -> float:
  """Seconds per call of ``calls_per_sample`` back-to-back calls, alternating two input sets
  (so that no call finds its input in a cache the previous one warmed)."""
  start = time.perf_counter()
  outputs = [item.call((first_set + i) % 2) for i in range(item.calls_per_sample)]
  item.sync(outputs)
  return (time.perf_counter() - start) / item.calls_per_sample


def calibrate(item: Timed) -> None:
  """Chooses how many back-to-back calls make one sample: enough to keep the device busy for
  ``TARGET_SAMPLE_S``, so that host dispatch and synchronisation stay out of the numbers."""
  item.calls_per_sample = 1
  single = min(sample_seconds(item, i) for i in range(3))
  item.calls_per_sample = max(1, min(MAX_CALLS_PER_SAMPLE, round(TARGET_SAMPLE_S / single)))


def time_rounds(items: list[Timed], baseline: Timed, rounds: int, warmup: int) -> dict:
  """Interleaved rounds: each round runs the baseline and then each item, in turn, so that all
  of them see the same conditions; the baseline runs before every item (as many samples as all
  the items together). Adds the median, minimum, samples and ratio to the baseline's median to
  each item's row; returns the baseline's summary."""
  everyone = [*items, baseline]  # the baseline is the last
  for item in everyone:
    calibrate(item)
  samples = interleaved(
    range(len(items)),
    lambda i, r: sample_seconds(everyone[i], r),
    rounds,
    warmup,
    baseline=len(items),
  )
  for i, item in enumerate(everyone):
    item.samples += samples[i]
  base = {**summarise(baseline.samples), "calls_per_sample": baseline.calls_per_sample}
  for item in items:
    item.row.update(summarise(item.samples))
    item.row["calls_per_sample"] = item.calls_per_sample
    item.row["ratio"] = item.row["ms"] / base["ms"]
  return base


def summarise(samples: list[float]) -> dict:
  """Median, minimum, maximum and every sample, in milliseconds."""
  ms = stats(samples)
  return {
    "ms": ms["median_s"] * 1e3,
    "ms_min": ms["min_s"] * 1e3,
    "ms_max": ms["max_s"] * 1e3,
    "samples_ms": [s * 1e3 for s in samples],
  }


def lower_all(functions: list[tuple[Callable, tuple]]) -> list:
  """``jax.jit(fn).lower(*args)`` for each ``(fn, args)``, or the exception it raised."""
  lowered: list[Any] = []
  for fn, args in functions:
    try:
      lowered.append(jax.jit(fn).lower(*args))
    except Exception as error:  # noqa: BLE001 - reported on the row
      lowered.append(error)
  return lowered


def compile_lowered(lowered: list) -> list:
  """Compiles in parallel threads (XLA releases the GIL while it compiles), each distinct
  program once: lowerings with the same text (a program without matrix products lowered under
  every matmul precision, ``"recompute"`` within channel and ``"matmul"``) share one executable.
  An exception (raised here or passed in) takes the place of its program."""

  def compile_one(low):
    return low if isinstance(low, Exception) else low.compile()

  first: dict[str, int] = {}  # program text: the index of its first lowering
  source = [
    i if isinstance(low, Exception) else first.setdefault(low.as_text(), i)
    for i, low in enumerate(lowered)
  ]
  distinct = sorted(set(source))
  workers = max(1, min(len(distinct), os.cpu_count() or 1, 8))
  compiled: dict[int, Any] = {}
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    futures = {i: pool.submit(compile_one, lowered[i]) for i in distinct}
    for i, future in futures.items():
      try:
        compiled[i] = future.result()
      except Exception as error:  # noqa: BLE001 - reported on the row
        compiled[i] = error
  return [compiled[i] for i in source]


def compile_all(functions: list[tuple[Callable, tuple]]) -> tuple[list, float]:
  """Lowers each ``(fn, args)`` in turn and compiles them in parallel. Returns the compiled
  programs (or exceptions) and the wall seconds that took."""
  start = time.perf_counter()
  compiled = compile_lowered(lower_all(functions))
  return compiled, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# The functions that are timed.
# ---------------------------------------------------------------------------------------------


def lrn_forward(
  impl: str, layout: str, mode: str, size: int, alpha=ALPHA, beta=BETA, k=K, placement="before"
):
  """``x -> y`` for ``impl`` in ``IMPLEMENTATIONS`` (jax_lrn) or ``"plain"`` (autodiff)."""
  return lrn_function(impl, layout, mode, size, alpha, beta, k, placement)


def in_pass(forward: Callable, pass_name: str) -> Callable:
  """The program timed for one pass: ``x -> y``, ``(x, g) -> dx``, ``(x, g) -> (y, dx)``."""
  return forward if pass_name == "fwd" else in_context(forward, PASS_CONTEXT[pass_name])


def floor_bytes(pass_name: str, elements: int, itemsize: int) -> int:
  """The fewest bytes a pass must move: forward reads x and writes y; dx only reads x and g
  and writes dx; y and dx reads x and g and writes y and dx."""
  arrays = {"fwd": 2, "dx": 3, "y+dx": 4}[pass_name]
  return arrays * elements * itemsize


# ---------------------------------------------------------------------------------------------
# Sections.
# ---------------------------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict:
  device = jax.devices()[0]
  import jaxlib

  info = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (3.10 images)
    "platform": device.platform,
    "device_kind": device.device_kind,
    "device_count": jax.device_count(),
    "jax": jax.__version__,
    "jaxlib": getattr(jaxlib, "__version__", "?"),
    "jax_lrn": jax_lrn.__version__,
    "jax_lrn_path": str(Path(jax_lrn.__file__).resolve().parent),
    "numpy": np.__version__,
    "python": host_platform.python_version(),
    "host": f"{host_platform.system()} {host_platform.machine()}, {os.cpu_count()} CPUs",
    "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", ""),
    "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    "quick": args.quick,
    "budget_s": args.budget_s,
    "seed": args.seed,
  }
  log(f"device: {info['device_kind']} (platform {info['platform']}, {info['device_count']} found)")
  log(
    f"jax {info['jax']}, jaxlib {info['jaxlib']}, numpy {info['numpy']}, "
    f"python {info['python']}, host {info['host']}"
  )
  log(f"jax_lrn {info['jax_lrn']} from {info['jax_lrn_path']}")
  if info["XLA_FLAGS"]:
    log(f"XLA_FLAGS={info['XLA_FLAGS']}")
  return info


def measure_bandwidth(quick: bool, platform: str, rounds: int, warmup: int, seed: int) -> dict:
  """Copy bandwidth of the device: one large ``x * 2`` and one device-to-device copy (each
  reads and writes the array once), timed in interleaved rounds; the faster one is used."""
  nbytes = 2**24 if quick else (2**28 if platform == "cpu" else 2**30)
  n = nbytes // 4
  xs = [jax.random.uniform(jax.random.key(seed + i), (n,), jnp.float32) for i in range(2)]
  double, _ = compile_all([(lambda x: x * 2, (xs[0],))])
  copy, _ = compile_all([(lambda x: jnp.copy(x), (xs[0],))])
  double, copy = double[0], copy[0]
  copy_in_program = "copy(" in copy.as_text()
  items = {
    "x*2": Timed({}, lambda i: double(xs[i]), jax_sync),
    "copy": Timed({}, lambda i: copy(xs[i]), jax_sync),
  }
  for item in items.values():
    calibrate(item)
  samples = interleaved(list(items), lambda name, r: sample_seconds(items[name], r), rounds, warmup)
  for name, item in items.items():
    item.samples += samples[name]
  result: dict[str, Any] = {"array_bytes": nbytes, "bytes_moved": 2 * nbytes}
  for name, item in items.items():
    summary = summarise(item.samples)
    result[name] = {**summary, "GBps": 2 * nbytes / (summary["ms"] * 1e-3) / 1e9}
  result["copy_is_a_copy_op"] = copy_in_program
  result["GBps"] = max(result["x*2"]["GBps"], result["copy"]["GBps"])
  # The least time a call takes here, device work or not: x*2 on 1024 elements, back to back.
  # A row within twice this may be timing the host's dispatch rather than the device.
  small = jax.random.uniform(jax.random.key(seed + 2), (1024,), jnp.float32)
  (tiny,), _ = compile_all([(lambda x: x * 2, (small,))])
  trivial = Timed({}, lambda i: tiny(small), jax_sync, calls_per_sample=MAX_CALLS_PER_SAMPLE)
  samples = [sample_seconds(trivial, r) for r in range(warmup + rounds)][warmup:]
  result["call_overhead_ms"] = summarise(samples)["ms"]
  log(
    ("[smoke value] " if quick else "")
    + f"copy bandwidth ({nbytes / 2**20:.0f} MiB array, read + write): x*2 "
    f"{result['x*2']['GBps']:.1f} GB/s ({result['x*2']['ms']:.3g} ms), copy "
    f"{result['copy']['GBps']:.1f} GB/s ({result['copy']['ms']:.3g} ms); floor uses "
    f"{result['GBps']:.1f} GB/s; a trivial call takes {result['call_overhead_ms'] * 1e3:.3g} us"
  )
  return result


def floors(shapes: dict, bandwidth_gbps: float, quick: bool = False) -> list[dict]:
  rows = []
  log("")
  log("floor per pass: bytes moved at least, and the time at the measured bandwidth")
  if quick:
    log(f"  {SMOKE_NOTE}")
  log(f"  {'shape':<22} {'dtype':<9} " + "  ".join(f"{p + ' MB, ms':>18}" for p in PASSES))
  for name, shape in shapes.items():
    for dtype in DTYPES:
      cells = []
      for pass_name in PASSES:
        nbytes = floor_bytes(pass_name, math.prod(shape), np.dtype(jnp.dtype(dtype)).itemsize)
        ms = nbytes / (bandwidth_gbps * 1e9) * 1e3
        rows.append(
          dict(shape=name, dims=list(shape), dtype=dtype, pass_name=pass_name, bytes=nbytes, ms=ms)
        )
        cells.append(f"{nbytes / 1e6:9.1f}, {ms:7.4f}")
      log(
        f"  {name + ' ' + 'x'.join(map(str, shape)):<22} {dtype:<9} "
        + "  ".join(f"{c:>18}" for c in cells)
      )
  return rows


def _gradient_scale(x, y, g, beta: float) -> float:
  """``T = max|g| * max(s**-beta) * (1 + 2|beta|)`` with ``s**-beta = y / x`` (as the test)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  nonzero = x != 0
  p = np.max(np.abs(y[nonzero] / x[nonzero]))
  return float(np.max(np.abs(g)) * p * (1.0 + 2.0 * abs(beta)))


def check_fixtures() -> list[dict]:
  """Every stored framework fixture through jax_lrn.compat (jitted: y, and dx from the VJP),
  with the tolerances of tests/test_compat.py."""
  manifest_path = FIXTURES / "manifest.json"
  if not manifest_path.exists():
    return [dict(name="fixtures", kind="fixture", passed=False, error=f"{manifest_path} missing")]
  entries = json.loads(manifest_path.read_text())["fixtures"]
  data = [np.load(FIXTURES / entry["file"]) for entry in entries]
  programs = []
  for entry, arrays in zip(entries, data):
    fn = functools.partial(COMPAT[entry["framework"]], **entry["params"])
    if entry["gradient"]:
      programs.append((in_pass(fn, "y+dx"), (arrays["x"], arrays["g"])))
    else:
      programs.append((fn, (arrays["x"],)))
  with warnings.catch_warnings():
    # Caffe WITHIN_CHANNEL with k != 1 warns that Caffe ignores k (tested in the suite).
    warnings.simplefilter("ignore", UserWarning)
    compiled, _ = compile_all(programs)
  checks = []
  for entry, arrays, fn, (_, args) in zip(entries, data, compiled, programs):
    name = entry["file"][: -len(".npz")]
    framework, params = entry["framework"], entry["params"]
    try:
      if isinstance(fn, Exception):
        raise fn
      y, dx = fn(*args) if entry["gradient"] else (fn(*args), None)
      worst = {"y": worst_ratio(y, arrays["y"], FIXTURE_RTOL, 0.0)}
      if dx is not None:
        default_beta = inspect.signature(COMPAT[framework]).parameters["beta"].default
        beta = params.get("beta", default_beta)
        atol = FIXTURE_RTOL * _gradient_scale(arrays["x"], arrays["y"], arrays["g"], beta)
        worst["dx"] = worst_ratio(dx, arrays["dx"], FIXTURE_RTOL, atol)
      right_type = y.dtype == jnp.float32 and y.shape == arrays["x"].shape
      passed = right_type and all(w <= 1.0 for w in worst.values())
      checks.append(dict(name=name, kind="fixture", passed=passed, worst=worst))
    except Exception as error:  # noqa: BLE001 - a failed check, reported
      checks.append(dict(name=name, kind="fixture", passed=False, error=repr(error)))
  return checks


def check_reference(quick: bool, seed: int) -> list[dict]:
  """lrn and its VJP (both implementations) against the float64 reference on the host."""
  shape_nhwc = QUICK_REFERENCE_SHAPE if quick else REFERENCE_SHAPE
  rng = np.random.default_rng([seed, 1])
  cases, programs = [], []
  for label, mode, size, placement, alpha, beta, k, dtypes in REFERENCE_CASES:
    for dtype in dtypes:
      for layout in LAYOUTS:
        shape = shape_nhwc if layout == "NHWC" else tuple(shape_nhwc[i] for i in (0, 3, 1, 2))
        _, axes = layout_axes(layout, mode)
        for impl in IMPLEMENTATIONS:
          # Fresh inputs for every check, rounded to dtype: the reference sees what lrn sees.
          x = jnp.asarray(rng.normal(0.0, 2.0, size=shape), dtype)
          g = jnp.asarray(rng.normal(0.0, 1.0, size=shape), dtype)
          forward = lrn_forward(impl, layout, mode, size, alpha, beta, k, placement)
          lo, hi = window_extent(size, placement)
          params = (axes, size, alpha, beta, k, lo, hi)
          cases.append((f"{label} {layout} {dtype} {impl}", dtype, shape, x, g, params))
          programs.append((in_pass(forward, "y+dx"), (x, g)))
  checks = []
  for (name, dtype, shape, x, g, params), fn in zip(cases, compile_all(programs)[0]):
    try:
      if isinstance(fn, Exception):
        raise fn
      y, dx = fn(x, g)
      axes, size, alpha, beta, k, lo, hi = params
      y_ref, dx_ref = reference(
        np.asarray(x, np.float64),
        np.asarray(g, np.float64),
        axes,
        size,
        alpha,
        beta,
        k,
        lo=lo,
        hi=hi,
      )
      worst = {"y": output_error(y, y_ref, dtype), "dx": gradient_error(dx, dx_ref, dtype)}
      right_type = y.dtype == x.dtype == dx.dtype and y.shape == dx.shape == shape
      passed = right_type and all(w <= 1.0 for w in worst.values())
      checks.append(dict(name=name, kind="reference", passed=passed, worst=worst))
    except Exception as error:  # noqa: BLE001 - a failed check, reported
      checks.append(dict(name=name, kind="reference", passed=False, error=repr(error)))
  return checks


# What implementation=None runs (jax_lrn/_window.py), per lowering platform and window mode.
DOCUMENTED_DEFAULT = {
  "cpu": {"across_channels": "shifted", "within_channel": "shifted"},
  "cuda": {"across_channels": "reduce_window", "within_channel": "shifted_squares"},
  "tpu": {"across_channels": "recompute", "within_channel": "shifted_squares"},
}
OTHER_DEFAULT = {"across_channels": "reduce_window", "within_channel": "reduce_window"}
MODES = ("across_channels", "within_channel")


def lowering_platform(device) -> str:
  """The platform name ``lax.platform_dependent`` sees: ``cuda`` or ``rocm`` for a GPU."""
  if device.platform == "gpu":
    return "rocm" if "rocm" in str(device.client.platform_version).lower() else "cuda"
  return device.platform


def detected_defaults(platform: str | None = None) -> tuple[dict[str, str], bool]:
  """Which implementation ``implementation=None`` runs per window mode in the program for y
  and dx lowered for ``platform`` (``None``: this device; ``platform_dependent`` keeps only
  that platform's branch), told by its counts of pads (shifted reads), reduce_windows and
  matrix products; and whether those counts tell every implementation apart."""
  x = jax.ShapeDtypeStruct((2, 5, 5, 16), jnp.float32)
  platforms = None if platform is None else (platform,)

  def signature(mode, impl):
    program = in_pass(lambda x: lrn(x, 5, mode=mode, implementation=impl), "y+dx")
    text = jax.jit(program).trace(x, x).lower(lowering_platforms=platforms).as_text()
    return tuple(text.count(op) for op in ("stablehlo.pad", "reduce_window", "dot_general"))

  defaults, works = {}, True
  for mode in MODES:
    uses = {impl: signature(mode, impl) for impl in (None, *IMPLEMENTATIONS)}
    # Within channel "recompute" is "matmul" (it recomputes across one axis only): not told apart.
    told = [i for i in IMPLEMENTATIONS if mode == "across_channels" or i != "recompute"]
    works &= len({uses[impl] for impl in told}) == len(told)
    defaults[mode] = next((impl for impl in told if uses[impl] == uses[None]), "?")
  return defaults, works


def detect_default(platform: str) -> tuple[dict[str, str], list[dict]]:
  """Which window implementation ``implementation=None`` runs here, per window mode (read
  from the lowered programs), against the documented choice, and bitwise equal to it."""
  lowering = lowering_platform(jax.devices()[0])
  defaults, detector_works = detected_defaults()
  documented = DOCUMENTED_DEFAULT.get(lowering, OTHER_DEFAULT)
  x = jax.random.normal(jax.random.key(3), (2, 5, 5, 16), jnp.float32)
  checks = []
  for mode, default in defaults.items():
    same = default in IMPLEMENTATIONS and bool(
      jnp.array_equal(
        lrn(x, 5, mode=mode, implementation=None), lrn(x, 5, mode=mode, implementation=default)
      )
    )
    checks.append(
      dict(
        name=f"implementation=None is the documented choice, {mode}",
        kind="dispatch",
        passed=detector_works and default == documented[mode] and same,
        detail=f"runs {default} on {platform} ({lowering}; documented: {documented[mode]}); "
        f"bitwise equal to implementation={default!r}: {same}",
      )
    )
  return defaults, checks


def check_precision() -> list[dict]:
  """XLA's default matmul precision (TF32 on recent NVIDIA GPUs, bfloat16 passes on TPU) cannot
  touch LRN: its programs have no matrix product, except ``implementation="matmul"`` (and
  ``"recompute"``, within channel ``"matmul"``), whose banded matrix products ask for
  ``Precision.HIGHEST`` themselves. Checked in the optimized
  programs, and by results that are bitwise equal under every ``jax.default_matmul_precision``."""
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.normal(0.0, 2.0, size=(4, 9, 9, 32)), jnp.float32)
  g = jnp.asarray(rng.normal(0.0, 1.0, size=(4, 9, 9, 32)), jnp.float32)
  markers = ("dot(", "convolution(", "cublas", "cudnn", "triton_gemm")
  precisions = (None, "bfloat16", "tensorfloat32", "highest")
  cases, lowered = [], []
  for window, (mode, size) in WINDOWS.items():
    for impl in IMPLEMENTATIONS:
      program = in_pass(lrn_forward(impl, "NHWC", mode, size), "y+dx")
      cases.append(f"{window} {impl}")
      for precision in precisions:  # the precision is read when the program is lowered
        if precision is None:
          lowered += lower_all([(program, (x, g))])
        else:
          with jax.default_matmul_precision(precision):
            lowered += lower_all([(program, (x, g))])
  compiled = compile_lowered(lowered)
  checks = []
  for i, case in enumerate(cases):
    programs = compiled[i * len(precisions) : (i + 1) * len(precisions)]
    try:
      for fn in programs:
        if isinstance(fn, Exception):
          raise fn
      text = programs[0].as_text().lower()
      found = [m for m in markers if m in text]
      allowed = case.endswith((" matmul", " recompute"))  # own products, Precision.HIGHEST
      results = [fn(x, g) for fn in programs]
      equal = all(
        bool(jnp.array_equal(a, b)) for other in results[1:] for a, b in zip(results[0], other)
      )
      checks.append(
        dict(
          name=f"{case}: {'' if allowed else 'no matmul/conv, '}same bits at every "
          "matmul precision",
          kind="precision",
          passed=(allowed or not found) and equal,
          detail=f"matmul/conv ops found: {found or 'none'}; bitwise equal: {equal}",
        )
      )
    except Exception as error:  # noqa: BLE001 - a failed check, reported
      checks.append(dict(name=case, kind="precision", passed=False, error=repr(error)))
  return checks


# ---------------------------------------------------------------------------------------------
# Timing groups.
# ---------------------------------------------------------------------------------------------


def make_inputs(shape_nhwc, dtype: str, layout: str, key: int):
  """Two input sets ``[(x, g), (x, g)]`` on the device (x ~ |N(0, 30)|, g ~ N(0, 1)); NCHW is
  the transpose of the same NHWC data."""
  sets = []
  for i in range(2):
    kx, kg = jax.random.split(jax.random.key(key * 2 + i))
    x = (INPUT_SCALE * jnp.abs(jax.random.normal(kx, shape_nhwc, jnp.float32))).astype(dtype)
    g = jax.random.normal(kg, shape_nhwc, jnp.float32).astype(dtype)
    if layout == "NCHW":
      x, g = (jnp.transpose(a, (0, 3, 1, 2)) for a in (x, g))
    sets.append((x, g))
  jax.block_until_ready(sets)
  return sets


def host_prefix(a, n: int) -> np.ndarray:
  return np.asarray(a[:n], np.float64)


def check_row(pass_name: str, outputs, ref: tuple, dtype: str) -> dict:
  """Errors of one timed program's first call against the reference (at most 1 passes)."""
  y_ref, dx_ref = ref
  b = y_ref.shape[0]
  worst = {}
  if pass_name == "fwd":
    worst["y"] = output_error(host_prefix(outputs, b), y_ref, dtype)
  elif pass_name == "dx":
    worst["dx"] = gradient_error(host_prefix(outputs, b), dx_ref, dtype)
  else:
    worst["y"] = output_error(host_prefix(outputs[0], b), y_ref, dtype)
    worst["dx"] = gradient_error(host_prefix(outputs[1], b), dx_ref, dtype)
  return worst


def load_torch(choice: str, platform: str):
  """``(torch, device)`` or ``None``, and a line that says why."""
  if choice == "off":
    return None, "PyTorch: off (--torch off)"
  if choice == "auto" and platform != "gpu":
    return None, f"PyTorch: not used on {platform} (its rows are for CUDA)"
  log("importing torch (--torch off skips it)")
  try:
    import torch
  except Exception as error:  # noqa: BLE001 - any import failure means no torch rows
    return None, f"PyTorch: not importable ({error!r})"
  if choice == "cpu":
    return (torch, "cpu"), f"PyTorch {torch.__version__} on the CPU (--torch cpu)"
  if not torch.cuda.is_available():
    return None, f"PyTorch {torch.__version__}: CUDA not available"
  name = torch.cuda.get_device_name(0)
  return (torch, "cuda"), f"PyTorch {torch.__version__} on CUDA ({name})"


def torch_items(torch_and_device, sets, layout: str, dtype: str, size: int, base_row: dict):
  """PyTorch's F.local_response_norm: NCHW contiguous for the NCHW group, channels_last (the
  same memory order as NHWC) for the NHWC group; forward, and forward + backward (y and dx:
  autograd cannot give dx without y)."""
  torch, device = torch_and_device
  functional = torch.nn.functional
  tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]

  def to_torch(a):
    t = torch.from_numpy(np.asarray(a, np.float32)).to(device=device, dtype=tdtype)
    return t.permute(0, 3, 1, 2) if layout == "NHWC" else t  # NHWC memory = channels_last

  xs = [to_torch(x) for x, _ in sets]
  gs = [to_torch(g) for _, g in sets]
  leaves = [x.detach().clone().requires_grad_(True) for x in xs]
  if layout == "NHWC":
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x in xs)

  def forward(i):
    with torch.no_grad():
      return functional.local_response_norm(xs[i], size, alpha=ALPHA, beta=BETA, k=K)

  def y_and_dx(i):
    with torch.enable_grad():
      y = functional.local_response_norm(leaves[i], size, alpha=ALPHA, beta=BETA, k=K)
      (dx,) = torch.autograd.grad(y, leaves[i], gs[i])
    return y, dx

  def sync(_outputs):
    if device == "cuda":
      torch.cuda.synchronize()

  def to_group_layout(t):
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if layout == "NHWC" else t).float().cpu().numpy()

  memory = "channels_last" if layout == "NHWC" else "contiguous"
  return [
    (
      Timed(
        {**base_row, "impl": "torch", "pass_name": "fwd", "torch_memory": memory}, forward, sync
      ),
      lambda out: to_group_layout(out),
    ),
    (
      Timed(
        {**base_row, "impl": "torch", "pass_name": "y+dx", "torch_memory": memory}, y_and_dx, sync
      ),
      lambda out: tuple(to_group_layout(t) for t in out),
    ),
  ]


def groups_to_run(quick: bool) -> list[tuple[str, tuple, str, str, str]]:
  """``(shape name, NHWC shape, window, dtype, layout)`` in priority order (the budget skips
  from the end): across channels first, then the spatial windows."""
  if quick:
    ((name, shape),) = QUICK_SHAPES.items()
    return [(name, shape, window, dtype, layout) for window, dtype, layout in QUICK_GROUPS]
  return [
    (name, shape, window, dtype, layout)
    for window in WINDOWS
    for name, shape in SHAPES.items()
    for dtype in DTYPES
    for layout in LAYOUTS
  ]


def run_group(
  spec,
  seed: int,
  torch_and_device,
  rounds: int,
  warmup: int,
  bandwidth_gbps: float,
  call_overhead_ms: float = 0.0,
) -> dict:
  """Checks and times every implementation and pass of one (shape, window, dtype, layout)."""
  name, shape_nhwc, window, dtype, layout = spec
  mode, size = WINDOWS[window]
  shape = shape_nhwc if layout == "NHWC" else tuple(shape_nhwc[i] for i in (0, 3, 1, 2))
  base_row = dict(shape=name, dims=list(shape), layout=layout, window=window, dtype=dtype)
  # The same data for both layouts (NCHW is its transpose); fresh data for every shape and dtype.
  key = seed * 1000 + 10 * list({**SHAPES, **QUICK_SHAPES}).index(name) + DTYPES.index(dtype)
  sets = make_inputs(shape_nhwc, dtype, layout, key)
  # The float64 reference on the first batch elements of input set 0.
  _, axes = layout_axes(layout, mode)
  lo, hi = window_extent(size, "before")
  b = min(CHECK_BATCH, shape[0])
  ref = reference(
    host_prefix(sets[0][0], b), host_prefix(sets[0][1], b), axes, size, ALPHA, BETA, K, lo=lo, hi=hi
  )

  plan = [(impl, p) for impl in (*IMPLEMENTATIONS, "plain") for p in PASSES]
  functions = []
  for impl, p in plan:
    program = in_pass(lrn_forward(impl, layout, mode, size), p)
    functions.append((program, sets[0][:1] if p == "fwd" else sets[0]))
  functions.append((lambda x: x * 2, sets[0][:1]))
  compiled, compile_s = compile_all(functions)
  baseline_fn = compiled.pop()
  if isinstance(baseline_fn, Exception):
    raise baseline_fn

  rows, items = [], []
  candidates = []
  for (impl, p), fn in zip(plan, compiled):
    row = {**base_row, "impl": impl, "pass_name": p}
    if isinstance(fn, Exception):
      rows.append({**row, "status": "error", "detail": repr(fn)})
      continue

    def call(i, fn=fn, p=p):
      return fn(sets[i][0]) if p == "fwd" else fn(*sets[i])

    candidates.append((Timed(row, call, jax_sync), None))
  if torch_and_device is not None and mode == "across_channels":
    try:
      candidates += torch_items(torch_and_device, sets, layout, dtype, size, base_row)
    except Exception as error:  # noqa: BLE001 - the baseline is missing, reported
      rows.append(
        {**base_row, "impl": "torch", "pass_name": "fwd", "status": "error", "detail": repr(error)}
      )
  for item, convert in candidates:
    row = item.row
    try:
      outputs = item.call(0)
      item.sync([outputs])
      if convert is not None:
        outputs = convert(outputs)
      row["worst"] = check_row(row["pass_name"], outputs, ref, dtype)
      del outputs
    except Exception as error:  # noqa: BLE001 - reported on the row
      rows.append({**row, "status": "error", "detail": repr(error)})
      continue
    accurate = all(w <= 1.0 for w in row["worst"].values())
    if accurate:
      row["status"] = "ok"
    else:  # jax_lrn off: not timed; a baseline off: timed, its error reported
      row["status"] = "FAILED" if row["impl"] in IMPLEMENTATIONS else "inexact"
    if row["status"] != "FAILED":
      items.append(item)
    rows.append(row)

  baseline = Timed({**base_row, "impl": "x*2"}, lambda i: baseline_fn(sets[i][0]), jax_sync)
  base = time_rounds(items, baseline, rounds, warmup)
  itemsize = np.dtype(jnp.dtype(dtype)).itemsize
  for row in rows:
    row["floor_bytes"] = floor_bytes(row["pass_name"], math.prod(shape), itemsize)
    row["floor_ms"] = row["floor_bytes"] / (bandwidth_gbps * 1e9) * 1e3
    if "ms" in row:
      row["floor_fraction"] = row["floor_ms"] / row["ms"]
      row["near_call_overhead"] = row["ms"] < 2 * call_overhead_ms
  base["near_call_overhead"] = base["ms"] < 2 * call_overhead_ms
  return dict(
    **base_row,
    compile_s=compile_s,
    check_batch=b,
    baseline=base,
    rows=rows,
  )


def training_group(dtype: str, quick: bool, seed: int, rounds: int, warmup: int) -> dict:
  """AlexNet's first block, ``jax.grad`` of a loss with respect to the conv kernel: conv 11x11
  stride 4 (96 filters), ReLU, [LRN across 5], max-pool 3 stride 2; with and without LRN."""
  batch = QUICK_TRAIN_BATCH if quick else TRAIN_BATCH
  rng_keys = jax.random.split(jax.random.key(seed + 77), 6)
  images = [
    jax.random.normal(rng_keys[i], (batch, 227, 227, 3), jnp.float32).astype(dtype)
    for i in range(2)
  ]
  kernel = (
    jax.random.normal(rng_keys[2], (11, 11, 3, 96), jnp.float32) * math.sqrt(2.0 / 363)
  ).astype(dtype)
  cotangent = jax.random.normal(rng_keys[3], (batch, 27, 27, 96), jnp.float32).astype(dtype)
  # The baseline's arrays: the conv output's shape and dtype.
  activations = [
    jax.random.normal(rng_keys[4 + i], (batch, 55, 55, 96), jnp.float32).astype(dtype)
    for i in range(2)
  ]

  def step(impl):
    def norm(h):
      return h if impl is None else lrn(h, 5, ALPHA, BETA, K, implementation=impl)

    return jax.grad(lambda kernel, images, cotangent: block_loss(kernel, images, cotangent, norm))

  variants = [None, *IMPLEMENTATIONS]
  rows, items, grads = [], [], {}
  start = time.perf_counter()
  for impl in variants:  # one at a time: convolution autotuning times on the device
    label = "no LRN" if impl is None else f"LRN {impl}"
    row = dict(
      shape="train conv1",
      dims=[batch, 227, 227, 3],
      layout="NHWC",
      window="across 5",
      dtype=dtype,
      impl=label,
      pass_name="step",
    )
    try:
      (fn,), _ = compile_all([(step(impl), (kernel, images[0], cotangent))])
      if isinstance(fn, Exception):
        raise fn
      grad = fn(kernel, images[0], cotangent)
      finite = bool(jnp.all(jnp.isfinite(grad)))
      grads[label] = np.asarray(grad, np.float64)
    except Exception as error:  # noqa: BLE001 - reported on the row
      rows.append({**row, "status": "error" if impl is None else "FAILED", "detail": repr(error)})
      continue
    row["status"] = "ok" if finite else "FAILED"
    row["detail"] = "kernel gradient finite" if finite else "kernel gradient not finite"
    rows.append(row)
    if finite:
      items.append(Timed(row, lambda i, fn=fn: fn(kernel, images[i], cotangent), jax_sync))
  compile_s = time.perf_counter() - start
  (double,), _ = compile_all([(lambda x: x * 2, (activations[0],))])
  baseline = Timed({"impl": "x*2"}, lambda i: double(activations[i]), jax_sync)
  base = time_rounds(items, baseline, rounds, warmup)
  plain = next((r for r in rows if r["impl"] == "no LRN" and "ms" in r), None)
  for row in rows:
    if plain is not None and "ms" in row and row is not plain:
      row["lrn_ms"] = row["ms"] - plain["ms"]
      row["lrn_in_x2_passes"] = row["lrn_ms"] / base["ms"]
  info = {}
  if "LRN shifted" in grads and "LRN reduce_window" in grads:
    a, b = grads["LRN shifted"], grads["LRN reduce_window"]
    info["kernel_grad_relative_difference"] = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
  return dict(
    shape="train conv1",
    dtype=dtype,
    batch=batch,
    compile_s=compile_s,
    baseline={**base, "shape": list(activations[0].shape)},
    rows=rows,
    **info,
  )


# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------


ABBREVIATION = {
  "shifted": "sh",
  "reduce_window": "rw",
  "shifted_squares": "sq",
  "matmul": "mm",
  "recompute": "rc",
  "tie": "tie",
  "—": "—",
}
DTYPE_SHORT = {"float32": "f32", "bfloat16": "bf16"}


def faster(rows_by_impl: dict) -> str:
  """The fastest implementation, or ``"tie"`` when its median is not below the runner-up's
  minimum (the difference is within the run-to-run spread)."""
  timed = [rows_by_impl.get(impl) for impl in IMPLEMENTATIONS]
  timed = sorted((r for r in timed if r and "ms" in r), key=lambda r: r["ms"])
  if len(timed) < 2:
    return "—"
  fast, second = timed[0], timed[1]
  if fast["ms"] >= second["ms_min"]:
    return "tie"
  return fast["impl"]


def cell(row: dict | None, detail: bool = True) -> str:
  """``ms ratio floor-fraction`` (or the ratio alone) of a row, or its status."""
  if row is None:
    return "—"
  if "ms" not in row:
    return row.get("status", "—")
  if not detail:
    text = f"{row['ratio']:.2f}x"
  else:
    text = f"{row['ms']:.3g} {row['ratio']:.2f}x {row['floor_fraction']:.2f}"
  text += "*" if row.get("near_call_overhead") else ""
  return text + (" inexact" if row.get("status") == "inexact" else "")


def main_table(groups: list[dict], default: dict[str, str]) -> tuple[str, list]:
  """One row per (configuration, pass); kept narrow (no spaces around the bars) so that the
  whole table fits in a short tail of the output: ms, ratio and floor fraction for the
  implementation ``implementation=None`` runs here for the row's window mode (``default``),
  ratios for the others."""
  header = ["configuration", "pass", "x*2 ms", "floor ms", *IMPLEMENTATIONS, "plain", "torch"]
  table, strategy = [], []
  for group in groups:
    chosen = default.get(WINDOWS[group["window"]][0], "?")
    by_key = {(r["impl"], r["pass_name"]): r for r in group["rows"]}
    config = f"{group['shape']} {group['layout']} {group['window']} {DTYPE_SHORT[group['dtype']]}"
    for p in PASSES:
      per_impl = {impl: by_key.get((impl, p)) for impl in (*IMPLEMENTATIONS, "plain", "torch")}
      winner = faster(per_impl)
      times = {impl: (per_impl[impl] or {}).get("ms") for impl in IMPLEMENTATIONS}
      strategy.append(
        dict(
          shape=group["shape"],
          layout=group["layout"],
          window=group["window"],
          dtype=group["dtype"],
          pass_name=p,
          faster=winner,
          ms=times,
          default=chosen,
        )
      )
      base = group.get("baseline")
      base_ms = f"{base['ms']:.3g}" if base else "—"
      base_ms += "*" if base and base.get("near_call_overhead") else ""
      floor_row = next((r for r in per_impl.values() if r and "floor_ms" in r), {})
      floor_ms = f"{floor_row['floor_ms']:.3g}" if "floor_ms" in floor_row else "—"
      torch_row = per_impl["torch"] if p != "dx" else None
      cells = [config, p, base_ms, floor_ms]
      cells += [cell(per_impl[impl], detail=impl == chosen) for impl in IMPLEMENTATIONS]
      cells += [cell(per_impl["plain"], detail=False)]
      cells += [cell(torch_row, detail=False), ABBREVIATION[winner]]
      table.append(cells)
  aligns = "ll" + "r" * (len(header) - 2) + "l"
  return "\n".join(markdown_table([*header, "fastest"], table, aligns, narrow=True)), strategy


def training_table(groups: list[dict]) -> str:
  labels = ["no LRN", *(f"LRN {impl}" for impl in IMPLEMENTATIONS)]
  head = ["training step", "dtype", "batch", "x*2 ms (conv1 output)", "no LRN ms"]
  head += [f"{label} ms (+ms, +x*2 passes)" for label in labels[1:]]
  table = []
  for group in groups:
    by_impl = {r["impl"]: r for r in group["rows"]}
    cells = []
    for label in labels:
      row = by_impl.get(label)
      if row is None or "ms" not in row:
        cells.append(row.get("status", "—") if row else "—")
      elif "lrn_ms" in row:
        cells.append(f"{row['ms']:.3g} ({row['lrn_ms']:+.3g}, {row['lrn_in_x2_passes']:+.1f})")
      else:
        cells.append(f"{row['ms']:.3g}")
    base = group.get("baseline")
    base_ms = f"{base['ms']:.3g}" if base and "ms" in base else "skipped"
    step = "conv 11x11/4, ReLU, LRN, max-pool 3/2; grad wrt kernel"
    table.append([step, group["dtype"], str(group.get("batch", "—")), base_ms, *cells])
  return "\n".join(markdown_table(head, table, "ll" + "r" * (len(head) - 2)))


def untimed_group(spec, status: str, detail: str | None = None) -> dict:
  """A group whose rows all have ``status``: ``"skipped"`` (budget) or ``"error"``."""
  name, shape_nhwc, window, dtype, layout = spec
  shape = shape_nhwc if layout == "NHWC" else tuple(shape_nhwc[i] for i in (0, 3, 1, 2))
  base_row = dict(shape=name, dims=list(shape), layout=layout, window=window, dtype=dtype)
  rows = [
    {**base_row, "impl": impl, "pass_name": p, "status": status, "detail": detail}
    for impl in (*IMPLEMENTATIONS, "plain")
    for p in PASSES
  ]
  return dict(**base_row, skipped=status == "skipped", rows=rows)


def json_ready(value):
  """NaN and infinity as null (strict JSON)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(v) for v in value]
  return value


def run_timing(
  specs: list,
  train_dtypes: Sequence[str],
  budget: Budget,
  run_one: Callable,
  train_one: Callable,
  progress: Callable[[list, list], None] = lambda groups, training: None,
) -> tuple[list[dict], list[dict]]:
  """Runs ``run_one(spec)`` for each timing group in order, and ``train_one(dtype)`` for the
  training step after the channel windows (before the spatial ones). Once the budget is spent
  the rest is skipped and reported as skipped; an exception fails its group's rows.
  ``progress(groups, training)`` runs after each (to save what is done so far)."""
  groups: list[dict] = []
  training: list[dict] = []
  n_across = sum(1 for spec in specs if WINDOWS[spec[2]][0] == "across_channels")
  for index in range(len(specs) + 1):
    if index == n_across:
      for dtype in train_dtypes:
        if budget.spent():
          training.append(dict(shape="train conv1", dtype=dtype, skipped=True, rows=[]))
          log(f"  [{budget.elapsed():4.0f} s] training step {dtype}: skipped (budget)")
          continue
        try:
          training.append(train_one(dtype))
        except Exception as error:  # noqa: BLE001 - reported; the LRN rows fail
          rows = [
            dict(impl=f"LRN {i}", status="error", detail=repr(error)) for i in IMPLEMENTATIONS
          ]
          training.append(dict(shape="train conv1", dtype=dtype, rows=rows))
        log(f"  [{budget.elapsed():4.0f} s] training step {dtype}: done")
        progress(groups, training)
    if index == len(specs):
      break
    spec = specs[index]
    label = f"{spec[0]} {spec[4]} {spec[2]} {spec[3]}"
    if budget.spent():
      groups.append(untimed_group(spec, "skipped"))
      log(f"  [{budget.elapsed():4.0f} s] {label}: skipped (budget)")
      continue
    try:
      group = run_one(spec)
    except Exception as error:  # noqa: BLE001 - e.g. out of memory: the group's rows fail
      groups.append(untimed_group(spec, "error", repr(error)))
      log(f"  [{budget.elapsed():4.0f} s] {label}: error {error!r}")
      continue
    groups.append(group)
    log(
      f"  [{budget.elapsed():4.0f} s] {label}: compiled in {group['compile_s']:.1f} s; "
      f"{len(group['rows'])} rows checked and timed"
    )
    progress(groups, training)
  return groups, training


def main(args: argparse.Namespace) -> int:
  budget = Budget(args.budget_s)
  rounds = args.rounds or (3 if args.quick else 15)
  warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
  results: dict[str, Any] = {"environment": environment(args), "summary": {"finished": False}}
  results["environment"].update(rounds=rounds, warmup=warmup)
  platform = results["environment"]["platform"]

  def save():  # after every section, so that a crash leaves what was done
    if args.json:
      args.json.write_text(json.dumps(json_ready(results), indent=1))

  torch_and_device, torch_line = load_torch(args.torch, platform)
  results["environment"]["torch"] = torch_line
  log(torch_line)
  if torch_and_device is not None and torch_and_device[1] == "cuda":
    log("note: JAX preallocates most of the GPU's memory; PyTorch works in the rest")

  bandwidth = measure_bandwidth(args.quick, platform, rounds, warmup, args.seed)
  results["bandwidth"] = bandwidth
  shapes = QUICK_SHAPES if args.quick else SHAPES
  results["floors"] = floors(shapes, bandwidth["GBps"], args.quick)
  save()

  log("")
  log("correctness on the device")
  start = time.perf_counter()
  default, dispatch = detect_default(platform)
  checks = dispatch + check_fixtures() + check_reference(args.quick, args.seed)
  checks += check_precision()
  failed = [c for c in checks if not c["passed"]]
  results["default_implementation"] = default
  results["correctness"] = dict(
    passed=not failed,
    n_checks=len(checks),
    n_failed=len(failed),
    seconds=time.perf_counter() - start,
    checks=checks,
  )
  save()
  kinds: dict[str, list[int]] = {}
  for c in checks:
    kinds.setdefault(c["kind"], [0, 0])[0 if c["passed"] else 1] += 1
  for kind, (ok, bad) in kinds.items():
    log(f"  {kind}: {ok} passed, {bad} failed")
  for c in checks:
    if c["kind"] in ("dispatch", "precision") or not c["passed"]:
      mark = "ok" if c["passed"] else "FAILED"
      log(f"  [{mark}] {c['name']}: {c.get('detail') or c.get('error') or c.get('worst')}")
  log(
    "  note: the training step's convolution runs at XLA's default precision for its dtype "
    "(TF32 allowed for float32 on recent NVIDIA GPUs, bfloat16 passes on TPU); the LRN "
    "programs have no matmul or convolution (checked above)"
  )

  log("")
  log(
    f"timing: {rounds} rounds after {warmup} warm-up; budget {args.budget_s:.0f} s from the "
    f"start ({budget.elapsed():.0f} s spent)"
  )
  specs = groups_to_run(args.quick)
  train_dtypes = ("float32",) if args.quick else DTYPES

  def progress(groups, training):
    results.update(groups=groups, training=training)
    save()

  groups, training = run_timing(
    specs,
    train_dtypes,
    budget,
    functools.partial(
      run_group,
      seed=args.seed,
      torch_and_device=torch_and_device,
      rounds=rounds,
      warmup=warmup,
      bandwidth_gbps=bandwidth["GBps"],
      call_overhead_ms=bandwidth["call_overhead_ms"],
    ),
    functools.partial(
      training_group, quick=args.quick, seed=args.seed, rounds=rounds, warmup=warmup
    ),
    progress,
  )

  results["groups"] = groups
  results["training"] = training
  table, strategy = main_table(groups, default)
  chosen = ", ".join(f"{mode.replace('_', ' ')}: {impl}" for mode, impl in default.items())
  results["strategy"] = strategy
  rows = [r for g in groups for r in g["rows"]]
  # jax_lrn's rows decide the exit status; the baselines' (plain, torch, no LRN) are reported.
  bad_rows = [
    r
    for r in rows + [r for t in training for r in t["rows"]]
    if r.get("status") in ("FAILED", "error")
    and (r["impl"] in IMPLEMENTATIONS or r["impl"].startswith("LRN "))
  ]
  skipped = sum(r.get("status") == "skipped" for r in rows)
  results["summary"] = dict(
    finished=True,
    smoke_values=args.quick,
    correctness_passed=not failed,
    timing_rows=len(rows),
    timing_rows_failed=len(bad_rows),
    timing_rows_skipped=skipped,
    training_groups_skipped=sum(bool(t.get("skipped")) for t in training),
    elapsed_s=budget.elapsed(),
  )
  counts = {w: sum(s["faster"] == w for s in strategy) for w in (*IMPLEMENTATIONS, "tie")}

  log("")
  fastest = ", ".join(f"{impl} in {counts[impl]}" for impl in IMPLEMENTATIONS)
  log(
    f"window strategy on {results['environment']['device_kind']}: default {chosen}; fastest: "
    f"{fastest}, within the spread in {counts['tie']} of {len(strategy)} (configuration, pass) "
    "rows"
  )
  log(
    f"correctness: {'all passed' if not failed else f'{len(failed)} FAILED'} "
    f"({len(checks)} checks); timed rows: {len(rows) - skipped} of {len(rows)} "
    f"({skipped} skipped by the budget), {len(bad_rows)} failed; "
    f"{budget.elapsed():.0f} s in all"
  )
  if args.quick:
    log(SMOKE_NOTE)
  train_md = training_table(training)
  legend = (
    f"{', '.join(IMPLEMENTATIONS)}: lrn(implementation=...); for the one implementation=None "
    f"runs here for the row's window ({chosen}) median ms, ratio to the elementwise pass x*2 "
    "over the same array in the same rounds, fraction of the bandwidth floor reached (floor ms "
    "/ ms); for the others, plain (autodiff) and torch (F.local_response_norm; channels_last "
    "for NHWC; its y+dx is forward + backward): ratio only. fastest: "
    + ", ".join(f"{ABBREVIATION[i]} ({i})" for i in IMPLEMENTATIONS)
    + ", or tie (the fastest median is not below the runner-up's minimum). *: under twice the "
    "time of a trivial call, so possibly the host's dispatch time rather than the device's."
  )
  if args.quick:
    legend = f"{SMOKE_NOTE} {legend}"
  env = results["environment"]
  title = (
    f"{env['device_kind']} ({env['platform']}), jax {env['jax']}, copy bandwidth "
    f"{bandwidth['GBps']:.0f} GB/s; implementation=None runs {chosen} here"
    + (" [SMOKE VALUES, --quick]" if args.quick else "")
  )
  if args.markdown:
    args.markdown.write_text(f"{title}\n\n{train_md}\n\n{legend}\n\n{table}\n")
  save()
  log("")
  log(train_md)
  log("")
  log(title)
  log(legend)
  log(table)
  return 1 if failed or bad_rows else 0


if __name__ == "__main__":
  sys.exit(main(ARGS))
