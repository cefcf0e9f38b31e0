"""The notebooks, run headless with papermill, as a researcher runs them on Colab.

Each data set's chain runs in order on small data sets in the real formats (a COCO 2017
``instances_train2017.json`` and NUS-WIDE list and tag files, over real photographs): the
preprocessing notebook, the three training notebooks, the results notebook. The results notebook
also reads a folder in the original code's layout. The committed notebooks are what
``notebooks/build_notebooks.py`` writes, without outputs.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import threading
import types
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from fixtures import make_coco_fixture, make_nuswide_fixture
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from mlml_tf import notebook
from mlml_tf.apps.tables import collect_runs, summary_table
from mlml_tf.datasets import COCO_CLASS_NAMES
from mlml_tf.files.layout import read_groundtruth, read_manifest, run_files
from mlml_tf.files.split import verify
from mlml_tf.methods.registry import PAPER_METHODS
from mlml_tf.notebook import colab, preprocessing
from mlml_tf.runs.names import experiment_name

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
EXPECTED = [
    "00-demo", "MSCOCO-preprocessing", "NUSWIDE-preprocessing",
    "CE-MSCOCO", "IM-WCE-MSCOCO", "CB-WCE-MSCOCO", "CE-NUSWIDE", "IM-WCE-NUSWIDE",
    "CB-WCE-NUSWIDE", "MSCOCO-results", "NUSWIDE-results", "Own-data",
]
RATIOS, FOLDS = [0.0, 0.5], [1, 2]
# Small and fast: a random MobileNetV2 on 32 x 32 images, one epoch.
FAST = {"BACKBONE": "MobileNetV2", "WEIGHTS": None, "IMAGE_SIZE": 32, "EPOCHS": 1,
        "BATCH_SIZE": 4, "RATIOS": RATIOS, "FOLDS": FOLDS}
#: The training notebooks each chain runs (the results notebook reads all three: COCO's).
TRAINED = {"coco": ("CE", "IM-WCE", "CB-WCE"), "nuswide": ("CB-WCE",)}
DATASETS = {
    "coco": {"file": "MSCOCO", "slug": "mscoco"},
    "nuswide": {"file": "NUSWIDE", "slug": "nuswide"},
}


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed() -> dict[str, nbformat.NotebookNode]:
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(NOTEBOOKS.glob("*.ipynb"))}


# ------------------------------------------------------------------------------ committed files


def test_every_notebook_is_committed_as_the_generator_writes_it():
    builder = _builder()
    built = builder.build()
    assert sorted(Path(n).stem for n in built) == sorted(EXPECTED)
    assert sorted(_committed()) == sorted(EXPECTED)
    for file_name, nb in built.items():
        committed = (NOTEBOOKS / file_name).read_text(encoding="utf-8")
        assert committed == builder.text(nb), f"{file_name}: run notebooks/build_notebooks.py"


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_is_a_clean_story(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    # every step says why before it acts
    for before, cell in zip(nb.cells, nb.cells[1:], strict=False):
        if cell.cell_type == "code":
            assert before.cell_type == "markdown", f"{name}: {cell.source[:60]!r}"
    install = code[1].source
    assert f'PACKAGE_SOURCE = "{notebook.PACKAGE_SOURCE}"' in code[0].source
    assert "PACKAGE_SOURCE], check=True" in install and "--no-deps" in install
    assert '"google.colab" in sys.modules' in install
    assert "notebook.setup(mount_drive=MOUNT_DRIVE" in code[2].source
    assert notebook.colab_url(f"{name}.ipynb") in nb.cells[0].source


def test_parameters_default_to_the_paper_settings():
    params = {}
    for name, nb in _committed().items():
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        scope: dict = {}
        exec(cell.source, {}, scope)
        params[name] = scope
    for data, min_labels in (("MSCOCO", 4), ("NUSWIDE", 3)):
        prep = params[f"{data}-preprocessing"]
        assert prep["MIN_LABELS"] == min_labels and prep["FOLDS"] == 4
        assert prep["RATIOS"] == [0.0, 0.25, 0.5, 0.75]
        for method in ("CE", "IM-WCE", "CB-WCE"):
            p = params[f"{method}-{data}"]
            assert (p["EPOCHS"], p["BATCH_SIZE"], p["LEARNING_RATE"]) == (20, 32, 0.1)
            assert (p["BACKBONE"], p["WEIGHTS"], p["IMAGE_SIZE"]) == (
                "InceptionResNetV2", "imagenet", 224)
            assert p["RATIOS"] == [0.0, 0.25, 0.5, 0.75] and p["FOLDS"] == [1, 2, 3, 4]
    coco = params["MSCOCO-preprocessing"]
    assert coco["ANNOTATIONS"] == "/content/coco/annotations/instances_train2017.json"
    assert params["MSCOCO-results"]["FIGURE3_RATIO"] == 0.5
    assert params["MSCOCO-results"]["TOP_CLASSES"] == 15


@pytest.mark.parametrize("name", EXPECTED)
def test_the_install_cell_stops_on_the_placeholder_and_installs_from_package_source(
        name, monkeypatch):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    params, install = [c.source for c in nb.cells if c.cell_type == "code"][:2]
    calls = []
    monkeypatch.setattr("subprocess.run", lambda argv, **kw: calls.append(argv))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "mlml_tf" else importlib.machinery.PathFinder
                        .find_spec(n))
    scope: dict = {}
    exec(params, scope)
    with pytest.raises(SystemExit) as stop:
        exec(install, scope)
    message = str(stop.value)
    assert "PACKAGE_SOURCE is still the placeholder" in message and "<account>" in message
    assert calls == [], "pip never runs on the placeholder"
    scope["PACKAGE_SOURCE"] = "/content/mlml_tf-0.4.0-py3-none-any.whl"
    exec(install, scope)
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                      "/content/mlml_tf-0.4.0-py3-none-any.whl"]]


def test_readme_links_every_notebook_to_colab():
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert f"]({notebook.colab_url(f'{name}.ipynb')})" in readme


# ------------------------------------------------------------------------------ helpers


def test_cooccurrence_is_the_conditional_rate_of_positive_pairs():
    labels = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
    counts = preprocessing.cooccurrence(labels, "count")
    np.testing.assert_array_equal(counts, [[3, 2, 1], [2, 2, 1], [1, 1, 1]])
    conditional = preprocessing.cooccurrence(labels)
    # P(b | a) = images with a and b / images with a
    np.testing.assert_allclose(conditional[0], [1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(conditional[1], [1, 1, 0.5])
    assert preprocessing.cooccurrence(np.zeros((2, 2))).tolist() == [[0, 0], [0, 0]]


def test_off_colab_setup_installs_and_mounts_nothing(monkeypatch, capsys):
    def forbidden(*args, **kwargs):
        raise AssertionError("pip must not run off Colab")

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(colab, "install_requirements", forbidden)
    machine = notebook.setup(mount_drive=True, needs_gpu=False)
    assert machine.colab is False and machine.drive is None
    assert "Google Drive: not mounted" in capsys.readouterr().out


def test_on_colab_setup_installs_missing_requirements_and_mounts_drive(monkeypatch):
    mounted, installed = [], []
    google_colab = types.ModuleType("google.colab")
    google_colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setattr(colab, "install_requirements", lambda: installed.append(1) or [])
    monkeypatch.setattr(colab, "gpu_names", lambda tensorflow: [])
    with pytest.warns(UserWarning, match="no GPU found"):
        machine = notebook.setup(mount_drive=True, needs_gpu=True)
    assert mounted == ["/content/drive"] and installed == [1]
    assert machine == notebook.Machine(colab=True, drive=Path("/content/drive/MyDrive"), gpus=())
    machine = notebook.setup(mount_drive=False)
    assert machine.drive is None and mounted == ["/content/drive"]


def test_installing_requirements_never_replaces_tensorflow(monkeypatch, tmp_path):
    # This environment has every requirement: nothing to install.
    assert notebook.missing_requirements() == []
    pins = notebook.protected_constraints().splitlines()
    assert f"tensorflow=={importlib.metadata.version('tensorflow')}" in pins
    command = notebook.install_command(["pycocotools>=2.0.7"], tmp_path / "c.txt")
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-2:] == ["--constraint", str(tmp_path / "c.txt")]
    # A TensorFlow outside the package's range is reported, never reinstalled.
    real = colab._installed_version
    monkeypatch.setattr(colab, "_installed_version",
                        lambda name: "2.99.0" if name == "tensorflow" else real(name))
    with pytest.raises(RuntimeError, match="tensorflow 2.99.0 is installed"):
        notebook.missing_requirements()


def test_run_command_raises_with_the_commands_status(tmp_path, capsys):
    with pytest.raises(RuntimeError, match=r"`mlml-tf split \S+nowhere` failed with status 2"):
        notebook.run_command("split", tmp_path / "nowhere")
    assert "groundtruth.csv: file not found" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="status 2"):
        notebook.run_command("split", tmp_path, "--folds", "zero")


def test_run_command_relays_both_streams_whole_without_stalling(tmp_path, monkeypatch, capsys):
    # A command that fills its stderr pipe many times over before it writes to stdout: read
    # one pipe after the other, it would wait forever.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "head -c 300000 /dev/zero | tr '\\0' e >&2\n"
                    "printf 'progress 50%%\\rprogress 100%%\\n'\n"
                    "head -c 300000 /dev/zero | tr '\\0' o\n"
                    "echo 'mlml-tf: error: the end' >&2\n"
                    "exit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    failure = []
    runner = threading.Thread(target=lambda: failure.append(pytest.raises(
        RuntimeError, notebook.run_command, "anything")))
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "run_command stalled"
    assert "failed with status 3" in str(failure[0].value)
    captured = capsys.readouterr()
    assert captured.err == "e" * 300000 + "mlml-tf: error: the end\n"
    # stdout as the command wrote it, a progress bar's carriage return included
    assert captured.out == "progress 50%\rprogress 100%\n" + "o" * 300000


# ------------------------------------------------------------------------------ running them


def _kernel_uses_this_python(argv0: str) -> bool:
    # jupyter_client starts a spec whose command is "python", "python3" or "python3.X" with
    # sys.executable.
    major, minor = sys.version_info[:2]
    if argv0 in ("python", f"python{major}", f"python{major}.{minor}"):
        return True
    return Path(argv0).absolute().parent == Path(sys.executable).absolute().parent


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernel of this very Python, with this checkout of the package importable.

    The venv's ``python3`` kernel (ipykernel's own spec) when it points at this interpreter;
    otherwise a kernel spec written for it in a temporary folder.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
            name = "python3" if _kernel_uses_this_python(argv0) else None
        except NoSuchKernel:
            name = None
        if name is None:
            from ipykernel.kernelspec import install

            prefix = tmp_path_factory.mktemp("kernel")
            name = "mlml-tf-tests"
            install(kernel_name=name, prefix=str(prefix))
            mp.setenv("JUPYTER_PATH", os.pathsep.join(
                [str(prefix / "share" / "jupyter"),
                 *filter(None, [os.environ.get("JUPYTER_PATH")])]))
        yield name


def _execute(name: str, where: Path, kernel: str, **parameters) -> nbformat.NotebookNode:
    output = where / "executed" / f"{name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"), str(output), parameters=parameters,
        kernel_name=kernel, cwd=str(where), progress_bar=False,
    )
    return nbformat.read(output, as_version=4)


class Chain:
    """One data set's notebooks, in the order a researcher runs them, on a small data set in
    its real format. Each step runs once, when a test first needs it, after the steps before
    it: a test pays only for the notebooks it reads (the three training notebooks cost most of
    the chain; the preprocessing test needs none of them)."""

    def __init__(self, dataset: str, root: Path, kernel: str):
        self.dataset, self.file = dataset, DATASETS[dataset]["file"]
        self.root, self.kernel = root, kernel
        self.data, self.runs, self.figures = (root / kind / dataset
                                              for kind in ("data", "runs", "figures"))
        self.executed: dict[str, nbformat.NotebookNode | Exception] = {}
        self._raw: dict | None = None

    @property
    def raw(self) -> dict:
        if self._raw is None:
            folder = self.root / "raw" / self.dataset
            self._raw = (make_coco_fixture(folder) if self.dataset == "coco"
                         else make_nuswide_fixture(folder, n_images=40))
        return self._raw

    def _run(self, name: str, **parameters) -> nbformat.NotebookNode:
        # A notebook that failed fails every test that needs it, without running again.
        if name not in self.executed:
            try:
                self.executed[name] = _execute(name, self.root, self.kernel, **parameters)
            except Exception as error:
                self.executed[name] = error
        if isinstance(self.executed[name], Exception):
            raise self.executed[name]
        return self.executed[name]

    def prepared(self) -> nbformat.NotebookNode:
        """The preprocessing notebook, run."""
        raw = self.raw
        source = ({"DOWNLOAD": False, "COCO_ROOT": str(raw["root"]),
                   "ANNOTATIONS": str(raw["annotations"])} if self.dataset == "coco"
                  else {"NUS_ROOT": str(raw["root"])})
        return self._run(f"{self.file}-preprocessing", **source, DATA_DIR=str(self.data),
                         MIN_LABELS=2, FOLDS=2, RATIOS=RATIOS, FIGURES=str(self.figures))

    def trained(self) -> dict[str, nbformat.NotebookNode]:
        """The training notebooks, run after the preprocessing one, by method: the three for
        COCO; for NUS-WIDE CB-WCE's, the other two being the same story with another method."""
        self.prepared()
        images = self.raw["images"] if self.dataset == "coco" else self.raw["root"]
        return {method: self._run(f"{method}-{self.file}", **FAST, DATA_DIR=str(self.data),
                                  IMAGES=str(images), OUT=str(self.runs))
                for method in TRAINED[self.dataset]}

    def reported(self) -> nbformat.NotebookNode:
        """The results notebook, run after the training ones."""
        self.trained()
        return self._run(f"{self.file}-results", RUNS=str(self.runs), FIGURES=str(self.figures))


