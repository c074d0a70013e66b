"""Plot learning curves from experiment folders, as ``spinup.utils.plot``, on current libraries.

Reads every run under the given folders: ``progress.txt`` (tab-separated, header row) written
by spinfast or by Spinning Up, ``progress.csv``, ``progress.jsonl``, or TensorBoard event files
(spinfast's, stable-baselines3's, CleanRL's, ``torch.utils.tensorboard``'s); groups runs by the
``exp_name`` of their ``config.json`` (or by a legend), smooths, and draws the estimator (mean
by default) of each group with a one standard deviation band, using seaborn's ``lineplot``
(Spinning Up's ``tsplot`` is gone from seaborn).

With ``--aggregate METRIC`` (:func:`make_aggregate_plots`) it instead reports what Agarwal et
al. (NeurIPS 2021) recommend: the metric (IQM, median, mean, optimality gap) over runs and
tasks with stratified bootstrap confidence intervals (:mod:`spinfast.metrics`, re-exported
here: :func:`interval_estimates`, :func:`performance_profile`,
:func:`probability_of_improvement`), as sample-efficiency curves, interval estimates and a
performance profile. Colours are Okabe and Ito's colour-blind safe palette.

Command line: ``python -m spinfast.run plot LOGDIR... [options]`` (see :func:`main`).
Functions return the data they plotted, so a program (or a test) can check it.

pandas, seaborn and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import os.path as osp
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from spinfast.metrics import (
    Interval,
    interval_estimates,
    performance_profile,
    probability_of_improvement,
)

__all__ = ["moving_average", "get_datasets", "get_all_datasets", "plot_data", "make_plots",
           "PlotResult", "build_parser", "main", "DEFAULT_XAXIS", "DEFAULT_VALUE",
           "interval_estimates", "performance_profile", "probability_of_improvement",
           "Interval", "collect_scores", "load_normalization", "make_aggregate_plots",
           "AggregateResult", "plot_sample_efficiency", "plot_interval_estimates",
           "plot_performance_profile", "aggregate_save_paths", "format_summary"]

DIV_LINE_WIDTH = 50
DEFAULT_XAXIS = "TotalEnvInteracts"
DEFAULT_VALUE = "Performance"
ESTIMATORS = ("mean", "median", "max", "min")
AGGREGATE_METRICS = ("iqm", "median", "mean", "optimality_gap")
_ADDED = ("Unit", "Condition1", "Condition2", "Performance")
_NONINTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def moving_average(x, window):
    """Return the centred moving average of ``x`` over ``window`` points.

    Point ``i`` averages ``x[i - window//2 : i + (window-1)//2 + 1]``, clipped to the ends
    and divided by the number of points actually in the window (Spinning Up's
    ``convolve(x, ones) / convolve(ones, ones)`` in ``'same'`` mode, also for series shorter
    than the window). A NaN affects only the windows that contain it.

    Args:
        x: 1-D sequence of numbers.
        window: window length, an int >= 1 (1 returns a float copy of ``x``).

    Returns:
        float64 array of the same length as ``x``.

    Raises:
        ValueError: ``window`` < 1 or ``x`` not 1-D.
        TypeError: ``window`` not an int.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"moving_average(): window must be an int, got {window!r}; pass the "
                        f"number of points to average")
    if window < 1:
        raise ValueError(f"moving_average(): window must be >= 1, got {window!r}; pass 1 for "
                         f"no smoothing")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"moving_average(): x must be 1-D, got shape {x.shape!r}; pass one "
                         f"column")
    if window == 1 or x.size == 0:
        return x.copy()
    kernel = np.ones(int(window))
    lo = (int(window) - 1) // 2
    sums = np.convolve(x, kernel, "full")[lo:lo + x.size]
    counts = np.convolve(np.ones(x.size), kernel, "full")[lo:lo + x.size]
    return sums / counts


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

PROGRESS_FILES = ("progress.txt", "progress.csv", "progress.jsonl")
# Tried in order for the Performance column; the first present is copied into it.
PERFORMANCE_COLUMNS = ("AverageTestEpRet", "AverageEpRet",  # spinfast, Spinning Up
                       "eval/mean_reward", "rollout/ep_rew_mean",  # stable-baselines3
                       "charts/episodic_return")  # CleanRL


def _read_config(root, events=False):
    """The run's config.json as a dict (for an events folder like ``tb/``, else its parent's)."""
    root = osp.normpath(root)
    for folder in (root, osp.dirname(root)) if events else (root,):
        path = osp.join(folder, "config.json")
        if not osp.exists(path):
            continue
        try:
            with open(path) as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            warnings.warn(f"get_datasets(): could not read {path} ({exc}); the run is grouped "
                          f"without its exp_name", RuntimeWarning, stacklevel=4)
            return None
        return config if isinstance(config, dict) else None
    return None


def _read_exp_name(config):
    name = config.get("exp_name") if config else None
    return str(name) if name is not None else None


def _read_jsonl(path):
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


def _read_events(folder):
    """Scalars of a TensorBoard folder as a DataFrame: one row per step, one column per tag."""
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


def _find_run(root, files):
    """``(path, format)`` of a run folder: progress.txt/.csv/.jsonl first, else its events."""
    for name, fmt in zip(PROGRESS_FILES, ("txt", "csv", "jsonl")):
        if name in files:
            return osp.join(root, name), fmt
    if any(f.startswith("events.out.tfevents.") for f in files):
        return root, "tensorboard"
    return None


def _read_frame(path, fmt):
    import pandas as pd

    if fmt in ("txt", "csv"):
        # Loggers end every row with a newline: a last line without one is a row still being
        # written (or cut short by a kill), and its last number may be cut short too.
        with open(path, "rb") as f:
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]
        if not data:
            raise pd.errors.EmptyDataError("no header")
        return pd.read_csv(io.BytesIO(data), sep="\t" if fmt == "txt" else ",")
    if fmt == "jsonl":
        return _read_jsonl(path)
    return _read_events(path)


