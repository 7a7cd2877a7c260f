// The softmax of attention logits with decomposed relative position bias, in one kernel: composed CuPy
// needs two bias adds, a max, a subtract, an exp and a sum, each a pass over the (queries x keys) logits,
// which at 2048x2048 are 16384 keys per row and cost more than the matrix products around them.

// Key j = ky * key_w + kx of the key grid. A thread visits keys blockDim.x apart, so (ky, kx) advance by a
// fixed step with one carry instead of two integer divisions per key (~20 instructions each, in a kernel
// that should be limited by memory traffic).
struct KeyCursor {
    int ky, kx, step_h, step_w, key_w;
    __device__ KeyCursor(int j, int step, int key_w)
        : ky(j / key_w), kx(j % key_w), step_h(step / key_w), step_w(step % key_w), key_w(key_w) {}
    __device__ void advance() {
        kx += step_w;
        ky += step_h;
        if (kx >= key_w) { kx -= key_w; ++ky; }
    }
};

// One block per query row of `logits` (rows x key_h*key_w, keys ordered ky-major over a key_h x key_w
// grid). In place: s = logit + bias_h[row, ky] + bias_w[row, kx] becomes exp(s - max of the row's s),
// maxima[row] gets that max and totals[row] the row's sum of those exponentials: the softmax numerators and
// denominators, in float32 also for float16 logits. As kernels/attention.py, which divides by the totals after
// the product with v (and uses the maxima to join blocks of keys).
// The rows are the queries (g, y, x) of `groups` (items x heads) query_h x query_w grids, g-major; the biases
// are read where the products that make them leave them (no copies into row order): bias_h is (query_h,
// groups * query_w, key_rows), of which these keys are rows key_row0 on, bias_w (query_w, groups * query_h, key_w).
template <typename T>
__global__ void softmax_numerators(T* logits, const T* bias_h, const T* bias_w, float* maxima, float* totals,
                                   int groups, int query_h, int query_w, int key_rows, int key_row0, int key_h,
                                   int key_w) {
    const int keys = key_h * key_w;
    const int x = blockIdx.x % query_w, y = blockIdx.x / query_w % query_h, g = blockIdx.x / query_w / query_h;
    T* row = logits + (long long)blockIdx.x * keys;
    const T* row_bias_h = bias_h + ((long long)(y * groups + g) * query_w + x) * key_rows + key_row0;
    const T* row_bias_w = bias_w + ((long long)(x * groups + g) * query_h + y) * key_w;
    // One read for both statistics: the running sum of exponentials is rescaled whenever the maximum grows.
    float running_max = -3.402823466e+38f, running_sum = 0;  // -FLT_MAX (NVRTC has no <cfloat>)
    KeyCursor key(threadIdx.x, blockDim.x, key_w);
    for (int j = threadIdx.x; j < keys; j += blockDim.x, key.advance()) {
        const float s = to_float(row[j]) + to_float(row_bias_h[key.ky]) + to_float(row_bias_w[key.kx]);
        if (s > running_max) {
            running_sum = running_sum * expf(running_max - s) + 1.0f;
            running_max = s;
        } else {
            running_sum += expf(s - running_max);
        }
    }
    const float row_max = block_reduce(running_max, Max());
    const float total = block_reduce(running_sum * expf(running_max - row_max), Sum());
    key = KeyCursor(threadIdx.x, blockDim.x, key_w);
    for (int j = threadIdx.x; j < keys; j += blockDim.x, key.advance()) {
        const float s = to_float(row[j]) + to_float(row_bias_h[key.ky]) + to_float(row_bias_w[key.kx]);
        store(row + j, expf(s - row_max));
    }
    if (threadIdx.x == 0) {
        maxima[blockIdx.x] = row_max;
        totals[blockIdx.x] = total;
    }
}

// The projected tokens qkv (items x height x width x 3 * heads * head_dim), their bias not yet added, cut into
// windows of window_h x window_w tokens and split into attend()'s layouts (kernels/attention.py, window_heads):
// q (windows, heads, query_h * query_w, head_dim) of each window's top-left query_h x query_w tokens, k_t (windows,
// heads, head_dim, window_h * window_w) scaled, v (windows, heads, window_h * window_w, head_dim). Windows are
// item-major, then row-major over the grid padded bottom and right to whole windows, whose pads are the bias
// alone. Each value is rounded to T once the bias is added, and k again once scaled, as the composed operations
// round. A thread per element of the windows' qkv (fewer than 2^31), consecutive threads along its channels
// (coalesced reads); the seven divisions that place an element are Divisors (common.cuh), each passed as its
// magic number.
template <typename T>
__global__ void window_heads(const T* qkv, const T* bias, T* q, T* k_t, T* v, int height, int width, int window_h,
                             int window_w, int query_h, int query_w, int heads, int head_dim, float scale, int total,
                             long long qkv_magic, long long keys_magic, long long window_w_magic,
                             long long windows_w_magic, long long windows_h_magic, long long channels_magic,
                             long long head_dim_magic) {
    const int channels = heads * head_dim, keys = window_h * window_w;
    const int windows_h = (height + window_h - 1) / window_h, windows_w = (width + window_w - 1) / window_w;
    const Divisor by_qkv(3 * channels, qkv_magic), by_keys(keys, keys_magic), by_window_w(window_w, window_w_magic),
        by_windows_w(windows_w, windows_w_magic), by_windows_h(windows_h, windows_h_magic),
        by_channels(channels, channels_magic), by_head_dim(head_dim, head_dim_magic);
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int channel, key, tx, wx, wy, within, d;
        const int window = by_keys.divide(by_qkv.divide((int)i, channel), key);
        const int ty = by_window_w.divide(key, tx);  // the token's place in its window, and in the grid:
        const int item = by_windows_h.divide(by_windows_w.divide(window, wx), wy);
        const int y = wy * window_h + ty, x = wx * window_w + tx;
        float value = to_float(bias[channel]);
        if (y < height && x < width)
            value = rounded<T>(to_float(qkv[(((long long)item * height + y) * width + x) * 3 * channels + channel])
                               + value);
        const int part = by_channels.divide(channel, within), head = by_head_dim.divide(within, d);
        const long long head_index = (long long)window * heads + head;
        if (part == 0) {
            if (ty < query_h && tx < query_w)
                store(q + (head_index * query_h * query_w + ty * query_w + tx) * head_dim + d, value);
        } else if (part == 1) {
            store(k_t + (head_index * head_dim + d) * keys + key, value * scale);
        } else {
            store(v + (head_index * keys + key) * head_dim + d, value);
        }
    }
}
