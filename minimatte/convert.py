"""Converting checkpoints to minimatte's safetensors, without torch.

Sources: an HF `model.safetensors` (or its directory), an HF `pytorch_model.bin`, either in shards with their
index, or an original hustvl `.pth` (renamed to HF names, spec section 4.2). PyTorch files are zip archives
holding a pickle plus raw storages; the pickle is read by an unpickler that rebuilds tensors and plain containers
only and leaves every other object it names unbuilt (nothing imported, nothing called), so no code from the file
ever runs.
"""
import collections
import json
import os
import pickle
import zipfile

import numpy as np

from .config import read_json
from .files import atomic_output, check_output_path
from .processing import file_head, stand_in_kind
from .weights import (CONFIG_KEY, PROCESSOR_KEY, bfloat16_to_float32, check_state_dict, read_safetensors,
                      read_settings)

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, copied out. A view that reaches beyond its
    storage (a corrupt or hand-made file) is an error, as torch.load refuses it: as_strided does not check, and
    would read whatever memory lies beyond it."""
    size, stride = tuple(size), tuple(stride)
    last = offset + sum((n - 1) * step for n, step in zip(size, stride))  # the view's last element
    if (len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0
            or 0 not in size and last >= len(storage)):
        raise ValueError(f"a tensor of shape {size}, strides {stride} and offset {offset} does not lie within its "
                         f"storage of {len(storage)} values")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * itemsize for s in stride])
    return np.array(view)


def _rebuild_parameter(data, *unused):
    """torch._utils._rebuild_parameter(_with_state): an nn.Parameter's data (its attributes dropped)."""
    return data


def _rebuild_from_type(rebuild, tensor_type, arguments, state):
    """torch._tensor._rebuild_from_type_v2, for a tensor with Python attributes or of a Tensor subclass: the tensor
    that `rebuild` (itself resolved by find_class) makes, its type and attributes dropped."""
    return rebuild(*arguments)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unbuilt:
    """Stands for an object of a class that the pickle names and minimatte does not rebuild: whatever else a
    training run saved beside its weights (its arguments, numpy scalars, a Lightning run's hyperparameters), or a
    whole pickled module. The class is never imported and the pickle's call never made; whatever the pickle then
    does to the object (its state, items) is dropped."""
    pickled_name = "?"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    }

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        return type(name, (_Unbuilt,), {"pickled_name": f"{module}.{name}"})

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent object {pid!r}")
        _, kind, key, _location, _numel = pid
        if not isinstance(kind, _StorageType):  # e.g. torch.QInt8Storage, a quantized tensor's
            raise pickle.UnpicklingError(f"tensors stored as {getattr(kind, 'pickled_name', kind)}, which minimatte "
                                         "does not read (it reads float, integer and bool tensors)")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            dtype = _STORAGE_DTYPES[kind.name]
            if dtype == "bfloat16":
                self.storages[key] = bfloat16_to_float32(raw)
            else:
                self.storages[key] = np.frombuffer(raw, dtype)
        return self.storages[key]


