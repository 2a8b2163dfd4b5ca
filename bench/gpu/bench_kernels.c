/* bench_kernels.c - kernel microbenchmarks against the device's measured ceilings.
 *
 * First measures the two ceilings on this device in this run: a large
 * device-to-device copy (bytes read + written per second) and a bf16
 * 8192^3 product through cuBLASLt (FLOP/s).  Then times each kernel at the
 * shapes of Llama-2-7B (hidden 4096, 32 heads of 128, inter 11008, vocab
 * 32000) and reports achieved GB/s or TFLOP/s and the fraction of the
 * matching ceiling.  Timing: CUDA events around repeated launches after a
 * warm-up, median of several repetitions; inputs that would fit in L2 are
 * rotated over enough copies to stream from device memory.  Inputs are
 * random, never zeros.  Writes one JSON object per line to argv[1] (or
 * stdout) and a table to stdout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "kernels/kernels.h"
#include "lib/backend/cuda/cuda_internal.h"

#define CUDA(x)                                                                                    \
    do {                                                                                           \
        cudaError_t e_ = (cudaError_t)(x);                                                         \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorName(e_));       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static FILE *jf;
static double copy_bw, gemm_rate;
static cudaEvent_t e0, e1;

/* Random bf16/f16/f32 fill on the device (values in [-1, 1) times scale). */
static void *drand(size_t n, int dt, float scale)
{
    size_t es = dt == LLM_DTYPE_F32 ? 4 : 2;
    float *h = malloc(n * sizeof(float));
    uint64_t s = 0x1234567 + n;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = ((float)(s >> 40) / 16777216.f * 2.f - 1.f) * scale;
    }
    void *tmp = malloc(n * es);
    llm_convert(tmp, dt, h, LLM_DTYPE_F32, n);
    void *d;
    CUDA(cudaMalloc(&d, n * es));
    CUDA(cudaMemcpy(d, tmp, n * es, cudaMemcpyHostToDevice));
    free(h);
    free(tmp);
    return d;
}

typedef void (*bench_fn)(void *ctx, int iter);

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median over 7 repetitions of (time of `inner` calls) / inner, in seconds. */
static double timeit(bench_fn f, void *ctx, int inner)
{
    for (int i = 0; i < 3; i++) f(ctx, i);
    CUDA(cudaDeviceSynchronize());
    float t[7];
    int it = 0;
    for (int r = 0; r < 7; r++) {
        CUDA(cudaEventRecord(e0, 0));
        for (int i = 0; i < inner; i++) f(ctx, it++);
        CUDA(cudaEventRecord(e1, 0));
        CUDA(cudaEventSynchronize(e1));
        CUDA(cudaEventElapsedTime(&t[r], e0, e1));
    }
    qsort(t, 7, sizeof(float), cmp_f);
    return t[3] / 1e3 / inner;
}

static void report(const char *name, const char *shape, double sec, double bytes, double flops)
{
    double gbs = bytes / sec / 1e9, tfs = flops / sec / 1e12;
    double frac_bw = copy_bw > 0 ? bytes / sec / copy_bw : 0;
    double frac_fl = gemm_rate > 0 ? flops / sec / gemm_rate : 0;
    printf("%-14s %-34s %9.1f us %8.1f GB/s (%5.1f%%) %7.1f TFLOP/s (%5.1f%%)\n", name, shape,
           sec * 1e6, gbs, 100 * frac_bw, tfs, 100 * frac_fl);
    fprintf(jf,
            "{\"bench\":\"%s\",\"shape\":\"%s\",\"us\":%.3f,\"GBps\":%.2f,\"bw_frac\":%.4f,"
            "\"TFLOPs\":%.2f,\"flop_frac\":%.4f}\n",
            name, shape, sec * 1e6, gbs, frac_bw, tfs, frac_fl);
    fflush(jf);
}

/* ---- ceilings -------------------------------------------------------------------- */

struct copy_ctx {
    void *a, *b;
    size_t bytes;
};
static void copy_fn(void *c, int i)
{
    struct copy_ctx *x = c;
    CUDA(cudaMemcpyAsync(i & 1 ? x->a : x->b, i & 1 ? x->b : x->a, x->bytes,
                         cudaMemcpyDeviceToDevice, 0));
}

struct gemm_ctx {
    struct cu_gemm *g;
    int m, n, k, yt, nw, acc;
    void *x, *y, **w;
    size_t wbytes;
};
static void gemm_fn(void *c, int i)
{
    struct gemm_ctx *x = c;
    if (cu_gemm_run(x->g, 0, x->m, x->n, x->k, x->x, x->k, x->w[i % x->nw], NULL, x->y, x->n,
                    x->yt, x->acc)) {
        fprintf(stderr, "gemm: %s\n", llm_errmsg());
        exit(1);
    }
}
static void gemv_fn(void *c, int i)
{
    struct gemm_ctx *x = c;
    CUDA(llm_k_gemv(LLM_DTYPE_BF16, x->y, x->n, x->x, x->k, x->w[i % x->nw], NULL, x->m, x->n,
                    x->k, x->acc, 0));
}

static int gemv_variant = -1;
static void gemv_var_fn(void *c, int i)
{
    struct gemm_ctx *x = c;
    CUDA(llm_k_gemv_variant(gemv_variant, x->y, x->n, x->x, x->k, x->w[i % x->nw], NULL, x->m,
                            x->n, x->k, x->acc, 0));
}

static struct cu_gemm *G;

static void bench_linear(const char *label, int m, int n, int k, int gemv)
{
    struct gemm_ctx c = {G, m, n, k, LLM_DTYPE_BF16, 1, 1, NULL, NULL, NULL, 0};
    c.wbytes = (size_t)n * k * 2;
    c.nw = (int)((400u << 20) / c.wbytes) + 1;
    if (c.nw > 16) c.nw = 16;
    c.w = malloc(sizeof(void *) * (size_t)c.nw);
    c.w[0] = drand((size_t)n * k, LLM_DTYPE_BF16, 0.02f);
    for (int i = 1; i < c.nw; i++) {
        CUDA(cudaMalloc(&c.w[i], c.wbytes));
        CUDA(cudaMemcpy(c.w[i], c.w[0], c.wbytes, cudaMemcpyDeviceToDevice));
    }
    c.x = drand((size_t)m * k, LLM_DTYPE_BF16, 1.f);
    c.y = drand((size_t)m * n, LLM_DTYPE_BF16, 1.f);
    double t = timeit(gemv ? gemv_fn : gemm_fn, &c, 20);
    char shape[96];
    snprintf(shape, sizeof shape, "%s m%d n%d k%d", label, m, n, k);
    double bytes = (double)c.wbytes + (double)m * (k + 2.0 * n) * 2;
    report(gemv ? "gemv_bf16" : "cublaslt_bf16", shape, t, bytes, 2.0 * m * n * k);
    if (gemv && getenv("LLM_BENCH_GEMV_VARIANTS")) {
        for (gemv_variant = 0; gemv_variant < 10; gemv_variant++) {
            if (m > 1 && (gemv_variant >= 1 && gemv_variant <= 4)) continue;
            if (m > 1 && gemv_variant >= 7) continue;
            char nm[32];
            snprintf(nm, sizeof nm, "gemv_v%d", gemv_variant);
            report(nm, shape, timeit(gemv_var_fn, &c, 20), bytes, 2.0 * m * n * k);
        }
    }
    for (int i = 0; i < c.nw; i++) cudaFree(c.w[i]);
    free(c.w);
    cudaFree(c.x);
    cudaFree(c.y);
}

/* ---- weight-only quantized linears (qgemv.cu) ------------------------------------- */

