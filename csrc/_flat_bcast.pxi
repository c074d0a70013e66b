# The engine's broadcasts (included by _flat.pyx): the binomial tree, and the two-rank
# broadcast that carries the layout agreement with the data. Functions over the engine's
# structs (the plan, the call's arrays, the message list), no FlatBuffer in sight.

cdef Py_ssize_t _bcast_buffers(const plan_t* p, const arrays_t* a, msgs_t* msgs) noexcept:
    # The buffers a broadcast moves, in order, into msgs.ptr/msgs.n (bytes): the packed
    # float32 and float64 buffers, then the arrays moved in place. Returns their number.
    cdef Py_ssize_t i, m = 0
    cdef const slot_t* s
    if p.n32:
        msgs.ptr[m] = p.p32
        msgs.n[m] = p.n32 * 4
        m += 1
    if p.n64:
        msgs.ptr[m] = p.p64
        msgs.n[m] = p.n64 * 8
        m += 1
    for i in range(a.count):
        s = &a.slots[i]
        if not s.packed and s.n:
            msgs.ptr[m] = s.ptr
            msgs.n[m] = s.nbytes
            m += 1
    return m


cdef int _tree_bcast(object comm, const msgs_t* msgs, Py_ssize_t m, int root, int rank,
                     int size) except -1:
    # Binomial-tree broadcast of m buffers (msgs.n in bytes): relative to the root, rank v
    # receives from v - 2**k (its lowest set bit) and then sends to v + 2**j for each lower j.
    # Every transfer moves all m buffers, one message each, posted at once: latencies overlap
    # and there is no copy.
    cdef int v = (rank - root + size) % size, mask = 1
    while mask < size:
        if v & mask:
            _transfer(comm, msgs, m, (rank - mask + size) % size, False)
            break
        mask <<= 1
    mask >>= 1
    while mask > 0:
        if v + mask < size:
            _transfer(comm, msgs, m, (rank + mask) % size, True)
        mask >>= 1
    return 0


cdef int _transfer(object comm, const msgs_t* msgs, Py_ssize_t m, int peer,
                   bint send) except -1:
    cdef Py_ssize_t j
    if send:
        reqs = [comm.Isend(_readable(msgs.ptr[j], msgs.n[j]), peer, _RING_TAG)
                for j in range(m)]
    else:
        reqs = [comm.Irecv(_writable(msgs.ptr[j], msgs.n[j]), peer, _RING_TAG)
                for j in range(m)]
    _MPI.Request.Waitall(reqs)
    return 0


cdef class _Scatter:
    # Datatypes describing a packed buffer's bytes as they lie in the arrays packed in it
    # (to send them from there, or to receive them into there), per dtype; built when the
    # arrays' addresses change, else reused. The addresses come from MPI.Get_address on the
    # arrays themselves.
    cdef object dt32
    cdef object dt64
    cdef char** ptrs            # the slot addresses they were built for
    cdef Py_ssize_t count       # -1: none built
    cdef Py_ssize_t cap

    def __cinit__(self):
        self.ptrs = NULL
        self.count = -1
        self.cap = 0

    def __dealloc__(self):
        try:  # (not at interpreter exit: MPI is finalized and mpi4py may be torn down)
            if _MPI is not None and not _MPI.Is_finalized():
                self.free()
        except Exception:
            pass
        PyMem_Free(self.ptrs)

    cdef void free(self):
        for dt in (self.dt32, self.dt64):
            if dt is not None:
                dt.Free()
        self.dt32 = self.dt64 = None
        self.count = -1

    cdef object spec(self, const arrays_t* a, object arrays, bint f64):
        # [MPI.BOTTOM, 1, datatype] of the packed float32 (or float64) buffer's arrays; None
        # if two of the arrays overlap (then the caller packs, or receives into the packed
        # buffer and copies out).
        cdef Py_ssize_t i
        cdef const slot_t* s = a.slots
        cdef bint same = self.count == a.count
        if same:
            for i in range(a.count):
                if s[i].packed and self.ptrs[i] != s[i].ptr:
                    same = False
                    break
        if not same:
            self.free()
            if a.count > self.cap:
                _grow(<void**>&self.ptrs, a.count * sizeof(char*))
                self.cap = a.count
            # (in slot order: the order of the packed buffer)
            spans = [(_MPI.Get_address(arrays[i]), s[i].nbytes, s[i].kind)
                     for i in range(a.count) if s[i].packed]
            ordered = sorted(spans)
            if all(ordered[i][0] + ordered[i][1] <= ordered[i + 1][0]
                   for i in range(len(ordered) - 1)):
                for kind in (DK_F32, DK_F64):
                    blocks = [b for b in spans if b[2] == kind]
                    if blocks:
                        dt = _MPI.BYTE.Create_hindexed([b[1] for b in blocks],
                                                       [b[0] for b in blocks]).Commit()
                        if kind == DK_F32:
                            self.dt32 = dt
                        else:
                            self.dt64 = dt
            for i in range(a.count):
                self.ptrs[i] = s[i].ptr
            self.count = a.count
        dt = self.dt64 if f64 else self.dt32
        return [_MPI.BOTTOM, 1, dt] if dt is not None else None


