"""minimatte vs transformers (torch eager) and, where installed, ONNX Runtime on the CPU: time and peak
memory, side by side in one run.

    python benchmarks/cpu.py --models small --sizes 640x960 1024x1024 --rounds 3

Each measurement is a fresh process (so its peak RSS is that engine's alone) that builds the model with
the spec's deterministic random weights, warms up on a 64x64 input, then times one forward pass at the
requested size. Engines alternate within each round; the table reports medians over rounds and the ratios
to torch. fp32 throughout; threads = --threads for every engine. ONNX Runtime (`pip install onnxruntime
onnx`) runs the transformers model exported once per model by torch.onnx (height and width dynamic) into a
temporary file, outside the timed processes. The engine minimatte-im2col (only when asked for) is minimatte
with every 3x3 convolution an im2col GEMM, none with Winograd's F(2x2, 3x3), to measure what that gains;
minimatte-huge-pages is minimatte with NumPy advising huge pages in the pass too (no backend.small_pages), and
minimatte-kept runs after minimatte.keep_freed_memory(), as the command line does; minimatte-blas-threads leaves
BLAS's threads alone and runs the kernels' pieces one after another, as where minimatte cannot steer NumPy's BLAS
(backend.cpu_threads: MKL, Accelerate, or an OpenBLAS it does not find); minimatte-avx2 runs NumPy's OpenBLAS on
its AVX2 kernels (OPENBLAS_CORETYPE=Haswell) whatever the CPU has. The line above the table names the kernels
the other engines' NumPy runs on (backend.blas_summary, as `minimatte --version` prints it); batch.py and
photo.py print it too.
"""
import argparse
import json
import os
import shutil
import statistics
import importlib.util
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ("minimatte", "torch", "onnxruntime", "minimatte-im2col", "minimatte-huge-pages", "minimatte-kept",
           "minimatte-blas-threads", "minimatte-avx2")
ONNX_DIR = None  # a temporary folder for the exported models, set by main and passed to the children


def onnx_path(model_name):
    return os.path.join(ONNX_DIR, f"vitmatte_{model_name}.onnx")


def export_onnx(model_name):
    """Runs inside a child process: the transformers model with the deterministic weights, as ONNX."""
    import torch

    import minimatte
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from helpers import deterministic_state
    from reference import hf_model

    model = hf_model(minimatte.PRESETS[model_name], deterministic_state(minimatte.PRESETS[model_name]))
    torch.onnx.export(model, (torch.zeros(1, 4, 128, 160),), onnx_path(model_name), dynamo=False,
                      input_names=["pixel_values"], output_names=["alphas"], opset_version=17,
                      dynamic_axes={"pixel_values": {2: "height", 3: "width"}})


def measure(engine, model_name, height, width, threads):
    """Runs inside the child process: returns seconds and peak RSS (MB) of one forward pass."""
    import resource

    import numpy as np

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import minimatte
    from helpers import deterministic_state

    config = minimatte.PRESETS[model_name]
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, height, width)).astype(np.float32)
    warm = pixels[:, :, :64, :64].copy()
    if engine == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(onnx_path(model_name), options, providers=["CPUExecutionProvider"])

        def run(x):
            return session.run(None, {"pixel_values": x})[0]
    elif engine.startswith("minimatte"):
        if engine == "minimatte-im2col":
            from minimatte.kernels import conv
            conv.WINOGRAD_MIN_CHANNELS = sys.maxsize  # no conv has that many channels
        if engine == "minimatte-huge-pages":
            minimatte.backend._set_madvise_hugepage = None  # small_pages then leaves NumPy's setting alone
        if engine == "minimatte-kept":
            minimatte.keep_freed_memory()
        if engine == "minimatte-blas-threads":
            minimatte.backend._BLAS = None  # cpu_threads then changes nothing
        state = deterministic_state(config)
        model = minimatte.VitMatte.from_state_dict(state)
        del state

        def run(x):
            return model(x).alphas
    else:
        import torch

        from reference import hf_model
        torch.set_num_threads(threads)
        state = deterministic_state(config)
        model = hf_model(config, state)
        del state

        def run(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).alphas
    run(warm)
    start = time.perf_counter()
    run(pixels)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(engine, model_name, size, threads):
    code = (f"import sys, json; sys.path.insert(0, {HERE!r}); import cpu; cpu.ONNX_DIR = {ONNX_DIR!r}; "
            f"print(json.dumps(cpu.measure({engine!r}, {model_name!r}, {size[0]}, {size[1]}, {threads})))")
    return run_child(code, threads, {"OPENBLAS_CORETYPE": "Haswell"} if engine == "minimatte-avx2" else {})


