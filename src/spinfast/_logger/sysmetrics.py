"""Resources of this process, sampled once per dumped row: resident memory and CPU use.

On Linux the resident set size is read from ``/proc/<pid>/statm`` (the current value); elsewhere
it is ``resource.getrusage``'s ``ru_maxrss``, the peak so far (the only resident size the
standard library offers there). CPU use is ``time.process_time()`` (every thread of the
process, user and system) over wall time since the previous sample, in percent of one core:
100 is one core busy, 200 two. No third-party package is needed.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["COLUMNS", "ProcessSampler", "system_columns"]

#: The columns ``EpochLogger(system_metrics=True)`` adds to each row, over all MPI ranks: the
#: largest resident memory (MB) and the rank that holds it, the mean and the largest CPU use
#: (percent of one core) since the previous dump, and the number of ranks.
COLUMNS = ("SysRSSMaxMB", "SysRSSMaxRank", "SysCPUMean", "SysCPUMax", "SysRanks")

_STATM = sys.platform.startswith("linux") and os.path.exists("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if _STATM else 0
_MB = 1024.0 * 1024.0


class ProcessSampler:
    """Sample this process's resident memory (MB) and CPU use (%) since the last sample.

    The first sample covers the time since the sampler was made. The file descriptor of
    ``/proc/<pid>/statm`` is kept open between samples and opened again in a forked child.
    """

    __slots__ = ("_pid", "_fd", "_wall", "_cpu")

    def __init__(self) -> None:
        self._pid = -1
        self._fd = -1
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def rss_mb(self) -> float:
        """Return the resident set size in MB (Linux: now; elsewhere: the peak so far)."""
        if _STATM:
            pid = os.getpid()
            if pid != self._pid:
                self.close()
                self._fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
                self._pid = pid
            return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE / _MB
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / _MB if sys.platform == "darwin" else peak / 1024.0  # bytes / KiB

    def cpu_percent(self) -> float:
        """Return the CPU use since the previous call (or since the sampler was made), in
        percent of one core; restart the interval."""
        wall, cpu = time.perf_counter(), time.process_time()
        used, elapsed = cpu - self._cpu, wall - self._wall
        self._wall, self._cpu = wall, cpu
        return 100.0 * used / elapsed if elapsed > 0 else 0.0

    def sample(self) -> list:
        """Return ``[rss_mb, cpu_percent]`` and restart the CPU interval."""
        return [self.rss_mb(), self.cpu_percent()]

    def close(self) -> None:
        """Close the ``statm`` file descriptor, if open."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1
        self._pid = -1

    def __del__(self):
        self.close()


def system_columns(per_rank) -> dict:
    """Return the :data:`COLUMNS` of every rank's samples (a (ranks, 2) array, row r from
    rank r), as ``{column: value}``; the lowest rank wins a tie for the largest memory."""
    rows = per_rank.tolist()  # a few ranks' values: plain floats beat numpy's overhead here
    rss = [row[0] for row in rows]
    cpu = [row[1] for row in rows]
    top = rss.index(max(rss))
    return dict(zip(COLUMNS, (rss[top], top, sum(cpu) / len(cpu), max(cpu), len(rows))))
