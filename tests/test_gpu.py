"""The CuPy backend on a real GPU: every kernel, with and without the hand-written CUDA kernels, and the
whole model against the NumPy backend. Skipped where CuPy or a GPU is missing (as in CI)."""
import pickle

import numpy as np
import pytest

import minimatte
from helpers import DATA, DIVIDE_KERNEL, input_a, product_layouts, with_large_activations
from minimatte import backend
from minimatte.kernels import attention, conv, nn

pytestmark = pytest.mark.gpu
rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def cp():
    try:
        return backend.resolve("cupy")
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture(params=["cuda kernels", "composed"])
def kernels(request, monkeypatch):
    """Run each GPU test with the hand-written kernels, and with CuPy's composed array code (their fallback)."""
    if request.param == "composed":
        monkeypatch.setattr(backend, "cuda_kernel", lambda *args: None)
    return request.param


def on_gpu(cp, tree):
    return backend.to_device(tree, cp) if isinstance(tree, (dict, list)) else cp.asarray(tree)


def assert_matches(gpu, expected, tolerance):
    actual = backend.to_numpy(gpu).astype(np.float64)
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    assert np.abs(actual - expected).max(initial=0) <= tolerance * max(1.0, np.abs(expected).max(initial=0))


@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_kernels_match_numpy(cp, kernels, dtype, tolerance):
    x = (rng.standard_normal((2, 9, 13, 384)) * 300).astype(dtype)
    p = {"weight": (1 + 0.1 * rng.standard_normal(384)).astype(dtype),
         "bias": (0.1 * rng.standard_normal(384)).astype(dtype)}
    for gelu_after in (False, True):
        assert_matches(nn.layer_norm(on_gpu(cp, x), on_gpu(cp, p), 1e-6, gelu_after),
                       nn.layer_norm(x, p, 1e-6, gelu_after), tolerance)
    summed = on_gpu(cp, 10 * x)  # layer_norm adds into it
    nn.layer_norm(on_gpu(cp, x), on_gpu(cp, p), 1e-6, residual=summed)
    assert_matches(summed, nn.layer_norm(x, p, 1e-6, residual=10 * x), tolerance)
    g = np.linspace(-10, 10, 5 * 1536).reshape(5, 1536).astype(dtype)
    expected = nn.gelu(g.copy())  # in place
    assert_matches(nn.gelu(on_gpu(cp, g)), expected, tolerance)
    g_bias = rng.standard_normal(1536).astype(dtype)
    assert_matches(nn.gelu(on_gpu(cp, g), on_gpu(cp, g_bias)), nn.gelu(g.copy(), g_bias), tolerance)
    logits = 4 * g[..., None]  # the matting head's (..., 1), far into both tails
    alphas = nn.sigmoid(on_gpu(cp, logits))
    assert alphas.dtype == np.float32
    assert_matches(alphas, nn.sigmoid(logits.copy()), 1e-6)  # computed in float32 from either type of logits
    # Additions and power-of-two scalings round alike everywhere: these are exact.
    residual = rng.standard_normal(x.shape).astype(dtype)
    for relu in (False, True):
        on_device = nn.bias_relu(on_gpu(cp, x), on_gpu(cp, p["bias"]), relu)
        assert np.array_equal(backend.to_numpy(on_device), nn.bias_relu(x.copy(), p["bias"], relu))
    expected = nn.add_residual(x.copy(), p["bias"], residual)
    on_device = nn.add_residual(on_gpu(cp, x), on_gpu(cp, p["bias"]), on_gpu(cp, residual))
    assert np.array_equal(backend.to_numpy(on_device), expected)
    residual_on_device = on_gpu(cp, residual)
    nn.add_residual(on_gpu(cp, x), on_gpu(cp, p["bias"]), residual_on_device, out=residual_on_device)
    assert np.array_equal(backend.to_numpy(residual_on_device), expected)
    qkv, qkv_bias = x[..., :3 * 128], rng.standard_normal(3 * 128).astype(dtype)  # 2 heads, windows of 5 x 7
    heads = attention.window_heads(on_gpu(cp, qkv), on_gpu(cp, qkv_bias), (5, 7), 2, (4, 7))
    for on_device, expected in zip(heads, attention.window_heads(qkv, qkv_bias, (5, 7), 2, (4, 7))):
        assert np.array_equal(backend.to_numpy(on_device), expected)
    for items, a, b, table in ((2, 14, 14, 27), (1, 5, 7, 27), (1, 40, 60, 127)):
        qkv = rng.standard_normal((items, a, b, 3 * 384)).astype(dtype)
        tables = {name: (0.3 * rng.standard_normal((table, 64))).astype(dtype) for name in ("rel_pos_h", "rel_pos_w")}
        out, probs = attention.attention(qkv, 6, None, attention.relative_embeddings(tables, (a, b)), True)
        relative = attention.relative_embeddings(on_gpu(cp, tables), (a, b))
        out_gpu, probs_gpu = attention.attention(on_gpu(cp, qkv), 6, None, relative, True)
        assert_matches(out_gpu, out, tolerance)
        assert_matches(probs_gpu, probs, tolerance)
    images = rng.standard_normal((1, 12, 18, 36)).astype(dtype)
    # Gathers copy values: exact. Two inputs (one a view), stride 2, origins beyond the image; edge-replicated rows.
    gather = (0, -1, -2, [(6, 2, 0), (9, 0, 2), (3, 1, 0), (3, 0, 1)])
    taps = conv._zero_padded_taps((on_gpu(cp, images), on_gpu(cp, images[..., :5])), *gather)
    assert np.array_equal(backend.to_numpy(taps), conv._zero_padded_taps((images, images[..., :5]), *gather))
    assert np.array_equal(backend.to_numpy(conv._edge_padded(on_gpu(cp, images), -1, 14)),
                          conv._edge_padded(images, -1, 14))
    weight, bias = (0.1 * rng.standard_normal((32, 36, 3, 3))).astype(dtype), rng.standard_normal(32).astype(dtype)
    im2col = {"im2col_weight": conv.im2col_weight(weight), "bias": bias}
    assert_matches(conv.conv2d(on_gpu(cp, images), on_gpu(cp, im2col), stride=2, relu=True),
                   conv.conv2d(images, im2col, stride=2, relu=True), tolerance)
    winograd = {"winograd_weight": conv.winograd_weight(weight), "bias": bias}
    assert_matches(conv.conv2d(on_gpu(cp, images[:, :11]), on_gpu(cp, winograd), relu=True),
                   conv.conv2d(images[:, :11], winograd, relu=True), tolerance)
    fusion_weight = (0.1 * rng.standard_normal((32, 72, 3, 3))).astype(dtype)
    fusion = {"bias": bias, **conv.upsampled_conv_parts(fusion_weight, 36, dtype)}  # detail: 36 channels, x: 36 more
    assert_matches(conv.conv2d_upsampled(on_gpu(cp, images), on_gpu(cp, images[:, :6, :9]), on_gpu(cp, fusion)),
                   conv.conv2d_upsampled(images, images[:, :6, :9], fusion), tolerance)


