"""The methods a run can train, each defined in one place: how it turns the run's training labels
into targets and per-entry weights, which loss it trains with, and its hyper-parameters.

Labels have three states (METHODS.md section 1): 1 annotated positive, 0 annotated negative, -1
unknown. The paper's files annotate no negative: their zeros are "negative or missing", so they
are unknown here, and the methods that treat unknown entries as negatives (CE, IM-WCE, CB-WCE,
ASL, AN) see the paper's files as they are. Every method returns targets ``y`` and weights ``W``
of shape (rows, classes); the loss multiplies its per-entry values by ``W`` (Keras'
``sample_weight``) and takes the mean over the batch's entries.

numpy and pandas at import; the losses are built on first use (TensorFlow then).
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
from mlml_tf.labels import UNKNOWN, class_balance_weights, confidence_weights


@dataclasses.dataclass
class RunLabels:
    """The training labels of one run and what a method may read beside them.

    ``train`` is the training table as read (0/1 for the paper's protocol, 1/0/-1 for the
    others), ``config`` the run's settings. The callables read, on demand, what only some
    methods need, and add the files they read to ``used`` (the run's digest): ``groundtruth()``
    the complete labels of the whole set (an oracle), ``hidden_positives()`` the unknown
    training entries that are positive (an oracle: IM-WCE), ``first_fold_labels()`` the complete
    labels of fold 1 (the original's P), ``global_weights()`` the authors' CB-WCE weights of the
    training rows. ``prior``: the class prior file of CSL's selective mode, if any.
    """

    train: pd.DataFrame
    paper: bool
    config: object
    used: list[Path]
    groundtruth: Callable[[], pd.DataFrame]
    hidden_positives: Callable[[], np.ndarray]
    first_fold_labels: Callable[[], np.ndarray]
    global_weights: Callable[[], np.ndarray]
    prior: Path | None = None

    @property
    def observed(self) -> np.ndarray:
        """(rows, classes) int8: 1, 0 or -1; the paper's zeros are unknown."""
        values = self.train.to_numpy().astype(np.int8)
        return np.where(values == 0, UNKNOWN, values).astype(np.int8) if self.paper else values

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
    """A method of the grid.

    ``targets(labels, params)`` returns ``(y, W, record)``: float32 targets and entry weights,
    and what the loss needs besides (``record``, also written to the run's ``metrics.json``).
    ``loss(params, from_logits, record)`` builds its Keras loss. ``on_probabilities``: the loss
    reads probabilities (the trainer applies the sigmoid to the heads' logits);
    ``loss_input``: the loss honours the grid's ``loss_input`` (logits or the original's clipped
    probabilities: the paper's methods only). ``objective(params, record, labels, seed)``, for
    the methods that revise their labels while they train, builds instead of ``loss`` a
    :class:`mlml_tf.objectives.HeadObjective` over the run's training targets ``labels``: a loss
    with per-row state. ``check(params, epochs, classes)`` refuses hyper-parameters out of range
    (a DataError naming them) before anything is trained or written.
    """

    name: str
    label: str
    params: Mapping[str, object]
    targets: Callable
    loss: Callable | None
    on_probabilities: bool = False
    loss_input: bool = False
    objective: Callable | None = None
    check: Callable | None = None


# ---------------------------------------------------------------------------- the paper's methods


def _class_balance(labels: RunLabels) -> np.ndarray:
    if labels.config.pos_weight_source == "original":
        # The original computed P once, from the complete labels of fold 1 (SPEC 6).
        return class_balance_weights(labels.first_fold_labels())
    return class_balance_weights(labels.positives)


def _weighted(negative_weight: Callable[[RunLabels], np.ndarray]):
    """Targets and weights of the paper's weighted cross-entropy: W = y P + (1 - y) w̄, with w̄
    1 on annotated negatives (they are known) and ``negative_weight`` on unknown entries."""

    def targets(labels: RunLabels, params: dict):
        from mlml_tf.losses import entry_weights

        y = labels.positives.astype(np.float32)
        pos_weight = _class_balance(labels)
        w_bar = np.where(labels.observed == 0, 1.0, negative_weight(labels)).astype(np.float32)
        return y, entry_weights(y, pos_weight, w_bar), {"pos_weight": pos_weight.tolist()}

    return targets


def _ignore_missing(labels: RunLabels) -> np.ndarray:
    """IM-WCE's w̄: 0 where the unknown entry is a hidden positive (an oracle, SPEC 3)."""
    return (~labels.hidden_positives()).astype(np.float32)


def _confidence(labels: RunLabels) -> np.ndarray:
    """CB-WCE's w̄ (paper eq. 3), counted where ``cb_source`` says (SPEC 4)."""
    source = labels.config.cb_source
    if source == "observed":
        return confidence_weights(labels.positives)
    if source == "oracle":
        # The original's counting: over the complete labels of every row of the set, train and
        # test of all folds (SPEC 4).
        truth = labels.groundtruth()
        rows = truth.index.get_indexer(labels.train.index)
        labels.complete()  # every training id is in the set
        return confidence_weights(truth.to_numpy())[rows]
    return labels.global_weights()


def _wbce(params: dict, from_logits: bool, record: dict):
    from mlml_tf.losses import WeightedBinaryCrossentropy

    return WeightedBinaryCrossentropy(from_logits=from_logits)


# ----------------------------------------------------------------------------- the field's methods


def _unit(y: np.ndarray) -> np.ndarray:
    return np.ones(y.shape, dtype=np.float32)


def _negatives_targets(labels: RunLabels, params: dict):
    """Unknown entries as negatives (ASL): targets 0/1, every weight 1."""
    y = labels.positives.astype(np.float32)
    return y, _unit(y), {}


def _partial_targets(labels: RunLabels, params: dict):
    """Three-state targets for the losses that tell unknown entries apart, every weight 1."""
    y = labels.observed.astype(np.float32)
    return y, _unit(y), {}


def _csl_targets(labels: RunLabels, params: dict):
    if params["prior_estimate"] not in PRIOR_ESTIMATES:
        raise DataError(f"hyper-parameter 'prior_estimate' of method 'csl': "
                        f"{params['prior_estimate']!r} is not one of {', '.join(PRIOR_ESTIMATES)}")
    y, w, record = _partial_targets(labels, params)
    if params["mode"] == "selective" and params["prior"] != "none":
        path = labels.prior if params["prior"] == "auto" else Path(params["prior"])
        if path is None:
            raise DataError("CSL's selective mode needs its class prior: the grid estimates it "
                            "with a temporary model (prior=auto), or give a prior file")
        record["prior"] = read_class_prior(path, list(labels.train.columns)).tolist()
        labels.used.append(path)
    return y, w, record


def _asl(params: dict, from_logits: bool, record: dict):
    from mlml_tf.losses import AsymmetricLoss

    return AsymmetricLoss(**params)


def _csl(params: dict, from_logits: bool, record: dict):
    from mlml_tf.losses import PartialSelectiveLoss

    settings = {k: v for k, v in params.items() if k not in ("prior", "prior_estimate")}
    return PartialSelectiveLoss(prior=record.get("prior"), **settings)


def _assume_negative(label_smoothing: float, weak: bool):
    def build(params: dict, from_logits: bool, record: dict):
        from mlml_tf.losses import AssumeNegative

        return AssumeNegative(label_smoothing=params.get("label_smoothing", label_smoothing),
                              weak=weak)

    return build


def _epr_targets(labels: RunLabels, params: dict):
    y, w, record = _partial_targets(labels, params)
    k = params["expected_positives"]
    # By default the mean number of positives of a training row, a statistic of the data set
    # that EPR takes as known (Cole et al. give 2.9 for COCO, 1.9 for NUS-WIDE).
    record["expected_positives"] = float(labels.complete().sum(1).mean()) if k is None else k
    return y, w, record


def _epr(params: dict, from_logits: bool, record: dict):
    from mlml_tf.losses import ExpectedPositiveRegularization

    return ExpectedPositiveRegularization(record["expected_positives"])


def _fail(name: str, key: str, value, wanted: str) -> None:
    raise DataError(f"hyper-parameter {key!r} of method {name!r}: {value!r} is not {wanted}")


def _check_expected_positives(params: dict, epochs: int | None, classes: int | None,
                              name: str = "epr") -> None:
    k = params["expected_positives"]
    if k is not None and (k < 0 or (classes is not None and k > classes)):
        _fail(name, "expected_positives", k,
              f"in [0, {classes}] (the number of classes)" if classes else "at least 0")


# ------------------------------------------------------- methods that revise labels as they train


def _role(params: dict, record: dict, labels: np.ndarray, seed: int):
    from mlml_tf.objectives import RoleObjective

    return RoleObjective(labels, record["expected_positives"], seed,
                         lr_multiplier=params["lr_multiplier"])


def _check_role(params: dict, epochs: int | None, classes: int | None) -> None:
    _check_expected_positives(params, epochs, classes, "role")
    if not params["lr_multiplier"] > 0:
        _fail("role", "lr_multiplier", params["lr_multiplier"], "above 0")


#: Large Loss Matters: method, label and delta, the published COCO values of the authors'
#: command line (0.4 and 0.2 there, in percent).
LARGE_LOSS_METHODS = (("ll-r", "LL-R", 0.004), ("ll-ct", "LL-Ct", 0.002),
                      ("ll-cp", "LL-Cp", 0.002))


def _large_loss(name: str):
    def build(params: dict, record: dict, labels: np.ndarray, seed: int):
        from mlml_tf.objectives import LargeLossObjective

        return LargeLossObjective(name, params["delta"], *labels.shape)

    return build


def _check_large_loss(name: str):
    def check(params: dict, epochs: int | None, classes: int | None) -> None:
        delta = params["delta"]
        if not 0 < delta < 1:
            _fail(name, "delta", delta, "in (0, 1)")
        if name != "ll-cp" and epochs is not None and (epochs - 1) * delta >= 1:
            raise DataError(f"hyper-parameter 'delta' of method {name!r}: {delta!r} over "
                            f"{epochs} epochs reaches the rate {(epochs - 1) * delta:g} by the "
                            "last one, which modifies every entry of a batch: take delta below "
                            f"{1 / max(epochs - 1, 1):g}")

    return check


#: PL-Shrink's hyper-parameters (:class:`mlml_tf.objectives.PseudoLabelShrink`).
PL_SHRINK_PARAMS = {"warmup_epochs": 1, "positive_threshold": 0.9, "negative_threshold": 0.05,
                    "max_weight": 10.0, "unknown_weight": 1.0, "settle_margin": 0.02,
                    "patience": 2}


def _pl_shrink(params: dict, record: dict, labels: np.ndarray, seed: int):
    from mlml_tf.objectives import PseudoLabelShrink

    return PseudoLabelShrink(labels, **params)


def _check_pl_shrink(params: dict, epochs: int | None, classes: int | None) -> None:
    for key in ("positive_threshold", "negative_threshold", "settle_margin"):
        if not 0 < params[key] < 1:
            _fail("pl-shrink", key, params[key], "in (0, 1)")
    if params["negative_threshold"] >= params["positive_threshold"]:
        _fail("pl-shrink", "negative_threshold", params["negative_threshold"],
              f"below positive_threshold {params['positive_threshold']!r}")
    for key, least in (("warmup_epochs", 0), ("patience", 1)):
        if params[key] < least:
            _fail("pl-shrink", key, params[key], f"at least {least}")
    if epochs is not None and params["warmup_epochs"] >= epochs:
        _fail("pl-shrink", "warmup_epochs", params["warmup_epochs"],
              f"below the {epochs} epochs of training (no pseudo-label would ever be made)")
    if not params["max_weight"] > 0:
        _fail("pl-shrink", "max_weight", params["max_weight"], "above 0")
    if params["unknown_weight"] < 0:
        _fail("pl-shrink", "unknown_weight", params["unknown_weight"], "at least 0")


def check_settings(name: str, params: Mapping[str, object], epochs: int | None = None,
                   classes: int | None = None) -> None:
    """Refuse hyper-parameters of method ``name`` that are out of range for a training of
    ``epochs`` epochs on ``classes`` classes (a DataError naming them)."""
    chosen = method(name)
    if chosen.check is not None:
        chosen.check(dict(params), epochs, classes)


#: CSL's hyper-parameters, defaults of the authors' command line; ``prior``: "auto" estimates the
#: class prior with a temporary model in "ignore" mode (once per data folder, protocol and fold),
#: "none" selects by likelihood alone, or the path of a prior file (class, prior);
#: ``prior_estimate``: "clean", the temporary model's mean prediction over the training rows
#: once it is trained, or "running", the authors' mean over every training batch as it trains.
CSL_PARAMS = {"mode": "selective", "gamma_pos": 0.0, "gamma_neg": 1.0, "gamma_unann": 2.0,
              "alpha_pos": 1.0, "alpha_neg": 1.0, "alpha_unann": 1.0, "clip": 0.0,
              "likelihood_topk": 5, "prior": "auto", "prior_threshold": 0.05,
              "prior_estimate": "clean"}
#: How CSL's temporary model estimates the class prior.
PRIOR_ESTIMATES: tuple[str, ...] = ("clean", "running")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ce", "CE", {}, _weighted(lambda labels: np.ones(labels.train.shape, np.float32)),
           _wbce, loss_input=True),
    Method("im-wce", "IM-WCE", {}, _weighted(_ignore_missing), _wbce, loss_input=True),
    Method("cb-wce", "CB-WCE", {}, _weighted(_confidence), _wbce, loss_input=True),
    Method("asl", "ASL", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "eps": 1e-8},
           _negatives_targets, _asl),
    Method("csl", "CSL", CSL_PARAMS, _csl_targets, _csl),
    Method("an", "AN", {}, _partial_targets, _assume_negative(0.0, False), on_probabilities=True),
    Method("an-ls", "AN-LS", {"label_smoothing": 0.1}, _partial_targets,
           _assume_negative(0.1, False), on_probabilities=True),
    Method("wan", "WAN", {}, _partial_targets, _assume_negative(0.0, True),
           on_probabilities=True),
    Method("epr", "EPR", {"expected_positives": None}, _epr_targets, _epr,
           on_probabilities=True, check=_check_expected_positives),
    Method("role", "ROLE", {"expected_positives": None, "lr_multiplier": 10.0}, _epr_targets,
           None, objective=_role, check=_check_role),
    *(Method(name, label, {"delta": delta}, _partial_targets, None,
             objective=_large_loss(name), check=_check_large_loss(name))
      for name, label, delta in LARGE_LOSS_METHODS),
    Method("pl-shrink", "PL-Shrink", PL_SHRINK_PARAMS, _partial_targets, None,
           objective=_pl_shrink, check=_check_pl_shrink),
)}
#: The paper's three methods, in the order its tables and figures show them.
PAPER_METHODS: tuple[str, ...] = ("ce", "im-wce", "cb-wce")


