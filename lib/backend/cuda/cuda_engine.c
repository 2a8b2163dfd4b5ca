/* cuda_engine.c - what llm-build asks of the GPU (llm/engine_artifact.h):
 * the device's compute capability and name, and cuBLASLt algorithm choices
 * measured for each matrix product of the model.
 *
 * Design: measurement runs on scratch buffers of the largest shape asked
 * for, filled once with a fixed pseudo-random pattern in [-1, 1) (sums stay
 * finite over repeated accumulating runs, and the tensor cores see ordinary
 * values rather than zeros), through the same descriptors the backend
 * builds (cu_gemm_tune in cuda_gemm.c), so a recorded algorithm is one the
 * backend can use as is.  This file is compiled in every build; without
 * CUDA it holds the two functions failing with LLM_EUNSUPPORTED, as
 * lib/backend/backend.c does for the backend itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_build_config.h"
#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/err.h"

#if defined(LLM_HAVE_CUDA) && LLM_HAVE_CUDA

#include "kernels/kernels.h"
#include "cuda_internal.h"

static int no_device(int device)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        cudaGetLastError();
        return llm_err_set(LLM_EUNSUPPORTED, "no CUDA device (%s)",
                           e != cudaSuccess ? cudaGetErrorName(e) : "none found");
    }
    if (device < 0 || device >= n)
        return llm_err_set(LLM_EINVAL, "cuda device %d: %d device%s present", device, n,
                           n == 1 ? "" : "s");
    return 0;
}

int llm_cuda_device_query(int device, int *cc_major, int *cc_minor, char *name, size_t cap)
{
    int rc = no_device(device);
    if (rc) return rc;
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, device));
    *cc_major = prop.major;
    *cc_minor = prop.minor;
    if (name && cap) snprintf(name, cap, "%s", prop.name);
    return 0;
}

/* Fill n elements of dt at dst with the pattern, through a host f32 chunk. */
static int fill(void *dst, int dt, uint64_t n, float *host, void *stage, uint64_t chunk,
                cudaStream_t st)
{
    size_t es = dt == LLM_DTYPE_F32 ? 4 : 2;
    for (uint64_t off = 0; off < n; off += chunk) {
        uint64_t k = n - off < chunk ? n - off : chunk;
        CK(cudaMemcpyAsync(stage, host, k * sizeof(float), cudaMemcpyHostToDevice, st));
        CK(llm_k_convert((char *)dst + off * es, dt, stage, LLM_DTYPE_F32, (int64_t)k, st));
    }
    CK(cudaStreamSynchronize(st));
    return 0;
}

struct tune_bufs {
    void *w, *x, *y, *bias, *bias32, *stage; /* biases in the compute dtype and in f32 */
    float *host;
};

