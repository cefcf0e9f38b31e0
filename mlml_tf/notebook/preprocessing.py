"""What the preprocessing notebooks show: the label table, its co-occurrences, the folds and
what a method's loss weighs (also used by the training notebooks and the demo's).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from mlml_tf.apps.figures import save_figure
from mlml_tf.errors import DataError
from mlml_tf.files.layout import MANIFEST, image_files, read_manifest, run_files
from mlml_tf.files.published import found_split, published_counts, read_complete_labels
from mlml_tf.files.tables import read_table
from mlml_tf.settings import RunConfig
from mlml_tf.training.data import load_run_data


def class_names(data: str | os.PathLike) -> list[str]:
    """The class names of a data folder: the manifest's (NUS-WIDE's concepts for its columns
    ``0``..``80``), else the columns of its complete labels (``groundtruth.csv``, or a published
    folder's test files of ratio 0.0)."""

    manifest = read_manifest(data)
    names = manifest.get("class_names")
    columns = manifest.get("classes")
    if names and columns and len(names) == len(columns):
        return [str(n) for n in names]
    return [str(c) for c in read_complete_labels(data).columns]


def label_statistics(labels: pd.DataFrame) -> pd.Series:
    """Rows, classes and labels per image of a 0/1 table (docs/original.md section 1 gives them
    for the paper)."""

    per_row = labels.to_numpy().sum(axis=1)
    per_class = labels.to_numpy().sum(axis=0)
    return pd.Series({
        "images": len(labels),
        "classes": labels.shape[1],
        "labels per image (mean)": round(float(per_row.mean()), 2) if len(labels) else np.nan,
        "labels per image (min)": int(per_row.min()) if len(labels) else 0,
        "labels per image (max)": int(per_row.max()) if len(labels) else 0,
        "classes never positive": int((per_class == 0).sum()),
    }, dtype=object)


def split_counts(source: dict | str | os.PathLike) -> pd.DataFrame:
    """One row per fold: training and test rows, and the positives hidden at each ratio.

    ``source``: a manifest, or a data folder: its manifest's counts, or, in a folder without
    them that holds the original's layout (a published folder), counts of its files.
    """

    if isinstance(source, dict):
        counts = source.get("split", {}).get("counts")
    else:
        counts = read_manifest(source).get("split", {}).get("counts")
        if not counts and found_split(source):
            counts = published_counts(source)
    if not counts:
        raise DataError("the manifest records no split (run `mlml-tf split` or mlml_tf.split "
                        "first)")
    rows = {}
    for fold, c in counts.items():
        row = {"train rows": c["train"], "test rows": c["test"]}
        row.update({f"hidden at r={r}": n for r, n in c["hidden"].items()})
        rows[int(fold)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "fold"
    return table


def cooccurrence(labels: pd.DataFrame | np.ndarray, normalize: str = "conditional") -> np.ndarray:
    """Label co-occurrence of a 0/1 table.

    Args:
        labels: (rows, classes) 0/1.
        normalize: ``"count"``: entry (a, b) = images with both a and b (the diagonal: images
            with a); ``"conditional"``: P(b | a) = count(a, b) / count(a), the quantity the
            confidence weights of CB-WCE build on (paper eq. 3); a class with no positive gives
            a row of zeros.

    Returns:
        A (classes, classes) float array.
    """

    values = np.asarray(labels, dtype=np.float64)
    counts = values.T @ values
    if normalize == "count":
        return counts
    if normalize != "conditional":
        raise DataError(f"normalize must be 'count' or 'conditional', not {normalize!r}")
    diagonal = np.diag(counts)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(diagonal > 0, counts / np.where(diagonal > 0, diagonal, 1), 0.0)


def plot_cooccurrence(
    labels: pd.DataFrame,
    out_stem: str | os.PathLike,
    names: Sequence[str] | None = None,
    normalize: str = "conditional",
) -> list[Path]:
    """Heatmap of :func:`cooccurrence`, classes in column order; written as PNG and PDF.

    Args:
        labels: the 0/1 table (e.g. ``groundtruth.csv``).
        out_stem: path without extension.
        names: class names for the axes (default: the columns).
        normalize: as in :func:`cooccurrence`.

    Returns:
        The written paths, PNG then PDF.
    """

    names = [str(n) for n in (names if names is not None else labels.columns)]
    if len(names) != labels.shape[1]:
        raise DataError(f"{len(names)} names for {labels.shape[1]} classes")
    matrix = cooccurrence(labels, normalize)
    n = len(names)
    side = min(14.0, max(5.0, 0.16 * n + 2))
    figure = Figure(figsize=(side + 1, side))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="viridis", interpolation="nearest",
                      vmin=0, vmax=1 if normalize == "conditional" else None)
    fontsize = 8 if n <= 30 else 5
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    if normalize == "conditional":
        ax.set_title("P(column class | row class)")
        ax.set_xlabel("co-occurring class")
        ax.set_ylabel("given class")
    else:
        ax.set_title("images with both classes")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    figure.tight_layout()
    return save_figure(figure, out_stem)


def plot_examples(data: str | os.PathLike, image_root: str | os.PathLike,
                  out_stem: str | os.PathLike, n: int = 8) -> list[Path]:
    """The first ``n`` images of a data folder, each titled with its labels; PNG and PDF.

    Args:
        data: a data folder with ``groundtruth.csv`` and ``images.csv``.
        image_root: the folder the files of ``images.csv`` are relative to.
        out_stem: path without extension.
        n: number of images.

    Returns:
        The written paths, PNG then PDF.
    """

    labels = read_complete_labels(data).iloc[:n]
    names = np.array(class_names(data))
    paths = image_files(data, list(labels.index), image_root)
    columns = min(4, len(paths))
    rows = -(-len(paths) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, path, (sample, row) in zip(axes, paths, labels.iterrows(), strict=False):
        with Image.open(path) as image:
            ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(f"{sample}: " + ", ".join(names[row.to_numpy() == 1]), fontsize=8,
                     wrap=True)
    for ax in axes:
        ax.axis("off")
    figure.tight_layout()
    return save_figure(figure, out_stem)


def fold_positive_rates(data: str | os.PathLike) -> pd.DataFrame:
    """Positive rate of each class in the whole set and in each test fold (docs/original.md
    section 2).

    Iterative stratification keeps every test fold's rate close to the whole set's; the
    published COCO folds stay within 0.007.

    Returns:
        Index: class names; columns ``all``, then ``fold 1`` .. ``fold k`` (test rows of each
        fold), rows in descending order of ``all``.
    """

    split = read_manifest(data).get("split") or found_split(data)
    if not split:
        raise DataError("the data folder has no split yet (run `mlml-tf split` or "
                        "mlml_tf.split first)",
                        file=Path(data) / MANIFEST)
    truth = read_complete_labels(data)
    ratio = split["ratios"][0]
    rates = {"all": truth.mean(axis=0)}
    for fold in range(1, split["n_folds"] + 1):
        test = read_table(run_files(data, ratio, fold)["test"])
        rates[f"fold {fold}"] = test.reindex(columns=truth.columns).mean(axis=0)
    table = pd.DataFrame(rates)
    table.index = class_names(data)
    return table.sort_values("all", ascending=False, kind="stable")


def fold_rate_gaps(rates: pd.DataFrame) -> pd.DataFrame:
    """For each test fold, the largest difference from the whole set's positive rate and the
    class where it occurs (``rates`` from :func:`fold_positive_rates`)."""

    gaps = rates.drop(columns="all").sub(rates["all"], axis=0).abs()
    return pd.DataFrame({"largest gap": gaps.max(axis=0), "class": gaps.idxmax(axis=0)})


def plot_fold_positive_rates(rates: pd.DataFrame, out_stem: str | os.PathLike,
                             top: int | None = None) -> list[Path]:
    """Per-class positive rates of the test folds against the whole set; PNG and PDF.

    Top panel: the rate in the whole set (bars) and in each test fold (markers); bottom panel:
    each fold's difference from the whole set.

    Args:
        rates: as :func:`fold_positive_rates` returns them.
        out_stem: path without extension.
        top: show only the ``top`` most frequent classes (default: all).

    Returns:
        The written paths, PNG then PDF.
    """

    shown = rates.iloc[:top] if top else rates
    folds = [c for c in shown.columns if c != "all"]
    x = np.arange(len(shown))
    figure = Figure(figsize=(max(6.0, 0.14 * len(shown) + 3), 6))
    upper, lower = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    upper.bar(x, shown["all"].to_numpy(), color="0.8", edgecolor="0.5", label="whole set")
    lower.axhline(0, color="0.5", linewidth=0.8)
    for fold in folds:
        upper.plot(x, shown[fold].to_numpy(), marker=".", linestyle="none", label=f"test {fold}")
        lower.plot(x, (shown[fold] - shown["all"]).to_numpy(), marker=".", linestyle="none")
    upper.set_ylabel("positive rate")
    upper.legend(fontsize="small", ncol=max(1, len(folds) // 2 + 1))
    lower.set_ylabel("fold - whole set")
    lower.set_xticks(x, list(shown.index), rotation=90, fontsize=8 if len(shown) <= 30 else 5)
    for ax in (upper, lower):
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, len(shown) - 0.4)
    figure.tight_layout()
    return save_figure(figure, out_stem)


def entry_weight_summary(data: str | os.PathLike, method: str, ratio: float, fold: int,
                         **config) -> pd.DataFrame:
    """What a method's loss weighs, per class, in the training rows of one (ratio, fold).

    The per-entry weight is W = y * P + (1 - y) * w̄ (docs/original.md section 6): P on observed
    positives, w̄ on observed zeros, among them the hidden positives. CE has w̄ = 1, IM-WCE 0 on
    hidden positives (an oracle), CB-WCE the confidence of paper eq. 3.

    Args:
        data: the data folder.
        method, ratio, fold: the run.
        **config: other :class:`mlml_tf.settings.RunConfig` fields (``cb_source``, ...).

    Returns:
        Index: class names; columns ``observed positives``, ``P``, ``mean w̄ on zeros``,
        ``zeros with w̄ < 1`` and ``hidden positives`` (known from the complete labels; the
        model never sees them).
    """

    run = load_run_data(data, RunConfig(method=method, ratio=ratio, fold=fold, **config))
    complete = read_complete_labels(data).loc[run.train_ids].to_numpy()
    zeros = run.train_labels == 0
    weights = np.where(zeros, run.weights, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_zero = np.nanmean(weights, axis=0)
    table = pd.DataFrame({
        "observed positives": (~zeros).sum(axis=0),
        "P": run.pos_weight,
        "mean w̄ on zeros": mean_zero,
        "zeros with w̄ < 1": (zeros & (run.weights < 1)).sum(axis=0),
        "hidden positives": (complete - run.train_labels).sum(axis=0).astype(int),
    }, index=class_names(data))
    return table.sort_values("observed positives", ascending=False, kind="stable")
