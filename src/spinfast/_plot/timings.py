"""The timings figure (``--timings``): where each epoch's time goes, and where a rank lags.

Phase timers are logged by ``EpochLogger.timer(KEY)`` and ``log_tabular(KEY,
with_min_and_max=True)``, as the columns ``AverageKEY`` (mean seconds of the phase over its
calls in the epoch and, under MPI, over ranks), ``StdKEY``, ``MaxKEY`` and ``MinKEY``. The
logger records the keys it timed beside the run's outputs (:mod:`spinfast._logger.runmeta`);
without that record (Spinning Up's runs, older runs) a key is a timer by its name.
:func:`make_timing_plots` reads runs (:mod:`spinfast._plot.runs`) and draws one panel per run
(:func:`plot_timings`): one bar per epoch, stacked from the ``Average`` column of each key,
with each key's ``Max`` drawn as a tick at the bottom of its segment plus the maximum, so a
call or a rank slower than the mean shows as a tick above its segment.

Runs are drawn one panel each, not averaged by group: a lagging rank is a property of one
job, and a mean over seeds would hide it.
"""

from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass, field

import numpy as np

from spinfast._logger.runmeta import read_timers
from spinfast._plot.figure import PALETTE, RC, Output
from spinfast._plot.runs import ADDED, check_column, get_all_datasets, runs_folder

__all__ = ["TimingResult", "timer_keys", "plot_timings", "make_timing_plots",
           "TIMINGS_FILE", "TIMER_SUFFIX"]

# In a run without a record of its timers, a column family AverageKEY + MaxKEY is a timer
# when KEY ends in this.
TIMER_SUFFIX = "Time"
# The figure's file name beside the data when nothing is shown and no file is given.
TIMINGS_FILE = "timings.png"
# Bar fill colours: the palette without black (black outlines the max ticks), then hatches.
_COLOURS = PALETTE[:-1]
_HATCHES = ("", "//", "..", "xx")
_BAR_WIDTH = 0.8  # of the spacing between epochs


@dataclass
class TimingResult:
    """What :func:`make_timing_plots` drew.

    Attributes:
        keys: the timer keys, in stacking order (bottom first).
        titles: one title per panel (run), in the order of ``data``.
        data: one DataFrame per run, as plotted: ``x`` (the ``Epoch`` column, else the row
            index) and, for each key the run has, ``Average<KEY>`` and ``Max<KEY>`` (NaN
            where the run lacks a value), float64.
        path: the file written, or None if the figure was only shown.
        figure: the matplotlib Figure (one Axes per run, in order).
    """

    keys: list
    titles: list
    data: list
    path: str | None
    figure: object = field(repr=False, default=None)


def timer_keys(datum):
    """Return the timer keys of run ``datum``.

    A run whose logger recorded its timers (``spinfast_run.json`` beside its data file, see
    :mod:`spinfast._logger.runmeta`) has exactly those keys that it logged as
    ``Average<KEY>``, whatever their names, in the order they were first timed. In a run
    without that record (Spinning Up's, or older spinfast runs) a key is a timer when it ends
    in ``Time`` and the run has both ``Average<KEY>`` and ``Max<KEY>`` columns (what
    ``log_tabular(KEY, with_min_and_max=True)`` writes), so Spinning Up's plain ``Time``
    column is not one; these come in column order.
    """
    columns = set(datum.columns)
    path = datum.attrs.get("path")
    recorded = None if path is None else read_timers(osp.dirname(osp.abspath(path)))
    if recorded is not None:
        return [k for k in recorded if "Average" + k in columns]
    return [c[len("Average"):] for c in datum.columns
            if c.startswith("Average") and c.endswith(TIMER_SUFFIX) and len(c) > len("Average")
            and "Max" + c[len("Average"):] in columns]


