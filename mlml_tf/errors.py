"""The one exception raised for bad user input.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input: a malformed file, a value out of range, ids that do not match.

    Attributes name where the fault is; any of them may be ``None``.
    ``row`` is the 1-based line number in the file (the header is line 1) where one applies.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.reason = message
        place = []
        if self.file is not None:
            place.append(self.file)
        if row is not None:
            place.append(f"line {row}")
        if column is not None:
            place.append(f"column {column!r}")
        super().__init__(": ".join([", ".join(place), message]) if place else message)
