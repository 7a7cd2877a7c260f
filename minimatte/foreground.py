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
import collections
import itertools
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor

from . import backend as backends  # the module (`backend` is estimate_foreground's argument)
from .backend import array_module, resolve, to_device, to_numpy
from .config import is_integer, is_number
from .processing import (check_flag, check_integer, check_size, icc_profile, in_colour_space, is_file, open_image,
                         read_matte, resize_plane, row_bands, stored_image, stored_matte, to_unit)

_MAX_THREADS = 1024  # per block, CUDA's limit: wider steps give a thread several pixels
_RUN_PIXELS = 256  # the pixels a diagonal needs, on average in a step, for 4 slice copies to beat a gather
LARGEST_WEIGHT = 1e37  # regularization + gradient_weight: four times it, plus 1, is within float32's 3.4e38


def estimate_foreground(image, alpha, regularization=1e-5, gradient_weight=1.0, small_iterations=10,
                        big_iterations=2, small_size=32, value_range=None, backend=None, return_background=False):
    """Foreground colours F (float32 (H, W, 3) in [0, 1]) such that alpha * F + (1 - alpha) * B = image.

    image: RGB file (path or binary file object), PIL image or array (float arrays need value_range, as in
    `infer`); alpha: the matte, a float array in [0, 1] as `infer` returns or a 32-bit float file, or an
    8/16-bit file or array (of a cut-out, its alpha channel).
    regularization (eps) and gradient_weight (w), non-negative, not both 0 and their sum at most LARGEST_WEIGHT,
    weigh the smoothness of F and B; levels no larger than small_size in both sides get small_iterations sweeps,
    larger levels big_iterations. Defaults are pymatting's. backend: "numpy" or "cupy" (None: $MINIMATTE_BACKEND
    or numpy). return_background=True returns (F, B).
    """
    for name, value in (("regularization", regularization), ("gradient_weight", gradient_weight)):
        if not is_number(value) or value < 0:  # inf, NaN or True would give a foreground of NaN or a silent 1
            raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")
    if regularization == 0 and gradient_weight == 0:
        raise ValueError("regularization: must be positive when gradient_weight is 0 (the system is singular)")
    if regularization + gradient_weight > LARGEST_WEIGHT:
        raise ValueError(f"regularization + gradient_weight: expected at most {LARGEST_WEIGHT:g} (a pixel's four "
                         f"neighbour weights, each up to their sum, are added in float32), got "
                         f"{regularization + gradient_weight:g}")
    small_iterations, big_iterations, small_size = (check_integer(name, value, 0) for name, value in (
        ("small_iterations", small_iterations), ("big_iterations", big_iterations), ("small_size", small_size)))
    return_background = check_flag("return_background", return_background)
    xp = resolve(backend)
    with backends.small_pages(np):  # the sweeps and, on any backend, the host's pixel work (see small_pages)
        rgb, matte = _read_pair(image, alpha, value_range, stored=xp is np)  # a GPU gets the host's float32
        # The 1x1 start, on the host: a GPU sums in another order than the reference's pixel after pixel.
        start = np.concatenate([_mean_colour(rgb, matte > 0.9), _mean_colour(rgb, matte < 0.1)])  # [F, B]
        with backends.cpu_threads(xp):
            pictures = _multilevel(*to_device([rgb, matte, start], xp), np.float32(regularization),
                                   np.float32(gradient_weight), small_iterations, big_iterations, small_size,
                                   return_background)
    return pictures if return_background else pictures[0]


