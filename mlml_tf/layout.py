"""The original's label-file layout (SPEC section 3), read and written interchangeably.

A data folder holds::

    groundtruth.csv                         complete labels of the filtered set
    manifest.json                           ratios, seed, fold scheme, classes, counts, checksums
    missing_labels{round(r, 1)}/
        train{k}_{t}.csv                    observed training labels of fold k (positives hidden)
        negative_weights{k}_{t}.csv         IM-WCE weights: 0 where a positive was hidden
        positive_weights{t}.csv             all ones, no id column (the original's last fold wins)
        test{k}_{t}.csv                     complete test labels of fold k

with t = str(round(r, 1)) as the original wrote it: ratio 0.25 is ``missing_labels0.2/
train1_0.2.csv``. The manifest keeps the exact ratios. Beside them, the partial-label protocols
of METHODS.md section 2 (``mlml-tf split --protocol rps|fpc|single-positive``) on the same folds::

    rps{p}/ fpc{n}/ single_positive/
        train{k}.csv                        training labels of fold k: 1, 0 or -1 (unknown)
        test{k}.csv                         complete test labels of fold k

Every table but ``positive_weights`` has the id as its first, unnamed column. The authors'
published folders and the folders written here are read by the same code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError, remove_stale_temporaries, write_bytes_atomic
from mlml_tf.labels import (
    FPC_DEFAULT_COUNT,
    PAPER_RATIOS,
    PROTOCOLS,
    check_labels,
    check_ratio,
    fixed_per_class,
    hide_positives,
    ignore_missing_weights,
    iterative_folds,
    random_per_sample,
    single_positive,
)

GROUNDTRUTH = "groundtruth.csv"
MANIFEST = "manifest.json"
#: Optional: the image file of every id (columns ``id,file``, relative to an image root).
IMAGES = "images.csv"
LAYOUT_VERSION = 1


def ratio_text(ratio: float) -> str:
    """The exact ratio as people read it (tables, manifest keys): 0.0, 0.25, 0.5, 0.75."""
    return str(float(ratio))


def ratio_tag(ratio: float) -> str:
    """The ratio in the original's file and experiment names: ``str(round(r, 1))`` (SPEC 3).

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


def protocol_folder(protocol: str, value: float | int | None = None) -> str:
    """The folder of a protocol's files: ``rps0.5`` (RPS, the exact ratio), ``fpc1000`` (FPC,
    the count), ``single_positive``; the paper's is :func:`ratio_folder`."""
    if protocol == "paper":
        return ratio_folder(value)
    if protocol == "rps":
        return f"rps{ratio_text(check_ratio(value))}"
    if protocol == "fpc":
        return f"fpc{int(value)}"
    if protocol == "single-positive":
        return "single_positive"
    raise DataError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def protocol_files(root: str | os.PathLike, protocol: str, value: float | int | None,
                   fold: int) -> dict[str, Path]:
    """Paths of the training and test files of one fold under a protocol other than the
    paper's."""
    folder = Path(root) / protocol_folder(protocol, value)
    return {"train": folder / f"train{fold}.csv", "test": folder / f"test{fold}.csv"}


def read_protocol_labels(root: str | os.PathLike, protocol: str, value: float | int | None,
                         fold: int) -> dict[str, pd.DataFrame]:
    """Read and cross-check one fold of a protocol: ``train`` (int8: 1, 0, -1 unknown) and
    ``test`` (complete, uint8)."""
    files = protocol_files(root, protocol, value, fold)
    train = read_table(files["train"], "partial")
    test = read_table(files["test"], "labels")
    check_same_table(train.iloc[:0], files["train"], test.iloc[:0], files["test"])
    overlap = train.index.intersection(test.index)
    if len(overlap):
        raise DataError(f"id {overlap[0]!r} is in both {files['train'].name} and this test file",
                        file=files["test"])
    return {"train": train, "test": test}


# --------------------------------------------------------------------------------------- reading


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except UnicodeDecodeError:
        _check_utf8(path, path.read_bytes())
        raise
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", file=path) from None
    if not header:
        raise DataError("empty file: no header line", file=path)
    return header


def table_classes(path: str | os.PathLike) -> list[str]:
    """The class columns a table of the original layout names in its header."""
    return _read_header(Path(path))[1:]


