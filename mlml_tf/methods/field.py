"""The field's methods beside the paper's: ASL, CSL, AN, AN-LS, WAN and EPR (docs/methods.md
section 3).

Each is a :class:`~mlml_tf.methods.method.Method`: its targets (unknown entries as negatives for
ASL, three-state labels for the others, every entry weight 1), the loss of
:mod:`mlml_tf.losses` it trains with, and its hyper-parameters, whose defaults are the authors'
(the losses take them from here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.methods.method import Method, RunLabels, fail
from mlml_tf.methods.prior import read_class_prior

#: ASL's hyper-parameters, the defaults of the authors' ``AsymmetricLoss``.
ASL_PARAMS = {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "eps": 1e-8}
#: CSL's hyper-parameters: the authors' command line but for ``mode``, which is CSL's own
#: ("selective"; the authors' command line starts from "negative"). ``prior``: "auto" estimates
#: the class prior with a temporary model in "ignore" mode (once per data folder, protocol and
#: fold), "none" selects by likelihood alone, or the path of a prior file (class, prior);
#: ``prior_estimate``: "clean", the temporary model's mean prediction over the training rows once
#: it is trained, or "running", the authors' mean over every training batch as it trains.
CSL_PARAMS = {"mode": "selective", "gamma_pos": 0.0, "gamma_neg": 1.0, "gamma_unann": 2.0,
              "alpha_pos": 1.0, "alpha_neg": 1.0, "alpha_unann": 1.0, "clip": 0.0,
              "likelihood_topk": 5, "prior": "auto", "prior_threshold": 0.05,
              "prior_estimate": "clean"}
#: The modes of Class-aware Selective Loss: unknown entries as negatives, ignored, or selected.
CSL_MODES: tuple[str, ...] = ("negative", "ignore", "selective")
#: How CSL's temporary model estimates the class prior.
PRIOR_ESTIMATES: tuple[str, ...] = ("clean", "running")
#: AN-LS's label smoothing (Cole et al.).
AN_LS_SMOOTHING = 0.1


def _unit(y: np.ndarray) -> np.ndarray:
    return np.ones(y.shape, dtype=np.float32)


def negatives_targets(labels: RunLabels, params: dict):
    """Unknown entries as negatives (ASL): targets 0/1, every weight 1."""

    y = labels.positives.astype(np.float32)
    return y, _unit(y), {}


def partial_targets(labels: RunLabels, params: dict):
    """Three-state targets for the losses that tell unknown entries apart, every weight 1."""

    y = labels.observed.astype(np.float32)
    return y, _unit(y), {}


def _csl_targets(labels: RunLabels, params: dict):
    y, w, record = partial_targets(labels, params)
    if params["mode"] == "selective" and params["prior"] != "none":
        path = labels.prior if params["prior"] == "auto" else Path(params["prior"])
        if path is None:
            raise DataError("CSL's selective mode needs its class prior: the grid estimates it "
                            "with a temporary model (prior=auto), or give a prior file")
        record["prior"] = read_class_prior(path, list(labels.train.columns)).tolist()
        labels.used.append(path)
    return y, w, record


def _csl_loss(params: dict, record: dict, **_) -> dict:
    settings = {k: v for k, v in params.items() if k not in ("prior", "prior_estimate")}
    return {"prior": record.get("prior"), **settings}


def _csl_auxiliary(params: dict) -> tuple[str, dict] | None:
    """CSL's class prior, when the selective mode estimates it: the mean probabilities of a
    temporary model of CSL in ignore mode (Ben-Baruch et al.)."""
    if params["mode"] != "selective" or params["prior"] != "auto":
        return None
    return "ignore", {"mode": "ignore", "prior": "none"}


def _check_csl(params: dict, epochs: int | None, classes: int | None) -> None:
    if params["mode"] not in CSL_MODES:
        fail("csl", "mode", params["mode"], f"one of {', '.join(CSL_MODES)}")
    if params["prior_estimate"] not in PRIOR_ESTIMATES:
        fail("csl", "prior_estimate", params["prior_estimate"],
             f"one of {', '.join(PRIOR_ESTIMATES)}")


def _assume_negative(weak: bool):
    def loss_args(params: dict, record: dict, **_) -> dict:
        return {"label_smoothing": params.get("label_smoothing", 0.0), "weak": weak}

    return loss_args


def expected_positives_targets(labels: RunLabels, params: dict):
    """Three-state targets, and EPR's k in the record: the hyper-parameter, or by default the
    mean number of positives of a training row, a statistic of the data set that EPR takes as
    known (Cole et al. give 2.9 for COCO, 1.9 for NUS-WIDE)."""
    y, w, record = partial_targets(labels, params)
    k = params["expected_positives"]
    record["expected_positives"] = float(labels.complete().sum(1).mean()) if k is None else k
    return y, w, record


def check_expected_positives(params: dict, epochs: int | None, classes: int | None,
                             name: str = "epr") -> None:
    k = params["expected_positives"]
    if k is not None and (k < 0 or (classes is not None and k > classes)):
        fail(name, "expected_positives", k,
             f"in [0, {classes}] (the number of classes)" if classes else "at least 0")


def _epr_loss(params: dict, record: dict, **_) -> dict:
    return {"expected_positives": record["expected_positives"]}


def _given(params: dict, record: dict, **_) -> dict:
    return dict(params)


ASL = Method("asl", "ASL", ASL_PARAMS, negatives_targets, "AsymmetricLoss", _given)
CSL = Method("csl", "CSL", CSL_PARAMS, _csl_targets, "PartialSelectiveLoss", _csl_loss,
             auxiliary=_csl_auxiliary, check=_check_csl)
AN = Method("an", "AN", {}, partial_targets, "AssumeNegative", _assume_negative(False),
            on_probabilities=True)
AN_LS = Method("an-ls", "AN-LS", {"label_smoothing": AN_LS_SMOOTHING}, partial_targets,
               "AssumeNegative", _assume_negative(False), on_probabilities=True)
WAN = Method("wan", "WAN", {}, partial_targets, "AssumeNegative", _assume_negative(True),
             on_probabilities=True)
EPR = Method("epr", "EPR", {"expected_positives": None}, expected_positives_targets,
             "ExpectedPositiveRegularization", _epr_loss, on_probabilities=True,
             check=check_expected_positives)
