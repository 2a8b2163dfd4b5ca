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
 */
#ifndef LLM_RANDOM_H
#define LLM_RANDOM_H

#include <stddef.h>
#include <stdint.h>

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

#ifndef __CUDACC__
/* enum llm_rand_fill of a canonical tensor name. */
int llm_rand_fill_of(const char *name);
/* The counter state of tensor `name` under `seed`. */
uint64_t llm_rand_state(uint64_t seed, const char *name);
/* dst[j] = element first + j, j < n. */
void llm_rand_fill(float *dst, size_t n, int fill, uint64_t state, uint64_t first);
/* A whole tensor of numel elements of type dt (f32, f16, bf16). */
int llm_rand_tensor(void *dst, int dt, uint64_t numel, const char *name, uint64_t seed);
/* The float type random weights are made in when dt is not one (bf16). */
int llm_rand_dtype(int dt);
#endif

#ifdef __cplusplus
}
#endif
#endif
