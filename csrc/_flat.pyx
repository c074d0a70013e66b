# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
"""Flat-buffer engine (private): reduce or broadcast many float arrays with few MPI collectives.

A :class:`FlatBuffer` takes a list of writable, contiguous float32/float64 arrays (numpy arrays,
or numpy views of framework parameter/gradient memory) and works on them in place:

* arrays smaller than the fusion threshold are packed into one persistent contiguous buffer per
  dtype (copies with the GIL released), reduced or broadcast with ONE collective per dtype, and
  unpacked back (divided by the number of ranks on the way out for a mean);
* arrays at or above the threshold are reduced or broadcast in place on their own memory, with
  no copy (a copy costs about a fifth of an Allreduce of the same bytes);
* sums and means of buffers of ``RING_THRESHOLD`` bytes or more go through the engine's own
  ring reduce-scatter and allgather instead of ``Allreduce`` (``Sendrecv``/``Isend``/``Irecv``
  between neighbours, on a duplicate of the communicator, into one persistent scratch buffer).
  All large arrays of a dtype form one virtual concatenation, cut into one chunk per rank: a
  step moves one message per array piece, all posted at once. MPI's Allreduce allocates a
  temporary buffer of the message's size on every call (a 40 MB one faults in fresh pages each
  time), and a mean would need a separate division pass after it; the ring divides in the
  reduction step itself, so a mean costs what a sum does. Every element is reduced once, on one
  rank, and copied to the others, so all ranks hold bit-identical results;
* smaller sums and means (the packed buffers) on a power-of-two number of ranks use recursive
  doubling: each step swaps the whole partial sum with one partner (``Sendrecv``) and adds, so
  two ranks need one message round where MPI's ``Allreduce`` takes two at these sizes
  (reduce-scatter, then allgather). Partners add the same two values, so the bits agree. When
  the packed buffer is all there is to move, the last addition happens in the unpacking: each
  array receives (own + partner's) / size directly, one pass over the data less. Other rank
  counts, and min/max/prod, use ``Allreduce``;
* a broadcast of several buffers (packed ones and large arrays) goes down the engine's binomial
  tree below 8 ranks, every buffer of a transfer posted at once; one buffer, or 8 ranks and
  more, use MPI's ``Bcast``;
* otherwise a mean is divided by the number of ranks after the last collective, in the
  unpacking copy for packed arrays and in one pass for the others (work between collectives
  would delay every rank's next collective).

The packed buffer follows Horovod's fusion buffer and DDP's buckets, inside one process.

``FlatBuffer(algorithm='mpi')`` (or ``SPINFAST_COLLECTIVES=mpi`` when it is made) keeps the
packing but bypasses the engine's own algorithms (ring, recursive doubling, binomial tree, the
two-rank broadcast): every buffer, packed or in place, goes through MPI's ``Allreduce`` or
``Bcast``, and a mean is divided after it. ``'engine'`` and ``'auto'`` (the default) take the
paths above. The choice is part of the layout hash, so ranks that disagree raise, not hang.

MPI is reached only through mpi4py's buffer calls (``Allreduce``/``Bcast`` with ``IN_PLACE``,
point-to-point calls; all release the GIL), so this module links to no MPI library and works
with whichever MPI mpi4py was built for. Buffers are allocated when the layout changes, never
in steady state.

Layout agreement. Every rank must pass arrays of the same dtypes and shapes in the same order.
Each instance keeps, identically on every rank, the 64-bit hash of the last layout all ranks
agreed on (dtypes, shapes, memory order, operation, root, fusion threshold):

* not agreed (first call, or after a change): a two-integer ``Iallreduce(MAX)`` of
  ``[hash, -hash]``, overlapped with the packing, tells every rank whether all hashes are equal;
* agreed: the first collective of the call carries one flag element, at the front of the
  packed buffer of a reduction (no extra collective), or alone in a one-element buffer when
  nothing is packed and for a broadcast on 3 ranks or more (one tiny extra collective). Ranks
  whose layout is unchanged pack their data and send the neutral value; a rank whose layout
  changed (or whose input is invalid) sends the buffer of the agreed size with the flag set,
  using the agreed operation. Every rank sees the same reduced flag; if it is set, everyone
  discards that collective (arrays are written only when unpacking) and falls back to the hash
  exchange;
* agreed broadcast on two ranks: the agreement travels with the data. The root sends each
  agreed buffer, or an empty message instead if its layout changed; the other rank sends its
  flag back at the same time. A receiver whose layout holds receives straight into its arrays
  (a packed buffer is scattered through an ``hindexed`` datatype built when the arrays'
  addresses change, so there is no unpacking copy); one whose layout changed receives into a
  throwaway buffer. An empty message writes nothing, so no array is written unless both ranks
  agree; if they do not, both fall back to the hash exchange.

On disagreement every rank gathers the others' layouts and raises the same ValueError naming
the first differing index (a rank with invalid input raises its own TypeError/ValueError), so a
mistake never corrupts memory or hangs. All ranks must still make the same calls in the same
order on the same instance, as for any MPI collective. An instance may move to another
communicator; on one of another size it starts with a new agreement, so the ranks of a
sub-communicator may use it there and then join the others on the whole.
"""

from cpython.buffer cimport (
    PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_IsContiguous, PyBuffer_Release,
    PyObject_CheckBuffer, PyObject_GetBuffer,
)
from cpython.buffer cimport PyBUF_READ, PyBUF_WRITE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

import os

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

cdef enum fgroup_t:
    FG_F32 = 0      # the flag is element 0 of the packed float32 buffer
    FG_F64 = 1      # ... of the packed float64 buffer
    FG_ALONE = 2    # a separate one-element float64 buffer

cdef enum algo_t:
    ALG_AUTO = 0
    ALG_MPI = 1
    ALG_ENGINE = 2

cdef tuple _OP_NAMES = ("sum", "mean", "min", "max", "prod")
# FlatBuffer(algorithm=) and SPINFAST_COLLECTIVES, by algo_t value.
ALGORITHMS = ("auto", "mpi", "engine")
cdef tuple _KIND_NAMES = ("?", "float32", "float64")

# Header of a rank whose input was rejected: never a valid layout hash (those are < 2**62).
cdef int64_t _BAD_INPUT = (<int64_t>1) << 62

DEFAULT_FUSION_THRESHOLD = 1 << 16
# Sums and means of buffers this large (bytes) use the engine's ring instead of MPI Allreduce.
RING_THRESHOLD = 1 << 16
cdef Py_ssize_t _RING_MIN = RING_THRESHOLD
cdef int _RING_TAG = 7
# Broadcasts on fewer ranks go down the engine's binomial tree (MPICH's choice too below 8
# ranks); on more, MPI's Bcast of each buffer (scatter + allgather for large messages).
cdef int _TREE_MAX_RANKS = 8


cdef struct slot_t:
    char* ptr             # data of this call (the result)
    const char* src       # where its input is read: ptr, or the matching item of sources
    Py_ssize_t n          # elements
    Py_ssize_t nbytes
    int kind              # dkind_t
    bint packed           # goes through the packed buffer of its dtype
    Py_ssize_t offset     # byte offset in that buffer
    Py_ssize_t plan_n     # n and kind the current plan was made for
    int plan_kind


