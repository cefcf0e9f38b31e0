"""Helpers for the notebooks in ``notebooks/``: the machine (Colab, Drive, GPU) and the pictures.

The notebooks only call the package, show and explain; what they need beyond the package's
layers lives here: installing the package on Google Colab without touching its TensorFlow,
mounting Google Drive, reporting the accelerator, running a ``mlml-tf`` command, and the plots
of the preprocessing notebooks (label co-occurrence, per-fold positive rates).

Importing this module does not import TensorFlow, nor matplotlib; off Colab every function
works on the local machine and never touches Colab's services.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError, write_bytes_atomic
from mlml_tf.layout import read_groundtruth, read_manifest, read_table, run_files

#: The GitHub repository of the package: ``owner/name``. The notebooks' install cell and their
#: "Open in Colab" links are generated from it (``notebooks/build_notebooks.py``).
REPOSITORY = "OWNER/mlml-tf"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
#: The account in :data:`REPOSITORY` until a real one is set: the notebooks' install cell stops
#: with a message while their ``PACKAGE_SOURCE`` still names it.
PLACEHOLDER_OWNER = "OWNER"
#: Where the notebooks' install cell gets the package by default (their ``PACKAGE_SOURCE``).
PACKAGE_SOURCE = f"git+{REPOSITORY_URL}"
#: Where Colab mounts Google Drive; "My Drive" is ``DRIVE_MOUNT_POINT/MyDrive``.
DRIVE_MOUNT_POINT = "/content/drive"
#: Installed distributions that installing the package's requirements must never replace:
#: Colab's TensorFlow is built against its CUDA, and Keras and numpy must match it.
PROTECTED = ("tensorflow", "keras", "numpy")
DISTRIBUTION = "mlml-tf"


def on_colab() -> bool:
    """Whether this Python runs in a Google Colab kernel (which imports ``google.colab``)."""
    return "google.colab" in sys.modules


def colab_url(notebook: str, branch: str = "main") -> str:
    """The "Open in Colab" address of a notebook of the repository.

    Example:
        >>> colab_url("CE-MSCOCO.ipynb")
        'https://colab.research.google.com/github/OWNER/mlml-tf/blob/main/notebooks/CE-MSCOCO.ipynb'
    """
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{branch}/notebooks/{notebook}"


# ------------------------------------------------------------------------------ installing


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """Requirements of ``distribution`` that are not installed (or not in the required range).

    Raises:
        RuntimeError: a protected package (TensorFlow, Keras, numpy) is installed outside the
            package's range; it is never replaced, so the message says what to do instead.
    """
    from packaging.requirements import Requirement

    missing = []
    for text in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = _installed_version(requirement.name)
        if version is not None and requirement.specifier.contains(version, prereleases=True):
            continue
        if version is not None and requirement.name.lower() in PROTECTED:
            raise RuntimeError(
                f"{distribution} needs {requirement} but {requirement.name} {version} is "
                "installed; it is left as it is (on Colab it matches the runtime's CUDA). Use a "
                "runtime whose TensorFlow is in that range, or install the package by hand."
            )
        missing.append(str(requirement))
    return missing


def install_command(requirements: Sequence[str], constraints: str | os.PathLike) -> list[str]:
    """The pip command that installs ``requirements`` under a constraints file."""
    return [sys.executable, "-m", "pip", "install", "--quiet", *requirements,
            "--constraint", os.fspath(constraints)]


def protected_constraints() -> str:
    """Constraints pinning the installed TensorFlow, Keras and numpy at their versions."""
    pins = [f"{name}=={v}" for name in PROTECTED if (v := _installed_version(name)) is not None]
    return "".join(f"{pin}\n" for pin in pins)


def install_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """Install what the package needs and the machine lacks, holding TensorFlow as it is.

    The notebooks install the package itself with ``pip install --no-deps``; this installs its
    other requirements (on Colab: pycocotools, iterative-stratification, ...) with the installed
    TensorFlow, Keras and numpy pinned, so pip can add packages but never swap those.

    Returns:
        The requirements that were installed (empty when nothing was missing).
    """
    missing = missing_requirements(distribution)
    if not missing:
        return []
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(protected_constraints())
        subprocess.run(install_command(missing, constraints), check=True)
    importlib.invalidate_caches()
    return missing


# ------------------------------------------------------------------------------ the machine


@dataclasses.dataclass(frozen=True)
class Machine:
    """What :func:`setup` found: Colab or not, the Drive folder if mounted, the GPUs."""

    colab: bool
    drive: Path | None
    gpus: tuple[str, ...]


def mount_google_drive(mount_point: str = DRIVE_MOUNT_POINT) -> Path:
    """Mount Google Drive on Colab (Colab asks for permission); return "My Drive"'s folder."""
    if not on_colab():
        raise RuntimeError("Google Drive can be mounted only in a Colab kernel")
    from google.colab import drive

    drive.mount(mount_point)
    return Path(mount_point) / "MyDrive"


