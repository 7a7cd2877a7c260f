"""ViTMatte: a plain ViT (VitDet) backbone and a light detail-capture decoder.

Read top to bottom it is the paper's figure: patch embedding -> 12 transformer blocks (windowed and
global attention, residual conv blocks after the global ones) -> ConvStream details -> fusion -> head.
Layers are plain functions over the parameter tree of the checkpoint (HF names; see weights.py).
Everything is channels-last: tokens are (B, h, w, C), feature maps (B, H, W, C).
"""
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Tuple

import numpy

from . import backend, weights
from .config import ORIGINAL_PROCESSOR, PRESETS, Config, ProcessorConfig, from_shapes
from .kernels.attention import global_attention, relative_embeddings, window_attention
from .kernels.conv import conv2d, conv2d_upsampled, patch_embed
from .kernels.nn import add_residual, gelu, layer_norm, linear, sigmoid
from .kernels.resize import resize

RESIDUAL_LAYER_NORM_EPS = 1e-6  # VitDet's channels-first LayerNorm in the residual block: fixed, not layer_norm_eps


# ----------------------------------------------------------------------------------------------- backbone

def absolute_positions(p, size):
    """The (1, 1+g*g, C) pretraining table p["position_embeddings"] -> (h, w, C): drop the cls row, bicubic-resize
    the g x g grid (PyTorch bicubic, align_corners=False, also when shrinking; reference: VitDet
    `get_absolute_positions`). On CuPy kept in p for the size last asked for (backend.made_per_size)."""
    table = p["position_embeddings"]
    g = int(round((table.shape[1] - 1) ** 0.5))
    grid = table[0, 1:].reshape(g, g, -1)  # (g*g, C) -> (g, g, C)
    return backend.made_per_size(p, "absolute positions", size, lambda: resize(grid, size, "cubic"),
                                 backend.array_module(table))  # (g, g, C) -> (h, w, C)


def self_attention(x, p, config, windowed, return_probs, residual):
    """residual + the attention's output projection (its bias added with the residual: nn.add_residual)."""
    grid = (config.window_size,) * 2 if windowed else x.shape[1:3]  # the keys each query attends over
    relative = relative_embeddings(p, grid)  # ((a, hd, a), (b, hd, b)) or None
    if windowed:
        # The reference pads the normalised tokens with zeros to whole windows before the qkv projection, so a
        # pad's q, k and v are the qkv bias, and every window query attends to them unmasked. window_attention
        # does the same, and projects the tokens itself, a band of window rows at a time.
        out, probs = window_attention(x, p["qkv"], config.window_size, config.num_attention_heads, relative,
                                      return_probs)  # (B, h, w, C) -> (B, h, w, C)
    else:  # projects the tokens head by head (see global_attention)
        out, probs = global_attention(x, p["qkv"], config.num_attention_heads, relative,
                                      return_probs)  # (B, h, w, C) -> (B, h, w, C)
    return add_residual(linear(out, p["proj"], add_bias=False), p["proj"].get("bias"), residual), probs


def mlp(x, p, residual):
    """residual + fc2(exact GELU(fc1(x))), in place of the residual, a few hundred tokens at a time: the 4C-wide
    hidden layer is never whole. Each layer's bias is added by the kernel after it (nn.gelu, nn.add_residual)."""
    xp = backend.array_module(x)
    c = x.shape[-1]
    tokens, residual = x.reshape(-1, c), residual.reshape(-1, c)
    out = xp.empty_like(tokens)

    def chunk(part):
        hidden = gelu(linear(tokens[part], p["fc1"], add_bias=False), p["fc1"].get("bias"))  # (n, C) -> (n, 4C)
        linear(hidden, p["fc2"], out=out[part], add_bias=False)  # (n, 4C) -> (n, C)
        add_residual(out[part], p["fc2"].get("bias"), residual[part], out=residual[part])

    backend.run_slices(chunk, tokens.shape[0], xp, "mlp hidden", width=p["fc1"]["weight"].shape[0])
    return residual.reshape(x.shape)


