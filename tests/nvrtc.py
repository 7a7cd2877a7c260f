"""NVIDIA's runtime compiler, NVRTC, as CuPy calls it to compile a RawModule: on the CPU, no GPU needed.

The libraries come from the wheels of the [reference] extra (Linux) that CuPy loads on a GPU machine:
nvidia-cuda-nvrtc-cu12 (CUDA 12, cupy-cuda12x) and nvidia-cuda-nvrtc (CUDA 13, cupy-cuda13x).
"""
import ctypes
import importlib.util
import os
from pathlib import Path

from reference import require


# CUDA major version: (the wheel's package, as imported; the library's file name)
LIBRARIES = {12: ("nvidia.cuda_nvrtc", "libnvrtc.so.12"), 13: ("nvidia.cu13", "libnvrtc.so.13")}


def load(major):
    """The NVRTC library of CUDA `major` (12 or 13) from its wheel; the test skips without it (fails in CI)."""
    package, name = LIBRARIES[major]
    require(package)
    folder = Path(next(iter(importlib.util.find_spec(package).submodule_search_locations))) / "lib"
    # Its builtins first, which NVRTC opens by name while compiling: beside it, but where it is not the one
    # opening them (a sanitizer's interposed dlopen), not found there.
    for builtins in folder.glob("libnvrtc-builtins.so.*"):
        ctypes.CDLL(os.fspath(builtins), mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(os.fspath(folder / name))


def compile_program(library, code, options, name_expressions):
    """(cubin, {name expression: lowered name}, log) of CUDA `code` compiled with `options`, each of
    `name_expressions` instantiated and looked up as CuPy does (nvrtcAddNameExpression, nvrtcGetLoweredName)."""
    def check(result, call):
        if result != 0:
            raise RuntimeError(f"{call} failed ({result}): {log(program)}")

    def log(program):
        size = ctypes.c_size_t()
        library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        text = ctypes.create_string_buffer(size.value)
        library.nvrtcGetProgramLog(program, text)
        return text.value.decode()

    program = ctypes.c_void_p()
    check(library.nvrtcCreateProgram(ctypes.byref(program), code.encode(), b"kernels.cu", 0, None, None),
          "nvrtcCreateProgram")
    try:
        for expression in name_expressions:
            check(library.nvrtcAddNameExpression(program, expression.encode()), "nvrtcAddNameExpression")
        encoded = [option.encode() for option in options]
        check(library.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)),
              "nvrtcCompileProgram")
        lowered = {}
        for expression in name_expressions:
            name = ctypes.c_char_p()
            check(library.nvrtcGetLoweredName(program, expression.encode(), ctypes.byref(name)),
                  "nvrtcGetLoweredName")
            lowered[expression] = name.value.decode()
        size = ctypes.c_size_t()
        check(library.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
        cubin = ctypes.create_string_buffer(size.value)
        check(library.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN")
        return cubin.raw, lowered, log(program)
    finally:
        library.nvrtcDestroyProgram(ctypes.byref(program))
