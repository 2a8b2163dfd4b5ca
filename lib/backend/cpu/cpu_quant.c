/* cpu_quant.c - y = x W^T for every weight format of llm/weight.h, exactly as
 * formats/artifact.md defines it: the reference the GPU kernels of
 * quantized formats are checked against.
 *
 * Design: a quantized weight is dequantized a block of rows at a time into
 * fp32 (scale * q, or scale[g][o] * (q - zero[g][o]) for int4 groups) and
 * the block goes through the dense kernel (llm_cpu_linear), so the
 * arithmetic after dequantization is the dense path's own.  Activations
 * are treated first, as the format says: multiplied by AWQ's pre-quant
 * scale, divided by SmoothQuant's smoother, then (llm_weight.act) rounded
 * to e4m3 (saturating at 448) or to int8 (clamped to +-127) under a scale -
 * the static one when the artifact has it, else each row's own max|x| /
 * 448 or / 127 (dynamic per token) - and taken back to fp32, so the
 * product of two quantized numbers is what the reference multiplies.  A
 * weight with an input permutation (GPTQ act-order, llm_weight.perm) reads
 * x[perm] first: the gather comes before everything else.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/dtype.h"
#include "llm/err.h"
#include "llm/weight.h"
#include "cpu_ops.h"

#define QROWS 256 /* rows of W dequantized per block */

/* Values of a side tensor as fp32 (NULL with an error when unreadable). */
static float *side_f32(const struct llm_tensor *t, uint64_t want, const char *what,
                       const char *wname)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    if (!t->data || n < want) {
        llm_err_set(LLM_ESHAPE, "'%s': %s has %llu values, expected %llu", wname, what,
                    (unsigned long long)n, (unsigned long long)want);
        return NULL;
    }
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) {
        llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for '%s' %s", wname, what);
        return NULL;
    }
    if (llm_convert(f, LLM_DTYPE_F32, t->data, t->dtype, (size_t)n)) {
        free(f);
        return NULL;
    }
    return f;
}

/* One value rounded to the 8-bit grid (x already divided by its scale). */
static float round_fp8(float x)
{
    return llm_e4m3_to_f32(llm_f32_to_e4m3(x));
}

static float round_int8(float x)
{
    float q = rintf(x);
    return q < -127.f ? -127.f : q > 127.f ? 127.f : q;
}

/* Round every value of x[n][in] under a scale (static s, or each row's
 * max|x| / top when s <= 0) with round, and back. */
static void quant_act(float *x, int n, int64_t in, float s, float top, float (*round)(float))
{
    for (int t = 0; t < n; t++) {
        float *r = x + (int64_t)t * in, sc = s;
        if (sc <= 0.f) {
            float mx = 0.f;
            for (int64_t i = 0; i < in; i++) mx = fmaxf(mx, fabsf(r[i]));
            sc = mx > 0.f ? mx / top : 1.0f;
        }
        for (int64_t i = 0; i < in; i++) r[i] = round(r[i] / sc) * sc;
    }
}

void llm_cpu_quant_act_fp8(float *x, int n, int64_t in, float s)
{
    quant_act(x, n, in, s, 448.0f, round_fp8);
}

void llm_cpu_quant_act_int8(float *x, int n, int64_t in, float s)
{
    quant_act(x, n, in, s, 127.0f, round_int8);
}

/* Rows [r0, r0 + nr) of w dequantized into dst[nr][in]. */
static int dequant_rows(const struct llm_weight *w, const float *scale, const float *zero,
                        int64_t r0, int64_t nr, float *dst)
{
    const int64_t out = w->shape[0], in = w->shape[1];
    uint64_t off;
    llm_dtype_nbytes(w->dtype, (uint64_t)(r0 * in), &off);
    int rc = llm_convert(dst, LLM_DTYPE_F32, (const char *)w->data + off, w->dtype,
                         (size_t)(nr * in));
    if (rc) return rc;
    for (int64_t r = 0; r < nr; r++) {
        float *row = dst + r * in;
        int64_t o = r0 + r;
        if (w->fmt == LLM_WFMT_INT4) {
            int64_t gs = w->group_size;
            for (int64_t i = 0; i < in; i++) {
                int64_t g = i / gs;
                row[i] = scale[g * out + o] * (row[i] - (zero ? zero[g * out + o] : 0.f));
            }
        } else {
            float s = w->scale_kind == LLM_WSCALE_CHANNEL ? scale[o] : scale[0];
            for (int64_t i = 0; i < in; i++) row[i] *= s;
        }
    }
    return 0;
}