def get_datasets(logdir, condition=None, _counters=None):
    """Read every run under ``logdir``.

    A run is a folder holding ``progress.txt`` (tab-separated, as Spinning Up's and spinfast's
    loggers write it), else ``progress.csv`` (same header and rows, comma-separated), else
    ``progress.jsonl`` (one JSON object per row), else TensorBoard event files
    (``events.out.tfevents.*``, scalars read by :mod:`spinfast.tfevents`: one row per step, a
    ``Step`` column, one column per tag, and ``TotalEnvInteracts`` = ``Step`` unless a tag of
    that name exists). Only one file is read per folder, and an events folder inside a run
    that has a progress file (spinfast's ``tb/``) is not read a second time. A last line with no
    newline is a row still being written (or cut short by a kill) and is left out.

    Each run becomes a DataFrame with added columns ``Unit`` (index of the run within its
    group), ``Condition1`` (``condition``, else the run's exp_name from ``config.json``, else
    ``'exp'``), ``Condition2`` (``Condition1-<run index>``) and ``Performance`` (a copy of
    the first of ``AverageTestEpRet``, ``AverageEpRet``, ``eval/mean_reward``,
    ``rollout/ep_rew_mean``, ``charts/episodic_return`` present). ``df.attrs`` holds
    ``path`` (the file or folder read), ``format`` (``txt``, ``csv``, ``jsonl`` or
    ``tensorboard``) and ``config`` (the run's config.json as a dict, or None; for an events
    folder, its parent's). Empty files and files with no rows are skipped with a warning.

    Args:
        logdir: folder to search (recursively).
        condition: group name for all runs found, or None.

    Returns:
        list of pandas DataFrames, in sorted folder order.
    """
    import pandas as pd

    counters = _counters if _counters is not None else {"exp_idx": 0, "units": {}}
    datasets = []
    with_progress = set()
    for root, dirs, files in os.walk(logdir):
        dirs.sort()
        found = _find_run(root, files)
        if found is None:
            continue
        path, fmt = found
        if fmt != "tensorboard":
            with_progress.add(osp.normpath(root))
        elif osp.normpath(osp.dirname(root)) in with_progress:
            continue  # the tb/ folder of a run already read from its progress file
        config = _read_config(root, events=fmt == "tensorboard")
        condition1 = condition or _read_exp_name(config) or "exp"
        try:
            exp_data = _read_frame(path, fmt)
        except pd.errors.EmptyDataError:
            warnings.warn(f"get_datasets(): {path} is empty (no header, no rows); skipped",
                          RuntimeWarning, stacklevel=2)
            continue
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            warnings.warn(f"get_datasets(): could not read {path} ({exc}); skipped",
                          RuntimeWarning, stacklevel=2)
            continue
        if exp_data.empty:
            warnings.warn(f"get_datasets(): {path} has a header but no rows yet (columns "
                          f"{list(exp_data.columns)}); skipped", RuntimeWarning, stacklevel=2)
            continue
        condition2 = f"{condition1}-{counters['exp_idx']}"
        counters["exp_idx"] += 1
        unit = counters["units"].get(condition1, 0)
        counters["units"][condition1] = unit + 1
        exp_data = exp_data.copy()
        exp_data["Unit"] = unit
        exp_data["Condition1"] = condition1
        exp_data["Condition2"] = condition2
        perf = next((c for c in PERFORMANCE_COLUMNS if c in exp_data), None)
        if perf is not None:
            exp_data["Performance"] = exp_data[perf]
        exp_data.attrs["path"] = path
        exp_data.attrs["format"] = fmt
        exp_data.attrs["config"] = config
        datasets.append(exp_data)
    return datasets


def _resolve_logdirs(all_logdirs, select, exclude):
    """Expand logdirs as Spinning Up does: ``dir/`` as is, anything else as a name prefix."""
    logdirs = []
    for logdir in all_logdirs:
        logdir = os.fspath(logdir)
        if osp.isdir(logdir) and logdir.endswith(("/", os.sep)):
            found = [logdir]
        else:
            basedir = osp.dirname(logdir) or os.curdir
            prefix = osp.basename(logdir)
            if not osp.isdir(basedir):
                raise FileNotFoundError(f"make_plots(): folder {basedir!r} of logdir "
                                        f"{logdir!r} does not exist; give an existing folder")
            found = sorted(osp.join(basedir, x) if osp.dirname(logdir) else x
                           for x in os.listdir(basedir)
                           if x.startswith(prefix) and osp.isdir(osp.join(basedir, x)))
            if not found:
                raise FileNotFoundError(
                    f"make_plots(): no folder in {basedir!r} starts with {prefix!r} (logdir "
                    f"{logdir!r}); it holds {sorted(os.listdir(basedir))!r}")
        for d in found:
            if d not in logdirs:
                logdirs.append(d)
    if select is not None:
        logdirs = [log for log in logdirs if all(x in log for x in select)]
    if exclude is not None:
        logdirs = [log for log in logdirs if all(x not in log for x in exclude)]
    return logdirs


def get_all_datasets(all_logdirs, legend=None, select=None, exclude=None):
    """Read the runs under several logdirs, as the plotter does.

    A logdir ending in ``/`` is searched as is; any other logdir is a prefix: every folder
    beside it whose name starts with its last component is searched (so ``data/ppo`` finds
    ``data/ppo_s0`` and ``data/ppo-bench``; a bare name searches the current folder).

    Args:
        all_logdirs: list of folders or prefixes.
        legend: one group name per resolved logdir, or None (group by exp_name).
        select: keep only logdirs containing every one of these substrings.
        exclude: drop logdirs containing any of these substrings.

    Returns:
        list of DataFrames (see :func:`get_datasets`).

    Raises:
        FileNotFoundError: a logdir matches nothing.
        ValueError: ``legend`` does not give one name per logdir.
    """
    if isinstance(all_logdirs, (str, os.PathLike)):
        all_logdirs = [all_logdirs]
    logdirs = _resolve_logdirs(all_logdirs, select, exclude)
    print("Plotting from...\n" + "=" * DIV_LINE_WIDTH + "\n")
    for logdir in logdirs:
        print(logdir)
    print("\n" + "=" * DIV_LINE_WIDTH)
    if legend and len(legend) != len(logdirs):
        raise ValueError(f"get_all_datasets(): {len(legend)} legend names {list(legend)!r} for "
                         f"{len(logdirs)} logdirs {logdirs!r}; give one legend name per logdir")
    counters = {"exp_idx": 0, "units": {}}
    data = []
    for i, log in enumerate(logdirs):
        data += get_datasets(log, legend[i] if legend else None, _counters=counters)
    return data


