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

With ``--timings [KEY ...]`` (:func:`make_timing_plots`) it draws where each epoch's time
goes: the phase timers of ``EpochLogger.timer`` as stacked bars per epoch, one panel per run,
with the max over ranks as a tick on each segment.

Command line: ``python -m spinfast.run plot LOGDIR... [options]`` (see :func:`main`).
Functions return the data they plotted, so a program (or a test) can check it.

This module holds Spinning Up's plotter (:func:`plot_data`, :func:`make_plots`) and the command
line; what they use lives in :mod:`spinfast._plot`, one module per concern: run file formats
(``formats``), finding and grouping runs (``runs``), saving and showing figures (``figure``),
score arrays (``scores``), the aggregate figures (``aggregate``) and the timings figure
(``timings``). Everything public is re-exported here.

pandas, seaborn and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from spinfast._plot.aggregate import (
    AGGREGATE_METRICS,
    FIGURE_SUFFIXES,  # noqa: F401  (importable here as before; not in __all__)
    INTERVAL_METRICS,  # noqa: F401
    METRIC_LABELS,  # noqa: F401
    AggregateResult,
    aggregate_save_paths,
    format_summary,
    make_aggregate_plots,
    plot_interval_estimates,
    plot_performance_profile,
    plot_sample_efficiency,
)
from spinfast._plot.figure import LINESTYLES, PALETTE, Output  # noqa: F401
from spinfast._plot.formats import PROGRESS_FILES  # noqa: F401
from spinfast._plot.runs import (
    DEFAULT_VALUE,
    DEFAULT_XAXIS,
    DIV_LINE_WIDTH,  # noqa: F401
    PERFORMANCE_COLUMNS,  # noqa: F401
    check_column,
    get_all_datasets,
    get_datasets,
    moving_average,
    runs_folder,
)
from spinfast._plot.scores import collect_scores, load_normalization
from spinfast._plot.timings import TimingResult, make_timing_plots, timer_keys
from spinfast.metrics import (
    Interval,
    interval_estimates,
    performance_profile,
    probability_of_improvement,
)

__all__ = [
    # Spinning Up's plotter
    "get_datasets", "get_all_datasets", "plot_data", "make_plots", "moving_average",
    "PlotResult", "DEFAULT_XAXIS", "DEFAULT_VALUE",
    # aggregate figures (spinfast._plot.aggregate, spinfast._plot.scores)
    "make_aggregate_plots", "AggregateResult", "collect_scores", "load_normalization",
    "plot_sample_efficiency", "plot_interval_estimates", "plot_performance_profile",
    "aggregate_save_paths", "format_summary",
    # the timings figure (spinfast._plot.timings)
    "make_timing_plots", "TimingResult", "timer_keys",
    # spinfast.metrics, re-exported
    "interval_estimates", "performance_profile", "probability_of_improvement", "Interval",
    # the command line
    "build_parser", "main",
]

ESTIMATORS = ("mean", "median", "max", "min")


# ---------------------------------------------------------------------------------------------
# Spinning Up's plotter: one figure per y value, a line per group, a one-sd band
# ---------------------------------------------------------------------------------------------

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
        check_column(datum, xaxis, "x axis", "-x/--xaxis")
        check_column(datum, value, "y value", "-y/--value")
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
    import seaborn as sns

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

    out = Output(show, save)
    paths = [None] * len(values)
    if out.saves:
        paths = _save_paths(save, values, runs_folder(data))
        out.check_paths("make_plots", paths)

    results = []
    with sns.axes_style("darkgrid"), sns.plotting_context("notebook", font_scale=font_scale):
        for value, path in zip(values, paths, strict=True):
            # pyplot's default size in a window (as Spinning Up's), 8 x 6 in a file alone
            fig = out.figure(None if out.shown else (8, 6))
            ax = fig.add_subplot()
            frame = plot_data(data, xaxis=xaxis, value=value, condition=condition,
                              smooth=smooth, ax=ax, estimator=est)
            fig.tight_layout(pad=0.5)
            if path is not None:
                out.save(fig, path, f"plot of {value} vs {xaxis}")
            results.append(PlotResult(value, xaxis, frame, path, fig))
        out.show()
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
  python -m spinfast.run plot data/ppo data/sac -l PPO SAC --aggregate iqm --ci 0.95
      --tasks-from env_name --normalize bounds.json --save out.png
      # writes out.png (curves), out_intervals.png and out_profile.png
  python -m spinfast.run plot data/ppo --timings --save timings.svg   # every timer
  python -m spinfast.run plot data/ppo --timings DataTime UpdateTime   # these, stacked
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
    for kind in _FIGURE_KINDS:
        kind.add_arguments(parser)
    return parser


