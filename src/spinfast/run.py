"""The spinfast command line: ``python -m spinfast.run COMMAND ...`` (also ``spinfast ...``).

Commands: ``plot``, ``test_policy``, ``demo``, ``compat enable|disable``, ``info``, Spinning Up's
algorithm names (``ppo``, ``sac_pytorch``, ``vpg_tf1`` ...: its algorithms, when ``spinup`` is
importable), and ``MODULE:FUNCTION`` (or a registered name) to run any function over a grid
of hyperparameters, as ``python -m spinup.run`` does for Spinning Up's algorithms.
``python -m spinfast.run --help`` lists them with examples.

Usage errors (a wrong name, flag or value; a run folder without saves) are printed on one
line as ``spinfast: error: ...`` with exit status 2 (1 for ``plot``/``test_policy`` input
errors); any other exception shows its traceback.
"""

from __future__ import annotations

import sys

from spinfast._cli.common import COMMANDS, PROG, UsageError, check_flags, suggest
from spinfast._cli.demo import DEMO_EXAMPLES as DEMO_EXAMPLES
from spinfast._cli.demo import run_demo
from spinfast._cli.executors import EXECUTORS, make_executor, slurm_parameters
from spinfast._cli.executors import SLURM_PREFIX as SLURM_PREFIX
from spinfast._cli.grid import RUN_KEYS, SUBSTITUTIONS, load_function, parse_grid_args, run_grid
from spinfast._cli.grid import parse_value as parse_value
from spinfast._cli.info import run_info
from spinfast._cli.spinup import (
    MPI_COMPATIBLE_ALGOS,
    SPINUP_ALGOS,
    check_spinup_args,
    load_spinup_algo,
    run_compat,
    spinup_algo,
)

# The commands live in spinfast._cli (one module each); this module holds the help and the
# dispatch. UsageError, parse_value, PROG, COMMANDS, SLURM_PREFIX and DEMO_EXAMPLES stay
# importable here.
__all__ = ["main", "parse_grid_args", "REGISTRY", "SUBSTITUTIONS", "RUN_KEYS", "EXECUTORS",
           "make_executor", "slurm_parameters", "SPINUP_ALGOS", "MPI_COMPATIBLE_ALGOS"]

#: Names usable as COMMAND, besides MODULE:FUNCTION (more come from the entry point group
#: ``spinfast.experiments`` of installed packages).
REGISTRY = {"corridor_pg": "spinfast.examples_demo:train"}

# Messages of the errors that plot / test_policy raise about their input (the folder or the
# flags): shown on one line. Any other exception keeps its traceback.
_INPUT_ERRORS = {
    "plot": ("make_plots(): ", "plot_data(): ", "get_all_datasets(): ",
             "make_timing_plots(): ", "make_aggregate_plots(): ", "collect_scores(): ",
             "load_normalization(): "),
    "test_policy": ("load_policy_and_env(): ", "run_policy(): environment not found",
                    "run_policy(): num_episodes"),
}

