"""Foreground estimation against pymatting's estimate_foreground_ml, and cut-outs."""
import os
import re
import threading
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from minimatte import foreground
from minimatte.foreground import cutout, estimate_foreground, subject_box
from minimatte.processing import BAND_ROWS, icc_profile, trimap_from_mask

from helpers import DATA, cmyk_profile, gamma_profile
from reference import require

CASES = {
    "lemur": (DATA / "pymatting_lemur" / "lemur.png", DATA / "pymatting_lemur" / "lemur_alpha.png"),
    "GT04": (DATA / "alphamatting" / "input_training_lowres" / "GT04.png",
             DATA / "alphamatting" / "gt_training_lowres" / "GT04.png"),
}


def _read(case):
    image, alpha = CASES[case]
    return np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(alpha).convert("L"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_pymatting_on_real_images(case):
    pymatting, = require("pymatting")
    image, alpha = _read(case)
    want_f, want_b = pymatting.estimate_foreground_ml(image / 255.0, alpha / 255.0, return_background=True)
    fg, bg = estimate_foreground(image, alpha, return_background=True)
    assert fg.shape == image.shape and fg.dtype == np.float32
    # Measured: identical (max difference 0.0); the margin allows for a compiler's different rounding.
    np.testing.assert_allclose(fg, want_f, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bg, want_b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape, settings", [
    ((2, 1), {}), ((1, 9), {}), ((7, 3), {"small_size": 2}), ((45, 61), {"regularization": 1e-2}),
    ((33, 20), {"gradient_weight": 0.0, "small_iterations": 3, "big_iterations": 5}),
])
@pytest.mark.parametrize("run_pixels", [foreground._RUN_PIXELS, 0])  # 0: every step's neighbours as runs
def test_matches_pymatting_on_odd_shapes_and_settings(shape, settings, run_pixels, monkeypatch):
    pymatting, = require("pymatting")
    monkeypatch.setattr(foreground, "_RUN_PIXELS", run_pixels)
    rng = np.random.default_rng(sum(shape))
    image = rng.random(shape + (3,))
    alpha = np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1)  # some pure foreground and background
    renamed = {"small_iterations": "n_small_iterations", "big_iterations": "n_big_iterations"}
    want = pymatting.estimate_foreground_ml(image, alpha, **{renamed.get(k, k): v for k, v in settings.items()})
    got = estimate_foreground(image, alpha, value_range=1.0, **settings)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_start_colours_leave_out_alphas_of_exactly_one_tenth_and_nine_tenths():
    """The 1x1 level's colours are pymatting's: the mean where alpha > 0.9 (F) and where alpha < 0.1 (B), strictly."""
    pymatting, = require("pymatting")
    rng = np.random.default_rng(4)
    image = rng.random((20, 30, 3))
    alpha = np.clip(rng.random((20, 30)) * 1.6 - 0.3, 0, 1)
    alpha[::3, ::2], alpha[1::3, ::2] = 0.9, 0.1
    # one sweep a level, so that the start shows in F (after pymatting's ten it is washed out below 1e-6)
    np.testing.assert_allclose(estimate_foreground(image, alpha, value_range=1.0, small_iterations=1),
                               pymatting.estimate_foreground_ml(image, alpha, n_small_iterations=1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 1), (2, 2), (1, 40), (40, 1), (5, 8), (8, 5), (31, 32)])
def test_neighbours_as_runs_or_gathered_agree(shape, monkeypatch):
    """The sweeps read each step's neighbours either as 4 runs a diagonal (border fixed up) or in one gather."""
    rng = np.random.default_rng(sum(shape))
    image, alpha = rng.random(shape + (3,)), np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1)
    results = []
    for run_pixels in (0, 1 << 30):
        monkeypatch.setattr(foreground, "_RUN_PIXELS", run_pixels)
        results.append(estimate_foreground(image, alpha, value_range=1.0, return_background=True, small_size=4))
    for runs, gathered in zip(*results):
        np.testing.assert_array_equal(runs, gathered)