def test_divisor_on_gpu(cp):
    """common.cuh's Divisor with backend.fast_divisor's magic numbers: exact quotients and remainders."""
    code = "\n".join(map(backend.cuda_source, ("device.cuh", "common.cuh"))) + DIVIDE_KERNEL
    divide = cp.RawModule(code=code, options=backend.CUDA_OPTIONS).get_function("divide")
    n = np.concatenate([np.arange(70000), rng.integers(0, 2 ** 31, 100000), [2 ** 31 - 1]]).astype(np.int32)
    for d in (1, 3, 48, 196, 65535, 2 ** 30 + 3, 2 ** 31 - 1):
        quotient, remainder = cp.empty(n.size, np.int32), cp.empty(n.size, np.int32)
        divide((64,), (256,), (cp.asarray(n), quotient, remainder, np.int32(d), backend.fast_divisor(d),
                               np.int32(n.size)))
        assert np.array_equal(quotient.get(), n // d) and np.array_equal(remainder.get(), n % d)


@pytest.mark.parametrize("case", range(len(product_layouts())))
def test_products_on_gpu(cp, monkeypatch, case):
    """backend.matmul on CuPy: one cuBLAS call reading views where they lie, else CuPy's matmul; a @ b either way."""
    a, b, out, one_call = product_layouts(cp)[case]
    calls, gemm = [], backend.cublas_gemm
    monkeypatch.setattr(backend, "cublas_gemm", lambda *args: calls.append(gemm(*args)))
    product = backend.matmul(a, b, out)
    assert len(calls) == one_call and (out is None or product is out) and product.dtype == a.dtype
    expected = np.matmul(backend.to_numpy(a).astype(np.float64), backend.to_numpy(b).astype(np.float64))
    assert_matches(product, expected, 2e-3 if a.dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-4), ("float16", 2e-3)])
def test_model_matches_numpy(cp, kernels, det_state, preset, precision, tolerance):
    """Alphas within 1e-4 of the NumPy backend in float32; float16 against NumPy's float16 emulation."""
    gpu = minimatte.VitMatte.from_state_dict(det_state(preset), backend_name="cupy", precision=precision)
    cpu = minimatte.VitMatte.from_state_dict(det_state(preset), precision=precision)
    batch = minimatte.preprocess(str(DATA / "vitmatte_demo" / "bulb_rgb.png"),
                                 str(DATA / "vitmatte_demo" / "bulb_trimap.png"), cpu.processor)
    for pixels in (input_a(), batch.pixel_values[:, :, :256, :384]):
        alphas = gpu(pixels).alphas
        assert isinstance(alphas, cp.ndarray) and alphas.dtype == np.float32
        assert np.abs(backend.to_numpy(alphas) - cpu(pixels).alphas).max() < tolerance


