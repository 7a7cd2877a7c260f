"""The hand-written CUDA kernels (kernels/cuda/*.cu) against the NumPy path they replace, on the CPU.

The kernels' CuPy branch runs here on NumPy arrays, with the CUDA sources compiled by g++ behind
tests/cuda_emulation.h: the launch shapes, argument lists and kernel code a GPU runs (tests/test_gpu.py
runs them on one). The two sides differ only in float32 rounding: CUDA's erff against the rational erf,
another summation order.
"""
import contextlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import minimatte
import cupy_stand_in
import nvrtc
from cuda_emulation import COMPILER, compile_kernels, emulated_kernels, emulated_matmul, reversed_order
from helpers import DIVIDE_KERNEL, OTHER_SHAPES, ROOT, SMALLER, config_id, deterministic_state, input_a
from minimatte import backend, foreground
from minimatte.kernels import attention, conv, nn

if COMPILER is None and os.environ.get("MINIMATTE_REQUIRE_REFERENCE") != "1":  # CI has one: there it must run
    pytest.skip("the CUDA emulation needs a C++ compiler (g++)", allow_module_level=True)

rng = np.random.default_rng(0)
DTYPES = [np.float32, np.float16]
TOLERANCE = {np.float32: 2e-6, np.float16: 2e-3}  # relative to the largest output: float32 / float16 ulps


