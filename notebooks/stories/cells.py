"""Cells and notebooks, and the first steps every notebook shares.

Every notebook is a story told in steps: a markdown cell says why, the code cell after it calls
the package and shows the result. The first code cell holds the parameters (papermill's
``parameters`` tag), the second installs the package on Colab, the third reports the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import dedent, fill

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlml_tf.notebook.colab import PACKAGE_SOURCE, PLACEHOLDER_OWNER, colab_url

BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
#: Where the notebooks keep their data folders, runs and figures on Colab (Google Drive).
WORK = "/content/drive/MyDrive/mlml-tf"
#: The longest line of a generated code cell.
WIDTH = 100


def _join(parts: Sequence[str], separator: str) -> str:
    """Each part dedented on its own, so that a part may be inserted whatever its indentation."""
    return separator.join(dedent(p).strip("\n").rstrip() for p in parts if p.strip())


def prose(*pieces: str, width: int = 92) -> str:
    """One paragraph of the pieces, whatever their indentation, wrapped within ``width``."""
    words = " ".join(" ".join(p.split()) for p in pieces if p.strip())
    return fill(words, width=width, break_on_hyphens=False, break_long_words=False)


def md(*parts: str) -> nbformat.NotebookNode:
    """A markdown cell: the parts are paragraphs (empty ones are left out)."""
    return new_markdown_cell(_join(parts, "\n\n"))


def code(*parts: str, parameters: bool = False) -> nbformat.NotebookNode:
    """A code cell: the parts are blocks of lines (empty ones are left out). The parameters
    cell ends with ``PACKAGE_SOURCE``, where every notebook's install cell gets the package."""
    if parameters:
        parts = (*parts, f"""
        # where pip gets the package on Colab: a repository, a wheel file or a PyPI name
        PACKAGE_SOURCE = "{PACKAGE_SOURCE}"
        """)
    cell = new_code_cell(_join(parts, "\n"))
    if parameters:
        cell.metadata["tags"] = ["parameters"]
    return cell


def step(why: str | Sequence[str], *source: str) -> list:
    """One step of a story: the markdown cell that says why (a heading and paragraphs), then the
    code cell that acts."""
    return [md(*([why] if isinstance(why, str) else why)), code(*source)]


def steps(pairs: Sequence[tuple[str, str]]) -> list:
    """The cells of steps given as data, (why, code) pairs."""
    return [cell for why, source in pairs for cell in step(why, source)]


def call(function: str, arguments: Sequence[str]) -> str:
    """``function(arguments...)`` as code, wrapped within :data:`WIDTH` with the continuation
    lines under the first argument (an argument is never cut)."""
    lines, line = [], f"{function}("
    hang = " " * len(line)
    for i, argument in enumerate(arguments):
        text = argument + (")" if i == len(arguments) - 1 else ",")
        if len(line) + len(text) + 1 > WIDTH and not line.endswith("("):
            lines.append(line)
            line = hang + text
        else:
            line += ("" if line.endswith("(") else " ") + text
    return "\n".join([*lines, line])


def notebook(name: str, cells: list, gpu: bool = False) -> nbformat.NotebookNode:
    """A notebook of ``cells``, numbered; Colab opens it on a GPU runtime when ``gpu``."""
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True, "name": f"{name}.ipynb"},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"]["gpuType"] = "T4"
    return nb


def title(name: str, heading: str, *text: str) -> nbformat.NotebookNode:
    """The first cell: the "Open in Colab" badge, the heading and what the notebook does."""
    return md(f"[![Open In Colab]({BADGE})]({colab_url(f'{name}.ipynb')})", f"# {heading}", *text)


def first_steps(parameters: Sequence[str], explained: Sequence[str] = (),
                needs_gpu: bool = False) -> list:
    """The steps every notebook starts with: its ``parameters`` (blocks of lines) under a
    heading and the paragraphs that ``explained`` them, the install cell (Colab only) and the
    machine report, after which the package can be imported."""
    why_gpu = (
        "This notebook trains, so it asks TensorFlow which GPU it sees and warns when there is "
        "none: on a CPU, the paper's backbone over every image and the training of every run "
        "take hours."
        if needs_gpu else "This notebook needs no GPU.")
    return [
        md("## Parameters", *explained),
        code(*parameters, parameters=True),
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
        for permission), so that data folders and results outlive the session. `notebook`
        needs nothing Colab lacks; the rest of the package is imported after this cell.
        """, why_gpu),
        code(f"""
        from mlml_tf import notebook

        machine = notebook.setup(mount_drive=MOUNT_DRIVE, needs_gpu={needs_gpu})
        """),
    ]
