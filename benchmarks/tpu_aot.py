"""What LRN costs on TPU by XLA:TPU's own estimate, compiled ahead of time without a TPU.

``pip install -e ".[tpu]"`` brings libtpu, and ``jax.experimental.topologies`` describes TPU
devices that programs compile for on any host (``JAX_PLATFORMS=cpu`` keeps everything else on
the CPU). Every program here is compiled for one chip of each generation (v4, v5e, v5p, v6e) and
read back: ``cost_analysis()``'s ``bytes accessed`` (LRN on a TPU is bound by HBM traffic, so
bytes are its time to first order) and ``optimal_seconds`` (the compiler's own time estimate),
each as a ratio to the elementwise pass ``x * 2`` over the same array compiled the same way,
and the fusions of the optimized HLO. These are compiler estimates, not timings.

    python benchmarks/tpu_aot.py --out tpu_results          # v4, v5e, v5p, v6e; ~15 min, 2 cores
    python benchmarks/tpu_aot.py --quick --out /tmp/tpu     # v5e, across 5 and within 3x3

Rows: jax_lrn (``implementation=None``, the TPU's choice), ``pallas`` (the opt-in Pallas TPU
kernels, ``implementation="pallas"``), plain autodiff (bench_jax.py's ``plain_lrn``: one
``reduce_window`` and ``** -beta``), with ``--implementations all`` each explicit XLA
``implementation``, and with ``--peers`` the other JAX libraries' LRNs (across channels;
``benchmarks/peers/``). XLA counts nothing for a Mosaic kernel: a ``pallas`` row is the bytes the
kernels' DMAs move by construction (their ``CostEstimate``: every block copied, halos and tile
padding included) plus XLA's estimate for whatever surrounds them, not a compiler estimate of
the kernels; contexts as in bench_lrn.py (forward; ``jax.grad`` dx only;
``jax.vjp`` y and dx) plus its AlexNet training step (``jax.grad`` with respect to the conv
kernel, float32 NHWC), whose bytes are given as a ratio to the step without normalization.
Writes ``tpu.md`` and ``tpu.json`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

# Before jax is imported: compile for TPU, run nothing; and let other processes load libtpu too
# (by default the first one to load it locks every other one out).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import markdown_table  # noqa: E402
from bench_jax import CONTEXTS, PEERS, batch_norm, block_loss, in_context, lrn_function  # noqa: E402
from bench_lrn import ALPHA, LAYOUTS, MODES, SHAPES, TRAIN_BATCH, K, variant  # noqa: E402

import jax_lrn  # noqa: E402
from jax_lrn._window import IMPLEMENTATIONS  # noqa: E402

GENERATIONS = {"v4": "v4:2x2x1", "v5e": "v5e:2x2", "v5p": "v5p:2x2x1", "v6e": "v6e:2x2"}
DTYPES = ("float32", "bfloat16")
QUICK_MODES = ("across 5", "within 3x3")
# The targets of the TPU lowering: bytes as a multiple of the elementwise pass's.
TARGETS = {"forward": 1.5, "dx only": 4.5, "y and dx": 5.0}

_DEVICES: dict[str, jax.Device] = {}


def tpu_device(generation: str) -> jax.Device:
  """One chip of ``generation`` (a key of ``GENERATIONS``), for compiling only."""
  if generation not in _DEVICES:
    from jax.experimental import topologies

    topology = topologies.get_topology_desc(topology_name=GENERATIONS[generation], platform="tpu")
    _DEVICES[generation] = topology.devices[0]
  return _DEVICES[generation]


def libtpu_available() -> bool:
  """Whether TPU programs can be compiled here (libtpu is installed)."""
  try:
    tpu_device("v5e")
  except Exception:  # noqa: BLE001 - any failure means no TPU compiler
    return False
  return True


def compile_for(f, specs, generation: str):
  """``f`` compiled for one chip of ``generation``; ``specs``: ``(shape, dtype)`` per argument."""
  sharding = jax.sharding.SingleDeviceSharding(tpu_device(generation))
  args = [jax.ShapeDtypeStruct(shape, dtype, sharding=sharding) for shape, dtype in specs]
  return jax.jit(f).trace(*args).lower(lowering_platforms=("tpu",)).compile()


def cost(f, specs, generation: str) -> dict:
  """``bytes`` and ``optimal_seconds`` of ``f`` compiled for ``generation``, and its fusions."""
  compiled = compile_for(f, specs, generation)
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  seconds = float(analysis.get("optimal_seconds", -1.0))
  return {
    "bytes": float(analysis["bytes accessed"]),
    # Negative where the compiler has no estimate (seen for some float32 reduce_window programs).
    "optimal_seconds": seconds if seconds > 0 else float("nan"),
    "fusions": fusions(compiled.as_text()),
  }


def fusions(hlo_text: str) -> str:
  """The entry computation's work, in order: each fusion as its kind and the window work
  inside it (``loop fusion (4 pad)``: four shifted reads), every other op by name (``copy``,
  ``reduce-window``); parameters, constants, tuples and bitcasts left out."""
  ops: dict[str, list[str]] = {}  # fused computation: its ops, nested fusions included
  computation = None
  for line in hlo_text.splitlines():
    header = re.match(r"^%([\w.\-]+) .*\{$", line)
    if header:
      computation = header.group(1)
      ops[computation] = []
    op = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = .*? ([\w\-]+)\(", line)
    if op and computation:
      called = re.search(r"calls=%([\w.\-]+)", line)
      ops[computation] += ops.get(called.group(1), []) if called else [op.group(1)]
  entry = hlo_text[hlo_text.index("\nENTRY") :]
  work = []
  for line in entry.splitlines()[1:]:
    match = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = .*? ([\w\-]+)\((.*)", line)
    if not match:
      continue
    op = match.group(1)
    if op in ("parameter", "constant", "tuple", "get-tuple-element", "bitcast"):
      continue
    if op.endswith("-done"):
      continue
    if op == "fusion":
      kind = re.search(r"kind=k(\w+)", line)
      called = re.search(r"calls=%([\w.\-]+)", line)
      inside = ops.get(called.group(1), []) if called else []
      notable = [
        f"{inside.count(name)} {name}"
        for name in ("pad", "slice", "reduce-window", "convolution", "dot")
        if name in inside
      ]
      op = f"{kind.group(1).lower() if kind else '?'} fusion" + (
        f" ({', '.join(notable)})" if notable else ""
      )
    work.append(op.removesuffix("-start"))
  return ", ".join(work)


def lrn_variant(impl: str, layout: str, mode: str):
  """``x -> y``: jax_lrn with ``implementation`` (``"jax_lrn"`` for None), ``"plain"``
  (autodiff) or one of the other libraries' LRNs (``PEERS``)."""
  kind, size = MODES[mode]
  return lrn_function(None if impl == "jax_lrn" else impl, layout, kind, size, ALPHA, 0.75, K)


