/* cpu_gemm.c - llm_cpu_linear: y = x W^T for weights stored in f32, f16 or bf16.
 *
 * Design: W is walked once.  Each thread takes blocks of 16 rows of W and
 * runs every token of the batch over the block, 4 tokens x 4 rows per
 * register tile, so during prefill a weight row is read from memory once
 * per step (then from L1/L2), not once per token.  bf16 weights are widened
 * in registers as they are loaded (a shift); f16 weights too for a few
 * tokens, but for many tokens a block is widened once into a private fp32
 * buffer and reused.  Decode (one token) is a streaming matrix-vector
 * product, bounded by weight bandwidth.
 *
 * Exactness: each output y[t][o] accumulates x[t][k]*W[o][k] into 16
 * interleaved fp32 lanes (k mod 16) in increasing k, adds the lanes
 * pairwise and then the bias.  Tokens and rows only change which tile
 * computes a pair, never its arithmetic, so results are bitwise independent
 * of the batch size, of the tile shape and of the thread count.  The
 * multiply-adds are explicit FMA instructions on AVX2/AVX-512 (one
 * rounding) and a multiply then an add on the baseline; the compiler is not
 * allowed to contract on its own, since it may fuse differently in two
 * inlined copies of the same loop.  (So results can differ in the last bit
 * between machines with and without FMA, never within one.)
 *
 * The kernel is plain C with GCC vector types, compiled three times
 * (AVX-512F, AVX2+FMA, baseline x86-64) and chosen at run time; the
 * environment variable LLM_CPU_ISA=avx512|avx2|generic forces one (for
 * tests and comparisons).
 */
#pragma GCC diagnostic ignored "-Wpsabi" /* 64-byte vectors only cross always_inline calls */
/* No implicit multiply-add contraction: which product the compiler would
 * fuse can differ between two inlined copies of the same loop, and then so
 * would the rounding.  Fused multiply-adds are written out (vfma). */
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h> /* declares the FMA builtins used by the AVX2/AVX-512 variants */
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "cpu_cvt.h"
#include "cpu_ops.h"

#define RB 16               /* rows of W per block */
#define DIRECT_MAX_TOKENS 8 /* f16: below this many tokens, widen in registers */

typedef float v16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

#define INLINE static inline __attribute__((always_inline))

