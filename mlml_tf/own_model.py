"""A model of a user's own partially labelled images: train, save, load, predict, evaluate, export.

The same methods, losses and feature cache as the grid: the table's labels (1, 0, -1 or empty,
:mod:`mlml_tf.own_data`) become the method's targets and entry weights, the frozen backbone runs
once per image into a feature cache, and the head trains on it. ``fine_tune`` then unfreezes the
backbone's top layers and trains backbone and head together on the images, lightly augmented.

A model folder holds:

- ``model.keras``: one Keras model from a batch of images (uint8 or float values in [0, 255],
  any height and width) to class probabilities: resizing and scaling are its first layers, then
  the backbone and the head. It is built of Keras' own layers only, so
  ``keras.saving.load_model`` reads it without importing mlml_tf.
- ``model.json``: the format, its version, the classes, the preprocessing and every setting.
- ``classes.txt``, ``thresholds.csv`` (per class, tuned on the validation rows),
  ``training_log.csv``, ``validation/`` (the validation rows' results, written as a grid run's),
  and ``README.md``, the model card.

Every file of a model folder is written in a hidden folder beside it, which is renamed into
place last: a folder that exists is complete.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError, atomic_path, write_bytes_atomic
from mlml_tf.labels import UNKNOWN
from mlml_tf.own_data import IMAGE_SUFFIXES, LabelTable, read_label_table, validation_rows

MODEL_FILE = "model.keras"
MANIFEST = "model.json"
CLASSES = "classes.txt"
THRESHOLDS = "thresholds.csv"
TRAINING_LOG = "training_log.csv"
VALIDATION = "validation"
CARD = "README.md"
MODEL_FORMAT = "mlml-tf model"
MODEL_FORMAT_VERSION = 1
#: The files without which a model folder cannot be used.
MODEL_FILES: tuple[str, ...] = (MANIFEST, MODEL_FILE, CLASSES, THRESHOLDS)
#: Resizes a saved model can do with Keras' own ``Resizing`` layer (see
#: :func:`mlml_tf.inputs.resize_image`); "antialias" keeps a shrunk photograph from aliasing.
OWN_RESIZES: tuple[str, ...] = ("antialias", "bilinear")
#: Methods whose targets need what only a benchmark knows (the hidden positives).
ORACLE_METHODS: tuple[str, ...] = ("im-wce",)


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_model` trains; the defaults are those of ``mlml-tf run`` (the paper's
    head and Adadelta) except ``resize`` (a saved model resizes with Keras' own layer).

    ``fine_tune``: how many of the backbone's top layers with weights (convolutions, dense)
    train together with the head on the images after the head has trained on cached features,
    batch normalisation left frozen in inference mode, as Keras' fine-tuning guide does; 0
    (default) keeps the backbone frozen. ``fine_tune_epochs`` / ``fine_tune_learning_rate``:
    that phase's epochs and Adam's rate. ``mixed_precision``: "auto" computes the fine-tuning
    in float16 where a GPU is present.
    """

    method: str = "cb-wce"
    params: tuple = ()
    validation: float = 0.2
    backbone: str = "InceptionResNetV2"
    weights: str | None = "imagenet"
    head: str = "original"
    image_size: int = 224
    scaling: str = "imagenet"
    resize: str = "antialias"
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.1
    fine_tune: int = 0
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float = 1e-5
    mixed_precision: bool | str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        from mlml_tf.inputs import SCALINGS

        if self.resize not in OWN_RESIZES:
            raise DataError(f"resize {self.resize!r}: a saved model resizes with "
                            f"{' or '.join(OWN_RESIZES)}")
        if self.scaling not in SCALINGS:
            raise DataError(f"unknown scaling {self.scaling!r}: choose one of {list(SCALINGS)}")
        if self.method in ORACLE_METHODS:
            raise DataError(f"method {self.method!r} needs to know which unknown entries are "
                            "positive, which only a benchmark does: choose another method")
        for name in ("epochs", "batch_size", "image_size", "fine_tune_epochs"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.fine_tune < 0:
            raise DataError(f"fine_tune must be 0 or more layers, not {self.fine_tune!r}")
        if self.mixed_precision not in (True, False, "auto"):
            raise DataError("mixed_precision must be True, False or 'auto', "
                            f"not {self.mixed_precision!r}")

    def run_config(self):
        """The :class:`mlml_tf.train.RunConfig` of the head's training."""
        from mlml_tf.train import RunConfig

        return RunConfig(method=self.method, ratio=0.0, fold=1, epochs=self.epochs,
                         batch_size=self.batch_size, learning_rate=self.learning_rate,
                         head=self.head, seed=self.seed, protocol="rps",
                         params=tuple(self.params))


@dataclasses.dataclass
class TrainedModel:
    """A model folder read back (:func:`load_model`): the Keras model, its classes, its
    per-class thresholds and its manifest."""

    folder: Path
    model: object
    classes: list[str]
    thresholds: np.ndarray
    manifest: dict

    @property
    def image_size(self) -> int:
        return int(self.manifest["preprocessing"]["image_size"])

    @property
    def resize(self) -> str:
        return self.manifest["preprocessing"]["resize"]

    def predict(self, images, batch_size: int = 32) -> np.ndarray:
        """Probabilities of a batch of images, (N, H, W, 3) values in [0, 255]."""
        return np.asarray(self.model.predict(np.asarray(images), batch_size=batch_size,
                                             verbose=0))


# --------------------------------------------------------------------------------- the network


def preprocessing_layers(image_size: int, scaling: str, resize: str) -> list:
    """Keras' own layers that bring images in [0, 255] of any size to the backbone's input:
    ``Resizing`` (bilinear, anti-aliased or not) and the scaling of
    :func:`mlml_tf.inputs.scale_images` as ``Normalization`` or ``Rescaling``."""
    import keras

    from mlml_tf.inputs import IMAGENET_MEAN, IMAGENET_STD

    resizing = keras.layers.Resizing(image_size, image_size, interpolation="bilinear",
                                     antialias=resize == "antialias", name="resize")
    if scaling == "imagenet":
        scale = keras.layers.Normalization(mean=[255.0 * m for m in IMAGENET_MEAN],
                                           variance=[(255.0 * s) ** 2 for s in IMAGENET_STD],
                                           name="scale")
    else:
        scale = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")
    return [resizing, scale]


def _extractor(backbone, settings: FitSettings):
    """Resized images (float, [0, 255]) -> features: the scaling and the backbone in inference
    mode, exactly as the saved model computes them."""
    import keras

    size = settings.image_size
    inputs = keras.Input((size, size, 3), name="image")
    scale = preprocessing_layers(size, settings.scaling, settings.resize)[1]
    return keras.Model(inputs, backbone(scale(inputs), training=False), name="extractor")


def assemble(backbone, head, settings: FitSettings):
    """The saved model: images of any size -> resize -> scale -> backbone -> head -> sigmoid."""
    import keras

    inputs = keras.Input((None, None, 3), name="image", dtype="float32")
    resizing, scale = preprocessing_layers(settings.image_size, settings.scaling,
                                           settings.resize)
    features = backbone(scale(resizing(inputs)), training=False)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities",
                                            dtype="float32")(head(features))
    return keras.Model(inputs, probabilities, name="mlml_tf_model")


