"""What the results notebooks show beside the tables and figures of :mod:`mlml_tf.apps`: which
runs are there, the original's logged scores, per-class reports, the table written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.apps.tables import format_table_markdown
from mlml_tf.errors import DataError
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.methods.registry import PAPER_METHODS
from mlml_tf.runs.names import METHOD_LABELS
from mlml_tf.runs.reading import read_run

#: Micro ROC-AUC of the original's training logs, COCO fold 1 (docs/original.md section 8), by
#: method and ratio.
ORIGINAL_FOLD1_ROC_AUC: dict[str, dict[float, float]] = {
    "ce": {0.0: 0.9135, 0.25: 0.9059, 0.5: 0.9006, 0.75: 0.8793},
    "im-wce": {0.0: 0.9146, 0.25: 0.9107, 0.5: 0.9062, 0.75: 0.8913},
}


def grid_coverage(runs: pd.DataFrame) -> pd.DataFrame:
    """Folds found per method (rows) and ratio (columns): where the grid still has holes."""

    table = runs.pivot_table(index="method", columns="ratio", values="fold", aggfunc="count",
                             fill_value=0)
    order = ([m for m in PAPER_METHODS if m in table.index]
             + [m for m in table.index if m not in PAPER_METHODS])
    table = table.loc[order]
    table.index = [METHOD_LABELS.get(m, m) for m in table.index]
    return table


def compare_with_original_logs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fold-1 micro ROC-AUC of ``runs`` beside the original's logged values (COCO,
    docs/original.md section 8)."""

    rows = []
    for method, by_ratio in ORIGINAL_FOLD1_ROC_AUC.items():
        for ratio, original in by_ratio.items():
            found = runs[(runs["method"] == method) & (runs["fold"] == 1)
                         & np.isclose(runs["ratio"].to_numpy(np.float64), ratio)]
            rows.append({"method": method, "ratio": ratio, "original": original,
                         "these runs": float(found["roc_auc_micro"].iloc[0]) if len(found)
                         else np.nan})
    return pd.DataFrame(rows)


def reports_at_ratio(runs: pd.DataFrame, ratio: float,
                     names: Sequence[str] | None = None,
                     fold: int | None = None) -> dict[str, list[pd.DataFrame]]:
    """Per-class reports of the runs at ``ratio`` (and ``fold``, or every fold), by method,
    with class names.

    ``names`` name the columns of runs of the original layout, which store none, and of runs
    whose classes are column numbers (NUS-WIDE's ``0``..``80``); runs that carry names keep them.

    Returns:
        method -> one report per fold, as :func:`mlml_tf.apps.figures.plot_true_positives`
        takes them.
    """

    chosen = runs[np.isclose(runs["ratio"].to_numpy(np.float64), ratio)]
    if fold is not None:
        chosen = chosen[chosen["fold"] == fold]
    if chosen.empty:
        raise DataError(f"no run at ratio {ratio}" + ("" if fold is None else f", fold {fold}")
                        + f"; the runs have ratios {sorted(runs['ratio'].unique().tolist())} "
                        f"and folds {sorted(runs['fold'].unique().tolist())}")
    names = None if names is None else [str(n) for n in names]
    reports: dict[str, list[pd.DataFrame]] = {}
    for method, run_dir in zip(chosen["method"], chosen["run_dir"], strict=True):
        report = read_run(run_dir, class_names=names)["report"]
        numbered = [str(i) for i in range(len(report))]
        if names is not None and len(names) == len(report) and list(report.index) == numbered:
            report = report.set_axis(names)
        reports.setdefault(method, []).append(report)
    return reports


def save_table(table: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Write a :func:`mlml_tf.apps.tables.summary_table` as Markdown (mean ± std) and CSV."""
    markdown, csv = Path(f"{os.fspath(out_stem)}.md"), Path(f"{os.fspath(out_stem)}.csv")
    write_bytes_atomic(markdown, format_table_markdown(table).encode())
    flat = table.copy()
    flat.columns = ["_".join(str(p) for p in c) for c in table.columns]
    write_bytes_atomic(csv, flat.to_csv(lineterminator="\n").encode())
    return [markdown, csv]
