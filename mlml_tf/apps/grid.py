"""The experiment grid: every (method, protocol setting, fold) of a data folder, resumable and
shardable.

Each run lives in ``<out>/<experiment>/<settings digest>/`` (experiment names as the original,
docs/original.md section 7) and counts as done only once its ``complete.json`` holds the digest
of its settings. A run is claimed with a lock, so several processes (``--shard i/n``, or the
same command started twice) can share one output folder; a killed run resumes from its
checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import keras

from mlml_tf.apps.tables import collect_runs, format_table_markdown, summary_table
from mlml_tf.errors import DataError
from mlml_tf.faithful import check_faithful, faithful_settings, is_faithful
from mlml_tf.features.cache import FeatureCache
from mlml_tf.features.extract import cache_for_data_folder, nuswide_folder
from mlml_tf.files.atomic import folder_lock, remove_stale_temporaries
from mlml_tf.files.global_weights import check_global_weights
from mlml_tf.files.layout import (
    GLOBAL_WEIGHTS,
    data_classes,
    data_set,
    image_files,
    read_manifest,
)
from mlml_tf.files.protocols import PAPER
from mlml_tf.files.protocols import protocol as find_protocol
from mlml_tf.files.published import found_split, read_complete_labels
from mlml_tf.files.tables import table_classes
from mlml_tf.labels.missing import FPC_DEFAULT_COUNT, PAPER_RATIOS
from mlml_tf.methods.method import params_key
from mlml_tf.methods.registry import PAPER_METHODS, check_settings, method, method_params
from mlml_tf.runs.names import experiment_name
from mlml_tf.settings import BACKUP_MINUTES, GridOptions, RunConfig, shared
from mlml_tf.training.data import load_run_data, run_files_of, run_params
from mlml_tf.training.end_to_end import image_run_digest, train_run_on_images
from mlml_tf.training.prior import estimate_class_prior
from mlml_tf.training.record import is_complete, run_digest
from mlml_tf.training.runs import heads_per_model, together_key, train_runs

log = logging.getLogger(__name__)


def faithful_options(options: GridOptions, data: str | os.PathLike,
                     given: Collection[str] = ()) -> GridOptions:
    """``options`` with every departure from the original undone (``mlml-tf run --faithful``).

    Each option left at its default takes the original's value (``faithful`` in the options
    table, :mod:`mlml_tf.settings`, applied by :func:`mlml_tf.faithful.faithful_settings`):
    backbone batch norm on batch statistics (so no feature cache: the backbone runs at every
    step), the loss of IM-WCE and CB-WCE on clipped probabilities (CE on logits, as the
    original), P from fold 1's complete labels, CB-WCE weights counted over the complete labels
    of the whole set (the authors' ``negative_weights_global.csv`` when the data folder has
    it), floor(N1 / 32) steps per epoch over a repeating stream through a shuffle buffer of 100,
    JPEG images decoded as Pillow and OpenCV decoded them, and the test rows predicted in full
    batches of that shuffled stream, the rest scored as zeros, the rows of images left out
    counted as the original counted them. ``given``: options a person gave, which count as set
    even at their default.

    Raises:
        DataError: an option set to a value that departs from the original's (``--resize
            bilinear``, ``--mixed-precision``, another backbone, ...), named.
    """
    return faithful_settings(options, data, given)


#: How the command line names the arguments of :func:`run_grid` that are a run's settings.
_RUN_ARGUMENTS = {"method": "--methods", "params": "--set / --params"}


def _check_faithful_runs(methods: Sequence[str], protocol: str, epochs: int,
                         method_overrides: Mapping | None) -> None:
    """Refuse the arguments of :func:`run_grid` that make a run depart from the original."""
    check_faithful("run", {"protocol": protocol, "epochs": epochs}, _RUN_ARGUMENTS)
    for name in methods:
        check_faithful("run", {"method": name}, _RUN_ARGUMENTS)
        given = (method_overrides or {}).get(name)
        check_faithful("run", {"params": params_key(given or {})}, _RUN_ARGUMENTS)


def experiment_naming(data: str | os.PathLike) -> str:
    """"nuswide" for a NUS-WIDE data folder, else "coco": which of the original's experiment
    names its runs get (:func:`mlml_tf.files.layout.data_set`)."""
    return "nuswide" if data_set(data) == "nuswide" else "coco"


def grid_cells(methods: Sequence[str], ratios: Sequence[float], folds: Sequence[int],
               shard: tuple[int, int] = (1, 1), protocol: str = PAPER.name,
               counts: Sequence[int] = (FPC_DEFAULT_COUNT,)) -> list[tuple]:
    """The cells of the grid in a fixed order, this shard's share only: ``(method, ratio, fold,
    protocol, count)`` for every setting of the protocol (:meth:`mlml_tf.files.protocols.
    Protocol.grid_settings`: its ``ratios``, its ``counts`` or its one setting), fold and
    method."""
    i, n = shard
    if not 1 <= i <= n:
        raise DataError(f"shard {i}/{n}: need 1 <= i <= n")
    chosen = find_protocol(protocol)
    cells = [(m, ratio, int(k), chosen.name, count)
             for ratio, count in chosen.grid_settings(ratios, counts)
             for k in folds for m in methods]
    return cells[i - 1 :: n]


def grid_defaults(data: str | os.PathLike,
                  protocol: str = PAPER.name) -> tuple[list[float], list[int]]:
    """Ratios and folds recorded in the data folder's manifest (or, in a folder without one, as
    the authors published it, those its files name): the ratios of the paper's split (the
    paper's when absent) or, for another protocol of ratios (RPS), those its folders were
    written with (its default when absent)."""
    manifest = read_manifest(data)
    split = manifest.get("split") or found_split(data)
    folds = list(range(1, split.get("n_folds", 4) + 1))
    chosen = find_protocol(protocol)
    if chosen.value != "ratio" or chosen.original_layout:
        return split.get("ratios", list(PAPER_RATIOS)), folds
    written = [entry["value"] for entry in manifest.get("protocols", {}).values()
               if entry["protocol"] == chosen.name]
    return written or list(chosen.defaults), folds


def _image_runs(data: str | os.PathLike, options: GridOptions, verbose: int | str = "auto"):
    """The ``on_images`` of :func:`run_cells` for runs that train the backbone's batch norm on
    batch statistics: digest and training of a run on the images themselves."""
    if options.images is None:
        raise DataError("--images is needed to train on images: the folder of the images")
    ids = list(read_complete_labels(data).index)
    paths = image_files(data, ids, options.images, options.image_pattern)
    nuswide = nuswide_folder(data)
    settings = {"backbone": options.backbone, "weights": options.weights, "hub": options.hub,
                "image_size": options.image_size, "scaling": options.scaling,
                "resize": options.resize, "rgb_only": nuswide and not options.keep_grayscale,
                "jpeg_idct": options.jpeg_idct}

    def on_images(config: RunConfig, run_data):
        def train(run_dir):
            train_run_on_images(data, paths, ids, run_dir, config, run_data=run_data,
                                skip_bad=options.skip_bad_images or nuswide,
                                verbose=verbose, faithful=is_faithful(options, config),
                                **settings)

        return image_run_digest(config, run_data, paths, ids, **settings), train

    return on_images


def run_config(name: str, ratio: float, fold: int, protocol: str = PAPER.name,
               count: int = FPC_DEFAULT_COUNT, epochs: int = 20, loss_input: str = "logits",
               overrides: Mapping | None = None, params: Mapping | None = None) -> RunConfig:
    """The settings of one run of the grid. ``loss_input`` applies to the paper's methods (the
    others read logits, or probabilities through their objective's sigmoid): "original" reads
    each method's logits or clipped probabilities as the original did."""
    chosen = method(name)
    from_logits = (not chosen.loss_input or loss_input == "logits"
                   or (loss_input == "original" and chosen.original_from_logits))
    return RunConfig(method=name, ratio=ratio, fold=fold, epochs=epochs, protocol=protocol,
                     count=count, params=params_key(method_params(name, params)
                                                    if params else {}),
                     **{"from_logits": from_logits, **(overrides or {})})


