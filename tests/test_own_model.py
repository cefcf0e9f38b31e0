"""A model of one's own partially labelled photographs: trained on cached features (and
fine-tuned), saved as one Keras model from images of any size to probabilities, read back by
plain Keras, used to predict and to evaluate, exported for serving; every bad input named."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from fixtures import make_own_fixture
from PIL import Image

from mlml_tf.apps.own.fit import fit_model
from mlml_tf.apps.own.folder import MODEL_FILES, load_model
from mlml_tf.apps.own.images import image_probabilities
from mlml_tf.apps.own.serve import evaluate_model, export_model, predict_images
from mlml_tf.cli.main import main
from mlml_tf.datasets.photos import CLASSES as OWN_CLASSES
from mlml_tf.metrics.report import tune_thresholds
from mlml_tf.metrics.scores import annotated_metrics, mean_average_precision
from mlml_tf.settings import FitSettings

SIZE = 32
SETTINGS = FitSettings(head="original", image_size=SIZE, epochs=30, batch_size=8,
                       validation=0.25, learning_rate=1.0)
FRESH = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def tiny_backbone(seed: int = 0) -> keras.Model:
    """Random convolutions keep what tells the photographs apart (colour, texture)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv_1"),
        keras.layers.BatchNormalization(name="bn_1"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv_2"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv_3"),
    ], name="tiny_backbone")


