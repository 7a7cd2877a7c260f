import functools

import pytest

import minimatte
from helpers import deterministic_state


@functools.lru_cache(maxsize=None)
def _state(name):
    return deterministic_state(minimatte.PRESETS[name])


@functools.lru_cache(maxsize=None)
def _model(name):
    return minimatte.VitMatte.from_state_dict(_state(name))


@pytest.fixture(params=["small", "base"])
def preset(request):
    return request.param


@pytest.fixture
def det_state():
    return _state


@pytest.fixture
def det_model():
    return _model
