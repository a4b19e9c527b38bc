"""Ready-made architectures: the default digits CNN, the MNIST CNN, LeNet-5, a
depthwise-separable (MobileNet-style) CNN, a convolutional autoencoder, a batch-norm CNN
for 28x28 digits and ResNet-20 for 32x32 images.

Each function returns a fresh :class:`~clearconv.Sequential` with its input shape set,
so ``model.summary()`` works at once.
"""

from __future__ import annotations

import numpy as np

from ..errors import ClearConvError
from ..layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Residual,
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


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int,
                  batch_norm: bool, g: np.random.Generator, dtype: str) -> list[Layer]:
    """A convolution, then BatchNorm2D (whose shift stands in for the conv's bias) and
    ReLU; or the convolution with a bias and ReLU without batch norm."""
    conv = Conv2D(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups,
                  bias=not batch_norm, rng=g, dtype=dtype)
    return [conv, BatchNorm2D(c_out, dtype=dtype), ReLU()] if batch_norm else [conv, ReLU()]


def _depthwise_separable(c_in: int, c_out: int, stride: int, batch_norm: bool,
                         g: np.random.Generator, dtype: str) -> list[Layer]:
    """MobileNet's block (Howard et al. 2017, figure 3): a depthwise 3x3 convolution
    (``groups = c_in``: one filter per channel) and a pointwise 1x1 convolution mixing
    the channels, each followed by batch norm and ReLU: ``9 c_in + c_in c_out`` weights
    where a full 3x3 convolution has ``9 c_in c_out``."""
    return [*_conv_bn_relu(c_in, c_in, 3, stride, c_in, batch_norm, g, dtype),
            *_conv_bn_relu(c_in, c_out, 1, 1, 1, batch_norm, g, dtype)]