def cutout(image, alpha, background=None, foreground=True, value_range=None, backend=None, crop=None):
    """The cut-out in 8 bits: RGBA (H, W, 4) with the foreground colours and alpha as its alpha channel; or, given
    a background, the RGB (H, W, 3) composite alpha * F + (1 - alpha) * background.

    background: a colour (a name, #rrggbb or another form Pillow's ImageColor reads, or (r, g, b) integers 0..255:
    a tuple, list or 1-D array, also with an alpha of 255) or an image (path, PIL image or array; scaled
    bicubically to cover the image and centred, its aspect ratio kept (what overflows the image is cropped, as a
    photo fills a frame), its colours converted into the image's colour space where their ICC profiles differ);
    opaque, as the composite is. foreground=False uses the image's own colours instead of estimate_foreground's:
    faster, but soft edges keep a fringe of the old background.
    alpha as for estimate_foreground. The result is in the image's colour space: save it with icc_profile(image).
    crop: None for the whole image, or a margin in pixels: the result cut to the box of the pixels whose 8-bit
    alpha is not 0, widened by the margin on each side within the image (as cut-out services trim theirs).
    """
    foreground = check_flag("foreground", foreground)
    if crop is not None:
        crop = check_integer("crop", crop, 0, " pixels")
    with backends.small_pages(np):  # the pixel work without huge pages, as infer's (see backend.small_pages)
        # Files are decoded once: the image serves the colours and the background's colour space, the matte both
        # the estimation and the cut-out (and standard input can be read only once).
        image, alpha = (open_image(x, name) if is_file(x) else x for x, name in ((image, "image"), (alpha, "alpha")))
        # Each picture as (values, their value_range): its stored values where it has them, made float a band of
        # rows at a time below (to_unit), so that no picture is float64 whole (24 bytes a pixel, 288 MB at 12 MP).
        if foreground:  # the image is read once, by estimate_foreground
            colours, colour_range = to_numpy(estimate_foreground(image, alpha, value_range=value_range,
                                                                 backend=backend)), 1.0
        else:
            colours, colour_range = stored_image(image, value_range, "image"), value_range
        matte, matte_range = stored_matte(alpha)
        check_size("alpha", matte.shape, "image", colours.shape)
        backdrop, backdrop_range = (None, None) if background is None else stored_background(
            background, matte.shape, image, value_range)
        if crop is not None:  # only the box is composited
            box = _visible_box(matte, matte_range, crop)
            if box is None:
                raise ValueError("crop: the matte is transparent everywhere, so there is nothing to crop to")
            matte, colours, backdrop = matte[box], colours[box], None if backdrop is None else backdrop[box]
        result = np.empty(matte.shape + (4 if backdrop is None else 3,), np.uint8)
        for rows in row_bands(len(result)):
            a, rgb = to_unit(matte[rows], matte_range)[..., None], to_unit(colours[rows], colour_range)
            if backdrop is None:
                values = np.concatenate([rgb, a], axis=2)
            else:  # (1 - a) * background + a * rgb, with one temporary
                values = to_unit(backdrop[rows], backdrop_range)
                values *= 1 - a
                values += a * rgb
            np.clip(values, 0, 1, out=values)
            values *= 255
            result[rows] = np.rint(values, out=values)
        return result


def subject_box(alpha, margin=0):
    """The box that cutout(..., crop=margin) cuts to: (left, top, right, bottom) in pixels, right and bottom
    excluded, in PIL's order (Image.crop(box), array[top:bottom, left:right]). Where the cropped cut-out lies in
    the image, to place it back there, as cut-out services report it with theirs. alpha as for cutout."""
    margin = check_integer("margin", margin, 0, " pixels")
    box = _visible_box(*stored_matte(alpha), margin)
    if box is None:
        raise ValueError("alpha: the matte is transparent everywhere, so there is no subject to box")
    rows, columns = box
    return tuple(int(edge) for edge in (columns.start, rows.start, columns.stop, rows.stop))


def _visible_box(alpha, value_range, margin):
    """(rows, columns) slices of the box around the pixels whose alpha (stored values in value_range) is not 0
    in 8 bits, widened by `margin` pixels on each side within the image; None where there are none."""
    visible = np.empty(alpha.shape, bool)
    for rows in row_bands(len(alpha)):
        visible[rows] = np.rint(np.clip(to_unit(alpha[rows], value_range), 0, 1) * 255) > 0
    rows, columns = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if rows.size == 0:
        return None
    # Python ints, not NumPy's: no margin overflows
    return tuple(slice(max(0, int(found[0]) - margin), min(size, int(found[-1]) + 1 + margin))
                 for found, size in zip((rows, columns), alpha.shape))


def _read_pair(image, alpha, value_range, stored):
    """image ((H, W, 3) in [0, 1]) and alpha ((H, W), see read_matte), as float32. With `stored`, an 8- or 16-bit
    image as its stored values (uint8 or uint16), a quarter or half the memory (144 MB at 12 megapixels as
    float32): where they are used, a chunk at a time, they are made float32 as read_image makes them (_unit)."""
    rgb = stored_image(image, value_range, "image")
    if not (stored and rgb.dtype.kind == "u"):
        rgb = to_unit(rgb, value_range, np.float32)
    matte = read_matte(alpha, dtype=np.float32)
    check_size("alpha", matte.shape, "image", rgb.shape)
    return rgb, matte


