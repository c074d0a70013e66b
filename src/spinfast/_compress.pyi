# Stub for the compiled module spinfast._compress (csrc/_compress.pyx), used by
# spinfast._mpi.compression. Buffers: float32 arrays (C float), 16-bit values as uint16 (their
# bits).
from collections.abc import Sequence
from typing import Any

Buffer = Any  # an object exporting a C-contiguous buffer (numpy array, memoryview)
Kind = str  # 'bf16' or 'fp16'

KINDS: tuple[str, ...]

def layout(arrays: Sequence[Buffer]) -> tuple[int, int]: ...
def encode(
    arrays: Sequence[Buffer], residual: Buffer, out: Buffer, kind: Kind
) -> tuple[int, int, float] | None: ...
def reduce(
    recv: Buffer, p: int, own: int, out: Buffer, residual: Buffer, kind: Kind, mean: bool = True
) -> None: ...
def decode(data: Buffer, arrays: Sequence[Buffer], kind: Kind) -> None: ...
