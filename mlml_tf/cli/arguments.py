"""The command line's arguments: those of the options table (:mod:`mlml_tf.settings`), added to
a command's parser and read back into settings objects, and the command line's own (a shard, a
threshold, per-method hyper-parameters by ``--set`` and ``--params``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlml_tf.errors import DataError
from mlml_tf.files.published import complete_label_classes
from mlml_tf.files.tables import table_classes
from mlml_tf.methods.prior import read_class_prior
from mlml_tf.methods.registry import method_params, read_params_file
from mlml_tf.settings import FitSettings, GridOptions, Kind, Option, RunConfig, options

#: The exit status of bad input: a message on stderr names the file, line or column.
EXIT_BAD_INPUT = 2

#: Where the parsed arguments keep the names of the options a person gave (:func:`given_options`).
_GIVEN = "_given_options"

PROBABILITY = Kind(float, lambda v: 0.0 <= v <= 1.0, "threshold ", "a number or 'tuned'",
                   "is outside [0, 1]")


def shard(text: str) -> tuple[int, int]:
    """``i/n``: the i-th of n interleaved parts of a grid."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard {text!r} is not of the form i/n") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 1 <= i <= n")
    return i, n


def threshold(text: str):
    """"tuned" or a probability."""
    return text if text == "tuned" else PROBABILITY.parse(text)


def add_method_overrides(parser: argparse.ArgumentParser, several: bool = True) -> None:
    """``--set METHOD.NAME=VALUE`` (repeatable) and ``--params FILE``."""
    parser.add_argument("--set", action="append", metavar="METHOD.NAME=VALUE",
                        help="a hyper-parameter of a method, e.g. csl.gamma_unann=4"
                        + (" (repeatable)" if several else ""))
    parser.add_argument("--params", type=Path, default=None,
                        help='a JSON file of hyper-parameters: {"csl": {"gamma_unann": 4}}')


def method_overrides(args: argparse.Namespace) -> dict[str, dict]:
    """Per-method hyper-parameters: the ``--params`` file, then every ``--set``, checked; a
    prior file named by CSL's ``prior`` is checked against the classes before anything is
    written."""
    overrides = read_params_file(args.params) if args.params else {}
    for text in args.set or []:
        key, equals, value = text.partition("=")
        name, dot, param = key.partition(".")
        if not equals or not dot or not param:
            raise DataError(f"--set {text!r} is not of the form METHOD.NAME=VALUE "
                            "(e.g. csl.gamma_unann=4)")
        method_params(name, {param: value})
        overrides.setdefault(name, {})[param] = value
    prior = overrides.get("csl", {}).get("prior")
    if prior not in (None, "auto", "none"):
        classes = (table_classes(args.labels) if getattr(args, "data", None) is None
                   else complete_label_classes(args.data))
        read_class_prior(Path(prior), classes)
    return overrides


class _Recorded(argparse.Action):
    """Stores an option's value (True for a switch) and records that it was given."""

    def __init__(self, option_strings, dest, switch: bool = False, **kwargs):
        if switch:
            kwargs.update(nargs=0, default=False)
        self.switch = switch
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if self.switch else values)
        setattr(namespace, _GIVEN, getattr(namespace, _GIVEN, frozenset()) | {self.dest})


def given_options(args: argparse.Namespace) -> frozenset[str]:
    """The names of the table's options given on the command line, whatever their value."""
    return getattr(args, _GIVEN, frozenset())


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add to ``parser`` the options that ``command`` takes, each as its table says; which
    were given is kept (:func:`given_options`)."""
    for option in options(command=command):
        extra: dict = {"action": _Recorded}
        if option.flag:
            extra["switch"] = True
        elif option.words:
            extra.update(choices=list(option.words), default=next(
                w for w, v in option.words.items() if v == option.default))
        else:
            extra.update(default=option.default, type=_argument_type(option))
            if option.choices:
                extra["choices"] = list(option.choices)
        if option.metavar:
            extra["metavar"] = option.metavar
        parser.add_argument(option.flag_name, dest=option.name, help=option.help, **extra)


def _argument_type(option: Option):
    if option.kind is not None:
        return option.kind.parse
    if option.type == "Path | None":
        return Path
    return None


def from_arguments(args: argparse.Namespace, scope: str, **values):
    """The settings object of ``scope`` from parsed arguments (the command's options of that
    scope), with ``values`` besides."""
    cls = {"run": RunConfig, "grid": GridOptions, "fit": FitSettings}[scope]
    for option in options(scope):
        if option.name in values or not hasattr(args, option.name):
            continue
        value = getattr(args, option.name)
        values[option.name] = option.words[value] if option.words else value
    return cls(**values)
