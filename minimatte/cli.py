"""The `minimatte` command line (also `python -m minimatte`)."""
import argparse
import contextlib
import csv
import functools
import io
import os
import platform
import signal
import sys
import warnings

import numpy as np
import PIL
from PIL import Image

from . import __version__, api, backend, convert, hub, metrics
from .files import (ALPHA_MODES, check_format, check_output_path, named_format, output_format, save,
                    stream_format)
from .foreground import cutout, open_background, stored_background, subject_box
from .processing import (DEFAULT_BAND, MASK_THRESHOLDS, check_file, check_thresholds, dpi, icc_profile,
                         image_extensions, is_device_or_pipe, names_a_terminal, open_image, stored_matte, to_unit,
                         trimap_from_mask)
from .progress import Items


STDIO = "-"  # as an input file: standard input; as the output: standard output (a PNG, or as --format says)


def _check_writable(outputs, mode, format=None):
    """Before any work: refuse an output file whose format (output_format, with --format `format`) cannot hold an
    image of PIL `mode` (check_format), or one whose folder is a file or cannot be written, or that starts with an
    unexpanded ~ or names the terminal (check_output_path).
    STDIO is written as save writes a file object (stream_format); a device or a pipe (/dev/null, /dev/stdout) is
    written in place, not in its folder."""
    for path in outputs:
        if path != STDIO:
            check_output_path(path)
    for folder in {os.path.dirname(os.path.abspath(path)) for path in outputs
                   if path != STDIO and not is_device_or_pipe(path)}:
        existing = folder  # the folder, or the nearest one above it that exists: the rest is made when writing
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
            reason = "permission denied" if os.path.isdir(existing) else f"{existing!r} is a file"
            raise OSError(f"output: cannot write into {folder!r} ({reason})")
    forms = {stream_format(format, mode) if path == STDIO else output_format(path, format): path
             for path in reversed(outputs)}
    for form, path in forms.items():
        check_format(form, mode, path, format)


def _identity(path):
    """What a path names, whatever the spelling: links resolved, case folded where the file system does."""
    return os.path.normcase(os.path.realpath(path))


def _check_not_inputs(jobs, background):
    """Before any work: refuse an output that is one of the input files (an image, trimap, mask or background
    of any job), which writing it would destroy: e.g. -o naming the image folder in batch mode."""
    inputs = [path for image, hint, _ in jobs for path in (image, hint)] + [background]
    read = {_identity(path): path for path in inputs if isinstance(path, str) and path != STDIO and
            os.path.isfile(path)}
    for *_, output in jobs:
        if output != STDIO and _identity(output) in read:
            raise ValueError(f"output: {output!r} is the input file {read[_identity(output)]!r}; writing it would "
                             "destroy it")


def _check_stdio(inputs, output=None, stdout_format=None):
    """Before any work: STDIO ('-') reads one of `inputs` ({label: path}) from standard input, which can be read
    once, or writes the output to standard output as a file of PIL format `stdout_format` (stream_format); neither
    may be a terminal."""
    piped = [label for label, path in inputs.items() if path == STDIO]
    if len(piped) > 1:
        raise ValueError(f"{piped[1]}: standard input ('-') can give one input only, got it for "
                         f"{' and '.join(piped)}")
    unfit = piped and _unfit_for_files(sys.stdin)
    if unfit:
        raise ValueError(f"{piped[0]}: '-' reads it from standard input, which is {unfit}; redirect a file into it "
                         "(< FILE) or pipe one")
    unfit = output == STDIO and _unfit_for_files(sys.stdout)
    if unfit:
        raise ValueError(f"output: '-' writes the {stdout_format} to standard output, which is {unfit}; redirect it "
                         "(> FILE) or pipe it")
    for label, path in inputs.items():  # /dev/stdin, say (outputs: check_output_path)
        if path not in (None, STDIO) and names_a_terminal(path):
            raise ValueError(f"{label}: {path!r} is the terminal; redirect a file into it (< FILE) or pipe one")


def _unfit_for_files(stream):
    """Why a standard stream cannot carry an image file: "closed" (the process started with it closed, <&- or >&-:
    Python leaves it None), "a terminal" (it would wait for one, or print its bytes), or "" where it can."""
    return "closed" if stream is None else "a terminal" if stream.isatty() else ""


def _input(path, label):
    """What input `label` names, for open_image and the readers: a path, or for STDIO, or a pipe such as bash's
    <(command), what it holds, read once when asked for (at most one input is STDIO)."""
    if path == STDIO:
        contents, shown, name = sys.stdin.buffer.read(), "standard input ('-')", "standard input"
    elif is_device_or_pipe(path):
        with open(path, "rb") as pipe:
            contents, shown, name = pipe.read(), repr(path), path
    else:
        return path
    if not contents:  # e.g. a script that meant to redirect a file into it
        raise ValueError(f"{label}: {shown} is empty")
    piped = io.BytesIO(contents)
    piped.name = name  # for errors: "image: standard input is not a readable image (...)"
    return piped


