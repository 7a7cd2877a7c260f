"""What minimatte and the reference (transformers on torch) take to install and to start: the installed size
of each with everything it requires, and the time a fresh process takes to import it, in one run.

    python benchmarks/footprint.py

Sizes are the files each distribution installed in this environment (importlib.metadata's records), summed
over the distribution and, recursively, the distributions it requires that are installed here (extras left
out; a requirement shared by both sides counts on each). Import times are the median of 5 fresh processes
(`python -c "import ..."`), the interpreter's own start subtracted. The reference's side is measured only where
it is installed (`pip install -e '.[reference]'`).
"""
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata

SIDES = {  # what a user installs, and what a program imports to run the model
    "minimatte": (["minimatte"], "import minimatte"),
    "transformers + torch": (["transformers", "torch"], "from transformers import VitMatteForImageMatting"),
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


def import_seconds(statement):
    """Median wall time of a fresh process running `statement`, less that of an empty one."""
    def median(code):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    return median(statement) - median("pass")


def main():
    print("| side | installed size (MB) | distributions | largest | import time (s) |")
    print("|---|---|---|---|---|")
    for side, (names, statement) in SIDES.items():
        sizes, missing = installed_size(names)
        if any(name in missing for name in names):
            print(f"| {side} | not installed | | | |")
            continue
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
        largest = ", ".join(f"{name} {size / 1e6:.0f}" for name, size in largest)
        total, seconds = sum(sizes.values()) / 1e6, import_seconds(statement)
        print(f"| {side} | {total:.0f} | {len(sizes)} | {largest} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
