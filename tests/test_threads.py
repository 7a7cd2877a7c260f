"""The forward pass's own threads (backend.cpu_threads): same results, BLAS settings restored; passes in forked and
spawned worker processes."""
import copy
import multiprocessing
import os
import pickle
import platform
import shutil
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from minimatte import backend

steerable_blas = pytest.mark.skipif(backend._BLAS is None, reason="NumPy's BLAS is not an OpenBLAS minimatte can steer")


@pytest.fixture
def blas_threads():
    """backend._BLAS's setter of OpenBLAS's thread count (tests marked steerable_blas); the count it had is put
    back after the test."""
    get, set_threads = backend._BLAS
    before = get()
    yield set_threads
    set_threads(before)


def test_numpys_openblas_is_steerable():
    """Where an OpenBLAS is loaded (NumPy's wheels bundle one), minimatte finds its thread controls, whose names
    differ between NumPy 1 and 2: otherwise the forward pass's threads are silently off."""
    listed = backend.listed_libraries()
    if listed is None:
        pytest.skip("no /proc/self/maps to find the loaded libraries in")
    loaded = [path for path in listed if "openblas" in path.lower()]
    if not loaded:
        pytest.skip("NumPy uses another BLAS")
    assert backend._BLAS is not None, f"no thread controls found in {loaded}"


@steerable_blas
def test_numpys_bundled_openblas_is_found_without_a_list_of_loaded_libraries(monkeypatch):
    """macOS and Windows list no loaded libraries as Linux's /proc/self/maps does: there the OpenBLAS of NumPy's
    wheel is found in the wheel's folder, and its controls found that way steer the instance NumPy uses."""
    site_packages = Path(np.__file__).resolve().parents[1]
    loaded = [Path(path) for path in backend.listed_libraries() or () if "openblas" in path.lower()]
    if not any(site_packages in path.parents for path in loaded):
        pytest.skip("NumPy's OpenBLAS is not bundled with it (a distribution's NumPy)")
    monkeypatch.setattr(backend, "listed_libraries", lambda: None)
    found = backend._openblas_threads()
    assert found is not None, f"NumPy's OpenBLAS {loaded} is not found in its wheel's folders"
    blas_threads = backend._BLAS[0]()
    try:
        for count in (3, 1):
            found[1](count)
            assert backend._BLAS[0]() == count  # _BLAS: found in /proc/self/maps, the instance NumPy loaded
    finally:
        found[1](blas_threads)


def test_cpu_flags_are_the_first_cpus(tmp_path):
    """minimatte --version advises OpenBLAS's AVX-512 kernels by the instruction sets /proc/cpuinfo lists."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert backend.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw"}
    assert backend.cpu_flags(str(tmp_path / "missing")) is None  # not Linux: no advice
    if os.path.exists("/proc/cpuinfo") and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in backend.cpu_flags()


@steerable_blas
def test_a_library_that_is_not_loaded_is_not_opened(tmp_path):
    """A copy of NumPy's OpenBLAS elsewhere, say, is not loaded beside it: its thread count would steer nothing."""
    loaded = next(path for path in backend._openblas_candidates() if backend.already_loaded(path) is not None)
    copy = tmp_path / "libopenblas_copy.so"
    shutil.copyfile(loaded, copy)
    assert backend.already_loaded(str(copy)) is None
    assert str(copy) not in (backend.listed_libraries() or [])


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
def test_more_threads_than_work(det_model, blas_threads):
    """On a machine of 16 or 64 cores, images of one patch, four, or a strip (fewer tokens, windows and rows than
    threads) give the serial pass's alphas."""
    model = det_model("small")
    for size in (16, 16), (32, 32), (32, 224):
        pixels = np.random.default_rng(1).uniform(-1, 1, (1, 4, *size)).astype(np.float32)
        blas_threads(1)
        serial = model(pixels).alphas
        for threads in 16, 64:
            blas_threads(threads)
            np.testing.assert_allclose(model(pixels).alphas, serial, rtol=0, atol=1e-6)


@steerable_blas
def test_pieces_run_on_threads_and_errors_restore_blas(blas_threads):
    blas_threads(2)
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


@steerable_blas
def test_a_pass_within_a_pass_goes_on_with_its_threads(monkeypatch, blas_threads):
    """cpu_threads within cpu_threads on one thread (a progress callback that runs a second pass) keeps the outer
    setting and does not wait for the lock its own thread holds. It runs on a thread of its own with a lock of the
    test's, so that such a wait fails the test instead of hanging the suite."""
    monkeypatch.setattr(backend, "_STEERING", threading.Lock())
    blas_threads(2)
    inner = []

    def nested():
        with backend.cpu_threads(np), backend.cpu_threads(np):
            inner.append((backend.parallelism(), backend._BLAS[0]()))
    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(60)
    assert inner == [(2, 1)] and backend._BLAS[0]() == 2


