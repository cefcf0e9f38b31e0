"""A run folder's bookkeeping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from mlml_tf.features.cache import FeatureCache
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.labels.estimated import VERSION as ESTIMATOR_VERSION
from mlml_tf.runs.outputs import COMPLETE
from mlml_tf.settings import DIGEST_DEFAULTS, RunConfig
from mlml_tf.training.data import RunData


def config_settings(config: RunConfig) -> dict:
    """The settings of a run as its digest counts them (:func:`run_digest`): every field but
    those of :data:`mlml_tf.settings.DIGEST_DEFAULTS` at their default value, and the version of
    the estimator of confidence weights where the run trains on estimated ones."""
    settings = dataclasses.asdict(config)
    for field in dataclasses.fields(config):
        if field.name in DIGEST_DEFAULTS and settings[field.name] == field.default:
            del settings[field.name]
    if config.cb_source == "estimated":
        # Weights of another version of the estimator make another run.
        settings["cb_estimator_version"] = ESTIMATOR_VERSION
    return settings


def run_digest(config: RunConfig, run_data: RunData, cache: FeatureCache) -> str:
    """Hash of everything that determines a run's result: two settings, two folders."""

    content = {
        "config": config_settings(config),
        "labels": run_data.label_digest,
        "features": cache.manifest["ids_sha256"] + json.dumps(cache.settings, sort_keys=True),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


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