def _add_aggregate_arguments(parser):
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


def _run_aggregate(parser, args):
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


class _TimingKeys(argparse.Action):
    """``--timings [KEY ...]``: sets ``timings`` (the kind is chosen) and ``timing_keys``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        namespace.timing_keys = list(values)


def _add_timings_arguments(parser):
    group = parser.add_argument_group(
        "phase timers (EpochLogger.timer)",
        "With --timings, each run is one panel of stacked bars, one bar per epoch (x: the\n"
        "Epoch column, else the row), one segment per timer KEY of height Average<KEY>, with\n"
        "Max<KEY> (the slowest call and rank) as a tick above the segment's bottom. Put\n"
        "--timings after the logdirs (its KEYs would take them).")
    group.add_argument("--timings", nargs="*", metavar="KEY", action=_TimingKeys,
                       default=False,
                       help="timer keys to stack (e.g. DataTime UpdateTime); none: the keys the "
                       "logger timed (recorded in spinfast_run.json), or in runs without "
                       "that record every KEY ending in Time with Average<KEY> and Max<KEY> "
                       "columns")


def _run_timings(parser, args):
    unused = [flag for flag, used in (
        ("-x/--xaxis", args.xaxis != DEFAULT_XAXIS), ("-y/--value", args.value != [DEFAULT_VALUE]),
        ("--count", args.count), ("-s/--smooth", args.smooth != 1), ("--est", args.est != "mean"))
        if used]
    if unused:
        parser.error(f"--timings does not use {', '.join(unused)} (x is the Epoch column; "
                     f"bars are neither smoothed nor averaged over runs); leave "
                     f"{'them' if len(unused) > 1 else 'it'} out")
    make_timing_plots(args.logdir, args.timing_keys, args.legend, args.select, args.exclude,
                      save=args.save)


class _FigureKind(NamedTuple):
    flag: str  # the option that asks for this kind instead of Spinning Up's curves
    dest: str  # its argparse dest; the kind is chosen when that value is truthy
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.ArgumentParser, argparse.Namespace], None]


# Figure kinds beside Spinning Up's learning curves (the default). A new kind is its module in
# spinfast._plot, a function adding its argument group, a function checking the arguments and
# drawing, and one row here.
_FIGURE_KINDS = (
    _FigureKind("--aggregate", "aggregate", _add_aggregate_arguments, _run_aggregate),
    _FigureKind("--timings", "timings", _add_timings_arguments, _run_timings),
)


def main(argv=None, prog="python -m spinfast.run plot"):
    """Run the ``plot`` command with ``argv`` (default ``sys.argv[1:]``); return 0.

    Draws Spinning Up's learning curves (:func:`make_plots`), or the figure kind a flag asks
    for (``--aggregate``: :func:`make_aggregate_plots`; ``--timings``:
    :func:`make_timing_plots`).

    Raises:
        SystemExit: bad arguments (status 2).
        FileNotFoundError, ValueError: see :func:`make_plots`.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth must be >= 1, got {args.smooth}")
    chosen = [kind for kind in _FIGURE_KINDS if getattr(args, kind.dest)]
    if len(chosen) > 1:
        parser.error(f"{' and '.join(k.flag for k in chosen)} draw different figures; "
                     f"give one of them")
    if chosen:
        chosen[0].run(parser, args)
        return 0
    make_plots(args.logdir, args.legend, args.xaxis, args.value, args.count,
               smooth=args.smooth, select=args.select, exclude=args.exclude,
               estimator=args.est, save=args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
