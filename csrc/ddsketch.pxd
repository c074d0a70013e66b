# cython: language_level=3
# Declarations of csrc/ddsketch.h (the C quantile sketch) that spinfast._stats uses:
#     from ddsketch cimport sf_sketch, sf_sketch_init, sf_sketch_push, ...
# Every function is static inline in the header: calls cost no Python and no GIL.
from libc.stdint cimport int32_t


cdef extern from "ddsketch.h" nogil:
    ctypedef struct sf_sketch:
        double alpha
        double k
        int32_t nb
        int32_t slots
        double* counts

    int32_t sf_sketch_slots(double alpha)
    int sf_sketch_init(sf_sketch* s, double alpha, double* counts)
    void sf_sketch_push(sf_sketch* s, double x)
    void sf_sketch_push_f64(sf_sketch* s, const double* x, size_t n)
    void sf_sketch_push_f32(sf_sketch* s, const float* x, size_t n)
    int sf_sketch_merge(sf_sketch* dst, const sf_sketch* src)
    void sf_sketch_clear(sf_sketch* s)
    double sf_sketch_quantile(const sf_sketch* s, double q)
