"""Gym's old API over gymnasium (spinfast.gym_compat), compat's ``gym`` and Spinning Up names."""

from __future__ import annotations

import ast
import pickle
import textwrap

import gymnasium
import numpy as np
import pytest
from helpers import ROOT, run_program

from spinfast import gym_compat, user_config
from spinfast.test_policy import run_policy

SPINUP = ROOT.parent / "shared" / "clients" / "spinningup"


def python(code, cwd, env=None):
    """The output of ``python -c code`` (:func:`helpers.run_program`; fails on an error)."""
    return run_program(["-c", textwrap.dedent(code)], cwd, env=env).stdout


def test_old_api_matches_gymnasium_step_for_step():
    old = gym_compat.make("CartPole-v1")
    new = gymnasium.make("CartPole-v1")
    assert old.seed(7) == [7]
    o_old = old.reset()
    o_new, _ = new.reset(seed=7)
    np.testing.assert_array_equal(o_old, o_new)
    assert old.observation_space == new.observation_space
    assert old.action_space == new.action_space and old.spec.id == "CartPole-v1"
    for t in range(600):
        a = t % 2  # alternating actions keep the pole up for a while
        o1, r1, d1, info1 = old.step(a)
        o2, r2, term, trunc, _ = new.step(a)
        np.testing.assert_array_equal(o1, o2)
        assert (r1, d1) == (r2, term or trunc)
        if d1:
            break
    assert d1 and t < 500


def test_truncation_is_done_and_flagged():
    env = gym_compat.make("Pendulum-v1")  # never terminates; TimeLimit 200 steps
    env.reset()
    for t in range(200):
        _, _, done, info = env.step(np.zeros(1, dtype=np.float32))
        assert done == (t == 199)
    assert info["TimeLimit.truncated"] is True
    env.seed(3)
    first = env.reset()
    env.seed(3)
    np.testing.assert_array_equal(env.reset(), first)  # seed() seeds the next reset


def test_adapter_pickles_and_unwraps():
    env = gym_compat.make("CartPole-v1")
    env.reset()
    back = pickle.loads(pickle.dumps(env))
    assert isinstance(back, gym_compat.OldApiEnv) and back.spec.id == "CartPole-v1"
    assert np.shape(back.reset()) == (4,)
    assert gym_compat.is_old_api(back) and not gym_compat.is_old_api(back.env)
    assert gym_compat.to_gymnasium(back) is back.env
    assert gym_compat.OldApiEnv(back).env is back.env  # no double wrapping
    assert "CartPole-v1" in gym_compat.registry
    assert "CartPole-v1" in [s.id for s in gym_compat.registry.all()]


class BareOldApiEnv:
    """An old-gym-API environment not made by spinfast: episodes of exactly 5 steps."""

    def __init__(self):
        self.t = 0

    def reset(self):
        self.t = 0
        return np.zeros(2)

    def step(self, action):
        self.t += 1
        return np.full(2, self.t), float(action), self.t == 5, {}


@pytest.mark.parametrize("make, length", [
    (lambda: gym_compat.make("Pendulum-v1"), 200),
    (lambda: gymnasium.make("Pendulum-v1"), 200),
    (lambda: gymnasium.wrappers.TimeLimit(gymnasium.make("Pendulum-v1"), 7), 7),
    (lambda: gym_compat.OldApiEnv(gymnasium.wrappers.TimeLimit(gymnasium.make("Pendulum-v1"),
                                                               7)), 7),
], ids=["old-adapter", "gymnasium", "gymnasium-wrapped", "adapter-over-wrapped"])
def test_run_policy_accepts_both_apis(make, length):
    stats = run_policy(make(), lambda o: np.zeros(1, dtype=np.float32), num_episodes=2,
                       render=False)
    assert list(stats["EpLen"]) == [length, length]


