"""Optional speed, below the readable ops of :mod:`clearconv.functional`.

Each module here registers faster algorithms for an op with the registry
(:mod:`~clearconv.kernels.registry`), each with a named predicate (when it applies and
when 'auto' takes it), its forward and its backward:

=====================  =================================================================
op                     algorithms ('auto' tries them in this order, readable one last)
=====================  =================================================================
conv2d                 direct-nhwc, winograd-4x4, winograd, direct, depthwise, im2col-split;
                       im2col (functional.conv)
conv_transpose2d       chunked, im2col-split; im2col (functional.conv)
conv2d_relu_max_pool2d direct-fused; composed (functional.fused)
max_pool2d             nchw-2x2, nhwc, nhwc-2x2, views-finite; views (functional.pool)
linear                 split-rows; matmul (functional.linear)
batch_norm2d           compiled; numpy (functional.normalization)
add_relu               compiled; numpy (functional.activations)
=====================  =================================================================

``python -m clearconv.kernels`` prints that table with a line on each algorithm;
``clearconv.functional.conv2d_algorithm(...)`` says which one 'auto' takes for given
shapes and why; every cache records the one that ran; ``CLEARCONV_LOG_KERNELS=1``
logs each call's choice. The thresholds live in :mod:`~clearconv.kernels.tuning` with
the measurements that set them; the thread policy in :mod:`~clearconv.kernels.threads`;
the allocator setting of the training entry points in
:mod:`~clearconv.kernels.allocator`; the compiled (Numba) loops in
:mod:`~clearconv.kernels.compiled`. Without Numba, or with ``CLEARCONV_JIT=0``, the
algorithms that need it say so and 'auto' passes them over; functional/ alone stays
exact and complete.

The registry, the thread policy and the tuning constants import nothing from
functional/ (which asks the registry); the algorithm modules build on functional/ and
are registered by :mod:`clearconv.kernels.algorithms`, which ``import clearconv`` loads.
"""

from __future__ import annotations

from . import jit, registry, tuning
from .allocator import tune_allocator
from .threads import get_num_threads, region, set_num_threads

__all__ = ["get_num_threads", "jit", "load_compiled_kernels", "region",
           "registry", "set_num_threads", "tune_allocator", "tuning"]


def load_compiled_kernels() -> bool:
    """Load (or compile) the optional Numba kernels now instead of at their first use.

    A fixed cost per process, paid once either way: about 0.4 s and 60 MiB (LLVM) when
    the kernels are in Numba's on-disk cache. Returns False when Numba is absent or
    disabled (``CLEARCONV_JIT=0``).
    """
    from . import jit

    module = jit.load()
    return module is not None and module.warm_up()
