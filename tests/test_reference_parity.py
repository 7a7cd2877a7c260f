"""Live parity with transformers' VitMatteForImageMatting (torch), with the deterministic weights."""
import numpy as np
import pytest

import minimatte
from minimatte import backend
from helpers import OTHER_SHAPES, SMALLER, config_id, deterministic_state, with_large_activations
from reference import hf_alphas, hf_model, require_reference


def random_pair(rng, h, w):
    """A smooth-ish random RGB image and a 3-level trimap with some off-grey values."""
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255, 77], dtype=np.uint8), size=(h, w), p=[0.4, 0.3, 0.25, 0.05])
    return image, trimap


def hf_pixels(images, trimaps):
    _, transformers = require_reference()
    processor = transformers.VitMatteImageProcessorPil()
    return processor(images=images, trimaps=trimaps, return_tensors="np")["pixel_values"]


@pytest.mark.parametrize("name,sizes", [
    ("small", [(249, 513)]),
    ("small", [(640, 960)]),
    ("small", [(1000, 750)]),
    ("small", [(300, 460), (300, 460)]),  # batch 2; 19x29 tokens = 2x3 windows with padding
    ("base", [(249, 513), (249, 513)]),
    ("base", [(1000, 750)]),
])
def test_alphas_match_transformers(name, sizes, det_reference, det_model):
    rng = np.random.default_rng(sum(h * w for h, w in sizes))
    pairs = [random_pair(rng, h, w) for h, w in sizes]
    images, trimaps = [p[0] for p in pairs], [p[1] for p in pairs]
    reference_pixels = hf_pixels(images, trimaps)
    batch = minimatte.preprocess(images, trimaps)
    assert batch.pixel_values.shape == reference_pixels.shape
    assert np.abs(batch.pixel_values - reference_pixels).max() <= 1e-6
    reference = hf_alphas(det_reference(name), reference_pixels)
    ours = det_model(name)(batch.pixel_values).alphas
    assert np.abs(ours - reference).max() <= 1e-4
    for alpha, ref, (h, w) in zip(minimatte.processing.crop(ours, batch.sizes), reference, sizes):
        assert alpha.shape == (h, w)
        assert np.abs(alpha - ref[0, :h, :w]).max() <= 1e-4


@pytest.mark.parametrize("band_rows", [1, 2, 5])
def test_decoder_in_bands_is_the_whole_decoder(band_rows, det_model, monkeypatch):
    """Large images run the decoder in bands of rows with a halo; the alphas are those of one pass."""
    pixels = np.random.default_rng(band_rows).uniform(-1, 1, (2, 4, 176, 96)).astype(np.float32)
    whole = det_model("small")(pixels).alphas
    monkeypatch.setitem(backend.PIECE_ELEMENTS, "decoder band", (band_rows * 2 * 16 * 96,) * 2)  # both images' pixels
    banded = det_model("small")(pixels).alphas
    assert np.abs(banded - whole).max() <= 1e-6


@pytest.mark.parametrize("fields", [fields for fields in OTHER_SHAPES if "patch_size" in fields], ids=config_id)
def test_decoder_in_bands_for_other_patch_sizes(fields, monkeypatch):
    """The halo of DECODER_HALO feature rows covers the decoder's receptive field with 3 and 5 fusion blocks too."""
    config = minimatte.Config(**{**SMALLER, **fields})
    model = minimatte.VitMatte.from_state_dict(deterministic_state(config), config)
    patch = config.patch_size
    pixels = np.random.default_rng(patch).uniform(-1, 1, (1, 4, 12 * patch, 6 * patch)).astype(np.float32)
    whole = model(pixels).alphas
    monkeypatch.setitem(backend.PIECE_ELEMENTS, "decoder band", (patch * 6 * patch,) * 2)  # 12 bands of one row
    assert np.abs(model(pixels).alphas - whole).max() <= 1e-6


def test_decoder_in_bands_matches_transformers(det_reference, det_model, monkeypatch):
    monkeypatch.setitem(backend.PIECE_ELEMENTS, "decoder band", (3 * 16 * 208,) * 2)  # 7 bands of 3 feature rows
    image, trimap = random_pair(np.random.default_rng(5), 330, 200)
    reference = hf_alphas(det_reference("small"), hf_pixels([image], [trimap]))[0, 0, :330, :200]
    assert np.abs(minimatte.infer(image, trimap, model=det_model("small")) - reference).max() <= 1e-4