def _backbone(settings: FitSettings, backbone=None):
    import keras

    from mlml_tf.features import backbone_weights
    from mlml_tf.model import build_backbone

    if backbone is not None:
        return backbone
    # Random weights are drawn from the seed: the same seed, the same backbone, the same cache.
    keras.utils.set_random_seed(settings.seed)
    return build_backbone(settings.backbone, weights=backbone_weights(settings.weights),
                          input_shape=(settings.image_size, settings.image_size, 3))


# ------------------------------------------------------------------------------ images in, out


def list_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files of ``sources``: a folder gives every file with an image suffix under it
    (sorted), a file is taken as it is (and checked when it is read)."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"the folder holds no image ({', '.join(IMAGE_SUFFIXES)})",
                                file=source)
            paths += found
        elif source.exists():
            paths.append(source)
        else:
            raise DataError("no such image or folder", file=source)
    if not paths:
        raise DataError("no image given")
    return paths


def checked_images(paths: Sequence[str | os.PathLike], skip_bad: bool,
                   lines: Sequence[int] | None = None, table: Path | None = None):
    """``(readable indices, bad images)``; a bad image stops with a DataError naming it (and
    the line of its row in ``table`` when ``lines`` give them) unless ``skip_bad``."""
    from mlml_tf.inputs import check_images

    bad = check_images([os.fspath(p) for p in paths], "quick")
    if bad and not skip_bad:
        first = bad[0]
        more = f" ({len(bad) - 1} more bad images)" if len(bad) > 1 else ""
        where = (f" (row of line {lines[first.index]} of {table})" if lines is not None
                 else f" (image {first.index + 1} of {len(paths)})")
        raise DataError(f"cannot read this image{where}: {first.reason}{more}; "
                        "--skip-bad-images leaves such images out", file=first.path)
    keep = np.setdiff1d(np.arange(len(paths)), [b.index for b in bad])
    return keep, bad


def resized_image(data, image_size: int, resize: str):
    """An encoded image file's bytes, decoded and resized to the backbone's input (float32 in
    [0, 255]): what :func:`predict_images` and the exported model do before the saved model."""
    from mlml_tf.inputs import decode_image, resize_image

    return resize_image(decode_image(data), (image_size, image_size), resize)


def image_batches(paths: Sequence[str | os.PathLike], image_size: int, resize: str,
                  batch_size: int = 32):
    """A ``tf.data`` stream of resized image batches (float32 in [0, 255]), in order, decoded
    in parallel: memory does not grow with the number of images."""
    import tensorflow as tf

    def load(path):
        return resized_image(tf.io.read_file(path), image_size, resize)

    files = tf.data.Dataset.from_tensor_slices([os.fspath(p) for p in paths])
    return (files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(2))


def _probability_batches(trained: TrainedModel, paths, batch_size: int) -> Iterator[np.ndarray]:
    for batch in image_batches(paths, trained.image_size, trained.resize, batch_size):
        # Keras' compiled predict step: one graph, not the model's layers one by one.
        yield np.asarray(trained.model.predict_on_batch(batch))


def image_probabilities(trained: TrainedModel, paths: Sequence[str | os.PathLike],
                        batch_size: int = 32) -> np.ndarray:
    """(images, classes) probabilities of image files, read as :func:`predict_images` reads
    them (the files must be readable: see :func:`checked_images`)."""
    out = list(_probability_batches(trained, paths, batch_size))
    return np.concatenate(out) if out else np.zeros((0, len(trained.classes)), np.float32)


# ----------------------------------------------------------------------------------- training


def _no_oracle(what: str):
    def fail():
        raise DataError(f"this method needs {what}, which a label table of one's own does "
                        "not have")
    return fail


