"""Protocols of missing labels: how a fold's training labels are drawn and where their files live.

One :class:`Protocol` object per protocol (docs/methods.md section 2), in :data:`PROTOCOLS`:

- ``paper``: the paper's, round(r * n_i) positives hidden per row, in the original's layout
  (``missing_labels{round(r, 1)}/train{k}_{t}.csv``, its zeros "negative or missing", and the
  oracle ``negative_weights`` file; docs/original.md section 3);
- ``rps``: random per sample, every training entry unknown with probability r (``rps{r}/``);
- ``fpc``: fixed per class, n annotated positives and negatives per class (``fpc{n}/``);
- ``single-positive``: one positive per row (``single_positive/``).

The last three write ``train{k}.csv`` (1, 0 or -1 for unknown) and ``test{k}.csv`` (complete) on
the paper's folds. A run names its protocol and one value of it (a ratio, a count, or none);
code that uses a protocol looks it up here and asks it, never compares its name.

A new protocol is one :class:`Protocol` below (its draw a function of :mod:`mlml_tf.labels`)
and its line in :data:`PROTOCOLS`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.layout import (
    ratio_folder,
    ratio_from_tag,
    ratio_text,
    read_run_labels,
    run_files,
)
from mlml_tf.files.tables import check_same_table, read_table
from mlml_tf.labels.checks import check_ratio
from mlml_tf.labels.missing import (
    FPC_DEFAULT_COUNT,
    PAPER_RATIOS,
    fixed_per_class,
    random_per_sample,
    single_positive,
)

#: What one setting of a protocol is: a ratio in [0, 1), a whole count of at least 1, or none.
VALUE_KINDS: tuple[str | None, ...] = ("ratio", "count", None)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A protocol of missing labels.

    Attributes:
        name: its name on the command line and in a run's settings.
        value: what one setting of it is: "ratio", "count" or None (:data:`VALUE_KINDS`).
        defaults: the settings a split writes when none are given.
        rule: how it draws, in words (written to the data folder's manifest).
        draw: ``draw(full, value, seed) -> labels`` of the training rows: 1, 0 or -1 (unknown),
            from :mod:`mlml_tf.labels`; None for the paper's, which :func:`mlml_tf.files.split.
            split` writes in the original's layout.
        folder_prefix: its folders' names before the value (the paper's is
            :func:`mlml_tf.files.layout.ratio_folder`).
        original_layout: its files are the original's: 0/1 training labels whose zeros are
            "negative or missing", beside the oracle ``negative_weights`` files.
        option: the ``mlml-tf split`` / ``run`` option that gives its values.
        needs_positive: a row without a positive cannot be drawn (a DataError names it).
    """

    name: str
    value: str | None
    defaults: tuple
    rule: str
    draw: Callable[[np.ndarray, object, object], np.ndarray] | None
    folder_prefix: str
    original_layout: bool = False
    option: str | None = None
    needs_positive: bool = False

    def check(self, value):
        """``value`` as a setting of this protocol, checked (a DataError otherwise)."""
        if self.value == "ratio":
            return check_ratio(value)
        if self.value == "count":
            if value is None or int(value) != value or value < 1:
                raise DataError(f"the {self.name.upper()} count must be a whole number of at "
                                f"least 1, not {value!r}")
            return int(value)
        return None

    def value_of(self, ratio: float, count: int):
        """The value of a run's setting: its ``ratio`` or its ``count``, or None."""
        return {"ratio": ratio, "count": count}.get(self.value)

    def folder(self, value=None) -> str:
        """The folder of this protocol's files for one value: ``missing_labels0.2`` (ratio 0.25),
        ``rps0.5``, ``fpc1000``, ``single_positive``."""
        if self.original_layout:
            return ratio_folder(value)
        if self.value == "ratio":
            return f"{self.folder_prefix}{ratio_text(check_ratio(value))}"
        if self.value == "count":
            return f"{self.folder_prefix}{int(value)}"
        return self.folder_prefix

    def files(self, root: str | os.PathLike, value, fold: int) -> dict[str, Path]:
        """Paths of one fold's files: ``train``, ``test`` (and, in the original layout,
        ``negative_weights`` and ``positive_weights``)."""
        if self.original_layout:
            return run_files(root, value, fold)
        folder = Path(root) / self.folder(value)
        return {"train": folder / f"train{fold}.csv", "test": folder / f"test{fold}.csv"}

    def read(self, root: str | os.PathLike, value, fold: int) -> dict[str, pd.DataFrame]:
        """Read and cross-check one fold: ``train`` (0/1 in the original layout, else 1 / 0 /
        -1), ``test`` (complete labels) and, in the original layout, ``negative_weights``."""
        if self.original_layout:
            return read_run_labels(root, value, fold)
        files = self.files(root, value, fold)
        train = read_table(files["train"], "partial")
        test = read_table(files["test"], "labels")
        check_same_table(train.iloc[:0], files["train"], test.iloc[:0], files["test"])
        overlap = train.index.intersection(test.index)
        if len(overlap):
            raise DataError(f"id {overlap[0]!r} is in both {files['train'].name} and this test "
                            "file", file=files["test"])
        return {"train": train, "test": test}

    def setting(self, value) -> str:
        """One setting in words, as logs and figures say it: ``ratio=0.5``, ``rps=0.5``,
        ``fpc=1000``, ``single-positive``."""
        if self.value is None:
            return self.name
        return f"{'ratio' if self.original_layout else self.name}={value}"

    def label(self, value=None) -> str:
        """How tables name a protocol: "paper", "rps", "fpc 1000", "single-positive" (a
        ratio is a column of its own)."""
        return f"{self.name} {value}" if self.value == "count" else self.name

    def parse_folder(self, text: str, ratios: Sequence[float] = PAPER_RATIOS):
        """``(True, value)`` if ``text`` is a folder of this protocol, else ``(False, None)``."""
        if self.original_layout:
            match = re.fullmatch(r"missing_labels(\d+\.\d+)", text)
            return (True, ratio_from_tag(match[1], ratios)) if match else (False, None)
        if self.value is None:
            return (text == self.folder_prefix, None)
        number = r"\d+(?:\.\d+)?" if self.value == "ratio" else r"\d+"
        match = re.fullmatch(re.escape(self.folder_prefix) + f"({number})", text)
        if not match:
            return False, None
        return True, (float(match[1]) if self.value == "ratio" else int(match[1]))

    def grid_settings(self, ratios: Sequence[float], counts: Sequence[int]) -> list[tuple]:
        """``(ratio, count)`` of each setting a grid runs: every ratio, every count, or one."""
        if self.value == "ratio":
            return [(float(r), FPC_DEFAULT_COUNT) for r in ratios]
        if self.value == "count":
            return [(0.0, int(c)) for c in counts]
        return [(0.0, FPC_DEFAULT_COUNT)]


