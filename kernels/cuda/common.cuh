// Helpers shared by every kernel file: block-wide reductions through shared memory.

struct Sum { __device__ float operator()(float a, float b) const { return a + b; } };
struct Max { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

// Reduce one value per thread over the block (blockDim.x a power of two, at most 1024); every thread gets
// the result. All threads of the block must call it: it synchronises.
template <class Op>
__device__ float block_reduce(float value, Op op) {
    __shared__ float scratch[1024];
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (unsigned width = blockDim.x / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) scratch[threadIdx.x] = op(scratch[threadIdx.x], scratch[threadIdx.x + width]);
        __syncthreads();
    }
    const float result = scratch[0];
    __syncthreads();  // before the next call overwrites scratch
    return result;
}

// x rounded to the element type T, as a float: what storing it in a T array and reading it back gives.
template <typename T>
__device__ float rounded(float x) {
    T r;
    store(&r, x);
    return to_float(r);
}

// A divisor fixed for a kernel's run: n / d and n % d for 0 <= n < 2^31 by a multiplication and a shift, with the
// magic number backend.fast_divisor computes on the host, (shift << 32) | multiplier (Granlund & Montgomery 1994,
// "Division by invariant integers using multiplication"). A division by a run-time value takes ~20 instructions,
// three of them at a quarter rate: in a kernel whose every element finds its place by several, they cost more
// than moving the element.
struct Divisor {
    int d;
    unsigned multiplier, shift;
    __device__ Divisor(int d, long long magic) : d(d), multiplier((unsigned)magic), shift((unsigned)(magic >> 32)) {}
    __device__ int divide(int n, int& remainder) const {  // returns n / d
        const int quotient = (int)((__umulhi((unsigned)n, multiplier) + (unsigned)n) >> shift);
        remainder = n - quotient * d;
        return quotient;
    }
};
