/* bench_model.c - model-level throughput of the CUDA backend on real-size shapes.
 *
 * Builds a model in memory with the exact shapes of a published one
 * (default Llama-2-7B: vocab 32000, hidden 4096, 32 layers, 32 heads,
 * inter 11008) and random weights - throughput does not depend on weight
 * values when lengths are fixed.  All tensors of one shape class share one
 * random host pool, so building costs seconds, not minutes.  Runs, through
 * the backend seam exactly as the engine would call it:
 *   prefill  one 2048-token prompt (n_out 1): ms, tok/s, TFLOP/s and the
 *            fraction of the bf16 GEMM rate measured in the same run;
 *   decode   batch 1: a 128-token prompt, then 128 single-token steps with
 *            greedy sampling: tok/s and weight bytes per second vs copy rate;
 *   offline  B requests of 128 prompt / 128 output tokens: prompts in
 *            chunks of max_batch_tokens, then decode steps of all B rows
 *            (the first output token comes from the prefill): output tok/s.
 * The scheduler's block allocation is mimicked by giving each sequence a
 * contiguous range of blocks.  Writes JSON lines to argv[1] and a table to
 * stdout; argv[2] = compute dtype (bf16 default, f16), argv[3..] = batch
 * sizes for the offline run (default 256).  Environment: LLM_BENCH_SHAPE=llama3-8b
 * for Llama-3.1-8B's shapes (GQA with 8 KV heads, vocab 128256, llama3 rope);
 * LLM_BENCH_ONLY=decode for the batch-1 decode alone; decode steps 64..66 are
 * bracketed by cudaProfilerStart/Stop for `ncu --profile-from-start off`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include "llm/backend.h"
#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/log.h"
#include "lib/backend/cuda/cuda_internal.h"

struct pool_model {
    struct llm_model m;
    void *pool, *ones;     /* random weights, norm weights (near 1) */
    int dt;
};

