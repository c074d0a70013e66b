"""What Spinning Up's utility scripts get when Python starts them as ``__main__``.

``python -m spinup.run test_policy|plot ARGS`` starts ``python spinup/utils/<cmd>.py ARGS``
(spinup/run.py:241-243). When compat's hook runs at that start (:func:`spinfast.compat.startup`),
:func:`prepare_main` gives that script's ``__main__`` module an ``__import__`` of its own by
swapping its ``__builtins__``: the script sees the libraries it was written for, and nothing
else in the process, nor any other ``__main__``, is changed.
"""

from __future__ import annotations

import os
import sys

from . import _tf1


def _builtins_of_test_policy():
    # spinup/utils/test_policy.py:74 calls tf.Session() (TF1) on TF1 runs.
    # spinup/utils/test_policy.py:98 torch.load()s a whole pickled module, which PyTorch 2.6+
    # refuses by default (weights_only=True); that script may load it, as Spinning Up expects.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return _tf1.TF1_BUILTINS


def _builtins_of_plot():
    # spinup/utils/plot.py:33 calls sns.tsplot, removed in seaborn 0.10.
    from . import _seaborn

    return _seaborn.PLOT_BUILTINS


#: Spinning Up's scripts (path under the source tree) -> what their ``__main__`` gets.
SCRIPTS = {
    os.path.join("spinup", "utils", "test_policy.py"): _builtins_of_test_policy,
    os.path.join("spinup", "utils", "plot.py"): _builtins_of_plot,
}


def main_builtins(script):
    """Return the ``__builtins__`` for Spinning Up's script at path ``script``, or None when
    ``script`` is not one of :data:`SCRIPTS`."""
    for tail, make in SCRIPTS.items():
        if script.endswith(os.sep + tail) and os.path.isfile(script):
            return make()
    return None


def prepare_main(script):
    """Give ``__main__`` the ``__builtins__`` of :func:`main_builtins` if ``script`` (the
    program Python was started with) is one of Spinning Up's scripts; else do nothing."""
    main = sys.modules.get("__main__")
    chosen = main_builtins(script) if script else None
    if main is not None and chosen is not None:
        main.__builtins__ = chosen
