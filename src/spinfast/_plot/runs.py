"""Runs: finding them under logdirs, reading their config.json, grouping them, their columns.

:func:`get_datasets` walks a folder and reads each run it finds with the reader of its format
(:mod:`spinfast._plot.formats`), adding the columns every figure groups and plots by
(``Unit``, ``Condition1``, ``Condition2``, ``Performance``); :func:`get_all_datasets`
resolves Spinning Up's logdir prefixes first. :func:`check_column` and :func:`moving_average`
are what every figure kind does to a run's columns before drawing them.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import warnings

import numpy as np

from spinfast._plot.formats import find_run, read_run

__all__ = ["DEFAULT_XAXIS", "DEFAULT_VALUE", "PERFORMANCE_COLUMNS", "DIV_LINE_WIDTH",
           "moving_average", "check_column", "get_datasets", "get_all_datasets",
           "resolve_logdirs", "runs_folder"]

DIV_LINE_WIDTH = 50
DEFAULT_XAXIS = "TotalEnvInteracts"
DEFAULT_VALUE = "Performance"
# Columns added to every run by get_datasets.
ADDED = ("Unit", "Condition1", "Condition2", "Performance")
# Tried in order for the Performance column; the first present is copied into it.
PERFORMANCE_COLUMNS = ("AverageTestEpRet", "AverageEpRet",  # spinfast, Spinning Up
                       "eval/mean_reward", "rollout/ep_rew_mean",  # stable-baselines3
                       "charts/episodic_return")  # CleanRL


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


def check_column(datum, column, role, flag, fn="plot_data"):
    """Raise ValueError naming the file and its columns if run ``datum`` lacks ``column``.

    ``role`` (e.g. ``x axis``) and ``flag`` (e.g. ``-x/--xaxis``) say in the message what the
    column was for and how to choose another; ``fn`` is the function named in it.
    """
    if column in datum.columns:
        return
    path = datum.attrs.get("path", "<data>")
    have = [c for c in datum.columns if c not in ADDED or c == "Performance"]
    extra = " (AverageTestEpRet or AverageEpRet)" if column == "Performance" else ""
    raise ValueError(f"{fn}(): column {column!r}{extra} ({role}) not found in {path}; "
                     f"its columns are {have!r}; choose one with {flag}")


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


def get_datasets(logdir, condition=None, _counters=None):
    """Read every run under ``logdir``.

    A run is a folder holding ``progress.txt`` (tab-separated, as Spinning Up's and spinfast's
    loggers write it), else ``progress.csv`` (same header and rows, comma-separated), else
    ``progress.jsonl`` (one JSON object per row), else TensorBoard event files
    (``events.out.tfevents.*``, scalars read by :mod:`spinfast.tfevents`: one row per step, a
    ``Step`` column, one column per tag, and ``TotalEnvInteracts`` = ``Step`` unless a tag of
    that name exists). Only one file is read per folder, and an events folder inside a run
    that has a progress file (spinfast's ``tb/``) is not read a second time. A last line with
    no newline is a row still being written (or cut short by a kill) and is left out.

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
        found = find_run(root, files)
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
            exp_data = read_run(path, fmt)
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


def resolve_logdirs(all_logdirs, select, exclude):
    """Expand logdirs as Spinning Up does: ``dir/`` as is, anything else as a name prefix.

    Raises:
        FileNotFoundError: a logdir's folder does not exist, or a prefix matches nothing.
    """
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
    logdirs = resolve_logdirs(all_logdirs, select, exclude)
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


def runs_folder(data):
    """Return the folder common to every run in ``data`` (where figures go by default)."""
    return osp.commonpath([osp.dirname(osp.abspath(d.attrs["path"])) for d in data])
