/* bench_dtype.c - throughput of the bulk dtype conversions on one core.
 *
 * Converts a buffer of N elements (default 16 Mi, or argv[1]) between f32 and
 * each narrow float type and prints, per direction, the best of five runs as
 * elements per second and bytes moved (read + written) per second.  The input
 * is a spread of normal, subnormal and special values so that no branch-free
 * path is favoured.  Registered as a Meson benchmark, not a test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm/dtype.h"
#include "llm/err.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double best_of(void *dst, int ddt, const void *src, int sdt, size_t n)
{
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        int rc = llm_convert(dst, ddt, src, sdt, n);
        double t = now() - t0;
        if (rc < 0) {
            fprintf(stderr, "bench_dtype: %s -> %s: %s\n", llm_dtype_name(sdt), llm_dtype_name(ddt),
                    llm_errmsg());
            exit(1);
        }
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : (size_t)16 << 20;
    float *f = malloc(n * sizeof(float));
    float *back = malloc(n * sizeof(float));
    void *narrow = malloc(n * sizeof(double));
    if (!f || !back || !narrow) {
        fprintf(stderr, "bench_dtype: out of memory for %zu elements\n", n);
        return 1;
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float v = (float)((int32_t)s >> 8) * 0x1p-20f; /* mostly normals around +-2^3 */
        if ((s & 0xff) == 0) v *= 0x1p-30f;            /* some f16/fp8 subnormals */
        memcpy(&f[i], &v, sizeof(v));
    }
    const int types[] = {LLM_DTYPE_BF16, LLM_DTYPE_F16, LLM_DTYPE_F8E4M3, LLM_DTYPE_F8E5M2,
                         LLM_DTYPE_F64};
    printf("%zu elements, best of 5, one thread\n", n);
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        int dt = types[k];
        double esz = llm_dtype_bits(dt) / 8.0;
        double t_enc = best_of(narrow, dt, f, LLM_DTYPE_F32, n);
        double t_dec = best_of(back, LLM_DTYPE_F32, narrow, dt, n);
        printf("f32 -> %-7s %7.3f Gelem/s %7.2f GB/s\n", llm_dtype_name(dt), n / t_enc * 1e-9,
               n * (4 + esz) / t_enc * 1e-9);
        printf("%-7s -> f32 %7.3f Gelem/s %7.2f GB/s\n", llm_dtype_name(dt), n / t_dec * 1e-9,
               n * (4 + esz) / t_dec * 1e-9);
    }
    /* a pair without f32 on either side goes through the staging buffer */
    best_of(narrow, LLM_DTYPE_BF16, f, LLM_DTYPE_F32, n);
    double t = best_of(back, LLM_DTYPE_F16, narrow, LLM_DTYPE_BF16, n);
    printf("bf16 -> f16  %7.3f Gelem/s %7.2f GB/s\n", n / t * 1e-9, n * 4.0 / t * 1e-9);
    free(f);
    free(back);
    free(narrow);
    return 0;
}