def cli(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    return make_own_fixture(root) | {"root": root}


@pytest.fixture(scope="module")
def trained(own):
    return fit_model(own["labels"], own["images"], own["root"] / "model", SETTINGS,
                     cache=own["root"] / "cache", backbone=tiny_backbone(), verbose=0,
                     progress=False)


def test_the_model_folder_holds_the_model_its_classes_thresholds_log_and_card(trained, own):
    folder = trained.folder
    assert {p.name for p in folder.iterdir()} >= {*MODEL_FILES, "training_log.csv",
                                                  "README.md", "validation"}
    assert trained.classes == list(OWN_CLASSES)
    assert (folder / "classes.txt").read_text().split() == list(OWN_CLASSES)
    thresholds = pd.read_csv(folder / "thresholds.csv")
    assert list(thresholds["class"]) == list(OWN_CLASSES)
    np.testing.assert_array_equal(thresholds["threshold"], trained.thresholds)
    log = pd.read_csv(folder / "training_log.csv")
    assert list(log["phase"]) == ["head"] * SETTINGS.epochs
    counts = trained.manifest["counts"]
    assert counts["train"]["rows"] + counts["validation"]["rows"] == 48
    assert counts["validation"]["rows"] == 12
    card = (folder / "README.md").read_text()
    assert "| validation | 12 |" in card and "cb-wce" in card and "mAP" in card
    validation = json.loads((folder / "validation" / "metrics.json").read_text())
    assert validation["metrics"]["annotated"]["n_unknown_entries"] > 0
    assert not list(own["root"].glob(".model.partial-*"))


def test_the_model_learns_what_the_photographs_show(trained, own):
    labels = own["truth"]
    probabilities = image_probabilities(trained, [own["images"] / n for n in own["names"]])
    learned = mean_average_precision(labels, probabilities)
    chance = 100 * labels.mean(axis=0).mean()
    assert learned > chance + 30, (learned, chance)


def test_the_thresholds_are_those_tuned_on_the_validation_rows(trained, own):
    validation = trained.folder / "validation"
    truth = np.loadtxt(validation / "test_ground_truth_classes.txt", delimiter=",")
    probabilities = np.loadtxt(validation / "predictions.out", delimiter=",")
    assert (truth == -1).any()
    np.testing.assert_allclose(trained.thresholds,
                               np.round(tune_thresholds(truth, probabilities), 2))


def test_one_keras_model_takes_uint8_images_of_any_size(trained, own):
    names = own["names"][:6]
    pictures = [np.asarray(Image.open(own["images"] / n).convert("RGB")) for n in names]
    h, w = pictures[0].shape[:2]
    same = np.stack([np.asarray(Image.fromarray(p).resize((w, h))) for p in pictures])
    direct = trained.predict(same.astype(np.uint8))
    files = []
    for i, p in enumerate(same):
        path = own["root"] / f"same{i}.png"
        Image.fromarray(p).save(path)
        files.append(path)
    np.testing.assert_allclose(image_probabilities(trained, files), direct, atol=1e-5)
    assert direct.shape == (6, len(OWN_CLASSES)) and ((direct > 0) & (direct < 1)).all()


def test_plain_keras_reads_the_saved_model_without_mlml_tf(trained, own):
    image = np.asarray(Image.open(own["images"] / own["names"][0]).convert("RGB"))
    np.save(own["root"] / "image.npy", image[None])
    code = ("import sys, numpy as np, keras; "
            f"m = keras.saving.load_model({str(trained.folder / 'model.keras')!r}); "
            f"np.save({str(own['root'] / 'plain.npy')!r}, "
            f"m.predict(np.load({str(own['root'] / 'image.npy')!r}), verbose=0)); "
            "assert 'mlml_tf' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=FRESH, cwd=own["root"])
    np.testing.assert_allclose(np.load(own["root"] / "plain.npy"), trained.predict(image[None]),
                               atol=1e-6)


def test_predict_writes_a_row_per_image_with_the_tuned_labels_or_the_top_k(trained, own,
                                                                          tmp_path):
    out = tmp_path / "predictions.csv"
    assert cli("predict", "--model", trained.folder, "--images", own["images"], "--out", out,
               "--quiet") == (0, "")
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 48 and list(table.columns) == ["image", *OWN_CLASSES, "labels"]
    p = table[list(OWN_CLASSES)].to_numpy()
    expected = [";".join(c for c, v, t in zip(OWN_CLASSES, row, trained.thresholds,
                                              strict=True) if v > t) for row in p]
    assert list(table["labels"]) == expected
    assert cli("predict", "--model", trained.folder, "--images", own["images"] / "a",
               own["images"] / "b" / "img000.png", "--out", out, "--top-k", "2",
               "--quiet")[0] == 0
    top = pd.read_csv(out)
    assert len(top) == 25 and (top["labels"].str.count(";") == 1).all()


def test_an_unreadable_image_stops_predict_or_is_skipped_and_listed(trained, own, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in own["names"][:3]:
        (folder / Path(name).name).write_bytes((own["images"] / name).read_bytes())
    (folder / "broken.jpg").write_bytes((own["images"] / own["names"][1]).read_bytes()[:300])
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    out = tmp_path / "p.csv"
    code, err = cli("predict", "--model", trained.folder, "--images", folder, "--out", out)
    assert code == 2 and "broken.jpg" in err and not out.exists(), err
    code, err = cli("predict", "--model", trained.folder, "--images", notes, "--out", out)
    assert code == 2 and "notes.txt" in err and not out.exists(), err
    code, _ = cli("predict", "--model", trained.folder, "--images", folder, "--out", out,
                  "--skip-bad-images", "--quiet")
    assert code == 0 and len(pd.read_csv(out)) == 3
    skipped = pd.read_csv(out.with_name("p.csv.skipped.csv"))
    assert list(skipped["image"]) == [str(folder / "broken.jpg")]


def test_evaluate_writes_a_runs_results_with_the_partial_map(trained, own, tmp_path):
    out = tmp_path / "evaluation"
    assert cli("evaluate", "--model", trained.folder, "--labels", own["labels"], "--images",
               own["images"], "--out", out)[0] == 0
    for name in ("predictions.out", "test_ground_truth_classes.txt", "evaluation_results.txt",
                 "results_report.csv", "results_extra.csv", "evaluation_extra.txt",
                 "metrics.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    truth = np.loadtxt(out / "test_ground_truth_classes.txt", delimiter=",")
    probabilities = np.loadtxt(out / "predictions.out", delimiter=",")
    assert metrics["annotated"]["partial_map"] == pytest.approx(
        mean_average_precision(truth, probabilities))
    assert metrics["map"] == pytest.approx(mean_average_precision(truth == 1, probabilities))
    assert "annotated entries" in (out / "evaluation_extra.txt").read_text()


def test_the_export_serves_encoded_images_with_the_keras_models_probabilities(trained, own,
                                                                             tmp_path):
    out = tmp_path / "serving" / "1"
    assert cli("export", "--model", trained.folder, "--out", out)[0] == 0
    files = [own["images"] / n for n in own["names"][:5]]  # JPEG and PNG
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(map(str, files)))
    code = ("import numpy as np, tensorflow as tf; "
            f"m = tf.saved_model.load({str(out)!r}); "
            f"data = [open(p, 'rb').read() for p in open({str(listing)!r}).read().split()]; "
            "r = m.signatures['serving_default'](images=tf.constant(data)); "
            f"np.save({str(tmp_path / 'served.npy')!r}, r['probabilities'].numpy())")
    subprocess.run([sys.executable, "-c", code], check=True, env=FRESH, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"),
                               image_probabilities(trained, files), atol=1e-5)
    assert (out / "classes.txt").read_text().split() == list(OWN_CLASSES)
    assert cli("export", "--model", trained.folder, "--out", out)[0] == 2


@pytest.mark.parametrize("damage, says", [
    (lambda f: (f / "thresholds.csv").unlink(), "incomplete model folder: thresholds.csv"),
    (lambda f: (f / "model.keras").write_bytes(b"PK\x03\x04 truncated"),
     "model.keras: cannot be read as a Keras model"),
    (lambda f: (f / "model.json").write_text("{"), "model.json: corrupt model manifest"),
    (lambda f: (f / "model.json").write_text(json.dumps(
        {**json.loads((f / "model.json").read_text()), "version": 99})),
     "written by an incompatible version of mlml-tf"),
    (lambda f: (f / "classes.txt").write_text("a\nb\n"), "classes.txt: classes differ"),
])
def test_a_damaged_model_folder_is_named_and_nothing_is_written(trained, tmp_path, own,
                                                                damage, says):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(trained.folder, folder)
    damage(folder)
    out = tmp_path / "p.csv"
    code, err = cli("predict", "--model", folder, "--images", own["images"], "--out", out)
    assert code == 2 and says in err and not out.exists(), err


def _no_output(root: Path, out: Path) -> bool:
    return not out.exists() and not list(root.glob(f".{out.name}.*"))


@pytest.mark.parametrize("table, extra, says", [
    ("image,cat,dog\nb/img000.png,1,0\nb/gone.jpg,0,1\n", [], "line 3: image 'b/gone.jpg'"),
    ("image,cat,dog\nb/img000.png,1,\na/img001.jpg,0,-1\n", [], "class 'dog' is unknown"),
    ("image,cat\nb/img000.png,0\na/img001.jpg,\n", [], "no row has a positive label"),
    ("image,cat\nb/img000.png,1\na/img001.jpg,0\n", ["--method", "epr"],
     "--set epr.expected_positives=K"),
    ("image,cat\nb/img000.png,1\na/img001.jpg,0\n", ["--set", "asl.gamma_neg=2"],
     "--method is 'cb-wce'"),
])
def test_bad_training_input_is_named_with_its_row_and_writes_nothing(own, tmp_path, table,
                                                                     extra, says):
    labels = tmp_path / "labels.csv"
    labels.write_text(table)
    out = tmp_path / "model"
    code, err = cli("train", "--labels", labels, "--images", own["images"], "--out", out,
                    "--cache", tmp_path / "cache", "--validation", "0", *extra)
    assert code == 2 and says in err and _no_output(tmp_path, out), err


def test_an_empty_images_folder_and_an_existing_model_folder_are_refused(own, tmp_path,
                                                                        trained):
    (tmp_path / "empty").mkdir()
    code, err = cli("train", "--labels", own["labels"], "--images", tmp_path / "empty", "--out",
                    tmp_path / "m")
    assert code == 2 and "holds no image" in err
    code, err = cli("train", "--labels", own["labels"], "--images", own["images"], "--out",
                    trained.folder)
    assert code == 2 and "exists already" in err


def test_the_command_line_trains_on_a_keras_application_and_the_same_seed_repeats(own,
                                                                                 tmp_path):
    args = ["--labels", own["labels"], "--images", own["images"], "--backbone", "MobileNetV2",
            "--weights", "none", "--image-size", SIZE, "--head", "gap", "--epochs", 2,
            "--batch-size", 8, "--cache", tmp_path / "cache", "--quiet"]
    outputs = []
    for k in range(2):
        # As in a fresh process: Keras numbers the layers it names for itself per session.
        keras.backend.clear_session()
        assert cli("train", *args, "--out", tmp_path / f"m{k}")[0] == 0
        out = tmp_path / f"p{k}.csv"
        assert cli("predict", "--model", tmp_path / f"m{k}", "--images", own["images"],
                   "--out", out, "--quiet")[0] == 0
        outputs.append({p.relative_to(tmp_path / f"m{k}"): p.read_bytes()
                        for p in (tmp_path / f"m{k}").rglob("*") if p.is_file()}
                       | {"predictions": out.read_bytes()})
    assert outputs[0].keys() == outputs[1].keys()
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], name
    assert load_model(tmp_path / "m0").manifest["settings"]["backbone"] == "MobileNetV2"


@pytest.mark.parametrize("method, params", [
    ("csl", ()), ("role", (("expected_positives", 1.5),)), ("pl-shrink", ()), ("asl", ()),
])
def test_the_fields_methods_train_a_model_too(own, tmp_path, method, params):
    settings = FitSettings(method=method, params=params, head="gap", image_size=SIZE, epochs=8,
                           batch_size=8, validation=0.25, learning_rate=1.0)
    trained = fit_model(own["labels"], own["images"], tmp_path / "m", settings,
                        cache=own["root"] / "cache", backbone=tiny_backbone(), verbose=0,
                        progress=False)
    assert trained.manifest["settings"]["method"] == method
    # Each learns what the photographs show (on this machine: CSL 57, ROLE 56, PL-Shrink 67,
    # ASL 47 mAP against 36 for chance after 8 epochs).
    labels = own["truth"]
    probabilities = image_probabilities(trained, [own["images"] / n for n in own["names"]])
    chance = 100 * labels.mean(axis=0).mean()
    assert mean_average_precision(labels, probabilities) > chance + 8


def test_fine_tuning_trains_the_top_layers_only_and_keeps_batch_norm(own, tmp_path):
    backbone = tiny_backbone()
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in backbone.layers}
    settings = FitSettings(head="gap", image_size=SIZE, epochs=1, batch_size=8, validation=0.25,
                           fine_tune=2, fine_tune_epochs=2, fine_tune_learning_rate=1e-2)
    trained = fit_model(own["labels"], own["images"], tmp_path / "m", settings,
                        cache=own["root"] / "cache", backbone=backbone, verbose=0,
                        progress=False)
    after = {layer.name: layer.get_weights() for layer in backbone.layers}
    changed = {name for name in before
               if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name],
                                                                strict=True))}
    assert changed == {"conv_2", "conv_3"}
    saved = trained.model.get_layer("tiny_backbone")
    np.testing.assert_array_equal(saved.get_layer("conv_3").get_weights()[0],
                                  after["conv_3"][0])
    log = pd.read_csv(trained.folder / "training_log.csv")
    assert list(log["phase"]) == ["head", "fine-tune", "fine-tune"]


