"""Fetch and unpack the raw COCO 2017 data (e.g. on Colab): checked, resumable, atomic.

A download goes to a hidden ``.<name>.part`` file beside its destination and is renamed onto
it only once complete and, where a checksum is known, verified. An interrupted download is
resumed from the partial file when the server honours HTTP ranges. NUS-WIDE images are not
distributed by a public URL; its files must be obtained from its authors.

Example:
    >>> annotations = download_coco("/content/coco")   # doctest: +SKIP
    >>> annotations
    PosixPath('/content/coco/annotations/instances_train2017.json')
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path, file_digest, write_bytes_atomic

_CHUNK = 1 << 20
_HASHES = ("md5", "sha1", "sha256")


@dataclass(frozen=True)
class Archive:
    """A file to download: its URL and, where published, its SHA-1."""
    url: str
    sha1: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.url.split("?")[0]).name


# SHA-1 sums as published with gluoncv's scripts/datasets/mscoco.py.
COCO_ANNOTATIONS = Archive(
    "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    "8551ee4bb5860311e79dace7e79cb91e432e78b3",
)
COCO_TRAIN_IMAGES = Archive(
    "http://images.cocodataset.org/zips/train2017.zip",
    "10ad623668ab00c62c096f0ed636d6aff41faca5",
)
COCO_TRAIN_ANNOTATIONS = "annotations/instances_train2017.json"


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha1: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``; return ``dest``.

    Args:
        url: http(s), ftp or file URL.
        dest: path of the file to write; its folder is created.
        sha1, md5, sha256: expected hex digests; each one given is checked.
        progress: show a tqdm progress bar.
        overwrite: download again even if ``dest`` exists and matches its checksums.
        timeout: seconds to wait for the server.

    Returns:
        ``dest`` as a Path. If ``dest`` already exists and matches every checksum given (or
        none is given), nothing is downloaded.

    Raises:
        DataError: the downloaded file does not match a checksum (the file is deleted; the
            message names it with both digests).
        OSError: network failure or a truncated transfer; the partial file is kept and the next
            call resumes it.
    """

    dest = Path(dest)
    given = zip(_HASHES, (md5, sha1, sha256), strict=True)
    expected = {name: value.lower() for name, value in given if value}
    if dest.exists() and not overwrite and not _mismatch(dest, expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    _fetch(url, part, progress=progress, timeout=timeout)
    bad = _mismatch(part, expected)
    if bad:
        part.unlink()
        name, want, got = bad
        raise DataError(
            f"{name} checksum mismatch for a download of {url}: expected {want}, got {got}; "
            "the file was deleted",
            file=dest,
        )
    os.replace(part, dest)
    return dest


def extract_zip(
    path: str | os.PathLike,
    dest: str | os.PathLike,
    members: list[str] | None = None,
    *,
    progress: bool = True,
) -> list[Path]:
    """Extract a zip archive (or some of its ``members``) under ``dest``; return the files.

    Each file is written atomically; a file already present with the size recorded in the
    archive is kept, so an interrupted extraction can simply be run again.

    Raises:
        DataError: not a zip file, a member escaping ``dest``, or a requested member missing.
    """
    path, dest = Path(path), Path(dest)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, FileNotFoundError) as err:
        raise DataError(f"not a readable zip archive ({err})", file=path) from None
    written: list[Path] = []
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if members is not None:
            present = {info.filename for info in infos}
            missing = [m for m in members if m not in present]
            if missing:
                raise DataError(f"members not in the archive: {missing}", file=path)
            infos = [info for info in infos if info.filename in set(members)]
        for info in tqdm(infos, desc=f"extract {path.name}", unit="file", disable=not progress):
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise DataError(f"member {info.filename!r} would be written outside {dest}",
                                file=path)
            target = dest.joinpath(*name.parts)
            if not (target.is_file() and target.stat().st_size == info.file_size):
                with archive.open(info) as src, atomic_path(target) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            written.append(target)
    return written


def download_coco(
    root: str | os.PathLike,
    images: bool = True,
    *,
    annotations_archive: Archive = COCO_ANNOTATIONS,
    images_archive: Archive = COCO_TRAIN_IMAGES,
    keep_archives: bool = False,
    progress: bool = True,
) -> Path:
    """Put COCO 2017 train under ``root``: ``annotations/instances_train2017.json`` and,
    with ``images``, ``train2017/`` (about 19 GB to download).

    Each archive is downloaded (checked against its published SHA-1), extracted, then
    deleted unless ``keep_archives``; a finished archive leaves a marker
    ``.<archive>.done`` in ``root`` so that a second call does nothing.

    Returns:
        The path of ``instances_train2017.json`` (the ``--annotations`` of ``mlml-tf prepare
        coco``); the images are in ``root / "train2017"``.
    """

    root = Path(root)
    _install(annotations_archive, root, [COCO_TRAIN_ANNOTATIONS], keep_archives, progress)
    if images:
        _install(images_archive, root, None, keep_archives, progress)
    return root / COCO_TRAIN_ANNOTATIONS


def _install(
    archive: Archive, root: Path, members: list[str] | None, keep: bool, progress: bool
) -> None:
    marker = root / f".{archive.name}.done"
    if marker.exists():
        return
    zip_path = download(archive.url, root / archive.name, sha1=archive.sha1, progress=progress)
    extract_zip(zip_path, root, members, progress=progress)
    write_bytes_atomic(marker, (archive.sha1 or "").encode() + b"\n")
    if not keep:
        zip_path.unlink()


def _mismatch(path: Path, expected: dict[str, str]) -> tuple[str, str, str] | None:
    for name, want in expected.items():
        got = file_digest(path, name)
        if got != want:
            return name, want, got
    return None


def _fetch(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``part``, continuing an existing partial file where possible."""

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "mlml-tf"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as err:
        # 416: the partial file already holds the whole resource.
        if err.code == 416 and offset:
            return
        raise
    with response:
        if offset and getattr(response, "status", None) != 206:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[1:-5], disable=not progress,
        ) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(
            f"download of {url} stopped at {received} of {total} bytes; "
            f"run again to resume from {part}"
        )
