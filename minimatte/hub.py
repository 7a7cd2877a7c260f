"""Published checkpoints by name: download from the Hugging Face hub with the standard library only.

The four hustvl checkpoints by their short names or hub repo ids, and any other hub repo of a ViTMatte checkpoint (a
fine-tune: "owner/name", as transformers' from_pretrained takes it; a private one with the user's access token,
found as huggingface_hub finds it). Files land in $MINIMATTE_CACHE (default $XDG_CACHE_HOME/minimatte,
~/.cache/minimatte)/NAME/ (NAME: the short name, or the repo id). A download resumes a partial `.part` file (only if
the file is still the one it began: If-Range with the first response's ETag), checks the sha256 where it is known,
and is renamed into place only when complete; weights cut short in the cache since are downloaded again. Processes
that download the same checkpoint at once take turns (a lock file, on POSIX systems): the later ones find it there.
A checkpoint that transformers (huggingface_hub) has already downloaded into the Hugging Face cache is read from
there instead. MINIMATTE_OFFLINE=1 (or HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1, read as huggingface_hub reads
them) never touches the network.
"""
import contextlib
import difflib
import errno
import hashlib
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

from .config import from_hf, read_json
from .convert import WEIGHT_FILES, convert, shard_names
from .processing import expanded_home, file_head, stand_in_kind
from .progress import bar, new_line

CHECKPOINTS = {
    "small-composition-1k": "hustvl/vitmatte-small-composition-1k",
    "base-composition-1k": "hustvl/vitmatte-base-composition-1k",
    "small-distinctions-646": "hustvl/vitmatte-small-distinctions-646",
    "base-distinctions-646": "hustvl/vitmatte-base-distinctions-646",
}
FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
# Without it a checkpoint has the default processor settings (transformers' for ViTMatte, the hustvl repos' own):
# a fine-tune pushed with model.push_to_hub() has none.
OPTIONAL = "preprocessor_config.json"
TIMEOUT_S = 60  # a connection, or a read of a response, that waits longer has failed
# The commit whose files KNOWN_SHA256 fingerprints, downloaded instead of the latest (main): a later edit of
# a file there (a config's new field) would otherwise fail the check, and the checkpoint could not be had.
REVISIONS = {"small-composition-1k": "6a58ad7646403c1df626fbd746900aec7361ea1d"}
KNOWN_SHA256 = {
    ("small-composition-1k", "model.safetensors"): "bda9289db1bb6762d978b42d1c62ae3f34daf7497171a347a1d09657efd788cb",
    ("small-composition-1k", "config.json"): "ae1006f5a83227048b563b2e60709d4203e432b2276949ebef41a8cfeeeaf45f",
    ("small-composition-1k", "preprocessor_config.json"):
        "0db558038b96a3f5c97e46d4ec8966fcc479e9aa58a391bca60b5094a5f7fee0",
}


def _expanded(path):
    """~ and $VARIABLES in a path from the environment expanded, as huggingface_hub expands its own."""
    return os.path.expandvars(os.path.expanduser(path))


def _user_cache():
    """The user's folder for caches: $XDG_CACHE_HOME (where a Linux user has moved them, to a larger disk, say),
    else ~/.cache."""
    return os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")


def cache_dir():
    """$MINIMATTE_CACHE, else minimatte in the user's folder for caches (_user_cache)."""
    return _expanded(os.environ.get("MINIMATTE_CACHE") or os.path.join(_user_cache(), "minimatte"))


