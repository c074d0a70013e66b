"""Crash-safe appends to an output file, the vanished-folder check, and resume truncation.

Every row is written with one ``write`` on the file's descriptor (no Python buffer in between:
that is the flush), so a killed process leaves complete lines or records only (Linux may stop
a write at a page boundary when a SIGKILL arrives during it, leaving a prefix of that one last
row; a resume drops it, and a new run starts the file anew). A file whose folder vanished
mid-run (a ``/tmp`` cleaner, ``rm -r``) is noticed within :data:`CHECK_SECONDS` or
:data:`CHECK_ROWS` rows (:class:`Appender`), started again in a recreated folder with its
header and every row written since it was last seen, and reported once with a warning.
"""

from __future__ import annotations

import os
import time
import warnings

from spinfast._outputs import ResumePoint

__all__ = ["CHECK_SECONDS", "CHECK_ROWS", "Appender", "LineFile", "write_all",
           "truncate_lines"]

# How often an output file's link count is checked (see Appender): at every row when rows
# come at least this many seconds apart, as in training; else at least once per this many rows.
CHECK_SECONDS = 0.1
CHECK_ROWS = 64


class Appender:
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
        write_all(self._fd, head + data if head else data)

    def check(self) -> None:
        """Start the file again, holding the rows since the last check, if it was unlinked."""
        if os.fstat(self._fd).st_nlink == 0:
            self.file.close()
            self.file, head = self._start()
            self._fd = self.file.fileno()
            write_all(self._fd, head + b"".join(self._recent))
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

    Each line is encoded and handed to the system with one ``write`` on the file's descriptor;
    a vanished folder is handled by :class:`Appender`.

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
            kept = truncate_lines(path, self.header_lines + resume.rows)
            if header and kept:
                with open(path, "rb") as f:
                    self.header = f.readline()
            file = open(path, "a", encoding="utf-8")
        else:
            file = open(path, "w", encoding="utf-8")
        self._out = Appender(file, self._start_again, path, "it")

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


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd``: one ``write`` call, more only after a short write."""
    done = os.write(fd, data)
    if done != len(data):  # a short write (disk full, signal): finish it
        view = memoryview(data)[done:]
        while view:
            view = view[os.write(fd, view):]


def truncate_lines(path: str, keep: int) -> int:
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
