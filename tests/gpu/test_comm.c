/* test_comm.c - NCCL through the communicator seam (llm/comm.h), on every
 * GPU of the machine, against sums made on the CPU; then the CUDA backend
 * with its reduction steps running through a one-rank NCCL communicator
 * must give the logits it gives without them, bit for bit.  Exit 77 without
 * a GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/log.h"
#include "llm/model.h"
#include "kernels/kernels.h"
#include "tests/formats/tcheck.h"

#define MAXD 16

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* all_reduce, all_gather, broadcast (and send/recv between pairs) over n devices */
static void collectives(int n, int dtype, size_t count)
{
    struct llm_comm *c[MAXD] = {0};
    int rc = llm_comm_nccl_all(c, n);
    CHECK(rc == 0, "NCCL over %d devices: %s", n, llm_errmsg());
    if (rc) return;
    size_t es = (size_t)llm_dtype_bits(dtype) / 8;
    float *host = malloc(sizeof(float) * count * (size_t)n), *sum = calloc(count, sizeof(float));
    void *hbuf = malloc(es * count * (size_t)n), *dev[MAXD] = {0}, *gat[MAXD] = {0};
    cudaStream_t st[MAXD];
    unsigned seed = 7u + (unsigned)dtype;
    for (int r = 0; r < n; r++) {
        float *h = host + (size_t)r * count;
        for (size_t i = 0; i < count; i++)
            h[i] = frand(&seed);
        /* what the device holds, rounded to dtype, is what the sum is of */
        llm_convert((char *)hbuf + (size_t)r * count * es, dtype, h, LLM_DTYPE_F32, count);
        llm_convert(h, LLM_DTYPE_F32, (char *)hbuf + (size_t)r * count * es, dtype, count);
        for (size_t i = 0; i < count; i++)
            sum[i] += h[i];
        cudaSetDevice(r);
        cudaStreamCreate(&st[r]);
        cudaMalloc(&dev[r], es * count);
        cudaMalloc(&gat[r], es * count * (size_t)n);
        cudaMemcpy(dev[r], (char *)hbuf + (size_t)r * count * es, es * count,
                   cudaMemcpyHostToDevice);
    }
    /* all_gather first (the inputs intact), then all_reduce in place */
    llm_comm_group(1);
    for (int r = 0; r < n; r++)
        c[r]->ops->all_gather(c[r], dev[r], gat[r], count, dtype, st[r]);
    llm_comm_group(0);
    llm_comm_group(1);
    for (int r = 0; r < n; r++)
        c[r]->ops->all_reduce(c[r], dev[r], count, dtype, st[r]);
    llm_comm_group(0);
    void *back = malloc(es * count * (size_t)n);
    float *got = malloc(sizeof(float) * count);
    double tol = dtype == LLM_DTYPE_F32 ? 1e-6 : dtype == LLM_DTYPE_BF16 ? 1.6e-2 : 2e-3;
    for (int r = 0; r < n; r++) {
        cudaSetDevice(r);
        CHECK(cudaStreamSynchronize(st[r]) == cudaSuccess, "stream %d", r);
        cudaMemcpy(back, gat[r], es * count * (size_t)n, cudaMemcpyDeviceToHost);
        CHECK(memcmp(back, hbuf, es * count * (size_t)n) == 0,
              "%s all_gather on device %d: every rank's values, in rank order",
              llm_dtype_name(dtype), r);
        cudaMemcpy(back, dev[r], es * count, cudaMemcpyDeviceToHost);
        llm_convert(got, LLM_DTYPE_F32, back, dtype, count);
        double worst = 0;
        for (size_t i = 0; i < count; i++) {
            double e = fabs(got[i] - sum[i]) / (fabs(sum[i]) > 1 ? fabs(sum[i]) : 1.0);
            worst = e > worst ? e : worst;
        }
        CHECK(worst <= tol, "%s all_reduce on device %d of %d: worst relative error %.2e > %.1e",
              llm_dtype_name(dtype), r, n, worst, tol);
    }
    /* broadcast rank n-1's gather buffer head to everyone */
    llm_comm_group(1);
    for (int r = 0; r < n; r++)
        c[r]->ops->broadcast(c[r], gat[r], es * count, n - 1, st[r]);
    llm_comm_group(0);
    for (int r = 0; r < n; r++) {
        cudaSetDevice(r);
        cudaStreamSynchronize(st[r]);
        cudaMemcpy(back, gat[r], es * count, cudaMemcpyDeviceToHost);
        CHECK(memcmp(back, (char *)hbuf + (size_t)(n - 1) * count * es, es * count) == 0,
              "broadcast from rank %d to device %d", n - 1, r);
    }
    if (n >= 2) { /* rank 0 -> 1: its original values */
        llm_comm_group(1);
        c[0]->ops->send(c[0], gat[0], es * count, 1, st[0]);
        c[1]->ops->recv(c[1], dev[1], es * count, 0, st[1]);
        llm_comm_group(0);
        cudaSetDevice(1);
        cudaStreamSynchronize(st[1]);
        cudaMemcpy(back, dev[1], es * count, cudaMemcpyDeviceToHost);
        CHECK(memcmp(back, (char *)hbuf + (size_t)(n - 1) * count * es, es * count) == 0,
              "send 0 -> recv 1");
    }
    printf("ok: NCCL %s over %d device%s, %zu values: all_gather exact, all_reduce within %.0e of "
           "the CPU sum, broadcast%s\n", llm_dtype_name(dtype), n, n > 1 ? "s" : "", count, tol,
           n >= 2 ? ", send/recv" : "");
    for (int r = 0; r < n; r++) {
        cudaSetDevice(r);
        cudaFree(dev[r]);
        cudaFree(gat[r]);
        cudaStreamDestroy(st[r]);
        llm_comm_destroy(c[r]);
    }
    cudaSetDevice(0);
    free(host), free(sum), free(hbuf), free(back), free(got);
}


