"""Pixels in and out: reading images and trimaps, normalisation, padding and cropping.

Semantics are those of transformers' VitMatteImageProcessor (what the hub checkpoints are used with):
RGB is rescaled to [0, 1] and normalised with mean/std; the trimap is only rescaled (128 -> 0.50196, never
quantised); the channels are [R, G, B, trimap]; everything is zero-padded bottom/right to a multiple of 32
after normalisation. Unlike the reference, inputs are checked and converted deliberately:

- image: RGB kept; greyscale replicated to RGB; RGBA/LA alpha dropped (as PIL's convert("RGB")). Greyscale or
  CMYK files with an ICC profile of their own become sRGB through it: the reference's convert("RGB") ignores
  the profile, which for CMYK gives other colours than every colour-managed viewer shows.
- trimap: one channel; an RGB(A) trimap is reduced to its grey level (PIL's "L" luma when channels differ);
  a map of class indices (values up to only 1 or 2, or the Oxford-IIIT Pet dataset's 1 to 3) is refused.
- uint8 is 0..255, uint16 is 0..65535 (16-bit values up to only 3-255 are 8-bit values saved in 16 bits: an
  error); float arrays are ambiguous and need `value_range` (1.0 or 255.0).
- files are turned upright by their EXIF orientation (as transformers' load_image); PIL images and arrays are
  used as given (as the processor does). HEIF photos are read where the pillow-heif plugin is installed.
"""
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Tuple

import numpy as np
import PIL
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from .backend import as_array, to_numpy
from .config import ProcessorConfig, is_flag, is_integer, is_number

# Pillow scales a PGM file's values of more than 8 bits to 0..65535 from 9.1 on (9.0: up to the file's maxval)
_PILLOW_VERSION = tuple(int(part) for part in PIL.__version__.split(".")[:2])
_EXIF_ORIENTATION = 0x0112  # the EXIF tag: 1 upright, 2-8 mirrored and/or rotated
_QUARTER_TURNS = (5, 6, 7, 8)  # its values that turn the image by 90 degrees (5 and 7 mirrored too)


def is_file(source):
    """Whether an input is a file to open: a path, or a binary file object (open(path, "rb"), io.BytesIO, a web
    framework's upload), read from its start."""
    return isinstance(source, (str, os.PathLike)) or hasattr(source, "read")


def is_device_or_pipe(path):
    """Whether `path` names an existing file that is neither a regular file nor a folder: a device or a pipe
    (/dev/null, /dev/stdout, a named pipe, bash's <(command)). As an output it is written in place: it holds
    nothing to replace, and replacing /dev/null with a regular file (which root may do) breaks every program
    that writes to it. As an input it can be read only once (the command line reads it so)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def names_a_terminal(path):
    """Whether `path` is the terminal that one of the standard streams is on (/dev/stdout, /dev/stdin, /dev/fd/1,
    /dev/pts/N where that stream is one) or /dev/tty, the name of the process's own terminal whatever its streams
    are, told by stat alone: opening a pipe's path to ask would wait for its other end."""
    try:
        named = os.stat(path)
    except (OSError, ValueError):  # missing: its own error comes later
        return False
    return (any(os.isatty(fd) and os.path.samestat(named, os.fstat(fd)) for fd in (0, 1, 2))
            or _is_controlling_terminal(named))


def _is_controlling_terminal(named):
    try:
        return os.path.samestat(named, os.stat("/dev/tty"))
    except OSError:  # no such device (Windows)
        return False


def check_file(source, name):
    """One clear error where a path names no file: no such file, or a folder. File objects pass. (The command
    line checks its inputs so before it loads the model, which may mean a download.)"""
    if hasattr(source, "read"):
        return
    path = os.fspath(source)
    if os.path.isdir(path):
        raise ValueError(f"{name}: {path!r} is a folder, not an image file")
    if not (os.path.isfile(path) or is_device_or_pipe(path)):
        raise FileNotFoundError(f"{name}: no such file {path!r}{_missing_file_hint(path)}")


def expanded_home(path):
    """The path that a leading ~ (or ~user) in `path` stands for, which a shell expands and Python's open does
    not; None where `path` has none."""
    home = os.path.expanduser(path)
    return home if home != path else None


def _missing_file_hint(path):
    """What a path that names no file may have meant, in parentheses, or "": a URL, which transformers' load_image
    would fetch, a path starting with ~ (expanded_home), or an empty one (`"$IMAGE"` with IMAGE unset)."""
    if not path.strip():
        return " (the name is empty)"
    if "://" in path:
        return " (URLs are not fetched: download the file first)"
    home = expanded_home(path)
    if home and os.path.isfile(home):
        return f" (a leading ~ is not expanded here; the file is {home!r})"
    return ""


def open_image(source, name):
    """A PIL image from a file path or a binary file object, turned upright by its EXIF orientation as
    transformers' load_image does (a phone photo is stored sideways; its trimap is drawn on what viewers show),
    with one clear error for anything that is not an image, and for an animation (which frame is a guess)."""
    return _read_image_file(source, name, _open_upright)


def _read_image_file(source, name, read):
    """read(a path or a seekable binary file object), with one clear error naming `name` for a missing file, a
    folder, a file opened as text and anything that is not an image."""
    if hasattr(source, "read"):
        if isinstance(source, io.TextIOBase):
            raise TypeError(f"{name}: a file opened as text; open image files in binary mode ('rb')")
        shown = getattr(source, "name", None) or f"the {type(source).__name__}"
        if not getattr(source, "seekable", lambda: False)():  # a pipe (standard input): read once, then reread
            source = io.BytesIO(source.read())
    else:
        check_file(source, name)
        source = os.fspath(source)
        shown = repr(source)
        if is_device_or_pipe(source):  # the readers open a path more than once (its profile, then its pixels)
            raise ValueError(f"{name}: {shown} is a pipe or a device, which can be read only once; pass what it "
                             "holds, io.BytesIO(open(path, 'rb').read())")
    try:
        return read(source)
    except _Animation as frames:
        raise ValueError(f"{name}: {shown} is an animation of {frames} frames; minimatte mattes one picture: save "
                         "the frame to matte as a file of its own") from None
    except UnidentifiedImageError:  # its message names the file again, or a file object's repr
        raise ValueError(f"{name}: {shown} is not a readable image "
                         f"({_NOT_AN_IMAGE[stand_in_kind(file_head(source))]})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{name}: {shown} is not a readable image ({error})") from None
    except Image.DecompressionBombError as error:  # Pillow's guard against huge images (no OSError)
        raise ValueError(f"{name}: {shown} is too large to open ({error}); if you trust the file, raise "
                         "PIL.Image.MAX_IMAGE_PIXELS") from None


# Formats whose frames viewers play one after another. MPO's further frames (in a camera's JPEG) are previews
# or depth maps, and a TIFF's further pages may be reduced copies: their first frame is the picture.
ANIMATION_FORMATS = {"GIF", "PNG", "WEBP", "AVIF"}


class _Animation(ValueError):
    """An animated file given for one picture (its first frame, read as the reference reads it, is a guess)."""


