"""minimatte's estimate_foreground vs pymatting's estimate_foreground_ml (a test-only reference): time and
max |difference| of F and B on real images, in one run.

    python benchmarks/foreground.py

Alphas are the lemur's matte and, for the 640x960 demo images, their trimaps read as alphas (a timing input,
not a matting result). Each engine is warmed up once (numba compiles on first use); times are the median of 3.
"""
import os
import statistics
import time

import numpy as np
from PIL import Image
from pymatting import estimate_foreground_ml

from minimatte import estimate_foreground

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
CASES = [("lemur", "pymatting_lemur/lemur.png", "pymatting_lemur/lemur_alpha.png")] + [
    (name, f"vitmatte_demo/{name}_rgb.png", f"vitmatte_demo/{name}_trimap.png") for name in ("bulb", "retriever")]


def median_seconds(run):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    print("| image | size | minimatte | pymatting | max difference F, B |\n|---|---|---|---|---|")
    for name, image_file, alpha_file in CASES:
        image = np.asarray(Image.open(os.path.join(DATA, image_file)).convert("RGB"))
        alpha = np.asarray(Image.open(os.path.join(DATA, alpha_file)).convert("L"))
        estimate_foreground_ml(image[:40, :40] / 255.0, alpha[:40, :40] / 255.0)  # numba's compilation
        ours, (f, b) = median_seconds(lambda: estimate_foreground(image, alpha, return_background=True))
        theirs, (f_ref, b_ref) = median_seconds(
            lambda: estimate_foreground_ml(image / 255.0, alpha / 255.0, return_background=True))
        print(f"| {name} | {image.shape[0]}x{image.shape[1]} | {ours:.2f} s | {theirs:.2f} s | "
              f"{np.abs(f - f_ref).max():.1g}, {np.abs(b - b_ref).max():.1g} |")


if __name__ == "__main__":
    main()
