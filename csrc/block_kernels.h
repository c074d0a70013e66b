/*
 * Block kernels of spinfast._stats: passes over one block of an array, in float64.
 *
 *   k->sum(x, m, K)              = sum(x - K)
 *   k->sqdev(x, m, K, ybar)      = sum((x - K - ybar)^2)
 *   k->minmax(x, m, &lo, &hi)    = min(x), max(x)    (valid only for blocks without NaN)
 *   k->to_f64(x, m, out)         out[i] = x[i] as float64 (numpy's conversion)
 *
 * where k = sf_kernels_of(kind) is the table of an element kind: the one place that
 * dispatches over the kinds. Each kernel takes the block as const void * and reads it as its
 * kind's C type.
 *
 * Each loop keeps SF_LANES independent partial results, so the compiler maps the lanes onto
 * SIMD registers without reassociating floating point: sums keep their IEEE meaning (a NaN or
 * inf anywhere makes the sum non-finite, which the caller checks before trusting minmax).
 * minmax is written as `v < a ? v : a`, which is exactly the x86 min instruction's rule
 * (the second operand when either is NaN), so GCC and clang vectorise it under the default
 * IEEE flags. With GCC on x86-64 and a C library with ifunc (glibc) each kernel is compiled
 * for AVX-512, AVX2 and the baseline, and the loader picks the best for the CPU at run time;
 * elsewhere (musl, macOS, clang) the baseline kernel is the only one.
 */
#ifndef SPINFAST_BLOCK_KERNELS_H
#define SPINFAST_BLOCK_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SF_LANES 16
#define SF_MINMAX_LANES 32

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define SF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SF_CLONES
#endif

/* Element kinds of the arrays the kernels read (SF_NONE: not read by a kernel). */
typedef enum {
    SF_NONE, SF_F32, SF_F64, SF_I8, SF_I16, SF_I32, SF_I64, SF_U8, SF_U16, SF_U32, SF_U64,
    SF_KINDS
} sf_kind;

typedef struct {
    double (*sum)(const void *x, ptrdiff_t m, double K);
    double (*sqdev)(const void *x, ptrdiff_t m, double K, double ybar);
    void (*minmax)(const void *x, ptrdiff_t m, double *lo, double *hi);
    void (*to_f64)(const void *x, ptrdiff_t m, double *out);
    ptrdiff_t size; /* bytes per element */
} sf_kernels;

