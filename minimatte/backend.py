"""Everything that differs between NumPy and CuPy lives here.

Kernels never ask "are we on the GPU?": they call `array_module(x)` on their input and use what it
returns (`xp`). The rest of the package only needs to pick a backend by name, move arrays to it and
bring results back.
"""
import ctypes
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import numpy

BACKENDS = ("numpy", "cupy")
ENV_VAR = "MINIMATTE_BACKEND"
PRECISIONS = ("float32", "float16")


def array_module(x):
    """numpy or cupy, whichever owns the array `x` (without importing cupy for NumPy arrays)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return numpy


def resolve(name=None):
    """The array module for a backend name; None means $MINIMATTE_BACKEND, else numpy."""
    argument = "backend"
    if not name:  # an error names the variable, which the user set, not an argument they never passed
        name, argument = os.environ.get(ENV_VAR) or "numpy", ENV_VAR
    if name not in BACKENDS:
        raise ValueError(f"{argument}: expected one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "numpy":
        return numpy
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        # The CUDA libraries CuPy loads on first use, here rather than deep inside the first kernel or product:
        cupy.cuda.nvrtc.getVersion()  # NVRTC compiles the CUDA kernels
        cublas_module()  # cuBLAS runs the matrix products
    except Exception as error:  # ImportError, a CUDA error without a driver/GPU, a library not found
        raise RuntimeError(
            f"backend: 'cupy' needs CuPy, a working NVIDIA GPU and CUDA's NVRTC and cuBLAS libraries "
            f"({type(error).__name__}: {error}); install minimatte[cupy] (CuPy and those libraries) on a machine "
            "with an NVIDIA GPU and driver, or use backend='numpy'") from None
    return cupy


def name_of(xp):
    """The backend name of an array module: "numpy", or "cupy" for any other (CuPy, or the tests' stand-in for it,
    installed as cupy)."""
    return "numpy" if xp is numpy else "cupy"


def compute_dtype(precision):
    """The array dtype for a precision name ("float32", the default, or "float16")."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return numpy.dtype(precision)


def to_device(tree, xp):
    """Copy every array of a nested dict/list onto the backend `xp`."""
    if isinstance(tree, dict):
        return {k: to_device(v, xp) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_device(v, xp) for v in tree]
    return xp.asarray(tree)


def as_array(x, name, xp=numpy):
    """xp.asarray(x), or one error naming the argument `name` where xp cannot read it: values of a type it has
    none for (a torch tensor of bfloat16), a CuPy array given to NumPy."""
    try:
        return xp.asarray(x)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: {name_of(xp)} cannot read a {type(x).__name__} of {getattr(x, 'dtype', 'unknown')} "
                        f"values ({error})") from None


def to_numpy(x):
    """A NumPy array from either backend (no copy for NumPy input)."""
    if array_module(x) is numpy:
        return numpy.asarray(x)
    return x.get()


def synchronize(xp):
    """Wait until the GPU has finished the work queued so far (CuPy launches return at once); NumPy: nothing."""
    if xp is not numpy:
        xp.cuda.Device().synchronize()


