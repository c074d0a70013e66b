"""The base of the formats of one separated line per row (``txt`` and ``csv``)."""

from __future__ import annotations

import os

from spinfast._outputs import ResumePoint, Row, Writer, row_strings, stem_path
from spinfast._outputs._appender import LineFile

__all__ = ["SeparatedWriter"]


class SeparatedWriter(Writer):
    """A file of a header line and one line per row, fields joined by ``SEP``.

    Values are formatted once per row for every line format (:func:`row_strings`); a row
    holding ``SEP`` or one of ``SPECIAL`` in a value takes ``field(key, text)`` for every cell
    (the format's escaping, with a warning where it changes the value). The file is
    ``output_fname`` itself, or, with ``EXT``, its stem with that extension. A format sets
    ``SEP``, ``SPECIAL``, ``EXT`` and ``field``.
    """

    SEP = "\t"
    SPECIAL: tuple[str, ...] = ("\n", "\r")  # besides SEP: characters that need field()
    EXT = ""

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self.file = LineFile(stem_path(output_dir, output_fname, self.EXT)
                             if self.EXT else os.path.join(output_dir, output_fname), resume)
        self._headers: list[str] = []
        self._header_line = ""

    @staticmethod
    def field(key: str, text: str) -> str:
        """Return a cell as written (escaped)."""
        raise NotImplementedError

    def write_row(self, row: Row) -> None:
        """Append the row (the header line first, on a new file)."""
        headers, sep = row.headers, self.SEP
        if headers != self._headers:
            self._headers = list(headers)
            self._header_line = sep.join(self.field(k, k) for k in headers) + "\n"
        strings = row_strings(row)
        body = sep.join(strings)
        if body.count(sep) != len(headers) - 1 or any(c in body for c in self.SPECIAL):
            body = sep.join(self.field(k, v) for k, v in zip(headers, strings))
        self.file.write(self._header_line, body + "\n")

    def close(self) -> None:
        """Close the file."""
        self.file.close()
