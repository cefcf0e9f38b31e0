"""Where the original defines the experiment, the port does the same (docs/original.md sections 3,
6-8)."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import feature_cache, learnable_features, split_folder, top_classes, tree_digests

from mlml_tf import DataError, read_run_labels
from mlml_tf.apps.figures import POSITIVE_SAMPLES, true_positives_table
from mlml_tf.apps.grid import experiment_naming, faithful_options, run_cells
from mlml_tf.apps.tables import collect_runs, summary_table
from mlml_tf.faithful import departures, faithful_settings, is_faithful
from mlml_tf.files.layout import (
    GLOBAL_WEIGHTS,
    ratio_folder,
    ratio_tag,
    run_files,
    write_groundtruth,
)
from mlml_tf.files.split import split
from mlml_tf.metrics.report import per_class_report
from mlml_tf.metrics.scores import evaluate
from mlml_tf.runs.names import experiment_name
from mlml_tf.runs.outputs import evaluation_text, write_run_outputs
from mlml_tf.runs.reading import read_run
from mlml_tf.settings import _UNDECLARED, GridOptions, Option, RunConfig
from mlml_tf.settings import options as settings_options
from mlml_tf.training.data import load_run_data
from mlml_tf.training.optimizer import adadelta
from mlml_tf.training.record import is_complete
from mlml_tf.training.runs import scored_test_rows, train_run
from mlml_tf.training.schedule import batch_rows, buffer_shuffle_order, original_steps_per_epoch

PUBLISHED = ("train", "negative_weights", "positive_weights", "test")


# ------------------------------------------------------------------------------- file names


def _published_as(reference_dir, data: str, root, ratio: float, names: str = "original"):
    """The authors' ratio-0.5 files of fold 1, copied under the names of another ratio."""
    source = run_files(reference_dir / data, 0.5, 1)
    tag = ratio_tag(ratio) if names == "original" else str(ratio)
    target = {
        "train": f"train1_{tag}.csv", "negative_weights": f"negative_weights1_{tag}.csv",
        "positive_weights": f"positive_weights{tag}.csv", "test": f"test1_{tag}.csv",
    }
    folder = root / ratio_folder(ratio)
    folder.mkdir(parents=True, exist_ok=True)
    for key in PUBLISHED:
        shutil.copyfile(source[key], folder / target[key])


@pytest.mark.parametrize("data", ["labels_balanced_4labels", "labels_balanced_nus"])
def test_original_names_at_every_paper_ratio_are_read(reference_dir, tmp_path, data):
    """Ratio 0.25 lives in missing_labels0.2/train1_0.2.csv, 0.75 in missing_labels0.8/..."""
    expected = read_run_labels(reference_dir / data, 0.5, 1)
    for ratio in (0.25, 0.75):
        _published_as(reference_dir, data, tmp_path, ratio)
        files = read_run_labels(tmp_path, ratio, 1)
        assert run_files(tmp_path, ratio, 1)["train"].name == f"train1_{ratio_tag(ratio)}.csv"
        for key in ("train", "negative_weights", "test"):
            pd.testing.assert_frame_equal(files[key], expected[key])


def test_folders_of_earlier_versions_are_read(reference_dir, tmp_path):
    _published_as(reference_dir, "labels_balanced_4labels", tmp_path, 0.25, names="exact")
    assert run_files(tmp_path, 0.25, 1)["train"].name == "train1_0.25.csv"
    assert len(read_run_labels(tmp_path, 0.25, 1)["train"]) == 24731


def test_split_writes_the_original_names(tmp_path, coco_reference):
    labels = coco_reference.drop(columns="fold").astype(np.uint8).iloc[:400]
    write_groundtruth(tmp_path, labels)
    manifest = split(tmp_path, seed=0)
    names = set(manifest["split"]["checksums"])
    assert "missing_labels0.2/train1_0.2.csv" in names
    assert "missing_labels0.8/negative_weights4_0.8.csv" in names
    assert "missing_labels0.2/positive_weights0.2.csv" in names
    assert not any("0.25" in n or "0.75" in n for n in names)
    assert manifest["split"]["ratios"] == [0.0, 0.25, 0.5, 0.75], "the manifest keeps the ratios"


def test_nus_wide_folders_get_the_nus_experiment_names(reference_dir, tmp_path):
    assert experiment_naming(reference_dir / "labels_balanced_nus") == "nuswide"
    assert experiment_naming(reference_dir / "labels_balanced_4labels") == "coco"
    write_groundtruth(tmp_path, pd.DataFrame([[1, 0]], index=["a"], columns=["x", "y"]),
                      source={"dataset": "nuswide"})
    assert experiment_naming(tmp_path) == "nuswide"


