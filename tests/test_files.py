import io
import os
import pathlib
import re
import stat
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

import minimatte
from minimatte import cli, files
from minimatte.files import atomic_output

sys.path.insert(0, os.path.dirname(__file__))
from helpers import PILLOW_VERSION, gamma_profile, grey_profile, read_named_pipe, write_named_pipe  # noqa: E402


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_outputs_end_as_a_plain_write_leaves_them(tmp_path, monkeypatch, capsys):
    """A new output gets the default permissions of new files (0o666 less the umask), as open() gives them, not
    owner-only ones, also where the writer replaces the temporary file with its own (safetensors 0.8's save_file
    does, as 0o600); a replaced file keeps its own; a symbolic link's target is written; a read-only file is
    refused, as open() refuses it, not replaced; errors name the output, not the temporary file."""
    def write(tmp, content):
        with open(tmp, "wb") as out:
            out.write(content)

    def replace_owner_only(tmp, content):
        os.unlink(tmp)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        write(tmp, content)

    umask = os.umask(0o027)
    try:
        for umask_now, expected in ((0o027, 0o640), (0o022, 0o644)):
            os.umask(umask_now)
            for writer in write, replace_owner_only:
                new = tmp_path / f"{writer.__name__}{umask_now:o}.png"
                with atomic_output(new) as tmp:
                    writer(tmp, b"matte")
                assert new.read_bytes() == b"matte" and _mode(new) == expected
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"old")
        os.chmod(kept, 0o600)
        with atomic_output(kept) as tmp:
            with open(tmp, "wb") as out:
                out.write(b"new")
        assert kept.read_bytes() == b"new" and _mode(kept) == 0o600
        os.symlink(kept, tmp_path / "link.png")  # a link's target is written, as open() writes it
        with atomic_output(tmp_path / "link.png") as tmp:
            with open(tmp, "wb") as out:
                out.write(b"through")
        assert os.path.islink(tmp_path / "link.png") and kept.read_bytes() == b"through"
    finally:
        os.umask(umask)
    with pytest.raises(RuntimeError):  # a failed write leaves neither the output nor the temporary file
        with atomic_output(tmp_path / "failed.png") as tmp:
            raise RuntimeError("encoder failed")
    with pytest.raises(OSError, match=r"^output: cannot write '/.*no_folder/a.png' \(Not a directory\)$"):
        with atomic_output(tmp_path / "kept.png" / "no_folder" / "a.png") as tmp:  # the output named, not tmp
            pass
    os.chmod(kept, 0o400)  # read-only: open() would refuse to write it, and renaming onto it would replace it
    if os.geteuid() == 0:  # who may write any file: the file as a user would find it
        monkeypatch.setattr(os, "access", lambda path, mode: not os.path.samefile(path, kept))
    with pytest.raises(OSError, match=r"^output: cannot write '/.*link.png' \(it is read-only\)$"):
        minimatte.save(tmp_path / "link.png", np.zeros((2, 2), np.uint8))
    mask = tmp_path / "in" / "mask.png"
    mask.parent.mkdir()
    Image.fromarray(np.where(np.eye(4, 6) > 0, 255, 0).astype(np.uint8)).save(mask)
    capsys.readouterr()
    assert cli.main(["trimap", str(mask), "--band", "1", "-o", str(kept)]) == 1  # before any work
    assert capsys.readouterr().err == f"minimatte: error: output: cannot write {str(kept)!r} (it is read-only)\n"
    assert kept.read_bytes() == b"through"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in", "kept.png", "link.png",
                                                                  "replace_owner_only22.png",
                                                                  "replace_owner_only27.png", "write22.png",
                                                                  "write27.png"]


