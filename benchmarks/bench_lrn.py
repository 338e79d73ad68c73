"""Benchmark of ``jax_lrn.lrn`` in every way users call it, against plain JAX autodiff, other
frameworks' LRN, and an elementwise pass over the same number of elements.

    python benchmarks/bench_lrn.py            # full run (about 15 minutes on 2 CPU cores)
    python benchmarks/bench_lrn.py --quick    # seconds-long smoke run

Contexts, each compiled and timed on its own, because XLA fuses each differently:

* ``forward``: ``lrn(x)``;
* ``dx only``: ``jax.grad`` of a scalar loss ``sum(lrn(x) * g)``, what a training step asks for;
* ``y and dx``: ``jax.vjp`` returning the output and the input cotangent;
* ``training step``: an AlexNet conv1 block (conv 11x11/4 -> ReLU -> norm -> max-pool 3/2,
  ``jax.grad`` with respect to the conv kernel) with jax_lrn, with plain autodiff LRN, with
  BatchNorm and with no normalization, reporting what LRN adds to the step.

For each activation shape (AlexNet conv1 and conv2, a GoogLeNet-sized one, at batch sizes whose
arrays exceed the CPU's last-level cache, so that no call finds its input in cache), layout
(NHWC, NCHW), window (across channels 5, within channel 3x3 and 5x5) and dtype (float32,
bfloat16, float16) the script

1. checks correctness first: ``y`` and ``dx`` on the first batch element against a float64
   NumPy reference (the run stops if ``jax_lrn`` is off);
2. compiles every function separately (compile seconds, ``memory_analysis`` temporary bytes,
   the residual bytes ``jax.vjp`` keeps);
3. times all functions of one (shape, dtype), both layouts, in interleaved rounds: every round
   calls each function once, in turn, so all see the same machine load; the elementwise pass
   ``x * 2`` over an array of the same element count and dtype (one baseline for both layouts)
   runs at the start of each round and again after every few functions.

Reported: the minimum and the median over rounds in milliseconds; ratios are the minimum over
the elementwise pass's minimum (the least disturbed runs of each). A warning is printed where
the baseline's max/min spread exceeds 1.5x (a disturbed run: rerun it).

Baselines: plain autodiff of one ``lax.reduce_window`` over all window axes followed by
``** (-beta)`` (in float32 for 16-bit inputs), and when installed (the ``bench`` extra) PyTorch
``F.local_response_norm`` (NCHW and channels_last), TensorFlow
``tf.nn.local_response_normalization`` and onnxruntime's ``LRN``, each in its own subprocess and
across channels only (the only mode they implement); their times are divided by a JAX
elementwise pass over the same array timed in the same subprocess rounds.

Writes ``results.md`` (the tables of ``docs/performance.md``) and ``results.json`` to ``--out``
and prints the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
  reference,
  relative_error,
  restart_with_reused_memory,
  stats,
)
from bench_frameworks import case_arrays  # noqa: E402

import jax_lrn  # noqa: E402

HERE = Path(__file__).resolve().parent
# glibc returns every allocation over 32 MB to the system when it is freed, so each call that
# writes a fresh output of that size page-faults it in again: for x * 2 on a 74 MB array that
# is 75% of its time (19.6 ms, against 4.7 ms once freed memory is reused; over a million
# minor page faults in 60 calls), and which calls pay it varies from call to call. With
# glibc's hugetlb tunable, freed memory is reused and the timings show the computation. The
# script restarts itself with it (frameworks' subprocesses inherit it); --system-malloc keeps
# the system's default (bench_common.MALLOC_TUNABLE).
ALPHA, K = 1e-4, 2.0  # AlexNet's values (alpha divided by the window count, as in Caffe)
SHAPES = {  # name: (N, H, W, C); one 16-bit array is 37, 48 and 39 MB (more than a 32 MB L3)
  "AlexNet conv1": (64, 55, 55, 96),
  "AlexNet conv2": (128, 27, 27, 256),
  "GoogLeNet 56x56x192": (32, 56, 56, 192),
}
QUICK_SHAPES = {"AlexNet conv2 (N=1)": (1, 27, 27, 256)}
MODES = {  # label: (mode, size)
  "across 5": ("across_channels", 5),
  "within 3x3": ("within_channel", 3),
  "within 5x5": ("within_channel", 5),
}
QUICK_MODES = ("across 5", "within 3x3")
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "bfloat16", "float16")
QUICK_DTYPES = ("float32", "bfloat16")
CONTEXTS = ("forward", "dx only", "y and dx")
IMPLS = ("jax_lrn", "plain JAX")
FRAMEWORKS = ("torch", "tensorflow", "onnxruntime")
FRAMEWORK_LABEL = dict(torch="PyTorch", tensorflow="TensorFlow", onnxruntime="onnxruntime")
TOLERANCE = dict(float32=1e-4, bfloat16=2.0**-6, float16=2.0**-8)  # max error / max |ref|
# A general exponent (no sqrt fast path) is measured on the first shape, NHWC, across 5.
GENERAL_BETA = 0.6
BASELINE_EVERY = 6  # the elementwise pass runs again after this many timed functions
SPREAD_WARNING = 1.5
TRAIN_BATCH = 16


@dataclasses.dataclass(frozen=True)
class Config:
  shape: str
  layout: str
  mode: str
  dtype: str
  beta: float = 0.75

  @property
  def label(self) -> str:
    beta = "" if self.beta == 0.75 else f", beta {self.beta}"
    return f"{self.shape} | {self.layout} | {self.mode}{beta} | {self.dtype}"


def window_axes(layout: str, mode: str) -> tuple[int, ...]:
  channel = 3 if layout == "NHWC" else 1
  if MODES[mode][0] == "across_channels":
    return (channel,)
  return (1, 2) if layout == "NHWC" else (2, 3)


def plain_lrn(x, axes, size, beta):
  """What one writes without jax_lrn: a reduce_window sum and a general power, autodiff."""
  compute = x.astype(jnp.float32) if x.dtype != jnp.float64 else x
  window = [size if a in axes else 1 for a in range(x.ndim)]
  pad = [(size // 2, size // 2) if a in axes else (0, 0) for a in range(x.ndim)]
  sq = lax.reduce_window(compute * compute, 0.0, lax.add, window, (1,) * x.ndim, pad)
  n = size ** len(axes)
  return (compute * (K + ALPHA / n * sq) ** (-beta)).astype(x.dtype)


def fast_lrn(x, layout, mode, beta):
  kind, size = MODES[mode]
  return jax_lrn.lrn(x, size, ALPHA, beta, K, mode=kind, channel_axis=-1 if layout == "NHWC" else 1)


def in_context(f, context):
  """``f`` as users call it in ``context``; every returned function takes ``(x, g)``."""
  if context == "forward":
    return lambda x, g: f(x)
  if context == "dx only":
    return jax.grad(lambda x, g: jnp.sum((f(x) * g).astype(jnp.float32)))

  def y_and_dx(x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  return y_and_dx


def residual_bytes(f, x) -> int:
  """Bytes of the arrays ``jax.vjp(f, x)`` keeps for the backward (by abstract evaluation)."""
  vjp = jax.eval_shape(lambda x: jax.vjp(f, x)[1], x)
  return int(sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(vjp)))


def compile_timed(f, *args):
  start = time.perf_counter()
  compiled = jax.jit(f).lower(*args).compile()
  seconds = time.perf_counter() - start
  mem = compiled.memory_analysis()
  temp = None if mem is None else int(mem.temp_size_in_bytes)
  return compiled, seconds, temp


def time_rounds(fns, baseline, rounds: int, warmup: int):
  """Seconds per call of every function (dict name -> list) and of ``baseline`` (a list).

  Every round calls each function once, in turn; the baseline runs at the start of the round
  and again after every ``BASELINE_EVERY`` functions, so it samples the same moments.
  """
  names = list(fns)
  for _ in range(warmup):
    baseline()
    for name in names:
      fns[name]()
  times = {name: [] for name in names}
  base = []

  def timed(fn, out):
    start = time.perf_counter()
    fn()
    out.append(time.perf_counter() - start)

  for _ in range(rounds):
    for i, name in enumerate(names):
      if i % BASELINE_EVERY == 0:
        timed(baseline, base)
      timed(fns[name], times[name])
  return times, base


def check(out, ref, context):
  """The largest error of the outputs of one context against ``(y, dx)`` in float64."""
  wanted = {"forward": (ref[0],), "dx only": (ref[1],), "y and dx": ref}[context]
  out = out if isinstance(out, tuple) else (out,)
  return max(relative_error(np.asarray(o[:1], np.float64), r) for o, r in zip(out, wanted))


def run_group(shape_name, shape, dtype, layouts, modes, extra_betas, args):
  """Checks, compiles and times every JAX function of one (shape, dtype), both layouts."""
  jdtype = jnp.dtype(dtype)
  data, rows, fns = {}, [], {}
  for layout in layouts:
    nchw = (shape[0], shape[3], shape[1], shape[2])
    x_np, g_np = case_arrays(dict(shape_nchw=list(nchw), dtype=dtype, seed=0))
    if layout == "NHWC":
      x_np, g_np = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x_np, g_np))
    data[layout] = (x_np, g_np, jnp.asarray(x_np, jdtype), jnp.asarray(g_np, jdtype))
  # The elementwise pass reads an array of its own, which no other function touches: it never
  # finds part of its input left in the last-level cache by the function timed before it.
  x0 = jnp.array(data[layouts[0]][2], copy=True)
  elem, _, _ = compile_timed(lambda x: x * 2, x0)

  def baseline():
    elem(x0).block_until_ready()

  for layout in layouts:
    x_np, g_np, x, g = data[layout]
    for mode in modes:
      betas = (0.75,) + (extra_betas if mode == "across 5" and layout == "NHWC" else ())
      for beta in betas:
        cfg = Config(shape_name, layout, mode, dtype, beta)
        axes, size = window_axes(layout, mode), MODES[mode][1]
        ref = reference(x_np[:1], g_np[:1], axes, size, ALPHA, beta, K)
        impls = {
          "jax_lrn": lambda x, layout=layout, mode=mode, beta=beta: fast_lrn(x, layout, mode, beta),
          "plain JAX": lambda x, axes=axes, size=size, beta=beta: plain_lrn(x, axes, size, beta),
        }
        for impl, f in impls.items():
          for context in args.contexts:
            compiled, compile_s, temp = compile_timed(in_context(f, context), x, g)
            error = check(compiled(x, g), ref, context)
            if impl == "jax_lrn" and not error <= TOLERANCE[dtype]:
              raise SystemExit(f"jax_lrn is wrong on {cfg.label} {context}: error {error:.2e}")
            key = (cfg, impl, context)
            fns[key] = lambda c=compiled, x=x, g=g: jax.block_until_ready(c(x, g))
            row = dict(
              config=dataclasses.asdict(cfg),
              label=cfg.label,
              impl=impl,
              context=context,
              compile_s=compile_s,
              temp_bytes=temp,
              error=error,
            )
            if context == "y and dx":
              row["residual_bytes"] = residual_bytes(f, x)
            rows.append((key, row))
  times, base = time_rounds(fns, baseline, args.repeats, args.warmup)
  base_stats = stats(base)
  if base_stats["max_s"] > SPREAD_WARNING * base_stats["min_s"]:
    print(
      f"  WARNING: {shape_name} {dtype}: the elementwise pass ranged "
      f"{base_stats['min_s'] * 1e3:.2f}-{base_stats['max_s'] * 1e3:.2f} ms (more than "
      f"{SPREAD_WARNING}x): some rounds were disturbed (other load, or memory being paged in); "
      "the ratios use minima, but compare with a second run"
    )
  out = []
  for key, row in rows:
    row.update(stats(times[key]))
    row.update(elem=base_stats, ratio=row["min_s"] / base_stats["min_s"])
    out.append(row)
  return out, base_stats


# ---------------------------------------------------------------------------------------------
# The training step: AlexNet conv1 block, gradient with respect to the kernel.
# ---------------------------------------------------------------------------------------------


def batch_norm(h):
  """BatchNorm in training mode (batch statistics per channel, no affine parameters)."""
  mean = jnp.mean(h, axis=(0, 1, 2))
  var = jnp.var(h, axis=(0, 1, 2))
  return (h - mean) * lax.rsqrt(var + 1e-5)


def block_loss(kernel, x, readout, norm):
  """AlexNet's first block (conv 11x11/4, ReLU, ``norm``, max-pool 3/2), NHWC, read out."""
  dn = ("NHWC", "HWIO", "NHWC")
  h = lax.conv_general_dilated(x, kernel, (4, 4), "VALID", dimension_numbers=dn)
  h = norm(jax.nn.relu(h))
  h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
  return jnp.sum(h * readout)


