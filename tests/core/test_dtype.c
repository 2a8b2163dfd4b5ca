/* test_dtype.c - dtype names, sizes and every float conversion against an
 * independent reference.
 *
 * The reference knows a format only by its field widths and bias: a code is
 * decoded with ldexp as sign * 2^(e-bias) * (1 + m/2^M) (or the subnormal and
 * special cases), and a real number x is rounded by binary-searching the
 * largest code not above |x| and comparing 2|x| with the sum of the two
 * neighbours (exact in double, so ties are found exactly).  Nothing in it
 * calls the library.  Checked: every 16-bit and 8-bit code decoded; every
 * representable value, every midpoint between neighbours and the floats just
 * either side of it encoded; overflow, underflow, saturation and NaN; a
 * strided sweep over all f32 bit patterns; llm_convert on every pair; the
 * bulk loops at every tail length and unaligned addresses.  The first
 * mismatch is printed and the test exits 1.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of memory (%zu bytes)", n);
    return p;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- the reference ------------------------------------------------------ */

struct fmt {
    const char *name;
    int dt;
    int ebits, mbits, bias;
    int fn;  /* "finite" variant (e4m3fn): no Inf, only S.1111.111 is NaN */
    int sat; /* finite overflow saturates to the largest finite value */
};

static const struct fmt FMT_F32 = {"f32", LLM_DTYPE_F32, 8, 23, 127, 0, 0};
static const struct fmt FMT_F16 = {"f16", LLM_DTYPE_F16, 5, 10, 15, 0, 0};
static const struct fmt FMT_BF16 = {"bf16", LLM_DTYPE_BF16, 8, 7, 127, 0, 0};
static const struct fmt FMT_E4M3 = {"f8e4m3", LLM_DTYPE_F8E4M3, 4, 3, 7, 1, 1};
static const struct fmt FMT_E5M2 = {"f8e5m2", LLM_DTYPE_F8E5M2, 5, 2, 15, 0, 1};

static int nbits(const struct fmt *f)
{
    return 1 + f->ebits + f->mbits;
}
static uint32_t sign_bit(const struct fmt *f)
{
    return 1u << (nbits(f) - 1);
}
static uint32_t mmask(const struct fmt *f)
{
    return (1u << f->mbits) - 1;
}
static uint32_t emax_field(const struct fmt *f)
{
    return (1u << f->ebits) - 1;
}
static uint32_t inf_code(const struct fmt *f)
{
    return emax_field(f) << f->mbits;
}
static uint32_t max_code(const struct fmt *f)
{
    return f->fn ? (inf_code(f) | mmask(f)) - 1 : inf_code(f) - 1;
}
static uint32_t quiet_bit(const struct fmt *f)
{
    return 1u << (f->mbits - 1);
}

static int ref_is_nan(const struct fmt *f, uint32_t c)
{
    uint32_t a = c & ~sign_bit(f);
    if (f->fn) return a == (inf_code(f) | mmask(f));
    return (a >> f->mbits) == emax_field(f) && (a & mmask(f));
}

static double ref_decode(const struct fmt *f, uint32_t c)
{
    double s = (c & sign_bit(f)) ? -1.0 : 1.0;
    uint32_t a = c & ~sign_bit(f);
    int e = (int)(a >> f->mbits);
    uint32_t m = a & mmask(f);
    if (!f->fn && (uint32_t)e == emax_field(f)) return s * INFINITY;
    if (e == 0) return s * ldexp((double)m, 1 - f->bias - f->mbits);
    return s * ldexp((double)(m + (1u << f->mbits)), e - f->bias - f->mbits);
}

/* The value one step above the largest finite code, as if the exponent were
 * unbounded: IEEE rounds to Inf at or beyond the midpoint to it. */
static double ref_above_max(const struct fmt *f)
{
    uint32_t c = max_code(f);
    int e = (int)(c >> f->mbits);
    uint32_t m = c & mmask(f);
    return ldexp((double)(m + 1 + (1u << f->mbits)), e - f->bias - f->mbits);
}

/* Round a non-NaN real to the format: nearest, ties to even, then overflow
 * to Inf or (sat/fn) to the largest finite value. */
