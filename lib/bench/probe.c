/* probe.c - the device's ceilings (copy bandwidth, matrix-product rate)
 * measured at start, and peak memory.
 *
 * Design choice: a fraction of peak is only honest against a ceiling
 * measured on the same machine in the same run, with the kernels that the
 * backend itself would use at their best: on the CPU the backend's own
 * fp32 linear (cache-blocked, vectorised, threaded) on a compute-bound
 * shape and a threaded memcpy; on a GPU cudaMemcpy device to device and a
 * large bf16 product through the same cuBLASLt path as the CUDA backend.
 * Bandwidth counts bytes read plus bytes written, as the published H100
 * copy figure does.  The CPU probes keep the best of several runs; the GPU
 * probes time ten back-to-back runs on random data (as the kernel
 * benchmarks in bench/gpu do), so that the ceilings agree with theirs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llm/bench.h"
#include "llm/dtype.h"
#include "llm/engine.h"
#include "llm/err.h"
#include "llm_build_config.h"
#include "lib/backend/cpu/cpu_ops.h"

#if defined(LLM_HAVE_CUDA) && LLM_HAVE_CUDA
#define BENCH_CUDA 1
#include "lib/backend/cuda/cuda_internal.h"
#else
#define BENCH_CUDA 0
#endif

#define PROBE_RUNS 5

/* ---- CPU ----------------------------------------------------------------- */

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

int llm_bench_probe_cpu(struct llm_bench_ceiling *c, int n_threads)
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
        double t0 = llm_engine_now();
        par_copy(r & 1 ? a : b, r & 1 ? b : a, sz, n_threads);
        double t = llm_engine_now() - t0;
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
        double t0 = llm_engine_now();
        rc = llm_cpu_linear(y, x, n, k, w, LLM_DTYPE_F32, m, NULL, LLM_DTYPE_F32);
        double t = llm_engine_now() - t0;
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

/* ---- CUDA ---------------------------------------------------------------- */

#if BENCH_CUDA
/* Fill n bytes of device memory with pseudo-random bf16 values of both signs
 * and magnitudes near 0.01 .. 1: a matrix product over constant data draws
 * less power and runs faster than one over real weights, which would
 * inflate the ceiling. */
static int fill_random(void *dst, size_t n, uint64_t seed)
{
    const size_t chunk = (size_t)64 << 20;
    uint16_t *h = malloc(chunk);
    if (!h) return llm_err_set(LLM_ENOMEM, "GEMM probe: out of memory");
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < chunk / 2; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* bf16: random sign, biased exponent 120..127 (2^-7 .. 2^0), random mantissa */
        uint32_t ex = 120u + (uint32_t)((x >> 20) & 7);
        h[i] = (uint16_t)(((x >> 32) & 0x8000) | (ex << 7) | (x & 0x7f));
    }
    int rc = 0;
    for (size_t off = 0; off < n && !rc; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        cudaError_t e = cudaMemcpy((char *)dst + off, h, k, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) rc = cu_fail(CU_LIB_RT, (int)e, "cudaMemcpy", __FILE__, __LINE__);
    }
    free(h);
    return rc;
}

/* Mean time of reps back-to-back runs of fn (after one untimed run), in ms. */
#define TIME_LOOP(ms_out, reps, st, ev, body)                                                      \
    do {                                                                                           \
        body;                                                                                      \
        CK(cudaEventRecord(ev[0], st));                                                            \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            body;                                                                                  \
        }                                                                                          \
        CK(cudaEventRecord(ev[1], st));                                                            \
        CK(cudaEventSynchronize(ev[1]));                                                           \
        float ms_;                                                                                 \
        CK(cudaEventElapsedTime(&ms_, ev[0], ev[1]));                                              \
        ms_out = ms_ / (reps);                                                                     \
    } while (0)

