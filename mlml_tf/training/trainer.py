"""The Keras side of training heads.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class TrainingRows:
    """The training rows of the heads trained together, as variables on the device.

    ``labels`` and ``weights`` are (N, H, C): row i's label and entry weight W for head h.
    ``features`` (N, ...), as cached (float16 or float32), when they are held in memory;
    otherwise every batch of the stream brings its own, as ``(row indices, features)``.
    :meth:`batch` turns an
    element of the stream into ``(features, labels, weights)``. Variables, not constants, so that
    a compiled step captures them by handle and gigabytes of features stay out of its graph;
    they belong to no Keras layer, so no checkpoint carries them.
    """

    def __init__(self, labels: np.ndarray, weights: np.ndarray,
                 features: np.ndarray | None = None) -> None:
        self.labels = tf.Variable(labels.astype(np.float32), trainable=False)
        self.weights = tf.Variable(weights.astype(np.float32), trainable=False)
        self.features = None if features is None else tf.Variable(features, trainable=False)

    def batch(self, data):
        """``(rows, features, labels, weights)`` of a batch: its row indices and what they
        gather."""
        if self.features is None:
            rows, features = data
        else:
            rows, features = data, tf.cast(tf.gather(self.features, data), tf.float32)
        return rows, features, tf.gather(self.labels, rows), tf.gather(self.weights, rows)


class HeadTrainer(keras.Model):
    """Trains ``heads`` (features -> (B, H, C) logits) on batches of row indices of ``rows``.

    ``objectives`` holds one :class:`~mlml_tf.losses.objectives.HeadObjective` per head (for
    every method, :func:`mlml_tf.losses.head_objective`), or one for every head. Each head's
    loss is its objective's per-entry values times the entry weights, reduced by the objective
    (the mean over the head's B x C entries, as a run alone computes it), and the step descends
    the sum of the H losses, whose gradient for head h's weights is head h's alone. Heads side
    by side whose objectives share a ``group_key`` are computed in one call on their (B, g, C)
    block. The trainer computes its loss itself, so ``compile`` takes the optimizer only
    (Keras' guide "Customizing what happens in fit()" does the same). ``fit``'s logs hold
    ``loss`` (the sum) and ``loss_0`` .. ``loss_{H-1}``, each head's loss as a run alone logs
    it. The objectives are layers of this model, so checkpoints carry their per-row state.

    Example:
        >>> objective = LossObjective(WeightedBinaryCrossentropy(from_logits=True))
        >>> trainer = HeadTrainer(build_heads((6, 6, 32), 10, n_heads=3), rows, [objective])
        >>> trainer.compile(optimizer=FusedAdadelta(0.1))
        >>> trainer.fit(index_dataset, epochs=4, steps_per_epoch=46)
    """

    def __init__(self, heads: keras.Model, rows: TrainingRows, objectives: list,
                 mean_predictions: bool = False, estimator_optimizer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        self.n_heads = int(heads.output.shape[1])
        if len(objectives) not in (1, self.n_heads):
            raise ValueError(f"{len(objectives)} objectives for {self.n_heads} heads")
        self.objectives = list(objectives) * (self.n_heads if len(objectives) == 1 else 1)
        self.epoch = self.add_weight((), "ones", trainable=False, name="epoch")
        # Each objective's trainable state (ROLE's label estimator) has its own optimizer,
        # ``estimator_optimizer(lr_multiplier)``.
        trained = [o for o in self.objectives if o.estimator_variables]
        if trained and estimator_optimizer is None:
            raise ValueError("objectives with trainable state need an estimator_optimizer")
        self.estimator_optimizers = [estimator_optimizer(o.lr_multiplier) for o in trained]
        for objective, optimizer in zip(trained, self.estimator_optimizers, strict=True):
            optimizer.build(objective.estimator_variables)
        self._estimated = [o.estimator_variables for o in trained]
        self.estimator_variables = [v for group in self._estimated for v in group]
        self._rows = rows
        self.head_losses = [keras.metrics.Mean(name=f"loss_{h}") for h in range(self.n_heads)]
        self.prediction_sums = None
        if mean_predictions:
            # Weights, not metrics: checkpoints carry them, so a resumed run's mean is exact.
            classes = int(heads.output.shape[-1])
            self.prediction_sums = self.add_weight((self.n_heads, classes), "zeros",
                                                   trainable=False, name="prediction_sums")
            self.prediction_count = self.add_weight((), "zeros", trainable=False,
                                                    name="prediction_count")
        self(np.zeros((1, *heads.input.shape[1:]), np.float32))

    def mean_training_predictions(self) -> np.ndarray:
        """(H, C): the mean predicted probability of each class over every training batch so
        far, computed before each step's update (with ``mean_predictions=True``); CSL's
        running estimate of the class prior."""
        return (self.prediction_sums.numpy().astype(np.float64)
                / max(float(self.prediction_count.numpy()), 1.0))

    def call(self, features, training=False):
        return self.heads(features, training=training)

    def train_step(self, data):
        rows, features, labels, weights = self._rows.batch(data)
        with tf.GradientTape() as tape:
            for variable in self.estimator_variables:
                tape.watch(variable.value)
            outputs = self(features, training=True)
            losses = self.head_loss(labels, outputs, weights, rows)
            if self.prediction_sums is not None:
                with tape.stop_recording():
                    probabilities = tf.sigmoid(tf.cast(outputs, tf.float32))
                    self.prediction_sums.assign_add(tf.reduce_sum(probabilities, axis=0))
                    self.prediction_count.assign_add(tf.cast(tf.shape(outputs)[0], tf.float32))
            total = tf.add_n(losses)
            scaled = self.optimizer.scale_loss(total)
        trained = self.trainable_weights
        gradients = tape.gradient(scaled, [*trained,
                                           *(v.value for v in self.estimator_variables)])
        self.optimizer.apply_gradients(zip(gradients[: len(trained)], trained, strict=True))
        # Dense, as a gather's gradient into a (rows, classes) estimator is in the authors'
        # code: rows outside the batch get a zero gradient.
        at = len(trained)
        for optimizer, variables in zip(self.estimator_optimizers, self._estimated,
                                        strict=True):
            grads = [tf.convert_to_tensor(g) for g in gradients[at : at + len(variables)]]
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            at += len(variables)
        rows = tf.shape(labels)[0]
        self._loss_tracker.update_state(_unscaled(total), sample_weight=rows)
        for tracker, loss in zip(self.head_losses, losses, strict=True):
            tracker.update_state(_unscaled(loss), sample_weight=rows)
        return {m.name: m.result() for m in self.metrics}

    def head_loss(self, labels, outputs, weights, rows=None) -> list:
        """The loss of each head: its objective's per-entry values times the entry weights,
        reduced by the objective. Heads whose objectives share a ``group_key`` (an entry-wise
        loss: its value at an entry depends on that entry alone) are computed in one call on
        their (B, g, C) block."""
        out = [None] * self.n_heads
        for heads, objective in _groups(self.objectives):
            if objective.needs_rows and rows is None:
                raise ValueError(f"{objective.name} keeps per-row state: it needs each batch's "
                                 "row indices")
            block = slice(heads[0], heads[-1] + 1) if len(heads) > 1 else heads[0]
            values = objective.values(rows, labels[:, block],
                                      tf.cast(outputs[:, block], tf.float32), self.epoch)
            reduced = objective.reduce(values, tf.cast(weights[:, block], values.dtype))
            for h, loss in zip(heads, tf.unstack(reduced) if len(heads) > 1 else [reduced],
                               strict=True):
                out[h] = loss
        return out


def _groups(objectives: list) -> list:
    """Runs of consecutive heads whose objectives share a ``group_key``, as ``(heads,
    objective)``; every other head alone."""
    groups: list = []
    previous = None
    for h, objective in enumerate(objectives):
        key = objective.group_key
        if key is not None and key == previous:
            groups[-1][0].append(h)
        else:
            groups.append(([h], objective))
        previous = key
    return groups


def _unscaled(loss):
    # A loss of one replica's batch is scaled by 1 / replicas so that the replicas' gradients
    # sum to the whole batch's (as Keras' own train_step); the logs show the whole batch's.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * replicas if replicas > 1 else loss
