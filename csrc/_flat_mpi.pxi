# MPI through mpi4py (included by _flat.pyx), imported on the first collective (a
# communicator exists by then); the engine's private communicators; its scratch buffer.

cdef object _MPI = None
cdef tuple _MPI_OPS = None      # by opcode_t (a broadcast's flag is reduced with MAX)
cdef tuple _MPI_TYPES = None    # by dkind_t


cdef object _mpi():
    global _MPI, _MPI_OPS, _MPI_TYPES, _LINK_KEY
    if _MPI is None:
        from mpi4py import MPI
        _MPI_OPS = (MPI.SUM, MPI.SUM, MPI.MIN, MPI.MAX, MPI.PROD, MPI.MAX)
        _MPI_TYPES = (MPI.BYTE, MPI.FLOAT, MPI.DOUBLE)
        _LINK_KEY = MPI.Comm.Create_keyval(copy_fn=None, delete_fn=_unlink)
        _MPI = MPI
    return _MPI


# The engine's point-to-point messages travel on a duplicate of the caller's communicator, so
# they can never match a receive of the program's own (a collective's context is private
# likewise). The duplicate is made collectively by the first call on a communicator (every
# rank makes the same calls, so every rank makes it in the same call), together with whether
# all its ranks share memory: ``Split_type(COMM_TYPE_SHARED)`` gives each rank the ranks of its
# node, and either every rank's node holds all ranks or none does, so all ranks agree without
# a further message. (Under MPICH's MPIR_CVAR_NOLOCAL=1 every rank is its own node.)
# The link (duplicate, shared) is cached on the communicator as an MPI attribute: freeing the
# communicator runs _unlink, which frees the duplicate; a Dup of it gets its own (no copy_fn).
# COMM_WORLD/COMM_SELF keep theirs until MPI_Finalize, which deletes their attributes first;
# at interpreter exit mpi4py finalizes after Python has stopped and skips the callback (MPI
# frees everything then).
cdef object _LINK_KEY = None


def _unlink(comm, keyval, link):
    # Delete callback of _LINK_KEY: free the duplicate (unless something freed it already).
    if link[0]:
        link[0].Free()


cdef tuple _link(object comm):
    # (duplicate communicator, whether all ranks share memory) of ``comm``.
    link = comm.Get_attr(_LINK_KEY)
    if link is None:
        local = comm.Split_type(_MPI.COMM_TYPE_SHARED)
        shared = local.Get_size() == comm.Get_size()
        local.Free()
        link = (comm.Dup(), shared)
        comm.Set_attr(_LINK_KEY, link)
    return link


def engine_comm(comm):
    """The engine's duplicate of ``comm``, for messages apart from the program's own (made
    collectively by the first use on ``comm``, cached on it, freed with it)."""
    _mpi()
    return _link(comm)[0]


cdef struct scratch_t:
    # The receive buffer of the ring and of recursive doubling (grown, never shrunk), and the
    # message list of one ring or tree.
    char* p
    Py_ssize_t n
    msgs_t msgs


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
