"""The ``mlml-tf`` command line.

Bad input ends with exit status 2 and a message on stderr that names the file, line or column;
no output file is left half-written.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from mlml_tf.errors import DataError

EXIT_BAD_INPUT = 2


def _parser(cast, accept, what: str, kind: str, limits: str):
    """An argparse type: ``cast`` the text, then check it with ``accept``; messages name it."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}{text!r} is not {kind}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{what}{text!r} {limits}")
        return value

    return parse


_parse_ratio = _parser(float, lambda v: 0.0 <= v < 1.0, "ratio ", "a number", "is outside [0, 1)")
_parse_positive_int = _parser(int, lambda v: v >= 1, "", "a whole number", "must be at least 1")
_parse_count = _parser(int, lambda v: v >= 0, "", "a whole number", "must be 0 or more")
# numpy's SeedSequence refuses negative seeds and scikit-learn's random_state anything beyond
# 32 bits; say so here rather than fail deep inside a fold split.
_parse_seed = _parser(int, lambda v: 0 <= v < 2**32, "seed ", "a whole number",
                      "is outside [0, 2**32 - 1]")
_parse_learning_rate = _parser(float, lambda v: math.isfinite(v) and v > 0, "learning rate ",
                               "a number", "must be a positive number")

_parse_minutes = _parser(float, lambda v: math.isfinite(v) and v >= 0, "minutes ", "a number",
                         "must be 0 or more")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard {text!r} is not of the form i/n") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 1 <= i <= n")
    return i, n


def _cmd_prepare(args: argparse.Namespace) -> int:
    from mlml_tf.datasets.coco import min_labels_filter
    from mlml_tf.layout import write_groundtruth, write_image_list

    if args.dataset == "coco":
        from mlml_tf.datasets.coco import read_coco

        labels, files = read_coco(args.annotations, ids=args.ids)
        names = list(labels.columns)
        source = {"dataset": "coco", "annotations": str(args.annotations),
                  "min_labels": args.min_labels, "ids": args.ids,
                  "images": "relative to the train2017 folder"}
    else:
        from mlml_tf.datasets.nuswide import read_nuswide

        labels, files, names = read_nuswide(args.root)
        source = {"dataset": "nuswide", "root": str(args.root), "min_labels": args.min_labels,
                  "images": "relative to the NUS-WIDE image folder"}
    labels = min_labels_filter(labels, args.min_labels)
    path = write_groundtruth(args.out, labels, class_names=names, source=source)
    write_image_list(args.out, files.loc[labels.index])
    print(f"{path}: {len(labels)} images x {labels.shape[1]} classes, "
          f"{labels.to_numpy().sum(1).mean():.2f} labels per image")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from mlml_tf.labels import PAPER_RATIOS
    from mlml_tf.layout import split, split_protocol

    allowed = {"paper": ["--ratios"], "rps": ["--ratios"], "fpc": ["--count"],
               "single-positive": []}[args.protocol]
    given = [f"--{name}" for name in ("ratios", "count") if getattr(args, name)]
    extra = [option for option in given if option not in allowed]
    if extra:
        raise DataError(f"--protocol {args.protocol} takes "
                        f"{' or '.join(allowed) or 'neither --ratios nor --count'}, not {extra[0]}")
    if args.protocol != "paper":
        manifest = split_protocol(args.dir, args.protocol, args.ratios or args.count,
                                  n_folds=args.folds, seed=args.seed, scheme=args.scheme,
                                  order=args.order)
        written = 0
        for name, entry in manifest["protocols"].items():
            if entry["protocol"] != args.protocol:
                continue
            written += len(entry["checksums"])
            for k, c in entry["counts"].items():
                print(f"{name} fold {k}: {c['train']} train / {c['test']} test rows; "
                      f"{c['positive']} positive, {c['negative']} negative, {c['unknown']} "
                      "unknown training entries")
        print(f"{written} files written under {args.dir}")
        return 0
    manifest = split(args.dir, n_folds=args.folds, ratios=args.ratios or list(PAPER_RATIOS),
                     seed=args.seed, scheme=args.scheme, order=args.order)
    counts = manifest["split"]["counts"]
    for k, c in counts.items():
        print(f"fold {k}: {c['train']} train / {c['test']} test rows; hidden "
              + ", ".join(f"r={r}: {n}" for r, n in c["hidden"].items()))
    print(f"{len(manifest['split']['checksums'])} files written under {args.dir}")
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from mlml_tf.labels import confidence_weights
    from mlml_tf.layout import read_table, write_weights

    labels = read_table(args.labels, "labels")
    source = labels
    if args.source is not None:
        source = read_table(args.source, "labels")
        if list(source.columns) != list(labels.columns):
            raise DataError(f"columns differ from those of {args.labels}", file=args.source, row=1)
    weights = confidence_weights(labels.to_numpy(), source.to_numpy())
    write_weights(args.out, weights, labels)
    print(f"{args.out}: CB-WCE weights for {len(labels)} rows counted over {len(source)} rows")
    return 0


