/* dtype.c - element types: names, sizes and float conversions.
 *
 * Conversions work on the bit patterns with integer arithmetic and selects,
 * never data-dependent branches, so the bulk loops vectorize with plain C:
 *  - narrowing a normal value adds (half an output ulp - 1 + the kept lowest
 *    bit) to the f32 pattern and shifts: round to nearest, ties to even, and
 *    a carry out of the mantissa correctly bumps the exponent;
 *  - narrowing into the target's subnormal range lets the FPU round: adding a
 *    power of two whose f32 ulp equals the target's subnormal step leaves the
 *    rounded result in the low mantissa bits;
 *  - widening subnormals converts the mantissa as an integer and scales it.
 * F64 sources are first narrowed to f32 with round-to-odd; f32 keeps more
 * than two extra bits over every smaller format, so the second rounding is
 * then exact (no double rounding).  NaNs come out quiet, with sign and as many
 * payload bits as fit.  Loads and stores go through memcpy, so buffers need
 * no alignment (tensors inside a safetensors mapping often have none).
 * Bulk loops run in fixed blocks of 16 so that GCC's -O2 vectorizer, which
 * refuses loops needing a scalar epilogue, still vectorizes the block.
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "llm/dtype.h"
#include "llm/err.h"

/* ---- names and sizes ------------------------------------------------------ */

struct dtype_info {
    const char *name;
    const char *st_name;
    int bits;
    int is_float;
};

static const struct dtype_info dtypes[] = {
    [LLM_DTYPE_F32] = {"f32", "F32", 32, 1},
    [LLM_DTYPE_F16] = {"f16", "F16", 16, 1},
    [LLM_DTYPE_BF16] = {"bf16", "BF16", 16, 1},
    [LLM_DTYPE_F8E4M3] = {"f8e4m3", "F8_E4M3", 8, 1},
    [LLM_DTYPE_F8E5M2] = {"f8e5m2", "F8_E5M2", 8, 1},
    [LLM_DTYPE_I8] = {"i8", "I8", 8, 0},
    [LLM_DTYPE_U8] = {"u8", "U8", 8, 0},
    [LLM_DTYPE_I4] = {"i4", NULL, 4, 0},
    [LLM_DTYPE_I32] = {"i32", "I32", 32, 0},
    [LLM_DTYPE_F64] = {"f64", "F64", 64, 1},
    [LLM_DTYPE_I64] = {"i64", "I64", 64, 0},
    [LLM_DTYPE_I16] = {"i16", "I16", 16, 0},
    [LLM_DTYPE_U16] = {"u16", "U16", 16, 0},
    [LLM_DTYPE_U32] = {"u32", "U32", 32, 0},
    [LLM_DTYPE_U64] = {"u64", "U64", 64, 0},
    [LLM_DTYPE_BOOL] = {"bool", "BOOL", 8, 0},
};
_Static_assert(sizeof(dtypes) / sizeof(dtypes[0]) == LLM_DTYPE_COUNT,
               "dtypes[] must have one entry per enum llm_dtype");

static int valid(int dt)
{
    return dt >= 0 && dt < LLM_DTYPE_COUNT;
}

const char *llm_dtype_name(int dt)
{
    return valid(dt) ? dtypes[dt].name : "?";
}

int llm_dtype_from_name(const char *name)
{
    if (!name) return llm_err_set(LLM_EINVAL, "missing dtype name");
    for (int i = 0; i < LLM_DTYPE_COUNT; i++)
        if (!strcasecmp(name, dtypes[i].name)) return i;
    return llm_err_set(LLM_EINVAL, "unknown dtype '%s'", name);
}

const char *llm_dtype_st_name(int dt)
{
    return valid(dt) ? dtypes[dt].st_name : NULL;
}

