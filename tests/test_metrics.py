"""Matting metrics: hand-computed cases, properties, and scipy-based ports of the reference code."""
import csv
import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minimatte
from minimatte import cli, metrics
from helpers import DATA
from reference import require_reference, torchvision


def test_sad_and_mse_by_hand():
    gt = np.array([[0, 255, 100], [10, 20, 30]], np.uint8)
    pred = np.array([[255, 255, 50], [10, 20, 0]], np.uint8)
    trimap = np.array([[128, 128, 128], [0, 255, 128]], np.uint8)  # known pixels are ignored
    assert metrics.sad(pred, gt, trimap) == pytest.approx((255 + 0 + 50 + 30) / 255 / 1000)
    assert metrics.mse(pred, gt, trimap) == pytest.approx(((255 / 255) ** 2 + (50 / 255) ** 2 + (30 / 255) ** 2) / 4)
    scores = metrics.evaluate(pred, gt, trimap)  # MSE as papers print it
    assert scores["SAD"] == metrics.sad(pred, gt, trimap) and scores["MSE"] == 1e3 * metrics.mse(pred, gt, trimap)


def test_whole_image_scores():
    """With trimap None every pixel counts, as evaluation scripts score the whole image: as with a trimap of 128
    everywhere (hustvl's evaluation for Distinctions-646)."""
    gt = np.array([[0, 255, 100], [10, 20, 30]], np.uint8)
    pred = np.array([[255, 255, 50], [10, 20, 0]], np.uint8)
    assert metrics.sad(pred, gt, None) == pytest.approx((255 + 0 + 50 + 0 + 0 + 30) / 255 / 1000)
    assert metrics.mse(pred, gt, None) == pytest.approx(((255 / 255) ** 2 + (50 / 255) ** 2 + (30 / 255) ** 2) / 6)
    rng = np.random.default_rng(1)
    gt, pred = (rng.integers(0, 256, (40, 50), dtype=np.uint8) for _ in range(2))
    whole = metrics.evaluate(pred, gt, None)
    assert whole == metrics.evaluate(pred, gt, np.full(gt.shape, 128, np.uint8)) and all(whole.values())
    with pytest.raises(ValueError, match=r"^pred, gt: sizes differ \(\(40, 50\), \(50, 40\)\)$"):
        metrics.evaluate(pred, gt.T, None)
    with pytest.raises(ValueError, match=r"^pred, gt, trimap: sizes differ \(\(40, 50\), \(40, 50\), \(40, 49\)\)$"):
        metrics.sad(pred, gt, np.full((40, 49), 128, np.uint8))


def test_identical_mattes_score_zero_and_metrics_are_symmetric():
    rng = np.random.default_rng(0)
    gt, pred = (rng.integers(0, 256, (40, 50), dtype=np.uint8) for _ in range(2))
    trimap = np.full((40, 50), 128, np.uint8)
    assert metrics.evaluate(gt, gt, trimap) == {"SAD": 0, "MSE": 0, "Grad": 0, "Conn": 0}
    for fn in metrics.METRICS.values():
        assert fn(pred, gt, trimap) == pytest.approx(fn(gt, pred, trimap))
        assert fn(pred, gt, np.zeros_like(trimap)) == 0


