"""Path helpers: where a job's status document is, and the clean-up's containment checks
and deletion that never follows a link.

Every path the clean-up deletes goes through :func:`contained` first (it must
be a direct child of one of the :class:`Roots`), and :func:`remove` deletes a
symbolic link as the link itself, never its target.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def status_document(outputpath: str | os.PathLike[str], uuid: str) -> str:
    """The WPS 1.0 status document of job ``uuid``: ``<outputpath>/<uuid>.xml``, where PyWPS writes it
    and clients poll it (the reconciler, the clean-up, job control and the inspector all look there)."""
    return os.path.join(outputpath, f"{uuid}.xml")


@dataclass(frozen=True)
class Roots:
    """The only directories anything is deleted from (real paths)."""

    outputpath: Path
    workdir: Path
    log_dir: Path | None = None


def contained(root: Path, candidate: str | os.PathLike[str]) -> Path | None:
    """``candidate`` as a direct child of ``root``, or None if it is not one.

    ``candidate`` must be absolute. ``..`` is normalised and the parent
    directory resolved (symbolic links included) before the comparison; the last
    component is kept as is, so a symbolic link is judged and removed as the
    link itself. ``root`` itself, or anything outside it, is None.
    """
    text = os.fspath(candidate)
    if not text or "\0" in text or not os.path.isabs(text):
        return None
    normal = os.path.abspath(text)
    name = os.path.basename(normal)
    if name in ("", ".", ".."):
        return None
    parent = os.path.realpath(os.path.dirname(normal))
    if parent != os.path.realpath(root):
        return None
    return Path(parent, name)


def lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def tree_usage(path: Path) -> tuple[float, int]:
    """(newest mtime, bytes of regular files) of ``path`` and, for a directory, all below it.

    Symbolic links are not followed. Entries vanishing meanwhile are skipped.
    """
    st = lstat(path)
    if st is None:
        return 0.0, 0
    newest = st.st_mtime
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in dirnames + filenames:
                sub = lstat(Path(dirpath, name))
                if sub is None:
                    continue
                newest = max(newest, sub.st_mtime)
                if stat.S_ISREG(sub.st_mode):
                    size += sub.st_size
    return newest, size


def alive(pid: object) -> bool:
    """Whether process ``pid`` exists on this host (PyWPS's own crash test); unknown counts as alive."""
    try:
        number = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return True
    if number <= 0:
        return True
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ignore_missing(func: Callable[..., object], path: str, exc_info: tuple) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def remove(path: Path) -> bool:
    """Delete a file, a symbolic link (not its target) or a directory tree. False if it was not there."""
    st = lstat(path)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, onerror=_ignore_missing)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
    return True
