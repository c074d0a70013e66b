"""Throughput columns: ``log_tabular("SPS", rate="TotalEnvInteracts")``.

A rate column holds the change of a counter column of the same row since the previous dump,
divided by the wall time since the previous dump (``time.perf_counter``). The first row counts
from the time the logger was made and from a counter of 0, or, in a resumed run, from the
counter recorded with the checkpoint it resumes (the clock restarts, the counter continues).
The counter is read from the finished row, after the row's statistics were merged over MPI
ranks, so a counter that is a statistic (``AverageSteps``) is the merged one; no collective is
added.
"""

from __future__ import annotations

import math
import time
import warnings

__all__ = ["Rates"]


class Rates:
    """The rate columns of a logger: which counter each follows, the last counter values.

    Args:
        last: the counters' values at the row a resumed run continues from (``{column:
            value}``); counters not in it start from 0.
    """

    __slots__ = ("pending", "last", "clock")

    def __init__(self, last=None):
        self.pending = {}  # rate column -> counter column, for the row being built
        self.last = {k: float(v) for k, v in (last or {}).items()}
        self.clock = time.perf_counter()

    def check(self, key, counter):
        """Check that ``key`` can be a rate column of ``counter`` (then set
        ``pending[key] = counter``).

        Raises:
            TypeError: ``counter`` is not a column name (str).
            ValueError: ``counter`` is ``key`` itself.
        """
        if not isinstance(counter, str):
            raise TypeError(f"log_tabular(): rate= must name a column of the row (a str), "
                            f"got {counter!r}")
        if counter == key:
            raise ValueError(f"log_tabular(): {key!r} cannot be the rate of itself; pass the "
                             f"counter's column, e.g. rate='TotalEnvInteracts'")

    def fill(self, row):
        """Set the rate columns of the finished ``row`` (a dict) and restart the clock.

        A counter missing from the row, or not a number, gives NaN and a RuntimeWarning.
        """
        now = time.perf_counter()
        elapsed, self.clock = now - self.clock, now
        if not self.pending:
            return
        seen = {}
        for key, counter in self.pending.items():
            value = seen.get(counter)
            if value is None:
                value = seen[counter] = _counter_value(row, key, counter)
            prev = self.last.get(counter, 0.0)
            row[key] = (value - prev) / elapsed if elapsed > 0 else math.nan
        self.pending.clear()
        for counter, value in seen.items():
            if not math.isnan(value):
                self.last[counter] = value


def _counter_value(row, key, counter):
    val = row.get(counter)
    try:
        return float(val)
    except (TypeError, ValueError):
        what = "has no column" if counter not in row else f"has {val!r} in column"
        warnings.warn(f"dump_tabular(): the rate {key!r} follows {counter!r}, but the row "
                      f"{what} {counter!r}; {key} is NaN. Log the counter in the same row "
                      f"(log_tabular({counter!r}, value))", RuntimeWarning, stacklevel=4)
        return math.nan