struct qctx {
    struct llm_k_qw w[16];
    int nw, m, n, k, gated, dense;
    void *x, *y, *xs, *wd;
    float *ones, *as; /* W4A8 (dense 4): the rows' block scales, the activation scale */
    float *gs;        /* W4A8 fused (dense 5): the rows' group sums */
};
static int qshape = -1;
static const char *qname; /* the report's name instead of qgemv_bf16 / qgemv_gated */
static void qgemv_fn(void *c, int i)
{
    struct qctx *x = c;
    const struct llm_k_qw *w = &x->w[i % x->nw];
    if (x->dense) { /* the path for many rows: x * pre, dequantize, cuBLASLt (dense 2:
                     * llm_k_q4_gemm on the codes, the dense scratch its workspace) */
        const void *in = x->x;
        if (w->pre) {
            CUDA(llm_k_prescale(LLM_DTYPE_BF16, x->xs, x->k, x->x, x->k, w->pre, x->m, x->k, 0));
            in = x->xs;
        }
        if (x->dense == 5) { /* W4A8 fused: the codes in tile order, then the fp8 GEMM */
            CUDA(llm_k_quant_x8t(LLM_DTYPE_BF16, x->xs, x->gs, x->x, x->k, w->pre, x->as, x->m,
                                 x->k, 0));
            struct llm_k_qw q = *w;
            q.pre = NULL;
            CUDA(llm_k_q4_gemm8(LLM_DTYPE_BF16, x->y, x->n, x->xs, x->gs, &q, NULL, x->m, x->n,
                                x->k, 0, x->wd, (size_t)x->n * x->k * 2, 0));
            return;
        }
        if (x->dense == 4) { /* W4A8: x * pre / s to e4m3 codes, the weight's codes made
                              * e4m3, cuBLASLt's fp8 product with 128-element block scales */
            CUDA(
                llm_k_quant_x8(LLM_DTYPE_BF16, 0, x->xs, x->x, x->k, w->pre, x->as, x->m, x->k, 0));
            float *st = (float *)((char *)x->wd + (((size_t)x->n * x->k + 255) & ~(size_t)255));
            struct llm_k_qw q = *w;
            q.pre = NULL;
            CUDA(llm_k_dequant_codes8(x->wd, st, &q, x->n, x->k, 0));
            if (cu_gemm_run_blk(G, 0, x->m, x->n, x->k, x->xs, x->ones, x->wd, st, NULL, x->y, x->n,
                                LLM_DTYPE_BF16, 0)) {
                fprintf(stderr, "gemm: %s\n", llm_errmsg());
                exit(1);
            }
            return;
        }
        if (x->dense == 3) { /* the dequantization alone */
            CUDA(llm_k_dequant(LLM_DTYPE_BF16, x->wd, w, x->n, x->k, 0));
            return;
        }
        if (x->dense == 2) {
            CUDA(llm_k_q4_gemm(LLM_DTYPE_BF16, x->y, x->n, in, x->k, w, NULL, x->m, x->n, x->k, 0,
                               x->wd, (size_t)x->n * x->k * 2, 0));
            return;
        }
        CUDA(llm_k_dequant(LLM_DTYPE_BF16, x->wd, w, x->n, x->k, 0));
        if (cu_gemm_run(G, 0, x->m, x->n, x->k, in, x->k, x->wd, NULL, x->y, x->n, LLM_DTYPE_BF16,
                        0)) {
            fprintf(stderr, "gemm: %s\n", llm_errmsg());
            exit(1);
        }
    } else if (x->gated) {
        CUDA(llm_k_qgemv_gated(LLM_DTYPE_BF16, LLM_K_ACT_SILU, x->y, x->n / 2, x->x, x->k, w, NULL,
                               x->m, x->n / 2, x->k, 0));
    } else if (qshape >= 0) {
        CUDA(llm_k_qgemv_variant(qshape, x->y, x->x, w, NULL, x->n, x->k, 0, 0));
    } else {
        CUDA(llm_k_qgemv(LLM_DTYPE_BF16, x->y, x->n, x->x, x->k, w, NULL, x->m, x->n, x->k, 0, 0));
    }
}

/* One quantized linear [n][k] (int4 with groups of `group`, or int8 when group
 * is 0; AWQ's pre-quant scale when pre), m rows; gated: a gate/up pair (n = 2 I)
 * through the fused kernel.  Bytes: packed weights, scales, pre, x and y once.
 * Returns the time. */
static int qtile; /* int4 in the tensor-core tile layout (the bits are random either way) */
static int q4sx;  /* and marked as having scales that are bf16 values (llm_k_qw.scale_exact:
                   * the warpgroup GEMM's 16-bit scaling; the values do not change the time) */
static double bench_qlinear(const char *label, int m, int n, int k, int group, int pre, int gated,
                            int dense, int variants)
{
    struct qctx c;
    memset(&c, 0, sizeof c);
    c.m = m, c.n = n, c.k = k, c.gated = gated, c.dense = dense;
    int i4 = group > 0;
    size_t qb = i4 ? (size_t)n * k / 2 : (size_t)n * k, ns = i4 ? (size_t)n * (k / group) : (size_t)n;
    c.nw = (int)((400u << 20) / qb) + 1;
    if (c.nw > 16) c.nw = 16;
    if (dense) c.nw = 1;
    void *q0 = drand(qb / 2, LLM_DTYPE_BF16, 1.f); /* random bits */
    for (int i = 0; i < c.nw; i++) {
        struct llm_k_qw *w = &c.w[i];
        w->fmt = i4 ? LLM_K_Q_INT4 : LLM_K_Q_INT8;
        w->group = group;
        w->pre_split = gated ? n / 2 : n;
        w->tile = i4 && qtile;
        w->scale_exact = w->tile && q4sx;
        if (i == 0) {
            w->q = q0;
        } else {
            void *q;
            CUDA(cudaMalloc(&q, qb));
            CUDA(cudaMemcpy(q, q0, qb, cudaMemcpyDeviceToDevice));
            w->q = q;
        }
        w->scale = drand(ns, LLM_DTYPE_F32, 0.01f);
        w->pre = pre ? drand((size_t)k * (gated ? 2 : 1), LLM_DTYPE_F32, 1.f) : NULL;
    }
    c.x = drand((size_t)m * k, LLM_DTYPE_BF16, 1.f);
    c.y = drand((size_t)m * n, LLM_DTYPE_BF16, 1.f);
    if (dense) {
        CUDA(cudaMalloc(&c.wd, (size_t)n * k * 2));
        CUDA(cudaMalloc(&c.xs, (size_t)m * k * 2));
    }
    if (dense >= 4) {
        float as = 2.0f / 448.f;
        const size_t nb = (size_t)m * (k / 128);
        float *h = malloc(sizeof(float) * nb);
        for (size_t i = 0; i < nb; i++)
            h[i] = 1.0f;
        CUDA(cudaMalloc((void **)&c.ones, sizeof(float) * nb));
        CUDA(cudaMemcpy(c.ones, h, sizeof(float) * nb, cudaMemcpyHostToDevice));
        free(h);
        CUDA(cudaMalloc((void **)&c.as, sizeof as));
        CUDA(cudaMemcpy(c.as, &as, sizeof as, cudaMemcpyHostToDevice));
        CUDA(cudaMalloc((void **)&c.gs, sizeof(float) * (size_t)((m + 3) & ~3) * (k / 128)));
    }
    double t = timeit(qgemv_fn, &c, 20);
    char shape[96], nm[40];
    snprintf(shape, sizeof shape, "%s m%d n%d k%d %s%s", label, m, n, k,
             i4 ? (pre ? "awq" : "w4a16") : "w8a16", i4 && qtile ? " tc" : "");
    if (i4) snprintf(shape + strlen(shape), sizeof shape - strlen(shape), " g%d", group);
    double bytes = (double)qb + 4.0 * ns + (pre ? 4.0 * k * (gated ? 2 : 1) : 0) +
                   (double)m * (k + (gated ? n / 2.0 : (double)n)) * 2;
    if (dense == 3) bytes = (double)qb + 4.0 * ns + 2.0 * n * k; /* codes, scales, bf16 out */
    snprintf(nm, sizeof nm, "%s",
             qname        ? qname
             : dense == 5 ? "w4a8_wg_bf16"
             : dense == 4 ? "w4a8_lt_bf16"
             : dense == 3 ? "dequant_bf16"
             : dense == 2 ? "q4gemm_bf16"
             : dense      ? "qdense_bf16"
             : gated      ? "qgemv_gated"
                          : "qgemv_bf16");
    report(nm, shape, t, bytes, 2.0 * m * n * k);
    for (qshape = 0; variants && !gated && !dense && m == 1 && qshape < 6; qshape++) {
        snprintf(nm, sizeof nm, "qgemv_s%d", qshape);
        report(nm, shape, timeit(qgemv_fn, &c, 20), bytes, 2.0 * m * n * k);
    }
    qshape = -1;
    for (int sh = 0; variants && gated && !dense && m == 1 && sh < 2; sh++) {
        llm_k_set_qgemv_shape(sh);
        snprintf(nm, sizeof nm, "qgemv_gated_s%d", sh);
        report(nm, shape, timeit(qgemv_fn, &c, 20), bytes, 2.0 * m * n * k);
    }
    llm_k_set_qgemv_shape(0);
    for (int i = 0; i < c.nw; i++) {
        cudaFree((void *)c.w[i].q);
        cudaFree((void *)c.w[i].scale);
        cudaFree((void *)c.w[i].pre);
    }
    cudaFree(c.x), cudaFree(c.y), cudaFree(c.xs), cudaFree(c.wd), cudaFree(c.ones), cudaFree(c.as);
    cudaFree(c.gs);
    return t;
}

