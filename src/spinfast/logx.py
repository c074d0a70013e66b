"""Logging, as ``spinup.utils.logx``: progress.txt, config.json, vars*.pkl and model savers.

:class:`Logger` writes a tab-separated ``progress.txt`` with a header row, prints each row as
a table, saves configs and state. :class:`EpochLogger` adds :meth:`~EpochLogger.store`: values
stored during an epoch feed a compiled streaming accumulator per key (count, mean, M2, min,
max in float64, O(1) memory), summarised by :meth:`~EpochLogger.log_tabular`. Across MPI ranks
all keys of a row are merged with one collective in :meth:`~Logger.dump_tabular`.

Importing this module loads neither TensorFlow nor PyTorch and does not initialise MPI.
"""

from __future__ import annotations

import os
import os.path as osp
import time
import warnings
import weakref

import numpy as np

from spinfast import mpi_tools
from spinfast._io import atomic_dir, atomic_path
from spinfast._stats import (
    EpochStats,
    fill_stat_columns,
    format_float_row,
    pending_states,
    stats_of_states,
)
from spinfast.serialization_utils import convert_json, dumps_config

__all__ = ["Logger", "EpochLogger", "colorize", "color2num", "restore_tf_graph",
           "restore_tf2_model"]

color2num = dict(gray=30, red=31, green=32, yellow=33, blue=34, magenta=35, cyan=36,
                 white=37, crimson=38)

DEFAULT_ROOT = "/tmp/experiments"


def colorize(string, color, bold=False, highlight=False):
    """Return ``string`` wrapped in ANSI escape codes for ``color`` (see ``color2num``).

    Raises:
        ValueError: unknown color.
    """
    try:
        num = color2num[color]
    except (KeyError, TypeError):
        raise ValueError(f"colorize(): unknown color {color!r}; use one of "
                         f"{', '.join(color2num)}") from None
    attr = [str(num + 10 if highlight else num)]
    if bold:
        attr.append("1")
    return "\x1b[%sm%s\x1b[0m" % (";".join(attr), string)


def restore_tf_graph(sess, fpath):
    """Load a TF1 graph saved by :meth:`Logger.setup_tf_saver` into ``sess``.

    Args:
        sess: a ``tf.compat.v1.Session`` whose graph receives the saved model.
        fpath: a ``tf1_save`` (or ``tf1_save<itr>``) folder.

    Returns:
        ``{key: tensor}`` for every input and output given to ``setup_tf_saver``.

    Raises:
        FileNotFoundError: ``fpath`` holds no saved model.
    """
    import joblib
    import tensorflow as tf

    info_path = osp.join(fpath, "model_info.pkl")
    if not osp.isfile(info_path):
        raise FileNotFoundError(f"restore_tf_graph(): no model_info.pkl in {fpath!r}; pass a "
                                f"tf1_save folder written by Logger.setup_tf_saver")
    tf1 = tf.compat.v1
    with sess.graph.as_default():
        tf1.saved_model.loader.load(sess, [tf1.saved_model.tag_constants.SERVING], fpath)
    model_info = joblib.load(info_path)
    graph = sess.graph
    model = {k: graph.get_tensor_by_name(v) for k, v in model_info["inputs"].items()}
    model.update({k: graph.get_tensor_by_name(v) for k, v in model_info["outputs"].items()})
    return model


def restore_tf2_model(fpath):
    """Load a TF2 model saved by :meth:`Logger.setup_tf2_saver` (``tf.saved_model.load``).

    Returns the restored object: its ``tf.function`` methods (``__call__`` of a Keras model or
    any ``tf.Module`` method decorated with an input signature) can be called directly.
    """
    import tensorflow as tf

    if not osp.isfile(osp.join(fpath, "saved_model.pb")):
        raise FileNotFoundError(f"restore_tf2_model(): no saved_model.pb in {fpath!r}; pass a "
                                f"tf2_save folder written by Logger.setup_tf2_saver")
    return tf.saved_model.load(fpath)


