"""Registers every faster algorithm of clearconv.kernels and the order 'auto' tries them
in (:data:`clearconv.kernels.tuning.AUTO_ORDER`); ``import clearconv`` imports it."""

from . import (
    batchnorm,
    blocked,
    depthwise,
    direct,
    elementwise,
    im2col,
    linear,
    pool,
    registry,
    transposed,
    tuning,
    winograd,
    winograd4,
)

ALGORITHM_MODULES = (batchnorm, blocked, depthwise, direct, elementwise, im2col, linear, pool,
                     transposed, winograd, winograd4)

for _op, _order in tuning.AUTO_ORDER.items():
    registry.set_auto_order(_op, _order)
