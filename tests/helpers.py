"""Shared test fixtures: paths, the spec's deterministic weights and inputs."""
import itertools
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

from minimatte import config as cfg

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MINIMATTE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"
PILLOW_VERSION = tuple(int(part) for part in PIL.__version__.split(".")[:2])
# A ViTMatte-S checkpoint's config.json, its settings only (the hub's files hold more keys, such as architectures)
SMALL_HUB_CONFIG = {"model_type": "vitmatte", "hidden_size": 384,
                    "backbone_config": {"hidden_size": 384, "num_attention_heads": 6, "num_channels": 4,
                                        "image_size": 512, "window_size": 14,
                                        "window_block_indices": [0, 1, 3, 4, 6, 7, 9, 10],
                                        "residual_block_indices": [2, 5, 8, 11],
                                        "use_relative_position_embeddings": True}}
# A test kernel for common.cuh's Divisor (run emulated and on a GPU): quotient[i], remainder[i] = n[i] / d, n[i] % d.
DIVIDE_KERNEL = '''
extern "C" __global__ void divide(const int* n, int* quotient, int* remainder, int d, long long magic, int count) {
    const Divisor divisor(d, magic);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x)
        quotient[i] = divisor.divide(n[i], remainder[i]);
}'''

# A ViTMatte of 12 narrower blocks, fast to build and run, to vary the config from; and the variations that change
# the network's shape (others change only values: epsilons, grids).
SMALLER = dict(hidden_size=128, num_attention_heads=2, image_size=256, window_size=7, mlp_ratio=2,
               convstream_hidden_sizes=(8, 16, 32), fusion_hidden_sizes=(32, 16, 8, 8))
OTHER_SHAPES = [
    dict(use_relative_position_embeddings=False), dict(qkv_bias=False),
    dict(window_size=0),  # the reference's window blocks then attend globally
    dict(residual_block_indices=()), dict(num_channels=3),
    dict(window_block_indices=(0, 5, 11), residual_block_indices=(1,)),
    dict(num_hidden_layers=6, window_block_indices=(0, 1, 3, 4), residual_block_indices=(2, 5)),
    dict(patch_size=8, convstream_hidden_sizes=(8, 16), fusion_hidden_sizes=(16, 8, 8)),  # 3 fusion blocks
    dict(patch_size=32, convstream_hidden_sizes=(8, 16, 32, 32), fusion_hidden_sizes=(32, 16, 8, 8, 8)),  # 5
]


def config_id(fields):
    return ",".join(fields) or "smaller"


def deterministic_state(config):
    """The reference's deterministic weights (spec section 9), every HF key, float32 (int64 counters)."""
    state = {}
    shapes = dict(cfg.expected_shapes(config))
    shapes.update({k: () for k in cfg.batch_norm_buffers(config)})
    for key, shape in shapes.items():
        rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
        if key.endswith("num_batches_tracked"):
            state[key] = np.zeros((), dtype=np.int64)
            continue
        if key.endswith("running_var"):
            state[key] = (0.5 + rng.random(shape)).astype(np.float32)
            continue
        # In place: the same values as the spec's expressions (0.1 * n, n / sqrt(fan_in), ...), without a float64
        # temporary of every large weight (fresh memory costs more than the arithmetic on some machines).
        n = rng.standard_normal(shape)
        if key.endswith("running_mean"):
            n *= 0.1
        elif key.endswith(".weight") and (".norm" in key or ".batch_norm." in key or "matting_convs.1." in key):
            n *= 0.1
            n += 1
        elif key.endswith(".bias"):
            n *= 0.1
        elif "position_embeddings" in key:
            n *= 0.5
        elif "rel_pos_" in key:
            n *= 0.1
        else:
            n /= np.sqrt(np.prod(shape[1:]))
        state[key] = n.astype(np.float32)
    return state


def with_large_activations(state):
    """`state` with three channels of the residual stream at about +-1000 from the third block on (the fc2 biases
    of the second and third raised), as large as real ViTMatte checkpoints' hidden states reach (spec section 5:
    ~1000, where the deterministic weights' reach about 20). A copy; the biases' other channels are unchanged."""
    state = dict(state)
    for block in (1, 2):
        key = f"backbone.encoder.layer.{block}.mlp.fc2.bias"
        bias = state[key].copy()
        bias[[7, 33, 200]] += [500, -500, 500]
        state[key] = bias
    return state


def input_a():
    """Spec input A: (1, 4, 64, 96) pixel values fed straight to the model."""
    y, x = np.mgrid[0:64, 0:96].astype(np.float64)
    rgb = [np.sin(0.11 * x + 0.07 * y + c) for c in range(3)]
    trimap = np.where(x < 32, 0.0, np.where(x < 64, 128 / 255, 1.0))
    return np.stack(rgb + [trimap])[None].astype(np.float32)


def input_b():
    """Spec input B: a uint8 60x90 RGB image and trimap, to go through the processor."""
    y, x, c = np.mgrid[0:60, 0:90, 0:3]
    image = ((7 * y + 13 * x + 29 * c) % 256).astype(np.uint8)
    trimap = np.where(x[..., 0] < 30, 0, np.where(x[..., 0] < 60, 128, 255)).astype(np.uint8)
    return image, trimap


