/* test_ops.c - every CUDA kernel against the CPU reference op (cpu_ops.h).
 *
 * In the manner of ggml's test-backend-ops: each case draws fresh random
 * inputs, rounds them to the case's dtype (so both sides see the same
 * values), poisons the GPU output (0xff bytes: NaN in every float type),
 * runs the kernel, and compares with the reference by normalised mean
 * squared error, sum((gpu - ref)^2) / sum(ref^2), against a per-op,
 * per-dtype bound.  A non-finite GPU value where the reference is finite
 * (an element never written) fails the case.  Each case prints one line,
 * OP(params): nmse and bound; a failing case also prints its first
 * mismatches.  Exits 77 when no CUDA device is present, so CI (nvcc, no
 * GPU) builds it and skips it.
 *
 * Usage: test_ops [filter]   (runs the cases whose name contains one of the
 *                             '|'-separated parts of filter)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/random.h"
#include "llm/sample.h"
#include "llm/weight.h"
#include "lib/backend/cpu/cpu_ops.h"
#include "lib/backend/cuda/cuda_internal.h"
#include "kernels/kernels.h"

static int n_cases, n_failed;
static const char *filter;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

#define CUDA(x)                                                                                    \
    do {                                                                                           \
        cudaError_t e_ = (cudaError_t)(x);                                                         \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorName(e_));       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float frand(void)
{
    return (float)rnd32() / 4294967296.0f * 2.f - 1.f;
}
static int irand(int n)
{
    return (int)(rnd32() % (uint32_t)n);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static size_t esize(int dt)
{
    return dt == LLM_DTYPE_F32 ? 4 : 2;
}

/* Random values in [-scale, scale), rounded to dt; returns the host copy in dt too. */
static float *rand_vals(size_t n, float scale, int dt, void **as_dt)
{
    float *f = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = frand() * scale;
    void *h = xmalloc(n * esize(dt));
    llm_cpu_from_f32(h, dt, 0, f, (int64_t)n);
    llm_cpu_to_f32(f, h, dt, 0, (int64_t)n);
    if (as_dt)
        *as_dt = h;
    else
        free(h);
    return f;
}

static void *dev_copy(const void *h, size_t bytes)
{
    void *d;
    CUDA(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes) CUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void *dev_poison(size_t bytes)
{
    void *d;
    CUDA(cudaMalloc(&d, bytes ? bytes : 16));
    CUDA(cudaMemset(d, 0xff, bytes ? bytes : 16));
    return d;
}
static float *dev_f32(const void *d, size_t n, int dt)
{
    void *h = xmalloc(n * esize(dt));
    CUDA(cudaDeviceSynchronize());
    CUDA(cudaMemcpy(h, d, n * esize(dt), cudaMemcpyDeviceToHost));
    float *f = xmalloc(n * sizeof(float));
    llm_cpu_to_f32(f, h, dt, 0, (int64_t)n);
    free(h);
    return f;
}
static void round_to(float *x, size_t n, int dt)
{
    void *h = xmalloc(n * esize(dt));
    llm_cpu_from_f32(h, dt, 0, x, (int64_t)n);
    llm_cpu_to_f32(x, h, dt, 0, (int64_t)n);
    free(h);
}

/* filter: substrings separated by '|'; a case runs when its name contains one */
static int want(const char *name)
{
    if (!filter) return 1;
    const char *f = filter;
    while (*f) {
        const char *e = strchr(f, '|');
        size_t n = e ? (size_t)(e - f) : strlen(f);
        char part[128];
        if (n >= sizeof part) n = sizeof part - 1;
        memcpy(part, f, n);
        part[n] = 0;
        if (n && strstr(name, part)) return 1;
        if (!e) break;
        f = e + 1;
    }
    return 0;
}

/* Compare and report one case; returns 1 when it passed. */
static int check(const char *name, const float *got, const float *ref, size_t n, double bound)
{
    double num = 0, den = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) && isfinite(ref[i])) {
            bad++;
            continue;
        }
        if (!isfinite(ref[i])) continue;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    double e = den > 0 ? num / den : num;
    int ok = !bad && e <= bound;
    n_cases++;
    printf("%-72s nmse %.2e  bound %.0e  %s\n", name, e, bound, ok ? "ok" : "FAIL");
    if (!ok) {
        n_failed++;
        double rms = n ? sqrt(den / (double)n) : 0;
        int shown = 0;
        for (size_t i = 0; i < n && shown < 8; i++) {
            double d = fabs((double)got[i] - ref[i]);
            if (!isfinite(got[i]) || d > 4 * sqrt(bound) * (fabs(ref[i]) + rms) + 1e-30) {
                printf("    [%zu] gpu %.8g  ref %.8g\n", i, got[i], ref[i]);
                shown++;
            }
        }
        if (bad) printf("    %zu non-finite outputs (unwritten?)\n", bad);
    }
    return ok;
}

static const int DTS[3] = {LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16};

/* Output rounding bound for elementwise results in dt. */
static double bound_ew(int dt)
{
    return dt == LLM_DTYPE_F32 ? 1e-12 : dt == LLM_DTYPE_F16 ? 1e-8 : 1e-7;
}

/* ---- embedding --------------------------------------------------------------- */

static void test_embed(void)
{
    const int shapes[][3] = {{1000, 64, 1}, {1000, 4096, 7}, {5003, 520, 33}};
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++)
            for (int lp = 0; lp < 2; lp++) {
                int dt = DTS[di], V = shapes[si][0], H = shapes[si][1], n = shapes[si][2];
                float scale = lp ? 1.f : sqrtf((float)H);
                char name[160];
                snprintf(name, sizeof name, "EMBED(dt=%s,vocab=%d,hidden=%d,n=%d,learned_pos=%d)",
                         llm_dtype_name(dt), V, H, n, lp);
                if (!want(name)) continue;
                void *tab_h, *pt_h;
                float *tab = rand_vals((size_t)V * H, 1.f, dt, &tab_h);
                float *pt = rand_vals((size_t)256 * H, 0.5f, dt, &pt_h);
                int32_t tok[64], pos[64];
                for (int i = 0; i < n; i++) {
                    tok[i] = irand(V);
                    pos[i] = irand(256);
                }
                float *ref = xmalloc(sizeof(float) * (size_t)n * H);
                llm_cpu_embed(ref, tok, n, tab_h, dt, V, H, scale);
                if (lp) llm_cpu_add_rows(ref, pos, n, pt_h, dt, 256, H);
                round_to(ref, (size_t)n * H, dt);
                void *dtab = dev_copy(tab_h, (size_t)V * H * esize(dt));
                void *dpt = dev_copy(pt_h, (size_t)256 * H * esize(dt));
                void *dtok = dev_copy(tok, sizeof(int32_t) * n), *dpos = dev_copy(pos, 4 * n);
                void *dout = dev_poison((size_t)n * H * esize(dt));
                CUDA(llm_k_embed(dt, dout, dtab, dtok, lp ? dpt : NULL, dpos, n, H, scale, 0));
                float *got = dev_f32(dout, (size_t)n * H, dt);
                check(name, got, ref, (size_t)n * H, lp ? 4 * bound_ew(dt) : bound_ew(dt));
                free(got), free(ref), free(tab), free(tab_h), free(pt), free(pt_h);
                cudaFree(dtab), cudaFree(dpt), cudaFree(dtok), cudaFree(dpos), cudaFree(dout);
            }
}

/* ---- norms --------------------------------------------------------------------- */

static void test_norm(void)
{
    const int dims[] = {64, 4096, 5120, 8192};
    const int rows[] = {1, 5};
    for (int di = 0; di < 3; di++)
        for (int kind = 0; kind < 2; kind++)
            for (int add = 0; add < 2; add++)
                for (int ni = 0; ni < 4; ni++)
                    for (int ri = 0; ri < 2; ri++) {
                        int dt = DTS[di], n = dims[ni], r = rows[ri], bias = kind == 1;
                        char name[160];
                        snprintf(name, sizeof name, "NORM(dt=%s,kind=%s,add=%d,rows=%d,n=%d)",
                                 llm_dtype_name(dt), kind ? "layer" : "rms", add, r, n);
                        if (!want(name)) continue;
                        size_t N = (size_t)r * n;
                        void *res_h, *add_h, *w_h, *b_h;
                        float *res = rand_vals(N, 2.f, dt, &res_h);
                        float *ad = rand_vals(N, 1.f, dt, &add_h);
                        float *w = rand_vals((size_t)n, 1.f, dt, &w_h);
                        float *b = rand_vals((size_t)n, 0.5f, dt, &b_h);
                        float *ref = xmalloc(N * sizeof(float));
                        float eps = 1e-5f;
                        /* GPU: res += add (rounded to dt), stats over the rounded row */
                        if (add) {
                            for (size_t i = 0; i < N; i++) res[i] += ad[i];
                            round_to(res, N, dt);
                        }
                        if (kind == 0)
                            llm_cpu_rmsnorm(ref, res, NULL, w_h, dt, r, n, eps);
                        else
                            llm_cpu_layernorm(ref, res, NULL, w_h, dt, b_h, dt, r, n, eps);
                        round_to(ref, N, dt);
                        void *dres = dev_copy(res_h, N * esize(dt));
                        void *dadd = dev_copy(add_h, N * esize(dt));
                        void *dw = dev_copy(w_h, n * esize(dt)), *db = dev_copy(b_h, n * esize(dt));
                        void *dout = dev_poison(N * esize(dt));
                        CUDA(llm_k_norm(dt, kind, dout, dres, add ? dadd : NULL, dw,
                                        bias ? db : NULL, 0.f, r, n, eps, 0));
                        float *got = dev_f32(dout, N, dt);
                        int ok = check(name, got, ref, N, 4 * bound_ew(dt) + 1e-11);
                        if (ok && add) {
                            float *gres = dev_f32(dres, N, dt);
                            char n2[200];
                            snprintf(n2, sizeof n2, "%s.residual", name);
                            check(n2, gres, res, N, bound_ew(dt));
                            free(gres);
                        }
                        free(got), free(ref), free(res), free(ad), free(w), free(b);
                        free(res_h), free(add_h), free(w_h), free(b_h);
                        cudaFree(dres), cudaFree(dadd), cudaFree(dw), cudaFree(db), cudaFree(dout);
                    }
}

/* q/k RMS norms over all heads at once (OLMo 2): q and k of each fused qkv row
 * normalised in place against the CPU's norm of the same stored values; v untouched. */
static void test_qk_norm_all(void)
{
    const int shapes[][3] = {{8, 2, 128}, {4, 4, 64}, {40, 8, 128}}; /* heads, kv heads, hd */
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++) {
            int dt = DTS[di], nh = shapes[si][0], nkv = shapes[si][1], hd = shapes[si][2];
            int r = 5, qw = nh * hd, kw = nkv * hd, stride = qw + 2 * kw;
            float off = si == 1 ? 1.f : 0.f, eps = 1e-6f;
            char name[160];
            snprintf(name, sizeof name, "QK_NORM_ALL(dt=%s,heads=%d/%d,hd=%d,rows=%d,offset=%g)",
                     llm_dtype_name(dt), nh, nkv, hd, r, off);
            if (!want(name)) continue;
            size_t N = (size_t)r * stride;
            void *x_h, *wq_h, *wk_h;
            float *x = rand_vals(N, 3.f, dt, &x_h), *ref = xmalloc(N * sizeof(float));
            float *wq = rand_vals((size_t)qw, 1.f, dt, &wq_h),
                  *wk = rand_vals((size_t)kw, 1.f, dt, &wk_h);
            memcpy(ref, x, N * sizeof(float));
            for (int i = 0; i < r; i++) {
                float *q = ref + (size_t)i * stride;
                llm_cpu_rmsnorm_off(q, q, NULL, wq_h, dt, 1, qw, eps, off);
                llm_cpu_rmsnorm_off(q + qw, q + qw, NULL, wk_h, dt, 1, kw, eps, off);
            }
            round_to(ref, N, dt);
            void *dx = dev_copy(x_h, N * esize(dt)), *dwq = dev_copy(wq_h, qw * esize(dt)),
                 *dwk = dev_copy(wk_h, kw * esize(dt));
            CUDA(llm_k_qk_norm_all(dt, dx, stride, r, qw, kw, dwq, dwk, off, eps, 0));
            float *got = dev_f32(dx, N, dt);
            check(name, got, ref, N, 4 * bound_ew(dt) + 1e-11);
            free(got), free(ref), free(x), free(wq), free(wk), free(x_h), free(wq_h), free(wk_h);
            cudaFree(dx), cudaFree(dwq), cudaFree(dwk);
        }
}

/* A norm that also rounds its output rows to 8 bits (llm_k_norm_q): the codes and
 * scales must be exactly what llm_k_quant_act makes of the same stored rows. */
