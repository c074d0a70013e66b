# Included by _stats.pyx: Python values -> kernels. Plain numbers go to Welford's update, buffers
# of a numeric kind to the array kernels in place, anything else through one numpy conversion.
# Errors name no caller: the caller puts its name (and the key) in front of the reason.

# numpy scalar types that convert exactly through __float__ (bool, ints, floats).
cdef frozenset _NUMPY_SCALARS = frozenset(
    t for t in set(np.sctypeDict.values())
    if issubclass(t, (np.bool_, np.integer, np.floating)) and t is not np.longdouble
)

cdef str _EXPECTED = ("expected a number, or an array, list/tuple or tensor of numbers "
                      "(bool, int, float)")

cdef inline bint _is_plain_number(object value):
    cdef type t = type(value)
    return t is float or t is int or t is bool or t in _NUMPY_SCALARS


cdef sf_kind _view_kind(const Py_buffer* v) noexcept:
    # Single numeric items in this host's byte order; SF_NONE sends the value through numpy.
    cdef char c = sf_format_code(v.format)
    cdef Py_ssize_t size = v.itemsize
    if c == 0:
        return SF_NONE
    if c == b"f" and size == 4:
        return SF_F32
    if c == b"d" and size == 8:
        return SF_F64
    if c in b"bhilq":
        return SF_I8 if size == 1 else SF_I16 if size == 2 else SF_I32 if size == 4 else \
            SF_I64 if size == 8 else SF_NONE
    if c in b"BHILQ?":
        return SF_U8 if size == 1 else SF_U16 if size == 2 else SF_U32 if size == 4 else \
            SF_U64 if size == 8 else SF_NONE
    return SF_NONE


cdef int _push_buffer(acc_t* a, object value, bint dry_run=False,
                      sf_sketch* sk=NULL) except -1:
    # 1: consumed (or, with dry_run, would be); 0: a buffer the kernels do not read.
    # With sk, the values are counted in that quantile sketch too.
    cdef Py_buffer view
    cdef sf_kind kind
    cdef Py_ssize_t n
    if isinstance(value, (bytes, bytearray, str)):
        return 0
    try:
        PyObject_GetBuffer(value, &view, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT)
    except (BufferError, ValueError, TypeError):
        return 0
    try:
        kind = _view_kind(&view)
        if kind == SF_NONE:
            return 0
        n = view.len // view.itemsize if view.itemsize > 0 else 0
        if dry_run or n == 0:
            pass
        elif n < NOGIL_MIN:
            _push_array(a, kind, view.buf, n)
            if sk != NULL:
                _sketch_array(sk, kind, view.buf, n)
        else:
            with nogil:
                _push_array(a, kind, view.buf, n)
                if sk != NULL:
                    _sketch_array(sk, kind, view.buf, n)
    finally:
        PyBuffer_Release(&view)
    return 1


cdef inline bint _readable(object value):
    # A value the compiled path takes as it is: a plain number, or a buffer the kernels read.
    return _is_plain_number(value) or (PyObject_CheckBuffer(value) and
                                       _push_buffer(NULL, value, True))


cdef object _numeric(object value):
    # value in a form the compiled path reads as it is: plain numbers (bool, int, float,
    # numpy's) and contiguous native-endian numeric buffers unchanged; anything numpy turns
    # into a real numeric array (lists, arrays of other layouts or dtypes, objects with
    # __array__) as a contiguous array: float16 and longdouble as float64, non-native byte
    # order swapped. TypeError otherwise, with the reason only: callers put their name first.
    cdef object arr
    if _readable(value):
        return value
    if isinstance(value, (str, bytes, bytearray, dict, set, frozenset)) or value is None:
        raise TypeError(f"got a value of type {type(value).__name__}; {_EXPECTED}")
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"cannot convert a value of type {type(value).__name__} to numbers "
                        f"({exc}); {_EXPECTED}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"got a value of type {type(value).__name__} with dtype {arr.dtype}; "
                        f"{_EXPECTED}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize != 4 and arr.dtype.itemsize != 8:
        arr = arr.astype(np.float64)  # float16 (half-precision tensors), longdouble
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


cdef int _push_value(acc_t* a, object value, sf_sketch* sk) except -1:
    # Every element of a value _numeric returned into the accumulator (and the sketch sk).
    cdef type t = type(value)
    cdef double x
    if t is float or t is int or t is bool or t in _NUMPY_SCALARS:
        x = PyFloat_AS_DOUBLE(value) if t is float else PyFloat_AsDouble(value)
        acc_push(a, x)
        if sk != NULL:
            sf_sketch_push(sk, x)
    elif not (PyObject_CheckBuffer(value) and _push_buffer(a, value, False, sk)):
        raise TypeError(f"unsupported buffer of type {t.__name__}; {_EXPECTED}")
    return 0


cdef int _push_any(acc_t* a, object value, sf_sketch* sk, str where) except -1:
    # Any value: read in place if the kernels can, else converted by numpy first.
    if not _is_plain_number(value):
        if PyObject_CheckBuffer(value) and _push_buffer(a, value, False, sk):
            return 0
        try:
            value = _numeric(value)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
    return _push_value(a, value, sk)