/* int4 in the tile layout at Llama-2-7B's shapes (bf16), every tile kernel shape in one
 * run: shape 4 the per-lane kernel (qgemv_tc_kernel), 0 the staged kernel's default and
 * 5..8 its other launch shapes; 1 and 4 rows, w4a16 and AWQ, and the staged plain-layout
 * AWQ kernel for reference; then each shape's 32 layers of one decode token. */
static void bench_qtile_ab(void)
{
    const struct {
        const char *l;
        int n, k;
    } lin[] = {{"qkv", 12288, 4096}, {"o", 4096, 4096}, {"gate_up", 22016, 4096},
               {"down", 4096, 11008}};
    /* the tile kernel's shapes; the staged kernel's default (0) also with x staged by the
     * whole block behind a barrier (wstage 0) */
    static const struct {
        int shape, wstage;
        const char *name;
    } sh[] = {{4, 1, "qtile_s4"}, {0, 1, "qtile_s0"}, {0, 0, "qtile_s0_bstage"}, {5, 1, "qtile_s5"},
              {6, 1, "qtile_s6"}, {7, 1, "qtile_s7"}, {8, 1, "qtile_s8"}};
    const int nsh = (int)(sizeof sh / sizeof sh[0]);
    char shape[96];
    for (int m = 1; m <= 4; m += 3)
        for (int pre = 0; pre < 2; pre++) {
            for (int s = 0; s < nsh; s++) {
                double tok = 0;
                qname = sh[s].name;
                qtile = 1;
                llm_k_set_t2_wstage(sh[s].wstage);
                for (int i = 0; i < 4; i++) { /* (bench_qlinear sets shape 0 when done) */
                    llm_k_set_qgemv_shape(sh[s].shape);
                    tok += bench_qlinear(lin[i].l, m, lin[i].n, lin[i].k, 128, pre, i == 2, 0, 0);
                }
                llm_k_set_t2_wstage(1);
                snprintf(shape, sizeof shape, "llama2-7b 32 layers m%d %s tc g128", m,
                         pre ? "awq" : "w4a16");
                report(sh[s].name, shape, 32 * tok,
                       32.0 * (12288.0 + 4096 + 22016 + 4096) * 4096 * 0.5, 0);
            }
            llm_k_set_qgemv_shape(0);
            qtile = 0;
            qname = "qplain";
            double tok = 0;
            for (int i = 0; i < 4; i++)
                tok += bench_qlinear(lin[i].l, m, lin[i].n, lin[i].k, 128, pre, i == 2, 0, 0);
            snprintf(shape, sizeof shape, "llama2-7b 32 layers m%d %s g128", m, pre ? "awq" : "w4a16");
            report("qplain", shape, 32 * tok, 32.0 * (12288.0 + 4096 + 22016 + 4096) * 4096 * 0.5, 0);
            qname = NULL;
        }
    /* a weight four times qkv's: the streaming rate with less of the fixed cost per launch */
    for (int s = 0; s < nsh; s++) {
        qname = sh[s].name;
        qtile = 1;
        llm_k_set_t2_wstage(sh[s].wstage);
        llm_k_set_qgemv_shape(sh[s].shape);
        bench_qlinear("4x qkv", 1, 4 * 12288, 4096, 128, 0, 0, 0, 0);
        llm_k_set_t2_wstage(1);
    }
    qname = NULL;
    qtile = 0;
    llm_k_set_qgemv_shape(0);
}

/* One decode token's products back to back, as the engine runs them: Llama-2-7B's 32
 * layers of qkv, o (added to y), the gated fc / gate pair and down, each layer its own
 * weights (nothing is in L2 from the token before), one row, bf16: what a token's products
 * cost with each launch's start and end, against the sum of products timed alone. */
struct qchain {
    int fmt; /* 0 bf16, 1 int4 w4a16 tiles, 2 int4 awq tiles */
    void *w[32][4];
    struct llm_k_qw q[32][4];
    void *x, *y;
};
static const int qc_n[4] = {12288, 4096, 11008, 4096}, qc_k[4] = {4096, 4096, 4096, 11008};

static void qchain_fn(void *ctx, int it)
{
    struct qchain *c = ctx;
    (void)it;
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const int n = qc_n[i], k = qc_k[i];
            if (c->fmt && i == 2)
                CUDA(llm_k_qgemv_gated(LLM_DTYPE_BF16, LLM_K_ACT_SILU, c->y, n, c->x, k,
                                       &c->q[l][i], NULL, 1, n, k, 0));
            else if (c->fmt)
                CUDA(llm_k_qgemv(LLM_DTYPE_BF16, c->y, n, c->x, k, &c->q[l][i], NULL, 1, n, k,
                                 i == 1 || i == 3, 0));
            else if (i == 2)
                CUDA(llm_k_gemv_gated(LLM_DTYPE_BF16, LLM_K_ACT_SILU, c->y, c->x, c->w[l][i], NULL,
                                      n, k, 0));
            else
                CUDA(llm_k_gemv(LLM_DTYPE_BF16, c->y, n, c->x, k, c->w[l][i], NULL, 1, n, k,
                                i == 1 || i == 3, 0));
        }
}

static void bench_qchain(void)
{
    static const char *fname[3] = {"bf16", "w4a16 tc g128", "awq tc g128"};
    for (int fmt = 0; fmt < 3; fmt++) {
        struct qchain *c = calloc(1, sizeof *c);
        c->fmt = fmt;
        double bytes = 0;
        for (int i = 0; i < 4; i++) {
            const int64_t el = (int64_t)(i == 2 ? 2 : 1) * qc_n[i] * qc_k[i];
            const size_t wb = fmt ? (size_t)el / 2 : (size_t)el * 2, ns = (size_t)el / 128;
            void *w0 = drand(fmt ? wb / 2 : (size_t)el, LLM_DTYPE_BF16, fmt ? 1.f : 0.02f);
            void *s0 = fmt ? drand(ns, LLM_DTYPE_F32, 0.01f) : NULL;
            void *p0 =
                fmt == 2 ? drand((size_t)qc_k[i] * (i == 2 ? 2 : 1), LLM_DTYPE_F32, 1.f) : NULL;
            bytes += 32.0 * (wb + (fmt ? 4.0 * ns : 0));
            for (int l = 0; l < 32; l++) {
                if (l == 0) {
                    c->w[l][i] = w0;
                } else {
                    CUDA(cudaMalloc(&c->w[l][i], wb));
                    CUDA(cudaMemcpy(c->w[l][i], w0, wb, cudaMemcpyDeviceToDevice));
                }
                struct llm_k_qw *q = &c->q[l][i];
                q->fmt = LLM_K_Q_INT4;
                q->q = c->w[l][i];
                q->group = 128;
                q->tile = 1;
                q->pre_split = i == 2 ? qc_n[i] : 1 << 30;
                if (fmt) {
                    void *sc;
                    CUDA(cudaMalloc(&sc, ns * 4));
                    CUDA(cudaMemcpy(sc, s0, ns * 4, cudaMemcpyDeviceToDevice));
                    q->scale = sc;
                    q->pre = p0;
                }
            }
            cudaFree(s0);
        }
        c->x = drand(11008, LLM_DTYPE_BF16, 1.f);
        c->y = drand(22016, LLM_DTYPE_BF16, 1.f);
        char shape[96];
        snprintf(shape, sizeof shape, "llama2-7b 32 layers m1 %s", fname[fmt]);
        report("qchain", shape, timeit(qchain_fn, c, 3), bytes, 0);
        for (int l = 0; l < 32; l++)
            for (int i = 0; i < 4; i++) {
                cudaFree(c->w[l][i]);
                cudaFree((void *)c->q[l][i].scale);
                if (l == 0) cudaFree((void *)c->q[l][i].pre);
            }
        cudaFree(c->x), cudaFree(c->y);
        free(c);
    }
}

