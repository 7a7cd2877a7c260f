"""Configs and strict weight loading."""
import json
import os
import re
import types

import numpy as np
import pytest
from safetensors.numpy import save_file

import minimatte
from minimatte import config as cfg
from minimatte.weights import CONFIG_KEY, PROCESSOR_KEY
from helpers import REFERENCE


def keys_tsv(name):
    rows = (REFERENCE / f"vitmatte_{name}_keys.tsv").read_text().splitlines()[1:]
    shapes = {}
    for row in rows:
        key, _, shape, _ = row.split("\t")
        shapes[key] = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
    return shapes


def test_expected_shapes_match_the_reference_key_list(preset):
    listed = keys_tsv(preset)
    config = minimatte.PRESETS[preset]
    assert len(listed) == 258
    expected = cfg.expected_shapes(config)
    assert {k: v for k, v in listed.items() if not k.endswith("num_batches_tracked")} == expected
    assert {k for k in listed if k.endswith("num_batches_tracked")} == cfg.batch_norm_buffers(config)
    params = sum(int(np.prod(s)) for k, s in expected.items() if "running_" not in k)
    assert params == {"small": 25_814_753, "base": 96_686_561}[preset]


def test_base_hub_config_applies_vitdet_defaults():
    config = cfg.from_hf(json.loads((REFERENCE / "hf_config_base" / "config.json").read_text()))
    assert config == minimatte.PRESETS["base"]


def test_config_inferred_from_shapes(preset):
    shapes = keys_tsv(preset)
    assert cfg.from_shapes(shapes) == minimatte.PRESETS[preset]
    third = {**shapes, "backbone.encoder.layer.4.attention.rel_pos_h": (45, 64)}  # neither a window's nor the grid's
    with pytest.raises(ValueError, match=r"relative position tables \(of 3 lengths\): which blocks attend"):
        cfg.from_shapes(third)


def test_other_config_fields_are_honoured(det_state):
    """A smaller, differently laid out network builds and runs from its own shapes."""
    config = cfg.Config(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, window_size=7,
                        window_block_indices=(0, 2), residual_block_indices=(1, 3), image_size=256, mlp_ratio=2,
                        convstream_hidden_sizes=(8, 16, 32), fusion_hidden_sizes=(32, 16, 8, 8))
    from helpers import deterministic_state
    state = deterministic_state(config)
    assert cfg.from_shapes({k: v.shape for k, v in state.items()}) == config
    out = minimatte.VitMatte.from_state_dict(state)(np.zeros((1, 4, 64, 96), np.float32))
    assert out.alphas.shape == (1, 1, 64, 96)


