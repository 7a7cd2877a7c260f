"""Writing results to files: in formats and with options that keep mattes' values, never half-written."""
import contextlib
import functools
import io
import os
import secrets
import shutil
import stat
import tempfile
import zlib

import numpy as np
from PIL import Image, ImageCms

from .backend import to_numpy
from .config import is_integer, is_number
from .processing import (channels_first_hint, clip_overshoot, expanded_home, image_extensions, in_colour_space,
                         integer_hint, is_device_or_pipe, names_a_terminal, native_array, profile_space,
                         torch_batch_hint)

# Pillow's save options per output format, where its defaults do not suit mattes (benchmarks/save.py):
# - PNG: zlib's run-length strategy instead of the default string matching, which finds little in photos'
#   filtered rows: cut-outs and composites are written 4-5x faster, files within a few percent of the size;
# - WebP: lossless, with the colours under transparent pixels kept as PNG keeps them (the default is lossy:
#   mattes came back up to 24 levels in 255 off, composites 100);
# - JPEG (and MPO, JPEG's multi-picture form): quality 95 (OpenCV's default) instead of 75; JPEG is lossy at any
#   quality, PNG is the format for mattes;
# - AVIF: quality 100 without chroma subsampling (the default, 75 and 4:2:0, moved mattes' values by up to 26
#   levels in 255 and colours by 98); mattes then read back exactly, colours within a few levels.
SAVE_OPTIONS = {"PNG": {"compress_type": zlib.Z_RLE}, "WEBP": {"lossless": True, "exact": True},
                "JPEG": {"quality": 95}, "MPO": {"quality": 95}, "AVIF": {"quality": 100, "subsampling": "4:4:4"}}

# The largest resolution (pixels per inch) each format that records one holds, as Pillow writes it: JPEG's JFIF
# density in whole dpi of 16 bits (larger values wrap around), PNG's and BMP's pixels per metre in 31 bits, TIFF's
# rationals of 32. Other formats record none; 1 dpi or less is no resolution (processing.dpi) and left out too.
LARGEST_DPI = {"JPEG": 0xFFFF, "PNG": (2 ** 31 - 1) * 0.0254, "BMP": (2 ** 31 - 1) * 0.0254, "TIFF": 2 ** 32 - 1}

ALPHA_MODES = {8: "L", 16: "I;16", 32: "F"}  # the PIL mode of a matte of `bits` bits
WRITTEN = {"L": "an 8-bit alpha", "I;16": "a 16-bit alpha", "F": "a 32-bit float alpha", "RGBA": "an RGBA cut-out",
           "RGB": "an RGB composite"}


def save(output, result, bits=None, icc_profile=None, dpi=None, format=None):
    """Write a matte, trimap, cut-out or composite to `output` as the command line writes its outputs.

    output: a path, whose extension picks the format (PNG where it has none), or a binary file object, which
            gets a PNG (a TIFF with bits=32). A path is written atomically: on failure no half-written file is
            left (a device or a pipe, /dev/null say, is written in place); a file object gets the whole file in
            one write, or nothing.
    result: infer's float matte (H, W) (or (H, W, 1)) in [0, 1] (a filter's overshoot beyond it clipped:
            processing.clip_overshoot), written as greyscale rounded to the nearest of 256 levels (bits=16: of
            65536, in PNG or TIFF; bits=32: float32 as computed, in TIFF); a uint8 or uint16 (H, W) matte or
            trimap, written as it is; cutout's uint8 (H, W, 4) cut-out or (H, W, 3) composite.
    icc_profile: the colour space (ICC profile bytes) of a cut-out's or composite's colours, those of the image
                 it was cut from (minimatte.icc_profile(image)): written into the file, or where the format holds
                 none (GIF, BMP, PPM) the colours are converted into sRGB. None: sRGB.
    dpi: the resolution (x, y) in pixels per inch of the image the result was made from (minimatte.dpi(image)),
         written into PNG, JPEG, TIFF and BMP files where they can hold it (LARGEST_DPI); the other formats hold
         none. None: none recorded.
    format: the file format for a file object (a web response's buffer), as Pillow names it or by an extension:
            "PNG", "JPEG", "jpg", "WEBP", ... None: PNG (TIFF with bits=32). A path's extension picks its format;
            a format given with one must agree with it.
    A format that cannot hold the result (an RGBA cut-out as JPEG, 16 bits outside PNG and TIFF, HEIF, formats
    that Pillow writes at icon sizes or does not read back: ICO, ICNS, PDF, EPS) is an error before anything is
    written.
    """
    to_file = isinstance(output, (str, os.PathLike))
    if not to_file and not hasattr(output, "write"):
        swapped = isinstance(result, (str, os.PathLike))  # as torchvision's save_image(tensor, fp) takes them
        hint = " (the arguments swapped? it is save(output, result))" if swapped else ""
        raise TypeError(f"output: expected a path or a binary file object, got {type(output).__name__}{hint}")
    if isinstance(output, io.TextIOBase):
        raise TypeError("output: a file opened as text; open it in binary mode ('wb')")
    image = _result_image(result, bits)
    if icc_profile is not None and image.mode not in ("RGB", "RGBA"):
        raise ValueError("icc_profile: mattes and trimaps hold no colours to tag; it is for cut-outs and composites")
    if icc_profile:
        _check_profile(icc_profile)
    if dpi is not None and not (isinstance(dpi, (tuple, list)) and len(dpi) == 2 and
                                all(is_number(value) and value > 0 for value in dpi)):
        raise ValueError(f"dpi: expected (x, y) pixels per inch, two positive numbers, as minimatte.dpi(image) "
                         f"returns them, got {dpi!r}")
    name = os.fspath(output) if to_file else None
    form = output_format(name, format) if to_file else stream_format(format, image.mode)
    check_format(form, image.mode, name, format)
    if icc_profile and not _keeps_profile(form):
        image.info["icc_profile"] = icc_profile
        image, icc_profile = in_colour_space(image, None, "result"), None
    recorded = dpi and all(1 < value <= LARGEST_DPI.get(form, 0) for value in dpi)  # else left out
    options = dict(SAVE_OPTIONS.get(form, {}), **({"icc_profile": icc_profile} if icc_profile else {}),
                   **({"dpi": tuple(map(float, dpi))} if recorded else {}))
    if not to_file:  # encoded whole first: a failure writes nothing
        encoded = io.BytesIO()
        image.save(encoded, format=form, **options)
        output.write(encoded.getvalue())
        output.flush()
        return
    with atomic_output(output) as tmp:
        image.save(tmp, format=form, **options)


