"""Each kernel against its torch counterpart (and against plain definitions where torch is not needed)."""
import math

import numpy as np
import pytest

from cuda_emulation import emulated_matmul
from helpers import product_layouts
from minimatte import backend
from minimatte import model as model_module
from minimatte.kernels import attention as attention_module
from minimatte.kernels import conv, nn, resize
from reference import require_reference

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_erf_and_gelu_are_exact():
    x = np.linspace(-8, 8, 100001, dtype=np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(nn.erf(x) - exact).max() < 5e-7  # a few float32 ulps of values near +-1
    torch, _ = require_reference()
    assert np.abs(nn.erf(x) - torch.erf(torch.from_numpy(x)).numpy()).max() < 5e-7
    np.testing.assert_allclose(nn.gelu(x.copy()), torch.nn.functional.gelu(torch.from_numpy(x)).numpy(),
                               rtol=1e-6, atol=2e-6)  # deep negative tail: |gelu| < 1e-6 there
    gelu = 0.5 * x.astype(np.float64) * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype(np.float64)]))
    assert np.abs(nn.gelu(x.copy()) - gelu).max() < 2e-6
    rows, bias = x[:100000].reshape(-1, 400), randn(400)  # with a bias: exactly GELU of the rounded sum
    for dtype in (np.float32, np.float16):
        summed = rows.astype(dtype) + bias.astype(dtype)
        assert np.array_equal(nn.gelu(rows.astype(dtype), bias.astype(dtype)), nn.gelu(summed))
    with pytest.raises(ValueError, match="^gelu works in place: it needs a C-contiguous array$"):
        nn.gelu(rows[:, ::2])