def test_an_inconsistent_config_is_one_error():
    small = minimatte.PRESETS["small"].to_dict()
    for fields, error in ((dict(num_attention_heads=5), "hidden_size 384 is not divisible by num_attention_heads 5"),
                          (dict(fusion_hidden_sizes=(256, 128, 64)),
                           "fusion_hidden_sizes needs one more entry than convstream_hidden_sizes"),
                          (dict(patch_size=8), "4 fusion blocks bring the features back to the image's size only "
                                               "for patch_size 16, got 8"),
                          (dict(window_block_indices=(0, 12)), r"block index 12 is outside 0..11"),
                          (dict(residual_block_indices=(-1,)), r"block index -1 is outside 0..11")):
        with pytest.raises(ValueError, match=f"^config: {error}"):
            cfg.Config(**{**small, **fields})
    with pytest.raises(ValueError, match=r"^config: unknown fields \['hidden_sise'\]$"):
        cfg.Config.from_dict({**small, "hidden_sise": 384})
    hub = json.loads((REFERENCE / "hf_config_base" / "config.json").read_text())
    with pytest.raises(ValueError, match="^config: only the exact 'gelu' activation is supported, got 'gelu_new'$"):
        cfg.from_hf({**hub, "backbone_config": {**hub["backbone_config"], "hidden_act": "gelu_new"}})
    with pytest.raises(ValueError, match="^config: decoder hidden_size 384 differs from the backbone's 768$"):
        cfg.from_hf({**hub, "hidden_size": 384})
    # what the config leaves out takes transformers' defaults: the decoder's hidden_size 384 (VitMatteConfig's) ...
    small = {k: v for k, v in hub.items() if k != "hidden_size"}
    small["backbone_config"] = {**hub["backbone_config"], "hidden_size": 384, "num_attention_heads": 6}
    assert cfg.from_hf(small) == minimatte.PRESETS["small"]
    with pytest.raises(ValueError, match="^config: decoder hidden_size 384 differs from the backbone's 768$"):
        cfg.from_hf({k: v for k, v in hub.items() if k != "hidden_size"})
    for missing in {}, {"backbone_config": None}:  # and one without a backbone_config is refused
        with pytest.raises(ValueError, match=r"^config: no backbone_config; transformers would build VitDet's default "
                                             r"backbone, its decoder reading block 4's output, a network minimatte "
                                             r"does not run$"):
            cfg.from_hf({**{k: v for k, v in hub.items() if k != "backbone_config"}, **missing})
    for backbone, error in ((dict(out_indices=[11]), r"\(out_indices \[12\]\), got out_indices \[11\]"),
                            (dict(out_features=["stem", "stage11"]),
                             r"\(out_features \['stage12'\]\), got out_features \['stem', 'stage11'\]"),
                            (dict(out_indices=12), r"\(out_indices \[12\]\), got out_indices 12")):
        with pytest.raises(ValueError, match=f"^config: the decoder must read the last block's output {error}$"):
            cfg.from_hf({**hub, "backbone_config": {**hub["backbone_config"], **backbone}})
    for sides, error in (([512, 640], "only square sizes are supported, got image_size [512, 640]"),
                         ([], "only square sizes are supported, got image_size []"),
                         ([[512], [512]], "image_size: expected a positive integer, got [512]")):
        with pytest.raises(ValueError, match=f"^{re.escape('config: ' + error)}$"):
            cfg.from_hf({**hub, "backbone_config": {**hub["backbone_config"], "image_size": sides}})


def test_a_setting_of_the_wrong_kind_is_named():
    """A config.json's value of another kind than the setting's (a string, a fraction, a negative count) is refused
    by name before any arithmetic on it: many would otherwise be met only as a tensor's shape that differs, some
    (a string epsilon, a negative one, "false" for a flag, which Python takes as true) not at all."""
    hub = json.loads((REFERENCE / "hf_config_base" / "config.json").read_text())
    for backbone, error in ((dict(window_size="14"), "window_size: expected 0 or a positive integer, got '14'"),
                            (dict(window_size=14.5), "window_size: expected 0 or a positive integer, got 14.5"),
                            (dict(window_size=True), "window_size: expected 0 or a positive integer, got True"),
                            (dict(num_attention_heads=0), "num_attention_heads: expected a positive integer, got 0"),
                            (dict(num_hidden_layers=-12), "num_hidden_layers: expected a positive integer, got -12"),
                            (dict(image_size=None), "image_size: expected a positive integer, got None"),
                            (dict(layer_norm_eps="1e-6"), "layer_norm_eps: expected a positive number, got '1e-6'"),
                            (dict(layer_norm_eps=-1e-6), "layer_norm_eps: expected a positive number, got -1e-06"),
                            (dict(qkv_bias="false"), "qkv_bias: expected true or false, got 'false'"),
                            (dict(use_relative_position_embeddings=1),
                             "use_relative_position_embeddings: expected true or false, got 1"),
                            (dict(window_block_indices=3), "window_block_indices: expected a list of integers, got 3"),
                            (dict(residual_block_indices=[2.5]),
                             r"residual_block_indices: expected a list of integers, got \[2.5\]")):
        with pytest.raises(ValueError, match=f"^config: {error}$"):
            cfg.from_hf({**hub, "backbone_config": {**hub["backbone_config"], **backbone}})
    for decoder, error in ((dict(batch_norm_eps=float("inf")), "batch_norm_eps: expected a positive number, got inf"),
                           (dict(fusion_hidden_sizes="256"), "fusion_hidden_sizes: expected a list of integers, "
                                                             "got '256'"),
                           (dict(hidden_size="768"), "decoder hidden_size '768' differs from the backbone's 768"),
                           (dict(backbone_config=[768]),
                            r"backbone_config: expected an object of VitDet's settings, got \[768\]")):
        with pytest.raises(ValueError, match=f"^config: {error}$"):
            cfg.from_hf({**hub, **decoder})
    # NumPy's scalars are settings of their kinds, kept as Python's (they are written to a converted file as JSON)
    config = cfg.Config(hidden_size=np.int64(384), qkv_bias=np.True_, layer_norm_eps=np.float64(1e-6),
                        window_block_indices=list(np.arange(2, dtype=np.int32)))
    written = cfg.Config.from_dict(json.loads(json.dumps(config.to_dict())))
    assert written == config == cfg.Config(window_block_indices=(0, 1))


