"""Parity with the reference's golden outputs for the spec's deterministic weights (no torch needed)."""
import json

import numpy as np

import minimatte
from helpers import REFERENCE, input_a, input_b


def golden(name):
    return np.load(REFERENCE / f"vitmatte_{name}_detweights_64x96.npz")


def test_deterministic_weights_match_recipe(preset, det_state):
    expected = json.loads((REFERENCE / "vitmatte_detweights_reference.json").read_text())[preset]
    state = det_state(preset)
    assert sum(np.abs(v.astype(np.float64)).sum() for v in state.values()) == \
        expected["weights_checksum_sum_abs_float64"]
    for key, values in expected["weights_sample"].items():
        np.testing.assert_array_equal(state[key].reshape(-1)[:3], np.float32(values))


def test_alphas_input_a(preset, det_model):
    g = golden(preset)
    np.testing.assert_array_equal(input_a(), g["pixel_values_A"])
    alphas = det_model(preset)(input_a()).alphas
    assert alphas.shape == (1, 1, 64, 96) and alphas.dtype == np.float32
    assert np.abs(alphas - g["alphas_A"]).max() <= 1e-5


def test_alphas_input_b_through_processor(preset, det_model):
    g = golden(preset)
    batch = minimatte.preprocess(*input_b())
    assert np.abs(batch.pixel_values - g["pixel_values_B"]).max() <= 1e-6
    assert np.abs(det_model(preset)(batch.pixel_values).alphas - g["alphas_B"]).max() <= 1e-5


def test_hidden_states_and_attentions_small(det_model):
    g = golden("small")
    out = det_model("small")(input_a(), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 13 and len(out.attentions) == 12
    for i, hidden in enumerate(out.hidden_states):
        reference = g[f"hidden_state_{i}_A"]
        assert hidden.shape == reference.shape  # channels-first (B, C, h, w)
        assert np.abs(hidden - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    np.testing.assert_allclose(out.hidden_states[12], g["backbone_feature_A"], atol=1e-4)
    assert out.attentions[0].shape == (1, 6, 196, 196) and out.attentions[2].shape == (1, 6, 24, 24)
    assert np.abs(out.attentions[0] - g["attention_layer0_A"]).max() <= 1e-5
    assert np.abs(out.attentions[2] - g["attention_layer2_A"]).max() <= 1e-5


def test_outputs_are_optional(det_model):
    out = det_model("small")(input_a())
    assert out.hidden_states is None and out.attentions is None
