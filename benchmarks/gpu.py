"""minimatte on CuPy vs transformers on torch CUDA (eager), float32 and float16: time, peak GPU memory and
how far float16 alphas are from float32 ones, side by side in one run.

    python benchmarks/gpu.py --models small base --sizes 1024x1024 2048x2048 --warmups 1 --rounds 10

Each (engine, model, size, precision) runs in a fresh process, so memory peaks are that engine's alone: it
builds the model with the spec's deterministic random weights, runs --warmups passes at the size (compiling
kernels, warming cuBLAS, filling the allocator's pool), then times --rounds forward passes, each between device
synchronisations, and reports their median, fastest and slowest, and how much device memory the allocator took
from the driver during the timed passes (its pool still growing: the warm-up was too short). The input is the
hustvl demo bulb and its trimap, resized (from ../shared/data, or $MINIMATTE_SHARED/data), already on the GPU
for both engines (minimatte's model takes a CuPy array as it is). Peak memory is the most bytes in use by the
framework's allocator during one more pass after the timed ones, weights included (torch: max_memory_allocated;
CuPy: the default memory pool's used bytes, tracked by a Python call at each allocation, which the timed passes
do without).
"Equal precision": torch runs fp32 with TF32 off for matrix products and convolutions (cuDNN would
otherwise use TF32), as CuPy does by default; fp16 is `model.half()`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from cpu import python_command  # noqa: E402  (this folder: first on sys.path for a script)

ENGINES = ("minimatte", "torch")
PRECISIONS = ("float32", "float16")


def demo_pixels(height, width):
    """The bulb demo image and trimap resized to height x width, as the processor normalises them."""
    from PIL import Image

    import minimatte
    from helpers import DATA  # ../shared/data, or $MINIMATTE_SHARED/data

    demo = DATA / "vitmatte_demo"
    image = Image.open(demo / "bulb_rgb.png").convert("RGB").resize((width, height), Image.BICUBIC)
    trimap = Image.open(demo / "bulb_trimap.png").convert("L").resize((width, height), Image.NEAREST)
    return minimatte.preprocess(np.asarray(image), np.asarray(trimap)).pixel_values


def measure(engine, model_name, height, width, precision, warmups, rounds, alphas_path):
    """Runs inside the child process: {"seconds": per timed pass, "peak": peak GPU memory, "growth": device memory
    the allocator reserved during the timed passes} (MB)."""
    import minimatte
    from helpers import deterministic_state

    config = minimatte.PRESETS[model_name]
    pixels = demo_pixels(height, width)
    if engine == "minimatte":
        import cupy

        pool, peak = cupy.get_default_memory_pool(), [0]

        def tracked_malloc(size):
            memory = pool.malloc(size)
            peak[0] = max(peak[0], pool.used_bytes())
            return memory

        model = minimatte.VitMatte.from_state_dict(deterministic_state(config), backend_name="cupy",
                                                   precision=precision)
        synchronize = cupy.cuda.Device().synchronize
        device_pixels = cupy.asarray(pixels)

        def run():
            return model(device_pixels).alphas

        def peak_of_a_pass():
            cupy.cuda.set_allocator(tracked_malloc)
            peak[0] = pool.used_bytes()
            run()
            synchronize()
            cupy.cuda.set_allocator(pool.malloc)  # CuPy's default
            return peak[0]

        def to_numpy(alphas):
            return cupy.asnumpy(alphas)
        reserved = pool.total_bytes
    else:
        import torch

        from reference import hf_model
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model = hf_model(config, deterministic_state(config)).cuda()
        dtype = torch.float16 if precision == "float16" else torch.float32
        model = model.to(dtype)
        device_pixels = torch.from_numpy(pixels).cuda().to(dtype)
        synchronize = torch.cuda.synchronize

        def run():
            with torch.no_grad():
                return model(device_pixels).alphas

        def peak_of_a_pass():
            torch.cuda.reset_peak_memory_stats()
            run()
            synchronize()
            return torch.cuda.max_memory_allocated()

        def to_numpy(alphas):
            return alphas.float().cpu().numpy()
        reserved = torch.cuda.memory_reserved
    for _ in range(warmups):
        alphas = run()
    synchronize()
    warm, seconds = reserved(), []
    for _ in range(rounds):
        start = time.perf_counter()
        alphas = run()
        synchronize()
        seconds.append(time.perf_counter() - start)
    growth = reserved() - warm
    peak = peak_of_a_pass()
    np.save(alphas_path, to_numpy(alphas))
    return {"seconds": seconds, "peak": peak / 2 ** 20, "growth": growth / 2 ** 20}


def child(engine, model_name, size, precision, warmups, rounds, alphas_path):
    code = (f"import sys, json; sys.path.insert(0, {HERE!r}); import gpu; print(json.dumps(gpu.measure("
            f"{engine!r}, {model_name!r}, {size[0]}, {size[1]}, {precision!r}, {warmups}, {rounds}, "
            f"{alphas_path!r})))")
    result = subprocess.run(python_command(code), capture_output=True, text=True)
    if result.returncode != 0:
        return None, f"failed ({(result.stderr.strip().splitlines() or ['?'])[-1]})"
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["small", "base"], choices=["small", "base"])
    parser.add_argument("--sizes", nargs="+", default=["1024x1024", "2048x2048"], help="HxW, multiples of 32")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--warmups", type=int, default=1, help="untimed passes first (at least 1)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.warmups < 1 or args.rounds < 1:
        parser.error("--warmups and --rounds: expected at least 1")
    print("| model | size | precision | engine | median time (s) | fastest, slowest (s) | TFLOP/s | peak GPU memory "
          "(MB) | pool growth (MB) | time vs torch | memory vs torch | max abs alpha difference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="minimatte-gpu-") as folder:
        for model_name in args.models:
            for size_text in args.sizes:
                size = tuple(int(v) for v in size_text.split("x"))
                failed += compare(args, model_name, size_text, size, folder)
    sys.exit(f"gpu.py: {failed} of the rows failed" if failed else 0)


def compare(args, model_name, size_text, size, folder):
    """One table row per precision and engine; the alpha difference is to the same engine's float32 run
    (for float32: minimatte's to torch's). TFLOP/s counts the reference's GEMM and convolution FLOPs
    (model.stage_flops, equal to torch.utils.flop_counter's count) for both engines. Returns how many rows
    failed."""
    import minimatte
    from minimatte.model import stage_flops

    flops = sum(stage_flops(minimatte.PRESETS[model_name], *size).values())
    results, alphas = {}, {}
    for precision in args.precisions:
        for engine in args.engines:
            path = os.path.join(folder, f"{engine}_{precision}.npy")
            results[engine, precision] = child(engine, model_name, size, precision, args.warmups, args.rounds, path)
            if results[engine, precision][0] is not None:
                alphas[engine, precision] = np.load(path)
    for precision in args.precisions:
        for engine in args.engines:
            (measured, error), cells = results[engine, precision], []
            if error:
                print(f"| {model_name} | {size_text} | {precision} | {engine} | {error} |" + " |" * 7)
                continue
            seconds, peak = statistics.median(measured["seconds"]), measured["peak"]
            torch_result = results.get(("torch", precision), (None,))[0]
            if engine != "torch" and torch_result:
                cells += [f"{seconds / statistics.median(torch_result['seconds']):.2f}x",
                          f"{peak / torch_result['peak']:.2f}x"]
            else:
                cells += ["", ""]
            other = ("torch", "float32") if precision == "float32" else (engine, "float32")
            if other != (engine, precision) and other in alphas and (engine, precision) in alphas:
                cells.append(f"{np.abs(alphas[engine, precision] - alphas[other]).max():.2e} (vs {' '.join(other)})")
            else:
                cells.append("")
            print(f"| {model_name} | {size_text} | {precision} | {engine} | {seconds:.4f} | "
                  f"{min(measured['seconds']):.4f}, {max(measured['seconds']):.4f} | {flops / seconds / 1e12:.1f} | "
                  f"{peak:.0f} | {measured['growth']:.0f} | " + " | ".join(cells) + " |", flush=True)
    return sum(error is not None for _, error in results.values())


if __name__ == "__main__":
    main()
