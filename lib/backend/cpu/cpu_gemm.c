/* cpu_gemm.c - llm_cpu_linear: y = x W^T for weights stored in f32, f16 or bf16.
 *
 * Design: W is walked once.  Each thread takes blocks of 16 rows of W,
 * widens them to fp32 in a private buffer (f32 weights are used in place)
 * and runs every token of the batch over the block, 4 tokens x 4 rows per
 * register tile, so during prefill a weight row is read from memory once
 * per step, not once per token.  Decode (one token) is a streaming
 * matrix-vector product, bounded by weight bandwidth.
 *
 * Exactness: each output y[t][o] accumulates x[t][k]*W[o][k] into 16
 * interleaved fp32 lanes (k mod 16) in increasing k, adds the lanes
 * pairwise and then the bias.  Tokens and rows only change which tile
 * computes a pair, never its arithmetic, so results are bitwise independent
 * of the batch size, of the tile shape and of the thread count (on one
 * machine: an FMA-capable instruction set rounds the multiply-add once).
 *
 * The kernel is plain C with GCC vector types, compiled three times
 * (AVX-512F, AVX2+FMA, baseline x86-64) and chosen at run time; the
 * environment variable LLM_CPU_ISA=avx512|avx2|generic forces one (for
 * tests and comparisons).
 */
#pragma GCC diagnostic ignored "-Wpsabi" /* 64-byte vectors only cross always_inline calls */

#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "cpu_cvt.h"
#include "cpu_ops.h"

#define RB 16 /* rows of W per block */

typedef float v16 __attribute__((vector_size(64)));

#define INLINE static inline __attribute__((always_inline))

INLINE v16 vload(const float *p)
{
    v16 r;
    memcpy(&r, p, sizeof r);
    return r;
}

INLINE float vsum(v16 a)
{
    float t[16];
    memcpy(t, &a, sizeof t);
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}

/* acc[i][r] = sum over k of xp[i][k] * wp[r][k], in 16 lanes; tx <= 4, tw <= 4
 * are constants after inlining, so acc lives in registers. */
INLINE void tile(float y[4][4], const float *const *xp, const float *const *wp, int64_t in,
                 const int tx, const int tw)
{
    v16 acc[4][4];
    for (int i = 0; i < tx; i++)
        for (int r = 0; r < tw; r++) acc[i][r] = (v16){0};
    int64_t k = 0;
    for (; k + 16 <= in; k += 16) {
        v16 wv[4];
        for (int r = 0; r < tw; r++) wv[r] = vload(wp[r] + k);
        for (int i = 0; i < tx; i++) {
            v16 xv = vload(xp[i] + k);
            for (int r = 0; r < tw; r++) acc[i][r] += xv * wv[r];
        }
    }
    if (k < in) {
        size_t rem = (size_t)(in - k) * sizeof(float);
        float buf[16];
        v16 wv[4];
        for (int r = 0; r < tw; r++) {
            memset(buf, 0, sizeof buf);
            memcpy(buf, wp[r] + k, rem);
            wv[r] = vload(buf);
        }
        for (int i = 0; i < tx; i++) {
            memset(buf, 0, sizeof buf);
            memcpy(buf, xp[i] + k, rem);
            v16 xv = vload(buf);
            for (int r = 0; r < tw; r++) acc[i][r] += xv * wv[r];
        }
    }
    for (int i = 0; i < tx; i++)
        for (int r = 0; r < tw; r++) y[i][r] = vsum(acc[i][r]);
}

INLINE void widen(float *dst, const void *w, int wdt, int64_t off, int64_t n)
{
    if (wdt == LLM_DTYPE_BF16) {
        const uint16_t *s = (const uint16_t *)w + off;
        for (int64_t i = 0; i < n; i++) dst[i] = llm_cpu_bf16_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)w + off;
        for (int64_t i = 0; i < n; i++) dst[i] = llm_cpu_f16_f32(s[i]);
    }
}

