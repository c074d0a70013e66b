# cython: language_level=3
"""C-level interface of spinfast._stats: the Welford accumulator state and kernels."""

cimport cython

from ddsketch cimport sf_sketch

cpdef enum:
    # Where each number sits in a state (acc_t as a row of float64: count, mean, M2, min, max)
    # and in its summary (mean, std, max, min: Spinning Up's column order). The same names
    # are the module's Python constants; every reader, C or Python, indexes by them.
    STATE_COUNT = 0
    STATE_MEAN = 1
    STATE_M2 = 2
    STATE_MIN = 3
    STATE_MAX = 4
    STATE_SIZE = 5
    SUMMARY_MEAN = 0
    SUMMARY_STD = 1
    SUMMARY_MAX = 2
    SUMMARY_MIN = 3
    SUMMARY_SIZE = 4

cdef struct acc_t:
    # count, mean, sum of squared deviations (M2), min, max; all float64.
    # Empty: (0, 0, 0, +inf, -inf), the identity of merge.
    double n
    double mean
    double m2
    double lo
    double hi

cdef void acc_reset(acc_t* a) noexcept nogil
cdef void acc_push(acc_t* a, double x) noexcept nogil
cdef void acc_merge(acc_t* a, const acc_t* b) noexcept nogil
cdef double acc_std(const acc_t* a) noexcept nogil
cdef void acc_to_row(const acc_t* a, double* row) noexcept nogil
cdef void acc_from_row(acc_t* a, const double* row) noexcept nogil


cdef class Welford:
    cdef acc_t acc
    cdef sf_sketch sk      # quantile sketch: sk.counts is NULL unless quantiles are tracked
    cdef object _counts    # the float64 numpy array behind sk.counts (None if untracked)
    cdef sf_sketch* sketch(self) noexcept


cdef struct key_slot_t:
    # Identity cache of store()'s keyword names (interned by the caller's code object).
    void* key     # strong reference to the key string, or NULL
    void* acc     # the key's Welford, owned by EpochStats._accs


@cython.final  # a member of EpochLogger, no base class: cdef methods are direct C calls
cdef class EpochStats:
    cdef dict _accs
    cdef key_slot_t _slots[64]
    cdef acc_t* _batch           # states taken by take_into_batch, in take order (PyMem)
    cdef Py_ssize_t _batch_len
    cdef Py_ssize_t _batch_cap
    cdef dict _timers            # key -> its Timer (timer())
    cdef object _convert         # store's conversion of values it does not read (or None)
    cdef str _name               # the name store's errors give the call
    cdef Welford _get_or_create(self, object key)
    cdef Welford _lookup(self, object key)
    cdef void _push_number(self, Welford w, double x) noexcept
    cdef int _store_general(self, tuple args, dict kwargs) except -1
