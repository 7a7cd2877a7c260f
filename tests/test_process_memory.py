"""The process's memory around forward passes: backend.keep_freed_memory (later passes reuse the memory of the
first instead of faulting in fresh pages) and backend.small_pages (no huge pages for NumPy's arrays in a pass)."""
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from minimatte import backend

TESTS = Path(__file__).resolve().parent

# One process: a pass to warm up, a pass with glibc's defaults, then keep_freed_memory, a pass to grow the heap to
# the pass's peak, and a pass that should find all its memory there. Prints the two measured passes' page faults.
PASSES = f"""
import resource, sys
import numpy as np
sys.path.insert(0, {str(TESTS)!r})
import minimatte
from helpers import deterministic_state
model = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS["small"]))
pixels = np.random.default_rng(0).uniform(-1, 1, (1, 4, 320, 480)).astype(np.float32)

def page_faults_of_a_pass():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(pixels)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

model(pixels)
default = page_faults_of_a_pass()
applied = minimatte.keep_freed_memory()
model(pixels)
print(default, applied, page_faults_of_a_pass())
"""


def test_later_passes_reuse_the_memory_they_freed():
    result = subprocess.run([sys.executable, "-c", PASSES], capture_output=True, text=True, cwd=TESTS, check=True)
    default, applied, kept = result.stdout.split()
    if applied != "True":
        pytest.skip("no glibc allocator to configure")
    default, kept = int(default), int(kept)
    # Measured at this size: 15568 page faults a pass with glibc's defaults, 0 with the memory kept. glibc's defaults
    # can keep it all too (its mmap threshold grows with the blocks freed): once a default pass had 0 page faults.
    assert kept * 20 < max(default, 2000), f"{kept} page faults in a pass with the freed memory kept, {default} without"


def test_the_command_line_keeps_freed_memory(monkeypatch, tmp_path):
    from PIL import Image

    from minimatte import cli
    calls = []
    monkeypatch.setattr(backend, "keep_freed_memory", lambda: calls.append(True))
    mask = tmp_path / "mask.png"
    image = Image.new("L", (32, 32))
    image.paste(255, (8, 8, 24, 24))
    image.save(mask)
    assert cli.main(["trimap", str(mask), "-o", str(tmp_path / "trimap.png")]) == 0
    assert calls == [True]


def numpys_huge_pages():
    """NumPy's madvise(MADV_HUGEPAGE) setting (read by setting it and back)."""
    setting = backend._set_madvise_hugepage(True)
    backend._set_madvise_hugepage(setting)
    return setting


@pytest.mark.skipif(backend._set_madvise_hugepage is None, reason="this NumPy has no huge-page setting")
@pytest.mark.parametrize("setting", [True, False])
def test_passes_keep_numpys_arrays_off_huge_pages(det_model, monkeypatch, setting):
    """During a pass (seen from its progress reports) NumPy advises no huge pages; afterwards its setting is what
    it was, also after passes from several threads at once (the last one to end restores it)."""
    model = det_model("small")
    pixels = np.random.default_rng(0).standard_normal((1, 4, 64, 96)).astype(np.float32)
    original = backend._set_madvise_hugepage(setting)
    try:
        seen = []
        model(pixels, progress=lambda fraction, stage: seen.append(numpys_huge_pages()))
        assert seen and not any(seen) and numpys_huge_pages() == setting
        monkeypatch.setattr(backend, "_BLAS", None)  # BLAS left alone: the passes run side by side, not in turns
        barrier = threading.Barrier(3)
        callers = [threading.Thread(target=lambda: (barrier.wait(), model(pixels))) for _ in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert numpys_huge_pages() == setting
    finally:
        backend._set_madvise_hugepage(original)


@pytest.mark.skipif(backend._set_madvise_hugepage is None, reason="this NumPy has no huge-page setting")
def test_infer_keeps_its_pixel_work_off_huge_pages(det_model, monkeypatch):
    """infer's work around the pass (the image made float, with max_size its reduction and the enlargement of
    the alpha: full-resolution arrays) runs without huge pages too, and NumPy's setting is back after."""
    import minimatte
    seen = []
    for name in "normalised_batch", "enlarge_alpha":
        monkeypatch.setattr(minimatte.api, name, lambda *args, _work=getattr(minimatte.api, name), **kwargs: (
            seen.append(numpys_huge_pages()), _work(*args, **kwargs))[1])
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    original = backend._set_madvise_hugepage(True)
    try:
        for max_size in None, 48:
            minimatte.infer(image, np.full((64, 96), 128, np.uint8), model=det_model("small"), max_size=max_size)
        assert seen == [False, False, False] and numpys_huge_pages()  # the batch made twice: at 48 of 32x48
    finally:
        backend._set_madvise_hugepage(original)


@pytest.mark.skipif(backend._set_madvise_hugepage is None, reason="this NumPy has no huge-page setting")
def test_cutouts_keep_their_pixel_work_off_huge_pages(monkeypatch):
    """Cut-outs and foreground estimation read their pictures (the matte and, on a GPU, the image as floats) and
    composite without huge pages too (a first 12-megapixel cut-out took much longer with them here), and
    NumPy's setting is back after."""
    from minimatte import foreground
    seen = []
    for name in "_read_pair", "row_bands":  # estimate_foreground's reading; the compositing, band by band
        monkeypatch.setattr(foreground, name, lambda *args, _work=getattr(foreground, name), **kwargs: (
            seen.append(numpys_huge_pages()), _work(*args, **kwargs))[1])
    rng = np.random.default_rng(2)
    image, alpha = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), rng.integers(0, 256, (40, 60), dtype=np.uint8)
    original = backend._set_madvise_hugepage(True)
    try:
        foreground.cutout(image, alpha)
        foreground.cutout(image, alpha, background="#00ff00", foreground=False)
        assert seen == [False, False, False] and numpys_huge_pages()
    finally:
        backend._set_madvise_hugepage(original)


