"""NUS-WIDE labels as the original built them from the data set's own files (docs/original.md
section 1).

Three files of a NUS-WIDE folder are read, all in the same image order:

- ``ImageList/Imagelist.txt``: one Windows path per image, ``Flickr\\actor\\0001_2124494179.jpg``
  (a ``C:\\ImageData\\`` prefix, as in some copies, is ignored);
- ``AllTags81.txt``: one row of 81 whitespace-separated 0/1 values per image;
- ``Concepts81.txt``: the 81 concept names, one per line.

The sample id is the file stem (``0001_2124494179``). The original label files name the class
columns ``0``..``80``; the concept names travel separately (in the manifest).
``AllTags81.txt`` and ``Concepts81.txt`` are also found in the subfolders where the NUS-WIDE
archives put them (``NUS_WID_Tags/``, ``ConceptsList/``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from mlml_tf.datasets.coco import min_labels_filter
from mlml_tf.errors import DataError

#: The 81 concepts of NUS-WIDE in the order of ``Concepts81.txt`` (alphabetical).
NUSWIDE_CONCEPTS: tuple[str, ...] = (
    "airport", "animal", "beach", "bear", "birds", "boats", "book", "bridge", "buildings",
    "cars", "castle", "cat", "cityscape", "clouds", "computer", "coral", "cow", "dancing", "dog",
    "earthquake", "elk", "fire", "fish", "flags", "flowers", "food", "fox", "frost", "garden",
    "glacier", "grass", "harbor", "horses", "house", "lake", "leaf", "map", "military", "moon",
    "mountain", "nighttime", "ocean", "person", "plane", "plants", "police", "protest",
    "railroad", "rainbow", "reflection", "road", "rocks", "running", "sand", "sign", "sky",
    "snow", "soccer", "sports", "statue", "street", "sun", "sunset", "surf", "swimmers",
    "tattoo", "temple", "tiger", "tower", "town", "toy", "train", "tree", "valley", "vehicle",
    "water", "waterfall", "wedding", "whales", "window", "zebra",
)

#: Minimum number of positive labels of the NUS-WIDE subset of the paper (docs/original.md section
#: 1).
NUSWIDE_MIN_LABELS = 3

IMAGE_LIST = ("ImageList/Imagelist.txt",)
TAGS = ("AllTags81.txt", "NUS_WID_Tags/AllTags81.txt")
CONCEPTS = ("Concepts81.txt", "ConceptsList/Concepts81.txt")
#: File name endings accepted in the image list (NUS-WIDE's own list holds only .jpg).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def read_nuswide(root: str | os.PathLike) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """Read the three NUS-WIDE files of ``root``: labels, image files and concept names.

    Args:
        root: the NUS-WIDE folder.

    Returns:
        ``(labels, files, concepts)``. ``labels``: every image of the list, in list order;
        index = file stem (str); columns ``'0'``..``'80'``; uint8 0/1. ``files``: the same
        index -> image path relative to ``root`` with forward slashes
        (``Flickr/actor/0001_2124494179.jpg``). ``concepts``: the 81 names of the columns.

    Raises:
        DataError: a file is missing or malformed; the message names the file and the line
            (and column) at fault.
    """

    root = Path(root)
    concepts_path = _find(root, CONCEPTS)
    concepts = _read_concepts(concepts_path)
    list_path = _find(root, IMAGE_LIST)
    stems, files = _read_image_list(list_path)
    tags_path = _find(root, TAGS)
    matrix = _read_tags(tags_path, len(concepts))
    if len(matrix) != len(stems):
        raise DataError(
            f"{list_path} lists {len(stems)} images but {tags_path} has {len(matrix)} rows: "
            "the two files must describe the same images, line for line"
        )
    index = pd.Index(stems)
    labels = pd.DataFrame(matrix, index=index, columns=[str(c) for c in range(len(concepts))])
    return labels, pd.Series(files, index=index.copy(), name="file"), concepts


def nuswide_labels(root: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """All images of NUS-WIDE with their 81 labels, and the concept names; see
    :func:`read_nuswide`."""
    labels, _, concepts = read_nuswide(root)
    return labels, concepts


def nuswide_image_files(root: str | os.PathLike) -> pd.Series:
    """Id (file stem) -> image path relative to ``root`` (``Flickr/<concept>/<file>``)."""
    return read_nuswide(root)[1]


def prepare_nuswide(
    root: str | os.PathLike, min_labels: int = NUSWIDE_MIN_LABELS
) -> tuple[pd.DataFrame, list[str]]:
    """The NUS-WIDE subset of the paper: images with at least ``min_labels`` labels
    (docs/original.md section 1).

    Args:
        root: the NUS-WIDE folder (see the module docstring for the files it must hold).
        min_labels: minimum number of positive labels of a kept image (the paper: 3).

    Returns:
        ``(labels, concepts)``: uint8 0/1 DataFrame indexed by file stem with columns
        ``'0'``..``'80'`` in image-list order (24,624 rows, 3.81 labels each on the real data),
        and the 81 concept names.

    Example:
        >>> labels, concepts = prepare_nuswide("NUS-WIDE")   # doctest: +SKIP
        >>> concepts[:3]                                     # doctest: +SKIP
        ['airport', 'animal', 'beach']
    """
    labels, concepts = nuswide_labels(root)
    return min_labels_filter(labels, min_labels), concepts


def _find(root: Path, candidates: tuple[str, ...]) -> Path:
    for name in candidates:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(str(root / name) for name in candidates)
    raise DataError(f"NUS-WIDE file not found (looked for {tried})", file=root)


def _read_lines(path: Path) -> list[str]:
    """Lines of a text file, trailing blank lines dropped; a blank line elsewhere is an error."""

    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"not a UTF-8 text file ({err.reason})", file=path,
                        row=data.count(b"\n", 0, err.start) + 1) from None
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError("blank line", file=path, row=lineno)
    return lines


def _read_concepts(path: Path) -> list[str]:
    names = [line.strip() for line in _read_lines(path)]
    if len(names) != len(NUSWIDE_CONCEPTS):
        raise DataError(
            f"{len(names)} concept names, expected {len(NUSWIDE_CONCEPTS)}", file=path
        )
    first_line: dict[str, int] = {}
    for lineno, name in enumerate(names, start=1):
        if name in first_line:
            raise DataError(
                f"concept {name!r} repeats the one of line {first_line[name]}",
                file=path,
                row=lineno,
            )
        first_line[name] = lineno
    return names


def _read_image_list(path: Path) -> tuple[list[str], list[str]]:
    stems: list[str] = []
    files: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = [p for p in re.split(r"[\\/]", line.strip()) if p]
        if parts and PureWindowsPath(parts[0]).drive:
            parts = parts[1:]
        if not parts:
            raise DataError(f"{line.strip()!r} is not an image path", file=path, row=lineno)
        # The image folder of NUS-WIDE starts at Flickr/; a prefix such as C:\ImageData\ is not
        # part of the layout on disk.
        lowered = [p.lower() for p in parts]
        if "flickr" in lowered:
            parts = parts[len(lowered) - 1 - lowered[::-1].index("flickr"):]
        # A list cut short mid-line would otherwise give its last image a shorter, wrong id.
        if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{line.strip()!r} does not end in an image file name "
                            f"({', '.join(IMAGE_SUFFIXES)})", file=path, row=lineno)
        stem = Path(parts[-1]).stem
        if stem in first_line:
            raise DataError(
                f"image {stem!r} repeats the one of line {first_line[stem]}",
                file=path,
                row=lineno,
            )
        first_line[stem] = lineno
        stems.append(stem)
        files.append("/".join(parts))
    return stems, files


def _read_tags(path: Path, n_classes: int) -> np.ndarray:
    rows: list[str] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        values = line.split()
        if len(values) != n_classes:
            raise DataError(
                f"{len(values)} values, expected {n_classes}", file=path, row=lineno
            )
        joined = "".join(values)
        # Every value is exactly one character, 0 or 1, iff the joined row has n_classes
        # characters and nothing but 0 and 1.
        if len(joined) != n_classes or joined.strip("01"):
            col = next(c for c, v in enumerate(values) if v not in ("0", "1"))
            raise DataError(
                f"value {values[col]!r} is not 0 or 1", file=path, row=lineno, column=str(col)
            )
        rows.append(joined)
    if not rows:
        return np.zeros((0, n_classes), dtype=np.uint8)
    flat = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8) - ord("0")
    return flat.reshape(len(rows), n_classes).astype(np.uint8)
