"""Foreground colours for a cut-out: the multi-level estimation of Germer et al. 2020 ("Fast Multi-Level
Foreground Estimation"), as pymatting's `estimate_foreground_ml` computes it.

At a soft edge a pixel mixes foreground and background, I = a F + (1 - a) B. Cutting out with the image's own
colours keeps the old background in the fringe (a halo on a new background); this module recovers F (and B).
Per pixel it minimises (a F + (1 - a) B - I)^2 plus, for each of the 4 neighbours j, the smoothness term
(eps + w |a - a_j|) ((F - F_j)^2 + (B - B_j)^2): a 2x2 linear system shared by the colour channels. The
solution is refined coarse to fine: at each level (sizes growing geometrically from 1x1) the image and alpha
are resampled by nearest neighbour, F and B are upsampled from the level before, and a few sweeps of
Gauss-Seidel update every pixel in raster order using its already-updated left and upper neighbours.

A raster sweep looks sequential, but a pixel depends only on the anti-diagonal before its own (left, up) and
the one after (right, down), so each anti-diagonal is updated as one vectorised step, and the sweeps of a
level run as a pipeline, a later sweep two diagonals behind the one before: the same result as the
reference's pixel loop, with the pixels stored diagonal by diagonal so that every step reads a slice.
"""
import math

import numpy as np
from PIL import Image, ImageColor

from . import backend as backends  # the module (`backend` is estimate_foreground's argument)
from .backend import array_module, resolve, to_device, to_numpy
from .processing import read_grey, read_image, resize_plane

# pymatting's neighbour order (left, right, up, down): sums are accumulated in this order, as there.
_NEIGHBOURS = ((0, -1), (0, 1), (-1, 0), (1, 0))
_MAX_THREADS = 1024  # per block, CUDA's limit: wider steps give a thread several pixels