/* The peer-memory all-reduce kernels: n ranks, each its own stream (and
 * its own GPU when `real`, else all on device 0, running side by side),
 * three calls in a row, every rank's output against the CPU's sum in rank
 * order: exact. */
static void peer_allreduce(int n, int real, int dtype, int two_shot, int64_t count)
{
    size_t es = (size_t)llm_dtype_bits(dtype) / 8;
    llm_ar_peers p;
    memset(&p, 0, sizeof p);
    p.n = n;
    void *out[LLM_AR_MAX_RANKS];
    cudaStream_t st[LLM_AR_MAX_RANKS];
    for (int r = 0; r < n; r++) {
        cudaSetDevice(real ? r : 0);
        for (int q = 0; real && q < n; q++)
            if (q != r) cudaDeviceEnablePeerAccess(q, 0);
        cudaGetLastError(); /* already enabled */
        cudaStreamCreateWithFlags(&st[r], cudaStreamNonBlocking);
        cudaMalloc(&p.buf[r], es * (size_t)count);
        cudaMalloc(&out[r], es * (size_t)count);
        cudaMalloc((void **)&p.flags[r], llm_k_allreduce_flag_bytes());
        cudaMemset(p.flags[r], 0, llm_k_allreduce_flag_bytes());
    }
    float *x = malloc(sizeof(float) * (size_t)count), *sum = malloc(sizeof(float) * (size_t)count);
    char *h = malloc(es * (size_t)count), *want = malloc(es * (size_t)count),
         *got = malloc(es * (size_t)count);
    unsigned seed = 99u + (unsigned)(n * 7 + dtype + 3 * two_shot);
    int bad = 0;
    for (int call = 0; call < 3 && !bad; call++) {
        memset(sum, 0, sizeof(float) * (size_t)count);
        for (int r = 0; r < n; r++) {
            for (int64_t i = 0; i < count; i++) x[i] = frand(&seed) * (float)(r + 1);
            llm_convert(h, dtype, x, LLM_DTYPE_F32, (uint64_t)count);
            llm_convert(x, LLM_DTYPE_F32, h, dtype, (uint64_t)count);
            for (int64_t i = 0; i < count; i++) sum[i] += x[i];
            cudaSetDevice(real ? r : 0);
            cudaMemcpy(p.buf[r], h, es * (size_t)count, cudaMemcpyHostToDevice);
        }
        llm_convert(want, dtype, sum, LLM_DTYPE_F32, (uint64_t)count);
        for (int r = 0; r < n; r++) {
            cudaSetDevice(real ? r : 0);
            p.rank = r;
            int e = llm_k_allreduce(dtype, two_shot, &p, out[r], count, (uint32_t)(4 * call), 8,
                                    st[r]);
            CHECK(e == 0, "launch rank %d: %s", r, cudaGetErrorString((cudaError_t)e));
        }
        for (int r = 0; r < n; r++) {
            cudaSetDevice(real ? r : 0);
            CHECK(cudaStreamSynchronize(st[r]) == cudaSuccess, "rank %d stream", r);
            cudaMemcpy(got, out[r], es * (size_t)count, cudaMemcpyDeviceToHost);
            if (memcmp(got, want, es * (size_t)count)) {
                bad = 1;
                CHECK(0, "%s %s all-reduce, %d ranks%s, call %d: rank %d's sum differs from the "
                      "CPU's", two_shot ? "two-shot" : "one-shot", llm_dtype_name(dtype), n,
                      real ? " (GPUs)" : " (one GPU)", call, r);
            }
        }
    }
    if (!bad)
        printf("ok: %s all-reduce over peer memory, %s, %d rank%s on %s, %lld values, 3 calls: "
               "every rank equal to the CPU sum, bit for bit\n",
               two_shot ? "two-shot" : "one-shot", llm_dtype_name(dtype), n, n > 1 ? "s" : "",
               real ? "as many GPUs" : "one GPU side by side", (long long)count);
    for (int r = 0; r < n; r++) {
        cudaSetDevice(real ? r : 0);
        cudaFree(p.buf[r]), cudaFree(out[r]), cudaFree(p.flags[r]);
        cudaStreamDestroy(st[r]);
    }
    cudaSetDevice(0);
    free(x), free(sum), free(h), free(want), free(got);
}