static int cuda_probe(struct llm_bench_ceiling *c, int device, void **bufs, cudaStream_t *st,
                      cudaEvent_t ev[2], struct cu_gemm **g)
{
    const int reps = 10;
    CK(cudaSetDevice(device));
    CK(cudaStreamCreateWithFlags(st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&ev[0]));
    CK(cudaEventCreate(&ev[1]));
    const size_t sz = (size_t)2 << 30;
    CK(cudaMalloc(&bufs[0], sz));
    CK(cudaMalloc(&bufs[1], sz));
    int rc = fill_random(bufs[0], sz, 1);
    if (rc) return rc;
    CK(cudaMemsetAsync(bufs[1], 0, sz, *st));
    float ms;
    int flip = 0;
    TIME_LOOP(ms, reps, *st, ev, {
        CK(cudaMemcpyAsync(bufs[flip], bufs[!flip], sz, cudaMemcpyDeviceToDevice, *st));
        flip = !flip;
    });
    c->mem_bw = 2.0 * (double)sz / (ms * 1e-3);
    snprintf(c->bw_how, sizeof c->bw_how, "cudaMemcpy device to device 2 GiB, mean of %d", reps);
    CK(cudaFree(bufs[0]));
    CK(cudaFree(bufs[1]));
    bufs[0] = bufs[1] = NULL;

    const int N = 8192;
    const size_t msz = (size_t)N * N * 2;
    for (int i = 0; i < 3; i++) {
        CK(cudaMalloc(&bufs[i], msz));
        if (i < 2 && (rc = fill_random(bufs[i], msz, (uint64_t)i + 2))) return rc;
    }
    if ((rc = cu_gemm_create(g, LLM_DTYPE_BF16, (size_t)32 << 20))) return rc;
    TIME_LOOP(ms, reps, *st, ev, {
        rc =
            cu_gemm_run(*g, *st, N, N, N, bufs[0], N, bufs[1], NULL, bufs[2], N, LLM_DTYPE_BF16, 0);
        if (rc) return rc;
    });
    c->flops = 2.0 * N * (double)N * N / (ms * 1e-3);
    snprintf(c->flops_how, sizeof c->flops_how, "bf16 cuBLASLt %d^3 on random data, mean of %d", N,
             reps);
    return 0;
}
#endif

int llm_bench_probe_cuda(struct llm_bench_ceiling *c, int device)
{
    memset(c, 0, sizeof(*c));
#if BENCH_CUDA
    void *bufs[3] = {NULL, NULL, NULL};
    cudaStream_t st = NULL;
    cudaEvent_t ev[2] = {NULL, NULL};
    struct cu_gemm *g = NULL;
    int rc = cuda_probe(c, device, bufs, &st, ev, &g);
    if (st) cudaStreamSynchronize(st);
    cu_gemm_destroy(g);
    for (int i = 0; i < 3; i++)
        cudaFree(bufs[i]);
    for (int i = 0; i < 2; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
    if (st) cudaStreamDestroy(st);
    return rc;
#else
    (void)device;
    return llm_err_set(LLM_EUNSUPPORTED, "built without CUDA");
#endif
}

/* ---- peak memory ------------------------------------------------------------ */

int llm_bench_mem_reset(int cuda, int device)
{
    (void)device;
    if (cuda) return 0; /* device memory is sampled, nothing to reset */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

int llm_bench_mem_peak(int cuda, int device, uint64_t *bytes)
{
    *bytes = 0;
    if (cuda) {
#if BENCH_CUDA
        size_t fr, tot;
        CK(cudaSetDevice(device));
        CK(cudaMemGetInfo(&fr, &tot));
        *bytes = (uint64_t)(tot - fr);
        return 0;
#else
        return llm_err_set(LLM_EUNSUPPORTED, "built without CUDA");
#endif
    }
    (void)device;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return llm_err_set(LLM_EIO, "'/proc/self/status': %s", strerror(errno));
    char line[256];
    int rc = llm_err_set(LLM_ENOTFOUND, "'/proc/self/status': no VmHWM");
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            *bytes = (uint64_t)kb * 1024;
            rc = 0;
            llm_err_clear();
            break;
        }
    }
    fclose(f);
    return rc;
}
