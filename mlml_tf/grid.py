"""The experiment grid: every (method, ratio, fold) of a data folder, resumable and shardable.

Each run lives in ``<out>/<experiment>/<settings digest>/`` (experiment names as the original,
SPEC 7) and counts as done only once its ``complete.json`` holds the digest of its settings. A
run is claimed with a lock, so several processes (``--shard i/n``, or the same command started
twice) can share one output folder; a killed run resumes from its BackupAndRestore checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlml_tf.cache import FeatureCache, folder_lock
from mlml_tf.errors import DataError, remove_stale_temporaries
from mlml_tf.labels import FPC_DEFAULT_COUNT
from mlml_tf.layout import data_set, read_manifest
from mlml_tf.methods import PAPER_METHODS, check_settings, method, method_params, params_key
from mlml_tf.runs import NAMING
from mlml_tf.train import (
    BACKUP_MINUTES,
    RunConfig,
    is_complete,
    load_run_data,
    run_digest,
)

#: How the loss of a run is computed: from logits (stable), from clipped probabilities, or as
#: the original: CE from logits, IM-WCE and CB-WCE from clipped probabilities (SPEC 6).
LOSS_INPUTS: tuple[str, ...] = ("logits", "probabilities", "original")


@dataclasses.dataclass(frozen=True)
class GridOptions:
    """Settings shared by every run of a grid (see ``mlml-tf run --help``).

    ``resize``: "skimage", skimage's anti-aliased resize as the original used it, or
    "bilinear", TensorFlow's plain bilinear resize (about twice as fast).
    ``keep_grayscale``: keep the NUS-WIDE images not stored as RGB, which the original's
    preprocessing could not read and left out.
    ``naming``: experiment folder names of the original's COCO runs
    (``PosLimited_original_CE_balanced_ratio0.2split_1``) or NUS-WIDE runs
    (``nus_3labels_original_CE0.2split_1``); "auto" takes NUS-WIDE's for a data folder that
    :func:`experiment_naming` recognizes as NUS-WIDE.
    ``mixed_precision``, ``jit_compile``: see :class:`mlml_tf.train.RunConfig`.
    ``together``: how many runs of a fold train side by side in one model (see
    :func:`run_cells`); None: as many as a quarter of the memory holds; 1 trains one run at a
    time.
    ``backup_minutes``: the least time between two checkpoints of a training, written at epoch
    ends (0: every epoch); a kill loses at most that much training, never changes a result.
    """

    images: Path | None = None
    image_pattern: str = "{id}.jpg"
    backbone: str = "InceptionResNetV2"
    weights: str | None = "imagenet"
    hub: str | None = None
    head: str = "original"
    scaling: str = "imagenet"
    image_size: int = 224
    resize: str = "skimage"
    keep_grayscale: bool = False
    batch_size: int = 32
    learning_rate: float = 0.1
    lr_schedule: str = "constant"
    steps_per_epoch: str = "run"
    shuffle_buffer: int = 0
    loss_input: str = "logits"
    cb_source: str = "observed"
    pos_weight_source: str = "run"
    faithful_scoring: bool = False
    faithful_batch_norm: bool = False
    validation_fraction: float = 0.0
    skip_bad_images: bool = False
    strategy: str = "default"
    mixed_precision: bool = False
    jit_compile: bool | str = "auto"
    naming: str = "auto"
    together: int | None = None
    backup_minutes: float = BACKUP_MINUTES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss_input not in LOSS_INPUTS:
            raise DataError(f"loss_input must be one of {', '.join(LOSS_INPUTS)}, "
                            f"not {self.loss_input!r}")
        if self.resize not in ("skimage", "bilinear"):
            raise DataError(f"resize must be 'skimage' or 'bilinear', not {self.resize!r}")
        if self.naming not in ("auto", *NAMING):
            raise DataError(f"naming must be 'auto' or one of {', '.join(NAMING)}, "
                            f"not {self.naming!r}")


def faithful_options(options: GridOptions, data: str | os.PathLike) -> GridOptions:
    """``options`` with every departure from the original undone (``mlml-tf run --faithful``).

    Backbone batch norm on batch statistics (so no feature cache: the backbone runs at every
    step), the loss of IM-WCE and CB-WCE on clipped probabilities (CE on logits, as the
    original), P from fold 1's complete labels, CB-WCE weights counted over the complete labels
    of the whole set (the authors' ``negative_weights_global.csv`` when the data folder has
    it), floor(N1 / 32) steps per epoch over a repeating stream through a shuffle buffer of 100,
    and the test rows predicted in full batches of that shuffled stream, the rest scored as
    zeros. The learning rate stays as given: the original's constant 0.1 is the default.
    """
    from mlml_tf.train import GLOBAL_WEIGHTS, ORIGINAL_SHUFFLE_BUFFER

    published = (Path(data) / GLOBAL_WEIGHTS).exists()
    return dataclasses.replace(
        options, faithful_batch_norm=True, loss_input="original",
        pos_weight_source="original", cb_source="file" if published else "oracle",
        steps_per_epoch="original", shuffle_buffer=ORIGINAL_SHUFFLE_BUFFER,
        faithful_scoring=True,
    )


def experiment_naming(data: str | os.PathLike) -> str:
    """"nuswide" for a NUS-WIDE data folder, else "coco": which of the original's experiment
    names its runs get.

    See :func:`mlml_tf.layout.data_set`.
    """
    return "nuswide" if data_set(data) == "nuswide" else "coco"


def grid_cells(methods: Sequence[str], ratios: Sequence[float], folds: Sequence[int],
               shard: tuple[int, int] = (1, 1), protocol: str = "paper",
               counts: Sequence[int] = (FPC_DEFAULT_COUNT,)) -> list[tuple]:
    """The cells of the grid in a fixed order, this shard's share only: ``(method, ratio,
    fold)`` under the paper's protocol, ``(method, ratio, fold, protocol, count)`` under the
    others (``ratios`` are RPS's probabilities; FPC takes its ``counts``; single positive has
    one setting)."""
    i, n = shard
    if not 1 <= i <= n:
        raise DataError(f"shard {i}/{n}: need 1 <= i <= n")
    if protocol == "paper":
        cells = [(m, float(r), int(k)) for r in ratios for k in folds for m in methods]
    elif protocol == "rps":
        cells = [(m, float(r), int(k), "rps", FPC_DEFAULT_COUNT)
                 for r in ratios for k in folds for m in methods]
    elif protocol == "fpc":
        cells = [(m, 0.0, int(k), "fpc", int(c)) for c in counts for k in folds for m in methods]
    else:
        cells = [(m, 0.0, int(k), protocol, FPC_DEFAULT_COUNT) for k in folds for m in methods]
    return cells[i - 1 :: n]


def grid_defaults(data: str | os.PathLike) -> tuple[list[float], list[int]]:
    """Ratios and folds recorded in the data folder's manifest (the paper's when absent)."""
    split = read_manifest(data).get("split", {})
    ratios = split.get("ratios", [0.0, 0.25, 0.5, 0.75])
    folds = list(range(1, split.get("n_folds", 4) + 1))
    return ratios, folds


def _image_runs(data: str | os.PathLike, options: GridOptions, verbose: int | str = "auto"):
    """The ``on_images`` of :func:`run_cells` for runs that train the backbone's batch norm on
    batch statistics: digest and training of a run on the images themselves."""
    from mlml_tf.end_to_end import image_run_digest, train_run_on_images
    from mlml_tf.features import image_files, nuswide_folder
    from mlml_tf.layout import read_groundtruth

    if options.images is None:
        raise DataError("--images is needed to train on images: the folder of the images")
    ids = list(read_groundtruth(data).index)
    paths = image_files(data, ids, options.images, options.image_pattern)
    nuswide = nuswide_folder(data)
    settings = {"backbone": options.backbone, "weights": options.weights, "hub": options.hub,
                "image_size": options.image_size, "scaling": options.scaling,
                "resize": options.resize, "rgb_only": nuswide and not options.keep_grayscale}

    def on_images(config: RunConfig, run_data):
        def train(run_dir):
            train_run_on_images(data, paths, ids, run_dir, config, run_data=run_data,
                                skip_bad=options.skip_bad_images or nuswide,
                                verbose=verbose, **settings)

        return image_run_digest(config, run_data, paths, ids, **settings), train

    return on_images


def run_config(name: str, ratio: float, fold: int, protocol: str = "paper",
               count: int = FPC_DEFAULT_COUNT, epochs: int = 20, loss_input: str = "logits",
               overrides: Mapping | None = None, params: Mapping | None = None) -> RunConfig:
    """The settings of one run of the grid. ``loss_input`` applies to the paper's methods (the
    others read logits, or probabilities through the trainer's sigmoid)."""
    from_logits = (not method(name).loss_input or loss_input == "logits"
                   or (loss_input == "original" and name == "ce"))
    return RunConfig(method=name, ratio=ratio, fold=fold, epochs=epochs, protocol=protocol,
                     count=count, params=params_key(method_params(name, params)
                                                    if params else {}),
                     **{"from_logits": from_logits, **(overrides or {})})


