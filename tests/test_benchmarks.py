"""The benchmark scripts still run: stages.py finds every stage of the network it wraps (it reaches into
minimatte.model) and the progress reports, footprint.py counts the right distributions, cpu.py tabulates its
engines, batch.py mattes a folder, photo.py cuts a photo out both ways (those four name the kernels of NumPy's
BLAS, on which their times depend), gpu.py tabulates, gpu_checks.sh logs its steps, cupy_operations.py counts,
parity.py compares a checkpoint and has the pixel values of transformers' torchvision backend, as that backend
gives them where torchvision is installed."""
import importlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minimatte
from cuda_emulation import COMPILER
from helpers import ROOT
from reference import require, torchvision

STAGES = ["patch embedding", "absolute position embedding", "block layer norms", "attention, window blocks",
          "attention, global blocks", "MLP", "residual conv blocks", "ConvStream (stride-2 convs)",
          "fusion block at 8x12", "fusion block at 16x24", "fusion block at 32x48", "fusion block at 64x96",
          "matting head"]


def test_stage_profile_covers_the_network():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stages.py"), "--size", "64x96",
                             "--rounds", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1].startswith("NumPy's BLAS: ")  # the kernels its times depend on
    rows = dict(re.findall(r"^\| ([^|]+?) \| [0-9.]+ \| (-?[0-9.]+)% \|$", result.stdout, re.MULTILINE))
    assert set(STAGES) <= set(rows), result.stdout
    assert all(0 <= float(rows[stage]) <= 100 for stage in STAGES)
    parts = ["fc1 and fc2 products", "fc1's bias and GELU", "fc2's bias and the residual"]  # the MLP's work
    assert all(float(rows[part]) > 0 for part in parts) and abs(sum(float(rows[part]) for part in parts) - 100) < 0.2
    bar = re.findall(r"^\| ([^|]+?) \| ([0-9.]+)% \| ([0-9.]+)% \|$", result.stdout, re.MULTILINE)
    assert [stage for stage, _, _ in bar][-2:] == ["fusion 4/4", "head"] and bar[-1][1:] == ("100.0", "100.0")


