"""Helpers of the notebooks in ``notebooks/``.

This package's own import is :mod:`mlml_tf.notebook.colab`, the machine a notebook runs on
(Colab, Google Drive, the GPU, installing the package's requirements, running an ``mlml-tf``
command, showing figures): it needs the standard library, packaging and IPython only, so that a
notebook's first cell can import it before :func:`setup` installs the requirements that the rest
of the package needs. What the preprocessing notebooks show is in
:mod:`mlml_tf.notebook.preprocessing`, what the results notebooks show in
:mod:`mlml_tf.notebook.results`; a notebook imports them after its setup cell. Off Colab every
function works on the local machine and never touches Colab's services.
"""

from __future__ import annotations

from mlml_tf.notebook.colab import (
    DISTRIBUTION,
    DRIVE_MOUNT_POINT,
    PACKAGE_SOURCE,
    PLACEHOLDER_OWNER,
    PROTECTED,
    REPOSITORY,
    REPOSITORY_URL,
    Machine,
    colab_url,
    gpu_names,
    install_command,
    install_requirements,
    missing_requirements,
    mount_google_drive,
    on_colab,
    protected_constraints,
    run_command,
    setup,
    show,
)

__all__ = [
    "DISTRIBUTION", "DRIVE_MOUNT_POINT", "Machine", "PACKAGE_SOURCE", "PLACEHOLDER_OWNER",
    "PROTECTED", "REPOSITORY", "REPOSITORY_URL", "colab_url", "gpu_names", "install_command",
    "install_requirements", "missing_requirements", "mount_google_drive", "on_colab",
    "protected_constraints", "run_command", "setup", "show",
]
