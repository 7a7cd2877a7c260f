"""What minimatte and the reference (transformers on torch) take to install and to start: the installed size
of each with everything it requires, the time a fresh process takes to import it, and to import it and load a
checkpoint, in one run.

    python benchmarks/footprint.py

Sizes are the files each distribution installed in this environment (importlib.metadata's records), summed
over the distribution and, recursively, the distributions it requires that are installed here (extras left
out; a requirement shared by both sides counts on each). Times are the median of 5 fresh processes (`python -c
"import ..."`), the interpreter's own start subtracted: what a program that starts afresh for each image pays
before its first pixel. The checkpoint is ViTMatte-S with the spec's deterministic weights, written once into a
temporary folder by transformers' save_pretrained (config.json, model.safetensors), which both sides load. The
reference's side is measured only where it is installed (`pip install -e '.[reference]'`).
"""
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from cpu import python_command  # this folder: first on sys.path for a script

HERE = os.path.dirname(os.path.abspath(__file__))
SIDES = {  # what a user installs, what a program imports to run the model, and how it loads a checkpoint folder
    "minimatte": (["minimatte"], "import minimatte", "minimatte.load({folder!r})"),
    "transformers + torch": (["transformers", "torch"], "from transformers import VitMatteForImageMatting",
                             "VitMatteForImageMatting.from_pretrained({folder!r})"),
}


def requirement_names(distribution):
    """The names of the distributions `distribution` requires, extras left out."""
    names = []
    for requirement in distribution.requires or ():
        name, _, marker = requirement.partition(";")
        if "extra" not in marker:
            names.append(re.match(r"[A-Za-z0-9._-]+", name.strip()).group(0))
    return names


def installed_size(names):
    """({distribution name: bytes}, names not installed) for `names` and all they require, recursively."""
    sizes, missing, pending = {}, [], list(names)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in sizes:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        sizes[key] = sum(path.stat().st_size for path in map(distribution.locate_file, distribution.files or ())
                         if path.is_file())
        pending += requirement_names(distribution)
    return sizes, missing


def save_checkpoint(folder):
    """ViTMatte-S with the spec's deterministic weights, as transformers' save_pretrained writes it."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import minimatte
    from helpers import deterministic_state
    from reference import hf_model

    config = minimatte.PRESETS["small"]
    hf_model(config, deterministic_state(config)).save_pretrained(folder)


def start_seconds(statement):
    """Median wall time of a fresh process running `statement`, less that of an empty one."""
    def median(code):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(python_command(code), check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    return median(statement) - median("pass")


def main():
    print("| side | installed size (MB) | distributions | largest | import (s) | import and load ViTMatte-S (s) |")
    print("|---|---|---|---|---|---|")
    reference = all(importlib.util.find_spec(name) for name in ("transformers", "torch"))
    with tempfile.TemporaryDirectory(prefix="minimatte-footprint-") as folder:
        if reference:
            save_checkpoint(folder)
        for side, (names, statement, load) in SIDES.items():
            sizes, missing = installed_size(names)
            if any(name in missing for name in names):
                print(f"| {side} | not installed | | | | |")
                continue
            largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
            largest = ", ".join(f"{name} {size / 1e6:.0f}" for name, size in largest)
            total, seconds = sum(sizes.values()) / 1e6, start_seconds(statement)
            loaded = f"{start_seconds(statement + '; ' + load.format(folder=folder)):.2f}" if reference else \
                "needs transformers to write the checkpoint"
            print(f"| {side} | {total:.0f} | {len(sizes)} | {largest} | {seconds:.2f} | {loaded} |", flush=True)


if __name__ == "__main__":
    main()