def _benchmark(name):
    """The module of benchmarks/NAME.py (which imports its neighbours as a script does)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_footprint_counts_what_minimatte_installs():
    """benchmarks/footprint.py sums minimatte's requirements, recursively, and leaves out its extras (torch is in
    [reference])."""
    footprint = _benchmark("footprint")
    sizes, missing = footprint.installed_size(["minimatte"])
    assert {"minimatte", "numpy", "pillow", "safetensors"} <= set(sizes) and not missing
    assert "torch" not in sizes and "scipy" not in sizes
    assert sizes["numpy"] > 1e6
    assert footprint.installed_size(["no-such-distribution"]) == ({}, ["no-such-distribution"])


def test_cpu_benchmark_names_the_blas_kernels_and_tabulates_its_engines():
    """benchmarks/cpu.py runs each engine in a child and tabulates it, under a line that says which kernels the
    children's BLAS runs on; minimatte-avx2's child runs OpenBLAS's AVX2 ones."""
    command = [sys.executable, str(ROOT / "benchmarks" / "cpu.py"), "--sizes", "64x96", "--rounds", "1",
               "--engines", "minimatte", "minimatte-avx2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    blas, header, _, *rows = result.stdout.splitlines()
    assert blas.startswith("NumPy's BLAS: ") and header.startswith("| model | size | engine |")
    assert [row.split(" | ")[2] for row in rows] == ["minimatte", "minimatte-avx2"], result.stdout
    code = "import json; from minimatte import backend; print(json.dumps(backend._openblas_build()))"
    build, error = _benchmark("cpu").run_child(code, 1, {"OPENBLAS_CORETYPE": "Haswell"})
    assert error is None and build[1] in ("Haswell", "?")  # "?": another BLAS, or an OpenBLAS that does not say


def test_batch_benchmark_mattes_a_folder(tmp_path):
    """benchmarks/batch.py runs each engine over a folder (here two small images) and tabulates it."""
    from PIL import Image
    (tmp_path / "images").mkdir()
    (tmp_path / "trimaps").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
        Image.fromarray(rng.choice(np.array([0, 128, 255], np.uint8), (48, 80))).save(tmp_path / "trimaps" / name)
    command = [sys.executable, str(ROOT / "benchmarks" / "batch.py"), "--images", str(tmp_path / "images"),
               "--trimaps", str(tmp_path / "trimaps"), "--engines", "minimatte", "minimatte-kept"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = re.findall(r"^\| (minimatte[-a-z]*) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9]+) \|", result.stdout,
                      re.MULTILINE)
    assert [row[0] for row in rows] == ["minimatte", "minimatte-kept"], result.stdout
    assert result.stdout.startswith("2 images from") and result.stdout.splitlines()[1].startswith("NumPy's BLAS: ")


def test_photo_benchmark_times_both_pipelines():
    """benchmarks/photo.py cuts a photo (here a small one) out with minimatte and with the references, stage by
    stage, each in a process of its own, and gives minimatte's ratios to the references."""
    require("torch", "transformers", "pymatting")
    command = [sys.executable, str(ROOT / "benchmarks" / "photo.py"), "--size", "200x150", "--max-size", "64",
               "--rounds", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1].startswith("NumPy's BLAS: ")
    rows = {engine: [float(value) for value in values.split(" | ")] for engine, values in re.findall(
        r"^\| ([-a-z ]+) \| ([0-9. |]+) \|$", result.stdout.replace("x |", " |"), re.MULTILINE)}  # ratios: 0.59x
    assert list(rows) == ["minimatte", "minimatte-kept", "references", "minimatte vs references",
                          "minimatte-kept vs references"], result.stdout
    mine, _, theirs, ratios, _ = rows.values()
    assert sum(mine[:3]) == pytest.approx(mine[3], abs=0.02) and min(mine + theirs) >= 0
    assert mine[3] > 0 and theirs[3] > 0
    # ratios of the unrounded figures, printed to 0.01 (x): the total (0.1 s or so here) a few percent off
    assert ratios[4] == pytest.approx(mine[4] / theirs[4], abs=0.006) and ratios[3] == pytest.approx(
        mine[3] / theirs[3], rel=0.25)


def test_upsampling_benchmark_scores_each_enlargement():
    """benchmarks/upsampling.py scores max_size's enlargement and PIL's on the alphamatting ground truths: a row
    of seven figures per method and reduction, minimatte's SAD below bilinear's."""
    command = [sys.executable, str(ROOT / "benchmarks" / "upsampling.py"), "--factors", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {method: [float(value) for value in re.findall(r"[0-9.]+", values)] for method, values in re.findall(
        r"^\| 1/4 \| ([A-Za-z ]+) \| (.+) \|$", result.stdout, re.MULTILINE)}
    assert list(rows) == ["minimatte", "PIL bilinear", "PIL Lanczos"], result.stdout
    assert all(len(figures) == 7 for figures in rows.values())  # SAD, MSE, Grad, Conn, whole SAD, %, seconds
    assert rows["minimatte"][0] < rows["PIL bilinear"][0]


def test_benchmark_children_leave_the_kernels_source_folder_alone():
    """Run from the repository root, `python -c` finds the kernels/ source folder as a top-level package `kernels`,
    in place of the PyPI package that transformers imports from 5.25 on (which then fails to import): the
    benchmarks' child processes leave the working directory off sys.path."""
    code = "import importlib.util; spec = importlib.util.find_spec('kernels'); print(spec and spec.origin)"
    result = subprocess.run(_benchmark("cpu").python_command(code), cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() != str(ROOT / "kernels" / "__init__.py")


def test_gpu_benchmark_tabulates_its_children(tmp_path, monkeypatch, capsys):
    """benchmarks/gpu.py's table from its child processes' measurements (here made up: CI has no GPU), with a
    failed child's row saying so, and counted (gpu.py then exits with an error, and gpu_checks.sh counts it)."""
    import minimatte
    from minimatte.model import stage_flops
    gpu = _benchmark("gpu")
    measured = {("minimatte", "float32"): ([0.3, 0.1, 0.2], 450.0, 0.5),  # (seconds, peak, pool growth)
                ("torch", "float32"): ([0.4, 0.4, 0.5], 800.0, 0),
                ("minimatte", "float16"): ([0.1, 0.1, 0.1], 200.0, 0)}

    def child(engine, model_name, size, precision, warmups, rounds, alphas_path):
        if (engine, precision) not in measured:
            return None, "failed (RuntimeError: out of memory)"
        np.save(alphas_path, np.full((1, 1) + size, 0.5 + 0.01 * (engine == "torch") + 0.1 * (precision == "float16")))
        seconds, peak, growth = measured[engine, precision]
        return {"seconds": seconds, "peak": peak, "growth": growth}, None

    monkeypatch.setattr(gpu, "child", child)
    args = gpu.argparse.Namespace(engines=["minimatte", "torch"], precisions=["float32", "float16"], warmups=1,
                                  rounds=3)
    assert gpu.compare(args, "small", "64x96", (64, 96), str(tmp_path)) == 1  # rows that failed
    lines = capsys.readouterr().out.splitlines()
    assert all(line.count("|") == 13 for line in lines)  # 12 cells in each row, the failed one's too
    rows = [line.strip("| ").split(" | ") for line in lines]
    assert [row[3] for row in rows] == ["minimatte", "torch", "minimatte", "torch"]
    tflops = sum(stage_flops(minimatte.PRESETS["small"], 64, 96).values()) / 0.2 / 1e12
    assert rows[0][4:] == ["0.2000", "0.1000, 0.3000", f"{tflops:.1f}", "450", "0", "0.50x", "0.56x",
                           "1.00e-02 (vs torch float32)"]
    assert rows[2][-1] == "1.00e-01 (vs minimatte float32)" and rows[3][4] == "failed (RuntimeError: out of memory)"


def test_gpu_checks_log_each_step_and_count_those_that_failed(tmp_path):
    """benchmarks/gpu_checks.sh runs the steps named, each into its log (a relative LOG_DIR is the caller's) with
    its outcome, and exits with the number that failed: here the stages step, which asks for CuPy where there is
    none. An unknown step is refused before anything runs."""
    from minimatte import backend
    try:
        backend.resolve("cupy")
        pytest.skip("CuPy and a GPU are here: the stages step would pass")
    except RuntimeError:
        pass
    script = str(ROOT / "benchmarks" / "gpu_checks.sh")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])  # its python3
    refused = subprocess.run(["bash", script, "logs", "stages", "speeds"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "unknown step 'speeds'" in refused.stdout
    assert not (tmp_path / "logs").exists()
    result = subprocess.run(["bash", script, "logs", "stages"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-2000:]
    log = (tmp_path / "logs" / "stages.log").read_text()
    assert log.startswith("== stages (at most 50 s): python3 benchmarks/stages.py --backend cupy")
    assert "backend: 'cupy' needs CuPy" in log and re.search(r"^== stages: exit status 1 after \d+ s$", log, re.M)
    assert result.stdout.endswith("== 1 of the steps failed\n")


def test_cupy_operations_counts_a_pass():
    """benchmarks/cupy_operations.py counts a CuPy pass's operations on the CPU (cupy_stand_in; its CUDA kernels need
    a C++ compiler), and finds no host synchronisation in it."""
    if COMPILER is None:
        pytest.skip("the CUDA emulation needs a C++ compiler (g++)")
    command = [sys.executable, str(ROOT / "benchmarks" / "cupy_operations.py"), "--sizes", "64x96", "--precisions",
               "float16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = re.findall(r"^\| small \| 64x96 \| float16 \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| .+ \|$", result.stdout,
                      re.MULTILINE)
    assert len(rows) == 1, result.stdout
    operations, products, kernels, syncs = map(int, rows[0])
    assert operations > products + kernels > 0 and kernels > 0 and syncs == 0


def test_parity_compares_a_checkpoint_on_images(tmp_path, det_state):
    """benchmarks/parity.py --model: a checkpoint (here a converted file, without the BatchNorm counters) against
    transformers holding its weights and settings, on images given in pairs."""
    require("torch", "transformers")
    from safetensors.numpy import save_file

    save_file({k: v for k, v in det_state("small").items() if "num_batches" not in k}, str(tmp_path / "det"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    Image.fromarray(rng.choice(np.array([0, 128, 255], np.uint8), (70, 90))).save(tmp_path / "trimap.png")
    command = [sys.executable, str(ROOT / "benchmarks" / "parity.py"), "--model", str(tmp_path / "det"), "--images",
               str(tmp_path / "image.png"), str(tmp_path / "trimap.png")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = re.findall(r"^\| image.png \| 70x90 \| (\S+) \| (\S+) \| (\d+) of 6300 \| [0-9.]+ s \| [0-9.]+ s \|$",
                     result.stdout, re.MULTILINE)
    assert len(row) == 1, result.stdout
    assert float(row[0][0]) == 0 and float(row[0][1]) <= 1e-4 and int(row[0][2]) <= 10


def test_parity_has_the_torchvision_backends_pixel_values():
    """parity.py's torchvision_formulas, transformers' default processor where torchvision is installed, are the
    PIL backend's pixel values (minimatte's) within float32 rounding, padded alike: a sum in another order, not
    another preprocessing."""
    require("torch")
    rng = np.random.default_rng(5)
    image, trimap = rng.integers(0, 256, (37, 70, 3), dtype=np.uint8), rng.integers(0, 256, (37, 70), dtype=np.uint8)
    ours = minimatte.preprocess(image, trimap).pixel_values
    theirs = _benchmark("parity").torchvision_formulas(image, trimap)
    assert theirs.shape == ours.shape == (1, 4, 64, 96) and theirs.dtype == np.float32
    assert 0 < np.abs(theirs - ours).max() <= 6e-8


def test_torchvision_formulas_are_the_torchvision_backends():
    """Where torchvision is installed, transformers' default processor is its torchvision backend, and
    torchvision_formulas give its pixel values."""
    torchvision()
    import transformers
    processor = transformers.VitMatteImageProcessor()
    assert not isinstance(processor, transformers.VitMatteImageProcessorPil)
    rng = np.random.default_rng(6)
    image, trimap = rng.integers(0, 256, (37, 70, 3), dtype=np.uint8), rng.integers(0, 256, (37, 70), dtype=np.uint8)
    image[:16, :16], trimap[:16, :16] = np.arange(256).reshape(16, 16, 1), np.arange(256).reshape(16, 16)
    theirs = processor(images=image, trimaps=trimap, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(_benchmark("parity").torchvision_formulas(image, trimap), theirs)
