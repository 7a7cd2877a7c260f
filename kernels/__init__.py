"""Hand-written array kernels for ViTMatte, installed as `minimatte.kernels`.

Each kernel takes its array module from its inputs (NumPy or CuPy) and works on channels-last
float32 arrays. Parameters are the dicts of the checkpoint, e.g. `{"weight": ..., "bias": ...}`.
"""
from .attention import attention, relative_position_table, window_partition, window_unpartition
from .conv import conv2d, patch_embed
from .nn import erf, gelu, layer_norm, linear, relu, sigmoid
from .resize import interpolation_matrix, resize, upsample2x

__all__ = [
    "attention", "conv2d", "erf", "gelu", "interpolation_matrix", "layer_norm", "linear",
    "patch_embed", "relative_position_table", "relu", "resize", "sigmoid", "upsample2x",
    "window_partition", "window_unpartition",
]
