"""Downloads against a real HTTP server on loopback, and the command line."""
import errno
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save, save_file

import minimatte
from minimatte import PRESETS, backend, cli, hub, metrics, processing
from minimatte.model import stage_flops
from minimatte.foreground import cutout
from helpers import DATA, SMALL_HUB_CONFIG, gamma_profile, grey_profile, recording_opens
from reference import require

NAME = "small-distinctions-646"  # no known hashes: tests below set their own
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Terminal(io.StringIO):
    """stderr as a terminal, where progress is a bar redrawn in place."""

    def isatty(self):
        return True

    def frames(self):
        """What each redraw showed: the output cut at carriage returns, without the blanks at the ends of lines
        that cover the rest of a longer line before. Plain text: no escape sequences, which consoles may print."""
        shown = self.getvalue()
        assert "\x1b" not in shown
        return [re.sub(r" +(?=\n|$)", "", frame) for frame in shown.split("\r")]


class Hub(http.server.ThreadingHTTPServer):
    """Serves {path: bytes} in the hub layout; honours Range and If-Range; can cut a response short once, or hold it
    halfway until an event is set (`hold`: {path: threading.Event}), or answer a path with a redirect to another, as the
    hub answers its large files (`redirects`: {path: path, or another server's URL}). HEAD answers with the commit and
    ETag headers that huggingface_hub's downloads read. A missing path is answered with `not_found`: 404 with the
    headers of the hub's answer for a file that a repo does not hold, or 401, its answer for a repo that does not exist.
    `weak_etags`: its ETags are weak ones (W/"..."), which If-Range never matches. `private`: {path prefix: token},
    answered 401 without "Authorization: Bearer TOKEN", or 403 with the terms of a gated repo where the token is None;
    the hub's reason in X-Error-Message. `authorizations` records each GET's (path, Authorization)."""

    def __init__(self, files):
        self.files, self.cut_once, self.hold, self.redirects, self.requests = files, set(), {}, {}, []
        self.not_found, self.weak_etags, self.private, self.authorizations = 404, False, {}, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(handler):
                self.requests.append((handler.path, "HEAD"))
                send_headers(handler, self.files.get(handler.path), 0)

            def do_GET(handler):
                self.requests.append((handler.path, handler.headers.get("Range")))
                given = handler.headers.get("Authorization")
                self.authorizations.append((handler.path, given))
                for prefix, token in self.private.items():
                    if handler.path.startswith(prefix) and (token is None or given != f"Bearer {token}"):
                        code, reason = ((403, f"Access to model {'/'.join(prefix.split('/')[1:3])} is restricted. "
                                              "You must have access to it and be authenticated to access it.")
                                        if token is None else
                                        (401, "Invalid credentials in Authorization header") if given else
                                        (401, "Repository not found"))
                        handler.send_response(code)
                        handler.send_header("X-Error-Message", reason)
                        handler.send_header("Content-Length", "0")
                        handler.end_headers()
                        return
                if handler.path in self.redirects:
                    target = self.redirects[handler.path]
                    handler.send_response(302)
                    handler.send_header("Location", target if "://" in target else self.url + target)
                    handler.send_header("Content-Length", "0")
                    handler.end_headers()
                    return
                body = self.files.get(handler.path)
                start = int(handler.headers["Range"][6:-1]) if handler.headers.get("Range") else 0
                if handler.headers.get("If-Range", etag(body)) != etag(body):
                    start = 0  # the file has changed since the client's first part: all of it (RFC 9110 13.1.5)
                if not send_headers(handler, body, start):
                    return
                if handler.path in self.cut_once:
                    self.cut_once.discard(handler.path)
                    handler.wfile.write(body[start:start + len(body) // 2])
                    handler.close_connection = True
                    return
                if handler.path in self.hold:
                    middle = start + (len(body) - start) // 2
                    handler.wfile.write(body[start:middle])
                    handler.wfile.flush()
                    self.hold[handler.path].wait(60)
                    start = middle
                handler.wfile.write(body[start:])

        def etag(body):
            return f'"{hashlib.sha256(body).hexdigest()}"' if body is not None else None

        def send_headers(handler, body, start):
            if body is None:
                handler.send_response(self.not_found)
                if self.not_found == 404:  # as the hub answers for a file that a repo it serves does not hold
                    handler.send_header("X-Error-Code", "EntryNotFound")
                    handler.send_header("X-Repo-Commit", HUB_COMMIT)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return False
            if start and start >= len(body):
                handler.send_error(416)  # Range Not Satisfiable: nothing is left from there on
                return False
            handler.send_response(206 if start else 200)
            handler.send_header("Content-Length", str(len(body) - start))
            handler.send_header("ETag", ("W/" if self.weak_etags else "") + etag(body))
            handler.send_header("X-Repo-Commit", HUB_COMMIT)
            handler.end_headers()
            return True

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a stalled download's) closed the connection: not the tests' stderr's business


@pytest.fixture
def served(tmp_path, monkeypatch, det_state):
    weights = tmp_path / "w.safetensors"
    save_file({k: v for k, v in det_state("small").items()}, str(weights))
    repo = "/" + hub.CHECKPOINTS[NAME] + "/resolve/main/"
    files = {repo + "model.safetensors": weights.read_bytes(),
             repo + "config.json": json.dumps(SMALL_HUB_CONFIG).encode(),
             repo + "preprocessor_config.json": b'{"size_divisibility": 32}'}
    server = Hub(files)
    monkeypatch.setenv("MINIMATTE_HUB_URL", server.url)
    monkeypatch.setenv("MINIMATTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # not this machine's Hugging Face cache
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))  # nor its user's access token
    for variable in (*hub.OFFLINE_VARIABLES, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_DISABLE_IMPLICIT_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    yield server, repo
    server.shutdown()


def _download_cut_short(server, path):
    """hub.download(NAME) with the response for `path` cut halfway, once: it ends early, and what came stays."""
    server.cut_once.add(path)
    with pytest.raises(RuntimeError, match="ended early"):
        hub.download(NAME, progress=False)


def _updated_weights(det_state):
    """The bytes of a safetensors file the size of the served weights' with other values: the repo updated."""
    return save({k: np.asarray(v * 2) for k, v in det_state("small").items()})


def test_download_resume_and_load(served, tmp_path, det_model):
    server, repo = served
    _download_cut_short(server, repo + "model.safetensors")
    assert not (tmp_path / "cache" / NAME / "model.safetensors").exists()  # only the .part file
    directory = hub.download(NAME, progress=False)
    ranges = [r for path, r in server.requests if path.endswith("model.safetensors")]
    assert ranges == [None, f"bytes={len(server.files[repo + 'model.safetensors']) // 2}-"]  # resumed
    model = minimatte.load(NAME)
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    assert directory.endswith(NAME)
    requests = len(server.requests)  # the hub repo id, as transformers names the checkpoint, shares the cache
    assert hub.cached_checkpoint("hustvl/vitmatte-small-distinctions-646") == directory
    os.unlink(os.path.join(directory, ".download.lock"))  # a complete checkpoint needs no lock: nothing is written,
    assert cli.main(["download", "hustvl/vitmatte-small-distinctions-646"]) == 0 and len(server.requests) == requests
    assert not os.path.exists(os.path.join(directory, ".download.lock"))  # so a read-only cache serves it


def test_a_damaged_cached_checkpoint_is_downloaded_again(served, tmp_path, capsys, monkeypatch, det_model):
    """Weights cut short in the cache after their download (a full disk, a copy that stopped) are removed and
    fetched again, by a load or by `minimatte download`, instead of failing every load."""
    server, repo = served
    weights = os.path.join(hub.download(NAME, progress=False), "model.safetensors")
    whole = server.files[repo + "model.safetensors"]
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    for fetch in (minimatte.load, lambda name: cli.main(["download", name])):
        with open(weights, "r+b") as cut:
            cut.truncate(len(whole) // 2)
        capsys.readouterr()
        fetch(NAME)
        assert re.search(rf"^minimatte: the cached {re.escape(weights)} was damaged \(Error while deserializing "
                         r"header: [^\n]+\); removed, to be downloaded again$", capsys.readouterr().err, re.M)
        with open(weights, "rb") as fetched:
            assert fetched.read() == whole
    np.testing.assert_array_equal(minimatte.load(NAME)(pixels).alphas, det_model("small")(pixels).alphas)
    with open(weights, "r+b") as cut:
        cut.truncate(10)

    def refused(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    monkeypatch.setattr(os, "unlink", refused)  # a read-only cache
    with pytest.raises(OSError, match=f"^model: the cached {re.escape(repr(weights))} is damaged \\(.*\\) and cannot "
                                      "be removed \\(Permission denied\\); remove it, or set MINIMATTE_CACHE"):
        minimatte.load(NAME)


def test_a_program_without_stderr_downloads_quietly(served, monkeypatch, capsys, det_model):
    """A program with no stderr (pythonw, a windowed app's frozen build: sys.stderr is None) loads a published
    checkpoint on first use, with no stream to report the download on (it failed on sys.stderr.isatty), and
    prints nothing to stdout instead."""
    monkeypatch.setattr(sys, "stderr", None)
    model = minimatte.load(NAME)
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    assert capsys.readouterr().out == ""


def test_a_redirected_download_resumes_at_the_redirect(served, tmp_path):
    """The hub answers a large file with a redirect to its storage (a signed URL on another host): the download
    follows it, and a resumed one asks there for the rest too (the Range header goes along)."""
    server, repo = served
    weights, stored = repo + "model.safetensors", "/storage/0123abcd"
    server.files[stored] = server.files.pop(weights)
    server.redirects[weights] = stored
    _download_cut_short(server, stored)
    hub.download(NAME, progress=False)
    rest = f"bytes={len(server.files[stored]) // 2}-"
    assert [(path, r) for path, r in server.requests if path in (weights, stored)] == [
        (weights, None), (stored, None), (weights, rest), (stored, rest)]
    assert (tmp_path / "cache" / NAME / "model.safetensors").read_bytes() == server.files[stored]


def test_a_private_repo_downloads_with_the_users_access_token(served, tmp_path, monkeypatch, capsys,
                                                               det_model):
    """A private repo answers 401 without the user's token; with it, found as huggingface_hub finds it ($HF_TOKEN,
    the older $HUGGING_FACE_HUB_TOKEN, else the file `hf auth login` writes), the checkpoint downloads. The token
    goes to the hub alone: along its redirects within itself (a renamed repo's old name), not along the redirect to
    its storage (a signed URL on another host). A refused token is named in the error, which says how to give one
    where none was; errors carry the hub's reason (a gated repo's terms)."""
    server, repo = served
    private, renamed = "/company/secret/resolve/main/", "/company/old-name/resolve/main/"
    storage = Hub({"/secret": server.files[repo + "model.safetensors"]})
    for filename in hub.FILES:
        server.files[private + filename] = server.files[repo + filename]
        server.redirects[renamed + filename] = private + filename
    del server.files[private + "model.safetensors"]
    server.redirects[private + "model.safetensors"] = storage.url + "/secret"
    server.private.update({private: "hf_right", renamed: "hf_right"})
    with pytest.raises(FileNotFoundError, match=r"with a config.json that is public \(download: .* HTTP 401 "
                                                r"Unauthorized: Repository not found\); for a private one, set "
                                                r"HF_TOKEN"):
        minimatte.load("company/secret", progress=False)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_wrong\n")
    with pytest.raises(FileNotFoundError, match=r"with a config.json that the access token in "
                                                r"\$HUGGING_FACE_HUB_TOKEN can read \(download: .* HTTP 401 "
                                                r"Unauthorized: Invalid credentials in Authorization header\); "
                                                r"the hub refuses a token that is no longer valid for public repos "
                                                r"too$"):
        minimatte.load("company/secret", progress=False)
    monkeypatch.setenv("HF_TOKEN", " hf_right\n")  # before the older variable, and trimmed as huggingface_hub does
    server.authorizations.clear()
    pixels = np.random.default_rng(0).random((1, 4, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(minimatte.load("company/old-name", progress=False)(pixels).alphas,
                                  det_model("small")(pixels).alphas)
    assert sorted(server.authorizations) == sorted((path + filename, "Bearer hf_right") for filename in hub.FILES
                                                   for path in (renamed, private))
    assert storage.authorizations == [("/secret", None)]
    shutil.rmtree(tmp_path / "cache")
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(variable)
    (tmp_path / "no-token").write_text("hf_right\n")  # as `hf auth login` saves it ($HF_TOKEN_PATH)
    assert cli.main(["download", "company/secret", "-q"]) == 0
    monkeypatch.delenv("HF_TOKEN_PATH")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # else $HF_HOME/token
    (tmp_path / "hf_home").mkdir()
    (tmp_path / "hf_home" / "token").write_text("hf_right")
    assert hub._token() == ("hf_right", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")  # huggingface_hub's: none unless passed, as here never
    assert hub._token() == (None, None)
    server.private["/company/gated/"] = None  # its terms not accepted: the hub's reason is in the error
    assert cli.main(["download", "company/gated"]) == 1
    assert re.search(r"download: \S+/company/gated/resolve/main/config.json failed: HTTP 403 Forbidden: Access to "
                     r"model company/gated is restricted. You must have access to it and be authenticated to access "
                     r"it.\n$", capsys.readouterr().err)
    storage.shutdown()


def test_a_resumed_download_of_a_changed_file_starts_over(served, tmp_path, det_state):
    """A repo updated between an interrupted download and its resumption: the resumed request carries the first
    response's ETag (If-Range), the server sends the whole new file, and that is what lands, not the old file's
    first half joined to the new one's second (the same size: both load, as other weights)."""
    server, repo = served
    weights = repo + "model.safetensors"
    _download_cut_short(server, weights)
    assert (tmp_path / "cache" / NAME / "model.safetensors.part.etag").exists()
    updated = _updated_weights(det_state)
    assert len(updated) == len(server.files[weights])
    server.files[weights] = updated
    directory = hub.download(NAME, progress=False)
    assert [r for path, r in server.requests if path == weights] == [None, f"bytes={len(updated) // 2}-"]
    assert (tmp_path / "cache" / NAME / "model.safetensors").read_bytes() == updated
    assert sorted(os.listdir(directory)) == [".download.lock", "config.json", "model.safetensors",
                                             "preprocessor_config.json"]  # no .part or .part.etag left


def test_weak_etags_are_not_sent_back(served, tmp_path, det_state):
    """If-Range takes strong validators only (RFC 9110 13.1.5): a weak ETag (W/"...") is not kept for the resumed
    request, and a strong one kept from an earlier response goes when the download starts over under a weak one."""
    server, repo = served
    weights = repo + "model.safetensors"
    validator = tmp_path / "cache" / NAME / "model.safetensors.part.etag"
    _download_cut_short(server, weights)
    assert validator.read_text().startswith('"')  # a strong ETag, kept for the resumed request
    server.files[weights], server.weak_etags = _updated_weights(det_state), True
    _download_cut_short(server, weights)  # the old ETag no longer matches: the new file, cut
    assert not validator.exists()
    hub.download(NAME, progress=False)
    assert (tmp_path / "cache" / NAME / "model.safetensors").read_bytes() == server.files[weights]


def test_a_complete_partial_file_is_moved_into_place(served, tmp_path, monkeypatch):
    """A download stopped after its last byte but before its move into place leaves a whole .part file: the
    resumed request for the bytes after it is refused (HTTP 416), and the file is checked and moved."""
    server, repo = served
    weights = repo + "model.safetensors"
    digest = hashlib.sha256(server.files[weights]).hexdigest()
    monkeypatch.setitem(hub.KNOWN_SHA256, (NAME, "model.safetensors"), digest)  # checked before the move
    (tmp_path / "cache" / NAME).mkdir(parents=True)
    (tmp_path / "cache" / NAME / "model.safetensors.part").write_bytes(server.files[weights])
    hub.download(NAME, progress=False)
    assert [r for path, r in server.requests if path == weights] == [f"bytes={len(server.files[weights])}-"]
    assert (tmp_path / "cache" / NAME / "model.safetensors").read_bytes() == server.files[weights]


def test_a_stalled_download_is_one_clear_error_and_resumes(served, tmp_path, monkeypatch, capsys):
    """A response that stops coming (a stalled or dropped connection) ends the download with one line that says
    so; what came stays in the .part file, and the next run resumes from there."""
    server, repo = served
    weights = repo + "model.safetensors"
    server.hold[weights] = threading.Event()  # half the weights, then nothing until it is set
    monkeypatch.setattr(hub, "TIMEOUT_S", 0.5)
    try:
        assert cli.main(["download", NAME]) == 1
    finally:
        server.hold[weights].set()
    *done, error = capsys.readouterr().err.split("\n")[:-1]
    assert done == ["config.json: 0.0 MiB", "preprocessor_config.json: 0.0 MiB"]  # in a log: a line a file, no bar
    received = re.fullmatch(rf"minimatte: error: download: {re.escape(server.url + weights)} ended early \((\d+) of "
                            rf"{len(server.files[weights])} bytes; timed out\); run again to resume", error).group(1)
    assert 0 < int(received) <= len(server.files[weights]) // 2  # whole reads of what was sent
    server.hold[weights] = threading.Event()  # the resumed download stalls too: its bytes count from the file's start
    try:
        assert cli.main(["download", NAME]) == 1
    finally:
        server.hold[weights].set()
    again = re.search(rf"ended early \((\d+) of {len(server.files[weights])} bytes; timed out\)",
                      capsys.readouterr().err).group(1)
    assert int(received) < int(again) < len(server.files[weights])
    assert cli.main(["download", NAME]) == 0
    assert capsys.readouterr().err == f"model.safetensors: {len(server.files[weights]) / 2**20:.1f} MiB\n"
    assert [r for path, r in server.requests if path == weights] == [None, f"bytes={received}-", f"bytes={again}-"]
    assert (tmp_path / "cache" / NAME / "model.safetensors").read_bytes() == server.files[weights]


def test_an_unwritable_cache_is_one_clear_error(served, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("MINIMATTE_CACHE", str(tmp_path / "file" / "cache"))  # under a file: cannot be made
    assert cli.main(["download", NAME]) == 1
    assert capsys.readouterr().err.endswith(f"minimatte: error: download: cannot write into the cache folder "
                                            f"{str(tmp_path / 'file' / 'cache' / NAME)!r} (Not a directory); set "
                                            "MINIMATTE_CACHE to a folder you can write\n")
    monkeypatch.setenv("MINIMATTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a folder this user may not write (root may)
    assert cli.main(["download", NAME]) == 1
    assert capsys.readouterr().err.endswith(f"cannot write into the cache folder {str(tmp_path / 'cache' / NAME)!r} "
                                            "(Permission denied); set MINIMATTE_CACHE to a folder you can write\n")


@pytest.mark.skipif(os.name != "posix", reason="the download lock is POSIX's flock")
def test_downloads_of_one_checkpoint_take_turns(served, tmp_path, capsys, det_model):
    """A second download of a checkpoint that another is downloading (another process, a thread here) waits for
    it, then finds the files there: no second request, no shared half-written .part file."""
    server, repo = served
    weights = repo + "model.safetensors"
    server.hold[weights] = threading.Event()
    first = threading.Thread(target=hub.download, args=(NAME,), kwargs={"progress": False})
    first.start()
    while not [path for path, _ in server.requests if path == weights]:  # the first is halfway through the weights
        time.sleep(0.01)
    second = threading.Thread(target=hub.download, args=(NAME,))  # it says that it waits (not with --quiet)
    second.start()
    waited = ""
    try:
        for _ in range(1000):
            waited += capsys.readouterr().err
            if "waiting" in waited or len([path for path, _ in server.requests if path == weights]) > 1:
                break
            time.sleep(0.01)
        assert f"minimatte: waiting for another process's download of {NAME}" in waited
    finally:
        server.hold[weights].set()
        first.join(30)
        second.join(30)
    assert [path for path, _ in server.requests if path == weights] == [weights]  # requested once
    model = minimatte.load(NAME)
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)


def test_a_checkpoint_in_the_hugging_face_cache_is_not_downloaded_again(served, tmp_path, monkeypatch, det_model):
    huggingface_hub, = require("huggingface_hub")
    server, repo = served
    for filename in hub.FILES:  # the Hugging Face cache as huggingface_hub (under transformers) fills it
        huggingface_hub.hf_hub_download(hub.CHECKPOINTS[NAME], filename, cache_dir=tmp_path / "hf",
                                        endpoint=server.url)
    server.requests.clear()
    model = minimatte.load(NAME)
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    assert server.requests == [] and not (tmp_path / "cache").exists()
    assert hub.cached_checkpoint(NAME) == str(tmp_path / "hf" / "models--hustvl--vitmatte-small-distinctions-646"
                                              / "snapshots" / HUB_COMMIT)
    monkeypatch.setenv("MINIMATTE_OFFLINE", "1")
    minimatte.load(NAME)  # offline too
    assert hub.download(NAME, progress=False) == hub.cached_checkpoint(NAME)  # ready: nothing to fetch
    # a snapshot of the model alone (transformers loaded no processor) serves too, with the default settings (the
    # hub's, for the hustvl checkpoints); one without the weights does not
    snapshot = hub.cached_checkpoint(NAME)
    os.unlink(snapshot + "/preprocessor_config.json")
    assert hub.cached_checkpoint(NAME) == snapshot and minimatte.load(NAME).processor == minimatte.ProcessorConfig()
    monkeypatch.delenv("MINIMATTE_OFFLINE")
    os.unlink(snapshot + "/model.safetensors")
    assert hub.cached_checkpoint(NAME) == str(tmp_path / "cache" / NAME)
    assert sorted(path for path, _ in server.requests) == sorted(repo + f for f in hub.FILES)


def test_a_sharded_checkpoint_in_the_hugging_face_cache(served, tmp_path, det_state, det_model):
    huggingface_hub, = require("huggingface_hub")
    server, repo = served
    for filename in ["config.json", "preprocessor_config.json", *serve_shards(server, repo, det_state("small"),
                                                                              tmp_path)]:
        huggingface_hub.hf_hub_download(hub.CHECKPOINTS[NAME], filename, cache_dir=tmp_path / "hf",
                                        endpoint=server.url)
    server.requests.clear()
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(minimatte.load(NAME)(pixels).alphas, det_model("small")(pixels).alphas)
    assert server.requests == [] and not (tmp_path / "cache").exists()


def test_convert_takes_a_checkpoint_name(served, tmp_path, det_model, capsys):
    """`minimatte convert NAME out.safetensors --dtype float16`: a published checkpoint (downloaded first, as load
    does) into one file, e.g. half the size for shipping."""
    assert cli.main(["convert", NAME, str(tmp_path / "half.safetensors"), "--dtype", "float16"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'half.safetensors'}\n"
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    alphas = minimatte.load(tmp_path / "half.safetensors")(pixels).alphas
    assert np.abs(alphas - det_model("small")(pixels).alphas).max() < 2e-3
    assert (tmp_path / "cache" / NAME / "model.safetensors").is_file()
    assert cli.main(["convert", "no-such-checkpoint", str(tmp_path / "x.safetensors")]) == 2
    assert "'no-such-checkpoint' is neither an existing path nor a checkpoint name" in capsys.readouterr().err


def test_another_repo_in_the_hugging_face_cache(served, tmp_path, det_model):
    """Another repo's snapshot serves where it says what the processor's settings are (their file, or
    huggingface_hub's record that the repo has none): they may differ from the defaults. A private repo is found
    so, once huggingface_hub has downloaded it with the user's token."""
    huggingface_hub, = require("huggingface_hub")
    server, repo = served
    custom = json.dumps({"image_mean": [0.4, 0.5, 0.6], "size_divisor": 32}).encode()
    pixels = np.zeros((1, 4, 32, 32), np.float32)

    def publish(name, files, cached):
        for filename, body in files.items():
            server.files[f"/{name}/resolve/main/{filename}"] = body
        for filename in cached:  # as transformers or `hf download` fill the Hugging Face cache
            try:
                huggingface_hub.hf_hub_download(name, filename, cache_dir=tmp_path / "hf", endpoint=server.url)
            except huggingface_hub.errors.EntryNotFoundError:
                pass  # recorded in the cache as a file the repo does not hold
        server.requests.clear()

    weights = {f: server.files[repo + f] for f in ("config.json", "model.safetensors")}
    publish("company/private", {**weights, "preprocessor_config.json": custom}, hub.FILES)
    for filename in hub.FILES:
        del server.files[f"/company/private/resolve/main/{filename}"]
    server.not_found = 401  # the hub, to a request without the token
    model = minimatte.load("company/private")
    assert server.requests == [] and not (tmp_path / "cache").exists()
    assert model.processor == minimatte.ProcessorConfig(image_mean=(0.4, 0.5, 0.6))
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    server.not_found = 404
    publish("someone/plain", weights, hub.FILES)  # no preprocessor_config.json, and the cache knows it
    assert minimatte.load("someone/plain").processor == minimatte.ProcessorConfig() and server.requests == []
    publish("someone/custom", {**weights, "preprocessor_config.json": custom}, ("config.json", "model.safetensors"))
    model = minimatte.load("someone/custom", progress=False)  # whether it has settings of its own is not known
    assert model.processor == minimatte.ProcessorConfig(image_mean=(0.4, 0.5, 0.6))
    assert sorted(path for path, _ in server.requests) == sorted(f"/someone/custom/resolve/main/{f}" for f in hub.FILES)


def test_hugging_face_cache_and_endpoint_variables(served, tmp_path, monkeypatch):
    server, repo = served
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("MINIMATTE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.hf_cache_dir() == str(tmp_path / "home" / ".cache" / "huggingface" / "hub")
    assert hub.cache_dir() == str(tmp_path / "home" / ".cache" / "minimatte")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")  # both caches move with the user's caches
    assert hub.hf_cache_dir() == "/xdg/huggingface/hub" and hub.cache_dir() == "/xdg/minimatte"
    monkeypatch.setenv("HF_HOME", "~/hf-home")  # expanded, as huggingface_hub expands it
    assert hub.hf_cache_dir() == str(tmp_path / "home" / "hf-home" / "hub")
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", "/legacy-cache")  # the older name, still read
    assert hub.hf_cache_dir() == "/legacy-cache"
    monkeypatch.setenv("HF_HUB_CACHE", "$HOME/hub-cache")
    assert hub.hf_cache_dir() == str(tmp_path / "home" / "hub-cache")
    monkeypatch.setenv("MINIMATTE_CACHE", "~/mm")
    assert hub.cache_dir() == str(tmp_path / "home" / "mm")
    monkeypatch.setenv("MINIMATTE_CACHE", str(tmp_path / "first"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a mirror for huggingface_hub: minimatte's own first
    hub.download(NAME, progress=False)
    assert sorted(path for path, _ in server.requests) == sorted(repo + f for f in hub.FILES)
    server.requests.clear()
    monkeypatch.setenv("MINIMATTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIMATTE_HUB_URL")
    monkeypatch.setenv("HF_ENDPOINT", server.url)  # the mirror alone
    hub.download(NAME, progress=False)
    assert sorted(path for path, _ in server.requests) == sorted(repo + f for f in hub.FILES)


def test_repo_without_safetensors_is_converted(served, tmp_path, det_model):
    from reference import require_reference
    torch, _ = require_reference()
    server, repo = served
    del server.files[repo + "model.safetensors"]
    state = {k: torch.from_numpy(v) for k, v in minimatte.convert.read_any(tmp_path / "w.safetensors")[0].items()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    server.files[repo + "pytorch_model.bin"] = (tmp_path / "pytorch_model.bin").read_bytes()
    directory = hub.download(NAME, progress=False)
    left = {p.name for p in (tmp_path / "cache" / NAME).iterdir()} - {".download.lock"}  # the lock file stays
    assert sorted(left) == sorted(hub.FILES)  # the .bin is gone
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(minimatte.load(directory)(pixels).alphas, det_model("small")(pixels).alphas)


def serve_shards(server, repo, state, folder):
    """The repo's weights in two shards and their index, as save_pretrained writes them below max_shard_size."""
    del server.files[repo + "model.safetensors"]
    shards = {f"model-0000{i + 1}-of-00002.safetensors": list(state)[i::2] for i in range(2)}
    for name, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(folder / name))
        server.files[repo + name] = (folder / name).read_bytes()
    weight_map = {k: name for name, keys in shards.items() for k in keys}
    server.files[repo + "model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    return ["model.safetensors.index.json", *shards]


def test_a_sharded_repo_is_converted(served, tmp_path, det_state, det_model):
    """A repo saved in shards: its index and the shards it names, fetched and converted into model.safetensors;
    an interrupted download resumes without fetching a whole shard again."""
    server, repo = served
    serve_shards(server, repo, det_state("small"), tmp_path)
    server.cut_once.add(repo + "model-00002-of-00002.safetensors")
    with pytest.raises(RuntimeError, match="model-00002-of-00002.safetensors ended early"):
        hub.download(NAME, progress=False)
    server.requests.clear()
    directory = hub.download(NAME, progress=False)
    resumed = repo + "model-00002-of-00002.safetensors"
    assert [path for path, _ in server.requests] == [repo + "model.safetensors", resumed]  # the rest came before
    left = {p.name for p in (tmp_path / "cache" / NAME).iterdir()} - {".download.lock"}
    assert sorted(left) == sorted(hub.FILES)  # the index and the shards are gone
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(minimatte.load(directory)(pixels).alphas, det_model("small")(pixels).alphas)


def test_wrong_hash_is_refused_and_removed(served, tmp_path, monkeypatch):
    monkeypatch.setitem(hub.KNOWN_SHA256, (NAME, "config.json"), hashlib.sha256(b"other").hexdigest())
    with pytest.raises(RuntimeError, match="config.json has sha256 .* the corrupt file was removed"):
        hub.download(NAME, progress=False)
    assert not list((tmp_path / "cache" / NAME).glob("config.json*"))


def test_a_fingerprinted_checkpoint_comes_from_its_commit(served, tmp_path, monkeypatch):
    """Where the files' sha256 are known, they are those of one commit, which is downloaded rather than the latest
    (main), whose files may have changed since."""
    assert hub.REVISIONS == {"small-composition-1k": "6a58ad7646403c1df626fbd746900aec7361ea1d"}  # the spec's commit
    assert {name for name, _ in hub.KNOWN_SHA256} <= set(hub.REVISIONS)
    server, repo = served
    commit = "0123456789abcdef0123456789abcdef01234567"
    pinned = repo.replace("/main/", f"/{commit}/")
    for filename in hub.FILES:
        server.files[pinned + filename] = server.files.pop(repo + filename)
    server.files[repo + "config.json"] = b'{"edited": "on main since"}'
    monkeypatch.setitem(hub.REVISIONS, NAME, commit)
    monkeypatch.setitem(hub.KNOWN_SHA256, (NAME, "config.json"),
                        hashlib.sha256(server.files[pinned + "config.json"]).hexdigest())
    hub.download(NAME, progress=False)
    assert [path for path, _ in server.requests] == [pinned + filename for filename in hub.FILES]


def test_404_offline_and_no_network(served, tmp_path, monkeypatch):
    server, repo = served
    del server.files[repo + "model.safetensors"]
    missing = r"has neither a model.safetensors nor a pytorch_model.bin \(nor their shards\) on the hub"
    with pytest.raises(FileNotFoundError, match=missing):
        hub.download(NAME, progress=False)
    for variable, value in (("MINIMATTE_OFFLINE", "1"), ("HF_HUB_OFFLINE", "True"), ("TRANSFORMERS_OFFLINE", "yes")):
        monkeypatch.setenv(variable, value)
        offline = (rf"^model: '{NAME}' is neither in the cache \(.*\) nor in the Hugging Face cache \(.*\) and offline "
                   rf"mode is on \(\${variable}={value}\); run `minimatte download {NAME}` with offline mode off$")
        with pytest.raises(FileNotFoundError, match=offline):
            minimatte.load(NAME)
        with pytest.raises(FileNotFoundError, match=offline):
            hub.download(NAME, progress=False)
        monkeypatch.delenv(variable)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "on")  # as a transformers set-up may leave both: each one named
    with pytest.raises(FileNotFoundError, match=r"\(\$HF_HUB_OFFLINE=1 and \$TRANSFORMERS_OFFLINE=on\)"):
        hub.download(NAME, progress=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "false")  # off, as huggingface_hub reads it
    with pytest.raises(FileNotFoundError, match=missing):
        hub.download(NAME, progress=False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("MINIMATTE_HUB_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(RuntimeError, match="cannot reach"):
        hub.download(NAME, progress=False)
    listed = r"\(.*hub repo ids, or another hub repo's owner/name\)"
    # paths, and names that no hub repo id is (none holds "..": a repo's cache folder lies within the cache)
    for name in ("no-such-model", "folder/model.safetensors", "folder/model.onnx", "folder/sub/model", "/abs/folder",
                 "folder/..", "folder/.hidden", "someone/vitmatte..hair"):
        with pytest.raises(ValueError, match=rf"'{name}' is neither an existing path nor a checkpoint name {listed}$"):
            minimatte.load(name)
    for typo, meant in (("small-composition1k", "small-composition-1k"),
                        ("hustvl/vitmatte-base-distinction-646", "hustvl/vitmatte-base-distinctions-646"),
                        ("HustVL/vitmatte-base-distinction-646", "hustvl/vitmatte-base-distinctions-646"),
                        ("https://huggingface.co/someone/vitmatte-hair/tree/main", "someone/vitmatte-hair"),
                        ("small", "small-composition-1k' or 'small-distinctions-646"),  # by its size or dataset
                        ("ViTMatte-Base", "base-composition-1k' or 'base-distinctions-646"),
                        ("composition-1k", "small-composition-1k' or 'base-composition-1k"),
                        ("vitmatte_small_distinctions_646", "small-distinctions-646")):
        with pytest.raises(ValueError, match=rf"{listed}; did you mean '{meant}'\?$"):
            minimatte.load(typo)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "det.safetensors").write_bytes(b"")  # a path with a ~ that no shell expanded
    at_home = re.escape(repr(str(tmp_path / "det.safetensors")))
    with pytest.raises(ValueError, match=rf"'~/det.safetensors' is neither .* {listed}; did you mean {at_home}\?$"):
        minimatte.load("~/det.safetensors")
    for spelt in ("HustVL/vitmatte-small-composition-1k", "Small-Composition-1K"):  # the hub reads ids in any case
        assert hub.checkpoint_name(spelt) == "small-composition-1k"
    assert cli.main(["download", "small-composition1k"]) == 2


def test_download_fills_the_cache_with_several_checkpoints(served, tmp_path, capsys, monkeypatch):
    """`minimatte download A B ...`: each name checked before the first download; each folder printed once; offline,
    those already there are ready (a container's build that checks its checkpoints with HF_HUB_OFFLINE set)."""
    server, repo = served
    fine_tune = "/someone/vitmatte-hair/resolve/main/"
    for filename in ("config.json", "model.safetensors"):
        server.files[fine_tune + filename] = server.files[repo + filename]
    assert cli.main(["download", NAME, "small-composition1k", "-q"]) == 2
    assert "did you mean 'small-composition-1k'?" in capsys.readouterr().err and server.requests == []
    assert cli.main(["download", NAME, "someone/vitmatte-hair", hub.CHECKPOINTS[NAME], "-q"]) == 0
    folders = [str(tmp_path / "cache" / NAME), str(tmp_path / "cache" / "someone" / "vitmatte-hair")]
    assert capsys.readouterr().out == "".join(folder + "\n" for folder in folders)
    assert all(hub.cached_checkpoint(name, progress=False) == folder
               for name, folder in zip((NAME, "someone/vitmatte-hair"), folders))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.requests.clear()
    assert cli.main(["download", NAME, "someone/vitmatte-hair", "-q"]) == 0 and server.requests == []
    assert capsys.readouterr().out == "".join(folder + "\n" for folder in folders)
    assert cli.main(["download", "base-composition-1k", "-q"]) == 1 and server.requests == []
    assert "offline mode is on ($HF_HUB_OFFLINE=1)" in capsys.readouterr().err


def test_another_hub_repo_by_its_id(served, tmp_path, det_model, capsys):
    """A fine-tune on the hub, by its owner/name as transformers' from_pretrained takes it: config.json and the
    weights; without a preprocessor_config.json (model.push_to_hub() writes none) the default processor settings."""
    server, repo = served
    fine_tune = "/someone/vitmatte-hair/resolve/main/"
    for filename in ("config.json", "model.safetensors"):
        server.files[fine_tune + filename] = server.files[repo + filename]
    model = minimatte.load("someone/vitmatte-hair", progress=False)
    assert sorted(path for path, _ in server.requests) == sorted(fine_tune + f for f in hub.FILES)  # a 404 for one
    assert model.processor == minimatte.ProcessorConfig()
    pixels = np.zeros((1, 4, 32, 32), np.float32)
    np.testing.assert_array_equal(model(pixels).alphas, det_model("small")(pixels).alphas)
    server.requests.clear()
    assert hub.cached_checkpoint("someone/vitmatte-hair") == str(tmp_path / "cache" / "someone" / "vitmatte-hair")
    assert cli.main(["download", "someone/vitmatte-hair", "-q"]) == 0 and server.requests == []  # in the cache
    capsys.readouterr()
    with pytest.raises(FileNotFoundError, match=r"^model: 'someone/no-such-repo' is neither an existing path nor a "
                                                r"hub repo with a config.json that is public \(download: .* HTTP 404 "
                                                r".*\); for a private one, set HF_TOKEN to an access token that can "
                                                r"read it, or log in with `hf auth login`$"):
        minimatte.load("someone/no-such-repo", progress=False)
    server.files["/someone/segmenter/resolve/main/config.json"] = b'{"model_type": "segformer"}'
    server.files["/someone/segmenter/resolve/main/model.safetensors"] = server.files[repo + "model.safetensors"]
    server.requests.clear()
    with pytest.raises(ValueError, match=r"^model: 'someone/segmenter' has a config.json that minimatte cannot run "
                                         r"\(config: expected a VitMatte config \(model_type 'vitmatte'\), got "
                                         r"model_type 'segformer'\)$"):
        minimatte.load("someone/segmenter", progress=False)
    assert [path for path, _ in server.requests] == ["/someone/segmenter/resolve/main/config.json"]  # no weights
    assert not (tmp_path / "cache" / "someone" / "segmenter").exists()  # nor kept as if it were
    relu = json.loads(server.files[repo + "config.json"])
    relu["backbone_config"]["hidden_act"] = "relu"  # a ViTMatte variant minimatte does not run
    server.files["/someone/vitmatte-relu/resolve/main/config.json"] = json.dumps(relu).encode()
    server.files["/someone/vitmatte-relu/resolve/main/model.safetensors"] = server.files[repo + "model.safetensors"]
    server.requests.clear()
    with pytest.raises(ValueError, match=r"^model: 'someone/vitmatte-relu' has a config.json that minimatte cannot "
                                         r"run \(config: only the exact 'gelu' activation is supported, got 'relu'\)$"):
        minimatte.load("someone/vitmatte-relu", progress=False)
    assert [path for path, _ in server.requests] == ["/someone/vitmatte-relu/resolve/main/config.json"]
    odd = {**json.loads(server.files[repo + "config.json"]), "fusion_hidden_sizes": 256}  # a setting of the wrong kind
    server.files["/someone/odd/resolve/main/config.json"] = json.dumps(odd).encode()
    with pytest.raises(ValueError, match=r"^model: 'someone/odd' has a config.json that minimatte cannot run "
                                         r"\(config: fusion_hidden_sizes: expected a list of integers, got 256\)$"):
        minimatte.load("someone/odd", progress=False)
    assert not (tmp_path / "cache" / "someone" / "odd").exists()
    server.files["/someone/text/resolve/main/config.json"] = b"model_type: vitmatte"
    with pytest.raises(ValueError, match=r"has a config.json that minimatte cannot run \(expected a JSON object, got "
                                         r"text that is not JSON \(Expecting value: line 1 column 1 \(char 0\)\)\)$"):
        minimatte.load("someone/text", progress=False)
    # a web page in the file's place: no hub answers so, but a network's sign-in page (a proxy's, a hotel's) or a
    # mirror's address that is a web site's, which serves its page at any path
    server.files["/someone/page/resolve/main/config.json"] = b"<!DOCTYPE html>\n<html><title>Sign in</title>"
    server.requests.clear()
    web_page = (r"answered with a web page \(HTML\), not the file: a network's sign-in page, or \$MINIMATTE_HUB_URL "
                r"or \$HF_ENDPOINT set to an address that is no hub's$")
    with pytest.raises(RuntimeError, match=rf"^download: {re.escape(server.url)}/someone/page/resolve/main/config.json "
                                           + web_page):
        minimatte.load("someone/page", progress=False)
    assert [path for path, _ in server.requests] == ["/someone/page/resolve/main/config.json"]  # no weights
    assert set(os.listdir(tmp_path / "cache" / "someone" / "page")) <= {".download.lock"}  # nothing kept of it
    pinned = f"/{hub.CHECKPOINTS['small-composition-1k']}/resolve/{hub.REVISIONS['small-composition-1k']}/"
    server.files[pinned + "config.json"] = b"<html>"
    with pytest.raises(RuntimeError, match=web_page):  # so said, where a known sha256 would differ too
        minimatte.load("small-composition-1k", progress=False)
    server.files["/Xenova/vitmatte-export/resolve/main/config.json"] = server.files[repo + "config.json"]
    with pytest.raises(FileNotFoundError, match=r"^model: 'Xenova/vitmatte-export' has neither a model.safetensors "
                                                r"nor a pytorch_model.bin \(nor their shards\) on the hub \(an "
                                                r"ONNX export"):
        minimatte.load("Xenova/vitmatte-export", progress=False)  # such repos hold onnx/model.onnx
    server.not_found = 401  # as the hub answers a repo that does not exist (or is private) without a token
    assert cli.main(["download", "someone/no-such-repo"]) == 1
    assert not (tmp_path / "cache" / "someone" / "no-such-repo").exists()  # no empty folder left for a typo
    assert re.search(r"hub repo with a config.json that is public \(download: .* HTTP 401 ", capsys.readouterr().err)


def test_cli_float_mattes(served, tmp_path, capsys):
    """--bits 32 writes the matte as computed into a float TIFF, which cutout --alpha and evaluate read back:
    evaluate truncates a float prediction to 8 bits as the reference saves its mattes, and rounds a float ground
    truth."""
    rng = np.random.default_rng(1)
    image, trimap = tmp_path / "i.png", tmp_path / "t.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    Image.fromarray(np.full((40, 50), 128, np.uint8)).save(trimap)
    expected = minimatte.infer(str(image), str(trimap), model=NAME)
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.tif"), "--model", NAME,
                     "--bits", "32"]) == 0
    written = Image.open(tmp_path / "a.tif")
    assert written.mode == "F"
    np.testing.assert_array_equal(np.asarray(written), expected)  # unrounded
    output = str(tmp_path / "a.png")  # refused before the model loads (standard output gets a TIFF)
    assert cli.main(["matte", str(image), str(trimap), "-o", output, "--model", "none", "--bits", "32"]) == 2
    assert f"output: 32-bit float alphas need a .tif file, got {output!r}" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"  # an output folder gets NAME.tif files
    for folder, source in ((images, image), (trimaps, trimap)):
        folder.mkdir()
        shutil.copy(source, folder / "x.png")
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out"), "--model", NAME,
                     "--bits", "32"]) == 0
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "one") + os.sep, "--model", NAME,
                     "--bits", "32"]) == 0
    for written in (tmp_path / "out" / "x.tif", tmp_path / "one" / "i.tif"):
        np.testing.assert_array_equal(np.asarray(Image.open(written)), expected)
    assert cli.main(["cutout", str(image), "--alpha", str(tmp_path / "a.tif"), "-o", str(tmp_path / "c.png"),
                     "--model", "none"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), cutout(str(image), expected))
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a8.png"), "--model", NAME]) == 0
    Image.fromarray(metrics.to_uint8(expected)).save(tmp_path / "truncated.png")
    capsys.readouterr()
    for pred, gt in ((tmp_path / "a.tif", tmp_path / "truncated.png"), (tmp_path / "a8.png", tmp_path / "a.tif")):
        assert cli.main(["evaluate", str(pred), str(gt), str(trimap), "--csv"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"{pred.stem},0.0,0.0,0.0,0.0"
    assert cli.main(["evaluate", str(tmp_path / "a.tif"), str(tmp_path / "a8.png"), str(trimap), "--csv"]) == 0
    scores = [float(v) for v in capsys.readouterr().out.splitlines()[-1].split(",")[1:]]
    rounded = np.rint(expected * 255).astype(np.uint8)
    assert (rounded != metrics.to_uint8(expected)).mean() > 0.3  # about half the alphas lie nearer the level above
    assert scores == list(metrics.evaluate(metrics.to_uint8(expected), rounded, np.asarray(Image.open(trimap)))
                          .values())


def test_cli_checks_input_files_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """A misspelt input is reported before the model loads (--model none would fail to): no download's wait for
    a typo. Missing files exit 1, a folder where a file belongs 2."""
    image, trimap, folder = tmp_path / "i.png", tmp_path / "t.png", tmp_path / "trimaps"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(trimap)
    folder.mkdir()
    missing, out = str(tmp_path / "missing.png"), str(tmp_path / "out.png")
    for command, status, error in (
            (["matte", str(image), missing, "--model", "none"], 1, f"trimap: no such file {missing!r}"),
            (["matte", missing, str(trimap), "--model", "none"], 1, f"image: no such file {missing!r}"),
            (["matte", str(image), "--mask", missing, "--model", "none"], 1, f"mask: no such file {missing!r}"),
            (["cutout", str(image), "--alpha", missing], 1, f"alpha: no such file {missing!r}"),
            (["trimap", missing], 1, f"mask: no such file {missing!r}"),
            (["matte", missing, str(folder), "--model", "none"], 1, f"image: no such file {missing!r}"),
            (["matte", str(image), str(folder), "--model", "none"], 2,
             f"trimap: {str(folder)!r} is a folder, and the image a file"),
            (["matte", str(image), "", "--model", "none"], 1, "trimap: no such file '' (the name is empty)")):
        assert cli.main([*command, "-o", out]) == status
        assert f"minimatte: error: {error}" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # `-o "$OUT"` with OUT unset: not the working folder, where a batch's outputs would go
    for source, output in ((str(image), ""), (str(tmp_path), ""), (str(tmp_path), " ")):
        assert cli.main(["trimap", source, "-o", output]) == 2
        assert capsys.readouterr().err == f"minimatte: error: output: expected a path, got {output!r}\n"
    assert sorted(os.listdir(tmp_path)) == ["i.png", "t.png", "trimaps"]
    for paths, error in (((missing, str(image), str(trimap)), f"pred: no such file {missing!r}"),
                         ((str(image), str(image), str(image / "x")), "trimap: no such file")):
        assert cli.main(["evaluate", *paths]) == 1
        captured = capsys.readouterr()
        assert error in captured.err and captured.out == ""  # before the table's header


def test_cli_leaves_out_pillows_warning_for_a_large_photo(served, tmp_path, capsys, monkeypatch):
    """Pillow warns from MAX_IMAGE_PIXELS pixels on and refuses images of twice that (its guard against
    decompression bombs): the command line, which opens the files its user names, leaves the warning out (at
    Pillow's default, 89 megapixels: a medium-format camera's photo); the error stays one line."""
    image, trimap = tmp_path / "i.png", tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    Image.fromarray(np.full((40, 50), 128, np.uint8)).save(trimap)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 2000 pixels are to it as 100 megapixels to the default
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png"), "--model", NAME]) == 0
        with pytest.warns(Image.DecompressionBombWarning):  # a program calling the library still gets it
            minimatte.read_image(image)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)
    capsys.readouterr()
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "b.png"), "--model", NAME]) == 2
    assert re.fullmatch(r"minimatte: error: image: '.*i.png' is too large to open \(.*\); if you trust the file, "
                        r"raise PIL.Image.MAX_IMAGE_PIXELS\n", capsys.readouterr().err)


def test_cli_names_the_file_of_pillows_warnings(tmp_path, capsys, monkeypatch):
    """A photo's corrupt EXIF data makes Pillow warn: the command line shows it as one line naming the file, above
    the bar on a terminal, not in Python's form (which names Pillow's source and prints a line of it)."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 1, "Cam"  # orientation, make
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 1), dtype=np.uint8).repeat(3, axis=2)  # grey
    photos, mattes, out = tmp_path / "photos", tmp_path / "mattes", tmp_path / "out"
    photos.mkdir(), mattes.mkdir()
    Image.fromarray(pixels).save(photos / "a.jpg", exif=exif.tobytes()[:-6])  # its last tag cut short
    Image.fromarray(pixels).save(photos / "b.jpg")
    for name in "ab":
        Image.fromarray(np.full((20, 30), 200, np.uint8)).save(mattes / f"{name}.png")
    warning = r"minimatte: warning: a.jpg: Corrupt EXIF data\. Expecting to read \d+ bytes but only got \d+\."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # as Python's default filters show such a warning
        warnings.simplefilter("ignore", ResourceWarning)  # as they leave out other tests' sockets, collected now
        assert cli.main(["cutout", str(photos / "a.jpg"), "--alpha", str(mattes / "a.png"), "-o", str(out) + "/"]) == 0
        assert re.fullmatch(f"{warning}\nwrote {re.escape(str(out / 'a.png'))}\n", capsys.readouterr().err)
        assert cli.main(["cutout", str(photos), "--alpha", str(mattes), "-o", str(out)]) == 0  # a log
        assert re.fullmatch(f"{warning}\n\\[1/2\\] wrote .*a.png\n\\[2/2\\] wrote .*b.png\n", capsys.readouterr().err)
        assert cli.main(["cutout", str(photos), "--alpha", str(mattes), "-o", str(out), "-q"]) == 0
        assert capsys.readouterr().err == ""
        assert cli.main(["cutout", str(photos / "b.jpg"), "--alpha", str(mattes / "b.png"), "-o", str(out) + "/",
                         "--background", str(photos / "a.jpg")]) == 0  # a background's warnings are named too
        assert re.match(warning + "\n", capsys.readouterr().err)
        assert cli.main(["evaluate", str(photos / "a.jpg"), str(mattes / "a.png"), "--whole-image"]) == 0
        assert re.match(warning.replace("a.jpg: ", "") + "\n", capsys.readouterr().err)  # elsewhere one line
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert cli.main(["cutout", str(photos), "--alpha", str(mattes), "-o", str(out)]) == 0
        frames = terminal.frames()
        at = next(i for i, frame in enumerate(frames) if frame.startswith("minimatte: warning"))
        assert re.fullmatch(warning + "\n", frames[at])  # on a line of its own, between two of the bar's frames
        assert frames[at - 1].startswith("images: [") and frames[at + 1].startswith("images: [")
    assert caught == []  # none went past the command line to Python's
    with pytest.warns(UserWarning, match="Corrupt EXIF data"):  # a program calling the library still gets it
        minimatte.read_image(photos / "a.jpg")


def test_options_may_come_between_and_after_the_positional_arguments(capsys):
    """`minimatte matte a.png -o out.png t.png`, as GNU tools take options: argparse's parse_args had left an
    optional positional argument (TRIMAP, evaluate's TRIMAP_DIR) after an option unrecognized. `--` still makes
    what follows it positional. An argument too many is the command's error, under its usage."""
    parser = cli.build_parser()
    orders = {
        ("matte", "a.png", "t.png", "-o", "o.png", "--model", "base"): (
            ("matte", "a.png", "-o", "o.png", "t.png", "--model", "base"),
            ("matte", "a.png", "--model", "base", "t.png", "-o", "o.png"),
            ("matte", "-o", "o.png", "a.png", "--model", "base", "t.png")),
        ("cutout", "a.png", "t.png", "--crop", "8", "-o", "c.png"): (
            ("cutout", "a.png", "--crop", "8", "t.png", "-o", "c.png"),),
        ("evaluate", "p", "g", "t", "--csv"): (("evaluate", "p", "g", "--csv", "t"),
                                               ("evaluate", "--csv", "p", "g", "t")),
        ("download", "a", "b", "-q"): (("download", "a", "-q", "b"),)}
    for canonical, others in orders.items():
        parsed = vars(parser.parse_args(canonical))
        for argv in others:
            assert vars(parser.parse_args(argv)) == parsed, argv
    dashed = parser.parse_args(["matte", "-o", "o.png", "--", "-a.png", "-t.png"])  # files named like options
    assert (dashed.image, dashed.trimap, dashed.output) == ("-a.png", "-t.png", "o.png")
    for extra in (["x.png"], ["--", "-x.png"]):  # one file too many is still an error
        with pytest.raises(SystemExit):
            parser.parse_args(["matte", "-o", "o.png", "a.png", "t.png", *extra])
        usage, error = capsys.readouterr().err.split("\n", 1)
        assert usage.startswith("usage: minimatte matte ")
        assert error.endswith(f"minimatte matte: error: unrecognized arguments: {extra[-1]}\n")


def test_cli_matte_and_cutout(served, tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    image, trimap = tmp_path / "i.png", tmp_path / "t.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    Image.fromarray(np.full((40, 50), 128, np.uint8)).save(trimap)
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png"), "--model", NAME]) == 0
    alpha = np.asarray(Image.open(tmp_path / "a.png"))
    assert alpha.shape == (40, 50)
    expected = minimatte.infer(str(image), str(trimap), model=NAME)
    assert np.abs(alpha.astype(int) - np.rint(expected * 255)).max() == 0
    # WebP is written lossless (Pillow's default is lossy and moves a matte's values)
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.webp"), "--model", NAME]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.webp").convert("L")), alpha)
    Image.init()
    if "AVIF" in Image.SAVE:  # so is AVIF, where this Pillow writes it (lossy by default)
        assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.avif"), "--model", NAME]) == 0
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.avif").convert("L")), alpha)
    for name in ("a16.png", "a16.tif"):
        assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / name), "--model", NAME,
                         "--bits", "16"]) == 0
        deep = np.asarray(Image.open(tmp_path / name)).astype(int)  # Pillow < 10 reads 16-bit PNG as int32 "I"
        assert np.abs(deep - np.rint(expected * 65535)).max() == 0
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a16.jpg"), "--bits", "16"]) == 2
    assert "output: 16-bit alphas need a .png or .tif file, got" in capsys.readouterr().err
    assert not (tmp_path / "a16.jpg").exists()
    for name in ("c.jpg", "c.gif", "c.bmp", "c.eps"):  # no alpha, or 0 and 255 only: refused before the model loads
        assert cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / name), "--model", "none"]) == 2
        form = Image.registered_extensions()[name[1:]]
        assert f"output: {form} files cannot hold an RGBA cut-out" in capsys.readouterr().err
    assert cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / "c.jpg"), "--model", NAME,
                     "--background", "red", "--raw-colors"]) == 0  # RGB fits
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.pgn"), "--model", "none"]) == 2
    assert "output: '.pgn' is no image format's extension that Pillow knows" in capsys.readouterr().err  # a typo
    folder = tmp_path / "folder"  # an existing folder as the output of one image: NAME.png inside it
    folder.mkdir()
    assert cli.main(["matte", str(image), str(trimap), "-o", str(folder), "--model", NAME]) == 0
    assert np.abs(np.asarray(Image.open(folder / "i.png")).astype(int) - np.rint(expected * 255)).max() == 0
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "new") + os.sep, "--model", NAME]) == 0
    assert (tmp_path / "new" / "i.png").is_file()  # a trailing separator names a folder, made if missing
    assert cli.main(["matte", str(image), str(trimap), "-o", str(image / "x.png"), "--model", "none"]) == 1
    assert f"output: cannot write into {str(image)!r} ({str(image)!r} is a file)" in capsys.readouterr().err
    demo_bg = str(DATA / "vitmatte_demo" / "new_bg.jpg")
    for options, background, foreground in (([], None, True), (["--raw-colors"], None, False),
                                            (["--background", "#00ff00"], "#00ff00", True),
                                            (["--background", demo_bg], demo_bg, True)):
        want = cutout(str(image), expected, background, foreground=foreground)
        for out in (tmp_path / "c.png", tmp_path / "c.webp"):  # lossless both, colours under alpha 0 too
            with monkeypatch.context() as patched:  # each input file read once, for the network and the cut-out
                opened = recording_opens(patched)
                assert cli.main(["cutout", str(image), str(trimap), "-o", str(out), "--model", NAME, *options]) == 0
            assert opened.count(str(image)) == 1 and opened.count(str(trimap)) == 1
            assert Image.open(out).mode == ("RGBA" if background is None else "RGB")
            np.testing.assert_array_equal(np.asarray(Image.open(out)), want)
    # A matte from an earlier run (retouched, say) cuts out without the network (no model named "none").
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png"), "--model", NAME]) == 0
    for options in ([], ["--background", demo_bg], ["--raw-colors"]):
        assert cli.main(["cutout", str(image), "--alpha", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.png"),
                         "--model", "none", *options]) == 0
        background = options[1] if options[:1] == ["--background"] else None
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")),
                                      cutout(str(image), str(tmp_path / "a.png"), background,
                                             foreground=options != ["--raw-colors"]))
    blob = np.zeros((40, 50), np.uint8)
    blob[10:20, 15:35] = 255
    Image.fromarray(blob).save(tmp_path / "blob.png")
    with monkeypatch.context() as patched:  # the matte decoded once, for the cut-out and for the box
        opened = recording_opens(patched)
        assert cli.main(["cutout", str(image), "--alpha", str(tmp_path / "blob.png"), "-o", str(tmp_path / "c.png"),
                         "--crop", "2"]) == 0  # cut to the subject, 2 pixels around it, and where that lay said
    assert opened.count(str(tmp_path / "blob.png")) == 1
    assert capsys.readouterr().err.endswith(f"wrote {tmp_path / 'c.png'}, cropped to the box (13, 8, 37, 22) "
                                            "(left, top, right, bottom)\n")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")),
                                  cutout(str(image), blob, crop=2))
    assert Image.open(tmp_path / "c.png").size == (24, 14)
    with pytest.raises(SystemExit):  # a bad margin stops before any work, with argparse's usage message
        cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / "c.png"), "--crop", "-1"])
    assert "argument --crop: expected an integer of at least 0 pixels, got '-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / "c.png"), "--crop", "two"])
    assert "argument --crop: expected an integer of at least 0 pixels, got 'two'" in capsys.readouterr().err
    for hints, given in (([], "none"), ([str(trimap), "--alpha", str(tmp_path / "a.png")], "trimap and alpha")):
        assert cli.main(["cutout", str(image), *hints, "-o", str(tmp_path / "c.png")]) == 2
        assert f"trimap: give one of a TRIMAP file, --mask MASK, --alpha ALPHA, got {given}" in \
            capsys.readouterr().err
    tagged = tmp_path / "tagged.png"  # an image in another colour space: cut-outs and composites carry its profile
    Image.open(image).save(tagged, icc_profile=gamma_profile(1.0))
    for options, name in (([], "c_tagged.png"), (["--background", "#00ff00"], "c_tagged.jpg")):
        assert cli.main(["cutout", str(tagged), str(trimap), "-o", str(tmp_path / name), "--model", NAME,
                         *options]) == 0
        assert Image.open(tmp_path / name).info.get("icc_profile") == gamma_profile(1.0)
    for name in ("c_tagged.tif", "c_tagged.bmp"):  # BMP holds no profile: its colours become sRGB
        assert cli.main(["cutout", str(tagged), str(trimap), "-o", str(tmp_path / name), "--model", NAME,
                         "--background", "#00ff00"]) == 0
    linear = np.asarray(Image.open(tmp_path / "c_tagged.tif"), float) / 255
    written = Image.open(tmp_path / "c_tagged.bmp")
    assert "icc_profile" not in written.info
    srgb = 255 * np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    assert np.abs(np.asarray(written) - srgb).max() <= 1
    assert cli.main(["matte", str(tagged), str(trimap), "-o", str(tmp_path / "a_tagged.png"), "--model", NAME]) == 0
    assert "icc_profile" not in Image.open(tmp_path / "a_tagged.png").info  # alpha is not a colour
    Image.open(image).convert("L").save(tagged, icc_profile=grey_profile(1.0))  # read into sRGB through it
    assert cli.main(["cutout", str(tagged), str(trimap), "-o", str(tmp_path / "c_grey.png"), "--model", NAME]) == 0
    assert "icc_profile" not in Image.open(tmp_path / "c_grey.png").info  # a grey profile cannot describe RGB
    recorded = tmp_path / "recorded.jpg"  # a print photo's resolution, stored sideways: its outputs carry it upright
    turned = Image.Exif()
    turned[0x0112] = 6
    Image.open(image).transpose(Image.ROTATE_90).save(recorded, dpi=(300, 150), exif=turned.tobytes())
    for command, options, name in (("matte", [], "a_recorded.png"), ("matte", ["--bits", "32"], "a_recorded.tif"),
                                   ("cutout", ["--crop", "2"], "c_recorded.png"),
                                   ("cutout", ["--background", "white"], "c_recorded.jpg")):
        assert cli.main([command, str(recorded), str(trimap), "-o", str(tmp_path / name), "--model", NAME,
                         *options]) == 0
        assert Image.open(tmp_path / name).info["dpi"] == pytest.approx((150, 300), rel=1e-4)
    assert "dpi" not in Image.open(tmp_path / "c.png").info  # none recorded, none written
    see_through = np.zeros((4, 4, 4), np.uint8)
    see_through[..., 3] = 200
    Image.fromarray(see_through).save(tmp_path / "see_through.png")
    for background, error in (("nonsense", "background: 'nonsense' is neither a colour nor an image file"),
                              ("#00ff0080", "background: '#00ff0080' is partly transparent; a composite is opaque"),
                              ("rgb(300,0,0)", "background: 'rgb(300,0,0)' is not a colour: Pillow reads it as"),
                              (str(tmp_path / "see_through.png"), "background: the image has transparent pixels")):
        assert cli.main(["cutout", str(image), str(trimap), "-o", str(out), "--model", "none",
                         "--background", background]) == 2  # before the model loads
        assert error in capsys.readouterr().err
    missing = str(tmp_path / "new_bg.jpg")
    assert cli.main(["cutout", str(image), str(trimap), "-o", str(out), "--model", "none",
                     "--background", missing]) == 1  # a missing file, as for the image
    assert f"background: no such file {missing!r}" in capsys.readouterr().err
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "h.png"), "--model", NAME,
                     "--precision", "float16"]) == 0
    half = minimatte.infer(str(image), str(trimap), model=NAME, precision="float16")
    assert 0 < np.abs(half - expected).max() < 1e-3
    assert np.abs(np.asarray(Image.open(tmp_path / "h.png")).astype(int) - np.rint(half * 255)).max() == 0
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "o.png"), "--model", NAME,
                     "--preprocessing", "original"]) == 0
    original = minimatte.infer(str(image), str(trimap), model=minimatte.load(NAME, preprocessing="original"))
    assert np.abs(np.asarray(Image.open(tmp_path / "o.png")).astype(int) - np.rint(original * 255)).max() == 0
    assert np.abs(original - expected).max() > 1e-3
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "s.png"), "--model", NAME,
                     "--max-size", "32"]) == 0
    capped = minimatte.infer(str(image), str(trimap), model=NAME, max_size=32)
    assert np.abs(np.asarray(Image.open(tmp_path / "s.png")).astype(int) - np.rint(capped * 255)).max() == 0
    mask = tmp_path / "m.png"
    Image.fromarray(np.pad(np.full((20, 30), 255, np.uint8), 10)).save(mask)
    assert cli.main(["matte", str(image), "--mask", str(mask), "--band", "3", "-o", str(tmp_path / "m_a.png"),
                     "--model", NAME]) == 0
    trimap_from_mask = minimatte.trimap_from_mask(str(mask), band=3)
    expected = minimatte.infer(str(image), trimap_from_mask, model=NAME)
    assert np.abs(np.asarray(Image.open(tmp_path / "m_a.png")).astype(int) - np.rint(expected * 255)).max() == 0
    assert cli.main(["matte", str(image), "--mask", str(mask), "--band", "3", "-o", str(tmp_path / "m_k.png"),
                     "--model", NAME, "--force-known"]) == 0
    forced = np.asarray(Image.open(tmp_path / "m_k.png")).astype(int)
    assert (forced[trimap_from_mask == 0] == 0).all() and (forced[trimap_from_mask == 255] == 255).all()
    unknown = trimap_from_mask == 128
    assert np.abs(forced[unknown] - np.rint(expected[unknown] * 255)).max() == 0
    assert cli.main(["matte", str(image), str(trimap), "--mask", str(mask), "-o", str(tmp_path / "y.png")]) == 2
    assert "trimap: give one of a TRIMAP file, --mask MASK, got trimap and mask" in capsys.readouterr().err
    assert cli.main(["matte", str(image), str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png"),
                     "--model", NAME]) == 1
    assert "trimap: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    classes = tmp_path / "classes.png"  # 0/1/2 class indices, which the network would read as background
    Image.fromarray(np.full((40, 50), 2, np.uint8)).save(classes)
    for command in ("matte", "cutout"):
        assert cli.main([command, str(image), str(classes), "-o", str(tmp_path / "x.png"), "--model", NAME]) == 2
        assert "trimap: expected 0 = background, 255 = foreground" in capsys.readouterr().err