def _check_utf8(path: Path, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=path,
                        row=data.count(b"\n", 0, exc.start) + 1) from None


def _check_names(names: list[str], path: Path, what: str, first: int = 1) -> None:
    """Names must be non-empty and unique; ``first`` is the position of ``names[0]`` in the
    header line (2 behind an id column)."""
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=first):
        if name == "":
            raise DataError(f"{what} {pos} has an empty name", file=path, row=1)
        if name in seen:
            raise DataError(
                f"{what} name appears twice (positions {seen[name]} and {pos})",
                file=path,
                row=1,
                column=name,
            )
        seen[name] = pos


def _check_field_counts(path: Path, n_fields: int) -> None:
    """Name the first line whose number of fields differs from the header's (a truncated or
    shifted row), which pandas would otherwise pad or shift silently."""
    data = path.read_bytes()
    _check_utf8(path, data)
    lines = data.split(b"\n")
    # Every writer ends its last row with a line end; without one the file was cut short, and a
    # number cut short (0.666 of 0.666666687) would otherwise read as a valid value.
    if lines[-1].strip():
        raise DataError("the last line has no line end: the file looks cut short (add a line "
                        "break at its end if it is complete)", file=path, row=len(lines))
    blank = None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            # pandas skips blank lines, which would shift every line number reported below.
            raise DataError("blank line inside the table", file=path, row=blank)
        if b'"' in line:
            continue
        fields = line.count(b",") + 1
        if fields != n_fields:
            raise DataError(f"{fields} fields where the header has {n_fields}", file=path,
                            row=number)


def _read_cells(path: Path, n_fields: int) -> pd.DataFrame:
    _check_field_counts(path, n_fields)
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, header=0, index_col=False
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed CSV ({str(exc).strip()})", file=path) from None
    except pd.errors.EmptyDataError:
        raise DataError("empty file: no header line", file=path) from None
    return frame


#: What a cell of each kind of table may hold, as the error messages say it.
_WANTED = {"labels": "0 or 1", "partial": "1, 0 or -1 (unknown)", "weights": "a number in [0, 1]",
           "own": "1, 0, -1 or empty (unknown)"}


