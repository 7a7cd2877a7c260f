"""Preprocessing semantics and input checking."""
import io
import json
import re
import struct
import sys
import zlib

import numpy as np
import pytest
import PIL
from PIL import Image, ImageOps, features
from safetensors.numpy import save_file

import minimatte
from helpers import DATA, PILLOW_VERSION, REFERENCE, cmyk_profile, gamma_profile, grey_profile, recording_opens
from reference import require, torchvision

BULB = DATA / "vitmatte_demo" / "bulb_rgb.png", DATA / "vitmatte_demo" / "bulb_trimap.png"


def test_processor_values_from_published_test():
    expected = json.loads((REFERENCE / "expected_values.json").read_text())["transformers_js_preprocessing_test"]
    batch = minimatte.preprocess(*map(str, BULB))
    assert list(batch.pixel_values.shape) == expected["pixel_values_dims"]
    assert batch.sizes == [(640, 960)]
    flat = batch.pixel_values.reshape(-1)
    for index, value in expected["flat_index_values"].items():
        assert flat[int(index)] == pytest.approx(value, abs=1e-6)
    assert flat.astype(np.float64).mean() == pytest.approx(expected["mean_all"], abs=1e-6)


def test_trimap_is_only_rescaled_and_padding_is_zero():
    image = np.full((33, 40, 3), 255, np.uint8)
    trimap = np.array([[0, 128, 255, 200]] * 10, np.uint8).repeat(10, axis=1)[:, :40].repeat(4, axis=0)[:33]
    pixels = minimatte.preprocess(image, trimap).pixel_values
    assert pixels.shape == (1, 4, 64, 64)  # 33 -> 64, 40 -> 64, bottom/right
    assert set(np.unique(pixels[0, 3, :33, :40])) == {np.float32(v / 255) for v in (0, 128, 255, 200)}
    assert (pixels[0, :3, :33, :40] == 1).all()  # (1 - 0.5) / 0.5
    assert (pixels[0, :, 33:] == 0).all() and (pixels[0, :, :, 40:] == 0).all()
    assert minimatte.preprocess(image[:32, :32], trimap[:32, :32]).pixel_values.shape == (1, 4, 32, 32)
    batch = minimatte.preprocess(iter([image, image[:, :35]]), (trimap, trimap[:, :35]))  # padded alike: one batch
    assert batch.pixel_values.shape == (2, 4, 64, 64) and batch.sizes == [(33, 40), (33, 35)]
    np.testing.assert_array_equal(batch.pixel_values[:1], pixels)
    with pytest.raises(ValueError, match="trimaps: expected one trimap per image, got 1 for 2"):
        minimatte.preprocess([image, image], [trimap])
    with pytest.raises(ValueError, match="^images: the batch is empty$"):
        minimatte.preprocess([], [])
    with pytest.raises(ValueError, match=r"^images: a batch must pad to one size, got padded sizes \[\(64, 64\), "
                                         r"\(64, 96\)\]; run differently sized images separately$"):
        minimatte.preprocess([image, np.zeros((33, 70, 3), np.uint8)], [trimap, np.full((33, 70), 128, np.uint8)])
    with pytest.raises(ValueError, match="trimaps: expected as many trimaps as images, .* got one trimap for a list"):
        minimatte.preprocess([image, image], trimap)


def test_processor_config_is_honoured():
    config = minimatte.ProcessorConfig(image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225))
    image = np.full((32, 32, 3), 51, np.uint8)
    pixels = minimatte.preprocess(image, np.full((32, 32), 128, np.uint8), config).pixel_values
    np.testing.assert_allclose(pixels[0, :3, 0, 0], (0.2 - np.array(config.image_mean)) / config.image_std, rtol=1e-6)
    hf = minimatte.config.processor_from_hf(json.loads((REFERENCE / "hf_config_base" / "preprocessor_config.json")
                                                       .read_text()))
    assert hf == minimatte.ProcessorConfig()
    assert minimatte.ProcessorConfig(image_mean=0.5, size_divisor=np.int64(32)) == minimatte.ProcessorConfig()
    for values, error in ((dict(image_mean="abc"), "image_mean: expected a number or 3 numbers .R, G, B., got 'abc'"),
                          (dict(image_std=None), "image_std: expected a number or 3 numbers .R, G, B., got None"),
                          (dict(image_std=(1, 2)), r"image_std: expected 3 values \(R, G, B\), got 2"),
                          (dict(image_std=(1, 0, 1)), "image_std: values must be non-zero"),
                          (dict(size_divisor="32"), "size_divisor: expected a positive integer, got '32'"),
                          (dict(size_divisor=32.0), "size_divisor: expected a positive integer, got 32.0"),
                          (dict(size_divisor=0), "size_divisor: expected a positive integer, got 0"),
                          (dict(image_mean=float("nan")),
                           r"image_mean: expected finite numbers, got \(nan, nan, nan\)"),
                          (dict(rescale_factor="1/255"), "rescale_factor: expected a positive number, got '1/255'"),
                          (dict(do_pad="false"), "do_pad: expected true or false, got 'false'"),
                          (dict(legacy_padding=1), "legacy_padding: expected true or false, got 1")):
        with pytest.raises(ValueError, match=f"^{error}$"):
            minimatte.ProcessorConfig(**values)
    flags = minimatte.ProcessorConfig(do_pad=np.False_, do_rescale=np.True_).to_dict()
    assert (type(flags["do_pad"]), flags["do_pad"], type(flags["do_rescale"])) == (bool, False, bool)