def test_cli_batch_over_folders(served, tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(1)
    images, trimaps, out = tmp_path / "images", tmp_path / "trimaps", tmp_path / "out"
    images.mkdir()
    trimaps.mkdir()
    names = {"a": "a.jpg", "b": "b.JPG"}  # extensions in any case, as cameras name photos (IMG_0001.JPG)
    for stem, size in (("a", (30, 40)), ("b", (50, 20))):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(images / names[stem])
        Image.fromarray(np.full(size, 128, np.uint8)).save(trimaps / f"{stem}.png")
    (images / "notes.txt").write_text("not an image")  # skipped, as hidden files and folders are
    (images / ".hidden.png").write_bytes(b"")
    (images / "folder.png").mkdir()
    (tmp_path / "empty").mkdir()
    assert cli.main(["matte", str(tmp_path / "empty"), str(trimaps), "-o", str(out), "--model", NAME]) == 1
    assert capsys.readouterr().err == f"minimatte: error: image: no image files in {str(tmp_path / 'empty')!r}\n"
    (tmp_path / "empty" / "set1").mkdir()  # a dataset's layout, images in subfolders: those are not searched
    assert cli.main(["matte", str(tmp_path / "empty"), str(trimaps), "-o", str(out), "--model", NAME]) == 1
    assert capsys.readouterr().err == (f"minimatte: error: image: no image files in {str(tmp_path / 'empty')!r}; its "
                                       "subfolders, such as 'set1', are not searched: give one of them\n")
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", NAME]) == 0
    assert "[2/2] wrote" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.png"]
    (images / "notes.txt").unlink()
    (images / ".hidden.png").unlink()
    (images / "folder.png").rmdir()
    for stem in ("a", "b"):
        expected = minimatte.infer(str(images / names[stem]), str(trimaps / f"{stem}.png"), model=NAME)
        assert np.abs(np.asarray(Image.open(out / f"{stem}.png")).astype(int) - np.rint(expected * 255)).max() == 0
    (out / "b.png").unlink()  # resuming: only the missing output is made, the model is not loaded for none
    before = (out / "a.png").stat().st_mtime_ns
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", NAME, "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert "skipping 1 of 2 images, whose output exists" in err and f"wrote {out / 'b.png'}" in err
    assert (out / "a.png").stat().st_mtime_ns == before and (out / "b.png").is_file()
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", "none", "--skip-existing"]) == 0
    assert "skipping 2 of 2 images" in capsys.readouterr().err
    inputs = {path: path.read_bytes() for path in (*images.iterdir(), *trimaps.iterdir())}
    one = [str(images / "a.jpg"), str(trimaps / "a.png")]
    for command, error in (
            (["matte", str(images), str(trimaps), "-o", str(trimaps)], "is the trimap folder, where the outputs"),
            (["matte", str(images), str(trimaps), "-o", str(out / ".." / "trimaps")], "is the trimap folder"),
            (["cutout", str(images), "--mask", str(trimaps), "-o", str(trimaps)], "is the mask folder"),
            # a.png beside a.jpg would be read as an image by the next run (two images named a: an error)
            (["matte", str(images), str(trimaps), "-o", str(images)], "is the image folder, where the outputs would "
                                                                       "be read as images by the next run over it"),
            (["matte", *one, "-o", one[0]], "is the input file"),
            (["cutout", *one, "-o", one[1], "--background", "red"], "is the input file"),
            (["cutout", *one, "-o", str(out / "a.png"), "--background", str(out / "a.png")], "is the input file")):
        assert cli.main([*command, "--model", NAME]) == 2  # refused before any work: inputs are not outputs
        assert error in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in inputs.items()) and not (images / "a.png").exists()
    (images / "a.png").write_bytes((images / "a.jpg").read_bytes())  # two images named a: both outputs a.png
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", NAME]) == 2
    assert f"image: 'a.jpg' and 'a.png' in {str(images)!r} share the name 'a'; keep one" in capsys.readouterr().err
    (images / "a.png").rename(images / "A.png")  # outputs A.png and a.png: one file on macOS and Windows
    (trimaps / "A.png").write_bytes((trimaps / "a.png").read_bytes())  # and each its trimap
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", NAME]) == 2
    assert (f"image: 'A.png' and 'a.jpg' in {str(images)!r} have names that differ only in case, and their outputs "
            "would be one file where file names ignore case (macOS, Windows); rename one of them") in \
        capsys.readouterr().err
    (images / "A.png").unlink()
    (trimaps / "A.png").unlink()
    for hint, label in (([str(trimaps / "a.png")], "trimap"), (["--mask", str(trimaps / "a.png")], "mask")):
        assert cli.main(["matte", str(images), *hint, "-o", str(out), "--model", NAME]) == 2
        assert f"{label}: with an image folder, the {label} must be a folder too" in capsys.readouterr().err
    # one folder of NAME_rgb.png and NAME_trimap.png would pair each image with itself as its trimap
    for hint, label in (([str(images) + "/"], "trimap"), (["--alpha", str(images)], "alpha")):
        assert cli.main(["cutout", str(images), *hint, "-o", str(out), "--model", NAME]) == 2
        assert f"{label}: {hint[-1]!r} is the image folder itself, so each image would be its own {label}" in \
            capsys.readouterr().err
    assert cli.main(["matte", str(images / "a.jpg"), "--mask", str(images / "a.jpg"), "-o", str(out)]) == 2
    assert f"mask: {str(images / 'a.jpg')!r} is the image itself; give the image's mask" in capsys.readouterr().err
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(images / "a.jpg"), "--model", NAME]) == 2
    assert "output: with an input folder, -o must be a folder (made if missing), got the file" in \
        capsys.readouterr().err
    Image.fromarray(np.full((50, 20), 255, np.uint8)).save(trimaps / "b.png")  # an error about the values read...
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out2"), "--model", NAME]) == 1
    assert "[2/2] minimatte: error: b.JPG: trimap: no pixel is unknown" in capsys.readouterr().err  # ...names it
    (trimaps / "b.png").write_bytes(b"broken")  # one bad item: the others are still written, exit status 1
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out2"), "--model", NAME]) == 1
    err = capsys.readouterr().err
    assert f"[2/2] minimatte: error: trimap: {str(trimaps / 'b.png')!r} is not" in err and "1 of 2 images failed" in err
    assert (tmp_path / "out2" / "a.png").exists() and not (tmp_path / "out2" / "b.png").exists()
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out2"), "--model", NAME,
                     "--skip-existing"]) == 1  # one image left, still a batch: its failure is counted
    assert "1 of 1 images failed" in capsys.readouterr().err
    (tmp_path / "out2" / "a.png").unlink()
    (tmp_path / "out2" / "a.png").mkdir()  # an output that cannot be written is one failed item too
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out2"), "--model", NAME]) == 1
    blocked = str(tmp_path / "out2" / "a.png")
    assert f"[1/2] minimatte: error: output: cannot write {blocked!r}" in capsys.readouterr().err

    terminal = Terminal()
    monkeypatch.setenv("COLUMNS", "80")  # the bars' width
    with monkeypatch.context() as patched:  # on a terminal: errors above a bar redrawn in place
        patched.setattr(sys, "stderr", terminal)
        assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out3"), "--model", NAME]) == 1
    shown, frames = terminal.getvalue(), terminal.frames()
    assert "\rimages: [###############...............] 1/2, " in shown and " left" in shown
    assert any(re.fullmatch(r"images: \[#{15}\.{15}\] 1/2, \d+\.\d s each, \d+:\d\d left", frame)
               for frame in frames)  # between images: no stage
    assert "\rminimatte: error: trimap:" in shown and "\rimages: [" + "#" * 30 + "] 2/2, " in shown
    assert re.match(r"images: \[#{30}\] 2/2, [^\n]*\n", frames[-1])  # the finished bar keeps its line, then a new one
    assert "wrote" not in shown and "[1/2]" not in shown
    (images / "c.png").write_bytes(b"")  # an image without its trimap is a failed item in its turn, not the batch's end
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out4"), "--model", NAME]) == 1
    err = capsys.readouterr().err
    assert (f"[3/3] minimatte: error: trimap: no file named c.* in {str(trimaps)!r} for {str(images / 'c.png')!r}\n"
            in err and "2 of 3 images failed" in err)  # b's trimap is broken
    assert sorted(path.name for path in (tmp_path / "out4").iterdir()) == ["a.png"]
    other = tmp_path / "other"  # no image with a trimap: the wrong folder, an error before any work
    other.mkdir()
    assert cli.main(["matte", str(images), str(other), "-o", str(tmp_path / "out5"), "--model", "none"]) == 1
    assert capsys.readouterr().err == f"minimatte: error: trimap: no image files in {str(other)!r}\n"
    (other / "z.png").write_bytes(b"")
    assert cli.main(["cutout", str(images), "--mask", str(other), "-o", str(tmp_path / "out5"), "--model", "none"]) == 1
    assert capsys.readouterr().err == (f"minimatte: error: mask: no file in {str(other)!r} has the name of an image "
                                       f"in {str(images)!r} (such as a.*)\n")


