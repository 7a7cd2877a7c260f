"""Progress through a forward pass: the work per stage (FLOPs) and the reports made from it; the bar."""
import io
import re
import sys

import numpy as np
import pytest

import minimatte
from minimatte import backend, progress
from minimatte.model import stage_flops
from reference import require_reference

# The spec's FLOP table (section 8), in GFLOPs: backbone, ConvStream, fusion blocks, head, total.
SPEC_GFLOPS = {
    ("small", 640, 960): (161.82, 6.90, (25.5, 31.1, 31.1, 24.1), 5.68, 286.23),
    ("small", 1024, 1024): (317.79, 11.78, (43.5, 53.2, 53.2, 41.1), 9.70, 530.12),
    ("base", 640, 960): (556.08, 6.90, (42.5, 31.1, 31.1, 24.1), 5.68, 697.48),
    ("base", 1024, 1024): (1030.06, 11.78, (72.5, 53.2, 53.2, 41.1), 9.70, 1271.38),
}


@pytest.mark.parametrize("name, height, width", list(SPEC_GFLOPS))
def test_stage_flops_match_the_spec_table(name, height, width):
    work = {stage: flops / 1e9 for stage, flops in stage_flops(minimatte.PRESETS[name], height, width).items()}
    backbone_stages = ["patch embedding"] + [f"block {i}/12" for i in range(1, 13)]
    assert list(work) == backbone_stages + ["details", "fusion 1/4", "fusion 2/4", "fusion 3/4", "fusion 4/4", "head"]
    backbone, details, fusion, head, total = SPEC_GFLOPS[name, height, width]
    assert round(sum(work[stage] for stage in backbone_stages), 2) == backbone
    assert round(work["details"], 2) == details
    assert tuple(round(work[f"fusion {i}/4"], 1) for i in range(1, 5)) == fusion
    assert round(work["head"], 2) == head
    assert round(sum(work.values()), 2) == total


def test_stage_flops_equal_torch_flop_counter(preset, det_reference):
    torch, _ = require_reference()
    from torch.utils.flop_counter import FlopCounterMode
    config = minimatte.PRESETS[preset]
    model = det_reference(preset)
    for height, width in (64, 96), (256, 480), (224, 224):  # one window; padded windows; a square
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 4, height, width))
        assert sum(stage_flops(config, height, width).values()) == counter.get_total_flops()


def test_progress_reports_each_stage_once_and_changes_nothing(det_model):
    model = det_model("small")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), (70, 100))
    reports = []
    alpha = minimatte.infer(image, trimap, model=model, progress=lambda *report: reports.append(report))
    np.testing.assert_array_equal(alpha, minimatte.infer(image, trimap, model=model))
    work = stage_flops(model.config, 96, 128)  # the padded size
    assert [stage for _, stage in reports] == list(work)
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[0] == pytest.approx(work["patch embedding"] / sum(work.values()))

    reports.clear()  # two images: each one's stages, scaled into the whole run
    minimatte.infer([image, image[:40]], [trimap, trimap[:40]], model=model, max_size=64,
                    progress=lambda *report: reports.append(report))
    assert len(reports) == 2 * len(work)
    assert reports[len(work) - 1] == (0.5, "image 1/2, head") and reports[-1] == (1.0, "image 2/2, head")
    assert reports[0][1] == "image 1/2, patch embedding" and 0 < reports[0][0] < reports[1][0]


def test_raising_from_progress_cancels_the_pass(det_model):
    """A program stops a pass (a closed web request, a Cancel button) by raising from the callback: the exception
    comes out of infer, and the model's next pass is as if none had been stopped."""
    class Cancelled(Exception):
        pass

    def cancel_at_block_5(fraction, stage):
        if stage == "block 5/12":
            raise Cancelled

    model = det_model("small")
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), (70, 100))
    blas_threads = backend._BLAS and backend._BLAS[0]()  # None where BLAS is not steered
    expected = minimatte.infer(image, trimap, model=model)
    with pytest.raises(Cancelled):
        minimatte.infer(image, trimap, model=model, progress=cancel_at_block_5)
    assert backend.parallelism() == 1 and (backend._BLAS and backend._BLAS[0]()) == blas_threads
    np.testing.assert_array_equal(minimatte.infer(image, trimap, model=model), expected)