def _output(path):
    """Where `save` writes output `path`: the file, or for STDIO standard output."""
    return sys.stdout.buffer if path == STDIO else path


def _shown(path):
    """An input's name on the progress bar."""
    return "standard input" if path == STDIO else os.path.basename(path)


def _files_by_stem(folder, label):
    """{stem: path} of the image files in `folder`: hidden files, subfolders and files whose extension is no
    image format's (notes.txt) are skipped. Two files with one stem are an error: which of them pairs with the
    other folders' file, and whose output keeps the name, is a guess."""
    files, extensions = {}, image_extensions()
    for name in sorted(os.listdir(folder)):
        (stem, extension), path = os.path.splitext(name), os.path.join(folder, name)
        if name.startswith(".") or extension.lower() not in extensions or not os.path.isfile(path):
            continue
        if stem in files:
            raise ValueError(f"{label}: {os.path.basename(files[stem])!r} and {name!r} in {folder!r} share the name "
                             f"{stem!r}; keep one of them there")
        files[stem] = path
    return files


def _paired_files(folder, *others, names):
    """[(stem, path in folder, path in each other folder)] for every file of `folder`, paired by file stem."""
    stems = [_files_by_stem(other, label) for other, label in zip(others, names[1:])]
    pairs = []
    for stem, path in _files_by_stem(folder, names[0]).items():
        for other, files, label in zip(others, stems, names[1:]):
            if stem not in files:
                raise _unpaired(label, stem, other, path)
        pairs.append((stem, path, *(files[stem] for files in stems)))
    if not pairs:
        raise _no_files(names[0], folder)
    return pairs


def _no_files(label, folder):
    """The error for `folder`, which holds no image files (_files_by_stem): naming a subfolder if it has one, as a
    dataset's images may lie in subfolders, which are not searched."""
    subfolders = sorted(name for name in os.listdir(folder)
                        if not name.startswith(".") and os.path.isdir(os.path.join(folder, name)))
    inside = f"; its subfolders, such as {subfolders[0]!r}, are not searched: give one of them" if subfolders else ""
    return FileNotFoundError(f"{label}: no image files in {folder!r}{inside}")


def _jobs(source, output, hint=None, hint_label="trimap", extension=".png"):
    """(source, hint, output) triples: one file, or each file of a folder, paired by file stem with the hint
    folder's (trimaps, masks or mattes) if there is one. An output folder gets NAME`extension` files."""
    source_label = "image" if hint is not None else hint_label  # `trimap`: the source is the mask
    if output != STDIO:  # an empty one would put a batch's outputs in the working folder
        check_output_path(output)
    if hint is not None and _identity(hint) == _identity(source):  # e.g. a folder of NAME_rgb and NAME_trimap
        if not os.path.isdir(source):
            raise ValueError(f"{hint_label}: {hint!r} is the image itself; give the image's {hint_label}")
        raise ValueError(f"{hint_label}: {hint!r} is the image folder itself, so each image would be its own "
                         f"{hint_label}; put the {hint_label}s in a folder of their own, under the images' names")
    if not os.path.isdir(source):
        # Before the model loads: a misspelt name is no download's wait.
        if source != STDIO:
            check_file(source, source_label)
        if hint is not None and os.path.isdir(hint):
            raise ValueError(f"{hint_label}: {hint!r} is a folder, and the image a file; a folder of "
                             f"{hint_label}s goes with a folder of images")
        if hint not in (None, STDIO):
            check_file(hint, hint_label)
        if os.path.isdir(output) or output.endswith(("/", os.sep)):  # a folder, as in batch mode: NAME.png in it
            if source == STDIO:
                raise ValueError(f"output: {output!r} is a folder, and what standard input gives has no name to "
                                 "name its output file by; give -o a file name")
            output = os.path.join(output, os.path.splitext(os.path.basename(source))[0] + extension)
        return [(source, hint, output)]
    if output == STDIO:
        raise ValueError("output: with an input folder, -o must be a folder, got '-' (standard output)")
    if hint is not None and not os.path.isdir(hint):
        raise ValueError(f"{hint_label}: with an image folder, the {hint_label} must be a folder too, got {hint!r}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"output: with an input folder, -o must be a folder (made if missing), got the file "
                         f"{output!r}")
    for folder, label in ((source, source_label), (hint, hint_label)):
        if folder is not None and os.path.isdir(output) and _identity(output) == _identity(folder):
            raise ValueError(f"output: {output!r} is the {label} folder, where the outputs would be read as "
                             f"{label}s by the next run over it; give them a folder of their own")
    images = _paired_files(source, names=(source_label,))
    pairs = [(stem, path, None) for stem, path in images] if hint is None else _hinted(images, hint, hint_label)
    return _distinct_outputs([(path, other, os.path.join(output, stem + extension)) for stem, path, other in pairs],
                             source_label)


