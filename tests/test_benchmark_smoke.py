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
  payload = json.loads((tmp_path / "results.json").read_text())
  jax_rows = [r for r in payload["rows"] if r["impl"] in ("jax_lrn", "plain JAX")]
  # 2 layouts x 2 windows x 2 dtypes x 3 contexts, for jax_lrn and plain JAX.
  assert len(jax_rows) == 48
  assert {r["context"] for r in jax_rows} == {"forward", "dx only", "y and dx"}
  for row in jax_rows:
    assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"]
    assert row["ratio"] == row["min_s"] / row["elem"]["min_s"]
    assert row["compile_s"] > 0 and row["temp_bytes"] >= 0
  for row in (r for r in jax_rows if r["impl"] == "jax_lrn"):
    assert row["error"] <= {"float32": 1e-4, "bfloat16": 2.0**-6}[row["config"]["dtype"]]
    if row["context"] == "y and dx":
      # x in its own dtype is the only array the backward keeps; three float32 scalars.
      x_bytes = 27 * 27 * 256 * {"float32": 4, "bfloat16": 2}[row["config"]["dtype"]]
      assert row["residual_bytes"] == x_bytes + 12
  train = {r["variant"]: r for r in payload["train_step"]["rows"]}
  assert set(train) == {"jax_lrn", "plain JAX LRN", "BatchNorm", "no normalization"}
  assert train["no normalization"]["added_percent"] == 0.0
  assert "| variant | ms (min) |" in table