@pytest.fixture(params=["in order", "reversed"])
def numpy_and_cuda(request, monkeypatch):
    """run(function, *args) -> (result of the NumPy path, result with the CUDA kernels), each on fresh copies; the
    kernels' blocks and threads run in index order, and in a second test last first (cuda_emulation.reversed_order):
    on a GPU they run in any order, so a kernel must give the same results in both."""
    def run(function, *args):
        expected = function(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        order = reversed_order() if request.param == "reversed" else contextlib.nullcontext()
        with monkeypatch.context() as patch, order:
            patch.setattr(backend, "cuda_kernel", emulated_kernels)
            actual = function(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        return expected, actual
    return run


def assert_close(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    assert np.abs(actual.astype(np.float64) - expected).max() <= TOLERANCE[dtype] * np.abs(expected).max()


def assert_rounded_alike(actual, expected):
    """float16 outputs of at least 0.01 equal the NumPy path's but for a few, where float32 values just short of
    a rounding boundary round otherwise (0.07% at most here): a kernel that rounds each step's result to float16
    where the composed operations store it. One that kept an intermediate in float32 instead differed in 1.6-27%
    of them. Smaller ones are left out: GELU's far negative tail, where 1 + erf cancels and CUDA's erff and the
    NumPy path's rational erf differ, and subnormals, which CuPy's flush-to-zero arithmetic makes zeros."""
    compared = np.abs(expected) >= 0.01
    assert np.mean(actual[compared] != expected[compared]) < 0.005


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [384, 192, 100])
def test_layer_norm(numpy_and_cuda, dtype, channels):
    """Alone, then GELU, added into a residual, or both."""
    x = (rng.standard_normal((37, channels)) * 1000 + 300).astype(dtype)  # float16 squares would overflow
    p = {"weight": (1 + 0.1 * rng.standard_normal(channels)).astype(dtype),
         "bias": (0.1 * rng.standard_normal(channels)).astype(dtype)}
    residual = (100 * rng.standard_normal(x.shape)).astype(dtype)
    for gelu_after in (False, True):
        for into in None, residual:
            expected, actual = numpy_and_cuda(lambda r: nn.layer_norm(x, p, 1e-6, gelu_after, r), into)
            assert_close(actual, expected, dtype)
            if dtype == np.float16:
                assert_rounded_alike(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_gelu(numpy_and_cuda, dtype, with_bias):
    x = np.linspace(-10, 10, 3 * 1537, dtype=np.float32).reshape(3, 1537).astype(dtype)
    bias = rng.standard_normal(1537).astype(dtype) if with_bias else None
    expected, actual = numpy_and_cuda(nn.gelu, x, bias)
    assert_close(actual, expected, dtype)
    if dtype == np.float16:
        assert_rounded_alike(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_epilogues(numpy_and_cuda, dtype):
    """A bias, then a ReLU or not, and a bias with a residual: exactly the composed operations' values; a NaN
    stays a NaN through the ReLU."""
    y = (4 * rng.standard_normal((3, 7, 100))).astype(dtype)
    y[1, 2, 3] = np.nan
    bias, residual = (rng.standard_normal(shape).astype(dtype) for shape in (100, y.shape))
    for relu in (False, True):
        expected, actual = numpy_and_cuda(nn.bias_relu, y, bias, relu)
        assert actual.dtype == dtype and np.array_equal(actual, expected, equal_nan=True)
        assert np.isnan(actual[1, 2, 3]) and (actual >= 0).sum() == (expected >= 0).sum()
    expected, actual = numpy_and_cuda(nn.add_residual, y, bias, residual)
    assert actual.dtype == dtype and np.array_equal(actual, expected, equal_nan=True)
    into_residual = numpy_and_cuda(lambda y, r: (nn.add_residual(y, bias, r, out=r), r)[1], y, residual)
    for computed in into_residual:
        assert np.array_equal(computed, expected, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid(numpy_and_cuda, dtype):
    """float32 alphas from logits of either type, far into both tails."""
    x = np.linspace(-40, 40, 3 * 1001, dtype=np.float32).reshape(3, 1001, 1).astype(dtype)
    expected, actual = numpy_and_cuda(nn.sigmoid, x)
    assert_close(actual, expected, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grid_stride_loops(numpy_and_cuda, monkeypatch, dtype):
    """With fewer threads than elements (a launch has at most 2M threads), each thread takes elements a grid
    apart, carrying their channel from one to the next (nn.cu's GridStride): here 5 x 64 threads over rows of 100
    channels, which 320 does not divide, and a window_heads and a convolution gather of as many elements."""
    monkeypatch.setattr(backend, "grid_stride_launch", lambda count: ((5,), (64,)))
    x = (4 * rng.standard_normal((3, 7, 100))).astype(dtype)
    bias, residual = (rng.standard_normal(shape).astype(dtype) for shape in (100, x.shape))
    for expected, actual in (numpy_and_cuda(nn.gelu, x, bias), numpy_and_cuda(nn.bias_relu, x, bias, True),
                             numpy_and_cuda(nn.add_residual, x, bias, residual)):
        assert_close(actual, expected, dtype)
    qkv = (8 * rng.standard_normal((2, 9, 11, 3 * 32))).astype(dtype)
    for expected, actual in zip(*numpy_and_cuda(attention.window_heads, qkv, bias[:96], (4, 4), 2)):
        assert np.array_equal(actual, expected)
    image, weight = (rng.standard_normal(shape).astype(dtype) for shape in ((2, 9, 11, 12), (8, 12, 3, 3)))
    expected, actual = numpy_and_cuda(conv.conv2d, image, {"im2col_weight": conv.im2col_weight(weight)})
    assert np.array_equal(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,window,queries", [((19, 30), (14, 14), None), ((28, 14), (14, 14), None),
                                                 ((5, 9), (14, 14), (5, 9)), ((19, 30), (14, 14), (14, 14)),
                                                 ((6, 11), (6, 11), None)])
@pytest.mark.parametrize("heads", [2, 4])
def test_window_heads(numpy_and_cuda, dtype, size, window, queries, heads):
    """The bias, the padding, the partition and the heads' layouts in one kernel: exactly the composed
    operations' values. Windows part-padded across and down, none padded, one window larger than the grid
    (from its real tokens' queries), and the whole grid as one window (global attention). Heads of 64 channels,
    as ViTMatte's, and of 32, whose keys' scale, 1/sqrt(32), is no power of two: k rounds after the bias and
    again after the scale."""
    qkv = (8 * rng.standard_normal((2, *size, 3 * 128))).astype(dtype)
    bias = rng.standard_normal(3 * 128).astype(dtype)
    expected, actual = numpy_and_cuda(attention.window_heads, qkv, bias, window, heads, queries)
    count = 2 * -(-size[0] // window[0]) * -(-size[1] // window[1])
    assert expected[0].shape == (count, heads, np.prod(queries or window), 128 // heads)
    for computed, composed in zip(actual, expected):
        assert computed.dtype == dtype and np.array_equal(computed, composed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,channels", [((9, 13), (3, 5)), ((1, 6), (3, 5)), ((6, 1), (3, 5)),
                                           ((9, 13), (16, 48))])
def test_convolution_gathers(numpy_and_cuda, dtype, size, channels):
    """The copies convolutions make of their input, each one kernel on CuPy: im2col columns (two inputs read as
    concatenated, stride 1 and 2, origins beyond the image), Winograd's input tiles, the decoder's edge-replicated
    rows and its frame's taps (single-row and single-column images, whose two edges are the same pixels): exactly
    the composed copies' values, and so the same convolutions; 5, 8, 48 and 64 channels."""
    first, second = ((10 * rng.standard_normal((2, *size, c))).astype(dtype) for c in channels)
    c_in = sum(channels)
    for b, y0, x0, axes in [(1, -1, -1, [(size[0], 1, 0), (size[1], 0, 1), (3, 1, 0), (3, 0, 1)]),
                            (0, -2, -1, [(4, 2, 0), (6, 0, 2), (3, 1, 0), (3, 0, 1)]),
                            (1, -1, -3, [(4, 1, 0), (4, 0, 1), (5, 2, 0), (7, 0, 2)])]:
        expected, actual = numpy_and_cuda(conv._zero_padded_taps, (first, second), b, y0, x0, axes)
        assert actual.shape == (*(size for size, _, _ in axes), c_in) and actual.flags.c_contiguous
        assert actual.dtype == dtype and np.array_equal(actual, expected)
    expected, actual = numpy_and_cuda(conv._edge_padded, second, -2, size[0] + 1)
    assert actual.shape == (2, size[0] + 3, size[1] + 2, channels[1]) and np.array_equal(actual, expected)
    for axis in (1, 2):
        weight = rng.standard_normal((2, 3 * channels[1], 8)).astype(dtype)
        expected, actual = numpy_and_cuda(conv._edge_conv, second, axis, weight)
        assert actual.shape == (2, 2, 2 * size[2 - axis], 4) and np.array_equal(actual, expected)
    w = rng.standard_normal((16, c_in, 3, 3)).astype(dtype)
    for stride in (1, 2):
        expected, actual = numpy_and_cuda(conv.conv2d, (first, second), {"im2col_weight": conv.im2col_weight(w)},
                                          stride)
        assert np.array_equal(actual, expected)
    expected, actual = numpy_and_cuda(conv.conv2d, (first, second), {"winograd_weight": conv.winograd_weight(w)})
    assert np.array_equal(actual, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("items,a,b,table", [(2, 14, 14, 27), (1, 5, 7, 27), (3, 1, 4, 9), (1, 20, 60, 127)])
def test_attention_softmax(numpy_and_cuda, dtype, items, a, b, table):
    """Window grids, small and non-square global grids (tables resized), and a 1200-key grid (256 threads)."""
    qkv = rng.standard_normal((items, a, b, 3 * 128)).astype(dtype)
    rel_h, rel_w = ((0.3 * rng.standard_normal((table, 64))).astype(dtype) for _ in range(2))
    relative = attention.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (a, b))
    (out, probs), (out_cuda, probs_cuda) = numpy_and_cuda(attention.attention, qkv, 2, None, relative, True)
    assert_close(out_cuda, out, dtype)
    assert_close(probs_cuda, probs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_softmax_by_head_from_some_queries(numpy_and_cuda, monkeypatch, dtype):
    """Slabs of one head and one grid row (as for large grids), queries from a corner of the grid (as from
    a part-padded window's real tokens)."""
    monkeypatch.setattr(attention, "piece_elements", lambda xp, kind: 1)
    qkv = rng.standard_normal((2, 14, 14, 3 * 128)).astype(dtype)
    rel_h, rel_w = ((0.3 * rng.standard_normal((27, 64))).astype(dtype) for _ in range(2))
    relative = attention.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (14, 14))
    (out, probs), (out_cuda, probs_cuda) = numpy_and_cuda(attention.attention, qkv, 2, None, relative, True, (9, 5))
    assert out.shape == (2, 9, 5, 128) and probs.shape == (2, 2, 45, 196)
    assert_close(out_cuda, out, dtype)
    assert_close(probs_cuda, probs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_softmax_over_key_blocks(numpy_and_cuda, monkeypatch, dtype):
    """Slabs of one head's grid row against one key row at a time (as for the largest grids), the kernel's
    maxima joining the blocks."""
    monkeypatch.setattr(attention, "piece_elements", lambda xp, kind: 1)
    qkv = (4 * rng.standard_normal((1, 6, 9, 3 * 128))).astype(dtype)
    rel_h, rel_w = ((0.3 * rng.standard_normal((27, 64))).astype(dtype) for _ in range(2))
    relative = attention.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (6, 9))
    (out, _), (out_cuda, _) = numpy_and_cuda(attention.attention, qkv, 2, None, relative)
    (whole, _), _ = numpy_and_cuda(attention.attention, qkv, 2, None, relative, True)  # whole rows, for the probs
    assert_close(out_cuda, out, dtype)
    # Joined blocks round otherwise than whole rows: up to 5e-6 of the largest output in float32 over 200 draws.
    assert np.abs(out.astype(np.float64) - whole).max() <= max(TOLERANCE[dtype], 1e-5) * np.abs(whole).max()


@pytest.mark.parametrize("max_threads", [1024, 32])
def test_foreground_sweeps(numpy_and_cuda, monkeypatch, max_threads):
    """Exactly the NumPy path's F and B (which are pymatting's): the same operations in the same order. With
    32 threads per block, a thread takes several pixels of a 37-pixel diagonal."""
    monkeypatch.setattr(foreground, "_MAX_THREADS", max_threads)
    image = rng.random((37, 53, 3))
    alpha = np.clip(rng.random((37, 53)) * 3 - 1, 0, 1)  # a third 0, a third 1, soft in between
    expected, actual = numpy_and_cuda(lambda i, a: foreground.estimate_foreground(
        i, a, value_range=1.0, return_background=True), image, alpha)
    for computed, reference in zip(actual, expected):
        assert computed.dtype == np.float32 and np.array_equal(computed, reference)


def in_gpu_pieces(monkeypatch):
    """The work cut as the CuPy backend cuts it: backend.PIECE_ELEMENTS' CuPy column, whole padded windows."""
    for module in backend, attention, conv:
        monkeypatch.setattr(module, "piece_elements", lambda xp, kind: backend.PIECE_ELEMENTS[kind][1])
    monkeypatch.setattr(backend, "few_launches", lambda xp: True)


def products_by_cublas(monkeypatch):
    """Products run through the cuBLAS emulation; the list returned collects those that CuPy's matmul would
    compute instead, copying views (there should be none)."""
    fell_back = []
    for module in backend, attention:
        monkeypatch.setattr(module, "matmul", lambda a, b, out=None: emulated_matmul(a, b, out, fell_back))
    return fell_back


@pytest.mark.parametrize("pieces", ["CPU", "GPU"])
@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-6), ("float16", 2e-3)])
def test_whole_model(numpy_and_cuda, monkeypatch, det_state, precision, tolerance, pieces):
    """With the CPU's pieces of work, and with the GPU's (in_gpu_pieces)."""
    model = minimatte.VitMatte.from_state_dict(det_state("small"), precision=precision)
    in_cpu_pieces = model(input_a()).alphas
    if pieces == "GPU":
        in_gpu_pieces(monkeypatch)
    fell_back = products_by_cublas(monkeypatch)
    expected, actual = numpy_and_cuda(lambda x: model(x).alphas, input_a())
    assert np.abs(actual - expected).max() < tolerance
    assert np.abs(expected - in_cpu_pieces).max() < tolerance
    assert fell_back == []


@pytest.mark.parametrize("fields", OTHER_SHAPES, ids=config_id)
@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-6), ("float16", 2e-3)])
def test_other_configs(monkeypatch, fields, precision, tolerance):
    """Networks of other shapes (no relative positions, no qkv bias, no windows, 8- and 32-pixel patches, ...) on
    the GPU's path and pieces of work, in one order of blocks and threads."""
    config = minimatte.Config(**{**SMALLER, **fields})
    model = minimatte.VitMatte.from_state_dict(deterministic_state(config), config, precision=precision)
    patch = config.patch_size
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, config.num_channels, 6 * patch, 9 * patch)).astype(np.float32)
    expected = model(pixels).alphas
    in_gpu_pieces(monkeypatch)
    fell_back = products_by_cublas(monkeypatch)
    monkeypatch.setattr(backend, "cuda_kernel", emulated_kernels)
    assert np.abs(model(pixels).alphas - expected).max() < tolerance
    assert fell_back == []


