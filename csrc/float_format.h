/*
 * Fast paths for Python's float formatting, for the rows EpochLogger writes on every dump:
 *
 *   sff_repr(x, out)      repr(x) == str(x): the shortest digits that read back as x
 *   sff_g(x, prec, out)   "%.<prec>g" % x  (prec 1..17)
 *
 * Both return the length written to out (at most 32 bytes, not NUL-terminated), or -1 when the
 * value is outside the fast path (zero, subnormal, inf, nan, very small or large magnitude, a
 * power of two for repr, an exact decimal tie); the caller then asks CPython
 * (PyOS_double_to_string), so the text is always exactly CPython's.
 *
 * Method: x = m * 2^e exactly (m 53 bits). For a digit count p, x * 10^s = num / den is an
 * exact rational in 128-bit integers (s chosen so that it has p integer digits), rounded half
 * to even: the correctly rounded p-digit decimal D * 10^-s, as CPython's dtoa computes it.
 * repr: a decimal reads back as x iff it lies within half an ulp of x (a tie reads back iff m
 * is even). If any string of at most 15 digits reads back, the 15-digit rounding does (its
 * rounding error is below half an ulp), so trailing zeros stripped it is the shortest; else
 * the 16-digit rounding if it reads back (the closest 16-digit decimal; when it does not, no
 * other 16-digit one does, the interval being symmetric once powers of two are excluded);
 * else the 17-digit rounding, which always reads back. Layout as CPython's
 * format_float_short: exponent form when the decimal point position is <= -4 or > 16 (repr)
 * or > prec ("g"), exponent with a sign and at least two digits, ".0" added by repr.
 * Needs a compiler with 128-bit integers (GCC, Clang); elsewhere everything defers.
 */
#ifndef SPINFAST_FLOAT_FORMAT_H
#define SPINFAST_FLOAT_FORMAT_H

#include <stdint.h>
#include <string.h>

#if defined(__SIZEOF_INT128__)

typedef unsigned __int128 sff_u128;

static const uint64_t sff_pow10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL};

static const uint64_t sff_pow5[28] = {
    1ULL, 5ULL, 25ULL, 125ULL, 625ULL, 3125ULL, 15625ULL, 78125ULL, 390625ULL, 1953125ULL,
    9765625ULL, 48828125ULL, 244140625ULL, 1220703125ULL, 6103515625ULL, 30517578125ULL,
    152587890625ULL, 762939453125ULL, 3814697265625ULL, 19073486328125ULL, 95367431640625ULL,
    476837158203125ULL, 2384185791015625ULL, 11920928955078125ULL, 59604644775390625ULL,
    298023223876953125ULL, 1490116119384765625ULL, 7450580596923828125ULL};