def _unique_default_dir() -> str:
    base = osp.join(DEFAULT_ROOT, str(int(time.time())))
    candidate, k = base, 0
    while True:
        try:
            os.makedirs(candidate)
            return candidate
        except FileExistsError:
            k += 1
            candidate = f"{base}_{k}"


def _format_cell(val) -> str:
    """The value as shown in the stdout table (Spinning Up's ``%8.3g`` for numbers)."""
    if isinstance(val, np.ndarray) and val.size != 1:
        return str(val)
    if hasattr(val, "__float__") and not isinstance(val, (str, bytes)):
        try:
            return "%8.3g" % val
        except TypeError:
            return str(val)
    return str(val)


_PLAIN_NUMBERS = frozenset((float, int, bool))


class _TableLayout:
    """The stdout table of a header list (Spinning Up's layout), for every row.

    ``w = max(15, longest key)``; a rule of ``22 + w`` dashes; ``| <key right-aligned in w> |
    <value right-aligned in 15> |`` per key; the rule again. A row of floats (the common
    case) is formatted by compiled code (:func:`spinfast._stats.format_float_row`, with
    Python's own float formatting); other rows fill a ``%`` template in which a plain number's
    slot formats it (``%15.3g``) and any other value's slot takes its formatted cell (``%15s``).
    """

    def __init__(self, headers):
        self.headers = list(headers)
        width = max(15, max(len(k) for k in headers))
        self.prefixes = ["| %*s | " % (width, key) for key in headers]
        self.rule = "-" * (22 + width)
        self.prefix_bytes = [p.encode("utf-8", "surrogatepass") for p in self.prefixes]
        self.rule_bytes = self.rule.encode()
        self._templates: dict[tuple, str] = {}

    def format(self, row):
        """``(table, progress.txt line)`` of a row (``{header: value}``; missing ones empty)."""
        fast = format_float_row(row, self.headers, self.prefix_bytes, self.rule_bytes)
        if fast is not None:
            return fast
        vals = [row.get(key, "") for key in self.headers]
        plain = tuple(type(v) in _PLAIN_NUMBERS for v in vals)
        template = self._templates.get(plain)
        if template is None:
            rows = [p.replace("%", "%%") + ("%15.3g |" if pl else "%15s |")
                    for p, pl in zip(self.prefixes, plain)]
            template = self._templates[plain] = "\n".join([self.rule, *rows, self.rule])
        table = template % tuple(v if p else _format_cell(v) for v, p in zip(vals, plain))
        line = "\t".join(str(v) if p else _field(k, v)
                         for k, v, p in zip(self.headers, vals, plain)) + "\n"
        return table, line


def _field(key, val) -> str:
    """The value as written to progress.txt: ``str(val)``, tabs and line breaks as spaces."""
    s = str(val)
    if "\t" in s or "\n" in s or "\r" in s:
        warnings.warn(f"dump_tabular(): value of {key!r} holds tabs or line breaks, which "
                      f"would corrupt progress.txt; they are written as spaces",
                      RuntimeWarning, stacklevel=3)
        s = s.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return s


class _Pending:
    """Placeholder of a statistic whose value is known once the row's states are merged."""

    __slots__ = ()

    def __repr__(self):
        return "<pending: resolved at dump_tabular>"


_PENDING = _Pending()
_EMPTY_STATE = (0.0, 0.0, 0.0, float("inf"), float("-inf"))  # Welford().state


