"""``mlml-tf run --faithful``: settings as the original ran them, all or nothing.

Each option of a run or of the grid declares how it stands to the original
(``Option.faithful`` in :mod:`mlml_tf.settings`). :func:`faithful_settings` gives every option
left at its default the original's value and refuses one set to a value that departs from it;
:func:`departures` lists the options of a settings object that depart; :func:`is_faithful` says
whether a run's settings are the original's, which ``metrics.json`` records.

No TensorFlow here: the command line checks its arguments with it before loading any.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from typing import Any

from mlml_tf.errors import DataError
from mlml_tf.settings import ANY, REQUIRED, Option, Original, options


def departure(option: Option, value, argument: str | None = None) -> str:
    """The message of ``--faithful`` refusing ``value`` of ``option`` (``argument``: how the
    command line names it, default its flag)."""
    argument = argument or option.flag_name
    shown = argument if option.flag and value is True else f"{argument} {option.spelled(value)}"
    return (f"{shown} departs from the original ({option.original}): --faithful runs "
            "everything as the original did; leave the option out or drop --faithful")


def departures(settings) -> list[Option]:
    """The options of ``settings`` (a :class:`~mlml_tf.settings.RunConfig` or
    :class:`~mlml_tf.settings.GridOptions`) whose value
    changes what the original computed, in table order."""
    return [f.metadata["option"] for f in dataclasses.fields(settings)
            if f.metadata["option"].departs(getattr(settings, f.name), settings)]


def is_faithful(*settings) -> bool:
    """Whether every option of every settings object in ``settings`` is the original's: a run
    of ``mlml-tf run --faithful``."""
    return not any(departures(s) for s in settings)


def faithful_settings(settings, data: str | os.PathLike, given: Collection[str] = ()):
    """``settings`` (a :class:`~mlml_tf.settings.GridOptions` or
    :class:`~mlml_tf.settings.RunConfig`) as ``--faithful`` runs them.

    An option left at its default takes the original's value; one set to the original's value
    (or to another that computes the same, e.g. ``cb_source`` "oracle") stays; one set to any
    other value stops. ``given``: the names of the options a person gave, which count as set
    even at their default (``--shuffle-buffer 0`` is refused, not turned into 100).

    Raises:
        DataError: naming the first option that departs, its value and the original's.
    """
    changes = {}
    for field in dataclasses.fields(settings):
        option = field.metadata["option"]
        value = getattr(settings, field.name)
        if option.faithful is ANY:
            continue
        left = (field.name not in given and option.default is not REQUIRED
                and value == option.default)
        if left and isinstance(option.faithful, Original):
            changes[field.name] = option.faithful.pick(data, settings)
        elif left:
            changes[field.name] = option.faithful
        elif option.departs(value, settings):
            raise DataError(departure(option, value))
    return dataclasses.replace(settings, **changes)


def check_faithful(scope: str, values: Mapping[str, Any],
                   arguments: Mapping[str, str] | None = None) -> None:
    """Refuse ``values`` (option name -> value) of the options of ``scope`` that depart from
    the original; ``arguments`` names them as the command line does where that is not their
    flag (``{"method": "--methods"}``).

    Raises:
        DataError: naming the first that departs.
    """
    declared = {o.name: o for o in options(scope)}
    for name, value in values.items():
        if declared[name].departs(value):
            raise DataError(departure(declared[name], value, (arguments or {}).get(name)))