def test_original_preprocessing(det_state, det_model, tmp_path):
    """hustvl's own preprocessing: float32 v / 255 (torchvision's to_tensor) normalised with the ImageNet mean and
    std, the trimap only rescaled, and both sides padded when either is not a multiple of 32."""
    original = minimatte.config.ORIGINAL_PROCESSOR
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (64, 90, 3), dtype=np.uint8)
    trimap = rng.choice(np.uint8([0, 128, 255]), (64, 90))
    batch = minimatte.preprocess(image, trimap, original)
    assert batch.pixel_values.shape == (1, 4, 96, 96)  # 64 is a multiple of 32 and gets 32 more all the same
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    rgb = (image.astype(np.float32) / np.float32(255) - mean) / std
    np.testing.assert_array_equal(batch.pixel_values[0, :3, :64, :90], rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(batch.pixel_values[0, 3, :64, :90], trimap.astype(np.float32) / np.float32(255))
    assert not batch.pixel_values[0, :, 64:].any() and not batch.pixel_values[0, :, :, 90:].any()
    assert minimatte.preprocess(image[:, :64], trimap[:, :64], original).pixel_values.shape == (1, 4, 64, 64)
    path = tmp_path / "det.safetensors"
    save_file(det_state("small"), str(path))
    model = minimatte.load(str(path), preprocessing="original")
    assert model.processor == original
    alpha = minimatte.infer(image, trimap, model=model)
    np.testing.assert_allclose(alpha, det_model("small")(batch.pixel_values).alphas[0, 0, :64, :90], rtol=0, atol=1e-6)
    assert np.abs(alpha - minimatte.infer(image, trimap, model=det_model("small"))).max() > 1e-3  # not hf's
    with pytest.raises(ValueError, match="preprocessing: expected one of hf, original, got 'imagenet'"):
        minimatte.load(str(path), preprocessing="imagenet")


def test_input_kinds_agree(tmp_path):
    rgba = Image.open(BULB[0])
    assert rgba.mode == "RGBA"
    from_path = minimatte.preprocess(str(BULB[0]), str(BULB[1])).pixel_values
    from_pil = minimatte.preprocess(rgba, Image.open(BULB[1])).pixel_values
    rgb = np.asarray(rgba.convert("RGB"))
    trimap = np.asarray(Image.open(BULB[1]).convert("L"))
    from_array = minimatte.preprocess(rgb, trimap).pixel_values
    from_float = minimatte.preprocess(rgb / 255.0, trimap / 255.0, value_range=1.0).pixel_values
    from_rgb_trimap = minimatte.preprocess(rgb, np.stack([trimap] * 3, -1)).pixel_values
    np.testing.assert_array_equal(from_path, from_pil)
    np.testing.assert_array_equal(from_path, from_array)
    np.testing.assert_array_equal(from_path, from_rgb_trimap)
    assert np.abs(from_float - from_path).max() < 1e-6
    # arrays in the other byte order (as decoded from big-endian data on a little-endian machine): the same values
    swapped = np.dtype(np.uint16).newbyteorder("S")
    deep, deep_trimap = rgb.astype(np.uint16) * 257, trimap.astype(np.uint16) * 257
    np.testing.assert_array_equal(minimatte.preprocess(deep.astype(swapped), deep_trimap.astype(swapped)).pixel_values,
                                  minimatte.preprocess(deep, deep_trimap).pixel_values)


def test_grey_and_coloured_trimaps_convert_like_pil():
    grey = np.array([[10, 200]], np.uint8)
    np.testing.assert_array_equal(minimatte.read_image(grey)[0, 0], [10 / 255] * 3)
    colour = np.full((10, 25, 3), 128, np.uint8)
    colour[:2] = np.random.default_rng(5).integers(0, 256, (2, 25, 3))  # a quarter in colour, or less: a trimap
    expected = np.asarray(Image.fromarray(colour).convert("L")) / 255
    np.testing.assert_array_equal(minimatte.read_trimap(colour), expected)
    strokes = np.full((10, 25, 3), 128, np.uint8)
    strokes[2, :5] = 255, 255, 0  # yellow: red and green alike everywhere, blue not
    grey = np.asarray(Image.fromarray(strokes).convert("L"))
    np.testing.assert_array_equal(minimatte.read_trimap(strokes), grey / 255)
    deep = colour.astype(np.uint16) * 257  # 16-bit RGB arrays: PIL's weights, rounded in 16 bits
    luma = deep[..., 0] * 0.299 + deep[..., 1] * 0.587 + deep[..., 2] * 0.114
    np.testing.assert_array_equal(minimatte.read_trimap(deep), np.rint(luma) / 65535)
    np.testing.assert_allclose(minimatte.read_trimap(deep / 65535, value_range=1.0), luma / 65535, atol=1e-12)
    np.testing.assert_allclose(minimatte.read_trimap(deep), expected, atol=0.5 / 255)  # the 8-bit luma's


def test_a_photo_given_as_the_trimap_or_matte_is_refused(tmp_path):
    """Trimaps and mattes are grey: an RGB one in colour at most pixels is a photo given in its place (a wrong file,
    the arguments swapped), an error rather than a matte of its luma. Its luma (a grey photo) is not refused."""
    photo = DATA / "vitmatte_demo" / "bulb_rgb.png"
    for read in minimatte.read_trimap, minimatte.processing.read_matte:
        with pytest.raises(ValueError, match=r"\d+% of its pixels are in colour, as in a photo, where it should be"):
            read(photo)
    deep = np.asarray(Image.open(photo).convert("RGB")).astype(np.uint16) * 257
    with pytest.raises(ValueError, match="in colour, as in a photo"):
        minimatte.read_trimap(deep)
    grey = tmp_path / "grey.png"
    Image.open(photo).convert("L").convert("RGB").save(grey)
    minimatte.read_trimap(grey)


def test_every_photo_of_the_data_is_refused_as_a_trimap_and_every_trimap_read_as_jpeg():
    """The threshold of _check_not_a_photo on real data: each photo of ../shared/data is refused as a trimap, and
    each trimap there, saved as an RGB JPEG (whose compression could put colour along its edges), still reads."""
    photos = [*(DATA / "vitmatte_demo").glob("*_rgb.png"), DATA / "pymatting_lemur" / "lemur.png",
              *(DATA / "alphamatting" / "input_training_lowres").glob("*.png")]
    trimaps = [*(DATA / "vitmatte_demo").glob("*_trimap.png"), DATA / "pymatting_lemur" / "lemur_trimap.png",
               *(DATA / "alphamatting" / "trimap_training_lowres" / "Trimap1").glob("*.png")]
    assert len(photos) == 31 and len(trimaps) == 31
    for photo in photos:
        with pytest.raises(ValueError, match="in colour, as in a photo"):
            minimatte.read_trimap(photo)
    for trimap in trimaps:
        for quality in 50, 75, 95:
            saved = io.BytesIO()
            Image.open(trimap).convert("RGB").save(saved, "JPEG", quality=quality)
            minimatte.read_trimap(Image.open(saved))


def test_trimaps_with_transparency():
    """Transparency is dropped where the transparent pixels are black, as a drawing tool leaves what is not painted
    (the trimap reads as if flattened onto black); a transparent pixel that is not black is an error: its value
    or background?"""
    grey = np.array([[0, 128, 255, 0], [0, 64, 255, 255]], np.uint8)
    alpha = np.array([[0, 255, 255, 255], [0, 200, 255, 255]], np.uint8)
    drawn = np.dstack([grey, grey, grey, np.where(grey > 0, 255, alpha)])  # unpainted: transparent black
    expected = grey / 255
    file = io.BytesIO()
    Image.fromarray(drawn).save(file, format="PNG")
    keyed = {}  # saved as PNG optimisers store binary transparency: grey or RGB and one colour transparent (tRNS)
    for mode, key in (("L", 0), ("RGB", (0, 0, 0)), ("L", 255), ("RGB", (255, 255, 255))):
        keyed[mode, key] = io.BytesIO()
        Image.fromarray(drawn[..., 0] if mode == "L" else drawn[..., :3]).save(keyed[mode, key], "PNG",
                                                                                transparency=key)
    for trimap, value_range in ((drawn, None), (np.dstack([grey, drawn[..., 3]]), None), (file, None),
                                (drawn.astype(np.uint16) * 257, None), (drawn / 255, 1.0), (keyed["L", 0], None),
                                (keyed["RGB", (0, 0, 0)], None)):
        np.testing.assert_array_equal(minimatte.read_trimap(trimap, value_range), expected)
    white = np.dstack([np.where(alpha > 0, grey, 255)] * 3 + [alpha])  # an editor's transparent white
    overlay = np.dstack([grey] * 3 + [np.full_like(grey, 128)])  # saved at half opacity, to lay over the image
    image = np.zeros((2, 4, 3), np.uint8)
    for trimap, value_range in ((white, None), (overlay, None), (overlay.astype(np.uint16) * 257, None),
                                (overlay / 255, 1.0), (np.dstack([grey, alpha]), None), (keyed["L", 255], None),
                                (keyed["RGB", (255, 255, 255)], None)):
        with pytest.raises(ValueError, match="^trimap: has transparent pixels that are not black, which may mean"):
            minimatte.read_trimap(trimap, value_range)
        if hasattr(trimap, "seek"):
            trimap.seek(0)
        with pytest.raises(ValueError, match="^trimap: has transparent pixels that are not black"):
            minimatte.preprocess(image if value_range is None else image / 255.0, trimap, value_range=value_range)


def test_original_preprocessing_is_hustvls_with_torchvision():
    """preprocessing="original" gives the network input of hustvl's inference: torchvision's to_tensor of the RGB
    image and the "L" trimap, the model's preprocess_inputs (ImageNet statistics as float32 buffers, both sides
    padded with zeros when either is not a multiple of 32)."""
    to_tensor = torchvision().transforms.functional.to_tensor
    import torch
    rng = np.random.default_rng(4)
    image = Image.fromarray(rng.integers(0, 256, (64, 90, 3), dtype=np.uint8))
    trimap = Image.fromarray(rng.integers(0, 256, (64, 90), dtype=np.uint8))
    mean = torch.tensor([123.675 / 255, 116.280 / 255, 103.530 / 255]).view(-1, 1, 1)
    std = torch.tensor([58.395 / 255, 57.120 / 255, 57.375 / 255]).view(-1, 1, 1)
    inputs = torch.cat(((to_tensor(image) - mean) / std, to_tensor(trimap)))[None]  # (1, 4, 64, 90)
    padded = torch.zeros(1, 4, 64 + 32, 90 + 32 - 90 % 32)
    padded[:, :, :64, :90] = inputs
    ours = minimatte.preprocess(image, trimap, minimatte.config.ORIGINAL_PROCESSOR).pixel_values
    np.testing.assert_array_equal(ours, padded.numpy())


def test_optimised_pngs_read_as_their_originals():
    """A PNG optimiser stores an LA or RGBA image whose alpha is 0 and 255 only, its transparent pixels of one colour
    that no opaque pixel has, as grey or RGB with that colour transparent (tRNS): lossless, so every role reads it
    as it reads the original (a cut-out's alpha as a matte and a mask; before, a keyed matte read as its colours)."""
    cut = np.zeros((8, 12), np.uint8)
    cut[2:6, 3:9] = 1
    rng = np.random.default_rng(5)
    colours = rng.integers(1, 255, (8, 12, 3), dtype=np.uint8) * cut[..., None]  # transparent pixels black
    originals = {"LA": np.dstack([colours[..., 0], cut * 255]), "RGBA": np.dstack([colours, cut * 255])}

    def png(a, **options):
        file = io.BytesIO()
        Image.fromarray(a).save(file, "PNG", **options)
        return file

    for mode, original in originals.items():
        stored = original[..., :-1]
        keyed = png(stored[..., 0], transparency=0) if mode == "LA" else png(stored, transparency=(0, 0, 0))
        assert Image.open(keyed).mode == mode[:-1]
        for read in (minimatte.read_image, minimatte.processing.read_matte,
                     lambda file: minimatte.trimap_from_mask(file, band=1)):
            np.testing.assert_array_equal(read(png(original)), read(keyed))
        np.testing.assert_array_equal(minimatte.processing.read_matte(keyed), cut)
        with pytest.raises(ValueError, match="^background: the image has transparent pixels"):
            minimatte.processing.read_image(keyed, name="background", opaque=True)
    # 16-bit grey (Pillow has no 16-bit LA to compare with), its tRNS chunk put in by hand: Pillow 9.0 writes none
    stored = png(np.where(cut > 0, 40000, 0).astype(np.uint16)).getvalue()
    at = stored.index(b"IDAT") - 4
    keyed = stored[:at] + _png_chunk(b"tRNS", (0).to_bytes(2, "big")) + stored[at:]
    np.testing.assert_array_equal(minimatte.processing.read_matte(io.BytesIO(keyed)), cut)


def test_sixteen_bit_files(tmp_path):
    levels = np.array([[0, 32896, 65535], [1, 40000, 65534]], np.uint16)
    for name in ("t.png", "t.tif"):
        Image.fromarray(levels).save(tmp_path / name)
        np.testing.assert_array_equal(minimatte.read_trimap(tmp_path / name), levels / 65535)
    # Pillow before 10.3 opens a 16-bit grey PNG in 32-bit mode "I" (PNG has no 32-bit grey), and its copies,
    # crops and turns are "I" images of no format; from other formats a mode-"I" image stays an error.
    opened = Image.open(tmp_path / "t.png").convert("I")
    opened.format = "PNG"
    np.testing.assert_array_equal(minimatte.read_trimap(opened), levels / 65535)
    turned = ImageOps.exif_transpose(opened).crop((0, 0, 3, 2))
    assert (turned.mode, turned.format) == ("I", None)
    np.testing.assert_array_equal(minimatte.read_trimap(turned), levels / 65535)
    opened.format = "TIFF"
    with pytest.raises(ValueError, match="32-bit image mode 'I' is not supported"):
        minimatte.read_trimap(opened)
    for beyond in -1, 65536:
        with pytest.raises(ValueError, match=r"^trimap: a 32-bit image \(mode 'I'\) with values beyond 0..65535"):
            minimatte.read_trimap(Image.fromarray(np.int32([[0, 128, beyond]])))
    # PGM too (as OpenCV's imwrite writes 16-bit grey to .pgm): values of any maxval above 255, which Pillow reads
    # as "I", scaled to 16 bits (Pillow 9.0 leaves them on the maxval's scale: an error there)
    for maxval in 65535, 4095:
        stored = levels.astype(int) * maxval // 65535
        (tmp_path / "t.pgm").write_bytes(b"P5 3 2 %d\n" % maxval + stored.astype(">u2").tobytes())
        if PILLOW_VERSION < (9, 1):
            with pytest.raises(ValueError, match="^trimap: reading a 16-bit PGM file needs Pillow 9.1 or newer"):
                minimatte.read_trimap(tmp_path / "t.pgm")
            continue
        for read in minimatte.read_trimap, minimatte.processing.read_matte:
            np.testing.assert_array_equal(read(tmp_path / "t.pgm"), np.round(stored * (65535 / maxval)) / 65535)
    # an 8-bit trimap converted to 16 bits as PIL converts it (values kept) would read as almost all background
    Image.fromarray(np.uint8([[0, 128, 255]])).convert("I;16").save(tmp_path / "kept.png")
    for read in minimatte.read_trimap, minimatte.read_image, minimatte.processing.read_matte:
        with pytest.raises(ValueError, match=r"a 16-bit image whose values go up to only 255 of 65535 \(8-bit values "
                                             r"saved as 16 bits\?\); save it with 8 bits, or its values times 257"):
            read(tmp_path / "kept.png")
    # 16-bit colour (a raw converter's RGB PNG, which Pillow cannot write): read as Pillow reads it, its 8 high bits,
    # as the reference reads it
    colour = np.array([[[7, 1007, 65535], [300, 40000, 256]]], np.uint16)
    (tmp_path / "rgb16.png").write_bytes(_png(colour, bit_depth=16, colour_type=2))
    np.testing.assert_array_equal(minimatte.read_image(tmp_path / "rgb16.png"), (colour >> 8) / 255)


def _png(pixels, bit_depth, colour_type):
    """A PNG file of `pixels` (H, W, channels), unfiltered."""
    rows = b"".join(b"\0" + row.astype(f">u{bit_depth // 8}").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def _png_chunk(kind, data):
    """A PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_float_files_are_mattes_and_masks(tmp_path):
    """32-bit float files (TIFF mode "F", as compositing tools write mattes) are read as mattes and masks, their
    values in [0, 1] as they are; as images and trimaps, whose float values have no agreed scale, they are refused."""
    rng = np.random.default_rng(3)
    matte = rng.random((20, 30)).astype(np.float32)
    Image.fromarray(matte).save(tmp_path / "a.tif")
    for dtype in np.float32, np.float64:
        np.testing.assert_array_equal(minimatte.processing.read_matte(tmp_path / "a.tif", dtype=dtype),
                                      matte.astype(dtype))
    np.testing.assert_array_equal(minimatte.trimap_from_mask(tmp_path / "a.tif", band=1),
                                  minimatte.trimap_from_mask(matte, band=1, value_range=1.0))
    for read, name in ((minimatte.read_image, "image"), (minimatte.read_trimap, "trimap")):
        with pytest.raises(ValueError, match=f"{name}: 32-bit image mode 'F' is not supported \\(32-bit float files "
                                             r"are read as mattes and masks only\); save it as 8 or 16 bit"):
            read(tmp_path / "a.tif")
    Image.fromarray(matte * 2).save(tmp_path / "over.tif")
    with pytest.raises(ValueError, match=r"alpha: values must lie in \[0, 1\] \(up to 1/8 beyond it, a filter's "
                                         r"overshoot, is clipped\), found \[0.\d+, 1.\d+\]"):
        minimatte.processing.read_matte(tmp_path / "over.tif")
    with pytest.raises(ValueError, match=r"mask: values must lie in \[0, 1\]"):
        minimatte.trimap_from_mask(tmp_path / "over.tif")


def test_a_float_mattes_filter_overshoot_is_clipped(tmp_path):
    """A float matte resampled with a ringing filter (here Lanczos, as compositing software scales mattes) strays
    a little beyond [0, 1] at hard edges: read as a matte or mask, those values are clipped, as any use of a matte
    clips them; values farther out (a matte on the 0..255 scale) stay an error."""
    step = np.zeros((40, 40), np.float32)
    step[:, 20:] = 1
    ringing = np.asarray(Image.fromarray(step).resize((100, 100), Image.LANCZOS))
    assert ringing.min() < -0.1 and ringing.max() > 1.1  # Pillow's Lanczos overshoots this step by 11%
    Image.fromarray(ringing).save(tmp_path / "ringing.tif")
    clipped = np.clip(ringing, 0, 1)
    np.testing.assert_array_equal(minimatte.processing.read_matte(tmp_path / "ringing.tif", dtype=np.float32), clipped)
    expected = minimatte.trimap_from_mask(clipped, band=2, value_range=1.0)
    # the file, the PIL image ("F") and the array on either scale: a float PIL image's values are in [0, 1] too
    for mask, value_range in ((tmp_path / "ringing.tif", None), (Image.fromarray(ringing), None), (ringing, 1.0),
                              (ringing * 255, 255.0)):
        np.testing.assert_array_equal(minimatte.trimap_from_mask(mask, band=2, value_range=value_range), expected)
    image = np.random.default_rng(4).integers(0, 256, (100, 100, 3), np.uint8)
    np.testing.assert_array_equal(minimatte.cutout(image, ringing, foreground=False),
                                  minimatte.cutout(image, clipped, foreground=False))
    for bits in (8, 32):  # saved as `save` writes infer's mattes
        minimatte.save(tmp_path / f"ringing{bits}.tif", ringing, bits=bits)
        minimatte.save(tmp_path / f"clipped{bits}.tif", clipped, bits=bits)
        np.testing.assert_array_equal(*(np.asarray(Image.open(tmp_path / f"{name}{bits}.tif"))
                                        for name in ("ringing", "clipped")))
    for far in (ringing * 255, ringing + 0.2):
        with pytest.raises(ValueError, match=r"alpha: values must lie in \[0, 1\] \(up to 1/8 beyond"):
            minimatte.processing.read_matte(far)


def test_integer_levels_are_their_quotient_rounded_once():
    """8- and 16-bit values become v / max computed in float64, stored as float64 or rounded once to float32,
    for every value: what the reference's float64 rescale gives (the float32 reads skip its temporary)."""
    for integer in np.uint8, np.uint16:
        values = np.arange(np.iinfo(integer).max + 1).astype(integer).reshape(1, -1)
        exact = values / float(np.iinfo(integer).max)
        for dtype in np.float64, np.float32:
            np.testing.assert_array_equal(minimatte.processing.read_matte(values, dtype=dtype), exact.astype(dtype))


def test_float_levels_are_their_float64_quotient_rounded_once():
    """Float arrays become v / value_range as the float64 quotient rounded to the output type, also where the
    quotient is computed in float32 (float32 input and output: no float64 copy of the image)."""
    rng = np.random.default_rng(7)
    for value_range in 1.0, 255.0:
        values = rng.random(1 << 20) * value_range
        for source in np.float16, np.float32, np.float64:
            a = np.clip(values.astype(source), 0, value_range).reshape(1024, 1024)
            for dtype in np.float32, np.float64:
                want = (a.astype(np.float64) / value_range).astype(dtype)
                got = minimatte.read_trimap(a, value_range, dtype=dtype)
                assert got.dtype == dtype
                np.testing.assert_array_equal(got, want)


def test_other_image_modes():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    for mode in ("CMYK", "YCbCr", "P", "RGBa"):  # read as PIL converts them to RGB (RGBa through RGBA)
        source = "RGBA" if mode == "RGBa" else "RGB"  # Pillow 9.0 converts RGBA, not RGB, to RGBa, and back
        image = Image.fromarray(rgb).convert(source).convert(mode)
        np.testing.assert_array_equal(minimatte.read_image(image), np.asarray(image.convert(source))[..., :3] / 255)
    # Premultiplied alpha is read straight: a premultiplied cut-out's alpha is its matte, not its colours' luma
    alpha = np.uint8([[0, 30, 60, 128, 200, 255]] * 4)
    for mode, straight in (("RGBa", "RGBA"), ("La", "LA")):
        cut_out = Image.fromarray(np.dstack([rgb, alpha])).convert(straight)
        premultiplied = cut_out.convert(mode)
        np.testing.assert_array_equal(minimatte.processing.read_matte(premultiplied), alpha / 255)
        np.testing.assert_array_equal(minimatte.read_image(premultiplied),
                                      minimatte.read_image(premultiplied.convert(straight)))
        np.testing.assert_array_equal(minimatte.trimap_from_mask(premultiplied), minimatte.trimap_from_mask(alpha))
        with pytest.raises(ValueError, match="^background: the image has transparent pixels"):
            minimatte.foreground.stored_background(premultiplied, (4, 6))


def _srgb(lightness):
    """sRGB values 0..255 of a neutral of CIE lightness L* (D50 white): the CIE and sRGB formulas."""
    y = np.where(lightness > 8, ((lightness + 16) / 116) ** 3, lightness / 903.3)
    return 255 * np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


def test_greyscale_and_cmyk_files_become_srgb_through_their_profile(tmp_path):
    inks = np.uint8([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 128]],
                     [[255, 255, 0, 0], [128, 0, 0, 0], [0, 0, 0, 255]]])
    lightness = 100 * np.maximum(0, 1 - inks[..., :3].sum(-1) / 765 - inks[..., 3] / 255)  # cmyk_profile's inks
    cmyk = Image.fromarray(inks, "CMYK")
    cmyk.save(tmp_path / "cmyk.tif", icc_profile=cmyk_profile())
    cmyk.resize((48, 32), Image.NEAREST).save(tmp_path / "cmyk.jpg", icc_profile=cmyk_profile(), quality=100)
    want = np.repeat(_srgb(lightness)[..., None], 3, axis=2)  # neutral inks: grey, where PIL's convert is coloured
    assert np.abs(minimatte.read_image(tmp_path / "cmyk.tif") * 255 - want).max() <= 0.6
    from_jpeg = minimatte.read_image(tmp_path / "cmyk.jpg")[8::16, 8::16]  # block centres: JPEG keeps flat blocks
    assert np.abs(from_jpeg * 255 - want).max() <= 1.6
    np.testing.assert_array_equal(minimatte.read_image(cmyk), np.asarray(cmyk.convert("RGB")) / 255)  # untagged
    levels = np.uint8([[0, 1, 64, 128, 255]])  # 1 is sRGB 12.8 (littlecms optimised: 6)
    for mode in ("L", "LA"):  # linear-light grey: sRGB encodes it
        Image.fromarray(levels).convert(mode).save(tmp_path / "grey.png", icc_profile=grey_profile(1.0))
        linear = levels / 255
        want = 255 * np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
        assert np.abs(minimatte.read_image(tmp_path / "grey.png") * 255 - want[..., None]).max() <= 0.6
        np.testing.assert_array_equal(minimatte.read_trimap(tmp_path / "grey.png"), levels / 255)  # not a colour
    for path in ("cmyk.tif", "cmyk.jpg", "grey.png"):  # their RGB is sRGB: outputs carry no profile
        assert minimatte.icc_profile(tmp_path / path) is None
    Image.fromarray(levels).convert("RGB").save(tmp_path / "rgb.png", icc_profile=gamma_profile(1.0))
    assert minimatte.icc_profile(tmp_path / "rgb.png") == gamma_profile(1.0)
    np.testing.assert_array_equal(minimatte.read_image(tmp_path / "rgb.png")[..., 0], levels / 255)  # as stored
    for options in ({"transparency": 64}, {}):  # a transparent grey (tRNS), or LA's alpha, outlives the profile
        grey = Image.fromarray(levels if options else np.dstack([levels, (levels > 0) * np.uint8(255)]))  # L or LA
        grey.save(tmp_path / "see-through.png", icc_profile=grey_profile(1.0), **options)
        for image in None, tmp_path / "rgb.png":  # made sRGB, or converted into the image's colours
            with pytest.raises(ValueError, match="^background: the image has transparent pixels"):
                minimatte.foreground.stored_background(tmp_path / "see-through.png", (1, 5), image)
    Image.fromarray(levels).save(tmp_path / "broken.png", icc_profile=grey_profile(1.0)[:200])
    with pytest.raises(ValueError, match="^image: cannot convert its colours between ICC profiles"):
        minimatte.read_image(tmp_path / "broken.png")


