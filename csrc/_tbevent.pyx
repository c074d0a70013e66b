# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
# cython: freethreading_compatible=False
"""TensorBoard event records (private): bytes only, no file I/O.

An event file is a sequence of TFRecords: the data length as u64 little-endian, the masked
CRC32C of those 8 bytes (u32 LE), the data, the masked CRC32C of the data (u32 LE); the mask is
``((crc >> 15) | (crc << 17)) + 0xa282ead8``. Each record's data is one ``tensorflow.Event``
protobuf, hand-encoded here:

    Event:      wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
                summary = 5 (Summary), session_log = 7 (SessionLog; 6 is the deprecated log_message)
    Summary:    value = 1 (repeated Summary.Value)
    Value:      tag = 1 (string), simple_value = 2 (float)
    SessionLog: status = 1 (enum, START = 1)

One scalar is one record (one Event with one Summary.Value), as TensorFlow and PyTorch write
them; a row of scalars is encoded by one call into one ``bytes`` that the writer writes with
one ``write``. CRC32C is in ``crc32c.h`` (slicing-by-8, or SSE4.2 where the CPU has it).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from numbers import Real as _Real

import numpy as np


cdef extern from "crc32c.h":
    uint32_t sf_crc32c(uint32_t crc, const void* data, size_t n) nogil
    uint32_t sf_crc32c_mask(uint32_t crc) nogil
    void sf_crc32c_init() nogil
    int sf_crc32c_hw_used() nogil
    void sf_crc32c_select(int hw) nogil

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)

sf_crc32c_init()

cdef enum:
    # Bytes of TFRecord framing around each record's data: length, its CRC, the data's CRC.
    FRAME = 16
    # Scalars encoded with a stack buffer of descriptors; longer rows allocate.
    STACK_SCALARS = 64

cdef bytes FILE_VERSION = b"brain.Event:2"


cdef struct scalar_t:
    const char* tag
    Py_ssize_t tag_len
    double value


cdef inline Py_ssize_t varint_len(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* put_varint(uint8_t* p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <uint8_t>(v | 0x80)
        v >>= 7
        p += 1
    p[0] = <uint8_t>v
    return p + 1


cdef inline uint8_t* put_u32le(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>v
    p[1] = <uint8_t>(v >> 8)
    p[2] = <uint8_t>(v >> 16)
    p[3] = <uint8_t>(v >> 24)
    return p + 4


cdef inline uint8_t* put_u64le(uint8_t* p, uint64_t v) noexcept nogil:
    put_u32le(p, <uint32_t>v)
    put_u32le(p + 4, <uint32_t>(v >> 32))
    return p + 8


cdef inline uint8_t* put_double(uint8_t* p, double v) noexcept nogil:
    cdef uint64_t bits
    memcpy(&bits, &v, 8)
    return put_u64le(p, bits)


cdef inline uint8_t* put_float(uint8_t* p, float v) noexcept nogil:
    cdef uint32_t bits
    memcpy(&bits, &v, 4)
    return put_u32le(p, bits)


cdef inline uint8_t* frame_head(uint8_t* p, Py_ssize_t data_len) noexcept nogil:
    """Write the length and its masked CRC; the data follows at the returned pointer."""
    put_u64le(p, <uint64_t>data_len)
    put_u32le(p + 8, sf_crc32c_mask(sf_crc32c(0, p, 8)))
    return p + 12


cdef inline uint8_t* frame_tail(uint8_t* data, Py_ssize_t data_len) noexcept nogil:
    """Append the masked CRC of the ``data_len`` bytes at ``data``; return the record's end."""
    return put_u32le(data + data_len, sf_crc32c_mask(sf_crc32c(0, data, <size_t>data_len)))


cdef inline Py_ssize_t head_len(int64_t step) noexcept nogil:
    """Bytes of an Event's wall_time and step fields."""
    return 9 + 1 + varint_len(<uint64_t>step)


cdef inline uint8_t* put_head(uint8_t* p, int64_t step, double wall_time) noexcept nogil:
    p[0] = 0x09  # field 1, 64-bit: wall_time
    p = put_double(p + 1, wall_time)
    p[0] = 0x10  # field 2, varint: step (int64, two's complement)
    return put_varint(p + 1, <uint64_t>step)


cdef inline Py_ssize_t scalar_event_len(Py_ssize_t tag_len, Py_ssize_t head) noexcept nogil:
    cdef Py_ssize_t value = 1 + varint_len(<uint64_t>tag_len) + tag_len + 5
    cdef Py_ssize_t summary = 1 + varint_len(<uint64_t>value) + value
    return head + 1 + varint_len(<uint64_t>summary) + summary


