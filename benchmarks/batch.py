"""A folder of images matted one after another in one process, as the command line's batch mode does: minimatte
and transformers (torch eager), each with the C allocator's defaults and with minimatte.keep_freed_memory (which
the command line sets; it is a setting of the whole process, so torch can have it too), side by side in one run.

    python benchmarks/batch.py --limit 9 --rounds 3

Each engine runs in a fresh process that builds S with the spec's deterministic random weights, warms up on a
64x64 input, then mattes the images in turn from their files (decoding, the processor's or minimatte's pre- and
postprocessing included), timing each. Default images: the 27 alphamatting.com training images (800 pixels on
the longer side) with their Trimap1 trimaps. The table gives the first image's time, the median of the others,
the total, the peak RSS, and the ratios to torch; with several rounds, the medians over rounds (engines
alternate within each). fp32; threads = --threads for every engine.
"""
import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

# cpu.py: this folder's, first on sys.path for a script, and in the children
from cpu import blas_in_children, measured_in_child  # noqa: E402
from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)

ENGINES = ("minimatte", "minimatte-kept", "torch", "torch-kept")
IMAGES = DATA / "alphamatting" / "input_training_lowres"
TRIMAPS = DATA / "alphamatting" / "trimap_training_lowres" / "Trimap1"


def measure(engine, pairs, threads):
    """Runs inside the child process: seconds for each image in turn, and the peak RSS (MB)."""
    import numpy as np

    import minimatte
    from helpers import deterministic_state

    config = minimatte.PRESETS["small"]
    warm = (np.zeros((64, 64, 3), np.uint8), np.full((64, 64), 128, np.uint8))
    if engine.endswith("-kept"):
        minimatte.keep_freed_memory()
    if engine.startswith("minimatte"):
        model = minimatte.VitMatte.from_state_dict(deterministic_state(config))

        def matte(image, trimap):
            return minimatte.infer(image, trimap, model=model)
    else:
        import torch
        from PIL import Image
        from transformers import VitMatteImageProcessor

        from reference import hf_model
        torch.set_num_threads(threads)
        model, processor = hf_model(config, deterministic_state(config)), VitMatteImageProcessor()

        def matte(image, trimap):
            if isinstance(image, str):
                image, trimap = Image.open(image).convert("RGB"), Image.open(trimap).convert("L")
            inputs = processor(images=image, trimaps=trimap, return_tensors="pt")
            with torch.no_grad():
                alphas = model(**inputs).alphas
            return alphas[0, 0, :np.shape(trimap)[0], :np.shape(trimap)[1]].numpy()
    matte(*warm)
    seconds = []
    for image, trimap in pairs:
        start = time.perf_counter()
        matte(image, trimap)
        seconds.append(time.perf_counter() - start)
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(IMAGES), help="a folder of images")
    parser.add_argument("--trimaps", default=str(TRIMAPS), help="their trimaps, named as the images")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    names = sorted(os.listdir(args.images))[:args.limit]
    pairs = [(os.path.join(args.images, name), os.path.join(args.trimaps, name)) for name in names]
    runs = {engine: [] for engine in args.engines}
    for _ in range(args.rounds):
        for engine in args.engines:
            runs[engine].append(measured_in_child("batch", engine, pairs, args.threads, threads=args.threads))
    rows = {engine: {"first": statistics.median(seconds[0] for seconds, _ in results),
                     "later": statistics.median(statistics.median(seconds[1:] or seconds) for seconds, _ in results),
                     "total": statistics.median(sum(seconds) for seconds, _ in results),
                     "rss": max(rss for _, rss in results)} for engine, results in runs.items()}
    print(f"{len(pairs)} images from {args.images}, median of {args.rounds} round(s)\n{blas_in_children()}\n")
    print("| engine | first image (s) | later images, median (s) | total (s) | peak RSS (MB) | total vs torch "
          "| RSS vs torch |")
    print("|---|---|---|---|---|---|---|")
    for engine, row in rows.items():
        ratios = " | "
        if engine != "torch" and "torch" in rows:  # each to torch with the allocator's defaults
            ratios = f"{row['total'] / rows['torch']['total']:.2f}x | {row['rss'] / rows['torch']['rss']:.2f}x"
        print(f"| {engine} | {row['first']:.2f} | {row['later']:.2f} | {row['total']:.1f} | {row['rss']:.0f} "
              f"| {ratios} |")


if __name__ == "__main__":
    main()
