"""Output formats of :class:`spinfast.logx.Logger`: one small writer class per format.

The logger builds each finished row once, as a :class:`Row`, and hands it to every writer's
:meth:`Writer.write_row`; :meth:`Writer.write_config` receives the saved configuration and
:meth:`Writer.close` ends the output. Writers live only on MPI rank 0. Adding a format means
one class here and one entry in :data:`FORMATS`.

File formats made of lines (``progress.txt`` and friends) share :class:`LineFile`: every row
is written with one ``write`` and flushed, so a killed process leaves complete lines only
(Linux may stop a write at a page boundary when a SIGKILL arrives during it, leaving a prefix
of that one last line; a resume drops it, and a new run starts the file anew). A file whose
folder vanished mid-run (a ``/tmp`` cleaner, ``rm -r``) is noticed within 0.1 s or 64 rows
(:class:`_Appender`), started again in a recreated folder with its header and every row
written since it was last seen, and reported once with a warning.
"""

from __future__ import annotations

import json
import numbers
import os
import struct
import time
import warnings
from itertools import repeat
from typing import Any, NamedTuple

__all__ = ["Row", "ResumePoint", "Writer", "LineFile", "StdoutWriter", "TxtWriter",
           "CsvWriter", "JsonlWriter", "TensorBoardWriter", "WandbWriter", "FORMATS",
           "DEFAULT_FORMATS", "parse_formats", "make_writers"]


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


# How often an output file's link count is checked (see _Appender): at every row when rows
# come at least this many seconds apart, as in training; else at least once per this many rows.
CHECK_SECONDS = 0.1
CHECK_ROWS = 64


class _Appender:
    """Appends rows to an open file, each with one ``write``, and notices a vanished folder.

    A cleaner of ``/tmp`` or an ``rm -r`` can remove the folder of a running logger; the
    writes then go to an unlinked file. The file's link count (one ``fstat``) is checked
    before a row at most :data:`CHECK_SECONDS` after the last check or :data:`CHECK_ROWS`
    rows later, whichever comes first, and at :meth:`close`. The rows written since the last
    check are kept, so a vanished file is started again (``start()``: the new open file and
    the bytes that begin it, such as a header) holding all of them: nothing written after the
    folder vanished is lost, and one warning names the path.

    Args:
        file: the open file (binary or text; only its descriptor is written to).
        start: makes the file again once its folder vanished; returns ``(file, head)``.
        path: the file or folder named by the warning.
        what: what was being written, for the warning.
    """

    def __init__(self, file, start, path: str, what: str):
        self.file = file
        self._fd = file.fileno()
        self._start = start
        self._path = path
        self._what = what
        self._recent: list[bytes] = []  # the rows written since the last check
        self._check_at = 0.0  # monotonic time of the next check at the latest
        self._warned = False

    def append(self, data: bytes, head: bytes = b"") -> None:
        """Write ``head + data`` with one ``write``; ``data`` is a row, kept until the next
        check (``head``, such as the header line of a new file, is not)."""
        recent = self._recent
        if len(recent) >= CHECK_ROWS or time.monotonic() >= self._check_at:
            self.check()
            recent = self._recent
        recent.append(data)
        _write_all(self._fd, head + data if head else data)

    def check(self) -> None:
        """Start the file again, holding the rows since the last check, if it was unlinked."""
        if os.fstat(self._fd).st_nlink == 0:
            self.file.close()
            self.file, head = self._start()
            self._fd = self.file.fileno()
            _write_all(self._fd, head + b"".join(self._recent))
            if not self._warned:
                self._warned = True
                warnings.warn(f"dump_tabular(): {self._path} vanished while the run was writing "
                              f"{self._what} (its folder was removed); it was created again "
                              f"with the {len(self._recent)} rows written since it was last "
                              f"seen, earlier rows are lost from it", RuntimeWarning,
                              stacklevel=5)
        self._recent = []
        self._check_at = time.monotonic() + CHECK_SECONDS

    def close(self) -> None:
        """Check a last time, then close the file."""
        if not self.file.closed:
            self.check()
            self.file.close()


