"""TensorBoard event files, written and read: TFRecord framing and the Event protobuf.

An event file (``events.out.tfevents.*``) is a sequence of TFRecords: a little-endian u64
length, the masked CRC32C of those 8 bytes (u32), the data, the masked CRC32C of the data
(u32). CRC32C is the Castagnoli polynomial (reflected 0x82F63B78); masking is
``((crc >> 15) | (crc << 17)) + 0xA282EAD8`` mod 2**32 (TFRecord's definition). Each record's
data is a serialized ``tensorflow.Event`` protobuf, of which this module knows only what
scalars, restarts and a text config need:

- ``Event``: ``wall_time`` (1, double), ``step`` (2, int64), ``file_version`` (3, string),
  ``summary`` (5), ``session_log`` (7; a ``START`` at step ``s`` discards the scalars read so
  far with steps ``>= s``, as TensorBoard does after a restart);
- ``Summary.value`` (1) -> ``Value``: ``tag`` (1, string), ``simple_value`` (2, float; what
  ``torch.utils.tensorboard``, stable-baselines3 and spinfast write), ``metadata`` (9) or
  ``tensor`` (8; TF2's ``tf.summary.scalar``, the text plugin): a one-element numeric
  ``TensorProto`` in ``float_val`` (5), ``double_val`` (6), ``int_val`` (7), ``int64_val``
  (10), ``bool_val`` (11), ``half_val`` (13) or ``tensor_content`` (4). Other values
  (images, histograms, text) are skipped when reading.

Writing: the hot path, a row of scalars, and the fixed records (file version, session start)
and the framing of any record are the compiled :mod:`spinfast._tbevent` (no TensorFlow,
PyTorch or tensorboard package needed); the text event of the config is encoded here. The
checksums of both directions are computed by that compiled code (one CRC32C in the project,
GB/s with SSE4.2).

Reading (:func:`read_scalars`, public as :mod:`spinfast.tfevents`): a record cut short at the
end of a file (a writer still running, or killed) ends the file quietly; a checksum that does
not match raises ``ValueError``.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import struct
import time
from typing import NamedTuple

from spinfast._tbevent import (
    crc32c,
    encode_file_version,
    encode_row,
    encode_session_start,
    frame_record,
    masked_crc32c,
)

__all__ = ["Scalar", "crc32c", "masked_crc32c", "read_scalars", "event_files",
           "event_file_name", "encode_row", "encode_file_version", "encode_session_start",
           "frame_record", "text_event"]


# ---------------------------------------------------------------------------------------------
# Protobuf wire format: just enough to write and walk fields
# ---------------------------------------------------------------------------------------------

def _pb_varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _pb_bytes(field: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _pb_varint(field << 3 | 2) + _pb_varint(len(data)) + data


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yield ``(field_number, wire_type, value)``; value is int (0, 1, 5) or bytes (2)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:  # groups (3, 4) are not used by these messages
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf field")
        yield number, wire, value


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _unpack_varints(buf):
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


# ---------------------------------------------------------------------------------------------
# Writing: file names and the text event (scalars: the compiled encode_row)
# ---------------------------------------------------------------------------------------------

def event_file_name(folder: str) -> str:
    """Return a new event file's name in ``folder``, sorting after the event files there.

    TensorBoard reads a folder's event files in name order; the name holds the time in
    seconds, bumped past the newest existing file's so that a restart within the same second
    still sorts last.
    """
    import socket

    stamp = int(time.time())
    for name in os.listdir(folder):
        parts = name.split(".")
        if name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
            stamp = max(stamp, int(parts[3]) + 1)
    return f"events.out.tfevents.{stamp:010d}.{socket.gethostname()}.{os.getpid()}.spinfast"


def text_event(tag: str, text: str, wall_time: float) -> bytes:
    """Return an Event (step 0, not framed) holding ``text`` for TensorBoard's text plugin."""
    plugin = _pb_bytes(1, _pb_bytes(1, b"text"))            # SummaryMetadata.plugin_data
    tensor = (_pb_varint(1 << 3) + _pb_varint(7)               # TensorProto.dtype = DT_STRING
              + _pb_bytes(2, b"")                               # tensor_shape: a scalar
              + _pb_bytes(8, text.encode()))                    # string_val
    value = _pb_bytes(1, tag.encode()) + _pb_bytes(9, plugin) + _pb_bytes(8, tensor)
    return (b"\x09" + struct.pack("<d", wall_time) + b"\x10\x00"  # wall_time, step 0
            + _pb_bytes(5, _pb_bytes(1, value)))                  # summary.value


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

_DT_SIZES = {1: ("<f", 4), 2: ("<d", 8), 3: ("<i", 4), 9: ("<q", 8), 10: ("<?", 1),
             4: ("<B", 1), 5: ("<h", 2), 6: ("<b", 1), 19: ("<e", 2)}


