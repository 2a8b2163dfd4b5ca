/* test_fill_q.c - a synthetic quantized weight made on the device
 * (llm_k_fill_random with stored_dt F8E4M3, I8 or I4) is byte for byte the
 * host's (llm_rand_tensor, what the CPU backend and llm-convert --random
 * use): for each format, odd and even sizes (an int4 tensor's last lone
 * nibble), a size past one grid's stride, two names and two seeds, and
 * the tensor's second half made alone (first > 0: an expert of a stack,
 * which the CUDA backend uploads on its own); a dst_dt that is not the
 * stored one, and an int4 part from an odd element, are refused.  Exits 77 (skip) without a
 * GPU.
 *
 * Wiring (tests/gpu/meson.build, beside gpu_ops):
 *   test_gpu_fill_q = executable('test_gpu_fill_q', 'test_fill_q.c',
 *     include_directories : inc, dependencies : [llm_dep])
 *   test('gpu_fill_q', test_gpu_fill_q, suite : 'gpu', env : llm_test_env)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/random.h"
#include "kernels/kernels.h"

#define CUDA(x)                                                                                    \
    do {                                                                                           \
        cudaError_t e_ = (cudaError_t)(x);                                                         \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorName(e_));       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int n_cases, n_failed;

/* Elements [part, n) of the tensor made on the device against the host's. */
static void one(int dt, uint64_t n, uint64_t part, const char *name, uint64_t seed)
{
    uint64_t all, skip;
    llm_dtype_nbytes(dt, n, &all);
    llm_dtype_nbytes(dt, part, &skip);
    const uint64_t nbytes = all - skip;
    uint8_t *full = malloc(all), *got = malloc(nbytes);
    void *dev = NULL;
    if (!full || !got || llm_rand_tensor(full, dt, n, name, seed)) {
        fprintf(stderr, "host values: %s\n", llm_errmsg());
        exit(1);
    }
    const uint8_t *host = full + skip;
    CUDA(cudaMalloc(&dev, nbytes));
    CUDA(cudaMemset(dev, 0xa5, nbytes));
    CUDA(llm_k_fill_random(dev, dt, dt, (int64_t)(n - part), (int64_t)part,
                           llm_rand_state(seed, name), llm_rand_fill_of(name), 0));
    CUDA(cudaDeviceSynchronize());
    CUDA(cudaMemcpy(got, dev, nbytes, cudaMemcpyDeviceToHost));
    uint64_t diff = 0, first = nbytes;
    for (uint64_t k = 0; k < nbytes; k++)
        if (host[k] != got[k]) {
            if (!diff) first = k;
            diff++;
        }
    n_cases++;
    if (diff) {
        n_failed++;
        printf("FAIL FILL_RANDOM(%s, %s, n=%llu from %llu, seed %llu): %llu of %llu bytes differ, "
               "first at %llu (host %02x, device %02x)\n",
               llm_dtype_name(dt), name, (unsigned long long)n, (unsigned long long)part,
               (unsigned long long)seed, (unsigned long long)diff, (unsigned long long)nbytes,
               (unsigned long long)first, host[first], got[first]);
    } else {
        printf("ok FILL_RANDOM(%s, %s, n=%llu from %llu, seed %llu): %llu bytes identical\n",
               llm_dtype_name(dt), name, (unsigned long long)n, (unsigned long long)part,
               (unsigned long long)seed, (unsigned long long)nbytes);
    }
    cudaFree(dev);
    free(full);
    free(got);
}

/* A call that must be refused (rc != 0). */
static void refused(const char *what, int rc)
{
    cudaGetLastError();
    n_cases++;
    if (rc == 0) {
        n_failed++;
        printf("FAIL FILL_RANDOM(%s) accepted\n", what);
    } else {
        printf("ok FILL_RANDOM(%s) refused\n", what);
    }
}

int main(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    static const int dts[] = {LLM_DTYPE_F8E4M3, LLM_DTYPE_I8, LLM_DTYPE_I4};
    static const char *const names[] = {"transformer.layers.3.attention.qkv.weight",
                                        "transformer.layers.0.mlp.proj.weight"};
    static const uint64_t sizes[] = {1, 7, 4096, 300007, (uint64_t)4096 * 11008 + 1};
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < 5; s++)
            for (int k = 0; k < 2; k++) {
                one(dts[d], sizes[s], 0, names[k], k ? 1234567 : 0);
                if (sizes[s] > 2)
                    one(dts[d], sizes[s], sizes[s] / 4 * 2, names[k], k ? 1234567 : 0);
            }
    /* quantized codes are written only as themselves, and int4 parts start at a byte */
    void *dev = NULL;
    CUDA(cudaMalloc(&dev, 64));
    refused("i8 as bf16",
            llm_k_fill_random(dev, LLM_DTYPE_BF16, LLM_DTYPE_I8, 16, 0, 1, LLM_RAND_NORMAL, 0));
    refused("i4 from element 3",
            llm_k_fill_random(dev, LLM_DTYPE_I4, LLM_DTYPE_I4, 16, 3, 1, LLM_RAND_NORMAL, 0));
    cudaFree(dev);
    printf("%d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}
