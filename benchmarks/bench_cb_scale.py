"""The scale of estimated confidence weights in training: CB-WCE with w ** power on the demo's set.

Trains CB-WCE with its weights estimated from the observed labels (``cb_source="estimated"``),
raised to each of ``--powers`` (CB-WCE's ``power``; 1 is the weights as estimated), under the
paper's protocol at every ratio and fold of a folder the demo wrote, with the demo's settings,
and prints mAP and micro F1 (mean ± std over folds) beside the demo's CE and CB-WCE. Run it on
a demo of another seed than the one whose tables are reported, so that the choice of the scale
is not made on them:

    mlml-tf demo --seed 1 --out demo_seed1
    python benchmarks/bench_cb_scale.py demo_seed1 --powers 0.5 1 2 [--level expected]

``--level`` is CB-WCE's ``level`` (the weights' level where the labels cannot tell how many
positives are missing; default ``least``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mlml_tf.apps.demo import FULL, N_FOLDS
from mlml_tf.apps.grid import grid_cells, run_cells
from mlml_tf.apps.tables import collect_runs, format_table_markdown, summary_table
from mlml_tf.features.cache import FeatureCache
from mlml_tf.files.protocols import PAPER
from mlml_tf.labels.estimated import LEVELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="the --out folder of a finished mlml-tf demo")
    parser.add_argument("--powers", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--level", default="least", choices=LEVELS,
                        help="CB-WCE's level: how many positives the estimated weights take "
                        "as lost where the labels cannot tell (docs/methods.md section 6)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the demo's seed (default: read from its runs folder's name)")
    args = parser.parse_args()
    grids = sorted((args.demo / "runs").glob("full-seed*"))
    if not grids:
        raise SystemExit(f"{args.demo}: no runs of the full demo (mlml-tf demo --out ...)")
    seed = args.seed
    if seed is None:
        seed = int(grids[0].name.split("-")[1].removeprefix("seed"))
    settings = FULL
    overrides = {"batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                 "head": settings.head, "seed": seed, "cb_source": "estimated"}
    cache = FeatureCache(args.demo / "features")
    cells = grid_cells(["cb-wce"], settings.ratios, settings.folds)
    frames = []
    demo_runs = collect_runs(grids[0])
    for method in ("ce", "cb-wce"):
        runs = demo_runs[(demo_runs["method"] == method)
                         & (demo_runs["protocol"] == PAPER.label())]
        label = {"ce": "CE", "cb-wce": "CB-WCE observed"}[method]
        frames.append(runs.assign(method=label))
    for power in args.powers:
        root = args.demo / "runs" / f"cb-scale-seed{seed}" / f"{args.level}-power{power:g}"
        run_cells(args.demo / "data", root, cache, cells, epochs=settings.epochs,
                  config_overrides=overrides, verbose=0,
                  method_overrides={"cb-wce": {"power": power, "level": args.level}})
        frames.append(collect_runs(root).assign(
            method=f"CB-WCE estimated ({args.level}) ** {power:g}"))
    table = summary_table(pd.concat(frames, ignore_index=True), metrics=("map", "f1_micro"))
    order = sorted(table.index, key=lambda key: (key[1], key[0] != "CE",
                                                 key[0] != "CB-WCE observed", key[0]))
    print(f"demo seed {seed}, {N_FOLDS} folds, paper protocol")
    print(format_table_markdown(table.loc[order]))


if __name__ == "__main__":
    main()