def _method_overrides(args: argparse.Namespace) -> dict[str, dict]:
    """Per-method hyper-parameters: the ``--params`` file, then every ``--set``, checked."""
    from mlml_tf.methods import method_params, read_params_file

    overrides = read_params_file(args.params) if args.params else {}
    for text in args.set or []:
        key, equals, value = text.partition("=")
        name, dot, param = key.partition(".")
        if not equals or not dot or not param:
            raise DataError(f"--set {text!r} is not of the form METHOD.NAME=VALUE "
                            "(e.g. csl.gamma_unann=4)")
        method_params(name, {param: value})
        overrides.setdefault(name, {})[param] = value
    prior = overrides.get("csl", {}).get("prior")
    if prior not in (None, "auto", "none"):
        # A prior file is checked against the classes before anything is written.
        from mlml_tf.layout import table_classes
        from mlml_tf.methods import read_class_prior

        table = args.labels if getattr(args, "data", None) is None else (
            Path(args.data) / "groundtruth.csv")
        read_class_prior(Path(prior), table_classes(table))
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from mlml_tf.grid import GridOptions, run_grid

    if args.count and args.protocol != "fpc":
        raise DataError(f"--count is for --protocol fpc, not {args.protocol}")
    if args.ratios and args.protocol in ("fpc", "single-positive"):
        raise DataError(f"--protocol {args.protocol} takes no --ratios")
    options = GridOptions(
        images=args.images,
        image_pattern=args.image_pattern,
        backbone=args.backbone,
        weights=args.weights,
        hub=args.hub,
        head=args.head,
        scaling=args.scaling,
        image_size=args.image_size,
        resize=args.resize,
        keep_grayscale=args.keep_grayscale,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        steps_per_epoch=args.steps_per_epoch,
        shuffle_buffer=args.shuffle_buffer,
        loss_input=args.loss_input,
        cb_source=args.cb_source,
        pos_weight_source=args.pos_weight_source,
        faithful_scoring=args.faithful_scoring,
        faithful_batch_norm=args.faithful_batch_norm,
        naming=args.naming,
        validation_fraction=args.validation_fraction,
        skip_bad_images=args.skip_bad_images,
        strategy=args.strategy,
        mixed_precision=args.mixed_precision,
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
        together=args.together,
        backup_minutes=args.backup_minutes,
        seed=args.seed,
    )
    summary = run_grid(
        data=args.data,
        out=args.out,
        methods=args.methods,
        ratios=args.ratios,
        folds=args.folds,
        epochs=args.epochs,
        shard=args.shard,
        options=options,
        faithful=args.faithful,
        protocol=args.protocol,
        counts=args.count,
        method_overrides=_method_overrides(args),
    )
    print(summary)
    return 0


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    from mlml_tf.train import BACKUP_MINUTES

    run.add_argument("--data", required=True, type=Path, help="data folder (mlml-tf split)")
    run.add_argument("--out", required=True, type=Path, help="output folder, shared by shards")
    from mlml_tf.methods import METHODS, PAPER_METHODS

    run.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(PAPER_METHODS),
                     help="the paper's CE, IM-WCE, CB-WCE (default), and the field's ASL, CSL, "
                     "AN, AN-LS, WAN, EPR")
    run.add_argument("--protocol", choices=["paper", "rps", "fpc", "single-positive"],
                     default="paper",
                     help="whose training labels the runs read, as mlml-tf split --protocol "
                     "wrote them; --ratios are RPS's probabilities, --count FPC's counts")
    run.add_argument("--count", type=_parse_positive_int, nargs="+", default=None,
                     help="fpc: the counts of annotated labels per class (default 1000)")
    run.add_argument("--set", action="append", metavar="METHOD.NAME=VALUE",
                     help="a hyper-parameter of a method, e.g. csl.gamma_unann=4 (repeatable)")
    run.add_argument("--params", type=Path, default=None,
                     help='a JSON file of hyper-parameters: {"csl": {"gamma_unann": 4}, ...}')
    run.add_argument("--ratios", nargs="+", type=_parse_ratio, default=None,
                     help="default: every ratio of the data folder's manifest")
    run.add_argument("--folds", nargs="+", type=_parse_positive_int, default=None,
                     help="default: every fold of the data folder's manifest")
    run.add_argument("--epochs", type=_parse_positive_int, default=20)
    run.add_argument("--shard", type=_parse_shard, default=(1, 1), metavar="i/n",
                     help="run only the i-th of n interleaved parts of the grid")
    run.add_argument("--images", type=Path, default=None,
                     help="image root; files come from DIR/images.csv or --image-pattern")
    run.add_argument("--image-pattern", default="{id}.jpg",
                     help="file of an id under --images when the data folder has no images.csv")
    run.add_argument("--backbone", default="InceptionResNetV2",
                     help="a keras.applications model name")
    run.add_argument("--weights", default="imagenet",
                     help="'imagenet' (downloaded), 'none', or a local weights file")
    run.add_argument("--hub", default=None,
                     help="a TF Hub handle or local SavedModel to use as backbone instead")
    run.add_argument("--head", choices=["original", "gap"], default="original")
    run.add_argument("--scaling", choices=["imagenet", "inception"], default="imagenet")
    run.add_argument("--image-size", type=_parse_positive_int, default=224)
    run.add_argument("--resize", choices=["skimage", "bilinear"], default="skimage",
                     help="skimage (default): skimage's anti-aliased resize, as the original; "
                     "bilinear: TensorFlow's plain bilinear resize, about twice as fast")
    run.add_argument("--keep-grayscale", action="store_true",
                     help="NUS-WIDE: keep the images not stored as RGB (grayscale, CMYK), which "
                     "the original's preprocessing could not read and left out")
    run.add_argument("--batch-size", type=_parse_positive_int, default=32)
    run.add_argument("--learning-rate", type=_parse_learning_rate, default=0.1,
                     help="Adadelta's rate (rho 0.95, epsilon 1e-8, as TF1's); default 0.1")
    run.add_argument("--lr-schedule", choices=["constant", "exponential-decay"],
                     default="constant",
                     help="constant (default): the rate the original trained with; "
                     "exponential-decay: x0.95 every 1,000 steps, the decay its code built but "
                     "never applied")
    run.add_argument("--steps-per-epoch", choices=["run", "original"], default="run",
                     help="run (default): floor(N / 32) of the run's own rows, one pass each "
                     "epoch; original: floor(N1 / 32), N1 = rows of train1_0.0.csv, for every "
                     "run, over a repeating stream")
    run.add_argument("--shuffle-buffer", type=_parse_count, default=0,
                     help="0 (default): each pass a uniform permutation; 100: the original's "
                     "shuffle buffer over the rows in file order")
    run.add_argument("--loss-input", choices=["logits", "probabilities", "original"],
                     default="logits",
                     help="the loss from logits (default, stable), from probabilities clipped "
                     "to [1e-7, 1 - 1e-7], or as the original (CE from logits, IM-WCE and "
                     "CB-WCE from clipped probabilities)")
    run.add_argument("--cb-source", choices=["observed", "oracle", "file"], default="observed",
                     help="CB-WCE counts over the run's observed training labels (default); "
                     "oracle: over the complete labels of the whole set, as the original; "
                     "file: the authors' negative_weights_global.csv in --data")
    run.add_argument("--pos-weight-source", choices=["run", "original"], default="run",
                     help="P from the run's training labels (default) or, as the original, "
                     "from the complete labels of fold 1 for every run")
    run.add_argument("--faithful-scoring", action="store_true",
                     help="score as the original: test rows in full batches of a stream "
                     "shuffled with a buffer of 100, the last N mod 32 left at zero")
    run.add_argument("--faithful-batch-norm", action="store_true",
                     help="the backbone's batch norm on batch statistics while training, as "
                     "the original: the backbone runs at every step (no feature cache)")
    run.add_argument("--faithful", action="store_true",
                     help="every departure from the original undone at once (README: "
                     "'Where the port departs from the original')")
    run.add_argument("--naming", choices=["auto", "coco", "nuswide"], default="auto",
                     help="experiment folder names of the original's COCO or NUS-WIDE runs; "
                     "auto: NUS-WIDE's for a NUS-WIDE data folder")
    run.add_argument("--validation-fraction", type=float, default=0.0,
                     help="hold out this part of the training rows to tune per-class thresholds")
    run.add_argument("--skip-bad-images", action="store_true",
                     help="drop missing or corrupt images (counted, reported) instead of stopping")
    run.add_argument("--strategy", choices=["default", "mirrored", "multiworker", "tpu"],
                     default="default")
    run.add_argument("--mixed-precision", action="store_true",
                     help="heads compute in float16 on float32 variables (GPUs with tensor "
                     "cores); off by default, the paper's arithmetic is float32")
    run.add_argument("--jit-compile", choices=["auto", "on", "off"], default="auto",
                     help="compile the training step with XLA; auto: on a GPU, not on a CPU")
    run.add_argument("--together", type=_parse_positive_int, default=None, metavar="N",
                     help="train up to N runs of a fold (every method and ratio) side by side "
                     "in one model, each to the result it gets alone; default: as many as a "
                     "quarter of the memory holds; 1: one by one")
    run.add_argument("--backup-minutes", type=_parse_minutes, default=BACKUP_MINUTES,
                     help="least time between two checkpoints of a training, written at "
                     "epoch ends (0: every epoch); a killed run resumes from the last one")
    run.add_argument("--seed", type=_parse_seed, default=0)