OFFLINE_VARIABLES = ("MINIMATTE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _true(variable):
    """Whether the environment variable is true as huggingface_hub reads its own: 1, on, yes or true, in any case
    (so HF_HUB_OFFLINE=false is off for both)."""
    return os.environ.get(variable, "").upper() in ("1", "ON", "YES", "TRUE")


def _offline():
    """The settings that turn offline mode on, for messages: "$NAME=value" of each of OFFLINE_VARIABLES that is
    true (_true), joined by "and"; None where none is."""
    return " and ".join(f"${name}={os.environ[name]}" for name in OFFLINE_VARIABLES if _true(name)) or None


def _hf_home():
    """huggingface_hub's folder: $HF_HOME, else huggingface in the user's folder for caches (_user_cache)."""
    return os.environ.get("HF_HOME") or os.path.join(_user_cache(), "huggingface")


def hf_cache_dir():
    """The Hugging Face hub cache, as huggingface_hub finds it: $HF_HUB_CACHE, else the older $HUGGINGFACE_HUB_CACHE,
    else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    return _expanded(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                     or os.path.join(_hf_home(), "hub"))


def _token():
    """The user's Hugging Face access token, for private repos, as huggingface_hub finds it: $HF_TOKEN (or the older
    $HUGGING_FACE_HUB_TOKEN), else the file that `hf auth login` writes ($HF_TOKEN_PATH, else $HF_HOME/token);
    none where HF_HUB_DISABLE_IMPLICIT_TOKEN is true (_true), which keeps it from requests that do not pass it.
    Returns (token, where it was found), or (None, None) without one."""
    if _true("HF_HUB_DISABLE_IMPLICIT_TOKEN"):
        return None, None
    variable = next((v for v in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if os.environ.get(v)), None)
    if variable:
        token, source = os.environ[variable], "$" + variable
    else:
        source = _expanded(os.environ.get("HF_TOKEN_PATH") or os.path.join(_hf_home(), "token"))
        try:
            with open(source) as file:
                token = file.read()
        except OSError:  # none saved (or unreadable: huggingface_hub finds none either)
            return None, None
    token = token.replace("\r", "").replace("\n", "").strip()
    return (token, source) if token else (None, None)


def repo_id(name):
    """The hub repo of checkpoint `name` (checkpoint_name's)."""
    return CHECKPOINTS.get(name, name)


def _hf_snapshot(name):
    """The Hugging Face cache's snapshot of checkpoint `name` at its main revision, if it holds the config and the
    weights (as transformers leaves it after loading the model), else None. Another repo's snapshot must also say
    what its processor's settings are: their file, or huggingface_hub's record that the repo has none (a
    `.no_exist` entry); its own settings may differ from the defaults, which the hustvl repos' equal."""
    repo = os.path.join(hf_cache_dir(), "models--" + repo_id(name).replace("/", "--"))
    try:
        with open(os.path.join(repo, "refs", "main")) as ref:
            commit = ref.read().strip()
    except OSError:
        return None
    snapshot = os.path.join(repo, "snapshots", commit)

    def present(filename):
        return os.path.isfile(os.path.join(snapshot, filename))  # False for a link whose blob was deleted

    none_there = os.path.exists(os.path.join(repo, ".no_exist", commit, OPTIONAL))  # a 404 huggingface_hub met
    settings = name in CHECKPOINTS or present(OPTIONAL) or none_there
    weights = any(present(filename) for filename in WEIGHT_FILES)
    return snapshot if present("config.json") and weights and settings else None


def _complete(directory):
    """Whether `directory` holds a downloaded checkpoint: FILES but the OPTIONAL one, which comes before the
    weights where the repo has it."""
    return all(os.path.isfile(os.path.join(directory, filename)) for filename in FILES if filename != OPTIONAL)


def _cached(directory, progress):
    """Whether `directory` holds a downloaded checkpoint (_complete) whose weights file is whole. One damaged since
    its download (cut short by a full disk, or by a copy of the cache that stopped: downloads are checked and moved
    into place whole) is removed, saying so if `progress`, to be downloaded again."""
    if not _complete(directory):
        return False
    weights = os.path.join(directory, "model.safetensors")
    damage = _damage(weights)
    if damage is None:
        return True
    try:
        os.unlink(weights)
    except FileNotFoundError:  # another process found it damaged too
        pass
    except OSError as error:
        raise OSError(f"model: the cached {weights!r} is damaged ({damage}) and cannot be removed "
                      f"({error.strerror or error}); remove it, or set MINIMATTE_CACHE to a folder you can "
                      "write") from None
    if _reporting(progress):
        print(f"minimatte: the cached {weights} was damaged ({damage}); removed, to be downloaded again",
              file=sys.stderr)
    return False


def _damage(weights):
    """Why the safetensors file `weights` cannot be read (its header, or its length short of what the header
    describes), or None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(weights, framework="np"):
            return None
    except (SafetensorError, OSError) as error:
        return str(error)


# owner/name as the hub spells repo ids: each part begins with a letter or digit, and has no "..", so that a repo's
# cache folder (cache_dir()/owner/name) lies within the cache
REPO_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FILE_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".onnx")  # "folder/model.pth": a missing file


def checkpoint_name(name):
    """The published checkpoint's short name, for a short name or its hub repo id (as transformers names it; in
    any case, as the hub reads repo ids); another hub repo id as it is (an owner other than hustvl, which publishes
    only these four)."""
    published = {spelt: short for short, repo in CHECKPOINTS.items() for spelt in (short, repo)}
    if name.lower() in published:
        return published[name.lower()]
    if REPO_ID.fullmatch(name) and not name.lower().startswith("hustvl/") and not name.endswith(FILE_EXTENSIONS):
        return name
    page = re.fullmatch(r"https?://[^/]+/([^/]+/[^/?#]+).*", name)  # a repo's web page, copied from the browser
    home = expanded_home(name)  # a path quoted in a shell, or written in Python: its ~ is not expanded
    close = ([home] if home and os.path.exists(home) else [page.group(1)] if page else
             _named_by_words(name) or difflib.get_close_matches(name.lower(), published, n=1))  # a typo's meaning
    raise ValueError(f"model: {name!r} is neither an existing path nor a checkpoint name "
                     f"({', '.join(CHECKPOINTS)}, their hub repo ids, or another hub repo's owner/name)"
                     + (f"; did you mean {' or '.join(map(repr, close))}?" if close else ""))


def _named_by_words(name):
    """The short names that hold every word of `name`, as one may name a checkpoint by its model's size or its
    dataset alone ("small", "vitmatte-base", "composition-1k")."""
    words = set(re.split(r"[-_/\s]+", name.lower())) - {"", "vitmatte", "hustvl"}
    return [short for short in CHECKPOINTS if words and words <= set(short.split("-"))]


def checkpoint_path(source, progress=True):
    """`source` where it is an existing path, else the directory of the checkpoint it names (cached_checkpoint)."""
    path = os.fspath(source)
    return path if os.path.exists(path) else cached_checkpoint(path, progress)


def cached_checkpoint(name, progress=True):
    """The directory of checkpoint `name`: in minimatte's cache, else in the Hugging Face cache, else downloaded
    into minimatte's cache (unless offline), saying so on stderr with its progress (not if `progress` is False)."""
    name = checkpoint_name(name)
    directory = os.path.join(cache_dir(), name)
    if _cached(directory, progress):
        return directory
    snapshot = _hf_snapshot(name)
    if snapshot is not None:
        return snapshot
    offline = _offline()
    if offline:
        raise FileNotFoundError(f"model: {name!r} is neither in the cache ({directory}) nor in the Hugging Face "
                                f"cache ({hf_cache_dir()}) and offline mode is on ({offline}); run `minimatte "
                                f"download {name}` with offline mode off")
    progress = _reporting(progress)
    if progress:
        print(f"minimatte: downloading {name} to {directory} (first use)", file=sys.stderr)
    return download(name, progress)


