# cython: language_level=3
# The QuantileSketch type, for modules that hold sketches and push into them from C:
#     from _sketch cimport QuantileSketch
#     from ddsketch cimport sf_sketch_push
#     sf_sketch_push(&(<QuantileSketch>obj).sk, value)
from ddsketch cimport sf_sketch


cdef class QuantileSketch:
    cdef sf_sketch sk        # counts points into _counts' data, which never moves
    cdef object _counts      # float64 numpy array of sk.slots counts