def _two_images(tmp_path, rng, trimap):
    """tmp_path/images and tmp_path/trimaps, each with a.png and b.png: random 30x40 RGB images and trimap()'s."""
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    images.mkdir()
    trimaps.mkdir()
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(images / f"{stem}.png")
        Image.fromarray(trimap()).save(trimaps / f"{stem}.png")
    return images, trimaps


def test_cli_quiet_prints_only_errors(served, tmp_path, capsys, monkeypatch):
    """--quiet: no download or progress lines, bars or 'wrote' lines, on a terminal or in a log; errors still."""
    images, trimaps = _two_images(tmp_path, np.random.default_rng(11), lambda: np.full((30, 40), 128, np.uint8))
    terminal = Terminal()
    with monkeypatch.context() as patched:  # the first use downloads the checkpoint, without a word
        patched.setattr(sys, "stderr", terminal)
        assert cli.main(["cutout", str(images / "a.png"), str(trimaps / "a.png"), "-o", str(tmp_path / "c.png"),
                         "--model", NAME, "-q"]) == 0
    assert terminal.getvalue() == "" and (tmp_path / "c.png").is_file() and (tmp_path / "cache" / NAME).is_dir()
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out"), "--model", NAME,
                     "--quiet"]) == 0
    assert capsys.readouterr().err == "" and len(list((tmp_path / "out").iterdir())) == 2
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out"), "--model", NAME, "-q",
                     "--skip-existing"]) == 0
    assert capsys.readouterr().err == ""
    (trimaps / "b.png").write_bytes(b"broken")
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out2"), "--model", NAME, "-q"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("[2/2] minimatte: error: trimap:") and "1 of 2 images failed" in err[1]
    assert cli.main(["trimap", str(trimaps / "a.png"), "-o", str(tmp_path / "t.png"), "-q"]) == 2  # no unknown...
    assert capsys.readouterr().err.startswith("minimatte: error: mask:")  # ...is an error, quiet or not
    shutil.rmtree(tmp_path / "cache")
    assert cli.main(["download", NAME, "-q"]) == 0
    assert capsys.readouterr() == (str(tmp_path / "cache" / NAME) + "\n", "")
    shutil.rmtree(tmp_path / "cache")  # and in Python
    minimatte.load(NAME, progress=False)
    assert capsys.readouterr().err == "" and (tmp_path / "cache" / NAME / "model.safetensors").is_file()