def stored_background(background, size, image=None, value_range=None):
    """A background colour or image at `size` = (H, W) as (values, their value_range): to_unit(values[rows],
    value_range) is a band of its rows as float64 in [0, 1]. An image of that size gives its stored values,
    one of another size its float32 resize; an image's colours are in the colour space of `image` (its ICC
    profile; untagged images, arrays and None: sRGB). A background with transparency is refused: a composite
    is opaque, and would show the colours hidden under it."""
    colour = background_colour(background)
    if colour is not None:
        return np.broadcast_to(np.float64(colour) / 255, size + (3,)), 1.0
    stored = stored_image(in_colour_space(open_background(background), icc_profile(image), "background"),
                          value_range, "background", opaque=True)
    if stored.shape[:2] == size:
        return stored, value_range
    box = _cover(stored.shape[:2], size)
    resized = np.empty(size + (3,), np.float32)  # PIL resizes float planes in float32
    for c in range(3):
        resized[..., c] = resize_plane(to_unit(stored[..., c], value_range, np.float32), size, Image.BICUBIC, box)
    return resized, 1.0


def open_background(background):
    """A background as stored_background takes it, with an image file decoded (so that a batch decodes it once):
    colours, PIL images and arrays as they are."""
    if background_colour(background) is not None or not is_file(background):
        return background
    try:
        return open_image(background, "background")
    except FileNotFoundError:
        path = Path(os.fspath(background))
        meant_as_colour = isinstance(background, str) and re.fullmatch(r"\s*[a-z]+\(.*\)\s*", background, re.I)
        if (path.suffix or len(path.parts) > 1) and not meant_as_colour:  # "new_bg.jpg": as any missing input
            raise
        raise ValueError(f"background: {background!r} is neither a colour nor an image file (colours: a name such "
                         f"as green, #00ff00 or rgb(0, 255, 0){_rgba_hint(background)})") from None


def background_colour(background):
    """The colour a background names (r, g, b or r, g, b, alpha integers 0..255 as a tuple, list or 1-D array; a
    name, #rrggbb or another colour that Pillow's ImageColor reads) as (r, g, b), or None where it names none (an
    image, then). A colour with an alpha other than 255 is refused: the composite is opaque."""
    if isinstance(background, (tuple, list)) or getattr(background, "ndim", None) == 1:
        values = tuple(background)
        if len(values) not in (3, 4) or not all(is_integer(v) and 0 <= v <= 255 for v in values):
            shown = repr(background)  # but not the pixels of a list of images
            if len(shown) > 60:
                kind = "an array" if hasattr(background, "ndim") else f"a {type(background).__name__}"
                shown = f"{kind} of length {len(values)}"
            raise ValueError(f"background: a colour needs 3 integers 0..255 (r, g, b), or 4 (r, g, b, alpha), got "
                             f"{shown}")
        colour = tuple(map(int, values))
    elif isinstance(background, str):
        try:
            colour = ImageColor.getrgb(background.strip())
        except ValueError:
            return None
        if not all(0 <= v <= 255 for v in colour):  # ImageColor reads rgb(300, 0, 0) and hsl(0, 100%, 150%) too
            raise ValueError(f"background: {background!r} is not a colour: Pillow reads it as {colour}, beyond "
                             "0..255")
    else:
        return None
    if colour[3:] not in ((), (255,)):
        raise ValueError(f"background: {background!r} is partly transparent; a composite is opaque: give an opaque "
                         f"colour, or no background for an RGBA cut-out{_rgba_hint(background)}")
    return colour[:3]


def _rgba_hint(background):
    """For an error about an rgba(...) colour, written as CSS writes one: how Pillow reads its alpha."""
    if isinstance(background, str) and background.strip().lower().startswith("rgba("):
        return "; rgba's alpha is an integer 0..255 (255 opaque), not CSS's 0..1"
    return ""


def _cover(source, target):
    """The centred part of a `source` (h, w) picture with the aspect ratio of `target` (H, W), as PIL's resize box
    (left, upper, right, lower): scaled to the target size it covers it, cropped, not stretched."""
    (h, w), (height, width) = source, target
    kept_w, kept_h = min(w, h * width / height), min(h, w * height / width)
    return (w - kept_w) / 2, (h - kept_h) / 2, (w + kept_w) / 2, (h + kept_h) / 2