/* Llama-2-7B's and Falcon-180B's four int4 products (model 0 and 1: entries 4 model ..) */
static const struct {
    const char *model, *l;
    int n, k, layers;
} q4lin[] = {{"llama2-7b", "qkv", 12288, 4096, 32},     {"llama2-7b", "o", 4096, 4096, 32},
             {"llama2-7b", "gate_up", 22016, 4096, 32}, {"llama2-7b", "down", 4096, 11008, 32},
             {"falcon-180b", "qkv", 15872, 14848, 80},  {"falcon-180b", "o", 14848, 14848, 80},
             {"falcon-180b", "fc", 59392, 14848, 80},   {"falcon-180b", "down", 14848, 59392, 80}};

/* Time of a model's four products over all its layers at m rows (bench_qlinear's path), g128;
 * *w: the weights' element count over the layers. */
static double q4_layers(int model, int m, int pre, int path, double *w)
{
    double t = 0;
    *w = 0;
    for (int i = 4 * model; i < 4 * model + 4; i++) {
        t += q4lin[i].layers *
             bench_qlinear(q4lin[i].l, m, q4lin[i].n, q4lin[i].k, 128, pre, 0, path, 0);
        *w += q4lin[i].layers * (double)q4lin[i].n * q4lin[i].k;
    }
    return t;
}

/* int4 w4a16 / awq g128 in the tile layout past the GEMV: the tensor-core GEMM on the codes
 * (q4gemm) against the dequantization + cuBLASLt (qdense), bf16, Llama-2-7B's linears and
 * Falcon-180B's at 16 .. 4096 rows, then each one's sum over the model's layers. */
static void bench_q4gemm(void)
{
    const char *ms = getenv("LLM_BENCH_Q4GEMM_ONLY");
    int mlist[16], nm = 0;
    for (const char *e = ms; nm < 16 && e && *e;) {
        int v = atoi(e);
        if (v > 0) mlist[nm++] = v;
        if (!(e = strchr(e, ','))) break;
        e++;
    }
    if (!nm) {
        const int def[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
        for (int i = 0; i < 9; i++)
            mlist[nm++] = def[i];
    }
    qtile = 1;
    /* the dequantization alone (its rate against the copy ceiling), per model */
    for (int model = 0; model < 2; model++) {
        double w, t = q4_layers(model, 1, 0, 3, &w);
        char shape[96];
        snprintf(shape, sizeof shape, "%s %d layers tc g128", q4lin[4 * model].model,
                 q4lin[4 * model].layers);
        report("dequant_layers", shape, t, 0.5 * w + 4.0 * w / 128 + 2.0 * w, 0);
    }
    const char *sh = getenv("LLM_BENCH_Q4GEMM_SHAPE"); /* the GEMM's other block shape beside */
    /* LLM_BENCH_Q4GEMM_PATHS: which of the paths (digits 1 dequantized + cuBLASLt, 2 the GEMM
     * on the codes, 4 W4A8 on cuBLASLt, 5 W4A8 fused; default all), LLM_BENCH_Q4GEMM_PRE: 0
     * w4a16 only, 1 awq only */
    const char *pp = getenv("LLM_BENCH_Q4GEMM_PATHS"), *pe = getenv("LLM_BENCH_Q4GEMM_PRE");
    /* LLM_BENCH_Q4GEMM_MODEL: 0 Llama-2-7B only, 1 Falcon-180B only (else both) */
    const char *pm = getenv("LLM_BENCH_Q4GEMM_MODEL");
    const int md = pm ? atoi(pm) : -1, one = md == 0 || md == 1;
    const int md0 = one ? md : 0, md1 = one ? md + 1 : 2;
    for (int mi = 0; mi < nm; mi++)
        for (int pre = pe ? atoi(pe) : 0; pre < (pe ? atoi(pe) + 1 : 2); pre++)
            for (int model = md0; model < md1; model++)
                for (int path = 1; path <= 5; path++) {
                    if (path == 3) continue; /* 4: W4A8 on cuBLASLt, 5: the fused kernel */
                    if (pp && !strchr(pp, '0' + path)) continue;
                    if (path == 5 && getenv("LLM_BENCH_W4A8_BN")) /* the fused kernel's tile */
                        llm_k_set_q4gemm8_bn(atoi(getenv("LLM_BENCH_W4A8_BN")));
                    double w, t = q4_layers(model, mlist[mi], pre, path, &w);
                    const double fl = 2.0 * mlist[mi] * w;
                    char shape[96];
                    snprintf(shape, sizeof shape, "%s %d layers m%d %s tc g128",
                             q4lin[4 * model].model, q4lin[4 * model].layers, mlist[mi],
                             pre ? "awq" : "w4a16");
                    report(path == 5   ? "w4a8_wg_layers"
                           : path == 4 ? "w4a8_lt_layers"
                           : path == 2 ? "q4gemm_layers"
                                       : "qdense_layers",
                           shape, t, 0.5 * w, fl);
                    if (path == 2 && getenv("LLM_BENCH_Q4GEMM_SX")) {
                        /* LLM_BENCH_Q4GEMM_SX: the warpgroup GEMM (shape 3) with its 16-bit
                         * scaling too */
                        llm_k_set_q4gemm_shape(3);
                        q4sx = 1;
                        report("q4gemm_s3sx_layers", shape,
                               q4_layers(model, mlist[mi], pre, path, &w), 0.5 * w, fl);
                        if (getenv("LLM_BENCH_Q4GEMM_BN128") && mlist[mi] > 128) {
                            /* and with 128 x rows a block (two blocks an SM) */
                            llm_k_set_q4wg_bn(128);
                            report("q4gemm_s3sxbn128_layers", shape,
                                   q4_layers(model, mlist[mi], pre, path, &w), 0.5 * w, fl);
                            llm_k_set_q4wg_bn(256);
                        }
                        q4sx = 0;
                        llm_k_set_q4gemm_shape(0);
                    }
                    if (path != 2 || !sh) continue;
                    llm_k_set_q4gemm_shape(atoi(sh));
                    t = q4_layers(model, mlist[mi], pre, path, &w);
                    llm_k_set_q4gemm_shape(0);
                    char tag[32];
                    snprintf(tag, sizeof tag, "q4gemm_s%d_layers", atoi(sh));
                    report(tag, shape, t, 0.5 * w, fl);
                }
    qtile = 0;
}

/* ---- 8-bit activations (w8a8.cu, cu_gemm_run8) ----------------------------------- */

struct w8ctx {
    int act, m, n, k, nw, scalar;
    void *w[16], *x, *y, *xq, *acc;
    float *ws, *xs;
    size_t acc_bytes;
};
static void w8_fn(void *c, int i)
{
    struct w8ctx *x = c;
    CUDA(llm_k_quant_act(LLM_DTYPE_BF16, x->act, x->xq, x->xs, x->x, x->k, NULL, NULL, x->m, x->k,
                         0));
    if (x->m <= 8) {
        CUDA(llm_k_w8a8_gemv(LLM_DTYPE_BF16, x->act, x->y, x->n, x->xq, x->xs, x->w[i % x->nw],
                             x->ws, NULL, x->m, x->n, x->k, 0, 0));
    } else if (cu_gemm_run8(G, 0, x->act, x->scalar, x->m, x->n, x->k, x->xq, x->xs,
                            x->w[i % x->nw], x->ws, NULL, x->y, x->n, LLM_DTYPE_BF16, 0, x->acc,
                            x->acc_bytes)) {
        fprintf(stderr, "gemm8: %s\n", llm_errmsg());
        exit(1);
    }
}

/* One linear [n][k] with fp8 or int8 weights and activations, m rows, bf16 in and
 * out: the activations' rounding and the product (GEMV up to 8 rows, cuBLASLt
 * past).  Bytes: weights, x, y once. */
static double bench_w8(const char *label, int act, int scalar, int m, int n, int k)
{
    struct w8ctx c;
    memset(&c, 0, sizeof c);
    c.act = act, c.m = m, c.n = n, c.k = k, c.scalar = scalar;
    size_t wb = (size_t)n * k;
    c.nw = (int)((400u << 20) / wb) + 1;
    if (c.nw > 16) c.nw = 16;
    c.w[0] = drand(wb / 2, LLM_DTYPE_BF16, 0.01f); /* bits of small bf16 numbers: finite fp8 */
    for (int i = 1; i < c.nw; i++) {
        CUDA(cudaMalloc(&c.w[i], wb));
        CUDA(cudaMemcpy(c.w[i], c.w[0], wb, cudaMemcpyDeviceToDevice));
    }
    c.ws = drand((size_t)n, LLM_DTYPE_F32, 0.01f);
    c.x = drand((size_t)m * k, LLM_DTYPE_BF16, 1.f);
    c.y = drand((size_t)m * n, LLM_DTYPE_BF16, 1.f);
    CUDA(cudaMalloc(&c.xq, (size_t)m * k));
    CUDA(cudaMalloc((void **)&c.xs, sizeof(float) * (size_t)m));
    c.acc_bytes = (size_t)128 << 20;
    CUDA(cudaMalloc(&c.acc, c.acc_bytes));
    double t = timeit(w8_fn, &c, 20);
    char shape[96];
    snprintf(shape, sizeof shape, "%s m%d n%d k%d %s%s", label, m, n, k,
             act == LLM_K_A_FP8 ? "fp8" : "int8", scalar && m > 8 ? " per-tensor" : "");
    double bytes = (double)wb + 4.0 * n + (double)m * (k * 2.0 + 2.0 * n);
    report(m <= 8 ? "w8gemv_bf16" : "w8gemm_bf16", shape, t, bytes, 2.0 * m * n * k);
    for (int sh = 1; m <= 8 && getenv("LLM_BENCH_W8_SHAPES") && sh < 6; sh++) {
        char nm[32];
        snprintf(nm, sizeof nm, "w8gemv_s%d", sh);
        llm_k_set_w8_shape(sh);
        report(nm, shape, timeit(w8_fn, &c, 20), bytes, 2.0 * m * n * k);
        llm_k_set_w8_shape(0);
    }
    for (int i = 0; i < c.nw; i++) cudaFree(c.w[i]);
    cudaFree(c.ws), cudaFree(c.x), cudaFree(c.y), cudaFree(c.xq), cudaFree(c.xs);
    cudaFree(c.acc);
    return t;
}

/* ---- attention ------------------------------------------------------------------- */

struct attn_ctx {
    struct llm_k_attn a;
    int32_t *rows, *seqs, *tiles;
    int n, splits, n_tiles;
    int32_t *split_len;
    int *cnt;
    float *ws;
};
static void attn_rows_fn(void *c, int i)
{
    struct attn_ctx *x = c;
    (void)i;
    CUDA(llm_k_attn_rows(&x->a, x->rows, x->seqs, x->n, x->split_len, x->splits, x->ws, x->cnt,
                         0));
}
static int pf_variant;
static void attn_pf_fn(void *c, int i)
{
    struct attn_ctx *x = c;
    (void)i;
    if (pf_variant)
        CUDA(llm_k_attn_prefill_variant(pf_variant, &x->a, x->tiles, x->n_tiles, 0));
    else
        CUDA(llm_k_attn_prefill(&x->a, x->tiles, x->n_tiles, 0));
}

static void *dcopy_i32(const int32_t *h, size_t n)
{
    void *d;
    CUDA(cudaMalloc(&d, n * 4 + 4));
    CUDA(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice));
    return d;
}

