/* awq.c - activation-aware weight quantization (AWQ; Lin et al., 2023) for
 * int4 groups: the channels whose inputs are large matter most, so they are
 * scaled up in the weight before rounding (and the input down by as much),
 * which gives them more of the int4 grid.  llm/quantize.h states the
 * search; the error is measured with the CPU backend's own linear kernel.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/quantize.h"
#include "../backend/cpu/cpu_ops.h"

#define GRID 20 /* exponents 0, 1/20, ..., 1 */

/* Dequantize packed int4 groups back to fp32 [out][in]. */
static void dequant4(const uint8_t *p, const float *scale, int64_t out, int64_t in, int group,
                     float *w)
{
    llm_convert(w, LLM_DTYPE_F32, p, LLM_DTYPE_I4, (size_t)(out * in));
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) w[o * in + i] *= scale[(i / group) * out + o];
}

int llm_q_awq(const float *w, int64_t out, int64_t in, int group, const double *chan_mean,
              const float *x, int rows, uint8_t *packed, float *scale, float *pre, double *best_a,
              double *err)
{
    const size_t n = (size_t)(out * in);
    float *ws = malloc(sizeof(float) * n), *wd = malloc(sizeof(float) * n);
    float *xs = malloc(sizeof(float) * (size_t)rows * (size_t)in);
    float *ref = malloc(sizeof(float) * (size_t)rows * (size_t)out);
    float *y = malloc(sizeof(float) * (size_t)rows * (size_t)out);
    float *s = malloc(sizeof(float) * (size_t)in), *sc = malloc(sizeof(float) * (size_t)(in / group * out));
    uint8_t *q = malloc(n / 2);
    int rc = ws && wd && xs && ref && y && s && sc && q ? 0 : llm_err_set(LLM_ENOMEM, "awq: out of memory");
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
        double e = 0;
        for (size_t k = 0; k < (size_t)rows * (size_t)out; k++) {
            double d = (double)y[k] - ref[k];
            e += d * d;
        }
        if (g == 0) base = e;
        if (e < best) {
            best = e;
            *best_a = a;
            memcpy(packed, q, n / 2);
            memcpy(scale, sc, sizeof(float) * (size_t)(in / group * out));
            for (int64_t j = 0; j < in; j++) pre[j] = 1.0f / s[j];
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
    free(q);
    return rc;
}
