# The engine's ring (included by _flat.pyx): sums and means of large buffers.

cdef int _RING_TAG = 7  # tag of every engine message (on the engine's own communicator)


cdef int _ring(object comm, const msgs_t* msgs, Py_ssize_t m, int kind, int rank, int size,
               int divide_by, scratch_t* scratch) except -1:
    # Ring reduce-scatter, then ring allgather, over the m buffers seen as one virtual
    # concatenation, cut into ``size`` chunks. In step s of the reduce-scatter a rank sends
    # chunk rank-s to its right neighbour and adds the chunk rank-s-1 received from its left one
    # into its own buffers; after size-1 steps it holds chunk rank+1 fully reduced (divided in
    # the last addition), and the allgather passes the finished chunks around the ring. A chunk
    # spanning several buffers moves as one message per piece, all posted at once; each element
    # is reduced on one rank only, so every rank ends with the same bits. This rank's input is
    # read from msgs.src (the buffers themselves, or separate sources): step 0 sends it, and
    # every addition takes it; later steps send the partial sums, which live in msgs.ptr.
    cdef Py_ssize_t isz = _itemsize(kind)
    cdef Py_ssize_t total = 0, j, ra, rb
    cdef int right = (rank + 1) % size, left = (rank + size - 1) % size
    cdef int step, cs, cr, last
    cdef char* received
    for j in range(m):
        total += msgs.n[j]
    received = _scratch_for(scratch, (total // size + 1) * isz)
    for step in range(size - 1):
        cs = (rank - step + 2 * size) % size
        cr = (rank - step - 1 + 2 * size) % size
        _exchange(comm, msgs, m, step == 0, isz, total, size, cs, right, cr, left, received)
        last = divide_by if step == size - 2 else 1
        ra = _chunk_start(total, cr, size)
        rb = _chunk_start(total, cr + 1, size)
        with nogil:
            _add_chunk(msgs, m, kind, isz, ra, rb, received, last)
    for step in range(size - 1):
        cs = (rank + 1 - step + 2 * size) % size
        cr = (rank - step + 2 * size) % size
        _exchange(comm, msgs, m, False, isz, total, size, cs, right, cr, left, NULL)
    return 0


cdef int _exchange(object comm, const msgs_t* msgs, Py_ssize_t m, bint from_src,
                   Py_ssize_t isz, Py_ssize_t total, int size, int cs, int right, int cr,
                   int left, char* into) except -1:
    # Send the pieces of chunk cs (read from msgs.src if from_src, else msgs.ptr) to ``right``
    # while receiving those of chunk cr from ``left``: into ``into``, packed from its start, or
    # into the buffers themselves (NULL). Both sides cut a chunk identically, so the k-th piece
    # sent matches the k-th received.
    cdef Py_ssize_t j, vs = 0, lo, hi
    cdef Py_ssize_t ca = _chunk_start(total, cs, size), cb = _chunk_start(total, cs + 1, size)
    cdef Py_ssize_t ra = _chunk_start(total, cr, size), rb = _chunk_start(total, cr + 1, size)
    cdef list sends = [], recvs = []
    cdef char* dst
    cdef const char* origin
    for j in range(m):
        lo = ra if ra > vs else vs
        hi = rb if rb < vs + msgs.n[j] else vs + msgs.n[j]
        if hi > lo:
            dst = into + (lo - ra) * isz if into != NULL else msgs.ptr[j] + (lo - vs) * isz
            recvs.append(_writable(dst, (hi - lo) * isz))
        lo = ca if ca > vs else vs
        hi = cb if cb < vs + msgs.n[j] else vs + msgs.n[j]
        if hi > lo:
            origin = msgs.src[j] if from_src else msgs.ptr[j]
            sends.append(_readable(origin + (lo - vs) * isz, (hi - lo) * isz))
        vs += msgs.n[j]
    if len(sends) == 1 and len(recvs) == 1:
        comm.Sendrecv(sends[0], right, _RING_TAG, recvs[0], left, _RING_TAG)
    else:
        reqs = [comm.Irecv(b, left, _RING_TAG) for b in recvs]
        reqs += [comm.Isend(b, right, _RING_TAG) for b in sends]
        _MPI.Request.Waitall(reqs)
    return 0
