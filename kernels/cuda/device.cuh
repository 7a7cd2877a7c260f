// What only a GPU build has: float16 loads and stores through the PTX conversions (no cuda_fp16.h, which
// NVRTC does not find everywhere). The tests' CPU emulation (tests/cuda_emulation.h) defines the same names.

typedef unsigned short half_bits;  // a float16 in memory

__device__ __forceinline__ float to_float(float x) { return x; }

__device__ __forceinline__ float to_float(half_bits x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
}

__device__ __forceinline__ void store(float* p, float x) { *p = x; }

__device__ __forceinline__ void store(half_bits* p, float x) {  // round to nearest even
    half_bits h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    *p = h;
}
