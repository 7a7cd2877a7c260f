"""Linear layers, normalisation and activations.

float16 arrays are normalised and activated in float32 and stored back in float16; on CuPy, layer norm, GELU
and the additions of a bias left by a product (with a ReLU or a residual after it) are one hand-written kernel
each (kernels/cuda/nn.cu) computing the same.
"""
import math

import numpy

from .. import backend
from ..backend import array_module, parallelism, run_pieces, run_slices


def matmul(a, b, out=None):
    """a @ b for a 2-D a, in blocks of rows run side by side under backend.cpu_threads."""
    xp = array_module(a)
    if out is None:
        out = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    step = -(-a.shape[0] // parallelism())
    run_pieces(lambda r: backend.matmul(a[r:r + step], b, out=out[r:r + step]), range(0, a.shape[0], step))
    return out


def linear(x, p, out=None, add_bias=True):
    """y = x W^T + b over the last axis; W is (out, in) as torch stores it. For a 2-D x, written into `out` if
    given. add_bias False leaves b to the caller, whose next kernel adds it on its way."""
    *lead, c_in = x.shape
    y = matmul(x.reshape(-1, c_in), p["weight"].T, out=out)  # (N, in) -> (N, out); one GEMM, not one per leading index
    if add_bias and "bias" in p:
        y += p["bias"]
    return y.reshape(*lead, -1)


def layer_norm(x, p, eps, gelu_after=False, residual=None):
    """LayerNorm over the last axis with biased variance, as torch.nn.LayerNorm; then GELU (gelu_after); then, if
    `residual` (an array of x's shape) is given, added to it in place of it, and the residual returned. Each row is
    activated and added while in cache; on CuPy one kernel. Values as those of the separate operations: each is
    rounded to x's type before the next.

    In channels-last layout this is also the channels-first `LayerNorm2d` of VitDet's residual blocks.
    """
    xp = array_module(x)
    c = x.shape[-1]
    if residual is not None and not residual.flags.c_contiguous:
        raise ValueError("layer_norm adds into the residual in place: it needs a C-contiguous array")
    rows = xp.ascontiguousarray(x).reshape(-1, c)
    out = xp.empty_like(rows) if residual is None else residual.reshape(-1, c)
    kernel = backend.cuda_kernel(xp, "nn.cu", "layer_norm", x.dtype)
    if kernel is not None:
        arguments = (rows, p["weight"], p["bias"], out, numpy.int32(c), numpy.float32(eps), numpy.int32(gelu_after),
                     numpy.int32(residual is not None))
        kernel((rows.shape[0],), (128,), arguments)  # a block per row
        return out.reshape(x.shape)

    def normalise(part):
        xs, ys = rows[part], out[part]
        # Statistics in float32 also for float16 rows, whose squares overflow from |x| = 256 on.
        work = ys if ys.dtype == xp.float32 and residual is None else xp.empty(ys.shape, dtype=xp.float32)
        xp.subtract(xs, xs.mean(-1, keepdims=True, dtype=xp.float32), out=work)
        var = xp.einsum("ij,ij->i", work, work)[:, None] / c
        work *= 1 / xp.sqrt(var + eps)
        work *= p["weight"]
        work += p["bias"]
        if residual is None and work is not ys:
            ys[...] = work
        normalised = ys if residual is None else work.astype(ys.dtype, copy=False)  # rounded to x's type
        if gelu_after:
            _gelu_rows(normalised)
        if residual is not None:
            ys += normalised

    run_slices(normalise, rows.shape[0], xp, width=c)
    return out.reshape(x.shape)


# erf(z) = z P(z^2) / Q(z^2) on [-4, 4] (outside it erf is +-1 in float32): the float32 rational
# approximation used by Eigen/XLA: within 7e-8 of erf in exact arithmetic, 4e-7 (a few ulps) evaluated in float32,
# so GELU matches torch's erf-based GELU to float32 precision.
_ERF_P = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
          -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10)
_ERF_Q = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
          -1.45660718464996e-05)


