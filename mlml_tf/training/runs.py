"""Runs trained side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import sklearn
import tensorflow as tf

from mlml_tf import __version__
from mlml_tf.errors import DataError
from mlml_tf.features.cache import FeatureCache, ids_digest
from mlml_tf.losses.build import head_objective
from mlml_tf.losses.objectives import HeadObjective
from mlml_tf.methods.registry import check_settings, method
from mlml_tf.metrics.report import tune_thresholds
from mlml_tf.runs.outputs import HEAD_WEIGHTS, write_run_outputs
from mlml_tf.settings import BACKUP_MINUTES, ORIGINAL_SHUFFLE_BUFFER, PER_HEAD_FIELDS, RunConfig
from mlml_tf.training.callbacks import (
    AtomicBackupAndRestore,
    EpochCounter,
    MallocSettings,
    RunLogs,
    SaveHeads,
    StartStep,
    TimedCallbacks,
)
from mlml_tf.training.data import RunData, drop_skipped_images, load_run_data, run_params
from mlml_tf.training.heads import build_head, build_heads, head_parameters
from mlml_tf.training.optimizer import adadelta, get_strategy
from mlml_tf.training.record import mark_complete, run_digest
from mlml_tf.training.schedule import (
    buffer_shuffle_order,
    epoch_steps,
    memory_budget,
    step_count,
    validation_split,
)
from mlml_tf.training.stream import training_stream
from mlml_tf.training.trainer import HeadTrainer, TrainingRows


def run_info(config: RunConfig, run_data: RunData, fit_idx: np.ndarray, val_idx: np.ndarray,
             steps: int, strategy, digest: str, dropped: dict) -> dict:
    """What ``metrics.json`` records of every run: settings, P, row counts, versions."""
    return {
        "config": dataclasses.asdict(config),
        "pos_weight": None if run_data.pos_weight is None else run_data.pos_weight.tolist(),
        **{key: value for key, value in run_data.record.items() if key != "pos_weight"},
        "train_rows": int(len(fit_idx)),
        "validation_rows": int(len(val_idx)),
        "test_rows": int(len(run_data.test_labels)),
        "steps_per_epoch": int(steps),
        "replicas": int(strategy.num_replicas_in_sync),
        "versions": library_versions(),
        "settings_sha256": digest,
        "rows_without_image": dropped,
    }


def library_versions() -> dict:
    """The versions a result was made with, for ``metrics.json`` and a model's manifest."""
    return {"mlml_tf": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def predict(model, cache: FeatureCache, rows: np.ndarray, from_logits: bool = True,
            batch_size: int = 256) -> np.ndarray:
    """Probabilities for every row (the original dropped the last N mod 32 rows, docs/original.md
    section 7)."""

    out = []
    for start in range(0, len(rows), batch_size):
        outputs = model(cache.read(rows[start : start + batch_size]), training=False)
        out.append((tf.sigmoid(outputs) if from_logits else outputs).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def heads_per_model(features_shape, num_classes: int, head: str = "original") -> int:
    """How many heads train side by side by default: as many as :func:`memory_budget` holds,
    each with its weights, gradients and Adadelta's two accumulators (16 bytes a parameter:
    1.3 GB for the paper's head), and at least one."""
    return max(1, memory_budget() // (16 * head_parameters(features_shape, num_classes, head)))


def run_objective(config: RunConfig, run_data: RunData,
                  fit_idx: np.ndarray | None = None) -> HeadObjective:
    """The objective of a run's head (:class:`mlml_tf.training.trainer.HeadTrainer`): its
    method's loss (:func:`mlml_tf.losses.head_objective`) over the targets of the training rows
    ``fit_idx`` (all by default), the rows the trainer's stream indexes; hyper-parameters out of
    range for the run's epochs and classes are refused first."""

    params = run_params(config)
    labels = run_data.train_labels if fit_idx is None else run_data.train_labels[fit_idx]
    check_settings(config.method, params, config.epochs, labels.shape[1])
    return head_objective(method(config.method), params, run_data.record, labels, config.seed,
                          config.from_logits)


def together_key(config: RunConfig, run_data: RunData) -> str:
    """Runs with equal keys read the same training rows in the same order and train with the
    same settings: their heads can be trained side by side in one model."""

    shared = {k: v for k, v in dataclasses.asdict(config).items() if k not in PER_HEAD_FIELDS}
    content = json.dumps(shared, sort_keys=True) + ids_digest(run_data.train_ids)
    return hashlib.sha256(content.encode()).hexdigest()


@dataclasses.dataclass
class _Run:
    """One run of :func:`train_runs`, its rows resolved against the feature cache."""
    run_dir: Path
    config: RunConfig
    data: RunData
    digest: str
    dropped: dict
    train_rows: np.ndarray
    test_rows: np.ndarray
    fit_idx: np.ndarray
    val_idx: np.ndarray


def _prepare(data, cache: FeatureCache, run_dir, config: RunConfig,
             run_data: RunData | None) -> _Run:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_data = run_data or load_run_data(data, config)
    digest = run_digest(config, run_data, cache)
    run_data, dropped = drop_skipped_images(run_data, cache.manifest.get("skipped", []))
    train_rows = cache.rows_of(run_data.train_ids, "training labels")
    fit_idx, val_idx = validation_split(len(train_rows), config)
    return _Run(run_dir, config, run_data, digest, dropped, train_rows,
                cache.rows_of(run_data.test_ids, "test labels"), fit_idx, val_idx)


def train_run(data: str | os.PathLike, cache: FeatureCache, run_dir: str | os.PathLike,
              config: RunConfig, run_data: RunData | None = None, verbose: int | str = "auto",
              extra: dict | None = None, callbacks: list | tuple = (),
              backup_minutes: float = BACKUP_MINUTES) -> dict:
    """Train the head of one run on cached features and write its results to ``run_dir``.

    Writes the original's outputs (``predictions.out``, ``test_ground_truth_classes.txt``,
    ``evaluation_results.txt``, ``results_report.csv``), ours beside them (``metrics.json``,
    ``results_extra.csv``, ``evaluation_extra.txt``), ``training_log.csv``,
    TensorBoard logs, the trained head (``head.weights.h5``) and, last, ``complete.json`` with
    the digest of the run's settings. Resumes from ``run_dir/backup`` if an earlier attempt was
    killed; a checkpoint is written at an epoch end once ``backup_minutes`` have passed since
    the last one (0: at every epoch end). ``callbacks`` are added to ``fit``'s own (they act
    at epoch ends: an epoch is one call of the compiled step loop). The case of one run of
    :func:`train_runs`.

    Returns:
        The metrics dictionary.
    """
    return train_runs(data, cache, [(run_dir, config, run_data)], verbose=verbose, extra=extra,
                      callbacks=callbacks, backup_minutes=backup_minutes)[0]


def train_head(cache: FeatureCache, run_dir: str | os.PathLike, config: RunConfig,
               run_data: RunData, verbose: int | str = "auto", callbacks: list | tuple = (),
               backup_minutes: float = BACKUP_MINUTES, data: str | os.PathLike | None = None,
               mean_predictions: bool = False):
    """Train one head on the cached features of the training rows of ``run_data`` and return
    it, its trained weights loaded: the training of :func:`train_run` without its test rows and
    result files (a model of one's own data, an auxiliary model's prior).

    ``run_dir`` holds the checkpoint (a killed training resumes from it), ``training_log.csv``
    and ``head.weights.h5``; a head already written there is read back, not trained again.
    ``data``: the data folder, where the run's steps per epoch are the original's.
    ``mean_predictions``: see :func:`train_runs`.
    """
    run = _prepare(data, cache, run_dir, config, run_data)
    keras.utils.set_random_seed(config.seed)
    head = build_head(cache.shape, len(run_data.classes), head=config.head,
                      output="logits" if config.from_logits else "probabilities",
                      seed=config.seed)
    if not (run.run_dir / HEAD_WEIGHTS).exists():
        _train_heads(data, cache, [run], head, get_strategy(config.strategy), verbose,
                     callbacks, backup_minutes, None, mean_predictions)
    head.load_weights(run.run_dir / HEAD_WEIGHTS)
    return head


def train_runs(data: str | os.PathLike, cache: FeatureCache, runs, verbose: int | str = "auto",
               extra: dict | None = None, callbacks: list | tuple = (),
               backup_minutes: float = BACKUP_MINUTES, phases: dict | None = None,
               mean_predictions: bool = False) -> list[dict]:
    """Train the heads of several runs side by side in one model, then write each run's results
    as :func:`train_run` does.

    The runs must share their training rows and every setting but those of
    :data:`PER_HEAD_FIELDS` (:func:`together_key`), as the runs of one fold do: every step reads
    one batch and updates each head with the gradient of its own loss
    (:class:`mlml_tf.trainer.HeadTrainer`), so each run gets the result it gets alone (to float
    rounding), and the first layer's input is multiplied by all the heads' weights in one wide
    matrix product. The checkpoint of runs trained together lives in the first run's folder,
    under a name that says which runs they are, so that an attempt with other runs never
    resumes from it.

    Args:
        data: the data folder.
        cache: the feature cache.
        runs: ``(run_dir, config, run_data or None)`` of each run.
        verbose, extra, callbacks: as in :func:`train_run`.
        backup_minutes: the least time between two checkpoints (0: every epoch end).
        mean_predictions: also write, beside each head, its mean predicted probabilities over
            every training batch (CSL's running class prior).
        phases: if given, filled with the seconds spent in each phase, for benchmarks:
            ``prepare`` (labels, weights, digests), ``build`` (model, optimizer, held
            features), ``fit`` (of which ``callbacks``, and ``epochs``: the seconds of each
            epoch's compiled step loop, tracing included in the first), ``predict`` and
            ``results`` (result files).

    Returns:
        The metrics dictionary of each run, in order.
    """
    with _timed(phases, "prepare"):
        runs = [_prepare(data, cache, *run) for run in runs]
        if len({together_key(r.config, r.data) for r in runs}) > 1:
            raise DataError("runs trained together must share their training rows and every "
                            f"setting but {', '.join(PER_HEAD_FIELDS)}")
    first = runs[0].config
    with _timed(phases, "build"):
        strategy = get_strategy(first.strategy)
        keras.utils.set_random_seed(first.seed)
        # One head of the original layout: every head's start, then the layout in which each
        # trained head is written and read back to predict.
        head = build_head(cache.shape, len(runs[0].data.classes), head=first.head,
                          output="logits" if first.from_logits else "probabilities",
                          seed=first.seed)
    # Killed after training but before the results were written: those heads are done.
    todo = [r for r in runs if not (r.run_dir / HEAD_WEIGHTS).exists()]
    if todo:
        steps = _train_heads(data, cache, todo, head, strategy, verbose, callbacks,
                             backup_minutes, phases, mean_predictions)
    else:
        steps = step_count(len(runs[0].fit_idx), first.batch_size, epoch_steps(data, first))
    info = {"feature_cache": cache.manifest["settings"], **(extra or {})}
    return [_finish(run, head, cache, steps, strategy, info, phases) for run in runs]


@contextlib.contextmanager
def _timed(phases: dict | None, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        if phases is not None:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


def _train_heads(data, cache: FeatureCache, runs: list[_Run], head, strategy, verbose,
                 callbacks, backup_minutes: float, phases: dict | None,
                 mean_predictions: bool = False) -> int:
    """Train the heads of ``runs`` side by side, each from the weights of ``head``, and write
    each one's ``head.weights.h5``."""
    config, first = runs[0].config, runs[0]
    start = StartStep()
    with _timed(phases, "build"):
        rows = first.train_rows[first.fit_idx]
        stream, steps, held = training_stream(
            cache, rows, config.batch_size, config.seed, start_step=lambda: start.step,
            epochs=config.epochs, steps_per_epoch=epoch_steps(data, config),
            shuffle_buffer=config.shuffle_buffer,
        )
        labels = np.stack([r.data.train_labels[r.fit_idx] for r in runs], axis=1)
        weights = np.stack([r.data.weights[r.fit_idx] for r in runs], axis=1)
        dtype = "mixed_float16" if config.mixed_precision else None
        with strategy.scope():
            heads = build_heads(cache.shape, labels.shape[-1], len(runs), head=head,
                                dtype=dtype)
            trainer = HeadTrainer(
                heads, TrainingRows(labels, weights, held),
                [run_objective(r.config, r.data, r.fit_idx) for r in runs],
                mean_predictions=mean_predictions, dtype=dtype,
                estimator_optimizer=lambda multiplier: adadelta(dataclasses.replace(
                    config, learning_rate=config.learning_rate * multiplier)))
            # One call of the compiled step loop per epoch: Keras' per-step Python work is paid
            # once an epoch, and callbacks act at epoch ends as they did. Keras 3's loop of
            # several steps fails under tf.distribute strategies, which take one step a call.
            trainer.compile(optimizer=adadelta(config),
                            steps_per_execution=steps if config.strategy == "default" else 1,
                            jit_compile=config.jit_compile)
        run_dirs = [r.run_dir for r in runs]
        if len(runs) == 1:
            backup = first.run_dir / "backup"
        else:
            together = hashlib.sha256(" ".join(r.digest for r in runs).encode()).hexdigest()
            backup = first.run_dir / f"backup-together-{together[:16]}"
        fit_callbacks = [
            # Before BackupAndRestore, which deletes the checkpoint when training ends.
            SaveHeads(heads, head, [d / HEAD_WEIGHTS for d in run_dirs]),
            AtomicBackupAndRestore(str(backup), backup_minutes),
            start,  # after BackupAndRestore, which restores the optimizer's step
            EpochCounter(),
            RunLogs(run_dirs),
            MallocSettings(),
            *callbacks,
        ]
        if phases is not None:
            fit_callbacks = [TimedCallbacks(fit_callbacks, phases)]
    with _timed(phases, "fit"):
        trainer.fit(stream, epochs=config.epochs, steps_per_epoch=steps, verbose=verbose,
                    shuffle=False, callbacks=fit_callbacks)
    return steps


def _finish(run: _Run, head, cache: FeatureCache, steps: int, strategy, extra: dict,
            phases: dict | None) -> dict:
    """Predict with the run's trained head and write its results, ``complete.json`` last."""

    config = run.config
    with _timed(phases, "predict"):
        head.load_weights(run.run_dir / HEAD_WEIGHTS)
        thresholds = None
        if len(run.val_idx):

            val_prob = predict(head, cache, run.train_rows[run.val_idx], config.from_logits)
            thresholds = tune_thresholds(run.data.train_labels[run.val_idx], val_prob)
        probabilities, test_labels = scored_test_rows(
            lambda idx: predict(head, cache, run.test_rows[idx], config.from_logits),
            run.data.test_labels, config, run.dropped["test"])
    with _timed(phases, "results"):
        info = {**run_info(config, run.data, run.fit_idx, run.val_idx, steps, strategy,
                           run.digest, run.dropped), **extra}
        metrics = write_run_outputs(run.run_dir, test_labels, probabilities, run.data.classes,
                                    thresholds=thresholds, extra=info)
        mark_complete(run.run_dir, run.digest, metrics)
        # Checkpoints of attempts that trained this run with other runs: never to be resumed.
        for stale in run.run_dir.glob("backup-together-*"):
            shutil.rmtree(stale, ignore_errors=True)
    return metrics


def scored_test_rows(predict_rows, test_labels: np.ndarray, config: RunConfig,
                     left_out: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of the test rows, as the run's results score them.

    ``predict_rows(idx)`` gives the probabilities of the test rows ``idx``. By default every
    row, in file order. With ``faithful_scoring`` as the original (docs/original.md section 7): its
    test stream was shuffled like its training stream, with a buffer of 100, and predicted in full
    batches only, so the last N mod B rows of that order stay zero in predictions and labels and are
    scored. With ``faithful_test_count`` too, N counts the ``left_out`` test rows whose image
    was left out, as the original's arrays did (one row per line of the test file), while its
    stream carried only the images there were: B floor(N / B) rows are predicted from them,
    from a new shuffled pass of them when they are fewer (its stream repeated), and the rest,
    as many as the left-out rows and N mod B, are scored as zeros.
    """

    n = len(test_labels)
    if not config.faithful_scoring:
        return predict_rows(np.arange(n)), test_labels
    total = n + (int(left_out) if config.faithful_test_count else 0)
    kept = total - total % config.batch_size
    if kept and not n:
        raise DataError(f"none of the {total} test rows has an image to predict")
    passes = [buffer_shuffle_order(n, ORIGINAL_SHUFFLE_BUFFER, [config.seed, 1])]
    while len(passes) * n < kept:
        passes.append(buffer_shuffle_order(n, ORIGINAL_SHUFFLE_BUFFER,
                                           [config.seed, 1, len(passes)]))
    order = np.concatenate(passes)[:kept]
    probabilities = np.zeros((total, test_labels.shape[1]), dtype=np.float32)
    labels = np.zeros((total, test_labels.shape[1]), dtype=test_labels.dtype)
    probabilities[:kept] = predict_rows(order)
    labels[:kept] = test_labels[order]
    return probabilities, labels
