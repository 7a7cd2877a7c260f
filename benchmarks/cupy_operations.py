"""The operations one forward pass on CuPy asks of a GPU, counted on the CPU: no GPU needed.

    python benchmarks/cupy_operations.py --models small --sizes 1024x1024 --precisions float32 float16

Each CuPy operation costs the host a launch (several to tens of microseconds), so where a pass gives the GPU
little work (1024x1024) their count bounds its time. The model (the spec's deterministic weights) runs its CuPy
path on tests/cupy_stand_in.py, the CUDA kernels and cuBLAS calls emulated on the CPU (so a 1024x1024 pass takes
a few minutes), once to plan its products and make its per-size tables, then once counted. Per row: the
operations of that pass, the cuBLAS products and CUDA kernels among them, the host synchronisations (where the
host would wait for the GPU; none expected) and the most frequent other operations.
"""
import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import cupy_stand_in  # noqa: E402
import minimatte  # noqa: E402
from helpers import deterministic_state  # noqa: E402


def counted_pass(model_name, height, width, precision):
    """cupy_stand_in's Record of the second forward pass at (height, width)."""
    with pytest.MonkeyPatch.context() as patch:
        cupy_stand_in.emulated_backend(patch)
        model = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS[model_name]),
                                                   backend_name="cupy", precision=precision)
        pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, height, width)).astype(np.float32)
        pixels = cupy_stand_in.asarray(pixels)
        model(pixels)
        with cupy_stand_in.recording() as record:
            model(pixels)
    return record


def row(model_name, size, precision, record):
    operations = record.operations
    kernels = sum(n for kind, n in operations.items() if kind.startswith("CUDA kernel"))
    others = [f"{kind} {n}" for kind, n in operations.most_common()
              if kind != "cuBLAS product" and not kind.startswith("CUDA kernel")][:5]
    return (f"| {model_name} | {size} | {precision} | {sum(operations.values())} | {operations['cuBLAS product']} | "
            f"{kernels} | {len(record.syncs)} | {', '.join(others)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["small"], choices=["small", "base"])
    parser.add_argument("--sizes", nargs="+", default=["1024x1024"], help="HxW, multiples of 16")
    parser.add_argument("--precisions", nargs="+", default=["float32", "float16"], choices=["float32", "float16"])
    args = parser.parse_args()
    print("| model | size | precision | operations | cuBLAS products | CUDA kernels | host syncs "
          "| most frequent other |")
    print("|---|---|---|---|---|---|---|---|")
    for model_name in args.models:
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            for precision in args.precisions:
                record = counted_pass(model_name, height, width, precision)
                print(row(model_name, size, precision, record), flush=True)
                for sync in record.syncs:
                    print(f"  host sync: {sync}")


if __name__ == "__main__":
    main()