static void test_norm_q(void)
{
    const int shapes[][2] = {{1, 256}, {3, 4096}, {70, 4096}, {5, 8192}};
    for (int di = 0; di < 3; di++)
        for (int act = LLM_K_A_FP8; act <= LLM_K_A_INT8; act++)
            for (int sc = 0; sc < 3; sc++) /* static scale, none (NULL), 0 (each row's own) */
                for (int si = 0; si < 4; si++) {
                    int dt = DTS[di], rows = shapes[si][0], n = shapes[si][1];
                    int kind = si & 1 ? LLM_K_NORM_LAYER : LLM_K_NORM_RMS;
                    char name[160];
                    snprintf(name, sizeof name, "NORM_Q8(dt=%s,act=%s,scale=%s,rows=%d,n=%d)",
                             llm_dtype_name(dt), act == LLM_K_A_FP8 ? "fp8" : "int8",
                             sc == 0 ? "static" : sc == 1 ? "none" : "zero", rows, n);
                    if (!want(name)) continue;
                    void *x_h, *w_h;
                    float *x = rand_vals((size_t)rows * n, 3.f, dt, &x_h);
                    float *w = rand_vals((size_t)n, 1.f, dt, &w_h);
                    float scale = sc == 0 ? (act == LLM_K_A_FP8 ? 1.f / 100 : 1.f / 30) : 0.f;
                    void *dres = dev_copy(x_h, (size_t)rows * n * esize(dt));
                    void *dw = dev_copy(w_h, (size_t)n * esize(dt));
                    void *dout = dev_poison((size_t)rows * n * esize(dt));
                    void *dsc = dev_copy(&scale, sizeof scale);
                    void *dq = dev_poison((size_t)rows * n), *dq2 = dev_poison((size_t)rows * n);
                    void *dxs = dev_poison(4 * (size_t)rows), *dxs2 = dev_poison(4 * (size_t)rows);
                    const float *as = sc == 1 ? NULL : dsc;
                    CUDA(llm_k_norm_q(dt, kind, dout, dres, NULL, dw, NULL, 0.f, rows, n, 1e-5f,
                                      act, dq, dxs, as, 0));
                    CUDA(llm_k_quant_act(dt, act, dq2, dxs2, dout, n, NULL, as, rows, n, 0));
                    size_t nb = (size_t)rows * n;
                    uint8_t *q1 = xmalloc(nb), *q2 = xmalloc(nb);
                    float *s1 = xmalloc(4 * (size_t)rows), *s2 = xmalloc(4 * (size_t)rows);
                    CUDA(cudaDeviceSynchronize());
                    CUDA(cudaMemcpy(q1, dq, nb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(q2, dq2, nb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(s1, dxs, 4 * (size_t)rows, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(s2, dxs2, 4 * (size_t)rows, cudaMemcpyDeviceToHost));
                    size_t bad = 0;
                    for (size_t i = 0; i < nb; i++) bad += q1[i] != q2[i];
                    for (int r = 0; r < rows; r++) bad += memcmp(&s1[r], &s2[r], 4) != 0;
                    n_cases++;
                    printf("%-72s %zu differ  %s\n", name, bad, bad ? "FAIL" : "ok");
                    if (bad) n_failed++;
                    free(q1), free(q2), free(s1), free(s2), free(x), free(w), free(x_h), free(w_h);
                    cudaFree(dres), cudaFree(dw), cudaFree(dout), cudaFree(dsc), cudaFree(dq);
                    cudaFree(dq2), cudaFree(dxs), cudaFree(dxs2);
                }
}

/* An activation that also rounds its output rows to 8 bits under a static
 * scale (llm_k_act_q, the down product's input): the rows it leaves must be
 * byte-equal to llm_k_act's (keep) or to its input (codes alone), and the
 * codes and scales exactly what llm_k_quant_act makes of them (with a
 * smoother too). */
static void test_act_q(void)
{
    const int shapes[][2] = {{1, 256}, {3, 11008}, {70, 1408}};
    for (int di = 0; di < 3; di++)
        for (int qa = LLM_K_A_FP8; qa <= LLM_K_A_INT8; qa++)
            for (int v = 0; v < 8; v++) /* gated, smoother, codes alone */
                for (int si = 0; si < 3; si++) {
                    int dt = DTS[di], rows = shapes[si][0], I = shapes[si][1];
                    int gated = v & 1, smooth = v >> 1 & 1, keep = !(v & 4);
                    int act = gated ? LLM_K_ACT_SILU : LLM_K_ACT_GELU;
                    char name[160];
                    snprintf(name, sizeof name,
                             "ACT_Q8(dt=%s,act=%s,gated=%d,smooth=%d,rows=%d,inter=%d%s)",
                             llm_dtype_name(dt), qa == LLM_K_A_FP8 ? "fp8" : "int8", gated, smooth,
                             rows, I, keep ? "" : ",codes");
                    if (!want(name)) continue;
                    const int ld = gated ? 2 * I : I;
                    const size_t nh = (size_t)rows * ld, nb = (size_t)rows * I;
                    void *h_h;
                    float *h = rand_vals(nh, 3.f, dt, &h_h);
                    float *sm = xmalloc(sizeof(float) * (size_t)I);
                    for (int j = 0; j < I; j++) sm[j] = 0.25f + 2.f * fabsf(frand());
                    float scale = qa == LLM_K_A_FP8 ? 1.f / 150 : 1.f / 40;
                    void *d1 = dev_copy(h_h, nh * esize(dt)), *d2 = dev_copy(h_h, nh * esize(dt));
                    void *dsc = dev_copy(&scale, sizeof scale);
                    void *dsm = dev_copy(sm, sizeof(float) * (size_t)I);
                    void *dq = dev_poison(nb), *dq2 = dev_poison(nb);
                    void *dxs = dev_poison(4 * (size_t)rows), *dxs2 = dev_poison(4 * (size_t)rows);
                    const float *smp = smooth ? dsm : NULL;
                    CUDA(llm_k_act_q(dt, act, gated, d1, rows, I, qa, keep, dq, dxs, dsc, smp, 0));
                    CUDA(llm_k_act(dt, act, gated, d2, rows, I, 0));
                    CUDA(llm_k_quant_act(dt, qa, dq2, dxs2, d2, ld, smp, dsc, rows, I, 0));
                    CUDA(cudaDeviceSynchronize());
                    size_t hb = nh * esize(dt);
                    uint8_t *h1 = xmalloc(hb), *h2 = xmalloc(hb), *q1 = xmalloc(nb), *q2 = xmalloc(nb);
                    float *s1 = xmalloc(4 * (size_t)rows), *s2 = xmalloc(4 * (size_t)rows);
                    CUDA(cudaMemcpy(h1, d1, hb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(h2, d2, hb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(q1, dq, nb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(q2, dq2, nb, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(s1, dxs, 4 * (size_t)rows, cudaMemcpyDeviceToHost));
                    CUDA(cudaMemcpy(s2, dxs2, 4 * (size_t)rows, cudaMemcpyDeviceToHost));
                    size_t bad = memcmp(h1, keep ? h2 : h_h, hb) != 0;
                    for (size_t i = 0; i < nb; i++) bad += q1[i] != q2[i];
                    for (int r = 0; r < rows; r++) bad += memcmp(&s1[r], &s2[r], 4) != 0;
                    n_cases++;
                    printf("%-72s %zu differ  %s\n", name, bad, bad ? "FAIL" : "ok");
                    if (bad) n_failed++;
                    free(h), free(h_h), free(sm), free(h1), free(h2), free(q1), free(q2);
                    free(s1), free(s2);
                    cudaFree(d1), cudaFree(d2), cudaFree(dsc), cudaFree(dsm), cudaFree(dq);
                    cudaFree(dq2), cudaFree(dxs), cudaFree(dxs2);
                }
}

/* ---- rotary embedding + KV append ------------------------------------------------ */

static float long_f[64], short_f[64];

/* An 8-bit KV cache (enum llm_k_kvq): the code of x / sc, and the value it
 * stands for (code * sc), as the CPU reference rounds (cpu_quant.c). */
static uint8_t kv_code(int kvq, float x, float sc)
{
    if (kvq == LLM_K_KV_FP8) return llm_f32_to_e4m3(x / sc);
    float q = rintf(x / sc);
    return (uint8_t)(int8_t)(q < -127.f ? -127.f : q > 127.f ? 127.f : q);
}
static float kv_value(int kvq, uint8_t code, float sc)
{
    return (kvq == LLM_K_KV_FP8 ? llm_e4m3_to_f32(code) : (float)(int8_t)code) * sc;
}
/* Bytes no writer produces: unwritten cache slots keep them. */
static uint8_t kv_poison(int kvq)
{
    return kvq == LLM_K_KV_FP8 ? 0xff : 0x80; /* e4m3 NaN; int8 -128 (codes stop at -127) */
}
/* Scales that put the test's values (|x| < 1.5) across the codes' range; int8 saturates a few. */
static float kv_scale_of(int kvq, int v)
{
    return kvq == LLM_K_KV_FP8 ? (v ? 1.f / 150 : 1.f / 200) : (v ? 1.f / 100 : 1.f / 90);
}

/* n tokens (slot -1 for the third), rope 0: no rotation (the kernel gets no
 * table; K and V are cached as they are). */
static void rope_case(int dt, int scaling, int neox, int hd, int rot, int long_seq, int kvq, int n,
                      int rope)
{
    struct llm_rope r;
    memset(&r, 0, sizeof r);
    r.theta = 10000.0;
    r.rot_dims = rot;
    r.neox = neox;
    r.scaling = scaling;
    int64_t max_pos = 4096;
    const char *sname = "none";
    switch (scaling) {
    case LLM_ROPE_SCALING_LINEAR: r.factor = 2.0, sname = "linear"; break;
    case LLM_ROPE_SCALING_DYNAMIC: r.factor = 2.0, sname = "dynamic"; break;
    case LLM_ROPE_SCALING_YARN:
        r.factor = 4.0, r.orig_max_pos = 1024, r.beta_fast = 32, r.beta_slow = 1, sname = "yarn";
        break;
    case LLM_ROPE_SCALING_LLAMA3:
        r.theta = 500000.0, r.factor = 8.0, r.orig_max_pos = 1024, r.low_freq_factor = 1;
        r.high_freq_factor = 4, sname = "llama3";
        break;
    case LLM_ROPE_SCALING_LONGROPE:
        r.orig_max_pos = 1024, r.n_factors = rot / 2, r.long_factor = long_f;
        r.short_factor = short_f, sname = "longrope";
        break;
    default: break;
    }
    const int nh = 4, nkv = 2, bs = 16, nblk = (n + 1) / 2;
    char name[200];
    snprintf(name, sizeof name,
             "ROPE_KV(dt=%s,scaling=%s,neox=%d,head_dim=%d,rot=%d,long=%d%s,n=%d%s)",
             llm_dtype_name(dt), sname, neox, hd, rot, long_seq,
             kvq == LLM_K_KV_FP8 ? ",kv=fp8" : kvq == LLM_K_KV_INT8 ? ",kv=int8" : "", n,
             rope ? "" : ",no_rope");
    if (!want(name)) return;
    int64_t seq_len = long_seq ? 2000 : 900;
    int half = rot / 2;
    float inv[128], ms, cs[128], sn[128];
    if (llm_cpu_rope_freqs(&r, max_pos, seq_len, inv, &ms)) {
        printf("%s: reference refused: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    int npos = 2048;
    float *tab = xmalloc(sizeof(float) * 2 * (size_t)npos * half);
    for (int p = 0; p < npos; p++) {
        llm_cpu_rope_cos_sin(inv, half, ms, p, cs, sn);
        for (int i = 0; i < half; i++) {
            tab[((size_t)p * half + i) * 2] = cs[i];
            tab[((size_t)p * half + i) * 2 + 1] = sn[i];
        }
    }
    int W = (nh + 2 * nkv) * hd;
    void *qkv_h;
    float *qkv = rand_vals((size_t)n * W, 1.f, dt, &qkv_h);
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)n);
    int32_t *slot = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) { /* distinct slots, scattered over the blocks */
        pos[i] = irand(npos);
        slot[i] = i == 2 ? -1 : (int)(((i * 5 + 3) % nblk) * bs + (i * 5 + 3) / nblk % bs);
    }
    /* reference: rotate q and k per token; expected cache content */
    float *ref = xmalloc(sizeof(float) * (size_t)n * W);
    memcpy(ref, qkv, sizeof(float) * (size_t)n * W);
    for (int i = 0; i < n && rope; i++) {
        llm_cpu_rope_cos_sin(inv, half, ms, pos[i], cs, sn);
        llm_cpu_rope_apply(ref + (size_t)i * W, nh + nkv, hd, rot, neox, cs, sn);
    }
    round_to(ref, (size_t)n * W, dt);
    size_t pool_n = (size_t)nblk * 2 * nkv * bs * hd;
    float *pref = xmalloc(sizeof(float) * pool_n);
    for (size_t i = 0; i < pool_n; i++) pref[i] = NAN; /* untouched slots stay poisoned */
    for (int i = 0; i < n; i++) {
        if (slot[i] < 0) continue;
        int b = slot[i] / bs, o = slot[i] % bs;
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < nkv; h++)
                for (int d = 0; d < hd; d++) {
                    float x = ref[(size_t)i * W + (size_t)(nh + kv * nkv + h) * hd + d];
                    if (kvq) x = kv_value(kvq, kv_code(kvq, x, kv_scale_of(kvq, kv)),
                                          kv_scale_of(kvq, kv));
                    pref[((((size_t)b * 2 + kv) * nkv + h) * bs + o) * hd + d] = x;
                }
    }
    void *dqkv = dev_copy(qkv_h, (size_t)n * W * esize(dt));
    void *dtab = dev_copy(tab, sizeof(float) * 2 * (size_t)npos * half);
    void *dpos = dev_copy(pos, sizeof(int32_t) * (size_t)n);
    void *dslot = dev_copy(slot, sizeof(int32_t) * (size_t)n);
    size_t pool_es = kvq ? 1 : esize(dt);
    void *dpool = dev_poison(pool_n * pool_es);
    if (kvq) CUDA(cudaMemset(dpool, kv_poison(kvq), pool_n));
    CUDA(llm_k_rope_kv(dt, dqkv, rope ? dtab : NULL, dpos, dslot, dpool,
                       (int64_t)2 * nkv * bs * hd, bs, n, nh, nkv, hd, rot, neox, kvq,
                       kv_scale_of(kvq, 0), kv_scale_of(kvq, 1), 0));
    float *got = dev_f32(dqkv, (size_t)n * W, dt);
    double bound = dt == LLM_DTYPE_F32 ? 1e-12 : 4 * bound_ew(dt);
    check(name, got, ref, (size_t)n * W, bound);
    float *gpool;
    if (kvq) { /* codes: the value each stands for, NaN where the poison is left */
        uint8_t *raw = xmalloc(pool_n);
        CUDA(cudaDeviceSynchronize());
        CUDA(cudaMemcpy(raw, dpool, pool_n, cudaMemcpyDeviceToHost));
        gpool = xmalloc(sizeof(float) * pool_n);
        size_t per_kv = (size_t)nkv * bs * hd;
        for (size_t i = 0; i < pool_n; i++)
            gpool[i] = raw[i] == kv_poison(kvq)
                           ? NAN
                           : kv_value(kvq, raw[i], kv_scale_of(kvq, (int)(i / per_kv % 2)));
        free(raw);
        /* the same codes from the same inputs: exact in f32; a 16-bit rotation a
         * rounding apart may move a code by one step */
        bound = dt == LLM_DTYPE_F32 ? 0 : 2e-5;
    } else {
        gpool = dev_f32(dpool, pool_n, dt);
    }
    /* compare only the written slots; unwritten ones must still be poison (NaN) */
    size_t m = 0, stray = 0;
    float *g2 = xmalloc(sizeof(float) * pool_n), *r2 = xmalloc(sizeof(float) * pool_n);
    for (size_t i = 0; i < pool_n; i++) {
        if (isnan(pref[i])) {
            if (!isnan(gpool[i])) stray++;
            continue;
        }
        g2[m] = gpool[i];
        r2[m++] = pref[i];
    }
    char n2[220];
    snprintf(n2, sizeof n2, "%s.cache", name);
    check(n2, g2, r2, m, bound);
    if (stray) {
        printf("    %zu pool elements written outside the token slots\n", stray);
        n_failed++;
    }
    free(g2), free(r2), free(got), free(gpool), free(pref), free(ref), free(qkv), free(qkv_h);
    free(tab), free(pos), free(slot);
    cudaFree(dqkv), cudaFree(dtab), cudaFree(dpos), cudaFree(dslot), cudaFree(dpool);
}

static void test_rope(void)
{
    for (int i = 0; i < 64; i++) {
        long_f[i] = 1.f + 0.25f * (float)i;
        short_f[i] = 1.f + 0.01f * (float)i;
    }
    for (int di = 0; di < 3; di++)
        for (int sc = 0; sc < LLM_ROPE_SCALING_COUNT; sc++)
            for (int neox = 0; neox < 2; neox++) {
                rope_case(DTS[di], sc, neox, 128, 128, 0, 0, 6, 1);
                rope_case(DTS[di], sc, neox, 64, 32, 0, 0, 6, 1);
            }
    for (int di = 0; di < 3; di++)
        rope_case(DTS[di], LLM_ROPE_SCALING_LONGROPE, 1, 96, 96, 1, 0, 6, 1);
    /* 8-bit KV cache codes */
    for (int di = 0; di < 3; di++)
        for (int kvq = LLM_K_KV_FP8; kvq <= LLM_K_KV_INT8; kvq++) {
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 1, 128, 128, 0, kvq, 6, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_LLAMA3, 0, 64, 32, 0, kvq, 6, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 1, 80, 80, 0, kvq, 6, 1);
        }
    /* the general kernel's shapes (a half or rotation not a whole number of
     * 16-bit vectors: 12 pairs, 20 dims), many rows, and no rotation at all */
    for (int di = 0; di < 3; di++)
        for (int kvq = LLM_K_KV_NONE; kvq <= LLM_K_KV_FP8; kvq++) {
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 1, 96, 24, 0, kvq, 6, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 0, 96, 20, 0, kvq, 70, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_LLAMA3, 1, 128, 128, 0, kvq, 70, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 0, 64, 64, 0, kvq, 70, 1);
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 1, 128, 128, 0, kvq, 6, 0);
            rope_case(DTS[di], LLM_ROPE_SCALING_NONE, 1, 64, 64, 0, kvq, 70, 0);
        }
}

/* ---- activations ---------------------------------------------------------------- */

static void test_act(void)
{
    const char *names[] = {"silu", "gelu", "gelu_tanh", "relu"};
    const int inter[] = {64, 11008};
    for (int di = 0; di < 3; di++)
        for (int act = 0; act < 4; act++)
            for (int gated = 0; gated < 2; gated++)
                for (int ii = 0; ii < 2; ii++) {
                    int dt = DTS[di], I = inter[ii], rows = 3;
                    char name[160];
                    snprintf(name, sizeof name, "ACT(dt=%s,act=%s,gated=%d,rows=%d,inter=%d)",
                             llm_dtype_name(dt), names[act], gated, rows, I);
                    if (!want(name)) continue;
                    int w = gated ? 2 * I : I;
                    size_t N = (size_t)rows * w;
                    void *h_h;
                    float *h = rand_vals(N, 4.f, dt, &h_h);
                    float *ref = xmalloc(sizeof(float) * (size_t)rows * I);
                    for (int r = 0; r < rows; r++) {
                        float *dst = ref + (size_t)r * I, *src = h + (size_t)r * w;
                        if (gated)
                            llm_cpu_gated(dst, src, src + I, I, act);
                        else {
                            memcpy(dst, src, sizeof(float) * (size_t)I);
                            llm_cpu_act(dst, I, act);
                        }
                    }
                    round_to(ref, (size_t)rows * I, dt);
                    void *dh = dev_copy(h_h, N * esize(dt));
                    CUDA(llm_k_act(dt, act, gated, dh, rows, I, 0));
                    float *g = dev_f32(dh, N, dt);
                    float *got = xmalloc(sizeof(float) * (size_t)rows * I);
                    for (int r = 0; r < rows; r++)
                        memcpy(got + (size_t)r * I, g + (size_t)r * w, sizeof(float) * (size_t)I);
                    check(name, got, ref, (size_t)rows * I,
                          dt == LLM_DTYPE_F32 ? 1e-11 : 4 * bound_ew(dt));
                    free(g), free(got), free(ref), free(h), free(h_h);
                    cudaFree(dh);
                }
}

/* ---- gather, convert, copy_blocks (exact) ------------------------------------------ */

static void test_exact(void)
{
    for (int di = 0; di < 3; di++) {
        int dt = DTS[di], W = 520, R = 40, n = 7;
        char name[160];
        snprintf(name, sizeof name, "GATHER(dt=%s,rows=%d,width=%d,n=%d)", llm_dtype_name(dt), R, W,
                 n);
        if (want(name)) {
            void *x_h;
            float *x = rand_vals((size_t)R * W, 1.f, dt, &x_h);
            int32_t rows[7] = {3, 0, 39, 5, 5, 17, 22};
            float *ref = xmalloc(sizeof(float) * (size_t)n * W);
            for (int i = 0; i < n; i++)
                memcpy(ref + (size_t)i * W, x + (size_t)rows[i] * W, sizeof(float) * W);
            void *dx = dev_copy(x_h, (size_t)R * W * esize(dt)), *dr = dev_copy(rows, sizeof rows);
            void *dout = dev_poison((size_t)n * W * esize(dt));
            CUDA(llm_k_gather(dt, dout, dx, dr, n, W, 0));
            float *got = dev_f32(dout, (size_t)n * W, dt);
            check(name, got, ref, (size_t)n * W, 0);
            free(got), free(ref), free(x), free(x_h);
            cudaFree(dx), cudaFree(dr), cudaFree(dout);
        }
        for (int si = 0; si < 3; si++) {
            int sdt = DTS[si];
            size_t N = 100003;
            snprintf(name, sizeof name, "CONVERT(%s->%s,n=%zu)", llm_dtype_name(sdt),
                     llm_dtype_name(dt), N);
            if (!want(name)) continue;
            void *x_h;
            float *x = rand_vals(N, 1000.f, sdt, &x_h);
            float *ref = xmalloc(sizeof(float) * N);
            memcpy(ref, x, sizeof(float) * N);
            round_to(ref, N, dt);
            void *dx = dev_copy(x_h, N * esize(sdt)), *dout = dev_poison(N * esize(dt));
            CUDA(llm_k_convert(dout, dt, dx, sdt, (int64_t)N, 0));
            float *got = dev_f32(dout, N, dt);
            check(name, got, ref, N, 0);
            free(got), free(ref), free(x), free(x_h);
            cudaFree(dx), cudaFree(dout);
        }
    }
    /* residual add: the sum in fp32, rounded once (exact against the rounded reference) */
    for (int di = 0; di < 3; di++) {
        int dt = DTS[di];
        size_t N = 3 * 4104;
        char an[96];
        snprintf(an, sizeof an, "ADD(dt=%s,n=%zu)", llm_dtype_name(dt), N);
        if (!want(an)) continue;
        void *y_h, *x_h;
        float *y = rand_vals(N, 3.f, dt, &y_h), *x = rand_vals(N, 3.f, dt, &x_h);
        float *ref = xmalloc(sizeof(float) * N);
        memcpy(ref, y, sizeof(float) * N);
        llm_cpu_add(ref, x, (int64_t)N);
        round_to(ref, N, dt);
        void *dy = dev_copy(y_h, N * esize(dt)), *dx = dev_copy(x_h, N * esize(dt));
        CUDA(llm_k_add(dt, dy, dx, (int64_t)N, 0));
        float *got = dev_f32(dy, N, dt);
        check(an, got, ref, N, 0);
        free(got), free(ref), free(y), free(x), free(y_h), free(x_h);
        cudaFree(dy), cudaFree(dx);
    }
    /* scale (logit scale, residual multiplier): the product in fp32, rounded once */
    for (int di = 0; di < 3; di++) {
        int dt = DTS[di];
        size_t N = 70001;
        const float k = di == 0 ? 0.0625f : 0.22f;
        char sn[96];
        snprintf(sn, sizeof sn, "SCALE(dt=%s,n=%zu,k=%g)", llm_dtype_name(dt), N, k);
        if (!want(sn)) continue;
        void *x_h;
        float *x = rand_vals(N, 8.f, dt, &x_h), *ref = xmalloc(sizeof(float) * N);
        for (size_t i = 0; i < N; i++)
            ref[i] = x[i] * k;
        round_to(ref, N, dt);
        void *dx = dev_copy(x_h, N * esize(dt));
        CUDA(llm_k_scale(dt, dx, (int64_t)N, k, 0));
        float *got = dev_f32(dx, N, dt);
        check(sn, got, ref, N, 0);
        free(got), free(ref), free(x), free(x_h);
        cudaFree(dx);
    }
    /* random weights made on the device: the host's values, rounded as stored */
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++) {
            int dt = DTS[di], sdt = DTS[si];
            static const char *const tn[2] = {"layers.5.mlp.experts.fc.weight",
                                              "layers.5.post_attention_layernorm.weight"};
            for (int t = 0; t < 2; t++) {
                size_t N = 300007;
                char fn[160];
                snprintf(fn, sizeof fn, "FILL_RANDOM(%s stored %s as %s,n=%zu)", tn[t],
                         llm_dtype_name(sdt), llm_dtype_name(dt), N);
                if (!want(fn)) continue;
                void *h = xmalloc(N * esize(sdt));
                if (llm_rand_tensor(h, sdt, N, tn[t], 42)) {
                    printf("%s: %s\n", fn, llm_errmsg());
                    exit(1);
                }
                float *ref = xmalloc(sizeof(float) * N);
                llm_cpu_to_f32(ref, h, sdt, 0, (int64_t)N);
                round_to(ref, N, dt);
                void *dout = dev_poison(N * esize(dt));
                CUDA(llm_k_fill_random(dout, dt, sdt, (int64_t)N, 0, llm_rand_state(42, tn[t]),
                                       llm_rand_fill_of(tn[t]), 0));
                float *got = dev_f32(dout, N, dt);
                check(fn, got, ref, N, 0);
                free(got), free(ref), free(h);
                cudaFree(dout);
            }
        }
    const char *name = "COPY_BLOCKS(blocks=64,block_bytes=8192,n=9)";
    if (want(name)) {
        int nb = 64, n = 9;
        size_t bb = 8192, words = nb * bb / 4;
        float *pool = xmalloc(nb * bb);
        for (size_t i = 0; i < words; i++) pool[i] = frand();
        int32_t src[9] = {0, 5, 5, 63, 7, 12, 30, 31, 2}, dst[9] = {1, 6, 8, 62, 9, 13, 40, 41, 2};
        float *ref = xmalloc(nb * bb);
        memcpy(ref, pool, nb * bb);
        for (int i = 0; i < n; i++)
            memcpy((char *)ref + dst[i] * bb, (char *)pool + src[i] * bb, bb);
        void *dp = dev_copy(pool, nb * bb), *ds = dev_copy(src, sizeof src),
             *dd = dev_copy(dst, sizeof dst);
        CUDA(llm_k_copy_blocks(dp, ds, dd, n, (int64_t)bb, 0));
        float *got = dev_f32(dp, words, LLM_DTYPE_F32);
        check(name, got, ref, words, 0);
        free(got), free(ref), free(pool);
        cudaFree(dp), cudaFree(ds), cudaFree(dd);
    }
}

/* ---- linear: GEMV kernel and cuBLASLt ---------------------------------------------- */

/* use_gemv: 0 cuBLASLt, 1 llm_k_gemv, 2 + v the bf16 variant v of llm_k_gemv_variant */
static void linear_case(int dt, int use_gemv, int M, int N, int K, int bias, int acc, int yt)
{
    char name[200];
    if (use_gemv >= 2)
        snprintf(name, sizeof name, "GEMV_V%d(dt=%s,m=%d,n=%d,k=%d,bias=%d,acc=%d)", use_gemv - 2,
                 llm_dtype_name(dt), M, N, K, bias, acc);
    else
        snprintf(name, sizeof name, "%s(dt=%s,m=%d,n=%d,k=%d,bias=%d,acc=%d,out=%s)",
                 use_gemv ? "GEMV" : "GEMM", llm_dtype_name(dt), M, N, K, bias, acc,
                 llm_dtype_name(yt));
    if (!want(name)) return;
    void *x_h, *w_h, *b_h, *y_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    float *w = rand_vals((size_t)N * K, 1.f / sqrtf((float)K), dt, &w_h);
    float *b = rand_vals((size_t)N, 0.5f, yt, &b_h);
    float *y0 = rand_vals((size_t)M * N, 1.f, yt, &y_h);
    float *ref = xmalloc(sizeof(float) * (size_t)M * N);
    if (llm_cpu_linear(ref, x, M, K, w_h, dt, N, bias ? b_h : NULL, yt)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    if (acc)
        for (size_t i = 0; i < (size_t)M * N; i++) ref[i] += y0[i];
    round_to(ref, (size_t)M * N, yt);
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *dw = dev_copy(w_h, (size_t)N * K * esize(dt));
    void *db = dev_copy(b_h, (size_t)N * esize(yt));
    void *dy = acc ? dev_copy(y_h, (size_t)M * N * esize(yt)) : dev_poison((size_t)M * N * esize(yt));
    if (use_gemv >= 2) {
        CUDA(llm_k_gemv_variant(use_gemv - 2, dy, N, dx, K, dw, bias ? db : NULL, M, N, K, acc,
                                0));
    } else if (use_gemv) {
        CUDA(llm_k_gemv(dt, dy, N, dx, K, dw, bias ? db : NULL, M, N, K, acc, 0));
    } else {
        static struct cu_gemm *g[3];
        int gi = dt == LLM_DTYPE_F32 ? 0 : dt == LLM_DTYPE_F16 ? 1 : 2;
        if (!g[gi] && cu_gemm_create(&g[gi], dt, 32u << 20)) {
            printf("%s: %s\n", name, llm_errmsg());
            exit(1);
        }
        if (cu_gemm_run(g[gi], 0, M, N, K, dx, K, dw, bias ? db : NULL, dy, N, yt, acc)) {
            printf("%s: %s\n", name, llm_errmsg());
            n_cases++, n_failed++;
            return;
        }
    }
    float *got = dev_f32(dy, (size_t)M * N, yt);
    /* cuBLASLt rounds twice when it adds both C and a bias in a 16-bit type */
    double bound = yt == LLM_DTYPE_F32 ? (dt == LLM_DTYPE_F32 ? 1e-10 : 1e-9)
                   : use_gemv         ? 4 * bound_ew(yt)
                   : yt == LLM_DTYPE_F16 ? 4e-7 : 2e-5;
    check(name, got, ref, (size_t)M * N, bound);
    free(got), free(ref), free(x), free(w), free(b), free(y0);
    free(x_h), free(w_h), free(b_h), free(y_h);
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dy);
}

static void gated_case(int dt, int act, int I, int K, int bias)
{
    char name[200];
    snprintf(name, sizeof name, "GEMV_GATED(dt=%s,act=%d,inter=%d,k=%d,bias=%d)",
             llm_dtype_name(dt), act, I, K, bias);
    if (!want(name)) return;
    void *x_h, *w_h, *b_h;
    float *x = rand_vals((size_t)K, 1.f, dt, &x_h);
    float *w = rand_vals((size_t)2 * I * K, 2.f / sqrtf((float)K), dt, &w_h);
    float *b = rand_vals((size_t)2 * I, 0.5f, dt, &b_h);
    float *h = xmalloc(sizeof(float) * 2 * (size_t)I), *ref = xmalloc(sizeof(float) * (size_t)I);
    if (llm_cpu_linear(h, x, 1, K, w_h, dt, 2 * I, bias ? b_h : NULL, dt)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    llm_cpu_gated(ref, h, h + I, I, act);
    round_to(ref, (size_t)I, dt);
    void *dx = dev_copy(x_h, (size_t)K * esize(dt)), *dw = dev_copy(w_h, (size_t)2 * I * K * esize(dt));
    void *db = dev_copy(b_h, (size_t)2 * I * esize(dt)), *dy = dev_poison((size_t)I * esize(dt));
    CUDA(llm_k_gemv_gated(dt, act, dy, dx, dw, bias ? db : NULL, I, K, 0));
    float *got = dev_f32(dy, (size_t)I, dt);
    /* the fused kernel skips rounding fc and gate to dt before the activation */
    check(name, got, ref, (size_t)I, dt == LLM_DTYPE_F32 ? 1e-11 : dt == LLM_DTYPE_F16 ? 1e-7 : 1e-5);
    free(got), free(ref), free(h), free(x), free(w), free(b), free(x_h), free(w_h), free(b_h);
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dy);
}

/* An RMS norm folded into a one-row 16-bit dense product (llm_k_gemv_norm)
 * against the CPU: the norm (rounded to dt), then the product - or the fc /
 * gate pair and the activation - and the normalised row the kernel stores. */
static void dnorm_case(int dt, int gated, int act, int N, int K, int bias, int acc, float off)
{
    char name[200];
    snprintf(name, sizeof name, "GEMV_NORM(dt=%s,gated=%d,act=%d,n=%d,k=%d,bias=%d,acc=%d,off=%g)",
             llm_dtype_name(dt), gated, act, N, K, bias, acc, off);
    if (!want(name)) return;
    const int nw_rows = gated ? 2 * N : N;
    const float eps = 1e-5f;
    void *res_h, *g_h, *w_h, *b_h, *y_h;
    float *res = rand_vals((size_t)K, 2.f, dt, &res_h), *g = rand_vals((size_t)K, 1.f, dt, &g_h);
    float *w = rand_vals((size_t)nw_rows * K, 2.f / sqrtf((float)K), dt, &w_h);
    float *b = rand_vals((size_t)nw_rows, 0.5f, dt, &b_h),
          *y0 = rand_vals((size_t)N, 1.f, dt, &y_h);
    float *xn = xmalloc(sizeof(float) * K), *h = xmalloc(sizeof(float) * nw_rows);
    float *ref = xmalloc(sizeof(float) * N);
    llm_cpu_rmsnorm_off(xn, res, NULL, g_h, dt, 1, K, eps, off);
    round_to(xn, (size_t)K, dt);
    if (llm_cpu_linear(h, xn, 1, K, w_h, dt, nw_rows, bias ? b_h : NULL, dt)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    if (gated)
        llm_cpu_gated(ref, h, h + N, N, act);
    else
        for (int i = 0; i < N; i++)
            ref[i] = h[i] + (acc ? y0[i] : 0.f);
    round_to(ref, (size_t)N, dt);
    void *dres = dev_copy(res_h, (size_t)K * esize(dt)), *dg = dev_copy(g_h, (size_t)K * esize(dt));
    void *dw = dev_copy(w_h, (size_t)nw_rows * K * esize(dt));
    void *db = dev_copy(b_h, (size_t)nw_rows * esize(dt)),
         *dout = dev_poison((size_t)K * esize(dt));
    void *dy = acc ? dev_copy(y_h, (size_t)N * esize(dt)) : dev_poison((size_t)N * esize(dt));
    const struct llm_k_norm_in nrm = {LLM_K_NORM_RMS, dres, dg, NULL, off, eps, dout};
    if (!llm_k_gemv_norm_ok(dt, LLM_K_NORM_RMS, K)) {
        printf("%s: not taken\n", name);
        n_cases++, n_failed++;
    } else {
        CUDA(llm_k_gemv_norm(dt, gated, act, dy, &nrm, dw, bias ? db : NULL, N, K, acc, 0));
        float *got = dev_f32(dy, (size_t)N, dt), *gx = dev_f32(dout, (size_t)K, dt);
        /* the normalised row is not rounded before the product: a dense product's
         * bounds, 2.5x them for the gated pair, 4x that below 16 outputs, where one
         * rounding apart weighs on the whole nmse (bf16, three outputs: 1.05e-4 on an
         * H100) */
        const double db16 = dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5;
        check(name, got, ref, (size_t)N, (gated ? 2.5 * db16 : db16) * (N < 16 ? 4 : 1));
        char n2[220];
        snprintf(n2, sizeof n2, "%s.rows", name);
        check(n2, gx, xn, (size_t)K, 4 * bound_ew(dt) + 1e-11);
        free(got), free(gx);
    }
    free(res), free(g), free(w), free(b), free(y0), free(xn), free(h), free(ref);
    free(res_h), free(g_h), free(w_h), free(b_h), free(y_h);
    cudaFree(dres), cudaFree(dg), cudaFree(dw), cudaFree(db), cudaFree(dout), cudaFree(dy);
}

static void test_linear(void)
{
    for (int di = 1; di < 3; di++) { /* f16, bf16 */
        dnorm_case(DTS[di], 0, 0, 12288, 4096, 0, 0, 0.f);
        dnorm_case(DTS[di], 0, 0, 1000, 264, 1, 1, 0.f);
        dnorm_case(DTS[di], 0, 0, 4096, 4096, 0, 1, 1.f);
        dnorm_case(DTS[di], 0, 0, 3, 1024, 1, 0, 0.f);
        for (int act = 0; act < 4; act++)
            dnorm_case(DTS[di], 1, act, 1000, 264, act & 1, 0, 0.f);
        dnorm_case(DTS[di], 1, 0, 11008, 4096, 0, 0, 1.f);
        dnorm_case(DTS[di], 1, 2, 3, 512, 1, 0, 0.f);
    }
    for (int di = 0; di < 3; di++)
        for (int act = 0; act < 4; act++) {
            gated_case(DTS[di], act, 1000, 264, act & 1);
            if (act == 0) gated_case(DTS[di], act, 11008, 4096, 0);
        }
    const int nk[][2] = {{4096, 4096}, {1000, 264}, {3000, 1024}};
    const int ms[] = {1, 2, 3, 8};
    for (int di = 0; di < 3; di++)
        for (int s = 0; s < 3; s++)
            for (int mi = 0; mi < 4; mi++)
                for (int v = 0; v < 2; v++)
                    linear_case(DTS[di], 1, ms[mi], nk[s][0], nk[s][1], v, v, DTS[di]);
    /* every bf16 tile variant, the split-K ones (7..9) on one row */
    for (int v = 0; v < 10; v++)
        for (int s = 0; s < 3; s++)
            linear_case(LLM_DTYPE_BF16, 2 + v, v >= 1 && v <= 4 ? 1 : v >= 7 ? 1 : 3, nk[s][0],
                        nk[s][1], s & 1, s & 1, LLM_DTYPE_BF16);
    const int gm[] = {1, 17, 256};
    for (int di = 0; di < 3; di++)
        for (int s = 0; s < 2; s++)
            for (int mi = 0; mi < 3; mi++) {
                linear_case(DTS[di], 0, gm[mi], nk[s][0], nk[s][1], 0, 0, DTS[di]);
                linear_case(DTS[di], 0, gm[mi], nk[s][0], nk[s][1], 1, 1, DTS[di]);
                linear_case(DTS[di], 0, gm[mi], nk[s][0], nk[s][1], 1, 0, LLM_DTYPE_F32);
            }
}

/* ---- weight-only quantized linears (qgemv.cu) against llm_cpu_linear_w ------------- */

/* A random quantized weight [N][K] as the artifact stores it (host) and as the
 * CUDA backend uploads it (device: scales by output row, -scale * zero, pre). */
struct qcase {
    struct llm_weight w;  /* host handle for the reference */
    void *q;              /* packed weights */
    float *scale, *zero, *pre; /* artifact layouts: int8 [N], int4 [K/g][N]; [K] */
    struct llm_k_qw d;    /* device */
};

static int q_tile; /* int4 weights go to the device in the tensor-core tile layout */
static float q_xmean; /* added to every x of a quantized linear: rows far from zero mean, where
                       * a kernel that takes an offset times sum(x) off its sums cancels most */
static int q_zint; /* zero points are integers in [-8, 8] (AWQ / GPTQ imports); in the tile
                    * layout they go to the device as such too (llm_k_qw.zq) */
static int q_shape; /* the launch shape set (llm_k_set_qgemv_shape), named in tile cases */
static int q_sx;    /* int4 tile: the scales made values of the case's dtype, so the device
                     * weight says so (llm_k_qw.scale_exact) */
static int q_bn;    /* the warpgroup GEMM's x rows a block set (llm_k_set_q4wg_bn), named in
                     * tile cases; 0: its default */
static int q4g_sh;  /* the int4 GEMM's block shape (llm_k_set_q4gemm_shape): 2 the 8-warp
                     * block, 3 warpgroup MMA, 4 the same with 256 outputs a block; 0 shape 1 */

/* "T" for the tile layout, then the shape when it is not the default; "TX<bn>" / "TB<bn>"
 * the warpgroup GEMM at bn x rows a block with scales that are values of dt / others. */
static const char *q_tag(int i4)
{
    static char tag[16];
    if (!q_tile || !i4) return "";
    if (q_bn) {
        snprintf(tag, sizeof tag, "T%s%d", q_sx ? "X" : "B", q_bn);
        return tag;
    }
    if (!q_shape) return "T";
    snprintf(tag, sizeof tag, "T%d", q_shape);
    return tag;
}

/* A random quantized weight; sx_dt (f16 / bf16, int4 in the tile layout with q_sx) its
 * scales rounded to that dtype and marked so. */
static void qcase_make_dt(struct qcase *c, int i4, int N, int K, int group, int zp, int pre,
                          int sx_dt);
static void qcase_make(struct qcase *c, int i4, int N, int K, int group, int zp, int pre)
{
    qcase_make_dt(c, i4, N, K, group, zp, pre, 0);
}

static void qcase_make_dt(struct qcase *c, int i4, int N, int K, int group, int zp, int pre,
                          int sx_dt)
{
    memset(c, 0, sizeof *c);
    int64_t ng = i4 ? K / group : 1;
    size_t qb = i4 ? (size_t)N * K / 2 : (size_t)N * K;
    uint8_t *q = xmalloc(qb);
    for (size_t i = 0; i < qb; i++) q[i] = (uint8_t)rnd32();
    if (!i4)
        for (size_t i = 0; i < qb; i++)
            if (q[i] == 0x80) q[i] = 0x81; /* int8 weights stay in [-127, 127] */
    size_t ns = (size_t)(ng * N);
    float *sc = xmalloc(sizeof(float) * ns), *z = zp ? xmalloc(sizeof(float) * ns) : NULL;
    float *pr = pre ? xmalloc(sizeof(float) * (size_t)K) : NULL;
    float unit = (i4 ? 0.25f : 0.02f) / sqrtf((float)K);
    for (size_t i = 0; i < ns; i++) sc[i] = unit * (1.0f + 0.5f * frand());
    const int sx = sx_dt && i4 && q_tile && q_sx;
    for (size_t i = 0; sx && i < ns; i++)
        sc[i] = sx_dt == LLM_DTYPE_BF16 ? llm_bf16_to_f32(llm_f32_to_bf16(sc[i]))
                                        : llm_f16_to_f32(llm_f32_to_f16(sc[i]));
    for (size_t i = 0; zp && i < ns; i++)
        z[i] = q_zint ? (float)(irand(17) - 8) : 2.0f * frand();
    for (int i = 0; pre && i < K; i++) pr[i] = 1.0f + 0.6f * frand();
    struct llm_weight *w = &c->w;
    w->present = 1;
    snprintf(w->name, sizeof w->name, "test.weight");
    w->fmt = i4 ? LLM_WFMT_INT4 : LLM_WFMT_INT8;
    w->dtype = i4 ? LLM_DTYPE_I4 : LLM_DTYPE_I8;
    w->ndim = 2;
    w->shape[0] = N;
    w->shape[1] = K;
    w->data = q;
    w->nbytes = qb;
    w->scale_kind = i4 ? LLM_WSCALE_GROUP : LLM_WSCALE_CHANNEL;
    w->group_size = i4 ? group : 0;
    w->scale.dtype = LLM_DTYPE_F32;
    w->scale.ndim = i4 ? 2 : 1;
    w->scale.shape[0] = i4 ? ng : N;
    w->scale.shape[1] = N;
    w->scale.data = sc;
    if (z) {
        w->zero = w->scale;
        w->zero.data = z;
    }
    if (pr) {
        w->prequant.dtype = LLM_DTYPE_F32;
        w->prequant.ndim = 1;
        w->prequant.shape[0] = K;
        w->prequant.data = pr;
    }
    c->q = q, c->scale = sc, c->zero = z, c->pre = pr;
    /* device layout */
    float *ds = xmalloc(sizeof(float) * ns), *dz = z ? xmalloc(sizeof(float) * ns) : NULL;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < ng; g++) {
            float s = sc[i4 ? g * N + n : n];
            ds[n * ng + g] = s;
            if (dz) dz[n * ng + g] = -s * z[g * N + n];
        }
    c->d.fmt = i4 ? LLM_K_Q_INT4 : LLM_K_Q_INT8;
    if (i4 && q_tile) {
        uint8_t *t = xmalloc(qb);
        llm_k_q4_tile(t, q, N, K);
        c->d.q = dev_copy(t, qb);
        c->d.tile = 1;
        c->d.scale_exact = sx;
        free(t);
    } else {
        c->d.q = dev_copy(q, qb);
    }
    c->d.scale = dev_copy(ds, sizeof(float) * ns);
    c->d.zm = dz ? dev_copy(dz, sizeof(float) * ns) : NULL;
    c->d.zq = NULL;
    if (z && i4 && q_tile && q_zint) {
        int8_t *zi = xmalloc(ns);
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < ng; g++)
                zi[n * ng + g] = (int8_t)z[g * N + n];
        c->d.zq = dev_copy(zi, ns);
        free(zi);
    }
    c->d.pre = pr ? dev_copy(pr, sizeof(float) * (size_t)K) : NULL;
    c->d.group = i4 ? group : 0;
    c->d.pre_split = N;
    free(ds);
    free(dz);
}

