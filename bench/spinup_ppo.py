"""Spinning Up's own PyTorch ppo on spinfast's utilities against Spinning Up's own utilities.

Usage::

    OMP_NUM_THREADS=1 python bench/spinup_ppo.py [--rounds 3] [--epochs 6] [--steps 4000]

Needs Spinning Up's source (``../shared/clients/spinningup`` from the repository root, or
``--spinup PATH``). Both sides run Spinning Up's unchanged ``spinup/algos/pytorch/ppo/ppo.py``
on CartPole-v1 (gym's old API through :mod:`spinfast.gym_compat`, the same for both), same
seeds, in fresh processes, alternating side by side round after round (the VM's speed drifts
by minutes), on 1 and 2 MPI ranks:

- ``spinfast``: ``spinfast.compat.install()``: ``spinup.utils.*`` are spinfast's modules;
- ``spinup``: the same placeholders, but ``spinup.utils.*`` load Spinning Up's own files
  (``logx`` imports TensorFlow and PyTorch, ``mpi_tools`` mpi4py at import).

Reported: the median time per epoch (from the ``Time`` column of progress.txt, epochs after
the first), and the start-up time (import of the utilities ppo uses: ``logx``,
``mpi_tools``, ``mpi_pytorch``, in a fresh interpreter), with ratios spinup / spinfast.

Also the program each run executes: ``python bench/spinup_ppo.py --child SIDE OUT EPOCHS
STEPS`` and ``--startup SIDE``.

``mpiexec -n 2 python bench/spinup_ppo.py --walk [--rounds 5]`` (issue 20) times, with the
spinfast this interpreter imports, one policy update of Spinning Up's ppo (its default
``MLPActorCritic`` for CartPole-v1, hidden (64, 64), a 4000-step batch: ``compute_loss_pi``,
backward, ``mpi_avg_grads(ac.pi)``, Adam step; ppo makes 80 per epoch) and
``mpi_avg_grads(ac.pi)`` alone, in alternation; rank 0 prints the medians and the share of the
update. Each round times both module walks in alternation: ``module.parameters()`` (what
``mpi_pytorch`` uses) and issue 20's walk through the modules' private ``_parameters`` and
``_modules`` tables (:func:`_table_walk`, kept here only as the measured alternative, issue 30).

``mpiexec -n 2 python bench/spinup_ppo.py --loop [--rounds 4] [--epochs 8]`` (issue 30) runs
Spinning Up's whole ppo training loop (CartPole-v1, 4000 steps an epoch) with each walk in
turn, round after round (both with the round's seed: the same episodes and updates), and
prints the mean time per epoch (the first epoch of each run left out) and the time spent
inside the walk per epoch, with each walk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPINUP = ROOT.parent / "shared" / "clients" / "spinningup"


def _setup(side):
    import spinfast.compat

    spinfast.compat.install()
    if side == "spinup":  # placeholders stay; spinup.utils.* come from Spinning Up's files
        spinfast.compat.ALIASES.clear()


def child(side, out, epochs, steps):
    """Run Spinning Up's ppo with ``side``'s utilities into ``out``."""
    _setup(side)
    import gym
    from spinup import ppo_pytorch
    from spinup.utils.mpi_tools import proc_id

    def env_fn():  # seeded, so both sides see the same episodes (Spinning Up seeds no env)
        env = gym.make("CartPole-v1")
        env.seed(1000 + proc_id())
        return env

    # CPU time of this process at each epoch's end: on a shared VM, wall time also counts
    # the time other programs held the cores.
    import json

    from spinup.utils.logx import EpochLogger

    cpu, dump = [], EpochLogger.dump_tabular

    def timed_dump(self):
        cpu.append(time.process_time())
        dump(self)

    EpochLogger.dump_tabular = timed_dump
    ppo_pytorch(env_fn, seed=0, steps_per_epoch=steps, epochs=epochs,
                logger_kwargs=dict(output_dir=out, exp_name=side))
    with open(os.path.join(out, f"cpu{proc_id()}.json"), "w") as f:
        json.dump(cpu, f)


def _table_walk(module, trainable_only):
    """Issue 20's walk: ``module.parameters()``'s list through the private module tables.

    Pre-order, each parameter once; only for trees of plain ``nn.Module`` classes (the ones
    timed here). Removed from ``mpi_pytorch`` by issue 30, kept here as the measured side.
    """
    out, seen_params, seen_modules = [], set(), set()

    def collect(m):
        seen_modules.add(m)
        for p in m._parameters.values():
            if p is not None and p not in seen_params:
                seen_params.add(p)
                out.append(p)
        for child in m._modules.values():
            if child is not None and child not in seen_modules:
                collect(child)

    collect(module)
    return [p for p in out if p.requires_grad] if trainable_only else out


WALKS = {"module.parameters()": None, "private tables": _table_walk}


def _use_walk(name):
    """Make ``mpi_pytorch`` walk modules with ``WALKS[name]`` (None: its own)."""
    from spinfast import mpi_pytorch

    own = WALKS.setdefault("_own", mpi_pytorch._parameters)
    mpi_pytorch._parameters = WALKS[name] or own


def walk(rounds):
    """Time one ppo policy update and mpi_avg_grads alone, with each walk (see above)."""
    import torch

    _setup("spinfast")
    import gym
    from spinup.algos.pytorch.ppo import core

    from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi, sync_params
    from spinfast.mpi_tools import proc_id

    setup_pytorch_for_mpi()
    torch.manual_seed(proc_id())
    obs_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    ac = core.MLPActorCritic(obs_space, gym.spaces.Discrete(2))
    sync_params(ac)
    opt = torch.optim.Adam(ac.pi.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(proc_id())
    obs = torch.randn(4000, 4, generator=gen)
    act = torch.randint(0, 2, (4000,), generator=gen)
    adv = torch.randn(4000, generator=gen)
    with torch.no_grad():
        logp_old = ac.pi(obs, act)[1]

    def update():  # ppo.py's update(): one of train_pi_iters = 80 policy steps
        opt.zero_grad()
        _, logp = ac.pi(obs, act)
        ratio = torch.exp(logp - logp_old)
        clip_adv = torch.clamp(ratio, 0.8, 1.2) * adv
        loss = -(torch.min(ratio * adv, clip_adv)).mean()
        loss.backward()
        mpi_avg_grads(ac.pi)
        opt.step()

    names = [n for n in WALKS if not n.startswith("_")]
    updates = {n: [] for n in names}
    calls = {n: [] for n in names}
    walks = {n: [] for n in names}  # the walk of ac.pi alone, in this process (no MPI)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            _use_walk(name)
            fn = WALKS[name] or WALKS["_own"]
            for _ in range(50):
                t0 = time.perf_counter()
                for _ in range(100):
                    fn(ac.pi, True)
                walks[name].append((time.perf_counter() - t0) / 100)
            for _ in range(80):
                t0 = time.perf_counter()
                update()
                updates[name].append(time.perf_counter() - t0)
            for _ in range(400):
                t0 = time.perf_counter()
                mpi_avg_grads(ac.pi)
                calls[name].append(time.perf_counter() - t0)
    _use_walk(names[0])
    if proc_id() == 0:
        for name in names:
            u, c = statistics.median(updates[name]), statistics.median(calls[name])
            print(f"{name}: policy update {u * 1e3:.3f} ms; mpi_avg_grads {c * 1e6:.1f} us "
                  f"({100 * c / u:.2f}% of the update)")
        u, v = (statistics.median(updates[n]) for n in names)
        print(f"the private walk saves {100 * (u - v) / u:+.2f}% of a policy update")
        a, b = (min(walks[n]) for n in names)
        print(f"the walk of ac.pi alone (best of {len(walks[names[0]])} x 100 calls): "
              f"{names[0]} {a * 1e6:.2f} us, {names[1]} {b * 1e6:.2f} us; saves "
              f"{(a - b) * 1e6:.2f} us a call, {100 * (a - b) / u:.3f}% of a policy update")


def loop(rounds, epochs, steps):
    """Run ppo's whole training loop with each walk in alternation (see the module docstring)."""
    _setup("spinfast")
    import gym
    from spinup import ppo_pytorch
    from spinup.utils.logx import EpochLogger
    from spinup.utils.mpi_tools import proc_id

    from spinfast import mpi_pytorch

    names = [n for n in WALKS if not n.startswith("_")]
    inside = [0.0, 0]  # seconds spent in the walk, and its calls, this epoch

    def timed(fn):
        def walk(module, trainable_only):
            t0 = time.perf_counter()
            out = fn(module, trainable_only)
            inside[0] += time.perf_counter() - t0
            inside[1] += 1
            return out
        return walk

    stamps, dump = [], EpochLogger.dump_tabular

    def timed_dump(self):
        stamps.append((time.perf_counter(), time.process_time(), *inside))
        inside[:] = [0.0, 0]
        dump(self)

    EpochLogger.dump_tabular = timed_dump

    def env_fn():
        env = gym.make("CartPole-v1")
        env.seed(1000 + proc_id())
        return env

    wall, cpu, walk_s, calls = ({n: [] for n in names} for _ in range(4))
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):  # same seed: the same work
                _use_walk(name)
                mpi_pytorch._parameters = timed(mpi_pytorch._parameters)
                stamps.clear()
                ppo_pytorch(env_fn, seed=r, steps_per_epoch=steps, epochs=epochs,
                            logger_kwargs=dict(output_dir=os.path.join(tmp, f"{r}-{name}")))
                for a, b in zip(stamps, stamps[1:]):  # epoch 0 also builds the model
                    wall[name].append(b[0] - a[0])
                    cpu[name].append(b[1] - a[1])
                    walk_s[name].append(b[2])
                    calls[name].append(b[3])
    if proc_id() == 0:
        print(f"\nSpinning Up ppo_pytorch, CartPole-v1, {steps} steps/epoch, {rounds} rounds x "
              f"{epochs} epochs per walk, runs alternating (same seed in a round), means per "
              f"epoch (the first of each run left out)\n")
        print("| walk | epochs | wall | CPU (rank 0) | in the walk (rank 0) | walk calls |\n"
              "|---|---|---|---|---|---|")
        for name in names:
            w = statistics.mean(walk_s[name])
            print(f"| {name} | {len(wall[name])} | {statistics.mean(wall[name]):.3f} s | "
                  f"{statistics.mean(cpu[name]):.3f} s | {w * 1e3:.3f} ms "
                  f"({100 * w / statistics.mean(wall[name]):.3f}% of the epoch) | "
                  f"{statistics.mean(calls[name]):.0f} |")
        for what, t in (("wall", wall), ("CPU", cpu)):
            a, b = (statistics.mean(t[n]) for n in names)
            spread = max(statistics.stdev(t[n]) / len(t[n]) ** 0.5 for n in names)
            print(f"the private walk saves {100 * (a - b) / a:+.2f}% of an epoch ({what}; "
                  f"standard error of a mean {100 * spread / a:.2f}%)")
        a, b = (statistics.mean(walk_s[n]) for n in names)
        epoch = statistics.mean(wall[names[0]])
        print(f"time in the walk: the private walk saves {(a - b) * 1e3:.3f} ms, "
              f"{100 * (a - b) / epoch:.3f}% of an epoch")