def _reporting(progress):
    """Whether to report a download on stderr: asked to, and there is one (pythonw and windowed apps' frozen
    builds run with sys.stderr None)."""
    return progress and sys.stderr is not None


def download(name, progress=True):
    """Download every file of checkpoint `name` into the cache, its progress on stderr (unless `progress` is
    False); returns its directory. Offline, a checkpoint that is there already (or in the Hugging Face cache,
    where load finds it too) is ready: its directory is returned, and only a missing one is an error."""
    name, progress = checkpoint_name(name), _reporting(progress)
    if _offline():  # where load finds the checkpoint without the network, or its error that none has it
        return cached_checkpoint(name, progress)
    directory = os.path.join(cache_dir(), name)
    if _cached(directory, progress):  # nothing to write: a read-only cache serves it too
        return directory
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as error:
        raise OSError(f"download: cannot write into the cache folder {directory!r} ({error.strerror or error}); "
                      "set MINIMATTE_CACHE to a folder you can write") from None
    base = os.environ.get("MINIMATTE_HUB_URL") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    base = f"{base.rstrip('/')}/{repo_id(name)}/resolve/{REVISIONS.get(name, 'main')}/"
    with _turn(os.path.join(directory, ".download.lock"), name, progress):
        for filename in FILES:
            target = os.path.join(directory, filename)
            if os.path.isfile(target):  # also where another process has just downloaded it
                continue
            try:
                _fetch(base + filename, target, KNOWN_SHA256.get((name, filename)), progress)
            except _NotFound as error:
                if filename == OPTIONAL:
                    continue
                if filename == "config.json":  # the hub answers 401 for a repo that does not exist, or is private
                    shutil.rmtree(directory, ignore_errors=True)  # nothing is kept of a repo the hub does not serve
                    token, source = _token()
                    readable = (f"that the access token in {source} can read ({error}); the hub refuses a token "
                                "that is no longer valid for public repos too" if token else
                                f"that is public ({error}); for a private one, set HF_TOKEN to an access token that "
                                "can read it, or log in with `hf auth login`")
                    raise FileNotFoundError(f"model: {name!r} is neither an existing path nor a hub repo with a "
                                            f"config.json {readable}") from None
                _fetch_converted(base, directory, name, progress)
            if filename == "config.json":
                _check_config(directory, name)
    return directory


