"""``seaborn.tsplot`` for Spinning Up's ``spinup/utils/plot.py``, on today's ``lineplot``.

spinup/utils/plot.py:33 calls ``sns.tsplot(data=data, time=xaxis, value=value, unit="Unit",
condition=condition, ci='sd', estimator=...)``; seaborn removed ``tsplot`` in 0.10. Run as a
script under compat (see :mod:`spinfast.compat._scripts`), that file's ``import seaborn as
sns`` gets :func:`seaborn_view`: the installed seaborn with :func:`tsplot` added when it lacks
one. Seaborn itself is not changed, so no other caller sees ``tsplot``.

:func:`tsplot` draws what Spinning Up's plot.py:35-38 says to draw on seaborn newer than
0.8.1, ``sns.lineplot(data=data, x=xaxis, y=value, hue=condition, ci='sd', **kwargs)``
(today ``errorbar='sd'``): per condition and x, the estimator over the runs (units) and a
band of one standard deviation around it, the same as ``spinfast.run plot`` draws. Like
tsplot, each condition's line is labelled for the legend, the legend is titled with the
condition column, and the x axis spans the data. (seaborn 0.8.1's tsplot took the
standard deviation with ``ddof=0``; lineplot, Spinning Up's replacement and spinfast use the
sample standard deviation, ``ddof=1``.)
"""

from __future__ import annotations

import builtins
import types

_view = None


def tsplot(data=None, time=None, unit=None, condition=None, value=None, err_style="ci_band",
           ci=68, interpolate=True, color=None, estimator=None, n_boot=5000, err_kws=None,
           legend=True, ax=None, **kwargs):
    """Plot the estimator of ``value`` over units against ``time``, one line per condition.

    seaborn 0.8's ``tsplot`` for long-form data, drawn with ``seaborn.lineplot``.

    Args:
        data: long-form DataFrame, one row per unit and time.
        time: x column.
        unit: column naming the sampling unit (a run); the estimator and band are taken over
            the units at each time.
        condition: column grouping units into lines (one legend entry each), or None.
        value: y column.
        err_style: ``'ci_band'`` (a band), ``'ci_bars'`` (error bars) or None.
        ci: ``'sd'`` (one standard deviation), a confidence level in percent (bootstrap), or
            None.
        interpolate: join the points with lines (else markers only).
        color: palette name, list, dict condition -> color, or one color.
        estimator: callable over the units' values at one time (default ``numpy.mean``).
        n_boot: bootstrap resamples for a confidence level.
        err_kws: keyword arguments of the band (``fill_between``) or bars.
        legend: add a legend when there is a condition.
        ax: matplotlib Axes (default: the current one).
        **kwargs: passed to the line's ``Axes.plot``.

    Returns:
        the Axes drawn on.

    Raises:
        TypeError: ``data`` is not a DataFrame.
        ValueError: an ``err_style`` or ``ci`` that tsplot did not have.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import seaborn as sns

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"tsplot() (spinfast.compat): data must be a long-form DataFrame, got "
                        f"{type(data).__name__}; pass data=DataFrame, time=, value=, unit=")
    styles = {"ci_band": "band", "ci_bars": "bars", None: None}
    if err_style not in styles:
        raise ValueError(f"tsplot() (spinfast.compat): err_style {err_style!r} is not drawn; "
                         f"use 'ci_band', 'ci_bars' or None")
    if ci is None or styles[err_style] is None:
        errorbar = None
    elif isinstance(ci, str) and ci == "sd":
        errorbar = "sd"
    elif isinstance(ci, (int, float)) and not isinstance(ci, bool):
        errorbar = ("ci", ci)
    else:
        raise ValueError(f"tsplot() (spinfast.compat): ci must be 'sd', a number or None, got "
                         f"{ci!r}")
    ax = plt.gca() if ax is None else ax
    if condition is None:
        legend = False
        levels = [None]
    else:
        levels = list(pd.unique(data[condition]))
    if color is None:
        n = len(levels)
        colors = sns.color_palette("husl" if len(sns.utils.get_color_cycle()) < n else None,
                                   n_colors=n)
    elif isinstance(color, dict):
        colors = [color[c] for c in levels]
    else:
        try:
            colors = sns.color_palette(color, len(levels))
        except ValueError:
            colors = [color] * len(levels)
    kwargs.setdefault("marker", "" if interpolate else "o")
    kwargs.setdefault("linestyle", kwargs.pop("ls", "-" if interpolate else ""))
    first = len(ax.lines)
    sns.lineplot(data=data, x=time, y=value, estimator=estimator or np.mean,
                 errorbar=errorbar, n_boot=n_boot, err_style=styles[err_style] or "band",
                 err_kws=err_kws, legend=False, ax=ax,
                 **(dict(hue=condition, hue_order=levels, palette=dict(zip(levels, colors)))
                    if condition is not None else dict(color=colors[0])), **kwargs)
    lines = ax.lines[first:]
    if condition is not None and len(lines) == len(levels):
        for line, level in zip(lines, levels):
            line.set_label(str(level))
    xs = pd.to_numeric(data[time], errors="coerce").to_numpy(dtype=np.float64)
    if xs.size and np.isfinite(xs).any() and np.nanmin(xs) < np.nanmax(xs):
        ax.set_xlim(np.nanmin(xs), np.nanmax(xs))
    ax.set_xlabel(time)
    ax.set_ylabel(value)
    if legend:
        ax.legend(loc=0, title=condition)
    return ax


class _SeabornView(types.ModuleType):
    """The installed seaborn, with :func:`tsplot`."""

    def __getattr__(self, name):
        import seaborn

        return getattr(seaborn, name)


def seaborn_view():
    """Return the ``seaborn`` of Spinning Up's plot.py: seaborn itself if it has ``tsplot``,
    else a module that is seaborn plus :func:`tsplot`."""
    global _view
    import seaborn

    if hasattr(seaborn, "tsplot"):
        return seaborn
    if _view is None:
        _view = _SeabornView("seaborn", "seaborn with tsplot for Spinning Up's plot.py "
                             "(spinfast.compat)")
        _view.tsplot = tsplot
    return _view


def plot_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` of Spinning Up's plot.py: ``seaborn`` is :func:`seaborn_view`."""
    if level == 0 and name == "seaborn":
        return seaborn_view()
    return builtins.__import__(name, globals, locals, fromlist, level)


#: The ``__builtins__`` of Spinning Up's plot.py run as a script: :func:`plot_import`.
PLOT_BUILTINS = dict(vars(builtins), __import__=plot_import)
