"""Runs tests/sharded/ in its own process with 8 simulated CPU devices.

XLA fixes the number of host devices when it starts, so the flag cannot be set inside this
process once jax has been imported; the sharded tests run in a child pytest process instead.
"""

import os
import pathlib
import re
import subprocess
import sys

import jax
import pytest

SHARDED = pathlib.Path(__file__).parent / "sharded"


@pytest.mark.skipif(jax.device_count() >= 8, reason="the sharded tests run in this process")
def test_sharded_suite_on_8_simulated_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  proc = subprocess.run(
    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SHARDED)],
    capture_output=True,
    text=True,
    env=env,
    timeout=600,
  )
  summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
  passed = re.search(r"(\d+) passed", summary)
  assert passed and int(passed.group(1)) > 0 and "skipped" not in summary, summary
