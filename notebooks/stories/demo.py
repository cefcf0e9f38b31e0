"""The demo: the paper's whole protocol in minutes, offline, on handwritten-digit mosaics."""

from __future__ import annotations

import nbformat

from stories.cells import first_steps, md, notebook, step, title


def demo() -> nbformat.NotebookNode:
    """``00-demo``: ``mlml-tf demo`` told step by step."""
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
        *first_steps(["""
        MOUNT_DRIVE = False  # nothing here needs Google Drive
        OUT = "mlml-tf-demo"  # data folder, backbone, feature cache, runs, table and figures
        QUICK = False
        METHODS = None  # "all", or a list such as ["asl", "csl"]: compared with the paper's
        SEED = 0  # data, folds, hidden labels, backbone and heads
        """], ["""
        `QUICK = True` runs the small version, `mlml_tf.apps.demo.QUICK`, in a minute or so;
        the full demo, `mlml_tf.apps.demo.FULL`, trains the whole grid of 48 runs in some
        minutes on a CPU. `METHODS = "all"` also compares the field's methods (ASL, CSL, AN,
        AN-LS, WAN, EPR, ROLE, LL-R, LL-Ct, LL-Cp and PL-Shrink) with the paper's, under the
        paper's protocol, random per sample and single positive.
        """]),
        *step("""
        ## Run the protocol

        The same as `mlml-tf demo` in a terminal: write the mosaics and their folds under
        `OUT/data`, pretrain a small CNN on single digits the mosaics never use (it stands in
        for the ImageNet backbone), cache its features of every image once, train the head of
        every run, and write the table and the figures. Run again, it reuses what is done.
        """, """
        from mlml_tf import run_demo

        demo = run_demo(out=OUT, quick=QUICK, seed=SEED, methods=METHODS)
        """),
        *step("""
        ## The images and their labels

        Each mosaic shows 4 to 6 digits on a 3 x 3 grid; its labels are the digits it shows,
        at least 3 distinct ones.
        """, """
        from mlml_tf.notebook import preprocessing

        notebook.show(preprocessing.plot_examples(f"{OUT}/data", f"{OUT}/data",
                                                  f"{OUT}/examples"))
        """),
        *step("""
        ## Labels come in scenes

        Each image is drawn from a scene that favours some digits (1, 4, 7; or 0, 6, 8, 9;
        or 2, 3, 5), as a kitchen favours cups and forks. P(column digit | row digit) shows
        the blocks. These co-occurrences are what the confidence weights of CB-WCE count on
        (paper eq. 3).
        """, """
        from mlml_tf.files.layout import read_groundtruth

        labels = read_groundtruth(f"{OUT}/data")
        notebook.show(preprocessing.plot_cooccurrence(labels, f"{OUT}/cooccurrence"))
        """),
        *step("""
        ## The table: mean ± standard deviation over the folds

        Micro recall, precision, F1 and ROC-AUC at threshold 0.5 on every test image, for
        each method and ratio of missing labels (also in `OUT/results.md` and `results.csv`).
        """, """
        from IPython.display import Markdown, display

        display(Markdown(demo["markdown"]))
        """),
        *step("""
        ## Figure 1: the metrics by ratio and method

        As more labels go missing, CE is taught that digits it sees are absent; IM-WCE (which
        knows which labels are hidden, an oracle) and CB-WCE (which only knows what usually
        comes together) weigh those zeros down.
        """, """
        notebook.show([f"{OUT}/figure1_boxplots.png"])
        """),
        *step("""
        ## Figure 3: true positives per class at ratio 0.5
        """, """
        notebook.show([f"{OUT}/figure3_true_positives.png"])
        """),
        *step("""
        ## Every method under three protocols (with `METHODS`)

        mAP and micro F1, mean ± standard deviation over the folds, of the paper's methods and
        the field's, under the paper's protocol (ratio 0.5), random per sample (0.5) and single
        positive. CSL's class prior comes from a temporary model in "ignore" mode, trained
        once per protocol and fold.
        """, """
        if demo["comparison_markdown"]:
            display(Markdown(demo["comparison_markdown"]))
            notebook.show([f"{OUT}/figure_methods.png"])
        else:
            print("METHODS is None: only the paper's methods were trained")
        """),
        *step("""
        ## Where the time went

        Seconds per step: data, backbone pretraining, feature cache, runs, results.
        """, """
        demo["seconds"]
        """),
        md("""
        ## Next

        The same protocol on the paper's data: `MSCOCO-preprocessing` and
        `NUSWIDE-preprocessing`, then the training and results notebooks of each data set.
        """),
    ]
    return notebook(name, cells)
