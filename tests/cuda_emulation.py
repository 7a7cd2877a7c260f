"""The hand-written CUDA kernels (kernels/cuda/*.cu), compiled for the CPU and called like CuPy RawKernels.

With `emulated_kernels` patched over `backend.cuda_kernel`, the kernels' CuPy branch runs on NumPy arrays:
the same launch shapes, argument lists and kernel code that a GPU runs, with cuda_emulation.h standing in
for CUDA. Arguments are checked as a GPU cannot: every array against the C parameter's element type,
every scalar against its width (CuPy passes a NumPy scalar's bytes as they are). Within `reversed_order()` every
launch runs its blocks and threads in the opposite order (see cuda_emulation.h): a race's result changes with it.
"""
import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from minimatte import backend

HEADER = Path(__file__).with_name("cuda_emulation.h")
KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')
TEMPLATE_KERNEL = re.compile(backend.KERNEL_TEMPLATE.pattern + r"([^)]*)\)")  # backend's, with the parameters
POINTEES = {"float": np.float32, "half_bits": np.float16, "double": np.float64, "int": np.int32}
SCALARS = {"int": np.int32, "long long": np.int64, "float": np.float32}
COMPILER = shutil.which("g++") or shutil.which("c++")
_COMPILED = {}
_STREAM = threading.Lock()  # one launch at a time, as on a CUDA stream: the emulation's state is global
_ORDER = {"reversed": False}
# CUDA's launch limits (compute capability 3.0 on): a GPU refuses a launch beyond them.
GRID_LIMITS, BLOCK_LIMITS, MAX_THREADS_PER_BLOCK = (2 ** 31 - 1, 65535, 65535), (1024, 1024, 64), 1024


@contextlib.contextmanager
def reversed_order():
    """Within it, emulated launches run their blocks and threads last first."""
    _ORDER["reversed"] = True
    try:
        yield
    finally:
        _ORDER["reversed"] = False


class EmulatedKernel:
    """kernel(grid, block, args) as cupy.RawKernel, on NumPy arrays."""

    def __init__(self, name, function, parameters):
        self.name, self.function, self.parameters = name, function, parameters

    def __call__(self, grid, block, args):
        if len(args) != len(self.parameters):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.parameters)} parameters")
        values = []  # a ctypes object per argument, alive during the call
        for (c_type, dtype, is_pointer), arg in zip(self.parameters, args):
            if is_pointer:
                if not isinstance(arg, np.ndarray) or arg.dtype != dtype or not arg.flags.c_contiguous:
                    raise TypeError(f"{self.name}: {c_type} needs a C-contiguous {np.dtype(dtype)} array, got "
                                    f"{getattr(arg, 'dtype', type(arg).__name__)}")
                values.append(ctypes.c_void_p(arg.ctypes.data))
            else:
                if not isinstance(arg, np.generic) or arg.dtype != dtype:
                    raise TypeError(f"{self.name}: {c_type} needs a NumPy {np.dtype(dtype)} scalar, got {arg!r}")
                values.append(np.ctypeslib.as_ctypes_type(dtype)(arg.item()))
        pointers = (ctypes.c_void_p * len(values))(*map(ctypes.addressof, values))
        grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
        if not (all(1 <= size <= most for size, most in zip(grid + block, GRID_LIMITS + BLOCK_LIMITS))
                and np.prod(block) <= MAX_THREADS_PER_BLOCK):
            raise ValueError(f"{self.name}: grid {grid} and block {block} are beyond CUDA's launch limits")
        with _STREAM:  # the CPU path's threads may launch side by side (CuPy arrays take one piece at a time)
            failed = self.function(*grid, *block, _ORDER["reversed"], pointers)
        if failed:
            raise RuntimeError(f"{self.name}: the threads of a block did not all reach the same __syncthreads")


def _parse(parameter):
    """'const float* x' -> ('const float*', np.float32, True); 'long long n' -> ('long long', np.int64, False)"""
    c_type = re.fullmatch(r"\s*(.*?)\s*\w+\s*", parameter).group(1)
    is_pointer = "*" in c_type
    base = c_type.replace("const", "").replace("*", "").strip()
    return c_type, (POINTEES if is_pointer else SCALARS)[base], is_pointer