def _setting(config: RunConfig) -> str:
    if config.protocol == "paper":
        return f"ratio={config.ratio}"
    if config.protocol == "rps":
        return f"rps={config.ratio}"
    return f"fpc={config.count}" if config.protocol == "fpc" else config.protocol


def needs_class_prior(config: RunConfig) -> bool:
    """Whether the run is CSL in selective mode with the prior of a temporary model."""
    from mlml_tf.train import run_params

    if config.method != "csl":
        return False
    params = run_params(config)
    return params["mode"] == "selective" and params["prior"] == "auto"


def class_prior(data: str | os.PathLike, out: str | os.PathLike, cache: FeatureCache,
                config: RunConfig, verbose: int | str = "auto", log=print) -> Path:
    """CSL's class prior for the protocol and fold of ``config``: the file of a temporary model,
    trained (once) as the CSL run in ``"ignore"`` mode (Ben-Baruch et al., CVPR 2022).

    By default (``prior_estimate="clean"``) the prior is the mean predicted probability of
    each class over the training rows, a clean pass of the trained temporary model; with
    ``"running"`` it is the authors' estimate, the mean over every training batch of every
    epoch as the model trained. The temporary run lives under ``out/priors/`` as a run of its
    own (resumable like any other); its ``class_prior.csv`` (class, prior) is what the CSL runs
    read, and its bytes are part of their digest.
    """
    from mlml_tf.runs import experiment_name
    from mlml_tf.train import estimate_class_prior, run_params

    params = run_params(config)
    temporary = dataclasses.replace(
        config, params=params_key({**dict(config.params), "mode": "ignore", "prior": "none"}))
    run_data = load_run_data(data, temporary)
    digest = run_digest(temporary, run_data, cache)
    value = {"paper": config.ratio, "rps": config.ratio}.get(config.protocol, config.count)
    name = experiment_name("csl", value, config.fold, protocol=config.protocol,
                           count=config.count).replace("csl_", "csl-ignore_", 1)
    run_dir = Path(out) / "priors" / name / digest[:12]
    with folder_lock(run_dir):
        path = estimate_class_prior(data, cache, run_dir, temporary, run_data,
                                    params.get("prior_estimate", "clean"), verbose=verbose,
                                    log=log)
    return path


