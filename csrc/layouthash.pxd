# The word hash of array layouts (cimported by _flat and _compress), the same on every rank.
from libc.stdint cimport uint64_t

cdef extern from *:
    """
    #define SF_HASH_SEED 14695981039346656037ULL
    """
    const uint64_t SF_HASH_SEED


cdef inline uint64_t sf_fnv(uint64_t h, uint64_t word) noexcept nogil:
    # One word into the hash: xor, multiply by an odd constant, fold the high bits down.
    h = (h ^ word) * 0x9E3779B97F4A7C15ULL
    return h ^ (h >> 29)
