# Stub for the compiled module spinfast._flat (csrc/_flat.pyx, kernels in csrc/_flat.h).
from collections.abc import Sequence
from typing import Any, Literal

DEFAULT_FUSION_THRESHOLD: int  # bytes (Py_ssize_t)
# The values of FlatBuffer(algorithm=) and of the environment variable SPINFAST_COLLECTIVES.
ALGORITHMS: tuple[str, ...]
Algorithm = Literal["auto", "mpi", "engine"]
# Names of the paths a buffer can take (FlatBuffer.paths, choose()).
PATHS: tuple[str, ...]
Path = Literal["mpi", "ring", "doubling", "tree", "pair"]
Op = Literal["sum", "mean", "min", "max", "prod"]
Transport = Literal["shared", "network"]

# Items: writable, C- or Fortran-contiguous float32 ('f') / float64 ('d') buffers (any object
# with the buffer protocol: numpy arrays, numpy views of framework tensors, memoryviews); the
# same dtypes and shapes on every rank.
Arrays = Sequence[Any]
# An mpi4py communicator (mpi4py.MPI.Comm), or None for one process.
Comm = Any

def checksum(arrays: Sequence[Any]) -> int: ...
def engine_comm(comm: Comm) -> Comm: ...  # the engine's duplicate of comm (cached on it)
def choose(
    op: Op | Literal["bcast"],
    ranks: int,
    nbytes: int,
    transport: Transport = "shared",
    algorithm: Algorithm = "auto",
    buffers: int = 1,
    packed: bool = False,
) -> Path: ...

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
    @property
    def paths(self) -> dict[str | int, Path]: ...  # of the last call with more than one rank
    def allreduce(
        self,
        comm: Comm | None,
        arrays: Arrays,
        op: Op = "sum",
        sources: Arrays | None = None,  # read-only inputs (same dtypes and sizes)
    ) -> None: ...
    def bcast(self, comm: Comm | None, arrays: Arrays, root: int = 0) -> None: ...  # root: C int