# Elements per piece of work, (NumPy, CuPy).
# CPU: NumPy runs one ufunc at a time over its whole operand, so long chains (GELU's erf, layer norm) are run chunk
# by chunk, to stay in the caches (256k float32 are 1 MB). Chunks must not be much smaller either: between two
# ufunc calls a thread needs the GIL back, and the pieces' threads queue for it. With 64k-element chunks two
# threads ran GELU no faster than one; with 256k, 1.4x faster (4096 x 1536 floats, 2 cores).
# GPU: few, large launches: each costs the host several to tens of microseconds, and a product with too few rows
# leaves multiprocessors idle. Attention logits and conv columns stay at 2 GB and 512 MB in float32 instead of
# growing with the image. On an H200 these pieces made passes at 2048x2048 1.46x (S, float32), 1.32x (S, float16),
# 1.27x and 1.25x (B) faster than pieces a quarter the size, with peaks of 2.5-3.3 GiB; conv columns of 2^27
# rather than 2^28 took 0.5-0.6 GB off the peaks at 1024x1024 in the same time (ad hoc, 2026-12-04).
PIECE_ELEMENTS = {
    "elementwise": (1 << 18, 1 << 24),  # a chain of elementwise passes over one chunk
    "mlp hidden": (1 << 20, 1 << 27),  # the MLP's 4C-wide hidden layer of a run of tokens
    "attention logits": (1 << 19, 1 << 29),  # a slab's logits: at least one head's grid row of queries x a key row
    "window bands": (1 << 23, 1 << 29),  # the qkv of a band of window rows
    "conv columns": (1 << 20, 1 << 27),  # one band of output rows' im2col columns, or Winograd tiles and products
    "upsampled parities": (1 << 22, 1 << 28),  # a band of conv2d_upsampled's low-resolution convolution
    "decoder band": (1 << 20, 1 << 22),  # pixels of a band of the decoder's rows (model.decoder)
}
# A band's parities (16 MB) stay below glibc's largest mmap threshold (32 MB): the bands reuse freed heap memory
# instead of each mapping fresh pages. With 1 << 23 (just over 32 MB) peak RSS was 475 and 583 MB at 640x960 and
# 1024x1024 against 427 and 519 MB, in the same time (ad hoc, three fresh processes each).


def piece_elements(xp, kind):
    """How many elements one piece of work of `kind` (a key of PIECE_ELEMENTS) touches on backend `xp`."""
    return PIECE_ELEMENTS[kind][xp is not numpy]


def few_launches(xp):
    """Whether `xp` is worth some extra arithmetic for fewer, larger operations: on CuPy each is a launch that costs
    the host several to tens of microseconds, and at 1024x1024 a pass took the host as long as the GPU's work.
    Attending whole padded windows at once (window_attention) made S passes 1.41x (float32) and 1.59x (float16)
    faster there, 1.05x and 1.02x at 2048x2048 (ad hoc, H200, 2026-12-04). NumPy pays no such cost."""
    return xp is not numpy


def made_per_size(p, name, size, make, xp):
    """make(): arrays that depend on the image size alone (position embeddings for its grid). Where launches cost
    (few_launches) they are kept in the parameter dict p, under `name`, for the size last asked for: passes at one
    size make them once, not in several operations each. On NumPy they cost little to make, and kept they would
    hold memory."""
    kept = p.get(name)
    if kept is not None and kept[0] == size:
        return kept[1]
    made = make()
    if few_launches(xp):
        p[name] = (size, made)
    return made


def matmul(a, b, out=None):
    """a @ b. float16 operands are multiplied with float32 accumulation and one rounding of the result, as
    cuBLAS does on the GPU; NumPy has no float16 BLAS (its own loop is ~100x slower), so there the product is
    computed in float32 and rounded once, the same numbers up to the order of the sums. On CuPy: see
    strided_batched. `out` must not overlap a or b."""
    if array_module(a) is not numpy:
        return strided_batched(a, b, out, cublas_gemm)
    if a.dtype == numpy.float16:
        product = numpy.matmul(a.astype(numpy.float32), b.astype(numpy.float32))
        if out is None:
            return product.astype(numpy.float16)
        out[...] = product
        return out
    return numpy.matmul(a, b, out=out)