@pytest.mark.parametrize("precision,tolerance", [("float32", 1e-4), ("float16", 5e-3)])
def test_model_with_activations_as_large_as_real_checkpoints(cp, det_state, precision, tolerance):
    """Hidden states of ~1000 (with_large_activations), as real checkpoints' reach: float32 still within 1e-4 of
    the NumPy backend; float16, whose step there is 0.5, within the bound test_precision.py holds it to."""
    state = with_large_activations(det_state("small"))
    gpu = minimatte.VitMatte.from_state_dict(state, backend_name="cupy", precision=precision)
    cpu = minimatte.VitMatte.from_state_dict(state, precision=precision)
    out = gpu(input_a(), output_hidden_states=True)
    assert np.abs(backend.to_numpy(out.hidden_states[-1])).max() > 900
    assert np.abs(backend.to_numpy(out.alphas) - cpu(input_a()).alphas).max() < tolerance


def test_model_on_a_stream_of_its_own(cp, det_state):
    """Under `with cupy.cuda.Stream(non_blocking=True)`, products and kernels run in order on that stream (cuBLAS's
    handle is CuPy's, set to whichever stream used it last), nothing on the default one."""
    gpu = minimatte.VitMatte.from_state_dict(det_state("small"), backend_name="cupy")
    expected = backend.to_numpy(gpu(input_a()).alphas)
    with cp.cuda.Stream(non_blocking=True) as stream:
        for _ in range(3):
            alphas = gpu(input_a()).alphas
        stream.synchronize()
    assert np.abs(backend.to_numpy(alphas) - expected).max() < 1e-6  # a race would be far off


def test_a_pickled_model_stays_on_the_gpu(cp, det_state):
    """Unpickled (as a spawned worker's copy is), a CuPy model is one again: its backend by name, its weights
    CuPy arrays, its alphas the same."""
    gpu = minimatte.VitMatte.from_state_dict(det_state("small"), backend_name="cupy")
    twin = pickle.loads(pickle.dumps(gpu))
    assert twin.xp is cp and isinstance(twin.params["backbone"]["embeddings"]["position_embeddings"], cp.ndarray)
    alphas = twin(input_a()).alphas
    assert isinstance(alphas, cp.ndarray)
    assert np.abs(backend.to_numpy(alphas) - backend.to_numpy(gpu(input_a()).alphas)).max() == 0


def test_infer_on_gpu(cp, det_model):
    image, trimap = (str(DATA / "vitmatte_demo" / f"bulb_{kind}.png") for kind in ("rgb", "trimap"))
    gpu_model = minimatte.VitMatte(backend.to_device(det_model("small").params, cp), det_model("small").config,
                                   det_model("small").processor, cp)
    reports = []
    alpha = minimatte.infer(image, trimap, model=gpu_model, progress=lambda *report: reports.append(report))
    assert isinstance(alpha, np.ndarray)
    assert np.abs(alpha - minimatte.infer(image, trimap, model=det_model("small"))).max() < 1e-4
    assert [stage for _, stage in reports][-2:] == ["fusion 4/4", "head"] and reports[-1][0] == 1.0


def test_decoder_bands_on_gpu(cp, det_model, monkeypatch):
    """The decoder in bands of rows (as on images over 1 megapixel) on CuPy arrays."""
    cpu = det_model("small")
    gpu = minimatte.VitMatte(backend.to_device(cpu.params, cp), cpu.config, cpu.processor, cp)
    pixels = np.random.default_rng(2).uniform(-1, 1, (1, 4, 176, 96)).astype(np.float32)
    whole = cpu(pixels).alphas
    monkeypatch.setitem(backend.PIECE_ELEMENTS, "decoder band", (2 * 16 * 96,) * 2)  # 6 bands of 2 feature rows
    assert np.abs(backend.to_numpy(gpu(pixels).alphas) - whole).max() < 1e-4


def test_foreground_on_gpu(cp, kernels):
    """The CUDA sweep kernel repeats the NumPy path's operations exactly. Composed CuPy sums each pixel's five
    terms in its own order (NumPy: in turn), and the sweeps carry those roundings on: on an H200 F and B differed
    by up to 1.8e-5 and 9.2e-5. 5e-4 is an eighth of an 8-bit step."""
    image = str(DATA / "pymatting_lemur" / "lemur.png")
    alpha = str(DATA / "pymatting_lemur" / "lemur_alpha.png")
    gpu = minimatte.estimate_foreground(image, alpha, backend="cupy", return_background=True)
    cpu = minimatte.estimate_foreground(image, alpha, return_background=True)
    for computed, expected in zip(gpu, cpu):
        assert isinstance(computed, cp.ndarray)  # computed on the GPU, not on NumPy arrays that missed it
        difference = np.abs(backend.to_numpy(computed) - expected).max()
        assert difference == 0 if kernels == "cuda kernels" else difference < 5e-4, difference
