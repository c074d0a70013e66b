# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, initializedcheck=False
"""Mergeable quantile sketches (private): the Python face of ``csrc/ddsketch.h``.

A :class:`QuantileSketch` counts values in fixed log-spaced buckets (DDSketch; Masson, Rim &
Lee, VLDB 2019), so that each quantile is within a relative error ``alpha`` of a true one,
sketches merge by adding counts, and an ``MPI_SUM`` of the ``counts`` buffers of all ranks
is the sketch of the union of their values. The layout, bounds and memory are documented in
``ddsketch.h``: at ``alpha = 0.01``, 4804 float64 counts (38 KB) per sketch.
"""

from libc.stdint cimport int32_t

from ddsketch cimport (
    SF_SKETCH_ALPHA_MAX, SF_SKETCH_ALPHA_MIN, sf_sketch_add_counts, sf_sketch_clear,
    sf_sketch_count, sf_sketch_init, sf_sketch_push, sf_sketch_push_f32, sf_sketch_push_f64,
    sf_sketch_quantile, sf_sketch_slots,
)

import numpy as np

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)

from cpython.float cimport PyFloat_AS_DOUBLE

cdef enum:
    # Arrays at least this long are counted with the GIL released.
    NOGIL_MIN = 16384


cdef class QuantileSketch:
    """A mergeable sketch of a stream of numbers, answering quantiles within relative error.

    Args:
        relative_accuracy: ``alpha``, from 1e-4 to 0.5: each quantile is within
            ``alpha * |v|`` of a value ``v`` between numpy's ``lower`` and ``higher``
            quantiles of the values pushed, for magnitudes from 2**-32 to 2**32 (smaller ones
            count as 0, larger ones as about 4.3e9; +/-inf and NaN are kept exactly).

    Raises:
        ValueError: ``relative_accuracy`` out of range.
    """

    def __cinit__(self, double relative_accuracy=0.01):
        cdef int32_t slots = sf_sketch_slots(relative_accuracy)
        if slots == 0:
            raise ValueError(f"QuantileSketch(): relative_accuracy must be between "
                             f"{SF_SKETCH_ALPHA_MIN:g} and {SF_SKETCH_ALPHA_MAX:g}, got "
                             f"{relative_accuracy!r}; pass e.g. 0.01 for 1%")
        self._counts = np.zeros(slots, dtype=np.float64)
        cdef double[::1] c = self._counts
        sf_sketch_init(&self.sk, relative_accuracy, &c[0])

    def __init__(self, double relative_accuracy=0.01):
        pass  # __cinit__ built the sketch (so that no instance is ever without counts)

    def push(self, value):
        """Count a number, or every element of an array (any shape, real dtype).

        float32 and float64 arrays are read in place (a C loop, without the GIL for large
        ones); other real dtypes, lists and tensors are converted to float64 first.

        Raises:
            TypeError: ``value`` is neither a real number nor an array of them.
        """
        if PyFloat_CheckExact(value):
            sf_sketch_push(&self.sk, PyFloat_AS_DOUBLE(value))
            return
        if isinstance(value, (int, np.floating, np.integer, np.bool_)):
            sf_sketch_push(&self.sk, float(value))
            return
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"QuantileSketch.push(): expected a real number or an array of "
                            f"them, got {value!r} (dtype {arr.dtype}); push numbers")
        if arr.dtype != np.float32:
            arr = np.ascontiguousarray(arr, dtype=np.float64)
        else:
            arr = np.ascontiguousarray(arr)
        cdef size_t n = arr.size
        cdef const float[::1] f32
        cdef const double[::1] f64
        if n == 0:
            return
        if arr.dtype == np.float32:
            f32 = arr.reshape(-1)
            if n >= NOGIL_MIN:
                with nogil:
                    sf_sketch_push_f32(&self.sk, &f32[0], n)
            else:
                sf_sketch_push_f32(&self.sk, &f32[0], n)
        else:
            f64 = arr.reshape(-1)
            if n >= NOGIL_MIN:
                with nogil:
                    sf_sketch_push_f64(&self.sk, &f64[0], n)
            else:
                sf_sketch_push_f64(&self.sk, &f64[0], n)

    def merge(self, QuantileSketch other not None):
        """Add ``other``'s values to this sketch (adds the counts; ``other`` is unchanged).

        Raises:
            ValueError: the sketches have different relative accuracies.
        """
        if other.sk.slots != self.sk.slots or other.sk.alpha != self.sk.alpha:
            raise ValueError(f"QuantileSketch.merge(): relative accuracies differ "
                             f"({self.sk.alpha!r} and {other.sk.alpha!r}); merge sketches "
                             f"made with the same relative_accuracy")
        sf_sketch_add_counts(&self.sk, other.sk.counts)

    def quantile(self, q):
        """Return the ``q``-quantile (``q`` in [0, 1]), or a list of them for a sequence.

        The value of 0-based rank ``floor((n - 1) q)`` among the ``n`` values, within the
        relative accuracy: numpy's ``lower`` quantile, so within ``alpha`` of a value between
        ``numpy.quantile(..., method="lower")`` and ``method="higher"``. NaN when the sketch
        is empty or holds a NaN (as numpy).

        Raises:
            ValueError: a ``q`` outside [0, 1].
        """
        if isinstance(q, (list, tuple, np.ndarray)):
            return [self.quantile(x) for x in q]
        cdef double qq = q
        if not (0.0 <= qq <= 1.0):
            raise ValueError(f"QuantileSketch.quantile(): q must be in [0, 1], got {q!r}; "
                             f"pass e.g. 0.5 for the median")
        return sf_sketch_quantile(&self.sk, qq)

    def clear(self):
        """Forget every value (the counts buffer is zeroed in place)."""
        sf_sketch_clear(&self.sk)

    @property
    def counts(self):
        """The sketch's own counts: a float64, C-contiguous numpy array, live.

        Summing another sketch's counts into it (``+=``, or ``MPI_SUM`` with
        ``comm.Allreduce(MPI.IN_PLACE, sketch.counts, op=MPI.SUM)`` on every rank, all with the
        same ``relative_accuracy``) merges in place. Layout: see ``ddsketch.h``.
        """
        return self._counts

    @property
    def relative_accuracy(self):
        """The relative accuracy ``alpha`` the sketch was made with."""
        return self.sk.alpha

    @property
    def count(self):
        """How many values were pushed (NaN included), as a float (exact below 2**53)."""
        return sf_sketch_count(&self.sk)

    @staticmethod
    def from_counts(counts, double relative_accuracy=0.01):
        """Return a sketch holding ``counts`` (copied), e.g. the result of an Allreduce.

        Raises:
            ValueError: ``len(counts)`` is not the slot count of ``relative_accuracy``.
        """
        cdef QuantileSketch out = QuantileSketch(relative_accuracy)
        arr = np.asarray(counts, dtype=np.float64).reshape(-1)
        if arr.shape[0] != out.sk.slots:
            raise ValueError(f"QuantileSketch.from_counts(): {arr.shape[0]} counts given but "
                             f"relative_accuracy={relative_accuracy!r} has {out.sk.slots}; "
                             f"pass the counts of a sketch with that accuracy")
        out._counts[:] = arr
        return out

    def __reduce__(self):
        return (QuantileSketch.from_counts, (self._counts.copy(), self.sk.alpha))

    def __repr__(self):
        return (f"QuantileSketch(relative_accuracy={self.sk.alpha!r}) with "
                f"{sf_sketch_count(&self.sk):.0f} values")