def _fit_settings(args: argparse.Namespace):
    from mlml_tf.own_model import FitSettings

    overrides = _method_overrides(args)
    unused = [name for name in overrides if name != args.method]
    if unused:
        raise DataError(f"--set / --params name method {unused[0]!r}, but --method is "
                        f"{args.method!r}")
    return FitSettings(
        method=args.method, params=tuple(overrides.get(args.method, {}).items()),
        validation=args.validation, backbone=args.backbone, weights=args.weights,
        head=args.head, image_size=args.image_size, scaling=args.scaling, resize=args.resize,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        fine_tune=args.fine_tune, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        mixed_precision={"auto": "auto", "on": True, "off": False}[args.mixed_precision],
        seed=args.seed)


def _cmd_train(args: argparse.Namespace) -> int:
    from mlml_tf.own_model import fit_model

    fit_model(args.labels, args.images, args.out, _fit_settings(args),
              image_pattern=args.image_pattern, cache=args.cache,
              skip_bad_images=args.skip_bad_images, overwrite=args.overwrite,
              verbose=2 if args.quiet else "auto", progress=not args.quiet)
    return 0


def _threshold(text: str):
    if text == "tuned":
        return text
    return _parse_probability(text)


_parse_probability = _parser(float, lambda v: 0.0 <= v <= 1.0, "threshold ", "a number or "
                             "'tuned'", "is outside [0, 1]")
