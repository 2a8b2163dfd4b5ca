/* quantize.h - weight quantizers (round to nearest) and the accuracy of a
 * quantized model against its parent; llm-quantize is built on these.
 *
 * Every quantizer is a pure function of the fp32 weight, written so that
 * the dequantization of formats/artifact.md ("Quantized weights") gives
 * back the weight up to its rounding:
 *   int8 per channel   scale[o] = max_i |w[o][i]| / 127, q = rint(w / scale) in [-127, 127]
 *   int4 per group     scale[g][o] = max over the group |w| / 7, q = rint(w / scale) in
 *                      [-8, 7], packed two per byte (element 2k in the low nibble)
 *   fp8 per tensor     scale = max |w| / 448, q = e4m3(w / scale) (round to nearest even,
 *                      saturating)
 *   fp8 per channel    the same with one scale per output row
 * rint rounds half to even (the current rounding mode).  A group or row of
 * zeros gets scale 1 (its q are 0), so no scale is ever 0 or NaN.
 */
#ifndef LLM_QUANTIZE_H
#define LLM_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

void llm_q_int8_channel(const float *w, int64_t out, int64_t in, int8_t *q, float *scale);
/* in % group == 0 and in even; packed [out][in / 2]; scale [in / group][out]. */
void llm_q_int4_group(const float *w, int64_t out, int64_t in, int group, uint8_t *packed,
                      float *scale);
void llm_q_fp8_tensor(const float *w, size_t n, uint8_t *q, float *scale);
void llm_q_fp8_channel(const float *w, int64_t out, int64_t in, uint8_t *q, float *scale);
/* SmoothQuant's factors for a weight [out][in] whose input has channel
 * maxima x_amax[in]: s[j] = x_amax[j]^alpha / max_o |w[o][j]|^(1 - alpha),
 * 1 where either maximum is 0, clamped to [1e-5, 1e5].  The input is then
 * divided by s and the weight's column j multiplied by it (the product is
 * unchanged), which moves the activations' outliers into the weight. */
void llm_q_smooth(const float *x_amax, const float *w, int64_t out, int64_t in, double alpha,
                  float *s);
/* The same from the weight's column maxima w_amax[in] (s may be w_amax):
 * for products that read one input and share one s, w_amax is the maximum
 * over all their weights, max_o |w[o][j]| of each max-accumulated into it
 * by llm_q_col_amax (which does not reset w_amax). */
void llm_q_smooth_amax(const float *x_amax, const float *w_amax, int64_t in, double alpha,
                       float *s);
void llm_q_col_amax(const float *w, int64_t out, int64_t in, float *w_amax);
/* The factors s[n] folded into the norm whose output is the products'
 * input, in place of a smoother tensor: the norm scales by (offset + w),
 * so w[j] becomes (offset + w[j]) / s[j] - offset, and its bias b[j] (may
 * be NULL) b[j] / s[j] - the norm's output is then the input divided by s.
 * Computed in double, rounded once to float. */
void llm_q_fold_norm(float *w, float *b, const float *s, int64_t n, double offset);
/* SmoothQuant's migration strength searched for one weight [out][in]
 * (--alpha auto): for alpha in {0, 0.05, ..., 1}, s = llm_q_smooth(x_amax,
 * w, alpha), the weight's columns multiplied by s and quantized int8 per
 * channel (llm_q_int8_channel), and the output error on the sample rows
 * x [rows][in] measured as the CPU backend would compute the product:
 *   sum over rows and outputs of (x W^T - Q8(x / s) Q(W s)^T)^2
 * where Q8 rounds the smoothed input to int8 per token (act_static 0) or
 * under the one static scale max_j (x_amax[j] / s[j]) / 127 (act_static 1,
 * the scale llm-quantize stores: from the calibration maxima, not only the
 * sample).  The least error wins (ties to the smaller alpha).  Writes s[in]
 * for the winner, *best_alpha, and *err: its error relative to alpha 0.5's
 * (the default; so never above 1), 1 when both are 0. */
int llm_q_smooth_search(const float *x_amax, const float *w, int64_t out, int64_t in,
                        const float *x, int rows, int act_static, float *s, double *best_alpha,
                        double *err);

/* ---- calibration: what the linear layers' inputs look like ------------------- */

