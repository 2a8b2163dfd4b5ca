/* cpu_ops.c - the reference ops (contracts in cpu_ops.h), all but linear.
 *
 * Written for exactness first: where HF rounds to fp32 this code rounds at
 * the same place, and products are never fused into multiply-adds here
 * (the pragma below), so the rotary embedding and the norms reproduce HF's
 * fp32 arithmetic step by step.  Transcendentals are evaluated in double
 * and rounded once, which is what a correctly rounded fp32 library returns.
 * The matrix product, where speed matters and HF's own summation order is
 * unknowable anyway, lives in cpu_gemm.c.
 */
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "cpu_cvt.h"
#include "cpu_ops.h"

#define MAX_HEAD_DIM 1024

/* Work (elements touched) below which an op runs on the calling thread:
 * a parallel region costs microseconds, far more on a loaded machine. */
#define BIG(work) ((work) >= (1 << 15))

/* ---- element access ------------------------------------------------------ */

int llm_cpu_dtype_ok(int dt)
{
    return dt == LLM_DTYPE_F32 || dt == LLM_DTYPE_F16 || dt == LLM_DTYPE_BF16;
}

void llm_cpu_to_f32(float *dst, const void *src, int dt, int64_t off, int64_t n)
{
    if (dt == LLM_DTYPE_F32) {
        memcpy(dst, (const float *)src + off, (size_t)n * sizeof(float));
    } else if (dt == LLM_DTYPE_BF16) {
        const uint16_t *s = (const uint16_t *)src + off;
        for (int64_t i = 0; i < n; i++)
            dst[i] = llm_cpu_bf16_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)src + off;
        for (int64_t i = 0; i < n; i++)
            dst[i] = llm_cpu_f16_f32(s[i]);
    }
}

void llm_cpu_from_f32(void *dst, int dt, int64_t off, const float *src, int64_t n)
{
    if (dt == LLM_DTYPE_F32) {
        memcpy((float *)dst + off, src, (size_t)n * sizeof(float));
    } else if (dt == LLM_DTYPE_BF16) {
        uint16_t *d = (uint16_t *)dst + off;
        for (int64_t i = 0; i < n; i++)
            d[i] = llm_cpu_f32_bf16(src[i]);
    } else {
        uint16_t *d = (uint16_t *)dst + off;
        for (int64_t i = 0; i < n; i++)
            d[i] = llm_cpu_f32_f16(src[i]);
    }
}

/* One element of a weight vector as fp32. */
static inline float wget(const void *w, int dt, int64_t i)
{
    if (dt == LLM_DTYPE_F32) return ((const float *)w)[i];
    if (dt == LLM_DTYPE_BF16) return llm_cpu_bf16_f32(((const uint16_t *)w)[i]);
    return llm_cpu_f16_f32(((const uint16_t *)w)[i]);
}

/* ---- embedding ----------------------------------------------------------- */

int llm_cpu_embed(float *out, const int32_t *tokens, int n, const void *table, int dt,
                  int64_t vocab, int64_t hidden, float scale)
{
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return llm_err_set(LLM_ERANGE,
                               "token id %d at row %d is outside the vocabulary [0, %lld)",
                               (int)tokens[i], i, (long long)vocab);
#pragma omp parallel for schedule(static) if (BIG((int64_t)n * hidden))
    for (int i = 0; i < n; i++) {
        float *o = out + (int64_t)i * hidden;
        llm_cpu_to_f32(o, table, dt, (int64_t)tokens[i] * hidden, hidden);
        if (scale != 1.0f)
            for (int64_t k = 0; k < hidden; k++)
                o[k] *= scale;
    }
    return 0;
}

int llm_cpu_add_rows(float *out, const int32_t *pos, int n, const void *table, int dt,
                     int64_t max_pos, int64_t hidden)
{
    for (int i = 0; i < n; i++)
        if (pos[i] < 0 || pos[i] >= max_pos)
            return llm_err_set(LLM_ERANGE, "position %d at row %d is outside [0, %lld)",
                               (int)pos[i], i, (long long)max_pos);
#pragma omp parallel for schedule(static) if (BIG((int64_t)n * hidden))
    for (int i = 0; i < n; i++) {
        float *o = out + (int64_t)i * hidden;
        for (int64_t k = 0; k < hidden; k++)
            o[k] += wget(table, dt, (int64_t)pos[i] * hidden + k);
    }
    return 0;
}