def test_cli_batch_composites_decode_the_background_once(tmp_path, monkeypatch):
    """--background IMAGE is decoded once for the whole batch (its check before any work included), not per image."""
    rng = np.random.default_rng(4)
    images, mattes, out, backdrop = tmp_path / "images", tmp_path / "mattes", tmp_path / "out", tmp_path / "bg.png"
    images.mkdir()
    mattes.mkdir()
    for stem in "abc":
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(images / f"{stem}.png")
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(mattes / f"{stem}.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(backdrop)
    opened, open_upright = [], processing._open_upright
    monkeypatch.setattr(processing, "_open_upright", lambda source: opened.append(source) or open_upright(source))
    assert cli.main(["cutout", str(images), "--alpha", str(mattes), "-o", str(out), "--background", str(backdrop),
                     "--raw-colors"]) == 0
    assert opened.count(str(backdrop)) == 1  # decoded once: for the check before any work and the three images
    for stem in "abc":
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}.png")),
                                      cutout(str(images / f"{stem}.png"), str(mattes / f"{stem}.png"), str(backdrop),
                                             foreground=False))


def test_cli_single_image_progress_on_a_terminal(served, tmp_path, monkeypatch):
    image, trimap = DATA / "vitmatte_demo" / "bulb_rgb.png", DATA / "vitmatte_demo" / "bulb_trimap.png"
    terminal = Terminal()
    monkeypatch.setenv("COLUMNS", "80")  # the bars' width
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / "c.png"), "--model", NAME,
                     "--max-size", "64"]) == 0
    frames = terminal.frames()
    frames = frames[next(i for i, frame in enumerate(frames) if frame.startswith("bulb_rgb.png: ")):]  # after downloads
    stages = [frame.split("] ")[1].split(",")[0] for frame in frames[:-2]]
    assert stages == list(stage_flops(PRESETS["small"], 64, 64))  # the capped 43x64 input, padded
    assert all(frame.endswith(" left") for frame in frames[:-3]) and frames[-3].endswith("] head")
    assert frames[-2] == "bulb_rgb.png: [" + "#" * 30 + "] foreground colours"  # no time left to estimate
    assert frames[-1] == f"wrote {tmp_path / 'c.png'}\n"  # the bar makes way for the message
    terminal.seek(0)
    terminal.truncate()
    save = Image.Image.save

    def disk_full(image, file, *args, **kwargs):  # found out only when the cut-out is saved to disk
        if isinstance(file, io.BytesIO):  # the formats' probes
            return save(image, file, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert cli.main(["cutout", str(image), str(trimap), "-o", str(tmp_path / "d.png"), "--model", NAME,
                     "--max-size", "64"]) == 1
    *drawn, blanks, error = terminal.getvalue().split("\r")  # the bar blanked out first
    assert "] patch embedding" in "".join(drawn) and blanks == " " * len(drawn[-1].rstrip(" "))
    assert error == f"minimatte: error: output: cannot write {str(tmp_path / 'd.png')!r} (No space left on device)\n"


class Pipe(io.TextIOWrapper):
    """Standard input or output as a pipe (isatty False) or, with terminal=True, as a terminal; its bytes in
    .buffer."""

    def __init__(self, data=b"", terminal=False):
        super().__init__(io.BytesIO(data))
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def test_cli_output_format(served, tmp_path, capsys, monkeypatch):
    """--format: the format of the outputs that -o names without an extension, an output folder's files (a batch of
    JPEG composites) and standard output's; with -o FILE.EXT it must agree. What it cannot hold is refused before
    the model loads, naming it; standard output gets a TIFF of a 32-bit matte, as save writes a file object."""
    rng = np.random.default_rng(2)
    images, trimaps = _two_images(tmp_path, rng, lambda: rng.choice(np.uint8([0, 128, 255]), (30, 40)))
    composite = ["--background", "white", "--model", NAME]
    assert cli.main(["cutout", str(images / "a.png"), str(trimaps / "a.png"), "-o", str(tmp_path / "a.jpg"),
                     *composite]) == 0
    assert cli.main(["cutout", str(images), str(trimaps), "-o", str(tmp_path / "out"), "--format", "jpg",
                     *composite]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.jpg", "b.jpg"]
    assert (tmp_path / "out" / "a.jpg").read_bytes() == (tmp_path / "a.jpg").read_bytes()
    assert cli.main(["cutout", str(images), str(trimaps), "-o", str(tmp_path / "out"), "--format", "jpg",
                     "--skip-existing", *composite]) == 0  # the outputs it looks for are the .jpg ones
    assert "skipping 2 of 2 images" in capsys.readouterr().err
    assert cli.main(["trimap", str(trimaps), "-o", str(tmp_path / "trimaps_out"), "--format", "TIFF"]) == 0
    assert sorted(path.name for path in (tmp_path / "trimaps_out").iterdir()) == ["a.tiff", "b.tiff"]
    capsys.readouterr()
    one = [str(images / "a.png"), str(trimaps / "a.png")]
    stdout = Pipe()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", stdout)
        assert cli.main(["matte", *one, "-o", "-", "--format", "webp", "--model", NAME]) == 0
        assert cli.main(["matte", *one, "-o", "-", "--bits", "32", "--model", NAME]) == 0
    stdout.flush()
    assert capsys.readouterr().err == "wrote the WEBP to standard output\nwrote the TIFF to standard output\n"
    webp_end = stdout.buffer.getvalue().index(b"II*\x00")  # where the TIFF begins
    expected = minimatte.infer(*one, model=NAME)
    webp, tiff = (Image.open(io.BytesIO(part)) for part in (stdout.buffer.getvalue()[:webp_end],
                                                            stdout.buffer.getvalue()[webp_end:]))
    assert (webp.format, tiff.format) == ("WEBP", "TIFF")
    assert np.array_equal(np.asarray(webp.convert("L")), np.rint(expected * 255))  # lossless
    assert np.array_equal(np.asarray(tiff), expected)
    for argv, error in (
            (["cutout", *one, "-o", str(tmp_path / "c"), "--format", "JPG"], "format: JPEG files cannot hold an RGBA "
                                                                           "cut-out, got 'JPG'; use 'PNG', or "
                                                                           "composite it onto a background"),
            (["matte", *one, "-o", str(tmp_path / "m.png"), "--format", "webp"], "format: 'webp' for "
                                                                                 f"{str(tmp_path / 'm.png')!r}, whose "
                                                                                 "extension means PNG; give the one, "
                                                                                 "or the other"),
            (["matte", *one, "-o", "-", "--format", "png", "--bits", "32"], "format: 32-bit float alphas need a "
                                                                            "'TIFF' file, got 'png'"),
            (["matte", str(images), str(trimaps), "-o", str(tmp_path / "o"), "--format", "pgn"],
             "format: expected an image format that Pillow knows, such as 'PNG', 'JPEG', 'WEBP' or 'TIFF', got 'pgn'"),
            (["trimap", str(trimaps), "-o", str(tmp_path / "o"), "--format", "jpeg"], "output: a JPEG file would "
                                                                                       "change the trimap's values, "
                                                                                       "got --format jpeg; use png")):
        assert cli.main([*argv, "--model", "none"] if argv[0] != "trimap" else argv) == 2
        assert capsys.readouterr().err == f"minimatte: error: {error}\n"
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.png").exists()


def test_cli_standard_input_and_output(served, tmp_path, capsys, monkeypatch):
    """'-' as an input file reads it from standard input, and -o - writes a PNG to standard output, as in a
    pipeline: the same files as with paths. Two inputs from standard input, and a terminal at either end, are
    errors before any work."""
    rng = np.random.default_rng(0)
    image, trimap = tmp_path / "i.png", tmp_path / "t.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    trimap_levels = np.full((40, 50), 128, np.uint8)
    trimap_levels[:10], trimap_levels[-10:] = 0, 255
    Image.fromarray(trimap_levels).save(trimap)

    def run(*argv, stdin=b"", stdin_terminal=False, stdout_terminal=False):
        """cli.main's exit status, standard output's bytes and standard error's text."""
        stdout = Pipe(terminal=stdout_terminal)
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdin", Pipe(stdin, stdin_terminal))
            patch.setattr(sys, "stdout", stdout)
            status = cli.main([*argv, "--model", NAME] if argv[0] in ("matte", "cutout") else list(argv))
        stdout.flush()
        return status, stdout.buffer.getvalue(), capsys.readouterr().err

    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png"), "--model", NAME]) == 0
    matte = (tmp_path / "a.png").read_bytes()
    capsys.readouterr()
    for argv, stdin in ((["matte", "-", str(trimap), "-o", "-"], image.read_bytes()),
                        (["matte", str(image), "-", "-o", "-", "--skip-existing"], trimap.read_bytes())):
        status, out, err = run(*argv, stdin=stdin)  # standard output is never skipped, nor said to be
        assert (status, out, err) == (0, matte, "wrote the PNG to standard output\n")
    status, out, err = run("cutout", str(image), "--alpha", "-", "-o", "-", stdin=matte)  # read once, used twice
    assert (status, err) == (0, "wrote the PNG to standard output\n")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))), cutout(str(image), str(tmp_path / "a.png")))
    status, out, err = run("cutout", str(image), str(trimap), "--background", "-", "-o", str(tmp_path / "c.png"),
                           stdin=(DATA / "vitmatte_demo" / "new_bg.jpg").read_bytes())
    assert status == 0 and (tmp_path / "c.png").is_file()
    mask = tmp_path / "m.png"
    Image.fromarray(trimap_levels // 255 * 255).save(mask)
    status, out, _ = run("trimap", "-", "--band", "2", "-o", "-", stdin=mask.read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))),
                                  minimatte.trimap_from_mask(str(mask), band=2))
    scores = run("evaluate", str(tmp_path / "a.png"), str(mask), str(trimap))
    assert scores[0] == 0 and run("evaluate", str(tmp_path / "a.png"), str(mask), "-", stdin=trimap.read_bytes()) == \
        scores
    for argv, options, error in (
            (["matte", "-", "-", "-o", "-"], {}, "trimap: standard input ('-') can give one input only, got it for "
                                                 "image and trimap"),
            (["cutout", str(image), "-", "--background", "-", "-o", "c.png"], {}, "background: standard input"),
            (["evaluate", "-", "-", str(trimap)], {}, "gt: standard input ('-') can give one input only, got it for "
                                                      "pred and gt"),
            (["matte", "-", str(trimap), "-o", "a.png"], {"stdin_terminal": True}, "image: '-' reads it from "
             "standard input, which is a terminal; redirect a file into it (< FILE) or pipe one"),
            (["matte", str(image), str(trimap), "-o", "-"], {"stdout_terminal": True}, "output: '-' writes the PNG "
             "to standard output, which is a terminal; redirect it (> FILE) or pipe it"),
            (["matte", "-", str(trimap), "-o", str(tmp_path) + os.sep], {}, "is a folder, and what standard input "
             "gives has no name to name its output file by; give -o a file name"),
            (["matte", str(DATA / "vitmatte_demo"), str(tmp_path), "-o", "-"], {}, "output: with an input folder, "
             "-o must be a folder, got '-' (standard output)"),
            (["trimap", "-", "-o", "-"], {"stdin": b"not an image"}, "mask: standard input is not a readable image"),
            (["matte", str(image), "-", "-o", "-"], {}, "trimap: standard input ('-') is empty")):
        status, out, err = run(*argv, **options)
        assert status == 2 and out == b"" and error in err, err


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="pseudo-terminals")
@pytest.mark.skipif(os.name != "posix", reason="a POSIX shell's closed descriptors")
def test_cli_with_a_standard_stream_closed(tmp_path):
    """Started with stderr closed (`2>&-`, as some daemons start programs), a command does its work, its messages
    going nowhere and its exit status telling (it failed before writing anything: Python leaves sys.stderr None);
    '-' on a closed standard input or output is one clear error, and so is evaluate's table on a closed stdout."""
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 8:22] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")

    def run(arguments, closing):
        command = f"{shlex.quote(sys.executable)} -m minimatte {arguments} {closing}"
        return subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True)
    assert run("trimap m.png --band 2 -o t.png", "2>&-").returncode == 0
    assert np.unique(np.asarray(Image.open(tmp_path / "t.png"))).tolist() == [0, 128, 255]
    assert run("trimap m.png -o t.jpg", "2>&-").returncode == 2  # its error, unseen
    for arguments, closing, error in (
            ("trimap m.png -o -", ">&-", "output: '-' writes the PNG to standard output, which is closed; redirect "
                                         "it (> FILE) or pipe it"),
            ("trimap m.png -o - --format tif", ">&-", "output: '-' writes the TIFF to standard output, which is "
                                                      "closed; redirect it (> FILE) or pipe it"),
            ("matte m.png m.png -o - --bits 32", ">&-", "output: '-' writes the TIFF to standard output, which is "
                                                        "closed; redirect it (> FILE) or pipe it"),
            ("trimap - -o u.png", "<&-", "mask: '-' reads it from standard input, which is closed; redirect a file "
                                         "into it (< FILE) or pipe one"),
            ("evaluate t.png t.png --whole-image", ">&-", "evaluate: standard output, where the scores go, is closed; "
                                                         "redirect it (> FILE) or pipe it")):
        finished = run(arguments, closing)
        assert (finished.returncode, finished.stderr.decode()) == (2, f"minimatte: error: {error}\n")
    assert sorted(os.listdir(tmp_path)) == ["m.png", "t.png"]


