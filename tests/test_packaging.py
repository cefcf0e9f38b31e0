"""The package as people who do not clone get it: an sdist and a wheel, the wheel installed in a
fresh virtual environment, its command line run there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    return out


def test_the_sdist_and_the_wheel_hold_the_package(dist):
    (wheel,) = dist.glob("mlml_tf-*-py3-none-any.whl")
    (sdist,) = dist.glob("mlml_tf-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "mlml_tf").rglob("*.py")]
    assert len(modules) > 60
    for module in modules:
        assert module in names, module
    assert any(n.endswith("entry_points.txt") for n in names)
    assert not any(n.startswith(("tests/", "notebooks/")) for n in names)
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    top = members[0].split("/")[0]
    for path in ("pyproject.toml", "README.md", "mlml_tf/cli/main.py", "docs/original.md"):
        assert f"{top}/{path}" in members, path


def test_the_wheel_installs_in_a_fresh_environment_and_its_command_line_runs(dist, tmp_path):
    (wheel,) = dist.glob("mlml_tf-*-py3-none-any.whl")
    env = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies (TensorFlow and the rest) from this environment, read-only: a plain path
    # in a .pth file, so that this environment's own editable install of mlml_tf is not seen.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True)
    # Away from the source tree, whose mlml_tf/ the current folder would put first.
    where = subprocess.run([str(python), "-c", "import mlml_tf; print(mlml_tf.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(site)), where
    command = env / "bin" / "mlml-tf"
    shown = subprocess.run([str(command), "--help"], check=True, capture_output=True, text=True,
                           cwd=tmp_path)
    assert "split" in shown.stdout and "run" in shown.stdout
    rng = np.random.default_rng(0)
    labels = pd.DataFrame((rng.random((40, 5)) < 0.4).astype(np.uint8),
                          index=[f"img{i}" for i in range(40)], columns=list("abcde"))
    labels.iloc[:, 0] = 1
    data = tmp_path / "data"
    data.mkdir()
    labels.rename_axis("image").to_csv(data / "groundtruth.csv")
    subprocess.run([str(command), "split", str(data), "--folds", "2", "--ratios", "0", "0.5"],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    subprocess.run([str(command), "weights", "--method", "cb", "--labels",
                    str(data / "missing_labels0.5" / "train1_0.5.csv"), "--out",
                    str(tmp_path / "cb.csv")], check=True, capture_output=True, text=True,
                   cwd=tmp_path)
    weights = pd.read_csv(tmp_path / "cb.csv", index_col=0)
    assert weights.shape[1] == 5 and ((weights >= 0) & (weights <= 1)).all().all()
    # A tiny model of one's own images, trained and used from the installed wheel.
    subprocess.run([str(python), "-c", "from mlml_tf.datasets.photos import own_data_example; "
                    "own_data_example('own', n_images=16)"], check=True, cwd=tmp_path)
    own = tmp_path / "own"
    subprocess.run([str(command), "train", "--labels", str(own / "labels.csv"), "--images",
                    str(own / "images"), "--out", str(own / "model"), "--backbone",
                    "MobileNetV2", "--weights", "none", "--image-size", "32", "--head", "gap",
                    "--epochs", "1", "--batch-size", "4", "--validation", "0.25", "--cache",
                    str(own / "cache"), "--quiet"], check=True, capture_output=True, text=True,
                   cwd=tmp_path)
    subprocess.run([str(command), "predict", "--model", str(own / "model"), "--images",
                    str(own / "images"), "--out", str(own / "tags.csv"), "--top-k", "2",
                    "--quiet"], check=True, capture_output=True, text=True, cwd=tmp_path)
    tags = pd.read_csv(own / "tags.csv")
    assert len(tags) == 16 and (tags["labels"].str.count(";") == 1).all()
