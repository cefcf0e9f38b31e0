"""The Keras side of training heads on cached features: the model, its optimizer, its rows.

The runs of one fold (every method and ratio) train on the same rows in the same order: batch k
depends only on the seed and k (:func:`mlml_tf.train.batch_rows`); only their labels and entry
weights differ. :class:`HeadTrainer` trains the heads of such runs side by side
(:func:`mlml_tf.model.build_heads`): each step reads one batch of features and updates every
head with the gradient of its own loss, so each head follows the run trained alone, and a run
trained alone is the case of one head. The training stream carries row indices; the rows'
features (when they fit in memory), labels and weights sit in variables on the device and each
batch is gathered there (:class:`TrainingRows`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mlml_tf")
class FusedAdadelta(keras.optimizers.Adadelta):
    """Keras' Adadelta, each variable updated by TensorFlow's fused ``ApplyAdadelta`` kernel.

    The kernel is the one TF1's ``AdadeltaOptimizer`` ran in the original (SPEC 7): the same
    rule as Keras' Adadelta, in one pass over the variable and its two accumulators instead of
    about ten element-wise operations, each a pass over memory. On the paper's head, whose step
    is bound by memory traffic, that is a quarter of the step (``benchmarks/bench_steps.py``).
    Same variables, same checkpoints; sparse gradients and distribution strategies take Keras'
    own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices) or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyAdadelta(
            var=variable.handle,
            accum=self._accumulated_grads[index].handle,
            accum_update=self._accumulated_delta_vars[index].handle,
            # rho and epsilon straight to the variable's dtype: a cast of a Python float would
            # round it to float32 first.
            lr=tf.cast(learning_rate, dtype), rho=tf.constant(self.rho, dtype),
            epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )


class TrainingRows:
    """The training rows of the heads trained together, as variables on the device.

    ``labels`` and ``weights`` are (N, H, C): row i's label and entry weight W for head h.
    ``features`` (N, ...), float16 as cached, when they are held in memory; otherwise every
    batch of the stream brings its own, as ``(row indices, features)``. :meth:`batch` turns an
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
        if self.features is None:
            rows, features = data
        else:
            rows, features = data, tf.cast(tf.gather(self.features, data), tf.float32)
        return features, tf.gather(self.labels, rows), tf.gather(self.weights, rows)


class HeadTrainer(keras.Model):
    """Trains ``heads`` (features -> (B, H, C)) on batches of row indices of ``rows``.

    ``loss`` returns per-entry values, as every loss of :mod:`mlml_tf.losses` does: each head's
    loss is the mean over its B x C entries of those values times the entry weights
    (:meth:`head_loss`), as a run alone computes it, and the step descends the sum of the H
    losses, whose gradient for head h's weights is head h's alone. The trainer computes its
    loss itself, so ``compile`` takes the optimizer only (Keras' guide "Customizing what happens
    in fit()" does the same). ``fit``'s logs hold ``loss`` (the sum) and ``loss_0`` ..
    ``loss_{H-1}``, each head's loss as a run alone logs it.

    Example:
        >>> trainer = HeadTrainer(build_heads((6, 6, 32), 10, n_heads=3), rows,
        ...                       WeightedBinaryCrossentropy(from_logits=True))
        >>> trainer.compile(optimizer=FusedAdadelta(0.1))
        >>> trainer.fit(index_dataset, epochs=4, steps_per_epoch=46)
    """

    def __init__(self, heads: keras.Model, rows: TrainingRows, loss: keras.losses.Loss,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        self.n_heads = int(heads.output.shape[1])
        self.entry_loss = loss
        self._rows = rows
        self.head_losses = [keras.metrics.Mean(name=f"loss_{h}") for h in range(self.n_heads)]
        self(np.zeros((1, *heads.input.shape[1:]), np.float32))

    def call(self, features, training=False):
        return self.heads(features, training=training)

    def train_step(self, data):
        features, labels, weights = self._rows.batch(data)
        with tf.GradientTape() as tape:
            outputs = self(features, training=True)
            losses = self.head_loss(labels, outputs, weights)
            total = tf.reduce_sum(losses)
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        rows = tf.shape(labels)[0]
        self._loss_tracker.update_state(_unscaled(total), sample_weight=rows)
        for h, tracker in enumerate(self.head_losses):
            tracker.update_state(_unscaled(losses[h]), sample_weight=rows)
        return {m.name: m.result() for m in self.metrics}

    def head_loss(self, labels, outputs, weights):
        """(H,) the loss of each head: the mean over its B x C entries of the per-entry values
        of ``loss`` times the entry weights, as Keras' ``"sum_over_batch_size"`` reduces a
        run's (B, C) loss alone; scaled by 1 / replicas under a distribution strategy, as Keras
        scales a loss."""
        dtype = self.entry_loss.dtype
        values = self.entry_loss.call(tf.cast(labels, dtype), tf.cast(outputs, dtype)) * weights
        entries = tf.cast(tf.shape(values)[0] * tf.shape(values)[2], values.dtype)
        losses = tf.reduce_sum(values, axis=(0, 2)) / entries
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return losses / replicas if replicas > 1 else losses


def _unscaled(loss):
    # A loss of one replica's batch is scaled by 1 / replicas so that the replicas' gradients
    # sum to the whole batch's (as Keras' own train_step); the logs show the whole batch's.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * replicas if replicas > 1 else loss
