"""The package's shape (docs/architecture.md): layers that import downwards only, TensorFlow kept
out of the layers that do not need it, imports at the top of modules, and no document cited
that the repository does not hold."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlml_tf"
REPOSITORY = PACKAGE.parent

#: The layers, lowest first: a module may import modules of its own layer or of lower ones.
LAYERS = [
    ["mlml_tf.errors"],
    ["mlml_tf.labels", "mlml_tf.metrics"],
    ["mlml_tf.files", "mlml_tf.datasets"],
    ["mlml_tf.methods", "mlml_tf.runs"],
    ["mlml_tf.settings", "mlml_tf.faithful"],
    ["mlml_tf.losses", "mlml_tf.features"],
    ["mlml_tf.training"],
    ["mlml_tf.apps"],
    ["mlml_tf.cli", "mlml_tf.notebook"],
]
#: Modules that never import TensorFlow or Keras, however they are reached.
TENSORFLOW_FREE = [
    "mlml_tf", "mlml_tf.labels", "mlml_tf.metrics", "mlml_tf.files", "mlml_tf.files.split",
    "mlml_tf.files.own_table", "mlml_tf.datasets", "mlml_tf.datasets.digits",
    "mlml_tf.datasets.photos", "mlml_tf.methods", "mlml_tf.runs", "mlml_tf.settings",
    "mlml_tf.faithful",
    "mlml_tf.features.cache", "mlml_tf.training.data", "mlml_tf.training.schedule",
    "mlml_tf.training.record", "mlml_tf.apps.tables", "mlml_tf.apps.figures", "mlml_tf.cli",
    "mlml_tf.notebook", "mlml_tf.notebook.preprocessing", "mlml_tf.notebook.results",
]
#: The imports inside functions that stay there, and why (docs/architecture.md).
DEFERRED = {
    # The lazy public boundary of the package (PEP 562).
    ("mlml_tf", "importlib.import_module"),
    # The module paths of 0.5, served for one release.
    ("mlml_tf._moved", "importlib.import_module"),
    # Only a Colab kernel has it.
    ("mlml_tf.notebook.colab", "google.colab"),
    # A notebook's machine report runs before the requirements are installed.
    ("mlml_tf.notebook.colab", "tensorflow"),
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPOSITORY).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _layer(module: str) -> int:
    for rank, members in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    raise AssertionError(f"{module} is in no layer of docs/architecture.md")


def test_a_lower_layer_never_imports_a_higher_one():
    wrong = []
    for module, path in _modules():
        if module in ("mlml_tf", "mlml_tf._moved"):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "mlml_tf."):
                if _layer(node.module) > _layer(module):
                    wrong.append(f"{module} imports {node.module}")
    assert not wrong


def test_imports_sit_at_the_top_of_modules():
    inside = set()
    for module, path in _modules():
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    inside.add((module, name))
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and node.func.attr == "import_module"):
                    inside.add((module, "importlib.import_module"))
    assert inside == DEFERRED


def test_the_layers_below_the_keras_ones_never_import_tensorflow():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in TENSORFLOW_FREE)
            + "import mlml_tf; mlml_tf.hide_positives; mlml_tf.confidence_weights\n"
            + "from mlml_tf.cli import build_parser; build_parser()\n"
            + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _docstrings(tree) -> set[int]:
    """The ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            found.add(id(body[0].value))
    return found


def test_no_protocol_is_named_outside_its_registry():
    names = {"paper", "rps", "fpc", "single-positive"}
    found = []
    for module, path in _modules():
        if module in ("mlml_tf.files.protocols", "mlml_tf.settings"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in names
                    and id(node) not in docstrings):
                found.append(f"{module}:{node.lineno}: {node.value!r}")
    assert not found


@pytest.mark.parametrize("folder", ["mlml_tf", "tests", "notebooks", "benchmarks", "docs"])
def test_nothing_cites_a_document_outside_the_repository(folder):
    outside = re.compile(r"SPEC(\.md| section| \d)|METHODS\.md")
    found = [f"{p.relative_to(REPOSITORY)}:{n}" for p in sorted((REPOSITORY / folder).rglob("*"))
             if p.suffix in (".py", ".md", ".ipynb")
             for n, line in enumerate(p.read_text().splitlines(), start=1)
             if outside.search(line)]
    assert not found


def test_the_module_paths_of_0_5_still_import_with_a_warning():
    # Names the 0.5 notebooks imported from the modules that 0.6 moved.
    code = ("import warnings, sys\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n"
            "    from mlml_tf.layout import read_manifest\n"
            "except DeprecationWarning as warning:\n"
            "    print(warning)\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "from mlml_tf.layout import read_manifest, read_groundtruth\n"
            "from mlml_tf.results import PAPER_METRICS, collect_runs\n"
            "from mlml_tf.files.layout import read_manifest as new\n"
            "print(read_manifest is new, sorted(PAPER_METRICS)[:1] != [])\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
            "import mlml_tf.train as train\n"
            "try:\n"
            "    train.no_such_name\n"
            "except AttributeError as error:\n"
            "    print(error)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("mlml_tf.layout moved in 0.6 to mlml_tf.files.layout")
    assert out[1:3] == ["True True", "[]"]
    assert "no attribute 'no_such_name'" in out[3]