def auxiliary_prior(data: str | os.PathLike, out: str | os.PathLike, cache: FeatureCache,
                    config: RunConfig, verbose: int | str = "auto") -> Path | None:
    """The class prior that the run ``config`` reads from an auxiliary model
    (:attr:`mlml_tf.methods.method.Method.auxiliary`: CSL's selective mode), or None where it
    reads none.

    The temporary model is trained once per protocol setting and fold, as a run of its own
    under ``out/priors/`` (resumable like any other), and its ``class_prior.csv`` (class,
    prior) is what the runs read; its bytes are part of their digest.
    """
    auxiliary = method(config.method).auxiliary
    changes = auxiliary(run_params(config)) if auxiliary else None
    if changes is None:
        return None
    label, params = changes
    temporary = dataclasses.replace(config, params=params_key({**dict(config.params), **params}))
    run_data = load_run_data(data, temporary)
    digest = run_digest(temporary, run_data, cache)
    name = experiment_name(config.method, config.ratio, config.fold, protocol=config.protocol,
                           count=config.count)
    name = name.replace(f"{config.method}_", f"{config.method}-{label}_", 1)
    run_dir = Path(out) / "priors" / name / digest[:12]
    classes = table_classes(run_files_of(data, temporary)["train"])
    with folder_lock(run_dir):
        return estimate_class_prior(cache, run_dir, temporary, run_data, classes, data=data,
                                    verbose=verbose)


