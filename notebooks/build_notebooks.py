"""Write the notebooks of this folder: ``python notebooks/build_notebooks.py [--check]``.

Every notebook is a story told in steps: a markdown cell says why, the code cell after it calls
the package and shows the result. The stories are in ``stories/`` next to this file, one
module a kind of notebook, each told once for both data sets. The notebooks are generated,
without outputs, so that the install cell and the "Open in Colab" links follow
``mlml_tf.notebook.REPOSITORY`` and every notebook has the same first steps. ``--check`` only
compares and exits with status 1 if a notebook differs from what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from mlml_tf.files.atomic import write_bytes_atomic

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # The stories beside this file, whether it runs as a script or is loaded from a path.
    sys.path.insert(0, str(HERE))

from stories.datasets import DATASETS  # noqa: E402
from stories.demo import demo  # noqa: E402
from stories.own_data import own_data  # noqa: E402
from stories.preprocessing import preprocessing  # noqa: E402
from stories.results import results  # noqa: E402
from stories.training import LOSS_STORIES, training  # noqa: E402


def build() -> dict[str, nbformat.NotebookNode]:
    """Every notebook of this folder by file name."""
    notebooks = [demo(), *(preprocessing(d) for d in DATASETS.values())]
    notebooks += [training(m, d) for d in DATASETS.values() for m in LOSS_STORIES]
    notebooks += [results(d) for d in DATASETS.values()]
    notebooks.append(own_data())
    return {nb.metadata["colab"]["name"]: nb for nb in notebooks}


def text(nb: nbformat.NotebookNode) -> str:
    """A notebook as its file holds it."""
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