class LineFile:
    """A text file of a header line and one line per row, crash-safe and self-healing.

    Each line is encoded and handed to the system with one ``write`` on the file's descriptor
    (no Python buffer in between: that is the flush); a vanished folder is handled by
    :class:`_Appender`.

    Args:
        path: the file.
        resume: None to start the file anew; else keep its header and first ``resume.rows``
            rows (a torn last line and every later row are cut off) and append after them.
        header: False for a file of rows only (``progress.jsonl``): no header line is kept
            or written (``write``'s ``header`` is then ignored).
    """

    def __init__(self, path: str, resume: ResumePoint | None = None, header: bool = True):
        self.path = path
        self.header_lines = 1 if header else 0
        self.header = b""  # the header line written, once there is one
        if resume is not None and os.path.exists(path):
            kept = _truncate_lines(path, self.header_lines + resume.rows)
            if header and kept:
                with open(path, "rb") as f:
                    self.header = f.readline()
            file = open(path, "a", encoding="utf-8")
        else:
            file = open(path, "w", encoding="utf-8")
        self._out = _Appender(file, self._start_again, path, "it")

    def _start_again(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        return open(self.path, "w", encoding="utf-8"), self.header

    @property
    def file(self):
        """The open text file (for its name, or to close it; rows are not written through
        its buffer)."""
        return self._out.file

    @property
    def name(self) -> str:
        """The file's path (as ``open(...).name``)."""
        return self.path

    def write(self, header: str, line: str) -> None:
        """Append ``line`` (newline-terminated), preceded by ``header`` if none was written."""
        if self.header or not self.header_lines:
            self._out.append(line.encode())
        else:
            self.header = header.encode()
            self._out.append(line.encode(), self.header)

    def close(self) -> None:
        """Close the file (after a last check that its folder is still there)."""
        self._out.close()


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd``: one ``write`` call, more only after a short write."""
    done = os.write(fd, data)
    if done != len(data):  # a short write (disk full, signal): finish it
        view = memoryview(data)[done:]
        while view:
            view = view[os.write(fd, view):]


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
        vals = tuple(_row_values(row))
        if set(map(type, vals)) <= _PLAIN_NUMBERS:  # the common row: numbers only
            plain = (True,) * len(vals)
        else:
            plain = tuple(type(v) in _PLAIN_NUMBERS for v in vals)
            vals = tuple(v if p else _cell(v) for v, p in zip(vals, plain))
        template = self._templates.get(plain)
        if template is None:
            template = self._templates[plain] = _table_template(headers, plain)
        print(template % vals, flush=True)


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


_cached_row: Row | None = None
_cached_values: list[Any] = []
_cached_strings: list[str] | None = None


def _row_values(row: Row) -> list[Any]:
    """The row's value under each header (``""`` where missing), once per row.

    The writers of a logger receive the same :class:`Row` object one after the other and
    share this list (and :func:`_row_strings`). The cache holds the last row itself, so its
    identity cannot be reused.
    """
    global _cached_row, _cached_values, _cached_strings
    if row is not _cached_row:
        _cached_values = list(map(row.values.get, row.headers, repeat("")))
        _cached_strings = None
        _cached_row = row
    return _cached_values


def _row_strings(row: Row) -> list[str]:
    """``str()`` of each of :func:`_row_values`, once per row.

    The line formats (txt, csv, jsonl) share these strings, so a row's numbers are formatted
    once, whatever the number of formats.
    """
    global _cached_strings
    values = _row_values(row)
    if _cached_strings is None:
        _cached_strings = list(map(str, values))
    return _cached_strings


class _SeparatedWriter(Writer):
    """A file of a header line and one line per row, fields joined by ``SEP``.

    Values are formatted once per row for every line format (:func:`_row_strings`); a row
    holding ``SEP`` or one of ``SPECIAL`` in a value takes ``field(key, text)`` for every cell
    (the format's escaping, with a warning where it changes the value).
    """

    SEP = "\t"
    SPECIAL: tuple[str, ...] = ("\n", "\r")  # besides SEP: characters that need field()
    EXT = ""

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self.file = LineFile(_stem_path(output_dir, output_fname, self.EXT)
                             if self.EXT else os.path.join(output_dir, output_fname), resume)
        self._headers: list[str] = []
        self._header_line = ""

    @staticmethod
    def field(key: str, text: str) -> str:
        """A cell as written (escaped)."""
        raise NotImplementedError

    def write_row(self, row: Row) -> None:
        """Append the row (the header line first, on a new file)."""
        headers, sep = row.headers, self.SEP
        if headers != self._headers:
            self._headers = list(headers)
            self._header_line = sep.join(self.field(k, k) for k in headers) + "\n"
        strings = _row_strings(row)
        body = sep.join(strings)
        if body.count(sep) != len(headers) - 1 or any(c in body for c in self.SPECIAL):
            body = sep.join(self.field(k, v) for k, v in zip(headers, strings))
        self.file.write(self._header_line, body + "\n")

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class TxtWriter(_SeparatedWriter):
    """Spinning Up's ``progress.txt`` (format ``txt``): tab-separated, a header line first.

    Each row is ``"\\t".join(str(v) ...)``; a header missing in a row is an empty field; tabs
    and line breaks inside values are written as spaces (with a warning).
    """

    field = staticmethod(_field)


def _stem_path(output_dir: str, output_fname: str, ext: str) -> str:
    """``<output_dir>/<stem of output_fname><ext>`` (progress.txt -> progress.csv)."""
    return os.path.join(output_dir, os.path.splitext(output_fname)[0] + ext)


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


class CsvWriter(_SeparatedWriter):
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
        self.file = LineFile(_stem_path(output_dir, output_fname, ".jsonl"), resume,
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
        strings = _row_strings(row)
        if set(map(type, _row_values(row))) <= _JSON_PLAIN and _NON_FINITE.isdisjoint(strings):
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


def _event_file_name(folder: str) -> str:
    """A new event file's name in ``folder``, sorting after the event files already there.

    TensorBoard reads a folder's event files in name order; the name holds the time in
    seconds, bumped past the newest existing file's so that a restart within the same second
    still sorts last.
    """
    import socket

    stamp = int(time.time())
    for name in os.listdir(folder):
        parts = name.split(".")
        if name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
            stamp = max(stamp, int(parts[3]) + 1)
    return f"events.out.tfevents.{stamp:010d}.{socket.gethostname()}.{os.getpid()}.spinfast"


def _pb_varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _pb_bytes(field: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _pb_varint(field << 3 | 2) + _pb_varint(len(data)) + data


def _text_event(tag: str, text: str, wall_time: float) -> bytes:
    """An Event (step 0) holding ``text`` for TensorBoard's text plugin under ``tag``."""
    plugin = _pb_bytes(1, _pb_bytes(1, b"text"))            # SummaryMetadata.plugin_data
    tensor = (_pb_varint(1 << 3) + _pb_varint(7)               # TensorProto.dtype = DT_STRING
              + _pb_bytes(2, b"")                               # tensor_shape: a scalar
              + _pb_bytes(8, text.encode()))                    # string_val
    value = _pb_bytes(1, tag.encode()) + _pb_bytes(9, plugin) + _pb_bytes(8, tensor)
    return (b"\x09" + struct.pack("<d", wall_time) + b"\x10\x00"  # wall_time, step 0
            + _pb_bytes(5, _pb_bytes(1, value)))                  # summary.value


class TensorBoardWriter(Writer):
    """TensorBoard event files under ``<output_dir>/tb/`` (format ``tensorboard``).

    Each numeric column of a row (Python or numpy real numbers) becomes a scalar, stored as
    float32, whose tag is the column name unchanged, at the row's step; other columns are
    skipped. The records are encoded by the compiled :mod:`spinfast._tbevent` (no TensorFlow,
    PyTorch or tensorboard package needed) and written with one unbuffered ``write`` per row,
    so a killed run leaves whole records (TensorBoard's reader skips a torn last record). The
    configuration is written once as text (the text plugin's tag ``config``).

    A resumed run starts a new event file with a ``SessionLog.START`` event at the resume
    step: TensorBoard then drops the earlier events of that step and later, so each step shows
    once. A run that is not resumed, in a folder that already holds event files, writes its
    ``START`` at the lowest step, so that TensorBoard drops every earlier event (as the run
    starts ``progress.txt`` anew); the old files are left in place. If the folder vanishes
    mid-run, a new event file is started in a recreated folder (see :class:`_Appender`), with
    one warning naming it.
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        from spinfast import _tbevent

        self._encode_row = _tbevent.encode_row
        self.folder = os.path.join(output_dir, "tb")
        self._headers: list[str] = []
        self._keys: tuple[str, ...] = ()
        self._tags: tuple[bytes, ...] = ()
        earlier = os.path.isdir(self.folder) and any(
            name.startswith("events.out.tfevents.") for name in os.listdir(self.folder))
        file, head = self._open()
        if resume is not None:
            head += _tbevent.encode_session_start(resume.step, time.time())
        elif earlier:  # a new run in an old folder: TensorBoard drops all earlier events
            head += _tbevent.encode_session_start(-(2**63), time.time())
        _write_all(file.fileno(), head)
        self._out = _Appender(file, self._open, self.folder, "TensorBoard events")

    def _open(self):
        """A new event file and its first record (the file version)."""
        from spinfast import _tbevent

        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, _event_file_name(self.folder))
        return open(self.path, "xb", buffering=0), _tbevent.encode_file_version(time.time())

    def write_row(self, row: Row) -> None:
        """Append one scalar record per numeric column, at ``row.step``, in one write."""
        headers = row.headers
        if headers != self._headers:
            self._headers = list(headers)
            self._keys = tuple(headers)
            self._tags = tuple(k.encode() for k in headers)
        self._out.append(self._encode_row(self._keys, self._tags, row.values, row.step,
                                          time.time()))

    def write_config(self, config: Any, text: str) -> None:
        """Write the configuration (``text``, config.json's JSON) as a text summary."""
        from spinfast import _tbevent

        body = "\n".join("    " + line for line in text.splitlines())  # a Markdown code block
        self._out.append(_tbevent.frame_record(_text_event("config", body, time.time())))

    def close(self) -> None:
        """Close the event file (after a last check that its folder is still there)."""
        self._out.close()


class WandbWriter(Writer):
    """A Weights & Biases run (format ``wandb``; needs ``pip install 'spinfast[wandb]'``).

    ``wandb`` is imported when the writer opens. The run is ``wandb.init(dir=output_dir,
    name=<output folder's name>)`` (project from ``$WANDB_PROJECT``, else ``spinfast``; mode,
    entity and the rest from wandb's own environment variables, e.g. ``WANDB_MODE=offline``).
    Each row's numeric columns (Python or numpy real numbers, under their column names) are
    logged at ``row.step``; other columns are skipped. :meth:`write_config` sets the run's
    config. The run id is kept in ``<output_dir>/wandb_run_id.txt``; a resumed run continues
    that W&B run (``resume="allow"``). W&B keeps the first value logged at a step: rows that
    the killed run logged after its checkpoint keep their old values there (W&B's own
    ``resume_from`` rewind is a server-side feature this writer does not use). Crash safety
    and the local files under ``<output_dir>/wandb/`` are wandb's.

    Raises:
        ImportError: wandb is not installed (the message names the extra to install).
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        try:
            import wandb
        except ImportError as e:
            raise ImportError("Logger(): output format 'wandb' needs the wandb package, which "
                              "is not installed; pip install 'spinfast[wandb]' or drop "
                              "'wandb' from formats") from e
        id_path = os.path.join(output_dir, "wandb_run_id.txt")
        run_id = None
        if resume is not None and os.path.exists(id_path):
            with open(id_path) as f:
                run_id = f.read().strip() or None
        os.makedirs(output_dir, exist_ok=True)
        self.run = wandb.init(dir=output_dir, project=os.environ.get("WANDB_PROJECT", "spinfast"),
                              name=os.path.basename(os.path.normpath(output_dir)), id=run_id,
                              resume="allow" if run_id else None, reinit="create_new")
        if run_id is None:
            tmp = id_path + ".tmp"
            with open(tmp, "w") as f:
                f.write(self.run.id + "\n")
            os.replace(tmp, id_path)
        self._headers: list[str] = []

    def write_row(self, row: Row) -> None:
        """Log the row's numeric columns at ``row.step``."""
        data = {}
        for key in row.headers:
            v = row.values.get(key)
            if type(v) is float or type(v) is int:
                data[key] = v
            elif isinstance(v, numbers.Real) and not isinstance(v, (str, bytes)):
                data[key] = float(v)
        self.run.log(data, step=row.step)

    def write_config(self, config: Any, text: str) -> None:
        """Set the run's config to ``config`` (a JSON-safe dict, as config.json holds)."""
        if isinstance(config, dict):
            self.run.config.update(config, allow_val_change=True)
        else:
            self.run.config.update({"config": config}, allow_val_change=True)

    def close(self) -> None:
        """Finish the run (wandb uploads or, offline, closes its files); once."""
        if self.run is not None:
            self.run.finish()
            self.run = None


FORMATS: dict[str, type[Writer]] = {
    "stdout": StdoutWriter,
    "txt": TxtWriter,
    "csv": CsvWriter,
    "jsonl": JsonlWriter,
    "tensorboard": TensorBoardWriter,
    "wandb": WandbWriter,
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