HELP = f"""\
usage: {PROG} COMMAND [ARGS...]        (the console script 'spinfast' is the same)

commands:
  plot           {COMMANDS['plot']}
  test_policy    {COMMANDS['test_policy']}
  demo           {COMMANDS['demo']}
  compat         {COMMANDS['compat']}
  info           {COMMANDS['info']}
  ALGO           Spinning Up's algorithms: {', '.join(SPINUP_ALGOS)}, each also as
                 ALGO_pytorch / ALGO_tf1 (needs Spinning Up importable)
  MODULE:FUNC    run FUNC of MODULE (importable, or a .py module in the current folder)
                 once per combination of the values given to its parameters
  NAME           a registered experiment: {', '.join(f'{k} ({v})' for k, v in REGISTRY.items())}
                 and entry points of the group 'spinfast.experiments'

Each command takes --help (for MODULE:FUNC it shows FUNC's docstring).

grid flags (MODULE:FUNC and NAME):
  --KEY V1 V2 ...     values of parameter KEY, read as Python literals (1, 0.5, [64,64],
                      True, None...); anything else is a string. Several values make a grid.
  --KEY[SH] V ...     the same, with SH as KEY's shorthand in experiment names
  --a:b:c V           nested parameter: a={{'b': {{'c': V}}}}
  --FLAG              alone means True
  --exp_name NAME     grid name (default cmd_FUNC)
  --cpu N             MPI processes per variant, or auto (also --num_cpu)
  --data_dir DIR      where results go (default $SPINFAST_DATA_DIR, else ./data)
  --datestamp         date and time in folder names (also --dt)
  --parallel K        run K variants at once (or auto), logs in <run folder>.log, summary
  --skip_finished     skip variants whose folder already holds a finished run
  --resume            skip finished variants, restart the others in their folders with
                      logger_kwargs resume=True
  --executor E        submit each variant as a job: slurm (submitit's SlurmExecutor) or local
                      (submitit's LocalExecutor); job logs in DATA_DIR/submitit. Each job
                      runs its --cpu N MPI ranks with srun under Slurm, else mpiexec
  --slurm_KEY V       submitit Slurm parameter KEY (sbatch's --KEY): --slurm_partition P,
                      --slurm_time MINUTES (also the local executor's limit; default 60),
                      --slurm_cpus_per_task N (default: --cpu), --slurm_mem_gb ...
  --verbose           first print the MPI library and the launcher the ranks start with
                      (as '{PROG} info'); also passed on if FUNC takes verbose
  --env E             --env_name E: the function gets env_fn making gymnasium env E
                      (with gym's old API for Spinning Up's algorithms)
  --hid H / --act A   --ac_kwargs:hidden_sizes H / --ac_kwargs:activation A
                      (A may be a dotted name such as torch.nn.ReLU)

examples:
  {PROG} demo
  {PROG} ppo --env CartPole-v1 --exp_name ppo-cartpole --cpu 2 --epochs 50
  {PROG} plot data/demo -s 3 --save demo.png
  {PROG} test_policy data/ppo/ppo_s0 -n 10 -nr
  {PROG} spinfast.examples_demo:train --lr 0.1 0.5 --seed 0 1 --epochs 20 --cpu 2
  {PROG} corridor_pg --length 6 10 --exp_name corridor --parallel 2
  {PROG} mypkg.algos:ppo --seed 0 1 2 --cpu 4 --executor slurm --slurm_partition gpu \\
      --slurm_time 600
  {PROG} mypkg.algos:ppo --env CartPole-v1 --hid "[64,64]" --act torch.nn.Tanh
  {PROG} info
"""


def _run_module_command(command, argv):
    """Run the ``plot`` or ``test_policy`` command: the module's own parser and main."""
    import importlib

    module = importlib.import_module(f"spinfast.{command}")
    check_flags(module.build_parser(), argv, command)
    try:
        return module.main(argv, prog=f"{PROG} {command}")
    except (FileNotFoundError, ValueError, TypeError) as exc:
        if not str(exc).startswith(_INPUT_ERRORS[command]):
            raise
        print(f"spinfast: error: {exc}", file=sys.stderr)
        return 1


def _entry_point_registry():
    try:
        from importlib.metadata import entry_points

        return {ep.name: ep.value for ep in entry_points(group="spinfast.experiments")}
    except Exception:  # a broken installed distribution must not break the command line
        return {}


def _all_registered():
    return {**_entry_point_registry(), **REGISTRY}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def _dispatch(argv):
    if not argv:
        print(HELP, file=sys.stderr)
        return 2
    cmd, rest = argv[0], list(argv[1:])
    if cmd in ("-h", "--help", "help"):
        print(HELP)
        return 0
    if cmd in ("plot", "test_policy"):
        return _run_module_command(cmd, rest)
    if cmd == "demo":
        return run_demo(rest)
    if cmd == "compat":
        return run_compat(rest)
    if cmd == "info":
        return run_info(rest)
    full = spinup_algo(cmd)
    if full is not None:
        check_spinup_args(full, rest)
        return run_grid(f"spinup.{full}", load_spinup_algo(cmd, full), rest,
                        exp_name="cmd_" + full)
    registered = _all_registered()
    if ":" in cmd:
        return run_grid(cmd, load_function(cmd), rest)
    if cmd in registered:
        return run_grid(cmd, load_function(registered[cmd]), rest)
    if cmd.startswith("-"):
        raise UsageError(f"expected a command before {cmd!r}; commands: "
                         f"{', '.join([*COMMANDS, *registered])}, or MODULE:FUNCTION")
    raise UsageError(f"unknown command {cmd!r}"
                     + suggest(cmd, [*COMMANDS, *registered, *SPINUP_ALGOS])
                     + f" Commands: {', '.join([*COMMANDS, *registered])}, or "
                     f"MODULE:FUNCTION (see {PROG} --help)")


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Status 0 on success, 1 when an experiment failed, 2 for a usage error (printed as
    ``spinfast: error: ...`` with the closest valid names).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv)
    except UsageError as exc:
        print(f"spinfast: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