def _multilevel(image, alpha, start, regularization, gradient_weight, small_iterations, big_iterations,
                small_size, return_background):
    """(F, B), each (H, W, 3) float32 (only (F,) unless return_background), from a float32 image (H, W, 3), alpha
    (H, W) and the 1x1 level's [F, B] (6,), all on one backend."""
    xp = array_module(image)
    h0, w0 = alpha.shape
    # [F, B] channel by channel, (6, pixels), in each level's diagonal order: position[raster index]
    fb, position, shape = start.reshape(6, 1), xp.zeros(1, xp.int32), (1, 1)
    n_levels = math.ceil(math.log2(max(h0, w0)))
    for level in range(n_levels + 1):
        h, w = (round(s ** (level / n_levels)) for s in (h0, w0)) if n_levels else (h0, w0)
        level_image, level_alpha = image, alpha
        if (h, w) != (h0, w0):
            rows, cols = _nearest(h0, h, xp), _nearest(w0, w, xp)
            level_image, level_alpha = image[rows[:, None], cols], alpha[rows[:, None], cols]  # (h, w, 3), (h, w)
        order, level_position = _diagonal_layout(h, w, xp)
        fb = _take_columns(fb, _nearest_positions(order, (h, w), position, shape))  # the level before's [F, B]
        position, shape = level_position, (h, w)
        sweeps = small_iterations if h <= small_size and w <= small_size else big_iterations
        _gauss_seidel(fb, level_image, level_alpha, order, regularization, gradient_weight, sweeps)
    del order  # not held with the results below
    return _raster_pictures(fb[:6 if return_background else 3], position, (h0, w0))


