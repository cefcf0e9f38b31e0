"""The ``mlml-tf`` command line: its parser, and what a person sees.

Bad input ends with exit status 2 and a message on stderr that names the file, line or column;
no output file is left half-written. The package logs what it does (``logging``); here its lines
go to standard output, and TensorFlow's start-up lines and warnings are left out unless
``--verbose`` asks for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from mlml_tf.cli import data, grid, own
from mlml_tf.cli.arguments import EXIT_BAD_INPUT
from mlml_tf.errors import DataError
from mlml_tf.methods.registry import METHODS, PAPER_METHODS

#: The handler that shows the package's log on standard output (one, however often ``main`` runs).
_HANDLER = logging.StreamHandler(sys.stdout)
_HANDLER.setFormatter(logging.Formatter("%(message)s"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlml-tf",
        description="Multi-label classification with missing labels: CE, IM-WCE and CB-WCE "
        "(Ibrahim et al., ICMR 2020) beside the field's "
        + ", ".join(m.label for m in METHODS.values() if m.name not in PAPER_METHODS)
        + ", in TensorFlow 2 / Keras 3.",
    )
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show the package's debug lines and TensorFlow's own messages")
    sub = parser.add_subparsers(dest="command", required=True)
    data.add_parsers(sub)
    grid.add_parsers(sub)
    own.add_parsers(sub)
    return parser


def _show(verbose: bool) -> None:
    """Where the package's log goes, and how much of TensorFlow's a person sees."""
    package = logging.getLogger("mlml_tf")
    package.setLevel(logging.DEBUG if verbose else logging.INFO)
    if _HANDLER not in package.handlers:
        package.addHandler(_HANDLER)
    package.propagate = False
    _HANDLER.stream = sys.stdout
    if not verbose:
        # Read by TensorFlow's C++ logging when it is first imported (after parsing).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _show(args.verbose)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"mlml-tf: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # A path the user gave that cannot be read or written (a folder, no permission, ...).
        if exc.filename is None:
            raise
        print(f"mlml-tf: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mlml-tf: interrupted", file=sys.stderr)
        return 130
