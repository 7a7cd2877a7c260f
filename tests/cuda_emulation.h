// The CUDA subset that kernels/cuda/*.cu use, emulated on the CPU so that the tests can run those kernels
// without a GPU (tests/cuda_emulation.py compiles them with this header in place of device.cuh).
//
// A block's threads are fibers on one OS thread (started with ucontext, switched with _setjmp/_longjmp,
// which skip the signal-mask system calls), run in turn until each finishes or reaches __syncthreads;
// once all wait there, all go on. A block where some threads finish while others wait at a
// barrier is reported: on a GPU that is undefined behaviour (a hang or wrong results). __shared__ variables
// are statics, shared by the block's fibers; blocks run one after another. Threads and blocks run in index
// order or, for a launch asked to run reversed, in the opposite order: a GPU runs them in any order and
// side by side, so a kernel whose result depends on which of two threads (or blocks) goes first, a race,
// gives one result in each order.
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <pmmintrin.h>  // _mm_getcsr, _mm_setcsr and the flush-to-zero and denormals-are-zero bits
#include <functional>
#include <vector>
#include <ucontext.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(threads)

// half_bits is device.cuh's type, the 16 bits of a float16 (NumPy's layout) as an unsigned short, so that kernel
// code treats it here as on a GPU (`T value = 1` would be a tiny subnormal on both, not 1.0 on one); the
// conversions go through _Float16, IEEE binary16, rounding to nearest even as cvt.rn does.
typedef unsigned short half_bits;

inline float to_float(float x) { return x; }
inline float to_float(half_bits x) {
    _Float16 h;
    std::memcpy(&h, &x, sizeof h);
    return (float)h;
}
inline void store(float* p, float x) { *p = x; }
inline void store(half_bits* p, float x) {
    const _Float16 h = (_Float16)x;
    std::memcpy(p, &h, sizeof h);
}

// CUDA's unfused, round-to-nearest arithmetic; the compiler runs with -ffp-contract=off, so plain operators are.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

struct uint3 { unsigned x, y, z; };

namespace emulation {

enum State { RUNNING, AT_BARRIER, DONE };

struct Fiber {
    ucontext_t start;
    jmp_buf resume;
    State state;
    bool started;
    uint3 index;
};

inline uint3 block_index, block_dim, grid_dim;
inline std::vector<Fiber> fibers;
inline std::vector<char> stacks;
inline size_t current;
inline bool last_first;  // this launch runs its blocks and threads in reverse order
inline jmp_buf scheduler;
inline const std::function<void()>* body;
constexpr size_t STACK_BYTES = 1 << 16;

inline uint3 thread_index() { return fibers[current].index; }

inline void sync_threads() {
    fibers[current].state = AT_BARRIER;
    if (!_setjmp(fibers[current].resume)) _longjmp(scheduler, 1);
}

inline void fiber_entry() {  // a fiber runs its thread of every block of a launch
    for (;;) {
        (*body)();
        fibers[current].state = DONE;
        if (!_setjmp(fibers[current].resume)) _longjmp(scheduler, 1);
    }
}

inline void switch_to(Fiber& fiber) {  // returns when the fiber waits at a barrier or is done
    if (_setjmp(scheduler)) return;
    if (fiber.started) _longjmp(fiber.resume, 1);
    fiber.started = true;
    setcontext(&fiber.start);
}

inline void create_fibers() {
    const size_t threads = (size_t)block_dim.x * block_dim.y * block_dim.z;
    fibers.resize(threads);
    stacks.resize(threads * STACK_BYTES);
    for (size_t t = 0; t < threads; ++t) {
        Fiber& fiber = fibers[t];
        getcontext(&fiber.start);
        fiber.start.uc_stack.ss_sp = &stacks[t * STACK_BYTES];
        fiber.start.uc_stack.ss_size = STACK_BYTES;
        fiber.start.uc_link = nullptr;
        makecontext(&fiber.start, fiber_entry, 0);
        fiber.started = false;
        fiber.index = {unsigned(t % block_dim.x), unsigned(t / block_dim.x % block_dim.y),
                       unsigned(t / block_dim.x / block_dim.y)};
    }
}

// Runs one block; false if its threads did not all reach the same barrier.
inline bool run_block() {
    for (Fiber& fiber : fibers) fiber.state = RUNNING;
    for (;;) {
        size_t done = 0;
        for (size_t turn = 0; turn < fibers.size(); ++turn) {
            current = last_first ? fibers.size() - 1 - turn : turn;
            if (fibers[current].state == RUNNING) switch_to(fibers[current]);
            done += fibers[current].state == DONE;  // else it waits at the barrier
        }
        if (done == fibers.size()) return true;
        if (done > 0) return false;
        for (Fiber& fiber : fibers) fiber.state = RUNNING;  // everyone reached the barrier
    }
}

// CuPy compiles every kernel with -ftz=true: single-precision arithmetic flushes subnormal inputs and results to
// (signed) zero. A launch here sets the CPU's flush-to-zero and denormals-are-zero modes (x86's MXCSR) likewise,
// before its fibers are made (each fiber starts with the floating-point state it was made with), and restores them
// after. They flush double precision too, which a GPU does not; no kernel's doubles come near 2^-1022.
struct FlushSubnormals {
    const unsigned saved = _mm_getcsr();
    FlushSubnormals() { _mm_setcsr(saved | _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON); }
    ~FlushSubnormals() { _mm_setcsr(saved); }
};

inline int launch(uint3 grid, uint3 block, bool reversed, const std::function<void()>& kernel) {
    const FlushSubnormals flush;
    grid_dim = grid;
    block_dim = block;
    last_first = reversed;
    body = &kernel;
    create_fibers();
    const size_t blocks = (size_t)grid.x * grid.y * grid.z;
    for (size_t turn = 0; turn < blocks; ++turn) {
        const size_t b = last_first ? blocks - 1 - turn : turn;
        block_index = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y)};
        if (!run_block()) return 1;
    }
    return 0;
}

}  // namespace emulation

#define threadIdx (emulation::thread_index())
#define blockIdx (emulation::block_index)
#define blockDim (emulation::block_dim)
#define gridDim (emulation::grid_dim)
#define __syncthreads() emulation::sync_threads()
