"""``progress.jsonl`` (format ``jsonl``)."""

from __future__ import annotations

import json
import numbers
from typing import Any

from spinfast._outputs import ResumePoint, Row, Writer, row_strings, row_values, stem_path
from spinfast._outputs._appender import LineFile

__all__ = ["JsonlWriter"]

_JSON_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_JSON_PLAIN = frozenset((float, int))
_NON_FINITE = frozenset(_JSON_NONFINITE)


def _json_value(val: Any) -> str:
    """The JSON text of a value that is not a Python float, int or str.

    numpy real scalars are written as ``str()`` writes them (the number ``progress.txt`` has),
    booleans as ``true``/``false``, arrays as (nested) lists, other objects as their ``str()``.
    """
    if isinstance(val, bool) or type(val).__name__ == "bool_":
        return "true" if val else "false"
    if isinstance(val, numbers.Integral):
        return str(int(val))
    if isinstance(val, numbers.Real):
        s = str(val)
        try:
            float(s)
        except ValueError:  # an exotic __str__: fall back to the float's repr
            s = repr(float(val))
        return _JSON_NONFINITE.get(s, s)
    if hasattr(val, "tolist"):
        try:
            return json.dumps(val.tolist(), allow_nan=True, default=str)
        except (TypeError, ValueError):
            pass
    return json.dumps(str(val))


class JsonlWriter(Writer):
    """``progress.jsonl`` (format ``jsonl``): one JSON object per row, one row per line.

    Keys are the row's columns in header order; a column missing from a row is left out.
    Numbers are written as ``progress.txt`` writes them (``str()``, the shortest repr of a
    float); NaN and +/-infinity as ``NaN``, ``Infinity`` and ``-Infinity``, the extension that
    Python's ``json`` writes and reads by default and ``pandas.read_json`` reads; arrays as
    lists; other objects as their ``str()``. Strict JSON parsers reject the non-finite
    spellings: log finite numbers if such a reader must load the file. Read it with
    ``pandas.read_json(path, lines=True, precise_float=True)``: without ``precise_float``
    pandas parses floats to within an ulp or two instead of exactly.
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self.file = LineFile(stem_path(output_dir, output_fname, ".jsonl"), resume,
                             header=False)
        self._headers: list[str] = []
        self._keys: list[tuple[str, str]] = []
        self._template = ""

    def write_row(self, row: Row) -> None:
        """Append the row as one JSON object on one line."""
        headers, values = row.headers, row.values
        if headers != self._headers:
            self._headers = list(headers)
            self._keys = [(k, json.dumps(k) + ":") for k in headers]
            self._template = ("{" + ",".join(p.replace("%", "%%") + "%s" for _, p in self._keys)
                              + "}\n")
        strings = row_strings(row)
        if set(map(type, row_values(row))) <= _JSON_PLAIN and _NON_FINITE.isdisjoint(strings):
            # every column present, a finite float or an int: str() is the JSON text
            self.file.write("", self._template % tuple(strings))
            return
        parts = []
        for (key, prefix), text in zip(self._keys, strings):
            if key not in values:
                continue
            v = values[key]
            t = type(v)
            if t is float:  # str(float) is its shortest repr, valid JSON when finite
                s = text if v - v == 0 else ("NaN" if v != v else
                                             ("Infinity" if v > 0 else "-Infinity"))
            elif t is int:
                s = text
            elif t is str:
                s = json.dumps(v)
            else:
                s = _json_value(v)
            parts.append(prefix + s)
        self.file.write("", "{" + ",".join(parts) + "}\n")

    def close(self) -> None:
        """Close progress.jsonl."""
        self.file.close()