# ---------------------------------------------------------------------------------------------
# Plotting
# ---------------------------------------------------------------------------------------------

def _check_column(datum, column, role, flag, fn="plot_data"):
    if column in datum.columns:
        return
    path = datum.attrs.get("path", "<data>")
    have = [c for c in datum.columns if c not in _ADDED or c == "Performance"]
    extra = " (AverageTestEpRet or AverageEpRet)" if column == "Performance" else ""
    raise ValueError(f"{fn}(): column {column!r}{extra} ({role}) not found in {path}; "
                     f"its columns are {have!r}; choose one with {flag}")


def plot_data(data, xaxis="Epoch", value="AverageEpRet", condition="Condition1", smooth=1,
              ax=None, **kwargs):
    """Draw ``value`` against ``xaxis`` for the runs in ``data``, one line per condition.

    Each run's ``value`` column is smoothed with :func:`moving_average` (``smooth`` points);
    then seaborn draws, per condition and x, the estimator over runs with a band of one
    standard deviation (``errorbar='sd'``).

    Args:
        data: list of DataFrames from :func:`get_datasets`, or one DataFrame.
        xaxis: x column.
        value: y column.
        condition: column that groups runs (``Condition1`` or ``Condition2``).
        smooth: smoothing window (int >= 1).
        ax: matplotlib Axes to draw on (default: the current pyplot axes).
        **kwargs: passed to ``seaborn.lineplot`` (e.g. ``estimator``).

    Returns:
        the concatenated DataFrame that was plotted (smoothed ``value``).

    Raises:
        ValueError: a column is missing (the message names the file and its columns), holds
            non-numbers, or there are no data.
    """
    import pandas as pd
    import seaborn as sns

    frames = [data] if isinstance(data, pd.DataFrame) else list(data)
    if not frames:
        raise ValueError("plot_data(): no data to plot; check that the logdirs hold "
                         "progress.txt files with rows")
    smoothed = []
    for datum in frames:
        _check_column(datum, xaxis, "x axis", "-x/--xaxis")
        _check_column(datum, value, "y value", "-y/--value")
        if datum.attrs.get("format", "txt") != "txt":
            # csv/jsonl/TensorBoard rows may lack a column (SB3's csv, CleanRL's events)
            datum = datum.dropna(subset=[xaxis, value])
        datum = datum.copy()
        try:
            y = datum[value].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"plot_data(): column {value!r} of {datum.attrs.get('path')} "
                             f"holds non-numeric values; plot a numeric column") from None
        datum[value] = moving_average(y, smooth)
        smoothed.append(datum)
    frame = pd.concat(smoothed, ignore_index=True)
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    kwargs.setdefault("errorbar", "sd")
    sns.lineplot(data=frame, x=xaxis, y=value, hue=condition, ax=ax, **kwargs)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="best")
    xs = pd.to_numeric(frame[xaxis], errors="coerce").to_numpy(dtype=np.float64)
    if xs.size and np.nanmax(np.abs(xs)) > 5e3:
        ax.ticklabel_format(style="sci", axis="x", scilimits=(0, 0))
    return frame


@dataclass
class PlotResult:
    """One figure made by :func:`make_plots`.

    Attributes:
        value: the y column.
        xaxis: the x column.
        data: the DataFrame plotted (all runs, smoothed ``value``).
        path: the file written, or None if the figure was shown on screen.
        figure: the matplotlib Figure.
    """

    value: str
    xaxis: str
    data: object
    path: str | None
    figure: object = field(repr=False, default=None)