def test_cli_refuses_paths_naming_the_terminal(tmp_path, capsys):
    """/dev/stdout (or /dev/fd/1, /dev/pts/N) as the output where standard output is a terminal, and /dev/stdin as
    an input where standard input is one, are refused as '-' is there: the file would print as bytes, or the
    command would wait for it to be typed; minimatte.save refuses such an output too. /dev/tty, the process's own
    terminal, is refused whatever the streams are. convert, which writes a file, refuses '-' rather than writing
    one named '-'."""
    image, trimap = (str(DATA / "vitmatte_demo" / f"bulb_{kind}.png") for kind in ("rgb", "trimap"))
    controller, terminal = os.openpty()
    environment = {**os.environ, "MINIMATTE_OFFLINE": "1"}  # a check that did not stop it would not download
    command = ["-m", "minimatte"]
    try:
        for arguments, status, error in (
                ([*command, "matte", image, trimap, "-o", "/dev/stdout"], 2, "output: '/dev/stdout' is the terminal, "
                 "where the file would print as bytes; redirect it (> FILE) or pipe it"),
                ([*command, "cutout", image, trimap, "-o", os.ttyname(terminal)], 2,
                 f"output: {os.ttyname(terminal)!r} is the terminal"),
                ([*command, "matte", "/dev/stdin", trimap, "-o", str(tmp_path / "a.png")], 2, "image: '/dev/stdin' is "
                 "the terminal; redirect a file into it (< FILE) or pipe one"),
                ([*command, "convert", "small-composition-1k", "/dev/fd/1"], 2, "destination: '/dev/fd/1' is the "
                 "terminal"),
                (["-c", "import minimatte, numpy; minimatte.save('/dev/stdout', numpy.ones((2, 2)))"], 1,
                 "ValueError: output: '/dev/stdout' is the terminal")):
            run = subprocess.run([sys.executable, *arguments], stdin=terminal, stdout=terminal,
                                 stderr=subprocess.PIPE, env=environment, timeout=120)
            assert run.returncode == status and error in run.stderr.decode(), run.stderr
    finally:
        os.close(terminal)
        os.close(controller)
    if os.path.exists("/dev/tty"):  # refused by its name alone: no terminal need be at hand
        assert cli.main(["matte", image, trimap, "-o", "/dev/tty"]) == 2
        assert "output: '/dev/tty' is the terminal" in capsys.readouterr().err
        assert cli.main(["matte", "/dev/tty", trimap, "-o", str(tmp_path / "a.png")]) == 2
        assert "image: '/dev/tty' is the terminal" in capsys.readouterr().err
        with pytest.raises(ValueError, match="output: '/dev/tty' is the terminal"):
            minimatte.save("/dev/tty", np.ones((2, 2)))
    assert cli.main(["convert", "small-composition-1k", "-"]) == 2
    assert "destination: convert writes a file, not standard output; give its name (NAME.safetensors, or ./- for " \
           "a file named '-')" in capsys.readouterr().err and not os.path.exists("-")


