import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite runs a worker per core (pytest-xdist): each worker's TensorFlow, and the command
# lines and notebook kernels it starts, keep to one thread instead of each filling every core.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("MLML_REFERENCE", REPO.parent / "shared" / "reference"))


def _reference_groundtruth(name: str) -> pd.DataFrame:
    path = REFERENCE / f"{name}_groundtruth.csv.gz"
    if not path.exists():
        pytest.skip(f"real label data not found at {path} (set MLML_REFERENCE to its folder)")
    frame = pd.read_csv(path, dtype={"id": str}).set_index("id")
    frame.index.name = None
    return frame


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.exists():
        pytest.skip(f"real label data not found at {REFERENCE} (set MLML_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def coco_reference() -> pd.DataFrame:
    """The 33,052 published COCO rows: a `fold` column, then 80 classes."""
    return _reference_groundtruth("coco")


@pytest.fixture(scope="session")
def nus_reference() -> pd.DataFrame:
    """The 24,624 published NUS-WIDE rows: a `fold` column, then classes 0..80."""
    return _reference_groundtruth("nuswide")


@pytest.fixture(scope="session")
def coco_labels(coco_reference) -> np.ndarray:
    return coco_reference.drop(columns="fold").to_numpy(np.uint8)


#: The modules that take longest, first: with ``--dist loadfile`` each module runs in one worker
#: (its module fixtures built once) and the workers share the rest as they come free.
_FIRST = ("test_notebooks", "test_interruptions", "test_own_model", "test_demo",
          "test_reproducibility", "test_faithful", "test_packaging", "test_train", "test_model",
          "test_concurrency", "test_cli", "test_revising_methods", "test_bad_input",
          "test_published")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))
