"""Atomic replacement of status documents.

PyWPS's ``FileStorage.write`` opens the status document in place with ``"w"``
(truncate, then write) — over NFS a polling client can read an empty or half
written document. Here the new content goes to a temporary file in the same
directory (so the rename never crosses a file system), is flushed to disk, gets
the permissions a plainly created file would have, and is renamed over the old
document. A reader sees either the old or the new document, never a mix.
"""

from __future__ import annotations

import os
import tempfile


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` with write-to-temporary-then-rename."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; the web server must be able to read status documents.
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
