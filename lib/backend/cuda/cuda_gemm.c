/* cuda_gemm.c - matrix products through cuBLASLt, and the error mapping.
 *
 * Design: a product is described by its shape and options (m, n, k, leading
 * dimensions, output type, bias, accumulate).  The first time a shape is
 * seen, its matmul descriptor, the three layouts and the heuristic's best
 * algorithm are built and kept in a small table (replaced round-robin when
 * full), so a steady decode loop repeats cached calls with no setup.  f16
 * and bf16 run with fp32 accumulation (CUBLAS_COMPUTE_32F); f32 runs in
 * full fp32 (no TF32), the exact mode the CPU reference is compared with.
 *
 * Products of 8-bit operands (cu_gemm_run8) are cached the same way under
 * their operand kind: fp8 with the activation rows' and the weight rows'
 * scales as cuBLASLt's outer-vector scales and the bias in its epilogue;
 * where the library offers no algorithm for a product (remembered per
 * shape, said once per output type and bias), fp8
 * into fp32 and int8 into int32 with the scales, bias and residual applied
 * by llm_k_w8a8_scale, a block of rows at a time through a scratch.
 *
 * Measured at first use (entry_settle): the heuristic's first answer is not
 * always its fastest (the fp8 products of Llama-3.1-70B's MLP at 1024 rows:
 * its fourth candidate is 11% faster than its first on the H200).  So a
 * product that overwrites its output, the first time its kind is seen (the
 * shape and options with the rows rounded up to a power of two), is run under
 * each of the heuristic's first TUNE_CANDIDATES candidates on its own operands
 * and the fastest is kept for the kind; a later shape of the kind takes it
 * where cuBLASLt accepts it.  Not while the stream is captured, not for a
 * product that adds into its output (it would add again), not where an
 * engine brought its measured choice (llm-build); LLM_CUDA_GEMM_TUNE=0 (or
 * cu_gemm_set_online): the heuristic's first, as before.  Which candidate
 * wins can differ from one process to the next (timing), so results can
 * differ in the last bits between runs; within a run every repetition of a
 * product is the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/engine_artifact.h"
#include "llm/log.h"
#include "cuda_internal.h"

int cu_fail(int lib, int code, const char *call, const char *file, int line)
{
    const char *name, *desc;
    if (lib == CU_LIB_BLAS) {
        name = cublasLtGetStatusName((cublasStatus_t)code);
        desc = cublasLtGetStatusString((cublasStatus_t)code);
    } else {
        name = cudaGetErrorName((cudaError_t)code);
        desc = cudaGetErrorString((cudaError_t)code);
    }
    const char *f = strrchr(file, '/');
    return llm_err_set(LLM_EDEVICE, "%s:%d: %s: %s (%s)", f ? f + 1 : file, line, call,
                       name ? name : "?", desc ? desc : "?");
}

#define GEMM_CACHE 256

/* operand kinds of a cached product */
enum { AB_DENSE = 0, AB_FP8_VEC, AB_FP8_F32, AB_INT8_I32, AB_FP8_SCALAR, AB_FP8_BLK };

struct gemm_key {
    int m, n, k, ldx, ldy, yt, bias, acc, ab;
};

