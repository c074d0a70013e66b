# Included by _stats.pyx: the accumulator (acc_t, declared in _stats.pxd) and its kernels, its
# conversions to rows, tuples and summaries, class Welford, merge_states, summarize and the
# quantile-sketch functions.

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


cdef double acc_std(const acc_t* a) noexcept nogil:
    # The population standard deviation (ddof=0), as np.std: sqrt(M2 / count). NaN when
    # empty, or when M2 is NaN (non-finite values were pushed) or negative (a state given
    # from outside). Every std of the package comes from here.
    if a.n > 0.0 and a.m2 >= 0.0:
        return sqrt(a.m2 / a.n)
    return NAN


cdef void acc_to_row(const acc_t* a, double* row) noexcept nogil:
    # The state as a row of STATE_SIZE float64 (what pop_batch and merge_states exchange).
    row[STATE_COUNT] = a.n
    row[STATE_MEAN] = a.mean
    row[STATE_M2] = a.m2
    row[STATE_MIN] = a.lo
    row[STATE_MAX] = a.hi


cdef void acc_from_row(acc_t* a, const double* row) noexcept nogil:
    a.n = row[STATE_COUNT]
    a.mean = row[STATE_MEAN]
    a.m2 = row[STATE_M2]
    a.lo = row[STATE_MIN]
    a.hi = row[STATE_MAX]


cdef inline tuple acc_state(const acc_t* a):
    # The state as Python sees it: a tuple of STATE_SIZE floats, in the order of STATE_*.
    return (a.n, a.mean, a.m2, a.lo, a.hi)


cdef int acc_from_state(acc_t* a, object state, str where) except -1:
    # Read a state given from Python (a sequence of STATE_SIZE numbers) into a.
    if len(state) != STATE_SIZE:
        raise ValueError(f"{where}: a state is {STATE_SIZE} numbers (count, mean, M2, min, "
                         f"max), got {len(state)}: {state!r}")
    a.n = state[STATE_COUNT]
    a.mean = state[STATE_MEAN]
    a.m2 = state[STATE_M2]
    a.lo = state[STATE_MIN]
    a.hi = state[STATE_MAX]
    return 0


cdef inline tuple acc_summary(const acc_t* a):
    # (mean, std, max, min), in the order of SUMMARY_*; NaNs when empty.
    if a.n > 0.0:
        return (a.mean, acc_std(a), a.hi, a.lo)
    return (NAN, NAN, NAN, NAN)


cdef void _push_each(acc_t* a, const sf_kernels* k, const void* x, Py_ssize_t n) noexcept nogil:
    # Welford's update value by value, through float64 blocks.
    cdef double buf[BLOCK]
    cdef Py_ssize_t start = 0, m, i
    while start < n:
        m = min(<Py_ssize_t>BLOCK, n - start)
        k.to_f64(sf_element(k, x, start), m, buf)
        for i in range(m):
            acc_push(a, buf[i])
        start += m


cdef void _push_array(acc_t* a, sf_kind kind, const void* x, Py_ssize_t n) noexcept nogil:
    # All blocks are summarised relative to one shift K (the running mean, or the first value),
    # so that x - K is small and exact for data far from zero and the block means combine
    # without rounding; the running mean is rounded once per call. Non-finite data leaves the
    # fast path for the scalar update, which follows numpy's semantics.
    cdef const sf_kernels* k = sf_kernels_of(kind)
    cdef double K, s, q, ybar, bn = 0.0, bmean = 0.0, bm2 = 0.0, delta, nn
    cdef double lo = INFINITY, hi = -INFINITY, blo, bhi
    cdef Py_ssize_t start = 0, m
    cdef const void* block
    if n <= 0:
        return
    k.to_f64(x, 1, &K)
    if a.n > 0.0:
        K = a.mean
    if not isfinite(K):
        _push_each(a, k, x, n)
        return
    while start < n:
        m = min(<Py_ssize_t>BLOCK, n - start)
        block = sf_element(k, x, start)
        s = k.sum(block, m, K)
        if not isfinite(s):
            break
        ybar = s / m
        q = k.sqdev(block, m, K, ybar)
        k.minmax(block, m, &blo, &bhi)
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
        _push_each(a, k, sf_element(k, x, start), n - start)


cdef void _sketch_array(sf_sketch* sk, sf_kind kind, const void* x, Py_ssize_t n) noexcept nogil:
    # Count n values of a kind in a quantile sketch: float32 by the sketch's own kernel, the
    # other kinds as float64 blocks (exact but for int64/uint64 beyond 2^53, which round as
    # numpy's float64 conversion does).
    cdef const sf_kernels* k = sf_kernels_of(kind)
    cdef double buf[BLOCK]
    cdef Py_ssize_t start = 0, m
    if kind == SF_F32:
        sf_sketch_push_f32(sk, <const float*>x, n)
    elif kind == SF_F64:
        sf_sketch_push_f64(sk, <const double*>x, n)
    else:
        while start < n:
            m = min(<Py_ssize_t>BLOCK, n - start)
            k.to_f64(sf_element(k, x, start), m, buf)
            sf_sketch_push_f64(sk, buf, m)
            start += m


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
        _push_any(&self.acc, value, self.sketch(), "Welford.push()")

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
        """The state as a tuple of five float64: ``(count, mean, M2, min, max)``.

        Index it with :data:`STATE_COUNT`, :data:`STATE_MEAN`, :data:`STATE_M2`,
        :data:`STATE_MIN` and :data:`STATE_MAX`.
        """
        return acc_state(&self.acc)

    @state.setter
    def state(self, value):
        cdef acc_t a
        acc_from_state(&a, value, "Welford.state")
        if not a.n >= 0.0:
            raise ValueError(f"Welford.state: count must be >= 0, got {a.n!r}")
        if a.n == 0.0:
            acc_reset(&self.acc)
        else:
            self.acc = a

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
        return acc_std(&self.acc)

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
    """Merge states gathered from ranks: (r, k, STATE_SIZE) float64 → (k, STATE_SIZE).

    Rank 0's states first: every rank merging the same gathered array gets bit-identical
    results.
    """
    cdef Py_ssize_t r, k, nr = gathered.shape[0], nk = gathered.shape[1]
    if gathered.shape[2] != STATE_SIZE:
        raise ValueError(f"merge_states(): expected shape (ranks, keys, {STATE_SIZE}), got "
                         f"{tuple(gathered.shape)!r}")
    out = np.empty((nk, STATE_SIZE), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef acc_t acc, b
    with nogil:
        for k in range(nk):
            acc_reset(&acc)
            for r in range(nr):
                acc_from_row(&b, &gathered[r, k, 0])
                acc_merge(&acc, &b)
            acc_to_row(&acc, &o[k, 0])
    return out


def summarize(state):
    """Return ``(mean, std, max, min)`` of a state ``(count, mean, M2, min, max)``.

    Index the result with :data:`SUMMARY_MEAN`, :data:`SUMMARY_STD`, :data:`SUMMARY_MAX` and
    :data:`SUMMARY_MIN` (the order of Spinning Up's columns). NaNs if the state is empty; std
    is the population std (ddof=0), as ``np.std`` and :attr:`Welford.std`.

    Raises:
        ValueError: ``state`` is not a sequence of STATE_SIZE numbers.
    """
    cdef acc_t a
    acc_from_state(&a, state, "summarize()")
    return acc_summary(&a)


cdef acc_t _empty
acc_reset(&_empty)
EMPTY_STATE = acc_state(&_empty)  # the state of an empty accumulator: Welford().state


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
