/*
 * Kernels of spinfast._flat: the division that turns an MPI SUM into a mean, and the
 * reduction step of the engine's own reduce-scatter.
 *
 *   sff_scale_T(x, n, size)             x[i] = x[i] / size          (in place)
 *   sff_copy_scale_T(dst, src, n, size) dst[i] = src[i] / size      (dst, src disjoint)
 *   sff_add_T(dst, a, b, n, size)       dst[i] = (a[i] + b[i]) / size   (size 1: no division;
 *                                       a may be dst)
 *   sff_hash(h, p, nbytes)              64-bit hash of bytes, chained through h (sync checks)
 *
 * Same IEEE result as numpy's x / size in the array's dtype. For a power-of-two size the
 * reciprocal is exact, so x * (1/size) is bit-identical to the division and several times
 * cheaper. With GCC on x86-64 and glibc each kernel is compiled for AVX-512, AVX2 and the
 * baseline, and the loader picks the best for the CPU at run time (target_clones needs glibc's
 * ifunc: musl has none, so there, and with other compilers, the baseline kernel is all).
 */
#ifndef SPINFAST_FLAT_H
#define SPINFAST_FLAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define SFF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SFF_CLONES
#endif

#define SFF_DEFINE_SCALE(NAME, T)                                                             \
    static SFF_CLONES void sff_scale_##NAME(T *x, ptrdiff_t n, int size)                     \
    {                                                                                        \
        ptrdiff_t i;                                                                         \
        const T d = (T)size, r = (T)1 / d;                                                   \
        if ((size & (size - 1)) == 0)                                                        \
            for (i = 0; i < n; i++)                                                          \
                x[i] = x[i] * r;                                                             \
        else                                                                                 \
            for (i = 0; i < n; i++)                                                          \
                x[i] = x[i] / d;                                                             \
    }                                                                                        \
                                                                                             \
    static SFF_CLONES void sff_copy_scale_##NAME(T *restrict dst, const T *restrict src,     \
                                                 ptrdiff_t n, int size)                      \
    {                                                                                        \
        ptrdiff_t i;                                                                         \
        const T d = (T)size, r = (T)1 / d;                                                   \
        if ((size & (size - 1)) == 0)                                                        \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = src[i] * r;                                                         \
        else                                                                                 \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = src[i] / d;                                                         \
    }

#define SFF_DEFINE_ADD(NAME, T)                                                               \
    static SFF_CLONES void sff_add_##NAME(T *dst, const T *a, const T *restrict b, ptrdiff_t n,\
                                          int size)                                          \
    {                                                                                        \
        ptrdiff_t i;                                                                         \
        const T d = (T)size, r = (T)1 / d;                                                   \
        if (size == 1)                                                                       \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = a[i] + b[i];                                                        \
        else if ((size & (size - 1)) == 0)                                                   \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = (a[i] + b[i]) * r;                                                  \
        else                                                                                 \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = (a[i] + b[i]) / d;                                                  \
    }

/*
 * Hash of a byte string, continuing from h. Eight 64-bit lanes take one word each per 64-byte
 * block: the word is added to the neighbouring lane, and the product of the two 32-bit halves
 * of the word xor a key of its lane and block is added to its own lane (32x32->64 multiplies, which
 * vectorize on AVX2 and AVX-512). Then the lanes, the tail bytes and the length are mixed with
 * full 64-bit multiplies and a final avalanche. Any change of one word changes a lane sum;
 * equal bytes give equal hashes on every rank. Not cryptographic: it detects drift between
 * ranks, not tampering.
 */
static SFF_CLONES uint64_t sff_hash(uint64_t h, const unsigned char *p, size_t nbytes)
{
    const uint64_t K1 = 0x9E3779B97F4A7C15ULL, K2 = 0xC2B2AE3D27D4EB4FULL;
    uint64_t lane[8], w, k;
    size_t i, j, blocks = nbytes / 64;
    for (j = 0; j < 8; j++)
        lane[j] = h + K1 * (j + 1);
    for (i = 0; i < blocks; i++) {
        const uint64_t block_key = (i + 1) * K1; /* words that trade places change the hash */
        for (j = 0; j < 8; j++) {
            memcpy(&w, p + 64 * i + 8 * j, 8);
            k = w ^ block_key ^ (K2 * (2 * j + 1));
            lane[j ^ 1] += w;
            lane[j] += (k & 0xFFFFFFFFULL) * (k >> 32);
        }
    }
    h ^= nbytes * K1;
    for (j = 0; j < 8; j++) {
        h = (h ^ lane[j]) * K2;
        h ^= h >> 31;
    }
    for (i = 64 * blocks; i < nbytes; i++)
        h = (h ^ p[i]) * K1;
    h ^= h >> 31;
    h *= K2;
    h ^= h >> 29;
    return h;
}

SFF_DEFINE_SCALE(f32, float)
SFF_DEFINE_SCALE(f64, double)
SFF_DEFINE_ADD(f32, float)
SFF_DEFINE_ADD(f64, double)

#endif /* SPINFAST_FLAT_H */
