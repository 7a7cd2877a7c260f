"""A phone photo cut out end to end, with the network on a reduced copy: minimatte (`minimatte cutout PHOTO
TRIMAP --max-size 1024` as Python calls) against the same job done with the references, transformers (torch
eager) and pymatting, side by side in one run.

    python benchmarks/photo.py --rounds 3

The photo is the retriever demo enlarged to 4000x3000 (12 megapixels; bicubic, saved as a JPEG at quality 95, as
phones save them) with its trimap enlarged by nearest neighbour (PNG). Each engine runs in a fresh process that
builds S with the spec's deterministic random weights (so the cut-out is no matting result) and warms up on a
small photo (numba compiles pymatting's loop on first use), then times each stage of one cut-out from the files:

- matte: decode both files, reduce them so that the longer side is --max-size, the forward pass, and the alpha
  back at full size. minimatte: `infer(..., max_size=)` (bicubic image, a trimap whose thin bands stay whole,
  the alpha enlarged bicubically). References: PIL's bicubic and nearest reductions, VitMatteImageProcessor and
  the model, PIL's bilinear enlargement of the alpha.
- cut-out: the foreground colours at full size and the 8-bit RGBA. minimatte: `cutout`; references: pymatting's
  estimate_foreground_ml, then the RGBA rounded from it and the alpha.
- save: the PNG. minimatte: `minimatte.save` (zlib's run-length strategy); references: Pillow's defaults.

minimatte-kept is minimatte after minimatte.keep_freed_memory(), as the command line runs. The table gives each
stage's median over rounds (engines alternate within each), the total, the process's peak RSS, and minimatte's
ratios to the references. fp32; threads = --threads for every engine.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

# cpu.py: this folder's, first on sys.path for a script, and in the children
from cpu import blas_in_children, measured_in_child  # noqa: E402
from foreground import peak_rss_mb  # noqa: E402
from helpers import DATA  # noqa: E402  (../shared/data, or $MINIMATTE_SHARED/data)

ENGINES = ("minimatte", "minimatte-kept", "references")
STAGES = ("matte", "cut-out", "save")
SOURCE = DATA / "vitmatte_demo" / "retriever_rgb.png", DATA / "vitmatte_demo" / "retriever_trimap.png"


def write_photo(folder, size, name):
    """The retriever enlarged to `size` (W, H) in `folder`: NAME.jpg and NAME_trimap.png."""
    from PIL import Image
    image, trimap = (Image.open(path) for path in SOURCE)
    photo, hint = os.path.join(folder, f"{name}.jpg"), os.path.join(folder, f"{name}_trimap.png")
    image.convert("RGB").resize(size, Image.BICUBIC).save(photo, quality=95)
    trimap.convert("L").resize(size, Image.NEAREST).save(hint)
    return photo, hint


def pipeline(engine, max_size):
    """(matte, cut_out, save) of `engine`, each taking the stage before's result."""
    import numpy as np

    import minimatte
    from helpers import deterministic_state

    config = minimatte.PRESETS["small"]
    if engine.startswith("minimatte"):
        model = minimatte.VitMatte.from_state_dict(deterministic_state(config))

        def matte(photo, trimap):
            image = minimatte.processing.open_image(photo, "image")  # decoded once, as the command line does
            return image, minimatte.infer(image, trimap, model=model, max_size=max_size)

        def cut_out(image, alpha):
            return image, minimatte.cutout(image, alpha)

        def save(image, rgba, output):
            minimatte.save(output, rgba, icc_profile=minimatte.icc_profile(image), dpi=minimatte.dpi(image))
        return matte, cut_out, save

    import pymatting
    import torch
    from PIL import Image
    from transformers import VitMatteImageProcessor

    from reference import hf_model
    model, processor = hf_model(config, deterministic_state(config)), VitMatteImageProcessor()

    def matte(photo, trimap):
        image, trimap = Image.open(photo).convert("RGB"), Image.open(trimap).convert("L")
        scale = min(1, max_size / max(image.size))
        size = tuple(max(1, round(side * scale)) for side in image.size)
        inputs = processor(images=image.resize(size, Image.BICUBIC), trimaps=trimap.resize(size, Image.NEAREST),
                           return_tensors="pt")
        with torch.no_grad():
            small = model(**inputs).alphas[0, 0, :size[1], :size[0]].numpy()
        return image, np.asarray(Image.fromarray(small).resize(image.size, Image.BILINEAR))

    def cut_out(image, alpha):
        foreground = pymatting.estimate_foreground_ml(np.asarray(image) / 255.0, alpha)
        rgba = np.dstack([foreground, np.clip(alpha, 0, 1)[..., None]]) * 255
        return image, np.rint(rgba).astype(np.uint8)

    def save(image, rgba, output):
        Image.fromarray(rgba).save(output)
    return matte, cut_out, save


def measure(engine, photo, trimap, small, max_size, output, threads):
    """Runs inside the child process: seconds of each stage, and the peak RSS (MB)."""
    if engine == "references":
        import torch
        torch.set_num_threads(threads)
    if engine == "minimatte-kept":
        import minimatte
        minimatte.keep_freed_memory()
    matte, cut_out, save = pipeline(engine, max_size)
    save(*cut_out(*matte(*small)), output)  # warm-up
    seconds = []

    def timed(stage, *args):
        start = time.perf_counter()
        result = stage(*args)
        seconds.append(time.perf_counter() - start)
        return result
    image, alpha = timed(matte, photo, trimap)
    image, rgba = timed(cut_out, image, alpha)
    timed(save, image, rgba, output)
    return seconds, peak_rss_mb()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="4000x3000", help="the photo's WxH")
    parser.add_argument("--max-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="minimatte-photo-") as folder:
        photo, trimap = write_photo(folder, size, "photo")
        small = write_photo(folder, (96, 72), "small")
        runs = {engine: [] for engine in ENGINES}
        for _ in range(args.rounds):
            for engine in ENGINES:
                output = os.path.join(folder, f"{engine}.png")
                runs[engine].append(measured_in_child("photo", engine, photo, trimap, small, args.max_size, output,
                                                      args.threads, threads=args.threads))
    rows = {engine: [statistics.median(seconds[i] for seconds, _ in results) for i in range(len(STAGES))]
            + [statistics.median(sum(seconds) for seconds, _ in results), max(rss for _, rss in results)]
            for engine, results in runs.items()}
    print(f"A {size[0]}x{size[1]} photo cut out with --max-size {args.max_size}, median of {args.rounds} round(s)\n"
          f"{blas_in_children()}\n")
    print(f"| engine | {' (s) | '.join(STAGES)} (s) | total (s) | peak RSS (MB) |")
    print("|---|" + "---|" * (len(STAGES) + 2))
    for engine, row in rows.items():
        print(f"| {engine} | " + " | ".join(f"{value:.2f}" for value in row[:-1]) + f" | {row[-1]:.0f} |")
    for engine in ENGINES[:2]:
        ratios = [mine / theirs for mine, theirs in zip(rows[engine], rows["references"])]
        print(f"| {engine} vs references | " + " | ".join(f"{ratio:.2f}x" for ratio in ratios) + " |")

if __name__ == "__main__":
    main()
