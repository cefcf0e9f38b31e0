"""Training callbacks.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import time
from pathlib import Path

import keras
import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path
from mlml_tf.training.heads import head_weights


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


class SaveHeads(keras.callbacks.Callback):
    """Writes head h of ``heads`` (a :func:`mlml_tf.model.build_heads` model) to ``paths[h]``
    when training ends, in the layout of ``head`` (a :func:`mlml_tf.model.build_head` model),
    and beside it, if the trainer kept them, its mean training predictions
    (:data:`MEAN_PREDICTIONS`), and the per-row state its objective ended with, under
    :data:`STATE` (:meth:`mlml_tf.losses.objectives.HeadObjective.save_state`).

    Placed before BackupAndRestore, which deletes its checkpoint when training ends, so that a
    kill at any moment leaves one or the other.
    """

    def __init__(self, heads: keras.Model, head: keras.Model, paths: list[Path]) -> None:
        super().__init__()
        self.heads, self.head, self.paths = heads, head, paths

    def on_train_end(self, logs=None):
        means = (self.model.mean_training_predictions()
                 if getattr(self.model, "prediction_sums", None) is not None else None)
        for h, path in enumerate(self.paths):
            # Before the head: a run with its head file has these too.
            if means is not None:
                with atomic_path(Path(path).parent / MEAN_PREDICTIONS) as tmp:
                    np.save(tmp, means[h])
            self.model.objectives[h].save_state(Path(path).parent / STATE)
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




def run_callbacks(run_dir: Path, start) -> list:
    """The callbacks of a run's ``fit`` on images (:mod:`mlml_tf.end_to_end`): the atomic
    checkpoint at every epoch end, then ``start`` (a :class:`mlml_tf.trainer.StartStep`, which
    must come after it), the training log, TensorBoard and the malloc settings."""
    return [
        AtomicBackupAndRestore(str(run_dir / "backup")),
        start,  # after BackupAndRestore, which restores the optimizer's step in on_train_begin
        RunLogs([run_dir], own_logs=True),
        MallocSettings(),
    ]
