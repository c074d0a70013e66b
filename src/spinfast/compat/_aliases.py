"""The ``spinup.*`` names: ``spinup.utils.*`` as spinfast's modules, Spinning Up's lazy names.

``spinup`` and ``spinup.utils`` become light placeholder packages whose search path is the real
Spinning Up's folders when it is importable, so ``spinup.algos.*`` import from its files
without running its ``spinup/__init__.py`` (which imports TensorFlow and every algorithm).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys

#: Spinning Up module name -> spinfast module name.
# spinup/algos/pytorch/ppo/ppo.py:7 (and every algorithm) imports spinup.utils.logx,
# spinup/run.py:2 spinup.user_config.
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
PACKAGES = ("spinup", "spinup.utils")

#: The names of Spinning Up's ``spinup/__init__.py`` -> ``(module, attribute)``, resolved on
#: first use by the placeholder ``spinup`` package.
# spinup/run.py:56 (algo = eval('spinup.'+cmd)) and the docs' `from spinup import ppo_pytorch`
# need these names without spinup/__init__.py:3, which imports TensorFlow.
SPINUP_NAMES = {
    **{f"{algo}_{backend}": (f"spinup.algos.{backend}.{algo}.{algo}", algo)
       for backend in ("tf1", "pytorch")
       for algo in ("ddpg", "ppo", "sac", "td3", "trpo", "vpg")},
    "Logger": ("spinfast.logx", "Logger"),
    "EpochLogger": ("spinfast.logx", "EpochLogger"),
    "__version__": ("spinup.version", "__version__"),
}


def real_package_path(name):
    """Return the folders of a real installed package ``name`` (``spinup`` or
    ``spinup.utils``) on ``sys.path``; an empty list if there is none."""
    parts = name.split(".")
    found = []
    for entry in sys.path:
        folder = os.path.join(entry or os.curdir, *parts)
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            found.append(os.path.abspath(folder))
    return found


class AliasLoader:
    """Load an alias by importing the target and putting it in ``sys.modules``."""

    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return None  # a plain placeholder module; replaced in exec_module

    def exec_module(self, module):
        target = importlib.import_module(self.target)
        # The import system returns whatever sys.modules holds under the name after this.
        sys.modules[module.__name__] = target


def _spinup_getattr(name):
    """Module ``__getattr__`` of the placeholder ``spinup``: Spinning Up's lazy names."""
    if name not in SPINUP_NAMES:
        raise AttributeError(f"module 'spinup' has no attribute {name!r}")
    module_name, attr = SPINUP_NAMES[name]
    if module_name.startswith("spinup.") and not real_package_path("spinup"):
        raise ImportError(f"spinup.{name}: Spinning Up's algorithms are not importable (no "
                          f"spinup/ folder with an __init__.py on sys.path); install Spinning "
                          f"Up (pip install --no-deps -e /path/to/spinningup) or put its "
                          f"folder on PYTHONPATH", name=module_name)
    value = getattr(importlib.import_module(module_name), attr)
    setattr(sys.modules["spinup"], name, value)
    return value


class PackageLoader:
    """Create the light ``spinup`` / ``spinup.utils`` placeholder packages."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = ("Placeholder package made by spinfast.compat.install(); its "
                          "modules resolve to spinfast.")
        if module.__name__ == "spinup":
            module.__getattr__ = _spinup_getattr
            module.__all__ = [n for n in SPINUP_NAMES if not n.startswith("_")]


def find_spec(fullname):
    """Return the spec of an alias or placeholder package, or None for other names."""
    if fullname in ALIASES:
        return importlib.machinery.ModuleSpec(fullname, AliasLoader(ALIASES[fullname]))
    if fullname in PACKAGES:
        spec = importlib.machinery.ModuleSpec(fullname, PackageLoader(), is_package=True)
        spec.submodule_search_locations = real_package_path(fullname)
        return spec
    return None
