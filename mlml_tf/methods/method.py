"""The Method type, the labels a method reads, and its hyper-parameters.

A method is one :class:`Method` object (in :mod:`mlml_tf.methods.paper`,
:mod:`~mlml_tf.methods.field` or :mod:`~mlml_tf.methods.revising`) and one line of the registry
(:mod:`mlml_tf.methods.registry`). It says how a run's training labels become targets and
per-entry weights, which loss its head trains with (by the name of a class of
:mod:`mlml_tf.losses`, built there), its hyper-parameters with their defaults, and what it needs
beyond the observed labels: an oracle, each batch's row indices, or an auxiliary model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import UNKNOWN


@dataclasses.dataclass
class RunLabels:
    """The training labels of one run and what a method may read beside them.

    ``train`` is the training table as read (0/1 in the original layout, 1/0/-1 under the other
    protocols); ``zeros_unknown``: its zeros are "negative or missing" (the original layout
    annotates no negative). ``config`` holds the run's settings. The callables read, on demand,
    what only some methods need, and add the files they read to ``used`` (the run's digest):
    ``groundtruth()`` the complete labels of the whole set (an oracle), ``hidden_positives()``
    the unknown training entries that are positive (an oracle: IM-WCE),
    ``first_fold_labels()`` the complete labels of fold 1 (the original's P),
    ``global_weights()`` the authors' CB-WCE weights of the training rows. ``prior``: the class
    prior file of CSL's selective mode, if any.
    """

    train: pd.DataFrame
    zeros_unknown: bool
    config: object
    used: list[Path]
    groundtruth: Callable[[], pd.DataFrame]
    hidden_positives: Callable[[], np.ndarray]
    first_fold_labels: Callable[[], np.ndarray]
    global_weights: Callable[[], np.ndarray]
    prior: Path | None = None

    @property
    def observed(self) -> np.ndarray:
        """(rows, classes) int8: 1, 0 or -1; zeros of the original layout are unknown."""
        values = self.train.to_numpy().astype(np.int8)
        if self.zeros_unknown:
            return np.where(values == 0, UNKNOWN, values).astype(np.int8)
        return values

    @property
    def positives(self) -> np.ndarray:
        return self.observed == 1

    def complete(self) -> np.ndarray:
        """The complete labels of the training rows (an oracle)."""
        truth = self.groundtruth()
        rows = truth.index.get_indexer(self.train.index)
        if (rows < 0).any():
            raise DataError(f"training id {self.train.index[rows < 0][0]!r} is not in "
                            "groundtruth.csv")
        return truth.to_numpy()[rows]


@dataclasses.dataclass(frozen=True)
class Method:
    """A method of the grid and of ``mlml-tf train``.

    Attributes:
        name: the method's name on the command line (``cb-wce``).
        label: its name in the papers (``CB-WCE``).
        params: its hyper-parameters and their defaults, the one place they are defined (the
            losses of :mod:`mlml_tf.losses` take theirs from here).
        targets: ``targets(labels, params) -> (y, W, record)``: float32 targets and entry
            weights of the training rows (a :class:`RunLabels`), and what the loss needs
            besides (``record``, also written to the run's ``metrics.json``).
        loss: the name of the class of :mod:`mlml_tf.losses` that its heads train with: a
            Keras loss returning per-entry values, or a head objective that keeps per-row state.
        loss_args: ``loss_args(params, record, labels=..., seed=..., from_logits=...)``: the
            keyword arguments of that class (``labels``: the training targets, ``seed``: the
            run's seed, ``from_logits``: whether its predictions are logits).
        on_probabilities: the loss reads probabilities (the head's sigmoid is applied first).
        loss_input: the loss follows ``--loss-input`` (logits or the original's clipped
            probabilities): the paper's methods only.
        original_from_logits: with ``--loss-input original``, the loss reads logits, as the
            original's CE did (its IM-WCE and CB-WCE read clipped probabilities).
        needs_oracle: its targets read what only a benchmark knows (the hidden positives).
        needs_rows: its loss keeps per-row state and needs each batch's row indices (no
            training on image batches, no distribution over replicas).
        auxiliary: ``auxiliary(params) -> (name, changes) or None``: a temporary model of the
            same method whose mean predicted probabilities the method reads (CSL's class
            prior): its name, and the hyper-parameters it changes; None where it needs none.
        check: ``check(params, epochs, classes)`` refuses hyper-parameters out of range for a
            training (a DataError naming them) before anything is trained or written.
    """

    name: str
    label: str
    params: Mapping[str, object]
    targets: Callable
    loss: str
    loss_args: Callable
    on_probabilities: bool = False
    loss_input: bool = False
    original_from_logits: bool = True
    needs_oracle: bool = False
    needs_rows: bool = False
    auxiliary: Callable | None = None
    check: Callable | None = None


def fail(name: str, key: str, value, wanted: str) -> None:
    """Refuse hyper-parameter ``key`` of method ``name``: ``value`` is not ``wanted``."""
    raise DataError(f"hyper-parameter {key!r} of method {name!r}: {value!r} is not {wanted}")


def coerce(name: str, key: str, value, default):
    """``value`` in the kind of ``default``: a word for a word (CSL's mode and prior, checked
    where they are used); for None (a value the method works out, as EPR's k), "auto" or a
    number; a number for a number (whole for a whole one)."""

    where = f"hyper-parameter {key!r} of method {name!r}"
    if isinstance(default, str):
        return str(value)
    if default is None and value in (None, "auto"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        allowed = "a number or 'auto'" if default is None else "a number"
        raise DataError(f"{where}: {value!r} is not {allowed}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: {value!r} is not a finite number")
    if isinstance(default, int) and not isinstance(default, bool):
        if number != int(number):
            raise DataError(f"{where}: {value!r} is not a whole number")
        return int(number)
    return number


def params_key(params: Mapping[str, object]) -> tuple:
    """Hyper-parameters as a sorted tuple of pairs: hashable, for a run's settings."""
    return tuple(sorted(params.items()))


def read_params_document(path: str | os.PathLike) -> dict[str, dict]:
    """The per-method hyper-parameters of a JSON file ``{"csl": {"gamma_unann": 4}, ...}``,
    as written (checked by :func:`mlml_tf.methods.registry.read_params_file`)."""

    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not readable JSON ({exc})", file=path) from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise DataError('expected {"method": {"name": value, ...}, ...}', file=path)
    return document