def test_strict_loading_names_the_key(det_state):
    state = dict(det_state("small"))
    config = minimatte.PRESETS["small"]
    key = "backbone.encoder.layer.3.mlp.fc1.bias"
    with pytest.raises(ValueError, match=f"missing tensor '{key}'"):
        minimatte.VitMatte.from_state_dict({k: v for k, v in state.items() if k != key}, config)
    with pytest.raises(ValueError, match="unexpected tensor 'backbone.extra'"):
        minimatte.VitMatte.from_state_dict({**state, "backbone.extra": np.zeros(1, np.float32)}, config)
    with pytest.raises(ValueError, match=f"tensor '{key}' has shape \\(3,\\), expected \\(1536,\\)"):
        minimatte.VitMatte.from_state_dict({**state, key: np.zeros(3, np.float32)}, config)
    for bad in (np.nan, np.inf):  # a diverged training run's weights: alphas of NaN, not a model
        with pytest.raises(ValueError, match=f"tensor '{key}' holds NaN or infinite values"):
            minimatte.VitMatte.from_state_dict({**state, key: np.full(1536, bad, np.float32)}, config)
    running_var = "decoder.convstream.convs.1.batch_norm.running_var"
    with pytest.raises(ValueError, match=f"tensor '{running_var}' holds NaN"):
        minimatte.VitMatte.from_state_dict({**state, running_var: np.full(96, np.nan, np.float32)}, config)


def test_a_gap_in_a_checkpoint_without_a_config_is_named(det_state):
    """Without a config the layers are counted from the keys: a missing block or decoder level is a missing
    tensor, not a smaller network or an inconsistent config."""
    state = {k: v for k, v in det_state("small").items()}
    for gone, named in (("backbone.encoder.layer.5.", "backbone.encoder.layer.5.attention.rel_pos_h"),
                        ("decoder.fusion_blocks.", "decoder.fusion_blocks.0.conv.conv.weight"),
                        ("decoder.fusion_blocks.3.", "decoder.fusion_blocks.3.conv.conv.weight"),
                        ("decoder.convstream.", "decoder.convstream.convs.0.conv.weight"),
                        ("decoder.convstream.convs.2.", "decoder.convstream.convs.2.conv.weight")):
        with pytest.raises(ValueError, match=f"cannot infer the config, missing tensor '{named}'"):
            minimatte.VitMatte.from_state_dict({k: v for k, v in state.items() if not k.startswith(gone)})
    with pytest.raises(ValueError, match="unexpected tensor 'backbone.encoder.layer.extra.bias'"):
        minimatte.VitMatte.from_state_dict({**state, "backbone.encoder.layer.extra.bias": np.zeros(1, np.float32)})


