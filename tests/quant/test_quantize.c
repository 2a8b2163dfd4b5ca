/* test_quantize.c - the quantizers against values worked out by hand
 * (scales, rounding half to even, packing bit for bit, e4m3 codes), and the
 * CPU backend's quantized linear against the dequantized weight it stands
 * for.  Inputs are chosen to be exact in binary, so every expected value is
 * exact. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/quantize.h"
#include "llm/weight.h"
#include "lib/backend/cpu/cpu_ops.h"
#include "../formats/tcheck.h"


static void test_int8(void)
{
    /* row 0: max 1.27 -> scale 0.01; -0.635 / 0.01 = -63.5 -> -64 (half to even) */
    const float w[2][4] = {{1.27f, -0.635f, 0.f, 0.3f}, {0.f, 0.f, 0.f, 0.f}};
    int8_t q[8];
    float s[2];
    llm_q_int8_channel(&w[0][0], 2, 4, q, s);
    CHECK(s[0] == 1.27f / 127.0f && s[1] == 1.0f, "int8 scales %g %g", s[0], s[1]);
    CHECK(q[0] == 127 && q[2] == 0 && q[3] == 30, "int8 row 0: %d %d %d %d", q[0], q[1], q[2], q[3]);
    CHECK(q[1] == (int8_t)rintf(-0.635f / (1.27f / 127.0f)), "int8 rounding of -63.5: %d", q[1]);
    CHECK(!q[4] && !q[5] && !q[6] && !q[7], "a zero row stays zero");
    /* exact: 2.54 / 127 = 0.02, -1.27 / 0.02 = -63.5 -> -64; 0.03 / 0.02 = 1.5 -> 2 */
    const float e[4] = {4.0f, -2.0f, 1.0f, 3.0f}; /* max 4 -> scale 4/127 */
    llm_q_int8_channel(e, 1, 4, q, s);
    CHECK(q[0] == 127 && q[1] == (int8_t)rintf(-2.0f * 127.0f / 4.0f), "int8 exact row");
}

static void test_int4(void)
{
    /* group 0 {0.875, -0.4375}: scale 0.125, q {7, -3.5 -> -4};
     * group 1 {-1.75, 0.5}: scale 0.25, q {-7, 2}.
     * Elements 7, -4, -7, 2 pack to 0xC7 (low 7, high -4 = 0xC), 0x29. */
    const float w[4] = {0.875f, -0.4375f, -1.75f, 0.5f};
    uint8_t p[2];
    float s[2];
    llm_q_int4_group(w, 1, 4, 2, p, s);
    CHECK(s[0] == 0.125f && s[1] == 0.25f, "int4 scales %g %g", s[0], s[1]);
    CHECK(p[0] == 0xC7 && p[1] == 0x29, "int4 packing %02x %02x", p[0], p[1]);
    /* two rows, scale layout [group][out] */
    const float w2[2][4] = {{0.875f, -0.4375f, -1.75f, 0.5f}, {7.f, 0.f, 0.f, 0.f}};
    uint8_t p2[4];
    float s2[4];
    llm_q_int4_group(&w2[0][0], 2, 4, 2, p2, s2);
    CHECK(s2[0] == 0.125f && s2[1] == 1.0f && s2[2] == 0.25f && s2[3] == 1.0f,
          "int4 [group][out] scales %g %g %g %g", s2[0], s2[1], s2[2], s2[3]);
    CHECK(p2[2] == 0x07 && p2[3] == 0x00, "row 1 packs 7, 0, 0, 0: %02x %02x", p2[2], p2[3]);
    /* back through the dtype reader: the nibbles are signed */
    float back[4];
    llm_convert(back, LLM_DTYPE_F32, p, LLM_DTYPE_I4, 4);
    CHECK(back[0] == 7 && back[1] == -4 && back[2] == -7 && back[3] == 2, "int4 read back %g %g %g %g",
          back[0], back[1], back[2], back[3]);
}

