/*
 * Block kernels of spinfast._stats: passes over one block of an array, in float64.
 *
 *   sf_sum_T(x, m, K)            = sum(x - K)
 *   sf_sqdev_T(x, m, K, ybar)    = sum((x - K - ybar)^2)
 *   sf_minmax_T(x, m, &lo, &hi)  = min(x), max(x)    (valid only for blocks without NaN)
 *
 * Each loop keeps SF_LANES independent partial results, so the compiler maps the lanes onto
 * SIMD registers without reassociating floating point: sums keep their IEEE meaning (a NaN or
 * inf anywhere makes sf_sum non-finite, which the caller checks before trusting sf_minmax).
 * sf_minmax may therefore assume finite data, which lets GCC use vector min/max instructions.
 * With GCC on x86-64 Linux each kernel is compiled for AVX-512, AVX2 and the baseline, and the
 * loader picks the best for the CPU at run time.
 */
#ifndef SPINFAST_BLOCK_KERNELS_H
#define SPINFAST_BLOCK_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SF_LANES 16
#define SF_MINMAX_LANES 32

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SF_CLONES
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define SF_FINITE __attribute__((optimize("finite-math-only", "no-signed-zeros")))
#else
#define SF_FINITE
#endif

#define SF_DEFINE_KERNELS(NAME, T)                                                            \
    static SF_CLONES double sf_sum_##NAME(const T *x, ptrdiff_t m, double K)                 \
    {                                                                                        \
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
    static SF_CLONES double sf_sqdev_##NAME(const T *x, ptrdiff_t m, double K, double ybar)  \
    {                                                                                        \
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
    static SF_CLONES SF_FINITE void sf_minmax_##NAME(const T *x, ptrdiff_t m, double *lo,    \
                                                     double *hi)                             \
    {                                                                                        \
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

#endif /* SPINFAST_BLOCK_KERNELS_H */
