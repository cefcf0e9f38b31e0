"""A data folder in the original's layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.files.tables import (
    check_same_table,
    read_positive_weights,
    read_table,
    table_classes,
    write_table,
)
from mlml_tf.labels.checks import check_labels
from mlml_tf.labels.missing import PAPER_RATIOS

GROUNDTRUTH = "groundtruth.csv"


MANIFEST = "manifest.json"


#: Optional: the image file of every id (columns ``id,file``, relative to an image root).
IMAGES = "images.csv"
#: The authors' CB-WCE weights over every row of the filtered set, in a published data folder.
GLOBAL_WEIGHTS = "negative_weights_global.csv"


LAYOUT_VERSION = 1


def ratio_text(ratio: float) -> str:
    """The exact ratio as people read it (tables, manifest keys): 0.0, 0.25, 0.5, 0.75."""
    return str(float(ratio))


def ratio_tag(ratio: float) -> str:
    """The ratio in the original's file and experiment names: ``str(round(r, 1))`` (docs/original.md
    section 3).

    0.25 -> '0.2' and 0.75 -> '0.8': the original named ratio 0.25 ``train1_0.2.csv`` and
    ``...ratio0.2split_1``.
    """
    return str(round(float(ratio), 1))


def ratio_from_tag(tag: str, ratios: Sequence[float] = PAPER_RATIOS) -> float:
    """The ratio that a name's ``tag`` stands for: the one of ``ratios`` written that way.

    A tag of the original ('0.2') maps back to the paper's ratio (0.25); an exact ratio (as in
    names written by earlier versions of mlml-tf, '0.25') or one that no ratio of ``ratios``
    rounds to is read as the number it is.

    Example:
        >>> ratio_from_tag("0.8"), ratio_from_tag("0.75"), ratio_from_tag("0.3")
        (0.75, 0.75, 0.3)
    """

    value = float(tag)
    exact = [float(r) for r in ratios if float(r) == value]
    if exact:
        return exact[0]
    rounded = [float(r) for r in ratios if ratio_tag(r) == tag]
    return rounded[0] if len(rounded) == 1 else value


def ratio_folder(ratio: float) -> str:
    """``missing_labels{round(r, 1)}``: 0.25 -> missing_labels0.2, 0.75 -> missing_labels0.8."""
    return f"missing_labels{ratio_tag(ratio)}"


def _named_files(folder: Path, r: str, fold: int) -> dict[str, Path]:
    return {
        "train": folder / f"train{fold}_{r}.csv",
        "negative_weights": folder / f"negative_weights{fold}_{r}.csv",
        "positive_weights": folder / f"positive_weights{r}.csv",
        "test": folder / f"test{fold}_{r}.csv",
    }


def run_files(root: str | os.PathLike, ratio: float, fold: int) -> dict[str, Path]:
    """Paths of the four files of one (ratio, fold) in a data folder, named as the original
    named them (``missing_labels0.2/train1_0.2.csv`` for ratio 0.25).

    A folder written by mlml-tf before 0.2 named its files with the exact ratio
    (``train1_0.25.csv``); where only such files exist, their paths are returned.
    """

    folder = Path(root) / ratio_folder(ratio)
    files = _named_files(folder, ratio_tag(ratio), fold)
    if ratio_tag(ratio) != ratio_text(ratio) and not files["train"].exists():
        legacy = _named_files(folder, ratio_text(ratio), fold)
        if legacy["train"].exists():
            return legacy
    return files


def read_run_labels(root: str | os.PathLike, ratio: float, fold: int) -> dict[str, pd.DataFrame]:
    """Read and cross-check the files of one (ratio, fold): train, negative_weights, test.

    ``positive_weights`` is returned too when present (as a Series). Works on the authors'
    published folders as on ours.
    """

    files = run_files(root, ratio, fold)
    train = read_table(files["train"], "labels")
    negative = read_table(files["negative_weights"], "weights")
    check_same_table(train, files["train"], negative, files["negative_weights"])
    test = read_table(files["test"], "labels")
    if list(test.columns) != list(train.columns):
        check_same_table(train.iloc[:0], files["train"], test.iloc[:0], files["test"])
    overlap = train.index.intersection(test.index)
    if len(overlap):
        raise DataError(
            f"id {overlap[0]!r} is in both {files['train'].name} and this test file",
            file=files["test"],
        )
    out: dict = {"train": train, "negative_weights": negative, "test": test}
    if files["positive_weights"].exists():
        positive = read_positive_weights(files["positive_weights"])
        if list(positive.index) != list(train.columns):
            raise DataError(f"columns differ from those of {files['train'].name}",
                            file=files["positive_weights"], row=1)
        out["positive_weights"] = positive
    return out


def read_groundtruth(root_or_file: str | os.PathLike) -> pd.DataFrame:
    """Read ``groundtruth.csv`` (a folder or the file itself) as 0/1 labels."""

    path = Path(root_or_file)
    if path.is_dir() or path.suffix.lower() != ".csv":
        path = path / GROUNDTRUTH
    return read_table(path, "labels")


def write_groundtruth(root: str | os.PathLike, labels: pd.DataFrame,
                      class_names: Sequence[str] | None = None, source: dict | None = None) -> Path:
    """Write ``root/groundtruth.csv`` and start ``root/manifest.json`` with the class names."""

    root = Path(root)
    check_labels(labels.to_numpy(), "labels")
    if labels.empty:
        raise DataError("no row left to write (is the min-labels filter too strict?)",
                        file=root / GROUNDTRUTH)
    digest = write_table(root / GROUNDTRUTH, labels)
    manifest = {
        "layout_version": LAYOUT_VERSION,
        "classes": [str(c) for c in labels.columns],
        "class_names": list(class_names) if class_names is not None else
        [str(c) for c in labels.columns],
        "groundtruth": {"rows": int(len(labels)), "sha256": digest,
                        "positives_per_row": round(float(labels.to_numpy().sum(1).mean()), 6)},
        "source": source or {},
    }
    write_manifest(root, manifest)
    return root / GROUNDTRUTH


def data_set(root: str | os.PathLike) -> str | None:
    """The data set of a data folder: what its manifest records (``mlml-tf prepare coco`` or
    ``nuswide``), else "nuswide" for a published folder whose training files name their 81
    columns 0..80, else None."""

    dataset = read_manifest(root).get("source", {}).get("dataset")
    if dataset:
        return dataset
    for train in sorted(Path(root).glob("missing_labels*/train*_*.csv"))[:1]:
        if table_classes(train) == [str(i) for i in range(81)]:
            return "nuswide"
    return None


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", file=path) from None


def write_manifest(root: str | os.PathLike, manifest: dict) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    write_bytes_atomic(Path(root) / MANIFEST, data)


def write_image_list(root: str | os.PathLike, files: pd.Series) -> Path:
    """``root/images.csv``: the image file (relative to an image root) of every id."""

    body = "id,file\n" + "".join(f"{i},{f}\n" for i, f in files.items())
    write_bytes_atomic(Path(root) / IMAGES, body.encode())
    return Path(root) / IMAGES


def image_files(data: str | os.PathLike, ids: Sequence[str], image_root: str | os.PathLike,
                pattern: str = "{id}.jpg") -> list[str]:
    """The image path of each id, from ``data/images.csv`` when present, else ``pattern``."""

    listing = Path(data) / IMAGES
    root = Path(image_root)
    if listing.exists():
        table = pd.read_csv(listing, dtype=str, keep_default_na=False)
        if list(table.columns) != ["id", "file"]:
            raise DataError("the header must be 'id,file'", file=listing, row=1)
        files = dict(zip(table["id"], table["file"], strict=True))
        missing = [i for i in ids if i not in files]
        if missing:
            raise DataError(f"id {missing[0]!r} has no line ({len(missing)} ids missing)",
                            file=listing)
        return [str(root / files[i]) for i in ids]
    return [str(root / pattern.format(id=i)) for i in ids]


def data_classes(data: str | os.PathLike) -> list[str]:
    manifest = read_manifest(data)
    return manifest.get("class_names") or manifest.get("classes") or []