def test_converted_file_with_metadata_loads(tmp_path, det_state, det_model):
    config = cfg.Config(**{**minimatte.PRESETS["small"].to_dict()})
    processor = minimatte.ProcessorConfig(image_mean=(0.4, 0.5, 0.6))
    state = {k: v for k, v in det_state("small").items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "converted.safetensors"
    save_file(state, str(path), metadata={CONFIG_KEY: json.dumps(config.to_dict()),
                                          PROCESSOR_KEY: json.dumps(processor.to_dict())})
    model = minimatte.load(path)
    assert model.config == config and model.processor == processor
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, 32, 64)).astype(np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    (tmp_path / "preprocessor_config.json").write_text("{}")  # the metadata's settings come first
    assert minimatte.load(path).processor == processor


def test_a_model_says_what_it_is(det_model):
    """A notebook shows a loaded model as one line: the preset (or its sizes), backend, precision and
    preprocessing; not the default `<minimatte.model.VitMatte object at 0x...>`."""
    assert repr(det_model("base")) == "VitMatte(base, backend=numpy, precision=float32, preprocessing=hf)"
    deeper = cfg.Config(**{**minimatte.PRESETS["small"].to_dict(), "num_hidden_layers": 16})
    model = minimatte.VitMatte({}, deeper, cfg.ORIGINAL_PROCESSOR, dtype=np.float16)
    assert repr(model) == ("VitMatte(hidden_size=384, layers=16, heads=6, backend=numpy, precision=float16, "
                           "preprocessing=original)")


def test_the_settings_beside_a_weights_file_are_read(tmp_path, det_state):
    """A model.safetensors (or any weights file) given by its path has the settings of its folder, as the folder
    has: a fine-tune's own processor settings are not left for the defaults."""
    save_file(det_state("small"), str(tmp_path / "model.safetensors"))
    hub = json.loads((REFERENCE / "hf_config_base" / "config.json").read_text())
    backbone = {**hub["backbone_config"], "hidden_size": 384, "num_attention_heads": 6, "layer_norm_eps": 1e-5}
    (tmp_path / "config.json").write_text(json.dumps({**hub, "hidden_size": 384, "backbone_config": backbone}))
    (tmp_path / "preprocessor_config.json").write_text('{"image_mean": [0.4, 0.5, 0.6]}')
    for source in (tmp_path, tmp_path / "model.safetensors"):
        model = minimatte.load(source)
        assert model.config == cfg.Config(layer_norm_eps=1e-5)  # not the shapes' (the default epsilon)
        assert model.processor == minimatte.ProcessorConfig(image_mean=(0.4, 0.5, 0.6))
    (tmp_path / "preprocessor_config.json").write_text('{"do_pad": false}')  # images of whole patches only
    model = minimatte.load(tmp_path)
    image, trimap = np.zeros((64, 96, 3), np.uint8), np.full((64, 96), 128, np.uint8)
    assert minimatte.infer(image, trimap, model=model).shape == (64, 96)
    with pytest.raises(ValueError, match=r"^image: 64x90 is not a multiple of the model's 16-pixel patches, and its "
                                         r"processor settings do not pad \(do_pad false\); crop or pad the image"):
        minimatte.infer(image[:, :90], trimap[:, :90], model=model)
    (tmp_path / "preprocessor_config.json").write_text('{"size_divisor": 8}')  # the padded images, 16-pixel patches
    with pytest.raises(ValueError, match="^size_divisor: the processor pads images to multiples of 8, which the "
                                         "network's 16-pixel patches do not divide$"):
        minimatte.load(tmp_path)


def test_bad_checkpoint_files(tmp_path):
    broken = tmp_path / "broken.safetensors"
    for content in b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"\x10\x00":  # bad JSON; cut short, named so
        broken.write_bytes(content)
        with pytest.raises(ValueError, match="is not a readable safetensors file"):
            minimatte.load(broken)
    header = json.dumps({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}).encode()
    broken.write_bytes(len(header).to_bytes(8, "little") + header + b"\x01\x02")  # float8: NumPy has no such type
    with pytest.raises(ValueError, match=r"is not a readable safetensors file \((tensor 'a' is of dtype F8_E4M3, "
                                         r"which minimatte does not read|Error while deserializing header: "
                                         r"InvalidHeaderDeserialization)\)$"):  # the latter: safetensors 0.4.0's
        minimatte.load(broken)
    with pytest.raises(FileNotFoundError, match="has neither model.safetensors nor pytorch_model.bin"):
        minimatte.load(tmp_path)
    # what often stands in place of a checkpoint's weights, said so (the readers' own errors said "header too large"
    # and "File is not a zip file"), in any of the files a checkpoint's weights are read from
    lfs_pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 103188804\n"
    for content, why in ((lfs_pointer, "it is a Git LFS pointer, which its repository holds in place of the weights "
                                       "where it was cloned without Git LFS; fetch them with `git lfs pull` there"),
                         (b"<!DOCTYPE html>\n<html>", "it is a web page (HTML), such as a hub file's page "
                                                      "(.../blob/main/model.safetensors) saved in place of the file"),
                         (b"", "the file is empty")):
        for name in ("model.safetensors", "pytorch_model.bin", "ViTMatte_S_Com.pth"):
            (tmp_path / name).write_bytes(content)
            with pytest.raises(ValueError, match=rf"^checkpoint: '.*{name}' is not a checkpoint: {re.escape(why)}"):
                minimatte.load(tmp_path if name != "ViTMatte_S_Com.pth" else tmp_path / name)
            os.unlink(tmp_path / name)


def test_a_broken_settings_file_is_named(tmp_path, det_state):
    """config.json and preprocessor_config.json beside the weights are files a person may edit: what is wrong
    with one is an error naming it, not JSON's or Python's own from deep inside."""
    save_file({k: v for k, v in det_state("small").items()}, str(tmp_path / "model.safetensors"))
    hub_config = (REFERENCE / "hf_config_base" / "config.json").read_text()
    for filename, content, error in (
            ("config.json", "{bad", "Expecting property name"),
            ("config.json", "[]", "expected a JSON object, got a list"),
            ("config.json", '{"model_type": "vitmatte", "backbone_config": {"hidden_size": 384, '
                            '"num_attention_heads": 6}, "convstream_hidden_sizes": 5}',
             "config: convstream_hidden_sizes: expected a list of integers, got 5$"),
            ("config.json", '{"model_type": "clip"}',
             r"config: expected a VitMatte config \(model_type 'vitmatte'\), got model_type 'clip'"),
            ("config.json", '{"app": "photo booth"}', "got no model_type$"),  # another program's, beside the weights
            ("preprocessor_config.json", "{bad", "Expecting property name"),
            ("preprocessor_config.json", '{"image_std": [0.5, 0.5]}', r"image_std: expected 3 values"),
            ("preprocessor_config.json", '{"do_pad": "false"}', "do_pad: expected true or false, got 'false'$")):
        (tmp_path / "config.json").write_text(hub_config if filename != "config.json" else content)
        (tmp_path / "preprocessor_config.json").write_text(content if filename != "config.json" else "{}")
        with pytest.raises(ValueError, match=rf"^checkpoint: '{tmp_path / filename}': .*{error}"):
            minimatte.load(tmp_path)


def test_cupy_backend_without_gpu_is_one_clear_error():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
        cupy.cuda.runtime.getDeviceCount()
        pytest.skip("a GPU is present")
    except Exception:
        pass
    with pytest.raises(RuntimeError, match="backend: 'cupy' needs CuPy, a working NVIDIA GPU and CUDA's NVRTC"):
        minimatte.backend.resolve("cupy")


def test_an_unknown_backend_is_named_where_it_was_given(monkeypatch):
    with pytest.raises(ValueError, match="^backend: expected one of numpy, cupy, got 'tpu'$"):
        minimatte.backend.resolve("tpu")
    monkeypatch.setenv("MINIMATTE_BACKEND", "CuPy")
    with pytest.raises(ValueError, match="^MINIMATTE_BACKEND: expected one of numpy, cupy, got 'CuPy'$"):
        minimatte.backend.resolve()
    assert minimatte.backend.resolve("numpy") is np  # the argument before the environment


def test_cupy_backend_without_cuda_libraries_is_one_clear_error(monkeypatch):
    """CuPy and a GPU, but no NVRTC or no cuBLAS (cupy-cuda12x installed alone on a machine with only the driver):
    the error names the missing library when the backend is asked for, not inside the first kernel or product.
    With both found (cuBLAS asked of its package, the only way CuPy 14 finds a wheel's: cupy_stand_in), no error."""
    import cupy_stand_in
    cupy_stand_in.emulated_backend(monkeypatch)
    assert minimatte.backend.resolve("cupy") is cupy_stand_in
    working = cupy_stand_in.cuda.nvrtc

    def not_found():
        raise RuntimeError('Failure finding "libnvrtc.so.13 or libnvrtc.so.12"')  # as CuPy 14 words it
    monkeypatch.setattr(cupy_stand_in.cuda, "nvrtc", types.SimpleNamespace(getVersion=not_found))
    with pytest.raises(RuntimeError, match=r"CUDA's NVRTC and cuBLAS libraries \(RuntimeError: Failure finding "
                                           r'"libnvrtc.so.13 or libnvrtc.so.12"\); install minimatte\[cupy\]'):
        minimatte.backend.resolve("cupy")
    monkeypatch.setattr(cupy_stand_in.cuda, "nvrtc", working)

    def cublas_not_found(name):
        raise ImportError(f'Failure finding "lib{name}.so": not found')  # CuPy 14's, from its library finder
    monkeypatch.setattr(cupy_stand_in.cuda_libraries, "find_library", cublas_not_found)
    with pytest.raises(RuntimeError, match=r'\(ImportError: Failure finding "libcublas.so": not found\); install'):
        minimatte.backend.resolve("cupy")
