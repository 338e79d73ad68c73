# The LRN of jaxonnxruntime 0.3.0 (https://github.com/google/jaxonnxruntime), the function
# `onnx_lrn` of `jaxonnxruntime/onnx_ops/lrn.py` as published in the wheel
# jaxonnxruntime-0.3.0-py3-none-any.whl on PyPI, under the Apache License 2.0 (the file's own
# notice follows; the license's text is LICENSE-jaxonnxruntime beside this file).
#
# Changed: only the imports. The ONNX handler class that registers `onnx_lrn` for the `LRN` node
# (and its imports of `jaxonnxruntime.core`) is left out; `onnx_lrn` and its imports are as
# published. Kept verbatim for the benchmarks (formatting included, so ruff skips this folder).
# Copyright 2023 The Jaxonnxruntime Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Define ONNX LRN operator."""
import functools

from jax import jit
from jax import lax
from jax import numpy as jnp


@functools.partial(jit, static_argnames=("alpha", "beta", "bias", "size"))
def onnx_lrn(*input_args, alpha, beta, bias, size):
  """https://github.com/onnx/onnx/blob/v1.12.0/docs/Operators.md#LRN for more details."""
  assert len(input_args) == 1
  x = input_args[0]
  shape = x.shape
  div = jnp.reshape(jnp.multiply(x, x), (shape[0], 1, shape[1], shape[2], -1))
  kernel_shape = (1, 1, size, 1, 1)
  strides = (1, 1, 1, 1, 1)
  pads = "SAME"
  div = (
      lax.reduce_window(
          div,
          jnp.array(0, dtype=div.dtype),
          lax.add,
          kernel_shape,
          strides,
          pads,
      )
      / size
  )
  div = jnp.reshape(div, shape)
  div = jnp.power(jnp.add(jnp.multiply(div, alpha), bias), beta)
  return jnp.true_divide(x, div)
