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

import ctypes
import ctypes.util
import functools
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlml_tf.errors import atomic_path
from mlml_tf.objectives import HeadObjective


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
        """``(rows, features, labels, weights)`` of a batch: its row indices and what they
        gather."""
        if self.features is None:
            rows, features = data
        else:
            rows, features = data, tf.cast(tf.gather(self.features, data), tf.float32)
        return rows, features, tf.gather(self.labels, rows), tf.gather(self.weights, rows)


class HeadTrainer(keras.Model):
    """Trains ``heads`` (features -> (B, H, C) logits, or probabilities) on batches of row
    indices of ``rows``.

    ``losses`` holds one ``(loss, on_probabilities)`` per head, or one for every head: each
    loss returns per-entry values, as every loss of :mod:`mlml_tf.losses` does, and reads the
    head's logits, or its probabilities when ``on_probabilities`` (the sigmoid is applied
    here). Each head's loss is the mean over its B x C entries of those values times the entry
    weights (:meth:`head_loss`), as a run alone computes it, and the step descends the sum of
    the H losses, whose gradient for head h's weights is head h's alone. The trainer computes
    its loss itself, so ``compile`` takes the optimizer only (Keras' guide "Customizing what
    happens in fit()" does the same). ``fit``'s logs hold ``loss`` (the sum) and ``loss_0`` ..
    ``loss_{H-1}``, each head's loss as a run alone logs it.

    Example:
        >>> trainer = HeadTrainer(build_heads((6, 6, 32), 10, n_heads=3), rows,
        ...                       [(WeightedBinaryCrossentropy(from_logits=True), False)])
        >>> trainer.compile(optimizer=FusedAdadelta(0.1))
        >>> trainer.fit(index_dataset, epochs=4, steps_per_epoch=46)
    """

    def __init__(self, heads: keras.Model, rows: TrainingRows, losses: list,
                 mean_predictions: bool = False, estimator_optimizer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        self.n_heads = int(heads.output.shape[1])
        if len(losses) not in (1, self.n_heads):
            raise ValueError(f"{len(losses)} losses for {self.n_heads} heads")
        self.entry_losses = list(losses) * (self.n_heads if len(losses) == 1 else 1)
        # Losses with per-row state (mlml_tf.objectives): layers of this model, so that
        # checkpoints carry their variables.
        self.objectives = [loss for loss in self.entry_losses if _is_objective(loss)]
        self.epoch = self.add_weight((), "ones", trainable=False, name="epoch")
        # Each objective's trainable state (ROLE's label estimator) has its own optimizer,
        # ``estimator_optimizer(lr_multiplier)``.
        trained = [o for o in self.objectives if o.estimator_variables]
        if trained and estimator_optimizer is None:
            raise ValueError("losses with trainable state need an estimator_optimizer")
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
        """The loss of each head: the mean over its B x C entries of the per-entry values of its
        loss times the entry weights, as Keras' ``"sum_over_batch_size"`` reduces a run's
        (B, C) loss alone; scaled by 1 / replicas under a distribution strategy, as Keras
        scales a loss. Heads with the same entry-wise loss (one whose value at an entry depends
        on that entry alone) are computed in one call on their (B, g, C) block."""
        out = [None] * self.n_heads
        for heads, entry in _loss_groups(self.entry_losses):
            if _is_objective(entry):
                if rows is None:
                    raise ValueError(f"{entry.name} keeps per-row state: it needs each batch's "
                                     "row indices")
                (h,) = heads
                values = entry.values(rows, labels[:, h], tf.cast(outputs[:, h], tf.float32),
                                      self.epoch) * weights[:, h]
            else:
                loss, on_probabilities = entry
                block = slice(heads[0], heads[-1] + 1) if len(heads) > 1 else heads[0]
                predicted = tf.cast(outputs[:, block], loss.dtype)
                if on_probabilities:
                    predicted = tf.sigmoid(predicted)
                values = loss.call(tf.cast(labels[:, block], loss.dtype),
                                   predicted) * weights[:, block]
            if len(heads) == 1:
                means = [tf.reduce_sum(values) / tf.cast(tf.size(values), values.dtype)]
            else:
                entries = tf.cast(tf.shape(values)[0] * tf.shape(values)[2], values.dtype)
                means = tf.unstack(tf.reduce_sum(values, axis=(0, 2)) / entries)
            for h, mean in zip(heads, means, strict=True):
                out[h] = mean
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return [mean / replicas for mean in out] if replicas > 1 else out


def _loss_groups(entry_losses: list) -> list:
    """Runs of consecutive heads that share one entry-wise loss (same class, settings and
    input), as ``(heads, (loss, on_probabilities))``; every other head alone."""
    groups: list = []
    previous = None
    for h, entry in enumerate(entry_losses):
        if _is_objective(entry):
            groups.append(([h], entry))
            previous = None
            continue
        loss, on_probabilities = entry
        key = None
        if getattr(loss, "entrywise", False):
            config = {k: v for k, v in loss.get_config().items() if k != "name"}
            key = (type(loss), repr(sorted(config.items())), bool(on_probabilities))
        if key is not None and key == previous:
            groups[-1][0].append(h)
        else:
            groups.append(([h], (loss, on_probabilities)))
        previous = key
    return groups


def _is_objective(entry) -> bool:
    return isinstance(entry, HeadObjective)


def _unscaled(loss):
    # A loss of one replica's batch is scaled by 1 / replicas so that the replicas' gradients
    # sum to the whole batch's (as Keras' own train_step); the logs show the whole batch's.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * replicas if replicas > 1 else loss


# ------------------------------------------------------------------------------- callbacks


class StartStep(keras.callbacks.Callback):
    """Reads the optimizer's step once training begins, after BackupAndRestore: the step the
    training stream must start from (:func:`mlml_tf.train.batch_index_stream`)."""

    step = 0

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations.numpy())


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, with the checkpoint written atomically, at most every
    ``minutes`` (0: at every epoch end, as Keras does).

    Keras rewrites ``latest.weights.h5`` in place: a kill during that write leaves a truncated
    file that no later attempt can restore. Here the file is written under a temporary name and
    renamed, and the epoch to resume from is taken from the optimizer's step saved inside it, so
    a kill between the weights and Keras' own metadata file cannot repeat an epoch. A resumed
    training is the uninterrupted one whichever epoch its checkpoint holds (the k-th batch
    depends only on the seed and k), so the interval changes what a kill costs, never a result.
    """

    def __init__(self, backup_dir: str, minutes: float = 0.0) -> None:
        super().__init__(backup_dir)
        self.minutes = float(minutes)
        self._saved = time.monotonic()

    def _save_model(self):
        with atomic_path(self._weights_path) as tmp:
            self.model.save_weights(tmp)
        self._saved = time.monotonic()

    def on_train_begin(self, logs=None):
        from mlml_tf.errors import DataError

        restoring = os.path.exists(self._weights_path)
        try:
            super().on_train_begin(logs)
        except ValueError as exc:
            # Keras refuses weights of other shapes: a checkpoint of other runs or settings.
            raise DataError(f"cannot resume from this checkpoint ({exc}); delete it to train "
                            "from the start", file=self._weights_path) from None
        self._saved = time.monotonic()
        if restoring:
            step = int(self.model.optimizer.iterations.numpy())
            self.model._initial_epoch = step // self.params["steps"]
            for objective in getattr(self.model, "objectives", []):
                objective.check_restored(self._weights_path)

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self._saved >= 60.0 * self.minutes:
            super().on_epoch_end(epoch, logs)


class EpochCounter(keras.callbacks.Callback):
    """Sets the trainer's ``epoch`` (1-based) at each epoch's start, which the schedules of
    per-row objectives read inside the compiled step, and lets each objective prepare the
    epoch (:meth:`mlml_tf.objectives.HeadObjective.on_epoch_begin`). After a checkpoint is
    restored, so a resumed run starts its epoch as an uninterrupted one does."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch + 1))
        for objective in getattr(self.model, "objectives", []):
            objective.on_epoch_begin(epoch + 1)


