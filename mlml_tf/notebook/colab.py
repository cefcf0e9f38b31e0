"""The machine a notebook runs on: Colab, Google Drive, the GPU, the package's requirements,
running an ``mlml-tf`` command and showing its figures.

Light on purpose (the standard library, packaging and IPython, all on Colab): a notebook's first
cell imports it before :func:`setup` installs the package's missing requirements, which almost
every other module of the package needs (docs/architecture.md).
"""

from __future__ import annotations

import codecs
import dataclasses
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TextIO

from IPython.display import Image, display
from packaging.requirements import Requirement

#: The GitHub repository of the package: ``owner/name``. The notebooks' install cell and their
#: "Open in Colab" links are generated from it (``notebooks/build_notebooks.py``).
REPOSITORY = "OWNER/mlml-tf"


REPOSITORY_URL = f"https://github.com/{REPOSITORY}"


#: The account in :data:`REPOSITORY` until a real one is set: the notebooks' install cell stops
#: with a message while their ``PACKAGE_SOURCE`` still names it.
PLACEHOLDER_OWNER = "OWNER"


#: Where the notebooks' install cell gets the package by default (their ``PACKAGE_SOURCE``).
PACKAGE_SOURCE = f"git+{REPOSITORY_URL}"


#: Where Colab mounts Google Drive; "My Drive" is ``DRIVE_MOUNT_POINT/MyDrive``.
DRIVE_MOUNT_POINT = "/content/drive"


#: Installed distributions that installing the package's requirements must never replace:
#: Colab's TensorFlow is built against its CUDA, and Keras and numpy must match it.
PROTECTED = ("tensorflow", "keras", "numpy")


DISTRIBUTION = "mlml-tf"


def on_colab() -> bool:
    """Whether this Python runs in a Google Colab kernel (which imports ``google.colab``)."""
    return "google.colab" in sys.modules


def colab_url(notebook: str, branch: str = "main") -> str:
    """The "Open in Colab" address of a notebook of the repository.

    Example:
        >>> colab_url("CE-MSCOCO.ipynb")
        'https://colab.research.google.com/github/OWNER/mlml-tf/blob/main/notebooks/CE-MSCOCO.ipynb'
    """
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{branch}/notebooks/{notebook}"


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """Requirements of ``distribution`` that are not installed (or not in the required range).

    Raises:
        RuntimeError: a protected package (TensorFlow, Keras, numpy) is installed outside the
            package's range; it is never replaced, so the message says what to do instead.
    """

    missing = []
    for text in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        version = _installed_version(requirement.name)
        if version is not None and requirement.specifier.contains(version, prereleases=True):
            continue
        if version is not None and requirement.name.lower() in PROTECTED:
            raise RuntimeError(
                f"{distribution} needs {requirement} but {requirement.name} {version} is "
                "installed; it is left as it is (on Colab it matches the runtime's CUDA). Use a "
                "runtime whose TensorFlow is in that range, or install the package by hand."
            )
        missing.append(str(requirement))
    return missing


def install_command(requirements: Sequence[str], constraints: str | os.PathLike) -> list[str]:
    """The pip command that installs ``requirements`` under a constraints file."""
    return [sys.executable, "-m", "pip", "install", "--quiet", *requirements,
            "--constraint", os.fspath(constraints)]


def protected_constraints() -> str:
    """Constraints pinning the installed TensorFlow, Keras and numpy at their versions."""

    pins = [f"{name}=={v}" for name in PROTECTED if (v := _installed_version(name)) is not None]
    return "".join(f"{pin}\n" for pin in pins)


def install_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """Install what the package needs and the machine lacks, holding TensorFlow as it is.

    The notebooks install the package itself with ``pip install --no-deps``; this installs its
    other requirements (on Colab: pycocotools, iterative-stratification, ...) with the installed
    TensorFlow, Keras and numpy pinned, so pip can add packages but never swap those.

    Returns:
        The requirements that were installed (empty when nothing was missing).
    """

    missing = missing_requirements(distribution)
    if not missing:
        return []
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(protected_constraints())
        subprocess.run(install_command(missing, constraints), check=True)
    importlib.invalidate_caches()
    return missing