static void test_fp8(void)
{
    /* max 896 -> scale 2: 896 -> 448 = 0x7e; -1 -> -0.5 = 0xb0; 0.5 -> 0.25 = 0x28 */
    const float w[3] = {896.f, -1.f, 0.5f};
    uint8_t q[3];
    float s;
    llm_q_fp8_tensor(w, 3, q, &s);
    CHECK(s == 2.0f && q[0] == 0x7e && q[1] == 0xb0 && q[2] == 0x28, "fp8 %g: %02x %02x %02x", s,
          q[0], q[1], q[2]);
    const float w2[2][2] = {{1.f, -0.5f}, {0.f, 0.f}};
    uint8_t q2[4];
    float s2[2];
    llm_q_fp8_channel(&w2[0][0], 2, 2, q2, s2);
    CHECK(s2[0] == 1.0f / 448.0f && s2[1] == 1.0f && q2[0] == 0x7e && q2[2] == 0 && q2[3] == 0,
          "fp8 per channel %g %g: %02x %02x", s2[0], s2[1], q2[0], q2[1]);
    /* activations: per-token max 896 -> scale 2; 3 rounds to 3 (1.5 * 2^1 in e4m3);
     * 897 saturates to 448 * 2 */
    float x[4] = {896.f, 3.f, -0.f, 1.0f};
    llm_cpu_quant_act_fp8(x, 1, 4, 0.f);
    CHECK(x[0] == 896.f && x[1] == 3.f && x[2] == 0.f && x[3] == 1.f, "fp8 act %g %g %g %g", x[0],
          x[1], x[2], x[3]);
    float y[2] = {900.f, 17.f}; /* static scale 2: 450 -> 448 (saturated), 8.5 -> 8 (ulp 1 there) */
    llm_cpu_quant_act_fp8(y, 1, 2, 2.f);
    CHECK(y[0] == 896.f && y[1] == 16.f, "fp8 static act %g %g", y[0], y[1]);
}

/* The quantized linear equals x . dequant(W)^T (and + bias). */
static void test_linear(void)
{
    const float w[2][4] = {{0.875f, -0.4375f, -1.75f, 0.5f}, {7.f, 0.f, 0.f, 0.f}};
    uint8_t p[4];
    float s[4];
    llm_q_int4_group(&w[0][0], 2, 4, 2, p, s);
    struct llm_weight lw;
    memset(&lw, 0, sizeof lw);
    lw.present = 1;
    snprintf(lw.name, sizeof lw.name, "test.weight");
    lw.fmt = LLM_WFMT_INT4;
    lw.dtype = LLM_DTYPE_I4;
    lw.ndim = 2;
    lw.shape[0] = 2;
    lw.shape[1] = 4;
    lw.data = p;
    lw.nbytes = 4;
    lw.scale_kind = LLM_WSCALE_GROUP;
    lw.group_size = 2;
    lw.scale = (struct llm_tensor){.dtype = LLM_DTYPE_F32, .ndim = 2, .shape = {2, 2},
                                   .nbytes = 16, .data = s};
    const float bias[2] = {0.5f, -1.f};
    lw.bias = bias;
    lw.bias_dtype = LLM_DTYPE_F32;
    lw.has_bias = 1;
    const float x[2][4] = {{1.f, 2.f, 3.f, 4.f}, {-1.f, 0.f, 0.5f, 0.25f}};
    float y[4];
    int rc = llm_cpu_linear_w(y, &x[0][0], 2, &lw);
    /* dequantized row 0: 0.875, -0.5, -1.75, 0.5; row 1: 7, 0, 0, 0 */
    float want[4] = {0.875f - 1.0f - 5.25f + 2.0f + 0.5f, 7.f - 1.f,
                     -0.875f - 0.875f + 0.125f + 0.5f, -7.f - 1.f};
    CHECK(!rc && y[0] == want[0] && y[1] == want[1] && y[2] == want[2] && y[3] == want[3],
          "int4 linear: %g %g %g %g, want %g %g %g %g", y[0], y[1], y[2], y[3], want[0], want[1],
          want[2], want[3]);
    /* int8 per channel */
    int8_t q8[8];
    float s8[2];
    llm_q_int8_channel(&w[0][0], 2, 4, q8, s8);
    lw.fmt = LLM_WFMT_INT8;
    lw.dtype = LLM_DTYPE_I8;
    lw.data = q8;
    lw.nbytes = 8;
    lw.scale_kind = LLM_WSCALE_CHANNEL;
    lw.scale = (struct llm_tensor){.dtype = LLM_DTYPE_F32, .ndim = 1, .shape = {2}, .nbytes = 8,
                                   .data = s8};
    rc = llm_cpu_linear_w(y, &x[0][0], 2, &lw);
    float d0[4];
    for (int i = 0; i < 4; i++) d0[i] = s8[0] * q8[i];
    float want0 = d0[0] * 1.f + d0[1] * 2.f + d0[2] * 3.f + d0[3] * 4.f + 0.5f;
    CHECK(!rc && fabsf(y[0] - want0) <= 1e-6f * fabsf(want0) && y[1] == 7.f - 1.f,
          "int8 linear %g (want %g), %g", y[0], want0, y[1]);
    /* a group size that does not divide the input is refused */
    lw.fmt = LLM_WFMT_INT4;
    lw.group_size = 3;
    CHECK(llm_cpu_linear_w(y, &x[0][0], 2, &lw) != 0, "group 3 of 4 inputs refused");
}

