"""How close minimatte is to the reference: the max |difference| behind the README's exactness figures.

    python benchmarks/parity.py
    python benchmarks/parity.py --model small-composition-1k [--images IMAGE TRIMAP ...]

Without --model: golden files (spec deterministic weights, 64x96), which need nothing else, then the live
comparison with transformers on those weights, then the pixel values that transformers' default processor gives
where torchvision is installed (torchvision_formulas) and the alphas they give, and, where it is installed, that
processor itself and the alphas of its whole pipeline (torchvision_pipeline). With --model: a checkpoint (a name,
hub repo id, folder or file, as minimatte.load takes it; a published one is downloaded) on real images (the hustvl
demo images by default), minimatte against transformers' processor and VitMatteForImageMatting holding the same
weights and settings. Both need the [reference] extra (torch + transformers). transformers' processor in the
other comparisons is VitMatteImageProcessorPil, which VitMatteImageProcessor is without torchvision. The tests
assert bounds; this prints the measured values.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import minimatte  # noqa: E402
from helpers import DATA, REFERENCE, deterministic_state, input_a  # noqa: E402

DEMO = [(DATA / "vitmatte_demo" / f"{name}_rgb.png", DATA / "vitmatte_demo" / f"{name}_trimap.png")
        for name in ("bulb", "retriever", "boy")]
LIVE_CASES = [("small", [(249, 513)]), ("small", [(640, 960)]), ("small", [(1000, 750)]),
              ("small", [(300, 460), (300, 460)]), ("base", [(249, 513), (249, 513)]), ("base", [(1000, 750)])]


def checkpoint_parity(source, pairs, backend=None, precision=None):
    """Each image's processor output and alphas, minimatte's (on `backend`, in `precision`) against transformers'
    (on the CPU, in float32) with the checkpoint's weights and processor settings; and how many of the 8-bit
    mattes' pixels differ (as `minimatte matte` rounds them)."""
    import torch
    import transformers
    from minimatte import hub
    from reference import hf_model

    state, config, processor = minimatte.convert.read_any(hub.checkpoint_path(source))  # as minimatte.load reads it
    model = minimatte.VitMatte.from_state_dict(state, config, processor, backend, precision)
    if model.processor.legacy_padding:
        raise SystemExit("--model: transformers' processor has no hustvl padding (preprocessing='original')")
    state.update({k: np.zeros((), np.int64) for k in minimatte.config.batch_norm_buffers(config) if k not in state})
    reference = hf_model(config, state)
    settings = {k: v for k, v in model.processor.to_dict().items() if k != "legacy_padding"}
    processor = transformers.VitMatteImageProcessorPil(**settings)
    print(f"{source}: minimatte {minimatte.__version__} ({model.backend}, {model.precision}), transformers "
          f"{transformers.__version__}, torch {torch.__version__} (CPU, float32)\n")
    print("| image | size | processor | alphas | 8-bit alphas that differ | minimatte | transformers |\n"
          "|---|---|---|---|---|---|---|")
    for image_path, trimap_path in pairs:
        image = np.asarray(Image.open(image_path).convert("RGB"))
        trimap = np.asarray(Image.open(trimap_path).convert("L"))
        start = time.perf_counter()
        pixels = processor(images=image, trimaps=trimap, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = reference(pixels).alphas[0, 0, :image.shape[0], :image.shape[1]].numpy()
        middle = time.perf_counter()
        alpha = minimatte.infer(image, trimap, model=model)  # the same pixels (files' EXIF turns aside)
        end = time.perf_counter()
        ours = minimatte.preprocess(image, trimap, model.processor).pixel_values
        differ = np.count_nonzero(np.round(alpha * 255) != np.round(expected * 255))
        print(f"| {os.path.basename(image_path)} | {image.shape[0]}x{image.shape[1]} | "
              f"{np.abs(ours - pixels.numpy()).max():.2g} | {np.abs(alpha - expected).max():.2g} | "
              f"{differ} of {alpha.size} | {end - middle:.2f} s | {middle - start:.2f} s |", flush=True)


def torchvision_formulas(image, trimap):
    """The pixel values of transformers' default processor where torchvision is installed (its torchvision backend),
    as its formulas for the default settings, in torch: RGB rescaled and normalised in one float32 step,
    (v - 127.5) / 127.5, the trimap rescaled as v * (1/255) in float32, padded with zeros to multiples of 32.
    Written out so that they run without torchvision (torch 2.13.0's needs torch's CUDA build); where it is
    installed, the processor's own output is compared with them (torchvision_pipeline)."""
    import torch
    rgb = torch.tensor(image.transpose(2, 0, 1), dtype=torch.float32)  # (H, W, 3) uint8 -> (3, H, W)
    pixels = torch.cat([(rgb - 127.5) / 127.5, torch.tensor(trimap)[None] * (1 / 255)])  # -> (4, H, W)
    h, w = trimap.shape
    return torch.nn.functional.pad(pixels, (0, -w % 32, 0, -h % 32))[None].numpy()  # (1, 4, Hp, Wp)


def torchvision_pipeline(grey, levels):
    """Where torchvision is installed: transformers' default processor (its torchvision backend) against
    torchvision_formulas, and its pixel values through the reference network against minimatte.infer on the demo
    images, as a user of transformers' default pipeline would compare them."""
    import importlib.util
    if importlib.util.find_spec("torchvision") is None:
        print("| torchvision backend itself | not run: torchvision is not installed |", flush=True)
        return
    import torch
    import torchvision
    import transformers
    from reference import hf_model
    processor = transformers.VitMatteImageProcessor()  # the torchvision backend, as torchvision imports
    if isinstance(processor, transformers.VitMatteImageProcessorPil):
        raise SystemExit("torchvision is installed but transformers' processor is its PIL backend")
    pixels = processor(images=grey, trimaps=levels, return_tensors="np")["pixel_values"]
    print(f"| torchvision {torchvision.__version__} backend itself, 256 levels: its formulas | "
          f"{np.abs(pixels - torchvision_formulas(grey, levels)).max():.2g} |")
    for name in ("small", "base"):
        state = deterministic_state(minimatte.PRESETS[name])
        ours, reference = minimatte.VitMatte.from_state_dict(state), hf_model(minimatte.PRESETS[name], state)
        for image_path, trimap_path in DEMO:
            image, trimap = Image.open(image_path).convert("RGB"), Image.open(trimap_path).convert("L")
            pixels = processor(images=image, trimaps=trimap, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                expected = reference(pixels).alphas[0, 0, :image.height, :image.width].numpy()
            print(f"| torchvision backend's pipeline, {os.path.basename(image_path)}: {name}'s alphas against "
                  f"minimatte.infer | {np.abs(minimatte.infer(image, trimap, model=ours) - expected).max():.2g} |",
                  flush=True)


def deterministic_parity():
    print("| comparison | max abs difference |\n|---|---|")
    for name in ("small", "base"):
        gold = np.load(REFERENCE / f"vitmatte_{name}_detweights_64x96.npz")
        out = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS[name]))(
            input_a(), output_hidden_states=True, output_attentions=True)
        print(f"| golden {name}: alphas | {np.abs(out.alphas - gold['alphas_A']).max():.2g} |")
        if name == "small":
            hidden = max(np.abs(h - gold[f"hidden_state_{i}_A"]).max() for i, h in enumerate(out.hidden_states))
            attention = max(np.abs(out.attentions[i] - gold[f"attention_layer{i}_A"]).max() for i in (0, 2))
            print(f"| golden small: hidden states | {hidden:.2g} |\n| golden small: attention maps | {attention:.2g} |")
    from reference import hf_alphas, hf_model
    from test_reference_parity import hf_pixels, large_activation_differences, random_pair
    for name, sizes in LIVE_CASES:
        rng = np.random.default_rng(sum(h * w for h, w in sizes))  # the inputs of the parity tests
        pairs = [random_pair(rng, h, w) for h, w in sizes]
        images, trimaps = [p[0] for p in pairs], [p[1] for p in pairs]
        reference_pixels = hf_pixels(images, trimaps)
        batch = minimatte.preprocess(images, trimaps)
        state = deterministic_state(minimatte.PRESETS[name])
        reference = hf_alphas(hf_model(minimatte.PRESETS[name], state), reference_pixels)
        ours = minimatte.VitMatte.from_state_dict(state)(batch.pixel_values).alphas
        label = f"live {name} {len(sizes)}x{sizes[0][0]}x{sizes[0][1]}"
        print(f"| {label}: processor | {np.abs(batch.pixel_values - reference_pixels).max():.2g} |")
        print(f"| {label}: alphas | {np.abs(ours - reference).max():.2g} |", flush=True)
    # every 8-bit value, in RGB and as the trimap; 16 rows, as transformers takes a 1-row image for channels first
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    grey = levels[..., None].repeat(3, axis=2)  # (16, 16) -> (16, 16, 3)
    pixels = minimatte.preprocess(grey, levels).pixel_values
    print(f"| torchvision backend's formulas, 256 levels: processor | "
          f"{np.abs(pixels - torchvision_formulas(grey, levels)).max():.2g} |")
    small = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS["small"]))
    for image_path, trimap_path in DEMO:
        image = np.asarray(Image.open(image_path).convert("RGB"))
        trimap = np.asarray(Image.open(trimap_path).convert("L"))
        ours = small(minimatte.preprocess(image, trimap).pixel_values).alphas
        theirs = small(torchvision_formulas(image, trimap)).alphas  # the same network, fed their pixel values
        print(f"| torchvision backend's formulas, {os.path.basename(image_path)}: small's alphas | "
              f"{np.abs(ours - theirs).max():.2g} |", flush=True)
    torchvision_pipeline(grey, levels)
    largest, hidden, alphas = large_activation_differences(deterministic_state(minimatte.PRESETS["small"]))
    label = f"live small 1x249x513, hidden states up to {largest:.0f}"
    print(f"| {label}: hidden states | {hidden:.2g} |")
    print(f"| {label}: alphas | {alphas:.2g} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a checkpoint to compare on real images (default: the deterministic weights)")
    parser.add_argument("--images", nargs="+", metavar="IMAGE TRIMAP",
                        help="image and trimap files, in pairs (default: the hustvl demo images)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), help="minimatte's, with --model (default: numpy)")
    parser.add_argument("--precision", choices=("float32", "float16"), help="minimatte's, with --model")
    args = parser.parse_args()
    if args.images and (not args.model or len(args.images) % 2):
        parser.error("--images: pairs of an image and its trimap, with --model")
    if (args.backend or args.precision) and not args.model:
        parser.error("--backend and --precision: with --model")
    if args.model:
        pairs = list(zip(args.images[::2], args.images[1::2])) if args.images else DEMO
        checkpoint_parity(args.model, pairs, args.backend, args.precision)
    else:
        deterministic_parity()


if __name__ == "__main__":
    main()
