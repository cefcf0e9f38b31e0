"""The paper's three methods: CE, IM-WCE and CB-WCE (docs/original.md section 6).

All three train with the weighted cross-entropy, the mean over a batch's B x C entries of
``-[P_c y log p + w̄_ic (1 - y) log(1 - p)]``, fed its entry weights W = y P + (1 - y) w̄ as a
(batch, classes) ``sample_weight``; they differ only in w̄, the weight of an unknown entry:
1 (CE), 0 where a positive was hidden (IM-WCE, an oracle), the confidence of paper eq. 3
(CB-WCE), counted or estimated where the run's ``cb_source`` says. Annotated negatives, which
the paper's files do not have, keep w̄ = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlml_tf.labels.estimated import LEVELS, VERSION, estimate_confidence
from mlml_tf.labels.weights import class_balance_weights, confidence_weights, entry_weights
from mlml_tf.methods.method import Method, RunLabels, fail


def _class_balance(labels: RunLabels) -> np.ndarray:
    if labels.config.pos_weight_source == "original":
        # The original computed P once, from the complete labels of fold 1
        # (docs/original.md section 6).
        return class_balance_weights(labels.first_fold_labels())
    return class_balance_weights(labels.positives)


def _weighted(negative_weight: Callable[[RunLabels, dict], tuple[np.ndarray, dict]]):
    """Targets and weights of the paper's weighted cross-entropy: W = y P + (1 - y) w̄, with w̄
    1 on annotated negatives (they are known) and ``negative_weight`` on unknown entries
    (which also returns what the run records of them)."""

    def targets(labels: RunLabels, params: dict):
        y = labels.positives.astype(np.float32)
        pos_weight = _class_balance(labels)
        unknown, record = negative_weight(labels, params)
        w_bar = np.where(labels.observed == 0, 1.0, unknown).astype(np.float32)
        return (y, entry_weights(y, pos_weight, w_bar),
                {"pos_weight": pos_weight.tolist(), **record})

    return targets


def _unit(labels: RunLabels, params: dict) -> tuple[np.ndarray, dict]:
    """CE's w̄: every unknown entry is a negative of weight 1."""
    return np.ones(labels.train.shape, np.float32), {}


def _ignore_missing(labels: RunLabels, params: dict) -> tuple[np.ndarray, dict]:
    """IM-WCE's w̄: 0 where the unknown entry is a hidden positive (an oracle,
    docs/original.md section 3)."""
    return (~labels.hidden_positives()).astype(np.float32), {}


def _confidence(labels: RunLabels, params: dict) -> tuple[np.ndarray, dict]:
    """CB-WCE's w̄ (paper eq. 3), counted or estimated where ``cb_source`` says
    (docs/original.md section 4, docs/methods.md section 6), to the power ``power``."""

    weights, record = _confidence_weights(labels, params["level"])
    if params["power"] != 1:
        weights = weights ** np.float32(params["power"])
    return weights, record


def _confidence_weights(labels: RunLabels, level: str) -> tuple[np.ndarray, dict]:
    source = labels.config.cb_source
    if source == "observed":
        return confidence_weights(labels.positives), {}
    if source == "estimated":
        # From the run's observed matrix alone, seeded by the run's seed.
        estimate = estimate_confidence(labels.observed, seed=labels.config.seed, level=level)
        ratio = None if np.isnan(estimate.ratio) else round(estimate.ratio, 4)
        return estimate.weights, {"cb_estimate": {
            "version": VERSION, "mode": estimate.mode, "level": estimate.level, "ratio": ratio,
            "ratio_interval": [round(v, 4) for v in estimate.ratio_interval],
            "missing_fraction": round(estimate.missing_fraction, 4)}}
    if source in ("oracle", "oracle-loo"):
        # Over the complete labels of every row of the set, train and test of all folds.
        truth = labels.groundtruth()
        complete = labels.complete()  # every training id is in the set
        if source == "oracle-loo":
            # The row's observed positives, its own complete row left out of the counts.
            return confidence_weights(labels.positives, truth.to_numpy(), own=complete), {}
        # The original's counting: each row's complete positive set.
        rows = truth.index.get_indexer(labels.train.index)
        return confidence_weights(truth.to_numpy())[rows], {}
    return labels.global_weights(), {}


def _check_confidence(params: dict, epochs: int | None, classes: int | None) -> None:
    if not params["power"] > 0:
        fail("cb-wce", "power", params["power"], "a number above 0")
    if params["level"] not in LEVELS:
        fail("cb-wce", "level", params["level"], "one of " + ", ".join(LEVELS))


def _weighted_loss(params: dict, record: dict, *, from_logits: bool, **_) -> dict:
    return {"from_logits": from_logits}


def _paper_method(name: str, label: str, negative_weight, params=None, **needs) -> Method:
    return Method(name, label, params or {}, _weighted(negative_weight),
                  "WeightedBinaryCrossentropy", _weighted_loss, loss_input=True, **needs)


CE = _paper_method("ce", "CE", _unit)
IM_WCE = _paper_method("im-wce", "IM-WCE", _ignore_missing, needs_oracle=True,
                       original_from_logits=False)
#: CB-WCE's ``power``: w̄ ** power, 1 the paper's; above 1 lowers the doubtful weights further
#: (README, "CB-WCE without an oracle"). ``level``: with estimated weights, how many positives
#: the rows are taken to have lost where the labels cannot tell (docs/methods.md section 6).
CB_WCE = _paper_method("cb-wce", "CB-WCE", _confidence, {"power": 1.0, "level": "least"},
                       original_from_logits=False, check=_check_confidence)
