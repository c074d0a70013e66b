# Stub for the compiled module spinfast._tbevent (csrc/_tbevent.pyx).
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
from _typeshed import ReadableBuffer

# tags: UTF-8 names; values: float64 (list of numbers or array), stored as float32;
# step: int64. Returns the framed TFRecords, concatenated.
def encode_scalars(
    tags: Sequence[bytes],
    values: Sequence[float] | npt.NDArray[np.floating[Any]],
    step: int,
    wall_time: float,
) -> bytes: ...
# keys/tags: tuples of equal length; non-numeric or missing values are skipped.
def encode_row(
    keys: tuple[str, ...],
    tags: tuple[bytes, ...],
    values: dict[str, Any],
    step: int,
    wall_time: float,
) -> bytes: ...
def frame_record(data: ReadableBuffer) -> bytes: ...
def encode_file_version(wall_time: float) -> bytes: ...
def encode_session_start(step: int, wall_time: float) -> bytes: ...
def crc32c(data: ReadableBuffer, crc: int = 0) -> int: ...  # uint32
def masked_crc32c(data: ReadableBuffer) -> int: ...
def crc32c_hardware() -> bool: ...
def use_crc32c_hardware(enabled: bool) -> bool: ...
