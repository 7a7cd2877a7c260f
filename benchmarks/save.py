"""Writing the command line's outputs: its save options per format (minimatte.files.SAVE_OPTIONS) against
Pillow's defaults, on the three kinds of file it writes: 8-bit mattes (L), RGBA cut-outs and RGB composites.
Time, size and the largest error read back (in levels of 255), in one run.

    python benchmarks/save.py

Inputs are the real images of ../shared/data: the 27 alphamatting.com training images with their ground-truth
alphas (the matte, and the image with it as alpha for the cut-out), the three ViTMatte demo images with their
trimaps as alphas and the lemur with its alpha; then the retriever enlarged to 4000x3000 (12 megapixels; image
bicubic, alpha bilinear), as PNG only. Times are the best of 3 per file. JPEG cannot hold a cut-out.
"""
import glob
import io
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)
from minimatte.files import SAVE_OPTIONS  # noqa: E402

KINDS = {"matte (L)": "L", "cut-out (RGBA)": "RGBA", "composite (RGB)": "RGB"}


def pairs():
    """(image, alpha) PIL pairs of the real-image set."""
    for path in sorted(glob.glob(os.path.join(DATA, "alphamatting", "input_training_lowres", "*.png"))):
        yield Image.open(path).convert("RGB"), Image.open(path.replace("input_training", "gt_training")).convert("L")
    for name in ("bulb", "retriever", "boy"):
        yield (Image.open(os.path.join(DATA, "vitmatte_demo", f"{name}_rgb.png")).convert("RGB"),
               Image.open(os.path.join(DATA, "vitmatte_demo", f"{name}_trimap.png")).convert("L"))
    yield (Image.open(os.path.join(DATA, "pymatting_lemur", "lemur.png")).convert("RGB"),
           Image.open(os.path.join(DATA, "pymatting_lemur", "lemur_alpha.png")).convert("L"))


def output(image, alpha, mode):
    """The PIL image the command line writes for a kind of output."""
    if mode == "RGBA":
        cut = image.copy()
        cut.putalpha(alpha)
        return cut
    return alpha if mode == "L" else image


def write(image, form, options):
    """(best seconds of 3, bytes, largest error read back) of saving `image` in format `form`."""
    times = []
    for _ in range(3):
        file = io.BytesIO()
        start = time.perf_counter()
        image.save(file, format=form, **options)
        times.append(time.perf_counter() - start)
    back = np.asarray(Image.open(file).convert(image.mode), dtype=np.int16)
    return min(times), file.tell(), int(np.abs(back - np.asarray(image, dtype=np.int16)).max())


def main():
    retriever = (Image.open(os.path.join(DATA, "vitmatte_demo", "retriever_rgb.png")).convert("RGB"),
                 Image.open(os.path.join(DATA, "vitmatte_demo", "retriever_trimap.png")).convert("L"))
    Image.init()
    forms = [form for form in SAVE_OPTIONS if form in Image.SAVE]  # AVIF where this Pillow can write it
    sets = [("real images", list(pairs()), forms),
            ("retriever, enlarged, 4000x3000", [(retriever[0].resize((4000, 3000), Image.BICUBIC),
                                                 retriever[1].resize((4000, 3000), Image.BILINEAR))], ["PNG"])]
    print("| images | format | output | Pillow default: time, size, max error | minimatte | time ratio | size ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, images, forms in sets:
        for form in forms:
            for kind, mode in KINDS.items():
                if form == "JPEG" and mode == "RGBA":
                    continue
                cells = []
                for options in ({}, SAVE_OPTIONS[form]):
                    results = [write(output(image, alpha, mode), form, options) for image, alpha in images]
                    cells.append((sum(r[0] for r in results), sum(r[1] for r in results), max(r[2] for r in results)))
                (t0, b0, e0), (t1, b1, e1) = cells
                print(f"| {label} ({len(images)}) | {form} | {kind} | {t0:.2f} s, {b0 / 1e6:.2f} MB, {e0} | "
                      f"{t1:.2f} s, {b1 / 1e6:.2f} MB, {e1} | {t1 / t0:.2f}x | {b1 / b0:.3f}x |")


if __name__ == "__main__":
    main()
