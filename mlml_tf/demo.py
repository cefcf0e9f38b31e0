"""The offline demo: the paper's whole protocol on digit mosaics, in minutes on a CPU.

``mlml-tf demo`` needs no download and no GPU. It stands in for each piece of the paper:

- COCO -> 2,000 mosaics of 4 to 6 handwritten digits whose labels co-occur by scene
  (:mod:`mlml_tf.datasets.digits`), written as PNG files with ``groundtruth.csv``, then the
  original layout: 4 folds by iterative stratification, ratios 0 / 0.25 / 0.5 / 0.75 of hidden
  positives (:func:`mlml_tf.layout.split`);
- Inception-ResNet-v2 pretrained on ImageNet -> a small CNN pretrained on single digits of the
  other half of ``load_digits`` (glyphs the mosaics never use), then frozen. Three 3 x 3
  conv + max-pool blocks and a 1 x 1 conv + batch norm + ReLU feature layer (as ``conv_7b_ac``)
  map a 48 x 48 image to a 6 x 6 x 32 map, one 2 x 2 patch per grid cell;
- the features of every image are computed once, through the real image-file pipeline
  (:func:`mlml_tf.features.build_image_cache`), and the original head (Flatten -> 2048 -> 1024
  -> 256 sigmoid -> 10) is trained on them for CE, IM-WCE and CB-WCE at every ratio and fold:
  48 runs (:func:`mlml_tf.grid.run_cells`; a second call skips the runs already complete);
- the table of mean and std over folds of micro precision, recall, F1 and ROC-AUC, and the
  paper's Figure 1 (box plots) and Figure 3 (true positives per class at ratio 0.5).

Settings that differ from the paper's (SPEC 7), all in :data:`FULL`: 4 epochs instead of 20 and
Adadelta's learning rate 3.0 instead of 0.1 (constant, with TF1's rho 0.95 and epsilon 1e-8, and
batches of 32, as the paper's). With 1,500 training images a run has 46 steps per epoch; at the
paper's rate the head barely moves in the ~190 steps the time budget allows, at 3.0 every method
learns. CB-WCE counts its weights over each run's observed
training labels, the port's default (SPEC 4); hiding thins out the co-occurrences it counts (at
ratio 0.75 nearly every training row keeps a single positive), so its weights tend to 1 and
CB-WCE to CE as the ratio grows. ``dataclasses.replace(FULL, cb_source="oracle")`` counts over
the complete labels of the whole set instead, as the original did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.cache import cache_key
from mlml_tf.datasets.digits import (
    CANVAS,
    CLASS_NAMES,
    MAX_DIGITS,
    MIN_DIGITS,
    digit_split,
    single_digit_images,
    write_digit_dataset,
)
from mlml_tf.errors import atomic_path, write_bytes_atomic
from mlml_tf.labels import PAPER_RATIOS
from mlml_tf.layout import split
from mlml_tf.methods import PAPER_METHODS

#: Folds of the demo's data folder: the original's four (SPEC 2).
N_FOLDS = 4
#: The backbone's architecture, named in the feature cache's settings.
BACKBONE_NAME = "digits-cnn-3x(conv3x3+maxpool)-conv1x1-bn-relu"
BACKBONE_FILE = "backbone.keras"
BACKBONE_INFO = "backbone.json"
SCALING = "imagenet"


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


def build_backbone(seed: int = 0):
    """The demo's backbone, untrained: 48 x 48 x 3 images -> 6 x 6 x 32 features."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((CANVAS, CANVAS, 3), name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 32), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    # A 1 x 1 conv with batch norm and ReLU, as Inception-ResNet-v2's feature layer conv_7b_ac:
    # features of a known scale, whatever the scale of the conv blocks before it.
    x = keras.layers.Conv2D(32, 1, use_bias=False, name="features_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="features_bn")(x)
    x = keras.layers.ReLU(name="features")(x)
    return keras.Model(inputs, x, name="digits_backbone")


def pretrain_backbone(seed: int = 0, epochs: int = 8, copies: int = 3, batch_size: int = 32,
                      verbose: int = 0):
    """Pretrain the backbone on single digits of the pretraining half of ``load_digits``.

    A classifier (backbone -> global max pooling -> Dense 10 softmax) learns to name the one
    digit of a canvas; max pooling makes each position of the feature map a detector, which is
    what a multi-label head needs. Images are scaled as the feature pipeline scales them.

    Returns:
        ``(backbone, info)``: the backbone, frozen, and a dict with the held-out accuracy on
        single digits of the mosaic half (glyphs never seen in pretraining).
    """
    import keras

    from mlml_tf.inputs import scale_images

    pretraining, mosaic = digit_split(seed)
    images, digits = single_digit_images(pretraining, seed=seed, copies=copies)
    held_images, held_digits = single_digit_images(mosaic, seed=seed + 1)
    backbone = build_backbone(seed)
    classifier = keras.Sequential([
        backbone,
        keras.layers.GlobalMaxPooling2D(name="max_over_positions"),
        keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="digit"),
    ], name="pretraining_classifier")
    # 32 steps a call of the compiled loop: the same weights bit for bit, in a third less time.
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                       steps_per_execution=32)
    classifier.fit(scale_images(images, SCALING), digits, epochs=epochs, batch_size=batch_size,
                   shuffle=True, verbose=verbose)
    _, accuracy = classifier.evaluate(scale_images(held_images, SCALING), held_digits,
                                      batch_size=256, verbose=0)
    backbone.trainable = False
    info = {"pretraining_digits": int(len(pretraining)), "copies": int(copies),
            "epochs": int(epochs), "held_out_digits": int(len(mosaic)),
            "held_out_accuracy": round(float(accuracy), 4)}
    return backbone, info


