"""The published hustvl/vitmatte-small-composition-1k expected slice, when a real checkpoint is at hand.

Set MINIMATTE_REAL_CHECKPOINT to its directory (model.safetensors + config.json) or safetensors file.
"""
import json
import os

import numpy as np
import pytest

import minimatte
from helpers import DATA, REFERENCE

CHECKPOINT = os.environ.get("MINIMATTE_REAL_CHECKPOINT")


@pytest.mark.skipif(not CHECKPOINT, reason="no real checkpoint: set MINIMATTE_REAL_CHECKPOINT to run")
def test_bulb_expected_slice():
    expected = json.loads((REFERENCE / "expected_values.json").read_text())["transformers_integration_test"]
    model = minimatte.load(CHECKPOINT)
    demo = DATA / "vitmatte_demo"
    alpha = minimatte.infer(demo / "bulb_rgb.png", demo / "bulb_trimap.png", model=model)
    assert alpha.shape == tuple(expected["expected_shape"][2:])
    np.testing.assert_allclose(alpha[:3, :3], expected["expected_slice_alphas_0_0_0to3_0to3"], atol=1e-4, rtol=1e-4)
