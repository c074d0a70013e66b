"""Logging, as ``spinup.utils.logx``: progress.txt, config.json, vars*.pkl and model savers.

:class:`Logger` writes a tab-separated ``progress.txt`` with a header row, prints each row as
a table, saves configs and state. :class:`EpochLogger` adds :meth:`~EpochLogger.store`: values
stored during an epoch feed a compiled streaming accumulator per key (count, mean, M2, min,
max in float64, O(1) memory), summarised by :meth:`~EpochLogger.log_tabular`. Across MPI ranks
all keys of a row are merged with one collective in :meth:`~Logger.dump_tabular`.

Importing this module loads neither TensorFlow nor PyTorch and does not initialise MPI.

What the loggers use sits in private modules: the output formats in ``spinfast._outputs``,
``save_state``/``load_state`` and the model savers in ``spinfast._logger.savers`` (a base class of
:class:`Logger`), the resume record in ``spinfast._logger.resume``, the record of the keys of
``timer()`` in ``spinfast._logger.runmeta``, the columns of ``log_tabular``'s
statistics in ``spinfast._logger.columns``, the statistics table's methods (``store``, ``timer``,
``stats_accumulator``, ``track_quantiles``) and ``store``'s tensor conversion in
``spinfast._logger.epochtable`` (a base class of :class:`EpochLogger`; the table is a member).
"""

from __future__ import annotations

import math
import os
import os.path as osp
import time
import warnings
import weakref
from itertools import chain

import numpy as np

from spinfast import mpi_tools
from spinfast._logger import resume as _resume
from spinfast._logger import runmeta as _runmeta
from spinfast._logger.columns import COLUMNS as _COLUMNS
from spinfast._logger.columns import RowLayout as _RowLayout
from spinfast._logger.columns import row_layout as _row_layout
from spinfast._logger.columns import stat_columns as _columns
from spinfast._logger.console import color2num, colorize
from spinfast._logger.epochtable import EpochTable
from spinfast._logger.files import atomic_path, new_folder
from spinfast._logger.rates import Rates
from spinfast._logger.resume import RESUME_FILE
from spinfast._logger.savers import StateSaving, restore_tf2_model, restore_tf_graph
from spinfast._logger.sysmetrics import ProcessSampler, system_columns
from spinfast._mpi.statmerge import merge_row
from spinfast._outputs import ResumePoint, Row, close_all, make_writers, parse_formats
from spinfast._outputs.txt import TxtWriter
from spinfast._stats import EMPTY_STATE as _EMPTY_STATE
from spinfast._stats import STATE_COUNT, STATE_SIZE, SUMMARY_MEAN, SUMMARY_STD, sketch_quantiles
from spinfast._stats import summarize as _summarize
from spinfast.serialization_utils import convert_json, dumps_config

__all__ = ["Logger", "EpochLogger", "colorize", "color2num", "restore_tf_graph",
           "restore_tf2_model", "DEFAULT_ROOT", "RESUME_FILE"]

DEFAULT_ROOT = "/tmp/experiments"