def method(name: str) -> Method:
    if name not in METHODS:
        raise DataError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
    return METHODS[name]


def method_params(name: str, overrides: Mapping[str, object] | None = None) -> dict:
    """The hyper-parameters of method ``name``: its defaults, with ``overrides`` (checked: an
    unknown name or a value of the wrong kind is a DataError naming it)."""
    defaults = dict(method(name).params)
    params = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise DataError(f"unknown hyper-parameter {key!r} of method {name!r} "
                            f"(its hyper-parameters: {known})")
        params[key] = _coerce(name, key, value, defaults[key])
    check_settings(name, params)
    return params


def _coerce(name: str, key: str, value, default):
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


def read_params_file(path: str | os.PathLike) -> dict[str, dict]:
    """Per-method hyper-parameters from a JSON file ``{"csl": {"gamma_unann": 4}, ...}``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not readable JSON ({exc})", file=path) from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise DataError('expected {"method": {"name": value, ...}, ...}', file=path)
    for name, values in document.items():
        try:
            method_params(name, values)
        except DataError as err:
            raise DataError(err.reason, file=path) from None
    return document


# ---------------------------------------------------------------------------------- class prior

PRIOR_COLUMNS = ("class", "prior")


def read_class_prior(path: str | os.PathLike, classes: list[str]) -> np.ndarray:
    """A class prior file: a header ``class,prior``, then one row per class in the order of
    ``classes``, each prior a number in [0, 1]. A file with other classes, another order, a
    value that is not a number in [0, 1], a blank or stray line is a DataError naming the line.
    """
    from mlml_tf.layout import _check_field_counts, _read_cells, _read_header

    path = Path(path)
    header = _read_header(path)
    if tuple(header) != PRIOR_COLUMNS:
        raise DataError(f"the header must be {','.join(PRIOR_COLUMNS)}, not {','.join(header)}",
                        file=path, row=1)
    _check_field_counts(path, 2)
    frame = _read_cells(path, 2)
    names = frame.iloc[:, 0].tolist()
    for i, (got, want) in enumerate(zip(names, classes, strict=False)):
        if got != want:
            raise DataError(f"class {got!r} where the data folder has {want!r}", file=path,
                            row=i + 2, column="class")
    if len(names) != len(classes):
        raise DataError(f"{len(names)} classes where the data folder has {len(classes)}",
                        file=path, row=min(len(names), len(classes)) + 2)
    values = pd.to_numeric(frame.iloc[:, 1], errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"value {frame.iloc[i, 1]!r} is not a number in [0, 1]", file=path,
                        row=i + 2, column="prior")
    return values


def class_prior_bytes(classes: list[str], prior: np.ndarray) -> bytes:
    from mlml_tf.layout import csv_field

    lines = [",".join(PRIOR_COLUMNS)] + [f"{csv_field(c)},{float(p):.9g}"
                                         for c, p in zip(classes, prior, strict=True)]
    return ("\n".join(lines) + "\n").encode()
