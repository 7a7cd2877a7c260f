"""The `minimatte` command line (also `python -m minimatte`)."""
import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image, ImageColor

from . import api, convert, hub, metrics
from .processing import read_trimap, trimap_from_mask


def _save_atomically(image, path):
    """Write next to the target, then rename: a failure never leaves a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".minimatte-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        image.save(tmp, format=Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG"))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _alpha_image(alpha):
    return Image.fromarray(np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8), mode="L")


def composite(image, alpha, background):
    """alpha * image + (1 - alpha) * background, in 8-bit RGB. background: a colour (name or #hex) or an image
    file, resized (bicubic) to the image's size."""
    rgb = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32)
    try:
        bg = np.broadcast_to(np.float32(ImageColor.getrgb(background)), rgb.shape)
    except ValueError:
        if not os.path.isfile(background):
            raise ValueError(f"background: {background!r} is neither a colour nor an image file") from None
        with Image.open(background) as img:
            bg = np.asarray(img.convert("RGB").resize(rgb.shape[1::-1], Image.BICUBIC), dtype=np.float32)
    a = alpha[..., None]
    return Image.fromarray(np.clip(np.rint(a * rgb + (1 - a) * bg), 0, 255).astype(np.uint8), mode="RGB")


def _matte(args):
    if (args.trimap is None) == (args.mask is None):
        raise ValueError("trimap: give either a TRIMAP file or --mask MASK (not both)")
    trimap = args.trimap if args.mask is None else trimap_from_mask(args.mask, band=args.band)
    model = api.load(args.model, backend=args.backend)
    alpha = api.infer(args.image, trimap, model=model)
    if args.command == "matte":
        _save_atomically(_alpha_image(alpha), args.output)
    elif args.background is None:
        rgba = Image.open(args.image).convert("RGB")
        rgba.putalpha(_alpha_image(alpha))
        _save_atomically(rgba, args.output)
    else:
        _save_atomically(composite(args.image, alpha, args.background), args.output)
    print(f"wrote {args.output}", file=sys.stderr)


def _download(args):
    print(hub.download(args.name))


def _convert(args):
    print(convert.convert(args.source, args.destination, args.dtype))


def _evaluate(args):
    names = sorted(f for f in os.listdir(args.pred_dir) if os.path.isfile(os.path.join(args.pred_dir, f)))
    if not names:
        raise FileNotFoundError(f"pred_dir: no files in {args.pred_dir!r}")
    rows = []
    for name in names:
        paths = [os.path.join(d, name) for d in (args.pred_dir, args.gt_dir, args.trimap_dir)]
        for path in paths[1:]:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no file {path!r} to pair with {paths[0]!r}")
        pred, gt, trimap = (np.rint(read_trimap(p, name=n) * 255).astype(np.uint8)
                            for p, n in zip(paths, ("pred", "gt", "trimap")))
        rows.append((name, metrics.evaluate(pred, gt, trimap)))
    columns = list(metrics.METRICS)
    print(f"| image | {' | '.join(c + (' (x1e3)' if c == 'MSE' else '') for c in columns)} |")
    print("|---" * (len(columns) + 1) + "|")
    for name, scores in rows + [("mean", {c: sum(s[c] for _, s in rows) / len(rows) for c in columns})]:
        print(f"| {name} | {' | '.join(f'{scores[c]:.3f}' for c in columns)} |")


def build_parser():
    parser = argparse.ArgumentParser(prog="minimatte", description="ViTMatte image matting without PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("matte", "write the alpha matte as an 8-bit greyscale PNG"),
                       ("cutout", "write the image with the matte as its alpha channel (RGBA PNG)")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("image", help="RGB image file")
        sub.add_argument("trimap", nargs="?", help="trimap file: 0 background, 255 foreground, grey unknown")
        sub.add_argument("--mask", help="a binary or soft mask file to build the trimap from, instead of TRIMAP")
        sub.add_argument("--band", type=int, default=10,
                         help="with --mask: unknown band width in pixels on each side of the edge (default: %(default)s)")
        sub.add_argument("-o", "--output", required=True, help="output file (.png)")
        if name == "cutout":
            sub.add_argument("--background", metavar="COLOR|IMAGE",
                             help="composite onto a colour (name or #rrggbb) or an image instead of writing RGBA")
        sub.add_argument("--model", default=api.DEFAULT_MODEL,
                         help="checkpoint directory, safetensors file or name (default: %(default)s)")
        sub.add_argument("--backend", choices=("numpy", "cupy"), default=None,
                         help="array backend (default: $MINIMATTE_BACKEND or numpy)")
        sub.set_defaults(run=_matte)
    sub = commands.add_parser("download", help="download a published checkpoint into the cache",
                              description=f"Download a checkpoint into {hub.cache_dir()} "
                                          "($MINIMATTE_CACHE overrides) and print its directory.")
    sub.add_argument("name", choices=sorted(hub.CHECKPOINTS))
    sub.set_defaults(run=_download)
    sub = commands.add_parser("evaluate", help="SAD, MSE, Grad, Conn of predicted mattes (DIM conventions)",
                              description="Score 8-bit mattes in PRED_DIR against GT_DIR on the unknown region "
                                          "(trimap == 128) of TRIMAP_DIR, files paired by name; prints a table.")
    sub.add_argument("pred_dir")
    sub.add_argument("gt_dir")
    sub.add_argument("trimap_dir")
    sub.set_defaults(run=_evaluate)
    sub = commands.add_parser("convert", help="convert a checkpoint to one safetensors file, without torch",
                              description="Convert an HF model.safetensors / pytorch_model.bin (file or directory) "
                                          "or an original hustvl .pth into one safetensors file holding its config.")
    sub.add_argument("source")
    sub.add_argument("destination")
    sub.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                     help="storage type; float16 halves the file, compute stays float32 (default: %(default)s)")
    sub.set_defaults(run=_convert)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f"minimatte: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, (ValueError, TypeError)) else 1
    return 0
