"""Where minimatte's forward pass spends its time, stage by stage, on either backend.

    python benchmarks/stages.py --model small --size 1024x1024
    python benchmarks/stages.py --model base --size 2048x2048 --backend cupy --precision float16

Builds the model with the spec's deterministic random weights, warms up once at the size (compiling the
CUDA kernels on CuPy), then runs --rounds forward passes with every stage timed: the model's layer
functions are wrapped, and on CuPy the device is synchronised around each stage so that its time is its own
(this serialises the GPU with the host, so the stages add up to more than an untimed pass). A stage called
inside another (the residual block's convolutions) counts towards the outer one. Prints the median seconds
per stage over the rounds and its share of the timed pass, and how the MLP's time divides between its parts:
the fc1 and fc2 products, fc1's bias with the exact GELU, and fc2's bias with the residual (their times summed
over the threads that run the MLP's token chunks side by side, so shares of the MLP's work, not of its wall
time; on CuPy each part synchronised as a stage is). Then, from one more pass, how far the progress bar's
position (each stage's share of the FLOPs) is from the share of the time spent.
"""
import argparse
import functools
import os
import statistics
import sys
import threading
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import minimatte  # noqa: E402
from helpers import deterministic_state  # noqa: E402
from minimatte import backend, model  # noqa: E402


def stage_name(function, args, kwargs, size):
    """The row a call of one of the model's layer functions is reported under, for an input of `size`."""
    name = function.__name__
    if name == "self_attention":
        return "attention, window blocks" if args[3] else "attention, global blocks"
    if name == "conv2d":  # the decoder's direct convolutions; the backbone's sit inside residual_bottleneck
        return "ConvStream (stride-2 convs)" if kwargs.get("stride", 1) == 2 else "matting head"
    if name == "conv2d_upsampled":  # named by its level's size: the decoder may run in bands of rows
        scale = size[1] // (2 * args[1].shape[2])
        return f"fusion block at {size[0] // scale}x{size[1] // scale}"
    return {"patch_embed": "patch embedding", "absolute_positions": "absolute position embedding",
            "layer_norm": "block layer norms", "mlp": "MLP", "residual_bottleneck": "residual conv blocks"}[name]


MLP_PARTS = {"linear": "fc1 and fc2 products", "gelu": "fc1's bias and GELU",  # the layer functions mlp calls
             "add_residual": "fc2's bias and the residual"}


def timed(times, parts, threads, synchronize, size):
    """Wrap the model's layer functions so that each outermost call adds its time to `times`, and each call of
    MLP_PARTS within the MLP its time to `parts` and its thread to the set `threads`."""
    depth, in_mlp, lock = [0], [False], threading.Lock()

    def timed_call(function, args, kwargs, add):
        """function(*args, **kwargs), its time (on CuPy with the device synchronised around it) passed to add."""
        synchronize()
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            synchronize()
            add(time.perf_counter() - start)

    def wrap_part(function):
        def add(seconds):
            with lock:
                parts[MLP_PARTS[function.__name__]] += seconds
                threads.add(threading.get_ident())

        def part(*args, **kwargs):
            if not in_mlp[0]:  # the attention's output projection and residual
                return function(*args, **kwargs)
            return timed_call(function, args, kwargs, add)
        return part

    def marked_mlp(function):
        @functools.wraps(function)  # named mlp, for stage_name
        def mlp(*args, **kwargs):
            in_mlp[0] = True
            try:
                return function(*args, **kwargs)
            finally:
                in_mlp[0] = False
        return mlp

    def wrap(function):
        def stage(*args, **kwargs):
            if depth[0]:
                return function(*args, **kwargs)

            def add(seconds):
                times[stage_name(function, args, kwargs, size)] += seconds

            depth[0] += 1
            try:
                return timed_call(function, args, kwargs, add)
            finally:
                depth[0] -= 1
        return stage

    for name in MLP_PARTS:
        setattr(model, name, wrap_part(getattr(model, name)))
    model.mlp = marked_mlp(model.mlp)
    for name in ("patch_embed", "absolute_positions", "layer_norm", "self_attention", "mlp",
                 "residual_bottleneck", "conv2d", "conv2d_upsampled"):
        setattr(model, name, wrap(getattr(model, name)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small", choices=["small", "base"])
    parser.add_argument("--size", default="1024x1024", help="HxW, multiples of 16")
    parser.add_argument("--backend", default="numpy", choices=backend.BACKENDS)
    parser.add_argument("--precision", default="float32", choices=backend.PRECISIONS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    network = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS[args.model]),
                                                 backend_name=args.backend, precision=args.precision)
    synchronize = functools.partial(backend.synchronize, network.xp)
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, height, width)).astype(np.float32)
    network(pixels)
    synchronize()
    start, reports = time.perf_counter(), []  # one pass reporting progress, before any stage is wrapped
    network(pixels, progress=lambda fraction, stage: reports.append((stage, fraction, time.perf_counter() - start)))

    rounds = []
    times, parts, threads = defaultdict(float), defaultdict(float), set()
    timed(times, parts, threads, synchronize, (height, width))
    for _ in range(args.rounds):
        times.clear()
        parts.clear()
        start = time.perf_counter()
        network(pixels)
        synchronize()
        rounds.append((time.perf_counter() - start, dict(times), dict(parts)))
    total = statistics.median(seconds for seconds, _, _ in rounds)
    print(f"ViTMatte-{args.model[0].upper()} {args.size}, {args.backend}, {args.precision}: "
          f"{total:.4f} s per timed pass (median of {args.rounds})")
    print(backend.blas_summary(one_line=True) + "\n" if args.backend == "numpy" else "")
    medians = {stage: statistics.median(per_stage[stage] for _, per_stage, _ in rounds) for stage in rounds[0][1]}
    print("| stage | seconds | share |\n|---|---|---|")
    for stage, seconds in sorted(medians.items(), key=lambda item: -item[1]):
        print(f"| {stage} | {seconds:.4f} | {seconds / total:.1%} |")
    other = total - sum(medians.values())
    print(f"| everything else (position embeddings' add, hidden-state copies, sigmoid) | {other:.4f} "
          f"| {other / total:.1%} |")

    part_medians = {part: statistics.median(per_part[part] for _, _, per_part in rounds) for part in MLP_PARTS.values()}
    work = sum(part_medians.values())
    print(f"\nThe MLP's parts, each one's time summed over the {len(threads)} threads that ran its token chunks:\n")
    print("| part of the MLP | seconds | share of the MLP's work |\n|---|---|---|")
    for part, seconds in part_medians.items():
        print(f"| {part} | {seconds:.4f} | {seconds / work:.1%} |")

    elapsed = reports[-1][2]
    print(f"\nThe progress bar (work by model.stage_flops) against the clock, in one pass of {elapsed:.4f} s:\n")
    print("| after | share of FLOPs | share of time |\n|---|---|---|")
    for stage, fraction, seconds in reports:
        print(f"| {stage} | {fraction:.1%} | {seconds / elapsed:.1%} |")
    gap = max(abs(fraction - seconds / elapsed) for _, fraction, seconds in reports)
    print(f"\nLargest difference between the bar and the clock: {gap:.1%} of the pass.")


if __name__ == "__main__":
    main()