# ------------------------------------------------------------------------------- optimizer


def _adadelta_tf1(grads, rho=0.95, eps=1e-8, start=0.0):
    """TF1's ApplyAdadelta, written out (tensorflow/core/kernels/training_ops.cc); the rate 0.1
    a float32 tensor, as TF1's ``exponential_decay(0.1, ...)`` made it."""
    lr = np.float64(np.float32(0.1))
    var, accum, accum_update = np.float64(start), 0.0, 0.0
    trace = []
    for g in grads:
        accum = rho * accum + (1 - rho) * g * g
        update = np.sqrt(accum_update + eps) / np.sqrt(accum + eps) * g
        accum_update = rho * accum_update + (1 - rho) * update * update
        var = var - lr * update
        trace.append(var)
    return np.array(trace)


def _steps(optimizer, grads):
    import tensorflow as tf

    var = tf.Variable(0.0, dtype=tf.float64)
    trace, rates = [], []
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g, tf.float64), var)])
        trace.append(float(var.numpy()))
        rates.append(float(optimizer.learning_rate.numpy()))
    return np.array(trace), np.array(rates)


def test_adadelta_steps_equal_tf1s_update_rule():
    grads = np.random.default_rng(0).normal(size=6)
    ours, _ = _steps(adadelta(RunConfig(method="ce", ratio=0.0, fold=1)), grads)
    np.testing.assert_allclose(ours, _adadelta_tf1(grads), rtol=1e-12)
    # Keras' default epsilon, 1e-7, gives other steps: Adadelta's step scales with sqrt(eps).
    assert not np.allclose(ours, _adadelta_tf1(grads, eps=1e-7), rtol=1e-3)


def test_learning_rate_is_the_constant_0_1_at_every_step_by_default():
    import keras

    config = RunConfig(method="ce", ratio=0.0, fold=1)
    optimizer = adadelta(config)
    # 2,100 steps: past the two points where the decay the code built would have acted.
    _, rates = _steps(optimizer, np.full(2100, 0.01))
    assert int(optimizer.iterations.numpy()) == 2100
    assert (rates == np.float32(0.1)).all()
    assert config.epsilon == 1e-8 and config.rho == 0.95
    decayed = adadelta(RunConfig(method="ce", ratio=0.0, fold=1, lr_schedule="exponential-decay"))
    schedule = decayed.learning_rate if callable(decayed.learning_rate) else decayed._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    rates = [float(schedule(step)) for step in (0, 999, 1000, 2500)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.095, 0.1 * 0.95 ** 2], rtol=1e-6)


# ------------------------------------------------------------------------------- the stream


def test_original_step_count_is_the_rows_of_train1_0_0_over_32(reference_dir, tmp_path):
    _published_as(reference_dir, "labels_balanced_4labels", tmp_path, 0.0)
    assert original_steps_per_epoch(tmp_path) == 24731 // 32


def test_a_repeating_stream_visits_every_row_once_per_pass():
    n, b, steps = 100, 32, 25  # 800 positions: 8 passes, batches straddle passes
    stream = np.concatenate([batch_rows(n, b, 3, k, steps_per_epoch=steps) for k in range(25)])
    for p in range(8):
        assert sorted(stream[p * n:(p + 1) * n]) == list(range(n))
    assert (batch_rows(n, b, 3, 17, steps_per_epoch=steps) == stream[17 * b:18 * b]).all()
    per_epoch = batch_rows(n, b, 3, 4)
    assert len(per_epoch) == b and len(set(per_epoch)) == b


def test_a_shuffle_buffer_keeps_rows_near_their_place():
    order = buffer_shuffle_order(1000, 100, seed=0)
    assert sorted(order) == list(range(1000))
    assert (order < np.arange(1000) + 100).all(), "a row can only leave once it is in the buffer"
    assert (order == buffer_shuffle_order(1000, 100, seed=0)).all()
    assert sorted(buffer_shuffle_order(50, 100, seed=1)) == list(range(50))
    stream = batch_rows(1000, 32, 0, 0, shuffle_buffer=100)
    assert (stream == buffer_shuffle_order(1000, 100, [0, 0])[:32]).all()


# ------------------------------------------------------------------------------- result files


#: ``evaluation_results.txt`` of CE, COCO, fold 1, ratio 0, rebuilt from the numbers the original
#: printed (CE-MSCOCO, cell 5) in the layout its code wrote (cell 3): five lines, no final newline.
LOGGED = Path(__file__).parent / "data" / "evaluation_results_ce_coco_ratio0.0split_1.txt"


