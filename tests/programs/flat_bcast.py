"""Broadcasts after an agreement, changed layouts, recovery; writes ``bcast{rank}.json``.

Each entry is True when a broadcast gave the expected arrays, or the text of an error.
"""

import json

import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
out = {}

def mine(shapes, tag=0.0, owner=None):
    # Rank r's own values: element k of array i is 1000 r + 100 i + k / 8 + tag.
    owner = rank if owner is None else owner
    return [(1000.0 * owner + 100.0 * i + tag + np.arange(int(np.prod(s))).reshape(s) / 8)
            .astype(dt) for i, (s, dt) in enumerate(shapes)]

def record(label, arrays, expected):
    out[label] = (len(arrays) == len(expected) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(arrays, expected)))

SMALL = [((4, 5), np.float32), ((7,), np.float64), ((3, 3), np.float32),
         ((2, 3), np.float64)]                             # all packed, in two buffers
MIXED = SMALL + [((3000,), np.float64)]                                       # one in place
for shapes, name in ((SMALL, "small"), (MIXED, "mixed")):
    fb = FlatBuffer(1 << 10)
    kept = mine(shapes)
    for step in range(3):            # steady state, the same arrays (addresses) every call
        for a in kept:
            a += 0.5 * (rank != 0)  # receivers drift; the broadcast repairs them
        fb.bcast(comm, kept, root=0)
    record(f"{name} same arrays", kept, mine(shapes, owner=0))
    for step in range(3):            # new arrays (new addresses) every call
        fresh = mine(shapes, tag=step)
        fb.bcast(comm, fresh, root=0)
    record(f"{name} new arrays", fresh, mine(shapes, tag=2, owner=0))
    twice = mine(shapes[:1])         # one array passed twice: overlapping destinations
    fb2 = FlatBuffer(1 << 10)
    for step in range(2):
        arrays = [twice[0], twice[0]] + mine(shapes[1:])
        fb2.bcast(comm, arrays, root=0)
    record(f"{name} overlap", arrays,
           2 * mine(shapes[:1], owner=0) + mine(shapes[1:], owner=0))
    for who in (0, last):           # overlapping on one rank only (the later array wins)
        fb3 = FlatBuffer(1 << 10)
        for step in range(2):
            first, second = mine(shapes[:1])[0], mine(shapes[:1], tag=0.25)[0]
            arrays = [first, first if rank == who else second] + mine(shapes[1:])
            fb3.bcast(comm, arrays, root=0)
        sent = [mine(shapes[:1], owner=0)[0]] * 2 if who == 0 else [
            mine(shapes[:1], owner=0)[0], mine(shapes[:1], tag=0.25, owner=0)[0]]
        if rank == who and rank != 0:
            sent = [sent[1], sent[1]]
        record(f"{name} overlap on {who}", arrays, sent + mine(shapes[1:], owner=0))

    # After an agreement, one rank's layout changes: every rank raises, no array is written.
    for who in (0, last):
        fb.bcast(comm, mine(shapes), root=0)
        arrays = mine(shapes)
        if rank == who:
            arrays[0] = arrays[0].reshape(arrays[0].shape[::-1]).copy()
        before = [a.copy() for a in arrays]
        try:
            fb.bcast(comm, arrays, root=0)
            out[f"{name} changed on {who}"] = "no error"
        except ValueError as exc:
            out[f"{name} changed on {who}"] = str(exc)
        out[f"{name} changed on {who} untouched"] = all(
            np.array_equal(a, b) for a, b in zip(arrays, before))
    fb.bcast(comm, mine(shapes), root=0)
    arrays = mine(shapes)
    if rank == 0:
        arrays[1] = np.arange(7)     # invalid on the root
    try:
        fb.bcast(comm, arrays, root=0)
        out[f"{name} invalid"] = "no error"
    except (TypeError, ValueError) as exc:
        out[f"{name} invalid"] = f"{type(exc).__name__}: {exc}"
    arrays = mine(shapes)
    fb.bcast(comm, arrays, root=last)  # recovered, and a new root
    record(f"{name} recovered", arrays, mine(shapes, owner=last))
# One instance on a sub-communicator of two ranks, then on all ranks: the agreement made
# among two does not carry over (the ranks outside the pair never saw it).
fb = FlatBuffer(1 << 10)
sub = comm.Split(0 if rank < 2 else 1, rank)
if rank < 2:
    arrays = mine(SMALL)
    fb.bcast(sub, arrays, root=0)
    fb.allreduce(sub, [np.ones(3)], op="sum")
for step in range(2):
    arrays = mine(MIXED)
    fb.bcast(comm, arrays, root=last)
    record(f"sub then all {step}", arrays, mine(MIXED, owner=last))
sub.Free()
with open(f"bcast{rank}.json", "w") as f:
    json.dump(out, f)
