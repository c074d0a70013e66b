# The engine's recursive doubling (included by _flat.pyx): sums and means of small buffers on a
# power-of-two number of ranks.

cdef int _doubling(object comm, char* ptr, Py_ssize_t n, int kind, int rank, int size,
                   bint defer, scratch_t* scratch, char** pending) except -1:
    # In step k each rank swaps its whole partial sum with rank ^ 2**k and adds the two. One
    # message round per step (MPI's Allreduce takes two at mid sizes: reduce-scatter, then
    # allgather). Partners add the same two values (a + b, b + a), so every rank ends with the
    # same bits. ``defer``: the last addition is left to the caller (``pending[0]`` is then the
    # other part), which writes the sums straight into the arrays while unpacking: one pass
    # over the data less.
    cdef Py_ssize_t nbytes = n * _itemsize(kind)
    cdef int mask = 1
    cdef char* received = _scratch_for(scratch, nbytes)
    mine = _readable(ptr, nbytes)
    theirs = _writable(received, nbytes)
    while mask < size:
        comm.Sendrecv(mine, rank ^ mask, _RING_TAG, theirs, rank ^ mask, _RING_TAG)
        if defer and mask * 2 >= size:
            pending[0] = received
            break
        with nogil:
            _add(kind, ptr, ptr, received, n, 1)
        mask <<= 1
    return 0
