/* calib.c - activation statistics of a model's linear layers over
 * calibration text: for each linear weight, the largest |x| of its input
 * over every token (fp8 static activation scales) and per input channel
 * (SmoothQuant's channel statistics), the mean |x| per channel and, when
 * asked, a uniform sample of input rows (AWQ's search measures its error on
 * them).
 *
 * Design: the text runs through the CPU backend in windows, like the
 * report's evaluation, with an observer on every linear layer's input
 * (llm_backend_opts.observe); only the maxima, sums and the sample are
 * kept, so memory is the model's input widths times the sample size, not
 * its activations.  Only the last row of each
 * window asks for logits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/err.h"
#include "llm/quantize.h"
#include "llm/weight.h"

static struct llm_q_stat *find_or_add(struct llm_q_stats *s, const struct llm_weight *w)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->stat[i].name, w->name)) return &s->stat[i];
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        struct llm_q_stat *t = realloc(s->stat, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        s->stat = t;
        s->cap = cap;
    }
    struct llm_q_stat *st = &s->stat[s->n];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", w->name);
    st->in = w->shape[w->ndim - 1];
    st->chan = calloc((size_t)st->in, sizeof(float));
    st->chan_sum = calloc((size_t)st->in, sizeof(double));
    if (s->keep_rows > 0)
        st->sample = malloc(sizeof(float) * (size_t)s->keep_rows * (size_t)st->in);
    if (!st->chan || !st->chan_sum || (s->keep_rows > 0 && !st->sample)) {
        free(st->chan);
        free(st->chan_sum);
        free(st->sample);
        return NULL;
    }
    s->n++;
    return st;
}

static void observe(void *ctx, const struct llm_weight *w, const float *x, int rows)
{
    struct llm_q_stats *s = ctx;
    if (s->failed || w->ndim != 2) return; /* experts and routers are not quantized */
    struct llm_q_stat *st = find_or_add(s, w);
    if (!st) {
        s->failed = 1;
        return;
    }
    for (int t = 0; t < rows; t++) {
        const float *r = x + (int64_t)t * st->in;
        for (int64_t i = 0; i < st->in; i++) {
            float a = fabsf(r[i]);
            if (a > st->chan[i]) st->chan[i] = a;
            if (a > st->amax) st->amax = a;
            st->chan_sum[i] += a;
        }
        /* reservoir sample: row number k replaces a kept row with probability keep / (k + 1) */
        long k = st->rows + t;
        int slot = -1;
        if (s->keep_rows > 0) {
            if (k < s->keep_rows) {
                slot = (int)k;
            } else {
                s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t j = (s->rng >> 33) % (uint64_t)(k + 1);
                if (j < (uint64_t)s->keep_rows) slot = (int)j;
            }
        }
        if (slot >= 0) {
            memcpy(st->sample + (int64_t)slot * st->in, r, sizeof(float) * (size_t)st->in);
            if (st->n_sample < s->keep_rows) st->n_sample++;
        }
    }
    st->rows += rows;
}

static void observe_kv(void *ctx, int layer, const float *k, const float *v, int rows,
                       int64_t stride, int64_t width)
{
    struct llm_q_stats *s = ctx;
    if (layer < 0 || layer >= s->n_layers) return;
    for (int t = 0; t < rows; t++)
        for (int64_t i = 0; i < width; i++) {
            float a = fabsf(k[t * stride + i]), b = fabsf(v[t * stride + i]);
            if (a > s->kv_amax[2 * layer]) s->kv_amax[2 * layer] = a;
            if (b > s->kv_amax[2 * layer + 1]) s->kv_amax[2 * layer + 1] = b;
        }
}

const struct llm_q_stat *llm_q_stats_find(const struct llm_q_stats *s, const char *weight_name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->stat[i].name, weight_name)) return &s->stat[i];
    return NULL;
}

void llm_q_stats_free(struct llm_q_stats *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->stat[i].chan);
        free(s->stat[i].chan_sum);
        free(s->stat[i].sample);
    }
    free(s->stat);
    free(s->kv_amax);
    memset(s, 0, sizeof *s);
}

int llm_q_calibrate(const struct llm_model *m, const int32_t *tokens, long n, int window,
                    int keep_rows, const struct llm_backend_opts *o,
                    void (*progress)(void *ctx, long done, long total), void *ctx,
                    struct llm_q_stats *s)
{
    memset(s, 0, sizeof *s);
    s->keep_rows = keep_rows;
    s->rng = 0x853c49e6748fea9bull;
    s->n_layers = m->desc.n_layers;
    if (!(s->kv_amax = calloc(2 * (size_t)(s->n_layers > 0 ? s->n_layers : 1), sizeof(float))))
        return llm_err_set(LLM_ENOMEM, "out of memory");
    if (n < 1 || window < 1)
        return llm_err_set(LLM_EINVAL, "calibration: no tokens to read");
    struct llm_backend_opts bo = *o;
    bo.max_batch_tokens = window;
    bo.max_seqs = 1;
    bo.max_seq_len = window;
    bo.observe = observe;
    bo.observe_kv = observe_kv;
    bo.observe_ctx = s;
    struct llm_backend *be = NULL;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)window), *bt = NULL;
    int rc = pos ? llm_backend_create(&be, "cpu", m, &bo) : llm_err_set(LLM_ENOMEM, "out of memory");
    int nb = 0;
    if (!rc) {
        nb = (window + be->block_size - 1) / be->block_size;
        if (be->n_blocks < nb)
            rc = llm_err_set(LLM_ECAPACITY, "calibration: the KV cache holds fewer than %d tokens",
                             window);
        else if (!(bt = malloc(sizeof(int32_t) * (size_t)nb)))
            rc = llm_err_set(LLM_ENOMEM, "out of memory");
    }
    for (int i = 0; !rc && i < window; i++) pos[i] = i;
    for (int i = 0; !rc && i < nb; i++) bt[i] = i;
    for (long w0 = 0; !rc && w0 < n; w0 += window) {
        int L = n - w0 < window ? (int)(n - w0) : window;
        int32_t start[2] = {0, L}, len[1] = {L}, last[1] = {L - 1};
        struct llm_batch b = {L, tokens + w0, pos, 1, start, len, bt, nb, 1, last};
        if ((rc = be->ops->forward(be, &b)))
            llm_err_wrap(rc, "calibration (tokens %ld..%ld)", w0, w0 + L);
        else if (s->failed)
            rc = llm_err_set(LLM_ENOMEM, "calibration: out of memory for the statistics");
        else if (progress)
            progress(ctx, w0 + L, n);
    }
    llm_backend_destroy(be);
    free(pos);
    free(bt);
    if (rc) llm_q_stats_free(s);
    return rc;
}
