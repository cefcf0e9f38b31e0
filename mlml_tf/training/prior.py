"""The class prior of a method with an auxiliary model (CSL), estimated by a temporary head.

One function for the grid and for a model of one's own data: the temporary model is the run of
:attr:`mlml_tf.methods.method.Method.auxiliary` (CSL in ignore mode), trained on the same rows,
and the prior is the mean of its predicted probabilities over the training rows
(docs/methods.md section 3).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlml_tf.features.cache import FeatureCache
from mlml_tf.files.atomic import remove_stale_temporaries, write_bytes_atomic
from mlml_tf.methods.prior import CLASS_PRIOR, class_prior_bytes
from mlml_tf.settings import RunConfig
from mlml_tf.training.callbacks import MEAN_PREDICTIONS
from mlml_tf.training.data import RunData, drop_skipped_images, run_params
from mlml_tf.training.runs import predict, train_head
from mlml_tf.training.schedule import validation_split

log = logging.getLogger(__name__)


def estimate_class_prior(cache: FeatureCache, run_dir: str | os.PathLike, config: RunConfig,
                         run_data: RunData, classes: Sequence[str],
                         data: str | os.PathLike | None = None,
                         verbose: int | str = "auto") -> Path:
    """Train the temporary model ``config`` in ``run_dir`` (resumed when killed; skipped when
    its prior is written) and write its class prior, ``run_dir/class_prior.csv`` (``classes``,
    the prior of each), which is returned.

    The prior is its ``prior_estimate``: "clean", the mean predicted probability of each class
    over the training rows by the trained model; "running", the authors' estimate, the mean
    over every training batch of every epoch, each taken before that step's update.
    """
    run_dir = Path(run_dir)
    path = run_dir / CLASS_PRIOR
    if path.exists():
        return path
    remove_stale_temporaries(run_dir)
    log.info("%s: the class prior's temporary model -> %s", config.method, run_dir)
    running = run_params(config)["prior_estimate"] == "running"
    head = train_head(cache, run_dir, config, run_data, verbose=verbose, data=data,
                      mean_predictions=running)
    if running:
        prior = np.load(run_dir / MEAN_PREDICTIONS)
    else:
        kept, _ = drop_skipped_images(run_data, cache.manifest.get("skipped", []))
        rows = cache.rows_of(kept.train_ids)
        fit_idx, _ = validation_split(len(rows), config)
        prior = predict(head, cache, rows[fit_idx]).mean(axis=0)
    write_bytes_atomic(path, class_prior_bytes(list(classes), prior))
    return path
