"""The forward pass's own threads (backend.cpu_threads): same results, BLAS settings restored."""
import numpy as np
import pytest

from minimatte import backend

steerable_blas = pytest.mark.skipif(backend._BLAS is None, reason="NumPy's BLAS is not an OpenBLAS minimatte can steer")


def test_numpys_openblas_is_steerable():
    """Where an OpenBLAS is loaded (NumPy's wheels bundle one), minimatte finds its thread controls, whose names
    differ between NumPy 1 and 2: otherwise the forward pass's threads are silently off."""
    loaded = backend.loaded_openblas()
    if loaded is None:
        pytest.skip("no /proc/self/maps to find the loaded libraries in")
    if not loaded:
        pytest.skip("NumPy uses another BLAS")
    assert backend._BLAS is not None, f"no thread controls found in {loaded}"


@steerable_blas
def test_threaded_forward_equals_serial(det_model, monkeypatch):
    model = det_model("small")
    pixels = np.random.default_rng(0).standard_normal((2, 4, 224, 320)).astype(np.float32)  # several windows, bands
    threaded = model(pixels).alphas
    blas_threads = backend._BLAS[0]()
    monkeypatch.setattr(backend, "_BLAS", None)  # no control over BLAS: cpu_threads changes nothing
    serial = model(pixels).alphas
    np.testing.assert_allclose(threaded, serial, rtol=0, atol=1e-6)  # measured: 3e-7, float32 rounding
    monkeypatch.undo()
    assert backend._BLAS[0]() == blas_threads  # restored after the pass


@steerable_blas
def test_pieces_run_on_threads_and_errors_restore_blas():
    blas_threads = backend._BLAS[0]()
    backend._BLAS[1](2)
    try:
        seen = []
        with backend.cpu_threads(np):
            assert backend.parallelism() == 2 and backend._BLAS[0]() == 1
            backend.run_pieces(lambda i: seen.append(backend.parallelism()), range(4))
            with pytest.raises(ZeroDivisionError):
                backend.run_pieces(lambda i: 1 / i, [1, 0, 2])
        assert seen == [1, 1, 1, 1]  # inside a piece, nested kernels run serially
        assert backend.parallelism() == 1 and backend._BLAS[0]() == 2
        with pytest.raises(RuntimeError):
            with backend.cpu_threads(np):
                raise RuntimeError("interrupted")
        assert backend.parallelism() == 1 and backend._BLAS[0]() == 2
    finally:
        backend._BLAS[1](blas_threads)
