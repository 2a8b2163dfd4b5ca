/* cpu_cvt.h - inline f16/bf16 <-> f32 conversions for the CPU backend's hot loops.
 *
 * lib/core/dtype.c has the library's scalar conversions; these are the same
 * functions written branch-light and static inline so that the weight- and
 * KV-widening loops vectorise.  Widening is exact; narrowing rounds to
 * nearest even, keeps NaN a NaN and overflows to Inf.  tests/cpu checks
 * them against dtype.c on every f16/bf16 bit pattern.
 */
#ifndef LLM_CPU_CVT_H
#define LLM_CPU_CVT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float llm_cpu_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t llm_cpu_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float llm_cpu_bf16_f32(uint16_t b)
{
    return llm_cpu_bits_f32((uint32_t)b << 16);
}

/* The exponent/mantissa bits shifted into fp32 position give the value
 * scaled by 2^-112 (subnormals included, as fp32 subnormals); one exact
 * multiply rescales.  Inf/NaN keep their mantissa with an all-ones exponent. */
static inline float llm_cpu_f16_f32(uint16_t h)
{
    uint32_t em = h & 0x7fffu;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t bits = llm_cpu_f32_bits(llm_cpu_bits_f32(em << 13) * 0x1p112f);
    if (em >= 0x7c00u) bits = (em << 13) | 0x7f800000u;
    return llm_cpu_bits_f32(bits | sign);
}

static inline uint16_t llm_cpu_f32_bf16(float f)
{
    uint32_t x = llm_cpu_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline uint16_t llm_cpu_f32_f16(float f)
{
    uint32_t x = llm_cpu_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to Inf */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal */
        float a = llm_cpu_bits_f32(ax) * 0x1p24f;             /* exact; round to integer */
        return (uint16_t)(sign | (uint16_t)lrintf(a));
    }
    ax += 0xc8000fffu + ((ax >> 13) & 1u); /* rebias 127 -> 15, round to nearest even */
    return (uint16_t)(sign | (ax >> 13));
}

#endif
