"""Plain references of Spinning Up's data paths, for side-by-side benchmarks (our own code).

Behaves as SPEC describes Spinning Up: ``store`` appends each value to a per-key list (keeping
references), and ``log_tabular`` concatenates the epoch's values and computes mean, std, min
and max with numpy in float32, over MPI ranks with one Allreduce per quantity (in a single
process the MPI sums are skipped, which only makes the reference faster). ``mpi_avg_grads``
averages one tensor at a time through float32 copies.
"""

from __future__ import annotations

import numpy as np


def _op(comm, v, op):
    """Spinning Up's mpi_op: float32 copy in, Allreduce into a new buffer."""
    if comm is None:
        return v
    from mpi4py import MPI

    scalar = np.isscalar(v)
    v = np.asarray([v] if scalar else v, dtype=np.float32)
    buff = np.zeros_like(v, dtype=np.float32)
    comm.Allreduce(v, buff, op={"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op])
    return buff[0] if scalar else buff


def statistics_scalar(x, with_min_and_max=False, comm=None):
    """Spinning Up's mpi_statistics_scalar: float32, 2 Allreduces (+2 for min and max)."""
    x = np.array(x, dtype=np.float32)
    global_sum, global_n = _op(comm, [np.sum(x), len(x)], "sum")
    mean = global_sum / global_n
    global_sum_sq = _op(comm, np.sum((x - mean) ** 2), "sum")
    std = np.sqrt(global_sum_sq / global_n)
    if with_min_and_max:
        lo = _op(comm, np.min(x) if len(x) > 0 else np.inf, "min")
        hi = _op(comm, np.max(x) if len(x) > 0 else -np.inf, "max")
        return mean, std, lo, hi
    return mean, std


def reference_mpi_avg_grads(comm, grads):
    """Spinning Up's mpi_avg_grads data path: one float32 Allreduce per tensor, with copies."""
    size = comm.Get_size()
    for g in grads:
        g[:] = _op(comm, g, "sum") / size


def reference_module_avg_grads(comm, module):
    """Spinning Up's mpi_avg_grads(module): each parameter's grad as numpy, averaged alone."""
    size = comm.Get_size()
    for p in module.parameters():
        p_grad_numpy = p.grad.numpy()
        p_grad_numpy[:] = _op(comm, p.grad, "sum") / size


def reference_sync_params(comm, module):
    """Spinning Up's sync_params(module): one in-place Bcast per parameter."""
    for p in module.parameters():
        comm.Bcast(p.data.numpy(), root=0)


class ReferenceEpochLogger:
    """Spinning Up's store/log_tabular/dump_tabular data path, without files or printing."""

    def __init__(self, comm=None):
        self.comm = comm
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
        stats = statistics_scalar(vals, with_min_and_max=with_min_and_max, comm=self.comm)
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


def trim_mean_25(x):
    """scipy.stats.trim_mean(x, 0.25, axis=None), written out: sort, cut int(n/4) per end."""
    v = np.sort(np.asarray(x, dtype=np.float64).ravel())
    lo = int(0.25 * v.size)
    return v[lo:v.size - lo].mean()


def stratified_bootstrap_loop(scores, func, reps, ci=0.95, seed=0):
    """rliable's get_interval_estimates, as it runs: one replicate at a time.

    Each replicate draws run indices of shape (runs, tasks) (runs resampled within each
    task), applies ``func`` to the resampled array, and the interval is the percentile one.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, x in scores.items():
        runs, tasks = x.shape
        cols = np.arange(tasks)
        samples = np.empty(reps)
        for k in range(reps):
            samples[k] = func(x[rng.integers(0, runs, size=(runs, tasks)), cols])
        alpha = 100 * (1 - ci) / 2
        out[name] = (func(x), *np.percentile(samples, [alpha, 100 - alpha]))
    return out