_parse_fraction = _parser(float, lambda v: 0.0 <= v < 1.0, "fraction ", "a number",
                          "is outside [0, 1)")


def _cmd_predict(args: argparse.Namespace) -> int:
    from mlml_tf.own_model import predict_images

    result = predict_images(args.model, args.images, args.out, threshold=args.threshold,
                            top_k=args.top_k, batch_size=args.batch_size,
                            skip_bad_images=args.skip_bad_images, progress=not args.quiet)
    print(f"{result.path}: {result.rows} images")
    if result.skipped:
        print(f"{len(result.skipped)} images left out, listed in "
              f"{result.path.name}.skipped.csv: "
              + "; ".join(f"{b.path}: {b.reason}" for b in result.skipped[:3]))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mlml_tf.own_model import evaluate_model

    metrics = evaluate_model(args.model, args.labels, args.images, args.out,
                             image_pattern=args.image_pattern, threshold=args.threshold,
                             batch_size=args.batch_size)
    annotated = metrics.get("annotated")
    print(f"{args.out}: {metrics['n_samples']} rows, mAP {metrics['map']:.2f}, micro F1 "
          f"{metrics['f1_micro']:.4f}"
          + (f"; over the annotated entries partial mAP {annotated['partial_map']:.2f}, "
             f"micro F1 {annotated['f1_micro']:.4f}" if annotated else ""))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mlml_tf.own_model import export_model

    print(f"{export_model(args.model, args.out)}: SavedModel, signature serving_default "
          "(images: encoded image bytes -> probabilities)")
    return 0