/* ---- norms --------------------------------------------------------------- */

/* r = residual += x (or x), as the row the norm reads. */
static const float *norm_input(const float *x, float *residual, int64_t dim)
{
    if (!residual) return x;
    for (int64_t k = 0; k < dim; k++)
        residual[k] += x[k];
    return residual;
}

void llm_cpu_rmsnorm(float *out, const float *x, float *residual, const void *w, int wdt, int n,
                     int64_t dim, float eps)
{
    llm_cpu_rmsnorm_off(out, x, residual, w, wdt, n, dim, eps, 0.0f);
}

void llm_cpu_rmsnorm_off(float *out, const float *x, float *residual, const void *w, int wdt,
                         int n, int64_t dim, float eps, float offset)
{
#pragma omp parallel for schedule(static) if (BIG((int64_t)n * dim))
    for (int i = 0; i < n; i++) {
        const float *r =
            norm_input(x + (int64_t)i * dim, residual ? residual + (int64_t)i * dim : NULL, dim);
        float *o = out + (int64_t)i * dim;
        double ss = 0.0;
        for (int64_t k = 0; k < dim; k++)
            ss += (double)r[k] * r[k];
        /* HF: variance (fp32) + eps, rsqrt in fp32 */
        float var = (float)(ss / (double)dim);
        float rs = (float)(1.0 / sqrt((double)(var + eps)));
        for (int64_t k = 0; k < dim; k++) {
            float v = r[k] * rs;
            o[k] = w ? (offset + wget(w, wdt, k)) * v : v;
        }
    }
}

void llm_cpu_layernorm(float *out, const float *x, float *residual, const void *w, int wdt,
                       const void *b, int bdt, int n, int64_t dim, float eps)
{
    llm_cpu_layernorm_off(out, x, residual, w, wdt, b, bdt, n, dim, eps, 0.0f);
}

void llm_cpu_layernorm_off(float *out, const float *x, float *residual, const void *w, int wdt,
                           const void *b, int bdt, int n, int64_t dim, float eps, float off)
{
#pragma omp parallel for schedule(static) if (BIG((int64_t)n * dim))
    for (int i = 0; i < n; i++) {
        const float *r =
            norm_input(x + (int64_t)i * dim, residual ? residual + (int64_t)i * dim : NULL, dim);
        float *o = out + (int64_t)i * dim;
        double s = 0.0;
        for (int64_t k = 0; k < dim; k++)
            s += r[k];
        double mean = s / (double)dim, ss = 0.0;
        for (int64_t k = 0; k < dim; k++)
            ss += ((double)r[k] - mean) * ((double)r[k] - mean);
        float meanf = (float)mean;
        float rstd = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t k = 0; k < dim; k++) {
            float v = (r[k] - meanf) * rstd;
            if (w) v = v * (wget(w, wdt, k) + off);
            if (b) v = v + wget(b, bdt, k);
            o[k] = v;
        }
    }
}

/* ---- activations --------------------------------------------------------- */

float llm_cpu_act1(float x, int act)
{
    double v = x;
    switch (act) {
    case LLM_ACT_SILU:
        return (float)(v / (1.0 + exp(-v)));
    case LLM_ACT_GELU:
        return (float)(0.5 * v * (1.0 + erf(v * 0.70710678118654752440)));
    case LLM_ACT_GELU_TANH:
        return (float)(0.5 * v * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v))));
    case LLM_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case LLM_ACT_RELU2:
        return x > 0.0f ? (float)(v * v) : 0.0f;
    default:
        return NAN;
    }
}

void llm_cpu_act(float *x, int64_t n, int act)
{
#pragma omp parallel for schedule(static) if (BIG(n))
    for (int64_t i = 0; i < n; i++)
        x[i] = llm_cpu_act1(x[i], act);
}

void llm_cpu_gated(float *out, const float *fc, const float *gate, int64_t n, int act)
{
#pragma omp parallel for schedule(static) if (BIG(n))
    for (int64_t i = 0; i < n; i++)
        out[i] = llm_cpu_act1(fc[i], act) * gate[i];
}

