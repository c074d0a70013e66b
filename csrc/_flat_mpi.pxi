# MPI through mpi4py (included by _flat.pyx), imported on the first collective (a
# communicator exists by then); the engine's private communicators; its scratch buffer.

cdef object _MPI = None
cdef tuple _MPI_OPS = None


cdef object _mpi():
    global _MPI, _MPI_OPS
    if _MPI is None:
        from mpi4py import MPI
        _MPI_OPS = (MPI.SUM, MPI.SUM, MPI.MIN, MPI.MAX, MPI.PROD, MPI.MAX)
        _MPI = MPI
    return _MPI


# The engine's point-to-point messages travel on a duplicate of the caller's communicator, so
# they can never match a receive of the program's own (a collective's context is private
# likewise). One duplicate per communicator, made collectively by the first call on it (every
# rank makes the same calls, so every rank makes it in the same call), together with whether
# all its ranks share memory: ``Split_type(COMM_TYPE_SHARED)`` gives each rank the ranks of its
# node, and either every rank's node holds all ranks or none does, so all ranks agree without
# a further message. (Under MPICH's MPIR_CVAR_NOLOCAL=1 every rank is its own node.) A handle
# that MPI reused for another communicator (after a Comm.Free) is caught by comparing the
# groups (0.1 us).
cdef dict _LINKS = {}


cdef tuple _link(object comm):
    # (duplicate communicator, whether all ranks share memory) of ``comm``.
    key = comm.py2f()
    link = _LINKS.get(key)
    if link is None or _MPI.Comm.Compare(comm, link[0]) != _MPI.CONGRUENT:
        local = comm.Split_type(_MPI.COMM_TYPE_SHARED)
        shared = local.Get_size() == comm.Get_size()
        local.Free()
        link = _LINKS[key] = (comm.Dup(), shared)
    return link


cdef struct scratch_t:
    # The receive buffer of the ring and of recursive doubling (grown, never shrunk).
    char* p
    Py_ssize_t n


cdef char* _scratch_for(scratch_t* s, Py_ssize_t nbytes) except NULL:
    cdef void* p
    if s.p == NULL or s.n < nbytes:
        nbytes = max(nbytes, 64)
        p = PyMem_RawRealloc(s.p, nbytes)
        if p == NULL:
            raise MemoryError(f"FlatBuffer: no memory for a {nbytes}-byte receive buffer")
        s.p = <char*>p
        s.n = nbytes
    return s.p


cdef inline object _readable(const char* p, Py_ssize_t nbytes):
    return PyMemoryView_FromMemory(<char*>p, nbytes, PyBUF_READ)


cdef inline object _writable(char* p, Py_ssize_t nbytes):
    return PyMemoryView_FromMemory(p, nbytes, PyBUF_WRITE)
