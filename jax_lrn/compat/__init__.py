r"""Other frameworks' LRN conventions, each reproduced exactly by :func:`jax_lrn.lrn`.

Every framework computes ``y = x * (k + a * sum_{j in W} x_j**2) ** -beta``, but they disagree on
whether ``a`` is ``alpha`` or ``alpha / n``, on what the window parameter means, on where an
even-size window sits, on defaults and on the channel axis. This module spells out each one:

* ``caffe``, ``tensorflow``, ``torch`` and ``onnx`` take that framework's argument names,
  defaults and layout and return what the framework returns (to float32 rounding).
* ``from_caffe``, ``from_tensorflow``, ``from_torch``, ``from_onnx``, ``from_cudnn`` and
  ``from_mxnet`` translate a framework's parameters into keyword arguments for
  :func:`jax_lrn.lrn` (and for jax_lrn's Flax layers, which take the same keyword names), for
  porting a model layer by layer: ``lrn(x, **from_tensorflow(depth_radius=2, alpha=2e-5))``.

GDN has its own: ``tfc_gdn``, ``compressai_gdn`` and ``compressai_gdn1`` reproduce
tensorflow_compression's and CompressAI's layers with given parameter values, and
``from_tfc_gdn``, ``from_compressai_gdn`` turn those layers' stored (reparameterised) parameters
into keyword arguments for :func:`jax_lrn.gdn`.

Each function is a thin mapping: it validates what the framework would reject, and the
parameters as :func:`jax_lrn.lrn` would, with errors in the framework's own argument names and
the values passed; then it calls :func:`jax_lrn.lrn`, where the maths lives. The converters
take a keyword ``channel_axis`` (default: the framework's layout) for porting onto other
layouts, e.g. NHWC Flax activations: ``LocalResponseNorm(**from_cudnn(channel_axis=-1))``.
Sources are cited per function.

The rest of the family has its own conventions here too: ``torch7_subtractive``,
``torch7_divisive`` and ``torch7_contrastive`` (Torch7's spatial contrast normalizations) and
``cuda_convnet`` (cuda-convnet2's ``rnorm``, ``cmrnorm`` and ``cnorm``).

Examples:
  >>> import jax.numpy as jnp
  >>> from jax_lrn import compat, lrn
  >>> compat.from_tensorflow(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
  {'size': 5, 'alpha': 0.0005, 'beta': 0.75, 'k': 2.0, 'channel_axis': -1}
  >>> x = jnp.ones((1, 2, 2, 8), jnp.float32)  # NHWC
  >>> bool(jnp.array_equal(compat.tensorflow(x, 2, 2.0, 1e-4, 0.75),
  ...                      lrn(x, **compat.from_tensorflow(2, 2.0, 1e-4, 0.75))))
  True
"""

from __future__ import annotations

from jax_lrn.compat._cuda_convnet import cuda_convnet
from jax_lrn.compat._gdn import (
  compressai_gdn,
  compressai_gdn1,
  from_compressai_gdn,
  from_tfc_gdn,
  tfc_gdn,
)
from jax_lrn.compat._lrn_frameworks import (
  caffe,
  from_caffe,
  from_cudnn,
  from_mxnet,
  from_onnx,
  from_tensorflow,
  from_torch,
  onnx,
  tensorflow,
  torch,
)
from jax_lrn.compat._torch7 import torch7_contrastive, torch7_divisive, torch7_subtractive

__all__ = [
  "caffe",
  "tensorflow",
  "torch",
  "onnx",
  "from_caffe",
  "from_tensorflow",
  "from_torch",
  "from_onnx",
  "from_cudnn",
  "from_mxnet",
  "tfc_gdn",
  "compressai_gdn",
  "compressai_gdn1",
  "from_compressai_gdn",
  "from_tfc_gdn",
  "torch7_subtractive",
  "torch7_divisive",
  "torch7_contrastive",
  "cuda_convnet",
]

# The functions live in private modules, one per family of conventions; they are documented and
# pickled under the public name.
for _name in __all__:
  globals()[_name].__module__ = __name__
del _name
