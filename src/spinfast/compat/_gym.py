"""Gym's old API over gymnasium, for code written for Spinning Up (gym <= 0.25).

Spinning Up's algorithms call ``o = env.reset()`` and ``o, r, d, info = env.step(a)``.
Gymnasium (the maintained successor of gym) returns ``(obs, info)`` from ``reset`` and
``(obs, reward, terminated, truncated, info)`` from ``step``. :class:`OldApiEnv` wraps a
gymnasium environment and speaks the old API:

- ``reset()`` returns the observation only (the info dict is kept in ``last_reset_info``);
- ``step(a)`` returns ``(obs, reward, done, info)`` with ``done = terminated or truncated``;
  when an episode ends by truncation only, ``info['TimeLimit.truncated']`` is True, as gym's
  ``TimeLimit`` did;
- ``seed(s)`` seeds the next ``reset`` and the action space and returns ``[s]``;
- ``render(mode=...)`` accepts (and ignores) gym's ``mode`` argument;
- everything else (``observation_space``, ``action_space``, ``spec``, ``unwrapped``...) is
  the wrapped environment's.

:func:`make` is ``gym.make`` for that API. When no real ``gym`` package is importable,
:func:`spinfast.compat.install` makes ``import gym`` give a module built from this one
(``gym.make``, ``gym.spaces``, ``gym.envs.registry`` ...). The adapter pickles (Spinning Up
saves its environment in ``vars.pkl``) and is importable without installing compat, so
:mod:`spinfast.test_policy` loads such files anywhere. Gymnasium is imported only when an
environment is made.

The public names live in :mod:`spinfast.gym_compat` (their ``__module__``), so pickles of an
:class:`OldApiEnv` name that module, as they did before this one existed.
"""

from __future__ import annotations

import importlib
import importlib.machinery

from ._aliases import AliasLoader

PUBLIC = ["OldApiEnv", "make", "is_old_api", "to_gymnasium", "EnvRegistryView", "registry",
          "spec"]

class OldApiEnv:
    """Wrap a gymnasium environment so that it speaks gym's old (pre-0.26) API.

    Args:
        env: a gymnasium environment (``reset() -> (obs, info)``, ``step() -> 5-tuple``).
    """

    def __init__(self, env):
        if isinstance(env, OldApiEnv):
            env = env.env
        self.env = env
        self.last_reset_info = {}
        self._next_seed = None

    def reset(self, **kwargs):
        """Start an episode; return its first observation (gym's old API)."""
        if self._next_seed is not None and "seed" not in kwargs:
            kwargs["seed"] = self._next_seed
        self._next_seed = None
        obs, info = self.env.reset(**kwargs)
        self.last_reset_info = info
        return obs

    def step(self, action):
        """Take ``action``; return ``(obs, reward, done, info)``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated:
            info = dict(info)
            info["TimeLimit.truncated"] = True
        return obs, reward, bool(terminated or truncated), info

    def seed(self, seed=None):
        """Seed the next :meth:`reset` and the action space; return ``[seed]``."""
        self._next_seed = seed
        if seed is not None and hasattr(self.env.action_space, "seed"):
            self.env.action_space.seed(seed)
        return [seed]

    def render(self, mode=None, **kwargs):
        """Render with the wrapped environment (its ``render_mode``; ``mode`` is ignored)."""
        return self.env.render()

    def close(self):
        """Close the wrapped environment."""
        return self.env.close()

    @property
    def unwrapped(self):
        """The innermost environment."""
        return self.env.unwrapped

    def __getattr__(self, name):
        # Only reached for names not found normally; never forward private state.
        if name.startswith("__") or name in ("env", "last_reset_info", "_next_seed"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def __getstate__(self):
        return dict(env=self.env, seed=self._next_seed)

    def __setstate__(self, state):
        self.env = state["env"]
        self._next_seed = state.get("seed")
        self.last_reset_info = {}

    def __repr__(self):
        return f"<OldApiEnv{self.env!r}>"


def make(id, **kwargs):  # noqa: A002 - gym's own parameter name
    """Make the gymnasium environment ``id`` and return it with gym's old API.

    Args:
        id: a registered gymnasium environment id (e.g. ``'CartPole-v1'``) or spec.
        **kwargs: passed to :func:`gymnasium.make` (e.g. ``render_mode``).

    Returns:
        an :class:`OldApiEnv`.
    """
    import gymnasium

    return OldApiEnv(gymnasium.make(id, **kwargs))


def is_old_api(env):
    """Return True if ``env`` speaks gym's old API (it is, or wraps, an :class:`OldApiEnv`).

    Environments made by other libraries are recognised by what their ``reset`` returns; see
    :func:`spinfast.test_policy.run_policy`.
    """
    seen = 0
    while env is not None and seen < 100:
        if isinstance(env, OldApiEnv):
            return True
        env = env.__dict__.get("env") if hasattr(env, "__dict__") else None
        seen += 1
    return False


def to_gymnasium(env):
    """Return the gymnasium environment inside ``env`` if it is an :class:`OldApiEnv`."""
    return env.env if isinstance(env, OldApiEnv) else env


class EnvRegistryView:
    """Gymnasium's registry as old gym showed it: a mapping id -> spec with ``all()``."""

    def _registry(self):
        import gymnasium

        return gymnasium.envs.registry

    def all(self):
        """Return every registered environment spec (each has an ``id``)."""
        return list(self._registry().values())

    def spec(self, id):  # noqa: A002 - gym's own parameter name
        """Return the spec registered as ``id`` (KeyError if none)."""
        return self._registry()[id]

    def __getitem__(self, key):
        return self._registry()[key]

    def __contains__(self, key):
        return key in self._registry()

    def __iter__(self):
        return iter(self._registry())

    def __len__(self):
        return len(self._registry())

    def keys(self):
        """Return the registered ids."""
        return self._registry().keys()

    def values(self):
        """Return the registered specs."""
        return self._registry().values()

    def items(self):
        """Return ``(id, spec)`` pairs."""
        return self._registry().items()

    def get(self, key, default=None):
        """Return the spec of ``key``, or ``default``."""
        return self._registry().get(key, default)


