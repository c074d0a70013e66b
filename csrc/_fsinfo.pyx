# cython: language_level=3, embedsignature=True
"""File facts the writers check at every row, without building Python objects (private).

``os.fstat`` builds a 19-field ``stat_result`` (times as floats and integers) for the one
number the writers' vanished-folder check needs; here the same system call costs about half.
"""

from posix.stat cimport fstat, struct_stat

from cpython.exc cimport PyErr_SetFromErrno


def link_count(int fd):
    """Return the number of links of the open file ``fd`` (0 once it was unlinked).

    Raises:
        OSError: ``fd`` is not an open file descriptor (as ``os.fstat``).
    """
    cdef struct_stat st
    if fstat(fd, &st) != 0:
        PyErr_SetFromErrno(OSError)
        return None
    return st.st_nlink