def gpu_names(tensorflow: bool = False) -> list[str]:
    """Names of the GPUs: those TensorFlow sees when ``tensorflow`` (what training will use),
    else those ``nvidia-smi`` lists (no TensorFlow import)."""
    if tensorflow:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                for g in gpus]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        result = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def setup(mount_drive: bool = True, needs_gpu: bool = False, install: bool = True) -> Machine:
    """Prepare the kernel for a notebook and say what it runs on.

    On Colab: install the package's missing requirements (never TensorFlow, see
    :func:`install_requirements`) and, if ``mount_drive``, mount Google Drive so that data and
    results outlive the session. Everywhere: report the GPUs; warn when ``needs_gpu`` and there
    is none. Off Colab nothing is installed or mounted.

    Args:
        mount_drive: mount Google Drive at ``/content/drive`` (Colab only).
        needs_gpu: the notebook trains: ask TensorFlow which GPUs it sees, warn if none.
        install: install missing requirements (Colab only).

    Returns:
        A :class:`Machine`.
    """
    colab = on_colab()
    if colab and install:
        installed = install_requirements()
        if installed:
            print("installed: " + ", ".join(installed))
    drive = mount_google_drive() if colab and mount_drive else None
    gpus = tuple(gpu_names(tensorflow=needs_gpu))
    print(f"Colab: {'yes' if colab else 'no'}; Google Drive: "
          + (str(drive) if drive else "not mounted" + ("" if colab else " (not on Colab)")))
    print("GPU: " + (", ".join(gpus) if gpus else "none"))
    if needs_gpu and not gpus:
        hint = (" (Runtime > Change runtime type > GPU)" if colab else "")
        warnings.warn("no GPU found: the feature cache and the training run on the CPU, which "
                      f"is slow at the paper's settings{hint}", stacklevel=2)
    return Machine(colab=colab, drive=drive, gpus=gpus)


def run_command(*args: object) -> None:
    """Run a ``mlml-tf`` command in this kernel, as it would run in a terminal.

    Raises:
        RuntimeError: the command failed; its message (file, line, column) is printed above.
    """
    from mlml_tf.cli import main

    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 2
    if status:
        raise RuntimeError(f"`mlml-tf {' '.join(argv)}` failed with status {status}; "
                           "the message above says why")


def show(paths: Sequence[str | os.PathLike]) -> None:
    """Display the PNG files among ``paths`` (what the plotting functions return)."""
    from IPython.display import Image, display

    for path in paths:
        if Path(path).suffix.lower() == ".png":
            display(Image(filename=os.fspath(path)))


# ------------------------------------------------------------------------------ data folders


def class_names(data: str | os.PathLike) -> list[str]:
    """The class names of a data folder: the manifest's (NUS-WIDE's concepts for its columns
    ``0``..``80``), else the column names of ``groundtruth.csv``."""
    manifest = read_manifest(data)
    names = manifest.get("class_names")
    columns = manifest.get("classes")
    if names and columns and len(names) == len(columns):
        return [str(n) for n in names]
    return [str(c) for c in read_groundtruth(data).columns]