def test_the_originals_evaluation_results_are_rebuilt_byte_for_byte(reference_dir):
    """The logged run scored 7 exact matches over the 8,321 rows of fold 1's test file."""
    test = read_run_labels(reference_dir / "labels_balanced_4labels", 0.5, 1)["test"]
    assert len(test) == 8321
    metrics = {"exact_match_accuracy": 7 / len(test), "roc_auc_macro": 0.8747805212061313,
               "roc_auc_micro": 0.9135003140455494, "roc_auc_weighted": 0.8520347203175356,
               "hamming_loss": 0.10158334334815527}
    assert evaluation_text(metrics).encode() == LOGGED.read_bytes()
    assert LOGGED.read_bytes().count(b"\n") == 4 and not LOGGED.read_bytes().endswith(b"\n")


def _originals_files(test_pred_prob, test_classes, labels_list, folder):
    """The original's ``evaluate_model`` and ``create_analysis_report`` (CE-MSCOCO, cell 3),
    as written but for ``DataFrame.append``, which pandas 2 removed (``pd.concat`` here), and
    the bar chart."""
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        f1_score,
        hamming_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    test_pred = np.round(test_pred_prob)
    accuracy = 100 * accuracy_score(test_classes, test_pred)
    auc_roc = roc_auc_score(test_classes, test_pred_prob)
    auc_roc_micro = roc_auc_score(test_classes, test_pred_prob, average="micro")
    auc_roc_weighted = roc_auc_score(test_classes, test_pred_prob, average="weighted")
    hamming_error = hamming_loss(test_classes, test_pred)
    with open(folder / "evaluation_results.txt", "w") as f:
        f.write("Exact match accuracy is: " + str(accuracy) + "%\n"
                + "Area Under the Curve (AUC) is: " + str(auc_roc)
                + "\nMicro AUC is:" + str(auc_roc_micro)
                + "\nWeighted AUC is:" + str(auc_roc_weighted)
                + "\nHamming Loss (ratio of incorrect tags) is: " + str(hamming_error))

    model_output, groundtruth = test_pred_prob, test_classes
    model_output_rounded = np.round(model_output)
    model_output_rounded = np.clip(model_output_rounded, 0, 1)
    accuracies_perclass = sum(model_output_rounded == groundtruth) / len(groundtruth)
    results_df = pd.DataFrame(columns=labels_list)
    percentage_of_positives_perclass = sum(groundtruth) / len(groundtruth)
    results_df.loc[0] = percentage_of_positives_perclass
    results_df.loc[1] = accuracies_perclass
    results_df.index = ['Ratio of positive samples', 'Model accuracy']
    true_positives_ratio_perclass = (sum((model_output_rounded == groundtruth)
                                         * (groundtruth == 1)) / sum(groundtruth))
    results_df.loc[2] = true_positives_ratio_perclass
    true_negative_ratio_perclass = sum((model_output_rounded == groundtruth)
                                       * (groundtruth == 0)) / (len(groundtruth) - sum(groundtruth))
    results_df.loc[3] = true_negative_ratio_perclass
    auc_roc_per_label = roc_auc_score(groundtruth, model_output, average=None)
    precision_perlabel = precision_score(groundtruth, model_output_rounded, average=None)
    recall_perlabel = recall_score(groundtruth, model_output_rounded, average=None)
    f1_perlabel = f1_score(groundtruth, model_output_rounded, average=None)
    kappa_perlabel = [cohen_kappa_score(groundtruth[:, x], model_output_rounded[:, x])
                      for x in range(len(labels_list))]
    results_df = pd.concat([results_df, pd.DataFrame(
        [auc_roc_per_label, recall_perlabel, precision_perlabel, f1_perlabel, kappa_perlabel],
        columns=labels_list)])
    results_df.index = ['Ratio of positive samples', 'Model accuracy', 'True positives ratio',
                        'True negatives ratio', "AUC", "Recall", "Precision", "f1-score",
                        "Kappa score"]
    results_df['average'] = results_df.mean(numeric_only=True, axis=1)
    results_df.T.to_csv(folder / "results_report.csv", float_format="%.2f")


@pytest.mark.parametrize("seed", range(5))
def test_the_result_files_are_what_the_originals_code_writes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    names = ["person", "dining table", "hot, dog", 'a "b"', "0"]
    y = (rng.random((157, len(names))) < rng.uniform(0.05, 0.6, len(names))).astype(int)
    y[:2] = [[1] * len(names), [0] * len(names)]
    p = np.clip(0.4 * y + 0.6 * rng.random(y.shape), 0, 1).round(rng.integers(1, 4))
    (tmp_path / "original").mkdir()
    _originals_files(p, y, names, tmp_path / "original")
    write_run_outputs(tmp_path / "ours", y, p, names)
    for name in ("evaluation_results.txt", "results_report.csv"):
        assert (tmp_path / "ours" / name).read_bytes() == \
            (tmp_path / "original" / name).read_bytes(), name