def _choose_keys(data, keys):
    """The keys to draw: ``keys`` checked against every run, or every run's timers."""
    if keys:
        keys = list(dict.fromkeys(keys))
        for datum in data:
            for key in keys:
                check_column(datum, "Average" + key, f"average of timer {key!r}",
                             "--timings KEY (plots Average<KEY>, and Max<KEY> if present)",
                             fn="make_timing_plots")
        return keys
    found = list(dict.fromkeys(k for datum in data for k in timer_keys(datum)))
    if not found:
        have = {datum.attrs.get("path", "<data>"):
                [c for c in datum.columns if c not in ADDED] for datum in data}
        raise ValueError(
            f"make_timing_plots(): no timer columns (Average<KEY> of a key the logger timed, "
            f"or, in runs without its record, Average<KEY> and Max<KEY> with KEY ending in "
            f"{TIMER_SUFFIX!r}) in {len(data)} run(s); their columns are {have!r}; log phases "
            f"with `with logger.timer(KEY):` and logger.log_tabular(KEY, "
            f"with_min_and_max=True), or name the keys to plot: --timings KEY [KEY ...] "
            f"(keys=[...] in Python), which plots Average<KEY>")
    return found


def _column(datum, name):
    try:
        return datum[name].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"make_timing_plots(): column {name!r} of "
                         f"{datum.attrs.get('path')} holds non-numeric values; pass timer "
                         f"keys whose columns are numbers") from None


def _timing_frame(datum, keys):
    """The columns one panel draws: x and the Average/Max columns of the keys the run has."""
    import pandas as pd

    if "Epoch" in datum.columns:
        x = _column(datum, "Epoch")
    else:
        x = np.arange(len(datum), dtype=np.float64)
    cols = {"x": x}
    for key in keys:
        for stat in ("Average", "Max"):
            if stat + key in datum.columns:
                cols[stat + key] = _column(datum, stat + key)
    return pd.DataFrame(cols)


def _key_style(i):
    return dict(color=_COLOURS[i % len(_COLOURS)],
                hatch=_HATCHES[(i // len(_COLOURS)) % len(_HATCHES)])


def plot_timings(ax, frame, keys, xlabel="Epoch"):
    """Draw one run's stacked timer bars with their max ticks on ``ax``.

    Each key ``keys[i]`` the frame has is one segment per row, of height ``Average<KEY>``
    (NaN draws as 0), on top of the segments of the keys before it: a ``BarContainer``
    labelled ``KEY``. Its ``Max<KEY>``, where present and not NaN, is a horizontal tick over
    the bar's width at the segment's bottom plus the maximum: a ``LineCollection`` with gid
    ``Max<KEY>``, in the key's colour outlined in black.

    Args:
        ax: matplotlib Axes.
        frame: DataFrame with ``x`` and the ``Average``/``Max`` columns (see
            :class:`TimingResult`).
        keys: all keys of the figure, in stacking order (a key's index fixes its colour).
        xlabel: x label.
    """
    import matplotlib.patheffects as pe
    from matplotlib.ticker import MaxNLocator

    x = frame["x"].to_numpy(dtype=np.float64)
    steps = np.diff(np.unique(x[np.isfinite(x)]))
    width = _BAR_WIDTH * (steps.min() if steps.size else 1.0)
    bottom = np.zeros(len(x))
    outline = [pe.withStroke(linewidth=3.5, foreground="black")]
    for i, key in enumerate(keys):
        if "Average" + key not in frame:
            continue
        st = _key_style(i)
        height = np.nan_to_num(frame["Average" + key].to_numpy(dtype=np.float64), nan=0.0)
        ax.bar(x, height, width, bottom=bottom, label=key, color=st["color"],
               hatch=st["hatch"], edgecolor="white", linewidth=0.5)
        if "Max" + key in frame:
            level = bottom + frame["Max" + key].to_numpy(dtype=np.float64)
            ok = np.isfinite(level)
            ticks = ax.hlines(level[ok], x[ok] - width / 2, x[ok] + width / 2,
                              colors=st["color"], linewidth=1.8, zorder=3)
            ticks.set_gid("Max" + key)
            ticks.set_path_effects(outline)
        bottom = bottom + height
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds (mean per call)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(axis="x", visible=False)


def _legend(ax, keys):
    """One entry per key (its bar colour) and one for the max ticks, right of ``ax``."""
    import matplotlib.patheffects as pe
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=_key_style(i)["color"], hatch=_key_style(i)["hatch"],
                     edgecolor="white", label=key) for i, key in enumerate(keys)]
    handles.append(Line2D([], [], color="0.85", linewidth=1.8, label="Max<KEY>: slowest\n"
                          "call and rank", path_effects=[pe.withStroke(linewidth=3.5,
                                                                       foreground="black")]))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="timer (Average)")


