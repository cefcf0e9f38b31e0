"""The offline demo.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlml_tf.apps.demo_backbone import (
    BACKBONE_NAME,
    SCALING,
    check_backbone_source,
    pretrained_backbone,
)
from mlml_tf.apps.demo_sources import compare_cb_sources
from mlml_tf.apps.figures import plot_method_comparison, plot_metric_boxplots, plot_true_positives
from mlml_tf.apps.grid import grid_cells, run_cells
from mlml_tf.apps.tables import collect_runs, format_table_markdown, summary_table
from mlml_tf.datasets.digits import CANVAS, CLASS_NAMES, MAX_DIGITS, MIN_DIGITS, write_digit_dataset
from mlml_tf.features.backbones import feature_extractor
from mlml_tf.features.cache import DEFAULT_DTYPE, cache_key, dtype_settings
from mlml_tf.features.extract import build_image_cache
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.files.layout import image_files, read_groundtruth
from mlml_tf.files.protocols import PAPER, PROTOCOLS, RPS, SINGLE_POSITIVE
from mlml_tf.files.split import split, split_protocol
from mlml_tf.labels.missing import PAPER_RATIOS
from mlml_tf.methods.registry import METHODS, PAPER_METHODS

log = logging.getLogger(__name__)

#: Folds of the demo's data folder: the original's four (docs/original.md section 2).
N_FOLDS = 4


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Everything that sizes the demo: data, backbone pretraining and the grid of runs."""
    n_images: int
    pretrain_copies: int
    pretrain_epochs: int
    ratios: tuple[float, ...]
    folds: tuple[int, ...]
    epochs: int
    batch_size: int = 32
    learning_rate: float = 3.0
    head: str = "original"
    cb_source: str = "observed"


#: The demo: 2,000 images, the full grid of 3 methods x 4 ratios x 4 folds (under 10 minutes on
#: 2 CPU cores).
FULL = DemoSettings(n_images=2000, pretrain_copies=3, pretrain_epochs=8, ratios=PAPER_RATIOS,
                    folds=(1, 2, 3, 4), epochs=4)


#: A version for tests and a first look: 320 images, 3 methods x 2 ratios x fold 1 (about a
#: minute).
QUICK = DemoSettings(n_images=320, pretrain_copies=2, pretrain_epochs=4, ratios=(0.0, 0.5),
                     folds=(1,), epochs=10)


def _feature_cache(out: Path, data: Path, backbone, backbone_info: dict, dtype: str):
    ids = list(read_groundtruth(data).index)
    paths = image_files(data, ids, data)
    extractor = feature_extractor(backbone, input_shape=(CANVAS, CANVAS, 3))
    settings = {"backbone": BACKBONE_NAME, "weights_sha256": backbone_info["weights_sha256"]}
    return build_image_cache(out / "features", ids, paths, extractor, settings,
                             image_size=(CANVAS, CANVAS), scaling=SCALING, batch_size=256,
                             progress=False, dtype=dtype)


def _flat_summary(table):
    frame = table.copy()
    frame.columns = [f"{m}_{s}" for m, s in frame.columns]
    return frame.reset_index()


def _results_text(markdown: str, settings: DemoSettings, seed: int, backbone_info: dict,
                  feature_shape: tuple[int, ...], n_train: int, figures: list[str]) -> str:
    return "\n".join([
        "# Offline demo: CE, IM-WCE and CB-WCE on handwritten-digit mosaics",
        "",
        f"- data: {settings.n_images} mosaics of {MIN_DIGITS} to {MAX_DIGITS} digits "
        f"({CANVAS} x {CANVAS}), labels correlated by scene; {N_FOLDS} folds by second-order "
        f"iterative stratification, seed {seed}",
        f"- backbone: a small CNN pretrained on single digits (held-out accuracy "
        f"{backbone_info['held_out_accuracy']:.3f}), frozen; features "
        + " x ".join(map(str, feature_shape)),
        f"- head: {settings.head}; Adadelta (rho 0.95, epsilon 1e-8) at the constant learning "
        f"rate {settings.learning_rate} (paper: 0.1), batch size {settings.batch_size}, "
        f"{settings.epochs} epochs (paper: 20), {n_train} training images per run",
        f"- CB-WCE weights counted over the {settings.cb_source} training labels of each run",
        "- metrics on every test image at threshold 0.5; mean ± std over folds",
        "",
        markdown.rstrip("\n"),
        "",
        "Figures: " + ", ".join(figures),
        "",
    ])


#: The protocols of the comparison of every method: the paper's (at its ratio 0.5), random per
#: sample at 0.5 and single positive.
COMPARISON = ((PAPER.name, 0.5), (RPS.name, 0.5), (SINGLE_POSITIVE.name, None))