def _has_display():
    """Return True if figures can be shown on a screen."""
    backend = os.environ.get("MPLBACKEND", "").lower()
    if backend in _NONINTERACTIVE or backend.startswith("module://"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _safe_name(s):
    return "".join(c if (c.isalnum() or c in "-_.") else "-" for c in str(s))


def _save_paths(save, values, default_dir):
    """File name per value: ``save`` itself for one value, ``stem_<value>.ext`` for several."""
    if save is None:
        return [osp.join(default_dir, f"plot_{_safe_name(v)}.png") for v in values]
    save = os.fspath(save)
    if len(values) == 1:
        return [save]
    stem, ext = osp.splitext(save)
    return [f"{stem}_{_safe_name(v)}{ext}" for v in values]


def make_plots(all_logdirs, legend=None, xaxis=None, values=None, count=False,
               font_scale=1.5, smooth=1, select=None, exclude=None, estimator="mean",
               save=None, show=None):
    """Make one figure per y value from the runs under ``all_logdirs``.

    Args:
        all_logdirs: folders or prefixes (see :func:`get_all_datasets`).
        legend: one group name per logdir, or None to group by exp_name.
        xaxis: x column (default ``TotalEnvInteracts``).
        values: y column or list of them (default ``Performance``: ``AverageTestEpRet`` if
            present, else ``AverageEpRet``); one figure each.
        count: one line per run (``Condition2``) instead of per group.
        font_scale: seaborn font scale.
        smooth: moving-average window (points).
        select: keep only logdirs containing all these substrings.
        exclude: drop logdirs containing any of these substrings.
        estimator: ``'mean'``, ``'median'``, ``'max'`` or ``'min'`` across runs.
        save: file to write (PNG, SVG, PDF, ... by extension); with several values each file
            gets ``_<value>`` before the extension.
        show: show the figures on screen; default: only when there is a display and no
            ``save``. Without a display and without ``save``, PNGs are written next to the
            data (the folder common to all runs) as ``plot_<value>.png``.

    Returns:
        list of :class:`PlotResult`, one per value, each with the data it plotted and the
        file written.

    Raises:
        FileNotFoundError: a logdir matches nothing.
        ValueError: no runs found, a column missing, a bad estimator or file format.
    """
    import matplotlib
    import seaborn as sns
    from matplotlib.figure import Figure

    if estimator not in ESTIMATORS:
        raise ValueError(f"make_plots(): unknown estimator {estimator!r}; use one of "
                         f"{', '.join(ESTIMATORS)}")
    xaxis = xaxis or DEFAULT_XAXIS
    values = [DEFAULT_VALUE] if values is None else (
        list(values) if isinstance(values, (list, tuple)) else [values])
    if not values:
        raise ValueError("make_plots(): no y values given; pass at least one column name")
    data = get_all_datasets(all_logdirs, legend, select, exclude)
    if not data:
        raise ValueError(f"make_plots(): no runs with data (progress.txt with rows) under "
                         f"{list(map(os.fspath, all_logdirs))!r}; check the paths")
    condition = "Condition2" if count else "Condition1"
    est = getattr(np, estimator)

    if show is None:
        show = save is None and _has_display()
    plt = None
    if show:
        import matplotlib.pyplot as plt

        if matplotlib.get_backend().lower() in _NONINTERACTIVE:
            show = False
            plt = None
    paths = [None] * len(values)
    if not show or save is not None:
        run_dirs = [osp.dirname(osp.abspath(d.attrs["path"])) for d in data]
        default_dir = osp.commonpath(run_dirs)
        paths = _save_paths(save, values, default_dir)
        for p in paths:
            fmt = osp.splitext(p)[1].lstrip(".").lower()
            supported = Figure().canvas.get_supported_filetypes()
            if fmt not in supported:
                raise ValueError(f"make_plots(): cannot save {p!r}: unknown file type {fmt!r}; "
                                 f"use one of {', '.join(sorted(supported))}")

    results = []
    with sns.axes_style("darkgrid"), sns.plotting_context("notebook", font_scale=font_scale):
        for value, path in zip(values, paths, strict=True):
            fig = plt.figure() if plt is not None else Figure(figsize=(8, 6))
            ax = fig.add_subplot()
            frame = plot_data(data, xaxis=xaxis, value=value, condition=condition,
                              smooth=smooth, ax=ax, estimator=est)
            fig.tight_layout(pad=0.5)
            if path is not None:
                folder = osp.dirname(osp.abspath(path))
                os.makedirs(folder, exist_ok=True)
                fig.savefig(path)
                print(f"Saved plot of {value} vs {xaxis} to {path}")
            results.append(PlotResult(value, xaxis, frame, path, fig))
        if show and plt is not None:
            plt.show()
    return results


# ---------------------------------------------------------------------------------------------
# Aggregate plots: bootstrap confidence intervals over runs and tasks (Agarwal et al., 2021)
# ---------------------------------------------------------------------------------------------

# Okabe & Ito's palette (distinct under the common colour-vision deficiencies), black last;
# line styles cycle too, so curves stay apart in grey print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
LINESTYLES = ("-", "--", "-.", ":")
METRIC_LABELS = {"iqm": "IQM", "median": "Median", "mean": "Mean",
                 "optimality_gap": "Optimality gap"}
# The paper's order of the interval-estimate rows.
INTERVAL_METRICS = ("median", "iqm", "mean", "optimality_gap")
FIGURE_SUFFIXES = {"curves": "", "intervals": "_intervals", "profile": "_profile"}
_RC = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
       "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
       "savefig.dpi": 200, "savefig.bbox": "tight"}


@dataclass
class AggregateResult:
    """What :func:`make_aggregate_plots` computed and drew.

    Attributes:
        metric: the metric of the curves (``iqm``, ``median``, ``mean``, ``optimality_gap``).
        value: the y column; ``xaxis``: the x column.
        tasks: task names, in the order of the score arrays' task axis.
        x: the common x grid of the curves, float64 (points,).
        curves: algorithm -> scores (runs, tasks, points) on ``x`` (normalised if asked).
        finals: algorithm -> final scores (runs, tasks): the curves at the last grid point.
        curve_intervals: algorithm -> :class:`spinfast.metrics.Interval` over ``x``.
        intervals: metric -> algorithm -> :class:`~spinfast.metrics.Interval` of the finals.
        taus: thresholds of the performance profile.
        profiles: algorithm -> :class:`~spinfast.metrics.Interval` over ``taus``.
        improvement: ``(x, y)`` -> :class:`~spinfast.metrics.Interval`, the probability
            that ``x`` beats ``y`` on final scores (each pair in legend order).
        normalized: whether scores were normalised per task.
        paths: figure name (``curves``, ``intervals``, ``profile``) -> file written, or None.
        figures: figure name -> matplotlib Figure.
    """

    metric: str
    value: str
    xaxis: str
    tasks: list
    x: np.ndarray
    curves: dict
    finals: dict
    curve_intervals: dict
    intervals: dict
    taus: np.ndarray
    profiles: dict
    improvement: dict = field(default_factory=dict)
    normalized: bool = False
    paths: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict, repr=False)