def _to_values(cells: np.ndarray, columns: list[str], path: Path, kind: str) -> np.ndarray:
    """Convert string cells to uint8 labels (kind 'labels'), int8 partial labels 1 / 0 / -1
    (kind 'partial', or 'own' where an empty cell is -1 too) or float32 weights (kind
    'weights')."""
    wanted = _WANTED[kind]
    if kind == "own":
        # A user's table: an empty cell is an unknown entry, as -1 is; otherwise as partial.
        cells = np.where(np.char.str_len(np.char.strip(cells.astype(str))) == 0, "-1", cells)
        kind = "partial"
    dtype = {"labels": np.uint8, "partial": np.int8, "weights": np.float32}[kind]
    # Fast path: the usual file holds only the digits 0 and 1 (labels, IM-WCE weights).
    ones = cells == "1"
    if (ones | (cells == "0")).all():
        return ones.astype(dtype)
    if kind == "partial" and (ones | (cells == "0") | (cells == "-1")).all():
        return np.where(cells == "-1", -1, ones).astype(dtype)
    for j, name in enumerate(columns):
        col = pd.to_numeric(pd.Series(cells[:, j]), errors="coerce").to_numpy(np.float64)
        bad = np.isnan(col)
        if kind == "labels":
            bad |= ~np.isin(col, (0.0, 1.0))
        elif kind == "partial":
            bad |= ~np.isin(col, (0.0, 1.0, -1.0))
        else:
            bad |= ~((col >= 0.0) & (col <= 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = cells[i, j]
            shown = "an empty cell" if value.strip() == "" else f"value {str(value)!r}"
            why = ""
            if kind == "labels" and col[i] == -1:
                why = (": files of the original layout hold no unknown entry (-1); unknown "
                       "labels belong to a protocol's files (mlml-tf split --protocol)")
            raise DataError(f"{shown} is not {wanted}{why}", file=path, row=i + 2,
                            column=name)
    numbers = np.array(
        [pd.to_numeric(pd.Series(cells[:, j])).to_numpy(np.float64) for j in range(len(columns))]
    ).T.reshape(cells.shape)
    return numbers.astype(dtype)


def read_table(path: str | os.PathLike, kind: str = "labels") -> pd.DataFrame:
    """Read a table of the original layout: first unnamed column the id, then one per class.

    Args:
        path: a ``groundtruth.csv``, ``train*``, ``test*`` or ``negative_weights*`` file.
        kind: ``"labels"`` (values must be 0/1, returned as uint8), ``"partial"`` (1, 0 or -1
            for unknown, int8), ``"own"`` (as partial, and an empty cell is unknown too) or
            ``"weights"`` (numbers in [0, 1], float32).

    Returns:
        A DataFrame indexed by the ids (as strings, so that ``0001_2124494179`` keeps its zeros),
        with the class names as columns.

    Raises:
        DataError: naming the file, line and column of the first fault.
    """
    path = Path(path)
    header = _read_header(path)
    if len(header) < 2:
        raise DataError(
            "the header has no class column (is the delimiter a comma?)", file=path, row=1
        )
    classes = header[1:]
    _check_names(classes, path, "column", first=2)
    frame = _read_cells(path, len(header))
    if frame.empty:
        raise DataError("the table has a header but no rows", file=path)
    ids = frame.iloc[:, 0].to_numpy(dtype=str)
    empty = np.flatnonzero(np.char.str_len(np.char.strip(ids)) == 0)
    if len(empty):
        raise DataError("empty id", file=path, row=int(empty[0]) + 2)
    _check_unique_ids(ids, path)
    values = _to_values(frame.iloc[:, 1:].to_numpy(dtype=str), classes, path, kind)
    out = pd.DataFrame(values, index=pd.Index(ids, name=None), columns=classes)
    return out


def _check_unique_ids(ids: np.ndarray, path: Path) -> None:
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = str(uniq[counts > 1][0])
        lines = (np.flatnonzero(ids == dup)[:2] + 2).tolist()
        raise DataError(f"id {dup!r} appears twice (lines {lines[0]} and {lines[1]})", file=path)


def read_positive_weights(path: str | os.PathLike) -> pd.Series:
    """Read a ``positive_weights{r}.csv`` (class names as header, no id column) -> P per class.

    The original wrote one row per training image, all alike; every row must be equal.
    """
    path = Path(path)
    header = _read_header(path)
    _check_names(header, path, "column")
    frame = _read_cells(path, len(header))
    if frame.empty:
        raise DataError("the table has a header but no rows", file=path)
    cells = frame.to_numpy(dtype=str)
    numbers = np.full(cells.shape, np.nan)
    for j in range(cells.shape[1]):
        numbers[:, j] = pd.to_numeric(pd.Series(cells[:, j]), errors="coerce").to_numpy()
    bad = ~np.isfinite(numbers) | (numbers < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"value {str(cells[i, j])!r} is not a non-negative number",
            file=path,
            row=int(i) + 2,
            column=header[j],
        )
    differs = np.flatnonzero((numbers != numbers[0]).any(axis=1))
    if len(differs):
        raise DataError("rows of a positive-weight file must all be equal", file=path,
                        row=int(differs[0]) + 2)
    return pd.Series(numbers[0].astype(np.float32), index=header)


def check_same_table(a: pd.DataFrame, a_path: Path, b: pd.DataFrame, b_path: Path) -> None:
    """Raise DataError unless ``a`` and ``b`` have the same ids and columns, in the same order."""
    if list(a.columns) != list(b.columns):
        diff = next(
            (i for i, (x, y) in enumerate(zip(a.columns, b.columns, strict=False)) if x != y),
            min(len(a.columns), len(b.columns)),
        )
        raise DataError(
            f"columns differ from those of {Path(a_path).name} at position {diff + 1} "
            f"({len(b.columns)} columns against {len(a.columns)})",
            file=b_path,
            row=1,
        )
    if len(a) != len(b) or not (a.index == b.index).all():
        mismatch = next(
            (i for i, (x, y) in enumerate(zip(a.index, b.index, strict=False)) if x != y),
            min(len(a), len(b)),
        )
        raise DataError(
            f"ids differ from those of {Path(a_path).name} from data row {mismatch + 1} on "
            f"({len(b)} rows against {len(a)})",
            file=b_path,
            row=mismatch + 2,
        )


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


# --------------------------------------------------------------------------------------- writing


def _format_number_table(ids: Sequence[str], values: np.ndarray) -> bytes:
    """Rows ``id,v1,...,vC`` with integers as digits and other numbers with 9 significant digits
    (enough to read a float32 back exactly)."""
    values = np.asarray(values)
    integral = np.issubdtype(values.dtype, np.integer) or bool(
        np.all(values == np.round(values))
    )
    if integral and values.size and values.min() == -1 and values.max() <= 1:
        cells = np.array(["-1", "0", "1"])[values.astype(np.int64) + 1]
        return "".join(f"{i}," + ",".join(row) + "\n"
                       for i, row in zip(ids, cells, strict=True)).encode()
    if integral and values.size and values.min() >= 0 and values.max() <= 9:
        n, c = values.shape
        body = np.full((n, 2 * c + 1), ord(","), dtype=np.uint8)
        body[:, 1::2] = values.astype(np.uint8) + ord("0")
        body[:, -1] = ord("\n")
        lines = body.view(f"S{2 * c + 1}").reshape(n)
        return b"".join(f"{i}".encode() + line for i, line in zip(ids, lines, strict=True))
    buf = io.StringIO()
    fmt = "%d" if integral else "%.9g"
    for i, row in zip(ids, values, strict=True):
        buf.write(str(i) + "," + ",".join(fmt % v for v in row) + "\n")
    return buf.getvalue().encode()


def table_bytes(frame: pd.DataFrame) -> bytes:
    """The bytes of a table in the original layout (unnamed id column first)."""
    header = "," + ",".join(csv_field(c) for c in frame.columns) + "\n"
    return header.encode() + _format_number_table(
        [csv_field(str(i)) for i in frame.index], frame.to_numpy()
    )


def csv_field(text: str) -> str:
    """A CSV cell: quoted (quotes doubled) when it holds a comma, a quote or a line end."""
    text = str(text)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_table(path: str | os.PathLike, frame: pd.DataFrame) -> str:
    """Write ``frame`` atomically in the original layout; return the SHA-256 of the bytes."""
    data = table_bytes(frame)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def write_positive_weights(path: str | os.PathLike, weights: np.ndarray, classes: Sequence[str],
                           rows: int) -> str:
    """The original's ``positive_weights{r}.csv``: class names, then ``rows`` copies of P."""
    header = ",".join(csv_field(c) for c in classes) + "\n"
    line = ",".join(f"{w:g}" for w in np.asarray(weights, dtype=np.float64)) + "\n"
    data = (header + line * rows).encode()
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


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


def split(
    root: str | os.PathLike,
    n_folds: int = 4,
    ratios: Sequence[float] = PAPER_RATIOS,
    seed: int = 0,
    scheme: str = "halves",
    order: int = 2,
) -> dict:
    """Write the full original layout under ``root`` from ``root/groundtruth.csv``.

    Folds by iterative stratification (SPEC 2), second-order by default as the original's
    scikit-multilearn call (label pairs balanced too), ``order=1`` for single labels only; in
    each fold's training rows, ``round(r * n_i)`` positives hidden per row for every ratio
    (SPEC 3), nested across ratios for a given fold.
    Every file is written atomically; the manifest is written last and lists every file with its
    SHA-256, so a folder with a manifest that lists the split is complete.

    Returns:
        The manifest (also written to ``root/manifest.json``).
    """
    root = Path(root)
    ratios = [check_ratio(r) for r in ratios]
    if len({ratio_text(r) for r in ratios}) != len(ratios):
        raise DataError(f"ratios repeat: {ratios}")
    if len({ratio_tag(r) for r in ratios}) != len(ratios):
        raise DataError(f"ratios {ratios} share a folder and file names: the original's "
                        "names hold round(r, 1)")
    truth = read_groundtruth(root)
    manifest = read_manifest(root)
    manifest.pop("split", None)
    remove_stale_temporaries(root)
    values = truth.to_numpy()
    folds = iterative_folds(values, n_folds=n_folds, seed=seed, scheme=scheme, order=order)
    if any(_fold_settings(p) != _fold_settings({"n_folds": n_folds, "seed": seed,
                                                  "scheme": scheme, "order": order})
           for p in manifest.get("protocols", {}).values()):
        # The protocols' folders were cut on other folds: they would not match this split's.
        manifest.pop("protocols")
    ids = truth.index.to_numpy()
    classes = list(truth.columns)
    checksums: dict[str, str] = {}
    counts: dict[str, dict] = {}
    for r in ratios:
        folder = root / ratio_folder(r)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
    for k, (train_idx, test_idx) in enumerate(folds, start=1):
        full = values[train_idx]
        fold_seed = np.random.SeedSequence([seed, k])
        test = pd.DataFrame(values[test_idx], index=ids[test_idx], columns=classes)
        counts[str(k)] = {"train": int(len(train_idx)), "test": int(len(test_idx)), "hidden": {}}
        for r in ratios:
            files = run_files(root, r, k)
            observed, hidden = hide_positives(full, r, fold_seed)
            train = pd.DataFrame(observed, index=ids[train_idx], columns=classes)
            negative = pd.DataFrame(
                ignore_missing_weights(hidden).astype(np.uint8), index=train.index, columns=classes
            )
            for name, frame in (("train", train), ("negative_weights", negative), ("test", test)):
                checksums[files[name].relative_to(root).as_posix()] = write_table(
                    files[name], frame
                )
            # As the original: all ones, one row per training image, the last fold's file wins.
            checksums[files["positive_weights"].relative_to(root).as_posix()] = (
                write_positive_weights(files["positive_weights"], np.ones(len(classes)), classes,
                                       len(train_idx))
            )
            counts[str(k)]["hidden"][ratio_text(r)] = int(hidden.sum())
    manifest.setdefault("classes", classes)
    manifest.setdefault("class_names", classes)
    manifest["split"] = {
        "seed": int(seed),
        "n_folds": int(n_folds),
        "fold_scheme": {
            "halves": "iterative stratification (Sechidis 2011): halves, then halves of each; "
            "fold k tests on part n+1-k and trains on the others in part order",
            "kfold": "multilabel-stratified k-fold (iterative stratification)",
        }[scheme] + (", second order (label pairs balanced too)" if order == 2 else
                     ", first order (single labels)"),
        "scheme": scheme,
        "order": int(order),
        "ratios": [float(r) for r in ratios],
        "ratio_folders": {ratio_text(r): ratio_folder(r) for r in ratios},
        "hiding": "round(r * n_i) positives per training row, uniform, nested across ratios, "
        "seeded with (seed, fold)",
        "counts": counts,
        "checksums": dict(sorted(checksums.items())),
    }
    write_manifest(root, manifest)
    return manifest


def _fold_settings(split: dict) -> tuple:
    return (int(split["n_folds"]), int(split["seed"]), split.get("scheme", "halves"),
            int(split.get("order", 2)))


def split_protocol(
    root: str | os.PathLike,
    protocol: str,
    values: Sequence[float | int] | None = None,
    n_folds: int = 4,
    seed: int = 0,
    scheme: str = "halves",
    order: int = 2,
) -> dict:
    """Write the files of a partial-label protocol (METHODS.md section 2) beside the paper's.

    The folds are those of :func:`split` with the same ``n_folds``, ``seed``, ``scheme`` and
    ``order`` (a data folder whose paper split has other folds is refused); the test files hold
    the complete labels of each fold's test rows, the training files 1, 0 or -1 (unknown):

    - ``rps``: each entry unknown with probability r, for each r of ``values``
      (:func:`mlml_tf.labels.random_per_sample`);
    - ``fpc``: n annotated positives and negatives per class, for each n of ``values``
      (default 1000, :func:`mlml_tf.labels.fixed_per_class`);
    - ``single-positive``: one positive per row (:func:`mlml_tf.labels.single_positive`).

    Each draw is seeded by (seed, fold, protocol), so the same seed gives the same bytes, and
    the unknown entries are nested across RPS ratios, the annotated ones across FPC counts.
    Every file is written atomically, then the manifest, which records the protocol under
    ``protocols`` with its folder, counts and checksums.

    Returns:
        The manifest (also written to ``root/manifest.json``).
    """
    root = Path(root)
    if protocol not in PROTOCOLS or protocol == "paper":
        raise DataError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS[1:])} "
                        "(the paper's is written by split())")
    if protocol == "rps":
        values = [check_ratio(v) for v in (values or [0.5])]
    elif protocol == "fpc":
        values = list(values or [FPC_DEFAULT_COUNT])
        bad = [v for v in values if int(v) != v or v < 1]
        if bad:
            raise DataError(f"the FPC count must be a whole number of at least 1, not {bad[0]!r}")
        values = [int(v) for v in values]
    else:
        values = [None]
    folders = [protocol_folder(protocol, v) for v in values]
    if len(set(folders)) != len(folders):
        raise DataError(f"values repeat: {list(values)}")
    truth = read_groundtruth(root)
    manifest = read_manifest(root)
    wanted = {"n_folds": n_folds, "seed": seed, "scheme": scheme, "order": order}
    if "split" in manifest and _fold_settings(manifest["split"]) != _fold_settings(wanted):
        raise DataError(
            f"the paper's split of this folder has other folds {_fold_settings(manifest['split'])}"
            f" than those asked for {_fold_settings(wanted)} (folds, seed, scheme, order): "
            "a protocol shares the paper's folds", file=root / MANIFEST)
    remove_stale_temporaries(root)
    full = truth.to_numpy()
    ids, classes = truth.index.to_numpy(), list(truth.columns)
    empty = np.flatnonzero(full.sum(axis=1) == 0)
    if protocol == "single-positive" and len(empty):
        raise DataError(f"id {ids[empty[0]]!r} has no positive label to keep under single "
                        f"positive ({len(empty)} of {len(ids)} rows have none)",
                        file=root / GROUNDTRUTH, row=int(empty[0]) + 2)
    folds = iterative_folds(full, n_folds=n_folds, seed=seed, scheme=scheme, order=order)
    protocols = manifest.setdefault("protocols", {})
    tag = PROTOCOLS.index(protocol)
    for value, name in zip(values, folders, strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root / name)
        checksums, counts = {}, {}
        for k, (train_idx, test_idx) in enumerate(folds, start=1):
            # Not the value: the unknown entries are nested across RPS ratios, the annotated
            # ones across FPC counts.
            rng = np.random.SeedSequence([seed, k, tag])
            if protocol == "rps":
                partial = random_per_sample(full[train_idx], value, rng)
            elif protocol == "fpc":
                partial = fixed_per_class(full[train_idx], value, rng)
            else:
                partial = single_positive(full[train_idx], rng)
            files = protocol_files(root, protocol, value, k)
            for key, frame in (
                ("train", pd.DataFrame(partial, index=ids[train_idx], columns=classes)),
                ("test", pd.DataFrame(full[test_idx], index=ids[test_idx], columns=classes)),
            ):
                checksums[files[key].relative_to(root).as_posix()] = write_table(files[key],
                                                                                 frame)
            counts[str(k)] = {"train": int(len(train_idx)), "test": int(len(test_idx)),
                              "positive": int((partial == 1).sum()),
                              "negative": int((partial == 0).sum()),
                              "unknown": int((partial == -1).sum())}
        protocols[name] = {
            "protocol": protocol, "value": value, **wanted,
            "rule": {"rps": "every training entry unknown with probability value",
                     "fpc": "value annotated positives and negatives kept per class, uniform",
                     "single-positive": "one positive per training row kept, uniform"}[protocol]
            + "; seeded with (seed, fold, protocol), nested across values",
            "counts": counts,
            "checksums": dict(sorted(checksums.items())),
        }
    manifest.setdefault("classes", classes)
    manifest.setdefault("class_names", classes)
    write_manifest(root, manifest)
    return manifest


def verify(root: str | os.PathLike) -> list[str]:
    """Files of the manifest whose SHA-256 no longer matches (or that are missing)."""
    root = Path(root)
    manifest = read_manifest(root)
    bad = []
    listed = dict(manifest.get("split", {}).get("checksums", {}))
    for protocol in manifest.get("protocols", {}).values():
        listed.update(protocol.get("checksums", {}))
    for rel, digest in listed.items():
        path = root / rel
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(rel)
    return bad


def write_weights(path: str | os.PathLike, weights: np.ndarray, like: pd.DataFrame) -> str:
    """Write per-entry weights in the layout of a ``negative_weights`` file (ids, columns of
    ``like``)."""
    frame = pd.DataFrame(np.asarray(weights), index=like.index, columns=like.columns)
    return write_table(path, frame)


def write_image_list(root: str | os.PathLike, files: pd.Series) -> Path:
    """``root/images.csv``: the image file (relative to an image root) of every id."""
    body = "id,file\n" + "".join(f"{i},{f}\n" for i, f in files.items())
    write_bytes_atomic(Path(root) / IMAGES, body.encode())
    return Path(root) / IMAGES
