"""A small, real, numpy-only policy-gradient experiment used by ``python -m spinfast.run demo``.

:func:`train` learns to walk down a slippery corridor (:class:`Corridor`) with REINFORCE on a
tabular softmax policy. It is written the way a Spinning Up algorithm is: it takes
``seed`` and ``logger_kwargs``, saves its config, stores diagnostics in an
:class:`~spinfast.logx.EpochLogger` every episode and logs one row per epoch. Under MPI each
rank collects its own episodes; advantages are normalised with
:func:`~spinfast.mpi_tools.mpi_statistics_scalar` and gradients averaged with
:func:`~spinfast.mpi_tools.mpi_avg`, so all ranks keep identical parameters.

Run it alone with ``python -c "from spinfast.examples_demo import train; train()"``.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["Corridor", "train"]


class Corridor:
    """A corridor of ``length`` cells: start at cell 0, reach the last cell.

    Actions: 0 left, 1 right; with probability ``slip`` the other action happens. Reward -1
    per step; the episode terminates at the goal and is truncated after ``max_steps``.
    Observations are one-hot float32 vectors. gymnasium-style API: ``reset(seed=None) ->
    (obs, info)``, ``step(a) -> (obs, reward, terminated, truncated, info)``.

    Args:
        length: number of cells (>= 2).
        slip: probability that the other action is taken.
        max_steps: episode step limit.
    """

    def __init__(self, length=8, slip=0.1, max_steps=40):
        if length < 2:
            raise ValueError(f"Corridor(): length must be >= 2, got {length!r}; pass a longer "
                             f"corridor")
        self.length, self.slip, self.max_steps = int(length), float(slip), int(max_steps)
        self.rng = np.random.default_rng()
        self.pos, self.t = 0, 0

    def _obs(self):
        obs = np.zeros(self.length, dtype=np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, seed=None):
        """Start a new episode; return ``(obs, info)``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        """Move; return ``(obs, reward, terminated, truncated, info)``."""
        action = int(action)
        if self.rng.random() < self.slip:
            action = 1 - action
        self.pos = min(self.length - 1, max(0, self.pos + (1 if action == 1 else -1)))
        self.t += 1
        terminated = self.pos == self.length - 1
        truncated = (not terminated) and self.t >= self.max_steps
        return self._obs(), -1.0, terminated, truncated, {}


def _softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def train(seed=0, epochs=30, steps_per_epoch=400, lr=10.0, length=8, slip=0.1, max_ep_len=40,
          logger_kwargs=None):
    """Train a tabular softmax policy on :class:`Corridor` with REINFORCE.

    Each epoch every MPI rank collects ``steps_per_epoch`` steps (whole episodes, the last
    one cut), computes reward-to-go advantages normalised over all ranks, and takes one
    gradient-ascent step with the gradient averaged over ranks.

    Args:
        seed: random seed (each rank adds ``10000 * rank``).
        epochs: number of epochs (rows of progress.txt).
        steps_per_epoch: environment steps per epoch per rank.
        lr: learning rate of the gradient step.
        length: corridor length; the best return is ``-(length - 1)``.
        slip: probability that the other action is taken.
        max_ep_len: episode step limit.
        logger_kwargs: keyword arguments of the EpochLogger (output_dir, exp_name).

    Returns:
        the learned logits, an array of shape ``(length, 2)``.
    """
    from spinfast.logx import EpochLogger
    from spinfast.mpi_tools import mpi_avg, mpi_statistics_scalar, num_procs, proc_id

    logger = EpochLogger(**(logger_kwargs or {}))
    logger.save_config(dict(seed=seed, epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr,
                            length=length, slip=slip, max_ep_len=max_ep_len,
                            logger_kwargs=logger_kwargs, num_procs=num_procs()))
    rng = np.random.default_rng(seed + 10000 * proc_id())
    env = Corridor(length, slip, max_ep_len)
    env.reset(seed=int(rng.integers(2**31)))
    theta = np.zeros((length, 2))  # identical on every rank
    start = time.time()
    for epoch in range(epochs):
        probs = _softmax(theta)
        states, actions, rtg = [], [], []
        ep_rewards = []
        o, _ = env.reset()
        for t in range(steps_per_epoch):
            s = int(np.argmax(o))
            a = int(rng.random() < probs[s, 1])
            o, r, terminated, truncated, _ = env.step(a)
            states.append(s)
            actions.append(a)
            ep_rewards.append(r)
            if terminated or truncated or t == steps_per_epoch - 1:
                rets = np.cumsum(ep_rewards[::-1])[::-1]  # reward to go
                rtg.extend(rets.tolist())
                if terminated or truncated:  # a cut episode's return is not a real return
                    logger.store(EpRet=float(sum(ep_rewards)), EpLen=len(ep_rewards))
                ep_rewards = []
                o, _ = env.reset()
        states, actions = np.asarray(states), np.asarray(actions)
        adv = np.asarray(rtg, dtype=np.float64)
        adv_mean, adv_std = mpi_statistics_scalar(adv)
        adv = (adv - adv_mean) / (adv_std + 1e-8)
        # grad of mean(log pi(a|s) * adv) for a tabular softmax: (onehot(a) - pi(.|s)) * adv
        grad_logp = -probs[states]
        grad_logp[np.arange(len(actions)), actions] += 1.0
        grad = np.zeros_like(theta)
        np.add.at(grad, states, grad_logp * adv[:, None])
        grad = mpi_avg(grad / len(actions))
        theta += lr * grad
        entropy = -(probs[states] * np.log(probs[states])).sum(axis=1)
        logger.store(LossPi=-float(np.mean(np.log(probs[states, actions]) * adv)),
                     Entropy=entropy)
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("EpRet", with_min_and_max=True)
        logger.log_tabular("EpLen", average_only=True)
        logger.log_tabular("TotalEnvInteracts", (epoch + 1) * steps_per_epoch * num_procs())
        logger.log_tabular("LossPi", average_only=True)
        logger.log_tabular("Entropy", average_only=True)
        logger.log_tabular("Time", time.time() - start)
        logger.dump_tabular()
    logger.close()
    return theta