def own_run_data(table: LabelTable, rows: np.ndarray, config, prior: Path | None = None):
    """The :class:`mlml_tf.train.RunData` of training on ``rows`` of a user's table: the
    method's targets and entry weights from the labels as they are (1 / 0 / -1)."""
    from mlml_tf.methods import RunLabels, method
    from mlml_tf.train import RunData, run_params

    names = np.asarray(table.names, dtype=object)[rows]
    train = pd.DataFrame(table.labels[rows], index=pd.Index(names, name=None),
                         columns=table.classes)
    params = run_params(config)
    if params.get("expected_positives", 0) is None:
        mean = float((table.labels[rows] == 1).sum(1).mean())
        raise DataError(f"method {config.method!r} needs the expected number of positives of "
                        f"a row, which only complete labels give: set it, e.g. --set "
                        f"{config.method}.expected_positives=K (your rows have {mean:.2f} "
                        "annotated positives on average, a lower bound)")
    labels = RunLabels(train, False, config, [], _no_oracle("the complete labels"),
                       _no_oracle("the hidden positives"), _no_oracle("a paper fold"),
                       _no_oracle("the authors' weight file"), prior)
    y, weights, record = method(config.method).targets(labels, params)
    digest = hashlib.sha256(np.ascontiguousarray(table.labels[rows]).tobytes()
                            + "\n".join(map(str, names)).encode()
                            + b"".join(Path(p).read_bytes() for p in ([prior] if prior else [])))
    pos_weight = record.get("pos_weight")
    empty = np.zeros((0, len(table.classes)), np.float32)
    return RunData(classes=list(table.classes), train_ids=names,
                   train_labels=np.asarray(y, np.float32),
                   weights=np.asarray(weights, np.float32),
                   pos_weight=None if pos_weight is None else np.asarray(pos_weight, np.float32),
                   test_ids=np.asarray([], dtype=object), test_labels=empty,
                   label_digest=digest.hexdigest(), record=record)


def _feature_cache(cache_root: Path, table: LabelTable, rows: np.ndarray, backbone_of,
                   settings: FitSettings, progress: bool, given=None):
    """The features of the table's readable images, built once per images folder and backbone
    (the grid's :func:`mlml_tf.cache.build_feature_cache`); ``given``: the backbone model
    passed to :func:`fit_model`, known by its name and the digest of its weights."""
    from mlml_tf.cache import build_feature_cache, cache_key
    from mlml_tf.features import backbone_settings, backbone_weights
    from mlml_tf.model import inference_function

    weights = backbone_weights(settings.weights)
    if given is not None:
        digest = hashlib.sha256()
        for w in given.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        identity = {"backbone": given.name, "weights_sha256": digest.hexdigest()}
    else:
        identity = backbone_settings(settings.backbone, weights, None)
        if weights is None:
            identity["seed"] = settings.seed
    ids = [table.names[i] for i in rows]
    identity.update(images=str(table.images.resolve()), image_size=settings.image_size,
                    scaling=settings.scaling, resize=settings.resize, source="own")
    folder = cache_root / cache_key(dict(identity, ids=len(ids)))
    model = []

    def extract(batch):
        # Built on first use: a cache that is already complete needs no backbone.
        if not model:
            model.append(inference_function(_extractor(backbone_of(), settings)))
        return model[0](batch)

    paths = [table.paths[i] for i in rows]
    return build_feature_cache(
        folder, ids, lambda: iter(image_batches(paths, settings.image_size, settings.resize, 64)),
        extract, identity, progress=progress)


