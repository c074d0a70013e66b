"""The ``demo`` command: a 2-variant grid of the numpy corridor example on MPI, then a plot."""

from __future__ import annotations

import argparse
import importlib
import os
import os.path as osp
import shutil
import sys

from spinfast._cli.common import COMMANDS, PROG, check_flags

__all__ = ["DEMO_EXAMPLES", "mpi_available", "run_demo"]


def mpi_available():
    """Return True if mpi4py imports and an ``mpiexec``/``mpirun`` is beside Python or on PATH."""
    try:
        importlib.import_module("mpi4py")
    except ImportError:
        return False
    beside = osp.join(osp.dirname(sys.executable), "mpiexec")
    return osp.exists(beside) or shutil.which("mpiexec") is not None \
        or shutil.which("mpirun") is not None


DEMO_EXAMPLES = f"""\
The demo trains spinfast.examples_demo.train (REINFORCE on a slippery corridor, numpy only)
for two learning rates, each on --cpu MPI ranks whose gradients are averaged with mpi_avg,
logging with an EpochLogger; then it plots AverageEpRet against TotalEnvInteracts.

examples:
  {PROG} demo
  {PROG} demo --data_dir /tmp/spinfast-demo --epochs 50 --save demo.svg
  {PROG} demo --cpu 1
"""


def _demo_parser():
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo", description=COMMANDS["demo"] + ".", epilog=DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=None,
                        help="where results go (default $SPINFAST_DATA_DIR, else ./data)")
    parser.add_argument("--cpu", type=int, default=2, help="MPI ranks per variant (default 2)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--lr", type=float, nargs="+", default=[2.0, 10.0],
                        help="learning rates, one variant each (default 2 10)")
    parser.add_argument("--save", default=None, metavar="FILE",
                        help="plot file (default <data_dir>/demo.png)")
    return parser


def run_demo(argv):
    """Run ``demo`` with the arguments ``argv``; return the exit status."""
    from spinfast import examples_demo, user_config
    from spinfast.run_utils import ExperimentGrid

    parser = _demo_parser()
    check_flags(parser, argv, "demo")
    args = parser.parse_args(argv)
    if args.cpu < 1 or args.epochs < 1:
        parser.error("--cpu and --epochs must be >= 1")
    data_dir = osp.abspath(args.data_dir or user_config.DEFAULT_DATA_DIR)
    cpu = args.cpu
    if cpu > 1 and not mpi_available():
        print(f"Note: MPI is not available (pip install 'spinfast[mpi]'); running the demo "
              f"with 1 process instead of {cpu}.")
        cpu = 1
    grid = ExperimentGrid(name="demo")
    grid.add("lr", list(args.lr))
    grid.add("epochs", args.epochs)
    grid.add("seed", 0)
    saved_wait = user_config.WAIT_BEFORE_LAUNCH
    user_config.WAIT_BEFORE_LAUNCH = 0  # nothing to review in a demo
    try:
        results = grid.run(examples_demo.train, num_cpu=cpu, data_dir=data_dir, parallel="auto")
    finally:
        user_config.WAIT_BEFORE_LAUNCH = saved_wait
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "ok":
            _print_progress_summary(r.name, osp.join(r.output_dir, "progress.txt"))
    if failed:
        print(f"spinfast demo: {len(failed)} variant(s) failed; see "
              f"{', '.join(str(r.log_path) for r in failed)}", file=sys.stderr)
        return 1
    try:
        from spinfast.plot import make_plots

        figs = make_plots([osp.dirname(r.output_dir) + os.sep for r in results],
                          xaxis="TotalEnvInteracts", values=["AverageEpRet"], smooth=3,
                          save=args.save or osp.join(data_dir, "demo.png"))
    except ImportError as exc:
        print(f"spinfast demo: plotting needs pandas, seaborn and matplotlib ({exc}); "
              f"install them with pip install 'spinfast[plot]'", file=sys.stderr)
        return 1
    print(f"\nDemo done. Learning curves: {figs[0].path}")
    print(f"Plot again with: {PROG} plot {osp.join(data_dir, 'demo')} -x TotalEnvInteracts "
          f"-y AverageEpRet -s 3")
    return 0


def _print_progress_summary(name, path):
    try:
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        col = rows[0].index("AverageEpRet")
        first, last = float(rows[1][col]), float(rows[-1][col])
    except (OSError, ValueError, IndexError):
        return
    print(f"{name}: AverageEpRet {first:.2f} (epoch 0) -> {last:.2f} (epoch {len(rows) - 2})")

