"""Reading checkpoints strictly, and turning a flat state dict into the parameter tree the model reads.

Safetensors files and the settings that go with a checkpoint live here; which file of a directory is read,
and PyTorch files, are in convert.py (`read_any`). minimatte's own files keep the config and processor
settings in their metadata, tensors in float32 or float16.
"""
import json
import os

import numpy as np

from . import config as cfg
from .kernels.conv import conv3x3_params, im2col_weight, upsampled_conv_parts

CONFIG_KEY = "minimatte.config"
PROCESSOR_KEY = "minimatte.processor"


def read_safetensors(path):
    """(tensors as NumPy arrays, metadata dict) of a safetensors file; a clear error if it is not one. safetensors
    checks the header (dtypes, shapes, offsets within the file); each tensor is then read from the file straight
    into its array (safetensors' get_tensor would copy it out of a memory map of the whole file, whose pages count
    as the process's memory beside the copies: twice the checkpoint at the peak). bfloat16 tensors (a fine-tune
    saved in it), which NumPy has no type for, are read as the float32 values they stand for."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
        return _read_tensors(path), metadata
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise ValueError(f"weights: {path!r} is not a readable safetensors file ({error})") from None


# safetensors' dtypes that NumPy has (BF16 is converted), little-endian as the format stores them
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _read_tensors(path):
    """{name: array} of a safetensors file whose header safetensors has checked, each read where the header puts it:
    the file's first 8 bytes are the header's length (little-endian), the JSON header follows, then the data."""
    tensors = {}
    with open(path, "rb") as file:
        length = int.from_bytes(file.read(8), "little")
        for key, entry in json.loads(file.read(length)).items():
            if key == "__metadata__":
                continue
            first, end = entry["data_offsets"]
            file.seek(8 + length + first)
            if entry["dtype"] == "BF16":
                tensors[key] = bfloat16_to_float32(file.read(end - first)).reshape(entry["shape"])
                continue
            if entry["dtype"] not in _SAFETENSORS_DTYPES:
                raise ValueError(f"tensor {key!r} is of dtype {entry['dtype']}, which minimatte does not read")
            tensors[key] = np.empty(entry["shape"], _SAFETENSORS_DTYPES[entry["dtype"]])
            if file.readinto(tensors[key].reshape(-1).view(np.uint8)) != end - first:
                raise ValueError(f"tensor {key!r} ends beyond the file")
    return tensors


def bfloat16_to_float32(raw):
    """bfloat16 values' bytes as float32: each is the top half of a float32 (the bottom half zero), exactly."""
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def read_settings(state, metadata, directory=None):
    """(Config, ProcessorConfig) of a checkpoint: from the file's metadata (minimatte's own files), else from
    the HF `config.json` / `preprocessor_config.json` in `directory`, else inferred from shapes / the defaults."""
    def setting(key, filename, from_dict, from_hf, fallback):
        if key in metadata:
            return from_dict(json.loads(metadata[key]))
        path = None if directory is None else os.path.join(directory, filename)
        if path is None or not os.path.isfile(path):
            return fallback()
        try:  # a file a person may have edited: what is wrong with it, and where
            return from_hf(cfg.read_json(path))
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"checkpoint: {path!r}: {error}") from None

    config = setting(CONFIG_KEY, "config.json", cfg.Config.from_dict, cfg.from_hf,
                     lambda: cfg.from_shapes({k: v.shape for k, v in state.items()}))
    processor = setting(PROCESSOR_KEY, "preprocessor_config.json", cfg.ProcessorConfig.from_dict,
                        cfg.processor_from_hf, cfg.ProcessorConfig)
    return config, processor


