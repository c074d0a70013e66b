"""Make ``spinup.*`` imports resolve to spinfast, so Spinning Up's code runs unchanged.

After :func:`install`, ``import spinup.utils.logx`` (or ``from spinup.utils.mpi_tools import
mpi_avg``) gives the very module object ``spinfast.logx`` (``spinfast.mpi_tools``); the other
aliases are listed in :data:`ALIASES`. Nothing is imported by :func:`install` itself: each
spinfast module is imported when its alias is first imported, so ``spinup.utils.mpi_pytorch``
loads PyTorch only when a program imports it.

``spinup`` and ``spinup.utils`` become light placeholder packages. If the real Spinning Up is
installed too, its folders stay on their search path, so e.g. ``spinup.algos.pytorch.ppo``
can still be imported (and then uses spinfast's utilities) without running the real
``spinup/__init__.py``, which imports every algorithm and TensorFlow.

Spinning Up's own names and programs work too (see the project README):

- ``from spinup import ppo_pytorch`` (every name of Spinning Up's ``spinup/__init__.py``)
  imports that one algorithm when first asked for, without running ``spinup/__init__.py``.
- ``import gym`` gives gym's old API over gymnasium (:mod:`spinfast.gym_compat`) when no real
  ``gym`` package is importable.
- Modules under ``spinup.algos.tf1`` and ``spinup.exercises.tf1`` get ``tf.compat.v1`` (with
  TF2 behaviour disabled) when they ``import tensorflow as tf``, with a ``tf.layers.dense``
  of compat's own, so Spinning Up's TF1 algorithms run on TensorFlow 2 (no ``tf-keras``
  needed); their ``import numpy`` gets arrays from ``np.zeros`` that take one-element values
  in scalar slots, as their buffers need on NumPy 2.4+.
- Spinning Up's ``spinup/utils/test_policy.py`` and ``spinup/utils/plot.py`` started as
  scripts (``python -m spinup.run test_policy|plot ...``) get, through :func:`startup`, the
  same TF1 view of TensorFlow (and PyTorch's whole-module loads), and a ``seaborn.tsplot``
  drawn with today's ``seaborn.lineplot``. No other ``__main__`` is changed.
- :func:`enable` / :func:`disable` (``spinfast compat enable|disable``) add or remove a
  ``.pth`` hook that calls :func:`startup` whenever Python starts in the environment.

Experiments launched by :mod:`spinfast.run_utils` while the aliases are installed install
them in their own processes too.

The layers live in private modules: ``_aliases`` (``spinup.*``), ``_gym`` (``gym``),
``_tf1`` (TensorFlow 1 and NumPy for TF1 modules), ``_seaborn`` (``tsplot``) and ``_scripts``
(what Spinning Up's scripts get when they run as ``__main__``).
"""

from __future__ import annotations

import os
import sys

from . import _aliases, _gym, _scripts, _tf1
from ._aliases import ALIASES, SPINUP_NAMES
from ._aliases import real_package_path as _real_package_path  # noqa: F401 (spinfast.run)

__all__ = ["install", "uninstall", "is_installed", "ALIASES", "SPINUP_NAMES",
           "PTH_NAME", "enable", "disable", "pth_path", "startup"]


class _SpinupFinder:
    """Meta-path finder answering for ``gym``, Spinning Up's TF1 modules and the aliases."""

    def find_spec(self, fullname, path=None, target=None):
        return (_gym.find_spec(fullname) or _tf1.find_spec(fullname, path)
                or _aliases.find_spec(fullname))


_finder: _SpinupFinder | None = None


def is_installed() -> bool:
    """Return True if :func:`install` is in effect."""
    return _finder is not None and _finder in sys.meta_path


def install() -> None:
    """Make ``spinup`` / ``spinup.utils.*`` imports resolve to spinfast's modules.

    Idempotent. Imports nothing until an aliased module is imported.

    Raises:
        ImportError: a real ``spinup`` module was already imported in this process (its
            modules would clash); call :func:`install` before importing Spinning Up.
    """
    global _finder
    if is_installed():
        return
    ours = (_aliases.AliasLoader, _aliases.PackageLoader, _gym.GymLoader)
    for name in (*_aliases.PACKAGES, *ALIASES):
        mod = sys.modules.get(name)
        if mod is not None and not isinstance(getattr(mod, "__loader__", None), ours) \
                and getattr(mod, "__name__", name) == name:
            raise ImportError(f"install(): the real module {name!r} is already imported "
                              f"(from {getattr(mod, '__file__', None)!r}); call "
                              f"spinfast.compat.install() before importing spinup")
    _finder = _SpinupFinder()
    sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and the ``spinup`` entries of ``sys.modules``.

    The spinfast modules themselves stay imported.
    """
    global _finder
    if _finder is not None:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
    _finder = None
    ours_gym = isinstance(getattr(sys.modules.get("gym"), "__loader__", None), _gym.GymLoader)
    for name in list(sys.modules):
        if name == "spinup" or name.startswith("spinup."):
            del sys.modules[name]
        elif ours_gym and (name == "gym" or name.startswith("gym.")):
            del sys.modules[name]  # the adapter and the gymnasium modules aliased under gym.


# ---------------------------------------------------------------------------------------------
# spinfast compat enable / disable: a .pth hook in the current environment
# ---------------------------------------------------------------------------------------------

#: File name of the startup hook written by :func:`enable`.
PTH_NAME = "spinfast_compat.pth"

_PTH_LINE = ("import sys; exec('try:\\n import spinfast.compat\\n spinfast.compat.startup()\\n"
             "except ImportError:\\n pass')\n")


def startup() -> None:
    """Run by the hook of :func:`enable` when Python starts: :func:`install`, and more.

    When the program Python starts is Spinning Up's ``spinup/utils/test_policy.py`` or
    ``spinup/utils/plot.py`` (as ``python -m spinup.run test_policy|plot`` starts them), that
    script's ``__main__`` gets what it needs on today's libraries (see
    :mod:`spinfast.compat`). Imports neither TensorFlow, PyTorch, gym nor seaborn.
    """
    install()
    script = os.path.abspath(sys.argv[0]) if getattr(sys, "argv", None) else ""
    _scripts.prepare_main(script)


def pth_path() -> str:
    """Return where :func:`enable` writes its hook: the environment's site-packages."""
    import sysconfig

    return os.path.join(sysconfig.get_paths()["purelib"], PTH_NAME)


def enable() -> str:
    """Install compat at every start of Python in the current environment; return the hook.

    Writes :data:`PTH_NAME` into the environment's site-packages (:func:`pth_path`), a
    ``.pth`` file whose one line calls :func:`startup` at start-up, so Spinning Up's own
    programs (``python -m spinup.run ...``) run on spinfast unchanged. Undo with
    :func:`disable`.

    Raises:
        PermissionError: site-packages is not writable (use a virtual environment).
    """
    path = pth_path()
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(_PTH_LINE)
    os.replace(tmp, path)
    return path


def disable() -> str | None:
    """Remove the hook written by :func:`enable`; return its path, or None if there was none."""
    path = pth_path()
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    return path