INLINE v16 vload(const float *p)
{
    v16 r;
    memcpy(&r, p, sizeof r);
    return r;
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

enum { ISA_GENERIC, ISA_AVX2, ISA_AVX512 };

/* a*b + c: rounded once with an FMA instruction set, else twice.  isa is a
 * constant after inlining into the variant compiled for that instruction
 * set, the only place the builtins are expanded. */
#if defined(__clang__) || !defined(__OPTIMIZE__)
/* clang checks target features before inlining, and gcc without
 * optimisation does not fold isa to a constant, so in those builds (fuzzing,
 * -O0 debugging) the builtins cannot sit in the shared inline helpers: they
 * take the plain form (rounded twice), not bit-identical to an FMA build. */
#define VFMA(a, b, c, isa) ((a) * (b) + (c))
#else
#define VFMA(a, b, c, isa)                                                                         \
    ((isa) == ISA_AVX512 ? __builtin_ia32_vfmaddps512_mask((a), (b), (c), 0xffff, 4)               \
     : (isa) == ISA_AVX2 ? fma2x8((a), (b), (c))                                                   \
                         : (a) * (b) + (c))
#endif

#define LO8(v) __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7)
#define HI8(v) __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15)
#define fma2x8(a, b, c)                                                                            \
    __builtin_shufflevector(__builtin_ia32_vfmaddps256(LO8(a), LO8(b), LO8(c)),                    \
                            __builtin_ia32_vfmaddps256(HI8(a), HI8(b), HI8(c)), 0, 1, 2, 3, 4, 5,  \
                            6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

/* Lanes added pairwise: l + (l+8), then + (l+4), (l+2), (l+1). */
INLINE float vsum(const v16 *ap)
{
    v16 a = *ap;
    v8 b = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 c = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
    float d0 = c[0] + c[2], d1 = c[1] + c[3];
    return d0 + d1;
}

/* 16 weights from element k of a row stored as wdt, widened exactly (the
 * bit manipulations of cpu_cvt.h on vectors). */
INLINE v16 wload(const void *row, int64_t k, const int wdt)
{
    if (wdt == LLM_DTYPE_F32) return vload((const float *)row + k);
    u16x16 h;
    memcpy(&h, (const uint16_t *)row + k, sizeof h);
    u32x16 hu = __builtin_convertvector(h, u32x16), b;
    v16 f;
    if (wdt == LLM_DTYPE_BF16) {
        b = hu << 16;
    } else {
        u32x16 em = hu & 0x7fffu;
        b = em << 13;
        memcpy(&f, &b, sizeof f);
        f *= 0x1p112f;
        memcpy(&b, &f, sizeof b);
        u32x16 special = (u32x16)(em >= 0x7c00u); /* Inf/NaN: all-ones exponent */
        b = (b & ~special) | (((em << 13) | 0x7f800000u) & special);
        b |= (hu & 0x8000u) << 16;
    }
    memcpy(&f, &b, sizeof f);
    return f;
}

/* The last in - k (< 16) weights of a row, zero-padded. */
INLINE v16 wload_tail(const void *row, int64_t k, int64_t in, const int wdt)
{
    float buf[16] = {0};
    for (int64_t j = k; j < in; j++) {
        if (wdt == LLM_DTYPE_F32)
            buf[j - k] = ((const float *)row)[j];
        else if (wdt == LLM_DTYPE_BF16)
            buf[j - k] = llm_cpu_bf16_f32(((const uint16_t *)row)[j]);
        else
            buf[j - k] = llm_cpu_f16_f32(((const uint16_t *)row)[j]);
    }
    return vload(buf);
}

/* y[i][r] = sum over k of xp[i][k] * wp[r][k], in 16 lanes; tx <= 4, tw <= 4,
 * wdt and isa are constants after inlining, so acc lives in registers. */
INLINE void tile(float y[4][4], const float *const *xp, const void *const *wp, int64_t in,
                 const int tx, const int tw, const int wdt, const int isa)
{
    v16 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < tx; i++)
#pragma GCC unroll 4
        for (int r = 0; r < tw; r++)
            acc[i][r] = (v16){0};
    int64_t k = 0;
    for (; k + 16 <= in; k += 16) {
        v16 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < tw; r++)
            wv[r] = wload(wp[r], k, wdt);
#pragma GCC unroll 4
        for (int i = 0; i < tx; i++) {
            v16 xv = vload(xp[i] + k);
#pragma GCC unroll 4
            for (int r = 0; r < tw; r++)
                acc[i][r] = VFMA(xv, wv[r], acc[i][r], isa);
        }
    }
    if (k < in) {
        v16 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < tw; r++)
            wv[r] = wload_tail(wp[r], k, in, wdt);
#pragma GCC unroll 4
        for (int i = 0; i < tx; i++) {
            v16 xv = wload_tail(xp[i], k, in, LLM_DTYPE_F32);
#pragma GCC unroll 4
            for (int r = 0; r < tw; r++)
                acc[i][r] = VFMA(xv, wv[r], acc[i][r], isa);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < tx; i++)
#pragma GCC unroll 4
        for (int r = 0; r < tw; r++)
            y[i][r] = vsum(&acc[i][r]);
}

/* f16/bf16 -> f32, 16 at a time with the same bit manipulations as
 * cpu_cvt.h (exact), so that the loop is vector code on every target. */
INLINE void widen(float *dst, const void *w, int wdt, int64_t off, int64_t n)
{
    const uint16_t *s = (const uint16_t *)w + off;
    int64_t i = 0;
    if (wdt == LLM_DTYPE_BF16) {
        for (; i + 16 <= n; i += 16) {
            u16x16 h;
            memcpy(&h, s + i, sizeof h);
            u32x16 u = __builtin_convertvector(h, u32x16) << 16;
            memcpy(dst + i, &u, sizeof u);
        }
        for (; i < n; i++)
            dst[i] = llm_cpu_bf16_f32(s[i]);
    } else {
        for (; i + 16 <= n; i += 16) {
            u16x16 h;
            memcpy(&h, s + i, sizeof h);
            u32x16 hu = __builtin_convertvector(h, u32x16);
            u32x16 em = hu & 0x7fffu, b = em << 13;
            v16 f;
            memcpy(&f, &b, sizeof f);
            f *= 0x1p112f;
            memcpy(&b, &f, sizeof b);
            u32x16 special = (u32x16)(em >= 0x7c00u); /* Inf/NaN: all-ones exponent */
            b = (b & ~special) | (((em << 13) | 0x7f800000u) & special);
            b |= (hu & 0x8000u) << 16;
            memcpy(dst + i, &b, sizeof b);
        }
        for (; i < n; i++)
            dst[i] = llm_cpu_f16_f32(s[i]);
    }
}

/* One block of nr <= RB rows of W (row r at wrows + r*in elements of
 * dtype wdt) against all n tokens. */