static int pm_get(void *ctx, const char *name, struct llm_tensor *t)
{
    struct pool_model *pm = ctx;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    if (llm_desc_tensor_shape(&pm->m.desc, name, &ndim, shape)) {
        llm_err_clear();
        return LLM_ENOTFOUND;
    }
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = pm->dt;
    t->ndim = ndim;
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (uint64_t)(t->shape[i] = shape[i]);
    t->nbytes = n * 2;
    t->data = ndim == 1 ? pm->ones : pm->pool;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *jf;

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if ((x) != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, llm_errmsg());              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* One step: n_seqs sequences, each q tokens at positions len[s].., blocks from bt. */
struct seqs {
    int n, bt_stride;
    int32_t *len, *bt;
};

static void step(struct llm_backend *be, struct seqs *S, int s0, int ns, int q, int n_out_last,
                 struct llm_sample_result *res, int32_t *tok_in)
{
    int n = ns * q;
    int32_t *tok = malloc(sizeof(int32_t) * n), *pos = malloc(sizeof(int32_t) * n);
    int32_t *ss = malloc(sizeof(int32_t) * (ns + 1)), *sl = malloc(sizeof(int32_t) * ns);
    int32_t *out = malloc(sizeof(int32_t) * ns);
    for (int i = 0; i < ns; i++) {
        ss[i] = i * q;
        for (int j = 0; j < q; j++) {
            pos[i * q + j] = S->len[s0 + i] + j;
            tok[i * q + j] = tok_in ? tok_in[s0 + i] : (int32_t)((i * 131 + j * 7) % 32000);
        }
        S->len[s0 + i] += q;
        sl[i] = S->len[s0 + i];
        out[i] = i * q + q - 1;
    }
    ss[ns] = n;
    struct llm_batch b = {n, tok, pos, ns, ss, sl, S->bt + (size_t)s0 * S->bt_stride,
                          S->bt_stride, n_out_last ? ns : 0, out};
    CHECK(be->ops->forward(be, &b));
    if (res) {
        struct llm_sampling sp;
        llm_sampling_init(&sp);
        struct llm_sample_row *rows = calloc((size_t)ns, sizeof *rows);
        for (int i = 0; i < ns; i++) rows[i].p = &sp;
        CHECK(be->ops->sample(be, rows, ns, res));
        free(rows);
    }
    free(tok), free(pos), free(ss), free(sl), free(out);
}

int main(int argc, char **argv)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    jf = argc > 1 ? fopen(argv[1], "w") : stdout;
    int dt = argc > 2 && !strcmp(argv[2], "f16") ? LLM_DTYPE_F16 : LLM_DTYPE_BF16;
    int nB = argc > 3 ? argc - 3 : 1;
    int Bs[8] = {256};
    for (int i = 0; i < nB && i < 8; i++) Bs[i] = argc > 3 ? atoi(argv[3 + i]) : 256;
    llm_log_set_level(LLM_LOG_INFO);

    /* GEMM ceiling in this run */
    double gemm_rate = 0;
    {
        struct cu_gemm *g;
        CHECK(cu_gemm_create(&g, LLM_DTYPE_BF16, 32u << 20));
        void *a, *b, *c;
        size_t n = 8192;
        cudaMalloc(&a, n * n * 2), cudaMalloc(&b, n * n * 2), cudaMalloc(&c, n * n * 2);
        uint16_t *h = malloc(n * n * 2);
        for (size_t i = 0; i < n * n; i++) h[i] = llm_f32_to_bf16((float)((i * 2654435761u) % 1000) / 1000.f - 0.5f);
        cudaMemcpy(a, h, n * n * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(b, h, n * n * 2, cudaMemcpyHostToDevice);
        free(h);
        for (int i = 0; i < 3; i++) CHECK(cu_gemm_run(g, 0, 8192, 8192, 8192, a, 8192, b, NULL, c, 8192, LLM_DTYPE_BF16, 0));
        cudaDeviceSynchronize();
        double t0 = now();
        for (int i = 0; i < 10; i++) CHECK(cu_gemm_run(g, 0, 8192, 8192, 8192, a, 8192, b, NULL, c, 8192, LLM_DTYPE_BF16, 0));
        cudaDeviceSynchronize();
        gemm_rate = 10 * 2.0 * 8192.0 * 8192 * 8192 / (now() - t0);
        cudaFree(a), cudaFree(b), cudaFree(c);
        cu_gemm_destroy(g);
    }

    struct pool_model pm;
    memset(&pm, 0, sizeof pm);
    struct llm_model_desc *d = &pm.m.desc;
    llm_desc_init(d);
    d->arch = LLM_ARCH_LLAMA;
    snprintf(d->model_type, sizeof d->model_type, "llama");
    /* LLM_BENCH_SHAPE=llama3-8b: Llama-3.1-8B (vocab 128256, 8 KV heads, inter 14336,
     * llama3 rope scaling, 131072 positions); default Llama-2-7B */
    const char *shape = getenv("LLM_BENCH_SHAPE");
    int l3 = shape && !strcmp(shape, "llama3-8b");
    d->vocab_size = l3 ? 128256 : 32000, d->hidden = 4096, d->n_layers = 32, d->n_heads = 32;
    d->n_kv_heads = l3 ? 8 : 32, d->head_dim = 128, d->intermediate = l3 ? 14336 : 11008;
    d->max_pos = l3 ? 131072 : 4096;
    d->gated_mlp = 1, d->norm_eps = 1e-5, d->rope.rot_dims = 128, d->rope.neox = 1;
    if (l3) {
        d->rope.theta = 500000.0, d->rope.scaling = LLM_ROPE_SCALING_LLAMA3, d->rope.factor = 8.0;
        d->rope.orig_max_pos = 8192, d->rope.low_freq_factor = 1.0, d->rope.high_freq_factor = 4.0;
    }
    const char *shape_name = l3 ? "llama-3.1-8b" : "llama-2-7b";
    pm.dt = dt;
    size_t pool_n = (size_t)d->vocab_size * 4096;
    uint16_t *pool = malloc(pool_n * 2), *ones = malloc((size_t)d->vocab_size * 2);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < pool_n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float v = ((float)(s >> 40) / 16777216.f * 2.f - 1.f) * 0.03f;
        pool[i] = dt == LLM_DTYPE_BF16 ? llm_f32_to_bf16(v) : llm_f32_to_f16(v);
    }
    for (int i = 0; i < d->vocab_size; i++)
        ones[i] = dt == LLM_DTYPE_BF16 ? llm_f32_to_bf16(1.f) : llm_f32_to_f16(1.f);
    pm.pool = pool, pm.ones = ones;
    pm.m.get_tensor = pm_get;
    pm.m.get_tensor_ctx = &pm;
    double n_params = (double)llm_desc_n_params(d);

    struct llm_backend_opts o;
    llm_backend_opts_init(&o);
    o.compute_dtype = dt;
    o.kv_dtype = dt;
    o.max_batch_tokens = 8192;
    o.max_seqs = 512;
    struct llm_backend *be;
    double t0 = now();
    CHECK(llm_backend_cuda_create(&be, &pm.m, &o));
    printf("model: %s shape, %.2f B params, %s, created in %.1f s\n", shape_name, n_params / 1e9,
           llm_dtype_name(dt), now() - t0);
    /* LLM_BENCH_ONLY=decode: batch-1 decode only (for a profiler) */
    const char *only = getenv("LLM_BENCH_ONLY");
    int decode_only = only && !strcmp(only, "decode");
    double wbytes = n_params * 2;

    struct seqs S;
    int maxB = 1;
    for (int i = 0; i < nB; i++) maxB = Bs[i] > maxB ? Bs[i] : maxB;
    S.bt_stride = (2048 + 256) / be->block_size + 1;
    if ((int64_t)maxB * ((256 + be->block_size - 1) / be->block_size) > be->n_blocks) {
        fprintf(stderr, "kv pool of %d blocks too small for %d sequences\n", be->n_blocks, maxB);
        return 1;
    }
    S.len = calloc((size_t)maxB, sizeof(int32_t));
    S.bt = malloc(sizeof(int32_t) * (size_t)maxB * S.bt_stride);
    int bps = be->n_blocks / maxB;
    for (int i = 0; i < maxB; i++)
        for (int j = 0; j < S.bt_stride; j++)
            S.bt[(size_t)i * S.bt_stride + j] = (i * bps + (j < bps ? j : bps - 1));
    for (int j = 0; j < S.bt_stride; j++) S.bt[j] = j; /* sequence 0 also runs the long prompt */
    struct llm_sample_result *res = malloc(sizeof *res * (size_t)(maxB > 1 ? maxB : 1));

    /* prefill of one 2048-token prompt */
    double best = 1e9;
    for (int r = 0; r < 4 && !decode_only; r++) {
        S.len[0] = 0;
        cudaDeviceSynchronize();
        t0 = now();
        step(be, &S, 0, 1, 2048, 1, NULL, NULL);
        cudaDeviceSynchronize();
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
    }
    if (!decode_only) {
        double V = (double)d->vocab_size;
        double fl = 2.0 * (n_params - 2.0 * V * 4096) * 2048 + 2.0 * V * 4096 +
                    32.0 * 4 * 2048.0 * 2048 / 2 * 4096;
        printf("prefill 2048: %.2f ms, %.0f tok/s, %.1f TFLOP/s = %.1f%% of the %.0f TFLOP/s GEMM rate\n",
               best * 1e3, 2048 / best, fl / best / 1e12, 100 * fl / best / gemm_rate, gemm_rate / 1e12);
        fprintf(jf, "{\"bench\":\"prefill\",\"tokens\":2048,\"ms\":%.3f,\"tok_s\":%.1f,\"TFLOPs\":%.2f,"
                    "\"gemm_TFLOPs\":%.2f,\"frac\":%.4f,\"dtype\":\"%s\"}\n",
                best * 1e3, 2048 / best, fl / best / 1e12, gemm_rate / 1e12, fl / best / gemm_rate,
                llm_dtype_name(dt));
    }

    /* batch-1 decode under each switch of the backend (LLM_CUDA_*), then the default */
    const char *cfgs[] = {"LLM_CUDA_GEMV_SPLIT=1", "LLM_CUDA_GEMV_SPLIT=4", "LLM_CUDA_PDL=0",
                          "LLM_CUDA_GRAPHS=1"};
    for (int ci = 0; ci < 4 && getenv("LLM_BENCH_DECODE_SWITCHES"); ci++) {
        llm_backend_destroy(be);
        char kv[64];
        snprintf(kv, sizeof kv, "%s", cfgs[ci]);
        char *eq = strchr(kv, '=');
        *eq = 0;
        setenv(kv, eq + 1, 1);
        CHECK(llm_backend_cuda_create(&be, &pm.m, &o));
        S.len[0] = 0;
        step(be, &S, 0, 1, 128, 1, res, NULL);
        cudaDeviceSynchronize();
        t0 = now();
        int32_t tk1[1] = {res[0].token};
        for (int i = 0; i < 128; i++) {
            step(be, &S, 0, 1, 1, 1, res, tk1);
            tk1[0] = res[0].token;
        }
        double t1 = now() - t0;
        printf("decode batch 1 with %s: %.1f tok/s, %.2f ms/token\n", cfgs[ci], 128 / t1,
               t1 / 128 * 1e3);
        fprintf(jf, "{\"bench\":\"decode_b1_switch\",\"switch\":\"%s\",\"tok_s\":%.2f}\n",
                cfgs[ci], 128 / t1);
        unsetenv(kv);
    }
    if (getenv("LLM_BENCH_DECODE_SWITCHES")) {
        llm_backend_destroy(be);
        CHECK(llm_backend_cuda_create(&be, &pm.m, &o));
    }

    /* batch-1 decode */
    S.len[0] = 0;
    step(be, &S, 0, 1, 128, 1, res, NULL);
    cudaDeviceSynchronize();
    t0 = now();
    int32_t tk[1] = {res[0].token};
    for (int i = 0; i < 128; i++) {
        if (i == 64) cudaProfilerStart(); /* a profiler run with --profile-from-start off */
        step(be, &S, 0, 1, 1, 1, res, tk);
        if (i == 66) cudaProfilerStop();
        tk[0] = res[0].token;
    }
    double td = now() - t0;
    printf("decode batch 1 (ctx 128..256): %.1f tok/s, %.2f ms/token, weights at %.2f TB/s\n",
           128 / td, td / 128 * 1e3, wbytes * 128 / td / 1e12);
    fprintf(jf, "{\"bench\":\"decode_b1\",\"tok_s\":%.2f,\"ms_per_tok\":%.3f,\"weight_TBps\":%.3f,"
                "\"dtype\":\"%s\"}\n",
            128 / td, td / 128 * 1e3, wbytes * 128 / td / 1e12, llm_dtype_name(dt));

    /* offline 128 / 128 */
    for (int bi = 0; bi < nB && !decode_only; bi++) {
        int B = Bs[bi];
        for (int i = 0; i < B; i++) S.len[i] = 0;
        int32_t *toks = malloc(sizeof(int32_t) * (size_t)B);
        cudaDeviceSynchronize();
        t0 = now();
        int per = be->max_batch_tokens / 128;
        for (int s0 = 0; s0 < B; s0 += per) {
            int ns = B - s0 < per ? B - s0 : per;
            step(be, &S, s0, ns, 128, 1, res + s0, NULL);
        }
        double tp = now() - t0, tf = 0, ts = 0;
        for (int i = 0; i < B; i++) toks[i] = res[i].token;
        for (int k = 1; k < 128; k++) {
            double a = now();
            step(be, &S, 0, B, 1, 1, NULL, toks);
            cudaDeviceSynchronize();
            double m = now();
            struct llm_sampling sp;
            llm_sampling_init(&sp);
            struct llm_sample_row *rows = calloc((size_t)B, sizeof *rows);
            for (int i = 0; i < B; i++) rows[i].p = &sp;
            CHECK(be->ops->sample(be, rows, B, res));
            free(rows);
            for (int i = 0; i < B; i++) toks[i] = res[i].token;
            tf += m - a;
            ts += now() - m;
        }
        double tt = now() - t0;
        printf("offline 128/128 B=%d: %.0f output tok/s (prefill %.2f s, decode forward %.2f s, "
               "sampling %.2f s, total %.2f s)\n",
               B, B * 128.0 / tt, tp, tf, ts, tt);
        fprintf(jf, "{\"bench\":\"offline_128_128\",\"B\":%d,\"out_tok_s\":%.1f,\"prefill_s\":%.3f,"
                    "\"decode_fwd_s\":%.3f,\"sample_s\":%.3f,\"total_s\":%.3f,\"dtype\":\"%s\"}\n",
                B, B * 128.0 / tt, tp, tf, ts, tt, llm_dtype_name(dt));
        free(toks);
    }
    fflush(jf);
    llm_backend_destroy(be);
    free(pool), free(ones), free(S.len), free(S.bt), free(res);
    if (jf != stdout) fclose(jf);
    return 0;
}
