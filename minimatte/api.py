"""The two calls most users need: `load` a checkpoint and `infer` an alpha matte."""
import os

from .backend import to_numpy
from .convert import read_any
from .model import VitMatte
from .processing import crop, preprocess

DEFAULT_MODEL = "small-composition-1k"


def load(source=DEFAULT_MODEL, backend=None):
    """A VitMatte from a published checkpoint's name, an HF checkpoint directory, a safetensors file, or a
    PyTorch `pytorch_model.bin` / original hustvl `.pth` (read without torch, see convert.py).

    backend: "numpy" (default) or "cupy"; None reads $MINIMATTE_BACKEND.
    """
    path = os.fspath(source)
    if not os.path.exists(path):
        from .hub import cached_checkpoint
        path = cached_checkpoint(path)
    state, config, processor = read_any(path)
    return VitMatte.from_state_dict(state, config, processor, backend)


def infer(image, trimap, model=None, value_range=None, backend=None):
    """Alpha matte(s) of `image` given `trimap`: float32 (H, W) arrays in [0, 1] at the input size.

    image, trimap: file paths, PIL images or arrays (uint8/uint16; floats need value_range=1.0 or 255.0),
                   or equal-length lists of them (returns a list).
    model: a loaded VitMatte, a path or checkpoint name (default: small-composition-1k).
    """
    if not isinstance(model, VitMatte):
        model = load(model or DEFAULT_MODEL, backend)
    single = not isinstance(image, (list, tuple))
    images, trimaps = ([image], [trimap]) if single else (list(image), list(trimap))
    if len(images) != len(trimaps):
        raise ValueError(f"trimap: got {len(trimaps)} trimaps for {len(images)} images")
    alphas = []
    for img, tri in zip(images, trimaps):
        batch = preprocess(img, tri, model.processor, value_range)
        alphas.extend(crop(to_numpy(model(batch.pixel_values).alphas), batch.sizes))
    return alphas[0] if single else alphas
