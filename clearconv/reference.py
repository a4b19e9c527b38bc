"""The ops of :mod:`clearconv.functional`, written literally from MATH.md, loop by loop.

Slow on purpose. Every function here has the name, the signature and the return form
of its fast twin in ``functional/`` (``<op>_forward(...) -> (out, cache)``,
``<op>_backward(d_out, cache) -> gradients``), but computes the formula of MATH.md the
way it is written: one output element at a time, with the window of each output pixel
picked out by explicit index arithmetic. The tests hold the fast ops to these.

The ``explain`` figures draw their intermediate arrays, from the same loops written once
more to keep every step: :func:`conv2d_forward_steps` (each window, its products, the
per-channel sums, Z), :func:`conv2d_backward_steps` (each term of dW, db, and dA through
:func:`conv2d_input_gradient_steps`: dZ with its stride gaps, the kernel rotated 180°,
the full convolution position by position), :func:`max_pool2d_forward_steps` (each
window, its mask and argmax) and :func:`max_pool2d_backward_steps` (what each window
routes back). Their results equal the plain functions' bit for bit.

Notation (MATH.md): ``A`` is a layer input of shape (N, C_in, H, W) (NCHW; the article's
single image ``[n, n, n_c]`` is ``A[0].transpose(1, 2, 0)``), ``W`` a kernel bank of
shape (C_out, C_in, f_h, f_w), ``b`` a bias of shape (C_out,), ``Z`` the output of shape
(N, C_out, H_out, W_out); ``m, k`` index output rows and columns, ``i, j`` kernel rows
and columns, ``s`` is the stride, ``d`` the dilation, ``p`` the padding.

Only the bookkeeping is shared with the fast path: the shape arithmetic of
:mod:`clearconv.shapes` (padding forms, output sizes) and the argument checks of
``conv2d_geometry`` / ``pool2d_geometry``, so that both raise the same errors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import ClearConvError, ShapeError
from .shapes import (
    ConvGeometry,
    IntPair,
    Padding2D,
    PaddingArg,
    PoolGeometry,
    adaptive_output_size,
    as_float,
    check_batch_norm,
    check_divisor_override,
    check_linear,
    check_logits_labels,
    check_nchw,
    conv2d_geometry,
    conv_transpose2d_geometry,
    pool2d_geometry,
    unpool_output_size,
    upsample_output_size,
)

# --------------------------------------------------------------------------- helpers


def _pad(a: np.ndarray, pads: Padding2D, value: float = 0.0) -> np.ndarray:
    """A copy of ``a`` (..., H, W) inside a border ``((top, bottom), (left, right))``
    filled with ``value``."""
    (pt, pb), (pl, pr) = pads
    h, w = a.shape[-2:]
    out = np.full((*a.shape[:-2], h + pt + pb, w + pl + pr), value, dtype=a.dtype)
    out[..., pt:pt + h, pl:pl + w] = a
    return out


def _window_index(m: int, k: int, kernel: tuple[int, int], stride: tuple[int, int],
                  dilation: tuple[int, int] = (1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the window that output pixel (m, k) reads.

    Window cell (i, j) is padded-input pixel ``(m*s_h + i*d_h, k*s_w + j*d_w)``. The
    result indexes an array's last two axes: ``a[..., rows, cols]`` has shape
    (..., f_h, f_w).
    """
    rows = np.array([m * stride[0] + i * dilation[0] for i in range(kernel[0])])
    cols = np.array([k * stride[1] + j * dilation[1] for j in range(kernel[1])])
    return rows[:, None], cols[None, :]


def _gradient_in(dy: np.ndarray, dtype: np.dtype, out_shape: tuple[int, ...], op: str
                 ) -> np.ndarray:
    """``dy`` as the dtype of the forward pass, checked against the forward's output shape."""
    dz = np.asarray(dy, dtype=dtype)
    if dz.shape != out_shape:
        raise ShapeError(f"{op}: dy has shape {dz.shape}, the forward output was {out_shape}")
    return dz


# ------------------------------------------------------------------------ convolution


class Conv2dCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass."""

    a_pad: np.ndarray       # (N, C_in, H + p_t + p_b, W + p_l + p_r): A with its zero border
    weight: np.ndarray      # (C_out, C_in, f_h, f_w)
    has_bias: bool
    geometry: ConvGeometry


def _conv2d_operands(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                     stride: IntPair, padding: PaddingArg, dilation: IntPair, groups: int = 1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, ConvGeometry]:
    """The checked operands of a convolution: ``x`` and ``W`` cast to one float dtype, the
    bias ``b`` (zeros when None) and the geometry (padding, output size: MATH.md §4-5)."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    check_nchw(x, "conv2d")
    geo = conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    dtype = np.result_type(as_float(x[:0]).dtype, as_float(weight[:0]).dtype)
    c_out = geo.out_shape[1]
    b = np.zeros(c_out, dtype)
    if bias is not None:
        b = np.asarray(bias, dtype=dtype)
        if b.shape != (c_out,):
            raise ShapeError(f"conv2d bias must have shape ({c_out},), got {b.shape}")
    return x.astype(dtype), weight.astype(dtype), b, geo


def _channels_seen(o: int, geo: ConvGeometry) -> slice:
    """The input channels output channel o sees: its group's, ``C_in / groups`` of them."""
    c_in, c_out, g = geo.in_shape[1], geo.out_shape[1], geo.groups
    group = o // (c_out // g)
    return slice(group * (c_in // g), (group + 1) * (c_in // g))


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   stride: IntPair = 1, padding: PaddingArg = 0,
                   dilation: IntPair = 1, groups: int = 1) -> tuple[np.ndarray, Conv2dCache]:
    """Convolution layer, linear part ``Z = W * A + b`` (MATH.md §3-7), literally.

    Cross-correlation (§3, as PyTorch and ONNX), one output pixel at a time::

        Z[n, o, m, k] = sum_c sum_i sum_j W[o, c, i, j] * A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]
                        + b[o]

    where ``A_pad`` is ``A`` with a border of zeros (§4), and
    ``H_out = floor((H + p_t + p_b - d_h*(f_h - 1) - 1) / s_h) + 1`` (§5; the article's
    ``floor((n + 2p - f)/s) + 1`` when d = 1 and the padding is symmetric).
    :func:`conv2d_forward_steps` is the same loop keeping every product.

    With ``groups`` g, the sum over c runs over the input channels of output channel o's
    group only (``C_in / g`` of them; depthwise when g = C_in).

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
    weight : ndarray of shape (C_out, C_in / groups, f_h, f_w)
    bias : ndarray of shape (C_out,) or None
    stride, dilation : int or (h, w)
    padding : int, (p_h, p_w), ((top, bottom), (left, right)), 'valid' or 'same'
    groups : int dividing C_in and C_out

    Returns
    -------
    z : ndarray of shape (N, C_out, H_out, W_out)
    cache : Conv2dCache for :func:`conv2d_backward`
    """
    x, weight, b, geo = _conv2d_operands(x, weight, bias, stride, padding, dilation, groups)
    n_batch, c_out, h_out, w_out = geo.out_shape
    a_pad = _pad(x, geo.padding)
    z = np.zeros(geo.out_shape, x.dtype)
    for n in range(n_batch):
        for o in range(c_out):
            seen = _channels_seen(o, geo)
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    window = a_pad[n][seen, rows, cols]       # (C_in / groups, f_h, f_w)
                    z[n, o, m, k] = np.sum(window * weight[o]) + b[o]
    return z, Conv2dCache(a_pad, weight, bias is not None, geo)


class Conv2dSteps(NamedTuple):
    """Every array that goes into ``Z = W * A + b``, window by window (MATH.md §3-7).

    Output pixel (m, k) of sample n reads the window ``windows[n, m, k]`` (the cells
    ``A_pad[n, :, rows[m, i], cols[k, j]]``); kernel o multiplies it cell by cell
    (``products``); the products of each input channel add up to that channel's share
    (``channel_sums``, §6), and all products plus ``b[o]`` give ``Z[n, o, m, k]``.
    """

    a_pad: np.ndarray          # (N, C_in, H_pad, W_pad): A inside its zero border (§4)
    weight: np.ndarray         # (C_out, C_in, f_h, f_w)
    bias: np.ndarray           # (C_out,): b, zeros when the call had none
    rows: np.ndarray           # (H_out, f_h) int: A_pad row of window cell i, m*s_h + i*d_h
    cols: np.ndarray           # (W_out, f_w) int: A_pad column of window cell j, k*s_w + j*d_w
    windows: np.ndarray        # (N, H_out, W_out, C_in, f_h, f_w): A_pad under window (m, k)
    products: np.ndarray       # (N, C_out, H_out, W_out, C_in, f_h, f_w): W[o] ⊙ window
    channel_sums: np.ndarray   # (N, C_out, H_out, W_out, C_in): sum_i sum_j of the products
    z: np.ndarray              # (N, C_out, H_out, W_out): sum of the products + b[o]
    has_bias: bool
    geometry: ConvGeometry

    @property
    def cache(self) -> Conv2dCache:
        """The cache :func:`conv2d_forward` returns for the same call."""
        return Conv2dCache(self.a_pad, self.weight, self.has_bias, self.geometry)


def conv2d_forward_steps(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                         stride: IntPair = 1, padding: PaddingArg = 0,
                         dilation: IntPair = 1) -> Conv2dSteps:
    """:func:`conv2d_forward` keeping its intermediate arrays (MATH.md §3-7), for figures.

    The same loop over output pixels; for window (m, k) of sample n and kernel o::

        products[n, o, m, k]     = W[o] ⊙ A_pad[n, :, rows[m], cols[k]]      (C_in, f_h, f_w)
        channel_sums[n, o, m, k] = sum_i sum_j products[n, o, m, k]            (C_in,)
        Z[n, o, m, k]            = sum_c sum_i sum_j products[n, o, m, k] + b[o]

    ``z`` equals conv2d_forward's bit for bit; ``channel_sums`` adds up to ``z - b`` up to
    rounding. Same arguments as :func:`conv2d_forward`; memory grows with
    N * C_out * H_out * W_out * C_in * f_h * f_w, so keep the shapes small.
    """
    x, weight, b, geo = _conv2d_operands(x, weight, bias, stride, padding, dilation)
    n_batch, c_out, h_out, w_out = geo.out_shape
    c_in, f_h, f_w = weight.shape[1:]
    dtype = x.dtype
    a_pad = _pad(x, geo.padding)
    rows = np.zeros((h_out, f_h), dtype=int)
    cols = np.zeros((w_out, f_w), dtype=int)
    windows = np.zeros((n_batch, h_out, w_out, c_in, f_h, f_w), dtype)
    products = np.zeros((n_batch, c_out, h_out, w_out, c_in, f_h, f_w), dtype)
    channel_sums = np.zeros((n_batch, c_out, h_out, w_out, c_in), dtype)
    z = np.zeros(geo.out_shape, dtype)
    for n in range(n_batch):
        for o in range(c_out):
            for m in range(h_out):
                for k in range(w_out):
                    r, q = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    rows[m], cols[k] = r[:, 0], q[0, :]
                    windows[n, m, k] = a_pad[n][:, r, q]
                    products[n, o, m, k] = windows[n, m, k] * weight[o]
                    channel_sums[n, o, m, k] = products[n, o, m, k].sum(axis=(1, 2))
                    z[n, o, m, k] = np.sum(products[n, o, m, k]) + b[o]
    return Conv2dSteps(a_pad, weight, b, rows, cols, windows, products, channel_sums, z,
                       bias is not None, geo)


def conv2d_backward(dy: np.ndarray, cache: Conv2dCache, input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward pass of :func:`conv2d_forward` (MATH.md §9), literally.

    With ``dZ = dy``::

        db[o]          = sum_n sum_m sum_k dZ[n, o, m, k]
        dW[o, c, i, j] = sum_n sum_m sum_k A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]
                                           * dZ[n, o, m, k]
                         (the input slice under window (m, k), weighted by dZ[m, k])
        dA             = the "full" convolution of dZ with the kernel rotated 180°,
                         cropped by the padding (see :func:`conv2d_input_gradient`)

    :func:`conv2d_backward_steps` is the same loop keeping every term.

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, H_out, W_out), dL/dZ
    cache : from :func:`conv2d_forward`
    input_grad : compute dx (False returns None for it)

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W), or None
    dweight : ndarray of shape (C_out, C_in, f_h, f_w)
    dbias : ndarray of shape (C_out,), or None when the forward had no bias
    """
    a_pad, weight, has_bias, geo = cache
    dz = _gradient_in(dy, weight.dtype, geo.out_shape, "conv2d_backward")
    n_batch, c_out, h_out, w_out = geo.out_shape
    db = np.zeros(c_out, weight.dtype)
    dw = np.zeros_like(weight)
    for n in range(n_batch):
        for o in range(c_out):
            seen = _channels_seen(o, geo)
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    db[o] += dz[n, o, m, k]
                    dw[o] += a_pad[n][seen, rows, cols] * dz[n, o, m, k]
    dx = conv2d_input_gradient(dz, weight, geo) if input_grad else None
    return dx, dw, (db if has_bias else None)


class ConvInputGradientSteps(NamedTuple):
    """The steps 1-5 of :func:`conv2d_input_gradient` (MATH.md §9), as arrays.

    ``e = d*(f - 1) + 1`` is the extent of the dilated kernel and
    ``R_h = (H_out - 1)*s_h + e_h`` the number of rows of ``dA_pad`` a window reaches.
    """

    dz_gapped: np.ndarray      # 1. (N, C_out, (H_out-1)*s_h + 1, (W_out-1)*s_w + 1): s - 1 gaps
    w_rot: np.ndarray          # 2. (C_out, C_in, f_h, f_w): W rotated 180°
    w_rot_dilated: np.ndarray  # 2. (C_out, C_in, e_h, e_w): with d - 1 zeros between taps
    dz_full: np.ndarray        # 3. dz_gapped inside a zero border of e - 1 on every side
    products: np.ndarray       # 4. (N, C_in, R_h, R_w, C_out, e_h, e_w): patch (r, q) ⊙ W_rot[:, c]
    da_pad: np.ndarray         # 4. (N, C_in, H_pad, W_pad): the sums; unreached rows stay 0
    dx: np.ndarray             # 5. (N, C_in, H, W): da_pad without the padding


def _single_group(geo: ConvGeometry, op: str) -> None:
    if geo.groups != 1:
        raise ClearConvError(f"{op} keeps the steps of ungrouped convolutions only, got "
                             f"groups {geo.groups}")


def _scatter_with_gaps(dz: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """Step 1 of MATH.md §9's dA: dZ (N, C, H_out, W_out) with ``s - 1`` zeros between its
    entries, shape (N, C, (H_out - 1)*s_h + 1, (W_out - 1)*s_w + 1) (undoes the stride)."""
    (s_h, s_w), (n_batch, c, h_out, w_out) = stride, dz.shape
    dz_gapped = np.zeros((n_batch, c, (h_out - 1) * s_h + 1, (w_out - 1) * s_w + 1), dz.dtype)
    for m in range(h_out):
        for k in range(w_out):
            dz_gapped[:, :, m * s_h, k * s_w] = dz[:, :, m, k]
    return dz_gapped


def _rotate_and_dilate(weight: np.ndarray, dilation: tuple[int, int]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 of MATH.md §9's dA: the kernel (C_out, C_in, f_h, f_w) rotated by 180°, and
    the rotated kernel with ``d - 1`` zeros between its taps, (C_out, C_in, e_h, e_w) with
    ``e = d*(f - 1) + 1``."""
    (d_h, d_w), (c_out, c_in, f_h, f_w) = dilation, weight.shape
    w_rot = weight[:, :, ::-1, ::-1]
    e_h, e_w = d_h * (f_h - 1) + 1, d_w * (f_w - 1) + 1
    w_rot_dilated = np.zeros((c_out, c_in, e_h, e_w), weight.dtype)
    for i in range(f_h):
        for j in range(f_w):
            w_rot_dilated[:, :, i * d_h, j * d_w] = w_rot[:, :, i, j]
    return w_rot, w_rot_dilated


