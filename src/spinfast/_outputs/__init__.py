"""Output formats of :class:`spinfast.logx.Logger`: one module per format, and a registry.

The logger builds each finished row once, as a :class:`Row`, and hands it to every writer's
:meth:`Writer.write_row`; :meth:`Writer.write_config` receives the saved configuration and
:meth:`Writer.close` ends the output. Writers live only on MPI rank 0.

The package:

- ``table``: Spinning Up's stdout table (format ``stdout``);
- ``separated``: the base of the files of one separated line per row, which ``txt``
  (``progress.txt``) and ``csv`` (``progress.csv``) extend with their separator and escaping;
- ``jsonl``: ``progress.jsonl``;
- ``tensorboard``: TensorBoard event files, records made by ``_tbcodec`` (the TFRecord and
  Event codec, which also reads them back for :mod:`spinfast.tfevents`);
- ``wandb``: a Weights & Biases run;
- ``mlflow``: an MLflow run;
- ``_appender``: crash-safe appends (one ``write`` per row), the vanished-folder check and
  the truncation of a resumed file.

**Adding a format** touches one module and this registry: write a :class:`Writer` subclass in a
new module here (``mine.py``, taking ``(output_dir, resume=None, output_fname=...)``), and add
``"mine": "mine.MineWriter"`` to :data:`FORMATS`. Nothing else in the logger names a format:
``formats=``, ``$SPINFAST_LOG_FORMATS`` and :func:`parse_formats` read the registry (only a
format that ``spinfast.plot`` should read back also needs a reader there). A format's module
is imported when a logger first opens it, so its dependencies cost nothing to other runs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from itertools import repeat
from typing import Any, NamedTuple

__all__ = ["Row", "ResumePoint", "Writer", "FORMATS", "DEFAULT_FORMATS", "parse_formats",
           "make_writers", "close_all", "row_values", "row_strings", "stem_path"]


class Row(NamedTuple):
    """A finished row, as every writer receives it.

    Attributes:
        headers: every column of the run so far, in first-row order (the file header).
        values: this row's values by column; a header missing here is empty in this row.
        step: the row's step, for step-indexed formats (TensorBoard, W&B, MLflow).
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
    formats name their file after the stem of ``output_fname`` (``progress.csv``, ...; see
    :func:`stem_path`).
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


def stem_path(output_dir: str, output_fname: str, ext: str) -> str:
    """Return ``<output_dir>/<stem of output_fname><ext>`` (progress.txt -> progress.csv)."""
    return os.path.join(output_dir, os.path.splitext(output_fname)[0] + ext)


# ---------------------------------------------------------------------------------------------
# A row's values and their strings, computed once for all the writers of a logger
# ---------------------------------------------------------------------------------------------

_cached_row: Row | None = None
_cached_values: list[Any] = []
_cached_strings: list[str] | None = None


def row_values(row: Row) -> list[Any]:
    """Return the row's value under each header (``""`` where missing), once per row.

    The writers of a logger receive the same :class:`Row` object one after the other and
    share this list (and :func:`row_strings`). The cache holds the last row itself, so its
    identity cannot be reused.
    """
    global _cached_row, _cached_values, _cached_strings
    if row is not _cached_row:
        _cached_values = list(map(row.values.get, row.headers, repeat("")))
        _cached_strings = None
        _cached_row = row
    return _cached_values


def row_strings(row: Row) -> list[str]:
    """Return ``str()`` of each of :func:`row_values`, once per row.

    The line formats (txt, csv, jsonl) share these strings, so a row's numbers are formatted
    once, whatever the number of formats.
    """
    global _cached_strings
    values = row_values(row)
    if _cached_strings is None:
        _cached_strings = list(map(str, values))
    return _cached_strings


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

class _Registry(Mapping[str, type[Writer]]):
    """The writer class of each format name, its module imported on first look-up.

    Built from ``{name: "<module of this package>.<class>"}``; iteration and ``in`` see the
    names without importing anything.
    """

    def __init__(self, where: dict[str, str]):
        self._where = where
        self._classes: dict[str, type[Writer]] = {}

    def __getitem__(self, name: str) -> type[Writer]:
        cls = self._classes.get(name)
        if cls is None:
            module, attr = self._where[name].rsplit(".", 1)
            cls = self._classes[name] = getattr(
                importlib.import_module(f"{__name__}.{module}"), attr)
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __repr__(self) -> str:
        return f"FORMATS({self._where!r})"


FORMATS: Mapping[str, type[Writer]] = _Registry({
    "stdout": "table.StdoutWriter",
    "txt": "txt.TxtWriter",
    "csv": "csv.CsvWriter",
    "jsonl": "jsonl.JsonlWriter",
    "tensorboard": "tensorboard.TensorBoardWriter",
    "wandb": "wandb.WandbWriter",
    "mlflow": "mlflow.MlflowWriter",
})
"""The writer class of each format name (``"<module of this package>.<class>"``, imported
when a logger first opens that format)."""

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


def close_all(writers) -> None:
    """Close every writer of ``writers`` (a logger's, at close or exit)."""
    for writer in writers:
        writer.close()
