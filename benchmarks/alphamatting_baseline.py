"""A classical baseline on real data for `minimatte evaluate`: closed-form matting (Levin et al. 2008, as
implemented by pymatting, a test-only reference) on the alphamatting.com training set.

    python benchmarks/alphamatting_baseline.py OUT_DIR [--trimaps Trimap1]
    minimatte evaluate OUT_DIR ../shared/data/alphamatting/gt_training_lowres \
        ../shared/data/alphamatting/trimap_training_lowres/Trimap1

Writes one 8-bit matte per image (truncated as the reference saves mattes) and the time each took.
"""
import argparse
import os
import time

from PIL import Image
from pymatting import estimate_alpha_cf, load_image

from minimatte.metrics import to_uint8

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "alphamatting")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--trimaps", default="Trimap1", choices=("Trimap1", "Trimap2"))
    parser.add_argument("--data", default=DATA, help="alphamatting folder (default: ../shared/data/alphamatting)")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    images = os.path.join(args.data, "input_training_lowres")
    for name in sorted(os.listdir(images)):
        start = time.perf_counter()
        alpha = estimate_alpha_cf(load_image(os.path.join(images, name), "RGB"),
                                  load_image(os.path.join(args.data, "trimap_training_lowres", args.trimaps, name),
                                             "GRAY"))
        Image.fromarray(to_uint8(alpha)).save(os.path.join(args.out_dir, name))
        print(f"{name}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