def test_files_are_turned_upright_by_their_exif_orientation(tmp_path):
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # as a sideways camera stores it
    upright = {1: stored, 3: stored[::-1, ::-1], 6: np.rot90(stored, -1), 8: np.rot90(stored)}  # EXIF's rotations
    for orientation, expected in upright.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
        np.testing.assert_array_equal(minimatte.read_image(tmp_path / "photo.png"), expected / 255)
    np.testing.assert_array_equal(minimatte.read_image(Image.open(tmp_path / "photo.png")), stored / 255)
    trimap = np.tile(np.uint16([0, 32896, 65535]), (4, 2))  # 16-bit grey keeps its depth when turned
    Image.fromarray(trimap).save(tmp_path / "trimap.png", exif=exif)
    np.testing.assert_array_equal(minimatte.read_trimap(tmp_path / "trimap.png"), np.rot90(trimap) / 65535)
    # a trimap made from the stored pixels of a photo that viewers show turned: the error says what is likely
    with pytest.raises(ValueError, match=r"trimap: size 4x6 \(HxW\) does not match the image's 6x4; that is the "
                                         r"image's turned 90 degrees: files are turned upright by their EXIF"):
        minimatte.preprocess(tmp_path / "photo.png", np.full((4, 6), 128, np.uint8))