def default_cache_root() -> Path:
    """Where :func:`fit_model` keeps feature caches: ``$XDG_CACHE_HOME/mlml-tf/features``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlml-tf" / "features"


def fit_model(labels: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike,
              settings: FitSettings | None = None, *, image_pattern: str | None = None,
              cache: str | os.PathLike | None = None, skip_bad_images: bool = False,
              overwrite: bool = False, backbone=None, verbose: int | str = "auto",
              progress: bool = True, log=print, callbacks: Sequence = ()) -> TrainedModel:
    """Train a model of a user's own label table over an images folder and save it in ``out``.

    Rows are held out for validation (``settings.validation``, stratified by
    :func:`mlml_tf.own_data.validation_rows`); the head trains on the cached features of the
    others with the method's targets and weights (the feature cache lives under ``cache``, by
    default :func:`default_cache_root`, and is reused by any later training on the same images
    and backbone); with ``settings.fine_tune`` the backbone's top layers then train with the
    head on the images. Per-class thresholds are tuned for F1 on the validation rows (their
    annotated entries), and the validation rows' results are written as a grid run's.

    Args:
        labels: the label table (:func:`mlml_tf.own_data.read_label_table`).
        images: the images folder.
        out: the model folder to write; an existing one is replaced only with ``overwrite``.
        settings: :class:`FitSettings` (default: every default).
        image_pattern: makes an image path of the first column's id, e.g. ``"{id}.jpg"``.
        skip_bad_images: leave out rows whose image cannot be read instead of stopping.
        backbone: a Keras backbone model to use instead of ``settings.backbone``.
        verbose: Keras' ``fit`` verbosity.
        callbacks: Keras callbacks added to the fine-tuning's ``fit``.

    A training that is killed resumes where it stopped when it is started again with the same
    settings: the head from its last checkpoint (as a grid run), the fine-tuning from its last
    epoch; the work lives in a hidden folder beside ``out`` until the model folder is in
    place.

    Returns:
        The saved model, read back (:func:`load_model`).

    Example:
        >>> model = fit_model("labels.csv", "photos", "tagger", FitSettings(method="cb-wce"))
        >>> model.classes
        ['beach', 'dog', 'sky']
    """
    from mlml_tf.methods import check_settings, method
    from mlml_tf.train import run_params, train_head

    settings = settings or FitSettings()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("the model folder exists already: choose another, or replace it "
                        "(--overwrite)", file=out)
    config = settings.run_config()
    chosen = method(config.method)
    if settings.fine_tune and chosen.objective is not None:
        raise DataError(f"--fine-tune trains on image batches without row indices; method "
                        f"{config.method!r} keeps per-row state: fine-tune another method")
    table = read_label_table(labels, images, image_pattern)
    line_of = np.arange(len(table)) + 2
    readable, bad = checked_images(table.paths, skip_bad_images, line_of, table.source)
    if bad:
        log(f"left out {len(bad)} of {len(table)} rows whose image cannot be read: "
            + "; ".join(f"{b.path}: {b.reason}" for b in bad[:3]) + (" ..." if len(bad) > 3
                                                                     else ""))
    train_pos, val_pos = validation_rows(table.labels[readable], settings.validation,
                                         settings.seed)
    train_rows, val_rows = readable[train_pos], readable[val_pos]
    if not (table.labels[train_rows] == 1).any():
        raise DataError("no training row has a positive label", file=table.source)
    params = run_params(config)
    needs_prior = (config.method == "csl" and params["mode"] == "selective"
                   and params["prior"] == "auto")
    # CSL's targets read its prior, made later: the rows are checked with its ignore mode.
    run_data = own_run_data(table, train_rows, _csl_ignore(config) if needs_prior else config)
    check_settings(config.method, run_params(config), config.epochs, len(table.classes))

    built = []

    def backbone_of():
        if not built:
            built.append(_backbone(settings, backbone))
        return built[0]

    features = _feature_cache(Path(cache) if cache else default_cache_root(), table, readable,
                              backbone_of, settings, progress, backbone)
    work = out.parent / f".{out.name}.partial-{_work_key(settings, run_data, features)}"
    work.mkdir(parents=True, exist_ok=True)
    if needs_prior:
        prior = _csl_prior(features, work, config, table, train_rows, verbose)
        run_data = own_run_data(table, train_rows, config, prior=prior)
    log(f"{config.method}: head on the features of {len(train_rows)} rows "
        f"({len(val_rows)} held out to validate) -> {out}")
    head = train_head(features, work / "head", config, run_data, verbose=verbose)
    if settings.fine_tune:
        model = _fine_tune(backbone_of(), head, settings, table, train_rows, run_data,
                           work / "fine-tune", verbose, backbone, callbacks)
    else:
        model = assemble(backbone_of(), head, settings)
    stage = work / "model"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    counts = _counts(table, train_rows, val_rows, bad)
    trained = _save(stage, model, table, settings, counts, work, val_rows)
    if out.exists():
        old = out.parent / f".{out.name}.replaced"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old)
    else:
        stage.rename(out)
    shutil.rmtree(work)
    log(f"{out}: {_summary(trained.manifest)}")
    return load_model(out)


def _work_key(settings: FitSettings, run_data, features) -> str:
    content = json.dumps({"settings": dataclasses.asdict(settings),
                          "labels": run_data.label_digest,
                          "features": features.manifest["ids_sha256"]}, sort_keys=True,
                         default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _csl_ignore(config):
    """CSL's temporary model: the run in ignore mode, without a prior."""
    return dataclasses.replace(config, params=tuple(
        {**dict(config.params), "mode": "ignore", "prior": "none"}.items()))


def _csl_prior(features, work: Path, config, table: LabelTable, rows: np.ndarray,
               verbose) -> Path:
    """CSL's class prior, as the grid estimates it: a temporary model in ignore mode, then the
    mean of its probabilities over the training rows."""
    from mlml_tf.methods import class_prior_bytes
    from mlml_tf.train import predict, train_head

    path = work / "class_prior.csv"
    if path.exists():
        return path
    temporary = _csl_ignore(config)
    run_data = own_run_data(table, rows, temporary)
    head = train_head(features, work / "csl-prior", temporary, run_data, verbose=verbose)
    prior = predict(head, features, features.rows_of(run_data.train_ids)).mean(axis=0)
    write_bytes_atomic(path, class_prior_bytes(table.classes, prior))
    return path


def _fine_tune(backbone, head, settings: FitSettings, table: LabelTable, rows: np.ndarray,
               run_data, work: Path, verbose, backbone_given=None, callbacks=()):
    """Train the backbone's top ``settings.fine_tune`` layers with weights and the head on the
    images of ``rows``, lightly augmented (a random crop of 80-100 % of each side, a random
    horizontal flip, both seeded), batch norm frozen in inference mode; returns the model."""
    import keras
    import tensorflow as tf

    from mlml_tf.train import run_loss
    from mlml_tf.trainer import AtomicBackupAndRestore, StartStep

    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = settings.mixed_precision is True or (settings.mixed_precision == "auto" and gpu)
    # A backbone given as a model cannot be made again under another policy.
    mixed = mixed and backbone_given is None
    loss, on_probabilities = run_loss(settings.run_config(), run_data)
    policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        # Layers take their policy when they are made: float16 arithmetic needs copies made
        # under it (their variables stay float32, so the weights go back and forth exactly).
        tuned_backbone, tuned_head = backbone, head
        if mixed:
            tuned_backbone, tuned_head = _backbone(settings), _head_like(head, run_data)
            tuned_backbone.set_weights(backbone.get_weights())
            tuned_head.set_weights(head.get_weights())
        _unfreeze_top(tuned_backbone, settings.fine_tune)
        inputs = keras.Input((settings.image_size, settings.image_size, 3), name="image")
        scale = preprocessing_layers(settings.image_size, settings.scaling, settings.resize)[1]
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(
            tuned_head(tuned_backbone(scale(inputs), training=False)))
        outputs = (keras.layers.Activation("sigmoid", dtype="float32")(logits)
                   if on_probabilities else logits)
        trainer = keras.Model(inputs, outputs, name="fine_tune")
        trainer.compile(optimizer=keras.optimizers.Adam(settings.fine_tune_learning_rate),
                        loss=loss)
    finally:
        keras.config.set_dtype_policy(policy)
    paths = [str(table.paths[i]) for i in rows]
    start = StartStep()
    stream, steps = _augmented(paths, run_data.train_labels, run_data.weights, settings,
                               lambda: start.step)
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(settings.seed)
    # A killed fine-tuning resumes from its last epoch (the work folder is kept until the
    # model folder is in place).
    trainer.fit(stream, epochs=settings.fine_tune_epochs, steps_per_epoch=steps,
                verbose=verbose, shuffle=False,
                callbacks=[AtomicBackupAndRestore(str(work / "backup")), start,
                           keras.callbacks.CSVLogger(str(work / TRAINING_LOG), append=True),
                           *callbacks])
    if mixed:
        backbone.set_weights(tuned_backbone.get_weights())
        head.set_weights(tuned_head.get_weights())
    backbone.trainable = False
    return assemble(backbone, head, settings)


