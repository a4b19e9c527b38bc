"""Ready-made architectures: the default digits CNN, the MNIST CNN, LeNet-5, a
depthwise-separable (MobileNet-style) CNN and a convolutional autoencoder.

Each function returns a fresh :class:`~clearconv.Sequential` with its input shape set,
so ``model.summary()`` works at once.
"""

from __future__ import annotations

import numpy as np

from ..errors import ClearConvError
from ..layers import (
    AvgPool2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Sigmoid,
)
from .sequential import Sequential


def digits_cnn(rng: np.random.Generator | int | None = None, dtype: str = "float32") -> Sequential:
    """The default CNN for the embedded 8x8 digits (1x8x8 -> 10 classes).

    conv 1->16 3x3 same, ReLU, max pool 2 -> conv 16->32 3x3 same, ReLU, max pool 2 ->
    flatten 128 -> dense 64, ReLU -> dense 10.
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    return Sequential(
        Conv2D(1, 16, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), Dense(32 * 2 * 2, 64, rng=g, dtype=dtype), ReLU(),
        Dense(64, 10, rng=g, dtype=dtype),
        input_shape=(1, 8, 8),
    )


def mnist_cnn(rng: np.random.Generator | int | None = None, dtype: str = "float32",
              in_channels: int = 1, size: int = 28, num_classes: int = 10) -> Sequential:
    """The MNIST CNN of the speed benchmark (1x28x28 -> 10).

    conv 1->32 3x3 same, ReLU, max pool 2; conv 32->64 3x3 same, ReLU, max pool 2;
    dense 3136->128, ReLU; dense 128->10.
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    flat = 64 * (size // 4) * (size // 4)
    return Sequential(
        Conv2D(in_channels, 32, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), Dense(flat, 128, rng=g, dtype=dtype), ReLU(),
        Dense(128, num_classes, rng=g, dtype=dtype),
        input_shape=(in_channels, size, size),
    )


def lenet5(rng: np.random.Generator | int | None = None, dtype: str = "float32") -> Sequential:
    """LeNet-5 on 1x28x28 (padded by 2 to 32x32 in the first conv), ReLU and max pooling.

    conv 6@5x5 pad 2, pool 2, conv 16@5x5, pool 2, dense 400->120->84->10.
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    return Sequential(
        Conv2D(1, 6, 5, padding=2, rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(6, 16, 5, rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * 5 * 5, 120, rng=g, dtype=dtype), ReLU(),
        Dense(120, 84, rng=g, dtype=dtype), ReLU(),
        Dense(84, 10, rng=g, dtype=dtype),
        input_shape=(1, 28, 28),
    )


def small_image_cnn(input_shape: tuple[int, int, int], num_classes: int,
                    rng: np.random.Generator | int | None = None, dtype: str = "float32",
                    width: int = 32, dropout: float = 0.25) -> Sequential:
    """The default CNN for 28x28 to 32x32 images (MNIST family, CIFAR-10, image folders):
    the MNIST CNN of the benchmark with dropout before each dense layer.

    conv C->w 3x3 same, ReLU, max pool 2; conv w->2w 3x3 same, ReLU, max pool 2;
    flatten, dropout, dense 128, ReLU, dropout, dense num_classes.
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    c, h, w = input_shape
    flat = 2 * width * (h // 4) * (w // 4)
    return Sequential(
        Conv2D(c, width, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(width, 2 * width, 3, padding="same", rng=g, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), Dropout(dropout), Dense(flat, 128, rng=g, dtype=dtype), ReLU(),
        Dropout(dropout), Dense(128, num_classes, rng=g, dtype=dtype),
        input_shape=input_shape,
    )


def _depthwise_separable(c_in: int, c_out: int, stride: int, g: np.random.Generator,
                         dtype: str) -> list[Layer]:
    """A depthwise 3x3 convolution (``groups = c_in``: one filter per channel) and a
    pointwise 1x1 convolution mixing the channels, each followed by a ReLU (MobileNet's
    block, Howard et al. 2017): ``9 c_in + c_in c_out`` weights where a full 3x3
    convolution has ``9 c_in c_out``."""
    return [Conv2D(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, rng=g, dtype=dtype),
            ReLU(), Conv2D(c_in, c_out, 1, rng=g, dtype=dtype), ReLU()]


def mobilenet_cnn(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                  rng: np.random.Generator | int | None = None, dtype: str = "float32",
                  width: int = 32) -> Sequential:
    """A small depthwise-separable (MobileNet-style) CNN for 28x28 or 32x32 images.

    conv C->w 3x3, ReLU; separable w->2w stride 2; separable 2w->2w; separable 2w->4w
    stride 2; separable 4w->4w; average pooling over the whole (H/4, W/4) map (global
    average pooling); dense 4w -> num_classes. Each separable block is a depthwise 3x3
    conv (groups = channels) + ReLU + a pointwise 1x1 conv + ReLU. (No batch
    normalisation: the blocks are the plain MobileNet ones without it.)
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    c, h, w = input_shape
    if h % 4 or w % 4:
        raise ClearConvError(f"mobilenet_cnn takes images whose sides divide by 4 (28x28, "
                             f"32x32, ...), got {h}x{w}")
    return Sequential(
        Conv2D(c, width, 3, padding=1, rng=g, dtype=dtype), ReLU(),
        *_depthwise_separable(width, 2 * width, 2, g, dtype),
        *_depthwise_separable(2 * width, 2 * width, 1, g, dtype),
        *_depthwise_separable(2 * width, 4 * width, 2, g, dtype),
        *_depthwise_separable(4 * width, 4 * width, 1, g, dtype),
        AvgPool2D((h // 4, w // 4)), Flatten(),
        Dense(4 * width, num_classes, rng=g, dtype=dtype),
        input_shape=input_shape,
    )


def conv_autoencoder(input_shape: tuple[int, int, int] = (1, 28, 28),
                     rng: np.random.Generator | int | None = None, dtype: str = "float32",
                     width: int = 16) -> Sequential:
    """A convolutional autoencoder for images in [0, 1] whose sides divide by 4 (8x8
    digits, 28x28, 32x32): it maps an image to itself through a code 4x smaller per
    side. Train it with ``fit(x, x, loss='mse')``.

    Encoder: conv C->w 3x3 stride 2, ReLU; conv w->2w 3x3 stride 2, ReLU (code
    (2w, H/4, W/4)). Decoder: transposed conv 2w->w 4x4 stride 2 padding 1, ReLU;
    transposed conv w->C 4x4 stride 2 padding 1 (each doubles the size); sigmoid (the
    output in [0, 1] as the images).
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    c, h, w = input_shape
    if h % 4 or w % 4:
        raise ClearConvError(f"conv_autoencoder takes images whose sides divide by 4 (8x8, "
                             f"28x28, 32x32, ...), got {h}x{w}")
    return Sequential(
        Conv2D(c, width, 3, stride=2, padding=1, rng=g, dtype=dtype), ReLU(),
        Conv2D(width, 2 * width, 3, stride=2, padding=1, rng=g, dtype=dtype), ReLU(),
        ConvTranspose2D(2 * width, width, 4, stride=2, padding=1, rng=g, dtype=dtype), ReLU(),
        ConvTranspose2D(width, c, 4, stride=2, padding=1, rng=g, dtype=dtype), Sigmoid(),
        input_shape=input_shape,
    )


def default_model(dataset: str, input_shape: tuple[int, ...], num_classes: int,
                  rng: np.random.Generator | int | None = None) -> Sequential:
    """:func:`digits_cnn` for the embedded digits, :func:`small_image_cnn` for everything
    else: the architectures of the recipes ``clearconv train`` uses, as
    ``clearconv.train.recipe(dataset).build_model(input_shape, num_classes, rng)`` gives
    them (:mod:`clearconv.train.recipes`, where a recipe can name another model)."""
    if dataset == "digits":
        return digits_cnn(rng=rng)
    return small_image_cnn(tuple(input_shape), num_classes, rng=rng)  # type: ignore[arg-type]


ARCHITECTURES = {"digits-cnn": digits_cnn, "mnist-cnn": mnist_cnn, "lenet5": lenet5,
                 "mobilenet-cnn": mobilenet_cnn, "conv-autoencoder": conv_autoencoder}