def test_thresholds_and_micro_scores_leave_unknown_entries_out():
    rng = np.random.default_rng(0)
    truth = rng.integers(-1, 2, (60, 3))
    p = rng.random((60, 3))
    known = truth != -1
    for c in range(3):
        k = known[:, c]
        alone = tune_thresholds(truth[k, c][:, None], p[k, c][:, None])
        assert tune_thresholds(truth, p)[c] == alone[0]
    scores = annotated_metrics(truth, p, 0.5)
    tp = ((p > 0.5) & (truth == 1)).sum()
    assert scores["precision_micro"] == pytest.approx(tp / ((p > 0.5) & known).sum())
    assert scores["recall_micro"] == pytest.approx(tp / (truth == 1).sum())
    assert scores["n_unknown_entries"] == int((~known).sum())


def test_the_python_api_names_the_steps():
    import mlml_tf

    for name in ("fit_model", "load_model", "predict_images", "evaluate_model", "export_model",
                 "read_label_table", "FitSettings"):
        assert callable(getattr(mlml_tf, name)), name
    assert (evaluate_model, export_model, predict_images) == (
        mlml_tf.evaluate_model, mlml_tf.export_model, mlml_tf.predict_images)


class _Killed(Exception):
    pass


class _KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise _Killed


def test_a_fine_tuning_stopped_after_an_epoch_resumes_to_the_uninterrupted_model(own,
                                                                                  tmp_path):
    settings = FitSettings(head="gap", image_size=SIZE, epochs=1, batch_size=8, validation=0.25,
                           fine_tune=2, fine_tune_epochs=2, fine_tune_learning_rate=1e-2)
    common = dict(cache=own["root"] / "cache", verbose=0, progress=False)
    whole = fit_model(own["labels"], own["images"], tmp_path / "whole", settings,
                      backbone=tiny_backbone(), **common)
    with pytest.raises(_Killed):
        fit_model(own["labels"], own["images"], tmp_path / "resumed", settings,
                  backbone=tiny_backbone(), callbacks=[_KillAfterFirstEpoch()], **common)
    assert not (tmp_path / "resumed").exists()
    assert list(tmp_path.glob(".resumed.partial-*/fine-tune/backup"))
    resumed = fit_model(own["labels"], own["images"], tmp_path / "resumed", settings,
                        backbone=tiny_backbone(), **common)
    files = [own["images"] / n for n in own["names"]]
    np.testing.assert_array_equal(image_probabilities(resumed, files),
                                  image_probabilities(whole, files))
    log = pd.read_csv(resumed.folder / "training_log.csv")
    assert list(log["phase"]) == ["head", "fine-tune", "fine-tune"]
    assert not list(tmp_path.glob(".resumed.*"))
