"""The spinfast command line: ``python -m spinfast.run COMMAND ...`` (also ``spinfast ...``).

Commands: ``plot``, ``test_policy``, ``demo``, ``compat enable|disable``, Spinning Up's
algorithm names (``ppo``, ``sac_pytorch``, ``vpg_tf1`` ...: its algorithms, when ``spinup`` is
importable), and ``MODULE:FUNCTION`` (or a registered name) to run any function over a grid
of hyperparameters, as ``python -m spinup.run`` does for Spinning Up's algorithms.
``python -m spinfast.run --help`` lists them with examples.

Usage errors (a wrong name, flag or value; a run folder without saves) are printed on one
line as ``spinfast: error: ...`` with exit status 2 (1 for ``plot``/``test_policy`` input
errors); any other exception shows its traceback.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import inspect
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

__all__ = ["main", "parse_grid_args", "REGISTRY", "SUBSTITUTIONS", "RUN_KEYS", "EXECUTORS",
           "make_executor", "slurm_parameters", "SPINUP_ALGOS", "MPI_COMPATIBLE_ALGOS"]

PROG = "python -m spinfast.run"

#: Names usable as COMMAND, besides MODULE:FUNCTION (more come from the entry point group
#: ``spinfast.experiments`` of installed packages).
REGISTRY = {"corridor_pg": "spinfast.examples_demo:train"}

#: Spinning Up's shortcuts for flag names.
SUBSTITUTIONS = {"env": "env_name", "hid": "ac_kwargs:hidden_sizes",
                 "act": "ac_kwargs:activation", "cpu": "num_cpu", "dt": "datestamp"}

#: Spinning Up's algorithm names (each also with ``_pytorch`` and ``_tf1``); without a suffix
#: the backend comes from ``spinfast.user_config.DEFAULT_BACKEND``.
SPINUP_ALGOS = ("vpg", "trpo", "ppo", "ddpg", "td3", "sac")

#: The algorithms of Spinning Up that run on several MPI processes (``--cpu N``).
MPI_COMPATIBLE_ALGOS = ("vpg", "trpo", "ppo")

#: Flags that configure :meth:`ExperimentGrid.run` rather than the function (one value each).
RUN_KEYS = ("num_cpu", "data_dir", "datestamp", "parallel", "skip_finished", "executor",
            "resume")

#: ``--executor`` values; ``--slurm_KEY V`` flags set submitit's Slurm parameter KEY.
EXECUTORS = ("slurm", "local")
SLURM_PREFIX = "slurm_"

COMMANDS = {
    "plot": "plot learning curves from experiment folders (PNG/SVG/PDF with --save)",
    "test_policy": "run a saved policy (PyTorch or TF1, spinfast's or Spinning Up's run) in "
                   "its saved env",
    "demo": "train a small numpy policy-gradient example as a 2-variant grid on 2 MPI "
            "ranks each, then plot it",
    "compat": "enable|disable|status: Spinning Up's own programs (python -m spinup.run) "
              "use spinfast",
}

# Messages of the errors that plot / test_policy raise about their input (the folder or the
# flags): shown on one line. Any other exception keeps its traceback.
_INPUT_ERRORS = {
    "plot": ("make_plots(): ", "plot_data(): ", "get_all_datasets(): ",
             "make_timing_plots(): "),
    "test_policy": ("load_policy_and_env(): ", "run_policy(): environment not found",
                    "run_policy(): num_episodes"),
}

# Dotted values whose first part is one of these are resolved to Python objects
# (e.g. --act torch.nn.Tanh), as Spinning Up's eval did; everything else stays a string.
_OBJECT_ROOTS = {"torch": "torch", "tf": "tensorflow", "tensorflow": "tensorflow",
                 "np": "numpy", "numpy": "numpy", "math": "math"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")

HELP = f"""\
usage: {PROG} COMMAND [ARGS...]        (the console script 'spinfast' is the same)

commands:
  plot           {COMMANDS['plot']}
  test_policy    {COMMANDS['test_policy']}
  demo           {COMMANDS['demo']}
  compat         {COMMANDS['compat']}
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
"""


class UsageError(Exception):
    """A command-line mistake: printed as ``spinfast: error: ...`` with exit status 2."""


def _suggest(name, candidates):
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""


# ---------------------------------------------------------------------------------------------
# Subcommands with fixed flags
# ---------------------------------------------------------------------------------------------

def _check_flags(parser, argv, command):
    """Raise UsageError for an option ``parser`` does not know, naming the closest ones."""
    known = [s for s in parser._option_string_actions if s.startswith("-")]
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-") or re.fullmatch(r"-\d+(\.\d*)?([eE][-+]?\d+)?", arg):
            continue
        flag = arg.split("=", 1)[0]
        if flag in known or (flag.startswith("--") and sum(k.startswith(flag)
                                                          for k in known) == 1):
            continue
        raise UsageError(f"unknown option {flag!r} for {command}"
                         + _suggest(flag, known)
                         + f" (see {PROG} {command} --help)")


def _run_module_command(command, argv):
    """Run the ``plot`` or ``test_policy`` command: the module's own parser and main."""
    import importlib

    module = importlib.import_module(f"spinfast.{command}")
    _check_flags(module.build_parser(), argv, command)
    try:
        return module.main(argv, prog=f"{PROG} {command}")
    except (FileNotFoundError, ValueError, TypeError) as exc:
        if not str(exc).startswith(_INPUT_ERRORS[command]):
            raise
        print(f"spinfast: error: {exc}", file=sys.stderr)
        return 1