def strided_batched(a, b, out, gemm):
    """a @ b as one strided-batched product, gemm(a, b, out, gemm_layout(a, b, out)), that reads the operands and
    writes `out` where they lie, views included; by the array module's matmul where their layouts do not allow
    that. CuPy's matmul copies views (a slab of queries, keys sliced to a block of rows) into contiguous arrays
    first, and computes a view `out` (a slab of heads within the joined output) into a temporary; its float16
    products of stacks ran at a tenth of the speed of this call's (H200, 2026-12-04: 15 against 160-200 TFLOP/s
    for 6 heads of 4096 queries and 16384 keys; float32 ones at the same speed)."""
    xp = array_module(a)
    key = (a.dtype, b.dtype, a.shape, a.strides, b.shape, b.strides, out is None or (out.dtype, out.shape, out.strides))
    plan = _PLANS.get(key)  # the same products recur in every pass: their layouts are worked out once
    if plan is None:
        if len(_PLANS) > 10000:  # many image sizes: start again rather than grow without end
            _PLANS.clear()
        plan = _PLANS[key] = _plan(a, b, out)
    shape, layout = plan
    if layout is None:
        return xp.matmul(a, b, out=out)
    if out is None:
        out = xp.empty(shape, dtype=a.dtype)
    gemm(a, b, out, layout)
    return out


_PLANS = {}  # strided_batched's: (the shape of a @ b, its gemm_layout or None) by the operands' layouts


def _plan(a, b, out):
    if a.ndim < 2 or b.ndim < 2:
        return None, None
    try:
        shape = (*numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    except ValueError:  # left to the array module's matmul, which says what does not fit
        return None, None
    if out is None:  # the layout of the C-contiguous array strided_batched makes, as a view of no real memory
        out = numpy.lib.stride_tricks.as_strided(numpy.empty(1, a.dtype), shape, _c_strides(shape, a.itemsize))
    return shape, gemm_layout(a, b, out)


def _c_strides(shape, itemsize):
    """The strides of a C-contiguous array of `shape`."""
    return tuple(int(numpy.prod(shape[i + 1:], dtype=numpy.int64)) * itemsize for i in range(len(shape)))


def cublas_module():
    """CuPy's cuBLAS module, imported as CuPy imports it: CuPy 14 finds the library (in a wheel too) when the module
    is asked of its package, not when it is imported by its full name (importlib.import_module), which then fails
    where the library is not on the system's search path."""
    from cupy_backends.cuda.libs import cublas
    return cublas


def cublas_gemm(a, b, out, layout):
    """cublasGemmStridedBatchedEx with gemm_layout(a, b, out) for CuPy arrays, on the current stream."""
    from cupy.cuda import device, get_current_stream
    cublas = cublas_module()
    transa, transb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c, count = layout
    cuda_type = CUDA_DATA_TYPES[out.dtype]
    # The handle is CuPy's, shared: it keeps the stream and pointer mode of whichever call set them last (CuPy's
    # own set them on each call). Without these, a pass under `with cupy.cuda.Stream():` would run its products on
    # another stream than its kernels.
    handle = device.get_cublas_handle()
    cublas.setStream(handle, get_current_stream().ptr)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)  # alpha and beta: _ONE and _ZERO
    cublas.gemmStridedBatchedEx(handle, transa, transb, m, n, k, _ONE.ctypes.data,
                                b.data.ptr, cuda_type, lda, stride_a, a.data.ptr, cuda_type, ldb, stride_b,
                                _ZERO.ctypes.data, out.data.ptr, cuda_type, ldc, stride_c, count,
                                CUBLAS_COMPUTE_32F, GEMM_ALGORITHM)


# cuBLAS's enumerations (cublas_api.h, library_types.h): fixed values of its ABI.
CUDA_DATA_TYPES = {numpy.dtype(numpy.float32): 0, numpy.dtype(numpy.float16): 2}  # CUDA_R_32F, CUDA_R_16F
CUBLAS_COMPUTE_32F = 68  # float32 products and sums, never TF32 (CuPy's default too, the reference's float32)
GEMM_ALGORITHM = -1  # CUBLAS_GEMM_DEFAULT: cuBLAS picks (tensor cores for float16)
INT_MAX = 2 ** 31 - 1  # cuBLAS's sizes and leading dimensions are C ints
_ONE, _ZERO = numpy.ones(1, numpy.float32), numpy.zeros(1, numpy.float32)  # alpha, beta: read from the host