def _result_image(result, bits):
    """The PIL image `save` writes for `result` (see there)."""
    if hasattr(result, "__cuda_array_interface__"):  # a CuPy array: to the host
        result = to_numpy(result)
    a = native_array(result, "result") if hasattr(result, "__array__") else None
    if a is not None and a.ndim == 3 and a.shape[2] == 1:  # (H, W, 1): one channel, as the inputs take it
        a = a[..., 0]
    matte = a is not None and a.ndim == 2 and a.dtype in (np.uint8, np.uint16, np.float32, np.float64)
    colours = a is not None and a.ndim == 3 and a.shape[2] in (3, 4) and a.dtype == np.uint8
    if not (matte or colours):
        if a is None:
            got = type(result).__name__
        else:  # colour: only uint8 results have 3 or 4 channels
            layout = channels_first_hint(a.shape, colour=a.dtype == np.uint8) or torch_batch_hint(a.shape)
            got = f"an array of dtype {a.dtype} and shape {a.shape}{integer_hint(a)}{layout}"
        raise TypeError("result: expected a matte (H, W) of floats in [0, 1] or of uint8 or uint16 values, or a "
                        f"uint8 cut-out (H, W, 4) or composite (H, W, 3), got {got}")
    if a.size == 0:
        raise ValueError(f"result: the array is empty, shape {a.shape}")
    if bits is not None and not (is_integer(bits) and bits in ALPHA_MODES):  # 8.0 failed inside a shift
        raise ValueError(f"bits: expected 8, 16 or 32, got {bits!r}")
    if a.dtype.kind != "f":
        if bits is not None and bits != 8 * a.dtype.itemsize:
            raise ValueError(f"bits: a {a.dtype} array is written with its own {8 * a.dtype.itemsize} bits, got "
                             f"bits={bits!r} (bits sets the levels a float matte is rounded to)")
        return Image.fromarray(a)  # "L", "I;16", "RGB" or "RGBA"
    bits = 8 if bits is None else int(bits)
    a = clip_overshoot(a, "result")
    if bits == 32:
        return Image.fromarray(a.astype(np.float32, copy=False))  # mode "F"
    return Image.fromarray(np.rint(a * ((1 << bits) - 1)).astype(np.uint8 if bits == 8 else np.uint16))


def _check_profile(profile):
    """An RGB ICC profile's bytes, or one clear error: a path or the image itself given for its profile, or bytes
    that are no RGB profile, would tag the file with nonsense."""
    if not isinstance(profile, (bytes, bytearray)):
        raise TypeError(f"icc_profile: expected an ICC profile's bytes, as minimatte.icc_profile(image) returns "
                        f"them, got {type(profile).__name__}")
    if len(profile) < 128 or profile[36:40] != b"acsp":  # every ICC header's signature
        raise ValueError("icc_profile: the bytes are not an ICC profile (no 'acsp' signature in their header)")
    space = bytes(profile_space(profile)).decode("latin-1").strip()
    if space != "RGB":
        raise ValueError(f"icc_profile: a profile of the {space} colour space; cut-outs and composites are RGB")