@dataclasses.dataclass(frozen=True)
class Machine:
    """What :func:`setup` found: Colab or not, the Drive folder if mounted, the GPUs."""
    colab: bool
    drive: Path | None
    gpus: tuple[str, ...]


def mount_google_drive(mount_point: str = DRIVE_MOUNT_POINT) -> Path:
    """Mount Google Drive on Colab (Colab asks for permission); return "My Drive"'s folder."""
    if not on_colab():
        raise RuntimeError("Google Drive can be mounted only in a Colab kernel")
    # The module exists only in a Colab kernel.
    from google.colab import drive

    drive.mount(mount_point)
    return Path(mount_point) / "MyDrive"


def gpu_names(tensorflow: bool = False) -> list[str]:
    """Names of the GPUs: those TensorFlow sees when ``tensorflow`` (what training will use),
    else those ``nvidia-smi`` lists (no TensorFlow import)."""
    if tensorflow:
        # Here, not at the top: the machine report runs before the package's requirements are
        # installed, and this module is imported first (docs/architecture.md).
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                for g in gpus]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        result = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def setup(mount_drive: bool = True, needs_gpu: bool = False, install: bool = True) -> Machine:
    """Prepare the kernel for a notebook and say what it runs on.

    On Colab: install the package's missing requirements (never TensorFlow, see
    :func:`install_requirements`) and, if ``mount_drive``, mount Google Drive so that data and
    results outlive the session. Everywhere: report the GPUs; warn when ``needs_gpu`` and there
    is none. Off Colab nothing is installed or mounted.

    Args:
        mount_drive: mount Google Drive at ``/content/drive`` (Colab only).
        needs_gpu: the notebook trains: ask TensorFlow which GPUs it sees, warn if none.
        install: install missing requirements (Colab only).

    Returns:
        A :class:`Machine`.
    """

    colab = on_colab()
    if colab and install:
        installed = install_requirements()
        if installed:
            print("installed: " + ", ".join(installed))
    drive = mount_google_drive() if colab and mount_drive else None
    gpus = tuple(gpu_names(tensorflow=needs_gpu))
    print(f"Colab: {'yes' if colab else 'no'}; Google Drive: "
          + (str(drive) if drive else "not mounted" + ("" if colab else " (not on Colab)")))
    print("GPU: " + (", ".join(gpus) if gpus else "none"))
    if needs_gpu and not gpus:
        hint = (" (Runtime > Change runtime type > GPU)" if colab else "")
        warnings.warn("no GPU found: the feature cache and the training run on the CPU, which "
                      f"is slow at the paper's settings{hint}", stacklevel=2)
    return Machine(colab=colab, drive=drive, gpus=gpus)


def _relay(pipe: IO[bytes], stream: TextIO) -> None:
    """Copy ``pipe`` to ``stream`` as the bytes come, so that progress bars redraw in place."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: pipe.read1(65536), b""):
        stream.write(decoder.decode(chunk))
        stream.flush()
    stream.write(decoder.decode(b"", final=True))
    stream.flush()


def run_command(*args: object) -> None:
    """Run a ``mlml-tf`` command as it would run in a terminal (``python -m mlml_tf.cli`` in a
    subprocess), its output and its error messages shown as they come.

    The command's standard output goes to this kernel's ``sys.stdout`` and its standard error
    to ``sys.stderr``, the latter relayed by a thread so that neither pipe can fill and stall
    the command.

    Raises:
        RuntimeError: the command failed; its message (file, line, column) is printed above.
    """
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    out, err = sys.stdout, sys.stderr
    with subprocess.Popen([sys.executable, "-m", "mlml_tf.cli", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        errors = threading.Thread(target=_relay, args=(process.stderr, err), daemon=True)
        errors.start()
        try:
            _relay(process.stdout, out)
        except KeyboardInterrupt:
            # The kernel was interrupted: stop the command as Ctrl-C stops it in a terminal.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        finally:
            errors.join()
    if process.returncode:
        raise RuntimeError(f"`mlml-tf {' '.join(argv)}` failed with status "
                           f"{process.returncode}; the message above says why")


def show(paths: Sequence[str | os.PathLike]) -> None:
    """Display the PNG files among ``paths`` (what the plotting functions return)."""
    for path in paths:
        if Path(path).suffix.lower() == ".png":
            display(Image(filename=os.fspath(path)))
