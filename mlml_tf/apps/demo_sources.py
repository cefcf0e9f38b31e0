"""The demo's comparison of where CB-WCE's confidence weights come from: counted over the
observed labels, over the complete ones (the original's oracle, and the oracle without each
row's own row), or estimated from the observed labels alone (docs/methods.md section 6),
beside CE and IM-WCE, under the paper's protocol at every ratio and under the other protocols
of the demo's comparison of methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlml_tf.apps.grid import grid_cells, run_cells
from mlml_tf.apps.tables import collect_runs, format_table_markdown, summary_table
from mlml_tf.errors import DataError
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.files.protocols import PAPER, PROTOCOLS
from mlml_tf.files.split import split_protocol
from mlml_tf.methods.registry import METHODS
from mlml_tf.settings import DEMO_CB_SOURCES

log = logging.getLogger(__name__)

#: The methods CB-WCE is compared with.
BASELINES: tuple[str, ...] = ("ce", "im-wce")


def source_label(source: str) -> str:
    """How the table names CB-WCE with its weights from ``source``."""
    return f"{METHODS['cb-wce'].label} {source}"


def compare_cb_sources(data: Path, runs_dir: Path, cache, sources: Sequence[str],
                       ratios: Sequence[float], folds: Sequence[int], epochs: int,
                       overrides: dict, protocols: Sequence[tuple[str, float | None]],
                       n_folds: int, seed: int, out: Path) -> dict:
    """Train CB-WCE with its weights from each of ``sources`` (and CE and IM-WCE) and write
    their table, ``out/cb_sources.md`` and ``out/cb_sources.csv``: mAP and micro F1, mean ± std
    over folds.

    The runs whose settings the demo's own grid shares (``overrides["cb_source"]``) live in
    ``runs_dir`` with the grid's; those of another source in ``runs_dir/cb-source-<source>``.

    Args:
        sources: of :data:`mlml_tf.settings.DEMO_CB_SOURCES`.
        ratios: the paper's protocol at these ratios; ``protocols``: the other protocol
            settings ``(protocol, ratio or None)`` (those of the paper's layout are left out:
            ``ratios`` covers them).
        n_folds, seed: how the data folder's folds were cut, for the protocols' files.
    """
    unknown = [s for s in sources if s not in DEMO_CB_SOURCES]
    if unknown:
        raise DataError(f"cb source {unknown[0]!r} is not one the demo can compare: choose of "
                        + ", ".join(DEMO_CB_SOURCES))
    others = [(p, r) for p, r in protocols if not PROTOCOLS[p].original_layout]
    for protocol, ratio in others:
        split_protocol(data, protocol, None if ratio is None else [ratio], n_folds=n_folds,
                       seed=seed)

    def cells(methods: Sequence[str]) -> list[tuple]:
        chosen = grid_cells(methods, ratios, folds)
        for protocol, ratio in others:
            chosen += grid_cells(methods, [] if ratio is None else [ratio], folds,
                                 protocol=protocol)
        return chosen

    wanted = {(PAPER.name, float(r)) for r in ratios} | set(others)

    def runs_of(root: Path, methods: Sequence[str]) -> pd.DataFrame:
        runs = collect_runs(root)
        keep = [(p, None if pd.isna(r) else float(r)) in wanted and m in methods
                for p, r, m in zip(runs["protocol"], runs["ratio"], runs["method"], strict=True)]
        return runs[keep]

    own = overrides["cb_source"]
    frames = []
    counts = run_cells(data, runs_dir, cache, cells(BASELINES), epochs=epochs,
                       config_overrides=overrides, verbose=0)
    frames.append(runs_of(runs_dir, BASELINES))
    for source in sources:
        root = runs_dir if source == own else runs_dir / f"cb-source-{source}"
        done = run_cells(data, root, cache, cells(["cb-wce"]), epochs=epochs,
                         config_overrides={**overrides, "cb_source": source}, verbose=0)
        counts = {k: counts[k] + done[k] for k in counts}
        runs = runs_of(root, ["cb-wce"])
        frames.append(runs.assign(method=source_label(source)))
    log.info("cb sources: %d trained, %d already complete", counts["trained"],
             counts["already_complete"])
    runs = pd.concat(frames, ignore_index=True)
    table = summary_table(runs, metrics=("map", "f1_micro"))
    # By protocol setting, then method: the weights of one setting side by side.
    rank = {m: i for i, m in enumerate([*BASELINES, *map(source_label, sources)])}
    order = list(PROTOCOLS)
    table = table.loc[sorted(table.index, key=lambda key: (
        *(order.index(p.split(" ")[0]) for p in key[:-2]),
        -1.0 if pd.isna(key[-1]) else key[-1], rank[key[-2]]))]
    markdown = format_table_markdown(table)
    files = {"cb_sources_md": out / "cb_sources.md", "cb_sources_csv": out / "cb_sources.csv"}
    write_bytes_atomic(files["cb_sources_md"], (
        "# Where CB-WCE's confidence weights come from, on the demo set\n\n"
        "mAP (x100) and micro F1 at threshold 0.5 on every test image; mean ± std over "
        f"{len(folds)} folds. CB-WCE's weights: observed, eq. 3 counted over the run's "
        "observed training labels; oracle, over the complete labels of the whole set (each "
        "row's complete positives, as the original); oracle-loo, the row's observed positives "
        "over the complete labels of every other row; estimated, from the observed training "
        "labels alone.\n\n" + markdown).encode())
    flat = table.copy()
    flat.columns = [f"{m}_{s}" for m, s in flat.columns]
    write_bytes_atomic(files["cb_sources_csv"], flat.reset_index().to_csv(index=False).encode())
    log.info("%s", markdown)
    return {"table": table, "markdown": markdown, "files": files, "runs": runs}