def _config_value(config, key):
    """``config[key]``; a key ``a:b`` looks into nested dicts, as grid keys do."""
    node = config
    for part in key.split(":"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


def _task_of(datum, tasks_from):
    if tasks_from is None:
        return "all"
    path = datum.attrs.get("path", "<data>")
    config = datum.attrs.get("config")
    if config is None:
        raise ValueError(f"collect_scores(): run {path} has no config.json, so its task "
                         f"cannot be read from {tasks_from!r}; give the runs a config.json, "
                         f"or plot them without --tasks-from")
    try:
        return str(_config_value(config, tasks_from))
    except KeyError:
        raise ValueError(f"collect_scores(): config.json of run {path} has no key "
                         f"{tasks_from!r}; its keys are {sorted(config)!r}") from None


def load_normalization(path):
    """Read per-task score bounds from a JSON file: ``{task: {"min": a, "max": b}}``.

    A task may also be given as ``[min, max]``. Scores are normalised as
    ``(score - min) / (max - min)`` (e.g. min = random policy, max = a reference agent).

    Returns:
        dict task -> (min, max) floats.

    Raises:
        ValueError: not JSON, or a task whose bounds are not two numbers with max != min.
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            raw = json.load(f)
    except ValueError as exc:
        raise ValueError(f"load_normalization(): {path!r} is not JSON ({exc}); write "
                         f'{{"task": {{"min": 0, "max": 100}}}}') from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"load_normalization(): {path!r} holds {type(raw).__name__}, not a "
                         f'non-empty object; write {{"task": {{"min": 0, "max": 100}}}}')
    out = {}
    for task, bounds in raw.items():
        if isinstance(bounds, dict):
            bounds = (bounds.get("min"), bounds.get("max"))
        ok = (isinstance(bounds, (list, tuple)) and len(bounds) == 2
              and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
              and np.isfinite(bounds).all() and bounds[1] != bounds[0])
        if not ok:
            raise ValueError(f"load_normalization(): bounds of task {task!r} in {path!r} are "
                             f"{raw[task]!r}; give {{\"min\": number, \"max\": number}} with "
                             f"max != min")
        out[str(task)] = (float(bounds[0]), float(bounds[1]))
    return out


def collect_scores(data, xaxis=DEFAULT_XAXIS, value=DEFAULT_VALUE, tasks_from=None,
                   normalize=None, smooth=1, points=50, condition="Condition1"):
    """Arrange runs as score arrays for :mod:`spinfast.metrics`.

    Each run's ``value`` is smoothed (:func:`moving_average`) and linearly interpolated onto
    a common grid of ``points`` x values spanning the range every run reached (from the
    largest first x to the smallest last x), so curves of runs logged at different steps are
    compared at the same x. A run's final score is its curve at the last grid point.

    Args:
        data: DataFrames from :func:`get_all_datasets`.
        xaxis, value: columns.
        tasks_from: config.json key naming a run's task (``a:b`` for nested keys), or None
            for one task ``'all'``.
        normalize: dict task -> (min, max) (see :func:`load_normalization`), or None.
        smooth: moving-average window (points of the run's own rows).
        points: grid size (>= 1).
        condition: column naming the algorithm of a run.

    Returns:
        ``(x, tasks, curves, finals)``: the grid (points,), the sorted task names,
        algorithm -> (runs, tasks, points) and algorithm -> (runs, tasks). An algorithm with
        more runs on some tasks than on others keeps, per task, its first runs (a warning
        says how many were left out), as the arrays need as many runs on every task.

    Raises:
        ValueError: missing columns or tasks, an algorithm missing a task, no common x range,
            a task missing from ``normalize``.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise ValueError(f"collect_scores(): points must be an int >= 1, got {points!r}")
    if not data:
        raise ValueError("collect_scores(): no runs; check the logdirs")
    runs = []  # (algorithm, task, x, y)
    for datum in data:
        path = datum.attrs.get("path", "<data>")
        _check_column(datum, xaxis, "x axis", "-x/--xaxis", "collect_scores")
        _check_column(datum, value, "y value", "-y/--value", "collect_scores")
        try:
            xy = datum[[xaxis, value]].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"collect_scores(): columns {xaxis!r}/{value!r} of {path} hold "
                             f"non-numeric values; plot numeric columns") from None
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) == 0:
            raise ValueError(f"collect_scores(): run {path} has no row with finite "
                             f"{xaxis!r} and {value!r}; drop the run or pick other columns")
        xy = xy[np.argsort(xy[:, 0], kind="stable")]
        y = moving_average(xy[:, 1], smooth)
        runs.append((str(datum[condition].iloc[0]), _task_of(datum, tasks_from), xy[:, 0], y,
                     path))
    lo = max(r[2][0] for r in runs)
    hi = min(r[2][-1] for r in runs)
    if hi < lo:
        first = max(runs, key=lambda r: r[2][0])
        last = min(runs, key=lambda r: r[2][-1])
        raise ValueError(f"collect_scores(): the runs share no {xaxis} range: {first[4]} "
                         f"starts at {lo:g} but {last[4]} ends at {hi:g}; plot them "
                         f"separately (--select/--exclude)")
    x = np.linspace(lo, hi, points) if points > 1 else np.array([hi])
    algos = list(dict.fromkeys(r[0] for r in runs))
    tasks = sorted({r[1] for r in runs})
    if normalize is not None:
        missing = [t for t in tasks if t not in normalize]
        if missing:
            raise ValueError(f"collect_scores(): tasks {missing!r} have no bounds in the "
                             f"normalisation file (it has {sorted(normalize)!r}); add them")
    curves, finals = {}, {}
    for algo in algos:
        per_task = {t: [r for r in runs if r[0] == algo and r[1] == t] for t in tasks}
        absent = [t for t, rs in per_task.items() if not rs]
        if absent:
            raise ValueError(f"collect_scores(): algorithm {algo!r} has no runs on tasks "
                             f"{absent!r} (tasks seen: {tasks!r}); every algorithm needs "
                             f"every task (use --select/--exclude)")
        n = min(len(rs) for rs in per_task.values())
        dropped = sum(len(rs) - n for rs in per_task.values())
        if dropped:
            warnings.warn(f"collect_scores(): algorithm {algo!r} has "
                          f"{ {t: len(rs) for t, rs in per_task.items()} } runs per task; "
                          f"kept the first {n} of each ({dropped} runs left out)",
                          RuntimeWarning, stacklevel=2)
        arr = np.empty((n, len(tasks), len(x)))
        for j, t in enumerate(tasks):
            for i, (_, _, rx, ry, _) in enumerate(per_task[t][:n]):
                arr[i, j] = np.interp(x, rx, ry)
            if normalize is not None:
                mn, mx = normalize[t]
                arr[:, j] = (arr[:, j] - mn) / (mx - mn)
        curves[algo] = arr
        finals[algo] = arr[:, :, -1].copy()
    return x, tasks, curves, finals