int llm_dtype_from_st_name(const char *name)
{
    if (!name) return llm_err_set(LLM_EINVAL, "missing safetensors dtype");
    for (int i = 0; i < LLM_DTYPE_COUNT; i++)
        if (dtypes[i].st_name && !strcmp(name, dtypes[i].st_name)) return i;
    return llm_err_set(LLM_EINVAL, "unknown safetensors dtype '%s'", name);
}

int llm_dtype_bits(int dt)
{
    if (!valid(dt)) return llm_err_set(LLM_EINVAL, "invalid dtype %d", dt);
    return dtypes[dt].bits;
}

int llm_dtype_is_float(int dt)
{
    return valid(dt) && dtypes[dt].is_float;
}

int llm_dtype_nbytes(int dt, uint64_t numel, uint64_t *nbytes)
{
    *nbytes = 0;
    if (!valid(dt)) return llm_err_set(LLM_EINVAL, "invalid dtype %d", dt);
    if (dt == LLM_DTYPE_I4) {
        *nbytes = numel / 2 + (numel & 1);
        return 0;
    }
    uint64_t size = (uint64_t)dtypes[dt].bits / 8;
    if (numel > UINT64_MAX / size)
        return llm_err_set(LLM_ERANGE, "%llu elements of %s overflow a 64-bit byte count",
                           (unsigned long long)numel, dtypes[dt].name);
    *nbytes = numel * size;
    return 0;
}

int llm_shape_numel(int ndim, const int64_t *shape, uint64_t *numel)
{
    *numel = 0;
    if (ndim < 0 || ndim > LLM_MAX_DIMS)
        return llm_err_set(LLM_EINVAL, "%d dimensions (at most %d)", ndim, LLM_MAX_DIMS);
    if (ndim > 0 && !shape) return llm_err_set(LLM_EINVAL, "missing shape");
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return llm_err_set(LLM_ERANGE, "dimension %d is negative (%lld)", i,
                               (long long)shape[i]);
        if (shape[i] == 0) zero = 1;
    }
    if (zero) return 0; /* an empty tensor, whatever the other dims are */
    uint64_t p = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (p > UINT64_MAX / d)
            return llm_err_set(LLM_ERANGE, "shape overflows 64 bits at dimension %d", i);
        p *= d;
    }
    *numel = p;
    return 0;
}

/* ---- scalar conversions --------------------------------------------------- */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define QUIET32 0x00400000u
#define INF32 0x7f800000u

/* c ? a : b without a branch.  A plain ?: would let the compiler move the
 * float arithmetic of the untaken side into a branch, and since float ops may
 * trap it then refuses to vectorize the loop. */
static inline uint32_t pick(int c, uint32_t a, uint32_t b)
{
    uint32_t m = 0u - (uint32_t)(c != 0);
    return (a & m) | (b & ~m);
}

static inline float f16_dec(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t em = h & 0x7fff;
    uint32_t norm = (em << 13) + (112u << 23); /* exponent bias 15 -> 127 */
    uint32_t sub = f2u((float)(int32_t)em * 0x1p-24f);
    uint32_t spec = (em << 13) | INF32 | (em > 0x7c00 ? QUIET32 : 0);
    uint32_t r = pick(em < 0x400, sub, em < 0x7c00 ? norm : spec);
    return u2f(r | sign);
}

static inline uint16_t f16_enc(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    uint32_t norm = (x - (112u << 23) + 0xfff + ((x >> 13) & 1)) >> 13;
    norm = norm < 0x7c00 ? norm : 0x7c00;            /* overflow and Inf -> Inf */
    uint32_t sub = f2u(u2f(x) + 0.5f) - 0x3f000000u; /* 0.5 has ulp 2^-24 */
    uint32_t nan = ((x >> 13) & 0x7fff) | 0x200;
    uint32_t r = pick(x < (113u << 23), sub, x <= INF32 ? norm : nan);
    return (uint16_t)(r | sign);
}

static inline float bf16_dec(uint16_t b)
{
    uint32_t r = (uint32_t)b << 16;
    return u2f((b & 0x7fff) > 0x7f80 ? r | QUIET32 : r);
}