def test_results_report_layout_by_hand(tmp_path):
    """Two classes over four rows, every number worked out by hand; the means 0.625 and
    0.875 are exact binary fractions that %.2f rounds half to even."""
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    p = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.1], [0.2, 0.3]])
    write_run_outputs(tmp_path, y, p, ["dog", "cat"])
    assert (tmp_path / "results_report.csv").read_bytes() == (
        b",Ratio of positive samples,Model accuracy,True positives ratio,True negatives ratio,"
        b"AUC,Recall,Precision,f1-score,Kappa score\n"
        b"dog,0.50,0.50,0.50,0.50,0.75,0.50,0.50,0.50,0.00\n"
        b"cat,0.50,0.75,0.50,1.00,1.00,0.50,1.00,0.67,0.50\n"
        b"average,0.50,0.62,0.50,0.75,0.88,0.50,0.75,0.58,0.25\n")
    assert (tmp_path / "evaluation_results.txt").read_bytes() == (
        b"Exact match accuracy is: 25.0%\nArea Under the Curve (AUC) is: 0.875\n"
        b"Micro AUC is:0.875\nWeighted AUC is:0.875\n"
        b"Hamming Loss (ratio of incorrect tags) is: 0.375")


def test_a_class_without_positives_where_the_original_stopped(tmp_path):
    """scikit-learn's roc_auc_score raised there, so the original wrote neither file; ours
    leave what is undefined empty (csv) or nan (text), and average over the rest."""
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.2], [0.2, 0.3]])
    write_run_outputs(tmp_path, y, p, ["dog", "none"])
    assert (tmp_path / "results_report.csv").read_text().split("\n")[2:4] == [
        "none,0.00,0.75,,0.75,,0.00,0.00,0.00,0.00",
        "average,0.25,0.62,0.50,0.62,0.75,0.25,0.25,0.25,0.00"]
    lines = (tmp_path / "evaluation_results.txt").read_text().split("\n")
    assert lines[1:4] == ["Area Under the Curve (AUC) is: 0.75", "Micro AUC is:0.8333333333333334",
                          "Weighted AUC is:0.75"]
    y[:, 0] = 0
    write_run_outputs(tmp_path, y, p, ["dog", "none"])
    lines = (tmp_path / "evaluation_results.txt").read_text().split("\n")
    assert lines[1:4] == ["Area Under the Curve (AUC) is: nan", "Micro AUC is:nan",
                          "Weighted AUC is:nan"]
    assert np.isnan(float(lines[1].split(": ")[1]))
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["metrics"]["roc_auc_macro"] is None
    assert document["metrics"]["auc_undefined_classes"] == ["dog", "none"]


