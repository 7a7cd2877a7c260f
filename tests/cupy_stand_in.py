"""A stand-in for CuPy on the CPU, to see what minimatte's CuPy path asks of a GPU without one.

Installed as the module `cupy` (sys.modules), its arrays are NumPy arrays of a subclass whose module is "cupy", so
that minimatte takes the CuPy branch of every kernel. Within `recording()` it counts the operations a GPU would
run, each of which costs the host a launch (operators and ufuncs, array functions that write an array, copies by
assignment, astype, reshape or fancy indexing, host-to-device copies; views are free, and a copy onto itself is
skipped, as CuPy skips it), and records every host synchronisation, where the host waits for the GPU to catch
up: a device value turned into a Python one (bool, int, float, item, tolist), a boolean mask or nonzero (their
result's size), a copy to the host (get). The CUDA kernels and cuBLAS calls are served by tests/cuda_emulation.py
(`emulated_backend`), and counted too. Like CuPy, it refuses a NumPy array among the operands of an operation
(cupy.asarray copies one over): a host array that was never moved to the device fails here as on a GPU.

With MINIMATTE_GPU_DRY_RUN=1, tests/conftest.py installs it for the whole session, so that tests/test_gpu.py runs
on the CPU: a dry run of the GPU tests' own code, not a test of a GPU.
"""
import collections
import contextlib
import sys
import types

import numpy as np

from cuda_emulation import compile_kernels, emulated_gemm
from minimatte import backend

# Array functions that return views or metadata (no GPU work), and those that allocate without writing.
_FREE = {"reshape", "transpose", "broadcast_to", "shape", "ndim", "result_type", "promote_types", "may_share_memory",
         "shares_memory", "dtype", "can_cast", "broadcast_shapes", "moveaxis", "swapaxes", "squeeze", "expand_dims",
         "atleast_1d", "atleast_2d", "empty", "empty_like"}
_SIZE_FROM_VALUES = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"}  # CuPy syncs for these


class Record:
    """What a stretch of code asked of the GPU: operations by kind, and the host synchronisations (where)."""

    def __init__(self):
        self.operations, self.syncs = collections.Counter(), []


_recording = []  # the Record being filled, if any


def count(kind):
    if _recording:
        _recording[-1].operations[kind] += 1


def _sync(kind):
    if _recording:
        frame = sys._getframe(1)
        while frame is not None and "minimatte" not in frame.f_code.co_filename and \
                "/kernels/" not in frame.f_code.co_filename:
            frame = frame.f_back
        where = "?" if frame is None else f"{frame.f_code.co_filename.split('/')[-1]}:{frame.f_lineno}"
        _recording[-1].syncs.append(f"{kind} at {where}")


@contextlib.contextmanager
def recording():
    """with recording() as record: the operations and syncs of the block, in `record`."""
    _recording.append(Record())
    try:
        yield _recording[-1]
    finally:
        _recording.pop()


def _host(x):
    """x with every stand-in array in it as a plain NumPy array (a view)."""
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_host(v) for v in x)
    return x


def _device(x):
    """x with every NumPy array in it as a stand-in array, and a NumPy scalar as a 0-d one (CuPy's reductions and
    indexing return those, not host scalars)."""
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    if isinstance(x, tuple):
        return tuple(_device(v) for v in x)
    return x


def _refuse_host_arrays(operands):
    """CuPy's TypeError for a NumPy array (not a scalar) among the operands of an operation, in lists too."""
    for operand in operands:
        if isinstance(operand, (list, tuple)):
            _refuse_host_arrays(operand)
        elif isinstance(operand, np.ndarray) and not isinstance(operand, ndarray) and operand.ndim:
            raise TypeError(f"Unsupported type {np.ndarray}")


def _writes_new_memory(result, inputs):
    return isinstance(result, np.ndarray) and result.size > 0 and not any(
        np.shares_memory(_host(result), _host(x)) for x in inputs if isinstance(x, np.ndarray))


class ndarray(np.ndarray):
    __module__ = "cupy"  # what backend.array_module looks at

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        count(f"ufunc {ufunc.__name__}" + ("" if method == "__call__" else f".{method}"))
        out = kwargs.get("out")
        _refuse_host_arrays((*inputs, *(out or ())))
        if out is not None:
            kwargs["out"] = _host(out)
        result = getattr(ufunc, method)(*_host(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, function, types_, args, kwargs):
        return _call(function, args, kwargs)

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, np.ndarray) and k.dtype == bool for k in keys):
            _sync("boolean mask")
        result = np.ndarray.__getitem__(self.view(np.ndarray), _host(key))
        if _writes_new_memory(result, [self]):
            count("gather")
        return _device(result)

    def __setitem__(self, key, value):
        target = np.ndarray.__getitem__(self.view(np.ndarray), _host(key))
        onto_itself = (isinstance(value, np.ndarray) and value.shape == target.shape
                       and value.strides == target.strides and value.ctypes.data == target.ctypes.data)
        if not onto_itself:
            count("assignment")
        np.ndarray.__setitem__(self.view(np.ndarray), _host(key), _host(value))

    def astype(self, dtype, *args, **kwargs):
        result = self.view(np.ndarray).astype(dtype, *args, **kwargs)
        if _writes_new_memory(result, [self]):
            count("astype")
        return _device(result)

    def copy(self, *args, **kwargs):
        count("copy")
        return _device(self.view(np.ndarray).copy(*args, **kwargs))

    def reshape(self, *shape, **kwargs):
        result = self.view(np.ndarray).reshape(*shape, **kwargs)
        if _writes_new_memory(result, [self]):
            count("reshape copy")
        return _device(result)

    # A device value as a Python one, or on the host: the host waits for the GPU.
    def get(self):
        _sync("get")
        return self.view(np.ndarray).copy()

    def item(self, *args):
        _sync("item")
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        _sync("tolist")
        return self.view(np.ndarray).tolist()

    def __bool__(self):
        _sync("bool")
        return bool(self.view(np.ndarray))

    def __int__(self):
        _sync("int")
        return int(self.view(np.ndarray))

    def __float__(self):
        _sync("float")
        return float(self.view(np.ndarray))

    def __index__(self):
        _sync("index")
        return self.view(np.ndarray).__index__()