/* Logits of a prompt and one decode step. */
static int forward(struct llm_backend *be, float *out)
{
    int32_t tok[9] = {1, 17, 42, 99, 7, 311, 5, 64, 23}, pos[9], rows[9];
    for (int i = 0; i < 9; i++)
        pos[i] = i, rows[i] = i;
    int32_t start[2] = {0, 8}, len[1] = {8}, bt[1] = {0};
    struct llm_batch b = {8, tok, pos, 1, start, len, bt, 1, 8, rows};
    int rc = be->ops->forward(be, &b);
    if (!rc) rc = be->ops->get_logits(be, out);
    int32_t start2[2] = {0, 1}, len2[1] = {9}, row0[1] = {0};
    struct llm_batch d = {1, tok + 8, pos + 8, 1, start2, len2, bt, 1, 1, row0};
    if (!rc) rc = be->ops->forward(be, &d);
    if (!rc) rc = be->ops->get_logits(be, out + 8 * be->vocab);
    return rc;
}

static void backend_path(const char *model)
{
    struct llm_model *m = NULL;
    int rc = llm_model_open(&m, model);
    CHECK(rc == 0, "open %s: %s", model, llm_errmsg());
    if (rc) return;
    struct llm_comm *c = NULL;
    rc = llm_comm_nccl(&c, NULL, 0);
    CHECK(rc == 0, "one-rank NCCL: %s", llm_errmsg());
    int64_t V = m->desc.vocab_size;
    float *a = malloc(sizeof(float) * 9 * (size_t)V), *b = malloc(sizeof(float) * 9 * (size_t)V);
    for (int dt = 0; dt < 2 && !rc; dt++) {
        struct llm_backend_opts o;
        llm_backend_opts_init(&o);
        o.compute_dtype = dt ? LLM_DTYPE_BF16 : LLM_DTYPE_F32;
        o.kv_bytes = 64u << 20;
        struct llm_backend *plain = NULL, *ranked = NULL;
        rc = llm_backend_cuda_create(&plain, m, &o);
        CHECK(rc == 0, "backend: %s", llm_errmsg());
        if (!rc) rc = forward(plain, a);
        llm_backend_destroy(plain);
        o.comm = c;
        o.reduce_steps = 1;
        if (!rc) rc = llm_backend_cuda_create(&ranked, m, &o);
        CHECK(rc == 0, "backend with NCCL: %s", llm_errmsg());
        if (!rc) rc = forward(ranked, b);
        CHECK(rc == 0, "forward with NCCL: %s", llm_errmsg());
        llm_backend_destroy(ranked);
        if (!rc && !dt) {
            /* f32: the projection's output summed then added is the same sum */
            int same = memcmp(a, b, sizeof(float) * 9 * (size_t)V) == 0;
            CHECK(same, "f32: logits through the NCCL reduction steps differ from the plain ones");
            if (same)
                printf("ok: f32 forward with every all-reduce and all-gather through one-rank "
                       "NCCL: logits bit-identical (prefill and decode)\n");
        } else if (!rc) {
            /* bf16: the reduced output is rounded to bf16 before its add (as on
             * every tensor-parallel rank), so close, and the same choices */
            double md = 0, mr = 0;
            int top_same = 1;
            for (int r = 0; r < 9; r++) {
                int64_t ia = 0, ib = 0;
                for (int64_t v = 0; v < V; v++) {
                    float x = a[r * V + v], y = b[r * V + v];
                    md = fabs(x - y) > md ? fabs(x - y) : md;
                    mr = fabs(x) > mr ? fabs(x) : mr;
                    if (x > a[r * V + ia]) ia = v;
                    if (y > b[r * V + ib]) ib = v;
                }
                top_same &= ia == ib;
            }
            CHECK(md <= 0.05 * mr && top_same, "bf16: reduction steps move the logits by %.3g of "
                  "%.3g, top-1 %s", md, mr, top_same ? "same" : "differs");
            if (md <= 0.05 * mr && top_same)
                printf("ok: bf16 forward through one-rank NCCL: logits within %.1e of the plain "
                       "path (the reduced outputs rounded to bf16 before their add), the same "
                       "top-1 on every row\n", md / mr);
        }
    }
    free(a), free(b);
    llm_comm_destroy(c);
    llm_model_close(m);
}