struct llm_q_stat {
    char name[LLM_NAME_MAX]; /* the linear weight whose input this is */
    int64_t in;              /* input width */
    float amax;              /* max |x| over every token and channel */
    float *chan;             /* [in]: max |x| per input channel */
    double *chan_sum;        /* [in]: sum of |x| per input channel (mean = / rows) */
    long rows;               /* tokens seen */
    float *sample;           /* [n_sample][in]: input rows kept (keep_rows > 0), or NULL */
    int n_sample;
};
struct llm_q_stats {
    struct llm_q_stat *stat;
    int n, cap;
    int keep_rows; /* rows of each input to keep (a deterministic reservoir sample) */
    uint64_t rng;
    int n_layers;
    float *kv_amax; /* [n_layers][2]: max |K|, max |V| as they go into the cache */
    struct llm_stat_sink sink; /* what the backend reduces into (llm/backend.h) */
    char backend[8];           /* the backend that ran: "cpu" or "cuda" */
    char device[128];          /* its device_name */
    int dtype;                 /* its compute dtype (the CPU's is f32) */
};
/* Run the model over `tokens` (n, windows of `window`) on a backend made by
 * `backend` ("cpu", "cuda", or "auto": CUDA when a device is present) with
 * opts o (o->compute_dtype: the CUDA backend's; f32 is what the CPU
 * reference computes in) and record, for every 2-D linear weight, the
 * statistics of its input and (keep_rows > 0) a uniform sample of keep_rows
 * of its input rows; and per layer the largest |K| and |V| stored in the KV
 * cache.  The statistics are reduced by the backend where the activations
 * are (llm/backend.h, struct llm_stat_sink): memory is one window's
 * activations plus the statistics, never all the activations.  The kept
 * rows depend only on the row counts, so every backend keeps the same rows.
 * progress (may be NULL) is called after each window. */
int llm_q_calibrate(const struct llm_model *m, const int32_t *tokens, long n, int window,
                    int keep_rows, const char *backend, const struct llm_backend_opts *o,
                    void (*progress)(void *ctx, long done, long total), void *ctx,
                    struct llm_q_stats *s);
const struct llm_q_stat *llm_q_stats_find(const struct llm_q_stats *s, const char *weight_name);
void llm_q_stats_free(struct llm_q_stats *s);

/* int4 groups of `group` (the format of llm_q_int4_group) with AWQ's
 * clipping search: for each output row o and group g, over shrink factors
 * c in {1, 0.95, ..., 0.5} the group is quantized under scale
 * c * max|w| / 7 (q = rint(w / scale) clamped to [-8, 7], so values past
 * the clipped maximum saturate) and the error of that group's contribution
 * to output o on the rows x [rows][in] measured,
 *   sum over rows r of (sum over i in g of x[r][i] (w[o][i] - scale q[o][i]))^2,
 * and the least wins (ties to the larger c; c = 1 is llm_q_int4_group).
 * Writes packed [out][in / 2], scale [in / group][out] and, when shrink
 * is not NULL, the chosen c per group [in / group][out]. */
int llm_q_int4_clip(const float *w, int64_t out, int64_t in, int group, const float *x, int rows,
                    uint8_t *packed, float *scale, float *shrink);

/* AWQ (activation-aware weight quantization) for one weight [out][in] to
 * int4 groups of `group`: over a grid of exponents a in {0, 0.05, ..., 1},
 * input channel j is scaled by s_j = mean|x_j|^a (normalised so that
 * max(s) * min(s) = 1), the weight's column multiplied by s_j and quantized
 * (llm_q_int4_group), and the output error on the sample rows x [rows][in]
 * (sum over rows and outputs of (x W^T - (x / s) Q^T)^2) measured; the best
 * exponent wins (a = 0 is plain round to nearest).  With clip, the scaled
 * weight of the winner is then quantized again by llm_q_int4_clip on the
 * scaled rows x / s, and that result is kept when its output error (the
 * whole layer's, as above) is below the unclipped one's - the clip search
 * weighs each group alone, so this check keeps it from ever losing.
 * Writes the packed weight, its scales [in / group][out] and pre[in] = 1 / s
 * (the input is multiplied by it at run time); *best_a, *clipped (1 when
 * the clipped weight was kept; may be NULL) and *err (the final output error
 * relative to the plain one at a = 0, 1 when equal) say what was found. */
int llm_q_awq(const float *w, int64_t out, int64_t in, int group, const double *chan_mean,
              const float *x, int rows, int clip, uint8_t *packed, float *scale, float *pre,
              double *best_a, int *clipped, double *err);

/* ---- accuracy of a quantized model against its parent -------------------------- */

struct llm_q_report {
    long tokens;          /* next-token predictions compared */
    double kld_mean;      /* mean KL(parent || quantized) of the next-token distributions */
    double kld_p99;       /* its 99th percentile */
    double kld_max;
    double top1;          /* share of positions where both pick the same top token */
    double ppl_parent;    /* perplexity of the text under each model */
    double ppl_quant;
};

/* Both models over the token windows of `tokens` (n of them; windows of
 * `window` tokens, the last shorter) on backends made by `backend` ("cpu",
 * "cuda", "auto") with opts o; every position but a window's last predicts
 * the next token.  progress (may be NULL) is called after each window. */
int llm_q_evaluate(const struct llm_model *parent, const struct llm_model *quant,
                   const int32_t *tokens, long n, int window, const char *backend,
                   const struct llm_backend_opts *o,
                   void (*progress)(void *ctx, long done, long total), void *ctx,
                   struct llm_q_report *r);

#ifdef __cplusplus
}
#endif
#endif