def _head_like(head, run_data):
    from mlml_tf.model import build_head

    layout = "original" if any(layer.name == "flatten" for layer in head.layers) else "gap"
    return build_head(head.input_shape[1:], len(run_data.classes), head=layout)


def _unfreeze_top(backbone, n: int) -> None:
    """Make the top ``n`` layers with weights of ``backbone`` trainable, every other layer
    (batch normalisation included) frozen."""
    import keras

    weighted = [layer for layer in _layers(backbone) if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)]
    if n > len(weighted):
        raise DataError(f"--fine-tune {n}: the backbone has {len(weighted)} layers with "
                        "weights (batch normalisation aside)")
    backbone.trainable = True
    for layer in _layers(backbone):
        layer.trainable = False
    for layer in weighted[len(weighted) - n:]:
        layer.trainable = True


def _layers(model):
    """The layers of ``model`` that hold no layers themselves, nested models opened."""
    from mlml_tf.model import _sublayers

    return [layer for layer in _sublayers(model) if not getattr(layer, "layers", None)]


def _augmented(paths: list[str], labels: np.ndarray, weights: np.ndarray,
               settings: FitSettings, start_step):
    """``(stream, steps per epoch)`` of augmented (images, y, W) batches from step
    ``start_step()`` on: batch k holds the rows :func:`mlml_tf.train.batch_rows` gives for
    (seed, k), and the crop and flip of its j-th image are drawn from (seed, k B + j), so that
    a resumed fine-tuning sees exactly the batches of an uninterrupted one."""
    import tensorflow as tf

    from mlml_tf.inputs import decode_image, resize_image
    from mlml_tf.train import batch_rows, step_count

    n, b, size = len(paths), settings.batch_size, settings.image_size
    steps = step_count(n, b)
    files, y, w = tf.constant(paths), tf.constant(labels), tf.constant(weights)

    def batches():
        for step in range(int(start_step()), settings.fine_tune_epochs * steps):
            rows = batch_rows(n, b, settings.seed, step)
            yield rows, np.arange(step * b, (step + 1) * b, dtype=np.int64)

    def load(i, position):
        seed = tf.stack([tf.constant(settings.seed, tf.int64), position])
        image = decode_image(tf.io.read_file(files[i]))
        shape = tf.shape(image)
        fraction = tf.random.stateless_uniform([2], seed, 0.8, 1.0)
        crop = tf.maximum(tf.cast(fraction * tf.cast(shape[:2], tf.float32), tf.int32), 1)
        start = tf.cast(tf.random.stateless_uniform([2], seed + 1, 0.0, 1.0)
                        * tf.cast(shape[:2] - crop, tf.float32), tf.int32)
        image = tf.image.crop_to_bounding_box(image, start[0], start[1], crop[0], crop[1])
        image = tf.image.stateless_random_flip_left_right(image, seed + 2)
        return resize_image(image, (size, size), settings.resize), y[i], w[i]

    spec = tf.TensorSpec((b,), tf.int64)
    stream = tf.data.Dataset.from_generator(batches, output_signature=(spec, spec)).unbatch()
    # Deterministic parallel map: the images of a batch come back in the order of its rows.
    stream = stream.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return stream.batch(b, drop_remainder=True).prefetch(2), steps


# ------------------------------------------------------------------------------ the model folder


def _counts(table: LabelTable, train_rows, val_rows, bad) -> dict:
    def entries(rows):
        part = table.labels[rows]
        return {"rows": int(len(rows)), "positive": int((part == 1).sum()),
                "negative": int((part == 0).sum()), "unknown": int((part == UNKNOWN).sum())}

    return {"table": str(table.source), "rows": len(table), "classes": len(table.classes),
            "train": entries(train_rows), "validation": entries(val_rows),
            "left_out": [{"image": b.path, "reason": b.reason} for b in bad],
            "positives_per_class": {c: int(n) for c, n in zip(
                table.classes, (table.labels[train_rows] == 1).sum(0), strict=True)}}


