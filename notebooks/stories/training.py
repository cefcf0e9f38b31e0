"""The training story, told for each of the paper's three methods on either data set: every
ratio and fold of a data folder, each run's results in the original's layout."""

from __future__ import annotations

import dataclasses

import nbformat

from stories.cells import WORK, call, first_steps, md, notebook, step, title
from stories.datasets import DataSet


@dataclasses.dataclass(frozen=True)
class LossStory:
    """What a training notebook tells of its method, and the parameters only it has."""

    label: str  # as the paper names the method, and its notebooks
    short: str  # the title's subtitle
    story: str  # what the method weighs, and why
    #: Paragraphs of "Parameters" on the method's own options.
    explained: str = ""
    #: The method's own parameter lines (code, with their comments), and the options of
    #: :class:`mlml_tf.GridOptions` they set.
    parameters: str = ""
    options: tuple[str, ...] = ()


#: The paper's methods, in the order of their notebooks.
LOSS_STORIES: dict[str, LossStory] = {
    "ce": LossStory("CE", "the class-balanced cross-entropy baseline", """
        CE treats every zero of the training labels as a true negative, hidden labels
        included: the more labels are missing, the more often it is taught that an object in
        the image is absent. Its only weighting is the class balance P_c = clip(round(1 /
        (2 freq_c)), 1, 10) on positives, shared by the three methods (docs/original.md
        section 6).
        """),
    "im-wce": LossStory("IM-WCE", "ignoring the missing labels", """
        IM-WCE gives weight 0 to the zeros that are hidden labels and 1 to the other zeros,
        so the loss never punishes the model for finding an object whose label was removed.
        It has to know which zeros are hidden: an oracle that real data never offer, the upper
        reference of the paper (`negative_weights{k}_{r}.csv`). Positives keep the class
        balance P_c of every method (docs/original.md sections 3 and 6).
        """),
    "cb-wce": LossStory("CB-WCE", "the confidence-based weighted loss", """
        CB-WCE, the paper's method, weighs each zero by the confidence that the class is
        truly absent given the labels S_i the image does have (paper eq. 3), counted over the
        rows j of a label matrix:
        $\\bar w_{ic} = 1 - |\\{j : S_i \\cup \\{c\\} \\subseteq S_j\\}| \\,/\\,
        |\\{j : S_i \\subseteq S_j\\}|$.
        A zero that usually comes with the image's labels (a fork beside a dining table)
        weighs little; an unlikely one weighs nearly 1. By default the
        counts use the run's own observed training labels, what a user has; `CB_SOURCE =
        "oracle"` counts over the complete labels of the whole set, as the original's global
        weight file did (docs/original.md section 4); `"estimated"` estimates the same
        probability from the observed training labels alone (docs/methods.md section 6).
        """, explained="""
        `CB_SOURCE = "oracle"` counts the confidence weights over the complete labels of the
        whole set, train and test rows of every fold, as the original's weight file did;
        `"file"` reads the authors' own `negative_weights_global.csv` from the data folder;
        `"oracle-loo"` counts, for each row's observed positives, over the complete labels of
        every other row (the oracle without a row reading its own hidden labels);
        `"estimated"` estimates the weights from the run's observed training labels alone,
        seeded by `SEED` (docs/methods.md section 6); the default counts them over the run's
        observed training labels, the only labels a user has (docs/original.md section 4).
        """, parameters="""
        CB_SOURCE = "observed"  # eq. 3 counted; "estimated", "oracle", "oracle-loo", "file"
        """, options=("cb_source",)),
}

#: The options of :class:`mlml_tf.GridOptions` every training notebook sets from its
#: parameters (named as the options, in capitals), the method's own before ``seed``.
SHARED_OPTIONS = ("images", "backbone", "weights", "image_size", "scaling", "head",
                  "batch_size", "learning_rate", "lr_schedule", "steps_per_epoch",
                  "pos_weight_source", "mixed_precision", "together")

PARAMETERS_TEXT = ("""
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
    feature cache (about 70 GPU-minutes per run). It is all or nothing: every other
    parameter must then keep the original's value (as above), or the run stops and names
    the one that departs.
    """, """
    The runs of a fold (here the four ratios) read the same training rows in the same
    order, so they train side by side in one model, one head per run, each to the result
    it gets alone; `TOGETHER` caps how many (by default as many as a quarter of the
    machine's memory holds; 1 trains them one by one). `MIXED_PRECISION = True` lets the
    heads compute in float16 on a GPU with tensor cores; it is off by default because the
    paper's arithmetic is float32.
    """)


def training_names(d: DataSet) -> list[str]:
    """The training notebooks of data set ``d``, in order."""
    return [f"{s.label}-{d.file}" for s in LOSS_STORIES.values()]


