"""Local response normalization (LRN) for JAX.

``jax_lrn.lrn`` is a pure, jittable function with a closed-form ``custom_vjp`` backward, for
both the across-channels (AlexNet) and the within-channel (Caffe) windows. ``jax_lrn.compat``
reproduces the conventions of Caffe, TensorFlow, PyTorch, ONNX, cuDNN and MXNet exactly.
"""

from jax_lrn import compat
from jax_lrn._contrast import local_contrast_norm, local_divisive_norm, local_subtractive_norm
from jax_lrn._gdn import gdn
from jax_lrn._lrn import lrn

#: The version of jax_lrn; the package metadata reads it from here.
__version__ = "0.1.0"

__all__ = ["lrn", "compat", "__version__", "gdn"]
__all__ += ["local_contrast_norm", "local_subtractive_norm", "local_divisive_norm"]