def make_timing_plots(all_logdirs, keys=None, legend=None, select=None, exclude=None,
                      save=None, show=None):
    """Draw each run's per-epoch phase timers as stacked bars, with the max over ranks.

    One panel per run (runs are not averaged: a lagging rank belongs to one job), one bar per
    epoch (x: the ``Epoch`` column, else the row index), one stacked segment per timer key of
    height ``Average<KEY>``: the mean seconds of one call of that phase in the epoch, over
    calls and MPI ranks. ``Max<KEY>`` (the slowest call on the slowest rank) is a tick at the
    segment's bottom plus the maximum, so a straggler shows as a tick above its segment.

    Args:
        all_logdirs, legend, select, exclude: as :func:`spinfast.plot.make_plots` (the legend
            names each logdir's runs in the panel titles).
        keys: timer keys to stack, bottom first (``UpdateTime`` plots ``AverageUpdateTime``,
            and ``MaxUpdateTime`` if present); every run must have ``Average<KEY>``. None or
            empty: the timer keys of every run (:func:`timer_keys`: those its logger timed
            with ``timer()``, else those ending in ``Time`` with both ``Average<KEY>`` and
            ``Max<KEY>``); a run lacking one draws no segment for it.
        save: file to write (PNG, SVG, PDF, ... by extension).
        show: show on screen; default only when there is a display and no ``save``. Without
            either, a PNG is written next to the data as ``timings.png``.

    Returns:
        :class:`TimingResult`.

    Raises:
        FileNotFoundError: a logdir matches nothing.
        ValueError: no runs; no timer columns (the message lists the columns there are); a
            named key missing from a run; a non-numeric column; a bad file type.
    """
    import matplotlib

    if isinstance(keys, str):
        keys = [keys]
    data = get_all_datasets(all_logdirs, legend, select, exclude)
    if not data:
        raise ValueError(f"make_timing_plots(): no runs with data under "
                         f"{list(map(os.fspath, all_logdirs))!r}; check the paths")
    keys = _choose_keys(data, keys)
    frames = [_timing_frame(datum, keys) for datum in data]
    folder = runs_folder(data)
    titles = []
    for datum in data:
        run_dir = osp.dirname(osp.abspath(datum.attrs["path"]))
        run = osp.relpath(run_dir, folder)
        titles.append(f"{datum['Condition1'].iloc[0]}: "
                      f"{osp.basename(run_dir) if run == '.' else run}")

    out = Output(show, save)
    path = None
    if out.saves:
        path = os.fspath(save) if save is not None else osp.join(folder, TIMINGS_FILE)
        out.check_paths("make_timing_plots", [path])
    with matplotlib.rc_context(RC):
        fig = out.figure((7.5, 0.6 + 2.6 * len(frames)))
        axes = fig.subplots(len(frames), 1, squeeze=False)[:, 0]
        for ax, frame, datum, title in zip(axes, frames, data, titles, strict=True):
            plot_timings(ax, frame, keys, "Epoch" if "Epoch" in datum.columns else "row")
            ax.set_title(title, loc="left")
        _legend(axes[0], keys)
        fig.tight_layout()
        if path is not None:
            out.save(fig, path, f"timings of {', '.join(keys)}")
        out.show()
    return TimingResult(keys, titles, frames, path, fig)