static void qcase_free(struct qcase *c)
{
    free(c->q), free(c->scale), free(c->zero), free(c->pre);
    cudaFree((void *)c->d.q), cudaFree((void *)c->d.scale), cudaFree((void *)c->d.zm);
    cudaFree((void *)c->d.pre), cudaFree((void *)c->d.zq);
}

/* path 0: the quantized GEMV (M <= 8); 1: the dense path (x * pre, dequantize,
 * cuBLASLt) as the backend runs it for more rows; 2: int4 in the tile layout
 * on the tensor cores from its codes (x * pre first), K in one part; 3: the
 * same with a workspace, so K is split where the blocks are few */
static void qlinear_case(int dt, int path, int i4, int M, int N, int K, int group, int zp,
                         int pre, int bias, int acc)
{
    char name[200];
    snprintf(name, sizeof name, "%s%s(%s,dt=%s,m=%d,n=%d,k=%d,g=%d,zp=%d,pre=%d,bias=%d,acc=%d)",
             q_tag(i4),
             path == 1   ? "QDENSE"
             : path == 2 ? (q4g_sh == 2   ? "QGEMM_W8"
                            : q4g_sh == 3 ? "QGEMM_WG"
                            : q4g_sh == 4 ? "QGEMM_WG4"
                                          : "QGEMM")
             : path      ? (q4g_sh == 2   ? "QGEMM_SPLIT_W8"
                            : q4g_sh == 3 ? "QGEMM_SPLIT_WG"
                            : q4g_sh == 4 ? "QGEMM_SPLIT_WG4"
                                          : "QGEMM_SPLIT")
                         : "QGEMV",
             i4 ? "int4" : "int8", llm_dtype_name(dt), M, N, K, i4 ? group : 0, zp, pre, bias, acc);
    if (q_xmean != 0.f) {
        const size_t l = strlen(name);
        snprintf(name + l - 1, sizeof name - l + 1, ",xmean=%g)", q_xmean);
    }
    if (!want(name)) return;
    struct qcase qc;
    qcase_make_dt(&qc, i4, N, K, group, zp, pre, dt);
    if (!path && !llm_k_qgemv_ok(&qc.d, M, K, K)) {
        printf("%s: the GEMV does not take this shape\n", name);
        n_cases++, n_failed++;
        qcase_free(&qc);
        return;
    }
    void *x_h, *b_h, *y_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    if (q_xmean != 0.f) {
        for (size_t i = 0; i < (size_t)M * K; i++)
            x[i] += q_xmean;
        llm_cpu_from_f32(x_h, dt, 0, x, (int64_t)M * K);
        llm_cpu_to_f32(x, x_h, dt, 0, (int64_t)M * K);
    }
    float *b = rand_vals((size_t)N, 0.5f, dt, &b_h);
    float *y0 = rand_vals((size_t)M * N, 1.f, dt, &y_h);
    if (bias) {
        qc.w.has_bias = 1;
        qc.w.bias = b_h;
        qc.w.bias_dtype = dt;
    }
    float *ref = xmalloc(sizeof(float) * (size_t)M * N);
    if (llm_cpu_linear_w(ref, x, M, &qc.w)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        qcase_free(&qc);
        return;
    }
    if (acc)
        for (size_t i = 0; i < (size_t)M * N; i++) ref[i] += y0[i];
    round_to(ref, (size_t)M * N, dt);
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *db = dev_copy(b_h, (size_t)N * esize(dt));
    void *dy = acc ? dev_copy(y_h, (size_t)M * N * esize(dt)) : dev_poison((size_t)M * N * esize(dt));
    double bound;
    if (!path) {
        CUDA(llm_k_qgemv(dt, dy, N, dx, K, &qc.d, bias ? db : NULL, M, N, K, acc, 0));
        /* fp32 throughout; only the output is rounded */
        bound = dt == LLM_DTYPE_F32 ? 1e-10 : 4 * bound_ew(dt);
    } else if (path >= 2) {
        const void *xin = dx;
        void *dxs = NULL, *ws = NULL;
        if (pre) {
            dxs = dev_poison((size_t)M * K * esize(dt));
            CUDA(llm_k_prescale(dt, dxs, K, dx, K, qc.d.pre, M, K, 0));
            xin = dxs;
        }
        size_t wsb = path == 3 ? (size_t)16 * M * N * sizeof(float) : 0;
        if (wsb) ws = dev_poison(wsb);
        if (!llm_k_q4_gemm_ok(dt, &qc.d, N, K, xin, K)) {
            printf("%s: the GEMM does not take this weight\n", name);
            n_cases++, n_failed++;
            qcase_free(&qc);
            return;
        }
        CUDA(llm_k_q4_gemm(dt, dy, N, xin, K, &qc.d, bias ? db : NULL, M, N, K, acc, ws, wsb, 0));
        CUDA(cudaDeviceSynchronize());
        if (qc.d.scale_exact) { /* the 16-bit scaling gives the fp32 scaling's bits */
            const size_t yb = (size_t)M * N * esize(dt);
            void *dy2 = acc ? dev_copy(y_h, yb) : dev_poison(yb);
            struct llm_k_qw w32 = qc.d;
            w32.scale_exact = 0;
            CUDA(llm_k_q4_gemm(dt, dy2, N, xin, K, &w32, bias ? db : NULL, M, N, K, acc, ws, wsb,
                               0));
            unsigned char *h1 = xmalloc(yb), *h2 = xmalloc(yb);
            CUDA(cudaMemcpy(h1, dy, yb, cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(h2, dy2, yb, cudaMemcpyDeviceToHost));
            if (memcmp(h1, h2, yb)) {
                size_t i = 0;
                while (h1[i] == h2[i])
                    i++;
                printf("%s: byte %zu differs from the fp32 scaling's result\n", name, i);
                n_failed++;
            }
            free(h1), free(h2);
            cudaFree(dy2);
        }
        cudaFree(dxs);
        cudaFree(ws);
        /* exact codes, fp32 sums scaled per group: only the output is rounded, and
         * x * pre once as the dense path rounds it; warpgroup MMA (past 64 rows) rounds
         * s * q to dt as the dense path does */
        if (q4g_sh >= 3 && M > 64)
            bound = dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5;
        else
            bound = pre ? (dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5) : 4 * bound_ew(dt);
    } else {
        static struct cu_gemm *g[3];
        int gi = dt == LLM_DTYPE_F32 ? 0 : dt == LLM_DTYPE_F16 ? 1 : 2;
        if (!g[gi] && cu_gemm_create(&g[gi], dt, 32u << 20)) {
            printf("%s: %s\n", name, llm_errmsg());
            exit(1);
        }
        void *dw = dev_poison((size_t)N * K * esize(dt)), *dxs = NULL;
        const void *xin = dx;
        if (pre) {
            dxs = dev_poison((size_t)M * K * esize(dt));
            CUDA(llm_k_prescale(dt, dxs, K, dx, K, qc.d.pre, M, K, 0));
            xin = dxs;
        }
        CUDA(llm_k_dequant(dt, dw, &qc.d, N, K, 0));
        if (cu_gemm_run(g[gi], 0, M, N, K, xin, K, dw, bias ? db : NULL, dy, N, dt, acc)) {
            printf("%s: %s\n", name, llm_errmsg());
            n_cases++, n_failed++;
            return;
        }
        CUDA(cudaDeviceSynchronize());
        cudaFree(dw);
        cudaFree(dxs);
        /* the dequantized weights and x * pre are rounded to dt: as a dense product */
        bound = dt == LLM_DTYPE_F32 ? 1e-10 : dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5;
    }
    float *got = dev_f32(dy, (size_t)M * N, dt);
    check(name, got, ref, (size_t)M * N, bound);
    free(got), free(ref), free(x), free(b), free(y0), free(x_h), free(b_h), free(y_h);
    cudaFree(dx), cudaFree(db), cudaFree(dy);
    qcase_free(&qc);
}

/* Two quantized weights [I][K] stacked on the device as the backend stacks fc
 * and gate (codes, then scales, zero points and pre-quant scales in order). */
static struct llm_k_qw qstack(const struct qcase *h, int i4, int I, int K, int group)
{
    int64_t ng = i4 ? K / group : 1;
    size_t qb = i4 ? (size_t)I * K / 2 : (size_t)I * K, ns = (size_t)(I * ng);
    struct llm_k_qw d = h[0].d;
    void *dq, *dsc, *dzm = NULL, *dpre = NULL, *dzq = NULL;
    CUDA(cudaMalloc(&dq, 2 * qb));
    if (h[0].d.zq) CUDA(cudaMalloc(&dzq, 2 * ns));
    CUDA(cudaMalloc(&dsc, 2 * ns * sizeof(float)));
    if (h[0].d.zm) CUDA(cudaMalloc(&dzm, 2 * ns * sizeof(float)));
    if (h[0].d.pre) CUDA(cudaMalloc(&dpre, 2 * (size_t)K * sizeof(float)));
    for (int k = 0; k < 2; k++) {
        CUDA(cudaMemcpy((char *)dq + k * qb, h[k].d.q, qb, cudaMemcpyDeviceToDevice));
        CUDA(cudaMemcpy((float *)dsc + k * ns, h[k].d.scale, ns * 4, cudaMemcpyDeviceToDevice));
        if (dzm)
            CUDA(cudaMemcpy((float *)dzm + k * ns, h[k].d.zm, ns * 4, cudaMemcpyDeviceToDevice));
        if (dzq) CUDA(cudaMemcpy((int8_t *)dzq + k * ns, h[k].d.zq, ns, cudaMemcpyDeviceToDevice));
        if (dpre)
            CUDA(cudaMemcpy((float *)dpre + (size_t)k * K, h[k].d.pre, (size_t)K * 4,
                            cudaMemcpyDeviceToDevice));
    }
    d.q = dq, d.scale = dsc, d.zm = dzm, d.pre = dpre, d.zq = dzq, d.pre_split = I;
    return d;
}

static void qstack_free(struct llm_k_qw *d)
{
    cudaFree((void *)d->q), cudaFree((void *)d->scale), cudaFree((void *)d->zm);
    cudaFree((void *)d->pre), cudaFree((void *)d->zq);
}

/* The gated MLP's stacked fc / gate rows, each with its own pre-quant scale,
 * through llm_k_qgemv_gated, against two reference products and the activation. */
static void qgated_case(int dt, int i4, int act, int M, int I, int K, int group, int zp, int pre,
                        int bias)
{
    char name[200];
    snprintf(name, sizeof name, "%sQGEMV_GATED(%s,dt=%s,act=%d,m=%d,inter=%d,k=%d,g=%d,zp=%d,pre=%d,bias=%d)",
             q_tag(i4), i4 ? "int4" : "int8", llm_dtype_name(dt), act, M, I, K, i4 ? group : 0, zp, pre,
             bias);
    if (!want(name)) return;
    struct qcase h[2];
    qcase_make(&h[0], i4, I, K, group, zp, pre);
    qcase_make(&h[1], i4, I, K, group, zp, pre);
    void *x_h, *b_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    float *b = rand_vals((size_t)2 * I, 0.5f, dt, &b_h);
    float *o[2], *ref = xmalloc(sizeof(float) * (size_t)M * I);
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        o[k] = xmalloc(sizeof(float) * (size_t)M * I);
        if (bias) {
            h[k].w.has_bias = 1;
            h[k].w.bias = (const char *)b_h + (size_t)k * I * esize(dt);
            h[k].w.bias_dtype = dt;
        }
        bad |= llm_cpu_linear_w(o[k], x, M, &h[k].w);
    }
    if (bad) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    for (int m = 0; m < M; m++)
        llm_cpu_gated(ref + (size_t)m * I, o[0] + (size_t)m * I, o[1] + (size_t)m * I, I, act);
    round_to(ref, (size_t)M * I, dt);
    struct llm_k_qw d = qstack(h, i4, I, K, group);
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *db = dev_copy(b_h, (size_t)2 * I * esize(dt));
    void *dy = dev_poison((size_t)M * I * esize(dt));
    CUDA(llm_k_qgemv_gated(dt, act, dy, I, dx, K, &d, bias ? db : NULL, M, I, K, 0));
    float *got = dev_f32(dy, (size_t)M * I, dt);
    check(name, got, ref, (size_t)M * I,
          dt == LLM_DTYPE_F32 ? 1e-10 : dt == LLM_DTYPE_F16 ? 1e-7 : 1e-5);
    free(got), free(ref), free(o[0]), free(o[1]), free(x), free(b), free(x_h), free(b_h);
    qstack_free(&d);
    cudaFree(dx), cudaFree(db), cudaFree(dy);
    qcase_free(&h[0]);
    qcase_free(&h[1]);
}

