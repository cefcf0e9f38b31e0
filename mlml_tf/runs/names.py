"""Experiment names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from mlml_tf.errors import DataError
from mlml_tf.files.layout import ratio_from_tag, ratio_tag
from mlml_tf.files.protocols import PAPER, parse_protocol_folder
from mlml_tf.files.protocols import protocol as find_protocol
from mlml_tf.labels.checks import check_ratio
from mlml_tf.labels.missing import FPC_DEFAULT_COUNT, PAPER_RATIOS
from mlml_tf.methods.registry import METHODS as _REGISTRY
from mlml_tf.methods.registry import PAPER_METHODS

#: Every method (:mod:`mlml_tf.methods`), in the order tables and figures show them: the paper's
#: three, then the field's.
ALL_METHODS: tuple[str, ...] = tuple(_REGISTRY)


#: Their names in the papers.
METHOD_LABELS: dict[str, str] = {name: m.label for name, m in _REGISTRY.items()}


#: Experiment folder names of the original (docs/original.md sections 7 and 8), per data set, with t
#: = round(r, 1):
#: "PosLimitited" is spelled as published.
EXPERIMENT_TEMPLATES: dict[str, dict[str, str]] = {
    "coco": {
        "ce": "PosLimited_original_CE_balanced_ratio{t}split_{k}",
        "im-wce": "PosLimitited_weighted_CE_balanced_ratio{t}split_{k}",
        "cb-wce": "CORRELATION_weighted_CE_balanced_ratio{t}split_{k}",
    },
    "nuswide": {
        "ce": "nus_3labels_original_CE{t}split_{k}",
        "im-wce": "nus_3labels_weighted_CE{t}split_{k}",
        "cb-wce": "nus_3labels_correlations_CE{t}split_{k}",
    },
}


#: The data sets whose experiment names the original used; any other data set is named as COCO.
NAMING: tuple[str, ...] = tuple(EXPERIMENT_TEMPLATES)


_EXPERIMENT_PATTERNS = [
    (method, re.compile(
        re.escape(template)
        .replace(re.escape("{t}"), r"(?P<t>\d+\.\d+)")
        .replace(re.escape("{k}"), r"(?P<k>\d+)")
    ))
    for templates in EXPERIMENT_TEMPLATES.values()
    for method, template in templates.items()
]


def _check_method(method: str) -> str:
    if method not in ALL_METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    return method


class Experiment(NamedTuple):
    """What an experiment folder's name says: method, ratio (the paper's share of hidden
    positives, or RPS's probability; None for FPC and single positive), fold, protocol and
    FPC's count (None for the others)."""
    method: str
    ratio: float | None
    fold: int
    protocol: str = PAPER.name
    count: int | None = None


#: The names of the field's runs, and of the paper's methods under other protocols:
#: ``{method}_{protocol folder}_split_{k}``, e.g. ``csl_rps0.5_split_1``, ``asl_missing_labels0.5_
#: split_1``, ``an_single_positive_split_2``.
_FIELD_PATTERN = re.compile(r"(?P<method>[a-z-]+)_(?P<folder>.+)_split_(?P<k>\d+)")


def experiment_name(method: str, ratio: float | None, fold: int, naming: str = "coco",
                    protocol: str = PAPER.name, count: int = FPC_DEFAULT_COUNT) -> str:
    """The experiment folder name of one run: the original's for the paper's methods under the
    paper's protocol (the ratio written as round(r, 1)), ``{method}_{protocol folder}_split_{k}``
    for the others.

    Args:
        method: a method of :data:`METHODS`.
        ratio: the missing-label ratio (paper), or RPS's probability of an unknown entry.
        fold: 1-based fold.
        naming: "coco" (``PosLimited_original_CE_balanced_ratio...``) or "nuswide"
            (``nus_3labels_original_CE...``), the two name families of the original.
        protocol: "paper", "rps", "fpc" or "single-positive".
        count: FPC's count.

    Example:
        >>> experiment_name("im-wce", 0.25, 1)
        'PosLimitited_weighted_CE_balanced_ratio0.2split_1'
        >>> experiment_name("csl", 0.5, 1, protocol="rps")
        'csl_rps0.5_split_1'
    """
    if int(fold) != fold or fold < 1:
        raise DataError(f"fold must be a positive integer, got {fold!r}")
    if naming not in EXPERIMENT_TEMPLATES:
        raise DataError(f"unknown naming {naming!r}; use one of {', '.join(NAMING)}")
    _check_method(method)
    chosen = find_protocol(protocol)
    if chosen.original_layout and method in PAPER_METHODS:
        template = EXPERIMENT_TEMPLATES[naming][method]
        return template.format(t=ratio_tag(check_ratio(ratio)), k=int(fold))
    return f"{method}_{chosen.folder(chosen.value_of(ratio, count))}_split_{int(fold)}"


def parse_experiment_name(name: str, ratios: Sequence[float] = PAPER_RATIOS) -> Experiment | None:
    """The :class:`Experiment` an experiment folder name says, or None if it is not one.

    Both data sets' names of the original are recognized, and :func:`experiment_name`'s for
    the field's methods and the other protocols. The ratio in a name of the original is
    rounded to one decimal and is read back as the ratio of ``ratios`` (default the paper's)
    written that way: ``ratio0.2`` is 0.25. Names with the exact ratio (``ratio0.25``, written
    by earlier versions of mlml-tf) are read as they are.

    Example:
        >>> parse_experiment_name("CORRELATION_weighted_CE_balanced_ratio0.8split_3")
        Experiment(method='cb-wce', ratio=0.75, fold=3, protocol='paper', count=None)
    """
    for method, pattern in _EXPERIMENT_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return Experiment(method, ratio_from_tag(match["t"], ratios), int(match["k"]))
    match = _FIELD_PATTERN.fullmatch(name)
    if match is None or match["method"] not in ALL_METHODS:
        return None
    parsed = parse_protocol_folder(match["folder"], ratios)
    if parsed is None:
        return None
    chosen, value = parsed
    return Experiment(match["method"], value if chosen.value == "ratio" else None,
                      int(match["k"]), chosen.name, value if chosen.value == "count" else None)
