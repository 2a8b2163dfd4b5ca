/* dtype.h - element types, their sizes, names and conversions.
 *
 * Float conversions round to nearest even, keep NaN and Inf where the target
 * can hold them, and saturate where it cannot: finite values past the largest
 * fp8 magnitude become +-max (e4m3: 448, e5m2: 57344); e4m3 has no Inf, so
 * +-Inf also becomes +-448 there (the CUDA "satfinite" rule); NaN stays NaN.
 * LLM_DTYPE_I4 packs two signed 4-bit values per byte, element 2k in the low
 * nibble of byte k.
 */
#ifndef LLM_DTYPE_H
#define LLM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum llm_dtype {
    LLM_DTYPE_F32 = 0,
    LLM_DTYPE_F16,
    LLM_DTYPE_BF16,
    LLM_DTYPE_F8E4M3, /* OCP e4m3fn: bias 7, no Inf, NaN = 0x7f/0xff, max 448 */
    LLM_DTYPE_F8E5M2, /* OCP e5m2: bias 15, IEEE-like with Inf and NaN, max 57344 */
    LLM_DTYPE_I8,
    LLM_DTYPE_U8,
    LLM_DTYPE_I4,     /* packed, two per byte */
    LLM_DTYPE_I32,
    LLM_DTYPE_F64,    /* the rest appear in checkpoints; kept so nothing is refused */
    LLM_DTYPE_I64,
    LLM_DTYPE_I16,
    LLM_DTYPE_U16,
    LLM_DTYPE_U32,
    LLM_DTYPE_U64,
    LLM_DTYPE_BOOL,
    LLM_DTYPE_COUNT
};

#define LLM_MAX_DIMS 8

/* Our lower-case name ("bf16", "f8e4m3", "i4"); "?" for an invalid value. */
const char *llm_dtype_name(int dt);
/* Parse our name; returns the dtype or LLM_EINVAL. */
int llm_dtype_from_name(const char *name);
/* safetensors names ("BF16", "F8_E4M3"); I4 has none (returns NULL). */
const char *llm_dtype_st_name(int dt);
int llm_dtype_from_st_name(const char *name);

/* Bits per element (4 for I4). */
int llm_dtype_bits(int dt);
int llm_dtype_is_float(int dt);

/* Bytes needed for numel elements (I4 rounds up); LLM_ERANGE on overflow. */
int llm_dtype_nbytes(int dt, uint64_t numel, uint64_t *nbytes);
/* Product of dims with overflow check; LLM_ERANGE on overflow or negative dim. */
int llm_shape_numel(int ndim, const int64_t *shape, uint64_t *numel);

/* Scalar conversions. */
float llm_f16_to_f32(uint16_t h);
uint16_t llm_f32_to_f16(float f);
float llm_bf16_to_f32(uint16_t b);
uint16_t llm_f32_to_bf16(float f);
float llm_e4m3_to_f32(uint8_t v);
uint8_t llm_f32_to_e4m3(float f);
float llm_e5m2_to_f32(uint8_t v);
uint8_t llm_f32_to_e5m2(float f);

/* Convert n elements between any two of F32, F16, BF16, F8E4M3, F8E5M2,
 * F64 (and to F32 from the integer types).  Same dtype is a copy.
 * Returns LLM_EUNSUPPORTED for other pairs. Buffers must not overlap. */
int llm_convert(void *dst, int dst_dt, const void *src, int src_dt, size_t n);
/* Convenience: any float or integer type to f32. */
int llm_to_f32(float *dst, const void *src, int src_dt, size_t n);

#ifdef __cplusplus
}
#endif
#endif