struct gemm_entry {
    struct gemm_key key;
    int used;
    int fresh, preset; /* built by this call (not yet settled); the algorithm an engine's */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

struct cu_gemm {
    cublasLtHandle_t lt;
    int dt;
    void *ws;
    size_t ws_bytes;
    struct gemm_entry e[GEMM_CACHE];
    int next;
    struct llm_gemm_choice *pre; /* an engine's measured choices, tried before the heuristic */
    int n_pre;
    /* fp8 products with outer-vector scales cuBLASLt refused (round robin), and
     * which (output type, bias) pairs have said so */
    struct gemm_key no_vec[GEMM_CACHE];
    int n_no_vec, next_no_vec;
    unsigned told_no_vec;
    int8_t fp8_fast; /* fp8 products accumulate without promotion (LLM_CUDA_FP8_FAST_ACCUM) */
    int pick;        /* cu_gemm_set_pick: the heuristic's candidate taken (0: its first) */
    int8_t online;   /* measure at first use (LLM_CUDA_GEMM_TUNE, default on) */
    /* kinds measured at first use: the key with m rounded up to a power of two */
    struct {
        struct gemm_key k;
        cublasLtMatmulAlgo_t algo;
    } tuned[GEMM_CACHE];
    int n_tuned, next_tuned;
};

static cudaDataType_t cuda_type(int dt)
{
    return dt == LLM_DTYPE_F16 ? CUDA_R_16F : dt == LLM_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static void entry_free(struct gemm_entry *e)
{
    if (!e->used) return;
    cublasLtMatrixLayoutDestroy(e->la);
    cublasLtMatrixLayoutDestroy(e->lb);
    cublasLtMatrixLayoutDestroy(e->lc);
    cublasLtMatmulDescDestroy(e->op);
    e->used = 0;
}

int cu_gemm_create(struct cu_gemm **out, int dt, size_t workspace_bytes)
{
    *out = NULL;
    struct cu_gemm *g = calloc(1, sizeof *g);
    if (!g) return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    g->dt = dt;
    g->ws_bytes = workspace_bytes;
    /* fp8 products in the tensor cores' fast accumulation (no periodic promotion
     * of the partial sums to full fp32), as the fp8 inference stacks run them;
     * LLM_CUDA_FP8_FAST_ACCUM=0: the promoted, slower mode */
    const char *fa = getenv("LLM_CUDA_FP8_FAST_ACCUM");
    g->fp8_fast = !(fa && !strcmp(fa, "0"));
    const char *gt = getenv("LLM_CUDA_GEMM_TUNE");
    g->online = !(gt && !strcmp(gt, "0"));
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return cu_fail(CU_LIB_BLAS, (int)s, "cublasLtCreate", __FILE__, __LINE__);
    }
    cudaError_t e = cudaMalloc(&g->ws, workspace_bytes);
    if (e != cudaSuccess) {
        cublasLtDestroy(g->lt);
        free(g);
        return cu_fail(CU_LIB_RT, (int)e, "cudaMalloc(gemm workspace)", __FILE__, __LINE__);
    }
    *out = g;
    return 0;
}

void cu_gemm_destroy(struct cu_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < GEMM_CACHE; i++) entry_free(&g->e[i]);
    cudaFree(g->ws);
    cublasLtDestroy(g->lt);
    free(g->pre);
    free(g);
}

int cu_gemm_fp8_fast(const struct cu_gemm *g)
{
    return g->fp8_fast;
}

int cu_gemm_set_choices(struct cu_gemm *g, const struct llm_gemm_choice *c, int n)
{
    free(g->pre);
    g->pre = NULL;
    g->n_pre = 0;
    if (n <= 0) return 0;
    if (!(g->pre = malloc(sizeof *c * (size_t)n)))
        return llm_err_set(LLM_ENOMEM, "cuda backend: out of memory");
    memcpy(g->pre, c, sizeof *c * (size_t)n);
    g->n_pre = n;
    return 0;
}

