"""Parameter-holding building blocks that call :mod:`clearconv.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, manual_seed
from .blocks import Concat, Residual
from .conv import Conv1D, Conv2D, ConvTranspose2D
from .core import Dense, Dropout, Flatten
from .pooling import (
    AdaptiveAvgPool2D,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2D,
    AdaptiveMaxPool2d,
    AvgPool2D,
    AvgPool2d,
    GlobalAvgPool2D,
    GlobalAvgPool2d,
    GlobalMaxPool2D,
    GlobalMaxPool2d,
    MaxPool2D,
    MaxPool2d,
    MaxUnpool2D,
    MaxUnpool2d,
)
from .upsample import Upsample

__all__ = [
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool2d",
    "AvgPool2D",
    "AvgPool2d",
    "Concat",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalAvgPool2d",
    "GlobalMaxPool2D",
    "GlobalMaxPool2d",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPool2d",
    "MaxUnpool2D",
    "MaxUnpool2d",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Upsample",
    "manual_seed",
]
