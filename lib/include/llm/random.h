/* random.h - the random weights of a published shape (llm-convert --random,
 * llm-bench --random): one value per (seed, tensor name, element index).
 *
 * Design choice: splitmix64 over a counter, so element i needs no other
 * element; the CPU (lib/model/random.c) and the CUDA kernel
 * (llm_k_fill_random) compute the very same floats from this header.  A
 * normal-looking value is the sum of the four 16-bit parts of one draw
 * (Irwin-Hall, n = 4), centred and scaled to a standard deviation of 0.02:
 * weights of a plausible size, never inf, cheap to make.  Norm weights
 * are 1 and norm biases 0 (llm_rand_fill_of), so activations stay finite.
 *
 * Quantized weights (a synthetic model named with a quantization mode,
 * "random:CONFIG.json:fp8", llm_model_random) hold the same values in the
 * format's units under one constant power-of-two scale: element i is
 * llm_rand_value(state, i) / scale, rounded as the format rounds (e4m3:
 * to nearest even, saturating at 448; int8 and int4: rint, clamped to
 * [-127, 127] and [-8, 7]).  Dividing by a power of two is exact, so the
 * host and the device (llm_k_fill_random) make the same bytes; the
 * dequantized weights have the dense ones' spread (std 0.02).  The scale
 * tensors of such a model hold these constants (LLM_RAND_*_SCALE), its
 * smoothers and pre-quant scales 1 (int8-sq: a smoother only where
 * llm-quantize keeps one, the factors folded into the norms elsewhere -
 * factors of 1, so the norms keep their values).
 */
#ifndef LLM_RANDOM_H
#define LLM_RANDOM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define LLM_RAND_FN __host__ __device__ static inline
#else
#define LLM_RAND_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_RAND_GOLDEN 0x9e3779b97f4a7c15ull
#define LLM_RAND_SUM_MEAN 131070.0f          /* mean of the sum: 4 * 65535 / 2 */
#define LLM_RAND_SCALE (0.02f / 37837.23f)   /* std of the sum: 65536 * sqrt(4 / 12) */

enum llm_rand_fill { LLM_RAND_ONE = 0, LLM_RAND_ZERO, LLM_RAND_NORMAL };

/* The constant scales of a synthetic quantized model (powers of two).
 * Weights: |value| < 0.07, so fp8 codes stay at most 288 (< 448), int8 codes
 * have a std of 41 (a few of the largest clamped to 127), int4 codes a std
 * of 2.6 (clamped to [-8, 7], as a group's amax / 7 would).  Activations and
 * the KV cache: inputs up to 14 (fp8) or 4 (int8), the size of a normed
 * row's largest entries; the int8 KV cache up to 8. */
#define LLM_RAND_FP8_SCALE (1.0f / 4096.0f)   /* weights_scaling_factor, fp8 and fp8-pc */
#define LLM_RAND_INT8_SCALE (1.0f / 2048.0f)  /* per_channel_scale, w8a16 and int8-sq */
#define LLM_RAND_INT4_SCALE (1.0f / 128.0f)   /* weights_scaling_factor, the int4 modes */
#define LLM_RAND_FP8_ACT_SCALE (1.0f / 32.0f) /* activation_scaling_factor (fp8, w4a8-awq) */
#define LLM_RAND_INT8_ACT_SCALE (1.0f / 32.0f)  /* act_scale (int8-sq, act=static) */
#define LLM_RAND_KV_FP8_SCALE (1.0f / 32.0f)    /* kv_cache_scaling_factor, kv=fp8 */
#define LLM_RAND_KV_INT8_SCALE (1.0f / 16.0f)   /* kv_cache_scaling_factor, kv=int8 */

/* Element i of a tensor whose counter state is `state`. */
LLM_RAND_FN float llm_rand_value(uint64_t state, uint64_t i)
{
    uint64_t z = state + (i + 1) * LLM_RAND_GOLDEN;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint32_t sum = (uint32_t)(z & 0xffff) + (uint32_t)((z >> 16) & 0xffff) +
                   (uint32_t)((z >> 32) & 0xffff) + (uint32_t)(z >> 48);
    float c = (float)sum - LLM_RAND_SUM_MEAN; /* exact: sum < 2^18 */
    return c * LLM_RAND_SCALE;
}

