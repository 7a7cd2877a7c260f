"""Convolutions on channels-last (N, H, W, C) arrays, as GEMMs.

A k x k convolution is an im2col GEMM, built one band of output rows at a time so that the
(rows * W, k*k*C) column buffer stays small: memory does not grow with the image, only time does.
Each band copies its input rows once into a zero-bordered buffer (this is also where several inputs are
concatenated), and its columns are one strided copy of a sliding-window view of that buffer.
"""
from ..backend import array_module, chunk_elements
from .nn import relu as relu_


def _weight_matrix(weight):
    """(C_out, C_in, k, k) torch layout -> (k*k*C_in, C_out), rows ordered [ky][kx][c_in] like the columns."""
    c_out = weight.shape[0]
    return weight.transpose(2, 3, 1, 0).reshape(-1, c_out)


def conv2d(inputs, p, stride=1, relu=False):
    """Conv2d with zero padding k//2 (torch semantics), optional bias and fused ReLU.

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
    pad = k // 2
    h_out, w_out = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    w_mat = _weight_matrix(weight)  # (k*k*C_in, C_out)
    out = xp.empty((n, h_out, w_out, c_out), dtype=inputs[0].dtype)

    if k == 1 and len(inputs) == 1:
        x = inputs[0][:, ::stride, ::stride]
        xp.matmul(x.reshape(-1, c_in), w_mat, out=out.reshape(-1, c_out))  # (N*H*W, C_in) -> (N*H*W, C_out)
        return _bias_relu(out, p, relu)

    band = max(1, 16 * chunk_elements(xp) // (w_out * k * k * c_in))  # output rows per GEMM
    # The input rows one band reads, zero-padded left/right once (those columns are never written).
    window = xp.zeros(((band - 1) * stride + k, w + 2 * pad, c_in), dtype=inputs[0].dtype)
    for b in range(n):
        for r0 in range(0, h_out, band):
            r1 = min(h_out, r0 + band)
            y0, y1 = r0 * stride - pad, (r1 - 1) * stride - pad + k  # input rows [y0, y1), may overhang
            rows = window[:y1 - y0]
            v0, v1 = max(y0, 0), min(y1, h)
            rows[:v0 - y0] = 0  # above the image
            rows[v1 - y0:] = 0  # below the image
            c0 = 0
            for x in inputs:
                rows[v0 - y0:v1 - y0, pad:pad + w, c0:c0 + x.shape[3]] = x[b, v0:v1]
                c0 += x.shape[3]
            taps = xp.lib.stride_tricks.sliding_window_view(rows, (k, k), axis=(0, 1))  # (rows', W', C_in, k, k)
            taps = taps[::stride, ::stride][:r1 - r0, :w_out]  # (r1-r0, W_out, C_in, ky, kx)
            cols = taps.transpose(0, 1, 3, 4, 2).reshape(-1, k * k * c_in)  # one copy: (rows*W_out, [ky][kx][C_in])
            out_band = out[b, r0:r1].reshape(-1, c_out)
            xp.matmul(cols, w_mat, out=out_band)  # (rows*W_out, k*k*C_in) -> (rows*W_out, C_out)
            _bias_relu(out_band, p, relu)
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
    tokens = patches.reshape(-1, k * k * c_in) @ p["weight"].transpose(0, 2, 3, 1).reshape(c_out, -1).T  # (N*h*w, C_out)
    tokens += p["bias"]
    return tokens.reshape(n, h // k, w // k, c_out)
