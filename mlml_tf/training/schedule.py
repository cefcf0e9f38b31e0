"""Which rows each batch holds.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.files.layout import run_files
from mlml_tf.files.tables import read_table
from mlml_tf.settings import RunConfig


def buffer_shuffle_order(n_rows: int, buffer_size: int, seed) -> np.ndarray:
    """The order in which a shuffle buffer of ``buffer_size`` passes ``n_rows`` rows on, as
    ``tf.data.Dataset.shuffle`` does (docs/original.md section 7: the original's buffer of 100
    images).

    The buffer starts with the first ``buffer_size`` rows; each step hands on a uniformly chosen
    row of the buffer and puts the next row of the file in its place. A row thus moves at most
    about ``buffer_size`` places ahead of where the file has it. ``buffer_size >= n_rows`` is a
    uniform permutation.
    """

    rng = np.random.default_rng(seed)
    if buffer_size >= n_rows:
        return rng.permutation(n_rows)
    draws = rng.random(n_rows)
    buffer = list(range(min(buffer_size, n_rows)))
    out = np.empty(n_rows, dtype=np.int64)
    following = len(buffer)
    for t in range(n_rows):
        i = int(draws[t] * len(buffer))
        out[t] = buffer[i]
        if following < n_rows:
            buffer[i] = following
            following += 1
        else:
            buffer[i] = buffer[-1]
            buffer.pop()
    return out


@functools.lru_cache(maxsize=4)
def _pass_order(n_rows: int, seed: int, index: int, buffer_size: int) -> np.ndarray:
    if buffer_size:
        return buffer_shuffle_order(n_rows, buffer_size, [seed, index])
    return np.random.default_rng([seed, index]).permutation(n_rows)


def batch_rows(n_rows: int, batch_size: int, seed: int, step: int,
               steps_per_epoch: int | None = None, shuffle_buffer: int = 0) -> np.ndarray:
    """Indices (into ``n_rows`` rows) of training batch ``step``: a function of (seed, step) only.

    With ``steps_per_epoch=None`` an epoch is one pass over the rows in an order seeded by
    (seed, epoch), cut into floor(N / B) batches; the last N mod B rows of the pass are left out.
    With a step count (the original's floor(N1 / B), docs/original.md section 7) the passes form one
    endless stream, as the original's repeated dataset, and batch k is positions kB .. kB + B - 1 of
    it. A pass is a uniform permutation, or with ``shuffle_buffer`` the original's order: the rows
    in file order through a shuffle buffer of that size (:func:`buffer_shuffle_order`).
    """
    if steps_per_epoch is None:
        epoch, pos = divmod(step, n_rows // batch_size)
        order = _pass_order(n_rows, seed, epoch, shuffle_buffer)
        return order[pos * batch_size : (pos + 1) * batch_size]
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    passes, offsets = np.divmod(positions, n_rows)
    out = np.empty(batch_size, dtype=np.int64)
    for p in np.unique(passes):
        out[passes == p] = _pass_order(n_rows, seed, int(p), shuffle_buffer)[offsets[passes == p]]
    return out


def step_count(n_rows: int, batch_size: int, steps_per_epoch: int | None = None) -> int:
    """Steps of an epoch: floor(N / B), one pass over the rows, or ``steps_per_epoch``."""
    if n_rows // batch_size == 0:
        raise DataError(f"{n_rows} training rows make no batch of {batch_size}")
    steps = n_rows // batch_size if steps_per_epoch is None else int(steps_per_epoch)
    if steps < 1:
        raise DataError(f"an epoch of {steps} steps trains nothing")
    return steps


def memory_budget() -> int:
    """Bytes of training features held in memory rather than streamed from the cache file:
    a quarter of the machine's memory."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def epoch_steps(data: str | os.PathLike, config: RunConfig) -> int | None:
    """The ``steps_per_epoch`` a run's stream takes: None (one pass over the run's rows) or, with
    ``config.steps_per_epoch == "original"``, :func:`original_steps_per_epoch`."""
    if config.steps_per_epoch == "original":
        return original_steps_per_epoch(data, config.batch_size)
    return None


def original_steps_per_epoch(data: str | os.PathLike, batch_size: int = 32) -> int:
    """floor(N1 / B), N1 the rows of ``train1_0.0.csv``: the original's steps per epoch for every
    fold and ratio (docs/original.md section 7)."""
    return len(read_table(run_files(data, 0.0, 1)["train"])) // batch_size


def validation_split(n_rows: int, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rows to fit, rows to tune per-class thresholds on): a seeded ``validation_fraction``."""
    fit_idx, val_idx = np.arange(n_rows), np.arange(0)
    if config.validation_fraction > 0:
        order = np.random.default_rng([config.seed, 7]).permutation(n_rows)
        n_val = max(1, int(round(config.validation_fraction * n_rows)))
        val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return fit_idx, val_idx