/* One block of up to RB rows of W against all n tokens. */
INLINE void block(float *y, const float *x, int n, int64_t in, const float *wrows, int64_t r0,
                  int nr, int64_t out, const float *bias, const int TW)
{
    for (int t0 = 0; t0 < n;) {
        int tx = n - t0 >= 4 ? 4 : 1;
        const float *xp[4];
        for (int i = 0; i < tx; i++) xp[i] = x + (int64_t)(t0 + i) * in;
        for (int rr = 0; rr < nr; rr += TW) {
            const float *wp[4];
            int tw = nr - rr < TW ? nr - rr : TW;
            for (int r = 0; r < TW; r++) wp[r] = wrows + (int64_t)(rr + (r < tw ? r : tw - 1)) * in;
            float acc[4][4];
            if (tx == 4)
                tile(acc, xp, wp, in, 4, TW);
            else
                tile(acc, xp, wp, in, 1, TW);
            for (int i = 0; i < tx; i++)
                for (int r = 0; r < tw; r++) {
                    int64_t o = r0 + rr + r;
                    y[(int64_t)(t0 + i) * out + o] = bias ? acc[i][r] + bias[o] : acc[i][r];
                }
        }
        t0 += tx;
    }
}

INLINE int linear_impl(float *y, const float *x, int n, int64_t in, const void *w, int wdt,
                       int64_t out, const float *bias, const int TW)
{
    int64_t nblk = (out + RB - 1) / RB;
    int fail = 0;
#pragma omp parallel if (nblk > 1 && (int64_t)n * in * out >= (1 << 16))
    {
        float *wb = wdt == LLM_DTYPE_F32 ? NULL : malloc(sizeof(float) * RB * (size_t)in);
        if (wdt != LLM_DTYPE_F32 && !wb) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; b++) {
            int64_t r0 = b * RB;
            int nr = out - r0 < RB ? (int)(out - r0) : RB;
            const float *wrows;
            if (wdt == LLM_DTYPE_F32) {
                wrows = (const float *)w + r0 * in;
            } else {
                if (!wb) continue;
                widen(wb, w, wdt, r0 * in, (int64_t)nr * in);
                wrows = wb;
            }
            block(y, x, n, in, wrows, r0, nr, out, bias, TW);
        }
        free(wb);
    }
    return fail;
}

__attribute__((target("avx512f"))) static int linear_avx512(float *y, const float *x, int n,
                                                             int64_t in, const void *w, int wdt,
                                                             int64_t out, const float *bias)
{
    return linear_impl(y, x, n, in, w, wdt, out, bias, 4);
}

__attribute__((target("avx2,fma,f16c"))) static int linear_avx2(float *y, const float *x, int n,
                                                                 int64_t in, const void *w, int wdt,
                                                                 int64_t out, const float *bias)
{
    return linear_impl(y, x, n, in, w, wdt, out, bias, 2);
}

static int linear_generic(float *y, const float *x, int n, int64_t in, const void *w, int wdt,
                          int64_t out, const float *bias)
{
    return linear_impl(y, x, n, in, w, wdt, out, bias, 2);
}

typedef int (*linear_fn)(float *, const float *, int, int64_t, const void *, int, int64_t,
                         const float *);

static linear_fn pick(void)
{
    static linear_fn fn;
    linear_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (f) return f;
    const char *force = getenv("LLM_CPU_ISA");
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (force && !strcmp(force, "generic"))
        f = linear_generic;
    else if (force && !strcmp(force, "avx2") && has2)
        f = linear_avx2;
    else if (has512 && !(force && !strcmp(force, "avx2")))
        f = linear_avx512;
    else if (has2)
        f = linear_avx2;
    else
        f = linear_generic;
    __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    return f;
}

const char *llm_cpu_isa(void)
{
    linear_fn f = pick();
    return f == linear_avx512 ? "avx512" : f == linear_avx2 ? "avx2" : "generic";
}

int llm_cpu_linear(float *y, const float *x, int n, int64_t in, const void *w, int wdt,
                   int64_t out, const void *bias, int bdt)
{
    if (n <= 0 || out <= 0) return 0;
    float *bf = NULL;
    if (bias) {
        bf = malloc(sizeof(float) * (size_t)out);
        if (!bf) return llm_err_set(LLM_ENOMEM, "linear: out of memory for %lld bias values",
                                    (long long)out);
        llm_cpu_to_f32(bf, bias, bdt, 0, out);
    }
    int fail = pick()(y, x, n, in, w, wdt, out, bf);
    free(bf);
    if (fail)
        return llm_err_set(LLM_ENOMEM, "linear: out of memory for a %d x %lld weight block", RB,
                           (long long)in);
    return 0;
}
