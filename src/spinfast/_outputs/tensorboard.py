"""TensorBoard event files (format ``tensorboard``)."""

from __future__ import annotations

import os
import time
from typing import Any

from spinfast._outputs import ResumePoint, Row, Writer, _tbcodec
from spinfast._outputs._appender import Appender, write_all

__all__ = ["TensorBoardWriter"]


class TensorBoardWriter(Writer):
    """TensorBoard event files under ``<output_dir>/tb/`` (format ``tensorboard``).

    Each numeric column of a row (Python or numpy real numbers) becomes a scalar, stored as
    float32, whose tag is the column name unchanged, at the row's step; other columns are
    skipped. The records are encoded by the compiled :mod:`spinfast._tbevent` (no TensorFlow,
    PyTorch or tensorboard package needed; see ``_tbcodec``) and written with one unbuffered
    ``write`` per row, so a killed run leaves whole records (TensorBoard's reader skips a torn
    last record). The configuration is written once as text (the text plugin's tag
    ``config``).

    A resumed run starts a new event file with a ``SessionLog.START`` event at the resume
    step: TensorBoard then drops the earlier events of that step and later, so each step shows
    once. A run that is not resumed, in a folder that already holds event files, writes its
    ``START`` at the lowest step, so that TensorBoard drops every earlier event (as the run
    starts ``progress.txt`` anew); the old files are left in place. If the folder vanishes
    mid-run, a new event file is started in a recreated folder (see ``_appender.Appender``),
    with one warning naming it.
    """

    def __init__(self, output_dir: str, resume: ResumePoint | None = None,
                 output_fname: str = "progress.txt"):
        self._encode_row = _tbcodec.encode_row
        self.folder = os.path.join(output_dir, "tb")
        self._headers: list[str] = []
        self._keys: tuple[str, ...] = ()
        self._tags: tuple[bytes, ...] = ()
        earlier = os.path.isdir(self.folder) and any(
            name.startswith("events.out.tfevents.") for name in os.listdir(self.folder))
        file, head = self._open()
        if resume is not None:
            head += _tbcodec.encode_session_start(resume.step, time.time())
        elif earlier:  # a new run in an old folder: TensorBoard drops all earlier events
            head += _tbcodec.encode_session_start(-(2**63), time.time())
        write_all(file.fileno(), head)
        self._out = Appender(file, self._open, self.folder, "TensorBoard events")

    def _open(self):
        """A new event file and its first record (the file version)."""
        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, _tbcodec.event_file_name(self.folder))
        return open(self.path, "xb", buffering=0), _tbcodec.encode_file_version(time.time())

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
        body = "\n".join("    " + line for line in text.splitlines())  # a Markdown code block
        self._out.append(_tbcodec.frame_record(_tbcodec.text_event("config", body,
                                                                   time.time())))

    def close(self) -> None:
        """Close the event file (after a last check that its folder is still there)."""
        self._out.close()
