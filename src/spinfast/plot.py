"""Plot learning curves from experiment folders, as ``spinup.utils.plot``, on current libraries.

Reads every ``progress.txt`` (tab-separated, header row) under the given folders, written by
spinfast or by Spinning Up, groups runs by the ``exp_name`` of their ``config.json`` (or by a
legend), smooths, and draws the estimator (mean by default) of each group with a one standard
deviation band, using seaborn's ``lineplot`` (Spinning Up's ``tsplot`` is gone from seaborn).

Command line: ``python -m spinfast.run plot LOGDIR... [options]`` (see :func:`main`).
Functions return the data they plotted, so a program (or a test) can check it.

pandas, seaborn and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["moving_average", "get_datasets", "get_all_datasets", "plot_data", "make_plots",
           "PlotResult", "build_parser", "main", "DEFAULT_XAXIS", "DEFAULT_VALUE"]

DIV_LINE_WIDTH = 50
DEFAULT_XAXIS = "TotalEnvInteracts"
DEFAULT_VALUE = "Performance"
ESTIMATORS = ("mean", "median", "max", "min")
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

def _read_exp_name(root):
    path = osp.join(root, "config.json")
    if not osp.exists(path):
        return None
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        warnings.warn(f"get_datasets(): could not read {path} ({exc}); the run is grouped "
                      f"without its exp_name", RuntimeWarning, stacklevel=3)
        return None
    name = config.get("exp_name") if isinstance(config, dict) else None
    return str(name) if name is not None else None


def get_datasets(logdir, condition=None, _counters=None):
    """Read every run (a folder with ``progress.txt``) under ``logdir``.

    Each run becomes a DataFrame of its ``progress.txt`` with added columns ``Unit`` (index of
    the run within its group), ``Condition1`` (``condition``, else the run's exp_name from
    ``config.json``, else ``'exp'``), ``Condition2`` (``Condition1-<run index>``) and
    ``Performance`` (a copy of ``AverageTestEpRet`` if present, else of ``AverageEpRet``,
    when either exists). ``df.attrs['path']`` holds the file read. Empty files and files with
    no rows are skipped with a warning.

    Args:
        logdir: folder to search (recursively).
        condition: group name for all runs found, or None.

    Returns:
        list of pandas DataFrames, in sorted folder order.
    """
    import pandas as pd

    counters = _counters if _counters is not None else {"exp_idx": 0, "units": {}}
    datasets = []
    for root, dirs, files in os.walk(logdir):
        dirs.sort()
        if "progress.txt" not in files:
            continue
        path = osp.join(root, "progress.txt")
        condition1 = condition or _read_exp_name(root) or "exp"
        try:
            exp_data = pd.read_csv(path, sep="\t")
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
        perf = next((c for c in ("AverageTestEpRet", "AverageEpRet") if c in exp_data), None)
        if perf is not None:
            exp_data["Performance"] = exp_data[perf]
        exp_data.attrs["path"] = path
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

def _check_column(datum, column, role, flag):
    if column in datum.columns:
        return
    path = datum.attrs.get("path", "<data>")
    have = [c for c in datum.columns if c not in _ADDED or c == "Performance"]
    extra = " (AverageTestEpRet or AverageEpRet)" if column == "Performance" else ""
    raise ValueError(f"plot_data(): column {column!r}{extra} ({role}) not found in {path}; "
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
# Command line
# ---------------------------------------------------------------------------------------------

EXAMPLES = """\
examples:
  python -m spinfast.run plot data/demo                  # every folder starting with 'demo'
  python -m spinfast.run plot data/demo/ -s 5 --save curves.png
  python -m spinfast.run plot data/ppo data/sac -l PPO SAC -x Epoch -y AverageEpRet LossPi
  python -m spinfast.run plot data/ --select cartpole --exclude old --count --est median
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
                        "showing it; several -y values give FILE_<value>.ext")
    return parser


def main(argv=None, prog="python -m spinfast.run plot"):
    """Run the ``plot`` command with ``argv`` (default ``sys.argv[1:]``); return 0.

    Raises:
        SystemExit: bad arguments (status 2).
        FileNotFoundError, ValueError: see :func:`make_plots`.
    """
    args = build_parser(prog).parse_args(argv)
    if args.smooth < 1:
        build_parser(prog).error(f"--smooth must be >= 1, got {args.smooth}")
    make_plots(args.logdir, args.legend, args.xaxis, args.value, args.count,
               smooth=args.smooth, select=args.select, exclude=args.exclude,
               estimator=args.est, save=args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