def test_save_writes_each_result_as_the_command_line_does(tmp_path):
    """minimatte.save: float mattes rounded to the nearest level (8 or 16 bits) or kept as float32, integer mattes
    and trimaps as they are, cut-outs and composites with their colour space; what no format can hold, refused
    before any file is written."""
    rng = np.random.default_rng(7)
    alpha = rng.random((20, 30)).astype(np.float32)
    alpha[0, :4] = [0, 1, 0.6 / 255, 0.4 / 255]  # the ends, and either side of half a level
    minimatte.save(tmp_path / "a.png", alpha)
    written = Image.open(tmp_path / "a.png")
    assert written.mode == "L" and (np.asarray(written) == np.rint(alpha * 255)).all()
    assert list(np.asarray(written)[0, :4]) == [0, 255, 1, 0]
    minimatte.save(tmp_path / "swapped.png", alpha.astype(alpha.dtype.newbyteorder("S")))  # the other byte order
    assert (tmp_path / "swapped.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    minimatte.save(tmp_path / "channel.png", alpha[..., None])  # (H, W, 1): one channel, as the inputs take it
    assert (tmp_path / "channel.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    minimatte.save(str(tmp_path / "a16.tif"), alpha.astype(np.float64), bits=16)
    assert (np.asarray(Image.open(tmp_path / "a16.tif")) == np.rint(alpha * 65535)).all()
    minimatte.save(tmp_path / "a32.tif", alpha, bits=32)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a32.tif")), alpha)
    minimatte.save(tmp_path / "a.jpg", alpha)
    minimatte.save(tmp_path / "a.mpo", alpha)  # JPEG's multi-picture form: at JPEG's quality, not Pillow's 75
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.mpo")), np.asarray(Image.open(tmp_path / "a.jpg")))
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), (20, 30))
    minimatte.save(tmp_path / "t.png", trimap)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "t.png")), trimap)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    minimatte.save(tmp_path / "c.webp", rgba, icc_profile=gamma_profile(1.0))  # lossless
    written = Image.open(tmp_path / "c.webp")
    visible = rgba[..., 3] > 0
    assert np.array_equal(np.asarray(written)[visible], rgba[visible])
    assert written.info["icc_profile"] == gamma_profile(1.0)
    if PILLOW_VERSION >= (9, 4):  # WebP's `exact`: the colours under alpha 0 too
        assert np.array_equal(np.asarray(written), rgba)
    minimatte.save(tmp_path / "c.bmp", rgba[..., :3], icc_profile=gamma_profile(1.0))  # BMP holds no profile:
    converted = np.asarray(Image.open(tmp_path / "c.bmp")).astype(int)  # the colours are converted into sRGB
    assert np.abs(converted - rgba[..., :3]).max() > 30
    for result, bits, form in ((rgba, None, "PNG"), (alpha, 32, "TIFF")):  # a file object gets a PNG, or a TIFF
        file = io.BytesIO()
        minimatte.save(file, result, bits)
        written = Image.open(io.BytesIO(file.getvalue()))
        assert written.format == form and np.array_equal(np.asarray(written), result)

    minimatte.save(tmp_path / "no_extension", trimap)  # a PNG
    assert Image.open(tmp_path / "no_extension").format == "PNG"
    minimatte.save(tmp_path / "UPPER.TIF", trimap)  # extensions in any case
    assert Image.open(tmp_path / "UPPER.TIF").format == "TIFF"
    refused = [
        (("a.pgn", alpha), r"output: '.pgn' is no image format's extension that Pillow knows, got '/.*a.pgn'; use "
                           r".png \(or .tif\)$"),
        (("c.jpg", rgba), r"output: JPEG files cannot hold an RGBA cut-out, got '/.*c.jpg'; use .png, or composite "
                          "it onto a background$"),
        (("c.eps", rgba), "output: EPS files cannot hold an RGBA cut-out"),
        (("a16.jpg", alpha, 16), "output: 16-bit alphas need a .png or .tif file"),
        (("a32.png", alpha, 32), "output: 32-bit float alphas need a .tif file"),
        (("a32.exr", alpha, 32), r"output: OpenEXR files are not written here \(Pillow has no writer for them\), got "
                                 r"'/.*a32.exr'; a 32-bit float TIFF \(.tif with bits 32, --bits 32\) holds the matte"),
        (("a.heic", alpha), "output: HEIF files are lossy"),
        (("c.ico", rgba), r"output: Pillow writes ICO files at icon sizes of its own, not the result's, got "
                          r"'/.*c.ico'; use .png$"),  # a 20x30 cut-out would be 16x11 pixels there
        (("a.icns", alpha), "output: Pillow writes ICNS files at icon sizes of its own"),
        (("a.pdf", alpha), r"output: PDF files are written by Pillow but not read by it \(so not by minimatte\), got "),
        (("a.png", alpha[:0]), r"result: the array is empty, shape \(0, 30\)$"),
        (("c.png", rgba[..., :3].astype(np.uint16) * 257), r"result: .* got an array of dtype uint16 and shape "
                                                            r"\(20, 30, 3\)$"),  # no uint16 hint for a uint16
        (("a.png", alpha * 1.2), r"result: values must lie in \[0, 1\] \(up to 1/8 beyond it, a filter's overshoot, is "
                                 r"clipped\), found \[0, 1.2\]"),
        (("a.png", np.full((2, 2), np.nan)), "result: contains NaN or infinite values"),
        (("a.png", np.float32([[0.5, np.inf]])), "result: contains NaN or infinite values"),
        (("a.png", alpha, 12), "bits: expected 8, 16 or 32, got 12"),
        (("a.png", alpha, 8.0), "bits: expected 8, 16 or 32, got 8.0"),  # failed inside a shift
        (("t.png", trimap, True), "bits: expected 8, 16 or 32, got True"),
        (("t.png", trimap, 16), "bits: a uint8 array is written with its own 8 bits, got bits=16"),
        (("a.png", rgba.astype(np.float32) / 255), r"result: expected a matte \(H, W\) .* got an array of "
                                                   r"dtype float32 and shape \(20, 30, 4\)$"),
        (("t.png", np.where(np.eye(2) > 0, 255, 0)), r"result: .* got an array of dtype int64 and shape \(2, 2\) "
                                                     r"\(its values lie in 0..255: for 8-bit values, pass "
                                                     r"\.astype\(np.uint8\)\)$"),
        (("a.png", [[0.5]]), "result: expected a matte .* got list"),
        (("a.png", alpha[None, None]), r"result: .* got an array of dtype float32 and shape \(1, 1, 20, 30\) \(a batch "
                                       r"of 1 in torch's \(B, C, H, W\) layout, as transformers' pixel_values and "
                                       r"alphas\? give one at a time, as a\[0\].transpose\(1, 2, 0\)\)$"),
        (("a.png", alpha[None]), r"result: .* shape \(1, 20, 30\) \(channels first, as torch stores images\? pass "
                                 r"it as a\.transpose\(1, 2, 0\)\)$"),  # one of transformers' alphas
        (("c.png", rgba.transpose(2, 0, 1)), r"result: .* shape \(4, 20, 30\) \(channels first"),
        (("a.png", alpha[None].repeat(3, 0)), r"result: .* shape \(3, 20, 30\)$"),  # no colour floats: no hint
    ]
    files._round_trip.cache_clear()  # each format probed afresh, as in a new process
    with warnings.catch_warnings():  # no word from Pillow beside the error (9.0 warned as it read an ICO back)
        warnings.simplefilter("error")
        for (name, result, *bits), message in refused:
            with pytest.raises((ValueError, TypeError), match=message):
                minimatte.save(tmp_path / ("refused_" + name), result, *bits)
    with pytest.raises(ValueError, match="icc_profile: mattes and trimaps hold no colours to tag"):
        minimatte.save(tmp_path / "refused.png", alpha, icc_profile=gamma_profile(1.0))
    cmyk = bytearray(gamma_profile(1.0))
    cmyk[16:20] = b"CMYK"
    for profile, error, message in (
            (str(tmp_path / "image.jpg"), TypeError, r"icc_profile: expected an ICC profile's bytes, as "
                                                     r"minimatte.icc_profile\(image\) returns them, got str$"),
            (b"junk", ValueError, r"icc_profile: the bytes are not an ICC profile \(no 'acsp' signature"),
            (bytes(cmyk), ValueError, "icc_profile: a profile of the CMYK colour space; cut-outs and composites are "
                                      "RGB$"),
            (grey_profile(2.2), ValueError, "icc_profile: a profile of the GRAY colour space")):  # a grey file's
        with pytest.raises(error, match=message):
            minimatte.save(tmp_path / "refused.png", rgba, icc_profile=profile)
    with open(tmp_path / "text.txt", "w") as text, pytest.raises(TypeError, match=r"output: a file opened as text; "
                                                                  r"open it in binary mode \('wb'\)$"):
        minimatte.save(text, alpha)
    assert (tmp_path / "text.txt").read_bytes() == b""
    with pytest.raises(TypeError, match="output: expected a path or a binary file object, got int$"):
        minimatte.save(3, alpha)
    with pytest.raises(TypeError, match=r"output: expected a path or a binary file object, got ndarray \(the arguments "
                                        r"swapped\? it is save\(output, result\)\)$"):
        minimatte.save(alpha, str(tmp_path / "refused.png"))  # torchvision's save_image(tensor, fp) order
    assert not list(tmp_path.glob("refused*")) and not list(tmp_path.glob(".minimatte-*"))


