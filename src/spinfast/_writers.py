"""Output formats of :class:`spinfast.logx.Logger`: one small writer class per format.

The logger builds each finished row once, as a :class:`Row`, and hands it to every writer's
:meth:`Writer.write_row`; :meth:`Writer.write_config` receives the saved configuration and
:meth:`Writer.close` ends the output. Writers live only on MPI rank 0. Adding a format means
one class here and one entry in :data:`FORMATS`.

File formats made of lines (``progress.txt`` and friends) share :class:`LineFile`: every row
is written with one ``write`` and flushed, so a killed process leaves complete lines only
(a torn last line can only come from a crash inside that one write, and a resume drops it); a
file whose folder vanished mid-run (a ``/tmp`` cleaner, ``rm -r``) is noticed at the next row,
started again with its header in a recreated folder, and reported once with a warning.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

__all__ = ["Row", "ResumePoint", "Writer", "LineFile", "StdoutWriter", "TxtWriter",
           "FORMATS", "DEFAULT_FORMATS", "parse_formats", "make_writers"]


class Row(NamedTuple):
    """A finished row, as every writer receives it.

    Attributes:
        headers: every column of the run so far, in first-row order (the file header).
        values: this row's values by column; a header missing here is empty in this row.
        step: the row's step, for step-indexed formats (TensorBoard, W&B).
    """

    headers: list[str]
    values: dict[str, Any]
    step: int


class ResumePoint(NamedTuple):
    """Where a resumed run continues: keep the first ``rows`` rows, drop the rest.

    Attributes:
        rows: complete rows to keep (those dumped before the checkpoint being resumed).
        step: the step of the first new row.
    """

    rows: int
    step: int


class Writer:
    """One output format: receives finished rows, the config, and the end of the run.

    Subclasses take ``(output_dir, resume=None, output_fname="progress.txt")``: ``resume`` is
    a :class:`ResumePoint` when the run continues an earlier one in ``output_dir``, and file
    formats name their file after the stem of ``output_fname`` (``progress.csv``, ...).
    """

    def write_row(self, row: Row) -> None:
        """Write one finished row (and flush it)."""
        raise NotImplementedError

    def write_config(self, config: Any, text: str) -> None:
        """Record the run's configuration (``config`` JSON-safe, ``text`` as config.json).

        Formats with no place for a configuration ignore it.
        """

    def close(self) -> None:
        """Flush and release what the writer holds; further rows are an error."""


def _field(key: str, val: Any) -> str:
    """The value as written to a line file: ``str(val)``, tabs and line breaks as spaces."""
    s = str(val)
    if "\t" in s or "\n" in s or "\r" in s:
        warnings.warn(f"dump_tabular(): value of {key!r} holds tabs or line breaks, which "
                      f"would corrupt progress.txt; they are written as spaces",
                      RuntimeWarning, stacklevel=4)
        s = s.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return s


class LineFile:
    """A text file of a header line and one line per row, crash-safe and self-healing.

    Args:
        path: the file.
        resume: None to start the file anew; else keep its header and first ``resume.rows``
            rows (a torn last line and every later row are cut off) and append after them.
    """

    def __init__(self, path: str, resume: ResumePoint | None = None):
        self.path = path
        self.has_header = False
        if resume is not None and os.path.exists(path):
            self.has_header = _truncate_lines(path, 1 + resume.rows) > 0
            self.file = open(path, "a")
        else:
            self.file = open(path, "w")
        self._fd_checked = False
        self._warned = False

    @property
    def name(self) -> str:
        """The file's path (as ``open(...).name``)."""
        return self.file.name

    def write(self, header: str, line: str) -> None:
        """Append ``line`` (newline-terminated), preceded by ``header`` if none was written."""
        if os.fstat(self.file.fileno()).st_nlink == 0:
            self._reopen()
        if not self.has_header:
            line = header + line
            self.has_header = True
        self.file.write(line)
        self.file.flush()

    def _reopen(self) -> None:
        # The file was unlinked (its folder removed): start it again where it belongs.
        self.file.close()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.file = open(self.path, "w")
        self.has_header = False
        if not self._warned:
            self._warned = True
            warnings.warn(f"dump_tabular(): {self.path} vanished while the run was writing "
                          f"it (its folder was removed); it was created again, rows before "
                          f"this one are lost from it", RuntimeWarning, stacklevel=4)

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def _truncate_lines(path: str, keep: int) -> int:
    """Cut ``path`` after its first ``keep`` complete lines; return how many it kept."""
    kept, end = 0, 0
    with open(path, "rb") as f:
        for line in f:
            if kept == keep or not line.endswith(b"\n"):
                break
            kept += 1
            end += len(line)
    os.truncate(path, end)
    return kept


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
        vals = [row.values.get(key, "") for key in headers]
        plain = tuple(type(v) in _PLAIN_NUMBERS for v in vals)
        template = self._templates.get(plain)
        if template is None:
            template = self._templates[plain] = _table_template(headers, plain)
        print(template % tuple(v if p else _cell(v) for v, p in zip(vals, plain)), flush=True)


_PLAIN_NUMBERS = frozenset((float, int, bool))


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


class TxtWriter(Writer):
    """Spinning Up's ``progress.txt`` (format ``txt``): tab-separated, a header line first.

    Each row is ``"\\t".join(str(v) ...)``; a header missing in a row is an empty field; tabs
    and line breaks inside values are written as spaces (with a warning).
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self.file = LineFile(os.path.join(output_dir, output_fname), resume)

    def write_row(self, row: Row) -> None:
        """Append the row (the header line first, on a new file)."""
        headers, values = row.headers, row.values
        vals = [values.get(key, "") for key in headers]
        line = "\t".join(str(v) if type(v) in _PLAIN_NUMBERS else _field(k, v)
                         for k, v in zip(headers, vals)) + "\n"
        self.file.write("\t".join(_field(k, k) for k in headers) + "\n", line)

    def close(self) -> None:
        """Close progress.txt."""
        self.file.close()


FORMATS: dict[str, type[Writer]] = {
    "stdout": StdoutWriter,
    "txt": TxtWriter,
}
"""Writer class of each format name."""

DEFAULT_FORMATS = ("stdout", "txt")
"""Formats written when neither ``formats=`` nor ``$SPINFAST_LOG_FORMATS`` names any."""


def parse_formats(formats: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Return the format names of ``formats`` (a comma-separated string or a sequence).

    None means ``$SPINFAST_LOG_FORMATS``, else :data:`DEFAULT_FORMATS`. Names are stripped,
    lower-cased and deduplicated in order.

    Raises:
        ValueError: an unknown format name (the message lists the valid ones).
        TypeError: ``formats`` is neither a string nor a sequence of strings.
    """
    if formats is None:
        formats = os.environ.get("SPINFAST_LOG_FORMATS") or DEFAULT_FORMATS
    if isinstance(formats, str):
        names = formats.split(",")
    elif isinstance(formats, (list, tuple)) and all(isinstance(f, str) for f in formats):
        names = list(formats)
    else:
        raise TypeError(f"Logger(): formats must be a comma-separated string or a sequence of "
                        f"format names, got {formats!r}")
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name not in FORMATS:
            raise ValueError(f"Logger(): unknown output format {name!r}; valid formats: "
                             f"{', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def make_writers(names: tuple[str, ...], output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt") -> list[Writer]:
    """Open one writer per format name (names as returned by :func:`parse_formats`)."""
    return [FORMATS[name](output_dir, resume, output_fname) for name in names]
