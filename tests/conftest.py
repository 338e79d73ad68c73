"""Test-wide JAX settings: float64 available, and strict dtype promotion so hidden upcasts fail."""

import importlib.util
import os

# The tests run on the CPU. libtpu (the tpu extra) is there for tests/test_tpu_cost.py, which
# compiles for TPU ahead of time; as a backend it would be initialised by every process that
# starts JAX (printing warnings where there is no TPU), and the first process to load it takes a
# lock file that makes the next one (a test's subprocess, another run) fail.
if importlib.util.find_spec("libtpu") is not None:
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax  # noqa: E402
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def rng():
  return np.random.default_rng(0)


from hypothesis import settings  # noqa: E402

# CI runs the same examples every time (no flaky draws); locally hypothesis explores freely.
settings.register_profile("ci", derandomize=True, print_blob=True)

if os.environ.get("CI"):
  settings.load_profile("ci")

# tests/sharded/ needs 8 devices; with fewer, test_sharding.py runs it in a child process.
collect_ignore_glob = ["sharded/*"] if jax.device_count() < 8 else []