@pytest.mark.parametrize("shape", [(1, 2), (3, 1), (5, 8), (31, 32), (40, 70)])
def test_systems_held_a_block_at_a_time_agree(shape, monkeypatch):
    """The sweeps' systems are computed a block of positions at a time, on another thread, a few blocks ahead
    (_held_systems): blocks of a few positions, and of fewer than one step's, one or three of them ahead, and
    blocks growing from 1 or 3 positions, give what one block of the whole level gives."""
    rng = np.random.default_rng(sum(shape))
    image, alpha = rng.random(shape + (3,)), np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1)
    results = []
    for held, ahead, first in ((1 << 30, 2, 1 << 30), (1, 2, 1), (7, 1, 7), (7, 3, 7), (100, 2, 100), (100, 2, 1),
                               (64, 1, 3)):
        monkeypatch.setattr(foreground, "_HELD_POSITIONS", held)
        monkeypatch.setattr(foreground, "_BLOCKS_AHEAD", ahead)
        monkeypatch.setattr(foreground, "_FIRST_HELD_POSITIONS", first)
        results.append(estimate_foreground(image, alpha, value_range=1.0, return_background=True, small_size=16))
    for result in results[1:]:
        for got, whole in zip(result, results[0]):
            np.testing.assert_array_equal(got, whole)


def test_an_error_computing_systems_ahead_comes_out_once_their_thread_ends(monkeypatch):
    """An error on the thread that computes the systems ahead (an allocation that failed) comes out of
    estimate_foreground, once that thread has ended: nothing goes on writing into the arrays let go."""
    rng = np.random.default_rng(0)
    image, alpha = rng.random((40, 70, 3)), rng.random((40, 70))
    blocks = []

    def pixel_systems(*args):
        blocks.append(threading.current_thread().name)
        if len(blocks) == 5:
            raise MemoryError("block 5")
        return real(*args)
    real = foreground._pixel_systems
    monkeypatch.setattr(foreground, "_pixel_systems", pixel_systems)
    monkeypatch.setattr(foreground, "_HELD_POSITIONS", 7)
    with pytest.raises(MemoryError, match="block 5"):
        estimate_foreground(image, alpha, value_range=1.0, small_size=4)
    assert all(name.startswith("minimatte-systems") for name in blocks)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("minimatte-systems")]


@pytest.mark.parametrize("summed_pixels", [5, foreground._SUMMED_PIXELS])
def test_start_colours_are_summed_pixel_after_pixel(summed_pixels, monkeypatch):
    """The 1x1 level's colours, the means under alpha > 0.9 and < 0.1, are summed in float32 pixel after pixel,
    as the reference's loop sums them, whatever chunks _mean_colour sums at a time."""
    monkeypatch.setattr(foreground, "_SUMMED_PIXELS", summed_pixels)
    rng = np.random.default_rng(5)
    image = rng.random((90, 1000, 3), dtype=np.float32)  # 90000 pixels: more than one chunk
    mask = rng.random((90, 1000)) < 0.6
    total = np.zeros(3, np.float32)
    for pixel in image[mask]:
        total += pixel
    want = (total.astype(np.float64) / (mask.sum() + 1e-5)).astype(np.float32)
    np.testing.assert_array_equal(foreground._mean_colour(image, mask), want)
    np.testing.assert_array_equal(foreground._mean_colour(image, np.zeros_like(mask)), np.zeros(3, np.float32))


def test_an_8_or_16_bit_image_kept_as_stored_gives_what_its_floats_give():
    """On NumPy an 8- or 16-bit image is kept as stored, a quarter or half the memory, and made float32 a chunk at
    a time where it is used (_read_pair): F and B are exactly those of the same image given as floats."""
    rng = np.random.default_rng(4)
    alpha = np.clip(rng.random((37, 53)) * 1.6 - 0.3, 0, 1)
    for dtype in (np.uint8, np.uint16):
        image = rng.integers(0, np.iinfo(dtype).max + 1, (37, 53, 3), dtype=dtype)
        stored = estimate_foreground(image, alpha, return_background=True, small_size=8)
        floats = estimate_foreground(image / float(np.iinfo(dtype).max), alpha, value_range=1.0,
                                     return_background=True, small_size=8)
        for got, want in zip(stored, floats):
            np.testing.assert_array_equal(got, want)


def test_single_pixel():
    # pymatting divides by zero here (no levels between 1x1 and 1x1); minimatte solves the one pixel.
    fg, bg = estimate_foreground(np.float64([[[0.2, 0.4, 0.6]]]), np.float64([[1.0]]), value_range=1.0,
                                 return_background=True)
    np.testing.assert_allclose(fg, [[[0.2, 0.4, 0.6]]], atol=1e-4)
    assert fg.shape == bg.shape == (1, 1, 3)


