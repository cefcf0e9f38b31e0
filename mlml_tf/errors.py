"""The one exception raised for bad user input, and atomic file writing.

Every reader checks its input once, at the boundary, and raises :class:`DataError` with the
place of the fault (file, row, column) so that a user can open the file and fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """Bad input: a malformed file, a value out of range, ids that do not match.

    Attributes name where the fault is; any of them may be ``None``.
    ``row`` is the 1-based line number in the file (the header is line 1) where one applies.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.reason = message
        place = []
        if self.file is not None:
            place.append(self.file)
        if row is not None:
            place.append(f"line {row}")
        if column is not None:
            place.append(f"column {column!r}")
        super().__init__(": ".join([", ".join(place), message]) if place else message)


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