def stream_format(format, mode):
    """The PIL format that save writes to a file object, for an image of PIL `mode`: `format`'s (named_format),
    else PNG, or TIFF for float alphas (mode "F")."""
    return named_format(format)[0] if format is not None else "TIFF" if mode == "F" else "PNG"


def output_format(path, format=None):
    """The PIL format of an output file: its extension's, else `format`'s (named_format), else PNG. A `format` that
    disagrees with the extension is an error, and so is an extension of no format Pillow knows: a typo (".pgn")
    would otherwise get a PNG under a name that viewers cannot open."""
    named = None if format is None else named_format(format)[0]
    extension = os.path.splitext(path)[1].lower()
    if not extension:
        return named or "PNG"
    _refuse_exr(extension, "output", path)
    form = image_extensions().get(extension)
    if form is None:
        raise ValueError(f"output: {extension!r} is no image format's extension that Pillow knows, got {path!r}; "
                         "use .png (or .tif)")
    if named not in (None, form):
        raise ValueError(f"format: {format!r} for {path!r}, whose extension means {form}; give the one, or the "
                         "other")
    return form


def _refuse_exr(extension, name, given):
    """OpenEXR (.exr), compositing software's float format, which Pillow neither reads nor writes: an error that
    says what holds a float matte instead."""
    if extension == ".exr":
        raise ValueError(f"{name}: OpenEXR files are not written here (Pillow has no writer for them), got {given!r}; "
                         "a 32-bit float TIFF (.tif with bits 32, --bits 32) holds the matte as computed, and "
                         "compositing software reads it too")


def named_format(format):
    """(PIL format, file extension) of a format given by its name or an extension, in any case: "JPEG" (.jpeg),
    "jpg" (.jpg), ".TIF" (.tif), "WebP" (.webp)."""
    if not isinstance(format, str):
        raise TypeError(f"format: expected a format's name, such as 'PNG' or 'JPEG', got {type(format).__name__}")
    extensions = image_extensions()
    extension = "." + format.lower().lstrip(".")
    _refuse_exr(extension, "format", format)
    form = extensions.get(extension)
    if form is None:  # a name that is none of its extensions ("JPEG2000"): its first one (.jp2)
        extension = next((known for known, named in extensions.items() if named == format.upper()), None)
        form = extensions.get(extension)
    if form is None:
        raise ValueError(f"format: expected an image format that Pillow knows, such as 'PNG', 'JPEG', 'WEBP' or "
                         f"'TIFF', got {format!r}")
    return form, extension


def check_format(form, mode, output, format=None):
    """Refuse an output of PIL format `form` that cannot hold an image of `mode`: an RGBA cut-out as JPEG (no
    alpha), GIF (alpha 0 or 255 only) or BMP (alpha not read back), 16-bit alphas outside PNG and TIFF (others
    keep 8 bits), float alphas outside TIFF, HEIF, which its plugin writes lossy even at "lossless" quality, ICO
    and ICNS, which Pillow writes at icon sizes (a 30x20 image as 16x11), and formats that it does not read back
    (_round_trip). Errors name the output path, or the `format` where one was given (save's format=, --format),
    and say which extension (or format) to use instead."""
    argument, output = ("output", output) if format is None else ("format", format)
    png, tif = (".png", ".tif") if format is None else ("'PNG'", "'TIFF'")
    if form == "HEIF":
        raise ValueError(f"{argument}: HEIF files are lossy, got {output!r}; use {png}")
    if form in ("ICO", "ICNS"):  # known, not probed: Pillow 9.0 warns on stderr as it reads a resized ICO back
        raise ValueError(f"{argument}: Pillow writes {form} files at icon sizes of its own, not the result's, got "
                         f"{output!r}; use {png}")
    if mode == "I;16" and form not in ("PNG", "TIFF"):
        raise ValueError(f"{argument}: 16-bit alphas need a {png} or {tif} file, got {output!r}")
    if mode == "F" and form != "TIFF":
        raise ValueError(f"{argument}: 32-bit float alphas need a {tif} file, got {output!r}")
    problem = _round_trip(form, mode)
    if problem == "not written":
        opaque = ", or composite it onto a background" if mode == "RGBA" else ""  # e.g. a JPEG on white
        raise ValueError(f"{argument}: {form} files cannot hold {WRITTEN[mode]}, got {output!r}; use {png}{opaque}")
    if problem == "not read":
        raise ValueError(f"{argument}: {form} files are written by Pillow but not read by it (so not by minimatte), "
                         f"got {output!r}; use {png}")