def test_recovers_a_composited_foreground():
    # A smooth foreground composited onto a different smooth background: the estimate must move the soft
    # edge's colours towards the true foreground, far from the image's mixed colours.
    h, w = 64, 80
    y, x = np.mgrid[0:h, 0:w] / 80.0
    fg = np.stack([0.9 - 0.2 * x, 0.3 + 0.2 * y, 0.2 + 0.1 * x], axis=-1)
    bg = np.stack([0.1 + 0.1 * y, 0.8 - 0.2 * x, 0.6 + 0.2 * y], axis=-1)
    alpha = np.clip((x * 80 - 30) / 20, 0, 1)  # a 20-pixel ramp
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    estimate = estimate_foreground(image, alpha, value_range=1.0)
    soft = (alpha > 0.2) & (alpha < 0.8)
    assert np.abs(estimate - fg)[soft].max() < 0.05 < np.abs(image - fg)[soft].mean()


def test_bad_input_is_one_clear_error():
    image = np.zeros((10, 12, 3), np.uint8)
    with pytest.raises(ValueError, match=r"alpha: size 10x11 \(HxW\) does not match the image's 10x12"):
        estimate_foreground(image, np.zeros((10, 11), np.float32))
    with pytest.raises(ValueError, match="alpha: values must lie in"):
        estimate_foreground(image, np.full((10, 12), 2.0))
    mask = np.eye(10, 12, dtype=np.uint8)  # a 0/1 mask would cut out nothing: an alpha of 1/255 at most
    with pytest.raises(ValueError, match=r"alpha: values that go up to only 1 of 255 are an alpha of nearly 0 "
                                         r"everywhere \(a 0/1 mask\? class indices\?\); "
                                         r"give them on the scale 0..255$"):
        estimate_foreground(image, mask)
    with pytest.raises(ValueError, match="alpha: values that go up to only 2 of 65535 are"):
        cutout(image, mask.astype(np.uint16) * 2, foreground=False)
    assert cutout(image, mask * 3, foreground=False)[..., 3].max() == 3  # from 3 on, values are taken as they are
    for name, value in (("regularization", -1), ("regularization", np.inf), ("gradient_weight", np.nan),
                        ("gradient_weight", True)):  # True was taken as 1, inf and NaN gave a foreground of NaN
        with pytest.raises(ValueError, match=f"^{name}: expected a finite non-negative number, got {value!r}$"):
            estimate_foreground(image, np.zeros((10, 12)), **{name: value})
    with pytest.raises(ValueError, match=r"^regularization \+ gradient_weight: expected at most 1e\+37 .*, got "
                                         r"2e\+37$"):
        estimate_foreground(image, np.zeros((10, 12)), regularization=1e37, gradient_weight=1e37)
    edges = np.random.default_rng(0).random((10, 12))  # the largest weights, at every neighbour: still finite
    assert np.isfinite(estimate_foreground(image, edges, regularization=5e36, gradient_weight=5e36)).all()
    with pytest.raises(ValueError, match="regularization: must be positive when gradient_weight is 0"):
        estimate_foreground(image, np.zeros((10, 12)), regularization=0, gradient_weight=0)
    with pytest.raises(ValueError, match="big_iterations: expected an integer of at least 0, got 1.5"):
        estimate_foreground(image, np.zeros((10, 12)), big_iterations=1.5)
    with pytest.raises(TypeError, match="return_background: expected True or False, got 'no'$"):
        estimate_foreground(image, np.zeros((10, 12)), return_background="no")
    with pytest.raises(ValueError, match=r"background: 'nonsense' is neither a colour nor an image file \(colours: a "
                                         r"name such as green, #00ff00 or rgb\(0, 255, 0\)\)$"):
        cutout(image, np.zeros((10, 12)), background="nonsense")
    for missing in ("new_bg.jpg", os.path.join("backgrounds", "beach")):  # meant as files: as any missing input
        with pytest.raises(FileNotFoundError, match=f"background: no such file {re.escape(repr(missing))}"):
            cutout(image, np.zeros((10, 12)), background=missing)
    for colour in [(0, 1.0, 0), (0, 256, 0), (0, 255), [0, 255, True], np.float64([0, 0.5, 0]), (0, 255, 0, 255, 0)]:
        with pytest.raises(ValueError, match=r"background: a colour needs 3 integers 0\.\.255 \(r, g, b\), or 4 "
                                             r"\(r, g, b, alpha\), got "):
            cutout(image, np.zeros((10, 12)), background=colour)
    for colour, read in (("rgb(300, 0, 0)", r"\(300, 0, 0\)"), ("hsl(120, 100%, 150%)", r"\(510, 255, 510\)")):
        with pytest.raises(ValueError, match=rf"background: '{re.escape(colour)}' is not a colour: Pillow reads it as "
                                             rf"{read}, beyond 0\.\.255$"):  # not composited with 300/255
            cutout(image, np.zeros((10, 12)), background=colour)
    alpha = np.zeros((10, 12))
    with pytest.raises(TypeError, match=r"alpha: expected .* got list \(a list of 2 images\? give them one at a "
                                        r"time\)$"):
        cutout(image, [alpha, alpha])  # infer's alphas of a batch
    with pytest.raises(TypeError, match=r"alpha: expected .* got list$"):
        cutout(image, [])
    for words in np.full((10, 12, 2), "0.5"), np.full((10, 12, 4), "1"):  # channels that would be an alpha's
        with pytest.raises(TypeError, match=rf"alpha: unsupported dtype {words.dtype}; expected uint8, uint16 or "
                                            "float$"):
            cutout(image, words)
        with pytest.raises(TypeError, match=rf"mask: unsupported dtype {words.dtype}"):
            trimap_from_mask(words)
    for images, shown in (([image], "a list of length 1"), (np.arange(600), "an array of length 600")):
        with pytest.raises(ValueError, match=rf"background: a colour needs .* got {shown}$"):  # not their pixels
            cutout(image, np.zeros((10, 12)), background=images)
    green = cutout(image, np.full((10, 12), 0.25), background=(0, 255, 0))
    for colour in ([0, 255, 0], np.uint8([0, 255, 0]), (0, 255, 0, 255), np.uint8([0, 255, 0, 255]), " lime ",
                   "rgba(0, 255, 0, 255)"):  # a list or a NumPy colour as a tuple, opaque alpha as none
        np.testing.assert_array_equal(cutout(image, np.full((10, 12), 0.25), background=colour), green)
    # A composite is opaque: a background with transparency would show the colours under it.
    for colour in ("#00ff0080", "#0f08", (0, 255, 0, 128)):
        with pytest.raises(ValueError, match=rf"background: {re.escape(repr(colour))} is partly transparent; a "
                                             r"composite is opaque: .* RGBA cut-out$"):
            cutout(image, np.zeros((10, 12)), background=colour)
    # CSS's rgba takes alpha in 0..1, Pillow's (so minimatte's) in 0..255: the error says which.
    css = "; rgba's alpha is an integer 0..255 (255 opaque), not CSS's 0..1"
    for colour, error in (("rgba(0, 255, 0, 1)", "is partly transparent; a composite is opaque: .*"),
                          ("rgba(0, 255, 0, 0.5)", r"is neither a colour nor an image file \(colours: .*"),
                          ("RGBA(0,255,0,1.0)", r"is neither a colour nor an image file \(colours: .*")):
        with pytest.raises(ValueError, match=rf"background: {re.escape(repr(colour))} {error}{re.escape(css)}\)?$"):
            cutout(image, np.zeros((10, 12)), background=colour)
    np.testing.assert_array_equal(cutout(image, np.zeros((10, 12)), background="#00ff00ff"),
                                  cutout(image, np.zeros((10, 12)), background="#00ff00"))
    backdrop = np.dstack([np.zeros((5, 5, 3), np.uint8), np.full((5, 5), 255, np.uint8)])
    cutout(image, np.zeros((10, 12)), background=backdrop)  # opaque RGBA: its colours
    backdrop[2, 2, 3] = 254
    for picture in backdrop, Image.fromarray(backdrop), backdrop[..., 2:]:  # RGBA and LA
        with pytest.raises(ValueError, match="background: the image has transparent pixels"):
            cutout(image, np.zeros((10, 12)), background=picture)