/* The KV cache's element for bench_attn (enum llm_k_kvq), and the row kernel's chunk. */
static int attn_kvq, attn_ch, attn_ns = 2, attn_w, attn_tc16 = 1; /* attn_w 0: by row_keys */

/* B sequences of ctx tokens (decode: one query row each; prefill: all rows). */
static void bench_attn(int B, int ctx, int nh, int nkv, int hd, int prefill, int n_sm)
{
    int bs = 32, nblk = (ctx + bs - 1) / bs;
    size_t blk = (size_t)2 * nkv * bs * hd;
    /* LLM_BENCH_ATTN_SCATTER=F (8-bit cache): a pool F times the blocks read, the
     * sequences' blocks drawn from all of it in a shuffled order, as a running engine's
     * block tables are, instead of one after another */
    const char *sc = getenv("LLM_BENCH_ATTN_SCATTER");
    int scatter = sc && attn_kvq ? atoi(sc) : 0;
    size_t pool_blocks = (size_t)B * nblk * (scatter > 1 ? (size_t)scatter : 1);
    size_t pool_n = pool_blocks * blk;
    void *pool = NULL;
    if (attn_kvq) { /* codes of 0.5 (fp8) or 48 (int8): finite, the same work */
        CUDA(cudaMalloc(&pool, pool_n));
        CUDA(cudaMemset(pool, 0x30, pool_n));
    } else {
        pool = drand(pool_n, LLM_DTYPE_BF16, 1.f);
    }
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)B * nblk);
    for (int i = 0; i < B * nblk; i++) bt[i] = i;
    if (scatter > 1) { /* B * nblk distinct blocks of the pool, shuffled (Fisher-Yates) */
        int32_t *all = malloc(sizeof(int32_t) * pool_blocks);
        uint64_t r = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < pool_blocks; i++) all[i] = (int32_t)i;
        for (size_t i = pool_blocks - 1; i > 0; i--) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)(r >> 33) % (i + 1);
            int32_t t = all[i];
            all[i] = all[j], all[j] = t;
        }
        memcpy(bt, all, sizeof(int32_t) * (size_t)B * nblk);
        free(all);
    }
    int nq = prefill ? B * ctx : B;
    int32_t *pos = malloc(sizeof(int32_t) * nq), *rows = malloc(sizeof(int32_t) * nq);
    int32_t *seqs = malloc(sizeof(int32_t) * nq);
    int32_t *tiles = malloc(sizeof(int32_t) * 3 * ((size_t)nq / 16 + B + 1));
    int nt = 0, tr = pf_variant == 1 ? 64 : llm_k_attn_prefill_tile_rows(2, hd);
    for (int s = 0; s < B; s++) {
        if (prefill) {
            for (int i = 0; i < ctx; i++) pos[s * ctx + i] = i;
            for (int r = 0; r < ctx; r += tr) {
                tiles[3 * nt] = s;
                tiles[3 * nt + 1] = s * ctx + r;
                tiles[3 * nt + 2] = ctx - r < tr ? ctx - r : tr;
                nt++;
            }
        } else {
            pos[s] = ctx - 1;
            rows[s] = s;
            seqs[s] = s;
        }
    }
    int qs = (nh + 2 * nkv) * hd;
    struct attn_ctx c;
    memset(&c, 0, sizeof c);
    c.a.dt = LLM_DTYPE_BF16;
    c.a.q = drand((size_t)nq * qs, LLM_DTYPE_BF16, 1.f);
    c.a.q_stride = qs;
    CUDA(cudaMalloc(&c.a.o, (size_t)nq * nh * hd * 2));
    c.a.kv = pool;
    c.a.blk_stride = (int64_t)blk;
    c.a.block_size = bs;
    c.a.block_table = dcopy_i32(bt, (size_t)B * nblk);
    c.a.bt_stride = nblk;
    c.a.pos = dcopy_i32(pos, nq);
    c.a.n_heads = nh;
    c.a.n_kv_heads = nkv;
    c.a.head_dim = hd;
    c.a.scale = 1.f / sqrtf((float)hd);
    c.a.kv_q = attn_kvq;
    c.a.k_scale = c.a.v_scale = 1.f / 64;
    c.n = nq;
    c.rows = dcopy_i32(rows, prefill ? 1 : nq);
    c.seqs = dcopy_i32(seqs, prefill ? 1 : nq);
    c.tiles = dcopy_i32(tiles, 3 * (size_t)(nt ? nt : 1));
    c.n_tiles = nt;
    c.splits = 1;
    if (!prefill) {
        /* the backend's policy: enough blocks for the device, whole 32-key chunks */
        int blocks = B * llm_k_attn_rows_blocks(nh, nkv), target = 4 * n_sm, sl = 0;
        const char *fs = getenv("LLM_BENCH_ATTN_SPLIT"); /* keys a split, forced */
        if (fs && atoi(fs) >= 32 && atoi(fs) < ctx) {
            sl = (atoi(fs) + 31) / 32 * 32;
            c.splits = (ctx + sl - 1) / sl;
        } else if (blocks < target && ctx > 64) {
            int sp = (target + blocks - 1) / blocks;
            sl = ((ctx + sp - 1) / sp + 31) / 32 * 32;
            c.splits = (ctx + sl - 1) / sl;
        }
        size_t ncnt = (size_t)B * llm_k_attn_rows_blocks(nh, nkv);
        CUDA(cudaMalloc((void **)&c.cnt, sizeof(int) * ncnt));
        CUDA(cudaMemset(c.cnt, 0, sizeof(int) * ncnt));
        c.split_len = dcopy_i32(&sl, 1);
        c.a.row_keys = sl && sl < ctx ? sl : ctx; /* as the backend tells it */
        CUDA(cudaMalloc((void **)&c.ws, sizeof(float) * (size_t)B * nh * c.splits * (hd + 1)));
    }
    double t = timeit(prefill ? attn_pf_fn : attn_rows_fn, &c, prefill ? 5 : 20);
    char shape[96];
    snprintf(shape, sizeof shape, "B%d ctx%d h%d/%d d%d%s%s%s%s%s", B, ctx, nh, nkv, hd,
             scatter > 1 ? " scattered" : "",
             prefill        ? ""
             : c.splits > 1 ? " split"
                            : "",
             pf_variant == 1   ? " mt1"
             : pf_variant == 2 ? " mt2"
                               : "",
             attn_kvq == LLM_K_KV_FP8    ? " kv-fp8"
             : attn_kvq == LLM_K_KV_INT8 ? " kv-int8"
                                         : "",
             !attn_kvq && !prefill && (hd == 64 || hd == 80 || hd == 96 || hd == 128 || hd == 256)
                 ? !attn_tc16    ? " rows16"
                   : attn_w == 2 ? " tc16w2"
                   : attn_w == 4 ? " tc16w4"
                                 : " tc16"
             : attn_kvq && !prefill ? attn_ch == 64   ? " rows64"
                                      : attn_ch == 32 ? " rows32"
                                      : attn_w == 2   ? attn_ns == 4   ? " tcw2s4"
                                                        : attn_ns == 3 ? " tcw2s3"
                                                                       : " tcw2"
                                      : attn_w == 4   ? attn_ns == 3 ? " tcw4s3" : " tcw4"
                                      : attn_ns == 3  ? " tc3"
                                                      : " tc2"
                                    : "");
    double kvbytes = (double)B * ctx * 2.0 * nkv * hd * (attn_kvq ? 1 : 2);
    double flops = prefill ? 4.0 * B * (double)ctx * ctx / 2 * hd * nh
                           : 4.0 * B * (double)ctx * hd * nh;
    report(prefill ? "attn_prefill" : "attn_decode", shape, t,
           kvbytes + (double)nq * (qs + nh * hd) * 2, flops);
    cudaFree(pool), cudaFree((void *)c.a.q), cudaFree(c.a.o), cudaFree((void *)c.a.block_table);
    cudaFree((void *)c.a.pos), cudaFree(c.rows), cudaFree(c.seqs), cudaFree(c.tiles);
    cudaFree(c.ws), cudaFree(c.split_len), cudaFree(c.cnt);
    free(bt), free(pos), free(rows), free(seqs), free(tiles);
}