def test_cli_version(capsys, monkeypatch):
    """The versions a bug report needs, NumPy's OpenBLAS with the kernels it runs, and whether minimatte steers
    its threads (a report of slow passes on macOS or Windows, say, then shows whether it found NumPy's OpenBLAS
    there, and one from a CPU whose AVX-512 OpenBLAS leaves unused says how to use it)."""
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    versions, blas, *advice = capsys.readouterr().out.splitlines()
    assert exit.value.code == 0 and versions.startswith(f"minimatte {minimatte.__version__} (Python ")
    if backend._BLAS is not None:
        version, kernels = backend._openblas_build()
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version) and re.fullmatch(r"[A-Za-z0-9]+", kernels)
        assert re.fullmatch(rf"NumPy's BLAS: OpenBLAS {re.escape(version)} with its {kernels} kernels( \("
                            rf"OPENBLAS_CORETYPE=.*\))?, which minimatte steers; forward passes run on "
                            rf"{backend._BLAS[0]()} threads?", blas)
        monkeypatch.setattr(backend, "cpu_flags", lambda: set(backend.AVX512_FLAGS) | {"avx2"})
        for kernels, advised in (("Barcelona", True), ("Haswell", True), ("SkylakeX", False), ("Cooperlake", False),
                                 ("?", False)):  # "?": an OpenBLAS that does not say
            monkeypatch.setattr(backend, "_openblas_build", lambda: ("0.3.18", kernels))
            advice = backend.blas_summary().splitlines()[1:]
            assert advice == (["This CPU has AVX-512, which those kernels do not use: with OPENBLAS_CORETYPE=SkylakeX "
                               "in the environment, passes ran 1.3 to 2.5 times faster on an AMD Zen 5"]
                              if advised else [])
            assert backend.blas_summary(one_line=True) == ". ".join(backend.blas_summary().splitlines())
        monkeypatch.setattr(backend, "cpu_flags", lambda: {"avx2", "avx512f"})  # not every set the kernels use
        assert len(backend.blas_summary().splitlines()) == 1
    monkeypatch.setattr(backend, "_BLAS", None)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    blas = capsys.readouterr().out.splitlines()[1:]
    assert blas == ["NumPy's BLAS: not an OpenBLAS minimatte can steer; forward passes run a kernel's pieces in turn"]


