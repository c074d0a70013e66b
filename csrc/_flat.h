/*
 * Kernels of spinfast._flat: the division that turns an MPI SUM into a mean, and the
 * reduction step of the engine's own reduce-scatter.
 *
 *   sff_scale_T(x, n, size)             x[i] = x[i] / size          (in place)
 *   sff_copy_scale_T(dst, src, n, size) dst[i] = src[i] / size      (dst, src disjoint)
 *   sff_add_T(dst, src, n, size)        dst[i] = (dst[i] + src[i]) / size   (size 1: no division)
 *
 * Same IEEE result as numpy's x / size in the array's dtype. For a power-of-two size the
 * reciprocal is exact, so x * (1/size) is bit-identical to the division and several times
 * cheaper. With GCC on x86-64 Linux each kernel is compiled for AVX-512, AVX2 and the baseline,
 * and the loader picks the best for the CPU at run time.
 */
#ifndef SPINFAST_FLAT_H
#define SPINFAST_FLAT_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
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
    static SFF_CLONES void sff_add_##NAME(T *restrict dst, const T *restrict src, ptrdiff_t n, \
                                          int size)                                          \
    {                                                                                        \
        ptrdiff_t i;                                                                         \
        const T d = (T)size, r = (T)1 / d;                                                   \
        if (size == 1)                                                                       \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = dst[i] + src[i];                                                    \
        else if ((size & (size - 1)) == 0)                                                   \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = (dst[i] + src[i]) * r;                                              \
        else                                                                                 \
            for (i = 0; i < n; i++)                                                          \
                dst[i] = (dst[i] + src[i]) / d;                                              \
    }

SFF_DEFINE_SCALE(f32, float)
SFF_DEFINE_SCALE(f64, double)
SFF_DEFINE_ADD(f32, float)
SFF_DEFINE_ADD(f64, double)

#endif /* SPINFAST_FLAT_H */