class RunLogs(keras.callbacks.Callback):
    """Each run's training log (``training_log.csv``) and TensorBoard events (``logs/``).

    For heads trained together, run h's ``loss`` is its head's (``loss_h`` of the trainer's
    logs), as the run alone would log it; ``own_logs=True`` passes the logs on as they are (a
    model that trains one run).
    """

    def __init__(self, run_dirs: list[Path], own_logs: bool = False) -> None:
        super().__init__()
        self.own_logs = own_logs
        self.members = [
            [keras.callbacks.CSVLogger(str(Path(d) / "training_log.csv"), append=True),
             keras.callbacks.TensorBoard(str(Path(d) / "logs"), write_graph=False)]
            for d in run_dirs
        ]

    def set_model(self, model):
        super().set_model(model)
        for member in self.members:
            for callback in member:
                callback.set_model(model)

    def _each(self, hook: str, *args):
        for member in self.members:
            for callback in member:
                getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._each("on_train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._each("on_epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        for h, member in enumerate(self.members):
            own = logs if self.own_logs else {"loss": logs[f"loss_{h}"]}
            for callback in member:
                callback.on_epoch_end(epoch, own)

    def on_train_end(self, logs=None):
        self._each("on_train_end")


#: Beside a head file: the mean predicted probabilities over training, when the trainer kept them.
MEAN_PREDICTIONS = "mean_training_predictions.npy"


#: Beside a head file: the per-row state its loss ended with, one ``.npy`` per variable.
STATE = "state"


def save_state(objective, folder: Path) -> None:
    """Write each variable of ``objective`` (a :class:`mlml_tf.objectives.HeadObjective`) to
    ``folder/<name>.npy``: ROLE's ``estimator_logits`` (the label estimates are their sigmoid),
    LL-Cp's ``flipped``, PL-Shrink's ``labels``, ``streak``, ``settled`` and ``positive_rate``."""
    folder.mkdir(parents=True, exist_ok=True)
    for variable in objective.weights:
        name = variable.name.split("/")[-1]
        if name != "fingerprint":
            with atomic_path(folder / f"{name}.npy") as tmp:
                np.save(tmp, variable.numpy())


class SaveHeads(keras.callbacks.Callback):
    """Writes head h of ``heads`` (a :func:`mlml_tf.model.build_heads` model) to ``paths[h]``
    when training ends, in the layout of ``head`` (a :func:`mlml_tf.model.build_head` model),
    and beside it, if the trainer kept them, its mean training predictions
    (:data:`MEAN_PREDICTIONS`), and the per-row state of its loss (:func:`save_state`).

    Placed before BackupAndRestore, which deletes its checkpoint when training ends, so that a
    kill at any moment leaves one or the other.
    """

    def __init__(self, heads: keras.Model, head: keras.Model, paths: list[Path]) -> None:
        super().__init__()
        self.heads, self.head, self.paths = heads, head, paths

    def on_train_end(self, logs=None):
        from mlml_tf.model import head_weights

        means = (self.model.mean_training_predictions()
                 if getattr(self.model, "prediction_sums", None) is not None else None)
        entries = getattr(self.model, "entry_losses", [None] * len(self.paths))
        for h, path in enumerate(self.paths):
            # Before the head: a run with its head file has these too.
            if means is not None:
                with atomic_path(Path(path).parent / MEAN_PREDICTIONS) as tmp:
                    np.save(tmp, means[h])
            if _is_objective(entries[h]):
                save_state(entries[h], Path(path).parent / STATE)
            self.head.set_weights(head_weights(self.heads, h))
            with atomic_path(path) as tmp:
                self.head.save_weights(tmp)


class TimedCallbacks(keras.callbacks.Callback):
    """``callbacks`` in one callback that adds the seconds spent in them to
    ``phases["callbacks"]`` and the seconds of each epoch's step loop to ``phases["epochs"]``
    (for benchmarks)."""

    def __init__(self, callbacks: list, phases: dict) -> None:
        super().__init__()
        self.callbacks, self.phases = callbacks, phases
        self._loop_start = 0.0

    def set_model(self, model):
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        for callback in self.callbacks:
            callback.set_params(params)

    def _call(self, hook: str, *args) -> tuple[float, float]:
        begin = time.perf_counter()
        for callback in self.callbacks:
            getattr(callback, hook)(*args)
        end = time.perf_counter()
        self.phases["callbacks"] = self.phases.get("callbacks", 0.0) + end - begin
        return begin, end

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._loop_start = self._call("on_epoch_begin", epoch, logs)[1]

    def on_epoch_end(self, epoch, logs=None):
        begin, _ = self._call("on_epoch_end", epoch, logs)
        self.phases.setdefault("epochs", []).append(begin - self._loop_start)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)


class MallocSettings(keras.callbacks.Callback):
    """Applies :func:`keep_freed_memory` once the input stream has started (TensorFlow sets
    its own values when a generator dataset's iterator is made)."""

    def on_train_batch_begin(self, batch, logs=None):
        keep_freed_memory()


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for the next step instead of handing it back.

    TensorFlow's generator datasets set ``M_TRIM_THRESHOLD`` to 128 KiB, which also freezes
    malloc's mmap threshold at its start value: every step's tensors above it (the head's
    gradients and Adadelta's temporaries, megabytes each) are then mapped and unmapped anew,
    and their pages faulted in at every step. On the demo's head that doubled the time of a
    step (``benchmarks/bench_steps.py``). Raising both thresholds keeps them on the heap. A
    no-op where the C library is not glibc.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest on 64-bit machines
    mallopt(m_trim_threshold, 512 << 20)


@functools.cache
def _mallopt():
    """glibc's ``mallopt``, or None where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