def test_mattes_on_another_scale_are_refused():
    """The metrics read 8-bit values: infer's float matte in [0, 1] or a 16-bit matte would score on the wrong
    scale, plausibly and silently. Float values in 0..255 are taken as they are."""
    alpha = np.random.default_rng(4).random((20, 30)).astype(np.float32)
    gt, trimap = metrics.to_uint8(alpha), np.full(alpha.shape, 128, np.uint8)
    with pytest.raises(ValueError, match=r"pred: float values that go up to only 0.9\d+ read as nearly 0 of 255 "
                                         r"\(values in \[0, 1\], as infer returns a matte\?\); pass "
                                         r"metrics.to_uint8\(pred\)$"):
        metrics.sad(alpha, gt, trimap)
    with pytest.raises(ValueError, match=r"pred: float values that go up to only 1 read as"):  # where alpha is 1
        metrics.sad(np.minimum(alpha * 2, 1), gt, trimap)
    with pytest.raises(ValueError, match=r"trimap: .* \(values in \[0, 1\]\?\); pass np.rint\(trimap \* 255\)"):
        metrics.mse(gt, gt, trimap / 255)
    with pytest.raises(ValueError, match=r"gt: expected 8-bit values in 0..255, found \[0, 6\d+\]$"):
        metrics.grad(gt, gt.astype(np.uint16) * 257, trimap)
    with pytest.raises(ValueError, match=r"pred: expected 8-bit values in 0..255, found \[nan, nan\]$"):
        metrics.conn(np.full(alpha.shape, np.nan), gt, trimap)
    for step in 0, -0.1, np.nan, True, "0.1", 1.5:  # -0.1 scored 0, True as 1, NaN failed inside np.arange
        with pytest.raises(ValueError, match=rf"^step: expected the thresholds' spacing, a number in \(0, 1\], got "
                                             rf"{re.escape(repr(step))}$"):
            metrics.conn(gt, gt, trimap, step=step)
    with pytest.raises(ValueError, match=r"^theta: expected a finite number, got nan$"):  # scored 0
        metrics.conn(gt, gt, trimap, theta=np.nan)
    with pytest.raises(TypeError, match="pred: expected 8-bit values .* got dtype bool$"):
        metrics.evaluate(gt > 128, gt, trimap)
    with pytest.raises(TypeError, match=r"^gt: expected 8-bit values \(uint8, or numbers in 0..255\), got dtype "
                                        r"bool$"):
        metrics.sad(gt, gt > 128, trimap)
    with pytest.raises(ValueError, match=r"^trimap: expected a non-empty one-channel \(H, W\) image, got shape "
                                         r"\(20, 30, 3\)$"):
        metrics.mse(gt, gt, np.dstack([trimap] * 3))
    with pytest.raises(ValueError, match=r"^pred: expected a non-empty one-channel \(H, W\) image, got shape "
                                         r"\(0, 30\)$"):
        metrics.evaluate(gt[:0], gt[:0], None)
    assert metrics.evaluate(gt.astype(np.float64), gt.astype(np.int64), trimap) == metrics.evaluate(gt, gt, trimap)
    # to_uint8 truncates a float matte as the reference saves it, passes an 8-bit one on, and refuses other
    # scales, which clipping into [0, 1] would make binary
    np.testing.assert_array_equal(gt, (alpha.astype(np.float64) * 255).astype(np.uint8))
    assert metrics.to_uint8(gt) is gt
    with pytest.raises(ValueError, match=r"alpha: values must lie in \[0, 1\] .*found \[\d.*, 25\d\."):
        metrics.to_uint8(alpha * 255)
    with pytest.raises(TypeError, match=r"alpha: expected a float matte in \[0, 1\] or a uint8 one, got dtype "
                                        r"uint16$"):
        metrics.to_uint8(gt.astype(np.uint16) * 257)
    assert metrics.to_uint8(alpha[:0]).shape == (0, 30) and metrics.to_uint8(alpha[:0]).dtype == np.uint8


def _near_every_level_boundary():
    """The float32 values in [0, 1] within 64 steps of each 8-bit level's boundary k / 255."""
    nearest = (np.arange(256) / 255).astype(np.float32).view(np.int32)
    near = (nearest[:, None] + np.arange(-64, 65, dtype=np.int32)).view(np.float32).ravel()
    return near[(near >= 0) & (near <= 1)]


def test_to_uint8_truncates_as_the_reference_saves_mattes():
    """hustvl's inference saves the network's float32 alphas with torchvision's to_pil_image: mul(255).byte(),
    in float32. to_uint8 gives the same levels for the float32 values nearest every level's boundary k / 255."""
    torch, _ = require_reference()
    near = _near_every_level_boundary()
    np.testing.assert_array_equal(metrics.to_uint8(near), torch.from_numpy(near).mul(255).byte().numpy())


def test_to_uint8_is_torchvisions_to_pil_image():
    """The levels of torchvision's to_pil_image itself, which hustvl's inference saves mattes with."""
    to_pil_image = torchvision().transforms.functional.to_pil_image
    import torch
    near = _near_every_level_boundary()[None]  # (1, N): a one-row matte
    np.testing.assert_array_equal(metrics.to_uint8(near), np.asarray(to_pil_image(torch.from_numpy(near))))


