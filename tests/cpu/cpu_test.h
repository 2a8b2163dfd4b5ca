/* cpu_test.h - small helpers shared by the CPU backend tests: a seeded RNG,
 * failure counting that reports the first mismatch of each check loudly,
 * and float distance measures. */
#ifndef LLM_CPU_TEST_H
#define LLM_CPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (n_fail++ < 20) {                                                                   \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fputc('\n', stderr);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static uint64_t rng_s = 0x9e3779b97f4a7c15ull;

static inline void rng_seed(uint64_t s)
{
    rng_s = s * 0x9e3779b97f4a7c15ull + 1;
}

static inline uint64_t rng_u64(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static inline float rng_f(void)
{
    return (float)((double)(rng_u64() >> 11) * 0x1p-52 - 1.0);
}

static inline int rng_int(int n)
{
    return (int)(rng_u64() % (uint64_t)n);
}

static inline void rng_fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_f() * scale;
}

/* Distance in units in the last place between two finite floats. */
static inline int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
    int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

/* max |a-b| / max(max|b|, tiny) over n values */
static inline double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0.0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / mb;
}

static inline int finish(const char *name)
{
    if (n_fail) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, n_fail);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