class Logger:
    """A general-purpose logger: save configs, diagnostics and state to ``output_dir``.

    Only MPI rank 0 prints and writes files.

    Args:
        output_dir: folder for the outputs; created if missing (a warning if it exists).
            Default: a new ``/tmp/experiments/<seconds since epoch>`` (made unique).
        output_fname: name of the tab-separated diagnostics file.
        exp_name: experiment name, added to ``config.json``.
    """

    def __init__(self, output_dir=None, output_fname="progress.txt", exp_name=None):
        if mpi_tools.proc_id() == 0:
            if output_dir is None:
                output_dir = _unique_default_dir()
            elif osp.exists(output_dir):
                print("Warning: Log dir %s already exists! Storing info there anyway."
                      % output_dir)
            else:
                os.makedirs(output_dir, exist_ok=True)
            self.output_dir = output_dir
            self.output_file = open(osp.join(output_dir, output_fname), "w")
            self._finalizer = weakref.finalize(self, self.output_file.close)
            print(colorize("Logging data to %s" % self.output_file.name, "green", bold=True))
        else:
            self.output_dir = None
            self.output_file = None
        self.first_row = True
        self.log_headers = []
        self._header_set = set()  # membership of log_headers, O(1)
        self._layout = None  # _TableLayout of the current headers
        self.log_current_row = {}
        self.exp_name = exp_name

    def close(self):
        """Close ``progress.txt`` (also done when the logger is garbage collected)."""
        if self.output_file is not None:
            self._finalizer()

    def log(self, msg, color="green"):
        """Print a colorized, bold message to stdout (rank 0 only)."""
        if mpi_tools.proc_id() == 0:
            print(colorize(msg, color, bold=True))

    def log_tabular(self, key, val):
        """Log a value of some diagnostic for the current row.

        Call once per key per row; the first row fixes the columns (in call order).

        Raises:
            ValueError: a key not in the first row, or a key set twice in one row.
        """
        self._put((key,), val)

    def _put(self, keys, val):
        """Set each of ``keys`` to ``val`` in the current row, with log_tabular's checks."""
        row, headers = self.log_current_row, self._header_set
        for key in keys:  # every check first: a refused call changes nothing
            if key not in headers and not self.first_row:
                raise ValueError(
                    "Trying to introduce a new key %s that you didn't include in the first "
                    "iteration" % key)
            if key in row:
                raise ValueError(
                    "You already set %s this iteration. Maybe you forgot to call "
                    "dump_tabular()" % key)
        for key in keys:
            if key not in headers:
                self.log_headers.append(key)
                headers.add(key)
            row[key] = val

    def _resolve_row(self):
        """Fill in statistics whose values wait for the row's cross-rank merge (hook)."""

    def dump_tabular(self):
        """Write all diagnostics of the current row to stdout (a table) and ``progress.txt``.

        Header keys not set in this row are written as empty fields. With nothing logged,
        warns and writes no row.
        """
        self._resolve_row()
        if not self.log_current_row:
            if mpi_tools.proc_id() == 0:
                warnings.warn("dump_tabular(): nothing was logged since the last dump; no row "
                              "written. Call log_tabular() first.", RuntimeWarning, stacklevel=2)
            return
        if mpi_tools.proc_id() == 0:
            headers = self.log_headers
            if self._layout is None or self._layout.headers != headers:
                self._layout = _TableLayout(headers)
            # Plain numbers print as Spinning Up's "%8.3g" right-aligned in 15 columns.
            table, out = self._layout.format(self.log_current_row)
            print(table, flush=True)
            if self.output_file is not None:
                if self.first_row:
                    out = "\t".join(_field(k, k) for k in headers) + "\n" + out
                self.output_file.write(out)
                self.output_file.flush()
        self.log_current_row.clear()
        self.first_row = False

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

    def save_state(self, state_dict, itr=None):
        """Save ``state_dict`` with joblib as ``vars.pkl`` (``itr`` None) or ``vars<itr>.pkl``.

        Then saves the framework model if a saver is set up. Files are written to a temporary
        name and renamed, so a crash or an unpicklable state never leaves a truncated file;
        an unpicklable state logs a red warning and the run goes on.
        """
        if mpi_tools.proc_id() == 0:
            import joblib  # loaded on first save: it costs more to import than all of logx

            fname = "vars.pkl" if itr is None else f"vars{itr}.pkl"
            try:
                with atomic_path(osp.join(self.output_dir, fname)) as tmp:
                    joblib.dump(state_dict, tmp)
            except Exception:
                self.log("Warning: could not pickle state_dict.", color="red")
            if hasattr(self, "tf_saver_elements"):
                self._tf_simple_save(itr)
            if hasattr(self, "tf2_saver_elements"):
                self._tf2_simple_save(itr)
            if hasattr(self, "pytorch_saver_elements"):
                self._pytorch_simple_save(itr)

    def setup_tf_saver(self, sess, inputs, outputs):
        """Save a TF1 graph (through ``tf.compat.v1``) with each :meth:`save_state`.

        Writes ``tf1_save`` (or ``tf1_save<itr>``) with ``simple_save``, plus
        ``model_info.pkl`` mapping the keys of ``inputs``/``outputs`` to tensor names, which
        :func:`restore_tf_graph` reads back.

        Args:
            sess: the ``tf.compat.v1.Session`` holding the variables.
            inputs: ``{key: tensor}`` of the model's inputs (placeholders).
            outputs: ``{key: tensor}`` of the model's outputs.
        """
        self.tf_saver_elements = dict(session=sess, inputs=inputs, outputs=outputs)
        self.tf_saver_info = {"inputs": {k: v.name for k, v in inputs.items()},
                              "outputs": {k: v.name for k, v in outputs.items()}}

    def _tf_simple_save(self, itr=None):
        if mpi_tools.proc_id() != 0:
            return
        import joblib
        import tensorflow as tf

        fpath = osp.join(self.output_dir, "tf1_save" + ("%d" % itr if itr is not None else ""))
        with atomic_dir(fpath) as tmp:
            with self.tf_saver_elements["session"].graph.as_default():
                tf.compat.v1.saved_model.simple_save(export_dir=tmp, **self.tf_saver_elements)
            joblib.dump(self.tf_saver_info, osp.join(tmp, "model_info.pkl"))

    def setup_tf2_saver(self, model):
        """Save a TF2 model (a ``tf.Module`` or Keras model) with each :meth:`save_state`.

        Writes a SavedModel to ``tf2_save`` (or ``tf2_save<itr>``); load it with
        :func:`restore_tf2_model`.
        """
        self.tf2_saver_elements = model

    def _tf2_simple_save(self, itr=None):
        if mpi_tools.proc_id() != 0:
            return
        import tensorflow as tf

        fpath = osp.join(self.output_dir, "tf2_save" + ("%d" % itr if itr is not None else ""))
        with atomic_dir(fpath) as tmp:
            tf.saved_model.save(self.tf2_saver_elements, tmp)

    def setup_pytorch_saver(self, what_to_save):
        """Save ``what_to_save`` (a module or any torch-picklable object) with each save_state.

        Files go to ``<output_dir>/pyt_save/model.pt`` (or ``model<itr>.pt``).
        """
        self.pytorch_saver_elements = what_to_save

    def _pytorch_simple_save(self, itr=None):
        if mpi_tools.proc_id() != 0:
            return
        import torch

        fpath = osp.join(self.output_dir, "pyt_save")
        os.makedirs(fpath, exist_ok=True)
        fname = osp.join(fpath, "model" + ("%d" % itr if itr is not None else "") + ".pt")
        with warnings.catch_warnings():
            # torch warns about source files of saved modules; Spinning Up silences it too.
            warnings.simplefilter("ignore")
            with atomic_path(fname) as tmp:
                torch.save(self.pytorch_saver_elements, tmp)


