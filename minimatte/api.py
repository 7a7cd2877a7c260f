"""The two calls most users need: `load` a checkpoint and `infer` an alpha matte."""
import os

import numpy as np
from PIL import Image

from .backend import small_pages, to_numpy
from .config import ORIGINAL_PROCESSOR
from .convert import read_any
from .model import VitMatte
from .processing import (check_flag, check_integer, check_not_swapped, check_size, crop, enlarge_alpha,
                         force_known_regions, is_file, normalised_batch, open_image, paired, read_image, read_trimap,
                         reduced_trimap, resize_plane)

DEFAULT_MODEL = "small-composition-1k"


PREPROCESSING = ("hf", "original")


def load(source=DEFAULT_MODEL, backend=None, precision=None, preprocessing="hf", progress=True):
    """A VitMatte from a published checkpoint's name, another hub repo's id (owner/name; see hub.py), an HF
    checkpoint directory, a safetensors file, or a PyTorch `pytorch_model.bin` / original hustvl `.pth` (read
    without torch, see convert.py).

    backend: "numpy" (default) or "cupy"; None reads $MINIMATTE_BACKEND.
    precision: "float32" (default, the reference's numbers) or "float16" (GPU: half the memory traffic,
               statistics and softmax still in float32; see VitMatte).
    preprocessing: "hf" (default): the checkpoint's processor settings, as transformers' VitMatteImageProcessor
                   (RGB mean = std = 0.5 for the hub checkpoints); "original": hustvl's own inference code, with
                   the ImageNet mean and std that the checkpoints were trained with, and its padding
                   (config.ORIGINAL_PROCESSOR).
    progress: False downloads a published checkpoint missing from the caches without a word on stderr.
    """
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing: expected one of {', '.join(PREPROCESSING)}, got {preprocessing!r}")
    progress = check_flag("progress", progress)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"model: expected a checkpoint name, a path or a loaded VitMatte, got {type(source).__name__}")
    from .hub import checkpoint_path  # urllib and the rest only where a name may need a download
    state, config, processor = read_any(checkpoint_path(source, progress))
    processor = ORIGINAL_PROCESSOR if preprocessing == "original" else processor
    return VitMatte.from_state_dict(state, config, processor, backend, precision)


def infer(image, trimap, model=None, value_range=None, backend=None, max_size=None, precision=None,
          progress=None, force_known=False):
    """Alpha matte(s) of `image` given `trimap`: float32 (H, W) arrays in [0, 1] at the input size.

    image, trimap: file paths (or binary file objects), PIL images or arrays (uint8/uint16; floats need
                   value_range=1.0 or 255.0; colours in RGB order, not OpenCV's BGR), or equal-length lists of
                   them (or tuples, or generators; returns a list; an error names the item: "trimap[3]: ...").
    model: a loaded VitMatte, a path, checkpoint name or hub repo id (default: small-composition-1k), loaded with
           `backend` and `precision` (see load) on each call: for many images, load it once with `load`.
    max_size: for images too large for memory or time, run the network with the longer side capped at this
              many pixels (the trimap reduced so that thin unknown bands stay whole: reduced_trimap) and enlarge
              the alpha to the image's size (bicubic: enlarge_alpha); fine structure smaller than the reduced
              pixel size (single hairs) is lost.
    progress: a callable progress(fraction, stage), called as the network finishes each stage ("block 5/12",
              "fusion 2/4", ...) with the fraction of the work done over all images (by FLOPs; 1.0 at the end).
              An exception raised in it stops the pass and comes out of infer (a cancelled request).
    force_known: alpha exactly 0 where the trimap is 0 and 1 where it is 255 (force_known_regions); by default
                 the network's own values there, as the reference returns them.
    """
    if not isinstance(model, VitMatte):
        model = load(model or DEFAULT_MODEL, backend, precision)
    _check_loaded_as(model, backend=backend, precision=precision)
    if max_size is not None:
        max_size = check_integer("max_size", max_size, 32, " pixels")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable progress(fraction, stage), got {type(progress).__name__}")
    force_known = check_flag("force_known", force_known)
    single, images, trimaps = paired(image, trimap)
    alphas = []
    with small_pages(np):  # the pixel work around the passes too, on the host whatever the backend (see there)
        for number, (img, tri) in enumerate(zip(images, trimaps)):
            suffix = "" if single else f"[{number}]"  # errors name the lists' item, as preprocess's: image[3]
            if force_known and is_file(tri):
                tri = open_image(tri, "trimap" + suffix)  # decoded once, for the network and the forcing
            batch, size = _network_input(model, img, tri, value_range, max_size, suffix)
            report = _image_progress(progress, number, len(images))
            alpha, = crop(to_numpy(model(batch.pixel_values, progress=report).alphas), batch.sizes)
            del batch  # not kept while the next image is read
            if alpha.shape != size:  # computed at max_size
                alpha = enlarge_alpha(alpha, size)
            alphas.append(force_known_regions(alpha, tri, value_range) if force_known else alpha)
    return alphas[0] if single else alphas


