"""``mlml-tf prepare``, ``split`` and ``weights``: label tables, folds and weights on files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

import mlml_tf
from mlml_tf.cli.arguments import add_arguments
from mlml_tf.errors import DataError
from mlml_tf.files.layout import GROUNDTRUTH, MANIFEST, write_groundtruth, write_image_list
from mlml_tf.files.protocols import PROTOCOLS
from mlml_tf.files.split import split, split_protocol
from mlml_tf.files.tables import read_table, write_weights
from mlml_tf.labels.estimated import LEVELS, estimate_confidence
from mlml_tf.labels.folds import STRATIFICATION_ORDERS
from mlml_tf.labels.missing import PAPER_RATIOS
from mlml_tf.labels.weights import confidence_weights
from mlml_tf.settings import POSITIVE, RATIO

log = logging.getLogger(__name__)


def _prepare_published(args: argparse.Namespace) -> int:
    """``groundtruth.csv`` and ``manifest.json`` of a folder as the authors published it; the
    data set named by its columns (NUS-WIDE's ``0``..``80`` get the concepts' names)."""
    columns = mlml_tf.read_complete_labels(args.dir).columns.tolist()
    names, dataset = None, None
    if columns == [str(i) for i in range(len(mlml_tf.NUSWIDE_CONCEPTS))]:
        names, dataset = list(mlml_tf.NUSWIDE_CONCEPTS), "nuswide"
    elif columns == list(mlml_tf.COCO_CLASS_NAMES):
        dataset = "coco"
    manifest = mlml_tf.prepare_published(args.dir, class_names=names, dataset=dataset)
    split = manifest["split"]
    log.info("%s: %d rows x %d classes from the test files of ratio 0.0; %d folds, ratios %s; "
             "%d files listed in %s", args.dir / GROUNDTRUTH, manifest["groundtruth"]["rows"],
             len(columns), split["n_folds"], ", ".join(map(str, split["ratios"])),
             len(split["checksums"]), args.dir / MANIFEST)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    if args.dataset == "published":
        return _prepare_published(args)
    if args.dataset == "coco":
        labels, files = mlml_tf.read_coco(args.annotations, ids=args.ids)
        names = list(labels.columns)
        source = {"dataset": "coco", "annotations": str(args.annotations),
                  "min_labels": args.min_labels, "ids": args.ids,
                  "images": "relative to the train2017 folder"}
    else:
        labels, files, names = mlml_tf.read_nuswide(args.root)
        source = {"dataset": "nuswide", "root": str(args.root), "min_labels": args.min_labels,
                  "images": "relative to the NUS-WIDE image folder"}
    labels = mlml_tf.min_labels_filter(labels, args.min_labels)
    path = write_groundtruth(args.out, labels, class_names=names, source=source)
    write_image_list(args.out, files.loc[labels.index])
    log.info("%s: %d images x %d classes, %.2f labels per image", path, len(labels),
             labels.shape[1], labels.to_numpy().sum(1).mean())
    return 0


def _split(args: argparse.Namespace) -> int:
    chosen = PROTOCOLS[args.protocol]
    given = [f"--{name}" for name in ("ratios", "count") if getattr(args, name)]
    extra = [option for option in given if option != chosen.option]
    if extra:
        raise DataError(f"--protocol {chosen.name} takes "
                        f"{chosen.option or 'neither --ratios nor --count'}, not {extra[0]}")
    folds = {"n_folds": args.folds, "seed": args.seed, "scheme": args.scheme,
             "order": args.order}
    if not chosen.original_layout:
        manifest = split_protocol(args.dir, chosen.name, args.ratios or args.count, **folds)
        written = 0
        for name, entry in manifest["protocols"].items():
            if entry["protocol"] != chosen.name:
                continue
            written += len(entry["checksums"])
            for k, c in entry["counts"].items():
                log.info("%s fold %s: %d train / %d test rows; %d positive, %d negative, %d "
                         "unknown training entries", name, k, c["train"], c["test"],
                         c["positive"], c["negative"], c["unknown"])
        log.info("%d files written under %s", written, args.dir)
        return 0
    manifest = split(args.dir, ratios=args.ratios or list(PAPER_RATIOS), **folds)
    for k, c in manifest["split"]["counts"].items():
        log.info("fold %s: %d train / %d test rows; hidden %s", k, c["train"], c["test"],
                 ", ".join(f"r={r}: {n}" for r, n in c["hidden"].items()))
    log.info("%d files written under %s", len(manifest["split"]["checksums"]), args.dir)
    return 0


def _weights(args: argparse.Namespace) -> int:
    if args.method == "estimated":
        return _estimated_weights(args)
    if args.level is not None or args.ratio is not None:
        raise DataError("--level and --ratio are the estimator's: they go with --method "
                        "estimated")
    labels = read_table(args.labels, "labels")
    source = labels
    if args.source is not None:
        source = read_table(args.source, "labels")
        if list(source.columns) != list(labels.columns):
            raise DataError(f"columns differ from those of {args.labels}", file=args.source,
                            row=1)
    weights = confidence_weights(labels.to_numpy(), source.to_numpy())
    write_weights(args.out, weights, labels)
    log.info("%s: CB-WCE weights for %d rows counted over %d rows", args.out, len(labels),
             len(source))
    return 0


def _estimated_weights(args: argparse.Namespace) -> int:
    """Confidence weights estimated from the label file alone (docs/methods.md section 6)."""
    if args.source is not None:
        raise DataError("--source names labels to count over, which --method estimated does "
                        "not do: it reads --labels alone")
    if args.level is not None and args.ratio is not None:
        raise DataError("--ratio sets how many positives are missing; --level says what to "
                        "assume when that is not known: give one of them")
    labels = read_table(args.labels, "partial")
    if labels.shape[1] < 2:
        raise DataError("one class column: confidence weights need at least 2",
                        file=args.labels, row=1)
    if not (labels.to_numpy() == 1).any():
        raise DataError("no positive label at all: nothing to estimate from", file=args.labels)
    estimate = estimate_confidence(labels.to_numpy(), seed=args.seed,
                                   level=args.level or "least", ratio=args.ratio)
    write_weights(args.out, estimate.weights, labels)
    ratio = ("cannot be told from the table" if np.isnan(estimate.ratio)
             else f"{estimate.ratio:.3f} (interval {estimate.ratio_interval[0]:.2f}-"
             f"{estimate.ratio_interval[1]:.2f})")
    log.info("%s: CB-WCE weights for %d rows estimated from their labels (%s mode); missing "
             "ratio %s; share of positives taken as missing %.3f (level %s)", args.out,
             len(labels), estimate.mode, ratio, estimate.missing_fraction, estimate.level)
    return 0


def add_parsers(sub) -> None:
    """``prepare``, ``split`` and ``weights``."""
    prep = sub.add_parser("prepare", help="label table of a raw data set, or of a published "
                          "label folder -> DIR/groundtruth.csv")
    prep_sub = prep.add_subparsers(dest="dataset", required=True)
    coco = prep_sub.add_parser("coco", help="COCO 2017 train from instances_train2017.json")
    coco.add_argument("--annotations", required=True, type=Path,
                      help="instances_train2017.json")
    coco.add_argument("--out", required=True, type=Path, help="data folder to write")
    coco.add_argument("--min-labels", type=POSITIVE.parse, default=4,
                      help="keep images with at least this many labels (default 4)")
    coco.add_argument("--ids", choices=["original", "coco"], default="original",
                      help="row id: the original row number (default) or the COCO image id")
    nus = prep_sub.add_parser("nuswide", help="NUS-WIDE from Imagelist.txt and AllTags81.txt")
    nus.add_argument("--root", required=True, type=Path, help="NUS-WIDE root folder")
    nus.add_argument("--out", required=True, type=Path, help="data folder to write")
    nus.add_argument("--min-labels", type=POSITIVE.parse, default=3,
                     help="keep images with at least this many labels (default 3)")
    pub = prep_sub.add_parser(
        "published", help="a label folder as the authors published it (missing_labels{t}/ "
        "only) -> DIR/groundtruth.csv (its test files of ratio 0.0) and DIR/manifest.json; "
        "`run` reads such a folder without them too")
    pub.add_argument("dir", type=Path, help="the published folder (labels_balanced_4labels, "
                     "labels_balanced_nus)")
    prep.set_defaults(func=_prepare)

    spl = sub.add_parser("split", help="folds and missing labels in the original layout")
    spl.add_argument("dir", type=Path, help="data folder holding groundtruth.csv")
    spl.add_argument("--folds", type=POSITIVE.parse, default=4)
    add_arguments(spl, "split")
    spl.add_argument("--ratios", type=RATIO.parse, nargs="+", default=None,
                     help="paper: hidden ratios (default 0 0.25 0.5 0.75); rps: unknown "
                     "probabilities (default 0.5)")
    spl.add_argument("--count", type=POSITIVE.parse, nargs="+", default=None,
                     help="fpc: annotated positives and negatives kept per class (default 1000)")
    spl.add_argument("--scheme", choices=["halves", "kfold"], default="halves",
                     help="halves: the original's halves-then-quarters (power-of-two folds); "
                     "kfold: multilabel-stratified k-fold")
    spl.add_argument("--order", type=int, choices=list(STRATIFICATION_ORDERS), default=2,
                     help="2 (default): second-order iterative stratification, label pairs "
                     "balanced too, as the original's scikit-multilearn call; 1: single labels")
    spl.set_defaults(func=_split)

    wts = sub.add_parser("weights", help="CB-WCE confidence weights for a label file")
    wts.add_argument("--method", choices=["cb", "estimated"], required=True,
                     help="cb: the paper's eq. 3 counted over --source; estimated: estimated "
                     "from --labels alone (1/0, or 1/0/-1 with annotated negatives)")
    wts.add_argument("--labels", required=True, type=Path)
    wts.add_argument("--out", required=True, type=Path)
    wts.add_argument("--source", type=Path, default=None,
                     help="cb: label file to count co-occurrences over (default: --labels)")
    wts.add_argument("--level", choices=list(LEVELS), default=None,
                     help="estimated: how many positives the rows are taken to have lost where "
                     "the labels cannot tell: least (default; none, if none may be) or expected")
    wts.add_argument("--ratio", type=float, default=None,
                     help="estimated: the paper's ratio of hidden positives, when known "
                     "(default: estimated from --labels)")
    add_arguments(wts, "weights")
    wts.set_defaults(func=_weights)
