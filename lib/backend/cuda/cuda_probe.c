/* cuda_probe.c - the GPU's ceilings measured with the CUDA backend's own
 * paths (llm/backend.h): cudaMemcpy device to device for bandwidth (bytes
 * read plus written, as the published copy figures count them) and large
 * bf16, fp8 and int8 products through the same cuBLASLt wrapper the backend
 * uses, timed
 * as ten back-to-back runs on random data (as the kernel benchmarks in
 * bench/gpu do, so that the ceilings agree with theirs); and the device
 * memory in use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "cuda_internal.h"

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

static int cuda_probe(struct llm_backend_ceiling *c, int device, void **bufs, cudaStream_t *st,
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
    /* the heuristic's choices, as before products were measured at first use: on
     * these random bits the choice so measured ran the fp8 product slower over the
     * ten runs after (1,465 against 1,710 TFLOP/s, same H200) */
    cu_gemm_set_online(*g, 0);
    TIME_LOOP(ms, reps, *st, ev, {
        rc =
            cu_gemm_run(*g, *st, N, N, N, bufs[0], N, bufs[1], NULL, bufs[2], N, LLM_DTYPE_BF16, 0);
        if (rc) return rc;
    });
    c->flops = 2.0 * N * (double)N * N / (ms * 1e-3);
    snprintf(c->flops_how, sizeof c->flops_how, "bf16 cuBLASLt %d^3 on random data, mean of %d", N,
             reps);
    /* the 8-bit products as the backend runs them (cu_gemm_run8): fp8 with per-tensor
     * scales, int8 into int32 with the scales after; the random bf16 bits read as
     * 8-bit numbers (finite: no byte of these is an e4m3 NaN except by chance, which
     * costs nothing) */
    float *sc = NULL;
    void *acc = NULL;
    const size_t acc_bytes = (size_t)N * N * 4;
    if (cudaMalloc((void **)&sc, sizeof(float) * N) != cudaSuccess ||
        cudaMalloc(&acc, acc_bytes) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(sc);
        return 0; /* no room: the 8-bit rates stay unmeasured */
    }
    float *ones = malloc(sizeof(float) * N);
    if (!ones) rc = llm_err_set(LLM_ENOMEM, "GEMM probe: out of memory");
    for (int i = 0; i < N && ones; i++) ones[i] = 1.0f;
    if (ones && cudaMemcpy(sc, ones, sizeof(float) * N, cudaMemcpyHostToDevice) != cudaSuccess)
        rc = cu_fail(CU_LIB_RT, (int)cudaGetLastError(), "cudaMemcpy", __FILE__, __LINE__);
    free(ones);
    for (int a = LLM_K_A_FP8; a <= LLM_K_A_INT8 && !rc; a++) {
        TIME_LOOP(ms, reps, *st, ev, {
            rc = cu_gemm_run8(*g, *st, a, 1, N, N, N, bufs[0], sc, bufs[1], sc, NULL, bufs[2], N,
                              LLM_DTYPE_BF16, 0, acc, acc_bytes);
            if (rc) break;
        });
        if (rc) break;
        double r = 2.0 * N * (double)N * N / (ms * 1e-3);
        if (a == LLM_K_A_FP8) {
            c->flops_fp8 = r;
            snprintf(c->fp8_how, sizeof c->fp8_how, "fp8 cuBLASLt %d^3 (per-tensor scales%s), "
                     "mean of %d", N, cu_gemm_fp8_fast(*g) ? ", fast accumulation" : "", reps);
        } else {
            c->flops_int8 = r;
            snprintf(c->int8_how, sizeof c->int8_how, "int8 cuBLASLt %d^3 into int32, scaled "
                     "after, mean of %d", N, reps);
        }
    }
    cudaFree(sc);
    cudaFree(acc);
    return rc;
}

int llm_backend_cuda_probe(struct llm_backend_ceiling *c, int device)
{
    memset(c, 0, sizeof(*c));
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
}


int llm_backend_cuda_mem_used(int device, uint64_t *bytes)
{
    size_t fr, tot;
    *bytes = 0;
    CK(cudaSetDevice(device));
    CK(cudaMemGetInfo(&fr, &tot));
    *bytes = (uint64_t)(tot - fr);
    return 0;
}
