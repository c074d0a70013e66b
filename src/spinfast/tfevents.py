"""Read scalars from TensorBoard event files (no TensorFlow, no protobuf, no tensorboard).

:func:`read_scalars` reads an ``events.out.tfevents.*`` file, or a folder of them, into
:class:`Scalar` records ``(step, wall_time, tag, value)``: the ``simple_value`` scalars that
``torch.utils.tensorboard``, stable-baselines3 and spinfast write, and TF2's one-element
tensor scalars; images, histograms and text are skipped. A ``SessionLog.START`` at step ``s``
discards the scalars read so far with steps ``>= s``, as TensorBoard does after a restart. A
record cut short at the end of a file (a writer still running, or killed) ends the file
quietly; a checksum that does not match raises ``ValueError``. :func:`crc32c` is the
Castagnoli CRC of the records (compiled, GB/s with SSE4.2).

The codec itself, which also writes spinfast's event files, is ``spinfast._outputs._tbcodec``
(its docstring describes the file format); this module is its public reading API.
"""

from __future__ import annotations

from spinfast._outputs._tbcodec import Scalar, crc32c, event_files, read_scalars

__all__ = ["Scalar", "crc32c", "read_scalars", "event_files"]

Scalar.__module__ = __name__  # pickled scalars name the public module, as before the move
