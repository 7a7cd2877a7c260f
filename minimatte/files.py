"""Writing output files so that a failure never leaves a half-written one behind."""
import contextlib
import os
import secrets
import stat


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path` to write to; it is renamed onto `path` only if the block succeeds.

    The file ends as writing `path` in place would leave it: a symbolic link's target is written, not the link
    replaced, and the permissions are those of the file replaced, else the default for new files (0o666 less the
    umask), not tempfile.mkstemp's owner-only 0o600, which would hide outputs from a web server or the other users
    of a shared folder."""
    path = os.path.realpath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = _new_file(directory, os.path.splitext(path)[1])
    try:
        yield tmp
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _new_file(directory, suffix):
    """The path of a new empty file in `directory`, created as open() creates files (0o666 less the umask)."""
    while True:
        path = os.path.join(directory, f".minimatte-{secrets.token_hex(8)}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:  # a name taken already (by chance, 1 in 2^64): draw another
            continue