def _hinted(images, folder, label):
    """[(stem, image path, hint path)]: each of `images` ([(stem, path)]) with the file of its stem in the hint
    `folder` (of trimaps, masks or mattes). An image without one gets in its place the error its turn in the batch
    reports, as a bad item's: one missing trimap among a thousand images need not stop the rest. No image with one
    is an error before any work (a wrong folder)."""
    hints = _files_by_stem(folder, label)
    if not hints:
        raise _no_files(label, folder)
    if not hints.keys() & {stem for stem, _ in images}:
        raise FileNotFoundError(f"{label}: no file in {folder!r} has the name of an image in "
                                f"{os.path.dirname(images[0][1])!r} (such as {images[0][0]}.*)")
    return [(stem, path, hints.get(stem) or _unpaired(label, stem, folder, path)) for stem, path in images]


def _unpaired(label, stem, folder, path):
    """The error of the file `path`, whose pair named `stem`.* is not in `folder`."""
    return FileNotFoundError(f"{label}: no file named {stem}.* in {folder!r} for {path!r}")


def _distinct_outputs(jobs, label):
    """The jobs, unless two outputs' names differ only in case (of the images A.jpg and a.png): they are one file
    where file names ignore case (macOS, Windows), and the second would be written over the first."""
    by_folded = {}
    for source, _, output in jobs:
        other = by_folded.setdefault(os.path.basename(output).casefold(), source)
        if other != source:
            raise ValueError(f"{label}: {os.path.basename(other)!r} and {os.path.basename(source)!r} in "
                             f"{os.path.dirname(source)!r} have names that differ only in case, and their outputs "
                             "would be one file where file names ignore case (macOS, Windows); rename one of them")
    return jobs


def _run(jobs, work, progress, batch, stdout_format):
    """work(source, hint, output) for each job, reported by `progress` (progress.Items), with what work returns
    (None, or more to say) added to its line. Outside batch mode the error is raised; in batch mode a failed job
    is reported and skipped, and the run fails at the end. stdout_format: what an output to STDIO is written as
    (stream_format), for its report."""
    failed = 0
    for job in jobs:
        try:
            if isinstance(job[1], FileNotFoundError):  # a batch's image without its trimap (mask, matte)
                raise job[1]
            with _warnings_noted(progress.note, job[0]):
                detail = work(*job)
        except KeyboardInterrupt:
            progress.clear()  # the bar makes way for main's message
            raise
        except (ValueError, TypeError, OSError, MemoryError) as error:  # bad input, missing or unwritable file
            if not batch:
                progress.clear()
                raise
            failed += 1  # an image too large for memory: its arrays are freed by now, and the next may fit
            progress.item_done(f"minimatte: error: {_about(_shown(job[0]), job, error)}", always_show=True)
            continue
        wrote = f"wrote the {stdout_format} to standard output" if job[-1] == STDIO else f"wrote {job[-1]}"
        progress.item_done(wrote if detail is None else f"{wrote}, {detail}")
    if failed:
        raise RuntimeError(f"{failed} of {len(jobs)} {progress.label} failed")  # "images", "masks"


@contextlib.contextmanager
def _warnings_noted(note, source):
    """Warnings raised as `source` is read or worked on (Pillow's of a photo's corrupt EXIF data), each shown as
    note(line), one line that names the file, at the end: Python's own form names no file and prints a line of
    Pillow's source (over the progress bar)."""
    with warnings.catch_warnings(record=True) as heard:
        try:
            yield
        finally:
            for warning in heard:
                note(f"minimatte: warning: {_shown(source)}: {_one_line(warning.message)}")


def _message(error):
    """The one line an error is reported as. NumPy's MemoryError names the array it could not allocate."""
    return f"out of memory: {error or 'an allocation failed'}" if isinstance(error, MemoryError) else str(error)


def _about(item, paths, error):
    """The line that reports an error about an item (a batch's image, evaluate's): the error's, after the item's
    name where it names none of the item's files (`paths`; a check of the values read, "image: a 16-bit ...")."""
    message = _message(error)
    named = any(isinstance(path, str) and repr(path) in message for path in paths)
    return message if named else f"{item}: {message}"