@pytest.mark.parametrize("size_in,size_out", [(14, 4), (14, 6), (14, 40), (14, 14), (5, 128)])
def test_cubic_matches_torch(size_in, size_out):
    torch, _ = require_reference()
    grid = randn(size_in, size_in + 1, 8)
    ref = torch.nn.functional.interpolate(torch.from_numpy(grid).permute(2, 0, 1)[None], size=(size_out, size_out + 3),
                                          mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    # float32 coefficients (as torch computes them) put both ~3e-6 from a float64 resize when shrinking
    np.testing.assert_allclose(resize.resize(grid, (size_out, size_out + 3), "cubic"), ref, atol=5e-6)


def test_resize_is_computed_and_returned_in_the_input_dtype():
    """float32 (float16 widened to it) or float64: the matrices' float32 weights times values of the input's
    precision, returned in its dtype."""
    grid = randn(14, 15, 3)
    rows, cols = (resize.interpolation_matrix(n, m, "cubic").astype(np.float64) for n, m in ((14, 9), (15, 20)))
    exact = np.einsum("ih,hwc,jw->ijc", rows, grid.astype(np.float64), cols)  # (14, 15, 3) -> (9, 20, 3)
    wide = resize.resize(grid.astype(np.float64), (9, 20), "cubic")
    assert wide.dtype == np.float64 and np.abs(wide - exact).max() < 1e-12
    half = resize.resize(grid.astype(np.float16), (9, 20), "cubic")
    assert half.dtype == np.float16 and np.array_equal(half, resize.resize(grid.astype(np.float16).astype(np.float32),
                                                                           (9, 20), "cubic").astype(np.float16))


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_interpolation_matrices_are_torchs(mode):
    """Every weight as torch's interpolate (align_corners=False) computes it, bit for bit where torch runs its AVX2
    or AVX-512 kernels (x86 CPUs of the last decade), whose compiler fused some of the multiply-adds; its plain
    kernels round otherwise, within 5e-6. Torch's weights are its resizes of one-hot inputs."""
    torch, _ = require_reference()
    exact = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    for size_in in 2, 3, 5, 14, 27, 37, 63, 64, 127:
        for size_out in 1, 3, 4, 7, 14, 27, 40, 64, 79, 127, 255:
            one_hot = torch.eye(size_in)[None, :, :, None].expand(1, size_in, size_in, 4)  # (1, in, in, 4)
            if mode == "linear":
                theirs = torch.nn.functional.interpolate(one_hot[..., 0], size=size_out, mode="linear")[0].T
            else:  # along the rows only: 4 columns to 4 are weights (0, 1, 0, 0)
                resized = torch.nn.functional.interpolate(one_hot, size=(size_out, 4), mode="bicubic")
                theirs = resized[0, :, :, 0].T
            ours = resize.interpolation_matrix(size_in, size_out, mode)  # (out, in)
            if exact:
                assert np.array_equal(ours, theirs.numpy()), (size_in, size_out)
            else:
                np.testing.assert_allclose(ours, theirs.numpy(), atol=5e-6)


@pytest.mark.parametrize("length_in,length_out", [(63, 7), (63, 79), (63, 127), (27, 27), (63, 255)])
def test_linear_matches_torch(length_in, length_out):
    torch, _ = require_reference()
    table = randn(length_in, 64)
    ref = torch.nn.functional.interpolate(torch.from_numpy(table).T[None], size=length_out, mode="linear")[0].T
    out = attention_module.relative_position_table(table, (length_out + 1) // 2)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-6)


@pytest.mark.parametrize("k,stride,size", [(3, 1, (9, 13)), (3, 2, (16, 22)), (3, 2, (9, 13)), (1, 1, (5, 6)),
                                           (1, 2, (9, 13))])
def test_conv2d_matches_torch(k, stride, size):
    torch, _ = require_reference()
    x, weight, bias = randn(2, *size, 6), randn(5, 6, k, k), randn(5)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight),
                                     torch.from_numpy(bias), stride=stride, padding=k // 2)
    ref = ref.permute(0, 2, 3, 1).numpy()
    p = {"im2col_weight": conv.im2col_weight(weight), "bias": bias}
    for inputs in x, (x[..., :2], x[..., 2:]):  # one array (a 1x1 conv's is one GEMM), and two read as concatenated
        np.testing.assert_allclose(conv.conv2d(inputs, p, stride=stride), ref, atol=1e-5)
        np.testing.assert_allclose(conv.conv2d(inputs, p, stride=stride, relu=True), np.maximum(ref, 0), atol=1e-5)


def test_conv2d_band_edges(monkeypatch):
    """Tiny bands force every border case of the banded im2col."""
    torch, _ = require_reference()
    monkeypatch.setattr(conv, "piece_elements", lambda xp, kind: 1)
    x, weight = randn(1, 7, 5, 3), randn(4, 3, 3, 3)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight), padding=1)
    np.testing.assert_allclose(conv.conv2d(x, {"im2col_weight": conv.im2col_weight(weight)}),
                               ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (1, 6), (2, 2), (5, 7), (8, 6), (13, 4)])
@pytest.mark.parametrize("padding", [1, 0])
@pytest.mark.parametrize("band_budget", [1, 1 << 20])
def test_winograd_conv2d_matches_torch(monkeypatch, size, padding, band_budget):
    """Winograd's F(2x2, 3x3): odd heights and widths (a tile row or column beyond the output), no padding,
    bands of one tile row, inputs read as concatenated."""
    torch, _ = require_reference()
    monkeypatch.setattr(conv, "piece_elements", lambda xp, kind: band_budget)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_TILES", 1)
    if padding == 0:
        size = (size[0] + 2, size[1] + 2)
    x, weight, bias = randn(2, *size, 6), randn(5, 6, 3, 3), randn(5)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight),
                                     torch.from_numpy(bias), padding=padding).permute(0, 2, 3, 1).numpy()
    p = {"winograd_weight": conv.winograd_weight(weight), "bias": bias}
    np.testing.assert_allclose(conv.conv2d(x, p, padding=padding), ref, atol=1e-5)
    split = conv.conv2d((x[..., :2], x[..., 2:]), p, relu=True, padding=padding)
    np.testing.assert_allclose(split, np.maximum(ref, 0), atol=1e-5)