def _open_upright(source):
    with _open_file(source) as img:
        if img.format in ANIMATION_FORMATS and getattr(img, "is_animated", False):
            raise _Animation(img.n_frames)
        # EXIF before load: Pillow 9.0 reads a TIFF's EXIF from the file, which load closes.
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation == 1:
            img.load()
            return img
        upright = ImageOps.exif_transpose(img)
        upright.format = img.format  # a copy has none, and _pil_to_array reads it
        resolution = _upright_dpi(img, orientation)
        if resolution:
            upright.info["dpi"] = resolution
        return upright


HEIF_EXTENSIONS = (".heic", ".heif", ".hif")  # image files, whether or not Pillow's plugin for them is registered
# HEIF's major brands of HEVC-coded images: iPhones' .heic photos
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")
# The major brands of MP4 and QuickTime videos, in the same container as HEIF images (and AVIF's, "avif")
_VIDEO_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ", b"M4VP",
                 b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"mmp4", b"MSNV", b"f4v "}


def image_extensions():
    """{extension: PIL format} of every image format Pillow has a plugin for, and HEIF's whether or not its
    plugin is registered yet. Pillow before 9.4, once a program has opened or saved an image, lists only the
    preloaded plugins' (BMP, GIF, JPEG, PPM, PNG) until something calls Image.init: no .tif or .webp, which were
    then written as PNG under their name."""
    Image.init()
    return {**dict.fromkeys(HEIF_EXTENSIONS, "HEIF"), **Image.registered_extensions()}


def _open_file(source):
    """Image.open (of a path or a seekable binary file object), with Pillow's plugin for HEIF files registered
    when it meets one (_read_heif_with_plugin)."""
    try:
        return Image.open(source)
    except UnidentifiedImageError:
        if not _read_heif_with_plugin(source):
            raise
        return Image.open(source)


HEAD_BYTES = 512  # of a file's start, what stand_in_kind reads (tar's mark lies at byte 257)


def file_head(source, size=HEAD_BYTES):
    """The first `size` bytes of a path or a seekable binary file object."""
    if hasattr(source, "read"):
        source.seek(0)
        return source.read(size)
    with open(source, "rb") as file:
        return file.read(size)


def stand_in_kind(head):
    """What a file that begins with the bytes `head` is, of what often stands where an image or a checkpoint was
    meant: "empty"; "Git LFS pointer", what a repository cloned without Git LFS holds in place of its large files;
    "web page" (HTML), what downloading the address of a page that shows a file gives; "SVG drawing"; "OpenEXR
    image", compositing software's float format; "AVIF image", which older Pillows do not read; "video" (MP4,
    QuickTime, WebM, Matroska, AVI); "archive" (ZIP, tar, gzip, 7z, RAR: a dataset as downloaded, say); "NumPy
    array" (.npy, as segmentation pipelines save masks). None for anything else."""
    text = head.lstrip().lower()
    if not head:
        return "empty"
    if head.startswith(b"version https://git-lfs.github.com/spec/"):
        return "Git LFS pointer"
    if text.startswith((b"<!doctype html", b"<html")):
        return "web page"
    if text.startswith(b"<svg") or text.startswith(b"<?xml") and b"<svg" in text:
        return "SVG drawing"
    if head.startswith(b"\x76\x2f\x31\x01"):
        return "OpenEXR image"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):  # read by Pillow's wheels from 11.3 on
        return "AVIF image"
    if (head[4:8] == b"ftyp" and head[8:12] in _VIDEO_BRANDS or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska
            or head.startswith(b"RIFF") and head[8:12] == b"AVI "):
        return "video"
    if head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar":  # ZIP, gzip, 7z, RAR; tar
        return "archive"
    if head.startswith(b"\x93NUMPY"):
        return "NumPy array"
    return None


# What to do about each stand_in_kind, for an image
_NOT_AN_IMAGE = {
    "empty": "the file is empty",
    "Git LFS pointer": "it is a Git LFS pointer, not the image: fetch the file itself with `git lfs pull`",
    "web page": "it is a web page (HTML), not the image: download the image's own address",
    "SVG drawing": "it is an SVG drawing, which Pillow does not read: export it as PNG",
    "OpenEXR image": "it is an OpenEXR image, which Pillow does not read: save it as a 32-bit float TIFF (a matte) "
                     "or a PNG",
    "AVIF image": f"it is an AVIF image, which this Pillow ({PIL.__version__}) does not read; Pillow's wheels read "
                  "it from 11.3 on (pip install -U pillow)",
    "video": "it is a video, which minimatte does not read: extract its frames as images (`ffmpeg -i VIDEO "
             "frames/%05d.png`) and matte that folder with a folder of their trimaps",
    "archive": "it is an archive (ZIP, tar, gzip, 7z or RAR): extract it, and give the image, or the folder of "
               "images for batch mode",
    "NumPy array": "it is a NumPy array file (.npy), which is no image file: save the array as a PNG, or pass "
                   "numpy.load(path) to minimatte in Python",
    None: "no image format that Pillow reads",
}


def _read_heif_with_plugin(source):
    """For a HEIF file, which Pillow reads only through the pillow-heif plugin: register the plugin and return
    True, or raise the error that says how to install it. False for other files. (pillow-heif turns the image
    upright itself and leaves its EXIF orientation at 1.)"""
    head = file_head(source, 12)
    if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
        return False
    try:
        import pillow_heif
    except ImportError:
        raise ValueError("a HEIF (.heic) photo, which Pillow reads with the pillow-heif plugin: "
                         "pip install pillow-heif") from None
    pillow_heif.register_heif_opener()
    return True


_RELATIVE_COLORIMETRIC = 1  # ICC rendering intent: colours inside both gamuts keep their exact colour
# littlecms's flags (Pillow 9 has no ImageCms.Flags). Black point compensation: a CMYK profile's black, ink on
# paper, becomes RGB's black instead of a dark grey, as Photoshop's conversions do by default.
_BLACK_POINT_COMPENSATION = 0x2000
_NO_OPTIMIZATION = 0x0100
_PROFILE_SPACES = {"L": b"GRAY", "LA": b"GRAY", "CMYK": b"CMYK"}  # modes whose RGB needs such a profile


def profile_space(profile):
    """The colour space signature (b"RGB ", b"GRAY", b"CMYK", ...) in an ICC profile's header; None for none."""
    return profile[16:20] if profile else None


def icc_profile(image):
    """The RGB ICC profile (bytes) of an image file or PIL image; None for sRGB: arrays, untagged images and
    greyscale or CMYK images, which are read through their own profile into sRGB. It says which colour space
    the RGB values are in: outputs made of them (cut-outs, composites) carry it on."""
    if is_file(image):
        return _read_image_file(image, "image", _profile_in_header)
    profile = image.info.get("icc_profile") if isinstance(image, Image.Image) else None
    return profile if profile_space(profile) == b"RGB " else None


def _profile_in_header(source):
    with _open_file(source) as img:  # the header only: nothing is decoded
        return icc_profile(img)


def dpi(image):
    """The resolution, (x, y) pixels per inch, that an image file or PIL image records (PNG's pHYs chunk, JPEG's
    JFIF or EXIF density, TIFF's resolution tags), a file's turned upright with it by its EXIF orientation; None
    where it records none or only an aspect ratio. Outputs made of the image carry it on, so that layout software
    places a cut-out at the size of its photo. 1 dpi or less is no resolution: Pillow reports (1, 1) for a TIFF
    without resolution tags, and some encoders write 1 or 0 for "unknown"."""
    if is_file(image):
        return _read_image_file(image, "image", _dpi_in_header)
    recorded = image.info.get("dpi") if isinstance(image, Image.Image) else None
    valid = isinstance(recorded, tuple) and len(recorded) == 2 and all(is_number(v) and v > 1 for v in recorded)
    return tuple(float(value) for value in recorded) if valid else None