def test_grad_matches_scipy_port():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (30, 40)).astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
    trimap = np.where(rng.random(gt.shape) < 0.5, 128, 0).astype(np.uint8)
    sigma, half = 1.4, 4  # DIM's half size: ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma 0.01)))
    u = np.arange(-half, half + 1)
    gauss = np.exp(-u ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    hx = np.outer(gauss, -u * gauss / sigma ** 2)  # hx[i, j] = G(i) G'(j)
    hx /= np.sqrt((hx ** 2).sum())
    hy = hx.T

    def amplitude(a):
        a = a / 255.0
        return np.sqrt(ndimage.convolve(a, hx, mode="nearest") ** 2 + ndimage.convolve(a, hy, mode="nearest") ** 2)

    expected = ((amplitude(pred) - amplitude(gt)) ** 2 * (trimap == 128)).sum() / 1000
    assert metrics.grad(pred, gt, trimap) == pytest.approx(expected, rel=1e-9)


def test_conn_matches_scipy_port():
    ndimage = pytest.importorskip("scipy.ndimage")

    def largest(mask):
        labels, count = ndimage.label(mask)  # 4-connectivity, background excluded
        if count == 0:
            return np.zeros_like(mask, bool)
        return labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])

    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:60, 0:70]
    gt = np.clip(255 * (1.5 - np.hypot(y - 30, x - 35) / 20) + rng.normal(0, 30, y.shape), 0, 255).astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-60, 60, gt.shape), 0, 255).astype(np.uint8)
    trimap = np.full(gt.shape, 128, np.uint8)
    snake = np.zeros((31, 41), bool)  # one component winding down all 31 rows, joined at alternate ends
    snake[::2] = True
    snake[1::4, -1] = snake[3::4, 0] = True
    comb = np.zeros((30, 40), bool)  # teeth joined only in the last row
    comb[:, ::2] = comb[-1] = True
    ties = np.zeros((10, 10), bool)  # three components of 3 pixels: the first in raster order wins
    ties[0, 7:] = ties[5, 2:5] = ties[9, :3] = True
    masks = [rng.random(shape) > p for p in (0.3, 0.5, 0.6) for shape in ((60, 70), (1, 50), (50, 1), (3, 300))]
    masks += [snake, snake.T, snake[::-1, ::-1], comb, comb[::-1], comb.T, ties, ties.T, np.zeros((4, 5), bool),
              np.ones((4, 5), bool)]
    for mask in masks:
        np.testing.assert_array_equal(metrics.largest_component(mask), largest(mask))
    p, g = pred / 255.0, gt / 255.0
    for step, theta in (0.1, 0.15), (0.2, 0.15), (0.1, 0.05):  # DIM's, and two where other levels count
        level = np.full(p.shape, -1.0)
        steps = np.arange(0, 1 + step, step)
        for i in range(1, len(steps)):
            omega = largest((p >= steps[i]) & (g >= steps[i]))
            level[(level == -1) & ~omega] = steps[i - 1]
        level[level == -1] = 1
        phi_p, phi_g = 1 - (p - level) * (p - level >= theta), 1 - (g - level) * (g - level >= theta)
        expected = np.abs(phi_p - phi_g).sum() / 1000
        assert metrics.conn(pred, gt, trimap, step, theta) == pytest.approx(expected, rel=1e-12)


def test_evaluate_refuses_a_trimap_without_unknown_pixels():
    """Every score would be 0: e.g. pymatting's lemur trimap marks unknown with 102, not DIM's 128."""
    gt = np.random.default_rng(3).integers(0, 256, (20, 30), dtype=np.uint8)
    trimap = np.full(gt.shape, 102, np.uint8)
    trimap[:5] = 0
    with pytest.raises(ValueError, match=r"trimap: no pixel is 128, .*\(its grey values: 102\)"):
        metrics.evaluate(255 - gt, gt, trimap)
    with pytest.raises(ValueError, match=r"\(its grey values: 1, 2, 3, 4, 5, 6, 7, 8 \.\.\.\)$"):
        metrics.evaluate(255 - gt, gt, np.arange(600, dtype=np.uint8).reshape(gt.shape) % 10)
    with pytest.raises(ValueError, match="it has only 0 and 255"):
        metrics.evaluate(255 - gt, gt, np.where(gt > 128, 255, 0).astype(np.uint8))


