"""``progress.csv`` (format ``csv``)."""

from __future__ import annotations

import warnings
from typing import Any

from spinfast._outputs.separated import SeparatedWriter

__all__ = ["CsvWriter"]


def _csv_field(key: str, val: Any) -> str:
    """A value as written to a csv cell: ``str(val)``, line breaks as spaces, quoted if needed."""
    s = str(val)
    if "\n" in s or "\r" in s:
        warnings.warn(f"dump_tabular(): value of {key!r} holds line breaks, which would split "
                      f"a row of progress.csv; they are written as spaces",
                      RuntimeWarning, stacklevel=4)
        s = s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if "," in s or '"' in s:
        s = '"' + s.replace('"', '""') + '"'
    return s


class CsvWriter(SeparatedWriter):
    """``progress.csv`` (format ``csv``): the rows of ``progress.txt``, comma-separated.

    Header and values are those of ``progress.txt`` (``str()`` of each value, a missing column
    empty); a cell holding a comma or a double quote is quoted as RFC 4180 says (quotes
    doubled), line breaks in values are written as spaces, so each row is one line (which is
    what makes a killed run leave complete rows and lets a resume cut the file by lines).
    ``pandas.read_csv`` reads the numbers ``pandas.read_table`` reads from ``progress.txt``.
    """

    SEP = ","
    SPECIAL = ('"', "\n", "\r")
    EXT = ".csv"
    field = staticmethod(_csv_field)