def gemm_layout(a, b, out):
    """out = a @ b (batched over the leading axes, b's broadcast) as the arguments of cublasGemmStridedBatchedEx
    other than the addresses, (transa, transb, m, n, k, lda, strideA, ldb, strideB, ldc, strideC, batchCount),
    strides in elements, with b's memory as its A, a's as its B and out's as C; or None where the arrays' layouts
    do not allow one such call.

    cuBLAS reads matrices in column-major order: a row-major matrix is its transpose there. So it computes
    out^T = b^T a^T, each operand transposed or not by how its matrices lie (rows or columns contiguous), and
    each operand's matrices must be evenly spaced in memory (one stride across its leading axes)."""
    if not a.dtype == b.dtype == out.dtype or out.dtype not in CUDA_DATA_TYPES:
        return None
    (rows, depth), columns = a.shape[-2:], b.shape[-1]
    batch = out.shape[:-2]
    if b.shape[-2] != depth or out.shape[-2:] != (rows, columns) or len(batch) < max(a.ndim, b.ndim) - 2:
        return None
    layouts = [_matrices(x, batch) for x in (a, b, out)]
    if None in layouts or layouts[2][0]:  # out's rows must be contiguous: it is out^T in column-major order
        return None
    (a_columns, ld_a, stride_a), (b_columns, ld_b, stride_b), (_, ld_c, stride_c) = layouts
    count = int(numpy.prod(batch, dtype=numpy.int64))
    if max(rows, columns, depth, ld_a, ld_b, ld_c, count) > INT_MAX:
        return None
    return int(b_columns), int(a_columns), columns, rows, depth, ld_b, stride_b, ld_a, stride_a, ld_c, stride_c, count