@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-6), ("float16", 2e-3)])
def test_a_cupy_pass_never_waits_for_the_gpu(monkeypatch, det_state, precision, tolerance):
    """A CuPy pass queues its operations and returns: nothing in it brings a value back to the host (a device
    array's truth or number, a boolean mask's size, a copy to the host), each of which would hold the host until
    the GPU caught up. Run on cupy_stand_in, which records them, as the CuPy backend runs it; twice, the second
    pass with what the first kept for passes at its size (position embeddings): fewer operations, and nothing sent
    from the host (a copy from host memory waits for the GPU too, and a CUDA graph could not hold one); then at
    another size, which makes its own. Every product of the network is one cuBLAS call (none left to CuPy's
    matmul, which only the resizes made per size use), also where a slab of attention takes several windows at
    once: two here."""
    wide = np.tile(input_a(), (1, 1, 1, 3))  # 64 x 288: 4 x 18 tokens, 1 x 2 windows, part-padded
    reference = minimatte.VitMatte.from_state_dict(det_state("small"), precision=precision)
    expected = {pixels.shape: reference(pixels).alphas for pixels in (wide, input_a())}
    cupy_stand_in.emulated_backend(monkeypatch)
    left_to_cupy = []

    def plan(a, b, out, planned=backend._plan):
        shape, layout = planned(a, b, out)
        if layout is None:
            left_to_cupy.append((a.shape, a.strides, b.shape, b.strides))
        return shape, layout
    monkeypatch.setattr(backend, "_PLANS", {})  # each layout planned afresh
    monkeypatch.setattr(backend, "_plan", plan)
    model = minimatte.VitMatte.from_state_dict(det_state("small"), backend_name="cupy", precision=precision)
    records = []
    for pixels in wide, wide, input_a():
        on_device = cupy_stand_in.asarray(pixels)
        with cupy_stand_in.recording() as record:
            alphas = model(on_device).alphas
        assert record.syncs == []
        assert record.operations["cuBLAS product"] > 0 and record.operations["CUDA kernel softmax_numerators"] > 0
        assert np.abs(alphas.get() - expected[pixels.shape]).max() < tolerance
        records.append(sum(record.operations.values()))
        if len(records) == 2:  # only the resizes made per size (made_per_size) are left to CuPy's matmul
            assert record.operations["host to device"] == 0
            assert [kind for kind in record.operations if "matmul" in kind] == []
    assert records[1] < min(records[0], records[2])  # fewer than at a new size, though that image is smaller
    assert left_to_cupy == []


