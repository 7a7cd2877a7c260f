import os
import stat

import pytest

from minimatte.files import atomic_output


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_outputs_end_as_a_plain_write_leaves_them(tmp_path):
    """A new output gets the default permissions of new files (0o666 less the umask), as open() gives them, not
    the temporary file's owner-only ones; a replaced file keeps its own; a symbolic link's target is written."""
    umask = os.umask(0o027)
    try:
        for umask_now, expected in ((0o027, 0o640), (0o022, 0o644)):
            os.umask(umask_now)
            new = tmp_path / f"new{umask_now:o}.png"
            with atomic_output(new) as tmp:
                with open(tmp, "wb") as out:
                    out.write(b"matte")
            assert new.read_bytes() == b"matte" and _mode(new) == expected
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"old")
        os.chmod(kept, 0o600)
        with atomic_output(kept) as tmp:
            with open(tmp, "wb") as out:
                out.write(b"new")
        assert kept.read_bytes() == b"new" and _mode(kept) == 0o600
        os.symlink(kept, tmp_path / "link.png")  # a link's target is written, as open() writes it
        with atomic_output(tmp_path / "link.png") as tmp:
            with open(tmp, "wb") as out:
                out.write(b"through")
        assert os.path.islink(tmp_path / "link.png") and kept.read_bytes() == b"through"
    finally:
        os.umask(umask)
    with pytest.raises(RuntimeError):  # a failed write leaves neither the output nor the temporary file
        with atomic_output(tmp_path / "failed.png") as tmp:
            raise RuntimeError("encoder failed")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.png", "link.png", "new22.png",
                                                                  "new27.png"]