def lrn_rows(generation: str, shape_name: str, layout: str, mode: str, dtype: str, impls):
  """One row per (implementation, context): bytes and optimal_seconds over the elementwise
  pass's, and the fusions."""
  nhwc = SHAPES[shape_name]
  shape = nhwc if layout == "NHWC" else (nhwc[0], nhwc[3], nhwc[1], nhwc[2])
  base = cost(lambda x: x * 2, [(shape, dtype)], generation)
  rows = []
  for impl in impls:
    if impl in PEERS and MODES[mode][0] != "across_channels":
      continue  # the other libraries' LRNs are across channels only
    forward = lrn_variant(impl, layout, mode)
    for context in CONTEXTS:
      row = dict(generation=generation, shape=shape_name, layout=layout, mode=mode, dtype=dtype)
      row.update(impl=impl, context=context)
      try:
        got = cost(in_context(forward, context), [(shape, dtype)] * 2, generation)
      except Exception as error:  # noqa: BLE001 - a peer that is not differentiable
        if impl not in PEERS:
          raise
        rows.append(dict(row, note=f"not differentiable: {str(error).splitlines()[0]}"))
        continue
      rows.append(
        {
          **row,
          "bytes": got["bytes"],
          "bytes_ratio": got["bytes"] / base["bytes"],
          "optimal_seconds": got["optimal_seconds"],
          "seconds_ratio": got["optimal_seconds"] / base["optimal_seconds"],
          "fusions": got["fusions"],
        }
      )
  return rows


