/* smooth.c - SmoothQuant's migration strength searched per layer
 * (llm-quantize -m int8-sq --alpha auto).  One alpha for every layer is a
 * compromise: a layer whose input has strong outlier channels wants more of
 * them moved into the weight than one whose weight already has outlier
 * columns.  llm/quantize.h states the search.
 *
 * Design: each candidate is measured by running the quantized weight
 * through the CPU backend's own product for a W8A8 weight
 * (llm_cpu_linear_w: divide by the smoother, round the activations to int8
 * per token or under the static scale, dequantize, multiply), so the error
 * that picks alpha is the error the reference would make at run time on
 * those rows, not a model of it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/quantize.h"
#include "llm/weight.h"
#include "../backend/cpu/cpu_ops.h"
#include "quant_internal.h"

#define GRID 20 /* alphas 0, 1/20, ..., 1 */

int llm_q_smooth_search(const float *x_amax, const float *w, int64_t out, int64_t in,
                        const float *x, int rows, int act_static, float *s, double *best_alpha,
                        double *err)
{
    const size_t n = (size_t)(out * in), ny = (size_t)rows * (size_t)out;
    float *ws = malloc(sizeof(float) * n), *sm = malloc(sizeof(float) * (size_t)in);
    float *sc = malloc(sizeof(float) * (size_t)out);
    float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
    int8_t *q = malloc(n);
    int rc = ws && sm && sc && ref && y && q ? 0
                                            : llm_err_set(LLM_ENOMEM, "alpha search: out of memory");
    if (!rc) rc = llm_cpu_linear(ref, x, rows, in, w, LLM_DTYPE_F32, out, NULL, 0);
    /* the weight as the artifact holds it: int8 per channel, smoother, int8 activations */
    float as = 0.f;
    struct llm_weight lw;
    memset(&lw, 0, sizeof lw);
    lw.present = 1;
    snprintf(lw.name, sizeof lw.name, "alpha search");
    lw.fmt = LLM_WFMT_INT8;
    lw.dtype = LLM_DTYPE_I8;
    lw.ndim = 2;
    lw.shape[0] = out;
    lw.shape[1] = in;
    lw.data = q;
    lw.nbytes = n;
    lw.scale_kind = LLM_WSCALE_CHANNEL;
    lw.act = LLM_WACT_INT8;
    lw.scale = (struct llm_tensor){.dtype = LLM_DTYPE_F32, .ndim = 1, .shape = {out},
                                   .nbytes = sizeof(float) * (uint64_t)out, .data = sc};
    lw.smoother = (struct llm_tensor){.dtype = LLM_DTYPE_F32, .ndim = 1, .shape = {in},
                                      .nbytes = sizeof(float) * (uint64_t)in, .data = sm};
    if (act_static)
        lw.act_scale = (struct llm_tensor){.dtype = LLM_DTYPE_F32, .ndim = 1, .shape = {1},
                                           .nbytes = sizeof(float), .data = &as};
    double best = INFINITY, at_half = 0;
    *best_alpha = 0;
    for (int g = 0; !rc && g <= GRID; g++) {
        double a = (double)g / GRID;
        llm_q_smooth(x_amax, w, out, in, a, sm);
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) ws[o * in + j] = w[o * in + j] * sm[j];
        llm_q_int8_channel(ws, out, in, q, sc);
        /* the static scale exactly as llm-quantize computes the one it stores */
        float am = 0.f;
        for (int64_t j = 0; j < in; j++) am = fmaxf(am, x_amax[j] / sm[j]);
        as = am > 0.f ? am / 127.0f : 1.0f;
        if ((rc = llm_cpu_linear_w(y, x, rows, &lw))) break;
        double e = q_sq_err(y, ref, ny);
        if (g == GRID / 2) at_half = e;
        if (e < best) {
            best = e;
            *best_alpha = a;
            memcpy(s, sm, sizeof(float) * (size_t)in);
        }
    }
    if (!rc) *err = at_half > 0 ? best / at_half : 1.0;
    free(ws);
    free(sm);
    free(sc);
    free(ref);
    free(y);
    free(q);
    return rc;
}
