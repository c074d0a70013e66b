"""Defaults for experiment launching, as ``spinup.user_config``, overridable by environment.

Each constant is read once, at import, from an environment variable (shown in brackets) and
falls back to the value given:

- ``DEFAULT_DATA_DIR`` [``SPINFAST_DATA_DIR``]: where :func:`spinfast.run_utils.setup_logger_kwargs`
  puts results when no ``data_dir`` is given. Default: ``./data`` (absolute, from the current
  directory at import).
- ``FORCE_DATESTAMP`` [``SPINFAST_FORCE_DATESTAMP``]: always add date and time to output folder
  names. Default ``False``.
- ``DEFAULT_SHORTHAND`` [``SPINFAST_DEFAULT_SHORTHAND``]: make a shorthand for each
  :class:`~spinfast.run_utils.ExperimentGrid` key when none is given. Default ``True``.
- ``WAIT_BEFORE_LAUNCH`` [``SPINFAST_WAIT_BEFORE_LAUNCH``]: seconds
  :meth:`~spinfast.run_utils.ExperimentGrid.run` waits (showing what it will run) before
  launching. Default ``5``, as Spinning Up; ``0`` disables it.

- ``DEFAULT_BACKEND``: for Spinning Up's algorithm names given without a backend
  (``python -m spinfast.run ppo``), which backend runs: ``'pytorch'`` or ``'tf1'`` per
  algorithm, as in Spinning Up (``trpo`` has only a TF1 version). Change it by assigning to
  the dict.

Booleans accept ``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case).
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_DATA_DIR", "FORCE_DATESTAMP", "DEFAULT_SHORTHAND", "WAIT_BEFORE_LAUNCH",
           "DEFAULT_BACKEND"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable; raise ValueError on anything unrecognised."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"spinfast.user_config: environment variable {name} is {raw!r}; "
                     f"use one of 1/0, true/false, yes/no, on/off")


def _env_float(name: str, default: float) -> float:
    """Read a non-negative number from the environment; raise ValueError otherwise."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"spinfast.user_config: environment variable {name} is {raw!r}; "
                         f"give a number of seconds >= 0")
    return value


DEFAULT_DATA_DIR: str = os.path.abspath(os.environ.get("SPINFAST_DATA_DIR") or "data")
FORCE_DATESTAMP: bool = _env_bool("SPINFAST_FORCE_DATESTAMP", False)
DEFAULT_SHORTHAND: bool = _env_bool("SPINFAST_DEFAULT_SHORTHAND", True)
WAIT_BEFORE_LAUNCH: float = _env_float("SPINFAST_WAIT_BEFORE_LAUNCH", 5)
DEFAULT_BACKEND: dict[str, str] = {"vpg": "pytorch", "trpo": "tf1", "ppo": "pytorch",
                                   "ddpg": "pytorch", "td3": "pytorch", "sac": "pytorch"}