def training(method: str, d: DataSet) -> nbformat.NotebookNode:
    """``<method>-<file>``: ``method`` trained at every ratio and fold of ``d``'s folder."""
    s = LOSS_STORIES[method]
    name = f"{s.label}-{d.file}"
    options = "".join(f"    {o}={o.upper()},\n" for o in (*SHARED_OPTIONS, *s.options, "seed"))
    weights = [f"{o}={o.upper()}" for o in ("pos_weight_source", *s.options)]
    cells = [
        title(name, f"{s.label} on {d.title}: {s.short}", f"""
        This notebook trains {s.label} for every ratio of missing labels and every fold of the
        data folder written by `{d.file}-preprocessing` (4 ratios x 4 folds = 16 runs at
        the paper's settings) and writes each run's results in the original's layout, where
        `{d.file}-results` reads them with the runs of the other two methods.
        """),
        *first_steps([f"""
        MOUNT_DRIVE = True  # Colab: data folder and results on Google Drive
        DATA_DIR = "{WORK}/data/{d.key}"  # written by {d.file}-preprocessing
        IMAGES = {d.images}
        OUT = "{WORK}/runs/{d.key}"  # runs of all methods and the feature cache
        RATIOS = [0.0, 0.25, 0.5, 0.75]
        FOLDS = [1, 2, 3, 4]
        EPOCHS = 20
        BATCH_SIZE = 32
        LEARNING_RATE = 0.1  # Adadelta, rho 0.95, epsilon 1e-8 (TF1's)
        LR_SCHEDULE = "constant"  # the original's; "exponential-decay": x0.95 per 1000 steps
        STEPS_PER_EPOCH = "run"  # one pass over the run's rows; "original": len(train1_0.0)//32
        FAITHFUL = False  # True: the original's computation, every parameter at its value
        BACKBONE = "InceptionResNetV2"  # any keras.applications name
        WEIGHTS = "imagenet"  # "imagenet", None (random) or a weights file
        IMAGE_SIZE = 224
        SCALING = "imagenet"  # the original's (x/255 - mean) / std; "inception": [-1, 1]
        HEAD = "original"  # "gap": average the feature map first (a far smaller head)
        POS_WEIGHT_SOURCE = "run"  # P from each run's training labels; "original": fold 1
        MIXED_PRECISION = False  # True: heads in float16 on a GPU (the paper's is float32)
        TOGETHER = None  # runs of a fold side by side; None: as many as memory holds; 1: alone
        """, s.parameters, "SEED = 0"], [*PARAMETERS_TEXT, s.explained], needs_gpu=True),
        *step("""
        ## The data folder

        Training rows, test rows and hidden labels of each fold, as the preprocessing notebook
        wrote them (from the folder's manifest), or as the authors published them (counted in
        their files: a folder of theirs is read as it is, without `groundtruth.csv`).
        """, """
        from mlml_tf.notebook import preprocessing

        preprocessing.split_counts(DATA_DIR)
        """),
        *step([f"## What {s.label} weighs", s.story, """
        The table shows, for the first fold at the largest ratio, what each class gets: P on
        its observed positives, the mean weight w̄ on its zeros, how many zeros weigh less than
        1, and how many of its labels were hidden (known here from the complete labels; the
        model never sees them). The loss of each entry is its cross-entropy times
        W = y P + (1 - y) w̄, handed to Keras as a per-entry `sample_weight` (docs/original.md
        section 6).
        """], call("preprocessing.entry_weight_summary",
                   ["DATA_DIR", f'"{method}"', "ratio=max(RATIOS)", "fold=FOLDS[0]", *weights])),
        *step("## The settings shared by every run",
              f"from mlml_tf import GridOptions\n\noptions = GridOptions(\n{options})\noptions"),
        *step("""
        ## Backbone features, once

        Only the head is trained and the backbone is frozen, so each image's features are
        computed once, in inference mode, and cached under `OUT/features` for every run and
        every method (the original recomputed them at every step, about 70 GPU-minutes per
        run). The cache is keyed by the backbone, its weights, the image size and the scaling:
        the other training notebooks of this data set reuse it. With `FAITHFUL = True` there is
        no cache: the backbone's batch norm uses the statistics of each training batch, as the
        original's did, so an image's features depend on its batch.
        """, """
        from mlml_tf.features.extract import cache_for_data_folder

        if FAITHFUL:
            print("FAITHFUL: the backbone runs at every step, no feature cache")
        else:
            cache = cache_for_data_folder(DATA_DIR, f"{OUT}/features", options)
            print(f"{len(cache)} images, features of shape {cache.shape}")
        """),
        *step(f"""
        ## Train {s.label} for every ratio and fold

        Each run goes to `OUT/<experiment>/<digest of its settings>/` under the original's
        experiment names, and counts as complete only once its results are written. If the
        Colab session ends, run the notebook again: complete runs are skipped and an
        interrupted one resumes from its last epoch.
        """, f"""
        from mlml_tf import run_grid

        summary = run_grid(DATA_DIR, OUT, methods=["{method}"], ratios=RATIOS, folds=FOLDS,
                           epochs=EPOCHS, options=options, faithful=FAITHFUL)
        print(summary)
        """),
        *step(f"""
        ## The runs of {s.label}

        Micro recall, precision, F1 and ROC-AUC at threshold 0.5 on every test row, the
        metrics of the paper's figures (docs/original.md section 7).
        """, f"""
        from mlml_tf.apps.tables import PAPER_METRICS, collect_runs

        runs = collect_runs(OUT)
        runs.loc[runs["method"] == "{method}", ["ratio", "fold", *PAPER_METRICS, "run_dir"]]
        """),
        md(f"""
        ## Next

        Train the other methods on the same folder (they reuse the feature cache), then
        compare them in `{d.file}-results`.
        """),
    ]
    return notebook(name, cells, gpu=True)
