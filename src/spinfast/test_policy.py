"""Load a saved policy and run it in its environment, as ``spinup.utils.test_policy``.

A run folder saved by :class:`spinfast.logx.Logger` (or Spinning Up's) holds ``vars.pkl`` or
``vars<itr>.pkl`` (joblib; ``{'env': env, ...}`` when the algorithm saved its environment) and
either ``pyt_save/model.pt`` / ``model<itr>.pt`` (a whole PyTorch module, ``torch.save``) or
``tf1_save`` / ``tf1_save<itr>`` (a TF1 SavedModel).

The PyTorch file is a full pickle, loaded with ``torch.load(..., weights_only=False)``: like
any pickle it can run code when loaded, so only load folders you trust (your own runs).

Environments may use the gymnasium API (``reset() -> (obs, info)``, ``step() -> (obs,
reward, terminated, truncated, info)``) or gym's old one (``reset() -> obs``, ``step() ->
(obs, reward, done, info)``), as the environments Spinning Up saves do; wrapped in
:class:`spinfast.gym_compat.OldApiEnv` or not. Loading installs :mod:`spinfast.compat` first
(unless a real Spinning Up is already imported), so runs saved by Spinning Up itself, whose
pickles name ``spinup.*`` modules and ``gym``, load without running its ``__init__``.
PyTorch, TensorFlow and gymnasium are imported only when needed.

Command line: ``python -m spinfast.run test_policy FPATH [-l LEN] [-n EPISODES] [-nr] [-i ITR]
[-d]``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import os.path as osp
import re
import sys
import tempfile
import time

import joblib
import numpy as np

__all__ = ["load_policy_and_env", "load_pytorch_policy", "load_tf_policy", "run_policy",
           "build_parser", "main"]

_PYT_RE = re.compile(r"^model(\d*)\.pt$")
_TF_RE = re.compile(r"^tf1_save(\d*)$")


def _itrs(names, pattern):
    """Iteration numbers in ``names`` matching ``pattern`` ('' for the un-numbered save)."""
    found = []
    for name in names:
        m = pattern.match(name)
        if m:
            found.append(m.group(1))
    return found


def load_policy_and_env(fpath, itr="last", deterministic=False):
    """Load the policy and the environment saved in the run folder ``fpath``.

    Args:
        fpath: a run's output folder.
        itr: ``'last'`` (the highest numbered save, else the un-numbered one) or an int.
            Non-numeric files such as ``model_best.pt`` are ignored.
        deterministic: use the deterministic action (TF: the ``mu`` output if saved; PyTorch:
            ``act(obs, deterministic=True)`` if the module's ``act`` takes it).

    Returns:
        ``(env, get_action)``: the saved environment (None if ``vars*.pkl`` is missing or has
        no ``'env'``) and a function from an observation to an action.

    Raises:
        FileNotFoundError: ``fpath`` or the requested save does not exist.
        TypeError: ``itr`` is neither ``'last'`` nor an int.
    """
    fpath = os.fspath(fpath)
    _install_compat()
    if not osp.isdir(fpath):
        raise FileNotFoundError(f"load_policy_and_env(): {fpath!r} is not a folder; pass a "
                                f"run's output folder (it holds pyt_save/ or tf1_save)")
    entries = os.listdir(fpath)
    tf_itrs = _itrs(entries, _TF_RE)
    pyt_dir = osp.join(fpath, "pyt_save")
    pyt_itrs = _itrs(os.listdir(pyt_dir), _PYT_RE) if osp.isdir(pyt_dir) else []
    if tf_itrs:
        backend, saves = "tf1", tf_itrs
    elif pyt_itrs:
        backend, saves = "pytorch", pyt_itrs
    else:
        raise FileNotFoundError(f"load_policy_and_env(): no saved model in {fpath!r} (looked "
                                f"for pyt_save/model*.pt and tf1_save*); it holds "
                                f"{sorted(entries)!r}")
    if itr == "last":
        numbered = [int(s) for s in saves if s]
        itr = "%d" % max(numbered) if numbered else ""
    elif isinstance(itr, (int, np.integer)) and not isinstance(itr, bool):
        itr = "%d" % itr
        if itr not in saves:
            raise FileNotFoundError(f"load_policy_and_env(): no save for itr {itr} in "
                                    f"{fpath!r}; saved itrs: "
                                    f"{sorted(int(s) for s in saves if s)!r}")
    else:
        raise TypeError(f"load_policy_and_env(): itr must be 'last' or an int, got {itr!r}; "
                        f"pass an iteration number")
    if backend == "tf1":
        get_action = load_tf_policy(fpath, itr, deterministic)
    else:
        get_action = load_pytorch_policy(fpath, itr, deterministic)
    env = None
    vars_path = osp.join(fpath, "vars" + itr + ".pkl")
    if osp.exists(vars_path):
        try:
            state = joblib.load(vars_path)
            env = state.get("env") if isinstance(state, dict) else None
        except Exception as exc:  # a broken or foreign pickle: run without the saved env
            print(f"Warning: could not load the environment from {vars_path}: "
                  f"{type(exc).__name__}: {exc}")
    return env, get_action


def _install_compat():
    """Let pickles of Spinning Up runs import ``spinup.*`` and ``gym`` (see the module doc)."""
    from spinfast import compat

    if not compat.is_installed():
        try:
            compat.install()
        except ImportError:  # the real Spinning Up is imported: its own modules unpickle
            pass


def load_tf_policy(fpath, itr, deterministic=False):
    """Load a TF1 policy saved in ``fpath/tf1_save<itr>``; return ``get_action(obs)``."""
    import tensorflow as tf

    from spinfast.logx import restore_tf_graph

    fname = osp.join(fpath, "tf1_save" + itr)
    print("\n\nLoading from %s.\n\n" % fname)
    sess = tf.compat.v1.Session()
    model = restore_tf_graph(sess, fname)
    if deterministic and "mu" in model:
        print("Using deterministic action op.")
        action_op = model["mu"]
    else:
        print("Using default action op.")
        action_op = model["pi"]

    def get_action(x):
        return sess.run(action_op, feed_dict={model["x"]: np.asarray(x)[None, :]})[0]

    return get_action


def load_pytorch_policy(fpath, itr, deterministic=False):
    """Load a whole PyTorch module from ``fpath/pyt_save/model<itr>.pt``.

    The file is a trusted full pickle (``weights_only=False``). Actions come from the
    module's ``act(obs)`` (with ``deterministic=`` when it accepts it), else its forward;
    tensors are returned as numpy (a Python scalar for a single element).

    Returns:
        ``get_action(obs)``.
    """
    import torch

    _install_compat()
    fname = osp.join(fpath, "pyt_save", "model" + itr + ".pt")
    print("\n\nLoading from %s.\n\n" % fname)
    model = torch.load(fname, weights_only=False)
    if hasattr(model, "eval"):
        model.eval()
    act = getattr(model, "act", None) or model
    kwargs = {}
    try:
        if "deterministic" in inspect.signature(act).parameters:
            kwargs["deterministic"] = deterministic
    except (TypeError, ValueError):
        pass

    def get_action(x):
        with torch.no_grad():
            action = act(torch.as_tensor(np.asarray(x), dtype=torch.float32), **kwargs)
        if isinstance(action, torch.Tensor):
            action = action.numpy()
            if action.size == 1 and action.ndim <= 1:
                action = action.reshape(()).item()
        return action

    return get_action


def _render_env(env, render):
    """Return the env to run and whether to call ``render()`` on it."""
    if not render:
        return env, False
    mode = getattr(env, "render_mode", None)
    if mode is not None:
        return env, True
    spec = getattr(env, "spec", None)
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if spec is None or headless:
        why = "there is no display" if headless else "the saved env has no spec to remake it"
        print(f"Note: not rendering: the environment was made without render_mode and {why}; "
              f"pass render=False (-nr) to silence this.")
        return env, False
    import gymnasium as gym

    return gym.make(spec, render_mode="human"), True


class _EnvApi:
    """Step an environment of either API and see gymnasium's results.

    Which API ``env`` speaks is read from what its first ``reset()`` returns: a pair whose
    second item is a dict is gymnasium's ``(obs, info)``; anything else is gym's old bare
    observation.
    """

    def __init__(self, env):
        self.env = env
        self.old = None

    def reset(self):
        out = self.env.reset()
        if self.old is None:
            self.old = not (isinstance(out, tuple) and len(out) == 2
                            and isinstance(out[1], dict))
        return out if self.old else out[0]

    def step(self, action):
        out = self.env.step(action)
        if len(out) == 5:
            obs, reward, terminated, truncated, _ = out
            return obs, reward, terminated or truncated
        if len(out) == 4:
            obs, reward, done, _ = out
            return obs, reward, done
        raise ValueError(f"run_policy(): env.step() returned {len(out)} values; expected "
                         f"gymnasium's 5 (obs, reward, terminated, truncated, info) or gym's "
                         f"4 (obs, reward, done, info)")


def run_policy(env, get_action, max_ep_len=None, num_episodes=100, render=True,
               output_dir=None):
    """Run ``get_action`` in ``env`` for ``num_episodes`` episodes; log EpRet and EpLen.

    Prints each episode, then a table with the average, std, max and min return and the
    average length (an :class:`~spinfast.logx.EpochLogger`). With ``render``, an environment
    made without ``render_mode`` is remade with ``render_mode='human'`` when a display exists.

    Args:
        env: an environment with gymnasium's API or gym's old one (see the module doc).
        get_action: function from an observation to an action.
        max_ep_len: end an episode after this many steps (None or 0: no limit).
        num_episodes: number of episodes.
        render: show the environment.
        output_dir: also write the statistics to ``output_dir/progress.txt``; by default
            nothing is written to disk.

    Returns:
        dict with numpy arrays ``EpRet`` and ``EpLen`` (one entry per episode).

    Raises:
        ValueError: ``env`` is None (the run saved no environment) or ``num_episodes`` < 1.
    """
    from spinfast.logx import EpochLogger

    if env is None:
        raise ValueError("run_policy(): environment not found (env is None); the run did not "
                         "save its environment in vars.pkl, so make it yourself (e.g. "
                         "gymnasium.make(...)) and pass it")
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, (int, np.integer)) \
            or num_episodes < 1:
        raise ValueError(f"run_policy(): num_episodes must be an int >= 1, got "
                         f"{num_episodes!r}; pass how many episodes to run")
    from spinfast.gym_compat import to_gymnasium

    env, do_render = _render_env(to_gymnasium(env), render)
    env = _EnvApi(env)
    with contextlib.ExitStack() as stack:
        if output_dir is None:
            # EpochLogger always writes progress.txt: give it a folder that goes away, and
            # keep its "Logging data to" line quiet (no stray /tmp/experiments folder).
            output_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="spinfast-"))
            with contextlib.redirect_stdout(io.StringIO()):
                logger = EpochLogger(output_dir=output_dir)
        else:
            logger = EpochLogger(output_dir=os.fspath(output_dir))
        stack.callback(logger.close)
        rets, lens = [], []
        o = env.reset()
        ep_ret, ep_len, n = 0.0, 0, 0
        while n < num_episodes:
            if do_render:
                env.env.render()
                time.sleep(1e-3)
            a = get_action(o)
            o, r, done = env.step(a)
            ep_ret += float(r)
            ep_len += 1
            if done or (max_ep_len and ep_len == max_ep_len):
                logger.store(EpRet=ep_ret, EpLen=ep_len)
                rets.append(ep_ret)
                lens.append(ep_len)
                print("Episode %d \t EpRet %.3f \t EpLen %d" % (n, ep_ret, ep_len))
                o = env.reset()
                ep_ret, ep_len = 0.0, 0
                n += 1
        logger.log_tabular("EpRet", with_min_and_max=True)
        logger.log_tabular("EpLen", average_only=True)
        logger.dump_tabular()
    return dict(EpRet=np.asarray(rets), EpLen=np.asarray(lens))


EXAMPLES = """\
examples:
  python -m spinfast.run test_policy data/ppo/ppo_s0               # 100 episodes, rendered
  python -m spinfast.run test_policy data/ppo/ppo_s0 -n 5 -nr -d   # 5 episodes, no window
  python -m spinfast.run test_policy data/ppo/ppo_s0 -i 20 -l 500  # save 20, episodes <= 500
"""


def build_parser(prog="python -m spinfast.run test_policy"):
    """Return the argument parser of the ``test_policy`` command."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run a saved policy (PyTorch pyt_save/ or TF1 tf1_save) in its "
        "saved environment (gymnasium or gym's old API) and report episode returns and "
        "lengths. Loads trusted pickles: only use it on your own runs.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fpath", type=str, help="the run's output folder")
    parser.add_argument("--len", "-l", type=int, default=0,
                        help="maximum episode length (default 0: the env's own limit)")
    parser.add_argument("--episodes", "-n", type=int, default=100,
                        help="number of episodes (default 100)")
    parser.add_argument("--norender", "-nr", action="store_true", help="do not render")
    parser.add_argument("--itr", "-i", type=int, default=-1,
                        help="which save to load (default -1: the last)")
    parser.add_argument("--deterministic", "-d", action="store_true",
                        help="use the deterministic action")
    return parser


def main(argv=None, prog="python -m spinfast.run test_policy"):
    """Run the ``test_policy`` command with ``argv`` (default ``sys.argv[1:]``); return 0.

    Raises:
        SystemExit: bad arguments (status 2).
    """
    args = build_parser(prog).parse_args(argv)
    env, get_action = load_policy_and_env(args.fpath, args.itr if args.itr >= 0 else "last",
                                          args.deterministic)
    run_policy(env, get_action, args.len, args.episodes, not args.norender)
    return 0


if __name__ == "__main__":
    sys.exit(main())
