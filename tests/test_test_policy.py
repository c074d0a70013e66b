"""test_policy: a saved PyTorch policy (whole module + vars.pkl) runs on gymnasium CartPole."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import joblib
import numpy as np
import pytest
import torch

from spinfast.test_policy import load_policy_and_env, run_policy

# The policy class lives in a module of its own (written to a temporary folder) so that a
# separate process can unpickle the saved module, as it would for a user's algorithm.
POLICY_MODULE = textwrap.dedent('''
    import torch
    from torch import nn


    class CartPolePolicy(nn.Module):
        """Push toward the side the pole falls to: a linear score on angle and its rate."""

        def __init__(self):
            super().__init__()
            self.score = nn.Linear(4, 1, bias=False)
            with torch.no_grad():
                self.score.weight.copy_(torch.tensor([[0.0, 0.0, 1.0, 1.0]]))

        def act(self, obs):
            return (self.score(obs) > 0).long().squeeze(-1)


    class DetProbe(nn.Module):
        """Answers 1 when asked for the deterministic action, else 0."""

        def act(self, obs, deterministic=False):
            return torch.tensor(int(deterministic))


    class Tagged(nn.Module):
        """Returns its tag as the action, to tell saves apart."""

        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, obs):
            return torch.tensor(self.tag)
''')


@pytest.fixture
def policies(tmp_path, monkeypatch):
    (tmp_path / "sf_test_policies.py").write_text(POLICY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("sf_test_policies")
    yield mod
    sys.modules.pop("sf_test_policies", None)


def save_run(folder, module, itr="", env=True):
    (folder / "pyt_save").mkdir(parents=True, exist_ok=True)
    torch.save(module, folder / "pyt_save" / f"model{itr}.pt")
    if env:
        joblib.dump({"env": gym.make("CartPole-v1")}, folder / f"vars{itr}.pkl")


def test_saved_pytorch_policy_runs_cartpole(tmp_path, policies, capsys):
    run = tmp_path / "run"
    save_run(run, policies.CartPolePolicy())
    before = set(os.listdir("/tmp/experiments")) if os.path.isdir("/tmp/experiments") else None
    env, get_action = load_policy_and_env(str(run))
    assert env.spec.id == "CartPole-v1"
    obs = np.array([0.0, 0.0, 0.05, 0.0], dtype=np.float32)
    assert get_action(obs) == 1 and get_action(-obs) == 0
    stats = run_policy(env, get_action, max_ep_len=60, num_episodes=3, render=False)
    # The controller balances the pole: every episode reaches the 60-step cap, reward 1/step.
    np.testing.assert_array_equal(stats["EpLen"], [60, 60, 60])
    np.testing.assert_array_equal(stats["EpRet"], [60.0, 60.0, 60.0])
    out = capsys.readouterr().out
    assert "Loading from " + str(run / "pyt_save" / "model.pt") in out
    assert "Episode 2 \t EpRet 60.000 \t EpLen 60" in out
    for key, val in (("AverageEpRet", "60"), ("StdEpRet", "0"), ("EpLen", "60")):
        assert f"| {key:>15} | {val:>15} |" in out
    after = set(os.listdir("/tmp/experiments")) if os.path.isdir("/tmp/experiments") else None
    assert after == before  # no stray /tmp/experiments/<time> folder


def test_episode_ends_at_termination_and_stats_to_output_dir(tmp_path, policies):
    run = tmp_path / "run"
    save_run(run, policies.Tagged(0))  # always push left: the pole falls within ~10 steps
    env, get_action = load_policy_and_env(str(run))
    stats = run_policy(env, get_action, num_episodes=4, render=False,
                       output_dir=str(tmp_path / "stats"))
    assert len(stats["EpLen"]) == 4 and (stats["EpLen"] < 30).all()
    np.testing.assert_array_equal(stats["EpRet"], stats["EpLen"].astype(float))
    header, row = (tmp_path / "stats" / "progress.txt").read_text().splitlines()
    assert header.split("\t") == ["AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet", "EpLen"]
    values = [float(v) for v in row.split("\t")]
    assert values == pytest.approx([stats["EpRet"].mean(), stats["EpRet"].std(),
                                    stats["EpRet"].max(), stats["EpRet"].min(),
                                    stats["EpLen"].mean()], rel=1e-12)


def test_itr_selection_ignores_non_numeric_names(tmp_path, policies):
    run = tmp_path / "run"
    for itr in ("", "3", "10"):
        save_run(run, policies.Tagged(int(itr or -1)), itr)
    save_run(run, policies.Tagged(99), "_best", env=False)  # model_best.pt
    (run / "pyt_save" / ".model.pt.123.abcd.tmp").write_bytes(b"partial")
    _, get_action = load_policy_and_env(str(run))
    assert get_action(np.zeros(4)) == 10.0
    env, get_action = load_policy_and_env(str(run), itr=3)
    assert get_action(np.zeros(4)) == 3.0 and env is not None
    with pytest.raises(FileNotFoundError, match=r"no save for itr 7 in .*saved itrs: \[3, 10\]"):
        load_policy_and_env(str(run), itr=7)
    with pytest.raises(TypeError, match="itr must be 'last' or an int"):
        load_policy_and_env(str(run), itr="3")


def test_deterministic_flag_reaches_act(tmp_path, policies):
    run = tmp_path / "run"
    save_run(run, policies.DetProbe(), env=False)
    env, get_action = load_policy_and_env(str(run), deterministic=True)
    assert env is None and get_action(np.zeros(4)) == 1
    assert load_policy_and_env(str(run))[1](np.zeros(4)) == 0
    with pytest.raises(ValueError, match=r"run_policy\(\): environment not found"):
        run_policy(env, get_action, num_episodes=1, render=False)


def test_missing_save_and_render_without_display(tmp_path, policies, monkeypatch, capsys):
    with pytest.raises(FileNotFoundError, match="no saved model in"):
        load_policy_and_env(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_policy_and_env(str(tmp_path / "nope"))
    run = tmp_path / "run"
    save_run(run, policies.CartPolePolicy())
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    env, get_action = load_policy_and_env(str(run))
    stats = run_policy(env, get_action, max_ep_len=5, num_episodes=1, render=True)
    assert list(stats["EpLen"]) == [5]
    assert "Note: not rendering" in capsys.readouterr().out


@pytest.mark.slow
def test_command_line(tmp_path, policies):
    run = tmp_path / "run"
    save_run(run, policies.CartPolePolicy())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "test_policy", str(run),
                           "-n", "2", "-l", "25", "-nr", "-d"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("EpLen 25") == 2
    assert f"| {'AverageEpRet':>15} | {'25':>15} |" in proc.stdout


def test_saved_tf1_policy_runs_cartpole(tmp_path):
    import tensorflow as tf

    from spinfast.logx import Logger

    tf1 = tf.compat.v1
    run = tmp_path / "tfrun"
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        w = tf1.Variable([[0.0], [0.0], [1.0], [1.0]])
        pi = tf.cast(tf.squeeze(tf.matmul(x, w), -1) > 0, tf.int64, name="pi")
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
    logger = Logger(output_dir=str(run))
    logger.setup_tf_saver(sess, inputs={"x": x}, outputs={"pi": pi})
    logger.save_state({"env": gym.make("CartPole-v1")})
    env, get_action = load_policy_and_env(str(run))
    obs = np.array([0.0, 0.0, 0.05, 0.0], dtype=np.float32)
    assert get_action(obs) == 1 and get_action(-obs) == 0
    stats = run_policy(env, get_action, max_ep_len=60, num_episodes=2, render=False)
    np.testing.assert_array_equal(stats["EpLen"], [60, 60])
