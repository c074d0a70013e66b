/* A DDSketch-style quantile sketch with fixed bucket bounds (pure C, no Python).
 *
 * DDSketch (Masson, Rim & Lee, VLDB 2019): values are counted in buckets whose bounds grow
 * geometrically, so every bucket's representative lies within relative error alpha of every
 * value in the bucket; a quantile is the representative of the bucket holding the value of
 * the requested rank. Sketches merge by adding counts, so MPI_SUM over the counts buffers of
 * all ranks gives the sketch of the union of their values.
 *
 * Index mapping. For x = 2^e * (1 + s), s in [0, 1), the index is
 *     j = floor(k * (e + p(s) - SF_SKETCH_EMIN)),   p(s) = (4s - s^2) / 3,
 * a monotone quadratic stand-in for log2(1 + s) (p(0) = 0, p(1) = 1, so it is continuous across
 * octaves) that needs no call to log: e and s come from the bits of x. A bucket spans 1/k in
 * e + p(s); since d(e + p(s)) / d(ln x) = p'(s) (1 + s) >= 4/3 on [0, 1], its span in ln x is
 * at most 3 / (4k). With gamma = (1 + alpha) / (1 - alpha) and k = 3 / (4 ln gamma), every
 * bucket [lo, hi) has hi / lo <= gamma, and its representative 2 lo hi / (lo + hi) is within
 * (gamma - 1) / (gamma + 1) = alpha of any value in it. The quadratic costs about 8% more
 * buckets than an exact log2 (k = ln 2 / ln gamma), for a few multiply-adds per value.
 *
 * Bounds and layout. Magnitudes in [2^-32, 2^32) (2.3e-10 to 4.3e9) get buckets with the
 * alpha guarantee; |x| >= 2^32 (finite) is counted in the outermost bucket of its sign (its
 * representative is about 4.3e9), |x| < 2^-32 (zero and subnormals included) in the zero
 * bucket (representative 0). +/-inf and NaN have slots of their own. The counts are one float64
 * buffer of sf_sketch_slots(alpha) = 2 * nb + 4 slots, in value order after slot 0:
 *     [0] NaN | [1] -inf | [2 .. nb+1] negative buckets, most negative first |
 *     [nb+2] zero | [nb+3 .. 2nb+2] positive buckets | [2nb+3] +inf
 * with nb = ceil(64 k) buckets per sign (64 octaves). alpha = 0.01: k = 37.5, nb = 2400,
 * 4804 slots = 38 432 bytes per sketch; the memory is inversely proportional to alpha
 * (about 384 bytes / alpha). Counts are exact integers up to 2^53.
 *
 * Quantiles follow numpy.quantile's ranks: with n values (NaN excluded from the ranks), q
 * selects the value of 0-based rank floor((n - 1) q), numpy's "lower" value, so the answer is
 * within alpha of a value between numpy's "lower" and "higher" quantiles. Any NaN makes every
 * quantile NaN, as numpy does; an empty sketch gives NaN.
 *
 * Usage (the counts buffer belongs to the caller, zeroed, sf_sketch_slots(alpha) doubles):
 *     sf_sketch s;
 *     if (sf_sketch_init(&s, 0.01, counts) != 0) ... invalid alpha ...
 *     sf_sketch_push(&s, x);  sf_sketch_push_f32(&s, arr, n);  sf_sketch_quantile(&s, 0.5);
 */
#ifndef SPINFAST_DDSKETCH_H
#define SPINFAST_DDSKETCH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SF_SKETCH_EMIN (-32)       /* smallest octave with buckets: |x| >= 2^-32 */
#define SF_SKETCH_OCTAVES 64       /* octaves with buckets: |x| < 2^32 */
#define SF_SKETCH_ALPHA_MIN 1e-4   /* finest accuracy accepted (about 3.8 MB of counts) */
#define SF_SKETCH_ALPHA_MAX 0.5
#define SF_SKETCH_BLOCK 1024       /* values per block of the array kernels */

typedef struct {
    double alpha;     /* relative accuracy asked for */
    double k;         /* buckets per unit of e + p(s) */
    int32_t nb;       /* buckets per sign */
    int32_t slots;    /* length of counts: 2 * nb + 4 */
    double *counts;   /* slots float64 counts, owned by the caller */
} sf_sketch;

