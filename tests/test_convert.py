"""Checkpoint conversion without torch, from files that torch and transformers wrote."""
import argparse
import collections
import io
import json
import os
import pickle
import re
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minimatte
from minimatte import cli, convert
from minimatte.convert import hf_name
from reference import hf_alphas, require_reference
from helpers import REFERENCE, read_named_pipe


PIXELS = np.random.default_rng(7).uniform(-1, 1, (1, 4, 96, 128)).astype(np.float32)


def original_names():
    """{HF key: hustvl's original key} of ViTMatte-S, from the reference's key list."""
    rows = [r.split("\t") for r in (REFERENCE / "vitmatte_small_keys.tsv").read_text().splitlines()[1:]]
    return {hf: original for hf, original, _, _ in rows}


def test_original_names_map_to_hf_names():
    names = original_names()
    assert len(names) == 258
    for hf, original in names.items():
        assert hf_name(original) == hf


@pytest.fixture
def reference_model(det_state, det_reference):
    return det_state("small"), det_reference("small")


@pytest.mark.parametrize("layout", ["safetensors", "bin", "original_pth", "sharded safetensors", "sharded bin"])
def test_conversions_give_the_reference_alphas(layout, tmp_path, reference_model, capsys):
    torch, _ = require_reference()
    state, model = reference_model
    if layout == "original_pth":
        original = {o: torch.from_numpy(state[h]) for h, o in original_names().items()}
        source = tmp_path / "ViTMatte_S_Com.pth"
        torch.save({"model": original, "iteration": 5}, source)
    elif layout == "safetensors":
        source = tmp_path / "hf"
        model.save_pretrained(source)
        assert (source / "model.safetensors").exists()
    elif layout == "sharded safetensors":  # a checkpoint larger than save_pretrained's max_shard_size
        source = tmp_path / "hf"
        model.save_pretrained(source, max_shard_size="30MB")
        assert len(convert.shard_names(source / "model.safetensors.index.json")) == 4
    elif layout == "sharded bin":  # as transformers 4 wrote them with safe_serialization=False
        source = tmp_path / "hf"
        model.config.save_pretrained(source)
        tensors = model.state_dict()
        shards = {f"pytorch_model-0000{i + 1}-of-00003.bin": list(tensors)[i::3] for i in range(3)}
        for name, keys in shards.items():
            torch.save({k: tensors[k] for k in keys}, source / name)
        weight_map = {k: name for name, keys in shards.items() for k in keys}
        (source / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        # The hub's pytorch_model.bin files: torch.save of the state dict beside config.json (transformers 5
        # itself no longer writes .bin files).
        source = tmp_path / "hf"
        model.config.save_pretrained(source)
        torch.save(model.state_dict(), source / "pytorch_model.bin")
    destination = tmp_path / "out" / "converted.safetensors"
    assert cli.main(["convert", str(source), str(destination)]) == 0
    converted = minimatte.load(destination)
    assert converted.config == minimatte.PRESETS["small"]
    back, _, _ = convert.read_any(destination)
    assert sorted(back) == sorted(k for k in state if not k.endswith("num_batches_tracked"))  # no unused counters
    for key, value in back.items():  # float32 round trip is bit-identical
        np.testing.assert_array_equal(value, state[key])
    assert np.abs(converted(PIXELS).alphas - hf_alphas(model, PIXELS)).max() <= 1e-5
    direct = minimatte.load(source)  # the source itself loads too
    np.testing.assert_array_equal(direct(PIXELS).alphas, converted(PIXELS).alphas)
    # converting onto a file the source reads (its weights, a shard) is refused: it would be lost
    own = source if source.is_file() else min(path for path in source.iterdir() if path.name != "config.json")
    before, _ = own.read_bytes(), capsys.readouterr()
    assert cli.main(["convert", str(source), str(own), "--dtype", "float16"]) == 2
    assert capsys.readouterr().err == (f"minimatte: error: destination: {str(own)!r} is the source file "
                                       f"{str(own)!r}; writing it would destroy it, so give the conversion another "
                                       "name\n")
    assert own.read_bytes() == before


def test_a_broken_shard_index_is_named(tmp_path, det_state):
    from safetensors.numpy import save_file

    state = det_state("small")
    save_file(state, str(tmp_path / "model-00001-of-00001.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    broken = [
        ({k: "model-00001-of-00002.safetensors" for k in state}, FileNotFoundError,
         "names a shard 'model-00001-of-00002.safetensors' that is not beside it$"),
        ({"a": "../model-00001-of-00001.safetensors"}, ValueError,
         r"names a shard '\.\./model-00001-of-00001\.safetensors', not a \.safetensors file's name$"),
        ({"a": "config.json"}, ValueError, r"names a shard 'config\.json', not a \.safetensors file's name$"),
        ({"a": "model.safetensors"}, ValueError, r"names a shard 'model\.safetensors', the whole checkpoint's file "
                                                 r"name$"),
        ([], ValueError, "is not a shard index with a weight_map"),
    ]
    for weight_map, kind, error in broken:
        index.write_text(json.dumps({"weight_map": weight_map}))
        with pytest.raises(kind, match="^checkpoint: '.*model.safetensors.index.json' " + error):
            minimatte.load(tmp_path)
    index.write_text(json.dumps({"weight_map": {k: "model-00001-of-00001.safetensors" for k in state}}))
    np.testing.assert_array_equal(minimatte.load(index)(PIXELS).alphas,
                                  minimatte.VitMatte.from_state_dict(state)(PIXELS).alphas)


def test_float16_storage(tmp_path, reference_model):
    state, model = reference_model
    require_reference()
    model.save_pretrained(tmp_path / "hf")
    full = convert.convert(tmp_path / "hf", tmp_path / "f32.safetensors")
    half = convert.convert(tmp_path / "hf", tmp_path / "f16.safetensors", dtype="float16")
    assert os.path.getsize(half) < 0.51 * os.path.getsize(full)
    alphas = minimatte.load(half)(PIXELS).alphas
    assert alphas.dtype == np.float32
    assert np.abs(alphas - hf_alphas(model, PIXELS)).max() < 2e-3


def test_a_converted_file_loads_whatever_its_name(tmp_path, det_state, capsys):
    """`minimatte convert SRC model.bin` writes safetensors under the name it is given: load reads the file's
    first bytes, not only its extension. The file has the permissions of a new file (0o666 less the umask), as
    others written with open(), also with safetensors 0.8, whose save_file replaces its file with an owner-only
    one."""
    from safetensors.numpy import save_file

    save_file(det_state("small"), str(tmp_path / "det.safetensors"))
    want = minimatte.load(tmp_path / "det.safetensors")(PIXELS).alphas
    umask = os.umask(0o022)
    try:
        latin_1 = [os.fsdecode(b"d\xe9t")] if sys.platform.startswith("linux") else []  # a name of any bytes
        for name in ["det.bin", "det"] + latin_1:
            assert cli.main(["convert", str(tmp_path / "det.safetensors"), str(tmp_path / name)]) == 0
            np.testing.assert_array_equal(minimatte.load(tmp_path / name)(PIXELS).alphas, want)
            assert os.name != "posix" or os.stat(tmp_path / name).st_mode & 0o777 == 0o644
            printed = str(tmp_path / name).encode("utf-8", "backslashreplace").decode()  # as stderr escapes it
            assert capsys.readouterr().out == printed + "\n"
    finally:
        os.umask(umask)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_convert_writes_a_pipe_in_place(tmp_path, det_state):
    """`minimatte convert SRC /dev/null` (to check that a checkpoint converts) must not replace /dev/null with a
    regular file, as writing next to it and renaming, or safetensors 0.8's save_file, would: a device or a pipe
    is written in place, the bytes of the file convert writes. Tested on a named pipe."""
    from safetensors.numpy import save_file

    save_file(det_state("small"), str(tmp_path / "det.safetensors"))
    assert cli.main(["convert", str(tmp_path / "det.safetensors"), str(tmp_path / "file.safetensors")]) == 0
    written = read_named_pipe(tmp_path / "pipe")
    assert cli.main(["convert", str(tmp_path / "det.safetensors"), str(tmp_path / "pipe")]) == 0
    streamed, file = written(), (tmp_path / "file.safetensors").read_bytes()
    assert streamed is not None and stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)

    def header_and_data(contents):  # the header's JSON, whose keys safetensors orders differently each time
        length = int.from_bytes(contents[:8], "little")
        return json.loads(contents[8:8 + length]), contents[8 + length:]
    assert header_and_data(streamed) == header_and_data(file)


def test_a_training_wrappers_prefix_is_removed(tmp_path, det_state):
    """Fine-tuned checkpoints as training code saves them: DistributedDataParallel's "module." on every key, a
    Lightning module's "model." under "state_dict" (with its own extras, named as unexpected), hustvl's names."""
    torch, _ = require_reference()
    from safetensors.numpy import save_file

    state = det_state("small")
    want = minimatte.VitMatte.from_state_dict(state)(PIXELS).alphas
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    torch.save({f"module.{k}": v for k, v in tensors.items()}, tmp_path / "ddp.pth")
    torch.save({"state_dict": {f"model.{k}": v for k, v in tensors.items()}, "epoch": 3}, tmp_path / "lightning.ckpt")
    original = {o: state[h] for h, o in original_names().items()}
    save_file({f"module.{k}": v for k, v in original.items()}, str(tmp_path / "original.safetensors"))
    for name in ("ddp.pth", "lightning.ckpt", "original.safetensors"):
        np.testing.assert_array_equal(minimatte.load(tmp_path / name)(PIXELS).alphas, want)
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in tensors.items()}, "loss.weight": torch.ones(1)}},
               tmp_path / "extras.ckpt")
    with pytest.raises(ValueError, match="unexpected tensor 'loss.weight'"):
        minimatte.load(tmp_path / "extras.ckpt")