def _horner(z2, coefficients, xp):
    acc = xp.full_like(z2, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc *= z2
        acc += c
    return acc


def _erf_into(z, xp):
    """erf(z) computed in place of z."""
    xp.clip(z, -4.0, 4.0, out=z)
    z2 = z * z
    z *= _horner(z2, _ERF_P, xp)
    z /= _horner(z2, _ERF_Q, xp)
    return z


def erf(x):
    """erf(x) in float32, a new array: the rational approximation that gelu computes (tested against torch.erf)."""
    xp = array_module(x)
    return _erf_into(x.astype(xp.float32, copy=True), xp)


def gelu(x, bias=None):
    """Exact (erf) GELU of x + bias (over the last axis; of x alone without one), x * (1 + erf(x / sqrt 2)) / 2, in
    place; returns x. Not the tanh approximation. The sum is rounded to x's type first, as a separate addition of
    the bias (nn.linear's) would round it."""
    xp = array_module(x)
    if not x.flags.c_contiguous:
        raise ValueError("gelu works in place: it needs a C-contiguous array")
    rows = x.reshape(-1, x.shape[-1])
    if bias is None:
        kernel, arguments = backend.cuda_kernel(xp, "nn.cu", "gelu", x.dtype), (x, numpy.int64(x.size))
    else:
        kernel = backend.cuda_kernel(xp, "nn.cu", "bias_gelu", x.dtype)
        arguments = (x, bias, numpy.int32(rows.shape[1]), numpy.int64(x.size))
    if kernel is not None:
        kernel(*backend.grid_stride_launch(x.size), arguments)
        return x
    run_slices(lambda part: _gelu_rows(rows[part], bias), rows.shape[0], xp, width=rows.shape[1])
    return x


def _gelu_rows(rows, bias=None):
    """gelu's NumPy path on a (n, C) block of rows, in place."""
    xp = array_module(rows)
    if bias is not None:
        rows += bias
    work = rows.astype(xp.float32, copy=False)  # float16 too: the erf polynomial needs float32
    phi = _erf_into(work * (1 / math.sqrt(2)), xp)  # erf(x / sqrt 2)
    phi += 1
    work *= phi
    work *= 0.5
    if work is not rows:
        rows[...] = work


def relu(x):
    """max(x, 0) in place; returns x."""
    return array_module(x).maximum(x, 0, out=x)


def bias_relu(y, bias, relu_after):
    """y + bias (over the last axis; None: y alone), then max(., 0) if relu_after, in place; returns y. On CuPy
    one kernel (kernels/cuda/nn.cu) instead of two operations, the sum rounded to y's type before the ReLU."""
    kernel = _bias_kernel(y, bias, "bias_relu")
    if kernel is not None:
        arguments = (y, bias, numpy.int32(relu_after), numpy.int32(y.shape[-1]), numpy.int64(y.size))
        kernel(*backend.grid_stride_launch(y.size), arguments)
        return y
    if bias is not None:
        y += bias
    return relu(y) if relu_after else y


def add_residual(y, bias, residual, out=None):
    """y + bias (over the last axis; None: none) + residual, into `out` (y's or the residual's memory; None: y's,
    and y is scratch either way); returns it: a residual connection after a linear layer whose bias was left out
    (linear's add_bias). On CuPy one kernel instead of two operations; the sum with the bias is rounded to y's type
    before the residual is added, as the two additions round it."""
    out = y if out is None else out
    kernel = _bias_kernel(y, bias, "bias_residual")
    if kernel is not None and out.flags.c_contiguous:
        residual = array_module(y).ascontiguousarray(residual)
        arguments = (y, bias, residual, out, numpy.int32(y.shape[-1]), numpy.int64(y.size))
        kernel(*backend.grid_stride_launch(y.size), arguments)
        return out
    if bias is not None:
        y += bias
    return array_module(y).add(residual, y, out=out)


def _bias_kernel(y, bias, name):
    """The CUDA kernel `name` of nn.cu for y (in place: C-contiguous) and a bias, or None (NumPy, no bias)."""
    if bias is None or not y.flags.c_contiguous:
        return None
    return backend.cuda_kernel(array_module(y), "nn.cu", name, y.dtype)


def sigmoid(x):
    """1 / (1 + exp(-x)) in float32: in place where x is float32; returns it. On CuPy one kernel instead of four
    operations (five for float16 x)."""
    xp = array_module(x)
    kernel = backend.cuda_kernel(xp, "nn.cu", "sigmoid", x.dtype) if x.flags.c_contiguous else None
    if kernel is not None:
        out = x if x.dtype == xp.float32 else xp.empty(x.shape, dtype=xp.float32)
        kernel(*backend.grid_stride_launch(x.size), (x, out, numpy.int64(x.size)))
        return out
    x = x.astype(xp.float32, copy=False)
    xp.negative(x, out=x)
    xp.exp(x, out=x)
    x += 1
    return xp.reciprocal(x, out=x)