_COLUMNS: dict = {}


def _columns(key, with_min_and_max, average_only):
    """``(column names, indices into a stats_of_states tuple)`` of a statistic, cached.

    Indices: 0 mean, 1 std, 2 min, 3 max; order as Spinning Up: Average, Std, Max, Min.
    """
    spec = (key, bool(with_min_and_max), bool(average_only))
    columns = _COLUMNS.get(spec)
    if columns is None:
        pairs = [(key if average_only else "Average" + key, 0)]
        if not average_only:
            pairs.append(("Std" + key, 1))
        if with_min_and_max:
            pairs += [("Max" + key, 3), ("Min" + key, 2)]
        columns = _COLUMNS[spec] = tuple(zip(*pairs))
    return columns


class EpochLogger(Logger, EpochStats):
    """A Logger that also averages diagnostics stored over an epoch.

    ``store(**kwargs)`` feeds each key's streaming accumulator; ``log_tabular(key)`` logs
    ``Average<key>`` and ``Std<key>`` (optionally ``Max``/``Min``) of the values stored since
    the last ``log_tabular(key)``, over all MPI ranks, then resets the key.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = []  # (key, state, known here, columns) of each statistic not merged yet
        # What the compiled log_tabular (EpochStats) works on; the objects are never rebound.
        self._row, self._headers = self.log_current_row, self._header_set
        self._columns_cache, self._placeholder = _COLUMNS, _PENDING
        self._resolve_each = mpi_tools.num_procs() == 1

    # Compiled (spinfast._stats.EpochStats.log_tabular, which documents it): the common call
    # is done there, everything else by _log_tabular below.
    log_tabular = EpochStats.log_tabular

    def _log_tabular(self, key, val=None, with_min_and_max=False, average_only=False):
        """EpochLogger.log_tabular, every case (see EpochStats.log_tabular)."""
        if val is not None:
            return super().log_tabular(key, val)
        state, known = self._local_state(key, reset=False)
        columns = _columns(key, with_min_and_max, average_only)
        self._put(columns[0], _PENDING)  # raises before anything changed
        if known:
            self.snapshot(key, True)  # the call is accepted: this epoch's values are taken
        self._pending.append((key, state, known, columns))
        if mpi_tools.num_procs() == 1:
            self._resolve_row()

    def _local_state(self, key, reset):
        """This rank's ``(state, known)`` of ``key``; under MPI an unknown key is empty here.

        Single process: KeyError for a key never stored. Under MPI the decision waits for
        the merge (:meth:`_merged`), since other ranks may hold values for it.
        """
        state = self.snapshot(key, reset)
        if state is not None:
            return state, True
        if mpi_tools.num_procs() == 1:
            self.stats_accumulator(key)  # raises KeyError listing the stored keys
        return _EMPTY_STATE, False

    def _merged(self, pending):
        """Merge the states of ``(key, state, known, ...)`` entries over ranks (one collective).

        Returns the (k, 5) float64 array of merged states.

        Raises:
            KeyError: a key that no rank has values for and this rank never stored.
        """
        states = pending_states(pending)
        if mpi_tools.num_procs() > 1:
            states = mpi_tools.reduce_stat_states([entry[0] for entry in pending], states)
        if not states[:, 0].all():
            for i in np.flatnonzero(states[:, 0] == 0):
                if not pending[i][2]:
                    self.stats_accumulator(pending[i][0])  # raises KeyError listing the keys
        return states

    def _resolve_row(self):
        if not self._pending:
            return
        pending = self._pending[:]
        self._pending.clear()
        try:
            states = self._merged(pending)
        except Exception:
            for *_, (names, _) in pending:  # no placeholder may reach progress.txt
                for name in names:
                    self.log_current_row.pop(name, None)
            raise
        empty = fill_stat_columns(self.log_current_row, pending, states)
        if empty and mpi_tools.proc_id() == 0:
            for i in empty:
                warnings.warn(f"log_tabular(): no values stored for {pending[i][0]!r} since it "
                              f"was last logged; its statistics are NaN", RuntimeWarning,
                              stacklevel=3)

    def get_stats(self, key):
        """Return ``[mean, std]`` of the values stored under ``key`` this epoch (all ranks).

        Does not reset the key. Under MPI every rank must call it (one collective).

        Raises:
            KeyError: ``key`` was never stored.
        """
        state, known = self._local_state(key, reset=False)
        mean, std, _, _ = stats_of_states(self._merged([(key, state, known, None)]))[0]
        return [mean, std]