def _style(i):
    return dict(color=PALETTE[i % len(PALETTE)],
                linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)])


def _score_label(value, normalized):
    return f"normalised {value}" if normalized else value


def plot_sample_efficiency(ax, x, curve_intervals, metric="iqm", xaxis=DEFAULT_XAXIS,
                           ylabel=DEFAULT_VALUE, ci=0.95):
    """Draw one line per algorithm (the metric at each x) with its confidence band on ``ax``.

    Args:
        ax: matplotlib Axes.
        x: grid (points,).
        curve_intervals: algorithm -> :class:`~spinfast.metrics.Interval` of arrays.
        metric: metric name, for the y label.
        xaxis: x label.
        ylabel: what was aggregated, for the y label.
        ci: confidence level, for the legend title.
    """
    for i, (name, iv) in enumerate(curve_intervals.items()):
        st = _style(i)
        ax.plot(x, iv.point, label=name, linewidth=2, **st)
        ax.fill_between(x, iv.lower, iv.upper, color=st["color"], alpha=0.2, linewidth=0)
    ax.set_xlabel(xaxis)
    ax.set_ylabel(f"{METRIC_LABELS[metric]} {ylabel}")
    ax.legend(title=f"{ci:.0%} CI (bootstrap)", loc="best", frameon=False)
    if np.nanmax(np.abs(x)) > 5e3:
        ax.ticklabel_format(style="sci", axis="x", scilimits=(0, 0))


def plot_interval_estimates(fig, intervals, ci=0.95, xlabel=None):
    """Draw one row per metric, one horizontal interval bar per algorithm, on ``fig``.

    Args:
        fig: matplotlib Figure (empty).
        intervals: metric -> algorithm -> :class:`~spinfast.metrics.Interval` of floats.
        ci: confidence level, for the title.
        xlabel: label under the last row (what the scores are).

    Returns:
        list of the Axes, one per metric.
    """
    metrics = list(intervals)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        names = list(intervals[metric])
        for i, name in enumerate(names):
            iv = intervals[metric][name]
            y = len(names) - 1 - i
            color = PALETTE[i % len(PALETTE)]
            ax.barh(y, iv.upper - iv.lower, left=iv.lower, height=0.6, color=color,
                    alpha=0.75)
            ax.vlines(iv.point, y - 0.3, y + 0.3, color="black", linewidth=1.5)
        ax.set_yticks(range(len(names)), names[::-1])
        ax.set_ylim(-0.6, len(names) - 0.4)
        lo = min(min(iv.lower, iv.point) for iv in intervals[metric].values())
        hi = max(max(iv.upper, iv.point) for iv in intervals[metric].values())
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
        ax.set_xlim(lo - pad, hi + pad)  # bars are sticky at their left end; pad by hand
        ax.set_title(METRIC_LABELS.get(metric, metric), loc="left", fontweight="bold")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel(xlabel or "score")
    fig.suptitle(f"Final scores: point estimate (black) and {ci:.0%} stratified bootstrap CI",
                 fontsize=10)
    return list(axes)


def plot_performance_profile(ax, taus, profiles, xlabel=DEFAULT_VALUE, kind="runs"):
    """Draw each algorithm's performance profile with its confidence band on ``ax``.

    Args:
        ax: matplotlib Axes.
        taus: thresholds (x axis).
        profiles: algorithm -> :class:`~spinfast.metrics.Interval` over ``taus``.
        xlabel: what the scores are.
        kind: ``'runs'`` (fraction of runs) or ``'tasks'``, for the y label.
    """
    for i, (name, iv) in enumerate(profiles.items()):
        st = _style(i)
        ax.plot(taus, iv.point, label=name, linewidth=2, **st)
        ax.fill_between(taus, iv.lower, iv.upper, color=st["color"], alpha=0.2, linewidth=0)
    ax.set_xlabel(f"{xlabel} threshold \N{GREEK SMALL LETTER TAU}")
    what = "runs" if kind == "runs" else "tasks (mean over runs)"
    ax.set_ylabel(f"Fraction of {what} with score > \N{GREEK SMALL LETTER TAU}")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best", frameon=False)


def format_summary(result, ci=0.95):
    """Return a text table of the interval estimates and probabilities of improvement."""
    names = list(result.finals)
    width = max(len("algorithm"), *(len(n) for n in names))
    tasks = ", ".join(result.tasks)
    label = _score_label(result.value, result.normalized)
    lines = [f"Final {label} at {result.xaxis} = {result.x[-1]:g} over "
             f"{len(result.tasks)} task(s) ({tasks}); runs: "
             + ", ".join(f"{n} {result.finals[n].shape[0]}" for n in names),
             f"{ci:.0%} stratified bootstrap intervals, point [lower, upper]:",
             (f"  {'algorithm':<{width}}  " + "  ".join(
                 f"{METRIC_LABELS[k]:<26}" for k in result.intervals)).rstrip()]
    for n in names:
        cells = []
        for k in result.intervals:
            iv = result.intervals[k][n]
            cells.append(f"{iv.point:<8.4g} [{iv.lower:.4g}, {iv.upper:.4g}]".ljust(26))
        lines.append(f"  {n:<{width}}  " + "  ".join(cells).rstrip())
    for (a, b), iv in result.improvement.items():
        lines.append(f"  P({a} > {b}) = {iv.point:.3f} [{iv.lower:.3f}, {iv.upper:.3f}]")
    return "\n".join(lines)


def aggregate_save_paths(save):
    """File names of the three figures for ``--save FILE``: FILE, FILE_intervals, FILE_profile.

    ``out.png`` gives ``out.png`` (sample-efficiency curves), ``out_intervals.png`` (interval
    estimates) and ``out_profile.png`` (performance profile).
    """
    stem, ext = osp.splitext(os.fspath(save))
    return {name: f"{stem}{suffix}{ext}" for name, suffix in FIGURE_SUFFIXES.items()}