static inline uint16_t bf16_enc(float f)
{
    uint32_t x = f2u(f);
    uint32_t r = (x + 0x7fff + ((x >> 16) & 1)) >> 16;
    uint32_t nan = (x >> 16) | 0x40;
    return (uint16_t)((x & 0x7fffffff) > INF32 ? nan : r);
}

static inline float e4m3_dec(uint8_t v)
{
    uint32_t sign = (uint32_t)(v & 0x80) << 24;
    uint32_t em = v & 0x7f;
    uint32_t norm = (em << 20) + (120u << 23); /* exponent bias 7 -> 127 */
    uint32_t sub = f2u((float)(int32_t)em * 0x1p-9f);
    uint32_t r = pick(em < 8, sub, em < 0x7f ? norm : INF32 | QUIET32);
    return u2f(r | sign);
}

static inline uint8_t e4m3_enc(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 24) & 0x80;
    x &= 0x7fffffff;
    uint32_t norm = (x - (120u << 23) + 0x7ffff + ((x >> 20) & 1)) >> 20;
    norm = norm < 0x7e ? norm : 0x7e;                    /* saturate, Inf included */
    uint32_t sub = f2u(u2f(x) + 0x1p14f) - f2u(0x1p14f); /* 2^14 has ulp 2^-9 */
    uint32_t r = pick(x < (121u << 23), sub, x <= INF32 ? norm : 0x7f);
    return (uint8_t)(r | sign);
}

static inline float e5m2_dec(uint8_t v)
{
    return f16_dec((uint16_t)(v << 8)); /* e5m2 is the top byte of an f16 */
}

static inline uint8_t e5m2_enc(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 24) & 0x80;
    x &= 0x7fffffff;
    uint32_t norm = (x - (112u << 23) + 0xfffff + ((x >> 21) & 1)) >> 21;
    norm = norm < 0x7b ? norm : 0x7b;                  /* saturate finite values */
    uint32_t sub = f2u(u2f(x) + 128.0f) - f2u(128.0f); /* 128 has ulp 2^-16 */
    uint32_t nan = ((x >> 21) & 0x7f) | 0x02;
    uint32_t r = pick(x < (113u << 23), sub, x < INF32 ? norm : x == INF32 ? 0x7c : nan);
    return (uint8_t)(r | sign);
}

/* f64 -> f32 rounding to odd: truncate, then set the lowest bit if inexact. */
static inline float f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (f == d || d != d) return f;
    uint32_t u = f2u(f);
    if (fabs((double)f) > fabs(d)) u -= 1; /* rounded away from zero: step back */
    return u2f(u | 1);
}

float llm_f16_to_f32(uint16_t h)
{
    return f16_dec(h);
}

uint16_t llm_f32_to_f16(float f)
{
    return f16_enc(f);
}

float llm_bf16_to_f32(uint16_t b)
{
    return bf16_dec(b);
}

uint16_t llm_f32_to_bf16(float f)
{
    return bf16_enc(f);
}

float llm_e4m3_to_f32(uint8_t v)
{
    return e4m3_dec(v);
}

uint8_t llm_f32_to_e4m3(float f)
{
    return e4m3_enc(f);
}

float llm_e5m2_to_f32(uint8_t v)
{
    return e5m2_dec(v);
}

uint8_t llm_f32_to_e5m2(float f)
{
    return e5m2_enc(f);
}

/* ---- bulk conversions ----------------------------------------------------- */

typedef unsigned char u8;

#define LOADER(name, T)                                                                            \
    static inline T name(const u8 *p, size_t i)                                                    \
    {                                                                                              \
        T v;                                                                                       \
        memcpy(&v, p + i * sizeof(T), sizeof(T));                                                  \
        return v;                                                                                  \
    }