def _dpi_in_header(source):
    with _open_file(source) as img:  # the header only: nothing is decoded
        return _upright_dpi(img, img.getexif().get(_EXIF_ORIENTATION, 1))


def _upright_dpi(img, orientation):
    """dpi(img) of the image turned upright by its EXIF `orientation`: x and y trade places in a quarter turn."""
    recorded = dpi(img)
    return recorded[::-1] if recorded and orientation in _QUARTER_TURNS else recorded


def in_colour_space(image, profile, name):
    """An image file or PIL image with its colours in the colour space of ICC `profile` (bytes; None is sRGB),
    relative colorimetric: RGB(A) is converted where its own profile differs (untagged is sRGB); 8-bit
    greyscale or CMYK with a profile of its own becomes RGB (LA: RGBA) through it (PIL's convert("RGB") ignores
    it). A PNG's transparent colour becomes the alpha channel it stands for first (_with_keyed_alpha).
    Arrays and other images are returned as they are: their colour space is not known."""
    if is_file(image):
        image = open_image(image, name)
    if not isinstance(image, Image.Image):
        return image
    _read_pixels(image, name)
    if image.mode in ("L", "RGB") and "transparency" in image.info:  # a conversion would lose the keyed alpha
        keyed = Image.fromarray(_with_keyed_alpha(image, np.asarray(image)))  # -> LA, RGBA
        keyed.info = {key: value for key, value in image.info.items() if key != "transparency"}
        image = keyed
    if image.mode in ("RGB", "RGBA"):
        source = icc_profile(image)
        return image if source == profile else _converted(image, source, profile, image.mode, name)
    own = image.info.get("icc_profile")
    if image.mode not in _PROFILE_SPACES or profile_space(own) != _PROFILE_SPACES[image.mode]:
        return image
    if image.mode == "CMYK":
        return _converted(image, own, profile, "RGB", name)
    # Grey goes through a table of its 256 levels, converted unoptimised: littlecms's optimised 8-bit grey
    # transforms are off by several levels in the shadows (and turn white grey in Pillow 9.0's littlecms).
    levels = _converted(Image.frombytes("L", (256, 1), bytes(range(256))), own, profile, "RGB", name,
                        _NO_OPTIMIZATION)
    rgb = np.asarray(levels)[0][np.asarray(image.getchannel(0))]  # (256, 3)[(H, W)]
    return Image.fromarray(rgb if image.mode == "L" else np.dstack([rgb, image.getchannel(1)]))  # LA -> RGBA


def _converted(image, source, target, mode, name, flags=0):
    """A PIL image converted from ICC profile `source` to `target` (bytes; None is sRGB) as `mode`."""
    def read(data):
        return ImageCms.ImageCmsProfile(io.BytesIO(data)) if data else ImageCms.createProfile("sRGB")
    try:
        return ImageCms.profileToProfile(image, read(source), read(target), _RELATIVE_COLORIMETRIC, outputMode=mode,
                                         flags=_BLACK_POINT_COMPENSATION | flags)
    except (ImageCms.PyCMSError, OSError) as error:
        raise ValueError(f"{name}: cannot convert its colours between ICC profiles ({error})") from None


_STRAIGHT_ALPHA = {"PA": "RGBA", "RGBa": "RGBA", "La": "LA"}  # PIL modes with an alpha, as unpremultiplied ones


def _pil_to_array(img, name, floats=False):
    """A PIL image as an (H, W) or (H, W, C) array, keeping its own value scale. With `floats`, a 32-bit float
    image (mode "F", as TIFF stores mattes) is a float32 array; otherwise it is an error."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img, dtype=np.uint16)
    # PNG and PGM have no 32-bit grey: Pillow reads their 16 bits as "I" (PNG before Pillow 10.3), and so are the
    # images it makes from them, of no file format (a copy, a crop, ImageOps.exif_transpose's result)
    if img.mode == "I" and img.format in ("PNG", "PPM", None):
        if img.format == "PPM" and _PILLOW_VERSION < (9, 1):
            raise ValueError(f"{name}: reading a 16-bit PGM file needs Pillow 9.1 or newer, which scales its "
                             "values to 0..65535; save it as PNG")
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{name}: a 32-bit image (mode 'I') with values beyond 0..65535 is not supported; "
                             "save it as 8 or 16 bit")
        return values.astype(np.uint16)
    if img.mode == "F" and floats:
        return np.asarray(img, dtype=np.float32)
    if img.mode in ("I", "F"):
        only = " (32-bit float files are read as mattes and masks only)" if img.mode == "F" else ""
        raise ValueError(f"{name}: 32-bit image mode {img.mode!r} is not supported{only}; save it as 8 or 16 bit")
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        # An alpha is kept, straight: PIL's "RGB" of premultiplied "RGBa" drops it, and a cut-out's alpha is a matte
        straight = _STRAIGHT_ALPHA.get(img.mode, "RGBA" if "transparency" in img.info else "RGB")
        try:
            img = img.convert(straight)
        except ValueError:  # PIL converts some modes to nothing else (LAB in Pillow 9.0)
            raise ValueError(f"{name}: image mode {img.mode!r} is not supported; save it as RGB(A) or "
                             "greyscale") from None
    return np.asarray(img)


def _read_pixels(img, name):
    """Read a PIL image's pixels: one opened from a file (Image.open) reads them on first use, so an image whose
    file has been closed before (one used after its `with Image.open(...)` block) is one clear error, not Pillow's
    bare AssertionError; so is a file that cannot be decoded."""
    if isinstance(img, ImageFile.ImageFile) and img.tile and (img.fp is None or getattr(img.fp, "closed", False)):
        raise ValueError(f"{name}: the PIL image's file was closed before its pixels were read (as a `with "
                         "Image.open(...)` block closes it); use the image inside the block, load it there "
                         "(.load()), or pass the path")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{name}: the PIL image is not readable ({error})") from None


def _nested_pixels(items):
    """Whether a list (or tuple) holds pixels as nested lists (array.tolist(), JSON) rather than images: a list is
    always a list of images (or of none), never one image."""
    return len(items) > 0 and (isinstance(items[0], (list, tuple)) or is_number(items[0]))


NESTED_PIXELS_HINT = " (pixels as nested lists? pass np.asarray of them)"


def _not_an_image_hint(x):
    """What a value given for an image, but no file, PIL image or array, most likely holds; "" where unknown."""
    if isinstance(x, bytes) and b"\0" not in x and os.path.exists(x):  # as os.listdir(b".") gives names
        return " (a path as bytes: pass os.fsdecode(path))"
    if isinstance(x, (bytes, bytearray, memoryview)):
        return " (a file's contents: wrap them in io.BytesIO)"
    if isinstance(x, (list, tuple)) and len(x):
        return NESTED_PIXELS_HINT if _nested_pixels(x) else f" (a list of {len(x)} images? give them one at a time)"
    return ""


def _as_array(x, name, floats=False):
    """A file, PIL image or array as an array of its stored values (`floats`: see _pil_to_array), a PIL image's
    transparent colour as its alpha channel (_with_keyed_alpha)."""
    if is_file(x):
        x = open_image(x, name)
    if isinstance(x, Image.Image):
        _read_pixels(x, name)
        return _with_keyed_alpha(x, _pil_to_array(x, name, floats))
    if hasattr(x, "__cuda_array_interface__"):
        x = to_numpy(x)
    if not hasattr(x, "__array__"):
        raise TypeError(f"{name}: expected a file path or binary file object, a PIL image or an array, got "
                        f"{type(x).__name__}{_not_an_image_hint(x)}")
    a = native_array(x, name)
    if a.dtype.kind not in "biuf":  # before anything compares its values: strings, objects, complex numbers
        raise _unsupported_dtype(a, name)
    return a


def native_array(x, name):
    """np.asarray(x) in the machine's byte order: an array decoded from big-endian data (np.frombuffer(data,
    ">u2"), a FITS file's) holds the same values as its native copy, and uint16 is checked as the native type.
    `name`: the argument an error names (as_array)."""
    a = as_array(x, name)
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


VALUE_RANGES = (1.0, 255.0)  # the scales a float array's values may be given in


def check_value_range(value_range):
    """value_range is None or one of VALUE_RANGES: the scale of float arrays. Integer arrays are read on their
    type's own (uint8 0..255, uint16 0..65535) whatever it is, so that a float image goes with a uint8 trimap."""
    if value_range is not None and (isinstance(value_range, bool) or value_range not in VALUE_RANGES):
        raise ValueError(f"value_range: expected None, 1.0 or 255.0 (the scale of float arrays' values), got "
                         f"{value_range!r}")