def python_command(code):
    """The command that runs `code` in a fresh Python without the working directory on sys.path (where `python -c`
    puts it): from the repository root, its kernels/ source folder would be imported in place of the unrelated
    PyPI package `kernels`, which transformers imports (from 5.25 on)."""
    return [sys.executable, "-c", "import sys; sys.path[:] = [entry for entry in sys.path if entry]; " + code]


def run_child(code, threads, environment=()):
    """Runs `code`, which prints a JSON result last, in a fresh process with every engine's threads set to
    `threads` and the variables `environment` set: (the result, None), or (None, why it failed)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), **dict(environment))
    result = subprocess.run(python_command(code), env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"failed ({'out of memory' if result.returncode in (-9, 137) else tail})"
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def measured_in_child(module, engine, *arguments, threads):
    """The result of benchmarks/MODULE.py's measure(engine, *arguments), which returns JSON, in a fresh process
    (run_child); a failed one ends the benchmark with its error."""
    called = ", ".join(map(repr, (engine, *arguments)))
    code = (f"import sys, json; sys.path.insert(0, {HERE!r}); import {module}; "
            f"print(json.dumps({module}.measure({called})))")
    result, error = run_child(code, threads)
    if error:
        raise SystemExit(f"{module}.py: {engine} {error}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["small"], choices=["small", "base"])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "640x960", "1024x1024"],
                        help="HxW, multiples of 32 (2048x2048 too)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES,
                        default=[e for e in ENGINES[:3]
                                 if e != "onnxruntime" or importlib.util.find_spec("onnxruntime")],
                        help="default: minimatte, torch and, where installed, onnxruntime")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    global ONNX_DIR
    ONNX_DIR = tempfile.mkdtemp(prefix="minimatte-bench-")
    try:
        compare(args)
    finally:
        shutil.rmtree(ONNX_DIR)


def blas_in_children():
    """What NumPy's BLAS is in the children, on one line (backend.blas_summary): the kernels it runs on decide much
    of minimatte's time (see the README's Speed and memory)."""
    code = "from minimatte import backend; print(backend.blas_summary(one_line=True))"
    return subprocess.run(python_command(code), capture_output=True, text=True, check=True).stdout.strip()


def compare(args):
    print(blas_in_children())
    print("| model | size | engine | median time (s) | peak RSS (MB) | time vs torch | RSS vs torch |")
    print("|---|---|---|---|---|---|---|")
    for model_name in args.models:
        if "onnxruntime" in args.engines:
            code = f"import sys; sys.path.insert(0, {HERE!r}); import cpu; cpu.ONNX_DIR = {ONNX_DIR!r}; " \
                   f"cpu.export_onnx({model_name!r})"
            subprocess.run(python_command(code), check=True, capture_output=True)
        for size_text in args.sizes:
            size = tuple(int(v) for v in size_text.split("x"))
            runs = {e: [] for e in args.engines}
            errors = {}
            for _ in range(args.rounds):
                for engine in args.engines:
                    if engine in errors:
                        continue
                    result, error = child(engine, model_name, size, args.threads)
                    if error:
                        errors[engine] = error
                    else:
                        runs[engine].append(result)
            summary = {e: (statistics.median(r[0] for r in v), max(r[1] for r in v)) for e, v in runs.items() if v}
            for engine in args.engines:
                if engine not in summary:
                    print(f"| {model_name} | {size_text} | {engine} | {errors[engine]} | | | |")
                    continue
                seconds, rss = summary[engine]
                ratio = ""
                if engine != "torch" and "torch" in summary:
                    ratio = f"{seconds / summary['torch'][0]:.2f}x | {rss / summary['torch'][1]:.2f}x"
                print(f"| {model_name} | {size_text} | {engine} | {seconds:.2f} | {rss:.0f} | {ratio or ' |'} |",
                      flush=True)


if __name__ == "__main__":
    main()
