"""Benchmark of ``jax_lrn.gdn`` (classic GDN, ``alpha=2, epsilon=0.5``, NHWC) against plain JAX
autodiff, a ``custom_vjp`` variant, tensorflow_compression's ``GDN`` and CompressAI's ``GDN``,
with the elementwise pass and the channel matrix product alone as floors.

    python benchmarks/bench_gdn.py --quick                       # seconds-long smoke run
    python benchmarks/bench_gdn.py --tfc-python VENV/bin/python --compressai-python VENV/bin/python

Activation: a bls2017-sized ``(8, 128, 128, C)`` float32 array (larger than the CPU's caches),
``C`` in {128, 192, 320}. Contexts, each compiled and timed on its own: ``forward``;
``dx only`` (``jax.grad`` of ``sum(y * g)`` with respect to ``x``); ``vjp`` (``jax.vjp`` with
respect to ``x``, ``beta`` and ``gamma``: the output and all three cotangents, as a training
step of a learned GDN needs).

JAX variants: ``jax_lrn`` (``jax_lrn.gdn``: a ``custom_vjp`` keeping only the inputs, its
products over the unflattened positions); ``plain JAX`` (the formula
``x / sqrt(x**2 @ gamma + beta)`` written out, plain autodiff, which keeps the intermediate
arrays); ``custom_vjp`` (the same forward with a hand-written backward that keeps only ``x``,
recomputes the pool and flattens the positions into one axis for ``gamma``'s cotangent: fast
on one device, but the reshape breaks spatial sharding). For each the script checks ``y``
and the cotangents on the first batch element against a float64 NumPy reference, then reports
compile-time facts (``cost_analysis`` bytes accessed and flops, ``memory_analysis`` temporary
bytes, the residual bytes ``jax.vjp`` keeps), then times all of one ``C`` in interleaved rounds
with the floors: ``x * 2`` over the same array (the elementwise pass) and ``x @ gamma`` alone.
Ratios are minimum over minimum.

The references run in their own processes (``--tfc-python``, ``--compressai-python``: a Python
with that framework installed; this script runs there with ``--worker``, importing NumPy and the
framework only): ``tfc.GDN(alpha_parameter=2, epsilon_parameter=0.5)`` with fixed parameters
(TF 2.14, eager), and CompressAI 1.2.8's ``GDN`` (loaded from its files as in
``tools/make_gdn_fixtures.py``; NCHW, its only layout; PyTorch CPU). Each worker times its
framework's elementwise pass and matrix product in the same rounds and reports ratios to them.

Writes ``results_gdn.md`` and ``results_gdn.json`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))

from bench_common import (  # noqa: E402
  gdn_reference,
  relative_error,
  restart_with_reused_memory,
  stats,
  time_interleaved,
)

CHANNELS = (128, 192, 320)
CONTEXTS = ("forward", "dx only", "vjp")


def arrays(shape, seed=0):
  """``x`` (normal, scale 1: the pool's x**2 term matters), ``g``, and GDN parameters as
  after training (beta in [0.5, 1.5], gamma in [0, 0.02] with 0.1 on the diagonal)."""
  rng = np.random.default_rng(seed)
  channels = shape[-1]
  x = rng.normal(size=shape).astype(np.float32)
  g = rng.normal(size=shape).astype(np.float32)
  beta = rng.uniform(0.5, 1.5, size=channels).astype(np.float32)
  gamma = (rng.uniform(0.0, 0.02, size=(channels, channels)) + 0.1 * np.eye(channels)).astype(
    np.float32
  )
  return x, g, beta, gamma


# ---------------------------------------------------------------------------------------------
# Framework workers (run with the framework's Python; no JAX there).
# ---------------------------------------------------------------------------------------------


def worker_tfc(shape):
  from importlib.metadata import version

  import tensorflow as tf
  import tensorflow_compression as tfc

  x_np, g_np, beta_np, gamma_np = arrays(shape)
  x, g = tf.constant(x_np), tf.constant(g_np)
  beta, gamma = tf.constant(beta_np), tf.constant(gamma_np)
  layer = tfc.GDN(
    alpha_parameter=2.0, epsilon_parameter=0.5, beta_parameter=beta, gamma_parameter=gamma
  )

  def forward():
    return layer(x).numpy()

  def grads(wrt):
    with tf.GradientTape() as tape:
      tape.watch(wrt)
      loss = tf.reduce_sum(layer(x) * g)
    return tape.gradient(loss, wrt)

  def dx_only():
    return grads([x])[0].numpy()

  def vjp():
    with tf.GradientTape() as tape:
      tape.watch([x, beta, gamma])
      y = layer(x)
      loss = tf.reduce_sum(y * g)
    return [y.numpy()] + [t.numpy() for t in tape.gradient(loss, [x, beta, gamma])]

  def elementwise():
    return (x * 2.0).numpy()

  flat = tf.reshape(x, (-1, shape[-1]))

  def matmul():
    return tf.linalg.matmul(flat, gamma).numpy()

  versions = (
    f"tensorflow-compression {version('tensorflow-compression')}, tensorflow {tf.__version__}"
  )
  fns = dict(forward=forward, dx_only=dx_only, vjp=vjp, elementwise=elementwise, matmul=matmul)
  return versions, fns, lambda a: a


def worker_compressai(shape):
  from importlib.metadata import version

  import torch
  from make_gdn_fixtures import load_compressai_gdn

  gdn_module, _ = load_compressai_gdn()
  x_np, g_np, beta_np, gamma_np = arrays(shape)
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
  x, g = nchw(x_np), nchw(g_np)
  layer = gdn_module.GDN(shape[-1])
  with torch.no_grad():  # the stored values whose read-out gives beta and gamma[out, in]
    layer.beta.copy_(torch.sqrt(torch.from_numpy(beta_np) + layer.beta_reparam.pedestal))
    layer.gamma.copy_(
      torch.sqrt(torch.from_numpy(gamma_np.T.copy()) + layer.gamma_reparam.pedestal)
    )

  def forward():
    with torch.no_grad():
      return layer(x).numpy()

  def dx_only():
    xr = x.detach().requires_grad_(True)
    (dx,) = torch.autograd.grad((layer(xr) * g).sum(), [xr])
    return dx.numpy()

  def vjp():
    xr = x.detach().requires_grad_(True)
    y = layer(xr)
    grads = torch.autograd.grad((y * g).sum(), [xr, layer.beta, layer.gamma])
    return [y.detach().numpy()] + [t.numpy() for t in grads]

  def elementwise():
    return (x * 2.0).numpy()

  flat = x_np.reshape(-1, shape[-1])
  flat_t, gamma_t = torch.from_numpy(flat), torch.from_numpy(gamma_np)

  def matmul():
    return (flat_t @ gamma_t).numpy()

  versions = f"compressai {version('compressai')}, torch {torch.__version__}"
  fns = dict(forward=forward, dx_only=dx_only, vjp=vjp, elementwise=elementwise, matmul=matmul)
  return versions, fns, lambda a: a.transpose(0, 2, 3, 1)  # NCHW results to NHWC


def run_worker(args):
  shape = tuple(int(s) for s in args.shape.split(","))
  worker = {"tfc": worker_tfc, "compressai": worker_compressai}[args.worker]
  version, fns, to_nhwc = worker(shape)
  x, g, beta, gamma = arrays(shape)
  ref = gdn_reference(x[:1], g[:1], beta, gamma)
  errors = {
    "forward": relative_error(to_nhwc(fns["forward"]())[:1], ref["y"]),
    "dx only": relative_error(to_nhwc(fns["dx_only"]())[:1], ref["dx"]),
  }
  times = time_interleaved(fns, args.repeats, args.warmup)
  times["dx only"] = times.pop("dx_only")
  json.dump(dict(version=version, times=times, errors=errors), sys.stdout)


def framework_rows(name, python, shape, args):
  """Runs this script with ``--worker`` under another Python; rows, or None if it fails."""
  command = [python, __file__, "--worker", name, "--shape", ",".join(map(str, shape))]
  command += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
  env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
  if proc.returncode != 0:
    print(f"{name} worker failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None
  payload = json.loads(proc.stdout)
  times = payload["times"]
  elem, matmul = stats(times["elementwise"]), stats(times["matmul"])
  rows = []
  for context in CONTEXTS:
    row = dict(
      impl=name,
      version=payload["version"],
      C=shape[-1],
      context=context,
      **stats(times[context]),
      elem=elem,
      matmul=matmul,
      error=payload["errors"].get(context),
    )
    row["ratio_elem"] = row["min_s"] / elem["min_s"]
    row["ratio_matmul"] = row["min_s"] / matmul["min_s"]
    rows.append(row)
  return rows


# ---------------------------------------------------------------------------------------------
# JAX variants (main process).
# ---------------------------------------------------------------------------------------------


def jax_variants(whole: bool = False):
  import jax
  import jax.numpy as jnp

  import jax_lrn
  import jax_lrn._gdn

  def plain(x, beta, gamma):
    return x / jnp.sqrt((x * x) @ gamma + beta)

  @jax.custom_vjp
  def recompute(x, beta, gamma):
    return plain(x, beta, gamma)

  def recompute_fwd(x, beta, gamma):
    return plain(x, beta, gamma), (x, beta, gamma)

  def recompute_bwd(res, g):
    x, beta, gamma = res
    channels = x.shape[-1]
    f = x * x
    pool = f @ gamma + beta
    r = jax.lax.rsqrt(pool)
    t = -0.5 * g * x * r / pool  # g_i dy_i / dP_i
    dx = g * r + 2.0 * x * (t @ gamma.T)
    dgamma = f.reshape(-1, channels).T @ t.reshape(-1, channels)
    return dx, jnp.sum(t.reshape(-1, channels), axis=0), dgamma

  recompute.defvjp(recompute_fwd, recompute_bwd)

  def whole_array(x, b, gm):  # traced with CPU blocks too large to split x
    blocks = jax_lrn._gdn.CPU_BLOCK_ELEMENTS
    jax_lrn._gdn.CPU_BLOCK_ELEMENTS = x.size
    try:
      return jax_lrn.gdn(x, b, gm)
    finally:
      jax_lrn._gdn.CPU_BLOCK_ELEMENTS = blocks

  variants = {"jax_lrn": lambda x, b, gm: jax_lrn.gdn(x, b, gm)}
  if whole:
    variants["jax_lrn whole"] = whole_array
  return {**variants, "plain JAX": plain, "custom_vjp": recompute}


def in_context(f, context):
  import jax
  import jax.numpy as jnp

  if context == "forward":
    return lambda x, g, b, gm: f(x, b, gm)
  if context == "dx only":
    return jax.grad(lambda x, g, b, gm: jnp.sum(f(x, b, gm) * g))

  def all_cotangents(x, g, b, gm):
    y, vjp = jax.vjp(f, x, b, gm)
    return (y, *vjp(g))

  return all_cotangents


def residual_bytes(f, x, b, gm) -> int:
  import jax

  vjp = jax.eval_shape(lambda x, b, gm: jax.vjp(f, x, b, gm)[1], x, b, gm)
  return int(sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(vjp)))


def check(out, ref, context) -> float:
  names = {"forward": ("y",), "dx only": ("dx",), "vjp": ("y", "dx")}[context]
  out = out if isinstance(out, tuple) else (out,)
  return max(relative_error(np.asarray(o[:1], np.float64), ref[n]) for o, n in zip(out, names))


def jax_rows(shape, args):
  import jax
  import jax.numpy as jnp

  x_np, g_np, beta_np, gamma_np = arrays(shape)
  x, g, b, gm = (jnp.asarray(a) for a in (x_np, g_np, beta_np, gamma_np))
  ref = gdn_reference(x_np[:1], g_np[:1], beta_np, gamma_np)
  full = None
  rows, fns = [], {}
  for impl, f in jax_variants(args.whole).items():
    for context in args.contexts:
      start = time.perf_counter()
      compiled = jax.jit(in_context(f, context)).lower(x, g, b, gm).compile()
      compile_s = time.perf_counter() - start
      out = compiled(x, g, b, gm)
      error = check(out, ref, context)
      if context == "vjp":  # dbeta, dgamma need every batch element: one float64 check
        if full is None:
          full = gdn_reference(x_np, g_np, beta_np, gamma_np)
        error = max(
          error, relative_error(out[2], full["dbeta"]), relative_error(out[3], full["dgamma"])
        )
      if error > 1e-4:
        raise SystemExit(f"{impl} {context} C={shape[-1]}: relative error {error:.2e}")
      cost = compiled.cost_analysis()
      cost = cost[0] if isinstance(cost, list) else cost
      mem = compiled.memory_analysis()
      rows.append(
        dict(
          impl=impl,
          version=f"jax {jax.__version__}",
          C=shape[-1],
          context=context,
          compile_s=compile_s,
          bytes_accessed=float(cost.get("bytes accessed", 0.0)),
          flops=float(cost.get("flops", 0.0)),
          temp_bytes=None if mem is None else int(mem.temp_size_in_bytes),
          residual_bytes=residual_bytes(f, x, b, gm) if context != "forward" else 0,
          error=error,
        )
      )
      fns[(impl, context)] = lambda c=compiled: jax.block_until_ready(c(x, g, b, gm))
  elem = jax.jit(lambda x: x * 2.0).lower(x).compile()
  matmul = jax.jit(lambda x, gm: x @ gm).lower(x, gm).compile()
  fns[("floor", "elementwise")] = lambda: elem(x).block_until_ready()
  fns[("floor", "matmul")] = lambda: matmul(x, gm).block_until_ready()
  keys = list(fns)
  times = time_interleaved({str(k): fns[k] for k in keys}, args.repeats, args.warmup)
  elem_s = stats(times[str(("floor", "elementwise"))])
  matmul_s = stats(times[str(("floor", "matmul"))])
  for row in rows:
    row.update(stats(times[str((row["impl"], row["context"]))]), elem=elem_s, matmul=matmul_s)
    row["ratio_elem"] = row["min_s"] / elem_s["min_s"]
    row["ratio_matmul"] = row["min_s"] / matmul_s["min_s"]
  return rows


def markdown(rows, meta) -> str:
  lines = [
    f"GDN, {meta['shape_text']} float32 NHWC (CompressAI: NCHW), {meta['machine']}; "
    f"{meta['repeats']} rounds. ms: minimum (median); ratios: minimum over the same process's "
    "elementwise pass `x * 2` and matrix product `x @ gamma` alone.",
    "",
    "| C | context | implementation | ms | / elementwise | / matmul | bytes accessed | "
    "residual bytes | rel. error |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    accessed = f"{row['bytes_accessed'] / 2**20:.0f} MiB" if row.get("bytes_accessed") else ""
    residual = f"{row['residual_bytes'] / 2**20:.0f} MiB" if row.get("residual_bytes") else ""
    error = "" if row.get("error") is None else f"{row['error']:.1e}"
    lines.append(
      f"| {row['C']} | {row['context']} | {row['impl']} | {row['min_s'] * 1e3:.1f} "
      f"({row['median_s'] * 1e3:.1f}) | {row['ratio_elem']:.2f} | {row['ratio_matmul']:.2f} | "
      f"{accessed} | {residual} | {error} |"
    )
  floors = {}
  for row in rows:
    floors.setdefault(
      (row["impl"] if row["impl"] in ("tfc", "compressai") else "jax", row["C"]), row
    )
  lines += ["", "| C | process | elementwise ms | matmul ms |", "|---|---|---|---|"]
  for (process, channels), row in floors.items():
    elem_ms, matmul_ms = row["elem"]["min_s"] * 1e3, row["matmul"]["min_s"] * 1e3
    lines.append(f"| {channels} | {process} | {elem_ms:.2f} | {matmul_ms:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
  parser.add_argument("--out", default="runs/bench_gdn", help="output folder")
  parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--batch", type=int, default=None, help="default 8 (2 with --quick)")
  parser.add_argument("--size", type=int, default=None, help="H = W; default 128 (16 with --quick)")
  parser.add_argument("--channels", default=None, help="comma-separated; default 128,192,320")
  parser.add_argument("--contexts", default=",".join(CONTEXTS))
  parser.add_argument("--tfc-python", default=None, help="a Python with tensorflow-compression")
  parser.add_argument("--compressai-python", default=None, help="a Python with compressai, torch")
  parser.add_argument("--threads", type=int, default=2, help="worker threads (OMP_NUM_THREADS)")
  parser.add_argument("--worker", choices=("tfc", "compressai"), help=argparse.SUPPRESS)
  parser.add_argument("--shape", help=argparse.SUPPRESS)
  parser.add_argument(
    "--whole", action="store_true", help="add jax_lrn without CPU blocks (the whole array at once)"
  )
  parser.add_argument("--system-malloc", action="store_true", help="keep glibc's default")
  args = parser.parse_args(argv)
  if not args.system_malloc and not args.worker:
    restart_with_reused_memory(__file__, sys.argv[1:] if argv is None else argv)
  if args.repeats is None:
    args.repeats = 2 if args.quick else 7
  if args.worker:
    return run_worker(args)
  args.contexts = [c.strip() for c in args.contexts.split(",")]
  batch = args.batch or (2 if args.quick else 8)
  size = args.size or (16 if args.quick else 128)
  channels = (
    [int(c) for c in args.channels.split(",")]
    if args.channels
    else ([16, 32] if args.quick else list(CHANNELS))
  )
  rows = []
  for c in channels:
    shape = (batch, size, size, c)
    rows += jax_rows(shape, args)
    for name, python in (("tfc", args.tfc_python), ("compressai", args.compressai_python)):
      if python:
        rows += framework_rows(name, python, shape, args) or []
  meta = dict(
    shape_text=f"({batch}, {size}, {size}, C)",
    machine=f"{platform.machine()}, {platform.processor() or platform.system()}",
    repeats=args.repeats,
  )
  table = markdown(rows, meta)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "results_gdn.md").write_text(table)
  (out / "results_gdn.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
  print(table)


if __name__ == "__main__":
  main()