# Integer values that go up to only this are class indices (0/1/2) or a 0/1 mask, not levels of 255 or 65535:
# read as such they would be an all-background trimap or a transparent matte.
CLASS_INDICES = 2

OVERSHOOT = Fraction(1, 8)  # of the value range: how far beyond it clip_overshoot clips a matte's or mask's floats


def _checked(a, name, value_range, overshoot=0):
    """An image's array of stored values, after the checks that it holds an image (not empty, not a mask, not
    8-bit values in 16 bits nor [0, 1] values as floats of value_range 255; floats finite and within value_range,
    or, a matte's or mask's (overshoot=OVERSHOOT), up to `overshoot` of it beyond and clipped into it:
    clip_overshoot)."""
    check_value_range(value_range)
    if a.size == 0 or 0 in a.shape[:2]:
        raise ValueError(f"{name}: image is empty (shape {a.shape})")
    if a.dtype == np.bool_:
        raise TypeError(f"{name}: boolean arrays are masks, not images/trimaps "
                        "(use minimatte.trimap_from_mask for a mask)")
    if a.dtype == np.uint16 and CLASS_INDICES < a.max() <= 255:  # would read as nearly black
        raise ValueError(f"{name}: a 16-bit image whose values go up to only {a.max()} of 65535 (8-bit values "
                         "saved as 16 bits?); save it with 8 bits, or its values times 257")
    if a.dtype in (np.uint8, np.uint16):
        return a
    if np.issubdtype(a.dtype, np.floating):
        if value_range is None:
            raise ValueError(f"{name}: float arrays need value_range=1.0 (values in [0, 1]) or "
                             f"value_range=255.0 (values in [0, 255]), got value_range={value_range!r}")
        a = clip_overshoot(a, name, value_range, overshoot)
        if value_range == 255 and 0 < a.max() <= 1:  # as the 16-bit check above: [0, 1] values
            raise ValueError(f"{name}: float values that go up to only {a.max():g} of value_range=255.0 would read "
                             "as nearly black; for values in [0, 1], pass value_range=1.0")
        return a
    raise _unsupported_dtype(a, name)


def _unsupported_dtype(a, name):
    """The error for an image array of a type that is none of uint8, uint16 and float."""
    return TypeError(f"{name}: unsupported dtype {a.dtype}; expected uint8, uint16 or float{integer_hint(a)}")


def integer_hint(a):
    """For an array of other integers whose values would fit uint8 or uint16 (np.where(mask, 255, 0) makes
    int64), the conversion to name in an error; else ""."""
    if a.size and np.issubdtype(a.dtype, np.integer) and 0 <= a.min() and a.max() <= 65535:
        bits = 8 if a.max() <= 255 else 16
        if a.dtype != np.dtype(f"uint{bits}"):  # a uint8 or uint16 array refused for its shape: none to name
            return f" (its values lie in 0..{a.max()}: for {bits}-bit values, pass .astype(np.uint{bits}))"
    return ""


def clip_overshoot(a, name, value_range=1.0, overshoot=OVERSHOOT):
    """Float values, checked to be finite and to lie in [0, value_range], or for a matte or mask clipped into it
    where they stray beyond it by at most `overshoot` of it: resampling filters ring at a hard edge (enlarging a
    step, Pillow's bicubic overshoots by 7%, its Lanczos by 11%), compositing software keeps such values in float
    mattes, and any use of a matte clips them. Farther out they are an error: values on another scale (0..255 as
    floats, percentages). overshoot=0: images and trimaps, whose values go to the network as they are."""
    if a.size == 0:  # nothing to check (metrics.to_uint8 of an empty matte)
        return a
    lo, hi = a.min(), a.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):  # min and max are NaN where any value is
        raise ValueError(f"{name}: contains NaN or infinite values")
    if 0 <= lo and hi <= value_range:
        return a
    reach = float(overshoot) * value_range
    if -reach <= lo and hi <= value_range + reach:
        return np.clip(a, 0, value_range)
    clipped = f" (up to {overshoot} beyond it, a filter's overshoot, is clipped)" if overshoot else ""
    raise ValueError(f"{name}: values must lie in [0, {value_range:g}]{clipped}, found [{lo:g}, {hi:g}]")


BAND_ROWS = 64  # rows of a full-size image converted to float64 at once (32 bytes a pixel whole: 384 MB at 12 MP)


def row_bands(height):
    """Slices of BAND_ROWS rows covering `height` rows: an image's stored values are made float a band at a time."""
    return [slice(start, min(height, start + BAND_ROWS)) for start in range(0, height, BAND_ROWS)]


def to_unit(a, value_range, dtype=np.float64):
    """_checked values as `dtype` in [0, 1] (before the processor's own rescale is applied), computed in float64.
    Elementwise, so a band of rows converts as it would in the whole image."""
    if a.dtype in (np.uint8, np.uint16):
        # One pass, no float64 temporary: a float32 quotient of these integers is the float64 one rounded to
        # float32 (tests check every uint8 and uint16 value).
        return np.divide(a, np.iinfo(a.dtype).max, dtype=dtype)
    # In the wider of the two types, with no float64 copy of a float32 image: a float32 quotient of float32
    # values is the float64 quotient rounded to float32 (the double rounding of a division is harmless).
    return np.divide(a, value_range, dtype=np.result_type(a.dtype, dtype)).astype(dtype, copy=False)


def _rescaled(a, name, value_range, dtype=np.float64, overshoot=0):
    """Array values as `dtype` in [0, 1], checked (see _checked and to_unit)."""
    return to_unit(_checked(a, name, value_range, overshoot), value_range, dtype)


