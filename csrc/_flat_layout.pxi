# Layout agreement (included by _flat.pyx): the 64-bit layout hash, the flag values that
# carry "my layout changed" through a reduction, and the error every rank raises when the
# layouts differ. Also checksum(), the hash of array contents.

cdef uint64_t _layout_hash(const arrays_t* a, int code, int root, Py_ssize_t fusion_threshold,
                           int algo, bint shared) noexcept:
    # Everything that must agree across ranks: call, root, plan parameters, and every
    # array's dtype, shape and memory order. Never 0, never >= 2**62 (see _BAD_INPUT).
    cdef uint64_t h = SF_HASH_SEED
    cdef Py_ssize_t i, d
    cdef const Py_buffer* v
    h = sf_fnv(h, code)
    h = sf_fnv(h, root)
    h = sf_fnv(h, fusion_threshold)
    h = sf_fnv(h, algo)
    h = sf_fnv(h, shared)
    h = sf_fnv(h, a.count)
    for i in range(a.count):
        v = &a.views[i]
        h = sf_fnv(h, a.slots[i].kind)
        h = sf_fnv(h, v.ndim)
        for d in range(v.ndim):
            h = sf_fnv(h, v.shape[d])
        h = sf_fnv(h, v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C"))
    h &= ((<uint64_t>1) << 62) - 1
    return h if h != 0 else 1


cdef uint64_t _fold_paths(uint64_t h, const paths_t* p, const layout_t* layout) noexcept:
    # The layout hash with the paths the plan chose folded in: ranks whose decision tables
    # differ (two builds, two crossovers) disagree here, before any path is taken, and raise
    # instead of waiting in different collectives.
    cdef Py_ssize_t i
    cdef const arrays_t* a = &layout.arr
    h = sf_fnv(h, p.bcast if layout.plan.code == OP_BCAST else p.f32)
    h = sf_fnv(h, p.f64)
    for i in range(a.count):
        if not a.slots[i].packed and a.slots[i].n:
            h = sf_fnv(h, a.slots[i].path)
    h &= ((<uint64_t>1) << 62) - 1
    return h if h != 0 else 1


cdef inline double _flag_ok(int code) noexcept nogil:
    # Neutral flag value of a reduction (changed ranks send _flag_set); broadcasts reduce
    # their flag with MAX.
    return 1.0 if code == OP_PROD else 0.0


cdef inline double _flag_set(int code) noexcept nogil:
    if code == OP_PROD:
        return 2.0
    if code == OP_MIN:
        return -1.0
    return 1.0


cdef inline void _write_flag(const part_t* f, double value) noexcept nogil:
    # Element 0 of the flag's buffer.
    if f.kind == DK_F32:
        (<float*>f.ptr)[0] = <float>value
    else:
        (<double*>f.ptr)[0] = value


cdef list _describe_layout(const arrays_t* a):
    # [(dtype name, shape, 'C' or 'F')] of every array of the call, for the error message.
    cdef Py_ssize_t i, d
    cdef const Py_buffer* v
    layout = []
    for i in range(a.count):
        v = &a.views[i]
        shape = tuple([v.shape[d] for d in range(v.ndim)])
        order = "F" if v.ndim > 1 and not PyBuffer_IsContiguous(v, b"C") else "C"
        layout.append((_KIND_NAMES[a.slots[i].kind], shape, order))
    return layout


cdef str _fmt_array(tuple a):
    return f"{a[0]} {a[1]!r}" + (" Fortran-order" if a[2] == "F" else "")


cdef str _describe_difference(str where, list everyone):
    # The first difference between the ranks' ("layout", call, op, root, fusion_threshold,
    # algorithm, arrays, shared, paths) descriptions, as the message every rank raises.
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
    for r, desc in enumerate(everyone):
        if desc[7] != first[7]:
            return (f"{where}: the ranks disagree on whether they share memory (a communicator "
                    f"that spans nodes on some ranks only?); make the call on the same "
                    f"communicator on every rank")
    for r, desc in enumerate(everyone):
        if desc[8] != first[8]:
            return (f"{where}: the chosen paths differ between ranks: rank 0 takes "
                    f"{first[8]!r}, rank {r} takes {desc[8]!r} (builds whose decision tables "
                    f"differ?); run the same spinfast build on every rank, or pass "
                    f"FlatBuffer(algorithm='mpi')")
    return f"{where}: the layouts differ between ranks; {fix}"


cdef int _raise_mismatch(object comm, object err, object mine, str where) except -1:
    # Error path, taken by every rank together: gather what each rank passed (``mine``, or
    # its own error) and raise the same ValueError everywhere (a rank with invalid input
    # raises its own error).
    everyone = comm.allgather(("error", err[1]) if err is not None else mine)
    if err is not None:
        raise err[0](f"{where}: {err[1]}")
    for r, desc in enumerate(everyone):
        if desc[0] == "error":
            raise ValueError(f"{where}: rank {r} passed invalid input: {desc[1]}")
    raise ValueError(_describe_difference(where, everyone))


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
