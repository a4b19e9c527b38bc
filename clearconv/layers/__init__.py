"""Parameter-holding building blocks that call :mod:`clearconv.functional`."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, manual_seed
from .blocks import Concat, Residual
from .conv import Conv1D, Conv2D, ConvTranspose2D
from .core import Dense, Dropout, Flatten
from .normalization import BatchNorm1D, BatchNorm1d, BatchNorm2D, BatchNorm2d
from .pooling import AvgPool2D, MaxPool2D

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm1d",
    "BatchNorm2D",
    "BatchNorm2d",
    "Concat",
    "Conv1D",
    "Conv2D",
    "ConvTranspose2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Residual",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "manual_seed",
]