def _transparent(alpha, name, value_range):
    """Where an alpha channel's stored values (checked as an image's) are below opaque."""
    a = _checked(alpha, name, value_range)
    return a < (np.iinfo(a.dtype).max if a.dtype in (np.uint8, np.uint16) else value_range)


def read_image(image, value_range=None, name="image", dtype=np.float64, opaque=False):
    """An RGB image (path or binary file object, PIL image or array) as float64 (or `dtype`) (H, W, 3) in
    [0, 1]: RGB values as stored, greyscale or CMYK with an ICC profile converted through it into sRGB (see
    icc_profile). An alpha channel is dropped; with opaque=True (a background) transparent pixels in it are an
    error."""
    return to_unit(stored_image(image, value_range, name, opaque), value_range, dtype)


def stored_image(image, value_range, name, opaque=False):
    """read_image's (H, W, 3) array before the rescale to [0, 1]: _checked, in its stored type."""
    if is_file(image):
        image = open_image(image, name)
    a, alpha = _split_alpha(_as_array(in_colour_space(image, icc_profile(image), name), name))
    if opaque and alpha is not None and _transparent(alpha, name, value_range).any():
        raise ValueError(f"{name}: the image has transparent pixels, whose hidden colours a composite would "
                         "show; flatten it onto a colour first, or give no background for an RGBA cut-out")
    if a.ndim == 3 and a.shape[2] == 1 or a.ndim == 2:
        a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB image (or greyscale/RGBA), got shape {a.shape}"
                         + _layout_hint(a.shape, 3))
    return _checked(a, name, value_range)


def read_trimap(trimap, value_range=None, name="trimap", dtype=np.float64):
    """A trimap (0 background, 255 foreground, grey unknown) as float64 (or `dtype`) (H, W) in [0, 1].

    A trimap whose values go up to only 1 or 2 is refused: it is a map of class indices (0/1/2), which the
    network would read as all background; so is one of the values 1 to 3 alone (the Oxford-IIIT Pet dataset's
    1 foreground, 2 background, 3 unknown). So is one with no unknown pixel (a binary mask), which leaves
    nothing to matte, or none grey, only values next to 0 and 255 (a binary mask saved as JPEG).
    Transparency (an alpha channel, or a PNG's transparent colour) is dropped, as PIL's convert("L") drops it,
    where the transparent pixels are black (so that the trimap reads as if flattened onto black); a transparent
    pixel that is not black is refused: it may mean its value (a trimap saved as a part-opaque overlay) or
    background (unpainted, over an editor's white).
    """
    return to_unit(_stored_trimap(trimap, value_range, name), value_range, dtype)


def _stored_trimap(trimap, value_range, name):
    """read_trimap's (H, W) array before the rescale to [0, 1]: _checked, in its stored type."""
    stored = _as_array(trimap, name)
    a, alpha = _checked(_grey_array(stored, name), name, value_range), _split_alpha(stored)[1]
    if alpha is not None and (_transparent(alpha, name, value_range) & (a > 0)).any():
        raise ValueError(f"{name}: has transparent pixels that are not black, which may mean their value or "
                         "background; save it without transparency (flattened onto black where transparent "
                         "means background)")
    levels = a.dtype.kind == "u" or value_range == 255  # floats of range 1 go up to 1 in any trimap
    if levels and a.min() >= 1 and a.max() == 3:  # no 0, so no background, and no level above 3: no grey
        raise ValueError(f"{name}: expected 0 = background, 255 = foreground and grey = unknown, got only values 1 "
                         "to 3, as the Oxford-IIIT Pet dataset's trimaps hold (1 foreground, 2 background, 3 "
                         "unknown): map them to 255, 0 and 128")
    if levels and 0 < a.max() <= CLASS_INDICES:
        raise ValueError(f"{name}: expected 0 = background, {65535 if a.dtype == np.uint16 else 255} = "
                         f"foreground and grey = unknown, got values up to only {a.max():g} (class indices?)")
    top = np.iinfo(a.dtype).max if a.dtype in (np.uint8, np.uint16) else value_range
    if not ((a > 0) & (a < top)).any():
        raise ValueError(f"{name}: no pixel is unknown (grey, between 0 and {top:g}), so there is nothing to "
                         "matte; for a binary mask, build a trimap from it (trimap_from_mask, --mask)")
    low, high = (top * threshold for threshold in MASK_THRESHOLDS)
    if not ((a > low) & (a < high)).any():  # its values between 0 and top lie next to them: JPEG's ringing
        raise ValueError(f"{name}: no pixel is grey (between {low:g} and {high:g}), only values next to 0 and "
                         f"{top:g}, as in a binary mask saved as JPEG; build a trimap from the mask "
                         "(trimap_from_mask, --mask)")
    return a


def read_matte(alpha, name="alpha", dtype=np.float64):
    """An alpha matte as float64 (or `dtype`) (H, W) in [0, 1] (see stored_matte)."""
    return to_unit(*stored_matte(alpha, name), dtype)


def stored_matte(alpha, name="alpha"):
    """A matte's (H, W) stored values, _checked, and their value_range: float mattes (arrays as infer returns
    them, 32-bit float files) in [0, 1], 8- and 16-bit ones on their own scale. A one-channel image, the alpha
    channel of a cut-out (RGBA or LA whose alpha varies), or the grey of other images."""
    a = _as_array(alpha, name, floats=True)
    value_range = 1.0 if np.issubdtype(a.dtype, np.floating) else None
    cut = _transparency(a)
    a = _checked(_grey_array(a, name) if cut is None else cut, name, value_range, OVERSHOOT)
    if a.dtype.kind == "u" and 0 < a.max() <= CLASS_INDICES:
        top = np.iinfo(a.dtype).max
        raise ValueError(f"{name}: values that go up to only {a.max()} of {top} are an alpha of nearly 0 everywhere "
                         f"(a 0/1 mask? class indices?); give them on the scale 0..{top}")
    return a, value_range


def _split_alpha(a):
    """An (H, W, 2 or 4) array (LA, RGBA) as its colours (H, W, 1 or 3) and its alpha channel (H, W); any other
    array as itself and None."""
    if a.ndim == 3 and a.shape[2] in (2, 4):
        return a[:, :, :-1], a[:, :, -1]
    return a, None


def _with_keyed_alpha(image, a):
    """The array `a` of PIL image `image`, with an alpha channel last (as an LA or RGBA image's) where its
    transparency is one colour: a grey or RGB PNG's tRNS chunk, the form PNG optimisers give an LA or RGBA image
    whose transparent pixels share a colour that no opaque pixel has. So an optimised file reads as its original
    in every role (a cut-out as its alpha, a trimap's transparency as read_trimap says). Otherwise `a` itself."""
    key = image.info.get("transparency")
    if not isinstance(key, (int, tuple)) or _split_alpha(a)[1] is not None or a.dtype.kind != "u":
        return a
    opaque = (a.reshape(*a.shape[:2], -1) != np.reshape(key, -1)).any(axis=2)  # a grey key, or an (R, G, B) one
    return np.dstack([a, opaque * np.iinfo(a.dtype).max]).astype(a.dtype)


