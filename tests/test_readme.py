"""The README's examples run as a user runs them: its Python block, and each line of its command-line block in a
shell, on small copies of the alphamatting.com images, with the deterministic weights in the cache under the
published checkpoint's name (so nothing is downloaded)."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from PIL import Image
from safetensors.numpy import save_file

from helpers import DATA, ROOT, SMALL_HUB_CONFIG, deterministic_state
from minimatte import PRESETS

README = (ROOT / "README.md").read_text(encoding="utf-8")
SIZE = (200, 124)  # the alphamatting.com images at a quarter of their low resolution (width, height)


def blocks(language):
    """The README's fenced code blocks of `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


def command_lines():
    """The command-line block's commands (the block under "Command line"), without their comments."""
    block, = [b for b in blocks("bash") if b.startswith("minimatte matte ")]
    return [re.split(r"\s+#\s", line)[0] for line in block.splitlines()]


# The command-line block's placeholders, as the files and folders of the workspace. A line that names another
# fails: add it here.
PLACEHOLDERS = {"IMAGE": "image.png", "TRIMAP": "trimap1.png", "MASK": "mask.png", "ROUGH_CUTOUT": "rough_cutout",
                "ALPHA": "retouched", "IMAGE_DIR": "images", "TRIMAP_DIR": "trimaps", "OUT_DIR": "out",
                "PRED_DIR": "predicted", "GT_DIR": "gt", "SRC": "small-composition-1k", "DST": "converted"}


def _scaled(path, resample):
    return Image.open(path).resize(SIZE, resample)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A working folder with the files the examples name, and the environment that serves the checkpoint from
    the cache there: the hub's address is a closed port, so that a download would fail, not reach the hub."""
    folder = tmp_path_factory.mktemp("readme")
    cache = folder / "cache" / "small-composition-1k"
    cache.mkdir(parents=True)
    save_file(dict(deterministic_state(PRESETS["small"])), str(cache / "model.safetensors"))
    (cache / "config.json").write_text(json.dumps(SMALL_HUB_CONFIG))
    for name in ("images", "trimaps", "gt", "predicted"):
        (folder / name).mkdir()
    alphamatting = DATA / "alphamatting"
    for name in ("GT01.png", "GT02.png"):
        _scaled(alphamatting / "input_training_lowres" / name, Image.BICUBIC).save(folder / "images" / name)
        _scaled(alphamatting / "trimap_training_lowres/Trimap1" / name, Image.NEAREST).save(folder / "trimaps" / name)
        truth = _scaled(alphamatting / "gt_training_lowres" / name, Image.BICUBIC).convert("L")
        truth.save(folder / "gt" / name)
        truth.resize((50, 31), Image.BOX).resize(SIZE, Image.BILINEAR).save(folder / "predicted" / name)  # blurred
    Image.open(folder / "images/GT01.png").save(folder / "image.png", dpi=(300, 300))  # a print photo's resolution
    for name in ("trimap.png", "trimap1.png"):  # the Python example's, and the command lines' (one writes trimap.png)
        shutil.copy(folder / "trimaps/GT01.png", folder / name)
    image, truth = Image.open(folder / "image.png"), Image.open(folder / "gt/GT01.png")
    image.save(folder / "photo.jpg")
    truth.save(folder / "retouched.png")
    mask = truth.point(lambda value: 255 if value > 127 else 0)
    mask.save(folder / "mask.png")
    Image.merge("RGBA", (*image.split(), mask)).save(folder / "rough_cutout.png")
    shutil.copy(DATA / "vitmatte_demo/new_bg.jpg", folder / "new_bg.jpg")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(MINIMATTE_CACHE=str(folder / "cache"), HF_HUB_CACHE=str(folder / "hf"),
               MINIMATTE_HUB_URL="http://127.0.0.1:9")
    return folder, env


def test_the_python_example_runs_as_written(workspace):
    folder, env = workspace
    example, = blocks("python")
    given = ("import numpy as np\nfrom PIL import Image\n"
             "img1, img2 = (np.asarray(Image.open(f'images/{n}.png')) for n in ('GT01', 'GT02'))\n"
             "tri1, tri2 = (np.asarray(Image.open(f'trimaps/{n}.png')) for n in ('GT01', 'GT02'))\n")
    # What the example's comments say of its results
    said = ("h, w = img1.shape[:2]\n"
            "assert alpha.dtype == np.float32 and alpha.shape == (h, w) and 0 <= alpha.min() <= alpha.max() <= 1\n"
            "assert isinstance(alphas, list) and [a.shape for a in alphas] == [(h, w), (h, w)]\n"
            "assert rgba.dtype == np.uint8 and rgba.shape == (h, w, 4)\n"
            "assert rgb.dtype == np.uint8 and rgb.shape == (h, w, 3)\n"
            "left, top, right, bottom = box\n"
            "assert sticker.shape == (bottom - top, right - left, 4)\n"
            "assert (sticker == rgba[top:bottom, left:right]).all()\n"
            "assert fg.dtype == np.float32 and fg.shape == (h, w, 3)\n"
            "assert trimap.dtype == np.uint8 and set(np.unique(trimap)) <= {0, 128, 255}\n"
            "assert Image.open('alpha.png').mode == 'L' and Image.open('cutout.png').mode == 'RGBA'\n"
            "assert [round(v) for v in Image.open('cutout.png').info['dpi']] == [300, 300]\n")
    (folder / "example.py").write_text(given + example + said)
    run = subprocess.run([sys.executable, "example.py"], cwd=folder, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "100% head"  # the progress callback's last call
    assert run.stderr == ""


@pytest.mark.parametrize("line", command_lines(), ids=str.strip)
def test_each_command_line_example_runs_as_written(workspace, line):
    """The line in a shell, its placeholders replaced by files of the workspace, `[optional]` arguments given, and
    `rembg`, which the pipe example takes a rough cut-out from, standing in by printing one."""
    folder, env = workspace
    unknown = [word for word in re.findall(r"\b[A-Z][A-Z_]+\b", line) if word not in PLACEHOLDERS]
    assert not unknown, f"placeholders {unknown} of the README line {line!r} are not in PLACEHOLDERS"
    command = re.sub(r"\b[A-Z][A-Z_]+\b", lambda match: PLACEHOLDERS[match.group()], line)
    command = re.sub(r"\[([^]]*)\]", r"\1", command)
    output = re.search(r"(?:-o|convert \S+) (\S+)", command)
    output = folder / output.group(1) if output else None
    if output is not None and output.is_dir():  # what an earlier line wrote is not taken for this one's
        shutil.rmtree(output)
    elif output is not None:
        output.unlink(missing_ok=True)
    # the venv's command; where it has none (a source tree on PYTHONPATH), `python -m minimatte`
    script = shutil.which("minimatte", path=os.path.dirname(sys.executable))
    minimatte = shlex.quote(script) if script else f"{shlex.quote(sys.executable)} -m minimatte"
    shell = f"rembg() {{ cat rough_cutout.png; }}\nminimatte() {{ {minimatte} \"$@\"; }}\nset -o pipefail\n{command}"
    run = subprocess.run(["bash", "-c", shell], cwd=folder, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{command}\n{run.stderr}"
    assert output is None or output.exists()
    if output is not None and output.is_dir():  # NAME.png files, or NAME.EXT with --format EXT
        extension = "." + (re.findall(r"--format (\S+)", command) or ["png"])[0]
        assert sorted(p.name for p in output.iterdir()) == ["GT01" + extension, "GT02" + extension]