/* An RMS norm folded into the int4 tile product (llm_k_qgemv_norm) against the
 * CPU: the reference's norm (rounded to dt), then its product - or the fc / gate
 * pair and the activation - and the normalised rows the kernel stores; a
 * LayerNorm must be refused. */
static void qnorm_case(int dt, int kind, int gated, int M, int N, int K, int group, int pre,
                       int bias, int acc)
{
    char name[200];
    snprintf(name, sizeof name,
             "QGEMV_NORM(dt=%s,%s,gated=%d,m=%d,n=%d,k=%d,g=%d,pre=%d,bias=%d,acc=%d%s)",
             llm_dtype_name(dt), kind ? "layer" : "rms", gated, M, N, K, group, pre, bias, acc,
             q_zint && !pre ? ",zp=1" : "");
    if (!want(name)) return;
    struct qcase h[2];
    for (int k = 0; k <= gated; k++)
        qcase_make(&h[k], 1, N, K, group, q_zint && !pre, pre);
    if (kind != LLM_K_NORM_RMS) { /* LayerNorm stays a launch of its own */
        const int taken = llm_k_qgemv_norm_ok(&h[0].d, kind, gated, M, N, K);
        n_cases++, n_failed += taken;
        printf("%-72s refused %s\n", name, taken ? "no  FAIL" : "ok");
        for (int k = 0; k <= gated; k++) qcase_free(&h[k]);
        return;
    }
    void *res_h, *nw_h, *b_h, *y_h;
    const float eps = 1e-5f;
    const size_t nx = (size_t)M * K, ny = (size_t)M * N;
    float *res = rand_vals(nx, 2.f, dt, &res_h), *nw = rand_vals((size_t)K, 1.f, dt, &nw_h);
    float *b = rand_vals((size_t)2 * N, 0.5f, dt, &b_h);
    float *y0 = rand_vals(ny, 1.f, dt, &y_h);
    float *xn = xmalloc(sizeof(float) * nx), *ref = xmalloc(sizeof(float) * ny), *o[2];
    llm_cpu_rmsnorm(xn, res, NULL, nw_h, dt, M, K, eps);
    round_to(xn, nx, dt);
    int bad = 0;
    for (int k = 0; k <= gated; k++) {
        o[k] = xmalloc(sizeof(float) * ny);
        if (bias) {
            h[k].w.has_bias = 1;
            h[k].w.bias = (const char *)b_h + (size_t)k * N * esize(dt);
            h[k].w.bias_dtype = dt;
        }
        bad |= llm_cpu_linear_w(o[k], xn, M, &h[k].w);
    }
    if (bad) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    for (size_t i = 0; i < ny; i++) ref[i] = gated ? 0.f : o[0][i] + (acc ? y0[i] : 0.f);
    for (int m = 0; m < M && gated; m++)
        llm_cpu_gated(ref + (size_t)m * N, o[0] + (size_t)m * N, o[1] + (size_t)m * N, N, 0);
    round_to(ref, ny, dt);
    struct llm_k_qw d = gated ? qstack(h, 1, N, K, group) : h[0].d;
    void *dres = dev_copy(res_h, nx * esize(dt)), *dnw = dev_copy(nw_h, (size_t)K * esize(dt));
    void *db = dev_copy(b_h, (size_t)2 * N * esize(dt));
    void *dout = dev_poison(nx * esize(dt));
    void *dy = acc ? dev_copy(y_h, ny * esize(dt)) : dev_poison(ny * esize(dt));
    const struct llm_k_norm_in nrm = {kind, dres, dnw, NULL, 0.f, eps, dout};
    if (!llm_k_qgemv_norm_ok(&d, kind, gated, M, N, K)) {
        printf("%s: not taken\n", name);
        n_cases++, n_failed++;
    } else {
        CUDA(llm_k_qgemv_norm(dt, gated, 0, dy, N, &nrm, &d, bias ? db : NULL, M, N, K, acc, 0));
        float *got = dev_f32(dy, ny, dt), *gx = dev_f32(dout, nx, dt);
        /* x * w is rounded once instead of the normalised row: a dense product's
         * bounds, and for the gated pair (act(fc) * gate, two such products) 2.5x
         * them (measured on the H200: at most 1.8e-5 in bf16) */
        const double db16 = dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5;
        check(name, got, ref, ny, gated ? 2.5 * db16 : db16);
        char n2[220];
        snprintf(n2, sizeof n2, "%s.rows", name);
        check(n2, gx, xn, nx, 4 * bound_ew(dt) + 1e-11);
        free(got), free(gx);
    }
    if (gated) qstack_free(&d);
    for (int k = 0; k <= gated; k++) free(o[k]), qcase_free(&h[k]);
    free(res), free(nw), free(b), free(y0), free(xn), free(ref);
    free(res_h), free(nw_h), free(b_h), free(y_h);
    cudaFree(dres), cudaFree(dnw), cudaFree(db), cudaFree(dout), cudaFree(dy);
}

/* The device re-layout of int4 weights (what the backend uploads through)
 * against the host's: byte-equal. */
static void test_q4_tile_dev(void)
{
    const int nk[][2] = {{16, 64}, {48, 192}, {4096, 4096}, {1008, 11008}};
    for (int s = 0; s < 4; s++) {
        char name[96];
        snprintf(name, sizeof name, "Q4_TILE_DEV(n=%d,k=%d)", nk[s][0], nk[s][1]);
        if (!want(name)) continue;
        const int64_t N = nk[s][0], K = nk[s][1];
        const size_t qb = (size_t)(N * K / 2);
        uint8_t *q = xmalloc(qb), *ref = xmalloc(qb), *got = xmalloc(qb);
        for (size_t i = 0; i < qb; i++) q[i] = (uint8_t)rnd32();
        llm_k_q4_tile(ref, q, N, K);
        void *dq = dev_copy(q, qb), *dt = dev_poison(qb);
        int e = llm_k_q4_tile_dev(dt, dq, N, K, NULL);
        if (!e) e = (int)cudaMemcpy(got, dt, qb, cudaMemcpyDeviceToHost);
        size_t bad = 0;
        for (size_t i = 0; i < qb && !e; i++) bad += got[i] != ref[i];
        const int ok = !e && !bad;
        n_cases++;
        n_failed += !ok;
        printf("%-72s bytes %zu differ %zu rc %d  %s\n", name, qb, bad, e, ok ? "ok" : "FAIL");
        cudaFree(dq), cudaFree(dt);
        free(q), free(ref), free(got);
    }
}

/* llm_k_gather_cols (GPTQ act-order inputs): x's columns in a random order,
 * from rows wider than K (a strided buffer), byte for byte. */
static void test_gather_cols(void)
{
    const int mk[][3] = {{1, 64, 64}, {7, 160, 192}, {33, 4096, 4096}, {5, 11008, 22016}};
    for (int di = 0; di < 3; di++)
        for (int s = 0; s < 4; s++) {
            const int dt = DTS[di], M = mk[s][0], K = mk[s][1], ldx = mk[s][2];
            char name[96];
            snprintf(name, sizeof name, "GATHER_COLS(dt=%s,m=%d,k=%d,ldx=%d)", llm_dtype_name(dt),
                     M, K, ldx);
            if (!want(name)) continue;
            void *x_h;
            float *x = rand_vals((size_t)M * ldx, 1.f, dt, &x_h);
            int32_t *perm = xmalloc(sizeof(int32_t) * (size_t)K);
            for (int j = 0; j < K; j++)
                perm[j] = j;
            for (int j = K - 1; j > 0; j--) { /* Fisher-Yates */
                const int r = irand(j + 1), t = perm[j];
                perm[j] = perm[r], perm[r] = t;
            }
            const size_t es = esize(dt);
            uint8_t *ref = xmalloc((size_t)M * K * es), *got = xmalloc((size_t)M * K * es);
            for (int m = 0; m < M; m++)
                for (int j = 0; j < K; j++)
                    memcpy(ref + ((size_t)m * K + j) * es,
                           (const uint8_t *)x_h + ((size_t)m * ldx + perm[j]) * es, es);
            void *dx = dev_copy(x_h, (size_t)M * ldx * es), *dp = dev_copy(perm, 4 * (size_t)K);
            void *dy = dev_poison((size_t)M * K * es);
            int e = llm_k_gather_cols(dt, dy, K, dx, ldx, dp, M, K, NULL);
            if (!e) e = (int)cudaMemcpy(got, dy, (size_t)M * K * es, cudaMemcpyDeviceToHost);
            const int ok = !e && !memcmp(got, ref, (size_t)M * K * es);
            n_cases++;
            n_failed += !ok;
            printf("%-72s rc %d  %s\n", name, e, ok ? "ok" : "FAIL");
            cudaFree(dx), cudaFree(dp), cudaFree(dy);
            free(x), free(x_h), free(perm), free(ref), free(got);
        }
}

