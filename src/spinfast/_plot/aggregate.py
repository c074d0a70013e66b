"""The aggregate figures (``--aggregate``): what Agarwal et al. (NeurIPS 2021) recommend.

:func:`make_aggregate_plots` reads runs (:mod:`spinfast._plot.runs`), arranges them as score
arrays (:mod:`spinfast._plot.scores`), computes stratified bootstrap intervals
(:mod:`spinfast.metrics`) and draws three figures, each with its own function:
:func:`plot_sample_efficiency` (curves), :func:`plot_interval_estimates` (intervals) and
:func:`plot_performance_profile` (profile); :func:`format_summary` prints the numbers.
"""

from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass, field

import numpy as np

from spinfast._plot.figure import PALETTE, RC, Output, style
from spinfast._plot.runs import DEFAULT_VALUE, DEFAULT_XAXIS, get_all_datasets, runs_folder
from spinfast._plot.scores import collect_scores, load_normalization

__all__ = ["AGGREGATE_METRICS", "METRIC_LABELS", "INTERVAL_METRICS", "FIGURE_SUFFIXES",
           "AggregateResult", "make_aggregate_plots", "plot_sample_efficiency",
           "plot_interval_estimates", "plot_performance_profile", "format_summary",
           "aggregate_save_paths"]

AGGREGATE_METRICS = ("iqm", "median", "mean", "optimality_gap")
METRIC_LABELS = {"iqm": "IQM", "median": "Median", "mean": "Mean",
                 "optimality_gap": "Optimality gap"}
# The paper's order of the interval-estimate rows.
INTERVAL_METRICS = ("median", "iqm", "mean", "optimality_gap")
FIGURE_SUFFIXES = {"curves": "", "intervals": "_intervals", "profile": "_profile"}


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
        st = style(i)
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
        st = style(i)
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

    out = Output(show, save)
    paths = dict.fromkeys(FIGURE_SUFFIXES)
    if out.saves:
        paths = aggregate_save_paths(save if save is not None else osp.join(
            runs_folder(data), f"aggregate_{metric}.png"))
    out.check_paths("make_aggregate_plots", paths.values())

    label = _score_label(value, bounds is not None)
    ntask = f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}"
    with matplotlib.rc_context(RC):
        fig = out.figure((5.5, 3.6))
        ax = fig.add_subplot()
        plot_sample_efficiency(ax, x, curve_iv, metric, xaxis, label, ci)
        ax.set_title(f"{METRIC_LABELS[metric]} over runs and {ntask}", loc="left")
        fig.tight_layout()
        result.figures["curves"] = fig
        nalg = len(finals)
        fig = out.figure((5.5, 0.9 + len(shown) * (0.45 + 0.3 * nalg)))
        plot_interval_estimates(fig, intervals, ci, f"final {label} (at {xaxis} = {x[-1]:g})")
        fig.tight_layout()
        result.figures["intervals"] = fig
        fig = out.figure((5.5, 3.6))
        ax = fig.add_subplot()
        plot_performance_profile(ax, taus, profiles, f"final {label}")
        ax.set_title(f"Performance profile over {ntask}, {ci:.0%} CI", loc="left")
        fig.tight_layout()
        result.figures["profile"] = fig
        for name, fig in result.figures.items():
            path = paths[name]
            if path is not None:
                out.save(fig, path, f"{name} ({METRIC_LABELS[metric]})")
        result.paths = paths
        out.show()
    return result
