# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
"""Streaming statistics (private): Welford accumulators and the key table of EpochLogger.

An accumulator holds five float64: count, mean, M2 (sum of squared deviations from the mean),
min and max. Single values use Welford's update (Welford 1962). Arrays are consumed in blocks:
two tight passes over a block, shifted by the running mean so that the subtraction is exact for
data far from zero, then merged with Chan, Golub & LeVeque's pairwise formula (1979), which is
also the merge of two accumulators (local, or gathered from MPI ranks).

NaN and +/-inf follow numpy's mean/std/min/max of the same values: once a non-finite value is
seen the mean becomes the IEEE sum of the non-finite values seen (inf, -inf or nan) and M2
becomes nan; min and max propagate nan.
"""

from cpython.buffer cimport (
    PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release, PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_AsDouble
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "Python.h":
    # The C types as CPython declares them: the generated C passes no pointer through a cast
    # the compiler would have to accept on trust (GCC 14 rejects incompatible pointer types).
    ctypedef PyObject* (*PyCFunction)(PyObject*, PyObject*)
    ctypedef struct PyMethodDef:
        const char* ml_name
        PyCFunction ml_meth
        int ml_flags
        const char* ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    PyObject* PyDescr_NewMethod(PyTypeObject* type, PyMethodDef* method) except NULL
    int PyDict_SetItem(object d, object key, PyObject* value) except -1
    void PyType_Modified(PyTypeObject* type)
from libc.math cimport INFINITY, NAN, isfinite, isnan, sqrt
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from ddsketch cimport (
    sf_sketch, sf_sketch_clear, sf_sketch_init, sf_sketch_merge, sf_sketch_push,
    sf_sketch_push_f32, sf_sketch_push_f64, sf_sketch_quantile, sf_sketch_slots,
)

import numpy as np

cdef enum:
    # Values per block of the array kernel: small enough to stay in L1 for the second pass.
    BLOCK = 2048
    # Arrays at least this long are consumed with the GIL released.
    NOGIL_MIN = 16384

cdef enum kind_t:
    K_NONE, K_F32, K_F64, K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32, K_U64

ctypedef fused num_t:
    float
    double
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef extern from "block_kernels.h" nogil:
    double sf_sum_f32(const float*, Py_ssize_t, double)
    double sf_sqdev_f32(const float*, Py_ssize_t, double, double)
    void sf_minmax_f32(const float*, Py_ssize_t, double*, double*)
    double sf_sum_f64(const double*, Py_ssize_t, double)
    double sf_sqdev_f64(const double*, Py_ssize_t, double, double)
    void sf_minmax_f64(const double*, Py_ssize_t, double*, double*)
    double sf_sum_i8(const int8_t*, Py_ssize_t, double)
    double sf_sqdev_i8(const int8_t*, Py_ssize_t, double, double)
    void sf_minmax_i8(const int8_t*, Py_ssize_t, double*, double*)
    double sf_sum_i16(const int16_t*, Py_ssize_t, double)
    double sf_sqdev_i16(const int16_t*, Py_ssize_t, double, double)
    void sf_minmax_i16(const int16_t*, Py_ssize_t, double*, double*)
    double sf_sum_i32(const int32_t*, Py_ssize_t, double)
    double sf_sqdev_i32(const int32_t*, Py_ssize_t, double, double)
    void sf_minmax_i32(const int32_t*, Py_ssize_t, double*, double*)
    double sf_sum_i64(const int64_t*, Py_ssize_t, double)
    double sf_sqdev_i64(const int64_t*, Py_ssize_t, double, double)
    void sf_minmax_i64(const int64_t*, Py_ssize_t, double*, double*)
    double sf_sum_u8(const uint8_t*, Py_ssize_t, double)
    double sf_sqdev_u8(const uint8_t*, Py_ssize_t, double, double)
    void sf_minmax_u8(const uint8_t*, Py_ssize_t, double*, double*)
    double sf_sum_u16(const uint16_t*, Py_ssize_t, double)
    double sf_sqdev_u16(const uint16_t*, Py_ssize_t, double, double)
    void sf_minmax_u16(const uint16_t*, Py_ssize_t, double*, double*)
    double sf_sum_u32(const uint32_t*, Py_ssize_t, double)
    double sf_sqdev_u32(const uint32_t*, Py_ssize_t, double, double)
    void sf_minmax_u32(const uint32_t*, Py_ssize_t, double*, double*)
    double sf_sum_u64(const uint64_t*, Py_ssize_t, double)
    double sf_sqdev_u64(const uint64_t*, Py_ssize_t, double, double)
    void sf_minmax_u64(const uint64_t*, Py_ssize_t, double*, double*)


cdef inline double _sum(const num_t* x, Py_ssize_t m, double K) noexcept nogil:
    if num_t is float:
        return sf_sum_f32(x, m, K)
    elif num_t is double:
        return sf_sum_f64(x, m, K)
    elif num_t is int8_t:
        return sf_sum_i8(x, m, K)
    elif num_t is int16_t:
        return sf_sum_i16(x, m, K)
    elif num_t is int32_t:
        return sf_sum_i32(x, m, K)
    elif num_t is int64_t:
        return sf_sum_i64(x, m, K)
    elif num_t is uint8_t:
        return sf_sum_u8(x, m, K)
    elif num_t is uint16_t:
        return sf_sum_u16(x, m, K)
    elif num_t is uint32_t:
        return sf_sum_u32(x, m, K)
    else:
        return sf_sum_u64(x, m, K)


cdef inline double _sqdev(const num_t* x, Py_ssize_t m, double K, double ybar) noexcept nogil:
    if num_t is float:
        return sf_sqdev_f32(x, m, K, ybar)
    elif num_t is double:
        return sf_sqdev_f64(x, m, K, ybar)
    elif num_t is int8_t:
        return sf_sqdev_i8(x, m, K, ybar)
    elif num_t is int16_t:
        return sf_sqdev_i16(x, m, K, ybar)
    elif num_t is int32_t:
        return sf_sqdev_i32(x, m, K, ybar)
    elif num_t is int64_t:
        return sf_sqdev_i64(x, m, K, ybar)
    elif num_t is uint8_t:
        return sf_sqdev_u8(x, m, K, ybar)
    elif num_t is uint16_t:
        return sf_sqdev_u16(x, m, K, ybar)
    elif num_t is uint32_t:
        return sf_sqdev_u32(x, m, K, ybar)
    else:
        return sf_sqdev_u64(x, m, K, ybar)


cdef inline void _minmax(const num_t* x, Py_ssize_t m, double* lo, double* hi) noexcept nogil:
    if num_t is float:
        sf_minmax_f32(x, m, lo, hi)
    elif num_t is double:
        sf_minmax_f64(x, m, lo, hi)
    elif num_t is int8_t:
        sf_minmax_i8(x, m, lo, hi)
    elif num_t is int16_t:
        sf_minmax_i16(x, m, lo, hi)
    elif num_t is int32_t:
        sf_minmax_i32(x, m, lo, hi)
    elif num_t is int64_t:
        sf_minmax_i64(x, m, lo, hi)
    elif num_t is uint8_t:
        sf_minmax_u8(x, m, lo, hi)
    elif num_t is uint16_t:
        sf_minmax_u16(x, m, lo, hi)
    elif num_t is uint32_t:
        sf_minmax_u32(x, m, lo, hi)
    else:
        sf_minmax_u64(x, m, lo, hi)


# ---------------------------------------------------------------------------------------------
# Kernels on acc_t

cdef void acc_reset(acc_t* a) noexcept nogil:
    a.n = 0.0
    a.mean = 0.0
    a.m2 = 0.0
    a.lo = INFINITY
    a.hi = -INFINITY


cdef inline double _nonfinite_part(double x) noexcept nogil:
    return 0.0 if isfinite(x) else x


cdef inline void _acc_minmax(acc_t* a, double lo, double hi) noexcept nogil:
    # nan wins, as in numpy's min/max.
    if lo < a.lo or isnan(lo):
        if not isnan(a.lo):
            a.lo = lo
    if hi > a.hi or isnan(hi):
        if not isnan(a.hi):
            a.hi = hi


cdef void acc_push(acc_t* a, double x) noexcept nogil:
    cdef double n = a.n + 1.0
    cdef double d
    if isfinite(x) and isfinite(a.mean):
        d = x - a.mean
        a.mean += d / n
        a.m2 += d * (x - a.mean)
    else:
        a.mean = _nonfinite_part(a.mean) + _nonfinite_part(x)
        a.m2 = NAN
    a.n = n
    _acc_minmax(a, x, x)


cdef void acc_merge(acc_t* a, const acc_t* b) noexcept nogil:
    cdef double n, delta
    if b.n == 0.0:
        return
    if a.n == 0.0:
        a[0] = b[0]
        return
    n = a.n + b.n
    if isfinite(a.mean) and isfinite(b.mean):
        delta = b.mean - a.mean
        a.mean += delta * (b.n / n)
        a.m2 += b.m2 + delta * delta * (a.n * b.n / n)
    else:
        a.mean = _nonfinite_part(a.mean) + _nonfinite_part(b.mean)
        a.m2 = NAN
    a.n = n
    _acc_minmax(a, b.lo, b.hi)


cdef void _push_each(acc_t* a, const num_t* x, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m):
        acc_push(a, <double>x[i])


cdef void _push_array(acc_t* a, const num_t* x, Py_ssize_t n) noexcept nogil:
    # All blocks are summarised relative to one shift K (the running mean, or the first value),
    # so that x - K is small and exact for data far from zero and the block means combine
    # without rounding; the running mean is rounded once per call. Non-finite data leaves the
    # fast path for the scalar update, which follows numpy's semantics.
    cdef double K, s, q, ybar, bn = 0.0, bmean = 0.0, bm2 = 0.0, delta, nn
    cdef double lo = INFINITY, hi = -INFINITY, blo, bhi
    cdef Py_ssize_t start = 0, m
    if n <= 0:
        return
    K = a.mean if a.n > 0.0 else <double>x[0]
    if not isfinite(K):
        _push_each(a, x, n)
        return
    while start < n:
        m = min(<Py_ssize_t>BLOCK, n - start)
        s = _sum(x + start, m, K)
        if not isfinite(s):
            break
        ybar = s / m
        q = _sqdev(x + start, m, K, ybar)
        _minmax(x + start, m, &blo, &bhi)
        lo = blo if blo < lo else lo
        hi = bhi if bhi > hi else hi
        # Chan et al. in the shifted frame
        nn = bn + m
        delta = ybar - bmean
        bmean += delta * (m / nn)
        bm2 += q + delta * delta * (bn * m / nn)
        bn = nn
        start += m
    if bn > 0.0:
        # Chan et al. against the accumulator, whose mean is K when it is not empty
        nn = a.n + bn
        if a.n > 0.0:
            a.m2 += bm2 + bmean * bmean * (a.n * bn / nn)
            a.mean = K + bmean * (bn / nn)
        else:
            a.m2 = bm2
            a.mean = K + bmean
        a.n = nn
        _acc_minmax(a, lo, hi)
    if start < n:
        _push_each(a, x + start, n - start)


# ---------------------------------------------------------------------------------------------
# Python values -> kernels

# numpy scalar types that convert exactly through __float__ (bool, ints, floats).
cdef frozenset _NUMPY_SCALARS = frozenset(
    t for t in set(np.sctypeDict.values())
    if issubclass(t, (np.bool_, np.integer, np.floating)) and t is not np.longdouble
)

cdef str _EXPECTED = ("expected a number, a numpy array or list/tuple of numbers "
                      "(bool, int, float), or a TensorFlow/PyTorch tensor")


cdef str _where(object key):
    return "Welford.push()" if key is None else f"EpochLogger.store(): key {key!r}"


cdef bint _LITTLE = np.little_endian


cdef kind_t _view_kind(const Py_buffer* v) noexcept:
    # Native-endian single-letter numeric formats; K_NONE sends the value through numpy.
    cdef const char* f = b"B"
    cdef char c
    if v.format != NULL:
        f = v.format
    cdef Py_ssize_t size = v.itemsize
    if f[0] == b"@" or f[0] == b"=" or f[0] == b"|" or (f[0] == b"<" and _LITTLE):
        f += 1
    c = f[0]
    if c == 0 or f[1] != 0:
        return K_NONE
    if c == b"f" and size == 4:
        return K_F32
    if c == b"d" and size == 8:
        return K_F64
    if c in b"bhilq":
        if size == 1:
            return K_I8
        if size == 2:
            return K_I16
        if size == 4:
            return K_I32
        if size == 8:
            return K_I64
    if c in b"BHILQ?":
        if size == 1:
            return K_U8
        if size == 2:
            return K_U16
        if size == 4:
            return K_U32
        if size == 8:
            return K_U64
    return K_NONE


cdef void _push_kind(acc_t* a, kind_t kind, const void* p, Py_ssize_t n) noexcept nogil:
    if kind == K_F32:
        _push_array(a, <const float*>p, n)
    elif kind == K_F64:
        _push_array(a, <const double*>p, n)
    elif kind == K_I8:
        _push_array(a, <const int8_t*>p, n)
    elif kind == K_I16:
        _push_array(a, <const int16_t*>p, n)
    elif kind == K_I32:
        _push_array(a, <const int32_t*>p, n)
    elif kind == K_I64:
        _push_array(a, <const int64_t*>p, n)
    elif kind == K_U8:
        _push_array(a, <const uint8_t*>p, n)
    elif kind == K_U16:
        _push_array(a, <const uint16_t*>p, n)
    elif kind == K_U32:
        _push_array(a, <const uint32_t*>p, n)
    elif kind == K_U64:
        _push_array(a, <const uint64_t*>p, n)


cdef void _sketch_kind(sf_sketch* sk, kind_t kind, const void* p, Py_ssize_t n) noexcept nogil:
    # Count n values of a kind in a quantile sketch: float32/float64 by the sketch's array
    # kernels, the integer kinds value by value (each converts exactly to float64 but uint64's
    # and int64's beyond 2^53, which round as numpy's float64 conversion does).
    cdef Py_ssize_t i
    if kind == K_F32:
        sf_sketch_push_f32(sk, <const float*>p, n)
    elif kind == K_F64:
        sf_sketch_push_f64(sk, <const double*>p, n)
    else:
        for i in range(n):
            sf_sketch_push(sk, _kind_item(kind, p, i))


cdef inline double _kind_item(kind_t kind, const void* p, Py_ssize_t i) noexcept nogil:
    if kind == K_I8:
        return (<const int8_t*>p)[i]
    if kind == K_I16:
        return (<const int16_t*>p)[i]
    if kind == K_I32:
        return (<const int32_t*>p)[i]
    if kind == K_I64:
        return <double>(<const int64_t*>p)[i]
    if kind == K_U8:
        return (<const uint8_t*>p)[i]
    if kind == K_U16:
        return (<const uint16_t*>p)[i]
    if kind == K_U32:
        return (<const uint32_t*>p)[i]
    return <double>(<const uint64_t*>p)[i]


cdef int _push_buffer(acc_t* a, object value, bint dry_run=False,
                      sf_sketch* sk=NULL) except -1:
    # 1: consumed (or, with dry_run, would be); 0: a buffer the fast path does not take.
    # With sk, the values are counted in that quantile sketch too.
    cdef Py_buffer view
    cdef kind_t kind
    cdef Py_ssize_t n
    if isinstance(value, (bytes, bytearray, str)):
        return 0
    try:
        PyObject_GetBuffer(value, &view, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT)
    except (BufferError, ValueError, TypeError):
        return 0
    try:
        kind = _view_kind(&view)
        if kind == K_NONE:
            return 0
        n = view.len // view.itemsize if view.itemsize > 0 else 0
        if dry_run or n == 0:
            pass
        elif n < NOGIL_MIN:
            _push_kind(a, kind, view.buf, n)
            if sk != NULL:
                _sketch_kind(sk, kind, view.buf, n)
        else:
            with nogil:
                _push_kind(a, kind, view.buf, n)
                if sk != NULL:
                    _sketch_kind(sk, kind, view.buf, n)
    finally:
        PyBuffer_Release(&view)
    return 1


cdef object _as_numeric_array(object value, object key):
    # Slow path: anything numpy can turn into a real numeric array (framework tensors included).
    cdef object arr
    if isinstance(value, (str, bytes, bytearray, dict, set, frozenset)) or value is None:
        raise TypeError(f"{_where(key)}: got a value of type {type(value).__name__}; {_EXPECTED}")
    detach = getattr(value, "detach", None)
    if detach is not None and callable(detach) and not isinstance(value, np.ndarray):
        value = detach().cpu()  # a PyTorch tensor: leave the autograd graph, move to host
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()  # numpy has no bfloat16: its float32 values are exact
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(
            f"{_where(key)}: cannot convert a value of type {type(value).__name__} to numbers "
            f"({exc}); {_EXPECTED}") from None
    if arr.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 (TensorFlow, JAX): kind "V"
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{_where(key)}: got a value of type {type(value).__name__} with dtype "
            f"{arr.dtype}; {_EXPECTED}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize != 4 and arr.dtype.itemsize != 8:
        arr = arr.astype(np.float64)  # float16 (half-precision tensors), longdouble
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


cdef inline int _push_value(acc_t* a, object value, object key,
                            sf_sketch* sk=NULL) except -1:
    # Every element of value into the accumulator (and into the quantile sketch sk, if any).
    cdef type t = type(value)
    cdef double x
    if t is float or t is int or t is bool or t in _NUMPY_SCALARS:
        x = PyFloat_AS_DOUBLE(value) if t is float else PyFloat_AsDouble(value)
        acc_push(a, x)
        if sk != NULL:
            sf_sketch_push(sk, x)
    elif not (PyObject_CheckBuffer(value) and _push_buffer(a, value, False, sk)):
        if not _push_buffer(a, _as_numeric_array(value, key), False, sk):
            raise TypeError(f"{_where(key)}: unsupported buffer of type {t.__name__}; {_EXPECTED}")
    return 0


cdef inline bint _is_plain_number(object value):
    cdef type t = type(value)
    return t is float or t is int or t is bool or t in _NUMPY_SCALARS


# ---------------------------------------------------------------------------------------------
# Python API

cdef class Welford:
    """Accumulate count, mean, M2, min and max of a stream of numbers in float64, in O(1) memory.

    ``Welford()`` is empty; ``Welford.from_state(state)`` rebuilds one from :attr:`state`.
    Pickles through its state (and its quantile sketch, if it tracks quantiles).
    """

    def __cinit__(self):
        acc_reset(&self.acc)
        self.sk.counts = NULL

    cdef sf_sketch* sketch(self) noexcept:
        return &self.sk if self.sk.counts != NULL else NULL

    def track_quantiles(self, double relative_accuracy=0.01):
        """Count the values pushed from now on in a quantile sketch as well.

        The sketch (DDSketch-style, ``csrc/ddsketch.h``) answers quantiles within
        ``relative_accuracy`` of the value, with a fixed memory of about
        ``384 / relative_accuracy`` bytes. Calling it again with the same accuracy keeps the
        sketch; another accuracy starts a new one.

        Raises:
            ValueError: ``relative_accuracy`` outside [1e-4, 0.5].
        """
        cdef int slots = sketch_size(relative_accuracy)
        if self.sk.counts != NULL and self.sk.alpha == relative_accuracy:
            return
        counts = np.zeros(slots, dtype=np.float64)
        cdef double[::1] c = counts
        sf_sketch_init(&self.sk, relative_accuracy, &c[0])
        self._counts = counts

    @property
    def quantile_counts(self):
        """A copy of the sketch's counts (float64), or None if quantiles are not tracked."""
        return None if self._counts is None else self._counts.copy()

    @property
    def relative_accuracy(self):
        """The quantile sketch's relative accuracy, or None if quantiles are not tracked."""
        return None if self._counts is None else self.sk.alpha

    def push(self, value):
        """Add a number, or every element of an array/list/tensor of numbers, to the statistics.

        Arrays of any shape and memory order are read in place (C- or Fortran-contiguous
        float32/float64/int/uint/bool) with the GIL released for large ones; other layouts and
        dtypes (float16, non-native byte order, strided views) go through one numpy copy.

        Raises:
            TypeError: the value is not numeric (str, None, dict, object or complex arrays).
        """
        _push_value(&self.acc, value, None, self.sketch())

    def merge(self, Welford other not None):
        """Fold ``other``'s values into this accumulator (Chan et al.); ``other`` is unchanged.

        If this accumulator tracks quantiles, ``other``'s sketch merges into its sketch (the
        counts add), so ``other`` must track them at the same accuracy, or be empty.

        Raises:
            ValueError: this accumulator tracks quantiles and ``other`` holds values without a
                sketch of the same accuracy (nothing is merged).
        """
        if self.sk.counts != NULL and other.acc.n > 0:
            if other.sk.counts == NULL:
                raise ValueError(
                    f"Welford.merge(): this accumulator tracks quantiles and the other one "
                    f"does not: its {other.acc.n:g} values would be missing from the "
                    f"quantiles; call track_quantiles({self.sk.alpha!r}) on it before pushing")
            if other.sk.alpha != self.sk.alpha:
                raise ValueError(
                    f"Welford.merge(): the quantile sketches' relative accuracies differ "
                    f"({self.sk.alpha!r} here, {other.sk.alpha!r} in the other one); track "
                    f"quantiles at the same accuracy on both")
            sf_sketch_merge(&self.sk, &other.sk)
        acc_merge(&self.acc, &other.acc)

    def reset(self):
        """Forget every value: count 0, statistics NaN, empty quantile sketch."""
        acc_reset(&self.acc)
        if self.sk.counts != NULL:
            sf_sketch_clear(&self.sk)

    @property
    def state(self):
        """The state as a tuple of five float64: ``(count, mean, M2, min, max)``."""
        return (self.acc.n, self.acc.mean, self.acc.m2, self.acc.lo, self.acc.hi)

    @state.setter
    def state(self, value):
        n, mean, m2, lo, hi = value
        n = float(n)
        if not n >= 0.0:
            raise ValueError(f"Welford.state: count must be >= 0, got {n!r}")
        if n == 0.0:
            acc_reset(&self.acc)
            return
        self.acc.n = n
        self.acc.mean = float(mean)
        self.acc.m2 = float(m2)
        self.acc.lo = float(lo)
        self.acc.hi = float(hi)

    @staticmethod
    def from_state(state):
        """Return a new accumulator holding ``state`` (a 5-sequence as given by :attr:`state`)."""
        cdef Welford w = Welford()
        w.state = state
        return w

    def __reduce__(self):
        if self._counts is None:
            return (Welford.from_state, (self.state,))
        return (_tracked_welford, (self.state, self.sk.alpha, self._counts.copy()))

    @property
    def count(self):
        """Number of values pushed (a float64, exact up to 2**53)."""
        return self.acc.n

    @property
    def mean(self):
        """Mean of the values; NaN when empty."""
        return self.acc.mean if self.acc.n > 0 else NAN

    @property
    def var(self):
        """Population variance (ddof=0); NaN when empty."""
        return self.acc.m2 / self.acc.n if self.acc.n > 0 else NAN

    @property
    def std(self):
        """Population standard deviation (ddof=0), as ``np.std``; NaN when empty."""
        return sqrt(self.acc.m2 / self.acc.n) if self.acc.n > 0 else NAN

    @property
    def min(self):
        """Smallest value (NaN if any value was NaN, or when empty)."""
        return self.acc.lo if self.acc.n > 0 else NAN

    @property
    def max(self):
        """Largest value (NaN if any value was NaN, or when empty)."""
        return self.acc.hi if self.acc.n > 0 else NAN

    def __len__(self):
        return <Py_ssize_t>self.acc.n

    def __repr__(self):
        return (f"Welford(count={self.acc.n:g}, mean={self.mean!r}, std={self.std!r}, "
                f"min={self.min!r}, max={self.max!r})")


def _tracked_welford(state, double relative_accuracy, counts):
    # Unpickle a Welford that tracks quantiles: its state and its sketch's counts.
    cdef Welford w = Welford.from_state(state)
    w.track_quantiles(relative_accuracy)
    w._counts[:] = counts
    return w


def merge_states(const double[:, :, ::1] gathered not None):
    """Merge states gathered from ranks: (r, k, 5) float64 → (k, 5), rank 0 first.

    Every rank merging the same gathered array gets bit-identical results.
    """
    cdef Py_ssize_t r, k, nr = gathered.shape[0], nk = gathered.shape[1]
    if gathered.shape[2] != 5:
        raise ValueError(f"merge_states(): expected shape (ranks, keys, 5), got "
                         f"{tuple(gathered.shape)!r}")
    out = np.empty((nk, 5), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef acc_t acc, b
    with nogil:
        for k in range(nk):
            acc_reset(&acc)
            for r in range(nr):
                b.n = gathered[r, k, 0]
                b.mean = gathered[r, k, 1]
                b.m2 = gathered[r, k, 2]
                b.lo = gathered[r, k, 3]
                b.hi = gathered[r, k, 4]
                acc_merge(&acc, &b)
            o[k, 0] = acc.n
            o[k, 1] = acc.mean
            o[k, 2] = acc.m2
            o[k, 3] = acc.lo
            o[k, 4] = acc.hi
    return out


def sketch_size(double relative_accuracy):
    """Return the number of float64 counts of a quantile sketch of ``relative_accuracy``.

    Raises:
        ValueError: ``relative_accuracy`` outside [1e-4, 0.5].
    """
    cdef int slots = sf_sketch_slots(relative_accuracy)
    if slots == 0:
        raise ValueError(f"track_quantiles(): relative_accuracy must be in [1e-4, 0.5], got "
                         f"{relative_accuracy!r}")
    return slots


def sketch_quantiles(const double[::1] counts not None, double relative_accuracy, qs):
    """Return the quantiles ``qs`` (each in [0, 1]) of a sketch given by its counts.

    ``counts`` is a sketch's float64 counts (:attr:`Welford.quantile_counts`, or such counts
    of several sketches added up, e.g. over MPI ranks) of ``relative_accuracy``. Each result
    is within that relative error of a value between numpy's ``lower`` and ``higher``
    quantiles of the values counted; NaN if none was counted or one was NaN.

    Raises:
        ValueError: counts of another length than the accuracy's sketch, or a q outside [0, 1].
    """
    cdef sf_sketch sk
    cdef double q
    if sf_sketch_slots(relative_accuracy) != counts.shape[0]:
        raise ValueError(f"sketch_quantiles(): {counts.shape[0]} counts do not make a sketch of "
                         f"relative accuracy {relative_accuracy!r} "
                         f"({sf_sketch_slots(relative_accuracy)} counts)")
    sf_sketch_init(&sk, relative_accuracy, <double*>&counts[0])  # read only below
    out = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"sketch_quantiles(): quantiles must be in [0, 1], got {q!r}")
        out.append(sf_sketch_quantile(&sk, q))
    return out


cdef class EpochStats:
    """The key → accumulator table behind ``EpochLogger.store`` (a base class, no files).

    ``store`` is a vectorcall method (installed below the class): it reads the keyword names
    and values straight from the call, without building a kwargs dict, and finds each key's
    accumulator by the identity of the (interned) keyword name before falling back to the dict.
    """

    def __cinit__(self, *args, **kwargs):
        self._accs = {}
        self._timers = {}
        memset(self._slots, 0, sizeof(self._slots))
        self._batch = NULL
        self._batch_len = self._batch_cap = 0

    def __dealloc__(self):
        cdef int i
        for i in range(64):
            Py_XDECREF(<PyObject*>self._slots[i].key)
        PyMem_Free(self._batch)

    cdef Welford _get_or_create(self, object key):
        cdef PyObject* found = PyDict_GetItem(self._accs, key)  # borrowed, never raises
        cdef Welford w
        if found != NULL:
            return <Welford>found
        if not isinstance(key, str):
            raise TypeError(f"EpochLogger.store(): keys must be str, got {key!r}")
        w = Welford()
        self._accs[key] = w
        return w

    cdef Welford _lookup(self, object key):
        cdef size_t h = (<size_t><PyObject*>key >> 4) & 63
        cdef key_slot_t* slot = &self._slots[h]
        cdef Welford w
        if slot.key == <void*>key:
            return <Welford>slot.acc
        w = self._get_or_create(key)
        Py_XDECREF(<PyObject*>slot.key)
        Py_INCREF(key)
        slot.key = <void*>key
        slot.acc = <void*>w
        return w

    def _store_kwargs(self, kwargs):
        # General path: convert every value first so that a bad one stores nothing.
        cdef list prepared = []
        for key, value in kwargs.items():
            if not _is_plain_number(value) and not _push_buffer(NULL, value, True):
                value = _as_numeric_array(value, key)
            prepared.append((key, value))
        cdef Welford w
        for key, value in prepared:
            w = self._lookup(key)
            _push_value(&w.acc, value, key, w.sketch())

    def stats_accumulator(self, key):
        """Return the live accumulator of ``key``; KeyError listing the stored keys if none."""
        w = self._accs.get(key)
        if w is None:
            raise KeyError(
                f"EpochLogger: key {key!r} was never stored; stored keys: "
                f"{sorted(map(str, self._accs))!r}. Call store({key}=...) first.")
        return w

    def take_state(self, key, bint reset=True):
        """Return the state of ``key``, then empty it (``reset``); None if never stored.

        The state is ``(count, mean, M2, min, max)``, five floats; an empty one is
        ``(0.0, 0.0, 0.0, inf, -inf)``. ``EpochLogger.log_tabular`` takes a key's epoch with
        one call of this; ``get_stats`` reads it with ``reset=False``.
        """
        cdef PyObject* found = PyDict_GetItem(self._accs, key)
        cdef Welford w
        if found == NULL:
            return None
        w = <Welford>found
        state = (w.acc.n, w.acc.mean, w.acc.m2, w.acc.lo, w.acc.hi)
        if reset:
            acc_reset(&w.acc)
            if w.sk.counts != NULL:
                sf_sketch_clear(&w.sk)
        return state

    def take_into_batch(self, key):
        """Take the state of ``key`` as :meth:`take_state` does, into the table's batch.

        The batch collects the states taken one key at a time (``EpochLogger.log_tabular``)
        until :meth:`pop_batch` hands them over as one array (``dump_tabular``'s merge).
        Returns False if ``key`` was never stored (an empty state is added then).
        """
        cdef PyObject* found = PyDict_GetItem(self._accs, key)
        cdef Welford w
        cdef acc_t* grown
        cdef Py_ssize_t cap
        if self._batch_len == self._batch_cap:
            cap = 2 * self._batch_cap if self._batch_cap else 32
            grown = <acc_t*>PyMem_Realloc(self._batch, cap * sizeof(acc_t))
            if grown == NULL:
                raise MemoryError()
            self._batch, self._batch_cap = grown, cap
        if found == NULL:
            acc_reset(&self._batch[self._batch_len])
            self._batch_len += 1
            return False
        w = <Welford>found
        self._batch[self._batch_len] = w.acc
        self._batch_len += 1
        acc_reset(&w.acc)
        if w.sk.counts != NULL:
            sf_sketch_clear(&w.sk)
        return True

    def pop_batch(self):
        """Return the states taken by :meth:`take_into_batch` and empty the batch.

        A (k, 5) float64 array, one ``(count, mean, M2, min, max)`` row per call, in order.
        """
        out = np.empty((self._batch_len, 5), dtype=np.float64)
        cdef double[:, ::1] o = out
        cdef Py_ssize_t i
        for i in range(self._batch_len):
            o[i, 0] = self._batch[i].n
            o[i, 1] = self._batch[i].mean
            o[i, 2] = self._batch[i].m2
            o[i, 3] = self._batch[i].lo
            o[i, 4] = self._batch[i].hi
        self._batch_len = 0
        return out

    def track_sketch(self, key, double relative_accuracy=0.01):
        """Count ``key``'s values stored from now on in a quantile sketch as well.

        See :meth:`Welford.track_quantiles`; the key is created if it was never stored.
        """
        if not isinstance(key, str):
            raise TypeError(f"track_quantiles(): keys must be str, got {key!r}")  # the caller
        self._get_or_create(key).track_quantiles(relative_accuracy)

    def take_sketch(self, key, bint reset=True):
        """Return a copy of ``key``'s quantile-sketch counts, then clear them (``reset``).

        None if ``key`` was never stored or its quantiles are not tracked. Call it before
        :meth:`take_state`, which clears the sketch along with the state.
        """
        cdef PyObject* found = PyDict_GetItem(self._accs, key)
        cdef Welford w
        if found == NULL or (<Welford>found)._counts is None:
            return None
        w = <Welford>found
        counts = w._counts.copy()
        if reset:
            sf_sketch_clear(&w.sk)
        return counts

    def stored_keys(self):
        """Keys ever stored, in first-store order."""
        return list(self._accs)

    def timer(self, key):
        """Return a timer that stores the seconds of each block it times under ``key``.

        A context manager and a decorator: ``with logger.timer("UpdateTime"): ...`` or
        ``@logger.timer("UpdateTime")``. Each block's wall time (the monotonic clock of
        ``time.perf_counter``) is stored as by ``store(UpdateTime=seconds)``, so
        ``log_tabular("UpdateTime", with_min_and_max=True)`` gives its average, std, max and
        min over the epoch's blocks and, under MPI, over every rank's blocks (the max is the
        slowest rank's). Blocks nest, also of one key; a block left by an exception stores
        its time and the exception goes on. One timer per key, made on first use; not for
        several threads at once.

        Raises:
            TypeError: ``key`` is not a str.
        """
        t = self._timers.get(key)
        if t is None:
            if not isinstance(key, str):
                raise TypeError(f"timer(): key must be str, got {key!r}")
            t = self._timers[key] = Timer(self, key)
        return t


cdef inline double _monotonic() noexcept nogil:
    # The clock of time.perf_counter() on Linux and macOS, in seconds.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef class Timer:
    """Store the seconds a block takes under a key of an :class:`EpochStats` table.

    A context manager (``with table.timer("Update"): ...``) and a decorator. Blocks of the
    same key may nest (each stores its own time) and the time of a block left by an exception
    is stored before the exception goes on. Not for use by several threads at once.
    """
    cdef EpochStats _table
    cdef object _key
    cdef double _inline[8]     # start times of open blocks; deeper nesting goes to _heap
    cdef double* _heap
    cdef Py_ssize_t _depth, _cap

    def __cinit__(self, EpochStats table not None, str key not None):
        self._table = table
        self._key = key
        self._heap = NULL
        self._depth = 0
        self._cap = 8

    def __dealloc__(self):
        PyMem_Free(self._heap)

    @property
    def key(self):
        """The key the times are stored under."""
        return self._key

    cdef double* _starts(self) noexcept:
        return self._heap if self._heap != NULL else self._inline

    def __enter__(self):
        cdef double* grown
        if self._depth == self._cap:
            grown = <double*>PyMem_Realloc(self._heap, 2 * self._cap * sizeof(double))
            if grown == NULL:
                raise MemoryError()
            if self._heap == NULL:
                memcpy(grown, self._inline, self._cap * sizeof(double))
            self._heap, self._cap = grown, 2 * self._cap
        self._starts()[self._depth] = _monotonic()
        self._depth += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        cdef double elapsed = _monotonic()
        cdef Welford w
        if self._depth == 0:
            raise RuntimeError(f"timer(): {self._key!r} exited more often than entered")
        self._depth -= 1
        elapsed -= self._starts()[self._depth]
        w = self._table._lookup(self._key)
        acc_push(&w.acc, elapsed)
        if w.sk.counts != NULL:
            sf_sketch_push(&w.sk, elapsed)
        return False

    def __call__(self, func):
        """Wrap ``func`` so that each call is timed."""
        import functools

        @functools.wraps(func)
        def timed(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return timed

    def __repr__(self):
        return f"<Timer {self._key!r}, {self._depth} open>"


cdef object _store_vectorcall(object self, PyObject** args, Py_ssize_t nargs,
                              PyObject* kwnames):
    # EpochStats.store(**kwargs) as METH_FASTCALL | METH_KEYWORDS: args[0:n] are the values of
    # the names in the kwnames tuple. Plain numbers (the common case) take one cached lookup and
    # one compiled update per key; anything else goes through _store_kwargs.
    cdef Py_ssize_t i, n
    cdef EpochStats table = <EpochStats>self
    if nargs != 0:
        raise TypeError(f"EpochLogger.store() takes keyword arguments only (key=value), got "
                        f"{nargs} positional argument(s)")
    if kwnames == NULL:
        return None
    n = PyTuple_GET_SIZE(<object>kwnames)
    for i in range(n):
        if not _is_plain_number(<object>args[i]):
            table._store_kwargs({<object>PyTuple_GET_ITEM(<object>kwnames, j): <object>args[j]
                                 for j in range(n)})
            return None
    cdef Welford w
    cdef double x
    for i in range(n):
        w = table._lookup(<object>PyTuple_GET_ITEM(<object>kwnames, i))
        x = PyFloat_AsDouble(<object>args[i])
        acc_push(&w.acc, x)
        if w.sk.counts != NULL:
            sf_sketch_push(&w.sk, x)
    return None


cdef PyMethodDef _store_def
_store_def.ml_name = "store"
_store_def.ml_meth = <PyCFunction><void*>_store_vectorcall
_store_def.ml_flags = METH_FASTCALL | METH_KEYWORDS
cdef bytes _STORE_DOC = b"""store(**kwargs)
Save something into the epoch logger's current state.

Provide an arbitrary number of keyword arguments with numerical values (numbers, numpy arrays
of any shape, lists/tuples of numbers, TensorFlow/PyTorch tensors). Every element is added to
the key's running statistics at once: later changes to a stored array do not affect them.

Raises:
    TypeError: a value is not numeric; the message names the key. Nothing of that call is
        stored, and everything stored before stays."""
_store_def.ml_doc = _STORE_DOC
cdef PyObject* _store_descr = PyDescr_NewMethod(<PyTypeObject*>EpochStats, &_store_def)
PyDict_SetItem(<object>(<PyTypeObject*>EpochStats).tp_dict, "store", _store_descr)
Py_XDECREF(_store_descr)  # the type's dict holds it
PyType_Modified(<PyTypeObject*>EpochStats)
