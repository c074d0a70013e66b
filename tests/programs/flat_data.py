"""The arrays each rank of ``flat_ops.py`` starts from; the test regenerates them from here."""

import numpy as np

THRESHOLD = 1 << 12  # flat_ops' fusion threshold: the sizes below sit on both sides of it

# Mixed shapes, dtypes and orders; sizes just under, at and over the threshold; empty.
SHAPES = [((3, 4), np.float32), ((1,), np.float64), ((1023,), np.float32),
          ((1024,), np.float32), ((1025,), np.float32), ((511,), np.float64),
          ((512,), np.float64), ((0,), np.float32), ((5, 7, 2), np.float64),
          ((40, 50), np.float32), ((3000,), np.float64), ((), np.float64),
          ((2, 2), np.float32)]
FORTRAN = 9  # index of the one Fortran-order array


def data(rank):
    """Rank ``rank``'s arrays: standard normal values in SHAPES, array FORTRAN in F order."""
    rng = np.random.default_rng(1000 + rank)
    out = []
    for i, (shape, dt) in enumerate(SHAPES):
        a = rng.standard_normal(shape).astype(dt)
        if i == FORTRAN:
            a = np.asfortranarray(a)
        out.append(a)
    return out


def views(rank):
    """Rank ``rank``'s items of other kinds: a Fortran-order float32 array and a float64
    memoryview (both reduced in place), with values that differ between ranks."""
    f = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4) * (rank + 1) - rank)
    mv = memoryview(np.linspace(-1.0, 1.0, 5) * (-1) ** rank * (rank + 2) + rank)
    return f, mv


def steady(fb, comm, mine, op, root):
    """Copies of ``mine`` after the second call of ``op`` on ``fb`` (the first call agrees on
    the layout, the second is the steady state); ``op`` 'bcast' broadcasts from ``root``."""
    for _ in range(2):
        arrays = [a.copy() for a in mine]
        if op == "bcast":
            fb.bcast(comm, arrays, root=root)
        else:
            fb.allreduce(comm, arrays, op=op)
    return arrays
