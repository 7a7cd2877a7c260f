import functools

import pytest

import minimatte
from helpers import deterministic_state
from reference import hf_model


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
