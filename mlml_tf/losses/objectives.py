"""Head objectives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path
from mlml_tf.losses.field import _sigmoid, balanced_crossentropy, class_positive_rates
from mlml_tf.losses.rules import (
    _flips,
    _large_loss_parts,
    _modified_losses,
    pseudo_labels,
    role_initial_logits,
    role_loss,
)
from mlml_tf.methods.revising import PL_SHRINK_PARAMS, ROLE_PARAMS


class HeadObjective(keras.layers.Layer):
    """The loss of one head, whatever its method: what the trainer calls for every head.

    :meth:`values` returns the (B, C) per-entry values of a batch (``rows``: the batch's row
    indices into the training rows, or None where the stream carries none; ``labels`` 1 / 0 /
    -1; ``logits`` the head's; ``epoch`` 1-based); :meth:`reduce` turns the values times the
    entry weights into the head's loss. ``estimator_variables`` are trained by the trainer's
    second optimizer (a learning rate ``lr_multiplier`` times the head's). ``group_key``: heads
    side by side whose objectives have equal keys (not None) are computed in one call on their
    (B, heads, C) block.
    """

    lr_multiplier = 1.0
    group_key = None
    needs_rows = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.built = True  # its variables, if any, are made in __init__, none from an input

    @property
    def estimator_variables(self) -> list:
        return []

    def values(self, rows, labels, logits, epoch):
        raise NotImplementedError

    def reduce(self, values, weights):
        """The head's loss from its (B, C) per-entry ``values`` and entry ``weights``: the mean
        over the B x C entries of their product, as Keras' ``"sum_over_batch_size"`` reduces a
        run's (B, C) loss, scaled by 1 / replicas under a distribution strategy. On a (B, g, C)
        block of g heads, the g losses."""
        return _per_replica(_sum(values * weights) / _entries(values))

    def on_epoch_begin(self, epoch: int) -> None:
        """Called before each epoch (1-based), after a checkpoint is restored."""

    def check_restored(self, path) -> None:
        """Refuse a restored checkpoint whose state is not this objective's."""

    def save_state(self, folder) -> None:
        """Write the per-row state the objective ended with (none here)."""

    def keras_loss(self) -> keras.losses.Loss:
        """This objective as a Keras loss of ``(labels, logits)``, for a model compiled on
        batches that carry no row index (end to end on images, the fine-tuning)."""
        if self.needs_rows:
            raise DataError(f"{self.name} keeps state per training row and needs each batch's "
                            "row indices, which this stream of images does not carry")
        return _ObjectiveLoss(self)


def _sum(values):
    """The sum over a head's entries: all of a (B, C) block, per head of a (B, g, C) one."""
    return tf.reduce_sum(values, axis=(0, 2)) if values.shape.rank == 3 else tf.reduce_sum(values)


def _entries(values):
    shape = tf.shape(values)
    count = shape[0] * shape[2] if values.shape.rank == 3 else tf.size(values)
    return tf.cast(count, values.dtype)


def _per_replica(loss):
    # A loss of one replica's batch is scaled by 1 / replicas so that the replicas' gradients
    # sum to the whole batch's, as Keras scales a loss.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


class LossObjective(HeadObjective):
    """A Keras loss that returns per-entry values (every loss of :mod:`mlml_tf.losses`) as a
    head's objective: on the head's logits, or on their sigmoid where the loss reads
    probabilities (``on_probabilities``; the one place this is applied). The head's loss is
    reduced as the Keras loss's own ``reduction`` says."""

    def __init__(self, loss: keras.losses.Loss, on_probabilities: bool = False,
                 **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", loss.name), **kwargs)
        if loss.reduction in (None, "none"):
            raise DataError(f"the loss {loss.name} of a head must reduce to a number, "
                            f"not have reduction {loss.reduction!r}")
        self.loss = loss
        self.on_probabilities = bool(on_probabilities)
        if getattr(loss, "entrywise", False):
            config = {k: v for k, v in loss.get_config().items() if k != "name"}
            self.group_key = (type(loss), repr(sorted(config.items())), self.on_probabilities)

    def values(self, rows, labels, logits, epoch):
        predicted = tf.cast(logits, self.loss.dtype)
        if self.on_probabilities:
            predicted = tf.sigmoid(predicted)
        return self.loss.call(tf.cast(labels, self.loss.dtype), predicted)

    def reduce(self, values, weights):
        """As the Keras loss's ``reduction`` says: "sum", "mean_with_sample_weight" (divided by
        the sum of the weights), or the mean over the entries ("sum_over_batch_size", "mean")."""
        if self.loss.reduction == "sum":
            return _sum(values * weights)
        if self.loss.reduction == "mean_with_sample_weight":
            return _per_replica(tf.math.divide_no_nan(_sum(values * weights), _sum(weights)))
        return super().reduce(values, weights)


class _ObjectiveLoss(keras.losses.Loss):
    """A stateless :class:`HeadObjective` as a Keras loss: its values, weighted by
    ``sample_weight`` and reduced by the wrapped loss's reduction."""

    def __init__(self, objective: LossObjective) -> None:
        super().__init__(name=objective.loss.name, reduction=objective.loss.reduction)
        self.objective = objective

    def call(self, y_true, y_pred):
        return self.objective.values(None, y_true, y_pred, None)


class StatefulObjective(HeadObjective):
    """The loss of one head that keeps per-row state: variables of (training rows, classes).

    :meth:`values` may update the layer's variables for the batch's rows. ``settings``
    (JSON-able) name what the state depends on: its fingerprint is saved with the state, and a
    checkpoint of other settings is refused on restore (:meth:`check_restored`).
    """

    needs_rows = True

    def __init__(self, rows: int, classes: int, settings: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows, self.classes = int(rows), int(classes)
        self.settings = {"kind": type(self).__name__, "rows": self.rows,
                         "classes": self.classes, **settings}
        text = json.dumps(self.settings, sort_keys=True)
        self.expected = int(hashlib.sha256(text.encode()).hexdigest()[:6], 16)
        self.fingerprint = self.add_weight((), "zeros", trainable=False, name="fingerprint")
        self.fingerprint.assign(float(self.expected))
        self.built = True  # every variable is made here, none from an input shape

    def _state(self, name: str, values: np.ndarray | float = 0.0, shape=None):
        shape = shape or (self.rows, self.classes)
        variable = self.add_weight(shape, "zeros", trainable=False, name=name)
        variable.assign(np.broadcast_to(np.asarray(values, np.float32), shape))
        return variable

    def save_state(self, folder) -> None:
        """Write each variable to ``folder/<name>.npy``: ROLE's ``estimator_logits`` (the label
        estimates are their sigmoid), LL-Cp's ``flipped``, PL-Shrink's ``labels``, ``streak``,
        ``settled`` and ``positive_rate``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for variable in self.weights:
            name = variable.name.split("/")[-1]
            if name != "fingerprint":
                with atomic_path(folder / f"{name}.npy") as tmp:
                    np.save(tmp, variable.numpy())

    def check_restored(self, path) -> None:
        got = int(round(float(self.fingerprint.numpy())))
        if got != self.expected:
            raise DataError(f"the checkpoint holds the state of {self.name} for other settings "
                            f"than {json.dumps(self.settings, sort_keys=True)}: delete it to "
                            "train from the start", file=path)


def _update_rows(variable, rows, values) -> None:
    variable.value.scatter_update(tf.IndexedSlices(tf.cast(values, variable.dtype), rows))


class RoleObjective(StatefulObjective):
    """ROLE (Cole et al., CVPR 2021): a label estimator, one trainable logit per (training row,
    class), initialised as the authors do (:func:`mlml_tf.losses.role_initial_logits`), trained
    with the classifier by :func:`mlml_tf.losses.role_loss` at ``lr_multiplier`` (10) times the
    head's learning rate."""

    def __init__(self, observed: np.ndarray, expected_positives: float, seed: int,
                 lr_multiplier: float = ROLE_PARAMS["lr_multiplier"], **kwargs) -> None:
        rows, classes = observed.shape
        super().__init__(rows, classes, {"k": float(expected_positives), "seed": int(seed),
                                         "lr_multiplier": float(lr_multiplier)}, **kwargs)
        self.expected_positives = float(expected_positives)
        self.lr_multiplier = float(lr_multiplier)
        self.logits = self._state("estimator_logits", role_initial_logits(observed, seed))

    @property
    def estimator_variables(self) -> list:
        return [self.logits]

    def estimates(self, rows):
        return _sigmoid(tf.gather(self.logits, rows))

    def values(self, rows, labels, logits, epoch):
        return role_loss(labels, _sigmoid(logits), self.estimates(rows), self.expected_positives)


#: Large Loss Matters' schemes: how each modifies large losses, and whether flips are permanent.
LARGE_LOSS_SCHEMES = {"ll-r": ("rejection", False), "ll-ct": ("correction", False),
                      "ll-cp": ("correction", True)}


class LargeLossObjective(StatefulObjective):
    """Large Loss Matters (Kim et al., CVPR 2022): :func:`mlml_tf.losses.large_loss_matters`
    with the paper's schedule. Epoch 1 modifies nothing; LL-R and LL-Ct then modify the rate
    (epoch - 1) x ``delta`` of each batch's entries; LL-Cp modifies ``delta`` of them and turns
    the unknown entries strictly above the threshold into positives for good (its ``flipped``
    variable, which checkpoints carry). The authors' current code runs LL-Cp as LL-Ct (it
    compares strings with ``is``); this is the LL-Cp their paper describes."""

    def __init__(self, scheme: str, delta: float, rows: int, classes: int, **kwargs) -> None:
        if scheme not in LARGE_LOSS_SCHEMES:
            raise DataError(f"scheme must be one of {', '.join(LARGE_LOSS_SCHEMES)}, "
                            f"not {scheme!r}")
        super().__init__(rows, classes, {"scheme": scheme, "delta": float(delta)}, **kwargs)
        self.mode, self.permanent = LARGE_LOSS_SCHEMES[scheme]
        self.delta = float(delta)
        self.flipped = self._state("flipped") if self.permanent else None

    def rate(self, epoch):
        epoch = tf.cast(epoch, tf.float64)
        if self.permanent:
            return tf.where(epoch >= 2.0, tf.constant(self.delta, tf.float64), 0.0)
        return (epoch - 1.0) * tf.constant(self.delta, tf.float64)

    def values(self, rows, labels, logits, epoch):
        if self.flipped is not None:
            flipped = tf.gather(self.flipped, rows)
            labels = tf.where(flipped > 0, tf.ones_like(labels), labels)
        # One ranking of the batch's losses serves both the modified losses and the flips.
        parts = _large_loss_parts(labels, logits, self.rate(epoch))
        if self.flipped is not None:
            flips = tf.cast(_flips(parts), flipped.dtype)
            _update_rows(self.flipped, rows, tf.maximum(flipped, flips))
        return _modified_losses(parts, self.mode)


class PseudoLabelShrink(StatefulObjective):
    """PL-Shrink, after arXiv 2308.00166 (its three parts as its abstract names them; the design
    and every default are ours, not a reproduction).

    1. Pseudo-labels from the network itself: after ``warmup_epochs``, each time a row is seen,
       its unknown entries take the label the head's probability (before the step) gives them,
       1 at ``positive_threshold`` or above, 0 at ``negative_threshold`` or below, else they
       stay unknown (:func:`mlml_tf.losses.pseudo_labels`); annotated entries are never touched.
    2. A loss against each class's imbalance from the data set's statistics:
       :func:`mlml_tf.losses.balanced_crossentropy`, which weighs each class's positives and
       negatives by their shares of its loss (annotated and pseudo-labelled entries, and the
       entries still unknown, which count as negatives weighted ``unknown_weight``, default 1:
       the balance, not a small weight, keeps them from swamping the positives), counted over
       the training rows again at each epoch's start.
    3. A label space that shrinks: an entry that is not positive and whose probability has been
       at most ``settle_margin`` for ``patience`` visits in a row (after the warm-up) is settled
       and leaves the loss for good; easy negatives, the bulk of the imbalance, drop out first.
    """

    def __init__(self, observed: np.ndarray,
                 warmup_epochs: int = PL_SHRINK_PARAMS["warmup_epochs"],
                 positive_threshold: float = PL_SHRINK_PARAMS["positive_threshold"],
                 negative_threshold: float = PL_SHRINK_PARAMS["negative_threshold"],
                 max_weight: float = PL_SHRINK_PARAMS["max_weight"],
                 unknown_weight: float = PL_SHRINK_PARAMS["unknown_weight"],
                 settle_margin: float = PL_SHRINK_PARAMS["settle_margin"],
                 patience: int = PL_SHRINK_PARAMS["patience"], **kwargs) -> None:
        rows, classes = observed.shape
        settings = {"warmup_epochs": int(warmup_epochs),
                    "positive_threshold": float(positive_threshold),
                    "negative_threshold": float(negative_threshold),
                    "max_weight": float(max_weight), "unknown_weight": float(unknown_weight),
                    "settle_margin": float(settle_margin), "patience": int(patience)}
        super().__init__(rows, classes, settings, **kwargs)
        self.current = self._state("labels", observed.astype(np.float32))
        self.streak = self._state("streak")
        self.settled = self._state("settled")
        self.positive_rate = self._state("positive_rate", self._rates(observed),
                                         shape=(classes,))

    def _rates(self, labels: np.ndarray) -> np.ndarray:
        return class_positive_rates(labels, self.settings["unknown_weight"]).astype(np.float32)

    def on_epoch_begin(self, epoch: int) -> None:
        self.positive_rate.assign(self._rates(self.current.numpy()))

    def values(self, rows, labels, logits, epoch):
        o = self.settings
        p = tf.stop_gradient(tf.sigmoid(logits))
        after = tf.cast(epoch, tf.float32) > float(o["warmup_epochs"])
        y = tf.where(after, pseudo_labels(labels, p, o["positive_threshold"],
                                          o["negative_threshold"]), labels)
        settled = tf.gather(self.settled, rows)
        values = balanced_crossentropy(y, logits, self.positive_rate, o["max_weight"],
                                       o["unknown_weight"]) * (1.0 - settled)
        easy = (y != 1) & (p <= o["settle_margin"])
        streak = tf.where(easy, tf.gather(self.streak, rows) + 1.0, 0.0)
        now = tf.cast(after & (streak >= float(o["patience"])), settled.dtype)
        _update_rows(self.current, rows, y)
        _update_rows(self.streak, rows, streak)
        _update_rows(self.settled, rows, tf.maximum(settled, now))
        return values
