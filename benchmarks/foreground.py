"""minimatte's estimate_foreground vs pymatting's estimate_foreground_ml (a test-only reference): time and
max |difference| of F and B on real images, in one run.

    python benchmarks/foreground.py                          # NumPy vs pymatting
    python benchmarks/foreground.py --backends numpy cupy    # and on the GPU (pymatting where installed)

Alphas are the lemur's matte and, for the 640x960 demo images, their trimaps read as alphas (a timing input,
not a matting result). The last row is the retriever enlarged to 4000x3000 (12 megapixels, a phone photo's
size; image bicubic, alpha bilinear). Each engine is warmed up once (numba compiles on first use, CUDA kernels
too); times are the median of 3 and include bringing F and B back to NumPy. Differences are to pymatting's F
and B, or without pymatting to the first backend's.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)
from minimatte import backend, estimate_foreground  # noqa: E402

CASES = [("lemur", "pymatting_lemur/lemur.png", "pymatting_lemur/lemur_alpha.png", None)] + [
    (name, f"vitmatte_demo/{name}_rgb.png", f"vitmatte_demo/{name}_trimap.png", None) for name in ("bulb", "retriever")
] + [("retriever, enlarged", "vitmatte_demo/retriever_rgb.png", "vitmatte_demo/retriever_trimap.png", (4000, 3000))]


def median_seconds(run):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def engines(backends):
    """{name: estimate(image uint8, alpha uint8) -> (F, B) as NumPy arrays}; pymatting's where installed."""
    def ours(name):
        def estimate(image, alpha):
            return tuple(map(backend.to_numpy, estimate_foreground(image, alpha, backend=name,
                                                                   return_background=True)))
        return estimate
    found = {f"minimatte {name}": ours(name) for name in backends}
    try:
        from pymatting import estimate_foreground_ml
    except ImportError:
        return found
    found["pymatting"] = lambda image, alpha: estimate_foreground_ml(image / 255.0, alpha / 255.0,
                                                                     return_background=True)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["numpy"], choices=backend.BACKENDS)
    timed = engines(parser.parse_args().backends)
    reference = "pymatting" if "pymatting" in timed else next(iter(timed))
    print(f"| image | size | {' | '.join(timed)} | max difference F, B to {reference} |")
    print("|---|---|" + "---|" * len(timed) + "---|")
    for name, image_file, alpha_file, size in CASES:
        image, alpha = Image.open(DATA / image_file).convert("RGB"), Image.open(DATA / alpha_file).convert("L")
        if size is not None:
            image, alpha = image.resize(size[::-1], Image.BICUBIC), alpha.resize(size[::-1], Image.BILINEAR)
        image, alpha = np.asarray(image), np.asarray(alpha)
        seconds, results = {}, {}
        for engine, estimate in timed.items():
            estimate(image[:40, :40], alpha[:40, :40])  # compilation
            seconds[engine], results[engine] = median_seconds(lambda: estimate(image, alpha))
        differences = [f"{engine}: " + ", ".join(f"{np.abs(computed - expected).max():.1g}"
                                                 for computed, expected in zip(results[engine], results[reference]))
                       for engine in timed if engine != reference]
        print(f"| {name} | {image.shape[0]}x{image.shape[1]} | "
              + " | ".join(f"{seconds[engine]:.3f} s" for engine in timed) + f" | {'; '.join(differences)} |")


if __name__ == "__main__":
    main()