def run_demo(out: str | os.PathLike = "demo_out", quick: bool = False, seed: int = 0,
             settings: DemoSettings | None = None,
             methods: Sequence[str] | str | None = None,
             feature_dtype: str = DEFAULT_DTYPE,
             cb_sources: Sequence[str] | None = None,
             backbone_from: str | os.PathLike | None = None) -> dict:
    """Run the whole protocol offline on digit mosaics and write its table and figures.

    Steps: write the data set and its folds to ``out/data``; pretrain (or reuse) the backbone,
    ``out/backbone.keras``; cache the features of every image; train every run not yet complete
    under ``out/runs/<quick|full|custom>-seed<seed>-<settings digest>``; write
    ``out/results.md``, ``out/results.csv``, ``out/runs.csv``, ``out/figure1_boxplots.png`` and
    ``out/figure3_true_positives.png`` (with PDFs), and print the table.

    Args:
        out: output folder.
        quick: the small version (:data:`QUICK`) instead of the full one (:data:`FULL`).
        seed: seed of the data, the folds, the hidden labels, the backbone and the heads.
        settings: other sizes than :data:`QUICK` / :data:`FULL`.
        methods: "all", or the methods beyond the paper's to compare: they train, beside the
            paper's three, under each protocol of :data:`COMPARISON` on every fold, and
            ``out/methods.md``, ``out/methods.csv`` and ``out/figure_methods.png`` (and PDF)
            show mAP and micro F1 of each (mean ± std over folds).
        feature_dtype: how the feature cache stores the features, "float16" (the default) or
            "float32" (:func:`mlml_tf.features.cache.dtype_settings`).
        cb_sources: where CB-WCE's confidence weights come from, to compare
            (:data:`mlml_tf.settings.DEMO_CB_SOURCES`): CB-WCE with each, beside CE
            and IM-WCE, under the paper's protocol at every ratio and under the other
            protocols of :data:`COMPARISON`, on every fold; ``out/cb_sources.md`` and
            ``out/cb_sources.csv`` show mAP and micro F1 (mean ± std over folds).
        backbone_from: a demo folder (of another machine, say) whose pretrained backbone to
            take instead of pretraining one: with the same backbone, machines whose kernels
            round otherwise print the same table (:func:`pretrained_backbone`).

    Returns:
        A dict: ``table`` (summary DataFrame), ``markdown``, ``runs`` (one row per run),
        ``counts`` (trained / already complete runs), ``files`` (paths written), ``backbone``
        (pretraining details) and ``seconds`` (time per step).

    Example:
        >>> result = run_demo("demo_out", quick=True)      # doctest: +SKIP
        >>> result["table"]["roc_auc_micro"]["mean"]       # doctest: +SKIP
    """

    out = Path(out)
    settings = settings or (QUICK if quick else FULL)
    mode = {QUICK: "quick", FULL: "full"}.get(settings, "custom")
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        seconds[name] = round(now - start, 2)
        start = now

    if backbone_from is not None:
        # Before anything is written: a backbone of other settings stops the demo.
        check_backbone_source(backbone_from, settings.pretrain_copies,
                              settings.pretrain_epochs, seed)
    data = out / "data"
    write_digit_dataset(data, settings.n_images, seed=seed)
    manifest = split(data, n_folds=N_FOLDS, ratios=PAPER_RATIOS, seed=seed)
    n_train = manifest["split"]["counts"]["1"]["train"]
    log.info("data: %d mosaics and %d folds -> %s", settings.n_images, N_FOLDS, data)
    lap("data")

    backbone, backbone_info = pretrained_backbone(out, settings.pretrain_copies,
                                                  settings.pretrain_epochs, seed, backbone_from)
    lap("backbone")
    cache = _feature_cache(out, data, backbone, backbone_info, feature_dtype)
    log.info("features: %d images x %s -> %s", len(cache), cache.shape, cache.folder)
    lap("features")

    # One folder per settings and seed: an experiment folder holding runs of other settings
    # would leave collect_runs to pick among them.
    key = cache_key({**dataclasses.asdict(settings), **dtype_settings(feature_dtype)})
    runs_dir = out / "runs" / f"{mode}-seed{seed}-{key[:8]}"
    cells = grid_cells(PAPER_METHODS, settings.ratios, settings.folds)
    overrides = {"batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                 "head": settings.head, "seed": seed, "cb_source": settings.cb_source}
    counts = run_cells(data, runs_dir, cache, cells, epochs=settings.epochs,
                       config_overrides=overrides, verbose=0)
    log.info("runs: %d trained, %d already complete", counts["trained"],
             counts["already_complete"])
    lap("runs")

    comparison = _compare_methods(data, runs_dir, cache, settings, seed, methods, overrides,
                                  out)
    if comparison:
        lap("comparison")
    sources = {}
    if cb_sources:
        sources = compare_cb_sources(data, runs_dir, cache, cb_sources, settings.ratios,
                                     settings.folds, settings.epochs, overrides, COMPARISON,
                                     N_FOLDS, seed, out)
        lap("cb sources")

    runs = collect_runs(runs_dir)
    runs = runs[runs["protocol"] == PAPER.label()]
    runs = runs[runs["method"].isin(PAPER_METHODS)]
    table = summary_table(runs)
    markdown = format_table_markdown(table)
    # Figure 3 of the paper is at ratio 0.5; settings without it show their highest ratio.
    tp_ratio = 0.5 if 0.5 in settings.ratios else max(settings.ratios)
    figures = (plot_metric_boxplots(runs, out / "figure1_boxplots")
               + plot_true_positives(runs, out / "figure3_true_positives", ratio=tp_ratio,
                                     top=len(CLASS_NAMES)))
    names = [p.name for p in figures]
    files = {"results_md": out / "results.md", "results_csv": out / "results.csv",
             "runs_csv": out / "runs.csv", "figures": figures}
    write_bytes_atomic(files["results_md"], _results_text(
        markdown, settings, seed, backbone_info, cache.shape, n_train, names).encode())
    write_bytes_atomic(files["results_csv"],
                       _flat_summary(table).to_csv(index=False).encode())
    write_bytes_atomic(files["runs_csv"], runs.to_csv(index=False).encode())
    lap("results")
    log.info("%s", markdown)
    log.info("results: %s, figures: %s", files["results_md"], ", ".join(names))
    log.info("seconds: %s", ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return {"table": table, "markdown": markdown, "runs": runs, "counts": counts,
            "files": {**files, **comparison.get("files", {}), **sources.get("files", {})},
            "backbone": backbone_info,
            "settings": dataclasses.asdict(settings), "seconds": seconds,
            "comparison": comparison.get("table"),
            "comparison_markdown": comparison.get("markdown"),
            "cb_sources": sources.get("table"), "cb_sources_markdown": sources.get("markdown")}


def _compare_methods(data: Path, runs_dir: Path, cache, settings: DemoSettings, seed: int,
                     methods, overrides: dict, out: Path) -> dict:
    """Every method of ``methods`` and the paper's three under the protocols of
    :data:`COMPARISON`, on every fold; their table and figure. Nothing when ``methods`` adds
    no method to the paper's."""

    chosen = list(METHODS) if methods == "all" else list(methods or [])
    chosen = [*PAPER_METHODS, *(m for m in chosen if m not in PAPER_METHODS)]
    if chosen == list(PAPER_METHODS):
        return {}
    cells = []
    for protocol, ratio in COMPARISON:
        if not PROTOCOLS[protocol].original_layout:
            split_protocol(data, protocol, None if ratio is None else [ratio], n_folds=N_FOLDS,
                           seed=seed)
        ratios = [] if ratio is None else [ratio]
        cells += grid_cells(chosen, ratios, settings.folds, protocol=protocol)
    counts = run_cells(data, runs_dir, cache, cells, epochs=settings.epochs,
                       config_overrides=overrides, verbose=0)
    log.info("comparison: %d trained, %d already complete", counts["trained"],
             counts["already_complete"])
    runs = collect_runs(runs_dir)
    compared = set(COMPARISON)
    runs = runs[[(protocol, None if pd.isna(ratio) else ratio) in compared and name in chosen
                 for protocol, ratio, name in zip(runs["protocol"], runs["ratio"],
                                                  runs["method"], strict=True)]]
    table = summary_table(runs, metrics=("map", "f1_micro"))
    markdown = format_table_markdown(table)
    files = {"methods_md": out / "methods.md", "methods_csv": out / "methods.csv",
             "methods_figures": plot_method_comparison(runs, out / "figure_methods")}
    write_bytes_atomic(files["methods_md"], (
        "# Every method under three protocols, on the demo set\n\n"
        "mAP (x100) and micro F1 at threshold 0.5 on every test image; mean ± std over "
        f"{len(settings.folds)} folds. Protocols: the paper's (hidden positives, ratio 0.5), "
        "random per sample (each training entry unknown with probability 0.5), single positive "
        "(one positive per training row, all else unknown).\n\n" + markdown).encode())
    write_bytes_atomic(files["methods_csv"], _flat_summary(table).to_csv(index=False).encode())
    log.info("%s", markdown)
    return {"table": table, "markdown": markdown, "files": files}
