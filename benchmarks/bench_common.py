"""Helpers shared by the benchmark scripts and the per-framework subprocesses (NumPy only): the
float64 references, how rounds are interleaved and timed, statistics, Markdown tables.

LRN here is the across-channels / within-channel formula of ``jax_lrn.lrn``, written from the
formula (nothing of jax_lrn is used), with ``alpha`` divided by the window count ``n`` and the
window of element ``i`` spanning ``[i - lo, i + hi]`` along each window axis:

    s = k + alpha / n * sum_W x^2,   y = x * s^-beta,
    dx = g * s^-beta - 2 beta alpha / n * x * sum_W'(g * y / s)

where ``W'`` is the mirrored window ``[j - hi, j + lo]`` (the same as ``W`` for odd sizes).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Hashable, Sequence

import numpy as np


def window_extent(size: int, even_placement: str) -> tuple[int, int]:
  """``(lo, hi)``: the window of element i is ``[i - lo, i + hi]`` (as documented by lrn)."""
  if even_placement == "before":
    return size // 2, (size - 1) // 2
  return (size - 1) // 2, size // 2


def window_sum(v: np.ndarray, axes: Sequence[int], lo: int, hi: int) -> np.ndarray:
  """``sum_{d=-lo}^{hi} v[i + d]`` along each of ``axes`` in turn, zero-padded (float64)."""
  for axis in axes:
    pad = [(0, 0)] * v.ndim
    pad[axis] = (lo, hi)
    padded = np.pad(v, pad)
    extent = v.shape[axis]
    v = sum(np.take(padded, np.arange(d, d + extent), axis=axis) for d in range(lo + hi + 1))
  return v


def reference(x, g, axes, size, alpha, beta, k, *, lo=None, hi=None):
  """``(y, dx)`` in float64 for inputs ``x`` and output cotangent ``g`` (``dx`` is ``None``
  when ``g`` is). ``lo``/``hi`` default to the centred window of an odd ``size``."""
  if lo is None or hi is None:
    lo = hi = size // 2
  x = np.asarray(x, np.float64)
  n = size ** len(axes)
  s = k + alpha / n * window_sum(x * x, axes, lo, hi)
  p = s**-beta
  y = x * p
  if g is None:
    return y, None
  g = np.asarray(g, np.float64)
  dx = g * p - 2.0 * beta * alpha / n * x * window_sum(g * y / s, axes, hi, lo)
  return y, dx


def stats(times) -> dict:
  """Minimum, median and maximum of a list of seconds."""
  t = np.asarray(times)
  return dict(min_s=float(t.min()), median_s=float(np.median(t)), max_s=float(t.max()))


def relative_error(got, want) -> float:
  """``max |got - want| / max |want|`` in float64."""
  got = np.asarray(got, np.float64)
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def interleaved(
  names: Sequence[Hashable],
  sample: Callable[[Hashable, int], float],
  rounds: int,
  warmup: int,
  baseline: Hashable | None = None,
  every: int = 1,
) -> dict[Hashable, list[float]]:
  """``sample(name, round)`` (seconds) of each name once per round, in turn, so that all of
  them see the same machine load, after ``warmup`` rounds that are not kept.

  ``baseline``, a name not in ``names``, is sampled too, before every ``every``-th of the others
  (with ``every=1`` it gets as many samples, spread over the same moments, as all of them
  together; with no others, once a round). Returns the samples per name, the baseline's too.
  """
  times: dict[Hashable, list[float]] = {name: [] for name in names}
  if baseline is not None:
    times[baseline] = []
  for r in range(warmup + rounds):
    for i, name in enumerate(names or [None]):
      for who in ([baseline] if baseline is not None and i % every == 0 else []) + [name]:
        if who is not None:
          took = sample(who, r)
          if r >= warmup:
            times[who].append(took)
  return times


def seconds(fn: Callable[[], object]) -> float:
  """Wall seconds of one call of ``fn`` (which must block until its result is ready)."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def time_interleaved(
  fns: dict[str, Callable[[], object]], repeats: int, warmup: int, baseline: str | None = None
) -> dict[str, list[float]]:
  """Runs every function once per round (so all of them see the same machine load).

  With ``baseline`` (a key of ``fns``) that function runs right before every other one, so
  the denominator of the ratios gets as many samples, spread over the same moments, as all
  the numerators together. Each function must block until its result is ready. Returns
  seconds per call, per function.
  """
  others = [name for name in fns if name != baseline]
  times = interleaved(others, lambda name, _: seconds(fns[name]), repeats, warmup, baseline)
  return {str(name): samples for name, samples in times.items()}


