"""Windowed and global multi-head attention with decomposed relative position bias (VitDet / MViTv2)."""
import functools

import numpy

from .. import backend
from ..backend import array_module, even_step, matmul, parallelism, piece_elements, run_pieces
from .nn import linear
from .resize import interpolation_matrix


def window_partition(x, window, bias=None):
    """(N, h, w, C) tokens + bias (C,) -> (N*nW, a, b, C) windows of `window` = (a, b) tokens, the grid padded
    bottom/right to whole windows with tokens of the bias alone (zeros without one).

    Windows are ordered window-row-major within each item, items batch-major, as in the reference.
    """
    xp = array_module(x)
    n, h, w, c = x.shape
    a, b = window
    hp, wp = h + (-h) % a, w + (-w) % b
    bias = 0 if bias is None else bias
    padded = xp.empty((n, hp, wp, c), dtype=x.dtype)
    if (hp, wp) != (h, w):
        padded[...] = bias  # all of it: one operation, where the pads alone are two
    xp.add(x, bias, out=padded[:, :h, :w])
    x = padded.reshape(n, hp // a, a, wp // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, a, b, c)  # (N, nWh, nWw, a, b, C) -> (N*nW, a, b, C)


def window_unpartition(windows, size):
    """Inverse of window_partition: (N*nW, a, b, C) -> (N, h, w, C), cropping the padding. The windows are the
    partition's, or the tokens of their top-left a x b corners where these tile (h, w) exactly."""
    h, w = size
    a, b, c = windows.shape[1:]
    hp, wp = h + (-h) % a, w + (-w) % b
    x = windows.reshape(-1, hp // a, wp // b, a, b, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, hp, wp, c)[:, :h, :w]  # (N, nWh, a, nWw, b, C) -> (N, h, w, C)


def relative_position_table(table, size):
    """The (2*size-1, head_dim) table for a `size`-long axis: the stored table, linearly resized if its
    length differs (PyTorch `interpolate(mode="linear")`, also when shrinking)."""
    xp = array_module(table)
    length = 2 * size - 1
    if table.shape[0] == length:
        return table
    matrix = interpolation_matrix(table.shape[0], length, "linear", xp)  # (2*size-1, L), float32
    resized = matrix @ table.astype(xp.float32, copy=False)  # (L, hd) -> (2*size-1, hd)
    return resized.astype(table.dtype, copy=False)


def relative_embeddings(p, grid):
    """A block's decomposed relative position embeddings for a grid of (a, b) keys, as attend() takes them:
    (Rh, Rw), Rh[i, :, j] = rel_pos_h[i - j + a - 1] of query row i and key row j, (a, hd, a), Rw likewise over
    columns, (b, hd, b); the stored tables p["rel_pos_h"], p["rel_pos_w"] resized first where their lengths are not
    2a-1, 2b-1 (relative_position_table). None for a block without them.

    On CuPy kept in p for the grid last asked for (backend.made_per_size; window blocks' are the same at every
    size): 6 operations a block, 48 a pass, otherwise. On NumPy they would hold 100 MB at 3008x4000."""
    if "rel_pos_h" not in p:
        return None
    xp = array_module(p["rel_pos_h"])

    def make():  # each table's rows for every (query, key) pair: (size, size, hd) -> (size, hd, size)
        return tuple(relative_position_table(p[name], size)[_offsets(xp, size)].transpose(0, 2, 1)
                     for name, size in zip(("rel_pos_h", "rel_pos_w"), grid))
    return backend.made_per_size(p, "relative embeddings", grid, make, xp)


@functools.lru_cache(maxsize=16)  # every block of a pass asks for the same few: made once, not in 5 launches each
def _offsets(xp, size):
    """i - j + size - 1 for query i and key j: (size, size) on backend `xp`."""
    return xp.arange(size)[:, None] - xp.arange(size)[None, :] + (size - 1)


def attention(qkv, num_heads, window=None, relative=None, return_probs=False, queries=None, bias=None):
    """Multi-head softmax attention within each window = (a, b) square of the projected tokens qkv (N, h, w, 3C)
    (window_heads), or over their whole grid (window None).

    qkv: the fused projection [q | k | v]; head j uses channels j*hd..(j+1)*hd-1 of each. bias: its bias (3C,),
    added here (the windows' pads are the bias alone), or None where qkv has it.
    relative: relative_embeddings() for the (a, b) grid, or None for no relative bias.
    queries: (a_q, b_q) to attend from each window's top-left a_q x b_q tokens only (all a*b keys take part), or
    None for every token.
    Returns (N*nW, a_q, b_q, C) and the (N*nW, heads, a_q*b_q, a*b) softmax probabilities (None unless asked for);
    see attend.
    """
    window = window or qkv.shape[1:3]
    q, k_t, v = window_heads(qkv, bias, window, num_heads, queries)
    del qkv  # where the caller passed the projection on, its memory goes before the logits'
    return attend(q, k_t, v, window, queries or window, relative, return_probs)


def window_heads(qkv, bias, window, num_heads, queries=None):
    """attend()'s q, k_t and v for each window = (a, b) square of the projected tokens qkv (N, h, w, 3C), bias (3C,
    or None) added: q (N*nW, nh, a_q*b_q, hd) of each window's top-left queries = (a_q, b_q) tokens (None: all),
    k_t (N*nW, nh, hd, a*b) scaled by hd^-0.5, v (N*nW, nh, a*b, hd); windows ordered as window_partition's,
    whose pads are the bias alone (the reference pads the tokens with zeros before their projection).

    On CuPy one hand-written kernel (kernels/cuda/attention.cu) does what is here five to seven operations: the
    bias, the padding, the partition and the three copies into the heads' layouts. Both round each value to the
    array's type once the bias is added, and k again once scaled."""
    xp = array_module(qkv)
    n, h, w, c3 = qkv.shape
    (a, b), (a_q, b_q) = window, queries or window
    hd = c3 // 3 // num_heads
    kernel = backend.cuda_kernel(xp, "attention.cu", "window_heads", qkv.dtype) if bias is not None else None
    count = n * -(-h // a) * -(-w // b)  # windows
    total = count * a * b * c3  # the kernel: a thread per element of the windows' qkv, int indices
    if kernel is not None and total < 2 ** 31:
        q = xp.empty((count, num_heads, a_q * b_q, hd), dtype=qkv.dtype)
        k_t = xp.empty((count, num_heads, hd, a * b), dtype=qkv.dtype)
        v = xp.empty((count, num_heads, a * b, hd), dtype=qkv.dtype)
        sizes = map(numpy.int32, (h, w, a, b, a_q, b_q, num_heads, hd))
        divisors = (c3, a * b, b, -(-w // b), -(-h // a), c3 // 3, hd)  # in the kernel's order
        kernel(*backend.grid_stride_launch(total), (xp.ascontiguousarray(qkv), bias, q, k_t, v, *sizes,
                                                     numpy.float32(hd ** -0.5), numpy.int32(total),
                                                     *map(backend.fast_divisor, divisors)))
        return q, k_t, v
    windows = window_partition(qkv, window, bias)  # (N, h, w, 3C) -> (N*nW, a, b, 3C)
    grid = windows.reshape(-1, a, b, 3, num_heads, hd)
    q = xp.ascontiguousarray(grid[:, :a_q, :b_q, 0].transpose(0, 3, 1, 2, 4))  # (N*nW, nh, a_q, b_q, hd)
    q = q.reshape(-1, num_heads, a_q * b_q, hd)  # (N*nW, nh, Mq, hd)
    tokens = windows.reshape(-1, a * b, 3, num_heads, hd)
    # Scaling k by hd^-0.5 (64-channel heads: 0.125, a power of two) is exactly scaling q, left unscaled for the bias.
    k_t = xp.empty((len(windows), num_heads, hd, a * b), dtype=qkv.dtype)  # (N*nW, nh, hd, M), scaled in one pass
    _scale_into(tokens[:, :, 1].transpose(0, 2, 3, 1), hd ** -0.5, k_t)
    v = xp.ascontiguousarray(tokens[:, :, 2].transpose(0, 2, 1, 3))  # (N*nW, nh, M, hd)
    return q, k_t, v


def _scale_into(x, scale, out):
    """out = x * scale, computed in float32 and rounded to out's type, as the kernel and torch's float16 products
    with a Python number compute it (NumPy would round the scale to float16 first, where it is no power of two)."""
    array_module(x).multiply(x, scale, out=out, dtype=numpy.float32)


def global_attention(x, qkv_params, num_heads, relative=None, return_probs=False):
    """attention() of the (N, h, w, C) tokens over their whole grid, after their qkv projection (nn.linear with
    `qkv_params`), which is computed head by head straight into the layouts attend() takes: the fused (N, M, 3C)
    projection and its copies in those layouts are never in memory together (at 3008x4000 each took 207 MiB;
    tracemalloc measured a block's peak at 482 MiB beyond its input with them, 382 MiB now). Where fewer launches
    pay (backend.few_launches: a GPU's memory holds them easily) it is attention() of the fused projection.
    Returns (N, h, w, C) and the probabilities (None unless asked for)."""
    xp = array_module(x)
    if backend.few_launches(xp):  # one product, then the layouts: ~40 fewer launches a block
        qkv = linear(x, qkv_params, add_bias=False)  # (N, h, w, C) -> (N, h, w, 3C); attention adds the bias
        return attention(qkv, num_heads, relative=relative, return_probs=return_probs, bias=qkv_params.get("bias"))
    n, h, w, c = x.shape
    hd, m = c // num_heads, h * w
    tokens = x.reshape(n, m, c)
    weight, bias = qkv_params["weight"], qkv_params.get("bias")  # (3C, C), (3C,): [q | k | v], heads within each
    q, v = (xp.empty((n, num_heads, m, hd), dtype=x.dtype) for _ in range(2))  # (N, nh, M, hd)
    k_t = xp.empty((n, num_heads, hd, m), dtype=x.dtype)  # (N, nh, hd, M)

    def project(piece):
        i, part, j = piece  # item, q/k/v, head
        rows = slice(part * c + j * hd, part * c + (j + 1) * hd)  # the head's rows of W
        into = None if part == 1 else (q, None, v)[part][i, j]
        product = matmul(tokens[i], weight[rows].T, out=into)  # (M, C) -> (M, hd)
        if bias is not None:
            product += bias[rows]
        if part == 1:  # k: transposed and scaled as in attention()
            _scale_into(product.T, hd ** -0.5, k_t[i, j])  # (M, hd) -> (hd, M)

    run_pieces(project, [(i, part, j) for i in range(n) for part in range(3) for j in range(num_heads)])
    return attend(q, k_t, v, (h, w), (h, w), relative, return_probs)


def attend(q, k_t, v, grid, queries, relative=None, return_probs=False):
    """softmax(q k^T + relative position bias) v, per head, for queries q (N, nh, a_q*b_q, hd) from the top-left
    `queries` = (a_q, b_q) tokens of the `grid` = (a, b) of keys k_t (N, nh, hd, a*b), already scaled by
    hd^-0.5, and values v (N, nh, a*b, hd). Returns (N, a_q, b_q, C) and the (N, nh, a_q*b_q, a*b) softmax
    probabilities (None unless asked for).

    The bias for query (y, x) and key (y', x') is q·Rh[y-y'] + q·Rw[x-x'] with the *unscaled* q, added to
    the logits before the softmax (reference: VitDet `add_decomposed_relative_positions`).

    Memory is bounded: queries are processed in slabs of whole grid rows (and of whole items for small
    grids, of a few heads for large ones), which is exact because the softmax and the relative bias are per
    query row and head. Where even one head's row of logits is too large (from 2048x2048 images on a CPU), its
    keys are taken a few grid rows at a time and the partial softmaxes joined by their maxima (as in
    flash-decoding; the same up to float32 rounding). The softmax is computed in float32 also for float16 logits;
    on CuPy the bias and softmax are one hand-written kernel (kernels/cuda/attention.cu).
    """
    xp = array_module(q)
    n, num_heads, _, hd = q.shape
    (a, b), (a_q, b_q) = grid, queries
    c, m = num_heads * hd, a * b
    use_bias = relative is not None
    if use_bias:
        r_h, r_w = relative[0], relative[1][:b_q]  # (a, hd, a): query row, hd, key row; (b_q, hd, b)
    fused = backend.cuda_kernel(xp, "attention.cu", "softmax_numerators", q.dtype) if use_bias else None

    out = xp.empty((n, a_q * b_q, num_heads, hd), dtype=q.dtype)  # heads joined: no copy to join them after
    probs = xp.empty((n, num_heads, a_q * b_q, m), dtype=q.dtype) if return_probs else None

    def softmax_numerators(logits, bias, key_block):
        """exp(logits + bias - their row maxima) in place, the maxima and the rows' sums, in float32. bias: None,
        or a slab's (rel_h, rel_w) in the layouts their products leave them; key_block: the logits' key rows
        (first, end) of the grid's `a`."""
        (k0, k1), keys = key_block, logits.shape[-1]
        if bias is not None:
            rel_h, rel_w = bias
            ry, groups = rel_h.shape[0], rel_h.shape[1] // b_q  # groups: the slab's items x heads
        if fused is not None:  # one kernel: bias, row maxima, exponentials in place and their row sums
            best, total = (xp.empty((*logits.shape[:-1], 1), dtype=xp.float32) for _ in range(2))
            threads = 256 if keys > 1024 else 128  # per block; a block per query row
            sizes = (groups, ry, b_q, a, k0, k1 - k0, b)
            fused((logits.size // keys,), (threads,), (logits, rel_h, rel_w, best, total, *map(numpy.int32, sizes)))
            return logits, best, total
        scores = logits.astype(xp.float32, copy=False)
        if bias is not None:
            bias_h = rel_h.reshape(ry, groups, b_q, a).transpose(1, 0, 2, 3)[..., k0:k1]  # (groups, ry, b_q, key rows)
            bias_w = rel_w.reshape(b_q, groups, ry, b).transpose(1, 2, 0, 3)  # (groups, ry, b_q, b): key columns
            by_key = scores.reshape(*bias_h.shape, b)  # (groups, ry, b_q, key rows, b)
            by_key += bias_h[..., None]
            by_key += bias_w[:, :, :, None, :]
        best = scores.max(-1, keepdims=True)
        scores -= best
        xp.exp(scores, out=scores)
        return scores.astype(q.dtype, copy=False), best, scores.sum(-1, keepdims=True)

    def slab(piece):
        (i0, i1), (h0, h1), (y0, y1) = piece
        ni, heads, ry, span = i1 - i0, h1 - h0, y1 - y0, slice(y0 * b_q, y1 * b_q)  # span: its queries
        q_s = q[i0:i1, h0:h1, span]  # (ni, heads, ry*b_q, hd)
        if use_bias:
            q_g = q_s.reshape(ni * heads, ry, b_q, hd)
            rel_h = matmul(q_g.transpose(1, 0, 2, 3).reshape(ry, -1, hd), r_h[y0:y1])  # (ry, ni*heads*b_q, a)
            rel_w = matmul(q_g.transpose(2, 0, 1, 3).reshape(b_q, -1, hd), r_w)  # (b_q, ni*heads*ry, b)
        out_s = out[i0:i1, span, h0:h1].transpose(0, 2, 1, 3)  # (ni, heads, ry*b_q, hd), a view
        parts = []  # each block of keys' numerators @ v, row maxima and row sums
        for k0, k1 in key_blocks:  # of whole key rows
            keys = slice(k0 * b, k1 * b)
            logits = matmul(q_s, k_t[i0:i1, h0:h1, :, keys])  # (ni, heads, ry*b_q, keys)
            numerators, best, total = softmax_numerators(logits, (rel_h, rel_w) if use_bias else None, (k0, k1))
            # Into an array of its own, not out_s: a slab of several items' heads there is not evenly spaced, which
            # one strided-batched product needs (backend.strided_batched); the division below writes out_s.
            product = matmul(numerators, v[i0:i1, h0:h1, keys])  # (ni, heads, ry*b_q, keys) @ (..., keys, hd)
            parts.append((product, best, total))
        if len(parts) > 1:  # the partial softmaxes joined, each rescaled from its own maximum to the largest
            products, maxima, totals = map(xp.stack, zip(*parts))  # (blocks, ni, heads, ry*b_q, hd or 1)
            scales = xp.exp(maxima - maxima.max(0))
            product, total = (products * scales).sum(0), (totals * scales).sum(0)
        xp.divide(product, total, out=out_s)
        if return_probs:
            xp.divide(numerators, total, out=probs[i0:i1, h0:h1, span])

    budget = piece_elements(xp, "attention logits")
    row = num_heads * b_q * m  # the logits of a grid row of queries
    key_blocks = [(0, a)]
    if budget >= row * a_q and n >= parallelism():  # whole grids per slab, and enough of them for every thread
        items, heads, rows = even_step(n, budget // (row * a_q)), num_heads, a_q
    elif budget >= row:  # whole grid rows
        items, heads, rows = 1, num_heads, even_step(a_q, min(a_q, budget // row))
    elif budget >= b_q * m or return_probs:  # one grid row, a few heads: at 1024x1024 a row's logits take 6 MB
        items, heads, rows = 1, even_step(num_heads, max(1, budget // (b_q * m))), 1
    else:  # one grid row of one head, against a few key rows at a time: at 2048x2048 all keys' logits take 8 MB
        items, heads, rows = 1, 1, 1
        step = -(-a // -(-a // max(1, budget // (b_q * b))))  # as equal as can be
        key_blocks = [(k0, min(a, k0 + step)) for k0 in range(0, a, step)]
    run_pieces(slab, [((i0, min(n, i0 + items)), (h0, min(num_heads, h0 + heads)), (y0, min(a_q, y0 + rows)))
                      for i0 in range(0, n, items) for h0 in range(0, num_heads, heads) for y0 in range(0, a_q, rows)])
    return out.reshape(n, a_q, b_q, c), probs  # (N, Mq, nh, hd) -> (N, a_q, b_q, C)


def window_attention(x, qkv_params, window, num_heads, relative=None, return_probs=False):
    """attention() within each window x window square of the (N, h, w, C) tokens, after their qkv projection
    (nn.linear with `qkv_params`). Returns (N, h, w, C) and the (N*nW, heads, window^2, window^2) probabilities
    (None unless asked for).

    The reference pads the tokens with zeros to whole windows before the projection, so a pad's q, k and v are
    the qkv bias (window_heads). The pads' keys and values take part, as in the reference.
    Their queries' outputs are cropped, so they are computed only for the probabilities, and on backends where
    fewer, larger operations pay (backend.few_launches): otherwise the whole windows, the part-padded last row
    and column of windows and their corner are attended one after another, each from the queries of its real
    tokens. Without the probabilities, the tokens are projected and attended a band of window rows at a time, so
    that the qkv of a large image is never whole (at 4096x4096 it takes 300 MB, and its windows, their q, k and
    v as many again each).
    """
    xp = array_module(x)
    n, h, w, _ = x.shape
    c3 = qkv_params["weight"].shape[0]
    out = xp.empty((n, h, w, c3 // 3), dtype=x.dtype)
    bias = qkv_params.get("bias")
    band = h if return_probs else window * max(1, piece_elements(xp, "window bands") // (n * window * w * c3))
    whole = return_probs or backend.few_launches(xp)  # whole padded windows, pads' queries too
    probs = None
    for r0 in range(0, h, band):
        qkv = linear(x[:, r0:r0 + band], qkv_params, add_bias=False)  # (N, rows, w, C) -> (N, rows, w, 3C)
        for rows in _window_runs(qkv.shape[1], window, whole):
            for columns in _window_runs(w, window, whole):
                size = (rows.stop - rows.start, columns.stop - columns.start)
                queries = (window, window) if return_probs else (min(window, size[0]), min(window, size[1]))
                attended, probs = attention(qkv[:, rows, columns], num_heads, (window, window), relative,
                                            return_probs, queries, bias)  # -> (N*nW, a_q, b_q, C)
                out[:, r0 + rows.start:r0 + rows.stop, columns] = window_unpartition(attended, size)  # -> (N, *size, C)
    return out, probs


def _window_runs(size, window, whole):
    """Token ranges along an axis: its whole windows, then the part-padded last one; one range if `whole`."""
    cut = size - size % window
    return [slice(0, size)] if whole or cut in (0, size) else [slice(0, cut), slice(cut, size)]