static uint32_t ref_round(const struct fmt *f, double x)
{
    uint32_t sign = signbit(x) ? sign_bit(f) : 0;
    double a = fabs(x);
    if (isinf(a)) return sign | (f->fn ? max_code(f) : inf_code(f));
    uint32_t lo = 0, hi = max_code(f);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (ref_decode(f, mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    uint32_t c = lo, r;
    double vlo = ref_decode(f, c);
    double vhi = c < max_code(f) ? ref_decode(f, c + 1) : ref_above_max(f);
    if (vlo == a || 2 * a < vlo + vhi)
        r = c;
    else if (2 * a > vlo + vhi)
        r = c + 1;
    else
        r = (c & 1) ? c + 1 : c;
    if (r > max_code(f)) r = (f->sat || f->fn) ? max_code(f) : inf_code(f);
    return sign | r;
}

/* ---- the functions under test, by format -------------------------------- */

static float ut_decode(const struct fmt *f, uint32_t c)
{
    switch (f->dt) {
    case LLM_DTYPE_F16:
        return llm_f16_to_f32((uint16_t)c);
    case LLM_DTYPE_BF16:
        return llm_bf16_to_f32((uint16_t)c);
    case LLM_DTYPE_F8E4M3:
        return llm_e4m3_to_f32((uint8_t)c);
    case LLM_DTYPE_F8E5M2:
        return llm_e5m2_to_f32((uint8_t)c);
    }
    fail("no scalar decoder for %s", f->name);
}

static uint32_t ut_encode(const struct fmt *f, float x)
{
    switch (f->dt) {
    case LLM_DTYPE_F16:
        return llm_f32_to_f16(x);
    case LLM_DTYPE_BF16:
        return llm_f32_to_bf16(x);
    case LLM_DTYPE_F8E4M3:
        return llm_f32_to_e4m3(x);
    case LLM_DTYPE_F8E5M2:
        return llm_f32_to_e5m2(x);
    }
    fail("no scalar encoder for %s", f->name);
}

static uint32_t get_code(const void *buf, int bytes, size_t i)
{
    const unsigned char *p = (const unsigned char *)buf + i * (size_t)bytes;
    if (bytes == 1) return p[0];
    if (bytes == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void put_code(void *buf, int bytes, size_t i, uint32_t c)
{
    unsigned char *p = (unsigned char *)buf + i * (size_t)bytes;
    if (bytes == 1) {
        p[0] = (unsigned char)c;
    } else if (bytes == 2) {
        uint16_t v = (uint16_t)c;
        memcpy(p, &v, 2);
    } else {
        memcpy(p, &c, 4);
    }
}

/* A NaN produced in format f from a NaN whose sign is neg and whose payload,
 * left-aligned in 23 bits, is pay23: NaN, same sign, quiet, with the payload
 * bits that fit (fn formats have a single NaN). */
static void check_nan_code(const struct fmt *f, uint32_t got, int neg, uint32_t pay23,
                           const char *what)
{
    if (!ref_is_nan(f, got)) fail("%s: expected a %s NaN, got 0x%x", what, f->name, (unsigned)got);
    if (!!(got & sign_bit(f)) != !!neg) fail("%s: NaN sign lost (got 0x%x)", what, (unsigned)got);
    if (f->fn) return;
    uint32_t want = ((pay23 >> (23 - f->mbits)) & mmask(f)) | quiet_bit(f);
    if ((got & mmask(f)) != want)
        fail("%s: NaN payload/quiet bits 0x%x, expected 0x%x", what, (unsigned)(got & mmask(f)),
             (unsigned)want);
}

/* ---- decoding: every code ---------------------------------------------- */

static void check_decoded(const struct fmt *f, uint32_t c, float got, const char *how)
{
    uint32_t gb = fbits(got);
    if (ref_is_nan(f, c)) {
        if (!isnan(got)) fail("%s %s 0x%x: expected NaN, got %a", f->name, how, (unsigned)c, got);
        if (!!signbit(got) != !!(c & sign_bit(f)))
            fail("%s %s 0x%x: NaN sign lost", f->name, how, (unsigned)c);
        if (!(gb & 0x00400000))
            fail("%s %s 0x%x: NaN not quiet (0x%08x)", f->name, how, (unsigned)c, (unsigned)gb);
        if (!f->fn) {
            uint32_t want = (c & mmask(f)) | quiet_bit(f);
            if (((gb >> (23 - f->mbits)) & mmask(f)) != want)
                fail("%s %s 0x%x: NaN payload not kept (0x%08x)", f->name, how, (unsigned)c,
                     (unsigned)gb);
        }
        return;
    }
    double want = ref_decode(f, c);
    if ((double)got != want || !!signbit(got) != !!signbit(want))
        fail("%s %s 0x%x: got %a, reference %a", f->name, how, (unsigned)c, got, want);
}

static void test_decode_all(const struct fmt *f)
{
    size_t n = (size_t)1 << nbits(f);
    int bytes = nbits(f) / 8;
    void *codes = xmalloc(n * (size_t)bytes);
    float *out = xmalloc(n * sizeof(float));
    size_t nan = 0, inf = 0, sub = 0;
    for (size_t c = 0; c < n; c++) {
        put_code(codes, bytes, c, (uint32_t)c);
        check_decoded(f, (uint32_t)c, ut_decode(f, (uint32_t)c), "scalar decode");
        if (ref_is_nan(f, (uint32_t)c))
            nan++;
        else if (isinf(ref_decode(f, (uint32_t)c)))
            inf++;
        else if (((c & ~sign_bit(f)) >> f->mbits) == 0 && (c & mmask(f)))
            sub++;
    }
    if (llm_to_f32(out, codes, f->dt, n) != 0)
        fail("llm_to_f32 from %s: %s", f->name, llm_errmsg());
    for (size_t c = 0; c < n; c++)
        check_decoded(f, (uint32_t)c, out[c], "bulk decode");
    printf("ok: %s -> f32: all %zu codes (%zu subnormal, %zu inf, %zu NaN) match the ldexp "
           "reference, scalar and bulk\n",
           f->name, n, sub, inf, nan);
    free(codes);
    free(out);
}

/* ---- encoding: representables, midpoints, neighbours ------------------- */

struct cases {
    float *x;
    uint32_t *want; /* expected code; for NaN inputs unused */
    size_t n, cap;
};

static void add_case(struct cases *cs, float x, uint32_t want)
{
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 1024;
        cs->x = realloc(cs->x, cs->cap * sizeof(float));
        cs->want = realloc(cs->want, cs->cap * sizeof(uint32_t));
        if (!cs->x || !cs->want) fail("out of memory");
    }
    cs->x[cs->n] = x;
    cs->want[cs->n] = want;
    cs->n++;
}

/* Expected code for a float input, from the structure of the format alone:
 * the reference must agree with it (this checks the reference too). */
static void add_checked(const struct fmt *f, struct cases *cs, float x, uint32_t structural)
{
    uint32_t ref = ref_round(f, x);
    if (ref != structural)
        fail("reference self-check, %s of %a: ref_round 0x%x, expected 0x%x", f->name, x,
             (unsigned)ref, (unsigned)structural);
    add_case(cs, x, structural);
}

static uint32_t overflowed(const struct fmt *f, uint32_t r)
{
    return r > max_code(f) ? ((f->sat || f->fn) ? max_code(f) : inf_code(f)) : r;
}

/* Every finite code, every midpoint to the next code (ties go to the even
 * code), and the floats just below and above each midpoint; both signs. */
static void gen_structural(const struct fmt *f, struct cases *cs)
{
    for (uint32_t c = 0; c <= max_code(f); c++) {
        double lo = ref_decode(f, c);
        double hi = c < max_code(f) ? ref_decode(f, c + 1) : ref_above_max(f);
        double mid = (lo + hi) / 2;
        float fm = (float)mid;
        if ((double)fm != mid) fail("%s: midpoint %a is not an f32", f->name, mid);
        uint32_t even = overflowed(f, (c & 1) ? c + 1 : c);
        uint32_t up = overflowed(f, c + 1);
        for (int neg = 0; neg < 2; neg++) {
            uint32_t s = neg ? sign_bit(f) : 0;
            float sg = neg ? -1.0f : 1.0f;
            add_checked(f, cs, sg * (float)lo, s | c);
            add_checked(f, cs, sg * fm, s | even);
            add_checked(f, cs, sg * nextafterf(fm, 0.0f), s | c);
            add_checked(f, cs, sg * nextafterf(fm, INFINITY), s | up);
        }
    }
}

static void test_encode_cases(const struct fmt *f, const struct cases *cs, const char *what)
{
    int bytes = nbits(f) / 8;
    void *out = xmalloc(cs->n * (size_t)bytes + 1);
    for (size_t i = 0; i < cs->n; i++) {
        uint32_t got = ut_encode(f, cs->x[i]);
        if (got != cs->want[i])
            fail("f32 -> %s (%s), scalar: %a (0x%08x) gave 0x%x, expected 0x%x", f->name, what,
                 cs->x[i], (unsigned)fbits(cs->x[i]), (unsigned)got, (unsigned)cs->want[i]);
    }
    if (llm_convert(out, f->dt, cs->x, LLM_DTYPE_F32, cs->n) != 0)
        fail("llm_convert to %s: %s", f->name, llm_errmsg());
    for (size_t i = 0; i < cs->n; i++) {
        uint32_t got = get_code(out, bytes, i);
        if (got != cs->want[i])
            fail("f32 -> %s (%s), bulk: %a gave 0x%x, expected 0x%x", f->name, what, cs->x[i],
                 (unsigned)got, (unsigned)cs->want[i]);
    }
    free(out);
}

static void test_encode_structural(const struct fmt *f)
{
    struct cases cs = {0};
    gen_structural(f, &cs);
    test_encode_cases(f, &cs, "representable values, midpoints and their neighbours");
    printf("ok: f32 -> %s: %zu cases (every finite value, every midpoint (ties to even), the "
           "floats either side of it; both signs) match, scalar and bulk\n",
           f->name, cs.n);
    free(cs.x);
    free(cs.want);
}

/* Hand-derived edge cases: these do not go through the reference at all. */
struct edge {
    float x;
    uint32_t want;
};

static void test_edges(const struct fmt *f, const struct edge *e, size_t n, const char *what)
{
    struct cases cs = {0};
    for (size_t i = 0; i < n; i++) {
        if (ref_round(f, e[i].x) != e[i].want)
            fail("reference disagrees with hand value: %s of %a: 0x%x vs 0x%x", f->name, e[i].x,
                 (unsigned)ref_round(f, e[i].x), (unsigned)e[i].want);
        add_case(&cs, e[i].x, e[i].want);
    }
    test_encode_cases(f, &cs, what);
    printf("ok: f32 -> %s: %zu hand-derived %s cases\n", f->name, n, what);
    free(cs.x);
    free(cs.want);
}

static void test_nan_encode(const struct fmt *f)
{
    static const uint32_t nans[] = {0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fa00000,
                                    0x7fffffff, 0xffffffff, 0x7f812345, 0x7fe00001};
    size_t n = sizeof(nans) / sizeof(nans[0]);
    int bytes = nbits(f) / 8;
    float x[sizeof(nans) / sizeof(nans[0])];
    unsigned char out[sizeof(nans) / sizeof(nans[0]) * 2];
    char what[96];
    for (size_t i = 0; i < n; i++) {
        x[i] = bitsf(nans[i]);
        snprintf(what, sizeof(what), "f32 -> %s of NaN 0x%08x, scalar", f->name, (unsigned)nans[i]);
        check_nan_code(f, ut_encode(f, x[i]), nans[i] >> 31, nans[i] & 0x7fffff, what);
    }
    if (llm_convert(out, f->dt, x, LLM_DTYPE_F32, n) != 0)
        fail("llm_convert to %s: %s", f->name, llm_errmsg());
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof(what), "f32 -> %s of NaN 0x%08x, bulk", f->name, (unsigned)nans[i]);
        check_nan_code(f, get_code(out, bytes, i), nans[i] >> 31, nans[i] & 0x7fffff, what);
    }
    printf("ok: f32 -> %s: %zu NaNs (quiet, signalling, both signs) stay NaN, quiet, sign and "
           "top payload kept\n",
           f->name, n);
}

/* Every 8191st f32 bit pattern (all exponents, both signs, NaNs included). */
static void test_sweep(const struct fmt *f)
{
    struct cases cs = {0};
    size_t nans = 0;
    for (uint64_t u = 77; u <= 0xffffffffu; u += 8191) {
        float x = bitsf((uint32_t)u);
        add_case(&cs, x, isnan(x) ? 0 : ref_round(f, x));
    }
    int bytes = nbits(f) / 8;
    void *out = xmalloc(cs.n * (size_t)bytes);
    if (llm_convert(out, f->dt, cs.x, LLM_DTYPE_F32, cs.n) != 0)
        fail("llm_convert to %s: %s", f->name, llm_errmsg());
    for (size_t i = 0; i < cs.n; i++) {
        uint32_t xb = fbits(cs.x[i]);
        uint32_t s = ut_encode(f, cs.x[i]), b = get_code(out, bytes, i);
        if (isnan(cs.x[i])) {
            check_nan_code(f, s, xb >> 31, xb & 0x7fffff, "sweep NaN, scalar");
            check_nan_code(f, b, xb >> 31, xb & 0x7fffff, "sweep NaN, bulk");
            nans++;
            continue;
        }
        if (s != cs.want[i] || b != cs.want[i])
            fail("f32 -> %s sweep: 0x%08x (%a) gave scalar 0x%x bulk 0x%x, reference 0x%x", f->name,
                 (unsigned)xb, cs.x[i], (unsigned)s, (unsigned)b, (unsigned)cs.want[i]);
    }
    printf("ok: f32 -> %s: strided sweep of %zu f32 patterns (%zu NaN) matches the reference\n",
           f->name, cs.n, nans);
    free(out);
    free(cs.x);
    free(cs.want);
}

static void test_format(const struct fmt *f)
{
    test_decode_all(f);
    test_encode_structural(f);
    test_nan_encode(f);
    test_sweep(f);
}

static void test_format_edges(void)
{
    const float m25 = 0x1p-25f, m24 = 0x1p-24f;
    const struct edge f16_over[] = {
        {65504.0f, 0x7bff},  {nextafterf(65520.0f, 0), 0x7bff},
        {65520.0f, 0x7c00}, /* the midpoint to 2^16 rounds to Inf */
        {-65520.0f, 0xfc00}, {65536.0f, 0x7c00},
        {1e10f, 0x7c00},     {FLT_MAX, 0x7c00},
        {-FLT_MAX, 0xfc00},  {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    const struct edge f16_under[] = {
        {m25, 0x0000}, /* half the smallest subnormal: tie to even zero */
        {nextafterf(m25, 1), 0x0001},
        {-m25, 0x8000},
        {0x1p-26f, 0x0000},
        {1e-30f, 0x0000},
        {-1e-30f, 0x8000},
        {FLT_MIN, 0x0000},
        {bitsf(1), 0x0000},
        {bitsf(0x80000001), 0x8000},
        {1.5f * m24, 0x0002},     /* tie between 1 and 2 -> even 2 */
        {2.5f * m24, 0x0002},     /* tie between 2 and 3 -> even 2 */
        {0x1p-14f - m25, 0x0400}, /* tie between largest subnormal and min normal */
        {0x1p-14f, 0x0400},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f + 0x1p-11f, 0x3c00},
        {1.0f + 3 * 0x1p-11f, 0x3c02},
        {1.0f / 3.0f, 0x3555},
    };
    const struct edge bf16_edges[] = {
        {FLT_MAX, 0x7f80}, /* rounds past the largest bf16 to Inf */
        {bitsf(0x7f7f7fff), 0x7f7f}, {bitsf(0x7f7f8000), 0x7f80}, /* tie, 0x7f7f odd -> up to Inf */
        {bitsf(0x7f7e8000), 0x7f7e},                              /* tie, 0x7f7e even -> stays */
        {-FLT_MAX, 0xff80},          {INFINITY, 0x7f80},
        {-INFINITY, 0xff80},         {bitsf(1), 0x0000},
        {bitsf(0x00008000), 0x0000}, /* subnormal tie to even zero */
        {bitsf(0x00008001), 0x0001}, {bitsf(0x00018000), 0x0002},
        {bitsf(0x807fffff), 0x8080}, /* largest subnormal rounds up to -FLT_MIN */
        {1.0f / 3.0f, 0x3eab},       {-0.0f, 0x8000},
    };
    const struct edge e4m3_edges[] = {
        {448.0f, 0x7e},
        {464.0f, 0x7e}, /* midpoint to 480 (which is NaN's code): saturates */
        {479.0f, 0x7e},
        {480.0f, 0x7e},
        {1e6f, 0x7e},
        {FLT_MAX, 0x7e},
        {-FLT_MAX, 0xfe},
        {INFINITY, 0x7e}, /* no Inf in e4m3fn: +-448 */
        {-INFINITY, 0xfe},
        {0x1p-9f, 0x01},
        {0x1p-10f, 0x00}, /* tie to even zero */
        {nextafterf(0x1p-10f, 1), 0x01},
        {-0x1p-10f, 0x80},
        {3 * 0x1p-10f, 0x02},
        {0x1p-6f, 0x08},
        {1.0f, 0x38},
        {-1.0f, 0xb8},
        {1.0625f, 0x38}, /* tie between 1 and 1.125 -> even 1 */
        {1.1875f, 0x3a}, /* tie between 1.125 and 1.25 -> even 1.25 */
    };
    const struct edge e5m2_edges[] = {
        {57344.0f, 0x7b},  {61440.0f, 0x7b}, /* the IEEE midpoint to Inf: saturates instead */
        {65536.0f, 0x7b},  {1e10f, 0x7b},
        {-FLT_MAX, 0xfb},  {INFINITY, 0x7c}, /* e5m2 keeps Inf */
        {-INFINITY, 0xfc}, {0x1p-16f, 0x01},
        {0x1p-17f, 0x00},  {nextafterf(0x1p-17f, 1), 0x01},
        {0x1p-14f, 0x04},  {1.0f, 0x3c},
        {1.125f, 0x3c}, /* tie between 1 and 1.25 -> even 1 */
        {1.375f, 0x3e}, /* tie between 1.25 and 1.5 -> even 1.5 */
    };
#define EDGES(fmt, arr, what) test_edges(fmt, arr, sizeof(arr) / sizeof(arr[0]), what)
    EDGES(&FMT_F16, f16_over, "overflow");
    EDGES(&FMT_F16, f16_under, "underflow and rounding");
    EDGES(&FMT_BF16, bf16_edges, "overflow, subnormal and rounding");
    EDGES(&FMT_E4M3, e4m3_edges, "saturation, subnormal and rounding");
    EDGES(&FMT_E5M2, e5m2_edges, "saturation, Inf, subnormal and rounding");
#undef EDGES
}

/* ---- llm_convert on every pair of float types --------------------------- */

/* A source array with the exact (double) value of each element. */
struct src {
    void *data;
    double *val; /* exact value (NaN for NaNs) */
    size_t n;
};

static void src_narrow(const struct fmt *f, struct src *s)
{
    s->n = (size_t)1 << nbits(f);
    int bytes = nbits(f) / 8;
    s->data = xmalloc(s->n * (size_t)bytes);
    s->val = xmalloc(s->n * sizeof(double));
    for (size_t c = 0; c < s->n; c++) {
        put_code(s->data, bytes, c, (uint32_t)c);
        s->val[c] = ref_is_nan(f, (uint32_t)c) ? ((c & sign_bit(f)) ? -NAN : NAN)
                                               : ref_decode(f, (uint32_t)c);
    }
}

static void src_f32(struct src *s)
{
    struct cases cs = {0};
    const struct fmt *fs[] = {&FMT_F16, &FMT_BF16, &FMT_E4M3, &FMT_E5M2};
    for (size_t k = 0; k < 4; k++)
        gen_structural(fs[k], &cs);
    for (uint64_t u = 5; u <= 0xffffffffu; u += 65521)
        add_case(&cs, bitsf((uint32_t)u), 0);
    s->n = cs.n;
    s->data = cs.x;
    s->val = xmalloc(s->n * sizeof(double));
    for (size_t i = 0; i < s->n; i++)
        s->val[i] = cs.x[i];
    free(cs.want);
}

static size_t dbl_n, dbl_cap;
static double *dbl_v;
static void add_dbl(double d)
{
    if (dbl_n == dbl_cap) {
        dbl_cap = dbl_cap ? dbl_cap * 2 : 1024;
        dbl_v = realloc(dbl_v, dbl_cap * sizeof(double));
        if (!dbl_v) fail("out of memory");
    }
    dbl_v[dbl_n++] = d;
}

/* Doubles near every midpoint of every narrow format, closer than an f32 ulp:
 * going through f32 with plain rounding would turn them into ties. */
static void src_f64(struct src *s)
{
    const struct fmt *fs[] = {&FMT_F16, &FMT_BF16, &FMT_E4M3, &FMT_E5M2};
    dbl_n = 0;
    for (size_t k = 0; k < 4; k++) {
        const struct fmt *f = fs[k];
        size_t traps = 0;
        for (uint32_t c = 0; c <= max_code(f); c++) {
            double lo = ref_decode(f, c);
            double hi = c < max_code(f) ? ref_decode(f, c + 1) : ref_above_max(f);
            double mid = (lo + hi) / 2;
            double ds[] = {lo, mid, mid * (1 + 0x1p-40), mid * (1 - 0x1p-40), -mid * (1 + 0x1p-40)};
            for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
                add_dbl(ds[i]);
                if (ref_round(f, ds[i]) != ref_round(f, (double)(float)ds[i])) traps++;
            }
        }
        if (!traps) fail("f64 source set has no double-rounding traps for %s", f->name);
    }
    /* f32 rounding of doubles: midpoints between f32 neighbours and off by a hair */
    for (uint64_t u = 3; u < 0x7f800000u; u += 1048573) {
        double a = bitsf((uint32_t)u), b = nextafterf(bitsf((uint32_t)u), INFINITY);
        double mid = a + (b - a) / 2;
        add_dbl(mid);
        add_dbl(-mid);
        add_dbl(mid + (b - a) / 1024);
        add_dbl(mid - (b - a) / 1024);
    }
    const double specials[] = {0.0,
                               -0.0,
                               INFINITY,
                               -INFINITY,
                               NAN,
                               -NAN,
                               1e300,
                               -1e300,
                               1e-300,
                               -1e-300,
                               DBL_MIN,
                               DBL_TRUE_MIN,
                               DBL_MAX,
                               (double)FLT_MAX * (1 + 0x1p-30),
                               (double)FLT_MAX + 0x1p103,
                               (double)FLT_MAX + 0x1p104,
                               0x1p-150,
                               0x1p-150 * (1 + 0x1p-30),
                               0x1p-149 * 1.5,
                               65520.0,
                               65519.99999999999,
                               464.0,
                               463.99999999,
                               61440.0,
                               1.0 / 3};
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        add_dbl(specials[i]);
    s->n = dbl_n;
    s->data = dbl_v;
    s->val = xmalloc(s->n * sizeof(double));
    memcpy(s->val, dbl_v, s->n * sizeof(double));
    dbl_v = NULL;
    dbl_n = dbl_cap = 0;
}

static const struct fmt *fmt_of(int dt)
{
    switch (dt) {
    case LLM_DTYPE_F32:
        return &FMT_F32;
    case LLM_DTYPE_F16:
        return &FMT_F16;
    case LLM_DTYPE_BF16:
        return &FMT_BF16;
    case LLM_DTYPE_F8E4M3:
        return &FMT_E4M3;
    case LLM_DTYPE_F8E5M2:
        return &FMT_E5M2;
    }
    return NULL;
}

static void check_converted(int sdt, int ddt, const struct src *s, const void *out)
{
    const struct fmt *df = fmt_of(ddt);
    for (size_t i = 0; i < s->n; i++) {
        double x = s->val[i];
        if (ddt == LLM_DTYPE_F64) {
            double got;
            memcpy(&got, (const char *)out + i * 8, 8);
            int ok = isnan(x) ? isnan(got) && !!signbit(got) == !!signbit(x)
                              : got == x && !!signbit(got) == !!signbit(x);
            if (!ok)
                fail("%s -> f64, element %zu: got %a, expected %a", llm_dtype_name(sdt), i, got, x);
            continue;
        }
        uint32_t got = get_code(out, nbits(df) / 8, i);
        if (isnan(x)) {
            char what[80];
            snprintf(what, sizeof(what), "%s -> %s, element %zu", llm_dtype_name(sdt), df->name, i);
            /* payload checks need the source bits; sign, NaN-ness and quiet suffice here */
            if (!ref_is_nan(df, got) || !!(got & sign_bit(df)) != !!signbit(x) ||
                (!df->fn && !(got & quiet_bit(df))))
                fail("%s: expected a quiet NaN with the source sign, got 0x%x", what,
                     (unsigned)got);
            continue;
        }
        uint32_t want = ref_round(df, x);
        if (got != want)
            fail("%s -> %s, element %zu (%a): got 0x%x, expected 0x%x", llm_dtype_name(sdt),
                 df->name, i, x, (unsigned)got, (unsigned)want);
    }
}

static void test_convert_pairs(void)
{
    const int fl[] = {LLM_DTYPE_F32,    LLM_DTYPE_F16,    LLM_DTYPE_BF16,
                      LLM_DTYPE_F8E4M3, LLM_DTYPE_F8E5M2, LLM_DTYPE_F64};
    const size_t nfl = sizeof(fl) / sizeof(fl[0]);
    size_t pairs = 0, elems = 0;
    for (size_t a = 0; a < nfl; a++) {
        struct src s;
        int sdt = fl[a];
        if (sdt == LLM_DTYPE_F32)
            src_f32(&s);
        else if (sdt == LLM_DTYPE_F64)
            src_f64(&s);
        else
            src_narrow(fmt_of(sdt), &s);
        void *out = xmalloc(s.n * 8);
        for (size_t b = 0; b < nfl; b++) {
            int ddt = fl[b];
            memset(out, 0xa5, s.n * 8);
            if (llm_convert(out, ddt, s.data, sdt, s.n) != 0)
                fail("llm_convert %s -> %s: %s", llm_dtype_name(sdt), llm_dtype_name(ddt),
                     llm_errmsg());
            if (sdt == ddt) {
                int bytes = llm_dtype_bits(sdt) / 8;
                if (memcmp(out, s.data, s.n * (size_t)bytes))
                    fail("llm_convert %s -> %s is not a copy", llm_dtype_name(sdt),
                         llm_dtype_name(ddt));
            } else {
                check_converted(sdt, ddt, &s, out);
            }
            pairs++;
            elems += s.n;
        }
        free(out);
        free(s.data);
        free(s.val);
    }
    printf("ok: llm_convert: all %zu pairs of f32/f16/bf16/f8e4m3/f8e5m2/f64 (%zu elements, "
           "f64 sources with double-rounding traps) match the reference\n",
           pairs, elems);
}

/* ---- integers to f32 ---------------------------------------------------- */

static void expect_f32(const char *what, size_t i, float got, double exact)
{
    uint32_t want = ref_round(&FMT_F32, exact);
    if (fbits(got) != want)
        fail("%s -> f32, element %zu (%.17g): got %a, expected %a", what, i, exact, got,
             bitsf(want));
}

static void test_int_to_f32(void)
{
    float out[64];
    const int8_t i8[] = {0, 1, -1, 127, -128, 42, -77};
    const uint8_t u8[] = {0, 1, 255, 128, 42};
    const int16_t i16[] = {0, -1, 32767, -32768, 12345};
    const uint16_t u16[] = {0, 65535, 32768, 1};
    const int32_t i32[] = {
        0, -1, INT32_MAX, INT32_MIN, (1 << 24) + 1, (1 << 24) + 3, -((1 << 24) + 1), 123456789};
    const uint32_t u32[] = {0, UINT32_MAX, (1u << 24) + 1, 3000000001u};
    const int64_t i64[] = {0,
                           -1,
                           ((int64_t)1 << 52) + 1,
                           -((int64_t)1 << 40) - 3,
                           ((int64_t)1 << 24) + 1,
                           9007199254740991};
    const uint64_t u64[] = {0, ((uint64_t)1 << 53) - 1, (uint64_t)1 << 63, 16777217};
#define CHECK_INT(dt, arr, name)                                                                   \
    do {                                                                                           \
        size_t n_ = sizeof(arr) / sizeof(arr[0]);                                                  \
        if (llm_to_f32(out, arr, dt, n_) != 0) fail("llm_to_f32 from %s: %s", name, llm_errmsg()); \
        for (size_t i_ = 0; i_ < n_; i_++)                                                         \
            expect_f32(name, i_, out[i_], (double)arr[i_]);                                        \
    } while (0)
    CHECK_INT(LLM_DTYPE_I8, i8, "i8");
    CHECK_INT(LLM_DTYPE_U8, u8, "u8");
    CHECK_INT(LLM_DTYPE_I16, i16, "i16");
    CHECK_INT(LLM_DTYPE_U16, u16, "u16");
    CHECK_INT(LLM_DTYPE_I32, i32, "i32");
    CHECK_INT(LLM_DTYPE_U32, u32, "u32");
    CHECK_INT(LLM_DTYPE_I64, i64, "i64");
    CHECK_INT(LLM_DTYPE_U64, u64, "u64");
#undef CHECK_INT
    /* 64-bit extremes are not exact in double; their f32 values by hand */
    const int64_t i64x[] = {INT64_MAX, INT64_MIN};
    const uint64_t u64x[] = {UINT64_MAX};
    if (llm_to_f32(out, i64x, LLM_DTYPE_I64, 2) || fbits(out[0]) != 0x5f000000 ||
        fbits(out[1]) != 0xdf000000)
        fail("i64 extremes -> f32: got %a %a, expected 2^63 -2^63", out[0], out[1]);
    if (llm_to_f32(out, u64x, LLM_DTYPE_U64, 1) || fbits(out[0]) != 0x5f800000)
        fail("u64 max -> f32: got %a, expected 2^64", out[0]);

    const uint8_t b[] = {0, 1, 1, 0, 2, 255};
    if (llm_to_f32(out, b, LLM_DTYPE_BOOL, 6)) fail("bool -> f32: %s", llm_errmsg());
    for (int i = 0; i < 6; i++)
        if (out[i] != (b[i] ? 1.0f : 0.0f)) fail("bool %d -> f32: got %g", b[i], out[i]);

    /* i4: every byte, element 2k in the low nibble of byte k */
    uint8_t packed[256];
    float *o4 = xmalloc(512 * sizeof(float));
    for (int i = 0; i < 256; i++)
        packed[i] = (uint8_t)i;
    if (llm_to_f32(o4, packed, LLM_DTYPE_I4, 512)) fail("i4 -> f32: %s", llm_errmsg());
    for (int i = 0; i < 512; i++) {
        int nib = (i & 1) ? packed[i / 2] >> 4 : packed[i / 2] & 15;
        int v = nib >= 8 ? nib - 16 : nib;
        if (o4[i] != (float)v)
            fail("i4 element %d (byte 0x%02x): got %g, expected %d", i, i / 2, o4[i], v);
    }
    /* odd count: the last element is a low nibble; nothing is written past it */
    const uint8_t odd[2] = {0x8f, 0x07};
    o4[3] = 99.0f;
    if (llm_to_f32(o4, odd, LLM_DTYPE_I4, 3) || o4[0] != -1.0f || o4[1] != -8.0f || o4[2] != 7.0f ||
        o4[3] != 99.0f)
        fail("i4 odd count: got %g %g %g %g, expected -1 -8 7 99", o4[0], o4[1], o4[2], o4[3]);
    free(o4);
    printf("ok: integers -> f32: i8 u8 i16 u16 i32 u32 i64 u64 (rounding at 2^24, extremes), "
           "bool, i4 (all 256 bytes, odd count)\n");
}

/* ---- API edges ----------------------------------------------------------- */

static void expect_rc(int got, int want, const char *what)
{
    if (got != want)
        fail("%s: returned %d (%s), expected %d (%s)", what, got, llm_strerror(got), want,
             llm_strerror(want));
    if (want < 0 && !llm_errmsg()[0]) fail("%s: no detail message", what);
}

static void test_convert_errors(void)
{
    float f[4] = {1, 2, 3, 4};
    unsigned char out[64];
    llm_err_clear();
    expect_rc(llm_convert(out, LLM_DTYPE_I8, f, LLM_DTYPE_F32, 4), LLM_EUNSUPPORTED, "f32 -> i8");
    if (!strstr(llm_errmsg(), "f32") || !strstr(llm_errmsg(), "i8"))
        fail("unsupported message does not name the dtypes: '%s'", llm_errmsg());
    expect_rc(llm_convert(out, LLM_DTYPE_F16, f, LLM_DTYPE_I32, 4), LLM_EUNSUPPORTED, "i32 -> f16");
    expect_rc(llm_convert(out, LLM_DTYPE_BF16, f, LLM_DTYPE_BOOL, 4), LLM_EUNSUPPORTED,
              "bool -> bf16");
    expect_rc(llm_convert(out, LLM_DTYPE_F64, f, LLM_DTYPE_I4, 4), LLM_EUNSUPPORTED, "i4 -> f64");
    expect_rc(llm_convert(out, LLM_DTYPE_I32, f, LLM_DTYPE_I8, 4), LLM_EUNSUPPORTED, "i8 -> i32");
    expect_rc(llm_convert(out, -1, f, LLM_DTYPE_F32, 4), LLM_EINVAL, "invalid dst dtype");
    expect_rc(llm_convert(out, LLM_DTYPE_F32, f, LLM_DTYPE_COUNT, 4), LLM_EINVAL,
              "invalid src dtype");
    expect_rc(llm_convert(NULL, LLM_DTYPE_F16, f, LLM_DTYPE_F32, 4), LLM_EINVAL, "NULL dst");
    expect_rc(llm_convert(NULL, LLM_DTYPE_F16, NULL, LLM_DTYPE_F32, 0), 0, "n = 0 with NULL");
    /* same dtype copies bytes, for integer and packed types too */
    const uint8_t i4[3] = {0x12, 0x34, 0x56};
    memset(out, 0xee, sizeof(out));
    expect_rc(llm_convert(out, LLM_DTYPE_I4, i4, LLM_DTYPE_I4, 5), 0, "i4 copy");
    if (out[0] != 0x12 || out[1] != 0x34 || out[2] != 0x56 || out[3] != 0xee)
        fail("i4 copy of 5 elements: got %02x %02x %02x %02x", out[0], out[1], out[2], out[3]);
    const int64_t i64[2] = {-5, INT64_MAX};
    expect_rc(llm_convert(out, LLM_DTYPE_I64, i64, LLM_DTYPE_I64, 2), 0, "i64 copy");
    if (memcmp(out, i64, sizeof(i64))) fail("i64 copy differs");
    printf("ok: llm_convert refuses unsupported pairs and invalid dtypes with a message; "
           "same-dtype copies\n");
}

/* Bulk loops at every length around the block size, at odd addresses, with
 * guard bytes after the output, against the scalar functions. */
static void test_tails(void)
{
    const struct fmt *fs[] = {&FMT_F16, &FMT_BF16, &FMT_E4M3, &FMT_E5M2};
    unsigned char *in = xmalloc(64 * 8 + 16), *out = xmalloc(64 * 8 + 16);
    size_t runs = 0;
    for (size_t k = 0; k < 4; k++) {
        const struct fmt *f = fs[k];
        int bytes = nbits(f) / 8;
        for (size_t n = 0; n <= 40; n++) {
            for (size_t ia = 0; ia < 4; ia++) {
                size_t oa = (ia * 3 + 1) % 4;
                /* narrow -> f32 */
                for (size_t i = 0; i < n; i++)
                    put_code(in + ia, bytes, i, (uint32_t)((i * 2654435761u) >> 7));
                memset(out, 0x5a, 64 * 8 + 16);
                if (llm_convert(out + oa, LLM_DTYPE_F32, in + ia, f->dt, n))
                    fail("tail %s -> f32: %s", f->name, llm_errmsg());
                for (size_t i = 0; i < n; i++) {
                    uint32_t c = get_code(in + ia, bytes, i);
                    float got, want = ut_decode(f, c);
                    memcpy(&got, out + oa + 4 * i, 4);
                    if (fbits(got) != fbits(want))
                        fail("%s -> f32, n=%zu, element %zu: bulk 0x%08x, scalar 0x%08x", f->name,
                             n, i, (unsigned)fbits(got), (unsigned)fbits(want));
                }
                for (size_t i = oa + 4 * n; i < oa + 4 * n + 8; i++)
                    if (out[i] != 0x5a) fail("%s -> f32, n=%zu: wrote past the end", f->name, n);
                /* f32 -> narrow */
                for (size_t i = 0; i < n; i++) {
                    float x = bitsf((uint32_t)(i * 2654435761u) ^ 0x3c000000u);
                    memcpy(in + ia + 4 * i, &x, 4);
                }
                memset(out, 0x5a, 64 * 8 + 16);
                if (llm_convert(out + oa, f->dt, in + ia, LLM_DTYPE_F32, n))
                    fail("tail f32 -> %s: %s", f->name, llm_errmsg());
                for (size_t i = 0; i < n; i++) {
                    float x;
                    memcpy(&x, in + ia + 4 * i, 4);
                    uint32_t got = get_code(out + oa, bytes, i), want = ut_encode(f, x);
                    if (got != want)
                        fail("f32 -> %s, n=%zu, element %zu: bulk 0x%x, scalar 0x%x", f->name, n, i,
                             (unsigned)got, (unsigned)want);
                }
                for (size_t i = oa + (size_t)bytes * n; i < oa + (size_t)bytes * n + 8; i++)
                    if (out[i] != 0x5a) fail("f32 -> %s, n=%zu: wrote past the end", f->name, n);
                runs += 2;
            }
        }
    }
    free(in);
    free(out);
    printf("ok: bulk loops: %zu runs, lengths 0..40, unaligned addresses, guard bytes intact, "
           "equal to the scalar functions\n",
           runs);
}

/* ---- names and sizes ---------------------------------------------------- */

static void test_names(void)
{
    static const struct {
        int dt;
        const char *name, *st;
        int bits, is_float;
    } want[] = {
        {LLM_DTYPE_F64, "f64", "F64", 64, 1},
        {LLM_DTYPE_F32, "f32", "F32", 32, 1},
        {LLM_DTYPE_F16, "f16", "F16", 16, 1},
        {LLM_DTYPE_BF16, "bf16", "BF16", 16, 1},
        {LLM_DTYPE_F8E4M3, "f8e4m3", "F8_E4M3", 8, 1},
        {LLM_DTYPE_F8E5M2, "f8e5m2", "F8_E5M2", 8, 1},
        {LLM_DTYPE_I64, "i64", "I64", 64, 0},
        {LLM_DTYPE_I32, "i32", "I32", 32, 0},
        {LLM_DTYPE_I16, "i16", "I16", 16, 0},
        {LLM_DTYPE_I8, "i8", "I8", 8, 0},
        {LLM_DTYPE_U8, "u8", "U8", 8, 0},
        {LLM_DTYPE_U16, "u16", "U16", 16, 0},
        {LLM_DTYPE_U32, "u32", "U32", 32, 0},
        {LLM_DTYPE_U64, "u64", "U64", 64, 0},
        {LLM_DTYPE_BOOL, "bool", "BOOL", 8, 0},
        {LLM_DTYPE_I4, "i4", NULL, 4, 0},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    if (n != LLM_DTYPE_COUNT) fail("test table has %zu dtypes, enum has %d", n, LLM_DTYPE_COUNT);
    int seen[LLM_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        int dt = want[i].dt;
        seen[dt]++;
        const char *st = llm_dtype_st_name(dt);
        if (strcmp(llm_dtype_name(dt), want[i].name))
            fail("llm_dtype_name(%d) = '%s', expected '%s'", dt, llm_dtype_name(dt), want[i].name);
        if (llm_dtype_from_name(want[i].name) != dt)
            fail("llm_dtype_from_name('%s') = %d", want[i].name, llm_dtype_from_name(want[i].name));
        if ((st == NULL) != (want[i].st == NULL) || (st && strcmp(st, want[i].st)))
            fail("llm_dtype_st_name(%s) = '%s', expected '%s'", want[i].name, st ? st : "(null)",
                 want[i].st ? want[i].st : "(null)");
        if (st && llm_dtype_from_st_name(st) != dt)
            fail("llm_dtype_from_st_name('%s') = %d", st, llm_dtype_from_st_name(st));
        if (llm_dtype_bits(dt) != want[i].bits)
            fail("llm_dtype_bits(%s) = %d", want[i].name, llm_dtype_bits(dt));
        if (llm_dtype_is_float(dt) != want[i].is_float)
            fail("llm_dtype_is_float(%s) = %d", want[i].name, llm_dtype_is_float(dt));
    }
    for (int dt = 0; dt < LLM_DTYPE_COUNT; dt++)
        if (seen[dt] != 1) fail("dtype %d appears %d times in the test table", dt, seen[dt]);
    if (llm_dtype_from_name("BF16") != LLM_DTYPE_BF16) fail("names are not case-insensitive");
    if (strcmp(llm_dtype_name(-1), "?") || strcmp(llm_dtype_name(LLM_DTYPE_COUNT), "?"))
        fail("invalid dtype names are not '?'");
    if (llm_dtype_st_name(-1) || llm_dtype_st_name(LLM_DTYPE_COUNT))
        fail("invalid dtype has a safetensors name");
    llm_err_clear();
    expect_rc(llm_dtype_from_name("f17"), LLM_EINVAL, "from_name('f17')");
    if (!strstr(llm_errmsg(), "'f17'")) fail("message does not quote the name: '%s'", llm_errmsg());
    expect_rc(llm_dtype_from_name(""), LLM_EINVAL, "from_name('')");
    expect_rc(llm_dtype_from_name(NULL), LLM_EINVAL, "from_name(NULL)");
    expect_rc(llm_dtype_from_st_name("bf16"), LLM_EINVAL, "from_st_name('bf16')");
    expect_rc(llm_dtype_from_st_name("I4"), LLM_EINVAL, "from_st_name('I4')");
    expect_rc(llm_dtype_from_st_name("F8_E4M3FN"), LLM_EINVAL, "from_st_name('F8_E4M3FN')");
    expect_rc(llm_dtype_from_st_name(NULL), LLM_EINVAL, "from_st_name(NULL)");
    expect_rc(llm_dtype_bits(LLM_DTYPE_COUNT), LLM_EINVAL, "bits(COUNT)");
    if (llm_dtype_is_float(-1) || llm_dtype_is_float(LLM_DTYPE_COUNT))
        fail("invalid dtype reported as float");
    printf("ok: names, safetensors names, bits and float flags of all %d dtypes; bad names "
           "refused\n",
           LLM_DTYPE_COUNT);
}

static void test_sizes(void)
{
    uint64_t nb;
    static const struct {
        int dt;
        uint64_t numel;
        int rc;
        uint64_t nbytes;
    } cases[] = {
        {LLM_DTYPE_F32, 3, 0, 12},
        {LLM_DTYPE_F32, 0, 0, 0},
        {LLM_DTYPE_BF16, 7, 0, 14},
        {LLM_DTYPE_F8E4M3, 9, 0, 9},
        {LLM_DTYPE_F64, 2, 0, 16},
        {LLM_DTYPE_I4, 0, 0, 0},
        {LLM_DTYPE_I4, 1, 0, 1},
        {LLM_DTYPE_I4, 2, 0, 1},
        {LLM_DTYPE_I4, 3, 0, 2},
        {LLM_DTYPE_I4, UINT64_MAX, 0, (uint64_t)1 << 63},
        {LLM_DTYPE_U8, UINT64_MAX, 0, UINT64_MAX},
        {LLM_DTYPE_BOOL, 5, 0, 5},
        {LLM_DTYPE_F32, UINT64_MAX / 4, 0, UINT64_MAX - 3},
        {LLM_DTYPE_F32, UINT64_MAX / 4 + 1, LLM_ERANGE, 0},
        {LLM_DTYPE_F16, (uint64_t)1 << 63, LLM_ERANGE, 0},
        {LLM_DTYPE_F64, UINT64_MAX / 8 + 1, LLM_ERANGE, 0},
        {LLM_DTYPE_U64, UINT64_MAX, LLM_ERANGE, 0},
        {-1, 1, LLM_EINVAL, 0},
        {LLM_DTYPE_COUNT, 1, LLM_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[96];
        snprintf(what, sizeof(what), "llm_dtype_nbytes(%s, %" PRIu64 ")",
                 llm_dtype_name(cases[i].dt), cases[i].numel);
        nb = 12345;
        expect_rc(llm_dtype_nbytes(cases[i].dt, cases[i].numel, &nb), cases[i].rc, what);
        if (nb != cases[i].nbytes)
            fail("%s: %" PRIu64 " bytes, expected %" PRIu64, what, nb, cases[i].nbytes);
    }

    static const struct {
        int ndim;
        int64_t shape[LLM_MAX_DIMS + 1];
        int rc;
        uint64_t numel;
    } sh[] = {
        {0, {0}, 0, 1},
        {1, {7}, 0, 7},
        {3, {2, 3, 4}, 0, 24},
        {8, {2, 2, 2, 2, 2, 2, 2, 2}, 0, 256},
        {2, {0, 5}, 0, 0},
        {3, {0, INT64_MAX, INT64_MAX}, 0, 0},
        {3, {INT64_MAX, INT64_MAX, 0}, 0, 0},
        {2, {INT64_MAX, 2}, 0, UINT64_MAX - 1},
        {2, {INT64_MAX, 3}, LLM_ERANGE, 0},
        {2, {(int64_t)1 << 32, (int64_t)1 << 32}, LLM_ERANGE, 0},
        {2, {(int64_t)1 << 32, ((int64_t)1 << 32) - 1}, 0, UINT64_MAX - ((uint64_t)1 << 32) + 1},
        {4, {1 << 16, 1 << 16, 1 << 16, 1 << 16}, LLM_ERANGE, 0},
        {1, {-1}, LLM_ERANGE, 0},
        {3, {4, -2, 0}, LLM_ERANGE, 0},
        {2, {INT64_MIN, 1}, LLM_ERANGE, 0},
        {9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, LLM_EINVAL, 0},
        {-1, {1}, LLM_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(sh) / sizeof(sh[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "llm_shape_numel case %zu (ndim %d)", i, sh[i].ndim);
        uint64_t numel = 999;
        expect_rc(llm_shape_numel(sh[i].ndim, sh[i].shape, &numel), sh[i].rc, what);
        if (numel != sh[i].numel)
            fail("%s: numel %" PRIu64 ", expected %" PRIu64, what, numel, sh[i].numel);
    }
    printf("ok: llm_dtype_nbytes (i4 rounding, 64-bit overflow) and llm_shape_numel (scalar, "
           "zero dims, negative dims, overflow, ndim limits)\n");
}

int main(void)
{
    test_names();
    test_sizes();
    test_format(&FMT_F16);
    test_format(&FMT_BF16);
    test_format(&FMT_E4M3);
    test_format(&FMT_E5M2);
    test_format_edges();
    test_tails();
    test_int_to_f32();
    test_convert_errors();
    test_convert_pairs();
    printf("all dtype checks passed\n");
    return 0;
}