cdef Py_ssize_t encode_into(uint8_t* out, const scalar_t* s, Py_ssize_t n, int64_t step,
                            double wall_time) noexcept nogil:
    """Encode ``n`` scalar records at ``out``; return the bytes written."""
    cdef Py_ssize_t i, ev_len, value, summary, head = head_len(step)
    cdef uint8_t* p = out
    cdef uint8_t* data
    for i in range(n):
        value = 1 + varint_len(<uint64_t>s[i].tag_len) + s[i].tag_len + 5
        summary = 1 + varint_len(<uint64_t>value) + value
        ev_len = head + 1 + varint_len(<uint64_t>summary) + summary
        data = frame_head(p, ev_len)
        p = put_head(data, step, wall_time)
        p[0] = 0x2a  # field 5, length-delimited: summary
        p = put_varint(p + 1, <uint64_t>summary)
        p[0] = 0x0a  # Summary field 1: value
        p = put_varint(p + 1, <uint64_t>value)
        p[0] = 0x0a  # Value field 1: tag
        p = put_varint(p + 1, <uint64_t>s[i].tag_len)
        memcpy(p, s[i].tag, <size_t>s[i].tag_len)
        p += s[i].tag_len
        p[0] = 0x15  # Value field 2, 32-bit: simple_value
        put_float(p + 1, <float>s[i].value)
        p = frame_tail(data, ev_len)
    return p - out


cdef bytes encode_scalars_c(scalar_t* s, Py_ssize_t n, int64_t step, double wall_time):
    cdef Py_ssize_t i, total = 0, head = head_len(step)
    for i in range(n):
        total += FRAME + scalar_event_len(s[i].tag_len, head)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    encode_into(<uint8_t*>PyBytes_AS_STRING(out), s, n, step, wall_time)
    return out


cdef inline const char* tag_of(object tag, Py_ssize_t* length) except NULL:
    if not PyBytes_Check(tag):
        raise TypeError(f"encode_scalars(): tags must be bytes (UTF-8 encoded names), got "
                        f"{tag!r}; pass name.encode()")
    length[0] = PyBytes_GET_SIZE(tag)
    return PyBytes_AS_STRING(tag)


def encode_scalars(tags, values, int64_t step, double wall_time):
    """Encode one scalar record per tag, all at ``step`` and ``wall_time``, as one bytes.

    Args:
        tags: list or tuple of bytes, the scalar names (UTF-8), pre-encoded.
        values: list or tuple of numbers, or a 1-d array converted to float64, one per tag;
            each is stored as float32 (``simple_value``).
        step: the Event's step (int64).
        wall_time: the Event's time, seconds since the epoch.

    Returns:
        The framed records, concatenated, ready to append to an event file.

    Raises:
        TypeError: a tag is not bytes, or a value is not a number.
        ValueError: tags and values differ in length.
    """
    if not (PyList_CheckExact(tags) or PyTuple_CheckExact(tags)):
        tags = tuple(tags)
    cdef Py_ssize_t i, n = len(tags)
    cdef const double[::1] arr
    if not (PyList_CheckExact(values) or PyTuple_CheckExact(values)):
        arr = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        values = None
        if arr.shape[0] != n:
            raise ValueError(f"encode_scalars(): {n} tags but {arr.shape[0]} values; pass one "
                             f"value per tag")
    elif len(values) != n:
        raise ValueError(f"encode_scalars(): {n} tags but {len(values)} values; pass one "
                         f"value per tag")
    cdef scalar_t stack[STACK_SCALARS]
    cdef scalar_t* s = _scalars(stack, n)
    try:
        for i in range(n):
            s[i].tag = tag_of(tags[i], &s[i].tag_len)
            if values is None:
                s[i].value = arr[i]
            else:
                v = values[i]
                if PyFloat_CheckExact(v):
                    s[i].value = PyFloat_AS_DOUBLE(v)
                elif isinstance(v, _Real):
                    s[i].value = float(v)
                else:
                    raise TypeError(f"encode_scalars(): values must be real numbers, got "
                                    f"{v!r} for tag {tags[i]!r}; pass floats")
        return encode_scalars_c(s, n, step, wall_time)
    finally:
        if s != stack:
            PyMem_Free(s)


cdef scalar_t* _scalars(scalar_t* stack, Py_ssize_t n) except NULL:
    # Room for n scalars: the caller's stack array when they fit, else the heap (the caller
    # frees it when it is not ``stack``).
    cdef scalar_t* s
    if n <= STACK_SCALARS:
        return stack
    s = <scalar_t*>PyMem_Malloc(n * sizeof(scalar_t))
    if s == NULL:
        raise MemoryError()
    return s


