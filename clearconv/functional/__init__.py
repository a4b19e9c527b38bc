"""Stateless math, NCHW, float32 and float64: each op a ``*_forward`` / ``*_backward`` pair.

``<op>_forward(inputs..., hyper-params) -> (out, cache)`` and
``<op>_backward(d_out, cache) -> gradients``. See MATH.md for the formulas; each
module's docstring names the section it implements.

Each module is the op's one readable NumPy algorithm, exact and complete on its own.
Faster algorithms (:mod:`clearconv.kernels`) plug in below through the registry; every
cache records the ``algorithm`` that ran, and :func:`conv2d_algorithm` /
:func:`max_pool2d_algorithm` say which one 'auto' takes for given shapes, and why.
Nothing here sets threads, the allocator or any other process-wide state.
"""

from ..shapes import conv2d_geometry, pool2d_geometry
from .activations import (
    add_relu_backward,
    add_relu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from .adaptive_pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    adaptive_max_pool2d_indices,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    global_max_pool2d_backward,
    global_max_pool2d_forward,
)
from .conv import (
    conv2d_algorithm,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_algorithm,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from .dropout import dropout_backward, dropout_forward
from .fused import (
    conv2d_relu_max_pool2d_algorithm,
    conv2d_relu_max_pool2d_backward,
    conv2d_relu_max_pool2d_forward,
)
from .linear import linear_backward, linear_forward
from .losses import (
    binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax_backward,
    log_softmax_forward,
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .normalization import (
    batch_norm1d_backward,
    batch_norm1d_forward,
    batch_norm2d_backward,
    batch_norm2d_fold,
    batch_norm2d_forward,
)
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_algorithm,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_indices,
    max_unpool2d_backward,
    max_unpool2d_forward,
)
from .pool1d import (
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool1d_forward,
    adaptive_max_pool1d_backward,
    adaptive_max_pool1d_forward,
    adaptive_max_pool1d_indices,
    avg_pool1d_backward,
    avg_pool1d_forward,
    global_avg_pool1d_backward,
    global_avg_pool1d_forward,
    global_max_pool1d_backward,
    global_max_pool1d_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    max_pool1d_indices,
)
from .upsample import (
    upsample_bilinear2d_backward,
    upsample_bilinear2d_forward,
    upsample_nearest2d_backward,
    upsample_nearest2d_forward,
)

#: the name of 0.1 (which returned None where the fused loop did not apply): now the op
#: always computes, choosing its algorithm as any other op; kept until 0.3
conv2d_relu_max_pool2d = conv2d_relu_max_pool2d_forward

__all__ = [
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool1d_forward",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool1d_forward",
    "adaptive_max_pool1d_indices",
    "avg_pool1d_backward",
    "avg_pool1d_forward",
    "global_avg_pool1d_backward",
    "global_avg_pool1d_forward",
    "global_max_pool1d_backward",
    "global_max_pool1d_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "max_pool1d_indices",
    "add_relu_backward",
    "add_relu_forward",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool2d_forward",
    "adaptive_max_pool2d_indices",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm1d_backward",
    "batch_norm1d_forward",
    "batch_norm2d_backward",
    "batch_norm2d_fold",
    "batch_norm2d_forward",
    "conv2d_algorithm",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_relu_max_pool2d",
    "conv2d_relu_max_pool2d_algorithm",
    "conv2d_relu_max_pool2d_backward",
    "conv2d_relu_max_pool2d_forward",
    "conv_transpose2d_algorithm",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "conv2d_geometry",
    "dropout_backward",
    "dropout_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_max_pool2d_backward",
    "global_max_pool2d_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_algorithm",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_indices",
    "max_unpool2d_backward",
    "max_unpool2d_forward",
    "pool2d_geometry",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "mse_backward",
    "mse_forward",
    "upsample_bilinear2d_backward",
    "upsample_bilinear2d_forward",
    "upsample_nearest2d_backward",
    "upsample_nearest2d_forward",
]
