"""How well `infer(..., max_size=)` brings a reduced alpha back to full size, on real mattes.

    python benchmarks/upsampling.py [--factors 2 4 8]

With max_size the network runs on a reduced copy of the image and its alpha is enlarged to the image's size. To
measure the enlargement alone, each ground-truth alpha of the alphamatting.com training set (27 images, ~800
pixels on the longer side) is reduced by the factor with PIL's area average (BOX: what a perfect network would
predict at the reduced size), enlarged back by each method, rounded to 8 bits and scored against the ground truth
with minimatte.metrics: SAD, MSE (x1e3), Grad and Conn in Trimap1's unknown region, as `minimatte evaluate`
scores it; SAD over the whole image; and the share of the known region's pixels that end up more than 2 levels
(of 255) off, where an enlargement's ringing shows as faint ripples inside the subject of a cut-out. Means over
the images. The last column is the time to enlarge a 768x1024 alpha to 3000x4000 (best of 3), as a 12-megapixel
photo's with --max-size 1024.

Methods: minimatte (what max_size does: PIL's bicubic enlargement of the float alpha, clipped to [0, 1]; up to
commit ec7c6a4, whose copy of this script measured it, the fast guided filter), and PIL's bilinear and Lanczos
enlargements, clipped likewise. Needs no weights and no reference package.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from minimatte import metrics  # noqa: E402
from minimatte.processing import enlarge_alpha, resize_plane  # noqa: E402
from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)

ALPHAMATTING = DATA / "alphamatting"


def pil(resample):
    return lambda alpha, size: np.clip(resize_plane(alpha, size, resample), 0, 1)


METHODS = {
    "minimatte": enlarge_alpha,
    "PIL bilinear": pil(Image.BILINEAR),
    "PIL Lanczos": pil(Image.LANCZOS),
}


def read(name):
    """The ground truth alpha as float32 in [0, 1], and the trimap, of one training image."""
    def plane(folder):
        return np.asarray(Image.open(ALPHAMATTING / folder / name).convert("L"))
    return plane("gt_training_lowres") / np.float32(255), plane("trimap_training_lowres/Trimap1")


def scores(upsample, truths, factor):
    """Mean [SAD, MSE x1e3, Grad, Conn, whole-image SAD, % known pixels > 2 levels off] over the images."""
    rows = []
    for gt, trimap in truths:
        reduced = resize_plane(gt, tuple(round(side / factor) for side in gt.shape), Image.BOX)
        predicted, truth = metrics.to_uint8(upsample(reduced, gt.shape)), np.round(gt * 255)
        off = np.abs(predicted.astype(np.float32) - truth)[trimap != 128] > 2
        rows.append([metrics.sad(predicted, truth, trimap), 1e3 * metrics.mse(predicted, truth, trimap),
                     metrics.grad(predicted, truth, trimap), metrics.conn(predicted, truth, trimap),
                     metrics.sad(predicted, truth, None), 100 * off.mean()])
    return np.mean(rows, axis=0)


def seconds(upsample):
    """Best of 3: a 768x1024 alpha to 3000x4000."""
    alpha = np.random.default_rng(0).random((768, 1024), dtype=np.float32)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        upsample(alpha, (3000, 4000))
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[2, 4, 8], help="reductions (default: 2 4 8)")
    args = parser.parse_args()
    truths = [read(name) for name in sorted(os.listdir(ALPHAMATTING / "gt_training_lowres"))]
    times = {method: seconds(upsample) for method, upsample in METHODS.items()}
    print(f"{len(truths)} alphamatting.com training images, Trimap1\n")
    print("| reduction | method | SAD | MSE (x1e3) | Grad | Conn | SAD, whole image | known pixels > 2 levels off "
          "| 768x1024 -> 3000x4000 |\n|---|---|---|---|---|---|---|---|---|")
    for factor in args.factors:
        for method, upsample in METHODS.items():
            sad, mse, grad, conn, whole, off = scores(upsample, truths, factor)
            print(f"| 1/{factor:g} | {method} | {sad:.3f} | {mse:.3f} | {grad:.3f} | {conn:.3f} | {whole:.3f} | "
                  f"{off:.3f}% | {times[method]:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
