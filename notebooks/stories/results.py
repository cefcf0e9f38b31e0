"""The results story, told for either data set: the paper's figures and table from the runs of
mlml-tf or of the original code."""

from __future__ import annotations

import nbformat

from stories.cells import WORK, first_steps, notebook, step, steps, title
from stories.datasets import DataSet


def results(d: DataSet) -> nbformat.NotebookNode:
    """``<file>-results``: the figures and the table of every run under a folder."""
    name = f"{d.file}-results"
    cells = [
        title(name, f"{d.title}: the paper's figures and table", f"""
        This notebook reads every run under a results folder and draws {d.boxplot_figure} of
        the paper (box plots of recall, precision, F1 and ROC-AUC over the folds, by ratio of
        missing labels and method), the true positives of the 15 most frequent classes at
        ratio 0.5 (Figure 3 shows them for COCO), and the table of mean and standard deviation
        per method and ratio. It reads the runs written by `mlml-tf` (the training notebooks
        or `mlml-tf run`) and those written by the original code alike:
        `<folder>/<experiment>/<timestamp>/predictions.out` and
        `test_ground_truth_classes.txt`, under its experiment names (docs/original.md
        section 7).
        """),
        *first_steps([f"""
        MOUNT_DRIVE = True  # Colab: the runs and figures are on Google Drive
        RUNS = "{WORK}/runs/{d.key}"  # runs of mlml-tf or of the original code
        FIGURES = "{WORK}/figures/{d.key}"  # figures (PNG, PDF) and the table
        FIGURE_MAP = False  # True: a panel of mAP beside the paper's four (the paper drew none)
        FIGURE3_RATIO = 0.5  # ratio of missing labels of the true-positive figure (paper: 0.5)
        FIGURE3_FOLD = 1  # fold of the true-positive figure (paper: 1); None: mean of the folds
        TOP_CLASSES = 15  # classes of the true-positive figure, most frequent first
        """]),
        *step("""
        ## Collect the runs

        One row per experiment (method, ratio, fold). A run of the original code stores only
        its predictions and ground truth; its metrics are computed here from them, as they
        are (its last N mod 32 test rows were never predicted and stay all zero).
        """, """
        from mlml_tf.apps.tables import collect_runs
        from mlml_tf.notebook import results

        runs = collect_runs(RUNS)
        runs
        """),
        *step("""
        ## Which runs are there

        Folds found for each method and ratio: a hole means a run still to train (or still
        running).
        """, """
        results.grid_coverage(runs)
        """),
        *step("""
        ## The table: mean ± standard deviation over the folds

        Saved as Markdown and CSV beside the figures.
        """, f"""
        from IPython.display import Markdown, display

        from mlml_tf.apps.tables import format_table_markdown, summary_table

        table = summary_table(runs)
        results.save_table(table, f"{{FIGURES}}/{d.slug}_summary")
        display(Markdown(format_table_markdown(table)))
        """),
        *step(f"""
        ## {d.boxplot_figure}: recall, precision, F1 and ROC-AUC

        One box per method and ratio, spanning the folds. As more labels go missing, CE
        learns that present objects are absent and its recall falls; ignoring the hidden
        labels (IM-WCE, an oracle) or weighing zeros by confidence (CB-WCE) is meant to hold
        it up. The paper's four panels; `FIGURE_MAP = True` adds one of mAP, which the table
        above gives too.
        """, f"""
        from mlml_tf.apps.figures import plot_metric_boxplots
        from mlml_tf.apps.tables import PAPER_METRICS, TABLE_METRICS

        notebook.show(plot_metric_boxplots(runs, f"{{FIGURES}}/{d.slug}_boxplots",
                                           TABLE_METRICS if FIGURE_MAP else PAPER_METRICS))
        """),
        *step("""
        ## True positives of the most frequent classes

        As the paper's figure: at ratio `FIGURE3_RATIO` and fold `FIGURE3_FOLD`, the true
        positives of each method and the number of test positives ("Positive Samples") for
        the `TOP_CLASSES` classes with the most test positives (`FIGURE3_FOLD = None`
        averages over the folds). The runs of the original code store no class names: the
        data set's names are given, in column order.
        """, f"""
        from mlml_tf.apps.figures import plot_true_positives
        from mlml_tf.datasets import {d.names_constant}

        reports = results.reports_at_ratio(runs, FIGURE3_RATIO, names={d.names_constant},
                                           fold=FIGURE3_FOLD)
        notebook.show(plot_true_positives(reports, f"{{FIGURES}}/{d.slug}_true_positives",
                                          top=TOP_CLASSES))
        """),
        *step("""
        ## Other metrics

        Macro and weighted ROC-AUC (classes whose test fold has no positive are left out),
        exact-match accuracy and Hamming loss.
        """, """
        extra = summary_table(runs, metrics=["roc_auc_macro", "roc_auc_weighted",
                                             "exact_match_accuracy", "hamming_loss"])
        display(Markdown(format_table_markdown(extra)))
        """),
        *steps(d.results_steps),
    ]
    return notebook(name, cells)
