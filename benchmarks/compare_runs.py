"""How far two runs of ``bench_lrn.py`` agree: per timed row, the two minimum times and ratios.

    python benchmarks/compare_runs.py runs/a/results.json runs/b/results.json

Prints, for jax_lrn, plain JAX and the other frameworks, the median and the largest relative
difference between the runs, of the minimum milliseconds and of the ratio to the elementwise
pass, and the rows that differ most. A ratio moves less than the milliseconds when both the row
and its elementwise pass saw the same machine.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _key(row):
  return (row["label"], row["impl"], row["context"])


def _spread(a: float, b: float) -> float:
  return abs(a - b) / min(a, b)


def compare(first: dict, second: dict, worst: int = 8) -> str:
  rows_a = {_key(r): r for r in first["rows"] if "ratio" in r}
  rows_b = {_key(r): r for r in second["rows"] if "ratio" in r}
  common = [k for k in rows_a if k in rows_b]
  lines = [f"{len(common)} rows in both runs"]
  for impl in dict.fromkeys(k[1] for k in common):
    keys = [k for k in common if k[1] == impl]
    ms = [_spread(rows_a[k]["min_s"], rows_b[k]["min_s"]) for k in keys]
    ratio = [_spread(rows_a[k]["ratio"], rows_b[k]["ratio"]) for k in keys]
    lines.append(
      f"{impl:12s} {len(keys):3d} rows: ms differ by median {100 * np.median(ms):.1f} %, "
      f"max {100 * max(ms):.1f} %; ratios by median {100 * np.median(ratio):.1f} %, "
      f"max {100 * max(ratio):.1f} %"
    )
  lines.append(f"the {worst} rows whose ratios differ most:")
  order = sorted(common, key=lambda k: -_spread(rows_a[k]["ratio"], rows_b[k]["ratio"]))
  for k in order[:worst]:
    a, b = rows_a[k], rows_b[k]
    lines.append(
      f"  {k[0]} | {k[1]} | {k[2]}: {a['ratio']:.2f}x / {b['ratio']:.2f}x, "
      f"{a['min_s'] * 1e3:.1f} / {b['min_s'] * 1e3:.1f} ms"
    )
  train_a, train_b = first.get("train_step"), second.get("train_step")
  if train_a and train_b:
    for ra, rb in zip(train_a["rows"], train_b["rows"]):
      lines.append(
        f"training step, {ra['variant']}: {ra['min_s'] * 1e3:.1f} / {rb['min_s'] * 1e3:.1f} ms, "
        f"added {ra['added_percent']:+.1f} / {rb['added_percent']:+.1f} %"
      )
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("first", help="results.json of one run")
  parser.add_argument("second", help="results.json of another run")
  parser.add_argument("--worst", type=int, default=8, help="how many rows to list")
  args = parser.parse_args(argv)
  with open(args.first) as f:
    first = json.load(f)
  with open(args.second) as f:
    second = json.load(f)
  print(compare(first, second, args.worst))


if __name__ == "__main__":
  main()