def estimate_foreground(image, alpha, regularization=1e-5, gradient_weight=1.0, small_iterations=10,
                        big_iterations=2, small_size=32, value_range=None, backend=None, return_background=False):
    """Foreground colours F (float32 (H, W, 3) in [0, 1]) such that alpha * F + (1 - alpha) * B = image.

    image: RGB file path, PIL image or array (float arrays need value_range, as in `infer`); alpha: the matte,
    a float array in [0, 1] as `infer` returns, or an 8/16-bit file or array. regularization (eps) and
    gradient_weight (w) weigh the smoothness of F and B; levels no larger than small_size in both sides get
    small_iterations sweeps, larger levels big_iterations. Defaults are pymatting's. backend: "numpy" or
    "cupy" (None: $MINIMATTE_BACKEND or numpy). return_background=True returns (F, B).
    """
    rgb, matte = _read_pair(image, alpha, value_range)
    for name, value in (("regularization", regularization), ("gradient_weight", gradient_weight)):
        if not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    if regularization == 0 and gradient_weight == 0:
        raise ValueError("regularization: must be positive when gradient_weight is 0 (the system is singular)")
    for name, value in (("small_iterations", small_iterations), ("big_iterations", big_iterations),
                        ("small_size", small_size)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    xp = resolve(backend)
    rgb, matte = rgb.astype(np.float32), matte.astype(np.float32)
    # The 1x1 start, on the host: a GPU sums in another order than the reference's pixel after pixel.
    start = np.concatenate([_mean_colour(rgb, matte > 0.9), _mean_colour(rgb, matte < 0.1)])  # [F, B]
    fg, bg = _multilevel(*to_device([rgb, matte, start], xp), np.float32(regularization),
                         np.float32(gradient_weight), small_iterations, big_iterations, small_size)
    return (fg, bg) if return_background else fg


def cutout(image, alpha, background=None, foreground=True, value_range=None, backend=None):
    """The cut-out in 8 bits: RGBA (H, W, 4) with the foreground colours and alpha as its alpha channel; or, given
    a background, the RGB (H, W, 3) composite alpha * F + (1 - alpha) * background.

    background: a colour (name or #rrggbb) or an image (path, PIL image or array; resized bicubically to the
    image's size). foreground=False uses the image's own colours instead of estimate_foreground's: faster, but
    soft edges keep a fringe of the old background. alpha as for estimate_foreground.
    """
    rgb, matte = _read_pair(image, alpha, value_range)
    colours = to_numpy(estimate_foreground(rgb, matte, value_range=1.0, backend=backend)) if foreground else rgb
    a = matte[..., None]
    if background is None:
        result = np.concatenate([colours, a], axis=2)
    else:
        result = a * colours + (1 - a) * _read_background(background, rgb.shape[:2], value_range)
    return np.rint(np.clip(result, 0, 1) * 255).astype(np.uint8)


def _read_pair(image, alpha, value_range):
    """image (float64 (H, W, 3) in [0, 1]) and alpha (float64 (H, W)); float alphas are taken as [0, 1]."""
    rgb = read_image(image, value_range)
    is_float = hasattr(alpha, "dtype") and np.issubdtype(alpha.dtype, np.floating)
    matte = read_grey(alpha, 1.0 if is_float else None, name="alpha")
    if matte.shape != rgb.shape[:2]:
        raise ValueError(f"alpha: size {matte.shape[0]}x{matte.shape[1]} (HxW) does not match the image's "
                         f"{rgb.shape[0]}x{rgb.shape[1]}")
    return rgb, matte


def _read_background(background, size, value_range):
    """A background colour or image as float (H, W, 3) in [0, 1] at `size` = (H, W)."""
    if isinstance(background, str):
        try:
            return np.broadcast_to(np.float64(ImageColor.getrgb(background)[:3]) / 255, size + (3,))
        except ValueError:
            pass
    try:
        rgb = read_image(background, value_range, name="background")
    except FileNotFoundError:
        raise ValueError(f"background: {background!r} is neither a colour nor an image file") from None
    if rgb.shape[:2] != size:
        rgb = np.stack([resize_plane(rgb[..., c], size, Image.BICUBIC) for c in range(3)], axis=-1)
    return rgb


def _multilevel(image, alpha, start, regularization, gradient_weight, small_iterations, big_iterations,
                small_size):
    """(F, B), each (H, W, 3) float32, from a float32 image (H, W, 3), alpha (H, W) and the 1x1 level's
    [F, B] (6,), all on one backend."""
    xp = array_module(image)
    h0, w0 = alpha.shape
    fg, bg = start[None, None, :3], start[None, None, 3:]
    n_levels = math.ceil(math.log2(max(h0, w0)))
    for level in range(n_levels + 1):
        h, w = (round(s ** (level / n_levels)) for s in (h0, w0)) if n_levels else (h0, w0)
        rows, cols = _nearest(h0, h, xp), _nearest(w0, w, xp)
        level_image, level_alpha = image[rows[:, None], cols], alpha[rows[:, None], cols]  # (h, w, 3), (h, w)
        previous_rows, previous_cols = _nearest(fg.shape[0], h, xp), _nearest(fg.shape[1], w, xp)
        state = xp.concatenate([fg, bg], axis=2)[previous_rows[:, None], previous_cols]  # (h, w, 6): [F, B]
        sweeps = small_iterations if h <= small_size and w <= small_size else big_iterations
        state = _gauss_seidel(level_image, level_alpha, state, regularization, gradient_weight, sweeps)
        fg, bg = state[..., :3], state[..., 3:]
    return fg, bg


def _mean_colour(image, mask):
    """Mean image colour under mask (float32 (3,)), summed pixel after pixel in float32 like the reference
    (NumPy's cumsum is sequential)."""
    count = int(mask.sum())
    total = np.cumsum(image[mask], axis=0, dtype=np.float32)[-1] if count else np.zeros(3, np.float32)
    return (total.astype(np.float64) / (count + 1e-5)).astype(np.float32)


def _nearest(source, target, xp):
    """Source indices of nearest-neighbour resampling from `source` to `target` samples (pymatting's rule)."""
    return xp.minimum(xp.arange(target) * source // target, source - 1)


def _gauss_seidel(image, alpha, state, regularization, gradient_weight, sweeps):
    """`sweeps` raster-order Gauss-Seidel sweeps over all pixels of one level; state (h, w, 6) = [F, B]."""
    xp = array_module(image)
    h, w = alpha.shape
    order, position, neighbours = _diagonal_layout(h, w, xp)
    a0 = alpha.reshape(-1)[order]  # (hw,)
    weights = regularization + gradient_weight * xp.abs(a0 - a0[neighbours])  # (4, hw) float32
    own, cross, data = _pixel_systems(a0, weights, image.reshape(-1, 3)[order])
    fb = state.reshape(-1, 6)[order]
    steps = _steps(h, w, sweeps)
    widest = max((stop - start for start, stop in steps), default=0)
    kernel = backends.cuda_kernel(xp, "foreground.cu", "gauss_seidel", xp.float32)
    if kernel is not None:  # all steps in one launch of one block, a thread per pixel of the widest step
        threads = min(_MAX_THREADS, max(1, -(-widest // 32)) * 32)  # in whole warps
        arguments = (fb, data, weights, neighbours, own, cross, xp.asarray(steps, dtype=xp.int32).reshape(-1),
                     np.int32(len(steps)), np.int32(h * w))
        kernel((1,), (threads,), arguments)
        return fb[position].reshape(h, w, 6)
    terms = xp.empty((5, widest, 6), xp.float32)  # the data term, then the 4 weighted neighbours
    for start, stop in steps:
        n = stop - start
        terms[0, :n] = data[start:stop]
        xp.take(fb, neighbours[:, start:stop], axis=0, out=terms[1:, :n])
        terms[1:, :n] *= weights[:, start:stop, None]
        rhs = terms[:, :n].sum(axis=0).reshape(n, 2, 3)  # [F, B] sums, term after term as in the reference
        solved = own[start:stop] * rhs
        solved += cross[start:stop] * rhs[:, ::-1]
        fb[start:stop] = solved.clip(0, 1, out=solved).reshape(n, 6)
    return fb[position].reshape(h, w, 6)


def _steps(h, w, sweeps):
    """The [start, stop) position ranges that _gauss_seidel updates, step after step.

    Sweep s updates anti-diagonal d at step d + 2s. By then the diagonal before d has sweep s's values and
    the one after still has sweep s - 1's, exactly what the raster order gives them, and one step's
    diagonals (every other one) are not each other's neighbours. So the sweeps run as one pipeline of
    h + w + 2 sweeps - 3 steps instead of sweeps x (h + w - 1), and with the even diagonals stored before the
    odd ones (_diagonal_layout) each step's diagonals are one slice.
    """
    n = h + w - 1
    diagonal = np.arange(n)
    sizes = np.minimum(np.minimum(diagonal + 1, n - diagonal), min(h, w))  # pixels with y + x = diagonal
    stored = np.argsort(diagonal % 2, kind="stable")  # diagonals in storage order: even, then odd
    first = np.empty(n, np.int64)
    first[stored] = np.cumsum(sizes[stored]) - sizes[stored]  # where each diagonal starts
    steps = []
    for t in range(n + 2 * sweeps - 2 if sweeps else 0):
        newest = min(t, n - 1 - (n - 1 - t) % 2)  # the last diagonal of t's parity that this step reaches
        oldest = max(t - 2 * (sweeps - 1), t % 2)
        if oldest <= newest:
            steps.append((int(first[oldest]), int(first[newest] + sizes[newest])))
    return steps


def _diagonal_layout(h, w, xp):
    """Pixels stored anti-diagonal after anti-diagonal, the even diagonals before the odd ones: order (the
    raster index at each position), position (its inverse) and the positions of each pixel's 4 neighbours
    (4, hw), clamped at the border as in the reference (a border pixel is its own neighbour)."""
    y, x = xp.divmod(xp.arange(h * w, dtype=xp.int32), w)
    diagonal = (y + x).astype(xp.int64)
    storage_key = ((diagonal % 2) * (h + w) + diagonal) * h + y  # distinct keys: any sort (CuPy's too) agrees
    order = xp.argsort(storage_key).astype(xp.int32)
    position = xp.empty_like(order)
    position[order] = xp.arange(h * w, dtype=xp.int32)
    y, x = y[order], x[order]
    neighbours = xp.stack([position[xp.clip(y + dy, 0, h - 1) * w + xp.clip(x + dx, 0, w - 1)]
                           for dy, dx in _NEIGHBOURS])
    return order, position, neighbours


def _pixel_systems(a0, weights, pixels):
    """Each pixel's 2x2 system [[a0^2 + s, a0 a1], [a0 a1, a1^2 + s]] (s: the sum of its neighbour weights),
    inverted once per level, and its data term [a0 I, a1 I] (hw, 6).

    [F, B] = inverse @ [rhs_F, rhs_B] per channel is computed as own * rhs + cross * (rhs with F and B
    swapped). The reference mixes precisions (1.0 - a0 is a float64 there); mixing them the same way
    reproduces it.
    """
    xp = array_module(a0)
    a1 = 1.0 - a0.astype(xp.float64)
    a00, a11 = a0 * a0, a1 * a1
    for weight in weights:
        a00, a11 = a00 + weight, a11 + weight
    a01 = a0 * a1
    inverse_det = 1.0 / (a00 * a11 - a01 * a01)
    own = xp.stack([inverse_det * a11, inverse_det * a00], axis=1)[:, :, None]  # (hw, 2, 1) float64
    cross = (inverse_det * -a01)[:, None, None]  # (hw, 1, 1)
    data = xp.concatenate([a0[:, None] * pixels, (a1[:, None] * pixels).astype(xp.float32)], axis=1)  # (hw, 6)
    return own, cross, data