/* Descriptor and layouts of a product (no algorithm yet). */
static int entry_layouts(struct cu_gemm *g, struct gemm_entry *e, const struct gemm_key *k)
{
    cudaDataType_t in = cuda_type(g->dt), ot = cuda_type(k->yt);
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    cudaDataType_t st = CUDA_R_32F;
    if (k->ab == AB_FP8_VEC || k->ab == AB_FP8_F32 || k->ab == AB_FP8_SCALAR || k->ab == AB_FP8_BLK)
        in = CUDA_R_8F_E4M3;
    if (k->ab == AB_FP8_F32) ot = CUDA_R_32F;
    if (k->ab == AB_INT8_I32) in = CUDA_R_8I, ot = CUDA_R_32I, ct = CUBLAS_COMPUTE_32I, st = CUDA_R_32I;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CKB(cublasLtMatmulDescCreate(&e->op, ct, st));
    e->used = 1;
    e->la = e->lb = e->lc = NULL;
    CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if ((k->ab == AB_FP8_VEC || k->ab == AB_FP8_F32 || k->ab == AB_FP8_SCALAR) && g->fp8_fast)
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &g->fp8_fast,
                                           sizeof g->fp8_fast));
    if (k->ab == AB_FP8_VEC || k->ab == AB_FP8_SCALAR || k->ab == AB_FP8_BLK) {
        /* A = the weight rows' scales, B = the activation rows' (vectors, one
         * each, or one per 128 inputs of a row: [k / 128][rows], rows
         * innermost); pointers are set per call, a placeholder now (the
         * library checks that there is one) */
        int32_t mode = k->ab == AB_FP8_VEC      ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
                       : k->ab == AB_FP8_SCALAR ? CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F
                                                : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
        const void *ph = g->ws;
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode,
                                           sizeof mode));
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode,
                                           sizeof mode));
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ph,
                                           sizeof ph));
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &ph,
                                           sizeof ph));
    }
    if (k->bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
        if (k->ab == AB_FP8_VEC || k->ab == AB_FP8_SCALAR || k->ab == AB_FP8_BLK) {
            /* the bias in y's type */
            int32_t bt = (int32_t)ot;
            CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                               sizeof bt));
        }
    }
    /* column-major views: A = w as k x n (ld k, transposed), B = x as k x m, C = y as n x m */
    CKB(cublasLtMatrixLayoutCreate(&e->la, in, (uint64_t)k->k, (uint64_t)k->n, k->k));
    CKB(cublasLtMatrixLayoutCreate(&e->lb, in, (uint64_t)k->k, (uint64_t)k->m, k->ldx));
    CKB(cublasLtMatrixLayoutCreate(&e->lc, ot, (uint64_t)k->n, (uint64_t)k->m, k->ldy));
    e->key = *k;
    return 0;
}

/* An engine's measured algorithm for this product, if it has one that
 * cuBLASLt accepts for these layouts and the workspace: 1, else 0. */
static int entry_preset(struct cu_gemm *g, struct gemm_entry *e, const struct gemm_key *k)
{
    const struct llm_gemm_choice *c = llm_ea_gemm_find(g->pre, g->n_pre, k->m, k->n, k->k,
                                                           k->ldx, k->ldy, k->yt, k->bias, k->acc);
    if (!c || !c->measured) return 0;
    cublasLtMatmulAlgo_t algo;
    _Static_assert(sizeof algo == sizeof c->algo, "cublasLtMatmulAlgo_t is 64 bytes");
    memcpy(&algo, c->algo, sizeof algo);
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    cublasStatus_t s = cublasLtMatmulAlgoCheck(g->lt, e->op, e->la, e->lb, e->lc, e->lc, &algo,
                                               &res);
    if (s != CUBLAS_STATUS_SUCCESS || res.workspaceSize > g->ws_bytes) {
        llm_debug("cublasLt: the engine's %s choice (m %d) does not fit m %d n %d k %d (%s); "
                  "using the heuristic", llm_gemm_op_name(c->op), c->m, k->m, k->n, k->k,
                  cublasLtGetStatusName(s));
        return 0;
    }
    e->algo = algo;
    return 1;
}

/* The heuristic's first n candidates for e's product within the workspace. */
static cublasStatus_t heuristic(struct cu_gemm *g, const struct gemm_entry *e, int n,
                                cublasLtMatmulHeuristicResult_t *res, int *found)
{
    cublasLtMatmulPreference_t pref;
    *found = 0;
    cublasStatus_t s = cublasLtMatmulPreferenceCreate(&pref);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &g->ws_bytes, sizeof g->ws_bytes);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(g->lt, e->op, e->la, e->lb, e->lc, e->lc, pref, n, res,
                                           found);
    cublasLtMatmulPreferenceDestroy(pref);
    return s;
}

/* Microseconds of one run of e's product under algo: warm untimed runs, then
 * the best of reps means of runs back-to-back runs.  -1: the candidate does
 * not run (its error cleared); -2: the events failed. */
