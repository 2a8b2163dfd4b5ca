/* philox.h - Philox4x32-10, the counter-based random number generator the
 * samplers share (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011; the same function as Random123's philox4x32_10 and
 * cuRAND's Philox).
 *
 * Design choice: a counter-based generator has no state to carry from one
 * token to the next, so a random draw is a pure function of (key, counter).
 * The samplers key it with the request's 64-bit seed and set the counter to
 * (token index, stream), which makes a request's draws independent of the
 * batch it runs in, of preemption and recomputation, and of the device.
 * Header-only so that the CPU reference and the CUDA kernels compile the
 * very same code (__host__ __device__ under nvcc).
 *
 * Counter words: c[0] = index low 32 bits, c[1] = index high 32 bits,
 * c[2] = stream, c[3] = 0.  Key words: k[0] = seed low, k[1] = seed high.
 * The uniform double takes the top 53 bits of (x[0] << 32 | x[1]).
 */
#ifndef LLM_PHILOX_H
#define LLM_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define LLM_PHILOX_FN __host__ __device__ static inline
#else
#define LLM_PHILOX_FN static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_PHILOX_M0 0xD2511F53u
#define LLM_PHILOX_M1 0xCD9E8D57u
#define LLM_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define LLM_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

/* High 32 bits of the 64-bit product a * b. */
LLM_PHILOX_FN uint32_t llm_philox_mulhi(uint32_t a, uint32_t b)
{
#ifdef __CUDA_ARCH__
    return __umulhi(a, b);
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

/* One Philox4x32 block: ten rounds over ctr with key, result in out. */
LLM_PHILOX_FN void llm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                                     uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += LLM_PHILOX_W0;
            k1 += LLM_PHILOX_W1;
        }
        uint32_t hi0 = llm_philox_mulhi(LLM_PHILOX_M0, c0), lo0 = LLM_PHILOX_M0 * c0;
        uint32_t hi1 = llm_philox_mulhi(LLM_PHILOX_M1, c2), lo1 = LLM_PHILOX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The four words for (seed, stream, index). */
LLM_PHILOX_FN void llm_philox_block(uint64_t seed, uint32_t stream, uint64_t index,
                                    uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), stream, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    llm_philox4x32_10(ctr, key, out);
}

/* Uniform double in [0, 1) with 53 random bits: the u of sample.h. */
LLM_PHILOX_FN double llm_philox_uniform(uint64_t seed, uint32_t stream, uint64_t index)
{
    uint32_t x[4];
    llm_philox_block(seed, stream, index, x);
    uint64_t bits = (((uint64_t)x[0] << 32) | x[1]) >> 11;
    return (double)bits * (1.0 / 9007199254740992.0); /* 2^-53 */
}

#ifdef __cplusplus
}
#endif
#endif