class Logger(StateSaving):
    """A general-purpose logger: save configs, diagnostics and state to ``output_dir``.

    Only MPI rank 0 prints and writes files. :meth:`save_state`, :meth:`load_state` and the
    ``setup_*_saver`` methods come from its base ``spinfast._logger.savers.StateSaving``.

    Args:
        output_dir: folder for the outputs; created if missing (a warning if it exists).
            Default: a new ``/tmp/experiments/<seconds since epoch>`` (made unique).
        output_fname: name of the tab-separated diagnostics file.
        exp_name: experiment name, added to ``config.json``.
        formats: output formats of each row, a comma-separated string or a sequence of
            names (see :data:`spinfast._outputs.FORMATS`). Default: ``$SPINFAST_LOG_FORMATS``,
            else ``"stdout,txt"`` (Spinning Up's table and ``progress.txt``).
        resume: continue the run in ``output_dir`` (after a crash or a preemption): the rows
            it dumped up to its last :meth:`save_state` are kept in every output, later ones
            (and a torn last line) are dropped, new rows append, and :meth:`load_state`
            returns that checkpoint. A folder with no checkpoint starts afresh.

    Raises:
        ValueError: an unknown format name (the message lists the valid ones), or
            ``resume=True`` without an ``output_dir``.
    """

    def __init__(self, output_dir=None, output_fname="progress.txt", exp_name=None, *,
                 formats=None, resume=False):
        self.formats = parse_formats(formats)
        if resume and output_dir is None:
            raise ValueError("Logger(): resume=True needs output_dir, the folder of the run to "
                             "continue")
        self._run_dir = output_dir  # every rank's view of the folder (for load_state)
        record = _resume.read_record(output_dir) if resume else None
        self._resume = record
        self.writers = []
        if mpi_tools.proc_id() == 0:
            if output_dir is None:
                output_dir = new_folder(osp.join(DEFAULT_ROOT, str(int(time.time()))))
            elif record is not None:
                print(colorize("Resuming the run in %s after its row %d"
                               % (output_dir, record["rows"]), "green", bold=True))
            elif osp.exists(output_dir):
                print("Warning: Log dir %s already exists! Storing info there anyway."
                      % output_dir)
            else:
                os.makedirs(output_dir, exist_ok=True)
            self.output_dir = output_dir
            point = None
            if record is not None:
                _resume.finish_checkpoint(output_dir, record)
            else:  # a new run: an earlier run's record of its timers goes with its rows
                _runmeta.forget(output_dir)
            # The keys of timer() recorded for the plotter (spinfast._logger.runmeta).
            self._timer_record = (_runmeta.read_timers(output_dir) or []) if record else []
            if record is not None and record["rows"] > 0:
                point = ResumePoint(record["rows"], record["next_step"])
            self.writers = make_writers(self.formats, output_dir, point, output_fname)
            self._finalizer = weakref.finalize(self, close_all, self.writers)
            where = self.output_file.name if self.output_file is not None else output_dir
            print(colorize("Logging data to %s" % where, "green", bold=True))
        else:
            self.output_dir = None
            self._timer_record = None
        self.first_row = True
        self.log_headers = []
        self._header_set = set()  # membership of log_headers, O(1)
        self.log_current_row = {}
        self.exp_name = exp_name
        self._rows_dumped = record["rows"] if record is not None else 0
        self._next_step = record["next_step"] if record is not None else 0
        self._rates = Rates(record.get("counters") if record is not None else None)

    @property
    def output_file(self):
        """The open ``progress.txt`` (None without the ``txt`` format, and on ranks > 0).

        Rows go to its file descriptor with one ``write`` each, not through this object's
        buffer: flush it after writing to it yourself.
        """
        for writer in self.writers:
            if isinstance(writer, TxtWriter):
                return writer.file.file
        return None

    def close(self):
        """Flush and close every output (also done at exit or when garbage collected)."""
        if self.writers:
            self._finalizer()

    def log(self, msg, color="green"):
        """Print a colorized, bold message to stdout (rank 0 only)."""
        if mpi_tools.proc_id() == 0:
            print(colorize(msg, color, bold=True))

    def log_tabular(self, key, val=None, *, rate=None):
        """Log a value of some diagnostic for the current row.

        Call once per key per row; the first row fixes the columns (in call order).

        Args:
            key: the column.
            val: its value in this row.
            rate: instead of ``val``, the name of a counter column of the same row (e.g.
                ``"TotalEnvInteracts"``): ``key`` then holds the counter's change since the
                previous dump per second of wall time since the previous dump (the first row:
                since the logger was made, from 0; after ``resume=True``: from the counter of
                the checkpoint resumed). Computed in :meth:`dump_tabular`, from the row's
                final (under MPI, merged) values; the counter may be logged before or after.

        Raises:
            ValueError: a key not in the first row, or a key set twice in one row; both
                ``val`` and ``rate``.
        """
        if rate is not None:
            if val is not None:
                raise ValueError(f"log_tabular(): give {key!r} a value or rate=, not both")
            self._rates.check(key, rate)
            self._check_new((key,))
            self._rates.pending[key] = rate
            val = math.nan  # until dump_tabular
        else:
            self._check_new((key,))
        self._insert((key,), (val,))

    def _check_new(self, keys):
        """Raise log_tabular's ValueError if any of ``keys`` cannot be set in this row."""
        row, headers = self.log_current_row, self._header_set
        if row.keys().isdisjoint(keys) and (self.first_row or headers.issuperset(keys)):
            return
        for key in keys:
            if key in row:
                raise ValueError(
                    "You already set %s this iteration. Maybe you forgot to call "
                    "dump_tabular()" % key)
            if key not in headers and not self.first_row:
                raise ValueError(
                    "Trying to introduce a new key %s that you didn't include in the first "
                    "iteration" % key)

    def _insert(self, keys, vals):
        """Set ``keys`` (checked by :meth:`_check_new`) to ``vals`` in this row."""
        if self.first_row:  # the header grows during the first row only
            headers = self._header_set
            for key in keys:
                if key not in headers:
                    self.log_headers.append(key)
                    headers.add(key)
        self.log_current_row.update(zip(keys, vals))

    def _resolve_row(self):
        """Fill in statistics whose values wait for the row's cross-rank merge (hook)."""

    def dump_tabular(self, step=None):
        """Write the current row to every output: stdout's table, ``progress.txt``, ...

        Header keys not set in this row are written as empty fields. With nothing logged,
        warns and writes no row.

        Args:
            step: the row's step for step-indexed formats (TensorBoard, W&B). Default: the
                number of rows dumped before this one (0, 1, 2, ...).
        """
        self._resolve_row()
        if not self.log_current_row:
            if mpi_tools.proc_id() == 0:
                warnings.warn("dump_tabular(): nothing was logged since the last dump; no row "
                              "written. Call log_tabular() first.", RuntimeWarning, stacklevel=2)
            return
        self._rates.fill(self.log_current_row)
        if self.first_row and self._resume is not None and self._resume["rows"] > 0:
            _resume.check_headers(self.log_headers, self._resume["headers"])
        step = self._rows_dumped if step is None else int(step)
        if self.writers:
            row = Row(self.log_headers, self.log_current_row, step)
            for writer in self.writers:
                writer.write_row(row)
        self.log_current_row.clear()
        self.first_row = False
        self._rows_dumped += 1
        self._next_step = step + 1

    def save_config(self, config):
        """Save an experiment configuration as ``config.json`` (and print it), rank 0 only.

        Values that JSON cannot hold are converted (see
        :func:`spinfast.serialization_utils.convert_json`); this never raises on odd values.
        ``exp_name`` is added to the saved copy; the caller's dict is not modified.
        """
        config_json = convert_json(config)
        if self.exp_name is not None and isinstance(config_json, dict):
            config_json = {**config_json, "exp_name": self.exp_name}
        if mpi_tools.proc_id() == 0:
            output = dumps_config(config_json)
            print(colorize("Saving config:\n", color="cyan", bold=True))
            print(output)
            with atomic_path(osp.join(self.output_dir, "config.json")) as tmp:
                with open(tmp, "w") as out:
                    out.write(output)
            for writer in self.writers:
                writer.write_config(config_json, output)


