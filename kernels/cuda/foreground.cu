// The Gauss-Seidel sweeps of foreground estimation (minimatte/foreground.py) over one level, in one launch.
// Composed CuPy takes ~9 launches per step (~37,000 for the two sweeps of a 2048x2048 level), each paying a
// launch's fixed cost for a few thousand pixels of work. Here one block walks the steps in order, its
// threads sharing each step's pixels and synchronising between steps.
//
// The arithmetic is the NumPy path's, operation for operation (which reproduces pymatting's): the weighted
// neighbour terms rounded to float32 and summed in pymatting's order, then the 2x2 solve in float64 and
// the result rounded to float32. The _rn intrinsics keep the compiler from fusing a multiply and an add. One
// difference: CuPy compiles with -ftz=true, so float32 values below 2^-126 are zero here, where NumPy keeps them.

// Every array is stored channel by channel, (channels, pixels), the pixels diagonal by diagonal, so that a
// warp's threads read consecutive addresses. fb: (6, pixels) [F, B], updated in place; steps: (count, 2), the
// [start, stop) positions updated at each step (minimatte/foreground.py: _steps; a step's pixels are
// independent, and a step reads the ones before it); data: (6, pixels) the data terms [a0 I, a1 I]; weights
// and neighbours: (4, pixels), each pixel's neighbour weights and positions (left, right, up, down); own:
// (2, pixels) and cross: (pixels,), the inverse of each pixel's 2x2 system (own for F and B, cross between).
// foreground.py runs it on float32 arrays (T = float), with up to 1024 threads: the launch bound holds ptxas to
// the 64 registers a thread may use in a block of 1024, beyond which the launch fails (unbounded, sm_75 took 63).
template <typename T>
__global__ void __launch_bounds__(1024)
    gauss_seidel(T* fb, const T* data, const T* weights, const int* neighbours, const double* own,
                 const double* cross, const int* steps, int count, int pixels) {
    for (int step = 0; step < count; ++step) {
        for (int i = steps[2 * step] + threadIdx.x; i < steps[2 * step + 1]; i += blockDim.x) {
            float rhs[6];  // [F, B] sums: the data term, then each weighted neighbour
            for (int c = 0; c < 6; ++c) rhs[c] = to_float(data[(long long)c * pixels + i]);
            for (int k = 0; k < 4; ++k) {
                const float weight = to_float(weights[(long long)k * pixels + i]);
                const int neighbour = neighbours[(long long)k * pixels + i];
                for (int c = 0; c < 6; ++c) {
                    rhs[c] = __fadd_rn(rhs[c], __fmul_rn(weight, to_float(fb[(long long)c * pixels + neighbour])));
                }
            }
            for (int c = 0; c < 6; ++c) {  // F (c < 3) from rhs_F and rhs_B, B from rhs_B and rhs_F
                const int other = c < 3 ? c + 3 : c - 3;
                const double solved = __dadd_rn(__dmul_rn(own[(long long)(c / 3) * pixels + i], (double)rhs[c]),
                                                __dmul_rn(cross[i], (double)rhs[other]));
                const double clipped = solved < 0 ? 0.0 : solved > 1 ? 1.0 : solved;  // NaN stays NaN
                store(fb + (long long)c * pixels + i, (float)clipped);
            }
        }
        __syncthreads();  // the next step reads this one
    }
}
