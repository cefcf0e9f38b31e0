"""Every method, by name: the registry that the grid, ``mlml-tf train`` and the tables look up.

A new method is one :class:`~mlml_tf.methods.method.Method` in a module of this folder and one
line below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlml_tf.errors import DataError
from mlml_tf.methods.field import AN, AN_LS, ASL, CSL, EPR, WAN
from mlml_tf.methods.method import Method, coerce, read_params_document
from mlml_tf.methods.paper import CB_WCE, CE, IM_WCE
from mlml_tf.methods.revising import LARGE_LOSS, PL_SHRINK, ROLE

#: Every method, in the order tables and figures show them: the paper's three, then the field's.
METHODS: dict[str, Method] = {m.name: m for m in (
    CE, IM_WCE, CB_WCE,
    ASL, CSL, AN, AN_LS, WAN, EPR,
    ROLE, *LARGE_LOSS, PL_SHRINK,
)}
#: The paper's three methods, in the order its tables and figures show them.
PAPER_METHODS: tuple[str, ...] = (CE.name, IM_WCE.name, CB_WCE.name)


def method(name: str) -> Method:
    """The method called ``name``; a DataError naming the known ones otherwise."""
    if name not in METHODS:
        raise DataError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
    return METHODS[name]


def check_settings(name: str, params: Mapping[str, object], epochs: int | None = None,
                   classes: int | None = None) -> None:
    """Refuse hyper-parameters of method ``name`` that are out of range for a training of
    ``epochs`` epochs on ``classes`` classes (a DataError naming them)."""

    chosen = method(name)
    if chosen.check is not None:
        chosen.check(dict(params), epochs, classes)


def method_params(name: str, overrides: Mapping[str, object] | None = None) -> dict:
    """The hyper-parameters of method ``name``: its defaults, with ``overrides`` (checked: an
    unknown name or a value of the wrong kind is a DataError naming it)."""

    defaults = dict(method(name).params)
    params = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise DataError(f"unknown hyper-parameter {key!r} of method {name!r} "
                            f"(its hyper-parameters: {known})")
        params[key] = coerce(name, key, value, defaults[key])
    check_settings(name, params)
    return params


def read_params_file(path: str | os.PathLike) -> dict[str, dict]:
    """Per-method hyper-parameters from a JSON file ``{"csl": {"gamma_unann": 4}, ...}``, each
    checked by :func:`method_params` (a fault names the file)."""

    document = read_params_document(path)
    for name, values in document.items():
        try:
            method_params(name, values)
        except DataError as err:
            raise DataError(err.reason, file=path) from None
    return document