/* ---- elementwise ------------------------------------------------------------------ */

/* The elementwise kernels: Llama-2-7B's shapes in bf16 (l3 0), or
 * Llama-3.1-8B's as its fp8 run has them (l3 1: the norm adds the residual
 * and writes the product's fp8 codes too, the activation writes the codes
 * alone, 32 query heads over 8 and an fp8 cache). */
struct ew_ctx {
    int rows, n, inter, l3;
    void *x, *res, *w, *h, *qkv, *kv, *tab, *add, *xq;
    float *xs, *as;
    int32_t *pos, *slot;
};
static void norm_fn(void *c, int i)
{
    struct ew_ctx *x = c;
    (void)i;
    CUDA(llm_k_norm_q(LLM_DTYPE_BF16, LLM_K_NORM_RMS, x->x, x->res, x->l3 ? x->add : NULL, x->w,
                      NULL, 0.f, x->rows, x->n, 1e-5f, x->l3 ? LLM_K_A_FP8 : LLM_K_A_NONE, x->xq,
                      x->xs, x->as, 0));
}
static void act_fn(void *c, int i)
{
    struct ew_ctx *x = c;
    (void)i;
    CUDA(llm_k_act_q(LLM_DTYPE_BF16, LLM_K_ACT_SILU, 1, x->h, x->rows, x->inter,
                     x->l3 ? LLM_K_A_FP8 : LLM_K_A_NONE, !x->l3, x->xq, x->xs, x->as, NULL, 0));
}
static void rope_fn(void *c, int i)
{
    struct ew_ctx *x = c;
    (void)i;
    const int nkv = x->l3 ? 8 : 32;
    CUDA(llm_k_rope_kv(LLM_DTYPE_BF16, x->qkv, x->tab, x->pos, x->slot, x->kv,
                       (int64_t)2 * nkv * 32 * 128, 32, x->rows, 32, nkv, 128, 128, 1,
                       x->l3 ? LLM_K_KV_FP8 : LLM_K_KV_NONE, 1.f, 1.f, 0));
}

