"""Runs arranged as score arrays for :mod:`spinfast.metrics`, normalised per task if asked.

:func:`collect_scores` puts every run on a common x grid and groups the curves into
algorithm -> (runs, tasks, points) arrays; a run's task is a key of its ``config.json``
(:func:`task_of`); :func:`load_normalization` reads per-task score bounds.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from spinfast._plot.runs import DEFAULT_VALUE, DEFAULT_XAXIS, check_column, moving_average

__all__ = ["collect_scores", "load_normalization", "task_of"]


def _config_value(config, key):
    """``config[key]``; a key ``a:b`` looks into nested dicts, as grid keys do."""
    node = config
    for part in key.split(":"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


def task_of(datum, tasks_from):
    """Return the task of run ``datum``: its config.json value at key ``tasks_from``.

    ``tasks_from`` None puts every run in one task ``'all'``.

    Raises:
        ValueError: the run has no config.json, or it lacks the key.
    """
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
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or a task whose bounds are not two numbers with max != min.
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_normalization(): no file {path!r}; write the bounds "
                                f'as {{"task": {{"min": 0, "max": 100}}}}') from None
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
        check_column(datum, xaxis, "x axis", "-x/--xaxis", "collect_scores")
        check_column(datum, value, "y value", "-y/--value", "collect_scores")
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
        runs.append((str(datum[condition].iloc[0]), task_of(datum, tasks_from), xy[:, 0], y,
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
