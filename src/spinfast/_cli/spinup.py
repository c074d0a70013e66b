"""Spinning Up's algorithm names (``ppo``, ``sac_pytorch``, ``vpg_tf1``...) and ``compat``.

An algorithm name runs Spinning Up's own algorithm (imported through :mod:`spinfast.compat`)
over a grid, as ``python -m spinup.run`` does; ``compat enable|disable|status`` manages the
``.pth`` hook that makes Spinning Up's own programs use spinfast.
"""

from __future__ import annotations

import os.path as osp
import sys

from spinfast._cli.common import PROG, UsageError, install_compat
from spinfast._cli.grid import check_env_names, parse_grid_args

__all__ = ["SPINUP_ALGOS", "MPI_COMPATIBLE_ALGOS", "spinup_algo", "check_spinup_args",
           "load_spinup_algo", "run_compat"]

#: Spinning Up's algorithm names (each also with ``_pytorch`` and ``_tf1``); without a suffix
#: the backend comes from ``spinfast.user_config.DEFAULT_BACKEND``.
SPINUP_ALGOS = ("vpg", "trpo", "ppo", "ddpg", "td3", "sac")

#: The algorithms of Spinning Up that run on several MPI processes (``--cpu N``).
MPI_COMPATIBLE_ALGOS = ("vpg", "trpo", "ppo")


def spinup_algo(cmd):
    """Return the full name if ``cmd`` names a Spinning Up algorithm, else None.

    ``cmd`` is ``ALGO`` (backend from ``user_config.DEFAULT_BACKEND``), ``ALGO_pytorch`` or
    ``ALGO_tf1``; the full name has the backend.
    """
    base, _, backend = cmd.rpartition("_")
    if cmd in SPINUP_ALGOS:
        from spinfast import user_config

        base, backend = cmd, user_config.DEFAULT_BACKEND[cmd]
        print(f"\n\nUsing default backend ({backend}) for {cmd}.\n")
    elif not (base in SPINUP_ALGOS and backend in ("pytorch", "tf1")):
        return None
    return f"{base}_{backend}"


def check_spinup_args(algo, args):
    """Check what Spinning Up's command line checks, before its algorithm is imported."""
    if any(a in ("-h", "--help", "help") for a in args):
        return
    arg_dict, _ = parse_grid_args(args)
    cpus = arg_dict.get("num_cpu", [1])
    if cpus != [1] and algo.rpartition("_")[0] not in MPI_COMPATIBLE_ALGOS:
        raise UsageError(f"{algo} can't be run with --cpu {' '.join(map(str, cpus))}; only "
                         f"{', '.join(MPI_COMPATIBLE_ALGOS)} run on several MPI processes")
    if "env_name" not in arg_dict:
        raise UsageError(f"you did not give a value for --env (--env_name) to {algo}; add "
                         f"one, e.g. --env CartPole-v1")
    check_env_names(arg_dict["env_name"])


def load_spinup_algo(cmd, full):
    """Import Spinning Up's algorithm ``full`` (e.g. ``ppo_pytorch``) through compat.

    Installs :mod:`spinfast.compat`, so the algorithm runs on spinfast's utilities, gym's old
    API over gymnasium and (TF1) ``tf.compat.v1``.

    Raises:
        UsageError: Spinning Up is not importable.
    """
    install_compat()
    from spinfast import compat

    if "spinup" not in sys.modules and not compat._real_package_path("spinup"):
        raise UsageError(f"{cmd!r} is a Spinning Up algorithm, and Spinning Up is not "
                         f"importable; install it (pip install --no-deps -e "
                         f"/path/to/spinningup) or put its folder on PYTHONPATH")
    import spinup

    return getattr(spinup, full)


def run_compat(argv):
    """Run ``compat enable|disable|status`` (or its help); return the exit status."""
    from spinfast import compat

    if argv in (["-h"], ["--help"], ["help"]):
        print(f"usage: {PROG} compat enable|disable|status\n\n'compat enable' makes Spinning "
              f"Up's own programs (python -m spinup.run ...) use spinfast in this Python "
              f"environment; 'compat disable' undoes it.\n"
              f"'enable' writes {compat.PTH_NAME} into site-packages "
              f"({osp.dirname(compat.pth_path())}), whose one line calls "
              f"spinfast.compat.install() when Python starts.")
        return 0
    if len(argv) != 1 or argv[0] not in ("enable", "disable", "status"):
        raise UsageError(f"compat takes one of enable, disable, status; got {argv!r} (see "
                         f"{PROG} compat --help)")
    if argv[0] == "enable":
        path = compat.enable()
        print(f"spinfast compat enabled: {path}\nEvery Python of {sys.prefix} now resolves "
              f"spinup.utils.* to spinfast (and gym to gymnasium's adapter when no gym is "
              f"installed). Undo with: {PROG} compat disable")
    elif argv[0] == "disable":
        path = compat.disable()
        print(f"spinfast compat disabled: removed {path}" if path else
              f"spinfast compat was not enabled in {sys.prefix} (no {compat.pth_path()})")
    else:
        on = osp.exists(compat.pth_path())
        print(f"spinfast compat is {'enabled' if on else 'disabled'} in {sys.prefix} "
              f"({compat.pth_path()})")
    return 0