void llm_cpu_gated_oai(float *out, const float *fc, const float *gate, int64_t n, double alpha,
                       double limit)
{
#pragma omp parallel for schedule(static) if (BIG(n))
    for (int64_t i = 0; i < n; i++) {
        double g = fc[i] < limit ? fc[i] : limit;
        double u = gate[i] < -limit ? -limit : gate[i] > limit ? limit : gate[i];
        out[i] = (float)(g / (1.0 + exp(-alpha * g)) * (u + 1.0));
    }
}

void llm_cpu_clamp(float *x, int64_t n, float lim)
{
#pragma omp parallel for schedule(static) if (BIG(n))
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] < -lim ? -lim : x[i] > lim ? lim : x[i];
}

void llm_cpu_softcap(float *x, int64_t n, float cap)
{
#pragma omp parallel for schedule(static) if (BIG(n))
    for (int64_t i = 0; i < n; i++)
        x[i] = tanhf(x[i] / cap) * cap;
}

void llm_cpu_add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

void llm_cpu_col_stats(const float *x, int rows, int64_t ldx, int64_t in, const int32_t *slot,
                       float *chan, double *chan_sum, float *amax, float *sample)
{
    for (int t = 0; t < rows; t++) {
        const float *r = x + (int64_t)t * ldx;
        for (int64_t i = 0; i < in; i++) {
            float a = fabsf(r[i]);
            if (a > chan[i]) chan[i] = a;
            if (a > *amax) *amax = a;
            chan_sum[i] += a;
        }
        if (slot && slot[t] >= 0)
            memcpy(sample + (int64_t)slot[t] * in, r, sizeof(float) * (size_t)in);
    }
}

void llm_cpu_rows_amax(const float *x, int rows, int64_t stride, int64_t width, float *amax)
{
    for (int t = 0; t < rows; t++)
        for (int64_t i = 0; i < width; i++) {
            float a = fabsf(x[t * stride + i]);
            if (a > *amax) *amax = a;
        }
}

