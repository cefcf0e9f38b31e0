"""Tables of many runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.layout import ratio_text
from mlml_tf.files.protocols import PAPER, PROTOCOLS
from mlml_tf.labels.missing import PAPER_RATIOS
from mlml_tf.metrics.scores import SCORE_KEYS
from mlml_tf.runs.names import ALL_METHODS, METHOD_LABELS, parse_experiment_name
from mlml_tf.runs.outputs import METRIC_LABELS, METRICS
from mlml_tf.runs.reading import read_run, run_layout

# Names of mlml_tf.runs that readers of results reach from here too.


#: The metrics of the paper's Figures 1 and 2, in the paper's order: recall, precision, F1, AUC.
PAPER_METRICS: tuple[str, ...] = ("recall_micro", "precision_micro", "f1_micro", "roc_auc_micro")


#: What tables and figures show: the field's mAP beside the paper's micro metrics.
TABLE_METRICS: tuple[str, ...] = ("map", *PAPER_METRICS)


#: Decimals of a metric in a table: mAP is on the field's 0-100 scale.
_DIGITS = {"map": 2}


def _recency(run_dir: Path) -> tuple:
    if run_layout(run_dir) == "mlml-tf":
        return (1, (run_dir / METRICS).stat().st_mtime_ns, run_dir.name)
    return (0, 0, run_dir.name)


def _method_rank(method: str) -> tuple[int, str]:
    return (ALL_METHODS.index(method) if method in ALL_METHODS else len(ALL_METHODS), method)


def collect_runs(root: str | os.PathLike, ratios: Sequence[float] = PAPER_RATIOS) -> pd.DataFrame:
    """One row per experiment found under ``root/<experiment>/<run folder>/``.

    Folders whose names are not experiment names (:func:`parse_experiment_name`) are ignored,
    and so are run folders that hold no complete run. When an experiment holds several run
    folders, the newest is taken: for folders of the original (named by a timestamp) the
    lexicographically last name, for mlml-tf's (named by a digest of the run's settings) the
    latest ``metrics.json``, which mlml-tf writes last; ``n_run_folders`` says how many there
    were.

    Returns:
        Columns ``method``, ``protocol`` (:func:`protocol_label`), ``ratio`` (the paper's, or
        RPS's probability; NaN for FPC and single positive), ``fold``, ``experiment``,
        ``run_dir``, ``layout``, ``faithful`` (made by ``mlml-tf run --faithful``; None where
        not recorded), ``n_run_folders``, the metrics of ``SCORE_KEYS`` (NaN where
        undefined), ``n_samples``, ``n_classes`` and ``n_auc_undefined``; rows sorted by
        protocol, method (CE, IM-WCE, CB-WCE, then the field's), ratio and fold.
    """

    root = Path(root)
    if not root.is_dir():
        raise DataError("results folder not found", file=root)
    rows = []
    for experiment in sorted(p for p in root.iterdir() if p.is_dir()):
        parsed = parse_experiment_name(experiment.name, ratios)
        if parsed is None:
            continue
        runs = sorted(
            (d for d in experiment.iterdir()
             if d.is_dir() and not d.name.startswith(".") and run_layout(d) is not None),
            key=_recency,
        )
        if not runs:
            continue
        run = read_run(runs[-1], report=False)
        ratio = parsed.ratio
        if ratio is not None:
            ratio = float((run["extra"].get("config") or {}).get("ratio", ratio))
        metrics = run["metrics"]
        rows.append({
            "method": parsed.method,
            "protocol": protocol_label(parsed.protocol, parsed.count),
            "ratio": np.nan if ratio is None else ratio,
            "fold": parsed.fold,
            "experiment": experiment.name,
            "run_dir": run["run_dir"],
            "layout": run["layout"],
            "faithful": run["faithful"],
            "n_run_folders": len(runs),
            **{key: np.nan if metrics[key] is None else float(metrics[key])
               for key in SCORE_KEYS},
            "n_samples": int(metrics["n_samples"]),
            "n_classes": int(metrics["n_classes"]),
            "n_auc_undefined": len(metrics["auc_undefined_classes"]),
        })
    columns = ["method", "protocol", "ratio", "fold", "experiment", "run_dir", "layout",
               "faithful", "n_run_folders", *SCORE_KEYS, "n_samples", "n_classes",
               "n_auc_undefined"]
    rows.sort(key=lambda r: (_protocol_rank(r["protocol"]), _method_rank(r["method"]),
                             _ratio_rank(r["ratio"]), r["fold"]))
    return pd.DataFrame(rows, columns=columns)


def protocol_label(protocol: str, count: int | None = None) -> str:
    """How tables name a protocol: "paper", "rps", "fpc 1000", "single-positive"
    (:meth:`mlml_tf.files.protocols.Protocol.label`)."""
    return PROTOCOLS[protocol].label(count)


def _protocol_rank(label: str) -> tuple[int, str]:
    order = list(PROTOCOLS)
    name = label.split(" ")[0]
    return (order.index(name) if name in order else len(order), label)


def _ratio_rank(ratio: float) -> float:
    return -1.0 if pd.isna(ratio) else float(ratio)


def summary_table(
    df: pd.DataFrame, metrics: Sequence[str] = TABLE_METRICS, ddof: int = 1
) -> pd.DataFrame:
    """Mean and standard deviation over folds, per method and ratio.

    Args:
        df: runs as :func:`collect_runs` returns them.
        metrics: metric columns to summarize; default mAP, micro recall, precision, F1, ROC-AUC.
        ddof: delta degrees of freedom of the standard deviation; 1 (the sample standard
            deviation, pandas' default) or 0 (numpy's default).

    Returns:
        Index (method, ratio) in the order CE, IM-WCE, CB-WCE (then the field's methods) and
        ascending ratio, or (protocol, method, ratio) where ``df`` holds runs of another
        protocol than the paper's; columns a MultiIndex (metric, "mean" | "std"), then
        ("folds", "count").
    """

    missing = [c for c in ("method", "ratio", *metrics) if c not in df.columns]
    if missing:
        raise DataError(f"the runs table lacks the columns {missing}")
    # The protocol is a level of its own only where runs of another than the paper's are there.
    keys = ["method", "ratio"]
    if "protocol" in df.columns and (df["protocol"] != PAPER.label()).any():
        keys = ["protocol", *keys]
    grouped = df.groupby(keys, dropna=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std(ddof=ddof)
    table = pd.concat(
        {(m, stat): frame[m] for m in metrics for stat, frame in (("mean", mean), ("std", std))},
        axis=1,
    )
    table[("folds", "count")] = grouped.size()
    order = sorted(table.index, key=lambda key: (
        *((_protocol_rank(key[0]),) if len(keys) == 3 else ()), _method_rank(key[-2]),
        _ratio_rank(key[-1])))
    return table.loc[order]


def format_table_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table of :func:`summary_table`: one "mean ± std" cell per metric, with
    ``digits`` decimals (mAP, on the 0-100 scale, with 2)."""

    metrics = [m for m in dict.fromkeys(table.columns.get_level_values(0)) if m != "folds"]
    protocols = table.index.nlevels == 3
    header = [*(["Protocol"] if protocols else []), "Method", "Ratio",
              *[METRIC_LABELS.get(m, m) for m in metrics], "Folds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in table.iterrows():
        *protocol, method, ratio = key
        cells = [*protocol, METHOD_LABELS.get(method, method),
                 "-" if pd.isna(ratio) else ratio_text(ratio)]
        for m in metrics:
            mean, std = row[(m, "mean")], row[(m, "std")]
            d = _DIGITS.get(m, digits)
            text = "n/a" if pd.isna(mean) else f"{mean:.{d}f}"
            if not pd.isna(mean) and not pd.isna(std):
                text += f" ± {std:.{d}f}"
            cells.append(text)
        cells.append(str(int(row[("folds", "count")])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def protocol_setting(protocol: str, ratio: float) -> str:
    """A protocol with its ratio, as the comparison figure labels it: "paper 0.5", "rps 0.5",
    "fpc 1000", "single-positive"."""
    return protocol if pd.isna(ratio) else f"{protocol} {ratio_text(ratio)}"
