"""Benchmark of ``jax_lrn.local_contrast_norm``: its closed-form ``custom_vjp`` against JAX's
autodiff of the same formula, and what the per-sample reduction costs.

    python benchmarks/bench_contrast.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_contrast.py --quick    # seconds-long smoke run

For each shape (arrays larger than the CPU's last-level cache), layout (NHWC, NCHW) and dtype,
in the contexts ``forward``, ``dx only`` (``jax.grad`` of ``sum(y * g)``) and ``y and dx``
(``jax.vjp``), it times

* ``jax_lrn``: ``local_contrast_norm`` (window 9, the default);
* ``autodiff``: the same formula differentiated by JAX (``jax_lrn._contrast.contrast_autodiff``);
* ``no per-sample mean``: ``jax_lrn``'s core with the divisor ``max(sigma_local, eps)``, without
  the per-sample mean ``c`` of ``sigma_local``: the difference is what that global reduction
  costs;

after checking ``jax_lrn``'s ``y`` against a float64 NumPy reference and its ``dx`` against
autodiff's. Every round calls each function once, in turn, with the elementwise pass ``x * 2``
over an array of the same size and dtype at the start of each round and after every few
functions; ratios are minimum over the elementwise pass's minimum. Also reported: the bytes
XLA's cost analysis says each compiled program accesses, as a multiple of the array's bytes.
Writes ``contrast_results.md`` and ``contrast_results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
  contrast_reference,
  relative_error,
  restart_with_reused_memory,
  stats,
  time_interleaved,
)

import jax_lrn  # noqa: E402
from jax_lrn import _contrast  # noqa: E402

SIZE = 9
EPS = _contrast.DEFAULT_EPS
# float32 arrays of 103 MB and 77 MB (bfloat16: half), above the 32 MB last-level cache of the
# machine the documented numbers come from.
SHAPES = {"56x56x64 (batch 128)": (128, 56, 56, 64), "28x28x192 (batch 128)": (128, 28, 28, 192)}
QUICK_SHAPES = {"12x12x8 (batch 2)": (2, 12, 12, 8)}


def _layout(shape, layout):
  n, h, w, c = shape
  return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def _axes(layout):
  return (-1, (1, 2)) if layout == "NHWC" else (1, (2, 3))


def implementations(ndim, layout):
  channel_axis, spatial_axes = _axes(layout)
  cfg = _contrast.contrast_config(
    ndim,
    SIZE,
    sigma=None,
    channel_axis=channel_axis,
    spatial_axes=spatial_axes,
    eps=EPS,
    subtract=True,
    divide=True,
    what="bench",
  )
  local_only = dataclasses.replace(cfg, per_sample=False)
  return {
    "jax_lrn": lambda x: jax_lrn.local_contrast_norm(
      x, SIZE, channel_axis=channel_axis, spatial_axes=spatial_axes
    ),
    "autodiff": lambda x: _contrast.contrast_autodiff(cfg, x),
    "no per-sample mean": lambda x: _contrast.contrast_core(local_only, x),
  }


def in_context(f, context):
  if context == "forward":
    return jax.jit(f)
  if context == "dx only":
    return jax.jit(jax.grad(lambda x, g: jnp.sum((f(x) * g).astype(jnp.float32))))

  def y_and_dx(x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  return jax.jit(y_and_dx)


def accessed_bytes(fn, *args) -> float:
  cost = fn.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get("bytes accessed", float("nan")))


def run(args):
  rows = []
  shapes = QUICK_SHAPES if args.quick else SHAPES
  if args.shape:
    shapes = {name: shapes[name] for name in shapes if name.startswith(args.shape)}
  dtypes = ["float32"] if args.quick else args.dtypes
  rng = np.random.default_rng(0)
  for shape_name, shape in shapes.items():
    for dtype_name in dtypes:
      dtype = jnp.dtype(dtype_name)
      fns, meta = {}, {}
      for layout in ("NHWC", "NCHW"):
        lshape = _layout(shape, layout)
        x = jnp.asarray(rng.normal(0.0, 1.0, lshape) * 3.0 + 1.0, dtype)
        g = jnp.asarray(rng.normal(0.0, 1.0, lshape), dtype)
        impls = implementations(len(lshape), layout)
        # Correctness first, on the first sample (float64 reference) and for dx against autodiff.
        channel_axis, spatial_axes = _axes(layout)
        want = contrast_reference(
          np.asarray(x[:1], np.float64),
          channel_axis % 4,
          spatial_axes,
          SIZE,
          math.sqrt(SIZE) / 2,
          EPS,
        )
        y = in_context(impls["jax_lrn"], "forward")(x)
        y_error = relative_error(y[:1], want)
        dx = in_context(impls["jax_lrn"], "dx only")(x, g)
        dx_ad = in_context(impls["autodiff"], "dx only")(x, g)
        dx_error = relative_error(dx, np.asarray(dx_ad, np.float64))
        limit = 1e-4 if dtype == jnp.float32 else 2.0**-6
        if not (y_error <= limit and dx_error <= 10 * limit):
          raise SystemExit(
            f"jax_lrn is off: {layout} {dtype_name} y {y_error:.2e} dx {dx_error:.2e}"
          )
        for impl, f in impls.items():
          for context in ("forward", "dx only", "y and dx"):
            fn = in_context(f, context)
            call_args = (x,) if context == "forward" else (x, g)
            out = fn(*call_args)
            jax.block_until_ready(out)
            key = (layout, impl, context)
            fns[key] = lambda fn=fn, a=call_args: jax.block_until_ready(fn(*a))
            meta[key] = dict(
              bytes_ratio=accessed_bytes(fn, *call_args) / (x.size * x.dtype.itemsize),
              y_error=y_error,
              dx_error=dx_error,
            )
      elem_x = jnp.asarray(rng.normal(0.0, 1.0, shape), dtype)
      elementwise = jax.jit(lambda v: v * 2)
      jax.block_until_ready(elementwise(elem_x))
      named = {"|".join(k): f for k, f in fns.items()}
      named["elementwise"] = lambda e=elementwise, v=elem_x: jax.block_until_ready(e(v))
      times = time_interleaved(named, repeats=args.rounds, warmup=2, baseline="elementwise")
      elem = stats(times["elementwise"])
      for key in fns:
        s = stats(times["|".join(key)])
        rows.append(
          dict(
            shape=shape_name,
            dtype=dtype_name,
            layout=key[0],
            impl=key[1],
            context=key[2],
            elem=elem,
            ratio=s["min_s"] / elem["min_s"],
            **s,
            **meta[key],
          )
        )
  return rows


def markdown(rows) -> str:
  lines = [
    "Each cell: minimum time as a multiple of one elementwise pass `x * 2` over the same array "
    "(timed in the same rounds), the minimum in ms, and in brackets the bytes XLA's cost "
    "analysis counts as accessed, in multiples of the array's size.",
    "",
    "| shape | dtype | layout | context | jax_lrn | autodiff | no per-sample mean |",
    "|---|---|---|---|---|---|---|",
  ]
  index = {(r["shape"], r["dtype"], r["layout"], r["context"], r["impl"]): r for r in rows}
  seen = []
  for r in rows:
    key = (r["shape"], r["dtype"], r["layout"], r["context"])
    if key in seen:
      continue
    seen.append(key)
    cells = []
    for impl in ("jax_lrn", "autodiff", "no per-sample mean"):
      c = index[(*key, impl)]
      cells.append(f"{c['ratio']:.1f}x ({c['min_s'] * 1e3:.1f} ms) [{c['bytes_ratio']:.1f}]")
    lines.append(f"| {' | '.join(key)} | {' | '.join(cells)} |")
  elems = sorted({(r["shape"], r["dtype"], r["elem"]["min_s"]) for r in rows})
  lines.append("")
  lines += [f"Elementwise pass, {s} {d}: {t * 1e3:.2f} ms." for s, d, t in elems]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny shapes, few rounds")
  parser.add_argument("--rounds", type=int, default=None)
  parser.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults")
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
  parser.add_argument("--shape", default=None, help="only the shapes whose name starts so")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
  args = parser.parse_args(argv)
  if not args.system_malloc:
    restart_with_reused_memory(__file__, sys.argv[1:] if argv is None else argv)
  if args.rounds is None:
    args.rounds = 3 if args.quick else 20
  rows = run(args)
  args.out.mkdir(parents=True, exist_ok=True)
  table = markdown(rows)
  (args.out / "contrast_results.md").write_text(table)
  meta = dict(
    date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    jax=jax.__version__,
    platform=platform.platform(),
    cpus=os.cpu_count(),
    device=str(jax.devices()[0]),
    rounds=args.rounds,
  )
  (args.out / "contrast_results.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
  print(table)


if __name__ == "__main__":
  main()
