"""A logger's resume bookkeeping: the resume record, committing a checkpoint, the header check.

``save_state`` writes the state file under a temporary name, then the resume record
(:data:`RESUME_FILE`: the rows dumped so far, the next step, the header, the state file and
its temporary name), then renames the state: the record is the commit point. A run resumed
from it (``Logger(resume=True)``) keeps those rows in every output, rolls forward a
``save_state`` killed between the record and the rename (:func:`finish_checkpoint`), and
checks that its first row has the same columns (:func:`check_headers`).
"""

from __future__ import annotations

import json
import os
import os.path as osp

from spinfast._logger.files import atomic_path, leftover_temporaries

__all__ = ["RESUME_FILE", "read_record", "write_record", "finish_checkpoint", "load_checkpoint",
           "check_headers"]

RESUME_FILE = "spinfast_resume.json"  # beside the outputs: where a resumed run continues


def read_record(output_dir):
    """Return the resume record of ``output_dir`` (a dict), or None if it has none.

    Raises:
        ValueError: the file is not a resume record.
    """
    try:
        with open(osp.join(output_dir, RESUME_FILE)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    if not (isinstance(record, dict) and isinstance(record.get("rows"), int)):
        raise ValueError(f"Logger(): {osp.join(output_dir, RESUME_FILE)} is not a spinfast "
                         f"resume record; remove it to start the run afresh")
    return record


def write_record(output_dir, rows, next_step, headers, state_file, pending, counters=None):
    """Record ``rows`` dumped rows with the state file being saved.

    Args:
        output_dir: the run's folder.
        rows: rows dumped so far; ``next_step``: the step of the next row.
        headers: the run's columns (recorded only once a row was dumped).
        state_file: the state file's name; ``pending``: the complete file under its temporary
            name, renamed to ``state_file`` next.
        counters: the last values of the counters of rate columns (``{column: value}``),
            where a resumed run's rates continue from.
    """
    record = {"rows": rows, "next_step": next_step,
              "headers": list(headers) if rows else [],
              "state_file": state_file, "pending": osp.basename(pending),
              "counters": dict(counters or {})}
    with atomic_path(osp.join(output_dir, RESUME_FILE)) as tmp:
        with open(tmp, "w") as out:
            json.dump(record, out)


def finish_checkpoint(output_dir, record):
    """Roll forward a save_state killed between its resume record and its state's rename."""
    pending = record.get("pending")
    if pending and osp.exists(osp.join(output_dir, pending)):
        os.replace(osp.join(output_dir, pending), osp.join(output_dir, record["state_file"]))
    for path in leftover_temporaries(output_dir, r"vars\d*\.pkl"):  # cut off before a record
        os.unlink(path)


def load_checkpoint(folder):
    """Return the state dict of the last checkpoint recorded in ``folder`` (None if none)."""
    record = None if folder is None else read_record(folder)
    if record is None:
        return None
    import joblib

    # A kill between the record and the rename of the state leaves the state under its
    # temporary name (rank 0 renames it on resume): read it from wherever it is.
    for name in (record.get("pending"), record["state_file"]):
        try:
            return joblib.load(osp.join(folder, name))
        except (FileNotFoundError, TypeError):
            continue
    return None


def check_headers(headers, recorded):
    """Raise ValueError unless a resumed run's first row has the run's columns, in order."""
    if list(headers) == list(recorded):
        return
    missing = [k for k in recorded if k not in headers]
    extra = [k for k in headers if k not in recorded]
    parts = ([f"missing {missing!r}"] if missing else []) + ([f"new {extra!r}"] if extra else [])
    detail = "; ".join(parts) or (f"the same columns in another order: {list(headers)!r} "
                                  f"instead of {list(recorded)!r}")
    raise ValueError(f"dump_tabular(): the resumed run's columns differ from those of the run "
                     f"it continues ({detail}); log the same keys in the same order as before "
                     f"the restart")
