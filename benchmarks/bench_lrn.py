"""Benchmark of ``jax_lrn.lrn`` against plain JAX autodiff and other frameworks' LRN.

    python benchmarks/bench_lrn.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_lrn.py --quick    # seconds-long smoke run

For each activation shape (AlexNet conv1 and conv2, a GoogLeNet-sized one), layout (NHWC, NCHW),
mode (across channels size 5, within channel 3x3 and 5x5), dtype (float32, bfloat16) and pass
(forward, forward + backward) it

1. checks correctness first: ``y`` and ``dx`` on the first batch element against a float64
   NumPy reference (the run stops if ``jax_lrn`` is off);
2. compiles every JAX function separately (compile time, peak temporary memory from
   ``compiled.memory_analysis()``; the backward's saved residual bytes from ``jax.vjp``);
3. warms up, then times all functions of one (shape, layout, dtype) in interleaved rounds, and
   reports medians (and min-max) over the rounds as ratios to the median of an elementwise pass
   ``x * 2`` over the same array, which runs right before every timed call of those rounds.

Baselines: plain autodiff of the ``lax.reduce_window`` + ``** (-beta)`` formulation (one
reduce_window over all window axes, in float32 for 16-bit inputs), and when installed (the
``bench`` extra) PyTorch ``F.local_response_norm`` (NCHW and channels_last), TensorFlow
``tf.nn.local_response_normalization`` and onnxruntime's ``LRN``, each in its own subprocess and
across channels only (the only mode they implement). Their times are divided by a JAX
elementwise pass over the same array and dtype timed in the same subprocess rounds (their own
``x * 2`` is in the JSON).

Writes ``results.md`` (README-ready tables), ``results.json`` and ``results.png`` (bar chart,
when matplotlib is installed) to ``--out`` and prints the tables.
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

from bench_common import reference, relative_error, time_interleaved  # noqa: E402
from bench_frameworks import case_arrays  # noqa: E402

import jax_lrn  # noqa: E402

HERE = Path(__file__).resolve().parent
ALPHA, K = 1e-4, 2.0  # AlexNet's values (alpha divided by the window count, as in Caffe)
SHAPES = {  # name: (N, H, W, C)
  "AlexNet conv1": (16, 55, 55, 96),
  "AlexNet conv2": (16, 27, 27, 256),
  "GoogLeNet 56x56x192": (8, 56, 56, 192),
}
QUICK_SHAPES = {"AlexNet conv2 (N=1)": (1, 27, 27, 256)}
MODES = {  # label: (mode, size)
  "across 5": ("across_channels", 5),
  "within 3x3": ("within_channel", 3),
  "within 5x5": ("within_channel", 5),
}
QUICK_MODES = ("across 5", "within 3x3")
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "bfloat16")
PASSES = ("forward", "forward+backward")
FRAMEWORKS = ("torch", "tensorflow", "onnxruntime")
TOLERANCE = dict(float32=1e-4, bfloat16=2.0**-6)  # max error / max |reference|
# A general exponent (no rsqrt/sqrt fast path) is measured on this one configuration.
GENERAL_BETA = 0.6


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


def with_backward(f):
  def fwd_bwd(x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  return fwd_bwd


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


def stats(times, elem_median):
  t = np.asarray(times)
  return dict(
    median_s=float(np.median(t)),
    min_s=float(t.min()),
    max_s=float(t.max()),
    ratio=float(np.median(t) / elem_median),
    ratio_min=float(t.min() / elem_median),
    ratio_max=float(t.max() / elem_median),
  )


def run_jax_group(shape_name, shape, layout, dtype, modes, extra_betas, args):
  """Times every JAX function for one (shape, layout, dtype); returns result rows."""
  nchw = (shape[0], shape[3], shape[1], shape[2])
  case = dict(shape_nchw=list(nchw), dtype=dtype, seed=0)
  x_np, g_np = case_arrays(case)  # NCHW float32, rounded through dtype
  if layout == "NHWC":
    x_np, g_np = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x_np, g_np))
  jdtype = jnp.dtype(dtype)
  x = jnp.asarray(x_np, jdtype)
  g = jnp.asarray(g_np, jdtype)
  elem, _, _ = compile_timed(lambda x: x * 2, x)
  fns = {"elem": lambda: elem(x).block_until_ready()}
  rows = []
  for mode in modes:
    betas = (0.75,) + (extra_betas if mode == "across 5" else ())
    for beta in betas:
      cfg = Config(shape_name, layout, mode, dtype, beta)
      axes = window_axes(layout, mode)
      size = MODES[mode][1]
      ref = reference(x_np[:1], g_np[:1], axes, size, ALPHA, beta, K)
      impls = {
        "jax_lrn": lambda x, layout=layout, mode=mode, beta=beta: fast_lrn(x, layout, mode, beta),
        "plain JAX": lambda x, axes=axes, size=size, beta=beta: plain_lrn(x, axes, size, beta),
      }
      for impl, f in impls.items():
        for pass_name in args.passes:
          if pass_name == "forward":
            fn, fargs = f, (x,)
          else:
            fn, fargs = with_backward(f), (x, g)
          compiled, compile_s, temp = compile_timed(fn, *fargs)
          out = compiled(*fargs)
          out = out if isinstance(out, tuple) else (out,)
          error = max(relative_error(np.asarray(o[:1], np.float64), r) for o, r in zip(out, ref))
          if impl == "jax_lrn" and not error <= TOLERANCE[dtype]:
            raise SystemExit(f"jax_lrn is wrong on {cfg.label} {pass_name}: error {error:.2e}")
          key = (cfg, impl, pass_name)
          fns[key] = lambda compiled=compiled, fargs=fargs: jax.block_until_ready(compiled(*fargs))
          row = dict(
            config=dataclasses.asdict(cfg),
            label=cfg.label,
            impl=impl,
            pass_name=pass_name,
            compile_s=compile_s,
            temp_bytes=temp,
            error=error,
          )
          if pass_name == "forward+backward":
            row["residual_bytes"] = residual_bytes(f, x)
          rows.append((key, row))
  times = time_interleaved(fns, args.repeats, args.warmup, baseline="elem")
  elem_median = float(np.median(times["elem"]))
  out = []
  for key, row in rows:
    row.update(stats(times[key], elem_median), elem_median_s=elem_median)
    out.append(row)
  return out, elem_median


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


FRAMEWORK_LABEL = dict(torch="PyTorch", tensorflow="TensorFlow", onnxruntime="onnxruntime")
IMPLS = ("jax_lrn", "plain JAX", "PyTorch", "TensorFlow", "onnxruntime")


def cell(row):
  if row is None:
    return "—"
  if "ratio" not in row:
    return "unsupported" if (row.get("note") or "").startswith("unsupported") else "n/a"
  bad = "" if row.get("error", 0.0) <= TOLERANCE[row["config"]["dtype"]] else " (wrong!)"
  return f"{row['ratio']:.1f} ({row['ratio_min']:.1f}–{row['ratio_max']:.1f}){bad}"


def markdown(rows, meta):
  index = {(r["label"], r["impl"], r["pass_name"]): r for r in rows}
  labels = list(dict.fromkeys(r["label"] for r in rows))
  present = [i for i in IMPLS if any(r["impl"] == i for r in rows)]
  lines = [
    "Time of one call as a multiple of one elementwise pass `x * 2` over the same array "
    "(median over rounds, min–max in brackets; lower is better; — = not available).",
    "",
  ]
  head = ["shape", "layout", "window", "dtype"]
  for pass_name in PASSES:
    short = "fwd" if pass_name == "forward" else "fwd+bwd"
    head += [f"{short}: {impl}" for impl in present]
  lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(head) - 4)]
  for label in labels:
    cells = label.split(" | ")
    for pass_name in PASSES:
      cells += [cell(index.get((label, impl, pass_name))) for impl in present]
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
    "",
    "jax_lrn in detail (fwd+bwd unless noted): milliseconds, compile seconds, the bytes the "
    "backward keeps (residuals) and peak temporary memory of the compiled program, next to "
    "plain JAX autodiff.",
    "",
    "| shape | layout | window | dtype | x*2 ms | fwd ms | fwd+bwd ms | compile s (fwd, fwd+bwd)"
    " | residual MB (jax_lrn / plain) | temp MB (jax_lrn / plain) |",
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for label in labels:
    fwd = index.get((label, "jax_lrn", "forward"))
    fb = index.get((label, "jax_lrn", "forward+backward"))
    pfb = index.get((label, "plain JAX", "forward+backward"))
    if fwd is None or fb is None or pfb is None:
      continue
    mb = 1e-6
    lines.append(
      "| "
      + " | ".join(label.split(" | "))
      + f" | {fb['elem_median_s'] * 1e3:.2f} | {fwd['median_s'] * 1e3:.2f}"
      f" | {fb['median_s'] * 1e3:.2f} | {fwd['compile_s']:.2f}, {fb['compile_s']:.2f}"
      f" | {fb['residual_bytes'] * mb:.1f} / {pfb['residual_bytes'] * mb:.1f}"
      f" | {fb['temp_bytes'] * mb:.1f} / {pfb['temp_bytes'] * mb:.1f} |"
    )
  lines += ["", meta]
  return "\n".join(lines) + "\n"


def chart(rows, path):
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return False
  sel = [
    r
    for r in rows
    if r["config"]["mode"] == "across 5"
    and r["config"]["dtype"] == "float32"
    and r["config"]["beta"] == 0.75
    and "ratio" in r
  ]

  def group(r):
    return f"{r['config']['shape'].replace(' ', chr(10), 1)}\n{r['config']['layout']}"

  groups = list(dict.fromkeys(group(r) for r in sel))
  impls = [i for i in IMPLS if any(r["impl"] == i for r in sel)]
  fig, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=False)
  width = 0.8 / max(len(impls), 1)
  for ax, pass_name in zip(axes, PASSES):
    for j, impl in enumerate(impls):
      vals = []
      for grp in groups:
        match = [
          r["ratio"]
          for r in sel
          if r["impl"] == impl and r["pass_name"] == pass_name and group(r) == grp
        ]
        vals.append(match[0] if match else 0.0)
      ax.bar(np.arange(len(groups)) + j * width, vals, width, label=impl)
    ax.set_xticks(np.arange(len(groups)) + width * (len(impls) - 1) / 2)
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_title(f"LRN across channels, size 5, float32: {pass_name}")
    ax.set_ylabel("time / elementwise pass (median)")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
  parser.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
  parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 11)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
  parser.add_argument(
    "--frameworks",
    default="auto",
    help="comma-separated subset of torch,tensorflow,onnxruntime; 'auto' = every one "
    "installed, 'none' = JAX only",
  )
  parser.add_argument("--layouts", default=",".join(LAYOUTS))
  parser.add_argument("--dtypes", default=",".join(DTYPES))
  parser.add_argument("--modes", default=None, help="comma-separated: " + ", ".join(MODES))
  parser.add_argument("--passes", default=",".join(PASSES))
  args = parser.parse_args(argv)
  shapes = QUICK_SHAPES if args.quick else SHAPES
  modes = (args.modes.split(",") if args.modes else None) or (
    list(QUICK_MODES) if args.quick else list(MODES)
  )
  args.repeats = args.repeats or (3 if args.quick else 11)
  args.warmup = 1 if args.quick else args.warmup
  args.passes = args.passes.split(",")
  layouts = args.layouts.split(",")
  dtypes = args.dtypes.split(",")
  extra_betas = () if args.quick else (GENERAL_BETA,)
  frameworks = (
    FRAMEWORKS
    if args.frameworks == "auto"
    else tuple(f for f in args.frameworks.split(",") if f and f != "none")
  )
  start = time.perf_counter()
  rows = []
  for shape_name, shape in shapes.items():
    for layout in layouts:
      for dtype in dtypes:
        group_rows, _ = run_jax_group(shape_name, shape, layout, dtype, modes, extra_betas, args)
        rows += group_rows
        print(f"  timed {shape_name} {layout} {dtype} ({time.perf_counter() - start:.0f} s)")
  versions = {"jax": jax.__version__}
  if "across 5" in modes:
    cases = []
    for shape_name, (n, h, w, c) in shapes.items():
      for dtype in dtypes:
        cases.append(
          dict(
            id=shape_name,
            shape_nchw=[n, c, h, w],
            dtype=dtype,
            seed=0,
            size=5,
            alpha=ALPHA,
            beta=0.75,
            k=K,
            passes=args.passes,
          )
        )
    for framework in frameworks:
      result = run_framework(framework, cases, args)
      if result is None:
        print(f"  {framework}: not installed, skipped")
        continue
      versions[framework] = result["version"]
      for r in result["results"]:
        if r["layout"] not in layouts:
          continue
        cfg = Config(r["case"], r["layout"], "across 5", r["dtype"])
        row = dict(
          config=dataclasses.asdict(cfg),
          label=cfg.label,
          impl=FRAMEWORK_LABEL[framework],
          pass_name=r["pass_name"],
          note=r.get("note"),
        )
        if "median_s" in r:
          e = r["elem_median_s"]  # the JAX x * 2 timed in the same subprocess rounds
          row.update(
            median_s=r["median_s"],
            min_s=r["min_s"],
            max_s=r["max_s"],
            ratio=r["median_s"] / e,
            ratio_min=r["min_s"] / e,
            ratio_max=r["max_s"] / e,
            elem_median_s=e,
            own_elem_median_s=r["own_elem_median_s"],
            error=r["error"],
          )
        rows.append(row)
      print(f"  timed {framework} ({time.perf_counter() - start:.0f} s)")
  command = "python benchmarks/bench_lrn.py" + (" --quick" if args.quick else "")
  meta = (
    f"Measured {datetime.date.today().isoformat()} with `{command}` on "
    f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores; "
    + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    + f"; alpha={ALPHA}, beta=0.75, k={K}; {args.repeats} timed rounds after {args.warmup} "
    "warm-up rounds. Frameworks run in their own processes; their times are divided by a JAX "
    "elementwise pass over the same array timed in the same process."
  )
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  md = markdown(rows, meta)
  (out / "results.md").write_text(md)
  payload = dict(meta=meta, versions=versions, args=vars(args), rows=rows)
  (out / "results.json").write_text(json.dumps(payload, indent=1))
  has_png = chart(rows, out / "results.png")
  print(md)
  print(
    f"wrote {out / 'results.md'}, {out / 'results.json'}" + (", results.png" if has_png else "")
  )
  print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