@dataclasses.dataclass
class _Cell:
    """A run of the grid still to train: its folder, settings and arrays."""

    config: RunConfig
    run_data: object
    digest: str
    run_dir: Path
    train: object = None


def run_cells(data: str | os.PathLike, out: str | os.PathLike, cache: FeatureCache | None,
              cells: Sequence[tuple], epochs: int = 20, config_overrides: dict | None = None,
              verbose: int | str = "auto", naming: str = "coco", loss_input: str = "logits",
              on_images=None, together: int | None = None,
              backup_minutes: float = BACKUP_MINUTES,
              method_overrides: Mapping[str, Mapping] | None = None) -> dict[str, int]:
    """Train every cell not yet complete; return counts of done, skipped and busy runs.

    ``cells``: as :func:`grid_cells` gives them (``(method, ratio, fold)`` is a cell of the
    paper's protocol). ``together``: the runs that share their training rows and settings
    (every method and ratio of a fold, :func:`mlml_tf.training.runs.together_key`) train side
    by side in one model (:func:`mlml_tf.training.runs.train_runs`), each to the result it gets
    alone, at most ``together`` at a time (None: :func:`mlml_tf.training.runs.heads_per_model`);
    1 trains them one by one. ``loss_input`` sets each run's ``from_logits`` (see
    :func:`run_config`). ``on_images``, for runs whose backbone trains with them (batch
    statistics, no feature cache), is a function ``(config, run_data) -> (digest,
    train(run_dir))`` used instead of ``cache``; those runs train one by one.
    ``method_overrides``: per method, the hyper-parameters that differ from its defaults. A run
    whose method reads an auxiliary model's prior gets it from :func:`auxiliary_prior`.
    """
    counts = {"trained": 0, "already_complete": 0, "running_elsewhere": 0}
    groups: dict[str, list[_Cell]] = {}
    for cell in cells:
        name, ratio, fold, protocol, count = (*cell, PAPER.name, FPC_DEFAULT_COUNT)[:5]
        config = run_config(name, ratio, fold, protocol, count, epochs, loss_input,
                            config_overrides, (method_overrides or {}).get(name))
        prior = None if on_images else auxiliary_prior(data, out, cache, config, verbose)
        run_data = load_run_data(data, config, prior=prior)
        train = None
        if on_images is None:
            digest = run_digest(config, run_data, cache)
        else:
            digest, train = on_images(config, run_data)
        run_dir = (Path(out) / experiment_name(name, ratio, fold, naming, protocol, count)
                   / digest[:12])
        if is_complete(run_dir, digest):
            counts["already_complete"] += 1
            continue
        key = together_key(config, run_data) if train is None else digest
        groups.setdefault(key, []).append(_Cell(config, run_data, digest, run_dir, train))
    size = together or 1
    if together is None and cache is not None and groups:
        first = next(iter(groups.values()))[0]
        size = heads_per_model(cache.shape, len(first.run_data.classes), first.config.head)
    chunks = [group[i : i + size] for group in groups.values()
              for i in range(0, len(group), size)]
    for group in chunks:
        with contextlib.ExitStack() as locks:
            mine = []
            for cell in group:
                if not locks.enter_context(folder_lock(cell.run_dir, blocking=False)):
                    log.info("%s: being trained by another process, left to it", cell.run_dir)
                    counts["running_elsewhere"] += 1
                elif is_complete(cell.run_dir, cell.digest):
                    counts["already_complete"] += 1
                else:
                    # Left by an attempt killed while writing; under the lock no one else writes.
                    remove_stale_temporaries(cell.run_dir)
                    mine.append(cell)
            for cell in mine:
                log.info("%s %s fold=%s -> %s", cell.config.method,
                         find_protocol(cell.config.protocol).setting(cell.config.protocol_value),
                         cell.config.fold, cell.run_dir)
            if len(mine) > 1:
                log.info("training these %d runs side by side", len(mine))
            if mine and mine[0].train is not None:
                mine[0].train(mine[0].run_dir)
            elif mine:
                train_runs(data, cache, [(c.run_dir, c.config, c.run_data) for c in mine],
                           verbose=verbose, backup_minutes=backup_minutes)
            counts["trained"] += len(mine)
        keras.backend.clear_session()
    return counts