def test_a_resized_trimap_or_matte_is_an_error_that_says_so():
    """A trimap drawn on a reduced copy of the image (an editor's preview), or a matte made for one, has the
    image's aspect ratio: the error says to resize it, a trimap without blending its levels. Sizes that differ
    in one side only (a crop) or in aspect ratio get no such hint."""
    image = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^trimap: size 32x48 \(HxW\) does not match the image's 64x96; it has "
                                         r"the image's aspect ratio: was it made on a resized copy\? Resize it to "
                                         r"the image's size \(nearest-neighbour sampling keeps its levels\)$"):
        minimatte.preprocess(image, np.full((32, 48), 128, np.uint8))
    with pytest.raises(ValueError, match=r"^alpha: size 128x191 .* aspect ratio: .* Resize it to the image's size$"):
        minimatte.cutout(image, np.zeros((128, 191), np.uint8))
    for size in (63, 96), (64, 64), (40, 96):
        with pytest.raises(ValueError, match=r"^alpha: size \d+x\d+ \(HxW\) does not match the image's 64x96$"):
            minimatte.cutout(image, np.zeros(size, np.uint8))


class Pipe(io.RawIOBase):
    """The bytes of the file at `path` as a stream that cannot seek, as standard input from a pipe: it can be read
    once."""

    def __init__(self, path):
        self.data = io.BytesIO(path.read_bytes())

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.data.readinto(buffer)


def test_binary_file_objects_are_files(tmp_path, det_model):
    """An open binary file, io.BytesIO or a pipe is read as its file would be: EXIF-turned, as a path is; a file
    opened as text, and bytes that are no image, are one clear error each."""
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    with open(tmp_path / "photo.png", "rb") as file:
        np.testing.assert_array_equal(minimatte.read_image(file), np.rot90(stored, -1) / 255)
    np.testing.assert_array_equal(minimatte.read_image(Pipe(tmp_path / "photo.png")), np.rot90(stored, -1) / 255)
    paths = tmp_path / "image.png", tmp_path / "trimap.png"  # a 64x96 crop of the bulb, around its edge
    for source, path in zip(BULB, paths):
        Image.open(source).crop((480, 200, 576, 264)).save(path)
    alpha = minimatte.infer(*map(Pipe, paths), model=det_model("small"), force_known=True)  # the trimap read once
    np.testing.assert_array_equal(alpha, minimatte.infer(*map(str, paths), model=det_model("small"),
                                                         force_known=True))
    for background in (None, "#00ff00"):  # the image and the matte serve twice each: read once
        np.testing.assert_array_equal(minimatte.cutout(*map(Pipe, paths), background),
                                      minimatte.cutout(*map(str, paths), background))
    with open(tmp_path / "photo.png", errors="replace") as text, \
            pytest.raises(TypeError, match=r"^image: a file opened as text; open image files in binary mode"):
        minimatte.read_image(text)
    with pytest.raises(ValueError, match=r"^trimap: the BytesIO is not a readable image \(no image format that "
                                         r"Pillow reads\)$"):
        minimatte.read_trimap(io.BytesIO(b"not an image"))


def test_batch_of_equal_sizes():
    images = [np.zeros((40, 50, 3), np.uint8), np.ones((40, 50, 3), np.uint8)]
    trimaps = [np.full((40, 50), 128, np.uint8)] * 2
    batch = minimatte.preprocess(images, trimaps)
    assert batch.pixel_values.shape == (2, 4, 64, 64) and batch.sizes == [(40, 50)] * 2
    with pytest.raises(ValueError, match=r"^trimap\[1\]: no pixel is unknown"):  # an error names the item
        minimatte.preprocess(images, [trimaps[0], np.zeros((40, 50), np.uint8)])


