"""Spinning Up's stdout table (format ``stdout``)."""

from __future__ import annotations

from typing import Any

from spinfast._outputs import ResumePoint, Row, Writer, row_values

__all__ = ["StdoutWriter"]

_PLAIN_NUMBERS = frozenset((float, int, bool))


class StdoutWriter(Writer):
    """The stdout table of Spinning Up, printed for every row (format ``stdout``).

    ``w = max(15, longest key)``; a rule of ``22 + w`` dashes; per column
    ``| <key right-aligned in w> | <value right-aligned in 15> |``, numbers as ``%8.3g``,
    arrays and other values with ``str()``; the rule again; flushed.
    """

    def __init__(self, output_dir: str | None = None, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self._headers: list[str] = []
        self._templates: dict[tuple[bool, ...], str] = {}

    def write_row(self, row: Row) -> None:
        """Print the row's table."""
        headers = row.headers
        if headers != self._headers:
            self._headers = list(headers)
            self._templates.clear()
        vals = tuple(row_values(row))
        if set(map(type, vals)) <= _PLAIN_NUMBERS:  # the common row: numbers only
            plain = (True,) * len(vals)
        else:
            plain = tuple(type(v) in _PLAIN_NUMBERS for v in vals)
            vals = tuple(v if p else _cell(v) for v, p in zip(vals, plain))
        template = self._templates.get(plain)
        if template is None:
            template = self._templates[plain] = _table_template(headers, plain)
        print(template % vals, flush=True)


def _table_template(headers: list[str], plain: tuple[bool, ...]) -> str:
    """The ``%`` template of a table: ``%15.3g`` slots for plain numbers, ``%15s`` others."""
    width = max(15, max(len(k) for k in headers))
    rule = "-" * (22 + width)
    lines = [("| %*s | " % (width, key)).replace("%", "%%") + ("%15.3g |" if p else "%15s |")
             for key, p in zip(headers, plain)]
    return "\n".join([rule, *lines, rule])


def _cell(val: Any) -> str:
    """A non-plain value as shown in the table: ``%8.3g`` if it is a number, else ``str()``."""
    if getattr(val, "ndim", 0) and getattr(val, "size", 1) != 1:
        return str(val)  # an array of several values
    if hasattr(val, "__float__") and not isinstance(val, (str, bytes)):
        try:
            return "%8.3g" % val
        except TypeError:
            pass
    return str(val)
