"""Model and processor configuration: presets, HF `config.json` / `preprocessor_config.json`, and
inference of the model configuration from weight shapes."""
import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Tuple

import numpy


def is_integer(value):
    """Whether `value` is an integer, Python's or NumPy's, and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_flag(value):
    """Whether `value` is True or False, Python's or NumPy's (a string such as "false" is not)."""
    return isinstance(value, (bool, numpy.bool_))


def is_number(value):
    """Whether `value` is a finite real number, Python's or NumPy's, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def set_kinds(settings, prefix):
    """Make each field of a Config or ProcessorConfig Python's value of its annotated kind (NumPy's integers,
    floats and bools are accepted), raising a ValueError that names the first field of another kind: a
    config.json's "14" or 14.5 is named here, not met later as a shape that differs or an error inside a kernel."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.type is bool:
            kind, expected, value_of_kind = is_flag(value), "true or false", bool
        elif field.type is float:
            kind, expected, value_of_kind = is_number(value) and value > 0, "a positive number", float
        elif field.type is int and field.name == "window_size":  # VitDet's 0: every block attends globally
            kind, expected, value_of_kind = is_integer(value) and value >= 0, "0 or a positive integer", int
        elif field.type is int:
            kind, expected, value_of_kind = is_integer(value) and value > 0, "a positive integer", int
        elif field.type == Tuple[int, ...]:
            kind = isinstance(value, (list, tuple)) and all(map(is_integer, value))
            expected, value_of_kind = "a list of integers", lambda values: tuple(map(int, values))
        else:  # ProcessorConfig's image_mean and image_std, which it checks itself
            continue
        if not kind:
            raise ValueError(f"{prefix}{field.name}: expected {expected}, got {value!r}")
        object.__setattr__(settings, field.name, value_of_kind(value))


@dataclass(frozen=True)
class Config:
    """ViTMatte = VitDet backbone + detail-capture decoder. Defaults are ViTMatte-S (VitDet defaults otherwise)."""
    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    mlp_ratio: int = 4
    patch_size: int = 16
    num_channels: int = 4
    image_size: int = 512  # sets the length of the global blocks' relative position tables: 2*512/16 - 1
    pretrain_image_size: int = 224  # the absolute position table is (224/16)^2 + 1 (cls) rows
    window_size: int = 14
    window_block_indices: Tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10)
    residual_block_indices: Tuple[int, ...] = (2, 5, 8, 11)
    use_absolute_position_embeddings: bool = True
    use_relative_position_embeddings: bool = True
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    batch_norm_eps: float = 1e-5
    convstream_hidden_sizes: Tuple[int, ...] = (48, 96, 192)
    fusion_hidden_sizes: Tuple[int, ...] = (256, 128, 64, 32)

    def __post_init__(self):
        set_kinds(self, "config: ")
        if not self.window_size:  # the reference's blocks all attend globally then, whatever the indices say
            object.__setattr__(self, "window_block_indices", ())
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"config: hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        if len(self.fusion_hidden_sizes) != len(self.convstream_hidden_sizes) + 1:
            raise ValueError("config: fusion_hidden_sizes needs one more entry than convstream_hidden_sizes")
        if self.patch_size != 2 ** len(self.fusion_hidden_sizes):  # each fusion block upsamples the features x2
            raise ValueError(f"config: {len(self.fusion_hidden_sizes)} fusion blocks bring the features back to the "
                             f"image's size only for patch_size {2 ** len(self.fusion_hidden_sizes)}, got "
                             f"{self.patch_size}")
        for i in self.window_block_indices + self.residual_block_indices:
            if not 0 <= i < self.num_hidden_layers:
                raise ValueError(f"config: block index {i} is outside 0..{self.num_hidden_layers - 1}")

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}")
        return cls(**values)


PRESETS = {
    "small": Config(),
    "base": Config(hidden_size=768, num_attention_heads=12),
}

# Values transformers' VitDetConfig uses for keys a hub config.json leaves out (the base checkpoints'
# backbone_config omits hidden_size and num_attention_heads).
_VITDET_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
                        patch_size=16, num_channels=3, image_size=224, pretrain_image_size=224, window_size=0,
                        window_block_indices=[], residual_block_indices=[],
                        use_absolute_position_embeddings=True, use_relative_position_embeddings=False,
                        qkv_bias=True, layer_norm_eps=1e-6, hidden_act="gelu")


def from_hf(hf):
    """Config from a transformers VitMatteConfig dict (the hub `config.json`)."""
    if hf.get("model_type") != "vitmatte":  # save_pretrained always writes it: another program's config.json
        found = f"model_type {hf['model_type']!r}" if "model_type" in hf else "no model_type"
        raise ValueError(f"config: expected a VitMatte config (model_type 'vitmatte'), got {found}")
    if not hf.get("backbone_config"):
        raise ValueError("config: no backbone_config; transformers would build VitDet's default backbone, its decoder "
                         "reading block 4's output, a network minimatte does not run")
    if not isinstance(hf["backbone_config"], dict):
        raise ValueError(f"config: backbone_config: expected an object of VitDet's settings, got "
                         f"{hf['backbone_config']!r}")
    backbone = {**_VITDET_DEFAULTS, **hf["backbone_config"]}
    if backbone["hidden_act"] != "gelu":
        raise ValueError(f"config: only the exact 'gelu' activation is supported, got {backbone['hidden_act']!r}")
    names = {f.name for f in dataclasses.fields(Config)}
    values = {k: v for k, v in backbone.items() if k in names}
    for name in ("image_size", "pretrain_image_size", "patch_size"):  # VitDet also takes (height, width) pairs
        sides = values[name]
        if isinstance(sides, (list, tuple)):
            if not sides or any(side != sides[0] for side in sides):
                raise ValueError(f"config: only square sizes are supported, got {name} {sides}")
            values[name] = sides[0]
    values["batch_norm_eps"] = hf.get("batch_norm_eps", 1e-5)
    values["convstream_hidden_sizes"] = hf.get("convstream_hidden_sizes", [48, 96, 192])
    values["fusion_hidden_sizes"] = hf.get("fusion_hidden_sizes", [256, 128, 64, 32])
    config = Config(**values)
    decoder_in = hf.get("hidden_size", 384)  # VitMatteConfig's default
    if decoder_in != config.hidden_size:
        raise ValueError(f"config: decoder hidden_size {decoder_in!r} differs from the backbone's {config.hidden_size}")
    _check_decoder_input(backbone, config.num_hidden_layers)
    return config


def _check_decoder_input(backbone, layers):
    """The decoder reads the last backbone stage that out_features or out_indices names (transformers:
    feature_maps[-1], "stageK" or K being block K's output). model.backbone gives the last block's output, which
    every published config names: another would be a silently different network."""
    for key, last in (("out_features", (f"stage{layers}",)), ("out_indices", (layers, -1))):
        chosen = backbone.get(key)
        if chosen and (not isinstance(chosen, list) or chosen[-1] not in last):
            raise ValueError(f"config: the decoder must read the last block's output ({key} [{last[0]!r}]), got "
                             f"{key} {chosen}")


def expected_shapes(config):
    """{checkpoint key: shape} of every float tensor a checkpoint for `config` holds (HF names)."""
    c, hd, p = config.hidden_size, config.head_dim, config.patch_size
    shapes = {}
    if config.use_absolute_position_embeddings:
        shapes["backbone.embeddings.position_embeddings"] = (1, (config.pretrain_image_size // p) ** 2 + 1, c)
    shapes["backbone.embeddings.projection.weight"] = (c, config.num_channels, p, p)
    shapes["backbone.embeddings.projection.bias"] = (c,)
    for i in range(config.num_hidden_layers):
        pre = f"backbone.encoder.layer.{i}."
        grid = config.window_size if i in config.window_block_indices else config.image_size // p
        layer = {"norm1.weight": (c,), "norm1.bias": (c,)}
        if config.use_relative_position_embeddings:
            layer.update({"attention.rel_pos_h": (2 * grid - 1, hd), "attention.rel_pos_w": (2 * grid - 1, hd)})
        layer["attention.qkv.weight"] = (3 * c, c)
        if config.qkv_bias:
            layer["attention.qkv.bias"] = (3 * c,)
        hidden = c * config.mlp_ratio
        layer.update({"attention.proj.weight": (c, c), "attention.proj.bias": (c,),
                      "norm2.weight": (c,), "norm2.bias": (c,),
                      "mlp.fc1.weight": (hidden, c), "mlp.fc1.bias": (hidden,),
                      "mlp.fc2.weight": (c, hidden), "mlp.fc2.bias": (c,)})
        if i in config.residual_block_indices:
            layer.update({"residual.conv1.weight": (c // 2, c, 1, 1),
                          "residual.norm1.weight": (c // 2,), "residual.norm1.bias": (c // 2,),
                          "residual.conv2.weight": (c // 2, c // 2, 3, 3),
                          "residual.norm2.weight": (c // 2,), "residual.norm2.bias": (c // 2,),
                          "residual.conv3.weight": (c, c // 2, 1, 1),
                          "residual.norm3.weight": (c,), "residual.norm3.bias": (c,)})
        shapes.update({pre + k: v for k, v in layer.items()})

    def batch_norm(prefix, n):
        return {f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")}

    c_in = config.num_channels
    for j, c_out in enumerate(config.convstream_hidden_sizes):
        shapes[f"decoder.convstream.convs.{j}.conv.weight"] = (c_out, c_in, 3, 3)
        shapes.update(batch_norm(f"decoder.convstream.convs.{j}.batch_norm", c_out))
        c_in = c_out
    details = (config.num_channels,) + config.convstream_hidden_sizes
    c_in = c
    for j, c_out in enumerate(config.fusion_hidden_sizes):
        shapes[f"decoder.fusion_blocks.{j}.conv.conv.weight"] = (c_out, details[-1 - j] + c_in, 3, 3)
        shapes.update(batch_norm(f"decoder.fusion_blocks.{j}.conv.batch_norm", c_out))
        c_in = c_out
    head = "decoder.matting_head.matting_convs"
    shapes.update({f"{head}.0.weight": (16, c_in, 3, 3), f"{head}.0.bias": (16,)})
    shapes.update(batch_norm(f"{head}.1", 16))
    shapes.update({f"{head}.3.weight": (1, 16, 1, 1), f"{head}.3.bias": (1,)})
    return shapes


def batch_norm_buffers(config):
    """The `num_batches_tracked` counters: in every torch checkpoint, unused at inference, optional here."""
    return {k.rsplit(".", 1)[0] + ".num_batches_tracked"
            for k in expected_shapes(config) if k.endswith(".running_mean")}


def from_shapes(shapes):
    """Infer the config from a checkpoint's {key: shape}.

    Window blocks are the layers whose relative position table is the shortest (the global blocks' tables
    are sized for `image_size`, ViTMatte's 512 px vs 14-token windows). Where that cannot tell them apart (no
    tables, or all of one length) it is an error asking for the config, not a guess. Epsilons are not in the
    shapes: they are the defaults, which every published checkpoint uses.
    """
    def shape(key):
        if key not in shapes:
            raise ValueError(f"weights: cannot infer the config, missing tensor {key!r}")
        return tuple(shapes[key])

    def count(prefix):  # 1 + the largest N of the "<prefix>N." keys: a gap is then a missing tensor, named
        indices = (k[len(prefix):].split(".")[0] for k in shapes if k.startswith(prefix))
        return 1 + max((int(i) for i in indices if i.isdigit()), default=-1)

    c, channels, patch, _ = shape("backbone.embeddings.projection.weight")
    layers = range(count("backbone.encoder.layer."))
    residual = tuple(i for i in layers if f"backbone.encoder.layer.{i}.residual.conv1.weight" in shapes)
    table = "backbone.encoder.layer.0.attention.rel_pos_h"
    lengths = {i: shape(f"backbone.encoder.layer.{i}.attention.rel_pos_h")[0] for i in layers} \
        if table in shapes else {}
    kinds = sorted(set(lengths.values()))  # a window's and the whole grid's
    if len(kinds) != 2:
        found = (f"missing tensor {table!r}" if not kinds else f"all {kinds[0]} rows long" if len(kinds) == 1
                 else f"of {len(kinds)} lengths")
        raise ValueError(f"weights: cannot infer the config from the blocks' relative position tables ({found}): "
                         "which blocks attend within windows, and over how many tokens, is told by their lengths; "
                         "give the checkpoint's config.json beside it")
    head_dim = shape(table)[1]
    window, whole = kinds
    values = dict(window_size=(window + 1) // 2, window_block_indices=tuple(i for i in layers if lengths[i] == window),
                  image_size=(whole + 1) // 2 * patch)
    absolute = "backbone.embeddings.position_embeddings" in shapes
    if absolute:
        positions = shape("backbone.embeddings.position_embeddings")[1] - 1
        values["pretrain_image_size"] = int(round(positions ** 0.5)) * patch
    # A fusion block for each detail map: the input's and each ConvStream level's.
    levels = max(count("decoder.convstream.convs."), count("decoder.fusion_blocks.") - 1)
    convstream = [shape(f"decoder.convstream.convs.{i}.conv.weight")[0] for i in range(levels)]
    fusion = [shape(f"decoder.fusion_blocks.{i}.conv.conv.weight")[0] for i in range(levels + 1)]
    return Config(hidden_size=c, num_hidden_layers=len(layers), num_attention_heads=c // head_dim,
                  mlp_ratio=shape("backbone.encoder.layer.0.mlp.fc1.weight")[0] // c, patch_size=patch,
                  num_channels=channels, residual_block_indices=residual,
                  use_absolute_position_embeddings=absolute, use_relative_position_embeddings=True,
                  qkv_bias="backbone.encoder.layer.0.attention.qkv.bias" in shapes,
                  convstream_hidden_sizes=tuple(convstream), fusion_hidden_sizes=tuple(fusion), **values)


@dataclass(frozen=True)
class ProcessorConfig:
    """Pixel preprocessing, as transformers' VitMatteImageProcessor (the hub checkpoints' values by default).

    RGB -> (v * rescale_factor - mean) / std; the trimap is only rescaled; both are zero-padded
    bottom/right to a multiple of size_divisor. legacy_padding: the original repository's rule instead, where
    if either side is not a multiple, both sides get size_divisor - side % size_divisor (a whole size_divisor
    on a side that already was one).
    """
    rescale_factor: float = 1 / 255
    image_mean: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    size_divisor: int = 32
    do_rescale: bool = True
    do_normalize: bool = True
    do_pad: bool = True
    legacy_padding: bool = False

    def __post_init__(self):
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            try:
                values = (float(values),) * 3 if isinstance(values, numbers.Real) else tuple(float(v) for v in values)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected a number or 3 numbers (R, G, B), got {values!r}") from None
            if len(values) != 3:
                raise ValueError(f"{name}: expected 3 values (R, G, B), got {len(values)}")
            if not all(map(math.isfinite, values)):
                raise ValueError(f"{name}: expected finite numbers, got {values}")
            object.__setattr__(self, name, values)
        if any(s == 0 for s in self.image_std):
            raise ValueError("image_std: values must be non-zero")
        set_kinds(self, "")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# hustvl's own inference (run_one_image.py, the model's preprocess_inputs): the ImageNet statistics the checkpoints
# were trained with, written as there (123.675 / 255 is 0.485), and its padding. transformers' processor uses 0.5.
ORIGINAL_PROCESSOR = ProcessorConfig(image_mean=(123.675 / 255, 116.28 / 255, 103.53 / 255),
                                     image_std=(58.395 / 255, 57.12 / 255, 57.375 / 255), legacy_padding=True)


def processor_from_hf(hf):
    """ProcessorConfig from a hub `preprocessor_config.json` dict (legacy `size_divisibility` accepted)."""
    values = dict(hf)
    if "size_divisibility" in values:
        values.setdefault("size_divisor", values.pop("size_divisibility"))
    return ProcessorConfig.from_dict(values)


def read_json(path):
    """A JSON object's file as a dict; a ValueError if it holds anything else."""
    with open(path, encoding="utf-8") as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"expected a JSON object, got text that is not JSON ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, got a {type(values).__name__}")
    return values