static float time_algo(struct cu_gemm *g, cudaStream_t st, const struct gemm_entry *e,
                       const cublasLtMatmulAlgo_t *algo, const void *alpha, const void *w,
                       const void *x, const void *beta, void *y, cudaEvent_t t0, cudaEvent_t t1,
                       int warm, int reps, int runs)
{
    for (int r = 0; r < warm; r++)
        if (cublasLtMatmul(g->lt, e->op, alpha, w, e->la, x, e->lb, beta, y, e->lc, y, e->lc,
                           algo, g->ws, g->ws_bytes, st) != CUBLAS_STATUS_SUCCESS) {
            cudaGetLastError();
            return -1.f;
        }
    float best = -1.f;
    for (int rep = 0; rep < reps; rep++) {
        float ms = 0.f;
        if (cudaEventRecord(t0, st) != cudaSuccess) return -2.f;
        for (int r = 0; r < runs; r++)
            cublasLtMatmul(g->lt, e->op, alpha, w, e->la, x, e->lb, beta, y, e->lc, y, e->lc, algo,
                           g->ws, g->ws_bytes, st);
        if (cudaEventRecord(t1, st) != cudaSuccess || cudaEventSynchronize(t1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, t0, t1) != cudaSuccess)
            return -2.f;
        const float us = ms * 1000.f / runs;
        if (best < 0.f || us < best) best = us;
    }
    return best;
}

static int entry_build(struct cu_gemm *g, struct gemm_entry *e, const struct gemm_key *k)
{
    int rc = entry_layouts(g, e, k);
    if (rc) return rc;
    e->fresh = 1;
    e->preset = 0;
    if (g->n_pre && k->ab == AB_DENSE && entry_preset(g, e, k)) return e->preset = 1, 0;
    cublasLtMatmulHeuristicResult_t res[8];
    int found = 0;
    CKB(heuristic(g, e, g->pick + 1, res, &found));
    static const char *const ab_name[] = {"",      " fp8 (scaled)", " fp8",
                                          " int8", " fp8 (scalar)", " fp8 (block-scaled)"};
    if (found < 1)
        return llm_err_set(LLM_EDEVICE, "cublasLt: no algorithm for %s%s product m %d n %d k %d",
                           llm_dtype_name(g->dt), ab_name[k->ab], k->m, k->n, k->k);
    e->algo = res[g->pick < found ? g->pick : found - 1].algo;
    return 0;
}

void cu_gemm_set_online(struct cu_gemm *g, int on)
{
    g->online = on != 0;
}

void cu_gemm_set_pick(struct cu_gemm *g, int i)
{
    g->pick = i < 0 ? 0 : i > 7 ? 7 : i;
    for (int j = 0; j < GEMM_CACHE; j++) entry_free(&g->e[j]);
    g->n_tuned = g->next_tuned = 0;
}

/* The cached entry of a product, built at its first use. */
static int entry_get(struct cu_gemm *g, const struct gemm_key *key, struct gemm_entry **out)
{
    struct gemm_entry *e = NULL;
    for (int i = 0; i < GEMM_CACHE; i++)
        if (g->e[i].used && !memcmp(&g->e[i].key, key, sizeof *key)) {
            e = &g->e[i];
            break;
        }
    if (!e) {
        e = &g->e[g->next];
        g->next = (g->next + 1) % GEMM_CACHE;
        entry_free(e);
        int rc = entry_build(g, e, key);
        if (rc) {
            entry_free(e);
            return rc;
        }
    }
    *out = e;
    return 0;
}

#define TUNE_CANDIDATES 8
/* The algorithm of a product built by this call (entry_build took the
 * heuristic's first): its kind's measured one, or measure the kind now (see
 * the top of the file).  The operands are the call's own, with its scale and
 * bias pointers set; a candidate that does not run is skipped, and nothing
 * here is fatal: the heuristic's choice stays. */
