"""Crash-safe file writes: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator

__all__ = ["atomic_path", "atomic_dir", "leftover_temporaries", "new_folder"]


def new_folder(base: str) -> str:
    """Create and return a folder that did not exist: ``base``, else ``base_1``, ``base_2``..."""
    candidate, k = base, 0
    while True:
        try:
            os.makedirs(candidate)
            return candidate
        except FileExistsError:
            k += 1
            candidate = f"{base}_{k}"


def _temporary(path: str) -> str:
    """The temporary name beside ``path``: ``.<name>.<pid>.<8 hex digits>.tmp``."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def leftover_temporaries(folder: str | os.PathLike, name_pattern: str) -> list[str]:
    """Return the temporary files in ``folder`` of targets whose names match ``name_pattern``.

    These are what :func:`atomic_path` leaves when a kill comes before its rename.

    Args:
        folder: the folder of the targets.
        name_pattern: a regular expression that a target's whole name matches.

    Returns:
        the temporary files' paths.
    """
    pattern = re.compile(rf"\.(?:{name_pattern})\.\d+\.[0-9a-f]{{8}}\.tmp")
    return [os.path.join(folder, name) for name in os.listdir(folder)
            if pattern.fullmatch(name)]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike,
                before_replace: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield a temporary file name beside ``path`` to write; on success move it over ``path``.

    The rename is atomic on POSIX, so readers (and a crash at any moment) see either the old
    file or the complete new one, never a truncated mix. If the body raises, the temporary
    file is removed and ``path`` is left untouched. ``before_replace(tmp)``, if given, runs
    once the complete file is on disk, just before the rename (a commit record naming ``tmp``
    lets a reader roll a crash between the two forward).
    """
    path = os.fspath(path)
    # Not created here, so the writer creates it with the usual permissions (umask).
    tmp = _temporary(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield a fresh (not yet created) folder name beside ``path``; on success swap it in.

    The old folder is renamed aside until the new one is in place and only then removed, so a
    crash at any moment leaves a complete checkpoint (the old one, at worst under its aside
    name). If the body raises, the temporary folder is removed and ``path`` is untouched.
    """
    path = os.fspath(path).rstrip(os.sep)
    tmp = _temporary(path)
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = f"{tmp}.old"
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
