"""Run outputs in the original's layout (docs/original.md section 7), results tables and figures
(docs/original.md section 8)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mlml_tf import DataError
from mlml_tf.apps.figures import plot_metric_boxplots, plot_true_positives
from mlml_tf.apps.tables import (
    PAPER_METRICS,
    TABLE_METRICS,
    collect_runs,
    format_table_markdown,
    summary_table,
)
from mlml_tf.methods.registry import PAPER_METHODS
from mlml_tf.metrics.report import per_class_report
from mlml_tf.metrics.scores import SCORE_KEYS, evaluate, mean_average_precision
from mlml_tf.runs.names import EXPERIMENT_TEMPLATES, experiment_name, parse_experiment_name
from mlml_tf.runs.outputs import GROUND_TRUTH, METRICS, PREDICTIONS, write_run_outputs
from mlml_tf.runs.reading import read_run

CLASSES = ["person", "car", "dog", "cat", "bus", "kite"]


def predictions(seed, n=70, quality=0.4):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(CLASSES))) < np.linspace(0.6, 0.1, len(CLASSES))).astype(int)
    p = np.clip(quality * y + (1 - quality) * rng.random(y.shape), 0, 1)
    return y, p


def test_experiment_names_are_the_published_ones():
    """The original names every experiment with str(round(r, 1)): 0.75 is 'ratio0.8'."""
    assert experiment_name("ce", 0.0, 1) == "PosLimited_original_CE_balanced_ratio0.0split_1"
    assert experiment_name("im-wce", 0.75, 4) == \
        "PosLimitited_weighted_CE_balanced_ratio0.8split_4"
    assert experiment_name("cb-wce", 0.25, 2) == \
        "CORRELATION_weighted_CE_balanced_ratio0.2split_2"
    assert experiment_name("ce", 0.25, 1, naming="nuswide") == "nus_3labels_original_CE0.2split_1"
    assert experiment_name("im-wce", 0.5, 2, naming="nuswide") == \
        "nus_3labels_weighted_CE0.5split_2"
    assert experiment_name("cb-wce", 0.75, 3, naming="nuswide") == \
        "nus_3labels_correlations_CE0.8split_3"
    for naming in ("coco", "nuswide"):
        for method in PAPER_METHODS:
            for ratio in (0.0, 0.25, 0.5, 0.75):
                for fold in (1, 2, 3, 4):
                    name = experiment_name(method, ratio, fold, naming=naming)
                    assert parse_experiment_name(name) == (method, ratio, fold, "paper", None)
    # The field's methods, and any method under the other protocols: method, protocol, fold.
    assert experiment_name("asl", 0.5, 1) == "asl_missing_labels0.5_split_1"
    assert experiment_name("ce", 0.5, 2, protocol="rps") == "ce_rps0.5_split_2"
    assert experiment_name("csl", None, 3, protocol="fpc", count=1000) == "csl_fpc1000_split_3"
    assert experiment_name("an-ls", None, 4, protocol="single-positive") == \
        "an-ls_single_positive_split_4"
    for args in (("asl", 0.25, 1, "paper", None), ("csl", 0.5, 2, "rps", None),
                 ("wan", None, 3, "fpc", 30), ("epr", None, 4, "single-positive", None)):
        method, ratio, fold, protocol, count = args
        name = experiment_name(method, ratio, fold, protocol=protocol, count=count or 1000)
        assert parse_experiment_name(name) == args, name
    assert parse_experiment_name("bce_rps0.5_split_1") is None
    assert parse_experiment_name("PosLimited_original_CE_balanced_ratio0.5split_") is None
    assert parse_experiment_name("events.out.tfevents") is None
    with pytest.raises(DataError, match="unknown method"):
        experiment_name("wce", 0.5, 1)
    with pytest.raises(DataError, match="fold"):
        experiment_name("ce", 0.5, 0)
    with pytest.raises(DataError, match="naming"):
        experiment_name("ce", 0.5, 1, naming="voc")
    for templates in EXPERIMENT_TEMPLATES.values():
        assert set(templates) == set(PAPER_METHODS)


def test_names_of_earlier_versions_and_other_ratios_are_read_as_written():
    """mlml-tf before 0.2 wrote the exact ratio; a ratio no paper ratio rounds to stays itself."""
    assert parse_experiment_name("PosLimited_original_CE_balanced_ratio0.25split_1")[:3] == \
        ("ce", 0.25, 1)
    assert parse_experiment_name("CORRELATION_weighted_CE_balanced_ratio0.75split_2")[:3] == \
        ("cb-wce", 0.75, 2)
    assert parse_experiment_name("nus_3labels_weighted_CE0.3split_4")[:3] == ("im-wce", 0.3, 4)
    assert parse_experiment_name("nus_3labels_weighted_CE0.2split_4", ratios=[0.2])[:3] == \
        ("im-wce", 0.2, 4)


def test_write_then_read_round_trip(tmp_path):
    y, p = predictions(0)
    t = np.linspace(0.3, 0.6, len(CLASSES))
    run = tmp_path / experiment_name("cb-wce", 0.5, 2) / "2024-05-01_10-00-00"
    metrics = write_run_outputs(run, y, p, CLASSES, thresholds=t,
                                extra={"epochs": np.int64(3), "loss": [np.float32(0.5)],
                                       "bad": float("nan")})
    assert sorted(f.name for f in run.iterdir()) == sorted(
        [PREDICTIONS, GROUND_TRUTH, "evaluation_results.txt", "results_report.csv",
         "results_extra.csv", "evaluation_extra.txt", METRICS])
    np.testing.assert_array_equal(np.loadtxt(run / PREDICTIONS, delimiter=","), p)
    np.testing.assert_array_equal(np.loadtxt(run / GROUND_TRUTH, delimiter=","), y)
    back = read_run(run)
    assert back["layout"] == "mlml-tf"
    assert back["metrics"] == metrics == json.loads(json.dumps(evaluate(y, p, CLASSES, t)))
    assert back["classes"] == CLASSES
    assert back["extra"] == {"epochs": 3, "loss": [0.5], "bad": None}
    pd.testing.assert_frame_equal(back["report"], per_class_report(y, p, CLASSES, t))
    text = (run / "evaluation_extra.txt").read_text()
    assert "Precision" in text and "per class (see results_extra.csv)" in text
    extra = pd.read_csv(run / "results_extra.csv", index_col="class")
    pd.testing.assert_frame_equal(
        extra, per_class_report(y, p, CLASSES, t).astype({"auc_defined": np.int64}),
        check_exact=True)


def test_outputs_are_byte_for_byte_deterministic(tmp_path):
    y, p = predictions(1)
    for name in ("a", "b"):
        write_run_outputs(tmp_path / name, y, p, CLASSES, extra={"seed": 1})
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    keys = list(json.loads((tmp_path / "a" / METRICS).read_text())["metrics"])
    assert keys == sorted(keys)
    assert not [f for f in (tmp_path / "a").iterdir() if f.name.startswith(".")]


def test_run_written_the_original_way_gives_our_metrics(tmp_path):
    y, p = predictions(2, n=100)
    # The original: two np.savetxt files under a timestamp folder, its own experiment name,
    # the last 100 mod 32 = 4 rows left at zero in both (docs/original.md section 7).
    y0 = np.zeros(y.shape)
    p0 = np.zeros(p.shape)
    y0[:96], p0[:96] = y[:96], p[:96]
    original = tmp_path / "PosLimited_original_CE_balanced_ratio0.5split_1" / "2020-01-01_12-00-00"
    original.mkdir(parents=True)
    np.savetxt(original / "predictions.out", p0, delimiter=",")
    np.savetxt(original / "test_ground_truth_classes.txt", y0, delimiter=",")

    back = read_run(original, class_names=CLASSES)
    assert back["layout"] == "original"
    ours = write_run_outputs(tmp_path / "ours", y, p, CLASSES)
    faithful = evaluate(y, p, CLASSES, faithful=True)
    assert back["metrics"] == faithful
    # Same numbers as writing our run from the original's arrays.
    assert write_run_outputs(tmp_path / "ours0", y0.astype(int), p0, CLASSES) == back["metrics"]
    assert back["metrics"]["n_samples"] == ours["n_samples"] == 100
    assert back["metrics"]["true_negatives"] > ours["true_negatives"]

    df = collect_runs(tmp_path)
    assert df[["method", "ratio", "fold", "layout"]].values.tolist() == \
        [["ce", 0.5, 1, "original"]]
    assert df.loc[0, "f1_micro"] == pytest.approx(faithful["f1_micro"])


def test_malformed_files_name_the_file(tmp_path):
    y, p = predictions(3)
    run = tmp_path / "run"
    write_run_outputs(run, y, p, CLASSES)
    (run / METRICS).write_text("{not json")
    with pytest.raises(DataError, match=METRICS) as err:
        read_run(run)
    assert err.value.file.endswith(METRICS)

    orig = tmp_path / "orig"
    orig.mkdir()
    np.savetxt(orig / PREDICTIONS, p, delimiter=",")
    bad = y.astype(float)
    bad[4, 2] = 2
    np.savetxt(orig / GROUND_TRUTH, bad, delimiter=",")
    with pytest.raises(DataError, match="line 5") as err:
        read_run(orig)
    assert err.value.file.endswith(GROUND_TRUTH) and err.value.column == "2"
    (orig / PREDICTIONS).write_text("0.1,0.2\nx,0.3\n")
    with pytest.raises(DataError) as err:
        read_run(orig)
    assert err.value.file.endswith(PREDICTIONS)
    with pytest.raises(DataError, match="not a run folder"):
        read_run(tmp_path)


def synthetic_grid(root, ratios=(0.0, 0.5), folds=(1, 2)):
    for m, method in enumerate(PAPER_METHODS):
        for ratio in ratios:
            for fold in folds:
                y, p = predictions(100 * m + 10 * fold + int(4 * ratio),
                                   quality=0.5 - 0.4 * ratio + 0.05 * m)
                exp = root / experiment_name(method, ratio, fold)
                write_run_outputs(exp / "2020-01-01_00-00-00", 1 - y, p, CLASSES)  # older
                write_run_outputs(exp / "2020-02-01_00-00-00", y, p, CLASSES)
    (root / "not_an_experiment").mkdir()
    (root / experiment_name("ce", 0.25, 1) / "empty").mkdir(parents=True)


def test_collect_runs_and_summary_table_on_a_grid(tmp_path):
    synthetic_grid(tmp_path)
    df = collect_runs(tmp_path)
    assert len(df) == 3 * 2 * 2
    assert df["method"].tolist() == [m for m in PAPER_METHODS for _ in range(4)]
    assert (df["n_run_folders"] == 2).all()
    assert df["run_dir"].str.endswith("2020-02-01_00-00-00").all()
    for row in df.itertuples():
        rank = PAPER_METHODS.index(row.method)
        y, p = predictions(100 * rank + 10 * row.fold + int(4 * row.ratio),
                           quality=0.5 - 0.4 * row.ratio + 0.05 * rank)
        assert row.f1_micro == pytest.approx(evaluate(y, p)["f1_micro"])
        assert row.map == pytest.approx(mean_average_precision(y, p))

    table = summary_table(df)
    assert list(table.index) == [(m, r) for m in PAPER_METHODS for r in (0.0, 0.5)]
    for method in PAPER_METHODS:
        for ratio in (0.0, 0.5):
            sel = df[(df.method == method) & (df.ratio == ratio)]
            for metric in ("map", *PAPER_METRICS):
                values = sel[metric].to_numpy()
                assert table.loc[(method, ratio), (metric, "mean")] == \
                    pytest.approx(np.mean(values))
                assert table.loc[(method, ratio), (metric, "std")] == \
                    pytest.approx(np.std(values, ddof=1))
            assert table.loc[(method, ratio), ("folds", "count")] == 2
    population = summary_table(df, ddof=0)
    sel = df[(df.method == "ce") & (df.ratio == 0.0)]["f1_micro"].to_numpy()
    assert population.loc[("ce", 0.0), ("f1_micro", "std")] == pytest.approx(np.std(sel))

    md = format_table_markdown(table)
    lines = md.strip().split("\n")
    assert lines[0] == "| Method | Ratio | mAP | Recall | Precision | F1 | ROC-AUC | Folds |"
    assert len(lines) == 2 + 6 and lines[2].startswith("| CE | 0.0 | ")
    mean = table.loc[("cb-wce", 0.5), ("f1_micro", "mean")]
    assert f"{mean:.4f} ± " in lines[-1]
    assert f"| {table.loc[('cb-wce', 0.5), ('map', 'mean')]:.2f} ± " in lines[-1]


def test_collect_runs_on_an_empty_or_missing_folder(tmp_path):
    df = collect_runs(tmp_path)
    assert df.empty and {"method", "ratio", "fold", *SCORE_KEYS} <= set(df.columns)
    with pytest.raises(DataError, match="not found"):
        collect_runs(tmp_path / "nowhere")


def test_figures_are_written_as_png_and_pdf(tmp_path):
    synthetic_grid(tmp_path / "runs")
    df = collect_runs(tmp_path / "runs")
    paths = plot_metric_boxplots(df, tmp_path / "figures" / "figure1")
    assert [p.name for p in paths] == ["figure1.png", "figure1.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert all(p.stat().st_size > 1000 for p in paths)
    again = plot_metric_boxplots(df, tmp_path / "figures" / "again")
    assert again[1].read_bytes() == paths[1].read_bytes()
    # The paper's four panels by default; mAP's fifth on request.
    with_map = plot_metric_boxplots(df, tmp_path / "figures" / "map", TABLE_METRICS)
    widths = [Image.open(p[0]).size[0] for p in (paths, with_map)]
    assert 1.15 < widths[1] / widths[0] < 1.35

    paths = plot_true_positives(df, tmp_path / "figures" / "figure3", ratio=0.5, top=4)
    assert [p.name for p in paths] == ["figure3.png", "figure3.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)

    y, p = predictions(5)
    reports = {m: per_class_report(y, p, CLASSES) for m in ("ce", "cb-wce")}
    paths = plot_true_positives(reports, tmp_path / "figure3b")
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(DataError, match="ratio 0.25"):
        plot_true_positives(df, tmp_path / "none", ratio=0.25)


def test_a_run_of_mlml_tf_0_2_gets_its_map_from_its_predictions(tmp_path):
    y, p = predictions(1, quality=0.4)
    classes = [f"c{j}" for j in range(y.shape[1])]
    written = write_run_outputs(tmp_path / "run", y, p, classes)
    path = tmp_path / "run" / METRICS
    document = json.loads(path.read_text())
    for key in ("map", "map_undefined_classes"):
        del document["metrics"][key]
    path.write_text(json.dumps(document))
    run = read_run(tmp_path / "run", report=False)
    assert run["metrics"]["map"] == pytest.approx(written["map"])
    assert run["metrics"]["f1_micro"] == written["f1_micro"]