def test_progress_in_decoder_bands(det_model, monkeypatch):
    """A decoder run in bands reports each band's stages, labelled, with its share of the work."""
    monkeypatch.setitem(backend.PIECE_ELEMENTS, "decoder band", (2 * 16 * 64,) * 2)  # 3 bands of 2 feature rows
    reports = []
    det_model("small")(np.zeros((1, 4, 96, 64), np.float32), progress=lambda *report: reports.append(report))
    work = stage_flops(minimatte.PRESETS["small"], 96, 64)
    decoder_stages = ["details", "fusion 1/4", "fusion 2/4", "fusion 3/4", "fusion 4/4", "head"]
    backbone = len(work) - len(decoder_stages)
    assert [stage for _, stage in reports] == list(work)[:backbone] + [
        f"band {band}/3, {stage}" for band in (1, 2, 3) for stage in decoder_stages]
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    decoder_work = sum(work[stage] for stage in decoder_stages)
    assert fractions[backbone + 5] == pytest.approx(1 - 2 / 3 * decoder_work / sum(work.values()))  # band 1 done
    reports.clear()  # the budget is the batch's: two images run in bands of half the rows
    det_model("small")(np.zeros((2, 4, 96, 64), np.float32), progress=lambda *report: reports.append(report))
    assert reports[-1] == (1.0, "band 6/6, head")


@pytest.mark.parametrize("columns", [40, 60, 80, 120])
def test_the_bar_fits_the_terminal(monkeypatch, columns):
    """A bar line longer than the terminal would wrap, and each redraw (back to the start of its last row only)
    would leave a copy behind: it is kept within the width. The label gives way first, then the bar, then the
    end of the text."""
    monkeypatch.setenv("COLUMNS", str(columns))
    cases = [("a_very_long_file_name_of_a_photo.png", "block 5/12, 1:23 left"),
             ("images", "3/27, band 2/3, fusion 2/4, 3.4 s each, 1:23 left"), ("bulb.png", "head")]
    for label, text in cases:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setattr(progress, "_drawn", 0)  # a new line: no blanks to cover a longer one
        progress.bar(label, 0.5, text)
        line = stream.getvalue()
        assert line.startswith("\r")
        line = line[1:]
        assert len(line) < columns
        if len(label) + len(text) + 35 < columns:  # room for all: as it always was
            assert line == f"{label}: [{'#' * 15}{'.' * 15}] {text}"
        shown, rest = line.split(": [", 1)
        assert shown == label or len(label) > 12 and shown.endswith("...") and label.startswith(shown[:-3])
        bar = rest.split("] ", 1)[0]
        assert 10 <= len(bar) <= 30 and bar.count("#") == len(bar) // 2
        assert text.startswith(rest.split("] ", 1)[1])
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "_drawn", 0)
    progress.bar("a_very_long_file_name_of_a_photo.png", 0.5, "block 5/12, 1:23 left")
    assert stream.getvalue() == f"\ra_very_long_file_nam...: [{'#' * 15}{'.' * 15}] block 5/12, 1:23 left"
    assert [progress._clock(seconds) for seconds in (0, 5.9, 65, 3600)] == ["0:00", "0:05", "1:05", "60:00"]


def test_the_bar_is_redrawn_in_plain_text(monkeypatch):
    """Redrawn with a carriage return, and blanks over what a longer line left: no escape sequences, which
    Windows' console host (cmd, PowerShell 5) prints as text (ESC [K erased the rest of the line)."""
    stream = io.StringIO()
    monkeypatch.setattr(stream, "isatty", lambda: True)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "_drawn", 0)
    monkeypatch.setenv("COLUMNS", "80")
    items = progress.Items(2, "images")
    progress.bar("images", 0.5, "1/2, band 2/3, fusion 2/4, 1:23 left")  # within the first image
    items.item_done("wrote a.png")  # between the images: the bar at 1/2, a shorter line
    within, between = stream.getvalue().split("\r")[1:]
    assert re.fullmatch(r"images: \[#{15}\.{15}\] 1/2, \d+\.\d s each, \d+:\d\d left +", between)
    assert len(between) == len(within)  # its blanks cover the rest of the longer line
    warning = "minimatte: warning: b.png: Corrupt EXIF data"
    items.note(warning)  # a line of its own where the bar was (the next draw puts the bar back below it)
    assert stream.getvalue().split("\r")[-1] == warning + " " * (len(between.rstrip(" ")) - len(warning)) + "\n"
    items.item_done("wrote b.png")  # the last: the bar kept on its line, and a new one below it
    assert re.fullmatch(r"images: \[#{30}\] 2/2, \d+\.\d s each\n", stream.getvalue().split("\r")[-1])
    progress.bar("bulb.png", 0.25, "block 3/12")
    items.clear()  # blanked, and back to its start for an error
    drawn, blanks, after = stream.getvalue().split("\r")[-3:]
    assert drawn.startswith("bulb.png: [") and blanks == " " * len(drawn) and after == ""
    assert "\x1b" not in stream.getvalue()