#define STORER(name, T)                                                                            \
    static inline void name(u8 *p, size_t i, T v)                                                  \
    {                                                                                              \
        memcpy(p + i * sizeof(T), &v, sizeof(T));                                                  \
    }
LOADER(ld_u8, uint8_t)
LOADER(ld_i8, int8_t)
LOADER(ld_u16, uint16_t)
LOADER(ld_i16, int16_t)
LOADER(ld_u32, uint32_t)
LOADER(ld_i32, int32_t)
LOADER(ld_u64, uint64_t)
LOADER(ld_i64, int64_t)
LOADER(ld_f32, float)
LOADER(ld_f64, double)
STORER(st_u8, uint8_t)
STORER(st_u16, uint16_t)
STORER(st_f32, float)
STORER(st_f64, double)

#define BLOCK 16

typedef void (*bulk_fn)(u8 *restrict dst, const u8 *restrict src, size_t n);

/* One bulk loop: dst[i] = OP(LOAD(src, i)), a fixed-size block at a time. */
#define BULK(name, LOAD, OP, STORE)                                                                \
    static void name(u8 *restrict dst, const u8 *restrict src, size_t n)                           \
    {                                                                                              \
        size_t i = 0;                                                                              \
        for (; i + BLOCK <= n; i += BLOCK)                                                         \
            for (size_t j = i; j < i + BLOCK; j++)                                                 \
                STORE(dst, j, OP(LOAD(src, j)));                                                   \
        for (; i < n; i++)                                                                         \
            STORE(dst, i, OP(LOAD(src, i)));                                                       \
    }

#define TO_F32(x) ((float)(x))
#define F64_TO_F32(x) ((float)(x))
#define F32_TO_F64(x) ((double)(x))
#define BOOL_TO_F32(x) ((x) ? 1.0f : 0.0f)

BULK(f16_to_f32, ld_u16, f16_dec, st_f32)
BULK(bf16_to_f32, ld_u16, bf16_dec, st_f32)
BULK(e4m3_to_f32, ld_u8, e4m3_dec, st_f32)
BULK(e5m2_to_f32, ld_u8, e5m2_dec, st_f32)
BULK(f64_to_f32, ld_f64, F64_TO_F32, st_f32)
BULK(i8_to_f32, ld_i8, TO_F32, st_f32)
BULK(u8_to_f32, ld_u8, TO_F32, st_f32)
BULK(i16_to_f32, ld_i16, TO_F32, st_f32)
BULK(u16_to_f32, ld_u16, TO_F32, st_f32)
BULK(i32_to_f32, ld_i32, TO_F32, st_f32)
BULK(u32_to_f32, ld_u32, TO_F32, st_f32)
BULK(i64_to_f32, ld_i64, TO_F32, st_f32)
BULK(u64_to_f32, ld_u64, TO_F32, st_f32)
BULK(bool_to_f32, ld_u8, BOOL_TO_F32, st_f32)

BULK(f32_to_f16, ld_f32, f16_enc, st_u16)
BULK(f32_to_bf16, ld_f32, bf16_enc, st_u16)
BULK(f32_to_e4m3, ld_f32, e4m3_enc, st_u8)
BULK(f32_to_e5m2, ld_f32, e5m2_enc, st_u8)
BULK(f32_to_f64, ld_f32, F32_TO_F64, st_f64)
BULK(f64_to_f32_odd_bulk, ld_f64, f64_to_f32_odd, st_f32)

/* Signed 4-bit pairs: element 2k is the low nibble of byte k. */
static void i4_to_f32(u8 *restrict dst, const u8 *restrict src, size_t n)
{
    for (size_t k = 0; k < n / 2; k++) {
        uint8_t b = src[k];
        st_f32(dst, 2 * k, (float)((int)(b & 0x0f) - ((b & 0x08) << 1)));
        st_f32(dst, 2 * k + 1, (float)((int)(b >> 4) - ((b & 0x80) >> 3)));
    }
    if (n & 1) {
        uint8_t b = src[n / 2];
        st_f32(dst, n - 1, (float)((int)(b & 0x0f) - ((b & 0x08) << 1)));
    }
}