def make_aggregate_plots(all_logdirs, legend=None, xaxis=None, value=None, metric="iqm",
                         ci=0.95, tasks_from=None, normalize=None, smooth=1, select=None,
                         exclude=None, reps=50000, curve_reps=5000, profile_reps=2000,
                         points=50, seed=0, save=None, show=None):
    """Plot aggregate performance with stratified bootstrap intervals (Agarwal et al., 2021).

    Runs are grouped into algorithms (by ``legend`` or exp_name) and tasks (by
    ``tasks_from``), arranged with :func:`collect_scores`, and drawn as three figures:

    - ``curves``: sample-efficiency curves, the ``metric`` over runs and tasks at each x,
      with a ``ci`` band (``curve_reps`` replicates);
    - ``intervals``: one row per metric (median, IQM, mean, and the optimality gap when
      scores are normalised), one bar per algorithm: the final scores' ``ci`` interval
      (``reps`` replicates) and point estimate;
    - ``profile``: the run-score distribution (fraction of runs above each threshold) with
      its band (``profile_reps`` replicates).

    Args:
        all_logdirs, legend, select, exclude: as :func:`make_plots`.
        xaxis: x column (default ``TotalEnvInteracts``).
        value: y column (default ``Performance``).
        metric: metric of the curves: ``iqm``, ``median``, ``mean`` or ``optimality_gap``.
        ci: confidence level in (0, 1).
        tasks_from: config.json key naming each run's task (e.g. ``env_name``), or None.
        normalize: JSON file of per-task bounds (:func:`load_normalization`), a dict
            task -> (min, max), or None.
        smooth: moving-average window applied to each run first.
        reps, curve_reps, profile_reps: bootstrap replicates per figure.
        points: size of the common x grid.
        seed: bootstrap seed.
        save: file (.png, .svg, .pdf, ...) for the curves; the other figures go beside it
            (see :func:`aggregate_save_paths`).
        show: show on screen; default only when there is a display and no ``save``. Without
            either, PNGs are written next to the data as ``aggregate_<metric>.png`` (and
            ``_intervals``, ``_profile``).

    Returns:
        :class:`AggregateResult`.

    Raises:
        FileNotFoundError: a logdir matches nothing.
        ValueError: see :func:`collect_scores`, :func:`spinfast.metrics.interval_estimates`;
            a bad file type.
    """
    import matplotlib
    from matplotlib.figure import Figure

    from spinfast import metrics as m

    if metric not in m.METRICS:
        raise ValueError(f"make_aggregate_plots(): unknown metric {metric!r}; use one of "
                         f"{', '.join(m.METRICS)}")
    if not (isinstance(ci, (int, float)) and 0 < ci < 1):
        raise ValueError(f"make_aggregate_plots(): ci must be in (0, 1), got {ci!r}; e.g. "
                         f"0.95")
    xaxis = xaxis or DEFAULT_XAXIS
    value = value or DEFAULT_VALUE
    bounds = normalize
    if normalize is not None and not isinstance(normalize, dict):
        bounds = load_normalization(normalize)
    data = get_all_datasets(all_logdirs, legend, select, exclude)
    if not data:
        raise ValueError(f"make_aggregate_plots(): no runs with data under "
                         f"{list(map(os.fspath, all_logdirs))!r}; check the paths")
    x, tasks, curves, finals = collect_scores(data, xaxis, value, tasks_from, bounds, smooth,
                                              points)
    curve_iv = m.interval_estimates(curves, metric, reps=curve_reps, ci=ci, seed=seed)
    shown = [k for k in INTERVAL_METRICS if k != "optimality_gap" or bounds is not None]
    intervals = {k: m.interval_estimates(finals, k, reps=reps, ci=ci, seed=seed)
                 for k in shown}
    every = np.concatenate([f.ravel() for f in finals.values()])
    span = every.max() - every.min()
    pad = 0.05 * span if span > 0 else 0.5
    taus = np.linspace(every.min() - pad, every.max() + pad, 101)
    profiles = m.performance_profile(finals, taus, reps=profile_reps, ci=ci, seed=seed)
    improvement = m.probability_of_improvement(finals, reps=profile_reps, ci=ci, seed=seed)
    result = AggregateResult(metric, value, xaxis, tasks, x, curves, finals, curve_iv,
                             intervals, taus, profiles, improvement, bounds is not None)
    print(format_summary(result, ci))

    if show is None:
        show = save is None and _has_display()
    plt = None
    if show:
        import matplotlib.pyplot as plt

        if matplotlib.get_backend().lower() in _NONINTERACTIVE:
            show, plt = False, None
    paths = dict.fromkeys(FIGURE_SUFFIXES)
    if save is not None:
        paths = aggregate_save_paths(save)
    elif not show:
        folder = osp.commonpath([osp.dirname(osp.abspath(d.attrs["path"])) for d in data])
        paths = aggregate_save_paths(osp.join(folder, f"aggregate_{metric}.png"))
    supported = Figure().canvas.get_supported_filetypes()
    for p in paths.values():
        fmt = osp.splitext(p)[1].lstrip(".").lower() if p else None
        if p is not None and fmt not in supported:
            raise ValueError(f"make_aggregate_plots(): cannot save {p!r}: unknown file type "
                             f"{fmt!r}; use one of {', '.join(sorted(supported))}")

    label = _score_label(value, bounds is not None)
    ntask = f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"
    with matplotlib.rc_context(_RC):
        new = (lambda size: plt.figure(figsize=size)) if plt is not None else (
            lambda size: Figure(figsize=size))
        fig = new((5.5, 3.6))
        ax = fig.add_subplot()
        plot_sample_efficiency(ax, x, curve_iv, metric, xaxis, label, ci)
        ax.set_title(f"{METRIC_LABELS[metric]} over runs and {ntask}", loc="left")
        fig.tight_layout()
        result.figures["curves"] = fig
        nalg = len(finals)
        fig = new((5.5, 0.9 + len(shown) * (0.45 + 0.3 * nalg)))
        plot_interval_estimates(fig, intervals, ci, f"final {label} (at {xaxis} = {x[-1]:g})")
        fig.tight_layout()
        result.figures["intervals"] = fig
        fig = new((5.5, 3.6))
        ax = fig.add_subplot()
        plot_performance_profile(ax, taus, profiles, f"final {label}")
        ax.set_title(f"Performance profile over {ntask}, {ci:.0%} CI", loc="left")
        fig.tight_layout()
        result.figures["profile"] = fig
        for name, fig in result.figures.items():
            path = paths[name]
            if path is not None:
                os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
                fig.savefig(path)
                print(f"Saved {name} ({METRIC_LABELS[metric]}) to {path}")
        result.paths = paths
        if show and plt is not None:
            plt.show()
    return result


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