def _add_own_parsers(sub) -> None:
    from mlml_tf.methods import METHODS
    from mlml_tf.own_model import ORACLE_METHODS, OWN_RESIZES

    train = sub.add_parser("train", help="train a model of your own label table and images")
    train.add_argument("--labels", required=True, type=Path,
                       help="CSV: an image path (or id) column, then one column per class of "
                       "1, 0, -1 or empty (unknown)")
    train.add_argument("--images", required=True, type=Path, help="the images folder")
    train.add_argument("--out", required=True, type=Path, help="the model folder to write")
    train.add_argument("--image-pattern", default=None,
                       help="file of an id under --images, e.g. '{id}.jpg' (default: the "
                       "first column is the path)")
    train.add_argument("--method", choices=[m for m in METHODS if m not in ORACLE_METHODS],
                       default="cb-wce")
    train.add_argument("--set", action="append", metavar="METHOD.NAME=VALUE",
                       help="a hyper-parameter of the method, e.g. csl.gamma_unann=4")
    train.add_argument("--params", type=Path, default=None,
                       help='a JSON file of hyper-parameters: {"csl": {"gamma_unann": 4}}')
    train.add_argument("--validation", type=_parse_fraction, default=0.2,
                       help="share of the rows held out, stratified, to tune per-class "
                       "thresholds and report validation metrics (default 0.2; 0: none)")
    train.add_argument("--backbone", default="InceptionResNetV2",
                       help="a keras.applications model name, or a SavedModel directory")
    train.add_argument("--weights", default="imagenet",
                       help="'imagenet' (downloaded), 'none', or a local weights file")
    train.add_argument("--head", choices=["original", "gap"], default="original")
    train.add_argument("--scaling", choices=["imagenet", "inception"], default="imagenet")
    train.add_argument("--image-size", type=_parse_positive_int, default=224)
    train.add_argument("--resize", choices=list(OWN_RESIZES), default="antialias",
                       help="how the saved model resizes: bilinear with anti-aliasing "
                       "(default) or without")
    train.add_argument("--epochs", type=_parse_positive_int, default=20)
    train.add_argument("--batch-size", type=_parse_positive_int, default=32)
    train.add_argument("--learning-rate", type=_parse_learning_rate, default=0.1,
                       help="Adadelta's rate of the head's training (default 0.1)")
    train.add_argument("--fine-tune", type=_parse_count, default=0, metavar="N",
                       help="then train the backbone's top N layers with weights (batch norm "
                       "frozen) with the head on the images, lightly augmented")
    train.add_argument("--fine-tune-epochs", type=_parse_positive_int, default=5)
    train.add_argument("--fine-tune-learning-rate", type=_parse_learning_rate, default=1e-5,
                       help="Adam's rate of the fine-tuning (default 1e-5)")
    train.add_argument("--mixed-precision", choices=["auto", "on", "off"], default="auto",
                       help="fine-tune in float16; auto: where a GPU is present")
    train.add_argument("--cache", type=Path, default=None,
                       help="feature cache folder (default ~/.cache/mlml-tf/features)")
    train.add_argument("--skip-bad-images", action="store_true",
                       help="leave out rows whose image cannot be read instead of stopping")
    train.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--seed", type=_parse_seed, default=0)
    train.set_defaults(func=_cmd_train)

    predict = sub.add_parser("predict", help="tag images with a trained model")
    predict.add_argument("--model", required=True, type=Path, help="a model folder")
    predict.add_argument("--images", required=True, type=Path, nargs="+",
                         help="image files and folders")
    predict.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    predict.add_argument("--threshold", type=_threshold, default="tuned",
                         help="'tuned' (default: the model's per-class thresholds) or a number")
    predict.add_argument("--top-k", type=_parse_positive_int, default=None, metavar="K",
                         help="label each image with its K most probable classes instead")
    predict.add_argument("--batch-size", type=_parse_positive_int, default=32)
    predict.add_argument("--skip-bad-images", action="store_true",
                         help="leave unreadable files out (listed in OUT.skipped.csv)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="score a trained model on a label table")
    evaluate.add_argument("--model", required=True, type=Path, help="a model folder")
    evaluate.add_argument("--labels", required=True, type=Path, help="a table of its classes")
    evaluate.add_argument("--images", required=True, type=Path, help="the images folder")
    evaluate.add_argument("--out", required=True, type=Path,
                          help="folder of the results, written as a grid run's")
    evaluate.add_argument("--image-pattern", default=None)
    evaluate.add_argument("--threshold", type=_threshold, default="tuned")
    evaluate.add_argument("--batch-size", type=_parse_positive_int, default=32)
    evaluate.set_defaults(func=_cmd_evaluate)

    export = sub.add_parser("export", help="a TensorFlow SavedModel on image bytes for serving")
    export.add_argument("--model", required=True, type=Path, help="a model folder")
    export.add_argument("--out", required=True, type=Path, help="the SavedModel folder")
    export.set_defaults(func=_cmd_export)


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlml_tf.demo import run_demo

    methods = args.methods
    if methods and "all" in methods:
        methods = "all"
    run_demo(out=args.out, quick=args.quick, seed=args.seed, methods=methods)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mlml_tf.methods import METHODS, PAPER_METHODS

    parser = argparse.ArgumentParser(
        prog="mlml-tf",
        description="Multi-label classification with missing labels: CE, IM-WCE and CB-WCE "
        "(Ibrahim et al., ICMR 2020) beside the field's ASL, CSL, AN, AN-LS, WAN and EPR, in "
        "TensorFlow 2 / Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="label table of a raw data set -> DIR/groundtruth.csv")
    prep_sub = prep.add_subparsers(dest="dataset", required=True)
    coco = prep_sub.add_parser("coco", help="COCO 2017 train from instances_train2017.json")
    coco.add_argument("--annotations", required=True, type=Path, help="instances_train2017.json")
    coco.add_argument("--out", required=True, type=Path, help="data folder to write")
    coco.add_argument("--min-labels", type=_parse_positive_int, default=4,
                      help="keep images with at least this many labels (default 4)")
    coco.add_argument("--ids", choices=["original", "coco"], default="original",
                      help="row id: the original row number (default) or the COCO image id")
    nus = prep_sub.add_parser("nuswide", help="NUS-WIDE from Imagelist.txt and AllTags81.txt")
    nus.add_argument("--root", required=True, type=Path, help="NUS-WIDE root folder")
    nus.add_argument("--out", required=True, type=Path, help="data folder to write")
    nus.add_argument("--min-labels", type=_parse_positive_int, default=3,
                     help="keep images with at least this many labels (default 3)")
    prep.set_defaults(func=_cmd_prepare)

    spl = sub.add_parser("split", help="folds and missing labels in the original layout")
    spl.add_argument("dir", type=Path, help="data folder holding groundtruth.csv")
    spl.add_argument("--folds", type=_parse_positive_int, default=4)
    spl.add_argument("--protocol", choices=["paper", "rps", "fpc", "single-positive"],
                     default="paper",
                     help="paper: hide positives (the original layout); rps: each entry unknown "
                     "with probability r; fpc: n annotated positives and negatives per class; "
                     "single-positive: one positive per row. The others are written beside the "
                     "paper's, on the same folds")
    spl.add_argument("--ratios", type=_parse_ratio, nargs="+", default=None,
                     help="paper: hidden ratios (default 0 0.25 0.5 0.75); rps: unknown "
                     "probabilities (default 0.5)")
    spl.add_argument("--count", type=_parse_positive_int, nargs="+", default=None,
                     help="fpc: annotated positives and negatives kept per class (default 1000)")
    spl.add_argument("--seed", type=_parse_seed, default=0)
    spl.add_argument("--scheme", choices=["halves", "kfold"], default="halves",
                     help="halves: the original's halves-then-quarters (power-of-two folds); "
                     "kfold: multilabel-stratified k-fold")
    spl.add_argument("--order", type=int, choices=[1, 2], default=2,
                     help="2 (default): second-order iterative stratification, label pairs "
                     "balanced too, as the original's scikit-multilearn call; 1: single labels")
    spl.set_defaults(func=_cmd_split)

    wts = sub.add_parser("weights", help="CB-WCE confidence weights for a label file")
    wts.add_argument("--method", choices=["cb"], required=True)
    wts.add_argument("--labels", required=True, type=Path)
    wts.add_argument("--out", required=True, type=Path)
    wts.add_argument("--source", type=Path, default=None,
                     help="label file to count co-occurrences over (default: --labels)")
    wts.set_defaults(func=_cmd_weights)

    run = sub.add_parser("run", help="train and evaluate the grid of methods x ratios x folds")
    _add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    _add_own_parsers(sub)

    demo = sub.add_parser("demo", help="the whole protocol offline on handwritten-digit mosaics")
    demo.add_argument("--quick", action="store_true", help="a small version for tests")
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--seed", type=_parse_seed, default=0)
    demo.add_argument("--methods", nargs="+", default=None,
                      choices=["all", *(m for m in METHODS if m not in PAPER_METHODS)],
                      help="compare these methods of the field (or all) with the paper's, "
                      "under the paper's protocol, RPS 0.5 and single positive")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"mlml-tf: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # A path the user gave that cannot be read or written (a folder, no permission, ...).
        if exc.filename is None:
            raise
        print(f"mlml-tf: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mlml-tf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
