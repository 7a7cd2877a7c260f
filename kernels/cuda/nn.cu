// Layer norm, exact GELU, the bias epilogues and the sigmoid: one pass each instead of a chain of CuPy launches,
// computing in float32 for float16 arrays too. Same maths as kernels/nn.py.

// Exact GELU, v * (1 + erf(v / sqrt 2)) / 2.
__device__ __forceinline__ float gelu_of(float v) { return v * (1.0f + erff(v * 0.70710678118654752f)) * 0.5f; }

// LayerNorm of one row of `channels` values per block: the mean, then the biased variance of x - mean,
// in float32 (float16 squares would overflow from |x| = 256 on; real activations reach ~1000). Then its GELU
// (gelu_after), then its sum with out's value (add_to_out: out is the residual), each step's input rounded to T
// as a separate operation would have stored it.
template <typename T>
__global__ void layer_norm(const T* x, const T* weight, const T* bias, T* out, int channels, float eps,
                           int gelu_after, int add_to_out) {
    const long long row = (long long)blockIdx.x * channels;
    float sum = 0;
    for (int c = threadIdx.x; c < channels; c += blockDim.x) sum += to_float(x[row + c]);
    const float mean = block_reduce(sum, Sum()) / channels;
    float squares = 0;
    for (int c = threadIdx.x; c < channels; c += blockDim.x) {
        const float centred = to_float(x[row + c]) - mean;
        squares += centred * centred;
    }
    const float inverse_std = 1.0f / sqrtf(block_reduce(squares, Sum()) / channels + eps);
    for (int c = threadIdx.x; c < channels; c += blockDim.x) {
        const float normalised = (to_float(x[row + c]) - mean) * inverse_std;
        float value = normalised * to_float(weight[c]) + to_float(bias[c]);
        if (gelu_after) value = gelu_of(rounded<T>(value));
        if (add_to_out) value = to_float(out[row + c]) + rounded<T>(value);
        store(out + row + c, value);
    }
}

// A thread's elements i of a grid-stride loop over rows of `channels`, each with its channel i % channels carried
// along: one 64-bit division per thread instead of one per element, a long instruction sequence in kernels that
// should be limited by memory traffic.
struct GridStride {
    long long i, stride;
    int channel, channel_step, channels;
    __device__ explicit GridStride(int channels)
        : i((long long)blockIdx.x * blockDim.x + threadIdx.x), stride((long long)gridDim.x * blockDim.x),
          channel((int)(i % channels)), channel_step((int)(stride % channels)), channels(channels) {}
    __device__ void advance() {
        i += stride;
        channel += channel_step;
        if (channel >= channels) channel -= channels;
    }
};

// v * (1 + erf(v / sqrt 2)) / 2 of v = x, or of v = x + bias (over rows of `channels`, the sum rounded to T as a
// separate addition would round it), in place, grid-stride over n elements.
template <typename T>
__device__ void gelu_in_place(T* x, const T* bias, int channels, long long n) {
    for (GridStride at(channels); at.i < n; at.advance()) {
        const float v = bias ? rounded<T>(to_float(x[at.i]) + to_float(bias[at.channel])) : to_float(x[at.i]);
        store(x + at.i, gelu_of(v));
    }
}

// y + bias over rows of `channels`, rounded to T as a separate addition would round it, then + residual
// (residual not null) or max(., 0) (relu), into out (which may be y or the residual), grid-stride over n
// elements: a linear layer's or a convolution's bias left to the operation after it. A NaN stays a NaN through
// the ReLU, as in NumPy's maximum.
template <typename T>
__device__ void add_bias(const T* y, const T* bias, const T* residual, T* out, bool relu, int channels,
                         long long n) {
    for (GridStride at(channels); at.i < n; at.advance()) {
        float v = rounded<T>(to_float(y[at.i]) + to_float(bias[at.channel]));
        if (residual) v += to_float(residual[at.i]);
        if (relu && v < 0.0f) v = 0.0f;
        store(out + at.i, v);
    }
}

template <typename T>
__global__ void gelu(T* x, long long n) { gelu_in_place(x, (const T*)nullptr, 1, n); }

template <typename T>
__global__ void bias_gelu(T* x, const T* bias, int channels, long long n) { gelu_in_place(x, bias, channels, n); }

template <typename T>
__global__ void bias_relu(T* y, const T* bias, int relu, int channels, long long n) {
    add_bias(y, bias, (const T*)nullptr, y, relu != 0, channels, n);
}

template <typename T>
__global__ void bias_residual(const T* y, const T* bias, const T* residual, T* out, int channels, long long n) {
    add_bias(y, bias, residual, out, false, channels, n);
}

// The matting head's alphas: 1 / (1 + exp(-x)) in float32 (also of float16 logits), into out (which may be x where
// T is float), grid-stride over n elements.
template <typename T>
__global__ void sigmoid(const T* x, float* out, long long n) {
    for (GridStride at(1); at.i < n; at.advance()) out[at.i] = 1.0f / (1.0f + expf(-to_float(x[at.i])));
}