def test_trimap_from_mask():
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    trimap = minimatte.trimap_from_mask(mask, band=2)
    assert (trimap[7:13, 12:23] == 255).all() and trimap[6, 12] == 128 and trimap[5, 10] == 128
    assert trimap[3, 10] == 128 and trimap[2, 10] == 0 and (trimap[:, :8] == 0).all()
    sure = mask * 0.98 + 0.01  # a soft mask's values beyond the thresholds (10 and 240 of 255) are certain
    np.testing.assert_array_equal(minimatte.trimap_from_mask(sure, band=2, value_range=1.0), trimap)
    with pytest.raises(ValueError, match="band: 0 pixels around a mask without a soft edge leaves no pixel unknown"):
        minimatte.trimap_from_mask(mask, band=0)  # a trimap of only 0 and 255: nothing to matte
    soft_edge = np.where(mask, 1.0, 0.0)
    soft_edge[5, 10:25] = 0.5
    np.testing.assert_array_equal(np.unique(minimatte.trimap_from_mask(soft_edge, band=0, value_range=1.0)),
                                  [0, 128, 255])
    at_thresholds = np.where(mask, 255, 0).astype(np.uint8)
    at_thresholds[5, 10:25], at_thresholds[14, 10:25] = 240, 10  # soft: only below 10 and above 240 are certain
    unknown = minimatte.trimap_from_mask(at_thresholds, band=0) == 128
    np.testing.assert_array_equal(unknown, (at_thresholds == 240) | (at_thresholds == 10))
    for saved in (np.uint8, np.uint16):  # 0/1 masks as segmentation tools save them, and the 0/255 convention
        np.testing.assert_array_equal(minimatte.trimap_from_mask(mask.astype(saved), band=2), trimap)
        full_scale = (mask * np.iinfo(saved).max).astype(saved)
        np.testing.assert_array_equal(minimatte.trimap_from_mask(full_scale, band=2), trimap)
    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, band=np.uint8(2)), trimap)  # NumPy's integers
    for band in -1, 2.0, True:
        with pytest.raises(ValueError, match="band: expected an integer of at least 0 pixels, got"):
            minimatte.trimap_from_mask(mask, band=band)
    for thresholds in (0.9, 0.1), (0.1, 0.5, 0.9), "ab", 0.5, (False, True):
        with pytest.raises(ValueError, match=r"thresholds: expected \(background below, foreground above\) with 0 "
                                             rf"<= first <= second <= 1, got {re.escape(repr(thresholds))}$"):
            minimatte.trimap_from_mask(mask, thresholds=thresholds)
    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, band=2, thresholds=np.array([0.1, 0.9])), trimap)


def test_a_soft_edge_is_unknown_beyond_the_band():
    """A rough cut-out's hair: soft alpha reaching far beyond its half-opaque edge stays unknown, for the matting
    to decide, where thresholding at one half would make it background."""
    alpha = np.zeros((20, 60), np.uint8)
    alpha[:, :20] = 255
    alpha[:, 20:50] = np.linspace(250, 5, 30).round().astype(np.uint8)  # strands fading out over 30 pixels
    trimap = minimatte.trimap_from_mask(alpha, band=2)
    values = alpha[0]
    unknown = (values >= 10) & (values <= 240)  # the soft pixels: rembg's thresholds, of 255
    first, last = np.flatnonzero(unknown)[[0, -1]]
    assert (trimap[:, :first - 2] == 255).all() and (trimap[:, first - 2:last + 3] == 128).all()
    assert (trimap[:, last + 3:] == 0).all()
    halved = minimatte.trimap_from_mask(alpha, band=2, thresholds=(0.5, 0.5))  # one threshold: a hard edge
    edge = np.flatnonzero(values < 128)[0]
    assert (halved[:, edge - 2:edge + 2] == 128).all() and (halved[:, edge + 2:] == 0).all()


