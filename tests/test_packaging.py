"""The built distribution ships the kernels (and their CUDA sources) inside the minimatte namespace, never as
top-level `kernels`."""
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import minimatte
from helpers import ROOT


def test_wheel_has_no_top_level_kernels(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed: {result.stderr[-2000:]}")
    wheel, = tmp_path.glob("minimatte-*.whl")
    assert wheel.name.startswith(f"minimatte-{minimatte.__version__}-")  # one version, minimatte.__version__
    names = zipfile.ZipFile(wheel).namelist()
    assert "minimatte/kernels/attention.py" in names and "minimatte/kernels/conv.py" in names
    cuda_sources = ("attention.cu", "conv.cu", "nn.cu", "foreground.cu", "common.cuh", "device.cuh")
    assert {f"minimatte/kernels/cuda/{f}" for f in cuda_sources} <= set(names)
    assert not [n for n in names if n.startswith("kernels/")]
    licenses = [n for n in names if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
    assert [zipfile.ZipFile(wheel).read(n) for n in licenses] == [(ROOT / "LICENSE").read_bytes()]  # MIT asks for it
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {"License: MIT", "License-Expression: MIT"} & set(metadata.splitlines())
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["minimatte"]


def test_source_distribution_holds_the_whole_suite(tmp_path):
    """An sdist is what packagers build and test from: the suite's helpers (conftest.py, helpers.py, the CUDA
    emulation) and the benchmarks that test_benchmarks.py imports come with its tests, not only test_*.py."""
    # From a copy without the checkout's egg-info: setuptools adds the files listed in its SOURCES.txt (an
    # editable install's) to the sdist, which would hide what MANIFEST.in leaves out.
    source = tmp_path / "source"
    skipped = shutil.ignore_patterns(".git", ".venv", "venv", "*.egg-info", "build", "dist", "__pycache__",
                                     ".pytest_cache", "*.safetensors", "*.pth", "*.bin", "*.ckpt")
    shutil.copytree(ROOT, source, ignore=skipped)
    build = ("import sys; sys.path[:] = [e for e in sys.path if e]; from setuptools import build_meta; "
             f"print(build_meta.build_sdist({str(tmp_path)!r}))")
    result = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the sdist failed: {result.stderr[-2000:]}")
    archive = tmp_path / result.stdout.split()[-1]
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    wanted = {str(path.relative_to(ROOT)) for folder in ("tests", "benchmarks", "kernels")
              for path in (ROOT / folder).rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    assert wanted - names == set()
    assert {"LICENSE", "README.md", "setup.cfg", "pyproject.toml"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