def _fetch_converted(base, directory, name, progress):
    """A repo without a model.safetensors: its shards (an index and the files it names, as save_pretrained writes
    a checkpoint larger than its max_shard_size) or its pytorch_model.bin (or that one's shards), fetched and
    converted into model.safetensors (without torch); the files fetched are then removed."""
    for filename in WEIGHT_FILES[1:]:
        path = os.path.join(directory, filename)
        try:
            if not os.path.isfile(path):  # where it is, an interrupted download fetched it
                _fetch(base + filename, path, None, progress)
        except _NotFound:
            continue
        fetched = [path]
        if filename.endswith(".index.json"):
            fetched += [os.path.join(directory, shard) for shard in shard_names(path)]
            for shard in fetched[1:]:
                if not os.path.isfile(shard):
                    _fetch(base + os.path.basename(shard), shard, None, progress)
        convert(directory, os.path.join(directory, "model.safetensors"))
        for done in fetched:
            os.unlink(done)
        return
    raise FileNotFoundError(f"model: {name!r} has neither a model.safetensors nor a pytorch_model.bin (nor their "
                            "shards) on the hub (an ONNX export, such as Xenova's for transformers.js, is a graph, "
                            "not the checkpoint's weights)")


def _check_config(directory, name):
    """Remove the download folder, and say so, unless its config.json is that of a ViTMatte network minimatte
    runs (config.from_hf): checked before the weights are fetched, which can be gigabytes."""
    try:
        from_hf(read_json(os.path.join(directory, "config.json")))
    except (ValueError, TypeError, AttributeError) as error:  # not JSON, another model's, settings of the wrong kind
        shutil.rmtree(directory, ignore_errors=True)
        raise ValueError(f"model: {name!r} has a config.json that minimatte cannot run ({error})") from None


