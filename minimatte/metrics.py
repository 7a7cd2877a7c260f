"""Matting metrics with the Deep Image Matting conventions (spec section 7), on NumPy.

All four read 8-bit mattes (0..255 values; pass float mattes through `to_uint8` first, which truncates as the
reference does when saving) and count only the unknown region, trimap == 128, or with trimap None every pixel
(whole-image scores, which hustvl's evaluation switches to for Distinctions-646; spec section 7):

- SAD  = sum |p - g| / 255, divided by 1000
- MSE  = sum ((p - g) / 255)^2 / (#counted + 1e-8)     (papers print MSE x 1e3)
- Grad = sum (|grad p| - |grad g|)^2 / 1000, gradients by first-derivative-of-Gaussian filters, sigma 1.4
- Conn = sum |phi_p - phi_g| / 1000, thresholds 0, 0.1 .. 1, largest 4-connected component, theta 0.15
"""
import math

import numpy as np

from .config import is_number
from .processing import clip_overshoot, native_array


def to_uint8(alpha):
    """A float matte in [0, 1] as the reference saves it: alpha * 255 truncated to uint8. An 8-bit matte is
    returned as it is; values on another scale (0..255 as floats, 16 bits) are an error, where clipping them
    into [0, 1] would make the matte binary."""
    a = native_array(alpha, "alpha")
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind != "f":
        raise TypeError(f"alpha: expected a float matte in [0, 1] or a uint8 one, got dtype {a.dtype}")
    return (clip_overshoot(a.astype(np.float64), "alpha") * 255).astype(np.uint8)


def _unknown(trimap):
    return np.asarray(trimap) == 128


def _check(pred, gt, trimap):
    """pred and gt as float64 arrays of 8-bit values, and the pixels to count: the trimap's unknown region, or
    every pixel where trimap is None. A float matte in [0, 1] (as infer returns it) or a 16-bit one is an error,
    not scores on the wrong scale."""
    named = {"pred": native_array(pred, "pred"), "gt": native_array(gt, "gt")}
    if trimap is not None:
        named["trimap"] = native_array(trimap, "trimap")
    for name, a in named.items():
        if a.ndim != 2 or not a.size:
            raise ValueError(f"{name}: expected a non-empty one-channel (H, W) image, got shape {a.shape}")
        if a.dtype.kind not in "uif":
            raise TypeError(f"{name}: expected 8-bit values (uint8, or numbers in 0..255), got dtype {a.dtype}")
        low, high = a.min(), a.max()
        if not 0 <= low <= high <= 255:  # NaN fails too
            raise ValueError(f"{name}: expected 8-bit values in 0..255, found [{low:g}, {high:g}]")
        if a.dtype.kind == "f" and 0 < high <= 1:
            guess, fix = (("", "np.rint(trimap * 255).astype(np.uint8)") if name == "trimap" else
                          (", as infer returns a matte", f"metrics.to_uint8({name})"))
            raise ValueError(f"{name}: float values that go up to only {high:g} read as nearly 0 of 255 (values "
                             f"in [0, 1]{guess}?); pass {fix}")
    if len({a.shape for a in named.values()}) > 1:
        raise ValueError(f"{', '.join(named)}: sizes differ ({', '.join(str(a.shape) for a in named.values())})")
    counted = np.ones(named["pred"].shape, bool) if trimap is None else _unknown(named["trimap"])
    return named["pred"].astype(np.float64), named["gt"].astype(np.float64), counted


def sad(pred, gt, trimap):
    pred, gt, counted = _check(pred, gt, trimap)
    return float(np.abs(pred - gt)[counted].sum() / 255 / 1000)


def mse(pred, gt, trimap):
    pred, gt, counted = _check(pred, gt, trimap)
    return float((((pred - gt) / 255) ** 2)[counted].sum() / (counted.sum() + 1e-8))


