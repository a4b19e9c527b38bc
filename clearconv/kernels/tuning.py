"""Every tuning threshold of clearconv's kernels, in one place, with what set it.

None of these changes a computed value beyond rounding (each algorithm is held to the
loop reference and PyTorch by the tests); they decide which algorithm 'auto' takes and
how a batch is cut into parts. Measurements are paired (the two choices alternated in
one process), float32, on a 2-core AMD EPYC (AVX2, OpenBLAS Haswell kernels) unless
said otherwise; ``python -m benchmarks.run`` measures the result against PyTorch.
"""

from __future__ import annotations

#: the order 'auto' tries each op's algorithms in: the first one that prefers the call
#: wins; the readable algorithm of functional/ (which applies everywhere) comes last
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "conv2d": ("direct-nhwc", "winograd-4x4", "winograd", "direct", "depthwise",
               "im2col-split"),
    "conv_transpose2d": ("chunked", "im2col-split"),
    "conv2d_relu_max_pool2d": ("direct-fused",),
    "max_pool2d": ("nchw-2x2", "nhwc", "nhwc-2x2", "views-finite"),
    "linear": ("split-rows",),
    "batch_norm2d": ("compiled",),
    "add_relu": ("compiled",),
}

# ------------------------------------------------------------------- compiled loops
#: before this process has loaded the compiled (Numba) kernels, 'auto' takes the NumPy
#: algorithms for calls on fewer images than this (kernels/jit.py): loading them costs
#: about 1 s (Numba's import 0.5 s, then each loop from its cache), while one image's
#: inference takes milliseconds either way; training loads them when it starts
JIT_MIN_IMAGES = 32

#: the batch size that ``Layer.algorithm_for`` (and so ``summary()``'s Algorithm column and
#: the fusion plan) asks the registry about: a training batch, which takes the compiled
#: algorithms whether or not this process has loaded them yet
PLAN_BATCH = 64

# ----------------------------------------------------------------------------- conv2d
#: Winograd F(2x2, 3x3) from this many input and output channels (float32, compiled
#: transforms): with the batch split between threads it beats im2col from 8 channels on
#: (below, the 16 small products per chunk are too narrow for the BLAS)
WINOGRAD_MIN_CHANNELS = 8
#: Winograd F(4x4, 3x3) (inference only) where its 4x4 tiles cover at most this many
#: times the output (the cropped rows and columns are computed and thrown away).
#: Measured one thread, CPU time, AVX-512 Xeon, float32, against F(2x2, 3x3): 16x16 and
#: 32x32 outputs (1.0x) 23-27% faster; 14x14 (16x16 of tiles, 1.31x) 34% slower: its
#: transforms cost about as much as its 36 products, so the waste is not recovered
WINOGRAD4_MAX_WASTE = 1.15

