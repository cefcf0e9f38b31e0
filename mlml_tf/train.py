"""One run of the paper's protocol: (data folder, method, ratio, fold) on cached features.

The three methods differ only in the per-entry weight W = y * P + (1 - y) * w̄ fed to Keras as a
(batch, classes) ``sample_weight`` (SPEC 6):

- ``ce``: w̄ = 1, the class-balanced cross-entropy baseline;
- ``im-wce``: w̄ = the ignore-missing weights of the data folder (0 where a positive was hidden);
- ``cb-wce``: w̄ = the confidence weights of paper eq. 3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from mlml_tf.cache import FeatureCache
from mlml_tf.errors import DataError, write_bytes_atomic
from mlml_tf.labels import FPC_DEFAULT_COUNT, PROTOCOLS
from mlml_tf.layout import (
    GROUNDTRUTH,
    protocol_files,
    read_groundtruth,
    read_manifest,
    read_protocol_labels,
    read_run_labels,
    read_table,
    run_files,
)
from mlml_tf.methods import RunLabels, check_settings, method, method_params, params_key
from mlml_tf.runs import COMPLETE, HEAD_WEIGHTS

#: Where CB-WCE counts its co-occurrences (SPEC 4).
CB_SOURCES: tuple[str, ...] = ("observed", "oracle", "file")
#: The authors' CB-WCE weights over every row of the filtered set, in a published data folder.
GLOBAL_WEIGHTS = "negative_weights_global.csv"
#: Learning-rate schedules: the original's constant rate (SPEC 7), or the decay its code built.
LR_SCHEDULES: tuple[str, ...] = ("constant", "exponential-decay")
#: The shuffle buffer of the original's training and test streams (SPEC 7).
ORIGINAL_SHUFFLE_BUFFER = 100
#: Steps per epoch: floor(N / B) of the run's own rows, or of ``train1_0.0.csv`` as the original.
STEP_COUNTS: tuple[str, ...] = ("run", "original")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of one run; the defaults are the original's (SPEC 7) unless said otherwise.

    ``learning_rate``, ``rho``, ``epsilon``: Adadelta as the original ran it, TF1's
    ``AdadeltaOptimizer(0.1)`` with rho 0.95 and epsilon 1e-8 (Keras' default is 1e-7).
    ``lr_schedule``: "constant", the rate the original trained with (its
    ``exponential_decay(0.1, global_step, 1000, 0.95, staircase=True)`` never decayed, since
    ``global_step`` was not passed to ``minimize``); "exponential-decay" applies that decay
    (``decay_steps``, ``decay_rate``), as the code meant to.
    ``steps_per_epoch``: "run", floor(N / B) of the run's own training rows, each epoch one pass
    over a fresh permutation; "original", floor(N1 / B) with N1 the rows of ``train1_0.0.csv``
    for every fold and ratio, over a stream that repeats the rows pass after pass.
    ``shuffle_buffer``: 0 draws each pass over the training rows as a uniform permutation;
    the original passed the rows in file order through a shuffle buffer of 100
    (:func:`buffer_shuffle_order`), which keeps rows near their place in the file.
    ``cb_source``: "observed" counts confidence weights over the run's observed training labels
    (what a user has); "oracle" is the original's choice, the complete labels of the whole set;
    "file" reads the authors' ``negative_weights_global.csv`` from the data folder.
    ``pos_weight_source``: "run" computes P from the run's training labels; "original" from the
    complete labels of fold 1 (``train1_0.0.csv``), for every run, as the original did.
    ``validation_fraction``: held-out training rows on which per-class thresholds are tuned.
    ``from_logits``: the loss from logits (numerically stable); False trains on clipped
    probabilities as the original's weighted methods did.
    ``faithful_scoring``: predict the test rows as the original did, in full batches of a
    stream shuffled with a buffer of 100, the last N mod B rows left at zero and scored.
    ``mixed_precision``: the heads compute in float16 (their variables, Adadelta and the loss
    stay float32, with Keras' loss scaling), for GPUs with tensor cores; off by default, since
    the paper's arithmetic is float32.
    ``jit_compile``: compile the training step with XLA: "auto" is Keras' choice (on a GPU,
    not on a CPU, where it made the side-by-side step of the demo's heads 1.7 times slower),
    or True / False.
    ``protocol``: whose training labels the run reads (METHODS.md section 2): "paper" (``ratio``
    the share of hidden positives, the original layout), "rps" (``ratio`` the probability of an
    unknown entry), "fpc" (``count`` annotated positives and negatives per class) or
    "single-positive"; see :func:`mlml_tf.layout.split_protocol`.
    ``params``: the method's hyper-parameters that differ from its defaults, as (name, value)
    pairs (:func:`mlml_tf.methods.method_params`).
    """

    method: str
    ratio: float
    fold: int
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.1
    lr_schedule: str = "constant"
    decay_rate: float = 0.95
    decay_steps: int = 1000
    rho: float = 0.95
    epsilon: float = 1e-8
    steps_per_epoch: str = "run"
    shuffle_buffer: int = 0
    head: str = "original"
    seed: int = 0
    cb_source: str = "observed"
    pos_weight_source: str = "run"
    validation_fraction: float = 0.0
    strategy: str = "default"
    from_logits: bool = True
    faithful_scoring: bool = False
    mixed_precision: bool = False
    jit_compile: bool | str = "auto"
    protocol: str = "paper"
    count: int = FPC_DEFAULT_COUNT
    params: tuple = ()

    def __post_init__(self) -> None:
        chosen = method(self.method)
        object.__setattr__(self, "params", params_key(dict(self.params)))
        method_params(self.method, dict(self.params))
        if not self.from_logits and not chosen.loss_input:
            raise DataError(f"the loss of {self.method} reads logits: from_logits=False (the "
                            "original's clipped probabilities) is for the paper's methods")
        if self.protocol not in PROTOCOLS:
            raise DataError(f"unknown protocol {self.protocol!r}; use one of "
                            f"{', '.join(PROTOCOLS)}")
        if self.protocol == "fpc" and (int(self.count) != self.count or self.count < 1):
            raise DataError(f"the FPC count must be a whole number of at least 1, not "
                            f"{self.count!r}")
        if self.cb_source not in CB_SOURCES:
            raise DataError(f"cb_source must be one of {', '.join(CB_SOURCES)}, "
                            f"not {self.cb_source!r}")
        if self.pos_weight_source not in ("run", "original"):
            raise DataError("pos_weight_source must be 'run' or 'original', "
                            f"not {self.pos_weight_source!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise DataError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                            f"not {self.lr_schedule!r}")
        if self.steps_per_epoch not in STEP_COUNTS:
            raise DataError(f"steps_per_epoch must be one of {', '.join(STEP_COUNTS)}, "
                            f"not {self.steps_per_epoch!r}")
        if self.shuffle_buffer < 0:
            raise DataError(f"shuffle_buffer must be 0 or more, not {self.shuffle_buffer}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise DataError(f"validation_fraction {self.validation_fraction} is outside [0, 1)")
        if self.jit_compile not in (True, False, "auto"):
            raise DataError(f"jit_compile must be True, False or 'auto', not {self.jit_compile!r}")


#: Settings added after mlml-tf 0.2, left out of a run's digest at their default value: a run
#: of 0.2 keeps its folder and stays complete.
_SETTINGS_SINCE_0_2: tuple[str, ...] = ("mixed_precision", "jit_compile", "protocol", "count",
                                        "params")


def config_settings(config: RunConfig) -> dict:
    """The settings of a run as its digest counts them (:func:`run_digest`)."""
    settings = dataclasses.asdict(config)
    for field in dataclasses.fields(RunConfig):
        if field.name in _SETTINGS_SINCE_0_2 and settings[field.name] == field.default:
            del settings[field.name]
    return settings


@dataclasses.dataclass
class RunData:
    """Arrays of one run: rows, the method's targets and entry weights W, and what its loss
    needs besides (``record``: P for the paper's methods, CSL's prior, EPR's k)."""

    classes: list[str]
    train_ids: np.ndarray
    train_labels: np.ndarray
    weights: np.ndarray
    pos_weight: np.ndarray | None
    test_ids: np.ndarray
    test_labels: np.ndarray
    label_digest: str
    record: dict = dataclasses.field(default_factory=dict)


def _files_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def protocol_value(config: RunConfig):
    """The value of the run's protocol: the ratio (paper, RPS), the count (FPC) or None."""
    return {"paper": config.ratio, "rps": config.ratio, "fpc": config.count}.get(config.protocol)


def run_params(config: RunConfig) -> dict:
    """The hyper-parameters of the run's method: its defaults and the run's ``params``."""
    return method_params(config.method, dict(config.params))


def load_run_data(data: str | os.PathLike, config: RunConfig,
                  prior: str | os.PathLike | None = None) -> RunData:
    """Read the run's files and compute its method's targets and weights
    (:mod:`mlml_tf.methods`); ``prior``: CSL's class prior file when its ``prior`` is "auto"."""
    data = Path(data)
    paper = config.protocol == "paper"
    if paper:
        files = read_run_labels(data, config.ratio, config.fold)
        paths = run_files(data, config.ratio, config.fold)
        used = [paths[k] for k in ("train", "negative_weights", "test")]
    else:
        files = read_protocol_labels(data, config.protocol, protocol_value(config), config.fold)
        paths = protocol_files(data, config.protocol, protocol_value(config), config.fold)
        used = [paths["train"], paths["test"]]
    train, test = files["train"], files["test"]
    first = run_files(data, 0.0, 1)["train"]
    if config.steps_per_epoch == "original":
        used.append(first)

    def groundtruth():
        used.append(data / GROUNDTRUTH)
        return read_groundtruth(data)

    def hidden_positives():
        if paper:
            # The paper's oracle file: 0 where a positive was hidden (SPEC 3).
            return files["negative_weights"].to_numpy() == 0
        return (train.to_numpy() == -1) & (labels.complete() == 1)

    def first_fold_labels():
        used.append(first)
        return read_table(first).to_numpy()

    def global_weights():
        used.append(data / GLOBAL_WEIGHTS)
        return global_confidence_weights(data, train, paths["train"])

    labels = RunLabels(train, paper, config, used, groundtruth, hidden_positives,
                       first_fold_labels, global_weights,
                       None if prior is None else Path(prior))
    y, weights, record = method(config.method).targets(labels, run_params(config))
    # NUS-WIDE files name their columns 0..80; the manifest knows the concepts.
    names = data_classes(data)
    pos_weight = record.get("pos_weight")
    return RunData(
        classes=names if len(names) == train.shape[1] else list(train.columns),
        train_ids=train.index.to_numpy(),
        train_labels=np.asarray(y, dtype=np.float32),
        weights=np.asarray(weights, dtype=np.float32),
        pos_weight=None if pos_weight is None else np.asarray(pos_weight, np.float32),
        test_ids=test.index.to_numpy(),
        test_labels=test.to_numpy().astype(np.float32),
        label_digest=_files_digest(used),
        record=record,
    )


def global_confidence_weights(data: str | os.PathLike, train,
                              train_path: str | os.PathLike) -> np.ndarray:
    """The authors' CB-WCE weights, ``negative_weights_global.csv`` of a published data folder,
    for the rows of ``train`` (looked up by id).

    The file holds one row per image of the filtered set (SPEC 4); its columns must be the
    training table's and its ids must cover the training ids. The loss uses a weight only where
    the run's label is 0.
    """
    from mlml_tf.layout import check_same_table, read_table

    path = Path(data) / GLOBAL_WEIGHTS
    table = read_table(path, "weights")
    # Columns only: the file has other rows than the training table.
    check_same_table(train.iloc[:0], Path(train_path), table.iloc[:0], path)
    rows = table.index.get_indexer(train.index)
    if (rows < 0).any():
        missing = train.index[rows < 0]
        raise DataError(f"training id {missing[0]!r} has no row ({len(missing)} ids missing)",
                        file=path)
    return table.to_numpy()[rows]


def drop_skipped_images(run_data: RunData, skipped) -> tuple[RunData, dict]:
    """Leave out the rows whose images were skipped as unreadable when the cache was built."""
    if not len(skipped):
        return run_data, {"train": 0, "test": 0}
    keep_train = ~np.isin(run_data.train_ids, skipped)
    keep_test = ~np.isin(run_data.test_ids, skipped)
    kept = dataclasses.replace(
        run_data,
        train_ids=run_data.train_ids[keep_train],
        train_labels=run_data.train_labels[keep_train],
        weights=run_data.weights[keep_train],
        test_ids=run_data.test_ids[keep_test],
        test_labels=run_data.test_labels[keep_test],
    )
    return kept, {"train": int((~keep_train).sum()), "test": int((~keep_test).sum())}


def run_digest(config: RunConfig, run_data: RunData, cache: FeatureCache) -> str:
    """Hash of everything that determines a run's result: two settings, two folders."""
    content = {
        "config": config_settings(config),
        "labels": run_data.label_digest,
        "features": cache.manifest["ids_sha256"] + json.dumps(cache.settings, sort_keys=True),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def get_strategy(name: str = "default"):
    """A ``tf.distribute`` strategy by name: default, mirrored, multiworker or tpu."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU; without one, every logical CPU device (MirroredStrategy alone would take
        # only the first CPU).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise DataError(f"unknown strategy {name!r}")


def buffer_shuffle_order(n_rows: int, buffer_size: int, seed) -> np.ndarray:
    """The order in which a shuffle buffer of ``buffer_size`` passes ``n_rows`` rows on, as
    ``tf.data.Dataset.shuffle`` does (SPEC 7: the original's buffer of 100 images).

    The buffer starts with the first ``buffer_size`` rows; each step hands on a uniformly chosen
    row of the buffer and puts the next row of the file in its place. A row thus moves at most
    about ``buffer_size`` places ahead of where the file has it. ``buffer_size >= n_rows`` is a
    uniform permutation.
    """
    rng = np.random.default_rng(seed)
    if buffer_size >= n_rows:
        return rng.permutation(n_rows)
    draws = rng.random(n_rows)
    buffer = list(range(min(buffer_size, n_rows)))
    out = np.empty(n_rows, dtype=np.int64)
    following = len(buffer)
    for t in range(n_rows):
        i = int(draws[t] * len(buffer))
        out[t] = buffer[i]
        if following < n_rows:
            buffer[i] = following
            following += 1
        else:
            buffer[i] = buffer[-1]
            buffer.pop()
    return out


@functools.lru_cache(maxsize=4)
def _pass_order(n_rows: int, seed: int, index: int, buffer_size: int) -> np.ndarray:
    if buffer_size:
        return buffer_shuffle_order(n_rows, buffer_size, [seed, index])
    return np.random.default_rng([seed, index]).permutation(n_rows)


def batch_rows(n_rows: int, batch_size: int, seed: int, step: int,
               steps_per_epoch: int | None = None, shuffle_buffer: int = 0) -> np.ndarray:
    """Indices (into ``n_rows`` rows) of training batch ``step``: a function of (seed, step) only.

    With ``steps_per_epoch=None`` an epoch is one pass over the rows in an order seeded by
    (seed, epoch), cut into floor(N / B) batches; the last N mod B rows of the pass are left out.
    With a step count (the original's floor(N1 / B), SPEC 7) the passes form one endless stream,
    as the original's repeated dataset, and batch k is positions kB .. kB + B - 1 of it.
    A pass is a uniform permutation, or with ``shuffle_buffer`` the original's order: the rows
    in file order through a shuffle buffer of that size (:func:`buffer_shuffle_order`).
    """
    if steps_per_epoch is None:
        epoch, pos = divmod(step, n_rows // batch_size)
        order = _pass_order(n_rows, seed, epoch, shuffle_buffer)
        return order[pos * batch_size : (pos + 1) * batch_size]
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    passes, offsets = np.divmod(positions, n_rows)
    out = np.empty(batch_size, dtype=np.int64)
    for p in np.unique(passes):
        out[passes == p] = _pass_order(n_rows, seed, int(p), shuffle_buffer)[offsets[passes == p]]
    return out


def batch_index_stream(n_rows: int, batch_size: int, seed: int, start_step, epochs: int = 1,
                       steps_per_epoch: int | None = None, shuffle_buffer: int = 0):
    """``(dataset of the row indices of each training batch, steps per epoch)``.

    The batches of ``epochs`` epochs from step ``start_step()`` on, each from :func:`batch_rows`
    (a function of seed and step only). ``start_step()`` is called when the stream starts, after
    Keras' ``on_train_begin``, so that a run resumed by BackupAndRestore sees exactly the
    batches an uninterrupted one would have seen. ``steps_per_epoch=None`` makes an epoch one
    pass over the rows, floor(N / B) steps; a number sets the steps of an epoch over a repeating
    stream, as the original's floor(N1 / B).
    """
    import tensorflow as tf

    steps = step_count(n_rows, batch_size, steps_per_epoch)

    def batch_indices():
        for step in range(int(start_step()), epochs * steps):
            yield batch_rows(n_rows, batch_size, seed, step, steps_per_epoch, shuffle_buffer)

    dataset = tf.data.Dataset.from_generator(
        batch_indices, output_signature=tf.TensorSpec((batch_size,), tf.int64)
    )
    return dataset, steps


def step_count(n_rows: int, batch_size: int, steps_per_epoch: int | None = None) -> int:
    """Steps of an epoch: floor(N / B), one pass over the rows, or ``steps_per_epoch``."""
    if n_rows // batch_size == 0:
        raise DataError(f"{n_rows} training rows make no batch of {batch_size}")
    steps = n_rows // batch_size if steps_per_epoch is None else int(steps_per_epoch)
    if steps < 1:
        raise DataError(f"an epoch of {steps} steps trains nothing")
    return steps


def memory_budget() -> int:
    """Bytes of training features held in memory rather than streamed from the cache file:
    a quarter of the machine's memory."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def training_stream(cache: FeatureCache, rows: np.ndarray, batch_size: int, seed: int,
                    start_step, epochs: int = 1, steps_per_epoch: int | None = None,
                    shuffle_buffer: int = 0, in_memory: bool | None = None):
    """``(stream, steps per epoch, held features)`` of the training batches of ``epochs`` epochs.

    Each element of the stream holds the positions in ``rows`` of one batch, from
    :func:`batch_index_stream` (the k-th batch depends only on the seed and k; ``start_step``,
    ``steps_per_epoch`` and ``shuffle_buffer`` as there). ``in_memory``: the rows' features are
    returned (float16, as cached) to be held on the device, and the stream carries the positions
    only (:class:`mlml_tf.trainer.TrainingRows` gathers each batch); otherwise each element is
    ``(positions, features)``, read from the cache file, and memory does not grow with the
    number of rows. Default: in memory when the features take at most :func:`memory_budget`.
    The batches are the same either way.
    """
    import tensorflow as tf

    ds, steps = batch_index_stream(len(rows), batch_size, seed, start_step, epochs,
                                   steps_per_epoch, shuffle_buffer)
    if in_memory is None:
        in_memory = cache.nbytes(len(rows)) <= memory_budget()
    if in_memory:
        return ds.prefetch(2), steps, cache.read_float16(rows)

    def load(positions):
        x = tf.numpy_function(lambda p: cache.read(rows[p]), [positions], tf.float32)
        x.set_shape((batch_size, *cache.shape))
        return positions, x

    return ds.map(load, num_parallel_calls=1).prefetch(2), steps, None


def epoch_steps(data: str | os.PathLike, config: RunConfig) -> int | None:
    """The ``steps_per_epoch`` a run's stream takes: None (one pass over the run's rows) or, with
    ``config.steps_per_epoch == "original"``, :func:`original_steps_per_epoch`."""
    if config.steps_per_epoch == "original":
        return original_steps_per_epoch(data, config.batch_size)
    return None


def original_steps_per_epoch(data: str | os.PathLike, batch_size: int = 32) -> int:
    """floor(N1 / B), N1 the rows of ``train1_0.0.csv``: the original's steps per epoch for every
    fold and ratio (SPEC 7)."""
    from mlml_tf.layout import read_table

    return len(read_table(run_files(data, 0.0, 1)["train"])) // batch_size


def adadelta(config: RunConfig):
    """The optimizer of a run: Adadelta as TF1 ran it in the original (SPEC 7)."""
    import keras

    rate = config.learning_rate
    if config.lr_schedule == "exponential-decay":
        rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, config.decay_steps, config.decay_rate, staircase=True
        )
    from mlml_tf.trainer import FusedAdadelta

    return FusedAdadelta(learning_rate=rate, rho=config.rho, epsilon=config.epsilon)


#: The default time between two checkpoints of a training (at epoch ends): a kill loses at most
#: this much training; a checkpoint of the heads of a fold's runs side by side is their weights
#: and Adadelta's two accumulators (0.7 GB for the demo's 12 runs, 12 GB for the paper's heads).
BACKUP_MINUTES = 10.0


def run_callbacks(run_dir: Path, start) -> list:
    """The callbacks of a run's ``fit`` on images (:mod:`mlml_tf.end_to_end`): the atomic
    checkpoint at every epoch end, then ``start`` (a :class:`mlml_tf.trainer.StartStep`, which
    must come after it), the training log, TensorBoard and the malloc settings."""
    from mlml_tf.trainer import AtomicBackupAndRestore, MallocSettings, RunLogs

    return [
        AtomicBackupAndRestore(str(run_dir / "backup")),
        start,  # after BackupAndRestore, which restores the optimizer's step in on_train_begin
        RunLogs([run_dir], own_logs=True),
        MallocSettings(),
    ]


def predict(model, cache: FeatureCache, rows: np.ndarray, from_logits: bool = True,
            batch_size: int = 256) -> np.ndarray:
    """Probabilities for every row (the original dropped the last N mod 32 rows, SPEC 7)."""
    import tensorflow as tf

    out = []
    for start in range(0, len(rows), batch_size):
        outputs = model(cache.read(rows[start : start + batch_size]), training=False)
        out.append((tf.sigmoid(outputs) if from_logits else outputs).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def heads_per_model(features_shape, num_classes: int, head: str = "original") -> int:
    """How many heads train side by side by default: as many as :func:`memory_budget` holds,
    each with its weights, gradients and Adadelta's two accumulators (16 bytes a parameter:
    1.3 GB for the paper's head), and at least one."""
    from mlml_tf.model import head_parameters

    return max(1, memory_budget() // (16 * head_parameters(features_shape, num_classes, head)))


#: RunConfig fields that change only a run's labels, entry weights and loss: runs that differ in
#: nothing else and train on the same rows can train side by side (:func:`train_runs`).
PER_HEAD_FIELDS: tuple[str, ...] = ("method", "ratio", "cb_source", "pos_weight_source",
                                    "protocol", "count", "params")


def run_loss(config: RunConfig, run_data: RunData, fit_idx: np.ndarray | None = None):
    """The loss of a run's head (:class:`mlml_tf.trainer.HeadTrainer`): ``(loss,
    on_probabilities)``, its method's Keras loss and whether it reads probabilities, or, for a
    method that revises its labels while it trains, its
    :class:`mlml_tf.objectives.HeadObjective` over the targets of the training rows
    ``fit_idx`` (all by default), the rows the trainer's stream indexes."""
    chosen = method(config.method)
    params = run_params(config)
    if chosen.objective is not None:
        labels = run_data.train_labels if fit_idx is None else run_data.train_labels[fit_idx]
        check_settings(config.method, params, config.epochs, labels.shape[1])
        return chosen.objective(params, run_data.record, labels, config.seed)
    loss = chosen.loss(params, config.from_logits, run_data.record)
    return loss, chosen.on_probabilities


def together_key(config: RunConfig, run_data: RunData) -> str:
    """Runs with equal keys read the same training rows in the same order and train with the
    same settings: their heads can be trained side by side in one model."""
    from mlml_tf.cache import ids_digest

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
    ``evaluation_results.txt``, ``results_report.csv``), ``metrics.json``, ``training_log.csv``,
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
               backup_minutes: float = BACKUP_MINUTES):
    """Train one head on the cached features of every training row of ``run_data`` and return
    it, its trained weights loaded: the training of :func:`train_run` without its test rows and
    result files, for labels that come from no data folder (:mod:`mlml_tf.own_model`).

    ``run_dir`` holds the checkpoint (a killed training resumes from it), ``training_log.csv``
    and ``head.weights.h5``; a head already written there is read back, not trained again.
    """
    import keras

    from mlml_tf.model import build_head

    run = _prepare(None, cache, run_dir, config, run_data)
    keras.utils.set_random_seed(config.seed)
    head = build_head(cache.shape, len(run_data.classes), head=config.head,
                      output="logits" if config.from_logits else "probabilities",
                      seed=config.seed)
    if not (run.run_dir / HEAD_WEIGHTS).exists():
        _train_heads(None, cache, [run], head, get_strategy(config.strategy), verbose,
                     callbacks, backup_minutes, None)
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
    import keras

    from mlml_tf.model import build_head

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
    from mlml_tf.model import build_heads
    from mlml_tf.trainer import (
        AtomicBackupAndRestore,
        EpochCounter,
        HeadTrainer,
        MallocSettings,
        RunLogs,
        SaveHeads,
        StartStep,
        TimedCallbacks,
        TrainingRows,
    )

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
                [run_loss(r.config, r.data, r.fit_idx) for r in runs],
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
    from mlml_tf.runs import write_run_outputs

    config = run.config
    with _timed(phases, "predict"):
        head.load_weights(run.run_dir / HEAD_WEIGHTS)
        thresholds = None
        if len(run.val_idx):
            from mlml_tf.metrics import tune_thresholds

            val_prob = predict(head, cache, run.train_rows[run.val_idx], config.from_logits)
            thresholds = tune_thresholds(run.data.train_labels[run.val_idx], val_prob)
        probabilities, test_labels = scored_test_rows(
            lambda idx: predict(head, cache, run.test_rows[idx], config.from_logits),
            run.data.test_labels, config)
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


#: The class prior written by CSL's temporary model, in its run folder.
CLASS_PRIOR = "class_prior.csv"


def estimate_class_prior(data: str | os.PathLike, cache: FeatureCache,
                         run_dir: str | os.PathLike, config: RunConfig, run_data: RunData,
                         estimate: str = "clean", verbose: int | str = "auto",
                         log=print) -> Path:
    """Train CSL's temporary model, the run ``config`` in ``run_dir`` (skipped when complete,
    resumed when killed), and write its class prior, ``run_dir/class_prior.csv``.

    ``estimate``: "clean", the mean predicted probability of each class over the training rows
    by the trained model; "running", the authors' estimate, the mean over every training batch
    of every epoch, each taken before that step's update.
    """
    from mlml_tf.errors import remove_stale_temporaries
    from mlml_tf.layout import table_classes
    from mlml_tf.methods import PRIOR_ESTIMATES, class_prior_bytes
    from mlml_tf.model import build_head
    from mlml_tf.trainer import MEAN_PREDICTIONS

    if estimate not in PRIOR_ESTIMATES:
        raise DataError(f"prior_estimate must be one of {', '.join(PRIOR_ESTIMATES)}, "
                        f"not {estimate!r}")
    run_dir = Path(run_dir)
    path = run_dir / CLASS_PRIOR
    if path.exists():
        return path
    if not is_complete(run_dir, run_digest(config, run_data, cache)):
        remove_stale_temporaries(run_dir)
        log(f"csl: the class prior's temporary model (ignore mode) -> {run_dir}")
        train_runs(data, cache, [(run_dir, config, run_data)], verbose=verbose,
                   mean_predictions=estimate == "running")
    if estimate == "running":
        prior = np.load(run_dir / MEAN_PREDICTIONS)
    else:
        run = _prepare(data, cache, run_dir, config, run_data)
        head = build_head(cache.shape, len(run_data.classes), head=config.head)
        head.load_weights(run_dir / HEAD_WEIGHTS)
        prior = predict(head, cache, run.train_rows[run.fit_idx]).mean(axis=0)
    files = (run_files(data, config.ratio, config.fold) if config.protocol == "paper" else
             protocol_files(data, config.protocol, protocol_value(config), config.fold))
    write_bytes_atomic(path, class_prior_bytes(table_classes(files["train"]), prior))
    return path


def validation_split(n_rows: int, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rows to fit, rows to tune per-class thresholds on): a seeded ``validation_fraction``."""
    fit_idx, val_idx = np.arange(n_rows), np.arange(0)
    if config.validation_fraction > 0:
        order = np.random.default_rng([config.seed, 7]).permutation(n_rows)
        n_val = max(1, int(round(config.validation_fraction * n_rows)))
        val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return fit_idx, val_idx


def scored_test_rows(predict_rows, test_labels: np.ndarray,
                     config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of the test rows, as the run's results score them.

    ``predict_rows(idx)`` gives the probabilities of the test rows ``idx``. By default every
    row, in file order. With ``faithful_scoring`` as the original (SPEC 7): its test stream was
    shuffled like its training stream, with a buffer of 100, and predicted in full batches only,
    so the last N mod B rows of that order stay zero in predictions and labels and are scored.
    """
    n = len(test_labels)
    if not config.faithful_scoring:
        return predict_rows(np.arange(n)), test_labels
    order = buffer_shuffle_order(n, ORIGINAL_SHUFFLE_BUFFER, [config.seed, 1])
    kept = n - n % config.batch_size
    probabilities = np.zeros(test_labels.shape, dtype=np.float32)
    probabilities[:kept] = predict_rows(order[:kept])
    labels = test_labels[order]
    labels[kept:] = 0
    return probabilities, labels


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
    import platform

    import keras
    import sklearn
    import tensorflow as tf

    from mlml_tf import __version__

    return {"mlml_tf": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def mark_complete(run_dir: str | os.PathLike, digest: str, metrics: dict) -> None:
    """Write the completion marker, last: a run folder without it is not a result."""
    write_bytes_atomic(Path(run_dir) / COMPLETE,
                       json.dumps({"settings_sha256": digest, "metrics": metrics},
                                  sort_keys=True, indent=1).encode() + b"\n")


def is_complete(run_dir: str | os.PathLike, digest: str) -> bool:
    path = Path(run_dir) / COMPLETE
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("settings_sha256") == digest
    except json.JSONDecodeError:
        return False


def data_classes(data: str | os.PathLike) -> list[str]:
    manifest = read_manifest(data)
    return manifest.get("class_names") or manifest.get("classes") or []
