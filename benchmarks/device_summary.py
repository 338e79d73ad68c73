"""Summarises ``device_check.py`` runs: each window implementation against ``reduce_window``.

For every (mode, pass) it prints the geometric mean, minimum and maximum over all timed rows of
``median ms of the implementation / median ms of reduce_window`` measured in the same rounds,
pooled over the runs given, and the spread of each jax_lrn row's median between two runs:

    python benchmarks/device_summary.py benchmarks/results/h200/run1.json.gz \\
        benchmarks/results/h200/run2.json.gz

This is how the CUDA branch of ``implementation=None`` was chosen (docs/performance.md, GPU).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import statistics
from pathlib import Path

IMPLEMENTATIONS = ("shifted", "shifted_squares", "matmul", "plain")
PASSES = ("fwd", "dx", "y+dx")


def load(path: Path) -> dict:
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rt") as f:
    return json.load(f)


def medians(run: dict) -> dict[tuple, float]:
  """``{(shape, layout, window, dtype, impl, pass): median ms}`` of the rows timed ok."""
  out = {}
  for group in run["groups"]:
    for row in group.get("rows", []):
      if row.get("status") == "ok":
        key = (row["shape"], row["layout"], row["window"], row["dtype"])
        out[(*key, row["impl"], row["pass_name"])] = row["ms"]
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", type=Path, help="device_check.py --json files")
  args = parser.parse_args()
  runs = [medians(load(path)) for path in args.runs]
  ratios = collections.defaultdict(list)
  for run in runs:
    for (shape, layout, window, dtype, impl, pass_name), ms in run.items():
      base = run.get((shape, layout, window, dtype, "reduce_window", pass_name))
      if impl in IMPLEMENTATIONS and base:
        mode = window.split()[0]  # "across" or "within"
        ratios[(mode, pass_name, impl)].append(ms / base)
  print("| mode | pass | " + " | ".join(IMPLEMENTATIONS) + " |")
  print("|---|---|" + "---:|" * len(IMPLEMENTATIONS))
  for mode in ("across", "within"):
    for pass_name in PASSES:
      cells = []
      for impl in IMPLEMENTATIONS:
        r = ratios.get((mode, pass_name, impl))
        if not r:
          cells.append("—")
          continue
        mean = math.exp(statistics.fmean(math.log(v) for v in r))
        cells.append(f"{mean:.2f} ({min(r):.2f}–{max(r):.2f}, n={len(r)})")
      print(f"| {mode} | {pass_name} | " + " | ".join(cells) + " |")
  if len(runs) >= 2:
    first, second = runs[0], runs[1]
    common = [k for k in first if k in second and k[4] != "plain" and k[4] != "torch"]
    spread = [abs(first[k] - second[k]) / min(first[k], second[k]) for k in common]
    if spread:
      print(
        f"\nspread of jax_lrn medians between the first two runs over {len(spread)} rows: "
        f"median {statistics.median(spread):.1%}, max {max(spread):.1%}"
      )


if __name__ == "__main__":
  main()
