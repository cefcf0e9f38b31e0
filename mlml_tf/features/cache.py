"""The feature cache.

The backbone's output is stored as float16 by default: each value keeps 11 significant bits
(a relative rounding of at most 2**-11, about 5e-4), and the file and the memory a run holds
are half those of float32. ``dtype="float32"`` keeps the values as the backbone computed them;
such a cache has other settings, so another folder and other run digests, while a float16
cache keeps the settings (and the runs their digests) of the caches made before the choice
existed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import (
    atomic_path,
    folder_lock,
    remove_stale_temporaries,
    write_bytes_atomic,
)
from mlml_tf.settings import FEATURE_DTYPES

FEATURES = "features.npy"

log = logging.getLogger(__name__)


MANIFEST = "cache.json"


CACHE_VERSION = 1

#: The dtype of the caches made before the dtype could be chosen, left out of their settings.
DEFAULT_DTYPE = "float16"


def dtype_settings(dtype: str = DEFAULT_DTYPE) -> dict:
    """What the features' dtype adds to a cache's settings: nothing for float16, so that the
    caches (and the runs on them) made before keep their names and digests."""
    if dtype not in FEATURE_DTYPES:
        raise DataError(f"feature dtype {dtype!r}: choose one of {list(FEATURE_DTYPES)}")
    return {} if dtype == DEFAULT_DTYPE else {"feature_dtype": dtype}


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


class FeatureCache:
    """Read access to a complete cache: ``len``, ``ids``, ``shape`` and batched row reads.

    Rows are read with ``os.pread`` rather than through a memory map, so that the pages read stay
    in the page cache and out of the process's resident memory.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.exists():
            raise DataError("no complete feature cache here (cache.json is missing)",
                            file=self.folder)
        self.manifest = json.loads(manifest_path.read_text())
        self.ids: list[str] = self.manifest["ids"]
        self.shape: tuple[int, ...] = tuple(self.manifest["feature_shape"])
        self._index = {i: n for n, i in enumerate(self.ids)}
        #: How the features are stored (float16 unless the cache was made otherwise).
        self.dtype = np.dtype(self.manifest.get("dtype", DEFAULT_DTYPE))
        path = self.folder / FEATURES
        array = np.load(path, mmap_mode="r")
        if array.shape != (len(self.ids), *self.shape) or array.dtype != self.dtype:
            raise DataError(f"feature file shape {array.shape} / {array.dtype} does not match "
                            "its manifest", file=path)
        self._offset = array.offset
        self._row_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        del array
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.ids)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    @property
    def settings(self) -> dict:
        return self.manifest["settings"]

    def rows_of(self, ids: Sequence[str], source: str = "labels") -> np.ndarray:
        """Row numbers of ``ids`` in the cache; DataError naming the first id it lacks."""
        try:
            return np.fromiter((self._index[str(i)] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise DataError(f"id {exc.args[0]!r} of the {source} has no cached features "
                            "(was its image skipped?)", file=self.folder) from None

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Features of ``rows`` as float32, shape (len(rows), *shape)."""
        return self.read_stored(rows).astype(np.float32)

    def read_stored(self, rows: np.ndarray) -> np.ndarray:
        """Features of ``rows`` as stored (:attr:`dtype`), shape (len(rows), *shape)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape), dtype=self.dtype)
        flat = out.reshape(len(rows), -1)
        for n, r in enumerate(rows):
            data = os.pread(self._fd, self._row_bytes, self._offset + int(r) * self._row_bytes)
            flat[n] = np.frombuffer(data, dtype=self.dtype)
        return out

    def nbytes(self, n_rows: int | None = None) -> int:
        """Bytes that ``n_rows`` rows (default all) take in memory as stored."""
        return (len(self) if n_rows is None else int(n_rows)) * self._row_bytes


def cache_key(settings: dict) -> str:
    """A short name for a cache folder from its settings (same settings, same folder)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def build_feature_cache(
    folder: str | os.PathLike,
    ids: Sequence[str],
    batches: Callable[[], Iterator[np.ndarray]],
    extractor: Callable[[np.ndarray], np.ndarray],
    settings: dict,
    skipped: Sequence[str] = (),
    progress: bool = True,
    skip_reasons: Mapping[str, str] | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> FeatureCache:
    """Build (or reuse) the cache of ``ids`` in ``folder``.

    Args:
        folder: where ``features.npy`` and ``cache.json`` live.
        ids: image ids in the order ``batches`` yields them.
        batches: a function returning an iterator over preprocessed image batches.
        extractor: maps a batch of images to a batch of features (the frozen backbone).
        settings: everything that determines the features (backbone, weights and their digest,
            input size, scaling, ...). A cache whose settings or ids differ is rebuilt.
        skipped: ids whose images were dropped (recorded in the manifest).
        skip_reasons: why, by id (recorded in the manifest as ``skip_reasons``).
        dtype: how the features are stored, "float16" or "float32" (:func:`dtype_settings`
            adds it to the settings).

    Returns:
        The complete cache. Several processes may call this at once: one builds, the others
        wait for it and then reuse its result.
    """

    folder = Path(folder)
    ids = [str(i) for i in ids]
    settings = dict(settings, **dtype_settings(dtype))
    wanted = {"settings": settings, "ids_sha256": ids_digest(ids), "version": CACHE_VERSION}
    with folder_lock(folder):
        manifest_path = folder / MANIFEST
        if manifest_path.exists():
            old = json.loads(manifest_path.read_text())
            if {k: old.get(k) for k in wanted} == wanted and (folder / FEATURES).exists():
                return FeatureCache(folder)
            log.info("feature cache %s: settings or ids changed, rebuilding", folder)
            manifest_path.unlink()
        remove_stale_temporaries(folder)
        _write_features(folder, ids, batches, extractor, progress, dtype)
        manifest = dict(wanted, ids=ids, skipped=list(skipped),
                        skip_reasons=dict(skip_reasons or {}),
                        feature_shape=list(np.load(folder / FEATURES, mmap_mode="r").shape[1:]),
                        dtype=dtype)
        write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode() + b"\n")
    return FeatureCache(folder)


def _write_features(folder: Path, ids: list[str], batches, extractor, progress: bool,
                    dtype: str) -> None:
    with atomic_path(folder / FEATURES) as tmp:
        out = None
        done = 0
        bar = tqdm(total=len(ids), desc="features", unit="img", disable=not progress)
        for batch in batches():
            feats = np.asarray(extractor(batch))
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype,
                                                shape=(len(ids), *feats.shape[1:]))
            if done + len(feats) > len(ids):
                raise DataError(f"more images than the {len(ids)} ids", file=folder)
            out[done : done + len(feats)] = feats.astype(dtype)
            done += len(feats)
            bar.update(len(feats))
        bar.close()
        if out is None or done != len(ids):
            raise DataError(f"{done} feature rows for {len(ids)} ids", file=folder)
        out.flush()
        del out