def test_cli_heif_photos(served, tmp_path, capsys):
    pillow_heif, = require("pillow_heif")
    images, trimaps, out = tmp_path / "images", tmp_path / "trimaps", tmp_path / "out"
    images.mkdir(), trimaps.mkdir()
    y, x = np.mgrid[:30, :40]
    photo = Image.fromarray(np.stack([y * 8, x * 6, (x + y) * 3], axis=-1).astype(np.uint8))
    pillow_heif.from_pillow(photo).save(images / "photo.heic", quality=-1)
    Image.fromarray(np.full((30, 40), 128, np.uint8)).save(trimaps / "photo.png")
    # a folder of HEIF photos is a folder of images, before any has been opened
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(out), "--model", NAME]) == 0
    expected = minimatte.infer(str(images / "photo.heic"), str(trimaps / "photo.png"), model=NAME)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "photo.png")), np.rint(expected * 255))
    assert cli.main(["matte", str(images / "photo.heic"), str(trimaps / "photo.png"), "-o", str(out / "a.heic")]) == 2
    assert "output: HEIF files are lossy, got" in capsys.readouterr().err


def test_cli_trimap_writes_what_mask_builds(served, tmp_path, capsys):
    """`minimatte trimap MASK` writes the trimap that `--mask MASK` mattes with: matting with the written file
    gives the same alpha. Folders of masks give folders of trimaps; lossy JPEG and overwriting the mask are
    refused before any work."""
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 15:45] = 255
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(mask).save(masks / "a.png")
    Image.fromarray(mask.T.copy()).save(masks / "b.png")
    assert cli.main(["trimap", str(masks / "a.png"), "-o", str(tmp_path / "t.png"), "--band", "3"]) == 0
    written = np.asarray(Image.open(tmp_path / "t.png"))
    np.testing.assert_array_equal(written, minimatte.trimap_from_mask(mask, band=3))
    assert set(np.unique(written)) == {0, 128, 255}
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(image)
    small = tmp_path / "small_mask.png"  # a segmentation model's mask at a quarter of the image's size
    Image.fromarray(mask[::2, ::2]).save(small)
    assert cli.main(["matte", str(image), "--mask", str(small), "-o", str(tmp_path / "alpha_small.png"), "--band",
                     "3", "--model", NAME]) == 0
    trimap_small = minimatte.trimap_from_mask(mask[::2, ::2], band=3, size=(40, 60))
    expected = minimatte.infer(str(image), trimap_small, model=NAME)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "alpha_small.png")),
                                  np.rint(expected * 255).astype(np.uint8))
    for name, hint in (("alpha_t.png", [str(tmp_path / "t.png")]),
                       ("alpha_m.png", ["--mask", str(masks / "a.png"), "--band", "3"])):
        assert cli.main(["matte", str(image), *hint, "-o", str(tmp_path / name), "--model", NAME]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "alpha_t.png")),
                                  np.asarray(Image.open(tmp_path / "alpha_m.png")))
    for option in ["--band", "3"], ["--thresholds", "0.5", "0.5"]:  # mask options that would do nothing
        assert cli.main(["matte", str(image), str(tmp_path / "t.png"), "-o", str(tmp_path / "alpha.png"), *option,
                         "--model", NAME]) == 2
        assert f"{option[0][2:]}: {option[0]} shapes the trimap built from --mask; with trimap it does nothing" in \
            capsys.readouterr().err
    soft = np.clip(np.arange(60) * 5, 0, 255).astype(np.uint8)[None].repeat(40, axis=0)  # a ramp: a soft mask
    Image.fromarray(soft).save(tmp_path / "soft.png")
    for thresholds in [], ["0.5", "0.5"], ["0.2", "0.9"]:
        assert cli.main(["trimap", str(tmp_path / "soft.png"), "-o", str(tmp_path / "t_soft.png"), "--band", "2",
                         *(["--thresholds", *thresholds] if thresholds else [])]) == 0
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "t_soft.png")), minimatte.trimap_from_mask(
            soft, band=2, **({"thresholds": tuple(map(float, thresholds))} if thresholds else {})))
    assert cli.main(["trimap", str(tmp_path / "soft.png"), "-o", str(tmp_path / "t_soft.png"), "--thresholds",
                     "0.9", "0.2"]) == 2  # checked before any work
    assert "thresholds: expected (background below, foreground above) with 0 <= first <= second <= 1, got (0.9, " \
        "0.2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["trimap", str(tmp_path / "soft.png"), "-o", str(tmp_path / "t_soft.png"), "--thresholds", "0", "2"])
    assert "argument --thresholds: expected a number from 0 to 1, got '2'" in capsys.readouterr().err
    assert cli.main(["trimap", str(masks), "-o", str(tmp_path / "trimaps")]) == 0
    assert "[2/2] wrote" in capsys.readouterr().err
    for stem, plane in (("a", mask), ("b", mask.T)):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "trimaps" / f"{stem}.png")),
                                      minimatte.trimap_from_mask(plane))
    (masks / "c.png").write_bytes(b"broken")  # one bad mask: the others are still written, exit status 1
    assert cli.main(["trimap", str(masks), "-o", str(tmp_path / "trimaps")]) == 1
    err = capsys.readouterr().err
    assert "[3/3] minimatte: error: mask: " in err and "1 of 3 masks failed" in err
    for mask_input, output, error in ((masks / "a.png", tmp_path / "t.jpg", "output: a JPEG file would change the "
                                                                           "trimap's values"),
                                      (masks / "a.png", masks / "a.png", "is the input file"),
                                      (masks, masks, "is the mask folder, where the outputs would be read as masks")):
        assert cli.main(["trimap", str(mask_input), "-o", str(output)]) == 2
        assert error in capsys.readouterr().err
    assert not (tmp_path / "t.jpg").exists()
    np.testing.assert_array_equal(np.asarray(Image.open(masks / "a.png")), mask)


