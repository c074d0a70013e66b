# Stub for the compiled module spinfast._flat (csrc/_flat.pyx, kernels in csrc/_flat.h).
from collections.abc import Sequence
from typing import Any, Literal

DEFAULT_FUSION_THRESHOLD: int  # bytes (Py_ssize_t)
RING_THRESHOLD: int  # bytes: sums and means of buffers this large use the engine's ring
# The values of FlatBuffer(algorithm=) and of the environment variable SPINFAST_COLLECTIVES.
ALGORITHMS: tuple[str, ...]
Algorithm = Literal["auto", "mpi", "engine"]

# Items: writable, C- or Fortran-contiguous float32 ('f') / float64 ('d') buffers (any object
# with the buffer protocol: numpy arrays, numpy views of framework tensors, memoryviews); the
# same dtypes and shapes on every rank.
Arrays = Sequence[Any]
# An mpi4py communicator (mpi4py.MPI.Comm), or None for one process.
Comm = Any

def checksum(arrays: Sequence[Any]) -> int: ...

class FlatBuffer:
    def __init__(
        self,
        fusion_threshold: int = ...,
        algorithm: Algorithm | None = None,  # None: SPINFAST_COLLECTIVES, else 'auto'
    ) -> None: ...
    @property
    def fusion_threshold(self) -> int: ...  # bytes (Py_ssize_t)
    @property
    def algorithm(self) -> Algorithm: ...
    @property
    def nbytes(self) -> int: ...  # bytes held by the packed buffers and the ring's scratch
    def allreduce(
        self,
        comm: Comm | None,
        arrays: Arrays,
        op: Literal["sum", "mean", "min", "max", "prod"] = "sum",
        sources: Arrays | None = None,  # read-only inputs (same dtypes and sizes)
    ) -> None: ...
    def bcast(self, comm: Comm | None, arrays: Arrays, root: int = 0) -> None: ...  # root: C int