def test_other_dtypes_run_the_array_code(monkeypatch):
    """The kernels have float32 and float16 instances: a float64 array on CuPy (a reader calling a kernel function
    with one) runs the array code, as on NumPy, rather than failing for want of a kernel."""
    x = rng.standard_normal((6, 32))
    p = {"weight": rng.standard_normal(32), "bias": rng.standard_normal(32)}
    expected = nn.layer_norm(x, p, 1e-6)
    cupy_stand_in.emulated_backend(monkeypatch)
    on_device = nn.layer_norm(cupy_stand_in.asarray(x), {k: cupy_stand_in.asarray(v) for k, v in p.items()}, 1e-6)
    assert on_device.dtype == np.float64
    np.testing.assert_allclose(on_device.get(), expected, rtol=1e-6, atol=1e-6)


# T4 (the oldest not deprecated), A100, H100, B200, RTX 50
@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90", "sm_100", "sm_120"])
@pytest.mark.parametrize("source", ["attention.cu", "conv.cu", "nn.cu", "foreground.cu"])
@pytest.mark.parametrize("cuda", [12, 13])  # the NVRTC of cupy-cuda12x, of cupy-cuda13x
def test_sources_compile_with_nvrtc(cuda, source, arch):
    """What CuPy compiles on a GPU machine (backend.cuda_kernel's code, options and name expressions, and the
    options CuPy adds: the device's -arch, --device-as-default-execution-space, -ftz=true) through the real NVRTC
    of either CUDA version: no warning, each kernel instance in the binary under the name NVRTC gives CuPy for it,
    and none spilling registers to memory (ptxas's report). The emulation sees neither the PTX float16
    conversions of device.cuh nor what NVRTC lacks (system headers)."""
    library = nvrtc.load(cuda)
    code = backend.cuda_code(source)
    for element in backend.KERNEL_TYPES.values():
        expressions = backend.kernel_instances(code, element)
        cubin, lowered, log = nvrtc.compile_program(
            library, code, (*backend.CUDA_OPTIONS, f"-arch={arch}", "--device-as-default-execution-space",
                            "-ftz=true", "--ptxas-options=-v"), expressions)
        assert expressions and "warning" not in log
        for expression in expressions:
            assert lowered[expression].startswith("_Z") and b"\0" + lowered[expression].encode() + b"\0" in cubin
        spills = re.findall(r"(\d+) bytes spill stores", log)
        assert len(spills) == len(expressions) and set(spills) == {"0"}, log


