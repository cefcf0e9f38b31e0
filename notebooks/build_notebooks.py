"""Write the notebooks of this folder: ``python notebooks/build_notebooks.py [--check]``.

Every notebook is a story told in steps: a markdown cell says why, the code cell after it calls
the package and shows the result. The notebooks are generated, without outputs, so that the
install cell and the "Open in Colab" links follow ``mlml_tf.notebook.REPOSITORY`` and every
notebook has the same first steps. ``--check`` only compares and exits with status 1 if a
notebook differs from what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlml_tf.errors import write_bytes_atomic
from mlml_tf.notebook import PACKAGE_SOURCE, PLACEHOLDER_OWNER, colab_url

HERE = Path(__file__).resolve().parent
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
DATASETS = {
    "coco": {"title": "MS-COCO", "file": "MSCOCO", "slug": "mscoco",
             "paper": "33,052 images with at least 4 of the 80 labels, 5.28 labels each"},
    "nuswide": {"title": "NUS-WIDE", "file": "NUSWIDE", "slug": "nuswide",
                "paper": "24,624 images with at least 3 of the 81 labels, 3.81 labels each"},
}
METHODS = {"ce": "CE", "im-wce": "IM-WCE", "cb-wce": "CB-WCE"}
WORK = "/content/drive/MyDrive/mlml-tf"


def _join(parts: tuple[str, ...], separator: str) -> str:
    """Each part dedented on its own, so that a part may be inserted whatever its indentation."""
    return separator.join(dedent(p).strip("\n").rstrip() for p in parts if p.strip())


def md(*parts: str) -> nbformat.NotebookNode:
    """A markdown cell: the parts are paragraphs."""
    return new_markdown_cell(_join(parts, "\n\n"))


def code(*parts: str, parameters: bool = False) -> nbformat.NotebookNode:
    """A code cell: the parts are blocks of lines."""
    if parameters:
        # Every notebook installs the package from PACKAGE_SOURCE (its install cell, on Colab).
        parts = (*parts, f"""
        # where pip gets the package on Colab: a repository, a wheel file or a PyPI name
        PACKAGE_SOURCE = "{PACKAGE_SOURCE}"
        """)
    cell = new_code_cell(_join(parts, "\n"))
    if parameters:
        cell.metadata["tags"] = ["parameters"]
    return cell


def notebook(name: str, cells: list, gpu: bool = False) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True, "name": f"{name}.ipynb"},
    }
    if gpu:
        # Colab opens the notebook on a GPU runtime.
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"]["gpuType"] = "T4"
    return nb


def title(name: str, heading: str, text: str) -> nbformat.NotebookNode:
    return md(f"[![Open In Colab]({BADGE})]({colab_url(f'{name}.ipynb')})", f"# {heading}", text)


def machine_cells(needs_gpu: bool) -> list:
    """The install cell (Colab only) and the machine report, shared by every notebook."""
    why_gpu = (
        "This notebook trains, so it asks TensorFlow which GPU it sees and warns when there is "
        "none: on a CPU, the paper's backbone over every image and the training of every run "
        "take hours."
        if needs_gpu else "This notebook needs no GPU.")
    return [
        md("""
        ## Install the package (on Colab only)

        Colab already has TensorFlow, Keras and most of what the package needs. The package
        itself is installed from `PACKAGE_SOURCE` (first cell: its repository, a wheel file you
        uploaded, or its PyPI name) with `--no-deps`, so that pip never replaces Colab's
        TensorFlow (which matches Colab's CUDA); the next cell adds the few missing
        requirements the same careful way. Off Colab this cell does nothing: install the
        package with `pip install -e .` from a clone of the repository.
        """),
        code(f"""
        import importlib.util
        import subprocess
        import sys

        if "google.colab" in sys.modules and importlib.util.find_spec("mlml_tf") is None:
            if "github.com/{PLACEHOLDER_OWNER}/" in PACKAGE_SOURCE:
                raise SystemExit(
                    f"PACKAGE_SOURCE is still the placeholder {{PACKAGE_SOURCE!r}}: set it, in "
                    "the first cell, to where the package is, e.g. "
                    "'git+https://github.com/<account>/mlml-tf' (the repository's account), "
                    "'/content/mlml_tf-<version>-py3-none-any.whl' (a wheel you uploaded) or "
                    "'mlml-tf' (from PyPI)")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            PACKAGE_SOURCE], check=True)
            importlib.invalidate_caches()
        """),
        md("""
        ## The machine

        On Colab, `setup` installs the missing requirements with the installed TensorFlow,
        Keras and numpy pinned, and mounts Google Drive when `MOUNT_DRIVE` is true (Colab asks
        for permission), so that data folders and results outlive the session.
        """, why_gpu),
        code(f"""
        from mlml_tf import notebook

        machine = notebook.setup(mount_drive=MOUNT_DRIVE, needs_gpu={needs_gpu})
        """),
    ]


# ------------------------------------------------------------------------------ preprocessing


def coco_preprocessing() -> nbformat.NotebookNode:
    name = "MSCOCO-preprocessing"
    cells = [
        title(name, "MS-COCO: from the raw annotations to folds with missing labels", """
        The paper trains on the images of COCO 2017 train that carry at least 4 of its 80
        labels: 33,052 images, 5.28 labels each (SPEC section 1). This notebook downloads
        COCO, builds that label table exactly as the original code did, cuts it into 4 folds
        by iterative stratification and hides 0, 25, 50 and 75 % of each training image's
        labels, writing the files in the original layout. The training notebooks
        (`CE-MSCOCO`, `IM-WCE-MSCOCO`, `CB-WCE-MSCOCO`) read the folder it writes.
        """),
        md("""
        ## Parameters

        The defaults are the paper's settings. On Colab the raw data go to the local disk
        (`/content/coco`, fast, lost with the session) and the small label folder and figures
        to Google Drive. Elsewhere, set the paths to local folders.
        """),
        code(f"""
        MOUNT_DRIVE = True  # Colab: keep data folder and figures on Google Drive
        DOWNLOAD = True  # fetch COCO 2017 train (annotations 241 MB, images 18 GB)
        DOWNLOAD_IMAGES = True  # the images are needed for training, not for the labels
        COCO_ROOT = "/content/coco"  # where the raw files are, or go
        ANNOTATIONS = "/content/coco/annotations/instances_train2017.json"
        DATA_DIR = "{WORK}/data/coco"  # the data folder this notebook writes
        MIN_LABELS = 4  # keep images with at least this many labels (paper: 4)
        IDS = "original"  # row ids as in the published label files; "coco": COCO image ids
        FOLDS = 4  # folds of iterative stratification (paper: 4)
        RATIOS = [0.0, 0.25, 0.5, 0.75]  # share of each training image's labels hidden
        SCHEME = "halves"  # the original's halves-then-quarters; "kfold" for any fold count
        ORDER = 2  # second-order stratification (label pairs too), as the original; 1: labels
        SEED = 0
        FIGURES = "{WORK}/figures/coco"
        """, parameters=True),
        *machine_cells(needs_gpu=False),
        md("""
        ## Download COCO 2017 train

        The annotations archive and the image archive are checked against their published
        SHA-1, extracted, and marked as done, so running this cell again costs nothing. An
        interrupted download resumes where it stopped.
        """),
        code("""
        from mlml_tf.datasets.download import download_coco

        if DOWNLOAD:
            download_coco(COCO_ROOT, images=DOWNLOAD_IMAGES)
        """),
        md(f"""
        ## The label table

        One row per image, one column per category: 1 when at least one annotation of that
        category survives the box check of gluoncv, which the original read COCO through
        (crowd regions count; boxes that collapse to a line do not). Images with fewer than
        `MIN_LABELS` labels are left out, the ids stay the original row numbers, so the folder
        is interchangeable with the published label files. This is the command line's
        `mlml-tf prepare coco`; it writes `groundtruth.csv`, `images.csv` (the image file of
        each id) and `manifest.json`. On the real data: {DATASETS["coco"]["paper"]}.
        """),
        code("""
        notebook.run_command("prepare", "coco", "--annotations", ANNOTATIONS, "--out", DATA_DIR,
                             "--min-labels", MIN_LABELS, "--ids", IDS)
        """),
        md("""
        ## What the table holds
        """),
        code("""
        from mlml_tf.layout import read_groundtruth

        labels = read_groundtruth(DATA_DIR)
        notebook.label_statistics(labels)
        """),
        md("""
        ## Which labels come together

        CB-WCE rests on one observation: labels are not independent. A dining table makes a
        chair, a cup and a fork likely. The heatmap shows P(column class | row class) over the
        table. The categories come grouped by supercategory (vehicles, animals, kitchen, food,
        furniture, ...), so related classes sit side by side. Paper eq. 3 turns these counts
        into the confidence that an unlabelled class is truly absent.
        """),
        code("""
        notebook.show(notebook.plot_cooccurrence(labels, f"{FIGURES}/mscoco_cooccurrence",
                                                 names=notebook.class_names(DATA_DIR)))
        """),
        md("""
        ## Folds and missing labels

        The table is cut in halves, then each half in quarters, by second-order iterative
        stratification (Sechidis et al. 2011; single labels and label pairs balanced), as the
        original did; fold k tests on one quarter and trains on the other three. In each
        training row, round(r x n_i) of its n_i labels are hidden for every ratio r (half to
        even, as numpy rounds), chosen at random from the seed; the test rows keep all their
        labels. The files are those of the original layout, named with the ratio rounded to
        one decimal as the original named them: `missing_labels0.2/train1_0.2.csv` for ratio
        0.25, `negative_weights1_0.2.csv` (0 where a label was hidden: what IM-WCE is told),
        `test1_0.2.csv`, ... (SPEC sections 2 and 3).
        """),
        code("""
        from mlml_tf.layout import split

        manifest = split(DATA_DIR, n_folds=FOLDS, ratios=RATIOS, seed=SEED, scheme=SCHEME,
                         order=ORDER)
        notebook.split_counts(manifest)
        """),
        md("""
        ## Is every fold like the whole set?

        Stratification should give every test fold the positive rate of the whole set, class
        by class (within 0.007 in the published COCO folds), so that a score measured on one
        fold says something about the others.
        """),
        code("""
        rates = notebook.fold_positive_rates(DATA_DIR)
        notebook.fold_rate_gaps(rates)
        """),
        md("""
        Per class, most frequent first: the whole set (bars), each test fold (markers), and
        each fold's difference from the whole set.
        """),
        code("""
        notebook.show(notebook.plot_fold_positive_rates(rates,
                                                        f"{FIGURES}/mscoco_fold_positive_rates"))
        """),
        md("""
        ## Check the folder

        The manifest lists every file with its SHA-256; `verify` returns the files that no
        longer match (none, right after writing). Run it again before training on a folder
        that has travelled.
        """),
        code("""
        from mlml_tf.layout import verify

        verify(DATA_DIR)
        """),
        md("""
        ## Next

        Train the three methods on this folder: `CE-MSCOCO`, `IM-WCE-MSCOCO`, `CB-WCE-MSCOCO`
        (each for every ratio and fold), then draw the paper's figures in `MSCOCO-results`.
        """),
    ]
    return notebook(name, cells)


def nuswide_preprocessing() -> nbformat.NotebookNode:
    name = "NUSWIDE-preprocessing"
    cells = [
        title(name, "NUS-WIDE: from the data set's files to folds with missing labels", """
        The paper's second data set: the NUS-WIDE images that carry at least 3 of its 81
        concepts, 24,624 images with 3.81 labels each (SPEC section 1). This notebook builds
        that label table from the data set's own files, cuts it into 4 folds by iterative
        stratification and hides 0, 25, 50 and 75 % of each training image's labels, in the
        original layout. The training notebooks (`CE-NUSWIDE`, `IM-WCE-NUSWIDE`,
        `CB-WCE-NUSWIDE`) read the folder it writes.
        """),
        md("""
        ## Parameters

        NUS-WIDE's images are not distributed at a public address: ask its authors (the
        National University of Singapore's Lab for Media Search) for them and put the folder on
        Google Drive (or, faster, copy it to `/content`). `NUS_ROOT` must hold
        `ImageList/Imagelist.txt`, `AllTags81.txt` (or `NUS_WID_Tags/AllTags81.txt`),
        `Concepts81.txt` (or `ConceptsList/Concepts81.txt`) and the images under `Flickr/`.
        The defaults are the paper's settings.
        """),
        code(f"""
        MOUNT_DRIVE = True  # Colab: the data set, data folder and figures are on Google Drive
        NUS_ROOT = "/content/drive/MyDrive/NUS-WIDE"  # the NUS-WIDE folder
        DATA_DIR = "{WORK}/data/nuswide"  # the data folder this notebook writes
        MIN_LABELS = 3  # keep images with at least this many labels (paper: 3)
        FOLDS = 4  # folds of iterative stratification (paper: 4)
        RATIOS = [0.0, 0.25, 0.5, 0.75]  # share of each training image's labels hidden
        SCHEME = "halves"  # the original's halves-then-quarters; "kfold" for any fold count
        ORDER = 2  # second-order stratification (label pairs too), as the original; 1: labels
        SEED = 0
        FIGURES = "{WORK}/figures/nuswide"
        """, parameters=True),
        *machine_cells(needs_gpu=False),
        md(f"""
        ## The label table

        `Imagelist.txt` and `AllTags81.txt` describe the same images line for line: one path,
        one row of 81 zeros and ones. The id of an image is its file stem
        (`0001_2124494179`) and the columns are named `0` to `80`, as in the original files;
        the concept names travel in the manifest. Images with fewer than `MIN_LABELS` labels
        are left out. This is the command line's `mlml-tf prepare nuswide`; it writes
        `groundtruth.csv`, `images.csv` and `manifest.json`. On the real data:
        {DATASETS["nuswide"]["paper"]}.
        """),
        code("""
        notebook.run_command("prepare", "nuswide", "--root", NUS_ROOT, "--out", DATA_DIR,
                             "--min-labels", MIN_LABELS)
        """),
        md("""
        ## What the table holds
        """),
        code("""
        from mlml_tf.layout import read_groundtruth

        labels = read_groundtruth(DATA_DIR)
        notebook.label_statistics(labels)
        """),
        md("""
        ## Which labels come together

        P(column concept | row concept) over the table, concepts in alphabetical order. Sky
        comes with clouds, beach with water and sand: knowing some labels of an image says
        much about the others, and paper eq. 3 turns these counts into the confidence that an
        unlabelled concept is truly absent (CB-WCE).
        """),
        code("""
        notebook.show(notebook.plot_cooccurrence(labels, f"{FIGURES}/nuswide_cooccurrence",
                                                 names=notebook.class_names(DATA_DIR)))
        """),
        md("""
        ## Folds and missing labels

        Halves, then quarters, by second-order iterative stratification; fold k tests on one
        quarter and trains on the other three. In each training row, round(r x n_i) of its n_i
        labels are hidden for every ratio r; test rows keep all their labels. The files are
        those of the original layout, the ratio rounded to one decimal in their names
        (`missing_labels0.2/train1_0.2.csv` for ratio 0.25, `negative_weights1_0.2.csv`,
        `test1_0.2.csv`, ...; SPEC sections 2 and 3).
        """),
        code("""
        from mlml_tf.layout import split

        manifest = split(DATA_DIR, n_folds=FOLDS, ratios=RATIOS, seed=SEED, scheme=SCHEME,
                         order=ORDER)
        notebook.split_counts(manifest)
        """),
        md("""
        ## Is every fold like the whole set?

        The largest difference, over the classes, between a test fold's positive rate and the
        whole set's: stratification keeps it small, so that the folds are alike.
        """),
        code("""
        rates = notebook.fold_positive_rates(DATA_DIR)
        notebook.fold_rate_gaps(rates)
        """),
        md("""
        Per concept, most frequent first: the whole set (bars), each test fold (markers), and
        each fold's difference from the whole set.
        """),
        code("""
        notebook.show(notebook.plot_fold_positive_rates(rates,
                                                        f"{FIGURES}/nuswide_fold_positive_rates"))
        """),
        md("""
        ## Check the folder

        `verify` returns the files whose SHA-256 no longer matches the manifest (none, right
        after writing).
        """),
        code("""
        from mlml_tf.layout import verify

        verify(DATA_DIR)
        """),
        md("""
        ## Next

        Train the three methods on this folder: `CE-NUSWIDE`, `IM-WCE-NUSWIDE`,
        `CB-WCE-NUSWIDE`, then draw the paper's figures in `NUSWIDE-results`.
        """),
    ]
    return notebook(name, cells)


# ------------------------------------------------------------------------------ training

METHOD_STORY = {
    "ce": ("the class-balanced cross-entropy baseline", """
        CE treats every zero of the training labels as a true negative, hidden labels
        included: the more labels are missing, the more often it is taught that an object in
        the image is absent. Its only weighting is the class balance P_c = clip(round(1 /
        (2 freq_c)), 1, 10) on positives, shared by the three methods (SPEC section 6).
        """),
    "im-wce": ("ignoring the missing labels", """
        IM-WCE gives weight 0 to the zeros that are hidden labels and 1 to the other zeros,
        so the loss never punishes the model for finding an object whose label was removed.
        It has to know which zeros are hidden: an oracle that real data never offer, the upper
        reference of the paper (`negative_weights{k}_{r}.csv`). Positives keep the class
        balance P_c of every method (SPEC sections 3 and 6).
        """),
    "cb-wce": ("the confidence-based weighted loss", """
        CB-WCE, the paper's method, weighs each zero by the confidence that the class is
        truly absent given the labels S_i the image does have (paper eq. 3), counted over the
        rows j of a label matrix:
        $\\bar w_{ic} = 1 - |\\{j : S_i \\cup \\{c\\} \\subseteq S_j\\}| \\,/\\,
        |\\{j : S_i \\subseteq S_j\\}|$.
        A zero that usually comes with the image's labels (a fork beside a dining table)
        weighs little; an unlikely one weighs nearly 1. By default the
        counts use the run's own observed training labels, what a user has; `CB_SOURCE =
        "oracle"` counts over the complete labels of the whole set, as the original's global
        weight file did (SPEC section 4).
        """),
}


def training(method: str, dataset: str) -> nbformat.NotebookNode:
    label, d = METHODS[method], DATASETS[dataset]
    name = f"{label}-{d['file']}"
    short, story = METHOD_STORY[method]
    cb = method == "cb-wce"
    if dataset == "coco":
        images = '"/content/coco/train2017"  # the train2017 folder of COCO'
    else:
        images = '"/content/drive/MyDrive/NUS-WIDE"  # NUS-WIDE (images.csv starts at Flickr/)'
    option_names = ["images", "backbone", "weights", "image_size", "scaling", "head",
                    "batch_size", "learning_rate", "lr_schedule", "steps_per_epoch",
                    "pos_weight_source", "mixed_precision", "together",
                    *(["cb_source"] if cb else []), "seed"]
    options = "".join(f"    {o}={o.upper()},\n" for o in option_names)
    weight_options = "pos_weight_source=POS_WEIGHT_SOURCE" + (", cb_source=CB_SOURCE" if cb else "")
    cells = [
        title(name, f"{label} on {d['title']}: {short}", f"""
        This notebook trains {label} for every ratio of missing labels and every fold of the
        data folder written by `{d['file']}-preprocessing` (4 ratios x 4 folds = 16 runs at
        the paper's settings) and writes each run's results in the original's layout, where
        `{d['file']}-results` reads them with the runs of the other two methods.
        """),
        md("""
        ## Parameters

        The defaults are the paper's: Inception-ResNet-v2 with ImageNet weights on 224 x 224
        images, frozen; the original head (Dense 2048-1024-256, sigmoid); Adadelta as TF1 ran
        it (rho 0.95, epsilon 1e-8) at the constant learning rate 0.1; batches of 32; 20
        epochs. The original's code built a decay of 0.95 every 1000 steps but never advanced
        its step, so its rate stayed 0.1: `LR_SCHEDULE = "exponential-decay"` applies the
        decay it meant. `STEPS_PER_EPOCH = "original"` counts floor(N1 / 32) steps per epoch,
        N1 the rows of `train1_0.0.csv`, for every run, as the original; the default is one
        pass over the run's own rows. `POS_WEIGHT_SOURCE = "original"` computes the class
        balance P once from fold 1's complete labels, as the original did, instead of from
        each run's training labels. `FAITHFUL = True` undoes every departure from the original
        at once (README: "Where the port departs from the original"), the backbone's batch
        norm on batch statistics included: the backbone then runs at every step, with no
        feature cache (about 70 GPU-minutes per run).
        """, """
        The runs of a fold (here the four ratios) read the same training rows in the same
        order, so they train side by side in one model, one head per run, each to the result
        it gets alone; `TOGETHER` caps how many (by default as many as a quarter of the
        machine's memory holds; 1 trains them one by one). `MIXED_PRECISION = True` lets the
        heads compute in float16 on a GPU with tensor cores; it is off by default because the
        paper's arithmetic is float32.
        """, """
        `CB_SOURCE = "oracle"` counts the confidence weights over the complete labels of the
        whole set, train and test rows of every fold, as the original's weight file did;
        `"file"` reads the authors' own `negative_weights_global.csv` from the data folder;
        the default counts them over the run's observed training labels, the only labels a
        user has (SPEC section 4).
        """ if cb else ""),
        code(f"""
        MOUNT_DRIVE = True  # Colab: data folder and results on Google Drive
        DATA_DIR = "{WORK}/data/{dataset}"  # written by {d['file']}-preprocessing
        IMAGES = {images}
        OUT = "{WORK}/runs/{dataset}"  # runs of all methods and the feature cache
        RATIOS = [0.0, 0.25, 0.5, 0.75]
        FOLDS = [1, 2, 3, 4]
        EPOCHS = 20
        BATCH_SIZE = 32
        LEARNING_RATE = 0.1  # Adadelta, rho 0.95, epsilon 1e-8 (TF1's)
        LR_SCHEDULE = "constant"  # the original's; "exponential-decay": x0.95 per 1000 steps
        STEPS_PER_EPOCH = "run"  # one pass over the run's rows; "original": len(train1_0.0)//32
        FAITHFUL = False  # True: every departure from the original undone (no feature cache)
        BACKBONE = "InceptionResNetV2"  # any keras.applications name
        WEIGHTS = "imagenet"  # "imagenet", None (random) or a weights file
        IMAGE_SIZE = 224
        SCALING = "imagenet"  # the original's (x/255 - mean) / std; "inception": [-1, 1]
        HEAD = "original"  # "gap": average the feature map first (a far smaller head)
        POS_WEIGHT_SOURCE = "run"  # P from each run's training labels; "original": fold 1
        MIXED_PRECISION = False  # True: heads in float16 on a GPU (the paper's is float32)
        TOGETHER = None  # runs of a fold side by side; None: as many as memory holds; 1: alone
        """, 'CB_SOURCE = "observed"  # eq. 3 over the observed labels; "oracle"; "file"'
             if cb else "", "SEED = 0", parameters=True),
        *machine_cells(needs_gpu=True),
        md("""
        ## The data folder

        Training rows, test rows and hidden labels of each fold, as the preprocessing notebook
        wrote them (from the folder's manifest).
        """),
        code("""
        from mlml_tf.layout import read_manifest

        notebook.split_counts(read_manifest(DATA_DIR))
        """),
        md(f"## What {label} weighs", story, """
        The table shows, for the first fold at the largest ratio, what each class gets: P on
        its observed positives, the mean weight w̄ on its zeros, how many zeros weigh less than
        1, and how many of its labels were hidden (known here from the complete labels; the
        model never sees them). The loss of each entry is its cross-entropy times
        W = y P + (1 - y) w̄, handed to Keras as a per-entry `sample_weight` (SPEC section 6).
        """),
        code(f"""
        notebook.entry_weight_summary(DATA_DIR, "{method}", ratio=max(RATIOS), fold=FOLDS[0],
                                      {weight_options})
        """),
        md("""
        ## The settings shared by every run
        """),
        code("from mlml_tf.grid import GridOptions\n\noptions = GridOptions(\n" + options
             + ")\noptions"),
        md("""
        ## Backbone features, once

        Only the head is trained and the backbone is frozen, so each image's features are
        computed once, in inference mode, and cached under `OUT/features` for every run and
        every method (the original recomputed them at every step, about 70 GPU-minutes per
        run). The cache is keyed by the backbone, its weights, the image size and the scaling:
        the other training notebooks of this data set reuse it. With `FAITHFUL = True` there is
        no cache: the backbone's batch norm uses the statistics of each training batch, as the
        original's did, so an image's features depend on its batch.
        """),
        code("""
        from mlml_tf.features import cache_for_data_folder

        if FAITHFUL:
            print("FAITHFUL: the backbone runs at every step, no feature cache")
        else:
            cache = cache_for_data_folder(DATA_DIR, f"{OUT}/features", options)
            print(f"{len(cache)} images, features of shape {cache.shape}")
        """),
        md(f"""
        ## Train {label} for every ratio and fold

        Each run goes to `OUT/<experiment>/<digest of its settings>/` under the original's
        experiment names, and counts as complete only once its results are written. If the
        Colab session ends, run the notebook again: complete runs are skipped and an
        interrupted one resumes from its last epoch.
        """),
        code(f"""
        from mlml_tf.grid import run_grid

        summary = run_grid(DATA_DIR, OUT, methods=["{method}"], ratios=RATIOS, folds=FOLDS,
                           epochs=EPOCHS, options=options, faithful=FAITHFUL)
        print(summary)
        """),
        md(f"""
        ## The runs of {label}

        Micro recall, precision, F1 and ROC-AUC at threshold 0.5 on every test row, the
        metrics of the paper's figures (SPEC section 7).
        """),
        code(f"""
        from mlml_tf.results import PAPER_METRICS, collect_runs

        runs = collect_runs(OUT)
        runs.loc[runs["method"] == "{method}", ["ratio", "fold", *PAPER_METRICS, "run_dir"]]
        """),
        md(f"""
        ## Next

        Train the other methods on the same folder (they reuse the feature cache), then
        compare them in `{d['file']}-results`.
        """),
    ]
    return notebook(name, cells, gpu=True)

# ------------------------------------------------------------------------------ results


def results(dataset: str) -> nbformat.NotebookNode:
    d = DATASETS[dataset]
    name = f"{d['file']}-results"
    slug = d["slug"]
    boxplot_figure = "Figure 1" if dataset == "coco" else "Figure 2"
    names_constant = "COCO_CLASS_NAMES" if dataset == "coco" else "NUSWIDE_CONCEPTS"
    cells = [
        title(name, f"{d['title']}: the paper's figures and table", f"""
        This notebook reads every run under a results folder and draws {boxplot_figure} of the
        paper (box plots of recall, precision, F1 and ROC-AUC over the folds, by ratio of
        missing labels and method), the true positives of the 15 most frequent classes at
        ratio 0.5 (Figure 3 shows them for COCO), and the table of mean and standard deviation
        per method and ratio. It reads the runs written by `mlml-tf` (the training notebooks
        or `mlml-tf run`) and those written by the original code alike:
        `<folder>/<experiment>/<timestamp>/predictions.out` and
        `test_ground_truth_classes.txt`, under its experiment names (SPEC section 7).
        """),
        md("""
        ## Parameters
        """),
        code(f"""
        MOUNT_DRIVE = True  # Colab: the runs and figures are on Google Drive
        RUNS = "{WORK}/runs/{dataset}"  # runs of mlml-tf or of the original code
        FIGURES = "{WORK}/figures/{dataset}"  # figures (PNG, PDF) and the table
        FIGURE3_RATIO = 0.5  # ratio of missing labels of the true-positive figure (paper: 0.5)
        FIGURE3_FOLD = 1  # fold of the true-positive figure (paper: 1); None: mean of the folds
        TOP_CLASSES = 15  # classes of the true-positive figure, most frequent first
        """, parameters=True),
        *machine_cells(needs_gpu=False),
        md("""
        ## Collect the runs

        One row per experiment (method, ratio, fold). A run of the original code stores only
        its predictions and ground truth; its metrics are computed here from them, as they
        are (its last N mod 32 test rows were never predicted and stay all zero).
        """),
        code("""
        from mlml_tf.results import collect_runs

        runs = collect_runs(RUNS)
        runs
        """),
        md("""
        ## Which runs are there

        Folds found for each method and ratio: a hole means a run still to train (or still
        running).
        """),
        code("""
        notebook.grid_coverage(runs)
        """),
        md("""
        ## The table: mean ± standard deviation over the folds

        Saved as Markdown and CSV beside the figures.
        """),
        code(f"""
        from IPython.display import Markdown, display

        from mlml_tf.results import format_table_markdown, summary_table

        table = summary_table(runs)
        notebook.save_table(table, f"{{FIGURES}}/{slug}_summary")
        display(Markdown(format_table_markdown(table)))
        """),
        md(f"""
        ## {boxplot_figure}: recall, precision, F1 and ROC-AUC

        One box per method and ratio, spanning the folds. As more labels go missing, CE
        learns that present objects are absent and its recall falls; ignoring the hidden
        labels (IM-WCE, an oracle) or weighing zeros by confidence (CB-WCE) is meant to hold
        it up.
        """),
        code(f"""
        from mlml_tf.results import plot_metric_boxplots

        notebook.show(plot_metric_boxplots(runs, f"{{FIGURES}}/{slug}_boxplots"))
        """),
        md("""
        ## True positives of the most frequent classes

        As the paper's figure: at ratio `FIGURE3_RATIO` and fold `FIGURE3_FOLD`, the true
        positives of each method and the number of test positives ("Positive Samples") for
        the `TOP_CLASSES` classes with the most test positives (`FIGURE3_FOLD = None`
        averages over the folds). The runs of the original code store no class names: the
        data set's names are given, in column order.
        """),
        code(f"""
        from mlml_tf.datasets import {names_constant}
        from mlml_tf.results import plot_true_positives

        reports = notebook.reports_at_ratio(runs, FIGURE3_RATIO, names={names_constant},
                                            fold=FIGURE3_FOLD)
        notebook.show(plot_true_positives(reports, f"{{FIGURES}}/{slug}_true_positives",
                                          top=TOP_CLASSES))
        """),
        md("""
        ## Other metrics

        Macro and weighted ROC-AUC (classes whose test fold has no positive are left out),
        exact-match accuracy and Hamming loss.
        """),
        code("""
        extra = summary_table(runs, metrics=["roc_auc_macro", "roc_auc_weighted",
                                             "exact_match_accuracy", "hamming_loss"])
        display(Markdown(format_table_markdown(extra)))
        """),
    ]
    if dataset == "coco":
        cells += [
            md("""
            ## Against the original's training logs

            The original's logs give the micro ROC-AUC of CE and IM-WCE on COCO fold 1 for
            each ratio (SPEC section 8); the runs found here sit beside them. The original
            scored the last N mod 32 test rows as all-zero rows and ran the backbone's batch
            normalisation on batch statistics, so small differences are expected.
            """),
            code("""
            notebook.compare_with_original_logs(runs)
            """),
        ]
    return notebook(name, cells)


# ------------------------------------------------------------------------------ demo


def demo() -> nbformat.NotebookNode:
    name = "00-demo"
    cells = [
        title(name, "The whole protocol in minutes, offline", """
        The paper's data sets take hours to download and a GPU to train on. This notebook runs
        the same protocol end to end on a small data set built from scikit-learn's handwritten
        digits: mosaics of 4 to 6 digits whose labels co-occur like objects in photographs
        (a 1 makes a 4 and a 7 likely). It writes the labels in the original layout, cuts 4
        folds, hides 0, 25, 50 and 75 % of the training labels, trains CE, IM-WCE and CB-WCE
        at every ratio and fold on the features of a small frozen backbone, and draws the
        paper's table and figures. Nothing to download, no GPU needed.
        """),
        md("""
        ## Parameters

        `QUICK = True` runs the small version, `mlml_tf.demo.QUICK`, in a minute or so; the
        full demo, `mlml_tf.demo.FULL`, trains the whole grid of 48 runs in some minutes on a
        CPU. `METHODS = "all"` also compares the field's methods (ASL, CSL, AN, AN-LS, WAN,
        EPR, ROLE, LL-R, LL-Ct, LL-Cp and PL-Shrink) with the paper's, under the paper's
        protocol, random per sample and single positive.
        """),
        code("""
        MOUNT_DRIVE = False  # nothing here needs Google Drive
        OUT = "mlml-tf-demo"  # data folder, backbone, feature cache, runs, table and figures
        QUICK = False
        METHODS = None  # "all", or a list such as ["asl", "csl"]: compared with the paper's
        SEED = 0  # data, folds, hidden labels, backbone and heads
        """, parameters=True),
        *machine_cells(needs_gpu=False),
        md("""
        ## Run the protocol

        The same as `mlml-tf demo` in a terminal: write the mosaics and their folds under
        `OUT/data`, pretrain a small CNN on single digits the mosaics never use (it stands in
        for the ImageNet backbone), cache its features of every image once, train the head of
        every run, and write the table and the figures. Run again, it reuses what is done.
        """),
        code("""
        from mlml_tf.demo import run_demo

        demo = run_demo(out=OUT, quick=QUICK, seed=SEED, methods=METHODS)
        """),
        md("""
        ## The images and their labels

        Each mosaic shows 4 to 6 digits on a 3 x 3 grid; its labels are the digits it shows,
        at least 3 distinct ones.
        """),
        code("""
        notebook.show(notebook.plot_examples(f"{OUT}/data", f"{OUT}/data", f"{OUT}/examples"))
        """),
        md("""
        ## Labels come in scenes

        Each image is drawn from a scene that favours some digits (1, 4, 7; or 0, 6, 8, 9;
        or 2, 3, 5), as a kitchen favours cups and forks. P(column digit | row digit) shows
        the blocks. These co-occurrences are what the confidence weights of CB-WCE count on
        (paper eq. 3).
        """),
        code("""
        from mlml_tf.layout import read_groundtruth

        labels = read_groundtruth(f"{OUT}/data")
        notebook.show(notebook.plot_cooccurrence(labels, f"{OUT}/cooccurrence"))
        """),
        md("""
        ## The table: mean ± standard deviation over the folds

        Micro recall, precision, F1 and ROC-AUC at threshold 0.5 on every test image, for
        each method and ratio of missing labels (also in `OUT/results.md` and `results.csv`).
        """),
        code("""
        from IPython.display import Markdown, display

        display(Markdown(demo["markdown"]))
        """),
        md("""
        ## Figure 1: the metrics by ratio and method

        As more labels go missing, CE is taught that digits it sees are absent; IM-WCE (which
        knows which labels are hidden, an oracle) and CB-WCE (which only knows what usually
        comes together) weigh those zeros down.
        """),
        code("""
        notebook.show([f"{OUT}/figure1_boxplots.png"])
        """),
        md("""
        ## Figure 3: true positives per class at ratio 0.5
        """),
        code("""
        notebook.show([f"{OUT}/figure3_true_positives.png"])
        """),
        md("""
        ## Every method under three protocols (with `METHODS`)

        mAP and micro F1, mean ± standard deviation over the folds, of the paper's methods and
        the field's, under the paper's protocol (ratio 0.5), random per sample (0.5) and single
        positive. CSL's class prior comes from a temporary model in "ignore" mode, trained
        once per protocol and fold.
        """),
        code("""
        if demo["comparison_markdown"]:
            display(Markdown(demo["comparison_markdown"]))
            notebook.show([f"{OUT}/figure_methods.png"])
        else:
            print("METHODS is None: only the paper's methods were trained")
        """),
        md("""
        ## Where the time went

        Seconds per step: data, backbone pretraining, feature cache, runs, results.
        """),
        code("""
        demo["seconds"]
        """),
        md("""
        ## Next

        The same protocol on the paper's data: `MSCOCO-preprocessing` and
        `NUSWIDE-preprocessing`, then the training and results notebooks of each data set.
        """),
    ]
    return notebook(name, cells)


# ------------------------------------------------------------------------------ own data


def own_data() -> nbformat.NotebookNode:
    name = "Own-data"
    cells = [
        title(name, "A model of your own partially labelled images", """
        You have a folder of images and a table of their labels in which many positives are
        missing, and you want a model that tags new images. This notebook trains one with
        CB-WCE (or any method of the package) on the same feature cache and losses as the
        paper's grid, looks at its model card, tags images, scores the model on a labelled
        table and exports it for TF Serving. It runs as it is on a small example made of the
        photographs scikit-image ships; point `LABELS` and `IMAGES` at your own to train on
        them.
        """),
        md("""
        ## Parameters

        `LABELS`: a CSV file, first column an image path relative to `IMAGES`, then one column
        per class holding 1 (positive), 0 (negative), -1 or an empty cell (unknown). Left at
        `None`, the example is written under `OUT`. `VALIDATION`: the share of rows held out,
        stratified, on which per-class thresholds are tuned and the model card's metrics are
        measured. `FINE_TUNE`: how many of the backbone's top layers with weights then train
        with the head on the images (0 keeps the backbone frozen, as the paper did).
        """),
        code("""
        MOUNT_DRIVE = False  # True to keep the model folder on Google Drive
        OUT = "mlml-tf-own"  # example data, feature cache, model, predictions, export
        LABELS = None  # your label table (CSV); None writes the example
        IMAGES = None  # your images folder
        METHOD = "cb-wce"
        VALIDATION = 0.2
        BACKBONE = "InceptionResNetV2"
        WEIGHTS = "imagenet"  # downloaded once by Keras; "none" for random weights
        IMAGE_SIZE = 224
        HEAD = "original"
        EPOCHS = 20
        BATCH_SIZE = 32
        FINE_TUNE = 0
        SEED = 0
        """, parameters=True),
        *machine_cells(needs_gpu=True),
        md("""
        ## The data

        The example: 48 crops of scikit-image's photographs in two subfolders, labelled by what
        they show (colour, round, texture, writing, animal), with 30 % of the entries left
        unknown, so that positives are missing as in a table labelled by hand.
        """),
        code("""
        import pandas as pd

        if LABELS is None:
            example = notebook.own_data_example(OUT)
            LABELS, IMAGES = example["labels"], example["images"]
        pd.read_csv(LABELS, keep_default_na=False).head(8)
        """),
        md("""
        ## Train

        The backbone runs once over every image into a feature cache (reused by any later
        training on the same images and backbone), the head trains on the features with the
        method's targets and weights, thresholds are tuned on the held-out rows, and the model
        folder is written whole or not at all. The same as `mlml-tf train --labels LABELS
        --images IMAGES --out OUT/model`.
        """),
        code("""
        from mlml_tf import FitSettings, fit_model

        settings = FitSettings(method=METHOD, validation=VALIDATION, backbone=BACKBONE,
                               weights=WEIGHTS, image_size=IMAGE_SIZE, head=HEAD,
                               epochs=EPOCHS, batch_size=BATCH_SIZE, fine_tune=FINE_TUNE,
                               seed=SEED)
        model = fit_model(LABELS, IMAGES, f"{OUT}/model", settings, cache=f"{OUT}/cache",
                          overwrite=True, verbose=0)
        model.classes
        """),
        md("""
        ## The model card

        What the model was trained on and how, and how it does on the validation rows: mAP
        (which needs no threshold) and the micro scores at 0.5 and at the tuned thresholds;
        where the table leaves entries unknown, also over its annotated entries only.
        """),
        code("""
        from IPython.display import Markdown, display

        display(Markdown(open(f"{OUT}/model/README.md").read()))
        """),
        md("""
        ## Tag images

        One row per image: the probability of every class and the labels above their tuned
        thresholds (`threshold=0.5` for one threshold, `top_k=3` for the three most probable).
        Images are read as they are scored, so a folder of any size fits in memory.
        """),
        code("""
        from mlml_tf import predict_images

        predictions = predict_images(model, [IMAGES], f"{OUT}/predictions.csv")
        pd.read_csv(predictions.path, keep_default_na=False).head(8)
        """),
        md("""
        ## Score the model on a labelled table

        Every metric of the grid, written as the grid writes a run's results. Here it is the
        training table itself, so the scores are optimistic: give a table of images the model
        has not seen.
        """),
        code("""
        from mlml_tf import evaluate_model

        metrics = evaluate_model(model, LABELS, IMAGES, f"{OUT}/evaluation")
        {key: metrics[key] for key in ("map", "precision_micro", "recall_micro", "f1_micro")}
        """),
        md("""
        ## Export for serving

        A TensorFlow SavedModel whose `serving_default` signature takes encoded images (the
        bytes of JPEG or PNG files) and returns their probabilities, ready for TF Serving.
        Read back here with TensorFlow alone.
        """),
        code("""
        import shutil
        from pathlib import Path

        import tensorflow as tf

        from mlml_tf import export_model

        shutil.rmtree(f"{OUT}/serving", ignore_errors=True)
        exported = export_model(model, f"{OUT}/serving/1")
        served = tf.saved_model.load(str(exported)).signatures["serving_default"]
        files = sorted(p for p in Path(IMAGES).rglob("*") if p.suffix in (".jpg", ".png"))[:4]
        served(images=tf.constant([p.read_bytes() for p in files]))["probabilities"].numpy()
        """),
    ]
    return notebook(name, cells, gpu=True)


# ------------------------------------------------------------------------------ writing


def build() -> dict[str, nbformat.NotebookNode]:
    """Every notebook of this folder by file name."""
    notebooks = [demo(), coco_preprocessing(), nuswide_preprocessing()]
    notebooks += [training(m, d) for d in DATASETS for m in METHODS]
    notebooks += [results(d) for d in DATASETS]
    notebooks.append(own_data())
    return {nb.metadata["colab"]["name"]: nb for nb in notebooks}


def text(nb: nbformat.NotebookNode) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare only; exit 1 if a notebook differs")
    args = parser.parse_args(argv)
    stale = []
    for file_name, nb in build().items():
        path = HERE / file_name
        content = text(nb)
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        stale.append(file_name)
        if not args.check:
            write_bytes_atomic(path, content.encode("utf-8"))
    for file_name in stale:
        print(("differs: " if args.check else "written: ") + file_name)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
