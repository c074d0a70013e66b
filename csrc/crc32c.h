/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses it.
 *
 * Two implementations behind one call, sf_crc32c(crc, data, n), with zlib's convention (pass
 * 0 to start, the previous result to continue; sf_crc32c(0, "123456789", 9) == 0xE3069283):
 *   - portable: table-driven "slicing-by-8" (8 tables of 256 entries, 8 KiB, built once by
 *     sf_crc32c_init), 8 input bytes per step;
 *   - x86-64 with SSE4.2 (checked at run time by sf_crc32c_init): the CRC32 instruction, 8
 *     bytes per instruction, compiled through a function-level target attribute so the rest
 *     of the build needs no -msse4.2.
 * sf_crc32c_init() must run once before the first sf_crc32c call (module import does it).
 * Pure C, no Python; every function is static so each includer has its own copy.
 */
#ifndef SPINFAST_CRC32C_H
#define SPINFAST_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SF_CRC32C_X86 1
#include <nmmintrin.h>
#else
#define SF_CRC32C_X86 0
#endif

#define SF_CRC32C_POLY 0x82F63B78u

static uint32_t sf_crc32c_table[8][256];
static int sf_crc32c_hw = 0;

static inline uint32_t sf_load32le(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

/* Portable CRC32C, slicing-by-8 (Kounavis & Berry, 2008). */
static uint32_t sf_crc32c_sw(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
    while (n && ((uintptr_t)p & 7u)) {
        c = sf_crc32c_table[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo = c ^ sf_load32le(p);
        uint32_t hi = sf_load32le(p + 4);
        c = sf_crc32c_table[7][lo & 0xffu] ^ sf_crc32c_table[6][(lo >> 8) & 0xffu]
            ^ sf_crc32c_table[5][(lo >> 16) & 0xffu] ^ sf_crc32c_table[4][lo >> 24]
            ^ sf_crc32c_table[3][hi & 0xffu] ^ sf_crc32c_table[2][(hi >> 8) & 0xffu]
            ^ sf_crc32c_table[1][(hi >> 16) & 0xffu] ^ sf_crc32c_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = sf_crc32c_table[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
    return ~c;
}

#if SF_CRC32C_X86
/* The SSE4.2 CRC32 instruction computes exactly CRC32C (no final inversion of its own). */
__attribute__((target("sse4.2")))
static uint32_t sf_crc32c_sse42(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    uint64_t c64;
    while (n && ((uintptr_t)p & 7u)) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
#endif
    while (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = _mm_crc32_u32(c, w);
        p += 4;
        n -= 4;
    }
    while (n--) c = _mm_crc32_u8(c, *p++);
    return ~c;
}
#endif

/* Build the tables and pick the implementation; idempotent. */
static void sf_crc32c_init(void) {
    uint32_t i, k;
    for (i = 0; i < 256; i++) {
        uint32_t c = i;
        for (k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ SF_CRC32C_POLY : c >> 1;
        sf_crc32c_table[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++)
            sf_crc32c_table[k][i] = (sf_crc32c_table[k - 1][i] >> 8)
                                    ^ sf_crc32c_table[0][sf_crc32c_table[k - 1][i] & 0xffu];
#if SF_CRC32C_X86
    __builtin_cpu_init();
    sf_crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* 1 when sf_crc32c uses the CRC32 instruction, 0 for the portable tables. */
static inline int sf_crc32c_hw_used(void) { return sf_crc32c_hw; }

/* Force the portable path (hw = 0) or the detected one (hw = 1); for tests. */
static inline void sf_crc32c_select(int hw) {
#if SF_CRC32C_X86
    sf_crc32c_hw = hw ? (__builtin_cpu_supports("sse4.2") ? 1 : 0) : 0;
#else
    (void)hw;
#endif
}

static inline uint32_t sf_crc32c(uint32_t crc, const void *data, size_t n) {
#if SF_CRC32C_X86
    if (sf_crc32c_hw) return sf_crc32c_sse42(crc, data, n);
#endif
    return sf_crc32c_sw(crc, data, n);
}

/* TFRecord's masked CRC: rotate right by 15 bits and add a constant. */
static inline uint32_t sf_crc32c_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

#endif /* SPINFAST_CRC32C_H */