def weights_digest(model) -> str:
    """SHA-256 of a model's weight values: equal weights, equal digest, however they were saved."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def _backbone(out: Path, settings: DemoSettings, seed: int, log):
    """Load the pretrained backbone of an earlier call with the same settings, or pretrain one."""
    import keras

    wanted = {"name": BACKBONE_NAME, "seed": seed, "copies": settings.pretrain_copies,
              "epochs": settings.pretrain_epochs}
    info_path, model_path = out / BACKBONE_INFO, out / BACKBONE_FILE
    if info_path.exists() and model_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("settings") == wanted:
            backbone = keras.models.load_model(model_path)
            if weights_digest(backbone) == info.get("weights_sha256"):
                backbone.trainable = False
                log(f"backbone: reused {model_path}")
                return backbone, info
    backbone, result = pretrain_backbone(seed, settings.pretrain_epochs,
                                         settings.pretrain_copies)
    with atomic_path(model_path) as tmp:
        backbone.save(tmp)
    info = {"settings": wanted, "weights_sha256": weights_digest(backbone), **result}
    write_bytes_atomic(info_path, json.dumps(info, indent=1, sort_keys=True).encode() + b"\n")
    log(f"backbone: pretrained on single digits, held-out accuracy "
        f"{result['held_out_accuracy']:.3f} -> {model_path}")
    return backbone, info


def _feature_cache(out: Path, data: Path, backbone, backbone_info: dict):
    from mlml_tf.features import build_image_cache, image_files
    from mlml_tf.layout import read_groundtruth
    from mlml_tf.model import feature_extractor

    ids = list(read_groundtruth(data).index)
    paths = image_files(data, ids, data)
    extractor = feature_extractor(backbone, input_shape=(CANVAS, CANVAS, 3))
    settings = {"backbone": BACKBONE_NAME, "weights_sha256": backbone_info["weights_sha256"]}
    return build_image_cache(out / "features", ids, paths, extractor, settings,
                             image_size=(CANVAS, CANVAS), scaling=SCALING, batch_size=256,
                             progress=False)


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
COMPARISON = (("paper", 0.5), ("rps", 0.5), ("single-positive", None))


def run_demo(out: str | os.PathLike = "demo_out", quick: bool = False, seed: int = 0,
             settings: DemoSettings | None = None, log=print,
             methods: Sequence[str] | str | None = None) -> dict:
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
        log: where progress lines go.
        methods: "all", or the methods beyond the paper's to compare: they train, beside the
            paper's three, under each protocol of :data:`COMPARISON` on every fold, and
            ``out/methods.md``, ``out/methods.csv`` and ``out/figure_methods.png`` (and PDF)
            show mAP and micro F1 of each (mean ± std over folds).

    Returns:
        A dict: ``table`` (summary DataFrame), ``markdown``, ``runs`` (one row per run),
        ``counts`` (trained / already complete runs), ``files`` (paths written), ``backbone``
        (pretraining details) and ``seconds`` (time per step).

    Example:
        >>> result = run_demo("demo_out", quick=True)      # doctest: +SKIP
        >>> result["table"]["roc_auc_micro"]["mean"]       # doctest: +SKIP
    """
    from mlml_tf.grid import grid_cells, run_cells
    from mlml_tf.results import (
        collect_runs,
        format_table_markdown,
        plot_metric_boxplots,
        plot_true_positives,
        summary_table,
    )

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

    data = out / "data"
    write_digit_dataset(data, settings.n_images, seed=seed)
    manifest = split(data, n_folds=N_FOLDS, ratios=PAPER_RATIOS, seed=seed)
    n_train = manifest["split"]["counts"]["1"]["train"]
    log(f"data: {settings.n_images} mosaics and {N_FOLDS} folds -> {data}")
    lap("data")

    backbone, backbone_info = _backbone(out, settings, seed, log)
    lap("backbone")
    cache = _feature_cache(out, data, backbone, backbone_info)
    log(f"features: {len(cache)} images x {cache.shape} -> {cache.folder}")
    lap("features")

    # One folder per settings and seed: an experiment folder holding runs of other settings
    # would leave collect_runs to pick among them.
    runs_dir = out / "runs" / f"{mode}-seed{seed}-{cache_key(dataclasses.asdict(settings))[:8]}"
    cells = grid_cells(PAPER_METHODS, settings.ratios, settings.folds)
    overrides = {"batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                 "head": settings.head, "seed": seed, "cb_source": settings.cb_source}
    counts = run_cells(data, runs_dir, cache, cells, epochs=settings.epochs,
                       config_overrides=overrides, verbose=0, log=log)
    log(f"runs: {counts['trained']} trained, {counts['already_complete']} already complete")
    lap("runs")

    comparison = _compare_methods(data, runs_dir, cache, settings, seed, methods, overrides,
                                  log, out)
    if comparison:
        lap("comparison")

    runs = collect_runs(runs_dir)
    runs = runs[runs["protocol"] == "paper"]
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
    log(markdown)
    log(f"results: {files['results_md']}, figures: {', '.join(names)}")
    log("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return {"table": table, "markdown": markdown, "runs": runs, "counts": counts,
            "files": {**files, **comparison.get("files", {})}, "backbone": backbone_info,
            "settings": dataclasses.asdict(settings), "seconds": seconds,
            "comparison": comparison.get("table"),
            "comparison_markdown": comparison.get("markdown")}


def _compare_methods(data: Path, runs_dir: Path, cache, settings: DemoSettings, seed: int,
                     methods, overrides: dict, log, out: Path) -> dict:
    """Every method of ``methods`` and the paper's three under the protocols of
    :data:`COMPARISON`, on every fold; their table and figure. Nothing when ``methods`` adds
    no method to the paper's."""
    from mlml_tf.grid import grid_cells, run_cells
    from mlml_tf.layout import split_protocol
    from mlml_tf.methods import METHODS
    from mlml_tf.results import (
        collect_runs,
        format_table_markdown,
        plot_method_comparison,
        summary_table,
    )

    chosen = list(METHODS) if methods == "all" else list(methods or [])
    chosen = [*PAPER_METHODS, *(m for m in chosen if m not in PAPER_METHODS)]
    if chosen == list(PAPER_METHODS):
        return {}
    cells = []
    for protocol, ratio in COMPARISON:
        if protocol != "paper":
            split_protocol(data, protocol, None if ratio is None else [ratio], n_folds=N_FOLDS,
                           seed=seed)
        ratios = [] if ratio is None else [ratio]
        cells += grid_cells(chosen, ratios, settings.folds, protocol=protocol)
    counts = run_cells(data, runs_dir, cache, cells, epochs=settings.epochs,
                       config_overrides=overrides, verbose=0, log=log)
    log(f"comparison: {counts['trained']} trained, {counts['already_complete']} already "
        "complete")
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
    log(markdown)
    return {"table": table, "markdown": markdown, "files": files}