cdef bint _pair_bcast(object rc, const plan_t* p, const arrays_t* a, object arrays,
                      msgs_t* msgs, _Scatter sc, object flagbuf, list sizes, int root,
                      int rank, bint ok) except -1:
    # A broadcast between two ranks after an agreement (on ``rc``, the engine's communicator):
    # the root sends each agreed buffer (``sizes``: their bytes), or an empty message in its
    # place if its own layout changed; the other rank sends its flag back at the same time.
    # One message each way, where a separate agreement collective would cost a round trip
    # before the data. The root sends a packed buffer's bytes straight from its arrays
    # (gathered through a datatype: no copy, measured 1.43-1.54x against 1.65-1.79x a raw
    # Bcast with the copy, 10k floats), and a receiver whose layout holds receives straight into
    # its arrays (scattered through the same kind of datatype); one whose layout changed
    # receives into a throwaway buffer, and an empty message writes nothing: no array is
    # touched unless both ranks agree. Returns whether they did; if not, both go back to the
    # hash exchange.
    cdef Py_ssize_t j, m = len(sizes), total = 0
    cdef int peer = 1 - rank
    cdef list reqs = []
    cdef bint unpack = False
    cdef double[::1] fv = flagbuf
    cdef double* flag = &fv[0]
    if rank == root:
        if ok:
            m = _bcast_buffers(p, a, msgs)
        for j in range(m):
            buf = None
            if not ok:
                buf = _readable(<char*>flag, 0)  # empty: "my layout changed"
            elif msgs.ptr[j] == p.p32 or msgs.ptr[j] == p.p64:
                # a packed buffer's bytes, gathered by MPI from the arrays: no copy
                buf = sc.spec(a, arrays, msgs.ptr[j] == p.p64)
                if buf is None and not unpack:  # (arrays overlap: pack them after all)
                    unpack = True
                    with nogil:
                        _pack(a.slots, a.count, p.p32, p.p64)
            if buf is None:
                buf = _readable(msgs.ptr[j], msgs.n[j])
            reqs.append(rc.Isend(buf, peer, _RING_TAG))
        flag[0] = 1.0
        reqs.append(rc.Irecv(flagbuf, peer, _RING_TAG))
        _MPI.Request.Waitall(reqs)
        return ok and flag[0] == 0.0
    flag[0] = 0.0 if ok else 1.0
    reqs.append(rc.Isend(flagbuf, root, _RING_TAG))
    if ok:
        m = _bcast_buffers(p, a, msgs)
        for j in range(m):
            buf = None
            if msgs.ptr[j] == p.p32 or msgs.ptr[j] == p.p64:
                buf = sc.spec(a, arrays, msgs.ptr[j] == p.p64)
                unpack = unpack or buf is None
            if buf is None:
                buf = _writable(msgs.ptr[j], msgs.n[j])
            reqs.append(rc.Irecv(buf, root, _RING_TAG))
    else:
        sink = np.empty(sum(sizes), np.uint8)
        for j in range(m):
            reqs.append(rc.Irecv(sink[total:total + sizes[j]], root, _RING_TAG))
            total += sizes[j]
    statuses = [_MPI.Status() for _ in reqs]
    _MPI.Request.Waitall(reqs, statuses)
    for st in statuses[1:]:
        if st.Get_count(_MPI.BYTE) == 0:
            return False  # the root's layout changed: nothing was written
    if ok and unpack:
        with nogil:
            _unpack(a.slots, a.count, p.p32, p.p64, 1)
    return ok