def test_bfloat16_and_parameter_tensors(tmp_path, det_state):
    """Tensors stored as bfloat16 (a training run's), in PyTorch files and in safetensors files (for which NumPy
    has no type), read as the float32 values torch gives them; tensors pickled as nn.Parameter (a dict of a
    model's named_parameters) or with Python attributes as their data."""
    torch, _ = require_reference()
    from safetensors.torch import save_file

    state = det_state("small")
    half = {k: torch.from_numpy(v).to(torch.bfloat16) if v.dtype == np.float32 else torch.from_numpy(v)
            for k, v in state.items()}
    torch.save(half, tmp_path / "bf16.pth")
    save_file(half, str(tmp_path / "bf16.safetensors"), metadata={"format": "pt"})
    for name in ("bf16.pth", "bf16.safetensors"):
        read, _, _ = convert.read_any(tmp_path / name)
        assert read.keys() == half.keys()
        for key, value in half.items():
            want = value.float().numpy() if value.is_floating_point() else value.numpy()
            assert read[key].dtype == want.dtype and read[key].shape == want.shape
            np.testing.assert_array_equal(read[key], want)
    parameters = {k: torch.nn.Parameter(torch.from_numpy(v), requires_grad=False) for k, v in state.items()}
    torch.save(parameters, tmp_path / "parameters.pth")
    tagged = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    for tensor in [*tagged.values(), *parameters.values()]:
        tensor.no_weight_decay = True  # Python attributes: pickled through other rebuild functions
    torch.save(tagged, tmp_path / "tagged_tensors.pth")
    torch.save(parameters, tmp_path / "tagged_parameters.pth")
    for name in ("parameters.pth", "tagged_tensors.pth", "tagged_parameters.pth"):
        read, _, _ = convert.read_any(tmp_path / name)
        assert read.keys() == state.keys() and all(np.array_equal(read[k], v) for k, v in state.items())


