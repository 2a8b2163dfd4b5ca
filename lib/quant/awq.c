/* awq.c - activation-aware weight quantization (AWQ; Lin et al., 2023) for
 * int4 groups: the channels whose inputs are large matter most, so they are
 * scaled up in the weight before rounding (and the input down by as much),
 * which gives them more of the int4 grid.  llm/quantize.h states the
 * search; the error is measured with the CPU backend's own linear kernel.
 *
 * The optional clipping search (llm_q_int4_clip, AWQ's auto_clip) comes
 * after the scale search: a group's largest weight sets its scale, and
 * when that weight meets small inputs it is cheaper to saturate it and give
 * the rest of the group a finer grid.  Each group is judged by its own
 * contribution to each output (the error of x_g . (w_g - q_g) on the sample
 * rows), computed for every output row of one group at once as a product
 * through the same kernel.  Summed over groups this ignores the cross
 * terms between groups' errors, so llm_q_awq keeps the clipped weight only
 * when the whole layer's output error drops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/quantize.h"
#include "../backend/cpu/cpu_ops.h"
#include "quant_internal.h"

#define GRID 20 /* exponents 0, 1/20, ..., 1 */

/* Dequantize packed int4 groups back to fp32 [out][in]. */
static void dequant4(const uint8_t *p, const float *scale, int64_t out, int64_t in, int group,
                     float *w)
{
    llm_convert(w, LLM_DTYPE_F32, p, LLM_DTYPE_I4, (size_t)(out * in));
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) w[o * in + i] *= scale[(i / group) * out + o];
}

#define CLIP_GRID 10 /* shrink factors 1, 0.95, ..., 0.5 */

/* The scale of a group whose max |w| is m under shrink c (c = 1: exactly
 * llm_q_int4_group's). */
static float clip_scale(float m, float c)
{
    return m > 0.f ? m * c / 7.0f : 1.0f;
}

static float q4(float v, float s)
{
    float q = rintf(v / s);
    return q < -8.f ? -8.f : q > 7.f ? 7.f : q;
}

int llm_q_int4_clip(const float *w, int64_t out, int64_t in, int group, const float *x, int rows,
                    uint8_t *packed, float *scale, float *shrink)
{
    const int64_t ng = in / group;
    float *m = malloc(sizeof(float) * (size_t)(ng * out)), *c = malloc(sizeof(float) * (size_t)out);
    float *xg = malloc(sizeof(float) * (size_t)rows * (size_t)group);
    float *d = malloc(sizeof(float) * (size_t)out * (size_t)group);
    float *yg = malloc(sizeof(float) * (size_t)rows * (size_t)out);
    double *best = malloc(sizeof(double) * (size_t)out);
    int rc = m && c && xg && d && yg && best ? 0
                                             : llm_err_set(LLM_ENOMEM, "clip search: out of memory");
    if (!rc) memset(packed, 0, (size_t)(out * in / 2));
    for (int64_t g = 0; !rc && g < ng; g++) {
        const int64_t i0 = g * group;
        for (int r = 0; r < rows; r++)
            memcpy(xg + (int64_t)r * group, x + (int64_t)r * in + i0, sizeof(float) * (size_t)group);
        for (int64_t o = 0; o < out; o++) {
            float mx = 0.f;
            for (int i = 0; i < group; i++) mx = fmaxf(mx, fabsf(w[o * in + i0 + i]));
            m[g * out + o] = mx;
            best[o] = INFINITY;
            c[o] = 1.0f;
        }
        for (int k = 0; k <= CLIP_GRID; k++) {
            float ck = (float)(2 * CLIP_GRID - k) / (2 * CLIP_GRID);
            /* d[o] = w_g - dequant(q_g) under this shrink; y = x_g . d^T per row and output */
            for (int64_t o = 0; o < out; o++) {
                float s = clip_scale(m[g * out + o], ck);
                for (int i = 0; i < group; i++) {
                    float v = w[o * in + i0 + i];
                    d[o * group + i] = v - s * q4(v, s);
                }
            }
            if ((rc = llm_cpu_linear(yg, xg, rows, group, d, LLM_DTYPE_F32, out, NULL, 0))) break;
            for (int64_t o = 0; o < out; o++) {
                double e = 0;
                for (int r = 0; r < rows; r++) {
                    double v = yg[(int64_t)r * out + o];
                    e += v * v;
                }
                if (e < best[o]) { /* strict: ties keep the larger shrink */
                    best[o] = e;
                    c[o] = ck;
                }
            }
        }
        for (int64_t o = 0; !rc && o < out; o++) {
            float s = clip_scale(m[g * out + o], c[o]);
            scale[g * out + o] = s;
            if (shrink) shrink[g * out + o] = c[o];
            for (int i = 0; i < group; i++) {
                int v = (int)q4(w[o * in + i0 + i], s);
                int64_t e = o * in + i0 + i;
                packed[e / 2] |= (uint8_t)((v & 0xf) << (e % 2 ? 4 : 0));
            }
        }
    }
    free(m);
    free(c);
    free(xg);
    free(d);
    free(yg);
    free(best);
    return rc;
}