@pytest.fixture(scope="module")
def chains(tmp_path_factory, kernel) -> dict[str, Chain]:
    """The chain of notebooks of each data set, run step by step as the tests need them."""
    root = tmp_path_factory.mktemp("notebooks")
    return {dataset: Chain(dataset, root, kernel) for dataset in DATASETS}


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _text(nb) -> str:
    """Everything a notebook printed or showed as text or Markdown."""
    return "".join(o.get("text", "") + "".join(str(o.get("data", {}).get(kind, ""))
                                               for kind in ("text/plain", "text/markdown"))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_preprocessing_notebook_writes_the_data_folder(chains, dataset):
    chain = chains[dataset]
    prep = chain.prepared()
    labels = read_groundtruth(chain.data)
    n_labels = [len(v) for v in chain.raw["labels"].values()]
    assert len(labels) == sum(n >= 2 for n in n_labels) and (labels.sum(axis=1) >= 2).all()
    assert (chain.data / "images.csv").is_file()
    manifest = read_manifest(chain.data)
    assert manifest["split"]["n_folds"] == 2 and manifest["split"]["ratios"] == RATIOS
    for ratio in RATIOS:
        for fold in FOLDS:
            assert all(p.is_file() for p in run_files(chain.data, ratio, fold).values())
    assert verify(chain.data) == []
    slug = DATASETS[dataset]["slug"]
    for stem in (f"{slug}_cooccurrence", f"{slug}_fold_positive_rates"):
        for ext in ("png", "pdf"):
            assert _nonempty(chain.figures / f"{stem}.{ext}")
    shown = [o for c in prep.cells if c.cell_type == "code" for o in c.outputs
             if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(shown) == 2


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_training_notebooks_train_every_ratio_and_fold(chains, dataset):
    chain = chains[dataset]
    executed = chain.trained()
    runs = collect_runs(chain.runs)
    methods = {m.lower() for m in TRAINED[dataset]}
    assert len(runs) == len(methods) * len(RATIOS) * len(FOLDS)
    assert set(runs["method"]) == methods and set(runs["layout"]) == {"mlml-tf"}
    assert sorted(set(runs["ratio"])) == RATIOS and sorted(set(runs["fold"])) == FOLDS
    scores = runs[["recall_micro", "precision_micro", "f1_micro", "roc_auc_micro"]].to_numpy()
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    # the training notebooks share one feature cache
    caches = [p for p in (chain.runs / "features").iterdir() if p.is_dir()]
    assert len(caches) == 1
    for nb in executed.values():
        # off Colab the machine cell installs and mounts nothing, and says so
        assert "Colab: no; Google Drive: not mounted" in _text(nb)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["coco"])
def test_results_notebook_draws_the_figures_and_the_table(chains, dataset):
    chain = chains[dataset]
    chain.reported()
    figures, slug = chain.figures, DATASETS[dataset]["slug"]
    for stem in (f"{slug}_boxplots", f"{slug}_true_positives"):
        for ext in ("png", "pdf"):
            assert _nonempty(figures / f"{stem}.{ext}")
    table = pd.read_csv(figures / f"{slug}_summary.csv", index_col=[0, 1])
    assert set(table.index.get_level_values(0)) == set(PAPER_METHODS)
    means = table.filter(like="_mean").to_numpy()
    rates = table.filter(like="_mean").drop(columns="map_mean").to_numpy()
    assert ((rates >= 0) & (rates <= 1)).all()
    assert ((table["map_mean"] >= 0) & (table["map_mean"] <= 100)).all(), "mAP x100"
    expected = summary_table(collect_runs(chain.runs))
    np.testing.assert_allclose(means, expected.xs("mean", axis=1, level=1).to_numpy())
    assert "| CB-WCE | 0.5 |" in (figures / f"{slug}_summary.md").read_text()


def _original_runs(root: Path, n_classes: int, seed: int = 0, naming: str = "coco") -> dict:
    """Runs as the original code left them: ``<experiment>/<timestamp>/`` with two
    ``np.savetxt`` files, the last rows of each test set all zero (never predicted), under the
    original's experiment names (ratio 0.25 as ``0.2``; NUS-WIDE's ``nus_3labels_...``)."""
    rng = np.random.default_rng(seed)
    truths = {}
    skill = {"ce": 1.0, "im-wce": 1.5, "cb-wce": 2.0}
    for method in PAPER_METHODS:
        for ratio in (0.0, 0.25, 0.5, 0.75):
            for fold in (1, 2, 3, 4):
                n = 60
                truth = (rng.random((n, n_classes)) < np.linspace(0.4, 0.02, n_classes))
                truth[np.arange(n), rng.integers(0, n_classes, n)] = True
                logits = rng.normal(size=truth.shape) + skill[method] * (2 * truth - 1)
                prob = 1 / (1 + np.exp(-logits))
                truth[-7:], prob[-7:] = False, 0.0
                folder = root / experiment_name(method, ratio, fold, naming)
                # an older, stale timestamp folder: the newest one is the run
                for stamp, values in (("2019-11-02_10-41-03", 1 - prob),
                                      ("2019-11-20_15-32-07", prob)):
                    (folder / stamp).mkdir(parents=True)
                    np.savetxt(folder / stamp / "predictions.out", values, delimiter=",")
                    np.savetxt(folder / stamp / "test_ground_truth_classes.txt",
                               truth.astype(float), delimiter=",")
                truths[(method, ratio, fold)] = (truth.astype(int), prob)
    return truths


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["coco", "nuswide"])
def test_results_notebook_reads_runs_of_the_original_code(tmp_path, kernel, dataset):
    runs, figures = tmp_path / "original_runs", tmp_path / "figures"
    n_classes = len(COCO_CLASS_NAMES) if dataset == "coco" else 81
    truths = _original_runs(runs, n_classes, naming=dataset)
    d = DATASETS[dataset]
    nb = _execute(f"{d['file']}-results", tmp_path, kernel, RUNS=str(runs),
                  FIGURES=str(figures))
    for stem in (f"{d['slug']}_boxplots", f"{d['slug']}_true_positives"):
        for ext in ("png", "pdf"):
            assert _nonempty(figures / f"{stem}.{ext}")
    table = pd.read_csv(figures / f"{d['slug']}_summary.csv", index_col=[0, 1])
    assert len(table) == 12 and set(table.index.get_level_values(0)) == set(PAPER_METHODS)
    assert (table["folds_count"] == 4).all()
    # the notebook's numbers are scikit-learn's on the newest run folder of each experiment
    for method in PAPER_METHODS:
        for ratio in (0.0, 0.25, 0.5, 0.75):
            folds = [truths[(method, ratio, k)] for k in (1, 2, 3, 4)]
            for column, score in (
                ("recall_micro_mean", lambda y, p: recall_score(y, p > 0.5, average="micro")),
                ("precision_micro_mean",
                 lambda y, p: precision_score(y, p > 0.5, average="micro")),
                ("roc_auc_micro_mean", lambda y, p: roc_auc_score(y, p, average="micro")),
            ):
                expected = np.mean([score(y, p) for y, p in folds])
                assert table.loc[(method, ratio), column] == pytest.approx(expected)
    assert "original" in _text(nb)  # the runs table shows their layout
    # stronger skill, better ROC-AUC: the figures show the runs they were given
    auc = table["roc_auc_micro_mean"]
    assert (auc.loc["ce"].to_numpy() < auc.loc["cb-wce"].to_numpy()).all()