def _mpi_available():
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


def _run_demo(argv):
    from spinfast import examples_demo, user_config
    from spinfast.run_utils import ExperimentGrid

    parser = _demo_parser()
    _check_flags(parser, argv, "demo")
    args = parser.parse_args(argv)
    if args.cpu < 1 or args.epochs < 1:
        parser.error("--cpu and --epochs must be >= 1")
    data_dir = osp.abspath(args.data_dir or user_config.DEFAULT_DATA_DIR)
    cpu = args.cpu
    if cpu > 1 and not _mpi_available():
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


# ---------------------------------------------------------------------------------------------
# MODULE:FUNCTION grids
# ---------------------------------------------------------------------------------------------

def parse_value(text):
    """Turn one command-line value into a Python object.

    Python literals (numbers, strings in quotes, lists, tuples, dicts, True/False/None) are
    evaluated safely with :func:`ast.literal_eval`; dotted names rooted at torch, tf,
    tensorflow, np, numpy or math (e.g. ``torch.nn.ReLU``) are imported and looked up;
    anything else is kept as the string.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    if _DOTTED.match(text) and text.split(".")[0] in _OBJECT_ROOTS:
        parts = text.split(".")
        try:
            obj = importlib.import_module(_OBJECT_ROOTS[parts[0]])
        except ImportError as exc:
            raise UsageError(f"value {text!r} names an object of {parts[0]!r}, which cannot "
                             f"be imported ({exc}); install it or quote a plain string") from None
        for i, attr in enumerate(parts[1:], start=1):
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
                continue
            try:
                obj = importlib.import_module(_OBJECT_ROOTS[parts[0]] + "."
                                              + ".".join(parts[1:i + 1]))
            except ImportError:
                raise UsageError(f"value {text!r}: {'.'.join(parts[:i])} has no attribute "
                                 f"{attr!r}") from None
        return obj
    return text


def parse_grid_args(args):
    """Parse ``--key v1 v2 ...`` flags as Spinning Up's command line does.

    Returns:
        ``(arg_dict, shorthands)``: key -> list of values (after :data:`SUBSTITUTIONS`; a flag
        without values gets ``[True]``), and key -> shorthand given as ``--key[sh]``.

    Raises:
        UsageError: a value before the first flag, or a malformed flag.
    """
    arg_dict, order = {}, []
    key = None
    for arg in args:
        if arg.startswith("--"):
            key = arg[2:]
            if not key:
                raise UsageError("empty flag '--'; flags look like --key value ...")
            if "=" in key:
                key, value = key.split("=", 1)
                arg_dict.setdefault(key, []).append(parse_value(value))
            else:
                arg_dict.setdefault(key, [])
            if key not in order:
                order.append(key)
        elif key is None:
            raise UsageError(f"value {arg!r} comes before any flag; start with a flag, e.g. "
                             f"--seed 0 1 2")
        else:
            arg_dict[key].append(parse_value(arg))
    shorthands, result = {}, {}
    for k in order:
        vals = arg_dict[k] or [True]
        m = re.fullmatch(r"([^\[\]]+)\[([^\[\]]*)\]", k)
        if m:
            k, shorthands[m.group(1)] = m.group(1), m.group(2)
        elif "[" in k or "]" in k:
            raise UsageError(f"malformed flag '--{k}'; a shorthand is written --key[sh]")
        if k in SUBSTITUTIONS:
            if k in shorthands:
                shorthands[SUBSTITUTIONS[k]] = shorthands.pop(k)
            k = SUBSTITUTIONS[k]
        if k in result:
            raise UsageError(f"flag '--{k}' given twice (or through a shortcut); give all its "
                             f"values after one flag")
        result[k] = vals
    return result, shorthands


def _entry_point_registry():
    try:
        from importlib.metadata import entry_points

        return {ep.name: ep.value for ep in entry_points(group="spinfast.experiments")}
    except Exception:  # a broken installed distribution must not break the command line
        return {}


def _all_registered():
    return {**_entry_point_registry(), **REGISTRY}


def _load_function(spec):
    """Import ``module:attr.path``; the current folder is importable, as with ``python -m``."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise UsageError(f"{spec!r} is not MODULE:FUNCTION; write e.g. mypkg.algos:train")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name == "spinup" or module_name.startswith("spinup."):
        _install_compat()  # Spinning Up's modules, without its TF1-era __init__
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"cannot import module {module_name!r} ({exc}); check the name "
                             f"and that it is installed or in the current folder") from None
        raise
    for attr in attr_path.split("."):
        if not hasattr(obj, attr):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise UsageError(f"{module_name!r} has no attribute {attr!r}"
                             + _suggest(attr, names))
        obj = getattr(obj, attr)
    if not callable(obj):
        raise UsageError(f"{spec!r} is not callable ({type(obj).__name__}); name a function")
    return obj


