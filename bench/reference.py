"""Plain-Python reference of Spinning Up's EpochLogger statistics, for side-by-side benchmarks.

Behaves as SPEC describes Spinning Up: ``store`` appends each value to a per-key list (keeping
references), and ``log_tabular`` concatenates the epoch's values and computes mean, std, min
and max with numpy in float32 (single process: the MPI sums are identities here, which only
makes the reference faster).
"""

from __future__ import annotations

import numpy as np


def statistics_scalar(x, with_min_and_max=False):
    x = np.array(x, dtype=np.float32)
    n = len(x)
    mean = np.sum(x) / n
    std = np.sqrt(np.sum((x - mean) ** 2) / n)
    if with_min_and_max:
        return mean, std, np.min(x) if n else np.inf, np.max(x) if n else -np.inf
    return mean, std


class ReferenceEpochLogger:
    """Spinning Up's store/log_tabular/dump_tabular data path, without files or printing."""

    def __init__(self):
        self.epoch_dict = {}
        self.row = {}
        self.headers = []

    def store(self, **kwargs):
        for k, v in kwargs.items():
            if not (k in self.epoch_dict.keys()):  # noqa: E713, SIM118 (Spinning Up verbatim)
                self.epoch_dict[k] = []
            self.epoch_dict[k].append(v)

    def log_tabular(self, key, val=None, with_min_and_max=False, average_only=False):
        if val is not None:
            self.row[key] = val
            return
        v = self.epoch_dict[key]
        vals = np.concatenate(v) if isinstance(v[0], np.ndarray) and len(v[0].shape) > 0 else v
        stats = statistics_scalar(vals, with_min_and_max=with_min_and_max)
        self.row[key if average_only else "Average" + key] = stats[0]
        if not average_only:
            self.row["Std" + key] = stats[1]
        if with_min_and_max:
            self.row["Max" + key] = stats[3]
            self.row["Min" + key] = stats[2]
        self.epoch_dict[key] = []

    def dump_tabular(self, out):
        width = max(15, max(len(k) for k in self.row))
        fmt = "| %" + str(width) + "s | %15s |"
        lines = ["-" * (22 + width)]
        for k, v in self.row.items():
            lines.append(fmt % (k, "%8.3g" % v if hasattr(v, "__float__") else v))
        lines.append("-" * (22 + width))
        out.write("\n".join(lines) + "\n")
        out.write("\t".join(str(v) for v in self.row.values()) + "\n")
        out.flush()
        self.row.clear()