/* Element i of a tensor of fill kind `fill` (enum llm_rand_fill). */
LLM_RAND_FN float llm_rand_fill_value(uint64_t state, uint64_t i, int fill)
{
    return fill == LLM_RAND_NORMAL ? llm_rand_value(state, i) : fill == LLM_RAND_ONE ? 1.0f : 0.0f;
}

LLM_RAND_FN uint32_t llm_rand_f2u(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

LLM_RAND_FN float llm_rand_u2f(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* The fp8 e4m3 code of v / LLM_RAND_FP8_SCALE: llm_f32_to_e4m3's rounding
 * (nearest even, saturating at 448) for the finite values made here. */
LLM_RAND_FN uint8_t llm_rand_to_e4m3(float v)
{
    uint32_t x = llm_rand_f2u(v * (1.0f / LLM_RAND_FP8_SCALE));
    uint32_t sign = (x >> 24) & 0x80, r;
    x &= 0x7fffffff;
    if (x < (121u << 23)) { /* below 2^-6: a subnormal, a multiple of 2^-9 */
        r = (uint32_t)rintf(llm_rand_u2f(x) * 512.0f);
    } else {
        r = (x - (120u << 23) + 0x7ffff + ((x >> 20) & 1)) >> 20;
        r = r < 0x7e ? r : 0x7e;
    }
    return (uint8_t)(r | sign);
}

/* The int8 code of v / LLM_RAND_INT8_SCALE, rounded and clamped to +-127. */
LLM_RAND_FN int8_t llm_rand_to_i8(float v)
{
    float q = rintf(v * (1.0f / LLM_RAND_INT8_SCALE));
    return (int8_t)(q < -127.0f ? -127.0f : q > 127.0f ? 127.0f : q);
}

/* The int4 code of v / LLM_RAND_INT4_SCALE, rounded and clamped to [-8, 7],
 * as the low 4 bits (two's complement). */
LLM_RAND_FN uint8_t llm_rand_to_i4(float v)
{
    float q = rintf(v * (1.0f / LLM_RAND_INT4_SCALE));
    return (uint8_t)((int)(q < -8.0f ? -8.0f : q > 7.0f ? 7.0f : q) & 0xf);
}

/* Byte k of a packed int4 tensor of n elements: element 2k in the low
 * nibble, 2k + 1 (when < n) in the high one (llm/dtype.h). */
LLM_RAND_FN uint8_t llm_rand_i4_byte(uint64_t state, uint64_t k, uint64_t n, int fill)
{
    uint8_t lo = llm_rand_to_i4(llm_rand_fill_value(state, 2 * k, fill));
    uint8_t hi = 2 * k + 1 < n ? llm_rand_to_i4(llm_rand_fill_value(state, 2 * k + 1, fill)) : 0;
    return (uint8_t)(lo | hi << 4);
}

#ifndef __CUDACC__
/* enum llm_rand_fill of a canonical tensor name. */
int llm_rand_fill_of(const char *name);
/* The counter state of tensor `name` under `seed`. */
uint64_t llm_rand_state(uint64_t seed, const char *name);
/* dst[j] = element first + j, j < n. */
void llm_rand_fill(float *dst, size_t n, int fill, uint64_t state, uint64_t first);
/* A whole tensor of numel elements of type dt: f32, f16, bf16 (the values),
 * or a quantized weight's codes - f8e4m3, i8, i4 (packed; numel elements
 * in llm_dtype_nbytes bytes) - as above. */
int llm_rand_tensor(void *dst, int dt, uint64_t numel, const char *name, uint64_t seed);
/* Whether dt is one of the quantized weight types llm_rand_tensor makes. */
int llm_rand_is_quant(int dt);
/* A synthetic model's spec "CONFIG.json[:QUANT]" (llm_model_random): the
 * length of the config's path, and *quant the text after the ':' (NULL
 * when there is none).  QUANT is recognised when the text after the last
 * ':' has no '/' and no '.' (a config file's name has its ".json"). */
size_t llm_rand_spec_split(const char *spec, const char **quant);

/* A synthetic model's tensors (llm_model_random), in the order an artifact
 * of it lists them: the canonical ones, each quantized weight followed by
 * its side tensors, then the KV cache scales (llm-quantize's order).
 * Name k < count; 0 and NULL for a model that is not synthetic. */
struct llm_model;
size_t llm_model_random_count(const struct llm_model *m);
const char *llm_model_random_name(const struct llm_model *m, size_t k);
/* The float type random weights are made in when dt is not one (bf16). */
int llm_rand_dtype(int dt);
#endif

#ifdef __cplusplus
}
#endif
#endif
