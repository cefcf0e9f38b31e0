"""``mlml-tf run`` and ``demo``: the grid of methods x protocol settings x folds, and the
offline demo."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlml_tf
from mlml_tf.cli.arguments import (
    add_arguments,
    add_method_overrides,
    from_arguments,
    given_options,
    method_overrides,
    shard,
)
from mlml_tf.errors import DataError
from mlml_tf.faithful import faithful_settings
from mlml_tf.files.protocols import PROTOCOLS
from mlml_tf.methods.registry import METHODS, PAPER_METHODS
from mlml_tf.settings import DEMO_CB_SOURCES, POSITIVE, RATIO

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    chosen = PROTOCOLS[args.protocol]
    if args.count and chosen.option != "--count":
        raise DataError(f"--count is for --protocol fpc, not {args.protocol}")
    if args.ratios and chosen.option != "--ratios":
        raise DataError(f"--protocol {args.protocol} takes no --ratios")
    options = from_arguments(args, "grid")
    if args.faithful:
        # An option given at its default departs too (--shuffle-buffer 0), which run_grid
        # cannot tell; run_grid checks the run's own arguments (--epochs, --methods, ...).
        options = faithful_settings(options, args.data, given_options(args))
    summary = mlml_tf.run_grid(
        data=args.data, out=args.out, methods=args.methods, ratios=args.ratios,
        folds=args.folds, epochs=args.epochs, shard=args.shard, options=options,
        faithful=args.faithful, protocol=args.protocol, counts=args.count,
        method_overrides=method_overrides(args))
    log.info("%s", summary)
    return 0


def _demo(args: argparse.Namespace) -> int:
    methods = args.methods
    if methods and "all" in methods:
        methods = "all"
    mlml_tf.run_demo(out=args.out, quick=args.quick, seed=args.seed, methods=methods,
                     feature_dtype=args.feature_dtype, cb_sources=args.cb_sources,
                     backbone_from=args.backbone_from)
    return 0


def add_parsers(sub) -> None:
    """``run`` and ``demo``."""
    run = sub.add_parser("run", help="train and evaluate the grid of methods x ratios x folds")
    run.add_argument("--data", required=True, type=Path, help="data folder (mlml-tf split)")
    run.add_argument("--out", required=True, type=Path, help="output folder, shared by shards")
    run.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(PAPER_METHODS),
                     help="the paper's CE, IM-WCE, CB-WCE (default), and the field's "
                     + ", ".join(m.label for m in METHODS.values() if m.name not in PAPER_METHODS))
    run.add_argument("--count", type=POSITIVE.parse, nargs="+", default=None,
                     help="fpc: the counts of annotated labels per class (default 1000)")
    add_method_overrides(run)
    run.add_argument("--ratios", nargs="+", type=RATIO.parse, default=None,
                     help="default: every ratio of the data folder's manifest")
    run.add_argument("--folds", nargs="+", type=POSITIVE.parse, default=None,
                     help="default: every fold of the data folder's manifest")
    run.add_argument("--shard", type=shard, default=(1, 1), metavar="i/n",
                     help="run only the i-th of n interleaved parts of the grid")
    run.add_argument("--faithful", action="store_true",
                     help="the original's computation: every departure undone at once "
                     "(README: 'Where the port departs from the original'); an option that "
                     "departs from it stops the run")
    add_arguments(run, "run")
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="the whole protocol offline on handwritten-digit mosaics")
    demo.add_argument("--quick", action="store_true", help="a small version for tests")
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--methods", nargs="+", default=None,
                      choices=["all", *(m for m in METHODS if m not in PAPER_METHODS)],
                      help="compare these methods of the field (or all) with the paper's, "
                      "under the paper's protocol, RPS 0.5 and single positive")
    demo.add_argument("--cb-sources", nargs="+", default=None, choices=list(DEMO_CB_SOURCES),
                      metavar="SOURCE",
                      help="compare CB-WCE with its confidence weights from each of these ("
                      + ", ".join(DEMO_CB_SOURCES) + ") beside CE and IM-WCE, at every ratio "
                      "and under RPS 0.5 and single positive: DIR/cb_sources.md")
    demo.add_argument("--backbone-from", type=Path, default=None, metavar="DIR",
                      help="take the pretrained backbone of this demo folder (backbone.keras "
                      "and backbone.json, of the same --quick or full settings) instead of "
                      "pretraining one: the same table on machines whose kernels round "
                      "otherwise (docs/demo_backbone holds the README's)")
    add_arguments(demo, "demo")
    demo.set_defaults(func=_demo)