def startup(side):
    """Import the utilities Spinning Up's ppo imports, with ``side``'s modules."""
    _setup(side)
    import spinup.utils.logx  # noqa: F401
    import spinup.utils.mpi_pytorch  # noqa: F401
    import spinup.utils.mpi_tools  # noqa: F401


def _env(spinup_path):
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join(filter(None, [str(spinup_path),
                                                         os.environ.get("PYTHONPATH")])))


def _epoch_times(progress):
    lines = Path(progress).read_text().splitlines()
    col = lines[0].split("\t").index("Time")
    t = [float(line.split("\t")[col]) for line in lines[1:]]
    return [b - a for a, b in zip(t, t[1:])]


def _work(progress):
    """The columns that fix how much work an epoch did (returns, PPO's early stop)."""
    lines = Path(progress).read_text().splitlines()
    head = lines[0].split("\t")
    cols = [head.index(k) for k in ("AverageEpRet", "StopIter")]
    return [tuple(float(line.split("\t")[c]) for c in cols) for line in lines[1:]]


def main():
    """Run the interleaved comparison and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--spinup", default=str(SPINUP))
    p.add_argument("--child", nargs=4, metavar=("SIDE", "OUT", "EPOCHS", "STEPS"))
    p.add_argument("--startup", metavar="SIDE")
    p.add_argument("--walk", action="store_true", help="time mpi_avg_grads in a ppo update")
    p.add_argument("--loop", action="store_true", help="time ppo's loop with each walk")
    args = p.parse_args()
    if args.walk or args.loop:
        sys.path.insert(0, args.spinup)
    if args.walk:
        return walk(args.rounds)
    if args.loop:
        return loop(args.rounds, args.epochs, args.steps)
    if args.child:
        side, out, epochs, steps = args.child
        return child(side, out, int(epochs), int(steps))
    if args.startup:
        return startup(args.startup)
    env = _env(args.spinup)
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    sides = ("spinfast", "spinup")
    epoch = {(s, n): [] for s in sides for n in args.ranks}
    cpu = {(s, n): [] for s in sides for n in args.ranks}
    start = {s: [] for s in sides}
    work = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for s in (sides if r % 2 == 0 else sides[::-1]):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--startup", s], env=env, check=True)
                start[s].append(time.perf_counter() - t0)
                for n in args.ranks:
                    out = os.path.join(tmp, f"{s}-{n}-{r}")
                    cmd = [sys.executable, __file__, "--child", s, out, str(args.epochs),
                           str(args.steps)]
                    if n > 1:
                        cmd = [mpiexec, "-n", str(n), *cmd]
                    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                    epoch[(s, n)] += _epoch_times(os.path.join(out, "progress.txt"))
                    work[(s, n, r)] = _work(os.path.join(out, "progress.txt"))
                    t = json.loads(Path(out, "cpu0.json").read_text())
                    cpu[(s, n)] += [b - a for a, b in zip(t, t[1:])]
    print(f"\nSpinning Up ppo_pytorch, CartPole-v1, {args.steps} steps/epoch, "
          f"{args.rounds} rounds x {args.epochs} epochs (medians)\n")
    print("| measure | spinfast | Spinning Up's utils | ratio |\n|---|---|---|---|")
    for n in args.ranks:
        a, b = (statistics.median(epoch[(s, n)]) for s in sides)
        print(f"| time per epoch, {n} rank{'s' if n > 1 else ''} | {a:.3f} s | {b:.3f} s | "
              f"{b / a:.2f}x |")
        a, b = (statistics.median(cpu[(s, n)]) for s in sides)
        print(f"| CPU time per epoch (rank 0), {n} rank{'s' if n > 1 else ''} | {a:.3f} s | "
              f"{b:.3f} s | {b / a:.2f}x |")
    # Spinning Up sums its statistics in float32, spinfast in float64: equal to ~1e-6.
    same = all(np.allclose(work[("spinfast", n, r)], work[("spinup", n, r)], rtol=1e-5)
               for n in args.ranks for r in range(args.rounds))
    print(f"| same episodes and early stops on both sides | {same} | | |")
    a, b = (statistics.median(start[s]) for s in sides)
    print(f"| start-up (python + import logx, mpi_tools, mpi_pytorch) | {a:.2f} s | {b:.2f} s "
          f"| {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
