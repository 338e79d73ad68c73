"""Collection of the package's doctests (``--doctest-modules`` over ``jax_lrn``)."""

# The jax2onnx plugin imports jax2onnx (the optional ``onnx`` extra) at import time and has no
# doctests; tests/test_onnx_export.py tests it where jax2onnx is installed.
collect_ignore = ["jax_lrn/_onnx_plugin.py"]