def test_trimap_band_is_a_square_erosion_with_unshrinking_borders():
    """The band's two erosions against their definition: a pixel keeps its side if its whole (2 band + 1)^2
    square, the border replicated beyond the image, is on that side; for odd sizes and bands beyond them."""
    rng = np.random.default_rng(4)

    def eroded(mask, band):
        padded = np.pad(mask, band, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * band + 1,) * 2)
        return windows.all(axis=(-2, -1))

    for shape in ((1, 1), (1, 9), (9, 1), (23, 31)):
        for density in (0.1, 0.5, 0.9):
            mask = rng.random(shape) < density
            for band in (0, 1, 2, 3, 6, 40):
                for side in mask, ~mask:
                    np.testing.assert_array_equal(minimatte.processing._erode(side, band), eroded(side, band))
                if mask.any() and not mask.all() and band:  # else no edge or no band: an error (below, above)
                    want = np.full(shape, 128)
                    want[eroded(mask, band)], want[eroded(~mask, band)] = 255, 0
                    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, band=band), want)
    # A band beyond the mask's sides erodes as its sides do, with no padding beyond them: 2^62 pixels of it would
    # take exabytes.
    mask = np.zeros((23, 31), bool)
    mask[5:9, 7:20] = True
    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, band=2 ** 62), np.full(mask.shape, 128))
    np.testing.assert_array_equal(minimatte.processing._erode(~mask, 2 ** 62), eroded(~mask, 30))


def test_a_mask_without_an_edge_is_an_error():
    nothing = "mask: every pixel is background \\(below 0.0392 of its range\\), so there is nothing to matte$"
    soft = (r"mask: no pixel is foreground \(above 0.941 of its range\), so there is nothing to matte; a mask this "
            r"soft needs lower thresholds \(0.5 and 0.5 cut it at one half\)")
    everything = "mask: every pixel is foreground, so there is no edge to matte"
    for mask, message in ((np.zeros((6, 8), np.uint8), nothing), (np.zeros((6, 8), bool), nothing),  # found nothing
                          (np.full((6, 8), 0.7), soft), (np.linspace(0, 0.9, 48).reshape(6, 8), soft),
                          (np.full((6, 8), 255, np.uint8), everything), (np.ones((6, 8), bool), everything)):
        with pytest.raises(ValueError, match=message):
            minimatte.trimap_from_mask(mask, value_range=1.0 if mask.dtype == float else None)


def test_trimap_from_a_smaller_mask():
    """A mask at a segmentation model's resolution is scaled (bilinear) to the image's size, then thresholded
    (the scaling's soft edge unknown); a mask of another aspect ratio is an error."""
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    scaled = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((90, 60), Image.BILINEAR))
    for given in mask, (mask * 255).astype(np.uint8), mask.astype(np.uint8):
        np.testing.assert_array_equal(minimatte.trimap_from_mask(given, band=3, size=(60, 90)),
                                      minimatte.trimap_from_mask(scaled, band=3, value_range=1.0))
    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, size=(20, 30)), minimatte.trimap_from_mask(mask))
    minimatte.trimap_from_mask(mask, size=(41, 61))  # sides rounded differently: the same aspect ratio
    with pytest.raises(ValueError, match=r"mask: size 20x30 \(HxW\) does not match the image's 40x50, nor its"):
        minimatte.trimap_from_mask(mask, size=(40, 50))
    with pytest.raises(ValueError, match=r"nor its aspect ratio; its aspect ratio is the image's turned 90 degrees"):
        minimatte.trimap_from_mask(mask, size=(91, 60))  # a photo's upright size, the mask of its stored pixels
    np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, size=np.array([60, 90])),
                                  minimatte.trimap_from_mask(mask, size=(60, 90)))
    for size, hint in (((60, 90, 3), " \\(an image's shape\\? pass image.shape\\[:2\\]\\)"), ((60.0, 90.0), ""),
                       ((0, 0), ""), (60, ""), ((4 * 10 ** 20, 6 * 10 ** 20), ""), ((2 ** 31, 2 ** 31), "")):
        with pytest.raises(ValueError, match=rf"^size: expected the image's \(H, W\), two positive integers below "
                                             rf"2\^31, got {re.escape(repr(size))}{hint}$"):
            minimatte.trimap_from_mask(mask, size=size)