#: the register-blocked channels-last direct loop ('direct-nhwc', kernels/blocked.py) for
#: 3x3 stride-1 float32 convolutions from this many input and output channels (output
#: channels a multiple of 16) ...
BLOCKED_MIN_CHANNELS = 16
#: ... up to this many in training (need_backward) ...
BLOCKED_MAX_CHANNELS = 64
#: ... and this many in inference. Measured one thread, CPU time (time.thread_time,
#: medians of 9, alternated in one process, a busy machine), AVX-512 Xeon (16-lane vector
#: FMAs in 512-bit registers, 8 pixels a block), float32, channels-last input, against what
#: 'auto' took before (forward: Winograd F(4x4) or F(2x2); forward+backward: F(2x2)),
#: PyTorch 2.13 one thread beside (NCHW):
#:   128x16x32x32 -> 16   forward  8.0 vs 10.2 ms (torch 16),  fwd+bwd  24 vs  34 ms (25)
#:   128x32x16x16 -> 32   forward  6.5 vs  8.8 ms (5.8),       fwd+bwd  18 vs  28 ms (17)
#:   64x32x28x28 -> 32    forward 10.9 vs 12.1 ms (8.3),       fwd+bwd  34 vs  40 ms (39)
#:   64x32x14x14 -> 32    forward  2.8 vs  3.6 ms (2.1),       fwd+bwd 7.4 vs  11 ms (6.9)
#:   128x64x8x8 -> 64     forward  5.7 vs  5.3 ms (4.6),       fwd+bwd  18 vs  21 ms (15)
#:   64x32x14x14 -> 64    forward  5.5 vs  5.2 ms (4.3),       fwd+bwd  17 vs  19 ms (13)
#:   128x64x16x16 -> 128  forward   40 vs   32 ms (46),        fwd+bwd 184 vs 193 ms (126)
#: (64 channels and more: F(4x4)'s 4x fewer multiplications win the forward; 128-channel
#: training about even, left to Winograd)
BLOCKED_MAX_CHANNELS_INFERENCE = 32
#: above this many channels (stride 1, training) the blocked loop needs an output width
#: that is a multiple of BLOCKED_WIDTH_MULTIPLE (its 8-pixel blocks then waste nothing;
#: a 14-wide row is 2 blocks, 16 pixels): 64x64x14x14 -> 64 fwd+bwd 35 vs Winograd's
#: 30 ms, 64x32x14x14 -> 64 17 vs 16 ms (same machine and method as above; 128x64x8x8 -> 64
#: 20 vs 22 ms)
BLOCKED_MAX_CHANNELS_ANY_WIDTH = 32
BLOCKED_WIDTH_MULTIPLE = 8
#: ... and this many with stride 2 (training and inference), against 'im2col-split' (no
#: Winograd there), as above:
#:   128x16x32x32 -> 32 s2   forward 6.7 vs 10.2 ms (torch 5.4),  fwd+bwd  24 vs  32 ms (23)
#:   128x32x16x16 -> 64 s2   forward 5.4 vs  6.6 ms (4.2),        fwd+bwd  17 vs  19 ms (16)
#:   64x64x32x32 -> 128 s2   forward  34 vs   39 ms (22),         fwd+bwd 111 vs 119 ms (105)
BLOCKED_MAX_CHANNELS_STRIDED = 128
#: ... but in training on a CPU without AVX-512 this many (its weight-gradient loop keeps
#: 4 input channels x 16 sums in registers, not 8). AMD EPYC (AVX2), float32, forward /
#: forward+backward ms, blocked vs im2col-split, 1 and 2 threads:
#:   64x64x32x32 -> 128 s2   1 thread 43 / 173 vs 49 / 148;   2 threads 23 / 95 vs 34 / 96
#:   128x16x32x32 -> 32 s2   1 thread  6 /  32 vs 14 /  50;   2 threads  4 / 26 vs 10 / 32
#: (the benchmark's 64->128 stride-2 forward+backward: 112 ms blocked, 92 ms im2col-split)
BLOCKED_MAX_CHANNELS_STRIDED_TRAINING_AVX2 = 64
#: ... and this many in float64 (Winograd is float32-only under 'auto'), stride 1 or 2,
#: training and inference, against 'im2col-split', as above:
#:   128x16x32x32 -> 16      forward 14 vs 36 ms (torch 112),  fwd+bwd 44 vs 179 ms (480)
#:   128x64x8x8 -> 64        forward 12 vs 19 ms (34),         fwd+bwd 33 vs  71 ms (77)
#:   64x64x14x14 -> 64       forward 18 vs 28 ms (47),         fwd+bwd 57 vs 108 ms (117)
#:   128x64x16x16 -> 128     forward 88 vs 148 ms (160)
#:   128x16x32x32 -> 32 s2                                     fwd+bwd 49 vs  63 ms (84)
BLOCKED_MAX_CHANNELS_FLOAT64 = 128
#: ... but this many on a CPU without AVX-512: there 4 pixels x 16 float64 sums take all
#: 16 of AVX2's vector registers and the loop spills. Measured one thread, AMD EPYC (AVX2),
#: float64, forward / forward+backward ms, blocked vs im2col-split (medians of 11):
#:   128x16x32x32 -> 16   44 / 125 vs 49 / 281     128x32x16x16 -> 32   33 / 111 vs 39 / 156
#:   128x64x8x8 -> 64     33 / 104 vs 29 /  88     64x32x14x14 -> 64    36 /  95 vs 20 /  72
BLOCKED_MAX_CHANNELS_FLOAT64_AVX2 = 32

#: the direct loop below this many input channels ...
DIRECT_MAX_IN = 4
#: ... and below this many output channels: from 16 on, the im2col product is wide
#: enough for the BLAS to win (64 images of 28x28 or 32x32, forward: 5x5 1->6 0.53x the
#: im2col time, 1->16 1.22x; 3x3 3->8 0.50x, 3->16 0.85x, 1->16 1.44x)
DIRECT_MAX_OUT = 16

#: im2col-split stores its columns transposed, (kh*kw*C, N*H_out*W_out), below this many
#: input channels: it then copies one kernel offset at a time along long contiguous rows
#: instead of C values at a time, and the bias rides in the product as a row of ones
FEW_CHANNELS = 4

#: inference (need_backward=False) works through a batch a few images at a time, each
#: chunk's im2col columns (or Winograd's 16 product planes) about this many bytes, so
#: that they stay in cache instead of filling memory
CHUNK_BYTES = 1 << 20

# ----------------------------------------------------------------------- max pooling
#: the general compiled channels-last max pooling needs this many channels: with fewer,
#: its innermost (channel) loop is too short to pay; a 2x2/2 unpadded window then has
#: its own loop with the width innermost (6 channels: 0.4 ms instead of 1.5 ms on
#: 64x6x28x28)
COMPILED_POOL_MIN_CHANNELS = 16

#: compiled pooling is split between threads from this many input values (below, the
#: hand-off costs more than it saves: LeNet-5's second pool, 64x16x10x10, took 0.14 ms
#: split and 0.09 ms in one thread; its first, 64x6x28x28, the same either way)
POOL_MIN_SPLIT = 1 << 19

# ---------------------------------------------------------------- products and copies
#: matrix products below this many multiply-adds are not split between threads (a
#: hand-off costs ~20-80 us)
MIN_SPLIT_PRODUCT = 1 << 22

#: the compiled NCHW -> channels-last copy (im2col-split's and Winograd's input) is
#: split between threads from this many values
MIN_SPLIT_COPY = 1 << 18

# ----------------------------------------------------------------- batch normalisation
#: batch norm's compiled passes are split between threads from this many input values
#: (below, a hand-off of ~20-80 us costs more than the pass: 2**16 float32 values take
#: ~20 us a pass)
NORM_MIN_SPLIT = 1 << 16