def _matrices(x, batch):
    """(columns contiguous, leading dimension, batch stride) of x's matrices, in elements, with x broadcast to the
    leading axes `batch`; None unless their rows or their columns are contiguous and one stride steps from each
    matrix to the next."""
    if 0 in x.shape or any(s < 0 or s % x.itemsize for s in x.strides):
        return None
    steps = tuple(s // x.itemsize for s in x.strides)
    (rows, columns), (row_step, column_step) = x.shape[-2:], steps[-2:]
    if (column_step == 1 or columns == 1) and (rows == 1 or row_step >= columns):
        by_columns, ld = False, row_step if rows > 1 else columns
    elif (row_step == 1 or rows == 1) and column_step >= rows:  # (a one-column matrix is read by rows, above)
        by_columns, ld = True, column_step
    else:
        return None
    missing = len(batch) - (x.ndim - 2)  # leading axes x is broadcast along
    sizes, steps = (1,) * missing + x.shape[:-2], (0,) * missing + steps[:-2]
    if any(size not in (1, total) for size, total in zip(sizes, batch)):
        return None
    stepped = [(total, step if size > 1 else 0) for size, step, total in zip(sizes, steps, batch) if total > 1]
    if any(outer != inner * total for (_, outer), (total, inner) in zip(stepped, stepped[1:])):
        return None
    return by_columns, ld, stepped[-1][1] if stepped else 0


def take(a, indices, out, axis=None):
    """a.take(indices, axis) written into `out`, for indices known to be in range. NumPy's take first fills a
    buffer of out's size and copies it over unless told what out-of-range indices do (mode "clip", here
    never met); CuPy's has no mode and writes into out. A C-contiguous `out` (NumPy copies others)."""
    if array_module(a) is numpy:
        return numpy.take(a, indices, axis=axis, out=out, mode="clip")
    return array_module(a).take(a, indices, axis=axis, out=out)


def repeat(values, counts, axis=None):
    """numpy.repeat(values, counts, axis) for counts (a host array) of at least 1. CuPy's repeat copies value after
    value from Python, a launch each (thousands of anti-diagonals, say); here the runs' starts are marked, and a
    cumulative sum of the marks is each element's run."""
    xp = array_module(values)
    if xp is numpy:
        return numpy.repeat(values, counts, axis)
    run = xp.zeros(int(counts.sum()), xp.int32)
    run[xp.asarray(numpy.cumsum(counts[:-1]))] = 1
    return xp.take(values, xp.cumsum(run, dtype=xp.int32), axis)


# ------------------------------------------------------------------------------------------ CUDA kernels
# Where one pass of a hand-written kernel replaces many composed CuPy launches, the kernels ask for it here
# and fall back to their array code (the NumPy path) when there is none. Sources: kernels/cuda/*.cu, each
# compiled by NVRTC behind the shared helpers (common.cuh) and the device's float16 conversions (device.cuh).
# Every kernel is a template over the element type T of its arrays (`template <typename T> __global__ void
# name(...)`): T = float for float32 arrays, half_bits (device.cuh) for float16; other types keep the array
# code. NVRTC compiles a template's instance only where named (`name<float>`, CuPy's name_expressions), so a
# source is compiled once per element type asked for, with all its kernels.

KERNEL_TYPES = {numpy.dtype(numpy.float32): "float", numpy.dtype(numpy.float16): "half_bits"}
CUDA_OPTIONS = ("--std=c++17",)  # CuPy adds the device's -arch, and -ftz=true: float32 subnormals are zero
KERNEL_TEMPLATE = re.compile(r"template <typename T>\s*__global__ void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\(")
_MODULES, _KERNELS = {}, {}  # compiled (source, T); their kernels by (source, name, T)


def cuda_kernel(xp, source, name, dtype):
    """The CUDA kernel `name`<T> of kernels/cuda/`source` for CuPy arrays of `dtype` (compiled once), or None on
    NumPy and for other dtypes."""
    if xp is numpy or numpy.dtype(dtype) not in KERNEL_TYPES:
        return None
    element = KERNEL_TYPES[numpy.dtype(dtype)]
    if (source, name, element) not in _KERNELS:
        if (source, element) not in _MODULES:
            code = cuda_code(source)
            _MODULES[source, element] = xp.RawModule(code=code, options=CUDA_OPTIONS,
                                                     name_expressions=kernel_instances(code, element))
        _KERNELS[source, name, element] = _MODULES[source, element].get_function(f"{name}<{element}>")
    return _KERNELS[source, name, element]


def kernel_instances(code, element):
    """The name expressions of every kernel template of CUDA `code` for element type `element`: ("name<float>",
    ...)."""
    return tuple(f"{name}<{element}>" for name in KERNEL_TEMPLATE.findall(code))


def grid_stride_launch(count):
    """(grid, block) for a grid-stride kernel over `count` items: a thread each, at most 2M threads (each then takes
    several)."""
    return (min(-(-count // 256), 8192),), (256,)


def fast_divisor(d):
    """The magic number of kernels/cuda/common.cuh's Divisor for d (1 <= d < 2^31), as a kernel argument:
    (shift << 32) | multiplier, shift = ceil(log2 d), multiplier = floor(2^32 (2^shift - d) / d) + 1."""
    d = int(d)
    shift = (d - 1).bit_length()
    return numpy.int64(shift << 32 | (2 ** 32 * (2 ** shift - d)) // d + 1)


def cuda_code(source):
    """What NVRTC compiles for kernels/cuda/`source`: the device helpers, the shared ones, the kernels."""
    return "\n".join(map(cuda_source, ("device.cuh", "common.cuh", source)))


def cuda_source(filename):
    """The text of kernels/cuda/`filename` (installed with the package as minimatte/kernels/cuda)."""
    from . import kernels
    return (Path(kernels.__file__).parent / "cuda" / filename).read_text()


# ------------------------------------------------------------------------------------------- CPU threads
# NumPy runs elementwise work (softmax, GELU, im2col copies) on one core; only BLAS uses them all. During a
# forward pass minimatte therefore makes BLAS single-threaded and runs independent pieces of every kernel
# (attention query slabs, MLP token chunks, GEMM row blocks, convolution bands) on its own threads, one per
# BLAS thread it replaced: every core works on every step. Results are those of a serial run up to float32
# rounding (BLAS may pick other kernels for differently shaped blocks; measured 3e-7 on alphas).

def listed_libraries():
    """The paths of the shared libraries that the OS lists as loaded into this process (/proc/self/maps, Linux), or
    None where it lists none."""
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if "/" in line})
    except OSError:
        return None


def _openblas_candidates():
    """Paths of OpenBLAS libraries NumPy may have loaded, its own first: those its wheels bundle (numpy.libs on
    Linux and Windows, numpy/.dylibs on macOS, numpy/.libs in NumPy 1's Windows wheels), then any other that the OS
    lists as loaded (a distribution's NumPy links a system OpenBLAS). Without /proc/self/maps (macOS, Windows) the
    wheel's folder is the only way to find it."""
    package = Path(numpy.__file__).parent
    bundled = [path for folder in (package.parent / "numpy.libs", package / ".dylibs", package / ".libs")
               if folder.is_dir() for path in sorted(folder.iterdir())]
    paths = [str(path) for path in bundled] + (listed_libraries() or [])
    return list(dict.fromkeys(os.path.realpath(path) for path in paths if "openblas" in Path(path).name.lower()))


def already_loaded(path):
    """A ctypes handle of the library at `path` if this process has it loaded, else None: opening one that is not
    would load a second copy beside NumPy's, whose thread count NumPy's products never read."""
    try:
        if os.name == "nt":
            kernel32 = ctypes.WinDLL("kernel32")  # an instance of our own: its prototypes are set here only
            kernel32.GetModuleHandleW.argtypes, kernel32.GetModuleHandleW.restype = [ctypes.c_wchar_p], ctypes.c_void_p
            handle = kernel32.GetModuleHandleW(path)  # loaded modules only, without loading one
            return ctypes.CDLL(path, handle=handle) if handle else None
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)  # dlopen: NULL (OSError) unless loaded
    except (AttributeError, OSError):  # AttributeError: an OS without RTLD_NOLOAD
        return None


def _openblas_functions(*names):
    """The functions `names` ("get_num_threads", ...) of the OpenBLAS that NumPy loaded, or None (another BLAS)."""
    for path in _openblas_candidates():
        library = already_loaded(path)
        if library is None:
            continue
        # The symbols of NumPy 2's wheels, NumPy 1's (ILP64, suffix 64_), and a system OpenBLAS.
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
            functions = [getattr(library, prefix + name + suffix, None) for name in names]
            if all(functions):
                return tuple(functions)
    return None


def _openblas_threads():
    """(get, set) for the thread count of the OpenBLAS that NumPy loaded, or None (another BLAS)."""
    return _openblas_functions("get_num_threads", "set_num_threads")


_BLAS = _openblas_threads()
_POOL = {}
_STATE = threading.local()  # .workers: threads for pieces on this thread (1: run them serially)
_STEERING = threading.Lock()  # held by the pass that has switched BLAS to one thread, throughout
_switched = {}  # "blas threads": BLAS's own setting, while a pass has it switched to one thread


@contextmanager
def cpu_threads(xp):
    """Within: run_pieces uses as many threads as BLAS had, BLAS runs single-threaded (NumPy and OpenBLAS
    only; elsewhere nothing changes).

    Passes from several threads at once (a web server's requests) take turns here: BLAS's thread count is one
    setting for the whole process, which must not change under another thread's running product, and each pass
    uses every core anyway. Where BLAS has one thread nothing is switched, and they run side by side."""
    if xp is not numpy or _BLAS is None or getattr(_STATE, "workers", 1) > 1:
        yield
        return
    with _STEERING:
        blas_threads = _BLAS[0]()  # the process's setting: no other pass has it switched while the lock is held
        if blas_threads > 1:
            _BLAS[1](1)
            _STATE.workers, _switched["blas threads"] = blas_threads, blas_threads
            try:
                yield
            finally:
                _STATE.workers = 1
                _BLAS[1](_switched.pop("blas threads"))
            return
    yield


def run_pieces(work, pieces):
    """work(piece) for each piece: on cpu_threads' threads inside it, else (and inside a piece) in turn.

    A piece's exception (an allocation that failed) is raised here, and so is an interruption of the wait
    (Ctrl-C), only once no other piece is running: the pieces not started are dropped and the running ones
    finished. Else they would go on, holding their memory, while the caller restores BLAS's thread count under
    their products and the next pass (a batch's next image) starts beside them."""
    workers = min(getattr(_STATE, "workers", 1), len(pieces))
    if workers <= 1:
        for piece in pieces:
            work(piece)
        return
    pool = _POOL.get(workers) or _POOL.setdefault(workers, ThreadPoolExecutor(workers, "minimatte"))
    futures = [pool.submit(work, piece) for piece in pieces]
    try:
        for future in futures:
            future.result()  # re-raises a piece's exception
    except BaseException:
        for future in futures:
            future.cancel()  # only those not started
        wait(futures)
        raise


def run_slices(work, count, xp, kind="elementwise", width=1):
    """work(part) for slices `part` that cut range(count) into pieces of `kind` (piece_elements, counting `width`
    elements an item), as run_pieces."""
    step = even_step(count, max(1, piece_elements(xp, kind) // width))
    run_pieces(lambda start: work(slice(start, min(start + step, count))), range(0, count, step))


def parallelism():
    """How many pieces run at once here (kernels split work into at least this many)."""
    return getattr(_STATE, "workers", 1)


# OpenBLAS picks its kernels for the CPU when it loads, or takes those that OPENBLAS_CORETYPE names. Where it runs
# older ones on a CPU with AVX-512, passes are slower: on the 2-core AMD Zen 5 of the README's figures, ViTMatte-S
# passes took 1.3-1.8x their time on OpenBLAS's AVX-512 kernels (SkylakeX) with its AVX2 ones (Haswell), which
# that machine's environment asked for, and 2.5x at 640x960 with the SSE ones (Barcelona) that NumPy 1.22 and
# 1.23's OpenBLAS (0.3.18, 0.3.20) picks there (benchmarks/cpu.py).
AVX512_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS's names of its kernel sets that use it
AVX512_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})  # the sets those need


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The instruction sets the first CPU lists in /proc/cpuinfo (Linux: those the kernel has enabled), or None."""
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def blas_summary(one_line=False):
    """Which BLAS forward passes on NumPy use, with which kernels, and how they use the cores, in words
    (`minimatte --version`, for bug reports about speed; one_line for a benchmark's table header)."""
    if _BLAS is None:
        return "NumPy's BLAS: not an OpenBLAS minimatte can steer; forward passes run a kernel's pieces in turn"
    count = _BLAS[0]()
    version, kernels = _openblas_build()
    asked = f" (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})" if "OPENBLAS_CORETYPE" in os.environ else ""
    summary = (f"NumPy's BLAS: OpenBLAS {version} with its {kernels} kernels{asked}, which minimatte steers; forward "
               f"passes run on {count} thread" + "s" * (count != 1))
    if kernels not in (*AVX512_KERNELS, "?") and AVX512_FLAGS <= (cpu_flags() or set()):
        summary += (". " if one_line else "\n") + ("This CPU has AVX-512, which those kernels do not use: with "
                                                    "OPENBLAS_CORETYPE=SkylakeX in the environment, passes ran 1.3 to "
                                                    "2.5 times faster on an AMD Zen 5")
    return summary


def _openblas_build():
    """(version, kernel set) of the OpenBLAS that NumPy loaded: ("0.3.31.188.0", "SkylakeX"); "?" where it does
    not say."""
    functions = _openblas_functions("get_config", "get_corename")
    if functions is None:
        return "?", "?"
    for function in functions:
        function.restype = ctypes.c_char_p
    config, kernels = (function().decode() for function in functions)
    return (config.split()[1:] or ["?"])[0], kernels  # config: "OpenBLAS 0.3.31.188.0 DYNAMIC_ARCH ..."


def even_step(total, most):
    """A piece size of at most `most` items that cuts `total` items into whole rounds of run_pieces' threads,
    pieces as equal as can be: no thread works through a last round alone while the others wait."""
    workers = parallelism()
    pieces = -(-total // (most * workers)) * workers
    return -(-total // pieces)


# -------------------------------------------------------------------------------------------- CPU memory
# NumPy advises the kernel to back each array of 4 MB or more with 2 MB huge pages (madvise, Linux). In a microVM
# (Firecracker, on which AWS Lambda runs, and so does the machine of the README's figures) faulting fresh huge
# pages in costs far more than ordinary pages: there a first pass at 1024x1024 spent 4.5-5.3 s of system time in
# page faults with huge pages and 1.1-1.2 s without (10.0-10.7 s against 7.1 s in all; benchmarks/cpu.py's engine
# minimatte-huge-pages compares the two). So during a pass (and the pixel work around it in infer, and that of
# estimate_foreground and cutout) NumPy's new arrays stay on ordinary pages. Elsewhere huge pages may fault in a
# little faster (not measured here).
try:
    from numpy._core.multiarray import _set_madvise_hugepage  # NumPy 2; returns the previous setting
except ImportError:
    try:
        from numpy.core.multiarray import _set_madvise_hugepage  # NumPy 1
    except ImportError:
        _set_madvise_hugepage = None
_PAGES = threading.Lock()
_pages = {"passes": 0, "huge": None}  # passes running in small_pages; NumPy's setting before the first of them


@contextmanager
def small_pages(xp):
    """Within: NumPy does not advise huge pages for its new arrays (see above); its setting is restored when the
    last of the passes running at once (from several threads) ends. CuPy: nothing changes."""
    if xp is not numpy or _set_madvise_hugepage is None:
        yield
        return
    with _PAGES:
        if _pages["passes"] == 0:
            _pages["huge"] = _set_madvise_hugepage(False)
        _pages["passes"] += 1
    try:
        yield
    finally:
        with _PAGES:
            _pages["passes"] -= 1
            if _pages["passes"] == 0:
                _set_madvise_hugepage(_pages["huge"])


def _start_afresh_in_child():
    """After a fork (multiprocessing's default way to start workers on Linux, a pre-forking server's), in the
    child: it has the parent's memory but only the forking thread. The pools' threads are gone, and work given
    to them would wait forever; a pass that ran in another of the parent's threads left its locks held and its
    BLAS and huge-page settings switched. So the child starts with new pools and locks and the settings put back."""
    global _STEERING, _PAGES
    _POOL.clear()
    _STEERING, _PAGES = threading.Lock(), threading.Lock()
    if "blas threads" in _switched:
        _BLAS[1](_switched.pop("blas threads"))
    if _pages["passes"]:
        _pages["passes"] = 0
        _set_madvise_hugepage(_pages["huge"])


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_start_afresh_in_child)


def keep_freed_memory():
    """Let this process's C allocator keep the memory that forward passes free, for later passes to reuse, instead
    of handing it back to the operating system. glibc only (Linux); returns whether it applied.

    glibc returns large freed blocks to the OS at once (those it mapped on their own, and the top of its heap
    beyond a threshold), so each pass's large temporaries (hundreds of MB) come back as fresh pages, which the
    kernel faults in and zeroes one at a time (at 1024x1024 on the machine of the README's figures: 266-270
    thousand page faults and 1.0-1.2 s of system time a pass). Here freed memory stays in the heap and the next
    image (or the pass's own later layers) reuses it; the process keeps its peak memory until it exits. This is a
    setting of the whole process (any library's allocations), so minimatte never makes it on its own: the command
    line does, and a program that runs many passes (a batch loop, a server) may call this once."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):  # no glibc: macOS, Windows (CDLL(None) is refused there)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>; mallopt returns 1 where it applied
    return mallopt(m_mmap_max, 0) == 1 and mallopt(m_trim_threshold, 2 ** 31 - 1) == 1
