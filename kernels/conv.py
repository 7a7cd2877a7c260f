"""Convolutions on channels-last (N, H, W, C) arrays, as GEMMs.

A k x k convolution is an im2col GEMM, built one band of output rows at a time so that the
(rows * W, k*k*C) column buffer stays small: memory does not grow with the image, only time does.
Each band copies its input rows once into a zero-bordered buffer (this is also where several inputs are
concatenated), and its columns are one copy of a strided view of that buffer (each output's k x k taps).
"""
import numpy

from .. import backend
from ..backend import array_module, even_step, piece_elements, run_pieces
from .nn import matmul
from .nn import relu as relu_
from .resize import upsample2x


def _weight_matrix(weight):
    """(C_out, C_in, k, k) torch layout -> (k*k*C_in, C_out), rows ordered [ky][kx][c_in] like the columns."""
    c_out = weight.shape[0]
    return weight.transpose(2, 3, 1, 0).reshape(-1, c_out)


def conv2d(inputs, p, stride=1, relu=False, padding=None):
    """Conv2d with zero padding k//2 (torch semantics; `padding` overrides it), optional bias and fused ReLU.

    inputs: one (N, H, W, C) array, or a tuple of them that the convolution reads as if concatenated
            along channels (the decoder's `cat([detail, upsampled])`, never built whole in memory).
    p: {"weight": (C_out, C_in, k, k), "bias": (C_out,)} with C_in the summed channels of `inputs`.
    """
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    xp = array_module(inputs[0])
    weight = p["weight"]
    c_out, c_in, k, _ = weight.shape
    n, h, w = inputs[0].shape[:3]
    if sum(x.shape[3] for x in inputs) != c_in:
        raise ValueError(f"conv2d: inputs have {sum(x.shape[3] for x in inputs)} channels, weight expects {c_in}")
    pad = k // 2 if padding is None else padding
    h_out, w_out = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    w_mat = _weight_matrix(weight)  # (k*k*C_in, C_out)
    out = xp.empty((n, h_out, w_out, c_out), dtype=inputs[0].dtype)

    if k == 1 and len(inputs) == 1:
        x = inputs[0][:, ::stride, ::stride]
        matmul(x.reshape(-1, c_in), w_mat, out=out.reshape(-1, c_out))  # (N*H*W, C_in) -> (N*H*W, C_out)
        return _bias_relu(out, p, relu)

    columns_per_row = w_out * k * k * c_in
    band = even_step(h_out, max(1, piece_elements(xp, "conv columns") // columns_per_row))  # output rows per GEMM

    def conv_band(piece):
        b, r0 = piece
        r1 = min(h_out, r0 + band)
        y0, y1 = r0 * stride - pad, (r1 - 1) * stride - pad + k  # input rows [y0, y1), may overhang
        v0, v1 = max(y0, 0), min(y1, h)
        # The input rows the band reads, zero-padded around the image (also where inputs are concatenated).
        rows = xp.empty((y1 - y0, w + 2 * pad, c_in), dtype=inputs[0].dtype)
        rows[:v0 - y0] = 0  # above the image
        rows[v1 - y0:] = 0  # below the image
        rows[:, :pad] = 0
        rows[:, pad + w:] = 0
        c0 = 0
        for x in inputs:
            rows[v0 - y0:v1 - y0, pad:pad + w, c0:c0 + x.shape[3]] = x[b, v0:v1]
            c0 += x.shape[3]
        # Every output position's k x k taps, as a view. Not sliding_window_view: CuPy's checks the window
        # shape on the GPU, which synchronises the device on every call.
        row_step, column_step, channel_step = rows.strides
        taps = xp.lib.stride_tricks.as_strided(
            rows, shape=(r1 - r0, w_out, k, k, c_in),  # (rows, W_out, ky, kx, C_in)
            strides=(stride * row_step, stride * column_step, row_step, column_step, channel_step))
        cols = taps.reshape(-1, k * k * c_in)  # one copy: (rows*W_out, [ky][kx][C_in])
        out_band = out[b, r0:r1].reshape(-1, c_out)
        backend.matmul(cols, w_mat, out=out_band)  # (rows*W_out, k*k*C_in) -> (rows*W_out, C_out)
        _bias_relu(out_band, p, relu)

    run_pieces(conv_band, [(b, r0) for b in range(n) for r0 in range(0, h_out, band)])
    return out


# Bilinear x2 upsampling (align_corners=False) then a 3x3 tap t in {-1, 0, 1} reads, for an output of parity
# p (even 0, odd 1), the low-resolution pixels i + d, d in {-1, 0, 1}, with these weights: _UPSAMPLED_TAPS[p, t, d].
_UPSAMPLED_TAPS = numpy.array([[[.75, .25, 0], [.25, .75, 0], [0, .75, .25]],
                               [[.25, .75, 0], [0, .75, .25], [0, .25, .75]]])


def upsampled_conv_weight(weight, detail_channels):
    """For conv2d_upsampled: the (4*C_out, Cx, 3, 3) weights that convolve the low-resolution input `x` once
    per output parity (even/odd row, even/odd column), from a (C_out, Cd + Cx, 3, 3) weight. Mixed in float64
    at load time."""
    upsampled = numpy.asarray(weight[:, detail_channels:], dtype=numpy.float64)  # (o, c, t, s)
    mixed = numpy.tensordot(upsampled, _UPSAMPLED_TAPS, axes=([3], [1]))  # (o, c, t, q, e)
    mixed = numpy.tensordot(mixed, _UPSAMPLED_TAPS, axes=([2], [1]))  # (o, c, q, e, p, d)
    mixed = mixed.transpose(4, 2, 0, 1, 5, 3)  # (p, q, o, c, d, e)
    return numpy.ascontiguousarray(mixed.reshape(4 * weight.shape[0], -1, 3, 3), dtype=weight.dtype)


def conv2d_upsampled(detail, x, p, relu=False):
    """conv2d((detail, upsample2x(x)), p, relu=relu) for a 3x3 conv, without the upsampled tensor.

    A 3x3 convolution of a bilinearly x2-upsampled input is, for each of the four output parities, a 3x3
    convolution of the low-resolution input itself with mixed weights (p["upsampled_weight"], from
    upsampled_conv_weight). So the upsampled channels are convolved at the low resolution, all four parities
    in one GEMM four times as wide, and interleaved into the output: the same FLOPs, a quarter of the column
    copies, no full-resolution upsampled tensor. Edge-replicate padding of `x` reproduces the upsample's
    clamped edge taps; only the outermost output rows and columns, where the conv's zero padding lies beyond
    the upsampled image, are computed directly from a two-pixel strip of the upsampled input.

    detail: (N, 2h, 2w, Cd), the first Cd input channels; x: (N, h, w, Cx), the rest (the reference's
    cat([detail, upsampled]) order).
    """
    xp = array_module(x)
    n, h, w, _ = x.shape
    c_out, cd = p["weight"].shape[0], detail.shape[3]
    replicated = xp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")  # (N, h+2, w+2, Cx)
    parities = conv2d(replicated, {"weight": p["upsampled_weight"]}, padding=0)  # (N, h, w, 4*C_out)
    out = conv2d(detail, {"weight": p["weight"][:, :cd]})  # (N, 2h, 2w, C_out)
    out.reshape(n, h, 2, w, 2, c_out)[...] += parities.reshape(n, h, w, 2, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
    _bias_relu(out, p, relu)
    # The frame: rows 0 and 2h-1, columns 0 and 2w-1, directly from two-pixel strips of the upsampled input.
    first, last = slice(0, min(h, 2)), slice(max(h - 2, 0), h)
    out[:, 0] = conv2d((detail[:, :2], upsample2x(x[:, first])[:, :2]), p, relu=relu)[:, 0]
    out[:, -1] = conv2d((detail[:, -2:], upsample2x(x[:, last])[:, -2:]), p, relu=relu)[:, -1]
    first, last = slice(0, min(w, 2)), slice(max(w - 2, 0), w)
    out[:, :, 0] = conv2d((detail[:, :, :2], upsample2x(x[:, :, first])[:, :, :2]), p, relu=relu)[:, :, 0]
    out[:, :, -1] = conv2d((detail[:, :, -2:], upsample2x(x[:, :, last])[:, :, -2:]), p, relu=relu)[:, :, -1]
    return out


def _bias_relu(y, p, relu):
    if "bias" in p:
        y += p["bias"]
    return relu_(y) if relu else y


def patch_embed(x, p):
    """Non-overlapping k x k patches -> tokens: Conv2d(kernel k, stride k) as one GEMM.

    x: (N, H, W, C_in) with H, W multiples of k; returns (N, H/k, W/k, C_out).
    """
    n, h, w, c_in = x.shape
    c_out, _, k, _ = p["weight"].shape
    patches = x.reshape(n, h // k, k, w // k, k, c_in).transpose(0, 1, 3, 2, 4, 5)  # (N, h, w, ky, kx, C_in)
    weight = p["weight"].transpose(0, 2, 3, 1).reshape(c_out, -1)  # (C_out, [ky][kx][C_in]), as the patches
    tokens = matmul(patches.reshape(-1, k * k * c_in), weight.T)  # (N*h*w, k*k*C_in) -> (N*h*w, C_out)
    tokens += p["bias"]
    return tokens.reshape(n, h // k, w // k, c_out)