def _check_function_flags(func, arg_dict, spec):
    """Raise UsageError for a flag that is neither a run key nor a parameter of ``func``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    # env_name becomes env_fn in the experiment process.
    accepted = set(valid) | ({"env_name"} if "env_fn" in valid else set())
    for key in arg_dict:
        top = key.split(":")[0]
        if top in accepted or key in RUN_KEYS or key == "exp_name" \
                or key.startswith(SLURM_PREFIX):
            continue
        flags = ["--" + n for n in valid] + ["--" + k for k in RUN_KEYS] + [
            "--exp_name", *("--" + k for k in SUBSTITUTIONS)]
        raise UsageError(f"unknown flag '--{key}' for {spec}: {getattr(func, '__name__', spec)}"
                         f"() has no parameter {top!r}" + _suggest("--" + key, flags))


def _check_env_names(names):
    try:
        import gymnasium as gym
    except ImportError:
        raise UsageError("--env/--env_name needs gymnasium: pip install 'spinfast[gym]'") \
            from None
    registry = list(gym.envs.registry.keys())
    for name in names:
        if not isinstance(name, str) or name not in gym.envs.registry:
            raise UsageError(f"{name!r} is not a registered gymnasium environment"
                             + _suggest(str(name), registry))


def slurm_parameters(grid_name, num_cpu, options):
    """Return the parameters of submitit's ``SlurmExecutor.update_parameters`` for a grid.

    One job per variant: one node, one task holding ``cpus_per_task`` CPUs (default
    ``num_cpu``, at least 1), in which the experiment starts its ``num_cpu`` MPI ranks with
    ``srun`` (see :func:`spinfast.mpi_tools.mpi_fork`); ``time`` 60 minutes unless given.
    ``options`` (from ``--slurm_KEY V``) override any of them and add others (``partition``,
    ``mem_gb``, ``gpus_per_node``, ``account``, ``qos``, ``constraint``, ...).
    """
    params = dict(job_name=grid_name or "spinfast", nodes=1, ntasks_per_node=1,
                  cpus_per_task=num_cpu if isinstance(num_cpu, int) and num_cpu > 1 else 1,
                  time=60)
    params.update(options)
    return params


def make_executor(kind, data_dir, num_cpu, grid_name, options):
    """Build the submitit executor named by ``--executor``; return ``(executor, num_cpu)``.

    ``slurm``: a ``submitit.SlurmExecutor`` with :func:`slurm_parameters`; ``local``: a
    ``submitit.LocalExecutor`` whose time limit is ``options['time']`` minutes (default 60).
    Job logs go to ``DATA_DIR/submitit/<job id>``. ``num_cpu='auto'`` becomes the job's
    ``cpus_per_task`` under Slurm (one rank per CPU of the job).

    Raises:
        UsageError: unknown kind, submitit missing, no Slurm here, or a parameter submitit
            does not know.
    """
    from spinfast import user_config

    if kind not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}"
                         + _suggest(str(kind), EXECUTORS))
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--executor {kind} needs submitit: pip install 'spinfast[cluster]'") \
            from None
    folder = osp.join(data_dir or user_config.DEFAULT_DATA_DIR, "submitit", "%j")
    try:
        if kind == "slurm":
            params = slurm_parameters(grid_name, num_cpu, options)
            if num_cpu == "auto":
                num_cpu = params["cpus_per_task"]
            executor = submitit.SlurmExecutor(folder=folder)
            executor.update_parameters(**params)
        else:
            options = dict(options)
            minutes = options.pop("time", 60)
            if options:
                raise UsageError(f"--executor local takes only --{SLURM_PREFIX}time, got "
                                 + ", ".join(f"--{SLURM_PREFIX}{k}" for k in options))
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=minutes)
    except RuntimeError as exc:  # no srun: not on a Slurm cluster
        raise UsageError(f"--executor {kind}: {exc}; submit from a Slurm login node, or use "
                         f"--executor local or --parallel K on this machine") from None
    except ValueError as exc:  # a parameter submitit does not know
        raise UsageError(f"--executor {kind}: {str(exc).splitlines()[0]}") from None
    return executor, num_cpu


def _install_compat():
    from spinfast import compat

    try:
        compat.install()
    except ImportError:  # the real Spinning Up is already imported: use it as it is
        pass


def _spinup_algo(cmd):
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


def _check_spinup_args(algo, args):
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
    _check_env_names(arg_dict["env_name"])


def _load_spinup_algo(cmd, full):
    """Import Spinning Up's algorithm ``full`` (e.g. ``ppo_pytorch``) through compat.

    Installs :mod:`spinfast.compat`, so the algorithm runs on spinfast's utilities, gym's old
    API over gymnasium and (TF1) ``tf.compat.v1``.

    Raises:
        UsageError: Spinning Up is not importable.
    """
    _install_compat()
    from spinfast import compat

    if "spinup" not in sys.modules and not compat._real_package_path("spinup"):
        raise UsageError(f"{cmd!r} is a Spinning Up algorithm, and Spinning Up is not "
                         f"importable; install it (pip install --no-deps -e "
                         f"/path/to/spinningup) or put its folder on PYTHONPATH")
    import spinup

    return getattr(spinup, full)


def _run_compat(argv):
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


def _run_grid(spec, func, args, exp_name=None):
    """Run ``func`` over the grid in ``args``; experiments named ``exp_name`` by default."""
    from spinfast.run_utils import ExperimentGrid

    if any(a in ("-h", "--help", "help") for a in args):
        print(f"\nShowing docstring for {spec}:\n")
        print(inspect.getdoc(func) or "(no docstring)")
        print(f"\nRun it over a grid with {PROG} {spec} --param v1 v2 ... "
              f"(see {PROG} --help for the grid flags).")
        return 0
    arg_dict, shorthands = parse_grid_args(args)
    _check_function_flags(func, arg_dict, spec)
    run_kwargs = {}
    for k in RUN_KEYS:
        if k in arg_dict:
            vals = arg_dict.pop(k)
            if len(vals) != 1:
                raise UsageError(f"you can only provide one value for --{k}, got {vals!r}")
            run_kwargs[k] = vals[0]
    if "exp_name" in arg_dict:
        vals = arg_dict.pop("exp_name")
        if len(vals) != 1:
            raise UsageError(f"you can only provide one value for --exp_name, got {vals!r}")
        exp_name = str(vals[0])
    elif exp_name is None:
        exp_name = "cmd_" + getattr(func, "__name__", "experiment")
    if "env_name" in arg_dict:
        _check_env_names(arg_dict["env_name"])
    slurm_options = {}
    for k in [k for k in arg_dict if k.startswith(SLURM_PREFIX)]:
        vals = arg_dict.pop(k)
        if len(vals) != 1:
            raise UsageError(f"you can only provide one value for --{k}, got {vals!r}")
        slurm_options[k[len(SLURM_PREFIX):]] = vals[0]
    if "executor" in run_kwargs:
        if "parallel" in run_kwargs:
            raise UsageError("--parallel runs variants on this machine; with --executor the "
                             "executor decides how many run at once: give one of the two")
        run_kwargs["executor"], run_kwargs["num_cpu"] = make_executor(
            run_kwargs["executor"], run_kwargs.get("data_dir"), run_kwargs.get("num_cpu", 1),
            exp_name, slurm_options)
    elif slurm_options:
        raise UsageError(f"--{SLURM_PREFIX}{next(iter(slurm_options))} needs --executor slurm "
                         f"(or local)")
    grid = ExperimentGrid(name=exp_name)
    for k, v in arg_dict.items():
        grid.add(k, v, shorthand=shorthands.get(k))
    try:
        results = grid.run(func, **run_kwargs)
    except subprocess.CalledProcessError as exc:
        print(f"spinfast: an experiment failed with exit status {exc.returncode}",
              file=sys.stderr)
        return 1
    return 1 if any(r.status == "failed" for r in results) else 0


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
        return _run_demo(rest)
    if cmd == "compat":
        return _run_compat(rest)
    full = _spinup_algo(cmd)
    if full is not None:
        _check_spinup_args(full, rest)
        return _run_grid(f"spinup.{full}", _load_spinup_algo(cmd, full), rest,
                         exp_name="cmd_" + full)
    registered = _all_registered()
    if ":" in cmd:
        return _run_grid(cmd, _load_function(cmd), rest)
    if cmd in registered:
        return _run_grid(cmd, _load_function(registered[cmd]), rest)
    if cmd.startswith("-"):
        raise UsageError(f"expected a command before {cmd!r}; commands: "
                         f"{', '.join([*COMMANDS, *registered])}, or MODULE:FUNCTION")
    raise UsageError(f"unknown command {cmd!r}"
                     + _suggest(cmd, [*COMMANDS, *registered, *SPINUP_ALGOS])
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