def test_our_additions_go_to_files_of_our_own(tmp_path):
    rng = np.random.default_rng(4)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    p = rng.random(y.shape)
    metrics = write_run_outputs(tmp_path, y, p, ["dog", "cat", "NA"], thresholds=[0.3, 0.5, 0.7],
                                extra={"epochs": 3})
    extra = (tmp_path / "results_extra.csv").read_text().split("\n")
    assert extra[0] == ("class,positive_rate,accuracy,true_positive_rate,true_negative_rate,auc,"
                        "auc_defined,average_precision,precision,recall,f1,kappa,support,"
                        "true_positives,false_positives,false_negatives,true_negatives,threshold")
    assert [line.split(",")[0] for line in extra[1:]] == ["dog", "cat", "NA", ""]
    report = per_class_report(y, p, ["dog", "cat", "NA"], [0.3, 0.5, 0.7])
    back = pd.read_csv(tmp_path / "results_extra.csv", index_col="class", dtype={"class": str},
                       keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(back, report.astype({"auc_defined": np.int64}),
                                  check_exact=True)
    text = (tmp_path / "evaluation_extra.txt").read_text()
    assert text.startswith("Test rows: 40\nClasses: 3\nThreshold: per class (see "
                           "results_extra.csv)\n") and 'epochs: 3\n' in text
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["faithful"] is False and document["version"] == 2
    assert document["metrics"] == json.loads(json.dumps(metrics))
    write_run_outputs(tmp_path, y, p, ["dog", "cat", "NA"], faithful=True)
    assert json.loads((tmp_path / "metrics.json").read_text())["faithful"] is True


#: Run folders of three runs written by mlml-tf 0.5: its two text files held the original's
#: lines and columns first, then its own.
RUNS_0_5 = Path(__file__).parent / "data" / "runs_0.5"


def test_run_folders_of_0_5_still_read(tmp_path):
    shutil.copytree(RUNS_0_5, tmp_path / "runs")
    report = (tmp_path / "runs").glob("PosLimited_*/*/results_report.csv")
    assert "auc_defined" in next(report).read_text(), "the superset of 0.5"
    runs = collect_runs(tmp_path / "runs")
    assert list(runs["method"]) == ["ce", "im-wce", "cb-wce"]
    assert (runs["ratio"] == 0.5).all() and runs["faithful"].isna().all()
    for run_dir in runs["run_dir"]:
        complete = json.loads((Path(run_dir) / "complete.json").read_text())
        assert is_complete(run_dir, complete["settings_sha256"])
        back = read_run(run_dir)
        truth, prob = (np.loadtxt(Path(run_dir) / name, delimiter=",") for name in
                       ("test_ground_truth_classes.txt", "predictions.out"))
        assert back["metrics"] == json.loads(json.dumps(evaluate(truth.astype(int), prob,
                                                                 back["classes"])))
        pd.testing.assert_frame_equal(back["report"],
                                      per_class_report(truth.astype(int), prob, back["classes"]))
    table = summary_table(runs)
    assert len(table) == 3
    assert list(true_positives_table(runs).columns) == ["CE", "IM-WCE", "CB-WCE",
                                                       POSITIVE_SAMPLES]


def test_figure_3_is_fold_1_at_ratio_0_5_with_the_positive_samples(tmp_path):
    rng = np.random.default_rng(3)
    names = [f"c{i}" for i in range(20)]
    for fold in (1, 2):
        y = (rng.random((80, 20)) < np.linspace(0.6, 0.05, 20)).astype(int)
        for method in ("ce", "im-wce", "cb-wce"):
            p = np.clip(0.4 * y + 0.6 * rng.random(y.shape), 0, 1)
            write_run_outputs(tmp_path / experiment_name(method, 0.5, fold) / "r", y, p, names)
        if fold == 1:
            fold_1 = y
    table = true_positives_table(collect_runs(tmp_path))
    assert list(table.columns) == ["CE", "IM-WCE", "CB-WCE", POSITIVE_SAMPLES]
    assert len(table) == 15
    support = pd.Series(fold_1.sum(axis=0), index=names)
    assert (table[POSITIVE_SAMPLES] == support[table.index]).all(), "fold 1's test positives"
    assert table[POSITIVE_SAMPLES].is_monotonic_decreasing
    mean = true_positives_table(collect_runs(tmp_path), fold=None)
    assert not mean[POSITIVE_SAMPLES].equals(table[POSITIVE_SAMPLES])


# --------------------------------------------------------------------- runs on a feature cache


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory, coco_reference):
    root = tmp_path_factory.mktemp("faithful")
    labels = top_classes(coco_reference, 200, 8, keep_empty=True)
    split_folder(root, labels, ratios=[0.0, 0.5], seed=0)
    x = learnable_features(labels.to_numpy(), (2, 2, 4), noise=1.0)
    return root, labels, feature_cache(root / "cache", labels.index, x)


def test_the_authors_global_weights_are_read_by_id(small_grid, tmp_path):
    root, labels, _ = small_grid
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    weights = pd.DataFrame(np.random.default_rng(0).random(labels.shape).round(3),
                           index=labels.index[::-1], columns=labels.columns)  # other row order
    weights.to_csv(data / GLOBAL_WEIGHTS)
    run = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, cb_source="file"))
    train = read_run_labels(data, 0.5, 1)["train"]
    negative = run.weights[run.train_labels == 0]
    expected = weights.loc[train.index].to_numpy(np.float32)[train.to_numpy() == 0]
    np.testing.assert_allclose(negative, expected, rtol=1e-6)

    weights.iloc[:, :-1].to_csv(data / GLOBAL_WEIGHTS)
    with pytest.raises(DataError, match=f"class '{labels.columns[-1]}' of train1_0.5.csv has "
                       "no column") as err:
        load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, cb_source="file"))
    assert err.value.file.endswith(GLOBAL_WEIGHTS)
    weights.drop(index=train.index[3]).to_csv(data / GLOBAL_WEIGHTS)
    with pytest.raises(DataError, match=f"id '{train.index[3]}' of train1_0.5.csv "
                       r"\(line 5\) has no row"):
        load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, cb_source="file"))


