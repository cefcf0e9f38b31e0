"""Run folders written by mlml-tf 0.5 stay complete: the same settings and files give the same
digest, the name of a run's folder and the key of its ``complete.json``.

``tests/data/digests_0.5.json`` holds the digests that mlml-tf 0.5 computed for the runs below
(every method under every protocol, with the grid's options varied, and the runs of
``--faithful`` on images) over the data folder that :func:`_data_folder` writes.
"""

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlml_tf.apps.grid import faithful_options, run_config
from mlml_tf.files.layout import write_groundtruth
from mlml_tf.files.split import split, split_protocol
from mlml_tf.settings import GridOptions, shared
from mlml_tf.training.data import load_run_data
from mlml_tf.training.end_to_end import image_run_digest
from mlml_tf.training.record import run_digest

DIGESTS = json.loads((Path(__file__).parent / "data" / "digests_0.5.json").read_text())["rows"]
#: What a feature cache contributes to a digest.
CACHE = types.SimpleNamespace(manifest={"ids_sha256": "f" * 64},
                              settings={"backbone": "x", "image_size": [8, 8]})


def _data_folder(root: Path) -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random((96, 6)) < 0.35).astype(np.uint8)
    labels[labels.sum(1) == 0, 0] = 1
    frame = pd.DataFrame(labels, index=[f"im{i:03d}" for i in range(96)],
                         columns=["cat", "dog", "sky", "car", "tree", "boat"])
    write_groundtruth(root, frame)
    split(root, n_folds=4, seed=3)
    split_protocol(root, "rps", [0.5], n_folds=4, seed=3)
    split_protocol(root, "fpc", [5], n_folds=4, seed=3)
    split_protocol(root, "single-positive", None, n_folds=4, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _data_folder(root)
    return root


def test_every_run_of_0_5_keeps_its_digest(data):
    assert len(DIGESTS) > 800
    for row in (r for r in DIGESTS if not r.get("faithful_images")):
        options = GridOptions(**row["options"])
        ratio = row["value"] if row["protocol"] in ("paper", "rps") else 0.0
        count = row["value"] if row["protocol"] == "fpc" else 1000
        config = run_config(row["method"], ratio, row["fold"], row["protocol"], count,
                            row["epochs"], options.loss_input, shared(options, "run"),
                            row["params"])
        assert run_digest(config, load_run_data(data, config), CACHE) == row["digest"], row


def test_runs_on_images_of_0_5_keep_their_digest(data):
    # --faithful of 0.5: without the test count of images left out and the accurate JPEG
    # decoding, which it has done since.
    today = faithful_options(GridOptions(images=Path("/images")), data)
    faithful = dataclasses.replace(today, faithful_test_count=False, jpeg_idct="fast")
    ids = list(pd.read_csv(data / "groundtruth.csv", index_col=0).index)
    paths = [f"/images/{i}.png" for i in ids]
    rows = [r for r in DIGESTS if r.get("faithful_images")]
    assert len(rows) == 3
    for row in rows:
        config = run_config(row["method"], 0.5, 2, "paper", 1000, 3, faithful.loss_input,
                            shared(faithful, "run"))
        digest = image_run_digest(config, load_run_data(data, config), paths, ids,
                                  faithful.backbone, None, None, 32, faithful.scaling,
                                  faithful.resize, False)
        assert digest == row["digest"], row
        config = run_config(row["method"], 0.5, 2, "paper", 1000, 3, today.loss_input,
                            shared(today, "run"))
        assert image_run_digest(config, load_run_data(data, config), paths, ids,
                                today.backbone, None, None, 32, today.scaling, today.resize,
                                False, today.jpeg_idct) != row["digest"], "other settings"
