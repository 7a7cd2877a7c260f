"""minimatte: ViTMatte image matting on NumPy (and CuPy), without PyTorch.

    import minimatte
    model = minimatte.load("path/to/checkpoint")        # HF directory, safetensors file or checkpoint name
    alpha = minimatte.infer("image.png", "trimap.png", model=model)   # float32 (H, W) in [0, 1]
    rgba = minimatte.cutout("image.png", alpha)                       # uint8 (H, W, 4), foreground colours
    minimatte.save("cutout.png", rgba, icc_profile=minimatte.icc_profile("image.png"),   # as the CLI writes it
                   dpi=minimatte.dpi("image.png"))
"""
from . import convert, metrics
from .api import DEFAULT_MODEL, infer, load
from .backend import keep_freed_memory
from .config import PRESETS, Config, ProcessorConfig
from .files import save
from .foreground import cutout, estimate_foreground, subject_box
from .model import MattingOutput, VitMatte
from .processing import dpi, icc_profile, preprocess, read_image, read_trimap, trimap_from_mask

__version__ = "0.1.0"
__all__ = ["Config", "DEFAULT_MODEL", "MattingOutput", "PRESETS", "ProcessorConfig", "VitMatte", "cutout", "dpi",
           "estimate_foreground", "icc_profile", "infer", "keep_freed_memory", "load", "preprocess", "read_image",
           "read_trimap", "save", "subject_box", "trimap_from_mask"]
