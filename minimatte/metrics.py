"""Matting metrics with the Deep Image Matting conventions (spec section 7), on NumPy.

All four read 8-bit mattes (0..255 values; pass float mattes through `to_uint8` first, which truncates as the
reference does when saving) and count only the unknown region, trimap == 128:

- SAD  = sum |p - g| / 255, divided by 1000
- MSE  = sum ((p - g) / 255)^2 / (#unknown + 1e-8)     (papers print MSE x 1e3)
- Grad = sum (|grad p| - |grad g|)^2 / 1000, gradients by first-derivative-of-Gaussian filters, sigma 1.4
- Conn = sum |phi_p - phi_g| / 1000, thresholds 0, 0.1 .. 1, largest 4-connected component, theta 0.15
"""
import math

import numpy as np


def to_uint8(alpha):
    """A float matte in [0, 1] as the reference saves it: alpha * 255 truncated to uint8."""
    return (np.clip(np.asarray(alpha, dtype=np.float64), 0, 1) * 255).astype(np.uint8)


def _unknown(trimap):
    return np.asarray(trimap) == 128


def _check(pred, gt, trimap):
    pred, gt, trimap = (np.asarray(a) for a in (pred, gt, trimap))
    for name, a in (("pred", pred), ("gt", gt), ("trimap", trimap)):
        if a.ndim != 2:
            raise ValueError(f"{name}: expected a one-channel (H, W) matte, got shape {a.shape}")
    if not pred.shape == gt.shape == trimap.shape:
        raise ValueError(f"pred, gt, trimap: sizes differ ({pred.shape}, {gt.shape}, {trimap.shape})")
    return pred.astype(np.float64), gt.astype(np.float64), trimap


def sad(pred, gt, trimap):
    pred, gt, trimap = _check(pred, gt, trimap)
    return float(np.abs(pred - gt)[_unknown(trimap)].sum() / 255 / 1000)


def mse(pred, gt, trimap):
    pred, gt, trimap = _check(pred, gt, trimap)
    unknown = _unknown(trimap)
    return float((((pred - gt) / 255) ** 2)[unknown].sum() / (unknown.sum() + 1e-8))


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
    half = len(taps) // 2
    padded = np.pad(x, [(half, half) if a == axis else (0, 0) for a in range(x.ndim)], mode="edge")
    out = np.zeros_like(x)
    for i, t in enumerate(taps):
        out += t * np.take(padded, np.arange(i, i + x.shape[axis]), axis=axis)
    return out


def _gradient_magnitude(alpha):
    g, dg = _gaussian_derivative_filters()
    gx = _correlate1d(_correlate1d(alpha, g, 0), dg, 1)  # hx = G(rows) x G'(columns)
    gy = _correlate1d(_correlate1d(alpha, dg, 0), g, 1)  # hy = hx transposed
    return np.sqrt(gx ** 2 + gy ** 2)  # correlation vs convolution only flips signs


def grad(pred, gt, trimap):
    pred, gt, trimap = _check(pred, gt, trimap)
    diff = _gradient_magnitude(pred / 255) - _gradient_magnitude(gt / 255)
    return float((diff ** 2)[_unknown(trimap)].sum() / 1000)


def largest_component(mask):
    """The largest 4-connected component of a boolean mask (background excluded), by union-find over row runs."""
    mask = np.asarray(mask, dtype=bool)
    runs = []  # (row, start, stop) of each horizontal run of True
    for row in range(mask.shape[0]):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask[row].view(np.int8), [0]))))
        runs.extend((row, int(s), int(e)) for s, e in zip(edges[::2], edges[1::2]))
    parent = list(range(len(runs)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row = {}
    for i, (row, _, _) in enumerate(runs):
        by_row.setdefault(row, []).append(i)
    for row, current in by_row.items():
        above, a = by_row.get(row - 1, []), 0
        for i in current:  # runs are sorted by start within a row: a two-pointer sweep
            _, s, e = runs[i]
            while a < len(above) and runs[above[a]][2] <= s:
                a += 1
            b = a
            while b < len(above) and runs[above[b]][1] < e:  # overlapping columns touch vertically
                parent[root(above[b])] = root(i)
                b += 1
    out = np.zeros_like(mask)
    if not runs:
        return out
    sizes = {}
    for i, (_, s, e) in enumerate(runs):
        r = root(i)
        sizes[r] = sizes.get(r, 0) + e - s
    best = max(sizes, key=sizes.get)
    for i, (row, s, e) in enumerate(runs):
        if root(i) == best:
            out[row, s:e] = True
    return out


def conn(pred, gt, trimap, step=0.1, theta=0.15):
    pred, gt, trimap = _check(pred, gt, trimap)
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

    return float(np.abs(phi(pred) - phi(gt))[_unknown(trimap)].sum() / 1000)


METRICS = {"SAD": sad, "MSE": mse, "Grad": grad, "Conn": conn}


def evaluate(pred, gt, trimap):
    """All four metrics of one 8-bit prediction; MSE as printed in papers (x 1e3)."""
    scores = {name: fn(pred, gt, trimap) for name, fn in METRICS.items()}
    scores["MSE"] *= 1e3
    return scores