def test_trimap_from_a_mask_with_channels(tmp_path):
    """A cut-out (RGBA or LA whose alpha varies) is its alpha; otherwise the brightest colour channel."""
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    trimap = minimatte.trimap_from_mask(mask, band=2)
    colours = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)  # a photo's, not the mask
    alpha = (mask * 255).astype(np.uint8)
    rgba, la = np.dstack([colours, alpha]), np.dstack([colours[..., 0], alpha])
    for cutout in Image.fromarray(rgba, "RGBA"), Image.fromarray(la, "LA"):
        np.testing.assert_array_equal(minimatte.trimap_from_mask(cutout, band=2), trimap)
        path = tmp_path / f"cutout_{cutout.mode}.png"
        cutout.save(path)
        np.testing.assert_array_equal(minimatte.trimap_from_mask(str(path), band=2), trimap)
    blue = np.zeros((20, 30, 3), np.uint8)
    blue[mask] = (0, 0, 200)  # a mask drawn in colour on black
    np.testing.assert_array_equal(minimatte.trimap_from_mask(blue, band=2), trimap)
    opaque = np.dstack([blue, np.full((20, 30), 255, np.uint8)])  # RGBA without transparency: its colours
    np.testing.assert_array_equal(minimatte.trimap_from_mask(opaque, band=2), trimap)
    grey = np.repeat(alpha[..., None], 3, axis=2)  # a grey mask saved as RGB
    np.testing.assert_array_equal(minimatte.trimap_from_mask(grey, band=2), trimap)
    np.testing.assert_array_equal(minimatte.trimap_from_mask(np.dstack([mask, mask]).astype(np.uint8), band=2),
                                  trimap)  # 0/1 in both channels: binary
    for channels_last in mask[..., None], alpha[..., None]:  # (H, W, 1), as Keras and OpenCV give one channel
        np.testing.assert_array_equal(minimatte.trimap_from_mask(channels_last, band=2), trimap)
    for stack in mask[None], np.stack([mask, ~mask, mask]):  # segmentation models' (N, H, W) outputs
        with pytest.raises(ValueError, match=rf"mask: expected a non-empty one-channel \(H, W\) mask, got shape "
                                             rf"\({len(stack)}, 20, 30\) \(a stack of {len(stack)} masks\? pass one of "
                                             r"them, e.g. masks\[0\]\)$"):
            minimatte.trimap_from_mask(stack)