static void bench_ew(int rows, int l3)
{
    struct ew_ctx c;
    memset(&c, 0, sizeof c);
    c.rows = rows;
    c.l3 = l3;
    c.n = 4096;
    c.inter = l3 ? 14336 : 11008;
    const int nkv = l3 ? 8 : 32, W = (32 + 2 * nkv) * 128;
    c.x = drand((size_t)rows * 4096, LLM_DTYPE_BF16, 1.f);
    c.res = drand((size_t)rows * 4096, LLM_DTYPE_BF16, 1.f);
    c.add = drand((size_t)rows * 4096, LLM_DTYPE_BF16, 1.f);
    c.w = drand(4096, LLM_DTYPE_BF16, 1.f);
    c.h = drand((size_t)rows * 2 * c.inter, LLM_DTYPE_BF16, 2.f);
    c.qkv = drand((size_t)rows * W, LLM_DTYPE_BF16, 1.f);
    c.tab = drand((size_t)4096 * 128, LLM_DTYPE_F32, 1.f);
    CUDA(cudaMalloc(&c.xq, (size_t)rows * c.inter));
    CUDA(cudaMalloc((void **)&c.xs, sizeof(float) * (size_t)rows));
    const float one = 1.f / 64;
    CUDA(cudaMalloc((void **)&c.as, sizeof(float)));
    CUDA(cudaMemcpy(c.as, &one, sizeof one, cudaMemcpyHostToDevice));
    int nblk = (rows + 31) / 32;
    CUDA(cudaMalloc(&c.kv, (size_t)nblk * 2 * nkv * 32 * 128 * 2));
    int32_t *pos = malloc(sizeof(int32_t) * rows), *slot = malloc(sizeof(int32_t) * rows);
    for (int i = 0; i < rows; i++) pos[i] = i % 4096, slot[i] = i;
    c.pos = dcopy_i32(pos, rows);
    c.slot = dcopy_i32(slot, rows);
    char shape[80];
    const char *tag = l3 ? "llama3-8b fp8" : "n4096";
    snprintf(shape, sizeof shape, "rows%d %s", rows, tag);
    /* l3: residual and addend in, residual, row and codes out */
    report("rmsnorm_bf16", shape, timeit(norm_fn, &c, 20), (double)rows * 4096 * (l3 ? 9 : 4), 0);
    snprintf(shape, sizeof shape, "rows%d inter%d%s", rows, c.inter, l3 ? " fp8 codes" : "");
    report("swiglu_bf16", shape, timeit(act_fn, &c, 20), (double)rows * c.inter * (l3 ? 5 : 6), 0);
    snprintf(shape, sizeof shape, "rows%d h32/%d d128%s", rows, nkv, l3 ? " kv fp8" : "");
    /* the row in, q and k back, k and v into the cache (and the table) */
    report("rope_kv_bf16", shape, timeit(rope_fn, &c, 20),
           (double)rows * (W * 2 + (32 + nkv) * 128 * 2 + 2 * nkv * 128 * (l3 ? 1 : 2)) +
               (double)rows * 64 * 8,
           0);
    cudaFree(c.x), cudaFree(c.res), cudaFree(c.w), cudaFree(c.h), cudaFree(c.qkv), cudaFree(c.kv);
    cudaFree(c.tab), cudaFree(c.pos), cudaFree(c.slot), cudaFree(c.add), cudaFree(c.xq);
    cudaFree(c.xs), cudaFree(c.as);
    free(pos), free(slot);
}

/* Decode rows and prefill tiles in the shapes of Llama-2-7B (32 heads) and
 * Llama-3.1-8B (8 KV heads), with a 16-bit and an 8-bit cache. */
static void bench_attn_all(int n_sm)
{
    /* LLM_BENCH_ATTN="[p]B:ctx:heads:kv_heads:head_dim:kvq[,...]" (kvq: 0 the 16-bit cache,
     * 1 fp8, 2 int8): those decode shapes alone, or with p B causal prompts of ctx tokens */
    const char *only = getenv("LLM_BENCH_ATTN");
    if (only) {
        int b, ctx, nh, nkv, hd, kq, used;
        int pf = *only == 'p';
        const char *pv = getenv("LLM_BENCH_PF_VARIANT"); /* 1, 2: m-tiles a warp (16-bit) */
        pf_variant = pv ? atoi(pv) : 0;
        const char *ns = getenv("LLM_BENCH_ATTN_NS"); /* tensor-core decode stages: 2, 3 */
        if (ns) llm_k_attn_rows_set_stages(attn_ns = atoi(ns));
        const char *nw = getenv("LLM_BENCH_ATTN_W"); /* its warps a block: 4, 2 */
        if (nw) llm_k_attn_rows_set_warps(attn_w = atoi(nw));
        const char *t16 = getenv("LLM_BENCH_ATTN_TC16"); /* 0: a 16-bit cache on the row kernel */
        llm_k_attn_rows_set_tc16(attn_tc16 = !(t16 && !strcmp(t16, "0")));
        while (sscanf(only + pf, "%d:%d:%d:%d:%d:%d%n", &b, &ctx, &nh, &nkv, &hd, &kq, &used) ==
               6) {
            attn_kvq = kq;
            bench_attn(b, ctx, nh, nkv, hd, pf, n_sm);
            used += pf;
            only += used;
            if (*only != ',') break;
            only++;
            pf = *only == 'p';
        }
        attn_kvq = LLM_K_KV_NONE;
        pf_variant = 0;
        llm_k_attn_rows_set_stages(attn_ns = 2);
        llm_k_attn_rows_set_warps(attn_w = 0);
        llm_k_attn_rows_set_tc16(attn_tc16 = 1);
        return;
    }
    /* attention: decode at several batch sizes and contexts, prefill of 2048 */
    const int dec[][2] = {{1, 256}, {1, 4096}, {16, 1024}, {64, 256}, {256, 256}, {64, 2048}};
    for (int i = 0; i < 6; i++) bench_attn(dec[i][0], dec[i][1], 32, 32, 128, 0, n_sm);
    /* GQA groups of 4 (Llama-3.1-8B) */
    const int gqa[][2] = {{1, 256}, {8, 1024}, {64, 2048}, {256, 256}, {512, 192}};
    for (int i = 0; i < 5; i++) bench_attn(gqa[i][0], gqa[i][1], 32, 8, 128, 0, n_sm);
    bench_attn(1, 2048, 32, 32, 128, 1, n_sm);
    bench_attn(4, 2048, 32, 32, 128, 1, n_sm);
    bench_attn(1, 2048, 32, 8, 128, 1, n_sm);
    for (pf_variant = 1; pf_variant <= 2; pf_variant++) /* m-tiles per warp */
        bench_attn(4, 2048, 32, 32, 128, 1, n_sm);
    pf_variant = 0;
    /* an 8-bit KV cache: the same shapes read half the bytes; decode on the tensor-core
     * kernel (tc) and on the row kernel staging 32 or 64 tokens (rows32, rows64) */
    for (attn_kvq = LLM_K_KV_FP8; attn_kvq <= LLM_K_KV_INT8; attn_kvq++)
        for (int ch = 0; ch <= 64; ch += 32) {
            llm_k_attn_rows_set_chunk(ch);
            attn_ch = ch;
            for (int i = 2; i < 6; i++) bench_attn(dec[i][0], dec[i][1], 32, 32, 128, 0, n_sm);
            bench_attn(1024, 192, 32, 32, 128, 0, n_sm);
            bench_attn(512, 192, 32, 8, 128, 0, n_sm);
            if (ch == 0) bench_attn(4, 2048, 32, 32, 128, 1, n_sm);
            if (ch == 0) { /* the tensor-core kernel with three pipeline stages */
                bench_attn(1024, 192, 32, 8, 128, 0, n_sm);
                llm_k_attn_rows_set_stages(attn_ns = 3);
                for (int i = 2; i < 6; i++) bench_attn(dec[i][0], dec[i][1], 32, 32, 128, 0, n_sm);
                bench_attn(1024, 192, 32, 32, 128, 0, n_sm);
                bench_attn(512, 192, 32, 8, 128, 0, n_sm);
                bench_attn(1024, 192, 32, 8, 128, 0, n_sm);
                llm_k_attn_rows_set_stages(attn_ns = 2);
                /* blocks of four warps against two, short rows to long */
                const int wsh[][2] = {
                    {2048, 128}, {2048, 192}, {2048, 256}, {1024, 512}, {448, 3072}};
                for (attn_w = 4; attn_w >= 2; attn_w -= 2) {
                    llm_k_attn_rows_set_warps(attn_w);
                    for (int i = 0; i < 5; i++)
                        bench_attn(wsh[i][0], wsh[i][1], 32, 8, 128, 0, n_sm);
                }
                llm_k_attn_rows_set_warps(attn_w = 0);
            }
        }
    llm_k_attn_rows_set_chunk(0);
    attn_ch = 0;
    attn_kvq = LLM_K_KV_NONE;
}

