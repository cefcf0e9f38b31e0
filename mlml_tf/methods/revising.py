"""Methods that revise their labels while they train: ROLE, Large Loss Matters (LL-R, LL-Ct,
LL-Cp) and PL-Shrink (docs/methods.md section 3).

Their heads train with a head objective of :mod:`mlml_tf.losses.objectives` that keeps state per
training row (ROLE's label estimator, LL-Cp's flipped labels, PL-Shrink's pseudo-labels), so
they need each batch's row indices (:attr:`~mlml_tf.methods.method.Method.needs_rows`).
"""

from __future__ import annotations

from mlml_tf.errors import DataError
from mlml_tf.methods.field import (
    check_expected_positives,
    expected_positives_targets,
    partial_targets,
)
from mlml_tf.methods.method import Method, fail

#: ROLE's hyper-parameters: EPR's k, and how many times the head's learning rate its label
#: estimator trains at (Cole et al.: 10).
ROLE_PARAMS = {"expected_positives": None, "lr_multiplier": 10.0}
#: Large Loss Matters: method, label and delta, the published COCO values of the authors'
#: command line (0.4 and 0.2 there, in percent).
LARGE_LOSS_METHODS = (("ll-r", "LL-R", 0.004), ("ll-ct", "LL-Ct", 0.002),
                      ("ll-cp", "LL-Cp", 0.002))
#: PL-Shrink's hyper-parameters (:class:`mlml_tf.losses.objectives.PseudoLabelShrink`).
PL_SHRINK_PARAMS = {"warmup_epochs": 1, "positive_threshold": 0.9, "negative_threshold": 0.05,
                    "max_weight": 10.0, "unknown_weight": 1.0, "settle_margin": 0.02,
                    "patience": 2}


def _role_loss(params: dict, record: dict, *, labels, seed: int, **_) -> dict:
    return {"observed": labels, "expected_positives": record["expected_positives"],
            "seed": seed, "lr_multiplier": params["lr_multiplier"]}


def _check_role(params: dict, epochs: int | None, classes: int | None) -> None:
    check_expected_positives(params, epochs, classes, "role")
    if not params["lr_multiplier"] > 0:
        fail("role", "lr_multiplier", params["lr_multiplier"], "above 0")


def _large_loss(name: str):
    def loss_args(params: dict, record: dict, *, labels, **_) -> dict:
        rows, classes = labels.shape
        return {"scheme": name, "delta": params["delta"], "rows": rows, "classes": classes}

    return loss_args


def _check_large_loss(name: str):
    def check(params: dict, epochs: int | None, classes: int | None) -> None:
        delta = params["delta"]
        if not 0 < delta < 1:
            fail(name, "delta", delta, "in (0, 1)")
        if name != "ll-cp" and epochs is not None and (epochs - 1) * delta >= 1:
            raise DataError(f"hyper-parameter 'delta' of method {name!r}: {delta!r} over "
                            f"{epochs} epochs reaches the rate {(epochs - 1) * delta:g} by the "
                            "last one, which modifies every entry of a batch: take delta below "
                            f"{1 / max(epochs - 1, 1):g}")

    return check


def _pl_shrink_loss(params: dict, record: dict, *, labels, **_) -> dict:
    return {"observed": labels, **params}


def _check_pl_shrink(params: dict, epochs: int | None, classes: int | None) -> None:
    for key in ("positive_threshold", "negative_threshold", "settle_margin"):
        if not 0 < params[key] < 1:
            fail("pl-shrink", key, params[key], "in (0, 1)")
    if params["negative_threshold"] >= params["positive_threshold"]:
        fail("pl-shrink", "negative_threshold", params["negative_threshold"],
             f"below positive_threshold {params['positive_threshold']!r}")
    for key, least in (("warmup_epochs", 0), ("patience", 1)):
        if params[key] < least:
            fail("pl-shrink", key, params[key], f"at least {least}")
    if epochs is not None and params["warmup_epochs"] >= epochs:
        fail("pl-shrink", "warmup_epochs", params["warmup_epochs"],
             f"below the {epochs} epochs of training (no pseudo-label would ever be made)")
    if not params["max_weight"] > 0:
        fail("pl-shrink", "max_weight", params["max_weight"], "above 0")
    if params["unknown_weight"] < 0:
        fail("pl-shrink", "unknown_weight", params["unknown_weight"], "at least 0")


ROLE = Method("role", "ROLE", ROLE_PARAMS, expected_positives_targets, "RoleObjective",
              _role_loss, needs_rows=True, check=_check_role)
LARGE_LOSS = tuple(
    Method(name, label, {"delta": delta}, partial_targets, "LargeLossObjective",
           _large_loss(name), needs_rows=True, check=_check_large_loss(name))
    for name, label, delta in LARGE_LOSS_METHODS)
PL_SHRINK = Method("pl-shrink", "PL-Shrink", PL_SHRINK_PARAMS, partial_targets,
                   "PseudoLabelShrink", _pl_shrink_loss, needs_rows=True,
                   check=_check_pl_shrink)