/* k of a relative accuracy: 3 / (4 ln gamma), with alpha shrunk by 1e-9 relative so that
 * rounding in the index arithmetic never costs the guarantee. */
static inline double sf_sketch_k(double alpha) {
    double a = alpha * (1.0 - 1e-9);
    return 0.75 / log((1.0 + a) / (1.0 - a));
}

/* Buckets per sign for alpha (0 if alpha is out of [SF_SKETCH_ALPHA_MIN, SF_SKETCH_ALPHA_MAX]). */
static inline int32_t sf_sketch_buckets(double alpha) {
    if (!(alpha >= SF_SKETCH_ALPHA_MIN && alpha <= SF_SKETCH_ALPHA_MAX)) return 0;
    return (int32_t)ceil(SF_SKETCH_OCTAVES * sf_sketch_k(alpha));
}

/* Slots of the counts buffer for alpha (0 if alpha is invalid). */
static inline int32_t sf_sketch_slots(double alpha) {
    int32_t nb = sf_sketch_buckets(alpha);
    return nb ? 2 * nb + 4 : 0;
}

/* Attach a zeroed buffer of sf_sketch_slots(alpha) doubles; 0 on success, -1 if alpha is
 * invalid. The buffer is not cleared here (a buffer of counts is a sketch to continue). */
static inline int sf_sketch_init(sf_sketch *s, double alpha, double *counts) {
    int32_t nb = sf_sketch_buckets(alpha);
    if (!nb) return -1;
    s->alpha = alpha;
    s->k = sf_sketch_k(alpha);
    s->nb = nb;
    s->slots = 2 * nb + 4;
    s->counts = counts;
    return 0;
}

/* Array kernels are compiled for AVX2 and the baseline, picked at load time by an ifunc (gcc
 * on x86-64 with glibc; gcc does not vectorise the slot arithmetic with SSE2 alone, clang
 * does). Without glibc's ifunc (musl, macOS) or with clang: the baseline kernel only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define SF_SKETCH_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SF_SKETCH_CLONES
#endif

typedef union { double d; uint64_t u; } sf_sketch_bits;

/* The slot of x: branch-free bit arithmetic on x's exponent and mantissa (no log, no int64
 * conversions), so that the array kernels vectorise. */
static inline int32_t sf_sketch_slot(double k, int32_t nb, double x) {
    sf_sketch_bits v, e, s;
    int32_t zero = nb + 2, hi, neg, j, special, normal;
    double t;
    v.d = x;
    hi = (int32_t)(uint32_t)(v.u >> 32);                 /* sign, exponent, top of mantissa */
    neg = (int32_t)((uint32_t)hi >> 31);
    e.u = ((v.u >> 52) & 0x7ffu) | 0x4330000000000000ull;  /* 2^52 + biased exponent */
    s.u = (v.u & 0xfffffffffffffull) | 0x3ff0000000000000ull;  /* 1 + s, in [1, 2) */
    e.d -= 0x1p52 + 1023.0 + SF_SKETCH_EMIN;              /* e - EMIN, exact */
    s.d -= 1.0;
    t = (e.d + s.d * (4.0 - s.d) * (1.0 / 3.0)) * k;
    t = t < 0.0 ? -1.0 : t;                               /* below 2^-32: the zero bucket */
    t = t > (double)(nb - 1) ? (double)(nb - 1) : t;      /* from 2^32: the outermost one */
    j = (int32_t)t;                                       /* floor (t >= 0) or -1 */
    normal = neg ? zero - 1 - j : zero + 1 + j;
    special = s.d != 0.0 ? 0 : (neg ? 1 : 2 * nb + 3);    /* NaN, -inf, +inf */
    return (hi & 0x7ff00000) == 0x7ff00000 ? special : normal;
}

/* Count one value. */
static inline void sf_sketch_push(sf_sketch *s, double x) {
    s->counts[sf_sketch_slot(s->k, s->nb, x)] += 1.0;
}

SF_SKETCH_CLONES
static void sf_sketch_slots_f64(const double *x, int32_t *idx, size_t n, double k, int32_t nb) {
    size_t j;
    for (j = 0; j < n; j++) idx[j] = sf_sketch_slot(k, nb, x[j]);
}

