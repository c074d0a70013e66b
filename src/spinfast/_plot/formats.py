"""Run file formats: one reader each, and the table that says which file of a folder is read.

A reader takes the path found in a run folder and returns a pandas DataFrame, one row per
logged row; it raises ``pandas.errors.EmptyDataError`` for a file with no header or no rows,
and ``OSError``/``ValueError``/``pandas.errors.ParserError`` for one it cannot read (the
caller skips the run with a warning). A last line with no newline is a row still being
written (or cut short by a kill) and is left out.

A new format is one reader below plus its row in :data:`FORMATS` (tried in order; the first
match is the only file read from that folder).
"""

from __future__ import annotations

import io
import json
import os.path as osp
import re
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Format", "FORMATS", "PROGRESS_FILES", "find_run", "read_run"]


def _read_delimited(path, sep):
    """A progress file with a header row and ``sep``-separated values (txt: tab, csv: comma)."""
    import pandas as pd

    # Loggers end every row with a newline: a last line without one is a row still being
    # written (or cut short by a kill), and its last number may be cut short too.
    with open(path, "rb") as f:
        data = f.read()
    data = data[:data.rfind(b"\n") + 1]
    if not data:
        raise pd.errors.EmptyDataError("no header")
    return pd.read_csv(io.BytesIO(data), sep=sep, **_exact_floats(pd))


def _exact_floats(pd):
    """``read_csv``'s option that reads each number as the float written: ``round_trip``
    before pandas 3.1 (its default parser may be one bit off); pandas 3.1 parses every float
    exactly and deprecates the option."""
    match = re.match(r"(\d+)\.(\d+)", pd.__version__)
    if match and (int(match[1]), int(match[2])) >= (3, 1):
        return {}
    return {"float_precision": "round_trip"}


def read_txt(path):
    """Read ``progress.txt``: tab-separated, header row (Spinning Up's and spinfast's)."""
    return _read_delimited(path, "\t")


def read_csv(path):
    """Read ``progress.csv``: the same header and rows, comma-separated."""
    return _read_delimited(path, ",")


def read_jsonl(path):
    """Read ``progress.jsonl``: one JSON object per row (numbers parsed by Python's ``json``,
    so each reads back as the float written)."""
    import pandas as pd

    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                if not line.endswith("\n"):
                    break  # a row cut short by a writer still running
                raise ValueError(f"line {lineno} is not JSON: {line[:80]!r}") from None
            if not isinstance(row, dict):
                raise ValueError(f"line {lineno} is not a JSON object: {line[:80]!r}")
            rows.append(row)
    if not rows:
        raise pd.errors.EmptyDataError("no rows")
    return pd.DataFrame(rows)


def read_events(folder):
    """Read a TensorBoard folder's scalars: one row per step, a ``Step`` column, one per tag.

    ``TotalEnvInteracts`` is ``Step`` unless a tag of that name exists. A tag written twice
    at one step keeps the later value.
    """
    import pandas as pd

    from spinfast.tfevents import read_scalars

    scalars = read_scalars(folder)
    if not scalars:
        raise pd.errors.EmptyDataError("no scalars")
    table = {}
    for sc in scalars:  # a tag written twice at one step keeps the later value
        table.setdefault(sc.step, {})[sc.tag] = sc.value
    steps = sorted(table)
    frame = pd.DataFrame([table[st] for st in steps])
    frame.insert(0, "Step", steps)
    if "TotalEnvInteracts" not in frame:
        frame["TotalEnvInteracts"] = frame["Step"]
    return frame


class Format(NamedTuple):
    """One run format: its name (``df.attrs['format']``), how to find it, how to read it.

    Attributes:
        name: the format's name.
        find: ``find(folder, file_names)`` -> the path to read, or None if absent.
        read: ``read(path)`` -> DataFrame (see the module docstring for its errors).
    """

    name: str
    find: Callable[[str, list], str | None]
    read: Callable[[str], object]


def _file(name):
    return lambda root, files: osp.join(root, name) if name in files else None


def _events(root, files):
    return root if any(f.startswith("events.out.tfevents.") for f in files) else None


FORMATS = (
    Format("txt", _file("progress.txt"), read_txt),
    Format("csv", _file("progress.csv"), read_csv),
    Format("jsonl", _file("progress.jsonl"), read_jsonl),
    Format("tensorboard", _events, read_events),  # spinfast's, SB3's, CleanRL's, torch's
)
_BY_NAME = {fmt.name: fmt for fmt in FORMATS}
PROGRESS_FILES = ("progress.txt", "progress.csv", "progress.jsonl")


def find_run(root, files):
    """Return ``(path, format name)`` of the run in folder ``root`` (holding ``files``), or None.

    Formats are tried in the order of :data:`FORMATS`: progress.txt/.csv/.jsonl first, else
    the folder's event files.
    """
    for fmt in FORMATS:
        path = fmt.find(root, files)
        if path is not None:
            return path, fmt.name
    return None


def read_run(path, fmt):
    """Read the run at ``path`` (from :func:`find_run`) with the reader of format ``fmt``."""
    return _BY_NAME[fmt].read(path)