@pytest.mark.parametrize("image,trimap,kwargs,error,match", [
    (np.zeros((10, 10, 3), np.uint8), np.full((10, 11), 128, np.uint8), {}, ValueError, "trimap: size 10x11"),
    (np.zeros((10, 10, 5), np.uint8), np.zeros((10, 10), np.uint8), {}, ValueError, r"image: expected an \(H, W, 3\)"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 2, 2), np.uint8), {}, ValueError, "trimap: expected a one"),
    (np.zeros((2, 10, 10, 3), np.uint8), np.zeros((2, 10, 10), np.uint8), {}, ValueError,
     r"image: .* got shape \(2, 10, 10, 3\) \(a batch of 2\? give one at a time; infer also takes a list of them\)$"),
    (np.zeros((3, 10, 10), np.uint8), np.zeros((10, 10), np.uint8), {}, ValueError,
     r"image: .* \(channels first, as torch stores images\? pass it as a.transpose\(1, 2, 0\)\)$"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 10, 10), np.uint8), {}, ValueError, r"trimap: .* \(channels first"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((3, 10, 10), np.uint8), {}, ValueError, r"trimap: .* \(a batch of 3\?"),
    (np.zeros((1, 3, 10, 10), np.uint8), np.zeros((10, 10), np.uint8), {}, ValueError,
     r"image: .* got shape \(1, 3, 10, 10\) \(a batch of 1 in torch's \(B, C, H, W\) layout, as transformers' "
     r"pixel_values and alphas\? give one at a time, as a\[0\].transpose\(1, 2, 0\)\)$"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((1, 1, 10, 10), np.uint8), {}, ValueError,
     r"trimap: .* \(a batch of 1 in torch's \(B, C, H, W\) layout"),
    (np.zeros((0, 10, 3), np.uint8), np.zeros((0, 10), np.uint8), {}, ValueError, "image: image is empty"),
    (np.uint8(3), np.zeros((4, 4), np.uint8), {}, ValueError, r"image: expected an \(H, W, 3\) .* got shape \(\)$"),
    (np.zeros((4, 4, 3), np.uint8), np.array(3, np.uint8), {}, ValueError,
     r"trimap: expected a one-.* got shape \(\)$"),  # a 0-d array, as a[0, 0] gives
    (np.full((4, 4, 3), np.nan), np.zeros((4, 4), np.uint8), {"value_range": 1.0}, ValueError, "image: contains NaN"),
    (np.where(np.eye(4)[..., None] > 0, np.nan, 0.5).repeat(3, 2), np.zeros((4, 4), np.uint8), {"value_range": 1.0},
     ValueError, "image: contains NaN"),  # a few among valid values
    (np.zeros((4, 4, 3)), np.where(np.eye(4) > 0, -np.inf, 0.5), {"value_range": 1.0}, ValueError,
     "trimap: contains NaN or infinite values"),
    (np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8), {}, ValueError, "image: float arrays need value_range"),
    (np.full((4, 4, 3), 2.0), np.zeros((4, 4), np.uint8), {"value_range": 1.0}, ValueError, r"must lie in \[0, 1\]"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool), {}, TypeError, "trimap: boolean arrays are masks"),
    (np.zeros((4, 4, 3), np.int64), np.zeros((4, 4), np.uint8), {}, TypeError, "image: unsupported dtype int64"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.int64) * 128, {}, TypeError, r"trimap: unsupported dtype int64; "
     r"expected uint8, uint16 or float \(its values lie in 0..128: for 8-bit values, pass .astype\(np.uint8\)\)$"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.int32) * 1000, {}, TypeError,
     r"for 16-bit values, pass .astype\(np.uint16\)\)$"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.int32) * -1, {}, TypeError, "int32; expected uint8, uint16 or "
     "float$"),
    (np.zeros((4, 4, 3), np.uint8), np.uint8([[0, 1], [2, 1]]).repeat(2, 0).repeat(2, 1), {}, ValueError,
     r"trimap: expected 0 = background, 255 = foreground and grey = unknown, got values up to only 2 \(class"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint16), {}, ValueError, "65535 = foreground .* only 1 "),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint8) * 2, {"value_range": 1.0}, ValueError,
     r"trimap: expected 0 = background, .* \(class"),  # integers are read on their own scale, whatever value_range
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), {"value_range": 2}, ValueError,
     r"value_range: expected None, 1.0 or 255.0 \(the scale of float arrays' values\), got 2$"),  # integers too
    (np.zeros((4, 4, 3)), np.zeros((4, 4)), {"value_range": True}, ValueError, "value_range: .* got True$"),
    (np.zeros((4, 4, 3)), np.zeros((4, 4)), {"value_range": "1"}, ValueError, "value_range: .* got '1'$"),
    (np.zeros((4, 4, 3)), np.eye(4) * 2, {"value_range": 255.0}, ValueError, "trimap: expected 0 = background"),
    (np.full((4, 4, 3), 0.5), np.full((4, 4), 128.0), {"value_range": 255.0}, ValueError,
     r"image: float values that go up to only 0.5 of value_range=255.0 would read as nearly black; for values in "
     r"\[0, 1\], pass value_range=1.0$"),
    (np.zeros((4, 4, 3)), np.eye(4) * 0.5, {"value_range": 255.0}, ValueError, "trimap: float values that go up to"),
    (np.eye(4)[..., None].repeat(3, 2), np.full((4, 4), 128.0), {"value_range": 255.0}, ValueError,
     "image: float values that go up to only 1 of value_range=255.0"),  # an image in [0, 1], white where it is 1
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint8) * 255, {}, ValueError,
     r"trimap: no pixel is unknown \(grey, between 0 and 255\), so there is nothing to matte; for a binary mask"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4, dtype=np.uint16) * 65535, {}, ValueError, "between 0 and 65535"),
    (np.zeros((4, 4, 3), np.uint8), np.uint8([[0, 3, 10, 0], [255, 252, 240, 255]]).repeat(2, 0), {}, ValueError,
     r"trimap: no pixel is grey \(between 10 and 240\), only values next to 0 and 255, as in a binary mask saved as "
     r"JPEG; build a trimap from the mask \(trimap_from_mask, --mask\)$"),
    (np.zeros((4, 4, 3), np.uint8), np.eye(4), {"value_range": 1.0}, ValueError, r"unknown \(grey, between 0 and 1\)"),
    (np.full((4, 4, 3), "1"), np.zeros((4, 4), np.uint8), {}, TypeError, r"image: unsupported dtype <U1; expected "
     "uint8, uint16 or float$"),  # strings (read from a CSV file, say)
    (np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 2), "1"), {}, TypeError, "trimap: unsupported dtype <U1"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), complex), {}, TypeError, "trimap: unsupported dtype complex128"),
    (42, np.zeros((4, 4), np.uint8), {}, TypeError, "image: expected a file path"),
    (b"\x89PNG", np.zeros((4, 4), np.uint8), {}, TypeError, r"image: .* got bytes \(a file's contents: wrap them in "
     r"io.BytesIO\)"),
    (memoryview(b"\x89PNG"), np.zeros((4, 4), np.uint8), {}, TypeError, r"image: .* got memoryview \(a file's "
     r"contents: wrap them in io.BytesIO\)"),
    (str(BULB[0]).encode(), np.zeros((4, 4), np.uint8), {}, TypeError, r"image: .* got bytes \(a path as bytes: pass "
     r"os.fsdecode\(path\)\)$"),
])
def test_bad_input_is_one_clear_error(image, trimap, kwargs, error, match):
    with pytest.raises(error, match=match):
        minimatte.preprocess(image, trimap, **kwargs)


def test_trimaps_of_few_levels_that_are_not_class_indices():
    """Only values up to 1 or 2 are taken for class indices: a float trimap in [0, 1] is used as it is, and
    values up to 3 of 255 are refused for holding no grey, not as class indices."""
    image = np.zeros((4, 4, 3), np.uint8)
    trimap = np.eye(4) * [1, 1, 1, 0.5]
    levels = minimatte.preprocess(image, trimap, value_range=1.0).pixel_values[0, 3, :4, :4]
    np.testing.assert_array_equal(levels, np.float32(trimap))
    for trimap, value_range in ((np.eye(4, dtype=np.uint8) * 3, None), (np.eye(4) * 3, 255.0)):
        with pytest.raises(ValueError, match=r"trimap: no pixel is grey \(between 10 and 240\)"):
            minimatte.preprocess(image, trimap, value_range=value_range)


def test_oxford_pet_trimaps_are_refused_with_their_mapping():
    """The Oxford-IIIT Pet dataset's trimaps (1 foreground, 2 background, 3 unknown), as its PNG files hold them
    and as arrays, are an error that names the convention and the mapping, not the network's read of a nearly
    black image; so is one without background (values 1 and 3)."""
    image = np.zeros((4, 6, 3), np.uint8)
    pet = np.array([[2, 2, 3, 3, 1, 1]] * 4, np.uint8)
    message = (r"trimap: expected 0 = background, 255 = foreground and grey = unknown, got only values 1 to 3, as the "
               r"Oxford-IIIT Pet dataset's trimaps hold \(1 foreground, 2 background, 3 unknown\): map them to 255, 0 "
               r"and 128$")
    file = io.BytesIO()
    Image.fromarray(pet).save(file, "PNG")
    for trimap, value_range in ((pet, None), (file, None), (np.where(pet == 2, 3, pet), None), (pet * 1.0, 255.0)):
        file.seek(0)
        with pytest.raises(ValueError, match=message):
            minimatte.preprocess(image, trimap, value_range=value_range)
    mapped = np.array([0, 255, 0, 128], np.uint8)[pet]  # the mapping the error names
    assert minimatte.preprocess(image, mapped).pixel_values.shape == (1, 4, 32, 32)