def markdown_table(
  head: Sequence[str], rows: Sequence[Sequence[str]], aligns: str, narrow: bool = False
) -> list[str]:
  """The lines of a Markdown table; ``aligns`` has one letter per column, ``l`` or ``r``;
  ``narrow``: no spaces around the bars (for a table that must fit in a short tail of output)."""
  sep = "|" if narrow else " | "
  ends = ("|", "|") if narrow else ("| ", " |")
  right = "--:|" if narrow else "---:|"
  rule = "|" + "".join("---|" if a == "l" else right for a in aligns)
  return [ends[0] + sep.join(head) + ends[1], rule] + [
    ends[0] + sep.join(cells) + ends[1] for cells in rows
  ]


def random_arrays(shape, seed: int = 0, scale: float = 10.0):
  """``(x, g)`` as float32 NumPy arrays; ``x`` like post-ReLU conv activations."""
  rng = np.random.default_rng(seed)
  x = np.abs(rng.normal(0.0, scale, size=shape)).astype(np.float32)
  g = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
  return x, g


def gaussian_window_sum(v: np.ndarray, axes: Sequence[int], size: int, sigma: float) -> np.ndarray:
  """``sum_d g_d v[i + d]`` along each of ``axes`` (zero-padded, float64), ``g`` the Gaussian
  ``exp(-d^2 / (2 sigma^2))`` for ``d`` in ``[-(size // 2), (size - 1) // 2]``, summing to 1."""
  lo, hi = size // 2, (size - 1) // 2
  d = np.arange(-lo, hi + 1)
  g = np.exp(-(d * d) / (2.0 * sigma * sigma))
  g = g / g.sum()
  for axis in axes:
    pad = [(0, 0)] * v.ndim
    pad[axis] = (lo, hi)
    padded = np.pad(v, pad)
    extent = v.shape[axis]
    v = sum(w * np.take(padded, np.arange(j, j + extent), axis=axis) for j, w in enumerate(g))
  return v


def contrast_reference(x, channel_axis: int, spatial_axes, size: int, sigma: float, eps: float):
  """Local contrast normalization (Jarrett 2009) in float64, from the formula: a Gaussian window
  over ``spatial_axes``, uniform over channels, means renormalised by the window's mass inside
  the array, ``y = v / max(sigma_local, mean over the sample of sigma_local, eps)``."""
  x = np.asarray(x, np.float64)
  ones = np.ones([1 if a == channel_axis else n for a, n in enumerate(x.shape)])
  mass = gaussian_window_sum(ones, spatial_axes, size, sigma)

  def local_mean(field):
    return (
      gaussian_window_sum(field.mean(axis=channel_axis, keepdims=True), spatial_axes, size, sigma)
      / mass
    )

  v = x - local_mean(x)
  local = np.sqrt(local_mean(v * v))
  c = local.mean(axis=tuple(spatial_axes), keepdims=True)
  return v / np.maximum(np.maximum(local, c), eps)


def gdn_reference(x, g, beta, gamma) -> dict:
  """Classic GDN (``alpha=2, epsilon=0.5``, channels last) in float64, from the formula:

      P = x**2 @ gamma + beta,   y = x / sqrt(P),
      t = -g * y / (2 P),   dx = g / sqrt(P) + 2 x (t @ gamma.T),
      dbeta = sum t,   dgamma = (x**2)^T t   (sums over every position)

  Returns ``{"y", "dx", "dbeta", "dgamma"}``.
  """
  x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
  beta, gamma = np.asarray(beta, np.float64), np.asarray(gamma, np.float64)
  channels = x.shape[-1]
  f = x * x
  pool = f @ gamma + beta
  y = x / np.sqrt(pool)
  t = -g * y / (2.0 * pool)
  dx = g / np.sqrt(pool) + 2.0 * x * (t @ gamma.T)
  return dict(
    y=y,
    dx=dx,
    dbeta=t.reshape(-1, channels).sum(axis=0),
    dgamma=f.reshape(-1, channels).T @ t.reshape(-1, channels),
  )


# glibc returns every allocation over 32 MB to the system when it is freed, so that each call
# writing a fresh output of that size page-faults it in again; with this tunable freed memory is
# reused and timings show the computation (see bench_lrn.py).
MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"


def restart_with_reused_memory(script: str, argv) -> None:
  """Re-executes ``script`` with ``MALLOC_TUNABLE`` added to ``GLIBC_TUNABLES`` (glibc only)."""
  if platform.libc_ver()[0] != "glibc" or MALLOC_TUNABLE in os.environ.get("GLIBC_TUNABLES", ""):
    return
  tunables = ":".join(t for t in (os.environ.get("GLIBC_TUNABLES"), MALLOC_TUNABLE) if t)
  sys.stdout.flush()
  os.execve(
    sys.executable, [sys.executable, script, *argv], dict(os.environ, GLIBC_TUNABLES=tunables)
  )
