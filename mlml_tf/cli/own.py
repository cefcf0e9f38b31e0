"""``mlml-tf train``, ``predict``, ``evaluate`` and ``export``: a model of one's own data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlml_tf
from mlml_tf.cli.arguments import (
    add_arguments,
    add_method_overrides,
    from_arguments,
    method_overrides,
    threshold,
)
from mlml_tf.errors import DataError
from mlml_tf.settings import POSITIVE

log = logging.getLogger(__name__)


def _train(args: argparse.Namespace) -> int:
    overrides = method_overrides(args)
    unused = [name for name in overrides if name != args.method]
    if unused:
        raise DataError(f"--set / --params name method {unused[0]!r}, but --method is "
                        f"{args.method!r}")
    settings = from_arguments(args, "fit",
                              params=tuple(overrides.get(args.method, {}).items()))
    mlml_tf.fit_model(args.labels, args.images, args.out, settings,
                      image_pattern=args.image_pattern, cache=args.cache,
                      skip_bad_images=args.skip_bad_images, overwrite=args.overwrite,
                      verbose=2 if args.quiet else "auto", progress=not args.quiet)
    return 0


def _predict(args: argparse.Namespace) -> int:
    result = mlml_tf.predict_images(args.model, args.images, args.out, threshold=args.threshold,
                                    top_k=args.top_k, batch_size=args.batch_size,
                                    skip_bad_images=args.skip_bad_images,
                                    progress=not args.quiet)
    log.info("%s: %d images", result.path, result.rows)
    if result.skipped:
        log.info("%d images left out, listed in %s.skipped.csv: %s", len(result.skipped),
                 result.path.name, "; ".join(f"{b.path}: {b.reason}" for b in result.skipped[:3]))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    metrics = mlml_tf.evaluate_model(args.model, args.labels, args.images, args.out,
                                     image_pattern=args.image_pattern, threshold=args.threshold,
                                     batch_size=args.batch_size)
    annotated = metrics.get("annotated")
    log.info("%s: %d rows, mAP %.2f, micro F1 %.4f%s", args.out, metrics["n_samples"],
             metrics["map"], metrics["f1_micro"],
             f"; over the annotated entries partial mAP {annotated['partial_map']:.2f}, micro "
             f"F1 {annotated['f1_micro']:.4f}" if annotated else "")
    return 0


def _export(args: argparse.Namespace) -> int:
    log.info("%s: SavedModel, signature serving_default (images: encoded image bytes -> "
             "probabilities)", mlml_tf.export_model(args.model, args.out))
    return 0


def add_parsers(sub) -> None:
    """``train``, ``predict``, ``evaluate`` and ``export``."""
    train = sub.add_parser("train", help="train a model of your own label table and images")
    train.add_argument("--labels", required=True, type=Path,
                       help="CSV: an image path (or id) column, then one column per class of "
                       "1, 0, -1 or empty (unknown)")
    train.add_argument("--images", required=True, type=Path, help="the images folder")
    train.add_argument("--out", required=True, type=Path, help="the model folder to write")
    train.add_argument("--image-pattern", default=None,
                       help="file of an id under --images, e.g. '{id}.jpg' (default: the "
                       "first column is the path)")
    add_method_overrides(train, several=False)
    train.add_argument("--cache", type=Path, default=None,
                       help="feature cache folder (default ~/.cache/mlml-tf/features)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    add_arguments(train, "train")
    train.set_defaults(func=_train)

    predict = sub.add_parser("predict", help="tag images with a trained model")
    predict.add_argument("--model", required=True, type=Path, help="a model folder")
    predict.add_argument("--images", required=True, type=Path, nargs="+",
                         help="image files and folders")
    predict.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    predict.add_argument("--threshold", type=threshold, default="tuned",
                         help="'tuned' (default: the model's per-class thresholds) or a number")
    predict.add_argument("--top-k", type=POSITIVE.parse, default=None, metavar="K",
                         help="label each image with its K most probable classes instead")
    predict.add_argument("--batch-size", type=POSITIVE.parse, default=32)
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(predict, "predict")
    predict.set_defaults(func=_predict)

    evaluate = sub.add_parser("evaluate", help="score a trained model on a label table")
    evaluate.add_argument("--model", required=True, type=Path, help="a model folder")
    evaluate.add_argument("--labels", required=True, type=Path, help="a table of its classes")
    evaluate.add_argument("--images", required=True, type=Path, help="the images folder")
    evaluate.add_argument("--out", required=True, type=Path,
                          help="folder of the results, written as a grid run's")
    evaluate.add_argument("--image-pattern", default=None)
    evaluate.add_argument("--threshold", type=threshold, default="tuned")
    evaluate.add_argument("--batch-size", type=POSITIVE.parse, default=32)
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser("export", help="a TensorFlow SavedModel on image bytes for serving")
    export.add_argument("--model", required=True, type=Path, help="a model folder")
    export.add_argument("--out", required=True, type=Path, help="the SavedModel folder")
    export.set_defaults(func=_export)
