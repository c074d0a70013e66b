# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
# cython: freethreading_compatible=False
"""Streaming statistics (private): Welford accumulators and the key table of EpochLogger.

An accumulator holds five float64: count, mean, M2 (sum of squared deviations from the mean),
min and max; as a row or a tuple (its *state*) they sit at the positions named ``STATE_*``,
and its summary ``(mean, std, max, min)`` at the positions named ``SUMMARY_*`` (constants of
this module, the same names in C: ``_stats.pxd``). Single values use Welford's update (Welford 1962). Arrays are consumed in blocks:
two tight passes over a block, shifted by the running mean so that the subtraction is exact for
data far from zero, then merged with Chan, Golub & LeVeque's pairwise formula (1979), which is
also the merge of two accumulators (local, or gathered from MPI ranks).

NaN and +/-inf follow numpy's mean/std/min/max of the same values: once a non-finite value is
seen the mean becomes the IEEE sum of the non-finite values seen (inf, -inf or nan) and M2
becomes nan; min and max propagate nan.

The module knows numbers, numpy and the buffer protocol, no framework: tensors are turned into
arrays by the caller (``spinfast.logx``). Not for free-threaded CPython: a table's key cache
and its accumulators are updated without locks (importing it there keeps the GIL on).

Parts, by concern (each ``include``d below):
    _stats_welford.pxi   the accumulator: Welford's update, the array push over the block
                         kernels (csrc/block_kernels.h), Chan's merge, the standard
                         deviation, class Welford, merge_states, summarize and the
                         quantile-sketch functions
    _stats_values.pxi    Python values -> kernels: numbers, buffers, numpy conversion
    _stats_table.pxi     the key table EpochStats, its compiled store call, and Timer
"""

from cpython.buffer cimport (
    PyBUF_ANY_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release, PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_AsDouble
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport INFINITY, NAN, isfinite, isnan, sqrt
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from bufformat cimport sf_format_code
from ddsketch cimport (
    sf_sketch, sf_sketch_clear, sf_sketch_init, sf_sketch_merge, sf_sketch_push,
    sf_sketch_push_f32, sf_sketch_push_f64, sf_sketch_quantile, sf_sketch_slots,
)

import numpy as np

cdef enum:
    # Values per block of the array kernels: small enough to stay in L1 for the second pass.
    BLOCK = 2048
    # Arrays at least this long are consumed with the GIL released.
    NOGIL_MIN = 16384


cdef extern from "block_kernels.h" nogil:
    ctypedef enum sf_kind:
        SF_NONE, SF_F32, SF_F64, SF_I8, SF_I16, SF_I32, SF_I64, SF_U8, SF_U16, SF_U32, SF_U64
    ctypedef struct sf_kernels:
        double (*sum)(const void* x, Py_ssize_t m, double K) noexcept nogil
        double (*sqdev)(const void* x, Py_ssize_t m, double K, double ybar) noexcept nogil
        void (*minmax)(const void* x, Py_ssize_t m, double* lo, double* hi) noexcept nogil
        void (*to_f64)(const void* x, Py_ssize_t m, double* out) noexcept nogil
        Py_ssize_t size
    const sf_kernels* sf_kernels_of(sf_kind kind)
    const void* sf_element(const sf_kernels* k, const void* x, Py_ssize_t i)


include "_stats_welford.pxi"
include "_stats_values.pxi"
include "_stats_table.pxi"