@dataclasses.dataclass
class _Cell:
    """A run of the grid still to train: its folder, settings and arrays."""

    method: str
    ratio: float
    fold: int
    config: RunConfig
    run_data: object
    digest: str
    run_dir: Path
    train: object = None


def run_cells(data: str | os.PathLike, out: str | os.PathLike, cache: FeatureCache | None,
              cells: Sequence[tuple[str, float, int]], epochs: int = 20,
              config_overrides: dict | None = None, verbose: int | str = "auto",
              log=print, naming: str = "coco", loss_input: str = "logits",
              on_images=None, together: int | None = None,
              backup_minutes: float = BACKUP_MINUTES,
              method_overrides: Mapping[str, Mapping] | None = None) -> dict[str, int]:
    """Train every cell not yet complete; return counts of done, skipped and busy runs.

    ``together``: the runs that share their training rows and settings (every method and ratio
    of a fold, :func:`mlml_tf.train.together_key`) train side by side in one model
    (:func:`mlml_tf.train.train_runs`), each to the result it gets alone, at most ``together``
    at a time (None: :func:`mlml_tf.train.heads_per_model`); 1 trains them one by one.
    ``loss_input`` sets each run's ``from_logits`` (see :data:`LOSS_INPUTS`).
    ``on_images``, for runs whose backbone trains with them (batch statistics, no feature
    cache), is a function ``(config, run_data) -> (digest, train(run_dir))`` used instead of
    ``cache``; those runs train one by one. ``backup_minutes``: see :class:`GridOptions`.
    ``cells``: as :func:`grid_cells` gives them. ``method_overrides``: per method, the
    hyper-parameters that differ from its defaults (:func:`mlml_tf.methods.method_params`). A
    CSL run in selective mode whose prior is "auto" gets the class prior of a temporary model
    (:func:`class_prior`), trained once per protocol and fold and reused.
    """
    import contextlib

    import keras

    from mlml_tf.runs import experiment_name
    from mlml_tf.train import heads_per_model, together_key, train_runs

    counts = {"trained": 0, "already_complete": 0, "running_elsewhere": 0}
    groups: dict[str, list[_Cell]] = {}
    for cell in cells:
        name, ratio, fold, protocol, count = (*cell, "paper", FPC_DEFAULT_COUNT)[:5]
        config = run_config(name, ratio, fold, protocol, count, epochs, loss_input,
                            config_overrides, (method_overrides or {}).get(name))
        prior = None
        if on_images is None and needs_class_prior(config):
            prior = class_prior(data, out, cache, config, verbose=verbose, log=log)
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
        groups.setdefault(key, []).append(
            _Cell(name, ratio, fold, config, run_data, digest, run_dir, train))
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
                    log(f"{cell.run_dir}: being trained by another process, left to it")
                    counts["running_elsewhere"] += 1
                elif is_complete(cell.run_dir, cell.digest):
                    counts["already_complete"] += 1
                else:
                    # Left by an attempt killed while writing; under the lock no one else writes.
                    remove_stale_temporaries(cell.run_dir)
                    mine.append(cell)
            for cell in mine:
                log(f"{cell.method} {_setting(cell.config)} fold={cell.fold} -> {cell.run_dir}")
            if len(mine) > 1:
                log(f"training these {len(mine)} runs side by side")
            if mine and mine[0].train is not None:
                mine[0].train(mine[0].run_dir)
            elif mine:
                train_runs(data, cache, [(c.run_dir, c.config, c.run_data) for c in mine],
                           verbose=verbose, backup_minutes=backup_minutes)
            counts["trained"] += len(mine)
        keras.backend.clear_session()
    return counts


