"""The built distribution ships the kernels (and their CUDA sources) inside the minimatte namespace, never as
top-level `kernels`."""
import subprocess
import sys
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