SF_SKETCH_CLONES
static void sf_sketch_slots_f32(const float *x, int32_t *idx, size_t n, double k, int32_t nb) {
    size_t j;
    for (j = 0; j < n; j++) idx[j] = sf_sketch_slot(k, nb, (double)x[j]);
}

/* Count n contiguous float64 values: slots computed a block at a time, then counted. */
static inline void sf_sketch_push_f64(sf_sketch *s, const double *x, size_t n) {
    int32_t idx[SF_SKETCH_BLOCK];
    double *c = s->counts;
    size_t i, m, j;
    for (i = 0; i < n; i += m) {
        m = n - i < SF_SKETCH_BLOCK ? n - i : SF_SKETCH_BLOCK;
        sf_sketch_slots_f64(x + i, idx, m, s->k, s->nb);
        for (j = 0; j < m; j++) c[idx[j]] += 1.0;
    }
}

/* Count n contiguous float32 values (each exactly converted to float64). */
static inline void sf_sketch_push_f32(sf_sketch *s, const float *x, size_t n) {
    int32_t idx[SF_SKETCH_BLOCK];
    double *c = s->counts;
    size_t i, m, j;
    for (i = 0; i < n; i += m) {
        m = n - i < SF_SKETCH_BLOCK ? n - i : SF_SKETCH_BLOCK;
        sf_sketch_slots_f32(x + i, idx, m, s->k, s->nb);
        for (j = 0; j < m; j++) c[idx[j]] += 1.0;
    }
}

/* Add counts of a sketch with the same alpha (sf_sketch_slots equal): the merge. */
static inline void sf_sketch_add_counts(sf_sketch *s, const double *counts) {
    int32_t i;
    for (i = 0; i < s->slots; i++) s->counts[i] += counts[i];
}

/* Merge src into dst; -1 if their alphas differ (nothing changed), else 0. */
static inline int sf_sketch_merge(sf_sketch *dst, const sf_sketch *src) {
    if (dst->slots != src->slots || dst->k != src->k) return -1;
    sf_sketch_add_counts(dst, src->counts);
    return 0;
}

/* Forget every value. */
static inline void sf_sketch_clear(sf_sketch *s) {
    memset(s->counts, 0, (size_t)s->slots * sizeof(double));
}

/* Lower bound of the magnitude bucket j (0 <= j <= nb): the x with k (e + p(s) - EMIN) = j. */
static inline double sf_sketch_bound(const sf_sketch *s, int32_t j) {
    double f = (double)j / s->k, e = floor(f), t = f - e;
    double m = 1.0 + (2.0 - sqrt(4.0 - 3.0 * t));   /* 1 + p^-1(t) */
    return ldexp(m, (int)e + SF_SKETCH_EMIN);
}

/* The value standing for a slot: within alpha of every value counted in it (NaN for slot 0,
 * +/-inf for the infinite slots, 0 for the zero bucket). */
static inline double sf_sketch_value(const sf_sketch *s, int32_t slot) {
    int32_t zero = s->nb + 2, j;
    double lo, hi;
    if (slot == 0) return NAN;
    if (slot == 1) return -INFINITY;
    if (slot == 2 * s->nb + 3) return INFINITY;
    if (slot == zero) return 0.0;
    j = slot > zero ? slot - zero - 1 : zero - 1 - slot;
    lo = sf_sketch_bound(s, j);
    hi = sf_sketch_bound(s, j + 1);
    return (slot > zero ? 2.0 : -2.0) * lo * hi / (lo + hi);
}

/* The q-quantile (0 <= q <= 1, unchecked): the value of slot holding 0-based rank
 * floor((n - 1) q) among the n non-NaN values; NaN if any value is NaN or none was counted. */
static inline double sf_sketch_quantile(const sf_sketch *s, double q) {
    double n = 0.0, rank, cum = 0.0;
    int32_t i;
    if (s->counts[0] > 0.0) return NAN;
    for (i = 1; i < s->slots; i++) n += s->counts[i];
    if (n <= 0.0) return NAN;
    rank = floor((n - 1.0) * q);
    for (i = 1; i < s->slots; i++) {
        cum += s->counts[i];
        if (cum > rank) return sf_sketch_value(s, i);
    }
    return sf_sketch_value(s, s->slots - 1);
}

#endif /* SPINFAST_DDSKETCH_H */