# ---------------------------------------------------------------------------------------------
# Kernels (no GIL)

cdef extern from "_flat.h" nogil:
    void sff_scale_f32(float* x, Py_ssize_t n, int size)
    void sff_scale_f64(double* x, Py_ssize_t n, int size)
    void sff_copy_scale_f32(float* dst, const float* src, Py_ssize_t n, int size)
    void sff_copy_scale_f64(double* dst, const double* src, Py_ssize_t n, int size)
    void sff_add_f32(float* dst, const float* a, const float* b, Py_ssize_t n, int size)
    void sff_add_f64(double* dst, const double* a, const double* b, Py_ssize_t n, int size)
    uint64_t sff_hash(uint64_t h, const unsigned char* p, size_t nbytes)


cdef inline void _scale(int kind, char* x, Py_ssize_t n, int size) noexcept nogil:
    # The mean of a SUM, as numpy's x / size in the array's dtype.
    if kind == DK_F32:
        sff_scale_f32(<float*>x, n, size)
    else:
        sff_scale_f64(<double*>x, n, size)


cdef int _buffer_kind(const Py_buffer* v) noexcept:
    # DK_F32 / DK_F64 for a native float32 / float64 buffer format, else DK_NONE.
    cdef const char* f = v.format
    if f == NULL:
        return DK_NONE  # plain bytes
    if f[0] == b"@" or f[0] == b"=" or f[0] == b"<":
        f += 1
    if f[0] == 0 or f[1] != 0:
        return DK_NONE
    if f[0] == b"f" and v.itemsize == 4:
        return DK_F32
    if f[0] == b"d" and v.itemsize == 8:
        return DK_F64
    return DK_NONE


cdef inline bint _rings(int algo, int code, Py_ssize_t nbytes) noexcept nogil:
    # Whether a reduction of this buffer goes through the engine's ring (same on every rank).
    return algo != ALG_MPI and (code == OP_SUM or code == OP_MEAN) and nbytes >= _RING_MIN


cdef inline Py_ssize_t _chunk_start(Py_ssize_t n, int chunk, int size) noexcept nogil:
    return n * chunk // size


cdef void _add_chunk(char** ptrs, char** srcs, Py_ssize_t* ns, Py_ssize_t m, int kind,
                    Py_ssize_t isz, Py_ssize_t ra, Py_ssize_t rb, const char* scratch,
                    int divide_by) noexcept nogil:
    # The arrays' elements of the received chunk [ra, rb) of the virtual concatenation become
    # this rank's input (srcs) plus the received partial sum (packed at the start of scratch),
    # divided by divide_by (1: none).
    cdef Py_ssize_t j, vs = 0, lo, hi
    for j in range(m):
        lo = ra if ra > vs else vs
        hi = rb if rb < vs + ns[j] else vs + ns[j]
        if hi > lo:
            if kind == DK_F32:
                sff_add_f32(<float*>(ptrs[j] + (lo - vs) * isz),
                            <const float*>(srcs[j] + (lo - vs) * isz),
                            <const float*>(scratch + (lo - ra) * isz), hi - lo, divide_by)
            else:
                sff_add_f64(<double*>(ptrs[j] + (lo - vs) * isz),
                            <const double*>(srcs[j] + (lo - vs) * isz),
                            <const double*>(scratch + (lo - ra) * isz), hi - lo, divide_by)
        vs += ns[j]


cdef void _pack(const slot_t* s, Py_ssize_t count, char* b32, char* b64) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if s[i].packed:
            memcpy((b32 if s[i].kind == DK_F32 else b64) + s[i].offset, s[i].src, s[i].nbytes)


cdef void _unpack_sum(const slot_t* s, Py_ssize_t count, const char* b32, const char* b64,
                     const char* other, int divide_by) noexcept nogil:
    # The last step of a reduction fused with the unpacking, for a plan with one packed buffer
    # (b32 or b64) and nothing else: each array gets (own + other partial sum) / divide_by,
    # ``other`` laid out as the packed buffer.
    cdef Py_ssize_t i
    for i in range(count):
        if not s[i].packed:
            continue
        if s[i].kind == DK_F32:
            sff_add_f32(<float*>s[i].ptr, <const float*>(b32 + s[i].offset),
                        <const float*>(other + s[i].offset), s[i].n, divide_by)
        else:
            sff_add_f64(<double*>s[i].ptr, <const double*>(b64 + s[i].offset),
                        <const double*>(other + s[i].offset), s[i].n, divide_by)


cdef void _unpack(const slot_t* s, Py_ssize_t count, const char* b32, const char* b64,
                  int divide_by) noexcept nogil:
    cdef Py_ssize_t i
    cdef const char* src
    for i in range(count):
        if s[i].packed:
            src = (b32 if s[i].kind == DK_F32 else b64) + s[i].offset
            if divide_by > 1 and s[i].kind == DK_F32:
                sff_copy_scale_f32(<float*>s[i].ptr, <const float*>src, s[i].n, divide_by)
            elif divide_by > 1:
                sff_copy_scale_f64(<double*>s[i].ptr, <const double*>src, s[i].n, divide_by)
            else:
                memcpy(s[i].ptr, src, s[i].nbytes)


cdef inline uint64_t _fnv(uint64_t h, int64_t word) noexcept nogil:
    # One word into the layout hash: xor, multiply by an odd constant, fold the high bits down
    # (a word at a time; every rank computes the same value).
    h = (h ^ <uint64_t>word) * 0x9E3779B97F4A7C15ULL
    return h ^ (h >> 29)


cdef inline double _flag_ok(int code) noexcept nogil:
    # Neutral flag value of a reduction (changed ranks send _flag_set).
    return 1.0 if code == OP_PROD else 0.0


cdef inline double _flag_set(int code) noexcept nogil:
    if code == OP_PROD:
        return 2.0
    if code == OP_MIN:
        return -1.0
    return 1.0


