"""What a run records about its own columns, beside its outputs: the keys of ``timer()``.

``spinfast_run.json`` (:data:`RUN_FILE`) in the run's folder holds ``{"timers": [KEY, ...]}``:
the keys an ``EpochLogger`` timed with ``timer(KEY)``, in first-use order. rank 0 writes it
atomically at the first dump after a new key was timed; a run continued with ``resume=True``
keeps the keys recorded before and adds its own. ``spinfast.plot``'s timings figure draws
exactly these keys when none are named (runs without the file keep the name rule).
"""

from __future__ import annotations

import contextlib
import json
import os
import os.path as osp

from spinfast._logger.files import atomic_path

__all__ = ["RUN_FILE", "read_timers", "write_timers", "forget"]

RUN_FILE = "spinfast_run.json"


def read_timers(folder):
    """Return the timer keys recorded in ``folder`` (a list), or None if it has no record.

    A record that is not a spinfast run file (unreadable, or without a list of strings under
    ``"timers"``) counts as none.
    """
    try:
        with open(osp.join(folder, RUN_FILE)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    timers = record.get("timers") if isinstance(record, dict) else None
    if not (isinstance(timers, list) and all(isinstance(k, str) for k in timers)):
        return None
    return timers


def write_timers(folder, keys):
    """Record ``keys`` (the run's timer keys, in order) in ``folder``, atomically."""
    with atomic_path(osp.join(folder, RUN_FILE)) as tmp:
        with open(tmp, "w") as out:
            json.dump({"timers": list(keys)}, out)


def forget(folder):
    """Remove the record of an earlier run in ``folder`` (a new run starts its outputs anew)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(osp.join(folder, RUN_FILE))