static void entry_settle(struct cu_gemm *g, cudaStream_t st, struct gemm_entry *e, const void *w,
                         const void *x, void *y, const void *alpha, const void *beta)
{
    if (!e->fresh) return;
    e->fresh = 0;
    if (!g->online || e->preset || e->key.acc || e->key.m <= 8 || g->pick) return;
    struct gemm_key bk = e->key;
    int b = 16;
    while (b < bk.m && b < (1 << 30)) b <<= 1;
    bk.m = b;
    for (int i = 0; i < g->n_tuned; i++)
        if (!memcmp(&g->tuned[i].k, &bk, sizeof bk)) {
            cublasLtMatmulHeuristicResult_t r;
            memset(&r, 0, sizeof r);
            if (cublasLtMatmulAlgoCheck(g->lt, e->op, e->la, e->lb, e->lc, e->lc,
                                        &g->tuned[i].algo, &r) == CUBLAS_STATUS_SUCCESS &&
                r.workspaceSize <= g->ws_bytes)
                e->algo = g->tuned[i].algo;
            return;
        }
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) return;
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
    int found = 0;
    heuristic(g, e, TUNE_CANDIDATES, res, &found);
    cudaEvent_t t0 = NULL, t1 = NULL;
    if (found < 2 || cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess) {
        if (t0) cudaEventDestroy(t0);
        return;
    }
    int best = -1;
    float best_us = 0.f, first_us = 0.f;
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > g->ws_bytes) continue;
        /* one run to warm up, then the best of two means of three runs */
        const float cand = time_algo(g, st, e, &res[i].algo, alpha, w, x, beta, y, t0, t1, 1, 2, 3);
        if (cand < 0.f) continue;
        if (i == 0) first_us = cand;
        if (best < 0 || cand < best_us) best = i, best_us = cand;
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    cudaGetLastError();
    if (best < 0) return;
    e->algo = res[best].algo;
    g->tuned[g->next_tuned].k = bk;
    g->tuned[g->next_tuned].algo = res[best].algo;
    g->next_tuned = (g->next_tuned + 1) % GEMM_CACHE;
    if (g->n_tuned < GEMM_CACHE) g->n_tuned++;
    llm_debug("cublasLt: m %d n %d k %d (kind %d): candidate %d of %d, %.1f us (first %.1f us)",
              e->key.m, e->key.n, e->key.k, e->key.ab, best, found, best_us, first_us);
}

/* A cached entry's product: the bias set, the algorithm settled at first use,
 * y (+)= w x. */
static int run_entry(struct cu_gemm *g, cudaStream_t st, struct gemm_entry *e, const void *w,
                     const void *x, const void *bias, void *y, int accumulate)
{
    if (bias)
        CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                           sizeof bias));
    float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
    entry_settle(g, st, e, w, x, y, &alpha, &beta);
    CKB(cublasLtMatmul(g->lt, e->op, &alpha, w, e->la, x, e->lb, &beta, y, e->lc, y, e->lc,
                       &e->algo, g->ws, g->ws_bytes, st));
    return 0;
}

int cu_gemm_run(struct cu_gemm *g, cudaStream_t st, int m, int n, int k, const void *x, int ldx,
                const void *w, const void *bias, void *y, int ldy, int yt, int accumulate)
{
    if (m <= 0) return 0;
    struct gemm_key key = {m, n, k, ldx, ldy, yt, bias != NULL, accumulate != 0, AB_DENSE};
    struct gemm_entry *e;
    int rc = entry_get(g, &key, &e);
    if (rc) return rc;
    return run_entry(g, st, e, w, x, bias, y, accumulate);
}

/* A scaled 8-bit product of a cached entry: the weight's and the rows' scale
 * pointers set (as the entry's scale modes read them), then run_entry. */
static int run_scaled(struct cu_gemm *g, cudaStream_t st, struct gemm_entry *e, const void *wq,
                      const float *ws, const void *xq, const float *xs, const void *bias, void *y,
                      int accumulate)
{
    CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ws,
                                       sizeof ws));
    CKB(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs,
                                       sizeof xs));
    return run_entry(g, st, e, wq, xq, bias, y, accumulate);
}

