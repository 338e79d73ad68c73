"""Benchmark of ``jax_lrn.lrn`` in every way users call it, against plain JAX autodiff, other
frameworks' LRN, and an elementwise pass over the same number of elements.

    python benchmarks/bench_lrn.py            # full run (about 15 minutes on 2 CPU cores)
    python benchmarks/bench_lrn.py --quick    # seconds-long smoke run
    python benchmarks/bench_lrn.py --headline --out runs/h1   # the README's rows, both allocators

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
elementwise pass over the same array timed in the same subprocess rounds. The LRNs of other JAX
libraries, as published (``benchmarks/peers/``: jaxonnxruntime's ONNX ``LRN`` op, jaxonmodels'
Equinox layer), run across 5 in the same rounds as jax_lrn, checked like it first; a context
they cannot be compiled for (jaxonnxruntime is not differentiable) is a row with the error.

``--headline`` times only the README's headline rows, once with glibc's default allocation and
once with its hugetlb tunable (a process each), and writes ``headline.md`` and
``headline.json`` (``compare_runs.py`` compares two of them).

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
  MALLOC_TUNABLE,
  interleaved,
  markdown_table,
  reference,
  relative_error,
  restart_with_reused_memory,
  seconds,
  stats,
)
from bench_frameworks import case_arrays  # noqa: E402
from bench_jax import (  # noqa: E402
  CONTEXTS,
  PEERS,
  batch_norm,
  block_loss,
  in_context,
  layout_axes,
  lrn_function,
)

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
  """The window axes of ``mode`` (a key of ``MODES``) in ``layout``."""
  return layout_axes(layout, MODES[mode][0])[1]


def variant(impl: str, layout: str, mode: str, beta: float = 0.75):
  """``x -> y`` for a row: ``"jax_lrn"`` (the platform's choice), ``"plain JAX"`` (autodiff)
  or one of ``PEERS``, at AlexNet's alpha and k."""
  kind, size = MODES[mode]
  name = {"jax_lrn": None, "plain JAX": "plain"}.get(impl, impl)
  return lrn_function(name, layout, kind, size, ALPHA, beta, K)


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
  calls = {**fns, "x * 2": baseline}
  times = interleaved(
    list(fns), lambda name, _: seconds(calls[name]), rounds, warmup, "x * 2", BASELINE_EVERY
  )
  base = times.pop("x * 2")
  return times, base


def check(out, ref, context):
  """The largest error of the outputs of one context against ``(y, dx)`` in float64."""
  wanted = {"forward": (ref[0],), "dx only": (ref[1],), "y and dx": ref}[context]
  out = out if isinstance(out, tuple) else (out,)
  return max(relative_error(np.asarray(o[:1], np.float64), r) for o, r in zip(out, wanted))


def run_group(shape_name, shape, dtype, layouts, modes, extra_betas, args, wanted=None):
  """Checks, compiles and times every JAX function of one (shape, dtype), both layouts (only
  the ``(layout, window, context)`` in ``wanted`` where it is given). The other JAX libraries'
  LRNs (``PEERS``) run across 5 at beta 0.75; a context they cannot be compiled for (not
  differentiable) is a row with the error as its note, untimed."""
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
        impls = list(IMPLS)
        if mode == "across 5" and beta == 0.75 and args.peers:
          impls += PEERS
        for impl in impls:
          try:
            f = variant(impl, layout, mode, beta)
          except ImportError as error:  # a peer's own dependency (equinox) is not installed
            print(f"  {impl}: {error}; skipped")
            continue
          for context in args.contexts:
            if wanted is not None and (layout, mode, context) not in wanted:
              continue
            row = dict(config=dataclasses.asdict(cfg), label=cfg.label, impl=impl, context=context)
            key = (cfg, impl, context)
            try:
              compiled, compile_s, temp = compile_timed(in_context(f, context), x, g)
            except Exception as error:  # noqa: BLE001 - a peer that cannot: reported on its row
              if impl in IMPLS:
                raise
              note = str(error).splitlines()[0]
              rows.append((key, dict(row, note=f"not differentiable: {note}")))
              continue
            error = check(compiled(x, g), ref, context)
            if impl == "jax_lrn" and not error <= TOLERANCE[dtype]:
              raise SystemExit(f"jax_lrn is wrong on {cfg.label} {context}: error {error:.2e}")
            fns[key] = lambda c=compiled, x=x, g=g: jax.block_until_ready(c(x, g))
            row.update(compile_s=compile_s, temp_bytes=temp, error=error)
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
    if key in times:
      row.update(stats(times[key]))
      row.update(elem=base_stats, ratio=row["min_s"] / base_stats["min_s"])
    out.append(row)
  return out, base_stats


# ---------------------------------------------------------------------------------------------
# The training step: AlexNet conv1 block, gradient with respect to the kernel.
# ---------------------------------------------------------------------------------------------


def train_step_fns(batch: int):
  """``{variant: (compiled, args)}`` for the block with each normalization."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, 227, 227, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(0.0, 0.05, size=(11, 11, 3, 96)), jnp.float32)
  readout = jnp.asarray(rng.normal(size=(batch, 27, 27, 96)), jnp.float32)
  norms = {
    "jax_lrn": variant("jax_lrn", "NHWC", "across 5"),
    "plain JAX LRN": variant("plain JAX", "NHWC", "across 5"),
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
    note = row.get("note") or ""
    return next((n for n in ("unsupported", "not differentiable") if note.startswith(n)), "n/a")
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
  head += [f"{context}: {impl}" for context in CONTEXTS for impl in IMPLS]
  table = []
  for label in labels:
    elem = next(r for r in rows if r["label"] == label)["elem"]
    cells = label.split(" | ") + [f"{elem['min_s'] * 1e3:.2f} / {elem['median_s'] * 1e3:.2f}"]
    table.append(cells + [cell(index.get((label, i, c))) for c in CONTEXTS for i in IMPLS])
  lines += markdown_table(head, table, "llll" + "r" * (len(head) - 4))
  peer_labels = [lb for lb in labels if any((lb, p, c) in index for p in PEERS for c in CONTEXTS)]
  if peer_labels:
    lines += [
      "",
      "Across channels, size 5, against the LRNs of other JAX libraries, as published "
      "(`benchmarks/peers/`: jaxonnxruntime 0.3.0's ONNX `LRN` op, jaxonmodels 0.2.3's Equinox "
      "layer under `vmap` over the batch; both NCHW, so NHWC is transposed to NCHW and back "
      "around them), timed in the same rounds as jax_lrn. Not differentiable: jaxonnxruntime's "
      "`reduce_window` with an array as its initial value has no reverse-mode rule (`jax.grad` "
      "raises).",
      "",
    ]
    head = ["shape", "layout", "dtype", "context", *IMPLS, *PEERS]
    table = [
      [*label.split(" | ")[:2], label.split(" | ")[3], context]
      + [cell(index.get((label, impl, context))) for impl in (*IMPLS, *PEERS)]
      for label in peer_labels
      for context in CONTEXTS
      if (label, "jax_lrn", context) in index
    ]
    lines += markdown_table(head, table, "llll" + "r" * (len(head) - 4))
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
    table = [
      [*label.split(" | ")[:2], label.split(" | ")[3], context]
      + [cell(index.get((label, impl, context))) for impl in ("jax_lrn", *present)]
      for label in dict.fromkeys(r["label"] for r in frameworks)
      for context in ("forward", "dx only")
    ]
    lines += markdown_table(head, table, "llll" + "r" * (len(head) - 4))
  if train:
    lines += [
      "",
      f"Training step: AlexNet conv1 block at batch {meta['train_batch']} (conv 11x11/4, 96 "
      "channels -> ReLU -> norm -> max-pool 3/2; `jax.grad` with respect to the kernel), the "
      "variants timed in interleaved rounds; the added time is relative to the minimum of the "
      "step without normalization.",
      "",
    ]
    head = ["variant", "ms (min)", "ms (median)", "added to the step without normalization"]
    table = [
      [
        r["variant"],
        f"{r['min_s'] * 1e3:.1f}",
        f"{r['median_s'] * 1e3:.1f}",
        f"{r['added_percent']:+.1f} %",
      ]
      for r in train
    ]
    lines += markdown_table(head, table, "lrrr")
  lines += [
    "",
    "jax_lrn in detail (y and dx context): compile seconds, the bytes the backward keeps "
    "(residuals) and the compiled program's temporary memory, next to plain JAX autodiff.",
    "",
  ]
  head = ["shape", "layout", "window", "dtype", "compile s (fwd, dx, y and dx)"]
  head += ["residual MB (jax_lrn / plain)", "temp MB, y and dx (jax_lrn / plain)"]
  table = []
  mb = 1e-6
  for label in labels:
    got = [index.get((label, "jax_lrn", c)) for c in CONTEXTS]
    plain = index.get((label, "plain JAX", "y and dx"))
    if any(r is None for r in got) or plain is None:
      continue
    table.append(
      label.split(" | ")
      + [
        ", ".join(f"{r['compile_s']:.2f}" for r in got),
        f"{got[2]['residual_bytes'] * mb:.1f} / {plain['residual_bytes'] * mb:.1f}",
        f"{(got[2]['temp_bytes'] or 0) * mb:.1f} / {(plain['temp_bytes'] or 0) * mb:.1f}",
      ]
    )
  lines += markdown_table(head, table, "llllrrr")
  lines += ["", meta["text"]]
  return "\n".join(lines) + "\n"


def render(results: Path, out: Path) -> None:
  """Writes ``results.md`` for an earlier run from its ``results.json`` (and prints it)."""
  payload = json.loads(results.read_text())
  fw_rows = [r for r in payload["rows"] if r["impl"] in FRAMEWORK_LABEL.values()]
  rows = [r for r in payload["rows"] if r["impl"] not in FRAMEWORK_LABEL.values()]
  train = payload["train_step"]["rows"] if payload.get("train_step") else None
  md = markdown(rows, fw_rows, train, payload["meta"])
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.md").write_text(md)
  print(md)


# ---------------------------------------------------------------------------------------------
# The README's headline: its rows with both allocators, each in a process of its own.
# ---------------------------------------------------------------------------------------------

HEADLINE_SHAPE, HEADLINE_DTYPE = "AlexNet conv1", "float32"
HEADLINE_ROWS = (  # (layout, window, context)
  ("NHWC", "across 5", "forward"),
  ("NHWC", "across 5", "dx only"),
  ("NHWC", "across 5", "y and dx"),
  ("NCHW", "across 5", "dx only"),
  ("NCHW", "across 5", "y and dx"),
  ("NHWC", "within 5x5", "dx only"),
  ("NHWC", "within 5x5", "y and dx"),
)
ALLOCATORS = {"malloc default": False, "malloc hugetlb": True}  # label: with MALLOC_TUNABLE
HEADLINE_IMPLS = (*IMPLS, *PEERS)


def allocator_env(reuse: bool) -> dict:
  """The environment with ``MALLOC_TUNABLE`` added to ``GLIBC_TUNABLES`` or taken out of it."""
  tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
  tunables = [t for t in tunables if t != MALLOC_TUNABLE] + ([MALLOC_TUNABLE] if reuse else [])
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  return dict(env, GLIBC_TUNABLES=":".join(tunables)) if tunables else env


def headline(args) -> None:
  """Times ``HEADLINE_ROWS`` and the training step once per allocator (a fresh process each,
  the allocators in turn), and writes ``headline.md`` and ``headline.json`` (bench_lrn's rows,
  the allocator in each label, so that compare_runs.py compares two runs) to ``--out``. With
  ``--quick``, on the quick shape (a smoke run)."""
  start = time.perf_counter()
  out = Path(args.out)
  shape_name = next(iter(QUICK_SHAPES)) if args.quick else HEADLINE_SHAPE
  shape = (QUICK_SHAPES if args.quick else SHAPES)[shape_name]
  rows, train, metas = [], [], {}
  for allocator, reuse in ALLOCATORS.items():
    if reuse and platform.libc_ver()[0] != "glibc":
      print(f"  {allocator}: not glibc, skipped")
      continue
    child = out / allocator.replace(" ", "-")
    command = [sys.executable, __file__, "--headline-rows", "--out", str(child)]
    repeats = args.repeats or (2 if args.quick else 9)
    command += ["--repeats", str(repeats), "--warmup", str(args.warmup)]
    command += ([] if reuse else ["--system-malloc"]) + (["--quick"] if args.quick else [])
    command += ["--train-batch", str(args.train_batch)] if args.train_batch else []
    proc = subprocess.run(command, env=allocator_env(reuse), capture_output=True, text=True)
    if proc.returncode != 0:
      raise SystemExit(f"the {allocator} run failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    payload = json.loads((child / "results.json").read_text())
    metas[allocator] = payload["meta"]["text"]
    batch = payload["meta"]["train_batch"]
    for row in payload["rows"]:
      rows.append(dict(row, label=f"{row['label']} | {allocator}", allocator=allocator))
    for row in payload["train_step"]["rows"]:
      train.append(dict(row, variant=f"{row['variant']}, {allocator}", allocator=allocator))
    print(f"  timed the headline rows, {allocator} ({time.perf_counter() - start:.0f} s)")
  lines = [
    f"{shape_name} {shape}, {HEADLINE_DTYPE}. Each cell: time as a multiple "
    "of one elementwise pass `x * 2` over as many elements (minimum over minimum) · minimum "
    "milliseconds (median in brackets); each allocator in a process of its own.",
    "",
  ]
  index = {(r["label"], r["impl"], r["context"]): r for r in rows}
  table = []
  for layout, mode, context in HEADLINE_ROWS:
    for allocator in metas:
      label = f"{Config(shape_name, layout, mode, HEADLINE_DTYPE).label} | {allocator}"
      got = [index.get((label, impl, context)) for impl in HEADLINE_IMPLS]
      elem = next((r["elem"] for r in got if r and "elem" in r), None)
      elem_ms = "—" if elem is None else f"{elem['min_s'] * 1e3:.2f} / {elem['median_s'] * 1e3:.2f}"
      table.append([f"{mode}, {layout}, {context}", allocator, elem_ms, *map(cell, got)])
  head = ["row", "allocator", "x * 2 ms (min / median)", *HEADLINE_IMPLS]
  lines += markdown_table(head, table, "ll" + "r" * (len(head) - 2))
  variants = list(dict.fromkeys(r["variant"].rsplit(", ", 1)[0] for r in train))
  lines += [
    "",
    f"Training step (AlexNet conv1 block, batch {batch}, `jax.grad` "
    "with respect to the kernel): minimum ms (median in brackets), and what the normalization "
    "adds to the minimum of the step without one.",
    "",
  ]
  table = [
    [
      allocator,
      *(
        f"{r['min_s'] * 1e3:.1f} ms (med {r['median_s'] * 1e3:.1f}), {r['added_percent']:+.1f} %"
        for r in train
        if r["allocator"] == allocator
      ),
    ]
    for allocator in metas
  ]
  lines += markdown_table(["allocator", *variants], table, "l" + "r" * len(variants))
  lines += [""] + [f"{allocator}: {text}" for allocator, text in metas.items()]
  total = time.perf_counter() - start
  lines += ["", f"{total:.0f} s in all."]
  md = "\n".join(lines) + "\n"
  out.mkdir(parents=True, exist_ok=True)
  (out / "headline.md").write_text(md)
  meta = dict(text=" ".join(metas.values()), total_s=total)
  payload = dict(meta=meta, rows=rows, train_step=dict(rows=train))
  (out / "headline.json").write_text(json.dumps(payload, indent=1))
  print(md)
  print(f"wrote {out / 'headline.md'}, {out / 'headline.json'}")


def main(argv=None):
  from_command_line = argv is None
  argv = sys.argv[1:] if argv is None else argv
  if from_command_line and not {"--system-malloc", "--headline"} & set(argv):
    restart_with_reused_memory(__file__, argv)
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
    "--no-peers", dest="peers", action="store_false", help="no rows of other JAX libraries"
  )
  parser.add_argument(
    "--headline",
    action="store_true",
    help="the README's headline rows only, with each allocator (a process each): headline.md "
    "and headline.json in --out",
  )
  parser.add_argument("--headline-rows", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument(
    "--render",
    metavar="RESULTS_JSON",
    help="time nothing: write the tables of an earlier run's results.json to --out",
  )
  args = parser.parse_args(argv)
  if args.render:
    render(Path(args.render), Path(args.out))
    return
  if args.headline:
    headline(args)
    return
  wanted = None
  if args.headline_rows:  # one allocator's process of --headline
    wanted = set(HEADLINE_ROWS)
    args.shapes = next(iter(QUICK_SHAPES)) if args.quick else HEADLINE_SHAPE
    args.dtypes = HEADLINE_DTYPE
    args.modes = ",".join(dict.fromkeys(mode for _, mode, _ in HEADLINE_ROWS))
    args.frameworks = "none"
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
  extra_betas = () if args.quick or wanted else (GENERAL_BETA,)
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
        shape_name, shape, dtype, layouts, modes, extra_betas if i == 0 else (), args, wanted
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
  command += " --headline" if wanted else ""
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