static const bulk_fn to_f32[LLM_DTYPE_COUNT] = {
    [LLM_DTYPE_F16] = f16_to_f32,     [LLM_DTYPE_BF16] = bf16_to_f32,
    [LLM_DTYPE_F8E4M3] = e4m3_to_f32, [LLM_DTYPE_F8E5M2] = e5m2_to_f32,
    [LLM_DTYPE_F64] = f64_to_f32,     [LLM_DTYPE_I8] = i8_to_f32,
    [LLM_DTYPE_U8] = u8_to_f32,       [LLM_DTYPE_I4] = i4_to_f32,
    [LLM_DTYPE_I16] = i16_to_f32,     [LLM_DTYPE_U16] = u16_to_f32,
    [LLM_DTYPE_I32] = i32_to_f32,     [LLM_DTYPE_U32] = u32_to_f32,
    [LLM_DTYPE_I64] = i64_to_f32,     [LLM_DTYPE_U64] = u64_to_f32,
    [LLM_DTYPE_BOOL] = bool_to_f32,
};

static const bulk_fn from_f32[LLM_DTYPE_COUNT] = {
    [LLM_DTYPE_F16] = f32_to_f16,     [LLM_DTYPE_BF16] = f32_to_bf16,
    [LLM_DTYPE_F8E4M3] = f32_to_e4m3, [LLM_DTYPE_F8E5M2] = f32_to_e5m2,
    [LLM_DTYPE_F64] = f32_to_f64,
};

/* Float to float through an f32 staging buffer (exact for every source but
 * F64, which goes through round-to-odd so the final rounding stays single). */
static void convert_staged(u8 *dst, int dst_dt, const u8 *src, int src_dt, size_t n)
{
    float buf[1024];
    size_t ssize = (size_t)dtypes[src_dt].bits / 8, dsize = (size_t)dtypes[dst_dt].bits / 8;
    for (size_t off = 0; off < n; off += 1024) {
        size_t k = n - off < 1024 ? n - off : 1024;
        if (src_dt == LLM_DTYPE_F64)
            f64_to_f32_odd_bulk((u8 *)buf, src + off * ssize, k);
        else
            to_f32[src_dt]((u8 *)buf, src + off * ssize, k);
        from_f32[dst_dt](dst + off * dsize, (const u8 *)buf, k);
    }
}

int llm_convert(void *dst, int dst_dt, const void *src, int src_dt, size_t n)
{
    if (!valid(dst_dt) || !valid(src_dt))
        return llm_err_set(LLM_EINVAL, "invalid dtype in conversion (%d to %d)", src_dt, dst_dt);
    if (n == 0) return 0;
    if (!dst || !src) return llm_err_set(LLM_EINVAL, "conversion of %zu elements from NULL", n);
    if (src_dt == dst_dt) {
        uint64_t nb;
        int rc = llm_dtype_nbytes(src_dt, n, &nb);
        if (rc < 0) return rc;
        memcpy(dst, src, (size_t)nb);
        return 0;
    }
    if (dst_dt == LLM_DTYPE_F32 && to_f32[src_dt]) {
        to_f32[src_dt](dst, src, n);
        return 0;
    }
    if (!dtypes[src_dt].is_float || !dtypes[dst_dt].is_float)
        return llm_err_set(LLM_EUNSUPPORTED, "conversion from %s to %s is not supported",
                           dtypes[src_dt].name, dtypes[dst_dt].name);
    if (src_dt == LLM_DTYPE_F32)
        from_f32[dst_dt](dst, src, n);
    else
        convert_staged(dst, dst_dt, src, src_dt, n);
    return 0;
}

int llm_to_f32(float *dst, const void *src, int src_dt, size_t n)
{
    return llm_convert(dst, LLM_DTYPE_F32, src, src_dt, n);
}