def test_save_writes_a_file_object_in_the_format_asked_for(tmp_path):
    """save(buffer, result, format=...): a web response's JPEG or WebP, with save's options (JPEG's quality 95,
    WebP lossless), by Pillow's name or an extension; what the format cannot hold, refused by the format's name."""
    rng = np.random.default_rng(8)
    composite = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgba = np.dstack([composite, rng.integers(1, 256, (20, 30), dtype=np.uint8)])  # 9.0 drops colours at alpha 0
    alpha = rng.random((20, 30)).astype(np.float32)
    minimatte.save(tmp_path / "c.jpg", composite)
    for format in ("JPEG", "jpeg", "jpg", ".JPG"):
        file = io.BytesIO()
        minimatte.save(file, composite, format=format)
        assert file.getvalue() == (tmp_path / "c.jpg").read_bytes()  # quality 95, as a path's
    file = io.BytesIO()
    minimatte.save(file, rgba, format="webp")
    assert Image.open(file).format == "WEBP" and np.array_equal(np.asarray(Image.open(file)), rgba)  # lossless
    file = io.BytesIO()
    minimatte.save(file, alpha, bits=16, format="tif")
    assert np.array_equal(np.asarray(Image.open(file)), np.rint(alpha * 65535))
    minimatte.save(tmp_path / "no_extension", composite, format="JPEG")  # a path without one takes the format
    assert Image.open(tmp_path / "no_extension").format == "JPEG"
    minimatte.save(tmp_path / "same.jpeg", composite, format="JPG")
    refused = [
        ((rgba,), {"format": "JPEG"}, ValueError, r"^format: JPEG files cannot hold an RGBA cut-out, got 'JPEG'; use "
                                                  r"'PNG', or composite it onto a background$"),
        ((alpha,), {"format": "PNG", "bits": 32}, ValueError, r"^format: 32-bit float alphas need a 'TIFF' file, "
                                                              r"got 'PNG'$"),
        ((alpha,), {"format": "jpg", "bits": 16}, ValueError, r"^format: 16-bit alphas need a 'PNG' or 'TIFF' file"),
        ((alpha,), {"format": "pgn"}, ValueError, r"^format: expected an image format that Pillow knows, such as "
                                                  r"'PNG', 'JPEG', 'WEBP' or 'TIFF', got 'pgn'$"),
        ((alpha,), {"format": "EXR", "bits": 32}, ValueError, r"^format: OpenEXR files are not written here \(Pillow "
                                                             r"has no writer for them\), got 'EXR'; a 32-bit float"),
        ((alpha,), {"format": 3}, TypeError, r"^format: expected a format's name, such as 'PNG' or 'JPEG', got int$"),
    ]
    for args, options, error, message in refused:
        file = io.BytesIO()
        with pytest.raises(error, match=message):
            minimatte.save(file, *args, **options)
        assert file.getvalue() == b""
    with pytest.raises(ValueError, match=r"^format: 'JPEG' for '/.*a.png', whose extension means PNG; give the one, "
                                         r"or the other$"):
        minimatte.save(tmp_path / "a.png", alpha, format="JPEG")
    assert not (tmp_path / "a.png").exists()