@steerable_blas
def test_a_failed_piece_is_raised_once_no_piece_runs(blas_threads):
    """A piece's error (an allocation that failed) comes out of run_pieces only after the other running pieces
    have ended, and the pieces not started are dropped: else one would go on, holding its memory, under BLAS's
    restored thread count and beside the next pass (a batch's next image)."""
    blas_threads(2)
    started, running, second_runs = [], set(), threading.Event()

    def work(i):
        started.append(i)
        if i == 0:
            second_runs.wait(5)
            raise MemoryError("piece 0")
        running.add(i)
        second_runs.set()
        time.sleep(0.2)
        running.discard(i)
    with pytest.raises(MemoryError, match="piece 0"), backend.cpu_threads(np):
        backend.run_pieces(work, range(8))
    assert not running, f"pieces {running} still running"
    assert len(started) < 8 and backend._BLAS[0]() == 2


def test_passes_from_several_threads_take_turns_steering_blas(det_model, monkeypatch):
    """A web server's threads calling one model at once: no pass reads or changes BLAS's thread count while
    another has it switched, the alphas are a lone pass's, and the setting is restored (also where BLAS has one
    thread, and nothing is switched)."""
    model = det_model("small")
    pixels = [np.random.default_rng(i).standard_normal((1, 4, 96, 128)).astype(np.float32) for i in range(3)]
    alone = [model(x).alphas for x in pixels]
    blas = {}

    def get():
        blas["read while switched"] += blas["switched"]
        return blas["threads"]

    def set_(threads):
        blas["switched"] += 1 if threads == 1 else -1
        blas["threads"] = threads

    def call(i, results):
        results[i] = model(pixels[i]).alphas

    monkeypatch.setattr(backend, "_BLAS", (get, set_))  # stand-ins: the real BLAS keeps its own setting
    for threads in (2, 1):
        blas.update({"threads": threads, "switched": 0, "read while switched": 0})
        results = [None] * 3
        callers = [threading.Thread(target=call, args=(i, results)) for i in range(3) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert blas == {"threads": threads, "switched": 0, "read while switched": 0}
        for got, expected in zip(results, alone):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def _forked_pool():
    """A one-process pool forked from this process, as multiprocessing forks workers by default on Linux (a
    multi-threaded parent, which Python 3.12+ warns about: what users do here is the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return multiprocessing.get_context("fork").Pool(1)


_INHERITED = {}  # what a forked child finds in its copy of the parent's memory, not pickled: the model and pixels


def _child_pass():
    """In a forked child: a pass's alphas, and BLAS's thread count and NumPy's huge-page setting after it."""
    alphas = _INHERITED["model"](_INHERITED["pixels"]).alphas
    huge = backend._set_madvise_hugepage(True) if backend._set_madvise_hugepage else None
    return alphas, backend._BLAS[0]() if backend._BLAS else None, huge


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")
def test_forked_children_run_passes(det_model):
    """A child forked after passes ran (a pool of workers started from a program that has matted already) runs
    its own: without the parent's pool threads, which do not exist in it, and, where another thread's pass was
    running at the fork, without its locks and with BLAS's and NumPy's settings put back."""
    model = det_model("small")
    pixels = np.random.default_rng(0).standard_normal((1, 4, 96, 128)).astype(np.float32)
    alone = model(pixels).alphas  # the parent's pass: its pool's threads now exist
    _INHERITED.update(model=model, pixels=pixels)
    blas_threads = backend._BLAS[0]() if backend._BLAS else None
    huge = backend._set_madvise_hugepage(True) if backend._set_madvise_hugepage else None
    if huge is not None:
        backend._set_madvise_hugepage(huge)

    def running_pass(inside, leave):  # holds the locks and the switched settings until told to leave
        with backend.cpu_threads(np), backend.small_pages(np):
            inside.set()
            leave.wait(60)

    for another_pass in (False, True):
        inside, leave = threading.Event(), threading.Event()
        holder = threading.Thread(target=running_pass, args=(inside, leave))
        if another_pass:
            holder.start()
            inside.wait(60)
        try:
            with _forked_pool() as pool:
                alphas, child_blas, child_huge = pool.apply_async(_child_pass).get(timeout=60)
        finally:
            leave.set()
            if another_pass:
                holder.join()
        np.testing.assert_allclose(alphas, alone, rtol=0, atol=1e-6)
        assert (child_blas, child_huge) == (blas_threads, huge)


def test_a_pickled_model_runs_in_a_spawned_worker(det_model):
    """A model sent to a worker process that is spawned, not forked (multiprocessing's default on macOS and
    Windows, and on Linux from Python 3.14), is pickled: by its backend's name and its weights. Deep copies too."""
    model = det_model("small")
    pixels = np.random.default_rng(0).standard_normal((1, 4, 64, 96)).astype(np.float32)
    alone = model(pixels).alphas
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as workers:
        alphas = workers.submit(model, pixels).result(timeout=120).alphas  # the model pickled as the callable
    np.testing.assert_allclose(alphas, alone, rtol=0, atol=1e-6)
    for twin in pickle.loads(pickle.dumps(model)), copy.deepcopy(model):
        assert (twin.xp, twin.precision, twin.processor) == (np, model.precision, model.processor)
        np.testing.assert_array_equal(twin(pixels).alphas, alone)