/* The sequence owning row t of a batch (seq_start is increasing). */
static int seq_of_row(const struct llm_batch *b, int t)
{
    int lo = 0, hi = b->n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (b->seq_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* ---- rotary position embedding ------------------------------------------- */

/* HF: base ** (arange(0, d, 2).float() / d) in fp32; the power evaluated in
 * double and rounded (a correctly rounded powf). */
static float rope_pow(float base, int i, int d)
{
    float e = (float)(2 * i) / (float)d;
    return (float)pow((double)base, (double)e);
}

static double yarn_mscale(double scale, double m)
{
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

static double yarn_corr_dim(double rot, int d, double base, double L)
{
    return ((double)d * log(L / (rot * 2.0 * M_PI))) / (2.0 * log(base));
}

int llm_cpu_rope_freqs(const struct llm_rope *r, int64_t max_pos, int64_t seq_len, float *inv_freq,
                       float *mscale)
{
    int d = r->rot_dims, half = d / 2;
    if (d <= 0 || d % 2 || d > MAX_HEAD_DIM)
        return llm_err_set(LLM_EINVAL, "rope: rot_dims %d is not a positive even number <= %d", d,
                           MAX_HEAD_DIM);
    if (!(r->theta > 0.0))
        return llm_err_set(LLM_EINVAL, "rope: theta %g is not positive", r->theta);
    double L = r->orig_max_pos > 0 ? (double)r->orig_max_pos : (double)max_pos;
    float theta = (float)r->theta;
    *mscale = 1.0f;

    switch (r->scaling) {
    case LLM_ROPE_SCALING_NONE:
    case LLM_ROPE_SCALING_LINEAR:
        for (int i = 0; i < half; i++) {
            inv_freq[i] = 1.0f / rope_pow(theta, i, d);
            if (r->scaling == LLM_ROPE_SCALING_LINEAR) inv_freq[i] /= (float)r->factor;
        }
        if (r->scaling == LLM_ROPE_SCALING_LINEAR && !(r->factor > 0.0))
            return llm_err_set(LLM_EINVAL, "rope: linear factor %g is not positive", r->factor);
        return 0;

    case LLM_ROPE_SCALING_DYNAMIC: {
        if (max_pos <= 0) return llm_err_set(LLM_EINVAL, "rope: dynamic scaling needs max_pos");
        float base = theta;
        if (seq_len > max_pos) {
            /* HF evaluates this with seq_len as an int64 tensor: every step fp32 */
            float a = (float)r->factor * (float)seq_len;
            a = a / (float)max_pos;
            a = a - (float)(r->factor - 1.0);
            float p = (float)pow((double)a, (double)d / (double)(d - 2));
            base = theta * p;
        }
        for (int i = 0; i < half; i++)
            inv_freq[i] = 1.0f / rope_pow(base, i, d);
        return 0;
    }

    case LLM_ROPE_SCALING_YARN: {
        double factor = r->factor > 0.0 ? r->factor : (double)max_pos / L;
        if (!(factor > 0.0) || !(L > 0.0))
            return llm_err_set(LLM_EINVAL, "rope: yarn needs a factor or original_max_pos");
        double attn = r->attn_factor;
        if (!(attn > 0.0)) {
            if (r->mscale != 0.0 && r->mscale_all_dim != 0.0)
                attn = yarn_mscale(factor, r->mscale) / yarn_mscale(factor, r->mscale_all_dim);
            else
                attn = yarn_mscale(factor, 1.0);
        }
        double beta_fast = r->beta_fast != 0.0 ? r->beta_fast : 32.0;
        double beta_slow = r->beta_slow != 0.0 ? r->beta_slow : 1.0;
        double low = yarn_corr_dim(beta_fast, d, r->theta, L);
        double high = yarn_corr_dim(beta_slow, d, r->theta, L);
        if (!r->yarn_no_truncate) low = floor(low), high = ceil(high);
        if (low < 0.0) low = 0.0;
        if (high > d - 1) high = d - 1;
        if (low == high) high += 0.001;
        float lowf = (float)low, span = (float)(high - low);
        for (int i = 0; i < half; i++) {
            float pf = rope_pow(theta, i, d);
            float extra = 1.0f / pf;
            float inter = 1.0f / ((float)factor * pf);
            float ramp = ((float)i - lowf) / span;
            ramp = ramp < 0.0f ? 0.0f : (ramp > 1.0f ? 1.0f : ramp);
            float ef = 1.0f - ramp;
            inv_freq[i] = inter * (1.0f - ef) + extra * ef;
        }
        *mscale = (float)attn;
        return 0;
    }

    case LLM_ROPE_SCALING_LLAMA3: {
        if (!(r->factor > 0.0) || !(L > 0.0) || !(r->high_freq_factor > r->low_freq_factor) ||
            !(r->low_freq_factor > 0.0))
            return llm_err_set(
                LLM_EINVAL,
                "rope: llama3 needs factor > 0 and high_freq_factor > low_freq_factor > 0");
        float factor = (float)r->factor;
        float low_wl = (float)(L / r->low_freq_factor);
        float high_wl = (float)(L / r->high_freq_factor);
        float two_pi = (float)(2.0 * M_PI);
        for (int i = 0; i < half; i++) {
            float inv = 1.0f / rope_pow(theta, i, d);
            float wl = (1.0f / inv) * two_pi; /* torch: scalar / t == t.reciprocal() * scalar */
            float il = wl > low_wl ? inv / factor : inv;
            float smooth = ((1.0f / wl) * (float)L - (float)r->low_freq_factor) /
                           (float)(r->high_freq_factor - r->low_freq_factor);
            float smoothed = (1.0f - smooth) * il / factor + smooth * il;
            int medium = !(wl < high_wl) && !(wl > low_wl);
            inv_freq[i] = medium ? smoothed : il;
        }
        return 0;
    }

    case LLM_ROPE_SCALING_LONGROPE: {
        if (r->n_factors != half || !r->long_factor || !r->short_factor)
            return llm_err_set(LLM_EINVAL,
                               "rope: longrope needs long_factor and short_factor of %d entries, "
                               "found %d",
                               half, r->n_factors);
        if (!(L > 0.0)) return llm_err_set(LLM_EINVAL, "rope: longrope needs original_max_pos");
        double factor = r->factor > 0.0 ? r->factor : (double)max_pos / L;
        double attn = r->attn_factor;
        if (!(attn > 0.0)) attn = factor <= 1.0 ? 1.0 : sqrt(1.0 + log(factor) / log(L));
        const float *ext = (double)seq_len > L ? r->long_factor : r->short_factor;
        for (int i = 0; i < half; i++)
            inv_freq[i] = 1.0f / (ext[i] * rope_pow(theta, i, d));
        *mscale = (float)attn;
        return 0;
    }

    default:
        return llm_err_set(LLM_EINVAL, "rope: unknown scaling type %d", r->scaling);
    }
}

void llm_cpu_rope_cos_sin(const float *inv_freq, int half, float mscale, int32_t pos, float *cos_,
                          float *sin_)
{
    float p = (float)pos;
    for (int i = 0; i < half; i++) {
        float a = p * inv_freq[i];
        cos_[i] = (float)cos((double)a) * mscale;
        sin_[i] = (float)sin((double)a) * mscale;
    }
}

void llm_cpu_rope_apply(float *x, int n_heads, int head_dim, int rot_dims, int neox,
                        const float *cos_, const float *sin_)
{
    int half = rot_dims / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        if (neox) {
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                float t1 = a * cos_[i], t2 = -b * sin_[i];
                float t3 = b * cos_[i], t4 = a * sin_[i];
                v[i] = t1 + t2;
                v[i + half] = t3 + t4;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = v[2 * i], b = v[2 * i + 1];
                float t1 = a * cos_[i], t2 = -b * sin_[i];
                float t3 = b * cos_[i], t4 = a * sin_[i];
                v[2 * i] = t1 + t2;
                v[2 * i + 1] = t3 + t4;
            }
        }
    }
}

int llm_cpu_rope_batch(float *qkv, int64_t stride, int n_heads, int n_kv_heads, int head_dim,
                       const struct llm_rope *r, int64_t max_pos, const struct llm_batch *b)
{
    int half = r->rot_dims / 2;
    if (r->rot_dims > head_dim)
        return llm_err_set(LLM_EINVAL, "rope: rot_dims %d exceeds head_dim %d", r->rot_dims,
                           head_dim);
    float *inv = malloc((size_t)(half > 0 ? half : 1) * sizeof(float) * (size_t)b->n_seqs);
    float *ms = malloc(sizeof(float) * (size_t)(b->n_seqs > 0 ? b->n_seqs : 1));
    if (!inv || !ms) {
        free(inv);
        free(ms);
        return llm_err_set(LLM_ENOMEM, "rope: out of memory");
    }
    int rc = 0;
    for (int s = 0; s < b->n_seqs && !rc; s++)
        rc = llm_cpu_rope_freqs(r, max_pos, b->seq_len[s], inv + (int64_t)s * half, &ms[s]);
    if (!rc) {
#pragma omp parallel for schedule(                                                                 \
    static) if (BIG((int64_t)b->n_tokens * (n_heads + n_kv_heads) * head_dim))
        for (int t = 0; t < b->n_tokens; t++) {
            int s = seq_of_row(b, t);
            float c[MAX_HEAD_DIM / 2], sn[MAX_HEAD_DIM / 2];
            llm_cpu_rope_cos_sin(inv + (int64_t)s * half, half, ms[s], b->pos[t], c, sn);
            float *row = qkv + (int64_t)t * stride;
            llm_cpu_rope_apply(row, n_heads, head_dim, r->rot_dims, r->neox, c, sn);
            llm_cpu_rope_apply(row + (int64_t)n_heads * head_dim, n_kv_heads, head_dim, r->rot_dims,
                               r->neox, c, sn);
        }
    }
    free(inv);
    free(ms);
    return rc;
}

