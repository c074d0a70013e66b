"""What every figure kind shares: where its figures go, and the look of our own figures.

:class:`Output` decides once per command whether figures are shown in a pyplot window,
written to files, or both, and does it: every figure kind (Spinning Up's learning curves,
the aggregate figures, any new one) makes its figures with :meth:`Output.figure`, writes them
with :meth:`Output.save` and ends with :meth:`Output.show`.
"""

from __future__ import annotations

import os
import os.path as osp
import sys

__all__ = ["Output", "has_display", "style", "PALETTE", "LINESTYLES", "RC"]

# matplotlib backends that cannot open a window.
_NONINTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}

# Okabe & Ito's palette (distinct under the common colour-vision deficiencies), black last;
# line styles cycle too, so curves stay apart in grey print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
LINESTYLES = ("-", "--", "-.", ":")
# matplotlib rc of our own figures (the aggregate ones); Spinning Up's curves use seaborn's.
RC = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
      "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
      "savefig.dpi": 200, "savefig.bbox": "tight"}


def style(i):
    """Return the colour and line style of the ``i``-th line (``ax.plot(..., **style(i))``)."""
    return dict(color=PALETTE[i % len(PALETTE)],
                linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)])


def has_display():
    """Return True if figures can be shown on a screen."""
    backend = os.environ.get("MPLBACKEND", "").lower()
    if backend in _NONINTERACTIVE or backend.startswith("module://"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Output:
    """Where one command's figures go: a pyplot window, files, or both.

    Args:
        show: show the figures on screen; None: only when there is a display and no
            ``save``. A backend that cannot open a window turns showing off.
        save: the file the user asked for, or None.

    Attributes:
        shown: whether the figures are shown (made through pyplot).
        saves: whether files are written: when ``save`` is given, or when nothing is shown
            (then the command writes next to the data).
    """

    def __init__(self, show, save):
        import matplotlib

        if show is None:
            show = save is None and has_display()
        self._plt = None
        if show:
            import matplotlib.pyplot as plt

            if matplotlib.get_backend().lower() not in _NONINTERACTIVE:
                self._plt = plt
        self.shown = self._plt is not None
        self.saves = save is not None or not self.shown

    @staticmethod
    def check_paths(fn, paths):
        """Raise ValueError (message from ``fn``) if a path's extension is not a saveable type.

        ``paths`` may hold None (a figure not saved).
        """
        from matplotlib.figure import Figure

        supported = Figure().canvas.get_supported_filetypes()
        for p in paths:
            if p is None:
                continue
            fmt = osp.splitext(p)[1].lstrip(".").lower()
            if fmt not in supported:
                raise ValueError(f"{fn}(): cannot save {p!r}: unknown file type {fmt!r}; use "
                                 f"one of {', '.join(sorted(supported))}")

    def figure(self, figsize=None):
        """Return a new empty Figure: a pyplot one when shown, else one of its own."""
        if self._plt is not None:
            return self._plt.figure(figsize=figsize)
        from matplotlib.figure import Figure

        return Figure(figsize=figsize)

    @staticmethod
    def save(fig, path, what):
        """Write ``fig`` to ``path`` (its folder made if needed) and say so: ``Saved <what>``."""
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        fig.savefig(path)
        print(f"Saved {what} to {path}")

    def show(self):
        """Show the pyplot figures (blocks until closed), if the figures are shown."""
        if self._plt is not None:
            self._plt.show()