def _save(stage: Path, model, table: LabelTable, settings: FitSettings, counts: dict,
          work: Path, val_rows: np.ndarray) -> TrainedModel:
    """Write every file of a model folder into ``stage``, the validation results included."""
    from mlml_tf.metrics import DEFAULT_THRESHOLD, tune_thresholds
    from mlml_tf.runs import write_run_outputs
    from mlml_tf.train import library_versions

    classes = list(table.classes)
    manifest = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "classes": classes,
        "preprocessing": {"image_size": settings.image_size, "resize": settings.resize,
                          "scaling": settings.scaling, "input": "images, values in [0, 255]"},
        "settings": dataclasses.asdict(settings),
        "counts": counts,
        "versions": library_versions(),
    }
    save_keras(model, stage / MODEL_FILE)
    trained = TrainedModel(stage, model, classes, np.full(len(classes), DEFAULT_THRESHOLD),
                           manifest)
    metrics = None
    if len(val_rows):
        truth = table.labels[val_rows]
        probabilities = image_probabilities(trained, [table.paths[i] for i in val_rows],
                                            settings.batch_size)
        # Tuned to two decimals, the grid of tune_thresholds: thresholds.csv holds them exactly.
        trained.thresholds = np.round(tune_thresholds(truth, probabilities), 2)
        metrics = write_run_outputs(stage / VALIDATION, truth, probabilities, classes,
                                    thresholds=trained.thresholds,
                                    extra={"rows": [table.names[i] for i in val_rows]})
        manifest["validation"] = {"tuned": _headline(metrics),
                                  "at_0.5": _headline(_scores(truth, probabilities))}
    manifest["thresholds"] = "tuned on the validation rows" if metrics else "0.5 (no validation)"
    (stage / CLASSES).write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    (stage / THRESHOLDS).write_text(_thresholds_text(classes, trained.thresholds),
                                    encoding="utf-8")
    logs = [work / "head" / TRAINING_LOG, work / "fine-tune" / TRAINING_LOG]
    (stage / TRAINING_LOG).write_text(_training_log(logs), encoding="utf-8")
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                  encoding="utf-8")
    (stage / CARD).write_text(model_card(manifest, trained.thresholds, stage / VALIDATION),
                              encoding="utf-8")
    return trained


def _scores(truth: np.ndarray, probabilities: np.ndarray,
            threshold: float | np.ndarray = 0.5) -> dict:
    """The scores :func:`mlml_tf.runs.write_run_outputs` gives, without writing them."""
    from mlml_tf.metrics import annotated_metrics, evaluate

    scores = evaluate(truth == 1, probabilities, threshold=threshold)
    if (truth == UNKNOWN).any():
        scores["annotated"] = annotated_metrics(truth, probabilities, threshold)
    return scores


