# Packing and unpacking (included by _flat.pyx): the arrays of a call as slots, the copies
# into and out of the packed buffers, and the kernels that add and divide on the way.

cdef struct slot_t:
    char* ptr             # data of this call (the result)
    const char* src       # where its input is read: ptr, or the matching item of sources
    Py_ssize_t n          # elements
    Py_ssize_t nbytes
    int kind              # dkind_t
    bint packed           # goes through the packed buffer of its dtype
    Py_ssize_t offset     # byte offset in that buffer
    int path              # path_t of an array moved in place (reductions)
    Py_ssize_t plan_n     # n and kind the current plan was made for
    int plan_kind


cdef struct arrays_t:
    # The buffers of the current call (held from acquiring to the end of the call).
    slot_t* slots
    Py_buffer* views      # of the arrays
    Py_buffer* src_views  # of ``sources``
    Py_ssize_t cap        # slots allocated
    Py_ssize_t count      # arrays in this call
    Py_ssize_t nacq       # views held
    Py_ssize_t nsrc       # source views held


cdef struct msgs_t:
    # The buffers of one ring or tree: where each lies, where a ring reads its input, and its
    # length (elements for a ring, bytes for a tree).
    char** ptr
    char** src
    Py_ssize_t* n


cdef extern from "_flat.h" nogil:
    void sff_scale_f32(float* x, Py_ssize_t n, int size)
    void sff_scale_f64(double* x, Py_ssize_t n, int size)
    void sff_copy_scale_f32(float* dst, const float* src, Py_ssize_t n, int size)
    void sff_copy_scale_f64(double* dst, const double* src, Py_ssize_t n, int size)
    void sff_add_f32(float* dst, const float* a, const float* b, Py_ssize_t n, int size)
    void sff_add_f64(double* dst, const double* a, const double* b, Py_ssize_t n, int size)
    uint64_t sff_hash(uint64_t h, const unsigned char* p, size_t nbytes)


cdef inline Py_ssize_t _itemsize(int kind) noexcept nogil:
    # Bytes of one element of ``kind`` as it travels (the ring's and doubling's messages).
    return 4 if kind == DK_F32 else 8


cdef inline void _scale(int kind, char* x, Py_ssize_t n, int size) noexcept nogil:
    # The mean of a SUM, as numpy's x / size in the array's dtype.
    if kind == DK_F32:
        sff_scale_f32(<float*>x, n, size)
    else:
        sff_scale_f64(<double*>x, n, size)


cdef inline void _add(int kind, char* dst, const char* a, const char* b, Py_ssize_t n,
                      int divide_by) noexcept nogil:
    # dst = (a + b) / divide_by (1: no division), elementwise in the dtype.
    if kind == DK_F32:
        sff_add_f32(<float*>dst, <const float*>a, <const float*>b, n, divide_by)
    else:
        sff_add_f64(<double*>dst, <const double*>a, <const double*>b, n, divide_by)


cdef int _buffer_kind(const Py_buffer* v) noexcept:
    # DK_F32 / DK_F64 for a float32 / float64 buffer in this host's byte order, else DK_NONE.
    cdef char c = sf_format_code(v.format)
    if c == b"f" and v.itemsize == 4:
        return DK_F32
    if c == b"d" and v.itemsize == 8:
        return DK_F64
    return DK_NONE


cdef void _pack(const slot_t* s, Py_ssize_t count, char* b32, char* b64) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if s[i].packed:
            memcpy((b32 if s[i].kind == DK_F32 else b64) + s[i].offset, s[i].src, s[i].nbytes)


cdef void _unpack_sum(const slot_t* s, Py_ssize_t count, const char* b32, const char* b64,
                      const char* other, int divide_by) noexcept nogil:
    # The last step of a reduction fused with the unpacking, for a plan with one packed buffer
    # (b32 or b64) and nothing else: each array gets (own + other partial sum) / divide_by,
    # ``other`` laid out as the packed buffer.
    cdef Py_ssize_t i
    for i in range(count):
        if s[i].packed:
            _add(s[i].kind, s[i].ptr, (b32 if s[i].kind == DK_F32 else b64) + s[i].offset,
                 other + s[i].offset, s[i].n, divide_by)


cdef void _unpack(const slot_t* s, Py_ssize_t count, const char* b32, const char* b64,
                  int divide_by) noexcept nogil:
    cdef Py_ssize_t i
    cdef const char* src
    for i in range(count):
        if s[i].packed:
            src = (b32 if s[i].kind == DK_F32 else b64) + s[i].offset
            if divide_by > 1 and s[i].kind == DK_F32:
                sff_copy_scale_f32(<float*>s[i].ptr, <const float*>src, s[i].n, divide_by)
            elif divide_by > 1:
                sff_copy_scale_f64(<double*>s[i].ptr, <const double*>src, s[i].n, divide_by)
            else:
                memcpy(s[i].ptr, src, s[i].nbytes)