def test_winograd_bands_feed_gemms_enough_tiles(monkeypatch):
    """However small the memory budget, a band's GEMMs multiply at least half of WINOGRAD_MIN_TILES tiles."""
    monkeypatch.setattr(conv, "piece_elements", lambda xp, kind: 1)
    tiles = []
    x, weight = randn(1, 60, 45, 4), randn(4, 4, 3, 3)  # 30 x 23 tiles
    expected = conv.conv2d(x, {"im2col_weight": conv.im2col_weight(weight)})

    def matmul(a, b):
        if a.ndim == 3:  # the band's 16 GEMMs (its tile transforms are 2-D products)
            tiles.append(a.shape[1])
        return np.matmul(a, b)
    monkeypatch.setattr(conv.backend, "matmul", matmul)
    np.testing.assert_allclose(conv.conv2d(x, {"winograd_weight": conv.winograd_weight(weight)}), expected, atol=1e-5)
    assert sum(tiles) == 30 * 23 and min(tiles) >= conv.WINOGRAD_MIN_TILES // 2, tiles


def test_winograd_where_it_pays():
    """conv3x3_params: Winograd weights in float32 from a harmonic mean of WINOGRAD_MIN_CHANNELS input and output
    channels on."""
    for c_in, c_out, winograd in [(64, 128, True), (384, 1024, True), (80, 80, True), (79, 80, False),
                                  (48, 64, False), (64, 64, False), (4, 32, False), (32, 16, False)]:
        for dtype in (np.float32, np.float16):
            params = conv.conv3x3_params(randn(c_out, c_in, 3, 3), dtype)
            assert list(params) == (["winograd_weight"] if winograd and dtype == np.float32 else ["im2col_weight"])
    assert conv.winograd_weight(randn(7, 5, 3, 3)).shape == (16, 5, 7)


def test_layer_norm_and_sigmoid_match_definitions():
    x = randn(37, 384) * 50 + 7
    x[0], x[1] = 7, x[1] / 5e4  # a constant row (its bias), and one whose variance is eps's size
    p = {"weight": randn(384), "bias": randn(384)}
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6) * p["weight"] + p["bias"]
    np.testing.assert_allclose(nn.layer_norm(x, p, 1e-6), ref, atol=2e-5)
    logits = x[:, :5] / 50
    half = nn.sigmoid(logits.astype(np.float16))
    alphas = nn.sigmoid(logits)
    np.testing.assert_allclose(alphas, 1 / (1 + np.exp(-x64[:, :5] / 50)), atol=1e-6)
    assert alphas is logits  # float32: in place
    assert half.dtype == np.float32 and np.abs(half - alphas).max() < 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_layer_norm_then_gelu_or_residual(dtype):
    """Activated or added into a residual row by row: exactly the separate operations' values."""
    x, residual = (randn(2, 37, 96) * 20).astype(dtype), (randn(2, 37, 96) * 20).astype(dtype)
    p = {name: randn(96).astype(dtype) for name in ("weight", "bias")}
    assert np.array_equal(nn.layer_norm(x, p, 1e-6, gelu_after=True), nn.gelu(nn.layer_norm(x, p, 1e-6)))
    into = residual.copy()
    assert nn.layer_norm(x, p, 1e-6, residual=into) is not None
    assert into.dtype == dtype and np.array_equal(into, residual + nn.layer_norm(x, p, 1e-6))
    into = residual.copy()
    nn.layer_norm(x, p, 1e-6, gelu_after=True, residual=into)
    assert np.array_equal(into, residual + nn.gelu(nn.layer_norm(x, p, 1e-6)))
    with pytest.raises(ValueError, match="layer_norm adds into the residual in place: it needs a C-contiguous"):
        nn.layer_norm(x[:, :, :48], {name: v[:48] for name, v in p.items()}, 1e-6, residual=residual[:, :, ::2])


