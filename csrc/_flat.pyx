# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False, freethreading_compatible=False
"""Flat-buffer engine (private): reduce or broadcast many float arrays with few MPI collectives.

A :class:`FlatBuffer` takes a list of writable, contiguous float32/float64 arrays (numpy arrays,
or numpy views of framework parameter/gradient memory) and works on them in place:

* arrays smaller than the fusion threshold are packed into one persistent contiguous buffer per
  dtype (copies with the GIL released), reduced or broadcast with ONE collective per dtype, and
  unpacked back (divided by the number of ranks on the way out for a mean);
* arrays at or above the threshold are reduced or broadcast in place on their own memory, with
  no copy (a copy costs about a fifth of an Allreduce of the same bytes);
* each packed buffer, each array in place and each broadcast goes along the path one table
  gives (``_flat_paths.pxi``: from whether the ranks share memory, their number and the bytes;
  an alpha-beta cost model evaluated, which bench/scale.py keeps): MPI's own
  ``Allreduce``/``Bcast``, or one of the engine's algorithms where they measured better (ranks
  on one node, up to a measured number of ranks):

  - ring (``_flat_ring.pxi``): sums and means of large buffers. All arrays of a dtype taking
    it form one virtual concatenation cut into one chunk per rank; a step moves one message
    per array piece, all posted at once. MPI's Allreduce allocates a temporary buffer of the
    message's size on every call (a 40 MB one faults in fresh pages each time), and a mean
    would need a separate division pass after it; the ring divides in the reduction step. Each
    element is reduced once, on one rank, and copied to the others, so all ranks hold
    bit-identical results;
  - recursive doubling (``_flat_doubling.pxi``): small sums and means on a power-of-two number
    of ranks, one message round per step where MPI's Allreduce takes two at mid sizes. When the
    packed buffer is all there is to move, the last addition happens in the unpacking;
  - binomial tree and the two-rank broadcast (``_flat_bcast.pxi``): every buffer of a
    transfer posted at once; between two ranks the layout agreement travels with the data;

* a mean moved by MPI is divided by the number of ranks after the last collective, in the
  unpacking copy for packed arrays and in one pass for the others (work between collectives
  would delay every rank's next collective).

The packed buffer follows Horovod's fusion buffer and DDP's buckets, inside one process.

``FlatBuffer(algorithm='mpi')`` (or ``SPINFAST_COLLECTIVES=mpi`` when it is made) keeps the
packing but takes MPI's collectives on every path; ``'engine'`` takes the engine's own paths
wherever one applies (min, max and prod always go through MPI); ``'auto'`` (the default) lets
the table choose. :attr:`FlatBuffer.paths` tells which paths the last call took.

MPI is reached only through mpi4py's buffer calls (``Allreduce``/``Bcast`` with ``IN_PLACE``,
point-to-point calls; all release the GIL), so this module links to no MPI library and works
with whichever MPI mpi4py was built for. Buffers are allocated when the layout changes, never
in steady state.

Layout agreement (``_flat_layout.pxi``). Every rank must pass arrays of the same dtypes and
shapes in the same order. Each instance keeps, identically on every rank, the 64-bit hash of
the last layout all ranks agreed on (dtypes, shapes, memory order, operation, root, fusion
threshold, algorithm, whether the ranks share memory, and the path chosen for every buffer):

* not agreed (first call, or after a change): a two-integer ``Iallreduce(MAX)`` of
  ``[hash, -hash]``, overlapped with the packing, tells every rank whether all hashes are equal;
* agreed: the first collective of the call carries one flag element, at the front of the
  packed buffer of a reduction (no extra collective), or alone in a one-element buffer when
  nothing is packed and for a broadcast other than the two-rank one (one tiny extra
  collective). Ranks whose layout is unchanged pack their data and send the neutral value; a
  rank whose layout changed (or whose input is invalid) sends the buffer of the agreed size
  with the flag set, along the agreed path. Every rank sees the same reduced flag; if it is
  set, everyone discards that collective (arrays are written only when unpacking) and falls
  back to the hash exchange;
* agreed two-rank broadcast: the root sends each agreed buffer, or an empty message instead if
  its layout changed; the other rank sends its flag back at the same time. A receiver whose
  layout holds receives straight into its arrays (a packed buffer is scattered through an
  ``hindexed`` datatype built when the arrays' addresses change, so there is no unpacking
  copy); one whose layout changed receives into a throwaway buffer. No array is written unless
  both ranks agree; if they do not, both fall back to the hash exchange.

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
from cpython.mem cimport PyMem_Free, PyMem_RawFree, PyMem_RawRealloc, PyMem_Realloc
from cpython.ref cimport PyObject
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from bufformat cimport sf_format_code
from layouthash cimport SF_HASH_SEED, sf_fnv

import os

import numpy as np

cdef enum:
    # Element kinds (dkind_t). The per-kind work is in _flat_pack.pxi (_itemsize, _add, _scale); a new
    # kind on the wire (16-bit values summed in float32) adds a member here and a case there.
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

cdef enum mode_t:
    # How the next call learns whether every rank's layout still holds (_agreed_call).
    AM_NONE = 0     # no agreed layout: the hash exchange
    AM_FLAG = 1     # a flag element in the first collective of the call
    AM_PAIR = 2     # the two-rank broadcast's messages themselves

cdef tuple _OP_NAMES = ("sum", "mean", "min", "max", "prod")
# FlatBuffer(algorithm=) and SPINFAST_COLLECTIVES, by algo_t value.
ALGORITHMS = ("auto", "mpi", "engine")
cdef tuple _KIND_NAMES = ("?", "float32", "float64")

# Header of a rank whose input was rejected: never a valid layout hash (those are < 2**62).
cdef int64_t _BAD_INPUT = (<int64_t>1) << 62

DEFAULT_FUSION_THRESHOLD = 1 << 16


cdef struct call_t:
    # One call as every step of it sees it: made by allreduce()/bcast(), completed with the
    # engine's communicator when MPI is reached. The objects are borrowed for the call.
    PyObject* comm        # the caller's communicator (MPI's own collectives)
    PyObject* dup         # the engine's duplicate of it (the engine's messages)
    PyObject* op          # the op as the caller passed it (messages)
    PyObject* where       # the public call's name (messages)
    int rank
    int size
    int code              # opcode_t; -1: an unknown op
    int root              # a broadcast's root, else -1
    double ok_flag        # the agreement flag's value of a rank whose layout holds


cdef struct part_t:
    # One buffer reduced along one path: ``n`` elements of ``kind`` at ``ptr``.
    char* ptr
    Py_ssize_t n
    int kind
    int path


include "_flat_pack.pxi"
include "_flat_layout.pxi"
include "_flat_paths.pxi"
include "_flat_mpi.pxi"
include "_flat_ring.pxi"
include "_flat_doubling.pxi"


cdef struct plan_t:
    # What a call moves and how; made when the layout, the op's kind, the number of ranks or
    # the transport changes, reused otherwise.
    bint made
    int code              # opcode_t it was made for (the paths depend on it)
    int size              # ranks
    bint shared           # all ranks share memory
    Py_ssize_t count      # arrays
    int fgroup            # fgroup_t: which buffer carries the agreement flag
    Py_ssize_t n32        # elements of the packed buffers (flag included)
    Py_ssize_t n64
    char* p32             # their memory
    char* p64
    bint solo             # one packed buffer and nothing else to move


cdef struct layout_t:
    # The layout: the call's arrays, and the plan (what is packed where) made for them.
    arrays_t arr
    plan_t plan


cdef class _Packed:
    # The packed buffers' memory (numpy: large ones go on huge pages), grown, never shrunk; the
    # one-element flag buffer (FG_ALONE); and the other partial sum of a packed buffer whose
    # last addition is left to the unpacking.
    cdef object store32
    cdef object store64
    cdef object flagbuf
    cdef char* flag_p
    cdef char* pending

    def __cinit__(self):
        cdef double[::1] f
        self.store32 = np.zeros(0, np.float32)
        self.store64 = np.zeros(0, np.float64)
        self.flagbuf = np.zeros(1, np.float64)
        f = self.flagbuf
        self.flag_p = <char*>&f[0]
        self.pending = NULL

    cdef int fit(self, plan_t* p, Py_ssize_t n32, Py_ssize_t n64) except -1:
        # Buffers of n32 float32 and n64 float64 elements; their memory into the plan.
        cdef float[::1] m32
        cdef double[::1] m64
        if n32 > self.store32.shape[0]:
            self.store32 = np.zeros(n32, np.float32)
        if n64 > self.store64.shape[0]:
            self.store64 = np.zeros(n64, np.float64)
        m32 = self.store32
        m64 = self.store64
        p.p32 = <char*>&m32[0] if m32.shape[0] else NULL
        p.p64 = <char*>&m64[0] if m64.shape[0] else NULL
        p.n32 = n32
        p.n64 = n64
        return 0


cdef class _Link:
    # The last caller's communicator and its link (the engine's duplicate, whether its ranks
    # share memory; cached on the communicator itself, _flat_mpi.pxi).
    cdef object comm
    cdef object dup
    cdef bint shared

    cdef int of(self, object comm) except -1:
        # Remembered for the same communicator object while its duplicate lives (freeing the
        # communicator frees that; a new communicator is another object).
        if comm is not self.comm or not self.dup:
            self.dup, self.shared = _link(comm)
            self.comm = comm
        return 0


cdef struct agreement_t:
    # The last layout all ranks agreed on (identical on every rank), and where its flag goes.
    int mode              # mode_t
    uint64_t hash
    int code
    int root
    int size              # the number of ranks it was made among
    part_t flag           # the flag's buffer (the flag is its element 0) and its path


include "_flat_bcast.pxi"


cdef class FlatBuffer:
    """Reduce or broadcast lists of float32/float64 arrays in place with few MPI collectives.

    Keep one instance per use (the gradients of a model, its parameters) and call it with the
    same list layout again and again: the packed buffers, the plan and the layout agreement are
    reused, so a steady-state call allocates no array memory and adds no collective.

    Args:
        fusion_threshold: arrays of fewer bytes than this are packed into one buffer per dtype
            and moved with one collective; larger ones are reduced or broadcast in place on
            their own memory. 0 packs nothing. Must be the same on every rank.
        algorithm: ``'auto'`` (the table of ``_flat_paths.pxi`` chooses each path), ``'engine'``
            (the engine's own ring, recursive doubling and tree wherever one applies) or
            ``'mpi'`` (MPI's ``Allreduce`` and ``Bcast`` on the packed buffers and the large
            arrays; results equal to the engine's up to the order of float additions). None
            reads the environment variable ``SPINFAST_COLLECTIVES`` (unset or empty:
            ``'auto'``). Must be the same on every rank (a difference raises ValueError on
            every rank at the first call).

    The environment variable ``SPINFAST_FLAT_RULES``, read when an instance is made, changes
    rows of that instance's copy of the decision table (for tests; see ``_flat_paths.pxi``).

    Raises:
        ValueError: ``fusion_threshold`` < 0, or ``algorithm`` (or SPINFAST_COLLECTIVES) is
            not one of ``'auto'``, ``'mpi'``, ``'engine'``, or SPINFAST_FLAT_RULES is malformed.

    Not thread-safe: one call at a time per instance (a concurrent call raises RuntimeError).
    """

    cdef readonly Py_ssize_t fusion_threshold
    cdef int _algo              # algo_t: part of the layout hash, so equal on every rank
    cdef bint _busy
    cdef rule_t _rules[_N_RULES]  # this instance's copy of the decision table (_RULES)
    # The engine's state, by concept (the algorithms are functions over these):
    cdef layout_t _layout       # the call's arrays and the plan: what is packed where
    cdef paths_t _chosen        # the last paths (packed buffers, broadcast; arrays: per slot)
    cdef _Packed _packed        # the packed buffers
    cdef scratch_t _scratch     # receive buffer and message list of the ring, doubling, tree
    cdef _Link _link            # the communicator link
    cdef _Pair _pair            # the two-rank broadcast's sizes, flag and datatypes
    # The agreement: the last layout all ranks agreed on and how its flag travels; the hash
    # exchange's two integers.
    cdef agreement_t _agree
    cdef object _hdr
    cdef int64_t* _hdr_p

    def __cinit__(self):
        memset(&self._layout, 0, sizeof(layout_t))
        memset(&self._chosen, 0, sizeof(paths_t))
        memset(&self._agree, 0, sizeof(agreement_t))
        memset(&self._scratch, 0, sizeof(scratch_t))
        self._busy = False
        self._packed = _Packed()
        self._link = _Link()
        self._pair = _Pair()

    def __init__(self, Py_ssize_t fusion_threshold=DEFAULT_FUSION_THRESHOLD, algorithm=None):
        cdef int64_t[::1] h
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
        memcpy(self._rules, _RULES, sizeof(_RULES))
        _apply_rule_changes(self._rules, os.environ.get("SPINFAST_FLAT_RULES", ""))
        self.fusion_threshold = fusion_threshold
        self._algo = ALGORITHMS.index(algorithm)
        self._hdr = np.zeros(2, np.int64)
        h = self._hdr
        self._hdr_p = &h[0]

    def __dealloc__(self):
        self._release()
        PyMem_Free(self._layout.arr.slots)
        PyMem_Free(self._layout.arr.views)
        PyMem_Free(self._layout.arr.src_views)
        PyMem_Free(self._scratch.msgs.ptr)
        PyMem_Free(self._scratch.msgs.src)
        PyMem_Free(self._scratch.msgs.n)
        PyMem_RawFree(self._scratch.p)

    @property
    def algorithm(self):
        """Return the collectives in use: ``'auto'``, ``'mpi'`` or ``'engine'``."""
        return ALGORITHMS[self._algo]

    @property
    def nbytes(self):
        """Bytes held by the packed buffers and the receive buffer of the engine's paths."""
        return self._packed.store32.nbytes + self._packed.store64.nbytes + self._scratch.n

    @property
    def paths(self):
        """Return the paths of the last call with more than one rank, as a dict.

        ``{'float32': path, 'float64': path}`` for the packed buffers of a reduction,
        ``{i: path}`` for each array ``i`` reduced in place, or ``{'bcast': path}``; a path is
        a name of :data:`PATHS`. Empty before the first such call. The same on every rank.
        """
        if not self._layout.plan.made or self._layout.plan.size < 2:
            return {}
        return self._paths()

    cdef dict _paths(self):
        # The paths of the current plan, as FlatBuffer.paths shows them.
        cdef Py_ssize_t i
        cdef const slot_t* s
        out = {}
        if self._layout.plan.code == OP_BCAST:
            return {"bcast": PATHS[self._chosen.bcast]}
        if self._layout.plan.n32:
            out["float32"] = PATHS[self._chosen.f32]
        if self._layout.plan.n64:
            out["float64"] = PATHS[self._chosen.f64]
        for i in range(self._layout.plan.count):
            s = &self._layout.arr.slots[i]
            if not s.packed and s.plan_n:
                out[i] = PATHS[s.path]
        return out

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
        cdef call_t c = _record(comm, op, "FlatBuffer.allreduce()")
        c.code = _OP_NAMES.index(op) if isinstance(op, str) and op in _OP_NAMES else -1
        c.ok_flag = _flag_ok(c.code)
        self._call(&c, arrays, sources)

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
        cdef call_t c = _record(comm, None, "FlatBuffer.bcast()")
        c.code, c.root = OP_BCAST, root
        self._call(&c, arrays, None)

    cdef int _call(self, call_t* c, object arrays, object sources) except -1:
        # The call, one at a time on this instance.
        if self._busy:
            raise RuntimeError("FlatBuffer: a call is already running on this instance; use one "
                               "FlatBuffer per thread")
        self._busy = True
        try:
            self._run(c, arrays, sources)
        finally:
            self._release()
            self._busy = False
        return 0

    # -- buffers of a call -----------------------------------------------------------------

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self._layout.arr.nacq):
            PyBuffer_Release(&self._layout.arr.views[i])
        self._layout.arr.nacq = 0
        for i in range(self._layout.arr.nsrc):
            PyBuffer_Release(&self._layout.arr.src_views[i])
        self._layout.arr.nsrc = 0

    cdef int _reserve(self, Py_ssize_t n) except -1:
        # Room for n arrays (and the two packed buffers in a ring or tree).
        if n <= self._layout.arr.cap:
            return 0
        _grow(<void**>&self._layout.arr.slots, n * sizeof(slot_t))
        _grow(<void**>&self._layout.arr.views, n * sizeof(Py_buffer))
        _grow(<void**>&self._layout.arr.src_views, n * sizeof(Py_buffer))
        _grow(<void**>&self._scratch.msgs.ptr, (n + 2) * sizeof(char*))
        _grow(<void**>&self._scratch.msgs.src, (n + 2) * sizeof(char*))
        _grow(<void**>&self._scratch.msgs.n, (n + 2) * sizeof(Py_ssize_t))
        self._pair.count = -1
        memset(self._layout.arr.slots + self._layout.arr.cap, 0,
               (n - self._layout.arr.cap) * sizeof(slot_t))
        self._layout.arr.cap = n
        self._layout.plan.made = False
        return 0

    cdef object _check(self, const call_t* c, object arrays, object sources):
        # Take the call's buffers; None, or (exception type, message) for the first problem.
        if c.code < 0:
            return (ValueError, f"unknown op {<object>c.op!r}; pass one of "
                                f"{', '.join(map(repr, _OP_NAMES))}")
        if c.code == OP_BCAST and not 0 <= c.root < c.size:
            return (ValueError, f"root {c.root!r} is not a rank of a communicator of size "
                                f"{c.size}; pass 0 <= root < {c.size}")
        err = self._acquire(arrays)
        if err is None and sources is not None:
            err = self._acquire_sources(sources)
        return err

    cdef object _acquire(self, object arrays):
        # Take every buffer; return None, or (exception type, message) for the first bad item.
        cdef Py_ssize_t i, n
        cdef Py_buffer* v
        cdef slot_t* s
        if not isinstance(arrays, (list, tuple)):
            return (TypeError, f"arrays must be a list or tuple of arrays, got a "
                               f"{type(arrays).__name__!r}; pass a list of numpy arrays")
        n = len(arrays)
        self._reserve(n)
        self._layout.arr.count = n
        for i in range(n):
            obj = arrays[i]
            v = &self._layout.arr.views[i]
            try:
                PyObject_GetBuffer(obj, v, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS)
            except (BufferError, TypeError, ValueError) as exc:
                if not PyObject_CheckBuffer(obj):
                    return (TypeError, f"array {i} is a {type(obj).__name__!r}, not a buffer; "
                                       f"pass float32/float64 numpy arrays")
                return (ValueError, f"array {i} cannot be used in place ({exc}); pass "
                                    f"writable, contiguous float32/float64 arrays")
            self._layout.arr.nacq = i + 1
            s = &self._layout.arr.slots[i]
            s.kind = _buffer_kind(v)
            if s.kind == DK_NONE:
                dt = getattr(obj, "dtype", None)
                fmt = (<bytes>v.format).decode() if v.format != NULL else "B"
                what = str(dt) if dt is not None else f"format {fmt!r}"
                return (TypeError, f"array {i} has dtype {what}; only float32 and float64 "
                                   f"arrays are supported: convert it or leave it out")
            s.ptr = <char*>v.buf
            s.src = s.ptr
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
        if len(sources) != self._layout.arr.count:
            return (ValueError, f"sources has {len(sources)} items for {self._layout.arr.count} "
                                f"arrays; pass one source per array")
        for i in range(self._layout.arr.count):
            obj = sources[i]
            v = &self._layout.arr.src_views[i]
            try:
                PyObject_GetBuffer(obj, v, PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS)
            except (BufferError, TypeError, ValueError) as exc:
                if not PyObject_CheckBuffer(obj):
                    return (TypeError, f"source {i} is a {type(obj).__name__!r}, not a buffer")
                return (ValueError, f"source {i} is not contiguous ({exc})")
            self._layout.arr.nsrc = i + 1
            s = &self._layout.arr.slots[i]
            if v.len != s.nbytes or _buffer_kind(v) != s.kind:
                return (ValueError, f"source {i} does not match array {i}: pass a "
                                    f"{_KIND_NAMES[s.kind]} buffer of {s.nbytes} bytes")
            s.src = <const char*>v.buf
        return None

    cdef void _copy_sources(self) noexcept:
        # Inputs into the result arrays, where they are read from elsewhere.
        cdef Py_ssize_t i
        cdef slot_t* s
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            if s.src != s.ptr:
                memcpy(s.ptr, s.src, s.nbytes)

    # -- the plan ----------------------------------------------------------------------------

    cdef bint _plan_matches(self, const call_t* c) noexcept:
        cdef Py_ssize_t i
        cdef const slot_t* s
        cdef const plan_t* p = &self._layout.plan
        if (not p.made or p.count != self._layout.arr.count or p.code != c.code
                or p.size != c.size or p.shared != self._link.shared):
            return False
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            if s.plan_n != s.n or s.plan_kind != s.kind:
                return False
        return True

    cdef int _make_plan(self, const call_t* c) except -1:
        # Decide what is packed, where, which buffer carries the agreement flag and which path
        # moves each buffer; re-allocate a packed buffer only when it must grow.
        cdef Py_ssize_t i
        cdef Py_ssize_t n[3]   # elements packed, by dkind_t (the flag included)
        cdef slot_t* s
        cdef plan_t* p = &self._layout.plan
        cdef const rule_t* r = _rule(self._rules, T_SHARED if self._link.shared else T_NETWORK,
                                     c.size)
        if self._plan_matches(c):
            return 0
        self._pair.count = -1  # its datatypes describe the old plan's arrays
        self._place(c.code == OP_BCAST, n)
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            s.path = P_MPI
            if not s.packed and s.n and c.code != OP_BCAST:
                s.path = _choose_reduce(r, self._algo, c.code, c.size, s.nbytes, False)
            s.plan_n = s.n
            s.plan_kind = s.kind
        self._packed.fit(p, n[DK_F32], n[DK_F64])
        self._chosen.f32 = _choose_reduce(r, self._algo, c.code, c.size,
                                          n[DK_F32] * _itemsize(DK_F32), True)
        self._chosen.f64 = _choose_reduce(r, self._algo, c.code, c.size,
                                          n[DK_F64] * _itemsize(DK_F64), True)
        p.solo = (n[DK_F32] == 0) != (n[DK_F64] == 0)
        for i in range(self._layout.arr.count):
            if not self._layout.arr.slots[i].packed and self._layout.arr.slots[i].n:
                p.solo = False
        self._chosen.bcast = P_MPI
        if c.code == OP_BCAST:
            self._chosen.bcast = _choose_bcast(r, self._algo, c.size, _bcast_buffers(
                p, &self._layout.arr, &self._scratch.msgs))
        p.count, p.code, p.size, p.shared, p.made = (self._layout.arr.count, c.code, c.size,
                                                     self._link.shared, True)
        return 0

    cdef void _place(self, bint bcast, Py_ssize_t* n) noexcept:
        # Which arrays are packed and at which offsets (n: elements per dtype), and where the
        # flag goes. A reduction packs every small array: the flag rides along, one collective
        # in all. A broadcast has its flag apart, so a lone small array is sent in place.
        cdef Py_ssize_t i
        cdef Py_ssize_t small[3]
        cdef slot_t* s
        cdef plan_t* p = &self._layout.plan
        n[DK_F32] = n[DK_F64] = small[DK_F32] = small[DK_F64] = 0
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            s.packed = 0 < s.nbytes < self.fusion_threshold
            small[s.kind] += s.packed
        p.fgroup = FG_ALONE
        if not bcast and small[DK_F32]:
            p.fgroup, n[DK_F32] = FG_F32, 1
        elif not bcast and small[DK_F64]:
            p.fgroup, n[DK_F64] = FG_F64, 1
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            if s.packed and bcast and small[s.kind] == 1:
                s.packed = False
            if s.packed:
                s.offset = n[s.kind] * _itemsize(s.kind)
                n[s.kind] += s.n

    # -- a call ------------------------------------------------------------------------------

    cdef int _run(self, call_t* c, object arrays, object sources) except -1:
        # One call: check and take the buffers; one rank: done; else the agreed fast path if
        # the ranks agreed on a layout, and the hash exchange if that does not settle it.
        cdef uint64_t h = 0
        cdef object err = self._check(c, arrays, sources)
        if c.size == 1:
            if err is not None:
                raise err[0](f"{<object>c.where}: {err[1]}")
            self._copy_sources()  # the reduction over one rank: the inputs themselves
            return 0
        _mpi()
        # (made collectively on a communicator's first call, whatever the algorithm: ranks
        # whose settings differ must still make the same collectives, to reach the error)
        self._link.of(<object>c.comm)
        c.dup = <PyObject*>self._link.dup
        if err is None:
            h = _layout_hash(&self._layout.arr, c.code, c.root, self.fusion_threshold,
                             self._algo, self._link.shared)
        if self._agree.size != c.size:
            # Another communicator: as on a fresh instance. (Every rank of this one sees the
            # size change: e.g. ranks that agreed on a sub-communicator, joined on the whole.)
            self._agree.mode = AM_NONE
        if self._agree.mode != AM_NONE and self._agreed_call(c, err is None, h):
            return 0
        self._agree.mode = AM_NONE
        self._hash_exchange(c, err, h)
        return 0

    cdef bint _agreed_call(self, const call_t* c, bint valid, uint64_t h) except -1:
        # The call on an agreed layout, by the agreement's mode (the one place that dispatches
        # on it): whether every rank's layout still holds travels in the first collective's
        # flag, or with the two-rank broadcast's messages. True: done; False: some rank's
        # layout changed (no array was written), the hash exchange follows.
        cdef agreement_t* a = &self._agree
        cdef bint same = (valid and self._plan_matches(c)
                          and _fold_paths(h, &self._chosen, &self._layout) == a.hash)
        self._packed.pending = NULL
        if a.mode == AM_PAIR and not same:
            return _pair_changed(c, a.root, self._pair)
        if a.mode == AM_PAIR and c.rank == a.root:
            return _pair_send(c, &self._layout, &self._scratch.msgs, self._pair)
        if a.mode == AM_PAIR:
            return _pair_receive(c, &self._layout, &self._scratch.msgs, self._pair)
        if not same:
            # the collective the others make: the flag is element 0 of the agreed buffer
            _write_flag(&a.flag, _flag_set(a.code))
            self._reduce(c, &a.flag, a.code, False)
            return False
        if c.code != OP_BCAST or c.rank == c.root:
            with nogil:
                _pack(self._layout.arr.slots, self._layout.arr.count, self._layout.plan.p32,
                      self._layout.plan.p64)
        _write_flag(&a.flag, c.ok_flag)
        self._reduce(c, &a.flag, a.code, self._layout.plan.solo and c.code != OP_BCAST)
        if self._read_flag() != c.ok_flag:
            return False
        self._move(c, True)
        return True

    cdef int _hash_exchange(self, const call_t* c, object err, uint64_t h) except -1:
        # Plan, then compare the layout hashes (paths included), overlapped with the packing;
        # all equal: agree on the layout and move the data; else raise on every rank.
        cdef bint flag_first = False
        cdef object req
        self._packed.pending = NULL
        if err is None:
            self._make_plan(c)
            h = _fold_paths(h, &self._chosen, &self._layout)  # the chosen paths must agree too
        self._hdr_p[0] = <int64_t>h if err is None else _BAD_INPUT
        self._hdr_p[1] = -(<int64_t>h) if err is None else 0
        req = (<object>c.comm).Iallreduce(_MPI.IN_PLACE, self._hdr, _MPI.MAX)
        if err is None and (c.code != OP_BCAST or c.rank == c.root):
            with nogil:
                _pack(self._layout.arr.slots, self._layout.arr.count, self._layout.plan.p32,
                      self._layout.plan.p64)
        req.Wait()
        if err is not None or self._hdr_p[0] != <int64_t>h or self._hdr_p[1] != -(<int64_t>h):
            _raise_mismatch(<object>c.comm, err, self._describe(c) if err is None else None,
                            <object>c.where)
        self._agree_on(c, h)
        _write_flag(&self._agree.flag, c.ok_flag)
        if c.code != OP_BCAST and self._layout.plan.fgroup != FG_ALONE:
            # the flag rides in a packed buffer: its collective is the data's first
            self._reduce(c, &self._agree.flag, c.code, self._layout.plan.solo)
            flag_first = True
        self._move(c, flag_first)
        return 0

    cdef tuple _describe(self, const call_t* c):
        # This rank's call, as _describe_difference compares them.
        cdef object call = "bcast" if c.code == OP_BCAST else "allreduce"
        cdef list arrays = _describe_layout(&self._layout.arr)
        return ("layout", call, <object>c.op, c.root, self.fusion_threshold, self.algorithm,
                arrays, self._link.shared, self._paths())

    cdef void _agree_on(self, const call_t* c, uint64_t h) noexcept:
        # Remember the layout every rank now agrees on, where its flag travels, and by which
        # mode the next call learns whether it still holds.
        cdef agreement_t* a = &self._agree
        cdef const plan_t* p = &self._layout.plan
        cdef Py_ssize_t i, m
        a.mode, a.hash, a.code, a.root, a.size = AM_FLAG, h, c.code, c.root, c.size
        if p.fgroup == FG_F32:
            a.flag = part_t(p.p32, p.n32, DK_F32, self._chosen.f32)
        elif p.fgroup == FG_F64:
            a.flag = part_t(p.p64, p.n64, DK_F64, self._chosen.f64)
        else:
            a.flag = part_t(self._packed.flag_p, 1, DK_F64, P_MPI)
        if c.code == OP_BCAST and self._chosen.bcast == P_PAIR:
            m = _bcast_buffers(p, &self._layout.arr, &self._scratch.msgs)
            if m:  # (the root's verdict needs a message to travel in)
                a.mode = AM_PAIR
                self._pair.sizes = [self._scratch.msgs.n[i] for i in range(m)]

    cdef double _read_flag(self) noexcept:
        # The agreed flag after its collective (of a packed buffer whose last addition is
        # pending: the sum of both parts).
        cdef const part_t* f = &self._agree.flag
        cdef double v = (<float*>f.ptr)[0] if f.kind == DK_F32 else (<double*>f.ptr)[0]
        cdef const char* other = self._packed.pending
        if other != NULL and f.ptr != self._packed.flag_p:
            v += (<float*>other)[0] if f.kind == DK_F32 else (<double*>other)[0]
        return v

    # -- moving the data ---------------------------------------------------------------------

    cdef int _move(self, const call_t* c, bint flag_first) except -1:
        # Move the data (the flag's packed buffer may be done already: flag_first), then
        # unpack and scale.
        if c.code == OP_BCAST:
            self._bcast_data(c)
        else:
            self._reduce_data(c, flag_first)
        # Scale and unpack only after the last collective: work between collectives delays
        # every rank's next one (measured: more than the scaling itself costs).
        if c.code != OP_BCAST or c.rank != c.root:
            self._finish(c.size if c.code == OP_MEAN else 1)
        return 0

    cdef int _bcast_data(self, const call_t* c) except -1:
        # Every buffer (packed ones, large arrays) down one binomial tree, as bytes (the
        # two-rank broadcast's first call after an agreement takes it too), or MPI's Bcast.
        cdef Py_ssize_t i, m = _bcast_buffers(&self._layout.plan, &self._layout.arr,
                                              &self._scratch.msgs)
        cdef const msgs_t* msgs = &self._scratch.msgs
        if self._chosen.bcast != P_MPI and m:
            _tree_bcast(c, msgs, m)
        elif self._chosen.bcast == P_MPI:
            for i in range(m):
                (<object>c.comm).Bcast(_writable(msgs.ptr[i], msgs.n[i]), c.root)
        return 0

    cdef int _reduce_data(self, const call_t* c, bint flag_first) except -1:
        # The packed buffers, then the arrays in place: each alone, or all arrays of a dtype
        # taking the ring in one ring (which divides as it reduces).
        cdef Py_ssize_t i
        cdef slot_t* s
        cdef plan_t* p = &self._layout.plan
        cdef part_t b
        if p.n32 and not (flag_first and p.fgroup == FG_F32):
            b = part_t(p.p32, p.n32, DK_F32, self._chosen.f32)
            self._reduce(c, &b, c.code, False)
        if p.n64 and not (flag_first and p.fgroup == FG_F64):
            b = part_t(p.p64, p.n64, DK_F64, self._chosen.f64)
            self._reduce(c, &b, c.code, False)
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            if not s.packed and s.n and s.path != P_RING:
                if s.src != s.ptr:
                    memcpy(s.ptr, s.src, s.nbytes)
                b = part_t(s.ptr, s.n, s.kind, s.path)
                self._reduce(c, &b, c.code, False)
        self._ring_arrays(c, DK_F32)
        self._ring_arrays(c, DK_F64)
        return 0

    cdef int _ring_arrays(self, const call_t* c, int kind) except -1:
        # One ring over every array of ``kind`` moved in place along the ring.
        cdef Py_ssize_t i, m = 0
        cdef slot_t* s
        cdef msgs_t* msgs = &self._scratch.msgs
        for i in range(self._layout.arr.count):
            s = &self._layout.arr.slots[i]
            if not s.packed and s.n and s.kind == kind and s.path == P_RING:
                msgs.ptr[m], msgs.src[m], msgs.n[m] = s.ptr, <char*>s.src, s.n
                m += 1
        if m:
            _ring(c, msgs, m, kind, c.size if c.code == OP_MEAN else 1, &self._scratch)
        return 0

    cdef void _finish(self, int divide_by) noexcept:
        # Unpack (adding the pending partial sum, if any), and divide what MPI moved in place.
        cdef Py_ssize_t i
        cdef const plan_t* p = &self._layout.plan
        cdef const slot_t* slots = self._layout.arr.slots
        cdef Py_ssize_t count = self._layout.arr.count
        with nogil:
            if self._packed.pending != NULL:
                _unpack_sum(slots, count, p.p32, p.p64, self._packed.pending, divide_by)
            else:
                _unpack(slots, count, p.p32, p.p64, divide_by)
            for i in range(count if divide_by > 1 else 0):
                if not slots[i].packed and slots[i].path != P_RING:
                    _scale(slots[i].kind, slots[i].ptr, slots[i].n, divide_by)

    cdef int _reduce(self, const call_t* c, const part_t* b, int code, bint defer) except -1:
        # One in-place reduction of a buffer along its path, undivided (means are divided by
        # the unpacking). ``defer``: doubling leaves its last addition to the unpacking
        # (self._packed.pending); other paths ignore it.
        cdef msgs_t one
        if b.path == P_RING:
            one.ptr, one.src, one.n = <char**>&b.ptr, <char**>&b.ptr, <Py_ssize_t*>&b.n
            _ring(c, &one, 1, b.kind, 1, &self._scratch)
        elif b.path == P_DOUBLING:
            _doubling(c, b.ptr, b.n, b.kind, &self._scratch,
                      &self._packed.pending if defer else NULL)
        else:
            (<object>c.comm).Allreduce(_MPI.IN_PLACE, [_writable(b.ptr, b.n * _itemsize(b.kind)),
                                                       _MPI_TYPES[b.kind]], _MPI_OPS[code])
        return 0


cdef call_t _record(object comm, object op, str where) except *:
    # A call's record, before its op: on ``comm`` (None: one process), named ``where``.
    cdef call_t c
    c.comm, c.dup, c.op, c.where = <PyObject*>comm, NULL, <PyObject*>op, <PyObject*>where
    c.size = comm.Get_size() if comm is not None else 1
    c.rank = comm.Get_rank() if comm is not None else 0
    c.code, c.root, c.ok_flag = -1, -1, 0.0
    return c


cdef int _grow(void** p, size_t nbytes) except -1:
    cdef void* q = PyMem_Realloc(p[0], nbytes)
    if q == NULL:
        raise MemoryError()
    p[0] = q
    return 0
