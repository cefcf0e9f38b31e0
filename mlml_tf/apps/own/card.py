"""The model card.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.runs.outputs import REPORT_EXTRA


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _summary(manifest: dict) -> str:
    validation = manifest.get("validation")
    if not validation:
        return "saved (no validation rows)"
    tuned = validation["tuned"]
    return (f"validation mAP {_number(tuned['map'], 1)}, micro F1 at the tuned thresholds "
            f"{_number(tuned['f1_micro'])}")


def model_card(manifest: dict, thresholds: np.ndarray, validation: Path) -> str:
    """The model folder's ``README.md``: data, method and settings, validation results."""
    s, counts = manifest["settings"], manifest["counts"]
    lines = [
        f"# mlml-tf model: {len(manifest['classes'])} classes",
        "",
        f"Trained with mlml-tf {manifest['versions']['mlml_tf']} (TensorFlow "
        f"{manifest['versions']['tensorflow']}, Keras {manifest['versions']['keras']}) from "
        f"`{counts['table']}`.",
        "",
        "## Data",
        "",
        "| rows | count | positive | negative | unknown |",
        "|---|---:|---:|---:|---:|",
    ]
    for part in ("train", "validation"):
        c = counts[part]
        lines.append(f"| {part} | {c['rows']} | {c['positive']} | {c['negative']} | "
                     f"{c['unknown']} |")
    if counts["left_out"]:
        lines += ["", f"{len(counts['left_out'])} rows left out, their image unreadable: "
                  + ", ".join(f"`{b['image']}`" for b in counts["left_out"][:10])]
    lines += [
        "",
        "## Method and settings",
        "",
        f"Method `{s['method']}`" + (f" with {dict(s['params'])}" if s["params"] else "")
        + f"; backbone `{s['backbone']}` (weights `{s['weights']}`), head `{s['head']}`, "
        f"images resized to {s['image_size']} x {s['image_size']} ({s['resize']}) and scaled "
        f"`{s['scaling']}`; {s['epochs']} epochs of Adadelta at {s['learning_rate']}, batches "
        f"of {s['batch_size']}, seed {s['seed']}.",
        *([] if not s["fine_tune"] else [
            "", f"Then the backbone's top {s['fine_tune']} layers with weights fine-tuned with "
            f"the head for {s['fine_tune_epochs']} epochs (Adam, "
            f"{s['fine_tune_learning_rate']}), images lightly augmented."]),
        "",
        "## Validation",
        "",
    ]
    validation_metrics = manifest.get("validation")
    if not validation_metrics:
        lines.append("No row was held out: no validation metric, every threshold is 0.5.")
    else:
        lines += [
            "Unknown entries count as negatives in these scores; where the table leaves "
            "entries unknown, the partial mAP and the micro scores over the annotated entries "
            "are given too. The tuned thresholds were chosen on these same rows, so the scores "
            "at them are optimistic; mAP does not depend on any threshold.",
            "",
            "| thresholds | mAP | precision | recall | F1 | ROC-AUC |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, key in (("0.5", "at_0.5"), ("tuned", "tuned")):
            m = validation_metrics[key]
            lines.append(f"| {name} | {_number(m['map'], 1)} | {_number(m['precision_micro'])} "
                         f"| {_number(m['recall_micro'])} | {_number(m['f1_micro'])} | "
                         f"{_number(m['roc_auc_micro'])} |")
            a = m.get("annotated")
            if a:
                lines.append(f"| {name}, annotated entries | {_number(a['partial_map'], 1)} | "
                             f"{_number(a['precision_micro'])} | {_number(a['recall_micro'])} "
                             f"| {_number(a['f1_micro'])} | {_number(a['roc_auc_micro'])} |")
        # Class names as written (a class "0" or "NA" stays itself); empty fields are NaN.
        report = pd.read_csv(validation / REPORT_EXTRA, index_col="class",
                             dtype={"class": str}, keep_default_na=False, na_values=[""])
        lines += ["", "| class | training positives | AP | threshold |",
                  "|---|---:|---:|---:|"]
        for c, t in zip(manifest["classes"], thresholds, strict=True):
            ap = report.loc[c, "average_precision"] if c in report.index else float("nan")
            lines.append(f"| {c} | {counts['positives_per_class'][c]} | "
                         f"{'n/a' if pd.isna(ap) else f'{ap:.2f}'} | {t:.2f} |")
        lines += ["", f"Every metric of the validation rows: `{validation.name}/`."]
    lines += ["", "## Use", "", "```",
              "mlml-tf predict --model THIS_FOLDER --images PHOTOS --out predictions.csv",
              "mlml-tf export --model THIS_FOLDER --out serving/1", "```", ""]
    return "\n".join(lines)