def _check_loaded_as(model, **asked):
    """A loaded model runs as it was loaded: a backend or precision asked of `infer` that differs is an error,
    not ignored."""
    for argument, value in asked.items():
        if value is not None and value != getattr(model, argument):
            raise ValueError(f"{argument}: the model was loaded with {argument}={getattr(model, argument)!r}, "
                             f"got {value!r}; pass it to minimatte.load instead")


def _check_unpadded(size, model, name):
    """An image that a processor without padding (do_pad False) leaves in sides the patches do not divide: one
    error naming the image, not the network's about its pixel values (the reference fails on it too)."""
    patch = model.config.patch_size
    if not model.processor.do_pad and (size[0] % patch or size[1] % patch):
        raise ValueError(f"{name}: {size[0]}x{size[1]} is not a multiple of the model's {patch}-pixel patches, and "
                         "its processor settings do not pad (do_pad false); crop or pad the image to one")


def _image_progress(progress, number, count):
    """The progress callback for image `number` of `count`: its fractions scaled into the whole run's."""
    if progress is None or count == 1:
        return progress
    return lambda fraction, stage: progress((number + fraction) / count, f"image {number + 1}/{count}, {stage}")


def _network_input(model, image, trimap, value_range, max_size, suffix):
    """The network's input batch for one image and trimap, and the image's size (H, W), to which the caller
    enlarges an alpha computed at max_size (_capped). suffix: what errors add to the names image and trimap."""
    size = None
    if max_size is not None:
        image, trimap, size = _capped(image, trimap, value_range, max_size, suffix)
        value_range = 1.0
    batch = normalised_batch([image], [trimap], model.processor, value_range, [suffix])
    _check_unpadded(batch.sizes[0], model, "image" + suffix)
    return batch, size or batch.sizes[0]


def _capped(image, trimap, value_range, max_size, suffix):
    """image and trimap read as float32 in [0, 1], reduced where the longer side is over max_size (image bicubic,
    trimap: reduced_trimap), and the full size (H, W). The full-size arrays are not kept while the network runs:
    16 bytes a pixel, 192 MB at 12 megapixels."""
    # float32 is enough: the resizes compute in float32
    rgb = read_image(image, value_range, "image" + suffix, np.float32)
    hint = read_trimap(trimap, value_range, "trimap" + suffix, np.float32)
    check_size("trimap" + suffix, hint.shape, "image", rgb.shape)
    check_not_swapped(rgb, hint, suffix)  # before the resize blurs the levels
    size = hint.shape
    if max(size) <= max_size:
        return rgb, hint, size
    scale = max_size / max(size)
    reduced = tuple(max(1, round(s * scale)) for s in size)
    small = np.stack([resize_plane(rgb[..., c], reduced, Image.BICUBIC) for c in range(3)], axis=-1)
    return np.clip(small, 0, 1, out=small), reduced_trimap(hint, reduced), size
