"""Convolutions on channels-last (N, H, W, C) arrays, as GEMMs.

A k x k convolution is an im2col GEMM, built one band of output rows at a time so that the
(rows * W, k*k*C) column buffer stays small: memory does not grow with the image, only time does.
Each band copies its input rows once into a zero-bordered buffer (this is also where several inputs are
concatenated), and its columns are one copy of a strided view of that buffer (each output's k x k taps); on CuPy
one kernel gathers the columns straight from the inputs (kernels/cuda/conv.cu), as it does the other copies here.
3x3 convolutions with enough channels use Winograd's F(2x2, 3x3) on the same bands instead: 16 GEMMs over
the band's transformed 4x4 input tiles, 16/36 of the multiplications.
"""
import functools

import numpy

from .. import backend
from ..backend import array_module, even_step, piece_elements, run_pieces
from .nn import bias_relu, matmul


def conv2d(inputs, p, stride=1, relu=False, padding=None):
    """Conv2d with zero padding k//2 (torch semantics; `padding` overrides it), optional bias and fused ReLU.

    inputs: one (N, H, W, C) array, or a tuple of them that the convolution reads as if concatenated
            along channels (the decoder's `cat([detail, upsampled])`, never built whole in memory).
    p: the weight as prepared at load, {"im2col_weight": (k, k, C_in, C_out)} (im2col_weight) or, for a 3x3
       stride-1 conv computed with Winograd's F(2x2, 3x3) instead of as an im2col GEMM, {"winograd_weight": (16,
       C_in, C_out)} (winograd_weight; conv3x3_params picks), C_in the summed channels of `inputs`; "bias": (C_out,),
       if any.
    """
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    xp = array_module(inputs[0])
    winograd = "winograd_weight" in p
    if winograd:
        (_, c_in, c_out), k = p["winograd_weight"].shape, 3
        if stride != 1:
            raise ValueError("conv2d: Winograd weights are for stride 1")
    else:
        k, _, c_in, c_out = p["im2col_weight"].shape
    n, h, w = inputs[0].shape[:3]
    if sum(x.shape[3] for x in inputs) != c_in:
        raise ValueError(f"conv2d: inputs have {sum(x.shape[3] for x in inputs)} channels, weight expects {c_in}")
    pad = k // 2 if padding is None else padding
    h_out, w_out = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = xp.empty((n, h_out, w_out, c_out), dtype=inputs[0].dtype)
    w_mat = None if winograd else p["im2col_weight"].reshape(-1, c_out)  # (k*k*C_in, C_out): rows as the columns

    if k == 1 and len(inputs) == 1:
        x = inputs[0][:, ::stride, ::stride]
        matmul(x.reshape(-1, c_in), w_mat, out=out.reshape(-1, c_out))  # (N*H*W, C_in) -> (N*H*W, C_out)
        return bias_relu(out, p.get("bias"), relu)

    if winograd:  # output rows per band, even: its input tiles and their products (4 (C_in + C_out) values a
        # pixel) within the budget, but WINOGRAD_MIN_TILES tiles or about as many
        tile_rows = max(piece_elements(xp, "conv columns") // (8 * w_out * (c_in + c_out)),
                        -(-WINOGRAD_MIN_TILES // -(-w_out // 2)))
        band = 2 * even_step(-(-h_out // 2), max(1, tile_rows))
    else:  # output rows per band: its im2col columns
        band = even_step(h_out, max(1, piece_elements(xp, "conv columns") // (w_out * k * k * c_in)))

    def conv_band(piece):
        b, r0 = piece
        r1 = min(h_out, r0 + band)
        out_band = out[b, r0:r1]
        if winograd:
            _winograd_3x3(inputs, b, r0 - pad, -pad, p["winograd_weight"], out_band)
        else:
            # Every output position's k x k taps: (rows, W_out, ky, kx, C_in) as (row, column) steps of each axis
            taps = _zero_padded_taps(inputs, b, r0 * stride - pad, -pad,
                                     [(r1 - r0, stride, 0), (w_out, 0, stride), (k, 1, 0), (k, 0, 1)])
            cols = taps.reshape(-1, k * k * c_in)  # (rows*W_out, [ky][kx][C_in])
            backend.matmul(cols, w_mat, out=out_band.reshape(-1, c_out))  # -> (rows*W_out, C_out)
        bias_relu(out_band, p.get("bias"), relu)

    run_pieces(conv_band, [(b, r0) for b in range(n) for r0 in range(0, h_out, band)])
    return out


def _zero_padded_taps(inputs, b, y0, x0, axes):
    """(*sizes, C): [i_0, ..., i_k, c] is channel c of pixel (y0 + sum_j i_j row_j, x0 + sum_j i_j column_j) of item b
    of the inputs concatenated along channels, zero outside the image, for axes = up to four (size, row, column)."""
    gathered = _gathered(inputs, (b, y0, x0), [(size, (0, row, column)) for size, row, column in axes])
    if gathered is not None:
        return gathered
    xp = array_module(inputs[0])
    rows = _zero_padded(inputs, b, y0, y0 + 1 + sum((size - 1) * row for size, row, _ in axes),
                        x0, x0 + 1 + sum((size - 1) * column for size, _, column in axes))
    # Not sliding_window_view for conv2d's taps: CuPy's checks the window shape on the GPU, which synchronises the
    # device on every call.
    row_step, column_step, channel_step = rows.strides
    taps = xp.lib.stride_tricks.as_strided(rows, shape=(*(size for size, _, _ in axes), rows.shape[2]), strides=(
        *(row * row_step + column * column_step for _, row, column in axes), channel_step))
    return xp.ascontiguousarray(taps)  # the one copy of the view


def _gathered(inputs, origin, axes, edge=False):
    """On CuPy, in one kernel (kernels/cuda/conv.cu): the contiguous (*sizes, C) array whose [i_0, ..., i_k, c] is
    channel c of pixel origin + sum_j i_j steps_j, as (item, row, column), of the (N, H, W, C_j) inputs (one or two)
    concatenated along channels, for axes = up to four (size, steps); beyond the image zero or, where `edge`, the
    nearest edge pixel. None on NumPy."""
    first = inputs[0]
    xp = array_module(first)
    kernel = backend.cuda_kernel(xp, "conv.cu", "gather_pixels", first.dtype)
    sizes, channels = [size for size, _ in axes], sum(x.shape[3] for x in inputs)
    if kernel is None or numpy.prod(sizes) * channels >= 2 ** 31:  # the kernel's indices are ints
        return None
    first, second = (xp.ascontiguousarray(x) for x in (inputs[0], inputs[-1]))
    out = xp.empty((*sizes, channels), dtype=first.dtype)
    axes = [(1, (0, 0, 0))] * (4 - len(axes)) + list(axes)  # the kernel's four, leading ones of size 1

    def ints(*values):
        return tuple(map(numpy.int32, values))

    def divisor(d):  # a Divisor: d and its magic number
        return numpy.int32(d), backend.fast_divisor(d)
    arguments = (first, second, out, *ints(first.shape[3]), *divisor(channels), *ints(*first.shape[1:3], *origin),
                 *(value for size, _ in axes[1:] for value in divisor(size)),
                 *ints(*(step for _, steps in axes for step in steps), edge, out.size))
    kernel(*backend.grid_stride_launch(out.size), arguments)
    return out


def _zero_padded(inputs, b, y0, y1, x0, x1):
    """Rows [y0, y1) and columns [x0, x1) of item b of the inputs concatenated along channels, zero outside the
    image: (y1 - y0, x1 - x0, C). The one copy of its input rows a band makes."""
    xp = array_module(inputs[0])
    h, w = inputs[0].shape[1:3]
    v0, v1, u0, u1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    # Zeroed whole, not only around the image: one operation instead of one for each side (on a GPU, a launch
    # each; on a CPU the zeros cost little beside the copy, see benchmarks/convs.py).
    rows = xp.zeros((y1 - y0, x1 - x0, sum(x.shape[3] for x in inputs)), dtype=inputs[0].dtype)
    c0 = 0
    for x in inputs:
        rows[v0 - y0:v1 - y0, u0 - x0:u1 - x0, c0:c0 + x.shape[3]] = x[b, v0:v1, u0:u1]
        c0 += x.shape[3]
    return rows


# Winograd's F(2x2, 3x3) (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks"): a 2x2 tile of
# a 3x3 convolution's output from the 4x4 input tile D under it, Y = A^T [(G W G^T) * (B^T D B)] A, with 16
# products a pair of channels instead of 36. G's halves are applied to the weights once, at load (winograd_weight);
# B^T and A^T hold only 0 and +-1: their products are sums, exact but for their order.
_WINOGRAD_G = numpy.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
_WINOGRAD_BT = numpy.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
_WINOGRAD_AT = numpy.array([[1, 1, 1, 0], [0, 1, -1, -1]])
# A transform of both sides of a tile is one product with a Kronecker product, kron(M, M)[r a + b, n u + v] =
# M[a, u] M[b, v] for M of r rows and n columns: for all of a band's tiles at once, one GEMM.
_WINOGRAD_GG = numpy.kron(_WINOGRAD_G, _WINOGRAD_G)  # (16, 9): G W G^T from the 9 taps of W
_WINOGRAD_BB = numpy.kron(_WINOGRAD_BT, _WINOGRAD_BT)  # (16, 16): B^T D B from the 16 pixels of D
_WINOGRAD_AA = numpy.kron(_WINOGRAD_AT, _WINOGRAD_AT)  # (4, 16): A^T M A from the 16 products M


def winograd_weight(weight):
    """(C_out, C_in, 3, 3) -> (16, C_in, C_out): G W G^T at each of the 4x4 tile positions (row-major), for
    conv2d's p["winograd_weight"]. Computed in float64, stored in the weight's dtype."""
    c_out, c_in = weight.shape[:2]
    taps = weight.transpose(2, 3, 1, 0).reshape(9, c_in, c_out)  # [3k + s, i, o]
    u = numpy.empty((16, c_in, c_out), dtype=weight.dtype)
    for o in range(0, c_out, 256):  # in pieces: float64 temporaries of a whole large weight take ~100 MB
        piece = numpy.asarray(taps[:, :, o:o + 256], dtype=numpy.float64).reshape(9, -1)
        u[:, :, o:o + 256] = (_WINOGRAD_GG @ piece).reshape(16, c_in, -1)  # (16, 9) @ (9, i*o) -> (16, i, o)
    return u


# The fewest tiles a band's 16 GEMMs multiply (even_step's equal bands may have down to half): with fewer, each
# GEMM re-reads its weight matrix for too little work. The first fusion block's low-resolution conv (384 -> 1024
# channels) got ~30 tiles a band from the memory budget alone, and ran 2x faster with 128 (640x960, one thread).
WINOGRAD_MIN_TILES = 128
# Winograd saves multiplications in proportion to C_in * C_out a tile, and its transforms cost in proportion to
# C_in + C_out: it pays from a harmonic mean 2 C_in C_out / (C_in + C_out) of some tens of channels on.
# `python benchmarks/convs.py` (AMD EPYC, 2 threads) with the transforms as chains of additions: 64 -> 128 channels
# took 0.82-1.22x im2col's time (below 1 in most runs), 48 -> 64 (the third fusion block's detail) 1.00-1.31x, hence
# 80. With the transforms as products (2026-12-04, two runs at three sizes and two at 640x960): 64 -> 128 0.72-1.04x,
# 48 -> 64 0.81-0.94x, 32 -> 16 and 4 -> 32 (the matting head, the input) 1.08-2.5x: 48 -> 64 would now gain a
# little (0.6-1.4% of the time of a pass's 3x3 convolutions); the threshold stays until more runs confirm it.
WINOGRAD_MIN_CHANNELS = 80


def conv3x3_params(weight, dtype):
    """A 3x3 stride-1 conv's weight as conv2d computes it fastest in `dtype`, made once, at load:
    {"winograd_weight": winograd_weight(weight)} for float32 where the harmonic mean of its input and output
    channels is WINOGRAD_MIN_CHANNELS or more, else {"im2col_weight": im2col_weight(weight)}. float16 keeps the
    im2col GEMM: its roundings of the tile transforms' sums took the alphas 1.5x as far from float32's
    (deterministic test weights, S)."""
    c_out, c_in = weight.shape[:2]
    if numpy.dtype(dtype) == numpy.float32 and 2 * c_in * c_out >= WINOGRAD_MIN_CHANNELS * (c_in + c_out):
        return {"winograd_weight": winograd_weight(weight)}
    return {"im2col_weight": im2col_weight(weight)}


def im2col_weight(weight):
    """(C_out, C_in, k, k) torch layout -> (k, k, C_in, C_out): as a (k*k*C_in, C_out) matrix, its rows are
    ordered [ky][kx][c_in] like conv2d's columns."""
    return numpy.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def _winograd_3x3(inputs, b, y0, x0, u, out):
    """out (H, W, C_out) = the 3x3 convolution of item b of the inputs (concatenated along channels) whose first
    output reads from input row y0, column x0 on (zero outside the image), with u = winograd_weight(W)."""
    xp = array_module(out)
    t, s = -(-out.shape[0] // 2), -(-out.shape[1] // 2)  # 2x2 output tiles: one more row or column where odd
    # [u, v, i, j]: pixel (u, v) of tile (i, j), whose first is 2i rows and 2j columns on: (4, 4, t, s, C_in)
    pixels = _zero_padded_taps(inputs, b, y0, x0, [(4, 1, 0), (4, 0, 1), (t, 2, 0), (s, 0, 2)])
    input_transform, output_transform = _winograd_transforms(xp, out.dtype)
    tiles = backend.matmul(input_transform, pixels.reshape(16, -1))  # B^T D B: (16, t*s*C_in)
    m = backend.matmul(tiles.reshape(16, t * s, -1), u)  # (16, t*s, C_in) @ (16, C_in, C_out)
    y = backend.matmul(output_transform, m.reshape(16, -1))  # A^T M A: (16, t*s*C_out) -> (4, t*s*C_out)
    whole = out if out.shape[:2] == (2 * t, 2 * s) else xp.empty((2 * t, 2 * s, out.shape[2]), dtype=out.dtype)
    whole.reshape(t, 2, s, 2, -1)[...] = y.reshape(2, 2, t, s, -1).transpose(2, 0, 3, 1, 4)  # interleaved: (t, y, s, x)
    if whole is not out:
        out[...] = whole[:out.shape[0], :out.shape[1]]


@functools.lru_cache(maxsize=None)  # made once per backend and dtype, not copied to the device for every band
def _winograd_transforms(xp, dtype):
    """B^T (x) B^T and A^T (x) A^T as arrays of `dtype` on backend `xp`."""
    return tuple(xp.asarray(m, dtype=dtype) for m in (_WINOGRAD_BB, _WINOGRAD_AA))


# Bilinear x2 upsampling (align_corners=False) then a 3x3 tap t in {-1, 0, 1} reads, for an output of parity
# p (even 0, odd 1), the low-resolution pixels i + d, d in {-1, 0, 1}, with these weights: _UPSAMPLED_TAPS[p, t, d].
_UPSAMPLED_TAPS = numpy.array([[[.75, .25, 0], [.25, .75, 0], [0, .75, .25]],
                               [[.25, .75, 0], [0, .75, .25], [0, .25, .75]]])
# Both axes at once: _UPSAMPLED_MIX[2p + q, 3dy + dx, 3t + s] = _UPSAMPLED_TAPS[p, t, dy] _UPSAMPLED_TAPS[q, s, dx], the
# weight with which output parity (p, q)'s tap (t, s) reads the low-resolution pixel at offset (dy, dx).
_UPSAMPLED_MIX = numpy.einsum("ptd,qse->pqdets", _UPSAMPLED_TAPS, _UPSAMPLED_TAPS).reshape(4, 9, 9)


def upsampled_conv_weight(weight, detail_channels):
    """For conv2d_upsampled: the (4*C_out, Cx, 3, 3) weights that convolve the low-resolution input `x` once
    per output parity (even/odd row, even/odd column), from a (C_out, Cd + Cx, 3, 3) weight. Mixed in float64."""
    upsampled = numpy.asarray(weight[:, detail_channels:], dtype=numpy.float64)  # (o, c, t, s)
    o, c = upsampled.shape[:2]
    mixed = _UPSAMPLED_MIX @ upsampled.reshape(o * c, 9).T  # (4, 9, 9) @ (9, o*c) -> (4, 9, o*c)
    mixed = mixed.reshape(4, 3, 3, o, c).transpose(0, 3, 4, 1, 2)  # (parity, dy, dx, o, c) -> (parity, o, c, dy, dx)
    return numpy.ascontiguousarray(mixed.reshape(4 * o, c, 3, 3), dtype=weight.dtype)


def upsampled_conv_parts(weight, detail_channels, dtype):
    """The parts conv2d_upsampled computes a (C_out, Cd + Cx, 3, 3) conv of cat([detail, upsample2x(x)]) from, made
    once, at load: "detail", the conv of its first Cd input channels, and "upsampled", the low-resolution conv of x
    (upsampled_conv_weight), as conv3x3_params for `dtype`; "edges", the taps its frame subtracts (edge_weights)."""
    return {"detail": conv3x3_params(weight[:, :detail_channels], dtype),
            "upsampled": conv3x3_params(upsampled_conv_weight(weight, detail_channels), dtype),
            "edges": edge_weights(weight, detail_channels)}


def edge_weights(weight, detail_channels):
    """For conv2d_upsampled's frame, from a (C_out, Cd + Cx, 3, 3) weight: {"rows", "columns": (2, 3*Cx, 2*C_out)},
    for the top and bottom rows (the left and right columns) the three taps beyond the upsampled image (ky = 0 for
    the top, kx = 2 for the right, ...) mixed as upsampled_conv_weight mixes all nine: the weight of a
    low-resolution edge pixel j + d - 1 (rows [d][c]) for the outputs 2j + q along the edge (columns [q][o]); and
    "corners": (2, 2, Cx, C_out), the taps beyond both edges (ky, kx in {0, 2}). Mixed in float64."""
    upsampled = numpy.asarray(weight[:, detail_channels:], dtype=numpy.float64)  # (o, c, ky, kx)
    o, c = upsampled.shape[:2]
    lines = {"rows": upsampled[:, :, ::2].transpose(2, 0, 1, 3),  # (top/bottom, o, c, kx): the taps along a row
             "columns": upsampled[:, :, :, ::2].transpose(3, 0, 1, 2)}  # (left/right, o, c, ky): along a column
    mix = _UPSAMPLED_TAPS.transpose(1, 0, 2).reshape(3, 6)  # [s, (q, d)]: output parity q's tap s reads pixel d
    edges = {name: (taps.reshape(2 * o * c, 3) @ mix).reshape(2, o, c, 2, 3).transpose(0, 4, 2, 3, 1).reshape(
        2, 3 * c, 2 * o) for name, taps in lines.items()}  # (side*o*c, s) @ (s, (q, d)) -> (side, [d][c], [q][o])
    edges["corners"] = upsampled[:, :, ::2, ::2].transpose(2, 3, 1, 0)  # (o, c, ky, kx) -> (ky, kx, c, o)
    return {name: numpy.ascontiguousarray(value, dtype=weight.dtype) for name, value in edges.items()}


def conv2d_upsampled(detail, x, p, relu=False):
    """conv2d((detail, upsample2x(x)), p, relu=relu) for a 3x3 conv, without the upsampled tensor.

    A 3x3 convolution of a bilinearly x2-upsampled input is, for each of the four output parities, a 3x3
    convolution of the low-resolution input itself with mixed weights (upsampled_conv_weight). So the
    upsampled channels are convolved at the low resolution, all four parities in one convolution four times
    as wide, and interleaved into the output: the same FLOPs, a quarter of the pixels, no full-resolution
    upsampled tensor. Edge-replicate padding of `x` reproduces the upsample's clamped edge taps, but it also
    makes the conv read a copy of the upsampled image's edge row or column one step beyond it, where the
    reference reads zero padding: the outermost output rows and columns subtract those taps again, computed from
    x's edge rows and columns at the low resolution too (edge_weights), and each corner adds back its tap beyond
    both edges, subtracted twice.

    detail: (N, 2h, 2w, Cd), the first Cd input channels; x: (N, h, w, Cx), the rest (the reference's
    cat([detail, upsampled]) order). p: the conv's upsampled_conv_parts and its "bias".
    """
    xp = array_module(x)
    n, h, w, _ = x.shape
    out = conv2d(detail, p["detail"])  # (N, 2h, 2w, C_out)
    c_out = out.shape[3]
    # The parities a band of rows at a time, each added into the output: whole, they are as large as the output.
    # Bands of even rows leave Winograd's 2x2 tiles where one convolution of all the rows puts them.
    rows = 2 * max(1, piece_elements(xp, "upsampled parities") // (2 * n * w * 4 * c_out))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        replicated = _edge_padded(x, r0 - 1, r1 + 1)  # (N, r1 - r0 + 2, w + 2, Cx)
        parities = conv2d(replicated, p["upsampled"], padding=0)  # (N, r1 - r0, w, 4*C_out)
        out[:, 2 * r0:2 * r1].reshape(n, r1 - r0, 2, w, 2, c_out)[...] += parities.reshape(
            n, r1 - r0, w, 2, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
    # The taps the parities' convolution read beyond the upsampled image, subtracted again: opposite edges together.
    edges = p["edges"]
    top_bottom = _ends(out, 1)  # (N, 2, 2w, C_out): the top and bottom rows
    top_bottom -= _edge_conv(x, 1, edges["rows"])  # x's top and bottom rows (N, 2, w, Cx) -> (N, 2, 2w, C_out)
    left_right = _ends(out, 2).transpose(0, 2, 1, 3)  # (N, 2, 2h, C_out): the left and right columns
    left_right -= _edge_conv(x, 2, edges["columns"])  # x's left and right columns (N, 2, h, Cx) -> (N, 2, 2h, C_out)
    corners = _ends(out, 1, 2)  # (N, 2, 2, C_out): each corner's tap beyond both edges was subtracted twice
    pixels = xp.ascontiguousarray(_ends(x, 1, 2).transpose(1, 2, 0, 3))  # (2, 2, N, Cx): a stack one GEMM reads
    corners += backend.matmul(pixels, edges["corners"]).transpose(2, 0, 1, 3)  # -> (2, 2, N, C_out) -> (N, 2, 2, C_out)
    return bias_relu(out, p.get("bias"), relu)


def _ends(a, *axes):
    """A view of `a` with only the first and the last index along each of `axes` (the same one twice where an axis
    has length 1): (N, H, W, C) -> (N, 2, W, C) for its top and bottom rows (axes 1), ..."""
    shape, strides = list(a.shape), list(a.strides)
    for axis in axes:
        shape[axis], strides[axis] = 2, strides[axis] * (a.shape[axis] - 1)
    return array_module(a).lib.stride_tricks.as_strided(a, shape, strides)


def _edge_padded(x, y0, y1):
    """Rows [y0, y1) of x (N, h, w, C) and one column on each side, where rows and columns beyond the image
    repeat its edge ones (numpy.pad's "edge" mode): (N, y1 - y0, w + 2, C)."""
    n, _, w, _ = x.shape
    gathered = _gathered((x,), (0, y0, -1), [(n, (1, 0, 0)), (y1 - y0, (0, 1, 0)), (w + 2, (0, 0, 1))], edge=True)
    if gathered is not None:
        return gathered
    xp = array_module(x)
    rows = xp.clip(xp.arange(y0, y1), 0, x.shape[1] - 1)
    padded = xp.empty((x.shape[0], y1 - y0, x.shape[2] + 2, x.shape[3]), dtype=x.dtype)
    padded[:, :, 1:-1] = x[:, rows]
    _ends(padded, 2)[...] = _ends(padded[:, :, 1:-1], 2)  # the first and last columns repeated beside them
    return padded


def _edge_conv(x, axis, weight):
    """What two opposite edges' taps (edge_weights) read beyond the upsampled image, from x's (N, h, w, C) first and
    last rows (axis 1) or columns (axis 2), edge-replicated along them: (N, 2, 2L, C_out), L = w or h, outputs 2j
    and 2j + 1 from pixels j - 1, j and j + 1."""
    n, h, w, c = x.shape
    # (item, row, column) steps from one edge to the other and along them; pixel j's first tap d = 0 reads j - 1
    if axis == 1:
        length, first_tap, across, along = w, (0, 0, -1), (0, h - 1, 0), (0, 0, 1)
    else:
        length, first_tap, across, along = h, (0, -1, 0), (0, 0, w - 1), (0, 1, 0)
    taps = _gathered((x,), first_tap, [(2, across), (n, (1, 0, 0)), (length, along), (3, along)],
                     edge=True)  # (side, N, L, d, C)
    if taps is None:
        xp = array_module(x)
        lines = _ends(x, 1) if axis == 1 else _ends(x, 2).transpose(0, 2, 1, 3)  # (N, 2, L, C)
        padded = xp.concatenate([lines[:, :, :1], lines, lines[:, :, -1:]], axis=2)  # (N, 2, L + 2, C)
        item_step, side_step, pixel_step, channel_step = padded.strides
        taps = xp.ascontiguousarray(xp.lib.stride_tricks.as_strided(  # (side, N, L, d, C), as conv2d's taps
            padded, shape=(2, n, length, 3, c), strides=(side_step, item_step, pixel_step, pixel_step, channel_step)))
    columns = taps.reshape(2, n * length, 3 * c)  # (side, N*L, [d][C])
    products = backend.matmul(columns, weight)  # (side, N*L, [d][C]) @ (side, [d][C], [q][C_out])
    return products.reshape(2, n, 2 * length, -1).transpose(1, 0, 2, 3)  # (side, N*L, [q][C_out]) -> (N, 2, 2L, C_out)


def patch_embed(x, p):
    """Non-overlapping k x k patches -> tokens: Conv2d(kernel k, stride k) as one GEMM.

    x: (N, H, W, C_in) with H, W multiples of k; p: {"im2col_weight": (k, k, C_in, C_out), "bias"}.
    Returns (N, H/k, W/k, C_out).
    """
    n, h, w, c_in = x.shape
    k, _, _, c_out = p["im2col_weight"].shape
    patches = x.reshape(n, h // k, k, w // k, k, c_in).transpose(0, 1, 3, 2, 4, 5)  # (N, h, w, ky, kx, C_in)
    weight = p["im2col_weight"].reshape(-1, c_out)  # ([ky][kx][C_in], C_out), as the patches
    tokens = matmul(patches.reshape(-1, k * k * c_in), weight)  # (N*h*w, k*k*C_in) -> (N*h*w, C_out)
    tokens += p["bias"]
    return tokens.reshape(n, h // k, w // k, c_out)
