"""Test-only references: transformers' VitMatteForImageMatting with given weights, and pymatting."""
import importlib
import os

import numpy as np
import pytest


def require(*names):
    """Import reference packages (the [reference] extra); a test skips without them, unless
    MINIMATTE_REQUIRE_REFERENCE=1 (CI) makes their absence a failure."""
    if os.environ.get("MINIMATTE_REQUIRE_REFERENCE") == "1":
        return tuple(importlib.import_module(name) for name in names)
    return tuple(pytest.importorskip(name) for name in names)


def require_reference():
    return require("torch", "transformers")


def torchvision():
    """torchvision, for the tests that hold formulas written out here to it. It is not in the [reference] extra
    (torch 2.13.0's needs torch's CUDA build), so they skip without it, also where MINIMATTE_REQUIRE_REFERENCE=1."""
    require("torch")
    return pytest.importorskip("torchvision")


def hf_config(config):
    _, transformers = require_reference()
    backbone = transformers.VitDetConfig(
        hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, mlp_ratio=config.mlp_ratio, patch_size=config.patch_size,
        num_channels=config.num_channels, image_size=config.image_size,
        pretrain_image_size=config.pretrain_image_size, window_size=config.window_size,
        window_block_indices=list(config.window_block_indices),
        residual_block_indices=list(config.residual_block_indices),
        use_absolute_position_embeddings=config.use_absolute_position_embeddings,
        use_relative_position_embeddings=config.use_relative_position_embeddings, qkv_bias=config.qkv_bias,
        layer_norm_eps=config.layer_norm_eps, out_features=[f"stage{config.num_hidden_layers}"])
    return transformers.VitMatteConfig(
        backbone_config=backbone, hidden_size=config.hidden_size, batch_norm_eps=config.batch_norm_eps,
        convstream_hidden_sizes=list(config.convstream_hidden_sizes),
        fusion_hidden_sizes=list(config.fusion_hidden_sizes))


def hf_model(config, state):
    torch, transformers = require_reference()
    torch.manual_seed(0)
    model = transformers.VitMatteForImageMatting(hf_config(config)).eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, strict=True)
    return model


def hf_alphas(model, pixel_values):
    torch, _ = require_reference()
    with torch.no_grad():
        return model(torch.from_numpy(pixel_values)).alphas.numpy()