def test_hidden_states_and_attentions_match_transformers(det_reference, det_model):
    torch, _ = require_reference()
    pixels = np.random.default_rng(1).uniform(-1, 1, (2, 4, 224, 256)).astype(np.float32)
    with torch.no_grad():
        ref = det_reference("small")(
            torch.from_numpy(pixels), output_hidden_states=True, output_attentions=True)
    ours = det_model("small")(pixels, output_hidden_states=True, output_attentions=True)
    for a, b in zip(ours.hidden_states, ref.hidden_states):
        assert a.shape == tuple(b.shape)
        assert np.abs(a - b.numpy()).max() <= 1e-4
    for a, b in zip(ours.attentions, ref.attentions):
        assert a.shape == tuple(b.shape)
        assert np.abs(a - b.numpy()).max() <= 1e-5


def large_activation_differences(state):
    """(largest hidden value, largest hidden-state difference, largest alpha difference) between transformers and
    minimatte for ViTMatte-S with `state` (the deterministic weights) given with_large_activations, on a random
    249x513 pair."""
    torch, _ = require_reference()
    config, state = minimatte.PRESETS["small"], with_large_activations(state)
    image, trimap = random_pair(np.random.default_rng(6), 249, 513)
    pixels = minimatte.preprocess(image, trimap).pixel_values
    with torch.no_grad():
        reference = hf_model(config, state)(torch.from_numpy(pixels), output_hidden_states=True)
    ours = minimatte.VitMatte.from_state_dict(state)(pixels, output_hidden_states=True)
    largest = max(np.abs(h.numpy()).max() for h in reference.hidden_states)
    hidden = max(np.abs(a - b.numpy()).max() for a, b in zip(ours.hidden_states, reference.hidden_states))
    return largest, hidden, np.abs(ours.alphas - reference.alphas.numpy()).max()


def test_activations_as_large_as_real_checkpoints_match_transformers(det_state):
    """Hidden states of ~1000, as real checkpoints' reach, where the deterministic weights' reach about 20: the
    float32 sums that grow with them (layer norm's statistics, the residual blocks' and decoder's convolutions,
    Winograd's transforms) still give the reference's alphas."""
    largest, hidden, alphas = large_activation_differences(det_state("small"))
    assert largest > 900
    assert hidden <= 2e-6 * largest  # every hidden state; measured 1.8e-4 at 1012
    assert alphas <= 1e-4  # measured 5.4e-6


def test_loads_a_transformers_checkpoint_directory(tmp_path, det_reference):
    """save_pretrained output (model.safetensors + config.json) loads directly and gives the same alphas."""
    _, transformers = require_reference()
    model = det_reference("small")
    model.save_pretrained(tmp_path)
    transformers.VitMatteImageProcessorPil().save_pretrained(tmp_path)
    loaded = minimatte.load(tmp_path)
    assert loaded.config == minimatte.PRESETS["small"]
    image, trimap = random_pair(np.random.default_rng(3), 70, 90)
    alpha = minimatte.infer(image, trimap, model=loaded)
    reference = hf_alphas(model, hf_pixels([image], [trimap]))[0, 0, :70, :90]
    assert alpha.shape == (70, 90) and alpha.dtype == np.float32
    assert np.abs(alpha - reference).max() <= 1e-4


@pytest.mark.parametrize("settings", [
    dict(do_pad=False), dict(do_rescale=False), dict(do_normalize=False),
    dict(rescale_factor=1 / 127.5, image_mean=[0.1, 0.2, 0.3], image_std=[0.3, 0.2, 0.1], size_divisor=16),
], ids=lambda settings: ",".join(settings))
def test_processor_settings_match_transformers(settings):
    _, transformers = require_reference()
    image, trimap = random_pair(np.random.default_rng(4), 33, 50)
    reference = transformers.VitMatteImageProcessorPil(**settings)(images=image, trimaps=trimap,
                                                                   return_tensors="np")["pixel_values"]
    ours = minimatte.preprocess(image, trimap, minimatte.ProcessorConfig(**settings)).pixel_values
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours, reference)


def test_the_older_size_divisibility_is_read_as_transformers_reads_it():
    """preprocessor_config.json's older name for size_divisor counts where size_divisor is not given."""
    _, transformers = require_reference()
    for settings in {"size_divisibility": 16}, {"size_divisibility": 16, "size_divisor": 64}:
        theirs = transformers.VitMatteImageProcessorPil(**settings).size_divisor
        assert minimatte.config.processor_from_hf(settings).size_divisor == theirs


@pytest.mark.parametrize("fields", [{}, *OTHER_SHAPES, dict(layer_norm_eps=1e-3, batch_norm_eps=1e-2),
                                    dict(pretrain_image_size=448)], ids=config_id)