static int tune_all(int dt, struct llm_gemm_choice *c, int n, uint64_t workspace, cudaStream_t st,
                    struct cu_gemm **g, struct tune_bufs *b)
{
    size_t es = dt == LLM_DTYPE_F32 ? 4 : 2;
    uint64_t w_el = 0, x_el = 0, y_bytes = 0, b_el = 0;
    for (int i = 0; i < n; i++) {
        size_t ys = c[i].out_dtype == LLM_DTYPE_F32 ? 4 : 2;
        if (c[i].out_dtype != dt && c[i].out_dtype != LLM_DTYPE_F32)
            return llm_err_set(LLM_EINVAL,
                               "gemm tuning: product %d writes %s with compute dtype "
                               "%s",
                               i, llm_dtype_name(c[i].out_dtype), llm_dtype_name(dt));
        uint64_t we = (uint64_t)c[i].n * (uint64_t)c[i].k;
        uint64_t xe = (uint64_t)c[i].m * (uint64_t)c[i].ldx;
        uint64_t yb = (uint64_t)c[i].m * (uint64_t)c[i].ldy * ys;
        if (we > w_el) w_el = we;
        if (xe > x_el) x_el = xe;
        if (yb > y_bytes) y_bytes = yb;
        if ((uint64_t)c[i].n > b_el) b_el = (uint64_t)c[i].n;
    }
    const uint64_t chunk = (uint64_t)1 << 20;
    if (!(b->host = malloc(chunk * sizeof(float))))
        return llm_err_set(LLM_ENOMEM, "gemm tuning: out of memory");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < chunk; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        b->host[i] = (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
    }
    CK(cudaMalloc(&b->stage, chunk * sizeof(float)));
    CK(cudaMalloc(&b->w, w_el * es + 256));
    CK(cudaMalloc(&b->x, x_el * es + 256));
    CK(cudaMalloc(&b->y, y_bytes + 256));
    CK(cudaMalloc(&b->bias, b_el * es + 256));
    CK(cudaMalloc(&b->bias32, b_el * 4 + 256));
    int rc;
    if ((rc = fill(b->w, dt, w_el, b->host, b->stage, chunk, st)) ||
        (rc = fill(b->x, dt, x_el, b->host, b->stage, chunk, st)) ||
        (rc = fill(b->bias, dt, b_el, b->host, b->stage, chunk, st)) ||
        (rc = fill(b->bias32, LLM_DTYPE_F32, b_el, b->host, b->stage, chunk, st)))
        return rc;
    CK(cudaMemsetAsync(b->y, 0, y_bytes + 256, st));
    if ((rc = cu_gemm_create(g, dt, (size_t)workspace))) return rc;
    for (int i = 0; i < n; i++) {
        const void *bias = !c[i].bias ? NULL : c[i].out_dtype == dt ? b->bias : b->bias32;
        if ((rc = cu_gemm_tune(*g, st, &c[i], b->w, b->x, b->y, bias))) return rc;
        /* accumulating runs grow y; start each product from zero */
        CK(cudaMemsetAsync(b->y, 0, y_bytes + 256, st));
    }
    CK(cudaStreamSynchronize(st));
    return 0;
}

int llm_cuda_gemm_tune(int device, int compute_dtype, struct llm_gemm_choice *c, int n,
                       uint64_t workspace, uint64_t *version)
{
    int rc = no_device(device);
    if (rc) return rc;
    if (compute_dtype != LLM_DTYPE_F16 && compute_dtype != LLM_DTYPE_BF16 &&
        compute_dtype != LLM_DTYPE_F32)
        return llm_err_set(LLM_EINVAL, "gemm tuning: compute dtype %s (f16, bf16 or f32)",
                           llm_dtype_name(compute_dtype));
    CK(cudaSetDevice(device));
    cudaStream_t st = NULL;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    struct cu_gemm *g = NULL;
    struct tune_bufs b = {0};
    rc = tune_all(compute_dtype, c, n, workspace, st, &g, &b);
    if (st) cudaStreamSynchronize(st);
    cu_gemm_destroy(g);
    cudaFree(b.w);
    cudaFree(b.x);
    cudaFree(b.y);
    cudaFree(b.bias);
    cudaFree(b.bias32);
    cudaFree(b.stage);
    free(b.host);
    cudaStreamDestroy(st);
    if (!rc && version) *version = (uint64_t)cublasLtGetVersion();
    return rc;
}

#else /* no CUDA in this build */

int llm_cuda_device_query(int device, int *cc_major, int *cc_minor, char *name, size_t cap)
{
    (void)device;
    (void)cc_major;
    (void)cc_minor;
    (void)name;
    (void)cap;
    return llm_err_set(LLM_EUNSUPPORTED, "no CUDA device (built without CUDA)");
}

int llm_cuda_gemm_tune(int device, int compute_dtype, struct llm_gemm_choice *c, int n,
                       uint64_t workspace, uint64_t *version)
{
    (void)device;
    (void)compute_dtype;
    (void)c;
    (void)n;
    (void)workspace;
    (void)version;
    return llm_err_set(LLM_EUNSUPPORTED, "no CUDA device (built without CUDA)");
}

#endif