def checksum(arrays):
    """A 64-bit hash of the bytes of ``arrays`` (any contiguous buffers), in order.

    Equal contents give equal values on every rank: comparing checksums over ranks tells
    whether copies of parameters are still bit-identical, at the cost of reading them once
    (with the GIL released) instead of moving them. Returns an int in [0, 2**63).

    Raises:
        TypeError: an item is not a buffer.
        ValueError: an item is not contiguous.
    """
    cdef uint64_t h = 0
    cdef Py_buffer view
    cdef Py_ssize_t i
    for i, obj in enumerate(arrays):
        try:
            PyObject_GetBuffer(obj, &view, PyBUF_ANY_CONTIGUOUS)
        except (BufferError, TypeError, ValueError) as exc:
            if not PyObject_CheckBuffer(obj):
                raise TypeError(f"checksum(): item {i} is a {type(obj).__name__!r}, not a "
                                f"buffer") from None
            raise ValueError(f"checksum(): item {i} is not contiguous ({exc})") from None
        try:
            with nogil:
                h = sff_hash(h, <const unsigned char*>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
    return <int64_t>(h >> 1)


# ---------------------------------------------------------------------------------------------
# MPI through mpi4py, imported on the first collective (a communicator exists by then)

cdef object _MPI = None
cdef tuple _MPI_OPS = None


cdef object _mpi():
    global _MPI, _MPI_OPS
    if _MPI is None:
        from mpi4py import MPI
        _MPI_OPS = (MPI.SUM, MPI.SUM, MPI.MIN, MPI.MAX, MPI.PROD, MPI.MAX)
        _MPI = MPI
    return _MPI


# The ring's point-to-point messages travel on a duplicate of the caller's communicator, so they
# can never match a receive of the program's own (a collective's context is private likewise).
# One duplicate per communicator, made collectively by the call that first needs it: every rank
# makes the same calls, so every rank makes it in the same call. A handle that MPI reused for
# another communicator (after a Comm.Free) is caught by comparing the groups (0.1 us).
cdef dict _RING_COMMS = {}


cdef object _ring_comm(object comm):
    key = comm.py2f()
    dup = _RING_COMMS.get(key)
    if dup is None or _MPI.Comm.Compare(comm, dup) != _MPI.CONGRUENT:
        dup = _RING_COMMS[key] = comm.Dup()
    return dup


cdef class FlatBuffer:
    """Reduce or broadcast lists of float32/float64 arrays in place with few MPI collectives.

    Keep one instance per use (the gradients of a model, its parameters) and call it with the
    same list layout again and again: the packed buffers, the plan and the layout agreement are
    reused, so a steady-state call allocates no array memory and adds no collective.

    Args:
        fusion_threshold: arrays of fewer bytes than this are packed into one buffer per dtype
            and moved with one collective; larger ones are reduced or broadcast in place on
            their own memory. 0 packs nothing. Must be the same on every rank.
        algorithm: ``'auto'`` (the engine's choice), ``'engine'`` (the engine's own ring,
            recursive doubling and tree where they apply) or ``'mpi'`` (MPI's ``Allreduce`` and
            ``Bcast`` on the packed buffers and the large arrays; results equal to the engine's
            up to the order of float additions). None reads the environment variable
            ``SPINFAST_COLLECTIVES`` (unset or empty: ``'auto'``). Must be the same on every
            rank (a difference raises ValueError on every rank at the first call).

    Raises:
        ValueError: ``fusion_threshold`` < 0, or ``algorithm`` (or SPINFAST_COLLECTIVES) is
            not one of ``'auto'``, ``'mpi'``, ``'engine'``.

    Not thread-safe: one call at a time per instance (a concurrent call raises RuntimeError).
    """

    cdef slot_t* _slots
    cdef Py_buffer* _views
    cdef char** _ring_ptr       # the buffers of one ring or tree (pointers, element counts)
    cdef char** _ring_src       # ... and where a ring reads their inputs
    cdef Py_ssize_t* _ring_n
    cdef Py_buffer* _src_views  # the buffers of ``sources``
    cdef Py_ssize_t _nsrc
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _nacq
    cdef Py_ssize_t _count
    cdef readonly Py_ssize_t fusion_threshold
    cdef int _algo              # algo_t: part of the layout hash, so equal on every rank
    cdef bint _busy
    # current plan
    cdef bint _planned
    cdef bint _plan_bcast
    cdef Py_ssize_t _plan_count
    cdef int _fgroup
    cdef Py_ssize_t _n32
    cdef Py_ssize_t _n64
    cdef object _store32
    cdef object _store64
    cdef object _view32
    cdef object _view64
    cdef char* _p32
    cdef char* _p64
    cdef object _flagbuf
    cdef double* _flag_p
    cdef bint _solo             # the plan has one packed buffer and nothing else to move
    cdef char* _pending         # the other partial sum of the packed buffer, not yet added
    # agreement (identical on every rank)
    cdef bint _agreed
    cdef uint64_t _agreed_hash
    cdef int _agreed_code
    cdef object _agreed_fview
    cdef char* _agreed_fptr
    cdef int _agreed_fkind
    cdef int _agreed_size       # the number of ranks it was made among
    # two ranks, broadcast: the agreed buffers' sizes (the agreement travels with the data)
    cdef object _pair_sizes
    cdef int _agreed_root
    # receive datatypes scattering a packed buffer straight into its arrays (per dtype)
    cdef object _dt32
    cdef object _dt64
    cdef char** _dt_ptrs        # the slot addresses they were built for
    cdef Py_ssize_t _dt_count   # -1: none built
    # the duplicate communicator of the last caller's communicator (see _ring_comm)
    cdef object _rc_comm
    cdef object _rc_handle
    cdef object _rc_dup
    # hash exchange
    cdef object _hdr
    cdef int64_t* _hdr_p
    # the ring's receive buffer
    cdef object _scratch
    cdef char* _scratch_p

    def __cinit__(self):
        self._slots = NULL
        self._views = NULL
        self._ring_ptr = NULL
        self._ring_src = NULL
        self._ring_n = NULL
        self._src_views = NULL
        self._nsrc = 0
        self._cap = 0
        self._nacq = 0
        self._count = 0
        self._busy = False
        self._planned = False
        self._agreed = False
        self._dt_ptrs = NULL
        self._dt_count = -1
        self._pending = NULL

    def __init__(self, Py_ssize_t fusion_threshold=DEFAULT_FUSION_THRESHOLD, algorithm=None):
        cdef int64_t[::1] h
        cdef double[::1] f
        if fusion_threshold < 0:
            raise ValueError(f"FlatBuffer(): fusion_threshold must be >= 0 bytes, got "
                             f"{fusion_threshold!r}; pass 0 to pack nothing")
        if algorithm is None:
            algorithm = os.environ.get("SPINFAST_COLLECTIVES") or "auto"
            if algorithm not in ALGORITHMS:
                raise ValueError(f"FlatBuffer(): the environment variable SPINFAST_COLLECTIVES "
                                 f"is {algorithm!r}; set it to one of 'auto', 'mpi', 'engine' "
                                 f"(or unset it for 'auto')")
        elif not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise ValueError(f"FlatBuffer(): algorithm must be one of 'auto', 'mpi', 'engine' "
                             f"or None, got {algorithm!r}; None reads SPINFAST_COLLECTIVES")
        self.fusion_threshold = fusion_threshold
        self._algo = ALGORITHMS.index(algorithm)
        self._store32 = np.zeros(0, np.float32)
        self._store64 = np.zeros(0, np.float64)
        self._view32 = self._store32
        self._view64 = self._store64
        self._hdr = np.zeros(2, np.int64)
        h = self._hdr
        self._hdr_p = &h[0]
        self._flagbuf = np.zeros(1, np.float64)
        f = self._flagbuf
        self._flag_p = &f[0]
        self._scratch = np.zeros(0, np.uint8)
        self._scratch_p = NULL

    def __dealloc__(self):
        self._release()
        if self._dt32 is not None or self._dt64 is not None:
            try:  # (not at interpreter exit: MPI is finalized and mpi4py may be torn down)
                if not _MPI.Is_finalized():
                    for dt in (self._dt32, self._dt64):
                        if dt is not None:
                            dt.Free()
            except Exception:
                pass
        PyMem_Free(self._slots)
        PyMem_Free(self._views)
        PyMem_Free(self._ring_ptr)
        PyMem_Free(self._ring_src)
        PyMem_Free(self._ring_n)
        PyMem_Free(self._src_views)
        PyMem_Free(self._dt_ptrs)

    @property
    def algorithm(self):
        """Return the collectives in use: ``'auto'``, ``'mpi'`` or ``'engine'``."""
        return ALGORITHMS[self._algo]

    @property
    def nbytes(self):
        """Bytes held by the packed buffers and the ring's scratch buffer."""
        return self._store32.nbytes + self._store64.nbytes + self._scratch.nbytes

    def __repr__(self):
        return (f"FlatBuffer(fusion_threshold={self.fusion_threshold}, "
                f"algorithm={self.algorithm!r}, nbytes={self.nbytes})")

    # -- public calls ----------------------------------------------------------------------

    def allreduce(self, comm, arrays, op="sum", sources=None):
        """Reduce every array over the ranks of ``comm``, in place (or from ``sources``).

        Args:
            comm: an mpi4py communicator, or None for a single process (then the inputs are
                only checked: a reduction over one rank changes nothing).
            arrays: list or tuple of writable, C- or Fortran-contiguous float32/float64 arrays
                (any object exporting such a buffer); zero-size arrays are allowed. Every rank
                passes the same dtypes and shapes in the same order.
            op: ``'sum'``, ``'mean'`` (SUM, then divided by the number of ranks in the array's
                dtype, as ``x / size``), ``'min'``, ``'max'`` or ``'prod'``.
            sources: None (reduce ``arrays`` in place), or a list/tuple of contiguous buffers
                of the same dtypes and sizes (they may be read-only, and are never written):
                rank r's input for ``arrays[i]`` is ``sources[i]``, and ``arrays[i]`` only
                receives the result. Saves copying read-only inputs into the result arrays
                first: the large arrays' ring reads them where they lie.

        Raises:
            TypeError: ``arrays`` or ``sources`` is not a list/tuple, or an item is not a
                float32/float64 buffer.
            ValueError: an item is read-only or not contiguous, ``op`` is unknown, a source does
                not match its array (dtype, size, count), or the layouts or ops differ between
                ranks (the message names the first difference).
                Under MPI every rank raises when any rank's input is wrong.
            RuntimeError: the instance is in use by another thread.
        """
        cdef int code = _OP_NAMES.index(op) if isinstance(op, str) and op in _OP_NAMES else -1
        self._enter()
        try:
            self._run(comm, arrays, code, -1, op, "FlatBuffer.allreduce()", sources)
        finally:
            self._leave()

    def bcast(self, comm, arrays, int root=0):
        """Copy every array of rank ``root`` into the same array on the other ranks, in place.

        Args:
            comm: an mpi4py communicator, or None for a single process (inputs checked only).
            arrays: as for :meth:`allreduce`; the root's arrays are read, the others written.
            root: the rank whose values are sent; the same on every rank.

        Raises:
            TypeError, RuntimeError: as for :meth:`allreduce`.
            ValueError: as for :meth:`allreduce`, or ``root`` is out of range or differs
                between ranks.
        """
        self._enter()
        try:
            self._run(comm, arrays, OP_BCAST, root, None, "FlatBuffer.bcast()", None)
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
        for i in range(self._nsrc):
            PyBuffer_Release(&self._src_views[i])
        self._nsrc = 0

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
        p = PyMem_Realloc(self._ring_ptr, (n + 2) * sizeof(char*))   # + the packed buffers
        if p == NULL:
            raise MemoryError()
        self._ring_ptr = <char**>p
        p = PyMem_Realloc(self._ring_src, (n + 2) * sizeof(char*))
        if p == NULL:
            raise MemoryError()
        self._ring_src = <char**>p
        p = PyMem_Realloc(self._src_views, n * sizeof(Py_buffer))
        if p == NULL:
            raise MemoryError()
        self._src_views = <Py_buffer*>p
        p = PyMem_Realloc(self._ring_n, (n + 2) * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self._ring_n = <Py_ssize_t*>p
        p = PyMem_Realloc(self._dt_ptrs, n * sizeof(char*))
        if p == NULL:
            raise MemoryError()
        self._dt_ptrs = <char**>p
        self._dt_count = -1
        memset(self._slots + self._cap, 0, (n - self._cap) * sizeof(slot_t))
        self._cap = n
        self._planned = False
        return 0

    cdef object _acquire(self, object arrays):
        # Take every buffer; return None, or (exception type, message) for the first bad item.
        cdef Py_ssize_t i, n
        cdef Py_buffer* v
        cdef slot_t* s
        cdef int kind
        if not isinstance(arrays, (list, tuple)):
            return (TypeError, f"arrays must be a list or tuple of arrays, got a "
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
                    return (TypeError, f"array {i} is a {type(obj).__name__!r}, not a buffer; "
                                       f"pass float32/float64 numpy arrays")
                return (ValueError, f"array {i} cannot be used in place ({exc}); pass "
                                    f"writable, contiguous float32/float64 arrays")
            self._nacq = i + 1
            kind = _buffer_kind(v)
            if kind == DK_NONE:
                dt = getattr(obj, "dtype", None)
                fmt = (<bytes>v.format).decode() if v.format != NULL else "B"
                what = str(dt) if dt is not None else f"format {fmt!r}"
                return (TypeError, f"array {i} has dtype {what}; only float32 and float64 "
                                   f"arrays are supported: convert it or leave it out")
            s = &self._slots[i]
            s.ptr = <char*>v.buf
            s.src = s.ptr
            s.kind = kind
            s.nbytes = v.len
            s.n = v.len // v.itemsize
        return None

    cdef object _acquire_sources(self, object sources):
        # Point each slot's input at its source; None, or (exception type, message).
        cdef Py_ssize_t i
        cdef Py_buffer* v
        cdef slot_t* s
        if not isinstance(sources, (list, tuple)):
            return (TypeError, f"sources must be a list or tuple of arrays, got a "
                               f"{type(sources).__name__!r}")
        if len(sources) != self._count:
            return (ValueError, f"sources has {len(sources)} items for {self._count} arrays; "
                                f"pass one source per array")
        for i in range(self._count):
            obj = sources[i]
            v = &self._src_views[i]
            try:
                PyObject_GetBuffer(obj, v, PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS)
            except (BufferError, TypeError, ValueError) as exc:
                if not PyObject_CheckBuffer(obj):
                    return (TypeError, f"source {i} is a {type(obj).__name__!r}, not a buffer")
                return (ValueError, f"source {i} is not contiguous ({exc})")
            self._nsrc = i + 1
            s = &self._slots[i]
            if v.len != s.nbytes or _buffer_kind(v) != s.kind:
                return (ValueError, f"source {i} does not match array {i}: pass a "
                                    f"{_KIND_NAMES[s.kind]} buffer of {s.nbytes} bytes")
            s.src = <const char*>v.buf
        return None

    cdef void _copy_sources(self) noexcept:
        # Inputs into the result arrays, where they are read from elsewhere.
        cdef Py_ssize_t i
        for i in range(self._count):
            if self._slots[i].src != self._slots[i].ptr:
                memcpy(self._slots[i].ptr, self._slots[i].src, self._slots[i].nbytes)

    cdef uint64_t _layout_hash(self, int code, int root):
        # Everything that must agree across ranks: call, root, plan parameters, and every
        # array's dtype, shape and memory order.
        cdef uint64_t h = 14695981039346656037ULL
        cdef Py_ssize_t i, d
        cdef Py_buffer* v
        h = _fnv(h, code)
        h = _fnv(h, root)
        h = _fnv(h, self.fusion_threshold)
        h = _fnv(h, self._algo)
        h = _fnv(h, self._count)
        for i in range(self._count):
            v = &self._views[i]
            h = _fnv(h, self._slots[i].kind)
            h = _fnv(h, v.ndim)
            for d in range(v.ndim):
                h = _fnv(h, v.shape[d])
            h = _fnv(h, v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C"))
        h &= ((<uint64_t>1) << 62) - 1
        return h if h != 0 else 1

    cdef bint _plan_matches(self, bint bcast) noexcept:
        cdef Py_ssize_t i
        cdef slot_t* s
        if not self._planned or self._plan_count != self._count or self._plan_bcast != bcast:
            return False
        for i in range(self._count):
            s = &self._slots[i]
            if s.plan_n != s.n or s.plan_kind != s.kind:
                return False
        return True

    cdef int _make_plan(self, bint bcast) except -1:
        # Decide what is packed, where, and which buffer carries the agreement flag;
        # re-allocate a packed buffer only when it must grow.
        cdef Py_ssize_t i, n32 = 0, n64 = 0, small32 = 0, small64 = 0
        cdef slot_t* s
        cdef float[::1] m32
        cdef double[::1] m64
        if self._plan_matches(bcast):
            return 0
        self._dt_count = -1  # the scatter datatypes describe the old plan's arrays
        for i in range(self._count):
            s = &self._slots[i]
            s.packed = 0 < s.nbytes < self.fusion_threshold
            if s.packed:
                if s.kind == DK_F32:
                    small32 += 1
                else:
                    small64 += 1
        # A reduction packs every small array: the flag rides along, one collective in all.
        # A broadcast has its flag apart, so a lone small array is sent in place, uncopied.
        if bcast:
            self._fgroup = FG_ALONE
        elif small32:
            self._fgroup = FG_F32
            n32 = 1
        elif small64:
            self._fgroup = FG_F64
            n64 = 1
        else:
            self._fgroup = FG_ALONE
        for i in range(self._count):
            s = &self._slots[i]
            if s.packed and bcast and (small32 if s.kind == DK_F32 else small64) == 1:
                s.packed = False
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
            self._store32 = np.zeros(n32, np.float32)
        if n64 > self._store64.shape[0]:
            self._store64 = np.zeros(n64, np.float64)
        self._view32 = self._store32[:n32]
        self._view64 = self._store64[:n64]
        m32 = self._store32
        m64 = self._store64
        self._p32 = <char*>&m32[0] if m32.shape[0] else NULL
        self._p64 = <char*>&m64[0] if m64.shape[0] else NULL
        self._n32 = n32
        self._n64 = n64
        self._solo = (n32 == 0) != (n64 == 0)
        for i in range(self._count):
            if not self._slots[i].packed and self._slots[i].n:
                self._solo = False
        self._plan_count = self._count
        self._plan_bcast = bcast
        self._planned = True
        return 0

    cdef void _write_flag(self, int fkind, char* p, double value) noexcept:
        if fkind == DK_F32:
            (<float*>p)[0] = <float>value
        else:
            (<double*>p)[0] = value

    cdef double _read_flag(self, int fkind, char* p) noexcept:
        # (of a packed buffer whose last addition is pending: the sum of both parts)
        cdef double v = (<float*>p)[0] if fkind == DK_F32 else (<double*>p)[0]
        if self._pending != NULL and (p == self._p32 or p == self._p64):
            v += (<float*>self._pending)[0] if fkind == DK_F32 else (<double*>self._pending)[0]
        return v

    cdef tuple _flag_group(self):
        # (numpy view reduced first, its dkind, pointer to the flag element)
        if self._fgroup == FG_F32:
            return (self._view32, DK_F32, <Py_ssize_t>self._p32)
        if self._fgroup == FG_F64:
            return (self._view64, DK_F64, <Py_ssize_t>self._p64)
        return (self._flagbuf, DK_F64, <Py_ssize_t>self._flag_p)

    cdef int _run(self, object comm, object arrays, int code, int root, object op,
                  str where, object sources) except -1:
        cdef int size = 1, rank = 0, fkind
        cdef Py_ssize_t m
        cdef object err = None
        cdef uint64_t h = 0
        cdef bint bcast = code == OP_BCAST, fresh
        cdef char* fptr
        cdef tuple fg
        self._pending = NULL
        if comm is not None:
            size = comm.Get_size()
            rank = comm.Get_rank()
        if code < 0:
            err = (ValueError, f"unknown op {op!r}; pass one of "
                               f"{', '.join(map(repr, _OP_NAMES))}")
        elif bcast and not 0 <= root < size:
            err = (ValueError, f"root {root!r} is not a rank of a communicator of size {size}; "
                               f"pass 0 <= root < {size}")
        if err is None:
            err = self._acquire(arrays)
        if err is None and sources is not None:
            err = self._acquire_sources(sources)
        if size == 1:
            if err is not None:
                raise err[0](f"{where}: {err[1]}")
            self._copy_sources()  # the reduction over one rank: the inputs themselves
            return 0
        if err is None:
            h = self._layout_hash(code, root)
        MPI = _mpi()

        if self._agreed and self._agreed_size != size:
            # Another communicator: as on a fresh instance. (Every rank of this one sees the
            # size change: e.g. ranks that agreed on a sub-communicator, joined on the whole.)
            self._agreed = False
            self._agreed_fview = None
        if self._agreed and self._pair_sizes is not None:
            # Two ranks, broadcast: the agreement travels with the data (see _pair_bcast).
            if self._pair_bcast(comm, rank, err is None and h == self._agreed_hash
                                and self._plan_matches(bcast)):
                return 0
            self._agreed = False
            self._agreed_fview = None
        elif self._agreed:
            # One collective tells everyone whether any rank's layout changed.
            if err is None and h == self._agreed_hash and self._plan_matches(bcast):
                fg = self._flag_group()
                fptr = <char*><Py_ssize_t>fg[2]
                if not bcast or rank == root:
                    with nogil:
                        _pack(self._slots, self._count, self._p32, self._p64)
                self._write_flag(fg[1], fptr, _flag_ok(code) if not bcast else 0.0)
                self._reduce(comm, fg[0], fptr, fg[0].nbytes, fg[1], code, rank, size, 1,
                             self._solo and not bcast)
                if self._read_flag(fg[1], fptr) == (_flag_ok(code) if not bcast else 0.0):
                    self._collectives(comm, arrays, code, root, rank, size, True)
                    return 0
            else:
                fkind = self._agreed_fkind
                fptr = self._agreed_fptr
                self._write_flag(fkind, fptr, _flag_set(self._agreed_code))
                # the collective the others make: the flag is element 0 of the agreed view
                self._reduce(comm, self._agreed_fview, fptr, self._agreed_fview.nbytes, fkind,
                             self._agreed_code, rank, size, 1)
            self._agreed = False
            self._agreed_fview = None

        # Hash exchange, overlapped with the packing.
        self._pending = NULL
        if err is None:
            self._make_plan(bcast)
        self._hdr_p[0] = <int64_t>h if err is None else _BAD_INPUT
        self._hdr_p[1] = -(<int64_t>h) if err is None else 0
        req = comm.Iallreduce(MPI.IN_PLACE, self._hdr, MPI.MAX)
        if err is None and (not bcast or rank == root):
            with nogil:
                _pack(self._slots, self._count, self._p32, self._p64)
        req.Wait()
        if err is not None or self._hdr_p[0] != <int64_t>h or self._hdr_p[1] != -(<int64_t>h):
            self._mismatch(comm, err, code, root, op, where)
        fg = self._flag_group()
        self._agreed = True
        self._agreed_hash = h
        self._agreed_code = code
        self._agreed_fview = fg[0]
        self._agreed_fkind = fg[1]
        self._agreed_fptr = <char*><Py_ssize_t>fg[2]
        self._agreed_root = root
        self._agreed_size = size
        self._pair_sizes = None
        if bcast and size == 2 and self._algo != ALG_MPI:
            m = self._bcast_buffers()
            if m:  # (the root's verdict needs a message to travel in)
                self._pair_sizes = [self._ring_n[i] for i in range(m)]
        self._write_flag(fg[1], self._agreed_fptr, _flag_ok(code) if not bcast else 0.0)
        if bcast or self._fgroup == FG_ALONE:
            fresh = False  # the flag buffer is apart: nothing of the data went yet
        else:
            self._reduce(comm, fg[0], self._agreed_fptr, fg[0].nbytes, fg[1], code, rank, size,
                         1, self._solo)
            fresh = True
        self._collectives(comm, arrays, code, root, rank, size, fresh)
        return 0

    cdef int _collectives(self, object comm, object arrays, int code, int root, int rank,
                          int size, bint first_done) except -1:
        # Move the data: packed buffers (the flag buffer may be done already), then the arrays
        # in place, then unpack and scale.
        cdef Py_ssize_t i, m
        cdef int kind
        cdef slot_t* s
        cdef int divide_by = size if code == OP_MEAN else 1
        if code == OP_BCAST and size < _TREE_MAX_RANKS and self._algo != ALG_MPI:
            # Several buffers (packed ones, large arrays): down one binomial tree, as bytes.
            m = self._bcast_buffers()
            if m == 1:  # one buffer: MPI's own Bcast (shared-memory collectives)
                comm.Bcast(PyMemoryView_FromMemory(self._ring_ptr[0], self._ring_n[0],
                                                   PyBUF_WRITE), root)
            elif m:
                self._tree_bcast(self._dup_of(comm), self._ring_ptr, self._ring_n, m, root,
                                 rank, size)
        elif code == OP_BCAST:
            if self._n32:
                comm.Bcast(self._view32, root)
            if self._n64:
                comm.Bcast(self._view64, root)
        else:
            if self._n32 and not (first_done and self._fgroup == FG_F32):
                self._reduce(comm, self._view32, self._p32, self._n32 * 4, DK_F32, code, rank,
                             size, 1)
            if self._n64 and not (first_done and self._fgroup == FG_F64):
                self._reduce(comm, self._view64, self._p64, self._n64 * 8, DK_F64, code, rank,
                             size, 1)
        for i in range(self._count):
            s = &self._slots[i]
            if s.packed or s.n == 0 or _rings(self._algo, code, s.nbytes):
                continue
            if code == OP_BCAST:
                if size >= _TREE_MAX_RANKS or self._algo == ALG_MPI:
                    comm.Bcast(arrays[i], root)
            else:
                if s.src != s.ptr:
                    memcpy(s.ptr, s.src, s.nbytes)
                self._reduce(comm, arrays[i], s.ptr, s.nbytes, s.kind, code, rank, size, 1)
        if code == OP_SUM or code == OP_MEAN:
            # The large arrays of each dtype: one ring over all of them (it divides as it
            # reduces).
            for kind in (DK_F32, DK_F64):
                m = 0
                for i in range(self._count):
                    s = &self._slots[i]
                    if not s.packed and s.kind == kind and _rings(self._algo, code, s.nbytes):
                        self._ring_ptr[m] = s.ptr
                        self._ring_src[m] = <char*>s.src
                        self._ring_n[m] = s.n
                        m += 1
                if m:
                    self._ring(self._dup_of(comm), self._ring_ptr, self._ring_src, self._ring_n,
                               m, kind, rank, size, divide_by)
        # Scale and unpack only after the last collective: work between collectives delays
        # every rank's next one (measured: more than the scaling itself costs).
        if code != OP_BCAST or rank != root:
            with nogil:
                if self._pending != NULL:
                    _unpack_sum(self._slots, self._count, self._p32, self._p64, self._pending,
                                divide_by)
                else:
                    _unpack(self._slots, self._count, self._p32, self._p64, divide_by)
                if divide_by > 1:
                    for i in range(self._count):
                        s = &self._slots[i]
                        if not s.packed and not _rings(self._algo, code, s.nbytes):
                            _scale(s.kind, s.ptr, s.n, divide_by)
        return 0

    cdef object _dup_of(self, object comm):
        # _ring_comm(comm), remembered for the same communicator object with the same handle
        # (a freed one has another; a new one is another object).
        h = comm.py2f()
        if comm is not self._rc_comm or h != self._rc_handle:
            self._rc_dup = _ring_comm(comm)
            self._rc_comm = comm
            self._rc_handle = h
        return self._rc_dup

    cdef Py_ssize_t _bcast_buffers(self) noexcept:
        # The buffers a broadcast moves, in order, into _ring_ptr/_ring_n (bytes): the packed
        # float32 and float64 buffers, then the arrays moved in place. Returns their number.
        cdef Py_ssize_t i, m = 0
        cdef slot_t* s
        if self._n32:
            self._ring_ptr[m] = self._p32
            self._ring_n[m] = self._n32 * 4
            m += 1
        if self._n64:
            self._ring_ptr[m] = self._p64
            self._ring_n[m] = self._n64 * 8
            m += 1
        for i in range(self._count):
            s = &self._slots[i]
            if not s.packed and s.n:
                self._ring_ptr[m] = s.ptr
                self._ring_n[m] = s.nbytes
                m += 1
        return m

    cdef bint _pair_bcast(self, object comm, int rank, bint ok) except -1:
        # A broadcast between two ranks after an agreement: the root sends each agreed buffer,
        # or an empty message in its place if its own layout changed; the other rank sends its
        # flag back at the same time. One message each way, where a separate agreement
        # collective would cost a round trip before the data. A receiver whose layout holds
        # receives straight into its arrays (a packed buffer scatters through a datatype);
        # one whose layout changed receives into a throwaway buffer, and an empty message
        # writes nothing: no array is touched unless both ranks agree. Returns whether they
        # did; if not, both go back to the hash exchange.
        cdef Py_ssize_t j, m = len(self._pair_sizes), total = 0
        cdef int root = self._agreed_root, peer = 1 - rank
        cdef list reqs = []
        cdef bint unpack = False
        rc = self._dup_of(comm)
        if rank == root:
            if ok:
                with nogil:
                    _pack(self._slots, self._count, self._p32, self._p64)
                m = self._bcast_buffers()
            for j in range(m):
                if ok:
                    buf = PyMemoryView_FromMemory(self._ring_ptr[j], self._ring_n[j], PyBUF_READ)
                else:
                    buf = PyMemoryView_FromMemory(self._scratch_for(1), 0, PyBUF_READ)
                reqs.append(rc.Isend(buf, peer, _RING_TAG))
            self._flag_p[0] = 1.0
            reqs.append(rc.Irecv(self._flagbuf, peer, _RING_TAG))
            _MPI.Request.Waitall(reqs)
            return ok and self._flag_p[0] == 0.0
        self._flag_p[0] = 0.0 if ok else 1.0
        reqs.append(rc.Isend(self._flagbuf, root, _RING_TAG))
        if ok:
            m = self._bcast_buffers()
            for j in range(m):
                buf = None
                if self._ring_ptr[j] == self._p32 or self._ring_ptr[j] == self._p64:
                    buf = self._scatter_type(self._ring_ptr[j] == self._p64)
                    unpack = unpack or buf is None
                if buf is None:
                    buf = PyMemoryView_FromMemory(self._ring_ptr[j], self._ring_n[j], PyBUF_WRITE)
                reqs.append(rc.Irecv(buf, root, _RING_TAG))
        else:
            sink = np.empty(sum(self._pair_sizes), np.uint8)
            for j in range(m):
                reqs.append(rc.Irecv(sink[total:total + self._pair_sizes[j]], root, _RING_TAG))
                total += self._pair_sizes[j]
        statuses = [_MPI.Status() for _ in reqs]
        _MPI.Request.Waitall(reqs, statuses)
        for st in statuses[1:]:
            if st.Get_count(_MPI.BYTE) == 0:
                return False  # the root's layout changed: nothing was written
        if ok and unpack:
            with nogil:
                _unpack(self._slots, self._count, self._p32, self._p64, 1)
        return ok

    cdef object _scatter_type(self, bint f64):
        # A receive buffer spec that scatters the packed float32 (or float64) buffer's bytes
        # into the arrays packed in it, [MPI.BOTTOM, 1, datatype]; built when the arrays'
        # addresses change, else reused. None if two of the arrays overlap (then the caller
        # receives into the packed buffer and copies out).
        cdef Py_ssize_t i
        cdef bint same = self._dt_count == self._count
        if same:
            for i in range(self._count):
                if self._slots[i].packed and self._dt_ptrs[i] != self._slots[i].ptr:
                    same = False
                    break
        if not same:
            for dt in (self._dt32, self._dt64):
                if dt is not None:
                    dt.Free()
            self._dt32 = self._dt64 = None
            self._dt_count = -1
            spans = sorted((<Py_ssize_t>self._slots[i].ptr, self._slots[i].nbytes)
                           for i in range(self._count) if self._slots[i].packed)
            if all(spans[i][0] + spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)):
                for kind in (DK_F32, DK_F64):
                    blocks = [(<Py_ssize_t>self._slots[i].ptr, self._slots[i].nbytes)
                              for i in range(self._count)
                              if self._slots[i].packed and self._slots[i].kind == kind]
                    if blocks:
                        dt = _MPI.BYTE.Create_hindexed([b[1] for b in blocks],
                                                       [b[0] for b in blocks]).Commit()
                        if kind == DK_F32:
                            self._dt32 = dt
                        else:
                            self._dt64 = dt
            for i in range(self._count):
                self._dt_ptrs[i] = self._slots[i].ptr
            self._dt_count = self._count
        dt = self._dt64 if f64 else self._dt32
        return [_MPI.BOTTOM, 1, dt] if dt is not None else None

    cdef int _reduce(self, object comm, object view, char* ptr, Py_ssize_t nbytes, int kind,
                     int code, int rank, int size, int divide_by, bint defer=False) except -1:
        # One in-place reduction of a buffer: MPI's Allreduce, or the ring for a large sum or
        # mean (which also divides by ``divide_by``; Allreduce leaves that to the caller).
        # Under algorithm 'mpi' always Allreduce (``defer`` is then ignored: nothing pending).
        cdef Py_ssize_t n = nbytes // (4 if kind == DK_F32 else 8)
        if self._algo == ALG_MPI:
            comm.Allreduce(_MPI.IN_PLACE, view, _MPI_OPS[code])
        elif _rings(self._algo, code, nbytes):
            self._ring(self._dup_of(comm), &ptr, &ptr, &n, 1, kind, rank, size, divide_by)
        elif (code == OP_SUM or code == OP_MEAN) and size & (size - 1) == 0 and nbytes:
            self._doubling(self._dup_of(comm), ptr, n, kind, rank, size, defer)
            if divide_by > 1 and not defer:
                with nogil:
                    _scale(kind, ptr, n, divide_by)
        else:
            comm.Allreduce(_MPI.IN_PLACE, view, _MPI_OPS[code])
        return 0

    cdef int _doubling(self, object comm, char* ptr, Py_ssize_t n, int kind, int rank,
                       int size, bint defer) except -1:
        # Recursive doubling for a power-of-two number of ranks: in step k each rank swaps its
        # whole partial sum with rank ^ 2**k and adds the two. One message round per step
        # (MPI's Allreduce takes two at these sizes: reduce-scatter, then allgather). Partners
        # add the same two values (a + b, b + a), so every rank ends with the same bits.
        # ``defer``: the last addition is left to the unpacking (_pending holds the other
        # part), which writes the sums straight into the arrays: one pass over the data less.
        cdef Py_ssize_t nbytes = n * (4 if kind == DK_F32 else 8)
        cdef int mask = 1
        cdef char* scratch = self._scratch_for(nbytes)
        mine = PyMemoryView_FromMemory(ptr, nbytes, PyBUF_READ)
        theirs = PyMemoryView_FromMemory(scratch, nbytes, PyBUF_WRITE)
        while mask < size:
            comm.Sendrecv(mine, rank ^ mask, _RING_TAG, theirs, rank ^ mask, _RING_TAG)
            if defer and mask * 2 >= size:
                self._pending = scratch
                break
            with nogil:
                if kind == DK_F32:
                    sff_add_f32(<float*>ptr, <const float*>ptr, <const float*>scratch, n, 1)
                else:
                    sff_add_f64(<double*>ptr, <const double*>ptr, <const double*>scratch, n, 1)
            mask <<= 1
        return 0

    cdef char* _scratch_for(self, Py_ssize_t nbytes) except NULL:
        # The receive buffer, grown (never shrunk) to at least nbytes.
        cdef unsigned char[::1] mem
        if self._scratch_p == NULL or self._scratch.shape[0] < nbytes:
            self._scratch = np.zeros(max(nbytes, 8), np.uint8)
            mem = self._scratch
            self._scratch_p = <char*>&mem[0]
        return self._scratch_p

    cdef int _ring(self, object comm, char** ptrs, char** srcs, Py_ssize_t* ns, Py_ssize_t m,
                   int kind, int rank, int size, int divide_by) except -1:
        # Ring reduce-scatter, then ring allgather, over the m arrays seen as one virtual
        # concatenation of total elements, cut into ``size`` chunks. In step s of the
        # reduce-scatter a rank sends chunk rank-s to its right neighbour and adds the chunk
        # rank-s-1 received from its left one into its own arrays; after size-1 steps it holds
        # chunk rank+1 fully reduced (divided in the last addition), and the allgather passes
        # the finished chunks around the ring. A chunk spanning several arrays moves as one
        # message per array piece, all posted at once; each element is reduced on one rank
        # only, so every rank ends with the same bits. This rank's input is read from srcs (the
        # arrays themselves, or separate sources): step 0 sends it, and every addition takes it;
        # later steps send the partial sums, which live in the arrays.
        cdef Py_ssize_t isz = 4 if kind == DK_F32 else 8
        cdef Py_ssize_t total = 0, j
        cdef int right = (rank + 1) % size, left = (rank + size - 1) % size
        cdef int step, cs, cr, last
        for j in range(m):
            total += ns[j]
        self._scratch_for((total // size + 1) * isz)
        for step in range(size - 1):
            cs = (rank - step + 2 * size) % size
            cr = (rank - step - 1 + 2 * size) % size
            self._exchange(comm, srcs if step == 0 else ptrs, ptrs, ns, m, isz, total, size, cs,
                           right, cr, left, True)
            last = divide_by if step == size - 2 else 1
            _add_chunk(ptrs, srcs, ns, m, kind, isz, _chunk_start(total, cr, size),
                       _chunk_start(total, cr + 1, size), self._scratch_p, last)
        for step in range(size - 1):
            cs = (rank + 1 - step + 2 * size) % size
            cr = (rank - step + 2 * size) % size
            self._exchange(comm, ptrs, ptrs, ns, m, isz, total, size, cs, right, cr, left,
                           False)
        return 0

    cdef int _tree_bcast(self, object comm, char** ptrs, Py_ssize_t* nbytes, Py_ssize_t m,
                         int root, int rank, int size) except -1:
        # Binomial-tree broadcast of m buffers: relative to the root, rank v receives from
        # v - 2**k (its lowest set bit) and then sends to v + 2**j for each lower j. Every
        # transfer moves all m buffers, one message each, posted at once: latencies overlap
        # and there is no copy.
        cdef int v = (rank - root + size) % size, mask = 1
        while mask < size:
            if v & mask:
                self._transfer(comm, ptrs, nbytes, m, (rank - mask + size) % size, False)
                break
            mask <<= 1
        mask >>= 1
        while mask > 0:
            if v + mask < size:
                self._transfer(comm, ptrs, nbytes, m, (rank + mask) % size, True)
            mask >>= 1
        return 0

    cdef int _transfer(self, object comm, char** ptrs, Py_ssize_t* nbytes, Py_ssize_t m,
                       int peer, bint send) except -1:
        cdef Py_ssize_t j
        if send:
            reqs = [comm.Isend(PyMemoryView_FromMemory(ptrs[j], nbytes[j], PyBUF_READ), peer,
                               _RING_TAG) for j in range(m)]
        else:
            reqs = [comm.Irecv(PyMemoryView_FromMemory(ptrs[j], nbytes[j], PyBUF_WRITE), peer,
                               _RING_TAG) for j in range(m)]
        _MPI.Request.Waitall(reqs)
        return 0

    cdef int _exchange(self, object comm, char** send_from, char** ptrs, Py_ssize_t* ns,
                       Py_ssize_t m, Py_ssize_t isz, Py_ssize_t total, int size, int cs,
                       int right, int cr, int left, bint to_scratch) except -1:
        # Send the pieces of chunk cs (read from send_from) to ``right`` while receiving those
        # of chunk cr from ``left`` (into the scratch buffer, packed from its start, or into the
        # arrays). Both sides cut a chunk identically, so the k-th piece sent matches the k-th
        # received.
        cdef Py_ssize_t j, vs, lo, hi
        cdef Py_ssize_t ca = _chunk_start(total, cs, size), cb = _chunk_start(total, cs + 1, size)
        cdef Py_ssize_t ra = _chunk_start(total, cr, size), rb = _chunk_start(total, cr + 1, size)
        cdef list sends = [], recvs = []
        cdef char* dst
        vs = 0
        for j in range(m):
            lo = ra if ra > vs else vs
            hi = rb if rb < vs + ns[j] else vs + ns[j]
            if hi > lo:
                dst = self._scratch_p + (lo - ra) * isz if to_scratch else ptrs[j] + (lo - vs) * isz
                recvs.append(PyMemoryView_FromMemory(dst, (hi - lo) * isz, PyBUF_WRITE))
            lo = ca if ca > vs else vs
            hi = cb if cb < vs + ns[j] else vs + ns[j]
            if hi > lo:
                sends.append(PyMemoryView_FromMemory(send_from[j] + (lo - vs) * isz,
                                                     (hi - lo) * isz, PyBUF_READ))
            vs += ns[j]
        if len(sends) == 1 and len(recvs) == 1:
            comm.Sendrecv(sends[0], right, _RING_TAG, recvs[0], left, _RING_TAG)
        else:
            reqs = [comm.Irecv(b, left, _RING_TAG) for b in recvs]
            reqs += [comm.Isend(b, right, _RING_TAG) for b in sends]
            _MPI.Request.Waitall(reqs)
        return 0

    cdef int _mismatch(self, object comm, object err, int code, int root, object op,
                       str where) except -1:
        # Error path, taken by every rank together: gather what each rank passed and raise the
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
                order = "F" if v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C") else "C"
                layout.append((_KIND_NAMES[self._slots[i].kind], tuple(shape), order))
            call = "bcast" if code == OP_BCAST else "allreduce"
            mine = ("layout", call, op, root, self.fusion_threshold, self.algorithm, layout)
        everyone = comm.allgather(mine)
        if err is not None:
            raise err[0](f"{where}: {err[1]}")
        for r, desc in enumerate(everyone):
            if desc[0] == "error":
                raise ValueError(f"{where}: rank {r} passed invalid input: {desc[1]}")
        raise ValueError(_describe_difference(where, everyone))


cdef str _fmt_array(tuple a):
    return f"{a[0]} {a[1]!r}" + (" Fortran-order" if a[2] == "F" else "")


cdef str _describe_difference(str where, list everyone):
    cdef tuple first = everyone[0]
    cdef str fix = "pass arrays of the same dtypes and shapes, in the same order, on every rank"
    names = ("call", "op", "root", "fusion_threshold", "algorithm")
    for j, name in enumerate(names, start=1):
        for r, desc in enumerate(everyone):
            if desc[j] != first[j] and name == "algorithm":
                return (f"{where}: algorithm differs between ranks: rank 0 has {first[j]!r}, "
                        f"rank {r} has {desc[j]!r}; pass the same FlatBuffer(algorithm=) and "
                        f"set the same SPINFAST_COLLECTIVES on every rank")
            if desc[j] != first[j]:
                return (f"{where}: {name} differs between ranks: rank 0 has {first[j]!r}, rank "
                        f"{r} has {desc[j]!r}; make the same call with the same arguments on "
                        f"every rank")
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
