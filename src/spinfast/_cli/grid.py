"""``MODULE:FUNCTION`` (and registered names): run a function over a grid of flag values.

Flags are parsed as Spinning Up's command line does (:func:`parse_grid_args`); values are
Python literals or dotted names of torch/tf/numpy objects (:func:`parse_value`). Flags in
:data:`RUN_KEYS` configure :meth:`spinfast.run_utils.ExperimentGrid.run`; the others are the
function's parameters, checked against its signature before anything runs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys

from spinfast._cli.common import PROG, UsageError, install_compat, suggest
from spinfast._cli.executors import SLURM_PREFIX, make_executor

__all__ = ["SUBSTITUTIONS", "RUN_KEYS", "parse_value", "parse_grid_args", "load_function",
           "check_env_names", "run_grid"]

#: Spinning Up's shortcuts for flag names.
SUBSTITUTIONS = {"env": "env_name", "hid": "ac_kwargs:hidden_sizes",
                 "act": "ac_kwargs:activation", "cpu": "num_cpu", "dt": "datestamp"}

#: Flags that configure :meth:`ExperimentGrid.run` rather than the function (one value each).
RUN_KEYS = ("num_cpu", "data_dir", "datestamp", "parallel", "skip_finished", "executor",
            "resume")

# Dotted values whose first part is one of these are resolved to Python objects
# (e.g. --act torch.nn.Tanh), as Spinning Up's eval did; everything else stays a string.
_OBJECT_ROOTS = {"torch": "torch", "tf": "tensorflow", "tensorflow": "tensorflow",
                 "np": "numpy", "numpy": "numpy", "math": "math"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


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


def load_function(spec):
    """Import ``module:attr.path``; the current folder is importable, as with ``python -m``."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise UsageError(f"{spec!r} is not MODULE:FUNCTION; write e.g. mypkg.algos:train")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name == "spinup" or module_name.startswith("spinup."):
        install_compat()  # Spinning Up's modules, without its TF1-era __init__
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
                             + suggest(attr, names))
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
        if top in accepted or key in RUN_KEYS or key in ("exp_name", "verbose") \
                or key.startswith(SLURM_PREFIX):
            continue
        flags = ["--" + n for n in valid] + ["--" + k for k in RUN_KEYS] + [
            "--exp_name", "--verbose", *("--" + k for k in SUBSTITUTIONS)]
        raise UsageError(f"unknown flag '--{key}' for {spec}: {getattr(func, '__name__', spec)}"
                         f"() has no parameter {top!r}" + suggest("--" + key, flags))


def _may_take(func, name):
    """Return False only if ``func``'s signature is known and cannot take ``name``."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def check_env_names(names):
    """Raise UsageError unless every name is a registered gymnasium environment."""
    try:
        import gymnasium as gym
    except ImportError:
        raise UsageError("--env/--env_name needs gymnasium: pip install 'spinfast[gym]'") \
            from None
    registry = list(gym.envs.registry.keys())
    for name in names:
        if not isinstance(name, str) or name not in gym.envs.registry:
            raise UsageError(f"{name!r} is not a registered gymnasium environment"
                             + suggest(str(name), registry))


def run_grid(spec, func, args, exp_name=None):
    """Run ``func`` over the grid in ``args``; experiments named ``exp_name`` by default.

    ``--verbose`` prints the MPI library and launcher first (see ``spinfast info``); it
    still reaches ``func`` when ``func`` can take a ``verbose`` argument.
    """
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
    verbose = "verbose" in arg_dict
    if verbose and not _may_take(func, "verbose"):
        if arg_dict.pop("verbose") != [True]:
            raise UsageError("--verbose takes no value")
    if "env_name" in arg_dict:
        check_env_names(arg_dict["env_name"])
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
    if verbose:  # what a cluster launch needs to be debugged: see spinfast info
        from spinfast._cli.info import format_lines, mpi_lines

        num_cpu = run_kwargs.get("num_cpu", 1)
        print(format_lines(mpi_lines(num_cpu, remote="executor" in run_kwargs)), flush=True)
    grid = ExperimentGrid(name=exp_name)
    for k, v in arg_dict.items():
        grid.add(k, v, shorthand=shorthands.get(k))
    try:
        results = grid.run(func, **run_kwargs)
    except subprocess.CalledProcessError as exc:
        print(f"spinfast: an experiment failed with exit status {exc.returncode}",
              file=sys.stderr)
        return 1
    return 1 if any(r.status not in ("ok", "skipped") for r in results) else 0