@functools.lru_cache(maxsize=None)
def _round_trip(form, mode):
    """What goes wrong where Pillow writes an image of `mode` as `form` (with SAVE_OPTIONS) and reads it back:
    "not written" (also a cut-out's soft alpha lost), "not read" (PDF, which it only writes; EPS, whose reader
    needs Ghostscript), or "" for nothing."""
    file = io.BytesIO()
    try:
        Image.new(mode, (1, 1), (0, 0, 0, 128)[-Image.getmodebands(mode):]).save(file, format=form,
                                                                               **SAVE_OPTIONS.get(form, {}))
    except (OSError, ValueError, KeyError):
        return "not written"
    try:
        written = Image.open(file)
        written.load()
    except (OSError, ValueError, SyntaxError):
        return "not read"
    if mode == "RGBA" and written.convert("RGBA").getpixel((0, 0))[3] != 128:
        return "not written"
    return ""


@functools.lru_cache(maxsize=None)
def _keeps_profile(form):
    """Whether Pillow writes an ICC profile into files of format `form` (PNG, JPEG, WebP, TIFF; not GIF, BMP, PPM)."""
    file = io.BytesIO()
    try:
        Image.new("RGB", (1, 1)).save(file, format=form, icc_profile=ImageCms.ImageCmsProfile(
            ImageCms.createProfile("sRGB")).tobytes())
        return "icc_profile" in Image.open(file).info
    except (OSError, ValueError, KeyError):  # the save itself then says what is wrong
        return False


def check_output_path(path, name="output"):
    """Refuse an output path that writing would get wrong:
    - an empty (or blank) one;
    - one that starts with a ~ standing for a home folder (~/out.png, quoted in a shell or passed on by a program)
      where nothing of that name is in the working folder: Python does not expand the ~, so writing would make a
      folder (or file) named '~' there, which a later `rm -r ~` would take for the home folder;
    - one that names the terminal a standard stream is on (/dev/stdout, /dev/fd/1, /dev/pts/N where that stream is
      one) or /dev/tty (names_a_terminal), where the file would print as bytes, as the command line refuses `-o -`
      there;
    - an existing file that is read-only: open() would refuse to write it, where atomic_output's rename would
      replace it."""
    path = os.fspath(path)
    if not path.strip():  # `-o "$OUT"` with OUT unset; Python's error for it would be "Is a directory"
        raise ValueError(f"{name}: expected a path, got {path!r}")
    home = expanded_home(path)
    head = path.replace(os.altsep or os.sep, os.sep).split(os.sep, 1)[0]  # "~" or "~user"
    if home and not os.path.lexists(head):
        raise ValueError(f"{name}: {path!r} would make {head!r} in the working folder, as a leading ~ is not expanded "
                         f"here; give the home folder's path, {home!r}")
    if names_a_terminal(path):
        raise ValueError(f"{name}: {path!r} is the terminal, where the file would print as bytes; redirect it (> FILE) "
                         "or pipe it")
    if os.path.isfile(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"{name}: cannot write {path!r} (it is read-only)")


@contextlib.contextmanager
def atomic_output(path, name="output"):
    """Yield a temporary path next to `path` to write to; it is renamed onto `path` only if the block succeeds.
    A device or a pipe (is_device_or_pipe: /dev/null, /dev/stdout) is not replaced: the file is written in the
    system's temporary folder (writers seek, which a pipe cannot) and then copied into it, as a stream.

    The file ends as writing `path` in place would leave it: a symbolic link's target is written, not the link
    replaced, and the permissions are those of the file replaced, else the default for new files (0o666 less the
    umask), not the owner-only 0o600 of tempfile.mkstemp or of a writer that replaces the file it is given
    (safetensors 0.8's save_file does), which would hide outputs from a web server or the other users of a shared
    folder; a read-only file is refused (check_output_path). `name`: the path's argument, for errors, which name
    `path`, not the temporary file."""
    check_output_path(path, name)
    shown = os.fspath(path)
    try:
        if is_device_or_pipe(path):
            with tempfile.TemporaryDirectory(prefix="minimatte-") as folder:
                tmp = os.path.join(folder, "output" + os.path.splitext(path)[1])
                yield tmp
                with open(tmp, "rb") as written, open(path, "wb") as stream:
                    shutil.copyfileobj(written, stream)
            return
        path = os.path.realpath(path)
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = _new_file(directory, os.path.splitext(path)[1])
        mode = stat.S_IMODE(os.stat(tmp).st_mode)
        try:
            yield tmp
            with contextlib.suppress(FileNotFoundError):
                mode = stat.S_IMODE(os.stat(path).st_mode)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as error:  # also the writer's (a full disk)
        raise OSError(f"{name}: cannot write {shown!r} ({error.strerror or error})") from None


def _new_file(directory, suffix):
    """The path of a new empty file in `directory`, created as open() creates files (0o666 less the umask)."""
    while True:
        path = os.path.join(directory, f".minimatte-{secrets.token_hex(8)}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:  # a name taken already (by chance, 1 in 2^64): draw another
            continue