def encode_row(keys, tags, dict values, int64_t step, double wall_time):
    """Encode the numeric values of a row, one scalar record per column that has one.

    Args:
        keys: tuple of str, the row's columns in order.
        tags: tuple of bytes, the TensorBoard tag of each column (``keys[i]`` UTF-8 encoded).
        values: the row's values by column; a missing column, or a value that is not a real
            number (str, array, None, ...), is skipped. Python floats, ints and bools and
            numpy's real scalars count; each is stored as float32.
        step: the Event's step (int64).
        wall_time: the Event's time, seconds since the epoch.

    Returns:
        The framed records, concatenated (empty when no column is numeric).

    Raises:
        TypeError: keys or tags is not a tuple, or a tag is not bytes.
        ValueError: keys and tags differ in length.
    """
    if not (PyTuple_CheckExact(keys) and PyTuple_CheckExact(tags)):
        raise TypeError(f"encode_row(): keys and tags must be tuples, got "
                        f"{type(keys).__name__} and {type(tags).__name__}; pass tuple(...)")
    cdef Py_ssize_t i, m = 0, n = PyTuple_GET_SIZE(keys)
    if PyTuple_GET_SIZE(tags) != n:
        raise ValueError(f"encode_row(): {n} keys but {PyTuple_GET_SIZE(tags)} tags; pass one "
                         f"tag per key")
    cdef scalar_t stack[STACK_SCALARS]
    cdef scalar_t* s = _scalars(stack, n)
    cdef PyObject* item
    try:
        for i in range(n):
            item = PyDict_GetItem(values, <object>PyTuple_GET_ITEM(keys, i))
            if item == NULL:
                continue
            v = <object>item
            if PyFloat_CheckExact(v):
                s[m].value = PyFloat_AS_DOUBLE(v)
            elif PyLong_CheckExact(v) or isinstance(v, _Real):
                try:
                    s[m].value = float(v)
                except OverflowError:  # an int beyond float: +/-inf, as float32 would store
                    s[m].value = float("inf") if v > 0 else float("-inf")
            else:
                continue
            s[m].tag = tag_of(<object>PyTuple_GET_ITEM(tags, i), &s[m].tag_len)
            m += 1
        return encode_scalars_c(s, m, step, wall_time)
    finally:
        if s != stack:
            PyMem_Free(s)


def frame_record(data):
    """Frame ``data`` (one serialized Event) as a TFRecord: length, masked CRCs, the data.

    Args:
        data: bytes-like, the record's payload.

    Returns:
        ``len(data) + 16`` bytes.
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + FRAME)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    cdef uint8_t* d = frame_head(p, n)
    if n:
        memcpy(d, &view[0], <size_t>n)
    frame_tail(d, n)
    return out


def encode_file_version(double wall_time):
    """Encode the first record of an event file: an Event with file_version ``brain.Event:2``.

    Args:
        wall_time: the Event's time, seconds since the epoch.
    """
    cdef Py_ssize_t fv = len(FILE_VERSION)
    cdef Py_ssize_t ev_len = head_len(0) + 1 + varint_len(<uint64_t>fv) + fv
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ev_len + FRAME)
    cdef uint8_t* data = frame_head(<uint8_t*>PyBytes_AS_STRING(out), ev_len)
    cdef uint8_t* p = put_head(data, 0, wall_time)
    p[0] = 0x1a  # field 3, length-delimited: file_version
    p = put_varint(p + 1, <uint64_t>fv)
    memcpy(p, PyBytes_AS_STRING(FILE_VERSION), <size_t>fv)
    frame_tail(data, ev_len)
    return out


def encode_session_start(int64_t step, double wall_time):
    """Encode an Event with ``session_log.status = START`` at ``step``.

    TensorBoard treats it as a restart: it drops the events it read earlier whose step is at
    least ``step`` (a resumed run's rows replace the ones dumped after its checkpoint).

    Args:
        step: the step of the first row written after the restart.
        wall_time: the Event's time, seconds since the epoch.
    """
    cdef Py_ssize_t ev_len = head_len(step) + 4
    cdef bytes out = PyBytes_FromStringAndSize(NULL, ev_len + FRAME)
    cdef uint8_t* data = frame_head(<uint8_t*>PyBytes_AS_STRING(out), ev_len)
    cdef uint8_t* p = put_head(data, step, wall_time)
    p[0] = 0x3a  # field 7, length-delimited: session_log
    p[1] = 2     # its length
    p[2] = 0x08  # SessionLog field 1, varint: status
    p[3] = 1     # START
    frame_tail(data, ev_len)
    return out


def crc32c(data, unsigned int crc=0):
    """Return the CRC32C of ``data`` (unmasked), continuing from ``crc`` (0 to start).

    ``crc32c(b"123456789") == 0xE3069283``.
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    if n == 0:
        return crc
    cdef uint32_t out
    with nogil:
        out = sf_crc32c(crc, &view[0], <size_t>n)
    return out


def masked_crc32c(data):
    """Return TFRecord's masked CRC32C of ``data``."""
    return sf_crc32c_mask(crc32c(data))


def crc32c_hardware():
    """Return True when CRC32C uses the CPU's CRC32 instruction (SSE4.2), else False."""
    return bool(sf_crc32c_hw_used())


def use_crc32c_hardware(bint enabled):
    """Use the CPU's CRC32 instruction when ``enabled`` and available, else the tables.

    For tests: both paths must give the same CRC. Returns :func:`crc32c_hardware`.
    """
    sf_crc32c_select(enabled)
    return bool(sf_crc32c_hw_used())
