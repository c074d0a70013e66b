# The engine's recursive doubling (included by _flat.pyx): sums and means of small buffers on a
# power-of-two number of ranks.

cdef int _doubling(const call_t* c, char* ptr, Py_ssize_t n, int kind, scratch_t* scratch,
                   char** pending) except -1:
    # In step k each rank swaps its whole partial sum with rank ^ 2**k and adds the two. One
    # message round per step (MPI's Allreduce takes two at mid sizes: reduce-scatter, then
    # allgather). Partners add the same two values (a + b, b + a), so every rank ends with the
    # same bits. ``pending`` not NULL: the last addition is left to the caller (``pending[0]``
    # is then the other part), which writes the sums straight into the arrays while unpacking:
    # one pass over the data less.
    cdef Py_ssize_t nbytes = n * _itemsize(kind)
    cdef int mask = 1
    cdef char* received = _scratch_for(scratch, nbytes)
    comm = <object>c.dup
    mine = _readable(ptr, nbytes)
    theirs = _writable(received, nbytes)
    while mask < c.size:
        comm.Sendrecv(mine, c.rank ^ mask, _RING_TAG, theirs, c.rank ^ mask, _RING_TAG)
        if pending != NULL and mask * 2 >= c.size:
            pending[0] = received
            break
        with nogil:
            _add(kind, ptr, ptr, received, n, 1)
        mask <<= 1
    return 0
