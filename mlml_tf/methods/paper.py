"""The paper's three methods: CE, IM-WCE and CB-WCE (docs/original.md section 6).

All three train with the weighted cross-entropy, the mean over a batch's B x C entries of
``-[P_c y log p + w̄_ic (1 - y) log(1 - p)]``, fed its entry weights W = y P + (1 - y) w̄ as a
(batch, classes) ``sample_weight``; they differ only in w̄, the weight of an unknown entry:
1 (CE), 0 where a positive was hidden (IM-WCE, an oracle), the confidence of paper eq. 3
(CB-WCE). Annotated negatives, which the paper's files do not have, keep w̄ = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlml_tf.labels.weights import class_balance_weights, confidence_weights, entry_weights
from mlml_tf.methods.method import Method, RunLabels


def _class_balance(labels: RunLabels) -> np.ndarray:
    if labels.config.pos_weight_source == "original":
        # The original computed P once, from the complete labels of fold 1
        # (docs/original.md section 6).
        return class_balance_weights(labels.first_fold_labels())
    return class_balance_weights(labels.positives)


def _weighted(negative_weight: Callable[[RunLabels], np.ndarray]):
    """Targets and weights of the paper's weighted cross-entropy: W = y P + (1 - y) w̄, with w̄
    1 on annotated negatives (they are known) and ``negative_weight`` on unknown entries."""

    def targets(labels: RunLabels, params: dict):
        y = labels.positives.astype(np.float32)
        pos_weight = _class_balance(labels)
        w_bar = np.where(labels.observed == 0, 1.0, negative_weight(labels)).astype(np.float32)
        return y, entry_weights(y, pos_weight, w_bar), {"pos_weight": pos_weight.tolist()}

    return targets


def _unit(labels: RunLabels) -> np.ndarray:
    """CE's w̄: every unknown entry is a negative of weight 1."""
    return np.ones(labels.train.shape, np.float32)


def _ignore_missing(labels: RunLabels) -> np.ndarray:
    """IM-WCE's w̄: 0 where the unknown entry is a hidden positive (an oracle,
    docs/original.md section 3)."""
    return (~labels.hidden_positives()).astype(np.float32)


def _confidence(labels: RunLabels) -> np.ndarray:
    """CB-WCE's w̄ (paper eq. 3), counted where ``cb_source`` says (docs/original.md
    section 4)."""

    source = labels.config.cb_source
    if source == "observed":
        return confidence_weights(labels.positives)
    if source == "oracle":
        # The original's counting: over the complete labels of every row of the set, train and
        # test of all folds.
        truth = labels.groundtruth()
        rows = truth.index.get_indexer(labels.train.index)
        labels.complete()  # every training id is in the set
        return confidence_weights(truth.to_numpy())[rows]
    return labels.global_weights()


def _weighted_loss(params: dict, record: dict, *, from_logits: bool, **_) -> dict:
    return {"from_logits": from_logits}


def _paper_method(name: str, label: str, negative_weight, **needs) -> Method:
    return Method(name, label, {}, _weighted(negative_weight), "WeightedBinaryCrossentropy",
                  _weighted_loss, loss_input=True, **needs)


CE = _paper_method("ce", "CE", _unit)
IM_WCE = _paper_method("im-wce", "IM-WCE", _ignore_missing, needs_oracle=True,
                       original_from_logits=False)
CB_WCE = _paper_method("cb-wce", "CB-WCE", _confidence, original_from_logits=False)