int llm_q_awq(const float *w, int64_t out, int64_t in, int group, const double *chan_mean,
              const float *x, int rows, int clip, uint8_t *packed, float *scale, float *pre,
              double *best_a, int *clipped, double *err)
{
    const size_t n = (size_t)(out * in);
    float *ws = malloc(sizeof(float) * n), *wd = malloc(sizeof(float) * n);
    float *xs = malloc(sizeof(float) * (size_t)rows * (size_t)in);
    float *ref = malloc(sizeof(float) * (size_t)rows * (size_t)out);
    float *y = malloc(sizeof(float) * (size_t)rows * (size_t)out);
    float *s = malloc(sizeof(float) * (size_t)in), *sc = malloc(sizeof(float) * (size_t)(in / group * out));
    float *sbest = malloc(sizeof(float) * (size_t)in);
    uint8_t *q = malloc(n / 2);
    int rc = ws && wd && xs && ref && y && s && sc && sbest && q
                 ? 0
                 : llm_err_set(LLM_ENOMEM, "awq: out of memory");
    if (!rc) rc = llm_cpu_linear(ref, x, rows, in, w, LLM_DTYPE_F32, out, NULL, 0);
    double best = INFINITY, base = 0;
    *best_a = 0;
    for (int g = 0; !rc && g <= GRID; g++) {
        double a = (double)g / GRID;
        /* s_j = mean|x_j|^a, normalised to max * min = 1 */
        double mx = 0, mn = INFINITY;
        for (int64_t j = 0; j < in; j++) {
            double v = chan_mean[j] > 1e-12 ? pow(chan_mean[j], a) : 1.0;
            s[j] = (float)v;
            mx = fmax(mx, v);
            mn = fmin(mn, v);
        }
        float norm = (float)(1.0 / sqrt(mx * mn));
        for (int64_t j = 0; j < in; j++) s[j] = fminf(fmaxf(s[j] * norm, 1e-4f), 1e4f);
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) ws[o * in + j] = w[o * in + j] * s[j];
        llm_q_int4_group(ws, out, in, group, q, sc);
        dequant4(q, sc, out, in, group, wd);
        for (int r = 0; r < rows; r++)
            for (int64_t j = 0; j < in; j++) xs[(int64_t)r * in + j] = x[(int64_t)r * in + j] / s[j];
        if ((rc = llm_cpu_linear(y, xs, rows, in, wd, LLM_DTYPE_F32, out, NULL, 0))) break;
        double e = q_sq_err(y, ref, (size_t)rows * (size_t)out);
        if (g == 0) base = e;
        if (e < best) {
            best = e;
            *best_a = a;
            memcpy(packed, q, n / 2);
            memcpy(scale, sc, sizeof(float) * (size_t)(in / group * out));
            for (int64_t j = 0; j < in; j++) pre[j] = 1.0f / s[j];
            memcpy(sbest, s, sizeof(float) * (size_t)in);
        }
    }
    if (clipped) *clipped = 0;
    if (!rc && clip) {
        /* the winner's scaled weight and rows, clipped group by group */
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) ws[o * in + j] = w[o * in + j] * sbest[j];
        for (int r = 0; r < rows; r++)
            for (int64_t j = 0; j < in; j++)
                xs[(int64_t)r * in + j] = x[(int64_t)r * in + j] / sbest[j];
        rc = llm_q_int4_clip(ws, out, in, group, xs, rows, q, sc, NULL);
        if (!rc) dequant4(q, sc, out, in, group, wd);
        if (!rc) rc = llm_cpu_linear(y, xs, rows, in, wd, LLM_DTYPE_F32, out, NULL, 0);
        double e = rc ? INFINITY : q_sq_err(y, ref, (size_t)rows * (size_t)out);
        if (e < best) {
            best = e;
            memcpy(packed, q, n / 2);
            memcpy(scale, sc, sizeof(float) * (size_t)(in / group * out));
            if (clipped) *clipped = 1;
        }
    }
    if (!rc) *err = base > 0 ? best / base : 1.0;
    free(ws);
    free(wd);
    free(xs);
    free(ref);
    free(y);
    free(s);
    free(sc);
    free(sbest);
    free(q);
    return rc;
}