def save_keras(model, path: Path) -> None:
    """``model.save(path)``, made byte-identical for the same model: Keras writes the time of
    saving (``date_saved``, never read back), the weights' entry with the time of day, and
    ``shared_object_id`` values that are memory addresses. Here the addresses become their
    order of appearance (which is all a load compares), the time is left out and every entry
    of the archive is dated as Keras dates its first ones."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp.") as folder:
        raw = Path(folder) / path.name
        model.save(raw)
        with zipfile.ZipFile(raw) as source:
            entries = [(info, source.read(info.filename)) for info in source.infolist()]
    ids: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            return {key: (ids.setdefault(value, len(ids)) if key == "shared_object_id"
                          else renumber(value)) for key, value in node.items()}
        if isinstance(node, list):
            return [renumber(value) for value in node]
        return node

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as target:
        for info, data in entries:
            if info.filename == "config.json":
                data = json.dumps(renumber(json.loads(data))).encode()
            elif info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            target.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), data,
                            compress_type=info.compress_type)


def _headline(metrics: dict) -> dict:
    keys = ("map", "precision_micro", "recall_micro", "f1_micro", "roc_auc_micro")
    out = {k: metrics[k] for k in keys}
    if "annotated" in metrics:
        out["annotated"] = metrics["annotated"]
    return out


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _thresholds_text(classes: list[str], thresholds: np.ndarray) -> str:
    return _csv(["class", "threshold"],
                ([c, f"{t:.2f}"] for c, t in zip(classes, thresholds, strict=True)))


def _training_log(paths: list[Path]) -> str:
    """The head's log, then the fine-tuning's, with a ``phase`` column."""
    frames = []
    for phase, path in zip(("head", "fine-tune"), paths, strict=True):
        if path.exists() and path.stat().st_size:
            frame = pd.read_csv(path)
            frame.insert(0, "phase", phase)
            frames.append(frame)
    return pd.concat(frames).to_csv(index=False) if frames else "phase,epoch,loss\n"


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _summary(manifest: dict) -> str:
    validation = manifest.get("validation")
    if not validation:
        return "saved (no validation rows)"
    tuned = validation["tuned"]
    return (f"validation mAP {_number(tuned['map'], 1)}, micro F1 at the tuned thresholds "
            f"{_number(tuned['f1_micro'])}")


def model_card(manifest: dict, thresholds: np.ndarray, validation: Path) -> str:
    """The model folder's ``README.md``: data, method and settings, validation results."""
    s, counts = manifest["settings"], manifest["counts"]
    lines = [
        f"# mlml-tf model: {len(manifest['classes'])} classes",
        "",
        f"Trained with mlml-tf {manifest['versions']['mlml_tf']} (TensorFlow "
        f"{manifest['versions']['tensorflow']}, Keras {manifest['versions']['keras']}) from "
        f"`{counts['table']}`.",
        "",
        "## Data",
        "",
        "| rows | count | positive | negative | unknown |",
        "|---|---:|---:|---:|---:|",
    ]
    for part in ("train", "validation"):
        c = counts[part]
        lines.append(f"| {part} | {c['rows']} | {c['positive']} | {c['negative']} | "
                     f"{c['unknown']} |")
    if counts["left_out"]:
        lines += ["", f"{len(counts['left_out'])} rows left out, their image unreadable: "
                  + ", ".join(f"`{b['image']}`" for b in counts["left_out"][:10])]
    lines += [
        "",
        "## Method and settings",
        "",
        f"Method `{s['method']}`" + (f" with {dict(s['params'])}" if s["params"] else "")
        + f"; backbone `{s['backbone']}` (weights `{s['weights']}`), head `{s['head']}`, "
        f"images resized to {s['image_size']} x {s['image_size']} ({s['resize']}) and scaled "
        f"`{s['scaling']}`; {s['epochs']} epochs of Adadelta at {s['learning_rate']}, batches "
        f"of {s['batch_size']}, seed {s['seed']}.",
        *([] if not s["fine_tune"] else [
            "", f"Then the backbone's top {s['fine_tune']} layers with weights fine-tuned with "
            f"the head for {s['fine_tune_epochs']} epochs (Adam, "
            f"{s['fine_tune_learning_rate']}), images lightly augmented."]),
        "",
        "## Validation",
        "",
    ]
    validation_metrics = manifest.get("validation")
    if not validation_metrics:
        lines.append("No row was held out: no validation metric, every threshold is 0.5.")
    else:
        lines += [
            "Unknown entries count as negatives in these scores; where the table leaves "
            "entries unknown, the partial mAP and the micro scores over the annotated entries "
            "are given too. The tuned thresholds were chosen on these same rows, so the scores "
            "at them are optimistic; mAP does not depend on any threshold.",
            "",
            "| thresholds | mAP | precision | recall | F1 | ROC-AUC |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, key in (("0.5", "at_0.5"), ("tuned", "tuned")):
            m = validation_metrics[key]
            lines.append(f"| {name} | {_number(m['map'], 1)} | {_number(m['precision_micro'])} "
                         f"| {_number(m['recall_micro'])} | {_number(m['f1_micro'])} | "
                         f"{_number(m['roc_auc_micro'])} |")
            a = m.get("annotated")
            if a:
                lines.append(f"| {name}, annotated entries | {_number(a['partial_map'], 1)} | "
                             f"{_number(a['precision_micro'])} | {_number(a['recall_micro'])} "
                             f"| {_number(a['f1_micro'])} | {_number(a['roc_auc_micro'])} |")
        report = pd.read_csv(validation / "results_report.csv", index_col=0)
        lines += ["", "| class | training positives | AP | threshold |",
                  "|---|---:|---:|---:|"]
        for c, t in zip(manifest["classes"], thresholds, strict=True):
            ap = report.loc[c, "average_precision"] if c in report.index else float("nan")
            lines.append(f"| {c} | {counts['positives_per_class'][c]} | "
                         f"{'n/a' if pd.isna(ap) else f'{ap:.2f}'} | {t:.2f} |")
        lines += ["", f"Every metric of the validation rows: `{VALIDATION}/`."]
    lines += ["", "## Use", "", "```",
              "mlml-tf predict --model THIS_FOLDER --images PHOTOS --out predictions.csv",
              "mlml-tf export --model THIS_FOLDER --out serving/1", "```", ""]
    return "\n".join(lines)


def load_model(folder: str | os.PathLike) -> TrainedModel:
    """Read a model folder written by :func:`fit_model`, checking it first: a missing file,
    a manifest of another format or version, classes or thresholds that do not match, or a
    ``model.keras`` Keras cannot read is a DataError naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("model folder not found" if not folder.exists() else "not a folder",
                        file=folder)
    for name in MODEL_FILES:
        if not (folder / name).is_file():
            raise DataError(f"incomplete model folder: {name} is missing", file=folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"corrupt model manifest ({exc})", file=path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
        raise DataError(f"not a model manifest of mlml-tf (format {MODEL_FORMAT!r})",
                        file=path)
    if manifest.get("version") != MODEL_FORMAT_VERSION:
        raise DataError(f"written by an incompatible version of mlml-tf (model format version "
                        f"{manifest.get('version')!r}, "
                        f"{manifest.get('versions', {}).get('mlml_tf', '?')}); this one reads "
                        f"version {MODEL_FORMAT_VERSION}: train the model again", file=path)
    classes = manifest.get("classes")
    listed = (folder / CLASSES).read_text(encoding="utf-8").splitlines()
    if listed != classes:
        raise DataError(f"classes differ from those of {MANIFEST}", file=folder / CLASSES)
    thresholds = _read_thresholds(folder / THRESHOLDS, classes)
    model = _read_keras(folder / MODEL_FILE)
    if tuple(model.output_shape[1:]) != (len(classes),):
        raise DataError(f"the model gives {model.output_shape[1:]} outputs for "
                        f"{len(classes)} classes", file=folder / MODEL_FILE)
    return TrainedModel(folder, model, classes, thresholds, manifest)


def _read_keras(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip, HDF5, JSON or Keras errors of a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot be read as a Keras model ({first})", file=path) from None


def _read_thresholds(path: Path, classes: list[str]) -> np.ndarray:
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    if not rows or rows[0] != ["class", "threshold"]:
        raise DataError("the header must be 'class,threshold'", file=path, row=1)
    if [r[0] if r else "" for r in rows[1:]] != classes:
        raise DataError(f"one row per class of {MANIFEST}, in its order", file=path)
    values = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            value = float(row[1])
        except (IndexError, ValueError):
            raise DataError("the threshold is not a number", file=path, row=line) from None
        if not 0.0 <= value <= 1.0:
            raise DataError(f"threshold {value!r} is outside [0, 1]", file=path, row=line)
        values.append(value)
    return np.asarray(values, dtype=np.float64)


def _as_model(model) -> TrainedModel:
    return model if isinstance(model, TrainedModel) else load_model(model)


# ---------------------------------------------------------------------------------- prediction


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What :func:`predict_images` wrote: the file, the rows, and the images it left out."""

    path: Path
    rows: int
    skipped: tuple


def decision_thresholds(trained: TrainedModel, threshold: str | float = "tuned") -> np.ndarray:
    """Per-class thresholds: the tuned ones of the model folder, or one number for all."""
    if threshold == "tuned":
        return trained.thresholds
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise DataError(f"threshold {value!r} is outside [0, 1]")
    return np.full(len(trained.classes), value)


def predict_images(model, images: Sequence[str | os.PathLike] | str | os.PathLike,
                   out: str | os.PathLike, threshold: str | float = "tuned",
                   top_k: int | None = None, batch_size: int = 32, skip_bad_images: bool = False,
                   progress: bool = True) -> Predictions:
    """Tag image files with a saved model and write one CSV row per image.

    Columns: ``image`` (the file), the probability of every class (named by the class), then
    ``labels``: the predicted classes joined by ``;``, those above their threshold (the
    tuned ones by default, or ``threshold`` for all) or, with ``top_k``, the ``top_k`` most
    probable. Images are read in batches as they are scored and each row is written at once:
    memory does not grow with the number of images. An unreadable file stops everything
    (nothing is written) unless ``skip_bad_images``, which leaves it out and lists it in
    ``<out>.skipped.csv``.

    Args:
        model: a model folder or a :class:`TrainedModel`.
        images: image files and folders (every image under a folder).
        out: the CSV file to write.

    Example:
        >>> predict_images("tagger", ["holiday/"], "tags.csv", top_k=3)
        Predictions(path=PosixPath('tags.csv'), rows=212, skipped=())
    """
    from tqdm.auto import tqdm

    trained = _as_model(model)
    if top_k is not None and not 1 <= int(top_k) <= len(trained.classes):
        raise DataError(f"top-k {top_k!r} is outside [1, {len(trained.classes)}]")
    thresholds = decision_thresholds(trained, threshold)
    sources = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths = list_images(sources)
    keep, bad = checked_images(paths, skip_bad_images)
    if not len(keep):
        raise DataError(f"none of the {len(paths)} images can be read")
    paths = [paths[i] for i in keep]
    out = Path(out)
    classes = trained.classes
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not progress)
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image", *classes, "labels"])
        done = 0
        for probabilities in _probability_batches(trained, paths, batch_size):
            for path, p in zip(paths[done: done + len(probabilities)], probabilities,
                               strict=True):
                if top_k is not None:
                    chosen = np.argsort(-p, kind="stable")[: int(top_k)]
                else:
                    chosen = np.flatnonzero(p > thresholds)
                writer.writerow([os.fspath(path), *(f"{v:.6f}" for v in p),
                                 ";".join(classes[i] for i in chosen)])
            done += len(probabilities)
            bar.update(len(probabilities))
        bar.close()
        fh.flush()
    skipped = tuple(bad)
    listing = out.with_name(out.name + ".skipped.csv")
    if skipped:
        write_bytes_atomic(listing, _csv(["image", "reason"],
                                         [[b.path, b.reason] for b in skipped]).encode())
    elif listing.exists():
        listing.unlink()
    return Predictions(out, len(paths), skipped)


