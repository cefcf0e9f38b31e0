"""Label and weight tables in the original's CSV layout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import write_bytes_atomic


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
    numbers = np.empty(cells.shape, dtype=np.float64)
    for j, name in enumerate(columns):
        col = pd.to_numeric(pd.Series(cells[:, j]), errors="coerce").to_numpy(np.float64)
        numbers[:, j] = col
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


def write_weights(path: str | os.PathLike, weights: np.ndarray, like: pd.DataFrame) -> str:
    """Write per-entry weights in the layout of a ``negative_weights`` file (ids, columns of
    ``like``)."""

    frame = pd.DataFrame(np.asarray(weights), index=like.index, columns=like.columns)
    return write_table(path, frame)