def test_evaluate_command_on_alphamatting(tmp_path, capsys):
    """Scores ground truth against itself (all zero) and a blurred-trimap baseline (positive) on real data."""
    root = DATA / "alphamatting"
    names = ["GT01.png", "GT02.png"]
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for name in names:
        trimap = np.asarray(Image.open(root / "trimap_training_lowres" / "Trimap1" / name).convert("L"))
        Image.fromarray(trimap).save(pred_dir / name)  # the trimap itself as a (poor) prediction
    gt_dir, trimap_dir = tmp_path / "gt", tmp_path / "trimap"
    gt_dir.mkdir()
    trimap_dir.mkdir()
    for name in names:
        Image.open(root / "gt_training_lowres" / name).convert("L").save(gt_dir / name)
        Image.open(root / "trimap_training_lowres" / "Trimap1" / name).convert("L").save(trimap_dir / name)
    assert cli.main(["evaluate", str(gt_dir), str(gt_dir), str(trimap_dir)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "| image | SAD | MSE (x1e3) | Grad | Conn |"
    assert rows[-1] == "| mean | 0.000 | 0.000 | 0.000 | 0.000 |"
    assert [r.split("|")[1].strip() for r in rows[2:4]] == ["GT01", "GT02"]
    # but a matte as its own trimap, whose pixels of 128 would pass for the unknown region, is refused
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(gt_dir / ".")]) == 2
    assert capsys.readouterr().err == (f"minimatte: error: trimap: {str(gt_dir / '.')!r} is the gt folder too, so "
                                       "each ground truth would be its own trimap; give the folder of trimaps\n")
    assert cli.main(["evaluate", str(pred_dir / names[0]), str(gt_dir / names[0]), str(pred_dir / names[0])]) == 2
    assert "is the pred file too, so the prediction would be its own trimap; give the trimap file" in \
        capsys.readouterr().err
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir)]) == 0
    rows = capsys.readouterr().out.splitlines()
    mean = [float(v) for v in rows[-1].split("|")[2:6]]
    assert all(v > 0 for v in mean)
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir), "--csv"]) == 0  # at full precision
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[0] == ["image", "SAD", "MSE (x1e3)", "Grad", "Conn"] and [r[0] for r in table[1:]] == ["GT01", "GT02",
                                                                                                      "mean"]
    for name, *scores in table[1:3]:
        pred, gt, trimap = (np.asarray(Image.open(folder / f"{name}.png")) for folder in (pred_dir, gt_dir, trimap_dir))
        assert [float(v) for v in scores] == list(metrics.evaluate(pred, gt, trimap).values())
    assert [round(float(v), 3) for v in table[3][1:]] == mean
    per_image = [[float(v) for v in row[1:]] for row in table[1:3]]
    assert [float(v) for v in table[3][1:]] == [(a + b) / 2 for a, b in zip(*per_image)]
    # three files score one image, named by its prediction, whatever the other files' names
    (tmp_path / "t.png").write_bytes((trimap_dir / names[0]).read_bytes())
    assert cli.main(["evaluate", str(pred_dir / names[0]), str(gt_dir / names[0]), str(tmp_path / "t.png")]) == 0
    assert capsys.readouterr().out.splitlines() == rows[:3]
    assert cli.main(["evaluate", str(pred_dir / names[0]), str(gt_dir), str(trimap_dir)]) == 2
    assert "evaluate: give three folders (files paired by name) or three files, got file, folder, folder" in \
        capsys.readouterr().err

    # --whole-image: every pixel, no trimap
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), "--whole-image", "--csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [r[0] for r in table[1:]] == ["GT01", "GT02", "mean"]
    for name, *scores in table[1:3]:
        pred, gt, trimap = (np.asarray(Image.open(folder / f"{name}.png")) for folder in (pred_dir, gt_dir, trimap_dir))
        assert [float(v) for v in scores] == list(metrics.evaluate(pred, gt, None).values())
        assert [float(v) for v in scores] != list(metrics.evaluate(pred, gt, trimap).values())
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir), "--whole-image"]) == 2
    assert "trimap: --whole-image scores every pixel, so no trimap is read; give no TRIMAP_DIR" in \
        capsys.readouterr().err
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir)]) == 2
    assert "trimap: give TRIMAP_DIR, whose unknown region (trimap == 128) is scored, or --whole-image to score every " \
           "pixel" in capsys.readouterr().err
    assert cli.main(["evaluate", str(pred_dir / names[0]), str(gt_dir), "--whole-image"]) == 2
    assert "evaluate: give two folders (files paired by name) or two files, got file, folder" in capsys.readouterr().err

    (pred_dir / names[1]).unlink()  # a ground truth without prediction: scored without it, and said so
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir)]) == 0
    out, err = capsys.readouterr()
    assert [r.split("|")[1].strip() for r in out.splitlines()[2:]] == ["GT01", "mean"]
    assert "1 of 2 ground truths have no prediction" in err and "(GT02); the mean is over the 1 predicted" in err
    folders = [tmp_path / name for name in ("p", "g", "t")]  # many without: the first five are named
    for folder in folders:
        folder.mkdir()
        for k in range(1 if folder.name == "p" else 7):
            Image.fromarray(np.full((4, 4), 128, np.uint8)).save(folder / f"{k}.png")
    assert cli.main(["evaluate", *map(str, folders)]) == 0
    assert (f"6 of 7 ground truths have no prediction in {str(folders[0])!r} (1, 2, 3, 4, 5, ...); the mean is over "
            "the 1 predicted") in capsys.readouterr().err
    Image.fromarray(np.where(np.asarray(Image.open(trimap_dir / names[0])) > 128, 255, 0).astype(np.uint8)).save(
        tmp_path / "binary.png")  # a trimap without unknown pixels: the metrics' own error
    assert cli.main(["evaluate", str(gt_dir / names[0]), str(gt_dir / names[0]), str(tmp_path / "binary.png")]) == 2
    assert capsys.readouterr().err == ("minimatte: error: GT01: trimap: no pixel is 128, the unknown value whose "
                                       "region the metrics score (it has only 0 and 255)\n")
    Image.open(root / "gt_training_lowres" / names[1]).convert("L").save(pred_dir / names[0])  # another size
    assert cli.main(["evaluate", str(pred_dir / names[0]), str(gt_dir / names[0]), str(trimap_dir / names[0])]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("minimatte: error: GT01: pred, gt, trimap: sizes differ")  # no bare header
    # In folders, a failed image is reported and left out, as in a batch, and the others are scored
    Image.fromarray(np.asarray(Image.open(gt_dir / names[1])).astype(np.uint16)).save(pred_dir / names[1])
    for folder, source in ((gt_dir, "gt_training_lowres"), (trimap_dir, "trimap_training_lowres/Trimap1")):
        for name in "GT03.png", "GT04.png":
            Image.open(root / source / name).convert("L").save(folder / name)
    (pred_dir / "GT03.png").write_bytes(b"not an image")
    shutil.copy(gt_dir / "GT04.png", pred_dir)
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir), "--csv"]) == 1
    out, err = capsys.readouterr()
    assert [row[0] for row in csv.reader(io.StringIO(out))] == ["image", "GT04", "mean"]
    assert err.splitlines() == [
        "minimatte: error: GT01: pred, gt, trimap: sizes differ ((524, 800), (497, 800), (497, 800))",
        "minimatte: error: GT02: pred: a 16-bit image whose values go up to only 255 of 65535 (8-bit values saved as "
        "16 bits?); save it with 8 bits, or its values times 257",  # named by its image, as the error names no file
        f"minimatte: error: pred: {str(pred_dir / 'GT03.png')!r} is not a readable image (no image format that Pillow "
        "reads)",
        "minimatte: error: 3 of 4 images failed; the mean is over the 1 scored"]
    (pred_dir / "GT04.png").unlink()
    assert cli.main(["evaluate", str(pred_dir), str(gt_dir), str(trimap_dir)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("minimatte: note: 1 of 4 ground truths have no prediction in "
                                      f"{str(pred_dir)!r} (GT04); the mean leaves them out\n"
                                      "minimatte: error: 3 of 3 images failed; no mean\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file names of any bytes, and with a |")
def test_evaluate_prints_any_file_name(tmp_path, capsys):
    """A name that standard output's encoding cannot write (a Latin-1 name's undecodable bytes) is escaped as
    stderr escapes it, not an error after the table's header; a | is escaped in the Markdown table, as it would
    end the cell."""
    names = ["a|b", os.fsdecode(b"caf\xe9")]
    for folder in (tmp_path / "pred", tmp_path / "gt"):
        folder.mkdir()
        for name in names:
            Image.fromarray(np.full((4, 4), 128, np.uint8)).save(folder / f"{name}.png")
    command = ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--whole-image"]
    assert cli.main(command) == 0
    assert [row.split(" | ")[0] for row in capsys.readouterr().out.splitlines()] == [
        "| image", "|---|---|---|---|---|", "| a\\|b", "| caf\\udce9", "| mean"]
    assert cli.main(command + ["--csv"]) == 0
    assert [row[0] for row in csv.reader(io.StringIO(capsys.readouterr().out))] == ["image", "a|b", "caf\\udce9",
                                                                                    "mean"]


def test_evaluate_into_a_closed_pipe_stops_quietly():
    """`minimatte evaluate ... | head -3`: the rows after the reader has gone are not an error message."""
    root = DATA / "alphamatting"
    command = [sys.executable, "-m", "minimatte", "evaluate", str(root / "gt_training_lowres"),
               str(root / "gt_training_lowres"), str(root / "trimap_training_lowres" / "Trimap1")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.readline().startswith(b"| image | SAD |")
        process.stdout.close()  # as head does once it has its lines
        assert process.wait(timeout=300) == 1
        assert process.stderr.read() == b""
