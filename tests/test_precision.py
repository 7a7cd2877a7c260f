"""float16 compute: float16 storage and products, float32 statistics, softmax and GELU (issue: GPU)."""
import numpy as np
import pytest

import minimatte
from minimatte.kernels import nn
from helpers import input_a, with_large_activations


def test_float16_model_is_close_to_float32(preset, det_state, det_model):
    half = minimatte.VitMatte.from_state_dict(det_state(preset), precision="float16")
    assert half.precision == "float16"
    assert half.params["decoder"]["matting_head"]["matting_convs"][0]["im2col_weight"].dtype == np.float16
    out = half(input_a(), output_hidden_states=True)
    full = det_model(preset)(input_a(), output_hidden_states=True)
    assert out.alphas.dtype == np.float32
    difference = np.abs(out.alphas - full.alphas).max()
    assert 0 < difference < 1e-3  # measured 3.0e-4 (S); a float16 ulp of the decoder's logits is 2e-3 near 4
    for h16, h32 in zip(out.hidden_states, full.hidden_states):
        assert h16.dtype == np.float16
        assert np.abs(h16 - h32).max() < 4e-3 * np.abs(h32).max()  # a few float16 ulps of the largest value


def test_float16_model_with_activations_as_large_as_real_checkpoints(det_state, preset):
    """Hidden states of ~1000 (with_large_activations): float16's ulp there is 0.5, and the residual stream is
    rounded to it after every block, yet nothing overflows and the alphas stay close to float32's."""
    state = with_large_activations(det_state(preset))
    half = minimatte.VitMatte.from_state_dict(state, precision="float16")(input_a(), output_hidden_states=True)
    full = minimatte.VitMatte.from_state_dict(state)(input_a(), output_hidden_states=True)
    assert np.abs(full.hidden_states[-1]).max() > 900
    assert all(np.isfinite(h).all() for h in half.hidden_states)
    assert np.abs(half.alphas - full.alphas).max() < 5e-3  # measured 2.4e-3 (S), 2.3e-3 (B): under an 8-bit level


def test_float16_layer_norm_keeps_float32_statistics():
    """Real ViTMatte activations reach ~1000: their squares overflow float16 (max 65504)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 384)) * 1000 + 300).astype(np.float16)
    p = {"weight": (1 + 0.1 * rng.standard_normal(384)).astype(np.float16),
         "bias": (0.1 * rng.standard_normal(384)).astype(np.float16)}
    exact = x.astype(np.float64)
    exact = (exact - exact.mean(1, keepdims=True)) / np.sqrt(exact.var(1, keepdims=True) + 1e-6)
    exact = exact * p["weight"].astype(np.float64) + p["bias"].astype(np.float64)
    out = nn.layer_norm(x, p, 1e-6)
    assert out.dtype == np.float16 and np.isfinite(out).all()
    assert np.abs(out - exact).max() < 4e-3  # one float16 rounding of values up to ~4
    y = np.linspace(-6, 6, 4001).astype(np.float16)
    gelu = nn.gelu(y.copy())
    assert gelu.dtype == np.float16
    np.testing.assert_allclose(gelu.astype(np.float32), nn.gelu(y.astype(np.float32)), rtol=1e-3, atol=1e-7)


def test_precision_is_checked(det_state):
    with pytest.raises(ValueError, match="precision: expected one of float32, float16, got 'bfloat16'"):
        minimatte.VitMatte.from_state_dict(det_state("small"), precision="bfloat16")
