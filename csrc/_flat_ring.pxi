# The engine's ring (included by _flat.pyx): sums and means of large buffers.

cdef int _RING_TAG = 7  # tag of every engine message (on the engine's own communicator)


cdef struct ring_t:
    # The m buffers of one ring seen as one virtual concatenation of ``total`` elements.
    const msgs_t* msgs
    Py_ssize_t m
    int kind
    Py_ssize_t isz        # bytes per element
    Py_ssize_t total


cdef int _ring(const call_t* c, const msgs_t* msgs, Py_ssize_t m, int kind, int divide_by,
               scratch_t* scratch) except -1:
    # Ring reduce-scatter, then ring allgather, over the m buffers seen as one virtual
    # concatenation, cut into ``size`` chunks. In step s of the reduce-scatter a rank sends
    # chunk rank-s to its right neighbour and adds the chunk rank-s-1 received from its left one
    # into its own buffers; after size-1 steps it holds chunk rank+1 fully reduced (divided in
    # the last addition), and the allgather passes the finished chunks around the ring. A chunk
    # spanning several buffers moves as one message per piece, all posted at once; each element
    # is reduced on one rank only, so every rank ends with the same bits. This rank's input is
    # read from msgs.src (the buffers themselves, or separate sources): step 0 sends it, and
    # every addition takes it; later steps send the partial sums, which live in msgs.ptr.
    cdef ring_t r
    cdef Py_ssize_t j
    cdef int step, size = c.size, rank = c.rank
    cdef char* received
    r.msgs, r.m, r.kind, r.isz, r.total = msgs, m, kind, _itemsize(kind), 0
    for j in range(m):
        r.total += msgs.n[j]
    received = _scratch_for(scratch, (r.total // size + 1) * r.isz)
    for step in range(size - 1):
        _swap_chunks(c, &r, (rank - step + 2 * size) % size, step == 0, received)
        with nogil:
            _add_chunk(&r, (rank - step - 1 + 2 * size) % size, size, received,
                       divide_by if step == size - 2 else 1)
    for step in range(size - 1):
        _swap_chunks(c, &r, (rank + 1 - step + 2 * size) % size, False, NULL)
    return 0


cdef int _swap_chunks(const call_t* c, const ring_t* r, int cs, bint from_src,
                      char* into) except -1:
    # Send the pieces of chunk cs (read from msgs.src if from_src, else msgs.ptr) to the right
    # neighbour while receiving those of chunk cs - 1 from the left one: into ``into``, packed
    # from its start, or into the buffers themselves (NULL). Both sides cut a chunk
    # identically, so the k-th piece sent matches the k-th received.
    cdef Py_ssize_t j, vs = 0, lo, hi, isz = r.isz
    cdef int size = c.size, cr = (cs - 1 + size) % size
    cdef Py_ssize_t ca = _chunk_start(r.total, cs, size), cb = _chunk_start(r.total, cs + 1, size)
    cdef Py_ssize_t ra = _chunk_start(r.total, cr, size), rb = _chunk_start(r.total, cr + 1, size)
    cdef int right = (c.rank + 1) % size, left = (c.rank + size - 1) % size
    cdef list sends = [], recvs = []
    cdef const msgs_t* msgs = r.msgs
    cdef char* dst
    cdef const char* origin
    for j in range(r.m):
        lo, hi = max(ra, vs), min(rb, vs + msgs.n[j])
        if hi > lo:
            dst = into + (lo - ra) * isz if into != NULL else msgs.ptr[j] + (lo - vs) * isz
            recvs.append(_writable(dst, (hi - lo) * isz))
        lo, hi = max(ca, vs), min(cb, vs + msgs.n[j])
        if hi > lo:
            origin = msgs.src[j] if from_src else msgs.ptr[j]
            sends.append(_readable(origin + (lo - vs) * isz, (hi - lo) * isz))
        vs += msgs.n[j]
    comm = <object>c.dup
    if len(sends) == 1 and len(recvs) == 1:
        comm.Sendrecv(sends[0], right, _RING_TAG, recvs[0], left, _RING_TAG)
    else:
        reqs = [comm.Irecv(b, left, _RING_TAG) for b in recvs]
        reqs += [comm.Isend(b, right, _RING_TAG) for b in sends]
        _MPI.Request.Waitall(reqs)
    return 0


cdef void _add_chunk(const ring_t* r, int chunk, int size, const char* received,
                     int divide_by) noexcept nogil:
    # The arrays' elements of chunk ``chunk`` of the virtual concatenation become this rank's
    # input (msgs.src) plus the received partial sum (packed from the start of ``received``),
    # divided by divide_by (1: none).
    cdef Py_ssize_t j, vs = 0, lo, hi, isz = r.isz
    cdef Py_ssize_t ra = _chunk_start(r.total, chunk, size)
    cdef Py_ssize_t rb = _chunk_start(r.total, chunk + 1, size)
    for j in range(r.m):
        lo, hi = max(ra, vs), min(rb, vs + r.msgs.n[j])
        if hi > lo:
            _add(r.kind, r.msgs.ptr[j] + (lo - vs) * isz, r.msgs.src[j] + (lo - vs) * isz,
                 received + (lo - ra) * isz, hi - lo, divide_by)
        vs += r.msgs.n[j]


cdef inline Py_ssize_t _chunk_start(Py_ssize_t n, int chunk, int size) noexcept nogil:
    # First element of chunk ``chunk`` when n elements are cut into ``size`` chunks.
    return n * chunk // size