def test_cutout_rgba_and_composites(tmp_path):
    image, alpha8 = _read("lemur")
    alpha = alpha8 / 255.0
    fg = estimate_foreground(image, alpha)
    rgba = cutout(image, alpha)
    assert rgba.dtype == np.uint8 and rgba.shape == image.shape[:2] + (4,)
    np.testing.assert_array_equal(rgba[..., 3], alpha8)
    np.testing.assert_array_equal(rgba[..., :3], np.rint(fg.astype(np.float64) * 255))
    np.testing.assert_array_equal(cutout(image, alpha, foreground=False)[..., :3], image)
    a = alpha[..., None]
    orange = cutout(image, alpha, background="#ff8000")
    np.testing.assert_array_equal(orange, np.rint(np.clip(a * fg + (1 - a) * [1, 128 / 255, 0], 0, 1) * 255))
    np.testing.assert_array_equal(cutout(image, alpha, background=(255, 128, 0)), orange)
    # A cut-out file's alpha channel is its matte: an RGBA cut-out composites as its matte does.
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    np.testing.assert_array_equal(cutout(image, str(tmp_path / "cutout.png"), background="#00ff00"),
                                  cutout(image, alpha8, background="#00ff00"))
    # An image background of another shape is scaled bicubically (per float channel) to cover the image: the
    # 1024x576 photo's centre 890.2x576 (the lemur's 680:440) to 680x440.
    photo = np.asarray(Image.open(DATA / "vitmatte_demo" / "new_bg.jpg").convert("RGB"))
    kept = 576 * 680 / 440
    box = ((1024 - kept) / 2, 0, (1024 + kept) / 2, 576)
    planes = (Image.fromarray(photo[..., c] / np.float32(255)) for c in range(3))
    resized = np.stack([np.asarray(plane.resize((680, 440), Image.BICUBIC, box)) for plane in planes], axis=-1)
    want = np.rint(np.clip(a * image / 255 + (1 - a) * resized, 0, 1) * 255)
    np.testing.assert_array_equal(cutout(image, alpha, background=photo, foreground=False), want)