def product_layouts(xp=np):
    """(a, b, out or None, whether one strided-batched cuBLAS call computes a @ b) on backend `xp`: the layouts the
    kernels multiply on CuPy (backend.strided_batched), and some it must leave to CuPy's matmul."""
    draw = np.random.default_rng(5).standard_normal

    def randn(*shape, dtype=np.float32):
        return xp.asarray(draw(shape).astype(dtype))
    q, k_t, v = randn(2, 6, 40, 64), randn(2, 6, 64, 50), randn(2, 6, 50, 64)
    joined = xp.zeros((2, 40, 6, 64), np.float32)  # heads joined, as attend's output
    table = randn(5, 5, 64).transpose(0, 2, 1)  # relative_embeddings' (a, hd, a) view: columns contiguous
    tokens, weight = randn(30, 48), randn(24, 48)
    return [
        (q, k_t, None, True),  # contiguous stacks
        (q[:1, 2:5, 8:24], k_t[:1, 2:5, :, 10:30], None, True),  # a slab of queries against a block of keys
        (randn(1, 3, 16, 50), v[1:, 1:4], joined[1:, 8:24, 1:4].transpose(0, 2, 1, 3), True),  # into a view
        (randn(5, 7, 64), table, None, True),
        (tokens, weight.T, None, True),  # linear: W^T, columns contiguous
        (tokens[:, None], weight.T, None, True),  # a stack of one-row matrices, the rows of a new axis (stride 0)
        (tokens, weight.T, xp.zeros((40, 24), np.float32)[5:35], True),
        (randn(16, 9, 48), randn(48, 24), None, True),  # one matrix for every item of a stack: stride 0
        (randn(16, 9, 48), randn(16, 48, 24), None, True),  # Winograd's 16 products
        (randn(2, 6, 40, 64, dtype=np.float16), randn(2, 6, 64, 50, dtype=np.float16), None, True),
        (q[:, ::2], k_t[:, ::2], None, True),  # every other head: still one stride across (item, head)
        (q[:1], k_t[:1, :1], None, True),  # one head's keys for all heads: stride 0
        (q[:, :3], k_t[:, :3], None, False),  # (item, head) not evenly spaced
        (randn(5, 7, 64)[::-1], table, None, False),  # items last first: a negative stride
        (tokens, weight.T, xp.zeros((24, 30), np.float32).T, False),  # out by columns: cuBLAS writes rows
        (q[:, :, :0], k_t, None, False),  # no rows: nothing for cuBLAS to compute
        (q[:, :, ::2, ::2], k_t[:, :, ::2], None, False),  # neither rows nor columns contiguous
        (q.astype(np.float64), k_t.astype(np.float64), None, False),
        (q, k_t[:1], None, False),  # items broadcast, heads not: (item, head) not one stride
        (q, k_t.astype(np.float16), None, False),  # of two dtypes: matmul's promotion
        (tokens, weight[0], None, False),  # a matrix times a vector
    ]


def _s15(*values):
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz(*values):
    return b"XYZ \0\0\0\0" + _s15(*values)


def _icc(device_class, space, connection, name, tags):
    """An ICC v2 profile: the header, a D50 media white, a description and the given (signature, body) tags."""
    text = name.encode("ascii") + b"\0"
    tags = [(b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)),
            (b"wtpt", _xyz(0.9642, 1.0, 0.8249))] + tags
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class + space + connection
              + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + _s15(0.9642, 1.0, 0.8249))
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def _gamma_curve(gamma):
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def gamma_profile(gamma, name="test RGB"):
    """An ICC v2 RGB display profile with sRGB's primaries (D50-adapted) and a pure power-law tone curve:
    gamma 1.0 is linear light. Pillow's ImageCms makes only sRGB itself; colour-managed tests need another."""
    tags = [(b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
            (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141))]
    return _icc(b"mntr", b"RGB ", b"XYZ ", name, tags + [(s, _gamma_curve(gamma)) for s in (b"rTRC", b"gTRC", b"bTRC")])


def grey_profile(gamma):
    """An ICC v2 greyscale display profile with a pure power-law tone curve (gamma 1.0 is linear light)."""
    return _icc(b"mntr", b"GRAY", b"XYZ ", "test grey", [(b"kTRC", _gamma_curve(gamma))])


def cmyk_profile():
    """An ICC v2 CMYK printer profile whose inks are all neutral: a table of the 16 ink corners (interpolated
    between them) with lightness L* = 100 max(0, 1 - (c + m + y) / 3 - k) and a* = b* = 0. Cyan ink alone is a
    grey, where PIL's naive conversion makes it cyan."""
    ramp = bytes(range(256))
    corners = itertools.product((0, 1), repeat=4)  # the 2x2x2x2 grid, the first ink slowest
    grid = b"".join(bytes([round(255 * max(0, 1 - (c + m + y) / 3 - k)), 128, 128]) for c, m, y, k in corners)
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + _s15(1, 0, 0, 0, 1, 0, 0, 0, 1) + ramp * 4 + grid + ramp * 3
    return _icc(b"prtr", b"CMYK", b"Lab ", "test CMYK", [(b"A2B0", lut)])


def read_named_pipe(path):
    """Make a named pipe at `path` and read it in a thread; returns a function that waits for the writer (10 s at
    most) and gives the bytes read, or None where nothing opened the pipe to write (a writer that replaced it)."""
    os.mkfifo(path)
    read = []

    def reader():
        with open(path, "rb") as pipe:
            read.append(pipe.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    def result():
        thread.join(timeout=10)
        return read[0] if read else None
    return result


def write_named_pipe(path, contents):
    """Make a named pipe at `path` and write `contents` into it in a thread, as bash's <(command) gives a file."""
    os.mkfifo(path)

    def writer():
        with open(path, "wb") as pipe:
            pipe.write(contents)

    threading.Thread(target=writer, daemon=True).start()


def recording_opens(patcher):
    """A list that records, as str, each file Image.open is given from now on: patcher is pytest's monkeypatch, or
    one of its contexts, which undoes it (how often a command or infer reads an input file)."""
    opened = []
    patcher.setattr(Image, "open", lambda file, *rest, _open=Image.open: opened.append(str(file)) or _open(file, *rest))
    return opened