PAPER = Protocol(
    "paper", "ratio", PAPER_RATIOS,
    "round(r * n_i) positives per training row hidden, uniform, nested across ratios",
    None, "missing_labels", original_layout=True, option="--ratios")
RPS = Protocol(
    "rps", "ratio", (0.5,), "every training entry unknown with probability value",
    random_per_sample, "rps", option="--ratios")
FPC = Protocol(
    "fpc", "count", (FPC_DEFAULT_COUNT,),
    "value annotated positives and negatives kept per class, uniform",
    fixed_per_class, "fpc", option="--count")
SINGLE_POSITIVE = Protocol(
    "single-positive", None, (None,), "one positive per training row kept, uniform",
    lambda full, value, seed: single_positive(full, seed), "single_positive",
    needs_positive=True)

#: Every protocol by name, the paper's first.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PAPER, RPS, FPC, SINGLE_POSITIVE)}


def protocol(name: str) -> Protocol:
    """The protocol called ``name``; a DataError naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise DataError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_folder(name: str, value=None) -> str:
    """The folder of a protocol's files for one value (:meth:`Protocol.folder`)."""
    return protocol(name).folder(value)


def protocol_files(root: str | os.PathLike, name: str, value, fold: int) -> dict[str, Path]:
    """Paths of one fold's files under a protocol (:meth:`Protocol.files`)."""
    return protocol(name).files(root, value, fold)


def read_protocol_labels(root: str | os.PathLike, name: str, value,
                         fold: int) -> dict[str, pd.DataFrame]:
    """Read and cross-check one fold of a protocol (:meth:`Protocol.read`)."""
    return protocol(name).read(root, value, fold)


def parse_protocol_folder(text: str, ratios: Sequence[float] = PAPER_RATIOS):
    """``(protocol, value)`` that a folder name says, or None."""
    for candidate in PROTOCOLS.values():
        found, value = candidate.parse_folder(text, ratios)
        if found:
            return candidate, value
    return None