/* Products cuBLASLt refused (round robin): whether key is one, and adding it. */
static int refused(const struct cu_gemm *g, const struct gemm_key *key)
{
    for (int i = 0; i < g->n_no_vec; i++)
        if (!memcmp(&g->no_vec[i], key, sizeof *key)) return 1;
    return 0;
}

static void refuse(struct cu_gemm *g, const struct gemm_key *key)
{
    g->no_vec[g->next_no_vec] = *key;
    g->next_no_vec = (g->next_no_vec + 1) % GEMM_CACHE;
    if (g->n_no_vec < GEMM_CACHE) g->n_no_vec++;
}

int cu_gemm_run8(struct cu_gemm *g, cudaStream_t st, int act, int scalar, int m, int n, int k,
                 const void *xq, const float *xs, const void *wq, const float *ws,
                 const void *bias, void *y, int ldy, int yt, int accumulate, void *acc,
                 size_t acc_bytes)
{
    if (m <= 0) return 0;
    struct gemm_entry *e;
    int rc;
    struct gemm_key key = {m,    n,           k, k, ldy, yt, bias != NULL, accumulate != 0,
                           act == LLM_K_A_FP8 && scalar ? AB_FP8_SCALAR : AB_FP8_VEC};
    if (act == LLM_K_A_FP8 && !refused(g, &key)) {
        if (!(rc = entry_get(g, &key, &e)))
            return run_scaled(g, st, e, wq, ws, xq, xs, bias, y, accumulate);
        unsigned bit = 1u << ((yt == LLM_DTYPE_F32 ? 0 : yt == LLM_DTYPE_F16 ? 2 : 4) + !!bias);
        if (!(g->told_no_vec & bit))
            llm_info("cublasLt: no fp8 product with %s scales into %s%s (m %d n %d k %d: "
                     "%s); scaling after the product instead",
                     key.ab == AB_FP8_SCALAR ? "per-tensor" : "per-row", llm_dtype_name(yt),
                     bias ? " with a bias" : "", m, n, k, llm_errmsg());
        g->told_no_vec |= bit;
        refuse(g, &key);
    }
    /* the product into the scratch, a block of rows at a time, then the scales */
    const int i8 = act == LLM_K_A_INT8;
    int rows = (int)(acc_bytes / (sizeof(float) * (size_t)n));
    if (rows < 1)
        return llm_err_set(LLM_EINVAL, "cuda backend: no scratch for an 8-bit product of %d "
                           "columns", n);
    for (int r0 = 0; r0 < m; r0 += rows) {
        int mc = m - r0 < rows ? m - r0 : rows;
        key = (struct gemm_key){mc, n, k, k, n, i8 ? LLM_DTYPE_I32 : LLM_DTYPE_F32, 0, 0,
                               i8 ? AB_INT8_I32 : AB_FP8_F32};
        if ((rc = entry_get(g, &key, &e))) return rc;
        float fa = 1.f, fb = 0.f;
        int32_t ia = 1, ib = 0;
        const void *alpha = i8 ? (const void *)&ia : (const void *)&fa;
        const void *beta = i8 ? (const void *)&ib : (const void *)&fb;
        entry_settle(g, st, e, wq, (const char *)xq + (size_t)r0 * k, acc, alpha, beta);
        CKB(cublasLtMatmul(g->lt, e->op, alpha, wq, e->la, (const char *)xq + (size_t)r0 * k,
                           e->lb, beta, acc, e->lc, acc, e->lc, &e->algo, g->ws, g->ws_bytes, st));
        CK(llm_k_w8a8_scale(yt, (char *)y + (size_t)r0 * ldy * (yt == LLM_DTYPE_F32 ? 4 : 2),
                            ldy, acc, i8, xs + r0, ws, bias, mc, n, accumulate, st));
    }
    return 0;
}