class Scalar(NamedTuple):
    """One scalar of an event file."""

    step: int
    wall_time: float
    tag: str
    value: float


def _tensor_scalar(buf):
    """The value of a one-element numeric TensorProto, else None."""
    dtype, values, content = None, [], None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number in (5, 6, 13):  # float_val, double_val, half_val (packed or not)
            if number == 13:  # half_val holds float16 bits in int32 varints
                raw = _unpack_varints(value) if wire == 2 else [value]
                values += [struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0] for v in raw]
            else:
                fmt = "<f" if number == 5 else "<d"
                size = struct.calcsize(fmt)
                values += [v[0] for v in struct.iter_unpack(fmt, value)] \
                    if len(value) % size == 0 else []
        elif number in (7, 10, 11):  # int_val, int64_val, bool_val (varints)
            raw = _unpack_varints(value) if wire == 2 else [value]
            values += [_signed64(v) if number != 11 else bool(v) for v in raw]
    if dtype not in _DT_SIZES:
        return None
    if content is not None:
        fmt, size = _DT_SIZES[dtype]
        if len(content) != size:
            return None
        return float(struct.unpack(fmt, content)[0])
    if len(values) != 1:
        return None
    return float(values[0])


def _summary_scalars(buf):
    for number, wire, value in _fields(buf):
        if number != 1 or wire != 2:
            continue
        tag, scalar = None, None
        for vnum, vwire, vval in _fields(value):
            if vnum == 1 and vwire == 2:
                tag = bytes(vval).decode("utf-8", "replace")
            elif vnum == 2 and vwire == 5:
                scalar = struct.unpack("<f", vval)[0]
            elif vnum == 8 and vwire == 2:
                scalar = _tensor_scalar(vval)
        if tag is not None and scalar is not None:
            yield tag, float(scalar)


def _records(path, check_crc):
    with open(path, "rb") as f:
        data = f.read()
    pos, end = 0, len(data)
    while pos + 12 <= end:
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked_crc32c(header) != length_crc:
            raise ValueError(f"read_scalars(): corrupt record header in {path!r} at byte "
                             f"{pos}; the file is damaged (not a TFRecord event file?)")
        start = pos + 12
        if start + length + 4 > end:
            return  # cut short: a writer still running, or killed mid-record
        body = data[start:start + length]
        if check_crc:
            (body_crc,) = struct.unpack("<I", data[start + length:start + length + 4])
            if masked_crc32c(body) != body_crc:
                raise ValueError(f"read_scalars(): data checksum mismatch in {path!r} at "
                                 f"byte {pos}; the file is damaged")
        yield body
        pos = start + length + 4


def event_files(folder):
    """Return the ``events.out.tfevents.*`` files directly in ``folder``, sorted by name."""
    return sorted(p for p in glob.glob(osp.join(glob.escape(os.fspath(folder)),
                                                "events.out.tfevents.*"))
                  if osp.isfile(p))


def read_scalars(path, check_crc=True):
    """Read every scalar of an event file, or of all event files of a folder in name order.

    Args:
        path: an ``events.out.tfevents.*`` file, or a folder holding such files.
        check_crc: verify each record's data checksum.

    Returns:
        list of :class:`Scalar` ``(step, wall_time, tag, value)`` in file order, without those
        a later ``SessionLog.START`` discarded.

    Raises:
        FileNotFoundError: no such file, or a folder without event files.
        ValueError: a damaged file (bad checksum or protobuf).
    """
    path = os.fspath(path)
    if osp.isdir(path):
        files = event_files(path)
        if not files:
            raise FileNotFoundError(f"read_scalars(): no events.out.tfevents.* files in "
                                    f"{path!r}; give a TensorBoard log folder")
    elif osp.exists(path):
        files = [path]
    else:
        raise FileNotFoundError(f"read_scalars(): {path!r} does not exist; give an event file "
                                f"or a folder of them")
    out = []
    for file in files:
        for body in _records(file, check_crc):
            step, wall_time, summary, restart = 0, 0.0, None, False
            try:
                for number, wire, value in _fields(body):
                    if number == 1 and wire == 1:
                        wall_time = struct.unpack("<d", value)[0]
                    elif number == 2 and wire == 0:
                        step = _signed64(value)
                    elif number == 5 and wire == 2:
                        summary = value
                    elif number == 7 and wire == 2:
                        restart = any(n == 1 and w == 0 and v == 1 for n, w, v in _fields(value))
                if restart:
                    out = [s for s in out if s.step < step]
                if summary is not None:
                    out += [Scalar(step, wall_time, tag, value)
                            for tag, value in _summary_scalars(summary)]
            except (ValueError, struct.error) as exc:
                raise ValueError(f"read_scalars(): damaged event in {file!r} ({exc}); the "
                                 f"file is not a valid TensorBoard event file") from None
    return out
