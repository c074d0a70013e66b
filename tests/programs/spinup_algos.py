"""Train Spinning Up's own algorithms for a few short epochs through spinfast.compat.

Usage: ``python tests/programs/spinup_algos.py DATA_DIR ALGO [ALGO ...]`` (also under
``mpiexec -n N``); ``ALGO`` is ``vpg``, ``ppo``, ``ddpg``, ``td3``, ``sac`` (PyTorch) or
``trpo_tf1``, ``ppo_tf1`` ... (TF1, each in its own ``tf.Graph``). Spinning Up's source
must be importable (its folder on PYTHONPATH). Each
algorithm runs unchanged, made as its docs show (``from spinup import ppo_pytorch`` and an
``env_fn`` calling ``gym.make``; here ``gym`` is spinfast's old-API adapter over gymnasium),
with tiny settings, logging into ``DATA_DIR/<ALGO>``. Every rank then writes
``DATA_DIR/<ALGO>/rank<r>.json`` with its rank, the number of ranks and which modules served
``gym`` and ``spinup.utils.logx``.
"""

import contextlib
import json
import os
import sys

import spinfast.compat

spinfast.compat.install()

import gym  # noqa: E402  (after install(): the adapter)
import spinup  # noqa: E402
from spinup.utils.mpi_tools import num_procs, proc_id  # noqa: E402

# Tiny but complete runs: every update path of each algorithm executes.
OFF_POLICY = dict(steps_per_epoch=120, epochs=2, start_steps=40, update_after=40,
                  update_every=20, batch_size=32, replay_size=1000, num_test_episodes=2,
                  max_ep_len=40, ac_kwargs=dict(hidden_sizes=(16, 16)))
SETTINGS = {
    "vpg": ("CartPole-v1", dict(steps_per_epoch=120, epochs=2, train_v_iters=3,
                                ac_kwargs=dict(hidden_sizes=(16,)))),
    "ppo": ("CartPole-v1", dict(steps_per_epoch=120, epochs=2, train_pi_iters=3,
                                train_v_iters=3, ac_kwargs=dict(hidden_sizes=(16,)))),
    "ddpg": ("Pendulum-v1", OFF_POLICY),
    "td3": ("Pendulum-v1", OFF_POLICY),
    "sac": ("Pendulum-v1", OFF_POLICY),
}


SETTINGS["trpo"] = SETTINGS["vpg"]


def main(data_dir, algos):
    """Train each of ``algos`` into ``data_dir/<algo>``."""
    for name in algos:
        base, _, backend = name.partition("_")
        env_name, kwargs = SETTINGS[base]
        algo = getattr(spinup, base + "_" + (backend or "pytorch"))
        out = os.path.join(data_dir, name)
        graph = contextlib.nullcontext()
        if backend == "tf1":
            import tensorflow as tf

            graph = tf.Graph().as_default()
        with graph:
            algo(lambda: gym.make(env_name), seed=3,  # noqa: B023 (called right here)
                 logger_kwargs=dict(output_dir=out, exp_name=name), **kwargs)
        with open(os.path.join(out, f"rank{proc_id()}.json"), "w") as f:
            json.dump(dict(rank=proc_id(), size=num_procs(), gym=gym.make.__module__,
                           logx=sys.modules["spinup.utils.logx"].__name__), f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