def train_step_fns(batch: int):
  """``{variant: (compiled, args)}`` for the block with each normalization."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, 227, 227, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(0.0, 0.05, size=(11, 11, 3, 96)), jnp.float32)
  readout = jnp.asarray(rng.normal(size=(batch, 27, 27, 96)), jnp.float32)
  norms = {
    "jax_lrn": lambda h: jax_lrn.lrn(h, 5, ALPHA, 0.75, K),
    "plain JAX LRN": lambda h: plain_lrn(h, (3,), 5, 0.75),
    "BatchNorm": batch_norm,
    "no normalization": lambda h: h,
  }
  out = {}
  for name, norm in norms.items():

    def loss(kernel, x, norm=norm):
      return block_loss(kernel, x, readout, norm)

    compiled, compile_s, _ = compile_timed(jax.grad(loss), kernel, x)
    out[name] = (compiled, (kernel, x), compile_s)
  return out


def run_train_step(args):
  fns = train_step_fns(args.train_batch)
  timed = {name: (lambda c=c, a=a: jax.block_until_ready(c(*a))) for name, (c, a, _) in fns.items()}
  # The step without normalization is the reference here (the "baseline" of time_rounds).
  none = timed.pop("no normalization")
  times, base = time_rounds(timed, none, args.repeats, args.warmup)
  times["no normalization"] = base
  none_min = min(times["no normalization"])
  rows = []
  for name, (_, _, compile_s) in fns.items():
    row = dict(variant=name, compile_s=compile_s, **stats(times[name]))
    row["added_percent"] = 100.0 * (row["min_s"] - none_min) / none_min
    rows.append(row)
  return rows


# ---------------------------------------------------------------------------------------------
# Other frameworks, each in its own process.
# ---------------------------------------------------------------------------------------------


def run_framework(framework, cases, args):
  """Runs bench_frameworks.py in a subprocess; None when the framework is not installed."""
  probe = subprocess.run(
    [sys.executable, "-c", f"import {framework}"], capture_output=True, text=True
  )
  if probe.returncode != 0:
    return None
  spec = dict(cases=cases, repeats=args.repeats, warmup=args.warmup)
  with tempfile.TemporaryDirectory() as tmp:
    out_path = os.path.join(tmp, "out.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
      [sys.executable, str(HERE / "bench_frameworks.py"), framework, out_path],
      input=json.dumps(spec),
      capture_output=True,
      text=True,
      env=env,
      cwd=HERE,
    )
    if proc.returncode != 0:
      raise RuntimeError(f"{framework} benchmark failed:\n{proc.stderr[-3000:]}")
    with open(out_path) as f:
      return json.load(f)


def framework_rows(frameworks, shapes, dtypes, layouts, args, versions):
  cases = [
    dict(
      id=shape_name,
      shape_nchw=[n, c, h, w],
      dtype=dtype,
      seed=0,
      size=5,
      alpha=ALPHA,
      beta=0.75,
      k=K,
      passes=["forward", "forward+backward"],
    )
    for shape_name, (n, h, w, c) in shapes.items()
    for dtype in dtypes
  ]
  rows = []
  for framework in frameworks:
    start = time.perf_counter()
    result = run_framework(framework, cases, args)
    if result is None:
      print(f"  {framework}: not installed, skipped")
      continue
    versions[framework] = result["version"]
    for r in result["results"]:
      if r["layout"] not in layouts:
        continue
      cfg = Config(r["case"], r["layout"], "across 5", r["dtype"])
      # The frameworks compute y in their backward anyway: one number serves both contexts.
      context = "forward" if r["pass_name"] == "forward" else "dx only"
      row = dict(
        config=dataclasses.asdict(cfg),
        label=cfg.label,
        impl=FRAMEWORK_LABEL[framework],
        context=context,
        note=r.get("note"),
      )
      if "min_s" in r:
        row.update(
          min_s=r["min_s"],
          median_s=r["median_s"],
          max_s=r["max_s"],
          elem=dict(min_s=r["elem_min_s"], median_s=r["elem_median_s"]),
          ratio=r["min_s"] / r["elem_min_s"],
          own_elem_min_s=r["own_elem_min_s"],
          error=r["error"],
        )
      rows.append(row)
    print(f"  timed {framework} ({time.perf_counter() - start:.0f} s)")
  return rows


# ---------------------------------------------------------------------------------------------
# Tables.
# ---------------------------------------------------------------------------------------------


def cell(row) -> str:
  if row is None:
    return "—"
  if "ratio" not in row:
    return "unsupported" if (row.get("note") or "").startswith("unsupported") else "n/a"
  wrong = "" if row.get("error", 0.0) <= TOLERANCE[row["config"]["dtype"]] else " (wrong!)"
  return (
    f"{row['ratio']:.1f}x · {row['min_s'] * 1e3:.1f} ms (med {row['median_s'] * 1e3:.1f}){wrong}"
  )


def markdown(rows, frameworks, train, meta) -> str:
  index = {(r["label"], r["impl"], r["context"]): r for r in rows + frameworks}
  labels = list(dict.fromkeys(r["label"] for r in rows))
  lines = [
    "Each cell: time as a multiple of one elementwise pass `x * 2` over as many elements of the "
    "same dtype (minimum over minimum) · minimum milliseconds (median in brackets). Lower is "
    "better.",
    "",
  ]
  head = ["shape", "layout", "window", "dtype", "x * 2 ms (min / median)"]
  for context in CONTEXTS:
    head += [f"{context}: {impl}" for impl in IMPLS]
  lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(head) - 4)]
  for label in labels:
    first = next(r for r in rows if r["label"] == label)
    elem = first["elem"]
    cells = label.split(" | ") + [f"{elem['min_s'] * 1e3:.2f} / {elem['median_s'] * 1e3:.2f}"]
    for context in CONTEXTS:
      cells += [cell(index.get((label, impl, context))) for impl in IMPLS]
    lines.append("| " + " | ".join(cells) + " |")
  present = [
    FRAMEWORK_LABEL[f]
    for f in FRAMEWORKS
    if any(r["impl"] == FRAMEWORK_LABEL[f] for r in frameworks)
  ]
  if present:
    lines += [
      "",
      "Across channels, size 5, against other frameworks (each in its own process; its ratio is "
      "to a JAX `x * 2` timed in that process; the frameworks' backward always computes `y`, so "
      "their dx-only time is also their y-and-dx time):",
      "",
    ]
    head = ["shape", "layout", "dtype", "context", "jax_lrn"] + present
    lines += ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(head) - 4)]
    fw_labels = list(dict.fromkeys(r["label"] for r in frameworks))
    for label in fw_labels:
      shape, layout, _, dtype = label.split(" | ")
      for context in ("forward", "dx only"):
        cells = [shape, layout, dtype, context, cell(index.get((label, "jax_lrn", context)))]
        cells += [cell(index.get((label, impl, context))) for impl in present]
        lines.append("| " + " | ".join(cells) + " |")
  if train:
    lines += [
      "",
      f"Training step: AlexNet conv1 block at batch {meta['train_batch']} (conv 11x11/4, 96 "
      "channels -> ReLU -> norm -> max-pool 3/2; `jax.grad` with respect to the kernel), the "
      "variants timed in interleaved rounds; the added time is relative to the minimum of the "
      "step without normalization.",
      "",
      "| variant | ms (min) | ms (median) | added to the step without normalization |",
      "|---|---:|---:|---:|",
    ]
    for r in train:
      lines.append(
        f"| {r['variant']} | {r['min_s'] * 1e3:.1f} | {r['median_s'] * 1e3:.1f} | "
        f"{r['added_percent']:+.1f} % |"
      )
  lines += [
    "",
    "jax_lrn in detail (y and dx context): compile seconds, the bytes the backward keeps "
    "(residuals) and the compiled program's temporary memory, next to plain JAX autodiff.",
    "",
    "| shape | layout | window | dtype | compile s (fwd, dx, y and dx) "
    "| residual MB (jax_lrn / plain) | temp MB, y and dx (jax_lrn / plain) |",
    "|---|---|---|---|---:|---:|---:|",
  ]
  mb = 1e-6
  for label in labels:
    got = [index.get((label, "jax_lrn", c)) for c in CONTEXTS]
    plain = index.get((label, "plain JAX", "y and dx"))
    if any(r is None for r in got) or plain is None:
      continue
    compile_s = ", ".join(f"{r['compile_s']:.2f}" for r in got)
    lines.append(
      "| "
      + " | ".join(label.split(" | "))
      + f" | {compile_s} | {got[2]['residual_bytes'] * mb:.1f} / {plain['residual_bytes'] * mb:.1f}"
      f" | {(got[2]['temp_bytes'] or 0) * mb:.1f} / {(plain['temp_bytes'] or 0) * mb:.1f} |"
    )
  lines += ["", meta["text"]]
  return "\n".join(lines) + "\n"


def render(results: Path, out: Path) -> None:
  """Writes ``results.md`` for an earlier run from its ``results.json`` (and prints it)."""
  payload = json.loads(results.read_text())
  rows = [r for r in payload["rows"] if r["impl"] in IMPLS]
  fw_rows = [r for r in payload["rows"] if r["impl"] not in IMPLS]
  train = payload["train_step"]["rows"] if payload.get("train_step") else None
  md = markdown(rows, fw_rows, train, payload["meta"])
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.md").write_text(md)
  print(md)


def main(argv=None):
  if argv is None and "--system-malloc" not in sys.argv:  # from the command line
    restart_with_reused_memory(__file__, sys.argv[1:])
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
  parser.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
  parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 9)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
  parser.add_argument(
    "--system-malloc",
    action="store_true",
    help="keep glibc's default allocation (every large output page-faulted in anew)",
  )
  parser.add_argument(
    "--frameworks",
    default="auto",
    help="comma-separated subset of torch,tensorflow,onnxruntime; 'auto' = every one "
    "installed, 'none' = JAX only",
  )
  parser.add_argument("--layouts", default=",".join(LAYOUTS))
  parser.add_argument("--dtypes", default=None, help="comma-separated: " + ", ".join(DTYPES))
  parser.add_argument("--modes", default=None, help="comma-separated: " + ", ".join(MODES))
  parser.add_argument("--contexts", default=",".join(CONTEXTS))
  parser.add_argument("--shapes", default=None, help="comma-separated subset of the shape names")
  parser.add_argument("--no-train-step", action="store_true", help="skip the training step")
  parser.add_argument("--train-batch", type=int, default=None, help=f"default {TRAIN_BATCH}")
  parser.add_argument(
    "--render",
    metavar="RESULTS_JSON",
    help="time nothing: write the tables of an earlier run's results.json to --out",
  )
  args = parser.parse_args(argv)
  if args.render:
    render(Path(args.render), Path(args.out))
    return
  shapes = QUICK_SHAPES if args.quick else SHAPES
  if args.shapes:
    shapes = {name: shapes[name] for name in args.shapes.split(",")}
  modes = args.modes.split(",") if args.modes else list(QUICK_MODES if args.quick else MODES)
  dtypes = args.dtypes.split(",") if args.dtypes else list(QUICK_DTYPES if args.quick else DTYPES)
  args.repeats = args.repeats or (2 if args.quick else 9)
  args.warmup = 1 if args.quick else args.warmup
  args.contexts = args.contexts.split(",")
  args.train_batch = args.train_batch or (1 if args.quick else TRAIN_BATCH)
  layouts = args.layouts.split(",")
  extra_betas = () if args.quick else (GENERAL_BETA,)
  frameworks = (
    FRAMEWORKS
    if args.frameworks == "auto"
    else tuple(f for f in args.frameworks.split(",") if f and f != "none")
  )
  start = time.perf_counter()
  rows = []
  for i, (shape_name, shape) in enumerate(shapes.items()):
    for dtype in dtypes:
      group, base = run_group(
        shape_name, shape, dtype, layouts, modes, extra_betas if i == 0 else (), args
      )
      rows += group
      print(
        f"  timed {shape_name} {dtype}: x * 2 {base['min_s'] * 1e3:.2f}-"
        f"{base['max_s'] * 1e3:.2f} ms ({time.perf_counter() - start:.0f} s)"
      )
  versions = {"jax": jax.__version__}
  fw_rows = []
  if "across 5" in modes:
    fw_rows = framework_rows(frameworks, shapes, dtypes, layouts, args, versions)
  train = None
  if not args.no_train_step:
    train = run_train_step(args)
    print(f"  timed the training step ({time.perf_counter() - start:.0f} s)")
  command = "python benchmarks/bench_lrn.py" + (" --quick" if args.quick else "")
  text = (
    f"Measured {datetime.date.today().isoformat()} with `{command}` on "
    f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores; "
    + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    + f"; alpha={ALPHA}, beta=0.75, k={K}; {args.repeats} timed rounds after {args.warmup} "
    "warm-up round(s); "
    + (
      "the system's default allocation."
      if args.system_malloc
      else f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')} (freed memory is reused)."
    )
  )
  meta = dict(text=text, train_batch=args.train_batch)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  md = markdown(rows, fw_rows, train, meta)
  (out / "results.md").write_text(md)
  payload = dict(
    meta=meta,
    versions=versions,
    args=vars(args),
    rows=rows + fw_rows,
    train_step=None if train is None else dict(rows=train),
  )
  (out / "results.json").write_text(json.dumps(payload, indent=1))
  print(md)
  print(f"wrote {out / 'results.md'}, {out / 'results.json'}")
  print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