static int sff_bits(sff_u128 v)
{
    uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
    if (hi)
        return 128 - __builtin_clzll(hi);
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

static sff_u128 sff_pow10_128(int t) /* t <= 38 */
{
    sff_u128 r = 1;
    while (t-- > 0)
        r *= 10;
    return r;
}

/*
 * x * 10^s as num / den, and an ulp of x in units of 1/den; 0 if a p-digit result would not
 * fit the 128-bit fast path.
 */
static int sff_scaled(uint64_t m, int e, int s, int p, sff_u128 *num, sff_u128 *den,
                      sff_u128 *ulp)
{
    if (s >= 0) {
        sff_u128 p5;
        if (s > 27) /* 5^27 < 2^63 */
            return 0;
        p5 = sff_pow5[s];
        if (e + s >= 0) {
            if (e + s > 10)
                return 0;
            *num = ((sff_u128)m * p5) << (e + s);
            *den = 1;
            *ulp = p5 << (e + s);
        } else {
            if (-(e + s) > 124 - sff_bits(sff_pow10[p])) /* room for D * den, 2 * r */
                return 0;
            *num = (sff_u128)m * p5;
            *den = (sff_u128)1 << (-(e + s));
            *ulp = p5;
        }
    } else {
        int t = -s;
        sff_u128 d;
        if (t > 38 || e > 73)
            return 0;
        d = sff_pow10_128(t);
        if (e < 0) {
            if (sff_bits(d) + (-e) > 120)
                return 0;
            d <<= -e;
        }
        *num = e > 0 ? (sff_u128)m << e : (sff_u128)m;
        *den = d;
        *ulp = e > 0 ? (sff_u128)1 << e : 1;
    }
    return 1;
}

/*
 * Round x = m * 2^e to p significant digits: D (10^(p-1) <= D <= 10^p) and s with the value
 * D * 10^-s; *exact_tie when x lay exactly halfway; *reads_back whether D * 10^-s reads back
 * as x. 0 outside the fast path.
 */
static int sff_round(uint64_t m, int e, int p, uint64_t *D, int *s_out, int *exact_tie,
                     int *reads_back)
{
    /* log10(x) lies in [(e + 52) log10 2, (e + 53) log10 2) */
    int E = (int)((e + 52) * 0.30102999566398120) - ((e + 52) < 0);
    int s = p - 1 - E, tries;
    sff_u128 num, den, ulp, q, r, err;
    for (tries = 0; tries < 3; tries++) {
        if (!sff_scaled(m, e, s, p, &num, &den, &ulp))
            return 0;
        q = num / den;
        if (q >= sff_pow10[p]) {
            s--;
            continue;
        }
        if (q < sff_pow10[p - 1]) {
            s++;
            continue;
        }
        break;
    }
    if (tries == 3)
        return 0;
    r = num - q * den;
    *exact_tie = 2 * r == den;
    if (2 * r > den || (2 * r == den && (q & 1)))
        q++;
    err = q * den > num ? q * den - num : num - q * den;
    *reads_back = 2 * err < ulp || (2 * err == ulp && !(m & 1));
    *D = (uint64_t)q;
    *s_out = s;
    return 1;
}

/* Python's layout of digits (D with p digits, or 10^p) at scale s. */
static int sff_layout(char *out, int neg, uint64_t D, int p, int s, int exp_above, int add_dot0)
{
    char digits[24];
    int nd = 0, decpt, i, n = 0, x;
    if (D == sff_pow10[p]) { /* rounding carried into a new digit */
        D = sff_pow10[p - 1];
        s--;
    }
    decpt = p - s;
    for (i = p - 1; i >= 0; i--) {
        digits[i] = (char)('0' + D % 10);
        D /= 10;
    }
    nd = p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg)
        out[n++] = '-';
    if (decpt <= -4 || decpt > exp_above) {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        x = decpt - 1;
        out[n++] = 'e';
        out[n++] = x < 0 ? '-' : '+';
        if (x < 0)
            x = -x;
        if (x >= 100)
            out[n++] = (char)('0' + x / 100);
        out[n++] = (char)('0' + x / 10 % 10);
        out[n++] = (char)('0' + x % 10);
    } else if (decpt <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        memset(out + n, '0', -decpt);
        n += -decpt;
        memcpy(out + n, digits, nd);
        n += nd;
    } else if (decpt >= nd) {
        memcpy(out + n, digits, nd);
        n += nd;
        memset(out + n, '0', decpt - nd);
        n += decpt - nd;
        if (add_dot0) {
            out[n++] = '.';
            out[n++] = '0';
        }
    } else {
        memcpy(out + n, digits, decpt);
        n += decpt;
        out[n++] = '.';
        memcpy(out + n, digits + decpt, nd - decpt);
        n += nd - decpt;
    }
    return n;
}

static int sff_split(double x, uint64_t *m, int *e, int *neg)
{
    uint64_t bits;
    int ex;
    memcpy(&bits, &x, 8);
    ex = (int)((bits >> 52) & 0x7FF);
    if (ex == 0 || ex == 0x7FF) /* zero, subnormal, inf, nan */
        return 0;
    *neg = (int)(bits >> 63);
    *m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    *e = ex - 1075;
    return 1;
}

static int sff_repr(double x, char *out)
{
    uint64_t m, D;
    int e, neg, p, s, tie, ok;
    if (!sff_split(x, &m, &e, &neg) || m == (1ULL << 52))
        return -1;
    for (p = 15; p <= 17; p++) {
        if (!sff_round(m, e, p, &D, &s, &tie, &ok) || tie)
            return -1;
        if (ok || p == 17)
            return ok ? sff_layout(out, neg, D, p, s, 16, 1) : -1;
    }
    return -1;
}

static int sff_g(double x, int prec, char *out)
{
    uint64_t m, D;
    int e, neg, s, tie, ok;
    if (prec < 1 || prec > 17 || !sff_split(x, &m, &e, &neg))
        return -1;
    if (!sff_round(m, e, prec, &D, &s, &tie, &ok) || tie)
        return -1;
    return sff_layout(out, neg, D, prec, s, prec, 0);
}

#else /* no 128-bit integers: every value goes to CPython */

static int sff_repr(double x, char *out) { (void)x; (void)out; return -1; }
static int sff_g(double x, int prec, char *out) { (void)x; (void)prec; (void)out; return -1; }

#endif /* __SIZEOF_INT128__ */

#endif /* SPINFAST_FLOAT_FORMAT_H */