#define SF_DEFINE_KERNELS(NAME, T)                                                            \
    static SF_CLONES double sf_sum_##NAME(const void *p, ptrdiff_t m, double K)               \
    {                                                                                        \
        const T *x = p;                                                                      \
        double S[SF_LANES] = {0};                                                            \
        ptrdiff_t i = 0, mm = m - m % SF_LANES;                                              \
        int j;                                                                               \
        for (; i < mm; i += SF_LANES)                                                        \
            for (j = 0; j < SF_LANES; j++)                                                   \
                S[j] += (double)x[i + j] - K;                                                \
        for (; i < m; i++)                                                                   \
            S[0] += (double)x[i] - K;                                                        \
        for (j = 1; j < SF_LANES; j++)                                                       \
            S[0] += S[j];                                                                    \
        return S[0];                                                                         \
    }                                                                                        \
                                                                                             \
    static SF_CLONES double sf_sqdev_##NAME(const void *p, ptrdiff_t m, double K, double ybar) \
    {                                                                                        \
        const T *x = p;                                                                      \
        double Q[SF_LANES] = {0};                                                            \
        ptrdiff_t i = 0, mm = m - m % SF_LANES;                                              \
        int j;                                                                               \
        for (; i < mm; i += SF_LANES)                                                        \
            for (j = 0; j < SF_LANES; j++) {                                                 \
                double d = ((double)x[i + j] - K) - ybar;                                    \
                Q[j] += d * d;                                                               \
            }                                                                                \
        for (; i < m; i++) {                                                                 \
            double d = ((double)x[i] - K) - ybar;                                            \
            Q[0] += d * d;                                                                   \
        }                                                                                    \
        for (j = 1; j < SF_LANES; j++)                                                       \
            Q[0] += Q[j];                                                                    \
        return Q[0];                                                                         \
    }                                                                                        \
                                                                                             \
    static SF_CLONES void sf_minmax_##NAME(const void *p, ptrdiff_t m, double *lo, double *hi) \
    {                                                                                        \
        const T *x = p;                                                                      \
        T A[SF_MINMAX_LANES], B[SF_MINMAX_LANES];                                            \
        ptrdiff_t i = 0, mm = m - m % SF_MINMAX_LANES;                                       \
        int j;                                                                               \
        for (j = 0; j < SF_MINMAX_LANES; j++)                                                \
            A[j] = B[j] = x[0];                                                              \
        for (; i < mm; i += SF_MINMAX_LANES)                                                 \
            for (j = 0; j < SF_MINMAX_LANES; j++) {                                          \
                T v = x[i + j];                                                              \
                A[j] = v < A[j] ? v : A[j];                                                  \
                B[j] = v > B[j] ? v : B[j];                                                  \
            }                                                                                \
        for (; i < m; i++) {                                                                 \
            A[0] = x[i] < A[0] ? x[i] : A[0];                                                \
            B[0] = x[i] > B[0] ? x[i] : B[0];                                                \
        }                                                                                    \
        for (j = 1; j < SF_MINMAX_LANES; j++) {                                              \
            A[0] = A[j] < A[0] ? A[j] : A[0];                                                \
            B[0] = B[j] > B[0] ? B[j] : B[0];                                                \
        }                                                                                    \
        *lo = (double)A[0];                                                                  \
        *hi = (double)B[0];                                                                  \
    }                                                                                        \
                                                                                             \
    static void sf_to_f64_##NAME(const void *p, ptrdiff_t m, double *out)                    \
    {                                                                                        \
        const T *x = p;                                                                      \
        ptrdiff_t i;                                                                         \
        for (i = 0; i < m; i++)                                                              \
            out[i] = (double)x[i];                                                           \
    }

SF_DEFINE_KERNELS(f32, float)
SF_DEFINE_KERNELS(f64, double)
SF_DEFINE_KERNELS(i8, int8_t)
SF_DEFINE_KERNELS(i16, int16_t)
SF_DEFINE_KERNELS(i32, int32_t)
SF_DEFINE_KERNELS(i64, int64_t)
SF_DEFINE_KERNELS(u8, uint8_t)
SF_DEFINE_KERNELS(u16, uint16_t)
SF_DEFINE_KERNELS(u32, uint32_t)
SF_DEFINE_KERNELS(u64, uint64_t)

#define SF_KERNELS_OF(NAME, T) \
    {sf_sum_##NAME, sf_sqdev_##NAME, sf_minmax_##NAME, sf_to_f64_##NAME, sizeof(T)}

/* The kernels of an element kind (kind in SF_F32 .. SF_U64). */
static inline const sf_kernels *sf_kernels_of(sf_kind kind)
{
    static const sf_kernels table[SF_KINDS] = {
        {0, 0, 0, 0, 0},
        SF_KERNELS_OF(f32, float), SF_KERNELS_OF(f64, double),
        SF_KERNELS_OF(i8, int8_t), SF_KERNELS_OF(i16, int16_t),
        SF_KERNELS_OF(i32, int32_t), SF_KERNELS_OF(i64, int64_t),
        SF_KERNELS_OF(u8, uint8_t), SF_KERNELS_OF(u16, uint16_t),
        SF_KERNELS_OF(u32, uint32_t), SF_KERNELS_OF(u64, uint64_t),
    };
    return &table[kind];
}

/* The element i of a block read by k's kernels. */
static inline const void *sf_element(const sf_kernels *k, const void *x, ptrdiff_t i)
{
    return (const char *)x + i * k->size;
}

#endif /* SPINFAST_BLOCK_KERNELS_H */