def residual_bottleneck(x, p):
    """x + (conv1x1 (C -> C/2) -> LN -> GELU -> conv3x3 -> LN -> GELU -> conv1x1 (-> C) -> LN), no biases, in place
    of x."""
    eps = RESIDUAL_LAYER_NORM_EPS
    r = layer_norm(conv2d(x, p["conv1"]), p["norm1"], eps, gelu_after=True)  # (B, h, w, C) -> (B, h, w, C/2)
    r = layer_norm(conv2d(r, p["conv2"]), p["norm2"], eps, gelu_after=True)
    return layer_norm(conv2d(r, p["conv3"]), p["norm3"], eps, residual=x)  # -> (B, h, w, C), added into x


def vit_block(x, p, config, index, return_probs=False):
    eps = config.layer_norm_eps
    windowed = index in config.window_block_indices
    # A new array: the caller may keep the block's input as a hidden state. The later sums are made in place.
    x, probs = self_attention(layer_norm(x, p["norm1"], eps), p["attention"], config, windowed, return_probs, x)
    x = mlp(layer_norm(x, p["norm2"], eps), p["mlp"], x)
    if index in config.residual_block_indices:
        x = residual_bottleneck(x, p["residual"])
    return x, probs


def backbone(pixels, p, config, keep_hidden=False, keep_attentions=False, stage_done=lambda stage: None):
    """(B, H, W, 4) -> (B, H/16, W/16, C), plus the 13 hidden states and 12 attention maps if asked.
    stage_done(name) is called after each stage of stage_flops."""
    x = patch_embed(pixels, p["embeddings"]["projection"])  # (B, H, W, 4) -> (B, h, w, C)
    if config.use_absolute_position_embeddings:
        x += absolute_positions(p["embeddings"], x.shape[1:3])
    stage_done("patch embedding")
    hidden, attentions = [x] if keep_hidden else None, [] if keep_attentions else None
    for index, layer in p["encoder"]["layer"].items():
        x, probs = vit_block(x, layer, config, index, keep_attentions)
        if keep_hidden:
            hidden.append(x)
        if keep_attentions:
            attentions.append(probs)
        stage_done(f"block {index + 1}/{config.num_hidden_layers}")
    return x, hidden, attentions


# ------------------------------------------------------------------------------------------------ decoder

def detail_capture(features, pixels, p, stage_done=lambda stage: None):
    """ConvStream details of the input at 1/2, 1/4, 1/8, fused into the upsampled ViT features, then the head.

    Every BatchNorm is folded into its convolution at load (weights.fold_batch_norms), and every convolution's
    weight laid out there as its kernel reads it, the fusion convs' low-resolution weights too
    (weights.prepare_convs).
    stage_done(name) is called after each stage of stage_flops.
    """
    details = [pixels]  # D0: (B, H, W, 4), the normalised input with its trimap
    for conv in p["convstream"]["convs"].values():
        details.append(conv2d(details[-1], conv["conv"], stride=2, relu=True))  # D1..D3: (B, H/2^k, W/2^k, C_k)
    stage_done("details")
    x = features  # (B, H/16, W/16, C)
    blocks = p["fusion_blocks"]
    for number, block in enumerate(blocks.values(), 1):
        detail = details.pop()  # D3 first: each detail map is let go once fused (D1 is 48 channels at H/2)
        # Reference: cat([detail, upsample2x(x)], channels) -> conv3x3 -> BN -> ReLU, never built in memory.
        x = conv2d_upsampled(detail, x, block["conv"]["conv"], relu=True)  # (B, H', W', C) -> (B, 2H', 2W', C')
        stage_done(f"fusion {number}/{len(blocks)}")
    head = p["matting_head"]["matting_convs"]
    x = conv2d(x, head[0], relu=True)  # (B, H, W, 32) -> (B, H, W, 16)
    alphas = sigmoid(conv2d(x, head[3]))  # (B, H, W, 16) -> (B, H, W, 1), float32
    stage_done("head")
    return alphas


