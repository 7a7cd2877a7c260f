"""Writing PNGs: the command line's options (minimatte.cli.PNG_OPTIONS) against Pillow's defaults, on the
three kinds of file it writes: 8-bit mattes (L), RGBA cut-outs and RGB composites. Time and size, in one run.

    python benchmarks/png.py

Inputs are the real images of ../shared/data: the 27 alphamatting.com training images with their ground-truth
alphas (the matte, and the image with it as alpha for the cut-out), the three ViTMatte demo images and the
lemur with their trimaps as alphas, and the retriever enlarged to 4000x3000 (12 megapixels; image bicubic,
alpha bilinear) on its own row. Times are the best of 3 per file.
"""
import glob
import io
import os
import sys
import time

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)
from minimatte.cli import PNG_OPTIONS  # noqa: E402

WRITERS = {"Pillow default": {}, "minimatte": PNG_OPTIONS}


def pairs():
    """(image, alpha) PIL pairs of the real-image set."""
    for path in sorted(glob.glob(os.path.join(DATA, "alphamatting", "input_training_lowres", "*.png"))):
        yield Image.open(path).convert("RGB"), Image.open(path.replace("input_training", "gt_training")).convert("L")
    for name in ("bulb", "retriever", "boy"):
        yield (Image.open(os.path.join(DATA, "vitmatte_demo", f"{name}_rgb.png")).convert("RGB"),
               Image.open(os.path.join(DATA, "vitmatte_demo", f"{name}_trimap.png")).convert("L"))
    yield (Image.open(os.path.join(DATA, "pymatting_lemur", "lemur.png")).convert("RGB"),
           Image.open(os.path.join(DATA, "pymatting_lemur", "lemur_alpha.png")).convert("L"))


def outputs(image, alpha):
    """{kind: the PIL image the command line would write}."""
    cut = image.copy()
    cut.putalpha(alpha)
    return {"matte (L)": alpha, "cut-out (RGBA)": cut, "composite (RGB)": image}


def write(image, options):
    """(best seconds of 3, bytes) of saving `image` as PNG with `options`."""
    times = []
    for _ in range(3):
        file = io.BytesIO()
        start = time.perf_counter()
        image.save(file, format="PNG", **options)
        times.append(time.perf_counter() - start)
    return min(times), file.tell()


def main():
    retriever = (Image.open(os.path.join(DATA, "vitmatte_demo", "retriever_rgb.png")).convert("RGB"),
                 Image.open(os.path.join(DATA, "vitmatte_demo", "retriever_trimap.png")).convert("L"))
    sets = {"real images": list(pairs()),
            "retriever, enlarged, 4000x3000": [(retriever[0].resize((4000, 3000), Image.BICUBIC),
                                                retriever[1].resize((4000, 3000), Image.BILINEAR))]}
    print("| images | output | Pillow default | minimatte | time ratio | size ratio |")
    print("|---|---|---|---|---|---|")
    for label, images in sets.items():
        totals = {}  # (kind, writer) -> [seconds, bytes]
        for image, alpha in images:
            for kind, output in outputs(image, alpha).items():
                for writer, options in WRITERS.items():
                    seconds, size = write(output, options)
                    total = totals.setdefault((kind, writer), [0.0, 0])
                    total[0] += seconds
                    total[1] += size
        for kind in outputs(*images[0]):
            (t0, b0), (t1, b1) = (totals[kind, writer] for writer in WRITERS)
            print(f"| {label} ({len(images)}) | {kind} | {t0:.2f} s, {b0 / 1e6:.2f} MB | {t1:.2f} s, "
                  f"{b1 / 1e6:.2f} MB | {t1 / t0:.2f}x | {b1 / b0:.3f}x |")


if __name__ == "__main__":
    main()
