"""The paper's two data sets, from their raw files to label tables (docs/original.md section 1).

- :mod:`mlml_tf.datasets.coco`: COCO 2017 train, images with at least 4 labels.
- :mod:`mlml_tf.datasets.nuswide`: NUS-WIDE, images with at least 3 labels.
- :mod:`mlml_tf.datasets.download`: fetching the raw COCO files (``download`` names the module
  here; its function is ``mlml_tf.datasets.download.download``).

No TensorFlow here: these are tables of 0/1 labels indexed by sample id, plus the image file of
each id for the input pipeline.
"""

from mlml_tf.datasets.coco import (
    COCO_CATEGORIES,
    COCO_CLASS_NAMES,
    COCO_MIN_LABELS,
    annotation_counts,
    box_survives,
    coco_image_files,
    coco_image_root,
    coco_labels,
    min_labels_filter,
    prepare_coco,
    read_coco,
)
from mlml_tf.datasets.download import download_coco, extract_zip
from mlml_tf.datasets.nuswide import (
    NUSWIDE_CONCEPTS,
    NUSWIDE_MIN_LABELS,
    nuswide_image_files,
    nuswide_labels,
    prepare_nuswide,
    read_nuswide,
)

__all__ = [
    "COCO_CATEGORIES",
    "COCO_CLASS_NAMES",
    "COCO_MIN_LABELS",
    "NUSWIDE_CONCEPTS",
    "NUSWIDE_MIN_LABELS",
    "annotation_counts",
    "box_survives",
    "coco_image_files",
    "coco_image_root",
    "coco_labels",
    "download_coco",
    "extract_zip",
    "min_labels_filter",
    "nuswide_image_files",
    "nuswide_labels",
    "prepare_coco",
    "prepare_nuswide",
    "read_coco",
    "read_nuswide",
]
