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

Spinning Up's own names work too (see the project README):

- ``from spinup import ppo_pytorch`` (every name of Spinning Up's ``spinup/__init__.py``)
  imports that one algorithm when first asked for, without running ``spinup/__init__.py``.
- ``import gym`` gives gym's old API over gymnasium (:mod:`spinfast.gym_compat`) when no real
  ``gym`` package is importable.
- Modules under ``spinup.algos.tf1`` and ``spinup.exercises.tf1`` get ``tf.compat.v1`` (with
  TF2 behaviour disabled) when they ``import tensorflow as tf``, with a ``tf.layers.dense``
  of compat's own, so Spinning Up's TF1 algorithms run on TensorFlow 2 (no ``tf-keras``
  needed); their ``import numpy`` gets arrays from ``np.zeros`` that take one-element values
  in scalar slots, as their buffers need on NumPy 2.4+.
- :func:`enable` / :func:`disable` (``spinfast compat enable|disable``) add or remove a
  ``.pth`` hook that calls :func:`startup` whenever Python starts in the environment.

Experiments launched by :mod:`spinfast.run_utils` while the aliases are installed install
them in their own processes too.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

__all__ = ["install", "uninstall", "is_installed", "ALIASES", "SPINUP_NAMES",
           "PTH_NAME", "enable", "disable", "pth_path", "startup"]

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

#: The names of Spinning Up's ``spinup/__init__.py`` -> ``(module, attribute)``, resolved on
#: first use by the placeholder ``spinup`` package.
SPINUP_NAMES = {
    **{f"{algo}_{backend}": (f"spinup.algos.{backend}.{algo}.{algo}", algo)
       for backend in ("tf1", "pytorch")
       for algo in ("ddpg", "ppo", "sac", "td3", "trpo", "vpg")},
    "Logger": ("spinfast.logx", "Logger"),
    "EpochLogger": ("spinfast.logx", "EpochLogger"),
    "__version__": ("spinup.version", "__version__"),
}

# Modules whose ``import tensorflow as tf`` gets tf.compat.v1 (Spinning Up's TF1 code).
_TF1_PREFIXES = ("spinup.algos.tf1", "spinup.exercises.tf1")


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


def _spinup_getattr(name):
    """Module ``__getattr__`` of the placeholder ``spinup``: Spinning Up's lazy names."""
    if name not in SPINUP_NAMES:
        raise AttributeError(f"module 'spinup' has no attribute {name!r}")
    module_name, attr = SPINUP_NAMES[name]
    if module_name.startswith("spinup.") and not _real_package_path("spinup"):
        raise ImportError(f"spinup.{name}: Spinning Up's algorithms are not importable (no "
                          f"spinup/ folder with an __init__.py on sys.path); install Spinning "
                          f"Up (pip install --no-deps -e /path/to/spinningup) or put its "
                          f"folder on PYTHONPATH", name=module_name)
    value = getattr(importlib.import_module(module_name), attr)
    setattr(sys.modules["spinup"], name, value)
    return value


class _PackageLoader(importlib.abc.Loader):
    """Create the light ``spinup`` / ``spinup.utils`` placeholder packages."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = ("Placeholder package made by spinfast.compat.install(); its "
                          "modules resolve to spinfast.")
        if module.__name__ == "spinup":
            module.__getattr__ = _spinup_getattr
            module.__all__ = [n for n in SPINUP_NAMES if not n.startswith("_")]


# ---------------------------------------------------------------------------------------------
# gym: the old API over gymnasium
# ---------------------------------------------------------------------------------------------

_real_gym = None  # None: not looked for yet


def _real_gym_exists():
    """Return True if a real ``gym`` package can be imported (looked up once)."""
    global _real_gym
    if _real_gym is None:
        _real_gym = importlib.machinery.PathFinder.find_spec("gym") is not None
    return _real_gym


class _GymLoader(importlib.abc.Loader):
    """Make the ``gym`` and ``gym.envs`` packages from gymnasium and spinfast.gym_compat."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import gymnasium

        from spinfast import gym_compat

        module.__path__ = []
        if module.__name__ == "gym":
            module.__doc__ = ("gym's old API over gymnasium, made by spinfast.compat.install() "
                              "(see spinfast.gym_compat).")
            for name in ("Env", "Wrapper", "ObservationWrapper", "ActionWrapper",
                         "RewardWrapper", "Space", "spaces", "wrappers", "error", "logger",
                         "register"):
                if hasattr(gymnasium, name):
                    setattr(module, name, getattr(gymnasium, name))
            module.make = gym_compat.make
            module.spec = gym_compat.spec
            module.envs = importlib.import_module("gym.envs")
        else:
            module.__doc__ = "gymnasium.envs with gym's old registry (spinfast.compat)."
            module.registry = gym_compat.registry
            module.make = gym_compat.make
            module.spec = gym_compat.spec
            module.register = gymnasium.register

            def __getattr__(name):
                return getattr(gymnasium.envs, name)

            module.__getattr__ = __getattr__


# ---------------------------------------------------------------------------------------------
# Spinning Up's TF1 code on TensorFlow 2
# ---------------------------------------------------------------------------------------------

_tf1_module = None


class _TF1Namespace(types.ModuleType):
    """``tf.compat.v1``, with the ``layers.dense`` Spinning Up's TF1 code needs."""

    def __getattr__(self, name):
        if name == "layers":
            self.layers = _tf1_layers()
            return self.layers
        if name == "contrib":
            raise AttributeError("tf.contrib does not exist in TensorFlow 2; spinfast.compat "
                                 "cannot provide it")
        import tensorflow as tf

        return getattr(tf.compat.v1, name)


def _tf1_layers():
    """``tf.layers`` for Spinning Up's TF1 code: ``dense``, the one layer it uses.

    TensorFlow 2.16+ keeps ``tf.compat.v1.layers`` only in the separate ``tf-keras`` package,
    which requires the full ``tensorflow`` distribution beside ``tensorflow-cpu``. This is
    ``tf.compat.v1.layers.dense`` in graph terms: variables ``kernel`` (Glorot uniform) and
    ``bias`` (zeros) in a variable scope named ``dense``, ``dense_1``, ... as tf.layers names
    them, then ``activation(inputs @ kernel + bias)``.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1

    def dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None,
              bias_initializer=None, name=None, reuse=None, trainable=True):
        """Apply a fully connected layer (as ``tf.compat.v1.layers.dense``)."""
        inputs = tf.convert_to_tensor(inputs)
        dtype = inputs.dtype.base_dtype
        with tf1.variable_scope(name, default_name="dense", reuse=reuse):
            kernel = tf1.get_variable(
                "kernel", [int(inputs.shape[-1]), units], dtype=dtype, trainable=trainable,
                initializer=kernel_initializer or tf1.glorot_uniform_initializer())
            if inputs.shape.rank == 2:
                out = tf.matmul(inputs, kernel)
            else:
                out = tf.tensordot(inputs, kernel, [[inputs.shape.rank - 1], [0]])
            if use_bias:
                bias = tf1.get_variable("bias", [units], dtype=dtype, trainable=trainable,
                                        initializer=bias_initializer or tf1.zeros_initializer())
                out = tf.nn.bias_add(out, bias)
            return activation(out) if activation is not None else out

    layers = types.ModuleType("tensorflow.layers", "tf.layers for Spinning Up's TF1 code "
                              "(spinfast.compat): dense")
    layers.dense = dense
    return layers


def _tf1():
    """The ``tensorflow`` seen by Spinning Up's TF1 modules (made once, v2 behaviour off)."""
    global _tf1_module
    if _tf1_module is None:
        import tensorflow as tf

        tf.compat.v1.disable_v2_behavior()
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
        _tf1_module = _TF1Namespace("tensorflow", "tf.compat.v1 for Spinning Up's TF1 code "
                                    "(spinfast.compat)")
    return _tf1_module


_numpy_module = None


def _numpy_for_tf1():
    """The ``numpy`` seen by Spinning Up's TF1 modules: arrays from ``zeros`` take 1-element
    values in scalar slots.

    Their buffers do ``self.val_buf[self.ptr] = v_t`` with ``v_t`` of shape ``(1,)`` (one
    ``sess.run`` row); NumPy 2.4 made that conversion of a 1-D array to a scalar an error.
    """
    global _numpy_module
    if _numpy_module is None:
        import numpy as np

        class ScalarSlotArray(np.ndarray):
            """An ndarray whose scalar elements accept any one-element value."""

            def __setitem__(self, key, value):
                try:
                    np.ndarray.__setitem__(self, key, value)
                except (TypeError, ValueError):
                    arr = np.asarray(value)
                    if arr.size != 1:
                        raise
                    np.ndarray.__setitem__(self, key, arr.reshape(-1)[0])

        def zeros(shape, dtype=float, order="C", **kwargs):
            """Return ``numpy.zeros(...)`` as a :class:`ScalarSlotArray`."""
            return np.zeros(shape, dtype, order, **kwargs).view(ScalarSlotArray)

        class NumpyNamespace(types.ModuleType):
            def __getattr__(self, name):
                return getattr(np, name)

        _numpy_module = NumpyNamespace("numpy", "numpy for Spinning Up's TF1 code "
                                       "(spinfast.compat)")
        _numpy_module.zeros = zeros
        _numpy_module.ScalarSlotArray = ScalarSlotArray
    return _numpy_module


def _tf1_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` of TF1 modules: ``tensorflow`` is :func:`_tf1`, ``numpy`` is
    :func:`_numpy_for_tf1`, the rest as usual."""
    if level == 0 and name == "tensorflow":
        return _tf1()
    if level == 0 and name == "numpy" and not fromlist:
        return _numpy_for_tf1()
    return builtins.__import__(name, globals, locals, fromlist, level)


_TF1_BUILTINS = dict(vars(builtins), __import__=_tf1_import)


class _TF1SourceLoader(importlib.machinery.SourceFileLoader):
    """Run a Spinning Up TF1 module with :func:`_tf1_import` as its ``__import__``."""

    def exec_module(self, module):
        module.__builtins__ = _TF1_BUILTINS
        super().exec_module(module)


class _SpinupFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder answering for the names in :data:`ALIASES` and their packages."""

    def find_spec(self, fullname, path=None, target=None):
        if (fullname == "gym" or fullname.startswith("gym.")) and not _real_gym_exists():
            if fullname in ("gym", "gym.envs"):
                spec = importlib.machinery.ModuleSpec(fullname, _GymLoader(), is_package=True)
                spec.submodule_search_locations = []
                return spec
            return importlib.machinery.ModuleSpec(fullname,
                                                  _AliasLoader("gymnasium" + fullname[3:]))
        if fullname.startswith(_TF1_PREFIXES):
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
                spec.loader = _TF1SourceLoader(fullname, spec.origin)
            return spec
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
                                              (_AliasLoader, _PackageLoader, _GymLoader)) \
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
    ours_gym = isinstance(getattr(sys.modules.get("gym"), "__loader__", None), _GymLoader)
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

    ``python -m spinup.run test_policy`` runs Spinning Up's ``spinup/utils/test_policy.py`` as
    a script, whose ``torch.load(fname)`` of a whole module fails on PyTorch 2.6+ (loads
    default to ``weights_only=True``); for that script only, whole-module loads are allowed
    again (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), as Spinning Up expects.
    """
    install()
    script = os.path.abspath(sys.argv[0]) if getattr(sys, "argv", None) else ""
    if script.endswith(os.path.join("spinup", "utils", "test_policy.py")):
        os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def pth_path() -> str:
    """Return where :func:`enable` writes its hook: the environment's site-packages."""
    import sysconfig

    return os.path.join(sysconfig.get_paths()["purelib"], PTH_NAME)


def enable() -> str:
    """Install compat at every start of Python in the current environment; return the hook.

    Writes :data:`PTH_NAME` into the environment's site-packages (:func:`pth_path`), a
    ``.pth`` file whose one line calls :func:`install` at start-up, so Spinning Up's own
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
