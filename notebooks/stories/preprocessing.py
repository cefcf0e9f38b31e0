"""The preprocessing story, told for either data set: from its raw files to the label table,
its co-occurrences, the folds and the hidden labels, in the original's layout."""

from __future__ import annotations

import nbformat

from stories.cells import WORK, call, first_steps, md, notebook, prose, step, steps, title
from stories.datasets import DataSet
from stories.training import training_names

#: The parameters of the folds and the hidden labels (the paper's settings), after those of the
#: label table.
SPLIT_PARAMETERS = """
FOLDS = 4  # folds of iterative stratification (paper: 4)
RATIOS = [0.0, 0.25, 0.5, 0.75]  # share of each training image's labels hidden
SCHEME = "halves"  # the original's halves-then-quarters; "kfold" for any fold count
ORDER = 2  # second-order stratification (label pairs too), as the original; 1: labels
SEED = 0
"""


def preprocessing(d: DataSet) -> nbformat.NotebookNode:
    """``<file>-preprocessing``: the data folder the training notebooks of ``d`` read."""
    name, source = f"{d.file}-preprocessing", d.source
    trainers = ", ".join(f"`{n}`" for n in training_names(d))
    prepare = call("notebook.run_command", [
        f'"prepare", "{d.key}"', *source.arguments, '"--out", DATA_DIR',
        '"--min-labels", MIN_LABELS', *source.table_arguments])
    cells = [
        title(name, f"{d.title}: from {source.raw} to folds with missing labels",
              prose(source.about, f"""
              This notebook {source.builds}, cuts it into 4 folds by iterative stratification
              and hides 0, 25, 50 and 75 % of each training image's labels, writing the files
              in the original layout. The training notebooks ({trainers}) read the folder it
              writes.
              """)),
        *first_steps(
            [source.parameters,
             f'DATA_DIR = "{WORK}/data/{d.key}"  # the data folder this notebook writes',
             f"MIN_LABELS = {d.min_labels}  # keep images with at least this many labels "
             f"(paper: {d.min_labels})",
             source.table_parameters, SPLIT_PARAMETERS,
             f'FIGURES = "{WORK}/figures/{d.key}"'],
            [prose("The defaults are the paper's settings.", source.explained)]),
        *steps(source.fetch),
        *step(["## The label table", prose(source.table, f"""
              This is the command line's `mlml-tf prepare {d.key}`; it writes
              `groundtruth.csv`, `images.csv` (the image file of each id) and `manifest.json`.
              On the real data: {d.paper}.
              """)], prepare),
        *step("## What the table holds", """
              from mlml_tf.files.layout import read_groundtruth
              from mlml_tf.notebook import preprocessing

              labels = read_groundtruth(DATA_DIR)
              preprocessing.label_statistics(labels)
              """),
        *step(["## Which labels come together", source.cooccurrence], f"""
              notebook.show(preprocessing.plot_cooccurrence(
                  labels, f"{{FIGURES}}/{d.slug}_cooccurrence",
                  names=preprocessing.class_names(DATA_DIR)))
              """),
        *step("""
              ## Folds and missing labels

              The table is cut in halves, then each half in quarters, by second-order iterative
              stratification (Sechidis et al. 2011; single labels and label pairs balanced), as
              the original did; fold k tests on one quarter and trains on the other three. In
              each training row, round(r x n_i) of its n_i labels are hidden for every ratio r
              (half to even, as numpy rounds), chosen at random from the seed; the test rows
              keep all their labels. The files are those of the original layout, named with the
              ratio rounded to one decimal as the original named them:
              `missing_labels0.2/train1_0.2.csv` for ratio 0.25, `negative_weights1_0.2.csv`
              (0 where a label was hidden: what IM-WCE is told), `test1_0.2.csv`, ...
              (docs/original.md sections 2 and 3).
              """, """
              from mlml_tf.files.split import split

              manifest = split(DATA_DIR, n_folds=FOLDS, ratios=RATIOS, seed=SEED, scheme=SCHEME,
                               order=ORDER)
              preprocessing.split_counts(manifest)
              """),
        *step(["## Is every fold like the whole set?", prose(f"""
              Stratification should give every test fold the positive rate of the whole set,
              {d.noun} by {d.noun}{source.fold_note}, so that a score measured on one fold says
              something about the others. Below, for each test fold, the largest difference
              from the whole set over the {d.nouns}, and the {d.noun} where it occurs.
              """)], """
              rates = preprocessing.fold_positive_rates(DATA_DIR)
              preprocessing.fold_rate_gaps(rates)
              """),
        *step(f"""
              Per {d.noun}, most frequent first: the whole set (bars), each test fold (markers),
              and each fold's difference from the whole set.
              """, f"""
              notebook.show(preprocessing.plot_fold_positive_rates(
                  rates, f"{{FIGURES}}/{d.slug}_fold_positive_rates"))
              """),
        *step("""
              ## Check the folder

              The manifest lists every file with its SHA-256; `verify` returns the files that no
              longer match (none, right after writing). Run it again before training on a
              folder that has travelled.
              """, """
              from mlml_tf.files.split import verify

              verify(DATA_DIR)
              """),
        md("## Next", prose(f"""
           Train the three methods on this folder: {trainers} (each for every ratio and fold),
           then draw the paper's figures in `{d.file}-results`.
           """)),
    ]
    return notebook(name, cells)
