"""Each 3x3 convolution of minimatte's forward pass, timed as an im2col GEMM and with Winograd's F(2x2, 3x3).

    python benchmarks/convs.py --model small --size 640x960

Records the 3x3 stride-1 convolutions one float32 forward pass at the size makes (the model built with the
spec's deterministic random weights; a convolution run in bands counts once per band), then times each shape
both ways on random inputs, as the forward pass runs it (BLAS single-threaded, minimatte's threads on the
pieces), best of --rounds. Prints each shape's times, which of the two the model uses for it
(`conv.conv3x3_params`) and, summed over the pass, the time of each choice: what picking by channel counts
gains over either method alone, on this machine.
"""
import argparse
import os
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import minimatte  # noqa: E402
from helpers import deterministic_state  # noqa: E402
from minimatte import backend, model  # noqa: E402
from minimatte.kernels import conv  # noqa: E402


def recorded_convs(network, height, width):
    """Counter of (input channels per input, H, W, C_out, padding) for each 3x3 stride-1 conv2d call of a pass."""
    calls = Counter()
    original = conv.conv2d

    def recording(inputs, p, stride=1, relu=False, padding=None):
        inputs_ = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        if "winograd_weight" in p:
            c_out, three_by_three = p["winograd_weight"].shape[2], True
        else:
            c_out, three_by_three = p["im2col_weight"].shape[3], p["im2col_weight"].shape[:2] == (3, 3)
        if stride == 1 and three_by_three:
            calls[(tuple(x.shape[3] for x in inputs_), *inputs_[0].shape[1:3], c_out, padding)] += 1
        return original(inputs, p, stride=stride, relu=relu, padding=padding)

    model.conv2d = conv.conv2d = recording
    try:
        network(np.random.default_rng(0).uniform(-1, 1, (1, 4, height, width)).astype(np.float32))
    finally:
        model.conv2d = conv.conv2d = original
    return calls


def best_time(x, p, padding, rounds):
    times = []
    with backend.cpu_threads(np):
        for _ in range(rounds):
            start = time.perf_counter()
            conv.conv2d(x, p, padding=padding)
            times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small", choices=["small", "base"])
    parser.add_argument("--size", default="640x960", help="HxW, multiples of 16")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    network = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS[args.model]))
    rng = np.random.default_rng(0)
    totals = Counter()
    print(f"ViTMatte-{args.model[0].upper()} {args.size}: 3x3 convolutions, best of {args.rounds} (ms)")
    print(backend.blas_summary(one_line=True) + "\n")
    print("| channels in -> out | input H x W | calls | im2col | Winograd | Winograd / im2col | model uses |")
    print("|---|---|---|---|---|---|---|")
    for (channels, h, w, c_out, padding), calls in recorded_convs(network, height, width).items():
        x = tuple(rng.standard_normal((1, h, w, c), dtype=np.float32) for c in channels)
        weight = rng.standard_normal((c_out, sum(channels), 3, 3), dtype=np.float32)
        im2col = best_time(x, {"im2col_weight": conv.im2col_weight(weight)}, padding, args.rounds)
        winograd = best_time(x, {"winograd_weight": conv.winograd_weight(weight)}, padding, args.rounds)
        chosen = "Winograd" if "winograd_weight" in conv.conv3x3_params(weight, np.float32) else "im2col"
        totals.update({"im2col": calls * im2col, "Winograd": calls * winograd,
                       "as chosen": calls * (winograd if chosen == "Winograd" else im2col)})
        print(f"| {'+'.join(map(str, channels))} -> {c_out} | {h}x{w} | {calls} | {1e3 * im2col:.1f} | "
              f"{1e3 * winograd:.1f} | {winograd / im2col:.2f} | {chosen} |")
    print(f"\nSummed over the pass: every conv an im2col GEMM {totals['im2col']:.3f} s, every conv with Winograd "
          f"{totals['Winograd']:.3f} s, as the model chooses {totals['as chosen']:.3f} s.")


if __name__ == "__main__":
    main()
