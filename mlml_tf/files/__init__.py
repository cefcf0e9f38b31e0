"""Files: the original's CSV layout, data folders, protocols, splits and a user's own table.

Layer 2: numpy and pandas, no TensorFlow.
"""

from __future__ import annotations

from mlml_tf.files.atomic import (
    atomic_path,
    file_digest,
    folder_lock,
    remove_stale_temporaries,
    write_bytes_atomic,
)
from mlml_tf.files.global_weights import (
    check_global_weights,
    read_global_weights,
)
from mlml_tf.files.layout import (
    GROUNDTRUTH,
    IMAGES,
    LAYOUT_VERSION,
    MANIFEST,
    data_classes,
    data_set,
    image_files,
    ratio_folder,
    ratio_from_tag,
    ratio_tag,
    ratio_text,
    read_groundtruth,
    read_manifest,
    read_run_labels,
    run_files,
    write_groundtruth,
    write_image_list,
    write_manifest,
)
from mlml_tf.files.own_table import (
    IMAGE_SUFFIXES,
    LabelTable,
    read_label_table,
    validation_rows,
)
from mlml_tf.files.protocols import (
    PROTOCOLS,
    protocol_files,
    protocol_folder,
    read_protocol_labels,
)
from mlml_tf.files.published import (
    derive_complete_labels,
    prepare_published,
    read_complete_labels,
)
from mlml_tf.files.split import (
    split,
    split_protocol,
    verify,
)
from mlml_tf.files.tables import (
    check_same_table,
    csv_field,
    read_positive_weights,
    read_table,
    table_bytes,
    table_classes,
    write_positive_weights,
    write_table,
    write_weights,
)

__all__ = [
    "atomic_path",
    "write_bytes_atomic",
    "remove_stale_temporaries",
    "file_digest",
    "folder_lock",
    "GROUNDTRUTH",
    "MANIFEST",
    "IMAGES",
    "LAYOUT_VERSION",
    "ratio_text",
    "ratio_tag",
    "ratio_from_tag",
    "ratio_folder",
    "run_files",
    "read_run_labels",
    "read_groundtruth",
    "write_groundtruth",
    "data_set",
    "read_manifest",
    "write_manifest",
    "write_image_list",
    "image_files",
    "data_classes",
    "read_complete_labels",
    "derive_complete_labels",
    "prepare_published",
    "read_global_weights",
    "check_global_weights",
    "IMAGE_SUFFIXES",
    "LabelTable",
    "read_label_table",
    "validation_rows",
    "PROTOCOLS",
    "protocol_folder",
    "protocol_files",
    "read_protocol_labels",
    "split",
    "split_protocol",
    "verify",
    "table_classes",
    "read_table",
    "read_positive_weights",
    "check_same_table",
    "table_bytes",
    "csv_field",
    "write_table",
    "write_positive_weights",
    "write_weights",
]