int main(void)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    llm_log_set_level(LLM_LOG_WARN);
    if (ndev > MAXD) ndev = MAXD;
    const int dts[3] = {LLM_DTYPE_F32, LLM_DTYPE_BF16, LLM_DTYPE_F16};
    for (int n = 1; n <= ndev; n *= 2)
        for (int i = 0; i < 3; i++)
            collectives(n, dts[i], i == 0 ? 1000003 : 4099);
    if (ndev > 1 && (ndev & (ndev - 1))) collectives(ndev, LLM_DTYPE_F32, 77777);
    const int adts[2] = {LLM_DTYPE_F32, LLM_DTYPE_BF16};
    for (int n = 1; n <= 8; n *= 2)
        for (int i = 0; i < 2; i++)
            for (int two = 0; two < 2; two++)
                peer_allreduce(n, 0, adts[i], two, n == 8 ? 65544 : 4104);
    for (int n = 2; n <= ndev && n <= LLM_AR_MAX_RANKS; n *= 2)
        for (int two = 0; two < 2; two++)
            peer_allreduce(n, 1, LLM_DTYPE_BF16, two, 1 << 18);
    CHECK(llm_k_allreduce_pick(16 << 10, 8) == LLM_AR_ONESHOT &&
              llm_k_allreduce_pick(4 << 20, 8) == LLM_AR_TWOSHOT &&
              llm_k_allreduce_pick(64 << 20, 8) == LLM_AR_NCCL &&
              llm_k_allreduce_pick(1 << 10, 1) == LLM_AR_NCCL,
          "algorithm by message size");
    const char *src = getenv("LLM_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/data/default.llm", src ? src : ".");
    backend_path(path);
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