def training_rows(generation: str) -> list[dict]:
  """bench_lrn.py's AlexNet block (conv 11x11/4, ReLU, norm, max-pool; gradient with respect
  to the kernel), float32: bytes with each normalization over the step without one."""
  batch = TRAIN_BATCH
  specs = [((11, 11, 3, 96), "float32"), ((batch, 227, 227, 3), "float32")]
  readout = jnp.zeros((batch, 27, 27, 96), jnp.float32)
  norms = {
    "jax_lrn": variant("jax_lrn", "NHWC", "across 5"),
    "plain": variant("plain JAX", "NHWC", "across 5"),
    "BatchNorm": batch_norm,
    "none": lambda h: h,
  }
  got = {
    name: cost(jax.grad(lambda k, x, norm=norm: block_loss(k, x, readout, norm)), specs, generation)
    for name, norm in norms.items()
  }
  return [
    {
      "generation": generation,
      "impl": name,
      "context": "training step",
      "bytes": value["bytes"],
      "bytes_ratio": value["bytes"] / got["none"]["bytes"],
      "seconds_ratio": value["optimal_seconds"] / got["none"]["optimal_seconds"],
      "fusions": value["fusions"],
    }
    for name, value in got.items()
  ]


def cell(row: dict | None) -> str:
  if row is None:
    return "—"
  if "bytes_ratio" not in row:
    return "not differentiable"
  seconds = row["seconds_ratio"]
  return f"{row['bytes_ratio']:.1f}x ({'—' if seconds != seconds else f'{seconds:.1f}x'})"


