"""A run trained end to end on images, batch norm on batch statistics as the original
(docs/original.md section 5)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.features.dataset import image_dataset  # noqa: E402
from mlml_tf.files.layout import write_groundtruth  # noqa: E402
from mlml_tf.files.split import split  # noqa: E402
from mlml_tf.settings import RunConfig  # noqa: E402
from mlml_tf.training import end_to_end  # noqa: E402
from mlml_tf.training.data import load_run_data  # noqa: E402
from mlml_tf.training.end_to_end import faithful_image_model, image_run_digest, train_run_on_images  # noqa: E402
from mlml_tf.training.heads import build_head  # noqa: E402
from mlml_tf.training.record import is_complete  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "colorwheel", "retina")
CLASSES = ["person", "dog", "cat", "car", "cup"]
N_IDS, N_FILES, SIZE = 40, 24, 32
CONFIG = RunConfig(method="im-wce", ratio=0.5, fold=1, epochs=2, batch_size=4)
RESULT_FILES = ("predictions.out", "test_ground_truth_classes.txt", "evaluation_results.txt",
                "results_report.csv", "results_extra.csv", "evaluation_extra.txt",
                "metrics.json", "training_log.csv", "head.weights.h5", "complete.json")


def tiny_backbone(seed: int = 0) -> keras.Model:
    """Two conv blocks with batch norm whose gamma, beta and moving statistics are not the
    initial ones, so that "unchanged" means something."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, strides=2),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(8, 3, strides=2),
        keras.layers.BatchNormalization(),
    ], name="tiny_backbone")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.2, beta),
                               rng.normal(0, 0.5, mean), rng.uniform(0.5, 2.0, var)])
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """40 ids on 24 real photographs (JPEG and PNG; some ids share a file), split in 4 folds."""
    from skimage import data as photos

    root = tmp_path_factory.mktemp("end_to_end")
    rng = np.random.default_rng(0)
    files = []
    for k in range(N_FILES):
        pixels = getattr(photos, PHOTOS[k % len(PHOTOS)])()
        pixels = np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels[..., :3]
        h, w = pixels.shape[:2]
        y0, x0 = rng.integers(0, h // 4), rng.integers(0, w // 4)
        crop = pixels[y0:y0 + 3 * h // 4, x0:x0 + 3 * w // 4][:, :: 1 if k % 3 else -1]
        image = Image.fromarray(crop).resize((int(rng.integers(48, 80)), int(rng.integers(48, 80))))
        path = root / "images" / f"photo{k}.{'jpg' if k % 2 else 'png'}"
        path.parent.mkdir(exist_ok=True)
        image.save(path)
        files.append(str(path))
    ids = [f"img{i:02d}" for i in range(N_IDS)]
    labels = np.zeros((N_IDS, len(CLASSES)), np.uint8)
    for row in labels:
        row[rng.choice(len(CLASSES), int(rng.integers(1, 4)), replace=False)] = 1
    write_groundtruth(root / "data", pd.DataFrame(labels, index=ids, columns=CLASSES))
    split(root / "data", ratios=[0.0, 0.5], seed=0)
    return root / "data", [files[i % N_FILES] for i in range(N_IDS)], ids


def run(folder, run_dir, config=CONFIG, **kwargs) -> dict:
    data, paths, ids = folder
    kwargs.setdefault("backbone", tiny_backbone())
    return train_run_on_images(data, paths, ids, run_dir, config, image_size=SIZE, verbose=0,
                               **kwargs)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """One run; the backbone's weights as they were before it."""
    backbone = tiny_backbone()
    before = [w.copy() for w in backbone.get_weights()]
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run(folder, run_dir, backbone=backbone)
    return run_dir, backbone, before


def test_training_normalizes_with_batch_statistics_and_testing_with_moving_ones(folder):
    data, paths, _ = folder
    model = faithful_image_model(len(CLASSES), CONFIG, tiny_backbone(), image_size=SIZE)
    x = np.concatenate(list(image_dataset(paths[:8], image_size=(SIZE, SIZE)).dataset))
    batch, other = x[:4], np.concatenate([x[:1], x[5:8]])
    train_a, train_b = (model(b, training=True).numpy()[0] for b in (batch, other))
    test_a, test_b = (model(b, training=False).numpy()[0] for b in (batch, other))
    assert not np.allclose(train_a, train_b, atol=1e-4), "training: row 0 depends on its batch"
    np.testing.assert_allclose(test_a, test_b, atol=1e-6, err_msg="test: row 0 depends on itself")
    assert {id(w) for w in model.trainable_weights} == {
        id(w) for w in model.get_layer("head").trainable_weights}


def test_backbone_weights_and_batch_norm_statistics_are_unchanged_the_head_trained(reference):
    run_dir, backbone, before = reference
    after = backbone.get_weights()
    assert len(after) == len(before) == 2 * 2 + 2 * 4  # conv kernels and biases; BN's four
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)
    initial = build_head(backbone.output.shape[1:], len(CLASSES), seed=CONFIG.seed)
    trained = build_head(backbone.output.shape[1:], len(CLASSES), seed=CONFIG.seed)
    trained.load_weights(run_dir / "head.weights.h5")
    changed = [not np.array_equal(a, b)
               for a, b in zip(trained.get_weights(), initial.get_weights(), strict=True)]
    assert all(changed), "head.weights.h5 holds the trained head"


def test_a_run_writes_its_results_and_is_then_complete(folder, reference):
    data, paths, ids = folder
    run_dir, backbone, _ = reference
    for name in RESULT_FILES:
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()
    run_data = load_run_data(data, CONFIG)
    digest = image_run_digest(CONFIG, run_data, paths, ids, backbone, image_size=SIZE)
    assert is_complete(run_dir, digest)
    extra = json.loads((run_dir / "metrics.json").read_text())["extra"]
    assert extra["settings_sha256"] == digest and extra["image_size"] == SIZE
    assert extra["test_rows"] == len(run_data.test_ids)
    assert np.loadtxt(run_dir / "predictions.out", delimiter=",").shape == (
        len(run_data.test_ids), len(CLASSES))
    moved = [p.replace("photo1.", "photo3.") for p in paths]
    for other in (image_run_digest(CONFIG, run_data, paths, ids, backbone, image_size=64),
                  image_run_digest(CONFIG, run_data, moved, ids, backbone, image_size=SIZE),
                  image_run_digest(CONFIG, run_data, paths, ids, tiny_backbone(1), image_size=SIZE),
                  image_run_digest(CONFIG, run_data, paths, ids, backbone, image_size=SIZE,
                                   scaling="inception")):
        assert other != digest


def test_same_seed_same_bytes_in_a_fresh_folder(folder, reference, tmp_path):
    run_dir, _, _ = reference
    run(folder, tmp_path / "again")
    for name in ("predictions.out", "test_ground_truth_classes.txt", "head.weights.h5"):
        assert (tmp_path / "again" / name).read_bytes() == (run_dir / name).read_bytes(), name


class Killed(Exception):
    pass


def test_a_run_killed_after_an_epoch_resumes_to_the_same_bytes(folder, reference, tmp_path,
                                                               monkeypatch):
    run_dir, _, _ = reference
    start_step = end_to_end.StartStep

    def killed_after_first_epoch():
        callback = start_step()

        def kill(epoch, logs=None):
            raise Killed(epoch)

        callback.on_epoch_end = kill  # after BackupAndRestore wrote the epoch's checkpoint
        return callback

    with monkeypatch.context() as patch:
        patch.setattr(end_to_end, "StartStep", killed_after_first_epoch)
        with pytest.raises(Killed):
            run(folder, tmp_path / "killed")
    assert (tmp_path / "killed" / "backup").is_dir()
    assert not (tmp_path / "killed" / "head.weights.h5").exists()
    run(folder, tmp_path / "killed")
    log = pd.read_csv(tmp_path / "killed" / "training_log.csv")
    assert list(log["epoch"]) == [1], "the second attempt trained only the second epoch"
    for name in ("predictions.out", "head.weights.h5"):
        assert (tmp_path / "killed" / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_as_the_original_unreadable_images_are_left_out_and_the_last_n_mod_b_rows_stay_zero(
        folder, tmp_path):
    data, paths, ids = folder
    config = RunConfig(method="ce", ratio=0.0, fold=1, epochs=1, batch_size=4,
                       faithful_scoring=True)
    lost = str(load_run_data(data, config).test_ids[0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(paths[0]).read_bytes()[:200])
    paths = [str(broken) if i == lost else p for i, p in zip(ids, paths, strict=True)]
    n = len(load_run_data(data, config).test_ids) - 1
    left = n % config.batch_size
    assert left, "the fixture must leave a partial batch"
    metrics = run((data, paths, ids), tmp_path / "faithful", config, skip_bad=True)
    prob = np.loadtxt(tmp_path / "faithful" / "predictions.out", delimiter=",")
    truth = np.loadtxt(tmp_path / "faithful" / "test_ground_truth_classes.txt", delimiter=",")
    assert prob.shape == truth.shape == (n, len(CLASSES))
    assert (prob[-left:] == 0).all() and (truth[-left:] == 0).all()
    assert (prob[:-left] > 0).all() and (truth[:-left].sum(axis=1) > 0).all()
    assert metrics["n_samples"] == n, "the zero rows are scored, as the original did"
    extra = json.loads((tmp_path / "faithful" / "metrics.json").read_text())["extra"]
    assert extra["rows_without_image"] == {"train": 0, "test": 1}


def test_an_unreadable_image_or_a_saved_model_backbone_stops_before_training(folder, tmp_path):
    data, paths, ids = folder
    test_id = str(load_run_data(data, CONFIG).test_ids[0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(Path(paths[0]).read_bytes()[:200])
    bad_paths = [str(broken) if i == test_id else p for i, p in zip(ids, paths, strict=True)]
    with pytest.raises(DataError, match=f"image of id '{test_id}'"):
        train_run_on_images(data, bad_paths, ids, tmp_path / "bad", CONFIG, tiny_backbone(),
                            image_size=SIZE)
    with pytest.raises(DataError, match="SavedModel"):
        train_run_on_images(data, paths, ids, tmp_path / "hub", CONFIG, hub=str(tmp_path))
    assert not (tmp_path / "bad" / "complete.json").exists()