def mobilenet_cnn(input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                  rng: np.random.Generator | int | None = None, dtype: str = "float32",
                  width: int = 32, batch_norm: bool = True) -> Sequential:
    """A small depthwise-separable (MobileNet-style) CNN for 28x28 or 32x32 images (any
    size works: the global pooling takes the last map whatever its size).

    conv C->w 3x3; separable w->2w stride 2; separable 2w->2w; separable 2w->4w stride 2;
    separable 4w->4w; global average pooling; dense 4w -> num_classes. Each separable
    block is a depthwise 3x3 conv (groups = channels) and a pointwise 1x1 conv, and
    every conv is followed by BatchNorm2D and ReLU (``batch_norm=False``: a conv bias
    and ReLU). About 36 k weights for w = 32.
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    c = input_shape[0]
    return Sequential(
        *_conv_bn_relu(c, width, 3, 1, 1, batch_norm, g, dtype),
        *_depthwise_separable(width, 2 * width, 2, batch_norm, g, dtype),
        *_depthwise_separable(2 * width, 2 * width, 1, batch_norm, g, dtype),
        *_depthwise_separable(2 * width, 4 * width, 2, batch_norm, g, dtype),
        *_depthwise_separable(4 * width, 4 * width, 1, batch_norm, g, dtype),
        GlobalAvgPool2D(flatten=True),
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


def mnist_bn_cnn(rng: np.random.Generator | int | None = None, dtype: str = "float32",
                 in_channels: int = 1, size: int = 28, num_classes: int = 10,
                 dropout: float = 0.25) -> Sequential:
    """A small batch-norm CNN for 28x28 digits (MNIST, Fashion-MNIST), aimed at 99.5%+ on
    MNIST in 15 epochs with augmentation (random shifts).

    Two stages of two 3x3 'same' convs (32, then 64 channels), each conv followed by
    BatchNorm2D and ReLU (the convs without bias: the BN's shift stands in for it), each
    stage ending in a 2x2 max pool; then dense 128 with BatchNorm1D and ReLU, dropout, and
    dense num_classes (about 0.5 M parameters for 28x28).
    """
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng

    def conv_bn(c_in: int, c_out: int) -> list[Layer]:
        return [Conv2D(c_in, c_out, 3, padding="same", bias=False, rng=g, dtype=dtype),
                BatchNorm2D(c_out, dtype=dtype), ReLU()]

    flat = 64 * (size // 4) * (size // 4)
    return Sequential(
        *conv_bn(in_channels, 32), *conv_bn(32, 32), MaxPool2D(2),
        *conv_bn(32, 64), *conv_bn(64, 64), MaxPool2D(2),
        Flatten(), Dense(flat, 128, bias=False, rng=g, dtype=dtype),
        BatchNorm1D(128, dtype=dtype), ReLU(), Dropout(dropout),
        Dense(128, num_classes, rng=g, dtype=dtype),
        input_shape=(in_channels, size, size),
    )


def basic_block(c_in: int, c_out: int, stride: int, rng: np.random.Generator,
                dtype: str = "float32") -> list[Layer]:
    """ResNet's basic block (He et al. 2016, figure 2): ``relu(main(x) + shortcut(x))``
    with main = conv 3x3 (stride), BN, ReLU, conv 3x3, BN; the shortcut the identity, or
    where the shape changes a 1x1 conv with the stride and a BN (the paper's option B)."""
    main = [Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, rng=rng,
                   dtype=dtype), BatchNorm2D(c_out, dtype=dtype), ReLU(),
            Conv2D(c_out, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype),
            BatchNorm2D(c_out, dtype=dtype)]
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = [Conv2D(c_in, c_out, 1, stride=stride, bias=False, rng=rng, dtype=dtype),
                    BatchNorm2D(c_out, dtype=dtype)]
    return [Residual(main, shortcut), ReLU()]


def resnet20(num_classes: int = 10, in_channels: int = 3,
             rng: np.random.Generator | int | None = None, dtype: str = "float32",
             size: int = 32) -> Sequential:
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2: CIFAR-10), 272,474
    parameters for 10 classes.

    conv 3x3 16, BN, ReLU; three stages of three :func:`basic_block` s with 16, 32 and 64
    channels (the first block of stages 2 and 3 halves the size with stride 2 and
    projects its shortcut); global average pooling (an AvgPool2D over the whole 8x8 map,
    which ONNX export and ``to_torch`` know), flatten, dense num_classes. ``size``: the
    side of square inputs, a multiple of 4.
    """
    if size % 4:
        raise ClearConvError(f"resnet20 takes square images whose side divides by 4 (32x32, "
                             f"...), got {size}x{size}")
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    layers: list[Layer] = [Conv2D(in_channels, 16, 3, padding=1, bias=False, rng=g,
                                  dtype=dtype), BatchNorm2D(16, dtype=dtype), ReLU()]
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            layers += basic_block(c_in, width, stride, g, dtype)
            c_in = width
    layers += [AvgPool2D(size // 4), Flatten(), Dense(64, num_classes, rng=g, dtype=dtype)]
    return Sequential(*layers, input_shape=(in_channels, size, size))


def square_input(input_shape: tuple[int, ...] | list[int], name: str) -> tuple[int, int]:
    """(channels, side) of per-sample ``(C, H, W)`` inputs for a model that takes square
    images only; ClearConvError naming the model ``name`` and the size otherwise."""
    c, h, w = input_shape
    if h != w:
        raise ClearConvError(f"the {name} model takes square images, got {h}x{w}")
    return c, h


def default_model(dataset: str, input_shape: tuple[int, ...], num_classes: int,
                  rng: np.random.Generator | int | None = None) -> Sequential:
    """The model ``clearconv train --dataset DATASET`` trains: :func:`digits_cnn` for the
    embedded digits, :func:`mnist_bn_cnn` for MNIST and Fashion-MNIST,
    :func:`small_image_cnn` for everything else; as
    ``clearconv.train.recipe(dataset).build_model(input_shape, num_classes, rng)`` gives
    them (:mod:`clearconv.train.recipes`, where a recipe can name another model)."""
    if dataset == "digits":
        return digits_cnn(rng=rng)
    if dataset in ("mnist", "fashion-mnist"):
        c, side = square_input(input_shape, "mnist-bn-cnn")
        return mnist_bn_cnn(rng=rng, in_channels=c, size=side, num_classes=num_classes)
    return small_image_cnn(tuple(input_shape), num_classes, rng=rng)  # type: ignore[arg-type]


ARCHITECTURES = {"digits-cnn": digits_cnn, "mnist-cnn": mnist_cnn, "lenet5": lenet5,
                 "mobilenet-cnn": mobilenet_cnn, "conv-autoencoder": conv_autoencoder,
                 "mnist-bn-cnn": mnist_bn_cnn, "resnet20": resnet20}