def _matte(args):
    hints = {"trimap": args.trimap, "mask": args.mask, "alpha": getattr(args, "alpha", None)}  # alpha: cutout's
    given = [(label, hint) for label, hint in hints.items() if hint is not None]
    if len(given) != 1:
        options = "a TRIMAP file, --mask MASK" + (", --alpha ALPHA" if args.command == "cutout" else "")
        raise ValueError(f"trimap: give one of {options}, got {' and '.join(label for label, _ in given) or 'none'}")
    (kind, hint), = given
    for option, value in (("band", args.band), ("thresholds", args.thresholds)):
        if value is not None and kind != "mask":
            raise ValueError(f"{option}: --{option} shapes the trimap built from --mask; with {kind} it does nothing")
    band = DEFAULT_BAND if args.band is None else args.band
    thresholds = check_thresholds(args.thresholds or MASK_THRESHOLDS)
    background = getattr(args, "background", None)
    mode = ALPHA_MODES[args.bits] if args.command == "matte" else "RGBA" if background is None else "RGB"
    stdout_format = stream_format(args.format, mode)
    _check_stdio({"image": args.image, kind: hint, "background": background}, args.output, stdout_format)
    # of outputs named in a folder: by --format, else PNG, or TIFF, which holds floats
    extension = named_format(args.format)[1] if args.format else ".tif" if mode == "F" else ".png"
    jobs, batch = _jobs(args.image, args.output, hint, kind, extension), os.path.isdir(args.image)
    _check_not_inputs(jobs, background)
    if args.skip_existing:  # resuming a batch: what an earlier run wrote stays
        remaining = [job for job in jobs if job[-1] == STDIO or not os.path.isfile(job[-1])]
        if len(remaining) < len(jobs) and not args.quiet:
            print(f"minimatte: skipping {len(jobs) - len(remaining)} of {len(jobs)} images, whose output exists",
                  file=sys.stderr)
        jobs = remaining
        if not jobs:
            return
    _check_writable([out for *_, out in jobs], mode, args.format)
    if background is not None:  # an image file (or standard input) decoded once, for every image
        with _warnings_noted(_printer(args.quiet), background):
            background = open_background(_input(background, "background"))
        stored_background(background, (1, 1))  # a bad colour or image is refused before any work
    model = None if kind == "alpha" else api.load(args.model, backend=args.backend, precision=args.precision,
                                                  preprocessing=args.preprocessing,
                                                  progress=not args.quiet)  # mattes given: no network
    progress = Items(len(jobs), "images" if batch else _shown(jobs[0][0]), args.quiet)
    within = progress.within if progress.interactive else None  # reports synchronise a GPU: only when shown

    def work(image, hint, output):
        image, hint = open_image(_input(image, "image"), "image"), _input(hint, kind)  # the image decoded once
        if kind == "alpha":
            alpha = open_image(hint, kind)  # decoded once, for the cut-out and for --crop's box
        else:  # a mask of another size (a segmentation model's, with the image's aspect) is scaled to the image's
            trimap = hint if kind == "trimap" else trimap_from_mask(hint, band, thresholds, size=image.size[::-1])
            try:
                alpha = api.infer(image, trimap, model=model, max_size=args.max_size, progress=within,
                                  force_known=args.force_known)
            except MemoryError as error:  # the network's memory grows with the image: say what shrinks it
                smaller = "a smaller --max-size" if args.max_size else "--max-size, which runs it on a reduced copy"
                raise MemoryError(f"{error or 'an allocation failed'}; the network needs less with {smaller}") from None
        if args.command == "matte":  # with the image's resolution: the matte lies over it in a layout too
            save(_output(output), alpha, bits=args.bits, dpi=dpi(image), format=args.format)
            return
        if not args.raw_colors:
            progress.within(1.0, "foreground colours")
        result = cutout(image, alpha, background, foreground=not args.raw_colors, backend=args.backend,
                        crop=args.crop)
        save(_output(output), result, icc_profile=icc_profile(image), dpi=dpi(image),  # in its colours and size
             format=args.format)
        if args.crop is not None:  # where the trimmed cut-out lay, to place it back there
            return f"cropped to the box {subject_box(alpha, args.crop)} (left, top, right, bottom)"

    _run(jobs, work, progress, batch, stdout_format)


def _trimap(args):
    stdout_format = stream_format(args.format, "L")
    _check_stdio({"mask": args.mask}, args.output, stdout_format)
    extension = named_format(args.format)[1] if args.format else ".png"
    jobs, batch = _jobs(args.mask, args.output, hint_label="mask", extension=extension), os.path.isdir(args.mask)
    _check_not_inputs(jobs, None)
    for output in (out for *_, out in jobs):
        if output_format(output, args.format) == "JPEG":  # lossy: 128 would come back as 127 or 129, not unknown
            given, instead = (repr(output), ".png") if args.format is None else (f"--format {args.format}", "png")
            raise ValueError(f"output: a JPEG file would change the trimap's values, got {given}; use {instead}")
    _check_writable([out for *_, out in jobs], "L", args.format)
    thresholds = check_thresholds(args.thresholds)
    progress = Items(len(jobs), "masks" if batch else _shown(jobs[0][0]), args.quiet)

    def work(mask, _, output):
        save(_output(output), trimap_from_mask(_input(mask, "mask"), args.band, thresholds), format=args.format)
    _run(jobs, work, progress, batch, stdout_format)


def _download(args):
    names = [hub.checkpoint_name(name) for name in args.names]  # a misspelt one before any download's wait
    for name in dict.fromkeys(names):
        print(_printable(hub.download(name, progress=not args.quiet)), flush=True)