def test_faithful_scoring_leaves_the_last_test_rows_at_zero(small_grid, tmp_path):
    root, _, cache = small_grid
    config = RunConfig(method="ce", ratio=0.5, fold=1, epochs=1, batch_size=16,
                       faithful_scoring=True)
    metrics = train_run(root / "data", cache, tmp_path, config, verbose=0)
    truth = np.loadtxt(tmp_path / "test_ground_truth_classes.txt", delimiter=",")
    prob = np.loadtxt(tmp_path / "predictions.out", delimiter=",")
    n = len(truth)
    kept = n - n % 16
    assert n % 16 and (truth[kept:] == 0).all() and (prob[kept:] == 0).all()
    assert (prob[:kept] > 0).all()
    assert metrics == json.loads(json.dumps(evaluate(truth.astype(int), prob,
                                                     metrics_classes(tmp_path))))
    test = read_run_labels(root / "data", 0.5, 1)["test"].to_numpy()
    assert not (truth[:kept] == test[:kept]).all(), "the scored rows follow the shuffled stream"


def test_faithful_test_count_counts_the_rows_whose_image_was_left_out():
    # NUS-WIDE (docs/original.md section 5): the original's arrays held a row per line of the
    # test file, images that failed to load included, while its stream carried only the
    # others; B floor(N / B) rows were filled from that stream, the rest stayed zero.
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 3)) < 0.5).astype(np.int64)
    calls = []

    def predict(idx):
        calls.append(np.asarray(idx))
        return (idx[:, None] + 1.0) / 100 * np.ones((1, 3))

    count = RunConfig(method="ce", ratio=0.0, fold=1, batch_size=16, faithful_scoring=True,
                      faithful_test_count=True)
    plain = RunConfig(method="ce", ratio=0.0, fold=1, batch_size=16, faithful_scoring=True)
    # 40 rows with an image and 5 without: 45 rows scored, 32 predicted, 13 zero.
    prob, truth = scored_test_rows(predict, labels, count, left_out=5)
    assert prob.shape == truth.shape == (45, 3)
    order = calls[-1]
    assert len(order) == 32 == len(set(order.tolist()))
    np.testing.assert_array_equal(truth[:32], labels[order])
    assert not prob[32:].any() and not truth[32:].any()
    # Without the count, 40 rows (as before): the same shuffled order, 8 zero.
    prob_plain, truth_plain = scored_test_rows(predict, labels, plain, left_out=5)
    assert prob_plain.shape == (40, 3) and not truth_plain[32:].any()
    np.testing.assert_array_equal(calls[-1], order)
    np.testing.assert_array_equal(
        order, buffer_shuffle_order(40, 100, [0, 1])[:32])
    # 20 rows with an image and 14 without: 32 predicted, a second pass for the last 12.
    prob, truth = scored_test_rows(predict, labels[:20], count, left_out=14)
    order = calls[-1]
    assert prob.shape == (34, 3) and len(order) == 32
    assert sorted(order[:20].tolist()) == list(range(20)) and len(set(order[20:])) == 12
    assert not np.array_equal(order[20:], order[:12]), "the second pass is shuffled anew"
    # Without faithful scoring nothing changes: every row, in file order.
    default = RunConfig(method="ce", ratio=0.0, fold=1, faithful_test_count=True)
    prob, truth = scored_test_rows(predict, labels, default, left_out=5)
    assert truth is labels and calls[-1].tolist() == list(range(40))
    with pytest.raises(DataError, match="none of the 40 test rows"):
        scored_test_rows(predict, labels[:0], count, left_out=40)


def test_a_run_scores_the_test_rows_of_images_left_out_as_the_original(small_grid, tmp_path):
    from mlml_tf.features.cache import build_feature_cache

    root, labels, cache = small_grid
    test = read_run_labels(root / "data", 0.5, 1)["test"]
    gone = list(test.index[:7])
    kept = [i for i in cache.ids if i not in gone]
    x = cache.read(cache.rows_of(kept))
    partial = build_feature_cache(tmp_path / "cache", kept, lambda: iter([x]), lambda b: b,
                                  {"backbone": "projection"}, skipped=gone, progress=False)
    config = RunConfig(method="ce", ratio=0.5, fold=1, epochs=1, batch_size=16,
                       faithful_scoring=True, faithful_test_count=True)
    train_run(root / "data", partial, tmp_path / "run", config, verbose=0)
    truth = np.loadtxt(tmp_path / "run" / "test_ground_truth_classes.txt", delimiter=",")
    n = len(test)
    assert len(truth) == n, "one row per line of the test file, as the original"
    assert not truth[n - n % 16:].any() and (truth[: n - n % 16].sum(axis=1) > 0).any()


