# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
"""Flat-buffer engine (private): reduce or broadcast many float arrays with few MPI collectives.

A :class:`FlatBuffer` takes a list of writable, contiguous float32/float64 arrays (numpy arrays,
or views of framework parameter/gradient memory) and works on them in place:

* arrays smaller than the fusion threshold are packed into one persistent contiguous buffer per
  dtype (copies with the GIL released), reduced or broadcast with ONE collective per dtype, and
  unpacked back (scaled by 1/size on the way out for a mean);
* arrays at or above the threshold (and a lone small array of its dtype) are reduced in place on
  their own memory, in chunks of ``chunk_bytes`` so that the 1/size scaling of a mean runs on
  data still in cache right after its collective.

MPI is reached only through mpi4py's buffer calls (``Allreduce``/``Bcast`` with ``IN_PLACE``,
which release the GIL), so this module links to no MPI library and works with whichever MPI
mpi4py was built for. Buffers are allocated when the layout changes, never in steady state.

Every rank must pass arrays of the same dtypes and shapes in the same order. A 64-bit hash of
the layout (with the operation, root, threshold and chunk size) is checked across ranks by a
two-integer ``Iallreduce(MAX)`` that overlaps the packing; on a mismatch, or when a rank got
invalid input, every rank raises the same clear error instead of corrupting memory or hanging.
"""

from cpython.buffer cimport (
    PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_IsContiguous, PyBuffer_Release,
    PyObject_CheckBuffer, PyObject_GetBuffer,
)
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np

cdef enum dkind_t:
    DK_NONE = 0
    DK_F32 = 1
    DK_F64 = 2

cdef enum opcode_t:
    OP_SUM = 0
    OP_MEAN = 1
    OP_MIN = 2
    OP_MAX = 3
    OP_PROD = 4
    OP_BCAST = 5

cdef tuple _OP_NAMES = ("sum", "mean", "min", "max", "prod")
cdef tuple _KIND_NAMES = ("?", "float32", "float64")

# Header marker of a rank whose input was rejected: never a valid layout hash (those are < 2**62).
cdef int64_t _BAD_INPUT = (<int64_t>1) << 62

DEFAULT_FUSION_THRESHOLD = 1 << 16
DEFAULT_CHUNK_BYTES = 1 << 20


cdef struct slot_t:
    char* ptr             # data of this call
    Py_ssize_t n          # elements
    Py_ssize_t nbytes
    int kind              # dkind_t
    bint packed           # copied through the packed buffer of its dtype
    Py_ssize_t offset     # byte offset in that buffer
    Py_ssize_t plan_n     # n and kind the plan was made for
    int plan_kind


# ---------------------------------------------------------------------------------------------
# Kernels (no GIL)

cdef inline void _div_f32(float* dst, const float* src, Py_ssize_t n, float d) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = src[i] / d


cdef inline void _div_f64(double* dst, const double* src, Py_ssize_t n,
                          double d) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = src[i] / d


cdef inline void _divide(int kind, char* dst, const char* src, Py_ssize_t n,
                         int size) noexcept nogil:
    # dst = src / size elementwise (dst may be src): the mean of a SUM, as numpy's x / size.
    if kind == DK_F32:
        _div_f32(<float*>dst, <const float*>src, n, <float>size)
    else:
        _div_f64(<double*>dst, <const double*>src, n, <double>size)


cdef void _pack(const slot_t* s, Py_ssize_t count, char* b32, char* b64) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if s[i].packed:
            memcpy((b32 if s[i].kind == DK_F32 else b64) + s[i].offset, s[i].ptr, s[i].nbytes)


cdef void _unpack(const slot_t* s, Py_ssize_t count, const char* b32, const char* b64,
                  int divide_by) noexcept nogil:
    cdef Py_ssize_t i
    cdef const char* src
    for i in range(count):
        if s[i].packed:
            src = (b32 if s[i].kind == DK_F32 else b64) + s[i].offset
            if divide_by > 1:
                _divide(s[i].kind, s[i].ptr, src, s[i].n, divide_by)
            else:
                memcpy(s[i].ptr, src, s[i].nbytes)