def label_statistics(labels: pd.DataFrame) -> pd.Series:
    """Rows, classes and labels per image of a 0/1 table (SPEC 1 gives them for the paper)."""
    per_row = labels.to_numpy().sum(axis=1)
    per_class = labels.to_numpy().sum(axis=0)
    return pd.Series({
        "images": len(labels),
        "classes": labels.shape[1],
        "labels per image (mean)": round(float(per_row.mean()), 2) if len(labels) else np.nan,
        "labels per image (min)": int(per_row.min()) if len(labels) else 0,
        "labels per image (max)": int(per_row.max()) if len(labels) else 0,
        "classes never positive": int((per_class == 0).sum()),
    }, dtype=object)


def split_counts(manifest: dict) -> pd.DataFrame:
    """One row per fold: training and test rows, and the positives hidden at each ratio."""
    counts = manifest.get("split", {}).get("counts")
    if not counts:
        raise DataError("the manifest records no split (run layout.split first)")
    rows = {}
    for fold, c in counts.items():
        row = {"train rows": c["train"], "test rows": c["test"]}
        row.update({f"hidden at r={r}": n for r, n in c["hidden"].items()})
        rows[int(fold)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "fold"
    return table


def cooccurrence(labels: pd.DataFrame | np.ndarray, normalize: str = "conditional") -> np.ndarray:
    """Label co-occurrence of a 0/1 table.

    Args:
        labels: (rows, classes) 0/1.
        normalize: ``"count"``: entry (a, b) = images with both a and b (the diagonal: images
            with a); ``"conditional"``: P(b | a) = count(a, b) / count(a), the quantity the
            confidence weights of CB-WCE build on (paper eq. 3); a class with no positive gives
            a row of zeros.

    Returns:
        A (classes, classes) float array.
    """
    values = np.asarray(labels, dtype=np.float64)
    counts = values.T @ values
    if normalize == "count":
        return counts
    if normalize != "conditional":
        raise DataError(f"normalize must be 'count' or 'conditional', not {normalize!r}")
    diagonal = np.diag(counts)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(diagonal > 0, counts / np.where(diagonal > 0, diagonal, 1), 0.0)


def _save(figure, out_stem: str | os.PathLike) -> list[Path]:
    from mlml_tf.results import save_figure

    return save_figure(figure, out_stem)


def plot_cooccurrence(
    labels: pd.DataFrame,
    out_stem: str | os.PathLike,
    names: Sequence[str] | None = None,
    normalize: str = "conditional",
) -> list[Path]:
    """Heatmap of :func:`cooccurrence`, classes in column order; written as PNG and PDF.

    Args:
        labels: the 0/1 table (e.g. ``groundtruth.csv``).
        out_stem: path without extension.
        names: class names for the axes (default: the columns).
        normalize: as in :func:`cooccurrence`.

    Returns:
        The written paths, PNG then PDF.
    """
    from matplotlib.figure import Figure

    names = [str(n) for n in (names if names is not None else labels.columns)]
    if len(names) != labels.shape[1]:
        raise DataError(f"{len(names)} names for {labels.shape[1]} classes")
    matrix = cooccurrence(labels, normalize)
    n = len(names)
    side = min(14.0, max(5.0, 0.16 * n + 2))
    figure = Figure(figsize=(side + 1, side))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="viridis", interpolation="nearest",
                      vmin=0, vmax=1 if normalize == "conditional" else None)
    fontsize = 8 if n <= 30 else 5
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    if normalize == "conditional":
        ax.set_title("P(column class | row class)")
        ax.set_xlabel("co-occurring class")
        ax.set_ylabel("given class")
    else:
        ax.set_title("images with both classes")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    figure.tight_layout()
    return _save(figure, out_stem)