def run_grid(data: str | os.PathLike, out: str | os.PathLike,
             methods: Sequence[str] = PAPER_METHODS, ratios: Sequence[float] | None = None,
             folds: Sequence[int] | None = None, epochs: int = 20,
             shard: tuple[int, int] = (1, 1), options: GridOptions = GridOptions(),
             faithful: bool = False, protocol: str = "paper",
             counts: Sequence[int] | None = None,
             method_overrides: Mapping[str, Mapping] | None = None) -> str:
    """Feature cache, then every run of this shard, then the summary table of what is done.

    ``faithful=True`` applies :func:`faithful_options` to ``options``. ``protocol``: whose
    training labels the runs read (the paper's by default; "rps" with ``ratios`` its
    probabilities, "fpc" with its ``counts``, "single-positive"), as ``mlml-tf split
    --protocol`` wrote them. ``method_overrides``: per method, the hyper-parameters that
    differ from its defaults.
    """
    from mlml_tf.features import cache_for_data_folder
    from mlml_tf.results import collect_runs, format_table_markdown, summary_table

    if faithful:
        options = faithful_options(options, data)
    default_ratios, default_folds = grid_defaults(data)
    if protocol == "rps":
        default_ratios = [entry["value"] for entry in read_manifest(data).get("protocols", {})
                          .values() if entry["protocol"] == "rps"] or [0.5]
    ratios = ratios or default_ratios
    cells = grid_cells(methods, ratios, folds or default_folds, shard, protocol,
                       counts or [FPC_DEFAULT_COUNT])
    if options.faithful_batch_norm and (protocol != "paper" or set(methods) - set(PAPER_METHODS)):
        raise DataError("training on images with batch statistics (--faithful) is for the "
                        "paper's methods and protocol (and its stream of images carries no "
                        "row index, which ROLE, LL-R, LL-Ct, LL-Cp and PL-Shrink need)")
    # Hyper-parameters out of range for this training are refused before anything is written.
    from mlml_tf.layout import GROUNDTRUTH, table_classes

    classes = len(table_classes(Path(data) / GROUNDTRUTH))
    for name in dict.fromkeys(methods):
        check_settings(name, method_params(name, (method_overrides or {}).get(name)), epochs,
                       classes)
        if method(name).objective is not None and options.strategy != "default":
            raise DataError(f"method {name!r} updates per-row state inside each step, which "
                            f"--strategy {options.strategy} would split over replicas: train "
                            "it with the default strategy")
    naming = experiment_naming(data) if options.naming == "auto" else options.naming
    overrides = {
        "batch_size": options.batch_size, "learning_rate": options.learning_rate,
        "lr_schedule": options.lr_schedule, "steps_per_epoch": options.steps_per_epoch,
        "shuffle_buffer": options.shuffle_buffer, "head": options.head, "seed": options.seed,
        "cb_source": options.cb_source, "pos_weight_source": options.pos_weight_source,
        "faithful_scoring": options.faithful_scoring,
        "validation_fraction": options.validation_fraction, "strategy": options.strategy,
        "mixed_precision": options.mixed_precision, "jit_compile": options.jit_compile,
    }
    if options.faithful_batch_norm:
        cache, on_images = None, _image_runs(data, options)
    else:
        cache, on_images = cache_for_data_folder(data, Path(out) / "features", options), None
    done = run_cells(data, out, cache, cells, epochs=epochs, config_overrides=overrides,
                     naming=naming, loss_input=options.loss_input, on_images=on_images,
                     together=options.together, backup_minutes=options.backup_minutes,
                     method_overrides=method_overrides)
    lines = [f"shard {shard[0]}/{shard[1]}: {len(cells)} runs: "
             + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in done.items())]
    runs = collect_runs(out, ratios)
    if len(runs):
        lines.append(format_table_markdown(summary_table(runs)))
    return "\n".join(lines)