def _check_grid(data, methods: Sequence[str], protocol: str, epochs: int,
                options: GridOptions, method_overrides: Mapping | None,
                cells: Sequence[tuple] = ()) -> None:
    """Refuse, before anything is written, what the grid cannot train: the complete labels
    (a published folder's test files of ratio 0.0 must partition the set) and the authors'
    CB-WCE weight file where its runs read it are checked here."""
    if options.faithful_batch_norm and (not find_protocol(protocol).original_layout
                                        or set(methods) - set(PAPER_METHODS)):
        raise DataError("training on images with batch statistics (--faithful) is for the "
                        "paper's methods and protocol (and its stream of images carries no "
                        "row index, which ROLE, LL-R, LL-Ct, LL-Cp and PL-Shrink need)")
    classes = read_complete_labels(data).shape[1]
    readers = [cell for cell in cells if cell[0] == "cb-wce"]
    if options.cb_source == "file" and readers:
        chosen = find_protocol(protocol)
        trains = [chosen.files(data, chosen.value_of(ratio, count), fold)["train"]
                  for _, ratio, fold, _, count in readers]
        check_global_weights(Path(data) / GLOBAL_WEIGHTS, list(dict.fromkeys(trains)),
                             data_classes(data))
    for name in dict.fromkeys(methods):
        check_settings(name, method_params(name, (method_overrides or {}).get(name)), epochs,
                       classes)
        if method(name).needs_rows and options.strategy != "default":
            raise DataError(f"method {name!r} updates per-row state inside each step, which "
                            f"--strategy {options.strategy} would split over replicas: train "
                            "it with the default strategy")


def run_grid(data: str | os.PathLike, out: str | os.PathLike,
             methods: Sequence[str] = PAPER_METHODS, ratios: Sequence[float] | None = None,
             folds: Sequence[int] | None = None, epochs: int = 20,
             shard: tuple[int, int] = (1, 1), options: GridOptions | None = None,
             faithful: bool = False, protocol: str = PAPER.name,
             counts: Sequence[int] | None = None,
             method_overrides: Mapping[str, Mapping] | None = None) -> str:
    """Feature cache, then every run of this shard, then the summary table of what is done.

    ``options``: what every run shares (default: every default). ``faithful=True`` applies
    :func:`faithful_options` to them and refuses, before anything is written, an option, a
    method (only the paper's), a protocol (only the paper's), an epoch count (20) or a
    method's hyper-parameter that departs from the original. ``protocol``: whose
    training labels the runs read (:data:`mlml_tf.files.protocols.PROTOCOLS`; the paper's by
    default, "rps" with ``ratios`` its probabilities, "fpc" with its ``counts``), as ``mlml-tf
    split --protocol`` wrote them. ``method_overrides``: per method, the hyper-parameters that
    differ from its defaults.
    """
    find_protocol(protocol)
    options = options or GridOptions()
    if faithful:
        options = faithful_options(options, data)
        _check_faithful_runs(methods, protocol, epochs, method_overrides)
    default_ratios, default_folds = grid_defaults(data, protocol)
    ratios = ratios or default_ratios
    cells = grid_cells(methods, ratios, folds or default_folds, shard, protocol,
                       counts or [FPC_DEFAULT_COUNT])
    _check_grid(data, methods, protocol, epochs, options, method_overrides, cells)
    naming = experiment_naming(data) if options.naming == "auto" else options.naming
    if options.faithful_batch_norm:
        cache, on_images = None, _image_runs(data, options)
    else:
        cache, on_images = cache_for_data_folder(data, Path(out) / "features", options), None
    done = run_cells(data, out, cache, cells, epochs=epochs,
                     config_overrides=shared(options, "run"), naming=naming,
                     loss_input=options.loss_input, on_images=on_images,
                     together=options.together, backup_minutes=options.backup_minutes,
                     method_overrides=method_overrides)
    lines = [f"shard {shard[0]}/{shard[1]}: {len(cells)} runs: "
             + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in done.items())]
    runs = collect_runs(out, ratios)
    if len(runs):
        lines.append(format_table_markdown(summary_table(runs)))
    return "\n".join(lines)