def test_absolute_positions_kept_where_launches_cost(monkeypatch):
    """On CuPy (few_launches) the resized absolute position embeddings are made once for the size last asked for,
    and made afresh for another; on NumPy never kept."""
    table = randn(1, 1 + 14 * 14, 8)
    p = {"position_embeddings": table}
    made = model_module.absolute_positions(p, (5, 7))
    assert list(p) == ["position_embeddings"]
    np.testing.assert_array_equal(made, resize.resize(table[0, 1:].reshape(14, 14, 8), (5, 7), "cubic"))
    monkeypatch.setattr(backend, "few_launches", lambda xp: True)
    kept = model_module.absolute_positions(p, (5, 7))
    np.testing.assert_array_equal(kept, made)
    assert model_module.absolute_positions(p, (5, 7)) is kept
    other = model_module.absolute_positions(p, (9, 4))
    np.testing.assert_array_equal(other, model_module.absolute_positions({"position_embeddings": table}, (9, 4)))
    assert model_module.absolute_positions(p, (9, 4)) is other


def test_relative_embeddings_kept_where_launches_cost(monkeypatch):
    """On CuPy (few_launches) a block's embeddings are made once for the grid last asked for, and made afresh
    for another; on NumPy never kept. Rh[i, :, j] = the resized table's row i - j + a - 1."""
    tables = {"rel_pos_h": randn(27, 64), "rel_pos_w": randn(27, 64)}
    p = dict(tables)
    r_h, r_w = attention_module.relative_embeddings(p, (5, 7))
    assert list(p) == list(tables)
    resized = attention_module.relative_position_table(tables["rel_pos_h"], 5)
    np.testing.assert_array_equal(r_h[4, :, 1], resized[4 - 1 + 4])
    assert r_h.shape == (5, 64, 5) and r_w.shape == (7, 64, 7)
    monkeypatch.setattr(backend, "few_launches", lambda xp: True)
    kept = attention_module.relative_embeddings(p, (5, 7))
    assert attention_module.relative_embeddings(p, (5, 7)) is kept
    other = attention_module.relative_embeddings(p, (9, 4))
    for made, fresh in zip(other, attention_module.relative_embeddings(dict(tables), (9, 4))):
        np.testing.assert_array_equal(made, fresh)
    assert attention_module.relative_embeddings(p, (9, 4)) is other


def test_window_partition_roundtrip():
    x = randn(2, 19, 30, 8)
    bias = np.arange(8, dtype=np.float32)
    windows = attention_module.window_partition(x, (14, 14), bias)
    assert windows.shape == (2 * 2 * 3, 14, 14, 8)
    np.testing.assert_array_equal(windows[2, :, 2:], np.broadcast_to(bias, (14, 12, 8)))  # pads: the bias alone
    np.testing.assert_array_equal(attention_module.window_unpartition(windows, (19, 30)), x + bias)