def _raster_pictures(channels, position, shape):
    """[F] or [F, B] (3 or 6, hw) in a level's diagonal order (position[raster index]) -> (F,) or (F, B), each
    (H, W, 3) in raster order, chunk by chunk on cpu_threads' threads: no whole copy in between (at 12
    megapixels [F, B] takes 288 MB)."""
    xp = array_module(channels)
    pictures = [xp.empty((shape[0] * shape[1], 3), channels.dtype) for _ in range(len(channels) // 3)]

    def chunk(part):
        taken = xp.take(channels, position[part], axis=1)  # (3 or 6, n): the chunk's pixels in raster order
        for picture, values in zip(pictures, (taken[:3], taken[3:])):
            picture[part] = values.T  # (3, n) -> (n, 3)
    backends.run_slices(chunk, position.shape[0], xp, width=len(channels))
    return tuple(picture.reshape(*shape, 3) for picture in pictures)


_SUMMED_PIXELS = 1 << 16  # pixels _mean_colour sums at a time


def _unit(pixels):
    """Pixels as float32 in [0, 1], from stored 8- or 16-bit values (see _read_pair) as read_image makes them."""
    return to_unit(pixels, None, np.float32) if pixels.dtype.kind == "u" else pixels


def _mean_colour(image, mask):
    """Mean image colour under mask (float32 (3,)), summed pixel after pixel in float32 like the reference.

    NumPy's cumsum is sequential. It runs a chunk of pixels at a time, each channel along contiguous memory, into
    one small buffer: the sum so far added into the chunk's first value continues the sequence exactly. Summed
    whole, the picked pixels and their running sums took 2 x 67 MB of fresh pages at 12 megapixels, and 1.8x as
    long."""
    pixels, picked = image.reshape(-1, 3), mask.reshape(-1)
    total = np.zeros(3, np.float32)
    sums = np.empty((3, _SUMMED_PIXELS), np.float32)
    for start in range(0, len(pixels), _SUMMED_PIXELS):
        chunk = np.compress(picked[start:start + _SUMMED_PIXELS], pixels[start:start + _SUMMED_PIXELS], axis=0)
        if len(chunk):
            running = sums[:, :len(chunk)]
            running[...] = _unit(chunk).T  # (n, 3) -> (3, n)
            running[:, 0] += total
            total = np.cumsum(running, axis=1, out=running)[:, -1].copy()
    return (total.astype(np.float64) / (int(picked.sum()) + 1e-5)).astype(np.float32)


def _nearest(source, target, xp):
    """Source indices of nearest-neighbour resampling from `source` to `target` samples (pymatting's rule)."""
    return xp.minimum(xp.arange(target) * source // target, source - 1)


def _nearest_positions(order, shape, previous_position, previous_shape):
    """For each position of a level (order: its raster index), the position in the level before of the pixel
    it starts from by nearest-neighbour upsampling: the upsampling and the change between the two levels'
    diagonal orders in one index, so that no upsampled copy is made. Chunk by chunk, on cpu_threads' threads."""
    xp = array_module(order)
    (h, w), (previous_h, previous_w) = shape, previous_shape
    rows, cols = _nearest(previous_h, h, xp), _nearest(previous_w, w, xp)
    source = xp.empty_like(order)

    def chunk(part):
        y, x = xp.divmod(order[part], w)
        backends.take(previous_position, xp.take(rows, y) * previous_w + xp.take(cols, x), out=source[part])
    backends.run_slices(chunk, order.shape[0], xp)
    return source


def _gauss_seidel(fb, image, alpha, order, regularization, gradient_weight, sweeps):
    """`sweeps` raster-order Gauss-Seidel sweeps over all pixels of one level, in place on fb (6, hw) = [F, B]
    stored in the level's diagonal order (_diagonal_layout's order).

    Every per-pixel array is stored channel by channel, (channels, pixels): each step's operations then run
    along its contiguous pixels (and on the GPU, neighbouring threads read neighbouring addresses)."""
    xp = array_module(image)
    h, w = alpha.shape
    a0_stored = _take_columns(alpha.reshape(1, -1), order)[0]  # alpha in the diagonal order
    neighbours_of = _neighbour_positions(h, w, xp)

    def systems(positions, arrays):  # the pixels' neighbours, then _pixel_systems, into arrays (_system_arrays)
        neighbours, *pixel_systems = (array[..., :positions.stop - positions.start] for array in arrays)
        neighbours_of(positions, neighbours)
        _pixel_systems(a0_stored, image.reshape(-1, 3), order, neighbours, positions, regularization,
                       gradient_weight, pixel_systems)
        return (neighbours, *pixel_systems)

    steps = _steps(h, w, sweeps)
    widest = max((stop - start for start, stop, _ in steps), default=0)
    kernel = backends.cuda_kernel(xp, "foreground.cu", "gauss_seidel", xp.float32)
    if kernel is not None:  # all steps in one launch of one block, a thread per pixel of the widest step
        neighbours, weights, own, cross, data = systems(slice(0, h * w), _system_arrays(h * w, xp))
        threads = min(_MAX_THREADS, max(1, -(-widest // 32)) * 32)  # in whole warps
        bounds = xp.asarray([(start, stop) for start, stop, _ in steps], dtype=xp.int32).reshape(-1)
        kernel((1,), (threads,), (fb, data, weights, neighbours, own, cross, bounds, np.int32(len(steps)),
                                  np.int32(h * w)))
        return
    gather = _neighbour_gather(fb, h, w)
    odd_start = _diagonals(h, w)[1][1] if h + w > 2 else h * w  # the first odd diagonal's first position
    terms = xp.empty((6, 5, widest), xp.float32)  # per channel: the data term, then the 4 weighted neighbours
    # One thread computes the systems while this one sweeps. On leaving (an exception: a failed allocation,
    # Ctrl-C), the blocks it has begun are finished before the arrays they write are let go.
    with ThreadPoolExecutor(1, "minimatte-systems") as ahead:
        held = _held_systems(systems, steps, odd_start, h * w, xp, ahead)
        for start, stop, diagonals in steps:
            n = stop - start
            neighbours, weights, own, cross, data = held(start, stop)
            step_terms = terms[:, :, :n]
            step_terms[:, 0] = data
            gather(step_terms[:, 1:], start, stop, diagonals, neighbours)
            step_terms[:, 1:] *= weights
            rhs = step_terms.sum(axis=1).reshape(2, 3, n)  # [F, B] sums, term after term as in the reference
            solved = own[:, None] * rhs
            solved += cross * rhs[::-1]
            fb[:, start:stop] = solved.clip(0, 1, out=solved).reshape(6, n)


_HELD_POSITIONS = 1 << 17  # positions whose systems the NumPy sweeps compute at once: 10 MB (80 bytes each)
_BLOCKS_AHEAD = 2  # blocks of systems computed ahead of the sweeps (see _held_systems)
_FIRST_HELD_POSITIONS = 1 << 11  # a parity's first block of a level, which the sweeps wait for (_held_systems)


def _held_systems(systems, steps, odd_start, count, xp, ahead):
    """held(start, stop): the neighbours and systems (`systems`) of the positions [start, stop) of each step of
    `steps` in turn, computed a block of _HELD_POSITIONS at a time, instead of a level's all at once (80 bytes a
    pixel: 1 GB at 12 megapixels), on the thread of the executor `ahead` while the sweeps run.

    A step's positions lie among the even diagonals (stored first, up to odd_start) or the odd ones, and each
    parity's steps move forward through its positions (_steps), so one block is held per parity, and a step
    beyond it starts the next block at its own start: which blocks the steps need, and when, is known before
    they run. The two parities move through their positions side by side and need their next blocks at about
    the same step, so two blocks are computed ahead (with one, the sweeps waited on the second parity's, 0.3 s
    of 2.4 at 12 megapixels). The sweeps wait for each parity's first block of a level, so the first blocks
    are small, _FIRST_HELD_POSITIONS, and each next one twice as large up to _HELD_POSITIONS (the sweeps waited
    0.034-0.039 s of 0.25 s on the 640x960 bulb with blocks of 2^17 from the first, 0.008-0.020 s so). The blocks
    are computed into four sets of arrays in turn: fresh ones for each block would be new pages for the kernel
    to fault in and zero, block after block."""
    blocks, ends, sizes = [], {}, {}  # blocks in the order the steps need them; per parity: the last one's end, size
    for start, stop, _ in steps:
        parity = int(start >= odd_start)
        if stop > ends.get(parity, -1):
            sizes[parity] = min(_HELD_POSITIONS, 2 * sizes[parity] if parity in sizes else _FIRST_HELD_POSITIONS)
            ends[parity] = min(odd_start if parity == 0 else count, max(stop, start + sizes[parity]))
            blocks.append(slice(start, ends[parity]))
    capacity = max((block.stop - block.start for block in blocks), default=0)
    spare = [_system_arrays(capacity, xp) for _ in range(min(len(blocks), 2 + _BLOCKS_AHEAD))]
    upcoming, coming, holding = iter(blocks), collections.deque(), {}  # holding: parity: (block, arrays, systems)

    def compute_ahead():
        for block in itertools.islice(upcoming, _BLOCKS_AHEAD - len(coming)):
            arrays = spare.pop()
            coming.append((block, arrays, ahead.submit(systems, block, arrays)))

    def held(start, stop):
        parity = int(start >= odd_start)
        block, arrays, block_systems = holding.get(parity, (None, None, None))
        if block is None or stop > block.stop:  # the next block, the first of those coming
            if arrays is not None:
                spare.append(arrays)
            block, arrays, computing = coming.popleft()
            block_systems = computing.result()
            holding[parity] = block, arrays, block_systems
            compute_ahead()
        return [array[..., start - block.start:stop - block.start] for array in block_systems]

    compute_ahead()
    return held


def _system_arrays(count, xp):
    """Arrays for `count` positions' neighbours and systems (see _pixel_systems): neighbours (4, n) int32,
    weights (4, n) float32, own (2, n) and cross (n,) float64, data (6, n) float32."""
    return (xp.empty((4, count), xp.int32), xp.empty((4, count), xp.float32), xp.empty((2, count), xp.float64),
            xp.empty(count, xp.float64), xp.empty((6, count), xp.float32))


def _neighbour_gather(fb, h, w):
    """gather(out, start, stop, diagonals, neighbours): out (6, 4, stop - start) = fb (6, hw) at the 4 neighbours
    of the positions [start, stop), which hold `diagonals` (a range); neighbours: their positions (4, stop - start).

    Inside the border, a diagonal's left and up neighbours are the pixels of the diagonal before, and its right
    and down ones those of the diagonal after, in the same order: runs of positions (_diagonal_layout). So a
    long diagonal's neighbours are 4 slice copies, and then the border's, the pixels themselves, are put
    in. Short diagonals take one gather of all: NumPy's take costs about 2 ns an element, a copy 1-2 us a call.
    """
    xp = array_module(fb)
    sizes, first, base = _diagonals(h, w)
    source = _neighbour_bases(base) + (first - base)  # (4, diagonals): where each diagonal's runs start
    # A run's end pixels may be border pixels, whose positions in it can leave the array: those are clipped off
    # (the border is put in after the runs).
    skip = np.maximum(0, -source)
    length = np.maximum(0, np.minimum(sizes, h * w - source) - skip)
    runs = np.stack([first + skip, source + skip, length], axis=-1).transpose(1, 0, 2).tolist()  # [d][k]
    border = _border(h, w, base, np)
    border_positions, border_neighbours = np.concatenate(border), np.repeat(np.arange(4), [e.size for e in border])
    by_position = np.argsort(border_positions, kind="stable")
    border_positions, border_neighbours = (xp.asarray(a[by_position]) for a in (border_positions, border_neighbours))

    def gather(out, start, stop, diagonals, neighbours):
        if stop - start < _RUN_PIXELS * len(diagonals):
            xp.take(fb, neighbours, axis=1, out=out)
            return
        for d in diagonals:
            for k, (column, position, count) in enumerate(runs[d]):
                out[:, k, column - start:column - start + count] = fb[:, position:position + count]
        i, j = (int(xp.searchsorted(border_positions, bound)) for bound in (start, stop))
        positions = border_positions[i:j]
        out[:, border_neighbours[i:j], positions - start] = fb[:, positions]
    return gather


def _take_columns(table, index):
    """table[:, index], (C, N) -> (C, len(index)): chunk by chunk, on cpu_threads' threads. Permuting a level's
    pixels between raster and diagonal order reads memory all over, and the cores wait on it side by side."""
    xp = array_module(table)
    table = xp.ascontiguousarray(table)  # else every chunk's take would copy it
    out = xp.empty((table.shape[0], index.shape[0]), table.dtype)

    def chunk(part):  # row by row: a chunk of a row is contiguous, so taken straight into `out` (backend.take)
        for row, into in zip(table, out):
            backends.take(row, index[part], out=into[part])
    backends.run_slices(chunk, index.shape[0], xp)
    return out


def _steps(h, w, sweeps):
    """What _gauss_seidel updates, step after step: (start, stop, diagonals), the position range [start, stop)
    holding the anti-diagonals `diagonals` (a range).

    Sweep s updates anti-diagonal d at step d + 2s. By then the diagonal before d has sweep s's values and
    the one after still has sweep s - 1's, exactly what the raster order gives them, and one step's
    diagonals (every other one) are not each other's neighbours. So the sweeps run as one pipeline of
    h + w + 2 sweeps - 3 steps instead of sweeps x (h + w - 1), and with the even diagonals stored before the
    odd ones (_diagonal_layout) each step's diagonals are one slice.
    """
    sizes, first, _ = _diagonals(h, w)
    n = len(sizes)
    steps = []
    for t in range(n + 2 * sweeps - 2 if sweeps else 0):
        newest = min(t, n - 1 - (n - 1 - t) % 2)  # the last diagonal of t's parity that this step reaches
        oldest = max(t - 2 * (sweeps - 1), t % 2)
        if oldest <= newest:
            steps.append((int(first[oldest]), int(first[newest] + sizes[newest]), range(oldest, newest + 1, 2)))
    return steps


def _diagonals(h, w):
    """The h + w - 1 anti-diagonals (y + x = d) of an h x w grid as stored, each from its top row down: each
    one's number of pixels, its first position (the even diagonals stored before the odd ones), and its base:
    pixel (y, d - y) is at base[d] + y (the first position less the top row)."""
    n = h + w - 1
    diagonal = np.arange(n)
    sizes = np.minimum(np.minimum(diagonal + 1, n - diagonal), min(h, w))
    stored = np.argsort(diagonal % 2, kind="stable")  # diagonals in storage order: even, then odd
    first = np.empty(n, np.int64)
    first[stored] = np.cumsum(sizes[stored]) - sizes[stored]
    return sizes, first, first - np.maximum(diagonal - (w - 1), 0)


def _neighbour_bases(base):
    """Where pixel (y, d - y)'s neighbours are, from _diagonals' bases: neighbour k at bases[k, d] + y, (4, diagonals),
    in pymatting's order (left, right, up, down), in which sums are accumulated as there. Left (y, x - 1) and up
    (y - 1, x) are on diagonal d - 1, right and down on d + 1. At the border, where a neighbour is clamped to the
    pixel itself, the sum is wrong (base is padded there only to stay in bounds): _border's pixels are set apart."""
    padded = np.concatenate([[0], base, [0]])
    before, after = padded[:-2], padded[2:]  # base[d - 1], base[d + 1]
    return np.stack([before, after, before - 1, after + 1])


def _border(h, w, base, xp):
    """The positions whose left, right, up and down neighbour is clamped to the pixel itself: at x = 0,
    x = w - 1, y = 0 and y = h - 1 (base: _diagonals')."""
    rows, cols = xp.arange(h, dtype=xp.int32), xp.arange(w, dtype=xp.int32)
    return [xp.take(base, y + x) + y for y, x in ((rows, 0), (rows, w - 1), (0, cols), (h - 1, cols))]


def _runs(first):
    """The anti-diagonals in storage order, from their first positions (_diagonals), as _per_position takes them:
    their first positions and the diagonals."""
    stored = np.argsort(first)
    return first[stored], stored


def _per_position(positions, runs, per_diagonal, xp):
    """The values of each position's anti-diagonal, for the positions of the slice `positions`: per_diagonal
    (k, diagonals) host array of integers -> (k, n) int32 on the backend, a diagonal's values repeated over its run of
    positions (backend.repeat; runs: _runs'). A lookup of each position's diagonal took 20x as long."""
    starts, stored = runs
    lo, hi = starts.searchsorted(positions.start, "right") - 1, starts.searchsorted(positions.stop, "left")
    counts = np.diff(np.clip(np.append(starts[lo:hi], positions.stop), positions.start, positions.stop))
    values = xp.asarray(per_diagonal[:, stored[lo:hi]], dtype=xp.int32)  # (k, runs)
    return backends.repeat(values, counts, axis=1)


def _diagonal_layout(h, w, xp):
    """Pixels stored anti-diagonal after anti-diagonal (_diagonals): order (the raster index at each position)
    and position (its inverse). Pixel (y, x) is at base[y + x] + y. Chunk by chunk, on cpu_threads' threads."""
    _, first, base = _diagonals(h, w)
    runs, base_and_diagonal = _runs(first), np.stack([base, np.arange(len(base))])
    base_at = xp.asarray(base, dtype=xp.int32)
    count = h * w
    order, position = xp.empty(count, xp.int32), xp.empty(count, xp.int32)

    def place(raster):  # a slice of raster indices
        y, x = xp.divmod(xp.arange(raster.start, raster.stop, dtype=xp.int32), w)
        xp.add(xp.take(base_at, y + x), y, out=position[raster])

    def link(stored):  # a slice of positions
        diagonal_base, diagonal = _per_position(stored, runs, base_and_diagonal, xp)
        y = xp.arange(stored.start, stored.stop, dtype=xp.int32) - diagonal_base
        order[stored] = y * (w - 1) + diagonal  # y w + x, x = diagonal - y

    backends.run_slices(place, count, xp)
    backends.run_slices(link, count, xp)
    return order, position


def _neighbour_positions(h, w, xp):
    """neighbours_of(positions, neighbours): the positions of the 4 neighbours (pymatting's order: left, right, up,
    down) of the pixels at `positions` (a slice of the level's), into `neighbours` (4, n) int32, clamped at the
    border as in the reference: a border pixel is its own neighbour. A neighbour's position is the pixel's own
    plus a shift of its diagonal's (_neighbour_bases), and only the border's are set apart. Each slice chunk by
    chunk, on cpu_threads' threads."""
    _, first, base = _diagonals(h, w)
    runs, shifts = _runs(first), _neighbour_bases(base) - base  # shifts: (4, diagonals)
    borders = _border(h, w, xp.asarray(base, dtype=xp.int32), xp)

    def neighbours_of(positions, neighbours):
        offset, count = positions.start, positions.stop - positions.start

        def link(part):
            at = slice(offset + part.start, offset + part.stop)
            xp.add(xp.arange(at.start, at.stop, dtype=xp.int32), _per_position(at, runs, shifts, xp),
                   out=neighbours[:, part])

        backends.run_slices(link, count, xp)
        for k, edge in enumerate(borders):
            edge = edge[(edge >= positions.start) & (edge < positions.stop)]
            neighbours[k, edge - offset] = edge
    return neighbours_of


def _pixel_systems(a0_stored, pixels, order, neighbours, positions, regularization, gradient_weight, out):
    """Per pixel at the positions `positions` (a slice) of a level, whose neighbours are at `neighbours` (4, n),
    into out = (weights, own, cross, data): the weights of its 4 neighbours, eps + w |a - a_j| (4, n) float32;
    its 2x2 system [[a0^2 + s, a0 a1], [a0 a1, a1^2 + s]] (a1 = 1 - a0, s the weights' sum), inverted, as `own`
    (2, n) and `cross` (n,) float64; and its data term [a0 I, a1 I] (6, n) float32. a0_stored (hw,) is alpha
    at each position; pixels (hw, 3) are in raster order.

    [F, B] = inverse @ [rhs_F, rhs_B] per channel is computed as own * rhs + cross * (rhs with F and B
    swapped). The reference mixes precisions (1.0 - a0 is a float64 there); mixing them the same way
    reproduces it. Chunk by chunk, on cpu_threads' threads: a level's pixels are millions at full size.
    """
    xp = array_module(a0_stored)
    offset, count = positions.start, positions.stop - positions.start
    weights, own, cross, data = out

    def chunk(part):
        at = slice(offset + part.start, offset + part.stop)
        a0, weight = a0_stored[at], weights[:, part]
        xp.subtract(a0, xp.take(a0_stored, neighbours[:, part]), out=weight)
        xp.abs(weight, out=weight)
        weight *= gradient_weight
        weight += regularization
        a1 = 1.0 - a0.astype(xp.float64)
        a00, a11 = a0 * a0, a1 * a1
        for neighbour_weight in weight:
            a00 += neighbour_weight
            a11 += neighbour_weight
        a01 = a0 * a1
        inverse_det = 1.0 / (a00 * a11 - a01 * a01)
        own[0, part], own[1, part] = inverse_det * a11, inverse_det * a00
        cross[part] = inverse_det * -a01
        # (n, 3) -> (3, n); take is 2x as fast as indexing, and the products run 2x as fast on a contiguous copy
        colours = xp.ascontiguousarray(_unit(xp.take(pixels, order[at], axis=0)).T)
        data[:3, part] = a0 * colours
        data[3:, part] = a1 * colours  # computed in float64, stored rounded to float32
    backends.run_slices(chunk, count, xp)