cdef inline uint64_t _fnv(uint64_t h, int64_t word) noexcept nogil:
    # FNV-1a over the 8 bytes of word.
    cdef int k
    cdef uint64_t w = <uint64_t>word
    for k in range(8):
        h ^= (w >> (8 * k)) & 0xFF
        h *= 1099511628211ULL
    return h


# ---------------------------------------------------------------------------------------------
# MPI through mpi4py, imported on first collective (a communicator exists by then)

cdef object _MPI = None
cdef tuple _MPI_OPS = None


cdef object _mpi():
    global _MPI, _MPI_OPS
    if _MPI is None:
        from mpi4py import MPI
        _MPI_OPS = (MPI.SUM, MPI.SUM, MPI.MIN, MPI.MAX, MPI.PROD)
        _MPI = MPI
    return _MPI


cdef int _op_code(object op) except -2:
    # -1: unknown.
    if isinstance(op, str):
        try:
            return _OP_NAMES.index(op)
        except ValueError:
            return -1
    return -1


cdef class FlatBuffer:
    """Reduce or broadcast lists of float32/float64 arrays in place with few MPI collectives.

    Keep one instance per communicator and call it with the same list layout again and again
    (the gradients of a model, its parameters): the packed buffers and the plan are reused, so a
    steady-state call allocates no array memory.

    Args:
        fusion_threshold: arrays of fewer bytes than this are packed into one buffer per dtype
            and moved with one collective; larger ones are reduced in place on their own memory.
            0 packs nothing.
        chunk_bytes: arrays reduced in place are sent in pieces of at most this many bytes, each
            scaled (for a mean) right after its collective while it is still in cache.

    Raises:
        ValueError: ``fusion_threshold`` < 0 or ``chunk_bytes`` < 64.

    Not thread-safe: one call at a time per instance (a concurrent call raises RuntimeError).
    """

    cdef slot_t* _slots
    cdef Py_buffer* _views
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _nacq
    cdef Py_ssize_t _count
    cdef readonly Py_ssize_t fusion_threshold
    cdef readonly Py_ssize_t chunk_bytes
    cdef bint _busy
    cdef bint _planned
    cdef Py_ssize_t _plan_threshold
    cdef Py_ssize_t _plan_count
    cdef Py_ssize_t _n32
    cdef Py_ssize_t _n64
    cdef object _store32
    cdef object _store64
    cdef object _view32
    cdef object _view64
    cdef char* _p32
    cdef char* _p64
    cdef object _hdr
    cdef int64_t* _hdr_p
    cdef list _chunks

    def __cinit__(self):
        self._slots = NULL
        self._views = NULL
        self._cap = 0
        self._nacq = 0
        self._count = 0
        self._busy = False
        self._planned = False
        self._chunks = []

    def __init__(self, Py_ssize_t fusion_threshold=DEFAULT_FUSION_THRESHOLD,
                 Py_ssize_t chunk_bytes=DEFAULT_CHUNK_BYTES):
        if fusion_threshold < 0:
            raise ValueError(f"FlatBuffer(): fusion_threshold must be >= 0 bytes, got "
                             f"{fusion_threshold!r}; pass 0 to pack nothing")
        if chunk_bytes < 64:
            raise ValueError(f"FlatBuffer(): chunk_bytes must be >= 64, got {chunk_bytes!r}; "
                             f"pass a size such as {DEFAULT_CHUNK_BYTES}")
        self.fusion_threshold = fusion_threshold
        self.chunk_bytes = chunk_bytes
        self._store32 = np.empty(0, np.float32)
        self._store64 = np.empty(0, np.float64)
        self._view32 = self._store32
        self._view64 = self._store64
        self._hdr = np.zeros(2, np.int64)
        cdef int64_t[::1] h = self._hdr
        self._hdr_p = &h[0]

    def __dealloc__(self):
        self._release()
        PyMem_Free(self._slots)
        PyMem_Free(self._views)

    @property
    def nbytes(self):
        """Bytes held by the packed buffers (float32 and float64 together)."""
        return self._store32.nbytes + self._store64.nbytes

    def __repr__(self):
        return (f"FlatBuffer(fusion_threshold={self.fusion_threshold}, "
                f"chunk_bytes={self.chunk_bytes}, nbytes={self.nbytes})")

    # -- public calls ----------------------------------------------------------------------

    def allreduce(self, comm, arrays, op="sum", bint check=True):
        """Reduce every array over the ranks of ``comm``, in place.

        Args:
            comm: an mpi4py communicator, or None for a single process (then only the inputs
                are checked: a reduction over one rank changes nothing).
            arrays: list or tuple of writable, C- or Fortran-contiguous float32/float64 arrays
                (any object exporting such a buffer). All ranks must pass the same dtypes and
                shapes in the same order.
            op: ``'sum'``, ``'mean'`` (SUM then divided by the number of ranks, in the array's
                dtype, as ``x / size``), ``'min'``, ``'max'`` or ``'prod'``.
            check: verify across ranks that layouts and arguments agree (one tiny collective
                overlapped with packing). With False a mismatch is undefined behaviour.

        Raises:
            TypeError: an item is not a float32/float64 buffer.
            ValueError: an item is read-only or not contiguous, ``op`` is unknown, or the
                layouts differ between ranks (the message names the first differing index).
                Under MPI every rank raises when any rank's input is wrong.
            RuntimeError: the instance is already in use by another thread.
        """
        cdef int code = _op_code(op)
        self._enter()
        try:
            self._run(comm, arrays, code, -1, check, op, "FlatBuffer.allreduce()")
        finally:
            self._leave()

    def bcast(self, comm, arrays, int root=0, bint check=True):
        """Copy every array of rank ``root`` into the same array of the other ranks, in place.

        Args:
            comm: an mpi4py communicator, or None for a single process (inputs checked only).
            arrays: as for :meth:`allreduce`; the root's arrays are read, the others written.
            root: rank whose values are sent; the same on every rank.
            check: verify across ranks that layouts and roots agree.

        Raises:
            TypeError, ValueError, RuntimeError: as for :meth:`allreduce`; ValueError too when
                ``root`` is out of range or differs between ranks.
        """
        self._enter()
        try:
            self._run(comm, arrays, OP_BCAST, root, check, None, "FlatBuffer.bcast()")
        finally:
            self._leave()

    # -- machinery -------------------------------------------------------------------------

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError("FlatBuffer: a call is already running on this instance; use one "
                               "FlatBuffer per thread")
        self._busy = True
        return 0

    cdef void _leave(self) noexcept:
        self._release()
        self._busy = False

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self._nacq):
            PyBuffer_Release(&self._views[i])
        self._nacq = 0

    cdef int _reserve(self, Py_ssize_t n) except -1:
        cdef void* p
        if n <= self._cap:
            return 0
        p = PyMem_Realloc(self._slots, n * sizeof(slot_t))
        if p == NULL:
            raise MemoryError()
        self._slots = <slot_t*>p
        p = PyMem_Realloc(self._views, n * sizeof(Py_buffer))
        if p == NULL:
            raise MemoryError()
        self._views = <Py_buffer*>p
        memset(self._slots + self._cap, 0, (n - self._cap) * sizeof(slot_t))
        self._cap = n
        self._planned = False
        return 0

    cdef object _acquire(self, object arrays, str where):
        # Take every buffer; return None, or (exception type, message) for the first bad item.
        cdef Py_ssize_t i, n
        cdef Py_buffer* v
        cdef slot_t* s
        cdef const char* f
        cdef int kind
        if not isinstance(arrays, (list, tuple)):
            return (TypeError, f"{where}: arrays must be a list or tuple of arrays, got "
                               f"{type(arrays).__name__!r}; pass a list of numpy arrays")
        n = len(arrays)
        self._reserve(n)
        self._count = n
        for i in range(n):
            obj = arrays[i]
            v = &self._views[i]
            try:
                PyObject_GetBuffer(obj, v, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS)
            except (BufferError, TypeError, ValueError) as exc:
                if not PyObject_CheckBuffer(obj):
                    return (TypeError, f"{where}: array {i} is a {type(obj).__name__!r}, not a "
                                       f"buffer; pass float32/float64 numpy arrays")
                return (ValueError, f"{where}: array {i} cannot be used in place ({exc}); pass "
                                    f"writable, contiguous float32/float64 arrays")
            self._nacq = i + 1
            f = v.format
            if f == NULL:
                f = b"B"
            if f[0] == b"@" or f[0] == b"=" or f[0] == b"<":
                f += 1
            kind = DK_NONE
            if f[0] != 0 and f[1] == 0:
                if f[0] == b"f" and v.itemsize == 4:
                    kind = DK_F32
                elif f[0] == b"d" and v.itemsize == 8:
                    kind = DK_F64
            if kind == DK_NONE:
                dt = getattr(obj, "dtype", None)
                fmt = (<bytes>v.format).decode() if v.format != NULL else "B"
                what = str(dt) if dt is not None else f"format {fmt!r}"
                return (TypeError, f"{where}: array {i} has dtype {what}; only float32 and "
                                   f"float64 arrays are supported: convert it or leave it out")
            s = &self._slots[i]
            s.ptr = <char*>v.buf
            s.kind = kind
            s.nbytes = v.len
            s.n = v.len // v.itemsize
        return None

    cdef uint64_t _layout_hash(self, int code, int root):
        # Everything that must agree across ranks: call, root, plan parameters, every array's
        # dtype, shape and memory order.
        cdef uint64_t h = 14695981039346656037ULL
        cdef Py_ssize_t i, d
        cdef Py_buffer* v
        h = _fnv(h, code)
        h = _fnv(h, root)
        h = _fnv(h, self.fusion_threshold)
        h = _fnv(h, self.chunk_bytes)
        h = _fnv(h, self._count)
        for i in range(self._count):
            v = &self._views[i]
            h = _fnv(h, self._slots[i].kind)
            h = _fnv(h, v.ndim)
            for d in range(v.ndim):
                h = _fnv(h, v.shape[d])
            h = _fnv(h, v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C"))
        h &= (((<uint64_t>1) << 62) - 1)
        return h if h != 0 else 1

    cdef int _plan(self) except -1:
        # Decide what is packed and where; re-allocate the packed buffers only when they grow.
        cdef Py_ssize_t i, n32 = 0, n64 = 0, small32 = 0, small64 = 0
        cdef slot_t* s
        cdef float[::1] m32
        cdef double[::1] m64
        cdef bint same = (self._planned and self._plan_count == self._count
                          and self._plan_threshold == self.fusion_threshold)
        if same:
            for i in range(self._count):
                s = &self._slots[i]
                if s.plan_n != s.n or s.plan_kind != s.kind:
                    same = False
                    break
        if same:
            return 0
        for i in range(self._count):
            s = &self._slots[i]
            s.packed = 0 < s.nbytes < self.fusion_threshold
            if s.packed:
                if s.kind == DK_F32:
                    small32 += 1
                else:
                    small64 += 1
        for i in range(self._count):
            s = &self._slots[i]
            if s.packed and (small32 if s.kind == DK_F32 else small64) == 1:
                s.packed = False  # alone in its dtype: nothing to fuse, reduce it in place
            if s.packed:
                if s.kind == DK_F32:
                    s.offset = n32 * 4
                    n32 += s.n
                else:
                    s.offset = n64 * 8
                    n64 += s.n
            s.plan_n = s.n
            s.plan_kind = s.kind
        if n32 > self._store32.shape[0]:
            self._store32 = np.empty(n32, np.float32)
        if n64 > self._store64.shape[0]:
            self._store64 = np.empty(n64, np.float64)
        self._view32 = self._store32[:n32]
        self._view64 = self._store64[:n64]
        m32 = self._store32
        m64 = self._store64
        self._p32 = <char*>&m32[0] if m32.shape[0] else NULL
        self._p64 = <char*>&m64[0] if m64.shape[0] else NULL
        self._n32 = n32
        self._n64 = n64
        self._chunks = [None] * self._count
        self._plan_threshold = self.fusion_threshold
        self._plan_count = self._count
        self._planned = True
        return 0

    cdef tuple _pieces(self, Py_ssize_t i, object obj):
        # Buffers handed to mpi4py for an array reduced in place: the array itself, or views of
        # at most chunk_bytes. Cached while the same object keeps the same memory.
        cdef slot_t* s = &self._slots[i]
        cdef object cached = self._chunks[i]
        cdef Py_ssize_t step = s.n, start
        if cached is not None and (<tuple>cached)[0] is obj and \
                (<tuple>cached)[1] == <Py_ssize_t>s.ptr:
            return <tuple>cached
        if s.nbytes <= self.chunk_bytes:
            pieces = (obj,)
        else:
            flat = np.asarray(obj).reshape(-1, order="A")
            step = self.chunk_bytes // (4 if s.kind == DK_F32 else 8)
            pieces = tuple([flat[start:start + step] for start in range(0, s.n, step)])
        cached = (obj, <Py_ssize_t>s.ptr, pieces, step)
        self._chunks[i] = cached
        return <tuple>cached

    cdef int _run(self, object comm, object arrays, int code, int root, bint check,
                  object op, str where) except -1:
        cdef int size = 1, rank = 0
        cdef object err = None, req = None
        cdef uint64_t h = 0
        cdef Py_ssize_t i, k, step, start
        cdef slot_t* s
        cdef char* b32
        cdef char* b64
        cdef int divide_by
        cdef tuple cached
        mpi_op = None
        if comm is not None:
            size = comm.Get_size()
            rank = comm.Get_rank()
        if code < 0:
            err = (ValueError, f"{where}: unknown op {op!r}; pass one of "
                               f"{', '.join(map(repr, _OP_NAMES))}")
        elif code == OP_BCAST and not 0 <= root < size:
            err = (ValueError, f"{where}: root {root!r} is not a rank of a communicator of "
                               f"size {size}; pass 0 <= root < {size}")
        if err is None:
            err = self._acquire(arrays, where)
        if size == 1:
            if err is not None:
                raise err[0](err[1])
            return 0
        if err is None:
            h = self._layout_hash(code, root)
            self._plan()
        MPI = _mpi()
        if check:
            self._hdr_p[0] = <int64_t>h if err is None else _BAD_INPUT
            self._hdr_p[1] = -(<int64_t>h) if err is None else 0
            req = comm.Iallreduce(MPI.IN_PLACE, self._hdr, op=MPI.MAX)
        b32 = self._p32
        b64 = self._p64
        if err is None and (code != OP_BCAST or rank == root):
            with nogil:
                _pack(self._slots, self._count, b32, b64)
        if check:
            req.Wait()
            if err is not None or self._hdr_p[0] != <int64_t>h or \
                    self._hdr_p[1] != -(<int64_t>h):
                self._mismatch(comm, err, code, root, op, where)
        elif err is not None:
            raise err[0](err[1])

        # The collectives: one per packed dtype, then the arrays reduced in place.
        if code == OP_BCAST:
            if self._n32:
                comm.Bcast(self._view32, root=root)
            if self._n64:
                comm.Bcast(self._view64, root=root)
        else:
            mpi_op = _MPI_OPS[code]
            if self._n32:
                comm.Allreduce(MPI.IN_PLACE, self._view32, op=mpi_op)
            if self._n64:
                comm.Allreduce(MPI.IN_PLACE, self._view64, op=mpi_op)
        divide_by = size if code == OP_MEAN else 1
        for i in range(self._count):
            s = &self._slots[i]
            if s.packed or s.n == 0:
                continue
            cached = self._pieces(i, arrays[i])
            step = cached[3]
            start = 0
            for piece in <tuple>cached[2]:
                if code == OP_BCAST:
                    comm.Bcast(piece, root=root)
                else:
                    comm.Allreduce(MPI.IN_PLACE, piece, op=mpi_op)
                    if divide_by > 1:
                        k = min(step, s.n - start)
                        with nogil:
                            _divide(s.kind, s.ptr + start * (s.nbytes // s.n),
                                    s.ptr + start * (s.nbytes // s.n), k, divide_by)
                start += step
        if code != OP_BCAST or rank != root:
            with nogil:
                _unpack(self._slots, self._count, b32, b64, divide_by)
        return 0

    cdef int _mismatch(self, object comm, object err, int code, int root, object op,
                       str where) except -1:
        # Error path, taken by every rank together: gather what each rank passed, raise the
        # same ValueError everywhere (a rank with invalid input raises its own error).
        cdef Py_ssize_t i, d
        cdef Py_buffer* v
        if err is not None:
            mine = ("error", err[1])
        else:
            layout = []
            for i in range(self._count):
                v = &self._views[i]
                shape = []
                for d in range(v.ndim):
                    shape.append(v.shape[d])
                shape = tuple(shape)
                order = "F" if v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C") else "C"
                layout.append((_KIND_NAMES[self._slots[i].kind], shape, order))
            call = "bcast" if code == OP_BCAST else "allreduce"
            mine = ("layout", call, op, root, self.fusion_threshold, self.chunk_bytes, layout)
        everyone = comm.allgather(mine)
        if err is not None:
            raise err[0](err[1])
        for r, desc in enumerate(everyone):
            if desc[0] == "error":
                raise ValueError(f"{where}: rank {r} passed invalid input ({desc[1]}); every "
                                 f"rank must pass valid arrays")
        raise ValueError(_describe_difference(where, everyone))


cdef str _fmt_array(tuple a):
    return f"{a[0]} {a[1]!r}" + (" Fortran-order" if a[2] == "F" else "")


cdef str _describe_difference(str where, list everyone):
    cdef tuple first = everyone[0]
    cdef str fix = "pass arrays of the same dtypes and shapes, in the same order, on every rank"
    names = ("call", "op", "root", "fusion_threshold", "chunk_bytes")
    for j, name in enumerate(names, start=1):
        for r, desc in enumerate(everyone):
            if desc[j] != first[j]:
                return (f"{where}: {name} differs between ranks: rank 0 has {first[j]!r}, rank "
                        f"{r} has {desc[j]!r}; call the same operation with the same arguments "
                        f"on every rank")
    counts = [len(d[6]) for d in everyone]
    for i in range(max(counts)):
        for r, desc in enumerate(everyone):
            mine = desc[6][i] if i < counts[r] else None
            ref = first[6][i] if i < counts[0] else None
            if mine != ref:
                a = _fmt_array(ref) if ref is not None else "no array"
                b = _fmt_array(mine) if mine is not None else "no array"
                extra = ""
                if counts[r] != counts[0]:
                    extra = f" (rank 0 passes {counts[0]} arrays, rank {r} passes {counts[r]})"
                return (f"{where}: array {i} differs between ranks: rank 0 has {a}, rank {r} "
                        f"has {b}{extra}; {fix}")
    return f"{where}: the ranks disagree on the layout; {fix}"
