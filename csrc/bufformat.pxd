# The one buffer-format parser of the compiled modules (cimported by _flat, _compress, _stats),
# after mpi4py's asbuffer.pxi: a Py_buffer's format string -> the struct-module type code of
# ONE item in this host's byte order, or 0 for anything else (several items, a struct, the
# other byte order). A NULL format is plain bytes ('B'). Byte-order prefixes (PEP 3118):
# '@' (native, native alignment), '=' (native, standard sizes) and '|' (numpy: order does not
# apply) are this host's; '<' is this host's on a little-endian host only, '>' and '!' on a
# big-endian one only. The caller checks the itemsize against the code it takes.

cdef extern from *:
    """
    static int sf_host_is_little(void) { const unsigned short one = 1;
                                         return *(const unsigned char *)&one; }
    """
    int sf_host_is_little() noexcept nogil


cdef inline char sf_format_code(const char* fmt) noexcept nogil:
    cdef char c
    if fmt == NULL:
        return b"B"
    c = fmt[0]
    if c == b"@" or c == b"=" or c == b"|":
        fmt += 1
    elif c == b"<" or c == b">" or c == b"!":
        if (c == b"<") != (sf_host_is_little() != 0):
            return 0  # the other byte order
        fmt += 1
    if fmt[0] == 0 or fmt[1] != 0:
        return 0
    return fmt[0]
