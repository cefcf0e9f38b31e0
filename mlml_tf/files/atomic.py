"""Files written whole or not at all, locks between processes, digests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file, and a failure (or a kill) leaves at most a hidden
    ``.tmp.*`` file that :func:`remove_stale_temporaries` removes.
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends with the real one, so that writers that check the suffix
    # (Keras wants ".keras" or ".weights.h5") accept it.
    fd, tmp = tempfile.mkstemp(prefix=".tmp.", suffix=f".{path.name}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions of an ordinary open().
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete ``.tmp.*`` files left in ``folder`` by a writer that was killed; return how many.

    Call it only where no other process is writing (under the folder's lock).
    """

    removed = 0
    for tmp in Path(folder).glob(".tmp.*"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (``algorithm``: md5, sha1, sha256, ...)."""

    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


os.umask(_UMASK)


def file_state(path: str | os.PathLike) -> tuple:
    """(path, size, modification time) of a file, ``None`` for the last two where it cannot be
    read: what keys a cache of the file's contents, so that a changed file is read again."""
    try:
        st = Path(path).stat()
    except OSError:
        return (str(path), None, None)
    return (str(path), st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``folder/.lock`` between processes on this machine (flock).

    Yields True when held; with ``blocking=False`` yields False at once if another process holds
    it. The lock dies with its process, so a killed holder never blocks the next one.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