def test_a_resolution_is_read_upright_and_written_where_the_format_holds_it(tmp_path):
    """minimatte.dpi reads a file's resolution (of the image as viewers show it) and save writes it into PNG,
    JPEG, TIFF and BMP files, within what each holds: none where it would wrap around or where there is none."""
    picture = Image.new("RGB", (30, 20), (200, 120, 40))
    for name in "p.png", "p.jpg", "p.tif", "p.bmp":
        picture.save(tmp_path / name, dpi=(300, 300))
        assert minimatte.dpi(tmp_path / name) == pytest.approx((300, 300), rel=1e-4)  # PNG: whole pixels per metre
    assert isinstance(minimatte.dpi(tmp_path / "p.tif")[0], float)  # not TIFF's rational
    with open(tmp_path / "p.jpg", "rb") as file:  # a file object, read from its start
        assert minimatte.dpi(file) == (300, 300)
    for name in "none.png", "none.jpg", "none.tif", "none.webp", "one.jpg":
        picture.save(tmp_path / name, **({"dpi": (1, 1)} if name == "one.jpg" else {}))
        assert minimatte.dpi(tmp_path / name) is None  # a TIFF without resolution tags: Pillow reports (1, 1)
    turned = Image.Exif()
    turned[0x0112] = 6  # stored sideways: x of the upright image is the stored y
    picture.save(tmp_path / "turned.jpg", dpi=(300, 150), exif=turned.tobytes())
    assert minimatte.dpi(tmp_path / "turned.jpg") == (150, 300)
    assert minimatte.dpi(Image.open(tmp_path / "turned.jpg")) == (300, 150)  # a PIL image is taken as given
    assert minimatte.dpi(np.zeros((2, 2, 3), np.uint8)) is None

    alpha = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    for name in "a.png", "a.jpg", "a.tif", "a.bmp", "a.webp", "a.gif":
        minimatte.save(tmp_path / name, alpha, dpi=(300, 150))
        written = Image.open(tmp_path / name).info.get("dpi")
        assert written is None if name in ("a.webp", "a.gif") else written == pytest.approx((300, 150), rel=1e-4)
    for name, resolution in (("wrapped.jpg", 70000), ("wrapped.png", 6e7), ("wrapped.tif", 5e9), ("one.png", 1)):
        minimatte.save(tmp_path / name, alpha, dpi=(resolution, resolution))
        assert minimatte.dpi(tmp_path / name) is None
    for resolution in (0, -300), (300,), 300, "300", (np.nan, 300), (True, 300):
        with pytest.raises(ValueError, match=r"^dpi: expected \(x, y\) pixels per inch, two positive numbers, as "
                                             r"minimatte.dpi\(image\) returns them, got "):
            minimatte.save(tmp_path / "refused.png", alpha, dpi=resolution)
    assert not (tmp_path / "refused.png").exists()


