"""Run one experiment written by :func:`spinfast.run_utils.call_experiment`.

Usage (internal): ``python -m spinfast._grid.experiment PAYLOAD``. ``PAYLOAD`` is a file holding
a plain pickle of launch metadata (the launcher's ``sys.path``, whether to install
:mod:`spinfast.compat`, whether ``env_name`` becomes an environment with gym's old API
because the thunk is Spinning Up's) followed by a plain pickle of
``dict(thunk=..., kwargs=..., num_cpu=..., resume=...)``: ``thunk`` is ``'module:qualname'``
(imported here) or cloudpickle bytes, ``kwargs`` cloudpickle bytes. Both are loaded only after
``sys.path`` is set. The experiment splits into ``num_cpu`` MPI processes with
:func:`spinfast.mpi_tools.mpi_fork` (which relaunches this file with the same payload), then
every process calls ``thunk(**kwargs)``; with ``resume`` its ``logger_kwargs`` dict gets
``resume=True``.
"""

import os
import sys

if __name__ == "__main__":
    # Relaunched by mpi_fork as a script, Python puts this package folder first on sys.path,
    # where our module names (plot, run, ...) could shadow top-level ones. Drop it.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import pickle


def _load(path):
    """Return ``(meta, job)`` read from the payload file ``path``."""
    with open(path, "rb") as f:
        meta = pickle.load(f)
        for entry in meta.get("sys_path", []):
            if entry not in sys.path:
                sys.path.append(entry)
        if meta.get("compat"):
            from spinfast import compat

            compat.install()
        return meta, pickle.load(f)


def resolve_thunk(ref):
    """Return the function a job names: ``'module:qualname'`` is imported, bytes unpickled."""
    if isinstance(ref, bytes):
        return pickle.loads(ref)
    import importlib

    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for attr in qualname.split("."):
        obj = getattr(obj, attr)
    return obj


def _thunk_kwargs(job):
    kwargs = pickle.loads(job["kwargs"])
    if job.get("resume") and isinstance(kwargs.get("logger_kwargs"), dict):
        kwargs["logger_kwargs"] = {**kwargs["logger_kwargs"], "resume": True}
    return kwargs


def main(argv=None):
    """Load the payload named in ``argv`` (default ``sys.argv[1:]``) and run it.

    Returns:
        0 when the thunk returns (an exception propagates: exit status 1).

    Raises:
        SystemExit: wrong usage (status 2).
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m spinfast._grid.experiment PAYLOAD", file=sys.stderr)
        raise SystemExit(2)
    meta, job = _load(argv[0])
    thunk, kwargs, num_cpu = resolve_thunk(job["thunk"]), _thunk_kwargs(job), job["num_cpu"]
    if "env_name" in kwargs:
        env_name = kwargs.pop("env_name")
        if meta.get("old_gym_api"):  # a Spinning Up algorithm: o = env.reset()
            from spinfast.gym_compat import make
        else:
            from gymnasium import make
        kwargs["env_fn"] = lambda: make(env_name)
    if num_cpu > 1:
        from spinfast.mpi_tools import mpi_fork

        mpi_fork(num_cpu)
    thunk(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