def _transparency(a):
    """The alpha channel of an (H, W, 2 or 4) array where it varies (a cut-out's), else None."""
    alpha = _split_alpha(a)[1]
    return alpha if alpha is not None and alpha.size and alpha.min() != alpha.max() else None


def _grey_array(image, name):
    """A file, PIL image or array as an (H, W) array of its own type (a trimap's or a matte's); colour is reduced
    to grey, but a photo, in colour at most pixels, is refused (_check_not_a_photo)."""
    a = _split_alpha(_as_array(image, name))[0]  # LA / RGBA: alpha dropped
    if a.ndim == 3 and a.shape[2] == 3:
        if (a[:, :, 0] == a[:, :, 1]).all() and (a[:, :, 0] == a[:, :, 2]).all():  # 9x as fast as against (H, W, 1)
            return a[:, :, 0]
        _check_not_a_photo(a, name)
        if a.dtype == np.uint8:  # PIL's convert("L"): ITU-R 601-2 luma, rounded
            r, g, b = a.astype(np.uint32).transpose(2, 0, 1)
            a = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
        else:  # the same weights, kept in the array's own type (16-bit arrays: PIL has no 16-bit RGB)
            luma = a[:, :, 0] * 0.299 + a[:, :, 1] * 0.587 + a[:, :, 2] * 0.114
            a = np.rint(luma).astype(a.dtype) if a.dtype.kind == "u" else luma
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a one-channel (H, W) image, got shape {a.shape}" + _layout_hint(a.shape, 2))
    return a


PHOTO_COLOUR_SHARE = 0.25  # of a trimap's or matte's pixels in colour that make it a photo (_check_not_a_photo)


def _check_not_a_photo(a, name):
    """An 8- or 16-bit RGB trimap or matte in colour at more than PHOTO_COLOUR_SHARE of its pixels (channels more
    than 1/16 of the range apart) is an error: a photo given in its place (a wrong file, the arguments
    swapped), whose luma would be matted without a word. Trimaps and mattes are grey: one saved as RGB JPEG has
    colour only along its edges, and a few coloured strokes still read as their luma. Each photo of ../shared/data
    has colour so at 25-99% of its pixels."""
    if a.dtype not in (np.uint8, np.uint16):
        return
    spread = a.max(axis=2) - a.min(axis=2)
    share = np.count_nonzero(spread > np.iinfo(a.dtype).max // 16) / spread.size
    if share > PHOTO_COLOUR_SHARE:
        raise ValueError(f"{name}: {share:.0%} of its pixels are in colour, as in a photo, where it should be grey; "
                         "is it the image, or another file given in its place?")


def _layout_hint(shape, dims):
    """What an array of `shape`, not the (H, W[, C]) of `dims` dimensions expected, most likely holds."""
    batch = len(shape) == dims + 1 and f" (a batch of {shape[0]}? give one at a time; infer also takes a list of them)"
    return channels_first_hint(shape, colour=dims == 3) or torch_batch_hint(shape) or batch or ""


def channels_first_hint(shape, colour):
    """For an array of `shape` in torch's (C, H, W) layout, one channel (or 3-4 where `colour`), how to pass it;
    else ""."""
    if len(shape) == 3 and shape[2] > 4 and (shape[0] == 1 or colour and shape[0] in (3, 4)):
        return " (channels first, as torch stores images? pass it as a.transpose(1, 2, 0))"
    return ""


def torch_batch_hint(shape):
    """For an array of `shape` in torch's (B, C, H, W) layout, how to pass one of its images; else ""."""
    if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] > 4:
        return (f" (a batch of {shape[0]} in torch's (B, C, H, W) layout, as transformers' pixel_values and alphas? "
                "give one at a time, as a[0].transpose(1, 2, 0))")
    return ""


@dataclass
class Batch:
    pixel_values: np.ndarray  # (B, 4, Hp, Wp) float32: [R, G, B, trimap], normalised and padded (see preprocess)
    sizes: List[Tuple[int, int]]  # the (H, W) of each input before padding


def preprocess(images, trimaps, config=ProcessorConfig(), value_range=None):
    """Images and trimaps (single, or lists, tuples or generators of equal length) -> a padded, normalised Batch.

    Every item is padded on its own; items must pad to the same size to form one batch. pixel_values is the
    reference's (B, 4, Hp, Wp) as a view of a channels-last array, the network's layout, which it then uses
    without a copy.
    """
    single, images, trimaps = paired(images, trimaps, "trimaps")
    suffixes = [""] if single else [f"[{i}]" for i in range(len(images))]  # the errors' "image[3]: ..."
    return normalised_batch(images, trimaps, config, value_range, suffixes)


def normalised_batch(images, trimaps, config, value_range, suffixes):
    """preprocess's Batch of lists of images and trimaps; suffixes: what each item's errors add to the names
    image and trimap (preprocess: "[i]" in lists, "" for one image)."""
    if not images:
        raise ValueError("images: the batch is empty")
    items = []
    for image, trimap, suffix in zip(images, trimaps, suffixes):
        rgb = stored_image(image, value_range, "image" + suffix)
        alpha_hint = _stored_trimap(trimap, value_range, "trimap" + suffix)
        check_size("trimap" + suffix, alpha_hint.shape, "image", rgb.shape)
        check_not_swapped(rgb, alpha_hint, suffix, lambda a: to_unit(a, value_range))
        items.append((rgb, alpha_hint))
    sizes = [rgb.shape[:2] for rgb, _ in items]
    padded = {_padded_size(s, config) for s in sizes}
    if len(padded) > 1:
        raise ValueError(f"images: a batch must pad to one size, got padded sizes {sorted(padded)}; "
                         "run differently sized images separately")
    (hp, wp), = padded
    pixel_values = np.zeros((len(items), hp, wp, 4), dtype=np.float32)
    for out, (rgb, alpha_hint) in zip(pixel_values, items):
        h, w = rgb.shape[:2]
        for rows in row_bands(h):  # in float64 a band at a time
            _normalize_into(out[rows, :w], to_unit(rgb[rows], value_range), to_unit(alpha_hint[rows], value_range),
                            config)
    return Batch(pixel_values.transpose(0, 3, 1, 2), sizes)  # (B, Hp, Wp, 4) -> (B, 4, Hp, Wp)


def check_not_swapped(rgb, trimap, suffix="", unit=lambda a: a):
    """A grey image of the trimap levels 0, 128 and 255 and no others, given with a trimap of more levels (a
    photo's), is a trimap and an image given the wrong way round: one error instead of a matte of nonsense.
    (A black and white image, a logo say, has no 128.) rgb and trimap are read_image's and read_trimap's, or
    their stored values and `unit`, which turns rgb's into read_image's."""
    def trimap_levels_only(image):
        grey, middle = image[..., 0], image.dtype.type(128 / 255)
        levels = [grey == 0, grey == middle, grey == 1]
        return (image == grey[..., None]).all() and (levels[0] | levels[1] | levels[2]).all() and all(
            level.any() for level in levels)

    if not (trimap_levels_only(unit(rgb[::8, ::8])) and trimap_levels_only(unit(rgb))):
        return
    levels = np.unique(trimap).size
    if levels > 3:
        raise ValueError(f"image{suffix}: it holds only a trimap's levels (0, 128, 255), and the trimap {levels} "
                         "grey levels: are the image and the trimap swapped?")