def test_an_unexpanded_home_folder_is_refused_as_an_output(tmp_path, monkeypatch, capsys):
    """An output path starting with ~ (quoted in a shell, or from a script's "$OUT" set to "~/results") would
    make a folder named '~' in the working folder, which a later `rm -r ~` would take for the home folder: save,
    convert and the command line (before the model loads) refuse it, naming the path meant, and make nothing. A
    '~' folder that exists there is written into."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    meant = repr(str(home / "out" / "a.png"))
    message = f"'~/out/a.png' would make '~' in the working folder, as a leading ~ is not expanded here; give the " \
              f"home folder's path, {meant}"
    alpha = np.zeros((4, 4), np.float32)
    for output in "~/out/a.png", pathlib.Path("~/out/a.png"):
        with pytest.raises(ValueError, match=f"^output: {re.escape(message)}$"):
            minimatte.save(output, alpha)
    with pytest.raises(ValueError, match=f"^destination: {re.escape(message)}$"):
        minimatte.convert.convert("missing.safetensors", "~/out/a.png")  # before the source is read
    image, trimap = work / "i.png", work / "t.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(trimap)
    assert cli.main(["matte", str(image), str(trimap), "-o", "~/out/a.png", "--model", "none"]) == 2
    assert f"minimatte: error: output: {message}\n" in capsys.readouterr().err
    assert sorted(os.listdir(work)) == ["i.png", "t.png"] and not os.listdir(home)
    for empty in "", " ":  # a "$OUT" that is not set: Python's error would be "Is a directory"
        with pytest.raises(ValueError, match=f"^output: expected a path, got {empty!r}$"):
            minimatte.save(empty, alpha)
        with pytest.raises(ValueError, match=f"^destination: expected a path, got {empty!r}$"):
            minimatte.convert.convert("missing.safetensors", empty)
    (work / "~").mkdir()
    minimatte.save("~/out/a.png", alpha)
    assert Image.open(work / "~" / "out" / "a.png").size == (4, 4)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_devices_and_pipes_are_written_in_place(tmp_path):
    """An output that is a device or a pipe (/dev/null to discard it, /dev/stdout, a named pipe) is written in
    place, as a stream of the file's bytes: not replaced by a regular file, which for /dev/null (as root) breaks
    every program that writes to it. Tested on a named pipe (a regression on /dev/null would break the machine)."""
    alpha = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    minimatte.save(tmp_path / "a.png", alpha)
    pipe = tmp_path / "pipe"
    written = read_named_pipe(pipe)
    minimatte.save(pipe, alpha)
    assert written() == (tmp_path / "a.png").read_bytes() and stat.S_ISFIFO(os.stat(pipe).st_mode)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    os.unlink(pipe)
    written = read_named_pipe(pipe)
    assert cli.main(["trimap", str(tmp_path / "mask.png"), "--band", "2", "-o", str(pipe), "-q"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(written()))),
                                  minimatte.trimap_from_mask(mask, band=2))
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_pipes_as_inputs_are_read_once(tmp_path, capsys):
    """The command line reads an input that is a pipe (bash's <(command), a named pipe) once, as it reads '-':
    it was "no such file" for being no regular file. Python's readers, which open a path more than once, refuse
    one clearly instead of reading it half."""
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:20] = 255
    file = io.BytesIO()
    Image.fromarray(mask).save(file, "PNG")
    write_named_pipe(tmp_path / "mask", file.getvalue())
    assert cli.main(["trimap", str(tmp_path / "mask"), "--band", "2", "-o", str(tmp_path / "t.png"), "-q"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "t.png")), minimatte.trimap_from_mask(mask, band=2))
    write_named_pipe(tmp_path / "empty", b"")
    assert cli.main(["trimap", str(tmp_path / "empty"), "-o", str(tmp_path / "e.png")]) == 2
    assert f"minimatte: error: mask: {str(tmp_path / 'empty')!r} is empty\n" in capsys.readouterr().err
    os.mkfifo(tmp_path / "unread")
    with pytest.raises(ValueError, match=r"^image: '.*unread' is a pipe or a device, which can be read only once; "
                                         r"pass what it holds, io.BytesIO\(open\(path, 'rb'\).read\(\)\)$"):
        minimatte.read_image(str(tmp_path / "unread"))