def metrics_classes(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["classes"]


def test_faithful_options_undo_every_departure(small_grid, tmp_path):
    root, _, _ = small_grid
    options = faithful_options(GridOptions(), root / "data")
    assert options.faithful_batch_norm and options.faithful_scoring
    assert options.loss_input == "original" and options.pos_weight_source == "original"
    assert options.cb_source == "oracle" and options.steps_per_epoch == "original"
    assert options.shuffle_buffer == 100 and options.learning_rate == 0.1
    assert options.lr_schedule == "constant"
    assert options.faithful_test_count and options.jpeg_idct == "accurate"
    (tmp_path / GLOBAL_WEIGHTS).write_text("")
    assert faithful_options(GridOptions(), tmp_path).cb_source == "file"


def test_loss_input_original_trains_ce_on_logits_and_weighted_methods_on_probabilities(
        small_grid, tmp_path):
    root, _, cache = small_grid
    cells = [("ce", 0.5, 1), ("im-wce", 0.5, 1)]
    run_cells(root / "data", tmp_path, cache, cells, epochs=1, verbose=0,
              loss_input="original", config_overrides={"steps_per_epoch": "original"})
    runs = collect_runs(tmp_path)
    configs = {}
    for run_dir, method in zip(runs["run_dir"], runs["method"], strict=True):
        extra = json.loads((tmp_path / run_dir / "metrics.json").read_text())["extra"]
        configs[method] = extra
    assert configs["ce"]["config"]["from_logits"] is True
    assert configs["im-wce"]["config"]["from_logits"] is False
    assert configs["ce"]["steps_per_epoch"] == original_steps_per_epoch(root / "data")


#: Options that change what the original computed, each with a value of its own: the
#: command line's arguments, then what follows --faithful in the message.
DEPARTING = [
    (["--resize", "bilinear"], "--resize bilinear"),
    (["--scaling", "inception"], "--scaling inception"),
    (["--learning-rate", "0.2"], "--learning-rate 0.2"),
    (["--lr-schedule", "exponential-decay"], "--lr-schedule exponential-decay"),
    (["--keep-grayscale"], "--keep-grayscale"),
    (["--head", "gap"], "--head gap"),
    (["--batch-size", "16"], "--batch-size 16"),
    (["--epochs", "5"], "--epochs 5"),
    (["--mixed-precision"], "--mixed-precision"),
    (["--backbone", "MobileNetV3Small"], "--backbone MobileNetV3Small"),
    (["--weights", "none"], "--weights none"),
    (["--hub", "handle"], "--hub handle"),
    (["--image-size", "299"], "--image-size 299"),
    (["--validation-fraction", "0.1"], "--validation-fraction 0.1"),
    (["--strategy", "mirrored"], "--strategy mirrored"),
    # Given at their defaults, the switches that --faithful would have thrown.
    (["--shuffle-buffer", "0"], "--shuffle-buffer 0"),
    (["--steps-per-epoch", "run"], "--steps-per-epoch run"),
    (["--cb-source", "observed"], "--cb-source observed"),
    (["--pos-weight-source", "run"], "--pos-weight-source run"),
    (["--loss-input", "logits"], "--loss-input logits"),
    # The run's own arguments.
    (["--methods", "ce", "asl"], "--methods asl"),
    (["--protocol", "rps", "--ratios", "0.5"], "--protocol rps"),
]


@pytest.mark.parametrize(("arguments", "named"), DEPARTING, ids=[d[1] for d in DEPARTING])
def test_faithful_with_an_option_that_departs_stops_and_writes_nothing(
        small_grid, tmp_path, capsys, arguments, named):
    from mlml_tf.cli.main import main

    root, _, _ = small_grid
    before = tree_digests(root / "data")
    code = main(["run", "--data", str(root / "data"), "--out", str(tmp_path / "out"),
                 "--faithful", *arguments])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{named} departs from the original (" in err and "--faithful" in err, err
    assert not (tmp_path / "out").exists()
    assert tree_digests(root / "data") == before


def test_faithful_takes_an_option_given_at_the_originals_value(small_grid, tmp_path):
    root, _, _ = small_grid
    given = {"resize", "epochs", "shuffle_buffer", "cb_source", "learning_rate",
             "faithful_scoring"}
    chosen = GridOptions(resize="skimage", shuffle_buffer=100, cb_source="oracle",
                         learning_rate=0.1, faithful_scoring=True, seed=7, together=1)
    options = faithful_options(chosen, root / "data", given)
    assert options == faithful_options(GridOptions(seed=7, together=1), root / "data")
    assert is_faithful(options)
    (tmp_path / GLOBAL_WEIGHTS).write_text("")
    assert faithful_options(chosen, tmp_path, given).cb_source == "oracle", "the two readings"
    assert faithful_options(GridOptions(), tmp_path).cb_source == "file"


def test_the_library_refuses_the_same(small_grid, tmp_path):
    from mlml_tf import run_grid

    root, _, _ = small_grid
    cases = [
        ({"options": GridOptions(resize="bilinear")}, "--resize bilinear"),
        ({"options": GridOptions(mixed_precision=True)}, "--mixed-precision"),
        ({"epochs": 3}, "--epochs 3"),
        ({"methods": ["ce", "role"]}, "--methods role"),
        ({"protocol": "fpc", "counts": [5]}, "--protocol fpc"),
    ]
    for arguments, named in cases:
        with pytest.raises(DataError, match=f"{named} departs from the original"):
            run_grid(root / "data", tmp_path / "out", faithful=True, **arguments)
    assert not (tmp_path / "out").exists()


def test_every_option_of_a_run_or_the_grid_says_how_it_stands_to_the_original():
    for option in settings_options("run") + settings_options("grid"):
        assert option.faithful is not _UNDECLARED, option.name
    with pytest.raises(TypeError, match="must say how it stands to the original"):
        Option("new_switch", False, "a new switch", bool, scopes=("grid",))
    Option("new_switch", False, "a new switch", bool, scopes=("fit",))  # train has no --faithful
    faithful = faithful_settings(RunConfig(method="im-wce", ratio=0.5, fold=2), "data")
    assert is_faithful(faithful) and faithful.from_logits is False
    assert departures(dataclasses.replace(faithful, from_logits=True))[0].name == "from_logits"
    assert departures(RunConfig(method="ce", ratio=0.5, fold=2, epochs=3, seed=5))[0].name == \
        "epochs"


def test_run_on_images_trains_end_to_end_with_the_originals_names(tmp_path, coco_reference):
    """``mlml-tf run`` with every switch of ``--faithful`` thrown by hand but a tiny backbone:
    the backbone runs at every step (no feature cache), the runs carry the original's names,
    the test rows past the last full batch score as zeros, and ``metrics.json`` says the run
    is not the original's (its backbone, weights, image size, epochs and batch size depart)."""
    from PIL import Image
    from skimage import data as photos

    from mlml_tf.cli.main import main

    frame = coco_reference.drop(columns="fold").iloc[:36]
    labels = frame.loc[:, frame.sum().sort_values(ascending=False).index[:4]].astype(np.uint8)
    write_groundtruth(tmp_path / "data", labels)
    split(tmp_path / "data", ratios=[0.0, 0.25], seed=0)
    (tmp_path / "images").mkdir()
    pixels = photos.astronaut()
    for k, name in enumerate(labels.index):
        crop = pixels[8 * k:8 * k + 256, 4 * k:4 * k + 256]
        Image.fromarray(crop).resize((40, 40)).save(tmp_path / "images" / f"{name}.png")
    tiny = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
            "--images", str(tmp_path / "images"), "--image-pattern", "{id}.png",
            "--backbone", "MobileNetV3Small", "--weights", "none", "--image-size", "32",
            "--methods", "ce", "cb-wce", "--ratios", "0.25", "--folds", "1",
            "--epochs", "1", "--batch-size", "4"]
    assert main(["run", *tiny, "--faithful"]) == 2, "a tiny backbone is not the original's"
    assert not (tmp_path / "out").exists()
    switches = ["--faithful-batch-norm", "--faithful-scoring", "--loss-input", "original",
                "--pos-weight-source", "original", "--cb-source", "oracle",
                "--steps-per-epoch", "original", "--shuffle-buffer", "100",
                "--faithful-test-count", "--jpeg-idct", "accurate"]
    assert main(["run", *tiny, *switches]) == 0
    assert not (tmp_path / "out" / "features").exists(), "no feature cache"
    runs = collect_runs(tmp_path / "out")
    assert sorted(runs["experiment"]) == ["CORRELATION_weighted_CE_balanced_ratio0.2split_1",
                                          "PosLimited_original_CE_balanced_ratio0.2split_1"]
    assert (runs["ratio"] == 0.25).all() and not runs["faithful"].any()
    for run_dir, method in zip(runs["run_dir"], runs["method"], strict=True):
        document = json.loads((tmp_path / run_dir / "metrics.json").read_text())
        assert document["faithful"] is False
        config = document["extra"]["config"]
        assert config["faithful_scoring"] and config["shuffle_buffer"] == 100
        assert config["cb_source"] == "oracle" and config["pos_weight_source"] == "original"
        assert config["steps_per_epoch"] == "original"
        assert config["from_logits"] is (method == "ce")
        run_config = RunConfig(**{k: tuple(v) if k == "params" else v
                                  for k, v in config.items()})
        assert [o.name for o in departures(run_config)] == ["epochs", "batch_size"]
        truth = np.loadtxt(tmp_path / run_dir / "test_ground_truth_classes.txt", delimiter=",")
        n = len(truth)
        assert n % 4 and (truth[n - n % 4:] == 0).all()
