/* quantize.c - round-to-nearest weight quantizers (llm/quantize.h says the
 * formulas; formats/artifact.md the formats they produce). */
#include <math.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/quantize.h"

static float amax(const float *x, int64_t n, int64_t stride)
{
    float m = 0.f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i * stride]));
    return m;
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void llm_q_int8_channel(const float *w, int64_t out, int64_t in, int8_t *q, float *scale)
{
    for (int64_t o = 0; o < out; o++) {
        const float *r = w + o * in;
        float m = amax(r, in, 1), s = m > 0.f ? m / 127.0f : 1.0f;
        scale[o] = s;
        for (int64_t i = 0; i < in; i++) q[o * in + i] = (int8_t)clampf(rintf(r[i] / s), -127, 127);
    }
}

void llm_q_int4_group(const float *w, int64_t out, int64_t in, int group, uint8_t *packed,
                      float *scale)
{
    memset(packed, 0, (size_t)(out * in / 2));
    for (int64_t o = 0; o < out; o++)
        for (int64_t g = 0; g < in / group; g++) {
            const float *r = w + o * in + g * group;
            float m = amax(r, group, 1), s = m > 0.f ? m / 7.0f : 1.0f;
            scale[g * out + o] = s;
            for (int i = 0; i < group; i++) {
                int v = (int)clampf(rintf(r[i] / s), -8, 7);
                int64_t e = o * in + g * group + i;
                packed[e / 2] |= (uint8_t)((v & 0xf) << (e % 2 ? 4 : 0));
            }
        }
}

void llm_q_fp8_tensor(const float *w, size_t n, uint8_t *q, float *scale)
{
    float m = amax(w, (int64_t)n, 1), s = m > 0.f ? m / 448.0f : 1.0f;
    *scale = s;
    for (size_t i = 0; i < n; i++) q[i] = llm_f32_to_e4m3(w[i] / s);
}

void llm_q_fp8_channel(const float *w, int64_t out, int64_t in, uint8_t *q, float *scale)
{
    for (int64_t o = 0; o < out; o++) llm_q_fp8_tensor(w + o * in, (size_t)in, q + o * in, &scale[o]);
}

void llm_q_col_amax(const float *w, int64_t out, int64_t in, float *w_amax)
{
    for (int64_t j = 0; j < in; j++) w_amax[j] = fmaxf(w_amax[j], amax(w + j, out, in));
}

void llm_q_smooth_amax(const float *x_amax, const float *w_amax, int64_t in, double alpha,
                       float *s)
{
    for (int64_t j = 0; j < in; j++) {
        float wm = w_amax[j];
        double v = x_amax[j] > 0.f && wm > 0.f
                       ? pow((double)x_amax[j], alpha) / pow((double)wm, 1.0 - alpha)
                       : 1.0;
        s[j] = (float)(v < 1e-5 ? 1e-5 : v > 1e5 ? 1e5 : v);
    }
}

void llm_q_smooth(const float *x_amax, const float *w, int64_t out, int64_t in, double alpha,
                  float *s)
{
    /* s doubles as the column maxima, each read before it is overwritten */
    for (int64_t j = 0; j < in; j++) s[j] = amax(w + j, out, in);
    llm_q_smooth_amax(x_amax, s, in, alpha, s);
}

void llm_q_fold_norm(float *w, float *b, const float *s, int64_t n, double offset)
{
    for (int64_t j = 0; j < n; j++) {
        w[j] = (float)(((double)offset + w[j]) / s[j] - offset);
        if (b) b[j] = (float)((double)b[j] / s[j]);
    }
}