# Batches of more pixels than backend.piece_elements(xp, "decoder band") (on NumPy 2^20, a 1024x1024 image) run the
# decoder in bands of at most that many. Its maps peak at 200-250 bytes a pixel of a band: for a 2048x2048 image
# tracemalloc measured 296 MiB in 1-megapixel bands and 827 MiB in one band, in about the same time on NumPy
# (10.9 and 9.9 s; the halos add 9% to the rows; 2026-12-03).
DECODER_HALO = 2  # feature rows (32 pixel rows of 16-pixel patches) a band reads beyond each of its edges


def decoder(features, pixels, p, stage_done=lambda stage, share=1, label=None: None):
    """detail_capture, in bands of rows for batches of more pixels than a "decoder band" piece (see above): its
    full-resolution maps grow with the images (tens of channels a pixel); a band's are bounded.

    Exact: each band reads DECODER_HALO feature rows (32 pixel rows) of features and pixels beyond its edges,
    which covers the decoder's receptive field (it reaches 2 feature rows and 31 pixel rows; the tests check
    8- and 32-pixel patches too); the alphas of those halo rows, wrong where the band's edge stands in for the
    image's border, are dropped. Bands start on feature rows, so ConvStream's stride-2 grids line up with the
    whole image's.
    stage_done(stage, share, label) is called after each stage of each band, `share` the band's part of it.
    """
    xp = backend.array_module(pixels)
    h, w = features.shape[1:3]
    scale = pixels.shape[1] // h  # pixel rows per feature row: the patch size
    count = -(-h // max(1, backend.piece_elements(xp, "decoder band") // (len(pixels) * w * scale * scale)))
    if count == 1:
        return detail_capture(features, pixels, p, stage_done)
    rows = -(-h // count)  # feature rows per band, as equal as can be
    alphas = xp.empty((*pixels.shape[:3], 1), dtype=xp.float32)  # (B, H, W, 1)
    bands = range(0, h, rows)
    for number, r0 in enumerate(bands, 1):
        r1 = min(h, r0 + rows)
        f0, f1 = max(0, r0 - DECODER_HALO), min(h, r1 + DECODER_HALO)  # the band and its halo
        band_done = _band_reporter(stage_done, Fraction(r1 - r0, h), f"band {number}/{len(bands)}")
        band = detail_capture(features[:, f0:f1], pixels[:, f0 * scale:f1 * scale], p, band_done)
        alphas[:, r0 * scale:r1 * scale] = band[:, (r0 - f0) * scale:(r1 - f0) * scale]  # the halo cropped
    return alphas


def _band_reporter(stage_done, share, band):
    return lambda stage: stage_done(stage, share, f"{band}, {stage}")


# ---------------------------------------------------------------------------------------------------- work

HEAD_CHANNELS = 16  # the matting head's hidden width, fixed in the reference


def stage_flops(config, height, width):
    """{stage: FLOPs} of one image's forward pass at a padded (height, width), in the order the stages run.

    Counts GEMMs and convolutions (1 multiply-add = 2 FLOPs) as the reference computes them, i.e. what
    torch.utils.flop_counter counts on transformers' model: window blocks attend from and project their padded
    windows (minimatte skips the pads' queries and projections). Elementwise work, softmax and norms are not
    counted.
    """
    c, k = config.hidden_size, config.window_size
    h, w = height // config.patch_size, width // config.patch_size
    n = h * w
    relative = config.use_relative_position_embeddings
    macs = {"patch embedding": n * c * config.num_channels * config.patch_size ** 2}
    for index in range(config.num_hidden_layers):
        if index in config.window_block_indices:  # per window: k*k queries x k*k keys, tables of 2k rows
            windows = -(-h // k) * -(-w // k)
            tokens, grids, queries, keys, table_rows = windows * k * k, windows, k * k, k * k, 2 * k
        else:
            tokens, grids, queries, keys, table_rows = n, 1, n, n, h + w
        block = (tokens * 4 * c * c  # qkv (3C^2) and proj (C^2)
                 + grids * 2 * queries * keys * c  # q @ k^T and probs @ v, all heads
                 + relative * grids * queries * table_rows * c  # q against both tables
                 + n * 2 * config.mlp_ratio * c * c)
        if index in config.residual_block_indices:
            half = c // 2
            block += n * (c * half + 9 * half * half + half * c)  # conv1x1, conv3x3, conv1x1
        macs[f"block {index + 1}/{config.num_hidden_layers}"] = block
    channels, pixels = (config.num_channels, *config.convstream_hidden_sizes), height * width
    macs["details"] = sum(pixels // 4 ** (level + 1) * channels[level + 1] * 9 * channels[level]
                          for level in range(len(channels) - 1))
    inputs, levels = c, len(config.fusion_hidden_sizes)
    for number, (out, detail) in enumerate(zip(config.fusion_hidden_sizes, reversed(channels)), 1):
        macs[f"fusion {number}/{levels}"] = pixels // 4 ** (levels - number) * out * 9 * (inputs + detail)
        inputs = out
    macs["head"] = pixels * (HEAD_CHANNELS * 9 * inputs + HEAD_CHANNELS)
    return {stage: 2 * count for stage, count in macs.items()}


# ------------------------------------------------------------------------------------------------- model

@dataclass
class MattingOutput:
    """As transformers' ImageMattingOutput: alphas (B, 1, H, W); hidden_states: 13 arrays (B, C, h, w);
    attentions: 12 arrays, (B*nW, heads, 196, 196) for window blocks and (B, heads, N, N) for global ones."""
    alphas: object
    hidden_states: Optional[Tuple[object, ...]] = None
    attentions: Optional[Tuple[object, ...]] = None


class VitMatte:
    """A loaded ViTMatte network on one backend. Call it on normalised, padded (B, 4, H, W) pixel values.

    precision "float16" stores weights and activations in float16 and computes matrix products with float32
    accumulation, normalisation statistics, softmax and GELU in float32 (for GPUs; on NumPy it is an
    emulation of the same numbers and slower than float32). Alphas are float32 either way.
    """

    def __init__(self, params, config, processor=ProcessorConfig(), xp=numpy, dtype=numpy.float32):
        # Padded to such multiples, most images' sides are not whole patches: the reference fails on them too.
        if processor.do_pad and processor.size_divisor % config.patch_size:
            raise ValueError(f"size_divisor: the processor pads images to multiples of {processor.size_divisor}, "
                             f"which the network's {config.patch_size}-pixel patches do not divide")
        self.params, self.config, self.processor, self.xp = params, config, processor, xp
        self.dtype = numpy.dtype(dtype)

    @classmethod
    def from_state_dict(cls, state, config=None, processor=None, backend_name=None, precision=None):
        """From a flat {HF key: array} dict (torch naming); checked strictly, BN folded, moved to the backend."""
        xp = backend.resolve(backend_name)
        dtype = backend.compute_dtype(precision)
        state = {k: backend.to_numpy(v) for k, v in state.items()}
        config = config or from_shapes({k: v.shape for k, v in state.items()})
        weights.check_state_dict(state, config)
        state = weights.prepare_convs(weights.fold_batch_norms(state, config), config, dtype)
        state = {k: v.astype(dtype, copy=False) for k, v in state.items()}
        params = backend.to_device(weights.unflatten(state), xp)
        return cls(params, config, processor or ProcessorConfig(), xp, dtype)

    def __repr__(self):
        """One line for a notebook or a log: which network, on which backend, in which precision, fed how."""
        preset = next((name for name, config in PRESETS.items() if config == self.config), None)
        c = self.config
        network = preset or f"hidden_size={c.hidden_size}, layers={c.num_hidden_layers}, heads={c.num_attention_heads}"
        preprocessing = "original" if self.processor == ORIGINAL_PROCESSOR else "hf"
        return f"VitMatte({network}, backend={self.backend}, precision={self.precision}, preprocessing={preprocessing})"

    def __getstate__(self):
        """Pickled with its backend's name, not the module (which no pickle holds): a model passed to worker
        processes that are spawned, not forked (multiprocessing on macOS and Windows, and Linux from Python 3.14),
        or deep-copied."""
        return {**self.__dict__, "xp": self.backend}

    def __setstate__(self, state):
        self.__dict__.update(state, xp=backend.resolve(state["xp"]))

    @property
    def backend(self):
        return backend.name_of(self.xp)

    @property
    def precision(self):
        return self.dtype.name

    def __call__(self, pixel_values, output_hidden_states=False, output_attentions=False, labels=None,
                 progress=None):
        """As the reference's forward pass. progress(fraction, stage), if given, is called as each stage of
        stage_flops finishes, with the fraction of the pass's FLOPs done (1.0 after the last)."""
        if labels is not None:
            raise NotImplementedError("Training is not yet supported")  # the reference's behaviour
        x = self._check_pixels(pixel_values)
        stage_done = self._reporter(progress, x.shape[1:3])
        with backend.cpu_threads(self.xp), backend.small_pages(self.xp):
            features, hidden, attentions = backbone(x, self.params["backbone"], self.config,
                                                    output_hidden_states, output_attentions, stage_done)
            alphas = decoder(features, x, self.params["decoder"], stage_done)
        return MattingOutput(
            alphas=alphas.transpose(0, 3, 1, 2),  # (B, H, W, 1) -> (B, 1, H, W)
            hidden_states=tuple(self.xp.ascontiguousarray(h.transpose(0, 3, 1, 2)) for h in hidden)
            if output_hidden_states else None,  # channels-first (B, C, h, w), as the reference
            attentions=tuple(attentions) if output_attentions else None)

    def _reporter(self, progress, size):
        """stage_done(stage, share=1, label=None) for backbone and decoder: progress(fraction of the FLOPs
        done, label or stage) when `share` of `stage` is done (exact fractions: the last report is 1.0)."""
        if progress is None:
            return lambda stage, share=1, label=None: None
        work = stage_flops(self.config, *size)
        total, done = sum(work.values()), 0

        def stage_done(stage, share=1, label=None):
            nonlocal done
            backend.synchronize(self.xp)  # GPU launches return before the work is done: report finished work
            done += work[stage] * share
            progress(float(done / total), label or stage)
        return stage_done

    def _check_pixels(self, pixel_values):
        shape, channels = getattr(pixel_values, "shape", None), self.config.num_channels
        if shape is None or len(shape) != 4:
            got = type(pixel_values).__name__ if shape is None else f"shape {tuple(shape)}"  # torch.Size too
            raise ValueError(f"pixel_values: expected a (B, {channels}, H, W) array, got {got}")
        if shape[1] != channels:
            hint = " (channels last? pass x.transpose(0, 3, 1, 2))" if shape[3] == channels else ""
            raise ValueError(f"pixel_values: expected {channels} channels (R, G, B, trimap), got {shape[1]}{hint}")
        # To the GPU as it is, converted there (below); a torch tensor through its __array__.
        x = backend.as_array(pixel_values, "pixel_values", self.xp)
        if x.dtype.kind != "f":  # uint8 pixels, say, not normalised: alphas of nonsense
            raise ValueError(f"pixel_values: expected normalised floats (as minimatte.preprocess makes them), got "
                             f"{pixel_values.dtype} values")
        if not shape[0]:  # the reference fails on it too
            raise ValueError(f"pixel_values: expected a batch of at least one image, got shape {tuple(shape)}")
        patch = self.config.patch_size
        if shape[2] % patch or shape[3] % patch or 0 in shape[2:]:
            raise ValueError(f"pixel_values: height and width must be positive multiples of {patch} (pad them, "
                             f"e.g. with minimatte.preprocess), got {shape[2]}x{shape[3]}")
        x = x.astype(self.dtype, copy=False)
        # (B, 4, H, W) -> (B, H, W, 4): no copy where the array is a channels-last one's view (preprocess's)
        return self.xp.ascontiguousarray(x.transpose(0, 2, 3, 1))


__all__ = ["Config", "MattingOutput", "VitMatte", "backbone", "decoder", "detail_capture", "stage_flops", "vit_block"]