@pytest.mark.parametrize("d", [1, 2, 3, 7, 48, 196, 1000, 4097, 65535, 2 ** 20 + 1, 2 ** 30, 2 ** 30 + 3, 2 ** 31 - 1,
                               *np.random.default_rng(1).integers(1, 2 ** 31, 4).tolist()])
def test_divisor_divides_exactly(d):
    """common.cuh's Divisor, with backend.fast_divisor's magic number: n / d and n % d exactly for 0 <= n < 2^31."""
    kernels = compile_kernels(backend.cuda_source("common.cuh") + DIVIDE_KERNEL)
    edges = [0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, 2 ** 31 - 2, 2 ** 31 - 1, (2 ** 31 - 1) // d * d,
             (2 ** 31 - 1) // d * d - 1]
    n = np.array([v for v in edges if 0 <= v < 2 ** 31] + rng.integers(0, 2 ** 31, 2000).tolist(), np.int32)
    quotient, remainder = np.empty_like(n), np.empty_like(n)
    kernels["divide"]((1,), (256,), (n, quotient, remainder, np.int32(d), backend.fast_divisor(d), np.int32(n.size)))
    assert np.array_equal(quotient, n // d) and np.array_equal(remainder, n % d)


def test_emulation_reports_a_barrier_that_not_all_threads_reach():
    kernels = compile_kernels('''
        extern "C" __global__ void divergent(float* x) {
            if (threadIdx.x < 32) __syncthreads();
            x[threadIdx.x] = 1;
        }''')
    with pytest.raises(RuntimeError, match="did not all reach the same __syncthreads"):
        kernels["divergent"]((1,), (64,), (np.zeros(64, np.float32),))
    kernels["divergent"]((1,), (32,), (np.zeros(32, np.float32),))  # all threads reach it: fine


def test_emulation_reversed_order_exposes_a_race():
    """A thread that reads what another writes without a barrier between gets another value when the other runs
    after it: the emulation's two orders give two results, within a block and across blocks. With the barrier,
    one."""
    kernels = compile_kernels('''
        extern "C" __global__ void racing(float* x) {
            const int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i > 0) x[i] = x[i - 1] + 1;
        }
        extern "C" __global__ void synchronised(float* x) {
            __shared__ float own[32];
            own[threadIdx.x] = x[threadIdx.x] + 1;
            __syncthreads();
            x[threadIdx.x] = own[31 - threadIdx.x];
        }''')
    results = []
    for order in (contextlib.nullcontext(), reversed_order()):
        with order:
            racing, synchronised = np.zeros(64, np.float32), np.arange(32, dtype=np.float32)
            kernels["racing"]((2,), (32,), (racing,))
            kernels["synchronised"]((1,), (32,), (synchronised,))
        results.append((racing, synchronised))
    (racing_in_order, synchronised_in_order), (racing_reversed, synchronised_reversed) = results
    assert np.array_equal(racing_in_order, np.arange(64))  # each thread after the one it reads
    assert np.array_equal(racing_reversed, np.minimum(np.arange(64), 1))  # each before it
    assert np.array_equal(synchronised_in_order, np.arange(32, 0, -1))
    assert np.array_equal(synchronised_reversed, synchronised_in_order)


def test_gpu_tests_dry_run():
    """tests/test_gpu.py's own code runs on the CPU with MINIMATTE_GPU_DRY_RUN=1 (cupy_stand_in, the kernels and
    cuBLAS emulated), so that a GPU session does not find its mistakes: here a sample (the whole file takes
    minutes). The tests take the stand-in for a GPU: none is skipped."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py", "-k",
                             "divisor or stream or products or foreground"], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "MINIMATTE_GPU_DRY_RUN": "1"})
    assert result.returncode == 0 and re.search(r"^\d+ passed, \d+ deselected in", result.stdout, re.M), result.stdout


def test_emulation_treats_float16_as_its_bits():
    """device.cuh's half_bits is an unsigned short: a number assigned to one is a bit pattern on a GPU, and here."""
    kernels = compile_kernels('extern "C" __global__ void one(half_bits* x) { x[0] = 1; }')
    x = np.zeros(1, np.float16)
    kernels["one"]((1,), (1,), (x,))
    assert x.view(np.uint16)[0] == 1  # the smallest subnormal, not 1.0 (0x3c00)


def test_emulation_flushes_subnormals_as_cupy_compiles():
    """CuPy compiles kernels with -ftz=true: float32 arithmetic takes a subnormal input as zero and flushes a
    subnormal result to zero. The emulation does likewise during a launch, and leaves the CPU's mode as it was."""
    kernels = compile_kernels('extern "C" __global__ void scale(float* x, const float* s) { x[threadIdx.x] *= '
                              's[threadIdx.x]; }')
    x, s = np.array([1e-20, 1e-40], np.float32), np.array([1e-20, 1e10], np.float32)
    assert np.all((x * s != 0) & (x * s < 1e-29))  # NumPy: a subnormal result, a subnormal input scaled up
    kernels["scale"]((1,), (2,), (x, s))
    assert np.array_equal(x, [0, 0]) and np.float32(1e-20) * np.float32(1e-20) != 0


def test_emulation_checks_argument_types():
    gelu = emulated_kernels(np, "nn.cu", "gelu", np.float32)
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match="long long needs a NumPy int64 scalar, got 8"):
        gelu((1,), (8,), (x, 8))
    with pytest.raises(TypeError, match=r"float\* needs a C-contiguous float32 array, got float64"):
        gelu((1,), (8,), (x.astype(np.float64), np.int64(8)))


@pytest.mark.parametrize("grid,block", [((0,), (8,)), ((1,), (2048,)), ((1, 65536), (8,)), ((1,), (32, 64)),
                                        ((1,), (1, 1, 65)), ((2 ** 31,), (8,))])
def test_emulation_checks_launch_limits(grid, block):
    """Launches a GPU refuses (cudaErrorInvalidConfiguration) are errors here too."""
    gelu = emulated_kernels(np, "nn.cu", "gelu", np.float32)
    x = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="beyond CUDA's launch limits"):
        gelu(grid, block, (x, np.int64(8)))
    gelu((1, 65535), (1,), (x, np.int64(8)))  # the limits themselves
    gelu((1,), (8, 8, 16), (x, np.int64(8)))
