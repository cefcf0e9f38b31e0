"""The ``mlml-tf`` command line: its parser, and what a person sees.

Bad input ends with exit status 2 and a message on stderr that names the file, line or column;
no output file is left half-written. The package logs what it does (``logging``); here its lines
go to standard output, and TensorFlow's start-up lines and warnings are left out unless
``--verbose`` asks for them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence

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
    verbose = {"action": "store_true",
               "help": "also show the package's debug lines and TensorFlow's own messages"}
    parser.add_argument("--verbose", "-v", **verbose)
    sub = parser.add_subparsers(dest="command", required=True)
    data.add_parsers(sub)
    grid.add_parsers(sub)
    own.add_parsers(sub)
    for command in sub.choices.values():
        # After the command too; given before it, the command's parser keeps it.
        command.add_argument("--verbose", "-v", default=argparse.SUPPRESS, **verbose)
    return parser


#: The lines TensorFlow's C++ library writes to the standard error when it starts, before any
#: setting of its logging applies (``I0000 00:00:... port.cc:153] oneDNN custom operations ...``).
_TENSORFLOW_LINE = re.compile(
    rb"^([IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] |WARNING: All log messages before "
    rb"absl::InitializeLog\(\)|To enable the following instructions: )")


def _show(verbose: bool) -> None:
    """Where the package's log goes, and how much of TensorFlow's a person sees."""
    package = logging.getLogger("mlml_tf")
    package.setLevel(logging.DEBUG if verbose else logging.INFO)
    if _HANDLER not in package.handlers:
        package.addHandler(_HANDLER)
    package.propagate = False
    _HANDLER.stream = sys.stdout
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow's warnings from Python, its tf.function retracing warnings among them.
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _without_tensorflow_lines(verbose: bool) -> Iterator[None]:
    """The standard error of this process, but for TensorFlow's start-up lines: the file
    descriptor itself passes through a filter, since TensorFlow writes them from C++."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    thread = threading.Thread(target=_filter_lines, args=(read, saved), daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the filter sees its end
        thread.join(timeout=10)
        os.close(saved)


def _filter_lines(read: int, out: int) -> None:
    """Copy ``read`` to ``out`` but for the lines of :data:`_TENSORFLOW_LINE`; a line that
    cannot be one is passed on at once, before its end comes (progress bars)."""
    pending = b""
    with open(read, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            pending += chunk
            parts = re.split(rb"(?<=[\r\n])", pending)
            pending = parts.pop()
            for part in parts:
                if not _TENSORFLOW_LINE.match(part):
                    os.write(out, part)
            if pending and not _could_be_tensorflow(pending):
                os.write(out, pending)
                pending = b""
    if pending and not _TENSORFLOW_LINE.match(pending):
        os.write(out, pending)


def _could_be_tensorflow(start: bytes) -> bool:
    """Whether ``start`` may begin a line of :data:`_TENSORFLOW_LINE` (its end not yet read)."""
    return (bool(_TENSORFLOW_LINE.match(start)) or re.match(rb"^[IWE]\d{0,4}( |$)", start)
            is not None or any(p.startswith(start) for p in (b"WARNING: All log messages",
                                                               b"To enable the following")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _show(args.verbose)
    with _without_tensorflow_lines(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
