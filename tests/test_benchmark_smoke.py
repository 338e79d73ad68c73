"""The benchmarks' --quick modes run end to end and write their outputs (no timing assertions)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cases import require

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
  # The other JAX libraries' LRNs, across 5 only: 2 layouts x 2 dtypes x 3 contexts each.
  peers = [r for r in payload["rows"] if r["impl"] in ("jaxonnxruntime", "jaxonmodels")]
  assert len(peers) == 24
  for row in peers:
    if row["impl"] == "jaxonnxruntime" and row["context"] != "forward":
      assert row["note"].startswith("not differentiable") and "min_s" not in row
    else:
      assert row["error"] <= {"float32": 1e-4, "bfloat16": 2.0**-6}[row["config"]["dtype"]]
      assert 0 < row["min_s"] <= row["median_s"] and row["ratio"] > 0
  assert "| context | jax_lrn | plain JAX | jaxonnxruntime | jaxonmodels |" in table
  train = {r["variant"]: r for r in payload["train_step"]["rows"]}
  assert set(train) == {"jax_lrn", "plain JAX LRN", "BatchNorm", "no normalization"}
  assert train["no normalization"]["added_percent"] == 0.0
  assert "| variant | ms (min) |" in table
  compared = _compared_with_itself(tmp_path / "results.json")
  assert re.search(r"jax_lrn\s+24 rows: ms differ by median 0\.0 %, max 0\.0 %", compared)


def _compared_with_itself(results: Path) -> str:
  """compare_runs.py's output for a run compared with itself (every spread is zero)."""
  proc = subprocess.run(
    [sys.executable, str(ROOT / "benchmarks" / "compare_runs.py"), str(results), str(results)],
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_benchmark_headline_quick(tmp_path):
  """--headline (here on the quick shape): the README's rows with both allocators, each in a
  process of its own, ms beside every ratio, and a JSON that compare_runs.py reads."""
  proc = subprocess.run(
    [sys.executable, str(ROOT / "benchmarks" / "bench_lrn.py"), "--headline", "--quick"]
    + ["--out", str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "headline.md").read_text()
  assert table in proc.stdout
  payload = json.loads((tmp_path / "headline.json").read_text())
  allocators = ("malloc default", "malloc hugetlb")
  # 7 rows x 2 allocators: jax_lrn and plain JAX in each, the libraries in the 5 across 5.
  assert len(payload["rows"]) == 7 * 2 * 2 + 5 * 2 * 2
  assert {r["allocator"] for r in payload["rows"]} == set(allocators)
  for allocator in allocators:
    assert sum(f"| {allocator} |" in line for line in table.splitlines()) == 7 + 1  # + training
  timed = [r for r in payload["rows"] if "ratio" in r]
  assert all(0 < r["min_s"] <= r["median_s"] and r["ratio"] > 0 for r in timed)
  # jaxonnxruntime: dx only and y and dx, NHWC and NCHW, with each allocator.
  assert table.count("not differentiable") == 4 * 2
  assert len(payload["train_step"]["rows"]) == 4 * 2
  compared = _compared_with_itself(tmp_path / "headline.json")
  assert re.search(r"jax_lrn\s+14 rows: ms differ by median 0\.0 %", compared)


@pytest.mark.parametrize("peer", ["jaxonnxruntime", "jaxonmodels"])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_peers_match_the_float64_reference(monkeypatch, peer, layout):
  """The other JAX libraries' LRNs (benchmarks/peers/, as published) as the benchmarks call
  them, in jax_lrn's convention (alpha divided by the size), against the float64 reference
  from the formula: y, and dx where the library is differentiable (jaxonnxruntime's is not:
  jax.grad raises)."""
  require("equinox")  # jaxonmodels' layer is an Equinox module (jaxtyping comes with it)
  monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
  import jax
  import numpy as np
  from bench_common import reference, relative_error
  from bench_jax import in_context, lrn_function

  size, alpha, beta, k = 5, 0.5, 0.75, 1.5
  shape = (2, 6, 7, 12) if layout == "NHWC" else (2, 12, 6, 7)
  rng = np.random.default_rng(0)
  x = rng.normal(0.0, 2.0, shape).astype(np.float32)
  g = rng.normal(0.0, 1.0, shape).astype(np.float32)
  axes = (3,) if layout == "NHWC" else (1,)
  y_ref, dx_ref = reference(x, g, axes, size, alpha, beta, k)
  f = lrn_function(peer, layout, "across_channels", size, alpha, beta, k)
  y = jax.jit(f)(x)
  assert y.dtype == np.float32 and relative_error(y, y_ref) <= 1e-5
  dx_only = in_context(f, "dx only")
  if peer == "jaxonnxruntime":
    with pytest.raises(ValueError, match="Linearization failed"):
      dx_only(x, g)
  else:
    assert relative_error(jax.jit(dx_only)(x, g), dx_ref) <= 1e-5


def test_device_check_quick_on_cpu(tmp_path):
  """benchmarks/device_check.py as it runs on an accelerator (from the checkout, PYTHONPATH=.),
  here on the CPU in --quick mode: every correctness check passes, every timed row has a time,
  the floors are there, and the table comes last."""
  out = tmp_path / "device.json"
  proc = subprocess.run(
    [sys.executable, "benchmarks/device_check.py", "--platform", "cpu", "--quick"]
    # Every group is run (the default budget, sized for an accelerator, can skip the last
    # ones on two busy cores).
    + ["--json", str(out), "--budget-s", "1200"],
    cwd=ROOT,
    env={**os.environ, "PYTHONPATH": str(ROOT)},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  results = json.loads(out.read_text())
  assert results["environment"]["platform"] == "cpu"
  assert results["default_implementation"] == {
    "across_channels": "shifted",
    "within_channel": "shifted",
  }
  correctness = results["correctness"]
  kinds = {c["kind"] for c in correctness["checks"]}
  assert kinds == {"dispatch", "fixture", "reference", "precision"}
  assert correctness["passed"] and all(c["passed"] for c in correctness["checks"])
  manifest = json.loads((ROOT / "tests" / "fixtures" / "manifest.json").read_text())
  assert sum(c["kind"] == "fixture" for c in correctness["checks"]) == len(manifest["fixtures"])
  assert results["bandwidth"]["GBps"] > 0
  assert results["floors"] and all(f["bytes"] > 0 and f["ms"] > 0 for f in results["floors"])
  rows = [r for g in results["groups"] for r in g["rows"]]
  # 4 groups x (shifted, reduce_window, shifted_squares, matmul, recompute, plain) x 3 passes
  assert len(rows) == 4 * 6 * 3
  for row in rows:
    assert row["status"] == "ok" and row["ms"] > 0 and row["ratio"] > 0, row
    assert 0 < row["floor_ms"] and row["floor_fraction"] > 0
    assert all(0 <= w <= 1 for w in row["worst"].values())
  training = [r for t in results["training"] for r in t["rows"]]
  assert {r["impl"] for r in training} == {
    "no LRN",
    "LRN shifted",
    "LRN reduce_window",
    "LRN shifted_squares",
    "LRN matmul",
    "LRN recompute",
  }
  assert results["summary"]["smoke_values"]
  assert "SMOKE VALUES" in proc.stdout.splitlines()[-15]  # the title above the table
  assert all(r["status"] == "ok" and r["ms"] > 0 for r in training)
  assert results["summary"]["timing_rows_skipped"] == 0
  last = proc.stdout.strip().splitlines()
  assert last[-1].startswith("|conv2 NHWC within 3x3 f32|y+dx|")
  assert last[-14].startswith("|configuration|pass|")  # 12 rows: 4 groups x 3 passes


def _import_device_check(monkeypatch):
  spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks/device_check.py")
  device_check = importlib.util.module_from_spec(spec)
  monkeypatch.setitem(sys.modules, "device_check", device_check)  # for its dataclasses
  spec.loader.exec_module(device_check)
  return device_check


@pytest.mark.parametrize(
  "platform, across, within",
  [
    ("cpu", "shifted", "shifted"),
    ("cuda", "reduce_window", "shifted_squares"),
    ("tpu", "recompute", "shifted_squares"),
  ],
)
def test_device_check_detects_the_default_per_mode(monkeypatch, platform, across, within):
  """device_check tells which implementation ``implementation=None`` runs per window mode from
  the program lowered for a platform (lowered only, so any platform is checked on the CPU)."""
  device_check = _import_device_check(monkeypatch)
  defaults, works = device_check.detected_defaults(platform)
  assert works
  assert defaults == {"across_channels": across, "within_channel": within}
  assert defaults == device_check.DOCUMENTED_DEFAULT[platform]


def test_device_check_budget_skips_the_rest(monkeypatch):
  """Once --budget-s is spent, the groups not started yet are reported as skipped."""
  device_check = _import_device_check(monkeypatch)
  specs = device_check.groups_to_run(quick=False)
  ran = []

  def run_one(spec):
    ran.append(spec)
    return dict(rows=[], compile_s=0.0)

  budget = device_check.Budget(0.0)
  groups, training = device_check.run_timing(specs, ["float32"], budget, run_one, ran.append)
  assert not ran and len(groups) == len(specs) and all(g["skipped"] for g in groups)
  assert all(r["status"] == "skipped" for g in groups for r in g["rows"])
  assert training == [dict(shape="train conv1", dtype="float32", skipped=True, rows=[])]
  groups, training = device_check.run_timing(
    specs, ["float32"], device_check.Budget(1e9), run_one, lambda dtype: dict(rows=[])
  )
  assert ran == specs and len(training) == 1


def test_device_check_fails_a_wrong_result(monkeypatch):
  """A timed program whose output is off by 1e-3 is marked FAILED and not timed; the others in
  its group are checked and timed as usual."""
  device_check = _import_device_check(monkeypatch)
  right = device_check.lrn_forward

  def wrong_when_shifted(impl, *args, **kwargs):
    forward = right(impl, *args, **kwargs)
    return (lambda x: forward(x) * 1.001) if impl == "shifted" else forward

  monkeypatch.setattr(device_check, "lrn_forward", wrong_when_shifted)
  spec = ("conv2", (1, 5, 6, 16), "across 5", "float32", "NHWC")
  group = device_check.run_group(
    spec, seed=0, torch_and_device=None, rounds=1, warmup=0, bandwidth_gbps=1.0
  )
  for row in group["rows"]:
    if row["impl"] == "shifted":
      assert row["status"] == "FAILED" and "ms" not in row, row
      assert max(row["worst"].values()) > 10  # 1e-3 against 1e-5
    else:
      assert row["status"] == "ok" and row["ms"] > 0, row


def test_bench_onnx_quick(tmp_path):
  """benchmarks/bench_onnx.py --quick (needs the onnx extra): both graphs per layout, checked
  against the float64 reference before timing, in the table and the JSON."""
  require("jax2onnx")
  require("onnxruntime")
  proc = subprocess.run(
    [sys.executable, str(ROOT / "benchmarks" / "bench_onnx.py"), "--quick", "--out", str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads((tmp_path / "results.json").read_text())["rows"]
  graphs = {(r["layout"], r["variant"]): r["graph"] for r in rows}
  assert graphs[("NCHW", "LRN node")] == "LRN"
  assert graphs[("NHWC", "LRN node")] == "Transpose-LRN-Transpose"
  assert "LRN" not in graphs[("NCHW", "decomposed")].split("-")
  for r in rows:
    assert r["error"] < 1e-5 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
    assert r["ratio"] == r["min_s"] / r["elem_min_s"]
  assert "| shape | layout | variant |" in (tmp_path / "results.md").read_text()


def test_contrast_benchmark_quick_writes_table_and_json(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      str(ROOT / "benchmarks" / "bench_contrast.py"),
      "--quick",
      "--out",
      str(tmp_path),
    ],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "contrast_results.md").read_text()
  assert "| shape | dtype | layout | context | jax_lrn | autodiff | no per-sample mean |" in table
  rows = json.loads((tmp_path / "contrast_results.json").read_text())["rows"]
  # 2 layouts x 3 implementations x 3 contexts, one shape and dtype.
  assert len(rows) == 18
  for row in rows:
    assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"]
    assert row["ratio"] == row["min_s"] / row["elem"]["min_s"]
    assert row["y_error"] <= 1e-4 and row["dx_error"] <= 1e-3


def test_gdn_benchmark_quick_writes_table_and_json(tmp_path):
  """benchmarks/bench_gdn.py --quick (JAX variants only): correctness checked, every row timed
  with its floors, jax_lrn keeping only x for the backward."""
  proc = subprocess.run(
    [sys.executable, str(ROOT / "benchmarks" / "bench_gdn.py"), "--quick", "--out", str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "results_gdn.md").read_text()
  assert "| C | context | implementation |" in table and table in proc.stdout
  rows = json.loads((tmp_path / "results_gdn.json").read_text())["rows"]
  # 2 channel counts x 3 contexts x 3 variants.
  assert len(rows) == 18
  for row in rows:
    assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"]
    assert row["ratio_elem"] == row["min_s"] / row["elem"]["min_s"]
    assert row["ratio_matmul"] == row["min_s"] / row["matmul"]["min_s"]
    assert row["error"] <= 1e-4
    if row["impl"] == "jax_lrn" and row["context"] != "forward":
      x_bytes = 2 * 16 * 16 * row["C"] * 4
      assert x_bytes <= row["residual_bytes"] <= x_bytes + (row["C"] + 2) * row["C"] * 4 + 8