@pytest.mark.parametrize("size", [(19, 30), (28, 20), (5, 9), (14, 28)])
@pytest.mark.parametrize("budget", [1, 1 << 16])
def test_window_attention_from_real_tokens_only(monkeypatch, size, budget):
    """Attending from the real tokens only gives them what the padded windows' every query (the reference's,
    kept when the probabilities are asked for, and where fewer launches pay) gives them: partial windows across,
    down, both or neither; with a budget of 1, projected and attended one band of window rows at a time."""
    monkeypatch.setattr(attention_module, "piece_elements", lambda xp, kind: budget)
    heads, hd = 2, 64
    x, rel_h, rel_w = randn(2, *size, heads * hd), randn(27, hd), randn(27, hd)
    # q, k, v of variance ~1.5
    qkv_params = {"weight": randn(3 * heads * hd, heads * hd) / 16, "bias": randn(3 * heads * hd)}
    relative = attention_module.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (14, 14))
    every, probs = attention_module.window_attention(x, qkv_params, 14, heads, relative, return_probs=True)
    assert probs.shape == (2 * -(-size[0] // 14) * -(-size[1] // 14), heads, 196, 196)
    real, no_probs = attention_module.window_attention(x, qkv_params, 14, heads, relative)
    assert no_probs is None and real.shape == every.shape == (2, *size, heads * hd)
    np.testing.assert_allclose(real, every, atol=1e-5)  # other GEMM shapes: other roundings
    monkeypatch.setattr(backend, "few_launches", lambda xp: True)  # as on CuPy: whole padded windows, no probabilities
    padded, _ = attention_module.window_attention(x, qkv_params, 14, heads, relative)
    np.testing.assert_allclose(padded, every, atol=1e-5)


def test_float16_tables_and_key_scales_are_computed_in_float32():
    """A float16 model's relative position tables are resized, and its keys scaled by hd^-0.5, in float32 and
    rounded once to float16 (rounding the scale to float16 first would change it where it is no power of two)."""
    table = randn(27, 48).astype(np.float16)
    resized = attention_module.relative_position_table(table, 6)  # 27 rows to 11: weights of many digits
    assert resized.dtype == np.float16
    np.testing.assert_array_equal(resized, attention_module.relative_position_table(table.astype(np.float32), 6)
                                  .astype(np.float16))
    qkv = randn(1, 3, 5, 3 * 2 * 48).astype(np.float16)  # 2 heads of 48 channels
    k_t = attention_module.window_heads(qkv, None, (3, 5), 2)[1]
    keys = qkv.reshape(1, 15, 3, 2, 48)[:, :, 1].transpose(0, 2, 3, 1)  # (1, M, 3, nh, hd) -> (1, nh, hd, M)
    assert k_t.dtype == np.float16
    np.testing.assert_array_equal(k_t, (keys.astype(np.float32) * 48 ** -0.5).astype(np.float16))


@pytest.mark.parametrize("case", range(len(product_layouts())))
def test_strided_batched_products(case):
    """The CuPy path's products (backend.strided_batched) through an emulation of the cuBLAS call it makes:
    a @ b for views as they lie, and the array module's matmul for layouts one call cannot read."""
    a, b, out, one_call = product_layouts()[case]
    fell_back = []
    product = emulated_matmul(a, b, out, fell_back)
    assert (not fell_back) == one_call
    assert out is None or product is out
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert product.dtype == a.dtype and product.shape == expected.shape
    np.testing.assert_allclose(product, expected, rtol=1e-3 if a.dtype == np.float16 else 1e-5, atol=1e-4)


def test_a_product_that_does_not_fit_is_matmuls_error():
    """Operands whose sides differ, or an output of fewer or other leading axes than the product's, are left to
    matmul, which refuses them: one cuBLAS call would compute something."""
    matrix = np.ones((4, 5), np.float32)
    for a, out in ((np.ones((2, 3), np.float32), None), (np.ones((2, 3, 4), np.float32), np.empty((3, 5), np.float32)),
                   (np.ones((2, 3, 4), np.float32), np.empty((4, 3, 5), np.float32))):
        with pytest.raises(ValueError):
            emulated_matmul(a, matrix, out)


def test_overlapping_rows_are_left_to_matmul():
    """A matrix whose rows overlap (a sliding window's view, rows one element apart) is none that cuBLAS reads."""
    windows = np.lib.stride_tricks.sliding_window_view(np.arange(12, dtype=np.float32), 5)  # (8, 5)
    for a, b in (windows, np.ones((5, 3), np.float32)), (np.ones((3, 8), np.float32), windows):
        fell_back = []
        np.testing.assert_allclose(emulated_matmul(a, b, None, fell_back), np.matmul(a, b))
        assert len(fell_back) == 1


def test_each_layout_of_a_product_has_its_own_plan(monkeypatch):
    """strided_batched works out a product's cuBLAS call once and keeps it by its operands' layouts: products of
    the same shapes whose operands or output lie otherwise (columns contiguous, a slab of a wider array) each get
    their own call, or matmul where one call cannot write the output (its columns contiguous)."""
    monkeypatch.setattr(backend, "_PLANS", {})
    own = np.random.default_rng(12)  # not the module's generator: the tests after this one keep their inputs
    a, b = own.standard_normal((3, 4, 5), np.float32), own.standard_normal((3, 5, 6), np.float32)
    columns_a, columns_b = (np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1) for x in (a, b))
    outputs = (lambda: None, lambda: np.empty((3, 4, 6), np.float32), lambda: np.empty((3, 4, 9), np.float32)[..., 2:8],
               lambda: np.empty((3, 6, 4), np.float32).transpose(0, 2, 1))
    products = [(x, y, out) for x, y in ((a, b), (columns_a, b), (a, columns_b)) for out in outputs]
    for x, y, out in products * 2:
        np.testing.assert_allclose(emulated_matmul(x, y, out()), np.matmul(a, b), rtol=1e-5, atol=1e-6)
    assert len(backend._PLANS) == len(products)


def test_products_beyond_cublas_int_sizes_are_left_to_matmul():
    """cuBLAS takes sizes and counts as C ints: a stack of 2^31 matrices is not one call, nor a matrix whose rows
    lie 2^31 elements apart (views of a few bytes stand in for arrays of that size; gemm_layout reads only shapes
    and strides)."""
    def stack(count, rows, columns):
        return np.broadcast_to(np.ones((1, rows, columns), np.float32), (count, rows, columns))
    for count, one_call in (2 ** 31 - 1, True), (2 ** 31, False):
        layout = backend.gemm_layout(stack(count, 2, 3), np.ones((3, 4), np.float32), stack(count, 2, 4))
        assert (layout is not None) == one_call

    def rows_apart(step, rows, columns):  # a view of no real memory: never to be read (nor shown by pytest)
        return np.lib.stride_tricks.as_strided(np.ones(1, np.float32), (rows, columns), (4 * step, 4))
    shapes = (2, 3), (3, 4), (2, 4)  # a, b, out
    for step, one_call in (2 ** 31 - 1, True), (2 ** 31, False):
        for apart in range(3):  # a's, b's or out's rows
            a, b, out = (rows_apart(step, *shape) if i == apart else np.ones(shape, np.float32)
                         for i, shape in enumerate(shapes))
            called = backend.gemm_layout(a, b, out) is not None
            assert called == one_call, f"rows {step} elements apart in operand {apart}"


@pytest.mark.parametrize("bias", [True, False])
def test_global_attention_projects_as_the_fused_qkv(bias):
    """global_attention's head-by-head projection gives attention() of the fused qkv projection (other GEMM
    shapes: other roundings), for several items, with and without the qkv bias."""
    own = np.random.default_rng(11)  # not the module's generator: the tests after this one keep their inputs

    def draw(*shape):
        return own.standard_normal(shape).astype(np.float32)
    n, h, w, heads, hd = 2, 5, 7, 3, 64
    c = heads * hd
    x = draw(n, h, w, c)
    params = {"weight": draw(3 * c, c) * 0.05, **({"bias": draw(3 * c)} if bias else {})}
    rel_h, rel_w = draw(2 * h - 1, hd) * 0.1, draw(2 * w - 1, hd) * 0.1
    relative = attention_module.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (h, w))
    fused, fused_probs = attention_module.attention(nn.linear(x, params), heads, None, relative, True)
    out, probs = attention_module.global_attention(x, params, heads, relative, return_probs=True)
    np.testing.assert_allclose(out, fused, rtol=0, atol=1e-5)
    np.testing.assert_allclose(probs, fused_probs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("budget", [1, 40, 1 << 16])
@pytest.mark.parametrize("scale", [1, 5])
def test_attention_slabs_are_exact(monkeypatch, budget, scale):
    """Query-chunked attention equals a direct softmax with the decomposed relative bias; so does attention
    over blocks of 1 and 3 key rows (a budget of 1 or 40, without the probabilities), also where a row's logits
    spread over hundreds (scale 5), so that one block's exponentials underflow next to another's maximum."""
    module = attention_module
    monkeypatch.setattr(module, "piece_elements", lambda xp, kind: budget)
    n, a, b, heads, hd = 2, 5, 7, 3, 64
    qkv, rel_h, rel_w = randn(n, a, b, 3 * heads * hd) * scale, randn(2 * a - 1, hd), randn(2 * b - 1, hd)
    relative = module.relative_embeddings({"rel_pos_h": rel_h, "rel_pos_w": rel_w}, (a, b))
    out, probs = module.attention(qkv, heads, None, relative, True)
    by_key_blocks, no_probs = module.attention(qkv, heads, None, relative)
    assert no_probs is None
    q, k, v = (qkv.reshape(n, a * b, 3, heads, hd)[:, :, i].transpose(0, 2, 1, 3).astype(np.float64) for i in range(3))
    iy, ix = np.divmod(np.arange(a * b), b)
    bias_h = np.einsum("nhqc,qkc->nhqk", q, rel_h[iy[:, None] - iy[None, :] + a - 1])
    bias_w = np.einsum("nhqc,qkc->nhqk", q, rel_w[ix[:, None] - ix[None, :] + b - 1])
    logits = q @ k.transpose(0, 1, 3, 2) / 8 + bias_h + bias_w
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = (p @ v).transpose(0, 2, 1, 3).reshape(n, a, b, -1)
    for computed, exact in (probs, p), (out, expected), (by_key_blocks, expected):
        np.testing.assert_allclose(computed, exact, atol=1e-5 * scale ** 2)  # float32 logits: rounding ~ scale^2


@pytest.mark.parametrize("size", [(1, 1), (1, 4), (2, 3), (4, 4), (5, 7), (8, 6)])
@pytest.mark.parametrize("band_budget", [1, 1 << 16])
@pytest.mark.parametrize("winograd", [False, True])
def test_conv2d_upsampled_matches_torch(monkeypatch, size, band_budget, winograd):
    """conv3x3(cat([detail, upsample2x(x)])) computed at the low resolution, frame included, tiny bands too,
    its two parts as im2col GEMMs or with Winograd weights."""
    torch, _ = require_reference()
    monkeypatch.setattr(conv, "piece_elements", lambda xp, kind: band_budget)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1 if winograd else 10 ** 9)
    h, w = size
    x, detail, weight, bias = randn(2, h, w, 6), randn(2, 2 * h, 2 * w, 3), randn(5, 9, 3, 3), randn(5)
    p = {"bias": bias, **conv.upsampled_conv_parts(weight, 3, np.float32)}
    assert ("winograd_weight" in p["detail"]) == ("winograd_weight" in p["upsampled"]) == winograd
    def t(a):
        return torch.from_numpy(a).double()
    up = torch.nn.functional.interpolate(t(x).permute(0, 3, 1, 2), scale_factor=2, mode="bilinear",
                                         align_corners=False)
    ref = torch.nn.functional.conv2d(torch.cat([t(detail).permute(0, 3, 1, 2), up], 1), t(weight), t(bias), padding=1)
    # Against float64, the truth: float32 torch rounds too, and at the frame (parity sums less the taps beyond
    # the edge) its roundings and ours came to more than 1e-5 apart.
    np.testing.assert_allclose(conv.conv2d_upsampled(detail, x, p, relu=True),
                               np.maximum(ref.permute(0, 2, 3, 1).numpy(), 0), atol=1e-5)