@pytest.mark.slow
def test_demo_notebook_runs_offline(tmp_path, kernel):
    out = tmp_path / "demo"
    nb = _execute("00-demo", tmp_path, kernel, OUT=str(out), QUICK=True)
    assert (out / "data" / "groundtruth.csv").is_file() and verify(out / "data") == []
    for stem in ("examples", "cooccurrence", "figure1_boxplots", "figure3_true_positives"):
        for ext in ("png", "pdf"):
            assert _nonempty(out / f"{stem}.{ext}")
    table = pd.read_csv(out / "results.csv")
    assert set(table["method"]) == set(PAPER_METHODS)
    rates = table.filter(like="_mean").drop(columns="map_mean").to_numpy()
    assert np.isfinite(rates).all() and ((rates >= 0) & (rates <= 1)).all()
    assert ((table["map_mean"] > 0) & (table["map_mean"] <= 100)).all(), "mAP x100"
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "image/png" in o.get("data", {})]
    assert len(shown) == 4
    assert "| CB-WCE | 0.5 |" in _text(nb)  # the table is shown


@pytest.mark.slow
def test_own_data_notebook_trains_tags_scores_and_exports(tmp_path, kernel):
    out = tmp_path / "own"
    nb = _execute("Own-data", tmp_path, kernel, OUT=str(out), BACKBONE="MobileNetV2",
                  WEIGHTS="none", IMAGE_SIZE=32, HEAD="gap", EPOCHS=2, BATCH_SIZE=8)
    for path in ("model/model.keras", "model/README.md", "predictions.csv",
                 "evaluation/metrics.json", "serving/1/saved_model.pb"):
        assert (out / path).is_file(), path
    assert len(pd.read_csv(out / "predictions.csv")) == 48
    assert "| validation |" in _text(nb)  # the model card is shown

