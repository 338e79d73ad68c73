"""The benchmark's --quick mode runs end to end and writes its outputs (no timing assertions)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_quick_writes_table_and_json(tmp_path):
  proc = subprocess.run(
    [sys.executable, str(ROOT / "benchmarks" / "bench_lrn.py"), "--quick", "--out", str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "results.md").read_text()
  assert "| shape | layout | window | dtype |" in table
  assert table in proc.stdout  # the table is also printed
  rows = json.loads((tmp_path / "results.json").read_text())["rows"]
  jax_rows = [r for r in rows if r["impl"] in ("jax_lrn", "plain JAX")]
  # 2 layouts x 2 windows x 2 dtypes x 2 passes, for jax_lrn and plain JAX.
  assert len(jax_rows) == 32
  for row in jax_rows:
    assert row["ratio"] > 0 and row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    assert row["compile_s"] > 0 and row["temp_bytes"] >= 0
  for row in (r for r in jax_rows if r["impl"] == "jax_lrn"):
    assert row["error"] <= {"float32": 1e-4, "bfloat16": 2.0**-6}[row["config"]["dtype"]]
    if row["pass_name"] == "forward+backward":
      x_bytes = 27 * 27 * 256 * {"float32": 4, "bfloat16": 2}[row["config"]["dtype"]]
      # x in its own dtype plus one float32 array of its size; scalars: alpha, beta, k (float32)
      # and, for bfloat16, the two power-of-two factors of its range rescaling.
      scalars = 12 + (4 if row["config"]["dtype"] == "bfloat16" else 0)
      assert row["residual_bytes"] <= x_bytes + 27 * 27 * 256 * 4 + scalars
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    return
  assert (tmp_path / "results.png").stat().st_size > 0