def read_torch_checkpoint(path):
    """The object pickled in a PyTorch zip checkpoint (torch.save since 1.6), tensors as NumPy arrays."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise zipfile.BadZipFile("no single data.pkl inside")
            with archive.open(pickles[0]) as f:
                return _unpickled(_RestrictedUnpickler(f, archive, pickles[0][:-len("data.pkl")]), path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"checkpoint: {path!r} is not a readable PyTorch zip checkpoint ({error}); legacy (pre-1.6) "
                         "torch.save files are not supported") from None


def _unpickled(unpickler, path):
    try:
        return unpickler.load()
    except MemoryError:
        raise
    except Exception as error:  # a corrupt or hand-made pickle fails in any opcode, or in a tensor's arguments
        raise ValueError(f"checkpoint: {path!r} holds a pickle that cannot be read ({type(error).__name__}: "
                         f"{error})") from None


# The patch embedding's weight, by HF's and hustvl's names: the key that tells ViTMatte's tensors from the others
# in a training checkpoint, and a training wrapper's prefix on their names.
_PATCH_EMBEDDING = ("backbone.embeddings.projection.weight", "backbone.patch_embed.proj.weight")


def _is_tensor_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()))


def _holds_patch_embedding(obj):
    return isinstance(obj, dict) and any(isinstance(k, str) and (k == a or k.endswith("." + a))
                                         for k in obj for a in _PATCH_EMBEDDING)


def _state_dict(obj, path):
    """The checkpoint's dict of tensors: the object itself or, in a training checkpoint, the one dict within it
    that holds the patch embedding (under "model" in hustvl's detectron2 checkpoints, "state_dict" in Lightning's,
    "model_state_dict" in PyTorch's tutorial), beside the optimizer's state, the epoch and so on."""
    if _is_tensor_dict(obj):
        return dict(obj)
    found, seen, stack = {}, set(), [(obj, "")]
    while stack:  # every dict and list within obj, depth first; a malicious pickle may nest deep or loop
        value, where = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if _holds_patch_embedding(value):
            found[where] = value
        elif isinstance(value, dict):
            stack.extend((item, f"{where}[{key!r}]") for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    if len(found) > 1:
        places = " and ".join(sorted(found))
        raise ValueError(f"checkpoint: {path!r} holds ViTMatte's tensors in several places ({places}: a network "
                         f"and its EMA, say); save the one to use by itself, e.g. torch.save(checkpoint{min(found)}, "
                         "PATH)")
    if found:
        where, state = found.popitem()
        for key, value in state.items():
            if not isinstance(value, np.ndarray):  # e.g. a quantized tensor, whose rebuild is not read
                kind = f"a pickled {value.pickled_name} object" if isinstance(value, _Unbuilt) else \
                    f"of type {type(value).__name__}"
                raise ValueError(f"checkpoint: {path!r} holds ViTMatte's weights{' under ' + where if where else ''}, "
                                 f"but its {key!r} is {kind}, not a tensor")
        return dict(state)
    if isinstance(obj, _Unbuilt):
        raise ValueError(f"checkpoint: {path!r} holds a pickled {obj.pickled_name} object, not a state dict, and "
                         "minimatte rebuilds no objects but tensors (that would run the code the file names); save "
                         "the network's weights with torch.save(model.state_dict(), PATH)")
    raise ValueError(f"checkpoint: {path!r} does not hold a state dict of tensors (none with the patch embedding's "
                     f"{_PATCH_EMBEDDING[0]!r} or hustvl's {_PATCH_EMBEDDING[1]!r})")


def _unwrapped(state):
    """The state without a training wrapper's prefix on its keys ("module." of torch's DistributedDataParallel,
    "model." of a Lightning module holding the network): the prefix found before the patch embedding's key
    (HF's or hustvl's), removed from every key that has it. Other keys stay, and are unexpected tensors."""
    for anchor in _PATCH_EMBEDDING:
        if anchor in state:
            return state
        prefixes = {k[:-len(anchor)] for k in state if k.endswith("." + anchor)}
        if len(prefixes) == 1:
            prefix = prefixes.pop()
            return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state


def hf_name(original):
    """An original hustvl key -> its HF name (the five rules of convert_vitmatte_to_hf.py, in order)."""
    exact = {"backbone.pos_embed": "backbone.embeddings.position_embeddings",
             "backbone.patch_embed.proj.weight": "backbone.embeddings.projection.weight",
             "backbone.patch_embed.proj.bias": "backbone.embeddings.projection.bias"}
    if original in exact:
        return exact[original]
    name = original.replace("backbone.blocks", "backbone.encoder.layer").replace("attn", "attention")
    return name.replace("fusion_blks", "fusion_blocks").replace("bn", "batch_norm")


def _is_safetensors(path, head):
    """Whether a file is named or begins (`head`) as safetensors files do (convert writes any name it is given):
    the length of their JSON header (8 bytes, little-endian), then the header. PyTorch's files are zip archives
    ("PK")."""
    return path.endswith(".safetensors") or head[8:9] == b"{"


# A directory's weights, in the order they are looked for: save_pretrained's one file, or its shards and their
# index where the checkpoint was saved with a max_shard_size below its size.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _weights_file(source):
    """The file of a checkpoint (a file, or a folder's first WEIGHT_FILES) that holds its weights or their shards'
    index."""
    source = os.fspath(source)
    if os.path.isdir(source):
        files = [os.path.join(source, f) for f in WEIGHT_FILES]
        if not any(os.path.isfile(f) for f in files):
            raise FileNotFoundError(f"checkpoint: {source!r} has neither model.safetensors nor pytorch_model.bin "
                                    "(nor their shards' index)")
        return next(f for f in files if os.path.isfile(f))
    if not os.path.isfile(source):
        raise FileNotFoundError(f"checkpoint: no such file or directory {source!r}")
    return source


def read_any(source):
    """(state dict, Config, ProcessorConfig) from any supported checkpoint file or directory. The HF json files
    in the directory, or beside the file, give the settings, as transformers' from_pretrained reads a checkpoint's
    folder; the settings in a minimatte file's metadata take precedence."""
    source = _weights_file(source)
    if source.lower().endswith(".onnx"):  # e.g. the Xenova/vitmatte-* exports, for transformers.js
        raise ValueError(f"checkpoint: {source!r} is an ONNX export, a graph rather than the checkpoint's named "
                         "weights; give the checkpoint itself (safetensors or PyTorch), e.g. small-composition-1k")
    if source.endswith(".index.json"):  # the shards' tensors
        state, metadata = {}, {}
        for shard in _shards(source):
            state.update(_read_weights(shard)[0])
    else:
        state, metadata = _read_weights(source)
    state = _unwrapped(state)
    if any(k.startswith("backbone.blocks.") or k == "backbone.pos_embed" for k in state):
        state = {hf_name(k): v for k, v in state.items()}
    return (state, *read_settings(state, metadata, os.path.dirname(source)))


# What to do about each processing.stand_in_kind that a weights file turns out to be. A hub repo cloned without Git
# LFS installed holds pointers; a hub file's page (.../blob/main/model.safetensors) is HTML, its file .../resolve/...
_NOT_WEIGHTS = {
    "empty": "the file is empty",
    "Git LFS pointer": "it is a Git LFS pointer, which its repository holds in place of the weights where it was "
                       "cloned without Git LFS; fetch them with `git lfs pull` there, or give the checkpoint's hub "
                       "repo id (downloaded into the cache)",
    "web page": "it is a web page (HTML), such as a hub file's page (.../blob/main/model.safetensors) saved in "
                "place of the file (.../resolve/main/...); download that, or give the checkpoint's hub repo id "
                "(downloaded into the cache)",
}


def _read_weights(path):
    """(state dict, metadata) of one safetensors or PyTorch file."""
    head = file_head(path)
    kind = stand_in_kind(head)
    if kind in _NOT_WEIGHTS:
        raise ValueError(f"checkpoint: {path!r} is not a checkpoint: {_NOT_WEIGHTS[kind]}")
    if _is_safetensors(path, head):
        return read_safetensors(path)
    return _state_dict(read_torch_checkpoint(path), path), {}


def shard_names(index):
    """The file names of the shards that a sharded checkpoint's index (its `weight_map`: tensor name -> file in
    the index's folder) names: model.safetensors.index.json's end in .safetensors, pytorch_model.bin.index.json's
    in .bin (model-00001-of-00002.safetensors, ...)."""
    try:
        names = set(read_json(index)["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"checkpoint: {index!r} is not a shard index with a weight_map ({error})") from None
    unsharded = os.path.basename(index)[:-len(".index.json")]  # model.safetensors, pytorch_model.bin
    extension = os.path.splitext(unsharded)[1]
    for name in names:
        if not (isinstance(name, str) and os.path.basename(name) == name and name.endswith(extension)):
            raise ValueError(f"checkpoint: {index!r} names a shard {name!r}, not a {extension} file's name")
        if name in WEIGHT_FILES:  # read instead of the shards, and written over by their conversion
            raise ValueError(f"checkpoint: {index!r} names a shard {name!r}, the whole checkpoint's file name")
    return sorted(names)


def _shards(index):
    """The paths of the shards that a sharded checkpoint's index names, each a file beside it."""
    paths = [os.path.join(os.path.dirname(index), name) for name in shard_names(index)]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint: {index!r} names a shard {os.path.basename(path)!r} that is not "
                                    "beside it")
    return paths


def convert(source, destination, dtype="float32"):
    """Write `source` as one safetensors file with its config in the metadata; returns the destination.

    dtype "float16" halves the file; the model still computes in float32. The file is written next to
    the destination and renamed into place, so a failure never leaves a partial file; a device or a pipe
    (/dev/null, to check that a checkpoint converts) is written in place.
    """
    from safetensors.numpy import save_file

    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype: expected 'float32' or 'float16', got {dtype!r}")
    destination = os.fspath(destination)
    check_output_path(destination, "destination")  # before the source is read
    weights = _weights_file(source)
    read = _shards(weights) + [weights] if weights.endswith(".index.json") else [weights]
    for path in read if os.path.exists(destination) else ():
        if os.path.samefile(destination, path):  # in place it would lose a training checkpoint's other contents
            raise ValueError(f"destination: {destination!r} is the source file {path!r}; writing it would destroy "
                             "it, so give the conversion another name")
    state, config, processor = read_any(source)
    check_state_dict(state, config)
    tensors = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in state.items()
               if not k.endswith("num_batches_tracked")}
    with atomic_output(destination, "destination") as tmp:
        save_file(tensors, tmp, metadata={CONFIG_KEY: json.dumps(config.to_dict()),
                                          PROCESSOR_KEY: json.dumps(processor.to_dict())})
    return destination
