"""Stateless math, NCHW, float32 and float64: each op a ``*_forward`` / ``*_backward`` pair.

``<op>_forward(inputs..., hyper-params) -> (out, cache)`` and
``<op>_backward(d_out, cache) -> gradients``. See MATH.md for the formulas; each
module's docstring names the section it implements.
"""

from .activations import (
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
from .conv import conv2d_backward, conv2d_forward, conv2d_geometry, conv2d_relu_max_pool2d
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool2d_geometry,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward",
    "conv2d_relu_max_pool2d",
    "conv2d_forward",
    "conv2d_geometry",
    "dropout_backward",
    "dropout_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
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
]
