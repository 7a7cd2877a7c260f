import functools
import os
import sys
from pathlib import Path

import pytest

# `python -m pytest` puts the working directory, the repository root, first on sys.path. There the source folder
# kernels/ (installed as minimatte.kernels) would shadow the PyPI package `kernels`, which transformers requires
# from 5.25 on and imports: the tests import minimatte from its installation instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [entry for entry in sys.path if Path(os.path.abspath(entry or ".")) != ROOT]

import minimatte  # noqa: E402
from helpers import deterministic_state  # noqa: E402
from reference import hf_model  # noqa: E402

if os.environ.get("MINIMATTE_GPU_DRY_RUN") == "1":  # tests/test_gpu.py on the CPU (see cupy_stand_in)
    import cupy_stand_in
    cupy_stand_in.emulated_backend(pytest.MonkeyPatch())


@functools.lru_cache(maxsize=None)
def _state(name):
    return deterministic_state(minimatte.PRESETS[name])


@functools.lru_cache(maxsize=None)
def _model(name):
    return minimatte.VitMatte.from_state_dict(_state(name))


@functools.lru_cache(maxsize=None)
def _reference_model(name):
    return hf_model(minimatte.PRESETS[name], _state(name))


@pytest.fixture(params=["small", "base"])
def preset(request):
    return request.param


@pytest.fixture
def det_state():
    return _state


@pytest.fixture
def det_model():
    return _model


@pytest.fixture
def det_reference():
    """transformers' model with the same deterministic weights (built once per preset: it takes seconds)."""
    return _reference_model
