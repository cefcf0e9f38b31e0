"""A model of one's own partially labelled images: train, the model card, tag, score, export."""

from __future__ import annotations

import nbformat

from mlml_tf.datasets.photos import CLASSES
from stories.cells import first_steps, notebook, prose, step, title


def own_data() -> nbformat.NotebookNode:
    """``Own-data``: ``mlml-tf train``, ``predict``, ``evaluate`` and ``export`` told step by
    step, on the example of :mod:`mlml_tf.datasets.photos` unless given a table."""
    name = "Own-data"
    cells = [
        title(name, "A model of your own partially labelled images", """
        You have a folder of images and a table of their labels in which many positives are
        missing, and you want a model that tags new images. This notebook trains one with
        CB-WCE (or any method of the package) on the same feature cache and losses as the
        paper's grid, looks at its model card, tags images, scores the model on a labelled
        table and exports it for TF Serving. It runs as it is on a small example made of the
        two photographs scikit-learn ships; point `LABELS` and `IMAGES` at your own to train
        on them.
        """),
        *first_steps(["""
        MOUNT_DRIVE = False  # True to keep the model folder on Google Drive
        OUT = "mlml-tf-own"  # example data, feature cache, model, predictions, export
        LABELS = None  # your label table (CSV); None writes the example
        IMAGES = None  # your images folder
        METHOD = "cb-wce"
        CB_SOURCE = "observed"  # CB-WCE's weights: "observed" (eq. 3 counted) or "estimated"
        VALIDATION = 0.2
        BACKBONE = "InceptionResNetV2"
        WEIGHTS = "imagenet"  # downloaded once by Keras; "none" for random weights
        IMAGE_SIZE = 224
        HEAD = "original"
        EPOCHS = 20
        BATCH_SIZE = 32
        FINE_TUNE = 0
        SEED = 0
        """], ["""
        `LABELS`: a CSV file, first column an image path relative to `IMAGES`, then one column
        per class holding 1 (positive), 0 (negative), -1 or an empty cell (unknown). Left at
        `None`, the example is written under `OUT`. `CB_SOURCE`: where CB-WCE's confidence
        weights come from, eq. 3 counted over the table's positives or estimated from the
        table alone (docs/methods.md section 6). `VALIDATION`: the share of rows held out,
        stratified, on which per-class thresholds are tuned and the model card's metrics are
        measured. `FINE_TUNE`: how many of the backbone's top layers with weights then train
        with the head on the images (0 keeps the backbone frozen, as the paper did).
        """], needs_gpu=True),
        *step(["## The data", prose(f"""
        The example: 48 random crops of the two photographs scikit-learn ships (a pagoda above
        a lake among trees, a dahlia among leaves) in two subfolders, labelled by what they
        show ({", ".join(CLASSES)}), with 30 % of the entries left unknown, so that positives
        are missing as in a table labelled by hand.
        """)], """
        import pandas as pd

        from mlml_tf.datasets.photos import own_data_example

        if LABELS is None:
            example = own_data_example(OUT)
            LABELS, IMAGES = example["labels"], example["images"]
        pd.read_csv(LABELS, keep_default_na=False).head(8)
        """),
        *step("""
        ## Train

        The backbone runs once over every image into a feature cache (reused by any later
        training on the same images and backbone), the head trains on the features with the
        method's targets and weights, thresholds are tuned on the held-out rows, and the model
        folder is written whole or not at all. The same as `mlml-tf train --labels LABELS
        --images IMAGES --out OUT/model`.
        """, """
        from mlml_tf import FitSettings, fit_model

        settings = FitSettings(method=METHOD, cb_source=CB_SOURCE, validation=VALIDATION,
                               backbone=BACKBONE, weights=WEIGHTS, image_size=IMAGE_SIZE,
                               head=HEAD, epochs=EPOCHS, batch_size=BATCH_SIZE,
                               fine_tune=FINE_TUNE, seed=SEED)
        model = fit_model(LABELS, IMAGES, f"{OUT}/model", settings, cache=f"{OUT}/cache",
                          overwrite=True, verbose=0)
        model.classes
        """),
        *step("""
        ## The model card

        What the model was trained on and how, and how it does on the validation rows: mAP
        (which needs no threshold) and the micro scores at 0.5 and at the tuned thresholds;
        where the table leaves entries unknown, also over its annotated entries only.
        """, """
        from IPython.display import Markdown, display

        display(Markdown(open(f"{OUT}/model/README.md").read()))
        """),
        *step("""
        ## Tag images

        One row per image: the probability of every class and the labels above their tuned
        thresholds (`threshold=0.5` for one threshold, `top_k=3` for the three most probable).
        Images are read as they are scored, so a folder of any size fits in memory.
        """, """
        from mlml_tf import predict_images

        predictions = predict_images(model, [IMAGES], f"{OUT}/predictions.csv")
        pd.read_csv(predictions.path, keep_default_na=False).head(8)
        """),
        *step("""
        ## Score the model on a labelled table

        Every metric of the grid, written as the grid writes a run's results. Here it is the
        training table itself, so the scores are optimistic: give a table of images the model
        has not seen.
        """, """
        from mlml_tf import evaluate_model

        metrics = evaluate_model(model, LABELS, IMAGES, f"{OUT}/evaluation")
        {key: metrics[key] for key in ("map", "precision_micro", "recall_micro", "f1_micro")}
        """),
        *step("""
        ## Export for serving

        A TensorFlow SavedModel whose `serving_default` signature takes encoded images (the
        bytes of JPEG or PNG files) and returns their probabilities, ready for TF Serving.
        Read back here with TensorFlow alone.
        """, """
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