/* ---- paged KV ------------------------------------------------------------ */

static int64_t kv_elt_size(int dt)
{
    return dt == LLM_DTYPE_F32 ? 4 : 2;
}

uint64_t llm_cpu_kv_block_bytes(const struct llm_cpu_kv *kv)
{
    return (uint64_t)kv->n_kv_heads * (uint64_t)kv->block_size * (uint64_t)kv->head_dim *
           (uint64_t)kv_elt_size(kv->dtype);
}

/* Element offset of (block, kv head, slot) in one layer's K or V. */
static inline int64_t kv_off(const struct llm_cpu_kv *kv, int64_t block, int h, int slot)
{
    return ((block * kv->n_kv_heads + h) * kv->block_size + slot) * (int64_t)kv->head_dim;
}

void llm_cpu_kv_append(const struct llm_cpu_kv *kv, const float *k, const float *v, int64_t stride,
                       const struct llm_batch *b)
{
#pragma omp parallel for schedule(                                                                 \
    static) if (BIG((int64_t)b->n_tokens * kv->n_kv_heads * kv->head_dim))
    for (int t = 0; t < b->n_tokens; t++) {
        const int32_t *bt = b->block_table + (int64_t)seq_of_row(b, t) * b->bt_stride;
        int p = b->pos[t];
        int64_t block = bt[p / kv->block_size];
        int slot = p % kv->block_size;
        for (int h = 0; h < kv->n_kv_heads; h++) {
            int64_t o = kv_off(kv, block, h, slot);
            int64_t src = (int64_t)t * stride + (int64_t)h * kv->head_dim;
            llm_cpu_from_f32(kv->k, kv->dtype, o, k + src, kv->head_dim);
            llm_cpu_from_f32(kv->v, kv->dtype, o, v + src, kv->head_dim);
        }
    }
}

