"""Linear and cubic resizing with PyTorch's `interpolate(..., align_corners=False)` semantics.

Resizes go through explicit (out, in) interpolation matrices: they are small (position embeddings and
relative position tables). The decoder's x2 bilinear upsampling is never computed on its own: its weights are
mixed into the convolution that follows (conv.conv2d_upsampled).
"""
import functools

import numpy

from ..backend import array_module

_CUBIC_A = -0.75  # PyTorch's bicubic uses Keys' kernel with A = -0.75 (PIL and OpenCV differ)


def _cubic_weights(t):
    """Weights of taps i-1, i, i+1, i+2 for fractional offsets t (float32 arrays), as PyTorch's upsample_bicubic2d
    computes them (get_cubic_upsample_coefficients) where it runs its AVX2 or AVX-512 kernels, whose compiler fused
    the first multiply-add of the near taps' polynomial and the first two of the far taps' (torch 2.13's weights,
    bit for bit, in 1,628 resizes from 2-128 samples to 1-253; rounded after each operation, 301 of 492 differed)."""
    a = _CUBIC_A

    def fused(x, y, z):  # x * y + z rounded as a fused multiply-add: the float32 product is exact in float64 (only
        # the sum's rounding to float64 before float32 could differ, in rare halfway cases)
        return (x.astype(numpy.float64) * y + z).astype(numpy.float32)

    def near(x):  # |x| <= 1: ((a + 2) x - (a + 3)) x x + 1
        return fused(x, a + 2, -(a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2: ((a x - 5a) x + 8a) x - 4a
        return fused(fused(x, a, -5 * a), x, 8 * a) * x - 4 * a

    opposite = 1 - t
    return far(t + 1), near(t), near(opposite), far(opposite + 1)


@functools.lru_cache(maxsize=64)  # every pass at a size asks for the same few: each made (and sent to a GPU) once
def interpolation_matrix(in_size, out_size, mode, xp=numpy):
    """(out_size, in_size) float32 matrix M with resize(v) = M @ v, align_corners=False; one array per set of
    arguments, shared by its callers: read it, never write to it.

    mode "linear": as linear_taps, the source coordinate clamped at 0 and the upper tap at in_size-1.
    mode "cubic": the coordinate is not clamped, each of the four taps is (edge replicate).
    No antialiasing when shrinking, as in PyTorch. Coordinates and weights are float32, as PyTorch
    computes them for float32 tensors.
    """
    matrix = numpy.zeros((out_size, in_size), dtype=numpy.float32)
    rows = numpy.arange(out_size)
    if mode == "linear":
        i0, i1, w0, w1 = linear_taps(in_size, out_size)
        numpy.add.at(matrix, (rows, i0), w0)
        numpy.add.at(matrix, (rows, i1), w1)
    elif mode == "cubic":
        src = _source_coordinates(in_size, out_size)
        i = numpy.floor(src).astype(int)
        t = src - i.astype(numpy.float32)
        for offset, weight in zip((-1, 0, 1, 2), _cubic_weights(t)):
            numpy.add.at(matrix, (rows, numpy.clip(i + offset, 0, in_size - 1)), weight)
    else:
        raise ValueError(f"mode: expected 'linear' or 'cubic', got {mode!r}")
    return xp.asarray(matrix)


def linear_taps(in_size, out_size):
    """Linear interpolation from in_size to out_size samples as each output's two taps and their weights,
    (i0, i1, w0, w1), (out_size,) each (weights float32): v'[o] = w0[o] v[i0[o]] + w1[o] v[i1[o]]. The source
    coordinate is clamped at 0 and the upper tap at in_size-1."""
    src = numpy.maximum(_source_coordinates(in_size, out_size), numpy.float32(0))
    i0 = numpy.floor(src).astype(int)
    lam = src - i0.astype(numpy.float32)
    return i0, numpy.minimum(i0 + 1, in_size - 1), numpy.float32(1) - lam, lam


def _source_coordinates(in_size, out_size):
    """Each output sample's coordinate in the input, float32 as PyTorch computes it (align_corners=False)."""
    scale = numpy.float32(in_size) / numpy.float32(out_size)
    # PyTorch's compiled kernel contracts scale * (o + 0.5) - 0.5 into a fused multiply-add: one rounding.
    return ((numpy.arange(out_size) + 0.5) * numpy.float64(scale) - 0.5).astype(numpy.float32)


def resize(x, size, mode):
    """Resize the two leading axes of x (H, W, ...) to `size` = (H', W'): separable, via matrices, computed in
    float32 (or wider) and returned in x's dtype."""
    xp = array_module(x)
    if tuple(x.shape[:2]) == tuple(size):
        return x
    rows = interpolation_matrix(x.shape[0], size[0], mode, xp)  # (H', H)
    cols = interpolation_matrix(x.shape[1], size[1], mode, xp)  # (W', W)
    tail = x.shape[2:]
    wide = x.reshape(x.shape[0], -1).astype(numpy.promote_types(x.dtype, numpy.float32), copy=False)
    y = rows @ wide  # (H, W*...) -> (H', W*...)
    y = y.reshape(size[0], x.shape[1], -1).transpose(1, 0, 2).reshape(x.shape[1], -1)  # -> (W, H'*...)
    y = (cols @ y).reshape(size[1], size[0], -1).transpose(1, 0, 2)  # -> (H', W', ...)
    return xp.ascontiguousarray(y, dtype=x.dtype).reshape(*size, *tail)