int cu_gemm_run_blk(struct cu_gemm *g, cudaStream_t st, int m, int n, int k, const void *xq,
                    const float *xs, const void *wq, const float *ws, const void *bias, void *y,
                    int ldy, int yt, int accumulate)
{
    if (m <= 0) return 0;
    struct gemm_key key = {m, n, k, k, ldy, yt, bias != NULL, accumulate != 0, AB_FP8_BLK};
    if (refused(g, &key))
        return llm_err_set(LLM_EUNSUPPORTED,
                           "cublasLt: no block-scaled fp8 product m %d n %d "
                           "k %d",
                           m, n, k);
    struct gemm_entry *e;
    if (entry_get(g, &key, &e)) { /* remembered: the caller's other path, without asking again */
        refuse(g, &key);
        char why[256];
        snprintf(why, sizeof why, "%s", llm_errmsg());
        return llm_err_set(LLM_EUNSUPPORTED, "%s", why);
    }
    return run_scaled(g, st, e, wq, ws, xq, xs, bias, y, accumulate);
}

/* ---- measuring algorithms (llm-build) --------------------------------------------
 * Every candidate the heuristic offers is run twice to warm up, then timed
 * TUNE_REPS times over TUNE_RUNS back-to-back launches; a candidate's time
 * is its best mean, and the fastest candidate wins.  A candidate that fails
 * to launch is skipped, not fatal. */
#define TUNE_REPS 3
#define TUNE_RUNS 10

#define TK(call)                                                                                   \
    do {                                                                                           \
        int tk_e_ = (int)(call);                                                                   \
        if (tk_e_ != 0) {                                                                          \
            rc = cu_fail(CU_LIB_RT, tk_e_, #call, __FILE__, __LINE__);                             \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

int cu_gemm_tune(struct cu_gemm *g, cudaStream_t st, struct llm_gemm_choice *c, const void *w,
                 const void *x, void *y, const void *bias)
{
    struct gemm_key key = {c->m,          c->n,         c->k, c->ldx, c->ldy, c->out_dtype,
                           c->bias != 0, c->accumulate != 0, AB_DENSE};
    struct gemm_entry e;
    memset(&e, 0, sizeof e);
    cudaEvent_t t0 = NULL, t1 = NULL;
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
    int found = 0, best = -1, tried = 0;
    float best_us = 0.f;
    int rc = entry_layouts(g, &e, &key);
    if (rc) goto out;
    cublasStatus_t s = heuristic(g, &e, TUNE_CANDIDATES, res, &found);
    if (s == CUBLAS_STATUS_SUCCESS && bias)
        s = cublasLtMatmulDescSetAttribute(e.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                           sizeof bias);
    if (s != CUBLAS_STATUS_SUCCESS) {
        rc = cu_fail(CU_LIB_BLAS, (int)s, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
        goto out;
    }
    TK(cudaEventCreate(&t0));
    TK(cudaEventCreate(&t1));
    float alpha = 1.f, beta = c->accumulate ? 1.f : 0.f;
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > g->ws_bytes) continue;
        const float cand = time_algo(g, st, &e, &res[i].algo, &alpha, w, x, &beta, y, t0, t1, 2,
                                     TUNE_REPS, TUNE_RUNS);
        if (cand == -2.f) {
            rc = cu_fail(CU_LIB_RT, (int)cudaGetLastError(), "timing a candidate", __FILE__,
                         __LINE__);
            goto out;
        }
        if (cand < 0.f) {
            llm_debug("cublasLt: candidate %d of %s m %d n %d k %d does not run; skipped", i,
                      llm_gemm_op_name(c->op), c->m, c->n, c->k);
            continue;
        }
        tried++;
        if (best < 0 || cand < best_us) {
            best = i;
            best_us = cand;
        }
    }
    if (best < 0) {
        rc = llm_err_set(LLM_EDEVICE, "cublasLt: no algorithm runs the %s product m %d n %d k %d "
                         "(%s)", llm_gemm_op_name(c->op), c->m, c->n, c->k,
                         llm_dtype_name(g->dt));
        goto out;
    }
    _Static_assert(sizeof res[0].algo == sizeof c->algo, "cublasLtMatmulAlgo_t is 64 bytes");
    memcpy(c->algo, &res[best].algo, sizeof c->algo);
    c->measured = 1;
    c->time_us = best_us;
    c->candidates = tried;
out:
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    entry_free(&e);
    return rc;
}
