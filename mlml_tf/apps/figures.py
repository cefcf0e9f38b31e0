"""Figures of many runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mlml_tf.apps.tables import (
    PAPER_METRICS,
    _method_rank,
    _protocol_rank,
    _ratio_rank,
    protocol_setting,
)
from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path
from mlml_tf.files.layout import ratio_text
from mlml_tf.files.protocols import PAPER
from mlml_tf.runs.names import METHOD_LABELS
from mlml_tf.runs.outputs import METRIC_LABELS
from mlml_tf.runs.reading import read_run

#: The published figures' colours: seaborn's "Blues" palette of three; the field's methods in
#: matplotlib's "tab20" colours, the methods that revise their labels in its later pairs.
_METHOD_COLORS = {"ce": "#c6dbef", "im-wce": "#6aaed6", "cb-wce": "#2070b4",
                  "asl": "#ff7f0e", "csl": "#d62728", "an": "#2ca02c", "an-ls": "#98df8a",
                  "wan": "#9467bd", "epr": "#8c564b", "role": "#e377c2", "ll-r": "#bcbd22",
                  "ll-ct": "#dbdb8d", "ll-cp": "#7f7f7f", "pl-shrink": "#17becf"}


def save_figure(figure, out_stem: str | os.PathLike) -> list[Path]:
    """Write ``<out_stem>.png`` and ``<out_stem>.pdf`` atomically, with reproducible bytes."""

    paths = []
    for fmt, metadata in (("png", None), ("pdf", {"CreationDate": None})):
        path = Path(f"{os.fspath(out_stem)}.{fmt}")
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def _methods_in(methods) -> list[str]:
    return sorted(set(methods), key=_method_rank)


def _legend_handles(methods: list[str]):
    return [Patch(facecolor=_METHOD_COLORS.get(m, "0.6"), edgecolor="black",
                  label=METHOD_LABELS.get(m, m)) for m in methods]


def plot_metric_boxplots(
    df: pd.DataFrame, out_stem: str | os.PathLike, metrics: Sequence[str] = PAPER_METRICS
) -> list[Path]:
    """Figures 1 and 2 of the paper: one box plot per metric, x = ratio, hue = method.

    Each box spans the folds of one (method, ratio). Matplotlib's object interface draws the
    figure without touching pyplot's global state or backend.

    Args:
        df: runs as :func:`collect_runs` returns them.
        out_stem: path without extension; ``<out_stem>.png`` and ``<out_stem>.pdf`` are written.
        metrics: one panel each, default the paper's four: recall, precision, F1 and ROC-AUC
            (micro); ``TABLE_METRICS`` adds a panel of mAP first, which the paper did not
            draw.

    Returns:
        The written paths, PNG then PDF.
    """
    if "protocol" in df.columns:
        # The paper's figures are over its ratios of hidden positives.
        df = df[df["protocol"] == PAPER.label()]
    if df.empty:
        raise DataError("no runs to plot")
    methods = _methods_in(df["method"])
    ratios = sorted(df["ratio"].unique())
    width = 0.8 / len(methods)
    figure = Figure(figsize=(4 * len(metrics), 3.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, method in enumerate(methods):
            data, positions = [], []
            for j, ratio in enumerate(ratios):
                values = df.loc[(df["method"] == method) & (df["ratio"] == ratio), metric]
                values = values.dropna().to_numpy(np.float64)
                if values.size:
                    data.append(values)
                    positions.append(j - 0.4 + width * (i + 0.5))
            if not data:
                continue
            boxes = ax.boxplot(data, positions=positions, widths=width * 0.85,
                               patch_artist=True, manage_ticks=False)
            for patch in boxes["boxes"]:
                patch.set_facecolor(_METHOD_COLORS.get(method, "0.6"))
            for median in boxes["medians"]:
                median.set_color("black")
        ax.set_xticks(range(len(ratios)), [ratio_text(r) for r in ratios])
        ax.set_xlim(-0.5, len(ratios) - 0.5)
        ax.set_xlabel("ratio of missing labels")
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[-1].legend(handles=_legend_handles(methods), loc="best", fontsize="small")
    figure.tight_layout()
    return save_figure(figure, out_stem)


def plot_method_comparison(
    df: pd.DataFrame, out_stem: str | os.PathLike,
    metrics: Sequence[str] = ("map", "f1_micro"),
) -> list[Path]:
    """Every method under every protocol: one panel per metric, a group of bars per protocol
    setting (:func:`protocol_setting`), one bar per method (mean over folds, the standard
    deviation as an error bar).

    Returns:
        The written paths, PNG then PDF.
    """
    if df.empty:
        raise DataError("no runs to plot")
    settings = [protocol_setting(p, r) for p, r in zip(df["protocol"], df["ratio"], strict=True)]
    df = df.assign(setting=settings)
    order = list(dict.fromkeys(s for _, s in sorted(
        zip([(_protocol_rank(p), _ratio_rank(r)) for p, r in zip(df["protocol"], df["ratio"],
                                                                   strict=True)],
            settings, strict=True))))
    methods = _methods_in(df["method"])
    width = 0.8 / len(methods)
    figure = Figure(figsize=(max(6.0, 1.6 * len(order) * len(metrics)), 3.8))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        grouped = df.groupby(["setting", "method"])[metric]
        mean, std = grouped.mean(), grouped.std()
        for i, method in enumerate(methods):
            xs = [j - 0.4 + width * (i + 0.5) for j, s in enumerate(order)
                  if (s, method) in mean.index]
            keys = [(s, method) for s in order if (s, method) in mean.index]
            ax.bar(xs, [mean[k] for k in keys], width * 0.9,
                   yerr=[0.0 if pd.isna(std[k]) else std[k] for k in keys],
                   color=_METHOD_COLORS.get(method, "0.6"), edgecolor="black", linewidth=0.5,
                   error_kw={"elinewidth": 0.8, "capsize": 1.5})
        ax.set_xticks(range(len(order)), order)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[-1].legend(handles=_legend_handles(methods), loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    return save_figure(figure, out_stem)


def _reports_by_method(runs_or_reports, ratio: float, fold: int | None,
                       class_names: Sequence[str] | None) -> dict[str, list[pd.DataFrame]]:
    if isinstance(runs_or_reports, pd.DataFrame):
        df = runs_or_reports
        if not {"method", "ratio", "fold", "run_dir"} <= set(df.columns):
            raise DataError("a runs table needs the columns method, ratio, fold and run_dir "
                            "(see collect_runs)")
        chosen = df[np.isclose(df["ratio"].to_numpy(np.float64), ratio)]
        if fold is not None:
            chosen = chosen[chosen["fold"] == fold]
        reports: dict[str, list[pd.DataFrame]] = {}
        for method, run_dir in zip(chosen["method"], chosen["run_dir"], strict=True):
            reports.setdefault(method, []).append(read_run(run_dir, class_names)["report"])
        return reports
    if isinstance(runs_or_reports, Mapping):
        return {method: [value] if isinstance(value, pd.DataFrame) else list(value)
                for method, value in runs_or_reports.items()}
    raise DataError("expected a runs table (collect_runs) or a mapping method -> per-class "
                    f"report(s), got {type(runs_or_reports).__name__}")


#: The last bar of Figure 3, named as the original named it.
POSITIVE_SAMPLES = "Positive Samples"


def true_positives_table(
    runs_or_reports: pd.DataFrame | Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    ratio: float = 0.5,
    fold: int | None = 1,
    top: int = 15,
    class_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The numbers of Figure 3: true positives per class and method, and the test positives.

    As the original's results notebook: one column per method (CE, IM-WCE, CB-WCE), then
    ``Positive Samples`` (the positives of the test fold), one row per class, sorted by
    ``Positive Samples`` from most to fewest, the ``top`` first. Counts of one run each, or
    their mean over the folds given (``fold=None`` with a runs table, or several reports per
    method in a mapping).

    Args:
        runs_or_reports: a runs table from :func:`collect_runs`, or a mapping method ->
            per-class report (or list of reports) from :func:`mlml_tf.metrics.per_class_report`.
        ratio: the missing-label ratio read from a runs table (paper: 0.5).
        fold: the fold read from a runs table (paper: 1); None averages over all folds.
        top: number of classes.
        class_names: names for runs of the original layout, which store none.
    """

    reports = _reports_by_method(runs_or_reports, ratio, fold, class_names)
    reports = {m: r for m, r in reports.items() if r}
    if not reports:
        where = "" if fold is None else f", fold {fold}"
        raise DataError(f"no per-class report to plot at ratio {ratio_text(ratio)}{where}")
    methods = _methods_in(reports)
    everything = [r for m in methods for r in reports[m]]
    for r in everything:
        if not {"support", "true_positives"} <= set(r.columns):
            raise DataError("a per-class report needs the columns support and true_positives")
    table = pd.DataFrame({
        METHOD_LABELS.get(m, m): pd.concat([r["true_positives"] for r in reports[m]],
                                           axis=1).mean(axis=1)
        for m in methods
    })
    table[POSITIVE_SAMPLES] = pd.concat([r["support"] for r in everything], axis=1).mean(axis=1)
    table = table.sort_values(POSITIVE_SAMPLES, ascending=False, kind="stable")
    return table.iloc[:top]


