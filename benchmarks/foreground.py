"""minimatte's estimate_foreground vs pymatting's estimate_foreground_ml (a test-only reference): time and
max |difference| of F and B on real images, in one run.

    python benchmarks/foreground.py                          # NumPy vs pymatting
    python benchmarks/foreground.py --backends numpy cupy    # and on the GPU (pymatting where installed)
    python benchmarks/foreground.py --memory                 # and each engine's peak memory

Alphas are the lemur's matte and, for the 640x960 demo images, their trimaps read as alphas (a timing input,
not a matting result). The last row is the retriever enlarged to 4000x3000 (12 megapixels, a phone photo's
size; image bicubic, alpha bilinear). Each engine is warmed up once (numba compiles on first use, CUDA kernels
too); times are the median of 3 and include bringing F and B back to NumPy. Differences are to pymatting's F
and B, or without pymatting to the first backend's. With --memory, each engine also estimates each image once
in a fresh process, warmed up in the same way, and the table gives how far that raised the process's peak RSS
above what it held with the image and alpha loaded (F and B included; host memory only, also for CuPy).
"""
import argparse
import os
import resource
import statistics
import subprocess
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


def case_inputs(case):
    """The image and alpha of CASES[case], as uint8 arrays."""
    _, image_file, alpha_file, size = CASES[case]
    image, alpha = Image.open(DATA / image_file).convert("RGB"), Image.open(DATA / alpha_file).convert("L")
    if size is not None:
        image, alpha = image.resize(size[::-1], Image.BICUBIC), alpha.resize(size[::-1], Image.BILINEAR)
    return np.asarray(image), np.asarray(alpha)


def peak_rss_mb():
    """This process's peak RSS in MB: Linux's VmHWM, which starts afresh at exec, where getrusage's maxrss keeps
    what the parent held when it forked (this script's parent holds the timed engines' images)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except OSError:  # not Linux: maxrss, which may start from the parent's peak and then understate the rise
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)


def added_peak_mb(backends, engine, case):
    """How many MB one estimate of CASES[case] by `engine` adds to the peak RSS of a fresh process."""
    command = [sys.executable, __file__, "--backends", *backends, "--peak-of", engine, str(case)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["numpy"], choices=backend.BACKENDS)
    parser.add_argument("--memory", action="store_true", help="also measure each engine's peak memory")
    parser.add_argument("--peak-of", nargs=2, metavar=("ENGINE", "CASE"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    timed = engines(args.backends)
    if args.peak_of:
        engine, case = args.peak_of[0], int(args.peak_of[1])
        image, alpha = case_inputs(case)
        timed[engine](image[:40, :40], alpha[:40, :40])  # compilation
        loaded = peak_rss_mb()
        timed[engine](image, alpha)
        print(f"{peak_rss_mb() - loaded:.0f}")
        return
    reference = "pymatting" if "pymatting" in timed else next(iter(timed))
    memory = [f"{engine}, peak MB" for engine in timed] if args.memory else []
    print(f"| image | size | {' | '.join([*timed, *memory])} | max difference F, B to {reference} |")
    print("|---|---|" + "---|" * (len(timed) + len(memory)) + "---|")
    for case, (name, *_) in enumerate(CASES):
        image, alpha = case_inputs(case)
        seconds, results = {}, {}
        for engine, estimate in timed.items():
            estimate(image[:40, :40], alpha[:40, :40])  # compilation
            seconds[engine], results[engine] = median_seconds(lambda: estimate(image, alpha))
        peaks = [f"{added_peak_mb(args.backends, engine, case):.0f}" for engine in timed] if args.memory else []
        differences = [f"{engine}: " + ", ".join(f"{np.abs(computed - expected).max():.1g}"
                                                 for computed, expected in zip(results[engine], results[reference]))
                       for engine in timed if engine != reference]
        columns = [*(f"{seconds[engine]:.3f} s" for engine in timed), *peaks]
        print(f"| {name} | {image.shape[0]}x{image.shape[1]} | {' | '.join(columns)} | {'; '.join(differences)} |",
              flush=True)


if __name__ == "__main__":
    main()
