"""One FlatBuffer call of the mismatch programs, its outcome written as ``OK``/``ERR`` lines."""


def attempt(out, comm, label, fb, call, arrays):
    """Make ``call`` ('bcast' or an op) on ``arrays``; write ``OK label`` or ``ERR label ...``."""
    rank = comm.Get_rank()
    try:
        if call == "bcast":
            fb.bcast(comm, arrays, root=0)
        else:
            fb.allreduce(comm, arrays, op=call)
    except ValueError as exc:
        print(f"ERR {label} rank={rank} {type(exc).__name__}: {exc}", file=out, flush=True)
    else:
        print(f"OK {label} rank={rank}", file=out, flush=True)