int main(int argc, char **argv)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    jf = argc > 1 ? fopen(argv[1], "w") : stdout;
    if (!jf) {
        perror(argv[1]);
        return 1;
    }
    struct cudaDeviceProp p;
    CUDA(cudaGetDeviceProperties(&p, 0));
    printf("device: %s, %d SMs, L2 %d MiB\n", p.name, p.multiProcessorCount, p.l2CacheSize >> 20);
    CUDA(cudaEventCreate(&e0));
    CUDA(cudaEventCreate(&e1));
    if (cu_gemm_create(&G, LLM_DTYPE_BF16, 32u << 20)) {
        fprintf(stderr, "%s\n", llm_errmsg());
        return 1;
    }

    /* ceilings */
    struct copy_ctx cc = {NULL, NULL, 2ull << 30};
    cc.a = drand(cc.bytes / 2, LLM_DTYPE_BF16, 1.f);
    CUDA(cudaMalloc(&cc.b, cc.bytes));
    double t = timeit(copy_fn, &cc, 10);
    copy_bw = 2.0 * cc.bytes / t;
    report("copy_ceiling", "d2d 2 GiB", t, 2.0 * cc.bytes, 0);
    cudaFree(cc.a), cudaFree(cc.b);
    if (getenv("LLM_BENCH_EW_ONLY")) { /* "rows,rows,...": the elementwise kernels alone */
        const char *e = getenv("LLM_BENCH_EW_ONLY");
        for (int r; sscanf(e, "%d", &r) == 1 && r > 0;) {
            bench_ew(r, 0);
            bench_ew(r, 1);
            if (!(e = strchr(e, ','))) break;
            e++;
        }
        return 0;
    }
    if (getenv("LLM_BENCH_QCHAIN")) { /* a decode token's products back to back */
        bench_qchain();
        return 0;
    }
    if (getenv("LLM_BENCH_QTILE_ONLY")) { /* the int4 tile kernels alone, old against new */
        bench_qtile_ab();
        return 0;
    }
    {
        struct gemm_ctx g = {G, 8192, 8192, 8192, LLM_DTYPE_BF16, 1, 0, NULL, NULL, NULL, 0};
        g.w = malloc(sizeof(void *));
        g.w[0] = drand((size_t)8192 * 8192, LLM_DTYPE_BF16, 0.02f);
        g.x = drand((size_t)8192 * 8192, LLM_DTYPE_BF16, 1.f);
        CUDA(cudaMalloc(&g.y, (size_t)8192 * 8192 * 2));
        t = timeit(gemm_fn, &g, 5);
        gemm_rate = 2.0 * 8192 * 8192 * 8192 / t;
        report("gemm_ceiling", "bf16 8192^3 cublaslt", t, 0, 2.0 * 8192 * 8192 * 8192);
        cudaFree(g.w[0]), cudaFree(g.x), cudaFree(g.y);
        free(g.w);
    }
    if (getenv("LLM_BENCH_Q4GEMM_ONLY")) { /* "m,m,...": int4 GEMM on the codes vs dequant */
        bench_q4gemm();
        return 0;
    }

    if (getenv("LLM_BENCH_W8_PICKS")) {
        /* fp8 products (per-tensor) in Llama-3.1-8B's and -70B's shapes under each of the
         * heuristic's first eight candidates */
        const int sh[][2] = {{6144, 4096},   {4096, 4096},   {28672, 4096}, {4096, 14336},
                             {10240, 8192},  {8192, 8192},   {57344, 8192}, {8192, 28672}};
        const int ms[] = {1024, 1536, 8192};
        for (int mi = 0; mi < 3; mi++)
            for (int si = 0; si < 8; si++)
                for (int pk = 0; pk < 8; pk++) {
                    char l[32];
                    snprintf(l, sizeof l, "pick%d", pk);
                    cu_gemm_set_pick(G, pk);
                    bench_w8(l, LLM_K_A_FP8, 1, ms[mi], sh[si][0], sh[si][1]);
                }
        cu_gemm_set_pick(G, 0);
        return 0;
    }
    if (getenv("LLM_BENCH_ATTN_ONLY")) { /* the attention kernels alone */
        bench_attn_all(p.multiProcessorCount);
        return 0;
    }
    /* Llama-2-7B linear layers: decode (m 1..8, GEMV kernel vs cuBLASLt), prefill (m 2048) */
    const struct {
        const char *l;
        int n, k;
    } lin[] = {{"qkv", 12288, 4096}, {"o", 4096, 4096}, {"gate_up", 22016, 4096},
               {"down", 4096, 11008}};
    /* the same layers with fp8 / int8 activations: the fp8 GEMM's own rate at 8192^3 (its
     * ceiling), one decode token's products, and batches of 8 .. 4096 rows */
    for (int a = LLM_K_A_FP8; a <= LLM_K_A_INT8; a++) {
        bench_w8("ceiling 8192^3", a, 0, 8192, 8192, 8192);
        if (a == LLM_K_A_FP8) bench_w8("ceiling 8192^3", a, 1, 8192, 8192, 8192);
        const int wm[] = {1, 8, 64, 512, 4096};
        for (int mi = 0; mi < 5; mi++)
            for (int sc = 0; sc <= (a == LLM_K_A_FP8 && wm[mi] > 8); sc++) {
                double tok = 0;
                for (int i = 0; i < 4; i++)
                    tok += bench_w8(lin[i].l, a, sc, wm[mi], lin[i].n, lin[i].k);
                char shape[96];
                snprintf(shape, sizeof shape, "llama2-7b 32 layers m%d %s%s", wm[mi],
                         a == LLM_K_A_FP8 ? "fp8" : "int8", sc ? " per-tensor" : "");
                double lb = 32.0 * (12288.0 + 4096 + 22016 + 4096) * 4096;
                report("w8_linears", shape, 32 * tok, lb, 2.0 * wm[mi] * lb);
            }
    }
    if (getenv("LLM_BENCH_W8_ONLY")) return 0;
    const int ms[] = {1, 4, 8};
    for (int i = 0; i < 4; i++)
        for (int mi = 0; mi < 3; mi++) {
            bench_linear(lin[i].l, ms[mi], lin[i].n, lin[i].k, 1);
            bench_linear(lin[i].l, ms[mi], lin[i].n, lin[i].k, 0);
        }
    for (int i = 0; i < 4; i++) bench_linear(lin[i].l, 256, lin[i].n, lin[i].k, 0);
    for (int i = 0; i < 4; i++) bench_linear(lin[i].l, 2048, lin[i].n, lin[i].k, 0);

    /* the same layers weight-only quantized: one row (the single-row tile shapes
     * too), a few rows, and the dequantize + cuBLASLt path; then the sum of one
     * decode token's 32 layers of products (qkv, o, gate/up fused, down) */
    const struct {
        const char *l;
        int group, pre;
        int tile;
    } qf[] = {{"int4 tc", 128, 1, 1}, {"int4 tc", 128, 0, 1}, {"int4 tc", 64, 1, 1},
              {"int4", 128, 1, 0}, {"int4", 128, 0, 0}, {"int8", 0, 0, 0}};
    for (int f = 0; f < 6; f++) {
        qtile = qf[f].tile;
        double tok = 0;
        for (int i = 0; i < 4; i++)
            tok += bench_qlinear(lin[i].l, 1, lin[i].n, lin[i].k, qf[f].group, qf[f].pre, i == 2,
                                 0, f != 2);
        qtile = 0;
        char shape[96];
        snprintf(shape, sizeof shape, "llama2-7b 32 layers %s%s g%d", qf[f].l,
                 qf[f].pre ? " awq" : "", qf[f].group);
        double lb = 32.0 * (12288.0 + 4096 + 22016 + 4096) * 4096 * (qf[f].group ? 0.5 : 1.0);
        report("qdecode_linears", shape, 32 * tok, lb, 0);
    }
    for (qtile = 1; qtile >= 0; qtile--)
        for (int i = 0; i < 4; i++) {
            bench_qlinear(lin[i].l, 4, lin[i].n, lin[i].k, 128, 1, i == 2, 0, 0);
            bench_qlinear(lin[i].l, 8, lin[i].n, lin[i].k, 128, 0, i == 2, 0, 0);
        }
    qtile = 0;
    for (int i = 0; i < 4; i++) {
        bench_qlinear(lin[i].l, 4, lin[i].n, lin[i].k, 128, 1, i == 2, 0, 0);
        bench_qlinear(lin[i].l, 8, lin[i].n, lin[i].k, 128, 1, i == 2, 0, 0);
        bench_qlinear(lin[i].l, 256, lin[i].n, lin[i].k, 128, 1, 0, 1, 0);
    }
    bench_qtile_ab();

    bench_attn_all(p.multiProcessorCount);

    bench_ew(1, 0);
    bench_ew(2048, 0);
    cu_gemm_destroy(G);
    if (jf != stdout) fclose(jf);
    return 0;
}
