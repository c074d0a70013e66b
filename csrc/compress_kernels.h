/*
 * Kernels of spinfast._compress: float32 <-> 16-bit (bfloat16 or IEEE half) with error feedback.
 *
 *   sfc_encode(kind, x, res, out, n)      v = x + res; out = round16(v); res = v - widen(out);
 *                                         returns the first i whose finite v is beyond the
 *                                         16-bit range (float16 only: |v| >= 65520), else -1
 *   sfc_reduce(kind, rows, divisor,       per element i of one chunk of m values: the p rows
 *              res, out)                  of the ranks r = 0..p-1 (sfc_rows: row own is own_row,
 *                                         the owner's values where they lie; the others are the
 *                                         p - 1 rows of recv, in rank order), widened, summed
 *                                         in rank order in float32, divided by divisor (p for a mean, 1 for a
 *                                         sum, as the float32 path: SUM, then x / size),
 *                                         plus res; out = round16 (finite values saturate at
 *                                         the largest finite 16-bit value), res = v - widen(out)
 *   sfc_decode(kind, in, y, n)            y = widen(in)
 *
 * The buffers of one call never overlap (restrict), except that own_row may be out (each block
 * of own_row is read before that block of out is written). Rounding is to nearest, ties to
 * even, as IEEE 754 and ml_dtypes. NaN stays NaN (quieted),
 * +-inf stays +-inf; a residual that would be NaN (from a non-finite v) is set to 0 so it does
 * not poison later steps. bfloat16 keeps float32's exponent (8 bits of precision): finite
 * values near FLT_MAX saturate instead of becoming inf. float16 conversions are the bit
 * tricks of F. Giesen ("half to float done quic", 2016), branch-free so loops vectorize; no
 * F16C or AVX-512-BF16 is needed (the loops are memory-bound on this machine: see
 * bench/README.md).
 *
 * Error feedback (1-bit SGD, Seide et al. 2014; EF-SGD, Karimireddy et al. 2019): the rounding
 * error of what a rank sends is added to what it sends next, so the sum of what was sent over
 * many steps stays within one rounding of the sum of the inputs.
 */
#ifndef SPINFAST_COMPRESS_KERNELS_H
#define SPINFAST_COMPRESS_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* With GCC on x86-64 glibc each pass is compiled for AVX-512F, AVX2 and the
   baseline, and the loader picks the best for the CPU at run time (an ifunc). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define SFC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SFC_CLONES
#endif

#define SFC_BF16 1
#define SFC_FP16 2
#define SFC_BLOCK 1024 /* elements of one chunk summed at a time (4 KB of float32) */

static inline uint32_t sfc_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float sfc_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bfloat16 <-> float32 */

static inline float sfc_bf16_widen(uint16_t h) { return sfc_float((uint32_t)h << 16); }

static inline uint16_t sfc_bf16_round(float v)
{
    uint32_t u = sfc_bits(v);
    uint32_t a = u & 0x7fffffffu;
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    /* finite values that round up to inf saturate at the largest finite bfloat16 */
    r -= (uint32_t)(a < 0x7f800000u) & (uint32_t)((r & 0x7fffu) == 0x7f80u);
    r = a > 0x7f800000u ? ((u >> 16) | 0x40u) : r; /* NaN: keep the sign, set the quiet bit */
    return (uint16_t)r;
}

/* float16 <-> float32 */

static inline float sfc_fp16_widen(uint16_t h)
{
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13;
    float f = sfc_float(o) * sfc_float(0x77800000u); /* 2**112: rebias, subnormals exactly */
    uint32_t b = sfc_bits(f);
    b |= (0u - (uint32_t)(f >= 65536.0f)) & 0x7f800000u; /* was inf or NaN */
    return sfc_float(b | ((uint32_t)(h & 0x8000u) << 16));
}

static inline uint16_t sfc_fp16_round(float v)
{
    uint32_t u = sfc_bits(v);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    /* normal: rebias (15 - 127 << 23) and round to nearest even at bit 13 */
    uint32_t nrm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    /* subnormal: let the FPU round by adding 0.5 (exponent 126: the ulp is 2**-24); done on
       every lane (clamped), so GCC keeps the loop branch-free under -ftrapping-math */
    uint32_t lo = a < 0x38800000u ? a : 0x38800000u;
    uint32_t sub = sfc_bits(sfc_float(lo) + 0.5f) - 0x3f000000u;
    uint32_t is_sub = 0u - (uint32_t)(a < 0x38800000u);
    uint32_t is_big = 0u - (uint32_t)(a >= 0x47800000u); /* 65536 and above, inf, NaN */
    uint32_t big = 0x7c00u | ((uint32_t)(a > 0x7f800000u) << 9); /* inf, or quiet NaN */
    uint32_t o = nrm + ((sub - nrm) & is_sub);
    o = o + ((big - o) & is_big);
    return (uint16_t)(o | sign);
}

