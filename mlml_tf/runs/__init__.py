"""The result folder of one run: its name, its files, and reading it back. No TensorFlow.
"""

from __future__ import annotations

from mlml_tf.runs.names import (
    ALL_METHODS,
    EXPERIMENT_TEMPLATES,
    METHOD_LABELS,
    NAMING,
    Experiment,
    experiment_name,
    parse_experiment_name,
)
from mlml_tf.runs.outputs import (
    AVERAGE_ROW,
    COMPLETE,
    EVALUATION,
    EVALUATION_EXTRA,
    GROUND_TRUTH,
    HEAD_WEIGHTS,
    METRIC_LABELS,
    METRICS,
    ORIGINAL_REPORT_COLUMNS,
    PREDICTIONS,
    REPORT,
    REPORT_EXTRA,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    evaluation_extra_text,
    evaluation_text,
    extra_report_bytes,
    original_evaluation_lines,
    report_bytes,
    write_run_outputs,
)
from mlml_tf.runs.reading import (
    read_predictions,
    read_run,
    run_layout,
)

__all__ = [
    "ALL_METHODS",
    "METHOD_LABELS",
    "EXPERIMENT_TEMPLATES",
    "NAMING",
    "Experiment",
    "experiment_name",
    "parse_experiment_name",
    "METRIC_LABELS",
    "PREDICTIONS",
    "COMPLETE",
    "HEAD_WEIGHTS",
    "GROUND_TRUTH",
    "EVALUATION",
    "EVALUATION_EXTRA",
    "REPORT",
    "REPORT_EXTRA",
    "METRICS",
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "original_evaluation_lines",
    "evaluation_text",
    "evaluation_extra_text",
    "ORIGINAL_REPORT_COLUMNS",
    "AVERAGE_ROW",
    "report_bytes",
    "extra_report_bytes",
    "write_run_outputs",
    "read_predictions",
    "run_layout",
    "read_run",
]