def plot_examples(data: str | os.PathLike, image_root: str | os.PathLike,
                  out_stem: str | os.PathLike, n: int = 8) -> list[Path]:
    """The first ``n`` images of a data folder, each titled with its labels; PNG and PDF.

    Args:
        data: a data folder with ``groundtruth.csv`` and ``images.csv``.
        image_root: the folder the files of ``images.csv`` are relative to.
        out_stem: path without extension.
        n: number of images.

    Returns:
        The written paths, PNG then PDF.
    """
    from matplotlib.figure import Figure
    from PIL import Image

    from mlml_tf.features import image_files

    labels = read_groundtruth(data).iloc[:n]
    names = np.array(class_names(data))
    paths = image_files(data, list(labels.index), image_root)
    columns = min(4, len(paths))
    rows = -(-len(paths) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, path, (sample, row) in zip(axes, paths, labels.iterrows(), strict=False):
        with Image.open(path) as image:
            ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(f"{sample}: " + ", ".join(names[row.to_numpy() == 1]), fontsize=8,
                     wrap=True)
    for ax in axes:
        ax.axis("off")
    figure.tight_layout()
    return _save(figure, out_stem)


def fold_positive_rates(data: str | os.PathLike) -> pd.DataFrame:
    """Positive rate of each class in the whole set and in each test fold (SPEC 2).

    Iterative stratification keeps every test fold's rate close to the whole set's; the
    published COCO folds stay within 0.007.

    Returns:
        Index: class names; columns ``all``, then ``fold 1`` .. ``fold k`` (test rows of each
        fold), rows in descending order of ``all``.
    """
    manifest = read_manifest(data)
    split = manifest.get("split")
    if not split:
        raise DataError("the data folder has no split yet (run layout.split first)",
                        file=Path(data) / "manifest.json")
    truth = read_groundtruth(data)
    ratio = split["ratios"][0]
    rates = {"all": truth.mean(axis=0)}
    for fold in range(1, split["n_folds"] + 1):
        test = read_table(run_files(data, ratio, fold)["test"])
        rates[f"fold {fold}"] = test.reindex(columns=truth.columns).mean(axis=0)
    table = pd.DataFrame(rates)
    table.index = class_names(data)
    return table.sort_values("all", ascending=False, kind="stable")


def fold_rate_gaps(rates: pd.DataFrame) -> pd.DataFrame:
    """For each test fold, the largest difference from the whole set's positive rate and the
    class where it occurs (``rates`` from :func:`fold_positive_rates`)."""
    gaps = rates.drop(columns="all").sub(rates["all"], axis=0).abs()
    return pd.DataFrame({"largest gap": gaps.max(axis=0), "class": gaps.idxmax(axis=0)})


def plot_fold_positive_rates(rates: pd.DataFrame, out_stem: str | os.PathLike,
                             top: int | None = None) -> list[Path]:
    """Per-class positive rates of the test folds against the whole set; PNG and PDF.

    Top panel: the rate in the whole set (bars) and in each test fold (markers); bottom panel:
    each fold's difference from the whole set.

    Args:
        rates: as :func:`fold_positive_rates` returns them.
        out_stem: path without extension.
        top: show only the ``top`` most frequent classes (default: all).

    Returns:
        The written paths, PNG then PDF.
    """
    from matplotlib.figure import Figure

    shown = rates.iloc[:top] if top else rates
    folds = [c for c in shown.columns if c != "all"]
    x = np.arange(len(shown))
    figure = Figure(figsize=(max(6.0, 0.14 * len(shown) + 3), 6))
    upper, lower = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    upper.bar(x, shown["all"].to_numpy(), color="0.8", edgecolor="0.5", label="whole set")
    lower.axhline(0, color="0.5", linewidth=0.8)
    for fold in folds:
        upper.plot(x, shown[fold].to_numpy(), marker=".", linestyle="none", label=f"test {fold}")
        lower.plot(x, (shown[fold] - shown["all"]).to_numpy(), marker=".", linestyle="none")
    upper.set_ylabel("positive rate")
    upper.legend(fontsize="small", ncol=max(1, len(folds) // 2 + 1))
    lower.set_ylabel("fold - whole set")
    lower.set_xticks(x, list(shown.index), rotation=90, fontsize=8 if len(shown) <= 30 else 5)
    for ax in (upper, lower):
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, len(shown) - 0.4)
    figure.tight_layout()
    return _save(figure, out_stem)


# ------------------------------------------------------------------------------ training


def entry_weight_summary(data: str | os.PathLike, method: str, ratio: float, fold: int,
                         **config) -> pd.DataFrame:
    """What a method's loss weighs, per class, in the training rows of one (ratio, fold).

    The per-entry weight is W = y * P + (1 - y) * w̄ (SPEC 6): P on observed positives, w̄ on
    observed zeros, among them the hidden positives. CE has w̄ = 1, IM-WCE 0 on hidden positives
    (an oracle), CB-WCE the confidence of paper eq. 3.

    Args:
        data: the data folder.
        method, ratio, fold: the run.
        **config: other :class:`mlml_tf.train.RunConfig` fields (``cb_source``, ...).

    Returns:
        Index: class names; columns ``observed positives``, ``P``, ``mean w̄ on zeros``,
        ``zeros with w̄ < 1`` and ``hidden positives`` (known from the complete labels; the
        model never sees them).
    """
    from mlml_tf.train import RunConfig, load_run_data

    run = load_run_data(data, RunConfig(method=method, ratio=ratio, fold=fold, **config))
    complete = read_groundtruth(data).loc[run.train_ids].to_numpy()
    zeros = run.train_labels == 0
    weights = np.where(zeros, run.weights, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_zero = np.nanmean(weights, axis=0)
    table = pd.DataFrame({
        "observed positives": (~zeros).sum(axis=0),
        "P": run.pos_weight,
        "mean w̄ on zeros": mean_zero,
        "zeros with w̄ < 1": (zeros & (run.weights < 1)).sum(axis=0),
        "hidden positives": (complete - run.train_labels).sum(axis=0).astype(int),
    }, index=class_names(data))
    return table.sort_values("observed positives", ascending=False, kind="stable")


# ------------------------------------------------------------------------------ results


#: Micro ROC-AUC of the original's training logs, COCO fold 1 (SPEC 8), by method and ratio.
ORIGINAL_FOLD1_ROC_AUC: dict[str, dict[float, float]] = {
    "ce": {0.0: 0.9135, 0.25: 0.9059, 0.5: 0.9006, 0.75: 0.8793},
    "im-wce": {0.0: 0.9146, 0.25: 0.9107, 0.5: 0.9062, 0.75: 0.8913},
}


def grid_coverage(runs: pd.DataFrame) -> pd.DataFrame:
    """Folds found per method (rows) and ratio (columns): where the grid still has holes."""
    from mlml_tf.results import METHOD_LABELS, METHODS

    table = runs.pivot_table(index="method", columns="ratio", values="fold", aggfunc="count",
                             fill_value=0)
    order = [m for m in METHODS if m in table.index] + [m for m in table.index if m not in METHODS]
    table = table.loc[order]
    table.index = [METHOD_LABELS.get(m, m) for m in table.index]
    return table


def compare_with_original_logs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fold-1 micro ROC-AUC of ``runs`` beside the original's logged values (COCO, SPEC 8)."""
    rows = []
    for method, by_ratio in ORIGINAL_FOLD1_ROC_AUC.items():
        for ratio, original in by_ratio.items():
            found = runs[(runs["method"] == method) & (runs["fold"] == 1)
                         & np.isclose(runs["ratio"].to_numpy(np.float64), ratio)]
            rows.append({"method": method, "ratio": ratio, "original": original,
                         "these runs": float(found["roc_auc_micro"].iloc[0]) if len(found)
                         else np.nan})
    return pd.DataFrame(rows)


def reports_at_ratio(runs: pd.DataFrame, ratio: float,
                     names: Sequence[str] | None = None,
                     fold: int | None = None) -> dict[str, list[pd.DataFrame]]:
    """Per-class reports of the runs at ``ratio`` (and ``fold``, or every fold), by method,
    with class names.

    ``names`` name the columns of runs of the original layout, which store none, and of runs
    whose classes are column numbers (NUS-WIDE's ``0``..``80``); runs that carry names keep them.

    Returns:
        method -> one report per fold, as :func:`mlml_tf.results.plot_true_positives` takes them.
    """
    from mlml_tf.results import read_run

    chosen = runs[np.isclose(runs["ratio"].to_numpy(np.float64), ratio)]
    if fold is not None:
        chosen = chosen[chosen["fold"] == fold]
    if chosen.empty:
        raise DataError(f"no run at ratio {ratio}" + ("" if fold is None else f", fold {fold}")
                        + f"; the runs have ratios {sorted(runs['ratio'].unique().tolist())} "
                        f"and folds {sorted(runs['fold'].unique().tolist())}")
    names = None if names is None else [str(n) for n in names]
    reports: dict[str, list[pd.DataFrame]] = {}
    for method, run_dir in zip(chosen["method"], chosen["run_dir"], strict=True):
        report = read_run(run_dir, class_names=names)["report"]
        numbered = [str(i) for i in range(len(report))]
        if names is not None and len(names) == len(report) and list(report.index) == numbered:
            report = report.set_axis(names)
        reports.setdefault(method, []).append(report)
    return reports


def save_table(table: pd.DataFrame, out_stem: str | os.PathLike) -> list[Path]:
    """Write a :func:`mlml_tf.results.summary_table` as Markdown (mean ± std) and CSV."""
    from mlml_tf.results import format_table_markdown

    markdown, csv = Path(f"{os.fspath(out_stem)}.md"), Path(f"{os.fspath(out_stem)}.csv")
    write_bytes_atomic(markdown, format_table_markdown(table).encode())
    flat = table.copy()
    flat.columns = ["_".join(str(p) for p in c) for c in table.columns]
    write_bytes_atomic(csv, flat.to_csv(lineterminator="\n").encode())
    return [markdown, csv]


#: The classes of :func:`own_data_example`, each the set of skimage photographs (by index in
#: ``EXAMPLE_PHOTOGRAPHS``) it is true of: what a picture shows decides its labels.
EXAMPLE_PHOTOGRAPHS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field",
    "immunohistochemistry", "clock", "moon", "page", "text", "brick", "grass", "gravel",
    "colorwheel", "retina", "stereo_motorcycle")
EXAMPLE_CLASSES: dict[str, tuple[int, ...]] = {
    "colour": (0, 1, 2, 3, 6, 7, 15, 16, 17),
    "round": (1, 5, 8, 9, 15, 16),
    "texture": (12, 13, 14),
    "writing": (10, 11),
    "animal": (2,),
}


def own_data_example(root: str | os.PathLike, n_images: int = 48, seed: int = 0,
                     unknown: float = 0.3) -> dict:
    """A small data set of one's own, made of the photographs scikit-image ships: ``images/``
    (JPEG and PNG files in two subfolders, each a random crop of a photograph, maybe mirrored,
    at a random small size) and ``labels.csv`` over it, the labels of each picture with a share
    ``unknown`` of the entries left empty (some written -1): positives are missing, as in a
    table one labels by hand. Returns the paths, the image names and the complete labels."""
    from PIL import Image
    from skimage import data as photographs

    root = Path(root)
    rng = np.random.default_rng(seed)
    pictures = []
    for name in EXAMPLE_PHOTOGRAPHS:
        picture = getattr(photographs, name)()
        picture = picture[0] if name == "stereo_motorcycle" else picture
        pictures.append(np.stack([picture] * 3, -1) if picture.ndim == 2 else picture[..., :3])
    images, names, truth = root / "images", [], []
    for i in range(n_images):
        source = i % len(pictures)
        picture = pictures[source]
        h, w = picture.shape[:2]
        ch, cw = int(h * rng.uniform(0.55, 1.0)), int(w * rng.uniform(0.55, 1.0))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = picture[top: top + ch, left: left + cw]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        size = (int(rng.integers(48, 96)), int(rng.integers(48, 96)))
        name = f"{'a' if i % 2 else 'b'}/img{i:03d}.{'png' if i % 3 == 0 else 'jpg'}"
        path = images / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.BILINEAR).save(
            path, format="PNG" if name.endswith("png") else "JPEG", quality=90)
        names.append(name)
        truth.append([int(source in members) for members in EXAMPLE_CLASSES.values()])
    truth = np.array(truth, dtype=np.int8)
    shown = truth.astype(object)
    hide = rng.random(truth.shape) < unknown
    shown[hide] = ""
    shown[hide & (rng.random(truth.shape) < 0.3)] = -1
    lines = ["image," + ",".join(EXAMPLE_CLASSES)]
    lines += [",".join([n, *map(str, row)]) for n, row in zip(names, shown, strict=True)]
    labels = root / "labels.csv"
    write_bytes_atomic(labels, ("\n".join(lines) + "\n").encode())
    return {"images": images, "labels": labels, "names": names, "truth": truth}

