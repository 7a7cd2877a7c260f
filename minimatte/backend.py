"""Everything that differs between NumPy and CuPy lives here.

Kernels never ask "are we on the GPU?": they call `array_module(x)` on their input and use what it
returns (`xp`). The rest of the package only needs to pick a backend by name, move arrays to it and
bring results back.
"""
import os

import numpy

BACKENDS = ("numpy", "cupy")
ENV_VAR = "MINIMATTE_BACKEND"


def array_module(x):
    """numpy or cupy, whichever owns the array `x` (without importing cupy for NumPy arrays)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return numpy


def resolve(name=None):
    """The array module for a backend name; None means $MINIMATTE_BACKEND, else numpy."""
    name = name or os.environ.get(ENV_VAR) or "numpy"
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "numpy":
        return numpy
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # ImportError, or a CUDA error when no driver/GPU is present
        raise RuntimeError(
            f"backend: 'cupy' needs CuPy and a working NVIDIA GPU ({type(error).__name__}: {error}); "
            "install minimatte[cupy] on a machine with a GPU, or use backend='numpy'") from None
    return cupy


def name_of(xp):
    return "cupy" if xp.__name__ == "cupy" else "numpy"


def to_device(tree, xp):
    """Copy every array of a nested dict/list onto the backend `xp`."""
    if isinstance(tree, dict):
        return {k: to_device(v, xp) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_device(v, xp) for v in tree]
    return xp.asarray(tree)


def to_numpy(x):
    """A NumPy array from either backend (no copy for NumPy input)."""
    if array_module(x) is numpy:
        return numpy.asarray(x)
    return x.get()


def chunk_elements(xp):
    """How many elements an elementwise kernel should touch per pass.

    On the CPU, NumPy runs one ufunc at a time over the whole operand, so long chains (GELU's erf,
    layer norm) are run chunk by chunk to stay in the L2 cache. A GPU wants the opposite: one launch
    over everything.
    """
    return 1 << 16 if xp is numpy else 1 << 40
