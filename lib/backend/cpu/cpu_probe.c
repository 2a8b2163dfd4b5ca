/* cpu_probe.c - the CPU's ceilings measured with the CPU backend's own
 * code: a threaded memcpy for bandwidth and the backend's fp32 linear on a
 * compute-bound shape for the matrix-product rate (llm/backend.h).  Each
 * keeps the best of several runs (the first run faults pages in). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llm/backend.h"
#include "llm/err.h"
#include "cpu_ops.h"

#define PROBE_RUNS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void par_copy(char *dst, const char *src, size_t n, int threads)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t a = n / (size_t)nt * (size_t)t,
               b = t == nt - 1 ? n : n / (size_t)nt * (size_t)(t + 1);
        memcpy(dst + a, src + a, b - a);
    }
#else
    (void)threads;
    memcpy(dst, src, n);
#endif
}

int llm_backend_cpu_probe(struct llm_backend_ceiling *c, int n_threads)
{
    memset(c, 0, sizeof(*c));
#ifdef _OPENMP
    if (n_threads <= 0) n_threads = omp_get_num_procs();
#else
    n_threads = 1;
#endif
    const size_t sz = (size_t)64 << 20;
    char *a = malloc(sz), *b = malloc(sz);
    if (!a || !b) {
        free(a);
        free(b);
        return llm_err_set(LLM_ENOMEM, "bandwidth probe: out of memory");
    }
    memset(a, 1, sz);
    memset(b, 2, sz);
    double best = 1e30;
    for (int r = 0; r < PROBE_RUNS + 1; r++) {
        double t0 = now();
        par_copy(r & 1 ? a : b, r & 1 ? b : a, sz, n_threads);
        double t = now() - t0;
        if (r > 0 && t < best) best = t; /* the first run faults pages in */
    }
    free(a);
    free(b);
    c->mem_bw = 2.0 * (double)sz / best;
    snprintf(c->bw_how, sizeof c->bw_how, "memcpy 64 MiB, %d thread%s, best of %d", n_threads,
             n_threads == 1 ? "" : "s", PROBE_RUNS);

    const int n = 256, k = 1024, m = 1024;
    float *x = malloc((size_t)n * k * sizeof(float)), *w = malloc((size_t)m * k * sizeof(float));
    float *y = malloc((size_t)n * m * sizeof(float));
    if (!x || !w || !y) {
        free(x);
        free(w);
        free(y);
        return llm_err_set(LLM_ENOMEM, "GEMM probe: out of memory");
    }
    for (size_t i = 0; i < (size_t)n * k; i++)
        x[i] = (float)((i * 7919u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)m * k; i++)
        w[i] = (float)((i * 104729u) % 1000) * 1e-3f - 0.5f;
#ifdef _OPENMP
    int prev = omp_get_max_threads();
    omp_set_num_threads(n_threads);
#endif
    best = 1e30;
    int rc = 0;
    for (int r = 0; r < PROBE_RUNS + 1 && !rc; r++) {
        double t0 = now();
        rc = llm_cpu_linear(y, x, n, k, w, LLM_DTYPE_F32, m, NULL, LLM_DTYPE_F32);
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
#ifdef _OPENMP
    omp_set_num_threads(prev);
#endif
    free(x);
    free(w);
    free(y);
    if (rc) return rc;
    c->flops = 2.0 * n * k * m / best;
    snprintf(c->flops_how, sizeof c->flops_how,
             "fp32 linear %dx%dx%d (%s), %d thread%s, best of %d", n, k, m, llm_cpu_isa(),
             n_threads, n_threads == 1 ? "" : "s", PROBE_RUNS);
    return 0;
}