/* Dot product in 16 interleaved fp32 partial sums, summed pairwise. */
static inline float dot16(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i + l < n; l++)
        acc[l] += a[i + l] * b[i + l];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* A row of K or V as fp32: the stored row itself when f32, else widened into tmp. */
static inline const float *kv_row(const struct llm_cpu_kv *kv, const void *base, int64_t off,
                                  float *tmp)
{
    if (kv->dtype == LLM_DTYPE_F32) return (const float *)base + off;
    llm_cpu_to_f32(tmp, base, kv->dtype, off, kv->head_dim);
    return tmp;
}

int llm_cpu_attention(float *out, int64_t out_stride, const float *q, int64_t q_stride,
                      const struct llm_cpu_kv *kv, const struct llm_batch *b,
                      const struct llm_cpu_attn *a)
{
    int n = b->n_tokens, nh = a->n_heads, hd = kv->head_dim, bs = kv->block_size;
    int group = nh / kv->n_kv_heads;
    if (hd > MAX_HEAD_DIM)
        return llm_err_set(LLM_EINVAL, "attention: head_dim %d exceeds %d", hd, MAX_HEAD_DIM);
    int max_ctx = 1;
    for (int t = 0; t < n; t++)
        if (b->pos[t] + 1 > max_ctx) max_ctx = b->pos[t] + 1;
    int fail = 0;
#pragma omp parallel if (BIG((int64_t)n * nh * max_ctx * hd / 4))
    {
        float *sc = malloc(sizeof(float) * (size_t)max_ctx);
        float ktmp[MAX_HEAD_DIM], acc[MAX_HEAD_DIM];
        if (!sc) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < (int64_t)n * nh; task++) {
            if (!sc) continue;
            int t = (int)(task / nh), h = (int)(task % nh), g = h / group;
            int s = seq_of_row(b, t), p = b->pos[t];
            const int32_t *bt = b->block_table + (int64_t)s * b->bt_stride;
            int j0 = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
            const float *qv = q + (int64_t)t * q_stride + (int64_t)h * hd;
            float mx = a->sinks ? a->sinks[h] : -INFINITY, scale = a->scale;
            if (a->qscale_beta > 0.0f) /* as torch: log(1 + floor(p / len)) in fp32 */
                scale *= 1.0f + a->qscale_beta *
                                    logf(1.0f + floorf((float)p / (float)a->qscale_len));
            for (int j = j0; j <= p; j++) {
                const float *kr = kv_row(kv, kv->k, kv_off(kv, bt[j / bs], g, j % bs), ktmp);
                float x = dot16(qv, kr, hd) * scale;
                if (a->softcap > 0.0f) x = a->softcap * tanhf(x / a->softcap);
                if (a->alibi) x += a->alibi[h] * (float)(j - p);
                sc[j - j0] = x;
                if (x > mx) mx = x;
            }
            double sum = a->sinks ? (double)expf(a->sinks[h] - mx) : 0.0;
            for (int j = j0; j <= p; j++) {
                float e = expf(sc[j - j0] - mx);
                sc[j - j0] = e;
                sum += e;
            }
            for (int d = 0; d < hd; d++)
                acc[d] = 0.0f;
            for (int j = j0; j <= p; j++) {
                float w = (float)((double)sc[j - j0] / sum);
                const float *vr = kv_row(kv, kv->v, kv_off(kv, bt[j / bs], g, j % bs), ktmp);
                for (int d = 0; d < hd; d++)
                    acc[d] += w * vr[d];
            }
            memcpy(out + (int64_t)t * out_stride + (int64_t)h * hd, acc,
                   sizeof(float) * (size_t)hd);
        }
        free(sc);
    }
    if (fail) return llm_err_set(LLM_ENOMEM, "attention: out of memory for %d scores", max_ctx);
    return 0;
}

