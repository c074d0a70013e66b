# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
"""16-bit gradient compression kernels (private): float32 <-> bfloat16 / float16.

The compressed averaging of :mod:`spinfast._compress` moves gradients as 16-bit values and sums
them in float32. Its three passes over memory are here, each one loop over plain buffers with
the GIL released (``compress_kernels.h`` holds the C):

* :func:`encode`: a list of float32 arrays (one logical vector of n values) plus the residual
  of n float32 (error feedback) -> n 16-bit values, in one pass; the residual is updated.
* :func:`reduce`: the 16-bit rows of the chunk a rank owns (its own, in place, and the p - 1
  received) -> their float32 sum in rank order, divided by p, plus the owner's residual,
  rounded to 16 bits in place of its own row (residual updated).
* :func:`decode`: 16-bit values -> the list of float32 arrays (scattered in order).

No framework, no MPI: buffers come in through the buffer protocol; 16-bit values travel as
``uint16`` (their bits).
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE
from cpython.buffer cimport PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint16_t, uint64_t

from bufformat cimport sf_format_code
from layouthash cimport SF_HASH_SEED, sf_fnv

cdef extern from "compress_kernels.h" nogil:
    int SFC_BF16
    int SFC_FP16
    Py_ssize_t sfc_encode(int kind, const float* x, float* res, uint16_t* out, Py_ssize_t n)
    void sfc_decode(int kind, const uint16_t* src, float* y, Py_ssize_t n)
    ctypedef struct sfc_rows:
        const uint16_t* recv
        const uint16_t* own_row
        Py_ssize_t m
        int p
        int own
    void sfc_reduce(int kind, const sfc_rows* rows, float divisor, float* res, uint16_t* out)

KINDS = ("bf16", "fp16")


cdef int _kind(str kind, str where) except -1:
    if kind == "bf16":
        return SFC_BF16
    if kind == "fp16":
        return SFC_FP16
    raise ValueError(f"{where}: unknown kind {kind!r}; pass 'bf16' or 'fp16'")


cdef struct views_t:
    Py_buffer* v
    Py_ssize_t count
    Py_ssize_t total   # float32 values in all


cdef int _acquire(views_t* a, object arrays, bint writable, str where) except -1:
    # Every item of ``arrays`` as a C-contiguous float32 buffer; on error, nothing held.
    cdef Py_ssize_t i
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if writable else 0)
    cdef Py_buffer* v
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{where}: arrays must be a list or tuple of float32 buffers, got "
                        f"{type(arrays).__name__!r}")
    a.count = 0
    a.total = 0
    a.v = <Py_buffer*>PyMem_Malloc(max(len(arrays), 1) * sizeof(Py_buffer))
    if a.v == NULL:
        raise MemoryError()
    try:
        for i, obj in enumerate(arrays):
            v = &a.v[i]
            if not PyObject_CheckBuffer(obj):
                raise TypeError(f"{where}: array {i} is a {type(obj).__name__!r}, not a "
                                f"float32 buffer")
            try:
                PyObject_GetBuffer(obj, v, flags)
            except (BufferError, ValueError, TypeError) as exc:
                what = "writable and C-contiguous" if writable else "C-contiguous"
                raise ValueError(f"{where}: array {i} is not {what} ({exc})") from None
            a.count += 1
            if v.itemsize != 4 or sf_format_code(v.format) != b"f":
                fmt = (<bytes>v.format).decode() if v.format != NULL else "B"
                raise TypeError(f"{where}: array {i} has format {fmt!r}; compressed "
                                f"averaging takes float32 arrays")
            a.total += v.len // 4
    except BaseException:
        _release(a)
        raise
    return 0


cdef void _release(views_t* a) noexcept:
    cdef Py_ssize_t i
    for i in range(a.count):
        PyBuffer_Release(&a.v[i])
    PyMem_Free(a.v)
    a.v = NULL
    a.count = 0


def layout(arrays):
    """Return ``(n, h)``: the number of float32 values in ``arrays`` and a hash of their shapes.

    ``h`` is an int in [0, 2**62), the same on every rank for the same list of shapes.

    Raises:
        TypeError: ``arrays`` is not a list/tuple, or an item is not a float32 buffer.
        ValueError: an item is not C-contiguous.
    """
    cdef views_t a
    cdef uint64_t h = SF_HASH_SEED
    cdef Py_ssize_t i, d
    _acquire(&a, arrays, False, "layout()")
    try:
        h = sf_fnv(h, <uint64_t>a.count)
        for i in range(a.count):
            h = sf_fnv(h, <uint64_t>a.v[i].ndim)
            for d in range(a.v[i].ndim):
                h = sf_fnv(h, <uint64_t>a.v[i].shape[d])
        return a.total, <Py_ssize_t>(h & ((<uint64_t>1 << 62) - 1))
    finally:
        _release(&a)


def encode(arrays, float[::1] residual, uint16_t[::1] out, str kind):
    """Round ``arrays`` plus ``residual`` to 16 bits into ``out``; keep the rounding error.

    Args:
        arrays: list/tuple of C-contiguous float32 buffers (read only), n values in all.
        residual: n float32, in place: added before rounding, then set to what rounding lost.
        out: n uint16, written with the 16-bit values' bits.
        kind: ``'bf16'`` or ``'fp16'``.

    Returns:
        None, or for float16 a ``(array index, element index, value)`` of the first finite
        value beyond float16's range (then ``out`` holds inf there and ``residual`` is spoilt:
        reset it).

    Raises:
        TypeError, ValueError: a bad array, or sizes that do not add up to n.
    """
    cdef views_t a
    cdef int code = _kind(kind, "encode()")
    cdef Py_ssize_t i, off = 0, m, bad = -1, where = -1
    cdef float* res = &residual[0] if residual.shape[0] else NULL
    cdef uint16_t* o = &out[0] if out.shape[0] else NULL
    _acquire(&a, arrays, False, "encode()")
    try:
        if a.total != residual.shape[0] or a.total != out.shape[0]:
            raise ValueError(f"encode(): the arrays hold {a.total} values but residual has "
                             f"{residual.shape[0]} and out {out.shape[0]}; pass buffers of "
                             f"the arrays' total size")
        with nogil:
            for i in range(a.count):
                m = a.v[i].len // 4
                bad = sfc_encode(code, <const float*>a.v[i].buf, res + off, o + off, m)
                if bad >= 0 and where < 0:
                    where = i
                    break
                off += m
        if where >= 0:
            return where, bad, float((<const float*>a.v[where].buf)[bad])
        return None
    finally:
        _release(&a)


def reduce(const uint16_t[::1] recv, int p, int own, uint16_t[::1] out, float[::1] residual,
           str kind, bint mean=True):
    """Sum ``p`` rows of 16-bit values in rank order (float32), round the result to 16 bits.

    Args:
        recv: (p - 1) * m uint16: the rows of the ranks other than ``own``, in rank order
            (rank r's row is ``recv[i*m:(i+1)*m]`` with i = r if r < own else r - 1).
        p: the number of rows (ranks), >= 1.
        own: the rank whose row is ``out`` itself (the owner's values, read where they lie).
        out: m uint16, in place: rank ``own``'s row on entry, the rounded result on return
            (finite sums saturate at the largest finite 16-bit value).
        residual: m float32, in place: added to the (mean) sum before rounding, then set to
            what rounding lost.
        kind: ``'bf16'`` or ``'fp16'``.
        mean: divide the sum by p (float32 division), as the uncompressed ``op='mean'``.

    Raises:
        ValueError: sizes that do not fit (``len(recv) != (p - 1) * len(out)``, residual's
            size, ``own`` not in [0, p)).
    """
    cdef int code = _kind(kind, "reduce()")
    cdef Py_ssize_t m = out.shape[0]
    cdef sfc_rows rows
    if p < 1 or not 0 <= own < p or recv.shape[0] != (p - 1) * m or residual.shape[0] != m:
        raise ValueError(f"reduce(): recv has {recv.shape[0]} values, out {m}, residual "
                         f"{residual.shape[0]}, p={p}, own={own}; pass p - 1 rows of len(out) "
                         f"values, a residual of len(out) and 0 <= own < p")
    if m == 0:
        return
    rows.recv = &recv[0] if p > 1 else NULL
    rows.own_row, rows.m, rows.p, rows.own = &out[0], m, p, own
    with nogil:
        sfc_reduce(code, &rows, <float>p if mean else 1.0, &residual[0], &out[0])


def decode(const uint16_t[::1] data, arrays, str kind):
    """Widen the 16-bit values ``data`` into the float32 ``arrays``, in order (in place).

    Raises:
        TypeError, ValueError: a bad or read-only array, or sizes that do not add up.
    """
    cdef views_t a
    cdef int code = _kind(kind, "decode()")
    cdef Py_ssize_t i, off = 0, m
    cdef const uint16_t* src = &data[0] if data.shape[0] else NULL
    _acquire(&a, arrays, True, "decode()")
    try:
        if a.total != data.shape[0]:
            raise ValueError(f"decode(): the arrays hold {a.total} values but data has "
                             f"{data.shape[0]}; pass arrays of data's total size")
        with nogil:
            for i in range(a.count):
                m = a.v[i].len // 4
                sfc_decode(code, src + off, <float*>a.v[i].buf, m)
                off += m
    finally:
        _release(&a)