def test_cutouts_cropped_to_the_subject():
    image = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    alpha = np.zeros((30, 40))
    alpha[8:20, 12:31] = 1.0
    alpha[5, 20] = 0.6 / 255  # a stray pixel that stays 1 in 8 bits widens the box; 0.4 / 255 rounds to 0
    alpha[25, 35] = 0.4 / 255
    whole = cutout(image, alpha, foreground=False)
    np.testing.assert_array_equal(cutout(image, alpha, foreground=False, crop=0), whole[5:20, 12:31])
    np.testing.assert_array_equal(cutout(image, alpha, foreground=False, crop=np.int64(0)), whole[5:20, 12:31])
    np.testing.assert_array_equal(cutout(image, alpha, foreground=False, crop=7), whole[0:27, 5:38])  # clipped
    composite = cutout(image, alpha, background="white", crop=2)
    np.testing.assert_array_equal(composite, cutout(image, alpha, background="white")[3:22, 10:33])
    backdrop = np.random.default_rng(6).integers(0, 256, (45, 50, 3), dtype=np.uint8)  # another size: resized
    np.testing.assert_array_equal(cutout(image, alpha, backdrop, crop=1), cutout(image, alpha, backdrop)[4:21, 11:32])
    with pytest.raises(ValueError, match="crop: the matte is transparent everywhere, so there is nothing to crop"):
        cutout(image, np.zeros((30, 40)), crop=0)
    for margin in -1, 2.5, True:
        with pytest.raises(ValueError, match="crop: expected an integer of at least 0 pixels, got"):
            cutout(image, alpha, crop=margin)


def test_the_subject_box_is_where_the_cropped_cutout_lies(tmp_path):
    """subject_box(alpha, margin): (left, top, right, bottom) of what cutout(..., crop=margin) keeps, in PIL's
    order, for any matte cutout takes (an array, a file, a cut-out's alpha), to place the cut-out back."""
    image = np.random.default_rng(7).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    alpha = np.zeros((30, 40))
    alpha[8:20, 12:31] = 1.0
    alpha[5, 20] = 0.6 / 255  # 1 in 8 bits: inside the box, as in the cut-out
    Image.fromarray(np.uint8(np.rint(alpha * 255))).save(tmp_path / "alpha.png")
    whole = cutout(image, alpha)
    for margin, box in ((0, (12, 5, 31, 20)), (7, (5, 0, 38, 27))):
        for matte in (alpha, str(tmp_path / "alpha.png"), Image.open(tmp_path / "alpha.png")):
            assert subject_box(matte, margin) == box and all(type(edge) is int for edge in box)
        left, top, right, bottom = box
        np.testing.assert_array_equal(cutout(image, alpha, crop=margin), whole[top:bottom, left:right])
        pasted = Image.new("RGBA", (40, 30))  # the cropped cut-out placed back where it was
        pasted.paste(Image.fromarray(cutout(image, alpha, crop=margin)), box)
        np.testing.assert_array_equal(np.asarray(pasted)[top:bottom, left:right], whole[top:bottom, left:right])
    huge = 2 ** 70  # no bounds overflow: a margin beyond the image takes all of it
    assert subject_box(alpha, huge) == (0, 0, 40, 30)
    np.testing.assert_array_equal(cutout(image, alpha, crop=huge), whole)
    with pytest.raises(ValueError, match="^alpha: the matte is transparent everywhere, so there is no subject to box$"):
        subject_box(np.zeros((30, 40)))
    with pytest.raises(ValueError, match="^margin: expected an integer of at least 0 pixels, got -1"):
        subject_box(alpha, -1)