def _gaussian_derivative_filters(sigma=1.4):
    """The separable factors of DIM's 9x9 gradient filter hx[i, j] = G(i) G'(j), normalised to unit L2 norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-u ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -u * g / sigma ** 2
    norm = np.linalg.norm(g) * np.linalg.norm(dg)  # ||outer(g, dg)|| = ||g|| ||dg||
    return g, dg / norm


def _correlate1d(x, taps, axis):
    """Correlation along one axis with replicated borders (scipy.ndimage mode 'nearest')."""
    half, n = len(taps) // 2, x.shape[axis]
    padded = np.pad(x, [(half, half) if a == axis else (0, 0) for a in range(x.ndim)], mode="edge")
    out = np.zeros_like(x)
    for i, t in enumerate(taps):
        out += t * padded[(slice(None),) * axis + (slice(i, i + n),)]
    return out


def _gradient_magnitude(alpha):
    g, dg = _gaussian_derivative_filters()
    gx = _correlate1d(_correlate1d(alpha, g, 0), dg, 1)  # hx = G(rows) x G'(columns)
    gy = _correlate1d(_correlate1d(alpha, dg, 0), g, 1)  # hy = hx transposed
    return np.sqrt(gx ** 2 + gy ** 2)  # correlation vs convolution only flips signs


def grad(pred, gt, trimap):
    pred, gt, counted = _check(pred, gt, trimap)
    diff = _gradient_magnitude(pred / 255) - _gradient_magnitude(gt / 255)
    return float((diff ** 2)[counted].sum() / 1000)


def _runs(mask):
    """The horizontal runs of True in a 2-D boolean mask, in raster order, as (starts, stops): positions in the
    mask flattened with one False column added on each side, so that runs never continue into the next row."""
    height, width = mask.shape
    framed = np.zeros((height, width + 2), np.int8)
    framed[:, 1:-1] = mask
    edges = np.flatnonzero(np.diff(framed.ravel())) + 1  # where a run starts, and where one has stopped
    return edges[::2], edges[1::2]


def largest_component(mask):
    """The largest 4-connected component of a boolean mask (background excluded; ties: the first in raster order,
    as scipy.ndimage.label's lowest label). Runs of True in each row are joined with the runs they overlap in the
    row above: components of that graph by hooking each root onto its smallest neighbouring root and pointer
    jumping, all in array operations (a Python loop over runs takes seconds a megapixel)."""
    mask = np.asarray(mask, dtype=bool)
    row = mask.shape[1] + 2  # the framed row length of _runs
    starts, stops = _runs(mask)
    if not len(starts):
        return np.zeros_like(mask)
    # run j touches runs first[j]..last[j]-1 of the row above: those stopping after it starts, starting before it stops
    first = np.searchsorted(stops, starts - row, side="right")
    last = np.searchsorted(starts, stops - row, side="left")
    counts = np.maximum(last - first, 0)
    below = np.repeat(np.arange(len(starts)), counts)
    above = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    root = np.arange(len(starts))
    while True:
        top, bottom = root[above], root[below]
        apart = top != bottom  # touching runs still in two trees
        if not apart.any():
            break
        above, below, top, bottom = above[apart], below[apart], top[apart], bottom[apart]
        np.minimum.at(root, np.maximum(top, bottom), np.minimum(top, bottom))  # to smaller roots only: no cycles
        while True:
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
    best = root == np.argmax(np.bincount(root, weights=stops - starts))  # a root is its component's first run
    edges = np.zeros(mask.shape[0] * row, np.int8)
    edges[starts[best]], edges[stops[best]] = 1, -1
    return np.cumsum(edges, dtype=np.int8).reshape(mask.shape[0], row)[:, 1:-1].astype(bool)


def conn(pred, gt, trimap, step=0.1, theta=0.15):
    if not is_number(step) or not 0 < step <= 1:  # a negative step scored 0, NaN failed inside np.arange
        raise ValueError(f"step: expected the thresholds' spacing, a number in (0, 1], got {step!r}")
    if not is_number(theta):
        raise ValueError(f"theta: expected a finite number, got {theta!r}")
    pred, gt, counted = _check(pred, gt, trimap)
    pred, gt = pred / 255, gt / 255
    thresholds = np.arange(0, 1 + step, step)
    level = np.full(pred.shape, -1.0)
    for k in range(1, len(thresholds)):
        omega = largest_component((pred >= thresholds[k]) & (gt >= thresholds[k]))
        level[(level == -1) & ~omega] = thresholds[k - 1]
    level[level == -1] = 1

    def phi(alpha):
        d = alpha - level
        return 1 - d * (d >= theta)

    return float(np.abs(phi(pred) - phi(gt))[counted].sum() / 1000)


METRICS = {"SAD": sad, "MSE": mse, "Grad": grad, "Conn": conn}


def evaluate(pred, gt, trimap):
    """All four metrics of one 8-bit prediction, on the trimap's unknown region or (trimap None) the whole image;
    MSE as printed in papers (x 1e3). A trimap with no pixel of 128 is refused: every score would be 0, whatever
    the prediction (some trimaps mark unknown with another grey)."""
    if trimap is not None and not _unknown(trimap).any():
        trimap = np.asarray(trimap)
        grey = np.unique(trimap[(trimap != 0) & (trimap != 255)])
        listed = ", ".join(map(str, grey[:8])) + (" ..." if len(grey) > 8 else "")
        found = f"its grey values: {listed}" if len(grey) else "it has only 0 and 255"
        raise ValueError(f"trimap: no pixel is 128, the unknown value whose region the metrics score ({found})")
    scores = {name: fn(pred, gt, trimap) for name, fn in METRICS.items()}
    scores["MSE"] *= 1e3
    return scores