class _Evil:
    """Pickles as a call of os.system that would create the file `witness`."""
    def __init__(self, witness):
        self.witness = witness

    def __reduce__(self):
        return os.system, (f"touch '{self.witness}'",)


def _zip_with_pickle(path, pickled, storage=None):
    """A zip archive laid out as torch.save writes one: `pickled` (an object, or a pickle's bytes) as its data.pkl
    and `storage` (bytes), if given, as its storage "0"."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl",
                         pickled if isinstance(pickled, bytes) else pickle.dumps(pickled, protocol=2))
        archive.writestr("archive/version", "3\n")
        if storage is not None:
            archive.writestr("archive/data/0", storage)


class _StoragePickler(pickle.Pickler):
    """Pickles a ("storage", storage type, key, location, size) tuple as torch.save pickles a tensor's storage: as
    a persistent id."""
    def persistent_id(self, obj):
        return obj if isinstance(obj, tuple) and obj[:1] == ("storage",) else None


def _with_storages(obj):
    """`obj` pickled by _StoragePickler (protocol 2, as torch.save's)."""
    pickled = io.BytesIO()
    _StoragePickler(pickled, protocol=2).dump(obj)
    return pickled.getvalue()


def test_code_in_pickle_is_never_run(tmp_path):
    """A call the pickle asks for (os.system here) is never made (test_training_checkpoints has one beside the
    weights)."""
    witness = tmp_path / "pwned"
    _zip_with_pickle(tmp_path / "evil.pth", {"model": _Evil(witness)})
    with pytest.raises(ValueError, match="does not hold a state dict of tensors"):
        convert.read_any(tmp_path / "evil.pth")
    assert cli.main(["convert", str(tmp_path / "evil.pth"), str(tmp_path / "out.safetensors")]) == 2
    assert not (tmp_path / "out.safetensors").exists() and not list(tmp_path.glob(".minimatte-*"))
    assert not witness.exists()


def test_a_pickle_whose_containers_loop_is_read_in_finite_time(tmp_path):
    """The search for the weights visits each container once: a list that holds itself (a hand-made pickle) is
    one error, not an endless loop. In a child process, so that a loop would fail the test, not hang the suite."""
    looped = []
    looped.append(looped)
    _zip_with_pickle(tmp_path / "looped.pth", {"model": looped, "runs": [looped, looped]})
    child = subprocess.run([sys.executable, "-c", "import sys, minimatte; minimatte.convert.read_any(sys.argv[1])",
                            "looped.pth"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "does not hold a state dict of tensors" in child.stderr.splitlines()[-1]


class _Hyperparameters(dict):
    """A dict subclass, as Lightning keeps a run's hyperparameters (its AttributeDict)."""


def test_training_checkpoints(tmp_path, det_state):
    """The weights within what training code saves beside them: PyTorch's tutorial layout (model_state_dict), a
    run's arguments (argparse.Namespace), numpy scalars, torch.Size, sets, bytes and dict subclasses (pickled as
    calls, then filled), nested anywhere, torch.compile's prefix on the names, and a call of os.system, which is
    never made. Several sets of ViTMatte's weights (a network and its EMA), or a whole pickled module, are an
    error that says what to save instead."""
    torch, _ = require_reference()

    state = det_state("small")
    want = minimatte.VitMatte.from_state_dict(state)(PIXELS).alphas
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    extras = {"args": argparse.Namespace(lr=1e-4, size=(512, 512)), "best_sad": np.float64(21.46),
              "shape": torch.Size([4, 3]), "classes": {"fg", "bg"}, "tag": b"run-7",
              "counts": collections.defaultdict(int, fg=2), "hyper_parameters": _Hyperparameters(lr=1e-4),
              "hooks": [_Evil(tmp_path / "pwned")]}
    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([parameter])
    parameter.sum().backward()
    optimizer.step()  # its state: a dict of tensors (step, exp_avg, exp_avg_sq) per parameter
    torch.save({"epoch": 3, "model_state_dict": tensors, "optimizer_state_dict": optimizer.state_dict(), **extras},
               tmp_path / "tutorial.pth")
    torch.save({"runs": [{"weights": {f"_orig_mod.{k}": v for k, v in tensors.items()}}], **extras},
               tmp_path / "nested.pth")
    torch.save((tensors, optimizer.state_dict()), tmp_path / "pair.pth")  # a tuple: torch.save((model, optim))
    for name in ("tutorial.pth", "nested.pth", "pair.pth"):
        np.testing.assert_array_equal(minimatte.load(tmp_path / name)(PIXELS).alphas, want)
    assert not (tmp_path / "pwned").exists()
    torch.save({"model": tensors, "model_ema": {k: v.clone() for k, v in tensors.items()}}, tmp_path / "ema.pth")
    with pytest.raises(ValueError, match=r"holds ViTMatte's tensors in several places \(\['model'\] and "
                                         r"\['model_ema'\]: a network and its EMA, say\); save the one to use"):
        minimatte.load(tmp_path / "ema.pth")
    for value, kind in ((3, "of type int"), (argparse.Namespace(), "a pickled argparse.Namespace object")):
        torch.save({"model": {**tensors, "backbone.encoder.layer.0.mlp.fc1.weight": value}, "epoch": 3},
                   tmp_path / "odd.pth")
        with pytest.raises(ValueError, match=rf"^checkpoint: '.*odd.pth' holds ViTMatte's weights under \['model'\], "
                                             rf"but its 'backbone.encoder.layer.0.mlp.fc1.weight' is {kind}, not a "
                                             r"tensor$"):
            minimatte.load(tmp_path / "odd.pth")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(ValueError, match=r"holds a pickled torch.nn.modules.linear.Linear object, not a state dict"
                                         r".*torch.save\(model.state_dict\(\), PATH\)"):
        minimatte.load(tmp_path / "module.pth")


def _rebuild_tensor_v2(*args):
    """Pickled by name as a stand-in for torch's, then renamed torch._utils' (_tensor_view_pickle)."""


class FloatStorage:
    """Pickled by name as a stand-in for torch's, then renamed torch's (_tensor_view_pickle)."""


class _TensorView:
    """Pickles as torch.save pickles a float32 tensor, a view of the 4 values of storage "0"."""
    def __init__(self, offset, size, stride):
        self.view = offset, size, stride

    def __reduce__(self):
        offset, size, stride = self.view
        return _rebuild_tensor_v2, (("storage", FloatStorage, "0", "cpu", 4), offset, size, stride, False, {})


def _tensor_view_pickle(path, view):
    """A torch.save-like file whose one tensor is `view` (_TensorView) of a storage of 4 float32 values."""
    pickled = _with_storages({"backbone.embeddings.projection.weight": view})
    for name, module in (("_rebuild_tensor_v2", "torch._utils"), ("FloatStorage", "torch")):  # as torch's
        pickled = pickled.replace(f"c{__name__}\n{name}\n".encode(), f"c{module}\n{name}\n".encode())
    _zip_with_pickle(path, pickled, np.arange(4, dtype=np.float32).tobytes())


def test_tensor_views_beyond_their_storage_are_refused(tmp_path):
    """A tensor's view of its storage (offset, shape, strides) is checked to lie within it, as torch.load checks
    it: NumPy's as_strided would read whatever memory lies beyond (a large view crashes the process)."""
    path = tmp_path / "views.pth"
    for offset, size, stride in ((0, (2, 2), (2, 1)), (3, (1,), (1,)), (0, (4, 2), (1, 0)), (9, (0, 3), (3, 1))):
        _tensor_view_pickle(path, _TensorView(offset, size, stride))
        view = convert.read_torch_checkpoint(path)["backbone.embeddings.projection.weight"]
        expected = np.lib.stride_tricks.as_strided(np.arange(4, dtype=np.float32)[offset:], size,
                                                   [4 * step for step in stride]) if offset < 4 else np.zeros(size)
        np.testing.assert_array_equal(view, expected)
    for offset, size, stride in ((0, (8,), (1,)), (1, (4,), (1,)), (3, (2, 2), (-1, 1)), (-2, (2,), (1,)),
                                 (0, (2, 2), (1,))):
        _tensor_view_pickle(path, _TensorView(offset, size, stride))
        with pytest.raises(ValueError, match=rf"^checkpoint: '.*views.pth' holds a pickle that cannot be read "
                                             rf"\(ValueError: a tensor of shape {re.escape(str(size))}, strides "
                                             rf"{re.escape(str(stride))} and offset {offset} does not lie within its "
                                             r"storage of 4 values\)$"):
            minimatte.load(path)


class _QInt8Storage:
    """Stands for torch's storage type of quantized tensors, which minimatte does not read."""


def test_truncated_and_corrupt_files(tmp_path, reference_model):
    torch, _ = require_reference()
    state, _ = reference_model
    good = tmp_path / "good.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint" + os.urandom(4096))  # its byte 8 not a safetensors header's "{"
    photos = tmp_path / "photos.zip"  # a zip archive, but no torch.save's: no data.pkl in it
    with zipfile.ZipFile(photos, "w") as archive:
        archive.writestr("photos/a.png", b"")
    twice = tmp_path / "twice.pth"  # two checkpoints' data.pkl in one archive: which one is meant is a guess
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(twice, "w") as archive:
        for entry in source.namelist():
            for copy in ("one/", "two/"):
                archive.writestr(copy + entry.split("/", 1)[1], source.read(entry))
    for bad in (truncated, garbage, photos, twice):
        with pytest.raises(ValueError, match="is not a readable PyTorch zip checkpoint"):
            convert.convert(bad, tmp_path / "never.safetensors")
    head_bias = "decoder.matting_head.matting_convs.3.bias"  # a tensor missing: refused, as loading it would be
    torch.save({k: torch.from_numpy(v) for k, v in state.items() if k != head_bias}, tmp_path / "incomplete.pth")
    with pytest.raises(ValueError, match=f"^weights: missing tensor '{head_bias}'"):
        convert.convert(tmp_path / "incomplete.pth", tmp_path / "never.safetensors")
    with pytest.raises(ValueError, match="^dtype: expected 'float32' or 'float16', got 'float64'$"):
        convert.convert(good, tmp_path / "never.safetensors", dtype="float64")
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob(".minimatte-*"))
    for onnx in tmp_path / "model.onnx", tmp_path / "MODEL.ONNX":
        onnx.write_bytes(b"\x08\x07\x12\x07pytorch")  # an ONNX protobuf's first fields
        with pytest.raises(ValueError, match=rf"checkpoint: '.*{onnx.name}' is an ONNX export, a graph rather than "
                                             r"the checkpoint's named weights; give the checkpoint itself"):
            minimatte.load(onnx)
    _zip_with_pickle(tmp_path / "notensors.pth", {"model": [1, 2, 3]})
    with pytest.raises(ValueError, match="does not hold a state dict of tensors"):
        convert.convert(tmp_path / "notensors.pth", tmp_path / "never.safetensors")
    # a zip archive whose pickle is cut short, or calls a tensor's rebuild with no arguments
    for name, pickled, error in (("cut.pth", pickle.dumps({"model": {}}, protocol=2)[:-3],
                                  "UnpicklingError: pickle data was truncated"),
                                 ("noargs.pth", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)R.",
                                  "TypeError: _rebuild_tensor\\(\\) missing 4 required positional arguments")):
        _zip_with_pickle(tmp_path / name, pickled)
        with pytest.raises(ValueError, match=rf"^checkpoint: '.*{name}' holds a pickle that cannot be read \({error}"):
            minimatte.load(tmp_path / name)
    quantized = ("storage", _QInt8Storage, "0", "cpu", 4)  # a quantized tensor's storage, as torch.save pickles it
    _zip_with_pickle(tmp_path / "quantized.pth", _with_storages({"model": {
        "backbone.embeddings.projection.weight": quantized}}))
    with pytest.raises(ValueError, match=r"holds a pickle that cannot be read \(UnpicklingError: tensors stored as "
                                         r"test_convert._QInt8Storage, which minimatte does not read \(it reads float, "
                                         r"integer and bool tensors\)\)$"):
        minimatte.load(tmp_path / "quantized.pth")