def _convert(args):
    if args.destination == STDIO:  # other commands' standard output: here it would be a file named '-'
        raise ValueError("destination: convert writes a file, not standard output; give its name "
                         "(NAME.safetensors, or ./- for a file named '-')")
    check_output_path(args.destination, "destination")  # before a download of the source
    print(_printable(convert.convert(hub.checkpoint_path(args.source), args.destination, args.dtype)))


def _printable(name):
    """A file name as standard output's encoding can write it: what it cannot (a Latin-1 name's undecodable bytes,
    which Python holds as surrogates; any character outside a legacy code page) escaped as stderr escapes it."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return name.encode(encoding, "backslashreplace").decode(encoding)


def _evaluate(args):
    """The metrics' table (Markdown, or with --csv comma-separated at full precision), a row printed as each image
    is scored; then the mean, and a note of ground truths without a prediction (the mean leaves them out)."""
    if args.whole_image and args.trimap is not None:
        raise ValueError("trimap: --whole-image scores every pixel, so no trimap is read; give no TRIMAP_DIR")
    if not args.whole_image and args.trimap is None:
        raise ValueError("trimap: give TRIMAP_DIR, whose unknown region (trimap == 128) is scored, or --whole-image "
                         "to score every pixel")
    if sys.stdout is None:  # started with it closed (>&-)
        raise ValueError("evaluate: standard output, where the scores go, is closed; redirect it (> FILE) or pipe it")
    names = ("pred", "gt") if args.whole_image else ("pred", "gt", "trimap")
    paths = (args.pred, args.gt, args.trimap)[:len(names)]
    _check_stdio(dict(zip(names, paths)))
    folders = [os.path.isdir(path) for path in paths]
    for path, name, folder in zip(paths, names, folders):
        if not folder and path != STDIO:
            check_file(path, name)  # before the table's header
    if not args.whole_image:
        _check_trimap_apart(*paths)
    if all(folders):
        scored = _paired_files(*paths, names=names)
    elif not any(folders):  # one image, whose files need not share a name
        scored = [(os.path.splitext(os.path.basename(args.pred))[0], *paths)]
    else:
        count = "two" if args.whole_image else "three"
        raise ValueError(f"evaluate: give {count} folders (files paired by name) or {count} files, got "
                         f"{', '.join('folder' if folder else 'file' for folder in folders)}")
    columns = list(metrics.METRICS)
    header = ["image"] + [c + (" (x1e3)" if c == "MSE" else "") for c in columns]
    table = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    started = False

    def row(name, scores):
        nonlocal started
        if not started:  # the header comes with the first row: not over an error alone (one image's, or all)
            started = True
            if args.csv:
                table.writerow(header)
            else:
                print(f"| {' | '.join(header)} |")
                print("|---" * len(header) + "|")
        name = _printable(name)
        if args.csv:
            table.writerow([name] + [repr(float(scores[c])) for c in columns])
        else:
            cell = name.replace("|", "\\|")  # Markdown's escape: a | in a file name would end its cell
            print(f"| {cell} | {' | '.join(f'{scores[c]:.3f}' for c in columns)} |")
        sys.stdout.flush()

    rows, failed = [], 0
    for stem, *paths in scored:
        try:
            mattes = [_eight_bit(_input(path, name), name) for path, name in zip(paths, names)]
            if args.whole_image:
                mattes.append(None)  # the trimap: every pixel scored
            rows.append(metrics.evaluate(*mattes))
        except (ValueError, TypeError, OSError) as error:
            if not all(folders):
                error.args = (_about(stem, paths, error),)
                raise
            # As a batch's failed image: the table goes on, and the run fails at the end. Stopping here would leave
            # every later image unscored (and unchecked) for one prediction of the wrong size.
            failed += 1
            print(f"minimatte: error: {_about(stem, paths, error)}", file=sys.stderr, flush=True)
            continue
        row(stem, rows[-1])
    if not all(folders):
        return
    if rows:
        row("mean", {c: sum(scores[c] for scores in rows) / len(rows) for c in columns})
    missing = sorted(set(_files_by_stem(args.gt, "gt")) - {stem for stem, *_ in scored})
    if missing:
        print(f"minimatte: note: {len(missing)} of {len(missing) + len(scored)} ground truths have no prediction in "
              f"{args.pred!r} ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
              + ("the mean leaves them out" if failed else f"the mean is over the {len(rows)} predicted"),
              file=sys.stderr)
    if failed:
        over = f"the mean is over the {len(rows)} scored" if rows else "no mean"
        raise RuntimeError(f"{failed} of {len(scored)} images failed; {over}")


def _check_trimap_apart(pred, gt, trimap):
    """Before any scoring: refuse a trimap folder (or file) that is the prediction's or the ground truth's. Its
    pixels that happen to be 128 would be taken for the unknown region, and scored as if they were (a ground truth
    against itself, all 0, is allowed: a check of the metrics)."""
    for name, what, path in (("pred", "prediction", pred), ("gt", "ground truth", gt)):
        if STDIO not in (path, trimap) and _identity(path) == _identity(trimap):
            if os.path.isdir(trimap):
                raise ValueError(f"trimap: {trimap!r} is the {name} folder too, so each {what} would be its own "
                                 "trimap; give the folder of trimaps")
            raise ValueError(f"trimap: {trimap!r} is the {name} file too, so the {what} would be its own trimap; "
                             "give the trimap file")


def _eight_bit(source, name):
    """A matte file's 8-bit values, as evaluate scores them: 8-bit files as stored (a trimap's too: the metrics say
    what a trimap without 128 lacks), 16-bit ones rounded to the nearest 8-bit value, and floats (32-bit files)
    truncated where they are the prediction, as the reference saves its mattes (metrics.to_uint8; so `matte --bits
    32` then evaluate scores as hustvl's inference and evaluation do), rounded where they are the ground truth."""
    values, value_range = stored_matte(source, name)
    if value_range is not None and name == "pred":
        return metrics.to_uint8(values)
    return np.rint(to_unit(values, value_range) * 255).astype(np.uint8)


def _number(kind, low, high, expected):
    """An argparse type: a `kind` (int or float) from `low` to `high` (None: no bound), checked before any work."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low or high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


def _at_least(minimum):
    return _number(int, minimum, None, f"an integer of at least {minimum} pixels")


def _add_thresholds(sub, default):
    low, high = (round(t * 255) for t in MASK_THRESHOLDS)
    sub.add_argument("--thresholds", type=_number(float, 0, 1, "a number from 0 to 1"), nargs=2,
                     metavar=("LOW", "HIGH"), default=default,
                     help="a soft mask's values below LOW are background, above HIGH foreground, and between them "
                          f"unknown, as fractions of its range (default: {low}/255 and {high}/255; 0.5 0.5 cuts the "
                          "mask at one half)")


def _add_format(sub, default):
    sub.add_argument("--format", help="the format of outputs that -o does not name with an extension: NAME.EXT "
                                      "files in an output folder, and - (standard output); by Pillow's name or an "
                                      f"extension: png, tif, webp, jpg, ... (default: {default})")


def _add_quiet(sub):
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="print nothing but errors: no progress, warnings or line per file written or downloaded")


class _PrintVersion(argparse.Action):
    """--version: the versions a bug report needs, and how forward passes use the cores (a report of slow passes
    shows whether BLAS's threads were steered), a line each: argparse's version action would wrap them."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the versions of minimatte, Python, NumPy and Pillow, and how passes use the "
                              "CPU's cores, and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"minimatte {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, Pillow "
              f"{PIL.__version__})\n{backend.blas_summary()}")
        parser.exit()


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, whose options may also come between and after its positional arguments (`minimatte
    matte a.png -o out.png t.png`, `... a.png --model base t.png`): argparse's parse_intermixed_args, which a parser
    with commands refuses, used for each command's arguments. With parse_args, an optional positional (TRIMAP,
    evaluate's TRIMAP_DIR) given after an option was an unrecognized argument. Arguments with `--` among them
    (`-o out.png -- -a.png t.png`: files named like options) are parsed as parse_args does: parse_intermixed_args
    drops the `--` (on Python 3.9 to 3.13.0 at least) and reads what follows it as options. An argument left over
    is this parser's error, with the command's usage, not the list of commands."""
    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # what the parser of the commands calls
        if self._intermixing:  # parse_known_intermixed_args's own calls, to Python 3.12
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            parse = super().parse_known_args if "--" in args else self.parse_known_intermixed_args
            namespace, extras = parse(args, namespace)
        finally:
            self._intermixing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minimatte", description="ViTMatte image matting without PyTorch.",
        epilog="Exit status: 0 success, 1 missing file / unwritable output / download / out of memory / some batch "
               "items failed, 2 bad input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).")
    parser.add_argument("--version", action=_PrintVersion)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    for name, text in (("matte", "write the alpha matte as a greyscale PNG (8 or 16 bits; or a float TIFF)"),
                       ("cutout", "write the cut-out: estimated foreground colours with the matte as alpha (RGBA PNG), "
                                  "or composited onto --background")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("image", help="RGB image file, or a folder of them (batch mode); any one input file may be "
                                       "- for standard input")
        sub.add_argument("trimap", nargs="?", help="trimap file: 0 background, 255 foreground, grey unknown; "
                                                   "in batch mode a folder, paired with the images by file name")
        sub.add_argument("--mask", help="a mask file (or folder) to build the trimap from, instead of TRIMAP: "
                                        "binary (0/255 or 0/1) or soft (its soft edge unknown, see --thresholds), "
                                        "scaled to the image if its size differs (same aspect ratio); of a cut-out "
                                        "with transparency, its alpha")
        sub.add_argument("--band", type=_at_least(0),
                         help="with --mask: unknown band width in pixels on each side of the edge "
                              f"(default: {DEFAULT_BAND})")
        _add_thresholds(sub, default=None)
        sub.add_argument("-o", "--output", required=True,
                         help="output file (.png; the extension picks the format), - for standard output (a PNG, "
                              "or see --format), or a folder (existing, or ending in /) for NAME.png; in batch mode a "
                              "folder, one NAME.png (or see --format) per image")
        _add_format(sub, "png; tif with --bits 32" if name == "matte" else "png")
        if name == "matte":
            sub.add_argument("--bits", type=int, choices=sorted(ALPHA_MODES), default=8,
                             help="bits per pixel of the alpha image: 8 or 16, rounded to the nearest level (16 "
                                  "needs a .png or .tif output), or 32, float32 as computed, unrounded (a .tif "
                                  "output; an output folder gets NAME.tif files, standard output a TIFF) (default: "
                                  "%(default)s)")
        if name == "cutout":
            sub.add_argument("--background", metavar="COLOR|IMAGE",
                             help="composite onto a colour (name or #rrggbb) or an image instead of writing RGBA")
            sub.add_argument("--alpha", help="a matte file (or folder) to cut out with instead of running the "
                                              "network, e.g. one written by `minimatte matte` and retouched; of a "
                                              "cut-out with transparency, its alpha")
            sub.add_argument("--crop", type=_at_least(0), nargs="?", const=0, metavar="MARGIN",
                             help="cut the result to the box around the subject (its pixels whose alpha is not "
                                  "0), widened by MARGIN pixels on each side (default: 0); the line that "
                                  "reports the file gives the box, (left, top, right, bottom) in the image")
            sub.add_argument("--raw-colors", action="store_true",
                             help="keep the image's colours at soft edges instead of estimating the foreground "
                                  "colours (faster, but edges keep a fringe of the old background)")
        sub.add_argument("--force-known", action="store_true",
                         help="alpha exactly 0 where the trimap is background and 1 where it is foreground "
                              "(default: the network's values there, as the reference)")
        sub.add_argument("--skip-existing", action="store_true",
                         help="leave images whose output file exists alone (to resume an interrupted batch)")
        sub.add_argument("--max-size", type=_at_least(32), metavar="PIXELS",
                         help="cap the network's input at this longer side and enlarge the alpha to the image's size "
                              "(for very large images; loses detail finer than the reduced pixels)")
        sub.add_argument("--model", default=api.DEFAULT_MODEL,
                         help="checkpoint name or hub repo id (owner/name), directory or file (safetensors, or "
                              "PyTorch: .pth, .bin, .ckpt) (default: %(default)s)")
        sub.add_argument("--backend", choices=backend.BACKENDS, default=None,
                         help="array backend (default: $MINIMATTE_BACKEND or numpy)")
        sub.add_argument("--preprocessing", choices=api.PREPROCESSING, default="hf",
                         help="hf: as transformers' processor (RGB mean = std = 0.5); original: as hustvl's "
                              "inference code, with the ImageNet mean and std the checkpoints were trained with "
                              "(default: %(default)s)")
        sub.add_argument("--precision", choices=backend.PRECISIONS, default="float32",
                         help="compute precision; float16 is for GPUs (statistics and softmax stay float32; on "
                              "the CPU it is slower) (default: %(default)s)")
        _add_quiet(sub)
        sub.set_defaults(run=_matte)
    text = "write the trimap that --mask builds from a mask, to inspect or retouch it before matting"
    sub = commands.add_parser("trimap", help=text, description=text + " (0 background, 128 unknown, 255 foreground)")
    sub.add_argument("mask", help="a mask file: binary (0/255 or 0/1) or soft (its soft edge unknown, see "
                                  "--thresholds); of a cut-out with transparency, its alpha; - for standard input; "
                                  "or a folder of them (batch mode)")
    sub.add_argument("--band", type=_at_least(0), default=DEFAULT_BAND,
                     help="unknown band width in pixels on each side of the edge (default: %(default)s)")
    _add_thresholds(sub, default=MASK_THRESHOLDS)
    sub.add_argument("-o", "--output", required=True,
                     help="output file (.png; the extension picks the format, JPEG is refused), - for standard "
                          "output, or a folder (existing, or ending in /) for NAME.png (or see --format); in batch "
                          "mode a folder")
    _add_format(sub, "png")
    _add_quiet(sub)
    sub.set_defaults(run=_trimap)
    sub = commands.add_parser("download", help="download a published checkpoint into the cache",
                              description=f"Download a checkpoint into {hub.cache_dir()} "
                                          "($MINIMATTE_CACHE overrides) and print its directory; with several "
                                          "names, each in turn (all four: for a machine without network). One "
                                          "there already is not fetched again, so in offline mode (such as "
                                          "$HF_HUB_OFFLINE=1) this checks that it is there.")
    sub.add_argument("names", nargs="+", metavar="NAME",
                     help=f"{', '.join(hub.CHECKPOINTS)}, their hub repo ids (hustvl/vitmatte-...), or another "
                          "hub repo of a ViTMatte checkpoint (owner/name; a private one with $HF_TOKEN or the "
                          "token `hf auth login` saved)")
    _add_quiet(sub)
    sub.set_defaults(run=_download)
    sub = commands.add_parser("evaluate", help="SAD, MSE, Grad, Conn of predicted mattes (DIM conventions)",
                              description="Score the mattes in PRED_DIR against GT_DIR on the unknown region "
                                          "(trimap == 128) of TRIMAP_DIR, or with --whole-image on every pixel, "
                                          "files paired by stem, at 8 bits: 16-bit files are rounded to 8 bits, "
                                          "float (32-bit) predictions truncated as the reference saves its mattes "
                                          "(so `matte --bits 32` mattes score as its saved ones), float ground truths "
                                          "rounded. Prints a table with the mean. In folders, an image that cannot "
                                          "be scored (files of different sizes, a trimap without 128, an unreadable "
                                          "file) is reported and left out of the mean, and the exit status is 1. "
                                          "Three files (two with --whole-image) score one image.")
    sub.add_argument("pred", metavar="PRED_DIR", help="predicted mattes (a folder, or one file)")
    sub.add_argument("gt", metavar="GT_DIR", help="ground-truth mattes (a folder, or one file)")
    sub.add_argument("trimap", metavar="TRIMAP_DIR", nargs="?",
                     help="trimaps, unknown = 128 (a folder, or one file); none with --whole-image")
    sub.add_argument("--whole-image", action="store_true",
                     help="score every pixel instead of the unknown region, as hustvl's evaluation does for "
                          "Distinctions-646")
    sub.add_argument("--csv", action="store_true",
                     help="print comma-separated values at full precision instead of a Markdown table")
    sub.set_defaults(run=_evaluate)
    sub = commands.add_parser("convert", help="convert a checkpoint to one safetensors file, without torch",
                              description="Convert an HF model.safetensors / pytorch_model.bin (file or directory, "
                                          "whole or in shards) or an original hustvl .pth into one safetensors file "
                                          "holding its config.")
    sub.add_argument("source", help="a checkpoint file or directory, or a checkpoint name or hub repo id (downloaded "
                                    "into the cache first)")
    sub.add_argument("destination", help="the safetensors file to write (--model and minimatte.load take it)")
    sub.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                     help="storage type; float16 halves the file, compute stays float32 (default: %(default)s)")
    sub.set_defaults(run=_convert)
    return parser


class Terminated(BaseException):
    """SIGTERM (a job scheduler's time limit, `timeout`, `docker stop`, `kill`), raised where the program is, as
    Ctrl-C raises KeyboardInterrupt: a file being written is removed (files.atomic_output), not left behind."""


@contextlib.contextmanager
def _terminate_raises():
    """Within: SIGTERM raises Terminated in the main thread. Elsewhere (cli.main called from another thread)
    the program's own handling stays."""
    def terminated(signum, frame):
        raise Terminated
    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread, where Python runs signal handlers
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _printer(quiet):
    """print(line) to stderr; with --quiet, nothing."""
    return (lambda line: None) if quiet else functools.partial(print, file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None, *, say):
    """A warning outside the files' reading (_warnings_noted) as one line, as errors are shown."""
    say(f"minimatte: warning: {_one_line(message)}")


def _one_line(message):
    """A warning's text on one line, its runs of spaces single (Pillow's EXIF warnings have double spaces)."""
    return " ".join(str(message).split())


def main(argv=None):
    if sys.stderr is None:  # started with it closed (2>&-): messages go nowhere, the exit status still tells
        sys.stderr = open(os.devnull, "w")
    args = build_parser().parse_args(argv)
    backend.keep_freed_memory()  # a batch's later images reuse the memory of the first (see its docstring)
    try:
        with _terminate_raises(), warnings.catch_warnings():
            # The files are the user's own: Pillow's warning from 89 megapixels on (a medium-format camera's photo)
            # would print a line of its source code over the progress; its error beyond 179 stays (processing).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.showwarning = functools.partial(_show_warning, say=_printer(getattr(args, "quiet", False)))
            args.run(args)
    except KeyboardInterrupt:  # Ctrl-C: no traceback; a file being written is removed (files.atomic_output)
        print("minimatte: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("minimatte: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # stdout's reader has gone (`minimatte evaluate ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else Python's exit flush fails again
        return 1
    except (ValueError, TypeError, OSError, RuntimeError, MemoryError) as error:
        print(f"minimatte: error: {_message(error)}", file=sys.stderr)
        return 2 if isinstance(error, (ValueError, TypeError)) else 1
    return 0