class EpochLogger(Logger, EpochTable):
    """A Logger that also averages diagnostics stored over an epoch.

    ``store(**kwargs)`` feeds each key's streaming accumulator; ``log_tabular(key)`` logs
    ``Average<key>`` and ``Std<key>`` (optionally ``Max``/``Min``) of the values stored since
    the last ``log_tabular(key)``, over all MPI ranks, then resets the key. ``timer(key)``
    stores the seconds of the blocks it times under ``key``.

    Args:
        args, kwargs: passed to :class:`Logger`.
        system_metrics: add the columns ``SysRSSMaxMB``, ``SysRSSMaxRank``, ``SysCPUMean``,
            ``SysCPUMax`` and ``SysRanks`` to every row: the largest resident memory of a rank
            (MB) and that rank, the mean and largest CPU use of the ranks since the previous
            dump (percent of one core), and the number of ranks. Every rank samples itself in
            :meth:`dump_tabular`; the samples travel in the row's one collective.
    """

    def __init__(self, *args, system_metrics=False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_table()
        # system_metrics: the columns of sysmetrics.COLUMNS at each dump, from every rank's
        # sample, which rides in the row's one collective.
        self._sampler = ProcessSampler() if system_metrics else None
        # Under MPI, the statistics of this row not merged yet: their _Columns (their states
        # are the batch's rows), the keys this rank never stored, the quantile-sketch counts
        # of those logged with quantiles; the layout of the last merged row (the same each
        # epoch).
        self._pending = []
        self._pending_unknown = set()
        self._pending_counts = {}
        self._layout = _RowLayout([], (), (), ())

    def log_tabular(self, key, val=None, with_min_and_max=False, average_only=False,
                    quantiles=None, *, rate=None):
        """Log a value, or statistics of the values stored under ``key`` this epoch.

        Args:
            key: diagnostic name.
            val: a value to log directly, as :meth:`Logger.log_tabular`. If None, log
                ``Average<key>`` (or ``key`` with ``average_only``), ``Std<key>`` (unless
                ``average_only``), then ``Max<key>``, ``Min<key>`` (``with_min_and_max``),
                of the values stored since the key was last logged; then reset the key.
            with_min_and_max: also log the max and min.
            average_only: log only the average, under the plain key.
            quantiles: quantiles in [0, 1] to log after the other columns, as
                ``P<100 q><key>`` (``%g``: 0.999 gives ``P99.9<key>``); the key must be
                tracked (:meth:`track_quantiles`).
            rate: a counter column: log ``key`` as its change per second since the last
                dump (see :meth:`Logger.log_tabular`).

        In one process the columns hold their values at once. Under MPI the statistics
        cover every rank's values; they are merged for all keys of the row with one
        collective in :meth:`dump_tabular` (so ``log_current_row`` holds them from then on),
        and every rank must make the same calls in the same order.

        Raises:
            KeyError: ``key`` was never stored (the message lists the stored keys).
            ValueError: a column not in the first row, or set twice in one row; quantiles of
                a key not tracked, or outside [0, 1].
        """
        if val is not None or rate is not None:
            return Logger.log_tabular(self, key, val, rate=rate)
        if quantiles is not None and type(quantiles) is not tuple:
            quantiles = tuple(quantiles)  # a list: hashable for the cache below
        columns = _COLUMNS.get((key, with_min_and_max, average_only, quantiles))
        if columns is None:
            columns = _columns(key, with_min_and_max, average_only, quantiles)
            if columns.quantiles and key not in self._tracked:
                raise ValueError(f"log_tabular(): quantiles of {key!r} are not tracked; call "
                                 f"logger.track_quantiles({key!r}) before storing its values")
        table = self._table
        try:
            self._check_new(columns.names)  # a refused call changes nothing
        except ValueError:
            if self._single and key not in table.stored_keys():
                raise self._never_stored(key) from None  # its KeyError comes first
            raise
        counts = table.take_sketch(key) if columns.quantiles else None
        if self._single:
            state = table.take_state(key)  # the epoch's values are taken (and the key reset)
            if state is None:
                raise self._never_stored(key)
            self._insert(columns.names, self._stat_values(columns, state, counts))
            return
        # Under MPI the state is taken into the row's batch, merged over the ranks by
        # dump_tabular (a key never stored here may have values on other ranks).
        if not table.take_into_batch(key):
            self._pending_unknown.add(key)  # KeyError at the merge if no rank has values
        if columns.quantiles:  # (no counts: tracked, but never stored here)
            self._pending_counts[key] = np.zeros(0) if counts is None else counts
        if self.first_row:
            self._insert(columns.names, columns.placeholders.values())
        else:
            self.log_current_row.update(columns.placeholders)
        self._pending.append(columns)

    def _stat_values(self, columns, state, counts=None, all_columns=False):
        """The values of ``columns`` from ``state`` (and ``counts``' quantiles); warn if the
        key had no values. With ``all_columns``: ``(*summary, *quantiles)``."""
        stats = _summarize(state)
        if columns.quantiles:
            stats += tuple(sketch_quantiles(counts, self._tracked[columns.key],
                                            columns.quantiles)
                           if counts is not None and counts.size else
                           [math.nan] * len(columns.quantiles))
        if state[STATE_COUNT] == 0.0 and mpi_tools.proc_id() == 0:
            warnings.warn(f"log_tabular(): no values stored for {columns.key!r} since it was "
                          f"last logged; its statistics are NaN", RuntimeWarning, stacklevel=4)
        return stats if all_columns else [stats[which] for which in columns.which]

    def _merged(self, pending, keys, states, unknown=(), taken=None, per_rank=None):
        """Merge the row's statistics over the ranks (:func:`spinfast._mpi.statmerge.merge_row`).

        Raises:
            KeyError: a key in ``unknown`` (never stored here) that no rank has values for.
        """
        merged = merge_row(mpi_tools.reduce_stat_states, keys, states, self._tracked, taken,
                           per_rank)
        if unknown:
            for columns, state in zip(pending, merged.states):
                if state[STATE_COUNT] == 0.0 and columns.key in unknown:
                    raise self._never_stored(columns.key)
        return merged

    def _resolve_row(self):
        """Merge the row's pending statistics over the ranks and put their values in the row.

        One collective for all of them; the statistics of every key are concatenated into one
        list and the row's columns take their values from it (see :class:`_RowLayout`). The
        system-metrics samples of a non-empty row travel in the same collective.
        """
        if self.output_dir is not None:
            self._record_timers(self.output_dir, self._timer_record)
        sample = self._sampler.sample() if self._sampler is not None else None
        if not self._pending:
            if sample is not None and self.log_current_row:  # the samples travel alone
                self._system_columns(np.array([sample]) if self._single else
                                     mpi_tools.reduce_stat_states(
                                         (), np.empty((0, STATE_SIZE)), per_rank=sample).per_rank)
            return
        pending, self._pending = self._pending, []
        unknown, self._pending_unknown = self._pending_unknown, set()
        taken, self._pending_counts = self._pending_counts, {}
        states = self._table.pop_batch()
        layout = self._layout
        if pending != layout.columns:
            layout = self._layout = _row_layout(pending)
        row = self.log_current_row
        try:
            merged, sketches, gathered = self._merged(pending, layout.keys, states, unknown,
                                                      taken, sample)
        except Exception:
            for name in layout.names:  # no placeholder may reach an output
                del row[name]
            raise
        if taken or any(state[STATE_COUNT] == 0.0 for state in merged):
            stats = []  # quantiles, or keys without values (a warning each): key by key
            for columns, state in zip(pending, merged):
                counts = sketches.get(columns.key) if columns.quantiles else None
                stats += self._stat_values(columns, state, counts, all_columns=True)
        else:
            stats = list(chain.from_iterable(map(_summarize, merged)))
        row.update(zip(layout.names, map(stats.__getitem__, layout.select)))
        if gathered is not None:
            self._system_columns(gathered)

    def _system_columns(self, per_rank):
        """Put the system-metrics columns of every rank's samples (ranks, 2) in the row."""
        values = system_columns(per_rank)
        self._check_new(values)
        self._insert(values, values.values())

    def get_stats(self, key):
        """Return ``[mean, std]`` of the values stored under ``key`` this epoch (all ranks).

        Does not reset the key. Under MPI every rank must call it (one collective).

        Raises:
            KeyError: ``key`` was never stored.
        """
        state = self._table.take_state(key, False)
        known = state is not None
        if not known:
            if self._single:
                raise self._never_stored(key)
            state = _EMPTY_STATE
        if not self._single:
            merged, _, _ = self._merged([_columns(key, False, False)], [key],
                                        np.array([state]), () if known else {key})
            state = merged[0]
        summary = _summarize(state)
        return [summary[SUMMARY_MEAN], summary[SUMMARY_STD]]