def test_cli_interrupted(tmp_path, capsys, monkeypatch):
    """Ctrl-C: one line and exit status 130, no traceback and no half-written output."""
    image, trimap = DATA / "vitmatte_demo" / "bulb_rgb.png", DATA / "vitmatte_demo" / "bulb_trimap.png"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(minimatte.api, "load", lambda *args, **kwargs: None)
    monkeypatch.setattr(minimatte.api, "infer", interrupted)
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png")]) == 130
    assert capsys.readouterr().err == "minimatte: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_out_of_memory(tmp_path, capsys, monkeypatch):
    """The network's MemoryError (NumPy's names the array) is one line that says what needs less memory, exit
    status 1; in batch mode that image is skipped like any failed one, and the next is matted."""
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    images.mkdir()
    trimaps.mkdir()
    for stem, size in (("a", (40, 30)), ("b", (20, 30))):
        Image.fromarray(np.zeros(size + (3,), np.uint8)).save(images / f"{stem}.png")
        Image.fromarray(np.full(size, 128, np.uint8)).save(trimaps / f"{stem}.png")
    shortage = "Unable to allocate 6.00 GiB for an array with shape (6, 16384, 16384) and data type float32"

    def infer(image, trimap, **options):
        if image.size[1] == 40:  # a.png
            raise MemoryError(shortage)
        return np.full(image.size[::-1], 0.5, np.float32)
    monkeypatch.setattr(minimatte.api, "load", lambda *args, **kwargs: None)
    monkeypatch.setattr(minimatte.api, "infer", infer)
    one = [str(images / "a.png"), str(trimaps / "a.png"), "-o", str(tmp_path / "a.png")]
    for options, advice in (([], "--max-size, which runs it on a reduced copy"),
                            (["--max-size", "1024"], "a smaller --max-size")):
        assert cli.main(["matte", *one, *options]) == 1
        assert capsys.readouterr().err == (f"minimatte: error: out of memory: {shortage}; the network needs less "
                                           f"with {advice}\n")
    assert cli.main(["matte", str(images), str(trimaps), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"[1/2] minimatte: error: a.png: out of memory: {shortage}; the network needs less with --max-size" in err
    assert f"[2/2] wrote {tmp_path / 'out' / 'b.png'}" in err and "1 of 2 images failed" in err
    assert sorted(os.listdir(tmp_path)) == ["images", "out", "trimaps"] and os.listdir(tmp_path / "out") == ["b.png"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_cli_terminated_while_writing(tmp_path, capsys, monkeypatch):
    """SIGTERM (a job's time limit, `timeout`, `docker stop`) halfway through writing an output: one line, exit
    status 143, and neither the output nor the temporary file it was being written to is left; the program's own
    SIGTERM handling is back after."""
    image, trimap = DATA / "vitmatte_demo" / "bulb_rgb.png", DATA / "vitmatte_demo" / "bulb_trimap.png"
    monkeypatch.setattr(minimatte.api, "load", lambda *args, **kwargs: None)
    monkeypatch.setattr(minimatte.api, "infer", lambda *args, **kwargs: np.full((10, 10), 0.5, np.float32))

    def save(image, file, *args, _save=Image.Image.save, **kwargs):
        if not isinstance(file, str):  # the checks' probes, written to memory
            return _save(image, file, *args, **kwargs)
        with open(file, "wb") as out:
            out.write(b"half a PNG")
            os.kill(os.getpid(), signal.SIGTERM)
            out.write(b"the rest")
    monkeypatch.setattr(Image.Image, "save", save)
    handler = signal.getsignal(signal.SIGTERM)
    assert cli.main(["matte", str(image), str(trimap), "-o", str(tmp_path / "a.png")]) == 143
    assert capsys.readouterr().err == "minimatte: terminated\n"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is handler


def test_cli_from_another_thread(tmp_path):
    """cli.main called from a thread other than the main one (a GUI's worker) runs without a SIGTERM handler of
    its own, which Python sets and runs in the main thread only."""
    mask, done = tmp_path / "mask.png", []
    Image.fromarray(np.kron(np.eye(2, dtype=np.uint8), np.full((8, 8), 255, np.uint8))).save(mask)
    handler = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=lambda: done.append(cli.main(["trimap", str(mask), "-o", str(tmp_path / "t.png"),
                                                                   "-q"])))
    worker.start()
    worker.join(60)
    assert done == [0] and (tmp_path / "t.png").is_file() and signal.getsignal(signal.SIGTERM) is handler
