"""What every command shares: the program name, the usage error, suggestions, flag checks."""

from __future__ import annotations

import difflib
import re

__all__ = ["PROG", "COMMANDS", "UsageError", "suggest", "check_flags", "install_compat"]

PROG = "python -m spinfast.run"

COMMANDS = {
    "plot": "plot learning curves from experiment folders (PNG/SVG/PDF with --save)",
    "test_policy": "run a saved policy (PyTorch or TF1, spinfast's or Spinning Up's run) in "
                   "its saved env",
    "demo": "train a small numpy policy-gradient example as a 2-variant grid on 2 MPI "
            "ranks each, then plot it",
    "compat": "enable|disable|status: Spinning Up's own programs (python -m spinup.run) "
              "use spinfast",
    "info": "print versions, the MPI library mpi4py uses and the launcher mpi_fork would "
            "use (to debug a cluster launch)",
}


class UsageError(Exception):
    """A command-line mistake: printed as ``spinfast: error: ...`` with exit status 2."""


def suggest(name, candidates):
    """Return "; did you mean 'X'?" for the names of ``candidates`` close to ``name``, or ""."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""


def check_flags(parser, argv, command):
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
                         + suggest(flag, known)
                         + f" (see {PROG} {command} --help)")


def install_compat():
    """Install :mod:`spinfast.compat`; keep a real Spinning Up that is already imported."""
    from spinfast import compat

    try:
        compat.install()
    except ImportError:  # the real Spinning Up is already imported: use it as it is
        pass
