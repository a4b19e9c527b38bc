"""Parameter-holding building blocks that call :mod:`clearconv.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, manual_seed
from .conv import Conv2D
from .core import Dense, Dropout, Flatten
from .pooling import AvgPool2D, MaxPool2D

__all__ = [
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "manual_seed",
]
