"""The statistics table of ``EpochLogger``: its methods that reach the table, and tensors.

``EpochLogger`` holds a compiled table (``spinfast._stats.EpochStats``, by composition) and
gets ``store``, ``timer``, ``stats_accumulator`` and ``track_quantiles`` from the base class
:class:`EpochTable`. Each instance's ``store`` is the table's compiled call, bound to the
table (a builtin function): it reads plain numbers and numeric buffers (numpy arrays) itself,
and passes any other value through :func:`host_array` (framework tensors become numpy arrays
in host memory) before numpy's conversion; its errors name ``EpochLogger.store()`` and the
key. No framework is imported here: a tensor's framework is in ``sys.modules`` when a tensor
exists.
"""

from __future__ import annotations

import sys

import numpy as np

from spinfast import mpi_tools
from spinfast._logger import runmeta
from spinfast._stats import EpochStats

__all__ = ["EpochTable", "host_array"]


def host_array(value):
    """Return a framework tensor's values as a numpy array in host memory; others unchanged.

    A PyTorch tensor leaves the autograd graph and its device (``detach().cpu()``) and
    arrives through DLPack, without a copy on the CPU; bfloat16, which numpy lacks, becomes
    float32 (exactly). A bfloat16 tensor or array of TensorFlow, JAX or ml_dtypes becomes a
    float32 array. Anything else is returned as it is (numpy reads TensorFlow tensors and
    lists itself).
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        try:
            return np.from_dlpack(value)
        except (TypeError, ValueError, RuntimeError, BufferError):
            return value  # (sparse, quantized, ...) numpy's own conversion tries, or says why
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "name", None) == "bfloat16":  # TensorFlow's tf.bfloat16, ml_dtypes'
        return np.asarray(value).astype(np.float32)
    return value


class EpochTable:
    """The statistics-table methods of ``EpochLogger`` (a base class; the table is a member).

    ``store`` and ``timer`` here are the methods as the class shows them (``dir``, ``help``,
    Sphinx, a subclass's ``super().store``); :meth:`_init_table` gives each instance the
    table's compiled calls as its own attributes ``store`` and ``timer``, which come first at
    lookup and skip this Python frame. A subclass that overrides one keeps its override.
    """

    def _init_table(self):
        """Make the table (and the per-instance ``store``), MPI-aware state of quantiles."""
        self._table = EpochStats(host_array, "EpochLogger")
        for name in ("store", "timer"):  # the table's compiled calls, unless overridden
            if getattr(type(self), name) is getattr(EpochTable, name):
                setattr(self, name, getattr(self._table, name))
        self._single = mpi_tools.num_procs() == 1
        self._tracked = {}  # key -> relative accuracy of its quantile sketch, in call order
        self._timers_noted = 0  # how many of the table's timer keys _record_timers has seen

    def store(self, **kwargs):
        self._table.store(**kwargs)

    store.__doc__ = EpochStats.store.__doc__  # the compiled store's, which instances get

    def timer(self, key):
        return self._table.timer(key)

    timer.__doc__ = EpochStats.timer.__doc__

    def _record_timers(self, folder, recorded):
        """Add the keys first timed since the last call to ``recorded`` and to the run's
        record in ``folder`` (:mod:`spinfast._logger.runmeta`; rank 0, at each dump)."""
        keys = self._table.timer_keys()
        if len(keys) == self._timers_noted:
            return
        self._timers_noted = len(keys)
        new = [k for k in keys if k not in recorded]
        if new:
            recorded += new
            runmeta.write_timers(folder, recorded)

    def stats_accumulator(self, key):
        """Return the live accumulator of ``key`` this epoch (a ``spinfast._stats.Welford``).

        Its ``count``, ``mean``, ``std``, ``min``, ``max`` are this rank's values stored since
        the key was last logged; it changes as values are stored.

        Raises:
            KeyError: ``key`` was never stored (the message lists the stored keys).
        """
        try:
            return self._table.stats_accumulator(key)
        except KeyError:
            raise self._never_stored(key) from None

    def _never_stored(self, key):
        """Return the KeyError of a key never stored; it lists the keys that were."""
        return KeyError(f"EpochLogger: key {key!r} was never stored; stored keys: "
                        f"{sorted(map(str, self._table.stored_keys()))!r}. Call "
                        f"store({key}=...) first.")

    def track_quantiles(self, *keys, relative_accuracy=0.01):
        """Count the values of ``keys`` stored from now on in mergeable quantile sketches.

        Then ``log_tabular(key, quantiles=(0.05, 0.5, 0.95))`` adds the columns ``P5<key>``,
        ``P50<key>``, ``P95<key>``. A sketch (DDSketch-style, fixed log buckets) answers each
        quantile within ``relative_accuracy`` of a value between numpy's ``lower`` and
        ``higher`` quantiles of the epoch's values, on every rank's values together; zero and
        negative values work. Memory per key is fixed: ``2 * ceil(64 k) + 4`` float64 counts
        with ``k = 3 / (4 ln((1 + a) / (1 - a)))`` (38 KB at ``a = 0.01``). Magnitudes beyond
        ``[2**-32, 2**32)`` count as 0 or as about 4.3e9 (same sign).

        Under MPI every rank must make the same calls (checked: a difference raises a
        ValueError on every rank).

        Raises:
            ValueError: ``relative_accuracy`` outside [1e-4, 0.5], or ranks that disagree.
            TypeError: a key that is not a string.
        """
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"track_quantiles(): keys must be str, got {key!r}")
        if not self._single:
            mine = (keys, float(relative_accuracy))
            everyone = mpi_tools.comm_world().allgather(mine)
            if any(other != mine for other in everyone):
                raise ValueError(f"track_quantiles(): MPI ranks passed different keys or "
                                 f"accuracies: {everyone!r}; every rank must make the same "
                                 f"calls")
        for key in keys:
            self._table.track_sketch(key, relative_accuracy)
            self._tracked[key] = float(relative_accuracy)