# A batch under an address-space limit: enough for the model and a small image's pass, not for a large image's.
OUT_OF_MEMORY = f"""
import resource, sys
import numpy as np
from PIL import Image
from safetensors.numpy import save_file
sys.path.insert(0, {str(TESTS)!r})
import minimatte
from minimatte import cli
from helpers import deterministic_state
folder = sys.argv[1]
save_file(dict(deterministic_state(minimatte.PRESETS["small"])), folder + "/model.safetensors")
for name, (h, w) in (("a_small", (64, 96)), ("b_large", (4096, 4096)), ("c_small", (64, 96))):
    ramp = np.linspace(0, 255, h * w, dtype=np.float32).astype(np.uint8).reshape(h, w)
    Image.fromarray(ramp).convert("RGB").save(f"{{folder}}/images/{{name}}.png", compress_level=1)
    trimap = np.zeros((h, w), np.uint8)
    trimap[h // 4:-h // 4, w // 4:-w // 4] = 128
    Image.fromarray(trimap).save(f"{{folder}}/trimaps/{{name}}.png")
with open("/proc/self/status") as status:
    held = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmSize"))
# Measured: 160 MB of address space here, 540 MB after loading the model and a small pass; a 2048x2048 pass
# needs more than 700 MB, a 4096x4096 one far more. The first small pass sets up what every pass needs
# (BLAS's buffers, threads): then the one after the large image's takes only memory the large one freed.
resource.setrlimit(resource.RLIMIT_AS, (held + (700 << 20), resource.RLIM_INFINITY))
sys.exit(cli.main(["matte", folder + "/images", folder + "/trimaps", "-o", folder + "/out", "--model",
                   folder + "/model.safetensors"]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the address-space limit and /proc are Linux's")
def test_an_image_too_large_for_memory_is_one_line_and_the_batch_goes_on(tmp_path):
    """Out of memory (NumPy's MemoryError) is one line naming what could not be allocated and what helps, not a
    traceback; in a batch the image is skipped, its memory freed for the next, and the run fails at the end."""
    for folder in "images", "trimaps":
        (tmp_path / folder).mkdir()
    # Two threads and two malloc arenas whatever the machine: each thread's arena reserves 64 MB of address space.
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="2", MALLOC_ARENA_MAX="2")
    result = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(tmp_path)], capture_output=True, text=True,
                            cwd=TESTS, timeout=300, env=environment)
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == f"[1/3] wrote {tmp_path / 'out' / 'a_small.png'}", lines
    assert re.fullmatch(r"\[2/3\] minimatte: error: b_large.png: out of memory: Unable to allocate .+; the network "
                        r"needs less with --max-size, which runs it on a reduced copy", lines[1]), lines
    assert lines[2:] == [f"[3/3] wrote {tmp_path / 'out' / 'c_small.png'}", "minimatte: error: 1 of 3 images failed"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a_small.png", "c_small.png"]


# Reads a checkpoint and prints the process's resident memory before and its peak after, in bytes.
READ_CHECKPOINT = """
import sys
from minimatte.weights import read_safetensors

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) << 10 for line in lines if line.startswith(field + ":"))

before = status("VmRSS")
tensors, _ = read_safetensors(sys.argv[1])
print(before, status("VmHWM"), sum(tensor.nbytes for tensor in tensors.values()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is in Linux's /proc")
def test_reading_a_checkpoint_holds_it_once(tmp_path, det_state):
    """A safetensors checkpoint's tensors are read into their arrays, not copied out of a memory map of the file,
    whose pages count as the process's memory beside the copies: twice the checkpoint at the peak (measured: B's
    778 MB to load before, 576 MB now)."""
    from safetensors.numpy import save_file
    save_file(det_state("small"), str(tmp_path / "model.safetensors"))
    result = subprocess.run([sys.executable, "-c", READ_CHECKPOINT, str(tmp_path / "model.safetensors")],
                            capture_output=True, text=True, cwd=TESTS, check=True)
    before, peak, size = map(int, result.stdout.split())
    assert size > 100e6 and peak - before < 1.2 * size, f"{(peak - before) / size:.2f}x the tensors' size"