def _call(function, args, kwargs):
    name = function.__name__
    if name in _SIZE_FROM_VALUES:
        _sync(name)
    _refuse_host_arrays((*args, *kwargs.values()))
    result = function(*_host(args), **{k: _host(v) for k, v in kwargs.items()})
    if name not in _FREE and (_writes_new_memory(result, _host(args)) or "out" in kwargs):
        count(name)
    return _device(result)


def __getattr__(name):
    """Any other NumPy name: functions as array functions on the stand-in, ufuncs, dtypes and constants as they are
    (a ufunc of stand-in arrays comes to ndarray.__array_ufunc__)."""
    target = getattr(np, name)
    if isinstance(target, (np.ufunc, type)) or not callable(target):
        return target
    return lambda *args, **kwargs: _call(target, args, kwargs)


def _stale(array):
    """`array` as a GPU's memory pool hands it out, holding what an earlier array left there: here NaN (floats) or
    the largest value (integers), so that code reading an element of an `empty` array before writing it fails.
    (NumPy's fresh pages are zeros.)"""
    array.fill(np.nan if array.dtype.kind in "fc" else np.iinfo(array.dtype).max if array.dtype.kind in "iu" else 1)
    return array


def empty(shape, dtype=float, order="C"):
    return _device(_stale(np.empty(shape, dtype, order)))


def empty_like(prototype, dtype=None, order="K", subok=True, shape=None):
    return _device(_stale(np.empty_like(_host(prototype), dtype, order, subok, shape)))


def asarray(x, dtype=None):
    if isinstance(x, ndarray) and (dtype is None or x.dtype == dtype):
        return x
    count("host to device" if not isinstance(x, ndarray) else "astype")
    return _device(np.array(_host(x), dtype=dtype))


def asnumpy(x):
    return x.get()


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=lambda x, shape=None, strides=None: _device(np.lib.stride_tricks.as_strided(_host(x), shape, strides))))


class RawModule:
    """cupy.RawModule: the kernels of `code` emulated (cuda_emulation.compile_kernels), their launches counted."""

    def __init__(self, *, code, options=(), name_expressions=None):  # keyword-only, as CuPy's
        if not isinstance(code, str) or not isinstance(options, tuple):  # CuPy's signature types them so
            raise TypeError("RawModule: code must be a str and options a tuple")
        self._kernels = compile_kernels(code, name_expressions or ())

    def get_function(self, name):
        emulated = self._kernels[name]

        def launch(*args):
            count(f"CUDA kernel {name.split('<')[0]}")
            return emulated(*args)
        return launch


class Stream:
    """cupy.cuda.Stream: the stand-in runs everything in order, as on one stream, whatever `non_blocking` says."""

    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False

    def synchronize(self):
        _sync("synchronize")


cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1), Stream=Stream,
                             Device=lambda *args: types.SimpleNamespace(synchronize=lambda: _sync("synchronize")),
                             nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)))  # compile_kernels stands in


def _cuda_library(name):
    """cupy_backends.cuda.libs' __getattr__ in CuPy 14: a library's module (cuBLAS's here, emulated) is made when it
    is asked of the package, once the library is found; no module of the package is importable by its full name."""
    if name != "cublas":
        raise AttributeError(name)
    cuda_libraries.find_library("cublas")
    return types.ModuleType("cuBLAS, emulated")


cuda_libraries = types.ModuleType("cupy_backends.cuda.libs")
cuda_libraries.__getattr__ = _cuda_library
cuda_libraries.find_library = lambda name: None  # found, as in a wheel; a test makes it raise CuPy's ImportError


def emulated_backend(monkeypatch):
    """Make this module `cupy` for minimatte, its CUDA kernels (compiled by backend.cuda_kernel through RawModule)
    and cuBLAS calls emulated (and counted)."""
    def gemm(a, b, out, layout):
        count("cuBLAS product")
        emulated_gemm(_host(a), _host(b), _host(out), layout)

    monkeypatch.setitem(sys.modules, "cupy", sys.modules[__name__])
    for name in "cupy_backends", "cupy_backends.cuda":
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs", cuda_libraries)
    for compiled in ("_MODULES", "_KERNELS"):  # the stand-in's modules and kernels leave with it
        monkeypatch.setattr(backend, compiled, {})
    monkeypatch.setattr(backend, "cublas_gemm", gemm)
