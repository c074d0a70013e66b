# Included by _stats.pyx: the key table behind EpochLogger.store, its compiled store call, and
# Timer.

cdef extern from "Python.h":
    # CPython's declarations: METH_FASTCALL | METH_KEYWORDS functions are stored in
    # PyMethodDef.ml_meth cast to PyCFunction, as the C API documents; CPython casts it back to
    # the fastcall type before the call. The cast goes through void (*)(void), C's generic
    # function pointer (GCC's documented way for -Wcast-function-type; CPython's own
    # _PyCFunction_CAST does the same), never through a data pointer.
    ctypedef PyObject* (*PyCFunction)(PyObject*, PyObject*)
    ctypedef struct PyMethodDef:
        const char* ml_name
        PyCFunction ml_meth
        int ml_flags
        const char* ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyCFunction_NewEx(PyMethodDef* ml, object self, object module)

ctypedef void (*_any_function)() noexcept  # C's generic function pointer type


cdef class EpochStats:
    """The key -> accumulator table behind ``EpochLogger.store`` (no files, no MPI).

    Args:
        convert: ``convert(value)``, applied to each stored value that is neither a plain
            number nor a buffer the kernels read, before numpy's conversion (``EpochLogger``
            passes one that turns framework tensors into numpy arrays).
        name: the name that ``store``'s errors give the call (``"<name>.store()"``).
    """

    def __cinit__(self):
        self._accs = {}
        self._timers = {}
        memset(self._slots, 0, sizeof(self._slots))
        self._batch = NULL
        self._batch_len = self._batch_cap = 0

    def __init__(self, convert=None, str name not None="EpochStats"):
        self._convert = convert
        self._name = name

    def __dealloc__(self):
        cdef int i
        for i in range(64):
            Py_XDECREF(<PyObject*>self._slots[i].key)
        PyMem_Free(self._batch)

    @property
    def store(self):
        """store(**kwargs)
Save something into the epoch logger's current state.

Provide an arbitrary number of keyword arguments with numerical values (numbers, numpy arrays
of any shape, lists/tuples of numbers, TensorFlow/PyTorch tensors). Every element is added to
the key's running statistics at once: later changes to a stored array do not affect them.

Raises:
    TypeError: a value is not numeric; the message names the key. Nothing of that call is
        stored, and everything stored before stays."""
        # The attribute is this table's compiled store, a builtin function bound to the table
        # (made on each access, as a bound method is): it reads the keyword names and values
        # straight from the call, without a kwargs dict.
        return PyCFunction_NewEx(&_store_def, self, None)

    cdef Welford _get_or_create(self, object key):
        cdef PyObject* found = PyDict_GetItem(self._accs, key)  # borrowed, never raises
        cdef Welford w
        if found != NULL:
            return <Welford>found
        if not isinstance(key, str):
            raise TypeError(f"EpochStats.store(): keys must be str, got {key!r}")
        w = Welford()
        self._accs[key] = w
        return w

    cdef Welford _lookup(self, object key):
        # The key's accumulator, found by the identity of the key string (store's keyword
        # names are interned by the caller's code object) before the dict.
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

    cdef inline void _push_number(self, Welford w, double x) noexcept:
        acc_push(&w.acc, x)
        if w.sk.counts != NULL:
            sf_sketch_push(&w.sk, x)

    cdef int _store_general(self, tuple args, dict kwargs) except -1:
        # store()'s path for the calls the compiled one does not finish: convert every value
        # first, so that a bad one stores nothing.
        cdef Welford w
        if args:
            raise TypeError(f"{self._name}.store() takes keyword arguments only (key=value), "
                            f"got {len(args)} positional argument(s)")
        converted = {}
        for key, value in kwargs.items():
            try:
                if self._convert is not None and not _readable(value):
                    value = self._convert(value)
                converted[key] = _numeric(value)
            except TypeError as exc:
                raise TypeError(f"{self._name}.store(): key {key!r}: {exc}") from None
        for key, value in converted.items():
            w = self._lookup(key)
            _push_value(&w.acc, value, w.sketch())
        return 0

    def stats_accumulator(self, key):
        """Return the live accumulator of ``key``; KeyError listing the stored keys if none."""
        w = self._accs.get(key)
        if w is None:
            raise KeyError(
                f"EpochStats: key {key!r} was never stored; stored keys: "
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
        state = acc_state(&w.acc)
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

        A (k, STATE_SIZE) float64 array, one ``(count, mean, M2, min, max)`` row per call, in
        order.
        """
        out = np.empty((self._batch_len, STATE_SIZE), dtype=np.float64)
        cdef double[:, ::1] o = out
        cdef Py_ssize_t i
        for i in range(self._batch_len):
            acc_to_row(&self._batch[i], &o[i, 0])
        self._batch_len = 0
        return out

    def track_sketch(self, key, double relative_accuracy=0.01):
        """Count ``key``'s values stored from now on in a quantile sketch as well.

        See :meth:`Welford.track_quantiles`; the key is created if it was never stored.
        """
        if not isinstance(key, str):
            raise TypeError(f"EpochStats.track_sketch(): keys must be str, got {key!r}")
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
                raise TypeError(f"EpochStats.timer(): key must be str, got {key!r}")
            t = self._timers[key] = Timer(self, key)
        return t

    def timer_keys(self):
        """Keys given to :meth:`timer`, in first-use order."""
        return list(self._timers)


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
        if self._depth == 0:
            raise RuntimeError(f"timer(): {self._key!r} exited more often than entered")
        self._depth -= 1
        elapsed -= self._starts()[self._depth]
        self._table._push_number(self._table._lookup(self._key), elapsed)
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


cdef object _store_fastcall(object self, PyObject* const* args, Py_ssize_t nargs,
                            PyObject* kwnames):
    # EpochStats.store(**kwargs) as METH_FASTCALL | METH_KEYWORDS: args[nargs:nargs + n] are
    # the values of the n names in the kwnames tuple. Plain numbers (the common case) take one
    # cached lookup and one compiled update per key, buffers the kernels read one pass each,
    # without a kwargs dict; anything else goes to the table's general path with a dict.
    cdef Py_ssize_t i, n = 0
    cdef EpochStats table = <EpochStats>self
    cdef Welford w
    cdef double x
    cdef object value
    cdef int plain = 1  # 1: all plain numbers, 0: all readable, -1: the general path's
    if kwnames != NULL:
        n = PyTuple_GET_SIZE(<object>kwnames)
    if nargs != 0:
        plain = -1
    for i in range(n):
        if plain < 0:
            break
        value = <object>args[i]
        if not _is_plain_number(value):
            plain = 0 if _readable(value) else -1
    if plain == 1:
        for i in range(n):
            w = table._lookup(<object>PyTuple_GET_ITEM(<object>kwnames, i))
            x = PyFloat_AsDouble(<object>args[i])
            acc_push(&w.acc, x)
            if w.sk.counts != NULL:
                sf_sketch_push(&w.sk, x)
    elif plain == 0:
        for i in range(n):
            w = table._lookup(<object>PyTuple_GET_ITEM(<object>kwnames, i))
            _push_value(&w.acc, <object>args[i], w.sketch())
    else:
        kwargs = {<object>PyTuple_GET_ITEM(<object>kwnames, i): <object>args[nargs + i]
                  for i in range(n)}
        table._store_general(tuple([<object>args[i] for i in range(nargs)]), kwargs)
    return None


cdef PyMethodDef _store_def
_store_def.ml_name = "store"
_store_def.ml_meth = <PyCFunction><_any_function>_store_fastcall  # the documented cast
_store_def.ml_flags = METH_FASTCALL | METH_KEYWORDS
cdef bytes _STORE_DOC = EpochStats.store.__doc__.encode()  # kept alive by the module
_store_def.ml_doc = _STORE_DOC