static void test_qlinear(void)
{
    /* (N, K): square, odd N (tails of the 4-warp blocks), wide K, Llama-2-7B down */
    const int nk[][2] = {{4096, 4096}, {1001, 256}, {136, 2048}, {4096, 11008}};
    const int gs[] = {32, 64, 128};
    for (int di = 0; di < 3; di++)
        for (int i4 = 0; i4 < 2; i4++) {
            int dt = DTS[di], v = 0;
            /* the GEMV: one row and several, every group size, zero point and pre on/off */
            for (int s = 0; s < 4; s++)
                for (int mi = 0; mi < 3; mi++, v++) {
                    int M = mi == 0 ? 1 : mi == 1 ? 3 : 8, g = gs[v % 3];
                    if (nk[s][1] % g) g = 32;
                    if (s == 3 && mi) continue;
                    qlinear_case(dt, 0, i4, M, nk[s][0], nk[s][1], g, i4 && (v & 1), (v >> 1) & 1,
                                 v % 3 == 1, v % 4 == 2);
                }
            for (int z = 0; z < 2; z++)
                for (int p = 0; p < 2; p++) {
                    qlinear_case(dt, 0, i4, 1, 1000, 512, 64, i4 && z, p, 1, 1);
                    qlinear_case(dt, 0, i4, 2, 1000, 512, 128, i4 && z, p, 0, 0);
                }
            /* the dense path: rows past the GEMV, an odd group size the GEMV refuses */
            const int mm[] = {1, 17, 64};
            for (int mi = 0; mi < 3; mi++)
                for (int s = 0; s < 3; s++, v++)
                    qlinear_case(dt, 1, i4, mm[mi], nk[s][0], nk[s][1], gs[v % 3], i4 && (v & 1),
                                 (v >> 1) & 1, v % 3 == 1, v % 4 == 2);
            if (i4) {
                qlinear_case(dt, 1, 1, 9, 200, 480, 48, 1, 1, 1, 1);
                qlinear_case(dt, 1, 1, 33, 96, 1040, 16, 0, 0, 0, 1);
            }
            /* gate / up with the activation fused, each half with its own pre-quant scale */
            for (int act = 0; act < 4; act++) {
                qgated_case(dt, i4, act, 1, 1000, 512, gs[act % 3], i4 && (act & 1), act != 2,
                            act & 1);
                qgated_case(dt, i4, act, act + 2, 264, 256, 32, i4 && !(act & 1), act & 1, 1);
            }
            qgated_case(dt, i4, 0, 1, 11008, 4096, 128, 0, 1, 0);
        }
    /* every single-row tile shape (bf16) */
    for (int sh = 0; sh < 6; sh++) {
        llm_k_set_qgemv_shape(sh);
        for (int i4 = 0; i4 < 2; i4++) {
            qlinear_case(LLM_DTYPE_BF16, 0, i4, 1, 1001 + sh, 2048, 128, i4, 1, 1, 1);
            qlinear_case(LLM_DTYPE_BF16, 0, i4, 1, 4096 - 8 * sh, 4096, 64, 0, 0, 0, 0);
            qlinear_case(LLM_DTYPE_F32, 0, i4, 1, 77 + sh, 11008, 64, 1, 1, 1, 0);
            if (sh <= 1) {
                qgated_case(LLM_DTYPE_BF16, i4, 0, 1, 1003 + sh, 4096, 128, i4, 1, 1);
                qgated_case(LLM_DTYPE_F16, i4, 2, 1, 1003 + sh, 1024, 32, 0, sh, 0);
            }
        }
    }
    llm_k_set_qgemv_shape(0);
    /* int4 in the tensor-core tile layout (f16 / bf16): GEMV up to 8 rows (4 with a
     * pre-quant scale), the gated pair, the dequantized dense path, every launch shape */
    q_tile = 1;
    for (int di = 1; di < 3; di++) {
        int dt = DTS[di], v = 0;
        const int tk[][2] = {{4096, 4096}, {1008, 256}, {160, 2048}, {4096, 11008}};
        const int tm[] = {1, 2, 4, 8};
        for (int s = 0; s < 4; s++)
            for (int mi = 0; mi < 4; mi++, v++) {
                int pre = (v >> 1) & 1;
                if (tm[mi] == 8) pre = 0;
                if (s == 3 && mi > 1) continue;
                qlinear_case(dt, 0, 1, tm[mi], tk[s][0], tk[s][1], gs[v % 3], 0, pre, v % 3 == 1,
                             v % 4 == 2);
            }
        for (int p = 0; p < 2; p++) {
            qlinear_case(dt, 1, 1, 17, 1008, 256, 64, 0, p, 1, p);
            qlinear_case(dt, 1, 1, 64, 4096, 4096, 128, 0, p, 0, 1);
            for (int act = 0; act < 4; act += 3)
                for (int m = 1; m <= 3; m += 2)
                    qgated_case(dt, 1, act, m, 1008, 512, 32 << (act & 1 ? 2 : 0), 0, p, p);
        }
        qgated_case(dt, 1, 0, 1, 11008, 4096, 128, 0, 1, 0);
        /* the dequantization of the tiles: more tiles than one pass of the grid, and a
         * group that is not a multiple of 16 (a group index per element) */
        qlinear_case(dt, 1, 1, 17, 4096, 11008, 128, 0, 1, 1, 0);
        qlinear_case(dt, 1, 1, 40, 1008, 960, 48, 0, 0, 0, 1);
        /* the tensor-core GEMM on the codes: rows around its 32 / 64-row blocks, N off
         * its 128-row blocks, every group, pre, bias, accumulate; K split or not */
        const int shapes[] = {1, 2, 3, 4};
        for (int si = 0; si < 4; si++) { /* every block shape */
            llm_k_set_q4gemm_shape(shapes[si]);
            q4g_sh = shapes[si] == 1 ? 0 : shapes[si];
            const int gm[] = {9, 31, 32, 33, 64, 100, 257};
            const int gk[][2] = {{4096, 4096}, {1008, 256}, {176, 2048}, {4096, 11008}};
            for (int mi = 0; mi < 7; mi++)
                for (int s = 0; s < 4; s++, v++)
                    qlinear_case(dt, 2 + (v & 1), 1, gm[mi], gk[s][0], gk[s][1], gs[v % 3], 0,
                                 (v >> 1) & 1, v % 3 == 1, v % 4 == 2);
            qlinear_case(dt, 2, 1, 320, 3072, 4096, 128, 0, 1, 1, 1);
            qlinear_case(dt, 2, 1, 600, 1024, 4096, 32, 0, 0, 0, 1);
            /* warpgroup MMA's 128-row blocks: rows past one and two blocks, K split; N off
             * a multiple of 256 outputs */
            qlinear_case(dt, 2, 1, 129, 4096, 4096, 64, 0, 0, 1, 0);
            qlinear_case(dt, 3, 1, 256, 1008, 11008, 128, 0, 1, 0, 1);
            qlinear_case(dt, 2, 1, 600, 7184, 1024, 64, 0, 1, 1, 1);
            /* an odd number of 64-input chunks (the warpgroup loop's last, unpaired one) */
            qlinear_case(dt, 2, 1, 100, 512, 192, 64, 0, 1, 0, 0);
            qlinear_case(dt, 3, 1, 130, 256, 320, 32, 0, 0, 1, 1);
        }
        /* scales that are values of dt (llm_k_qw.scale_exact): the warpgroup GEMM scales
         * the codes in 16 bits - against the reference, and byte for byte against its fp32
         * scaling (qlinear_case); rows past 64 take it, fewer the mma.sync kernel */
        llm_k_set_q4gemm_shape(3);
        q4g_sh = 3;
        for (int bn = 128; bn <= 256; bn += 128) { /* x rows a block past 128 rows */
            llm_k_set_q4wg_bn(bn);
            q_bn = bn;
            /* the fp32 scaling at this block width */
            qlinear_case(dt, 2, 1, 257, 1008, 2048, 64, 0, 1, 1, 1);
            qlinear_case(dt, 3, 1, 600, 4096, 11008, 128, 0, 0, 0, 0);
            q_zint = 1;
            qlinear_case(dt, 3, 1, 200, 2032, 2048, 32, 1, 0, 1, 0);
            q_zint = 0;
            q_sx = 1;
            const int xm[] = {40, 65, 129, 257, 600};
            const int xk[][2] = {{4096, 4096}, {1008, 256}, {176, 2048}, {4096, 11008}};
            for (int mi = bn == 256 ? 2 : 0; mi < 5; mi++)
                for (int s = 0; s < 4; s++, v++)
                    qlinear_case(dt, 2 + (v & 1), 1, xm[mi], xk[s][0], xk[s][1], gs[v % 3], 0,
                                 (v >> 1) & 1, v % 3 == 1, v % 4 == 2);
            q_zint = 1;
            for (int mi = 0; mi < 3; mi++)
                qlinear_case(dt, 2 + (mi & 1), 1, 65 + 100 * mi + (bn == 256 ? 100 : 0),
                             1008 + 1024 * mi, 2048, gs[mi % 3], 1, 0, mi & 1, mi >> 1);
            q_zint = 0;
            q_sx = 0;
        }
        llm_k_set_q4wg_bn(256);
        q_bn = 0;
        q4g_sh = 0;
        llm_k_set_q4gemm_shape(0);
        /* x far from zero mean (every value in [q_xmean - 1, q_xmean + 1]), for the staged
         * GEMV: a form that left the codes biased and took the bias times sum(x) off its
         * sums lost its low bits here in f16 (docs/CUDA.md, note 27) */
        for (int xi = 0; xi < 2; xi++) {
            q_xmean = xi ? -24.f : 3.f;
            for (int g3 = 0; g3 < 3; g3++)
                qlinear_case(dt, 0, 1, 1 + 3 * xi, 4096, 4096, gs[g3], 0, g3 & 1, xi, 0);
            q_zint = 1;
            qlinear_case(dt, 0, 1, 1, 4096, 11008, 128, 1, 0, 0, 1);
            q_zint = 0;
        }
        q_xmean = 0.f;
        /* integral zero points in the tile layout (imported AWQ / GPTQ): the staged GEMV,
         * the gated pair, the norm folded in, the dequantized path and the GEMM */
        q_zint = 1;
        for (int mi = 0; mi < 4; mi++)
            for (int s = 0; s < 3; s++, v++)
                qlinear_case(dt, 0, 1, tm[mi], tk[s][0], tk[s][1], gs[v % 3], 1, 0, v % 3 == 1,
                             v % 4 == 2);
        for (int m = 1; m <= 8; m += 7)
            for (int act = 0; act < 4; act += 3)
                qgated_case(dt, 1, act, m, 1008, 512, 32 << (act & 1 ? 2 : 0), 1, 0, m == 1);
        qnorm_case(dt, 0, 0, 3, 4096, 4096, 128, 0, 1, 0);
        qnorm_case(dt, 0, 1, 1, 1008, 2048, 64, 0, 0, 0);
        qlinear_case(dt, 1, 1, 17, 1008, 256, 64, 1, 0, 1, 1);
        for (int si = 0; si < 4; si++) {
            llm_k_set_q4gemm_shape(shapes[si]);
            q4g_sh = shapes[si] == 1 ? 0 : shapes[si];
            for (int mi = 0; mi < 4; mi++)
                qlinear_case(dt, 2 + (mi & 1), 1, 9 + 40 * mi, 1008 + 1024 * mi, 2048, gs[mi % 3],
                             1, 0, mi & 1, mi >> 1);
            qlinear_case(dt, 2, 1, 600, 7184, 512, 32, 1, 0, 1, 0);
        }
        q4g_sh = 0;
        llm_k_set_q4gemm_shape(0);
        q_zint = 0;
        /* a norm folded in: RMS and LayerNorm, plain and gated, with and without pre */
        for (int kind = 0; kind < 2; kind++)
            for (int f = 0; f < 4; f++) {
                const int pre = f & 1, m = f < 2 ? 1 : pre ? 4 : 3;
                qnorm_case(dt, kind, 0, m, 4096 + 16 * f, 4096, gs[f % 3], pre, kind, f == 1);
                qnorm_case(dt, kind, 1, m, 1008, 2048 + 1024 * kind, gs[(f + 1) % 3], pre, 0, 0);
            }
        for (int sh = 1; sh < 9; sh++) {
            llm_k_set_qgemv_shape(q_shape = sh);
            qlinear_case(dt, 0, 1, 1, 1024 + 16 * sh, 2048, 128, 0, 1, 1, 1);
            qgated_case(dt, 1, 1, 1, 1024 + 16 * sh, 1024, 64, 0, 1, 1);
        }
        /* shape 4 is the per-lane tile kernel (the default before the staged one), 5..8
         * the staged kernel's other launch shapes: the GEMV cases above for each */
        for (int sh = 4; sh < 9; sh++) {
            llm_k_set_qgemv_shape(q_shape = sh);
            v = 0;
            for (int s = 0; s < 4; s++)
                for (int mi = 0; mi < 4; mi++, v++) {
                    int pre = (v >> 1) & 1;
                    if (tm[mi] == 8) pre = 0;
                    if (s == 3 && mi > 1) continue;
                    qlinear_case(dt, 0, 1, tm[mi], tk[s][0], tk[s][1], gs[(v + sh) % 3], 0, pre,
                                 v % 3 == 1, v % 4 == 2);
                }
            for (int p = 0; p < 2; p++)
                for (int m = 1; m <= 4; m += 3)
                    qgated_case(dt, 1, sh & 3, m, 1008, 512, 32 << ((sh + p) % 3), 0, p, p);
            qgated_case(dt, 1, 0, 1, 11008, 4096, 128, 0, 1, 0);
        }
        llm_k_set_qgemv_shape(q_shape = 0);
    }
    q_tile = 0;
}

/* ---- 8-bit activations (w8a8.cu, cu_gemm_run8) against llm_cpu_linear_w ------------- */

/* A random fp8 or int8 weight [N][K] with its side tensors, on the host for the
 * reference and on the device as the backend uploads it. */
struct w8case {
    struct llm_weight w;
    uint8_t *q;
    float *scale, *as, *sm;
    void *dq;
    float *dscale, *das, *dsm;
};

static void w8case_make(struct w8case *c, int act, int N, int K, int per_channel, int stat,
                        int smooth)
{
    memset(c, 0, sizeof *c);
    uint8_t *q = xmalloc((size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        q[i] = (uint8_t)rnd32();
        if (act == LLM_K_A_INT8 && q[i] == 0x80) q[i] = 0x81; /* int8 stays in [-127, 127] */
        if (act == LLM_K_A_FP8 && (q[i] & 0x7f) == 0x7f) q[i] ^= 1; /* no NaN */
    }
    int ns = per_channel ? N : 1;
    float *sc = xmalloc(sizeof(float) * (size_t)N), *as = xmalloc(sizeof(float));
    float *sm = smooth ? xmalloc(sizeof(float) * (size_t)K) : NULL;
    float unit = (act == LLM_K_A_FP8 ? 0.002f : 0.02f) / sqrtf((float)K);
    for (int i = 0; i < ns; i++) sc[i] = unit * (1.0f + 0.5f * frand());
    as[0] = stat ? 1.5f / (act == LLM_K_A_FP8 ? 448.f : 127.f) : 0.f; /* |x| < 1: some clip */
    for (int i = 0; sm && i < K; i++) sm[i] = 0.5f + 1.5f * fabsf(frand());
    struct llm_weight *w = &c->w;
    w->present = 1;
    snprintf(w->name, sizeof w->name, "test.weight");
    w->fmt = act == LLM_K_A_FP8 ? LLM_WFMT_FP8 : LLM_WFMT_INT8;
    w->dtype = act == LLM_K_A_FP8 ? LLM_DTYPE_F8E4M3 : LLM_DTYPE_I8;
    w->act = act == LLM_K_A_FP8 ? LLM_WACT_FP8 : LLM_WACT_INT8;
    w->ndim = 2;
    w->shape[0] = N;
    w->shape[1] = K;
    w->data = q;
    w->nbytes = (uint64_t)N * K;
    w->scale_kind = per_channel ? LLM_WSCALE_CHANNEL : LLM_WSCALE_TENSOR;
    w->scale.dtype = LLM_DTYPE_F32;
    w->scale.ndim = 1;
    w->scale.shape[0] = ns;
    w->scale.data = sc;
    if (stat) {
        w->act_scale.dtype = LLM_DTYPE_F32;
        w->act_scale.ndim = 1;
        w->act_scale.shape[0] = 1;
        w->act_scale.data = as;
    }
    if (sm) {
        w->smoother.dtype = LLM_DTYPE_F32;
        w->smoother.ndim = 1;
        w->smoother.shape[0] = K;
        w->smoother.data = sm;
    }
    for (int i = ns; i < N; i++) sc[i] = sc[0]; /* the device's per-row copy */
    c->q = q, c->scale = sc, c->as = as, c->sm = sm;
    c->dq = dev_copy(q, (size_t)N * K);
    c->dscale = dev_copy(sc, sizeof(float) * (size_t)N);
    c->das = stat ? dev_copy(as, sizeof(float)) : NULL;
    c->dsm = sm ? dev_copy(sm, sizeof(float) * (size_t)K) : NULL;
}

static void w8case_free(struct w8case *c)
{
    free(c->q), free(c->scale), free(c->as), free(c->sm);
    cudaFree(c->dq), cudaFree(c->dscale), cudaFree(c->das), cudaFree(c->dsm);
}

/* The rounded activations: x / smoother rounded under each row's (or the
 * static) scale, as llm_k_quant_act leaves them (bytes times scale), against
 * the reference's rounding: exact. */
static void quant_act_case(int dt, int act, int M, int K, int stat, int smooth)
{
    char name[160];
    snprintf(name, sizeof name, "QUANT_ACT(%s,dt=%s,m=%d,k=%d,static=%d,smooth=%d)",
             act == LLM_K_A_FP8 ? "fp8" : "int8", llm_dtype_name(dt), M, K, stat, smooth);
    if (!want(name)) return;
    struct w8case wc;
    w8case_make(&wc, act, 16, K, 0, stat, smooth);
    void *x_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    for (int k = 0; k < K; k++) x[k] = 0.f; /* row 0 all zero: scale 1 */
    llm_cpu_from_f32(x_h, dt, 0, x, K);
    float *ref = xmalloc(sizeof(float) * (size_t)M * K);
    memcpy(ref, x, sizeof(float) * (size_t)M * K);
    for (int m = 0; smooth && m < M; m++)
        for (int k = 0; k < K; k++) ref[(size_t)m * K + k] /= wc.sm[k];
    if (act == LLM_K_A_FP8) llm_cpu_quant_act_fp8(ref, M, K, stat ? wc.as[0] : 0.f);
    else llm_cpu_quant_act_int8(ref, M, K, stat ? wc.as[0] : 0.f);
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *dq = dev_poison((size_t)M * K);
    float *ds = dev_poison(sizeof(float) * (size_t)M);
    CUDA(llm_k_quant_act(dt, act, dq, ds, dx, K, wc.dsm, wc.das, M, K, 0));
    CUDA(cudaDeviceSynchronize());
    uint8_t *q = xmalloc((size_t)M * K);
    float *s = xmalloc(sizeof(float) * (size_t)M), *got = xmalloc(sizeof(float) * (size_t)M * K);
    CUDA(cudaMemcpy(q, dq, (size_t)M * K, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(s, ds, sizeof(float) * (size_t)M, cudaMemcpyDeviceToHost));
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)m * K + k;
            float v = act == LLM_K_A_FP8 ? llm_e4m3_to_f32(q[i]) : (float)(int8_t)q[i];
            got[i] = v * s[m];
        }
    check(name, got, ref, (size_t)M * K, 0.0);
    free(x), free(x_h), free(ref), free(q), free(s), free(got);
    cudaFree(dx), cudaFree(dq), cudaFree(ds);
    w8case_free(&wc);
}

/* path 0: the GEMV (M <= 8); 1: cuBLASLt's 8-bit GEMM (fp8 with per-row scales, or
 * scaled after the product: vec = 0, and always for int8) */
static void w8_linear_case(int dt, int path, int act, int M, int N, int K, int pc, int stat,
                           int smooth, int bias, int acc)
{
    char name[200];
    snprintf(name, sizeof name, "%s(%s,dt=%s,m=%d,n=%d,k=%d,pc=%d,static=%d,smooth=%d,bias=%d,acc=%d)",
             path ? "W8GEMM" : "W8GEMV", act == LLM_K_A_FP8 ? "fp8" : "int8", llm_dtype_name(dt),
             M, N, K, pc, stat, smooth, bias, acc);
    if (!want(name)) return;
    struct w8case wc;
    w8case_make(&wc, act, N, K, pc, stat, smooth);
    void *x_h, *b_h, *y_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    float *b = rand_vals((size_t)N, 0.5f, dt, &b_h);
    float *y0 = rand_vals((size_t)M * N, 1.f, dt, &y_h);
    if (bias) {
        wc.w.has_bias = 1;
        wc.w.bias = b_h;
        wc.w.bias_dtype = dt;
    }
    float *ref = xmalloc(sizeof(float) * (size_t)M * N);
    if (llm_cpu_linear_w(ref, x, M, &wc.w)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        w8case_free(&wc);
        return;
    }
    if (acc)
        for (size_t i = 0; i < (size_t)M * N; i++) ref[i] += y0[i];
    round_to(ref, (size_t)M * N, dt);
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *db = dev_copy(b_h, (size_t)N * esize(dt));
    void *dy = acc ? dev_copy(y_h, (size_t)M * N * esize(dt)) : dev_poison((size_t)M * N * esize(dt));
    void *dq = dev_poison((size_t)M * K);
    float *ds = dev_poison(sizeof(float) * (size_t)M);
    CUDA(llm_k_quant_act(dt, act, dq, ds, dx, K, wc.dsm, wc.das, M, K, 0));
    /* int8: exact sums; fp8: the tensor cores' accumulation is not plain fp32
     * (measured up to 1.1e-6 through cuBLASLt) */
    double bound = dt == LLM_DTYPE_F32 ? 1e-10 : 4 * bound_ew(dt);
    if (act == LLM_K_A_FP8 && bound < 1e-5) bound = 1e-5;
    if (!path) {
        CUDA(llm_k_w8a8_gemv(dt, act, dy, N, dq, ds, wc.dq, wc.dscale, bias ? db : NULL, M, N, K,
                             acc, 0));
    } else {
        static struct cu_gemm *g[3];
        int gi = dt == LLM_DTYPE_F32 ? 0 : dt == LLM_DTYPE_F16 ? 1 : 2;
        if (!g[gi] && cu_gemm_create(&g[gi], dt, 32u << 20)) {
            printf("%s: %s\n", name, llm_errmsg());
            exit(1);
        }
        size_t ab = sizeof(float) * (size_t)N * 16; /* 16 rows a block: several blocks */
        void *dacc = dev_poison(ab);
        if (cu_gemm_run8(g[gi], 0, act, !pc && stat, M, N, K, dq, ds, wc.dq, wc.dscale,
                         bias ? db : NULL, dy, N, dt, acc, dacc, ab)) {
            printf("%s: %s\n", name, llm_errmsg());
            n_cases++, n_failed++;
            return;
        }
        CUDA(cudaDeviceSynchronize());
        cudaFree(dacc);
    }
    float *got = dev_f32(dy, (size_t)M * N, dt);
    check(name, got, ref, (size_t)M * N, bound);
    free(got), free(ref), free(x), free(b), free(y0), free(x_h), free(b_h), free(y_h);
    cudaFree(dx), cudaFree(db), cudaFree(dy), cudaFree(dq), cudaFree(ds);
    w8case_free(&wc);
}

/* ---- W4A8: int4 weights with static fp8 activations (cuda_step.c qlinear_w4a8) ------
 * path 0: x * pre / s rounded to e4m3 as numbers (llm_k_quant_x8), the int4 GEMV on them
 * with s folded into the group scales; 1: the same into the int4 GEMM on the codes (tile
 * layout); 2: x's e4m3 codes and the weight's codes made e4m3 (llm_k_dequant_codes8) into
 * cuBLASLt's fp8 product with 128-element block scales (cu_gemm_run_blk); 3: the rounded
 * activations alone, against the reference's rounding: exact; 4: the fused product
 * (llm_k_quant_x8t, llm_k_q4_gemm8; tile layout), its codes and group sums checked against
 * path 0's rounding first; w4a8_ws: with a workspace for splitting K. */