def compile_kernels(code, name_expressions=()):
    """{name: EmulatedKernel} for every `extern "C" __global__` kernel of CUDA source `code`, and for every
    instance of a kernel template that `name_expressions` names ("name<float>", as CuPy's RawModule takes them).
    `code` as NVRTC gets it (backend.cuda_code; device.cuh, whose GPU-only definitions cuda_emulation.h replaces,
    is dropped) or without device.cuh; compiled with g++ once per content."""
    code = HEADER.read_text() + "\n" + code.replace(backend.cuda_source("device.cuh"), "")
    kernels = {name: [_parse(p) for p in params.split(",")] for name, params in KERNEL.findall(code)}
    templates = dict(TEMPLATE_KERNEL.findall(code))
    for expression in name_expressions:
        name, element = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
        kernels[expression] = [_parse(re.sub(r"\bT\b", element, p)) for p in templates[name].split(",")]
    wrappers = []
    for i, (name, parameters) in enumerate(kernels.items()):
        args = ", ".join(f"*({c_type}*)args[{j}]" for j, (c_type, _, _) in enumerate(parameters))
        wrappers.append(f'extern "C" int emulate_{i}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
                        f'unsigned by, unsigned bz, bool reversed, void** args) {{\n'
                        f'    return emulation::launch({{gx, gy, gz}}, {{bx, by, bz}}, reversed, '
                        f'[&] {{ {name}({args}); }});\n}}')
    code += "\n" + "\n".join(wrappers) + "\n"
    key = hashlib.sha256(code.encode()).hexdigest()
    if key not in _COMPILED:
        if COMPILER is None:
            raise RuntimeError("the CUDA emulation needs a C++ compiler (g++)")
        with tempfile.TemporaryDirectory(prefix="minimatte-cuda-") as folder:  # the loaded library outlives it
            source, library_path = Path(folder) / "kernels.cpp", Path(folder) / "kernels.so"
            source.write_text(code)
            # -U_FORTIFY_SOURCE: where g++ fortifies by default (Ubuntu), glibc checks each longjmp against the
            # stack it is on and aborts on the fibers' switches between their own stacks.
            # $MINIMATTE_EMULATION_FLAGS: more options, such as -fsanitize=address (see the README's GPU section).
            subprocess.run([COMPILER, "-std=c++17", "-O2", "-ffp-contract=off", "-U_FORTIFY_SOURCE", "-shared",
                            "-fPIC", *os.environ.get("MINIMATTE_EMULATION_FLAGS", "").split(), "-o", str(library_path),
                            str(source)], check=True)
            library = ctypes.CDLL(str(library_path))
        compiled = {}
        for i, (name, parameters) in enumerate(kernels.items()):
            function = getattr(library, f"emulate_{i}")
            function.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_bool, ctypes.c_void_p]
            compiled[name] = EmulatedKernel(name, function, parameters)
        _COMPILED[key] = compiled
    return _COMPILED[key]


def emulated_kernels(xp, source, name, dtype):
    """Drop-in for backend.cuda_kernel that serves NumPy arrays."""
    element, code = backend.KERNEL_TYPES[np.dtype(dtype)], backend.cuda_code(source)
    return compile_kernels(code, backend.kernel_instances(code, element))[f"{name}<{element}>"]


def emulated_matmul(a, b, out=None, fell_back=None):
    """backend.matmul's CuPy branch (strided_batched) on NumPy arrays, with emulated_gemm for cuBLAS. Products
    it passes to the array module's matmul instead are appended to the list `fell_back`."""
    def gemm(a, b, out, layout):
        emulated_gemm(a, b, out, layout)
        gemms.append(out)
    gemms = []
    product = backend.strided_batched(a, b, out, gemm)
    if not gemms and fell_back is not None:
        fell_back.append((a.shape, a.strides, b.shape, b.strides))
    return product


def emulated_gemm(a, b, out, layout):
    """cublasGemmStridedBatchedEx as cuBLAS documents it, on the memory of NumPy arrays: C_i = op(A_i) op(B_i),
    matrices in column-major order, op(X) = X or X^T, with A = b's, B = a's and C = out's memory
    (backend.gemm_layout). Every matrix it reads or writes must lie within its array: a wrong stride would
    otherwise read anywhere."""
    transa, transb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c, count = layout
    first = _matrices(b, (k, m) if transa else (m, k), lda, stride_a, count)
    second = _matrices(a, (n, k) if transb else (k, n), ldb, stride_b, count)
    result = _matrices(out, (m, n), ldc, stride_c, count)
    first, second = (x.transpose(0, 2, 1) if op else x for x, op in ((first, transa), (second, transb)))
    result[...] = np.matmul(first.astype(np.float64), second.astype(np.float64))


def _matrices(array, shape, ld, stride, count):
    """`count` column-major (rows, columns) matrices from `array`'s first element on, ld and stride apart
    (elements), as a view of its memory, which must hold them."""
    (rows, columns), itemsize = shape, array.itemsize
    assert min(rows, columns, count) > 0 and ld >= rows and stride >= 0, (shape, ld, stride, count)
    span = ((count - 1) * stride + (columns - 1) * ld + rows) * itemsize
    extent = sum((size - 1) * step for size, step in zip(array.shape, array.strides)) + itemsize
    assert min(array.strides) >= 0 and span <= extent, "a matrix beyond its array's memory"
    memory = np.frombuffer((ctypes.c_char * span).from_address(array.ctypes.data), array.dtype)
    return np.lib.stride_tricks.as_strided(memory, (count, rows, columns), (stride * itemsize, itemsize, ld * itemsize))
