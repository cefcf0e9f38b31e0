"""Training a model of one's own data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.apps.own.card import _summary
from mlml_tf.apps.own.fine_tune import fine_tune
from mlml_tf.apps.own.folder import TrainedModel, load_model
from mlml_tf.apps.own.images import checked_images, image_batches
from mlml_tf.apps.own.network import _backbone, _extractor, assemble
from mlml_tf.apps.own.save import _counts, _save
from mlml_tf.errors import DataError
from mlml_tf.features.backbones import (
    backbone_settings,
    backbone_weights,
    inference_function,
    weights_digest,
)
from mlml_tf.features.cache import build_feature_cache, cache_key, dtype_settings
from mlml_tf.files.own_table import LabelTable, read_label_table, validation_rows
from mlml_tf.methods.method import RunLabels, params_key
from mlml_tf.methods.registry import check_settings, method
from mlml_tf.settings import FitSettings
from mlml_tf.training.data import RunData, run_params
from mlml_tf.training.prior import estimate_class_prior
from mlml_tf.training.runs import train_head

log = logging.getLogger(__name__)


def _no_oracle(what: str):
    def fail():
        raise DataError(f"this method needs {what}, which a label table of one's own does "
                        "not have")
    return fail


def own_run_data(table: LabelTable, rows: np.ndarray, config, prior: Path | None = None):
    """The :class:`mlml_tf.train.RunData` of training on ``rows`` of a user's table: the
    method's targets and entry weights from the labels as they are (1 / 0 / -1)."""

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

    weights = backbone_weights(settings.weights)
    if given is not None:
        identity = {"backbone": given.name, "weights_sha256": weights_digest(given)}
    else:
        identity = backbone_settings(settings.backbone, weights, None)
        if weights is None:
            identity["seed"] = settings.seed
    ids = [table.names[i] for i in rows]
    identity.update(images=str(table.images.resolve()), image_size=settings.image_size,
                    scaling=settings.scaling, resize=settings.resize, source="own")
    folder = cache_root / cache_key(dict(identity, ids=len(ids),
                                         **dtype_settings(settings.feature_dtype)))
    model = []

    def extract(batch):
        # Built on first use: a cache that is already complete needs no backbone.
        if not model:
            model.append(inference_function(_extractor(backbone_of(), settings)))
        return model[0](batch)

    paths = [table.paths[i] for i in rows]
    return build_feature_cache(
        folder, ids, lambda: iter(image_batches(paths, settings.image_size, settings.resize, 64)),
        extract, identity, progress=progress, dtype=settings.feature_dtype)


def default_cache_root() -> Path:
    """Where :func:`fit_model` keeps feature caches: ``$XDG_CACHE_HOME/mlml-tf/features``."""

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlml-tf" / "features"


def fit_model(labels: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike,
              settings: FitSettings | None = None, *, image_pattern: str | None = None,
              cache: str | os.PathLike | None = None, skip_bad_images: bool = False,
              overwrite: bool = False, backbone=None, verbose: int | str = "auto",
              progress: bool = True, callbacks: Sequence = ()) -> TrainedModel:
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

    settings = settings or FitSettings()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("the model folder exists already: choose another, or replace it "
                        "(--overwrite)", file=out)
    config = settings.run_config()
    chosen = method(config.method)
    if settings.fine_tune and chosen.needs_rows:
        raise DataError(f"--fine-tune trains on image batches without row indices; method "
                        f"{config.method!r} keeps per-row state: fine-tune another method")
    table = read_label_table(labels, images, image_pattern)
    line_of = np.arange(len(table)) + 2
    readable, bad = checked_images(table.paths, skip_bad_images, line_of, table.source)
    if bad:
        log.warning("left out %d of %d rows whose image cannot be read: %s%s", len(bad),
                    len(table), "; ".join(f"{b.path}: {b.reason}" for b in bad[:3]),
                    " ..." if len(bad) > 3 else "")
    train_pos, val_pos = validation_rows(table.labels[readable], settings.validation,
                                         settings.seed)
    train_rows, val_rows = readable[train_pos], readable[val_pos]
    if not (table.labels[train_rows] == 1).any():
        raise DataError("no training row has a positive label", file=table.source)
    auxiliary = chosen.auxiliary(run_params(config)) if chosen.auxiliary else None
    temporary = None
    if auxiliary is not None:
        label, changes = auxiliary
        temporary = dataclasses.replace(config, params=params_key({**dict(config.params),
                                                                   **changes}))
    # A method that reads an auxiliary model's prior gets it later: the rows are checked with
    # the temporary model's settings.
    run_data = own_run_data(table, train_rows, temporary or config)
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
    if temporary is not None:
        prior = estimate_class_prior(features, work / f"{config.method}-{label}", temporary,
                                     run_data, table.classes, verbose=verbose)
        run_data = own_run_data(table, train_rows, config, prior=prior)
    log.info("%s: head on the features of %d rows (%d held out to validate) -> %s",
             config.method, len(train_rows), len(val_rows), out)
    head = train_head(features, work / "head", config, run_data, verbose=verbose)
    if settings.fine_tune:
        model = fine_tune(backbone_of(), head, settings, table, train_rows, run_data,
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
    log.info("%s: %s", out, _summary(trained.manifest))
    return load_model(out)


def _work_key(settings: FitSettings, run_data, features) -> str:
    content = json.dumps({"settings": dataclasses.asdict(settings),
                          "labels": run_data.label_digest,
                          "features": features.manifest["ids_sha256"]}, sort_keys=True,
                         default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]