def conv2d_input_gradient(dz: np.ndarray, weight: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """dA of a convolution: the "full" convolution of dZ with W rotated 180° (MATH.md §9).

    Every output pixel (m, k) sent ``W * dZ[m, k]`` back onto its window::

        dA_pad[n, c, r, q] = sum_o sum_m sum_k W[o, c, i, j] * dZ[n, o, m, k]
                             over the (m, k, i, j) with r = m*s_h + i*d_h, q = k*s_w + j*d_w

    which is computed here, step by step, as the article draws it:

    1. scatter dZ with ``s - 1`` zeros between its entries (undoes the stride);
    2. rotate the kernel by 180° and put ``d - 1`` zeros between its taps (dilation),
       giving a kernel of extent ``e = d*(f - 1) + 1``;
    3. pad the scattered dZ with ``e - 1`` zeros on every side ("full" convolution);
    4. slide the rotated kernel over it (valid cross-correlation, summed over C_out)::

           dA_pad[n, c, r, q] = sum_o sum_u sum_v W_rot[o, c, u, v] * dZ_full[n, o, r + u, q + v]

       this fills rows ``0 .. (H_out - 1)*s_h + e_h - 1`` of ``dA_pad``; rows that no window
       reached (when the stride skips the last ones) stay zero;
    5. crop the padding from ``dA_pad``.

    :func:`conv2d_input_gradient_steps` returns the array of every step.
    Returns dA of shape (N, C_in, H, W).
    """
    n_batch, c_in, h, w = geo.in_shape
    (p_t, p_b), (p_l, p_r) = geo.padding
    h_out, w_out = dz.shape[2:]
    dz = np.asarray(dz, dtype=weight.dtype)
    dz_gapped = _scatter_with_gaps(dz, geo.stride)                        # 1.
    _, w_rot_dilated = _rotate_and_dilate(weight, geo.dilation)           # 2.
    e_h, e_w = w_rot_dilated.shape[2:]
    dz_full = _pad(dz_gapped, ((e_h - 1, e_h - 1), (e_w - 1, e_w - 1)))   # 3.
    # 4. valid cross-correlation of dZ_full with the rotated kernel
    da_pad = np.zeros((n_batch, c_in, h + p_t + p_b, w + p_l + p_r), weight.dtype)
    reach_h, reach_w = (h_out - 1) * geo.stride[0] + e_h, (w_out - 1) * geo.stride[1] + e_w
    c_g, o_g = c_in // geo.groups, geo.out_shape[1] // geo.groups
    for n in range(n_batch):
        for c in range(c_in):
            outs = slice(c // c_g * o_g, (c // c_g + 1) * o_g)        # c's group's outputs
            for r in range(reach_h):
                for q in range(reach_w):
                    patch = dz_full[n, outs, r:r + e_h, q:q + e_w]       # (C_out/g, e_h, e_w)
                    da_pad[n, c, r, q] = np.sum(patch * w_rot_dilated[outs, c % c_g])
    # 5. crop the padding
    return da_pad[:, :, p_t:p_t + h, p_l:p_l + w].copy()


def conv2d_input_gradient_steps(dz: np.ndarray, weight: np.ndarray, geo: ConvGeometry
                                ) -> ConvInputGradientSteps:
    """:func:`conv2d_input_gradient` keeping the array of each of its steps (MATH.md §9).

    The same steps 1-5 (for groups 1: the figures draw plain convolutions); step 4
    keeps, for every pixel (r, q) of ``dA_pad`` and input
    channel c, the products it sums::

        products[n, c, r, q] = dZ_full[n, :, r:r + e_h, q:q + e_w] ⊙ W_rot_dilated[:, c]
        dA_pad[n, c, r, q]   = sum_o sum_u sum_v products[n, c, r, q, o, u, v]

    ``dx`` equals conv2d_input_gradient's bit for bit. Arguments as
    :func:`conv2d_input_gradient`: dz (N, C_out, H_out, W_out), weight (C_out, C_in, f_h,
    f_w), the forward's geometry.
    """
    _single_group(geo, "conv2d_input_gradient_steps")
    n_batch, c_in, h, w = geo.in_shape
    (p_t, p_b), (p_l, p_r) = geo.padding
    c_out, h_out, w_out = dz.shape[1:]
    dz = np.asarray(dz, dtype=weight.dtype)
    dz_gapped = _scatter_with_gaps(dz, geo.stride)                        # 1.
    w_rot, w_rot_dilated = _rotate_and_dilate(weight, geo.dilation)       # 2.
    e_h, e_w = w_rot_dilated.shape[2:]
    dz_full = _pad(dz_gapped, ((e_h - 1, e_h - 1), (e_w - 1, e_w - 1)))   # 3.
    da_pad = np.zeros((n_batch, c_in, h + p_t + p_b, w + p_l + p_r), weight.dtype)
    reach_h, reach_w = (h_out - 1) * geo.stride[0] + e_h, (w_out - 1) * geo.stride[1] + e_w
    products = np.zeros((n_batch, c_in, reach_h, reach_w, c_out, e_h, e_w), weight.dtype)
    for n in range(n_batch):                                              # 4.
        for c in range(c_in):
            for r in range(reach_h):
                for q in range(reach_w):
                    patch = dz_full[n, :, r:r + e_h, q:q + e_w]
                    products[n, c, r, q] = patch * w_rot_dilated[:, c]
                    da_pad[n, c, r, q] = np.sum(products[n, c, r, q])
    dx = da_pad[:, :, p_t:p_t + h, p_l:p_l + w].copy()                   # 5.
    return ConvInputGradientSteps(dz_gapped, w_rot.copy(), w_rot_dilated, dz_full, products,
                                  da_pad, dx)


class Conv2dBackwardSteps(NamedTuple):
    """Every term of :func:`conv2d_backward` (MATH.md §9)."""

    dz: np.ndarray             # (N, C_out, H_out, W_out): dL/dZ as given
    dw_terms: np.ndarray       # (N, C_out, H_out, W_out, C_in, f_h, f_w): slice(m, k) * dZ[m, k]
    dw: np.ndarray             # (C_out, C_in, f_h, f_w): the sum of dw_terms over n, m, k
    db: np.ndarray | None      # (C_out,): the sum of dZ over n, m, k; None without a bias
    input_gradient: ConvInputGradientSteps   # dA, step by step

    @property
    def dx(self) -> np.ndarray:
        """dA of shape (N, C_in, H, W), as :func:`conv2d_backward` returns it."""
        return self.input_gradient.dx


def conv2d_backward_steps(dy: np.ndarray, cache: Conv2dCache) -> Conv2dBackwardSteps:
    """:func:`conv2d_backward` keeping every term it sums (MATH.md §9), for figures.

    The same loop over output pixels::

        dw_terms[n, o, m, k] = A_pad[n, :, rows(m), cols(k)] * dZ[n, o, m, k]   (C_in, f_h, f_w)
        dW[o]                = sum_n sum_m sum_k dw_terms[n, o, m, k]
        db[o]                = sum_n sum_m sum_k dZ[n, o, m, k]

    and dA by :func:`conv2d_input_gradient_steps`. ``dw``, ``db`` and ``dx`` equal
    conv2d_backward's bit for bit. ``cache`` is conv2d_forward's (or
    :attr:`Conv2dSteps.cache`).
    """
    a_pad, weight, has_bias, geo = cache
    _single_group(geo, "conv2d_backward_steps")
    dz = _gradient_in(dy, weight.dtype, geo.out_shape, "conv2d_backward")
    n_batch, c_out, h_out, w_out = geo.out_shape
    db = np.zeros(c_out, weight.dtype)
    dw = np.zeros_like(weight)
    dw_terms = np.zeros((n_batch, c_out, h_out, w_out, *weight.shape[1:]), weight.dtype)
    for n in range(n_batch):
        for o in range(c_out):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    db[o] += dz[n, o, m, k]
                    dw_terms[n, o, m, k] = a_pad[n][:, rows, cols] * dz[n, o, m, k]
                    dw[o] += dw_terms[n, o, m, k]
    return Conv2dBackwardSteps(dz, dw_terms, dw, db if has_bias else None,
                               conv2d_input_gradient_steps(dz, weight, geo))


# ----------------------------------------------------------------- transposed convolution


class ConvTranspose2dCache(NamedTuple):
    """What :func:`conv_transpose2d_backward` needs."""

    x: np.ndarray
    weight: np.ndarray      # (C_in, C_out / groups, f_h, f_w)
    has_bias: bool
    geometry: ConvGeometry  # the conv2d whose input gradient this is (shapes.py)


def _transposed_targets(i: int, j: int, a: int, b: int, geo: ConvGeometry
                        ) -> tuple[int, int] | None:
    """Where input pixel (i, j) sends kernel tap (a, b): output pixel
    ``(i*s_h - p_t + a*d_h, j*s_w - p_l + b*d_w)``, None when that falls off the output."""
    r = i * geo.stride[0] - geo.padding[0][0] + a * geo.dilation[0]
    q = j * geo.stride[1] - geo.padding[1][0] + b * geo.dilation[1]
    h_out, w_out = geo.in_shape[2:]
    return (r, q) if 0 <= r < h_out and 0 <= q < w_out else None


def conv_transpose2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                             stride: IntPair = 1, padding: IntPair = 0,
                             output_padding: IntPair = 0, dilation: IntPair = 1,
                             groups: int = 1) -> tuple[np.ndarray, ConvTranspose2dCache]:
    """Transposed convolution, literally (PyTorch's ``conv_transpose2d``): every input
    pixel scatters its value times the kernel onto the output::

        Y[n, g*O_g + o, i*s_h - p_h + a*d_h, j*s_w - p_w + b*d_w] += X[n, c, i, j] * W[c, o, a, b]

    for input channel c in group g (``O_g = C_out / groups`` outputs per group), then
    ``+ b[o]``. Written from this definition alone (not through the convolution), so it
    checks functional/'s transposed convolution, which is conv2d's input gradient.

    x (N, C_in, H, W), weight (C_in, C_out / groups, f_h, f_w), output (N, C_out, H_out,
    W_out) with ``H_out = (H - 1)*s - 2p + d*(f - 1) + output_padding + 1``.
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    check_nchw(x, "conv_transpose2d")
    geo = conv_transpose2d_geometry(x.shape, weight.shape, stride, padding, output_padding,
                                    dilation, groups)
    dtype = np.result_type(as_float(x[:0]).dtype, as_float(weight[:0]).dtype)
    x, weight = x.astype(dtype), weight.astype(dtype)
    n_batch, c_out = geo.in_shape[:2]
    b = np.zeros(c_out, dtype)
    if bias is not None:
        b = np.asarray(bias, dtype=dtype)
        if b.shape != (c_out,):
            raise ShapeError(f"conv_transpose2d bias must have shape ({c_out},), got {b.shape}")
    c_in, o_g, f_h, f_w = weight.shape
    c_g = c_in // geo.groups
    y = np.zeros(geo.in_shape, dtype)
    for n in range(n_batch):
        for c in range(c_in):
            first = c // c_g * o_g                       # c's group's first output channel
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    for a in range(f_h):
                        for bb in range(f_w):
                            at = _transposed_targets(i, j, a, bb, geo)
                            if at is not None:
                                y[n, first:first + o_g, at[0], at[1]] += x[n, c, i, j] * \
                                    weight[c, :, a, bb]
    y += b[None, :, None, None]
    return y, ConvTranspose2dCache(x, weight, bias is not None, geo)


def conv_transpose2d_backward(dy: np.ndarray, cache: ConvTranspose2dCache,
                              input_grad: bool = True
                              ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`conv_transpose2d_forward`, literally: each scattered product
    ``X[n, c, i, j] * W[c, o, a, b]`` landed on one output pixel, so::

        dX[n, c, i, j] = sum_o sum_a sum_b W[c, o, a, b] * dY[n, g*O_g + o, target(i, j, a, b)]
        dW[c, o, a, b] = sum_n sum_i sum_j X[n, c, i, j] * dY[n, g*O_g + o, target(i, j, a, b)]
        db[o]          = sum_n sum_r sum_q dY[n, o, r, q]

    over the targets that fall on the output.
    """
    x, weight, has_bias, geo = cache
    dy = _gradient_in(dy, weight.dtype, geo.in_shape, "conv_transpose2d_backward")
    c_in, o_g, f_h, f_w = weight.shape
    c_g = c_in // geo.groups
    dx = np.zeros_like(x)
    dw = np.zeros_like(weight)
    for n in range(x.shape[0]):
        for c in range(c_in):
            first = c // c_g * o_g
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    for a in range(f_h):
                        for bb in range(f_w):
                            at = _transposed_targets(i, j, a, bb, geo)
                            if at is None:
                                continue
                            g = dy[n, first:first + o_g, at[0], at[1]]      # (O_g,)
                            dx[n, c, i, j] += np.sum(weight[c, :, a, bb] * g)
                            dw[c, :, a, bb] += x[n, c, i, j] * g
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return (dx if input_grad else None), dw, db


# ---------------------------------------------------------------------------- pooling


class MaxPool2dCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: the padded input (to rebuild each mask)."""

    a_pad: np.ndarray       # (N, C, H_pad, W_pad): A with a border of padding
    geometry: PoolGeometry


class AvgPool2dCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs to recount each window's divisor."""

    dtype: np.dtype
    count_include_pad: bool
    geometry: PoolGeometry
    divisor_override: int | None = None


def _in_input(rows: np.ndarray, cols: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """For each cell of a window (padded coordinates), whether it is a pixel of the input
    (True) or of the padding (False). Shape (f_h, f_w)."""
    h, w = geo.in_shape[2:]
    p_h, p_w = geo.padding[0][0], geo.padding[1][0]
    inside = np.zeros((rows.shape[0], cols.shape[1]), dtype=bool)
    for i, r in enumerate(rows[:, 0]):
        for j, q in enumerate(cols[0, :]):
            inside[i, j] = p_h <= r < p_h + h and p_w <= q < p_w + w
    return inside


def first_max_mask(window: np.ndarray, in_input: np.ndarray | None = None) -> np.ndarray:
    """The mask of MATH.md §11 for one 2-D window: True at its maximum, False elsewhere.

    Exactly one cell is True (none in a window of padding only): on ties, the first
    maximum in row-major order (as PyTorch).
    Only cells of the input compete (``in_input``; all of them when None), so padding
    never wins. A NaN beats every number (NaN propagates; of several NaNs the last
    wins), again PyTorch's rule.

    >>> first_max_mask(np.array([[1., 7.], [7., 2.]]))
    array([[False,  True],
           [False, False]])
    """
    if in_input is None:
        in_input = np.ones(window.shape, dtype=bool)
    best = None
    for i in range(window.shape[0]):
        for j in range(window.shape[1]):
            if not in_input[i, j]:
                continue
            if best is None or window[i, j] > window[best] or np.isnan(window[i, j]):
                best = (i, j)
    mask = np.zeros(window.shape, dtype=bool)
    if best is not None:       # else a window of padding only (dilation): no maximum
        mask[best] = True
    return mask


def max_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: object = 0, ceil_mode: bool = False, dilation: IntPair = 1
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling (MATH.md §10), literally: each output is the maximum of its window::

        Z[n, c, m, k] = max_{i < f_h, j < f_w} A_pad[n, c, m*s_h + i*d_h, k*s_w + j*d_w]

    where only input pixels compete (the padding never wins; see
    :func:`first_max_mask` for ties and NaN; a window of padding only gives -inf) and
    ``H_out = floor((H + p_top + p_bottom - d*(f - 1) - 1)/s) + 1`` (rounded up with
    ``ceil_mode``, PyTorch's rule: the bottom/right are padded further for the last,
    partial window).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (f_h, f_w)
    stride : int or (s_h, s_w); defaults to kernel_size
    padding : int, (p_h, p_w) or ((top, bottom), (left, right)), at most half the window
    ceil_mode : round the output size up
    dilation : int or (d_h, d_w)

    Returns
    -------
    z : ndarray of shape (N, C, H_out, W_out)
    cache : MaxPool2dCache for :func:`max_pool2d_backward`
    """
    x = as_float(x)
    check_nchw(x, "max_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "max_pool2d",
                          dilation)
    a_pad = _pad(x, geo.padding, -np.inf)
    n_batch, channels, h_out, w_out = geo.out_shape
    z = np.zeros(geo.out_shape, x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    window = a_pad[n, c, rows, cols]
                    mask = first_max_mask(window, _in_input(rows, cols, geo))
                    z[n, c, m, k] = window[mask][0] if mask.any() else -np.inf
    return z, MaxPool2dCache(a_pad, geo)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    """Backward of max pooling (MATH.md §11), literally: the gradient goes through a mask::

        dA_pad[n, c, window(m, k)] += dZ[n, c, m, k] * mask(m, k)

    where ``mask(m, k)`` is True only at the first maximum of window (m, k)
    (:func:`first_max_mask`). Overlapping windows (s < f) accumulate; the padding is
    cropped at the end.

    Returns dx of shape (N, C, H, W).
    """
    a_pad, geo = cache
    dz = _gradient_in(dy, a_pad.dtype, geo.out_shape, "max_pool2d_backward")
    n_batch, channels, h_out, w_out = geo.out_shape
    da_pad = np.zeros_like(a_pad)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    mask = first_max_mask(a_pad[n, c, rows, cols], _in_input(rows, cols, geo))
                    da_pad[n, c, rows, cols] += dz[n, c, m, k] * mask
    return _crop(da_pad, geo)


class MaxPool2dSteps(NamedTuple):
    """Max pooling window by window, with the mask of MATH.md §10-11."""

    a_pad: np.ndarray      # (N, C, H_pad, W_pad): A inside a border of -inf (padding never wins)
    windows: np.ndarray    # (N, C, H_out, W_out, f_h, f_w): A_pad under window (m, k)
    masks: np.ndarray      # (N, C, H_out, W_out, f_h, f_w) bool: first_max_mask of each window
    argmax: np.ndarray     # (N, C, H_out, W_out, 2) int: input (row, col) of each window's max
    z: np.ndarray          # (N, C, H_out, W_out): the window maxima
    geometry: PoolGeometry

    @property
    def cache(self) -> MaxPool2dCache:
        """The cache :func:`max_pool2d_forward` returns for the same call."""
        return MaxPool2dCache(self.a_pad, self.geometry)


def max_pool2d_forward_steps(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                             padding: object = 0, ceil_mode: bool = False,
                             dilation: IntPair = 1) -> MaxPool2dSteps:
    """:func:`max_pool2d_forward` keeping each window and its mask (MATH.md §10-11).

    The same loop; for window (m, k)::

        masks[n, c, m, k]  = first_max_mask(windows[n, c, m, k])    (one True cell)
        Z[n, c, m, k]      = the window's value under its mask
        argmax[n, c, m, k] = the input pixel (row, col) under the True cell, where
                             max_pool2d_backward sends dZ[n, c, m, k]

    ``z`` equals max_pool2d_forward's. Same arguments as :func:`max_pool2d_forward`.
    """
    x = as_float(x)
    check_nchw(x, "max_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "max_pool2d",
                          dilation)
    a_pad = _pad(x, geo.padding, -np.inf)
    n_batch, channels, h_out, w_out = geo.out_shape
    (p_t, _), (p_l, _) = geo.padding
    windows = np.zeros((*geo.out_shape, *geo.kernel), x.dtype)
    masks = np.zeros((*geo.out_shape, *geo.kernel), dtype=bool)
    argmax = np.zeros((*geo.out_shape, 2), dtype=int)
    z = np.zeros(geo.out_shape, x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    windows[n, c, m, k] = a_pad[n, c, rows, cols]
                    masks[n, c, m, k] = first_max_mask(windows[n, c, m, k],
                                                       _in_input(rows, cols, geo))
                    if not masks[n, c, m, k].any():     # padding only: no maximum
                        z[n, c, m, k] = -np.inf
                        argmax[n, c, m, k] = -1
                        continue
                    z[n, c, m, k] = windows[n, c, m, k][masks[n, c, m, k]][0]
                    (i, j), = np.argwhere(masks[n, c, m, k])
                    argmax[n, c, m, k] = rows[i, 0] - p_t, cols[0, j] - p_l
    return MaxPool2dSteps(a_pad, windows, masks, argmax, z, geo)


class MaxPool2dBackwardSteps(NamedTuple):
    """How max pooling's backward routes each gradient through its mask (MATH.md §11)."""

    dz: np.ndarray         # (N, C, H_out, W_out): dL/dZ as given
    masks: np.ndarray      # (N, C, H_out, W_out, f_h, f_w) bool: each window's mask
    routed: np.ndarray     # (N, C, H_out, W_out, f_h, f_w): dZ[m, k] * mask(m, k), sent back
    da_pad: np.ndarray     # (N, C, H_pad, W_pad): the routed windows added up in place
    dx: np.ndarray         # (N, C, H, W): da_pad without the padding


def max_pool2d_backward_steps(dy: np.ndarray, cache: MaxPool2dCache) -> MaxPool2dBackwardSteps:
    """:func:`max_pool2d_backward` keeping what each window sends back (MATH.md §11).

    The same loop::

        routed[n, c, m, k]          = dZ[n, c, m, k] * mask(m, k)      (f_h, f_w)
        dA_pad[n, c, window(m, k)] += routed[n, c, m, k]

    ``dx`` equals max_pool2d_backward's. ``cache`` is max_pool2d_forward's (or
    :attr:`MaxPool2dSteps.cache`).
    """
    a_pad, geo = cache
    dz = _gradient_in(dy, a_pad.dtype, geo.out_shape, "max_pool2d_backward")
    n_batch, channels, h_out, w_out = geo.out_shape
    masks = np.zeros((*geo.out_shape, *geo.kernel), dtype=bool)
    routed = np.zeros((*geo.out_shape, *geo.kernel), a_pad.dtype)
    da_pad = np.zeros_like(a_pad)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    masks[n, c, m, k] = first_max_mask(a_pad[n, c, rows, cols],
                                                       _in_input(rows, cols, geo))
                    routed[n, c, m, k] = dz[n, c, m, k] * masks[n, c, m, k]
                    da_pad[n, c, rows, cols] += routed[n, c, m, k]
    return MaxPool2dBackwardSteps(dz, masks, routed, da_pad, _crop(da_pad, geo))


def avg_window_divisor(m: int, k: int, geo: PoolGeometry, count_include_pad: bool) -> int:
    """What the sum of average-pooling window (m, k) is divided by (PyTorch's rule).

    MATH.md §11 writes it ``f²`` (a window inside the input). At the border, counted
    cell by cell: a cell of the input always counts; a cell of the padding asked for
    counts when ``count_include_pad``; a cell of the extra bottom/right padding that
    ``ceil_mode`` adds never counts.
    """
    h, w = geo.in_shape[2:]
    (p_t, p_b), (p_l, p_r) = geo.user_padding
    rows, cols = _window_index(m, k, geo.kernel, geo.stride)
    in_input = _in_input(rows, cols, geo)
    count = 0
    for i, r in enumerate(rows[:, 0]):
        for j, q in enumerate(cols[0, :]):
            in_asked_padding = r < p_t + h + p_b and q < p_l + w + p_r
            if in_input[i, j] or (count_include_pad and in_asked_padding):
                count += 1
    return count


def avg_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: object = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True, divisor_override: int | None = None
                       ) -> tuple[np.ndarray, AvgPool2dCache]:
    """Average pooling (MATH.md §10), literally: each output is the mean of its window::

        Z[n, c, m, k] = (1 / D(m, k)) sum_{i < f_h, j < f_w} A_pad[n, c, m*s_h + i, k*s_w + j]

    with ``A_pad`` padded by zeros and ``D(m, k)`` from :func:`avg_window_divisor`
    (``f_h * f_w`` away from the border), or ``divisor_override`` for every window.
    Same arguments as :func:`max_pool2d_forward` (no dilation).
    """
    x = as_float(x)
    check_nchw(x, "avg_pool2d")
    geo = pool2d_geometry(x.shape, kernel_size, stride, padding, ceil_mode, "avg_pool2d")
    override = check_divisor_override(divisor_override)
    a_pad = _pad(x, geo.padding, 0.0)
    n_batch, channels, h_out, w_out = geo.out_shape
    z = np.zeros(geo.out_shape, x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride)
                    divisor = avg_window_divisor(m, k, geo, count_include_pad) \
                        if override is None else override
                    z[n, c, m, k] = np.sum(a_pad[n, c, rows, cols]) / divisor
    return z, AvgPool2dCache(x.dtype, count_include_pad, geo, override)


def avg_pool2d_backward(dy: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    """Backward of average pooling (MATH.md §11), literally::

        dA_pad[n, c, window(m, k)] += dZ[n, c, m, k] / D(m, k)

    every cell of a window gets the same share (``dZ / f²`` inside the input);
    overlapping windows accumulate; the padding is cropped at the end.

    Returns dx of shape (N, C, H, W).
    """
    dtype, count_include_pad, geo, override = cache
    dz = _gradient_in(dy, dtype, geo.out_shape, "avg_pool2d_backward")
    n_batch, channels, h_out, w_out = geo.out_shape
    (p_t, p_b), (p_l, p_r) = geo.padding
    h, w = geo.in_shape[2:]
    da_pad = np.zeros((n_batch, channels, h + p_t + p_b, w + p_l + p_r), dtype)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride)
                    divisor = avg_window_divisor(m, k, geo, count_include_pad) \
                        if override is None else override
                    da_pad[n, c, rows, cols] += dz[n, c, m, k] / divisor
    return _crop(da_pad, geo)


def _crop(a_pad: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """Drop the padded border of a pooling input gradient."""
    (p_t, _), (p_l, _) = geo.padding
    h, w = geo.in_shape[2:]
    return a_pad[:, :, p_t:p_t + h, p_l:p_l + w].copy()


# ------------------------------------------------------------------------ activations
# A = g(Z) (MATH.md §7) and dZ = dA ⊙ g'(Z) (MATH.md §9), one element at a time.


def relu_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = max(z, 0)``; the cache is ``a``."""
    z = as_float(z)
    a = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        a[idx] = max(z[idx], 0)
    return a, a


def relu_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da * g'(z)`` with ``g'(z) = 1`` for ``z > 0``, else 0 (0 at z = 0, as PyTorch)."""
    a = cache
    da = np.asarray(da, dtype=a.dtype)
    dz = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        dz[idx] = da[idx] if a[idx] > 0 else 0
    return dz


def add_relu_forward(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = max(a + b, 0)``, a residual sum and its ReLU; the cache is ``y``."""
    a, b = as_float(a), as_float(b)
    y = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        y[idx] = max(a[idx] + b[idx], 0)
    return y, y


def add_relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """The gradient of a and of b alike: ``dy`` where ``y > 0``, else 0."""
    return relu_backward(dy, cache)


def leaky_relu_forward(z: np.ndarray, negative_slope: float = 0.01
                       ) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """``a = z`` for ``z > 0``, else ``negative_slope * z``."""
    z = as_float(z)
    slope = z.dtype.type(negative_slope)
    a = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        a[idx] = z[idx] if z[idx] > 0 else slope * z[idx]
    return a, (z, negative_slope)


def leaky_relu_backward(da: np.ndarray, cache: tuple[np.ndarray, float]) -> np.ndarray:
    """``dz = da`` for ``z > 0``, else ``negative_slope * da``."""
    z, negative_slope = cache
    slope = z.dtype.type(negative_slope)
    da = np.asarray(da, dtype=z.dtype)
    dz = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        dz[idx] = da[idx] if z[idx] > 0 else slope * da[idx]
    return dz


def sigmoid_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = 1 / (1 + exp(-z))``, written ``exp(z) / (1 + exp(z))`` for z < 0 (no overflow)."""
    z = as_float(z)
    a = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        if z[idx] >= 0:
            a[idx] = 1 / (1 + np.exp(-z[idx]))
        else:
            a[idx] = np.exp(z[idx]) / (1 + np.exp(z[idx]))
    return a, a


def sigmoid_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da * g'(z)`` with ``g'(z) = a (1 - a)``."""
    a = cache
    da = np.asarray(da, dtype=a.dtype)
    dz = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        dz[idx] = da[idx] * a[idx] * (1 - a[idx])
    return dz


def tanh_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a = tanh(z)``."""
    z = as_float(z)
    a = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        a[idx] = np.tanh(z[idx])
    return a, a


def tanh_backward(da: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dz = da * g'(z)`` with ``g'(z) = 1 - a^2``."""
    a = cache
    da = np.asarray(da, dtype=a.dtype)
    dz = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        dz[idx] = da[idx] * (1 - a[idx] * a[idx])
    return dz


def softmax_forward(z: np.ndarray, axis: int = -1) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``a_i = exp(z_i - max z) / sum_j exp(z_j - max z)`` along ``axis``, one vector at a time."""
    z = as_float(z)
    zt = np.moveaxis(z, axis, -1)
    at = np.zeros_like(zt)
    for idx in np.ndindex(zt.shape[:-1]):
        row = zt[idx]
        top = max(row)
        e = [np.exp(v - top) for v in row]
        total = sum(e)
        for i, e_i in enumerate(e):
            at[(*idx, i)] = e_i / total
    a = np.moveaxis(at, -1, axis)
    return a, (a, axis)


def softmax_backward(da: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """Through the softmax Jacobian ``J[j, i] = da_j/dz_i = a_j (δ_ij - a_i)``::

        dz_i = sum_j da_j * a_j * (δ_ij - a_i)
    """
    a, axis = cache
    at = np.moveaxis(a, axis, -1)
    dat = np.moveaxis(np.asarray(da, dtype=a.dtype), axis, -1)
    dzt = np.zeros_like(at)
    size = at.shape[-1]
    for idx in np.ndindex(at.shape[:-1]):
        for i in range(size):
            total = 0
            for j in range(size):
                delta = 1 if i == j else 0
                total += dat[(*idx, j)] * at[(*idx, j)] * (delta - at[(*idx, i)])
            dzt[(*idx, i)] = total
    return np.moveaxis(dzt, -1, axis)


# ------------------------------------------------------------------------------- loss


class SoftmaxCECache(NamedTuple):
    probs: np.ndarray    # (N, K) softmax of the logits
    labels: np.ndarray   # (N,) integer class indices


def softmax_cross_entropy_forward(logits: np.ndarray, labels: np.ndarray
                                  ) -> tuple[float, SoftmaxCECache]:
    """Mean cross-entropy of softmax(logits) against integer labels, sample by sample::

        L = (1/N) sum_n [ log sum_k exp(z[n, k] - max_k z[n]) - (z[n, y_n] - max_k z[n]) ]

    (the log-sum-exp of the logits minus the true class's logit, shifted by the row's
    maximum so that large logits do not overflow).

    Parameters
    ----------
    logits : ndarray of shape (N, K)
    labels : integer ndarray of shape (N,), values in [0, K)

    Returns
    -------
    loss : float
    cache : SoftmaxCECache for :func:`softmax_cross_entropy_backward`
    """
    z = as_float(logits)
    labels = check_logits_labels(z, np.asarray(labels))
    n_samples = z.shape[0]
    probs = np.zeros_like(z)
    total = 0.0
    for n in range(n_samples):
        top = max(z[n])
        log_sum_exp = np.log(sum(np.exp(v - top) for v in z[n]))
        total += log_sum_exp - (z[n, labels[n]] - top)
        for k in range(z.shape[1]):
            probs[n, k] = np.exp(z[n, k] - top - log_sum_exp)
    loss = total / n_samples if n_samples else 0.0
    return float(loss), SoftmaxCECache(probs, labels)


def softmax_cross_entropy_backward(dloss: float, cache: SoftmaxCECache) -> np.ndarray:
    """``dL/dz[n, k] = dloss * (softmax(z)[n, k] - [k == y_n]) / N``, shape (N, K)."""
    probs, labels = cache
    n_samples, classes = probs.shape
    dz = np.zeros_like(probs)
    for n in range(n_samples):
        for k in range(classes):
            onehot = 1 if k == labels[n] else 0
            dz[n, k] = dloss * (probs[n, k] - onehot) / n_samples
    return dz


# ----------------------------------------------------------------------------- linear


class LinearCache(NamedTuple):
    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
                   ) -> tuple[np.ndarray, LinearCache]:
    """Dense layer (PyTorch weight layout), one output at a time::

        y[n, o] = sum_i x[n, i] * W[o, i] + b[o]

    Parameters
    ----------
    x : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,) or None

    Returns
    -------
    y : ndarray of shape (N, out_features)
    cache : LinearCache
    """
    x, weight = check_linear(x, weight)
    dtype = x.dtype
    n_samples, (out_features, in_features) = x.shape[0], weight.shape
    b = np.zeros(out_features, dtype)
    if bias is not None:
        b = np.asarray(bias, dtype=dtype)
        if b.shape != (out_features,):
            raise ShapeError(f"linear bias must have shape ({out_features},), got {b.shape}")
    y = np.zeros((n_samples, out_features), dtype)
    for n in range(n_samples):
        for o in range(out_features):
            y[n, o] = sum(x[n, i] * weight[o, i] for i in range(in_features)) + b[o]
    return y, LinearCache(x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache: LinearCache, input_grad: bool = True
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Backward of :func:`linear_forward`::

        dx[n, i] = sum_o dy[n, o] * W[o, i]
        dW[o, i] = sum_n dy[n, o] * x[n, i]
        db[o]    = sum_n dy[n, o]

    Returns ``(dx, dW, db)``; dx is None when ``input_grad`` is False, db when the
    forward had no bias.
    """
    x, weight, has_bias = cache
    dy = np.asarray(dy, dtype=weight.dtype)
    n_samples, in_features = x.shape
    out_features = weight.shape[0]
    dx = np.zeros_like(x)
    dw = np.zeros_like(weight)
    db = np.zeros(out_features, weight.dtype)
    for n in range(n_samples):
        for o in range(out_features):
            db[o] += dy[n, o]
            for i in range(in_features):
                dx[n, i] += dy[n, o] * weight[o, i]
                dw[o, i] += dy[n, o] * x[n, i]
    return (dx if input_grad else None), dw, (db if has_bias else None)


# ---------------------------------------------------------------------------- dropout


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout, element by element::

        mask = 1 / (1 - p)  if u >= p  else 0,    u ~ Uniform[0, 1)
        y    = x * mask

    The uniforms are drawn exactly as the fast op draws them (one
    ``rng.random(x.shape)``), so the same generator state gives the same mask.
    Returns ``(y, mask)``; with ``p = 0`` the mask is None and ``y`` is ``x``.
    """
    if not 0.0 <= p < 1.0:
        raise ClearConvError(f"dropout probability must be in [0, 1), got {p}")
    x = as_float(x)
    if p == 0.0:
        return x, None
    u = rng.random(x.shape, dtype=x.dtype)
    scale = x.dtype.type(1.0 / (1.0 - p))
    mask = np.zeros_like(x)
    y = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        mask[idx] = scale if u[idx] >= p else 0
        y[idx] = x[idx] * mask[idx]
    return y, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``dx = dy * mask`` (identity when p was 0)."""
    if mask is None:
        return dy
    dy = np.asarray(dy)
    dx = np.zeros(mask.shape, np.result_type(dy.dtype, mask.dtype))
    for idx in np.ndindex(mask.shape):
        dx[idx] = dy[idx] * mask[idx]
    return dx



# ---------------------------------------------------------------- batch normalisation


class BatchNormCache(NamedTuple):
    """What :func:`batch_norm2d_backward` needs from the forward pass."""

    xhat: np.ndarray            # (N, C, H, W) the normalised input
    invstd: np.ndarray          # (C,) 1 / sqrt(var + eps)
    gamma: np.ndarray           # (C,) the scale (ones when the forward had none)
    batch_stats: bool           # training mode: the statistics were the batch's
    has_gamma: bool
    has_beta: bool


def batch_norm2d_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                         running_mean: np.ndarray | None, running_var: np.ndarray | None,
                         training: bool, momentum: float = 0.1, eps: float = 1e-5
                         ) -> tuple[np.ndarray, BatchNormCache]:
    """Batch normalisation (Ioffe & Szegedy 2015), channel by channel, value by value::

        M        = N * H * W
        mu[c]    = 1/M sum_{n,h,w} x[n, c, h, w]
        var[c]   = 1/M sum_{n,h,w} (x[n, c, h, w] - mu[c])^2
        xhat     = (x[n, c, h, w] - mu[c]) / sqrt(var[c] + eps)
        y        = gamma[c] * xhat + beta[c]

    Training uses the batch's mu and var and updates the running statistics in place:
    ``r_mean = (1 - momentum) r_mean + momentum mu`` and ``r_var = (1 - momentum) r_var
    + momentum var M / (M - 1)`` (the unbiased variance); evaluation uses r_mean, r_var.
    gamma / beta None mean 1 / 0.
    """
    x, g, b = check_batch_norm(x, gamma, beta, running_mean, running_var, training,
                               momentum, eps)
    n_samples, channels, height, width = x.shape
    count = n_samples * height * width
    xhat = np.zeros_like(x)
    y = np.zeros_like(x)
    invstd = np.zeros(channels, x.dtype)
    for c in range(channels):
        if training:
            total = 0.0
            for n in range(n_samples):
                for h in range(height):
                    for w in range(width):
                        total += x[n, c, h, w]
            mu = total / count
            squares = 0.0
            for n in range(n_samples):
                for h in range(height):
                    for w in range(width):
                        squares += (x[n, c, h, w] - mu) ** 2
            var = squares / count
            if running_mean is not None:
                running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mu
                running_var[c] = ((1 - momentum) * running_var[c]
                                  + momentum * var * count / (count - 1))
        else:
            mu, var = running_mean[c], running_var[c]
        invstd[c] = 1.0 / np.sqrt(var + eps)
        scale = 1.0 if g is None else g[c]
        shift = 0.0 if b is None else b[c]
        for n in range(n_samples):
            for h in range(height):
                for w in range(width):
                    xhat[n, c, h, w] = (x[n, c, h, w] - mu) * invstd[c]
                    y[n, c, h, w] = scale * xhat[n, c, h, w] + shift
    ones = np.ones(channels, x.dtype)
    return y, BatchNormCache(xhat, invstd, ones if g is None else g, bool(training),
                             g is not None, b is not None)


def batch_norm2d_backward(dy: np.ndarray, cache: BatchNormCache
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of :func:`batch_norm2d_forward`, value by value::

        dbeta[c]  = sum_{n,h,w} dy
        dgamma[c] = sum_{n,h,w} dy * xhat
        dx        = gamma[c] invstd[c] (dy - dbeta[c] / M - xhat dgamma[c] / M)   (training)
        dx        = gamma[c] invstd[c] dy                                      (evaluation)

    In training, mu and var are functions of every x of the channel: the two subtracted
    terms are dL/dx through mu and through var. Returns ``(dx, dgamma, dbeta)``; dgamma
    (dbeta) is None when the forward had no gamma (beta).
    """
    xhat, invstd, gamma = cache.xhat, cache.invstd, cache.gamma
    dz = _gradient_in(dy, xhat.dtype, xhat.shape, "batch_norm2d_backward")
    n_samples, channels, height, width = xhat.shape
    count = n_samples * height * width
    dx = np.zeros_like(xhat)
    dgamma = np.zeros(channels, xhat.dtype)
    dbeta = np.zeros(channels, xhat.dtype)
    for c in range(channels):
        for n in range(n_samples):
            for h in range(height):
                for w in range(width):
                    dbeta[c] += dz[n, c, h, w]
                    dgamma[c] += dz[n, c, h, w] * xhat[n, c, h, w]
        for n in range(n_samples):
            for h in range(height):
                for w in range(width):
                    g = dz[n, c, h, w]
                    if cache.batch_stats:
                        g = g - dbeta[c] / count - xhat[n, c, h, w] * dgamma[c] / count
                    dx[n, c, h, w] = gamma[c] * invstd[c] * g
    return dx, (dgamma if cache.has_gamma else None), (dbeta if cache.has_beta else None)


def batch_norm1d_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                         running_mean: np.ndarray | None, running_var: np.ndarray | None,
                         training: bool, momentum: float = 0.1, eps: float = 1e-5
                         ) -> tuple[np.ndarray, tuple[tuple[int, ...], BatchNormCache]]:
    """The 1-D form, x (N, C) or (N, C, L): :func:`batch_norm2d_forward` of x as
    (N, C, L, 1). Returns y of x's shape and ``(x.shape, cache)``."""
    x = as_float(x)
    if x.ndim not in (2, 3):
        raise ShapeError(f"batch_norm1d expects input of shape (N, C) or (N, C, L), got shape "
                         f"{tuple(x.shape)} ({x.ndim} dimensions)")
    y, cache = batch_norm2d_forward(x.reshape(x.shape[0], x.shape[1], -1, 1), gamma, beta,
                                    running_mean, running_var, training, momentum, eps)
    return y.reshape(x.shape), (tuple(x.shape), cache)


def batch_norm1d_backward(dy: np.ndarray, cache: tuple[tuple[int, ...], BatchNormCache]
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of :func:`batch_norm1d_forward`."""
    shape, inner = cache
    dz = _gradient_in(dy, inner.xhat.dtype, shape, "batch_norm1d_backward")
    dx, dgamma, dbeta = batch_norm2d_backward(dz.reshape(inner.xhat.shape), inner)
    return dx.reshape(shape), dgamma, dbeta

__all__ = [
    "AvgPool2dCache",
    "BatchNormCache",
    "Conv2dBackwardSteps",
    "Conv2dCache",
    "Conv2dSteps",
    "ConvInputGradientSteps",
    "LinearCache",
    "MaxPool2dBackwardSteps",
    "MaxPool2dCache",
    "MaxPool2dSteps",
    "SoftmaxCECache",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "avg_window_divisor",
    "batch_norm1d_backward",
    "batch_norm1d_forward",
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "conv2d_backward",
    "conv2d_backward_steps",
    "conv2d_forward",
    "conv2d_forward_steps",
    "conv2d_input_gradient",
    "conv2d_input_gradient_steps",
    "dropout_backward",
    "dropout_forward",
    "first_max_mask",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_backward_steps",
    "max_pool2d_forward",
    "max_pool2d_forward_steps",
    "relu_backward",
    "relu_forward",
    "add_relu_backward",
    "add_relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]


# ------------------------------------------------------------------------ more losses
# (functional/losses.py: log-softmax, torch.nn.CrossEntropyLoss whole, MSELoss,
# BCEWithLogitsLoss), one prediction and one element at a time.

from .shapes import (  # noqa: E402
    check_broadcasts,
    check_cross_entropy,
    check_reduction,
    check_same_shape,
)


def log_softmax_forward(z: np.ndarray, axis: int = 1) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """``log softmax(z)_i = (z_i - max z) - log sum_j exp(z_j - max z)`` along ``axis``,
    one vector at a time."""
    z = as_float(z)
    zt = np.moveaxis(z, axis, -1)
    out = np.zeros_like(zt)
    for idx in np.ndindex(zt.shape[:-1]):
        row = zt[idx]
        top = max(row)
        log_sum_exp = np.log(sum(np.exp(v - top) for v in row))
        for i, v in enumerate(row):
            out[(*idx, i)] = v - top - log_sum_exp
    out = np.moveaxis(out, -1, axis)
    return out, (out, axis)


def log_softmax_backward(d_out: np.ndarray, cache: tuple[np.ndarray, int]) -> np.ndarray:
    """Through the Jacobian ``d(log p_j)/dz_i = δ_ij - p_i``::

        dz_i = sum_j d_j (δ_ij - p_i)
    """
    out, axis = cache
    ot = np.moveaxis(out, axis, -1)
    dt = np.moveaxis(np.asarray(d_out, dtype=out.dtype), axis, -1)
    dz = np.zeros_like(ot)
    size = ot.shape[-1]
    for idx in np.ndindex(ot.shape[:-1]):
        for i in range(size):
            p_i = np.exp(ot[(*idx, i)])
            dz[(*idx, i)] = sum(dt[(*idx, j)] * ((1 if i == j else 0) - p_i)
                                for j in range(size))
    return np.moveaxis(dz, -1, axis)


class CrossEntropyCache(NamedTuple):
    log_probs: np.ndarray   # (N, C, d1, ...) log-softmax over the class axis
    q: np.ndarray           # (N, C, d1, ...) the weighted target of each prediction
    scale: float | None     # 1/denominator ('mean'), 1 ('sum'), None ('none')


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray,
                          weight: np.ndarray | None = None, ignore_index: int = -100,
                          reduction: str = "mean", label_smoothing: float = 0.0
                          ) -> tuple[float | np.ndarray, CrossEntropyCache]:
    """``torch.nn.CrossEntropyLoss``, prediction by prediction: for each sample n and
    position ``pos`` (none for (N, C) logits), with ``eps = label_smoothing``, ``w`` the
    class weights (1 without ``weight``) and C classes::

        log p_c = log_softmax(z[n, :, pos])_c
        class index y = target[n, pos] (skipped when y == ignore_index):
            l = (1 - eps) * (-w_y log p_y) + (eps / C) * sum_c (-w_c log p_c)
            'mean' divides the sum of the l by the sum of the w_y of the kept predictions
        probabilities t = target[n, :, pos]:
            l = sum_c -w_c ((1 - eps) t_c + eps / C) log p_c
            'mean' divides the sum by the number of predictions
    """
    z = as_float(logits)
    checked = check_cross_entropy(z, np.asarray(target), weight, ignore_index, reduction,
                                  label_smoothing)
    classes = z.shape[1]
    w = checked.weight if checked.weight is not None else np.ones(classes, z.dtype)
    eps = float(label_smoothing)
    log_probs, _ = log_softmax_forward(z, axis=1)
    q = np.zeros_like(z)
    per = np.zeros((z.shape[0], *z.shape[2:]), z.dtype)
    denominator = 0.0
    for n, *pos in np.ndindex(per.shape):
        at = [(n, c, *pos) for c in range(classes)]
        if checked.probabilities:
            for c in range(classes):
                q[at[c]] = w[c] * ((1 - eps) * checked.target[at[c]] + eps / classes)
            denominator += 1
        else:
            y = checked.target[(n, *pos)]
            if y == ignore_index:
                continue
            for c in range(classes):
                q[at[c]] = (1 - eps) * w[y] * (1 if c == y else 0) + eps / classes * w[c]
            denominator += w[y]
        per[(n, *pos)] = sum(-q[at[c]] * log_probs[at[c]] for c in range(classes))
    if reduction == "none":
        return per, CrossEntropyCache(log_probs, q, None)
    total = float(sum(per.reshape(-1).tolist()))
    if reduction == "sum":
        return total, CrossEntropyCache(log_probs, q, 1.0)
    if denominator == 0:
        return float("nan"), CrossEntropyCache(log_probs, q, 0.0)   # zero gradients
    return total / denominator, CrossEntropyCache(log_probs, q, 1.0 / denominator)


def cross_entropy_backward(d_loss: float | np.ndarray, cache: CrossEntropyCache) -> np.ndarray:
    """For each prediction, ``l = -sum_j q_j log p_j`` through the log-softmax Jacobian::

        dl/dz_c = -sum_j q_j (δ_jc - p_c) = (sum_j q_j) p_c - q_c

    times d_loss and the reduction's scale (``d_loss[n, pos]`` for 'none')."""
    log_probs, q, scale = cache
    classes = log_probs.shape[1]
    dz = np.zeros_like(log_probs)
    d = np.asarray(d_loss, dtype=np.float64)
    for n, *pos in np.ndindex((log_probs.shape[0], *log_probs.shape[2:])):
        factor = float(d[(n, *pos)]) if scale is None else float(d) * scale
        at = [(n, c, *pos) for c in range(classes)]
        q_total = sum(q[a] for a in at)
        for c in range(classes):
            dz[at[c]] = factor * (q_total * np.exp(log_probs[at[c]]) - q[at[c]])
    return dz


class ElementwiseLossCache(NamedTuple):
    grad: np.ndarray     # dl_i/dx_i of each element
    reduction: str


def _reduce_elements(per: np.ndarray, reduction: str) -> float | np.ndarray:
    if reduction == "none":
        return per
    total = float(sum(per.reshape(-1).tolist()))
    if reduction == "sum":
        return total
    return total / per.size if per.size else float("nan")


def _scaled(grad: np.ndarray, d_loss: float | np.ndarray, reduction: str) -> np.ndarray:
    out = np.zeros_like(grad)
    for idx in np.ndindex(grad.shape):
        if reduction == "none":
            out[idx] = grad[idx] * np.asarray(d_loss)[idx]
        else:
            out[idx] = grad[idx] * float(d_loss) / (grad.size if reduction == "mean" else 1)
    return out


def mse_forward(x: np.ndarray, target: np.ndarray, reduction: str = "mean"
                ) -> tuple[float | np.ndarray, ElementwiseLossCache]:
    """``torch.nn.MSELoss``: ``l_i = (x_i - t_i)^2`` element by element."""
    check_reduction(reduction)
    x = as_float(x)
    t = np.asarray(target)
    check_same_shape(x, t, "mse")
    per = np.zeros_like(x)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        diff = x[idx] - x.dtype.type(t[idx])
        per[idx] = diff * diff
        grad[idx] = 2 * diff
    return _reduce_elements(per, reduction), ElementwiseLossCache(grad, reduction)


def mse_backward(d_loss: float | np.ndarray, cache: ElementwiseLossCache) -> np.ndarray:
    """``dL/dx_i = 2 (x_i - t_i)`` times d_loss (over the element count for 'mean')."""
    return _scaled(cache.grad, d_loss, cache.reduction)


def binary_cross_entropy_with_logits_forward(
        logits: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
        pos_weight: np.ndarray | None = None, reduction: str = "mean"
) -> tuple[float | np.ndarray, ElementwiseLossCache]:
    """``torch.nn.BCEWithLogitsLoss``, element by element, from its definition::

        l_i = -w_i [ pw t_i log s_i + (1 - t_i) log(1 - s_i) ],   s_i = sigmoid(x_i)
        dl_i/dx_i = w_i [ (1 - t_i) s_i - pw t_i (1 - s_i) ]

    with ``log s = -log(1 + exp(-x))`` and ``log(1 - s) = -log(1 + exp(x))`` taken through
    ``np.logaddexp(0, .)`` so that no log of 0 is formed.
    """
    check_reduction(reduction)
    x = as_float(logits)
    t = np.asarray(target)
    check_same_shape(x, t, "binary_cross_entropy_with_logits")
    check_broadcasts(weight, x.shape, "weight", "binary_cross_entropy_with_logits")
    check_broadcasts(pos_weight, x.shape, "pos_weight", "binary_cross_entropy_with_logits")
    w = np.broadcast_to(np.asarray(1.0 if weight is None else weight, x.dtype), x.shape)
    pw = np.broadcast_to(np.asarray(1.0 if pos_weight is None else pos_weight, x.dtype), x.shape)
    per = np.zeros_like(x)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xi, ti = float(x[idx]), float(t[idx])
        log_s, log_1ms = -np.logaddexp(0.0, -xi), -np.logaddexp(0.0, xi)
        s, one_minus_s = np.exp(log_s), np.exp(log_1ms)    # sigmoid(x), sigmoid(-x)
        per[idx] = -w[idx] * (pw[idx] * ti * log_s + (1 - ti) * log_1ms)
        grad[idx] = w[idx] * ((1 - ti) * s - pw[idx] * ti * one_minus_s)
    return _reduce_elements(per, reduction), ElementwiseLossCache(grad, reduction)


def binary_cross_entropy_with_logits_backward(d_loss: float | np.ndarray,
                                              cache: ElementwiseLossCache) -> np.ndarray:
    """``dL/dx_i = dl_i/dx_i`` times d_loss (over the element count for 'mean')."""
    return _scaled(cache.grad, d_loss, cache.reduction)


__all__ += [
    "CrossEntropyCache",
    "ElementwiseLossCache",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "mse_backward",
    "mse_forward",
]


# ------------------------------------------- pooling indices, unpooling (issue 13, pooling)
def max_pool2d_indices(cache: MaxPool2dCache) -> np.ndarray:
    """PyTorch's ``return_indices``, literally: for each window (m, k), the flat index
    ``row * W + col`` in its input plane of the cell :func:`first_max_mask` picks.

    ``cache`` is :func:`max_pool2d_forward`'s; returns int64 (N, C, H_out, W_out).
    """
    a_pad, geo = cache
    n_batch, channels, h_out, w_out = geo.out_shape
    (p_t, _), (p_l, _) = geo.padding
    width = geo.in_shape[3]
    indices = np.full(geo.out_shape, -1, np.int64)     # -1: a window of padding only
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h_out):
                for k in range(w_out):
                    rows, cols = _window_index(m, k, geo.kernel, geo.stride, geo.dilation)
                    mask = first_max_mask(a_pad[n, c, rows, cols], _in_input(rows, cols, geo))
                    for i in range(geo.kernel[0]):
                        for j in range(geo.kernel[1]):
                            if mask[i, j]:
                                indices[n, c, m, k] = ((rows[i, 0] - p_t) * width
                                                       + cols[0, j] - p_l)
    return indices


class MaxUnpool2dCache(NamedTuple):
    """What :func:`max_unpool2d_backward` needs: the indices and the shapes."""

    indices: np.ndarray
    out_shape: tuple[int, int, int, int]
    dtype: np.dtype


def max_unpool2d_forward(x: np.ndarray, indices: np.ndarray, kernel_size: IntPair,
                         stride: IntPair | None = None, padding: object = 0,
                         output_size: object = None) -> tuple[np.ndarray, MaxUnpool2dCache]:
    """Max unpooling, literally: a zero plane, each value written at its index::

        Y[n, c, idx // W_out, idx % W_out] = X[n, c, m, k],  idx = indices[n, c, m, k]

    with ``H_out = (H - 1)*s - p_top - p_bottom + f`` unless ``output_size`` says
    otherwise (:func:`clearconv.shapes.unpool_output_size`, shared with the fast op).
    """
    x = as_float(x)
    check_nchw(x, "max_unpool2d")
    indices = np.asarray(indices)
    n_batch, channels, h, w = x.shape
    h_out, w_out = unpool_output_size((h, w), kernel_size, stride, padding, output_size)
    y = np.zeros((n_batch, channels, h_out, w_out), x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for m in range(h):
                for k in range(w):
                    idx = int(indices[n, c, m, k])
                    if not 0 <= idx < h_out * w_out:
                        raise ShapeError(f"max_unpool2d: index {idx} is outside the output "
                                         f"plane {h_out}x{w_out} (0 <= index < "
                                         f"{h_out * w_out})")
                    y[n, c, idx // w_out, idx % w_out] = x[n, c, m, k]
    return y, MaxUnpool2dCache(indices, y.shape, x.dtype)


def max_unpool2d_backward(dy: np.ndarray, cache: MaxUnpool2dCache) -> np.ndarray:
    """Backward of max unpooling, literally: ``dX[n, c, m, k] = dY[n, c, idx // W_out,
    idx % W_out]`` with ``idx = indices[n, c, m, k]``."""
    indices, out_shape, dtype = cache
    dz = _gradient_in(dy, dtype, out_shape, "max_unpool2d_backward")
    w_out = out_shape[3]
    dx = np.zeros(indices.shape, dtype)
    for n, c, m, k in np.ndindex(indices.shape):
        idx = int(indices[n, c, m, k])
        dx[n, c, m, k] = dz[n, c, idx // w_out, idx % w_out]
    return dx



# ------------------------------------------------------- global and adaptive pooling
def _adaptive_window(i: int, size: int, out: int) -> tuple[int, int]:
    """Rows ``[floor(i*size/out), ceil((i+1)*size/out))`` of adaptive output i
    (PyTorch's rule), in integers."""
    return (i * size) // out, -(-((i + 1) * size) // out)


class AdaptivePool2dCache(NamedTuple):
    """What the backward of a global or adaptive pooling needs: the input and the
    output size (each window is found again from them)."""

    x: np.ndarray
    out_hw: tuple[int, int]


def _adaptive_size(x: np.ndarray, output_size: object, op: str) -> tuple[int, int]:
    check_nchw(x, op)
    return adaptive_output_size(x.shape[2:], output_size, op)


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: object
                                ) -> tuple[np.ndarray, AdaptivePool2dCache]:
    """Adaptive average pooling, literally::

        Z[n, c, i, j] = mean of A[n, c, r0:r1, q0:q1],  (r0, r1) = window i of H,
                                                        (q0, q1) = window j of W

    with window ``i = [floor(i*H/h_out), ceil((i+1)*H/h_out))`` (PyTorch's rule).
    """
    x = as_float(x)
    h_out, w_out = _adaptive_size(x, output_size, "adaptive_avg_pool2d")
    n_batch, channels, h, w = x.shape
    z = np.zeros((n_batch, channels, h_out, w_out), x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(h_out):
                r0, r1 = _adaptive_window(i, h, h_out)
                for j in range(w_out):
                    q0, q1 = _adaptive_window(j, w, w_out)
                    total = 0.0
                    for r in range(r0, r1):
                        for q in range(q0, q1):
                            total += x[n, c, r, q]
                    z[n, c, i, j] = total / ((r1 - r0) * (q1 - q0))
    return z, AdaptivePool2dCache(x, (h_out, w_out))


def adaptive_avg_pool2d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    """``dA[n, c, r, q] += dZ[n, c, i, j] / |window (i, j)|`` over every window holding
    (r, q)."""
    x, (h_out, w_out) = cache
    n_batch, channels, h, w = x.shape
    dz = _gradient_in(dy, x.dtype, (n_batch, channels, h_out, w_out),
                      "adaptive_avg_pool2d_backward")
    dx = np.zeros_like(x)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(h_out):
                r0, r1 = _adaptive_window(i, h, h_out)
                for j in range(w_out):
                    q0, q1 = _adaptive_window(j, w, w_out)
                    dx[n, c, r0:r1, q0:q1] += dz[n, c, i, j] / ((r1 - r0) * (q1 - q0))
    return dx


def adaptive_max_pool2d_forward(x: np.ndarray, output_size: object
                                ) -> tuple[np.ndarray, AdaptivePool2dCache]:
    """Adaptive max pooling, literally: ``Z[n, c, i, j]`` = the maximum of window
    (i, j) (as :func:`adaptive_avg_pool2d_forward`'s), picked by :func:`first_max_mask`."""
    x = as_float(x)
    h_out, w_out = _adaptive_size(x, output_size, "adaptive_max_pool2d")
    n_batch, channels, h, w = x.shape
    z = np.zeros((n_batch, channels, h_out, w_out), x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(h_out):
                r0, r1 = _adaptive_window(i, h, h_out)
                for j in range(w_out):
                    q0, q1 = _adaptive_window(j, w, w_out)
                    window = x[n, c, r0:r1, q0:q1]
                    z[n, c, i, j] = window[first_max_mask(window)][0]
    return z, AdaptivePool2dCache(x, (h_out, w_out))


def adaptive_max_pool2d_indices(cache: AdaptivePool2dCache) -> np.ndarray:
    """PyTorch's ``return_indices`` of an adaptive max pooling: ``row * W + col`` of
    each window's maximum in its plane."""
    x, (h_out, w_out) = cache
    n_batch, channels, h, w = x.shape
    indices = np.zeros((n_batch, channels, h_out, w_out), np.int64)
    for n, c, i, j in np.ndindex(indices.shape):
        r0, r1 = _adaptive_window(i, h, h_out)
        q0, q1 = _adaptive_window(j, w, w_out)
        (a, b), = np.argwhere(first_max_mask(x[n, c, r0:r1, q0:q1]))
        indices[n, c, i, j] = (r0 + a) * w + q0 + b
    return indices


def adaptive_max_pool2d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    """``dA[window (i, j)] += dZ[n, c, i, j] * mask(i, j)`` (MATH.md §11), windows
    overlapping where the output size does not divide the input's."""
    x, (h_out, w_out) = cache
    n_batch, channels, h, w = x.shape
    dz = _gradient_in(dy, x.dtype, (n_batch, channels, h_out, w_out),
                      "adaptive_max_pool2d_backward")
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(dz.shape):
        r0, r1 = _adaptive_window(i, h, h_out)
        q0, q1 = _adaptive_window(j, w, w_out)
        dx[n, c, r0:r1, q0:q1] += dz[n, c, i, j] * first_max_mask(x[n, c, r0:r1, q0:q1])
    return dx


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, AdaptivePool2dCache]:
    """Global average pooling: the mean of each plane, (N, C, 1, 1) (adaptive to 1x1)."""
    return adaptive_avg_pool2d_forward(x, 1)


def global_avg_pool2d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    """``dA[n, c, h, w] = dZ[n, c, 0, 0] / (H * W)``."""
    return adaptive_avg_pool2d_backward(dy, cache)


def global_max_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, AdaptivePool2dCache]:
    """Global max pooling: the maximum of each plane, (N, C, 1, 1) (adaptive to 1x1)."""
    return adaptive_max_pool2d_forward(x, 1)


def global_max_pool2d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    """The plane's gradient at its (first) maximum."""
    return adaptive_max_pool2d_backward(dy, cache)


# ------------------------------------------------------------------------- upsampling
class UpsampleCache(NamedTuple):
    """What an upsampling's backward needs: the input shape and each output pixel's
    source rule."""

    in_shape: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    mode: str                            # 'nearest' or 'bilinear'
    factors: tuple[float | None, float | None]
    align_corners: bool
    dtype: np.dtype


def _nearest_source(r: int, size: int, out: int, factor: float | None) -> int:
    """The source row of output row r: ``min(floor(r * scale), size - 1)``, scale
    ``1/scale_factor`` or ``size/out`` in float32 (PyTorch's arithmetic); the identity
    for equal sizes, ``r // 2`` for twice the size."""
    if out == size:
        return r
    if out == 2 * size:
        return r // 2
    scale = np.float32(1.0 / factor) if factor else np.float32(size) / np.float32(out)
    return min(int(np.floor(np.float32(r) * scale)), size - 1)


def _bilinear_source(r: int, size: int, out: int, factor: float | None,
                     align_corners: bool) -> tuple[int, int, float]:
    """``(h0, h1, l1)`` of output row r: it is ``(1 - l1) A[h0] + l1 A[h1]``."""
    if out == size:
        return r, r, 0.0
    if align_corners:
        src = r * (size - 1) / (out - 1) if out > 1 else 0.0
    else:
        scale = 1.0 / factor if factor else size / out
        src = max((r + 0.5) * scale - 0.5, 0.0)
    h0 = min(int(np.floor(src)), size - 1)
    h1 = h0 + 1 if h0 < size - 1 else h0
    return h0, h1, min(max(src - h0, 0.0), 1.0)


def _upsample(x: np.ndarray, size: object, scale_factor: object, mode: str,
              align_corners: bool) -> tuple[np.ndarray, UpsampleCache]:
    x = as_float(x)
    op = f"upsample_{mode}2d"
    check_nchw(x, op)
    (h_out, w_out), factors = upsample_output_size(x.shape[2:], size, scale_factor, op)
    n_batch, channels, h, w = x.shape
    cache = UpsampleCache(x.shape, (h_out, w_out), mode, factors, align_corners, x.dtype)
    z = np.zeros((n_batch, channels, h_out, w_out), x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for r in range(h_out):
                for q in range(w_out):
                    for (a, b), weight in _taps(r, q, cache):
                        z[n, c, r, q] += weight * x[n, c, a, b]
    return z, cache


def _taps(r: int, q: int, cache: UpsampleCache) -> list[tuple[tuple[int, int], float]]:
    """The input pixels output (r, q) is made of, with their weights."""
    (_, _, h, w), (h_out, w_out), mode, (fh, fw), align_corners, _ = cache
    if mode == "nearest":
        return [((_nearest_source(r, h, h_out, fh), _nearest_source(q, w, w_out, fw)), 1.0)]
    h0, h1, lh = _bilinear_source(r, h, h_out, fh, align_corners)
    w0, w1, lw = _bilinear_source(q, w, w_out, fw, align_corners)
    return [((h0, w0), (1 - lh) * (1 - lw)), ((h0, w1), (1 - lh) * lw),
            ((h1, w0), lh * (1 - lw)), ((h1, w1), lh * lw)]


def upsample_nearest2d_forward(x: np.ndarray, size: object = None,
                               scale_factor: object = None
                               ) -> tuple[np.ndarray, UpsampleCache]:
    """Nearest upsampling, literally: ``Z[n, c, r, q] = A[n, c, src(r), src(q)]``
    (:func:`_nearest_source`)."""
    return _upsample(x, size, scale_factor, "nearest", False)


def upsample_bilinear2d_forward(x: np.ndarray, size: object = None,
                                scale_factor: object = None, align_corners: bool = False
                                ) -> tuple[np.ndarray, UpsampleCache]:
    """Bilinear upsampling, literally: output (r, q) is the weighted sum of its four
    taps ``A[h0|h1, w0|w1]`` with weights ``(1 - l_h | l_h) * (1 - l_w | l_w)``
    (:func:`_bilinear_source`)."""
    return _upsample(x, size, scale_factor, "bilinear", bool(align_corners))


def _upsample_backward(dy: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    n_batch, channels = cache.in_shape[:2]
    dz = _gradient_in(dy, cache.dtype, (n_batch, channels, *cache.out_hw),
                      f"upsample_{cache.mode}2d_backward")
    dx = np.zeros(cache.in_shape, cache.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for r in range(cache.out_hw[0]):
                for q in range(cache.out_hw[1]):
                    for (a, b), weight in _taps(r, q, cache):
                        dx[n, c, a, b] += weight * dz[n, c, r, q]
    return dx


def upsample_nearest2d_backward(dy: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    """``dA[n, c, src(r), src(q)] += dZ[n, c, r, q]`` for every output pixel."""
    return _upsample_backward(dy, cache)


def upsample_bilinear2d_backward(dy: np.ndarray, cache: UpsampleCache) -> np.ndarray:
    """Each output pixel's gradient back to its four taps, times their weights."""
    return _upsample_backward(dy, cache)


# ----------------------------------------------------------------------- 1-D pooling
# (N, C, L) is the 2-D (N, C, 1, L), a window k the window (1, k): the loops above run
# unchanged, as the fast 1-D ops run the fast 2-D ones.
def _as_2d(x: np.ndarray, op: str) -> np.ndarray:
    x = as_float(x)
    if x.ndim != 3:
        raise ShapeError(f"{op} expects input of shape (N, C, L) (3 dimensions), got shape "
                         f"{tuple(x.shape)} ({x.ndim} dimensions)")
    return x[:, :, None, :]


def _pads_1d(padding: object) -> Padding2D:
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        return (0, 0), (int(padding[0]), int(padding[1]))
    return (0, 0), (int(padding), int(padding))  # type: ignore[call-overload]


def max_pool1d_forward(x: np.ndarray, kernel_size: int, stride: int | None = None,
                       padding: object = 0, ceil_mode: bool = False, dilation: int = 1
                       ) -> tuple[np.ndarray, MaxPool2dCache]:
    """Max pooling over L: :func:`max_pool2d_forward` of (N, C, 1, L), window (1, k)."""
    z, cache = max_pool2d_forward(_as_2d(x, "max_pool1d"), (1, kernel_size),
                                  None if stride is None else (1, stride), _pads_1d(padding),
                                  ceil_mode, (1, dilation))
    return z[:, :, 0, :], cache


def max_pool1d_backward(dy: np.ndarray, cache: MaxPool2dCache) -> np.ndarray:
    return max_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def avg_pool1d_forward(x: np.ndarray, kernel_size: int, stride: int | None = None,
                       padding: object = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True) -> tuple[np.ndarray, AvgPool2dCache]:
    """Average pooling over L: :func:`avg_pool2d_forward` of (N, C, 1, L)."""
    z, cache = avg_pool2d_forward(_as_2d(x, "avg_pool1d"), (1, kernel_size),
                                  None if stride is None else (1, stride), _pads_1d(padding),
                                  ceil_mode, count_include_pad)
    return z[:, :, 0, :], cache


def avg_pool1d_backward(dy: np.ndarray, cache: AvgPool2dCache) -> np.ndarray:
    return avg_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def adaptive_avg_pool1d_forward(x: np.ndarray, output_size: int
                                ) -> tuple[np.ndarray, AdaptivePool2dCache]:
    z, cache = adaptive_avg_pool2d_forward(_as_2d(x, "adaptive_avg_pool1d"), (1, output_size))
    return z[:, :, 0, :], cache


def adaptive_avg_pool1d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    return adaptive_avg_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]


def adaptive_max_pool1d_forward(x: np.ndarray, output_size: int
                                ) -> tuple[np.ndarray, AdaptivePool2dCache]:
    z, cache = adaptive_max_pool2d_forward(_as_2d(x, "adaptive_max_pool1d"), (1, output_size))
    return z[:, :, 0, :], cache


def adaptive_max_pool1d_backward(dy: np.ndarray, cache: AdaptivePool2dCache) -> np.ndarray:
    return adaptive_max_pool2d_backward(np.asarray(dy)[:, :, None, :], cache)[:, :, 0, :]

__all__ += [
    "AdaptivePool2dCache",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool1d_forward",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool1d_forward",
    "avg_pool1d_backward",
    "avg_pool1d_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "MaxUnpool2dCache",
    "UpsampleCache",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool2d_forward",
    "adaptive_max_pool2d_indices",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "global_max_pool2d_backward",
    "global_max_pool2d_forward",
    "max_pool2d_indices",
    "max_unpool2d_backward",
    "max_unpool2d_forward",
    "upsample_bilinear2d_backward",
    "upsample_bilinear2d_forward",
    "upsample_nearest2d_backward",
    "upsample_nearest2d_forward",
]
