"""Gym's old API over gymnasium, for code written for Spinning Up (gym <= 0.25).

:class:`OldApiEnv` wraps a gymnasium environment so that ``reset()`` returns the observation
and ``step(a)`` returns ``(obs, reward, done, info)``; :func:`make` is ``gym.make`` for that
API. When no real ``gym`` is importable, :func:`spinfast.compat.install` makes ``import gym``
give a module built from these names. The code lives in :mod:`spinfast.compat`'s gym layer;
this module is its public name (pickled environments refer to it).
"""

from __future__ import annotations

from spinfast.compat._gym import (
    EnvRegistryView,
    OldApiEnv,
    is_old_api,
    make,
    registry,
    spec,
    to_gymnasium,
)

__all__ = ["OldApiEnv", "make", "is_old_api", "to_gymnasium", "EnvRegistryView", "registry",
           "spec"]