def test_other_configs_match_transformers(fields, tmp_path):
    """Each field of the config is honoured as the reference honours it (a network of 12 narrower blocks, a field
    or two changed from there), read from the config.json that save_pretrained writes; shape inference finds the
    same config wherever the shapes tell it, and stage_flops (the progress reports) counts the reference's FLOPs."""
    from reference import hf_model
    torch, _ = require_reference()
    from torch.utils.flop_counter import FlopCounterMode

    config = minimatte.Config(**{**SMALLER, **fields})
    state = deterministic_state(config)
    reference = hf_model(config, state)
    reference.save_pretrained(tmp_path)
    loaded = minimatte.load(tmp_path)
    assert loaded.config == config
    patch = config.patch_size
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, config.num_channels, 6 * patch, 7 * patch)).astype(np.float32)
    assert np.abs(loaded(pixels).alphas - hf_alphas(reference, pixels)).max() <= 1e-5
    with pytest.raises(ValueError, match=f"^pixel_values: height and width must be positive multiples of {patch} "):
        loaded(pixels[..., :-patch // 2])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.from_numpy(pixels))
    assert sum(minimatte.model.stage_flops(config, *pixels.shape[2:]).values()) == counter.get_total_flops()
    shapes = {k: v.shape for k, v in state.items()}
    if "use_relative_position_embeddings" in fields or "window_size" in fields:  # no tables, or all of one length
        with pytest.raises(ValueError, match="cannot infer the config from the blocks' relative position tables"):
            minimatte.config.from_shapes(shapes)
    elif "layer_norm_eps" not in fields:  # epsilons are not in the shapes
        assert minimatte.config.from_shapes(shapes) == config


PAIRED = {name: [SMALLER.get(name, 16)] * 2 for name in ("image_size", "patch_size")}


@pytest.mark.parametrize("fields,written", [
    ({}, {**PAIRED, "pretrain_image_size": [224, 224]}),  # VitDet also takes (height, width) pairs
    ({}, dict(out_indices=[6, -1], out_features=None)),  # the decoder reads the last of the stages named
    (dict(window_size=0), dict(window_block_indices=[0, 1, 3, 4])),  # no windows: every block attends globally
    ({}, dict(out_features=["stage6"], out_indices=[6])),  # the decoder would read block 6's output: refused
], ids=["pairs", "out_indices", "window_size 0", "out_features"])
def test_config_json_forms_transformers_reads(fields, written, tmp_path):
    """config.json settings that save_pretrained does not write but transformers reads: as the reference reads
    them, or an error where minimatte's network would differ, not another network's alphas."""
    import json
    from reference import hf_model

    _, transformers = require_reference()
    config = minimatte.Config(**{**SMALLER, **fields})
    state = deterministic_state(config)
    hf_model(config, state).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    hub = json.loads(path.read_text())
    path.write_text(json.dumps({**hub, "backbone_config": {**hub["backbone_config"], **written}}))
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, 96, 128)).astype(np.float32)
    reference = hf_alphas(transformers.VitMatteForImageMatting.from_pretrained(tmp_path).eval(), pixels)
    if not written.get("out_features"):
        loaded = minimatte.load(tmp_path)
        assert loaded.config == config
        assert np.abs(loaded(pixels).alphas - reference).max() <= 1e-5
    else:
        last_block = minimatte.VitMatte.from_state_dict(state, config)  # what the decoder reading it would give
        assert np.abs(last_block(pixels).alphas - reference).max() > 1e-2
        with pytest.raises(ValueError, match=r"config\.json': config: the decoder must read the last block's "
                                             r"output \(out_features \['stage12'\]\), got out_features \['stage6'\]"):
            minimatte.load(tmp_path)


def test_settings_a_config_json_leaves_out_are_transformers_defaults():
    """minimatte fills a config.json's gaps with the values transformers' VitDetConfig and VitMatteConfig default
    to (VitDet's settings, the decoder's hidden_size), and refuses one without a backbone_config, for which
    transformers builds VitDet's defaults with the decoder reading block 4."""
    _, transformers = require_reference()
    vitdet = transformers.VitDetConfig()
    for name, value in minimatte.config._VITDET_DEFAULTS.items():
        theirs = getattr(vitdet, name)
        assert (list(theirs) if isinstance(theirs, (list, tuple)) else theirs) == value, name
    vitmatte = transformers.VitMatteConfig()
    small = {"model_type": "vitmatte", "backbone_config": {"hidden_size": 384, "num_attention_heads": 6}}
    assert minimatte.config.from_hf(small).hidden_size == vitmatte.hidden_size
    stage, = vitmatte.backbone_config.out_features
    with pytest.raises(ValueError, match=rf"^config: no backbone_config; .* reading block {stage[len('stage'):]}'s"):
        minimatte.config.from_hf({"model_type": "vitmatte", "hidden_size": 768})


def test_labels_raise_like_the_reference(det_model):
    with pytest.raises(NotImplementedError, match="Training is not yet supported"):
        det_model("small")(np.zeros((1, 4, 32, 32), np.float32), labels=np.zeros((1, 1, 32, 32)))