# ---------------------------------------------------------------------------------- evaluation


def evaluate_model(model, labels: str | os.PathLike, images: str | os.PathLike,
                   out: str | os.PathLike, image_pattern: str | None = None,
                   threshold: str | float = "tuned", batch_size: int = 32) -> dict:
    """Score a saved model on a label table of its classes and write the results as the grid
    writes a run's (``predictions.out``, ``test_ground_truth_classes.txt``,
    ``evaluation_results.txt``, ``results_report.csv``, ``metrics.json``): mAP, micro
    precision / recall / F1 / ROC-AUC and the per-class report, unknown entries counted as
    negatives, and where the table has unknown entries the partial mAP and the micro scores
    over its annotated entries (``metrics["annotated"]``). Returns the metrics."""
    from mlml_tf.runs import write_run_outputs

    trained = _as_model(model)
    table = read_label_table(labels, images, image_pattern, learnable=False)
    missing = [c for c in trained.classes if c not in table.classes]
    if missing:
        raise DataError(f"the table has no column {missing[0]!r}, a class of the model "
                        f"({len(missing)} missing)", file=table.source, row=1)
    extra = [c for c in table.classes if c not in trained.classes]
    if extra:
        raise DataError(f"column {extra[0]!r} is not a class of the model", file=table.source,
                        row=1, column=extra[0])
    order = [table.classes.index(c) for c in trained.classes]
    checked_images(table.paths, False, np.arange(len(table)) + 2, table.source)
    probabilities = image_probabilities(trained, table.paths, batch_size)
    return write_run_outputs(out, table.labels[:, order], probabilities, trained.classes,
                             thresholds=decision_thresholds(trained, threshold),
                             extra={"model": str(trained.folder), "table": str(table.source),
                                    "rows": list(table.names)})


# ------------------------------------------------------------------------------------- export


def serving_function(trained: TrainedModel):
    """``f(encoded) -> {"probabilities": (N, C)}`` on a vector of encoded JPEG / PNG / GIF /
    BMP images, each decoded and resized as :func:`predict_images` does."""
    import tensorflow as tf

    size, resize, model = trained.image_size, trained.resize, trained.model

    def decode(data):
        return resized_image(data, size, resize)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        batch = tf.map_fn(decode, images, fn_output_signature=tf.TensorSpec(
            (size, size, 3), tf.float32))
        return {"probabilities": model(batch, training=False)}

    return serve


def export_model(model, out: str | os.PathLike) -> Path:
    """Write a TensorFlow SavedModel of a saved model for TF Serving: its ``serving_default``
    signature takes ``images``, a vector of encoded image files (bytes), and returns
    ``probabilities`` (N, C); ``classes.txt`` and ``thresholds.csv`` are copied beside it. The
    folder is written under a temporary name and renamed into place."""
    import keras

    trained = _as_model(model)
    out = Path(out)
    if out.exists():
        raise DataError("the export folder exists already: choose another", file=out)
    stage = out.parent / f".{out.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(trained.model)
    archive.add_endpoint("serving_default", serving_function(trained))
    archive.write_out(os.fspath(stage), verbose=False)
    for name in (CLASSES, THRESHOLDS):
        shutil.copyfile(trained.folder / name, stage / name)
    stage.rename(out)
    return out