def markdown(rows: list[dict], impls, generations) -> str:
  """Per (generation, shape, layout, window, dtype, context): bytes over the elementwise pass's
  and, in brackets, optimal_seconds over its; one column per implementation."""
  index = {
    (r["generation"], r["shape"], r["layout"], r["mode"], r["dtype"], r["context"], r["impl"]): r
    for r in rows
    if r["context"] != "training step"
  }
  keys = sorted(
    {k[:6] for k in index},
    key=lambda k: (
      list(generations).index(k[0]),
      list(SHAPES).index(k[1]),
      LAYOUTS.index(k[2]),
      list(MODES).index(k[3]),
      DTYPES.index(k[4]),
      CONTEXTS.index(k[5]),
    ),
  )
  lines = [
    "Bytes accessed by XLA:TPU's estimate as a multiple of the elementwise pass `x * 2` over "
    "the same array (in brackets: `optimal_seconds` over its). Compiler estimates, not timings. "
    "`pallas`: the Pallas kernels' DMA bytes by construction (their `CostEstimate`) plus XLA's "
    "estimate for the rest of the program; its seconds are XLA's, from those bytes.",
    "",
  ]
  head = ["TPU", "shape", "layout", "window", "dtype", "context", *impls]
  table = [[*key, *(cell(index.get((*key, impl))) for impl in impls)] for key in keys]
  lines += markdown_table(head, table, "l" * 6 + "r" * len(impls))
  train = [r for r in rows if r["context"] == "training step"]
  if train:
    lines += [
      "",
      f"AlexNet block (conv1 11x11/4, ReLU, norm, max-pool; gradient with respect to the kernel; "
      f"batch {TRAIN_BATCH}, float32 NHWC): bytes over the step without normalization "
      "(optimal_seconds over its).",
      "",
    ]
    head = ["TPU", *(r["impl"] for r in train if r["generation"] == train[0]["generation"])]
    table = [
      [generation, *(cell(r) for r in train if r["generation"] == generation)]
      for generation in generations
      if any(r["generation"] == generation for r in train)
    ]
    lines += markdown_table(head, table, "l" + "r" * (len(head) - 1))
  chosen = [r for r in rows if r["impl"] == "jax_lrn" and r["context"] != "training step"]
  if chosen:
    lines += ["", "Fusions of jax_lrn's programs (the entry computation, in order):", ""]
    seen = set()
    for r in chosen:
      key = (r["mode"], r["dtype"], r["context"], r["fusions"])
      if key in seen:
        continue
      seen.add(key)
      lines.append(f"- {r['generation']} {r['mode']} {r['dtype']} {r['context']}: {r['fusions']}")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=Path, default=Path("tpu_results"))
  parser.add_argument("--quick", action="store_true", help="v5e, float32 and bfloat16, 2 windows")
  parser.add_argument("--generations", default=None, help="comma-separated, e.g. v5e,v6e")
  parser.add_argument("--shapes", choices=("first", "all"), default="first")
  parser.add_argument("--layouts", default=",".join(LAYOUTS), help="e.g. NHWC")
  parser.add_argument(
    "--implementations",
    choices=("default", "all"),
    default="default",
    help="default: jax_lrn's choice and plain autodiff; all: also every explicit implementation",
  )
  parser.add_argument(
    "--peers", action="store_true", help="also the other JAX libraries' LRNs (across channels)"
  )
  parser.add_argument("--modes", default=None, help="comma-separated windows, e.g. 'across 5'")
  parser.add_argument("--no-training", action="store_true", help="skip the training step")
  parser.add_argument("--no-pallas", action="store_true", help="skip the Pallas kernels' rows")
  args = parser.parse_args(argv)
  if not libtpu_available():
    print("libtpu is not installed: pip install -e '.[tpu]'", file=sys.stderr)
    return 2
  generations = (args.generations or ("v5e" if args.quick else ",".join(GENERATIONS))).split(",")
  shapes = list(SHAPES)[:1] if args.shapes == "first" or args.quick else list(SHAPES)
  modes = QUICK_MODES if args.quick else tuple(MODES)
  impls = ["jax_lrn", "pallas", "plain"]
  if args.implementations == "all":
    impls[1:1] = IMPLEMENTATIONS
  impls += list(PEERS) if args.peers else []
  if args.no_pallas:
    impls.remove("pallas")
  if args.modes:
    modes = tuple(args.modes.split(","))
  args.out.mkdir(parents=True, exist_ok=True)
  rows: list[dict] = []
  for generation in generations:
    for shape_name in shapes:
      for layout in ("NHWC",) if args.quick else args.layouts.split(","):
        for mode in modes:
          for dtype in DTYPES:
            got = lrn_rows(generation, shape_name, layout, mode, dtype, impls)
            rows += got
            summary = ", ".join(
              f"{r['impl']} {r['context']} {r['bytes_ratio']:.2f}x" for r in got if "bytes" in r
            )
            print(f"{generation} {shape_name} {layout} {mode} {dtype}: {summary}", file=sys.stderr)
            write(args.out, rows, impls, generations)  # what is done so far
    if not args.no_training and not args.quick:
      rows += training_rows(generation)
  table = write(args.out, rows, impls, generations)
  print(table)
  return 0


def write(out: Path, rows: list[dict], impls, generations) -> str:
  """Writes ``tpu.md`` and ``tpu.json`` to ``out``; returns the table."""
  table = markdown(rows, impls, generations)
  (out / "tpu.md").write_text(table)
  meta = {
    "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "jax": jax.__version__,
    "libtpu": _libtpu_version(),
    "jax_lrn": jax_lrn.__version__,
    "topologies": {g: GENERATIONS[g] for g in generations},
    "targets_bytes_ratio": TARGETS,
  }
  payload = {"meta": meta, "rows": rows}
  (out / "tpu.json").write_text(json.dumps(payload, indent=1))
  return table


def _libtpu_version() -> str:
  from importlib import metadata

  try:
    return metadata.version("libtpu")
  except metadata.PackageNotFoundError:
    return "?"


if __name__ == "__main__":
  sys.exit(main())