EXAMPLES = """\
examples:
  python -m spinfast.run plot data/demo                  # every folder starting with 'demo'
  python -m spinfast.run plot data/demo/ -s 5 --save curves.png
  python -m spinfast.run plot data/ppo data/sac -l PPO SAC -x Epoch -y AverageEpRet LossPi
  python -m spinfast.run plot data/ --select cartpole --exclude old --count --est median
  python -m spinfast.run plot data/ppo data/sac -l PPO SAC --aggregate iqm --ci 0.95
      --tasks-from env_name --normalize bounds.json --save out.png
      # writes out.png (curves), out_intervals.png and out_profile.png
"""


def build_parser(prog="python -m spinfast.run plot"):
    """Return the argument parser of the ``plot`` command."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Plot learning curves from experiment folders (progress.txt + "
        "config.json, spinfast's or Spinning Up's). Without a display and without --save, "
        "writes PNGs next to the data.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", nargs="+", help="folders to search ('dir/'), or prefixes of "
                        "folder names ('data/ppo' means every 'data/ppo*')")
    parser.add_argument("--legend", "-l", nargs="*", help="one legend name per logdir")
    parser.add_argument("--xaxis", "-x", default=DEFAULT_XAXIS,
                        help=f"x column (default {DEFAULT_XAXIS})")
    parser.add_argument("--value", "-y", default=[DEFAULT_VALUE], nargs="*",
                        help="y columns, one figure each (default Performance = "
                        "AverageTestEpRet, else AverageEpRet)")
    parser.add_argument("--count", action="store_true", help="one curve per run")
    parser.add_argument("--smooth", "-s", type=int, default=1,
                        help="moving-average window in points (default 1: none)")
    parser.add_argument("--select", nargs="*", help="keep logdirs containing all of these")
    parser.add_argument("--exclude", nargs="*", help="drop logdirs containing any of these")
    parser.add_argument("--est", default="mean", choices=ESTIMATORS,
                        help="estimator across runs (default mean)")
    parser.add_argument("--save", default=None, metavar="FILE",
                        help="write the figure to FILE (.png, .svg, .pdf...) instead of "
                        "showing it; several -y values give FILE_<value>.ext; with "
                        "--aggregate also FILE_intervals.ext and FILE_profile.ext")
    agg = parser.add_argument_group(
        "aggregate metrics with confidence intervals (Agarwal et al., NeurIPS 2021)",
        "With --aggregate, runs are compared on a common x grid and the metric over runs\n"
        "and tasks is drawn with a stratified bootstrap confidence band; an interval-\n"
        "estimate figure (median, IQM, mean, and optimality gap when normalised, of the\n"
        "final scores) and a performance profile are drawn beside it.")
    agg.add_argument("--aggregate", metavar="METRIC", choices=AGGREGATE_METRICS,
                     help=f"metric of the curves: {', '.join(AGGREGATE_METRICS)}")
    agg.add_argument("--ci", type=float, default=0.95,
                     help="confidence level of the intervals (default 0.95)")
    agg.add_argument("--tasks-from", dest="tasks_from", metavar="KEY",
                     help="config.json key naming each run's task, e.g. env_name (default: "
                     "one task)")
    agg.add_argument("--normalize", metavar="FILE.json",
                     help='per-task score bounds {"task": {"min": a, "max": b}}; scores '
                     "become (score - min) / (max - min)")
    agg.add_argument("--reps", type=int, default=50000,
                     help="bootstrap replicates of the interval estimates (default 50000; "
                     "curves use 5000, the profile 2000)")
    agg.add_argument("--points", type=int, default=50,
                     help="points of the common x grid of the curves (default 50)")
    agg.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return parser


def main(argv=None, prog="python -m spinfast.run plot"):
    """Run the ``plot`` command with ``argv`` (default ``sys.argv[1:]``); return 0.

    Raises:
        SystemExit: bad arguments (status 2).
        FileNotFoundError, ValueError: see :func:`make_plots`.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth must be >= 1, got {args.smooth}")
    if args.aggregate is not None:
        if len(args.value) != 1:
            parser.error(f"--aggregate plots one y value, got {args.value!r}; run once per "
                         f"value")
        if args.count:
            parser.error("--count draws one curve per run; it does not combine with "
                         "--aggregate")
        if not 0 < args.ci < 1:
            parser.error(f"--ci must be in (0, 1), got {args.ci}")
        if args.reps < 1 or args.points < 1:
            parser.error(f"--reps and --points must be >= 1, got {args.reps}, {args.points}")
        make_aggregate_plots(args.logdir, args.legend, args.xaxis, args.value[0],
                             args.aggregate, args.ci, args.tasks_from, args.normalize,
                             args.smooth, args.select, args.exclude, reps=args.reps,
                             points=args.points, seed=args.seed, save=args.save)
        return 0
    make_plots(args.logdir, args.legend, args.xaxis, args.value, args.count,
               smooth=args.smooth, select=args.select, exclude=args.exclude,
               estimator=args.est, save=args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
