"""Local response normalization (LRN) and its family of divisive normalizations, for JAX.

``jax_lrn.lrn`` is a pure, jittable function with a closed-form ``custom_vjp`` backward, for
both the across-channels (AlexNet) and the within-channel (Caffe) windows. ``jax_lrn.gdn`` is
generalized divisive normalization (GDN, IGDN, simplified GDN), ``jax_lrn.spatial_gdn`` GDN
pooled over a spatial window too, and ``jax_lrn.local_contrast_norm`` local contrast
normalization (Jarrett et al. 2009), with its subtractive and divisive steps.
``jax_lrn.compat`` reproduces other frameworks' conventions exactly: Caffe, TensorFlow,
PyTorch, ONNX, cuDNN and MXNet for LRN; tensorflow_compression and CompressAI for GDN; Torch7
and cuda-convnet for the contrast normalizations.
"""

from jax_lrn import compat
from jax_lrn._contrast import local_contrast_norm, local_divisive_norm, local_subtractive_norm
from jax_lrn._gdn import gdn, spatial_gdn
from jax_lrn._lrn import lrn

#: The version of jax_lrn; the package metadata reads it from here.
__version__ = "0.1.0"

__all__ = [
  "lrn",
  "gdn",
  "spatial_gdn",
  "local_contrast_norm",
  "local_subtractive_norm",
  "local_divisive_norm",
  "compat",
  "__version__",
]