def check_state_dict(state, config):
    """Raise a ValueError naming the first missing, unexpected or mis-shaped tensor, or one holding NaN or
    infinite values (a diverged training run's): the alphas of such weights would be NaN."""
    expected = cfg.expected_shapes(config)
    optional = cfg.batch_norm_buffers(config)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in optional]
    problems = [f"missing tensor {k!r} (expected shape {expected[k]})" for k in missing]
    problems += [f"unexpected tensor {k!r}" for k in unexpected]
    problems += [f"tensor {k!r} has shape {tuple(v.shape)}, expected {expected[k]}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    problems += [f"tensor {k!r} holds NaN or infinite values" for k, v in state.items()
                 if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(f"weights: {problems[0]}{more}")


def fold_batch_norms(state, config):
    """Fold every eval-mode BatchNorm into the convolution before it (float64, then float32).

    BN(conv(x)) = conv(x) * s + (beta - mean * s) with s = gamma / sqrt(var + eps): the conv weight is
    scaled per output channel and gains a bias. The decoder's BNs use batch_norm_eps; the head's uses
    torch's default, also 1e-5. Returns a new flat dict without BN tensors.
    """
    folded = {k: v for k, v in state.items()
              if ".batch_norm." not in k and ".matting_convs.1." not in k and not k.endswith("num_batches_tracked")}
    pairs = [(f"decoder.convstream.convs.{j}.conv", f"decoder.convstream.convs.{j}.batch_norm", config.batch_norm_eps)
             for j in range(len(config.convstream_hidden_sizes))]
    pairs += [(f"decoder.fusion_blocks.{j}.conv.conv", f"decoder.fusion_blocks.{j}.conv.batch_norm",
               config.batch_norm_eps) for j in range(len(config.fusion_hidden_sizes))]
    pairs.append(("decoder.matting_head.matting_convs.0", "decoder.matting_head.matting_convs.1", 1e-5))
    for conv, bn, eps in pairs:
        gamma, beta, mean, var = (state[f"{bn}.{n}"].astype(np.float64)
                                  for n in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + eps)
        bias = state.get(f"{conv}.bias", np.zeros_like(mean)).astype(np.float64)
        folded[f"{conv}.weight"] = (state[f"{conv}.weight"].astype(np.float64) * scale[:, None, None, None])
        folded[f"{conv}.bias"] = (bias - mean) * scale + beta
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in folded.items()}


def prepare_convs(state, config, dtype):
    """Every convolution's weight as its kernel computes it in `dtype` (kernels/conv.py), made once here, in
    place of "<conv>.weight": each fusion conv's parts for conv2d_upsampled ("<conv>.detail.*",
    "<conv>.upsampled.*", "<conv>.edges.*"; it reads cat([detail, upsample2x(x)])), the residual blocks' 3x3
    convs as conv3x3_params (Winograd weights where they pay), and the rest as "<conv>.im2col_weight"."""
    detail_channels = [config.num_channels, *config.convstream_hidden_sizes][::-1]  # D3 meets block 0, ..., D0 block 3
    state = dict(state)
    for j, channels in enumerate(detail_channels):
        conv = f"decoder.fusion_blocks.{j}.conv.conv"
        for part, params in upsampled_conv_parts(state.pop(f"{conv}.weight"), channels, dtype).items():
            state.update({f"{conv}.{part}.{name}": value for name, value in params.items()})
    for i in config.residual_block_indices:
        conv = f"backbone.encoder.layer.{i}.residual.conv2"
        params = conv3x3_params(state.pop(f"{conv}.weight"), dtype)
        state.update({f"{conv}.{name}": value for name, value in params.items()})
    for key in [key for key, value in state.items() if key.endswith(".weight") and value.ndim == 4]:
        state[key[:-len("weight")] + "im2col_weight"] = im2col_weight(state.pop(key))
    return state


def unflatten(flat):
    """{"a.0.b": x} -> {"a": {0: {"b": x}}}: the checkpoint's module tree, integer keys in order."""
    tree = {}
    for key in sorted(flat, key=lambda k: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in k.split(".")]):
        node = tree
        *parents, leaf = [int(p) if p.isdigit() else p for p in key.split(".")]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    return tree
