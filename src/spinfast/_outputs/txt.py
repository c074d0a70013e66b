"""Spinning Up's ``progress.txt`` (format ``txt``)."""

from __future__ import annotations

import warnings
from typing import Any

from spinfast._outputs.separated import SeparatedWriter

__all__ = ["TxtWriter"]


def _field(key: str, val: Any) -> str:
    """The value as written to a line file: ``str(val)``, tabs and line breaks as spaces."""
    s = str(val)
    if "\t" in s or "\n" in s or "\r" in s:
        warnings.warn(f"dump_tabular(): value of {key!r} holds tabs or line breaks, which "
                      f"would corrupt progress.txt; they are written as spaces",
                      RuntimeWarning, stacklevel=4)
        s = s.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return s


class TxtWriter(SeparatedWriter):
    """Spinning Up's ``progress.txt`` (format ``txt``): tab-separated, a header line first.

    Each row is ``"\\t".join(str(v) ...)``; a header missing in a row is an empty field; tabs
    and line breaks inside values are written as spaces (with a warning).
    """

    field = staticmethod(_field)
