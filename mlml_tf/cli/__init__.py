"""The ``mlml-tf`` command line (:func:`main`); each module one family of commands."""

from mlml_tf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