INLINE void block_t(float *y, const float *x, int n, int64_t in, const void *wrows, int64_t r0,
                    int nr, int64_t out, const float *bias, const int TW, const int wdt,
                    const int isa)
{
    size_t es = wdt == LLM_DTYPE_F32 ? 4 : 2;
    for (int t0 = 0; t0 < n;) {
        int tx = n - t0 >= 4 ? 4 : 1;
        const float *xp[4];
        for (int i = 0; i < tx; i++)
            xp[i] = x + (int64_t)(t0 + i) * in;
        for (int rr = 0; rr < nr; rr += TW) {
            const void *wp[4];
            int tw = nr - rr < TW ? nr - rr : TW;
            for (int r = 0; r < TW; r++)
                wp[r] =
                    (const char *)wrows + (size_t)(rr + (r < tw ? r : tw - 1)) * (size_t)in * es;
            float acc[4][4];
            if (tx == 4)
                tile(acc, xp, wp, in, 4, TW, wdt, isa);
            else
                tile(acc, xp, wp, in, 1, TW, wdt, isa);
            for (int i = 0; i < tx; i++)
                for (int r = 0; r < tw; r++) {
                    int64_t o = r0 + rr + r;
                    y[(int64_t)(t0 + i) * out + o] = bias ? acc[i][r] + bias[o] : acc[i][r];
                }
        }
        t0 += tx;
    }
}

/* bf16 (a shift) and f16 for few tokens: widen in registers as the weights
 * stream by.  f16 for many tokens: widen the block once into wb (L2) and
 * reuse it for every token, as its conversion costs several instructions. */
INLINE void block(float *y, const float *x, int n, int64_t in, const void *w, int wdt, float *wb,
                  int64_t r0, int nr, int64_t out, const float *bias, const int TW, const int isa)
{
    size_t es = wdt == LLM_DTYPE_F32 ? 4 : 2;
    const void *rows = (const char *)w + (size_t)r0 * (size_t)in * es;
    if (wdt == LLM_DTYPE_F32) {
        block_t(y, x, n, in, rows, r0, nr, out, bias, TW, LLM_DTYPE_F32, isa);
    } else if (wdt == LLM_DTYPE_BF16 || n < DIRECT_MAX_TOKENS) {
        if (wdt == LLM_DTYPE_BF16)
            block_t(y, x, n, in, rows, r0, nr, out, bias, TW, LLM_DTYPE_BF16, isa);
        else
            block_t(y, x, n, in, rows, r0, nr, out, bias, TW, LLM_DTYPE_F16, isa);
    } else {
        widen(wb, w, wdt, r0 * in, (int64_t)nr * in);
        block_t(y, x, n, in, wb, r0, nr, out, bias, TW, LLM_DTYPE_F32, isa);
    }
}

/* The threaded driver, one copy per instruction set: the OpenMP region must
 * sit inside the target-specific function, or its outlined body would be
 * compiled for the baseline. */
#define LINEAR_VARIANT(NAME, TARGET, TW, ISA)                                                      \
    TARGET static int NAME(float *y, const float *x, int n, int64_t in, const void *w, int wdt,    \
                           int64_t out, const float *bias)                                         \
    {                                                                                              \
        int64_t nblk = (out + RB - 1) / RB;                                                        \
        int fail = 0;                                                                              \
        _Pragma("omp parallel if (nblk > 1 && (int64_t)n * in * out >= (1 << 16))")                \
        {                                                                                          \
            int widening = wdt == LLM_DTYPE_F16 && n >= DIRECT_MAX_TOKENS;                         \
            float *wb = widening ? malloc(sizeof(float) * RB * (size_t)in) : NULL;                 \
            if (widening && !wb) {                                                                 \
                _Pragma("omp atomic write") fail = 1;                                              \
            }                                                                                      \
            _Pragma("omp for schedule(static)") for (int64_t b = 0; b < nblk; b++)                 \
            {                                                                                      \
                int64_t r0 = b * RB;                                                               \
                int nr = out - r0 < RB ? (int)(out - r0) : RB;                                     \
                if (!wb && wdt == LLM_DTYPE_F16 && n >= DIRECT_MAX_TOKENS) continue;               \
                block(y, x, n, in, w, wdt, wb, r0, nr, out, bias, TW, ISA);                        \
            }                                                                                      \
            free(wb);                                                                              \
        }                                                                                          \
        return fail;                                                                               \
    }

LINEAR_VARIANT(linear_avx512, __attribute__((target("avx512f"))), 4, ISA_AVX512)
LINEAR_VARIANT(linear_avx2, __attribute__((target("avx2,fma,f16c"))), 2, ISA_AVX2)
LINEAR_VARIANT(linear_generic, , 2, ISA_GENERIC)

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

int llm_cpu_linear(float *y, const float *x, int n, int64_t in, const void *w, int wdt, int64_t out,
                   const void *bias, int bdt)
{
    if (n <= 0 || out <= 0) return 0;
    float *bf = NULL;
    if (bias) {
        bf = malloc(sizeof(float) * (size_t)out);
        if (!bf)
            return llm_err_set(LLM_ENOMEM, "linear: out of memory for %lld bias values",
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