registry = EnvRegistryView()


def spec(id):  # noqa: A002 - gym's own parameter name
    """Return gymnasium's spec of the environment ``id``."""
    import gymnasium

    return gymnasium.spec(id)


for _obj in (OldApiEnv, make, is_old_api, to_gymnasium, EnvRegistryView, spec):
    _obj.__module__ = "spinfast.gym_compat"  # the public home; pickles name it
del _obj


# ---------------------------------------------------------------------------------------------
# import gym: a module made of gymnasium and the adapter
# ---------------------------------------------------------------------------------------------

_real_gym = None  # None: not looked for yet


def real_gym_exists():
    """Return True if a real ``gym`` package can be imported (looked up once)."""
    global _real_gym
    if _real_gym is None:
        _real_gym = importlib.machinery.PathFinder.find_spec("gym") is not None
    return _real_gym


class GymLoader:
    """Make the ``gym`` and ``gym.envs`` packages from gymnasium and this module."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import gymnasium

        module.__path__ = []
        if module.__name__ == "gym":
            module.__doc__ = ("gym's old API over gymnasium, made by spinfast.compat.install() "
                              "(see spinfast.gym_compat).")
            for name in ("Env", "Wrapper", "ObservationWrapper", "ActionWrapper",
                         "RewardWrapper", "Space", "spaces", "wrappers", "error", "logger",
                         "register"):
                if hasattr(gymnasium, name):
                    setattr(module, name, getattr(gymnasium, name))
            module.make = make
            module.spec = spec
            module.envs = importlib.import_module("gym.envs")
        else:
            module.__doc__ = "gymnasium.envs with gym's old registry (spinfast.compat)."
            # spinup/run.py:156 lists gym.envs.registry.all() to check --env.
            module.registry = registry
            module.make = make
            module.spec = spec
            module.register = gymnasium.register

            def __getattr__(name):
                return getattr(gymnasium.envs, name)

            module.__getattr__ = __getattr__


def find_spec(fullname):
    """Return the spec of ``gym`` / ``gym.*`` when no real gym exists, else None."""
    # spinup/algos/pytorch/ppo/ppo.py:4 (every algorithm; spinup/run.py:6) imports gym and
    # calls env.reset() / env.step(a) with gym's old API (ppo.py:295, 302).
    if not (fullname == "gym" or fullname.startswith("gym.")) or real_gym_exists():
        return None
    if fullname in ("gym", "gym.envs"):
        spec = importlib.machinery.ModuleSpec(fullname, GymLoader(), is_package=True)
        spec.submodule_search_locations = []
        return spec
    return importlib.machinery.ModuleSpec(fullname, AliasLoader("gymnasium" + fullname[3:]))