/* AWQ: with one input channel 50 times larger than the rest, scaling it
 * up in the weight must beat plain rounding on the output error, and a = 0
 * must reproduce plain rounding exactly. */
static void test_awq(void)
{
    enum { OUT = 8, IN = 64, ROWS = 32 };
    static float w[OUT * IN], x[ROWS * IN], pre[IN], sc[IN / 32 * OUT], sc0[IN / 32 * OUT];
    static uint8_t q[OUT * IN / 2], q0[OUT * IN / 2];
    static double mean[IN];
    uint64_t r = 12345;
    for (int i = 0; i < OUT * IN; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((int)(r >> 40) % 2001 - 1000) / 1000.0f;
    }
    for (int i = 0; i < ROWS * IN; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int)(r >> 40) % 2001 - 1000) / 1000.0f * (i % IN == 3 ? 50.0f : 1.0f);
    }
    for (int j = 0; j < IN; j++) {
        double sum = 0;
        for (int t = 0; t < ROWS; t++) sum += fabs(x[t * IN + j]);
        mean[j] = sum / ROWS;
    }
    double a = -1, e = -1;
    int rc = llm_q_awq(w, OUT, IN, 32, mean, x, ROWS, q, sc, pre, &a, &e);
    CHECK(!rc && a > 0 && e < 0.9, "awq: exponent %g, error %.3f of plain rounding", a, e);
    CHECK(pre[3] < pre[4], "awq: the large channel is scaled up (pre %g vs %g)", pre[3], pre[4]);
    /* all channels equal: the search finds nothing better than a = 0, i.e. plain rounding */
    for (int j = 0; j < IN; j++) mean[j] = 1.0;
    rc = llm_q_awq(w, OUT, IN, 32, mean, x, ROWS, q, sc, pre, &a, &e);
    llm_q_int4_group(w, OUT, IN, 32, q0, sc0);
    CHECK(!rc && e == 1.0 && !memcmp(q, q0, sizeof q) && !memcmp(sc, sc0, sizeof sc) &&
              pre[0] == 1.0f,
          "awq with flat activations is plain rounding (a %g, error %g)", a, e);
}

int main(void)
{
    test_awq();
    test_int8();
    test_int4();
    test_fp8();
    test_linear();
    printf("%d checks, %d failed\n", t_checks, t_failures);
    return t_failures ? 1 : 0;
}
