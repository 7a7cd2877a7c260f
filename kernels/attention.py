"""Windowed and global multi-head attention with decomposed relative position bias (VitDet / MViTv2)."""
import numpy

from .. import backend
from ..backend import array_module, even_step, matmul, parallelism, piece_elements, run_pieces
from .resize import interpolation_matrix


def window_partition(x, window, pad_value=0.0):
    """(N, h, w, C) -> (N*nW, window, window, C), padding bottom/right with `pad_value` to whole windows.

    Windows are ordered window-row-major within each item, items batch-major, as in the reference.
    """
    xp = array_module(x)
    n, h, w, c = x.shape
    hp, wp = h + (-h) % window, w + (-w) % window
    if (hp, wp) != (h, w):
        padded = xp.empty((n, hp, wp, c), dtype=x.dtype)
        padded[:, :h, :w] = x
        padded[:, h:] = pad_value
        padded[:, :h, w:] = pad_value
        x = padded
    x = x.reshape(n, hp // window, window, wp // window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c)  # (N, nWh, nWw, window, window, C) -> (N*nW, window, window, C)


def window_unpartition(windows, window, size):
    """Inverse of window_partition: (N*nW, window, window, C) -> (N, h, w, C), cropping the padding."""
    h, w = size
    hp, wp = h + (-h) % window, w + (-w) % window
    c = windows.shape[-1]
    x = windows.reshape(-1, hp // window, wp // window, window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, hp, wp, c)[:, :h, :w]  # (N, nWh, window, nWw, window, C) -> (N, h, w, C)


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


def _relative_positions(table, size):
    """R[i, j] = table[i - j + size - 1]: (size, size, head_dim) embeddings of query i vs key j."""
    xp = array_module(table)
    offsets = xp.arange(size)[:, None] - xp.arange(size)[None, :] + (size - 1)
    return relative_position_table(table, size)[offsets]


def attention(qkv, num_heads, rel_pos_h=None, rel_pos_w=None, return_probs=False):
    """Multi-head softmax attention over an (a x b) token grid.

    qkv: (N, a, b, 3C), the fused projection [q | k | v]; head j uses channels 64j..64j+63 of each block.
    rel_pos_h, rel_pos_w: the stored tables, (L_h, hd) and (L_w, hd), or None for no relative bias.
    The bias for query (y, x) and key (y', x') is q·Rh[y-y'] + q·Rw[x-x'] with the *unscaled* q, added to
    the logits before the softmax (reference: VitDet `add_decomposed_relative_positions`).
    Returns (N, a, b, C) and the (N, heads, a*b, a*b) softmax probabilities (None unless asked for).

    Memory is bounded: queries are processed in slabs of whole grid rows (and of whole items for small
    grids), which is exact because the softmax and the relative bias are per query row. The softmax is
    computed in float32 also for float16 logits; on CuPy the bias and softmax are one hand-written kernel
    (kernels/cuda/attention.cu).
    """
    xp = array_module(qkv)
    n, a, b, c3 = qkv.shape
    c = c3 // 3
    hd, m = c // num_heads, a * b
    qkv = qkv.reshape(n, m, 3, num_heads, hd)
    q = xp.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # (N, M, nh, hd) -> (N, nh, M, hd)
    # Scaling k by hd^-0.5 (= 0.125, a power of two) is exactly scaling q, and leaves q unscaled for the bias.
    k_t = xp.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1) * hd ** -0.5)  # (N, nh, hd, M)
    v = xp.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))  # (N, nh, M, hd)
    use_bias = rel_pos_h is not None
    if use_bias:
        r_h = _relative_positions(rel_pos_h, a).transpose(0, 2, 1)  # (a, hd, a)
        r_w = _relative_positions(rel_pos_w, b).transpose(0, 2, 1)  # (b, hd, b)
    fused = backend.cuda_kernel(xp, "attention.cu", "softmax_numerators", q.dtype) if use_bias else None

    out = xp.empty((n, num_heads, m, hd), dtype=q.dtype)
    probs = xp.empty((n, num_heads, m, m), dtype=q.dtype) if return_probs else None

    def slab(piece):
        (i0, i1), (y0, y1) = piece
        ni, ry, tokens = i1 - i0, y1 - y0, slice(y0 * b, y1 * b)
        q_s = q[i0:i1, :, tokens]  # (ni, nh, ry*b, hd)
        logits = matmul(q_s, k_t[i0:i1])  # (ni, nh, ry*b, M)
        if use_bias:
            q_g = q_s.reshape(ni * num_heads, ry, b, hd)
            rel_h = matmul(q_g.transpose(1, 0, 2, 3).reshape(ry, -1, hd), r_h[y0:y1])  # (ry, ni*nh*b, a)
            rel_w = matmul(q_g.transpose(2, 0, 1, 3).reshape(b, -1, hd), r_w)  # (b, ni*nh*ry, b)
            rel_h = rel_h.reshape(ry, -1, b, a).transpose(1, 0, 2, 3)  # -> (ni*nh, ry, b, a): query, key row
            rel_w = rel_w.reshape(b, -1, ry, b).transpose(1, 2, 0, 3)  # -> (ni*nh, ry, b, b): query, key column
        if fused is not None:  # one kernel: bias, row maxima, exponentials in place and their row sums
            total = xp.empty((*logits.shape[:-1], 1), dtype=xp.float32)  # (ni, nh, ry*b, 1)
            bias = xp.ascontiguousarray(rel_h), xp.ascontiguousarray(rel_w)
            threads = 256 if m > 1024 else 128  # per block; a block per query row
            fused((logits.size // m,), (threads,), (logits, *bias, total, numpy.int32(a), numpy.int32(b)))
            numerators = logits
        else:
            scores = logits.astype(xp.float32, copy=False)
            if use_bias:
                grid = scores.reshape(ni * num_heads, ry, b, a, b)
                grid += rel_h[..., None]
                grid += rel_w[:, :, :, None, :]
            scores -= scores.max(-1, keepdims=True)
            xp.exp(scores, out=scores)
            total = scores.sum(-1, keepdims=True)  # (ni, nh, ry*b, 1)
            numerators = scores.astype(q.dtype, copy=False)
        out_s = out[i0:i1, :, tokens]
        matmul(numerators, v[i0:i1], out=out_s)  # (ni, nh, ry*b, M) @ (ni, nh, M, hd)
        out_s /= total
        if return_probs:
            xp.divide(numerators, total, out=probs[i0:i1, :, tokens])

    budget = piece_elements(xp, "attention logits")
    most_rows = max(1, budget // (num_heads * b * m))
    if most_rows >= a and n >= parallelism():  # whole grids per slab, and enough of them for every thread
        rows, items = a, even_step(n, max(1, budget // (num_heads * m * m)))
    else:
        rows, items = even_step(a, min(a, most_rows)), 1
    run_pieces(slab, [((i0, min(n, i0 + items)), (y0, min(a, y0 + rows)))
                      for i0 in range(0, n, items) for y0 in range(0, a, rows)])
    out = out.transpose(0, 2, 1, 3).reshape(n, a, b, c)  # (N, nh, M, hd) -> (N, a, b, C), heads concatenated
    return out, probs