@contextlib.contextmanager
def _turn(lock, name, progress):
    """Hold an exclusive lock on the file `lock` (made if missing), waiting for it where another process holds
    it: two processes that download into one `.part` file at once would interleave their writes, and one would
    move it into place half-written under the other. The file stays: were it removed, a third process could lock
    a new one while a second still waits on it. POSIX (fcntl); elsewhere no lock is taken. A wait is reported
    on stderr if `progress`."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"minimatte: waiting for another process's download of {name}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _NotFound(RuntimeError):
    pass


class _HubRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, but the access token (an unredirected header, which urllib drops on every redirect) is
    kept on a redirect within the hub, as huggingface_hub keeps it: a renamed repo's old name leads to its new one.
    A redirect to another host, where the hub stores large files (a signed URL), still goes without it."""

    def redirect_request(self, request, response, code, message, headers, new_url):
        redirected = super().redirect_request(request, response, code, message, headers, new_url)
        token = request.unredirected_hdrs.get("Authorization")
        same_origin = redirected is not None and \
            urllib.parse.urlsplit(redirected.full_url)[:2] == urllib.parse.urlsplit(request.full_url)[:2]
        if token and same_origin:  # the same scheme and host: never from https:// to http://
            redirected.add_unredirected_header("Authorization", token)
        return redirected


def _fetch(url, target, sha256, progress):
    """Download url into target through target.part, resuming a .part file left by an interrupted download. The
    ETag of the response that began it is kept beside it (.part.etag) and sent with the resumed request (If-Range):
    where the file has changed since (a repo updated in between), the server sends the whole new file instead of
    the new file's rest, which joined to the old file's start would be neither."""
    partial, validator = target + ".part", target + ".part.etag"
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and os.path.exists(validator):
        with open(validator) as f:
            headers["If-Range"] = f.read()
    request = urllib.request.Request(url, headers=headers)
    token, _ = _token()
    if token:  # to the hub alone (_HubRedirects)
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        response = urllib.request.build_opener(_HubRedirects).open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            response = None
        else:
            kind = _NotFound if error.code in (401, 404) else RuntimeError
            said = error.headers.get("X-Error-Message")  # the hub's reason: a gated repo's terms, a refused token
            raise kind(f"download: {url} failed: HTTP {error.code} {error.reason}" + (f": {said}" if said else "")) \
                from None
    except (urllib.error.URLError, OSError) as error:
        raise RuntimeError(f"download: cannot reach {url} ({getattr(error, 'reason', error)}); "
                           "check the network, or use MINIMATTE_OFFLINE=1 with a filled cache") from None
    if response is not None:
        with response:
            if have and response.status != 206:  # the server ignored the range, or the file changed: start over
                have = 0
            if not have:  # a fresh start: what .part begins with is this response's, known by its ETag if strong
                etag = response.headers.get("ETag", "")
                if etag.startswith('"'):  # not W/"...": If-Range takes strong validators only
                    with open(validator, "w") as f:
                        f.write(etag)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(validator)
            total = int(response.headers.get("Content-Length", 0)) + have
            redrawn = progress and total and sys.stderr.isatty()  # a log gets one line a file, not one a MiB
            broken = ""
            with open(partial, "ab" if have else "wb") as out:
                done = have
                try:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        if redrawn:
                            bar(os.path.basename(target), done / total, f"{done / 2**20:.1f}/{total / 2**20:.1f} MiB")
                except (socket.timeout, ConnectionError) as error:  # stalled or dropped: what came stays for a resume
                    broken = f"; {error or type(error).__name__}"
            if redrawn:
                new_line()
            if broken or total and done < total:
                received = f"{done} of {total} bytes" if total else f"{done} bytes"
                raise RuntimeError(f"download: {url} ended early ({received}{broken}); run again to resume")
            if progress and not redrawn:
                print(f"{os.path.basename(target)}: {done / 2**20:.1f} MiB", file=sys.stderr)
    web_page = stand_in_kind(file_head(partial)) == "web page"  # no hub's answer: a network's sign-in page, say
    digest = None if sha256 is None or web_page else _sha256(partial)
    whole = not web_page and digest == sha256  # both None where no sha256 is known
    if whole:
        shutil.move(partial, target)
    for leftover in (partial, validator):  # the validator either way, and a file that is not the one asked for
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    if web_page:
        raise RuntimeError(f"download: {url} answered with a web page (HTML), not the file: a network's sign-in "
                           "page, or $MINIMATTE_HUB_URL or $HF_ENDPOINT set to an address that is no hub's")
    if not whole:
        raise RuntimeError(f"download: {os.path.basename(target)} has sha256 {digest}, expected {sha256}; the corrupt "
                           "file was removed")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