/* w4a8_bn: the fused kernel's tile forced */
static int w4a8_ws = 1, w4a8_bn = 0;
static void w4a8_case(int dt, int path, int M, int N, int K, int pre, int bias, int acc)
{
    static const char *const tag[] = {"W4A8_GEMV", "W4A8_GEMM", "W4A8_LT", "W4A8_QX", "W4A8_WG"};
    char name[200];
    snprintf(name, sizeof name, "%s%s(dt=%s,m=%d,n=%d,k=%d,pre=%d,bias=%d,acc=%d%s%s)",
             q_tile ? "T" : "", tag[path], llm_dtype_name(dt), M, N, K, pre, bias, acc,
             path == 4 && !w4a8_ws ? ",ws=0" : "",
             path != 4 || !w4a8_bn ? ""
             : w4a8_bn == 64       ? ",bn=64"
                                   : ",bn=128");
    if (!want(name)) return;
    struct qcase qc;
    qcase_make(&qc, 1, N, K, 128, 0, pre);
    float as = 1.5f / 448.f; /* |x pre| reaches 1.6: some values saturate */
    qc.w.act = LLM_WACT_FP8;
    qc.w.act_scale.dtype = LLM_DTYPE_F32;
    qc.w.act_scale.ndim = 1;
    qc.w.act_scale.shape[0] = 1;
    qc.w.act_scale.data = &as;
    void *x_h, *b_h, *y_h;
    float *x = rand_vals((size_t)M * K, 1.f, dt, &x_h);
    float *b = rand_vals((size_t)N, 0.5f, dt, &b_h);
    float *y0 = rand_vals((size_t)M * N, 1.f, dt, &y_h);
    if (bias) {
        qc.w.has_bias = 1;
        qc.w.bias = b_h;
        qc.w.bias_dtype = dt;
    }
    const size_t ng = (size_t)K / 128, ns = ng * (size_t)N;
    float *ref = xmalloc(sizeof(float) * (size_t)M * (path == 3 ? K : N));
    if (path == 3) { /* the reference's own rounding of x * pre */
        for (size_t i = 0; i < (size_t)M * K; i++)
            ref[i] = x[i] * (pre ? qc.pre[i % K] : 1.f);
        llm_cpu_quant_act_fp8(ref, M, K, as);
    } else if (llm_cpu_linear_w(ref, x, M, &qc.w)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        qcase_free(&qc);
        return;
    }
    if (acc)
        for (size_t i = 0; i < (size_t)M * N; i++)
            ref[i] += y0[i];
    if (path != 3) round_to(ref, (size_t)M * N, dt);
    /* the weight as the backend holds it: no pre, the activation scale in the group scales */
    float *hs = xmalloc(sizeof(float) * ns);
    CUDA(cudaMemcpy(hs, qc.d.scale, sizeof(float) * ns, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < ns; i++)
        hs[i] *= as;
    struct llm_k_qw d = qc.d;
    d.pre = NULL;
    d.scale = dev_copy(hs, sizeof(float) * ns);
    float *das = dev_copy(&as, sizeof(float));
    void *dx = dev_copy(x_h, (size_t)M * K * esize(dt)), *db = dev_copy(b_h, (size_t)N * esize(dt));
    void *dy =
        acc ? dev_copy(y_h, (size_t)M * N * esize(dt)) : dev_poison((size_t)M * N * esize(dt));
    void *dxv = dev_poison((size_t)M * K * esize(dt)), *dxc = dev_poison((size_t)M * K);
    double bound = 0.0;
    float *got = NULL;
    if (path == 3) {
        CUDA(llm_k_quant_x8(dt, 1, dxv, dx, K, qc.d.pre, das, M, K, 0));
        CUDA(llm_k_quant_x8(dt, 0, dxc, dx, K, qc.d.pre, das, M, K, 0));
        CUDA(cudaDeviceSynchronize());
        got = dev_f32(dxv, (size_t)M * K, dt);
        uint8_t *c8 = xmalloc((size_t)M * K);
        CUDA(cudaMemcpy(c8, dxc, (size_t)M * K, cudaMemcpyDeviceToHost));
        int bad = 0; /* the codes and the numbers agree, and times s are the reference's */
        for (size_t i = 0; i < (size_t)M * K; i++) {
            bad += llm_e4m3_to_f32(c8[i]) != got[i];
            got[i] *= as;
        }
        free(c8);
        if (bad) {
            printf("%s: %d codes differ from the numbers\n", name, bad);
            n_cases++, n_failed++;
        }
        check(name, got, ref, (size_t)M * K, 0.0);
    } else {
        if (path < 2) {
            CUDA(llm_k_quant_x8(dt, 1, dxv, dx, K, qc.d.pre, das, M, K, 0));
            if (path == 0) {
                CUDA(llm_k_qgemv(dt, dy, N, dxv, K, &d, bias ? db : NULL, M, N, K, acc, 0));
                bound = dt == LLM_DTYPE_F32 ? 1e-10 : 4 * bound_ew(dt);
            } else {
                CUDA(llm_k_q4_gemm(dt, dy, N, dxv, K, &d, bias ? db : NULL, M, N, K, acc, NULL, 0,
                                   0));
                bound = M > 64 ? (dt == LLM_DTYPE_F16 ? 4e-7 : 2e-5) : 4 * bound_ew(dt);
            }
        } else if (path == 4) {
            const int MP = (M + 3) & ~3, ng4 = K / 128;
            void *dxq = dev_poison((size_t)M * K);
            float *dxs = dev_poison(sizeof(float) * (size_t)ng4 * MP);
            const size_t wsb = sizeof(float) * 16 * (size_t)M * N;
            void *dws = w4a8_ws ? dev_poison(wsb) : NULL;
            CUDA(llm_k_quant_x8(dt, 0, dxc, dx, K, qc.d.pre, das, M, K, 0));
            CUDA(llm_k_quant_x8t(dt, dxq, dxs, dx, K, qc.d.pre, das, M, K, 0));
            CUDA(llm_k_q4_gemm8(dt, dy, N, dxq, dxs, &d, bias ? db : NULL, M, N, K, acc, dws,
                                w4a8_ws ? wsb : 0, 0));
            CUDA(cudaDeviceSynchronize());
            /* the codes are path 0's in tile order; the sums within fp32 rounding */
            uint8_t *c8 = xmalloc((size_t)M * K), *ct = xmalloc((size_t)M * K);
            float *hxs = xmalloc(sizeof(float) * (size_t)ng4 * MP);
            CUDA(cudaMemcpy(c8, dxc, (size_t)M * K, cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(ct, dxq, (size_t)M * K, cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(hxs, dxs, sizeof(float) * (size_t)ng4 * MP, cudaMemcpyDeviceToHost));
            int bad = 0;
            for (int m = 0; m < MP; m++)
                for (int gi = 0; gi < ng4; gi++) {
                    double sum = 0, mag = 0;
                    for (int j = 0; m < M && j < 128; j++) {
                        const size_t i = (size_t)m * K + (size_t)gi * 128 + (size_t)j;
                        const int p = j & 15,
                                  src = (j & ~15) + 2 * (p >> 2) + 8 * (p & 1) + ((p >> 1) & 1);
                        bad += ct[i] != c8[(size_t)m * K + (size_t)gi * 128 + (size_t)src];
                        sum += llm_e4m3_to_f32(c8[i]);
                        mag += fabs(llm_e4m3_to_f32(c8[i]));
                    }
                    bad += fabs(hxs[(size_t)gi * MP + m] - sum / 64) > 1e-6 * mag / 64;
                }
            free(c8), free(ct), free(hxs);
            cudaFree(dxq), cudaFree(dxs), cudaFree(dws);
            if (bad) {
                printf("%s: %d codes or group sums differ from path 0's\n", name, bad);
                n_cases++, n_failed++;
            }
            /* exact products, summed in the tensor cores' fp8 accumulation a group at a time */
            bound = 4 * bound_ew(dt) > 1e-5 ? 4 * bound_ew(dt) : 1e-5;
        } else {
            static struct cu_gemm *g[3];
            int gi = dt == LLM_DTYPE_F32 ? 0 : dt == LLM_DTYPE_F16 ? 1 : 2;
            if (!g[gi] && cu_gemm_create(&g[gi], dt, 32u << 20)) {
                printf("%s: %s\n", name, llm_errmsg());
                exit(1);
            }
            /* as the backend runs it: the rows rounded up to a multiple of 8 (cuBLASLt
             * refuses others), the extra rows' codes whatever the scratch holds, the
             * product into a scratch of the padded rows and the M rows copied out */
            const int MP = (M + 7) & ~7;
            float *ones = xmalloc(sizeof(float) * ng * (size_t)MP);
            for (size_t i = 0; i < ng * (size_t)MP; i++)
                ones[i] = 1.f;
            float *dones = dev_copy(ones, sizeof(float) * ng * (size_t)MP);
            void *dw = dev_poison((size_t)N * K), *dxp = dev_poison((size_t)MP * K);
            void *dyp = dev_poison((size_t)MP * N * esize(dt));
            float *dst = dev_poison(sizeof(float) * ns);
            CUDA(llm_k_quant_x8(dt, 0, dxp, dx, K, qc.d.pre, das, M, K, 0));
            CUDA(llm_k_dequant_codes8(dw, dst, &d, N, K, 0));
            if (acc) CUDA(cudaMemcpy(dyp, dy, (size_t)M * N * esize(dt), cudaMemcpyDeviceToDevice));
            if (cu_gemm_run_blk(g[gi], 0, MP, N, K, dxp, dones, dw, dst, bias ? db : NULL, dyp, N,
                                dt, acc)) {
                printf("%s: %s\n", name, llm_errmsg());
                n_cases++, n_failed++;
            }
            CUDA(cudaMemcpy(dy, dyp, (size_t)M * N * esize(dt), cudaMemcpyDeviceToDevice));
            CUDA(cudaDeviceSynchronize());
            free(ones);
            cudaFree(dones), cudaFree(dw), cudaFree(dst), cudaFree(dxp), cudaFree(dyp);
            /* exact products, summed in the tensor cores' fp8 accumulation a block at a time */
            bound = 4 * bound_ew(dt) > 1e-5 ? 4 * bound_ew(dt) : 1e-5;
        }
        CUDA(cudaDeviceSynchronize());
        got = dev_f32(dy, (size_t)M * N, dt);
        check(name, got, ref, (size_t)M * N, bound);
    }
    free(got), free(ref), free(x), free(b), free(y0), free(x_h), free(b_h), free(y_h), free(hs);
    cudaFree(dx), cudaFree(db), cudaFree(dy), cudaFree(dxv), cudaFree(dxc), cudaFree(das);
    cudaFree((void *)d.scale);
    qcase_free(&qc);
}

static void test_w4a8(void)
{
    for (int di = 0; di < 3; di++) {
        const int dt = DTS[di];
        for (int p = 0; p < 2; p++) {
            w4a8_case(dt, 3, 5, 16, 4096, p, 0, 0);
            w4a8_case(dt, 3, 2, 16, 11008, p, 0, 0);
        }
        for (int t = 0; t < 1 + (dt != LLM_DTYPE_F32); t++) { /* plain layout, then tiles */
            q_tile = t;
            for (int v = 0; v < 4; v++) {
                w4a8_case(dt, 0, v == 3 ? 8 : 1 + v, 4096, 4096, v & 1, v == 2, v == 1);
                w4a8_case(dt, 0, 1, 1008, 11008, v & 1, 0, v >> 1);
            }
            if (t && dt != LLM_DTYPE_F32)
                for (int v = 0; v < 3; v++)
                    w4a8_case(dt, 1,
                              v == 0   ? 17
                              : v == 1 ? 64
                                       : 128,
                              1024, 4096, 1, v == 1, v == 2);
            if (t && dt != LLM_DTYPE_F32) { /* the fused product: tiles, f16 / bf16 */
                static const int c4[][7] = {
                    {9, 1024, 4096, 1, 0, 0, 1},    {17, 1008, 4096, 1, 1, 1, 1},
                    {64, 4096, 4096, 0, 0, 1, 1},   {128, 1024, 11008, 1, 1, 0, 0},
                    {129, 144, 128, 1, 0, 0, 1},    {256, 4096, 4096, 1, 1, 1, 1},
                    {602, 1008, 11008, 1, 0, 1, 0}, {5, 512, 256, 0, 0, 0, 1},
                    {300, 2048, 1024, 1, 1, 0, 1},  {33, 256, 384, 1, 0, 0, 0},
                };
                /* the default (64 rows), then 128 */
                for (int bp = 0; bp < 2; bp++)
                    for (size_t v = 0; v < sizeof c4 / sizeof c4[0]; v++) {
                        llm_k_set_q4gemm8_bn(w4a8_bn = bp ? 128 : 0);
                        w4a8_ws = c4[v][6];
                        w4a8_case(dt, 4, c4[v][0], c4[v][1], c4[v][2], c4[v][3], c4[v][4],
                                  c4[v][5]);
                    }
                llm_k_set_q4gemm8_bn(w4a8_bn = 0);
                w4a8_ws = 1;
            }
            if (dt != LLM_DTYPE_F32) { /* the backend takes it in f16 / bf16 only */
                const int mm[] = {9, 65, 256, 602};
                for (int v = 0; v < 4; v++)
                    w4a8_case(dt, 2, mm[v], v & 1 ? 1024 : 4096, v == 3 ? 11008 : 4096, 1, v == 1,
                              v == 2);
            }
        }
        q_tile = 0;
    }
}

static void test_w8a8(void)
{
    for (int a = 1; a <= 2; a++) {
        for (int di = 0; di < 3; di++) {
            int dt = DTS[di];
            for (int v = 0; v < 4; v++) quant_act_case(dt, a, 1 + 5 * v, 256 << (v & 1), v & 1, v >> 1);
            quant_act_case(dt, a, 3, 11008, 0, a == 2);
            const int nk[][2] = {{4096, 4096}, {1008, 256}, {160, 2048}, {4096, 11008}};
            int v = 0;
            for (int s = 0; s < 4; s++)
                for (int M = 1; M <= 8; M += s == 3 ? 7 : 3, v++)
                    w8_linear_case(dt, 0, a, M, nk[s][0], nk[s][1], v & 1, (v >> 1) & 1,
                                   a == 2 && (v & 4), v % 3 == 1, v % 4 == 2);
            for (int s = 0; s < 3; s++)
                for (int mi = 0; mi < 3; mi++, v++) {
                    const int mm[] = {9, 40, 128};
                    w8_linear_case(dt, 1, a, mm[mi], nk[s][0], nk[s][1], v & 1, (v >> 1) & 1,
                                   a == 2 && (v & 4), v % 3 == 1, v % 4 == 2);
                }
        }
        /* every launch shape of the GEMV */
        for (int sh = 1; sh < 6; sh++) {
            llm_k_set_w8_shape(sh);
            w8_linear_case(LLM_DTYPE_BF16, 0, a, 1 + sh, 1000 + 8 * sh, 4096, sh & 1, 0, 0, 1, 1);
            w8_linear_case(LLM_DTYPE_F16, 0, a, 8, 40 + 16 * sh, 11008, 0, 1, a == 2, 0, 0);
            llm_k_set_w8_shape(0);
        }
        /* a wide f32 product over several blocks of the scratch */
        w8_linear_case(LLM_DTYPE_F32, 1, a, 33, 4096, 512, 1, 0, 0, 1, 0);
    }
}

/* ---- attention --------------------------------------------------------------------- */

struct attn_case {
    int dt, hd, nh, nkv, bs, window, alibi, softcap;
    int n_seqs;
    int q_len[6], kv_len[6];
    int kvq; /* enum llm_k_kvq */
};

/* llm_k_attn_rows_set_chunk's value: 0 the default (an 8-bit cache in f16 or
 * bf16 goes to the tensor-core kernel); 32 or 64 the row kernel staging that
 * many tokens. */
static int rows_chunk;
/* llm_k_attn_rows_set_stages's and llm_k_attn_rows_set_warps's values (2 and 0: the
 * defaults; the cases leave row_keys unknown, so 0 means four warps) */
static int tc_stages = 2, tc_warps;
static void set_tc(int warps, int stages)
{
    llm_k_attn_rows_set_warps(tc_warps = warps);
    llm_k_attn_rows_set_stages(tc_stages = stages);
}
/* llm_k_attn_rows_set_early(0): block ids read after the row's position */
static int tc_late;
/* llm_k_attn_rows_set_tc16(0): a 16-bit cache on the row kernel */
static int rows16;

static void attn_run(const struct attn_case *ac, int mode);
/* Decode rows (modes 0 and 1) in blocks of 32 keys without a window, then in
 * blocks of 16 under a window of 40 (one that starts past a block's keys). */
static void attn_rows_two_layouts(struct attn_case *c)
{
    c->bs = 32, c->window = 0;
    for (int mode = 0; mode < 2; mode++)
        attn_run(c, mode);
    c->bs = 16, c->window = 40;
    for (int mode = 0; mode < 2; mode++)
        attn_run(c, mode);
}

/* One attention call over attn_run's rows (mode 2: prefill tiles; 1: rows with
 * forced splits; 0: rows). */
static void attn_launch(const struct llm_k_attn *a, int mode, int dt, int hd, int n_seqs,
                        const int32_t *seq_start, const int32_t *pos, int n_tok, int nh, int nkv)
{
    if (mode == 2) {
        int32_t tiles[3 * 64];
        int nt = 0, tr = llm_k_attn_prefill_tile_rows(dt, hd);
        for (int s = 0; s < n_seqs; s++)
            for (int r = seq_start[s]; r < seq_start[s + 1]; r += tr) {
                tiles[3 * nt] = s;
                tiles[3 * nt + 1] = r;
                tiles[3 * nt + 2] = seq_start[s + 1] - r < tr ? seq_start[s + 1] - r : tr;
                nt++;
            }
        void *dt_ = dev_copy(tiles, sizeof(int32_t) * 3 * nt);
        CUDA(llm_k_attn_prefill(a, dt_, nt, 0));
        CUDA(cudaDeviceSynchronize());
        cudaFree(dt_);
    } else {
        int32_t *rows = xmalloc(sizeof(int32_t) * n_tok), *sq = xmalloc(sizeof(int32_t) * n_tok);
        int maxlen = 0;
        for (int s = 0; s < n_seqs; s++)
            for (int r = seq_start[s]; r < seq_start[s + 1]; r++) {
                rows[r] = r;
                sq[r] = s;
                if (pos[r] + 1 > maxlen) maxlen = pos[r] + 1;
            }
        int split_len = 0, splits = 1;
        if (mode == 1) {
            split_len = 64;
            splits = (maxlen + split_len - 1) / split_len;
        }
        float *ws = NULL;
        /* one query a sequence: rows and sequences implied (NULL), as a decode step passes them */
        const int ident = n_seqs == n_tok;
        void *dr = ident ? NULL : dev_copy(rows, sizeof(int32_t) * n_tok);
        void *ds = ident ? NULL : dev_copy(sq, 4 * (size_t)n_tok);
        /* a generous grid: splits past a row's keys must leave the result alone */
        void *dspl = dev_copy(&split_len, sizeof split_len);
        if (mode == 1) splits += 3;
        CUDA(cudaMalloc((void **)&ws, sizeof(float) * (size_t)n_tok * nh * splits * (hd + 1)));
        int *cnt, ncnt = n_tok * llm_k_attn_rows_blocks(nh, nkv);
        CUDA(cudaMalloc((void **)&cnt, sizeof(int) * (size_t)ncnt));
        CUDA(cudaMemset(cnt, 0, sizeof(int) * (size_t)ncnt));
        CUDA(llm_k_attn_rows(a, dr, ds, n_tok, dspl, splits, ws, cnt, 0));
        CUDA(cudaDeviceSynchronize());
        if (mode == 1) {
            /* the counters must be left at zero for the next call */
            int *hc = xmalloc(sizeof(int) * (size_t)ncnt), nz = 0;
            CUDA(cudaMemcpy(hc, cnt, sizeof(int) * (size_t)ncnt, cudaMemcpyDeviceToHost));
            for (int i = 0; i < ncnt; i++) nz += hc[i] != 0;
            if (nz) printf("    %d split counters left non-zero\n", nz), n_failed++;
            free(hc);
        }
        cudaFree(ws), cudaFree(dr), cudaFree(ds), cudaFree(dspl), cudaFree(cnt);
        free(rows), free(sq);
    }
}

/* The same call writing the next product's 8-bit codes (struct llm_k_attn's
 * oq; fp8 and int8 by turns, a smoother every third case): with the rows kept
 * they must be byte-equal to the plain call's (in a->o), the codes and
 * scales exactly the reference's rounding of those rows; without, o must be
 * left alone and the codes the same. */
static void attn_codes_check(const struct llm_k_attn *a, const char *name, int mode, int n_seqs,
                             const int32_t *seq_start, const int32_t *pos, int n_tok)
{
    static int turn;
    const int qa = turn % 2 ? LLM_K_A_INT8 : LLM_K_A_FP8, smooth = turn % 3 == 0;
    turn++;
    const int dt = a->dt, nh = a->n_heads, hd = a->head_dim, W = nh * hd;
    const size_t no = (size_t)n_tok * W, ob = no * esize(dt);
    const float osc = qa == LLM_K_A_FP8 ? 1.f / 64 : 1.f / 100;
    float *sm = xmalloc(sizeof(float) * (size_t)W), *of = xmalloc(sizeof(float) * no);
    for (int j = 0; j < W; j++) sm[j] = 0.5f + fabsf(frand());
    void *dsc = dev_copy(&osc, sizeof osc), *dsm = dev_copy(sm, sizeof(float) * (size_t)W);
    void *dq8 = dev_poison(no), *dxs = dev_poison(4 * (size_t)n_tok), *dob = dev_poison(ob);
    uint8_t *h0 = xmalloc(ob), *h1 = xmalloc(ob), *c1 = xmalloc(no), *c2 = xmalloc(no);
    float *x1 = xmalloc(4 * (size_t)n_tok);
    CUDA(cudaMemcpy(h0, a->o, ob, cudaMemcpyDeviceToHost));
    struct llm_k_attn b = *a;
    b.o = dob, b.oq = qa, b.oq_keep = 1, b.oq_codes = dq8, b.oq_xs = dxs, b.oq_scale = dsc;
    b.oq_sm = smooth ? dsm : NULL;
    attn_launch(&b, mode, dt, hd, n_seqs, seq_start, pos, n_tok, nh, a->n_kv_heads);
    CUDA(cudaMemcpy(h1, dob, ob, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(c1, dq8, no, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(x1, dxs, 4 * (size_t)n_tok, cudaMemcpyDeviceToHost));
    size_t bad = memcmp(h0, h1, ob) != 0;
    llm_cpu_to_f32(of, h0, dt, 0, (int64_t)no);
    for (size_t i = 0; i < no; i++) {
        float f = of[i];
        if (smooth) f = f / sm[i % (size_t)W];
        float q = rintf(f / osc);
        uint8_t want_c = qa == LLM_K_A_FP8 ? llm_f32_to_e4m3(f / osc)
                                           : (uint8_t)(int8_t)(q < -127.f  ? -127.f
                                                               : q > 127.f ? 127.f
                                                                           : q);
        bad += c1[i] != want_c;
    }
    for (int r = 0; r < n_tok; r++) bad += x1[r] != osc;
    /* the codes alone */
    b.oq_keep = 0;
    CUDA(cudaMemset(dob, 0xff, ob));
    CUDA(cudaMemset(dq8, 0xff, no));
    attn_launch(&b, mode, dt, hd, n_seqs, seq_start, pos, n_tok, nh, a->n_kv_heads);
    CUDA(cudaMemcpy(h1, dob, ob, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(c2, dq8, no, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < ob; i++) bad += h1[i] != 0xff;
    bad += memcmp(c1, c2, no) != 0;
    n_cases++;
    printf("%s+codes(%s%s) %zu differ  %s\n", name, qa == LLM_K_A_FP8 ? "fp8" : "int8",
           smooth ? ",smoother" : "", bad, bad ? "FAIL" : "ok");
    if (bad) n_failed++;
    free(sm), free(of), free(h0), free(h1), free(c1), free(c2), free(x1);
    cudaFree(dsc), cudaFree(dsm), cudaFree(dq8), cudaFree(dxs), cudaFree(dob);
}

/* mode 0: row kernel only; 1: row kernel with forced splits; 2: prefill tiles for every
 * sequence (q_len >= 1). */
static void attn_run(const struct attn_case *ac, int mode)
{
    int dt = ac->dt, hd = ac->hd, nh = ac->nh, nkv = ac->nkv, bs = ac->bs;
    char name[240];
    char seqs[120] = "";
    size_t sl = 0;
    for (int s = 0; s < ac->n_seqs; s++)
        sl += (size_t)snprintf(seqs + sl, sizeof seqs - sl, "%s%d/%d", s ? "," : "", ac->q_len[s],
                               ac->kv_len[s]);
    snprintf(name, sizeof name, "ATTN_%s(dt=%s,hd=%d,heads=%d/%d,bs=%d,win=%d%s%s%s%s,q/kv=%s)",
             mode == 2   ? "PREFILL"
             : mode == 1 ? "ROWS_SPLIT"
                         : "ROWS",
             llm_dtype_name(dt), hd, nh, nkv, bs, ac->window, ac->alibi ? ",alibi" : "",
             ac->softcap ? ",softcap" : "",
             ac->kvq == LLM_K_KV_FP8    ? ",kv=fp8"
             : ac->kvq == LLM_K_KV_INT8 ? ",kv=int8"
                                        : "",
             rows_chunk == 64   ? ",rowk64"
             : rows_chunk == 32 ? ",rowk32"
             : rows16           ? ",rowk16"
             /* a 16-bit cache always runs two stages */
             : tc_warps == 2             ? (ac->kvq && tc_stages == 4   ? ",tcw2s4"
                                            : ac->kvq && tc_stages == 3 ? ",tcw2s3"
                                                                        : ",tcw2")
             : ac->kvq && tc_stages == 3 ? ",tc3"
             : tc_late                   ? ",late"
                                         : "",
             seqs);
    if (!want(name)) return;
    if (mode == 2 && !llm_k_attn_prefill_supported(dt, hd)) return;

    int n_tok = 0, max_blk = 0;
    int32_t seq_start[7], seq_len[6];
    for (int s = 0; s < ac->n_seqs; s++) {
        seq_start[s] = n_tok;
        n_tok += ac->q_len[s];
        seq_len[s] = ac->kv_len[s];
        int nb = (ac->kv_len[s] + bs - 1) / bs;
        if (nb > max_blk) max_blk = nb;
    }
    seq_start[ac->n_seqs] = n_tok;
    int bt_stride = max_blk + 1;
    int n_blocks = ac->n_seqs * bt_stride + 3;
    /* a random permutation of blocks */
    int32_t *perm = xmalloc(sizeof(int32_t) * n_blocks);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = irand(i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int32_t *bt = xmalloc(sizeof(int32_t) * ac->n_seqs * bt_stride);
    for (int i = 0; i < ac->n_seqs * bt_stride; i++) bt[i] = perm[i];
    int32_t *pos = xmalloc(sizeof(int32_t) * n_tok), *tok = xmalloc(sizeof(int32_t) * n_tok);
    for (int s = 0; s < ac->n_seqs; s++)
        for (int i = 0; i < ac->q_len[s]; i++) {
            pos[seq_start[s] + i] = ac->kv_len[s] - ac->q_len[s] + i;
            tok[seq_start[s] + i] = 0;
        }
    int qs = (nh + 2 * nkv) * hd;
    void *q_h, *k_h, *v_h;
    float *q = rand_vals((size_t)n_tok * qs, 1.f, dt, &q_h);
    size_t kvn = (size_t)n_blocks * nkv * bs * hd;
    float *k = rand_vals(kvn, 1.f, dt, &k_h);
    float *v = rand_vals(kvn, 1.f, dt, &v_h);
    const int kvq = ac->kvq;
    const float ksc = kv_scale_of(kvq, 0), vsc = kv_scale_of(kvq, 1);
    uint8_t *kc = NULL, *vc = NULL;
    if (kvq) { /* the cache holds codes; the reference reads the values they stand for */
        kc = xmalloc(kvn), vc = xmalloc(kvn);
        for (size_t i = 0; i < kvn; i++) {
            kc[i] = kv_code(kvq, k[i], ksc), vc[i] = kv_code(kvq, v[i], vsc);
            k[i] = kv_value(kvq, kc[i], ksc), v[i] = kv_value(kvq, vc[i], vsc);
        }
    }
    float slopes[64];
    llm_alibi_slopes(slopes, nh, 8.0);
    float scale = 1.f / sqrtf((float)hd) * (ac->softcap ? 4.f : 1.f);
    struct llm_cpu_kv ckv = {kvq ? (void *)k : k_h, kvq ? (void *)v : v_h,
                             kvq ? LLM_DTYPE_F32 : dt, n_blocks, bs, nkv, hd};
    struct llm_batch b = {
        .n_tokens = n_tok, .tokens = tok, .pos = pos, .n_seqs = ac->n_seqs,
        .seq_start = seq_start, .seq_len = seq_len, .block_table = bt, .bt_stride = bt_stride,
    };
    struct llm_cpu_attn ca = {
        nh, scale, ac->window, ac->softcap ? 5.f : 0.f, ac->alibi ? slopes : NULL, NULL, 0.0f, 0};
    float *ref = xmalloc(sizeof(float) * (size_t)n_tok * nh * hd);
    if (llm_cpu_attention(ref, (int64_t)nh * hd, q, qs, &ckv, &b, &ca)) {
        printf("%s: reference failed: %s\n", name, llm_errmsg());
        n_cases++, n_failed++;
        return;
    }
    round_to(ref, (size_t)n_tok * nh * hd, dt);

    /* GPU pool: [block][K, V][kv head][slot][dim] */
    size_t blk = (size_t)nkv * bs * hd, es = esize(dt), kes = kvq ? 1 : es;
    char *pool = xmalloc(kvn * 2 * kes);
    const char *ksrc = kvq ? (const char *)kc : k_h, *vsrc = kvq ? (const char *)vc : v_h;
    for (int bI = 0; bI < n_blocks; bI++) {
        memcpy(pool + (2 * bI) * blk * kes, ksrc + bI * blk * kes, blk * kes);
        memcpy(pool + (2 * bI + 1) * blk * kes, vsrc + bI * blk * kes, blk * kes);
    }
    free(kc), free(vc);
    void *dpool = dev_copy(pool, kvn * 2 * kes), *dq = dev_copy(q_h, (size_t)n_tok * qs * es);
    void *dbt = dev_copy(bt, sizeof(int32_t) * ac->n_seqs * bt_stride);
    void *dpos = dev_copy(pos, sizeof(int32_t) * n_tok), *dsl = dev_copy(slopes, sizeof slopes);
    void *dout = dev_poison((size_t)n_tok * nh * hd * es);
    struct llm_k_attn a = {
        .dt = dt, .q = dq, .q_stride = qs, .o = dout, .kv = dpool,
        .blk_stride = (int64_t)2 * blk, .block_size = bs, .block_table = dbt,
        .bt_stride = bt_stride, .pos = dpos, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
        .scale = scale, .softcap = ca.softcap, .window = ac->window,
        .alibi = ac->alibi ? dsl : NULL, .kv_q = kvq, .k_scale = ksc, .v_scale = vsc,
    };
    attn_launch(&a, mode, dt, hd, ac->n_seqs, seq_start, pos, n_tok, nh, nkv);
    float *got = dev_f32(dout, (size_t)n_tok * nh * hd, dt);
    double bound = dt == LLM_DTYPE_F32 ? 1e-10 : dt == LLM_DTYPE_F16 ? 5e-7 : 2e-5;
    check(name, got, ref, (size_t)n_tok * nh * hd, bound);
    attn_codes_check(&a, name, mode, ac->n_seqs, seq_start, pos, n_tok);
    free(got), free(ref), free(pool), free(q), free(k), free(v), free(q_h), free(k_h), free(v_h);
    free(bt), free(perm), free(pos), free(tok);
    cudaFree(dpool), cudaFree(dq), cudaFree(dbt), cudaFree(dpos), cudaFree(dsl), cudaFree(dout);
}

static void test_attn(void)
{
    /* heads, kv heads, head_dim */
    /* groups of 1, 4, 8, 2, 2, 3 (a padded head block) and 12 (two head blocks, 8 + 4) */
    const int shapes[][3] = {{4, 4, 64},  {8, 2, 128},  {8, 1, 80}, {4, 2, 96},
                             {2, 1, 256}, {12, 4, 128}, {12, 1, 64}};
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 7; si++) {
            struct attn_case c = {DTS[di], shapes[si][2], shapes[si][0], shapes[si][1], 32, 0, 0, 0,
                                  5,
                                  {1, 1, 20, 50, 130},
                                  {1, 37, 20, 130, 200},
                                  LLM_K_KV_NONE};
            for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
            c.bs = 16;
            c.window = 40;
            for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
        }
    /* the same decode rows on the row kernel where the tensor-core one serves a
     * 16-bit cache (f16, bf16) */
    llm_k_attn_rows_set_tc16(!(rows16 = 1));
    for (int di = 1; di < 3; di++)
        for (int si = 0; si < 7; si++) {
            struct attn_case c = {
                DTS[di], shapes[si][2],       shapes[si][0],         shapes[si][1], 32, 0, 0, 0,
                5,       {1, 1, 20, 50, 130}, {1, 37, 20, 130, 200}, LLM_K_KV_NONE};
            for (int mode = 0; mode < 2; mode++)
                attn_run(&c, mode);
        }
    llm_k_attn_rows_set_tc16(!(rows16 = 0));
    /* an 8-bit KV cache (and the 16-bit one through the same tensor-core kernel):
     * GQA groups, head dims 64..256, windows, splits, softcap */
    for (int di = 0; di < 3; di++)
        for (int kk = 0; kk < 3; kk++) {
            const int kvq = kk == 2 ? LLM_K_KV_NONE : LLM_K_KV_FP8 + kk;
            /* groups of 4, 1, 8, 2, 3 (a padded head block) and 12 (two head blocks) */
            const int qs_[][3] = {{8, 2, 128}, {4, 4, 64}, {8, 1, 80},
                                  {2, 1, 256}, {12, 4, 96}, {12, 1, 64}};
            for (int si = 0; si < 6; si++) {
                struct attn_case c = {DTS[di], qs_[si][2], qs_[si][0], qs_[si][1], 32, 0, 0, 0,
                                      5, {1, 1, 20, 50, 130}, {1, 37, 20, 130, 200}, kvq};
                for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
                c.bs = 16, c.window = 40;
                for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
                c.bs = 24, c.window = 0; /* not a power of two: the loader divides */
                for (int mode = 0; mode < 2; mode++) attn_run(&c, mode);
                /* two warps a block, two and four stages */
                for (int ns = 2; ns <= 4; ns += 2) {
                    set_tc(2, ns);
                    attn_rows_two_layouts(&c);
                }
                set_tc(0, 2);
            }
            struct attn_case c = {DTS[di], 128, 32, 8, 32, 0, 0, 1, 3, {1, 1, 70},
                                  {700, 1500, 70}, kvq};
            for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
            c.alibi = 1, c.softcap = 0;
            for (int mode = 0; mode < 2; mode++) attn_run(&c, mode);
            c.alibi = 0, c.softcap = 1;
            /* the row kernel where the tensor-core one would serve f16 and bf16,
             * staging 32 or 64 tokens at a time */
            struct attn_case c2 = {DTS[di], 128, 8, 2, 16, 40, 0, 0, 5, {1, 1, 20, 50, 130},
                                   {1, 37, 20, 130, 200}, kvq};
            for (int ch = 32; ch <= 64; ch += 32) {
                llm_k_attn_rows_set_chunk(rows_chunk = ch);
                for (int mode = 0; mode < 2; mode++) attn_run(&c, mode), attn_run(&c2, mode);
            }
            llm_k_attn_rows_set_chunk(rows_chunk = 0);
            /* the tensor-core kernel three stages deep */
            set_tc(4, 3);
            for (int mode = 0; mode < 2; mode++)
                attn_run(&c, mode), attn_run(&c2, mode);
            /* two warps a block, three stages */
            set_tc(2, 3);
            for (int mode = 0; mode < 2; mode++) attn_run(&c, mode), attn_run(&c2, mode);
            set_tc(0, 2);
            /* a decode step: one new token a sequence, rows implied; the block ids
             * read early (default) and late, windows that start past a block's keys */
            struct attn_case c3 = {
                DTS[di], 128, 32, 8, 32, 0, 0, 0, 5, {1, 1, 1, 1, 1}, {700, 1500, 70, 5, 2049},
                kvq};
            for (int late = 0; late < 2; late++) {
                CUDA(llm_k_attn_rows_set_early(!(tc_late = late)));
                attn_rows_two_layouts(&c3);
            }
            CUDA(llm_k_attn_rows_set_early(1));
            tc_late = 0;
            set_tc(2, 2); /* two warps a block */
            attn_rows_two_layouts(&c3);
            set_tc(0, 2);
        }
    for (int di = 0; di < 3; di++) {
        /* long decode (splits), alibi, softcap */
        struct attn_case c = {DTS[di], 128, 8, 8, 32, 0, 0, 0, 3, {1, 1, 70}, {700, 1500, 70},
                              LLM_K_KV_NONE};
        for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
        c.alibi = 1;
        for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
        c.alibi = 0;
        c.softcap = 1;
        for (int mode = 0; mode < 3; mode++) attn_run(&c, mode);
    }
}


/* ---- sampling -------------------------------------------------------------------------- */

/* ---- experts: the sort by expert and the grouped product (moe.cu) ------------------ */

/* n tokens, each choosing k distinct experts of E (skew: most choose expert
 * 2, so it spans several row tiles, and others get none); the sort checked
 * for what it promises, then the gathered fc|gate product [S][2 I] and the
 * down product [S][H] over its output against sums in double. */
static void moe_case(int dt, int n, int E, int K, int H, int I, int skew, int tm)
{
    char name[200];
    snprintf(name, sizeof name,
             "MOE_GEMM(dt=%s,n=%d,experts=%d,k=%d,hidden=%d,inter=%d,%s,tile=%d)",
             llm_dtype_name(dt), n, E, K, H, I, skew ? "skewed" : "uniform", tm);
    if (!want(name)) return;
    const int S = n * K;
    int32_t *chosen = xmalloc(sizeof(int32_t) * (size_t)S);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < K; j++) {
            int e, dup;
            do {
                e = skew && j == 0 && irand(8) ? 2 % E : irand(E);
                dup = 0;
                for (int q = 0; q < j; q++)
                    dup |= chosen[t * K + q] == e;
            } while (dup);
            chosen[t * K + j] = e;
        }
    int32_t *dc = dev_copy(chosen, sizeof(int32_t) * (size_t)S);
    int32_t *doff = dev_poison(sizeof(int32_t) * (size_t)(E + 1));
    int32_t *drows = dev_poison(sizeof(int32_t) * (size_t)S);
    int32_t *dwhere = dev_poison(sizeof(int32_t) * (size_t)S);
    size_t nt_max = (size_t)(S + tm - 1) / tm + (size_t)(E < S ? E : S);
    int32_t *dtiles = dev_poison(sizeof(int32_t) * (1 + 2 * nt_max));
    CUDA(llm_k_moe_sort(dc, n, E, K, tm, doff, drows, dwhere, dtiles, 0));
    int32_t *off = xmalloc(sizeof(int32_t) * (size_t)(E + 1));
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)S),
            *where = xmalloc(sizeof(int32_t) * (size_t)S);
    int32_t *tiles = xmalloc(sizeof(int32_t) * (1 + 2 * nt_max));
    CUDA(cudaDeviceSynchronize());
    CUDA(cudaMemcpy(off, doff, sizeof(int32_t) * (size_t)(E + 1), cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(rows, drows, sizeof(int32_t) * (size_t)S, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(where, dwhere, sizeof(int32_t) * (size_t)S, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(tiles, dtiles, sizeof(int32_t) * (1 + 2 * nt_max), cudaMemcpyDeviceToHost));
    /* offsets: the prefix sums of the counts; each slot inside its expert's
     * range and found there; the tiles: every expert's rows, tm at a time */
    int sort_ok = off[0] == 0 && off[E] == S, nt = 0;
    char *seen = calloc((size_t)S, 1);
    for (int e = 0; e < E && sort_ok; e++) {
        int cnt = 0;
        for (int i = 0; i < S; i++)
            cnt += chosen[i] == e;
        sort_ok &= off[e + 1] - off[e] == cnt;
        for (int m0 = off[e]; m0 < off[e + 1] && sort_ok; m0 += tm, nt++)
            sort_ok &= (size_t)nt < nt_max && tiles[1 + 2 * nt] == e && tiles[2 + 2 * nt] == m0;
    }
    sort_ok &= tiles[0] == nt;
    for (int i = 0; i < S && sort_ok; i++) {
        int e = chosen[i], w = where[i];
        sort_ok &= w >= off[e] && w < off[e + 1] && !seen[w] && rows[w] == i / K;
        if (sort_ok) seen[w] = 1;
    }
    n_cases++;
    if (!sort_ok) n_failed++;
    printf("%-72s %s\n", name, sort_ok ? "sort ok" : "sort FAIL");

    void *x_h, *w0_h, *w1_h, *wd_h;
    float *x = rand_vals((size_t)n * H, 1.f, dt, &x_h);
    float *w0 = rand_vals((size_t)E * I * H, 1.f / sqrtf((float)H), dt, &w0_h);
    float *w1 = rand_vals((size_t)E * I * H, 1.f / sqrtf((float)H), dt, &w1_h);
    float *wd = rand_vals((size_t)E * H * I, 1.f / sqrtf((float)I), dt, &wd_h);
    void *dx = dev_copy(x_h, (size_t)n * H * esize(dt));
    void *dw0 = dev_copy(w0_h, (size_t)E * I * H * esize(dt));
    void *dw1 = dev_copy(w1_h, (size_t)E * I * H * esize(dt));
    void *dwd = dev_copy(wd_h, (size_t)E * H * I * esize(dt));
    void *dh = dev_poison((size_t)S * 2 * I * esize(dt)),
         *dy = dev_poison((size_t)S * H * esize(dt));
    CUDA(llm_k_moe_gemm(dt, dh, 2 * I, dx, H, drows, dw0, dw1, I, doff, dtiles, tm, S, E, 2 * I, H,
                        0));
    CUDA(llm_k_moe_gemm(dt, dy, H, dh, 2 * I, NULL, dwd, NULL, H, doff, dtiles, tm, S, E, H, I, 0));
    float *h = dev_f32(dh, (size_t)S * 2 * I, dt), *y = dev_f32(dy, (size_t)S * H, dt);
    float *href = xmalloc(sizeof(float) * (size_t)S * 2 * I);
    float *yref = xmalloc(sizeof(float) * (size_t)S * H);
    for (int i = 0; i < S; i++) {
        const int t = i / K, e = chosen[i], r = where[i];
        for (int j = 0; j < 2 * I; j++) {
            const float *wr =
                j < I ? w0 + ((size_t)e * I + j) * H : w1 + ((size_t)e * I + j - I) * H;
            double acc = 0;
            for (int q = 0; q < H; q++)
                acc += (double)x[(size_t)t * H + q] * wr[q];
            href[(size_t)r * 2 * I + j] = (float)acc;
        }
        for (int j = 0; j < H; j++) { /* over the product's own output, so errors do not add */
            const float *wr = wd + ((size_t)e * H + j) * I;
            double acc = 0;
            for (int q = 0; q < I; q++)
                acc += (double)h[(size_t)r * 2 * I + q] * wr[q];
            yref[(size_t)r * H + j] = (float)acc;
        }
    }
    round_to(href, (size_t)S * 2 * I, dt);
    round_to(yref, (size_t)S * H, dt);
    const double bound = dt == LLM_DTYPE_F16 ? 1e-7 : 1e-5;
    char nm[240];
    snprintf(nm, sizeof nm, "%s fc|gate", name);
    check(nm, h, href, (size_t)S * 2 * I, bound);
    snprintf(nm, sizeof nm, "%s down", name);
    check(nm, y, yref, (size_t)S * H, bound);
    free(chosen), free(off), free(rows), free(where), free(tiles), free(seen);
    free(x), free(w0), free(w1), free(wd), free(x_h), free(w0_h), free(w1_h), free(wd_h);
    free(h), free(y), free(href), free(yref);
    cudaFree(dc), cudaFree(doff), cudaFree(drows), cudaFree(dwhere), cudaFree(dtiles);
    cudaFree(dx), cudaFree(dw0), cudaFree(dw1), cudaFree(dwd), cudaFree(dh), cudaFree(dy);
}

/* The router's product and routing in one launch against llm_k_moe_route
 * over logits summed in double on the host: the same experts (a choice may
 * differ only where the two candidates' logits are within 1e-5) and
 * weights within 1e-5. */
static void route_small_case(int dt, int n, int E, int K, int H, int norm)
{
    char name[200];
    snprintf(name, sizeof name, "MOE_ROUTE_SMALL(dt=%s,n=%d,experts=%d,k=%d,hidden=%d,norm=%d)",
             llm_dtype_name(dt), n, E, K, H, norm);
    if (!want(name)) return;
    void *x_h, *w_h;
    float *x = rand_vals((size_t)n * H, 1.f, dt, &x_h);
    float *w = rand_vals((size_t)E * H, 2.f / sqrtf((float)H), dt, &w_h);
    float *lg = xmalloc(sizeof(float) * (size_t)n * E);
    for (int t = 0; t < n; t++)
        for (int e = 0; e < E; e++) {
            double acc = 0;
            for (int q = 0; q < H; q++)
                acc += (double)x[(size_t)t * H + q] * w[(size_t)e * H + q];
            lg[(size_t)t * E + e] = (float)acc;
        }
    void *dx = dev_copy(x_h, (size_t)n * H * esize(dt)),
         *dw = dev_copy(w_h, (size_t)E * H * esize(dt));
    void *dl = dev_copy(lg, sizeof(float) * (size_t)n * E);
    int32_t *dc0 = dev_poison(sizeof(int32_t) * (size_t)n * K),
            *dc1 = dev_poison(sizeof(int32_t) * (size_t)n * K);
    float *dw0 = dev_poison(sizeof(float) * (size_t)n * K),
          *dw1 = dev_poison(sizeof(float) * (size_t)n * K);
    CUDA(llm_k_moe_route(dl, n, E, K, norm, dc0, dw0, 0));
    float *dlg = dev_poison(sizeof(float) * (size_t)n * E);
    int32_t *ddone;
    CUDA(cudaMalloc((void **)&ddone, sizeof(int32_t) * (size_t)n));
    CUDA(cudaMemset(ddone, 0, sizeof(int32_t) * (size_t)n));
    for (int rep = 0; rep < 2; rep++) { /* the second call needs the counters put back */
        CUDA(cudaMemset(dc1, 0xff, sizeof(int32_t) * (size_t)n * K));
        CUDA(llm_k_moe_route_small(dt, dx, dw, n, H, E, K, norm, dlg, ddone, dc1, dw1, 0));
    }
    CUDA(cudaDeviceSynchronize());
    int32_t *c0 = xmalloc(sizeof(int32_t) * (size_t)n * K),
            *c1 = xmalloc(sizeof(int32_t) * (size_t)n * K);
    float *w0 = xmalloc(sizeof(float) * (size_t)n * K),
          *w1 = xmalloc(sizeof(float) * (size_t)n * K);
    CUDA(cudaMemcpy(c0, dc0, sizeof(int32_t) * (size_t)n * K, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(c1, dc1, sizeof(int32_t) * (size_t)n * K, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(w0, dw0, sizeof(float) * (size_t)n * K, cudaMemcpyDeviceToHost));
    CUDA(cudaMemcpy(w1, dw1, sizeof(float) * (size_t)n * K, cudaMemcpyDeviceToHost));
    int bad = 0, ties = 0;
    for (int i = 0; i < n * K; i++) {
        const float *l = lg + (size_t)(i / K) * E;
        if (c1[i] < 0 || c1[i] >= E) {
            bad++;
        } else if (c0[i] != c1[i]) {
            if (fabsf(l[c0[i]] - l[c1[i]]) <= 1e-5f * (fabsf(l[c0[i]]) + 1e-3f))
                ties++;
            else
                bad++;
        } else if (fabsf(w0[i] - w1[i]) > 1e-5f * (fabsf(w0[i]) + 1e-6f)) {
            bad++;
        }
    }
    n_cases++;
    if (bad) n_failed++;
    printf("%-72s %d differ, %d near-ties  %s\n", name, bad, ties, bad ? "FAIL" : "ok");
    free(x), free(w), free(lg), free(x_h), free(w_h), free(c0), free(c1), free(w0), free(w1);
    cudaFree(dx), cudaFree(dw), cudaFree(dl), cudaFree(dc0), cudaFree(dc1), cudaFree(dw0),
        cudaFree(dw1);
    cudaFree(dlg), cudaFree(ddone);
}

/* The per-slot path of a few tokens (gated fc and gate, then down with the
 * weighted combine in expert order and the residual) against sums in double
 * over the same rounded intermediate: h rounded to dt as the kernel stores
 * it. */
static void moe_small_case(int dt, int n, int E, int K, int H, int I, int acc)
{
    char name[200];
    snprintf(name, sizeof name, "MOE_SMALL(dt=%s,n=%d,experts=%d,k=%d,hidden=%d,inter=%d,acc=%d)",
             llm_dtype_name(dt), n, E, K, H, I, acc);
    if (!want(name)) return;
    const int S = n * K;
    int32_t *chosen = xmalloc(sizeof(int32_t) * (size_t)S);
    float *wt = xmalloc(sizeof(float) * (size_t)S);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < K; j++) {
            int e, dup;
            do {
                e = irand(E);
                dup = 0;
                for (int q = 0; q < j; q++)
                    dup |= chosen[t * K + q] == e;
            } while (dup);
            chosen[t * K + j] = e;
            wt[t * K + j] = 0.1f + frand() * frand();
        }
    void *x_h, *fc_h, *g_h, *d_h, *o_h;
    float *x = rand_vals((size_t)n * H, 1.f, dt, &x_h);
    float *fc = rand_vals((size_t)E * I * H, 2.f / sqrtf((float)H), dt, &fc_h);
    float *gt = rand_vals((size_t)E * I * H, 2.f / sqrtf((float)H), dt, &g_h);
    float *dn = rand_vals((size_t)E * H * I, 1.f / sqrtf((float)I), dt, &d_h);
    float *o0 = rand_vals((size_t)n * H, 1.f, dt, &o_h);
    void *dx = dev_copy(x_h, (size_t)n * H * esize(dt)),
         *dfc = dev_copy(fc_h, (size_t)E * I * H * esize(dt));
    void *dg = dev_copy(g_h, (size_t)E * I * H * esize(dt)),
         *dd = dev_copy(d_h, (size_t)E * H * I * esize(dt));
    void *dout =
        acc ? dev_copy(o_h, (size_t)n * H * esize(dt)) : dev_poison((size_t)n * H * esize(dt));
    void *dh = dev_poison((size_t)S * I * esize(dt));
    int32_t *dc = dev_copy(chosen, sizeof(int32_t) * (size_t)S);
    float *dw = dev_copy(wt, sizeof(float) * (size_t)S);
    CUDA(
        llm_k_moe_small(dt, LLM_K_ACT_SILU, dout, dx, dh, dfc, dg, dd, dc, dw, n, K, H, I, acc, 0));
    float *h = dev_f32(dh, (size_t)S * I, dt), *got = dev_f32(dout, (size_t)n * H, dt);
    float *href = xmalloc(sizeof(float) * (size_t)S * I),
          *ref = xmalloc(sizeof(float) * (size_t)n * H);
    for (int sl = 0; sl < S; sl++) {
        const int t = sl / K, e = chosen[sl];
        for (int j = 0; j < I; j++) {
            double a = 0, b = 0;
            const float *fr = fc + ((size_t)e * I + j) * H, *gr = gt + ((size_t)e * I + j) * H;
            for (int q = 0; q < H; q++) {
                a += (double)fr[q] * x[(size_t)t * H + q];
                b += (double)gr[q] * x[(size_t)t * H + q];
            }
            href[(size_t)sl * I + j] = (float)(a / (1.0 + exp(-a)) * b);
        }
    }
    round_to(href, (size_t)S * I, dt);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < H; j++) {
            double tot = acc ? o0[(size_t)t * H + j] : 0;
            for (int k = 0; k < K; k++) {
                const int sl = t * K + k, e = chosen[sl];
                const float *wr = dn + ((size_t)e * H + j) * I;
                double a = 0;
                for (int q = 0; q < I; q++)
                    a += (double)wr[q] * h[(size_t)sl * I + q];
                tot += a * wt[sl];
            }
            ref[(size_t)t * H + j] = (float)tot;
        }
    round_to(ref, (size_t)n * H, dt);
    char nm[240];
    const double bound = dt == LLM_DTYPE_F32 ? 1e-10 : dt == LLM_DTYPE_F16 ? 1e-6 : 4e-5;
    snprintf(nm, sizeof nm, "%s gated", name);
    check(nm, h, href, (size_t)S * I, bound);
    snprintf(nm, sizeof nm, "%s down", name);
    check(nm, got, ref, (size_t)n * H, bound);
    free(chosen), free(wt), free(x), free(fc), free(gt), free(dn), free(o0);
    free(x_h), free(fc_h), free(g_h), free(d_h), free(o_h), free(h), free(got), free(href),
        free(ref);
    cudaFree(dx), cudaFree(dfc), cudaFree(dg), cudaFree(dd), cudaFree(dout), cudaFree(dh);
    cudaFree(dc), cudaFree(dw);
}

static void test_moe(void)
{
    for (int di = 0; di < 3; di++) {
        moe_small_case(DTS[di], 1, 8, 2, 1024, 3584, 1); /* long rows: one a warp */
        moe_small_case(DTS[di], 4, 8, 2, 512, 1024, 0);
        moe_small_case(DTS[di], 1, 128, 8, 512, 192, 1); /* short rows: four a warp */
        moe_small_case(DTS[di], 1, 16, 4, 264, 72, 0);
        moe_small_case(DTS[di], 2, 16, 3, 128, 64, 1);
    }
    for (int di = 0; di < 3; di++) {
        route_small_case(DTS[di], 1, 8, 2, 4096, 1);
        route_small_case(DTS[di], 8, 8, 2, 4096, 0);
        route_small_case(DTS[di], 3, 128, 8, 2048, 1);
        route_small_case(DTS[di], 5, 60, 4, 264, 0);
        route_small_case(DTS[di], 2, 1000, 8, 64, 1);
    }
    for (int di = 1; di < 3; di++)
        for (int tm = 16; tm <= 64; tm += 48) {
            moe_case(DTS[di], 300, 8, 2, 256, 384, 0, tm);  /* Mixtral-like, groups of ~75 */
            moe_case(DTS[di], 64, 128, 8, 512, 192, 0, tm); /* Qwen3-MoE-like, ~4 a group */
            moe_case(DTS[di], 37, 16, 4, 264, 72, 0, tm);   /* k and n off the tile sizes */
            moe_case(DTS[di], 200, 4, 1, 128, 136, 1, tm);  /* one expert of many tiles */
            moe_case(DTS[di], 5, 64, 2, 64, 64, 0, tm);     /* most experts without rows */
        }
}

static void test_sample(void)
{
    const int64_t vocabs[] = {1000, 32000, 1003}; /* 1003: rows not read 16 bytes at a time */
    for (int vi = 0; vi < 3; vi++) {
        int64_t V = vocabs[vi];
        const int n = 48;
        char name[160];
        snprintf(name, sizeof name, "SAMPLE(vocab=%lld,rows=%d)", (long long)V, n);
        if (!want(name)) continue;
        float *lg = xmalloc(sizeof(float) * (size_t)n * V);
        for (int64_t i = 0; i < n * V; i++) lg[i] = frand() * 6.f;
        /* ties, NaN and infinities in a few rows */
        lg[3 * V + 5] = lg[3 * V + 9] = 50.f;
        lg[4 * V + 7] = NAN;
        lg[5 * V + 11] = INFINITY;
        for (int64_t i = 0; i < V; i++) lg[6 * V + i] = (float)(i % 3);
        struct llm_sampling sp[48];
        struct llm_k_sampler kp[48];
        int32_t toks[48 * 12];
        int nt = 0;
        for (int i = 0; i < n; i++) {
            struct llm_sampling *p = &sp[i];
            llm_sampling_init(p);
            int kind = i % 8;
            p->temperature = kind == 0 ? 0.0 : 0.3 + 0.1 * (i % 7);
            p->top_k = kind == 1 ? 1 : kind == 2 ? 40 : kind == 3 ? 64 : kind == 4 ? 5 : kind == 5 ? 0 : 20;
            if (kind == 4 || kind == 6) p->top_p = 0.7;
            if (kind == 6 || kind == 7) p->min_p = 0.05;
            if (i % 3 == 0) p->repetition_penalty = 1.3;
            if (i % 4 == 1) p->presence_penalty = 0.4, p->frequency_penalty = 0.3;
            p->logprobs = i % 5 == 0 ? 20 : i % 5 == 1 ? 3 : -1;
            p->seed = 1000 + (uint64_t)i;
            memset(&kp[i], 0, sizeof kp[i]);
            kp[i].temperature = p->temperature, kp[i].top_p = p->top_p, kp[i].min_p = p->min_p;
            kp[i].rep = p->repetition_penalty, kp[i].pres = p->presence_penalty;
            kp[i].freq = p->frequency_penalty, kp[i].seed = p->seed, kp[i].index = 7 + (uint64_t)i;
            kp[i].stream = (uint32_t)(i % 2), kp[i].top_k = p->top_k;
            kp[i].n_top = p->logprobs > 0 ? p->logprobs : 0;
            kp[i].prompt_off = nt, kp[i].n_prompt = 4;
            for (int j = 0; j < 4; j++) toks[nt++] = irand((int)V);
            kp[i].output_off = nt, kp[i].n_output = 5;
            for (int j = 0; j < 5; j++, nt++) toks[nt] = j == 4 ? toks[nt - 2] : irand((int)V);
            /* row 8 (greedy, no penalty, no alternatives) has its best id banned */
            kp[i].banned_off = nt, kp[i].n_banned = i % 2 || i == 8;
            if (i == 8) {
                int64_t b = 0;
                for (int64_t j = 1; j < V; j++) b = lg[i * V + j] > lg[i * V + b] ? j : b;
                toks[nt++] = (int32_t)b;
            } else if (i % 2) {
                toks[nt++] = (int32_t)(i % V);
            }
        }
        void *dl = dev_copy(lg, sizeof(float) * (size_t)n * V), *dp = dev_copy(kp, sizeof kp);
        void *dt = dev_copy(toks, sizeof(int32_t) * (size_t)nt);
        void *dw = dev_poison(sizeof(float) * (size_t)n * V), *dm = dev_poison(4 * (size_t)n * V);
        void *dout = dev_poison(sizeof(struct llm_k_sample_out) * n);
        CUDA(llm_k_sample(dl, V, n, dp, dt, dw, dm, dout, 0));
        struct llm_k_sample_out ho[48];
        CUDA(cudaDeviceSynchronize());
        CUDA(cudaMemcpy(ho, dout, sizeof ho, cudaMemcpyDeviceToHost));
        int bad = 0, host = 0;
        for (int i = 0; i < n; i++) {
            struct llm_sample_row row = {&sp[i], kp[i].stream, kp[i].index, toks + kp[i].prompt_off,
                                         4, toks + kp[i].output_off, 5,
                                         kp[i].n_banned ? toks + kp[i].banned_off : NULL,
                                         kp[i].n_banned};
            struct llm_sample_result r;
            if (llm_sample_cpu(lg + (int64_t)i * V, V, &row, &r, NULL)) {
                printf("    row %d: reference failed: %s\n", i, llm_errmsg());
                bad++;
                continue;
            }
            if (ho[i].status == 1) {
                host++;
                continue;
            }
            int ok = ho[i].status == 0 && ho[i].token == r.token &&
                     fabsf(ho[i].logprob - r.logprob) <= 1e-5f * (1.f + fabsf(r.logprob)) &&
                     ho[i].n_top == r.n_top;
            for (int j = 0; ok && j < r.n_top; j++)
                ok = ho[i].top_ids[j] == r.top_ids[j] &&
                     fabsf(ho[i].top_logprobs[j] - r.top_logprobs[j]) <=
                         1e-5f * (1.f + fabsf(r.top_logprobs[j]));
            if (!ok && bad++ < 8)
                printf("    row %d (T %.1f k %d p %.2f): gpu status %d token %d lp %.6f n_top %d, "
                       "ref token %d lp %.6f n_top %d\n", i, sp[i].temperature, sp[i].top_k,
                       sp[i].top_p, ho[i].status, ho[i].token, ho[i].logprob, ho[i].n_top, r.token,
                       r.logprob, r.n_top);
        }
        /* rows that need a full sort (top_k 0 with temperature > 0) go to the host */
        int want_host = 0;
        for (int i = 0; i < n; i++) want_host += sp[i].temperature > 0 && sp[i].top_k != 1 &&
                                                 (sp[i].top_k == 0 || sp[i].top_k > 64);
        n_cases++;
        int ok = !bad && host == want_host;
        printf("%-72s %d rows, %d to host  %s\n", name, n, host, ok ? "ok" : "FAIL");
        if (!ok) n_failed++;
        free(lg);
        cudaFree(dl), cudaFree(dp), cudaFree(dt), cudaFree(dw), cudaFree(dm), cudaFree(dout);
    }
}

/* Calibration statistics (kernels/calib.cu) against llm_cpu_col_stats: maxima, the
 * overall maximum and the sampled rows exact, the double sums to rounding; running
 * accumulators are added into, not replaced.  K / V maxima against the same reads on
 * the host. */
static void test_calib(void)
{
    const struct {
        int rows, k, ldx;
    } sh[] = {{1, 64, 64}, {37, 1000, 1032}, {512, 4096, 4096}, {130, 11008, 22016}};
    for (int di = 0; di < 3; di++)
        for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
            int dt = DTS[di], R = sh[si].rows, K = sh[si].k, L = sh[si].ldx, keep = 16;
            char name[160];
            snprintf(name, sizeof name, "COL_STATS(dt=%s,rows=%d,k=%d,ldx=%d)", llm_dtype_name(dt),
                     R, K, L);
            if (!want(name)) continue;
            void *x_h;
            float *x = rand_vals((size_t)R * L, 3.f, dt, &x_h);
            int32_t *slot = xmalloc(sizeof(int32_t) * (size_t)R);
            unsigned char used[16] = {0};
            for (int t = 0; t < R; t++) { /* distinct slots, as the backend sends them */
                int sl = irand(3 * keep) - 2 * keep;
                slot[t] = sl >= 0 && !used[sl] ? sl : -1;
                if (slot[t] >= 0) used[sl] = 1;
            }
            float *chan = xmalloc(sizeof(float) * (size_t)K), amax = 0.5f;
            double *sum = xmalloc(sizeof(double) * (size_t)K);
            float *sample = xmalloc(sizeof(float) * (size_t)keep * K);
            for (int j = 0; j < K; j++) chan[j] = j % 7 ? 0.f : 2.5f, sum[j] = j;
            void *dx = dev_copy(x_h, (size_t)R * L * esize(dt));
            void *ds = dev_copy(slot, sizeof(int32_t) * (size_t)R);
            void *dc = dev_copy(chan, sizeof(float) * (size_t)K);
            void *dsum = dev_copy(sum, sizeof(double) * (size_t)K);
            void *dam = dev_copy(&amax, sizeof(float));
            void *dsm = dev_poison(sizeof(float) * (size_t)keep * K);
            CUDA(llm_k_col_stats(dt, dx, L, R, K, ds, dsm, dc, dsum, dam, 0));
            memset(sample, 0, sizeof(float) * (size_t)keep * K);
            llm_cpu_col_stats(x, R, L, K, slot, chan, sum, &amax, sample);
            float *gc = xmalloc(sizeof(float) * (size_t)K), *gs = xmalloc(sizeof(float) * keep * K);
            double *gsum = xmalloc(sizeof(double) * (size_t)K);
            float gam = 0;
            CUDA(cudaMemcpy(gc, dc, sizeof(float) * (size_t)K, cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(gsum, dsum, sizeof(double) * (size_t)K, cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(&gam, dam, sizeof(float), cudaMemcpyDeviceToHost));
            CUDA(cudaMemcpy(gs, dsm, sizeof(float) * (size_t)keep * K, cudaMemcpyDeviceToHost));
            double se = 0;
            for (int j = 0; j < K; j++)
                se = fmax(se, fabs(gsum[j] - sum[j]) / fmax(fabs(sum[j]), 1e-30));
            int ok = !memcmp(gc, chan, sizeof(float) * (size_t)K) && gam == amax && se <= 1e-12;
            for (int r = 0; r < keep; r++)
                if (used[r])
                    ok &= !memcmp(gs + (size_t)r * K, sample + (size_t)r * K, sizeof(float) * K);
            n_cases++;
            printf("%-72s sums %.1e  %s\n", name, se, ok ? "ok" : "FAIL");
            if (!ok) n_failed++;
            free(x), free(x_h), free(slot), free(chan), free(sum), free(sample), free(gc), free(gs);
            free(gsum);
            cudaFree(dx), cudaFree(ds), cudaFree(dc), cudaFree(dsum), cudaFree(dam), cudaFree(dsm);
        }
    /* K and V maxima of the rows at their slots in one layer of a paged pool */
    for (int di = 0; di < 3; di++) {
        int dt = DTS[di], nb = 4, bs = 16, nkv = 2, hd = 64, n = 20;
        int64_t blk = 2 * (int64_t)nkv * bs * hd * 3; /* three layers; layer 1 is read */
        char name[128];
        snprintf(name, sizeof name, "KV_AMAX(dt=%s,kvh=%d,hd=%d,rows=%d)", llm_dtype_name(dt), nkv,
                 hd, n);
        if (!want(name)) continue;
        void *p_h;
        float *pool = rand_vals((size_t)nb * blk, 2.f, dt, &p_h);
        int32_t slot[20];
        float ref[2] = {0.25f, 0.f}, got[2];
        for (int i = 0; i < n; i++) slot[i] = i == 3 ? -1 : (i * 7) % (nb * bs);
        const int64_t lofs = 2 * (int64_t)nkv * bs * hd;
        for (int i = 0; i < n; i++) {
            if (slot[i] < 0) continue;
            const float *b = pool + lofs + (int64_t)(slot[i] / bs) * blk + (slot[i] % bs) * hd;
            for (int h = 0; h < nkv; h++)
                for (int d = 0; d < hd; d++)
                    for (int j = 0; j < 2; j++)
                        ref[j] = fmaxf(ref[j], fabsf(b[((int64_t)j * nkv + h) * bs * hd + d]));
        }
        float init[2] = {0.25f, 0.f};
        void *dp = dev_copy(p_h, (size_t)nb * blk * esize(dt)), *ds = dev_copy(slot, sizeof slot);
        void *da = dev_copy(init, sizeof init);
        CUDA(llm_k_kv_amax(dt, (char *)dp + lofs * esize(dt), blk, bs, ds, n, nkv, hd, da, 0));
        CUDA(cudaMemcpy(got, da, sizeof got, cudaMemcpyDeviceToHost));
        check(name, got, ref, 2, 0);
        free(pool), free(p_h);
        cudaFree(dp), cudaFree(ds), cudaFree(da);
    }
}

int main(int argc, char **argv)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    struct cudaDeviceProp p;
    CUDA(cudaGetDeviceProperties(&p, 0));
    printf("device: %s (sm_%d%d, %d SMs)\n", p.name, p.major, p.minor, p.multiProcessorCount);
    filter = argc > 1 ? argv[1] : NULL;
    test_embed();
    test_norm();
    test_qk_norm_all();
    test_norm_q();
    test_act_q();
    test_rope();
    test_act();
    test_exact();
    test_linear();
    test_q4_tile_dev();
    test_gather_cols();
    test_qlinear();
    test_w8a8();
    test_w4a8();
    test_attn();
    test_moe();
    test_sample();
    test_calib();
    printf("%d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}