/* whether round16 of a finite v gave +-inf */
static inline int sfc_fp16_overflow(float v, uint16_t o)
{
    return ((sfc_bits(v) & 0x7fffffffu) < 0x7f800000u) & ((o & 0x7fffu) == 0x7c00u);
}

static inline float sfc_residual(float v, float w)
{
    float d = v - w;
    return d == d ? d : 0.0f; /* inf - inf, NaN - NaN: nothing to carry */
}

static SFC_CLONES ptrdiff_t sfc_encode(int kind, const float *restrict x, float *restrict res,
                            uint16_t *restrict out, ptrdiff_t n)
{
    ptrdiff_t i;
    if (kind == SFC_BF16) {
        for (i = 0; i < n; i++) {
            float v = x[i] + res[i];
            uint16_t o = sfc_bf16_round(v);
            out[i] = o;
            res[i] = sfc_residual(v, sfc_bf16_widen(o));
        }
        return -1;
    }
    {
        int bad = 0;
        for (i = 0; i < n; i++) {
            float v = x[i] + res[i];
            uint16_t o = sfc_fp16_round(v);
            bad |= sfc_fp16_overflow(v, o);
            out[i] = o;
            res[i] = sfc_residual(v, sfc_fp16_widen(o));
        }
        if (!bad)
            return -1;
        for (i = 0; i < n; i++) /* the rare error path: find the first one */
            if ((out[i] & 0x7fffu) == 0x7c00u && res[i] != 0.0f) /* finite v minus inf */
                return i;
        return -1;
    }
}

static SFC_CLONES void sfc_decode(int kind, const uint16_t *restrict in, float *restrict y, ptrdiff_t n)
{
    ptrdiff_t i;
    if (kind == SFC_BF16) {
        for (i = 0; i < n; i++)
            y[i] = sfc_bf16_widen(in[i]);
    } else {
        for (i = 0; i < n; i++)
            y[i] = sfc_fp16_widen(in[i]);
    }
}

/* The p rows of one chunk of m values: rank `own`'s is own_row (the owner's values where they
   lie), the others are the p - 1 rows of recv, in rank order. */
typedef struct {
    const uint16_t *recv;
    const uint16_t *own_row;
    ptrdiff_t m;
    int p;
    int own;
} sfc_rows;

/* acc[j] = the sum over the rows, in rank order, of element b + j (j < k), widened */
static void sfc_widen_rows(int kind, const sfc_rows *rows, ptrdiff_t b, ptrdiff_t k,
                           float *restrict acc)
{
    ptrdiff_t j;
    int r;
    for (r = 0; r < rows->p; r++) {
        const uint16_t *restrict row =
            (r == rows->own ? rows->own_row
                            : rows->recv + (ptrdiff_t)(r < rows->own ? r : r - 1) * rows->m) + b;
        if (r == 0)
            sfc_decode(kind, row, acc, k);
        else if (kind == SFC_BF16)
            for (j = 0; j < k; j++)
                acc[j] += sfc_bf16_widen(row[j]);
        else
            for (j = 0; j < k; j++)
                acc[j] += sfc_fp16_widen(row[j]);
    }
}

static SFC_CLONES void sfc_reduce(int kind, const sfc_rows *rows, float divisor,
                                  float *restrict res, uint16_t *out)
{
    float acc[SFC_BLOCK];
    ptrdiff_t b, j, m = rows->m;
    /* x / 2**k == x * 2**-k exactly: a multiplication then, a division otherwise */
    int pow2 = (sfc_bits(divisor) & 0x007fffffu) == 0 && divisor >= 1.0f;
    float inv = 1.0f / divisor;
    for (b = 0; b < m; b += SFC_BLOCK) {
        ptrdiff_t k = m - b < SFC_BLOCK ? m - b : SFC_BLOCK;
        sfc_widen_rows(kind, rows, b, k, acc);
        if (pow2) {
            for (j = 0; j < k; j++)
                acc[j] *= inv;
        } else {
            for (j = 0; j < k; j++)
                acc[j] /= divisor;
        }
        if (kind == SFC_BF16) {
            for (j = 0; j < k; j++) {
                float v = acc[j] + res[b + j];
                uint16_t o = sfc_bf16_round(v);
                out[b + j] = o;
                res[b + j] = sfc_residual(v, sfc_bf16_widen(o));
            }
        } else {
            for (j = 0; j < k; j++) {
                float v = acc[j] + res[b + j];
                uint16_t o = sfc_fp16_round(v);
                o = (uint16_t)(o - (uint16_t)sfc_fp16_overflow(v, o)); /* saturate at 65504 */
                out[b + j] = o;
                res[b + j] = sfc_residual(v, sfc_fp16_widen(o));
            }
        }
    }
}

#endif