def _padded_size(size, config):
    if not config.do_pad:
        return tuple(size)
    d = config.size_divisor
    if config.legacy_padding and any(s % d for s in size):
        return tuple(s + d - s % d for s in size)
    return tuple(s + (-s) % d for s in size)


def _normalize_into(out, rgb, trimap, config):
    """[0, 1] float64 inputs -> out (H, W, 4) float32 [R, G, B, trimap]. Values go back to the 8-bit scale first,
    so that rescale_factor means what it means in the reference (v * 1/255 by default), then are rounded to
    float32 and normalised in float32, as the reference does."""
    scale = 255.0 * (config.rescale_factor if config.do_rescale else 1.0)
    out[..., :3] = rgb * scale
    out[..., 3] = trimap * scale
    if config.do_normalize:
        out[..., :3] -= np.float32(config.image_mean)
        out[..., :3] /= np.float32(config.image_std)


def check_size(name, shape, other, other_shape):
    """One clear error where the (H, W) of `name` differs from that of `other` (shapes may have channels)."""
    if tuple(shape[:2]) != tuple(other_shape[:2]):
        raise ValueError(f"{name}: size {shape[0]}x{shape[1]} (HxW) does not match the {other}'s "
                         f"{other_shape[0]}x{other_shape[1]}{_turned_hint(shape[:2], other_shape[:2], other)}"
                         f"{_resized_hint(name, shape[:2], other_shape[:2], other)}")


def _resized_hint(name, size, other_size, other):
    """Where a size has the other's aspect ratio (a trimap drawn on a reduced copy of the image, as an editor's
    preview shows it), the likely cause and the fix as a clause to append to the error; else ''."""
    if size[0] == other_size[0] or size[1] == other_size[1] or not _same_aspect(size, other_size):
        return ""
    how = " (nearest-neighbour sampling keeps its levels)" if name.startswith("trimap") else ""
    return f"; it has the {other}'s aspect ratio: was it made on a resized copy? Resize it to the {other}'s size{how}"


def _same_aspect(size, other_size):
    """Whether two (H, W) have one aspect ratio, up to a pixel's rounding of the sides."""
    (h, w), (other_h, other_w) = size, other_size
    return abs(h * other_w - other_h * w) <= max(h, w)


def _turned_hint(size, other_size, other, aspect_only=False):
    """Where a size (or with aspect_only, its aspect ratio) is the other's turned 90 degrees, the likely cause as
    a clause to append to the error; else ''."""
    turned_other = tuple(other_size[::-1])
    turned = _same_aspect(size, turned_other) if aspect_only else tuple(size) == turned_other
    if not turned:
        return ""
    return (f"; {'its aspect ratio' if aspect_only else 'that'} is the {other}'s turned 90 degrees: files are "
            "turned upright by their EXIF orientation, so was one of them made from a photo's stored pixels?")


def crop(alphas, sizes):
    """(B, 1, Hp, Wp) model output -> list of (H, W) alphas at the inputs' sizes."""
    return [a[0, :h, :w] for a, (h, w) in zip(alphas, sizes)]


def force_known_regions(alpha, trimap, value_range=None):
    """`alpha` (H, W) with the trimap's known pixels forced, in place: 0 where the trimap is 0 (background),
    1 where it is at its top (255, or 65535 in 16 bits: foreground). Returns alpha.

    The reference leaves the network's values there (a trained model's are near 0 and 1, not necessarily
    exactly), and an alpha upsampled from a reduced size (infer's max_size) is blurred across the trimap's edges."""
    hint = read_trimap(trimap, value_range, dtype=np.float32)  # 0 and 1 are exact in float32
    check_size("trimap", hint.shape, "alpha", alpha.shape)
    alpha[hint == 0] = 0
    alpha[hint == 1] = 1
    return alpha


DEFAULT_BAND = 10  # pixels of unknown on each side of a mask's edge
# A soft mask's values (of its range) below the first are certainly background, above the second certainly
# foreground, and between them unknown: 10 and 240 of 255, rembg's defaults for the same job.
MASK_THRESHOLDS = (10 / 255, 240 / 255)


def trimap_from_mask(mask, band=DEFAULT_BAND, thresholds=MASK_THRESHOLDS, value_range=None, size=None):
    """A trimap from a binary or soft mask (e.g. a segmentation model's output, or a rough cut-out's alpha):
    uint8 (H, W).

    A mask with several channels is reduced to one: a cut-out (RGBA or LA whose alpha varies) to its alpha,
    any other to its brightest channel (_mask_plane).
    Values below thresholds[0] (of the mask's value range) are background, above thresholds[1] foreground, and
    those between unknown: a soft edge (hair in a rough cut-out, an unsure segmentation) is the matting's to
    decide. A mask of exactly two values is binary, the higher inside: 0/1 as segmentation tools often save it,
    0/255, a mask drawn in one colour on black. Then each side keeps only its pixels farther than `band` pixels
    (a square neighbourhood) from the other pixels: 255 foreground, 0 background, the band and the soft edge
    unknown (128). band=0 leaves only the soft edge unknown; thresholds=(0.5, 0.5) cuts the mask at one half
    instead. A mask with no foreground, or all foreground, is an error: its trimap would leave nothing to matte.
    size: (H, W) of the image the trimap is for. A mask of another size with the image's aspect ratio (a
    segmentation model's output at its own resolution) is resized to it, bilinearly, before the thresholds;
    another aspect ratio is an error.
    """
    if is_file(mask) or isinstance(mask, Image.Image):
        value_range = 1.0  # of a 32-bit float file (mode "F"); integer values have their own scale
    m = _as_array(mask, "mask", floats=True)
    if m.dtype == np.bool_:
        m = m[..., 0] if m.ndim == 3 and m.shape[2] == 1 else m  # (H, W, 1): one channel, channels-last
    else:
        if m.ndim == 3 and m.shape[2] in (1, 2, 3, 4):
            m = _mask_plane(m)
        m = _binary_if_two_levels(_rescaled(m, "mask", value_range, overshoot=OVERSHOOT))
    if m.ndim != 2 or 0 in m.shape:
        stack = ""
        if m.ndim == 3 and 0 not in m.shape:  # segmentation models (SAM, say) return (N, H, W) stacks
            stack = f" (a stack of {m.shape[0]} masks? pass one of them, e.g. masks[0])"
        raise ValueError(f"mask: expected a non-empty one-channel (H, W) mask, got shape {m.shape}{stack}")
    band = check_integer("band", band, 0, " pixels")
    low, high = check_thresholds(thresholds)
    size = None if size is None else check_image_size(size)
    if size is not None and m.shape != size:
        (h, w), (height, width) = m.shape, size
        if not _same_aspect((h, w), (height, width)):
            raise ValueError(f"mask: size {h}x{w} (HxW) does not match the image's {height}x{width}, nor its "
                             f"aspect ratio{_turned_hint((h, w), (height, width), 'image', aspect_only=True)}")
        m = resize_plane(m, size, Image.BILINEAR)
    foreground, background = (m, ~m) if m.dtype == np.bool_ else (m > high, m < low)
    if background.all():  # e.g. a segmentation model that found nothing
        raise ValueError(f"mask: every pixel is background (below {low:.3g} of its range), so there is nothing to "
                         "matte")
    if not foreground.any():
        raise ValueError(f"mask: no pixel is foreground (above {high:.3g} of its range), so there is nothing to "
                         "matte; a mask this soft needs lower thresholds (0.5 and 0.5 cut it at one half)")
    if foreground.all():
        raise ValueError("mask: every pixel is foreground, so there is no edge to matte")
    trimap = np.full(m.shape, 128, np.uint8)
    trimap[_erode(foreground, band)] = 255
    trimap[_erode(background, band)] = 0
    if not (trimap == 128).any():
        raise ValueError("band: 0 pixels around a mask without a soft edge leaves no pixel unknown, so there is "
                         "nothing to matte; give a band of at least 1 pixel")
    return trimap


