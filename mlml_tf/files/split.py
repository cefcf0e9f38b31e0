"""Folds and missing labels written in the original's layout.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import remove_stale_temporaries
from mlml_tf.files.layout import (
    GROUNDTRUTH,
    MANIFEST,
    ratio_folder,
    ratio_tag,
    ratio_text,
    read_groundtruth,
    read_manifest,
    run_files,
    write_manifest,
)
from mlml_tf.files.protocols import PROTOCOLS
from mlml_tf.files.published import PUBLISHED_SCHEME, is_published
from mlml_tf.files.tables import write_positive_weights, write_table
from mlml_tf.labels.checks import check_ratio
from mlml_tf.labels.folds import iterative_folds
from mlml_tf.labels.missing import (
    PAPER_RATIOS,
    hide_positives,
)
from mlml_tf.labels.weights import ignore_missing_weights


def split(
    root: str | os.PathLike,
    n_folds: int = 4,
    ratios: Sequence[float] = PAPER_RATIOS,
    seed: int = 0,
    scheme: str = "halves",
    order: int = 2,
) -> dict:
    """Write the full original layout under ``root`` from ``root/groundtruth.csv``.

    Folds by iterative stratification (docs/original.md section 2), second-order by default as the
    original's scikit-multilearn call (label pairs balanced too), ``order=1`` for single labels
    only; in each fold's training rows, ``round(r * n_i)`` positives hidden per row for every ratio
    (docs/original.md section 3), nested across ratios for a given fold.
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
    _refuse_published(root)
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


def _refuse_published(root: Path) -> None:
    """A folder that holds the authors' published files is never split over: their folds and
    hidden labels cannot be drawn again (docs/original.md section 3)."""
    where = "split a copy of its groundtruth.csv in another folder"
    if is_published(root):
        raise DataError("file not found: the folder holds label files in the original's layout "
                        "without it, as the authors published theirs, which a split would "
                        "replace (`mlml-tf prepare published` writes groundtruth.csv from them; "
                        f"{where})", file=root / GROUNDTRUTH)
    if read_manifest(root).get("split", {}).get("scheme") == PUBLISHED_SCHEME:
        raise DataError("the folds and hidden labels of this folder are the authors' published "
                        f"files, which cannot be drawn again: {where}", file=root / MANIFEST)


def split_protocol(
    root: str | os.PathLike,
    protocol: str,
    values: Sequence[float | int] | None = None,
    n_folds: int = 4,
    seed: int = 0,
    scheme: str = "halves",
    order: int = 2,
) -> dict:
    """Write the files of a partial-label protocol (docs/methods.md section 2) beside the paper's.

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
    drawn = {name: p for name, p in PROTOCOLS.items() if p.draw is not None}
    if protocol not in drawn:
        raise DataError(f"protocol {protocol!r} is not one of {', '.join(drawn)} "
                        "(the paper's is written by split())")
    chosen = drawn[protocol]
    values = [chosen.check(v) for v in (values or chosen.defaults)]
    folders = [chosen.folder(v) for v in values]
    if len(set(folders)) != len(folders):
        raise DataError(f"values repeat: {list(values)}")
    _refuse_published(root)
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
    if chosen.needs_positive and len(empty):
        raise DataError(f"id {ids[empty[0]]!r} has no positive label to keep under "
                        f"{chosen.name.replace('-', ' ')} ({len(empty)} of {len(ids)} rows have "
                        "none)",
                        file=root / GROUNDTRUTH, row=int(empty[0]) + 2)
    folds = iterative_folds(full, n_folds=n_folds, seed=seed, scheme=scheme, order=order)
    protocols = manifest.setdefault("protocols", {})
    tag = list(PROTOCOLS).index(protocol)
    for value, name in zip(values, folders, strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root / name)
        checksums, counts = {}, {}
        for k, (train_idx, test_idx) in enumerate(folds, start=1):
            # Not the value: the unknown entries are nested across RPS ratios, the annotated
            # ones across FPC counts.
            rng = np.random.SeedSequence([seed, k, tag])
            partial = chosen.draw(full[train_idx], value, rng)
            files = chosen.files(root, value, k)
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
            "rule": chosen.rule + "; seeded with (seed, fold, protocol), nested across values",
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