def plot_true_positives(
    runs_or_reports: pd.DataFrame | Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    out_stem: str | os.PathLike,
    ratio: float = 0.5,
    top: int = 15,
    class_names: Sequence[str] | None = None,
    fold: int | None = 1,
) -> list[Path]:
    """Figure 3 of the paper: true positives per class for the most frequent classes.

    As published: fold 1 at ratio 0.5, the 15 classes with the most test positives, most
    frequent first, four bars per class (CE, IM-WCE, CB-WCE and ``Positive Samples``) in
    shades of blue with black edges. ``fold=None`` shows the mean over the folds instead.
    Arguments as :func:`true_positives_table`; ``<out_stem>.png`` and ``<out_stem>.pdf`` are
    written and their paths returned, PNG then PDF.
    """

    table = true_positives_table(runs_or_reports, ratio, fold, top, class_names)
    x = np.arange(len(table))
    width = 0.7 / len(table.columns)
    shades = colormaps["Blues"](np.linspace(0, 1, len(table.columns)))

    figure = Figure(figsize=(max(6.0, 0.7 * len(table) + 2), 4.5))
    ax = figure.subplots()
    for i, column in enumerate(table.columns):
        ax.bar(x - 0.35 + width * (i + 0.5), table[column].to_numpy(np.float64), width,
               color=shades[i], edgecolor="black", linewidth=0.5, label=column)
    ax.set_xticks(x, [str(c) for c in table.index], rotation=45, ha="right")
    ax.set_ylabel("true positives")
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, out_stem)