def check_flag(name, value):
    """`value` as a bool, where it is True or False (Python's or NumPy's): a string such as "no" or "false" is
    an error, not true."""
    if is_flag(value):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {value!r}")


def paired(images, trimaps, name="trimap"):
    """(single, images, trimaps) as two lists of equal length: one image and its trimap as lists of one; lists,
    tuples or other iterators of them (a generator, map(Image.open, paths)) as lists. `name` is the trimaps'
    argument, for the errors."""
    def many(x):  # a file object is an iterator (of lines) too, but one image
        return isinstance(x, (list, tuple)) or (isinstance(x, Iterator) and not hasattr(x, "read"))
    single = not many(images)
    if single == many(trimaps):
        got = "a list of trimaps for one image" if single else "one trimap for a list of images"
        listed = trimaps if single else images
        hint = NESTED_PIXELS_HINT if isinstance(listed, (list, tuple)) and _nested_pixels(listed) else ""
        raise ValueError(f"{name}: expected as many trimaps as images, both a list (or tuple, or generator) or "
                         f"neither, got {got}{hint}")
    if single:
        return True, [images], [trimaps]
    images, trimaps = list(images), list(trimaps)
    if len(images) != len(trimaps):
        raise ValueError(f"{name}: expected one trimap per image, got {len(trimaps)} for {len(images)}")
    return False, images, trimaps


def check_integer(name, value, least, unit=""):
    """`value` as an int, where it is an integer (is_integer) of at least `least`."""
    if is_integer(value) and value >= least:
        return int(value)
    raise ValueError(f"{name}: expected an integer of at least {least}{unit}, got {value!r}")


def _pair(x):
    """`x` as a tuple of two values where it is a pair (a tuple, list or array of two), else None."""
    try:
        pair = tuple(x)
    except TypeError:
        return None
    return pair if len(pair) == 2 else None


def check_thresholds(thresholds):
    """trimap_from_mask's (background below, foreground above), checked: (low, high)."""
    pair = _pair(thresholds)
    if pair is None or not all(map(is_number, pair)) or not 0 <= pair[0] <= pair[1] <= 1:
        raise ValueError(f"thresholds: expected (background below, foreground above) with 0 <= first <= second "
                         f"<= 1, got {tuple(thresholds) if isinstance(thresholds, list) else thresholds!r}")
    return pair


def check_image_size(size):
    """trimap_from_mask's size, checked: (H, W), two positive integers below 2^31 (as Pillow's sides)."""
    pair = _pair(size)
    if pair is None or not all(is_integer(s) and 0 < s < 2 ** 31 for s in pair):
        hint = " (an image's shape? pass image.shape[:2])" if isinstance(size, tuple) and len(size) == 3 else ""
        raise ValueError(f"size: expected the image's (H, W), two positive integers below 2^31, got {size!r}{hint}")
    return tuple(map(int, pair))


def _binary_if_two_levels(mask):
    """A mask of exactly two values as a boolean mask, the higher one inside (0/1, 0/255, a mask drawn in one
    colour on black: binary whatever its levels); any other mask as it is."""
    low, high = mask.min(), mask.max()
    return mask == high if low < high and ((mask == low) | (mask == high)).all() else mask


def _mask_plane(mask):
    """An (H, W, C) mask's one plane. With an alpha channel (LA, RGBA) that varies, the mask is a cut-out (a
    background remover's, a rough selection) and its alpha is the mask; otherwise the colour channels' maximum:
    a grey mask saved as RGB(A) is its grey, and a mask drawn in any colour on black is inside where coloured."""
    cut = _transparency(mask)
    return _split_alpha(mask)[0].max(axis=2) if cut is None else cut


def _erode(mask, radius):
    """Binary erosion by a (2r+1)^2 square, one axis after the other; the image border does not erode. Along an
    axis each AND of two shifted copies doubles the width of window that an element covers: log2(2r + 1)
    passes over the mask, whatever the radius. A radius of an axis's length or more erodes as that length less
    one does (each window holds the whole axis), so the padding never outgrows the mask."""
    for axis in (0, 1):
        r = min(radius, mask.shape[axis] - 1)
        width = 2 * r + 1
        lines = np.moveaxis(np.pad(mask, [(r, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge"),
                            axis, 0)  # eroded along its first axis
        covered = 1
        while covered < width:
            step = min(covered, width - covered)
            lines = lines[:-step] & lines[step:]  # windows [i, i + covered) and [i + step, ...): both
            covered += step
        mask = np.moveaxis(lines, 0, axis)
    return mask


def resize_plane(plane, size, resample, box=None):
    """A 2-D float array resized by PIL in float32 ("F" mode) to `size` = (H, W); resample e.g. Image.BICUBIC;
    box (left, upper, right, lower): the part of the plane to resize, as PIL's resize takes it (all of it)."""
    img = Image.fromarray(np.asarray(plane, dtype=np.float32))  # a 2-D float32 array is mode "F"
    return np.asarray(img.resize((size[1], size[0]), resample, box))


def reduced_trimap(trimap, size):
    """A trimap (H, W) in [0, 1] at `size` = (H', W') smaller, for max_size's reduced network input: nearest-
    neighbour samples, and unknown (128/255) wherever a reduced pixel covers unknown pixels or both foreground
    and background, which samples alone would miss: an unknown band thinner than a reduced pixel would break up
    into known foreground or background, or vanish."""
    # Means over each reduced pixel's area (the pixels whose centres it holds): exactly 0 only where all of it is
    # 0. So the trimap's is not 0 where it is not all background, and its complement's where not all foreground.
    somewhere_not = [resize_plane(plane, size, Image.BOX) > 0 for plane in (trimap, 1 - trimap)]
    reduced = resize_plane(trimap, size, Image.NEAREST)
    widened = somewhere_not[0] & somewhere_not[1] & ((reduced == 0) | (reduced == 1))  # unknown samples keep their grey
    return np.where(widened, np.float32(128 / 255), reduced)


def enlarge_alpha(alpha, size):
    """max_size's alpha (h, w), computed on the reduced image, at the image's `size` = (H, W): PIL's bicubic
    enlargement in float32, clipped to [0, 1] (it overshoots at hard edges).

    Chosen by measurement (benchmarks/upsampling.py; the README's Large images): of real mattes reduced and
    enlarged back, only Lanczos's came closer to them, and its ringing leaves faint ripples in the known regions;
    the fast guided filter that minimatte used before came out much further off."""
    return np.clip(resize_plane(alpha, size, Image.BICUBIC), 0, 1)