def test_bad_files(tmp_path, monkeypatch):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    trimap = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"image: .*empty.png' is not a readable image \(the file is empty\)$"):
        minimatte.preprocess(str(empty), trimap)
    # what such files often are instead, each said so: from a file or a file object
    lfs_pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 204800\n"
    for content, why in ((lfs_pointer, "it is a Git LFS pointer, not the image: fetch the file itself with `git lfs "
                                       "pull`"),  # a repository cloned without Git LFS
                         (b"\n<!DOCTYPE html>\n<html lang=en><body>...", "it is a web page (HTML), not the image: "
                                                                        "download the image's own address"),
                         (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "it is an SVG drawing, "
                          "which Pillow does not read: export it as PNG"),
                         (b"\x76\x2f\x31\x01\x02\x00\x00\x00channels\x00", "it is an OpenEXR image, which Pillow does "
                          "not read: save it as a 32-bit float TIFF (a matte) or a PNG"),
                         *((video, "it is a video, which minimatte does not read: extract its frames as images "
                                   "(`ffmpeg -i VIDEO frames/%05d.png`) and matte that folder with a folder of their "
                                   "trimaps")
                           for video in (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41",  # MP4
                                         b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ",  # QuickTime (.mov)
                                         b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",  # WebM, Matroska
                                         b"RIFF\x00\x10\x00\x00AVI LIST")),
                         *((archive, "it is an archive (ZIP, tar, gzip, 7z or RAR): extract it, and give the image, or "
                                     "the folder of images for batch mode")  # a dataset as downloaded
                           for archive in (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
                                           b"a.png".ljust(257, b"\x00") + b"ustar\x0000", b"7z\xbc\xaf\x27\x1c\x00\x04",
                                           b"Rar!\x1a\x07\x01\x00")),
                         (b"\x93NUMPY\x01\x00v\x00{'descr': '|b1', 'fortran_order': False, 'shape': (4, 4), }",
                          "it is a NumPy array file (.npy), which is no image file: save the array as a PNG, or pass "
                          "numpy.load(path) to minimatte in Python"),  # a segmentation pipeline's mask
                         (b"<?xml version='1.0'?><note/>", "no image format that Pillow reads")):
        (tmp_path / "bad.png").write_bytes(content)
        for source, shown in ((str(tmp_path / "bad.png"), "'.*bad.png'"), (io.BytesIO(content), "the BytesIO")):
            with pytest.raises(ValueError, match=rf"^image: {shown} is not a readable image \({re.escape(why)}\)$"):
                minimatte.read_image(source)
    with pytest.raises(ValueError, match="trimap: .*notes.png' is not a readable image"):
        minimatte.preprocess(np.zeros((4, 4, 3), np.uint8), str(text))
    # an AVIF image (a browser's "Save image as" gives them) is named as one where this Pillow does not read it
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"
    assert minimatte.processing.stand_in_kind(avif) == "AVIF image"
    if not ("avif" in features.modules and features.check_module("avif")):
        with pytest.raises(ValueError, match=rf"^image: the BytesIO is not a readable image \(it is an AVIF image, "
                                             rf"which this Pillow \({re.escape(PIL.__version__)}\) does not read; "
                                             r"Pillow's wheels read it from 11.3 on \(pip install -U pillow\)\)$"):
            minimatte.read_image(io.BytesIO(avif))
    with pytest.raises(FileNotFoundError, match="image: no such file"):
        minimatte.preprocess(str(tmp_path / "missing.png"), trimap)
    with pytest.raises(FileNotFoundError, match="image: no such file"):  # icc_profile reads only the header
        minimatte.icc_profile(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="image: .*notes.png' is not a readable image"):
        minimatte.icc_profile(str(text))
    with pytest.raises(ValueError, match=f"image: {re.escape(repr(str(tmp_path)))} is a folder, not an image file"):
        minimatte.preprocess(tmp_path, trimap)
    with pytest.raises(FileNotFoundError, match=r"image: no such file 'https://example.com/a.png' \(URLs are not "
                                                r"fetched: download the file first\)"):
        minimatte.preprocess("https://example.com/a.png", trimap)  # transformers' load_image would fetch it
    monkeypatch.setenv("HOME", str(tmp_path))
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.png")
    at_home = re.escape(repr(str(tmp_path / "photo.png")))
    with pytest.raises(FileNotFoundError, match=rf"image: no such file '~/photo.png' \(a leading ~ is not expanded "
                                                rf"here; the file is {at_home}\)$"):
        minimatte.preprocess("~/photo.png", trimap)  # a path quoted in the shell, or written in Python
    with pytest.raises(FileNotFoundError, match=r"image: no such file '~/missing.png'$"):
        minimatte.preprocess("~/missing.png", trimap)


def test_a_pil_image_whose_file_is_closed_or_cut_short_is_one_clear_error(tmp_path):
    """Image.open reads the pixels on first use: an image used after its `with` block (or after its file object
    was closed) is an error saying so, not Pillow's bare AssertionError; a truncated file's image says it is not
    readable. Loaded inside the block, it reads as its path does."""
    path = tmp_path / "photo.png"
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(image).save(path)
    trimap = np.full((40, 60), 128, np.uint8)
    with Image.open(path) as closed:
        pass
    with open(path, "rb") as file:
        closed_file = Image.open(file)
    message = (r"^image: the PIL image's file was closed before its pixels were read \(as a `with Image.open\(...\)` "
               r"block closes it\); use the image inside the block, load it there \(.load\(\)\), or pass the path$")
    for img in closed, closed_file:
        with pytest.raises(ValueError, match=message):
            minimatte.preprocess(img, trimap)
    with pytest.raises(ValueError, match=message.replace("image", "trimap", 1)):
        minimatte.preprocess(image, closed)  # the mistake named for any input
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"^image: the PIL image is not readable \(image file is truncated"):
        minimatte.preprocess(Image.open(cut), trimap)
    with Image.open(path) as loaded:
        loaded.load()
    np.testing.assert_array_equal(minimatte.preprocess(loaded, trimap).pixel_values,
                                  minimatte.preprocess(str(path), trimap).pixel_values)


def test_animations_are_refused_and_other_files_of_frames_read_as_their_first(tmp_path):
    y, x = np.mgrid[:24, :40]
    first = np.stack([y * 10, x * 6, (x + y) * 4], axis=-1).astype(np.uint8)
    frames = [Image.fromarray(first), Image.fromarray(255 - first)]
    for name in "waving.gif", "waving.png", "waving.webp":  # an animated GIF, an APNG, an animated WebP
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100)
        with pytest.raises(ValueError, match=f"image: .*{name}' is an animation of 2 frames; minimatte mattes one "
                                             "picture: save the frame to matte as a file of its own$"):
            minimatte.read_image(tmp_path / name)
    with pytest.raises(ValueError, match="^trimap: .*waving.png' is an animation of 2 frames"):
        minimatte.read_trimap(tmp_path / "waving.png")
    frames[0].save(tmp_path / "still.gif", save_all=True)  # one frame
    assert minimatte.read_image(tmp_path / "still.gif").shape == (24, 40, 3)
    # a TIFF's further pages may be reduced copies, an MPO's (a camera's JPEG) previews: the first frame is read
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=[frames[1].resize((20, 12))])
    np.testing.assert_array_equal(minimatte.read_image(tmp_path / "pages.tif"), first / 255.0)
    if PILLOW_VERSION >= (9, 3):  # Pillow writes MPO files from 9.3 on
        frames[0].save(tmp_path / "camera.mpo", save_all=True, append_images=[frames[1]], quality=100)
        assert Image.open(tmp_path / "camera.mpo").n_frames == 2
        assert minimatte.read_image(tmp_path / "camera.mpo").shape == (24, 40, 3)


