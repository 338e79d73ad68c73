"""Collection settings for the whole repository (the tests and the doctests of jax_lrn)."""

import importlib.util

# jax_lrn.equinox needs the optional equinox package (the `equinox` extra): without it, its
# doctests are not collected, as tests/test_equinox.py skips.
collect_ignore = [] if importlib.util.find_spec("equinox") else ["jax_lrn/equinox.py"]
# The jax2onnx plugin imports jax2onnx (the optional ``onnx`` extra) at import time and has no
# doctests; tests/test_onnx_export.py tests it where jax2onnx is installed.
collect_ignore.append("jax_lrn/_onnx_plugin.py")