def test_background_images_cover_the_image_without_stretching():
    """A background of another aspect ratio is scaled to cover the image and centred; what overflows is cropped."""
    image, clear = np.full((20, 20, 3), 9, np.uint8), np.zeros((20, 20))  # a square image, all background
    stripes = np.zeros((10, 30, 3), np.uint8)  # wide: red, green, blue thirds
    stripes[:, :10, 0], stripes[:, 10:20, 1], stripes[:, 20:, 2] = 255, 255, 255
    wide = cutout(image, clear, background=stripes, foreground=False)
    np.testing.assert_array_equal(wide[:, 2:-2], np.broadcast_to([0, 255, 0], (20, 16, 3)))  # the green third
    tall = cutout(image, clear, background=stripes.transpose(1, 0, 2), foreground=False)  # 30x10: red, green, blue
    np.testing.assert_array_equal(tall[2:-2], np.broadcast_to([0, 255, 0], (16, 20, 3)))
    np.testing.assert_array_equal(cutout(image, clear, background=np.full((5, 5, 3), 77, np.uint8), foreground=False),
                                  np.full((20, 20, 3), 77, np.uint8))  # the same shape: scaled as it is


def test_background_colours_are_converted_into_the_images_colour_space(tmp_path):
    """A background image whose ICC profile differs from the image's is converted into the image's colour
    space before compositing (untagged files and arrays count as sRGB)."""
    linear = gamma_profile(1.0, "linear sRGB")
    image = np.full((6, 8, 3), 200, np.uint8)
    tagged, untagged = tmp_path / "tagged.png", tmp_path / "untagged.png"
    Image.fromarray(image).save(tagged, icc_profile=linear)
    Image.fromarray(image).save(untagged)
    grey = Image.fromarray(np.full((6, 8, 3), 128, np.uint8))
    grey.save(tmp_path / "grey.png")
    grey.save(tmp_path / "grey_linear.png", icc_profile=linear)
    cyan = Image.new("CMYK", (8, 6), (255, 0, 0, 0))  # cmyk_profile's cyan is L* 66.7, linear light 0.362
    cyan.save(tmp_path / "cyan.tif", icc_profile=cmyk_profile())
    clear = np.zeros((6, 8))  # all background
    for picture, backdrop, want in [
        (untagged, tmp_path / "grey.png", 128),  # both sRGB: values as they are
        (tagged, tmp_path / "grey_linear.png", 128),  # the same profile
        (tagged, tmp_path / "grey.png", 55),  # sRGB 128 is linear light 0.216
        (tagged, grey, 55),  # a PIL image, untagged
        (image, tmp_path / "grey_linear.png", 188),  # an array is sRGB: linear 0.502 is sRGB 0.737
        (tagged, tmp_path / "cyan.tif", 92),  # CMYK through its profile, straight into the image's
        (untagged, tmp_path / "cyan.tif", 162),
    ]:
        composite = cutout(picture, clear, background=backdrop, foreground=False)
        assert np.abs(composite.astype(int) - want).max() <= 1, (picture, backdrop)
    assert icc_profile(tagged) == linear and icc_profile(untagged) is None and icc_profile(image) is None


@pytest.mark.parametrize("background", [None, "#00ff00", "same-size image"])
def test_cutouts_are_made_float_a_band_of_rows_at_a_time(background):
    """The image, matte and a same-size background stay in their stored types; only a band of rows is float64 at
    once, so the memory beyond the result does not grow with the height. (Whole in float64, the image alone
    would take 24 bytes a pixel.)"""
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (3000, 1000, 3), dtype=np.uint8)
    alpha = rng.integers(0, 65536, (3000, 1000), dtype=np.uint16)
    backdrop = rng.integers(0, 256, image.shape, dtype=np.uint8) if background == "same-size image" else background
    tracemalloc.start()
    try:
        result = cutout(image, alpha, background=backdrop, foreground=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.shape == (3000, 1000, 4 if background is None else 3)
    assert peak < result.nbytes + 200 * BAND_ROWS * 1000  # measured: 89 to 97 bytes a pixel of a band