def test_heif_photos_are_read_through_pillow_heif(tmp_path, monkeypatch):
    pillow_heif, = require("pillow_heif")
    y, x = np.mgrid[:24, :40]
    pixels = np.stack([y * 10, x * 6, (x + y) * 4], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as a phone held upright stores it
    path, profile = tmp_path / "photo.heic", gamma_profile(1.8)  # a wide-gamut photo carries its profile
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(path, quality=-1, exif=exif.tobytes(), icc_profile=profile)
    # without the plugin: one error that says how to read it (the plugin's opener unregistered, its import failing)
    Image.init()  # every plugin in Image.ID first: the list monkeypatch restores must be the whole one
    monkeypatch.setattr(Image, "ID", [form for form in Image.ID if form != "HEIF"])
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    with pytest.raises(ValueError, match=r"image: .*photo.heic' is not a readable image \(a HEIF \(.heic\) photo, "
                                         "which Pillow reads with the pillow-heif plugin: pip install pillow-heif"):
        minimatte.read_image(str(path))
    monkeypatch.setitem(sys.modules, "pillow_heif", pillow_heif)
    assert minimatte.icc_profile(str(path)) == profile  # the plugin registered, by the first file read
    rgb = minimatte.read_image(str(path))  # upright, as viewers show it
    assert rgb.shape == (40, 24, 3)
    np.testing.assert_array_equal(rgb, np.asarray(pillow_heif.open_heif(path)) / 255.0)
    assert np.abs(rgb * 255 - np.rot90(pixels, -1)).max() < 8  # HEVC's YCbCr rounding: lossy even at quality -1
    # from a stream that cannot seek (standard input), the plugin not yet registered: read once, then reread
    monkeypatch.setattr(Image, "ID", [form for form in Image.ID if form != "HEIF"])
    np.testing.assert_array_equal(minimatte.read_image(Pipe(path)), rgb)


def test_files_over_pillows_size_guard(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow refuses images over twice the limit
    with pytest.raises(ValueError, match="^trimap: .*huge.png' is too large to open .*MAX_IMAGE_PIXELS$"):
        minimatte.read_trimap(tmp_path / "huge.png")


def test_model_rejects_bad_pixel_values(det_model):
    model = det_model("small")
    with pytest.raises(ValueError, match="pixel_values: expected 4 channels"):
        model(np.zeros((1, 6, 32, 32), np.float32))  # e.g. an RGB trimap concatenated
    with pytest.raises(ValueError, match="multiples of 16"):
        model(np.zeros((1, 4, 30, 32), np.float32))
    with pytest.raises(ValueError, match=r"^pixel_values: height and width must be positive multiples of 16 .*got "
                                         r"0x32$"):
        model(np.zeros((1, 4, 0, 32), np.float32))
    with pytest.raises(ValueError, match=r"^pixel_values: expected a batch of at least one image, got shape "
                                         r"\(0, 4, 32, 32\)$"):
        model(np.zeros((0, 4, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"pixel_values: expected a \(B, 4, H, W\) array, got shape \(4, 32, 32\)$"):
        model(np.zeros((4, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"pixel_values: expected a \(B, 4, H, W\) array, got list$"):
        model(np.zeros((1, 4, 32, 32), np.float32).tolist())
    with pytest.raises(ValueError, match=r"got 32 \(channels last\? pass x.transpose\(0, 3, 1, 2\)\)$"):
        model(np.zeros((1, 32, 32, 4), np.float32))
    with pytest.raises(ValueError, match=r"pixel_values: expected normalised floats \(as minimatte.preprocess makes "
                                         r"them\), got uint8 values$"):
        model(np.zeros((1, 4, 32, 32), np.uint8))


def test_the_model_takes_torch_tensors_of_normalised_floats(det_model):
    """As the reference's forward pass, of a processor's return_tensors="pt": float tensors run, others are refused
    as arrays of their types are (a torch dtype has no NumPy kind to check before they are read)."""
    torch, = require("torch")
    model, pixels = det_model("small"), np.random.default_rng(0).uniform(-1, 1, (1, 4, 32, 48)).astype(np.float32)
    np.testing.assert_array_equal(model(torch.from_numpy(pixels)).alphas, model(pixels).alphas)
    for dtype in torch.uint8, torch.bool:
        with pytest.raises(ValueError, match=rf"^pixel_values: expected normalised floats \(as minimatte.preprocess "
                                             rf"makes them\), got {dtype} values$"):
            model(torch.zeros((1, 4, 32, 32), dtype=dtype))
    with pytest.raises(TypeError, match=r"^pixel_values: numpy cannot read a Tensor of torch.bfloat16 values \(.+\)$"):
        model(torch.zeros((1, 4, 32, 32), dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"^pixel_values: expected a \(B, 4, H, W\) array, got shape \(4, 32, 32\)$"):
        model(torch.zeros((4, 32, 32)))


def test_tensors_numpy_cannot_read_are_one_error_naming_the_argument(tmp_path):
    """torch's bfloat16 has no NumPy type: reading such a tensor is an error naming the argument, not torch's
    own TypeError from inside NumPy's conversion."""
    torch, = require("torch")
    image, alpha = torch.zeros((20, 30, 3), dtype=torch.bfloat16), torch.zeros((20, 30), dtype=torch.bfloat16)
    trimap = np.full((20, 30), 128, np.uint8)
    unreadable = r"numpy cannot read a Tensor of torch.bfloat16 values \(.+\)$"
    for name, call in (("image", lambda: minimatte.read_image(image, value_range=1.0)),
                       ("trimap", lambda: minimatte.preprocess(np.zeros((20, 30, 3), np.uint8), alpha)),
                       ("alpha", lambda: minimatte.cutout(np.zeros((20, 30, 3), np.uint8), alpha)),
                       ("result", lambda: minimatte.save(tmp_path / "a.png", alpha)),
                       ("pred", lambda: minimatte.metrics.sad(alpha, trimap, trimap)),
                       ("alpha", lambda: minimatte.metrics.to_uint8(alpha))):
        with pytest.raises(TypeError, match=f"^{name}: {unreadable}"):
            call()


def test_a_loaded_model_runs_as_loaded(det_model):
    model, image, trimap = det_model("small"), np.zeros((20, 30, 3), np.uint8), np.full((20, 30), 128, np.uint8)
    alpha = minimatte.infer(image, trimap, model=model, backend="numpy", precision="float32")  # as loaded: fine
    np.testing.assert_array_equal(alpha, minimatte.infer(image, trimap, model=model))
    with pytest.raises(ValueError, match="precision: the model was loaded with precision='float32', got 'float16'"):
        minimatte.infer(image, trimap, model=model, precision="float16")
    with pytest.raises(ValueError, match="backend: the model was loaded with backend='numpy', got 'cupy'"):
        minimatte.infer(image, trimap, model=model, backend="cupy")
    with pytest.raises(TypeError, match="model: expected a checkpoint name, a path or a loaded VitMatte, got int"):
        minimatte.infer(image, trimap, model=3)


def test_infer_returns_input_sized_alpha(det_model):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    trimap = np.full((37, 53), 128, np.uint8)
    alpha = minimatte.infer(image, trimap, model=det_model("small"))
    assert alpha.shape == (37, 53) and alpha.dtype == np.float32
    assert 0 <= alpha.min() and alpha.max() <= 1
    both = minimatte.infer([image, image[:20]], [trimap, trimap[:20]], model=det_model("small"))
    np.testing.assert_array_equal(both[0], alpha)
    assert both[1].shape == (20, 53)
    generated = minimatte.infer((x for x in [image, image[:20]]), map(np.asarray, [trimap, trimap[:20]]),
                                model=det_model("small"))  # any iterator of images, but a file object is one
    assert len(generated) == 2 and all((a == b).all() for a, b in zip(generated, both))
    for images, trimaps, got in (([image, image], trimap, "one trimap for a list of images"),
                                 (image, [trimap, trimap], "a list of trimaps for one image"),
                                 ((x for x in [image]), trimap, "one trimap for a list of images")):
        with pytest.raises(ValueError, match=r"trimap: expected as many trimaps as images, both a list \(or tuple, "
                                             f"or generator\\) or neither, got {got}"):
            minimatte.infer(images, trimaps, model=det_model("small"))
    nested = r" \(pixels as nested lists\? pass np.asarray of them\)$"  # a list is a list of images
    with pytest.raises(ValueError, match="got one trimap for a list of images" + nested):
        minimatte.infer(image.tolist(), trimap, model=det_model("small"))  # pixels from JSON, say
    with pytest.raises(ValueError, match="got a list of trimaps for one image" + nested):
        minimatte.infer(image, trimap.tolist(), model=det_model("small"))
    with pytest.raises(TypeError, match=r"image\[0\]: expected a file path .* got list" + nested):
        minimatte.infer(image.tolist(), trimap.tolist(), model=det_model("small"))
    with pytest.raises(ValueError, match="trimap: expected one trimap per image, got 1 for 2"):
        minimatte.infer([image, image], [trimap], model=det_model("small"))
    for max_size in None, 32:  # an error about one pair of lists names it, as preprocess's do: which of many?
        with pytest.raises(ValueError, match=r"^trimap\[1\]: no pixel is unknown"):
            minimatte.infer([image, image], [trimap, trimap // 255], model=det_model("small"), max_size=max_size)
        with pytest.raises(ValueError, match=r"^trimap\[2\]: size 37x52 \(HxW\) does not match the image's 37x53"):
            minimatte.infer([image] * 3, [trimap, trimap, trimap[:, 1:]], model=det_model("small"), max_size=max_size)
        with pytest.raises(ValueError, match=r"^image\[1\]: a 16-bit image whose values go up to only 255 of 65535"):
            minimatte.infer([image, image.astype(np.uint16)], [trimap] * 2, model=det_model("small"),
                            max_size=max_size, force_known=True)
    with pytest.raises(TypeError, match=r"progress: expected a callable progress\(fraction, stage\), got int"):
        minimatte.infer(image, trimap, model=det_model("small"), progress=5)
    with pytest.raises(TypeError, match="force_known: expected True or False, got 'no'"):
        minimatte.infer(image, trimap, model=det_model("small"), force_known="no")
    with pytest.raises(TypeError, match="foreground: expected True or False, got 'false'"):
        minimatte.cutout(image, alpha, foreground="false")
    with pytest.raises(TypeError, match="progress: expected True or False, got None"):
        minimatte.load("small-composition-1k", progress=None)  # checked before the caches or a download


def test_enlarge_alpha_is_pils_bicubic_clipped():
    """max_size's enlargement: PIL's bicubic in float32, its overshoot at hard edges clipped into [0, 1]."""
    alpha = np.zeros((13, 17), np.float32)
    alpha[4:9, 5:12] = 1  # hard edges: the bicubic kernel's negative lobes overshoot beside them
    pil = np.asarray(Image.fromarray(alpha).resize((85, 52), Image.BICUBIC))
    assert pil.min() < 0 and pil.max() > 1
    enlarged = minimatte.processing.enlarge_alpha(alpha, (52, 85))
    assert enlarged.dtype == np.float32
    np.testing.assert_array_equal(enlarged, np.clip(pil, 0, 1))
    strip = minimatte.processing.enlarge_alpha(np.full((300, 1), 0.25, np.float32), (3000, 8))
    assert strip.shape == (3000, 8) and np.abs(strip - 0.25).max() < 1e-6  # a strip capped to one column


def test_enlarge_alpha_recovers_real_mattes_better_than_bilinear():
    """On real mattes (alphamatting.com ground truths) reduced 4 times by their area means, as a perfect network
    would predict them at max_size, the enlargement comes closer to the truth than PIL's bilinear in the unknown
    region (benchmarks/upsampling.py: SAD 4.06 against 4.79 over all 27; the fast guided filter used before
    scored 7.20), and leaves no more known pixels astray."""
    folder = DATA / "alphamatting"
    for name in "GT02.png", "GT04.png", "GT13.png":
        gt = np.asarray(Image.open(folder / "gt_training_lowres" / name).convert("L")) / np.float32(255)
        trimap = np.asarray(Image.open(folder / "trimap_training_lowres" / "Trimap1" / name).convert("L"))
        reduced = minimatte.processing.resize_plane(gt, (gt.shape[0] // 4, gt.shape[1] // 4), Image.BOX)
        truth = np.round(gt * 255)
        ours = minimatte.metrics.to_uint8(minimatte.processing.enlarge_alpha(reduced, gt.shape))
        bilinear = minimatte.metrics.to_uint8(np.clip(
            minimatte.processing.resize_plane(reduced, gt.shape, Image.BILINEAR), 0, 1))
        assert minimatte.metrics.sad(ours, truth, trimap) < 0.95 * minimatte.metrics.sad(bilinear, truth, trimap)
        known = trimap != 128
        assert (np.abs(ours - truth)[known] > 2).sum() <= (np.abs(bilinear - truth)[known] > 2).sum()


def test_force_known_regions(det_model, tmp_path, monkeypatch):
    """force_known sets the trimap's background to exactly 0 and its foreground to 1 and leaves the unknown
    region's alphas as they were; at full size and, at full resolution, after max_size's upsampling. A trimap
    file is read once."""
    model = det_model("small")
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], np.uint8), (90, 130))
    background, foreground = trimap == 0, trimap == 255
    for max_size in None, 64:
        network = minimatte.infer(image, trimap, model=model, max_size=max_size)
        assert 0 < network.min() and network.max() < 1  # the deterministic weights give ~0.4 everywhere
        forced = minimatte.infer(image, trimap, model=model, max_size=max_size, force_known=True)
        assert (forced[background] == 0).all() and (forced[foreground] == 1).all()
        np.testing.assert_array_equal(forced[trimap == 128], network[trimap == 128])
    path = tmp_path / "trimap.png"
    Image.fromarray(trimap).save(path)
    want = minimatte.infer(image, trimap, model=model, force_known=True)
    opened = recording_opens(monkeypatch)
    np.testing.assert_array_equal(minimatte.infer(image, str(path), model=model, force_known=True), want)
    assert opened == [str(path)]
    deep = trimap.astype(np.uint16) * 257  # 16 bits: 65535 is foreground
    forced = minimatte.processing.force_known_regions(network.copy(), deep)
    assert (forced[background] == 0).all() and (forced[foreground] == 1).all()
    np.testing.assert_array_equal(forced[trimap == 128], network[trimap == 128])
    with pytest.raises(ValueError, match="trimap: size 90x129 .* does not match the alpha's 90x130"):
        minimatte.processing.force_known_regions(network, trimap[:, 1:])


def test_infer_with_capped_size(det_model):
    model = det_model("small")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (93, 130, 3), dtype=np.uint8)
    image[:, 60:66], image[:, 66:72] = 255, 0  # hard edges, where the bicubic reduction overshoots [0, 1]
    trimap = np.where(rng.random((93, 130)) < 0.5, 128, 255).astype(np.uint8)
    full = minimatte.infer(image, trimap, model=model)
    for size in 130, 2 ** 2000:  # no smaller: the image as it is (a cap too large for a float too)
        np.testing.assert_allclose(minimatte.infer(image, trimap, model=model, max_size=size), full, atol=1e-6)
    capped = minimatte.infer(image, trimap, model=model, max_size=64)
    np.testing.assert_array_equal(minimatte.infer(image, trimap, model=model, max_size=np.int64(64)), capped)
    assert capped.shape == (93, 130) and capped.dtype == np.float32 and 0 <= capped.min() and capped.max() <= 1
    # the network ran on a 64x46 bicubic downscale (93 * 64/130 = 45.8 rows, rounded; trimap: nearest), clipped
    # into [0, 1], then the bicubic enlargement
    small_image = np.stack([np.asarray(Image.fromarray((image[..., c] / 255).astype(np.float32))
                                       .resize((64, 46), Image.BICUBIC)) for c in range(3)], axis=-1)
    assert small_image.min() < 0 and small_image.max() > 1
    small_trimap = minimatte.processing.reduced_trimap(trimap / np.float32(255), (46, 64))
    low = minimatte.infer(np.clip(small_image, 0, 1), small_trimap, model=model, value_range=1.0)
    expected = minimatte.processing.enlarge_alpha(low, (93, 130))
    np.testing.assert_allclose(capped, expected, atol=1e-6)
    assert np.abs(capped - full).max() > 1e-4  # and it is not the full-resolution result
    thin = minimatte.infer(image[:2], trimap[:2], model=model, max_size=32)  # 2x130 to 1x32: no side shrinks to 0
    assert thin.shape == (2, 130) and 0 <= thin.min() and thin.max() <= 1
    for size in 8, 64.0, True:
        with pytest.raises(ValueError, match="max_size: expected an integer of at least 32 pixels, got"):
            minimatte.infer(image, trimap, model=model, max_size=size)
    with pytest.raises(ValueError, match=r"trimap: size 80x130 \(HxW\) does not match the image's 93x130"):
        minimatte.infer(image, trimap[:80], model=model, max_size=64)  # both were resized to one size, unchecked


def test_a_reduced_trimap_keeps_what_its_samples_miss():
    """max_size's trimap: each reduced pixel is the nearest sample, but unknown (128) where its area (the source
    pixels whose centres it holds, as PIL's BOX filter takes them) holds unknown pixels, or foreground and
    background both; so a band thinner than a reduced pixel stays whole, and so does an edge with no band."""
    trimap = np.full((90, 130), 255, np.uint8)
    trimap[:, :40] = 0  # foreground meets background with no band between
    trimap[:, 65] = 128  # one column unknown: the nearest 64x44 reduction samples columns 1, 3, ..., 129
    trimap[60:63, 90:100] = 100  # an unknown patch of another grey
    sampled = np.asarray(Image.fromarray(trimap).resize((64, 44), Image.NEAREST)).astype(np.float32) / 255
    assert not ((sampled > 0) & (sampled < 1))[:, 20:40].any()  # the samples miss the column
    expected = sampled.copy()
    for i in range(44):
        for j in range(64):
            area = trimap[int(i * 90 / 44 + 0.5):int((i + 1) * 90 / 44 + 0.5),
                          int(j * 130 / 64 + 0.5):int((j + 1) * 130 / 64 + 0.5)]
            mixed = ((area > 0) & (area < 255)).any() or (area == 0).any() and (area == 255).any()
            if mixed and sampled[i, j] in (0, 1):
                expected[i, j] = np.float32(128 / 255)
    reduced = minimatte.processing.reduced_trimap(trimap / np.float32(255), (44, 64))
    np.testing.assert_array_equal(reduced, expected)
    assert (reduced[:, 32] == np.float32(128 / 255)).all() and (reduced[:, 19] == np.float32(128 / 255)).all()
    assert sorted(np.unique(reduced) * 255) == pytest.approx([0, 100, 128, 255])


def test_swapped_image_and_trimap_are_one_clear_error(det_model):
    model = det_model("small")
    photo = np.repeat(np.random.default_rng(3).integers(0, 256, (40, 60, 1), dtype=np.uint8), 3, axis=2)  # grey
    trimap = np.zeros((40, 60), np.uint8)
    trimap[10:30, 10:50], trimap[15:25, 20:40] = 128, 255
    for max_size in None, 32:
        with pytest.raises(ValueError, match=r"image: it holds only a trimap's levels \(0, 128, 255\), and the "
                                             r"trimap \d+ grey levels: are the image and the trimap swapped\?"):
            minimatte.infer(np.stack([trimap] * 3, axis=-1), photo, model=model, max_size=max_size)
    coloured = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # refused as the trimap itself
    with pytest.raises(ValueError, match="trimap: 9[0-9]% of its pixels are in colour, as in a photo"):
        minimatte.infer(np.stack([trimap] * 3, axis=-1), coloured, model=model)
    # a grey image of those levels with a trimap of its own is an image like any other, and so is a black and
    # white one (a logo) with a trimap of many levels (drawn with a soft brush)
    assert minimatte.infer(trimap, trimap, model=model).shape == (40, 60)
    four_levels = trimap.copy()
    four_levels[12, 12] = 64  # one level more than a trimap has: a photo's
    with pytest.raises(ValueError, match="the trimap 4 grey levels: are the image and the trimap swapped"):
        minimatte.infer(trimap, four_levels, model=model)
    assert minimatte.infer(np.where(trimap == 255, 255, 0).astype(np.uint8), photo, model=model).shape == (40, 60)