int llm_cpu_linear_w(float *y, const float *x, int n, const struct llm_weight *w)
{
    const int64_t out = w->shape[0], in = w->shape[1];
    if (w->fmt == LLM_WFMT_DENSE)
        return llm_cpu_linear(y, x, n, in, w->data, w->dtype, out, w->bias, w->bias_dtype);
    if (n <= 0 || out <= 0) return 0;
    if (w->fmt == LLM_WFMT_INT4 && (w->group_size <= 0 || in % w->group_size))
        return llm_err_set(LLM_ESHAPE, "'%s': group size %d does not divide %lld input channels",
                           w->name, w->group_size, (long long)in);
    int64_t ns = w->fmt == LLM_WFMT_INT4 ? (in / w->group_size) * out
                 : w->scale_kind == LLM_WSCALE_CHANNEL ? out
                                                       : 1;
    float *scale = NULL, *zero = NULL, *pre = NULL, *as = NULL, *xq = NULL, *wb = NULL,
          *yb = NULL, *bias = NULL, *sm = NULL;
    int rc = 0;
    int64_t br = out < QROWS ? out : QROWS;
    if (!(scale = side_f32(&w->scale, (uint64_t)ns, "scale", w->name)) ||
        (w->zero.data && !(zero = side_f32(&w->zero, (uint64_t)ns, "zero", w->name))) ||
        (w->prequant.data && !(pre = side_f32(&w->prequant, (uint64_t)in, "pre-quant scale",
                                              w->name))) ||
        (w->act_scale.data && !(as = side_f32(&w->act_scale, 1, "activation scale", w->name))) ||
        (w->smoother.data && !(sm = side_f32(&w->smoother, (uint64_t)in, "smoother", w->name)))) {
        rc = llm_errcode() ? llm_errcode() : LLM_ENOMEM;
        goto out;
    }
    xq = malloc(sizeof(float) * (size_t)n * (size_t)in);
    wb = malloc(sizeof(float) * (size_t)br * (size_t)in);
    yb = malloc(sizeof(float) * (size_t)n * (size_t)br);
    if (!xq || !wb || !yb) {
        rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory for '%s'", w->name);
        goto out;
    }
    if (w->perm.data) { /* y = W . x[perm]: column j of W reads input perm[j] */
        if (w->perm.dtype != LLM_DTYPE_I32 || w->perm.ndim != 1 || w->perm.shape[0] != in) {
            rc = llm_err_set(LLM_ESHAPE, "'%s': input permutation is not I32 [%lld]", w->name,
                             (long long)in);
            goto out;
        }
        for (int64_t j = 0; j < in; j++) {
            int32_t p;
            memcpy(&p, (const char *)w->perm.data + 4 * j, 4);
            if (p < 0 || p >= in) {
                rc = llm_err_set(LLM_ERANGE, "'%s': input permutation entry %lld is %d, outside "
                                 "[0, %lld)", w->name, (long long)j, (int)p, (long long)in);
                goto out;
            }
            for (int t = 0; t < n; t++) xq[(int64_t)t * in + j] = x[(int64_t)t * in + p];
        }
    } else {
        memcpy(xq, x, sizeof(float) * (size_t)n * (size_t)in);
    }
    if (pre)
        for (int t = 0; t < n; t++)
            for (int64_t i = 0; i < in; i++) xq[(int64_t)t * in + i] *= pre[i];
    if (sm)
        for (int t = 0; t < n; t++)
            for (int64_t i = 0; i < in; i++) xq[(int64_t)t * in + i] /= sm[i];
    if (w->act == LLM_WACT_FP8) llm_cpu_quant_act_fp8(xq, n, in, as ? as[0] : 0.f);
    if (w->act == LLM_WACT_INT8) llm_cpu_quant_act_int8(xq, n, in, as ? as[0] : 0.f);
    for (int64_t r0 = 0; r0 < out && !rc; r0 += br) {
        int64_t nr = out - r0 < br ? out - r0 : br;
        if ((rc = dequant_rows(w, scale, zero, r0, nr, wb))) break;
        if ((rc = llm_cpu_linear(yb, xq, n, in, wb, LLM_DTYPE_F32, nr, NULL, 0))) break;
        for (int t = 0; t < n; t++)
            memcpy(y + (int64_t)t * out + r0, yb + (int64_t)t * nr, sizeof(float) * (size_t)nr);
    }
    if (!rc && w->bias) {
        if (!(bias = malloc(sizeof(float) * (size_t)out))) {
            rc = llm_err_set(LLM_ENOMEM, "cpu backend: out of memory");
            goto out;
        }
        llm_cpu_to_f32(bias, w->bias, w->bias_dtype, 0, out);
        for (int t = 0; t < n; t++)
            for (int64_t o = 0; o < out; o++) y[(int64_t)t * out + o] += bias[o];
    }
out:
    free(scale);
    free(zero);
    free(pre);
    free(as);
    free(xq);
    free(wb);
    free(yb);
    free(bias);
    free(sm);
    return rc;
}