def test_run_policy_accepts_a_bare_old_api_env():
    stats = run_policy(BareOldApiEnv(), lambda o: 2.0, num_episodes=3, render=False)
    assert list(stats["EpLen"]) == [5, 5, 5] and list(stats["EpRet"]) == [10, 10, 10]


def test_run_policy_rejects_other_step_results():
    class Weird(BareOldApiEnv):
        def step(self, action):
            return 1, 2, 3

    with pytest.raises(ValueError, match=r"run_policy\(\): env.step\(\) returned 3 values"):
        run_policy(Weird(), lambda o: 0, num_episodes=1, render=False)


def test_compat_gym_is_the_adapter_unless_a_real_gym_exists(tmp_path):
    code = """
        import spinfast.compat
        spinfast.compat.install()
        import gym
        from gym.spaces import Box, Discrete
        import gymnasium.spaces
        assert Box is gymnasium.spaces.Box and Discrete is gymnasium.spaces.Discrete
        assert gym.make.__module__ == "spinfast.gym_compat"
        env = gym.make("CartPole-v1")
        assert env.reset().shape == (4,) and len(env.step(0)) == 4
        assert "CartPole-v1" in [e.id for e in gym.envs.registry.all()]
        from gym.envs.classic_control import CartPoleEnv
        name = gym.__name__
        spinfast.compat.uninstall()
        import sys
        assert not [m for m in sys.modules if m == "gym" or m.startswith("gym.")]
        print(name, type(env).__name__)
    """
    assert python(code, tmp_path).split() == ["gym", "OldApiEnv"]
    (tmp_path / "gym").mkdir()  # a real gym package on the path wins
    (tmp_path / "gym" / "__init__.py").write_text("REAL = True\n")
    code = """
        import spinfast.compat
        spinfast.compat.install()
        import gym
        print(gym.REAL)
    """
    assert python(code, tmp_path).strip() == "True"


@pytest.mark.slow
def test_spinup_names_are_lazy_and_need_spinup(tmp_path):
    code = """
        import sys
        import spinfast.compat
        spinfast.compat.install()
        import spinup
        assert sorted(spinup.__all__) == sorted(n for n in spinfast.compat.SPINUP_NAMES
                                                if n != "__version__")
        from spinup import EpochLogger
        import spinfast.logx
        assert EpochLogger is spinfast.logx.EpochLogger
        assert "torch" not in sys.modules and "tensorflow" not in sys.modules
        try:
            from spinup import ppo_pytorch
        except ImportError as exc:
            print(exc)
    """
    out = python(code, tmp_path)
    assert out.startswith("spinup.ppo_pytorch: Spinning Up's algorithms are not importable")
    code = """
        import sys
        import spinfast.compat
        spinfast.compat.install()
        from spinup import ppo_pytorch
        assert ppo_pytorch.__module__ == "spinup.algos.pytorch.ppo.ppo"
        import spinup
        assert "spinup.algos.pytorch.vpg.vpg" not in sys.modules  # only what was asked for
        print(spinup.__version__, "tensorflow" in sys.modules)
    """
    env = dict(PYTHONPATH=str(SPINUP))
    if not (SPINUP / "spinup").exists():
        pytest.skip(f"Spinning Up's source is not at {SPINUP}")
    assert python(code, tmp_path, env=env).split() == ["0.2.0", "False"]


def test_user_config_has_every_name_of_spinning_up():
    path = SPINUP / "spinup" / "user_config.py"
    if not path.exists():
        pytest.skip(f"Spinning Up's source is not at {path}")
    tree = ast.parse(path.read_text())
    names = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    assert set(names) == {"DEFAULT_BACKEND", "DEFAULT_DATA_DIR", "FORCE_DATESTAMP",
                          "DEFAULT_SHORTHAND", "WAIT_BEFORE_LAUNCH"}
    for name in names:
        assert hasattr(user_config, name), name
    assert user_config.DEFAULT_BACKEND == ast.literal_eval(names["DEFAULT_BACKEND"])
