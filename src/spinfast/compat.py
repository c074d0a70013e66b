"""Make ``spinup.utils.*`` imports resolve to spinfast, so Spinning Up code runs unchanged.

After :func:`install`, ``import spinup.utils.logx`` (or ``from spinup.utils.mpi_tools import
mpi_avg``) gives the very module object ``spinfast.logx`` (``spinfast.mpi_tools``); the other
aliases are listed in :data:`ALIASES`. Nothing is imported by :func:`install` itself: each
spinfast module is imported when its alias is first imported, so ``spinup.utils.mpi_pytorch``
loads PyTorch only when a program imports it.

``spinup`` and ``spinup.utils`` become light placeholder packages. If the real Spinning Up is
installed too, its folders stay on their search path, so e.g. ``spinup.algos.pytorch.ppo``
can still be imported (and then uses spinfast's utilities) without running the real
``spinup/__init__.py``, which imports every algorithm and TensorFlow.

Experiments launched by :mod:`spinfast.run_utils` while the aliases are installed install
them in their own processes too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["install", "uninstall", "is_installed", "ALIASES"]

#: Spinning Up module name -> spinfast module name.
ALIASES = {
    "spinup.user_config": "spinfast.user_config",
    "spinup.utils.logx": "spinfast.logx",
    "spinup.utils.mpi_tools": "spinfast.mpi_tools",
    "spinup.utils.mpi_tf": "spinfast.mpi_tf",
    "spinup.utils.mpi_pytorch": "spinfast.mpi_pytorch",
    "spinup.utils.run_utils": "spinfast.run_utils",
    "spinup.utils.serialization_utils": "spinfast.serialization_utils",
    "spinup.utils.plot": "spinfast.plot",
    "spinup.utils.test_policy": "spinfast.test_policy",
}
_PACKAGES = ("spinup", "spinup.utils")


def _real_package_path(name):
    """Folders of a real installed package ``name`` (``spinup`` or ``spinup.utils``), if any."""
    parts = name.split(".")
    found = []
    for entry in sys.path:
        folder = os.path.join(entry or os.curdir, *parts)
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            found.append(os.path.abspath(folder))
    return found


class _AliasLoader(importlib.abc.Loader):
    """Load an alias by importing the target and putting it in ``sys.modules``."""

    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return None  # a plain placeholder module; replaced in exec_module

    def exec_module(self, module):
        target = importlib.import_module(self.target)
        # The import system returns whatever sys.modules holds under the name after this.
        sys.modules[module.__name__] = target


class _PackageLoader(importlib.abc.Loader):
    """Create the light ``spinup`` / ``spinup.utils`` placeholder packages."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = ("Placeholder package made by spinfast.compat.install(); its "
                          "modules resolve to spinfast.")


class _SpinupFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder answering for the names in :data:`ALIASES` and their packages."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]))
        if fullname in _PACKAGES:
            spec = importlib.machinery.ModuleSpec(fullname, _PackageLoader(), is_package=True)
            spec.submodule_search_locations = _real_package_path(fullname)
            return spec
        return None


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
    for name in (*_PACKAGES, *ALIASES):
        mod = sys.modules.get(name)
        if mod is not None and not isinstance(getattr(mod, "__loader__", None),
                                              (_AliasLoader, _PackageLoader)) \
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
    for name in list(sys.modules):
        if name == "spinup" or name.startswith("spinup."):
            del sys.modules[name]
