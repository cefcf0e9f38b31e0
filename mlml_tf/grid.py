"""The experiment grid: every (method, ratio, fold) of a data folder, resumable and shardable.

Each run lives in ``<out>/<experiment>/<settings digest>/`` (experiment names as the original,
SPEC 7) and counts as done only once its ``complete.json`` holds the digest of its settings. A
run is claimed with a lock, so several processes (``--shard i/n``, or the same command started
twice) can share one output folder; a killed run resumes from its BackupAndRestore checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from mlml_tf.cache import FeatureCache, folder_lock
from mlml_tf.errors import DataError, remove_stale_temporaries
from mlml_tf.layout import read_manifest
from mlml_tf.train import METHODS, RunConfig, is_complete, load_run_data, run_digest


@dataclasses.dataclass(frozen=True)
class GridOptions:
    """Settings shared by every run of a grid (see ``mlml-tf run --help``)."""

    images: Path | None = None
    image_pattern: str = "{id}.jpg"
    backbone: str = "InceptionResNetV2"
    weights: str | None = "imagenet"
    hub: str | None = None
    head: str = "original"
    scaling: str = "imagenet"
    image_size: int = 224
    batch_size: int = 32
    learning_rate: float = 0.1
    cb_source: str = "observed"
    pos_weight_source: str = "run"
    validation_fraction: float = 0.0
    skip_bad_images: bool = False
    strategy: str = "default"
    seed: int = 0


def grid_cells(methods: Sequence[str], ratios: Sequence[float], folds: Sequence[int],
               shard: tuple[int, int] = (1, 1)) -> list[tuple[str, float, int]]:
    """The (method, ratio, fold) cells of the grid in a fixed order, this shard's share only."""
    i, n = shard
    if not 1 <= i <= n:
        raise DataError(f"shard {i}/{n}: need 1 <= i <= n")
    cells = [(m, float(r), int(k)) for r in ratios for k in folds for m in methods]
    return cells[i - 1 :: n]


def grid_defaults(data: str | os.PathLike) -> tuple[list[float], list[int]]:
    """Ratios and folds recorded in the data folder's manifest (the paper's when absent)."""
    split = read_manifest(data).get("split", {})
    ratios = split.get("ratios", [0.0, 0.25, 0.5, 0.75])
    folds = list(range(1, split.get("n_folds", 4) + 1))
    return ratios, folds


def run_cells(data: str | os.PathLike, out: str | os.PathLike, cache: FeatureCache,
              cells: Sequence[tuple[str, float, int]], epochs: int = 20,
              config_overrides: dict | None = None, verbose: int | str = "auto",
              log=print) -> dict[str, int]:
    """Train every cell not yet complete; return counts of done, skipped and busy runs."""
    import keras

    from mlml_tf.runs import experiment_name
    from mlml_tf.train import train_run

    counts = {"trained": 0, "already_complete": 0, "running_elsewhere": 0}
    for method, ratio, fold in cells:
        config = RunConfig(method=method, ratio=ratio, fold=fold, epochs=epochs,
                           **(config_overrides or {}))
        run_data = load_run_data(data, config)
        digest = run_digest(config, run_data, cache)
        run_dir = Path(out) / experiment_name(method, ratio, fold) / digest[:12]
        if is_complete(run_dir, digest):
            counts["already_complete"] += 1
            continue
        with folder_lock(run_dir, blocking=False) as held:
            if not held:
                log(f"{run_dir}: being trained by another process, left to it")
                counts["running_elsewhere"] += 1
                continue
            if is_complete(run_dir, digest):
                counts["already_complete"] += 1
                continue
            # Left by an attempt that was killed while writing; under the lock no one else writes.
            remove_stale_temporaries(run_dir)
            log(f"{method} ratio={ratio} fold={fold} -> {run_dir}")
            train_run(data, cache, run_dir, config, run_data=run_data, verbose=verbose)
            counts["trained"] += 1
        keras.backend.clear_session()
    return counts


def run_grid(data: str | os.PathLike, out: str | os.PathLike,
             methods: Sequence[str] = METHODS, ratios: Sequence[float] | None = None,
             folds: Sequence[int] | None = None, epochs: int = 20,
             shard: tuple[int, int] = (1, 1), options: GridOptions = GridOptions()) -> str:
    """Feature cache, then every run of this shard, then the summary table of what is done."""
    from mlml_tf.features import cache_for_data_folder
    from mlml_tf.results import collect_runs, format_table_markdown, summary_table

    default_ratios, default_folds = grid_defaults(data)
    cells = grid_cells(methods, ratios or default_ratios, folds or default_folds, shard)
    cache = cache_for_data_folder(data, Path(out) / "features", options)
    overrides = {
        "batch_size": options.batch_size, "learning_rate": options.learning_rate,
        "head": options.head, "seed": options.seed, "cb_source": options.cb_source,
        "pos_weight_source": options.pos_weight_source,
        "validation_fraction": options.validation_fraction, "strategy": options.strategy,
    }
    counts = run_cells(data, out, cache, cells, epochs=epochs, config_overrides=overrides)
    lines = [f"shard {shard[0]}/{shard[1]}: {len(cells)} runs: "
             + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())]
    runs = collect_runs(out)
    if len(runs):
        lines.append(format_table_markdown(summary_table(runs)))
    return "\n".join(lines)
